//! Blocks built from the ops, loaded from PyTorch / torchvision state dicts under their
//! own names: ResNet bottleneck (and ResNeXt), MobileNetV2 and MobileNetV3 inverted
//! residuals, the ShuffleNetV2 unit, DeepLabV3's ASPP and DenseNet's dense block.
//!
//! Each block is built for inference: every batch norm is folded into the convolution
//! before it ([`fold_batch_norm`]), so a conv + BN + activation is one dispatch. Each
//! block also keeps its unfolded weights and has a CPU [`reference`](Bottleneck::reference)
//! forward made of the reference ops (convolution, then batch norm, then activation), which
//! is what the GPU forward is tested against.

mod layers;
mod networks;
mod segmentation;
mod selfie;

pub use layers::{
    Bottleneck, BottleneckConfig, DepthwiseSeparableBlock, DepthwiseSeparableConfig, EncoderOutput,
    InvertedResidual, InvertedResidualConfig, MobileNetV3Block, MobileNetV3Config, SegNetDecoder,
    SegNetEncoder, ShuffleV1Config, ShuffleV1Unit, ShuffleV2Config, ShuffleV2Unit,
};
pub use networks::{
    make_divisible, LrAsppMobileNetV3, MobileNetV2Features, MobileNetV3Arch, MobileNetV3Features,
    MobileNetV3FeaturesConfig,
};
pub use segmentation::{Aspp, DenseBlock, FcnHead};
pub use selfie::SelfieSegmentation;

use ndarray::{Array1, Array4, ArrayView1, ArrayView4};

use crate::error::Result;
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::ops::attention::{SqueezeExcitation, SqueezeExcitationParams};
use crate::ops::conv::{Conv2d, Conv2dParams, ResidualJoin};
use crate::ops::norm::fold_batch_norm;
use crate::ops::{Activation, Cost};
use crate::reference;
use crate::weights::StateDict;

/// `name` under `prefix` in a state dict: `prefix.name`, or `name` for an empty prefix.
fn key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Batch-norm state as PyTorch stores it.
#[derive(Clone, Debug)]
struct BnState {
    gamma: Array1<f32>,
    beta: Array1<f32>,
    mean: Array1<f32>,
    var: Array1<f32>,
    eps: f32,
}

impl BnState {
    fn load(sd: &StateDict, prefix: &str, channels: usize, eps: f32) -> Result<Self> {
        Ok(BnState {
            gamma: sd.get1(&format!("{prefix}.weight"), channels)?,
            beta: sd.get1(&format!("{prefix}.bias"), channels)?,
            mean: sd.get1(&format!("{prefix}.running_mean"), channels)?,
            var: sd.get1(&format!("{prefix}.running_var"), channels)?,
            eps,
        })
    }
}

/// A convolution, optionally followed by an inference batch norm, then an activation:
/// torchvision's `Conv2dNormActivation`, or a `conv` / `bn` pair of a ResNet block. On the
/// GPU it is one convolution with the batch norm folded in.
#[derive(Debug)]
pub struct ConvBnAct {
    params: Conv2dParams,
    weight: Array4<f32>,
    bias: Option<Array1<f32>>,
    bn: Option<BnState>,
    conv: Conv2d,
}

impl ConvBnAct {
    /// Loads `{conv}.weight` (and `{conv}.bias` when `params.bias`) and, with `bn`, the
    /// batch norm `{bn}.weight/bias/running_mean/running_var` with `eps`.
    /// `params.activation` is applied after the batch norm.
    pub fn load(
        gpu: &Gpu,
        sd: &StateDict,
        params: Conv2dParams,
        conv: &str,
        bn: Option<&str>,
        eps: f32,
    ) -> Result<Self> {
        let weight = sd.get4(&format!("{conv}.weight"), params.weight_shape())?;
        let bias = if params.bias {
            Some(sd.get1(&format!("{conv}.bias"), params.out_channels)?)
        } else {
            None
        };
        let bn = match bn {
            Some(name) => Some(BnState::load(sd, name, params.out_channels, eps)?),
            None => None,
        };
        let gpu_conv = match &bn {
            Some(b) => {
                let (w, fb) = fold_batch_norm(
                    weight.view(),
                    bias.as_ref().map(|b| b.view()),
                    b.gamma.view(),
                    b.beta.view(),
                    b.mean.view(),
                    b.var.view(),
                    b.eps,
                )?;
                Conv2d::new(gpu, params.bias(true), w.view(), Some(fb.view()))?
            }
            None => Conv2d::new(gpu, params, weight.view(), bias.as_ref().map(|b| b.view()))?,
        };
        Ok(ConvBnAct {
            params,
            weight,
            bias,
            bn,
            conv: gpu_conv,
        })
    }

    /// The convolution's parameters (with the activation).
    pub fn params(&self) -> &Conv2dParams {
        &self.params
    }

    /// Records the folded convolution.
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        self.conv.forward(rec, x)
    }

    /// Records `act(conv(x)) + residual` in one pass (the residual joins after the
    /// activation, as in linear bottlenecks).
    pub fn forward_residual(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        residual: &Tensor,
    ) -> Result<Tensor> {
        self.conv
            .forward_residual(rec, x, residual, ResidualJoin::AfterActivation)
    }

    /// Records `a(conv(x) + residual)` in one pass, for a layer without activation of its
    /// own (the ReLU after a ResNet block's add).
    pub fn forward_add_then(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        residual: &Tensor,
        a: Activation,
    ) -> Result<Tensor> {
        self.conv
            .forward_residual(rec, x, residual, ResidualJoin::AddThen(a))
    }

    /// Records the folded convolution with a fused channel shuffle of its output.
    pub fn forward_shuffled(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        groups: usize,
    ) -> Result<Tensor> {
        self.conv.forward_shuffled(rec, x, groups)
    }

    /// CPU reference: convolution, batch norm with running statistics, activation.
    pub fn reference(&self, x: ArrayView4<f32>) -> Result<Array4<f32>> {
        let plain = self.params.activation(Activation::None);
        let y = reference::conv::conv2d(
            &plain,
            x,
            self.weight.view(),
            self.bias.as_ref().map(|b| b.view()),
        )?;
        let y = match &self.bn {
            Some(b) => {
                let p =
                    crate::ops::norm::BatchNorm2dParams::new(self.params.out_channels).eps(b.eps);
                reference::norm::batch_norm_eval(
                    &p,
                    y.view(),
                    b.gamma.view(),
                    b.beta.view(),
                    b.mean.view(),
                    b.var.view(),
                )?
            }
            None => y,
        };
        Ok(y.mapv(|v| reference::activation(self.params.activation, v)))
    }

    /// Output shape on `input`.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        self.params.output_shape(input)
    }

    /// Cost of the convolution plus the batch norm's parameters (folded away at run time,
    /// but part of the model, as PyTorch counts them).
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let mut c = self.params.cost(input)?;
        if self.bn.is_some() {
            c.params += 2 * self.params.out_channels as u64;
        }
        Ok(c)
    }
}

/// A squeeze-and-excitation layer (`fc1` / `fc2` 1x1 convolutions with bias) with its
/// host weights for the reference forward.
#[derive(Debug)]
struct SeLayer {
    block: SqueezeExcitation,
    params: SqueezeExcitationParams,
    weights: [Array4<f32>; 2],
    biases: [Array1<f32>; 2],
}

impl SeLayer {
    /// Loads `{fc1}.weight [S, C, 1, 1]`, `{fc1}.bias`, `{fc2}.weight [C, S, 1, 1]`,
    /// `{fc2}.bias`.
    fn load(
        gpu: &Gpu,
        sd: &StateDict,
        params: SqueezeExcitationParams,
        fc1: &str,
        fc2: &str,
    ) -> Result<Self> {
        let (c, s) = (params.input_channels, params.squeeze_channels);
        let w1 = sd.get4(&key(fc1, "weight"), [s, c, 1, 1])?;
        let b1 = sd.get1(&key(fc1, "bias"), s)?;
        let w2 = sd.get4(&key(fc2, "weight"), [c, s, 1, 1])?;
        let b2 = sd.get1(&key(fc2, "bias"), c)?;
        let block =
            SqueezeExcitation::new(gpu, params, w1.view(), b1.view(), w2.view(), b2.view())?;
        Ok(SeLayer {
            block,
            params,
            weights: [w1, w2],
            biases: [b1, b2],
        })
    }

    fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        self.block.forward(rec, x)
    }

    fn excitation_of_sum(&self, rec: &mut Recorder<'_>, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.block.excitation_of_sum(rec, a, b)
    }

    fn fc(&self) -> [(ArrayView4<'_, f32>, ArrayView1<'_, f32>); 2] {
        [0, 1].map(|i| (self.weights[i].view(), self.biases[i].view()))
    }

    fn reference(&self, x: ArrayView4<f32>) -> Result<Array4<f32>> {
        let [fc1, fc2] = self.fc();
        reference::attention::squeeze_excitation(&self.params, x, fc1, fc2)
    }

    fn reference_excitation(&self, x: ArrayView4<f32>) -> Result<Array4<f32>> {
        let [fc1, fc2] = self.fc();
        reference::attention::excitation(&self.params, x, fc1, fc2)
    }

    fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        self.params.cost(input)
    }
}

/// One row of a block summary: a layer's name, output shape, parameters and MACs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryRow {
    /// Layer name (state-dict prefix).
    pub name: String,
    /// Output shape `[N, C, H, W]`.
    pub output: [usize; 4],
    /// Learnable parameters (batch-norm scale and shift included).
    pub params: u64,
    /// Multiply-accumulates.
    pub macs: u64,
}

/// A table of layers like torchinfo's, with totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// The layers in execution order.
    pub rows: Vec<SummaryRow>,
}

impl Summary {
    fn push(&mut self, name: &str, layer: &ConvBnAct, input: [usize; 4]) -> Result<[usize; 4]> {
        let output = layer.output_shape(input)?;
        self.push_cost(name, output, layer.cost(input)?);
        Ok(output)
    }

    /// A row for a layer given its output shape and cost (SE gates, transposed convs).
    fn push_cost(&mut self, name: impl Into<String>, output: [usize; 4], cost: Cost) {
        self.rows.push(SummaryRow {
            name: name.into(),
            output,
            params: cost.params,
            macs: cost.macs,
        });
    }

    /// Total parameters.
    pub fn total_params(&self) -> u64 {
        self.rows.iter().map(|r| r.params).sum()
    }

    /// Total MACs.
    pub fn total_macs(&self) -> u64 {
        self.rows.iter().map(|r| r.macs).sum()
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<28} {:>22} {:>12} {:>14}",
            "layer", "output", "params", "MACs"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<28} {:>22} {:>12} {:>14}",
                r.name,
                format!("{:?}", r.output),
                r.params,
                r.macs
            )?;
        }
        write!(
            f,
            "{:<28} {:>22} {:>12} {:>14}",
            "total",
            "",
            self.total_params(),
            self.total_macs()
        )
    }
}
