//! torchvision's RegNets (`regnet_x_400mf` .. `regnet_x_32gf`, `regnet_y_400mf` ..
//! `regnet_y_128gf`) as feature extractors: the stem (3x3 stride 2, batch norm, ReLU)
//! and the four stages of `trunk_output`, each block a residual bottleneck `relu(proj(x) +
//! c(se(b(a(x)))))` (1x1, grouped 3x3 carrying the stage's stride, squeeze-and-
//! excitation in the Y models, 1x1), without the pooling and `fc`. The stage widths,
//! depths and group widths are the ones torchvision's `BlockParams.from_init_params`
//! computes for each model (bottleneck multiplier 1).
//!
//! timm's RegNets (`regnetx_002` .. `regnetx_320`, `regnety_002` .. `regnety_640`,
//! [`RegNetConfig::timm`]) are the same network under timm's names (`stem.conv` /
//! `stem.bn`, `s{i}.b{j}.conv1` / `conv2` / `se.fc1` / `se.fc2` / `conv3` / `downsample`,
//! each a `.conv` and a `.bn`), with timm's stage widths: smp runs them as its
//! `tu-regnetx_*` / `tu-regnety_*` encoders (and its deprecated `timm-regnetx_*` /
//! `timm-regnety_*` names), dilated by timm's `output_stride` rule.

use crate::blocks::{conv_bn, Architecture, ConvBnAct, Graph, Model, SeNode, ValueId};
use crate::error::{fail_if, positive, Error, Result};
use crate::gpu::Gpu;
use crate::ops::attention::SqueezeExcitationParams;
use crate::ops::conv::{Conv2dParams, ResidualJoin};
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// One stage of a RegNet: blocks, output width, group width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RegNetStage {
    /// Blocks in the stage.
    pub depth: usize,
    /// Output channels of every block (and their bottleneck's).
    pub width: usize,
    /// Channels per group of the 3x3 convolutions.
    pub group_width: usize,
}

/// torchvision's `RegNet(block_params, stem_width=32)` with its `BlockParams` expanded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RegNetConfig {
    /// The four stages (`block1` .. `block4`).
    pub stages: [RegNetStage; 4],
    /// Squeeze-and-excitation channels as a fraction of each block's input width, in
    /// hundredths (the Y models: 25, `se_ratio=0.25`; the X models: 0, none).
    pub se_percent: usize,
    /// The stem's output channels (32).
    pub stem_width: usize,
}

impl RegNetConfig {
    /// By torchvision's name (`regnet_x_400mf`, `_800mf`, `_1_6gf`, `_3_2gf`, `_8gf`,
    /// `_16gf`, `_32gf`; `regnet_y_` the same and `_128gf`); any other name is an error
    /// naming `arch`.
    pub fn torchvision(name: &str) -> Result<Self> {
        let (stages, se): ([(usize, usize, usize); 4], bool) = match name {
            "regnet_y_400mf" => ([(1, 48, 8), (3, 104, 8), (6, 208, 8), (6, 440, 8)], true),
            "regnet_y_800mf" => (
                [(1, 64, 16), (3, 144, 16), (8, 320, 16), (2, 784, 16)],
                true,
            ),
            "regnet_y_1_6gf" => (
                [(2, 48, 24), (6, 120, 24), (17, 336, 24), (2, 888, 24)],
                true,
            ),
            "regnet_y_3_2gf" => (
                [(2, 72, 24), (5, 216, 24), (13, 576, 24), (1, 1512, 24)],
                true,
            ),
            "regnet_y_8gf" => (
                [(2, 224, 56), (4, 448, 56), (10, 896, 56), (1, 2016, 56)],
                true,
            ),
            "regnet_y_16gf" => (
                [
                    (2, 224, 112),
                    (4, 448, 112),
                    (11, 1232, 112),
                    (1, 3024, 112),
                ],
                true,
            ),
            "regnet_y_32gf" => (
                [
                    (2, 232, 232),
                    (5, 696, 232),
                    (12, 1392, 232),
                    (1, 3712, 232),
                ],
                true,
            ),
            "regnet_y_128gf" => (
                [
                    (2, 528, 264),
                    (7, 1056, 264),
                    (17, 2904, 264),
                    (1, 7392, 264),
                ],
                true,
            ),
            "regnet_x_400mf" => (
                [(1, 32, 16), (2, 64, 16), (7, 160, 16), (12, 400, 16)],
                false,
            ),
            "regnet_x_800mf" => (
                [(1, 64, 16), (3, 128, 16), (7, 288, 16), (5, 672, 16)],
                false,
            ),
            "regnet_x_1_6gf" => (
                [(2, 72, 24), (4, 168, 24), (10, 408, 24), (2, 912, 24)],
                false,
            ),
            "regnet_x_3_2gf" => (
                [(2, 96, 48), (6, 192, 48), (15, 432, 48), (2, 1008, 48)],
                false,
            ),
            "regnet_x_8gf" => (
                [(2, 80, 80), (5, 240, 120), (15, 720, 120), (1, 1920, 120)],
                false,
            ),
            "regnet_x_16gf" => (
                [(2, 256, 128), (6, 512, 128), (13, 896, 128), (1, 2048, 128)],
                false,
            ),
            "regnet_x_32gf" => (
                [
                    (2, 336, 168),
                    (7, 672, 168),
                    (13, 1344, 168),
                    (1, 2520, 168),
                ],
                false,
            ),
            other => {
                return Err(Error::InvalidParam {
                    name: "arch",
                    reason: format!(
                        "{other:?} is not one of torchvision's regnet_x_400mf .. regnet_x_32gf, \
                         regnet_y_400mf .. regnet_y_128gf"
                    ),
                })
            }
        };
        Ok(RegNetConfig {
            stages: stages.map(|(depth, width, group_width)| RegNetStage {
                depth,
                width,
                group_width,
            }),
            se_percent: if se { 25 } else { 0 },
            stem_width: 32,
        })
    }
}

impl RegNetConfig {
    /// By timm's name (`regnetx_002`, `_004`, `_006`, `_008`, `_016`, `_032`, `_040`,
    /// `_064`, `_080`, `_120`, `_160`, `_320`; `regnety_` the same and `_640`; a
    /// pretrained tag after `.` ignored): the stage depths, widths and group widths timm's
    /// `generate_regnet` gives (listed from timm 1.0); `None` for any other name.
    pub fn timm(name: &str) -> Option<Self> {
        let name = name.split('.').next()?;
        let (se, variant) = match name.strip_prefix("regnetx_") {
            Some(v) => (false, v),
            None => (true, name.strip_prefix("regnety_")?),
        };
        let stages: [(usize, usize, usize); 4] = match (se, variant) {
            (_, "002") => [(1, 24, 8), (1, 56, 8), (4, 152, 8), (7, 368, 8)],
            (false, "004") => [(1, 32, 16), (2, 64, 16), (7, 160, 16), (12, 384, 16)],
            (false, "006") => [(1, 48, 24), (3, 96, 24), (5, 240, 24), (7, 528, 24)],
            (false, "008") => [(1, 64, 16), (3, 128, 16), (7, 288, 16), (5, 672, 16)],
            (false, "016") => [(2, 72, 24), (4, 168, 24), (10, 408, 24), (2, 912, 24)],
            (false, "032") => [(2, 96, 48), (6, 192, 48), (15, 432, 48), (2, 1008, 48)],
            (false, "040") => [(2, 80, 40), (5, 240, 40), (14, 560, 40), (2, 1360, 40)],
            (false, "064") => [(2, 168, 56), (4, 392, 56), (10, 784, 56), (1, 1624, 56)],
            (false, "080") => [(2, 80, 80), (5, 240, 120), (15, 720, 120), (1, 1920, 120)],
            (_, "120") => [(2, 224, 112), (5, 448, 112), (11, 896, 112), (1, 2240, 112)],
            (false, "160") => [(2, 256, 128), (6, 512, 128), (13, 896, 128), (1, 2048, 128)],
            (false, "320") => [
                (2, 336, 168),
                (7, 672, 168),
                (13, 1344, 168),
                (1, 2520, 168),
            ],
            (true, "004") => [(1, 48, 8), (3, 104, 8), (6, 208, 8), (6, 440, 8)],
            (true, "006") => [(1, 48, 16), (3, 112, 16), (7, 256, 16), (4, 608, 16)],
            (true, "008") => [(1, 64, 16), (3, 128, 16), (8, 320, 16), (2, 768, 16)],
            (true, "016") => [(2, 48, 24), (6, 120, 24), (17, 336, 24), (2, 888, 24)],
            (true, "032") => [(2, 72, 24), (5, 216, 24), (13, 576, 24), (1, 1512, 24)],
            (true, "040") => [(2, 128, 64), (6, 192, 64), (12, 512, 64), (2, 1088, 64)],
            (true, "064") => [(2, 144, 72), (7, 288, 72), (14, 576, 72), (2, 1296, 72)],
            (true, "080") => [(2, 168, 56), (4, 448, 56), (10, 896, 56), (1, 2016, 56)],
            (true, "160") => [
                (2, 224, 112),
                (4, 448, 112),
                (11, 1232, 112),
                (1, 3024, 112),
            ],
            (true, "320") => [
                (2, 232, 232),
                (5, 696, 232),
                (12, 1392, 232),
                (1, 3712, 232),
            ],
            (true, "640") => [
                (2, 328, 328),
                (5, 984, 328),
                (12, 1968, 328),
                (1, 4920, 328),
            ],
            _ => return None,
        };
        Some(RegNetConfig {
            stages: stages.map(|(depth, width, group_width)| RegNetStage {
                depth,
                width,
                group_width,
            }),
            se_percent: if se { 25 } else { 0 },
            stem_width: 32,
        })
    }

    /// Channels of smp's features for an input of `in_channels` channels: the input's,
    /// the stem's, then each stage's.
    pub(crate) fn feature_channels(&self, in_channels: usize) -> Vec<usize> {
        let mut c = vec![in_channels, self.stem_width];
        c.extend(self.stages.iter().map(|s| s.width));
        c
    }

    /// timm's model under `prefix` (`stem.conv`, `s{i}.b{j}.*`, taking `in_channels`
    /// channels) appended to `g` after `x` for smp's `depth` features: the input, the
    /// stem's and the first `depth - 1` stages' outputs. Stages past `output_stride` run
    /// at stride 1, dilated by timm's rule (each stage's first block keeps the previous
    /// stage's dilation while it is 1 or 2, else 2).
    pub(crate) fn append_timm(
        &self,
        g: &mut Graph,
        x: ValueId,
        ctx: (&Gpu, &StateDict, &str),
        (in_channels, depth, output_stride): (usize, usize, usize),
    ) -> Result<Vec<ValueId>> {
        let trunk = (in_channels, depth.saturating_sub(1), output_stride);
        let mut features = vec![x];
        features.extend(self.append_trunk(g, x, ctx, &TIMM, trunk)?);
        Ok(features)
    }

    /// The stem and the first `stages` stages under `prefix`, named by `names`, appended
    /// to `g` after `x` (`in_channels` channels): their outputs, the stem's first. Stages
    /// past `output_stride` run at stride 1, dilated by timm's rule (32: never).
    fn append_trunk(
        &self,
        g: &mut Graph,
        x: ValueId,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        names: &BlockNames,
        (in_channels, stages, output_stride): (usize, usize, usize),
    ) -> Result<Vec<ValueId>> {
        let stem = Conv2dParams::new(in_channels, self.stem_width, 3)
            .stride(2)
            .padding(1)
            .bias(false)
            .activation(Activation::Relu);
        let (conv, bn) = names.stem;
        let stem = conv_bn(gpu, sd, stem, &key(prefix, conv), &key(prefix, bn), EPS)?;
        let mut y = g.add("stem", stem, &[x]);
        let mut outs = vec![y];
        let (mut reached, mut dilation) = (2, 1);
        let mut width_in = self.stem_width;
        for (i, stage) in self.stages.iter().enumerate().take(stages) {
            let stride = if reached >= output_stride {
                dilation *= 2;
                1
            } else {
                reached *= 2;
                2
            };
            let mut first = if dilation <= 2 { 1 } else { 2 };
            for j in 0..stage.depth {
                let name = (names.block)(i + 1, j);
                let stride = if j == 0 { stride } else { 1 };
                let block = (width_in, stage.width, stride, stage.group_width);
                y = self.block(g, y, (gpu, sd, prefix), (&name, names), block, first)?;
                width_in = stage.width;
                first = dilation;
            }
            outs.push(y);
        }
        Ok(outs)
    }
}

/// The names of the stem's convolution and batch norm, of block `j` (from 0) of stage
/// `i` (from 1), of a block's layers under its own, and the two of each layer's
/// convolution and batch norm.
struct BlockNames {
    stem: (&'static str, &'static str),
    block: fn(usize, usize) -> String,
    proj: &'static str,
    a: &'static str,
    b: &'static str,
    se: (&'static str, &'static str),
    c: &'static str,
    conv_bn: (&'static str, &'static str),
}

/// torchvision's names (`Conv2dNormActivation`: `.0` and `.1`).
const TORCHVISION: BlockNames = BlockNames {
    stem: ("stem.0", "stem.1"),
    block: |i, j| format!("trunk_output.block{i}.block{i}-{j}"),
    proj: "proj",
    a: "f.a",
    b: "f.b",
    se: ("f.se.fc1", "f.se.fc2"),
    c: "f.c",
    conv_bn: ("0", "1"),
};

/// timm's names (`ConvNormAct`: `.conv` and `.bn`).
const TIMM: BlockNames = BlockNames {
    stem: ("stem.conv", "stem.bn"),
    block: |i, j| format!("s{i}.b{}", j + 1),
    proj: "downsample",
    a: "conv1",
    b: "conv2",
    se: ("se.fc1", "se.fc2"),
    c: "conv3",
    conv_bn: ("conv", "bn"),
};

/// torchvision's RegNet up to `trunk_output`: input `[N, 3, H, W]`, output the last
/// stage's `[N, width, H / 32, W / 32]` (rounded up at each stride);
/// [`Model::forward_all`] also gives `block3`, `block2`, `block1` and the stem's output,
/// in that order after it.
pub type RegNetFeatures = Model<RegNetConfig>;

impl Architecture for RegNetConfig {
    /// Checks the configuration on its own: positive depths, widths and group widths
    /// dividing the widths.
    fn validate(&self) -> Result<()> {
        positive(&[("stem_width", self.stem_width)])?;
        for s in &self.stages {
            positive(&[
                ("depth", s.depth),
                ("width", s.width),
                ("group_width", s.group_width),
            ])?;
            fail_if(
                !s.width.is_multiple_of(s.group_width),
                "group_width",
                || format!("{} does not divide the width {}", s.group_width, s.width),
            )?;
        }
        fail_if(self.se_percent > 100, "se_percent", || {
            format!("at most 100, got {}", self.se_percent)
        })
    }

    /// Loads `stem.{0,1}` and `trunk_output.block{i}.block{i}-{j}` under `prefix` (a
    /// whole model's state dict, its `fc` ignored).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let mut g = Graph::new();
        let x = g.input();
        let trunk = (3, self.stages.len(), 32);
        let mut outs = self.append_trunk(&mut g, x, (gpu, sd, prefix), &TORCHVISION, trunk)?;
        outs.reverse();
        g.set_outputs(&outs);
        Ok(g)
    }
}

/// Batch norm eps of every layer.
const EPS: f32 = 1e-5;

impl RegNetConfig {
    /// One `ResBottleneckBlock` `name` under `prefix`, its layers named by `names`, its 3x3
    /// convolution dilated by `dilation`.
    fn block(
        &self,
        g: &mut Graph,
        x: ValueId,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        (name, names): (&str, &BlockNames),
        (width_in, width_out, stride, group_width): (usize, usize, usize, usize),
        dilation: usize,
    ) -> Result<ValueId> {
        let at = |n: &str| key(prefix, &key(name, n));
        let node = |n: &str| key(name, n);
        let layer = |p: Conv2dParams, n: &str| -> Result<ConvBnAct> {
            let (conv, bn) = names.conv_bn;
            conv_bn(gpu, sd, p, &key(&at(n), conv), &key(&at(n), bn), EPS)
        };
        let relu = Activation::Relu;
        let residual = if width_in != width_out || stride != 1 {
            let p = Conv2dParams::new(width_in, width_out, 1)
                .stride(stride)
                .bias(false);
            g.add(node(names.proj), layer(p, names.proj)?, &[x])
        } else {
            x
        };
        let a = Conv2dParams::new(width_in, width_out, 1)
            .bias(false)
            .activation(relu);
        let a = g.add(node(names.a), layer(a, names.a)?, &[x]);
        let b = Conv2dParams::new(width_out, width_out, 3)
            .stride(stride)
            .padding(dilation)
            .dilation(dilation)
            .groups(width_out / group_width)
            .bias(false)
            .activation(relu);
        let b = g.add(node(names.b), layer(b, names.b)?, &[a]);
        let c = Conv2dParams::new(width_out, width_out, 1).bias(false);
        let c = layer(c, names.c)?.with_residual(ResidualJoin::AddThen(relu))?;
        if self.se_percent == 0 {
            return Ok(g.add(node(names.c), c, &[b, residual]));
        }
        // torchvision's and timm's int(round(se_ratio * width_in)).
        let squeeze = ((self.se_percent * width_in) as f64 / 100.0).round() as usize;
        let se = SqueezeExcitationParams::new(width_out, squeeze.max(1));
        let (fc1, fc2) = names.se;
        let se = SeNode::load(gpu, sd, se, &at(fc1), &at(fc2))?.gate_only();
        let gate = g.add(node(fc1.trim_end_matches(".fc1")), se, &[b]);
        let c = c.with_input_gate(Activation::Sigmoid)?;
        Ok(g.add(node(names.c), c, &[b, gate, residual]))
    }
}
