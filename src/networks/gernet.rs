//! timm's GENets (`gernet_s`, `gernet_m`, `gernet_l`: "GPU-Efficient Networks", timm's
//! `ByobNet`) as segmentation_models_pytorch runs them, through its `TimmUniversalEncoder`
//! (`tu-gernet_*`, and its deprecated `timm-gernet_*` names): a 3x3 stride-2 stem (`stem`),
//! five stages of residual blocks (`stages_{i}.{j}`) and a 1x1 convolution to the model's
//! feature width (`final_conv`), every convolution followed by a batch norm (`.conv`,
//! `.bn`). The first two stages hold basic blocks (two 3x3 convolutions), the last three
//! bottlenecks (1x1, 3x3, 1x1; depthwise in the last two); a block whose input and output
//! differ in width, stride or dilation projects its skip with a strided 1x1 convolution
//! (`shortcut`). The features are the stem's, the first three stages' and `final_conv`'s
//! (the last two stages feed it), at strides 2 to 32.

use crate::blocks::{conv_bn, make_divisible, ConvBnAct, Graph, ValueId};
use crate::error::{fail_if, positive, Result};
use crate::gpu::Gpu;
use crate::ops::conv::{Conv2dParams, ResidualJoin};
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// The residual block of a GERNet stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GerNetBlock {
    /// timm's `byobnet.BasicBlock`: `conv1_kxk` (3x3 at the stride, ReLU) and `conv2_kxk`
    /// (3x3), the skip added, ReLU.
    Basic,
    /// timm's `byobnet.BottleneckBlock`: `conv1_1x1` (ReLU), `conv2_kxk` (3x3 at the
    /// stride, grouped, ReLU) and `conv3_1x1`, the skip added, ReLU.
    Bottleneck,
}

/// One stage of a GERNet (timm's `ByoBlockCfg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GerNetStage {
    /// The stage's blocks.
    pub block: GerNetBlock,
    /// Blocks in the stage (`d`).
    pub depth: usize,
    /// Output channels of every block (`c`).
    pub width: usize,
    /// Width of a block's inner convolutions: timm's `make_divisible(c * br)` (`br` the
    /// bottleneck ratio).
    pub inner_width: usize,
    /// The first block's stride (`s`: 1 or 2).
    pub stride: usize,
    /// Channels per group of the grouped 3x3 convolution (`gs`; 0: one group, 1:
    /// depthwise). In a basic block it groups the second 3x3, in a bottleneck its 3x3.
    pub group_size: usize,
}

impl GerNetStage {
    fn new(
        block: GerNetBlock,
        depth: usize,
        width: usize,
        stride: usize,
        group_size: usize,
    ) -> Self {
        let ratio = match (block, group_size) {
            (GerNetBlock::Basic, _) => 1.0,
            (GerNetBlock::Bottleneck, 0) => 0.25,
            (GerNetBlock::Bottleneck, _) => 3.0,
        };
        GerNetStage {
            block,
            depth,
            width,
            inner_width: make_divisible(width as f64 * ratio, 8),
            stride,
            group_size,
        }
    }

    /// Groups of the grouped 3x3 convolution (timm's `num_groups`).
    fn groups(&self) -> usize {
        self.inner_width.checked_div(self.group_size).unwrap_or(1)
    }
}

/// A GERNet: the stem's width, the five stages and the final 1x1 convolution's width
/// (timm's `ByoModelCfg` `stem_chs`, `blocks`, `num_features`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GerNetConfig {
    /// Output channels of the stem (`stem_chs`).
    pub stem_width: usize,
    /// The five stages.
    pub stages: [GerNetStage; 5],
    /// Output channels of `final_conv` (`num_features`), the last feature's.
    pub num_features: usize,
}

/// Batch norm eps of every layer.
const EPS: f32 = 1e-5;

impl GerNetConfig {
    /// timm's `gernet_s`, `gernet_m` or `gernet_l` (a pretrained tag after `.` ignored),
    /// `None` for any other name.
    pub fn timm(name: &str) -> Option<Self> {
        use GerNetBlock::{Basic, Bottleneck};
        let stage = GerNetStage::new;
        let (stem_width, stages, num_features) = match name.split('.').next()? {
            "gernet_s" => (
                13,
                [
                    stage(Basic, 1, 48, 2, 0),
                    stage(Basic, 3, 48, 2, 0),
                    stage(Bottleneck, 7, 384, 2, 0),
                    stage(Bottleneck, 2, 560, 2, 1),
                    stage(Bottleneck, 1, 256, 1, 1),
                ],
                1920,
            ),
            "gernet_m" | "gernet_l" => {
                let (d4, d5) = if name.starts_with("gernet_m") {
                    (4, 1)
                } else {
                    (5, 4)
                };
                (
                    32,
                    [
                        stage(Basic, 1, 128, 2, 0),
                        stage(Basic, 2, 192, 2, 0),
                        stage(Bottleneck, 6, 640, 2, 0),
                        stage(Bottleneck, d4, 640, 2, 1),
                        stage(Bottleneck, d5, 640, 1, 1),
                    ],
                    2560,
                )
            }
            _ => return None,
        };
        Some(GerNetConfig {
            stem_width,
            stages,
            num_features,
        })
    }

    /// Checks the configuration: positive widths and depths, strides 1 or 2, group sizes
    /// dividing the inner widths.
    pub(crate) fn validate(&self) -> Result<()> {
        positive(&[
            ("stem_width", self.stem_width),
            ("num_features", self.num_features),
        ])?;
        for s in &self.stages {
            positive(&[
                ("depth", s.depth),
                ("width", s.width),
                ("inner_width", s.inner_width),
            ])?;
            fail_if(!(1..=2).contains(&s.stride), "stride", || {
                format!("a GERNet stage strides by 1 or 2, got {}", s.stride)
            })?;
            fail_if(
                s.group_size != 0 && !s.inner_width.is_multiple_of(s.group_size),
                "group_size",
                || {
                    format!(
                        "{} does not divide the inner width {}",
                        s.group_size, s.inner_width
                    )
                },
            )?;
        }
        Ok(())
    }

    /// Channels of smp's features for an input of `in_channels` channels: the input, the
    /// stem, the first three stages and `final_conv`.
    pub(crate) fn feature_channels(&self, in_channels: usize) -> Vec<usize> {
        let s = &self.stages;
        vec![
            in_channels,
            self.stem_width,
            s[0].width,
            s[1].width,
            s[2].width,
            self.num_features,
        ]
    }

    /// smp's features of the encoder under `prefix` (smp's `encoder.model`: `stem`,
    /// `stages_{i}`, `final_conv`) appended to `g` after `x`: the input and the first
    /// `depth - 1` of the stem's, the first three stages' and `final_conv`'s outputs.
    /// Stages past `output_stride` run at stride 1, dilated by timm's `ByobNet` rule (a
    /// stage's first block at dilation 1 while the stage's is at most 2, else 2).
    pub(crate) fn append_timm(
        &self,
        g: &mut Graph,
        x: ValueId,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        (in_channels, depth, output_stride): (usize, usize, usize),
    ) -> Result<Vec<ValueId>> {
        let relu = Activation::Relu;
        let at = |n: &str| key(prefix, n);
        let stem = Conv2dParams::new(in_channels, self.stem_width, 3)
            .stride(2)
            .padding(1)
            .bias(false)
            .activation(relu);
        let mut y = g.add("stem", layer((gpu, sd, &at("stem")), stem)?, &[x]);
        let mut features = vec![x, y];
        // The stages each feature needs: the stem's, stages 0 .. 2, all five.
        let stages = [0, 1, 2, 3, 5][depth.saturating_sub(1).min(4)];
        let mut rule = ByobOutputStride::new(output_stride);
        let mut width_in = self.stem_width;
        for (i, stage) in self.stages.iter().enumerate().take(stages) {
            let (stride, mut first, dilation) = rule.stage(stage.stride);
            for j in 0..stage.depth {
                let name = format!("stages_{i}.{j}");
                let stride = if j == 0 { stride } else { 1 };
                let shape = (width_in, stride, (first, dilation));
                y = block(g, y, (gpu, sd, &at(&name)), &name, stage, shape)?;
                width_in = stage.width;
                first = dilation;
            }
            if i < 3 {
                features.push(y);
            }
        }
        if depth == 5 {
            let p = Conv2dParams::new(width_in, self.num_features, 1)
                .bias(false)
                .activation(relu);
            let conv = layer((gpu, sd, &at("final_conv")), p)?;
            features.push(g.add("final_conv", conv, &[y]));
        }
        features.truncate(depth + 1);
        Ok(features)
    }
}

/// timm's `ByobNet` rule for its `output_stride`: a stage's stride past it becomes a
/// dilation of the stages from there on, and a stage's first block runs at dilation 1
/// while the stage's is at most 2, else at 2.
pub(crate) struct ByobOutputStride {
    output_stride: usize,
    /// The stride reached (the stem's 2 to start).
    reached: usize,
    dilation: usize,
}

impl ByobOutputStride {
    pub(crate) fn new(output_stride: usize) -> Self {
        ByobOutputStride {
            output_stride,
            reached: 2,
            dilation: 1,
        }
    }

    /// The stride of the next stage, whose own is `stride`, its first block's dilation
    /// and its other blocks'.
    pub(crate) fn stage(&mut self, stride: usize) -> (usize, usize, usize) {
        let mut stride = stride;
        if self.reached >= self.output_stride && stride > 1 {
            self.dilation *= stride;
            stride = 1;
        }
        self.reached *= stride;
        let first = if self.dilation <= 2 { 1 } else { 2 };
        (stride, first, self.dilation)
    }
}

/// One block of `stage` under `prefix` (named `name` in the graph) on `x` of `width_in`
/// channels, its first 3x3 at `stride` and dilation `d0`, its second (basic blocks) at
/// `d1`: timm's `create_shortcut` projects the skip where the widths, the stride or the
/// two dilations differ.
fn block(
    g: &mut Graph,
    x: ValueId,
    (gpu, sd, prefix): (&Gpu, &StateDict, &str),
    name: &str,
    stage: &GerNetStage,
    (width_in, stride, (d0, d1)): (usize, usize, (usize, usize)),
) -> Result<ValueId> {
    let relu = Activation::Relu;
    let layer = |p: Conv2dParams, n: &str| layer((gpu, sd, &key(prefix, n)), p);
    let node = |n: &str| key(name, n);
    let (mid, out) = (stage.inner_width, stage.width);
    let skip = if width_in != out || stride != 1 || d0 != d1 {
        let p = Conv2dParams::new(width_in, out, 1)
            .stride(stride)
            .bias(false);
        g.add(node("shortcut"), layer(p, "shortcut")?, &[x])
    } else {
        x
    };
    // timm's `get_padding(3, stride, dilation)`: symmetric.
    let conv3x3 = |c_in: usize, c_out: usize, stride: usize, dilation: usize| {
        Conv2dParams::new(c_in, c_out, 3)
            .stride(stride)
            .padding((stride - 1 + 2 * dilation) / 2)
            .dilation(dilation)
            .bias(false)
    };
    let join = ResidualJoin::AddThen(relu);
    match stage.block {
        GerNetBlock::Basic => {
            let a = conv3x3(width_in, mid, stride, d0).activation(relu);
            let a = g.add(node("conv1_kxk"), layer(a, "conv1_kxk")?, &[x]);
            let b = conv3x3(mid, out, 1, d1).groups(stage.groups());
            let b = layer(b, "conv2_kxk")?.with_residual(join)?;
            Ok(g.add(node("conv2_kxk"), b, &[a, skip]))
        }
        GerNetBlock::Bottleneck => {
            let a = Conv2dParams::new(width_in, mid, 1)
                .bias(false)
                .activation(relu);
            let a = g.add(node("conv1_1x1"), layer(a, "conv1_1x1")?, &[x]);
            let b = conv3x3(mid, mid, stride, d0)
                .groups(stage.groups())
                .activation(relu);
            let b = g.add(node("conv2_kxk"), layer(b, "conv2_kxk")?, &[a]);
            let c = Conv2dParams::new(mid, out, 1).bias(false);
            let c = layer(c, "conv3_1x1")?.with_residual(join)?;
            Ok(g.add(node("conv3_1x1"), c, &[b, skip]))
        }
    }
}

/// timm's `ConvNormAct` under `name`: the convolution `p` (`{name}.conv`) with its batch
/// norm (`{name}.bn`).
fn layer((gpu, sd, name): (&Gpu, &StateDict, &str), p: Conv2dParams) -> Result<ConvBnAct> {
    conv_bn(gpu, sd, p, &key(name, "conv"), &key(name, "bn"), EPS)
}
