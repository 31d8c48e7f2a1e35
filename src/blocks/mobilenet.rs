//! The MobileNet blocks: V1's depthwise-separable block (with the width and resolution
//! multipliers), V2's inverted residual (torchvision's `mobilenetv2.InvertedResidual`) and
//! V3's (torchvision's `mobilenetv3.InvertedResidual`, with SE and hard-swish).

use super::{conv_bn, conv_bn_at, Architecture, ConvBnAct, Graph, Model, SeNode};
use crate::error::{fail_if, Result};
use crate::gpu::Gpu;
use crate::ops::attention::SqueezeExcitationParams;
use crate::ops::conv::{Conv2dParams, ResidualJoin};
use crate::ops::setters;
use crate::ops::{Activation, Cost};
use crate::weights::{key, StateDict};

/// torchvision's `_make_divisible(v, 8)`: round to the nearest multiple of 8, at least 8,
/// and never more than 10% below `v`.
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let mut new_v = d.max(((v + d / 2.0) / d).floor() * d);
    if new_v < 0.9 * v {
        new_v += d;
    }
    new_v as usize
}

/// torchvision's `mobilenetv2.InvertedResidual(inp, oup, stride, expand_ratio)`: 1x1
/// expansion by `t` with ReLU6 (skipped when `t = 1`), 3x3 depthwise with ReLU6, 1x1
/// linear projection (no activation), skip when `stride == 1 and inp == oup`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InvertedResidualConfig {
    /// Input channels.
    pub inp: usize,
    /// Output channels.
    pub oup: usize,
    /// Stride of the depthwise convolution (1 or 2).
    pub stride: usize,
    /// Expansion ratio `t` (6 in MobileNetV2).
    pub expand_ratio: f64,
}

impl InvertedResidualConfig {
    /// Expanded channels, `round(inp * t)` as torchvision computes it.
    pub fn hidden(&self) -> usize {
        (self.inp as f64 * self.expand_ratio).round() as usize
    }

    fn residual(&self) -> bool {
        self.stride == 1 && self.inp == self.oup
    }
}

/// A MobileNetV2 inverted residual for inference: three dispatches (two without
/// expansion), the skip added in the projection's store.
pub type InvertedResidual = Model<InvertedResidualConfig>;

impl Architecture for InvertedResidualConfig {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        check_stride(self.stride)
    }

    /// Loads `conv.0.0` / `conv.0.1` (expansion), the depthwise `conv.i.0` / `conv.i.1`,
    /// and the projection `conv.{i+1}` with its batch norm `conv.{i+2}`.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let cfg = self;
        let conv = key(prefix, "conv");
        let at = |j: usize| key(&conv, &j.to_string());
        let (hidden, eps, relu6) = (cfg.hidden(), 1e-5, Activation::Relu6);
        let mut g = Graph::new();
        let x = g.input();
        let mut y = x;
        let mut i = 0;
        if cfg.expand_ratio != 1.0 {
            let p = Conv2dParams::new(cfg.inp, hidden, 1)
                .bias(false)
                .activation(relu6);
            y = g.add("expand", conv_bn_at(gpu, sd, p, &conv, 0, eps)?, &[y]);
            i = 1;
        }
        let p = Conv2dParams::depthwise(hidden, 1, 3)
            .stride(cfg.stride)
            .padding(1)
            .bias(false)
            .activation(relu6);
        y = g.add("depthwise", conv_bn_at(gpu, sd, p, &conv, i, eps)?, &[y]);
        // The projection is not wrapped: its conv and batch norm are siblings.
        let p = Conv2dParams::new(hidden, cfg.oup, 1).bias(false);
        let project = conv_bn(gpu, sd, p, &at(i + 1), &at(i + 2), eps)?;
        // The skip joins the linear projection in its store.
        let y = if cfg.residual() {
            g.add(
                "project",
                project.with_residual(ResidualJoin::AfterActivation)?,
                &[y, x],
            )
        } else {
            g.add("project", project, &[y])
        };
        g.set_outputs(&[y]);
        Ok(g)
    }
}

/// torchvision's MobileNetV3 `InvertedResidual` (from an `InvertedResidualConfig`):
/// optional 1x1 expansion, k x k depthwise (stride, dilation), optional SE with
/// hard-sigmoid gate, 1x1 projection; hard-swish or ReLU; batch norm eps 0.001.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MobileNetV3Config {
    /// Input channels.
    pub input_channels: usize,
    /// Depthwise kernel size.
    pub kernel: usize,
    /// Expanded channels.
    pub expanded_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Whether the block has squeeze-and-excitation.
    pub use_se: bool,
    /// Hard-swish (`"HS"`) or ReLU (`"RE"`).
    pub use_hs: bool,
    /// Depthwise stride.
    pub stride: usize,
    /// Depthwise dilation.
    pub dilation: usize,
}

impl MobileNetV3Config {
    fn activation(&self) -> Activation {
        if self.use_hs {
            Activation::HardSwish
        } else {
            Activation::Relu
        }
    }
}

/// A MobileNetV3 inverted residual for inference.
pub type MobileNetV3Block = Model<MobileNetV3Config>;

/// The graph of a MobileNetV3 block from its layers, its nodes named `names` (expansion,
/// depthwise, SE, projection); also for layers loaded under other names (a converted TFLite
/// model): the graph and the residual rule are the same.
pub(crate) fn v3_block_graph(
    cfg: &MobileNetV3Config,
    (expand, depthwise, se, project): (Option<ConvBnAct>, ConvBnAct, Option<SeNode>, ConvBnAct),
    names: [&str; 4],
) -> Result<Graph> {
    let mut g = Graph::new();
    let x = g.input();
    let mut y = x;
    if let Some(l) = expand {
        y = g.add(names[0], l, &[y]);
    }
    y = g.add(names[1], depthwise, &[y]);
    if let Some(se) = se {
        y = g.add(names[2], se, &[y]);
    }
    let y = if cfg.stride == 1 && cfg.input_channels == cfg.out_channels {
        g.add(
            names[3],
            project.with_residual(ResidualJoin::AfterActivation)?,
            &[y, x],
        )
    } else {
        g.add(names[3], project, &[y])
    };
    g.set_outputs(&[y]);
    Ok(g)
}

impl Architecture for MobileNetV3Config {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        check_stride(self.stride)
    }

    /// Loads `block.0 ...` with torchvision's numbering (expansion, depthwise, SE `fc1` /
    /// `fc2`, projection; indices shift when a part is absent).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let cfg = self;
        let k = |n: String| key(prefix, &n);
        let block = key(prefix, "block");
        let eps = 1e-3;
        let act = cfg.activation();
        let mut i = 0;
        let expand = if cfg.expanded_channels != cfg.input_channels {
            let p = Conv2dParams::new(cfg.input_channels, cfg.expanded_channels, 1)
                .bias(false)
                .activation(act);
            i += 1;
            Some(conv_bn_at(gpu, sd, p, &block, 0, eps)?)
        } else {
            None
        };
        let e = cfg.expanded_channels;
        // torchvision: a dilated depthwise convolution keeps stride 1.
        let stride = if cfg.dilation > 1 { 1 } else { cfg.stride };
        let p = Conv2dParams::depthwise(e, 1, cfg.kernel)
            .stride(stride)
            .padding((cfg.kernel - 1) / 2 * cfg.dilation)
            .dilation(cfg.dilation)
            .bias(false)
            .activation(act);
        let depthwise = conv_bn_at(gpu, sd, p, &block, i, eps)?;
        i += 1;
        let se = if cfg.use_se {
            let s = make_divisible(e as f64 / 4.0, 8);
            let params =
                SqueezeExcitationParams::new(e, s).scale_activation(Activation::HardSigmoid);
            let fc = |n: &str| k(format!("block.{i}.{n}"));
            let layer = SeNode::load(gpu, sd, params, &fc("fc1"), &fc("fc2"))?;
            i += 1;
            Some(layer)
        } else {
            None
        };
        let p = Conv2dParams::new(e, cfg.out_channels, 1).bias(false);
        let project = conv_bn_at(gpu, sd, p, &block, i, eps)?;
        let names = ["expand", "depthwise", "se", "project"];
        v3_block_graph(cfg, (expand, depthwise, se, project), names)
    }
}

/// A MobileNet v1 depthwise-separable block: 3x3 depthwise (stride) + BN + ReLU, 1x1
/// pointwise + BN + ReLU, in the usual PyTorch layout `Sequential(conv_dw, bn, relu,
/// conv_pw, bn, relu)` (names `0`, `1`, `3`, `4`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DepthwiseSeparableConfig {
    /// Input channels (before the width multiplier).
    pub in_channels: usize,
    /// Output channels (before the width multiplier).
    pub out_channels: usize,
    /// Depthwise stride.
    pub stride: usize,
    /// Width multiplier alpha: channels become `round(alpha * c)` (at least 1).
    pub alpha: f64,
}

impl DepthwiseSeparableConfig {
    /// A block at full width.
    pub fn new(in_channels: usize, out_channels: usize, stride: usize) -> Self {
        DepthwiseSeparableConfig {
            in_channels,
            out_channels,
            stride,
            alpha: 1.0,
        }
    }

    /// Channels after the width multiplier `(in, out)`.
    pub fn channels(&self) -> (usize, usize) {
        let scale = |c: usize| ((c as f64 * self.alpha).round() as usize).max(1);
        (scale(self.in_channels), scale(self.out_channels))
    }

    fn layers(&self) -> (Conv2dParams, Conv2dParams) {
        let (cin, cout) = self.channels();
        (
            Conv2dParams::depthwise(cin, 1, 3)
                .stride(self.stride)
                .padding(1)
                .bias(false)
                .activation(Activation::Relu),
            Conv2dParams::new(cin, cout, 1)
                .bias(false)
                .activation(Activation::Relu),
        )
    }

    /// Cost at resolution multiplier `rho` on a `[N, C, H, W]` base input (channels as
    /// given before alpha): the input becomes `round(rho * H) x round(rho * W)`.
    /// Parameters (batch norms included) scale about as alpha^2 and MACs as
    /// alpha^2 rho^2, the MobileNet paper's multipliers.
    pub fn cost_at(&self, rho: f64, base: [usize; 4]) -> Result<Cost> {
        fail_if(!(self.alpha > 0.0 && rho > 0.0), "alpha", || {
            format!("alpha ({}) and rho ({rho}) must be positive", self.alpha)
        })?;
        let (cin, cout) = self.channels();
        let h = ((base[2] as f64 * rho).round() as usize).max(1);
        let w = ((base[3] as f64 * rho).round() as usize).max(1);
        let input = [base[0], cin, h, w];
        let (dw, pw) = self.layers();
        let mid = dw.output_shape(input)?;
        let mut c = dw.cost(input)? + pw.cost(mid)?;
        c.params += 2 * (cin + cout) as u64;
        Ok(c)
    }
}

setters!(DepthwiseSeparableConfig {
    /// Sets the width multiplier.
    alpha: f64,
});

/// A MobileNet v1 depthwise-separable block for inference.
pub type DepthwiseSeparableBlock = Model<DepthwiseSeparableConfig>;

impl Architecture for DepthwiseSeparableConfig {
    /// Loads `0` / `1` (depthwise and its BN) and `3` / `4` (pointwise and BN).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let cfg = self;
        let (dw, pw) = cfg.layers();
        let k = |n: &str| key(prefix, n);
        let mut g = Graph::new();
        let x = g.input();
        let a = g.add(
            "depthwise",
            conv_bn(gpu, sd, dw, &k("0"), &k("1"), 1e-5)?,
            &[x],
        );
        let y = g.add(
            "pointwise",
            conv_bn(gpu, sd, pw, &k("3"), &k("4"), 1e-5)?,
            &[a],
        );
        g.set_outputs(&[y]);
        Ok(g)
    }
}

/// MobileNet blocks run with stride 1 or 2.
fn check_stride(stride: usize) -> Result<()> {
    fail_if(stride != 1 && stride != 2, "stride", || {
        format!("must be 1 or 2, got {stride}")
    })
}
