//! Transposed 2-D convolution with PyTorch's semantics (`torch.nn.ConvTranspose2d` /
//! `F.conv_transpose2d`): stride, padding, output_padding, dilation, groups (depthwise
//! included), optional bias and a fused activation.
//!
//! Weights use PyTorch's layout `[C_in, C_out / groups, kH, kW]`. The output size per axis
//! is `(in - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1`.
//! The GPU kernel is a gather (every output pixel reads the inputs that reach it), so
//! results are deterministic.

use ndarray::{ArrayView1, ArrayView4};

use super::channel::ParamActivation;
use super::conv::{
    blocked_pad, fits_texels, strip_px, tile_oc_vec, tiled_uniform, Epilogue, PackedWeights,
    TiledConvParams,
};
use super::{pair_setters, Activation, Cost, IntoPair, Window};
use crate::error::{fail_if, Result};
use crate::gpu::{check_dims, check_owner, DeviceCaps, Gpu, Recorder, Tensor};
use crate::launch::{
    loop_nest, loop_tree, read, read_opt, specialize, texels, uniform, write, Args, Count, Kernel,
    KernelInfo, Launch, Trip,
};
use crate::weights::StateDict;

/// Most output pixels of one phase per invocation: 8 measured faster than 16 on lavapipe
/// (4x4 stride-2 64 -> 32 at 28x28: 3.9 against 4.3 ms), fewer live registers per lane.
const TRANSPOSED_PX_MAX: usize = 8;

uniform! {
    /// `shaders/conv_transpose_blocks.wgsl`.
    pub(crate) struct BlocksParams {
        n: u32,
        c_in: u32,
        h: u32,
        w4: u32,
        c_out: u32,
        co_blocks: u32,
        total: u32,
        pact_a: f32,
        pact_b: f32,
        then_a: f32,
        then_b: f32,
    }
}

specialize! {
    /// The constants of `conv_transpose.wgsl`: the window, the store, the strip and the
    /// channel tile; `taps`: the taps of one phase along a row when they share a shifted
    /// window (no dilation), 0 otherwise.
    struct GatherSpec {
        window: Window, epilogue: Epilogue, px: Count => "PX", oc_vec: Count => "OC_VEC",
        taps: u32 => "TAPS"
    }
}

specialize! {
    /// The constants of `conv_transpose_blocks*.wgsl`: the stride (= kernel), the
    /// activation and the output channels per invocation.
    struct BlocksSpec {
        sh: Count => "SH", sw: Count => "SW", act: Activation, param: Option<ParamActivation>,
        ocb: Count => "OCB"
    }
}

const CONV_TRANSPOSE: Kernel<TiledConvParams, GatherSpec> = Kernel::new(
    "conv_transpose.wgsl",
    &[
        read("x"),
        read("wt"),
        read("bias"),
        write("y"),
        read_opt("res"),
    ],
);
const CONV_TRANSPOSE_TEXELS: Kernel<TiledConvParams, GatherSpec> = Kernel::new(
    "conv_transpose_texels.wgsl",
    &[
        texels("x"),
        texels("wt"),
        read("bias"),
        write("y"),
        read_opt("res"),
    ],
);
const CONV_TRANSPOSE_BLOCKS: Kernel<BlocksParams, BlocksSpec> = Kernel::new(
    "conv_transpose_blocks.wgsl",
    &[read("x"), read("wt"), read("bias"), write("y")],
);
const CONV_TRANSPOSE_BLOCKS_TEXELS: Kernel<BlocksParams, BlocksSpec> = Kernel::new(
    "conv_transpose_blocks_texels.wgsl",
    &[texels("x"), texels("wt"), read("bias"), write("y")],
);

/// The kernels of this family.
pub(crate) const KERNELS: &[&dyn KernelInfo] = &[
    &CONV_TRANSPOSE,
    &CONV_TRANSPOSE_TEXELS,
    &CONV_TRANSPOSE_BLOCKS,
    &CONV_TRANSPOSE_BLOCKS_TEXELS,
];

/// Output channels per invocation of `conv_transpose_blocks*.wgsl` (`OCB`): each input
/// vec4 then serves up to 16 taps' accumulators (4 channels of a 2 x 2 block), within 16
/// vec4 registers.
fn blocks_ocb(p: &ConvTranspose2dParams) -> usize {
    let taps = p.kernel_size.0 * p.kernel_size.1;
    (16 / taps).clamp(1, 4).min(p.out_channels)
}

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
    /// An activation with parameters fused after `activation` (default none), as
    /// [`Conv2dParams::param_activation`](super::conv::Conv2dParams::param_activation).
    pub param_activation: Option<ParamActivation>,
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
            param_activation: None,
        }
    }

    /// The window (kernel size, stride, padding, dilation).
    pub fn window(&self) -> Window {
        Window::new(self.kernel_size, self.stride, self.padding, self.dilation)
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
        super::conv::Conv2dParams {
            param_activation: self.param_activation,
            ..super::conv::Conv2dParams::new(self.in_channels, self.out_channels, self.kernel_size)
                .stride(self.stride)
                .padding(self.padding)
                .dilation(self.dilation)
                .groups(self.groups)
        }
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
            fail_if(op >= s && op >= d, "output_padding", || {
                format!("{op} ({axis}) must be smaller than either stride ({s}) or dilation ({d})")
            })?;
        }
        check_dims("weight", &self.weight_shape())
    }

    /// Validates against an input shape `[N, C, H, W]`; returns `[N, C_out, H_out, W_out]`.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        self.validate()?;
        super::check_channels(input, self.in_channels)?;
        let [oh, ow] = super::per_axis(|a, pick| {
            let (i, k, s) = (input[2 + a], pick(self.kernel_size), pick(self.stride));
            let (p, d, op) = (
                pick(self.padding),
                pick(self.dilation),
                pick(self.output_padding),
            );
            let full = (i - 1) * s + d * (k - 1) + op + 1;
            fail_if(2 * p >= full, "padding", || {
                format!(
                    "2 * padding ({}) removes the whole output ({full} before padding): \
                         output size would be {}",
                    2 * p,
                    full as i64 - 2 * p as i64
                )
            })?;
            Ok(full - 2 * p)
        })?;
        super::layer_output(input, self.out_channels, [oh, ow])
    }

    /// These parameters with the `output_padding` that gives an output of `size` on
    /// `input` (PyTorch's `forward(x, output_size=size)`, which replaces the layer's own
    /// `output_padding`): `size` must lie between the output without output padding and
    /// `stride - 1` past it on each axis, else `InvalidParam("output_size")` naming the
    /// valid range.
    pub fn for_output_size(
        mut self,
        input: [usize; 4],
        size: impl super::IntoPair,
    ) -> Result<Self> {
        self.output_padding = (0, 0);
        self.validate()?;
        check_dims("input", &input)?;
        let size = size.into_pair();
        // PyTorch's range, negative lower ends included (a padding past the output
        // without output padding, which the output padding may make up for).
        let [min_h, min_w] = super::per_axis(|a, pick| {
            let (i, k, s) = (input[2 + a], pick(self.kernel_size), pick(self.stride));
            let (p, d) = (pick(self.padding), pick(self.dilation));
            Ok(((i - 1) * s + d * (k - 1) + 1) as i64 - 2 * p as i64)
        })?;
        let (max_h, max_w) = (
            min_h + self.stride.0 as i64 - 1,
            min_w + self.stride.1 as i64 - 1,
        );
        let (want_h, want_w) = (size.0 as i64, size.1 as i64);
        fail_if(
            !(min_h.max(1)..=max_h).contains(&want_h) || !(min_w.max(1)..=max_w).contains(&want_w),
            "output_size",
            || {
                format!(
                    "requested {size:?}, but valid sizes range from ({min_h}, {min_w}) to \
                     ({max_h}, {max_w}) for an input of {}x{}",
                    input[2], input[3]
                )
            },
        )?;
        self.output_padding = ((want_h - min_h) as usize, (want_w - min_w) as usize);
        self.output_shape(input)?;
        Ok(self)
    }

    /// Parameters, MACs (every input pixel times every weight of its group) and bytes.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let out = self.output_shape(input)?;
        let pixels = input[0] * input[2] * input[3];
        Ok(Cost::of_layer(
            (self.weight_shape(), self.bias),
            pixels,
            input,
            out,
        ))
    }
}

pair_setters!(ConvTranspose2dParams {
    /// Sets the output padding.
    output_padding,
    /// Sets the padding (one value or a `(height, width)` pair).
    padding,
});
super::conv_setters!(ConvTranspose2dParams);

super::conv::weight_shapes!(ConvTranspose2dParams);

/// The GPU kernels a transposed convolution can run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvTransposeKernel {
    /// Gather by output phase (`conv_transpose.wgsl`): every configuration.
    Gather {
        /// Without dilation a phase's successive taps read the same input columns shifted
        /// by one: each further tap loads one new input and shifts the rest in registers.
        shifted_taps: bool,
    },
    /// The gather reading its input and weights as texels (`conv_transpose_texels.wgsl`,
    /// [`Access::Texels`](crate::launch::Access::Texels)): needs both within `TEXEL_ROW` x
    /// 8,192 vec4s. Chosen on CPU adapters where the pixel-block kernels do not apply.
    GatherTexels {
        /// As in `Gather`.
        shifted_taps: bool,
    },
    /// Kernel equal to the stride, no padding, dilation, output padding or groups
    /// (`conv_transpose_blocks.wgsl`): every input pixel writes its own output block,
    /// vectorised over four input pixels; needs an input width divisible by 4.
    PixelBlocks,
    /// The pixel-block kernel reading its input and weights as texels
    /// (`conv_transpose_blocks_texels.wgsl`,
    /// [`Access::Texels`](crate::launch::Access::Texels)): needs what `PixelBlocks` needs
    /// and both within `TEXEL_ROW` x 8,192 vec4s. Chosen on CPU adapters, which fetch
    /// texels with vector gathers but load storage buffers one invocation at a time.
    PixelBlocksTexels,
}

impl ConvTransposeKernel {
    /// Every kernel and sub-variant, for tests that force each one.
    pub const ALL: [ConvTransposeKernel; 6] = [
        ConvTransposeKernel::PixelBlocksTexels,
        ConvTransposeKernel::PixelBlocks,
        ConvTransposeKernel::GatherTexels { shifted_taps: true },
        ConvTransposeKernel::Gather { shifted_taps: true },
        ConvTransposeKernel::GatherTexels {
            shifted_taps: false,
        },
        ConvTransposeKernel::Gather {
            shifted_taps: false,
        },
    ];

    /// Whether this kernel reads its operands as texels (the CPU adapters' variants).
    fn reads_texels(self) -> bool {
        matches!(
            self,
            ConvTransposeKernel::PixelBlocksTexels | ConvTransposeKernel::GatherTexels { .. }
        )
    }

    /// Whether this kernel can run `params` on `input`.
    pub fn supports(self, params: &ConvTranspose2dParams, input: [usize; 4]) -> bool {
        params.output_shape(input).is_ok()
            && match self {
                ConvTransposeKernel::Gather { shifted_taps } => {
                    !shifted_taps || params.dilation.1 == 1
                }
                ConvTransposeKernel::GatherTexels { shifted_taps } => {
                    ConvTransposeKernel::Gather { shifted_taps }.supports(params, input)
                        && fits_texels(input.iter().product())
                        && fits_texels(gather_len(params))
                }
                ConvTransposeKernel::PixelBlocks => {
                    pixel_blocks_params(params) && input[3].is_multiple_of(4)
                }
                ConvTransposeKernel::PixelBlocksTexels => {
                    ConvTransposeKernel::PixelBlocks.supports(params, input)
                        && fits_texels(input.iter().product())
                        && fits_texels(blocks_len(params))
                }
            }
    }
}

/// The kernel the library runs: [`ConvTransposeKernel::PixelBlocks`] where it applies (as
/// texels on CPU adapters), the gather otherwise (with shifted taps where there is no
/// dilation).
pub fn select_kernel(
    params: &ConvTranspose2dParams,
    input: [usize; 4],
    caps: &DeviceCaps,
) -> ConvTransposeKernel {
    ConvTransposeKernel::ALL
        .into_iter()
        .filter(|k| caps.cpu || !k.reads_texels())
        .find(|k| k.supports(params, input))
        .unwrap_or(ConvTransposeKernel::Gather {
            shifted_taps: false,
        })
}

/// The dispatch that runs `p` on `input` with `kernel` (which must support it).
fn plan(
    p: &ConvTranspose2dParams,
    input: [usize; 4],
    kernel: ConvTransposeKernel,
) -> Result<Launch> {
    let out = p.output_shape(input)?;
    fail_if(!kernel.supports(p, input), "kernel", || {
        format!("{kernel:?} does not support {p:?} on input {input:?}")
    })?;
    let shifted_taps = match kernel {
        ConvTransposeKernel::PixelBlocks | ConvTransposeKernel::PixelBlocksTexels => {
            let kernel = if kernel == ConvTransposeKernel::PixelBlocks {
                &CONV_TRANSPOSE_BLOCKS
            } else {
                &CONV_TRANSPOSE_BLOCKS_TEXELS
            };
            let w4 = input[3] / 4;
            let ocb = blocks_ocb(p);
            let co_blocks = p.out_channels.div_ceil(ocb);
            let total = input[0] * co_blocks * input[2] * w4;
            let store = Epilogue {
                param: p.param_activation,
                ..Epilogue::default()
            };
            let [pact_a, pact_b, then_a, then_b] = store.store_args();
            let u = BlocksParams {
                n: input[0] as u32,
                c_in: p.in_channels as u32,
                h: input[2] as u32,
                w4: w4 as u32,
                c_out: p.out_channels as u32,
                co_blocks: co_blocks as u32,
                total: total as u32,
                pact_a,
                pact_b,
                then_a,
                then_b,
            };
            let spec = BlocksSpec {
                sh: Count(p.stride.0 as u32),
                sw: Count(p.stride.1 as u32),
                act: p.activation,
                param: p.param_activation,
                ocb: Count(ocb as u32),
            };
            let taps = (p.stride.0 * p.stride.1) as u64;
            return Ok(kernel.launch(&spec, &u).threads(total).loops(loop_nest(&[
                Trip::Uniform(p.in_channels as u64),
                Trip::Constant(ocb as u64),
                Trip::Constant(taps),
            ])));
        }
        ConvTransposeKernel::Gather { shifted_taps }
        | ConvTransposeKernel::GatherTexels { shifted_taps } => shifted_taps,
    };
    let gather = if kernel.reads_texels() {
        &CONV_TRANSPOSE_TEXELS
    } else {
        &CONV_TRANSPOSE
    };
    let [n, _, oh, ow] = out;
    let epilogue = Epilogue {
        act: p.activation,
        param: p.param_activation,
        ..Epilogue::default()
    };
    let mut u = tiled_uniform(
        n,
        (p.in_channels, (input[2], input[3])),
        (p.out_channels, (oh, ow)),
        p.groups,
        p.padding,
        epilogue.store_args(),
    );
    // Pixels of one phase per row: ceil(ow / sW); strips of px of them.
    let per_phase = ow.div_ceil(p.stride.1);
    let px = strip_px(per_phase, TRANSPOSED_PX_MAX);
    u.strips_x = per_phase.div_ceil(px) as u32;
    let strips = oh * p.stride.1.min(ow) * u.strips_x as usize;
    let strip_blocks = strips.div_ceil(gather.workgroup_size as usize);
    u.strip_blocks = strip_blocks as u32;
    let spec = GatherSpec {
        window: p.window(),
        epilogue,
        px: Count(px as u32),
        oc_vec: Count(tile_oc_vec(p.out_per_group()) as u32),
        taps: if shifted_taps {
            p.kernel_size.1.div_ceil(p.stride.1) as u32
        } else {
            0
        },
    };
    let workgroups = n * p.groups * u.oc_blocks_pg as usize * strip_blocks;
    Ok(gather
        .launch(&spec, &u)
        .workgroups(workgroups)
        .loops(gather_loops(p, px, spec.taps)))
}

/// Loop iterations of one `conv_transpose.wgsl` invocation, as llvmpipe counts them: the
/// tap loops, and the channel loop of every tap. An invocation runs the channel loops of
/// the taps that feed its output phase only (`k * d = phase (mod s)`: 2 of the 3 x 3
/// taps' rows at stride 2), but llvmpipe runs 8 invocations as the lanes of one SIMD
/// register, with one loop counter for the register: lanes of other rows and phases
/// make it run the channel loops of every tap (at 3 x 3, stride 2: 9 where one lane
/// needs 2 to 4; counting only a lane's own let 7,300 input channels come back short).
fn gather_loops(p: &ConvTranspose2dParams, px: usize, shifted_taps: u32) -> u64 {
    let (kh, kw) = p.kernel_size;
    let cin = Trip::Uniform(p.in_per_group() as u64);
    let (kh, kw, px) = (kh as u64, kw as u64, Trip::Constant(px as u64));
    let tap_loops = loop_nest(&[Trip::Constant(kh), Trip::Constant(kw)]);
    let channel_loops = if shifted_taps > 0 {
        let taps = Trip::Constant(u64::from(shifted_taps));
        kh * loop_tree(&[cin], &[&[px], &[taps, px]])
    } else {
        kh * kw * loop_nest(&[cin, px])
    };
    tap_loops + channel_loops
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
#[derive(Debug)]
pub struct ConvTranspose2d {
    params: ConvTranspose2dParams,
    /// Layouts: 0 the phase gather's ([`pack`]), 1 the pixel blocks' ([`pack_blocks`]).
    weights: PackedWeights,
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
        let weights = PackedWeights::new(gpu, &params, weight, bias)?;
        Ok(ConvTranspose2d { params, weights })
    }

    /// Loads `{prefix}.weight` (and `{prefix}.bias` when `params.bias`) by PyTorch's names.
    pub fn load(
        gpu: &Gpu,
        params: ConvTranspose2dParams,
        sd: &StateDict,
        prefix: &str,
    ) -> Result<Self> {
        let (w, b) = PackedWeights::load(sd, prefix, &params)?;
        Self::new(gpu, params, w.view(), b.as_ref().map(|b| b.view()))
    }

    /// The layer's parameters.
    pub fn params(&self) -> &ConvTranspose2dParams {
        &self.params
    }

    /// Records the transposed convolution of `input` with the kernel [`select_kernel`]
    /// picks.
    pub fn forward(&self, rec: &mut Recorder<'_>, input: &Tensor) -> Result<Tensor> {
        let kernel = select_kernel(&self.params, input.shape(), rec.gpu().caps());
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
        self.record(&self.params, rec, input, kernel)
    }

    /// The layer on `input` to an output of `size` (PyTorch's `forward(x,
    /// output_size=size)`: the output padding is chosen for it, see
    /// [`ConvTranspose2dParams::for_output_size`]).
    pub fn forward_to_size(
        &self,
        rec: &mut Recorder<'_>,
        input: &Tensor,
        size: impl super::IntoPair,
    ) -> Result<Tensor> {
        let params = self.params.for_output_size(input.shape(), size)?;
        let kernel = select_kernel(&params, input.shape(), rec.gpu().caps());
        self.record(&params, rec, input, kernel)
    }

    /// Records the layer with `params` (the layer's own, or with another output padding:
    /// the packed weights do not depend on it).
    fn record(
        &self,
        params: &ConvTranspose2dParams,
        rec: &mut Recorder<'_>,
        input: &Tensor,
        kernel: ConvTransposeKernel,
    ) -> Result<Tensor> {
        input.check_gpu(rec.gpu(), "input")?;
        check_owner(self.weights.gpu_id(), rec.gpu(), "layer")?;
        let launch = plan(params, input.shape(), kernel)?;
        let output = rec.empty("output", params.output_shape(input.shape())?)?;
        let weight = match kernel {
            ConvTransposeKernel::PixelBlocks | ConvTransposeKernel::PixelBlocksTexels => {
                self.weights.layout(1, &|w| pack_blocks(&self.params, w))?
            }
            ConvTransposeKernel::Gather { .. } | ConvTransposeKernel::GatherTexels { .. } => {
                self.weights.layout(0, &|w| pack(&self.params, w))?
            }
        };
        let args = Args::new()
            .read("x", input)
            .read("wt", weight)
            .read("bias", self.weights.bias()?)
            .write("y", &output);
        rec.run(&launch, args)?;
        Ok(output)
    }

    /// Cost of this layer on `input`.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        self.params.cost(input)
    }
}

/// The values of [`pack`]'s layout.
fn gather_len(p: &ConvTranspose2dParams) -> usize {
    p.in_channels * p.kernel_size.0 * p.kernel_size.1 * blocked_pad(p.out_per_group())
}

/// The values of [`pack_blocks`]'s layout.
fn blocks_len(p: &ConvTranspose2dParams) -> usize {
    p.out_channels * p.in_channels * (p.kernel_size.0 * p.kernel_size.1).div_ceil(4) * 4
}

/// PyTorch's `[C_in][C_out][kH][kW]` (one group) as `[C_out][C_in][kH * kW padded to a
/// multiple of 4]` for `conv_transpose_blocks.wgsl`.
fn pack_blocks(p: &ConvTranspose2dParams, w: &[f32]) -> Vec<f32> {
    let taps = p.kernel_size.0 * p.kernel_size.1;
    let kk4 = taps.div_ceil(4) * 4;
    let mut out = vec![0.0f32; blocks_len(p)];
    for ci in 0..p.in_channels {
        for co in 0..p.out_channels {
            for t in 0..taps {
                out[(co * p.in_channels + ci) * kk4 + t] = w[(ci * p.out_channels + co) * taps + t];
            }
        }
    }
    out
}

/// Repacks `[C_in][C_out/g][kH][kW]` into `[g][C_in/g][kH][kW][C_out/g padded]`.
fn pack(p: &ConvTranspose2dParams, w: &[f32]) -> Vec<f32> {
    let cout_pg = p.out_per_group();
    let pad = blocked_pad(cout_pg);
    let (kh, kw) = p.kernel_size;
    let mut out = vec![0.0f32; gather_len(p)];
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
