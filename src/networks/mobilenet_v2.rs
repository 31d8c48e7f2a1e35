//! torchvision's `mobilenet_v2().features`.

use crate::blocks::{
    conv_bn_at, make_divisible, Architecture, Graph, InvertedResidual, InvertedResidualConfig,
    Model, ValueId,
};
use crate::error::{fail_if, Result};
use crate::gpu::Gpu;
use crate::ops::conv::Conv2dParams;
use crate::ops::setters;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// torchvision's `mobilenet_v2(width_mult)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MobileNetV2Config {
    /// Channel multiplier, rounded per layer with [`make_divisible`] (default 1.0).
    pub width_mult: f64,
}

impl MobileNetV2Config {
    /// torchvision's `mobilenet_v2()`: width 1.0.
    pub fn torchvision() -> Self {
        MobileNetV2Config { width_mult: 1.0 }
    }
}

setters!(MobileNetV2Config {
    /// Sets the width multiplier.
    width_mult: f64,
});

impl Default for MobileNetV2Config {
    fn default() -> Self {
        Self::torchvision()
    }
}

/// torchvision's `mobilenet_v2(width_mult).features`: a 3x3 stride-2 stem, the 17
/// inverted residuals of the `[t, c, n, s]` table, and a 1x1 to 1280 channels (more when
/// `width_mult > 1`), every convolution with batch norm and ReLU6 but the projections.
pub type MobileNetV2Features = Model<MobileNetV2Config>;

impl MobileNetV2Features {
    /// The `[t, c, n, s]` table of the paper and torchvision.
    pub const SETTINGS: [[usize; 4]; 7] = [
        [1, 16, 1, 1],
        [6, 24, 2, 2],
        [6, 32, 3, 2],
        [6, 64, 4, 2],
        [6, 96, 3, 1],
        [6, 160, 3, 2],
        [6, 320, 1, 1],
    ];
}

impl Architecture for MobileNetV2Config {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        let cfg = self;
        let width_mult = cfg.width_mult;
        fail_if(
            !(width_mult.is_finite() && width_mult > 0.0),
            "width_mult",
            || format!("must be positive, got {width_mult}"),
        )
    }

    /// Loads `{prefix}.0 ... {prefix}.18` (the prefix is `features` in a whole
    /// `mobilenet_v2()` state dict, empty for the state dict of `.features` itself).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let mut g = Graph::new();
        let x = g.input();
        let outs = self.append(&mut g, x, (gpu, sd, prefix), (3, usize::MAX, 32))?;
        g.set_outputs(&outs[outs.len() - 1..]);
        Ok(g)
    }
}

impl MobileNetV2Config {
    /// `{prefix}.0 ..= {prefix}.{last}` (at most the 19 of `features`; the stem taking
    /// `in_channels` channels) appended to `g` after `x`; returns each one's output.
    /// An `output_stride` of 16 or 8 dilates `features[7:14]` (stride 16) and
    /// `features[14:]` (stride 32) as segmentation_models_pytorch's `make_dilated` does:
    /// stride 1 and a dilation of their stride over `output_stride` (32: none).
    pub(crate) fn append(
        &self,
        g: &mut Graph,
        x: ValueId,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        (in_channels, last, output_stride): (usize, usize, usize),
    ) -> Result<Vec<ValueId>> {
        let dilation = |index: usize| {
            let stage_stride = match index {
                ..7 => 8,
                7..14 => 16,
                _ => 32,
            };
            (stage_stride / output_stride).max(1)
        };
        let width_mult = self.width_mult;
        let eps = 1e-5;
        let relu6 = Activation::Relu6;
        let mut input = make_divisible(32.0 * width_mult, 8);
        let last_channel = make_divisible(1280.0 * width_mult.max(1.0), 8);
        let stem = Conv2dParams::new(in_channels, input, 3)
            .stride(2)
            .padding(1)
            .bias(false)
            .activation(relu6);
        let stem = conv_bn_at(gpu, sd, stem, prefix, 0, eps)?;
        let mut outs = vec![g.add("0", stem, &[x])];
        for [t, c, n, s] in MobileNetV2Features::SETTINGS {
            let out = make_divisible(c as f64 * width_mult, 8);
            for i in 0..n {
                if outs.len() > last {
                    return Ok(outs);
                }
                let cfg = InvertedResidualConfig {
                    inp: input,
                    oup: out,
                    stride: if i == 0 { s } else { 1 },
                    expand_ratio: t as f64,
                };
                let index = outs.len().to_string();
                let block = match dilation(outs.len()) {
                    1 => InvertedResidual::load(gpu, cfg, sd, &key(prefix, &index))?.into_graph(),
                    d => cfg.build_dilated(gpu, sd, &key(prefix, &index), d)?,
                };
                let y = g.add(index, block, &[*outs.last().expect("the stem")]);
                outs.push(y);
                input = out;
            }
        }
        if outs.len() > last {
            return Ok(outs);
        }
        let conv = Conv2dParams::new(input, last_channel, 1)
            .bias(false)
            .activation(relu6);
        let index = outs.len();
        let conv = conv_bn_at(gpu, sd, conv, prefix, index, eps)?;
        let y = g.add(
            index.to_string(),
            conv,
            &[*outs.last().expect("the blocks")],
        );
        outs.push(y);
        Ok(outs)
    }
}
