//! A decoder stage of MediaPipe's selfie segmentation network as one op: the encoder's
//! skip connection gated per channel, plus the low-resolution features upsampled 2x
//! (bilinear, `align_corners=False`), refined by a 1x1 convolution and a residual
//! depthwise `k x k`:
//!
//! ```text
//! z = skip * gate_activation(gate) + interpolate(low, scale_factor=2, mode="bilinear")
//! a = refine_activation(conv1x1(z))
//! y = a + depthwise_activation(depthwise_kxk(a))      (padding (k - 1) / 2)
//! ```
//!
//! A stage may end the network with a 2x2 stride-2 transposed convolution to a few
//! channels ([`DecoderStage::with_head`], the selfie model's last layer), or end with a
//! 1x1 convolution ([`DecoderStage::with_projection`], the selfie model's next stage's
//! input), in the same pass.
//!
//! On the GPU the whole stage is one dispatch ([`DecoderStageKernel::Fused`]): neither the
//! upsampled map, nor `z`, nor `a` is written to device memory. Stages too wide for it run
//! as their four layers ([`DecoderStageKernel::Layers`]); [`select_kernel`] chooses.

use std::sync::Arc;

use super::channel::scale_channels_add;
use ndarray::{ArrayView1, ArrayView4};

use super::conv::{Conv2d, Conv2dParams, ResidualJoin};
use super::conv_transpose::{ConvTranspose2d, ConvTranspose2dParams};
use super::inverted_residual::WeightBias;
use super::upsample::{upsample, upsample2x_gated_add, UpsampleParams};
use super::{same_shape, Activation, Cost};
use crate::error::{fail_if, Error, Result};
use crate::gpu::{check_owner, DeviceCaps, Gpu, LazyWeights, PooledBuffer, Recorder, Tensor};
use crate::launch::{
    loop_nest, read, read_opt, specialize, uniform, write, Args, Count, Kernel, KernelInfo, Launch,
    Trip,
};

/// Parameters of a decoder stage, named after the layers they configure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecoderStageParams {
    /// Channels of the skip, the gate and the low-resolution input.
    pub in_channels: usize,
    /// Channels of the 1x1 refinement and of the depthwise convolution (the output's).
    pub out_channels: usize,
    /// The depthwise kernel's size (odd; padded by `(kernel_size - 1) / 2`, stride 1).
    pub kernel_size: usize,
    /// Applied to the gate logits before they scale the skip.
    pub gate_activation: Activation,
    /// After the 1x1 refinement.
    pub refine_activation: Activation,
    /// After the depthwise convolution, before the residual add.
    pub depthwise_activation: Activation,
}

impl DecoderStageParams {
    /// The selfie model's stage: sigmoid gate, ReLU after both convolutions, 3x3
    /// depthwise.
    pub fn new(in_channels: usize, out_channels: usize) -> Self {
        DecoderStageParams {
            in_channels,
            out_channels,
            kernel_size: 3,
            gate_activation: Activation::Sigmoid,
            refine_activation: Activation::Relu,
            depthwise_activation: Activation::Relu,
        }
    }

    /// Sets the depthwise kernel size.
    pub fn kernel_size(mut self, kernel_size: usize) -> Self {
        self.kernel_size = kernel_size;
        self
    }

    /// Sets the three activations: the gate's, the refinement's and the depthwise's.
    pub fn activations(
        mut self,
        gate: Activation,
        refine: Activation,
        depthwise: Activation,
    ) -> Self {
        self.gate_activation = gate;
        self.refine_activation = refine;
        self.depthwise_activation = depthwise;
        self
    }

    /// Checks the channel counts and the kernel size.
    pub fn validate(&self) -> Result<()> {
        fail_if(
            self.in_channels == 0 || self.out_channels == 0,
            "channels",
            || {
                format!(
                    "in_channels and out_channels must be at least 1, got {} and {}",
                    self.in_channels, self.out_channels
                )
            },
        )?;
        fail_if(
            self.kernel_size == 0 || self.kernel_size.is_multiple_of(2),
            "kernel_size",
            || format!("must be odd ('same' padding), got {}", self.kernel_size),
        )
    }

    /// The 1x1 refinement as a convolution layer.
    pub fn refine(&self) -> Conv2dParams {
        Conv2dParams::new(self.in_channels, self.out_channels, 1).activation(self.refine_activation)
    }

    /// The depthwise convolution as a layer.
    pub fn depthwise(&self) -> Conv2dParams {
        Conv2dParams::depthwise(self.out_channels, 1, self.kernel_size)
            .padding((self.kernel_size - 1) / 2)
            .activation(self.depthwise_activation)
    }

    /// The output shape `[N, out_channels, H, W]` for `skip` `[N, in_channels, H, W]`,
    /// `gate` `[N, in_channels, 1, 1]` and `low` `[N, in_channels, H / 2, W / 2]` (H and W
    /// even), or the error that names the operand that does not fit.
    pub fn output_shape(
        &self,
        skip: [usize; 4],
        gate: [usize; 4],
        low: [usize; 4],
    ) -> Result<[usize; 4]> {
        self.validate()?;
        crate::gpu::check_dims("skip", &skip)?;
        same_shape("skip", [skip[0], self.in_channels, skip[2], skip[3]], skip)?;
        let [n, c, h, w] = skip;
        same_shape("gate", [n, c, 1, 1], gate)?;
        fail_if(!h.is_multiple_of(2) || !w.is_multiple_of(2), "skip", || {
            format!("height and width must be even (twice the low input's), got {skip:?}")
        })?;
        same_shape("low", [n, c, h / 2, w / 2], low)?;
        Ok([n, self.out_channels, h, w])
    }

    /// Parameters, multiply-adds and bytes (skip, gate, low, weights and output once).
    pub fn cost(&self, skip: [usize; 4]) -> Result<Cost> {
        let [n, c, h, w] = skip;
        let out = self.output_shape(skip, [n, c, 1, 1], [n, c, h / 2, w / 2])?;
        let refine = self.refine().cost(skip)?;
        let depthwise = self.depthwise().cost(out)?;
        let pixels = (n * h * w) as u64;
        let values = pixels * c as u64 * 5 / 4 + (n * c) as u64 + pixels * self.out_channels as u64;
        Ok(Cost {
            params: refine.params + depthwise.params,
            macs: refine.macs + depthwise.macs,
            bytes: 4 * (values + refine.params + depthwise.params),
        })
    }
}

/// How a decoder stage runs on the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecoderStageKernel {
    /// One dispatch: `a` over each tile and its halo in workgroup memory.
    Fused,
    /// Its layers: the resize and the gated add (one pass where the low-resolution map's
    /// width is a multiple of 4, else two), the 1x1 and the residual depthwise (three or
    /// four dispatches, two or three intermediate maps).
    Layers,
}

impl DecoderStageKernel {
    /// Every variant.
    pub const ALL: [DecoderStageKernel; 2] =
        [DecoderStageKernel::Fused, DecoderStageKernel::Layers];
}

/// What a stage computes from its output in its own pass ([`DecoderStage::tail`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StageTail<'a> {
    /// Nothing: the stage's output is written.
    #[default]
    None,
    /// A 2x2 stride-2 transposed convolution ([`DecoderStage::with_head`]).
    Head(&'a ConvTranspose2dParams),
    /// A 1x1 convolution ([`DecoderStage::with_projection`]).
    Projection(&'a Conv2dParams),
}

impl StageTail<'_> {
    /// Output channels of the tail (0 for none).
    fn channels(&self) -> usize {
        match self {
            StageTail::None => 0,
            StageTail::Head(h) => h.out_channels,
            StageTail::Projection(p) => p.out_channels,
        }
    }

    fn activation(&self) -> Activation {
        match self {
            StageTail::None => Activation::None,
            StageTail::Head(h) => h.activation,
            StageTail::Projection(p) => p.activation,
        }
    }
}

/// The tile of output pixels of one fused workgroup.
const TILE: (usize, usize) = (8, 8);
/// The most channels the fused kernel keeps per halo position (registers).
pub const FUSED_MAX_CHANNELS: usize = 32;

/// The fused kernel's plan for `params` on `skip`, or `None` when it does not fit the
/// device (channels past [`FUSED_MAX_CHANNELS`], workgroup memory, loop budget).
fn fused_plan(
    p: &DecoderStageParams,
    tail: StageTail<'_>,
    skip: [usize; 4],
    caps: &DeviceCaps,
) -> Option<Launch> {
    let (cin4, cout4) = (p.in_channels.div_ceil(4), p.out_channels.div_ceil(4));
    if 4 * cin4.max(cout4) > FUSED_MAX_CHANNELS {
        return None;
    }
    let (th, tw) = TILE;
    let k = p.kernel_size;
    let halo = (th + k - 1) * (tw + k - 1);
    let (head_c, project_c) = match tail {
        StageTail::Head(h) => (h.out_channels, 0),
        StageTail::Projection(c) => (0, c.out_channels),
        StageTail::None => (0, 0),
    };
    let staged = if tail.channels() > 0 {
        4 * cout4 * th * tw
    } else {
        0
    };
    let shared = 4 * (4 * cout4 * halo + 4 * cin4 + staged + 1);
    if shared > caps.max_compute_workgroup_storage_size as usize {
        return None;
    }
    let [n, c, h, w] = skip;
    let (tiles_y, tiles_x) = (h.div_ceil(th), w.div_ceil(tw));
    let wg = crate::launch::WORKGROUP_SIZE as u64;
    let per = |items: usize| Trip::Uniform((items as u64).div_ceil(wg));
    let loops = loop_nest(&[per(4 * cin4)])
        + loop_nest(&[per(halo), Trip::Uniform(c as u64)])
        + loop_nest(&[
            per(p.out_channels * th * tw),
            Trip::Constant(k as u64),
            Trip::Constant(k as u64),
        ])
        + loop_nest(&[
            per(4 * tail.channels() * th * tw),
            Trip::Uniform(p.out_channels as u64),
        ]);
    if loops > crate::launch::LOOP_BUDGET {
        return None;
    }
    let spec = DecoderStageSpec {
        tile_h: Count(th as u32),
        tile_w: Count(tw as u32),
        k: Count(k as u32),
        cin4: Count(cin4 as u32),
        cout4: Count(cout4 as u32),
        gate_act: p.gate_activation,
        refine_act: p.refine_activation,
        depthwise_act: p.depthwise_activation,
        head_c: head_c as u32,
        project_c: project_c as u32,
        tail_act: tail.activation(),
    };
    let u = DecoderStageUniform {
        n: n as u32,
        c_in: c as u32,
        c_out: p.out_channels as u32,
        h: h as u32,
        w: w as u32,
        low_h: (h / 2) as u32,
        low_w: (w / 2) as u32,
        tiles_x: tiles_x as u32,
        tiles_y: tiles_y as u32,
    };
    Some(
        FUSED
            .launch(&spec, &u)
            .workgroups(n * tiles_y * tiles_x)
            .loops(loops),
    )
}

/// The kernel for `params` on `skip` `[N, C, H, W]`: on a GPU, [`DecoderStageKernel::Fused`]
/// wherever its tile fits the device (it does the layers' arithmetic, the halo's 1x1
/// recomputed by neighbouring tiles `(8 + k - 1)^2 / 64` times, 1.6x for k = 3, and saves
/// three dispatches and the round trips of three maps), else
/// [`DecoderStageKernel::Layers`]. Devices that run shaders on the CPU keep the layers:
/// on lavapipe the fused pass measured 1.8-3.6x slower than the layers (its loads run lane
/// by lane, and the layers' register tiles feed more multiply-adds per load). `tail` is
/// the stage's [`DecoderStage::tail`].
pub fn select_kernel(
    params: &DecoderStageParams,
    tail: StageTail<'_>,
    skip: [usize; 4],
    caps: &DeviceCaps,
) -> DecoderStageKernel {
    if !caps.cpu && fused_plan(params, tail, skip, caps).is_some() {
        DecoderStageKernel::Fused
    } else {
        DecoderStageKernel::Layers
    }
}

uniform! {
    /// Mirrors the uniform of `decoder_stage.wgsl`.
    pub(crate) struct DecoderStageUniform {
        n: u32,
        c_in: u32,
        c_out: u32,
        h: u32,
        w: u32,
        low_h: u32,
        low_w: u32,
        tiles_x: u32,
        tiles_y: u32,
    }
}

specialize! {
    /// The fused kernel's tile, sizes and activations.
    pub(crate) struct DecoderStageSpec {
        tile_h: Count => "TILE_H",
        tile_w: Count => "TILE_W",
        k: Count => "K",
        cin4: Count => "CIN4",
        cout4: Count => "COUT4",
        gate_act: Activation => "GATE_ACT",
        refine_act: Activation => "REFINE_ACT",
        depthwise_act: Activation => "DEPTHWISE_ACT",
        head_c: u32 => "HEAD_C",
        project_c: u32 => "PROJECT_C",
        tail_act: Activation => "TAIL_ACT",
    }
}

const FUSED: Kernel<DecoderStageUniform, DecoderStageSpec> = Kernel::new(
    "decoder_stage.wgsl",
    &[
        read("skip"),
        read("gate"),
        read("low"),
        read("w_refine"),
        read("w_depthwise"),
        read("biases"),
        write("y"),
        read_opt("w_tail"),
    ],
);

/// The kernels of this family.
pub(crate) const KERNELS: &[&dyn KernelInfo] = &[&FUSED];

/// A decoder stage on the GPU: the fused kernel's weights and the two layers.
#[derive(Debug)]
pub struct DecoderStage {
    gpu: Gpu,
    params: DecoderStageParams,
    /// `w_refine`, `w_depthwise`, `biases` for the fused kernel.
    fused: [LazyWeights; 3],
    refine: Conv2d,
    depthwise: Conv2d,
    head: Option<Head>,
    projection: Option<Projection>,
}

/// The 1x1 convolution that ends a stage.
#[derive(Debug)]
struct Projection {
    params: Conv2dParams,
    /// Weights transposed `[C_in, C_out]` then biases, for the fused kernel.
    fused: LazyWeights,
    layer: Conv2d,
}

/// The transposed-convolution head of a last stage.
#[derive(Debug)]
struct Head {
    params: ConvTranspose2dParams,
    /// Weights `[C_in, C_out, 2, 2]` then biases, for the fused kernel.
    fused: LazyWeights,
    layer: ConvTranspose2d,
}

/// The most output channels of a fused head.
pub const HEAD_MAX_CHANNELS: usize = 4;

/// The most output channels of a projection ([`DecoderStage::with_projection`]).
pub const PROJECTION_MAX_CHANNELS: usize = FUSED_MAX_CHANNELS;

impl DecoderStage {
    /// Uploads the stage from PyTorch-layout weights and biases: `refine`
    /// `[out_channels, in_channels, 1, 1]` and `depthwise` `[out_channels, 1, k, k]`.
    pub fn new(
        gpu: &Gpu,
        params: DecoderStageParams,
        refine: WeightBias<'_>,
        depthwise: WeightBias<'_>,
    ) -> Result<Self> {
        params.validate()?;
        let (cin, cout, k) = (params.in_channels, params.out_channels, params.kernel_size);
        let check = super::same_dims;
        check("refine.weight", &[cout, cin, 1, 1], refine.0.shape())?;
        check("refine.bias", &[cout], refine.1.shape())?;
        check("depthwise.weight", &[cout, 1, k, k], depthwise.0.shape())?;
        check("depthwise.bias", &[cout], depthwise.1.shape())?;
        let cout4 = cout.next_multiple_of(4);
        // The 1x1 goes up transposed, 4 output channels a vec4 (zero padded).
        let mut w_refine = vec![0.0; cin * cout4];
        for ((co, ci, _, _), &v) in refine.0.indexed_iter() {
            w_refine[ci * cout4 + co] = v;
        }
        let mut biases = refine.1.to_vec();
        biases.resize(cout4, 0.0);
        biases.extend(depthwise.1.iter());
        let w_depthwise: Vec<f32> = depthwise.0.iter().copied().collect();
        let fused = [
            gpu.lazy_weights("w_refine", w_refine)?,
            gpu.lazy_weights("w_depthwise", w_depthwise)?,
            gpu.lazy_weights("biases", biases)?,
        ];
        let layer = |p: Conv2dParams, (w, b): WeightBias<'_>| Conv2d::new(gpu, p, w, Some(b));
        Ok(DecoderStage {
            gpu: gpu.clone(),
            params,
            fused,
            refine: layer(params.refine(), refine)?,
            depthwise: layer(params.depthwise(), depthwise)?,
            head: None,
            projection: None,
        })
    }

    /// Ends the stage with a transposed convolution of kernel 2 and stride 2 (no padding,
    /// no dilation, one group, at most [`HEAD_MAX_CHANNELS`] outputs, any parameter-free activation)
    /// from the stage's output channels: `weight` `[out_channels, C, 2, 2]` as PyTorch
    /// has it, `bias` of `C` values given exactly when `params.bias`. The output is then
    /// `[N, C, 2 H, 2 W]`, computed in the stage's pass.
    pub fn with_head(
        mut self,
        params: ConvTranspose2dParams,
        weight: ArrayView4<f32>,
        bias: Option<ArrayView1<f32>>,
    ) -> Result<Self> {
        params.validate()?;
        self.refuse_second_tail("head")?;
        let ok = params.kernel_size == (2, 2)
            && params.stride == (2, 2)
            && params.padding == (0, 0)
            && params.output_padding == (0, 0)
            && params.dilation == (1, 1)
            && params.groups == 1
            && params.param_activation.is_none();
        fail_if(!ok, "head", || {
            format!(
                "the head is a transposed convolution with kernel 2, stride 2, no padding, \
                 dilation 1, one group and no activation with parameters, got {params:?}"
            )
        })?;
        let (c, cout) = (self.params.out_channels, params.out_channels);
        fail_if(
            params.in_channels != c || cout > HEAD_MAX_CHANNELS,
            "head",
            || {
                format!(
                    "the head takes the stage's {c} channels to at most {HEAD_MAX_CHANNELS}, got \
                 {} -> {cout}",
                    params.in_channels
                )
            },
        )?;
        let layer = ConvTranspose2d::new(&self.gpu, params, weight, bias)?;
        let mut host: Vec<f32> = weight.iter().copied().collect();
        match bias {
            Some(b) => host.extend(b.iter()),
            None => host.extend(std::iter::repeat_n(0.0, cout)),
        }
        self.head = Some(Head {
            params,
            fused: self.gpu.lazy_weights("w_head", host)?,
            layer,
        });
        Ok(self)
    }

    /// Ends the stage with a 1x1 convolution (stride 1, no padding, one group, bias or
    /// not, any parameter-free activation) from the stage's output channels to at most
    /// [`PROJECTION_MAX_CHANNELS`]: `weight` `[C, out_channels, 1, 1]` as PyTorch has it,
    /// `bias` of `C` values given exactly when `params.bias`. The output is then
    /// `[N, C, H, W]`, computed in the stage's pass (the stage's own output is not
    /// written). A stage has a head or a projection, not both.
    pub fn with_projection(
        mut self,
        params: Conv2dParams,
        weight: ArrayView4<f32>,
        bias: Option<ArrayView1<f32>>,
    ) -> Result<Self> {
        params.validate()?;
        self.refuse_second_tail("projection")?;
        let c = self.params.out_channels;
        let pointwise = params.kernel_size == (1, 1)
            && params.stride == (1, 1)
            && params.padding == (0, 0)
            && params.padding_after.is_none_or(|p| p == (0, 0))
            && params.groups == 1
            && params.param_activation.is_none();
        fail_if(
            !pointwise || params.in_channels != c || params.out_channels > PROJECTION_MAX_CHANNELS,
            "projection",
            || {
                format!(
                    "the projection is a 1x1 convolution (stride 1, no padding, one group, \
                     no activation with parameters) from the stage's {c} channels to at most \
                     {PROJECTION_MAX_CHANNELS}, got {params:?}"
                )
            },
        )?;
        let layer = Conv2d::new(&self.gpu, params, weight, bias)?;
        let cout = params.out_channels;
        let mut host = vec![0.0; c * cout];
        for ((co, ci, _, _), &v) in weight.indexed_iter() {
            host[ci * cout + co] = v;
        }
        match bias {
            Some(b) => host.extend(b.iter()),
            None => host.extend(std::iter::repeat_n(0.0, cout)),
        }
        self.projection = Some(Projection {
            params,
            fused: self.gpu.lazy_weights("w_tail", host)?,
            layer,
        });
        Ok(self)
    }

    fn refuse_second_tail(&self, name: &'static str) -> Result<()> {
        fail_if(
            self.head.is_some() || self.projection.is_some(),
            name,
            || {
                "the stage already ends with a head or a projection (it has one or the other)"
                    .to_string()
            },
        )
    }

    /// The head's parameters, if the stage has one.
    pub fn head(&self) -> Option<&ConvTranspose2dParams> {
        self.head.as_ref().map(|h| &h.params)
    }

    /// The projection's parameters, if the stage has one.
    pub fn projection(&self) -> Option<&Conv2dParams> {
        self.projection.as_ref().map(|p| &p.params)
    }

    /// What the stage computes from its output in its pass.
    pub fn tail(&self) -> StageTail<'_> {
        match (self.head(), self.projection()) {
            (Some(h), _) => StageTail::Head(h),
            (None, Some(p)) => StageTail::Projection(p),
            (None, None) => StageTail::None,
        }
    }

    /// The output shape for these inputs (the head's or the projection's, with one).
    pub fn output_shape(
        &self,
        skip: [usize; 4],
        gate: [usize; 4],
        low: [usize; 4],
    ) -> Result<[usize; 4]> {
        let out = self.params.output_shape(skip, gate, low)?;
        match self.tail() {
            StageTail::Head(h) => h.output_shape(out),
            StageTail::Projection(p) => p.output_shape(out),
            StageTail::None => Ok(out),
        }
    }

    /// The parameters.
    pub fn params(&self) -> &DecoderStageParams {
        &self.params
    }

    /// Records the stage with the kernel [`select_kernel`] picks.
    pub fn forward(
        &self,
        rec: &mut Recorder<'_>,
        skip: &Tensor,
        gate: &Tensor,
        low: &Tensor,
    ) -> Result<Tensor> {
        let kernel = select_kernel(&self.params, self.tail(), skip.shape(), rec.gpu().caps());
        self.forward_with(rec, skip, gate, low, kernel)
    }

    /// Records the stage with a chosen kernel (an error when the fused tile does not fit
    /// the device).
    pub fn forward_with(
        &self,
        rec: &mut Recorder<'_>,
        skip: &Tensor,
        gate: &Tensor,
        low: &Tensor,
        kernel: DecoderStageKernel,
    ) -> Result<Tensor> {
        let gpu = rec.gpu();
        for (name, t) in [("skip", skip), ("gate", gate), ("low", low)] {
            t.check_gpu(gpu, name)?;
        }
        check_owner(self.gpu.id(), gpu, "layer")?;
        let p = &self.params;
        let out = self.output_shape(skip.shape(), gate.shape(), low.shape())?;
        match kernel {
            DecoderStageKernel::Fused => {
                let launch =
                    fused_plan(p, self.tail(), skip.shape(), gpu.caps()).ok_or_else(|| {
                        Error::InvalidParam {
                            name: "kernel",
                            reason: format!(
                            "the fused decoder stage does not fit this device for {p:?} on {:?} \
                         (at most {FUSED_MAX_CHANNELS} channels, workgroup memory); use \
                         DecoderStageKernel::Layers",
                            skip.shape()
                        ),
                        }
                    })?;
                let y = rec.empty("output", out)?;
                let [w_refine, w_depthwise, biases] = &self.fused;
                let args = Args::new()
                    .read("skip", skip)
                    .read("gate", gate)
                    .read("low", low)
                    .read("w_refine", w_refine.buffer()?)
                    .read("w_depthwise", w_depthwise.buffer()?)
                    .read("biases", biases.buffer()?)
                    .write("y", &y)
                    .read_opt("w_tail", self.tail_weights()?);
                rec.run(&launch, args)?;
                Ok(y)
            }
            DecoderStageKernel::Layers => {
                // The resize and the gated skip in one pass where the integer-factor
                // bilinear kernel takes `low`, else as two.
                let gated = (skip, gate, p.gate_activation);
                let z = match upsample2x_gated_add(rec, low, gated)? {
                    Some(z) => z,
                    None => {
                        let up = UpsampleParams::bilinear(false).scale_factor(2.0);
                        let up = upsample(rec, &up, low)?;
                        // Each map is dropped after its last use, so that the recording
                        // can give its buffer to the next one (as a graph of the layers
                        // would).
                        scale_channels_add(rec, skip, gate, p.gate_activation, &up)?
                    }
                };
                let a = self.refine.forward(rec, &z)?;
                drop(z);
                let join = ResidualJoin::AfterActivation;
                let y = self.depthwise.forward_residual(rec, &a, &a, join)?;
                drop(a);
                match (&self.head, &self.projection) {
                    (Some(h), _) => h.layer.forward(rec, &y),
                    (None, Some(pr)) => pr.layer.forward(rec, &y),
                    (None, None) => Ok(y),
                }
            }
        }
    }

    /// The fused kernel's `w_tail` buffer (uploaded now if it was not).
    fn tail_weights(&self) -> Result<Option<&Arc<PooledBuffer>>> {
        match (&self.head, &self.projection) {
            (Some(h), _) => Some(h.fused.buffer()).transpose(),
            (None, Some(p)) => Some(p.fused.buffer()).transpose(),
            (None, None) => Ok(None),
        }
    }

    /// Parameters, multiply-adds and bytes on `skip` (the head's or projection's included;
    /// with one, the stage's own output is not written).
    pub fn cost(&self, skip: [usize; 4]) -> Result<Cost> {
        let stage = self.params.cost(skip)?;
        let [n, _, height, width] = skip;
        let mid = [n, self.params.out_channels, height, width];
        let tail = match self.tail() {
            StageTail::None => return Ok(stage),
            StageTail::Head(h) => h.cost(mid)?,
            StageTail::Projection(p) => p.cost(mid)?,
        };
        let mid_bytes = 4 * mid.iter().product::<usize>() as u64;
        Ok(Cost {
            params: stage.params + tail.params,
            macs: stage.macs + tail.macs,
            // The tail's traffic less its input, which stays in the pass.
            bytes: (stage.bytes + tail.bytes).saturating_sub(2 * mid_bytes),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selfie_stages_fuse_and_wide_stages_run_as_layers() {
        let caps = DeviceCaps::default();
        for (c, size) in [(24, 32), (16, 64), (16, 128)] {
            let p = DecoderStageParams::new(c, c);
            let kernel = select_kernel(&p, StageTail::None, [1, c, size, size], &caps);
            assert_eq!(kernel, DecoderStageKernel::Fused, "{c} channels at {size}");
        }
        let wide = DecoderStageParams::new(64, 64);
        assert_eq!(
            select_kernel(&wide, StageTail::None, [1, 64, 32, 32], &caps),
            DecoderStageKernel::Layers
        );
        // A 7x7 depthwise on 32 channels: 32 * 14 * 14 floats of a exceed 16 KiB.
        let big = DecoderStageParams::new(32, 32).kernel_size(7);
        assert_eq!(
            select_kernel(&big, StageTail::None, [1, 32, 32, 32], &caps),
            DecoderStageKernel::Layers
        );
        let roomy = DeviceCaps {
            max_compute_workgroup_storage_size: 32768,
            ..DeviceCaps::default()
        };
        assert_eq!(
            select_kernel(&big, StageTail::None, [1, 32, 32, 32], &roomy),
            DecoderStageKernel::Fused
        );
        // CPU adapters keep the layers.
        let cpu = DeviceCaps {
            cpu: true,
            ..DeviceCaps::default()
        };
        let selfie = DecoderStageParams::new(16, 16);
        assert_eq!(
            select_kernel(&selfie, StageTail::None, [1, 16, 64, 64], &cpu),
            DecoderStageKernel::Layers
        );
    }

    #[test]
    fn shapes_name_the_operand_that_does_not_fit() {
        let p = DecoderStageParams::new(8, 4);
        assert_eq!(
            p.output_shape([2, 8, 6, 10], [2, 8, 1, 1], [2, 8, 3, 5])
                .unwrap(),
            [2, 4, 6, 10]
        );
        let name = |r: Result<[usize; 4]>| match r {
            Err(Error::ShapeMismatch { name, .. } | Error::InvalidParam { name, .. }) => name,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            name(p.output_shape([2, 8, 6, 10], [2, 8, 1, 1], [2, 8, 6, 10])),
            "low"
        );
        assert_eq!(
            name(p.output_shape([2, 8, 6, 10], [1, 8, 1, 1], [2, 8, 3, 5])),
            "gate"
        );
        assert_eq!(
            name(p.output_shape([2, 7, 6, 10], [2, 8, 1, 1], [2, 8, 3, 5])),
            "skip"
        );
        assert_eq!(
            name(p.output_shape([2, 8, 5, 10], [2, 8, 1, 1], [2, 8, 2, 5])),
            "skip"
        );
        assert_eq!(
            name(
                p.kernel_size(4)
                    .output_shape([2, 8, 6, 10], [2, 8, 1, 1], [2, 8, 3, 5])
            ),
            "kernel_size"
        );
    }
}
