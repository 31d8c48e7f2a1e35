//! segmentation_models_pytorch's `timm-efficientnet-b0` .. `b8`, `timm-efficientnet-l2`
//! and `timm-tf_efficientnet_lite0` .. `lite4` encoders: timm's `EfficientNet` built from
//! smp's architecture definitions, under timm's names (`conv_stem`, `bn1`,
//! `blocks.{stage}.{i}.conv_dw` / `bn1` / `se.conv_reduce` / `se.conv_expand` / `conv_pw` /
//! `bn2` for the first stage's depthwise-separable blocks, `conv_pw` / `bn1` / `conv_dw` /
//! `bn2` / `se.*` / `conv_pwl` / `bn3` for the inverted residuals).
//!
//! Unlike EfficientNet-PyTorch's model (smp's `efficientnet-b*`), timm pads symmetrically
//! (PyTorch's `k / 2`, even for the `tf_` Lite models as smp builds them) and its batch
//! norm eps is 1e-5. EfficientNet: SiLU, squeeze-and-excitation with a quarter of the
//! block's input channels. Lite: ReLU6, no squeeze-and-excitation, the stem and the first
//! and last stages not scaled.
//!
//! smp's `tu-efficientnet_*` encoders run timm's own model of the same blocks (under
//! `encoder.model`): their stride-2 feature is the first stage's output, and they dilate
//! by timm's `output_stride` rule.

use crate::blocks::{
    conv_bn, make_divisible, padded_inverted_residual_graph, ConvBnAct, Graph, Op, SeNode, ValueId,
};
use crate::error::{fail_if, Error, Result};
use crate::gpu::Gpu;
use crate::ops::attention::SqueezeExcitationParams;
use crate::ops::conv::{tf_same_padding, Conv2dParams};
use crate::ops::Activation;
use crate::weights::{key, StateDict};

use super::efficientnet::STAGES;
use super::smp_unet::smp_dilation;

/// One of smp's timm EfficientNet encoders.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimmEfficientNetConfig {
    /// EfficientNet-Lite (ReLU6, no SE, fixed stem and first and last stages) rather than
    /// EfficientNet.
    pub lite: bool,
    /// Channel multiplier, rounded per layer to a multiple of 8.
    pub channel_multiplier: f64,
    /// Block-count multiplier, rounded up per stage.
    pub depth_multiplier: f64,
}

/// The stages after which smp takes its features at strides 4, 8, 16 and 32.
const TAPS: [usize; 4] = [1, 2, 4, 6];

impl TimmEfficientNetConfig {
    /// smp's encoder name: `timm-efficientnet-b0` .. `b8`, `timm-efficientnet-l2`,
    /// `timm-tf_efficientnet_lite0` .. `lite4`; any other name is an error naming
    /// `encoder_name`.
    pub fn from_smp(name: &str) -> Result<Self> {
        let multipliers = |variant: &str| -> Option<(f64, f64)> {
            Some(match variant {
                "b0" => (1.0, 1.0),
                "b1" => (1.0, 1.1),
                "b2" => (1.1, 1.2),
                "b3" => (1.2, 1.4),
                "b4" => (1.4, 1.8),
                "b5" => (1.6, 2.2),
                "b6" => (1.8, 2.6),
                "b7" => (2.0, 3.1),
                "b8" => (2.2, 3.6),
                "l2" => (4.3, 5.3),
                _ => return None,
            })
        };
        let found = if let Some(v) = name.strip_prefix("timm-efficientnet-") {
            multipliers(v).map(|m| (false, m))
        } else if let Some(v) = name.strip_prefix("timm-tf_efficientnet_lite") {
            ["0", "1", "2", "3", "4"]
                .contains(&v)
                .then(|| multipliers(&format!("b{v}")).map(|m| (true, m)))
                .flatten()
        } else {
            None
        };
        let (lite, (channel_multiplier, depth_multiplier)) =
            found.ok_or_else(|| Error::InvalidParam {
                name: "encoder_name",
                reason: format!(
                    "{name:?} is not one of smp's timm-efficientnet-b0 .. b8, \
                     timm-efficientnet-l2, timm-tf_efficientnet_lite0 .. lite4"
                ),
            })?;
        Ok(TimmEfficientNetConfig {
            lite,
            channel_multiplier,
            depth_multiplier,
        })
    }

    /// timm's own name, as smp's `tu-` encoders take it: `efficientnet_b0` .. `b8`,
    /// `efficientnet_l2`, `efficientnet_lite0` .. `lite4` (a pretrained tag after `.`
    /// ignored); `None` for any other.
    pub fn from_timm(name: &str) -> Option<Self> {
        let name = name.split('.').next()?;
        let smp = match name.strip_prefix("efficientnet_lite") {
            Some(v) => format!("timm-tf_efficientnet_lite{v}"),
            None => format!("timm-efficientnet-{}", name.strip_prefix("efficientnet_")?),
        };
        Self::from_smp(&smp).ok()
    }

    /// Checks the configuration: finite multipliers in (0, 16].
    pub(crate) fn validate(&self) -> Result<()> {
        for (name, m) in [
            ("channel_multiplier", self.channel_multiplier),
            ("depth_multiplier", self.depth_multiplier),
        ] {
            fail_if(!(m.is_finite() && m > 0.0 && m <= 16.0), name, || {
                format!("must be in (0, 16], got {m}")
            })?;
        }
        Ok(())
    }

    fn channels(&self, c: usize) -> usize {
        make_divisible(c as f64 * self.channel_multiplier, 8)
    }

    fn stem_channels(&self) -> usize {
        if self.lite {
            32
        } else {
            self.channels(32)
        }
    }

    /// Blocks of stage `s` (`decode_arch_def`: `ceil(repeats * depth_multiplier)`; Lite
    /// keeps the first and last stages).
    fn repeats(&self, s: usize) -> usize {
        let fixed = self.lite && (s == 0 || s == STAGES.len() - 1);
        match fixed {
            true => STAGES[s][0],
            false => (STAGES[s][0] as f64 * self.depth_multiplier).ceil() as usize,
        }
    }

    fn activation(&self) -> Activation {
        if self.lite {
            Activation::Relu6
        } else {
            Activation::Silu
        }
    }

    /// Channels of smp's features: the input's, the stem's (`universal`: the first
    /// stage's, timm's own stride-2 feature), then after stages 1, 2, 4, 6.
    pub(crate) fn feature_channels(&self, in_channels: usize, universal: bool) -> Vec<usize> {
        let stride2 = match universal {
            true => self.channels(STAGES[0][4]),
            false => self.stem_channels(),
        };
        let mut c = vec![in_channels, stride2];
        c.extend(TAPS.map(|s| self.channels(STAGES[s][4])));
        c
    }

    /// The stem (`{prefix}.conv_stem`, `bn1`, taking `in_channels` channels) and the
    /// stages smp runs for `depth` features appended to `g` after `x`; returns smp's
    /// features (the input's first). Stages past `output_stride` (16: stages 3 and 4
    /// are at 16, 5 and 6 at 32) run at stride 1, dilated as smp's `make_dilated` does.
    ///
    /// `universal`: timm's own model as smp's `tu-` encoders run it instead: the
    /// stride-2 feature is the first stage's output, and the dilation follows timm's
    /// `output_stride` (a dilated stage's first block keeps the previous dilation).
    pub(crate) fn append(
        &self,
        g: &mut Graph,
        x: ValueId,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        (in_channels, depth, output_stride): (usize, usize, usize),
        universal: bool,
    ) -> Result<Vec<ValueId>> {
        let at = |name: &str| key(prefix, name);
        let stem = Conv2dParams::new(in_channels, self.stem_channels(), 3)
            .stride(2)
            .activation(self.activation());
        let mut y = LAYERS.stem(g, x, (gpu, sd, prefix), stem)?;
        let mut features = vec![x];
        if !universal {
            features.push(y);
        }
        let stages = match depth {
            0 => 0,
            1 => usize::from(universal),
            d => TAPS[d - 2] + 1,
        };
        let mut timm_rule = TimmOutputStride::new(output_stride);
        let mut input = self.stem_channels();
        for (s, &[_, kernel, stride, expand, output]) in STAGES.iter().enumerate().take(stages) {
            let output = self.channels(output);
            let stage_stride = match s {
                5.. => 32,
                3 | 4 => 16,
                _ => 8,
            };
            let smp_rate = smp_dilation(stage_stride, output_stride);
            for i in 0..self.repeats(s) {
                let stride = if i == 0 { stride } else { 1 };
                let (stride, dilation) = match universal {
                    false => (stride, smp_rate),
                    true => timm_rule.block(stride),
                };
                let block = Block {
                    input,
                    output,
                    kernel,
                    // The skip is the unpatched block's (timm decides it when building).
                    stride,
                    expand,
                    dilation,
                };
                let name = format!("blocks.{s}.{i}");
                let graph = self.block((gpu, sd, &at(&name)), block)?;
                y = g.add(name, graph, &[y]);
                input = output;
            }
            if TAPS.contains(&s) || (universal && s == 0) {
                features.push(y);
            }
        }
        Ok(features)
    }

    /// One block under `prefix`: a depthwise-separable block (expansion 1, the first
    /// stage) or an inverted residual.
    fn block(&self, ctx: (&Gpu, &StateDict, &str), b: Block) -> Result<Graph> {
        let act = self.activation();
        let se = (!self.lite).then(|| {
            let squeezed = (b.input as f64 * 0.25).round().max(1.0) as usize;
            SqueezeExcitationParams::new(b.input * b.expand, squeezed)
                .activation(act)
                .scale_activation(Activation::Sigmoid)
        });
        let block = TimmBlock {
            channels: (b.input, b.input * b.expand, b.output),
            separable: b.expand == 1,
            kernel: b.kernel,
            // smp's `make_dilated` keeps the stride of a dilated block for its skip.
            stride_dilation: match b.dilation {
                1 => (b.stride, 1),
                d => (1, d),
            },
            activation: act,
            se,
            skip: b.stride == 1 && b.input == b.output,
        };
        LAYERS.block(ctx, block)
    }
}

/// timm's layers as its EfficientNets have them: PyTorch's symmetric padding, batch norm
/// eps 1e-5 (timm's default).
const LAYERS: TimmLayers = TimmLayers {
    eps: 1e-5,
    tf_padding: false,
};

/// How one of timm's models builds its layers: the batch norm eps, and whether strided
/// windows pad as TensorFlow's `'SAME'` (timm's `Conv2dSame`, the `tf_` models).
#[derive(Clone, Copy, Debug)]
pub(crate) struct TimmLayers {
    pub(crate) eps: f32,
    pub(crate) tf_padding: bool,
}

/// One of timm's `DepthwiseSeparableConv` or `InvertedResidual` blocks, its widths and
/// rules resolved by the model that builds it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TimmBlock {
    /// Input, expanded (the depthwise layer's) and output channels.
    pub(crate) channels: (usize, usize, usize),
    /// A `DepthwiseSeparableConv` (no expansion; its layers named `conv_dw` / `bn1`,
    /// `conv_pw` / `bn2`).
    pub(crate) separable: bool,
    pub(crate) kernel: usize,
    /// The depthwise layer's.
    pub(crate) stride_dilation: (usize, usize),
    pub(crate) activation: Activation,
    pub(crate) se: Option<SqueezeExcitationParams>,
    /// The input added to the output.
    pub(crate) skip: bool,
}

impl TimmLayers {
    /// `p` (a square window) padded as timm pads it: PyTorch's symmetric `k / 2 *
    /// dilation`, or for the `tf_` models on a strided window TensorFlow's `'SAME'` for
    /// an axis the stride divides, with the op that pads other sizes further to run on
    /// its input.
    pub(crate) fn padded(&self, p: Conv2dParams) -> (Conv2dParams, Option<Op>) {
        let (k, stride, dilation) = (p.kernel_size.0, p.stride.0, p.dilation.0);
        if self.tf_padding && stride > 1 {
            let pad = tf_same_padding(stride * k, k, stride, dilation);
            let p = p.padding_asymmetric(pad, pad);
            return (p, Some(Op::PadToTfSame(p)));
        }
        (p.padding(k / 2 * dilation), None)
    }

    /// The stem `p` (`{prefix}.conv_stem`, `bn1`, padded by [`Self::padded`]) appended to
    /// `g` after `x`; returns its output.
    pub(crate) fn stem(
        &self,
        g: &mut Graph,
        x: ValueId,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        p: Conv2dParams,
    ) -> Result<ValueId> {
        let (p, pad) = self.padded(p.bias(false));
        let (conv, bn) = (key(prefix, "conv_stem"), key(prefix, "bn1"));
        let stem = conv_bn(gpu, sd, p, &conv, &bn, self.eps)?;
        let mut y = x;
        if let Some(pad) = pad {
            y = g.add("conv_stem.pad", pad, &[y]);
        }
        Ok(g.add("conv_stem", stem, &[y]))
    }

    /// Block `b` under `prefix` (`conv_pw` / `bn1`, `conv_dw` / `bn2`, `se.conv_reduce` /
    /// `se.conv_expand`, `conv_pwl` / `bn3`).
    pub(crate) fn block(
        &self,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        b: TimmBlock,
    ) -> Result<Graph> {
        let at = |name: &str| key(prefix, name);
        let layer = |p: Conv2dParams, (conv, bn): (&str, &str)| -> Result<ConvBnAct> {
            conv_bn(gpu, sd, p, &at(conv), &at(bn), self.eps)
        };
        let (input, hidden, output) = b.channels;
        let [pw, dw, pwl] = match b.separable {
            true => [("", ""), ("conv_dw", "bn1"), ("conv_pw", "bn2")],
            false => [("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3")],
        };
        let expand = match b.separable {
            true => None,
            false => {
                let p = Conv2dParams::new(input, hidden, 1)
                    .bias(false)
                    .activation(b.activation);
                Some(layer(p, pw)?)
            }
        };
        let (stride, dilation) = b.stride_dilation;
        let depthwise = Conv2dParams::depthwise(hidden, 1, b.kernel)
            .stride(stride)
            .dilation(dilation)
            .bias(false)
            .activation(b.activation);
        let (depthwise, pad) = self.padded(depthwise);
        let depthwise = layer(depthwise, dw)?;
        let se = match b.se {
            None => None,
            Some(se) => {
                let (reduce, expand) = (at("se.conv_reduce"), at("se.conv_expand"));
                Some(SeNode::load(gpu, sd, se, &reduce, &expand)?)
            }
        };
        let project = Conv2dParams::new(hidden, output, 1).bias(false);
        let project = layer(project, pwl)?;
        let names = [pw.0, dw.0, "se", pwl.0];
        padded_inverted_residual_graph(gpu, b.skip, (expand, depthwise, se, project), names, pad)
    }
}

/// timm's `EfficientNetBuilder` bookkeeping for its `output_stride` (EfficientNet and
/// MobileNetV3 alike): the stride reached so far (the stem's 2 to start) and the dilation
/// in force.
pub(crate) struct TimmOutputStride {
    output_stride: usize,
    reached: usize,
    dilation: usize,
}

impl TimmOutputStride {
    pub(crate) fn new(output_stride: usize) -> Self {
        TimmOutputStride {
            output_stride,
            reached: 2,
            dilation: 1,
        }
    }

    /// The stride and dilation of the next block, whose own stride is `stride`: a stride
    /// past the output stride becomes a dilation of the blocks after this one, which
    /// keeps the dilation in force before it.
    pub(crate) fn block(&mut self, stride: usize) -> (usize, usize) {
        let current = self.dilation;
        if stride > 1 && self.reached * stride > self.output_stride {
            self.dilation *= stride;
            return (1, current);
        }
        self.reached *= stride;
        (stride, current)
    }
}

/// One block as timm builds it.
#[derive(Clone, Copy, Debug)]
struct Block {
    input: usize,
    output: usize,
    kernel: usize,
    stride: usize,
    expand: usize,
    dilation: usize,
}
