//! Channel and spatial plumbing: channel shuffle (`F.channel_shuffle`), concatenation
//! and split along channels, residual add, activations as ops (also those with
//! parameters: leaky ReLU, ELU, hardtanh, softplus, and the learned PReLU), softmax /
//! log softmax / argmax and torchvision's `LayerNorm2d` over each pixel's channels, elementwise
//! gating (the scale step of SE / CBAM / ECA), highway and residual-attention
//! connections.

use super::{same_shape, Activation, Cost};
use crate::error::{fail_if, invalid, Error, Result};
use crate::gpu::{check_owner, Gpu, IndexTensor, PooledBuffer, Recorder, Tensor};
use crate::launch::{
    read, read_opt, shader_modes, specialize, uniform, write, write_opt, Args, Constants, Kernel,
    KernelInfo, Specialize,
};
use crate::weights::StateDict;
use std::sync::Arc;

/// Elements per invocation in `channel_copy.wgsl` (`PX`).
const PX: usize = 16;
/// vec4s per invocation in `elementwise.wgsl` (`VEC`).
const ELEMENTWISE_VEC: usize = 4;

uniform! {
    /// `shaders/channel_copy.wgsl`.
    pub(crate) struct ChannelCopyParams {
        hw: u32,
        c_src: u32,
        c_dst: u32,
        dst_offset: u32,
        count: u32,
        strips: u32,
        total: u32,
        dst_stride: u32,
    }
}

uniform! {
    /// `shaders/elementwise.wgsl`.
    pub(crate) struct ElementwiseParams {
        c: u32,
        hw: u32,
        len4: u32,
        total: u32,
        eps: f32,
    }
}

uniform! {
    /// `shaders/channel_pool.wgsl`.
    pub(crate) struct ChannelPoolParams {
        c: u32,
        hw: u32,
        total: u32,
    }
}

uniform! {
    /// `shaders/channel_dot.wgsl`.
    pub(crate) struct ChannelDotParams {
        c: u32,
        hw: u32,
        total: u32,
    }
}

shader_modes! {
    /// What `elementwise.wgsl` computes (its `MODE`).
    enum Mode {
        Activate = 0,
        Add = 1,
        ScaleChannels = 2,
        ScaleSpatial = 3,
        Highway = 4,
        ResidualAttention = 5,
        ScaleChannelsAdd = 6,
        LerpChannels = 7,
        AddChannels = 8,
        AddBroadcast = 9,
        Mul = 10,
        SubMul = 11,
        MulAdd = 12,
        DivEps = 13,
        BlendSpatial = 14,
        AddComplementGated = 15,
        AddGated = 16,
    }
}

specialize! {
    /// The constants of `elementwise.wgsl`: the mode, the output activation, the gate's,
    /// and whether each vec4 of a gated mode lies in one plane (`HW4`: H * W a multiple
    /// of 4; set by `record_elementwise`).
    struct ElementwiseSpec {
        mode: Mode => "MODE", act: Activation, gate: Activation => "GATE",
        whole_planes: bool => "HW4"
    }
}

const CHANNEL_COPY: Kernel<ChannelCopyParams> =
    Kernel::new("channel_copy.wgsl", &[read("x"), read("table"), write("y")]);
const ELEMENTWISE: Kernel<ElementwiseParams, ElementwiseSpec> = Kernel::new(
    "elementwise.wgsl",
    &[read("a"), read_opt("b"), read_opt("s_in"), write("y")],
);
const CHANNEL_POOL: Kernel<ChannelPoolParams, ChannelPoolOrder> =
    Kernel::new("channel_pool.wgsl", &[read("x"), write("y")]);
const CHANNEL_DOT: Kernel<ChannelDotParams, Activation> =
    Kernel::new("channel_dot.wgsl", &[read("a"), read("b"), write("y")]);

uniform! {
    /// `shaders/activation_param.wgsl`.
    pub(crate) struct ParamActivationParams {
        len: u32,
        c: u32,
        hw: u32,
        per_channel: u32,
        a: f32,
        b: f32,
    }
}

specialize! {
    /// `MODE` of `activation_param.wgsl`.
    struct ParamActivationSpec { mode: u32 => "MODE" }
}

const ACTIVATION_PARAM: Kernel<ParamActivationParams, ParamActivationSpec> = Kernel::new(
    "activation_param.wgsl",
    &[read("x"), write("y"), read_opt("w")],
);

uniform! {
    /// `shaders/channel_softmax.wgsl`.
    pub(crate) struct ChannelSoftmaxParams {
        pixels: u32,
        c: u32,
        hw: u32,
        eps: f32,
    }
}

specialize! {
    /// `MODE` of `channel_softmax.wgsl`: 0 softmax, 1 log softmax, 2 argmax, 3 layer norm.
    struct ChannelSoftmaxSpec { mode: u32 => "MODE" }
}

const CHANNEL_SOFTMAX: Kernel<ChannelSoftmaxParams, ChannelSoftmaxSpec> = Kernel::new(
    "channel_softmax.wgsl",
    &[
        read("x"),
        write_opt("y"),
        write_opt("idx"),
        read_opt("gamma"),
        read_opt("beta"),
    ],
);

/// Records `torch.softmax(x, dim=1)`: each pixel's channels as probabilities (the
/// maximum subtracted first; NaN in a pixel makes all its channels NaN, as in PyTorch).
pub fn softmax(rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
    record_channel_softmax(rec, x, 0)
}

/// Records `torch.log_softmax(x, dim=1)`: `x - max - ln(sum(exp(x - max)))` per pixel.
pub fn log_softmax(rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
    record_channel_softmax(rec, x, 1)
}

fn record_channel_softmax(rec: &mut Recorder<'_>, x: &Tensor, mode: u32) -> Result<Tensor> {
    x.check_gpu(rec.gpu(), "input")?;
    let s = x.shape();
    let y = rec.empty("output", s)?;
    let launch = plan_channel_softmax(s, mode, 0.0);
    rec.run(&launch, Args::new().read("x", x).write("y", &y))?;
    Ok(y)
}

/// Records `x.argmax(dim=1, keepdim=True)`: each pixel's class, the channel of its first
/// maximum (of its first NaN if it has one), as indices `[N, 1, H, W]` (read back as
/// `i64`, like PyTorch's): a segmentation network's label map.
pub fn argmax(rec: &mut Recorder<'_>, x: &Tensor) -> Result<IndexTensor> {
    x.check_gpu(rec.gpu(), "input")?;
    let s = x.shape();
    let idx = rec.empty_plane_indices([s[0], 1, s[2], s[3]], (s[1], 1))?;
    let launch = plan_channel_softmax(s, 2, 0.0);
    rec.run(&launch, Args::new().read("x", x).write("idx", &idx))?;
    Ok(idx)
}

/// The dispatch of `channel_softmax.wgsl` over `s` in `mode`: one invocation per pixel,
/// walking the channels once (argmax) or three times.
fn plan_channel_softmax(s: [usize; 4], mode: u32, eps: f32) -> crate::launch::Launch {
    let pixels = s[0] * s[2] * s[3];
    let u = ChannelSoftmaxParams {
        pixels: pixels as u32,
        c: s[1] as u32,
        hw: (s[2] * s[3]) as u32,
        eps,
    };
    let walks = if mode == 2 { 1 } else { 3 };
    CHANNEL_SOFTMAX
        .launch(&ChannelSoftmaxSpec { mode }, &u)
        .threads(pixels)
        .loops(walks * s[1] as u64)
}

/// torchvision's `LayerNorm2d` (ConvNeXt's norm, `nn.LayerNorm(C)` on each pixel's
/// channels of an NCHW map): statistics over the channels of each pixel, a per-channel
/// affine.
#[derive(Debug)]
pub struct LayerNorm2d {
    gpu_id: u64,
    num_channels: usize,
    eps: f32,
    gamma: Arc<PooledBuffer>,
    beta: Arc<PooledBuffer>,
}

impl LayerNorm2d {
    /// `num_channels` channels, `eps` added to the variance (PyTorch's default 1e-5;
    /// ConvNeXt builds it with 1e-6), and the affine's `weight` and `bias` (length
    /// `num_channels`; `None` for 1 and 0, as without `elementwise_affine` or `bias`).
    pub fn new(
        gpu: &Gpu,
        (num_channels, eps): (usize, f32),
        weight: Option<ndarray::ArrayView1<f32>>,
        bias: Option<ndarray::ArrayView1<f32>>,
    ) -> Result<Self> {
        fail_if(num_channels == 0, "num_channels", || {
            "must be positive".to_string()
        })?;
        fail_if(!(eps >= 0.0 && eps.is_finite()), "eps", || {
            format!("must be finite and at least 0, got {eps}")
        })?;
        let or = |name: &'static str, v: Option<ndarray::ArrayView1<f32>>, fill: f32| match v {
            Some(v) if v.len() != num_channels => Err(Error::ShapeMismatch {
                name,
                expected: vec![num_channels],
                actual: vec![v.len()],
            }),
            Some(v) => Ok(v.to_vec()),
            None => Ok(vec![fill; num_channels]),
        };
        let (g, b) = (or("weight", weight, 1.0)?, or("bias", bias, 0.0)?);
        Ok(LayerNorm2d {
            gpu_id: gpu.id(),
            num_channels,
            eps,
            gamma: gpu.upload_f32("weight", &g)?,
            beta: gpu.upload_f32("bias", &b)?,
        })
    }

    /// Loads `{prefix}.weight` and `{prefix}.bias` by PyTorch's names.
    pub fn load(
        gpu: &Gpu,
        (num_channels, eps): (usize, f32),
        sd: &StateDict,
        prefix: &str,
    ) -> Result<Self> {
        let key = |n| crate::weights::key(prefix, n);
        let w = sd.get1(&key("weight"), num_channels)?;
        let b = sd.get1(&key("bias"), num_channels)?;
        Self::new(gpu, (num_channels, eps), Some(w.view()), Some(b.view()))
    }

    /// Validates against `[N, C, H, W]`; returns the input's shape.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        crate::gpu::check_dims("input", &input)?;
        same_shape(
            "input",
            [input[0], self.num_channels, input[2], input[3]],
            input,
        )?;
        Ok(input)
    }

    /// Records the normalisation.
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        x.check_gpu(rec.gpu(), "input")?;
        check_owner(self.gpu_id, rec.gpu(), "layer")?;
        let s = self.output_shape(x.shape())?;
        let y = rec.empty("output", s)?;
        let launch = plan_channel_softmax(s, 3, self.eps);
        let args = Args::new()
            .read("x", x)
            .write("y", &y)
            .read("gamma", &self.gamma)
            .read("beta", &self.beta);
        rec.run(&launch, args)?;
        Ok(y)
    }
}

/// Elements per invocation in `activation_param.wgsl` (`PX`).
const PARAM_ACTIVATION_PX: usize = 4;

/// The kernels of this family.
pub(crate) const KERNELS: &[&dyn KernelInfo] = &[
    &CHANNEL_COPY,
    &ELEMENTWISE,
    &CHANNEL_POOL,
    &CHANNEL_DOT,
    &ACTIVATION_PARAM,
    &CHANNEL_SOFTMAX,
];

/// An activation with parameters, with PyTorch's names and defaults: an op of its own
/// ([`activation_with`]), or fused into a convolution's store
/// ([`Conv2dParams::param_activation`](super::conv::Conv2dParams::param_activation)).
/// Two are equal when their parameters have the same bits (so `0.0` and `-0.0` differ).
#[derive(Clone, Copy, Debug)]
pub enum ParamActivation {
    /// `nn.LeakyReLU(negative_slope=0.01)`: `x >= 0 ? x : negative_slope * x`.
    LeakyRelu {
        /// The slope for negative inputs.
        negative_slope: f32,
    },
    /// `nn.ELU(alpha=1.0)`: `x > 0 ? x : alpha * (exp(x) - 1)`.
    Elu {
        /// The negative saturation value.
        alpha: f32,
    },
    /// `nn.Hardtanh(min_val=-1.0, max_val=1.0)`: `clamp(x, min_val, max_val)`.
    Hardtanh {
        /// The lower bound.
        min_val: f32,
        /// The upper bound (at least `min_val`).
        max_val: f32,
    },
    /// `nn.Softplus(beta=1.0, threshold=20.0)`: `ln(1 + exp(beta x)) / beta`, or `x` where
    /// `beta x > threshold`.
    Softplus {
        /// The sharpness (non-zero).
        beta: f32,
        /// Above `beta x > threshold` the function is the identity.
        threshold: f32,
    },
}

impl ParamActivation {
    /// `nn.LeakyReLU()`'s default slope, 0.01.
    pub fn leaky_relu() -> Self {
        ParamActivation::LeakyRelu {
            negative_slope: 0.01,
        }
    }

    /// `nn.ELU()`'s default alpha, 1.
    pub fn elu() -> Self {
        ParamActivation::Elu { alpha: 1.0 }
    }

    /// `nn.Hardtanh()`'s default bounds, -1 and 1.
    pub fn hardtanh() -> Self {
        ParamActivation::Hardtanh {
            min_val: -1.0,
            max_val: 1.0,
        }
    }

    /// `nn.Softplus()`'s defaults, beta 1 and threshold 20.
    pub fn softplus() -> Self {
        ParamActivation::Softplus {
            beta: 1.0,
            threshold: 20.0,
        }
    }

    /// Checks the parameters: finite, `max_val >= min_val`, `beta != 0`.
    pub fn validate(&self) -> Result<()> {
        let finite = |name: &'static str, v: f32| {
            fail_if(!v.is_finite(), name, || format!("must be finite, got {v}"))
        };
        match *self {
            ParamActivation::LeakyRelu { negative_slope } => {
                finite("negative_slope", negative_slope)
            }
            ParamActivation::Elu { alpha } => finite("alpha", alpha),
            ParamActivation::Hardtanh { min_val, max_val } => {
                finite("min_val", min_val)?;
                finite("max_val", max_val)?;
                fail_if(max_val < min_val, "max_val", || {
                    format!("{max_val} must be at least min_val {min_val}")
                })
            }
            ParamActivation::Softplus { beta, threshold } => {
                finite("beta", beta)?;
                finite("threshold", threshold)?;
                fail_if(beta == 0.0, "beta", || "must not be zero".to_string())
            }
        }
    }

    /// `(MODE, a, b)` of `activation_param.wgsl` (`PACT - 1`, `PACT_A`, `PACT_B` of
    /// `epilogue.wgsl`).
    pub(crate) fn shader_args(self) -> (u32, f32, f32) {
        match self {
            ParamActivation::LeakyRelu { negative_slope } => (0, negative_slope, 0.0),
            ParamActivation::Elu { alpha } => (1, alpha, 0.0),
            ParamActivation::Hardtanh { min_val, max_val } => (2, min_val, max_val),
            ParamActivation::Softplus { beta, threshold } => (3, beta, threshold),
        }
    }
}

impl PartialEq for ParamActivation {
    fn eq(&self, other: &Self) -> bool {
        let (m, a, b) = self.shader_args();
        let (n, c, d) = other.shader_args();
        (m, a.to_bits(), b.to_bits()) == (n, c.to_bits(), d.to_bits())
    }
}

impl Eq for ParamActivation {}

impl std::hash::Hash for ParamActivation {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let (m, a, b) = self.shader_args();
        (m, a.to_bits(), b.to_bits()).hash(state);
    }
}

/// Records `act(x)` for an activation with parameters (`F.leaky_relu`, `F.elu`,
/// `F.hardtanh`, `F.softplus`).
pub fn activation_with(rec: &mut Recorder<'_>, x: &Tensor, act: ParamActivation) -> Result<Tensor> {
    x.check_gpu(rec.gpu(), "input")?;
    act.validate()?;
    let (mode, a, b) = act.shader_args();
    record_param_activation(rec, x, (mode, a, b), None)
}

fn record_param_activation(
    rec: &mut Recorder<'_>,
    x: &Tensor,
    (mode, a, b): (u32, f32, f32),
    weight: Option<(&Arc<PooledBuffer>, bool)>,
) -> Result<Tensor> {
    let s = x.shape();
    let y = rec.empty("output", s)?;
    let len = x.len();
    let u = ParamActivationParams {
        len: len as u32,
        c: s[1] as u32,
        hw: (s[2] * s[3]) as u32,
        per_channel: u32::from(weight.is_some_and(|(_, per)| per)),
        a,
        b,
    };
    let launch = ACTIVATION_PARAM
        .launch(&ParamActivationSpec { mode }, &u)
        .threads(len.div_ceil(PARAM_ACTIVATION_PX));
    let args = Args::new()
        .read("x", x)
        .write("y", &y)
        .read_opt("w", weight.map(|(w, _)| w));
    rec.run(&launch, args)?;
    Ok(y)
}

/// `nn.PReLU(num_parameters)`: `x >= 0 ? x : weight[c] * x` with one learned slope, or
/// one per channel.
#[derive(Debug)]
pub struct PRelu {
    gpu_id: u64,
    num_parameters: usize,
    weight: Arc<PooledBuffer>,
}

impl PRelu {
    /// Uploads `weight`: one slope shared by every channel, or one per channel (PyTorch's
    /// `num_parameters`, the length of `weight`; initialised to 0.25 there).
    pub fn new(gpu: &Gpu, weight: ndarray::ArrayView1<f32>) -> Result<Self> {
        fail_if(weight.is_empty(), "weight", || {
            "needs at least one slope".to_string()
        })?;
        Ok(PRelu {
            gpu_id: gpu.id(),
            num_parameters: weight.len(),
            weight: gpu.upload_f32("weight", &weight.to_vec())?,
        })
    }

    /// Loads `{prefix}.weight` of `num_parameters` slopes by PyTorch's name.
    pub fn load(gpu: &Gpu, num_parameters: usize, sd: &StateDict, prefix: &str) -> Result<Self> {
        let w = sd.get1(&crate::weights::key(prefix, "weight"), num_parameters)?;
        Self::new(gpu, w.view())
    }

    /// The number of slopes (1, or the channels).
    pub fn num_parameters(&self) -> usize {
        self.num_parameters
    }

    /// Validates against `[N, C, H, W]` (one slope, or `C`); returns the input's shape.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        crate::gpu::check_dims("input", &input)?;
        let n = self.num_parameters;
        fail_if(n != 1 && n != input[1], "input", || {
            format!(
                "{} channels for {n} PReLU slopes (one, or one per channel)",
                input[1]
            )
        })?;
        Ok(input)
    }

    /// Records the activation.
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        x.check_gpu(rec.gpu(), "input")?;
        check_owner(self.gpu_id, rec.gpu(), "layer")?;
        self.output_shape(x.shape())?;
        let per_channel = self.num_parameters > 1;
        record_param_activation(rec, x, (4, 0.0, 0.0), Some((&self.weight, per_channel)))
    }
}

/// Copies channels `table` of every sample of `x` into channels `dst_offset`,
/// `dst_offset + dst_stride`, ... of `y`.
fn record_channel_copy(
    rec: &mut Recorder<'_>,
    x: &Tensor,
    table: &[u32],
    y: &Tensor,
    (dst_offset, dst_stride): (usize, usize),
) -> Result<()> {
    if copy_ranges(rec, x, table, y, (dst_offset, dst_stride))? {
        return Ok(());
    }
    let (xs, ys) = (x.shape(), y.shape());
    let hw = xs[2] * xs[3];
    let strips = hw.div_ceil(PX);
    let total = xs[0] * table.len() * strips;
    let table_buf = rec.gpu().upload_slice("table", table)?;
    let u = ChannelCopyParams {
        hw: hw as u32,
        c_src: xs[1] as u32,
        c_dst: ys[1] as u32,
        dst_offset: dst_offset as u32,
        count: table.len() as u32,
        strips: strips as u32,
        total: total as u32,
        dst_stride: dst_stride as u32,
    };
    let args = Args::new()
        .read("x", x)
        .read("table", &table_buf)
        .write("y", y);
    rec.run(&CHANNEL_COPY.launch(&(), &u).threads(total), args)
}

/// The most samples whose channels [`copy_ranges`] copies as one buffer range each; larger
/// batches take the copy kernel's one dispatch.
const COPY_RANGES_MAX: usize = 8;

/// Records [`record_channel_copy`]'s work as buffer-to-buffer copies where it moves one
/// contiguous range of each sample (consecutive channels into consecutive channels: the
/// parts of a concatenation, a narrow, a split) and each range is 4-byte aligned; returns
/// whether it did. A copy command is no compute dispatch: no shader, one `memcpy` on a CPU
/// adapter, the driver's own copy on a GPU (lavapipe, RVM at 256 x 256: its 53
/// channel-copy dispatches took 6% of the kernel time, plus each dispatch's cost).
fn copy_ranges(
    rec: &mut Recorder<'_>,
    x: &Tensor,
    table: &[u32],
    y: &Tensor,
    (dst_offset, dst_stride): (usize, usize),
) -> Result<bool> {
    let (xs, ys) = (x.shape(), y.shape());
    let consecutive = table.windows(2).all(|w| w[1] == w[0] + 1);
    let Some(&first) = table.first() else {
        return Ok(true);
    };
    if dst_stride != 1
        || !consecutive
        || x.precision() != y.precision()
        || x.shares_buffer(y)
        || (xs[0], xs[2], xs[3]) != (ys[0], ys[2], ys[3])
    {
        return Ok(false);
    }
    let plane = (xs[2] * xs[3]) as u64 * x.precision().bytes();
    let (start, count, dst) = (first as u64, table.len() as u64, dst_offset as u64);
    if start + count > xs[1] as u64 || dst + count > ys[1] as u64 {
        return Ok(false);
    }
    // Every channel of both: the whole tensor in one range.
    let whole = start == 0 && dst == 0 && count == xs[1] as u64 && count == ys[1] as u64;
    let (ranges, size) = if whole {
        (1, x.bytes())
    } else {
        (xs[0], count * plane)
    };
    let align = wgpu::COPY_BUFFER_ALIGNMENT;
    let offsets: Vec<(u64, u64)> = (0..ranges as u64)
        .map(|n| {
            (
                (n * xs[1] as u64 + start) * plane,
                (n * ys[1] as u64 + dst) * plane,
            )
        })
        .collect();
    if ranges > COPY_RANGES_MAX
        || !size.is_multiple_of(align)
        || offsets
            .iter()
            .any(|(a, b)| !a.is_multiple_of(align) || !b.is_multiple_of(align))
    {
        return Ok(false);
    }
    for (src_offset, dst_offset) in offsets {
        rec.copy(x.pooled(), src_offset, y.pooled(), dst_offset, size)?;
    }
    Ok(true)
}

/// Channel shuffle with `groups` (ShuffleNet): output channel `j` takes input channel
/// `(j mod g) * (C / g) + floor(j / g)`; equivalently input channel `i` goes to
/// `(i mod (C / g)) * g + floor(i / (C / g))` (the seed's map).
pub fn channel_shuffle(rec: &mut Recorder<'_>, x: &Tensor, groups: usize) -> Result<Tensor> {
    x.check_gpu(rec.gpu(), "input")?;
    let s = x.shape();
    fail_if(
        groups == 0 || !s[1].is_multiple_of(groups),
        "groups",
        || format!("channels ({}) must be divisible by groups ({groups})", s[1]),
    )?;
    let per = s[1] / groups;
    let table: Vec<u32> = (0..s[1])
        .map(|j| ((j % groups) * per + j / groups) as u32)
        .collect();
    let y = rec.empty("output", s)?;
    record_channel_copy(rec, x, &table, &y, (0, 1))?;
    Ok(y)
}

/// ShuffleNetV2's unit output, `channel_shuffle(cat([a[:, :C_b], b]), 2)`, in two copies
/// and without the concatenated map: output channel `2i` takes `a`'s channel `i`, `2i + 1`
/// takes `b`'s. `a` may have more channels than `b`: a stride-1 unit passes its whole
/// input, whose first half is the identity branch. Output `[N, 2 C_b, H, W]`.
pub fn shuffle_pair(rec: &mut Recorder<'_>, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.check_gpu(rec.gpu(), "a")?;
    b.check_gpu(rec.gpu(), "b")?;
    let y = rec.empty("output", shuffle_pair_shape(a.shape(), b.shape())?)?;
    let table: Vec<u32> = (0..b.shape()[1] as u32).collect();
    record_channel_copy(rec, a, &table, &y, (0, 2))?;
    record_channel_copy(rec, b, &table, &y, (1, 2))?;
    Ok(y)
}

/// [`shuffle_pair`]'s output shape: `b`'s with twice its channels; `a` must share N, H
/// and W and have at least `b`'s channels.
pub fn shuffle_pair_shape(a: [usize; 4], b: [usize; 4]) -> Result<[usize; 4]> {
    if (a[0], a[2], a[3]) != (b[0], b[2], b[3]) || a[1] < b[1] {
        return Err(Error::ShapeMismatch {
            name: "b",
            expected: vec![a[0], a[1].min(b[1]), a[2], a[3]],
            actual: b.to_vec(),
        });
    }
    Ok([b[0], 2 * b[1], b[2], b[3]])
}

/// Channels `start..start + length` of `x` (`x.narrow(1, start, length)`): one copy, or
/// none where they are the start of `x`'s buffer (the first channels of one sample), which
/// the result then shares, as PyTorch's `narrow` returns a view: an op that writes into
/// its output tensor ([`upsample_into`](crate::ops::upsample::upsample_into)) writes into
/// `x` there.
pub fn narrow(rec: &mut Recorder<'_>, x: &Tensor, start: usize, length: usize) -> Result<Tensor> {
    x.check_gpu(rec.gpu(), "input")?;
    let s = x.shape();
    let shape = narrow_shape(s, start, length)?;
    if is_prefix(s, start, length) {
        return Ok(x.prefix_view(shape));
    }
    let y = rec.empty("output", shape)?;
    let table: Vec<u32> = (start as u32..(start + length) as u32).collect();
    record_channel_copy(rec, x, &table, &y, (0, 1))?;
    Ok(y)
}

/// Whether channels `start..start + length` of a tensor of shape `x` are the start of its
/// buffer: [`narrow`] and [`split`] return those as views.
pub(crate) fn is_prefix(x: [usize; 4], start: usize, length: usize) -> bool {
    start == 0 && (x[0] == 1 || length == x[1])
}

/// [`narrow`]'s output shape: a positive `length` within the channels.
pub fn narrow_shape(x: [usize; 4], start: usize, length: usize) -> Result<[usize; 4]> {
    fail_if(
        length == 0 || start.checked_add(length).is_none_or(|end| end > x[1]),
        "length",
        || {
            format!(
                "channels {start}..{start}+{length} must be a non-empty range of the {}",
                x[1]
            )
        },
    )?;
    Ok([x[0], length, x[2], x[3]])
}

/// Concatenation along channels (`torch.cat(dim=1)`); all inputs share N, H and W.
pub fn concat(rec: &mut Recorder<'_>, inputs: &[&Tensor]) -> Result<Tensor> {
    let first = inputs
        .first()
        .ok_or_else(|| invalid("inputs", "at least one tensor is needed"))?;
    let s0 = first.shape();
    let mut channels = 0;
    for t in inputs {
        t.check_gpu(rec.gpu(), "inputs")?;
        let s = t.shape();
        if (s[0], s[2], s[3]) != (s0[0], s0[2], s0[3]) {
            return Err(Error::ShapeMismatch {
                name: "inputs",
                expected: vec![s0[0], s[1], s0[2], s0[3]],
                actual: s.to_vec(),
            });
        }
        channels += s[1];
    }
    let y = rec.empty("output", [s0[0], channels, s0[2], s0[3]])?;
    let mut offset = 0;
    for t in inputs {
        copy_into_channels(rec, t, &y, offset)?;
        offset += t.shape()[1];
    }
    Ok(y)
}

/// Copies `x` into channels `offset .. offset + C` of `y` (the same N, H and W; the
/// caller checks): one input of a concatenation.
pub(crate) fn copy_into_channels(
    rec: &mut Recorder<'_>,
    x: &Tensor,
    y: &Tensor,
    offset: usize,
) -> Result<()> {
    let table: Vec<u32> = (0..x.shape()[1] as u32).collect();
    record_channel_copy(rec, x, &table, y, (offset, 1))
}

/// A preallocated channel buffer for dense blocks (DenseNet): each layer's output is
/// appended into the next free channels, so a block of L layers copies each output once
/// instead of re-concatenating everything at every layer.
///
/// [`DenseBuffer::features`] returns the channels filled so far. For batch size 1 that is
/// a view of the buffer's prefix (no copy at all); for larger batches the channels of one
/// sample are not contiguous across samples, so it is a compact copy.
#[derive(Debug)]
pub struct DenseBuffer {
    buffer: Tensor,
    filled: usize,
}

impl DenseBuffer {
    /// A buffer for `[N, capacity, H, W]` that starts with `initial`'s channels.
    pub fn new(rec: &mut Recorder<'_>, initial: &Tensor, capacity: usize) -> Result<Self> {
        initial.check_gpu(rec.gpu(), "initial")?;
        let s = initial.shape();
        fail_if(capacity < s[1], "capacity", || {
            format!("{capacity} channels cannot hold the initial {}", s[1])
        })?;
        let buffer = rec.empty("buffer", [s[0], capacity, s[2], s[3]])?;
        let mut dense = DenseBuffer { buffer, filled: 0 };
        dense.append(rec, initial)?;
        Ok(dense)
    }

    /// Channels filled so far.
    pub fn channels(&self) -> usize {
        self.filled
    }

    /// Appends `x`'s channels after those already filled.
    pub fn append(&mut self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<()> {
        self.buffer.check_gpu(rec.gpu(), "buffer")?;
        x.check_gpu(rec.gpu(), "input")?;
        let (s, b) = (x.shape(), self.buffer.shape());
        if (s[0], s[2], s[3]) != (b[0], b[2], b[3]) {
            return Err(Error::ShapeMismatch {
                name: "input",
                expected: vec![b[0], s[1], b[2], b[3]],
                actual: s.to_vec(),
            });
        }
        fail_if(self.filled + s[1] > b[1], "input", || {
            format!(
                "{} more channels do not fit: {} of {} are filled",
                s[1], self.filled, b[1]
            )
        })?;
        let table: Vec<u32> = (0..s[1] as u32).collect();
        record_channel_copy(rec, x, &table, &self.buffer, (self.filled, 1))?;
        self.filled += s[1];
        Ok(())
    }

    /// The filled channels as a tensor `[N, channels(), H, W]`.
    pub fn features(&self, rec: &mut Recorder<'_>) -> Result<Tensor> {
        self.buffer.check_gpu(rec.gpu(), "buffer")?;
        let b = self.buffer.shape();
        let shape = [b[0], self.filled, b[2], b[3]];
        if b[0] == 1 || self.filled == b[1] {
            return Ok(self.buffer.prefix_view(shape));
        }
        let y = rec.empty("output", shape)?;
        let table: Vec<u32> = (0..self.filled as u32).collect();
        record_channel_copy(rec, &self.buffer, &table, &y, (0, 1))?;
        Ok(y)
    }
}

/// Split along channels into pieces of the given sizes (`torch.split(dim=1)`), as
/// ShuffleNet v2's channel split does. The first piece of a one-sample tensor is a view
/// of its buffer (no copy), as PyTorch's pieces are views.
pub fn split(rec: &mut Recorder<'_>, x: &Tensor, sizes: &[usize]) -> Result<Vec<Tensor>> {
    x.check_gpu(rec.gpu(), "input")?;
    let s = x.shape();
    fail_if(
        sizes.contains(&0) || sizes.iter().sum::<usize>() != s[1],
        "sizes",
        || {
            format!(
                "{sizes:?} must be positive and sum to the channel count {}",
                s[1]
            )
        },
    )?;
    let mut start = 0u32;
    let mut out = Vec::with_capacity(sizes.len());
    for &c in sizes {
        if is_prefix(s, start as usize, c) {
            out.push(x.prefix_view([s[0], c, s[2], s[3]]));
            start += c as u32;
            continue;
        }
        let y = rec.empty("output", [s[0], c, s[2], s[3]])?;
        let table: Vec<u32> = (start..start + c as u32).collect();
        record_channel_copy(rec, x, &table, &y, (0, 1))?;
        start += c as u32;
        out.push(y);
    }
    Ok(out)
}

fn record_elementwise(
    rec: &mut Recorder<'_>,
    spec: ElementwiseSpec,
    a: &Tensor,
    b: Option<&Tensor>,
    s: Option<&Tensor>,
) -> Result<Tensor> {
    record_elementwise_eps(rec, spec, a, (b, s), 0.0)
}

/// [`record_elementwise`] with the `eps` of [`div`].
fn record_elementwise_eps(
    rec: &mut Recorder<'_>,
    spec: ElementwiseSpec,
    a: &Tensor,
    (b, s): (Option<&Tensor>, Option<&Tensor>),
    eps: f32,
) -> Result<Tensor> {
    let shape = a.shape();
    let len4 = a.len().div_ceil(4);
    let total = len4.div_ceil(ELEMENTWISE_VEC);
    let y = rec.empty("output", shape)?;
    // A constant, not a test in the shader: llvmpipe runs both sides of a branch (under a
    // mask), so every vec4 also paid the per-element path's divisions and gate (selfie's
    // gated skip at 16 x 128 x 128 on lavapipe: 3.0-6.0 -> 2.9-3.1 ms, alternated).
    let gated = matches!(
        spec.mode,
        Mode::ScaleChannels
            | Mode::ScaleSpatial
            | Mode::ScaleChannelsAdd
            | Mode::LerpChannels
            | Mode::AddChannels
            | Mode::BlendSpatial
    );
    let spec = ElementwiseSpec {
        whole_planes: !gated || (shape[2] * shape[3]).is_multiple_of(4),
        ..spec
    };
    let u = ElementwiseParams {
        c: shape[1] as u32,
        hw: (shape[2] * shape[3]) as u32,
        len4: len4 as u32,
        total: total as u32,
        eps,
    };
    let args = Args::new()
        .read("a", a)
        .read_opt("b", b)
        .read_opt("s_in", s)
        .write("y", &y);
    rec.run(&ELEMENTWISE.launch(&spec, &u).threads(total), args)?;
    Ok(y)
}

/// An elementwise op of `x` and two more operands of its shape, named for the errors.
fn record_ternary(
    rec: &mut Recorder<'_>,
    spec: ElementwiseSpec,
    x: &Tensor,
    (b_name, b): (&'static str, &Tensor),
    (s_name, s): (&'static str, &Tensor),
) -> Result<Tensor> {
    for (name, t) in [("input", x), (b_name, b), (s_name, s)] {
        t.check_gpu(rec.gpu(), name)?;
        same_shape(name, x.shape(), t.shape())?;
    }
    record_elementwise(rec, spec, x, Some(b), Some(s))
}

/// The spec of an elementwise op with no output activation.
fn gated(mode: Mode, gate: Activation) -> ElementwiseSpec {
    ElementwiseSpec {
        mode,
        act: Activation::None,
        gate,
        whole_planes: true,
    }
}

/// An activation as a standalone op.
pub fn activation(rec: &mut Recorder<'_>, x: &Tensor, act: Activation) -> Result<Tensor> {
    x.check_gpu(rec.gpu(), "input")?;
    let spec = ElementwiseSpec {
        mode: Mode::Activate,
        act,
        gate: Activation::None,
        whole_planes: true,
    };
    record_elementwise(rec, spec, x, None, None)
}

/// Elementwise product `act(a * b)` (`torch.mul`; shapes must match): a GRU's reset gate
/// on its hidden state, a guided filter's products.
pub fn mul(rec: &mut Recorder<'_>, a: &Tensor, b: &Tensor, act: Activation) -> Result<Tensor> {
    a.check_gpu(rec.gpu(), "a")?;
    b.check_gpu(rec.gpu(), "b")?;
    same_shape("b", a.shape(), b.shape())?;
    let spec = ElementwiseSpec {
        mode: Mode::Mul,
        act,
        gate: Activation::None,
        whole_planes: true,
    };
    record_elementwise(rec, spec, a, Some(b), None)
}

/// `c - a * b` elementwise, all three of one shape, in one pass: a guided filter's
/// covariance `mean(x * y) - mean(x) * mean(y)` and offset `mean_y - A * mean_x`.
pub fn sub_mul(rec: &mut Recorder<'_>, c: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let spec = gated(Mode::SubMul, Activation::None);
    record_ternary(rec, spec, a, ("b", b), ("c", c))
}

/// `a * b + c` elementwise, all three of one shape, in one pass (`torch.addcmul(c, a,
/// b)`): a guided filter's `A * x + b`.
pub fn mul_add(rec: &mut Recorder<'_>, a: &Tensor, b: &Tensor, c: &Tensor) -> Result<Tensor> {
    let spec = gated(Mode::MulAdd, Activation::None);
    record_ternary(rec, spec, a, ("b", b), ("c", c))
}

/// `a / (b + eps)` elementwise (`torch.div(a, b + eps)`; `eps` 0 is `torch.div(a, b)`,
/// with IEEE results for zero divisors), both of one shape, in one pass: the fast guided
/// filter's `cov_xy / (var_x + eps)`.
pub fn div(rec: &mut Recorder<'_>, a: &Tensor, b: &Tensor, eps: f32) -> Result<Tensor> {
    a.check_gpu(rec.gpu(), "a")?;
    b.check_gpu(rec.gpu(), "b")?;
    same_shape("b", a.shape(), b.shape())?;
    fail_if(!eps.is_finite(), "eps", || {
        format!("must be finite, got {eps}")
    })?;
    let spec = gated(Mode::DivEps, Activation::None);
    record_elementwise_eps(rec, spec, a, (Some(b), None), eps)
}

/// `end * weight + start * (1 - weight)` elementwise, all three of one shape, in one pass:
/// a GRU's update `(1 - z) * h + z * c` (`start` the old state `h`, `end` the candidate
/// `c`, `weight` the update gate `z`), PyTorch's operations in PyTorch's order.
pub fn blend(
    rec: &mut Recorder<'_>,
    start: &Tensor,
    end: &Tensor,
    weight: &Tensor,
) -> Result<Tensor> {
    let spec = gated(Mode::Highway, Activation::None);
    record_ternary(rec, spec, start, ("end", end), ("weight", weight))
}

/// `act((1 - t) * start + t * end)` with `t = gate(weight)` and `weight` of shape
/// `[N, 1, H, W]`, one weight per pixel for every channel, in one pass: PIDNet's
/// pixel-attention-guided fusion (`PagFM`: `(1 - sim_map) * x + sim_map * y`, and the
/// ReLU the next layer applies to it).
pub fn blend_spatial(
    rec: &mut Recorder<'_>,
    start: &Tensor,
    end: &Tensor,
    weight: &Tensor,
    (gate, act): (Activation, Activation),
) -> Result<Tensor> {
    let xs = start.shape();
    start.check_gpu(rec.gpu(), "start")?;
    end.check_gpu(rec.gpu(), "end")?;
    same_shape("end", xs, end.shape())?;
    weight.check_gpu(rec.gpu(), "weight")?;
    same_shape("weight", [xs[0], 1, xs[2], xs[3]], weight.shape())?;
    let spec = ElementwiseSpec {
        act,
        ..gated(Mode::BlendSpatial, gate)
    };
    record_elementwise(rec, spec, start, Some(end), Some(weight))
}

/// `a + gate(s) * b`, all three of one shape, in one pass: PIDNet's light
/// boundary-attention-guided fusion's `i + sigmoid(d) * p` (`Light_Bag`).
pub fn add_gated(
    rec: &mut Recorder<'_>,
    a: &Tensor,
    b: &Tensor,
    s: &Tensor,
    gate: Activation,
) -> Result<Tensor> {
    let spec = gated(Mode::AddGated, gate);
    record_ternary(rec, spec, a, ("b", b), ("s", s))
}

/// `(1 - gate(s)) * a + b`, all three of one shape, in one pass: PIDNet's light
/// boundary-attention-guided fusion's `(1 - sigmoid(d)) * i + p` (`Light_Bag`).
pub fn add_complement_gated(
    rec: &mut Recorder<'_>,
    a: &Tensor,
    b: &Tensor,
    s: &Tensor,
    gate: Activation,
) -> Result<Tensor> {
    let spec = gated(Mode::AddComplementGated, gate);
    record_ternary(rec, spec, a, ("b", b), ("s", s))
}

/// Residual add `act(a + b)` (shapes must match).
pub fn add(rec: &mut Recorder<'_>, a: &Tensor, b: &Tensor, act: Activation) -> Result<Tensor> {
    a.check_gpu(rec.gpu(), "a")?;
    b.check_gpu(rec.gpu(), "b")?;
    same_shape("b", a.shape(), b.shape())?;
    let spec = ElementwiseSpec {
        mode: Mode::Add,
        act,
        gate: Activation::None,
        whole_planes: true,
    };
    record_elementwise(rec, spec, a, Some(b), None)
}

/// Channel-wise scaling `x * gate(s)` with `s` of shape `[N, C, 1, 1]`: the last step of
/// SE, ECA and CBAM's channel attention, with the gate activation fused into the pass.
pub fn scale_channels(
    rec: &mut Recorder<'_>,
    x: &Tensor,
    s: &Tensor,
    gate: Activation,
) -> Result<Tensor> {
    let xs = x.shape();
    check_scale(rec, x, s, [xs[0], xs[1], 1, 1])?;
    record_elementwise(rec, gated(Mode::ScaleChannels, gate), x, None, Some(s))
}

/// Channel-gated skip plus a branch, `x * gate(s) + branch` with `s` of shape
/// `[N, C, 1, 1]`, in one pass: the attention-gated skip connections of decoders such as
/// MediaPipe's selfie segmentation (the gate computed from `x + branch`).
pub fn scale_channels_add(
    rec: &mut Recorder<'_>,
    x: &Tensor,
    s: &Tensor,
    gate: Activation,
    branch: &Tensor,
) -> Result<Tensor> {
    scale_channels_add_then(rec, x, s, gate, branch, Activation::None)
}

/// [`scale_channels_add`] followed by an activation, `act(x * gate(s) + branch)`, in one
/// pass: the end of a squeeze-and-excitation residual block (SENet's `relu(se(x) +
/// residual)`).
pub fn scale_channels_add_then(
    rec: &mut Recorder<'_>,
    x: &Tensor,
    s: &Tensor,
    gate: Activation,
    branch: &Tensor,
    act: Activation,
) -> Result<Tensor> {
    let xs = x.shape();
    check_scale(rec, x, s, [xs[0], xs[1], 1, 1])?;
    branch.check_gpu(rec.gpu(), "branch")?;
    same_shape("branch", xs, branch.shape())?;
    let spec = ElementwiseSpec {
        act,
        ..gated(Mode::ScaleChannelsAdd, gate)
    };
    record_elementwise(rec, spec, x, Some(branch), Some(s))
}

/// `torch.lerp(start, end, gate(s))` with one weight per channel, `s` of shape
/// `[N, C, 1, 1]`: `end * t + start * (1 - t)`, `t = gate(s[n, c])`, in one pass. With
/// a sigmoid gate and `s` the difference of two paths' logits it is the softmax-weighted
/// sum of the two paths (Selective Kernel attention: `softmax([l0, l1])` is
/// `[sigmoid(l0 - l1), 1 - sigmoid(l0 - l1)]`).
pub fn lerp_channels(
    rec: &mut Recorder<'_>,
    start: &Tensor,
    end: &Tensor,
    s: &Tensor,
    gate: Activation,
) -> Result<Tensor> {
    let xs = start.shape();
    check_scale(rec, start, s, [xs[0], xs[1], 1, 1])?;
    end.check_gpu(rec.gpu(), "end")?;
    same_shape("end", xs, end.shape())?;
    record_elementwise(
        rec,
        gated(Mode::LerpChannels, gate),
        start,
        Some(end),
        Some(s),
    )
}

/// `act(x + s)` with `s` of shape `[N, C, 1, 1]`, one value per sample and channel added
/// to the whole plane, in one pass: a vision transformer's class token read out into every
/// pixel (DPT's `ReadoutAddBlock`, and `ReadoutConcatBlock`'s linear layer split into its
/// pixel and class-token halves, followed by its GELU).
pub fn add_channels(
    rec: &mut Recorder<'_>,
    x: &Tensor,
    s: &Tensor,
    act: Activation,
) -> Result<Tensor> {
    let xs = x.shape();
    check_scale(rec, x, s, [xs[0], xs[1], 1, 1])?;
    let spec = ElementwiseSpec {
        act,
        ..gated(Mode::AddChannels, Activation::None)
    };
    record_elementwise(rec, spec, x, None, Some(s))
}

/// `act(x + b)` with `b` of shape `[1, C, H, W]` added to each of `x`'s samples
/// (PyTorch's broadcasting of `x + b`): a vision transformer's position embedding.
pub fn add_broadcast(
    rec: &mut Recorder<'_>,
    x: &Tensor,
    b: &Tensor,
    act: Activation,
) -> Result<Tensor> {
    let xs = x.shape();
    x.check_gpu(rec.gpu(), "input")?;
    b.check_gpu(rec.gpu(), "b")?;
    same_shape("b", [1, xs[1], xs[2], xs[3]], b.shape())?;
    let spec = ElementwiseSpec {
        act,
        ..gated(Mode::AddBroadcast, Activation::None)
    };
    record_elementwise(rec, spec, x, None, Some(b))
}

/// Spatial scaling `x * gate(s)` with `s` of shape `[N, 1, H, W]` (CBAM's spatial
/// attention), the gate activation fused into the pass.
pub fn scale_spatial(
    rec: &mut Recorder<'_>,
    x: &Tensor,
    s: &Tensor,
    gate: Activation,
) -> Result<Tensor> {
    let xs = x.shape();
    check_scale(rec, x, s, [xs[0], 1, xs[2], xs[3]])?;
    record_elementwise(rec, gated(Mode::ScaleSpatial, gate), x, None, Some(s))
}

/// Checks that `x` and its gate logits `s` (of shape `expected`) live on the recorder's
/// device.
fn check_scale(rec: &Recorder<'_>, x: &Tensor, s: &Tensor, expected: [usize; 4]) -> Result<()> {
    x.check_gpu(rec.gpu(), "input")?;
    s.check_gpu(rec.gpu(), "scale")?;
    same_shape("scale", expected, s.shape())
}

/// Highway connection `y = H(x) * T + x * (1 - T)` with `T = sigmoid(t_logits)`; `h` is
/// `H(x)` and `t_logits` typically a 1x1 convolution of `x` (all the same shape).
pub fn highway(
    rec: &mut Recorder<'_>,
    x: &Tensor,
    h: &Tensor,
    t_logits: &Tensor,
) -> Result<Tensor> {
    let spec = gated(Mode::Highway, Activation::Sigmoid);
    record_ternary(rec, spec, x, ("h", h), ("t_logits", t_logits))
}

/// Residual attention `y = (1 + M(x)) * F(x) + x`; `mask` is `M(x)` (already in its
/// range, e.g. after a sigmoid), `f` is `F(x)`.
pub fn residual_attention(
    rec: &mut Recorder<'_>,
    x: &Tensor,
    f: &Tensor,
    mask: &Tensor,
) -> Result<Tensor> {
    let spec = gated(Mode::ResidualAttention, Activation::None);
    record_ternary(rec, spec, x, ("f", f), ("mask", mask))
}

/// The order of the two maps of [`channel_pool`]. CBAM implementations differ here and
/// nothing in their weights tells which one they use, so it is always stated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ChannelPoolOrder {
    /// `[mean, max]`: `torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)`,
    /// as timm's CBAM and most PyTorch ports write it.
    #[default]
    MeanMax,
    /// `[max, mean]`: the CBAM authors' `ChannelPool` (Jongchan/attention-module).
    MaxMean,
}

/// `MAX_FIRST` of `channel_pool.wgsl`.
impl Specialize for ChannelPoolOrder {
    fn write(&self, c: &mut Constants) {
        c.flag("MAX_FIRST", *self == ChannelPoolOrder::MaxMean);
    }
}

/// Per-pixel mean and maximum over channels, as `[N, 2, H, W]` in the given order (the
/// input of CBAM's spatial attention).
pub fn channel_pool(rec: &mut Recorder<'_>, x: &Tensor, order: ChannelPoolOrder) -> Result<Tensor> {
    x.check_gpu(rec.gpu(), "input")?;
    let s = x.shape();
    let y = rec.empty("output", [s[0], 2, s[2], s[3]])?;
    let total = s[0] * s[2] * s[3];
    let u = ChannelPoolParams {
        c: s[1] as u32,
        hw: (s[2] * s[3]) as u32,
        total: total as u32,
    };
    let args = Args::new().read("x", x).write("y", &y);
    // One invocation loops over every channel of its pixel.
    let launch = CHANNEL_POOL
        .launch(&order, &u)
        .threads(total)
        .loops(s[1] as u64);
    rec.run(&launch, args)?;
    Ok(y)
}

/// The dot product of `a` and `b` over the channels at every pixel, `act(sum_c a * b)`,
/// as an `[N, 1, H, W]` map (`act(torch.sum(a * b, dim=1, keepdim=True))`; shapes must
/// match), the product never stored: PIDNet's pixel attention (`PagFM`).
pub fn channel_dot(
    rec: &mut Recorder<'_>,
    a: &Tensor,
    b: &Tensor,
    act: Activation,
) -> Result<Tensor> {
    a.check_gpu(rec.gpu(), "a")?;
    b.check_gpu(rec.gpu(), "b")?;
    let s = a.shape();
    same_shape("b", s, b.shape())?;
    let y = rec.empty("output", channel_dot_shape(s))?;
    let total = s[0] * s[2] * s[3];
    let u = ChannelDotParams {
        c: s[1] as u32,
        hw: (s[2] * s[3]) as u32,
        total: total as u32,
    };
    let args = Args::new().read("a", a).read("b", b).write("y", &y);
    // One invocation loops over every channel of its pixel.
    let launch = CHANNEL_DOT
        .launch(&act, &u)
        .threads(total)
        .loops(s[1] as u64);
    rec.run(&launch, args)?;
    Ok(y)
}

/// The shape [`channel_dot`] gives inputs of shape `x`: one channel.
pub fn channel_dot_shape(x: [usize; 4]) -> [usize; 4] {
    [x[0], 1, x[2], x[3]]
}

/// Bytes moved and multiply-adds of [`channel_dot`] on inputs of shape `x`: both read
/// once, one channel written.
pub fn channel_dot_cost(x: [usize; 4]) -> Cost {
    let e = x.iter().product::<usize>() as u64;
    Cost {
        params: 0,
        macs: e,
        bytes: 4 * (2 * e + (x[0] * x[2] * x[3]) as u64),
    }
}

/// Bytes moved by an elementwise op over `inputs` tensors of `shape` writing one.
pub fn elementwise_cost(shape: [usize; 4], inputs: u64) -> Cost {
    let e = shape.iter().product::<usize>() as u64;
    Cost {
        params: 0,
        macs: e * inputs,
        bytes: 4 * e * (inputs + 1),
    }
}
