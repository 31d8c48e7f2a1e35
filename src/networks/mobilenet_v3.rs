//! torchvision's `mobilenet_v3_large(...).features` and `mobilenet_v3_small(...).features`.

use super::append_features;
use crate::blocks::{
    conv_bn_at, make_divisible, Architecture, ConvBnAct, Graph, MobileNetV3Block,
    MobileNetV3Config, Model,
};
use crate::error::{fail_if, Result};
use crate::gpu::Gpu;
use crate::ops::conv::Conv2dParams;
use crate::ops::setters;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// One row of torchvision's MobileNetV3 table: input, kernel, expanded and output
/// channels, SE, hard-swish, stride, dilation.
type BlockRow = (usize, usize, usize, usize, bool, bool, usize, usize);

/// Which MobileNetV3 (torchvision's `mobilenet_v3_large` or `mobilenet_v3_small`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MobileNetV3Arch {
    /// `mobilenet_v3_large`: 15 inverted residuals.
    Large,
    /// `mobilenet_v3_small`: 11 inverted residuals.
    Small,
}

/// The configuration of torchvision's `mobilenet_v3_*(width_mult, reduced_tail, dilated)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MobileNetV3FeaturesConfig {
    /// Large or small.
    pub arch: MobileNetV3Arch,
    /// Channel multiplier (default 1.0), rounded per layer with [`make_divisible`].
    pub width_mult: f64,
    /// Halve the channels of the last stage (default false).
    pub reduced_tail: bool,
    /// Dilation 2 instead of stride 2 in the last stage (default false; the segmentation
    /// models' backbones use it, keeping 1/16 of the input resolution).
    pub dilated: bool,
}

impl MobileNetV3FeaturesConfig {
    /// `mobilenet_v3_large()` with torchvision's defaults.
    pub fn large() -> Self {
        MobileNetV3FeaturesConfig {
            arch: MobileNetV3Arch::Large,
            width_mult: 1.0,
            reduced_tail: false,
            dilated: false,
        }
    }

    /// `mobilenet_v3_small()` with torchvision's defaults.
    pub fn small() -> Self {
        MobileNetV3FeaturesConfig {
            arch: MobileNetV3Arch::Small,
            ..Self::large()
        }
    }

    /// The inverted-residual table of torchvision's `_mobilenet_v3_conf`, channels
    /// adjusted by the width multiplier.
    pub fn blocks(&self) -> Vec<MobileNetV3Config> {
        let r = if self.reduced_tail { 2 } else { 1 };
        let d = if self.dilated { 2 } else { 1 };
        let table: Vec<BlockRow> = match self.arch {
            MobileNetV3Arch::Large => vec![
                (16, 3, 16, 16, false, false, 1, 1),
                (16, 3, 64, 24, false, false, 2, 1),
                (24, 3, 72, 24, false, false, 1, 1),
                (24, 5, 72, 40, true, false, 2, 1),
                (40, 5, 120, 40, true, false, 1, 1),
                (40, 5, 120, 40, true, false, 1, 1),
                (40, 3, 240, 80, false, true, 2, 1),
                (80, 3, 200, 80, false, true, 1, 1),
                (80, 3, 184, 80, false, true, 1, 1),
                (80, 3, 184, 80, false, true, 1, 1),
                (80, 3, 480, 112, true, true, 1, 1),
                (112, 3, 672, 112, true, true, 1, 1),
                (112, 5, 672, 160 / r, true, true, 2, d),
                (160 / r, 5, 960 / r, 160 / r, true, true, 1, d),
                (160 / r, 5, 960 / r, 160 / r, true, true, 1, d),
            ],
            MobileNetV3Arch::Small => vec![
                (16, 3, 16, 16, true, false, 2, 1),
                (16, 3, 72, 24, false, false, 2, 1),
                (24, 3, 88, 24, false, false, 1, 1),
                (24, 5, 96, 40, true, true, 2, 1),
                (40, 5, 240, 40, true, true, 1, 1),
                (40, 5, 240, 40, true, true, 1, 1),
                (40, 5, 120, 48, true, true, 1, 1),
                (48, 5, 144, 48, true, true, 1, 1),
                (48, 5, 288, 96 / r, true, true, 2, d),
                (96 / r, 5, 576 / r, 96 / r, true, true, 1, d),
                (96 / r, 5, 576 / r, 96 / r, true, true, 1, d),
            ],
        };
        let adjust = |c: usize| make_divisible(c as f64 * self.width_mult, 8);
        table
            .into_iter()
            .map(|(i, k, e, o, se, hs, s, dil)| MobileNetV3Config {
                input_channels: adjust(i),
                kernel: k,
                expanded_channels: adjust(e),
                out_channels: adjust(o),
                use_se: se,
                use_hs: hs,
                stride: s,
                dilation: dil,
            })
            .collect()
    }

    /// torchvision's stage indices into `features`: the stem (0), every block whose table
    /// stride is above 1 (its `_is_cn`; index `i + 1`), the last convolution. The
    /// segmentation models read the last as their output and the fourth from the end
    /// (the end of the 1/8-resolution stage) as their low-level or auxiliary input.
    pub fn stage_indices(&self) -> Vec<usize> {
        let blocks = self.blocks();
        let mut stages = vec![0];
        stages.extend(
            blocks
                .iter()
                .enumerate()
                .filter(|(_, b)| b.stride > 1)
                .map(|(i, _)| i + 1),
        );
        stages.push(blocks.len() + 1);
        stages
    }

    /// The output channels of `features[index]`.
    pub fn channels_at(&self, index: usize) -> usize {
        let blocks = self.blocks();
        match index {
            0 => blocks[0].input_channels,
            i if i <= blocks.len() => blocks[i - 1].out_channels,
            _ => 6 * blocks[blocks.len() - 1].out_channels,
        }
    }

    /// `features[stage_indices()[len - 4]]`: the index of the low-level / auxiliary
    /// features of the segmentation models.
    pub(crate) fn low_stage(&self) -> Result<usize> {
        let stages = self.stage_indices();
        fail_if(stages.len() < 4, "backbone", || {
            format!("has {} stages, the segmentation heads need 4", stages.len())
        })?;
        Ok(stages[stages.len() - 4])
    }

    /// The stem, the blocks' graphs and the last convolution, loaded under `prefix`
    /// (torchvision's `features` numbering); batch norms eps 0.001.
    pub(crate) fn load_parts(
        &self,
        gpu: &Gpu,
        sd: &StateDict,
        prefix: &str,
    ) -> Result<(ConvBnAct, Vec<Graph>, ConvBnAct)> {
        fail_if(
            !(self.width_mult.is_finite() && self.width_mult > 0.0),
            "width_mult",
            || format!("must be positive, got {}", self.width_mult),
        )?;
        let eps = 1e-3;
        let hs = Activation::HardSwish;
        let table = self.blocks();
        let stem = Conv2dParams::new(3, table[0].input_channels, 3)
            .stride(2)
            .padding(1)
            .bias(false)
            .activation(hs);
        let stem = conv_bn_at(gpu, sd, stem, prefix, 0, eps)?;
        let blocks = table
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                let name = key(prefix, &(i + 1).to_string());
                Ok(MobileNetV3Block::load(gpu, b, sd, &name)?.into_graph())
            })
            .collect::<Result<Vec<_>>>()?;
        let last_in = table[table.len() - 1].out_channels;
        let last = Conv2dParams::new(last_in, 6 * last_in, 1)
            .bias(false)
            .activation(hs);
        let last = conv_bn_at(gpu, sd, last, prefix, table.len() + 1, eps)?;
        Ok((stem, blocks, last))
    }
}

setters!(MobileNetV3FeaturesConfig {
    /// Sets the width multiplier.
    width_mult: f64,
    /// Sets `reduced_tail`.
    reduced_tail: bool,
    /// Sets `dilated`.
    dilated: bool,
});

/// torchvision's `mobilenet_v3_large(...).features` / `mobilenet_v3_small(...).features`:
/// a 3x3 stride-2 hard-swish stem, the inverted residuals of the table (SE with
/// hard-sigmoid gates, ReLU or hard-swish), and a 1x1 convolution to 6x the last block's
/// channels with hard-swish; batch norms (eps 0.001) folded.
pub type MobileNetV3Features = Model<MobileNetV3FeaturesConfig>;

impl Architecture for MobileNetV3FeaturesConfig {
    /// Loads `{prefix}.0 ... {prefix}.{n + 1}` (`features` in a whole model's state
    /// dict, empty for the state dict of `.features` itself).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let cfg = self;
        let (stem, blocks, last) = cfg.load_parts(gpu, sd, prefix)?;
        let mut g = Graph::new();
        let x = g.input();
        let outs = append_features(&mut g, x, stem, blocks, last);
        g.set_outputs(&outs[outs.len() - 1..]);
        Ok(g)
    }
}
