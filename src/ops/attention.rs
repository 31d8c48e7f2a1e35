//! Channel and spatial attention: squeeze-and-excitation (torchvision's
//! `ops.misc.SqueezeExcitation`), ECA and CBAM. Each is recorded from the library's own
//! ops (pooling, 1x1 or 1-D convolution, a gated scale that applies the sigmoid in the
//! same pass that reads the feature map).

use std::sync::Arc;

use ndarray::{Array1, Array4, ArrayView1, ArrayView4};

use super::channel::{add, channel_pool, scale_channels, scale_spatial, ChannelPoolOrder};
use super::conv::{Conv2d, Conv2dParams};
use super::pool::{global_pool, global_pool_of_sum, GlobalPool};
use super::upsample::{upsample, UpsampleParams};
use super::{Activation, Cost};
use crate::error::{fail_if, Result};
use crate::gpu::{check_owner, Gpu, PooledBuffer, Recorder, Tensor};
use crate::launch::{
    loop_nest, read, read_opt, specialize, uniform, write, Args, Kernel, KernelInfo, Trip,
    LOOP_BUDGET,
};
use crate::ops::setters;
use crate::weights::{key, StateDict};

uniform! {
    /// `shaders/se_gate.wgsl`.
    pub(crate) struct SeParams {
        c: u32,
        s: u32,
        hw: u32,
        hw2: u32,
    }
}

specialize! {
    /// The constants of `se_gate.wgsl`: the activation after `fc1`, and whether the pooled
    /// vector is that of a sum.
    struct SeSpec { act: Activation, sum: bool => "SUM", vec: bool => "VEC" }
}

const SE_GATE: Kernel<SeParams, SeSpec> = Kernel::new(
    "se_gate.wgsl",
    &[
        read("x"),
        read_opt("weights"),
        write("gate"),
        read_opt("x2"),
        read_opt("weights4"),
    ],
);

uniform! {
    /// `shaders/radix_softmax_sum.wgsl`.
    pub(crate) struct RadixSumParams {
        c: u32,
        hw: u32,
        strips: u32,
        total: u32,
    }
}

specialize! {
    /// `RADIX` of `radix_softmax_sum.wgsl`.
    struct RadixSpec { radix: u32 => "RADIX" }
}

const RADIX_SUM: Kernel<RadixSumParams, RadixSpec> = Kernel::new(
    "radix_softmax_sum.wgsl",
    &[read("x"), read("logits"), write("y")],
);

/// Values of one plane per invocation in `radix_softmax_sum.wgsl` (`PX`).
const RADIX_SUM_PX: usize = 16;

/// The most splits [`radix_softmax_sum`] weighs (`MAX_RADIX` in its shader).
pub const MAX_RADIX: usize = 8;

/// The kernels of this family (the rest is composed of other families' ops).
pub(crate) const KERNELS: &[&dyn KernelInfo] = &[&SE_GATE, &RADIX_SUM];

/// The output shape of [`radix_softmax_sum`] for an input of shape `x` (`radix` splits of
/// its channels) and logits of shape `logits`: one split's channels.
pub fn radix_softmax_sum_shape(
    x: [usize; 4],
    logits: [usize; 4],
    radix: usize,
) -> Result<[usize; 4]> {
    crate::gpu::check_dims("input", &x)?;
    fail_if(radix == 0 || radix > MAX_RADIX, "radix", || {
        format!("radix must be 1 to {MAX_RADIX}, got {radix}")
    })?;
    fail_if(!x[1].is_multiple_of(radix), "radix", || {
        format!(
            "the input's {} channels do not split into {radix} equal splits",
            x[1]
        )
    })?;
    crate::ops::same_shape("logits", [x[0], x[1], 1, 1], logits)?;
    Ok([x[0], x[1] / radix, x[2], x[3]])
}

/// ResNeSt's split-attention weighting (timm's `RadixSoftmax` and the weighted sum of
/// `SplitAttn`) in one pass: `x` `[N, R * C, H, W]` holds `R = radix` splits of `C`
/// channels (split `r` in channels `r * C ..`), `logits` `[N, R * C, 1, 1]` one logit per
/// split and channel in the same order, and the output `[N, C, H, W]` is
/// `sum_r w_r * x[:, r * C + c]` with `w` the softmax across the splits of
/// `logits[:, r * C + c]`; at radix 1, as timm, `w_0 = sigmoid(logit)`. Radix 1 to
/// [`MAX_RADIX`].
pub fn radix_softmax_sum(
    rec: &mut Recorder<'_>,
    x: &Tensor,
    logits: &Tensor,
    radix: usize,
) -> Result<Tensor> {
    x.check_gpu(rec.gpu(), "input")?;
    logits.check_gpu(rec.gpu(), "logits")?;
    let shape = radix_softmax_sum_shape(x.shape(), logits.shape(), radix)?;
    let y = rec.empty("output", shape)?;
    let hw = shape[2] * shape[3];
    let strips = hw.div_ceil(RADIX_SUM_PX);
    let total = shape[0] * shape[1] * strips;
    let u = RadixSumParams {
        c: shape[1] as u32,
        hw: hw as u32,
        strips: strips as u32,
        total: total as u32,
    };
    let spec = RadixSpec {
        radix: radix as u32,
    };
    let args = Args::new()
        .read("x", x)
        .read("logits", logits)
        .write("y", &y);
    rec.run(&RADIX_SUM.launch(&spec, &u).threads(total), args)?;
    Ok(y)
}

/// What [`radix_softmax_sum`] costs on an input of shape `x`: one multiply-add per split
/// and output value; it reads `x` and the logits and writes one split's size.
pub fn radix_softmax_sum_cost(x: [usize; 4], radix: usize) -> Result<Cost> {
    let y = radix_softmax_sum_shape(x, [x[0], x[1], 1, 1], radix)?;
    let (input, output) = (x.iter().product::<usize>(), y.iter().product::<usize>());
    Ok(Cost {
        params: 0,
        macs: input as u64,
        bytes: 4 * (input + output + x[0] * x[1]) as u64,
    })
}

/// Parameters of torchvision's `SqueezeExcitation(input_channels, squeeze_channels,
/// activation=ReLU, scale_activation=Sigmoid)`: `x * scale_act(fc2(act(fc1(avgpool(x)))))`,
/// `fc1` and `fc2` 1x1 convolutions with bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SqueezeExcitationParams {
    /// Channels `C`.
    pub input_channels: usize,
    /// Channels after the squeeze.
    pub squeeze_channels: usize,
    /// Activation after `fc1` (default ReLU).
    pub activation: Activation,
    /// Gate activation (default sigmoid; MobileNetV3 uses hard-sigmoid).
    pub scale_activation: Activation,
}

impl SqueezeExcitationParams {
    /// torchvision's defaults (ReLU, sigmoid).
    pub fn new(input_channels: usize, squeeze_channels: usize) -> Self {
        SqueezeExcitationParams {
            input_channels,
            squeeze_channels,
            activation: Activation::Relu,
            scale_activation: Activation::Sigmoid,
        }
    }

    /// Squeeze by a reduction ratio `r`: `squeeze_channels = C / r`, an error when that
    /// leaves no channel.
    pub fn with_reduction(input_channels: usize, r: usize) -> Result<Self> {
        fail_if(r == 0 || input_channels / r == 0, "reduction", || {
            format!("ratio {r} leaves no channel of {input_channels}")
        })?;
        Ok(Self::new(input_channels, input_channels / r))
    }

    fn fc1(&self) -> Conv2dParams {
        Conv2dParams::new(self.input_channels, self.squeeze_channels, 1).activation(self.activation)
    }

    fn fc2(&self) -> Conv2dParams {
        Conv2dParams::new(self.squeeze_channels, self.input_channels, 1)
    }

    /// Parameters (both 1x1 convolutions with bias), MACs and bytes on `input`.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let pooled = [input[0], input[1], 1, 1];
        let scale = super::channel::elementwise_cost(input, 1);
        Ok(GlobalPool::Avg.cost(input)?
            + self.fc1().cost(pooled)?
            + self.fc2().cost([input[0], self.squeeze_channels, 1, 1])?
            + scale)
    }
}

setters!(SqueezeExcitationParams {
    /// Sets the activation after `fc1`.
    activation: Activation,
    /// Sets the gate activation.
    scale_activation: Activation,
});

/// Largest channel and squeeze counts of `se_gate.wgsl` (its workgroup arrays, 10 KiB);
/// larger blocks run as separate pool and 1x1 convolution dispatches.
const SE_FUSED_MAX: (usize, usize) = (2048, 512);

/// Values per sample up to which [`SeGateKernel::Fused`] is chosen: one workgroup reads
/// the whole feature map, which is quicker than a second dispatch while the map is small.
pub const SE_FUSED_MAX_ELEMENTS: usize = 65_536;

/// fc1 weights (channels x squeeze channels) from which CPU adapters compute the gate with
/// [`SeGateKernel::PoolThenConvs`]: `se_gate.wgsl` runs the excitation in one workgroup,
/// on one core of a CPU adapter, where the 1 x 1 convolutions spread over all of them
/// (lavapipe, kernel time, medians of 6 interleaved: 672 -> 168 at 7 x 7 to 16 x 16 and
/// 960 -> 240 at 16 x 16 0.6-0.65x the time of the better one-workgroup kernel, 3
/// dispatches instead of 1-2; 480 -> 120 and narrower 1.0-2.0x, so those keep it).
pub const SE_CONVS_MIN_WEIGHTS: usize = 100_000;

/// Loop iterations of one `se_gate.wgsl` invocation: the pooling of its channels (in
/// blocks), then its rows of fc1 and of fc2.
fn se_gate_loops(c: usize, s: usize, planes: &[usize]) -> u64 {
    let my = |n: usize| Trip::Uniform(n.div_ceil(64) as u64);
    // Invocations per channel, and rounds of channels.
    let lanes = (64 / c.max(1)).max(1);
    let rounds = Trip::Uniform(c.div_ceil(64 / lanes) as u64);
    let pool: u64 = planes
        .iter()
        .map(|&hw| {
            let (loads, block) = if hw.is_multiple_of(4) {
                (hw / 4, 64)
            } else {
                (hw, 256)
            };
            let mine = loads.div_ceil(lanes);
            let blocks = Trip::Uniform(mine.div_ceil(block) as u64);
            loop_nest(&[rounds, blocks, Trip::Uniform(block.min(mine) as u64)])
        })
        .sum::<u64>()
        + loop_nest(&[rounds, Trip::Uniform(lanes as u64)]);
    let fc1 = loop_nest(&[my(s), Trip::Uniform(c as u64)]);
    let fc2 = loop_nest(&[my(c), Trip::Uniform(s as u64)]);
    pool + fc1 + fc2
}

/// How a [`SqueezeExcitation`] computes its gate logits (see
/// [`SqueezeExcitation::select_gate_kernel`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeGateKernel {
    /// Squeeze and excitation in one dispatch, one workgroup per sample.
    Fused,
    /// A global average pool with a workgroup per plane, then the excitation in one
    /// workgroup per sample.
    PoolThenExcite,
    /// The pool, then `fc1` and `fc2` as 1x1 convolutions (any width).
    PoolThenConvs,
}

impl SeGateKernel {
    /// Every variant.
    pub const ALL: [SeGateKernel; 3] = [
        SeGateKernel::Fused,
        SeGateKernel::PoolThenExcite,
        SeGateKernel::PoolThenConvs,
    ];

    /// Whether this kernel can compute the gate of `params` (the excitation pass holds
    /// at most 2048 channels squeezed to 512, and its two matrix-vector products must
    /// stay within [`LOOP_BUDGET`]: 2048 squeezed to 512 does not).
    pub fn supports(self, params: &SqueezeExcitationParams) -> bool {
        let (c, s) = (params.input_channels, params.squeeze_channels);
        self == SeGateKernel::PoolThenConvs
            || (c <= SE_FUSED_MAX.0
                && s <= SE_FUSED_MAX.1
                && se_gate_loops(c, s, &[1]) <= LOOP_BUDGET)
    }
}

/// Squeeze-and-excitation on the GPU: the squeeze and excitation (one or two dispatches,
/// [`SeGateKernel`]), then the gated scale.
#[derive(Debug)]
pub struct SqueezeExcitation {
    gpu: Gpu,
    params: SqueezeExcitationParams,
    fc1: Conv2d,
    fc2: Conv2d,
    /// fc1's weight and bias, then fc2's, in one buffer: for `se_gate.wgsl` and for the
    /// kernels that compute the gate themselves (the fused inverted residual).
    packed: Arc<PooledBuffer>,
}

impl SqueezeExcitation {
    /// Uploads the block; weights with torchvision's names and shapes:
    /// `fc1.weight [S, C, 1, 1]`, `fc1.bias [S]`, `fc2.weight [C, S, 1, 1]`, `fc2.bias [C]`.
    pub fn new(
        gpu: &Gpu,
        params: SqueezeExcitationParams,
        fc1_weight: ArrayView4<f32>,
        fc1_bias: ArrayView1<f32>,
        fc2_weight: ArrayView4<f32>,
        fc2_bias: ArrayView1<f32>,
    ) -> Result<Self> {
        fail_if(
            params.input_channels == 0 || params.squeeze_channels == 0,
            "squeeze_channels",
            || {
                format!(
                    "input and squeeze channels must be at least 1, got {} and {}",
                    params.input_channels, params.squeeze_channels
                )
            },
        )?;
        let fc1 = Conv2d::new(gpu, params.fc1(), fc1_weight, Some(fc1_bias))?;
        let fc2 = Conv2d::new(gpu, params.fc2(), fc2_weight, Some(fc2_bias))?;
        let flat = |v: ArrayView4<f32>| v.iter().copied().collect::<Vec<f32>>();
        let parts = [
            flat(fc1_weight),
            fc1_bias.to_vec(),
            flat(fc2_weight),
            fc2_bias.to_vec(),
        ];
        let packed = gpu.upload_weights("se weights", &parts.concat())?;
        Ok(SqueezeExcitation {
            gpu: gpu.clone(),
            params,
            fc1,
            fc2,
            packed,
        })
    }

    /// fc1's weight `[S, C]` and bias, then fc2's weight `[C, S]` and bias, in one buffer.
    pub(crate) fn packed(&self) -> &Arc<PooledBuffer> {
        &self.packed
    }

    /// Loads `{prefix}.fc1.weight`, `.fc1.bias`, `.fc2.weight`, `.fc2.bias` (torchvision's
    /// `SqueezeExcitation`).
    pub fn load(
        gpu: &Gpu,
        params: SqueezeExcitationParams,
        sd: &StateDict,
        prefix: &str,
    ) -> Result<Self> {
        let w = SeWeights::load(sd, params, &key(prefix, "fc1"), &key(prefix, "fc2"))?;
        w.upload(gpu, params)
    }

    /// Records the block: the squeeze and excitation in one dispatch and the gated scale
    /// in another (large maps: pool, excitation and scale as three; very wide blocks,
    /// and on CPU adapters wide ones: pool, fc1, fc2 and scale as four; see
    /// [`select_gate_kernel`](Self::select_gate_kernel)).
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        let kernel = self.select_gate_kernel(x.shape());
        self.forward_with(rec, x, kernel)
    }

    /// Records the squeeze and excitation only: the gate's logits `fc2(act(fc1(avgpool(x))))`
    /// of shape `[N, C, 1, 1]`, before the scale activation. For gates applied to another
    /// tensor than the one they are computed from (e.g.
    /// [`scale_channels_add`](super::channel::scale_channels_add)), and to read the
    /// attention itself.
    pub fn excitation(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        let kernel = self.select_gate_kernel(x.shape());
        self.excitation_with(rec, x, None, kernel)
    }

    /// The gate logits of `avgpool(a) + avgpool(b)` for `b` with `a`'s batch and channels:
    /// for maps of one size, the gate of `a + b` without materialising the sum (the
    /// average pool of a sum is the sum of the pools, taken in the same pass); `b` may
    /// have another size, e.g. a map whose 2x bilinear resize is added to `a` (the resize
    /// keeps each plane's mean, so the resized map need not exist either).
    pub fn excitation_of_sum(
        &self,
        rec: &mut Recorder<'_>,
        a: &Tensor,
        b: &Tensor,
    ) -> Result<Tensor> {
        let kernel = self.select_gate_kernel(a.shape());
        self.excitation_with(rec, a, Some(b), kernel)
    }

    /// The gate kernel for an input of `shape`: [`SeGateKernel::Fused`] while one
    /// workgroup per sample can read the feature map quickly (at most
    /// [`SE_FUSED_MAX_ELEMENTS`] values per sample; invocations share a channel when there
    /// are fewer channels than invocations),
    /// [`SeGateKernel::PoolThenExcite`] otherwise (the pooling spread over a workgroup per
    /// plane), and [`SeGateKernel::PoolThenConvs`] for blocks wider than the excitation
    /// pass holds, and on CPU adapters for those of at least [`SE_CONVS_MIN_WEIGHTS`] fc1
    /// weights.
    pub fn select_gate_kernel(&self, shape: [usize; 4]) -> SeGateKernel {
        let c = self.params.input_channels;
        let wide = c * self.params.squeeze_channels >= SE_CONVS_MIN_WEIGHTS;
        if !SeGateKernel::Fused.supports(&self.params) || (self.gpu.caps().cpu && wide) {
            SeGateKernel::PoolThenConvs
        } else if c * shape[2] * shape[3] <= SE_FUSED_MAX_ELEMENTS
            && se_gate_loops(c, self.params.squeeze_channels, &[shape[2] * shape[3]]) <= LOOP_BUDGET
        {
            SeGateKernel::Fused
        } else {
            SeGateKernel::PoolThenExcite
        }
    }

    /// [`SqueezeExcitation::forward`] with a chosen gate kernel.
    pub fn forward_with(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        kernel: SeGateKernel,
    ) -> Result<Tensor> {
        let logits = self.excitation_with(rec, x, None, kernel)?;
        scale_channels(rec, x, &logits, self.params.scale_activation)
    }

    /// The gate logits of `x` (or of `x + second`) with a chosen kernel; an error when the
    /// block is too wide for `Fused` or `PoolThenExcite`.
    pub fn excitation_with(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        second: Option<&Tensor>,
        kernel: SeGateKernel,
    ) -> Result<Tensor> {
        let gpu = rec.gpu();
        x.check_gpu(gpu, "input")?;
        check_owner(self.gpu.id(), gpu, "layer")?;
        let s = x.shape();
        self.fc1.output_shape([s[0], s[1], 1, 1])?;
        if let Some(b) = second {
            b.check_gpu(gpu, "b")?;
            let t = b.shape();
            crate::gpu::check_dims("b", &t)?;
            super::same_shape("b", [s[0], s[1], t[2], t[3]], t)?;
        }
        fail_if(!kernel.supports(&self.params), "kernel", || {
            format!(
                "{kernel:?} holds at most {} channels squeezed to {} (and 2048 squeezed to \
                 512 take too many loop iterations), got {} and {}",
                SE_FUSED_MAX.0,
                SE_FUSED_MAX.1,
                self.params.input_channels,
                self.params.squeeze_channels
            )
        })?;
        // Planes of two sizes: the pooling pass takes the larger (this one), the gate pass
        // pools the second itself; the convolutions need both pooled first.
        if let Some(b) = second.filter(|b| b.shape() != s) {
            if kernel == SeGateKernel::Fused {
                return self.record_gate(rec, x, Some(b));
            }
            let pooled = global_pool_of_sum(rec, GlobalPool::Avg, x, None)?;
            return match kernel {
                SeGateKernel::PoolThenExcite => self.record_gate(rec, &pooled, Some(b)),
                _ => {
                    let pooled_b = global_pool_of_sum(rec, GlobalPool::Avg, b, None)?;
                    let sum = global_pool_of_sum(rec, GlobalPool::Avg, &pooled, Some(&pooled_b))?;
                    let squeezed = self.fc1.forward(rec, &sum)?;
                    self.fc2.forward(rec, &squeezed)
                }
            };
        }
        match kernel {
            SeGateKernel::Fused => self.record_gate(rec, x, second),
            SeGateKernel::PoolThenExcite => {
                let pooled = global_pool_of_sum(rec, GlobalPool::Avg, x, second)?;
                self.record_gate(rec, &pooled, None)
            }
            SeGateKernel::PoolThenConvs => {
                let pooled = global_pool_of_sum(rec, GlobalPool::Avg, x, second)?;
                let squeezed = self.fc1.forward(rec, &pooled)?;
                self.fc2.forward(rec, &squeezed)
            }
        }
    }

    /// `se_gate.wgsl`: squeeze (over H x W, 1 x 1 for a pooled input) and excitation.
    fn record_gate(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        x2: Option<&Tensor>,
    ) -> Result<Tensor> {
        let s = x.shape();
        let (c, sq) = (self.params.input_channels, self.params.squeeze_channels);
        let logits = rec.empty("gate", [s[0], c, 1, 1])?;
        // Rows of whole vec4s; the packed buffer then holds whole vec4s too.
        let vec = c.is_multiple_of(4) && sq.is_multiple_of(4);
        let spec = SeSpec {
            act: self.params.activation,
            sum: x2.is_some(),
            vec,
        };
        let hw2 = x2.map_or(0, |t| t.shape()[2] * t.shape()[3]);
        let u = SeParams {
            c: c as u32,
            s: sq as u32,
            hw: (s[2] * s[3]) as u32,
            hw2: hw2 as u32,
        };
        let args = Args::new()
            .read("x", x)
            .read(if vec { "weights4" } else { "weights" }, &self.packed)
            .write("gate", &logits)
            .read_opt("x2", x2);
        let launch = SE_GATE
            .launch(&spec, &u)
            .workgroups(s[0])
            .loops(se_gate_loops(c, sq, &[s[2] * s[3], hw2]));
        rec.run(&launch, args)?;
        Ok(logits)
    }

    /// The parameters.
    pub fn params(&self) -> &SqueezeExcitationParams {
        &self.params
    }

    /// Parameters, MACs and bytes on `input`.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        self.params.cost(input)
    }
}

/// SE weights on the host: `fc1` and `fc2` 1x1 convolution weights and biases (kept for
/// the blocks' CPU reference).
#[derive(Clone, Debug)]
pub(crate) struct SeWeights {
    pub(crate) weights: [Array4<f32>; 2],
    pub(crate) biases: [Array1<f32>; 2],
}

impl SeWeights {
    /// `{fc1}.weight [S, C, 1, 1]`, `{fc1}.bias`, `{fc2}.weight [C, S, 1, 1]`, `{fc2}.bias`.
    pub(crate) fn load(
        sd: &StateDict,
        params: SqueezeExcitationParams,
        fc1: &str,
        fc2: &str,
    ) -> Result<Self> {
        let (c, s) = (params.input_channels, params.squeeze_channels);
        Ok(SeWeights {
            weights: [
                sd.get4(&key(fc1, "weight"), [s, c, 1, 1])?,
                sd.get4(&key(fc2, "weight"), [c, s, 1, 1])?,
            ],
            biases: [
                sd.get1(&key(fc1, "bias"), s)?,
                sd.get1(&key(fc2, "bias"), c)?,
            ],
        })
    }

    pub(crate) fn upload(
        &self,
        gpu: &Gpu,
        params: SqueezeExcitationParams,
    ) -> Result<SqueezeExcitation> {
        let [w1, w2] = &self.weights;
        let [b1, b2] = &self.biases;
        SqueezeExcitation::new(gpu, params, w1.view(), b1.view(), w2.view(), b2.view())
    }

    pub(crate) fn fc(&self) -> [(ArrayView4<'_, f32>, ArrayView1<'_, f32>); 2] {
        [0, 1].map(|i| (self.weights[i].view(), self.biases[i].view()))
    }
}

/// ECA's kernel size for `channels` (gamma = 2, b = 1), as in the ECA reference code:
/// `t = int(|(log2(C) + b) / gamma|)`, `k = t` if odd else `t + 1`.
pub fn eca_kernel_size(channels: usize) -> usize {
    let t = (((channels as f64).log2() + 1.0) / 2.0).abs() as usize;
    if !t.is_multiple_of(2) {
        t
    } else {
        t + 1
    }
}

/// Parameters of efficient channel attention (the ECA reference code's `eca_layer`):
/// global average pool, a 1-D convolution across channels (kernel `k`, zero padding
/// `(k - 1) / 2`, no bias), sigmoid, scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EcaParams {
    /// Channels `C`.
    pub channels: usize,
    /// The 1-D kernel size (odd; it may exceed `C`, whose padding then covers it, as in
    /// the reference code's `k_size=3` on one or two channels).
    pub kernel_size: usize,
}

impl EcaParams {
    /// ECA for `channels` with the kernel size of [`eca_kernel_size`].
    pub fn new(channels: usize) -> Self {
        EcaParams {
            channels,
            kernel_size: eca_kernel_size(channels.max(1)),
        }
    }

    /// Checks the parameters on their own.
    pub fn validate(&self) -> Result<()> {
        let (c, k) = (self.channels, self.kernel_size);
        fail_if(c == 0, "channels", || "must be at least 1, got 0")?;
        fail_if(k.is_multiple_of(2), "kernel_size", || {
            format!("must be odd, got {k}")
        })?;
        Ok(())
    }

    /// The 1-D convolution over channels as a `(k x 1)` convolution of the pooled
    /// descriptor seen as `[N, 1, C, 1]`.
    fn conv(&self) -> Conv2dParams {
        let k = self.kernel_size;
        Conv2dParams::new(1, 1, (k, 1))
            .padding(((k - 1) / 2, 0))
            .bias(false)
    }
}

setters!(EcaParams {
    /// Sets the kernel size (the reference code's `k_size`).
    kernel_size: usize,
});

/// Efficient channel attention on the GPU.
#[derive(Debug)]
pub struct Eca {
    params: EcaParams,
    conv: Conv2d,
}

impl Eca {
    /// Uploads an ECA block with the 1-D kernel `weight` (PyTorch's `Conv1d(1, 1, k)`
    /// weight flattened to length `k`).
    pub fn new(gpu: &Gpu, params: EcaParams, weight: ArrayView1<f32>) -> Result<Self> {
        params.validate()?;
        let k = params.kernel_size;
        if weight.len() != k {
            return Err(crate::Error::ShapeMismatch {
                name: "weight",
                expected: vec![1, 1, k],
                actual: vec![weight.len()],
            });
        }
        let w = Array4::from_shape_vec([1, 1, k, 1], weight.to_vec()).expect("k values");
        Ok(Eca {
            params,
            conv: Conv2d::new(gpu, params.conv(), w.view(), None)?,
        })
    }

    /// Loads `{prefix}.conv.weight` (`[1, 1, k]`), the reference code's name.
    pub fn load(gpu: &Gpu, params: EcaParams, sd: &StateDict, prefix: &str) -> Result<Self> {
        let w = Self::load_weight(params, sd, prefix)?;
        Self::new(gpu, params, w.view())
    }

    /// The 1-D kernel `{prefix}.conv.weight` (`[1, 1, k]`) flattened to length `k`, the
    /// parameters checked first.
    pub(crate) fn load_weight(
        params: EcaParams,
        sd: &StateDict,
        prefix: &str,
    ) -> Result<Array1<f32>> {
        params.validate()?;
        let w = sd.get(&key(prefix, "conv.weight"), &[1, 1, params.kernel_size])?;
        Ok(Array1::from_iter(w.iter().copied()))
    }

    /// The parameters.
    pub fn params(&self) -> &EcaParams {
        &self.params
    }

    /// Records the block.
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        let logits = self.logits(rec, x)?;
        scale_channels(rec, x, &logits, Activation::Sigmoid)
    }

    /// Records the gate's logits `conv1d(avgpool(x))`, `[N, C, 1, 1]`, for a pass after
    /// it to scale with (a block's end joining its skip in the same pass).
    pub fn logits(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        let s = x.shape();
        crate::ops::check_channels(s, self.params.channels)?;
        let pooled = global_pool(rec, GlobalPool::Avg, x)?.reshape([s[0], 1, s[1], 1])?;
        self.conv.forward(rec, &pooled)?.reshape([s[0], s[1], 1, 1])
    }

    /// Parameters (`k`), MACs and bytes.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let conv = self.conv.cost([input[0], 1, input[1], 1])?;
        Ok(GlobalPool::Avg.cost(input)? + conv + super::channel::elementwise_cost(input, 1))
    }
}

/// Parameters of CBAM (Woo et al., 2018): channel attention (a shared MLP `C -> C / r ->
/// C` with ReLU applied to the global average and global max descriptors, summed,
/// sigmoid, scale), then spatial attention (a `k x k` convolution of the per-pixel mean
/// and max over channels, sigmoid, scale).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CbamParams {
    /// Channels `C` (`gate_channels`).
    pub gate_channels: usize,
    /// Reduction ratio `r` of the MLP (default 16); its hidden width is `C / r`.
    pub reduction_ratio: usize,
    /// Spatial kernel size (odd, default 7).
    pub kernel_size: usize,
    /// The order of the spatial attention's two input maps: implementations differ and
    /// their weights do not say, so it has no default.
    pub pool_order: ChannelPoolOrder,
    /// Whether the MLP's layers have biases (default true, as `nn.Linear`).
    pub mlp_bias: bool,
    /// Whether the spatial convolution has a bias (default false).
    pub spatial_bias: bool,
}

impl CbamParams {
    /// CBAM over `gate_channels` with the spatial maps in `pool_order`; reduction 16,
    /// kernel 7, MLP biases, no spatial bias.
    pub fn new(gate_channels: usize, pool_order: ChannelPoolOrder) -> Self {
        CbamParams {
            gate_channels,
            reduction_ratio: 16,
            kernel_size: 7,
            pool_order,
            mlp_bias: true,
            spatial_bias: false,
        }
    }

    /// The MLP's hidden width, `C / r` (rounded down, as `gate_channels //
    /// reduction_ratio` in the authors' code). It may be 0 (`C < r`): PyTorch's
    /// `Linear(C, 0)` then gives an empty vector and `Linear(0, C)` its bias alone, so the
    /// channel attention is `sigmoid(2 * bias)` whatever the input (0.5 without biases).
    pub fn hidden(&self) -> usize {
        self.gate_channels / self.reduction_ratio.max(1)
    }

    /// Checks the parameters on their own.
    pub fn validate(&self) -> Result<()> {
        fail_if(self.reduction_ratio == 0, "reduction_ratio", || {
            format!(
                "must be positive, got 0 (gate_channels {})",
                self.gate_channels
            )
        })?;
        fail_if(self.gate_channels == 0, "gate_channels", || {
            "must be positive, got 0".to_string()
        })?;
        fail_if(self.kernel_size.is_multiple_of(2), "kernel_size", || {
            format!("must be odd, got {}", self.kernel_size)
        })?;
        Ok(())
    }

    /// The MLP's layers as 1x1 convolutions.
    pub fn mlp(&self) -> [Conv2dParams; 2] {
        let (c, h) = (self.gate_channels, self.hidden());
        [
            Conv2dParams::new(c, h, 1)
                .bias(self.mlp_bias)
                .activation(Activation::Relu),
            Conv2dParams::new(h, c, 1).bias(self.mlp_bias),
        ]
    }

    /// The spatial convolution (2 -> 1 channels, `k x k`, padding `k / 2`).
    pub fn spatial(&self) -> Conv2dParams {
        let k = self.kernel_size;
        Conv2dParams::new(2, 1, k)
            .padding(k / 2)
            .bias(self.spatial_bias)
    }
}

setters!(CbamParams {
    /// Sets the reduction ratio.
    reduction_ratio: usize,
    /// Sets the spatial kernel size.
    kernel_size: usize,
    /// Enables or disables the MLP biases.
    mlp_bias: bool,
    /// Enables or disables the spatial convolution's bias.
    spatial_bias: bool,
});

/// CBAM's outputs with its attention maps (after their sigmoids).
#[derive(Debug)]
pub struct CbamOutput {
    /// The attended feature map.
    pub output: Tensor,
    /// Channel attention `[N, C, 1, 1]`.
    pub channel_attention: Tensor,
    /// Spatial attention `[N, 1, H, W]`.
    pub spatial_attention: Tensor,
}

/// CBAM on the GPU.
#[derive(Debug)]
pub struct Cbam {
    params: CbamParams,
    mlp: ChannelMlp,
    spatial: Conv2d,
}

/// CBAM's shared MLP.
#[derive(Debug)]
enum ChannelMlp {
    /// `C -> C / r -> C` as two 1x1 convolutions.
    Layers(Box<(Conv2d, Conv2d)>),
    /// A hidden width of 0 ([`CbamParams::hidden`]): the channel attention does not depend
    /// on the input, `sigmoid(2 * bias)` per channel, kept as `[1, 1, 1, C]`.
    Constant(Tensor),
}

impl Cbam {
    /// Uploads a CBAM block. `mlp1 [C/r, C, 1, 1]` and `mlp2 [C, C/r, 1, 1]` (PyTorch
    /// `Linear` weights `[out, in]` reshaped, or 1x1 convolution weights) with biases when
    /// `params.mlp_bias`; `spatial_weight [1, 2, k, k]` with a bias when
    /// `params.spatial_bias` (the reference code's batch norm after it can be folded in
    /// with [`fold_batch_norm`](super::norm::fold_batch_norm)).
    pub fn new(
        gpu: &Gpu,
        params: CbamParams,
        mlp1: (ArrayView4<f32>, Option<ArrayView1<f32>>),
        mlp2: (ArrayView4<f32>, Option<ArrayView1<f32>>),
        spatial_weight: ArrayView4<f32>,
        spatial_bias: Option<ArrayView1<f32>>,
    ) -> Result<Self> {
        params.validate()?;
        let [p1, p2] = params.mlp();
        let mlp = if params.hidden() == 0 {
            ChannelMlp::Constant(constant_channel_attention(gpu, &params, mlp1, mlp2)?)
        } else {
            ChannelMlp::Layers(Box::new((
                Conv2d::new(gpu, p1, mlp1.0, mlp1.1)?,
                Conv2d::new(gpu, p2, mlp2.0, mlp2.1)?,
            )))
        };
        Ok(Cbam {
            params,
            mlp,
            spatial: Conv2d::new(gpu, params.spatial(), spatial_weight, spatial_bias)?,
        })
    }

    /// Loads the CBAM authors' module names (Jongchan/attention-module `CBAM`):
    /// `{prefix}.ChannelGate.mlp.1` and `.mlp.3` (`nn.Linear`), and
    /// `{prefix}.SpatialGate.spatial.conv` with its batch norm `.spatial.bn` when the
    /// state dict has one (folded into the convolution, which then has a bias).
    pub fn load(gpu: &Gpu, params: CbamParams, sd: &StateDict, prefix: &str) -> Result<Self> {
        params.validate()?;
        let (c, h) = (params.gate_channels, params.hidden());
        let k = |n: &str| key(prefix, n);
        let linear =
            |name: &str, out: usize, inp: usize| -> Result<(Array4<f32>, Option<Array1<f32>>)> {
                let w = sd.get(&k(&format!("{name}.weight")), &[out, inp])?;
                let w = Array4::from_shape_vec([out, inp, 1, 1], w.iter().copied().collect())
                    .expect("out * inp values");
                let b = if params.mlp_bias {
                    Some(sd.get1(&k(&format!("{name}.bias")), out)?)
                } else {
                    None
                };
                Ok((w, b))
            };
        let (w1, b1) = linear("ChannelGate.mlp.1", h, c)?;
        let (w2, b2) = linear("ChannelGate.mlp.3", c, h)?;
        let ks = params.kernel_size;
        let conv = k("SpatialGate.spatial.conv");
        let sw = sd.get4(&key(&conv, "weight"), [1, 2, ks, ks])?;
        let sb = if params.spatial_bias {
            Some(sd.get1(&key(&conv, "bias"), 1)?)
        } else {
            None
        };
        let bn = k("SpatialGate.spatial.bn");
        let (sw, sb, params) = if sd.contains(&key(&bn, "running_mean")) {
            let g = |n: &str| sd.get1(&key(&bn, n), 1);
            let (w, b) = super::norm::fold_batch_norm(
                sw.view(),
                sb.as_ref().map(|b| b.view()),
                g("weight")?.view(),
                g("bias")?.view(),
                g("running_mean")?.view(),
                g("running_var")?.view(),
                1e-5,
            )?;
            (w, Some(b), params.spatial_bias(true))
        } else {
            (sw, sb, params)
        };
        Self::new(
            gpu,
            params,
            (w1.view(), b1.as_ref().map(|b| b.view())),
            (w2.view(), b2.as_ref().map(|b| b.view())),
            sw.view(),
            sb.as_ref().map(|b| b.view()),
        )
    }

    /// The parameters.
    pub fn params(&self) -> &CbamParams {
        &self.params
    }

    /// Records the block.
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_with_attention(rec, x)?.output)
    }

    /// Records the block and its two attention maps (after their sigmoids), as the
    /// modules' intermediate results in PyTorch.
    pub fn forward_with_attention(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<CbamOutput> {
        let s = x.shape();
        crate::ops::check_channels(s, self.params.gate_channels)?;
        let channel_attention = match &self.mlp {
            ChannelMlp::Layers(layers) => {
                let (mlp1, mlp2) = &**layers;
                let avg = global_pool(rec, GlobalPool::Avg, x)?;
                let max = global_pool(rec, GlobalPool::Max, x)?;
                let hidden_avg = mlp1.forward(rec, &avg)?;
                let a = mlp2.forward(rec, &hidden_avg)?;
                let hidden_max = mlp1.forward(rec, &max)?;
                let m = mlp2.forward(rec, &hidden_max)?;
                add(rec, &a, &m, Activation::Sigmoid)?
            }
            ChannelMlp::Constant(row) => {
                // The row repeated for every sample (a nearest resize copies it exactly).
                let rows = UpsampleParams::nearest().size((s[0], s[1]));
                upsample(rec, &rows, row)?.reshape([s[0], s[1], 1, 1])?
            }
        };
        let x1 = scale_channels(rec, x, &channel_attention, Activation::None)?;
        let pooled = channel_pool(rec, &x1, self.params.pool_order)?;
        let logits = self.spatial.forward(rec, &pooled)?;
        let spatial_attention = super::channel::activation(rec, &logits, Activation::Sigmoid)?;
        let output = scale_spatial(rec, &x1, &spatial_attention, Activation::None)?;
        Ok(CbamOutput {
            output,
            channel_attention,
            spatial_attention,
        })
    }

    /// Parameters, MACs and bytes on `input`.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let pooled = [input[0], input[1], 1, 1];
        let hidden = self.params.hidden();
        let channel = match &self.mlp {
            ChannelMlp::Layers(layers) => {
                let (mlp1, mlp2) = &**layers;
                let mlp = mlp1.cost(pooled)? + mlp2.cost([input[0], hidden, 1, 1])?;
                GlobalPool::Avg.cost(input)?
                    + GlobalPool::Max.cost(input)?
                    + mlp
                    // The MLP is shared: its MACs count twice, its parameters once.
                    + Cost { params: 0, ..mlp }
            }
            ChannelMlp::Constant(_) => {
                let c = self.params.gate_channels as u64;
                Cost {
                    params: if self.params.mlp_bias { c } else { 0 },
                    macs: 0,
                    bytes: 4 * c * (1 + input[0] as u64),
                }
            }
        };
        let spatial = self.spatial.cost([input[0], 2, input[2], input[3]])?;
        Ok(channel
            + spatial
            + super::channel::elementwise_cost(input, 2)
            + super::channel::elementwise_cost(input, 1))
    }
}

/// The channel attention of a CBAM whose MLP has no hidden channel, `[1, 1, 1, C]`:
/// `sigmoid(b + b)` with `b` the second layer's bias (0 without biases), the same for the
/// average and the max descriptor. Both layers' weights must still have their (empty)
/// shapes.
fn constant_channel_attention(
    gpu: &Gpu,
    params: &CbamParams,
    mlp1: (ArrayView4<f32>, Option<ArrayView1<f32>>),
    mlp2: (ArrayView4<f32>, Option<ArrayView1<f32>>),
) -> Result<Tensor> {
    check_empty_mlp(params, mlp1, mlp2)?;
    let c = params.gate_channels;
    let attention = Array4::from_shape_fn([1, 1, 1, c], |(_, _, _, k)| {
        let b = mlp2.1.as_ref().map_or(0.0, |b| b[k]);
        1.0 / (1.0 + (-(b + b)).exp())
    });
    gpu.upload(attention.view())
}

/// Checks the shapes of a CBAM MLP without hidden channels: empty weights and, with
/// `mlp_bias`, no first bias and a second of `gate_channels` values.
pub(crate) fn check_empty_mlp(
    params: &CbamParams,
    mlp1: (ArrayView4<f32>, Option<ArrayView1<f32>>),
    mlp2: (ArrayView4<f32>, Option<ArrayView1<f32>>),
) -> Result<()> {
    let c = params.gate_channels;
    crate::ops::same_dims("mlp1 weight", &[0, c, 1, 1], mlp1.0.shape())?;
    crate::ops::same_dims("mlp2 weight", &[c, 0, 1, 1], mlp2.0.shape())?;
    let bias_len = |b: &Option<ArrayView1<f32>>| b.as_ref().map(|b| b.len());
    let want = |len: usize| params.mlp_bias.then_some(len);
    fail_if(bias_len(&mlp1.1) != want(0), "mlp1 bias", || {
        format!("expected {:?} values, got {:?}", want(0), bias_len(&mlp1.1))
    })?;
    fail_if(bias_len(&mlp2.1) != want(c), "mlp2 bias", || {
        format!("expected {:?} values, got {:?}", want(c), bias_len(&mlp2.1))
    })
}
