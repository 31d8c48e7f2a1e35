//! Channel and spatial attention: squeeze-and-excitation (torchvision's
//! `ops.misc.SqueezeExcitation`), ECA and CBAM. Each is recorded from the library's own
//! ops (pooling, 1x1 or 1-D convolution, a gated scale that applies the sigmoid in the
//! same pass that reads the feature map).

use ndarray::{Array4, ArrayView1, ArrayView4};

use super::channel::{add, channel_max_mean, scale_channels, scale_spatial};
use super::conv::{Conv2d, Conv2dParams};
use super::pool::GlobalPool;
use super::{Activation, Cost};
use crate::error::{invalid, Result};
use crate::gpu::{Gpu, Recorder, Tensor};

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
        if r == 0 || input_channels / r == 0 {
            return Err(invalid(
                "reduction",
                format!("ratio {r} leaves no channel of {input_channels}"),
            ));
        }
        Ok(Self::new(input_channels, input_channels / r))
    }

    /// Sets the activation after `fc1`.
    pub fn activation(mut self, a: Activation) -> Self {
        self.activation = a;
        self
    }

    /// Sets the gate activation.
    pub fn scale_activation(mut self, a: Activation) -> Self {
        self.scale_activation = a;
        self
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

/// Largest channel and squeeze counts of the fused `se_gate.wgsl` (its workgroup arrays);
/// larger blocks run as separate pool and 1x1 convolution dispatches.
const SE_FUSED_MAX: (usize, usize) = (2048, 512);

/// Values per sample up to which [`SeGateKernel::Fused`] is chosen: one workgroup reads
/// the whole feature map, which is quicker than a second dispatch while the map is small.
pub const SE_FUSED_MAX_ELEMENTS: usize = 65_536;

/// Fewest channels for which [`SeGateKernel::Fused`] is chosen: with fewer, most of its
/// single workgroup idles (measured on lavapipe: 16 or 24 channels of 32 x 32 took
/// milliseconds fused, a fraction of that pooled first).
pub const SE_FUSED_MIN_CHANNELS: usize = 32;

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
}

/// Squeeze-and-excitation on the GPU: the squeeze and excitation (one or two dispatches,
/// [`SeGateKernel`]), then the gated scale.
#[derive(Debug)]
pub struct SqueezeExcitation {
    params: SqueezeExcitationParams,
    fc1: Conv2d,
    fc2: Conv2d,
    /// fc1 / fc2 weights and biases as flat buffers for the fused pass.
    fused: [std::sync::Arc<crate::gpu::PooledBuffer>; 4],
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
        if params.squeeze_channels == 0 {
            return Err(invalid("squeeze_channels", "must be at least 1, got 0"));
        }
        let fc1 = Conv2d::new(gpu, params.fc1(), fc1_weight, Some(fc1_bias))?;
        let fc2 = Conv2d::new(gpu, params.fc2(), fc2_weight, Some(fc2_bias))?;
        let flat = |v: ndarray::ArrayView4<f32>| v.iter().copied().collect::<Vec<f32>>();
        let fused = [
            gpu.upload_f32("fc1.weight", &flat(fc1_weight))?,
            gpu.upload_f32("fc1.bias", &fc1_bias.to_vec())?,
            gpu.upload_f32("fc2.weight", &flat(fc2_weight))?,
            gpu.upload_f32("fc2.bias", &fc2_bias.to_vec())?,
        ];
        Ok(SqueezeExcitation {
            params,
            fc1,
            fc2,
            fused,
        })
    }

    /// Records the block: the squeeze and excitation in one dispatch and the gated scale
    /// in another (very wide blocks: pool, fc1, fc2 and scale as four).
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        let logits = self.excitation(rec, x)?;
        scale_channels(rec, x, &logits, self.params.scale_activation)
    }

    /// Records the squeeze and excitation only: the gate's logits `fc2(act(fc1(avgpool(x))))`
    /// of shape `[N, C, 1, 1]`, before the scale activation. For gates applied to another
    /// tensor than the one they are computed from (e.g.
    /// [`scale_channels_add`](super::channel::scale_channels_add)).
    pub fn excitation(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        let kernel = self.select_gate_kernel(x.shape());
        self.excitation_with(rec, x, None, kernel)
    }

    /// The gate logits of `a + b` (same shapes) without materialising the sum: the
    /// average pool of a sum is the sum of the pools, taken in the same pass.
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
    /// [`SE_FUSED_MAX_ELEMENTS`] values per sample, and at least
    /// [`SE_FUSED_MIN_CHANNELS`] channels: it pools one channel per invocation),
    /// [`SeGateKernel::PoolThenExcite`] otherwise (the pooling spread over a workgroup per
    /// plane), and
    /// [`SeGateKernel::PoolThenConvs`] for blocks wider than the excitation pass holds.
    pub fn select_gate_kernel(&self, shape: [usize; 4]) -> SeGateKernel {
        let (c, sq) = (self.params.input_channels, self.params.squeeze_channels);
        if c > SE_FUSED_MAX.0 || sq > SE_FUSED_MAX.1 {
            SeGateKernel::PoolThenConvs
        } else if c >= SE_FUSED_MIN_CHANNELS && c * shape[2] * shape[3] <= SE_FUSED_MAX_ELEMENTS {
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
        let s = x.shape();
        self.fc1.output_shape([s[0], s[1], 1, 1])?;
        let gpu = rec.gpu();
        x.check_gpu(gpu, "input")?;
        if let Some(b) = second {
            b.check_gpu(gpu, "b")?;
            super::same_shape("b", s, b.shape())?;
        }
        let (c, sq) = (self.params.input_channels, self.params.squeeze_channels);
        if kernel != SeGateKernel::PoolThenConvs && (c > SE_FUSED_MAX.0 || sq > SE_FUSED_MAX.1) {
            return Err(invalid(
                "kernel",
                format!(
                    "{kernel:?} holds at most {} channels squeezed to {}, got {c} and {sq}",
                    SE_FUSED_MAX.0, SE_FUSED_MAX.1
                ),
            ));
        }
        match kernel {
            SeGateKernel::Fused => self.record_gate(rec, x, second),
            SeGateKernel::PoolThenExcite => {
                let pooled = GlobalPool::Avg.record(rec, x, second)?;
                self.record_gate(rec, &pooled, None)
            }
            SeGateKernel::PoolThenConvs => {
                let pooled = GlobalPool::Avg.record(rec, x, second)?;
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
        let gpu = rec.gpu();
        let s = x.shape();
        let (c, sq) = (self.params.input_channels, self.params.squeeze_channels);
        let logits = rec.empty("gate", [s[0], c, 1, 1])?;
        let pipeline = gpu.pipeline(
            "se_gate.wgsl",
            &[],
            &[
                ("ACT", self.params.activation.shader_code()),
                ("SUM", if x2.is_some() { 1.0 } else { 0.0 }),
            ],
        )?;
        let [w1, b1, w2, b2] = &self.fused;
        let second = x2.unwrap_or(x).pooled();
        rec.dispatch(
            &pipeline,
            &[c as u32, sq as u32, (s[2] * s[3]) as u32, 0],
            &[
                x.pooled(),
                w1,
                b1,
                w2,
                b2,
                logits.pooled(),
                x.pooled(),
                second,
                second,
            ],
            s[0] as u64,
        )?;
        Ok(logits)
    }

    /// The parameters.
    pub fn params(&self) -> &SqueezeExcitationParams {
        &self.params
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

/// Efficient channel attention: global average pool, a 1-D convolution across channels
/// (kernel `k`, zero padding `(k - 1) / 2`, no bias), sigmoid, scale.
#[derive(Debug)]
pub struct Eca {
    channels: usize,
    conv: Conv2d,
}

impl Eca {
    /// Uploads an ECA block with the 1-D kernel `weight` (PyTorch's `Conv1d(1, 1, k)`
    /// weight flattened to length `k`); `k` must be odd and at most `channels`.
    pub fn new(gpu: &Gpu, channels: usize, weight: ArrayView1<f32>) -> Result<Self> {
        let k = weight.len();
        if k.is_multiple_of(2) || k > channels || channels == 0 {
            return Err(invalid(
                "kernel_size",
                format!("must be odd and at most the channel count {channels}, got {k}"),
            ));
        }
        // The 1-D convolution over channels is a (k x 1) convolution of the pooled
        // descriptor seen as [N, 1, C, 1].
        let params = Conv2dParams::new(1, 1, (k, 1))
            .padding(((k - 1) / 2, 0))
            .bias(false);
        let w = Array4::from_shape_vec([1, 1, k, 1], weight.to_vec()).expect("k values");
        Ok(Eca {
            channels,
            conv: Conv2d::new(gpu, params, w.view(), None)?,
        })
    }

    /// Records the block.
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        let s = x.shape();
        if s[1] != self.channels {
            return Err(crate::Error::ShapeMismatch {
                name: "input",
                expected: vec![s[0], self.channels, s[2], s[3]],
                actual: s.to_vec(),
            });
        }
        let pooled = GlobalPool::Avg
            .forward(rec, x)?
            .reshape([s[0], 1, s[1], 1])?;
        let logits = self
            .conv
            .forward(rec, &pooled)?
            .reshape([s[0], s[1], 1, 1])?;
        scale_channels(rec, x, &logits, Activation::Sigmoid)
    }

    /// Parameters (`k`), MACs and bytes.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let conv = self.conv.cost([input[0], 1, input[1], 1])?;
        Ok(GlobalPool::Avg.cost(input)? + conv + super::channel::elementwise_cost(input, 1))
    }
}

/// CBAM: channel attention (a shared MLP, `C -> C / r -> C` with ReLU, applied to the
/// global average and global max descriptors, summed, sigmoid, scale), then spatial
/// attention (a 7x7 convolution of the per-pixel [max, mean] over channels, sigmoid,
/// scale), in that order, as in the CBAM paper. The spatial convolution has a bias when
/// one is given; the reference code's batch norm after it can be folded into it
/// ([`fold_batch_norm`](super::norm::fold_batch_norm)).
#[derive(Debug)]
pub struct Cbam {
    mlp1: Conv2d,
    mlp2: Conv2d,
    spatial: Conv2d,
}

impl Cbam {
    /// Uploads a CBAM block. `mlp1_weight [C/r, C, 1, 1]` and `mlp2_weight [C, C/r, 1, 1]`
    /// with biases (PyTorch `Linear` weights `[out, in]` reshaped), `spatial_weight
    /// [1, 2, k, k]` (odd k, 7 in the paper) with an optional bias.
    pub fn new(
        gpu: &Gpu,
        mlp1: (ArrayView4<f32>, ArrayView1<f32>),
        mlp2: (ArrayView4<f32>, ArrayView1<f32>),
        spatial_weight: ArrayView4<f32>,
        spatial_bias: Option<ArrayView1<f32>>,
    ) -> Result<Self> {
        let (c, hidden) = (mlp1.0.shape()[1], mlp1.0.shape()[0]);
        let k = spatial_weight.shape()[2];
        if k.is_multiple_of(2) || spatial_weight.shape()[3] != k {
            return Err(invalid(
                "spatial_weight",
                format!(
                    "needs an odd square kernel, got {:?}",
                    spatial_weight.shape()
                ),
            ));
        }
        let spatial = Conv2dParams::new(2, 1, k)
            .padding(k / 2)
            .bias(spatial_bias.is_some());
        Ok(Cbam {
            mlp1: Conv2d::new(
                gpu,
                Conv2dParams::new(c, hidden, 1).activation(Activation::Relu),
                mlp1.0,
                Some(mlp1.1),
            )?,
            mlp2: Conv2d::new(gpu, Conv2dParams::new(hidden, c, 1), mlp2.0, Some(mlp2.1))?,
            spatial: Conv2d::new(gpu, spatial, spatial_weight, spatial_bias)?,
        })
    }

    /// Records the block.
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        let avg = GlobalPool::Avg.forward(rec, x)?;
        let max = GlobalPool::Max.forward(rec, x)?;
        let hidden_avg = self.mlp1.forward(rec, &avg)?;
        let a = self.mlp2.forward(rec, &hidden_avg)?;
        let hidden_max = self.mlp1.forward(rec, &max)?;
        let m = self.mlp2.forward(rec, &hidden_max)?;
        let logits = add(rec, &a, &m, Activation::None)?;
        let x1 = scale_channels(rec, x, &logits, Activation::Sigmoid)?;
        let pooled = channel_max_mean(rec, &x1)?;
        let spatial = self.spatial.forward(rec, &pooled)?;
        scale_spatial(rec, &x1, &spatial, Activation::Sigmoid)
    }

    /// Parameters, MACs and bytes on `input`.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let pooled = [input[0], input[1], 1, 1];
        let hidden = self.mlp1.params().out_channels;
        let mlp = self.mlp1.cost(pooled)? + self.mlp2.cost([input[0], hidden, 1, 1])?;
        let spatial = self.spatial.cost([input[0], 2, input[2], input[3]])?;
        Ok(GlobalPool::Avg.cost(input)?
            + GlobalPool::Max.cost(input)?
            + mlp
            // The MLP is shared: its MACs count twice, its parameters once.
            + Cost { params: 0, ..mlp }
            + spatial
            + super::channel::elementwise_cost(input, 2)
            + super::channel::elementwise_cost(input, 1))
    }
}
