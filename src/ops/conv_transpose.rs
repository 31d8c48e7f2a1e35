//! Transposed 2-D convolution with PyTorch's semantics (`torch.nn.ConvTranspose2d` /
//! `F.conv_transpose2d`): stride, padding, output_padding, dilation, groups (depthwise
//! included), optional bias and a fused activation.
//!
//! Weights use PyTorch's layout `[C_in, C_out / groups, kH, kW]`. The output size per axis
//! is `(in - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1`.
//! The GPU kernel is a gather (every output pixel reads the inputs that reach it), so
//! results are deterministic.

use std::sync::{Arc, OnceLock};

use ndarray::{ArrayView1, ArrayView4};

use super::conv::{blocked_pad, strip_px, tile_oc_vec, ConvUniform, WORKGROUP};

/// Most output pixels of one phase per invocation: 8 measured faster than 16 on lavapipe
/// (4x4 stride-2 64 -> 32 at 28x28: 3.9 against 4.3 ms), fewer live registers per lane.
const TRANSPOSED_PX_MAX: usize = 8;
use super::{Activation, Cost, IntoPair};
use crate::error::{invalid, Error, Result};
use crate::gpu::{check_dims, check_owner, Gpu, PooledBuffer, Recorder, Tensor};

/// Parameters of a transposed convolution, named as in `torch.nn.ConvTranspose2d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvTranspose2dParams {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel size `(kH, kW)`.
    pub kernel_size: (usize, usize),
    /// Stride `(sH, sW)`, default 1.
    pub stride: (usize, usize),
    /// Padding `(pH, pW)` removed from each side of the full output, default 0.
    pub padding: (usize, usize),
    /// Extra rows / columns added on one side of the output, default 0; must be smaller
    /// than the stride or the dilation of its axis.
    pub output_padding: (usize, usize),
    /// Dilation `(dH, dW)`, default 1.
    pub dilation: (usize, usize),
    /// Groups, default 1.
    pub groups: usize,
    /// Whether the layer has a bias (default true).
    pub bias: bool,
    /// Activation fused after the bias (default none).
    pub activation: Activation,
}

impl ConvTranspose2dParams {
    /// A transposed convolution with PyTorch's defaults.
    pub fn new(in_channels: usize, out_channels: usize, kernel_size: impl IntoPair) -> Self {
        ConvTranspose2dParams {
            in_channels,
            out_channels,
            kernel_size: kernel_size.into_pair(),
            stride: (1, 1),
            padding: (0, 0),
            output_padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
            bias: true,
            activation: Activation::None,
        }
    }

    /// Sets the stride.
    pub fn stride(mut self, stride: impl IntoPair) -> Self {
        self.stride = stride.into_pair();
        self
    }

    /// Sets the padding.
    pub fn padding(mut self, padding: impl IntoPair) -> Self {
        self.padding = padding.into_pair();
        self
    }

    /// Sets the output padding.
    pub fn output_padding(mut self, output_padding: impl IntoPair) -> Self {
        self.output_padding = output_padding.into_pair();
        self
    }

    /// Sets the dilation.
    pub fn dilation(mut self, dilation: impl IntoPair) -> Self {
        self.dilation = dilation.into_pair();
        self
    }

    /// Sets the number of groups.
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }

    /// Enables or disables the bias.
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// Sets the fused activation.
    pub fn activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// Input channels per group.
    pub fn in_per_group(&self) -> usize {
        self.in_channels / self.groups.max(1)
    }

    /// Output channels per group.
    pub fn out_per_group(&self) -> usize {
        self.out_channels / self.groups.max(1)
    }

    /// PyTorch's weight shape `[C_in, C_out / groups, kH, kW]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        [
            self.in_channels,
            self.out_per_group(),
            self.kernel_size.0,
            self.kernel_size.1,
        ]
    }

    /// Checks the parameters on their own.
    pub fn validate(&self) -> Result<()> {
        // The shared checks are those of a convolution with the same numbers.
        super::conv::Conv2dParams::new(self.in_channels, self.out_channels, self.kernel_size)
            .stride(self.stride)
            .padding(self.padding)
            .dilation(self.dilation)
            .groups(self.groups)
            .validate()?;
        for (axis, op, s, d) in [
            (
                "height",
                self.output_padding.0,
                self.stride.0,
                self.dilation.0,
            ),
            (
                "width",
                self.output_padding.1,
                self.stride.1,
                self.dilation.1,
            ),
        ] {
            if op >= s && op >= d {
                return Err(invalid(
                    "output_padding",
                    format!(
                        "{op} ({axis}) must be smaller than either stride ({s}) or dilation ({d})"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Validates against an input shape `[N, C, H, W]`; returns `[N, C_out, H_out, W_out]`.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        self.validate()?;
        check_dims("input", &input)?;
        if input[1] != self.in_channels {
            return Err(Error::ShapeMismatch {
                name: "input",
                expected: vec![input[0], self.in_channels, input[2], input[3]],
                actual: input.to_vec(),
            });
        }
        let len = |i: usize, k: usize, s: usize, p: usize, d: usize, op: usize| -> Result<usize> {
            let full = (i - 1) * s + d * (k - 1) + op + 1;
            if 2 * p >= full {
                return Err(invalid(
                    "padding",
                    format!(
                        "2 * padding ({}) removes the whole output ({full} before padding): \
                         output size would be {}",
                        2 * p,
                        full as i64 - 2 * p as i64
                    ),
                ));
            }
            Ok(full - 2 * p)
        };
        let oh = len(
            input[2],
            self.kernel_size.0,
            self.stride.0,
            self.padding.0,
            self.dilation.0,
            self.output_padding.0,
        )?;
        let ow = len(
            input[3],
            self.kernel_size.1,
            self.stride.1,
            self.padding.1,
            self.dilation.1,
            self.output_padding.1,
        )?;
        Ok([input[0], self.out_channels, oh, ow])
    }

    /// Parameters, MACs (every input pixel times every weight of its group) and bytes.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let out = self.output_shape(input)?;
        let weights =
            (self.in_channels * self.out_per_group() * self.kernel_size.0 * self.kernel_size.1)
                as u64;
        let params = weights
            + if self.bias {
                self.out_channels as u64
            } else {
                0
            };
        let in_pixels = (input[0] * input[2] * input[3]) as u64;
        let elems_in = input.iter().product::<usize>() as u64;
        let elems_out = out.iter().product::<usize>() as u64;
        Ok(Cost {
            params,
            macs: weights * in_pixels,
            bytes: 4 * (elems_in + elems_out + params),
        })
    }
}

/// The GPU kernels a transposed convolution can run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvTransposeKernel {
    /// Gather by output phase (`conv_transpose.wgsl`): every configuration.
    Gather,
    /// Kernel equal to the stride, no padding, dilation, output padding or groups
    /// (`conv_transpose_blocks.wgsl`): every input pixel writes its own output block,
    /// vectorised over four input pixels; needs an input width divisible by 4.
    PixelBlocks,
}

impl ConvTransposeKernel {
    /// Every kernel, for tests that force each one.
    pub const ALL: [ConvTransposeKernel; 2] = [
        ConvTransposeKernel::Gather,
        ConvTransposeKernel::PixelBlocks,
    ];

    /// Whether this kernel can run `params` on `input`.
    pub fn supports(self, params: &ConvTranspose2dParams, input: [usize; 4]) -> bool {
        match self {
            ConvTransposeKernel::Gather => true,
            ConvTransposeKernel::PixelBlocks => {
                pixel_blocks_params(params) && input[3].is_multiple_of(4)
            }
        }
    }
}

/// The kernel the library runs: [`ConvTransposeKernel::PixelBlocks`] where it applies,
/// [`ConvTransposeKernel::Gather`] otherwise.
pub fn select_transposed_kernel(
    params: &ConvTranspose2dParams,
    input: [usize; 4],
) -> ConvTransposeKernel {
    if ConvTransposeKernel::PixelBlocks.supports(params, input) {
        ConvTransposeKernel::PixelBlocks
    } else {
        ConvTransposeKernel::Gather
    }
}

/// Kernel equal to stride (up to 4, the vec4 store pattern's register tile), nothing else.
fn pixel_blocks_params(p: &ConvTranspose2dParams) -> bool {
    p.kernel_size == p.stride
        && p.stride.0 <= 4
        && p.stride.1 <= 4
        && p.padding == (0, 0)
        && p.output_padding == (0, 0)
        && p.dilation == (1, 1)
        && p.groups == 1
}

/// A transposed convolution layer on the GPU.
pub struct ConvTranspose2d {
    gpu: Gpu,
    params: ConvTranspose2dParams,
    /// PyTorch-layout weights, kept on the host for repacking.
    weight_host: Vec<f32>,
    bias: Arc<PooledBuffer>,
    /// Each kernel's weight layout, uploaded on its first use (as in `Conv2d`): phase
    /// gather [`pack`], pixel blocks [`pack_blocks`].
    weight_gather: OnceLock<Arc<PooledBuffer>>,
    weight_blocks: OnceLock<Arc<PooledBuffer>>,
}

impl std::fmt::Debug for ConvTranspose2d {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConvTranspose2d")
            .field("params", &self.params)
            .finish()
    }
}

impl ConvTranspose2d {
    /// Uploads a transposed convolution layer. `weight` has PyTorch's shape
    /// `[C_in, C_out / groups, kH, kW]`; `bias` has length `C_out`, given exactly when
    /// `params.bias` is true.
    pub fn new(
        gpu: &Gpu,
        params: ConvTranspose2dParams,
        weight: ArrayView4<f32>,
        bias: Option<ArrayView1<f32>>,
    ) -> Result<Self> {
        params.validate()?;
        if weight.shape() != params.weight_shape() {
            return Err(Error::ShapeMismatch {
                name: "weight",
                expected: params.weight_shape().to_vec(),
                actual: weight.shape().to_vec(),
            });
        }
        let bias_host = super::conv::bias_or_zeros(params.bias, params.out_channels, bias)?;
        Ok(ConvTranspose2d {
            gpu: gpu.clone(),
            params,
            weight_host: weight.iter().copied().collect(),
            bias: gpu.upload_f32("bias", &bias_host)?,
            weight_gather: OnceLock::new(),
            weight_blocks: OnceLock::new(),
        })
    }

    /// The layer's parameters.
    pub fn params(&self) -> &ConvTranspose2dParams {
        &self.params
    }

    /// Records the transposed convolution of `input` with the kernel
    /// [`select_transposed_kernel`] picks.
    pub fn forward(&self, rec: &mut Recorder<'_>, input: &Tensor) -> Result<Tensor> {
        let kernel = select_transposed_kernel(&self.params, input.shape());
        self.forward_with(rec, input, kernel)
    }

    /// Records the transposed convolution with a chosen kernel (an error if it does not
    /// apply).
    pub fn forward_with(
        &self,
        rec: &mut Recorder<'_>,
        input: &Tensor,
        kernel: ConvTransposeKernel,
    ) -> Result<Tensor> {
        let gpu = rec.gpu();
        input.check_gpu(gpu, "input")?;
        check_owner(self.gpu.id(), gpu, "layer")?;
        let p = &self.params;
        let in_shape = input.shape();
        let out_shape = p.output_shape(in_shape)?;
        if !kernel.supports(p, in_shape) {
            return Err(invalid(
                "kernel",
                format!("{kernel:?} does not support {p:?} on input {in_shape:?}"),
            ));
        }
        let output = rec.empty("output", out_shape)?;
        if kernel == ConvTransposeKernel::PixelBlocks {
            let weight = self.packed(&self.weight_blocks, pack_blocks)?;
            let w4 = in_shape[3] / 4;
            let total = in_shape[0] * p.out_channels * in_shape[2] * w4;
            let pipeline = gpu.pipeline(
                "conv_transpose_blocks.wgsl",
                &[("SH", p.stride.0 as u32), ("SW", p.stride.1 as u32)],
                &[("ACT", p.activation.shader_code())],
            )?;
            rec.dispatch(
                &pipeline,
                &[
                    in_shape[0] as u32,
                    p.in_channels as u32,
                    in_shape[2] as u32,
                    w4 as u32,
                    p.out_channels as u32,
                    total as u32,
                    0,
                    0,
                ],
                &[input.pooled(), weight, &self.bias, output.pooled()],
                (total as u64).div_ceil(WORKGROUP as u64),
            )?;
            return Ok(output);
        }
        let [n, _, oh, ow] = out_shape;
        let cout_pg = p.out_per_group();
        let oc_vec = tile_oc_vec(cout_pg);
        let oc_blocks_pg = cout_pg.div_ceil(4 * oc_vec);
        // Pixels of one phase per row: ceil(ow / sW); strips of px of them.
        let per_phase = ow.div_ceil(p.stride.1);
        let px = strip_px(per_phase, TRANSPOSED_PX_MAX);
        let strips_x = per_phase.div_ceil(px);
        let strips = oh * p.stride.1 * strips_x;
        let strip_blocks = strips.div_ceil(WORKGROUP);
        let u = ConvUniform {
            n: n as u32,
            c_in: p.in_channels as u32,
            h: in_shape[2] as u32,
            w: in_shape[3] as u32,
            c_out: p.out_channels as u32,
            oh: oh as u32,
            ow: ow as u32,
            groups: p.groups as u32,
            cin_pg: p.in_per_group() as u32,
            cout_pg: cout_pg as u32,
            cout_pg_pad: blocked_pad(cout_pg) as u32,
            oc_blocks_pg: oc_blocks_pg as u32,
            pad_h: p.padding.0 as u32,
            pad_w: p.padding.1 as u32,
            strips_x: strips_x as u32,
            work: strip_blocks as u32,
        };
        // Without dilation every phase's taps share one window of input columns.
        let taps = if p.dilation.1 == 1 {
            p.kernel_size.1.div_ceil(p.stride.1)
        } else {
            0
        };
        let pipeline = gpu.pipeline(
            "conv_transpose.wgsl",
            &[
                ("PX", px as u32),
                ("OC_VEC", oc_vec as u32),
                ("TAPS", taps as u32),
            ],
            &[
                ("ACT", p.activation.shader_code()),
                ("KH", p.kernel_size.0 as f64),
                ("KW", p.kernel_size.1 as f64),
                ("SH", p.stride.0 as f64),
                ("SW", p.stride.1 as f64),
                ("DH", p.dilation.0 as f64),
                ("DW", p.dilation.1 as f64),
            ],
        )?;
        rec.dispatch(
            &pipeline,
            &u,
            &[
                input.pooled(),
                self.packed(&self.weight_gather, pack)?,
                &self.bias,
                output.pooled(),
            ],
            (n * p.groups * oc_blocks_pg * strip_blocks) as u64,
        )?;
        Ok(output)
    }

    /// Cost of this layer on `input`.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        self.params.cost(input)
    }

    /// The weights in one kernel's layout, uploaded on first use.
    fn packed<'a>(
        &self,
        slot: &'a OnceLock<Arc<PooledBuffer>>,
        layout: fn(&ConvTranspose2dParams, &[f32]) -> Vec<f32>,
    ) -> Result<&'a Arc<PooledBuffer>> {
        if let Some(b) = slot.get() {
            return Ok(b);
        }
        let buf = self
            .gpu
            .upload_f32("weight", &layout(&self.params, &self.weight_host))?;
        Ok(slot.get_or_init(|| buf))
    }
}

/// Repacks `[C_in][C_out/g][kH][kW]` into `[g][C_in/g][kH][kW][C_out/g padded]`.
/// PyTorch's `[C_in][C_out][kH][kW]` (one group) as `[C_out][C_in][kH * kW padded to a
/// multiple of 4]` for `conv_transpose_blocks.wgsl`.
fn pack_blocks(p: &ConvTranspose2dParams, w: &[f32]) -> Vec<f32> {
    let taps = p.kernel_size.0 * p.kernel_size.1;
    let kk4 = taps.div_ceil(4) * 4;
    let mut out = vec![0.0f32; p.out_channels * p.in_channels * kk4];
    for ci in 0..p.in_channels {
        for co in 0..p.out_channels {
            for t in 0..taps {
                out[(co * p.in_channels + ci) * kk4 + t] = w[(ci * p.out_channels + co) * taps + t];
            }
        }
    }
    out
}

fn pack(p: &ConvTranspose2dParams, w: &[f32]) -> Vec<f32> {
    let cout_pg = p.out_per_group();
    let pad = blocked_pad(cout_pg);
    let (kh, kw) = p.kernel_size;
    let mut out = vec![0.0f32; p.in_channels * kh * kw * pad];
    for ci in 0..p.in_channels {
        for co in 0..cout_pg {
            for ky in 0..kh {
                for kx in 0..kw {
                    let src = ((ci * cout_pg + co) * kh + ky) * kw + kx;
                    // ci already runs over groups in order: g * cin_pg + ci_local.
                    let dst = ((ci * kh + ky) * kw + kx) * pad + co;
                    out[dst] = w[src];
                }
            }
        }
    }
    out
}
