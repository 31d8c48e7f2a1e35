//! timm's HRNets (`hrnet_w18_small`, `hrnet_w18_small_v2`, `hrnet_w18` .. `hrnet_w64`:
//! "Deep High-Resolution Representation Learning") as segmentation_models_pytorch runs them,
//! through its `TimmUniversalEncoder` (`tu-hrnet_*`): timm's `HighResolutionNetFeatures`
//! with its default `feature_location='incre'`.
//!
//! - A stem of two 3x3 stride-2 convolutions (`conv1` / `bn1`, `conv2` / `bn2`, ReLU), the
//!   first's output the stride-2 feature.
//! - `layer1`: ResNet bottlenecks at stride 4.
//! - Stages 2, 3 and 4 (`stage{s}.{m}`): `HighResolutionModule`s of two, three and four
//!   parallel branches at strides 4, 8, 16 and 32, each branch a run of ResNet basic blocks
//!   (`branches.{b}.{k}`), then every branch's output fused from all of them
//!   (`fuse_layers.{i}.{j}`): a lower resolution by a 1x1 convolution and a nearest
//!   upsampling, a higher one by a chain of 3x3 stride-2 convolutions, the sum through a
//!   ReLU. A transition (`transition{s}`) opens each new branch with a 3x3 stride-2
//!   convolution from the last one; `transition1.0` maps stage 1's output to the first
//!   branch's width with a 3x3 convolution (where the two differ).
//! - `incre_modules.{i}`: one bottleneck a branch, to 128, 256, 512 and 1024 channels: the
//!   features at strides 4 to 32.
//!
//! Every convolution is followed by a batch norm (eps 1e-5) and has no bias.
//!
//! HRNet-Semantic-Segmentation's HRNetV2 ([`HrNetSeg`](super::HrNetSeg)) runs the same
//! trunk, its fusions resizing bilinearly to each branch's size ([`FuseResize`]).

use super::conv3x3;
use crate::blocks::{
    conv_bn, BasicBlock, BasicBlockConfig, Bottleneck, BottleneckConfig, ConvBnAct, Graph, Op,
    ValueId,
};
use crate::error::{fail_if, positive, Result};
use crate::gpu::Gpu;
use crate::ops::conv::{Conv2dParams, ResidualJoin};
use crate::ops::upsample::{UpsampleMode, UpsampleParams};
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// An HRNet (timm's `cfg_cls` entry): the stem, stage 1's bottlenecks and the branches of
/// stages 2 to 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HrNetConfig {
    /// Output channels of the first 3x3 convolution (`stem_width`; the second outputs 64).
    /// timm reports 64 channels for this feature whatever it is, so smp's decoders run only
    /// at 64 (any other width is an error naming `stem_width`).
    pub stem_width: usize,
    /// Bottlenecks in `layer1` (stage 1's `num_blocks`).
    pub stage1_blocks: usize,
    /// Their `planes` (stage 1's `num_channels`; they output four times as many).
    pub stage1_planes: usize,
    /// `HighResolutionModule`s in stages 2, 3 and 4 (`num_modules`).
    pub modules: [usize; 3],
    /// Basic blocks per branch in every module of stages 2, 3 and 4 (`num_blocks`).
    pub blocks: [usize; 3],
    /// Channels of the four branches (`num_channels`: stage `s` runs the first `s`).
    pub widths: [usize; 4],
}

/// Batch norm eps of every layer.
const EPS: f32 = 1e-5;

/// The `planes` of the bottleneck `incre_modules` appends to each branch (timm's
/// `head_channels`; the features have four times as many channels).
const HEAD_PLANES: [usize; 4] = [32, 64, 128, 256];

/// Output channels of the stem's second convolution (fixed in timm).
const STEM_OUT: usize = 64;

impl HrNetConfig {
    /// timm's `hrnet_w18_small`, `hrnet_w18_small_v2`, `hrnet_w18`, `hrnet_w30`,
    /// `hrnet_w32`, `hrnet_w40`, `hrnet_w44`, `hrnet_w48`, `hrnet_w64`, and the
    /// `hrnet_w18_ssld` / `hrnet_w48_ssld` weights of the same networks (a pretrained tag
    /// after `.` ignored); `None` for any other name.
    pub fn timm(name: &str) -> Option<Self> {
        let name = name.split('.').next()?;
        let wide = |w: usize| HrNetConfig {
            stem_width: 64,
            stage1_blocks: 4,
            stage1_planes: 64,
            modules: [1, 4, 3],
            blocks: [4, 4, 4],
            widths: [w, 2 * w, 4 * w, 8 * w],
        };
        Some(match name {
            "hrnet_w18_small" => HrNetConfig {
                stage1_blocks: 1,
                stage1_planes: 32,
                modules: [1, 1, 1],
                blocks: [2, 2, 2],
                ..wide(16)
            },
            "hrnet_w18_small_v2" => HrNetConfig {
                stage1_blocks: 2,
                modules: [1, 3, 2],
                blocks: [2, 2, 2],
                ..wide(18)
            },
            "hrnet_w18" | "hrnet_w18_ssld" => wide(18),
            "hrnet_w30" => wide(30),
            "hrnet_w32" => wide(32),
            "hrnet_w40" => wide(40),
            "hrnet_w44" => wide(44),
            "hrnet_w48" | "hrnet_w48_ssld" => wide(48),
            "hrnet_w64" => wide(64),
            _ => return None,
        })
    }

    /// Checks the configuration: every width, count and depth at least 1 (timm builds a
    /// branch's first block even at depth 0; this library asks for what it runs), and the
    /// stem's width 64 (see the field).
    pub(crate) fn validate(&self) -> Result<()> {
        fail_if(self.stem_width != STEM_OUT, "stem_width", || {
            format!(
                "smp sizes its decoder for the 64 channels timm reports for the stem's \
                 feature, and HRNet-Semantic-Segmentation builds the stem 64 wide, got {}",
                self.stem_width
            )
        })?;
        positive(&[
            ("stage1_blocks", self.stage1_blocks),
            ("stage1_planes", self.stage1_planes),
        ])?;
        for s in 0..3 {
            positive(&[("modules", self.modules[s]), ("blocks", self.blocks[s])])?;
        }
        positive(&self.widths.map(|w| ("widths", w)))
    }

    /// Channels of smp's features for an input of `in_channels` channels: the input, the
    /// stem's first convolution and the four `incre_modules`.
    pub(crate) fn feature_channels(&self, in_channels: usize) -> Vec<usize> {
        let mut c = vec![in_channels, self.stem_width];
        c.extend(HEAD_PLANES.map(|p| 4 * p));
        c
    }

    /// smp's features of the encoder under `prefix` (smp's `encoder.model`) appended to `g`
    /// after `x`: the input and the first `depth` of the stem's and the four
    /// `incre_modules`' outputs. timm's HRNet cannot be dilated: an `output_stride` other
    /// than 32 is an error naming `encoder_output_stride`, as timm refuses it.
    pub(crate) fn append_timm(
        &self,
        g: &mut Graph,
        x: ValueId,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        (in_channels, depth, output_stride): (usize, usize, usize),
    ) -> Result<Vec<ValueId>> {
        fail_if(output_stride != 32, "encoder_output_stride", || {
            format!("timm's HRNet cannot be dilated (it asserts an output stride of 32), got {output_stride}")
        })?;
        let ctx = (gpu, sd, prefix);
        let stem = self.append_stem(g, x, ctx, in_channels)?;
        let mut features = vec![x, stem];
        if depth < 2 {
            return Ok(features);
        }
        let branches = self.append_stages(g, stem, ctx, FuseResize::Nearest)?;
        for (i, &b) in branches.iter().enumerate().take(depth - 1) {
            let name = format!("incre_modules.{i}.0");
            let c = BottleneckConfig::new(self.widths[i], HEAD_PLANES[i]);
            let block = Bottleneck::load(gpu, c, sd, &key(prefix, &name))?.into_graph();
            features.push(g.add(name, block, &[b]));
        }
        Ok(features)
    }

    /// The stem's first convolution (`conv1`, `bn1`, ReLU) on `x` of `in_channels`.
    pub(crate) fn append_stem(
        &self,
        g: &mut Graph,
        x: ValueId,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        in_channels: usize,
    ) -> Result<ValueId> {
        let at = |n: &str| key(prefix, n);
        let p = conv3x3(in_channels, self.stem_width, 2).activation(Activation::Relu);
        let stem = conv_bn(gpu, sd, p, &at("conv1"), &at("bn1"), EPS)?;
        Ok(g.add("conv1", stem, &[x]))
    }

    /// Everything after the stem's first convolution's output `stem` to the end of stage
    /// 4 (`conv2` / `bn2`, `layer1`, the transitions and stages 2 to 4), each fusion's
    /// lower resolutions resized by `resize`; returns the four branches' outputs, at
    /// strides 4 to 32.
    pub(crate) fn append_stages(
        &self,
        g: &mut Graph,
        stem: ValueId,
        ctx: (&Gpu, &StateDict, &str),
        resize: FuseResize,
    ) -> Result<Vec<ValueId>> {
        let (gpu, sd, prefix) = ctx;
        let relu = Activation::Relu;
        let at = |n: &str| key(prefix, n);
        let p = conv3x3(self.stem_width, STEM_OUT, 2).activation(relu);
        let y = g.add(
            "conv2",
            conv_bn(gpu, sd, p, &at("conv2"), &at("bn2"), EPS)?,
            &[stem],
        );
        let y = self.append_layer1(g, y, ctx)?;
        // Stage 1 ends in one branch of 4 x planes channels; transition1 maps it to the
        // first branch's width where the two differ, and opens the second.
        let stage1_out = 4 * self.stage1_planes;
        let first = if stage1_out == self.widths[0] {
            y
        } else {
            let p = conv3x3(stage1_out, self.widths[0], 1).activation(relu);
            let t = conv_bn_seq(ctx, p, "transition1.0")?;
            g.add("transition1.0", t, &[y])
        };
        let p = conv3x3(stage1_out, self.widths[1], 2).activation(relu);
        let second = g.add(
            "transition1.1",
            conv_bn_seq(ctx, p, "transition1.1.0")?,
            &[y],
        );
        let mut branches = vec![first, second];
        for stage in 2..=4 {
            if stage > 2 {
                // The new branch from the last one; the others carry on (timm's identity
                // transitions: every branch keeps its width from stage to stage).
                let name = format!("transition{}.{}", stage - 1, stage - 1);
                let last = *branches.last().expect("branches");
                let p = conv3x3(self.widths[stage - 2], self.widths[stage - 1], 2).activation(relu);
                let t = conv_bn_seq(ctx, p, &key(&name, "0"))?;
                branches.push(g.add(name, t, &[last]));
            }
            for m in 0..self.modules[stage - 2] {
                let name = format!("stage{stage}.{m}");
                let module = (name.as_str(), self.blocks[stage - 2], resize);
                branches = self.append_module(g, &branches, ctx, module)?;
            }
        }
        Ok(branches)
    }

    /// `layer1`: the stage-1 bottlenecks on the stem's 64 channels.
    fn append_layer1(
        &self,
        g: &mut Graph,
        x: ValueId,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
    ) -> Result<ValueId> {
        let mut y = x;
        let mut inplanes = STEM_OUT;
        for k in 0..self.stage1_blocks {
            let name = format!("layer1.{k}");
            let c = BottleneckConfig::new(inplanes, self.stage1_planes);
            let block = Bottleneck::load(gpu, c, sd, &key(prefix, &name))?.into_graph();
            y = g.add(name, block, &[y]);
            inplanes = 4 * self.stage1_planes;
        }
        Ok(y)
    }

    /// One `HighResolutionModule` named `name` on `branches`: `blocks` basic blocks a
    /// branch, then the fusion (its lower resolutions resized by `resize`); returns the
    /// fused branches.
    fn append_module(
        &self,
        g: &mut Graph,
        branches: &[ValueId],
        ctx: (&Gpu, &StateDict, &str),
        (name, blocks, resize): (&str, usize, FuseResize),
    ) -> Result<Vec<ValueId>> {
        let (gpu, sd, prefix) = ctx;
        let mut outs = Vec::with_capacity(branches.len());
        for (b, &x) in branches.iter().enumerate() {
            let mut y = x;
            for k in 0..blocks {
                let block_name = format!("{name}.branches.{b}.{k}");
                let c = BasicBlockConfig::new(self.widths[b], self.widths[b]);
                let block = BasicBlock::load(gpu, c, sd, &key(prefix, &block_name))?;
                y = g.add(block_name, block.into_graph(), &[y]);
            }
            outs.push(y);
        }
        (0..outs.len())
            .map(|i| self.append_fuse(g, &outs, ctx, (name, i, resize)))
            .collect()
    }

    /// Output `i` of the module `name`'s fusion: `relu(sum_j f_ij(x_j))`, `f_ii` the
    /// identity, a lower resolution `j > i` by its 1x1 convolution and `resize`, a higher
    /// one `j < i` by `i - j` 3x3 stride-2 convolutions (ReLU between them). The last of
    /// those chains adds the rest of the sum in its store, with the ReLU where it is the
    /// last term (the terms are added in another order than PyTorch's left-to-right sum:
    /// the same value up to rounding).
    fn append_fuse(
        &self,
        g: &mut Graph,
        x: &[ValueId],
        ctx: (&Gpu, &StateDict, &str),
        (name, i, resize): (&str, usize, FuseResize),
    ) -> Result<ValueId> {
        let relu = Activation::Relu;
        let w = &self.widths;
        let fuse = |j: usize| format!("{name}.fuse_layers.{i}.{j}");
        let mut sum = x[i];
        for (j, &xj) in x.iter().enumerate().skip(i + 1) {
            let p = Conv2dParams::new(w[j], w[i], 1).bias(false);
            let conv = g.add(fuse(j), conv_bn_seq(ctx, p, &fuse(j))?, &[xj]);
            let up = match resize {
                FuseResize::Nearest => {
                    let scale = (1usize << (j - i)) as f64;
                    let up = UpsampleParams {
                        scale_factor: Some((scale, scale)),
                        ..UpsampleParams::nearest()
                    };
                    g.add(key(&fuse(j), "2"), Op::Upsample(up), &[conv])
                }
                FuseResize::Bilinear { align_corners } => {
                    let mode = UpsampleMode::Bilinear { align_corners };
                    g.resize_like(key(&fuse(j), "up"), mode, conv, x[i])
                }
            };
            sum = g.add(key(name, "add"), Op::Add, &[sum, up]);
        }
        if i == 0 {
            return Ok(g.add(key(name, "fuse_act"), Op::Activation(relu), &[sum]));
        }
        for j in 0..i {
            let mut y = x[j];
            for k in 0..i - j {
                let conv_name = key(&fuse(j), &k.to_string());
                let last = k == i - j - 1;
                let p = conv3x3(w[j], if last { w[i] } else { w[j] }, 2);
                if !last {
                    y = g.add(
                        &conv_name,
                        conv_bn_seq(ctx, p.activation(relu), &conv_name)?,
                        &[y],
                    );
                    continue;
                }
                // The sum so far joins in the store: timm adds f_ij(x_j) to it.
                let join = if j == i - 1 {
                    ResidualJoin::AddThen(relu)
                } else {
                    ResidualJoin::AfterActivation
                };
                let conv = conv_bn_seq(ctx, p, &conv_name)?.with_residual(join)?;
                sum = g.add(conv_name, conv, &[y, sum]);
            }
        }
        Ok(sum)
    }
}

/// How a fusion brings a lower resolution up to a higher one's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FuseResize {
    /// timm's: nearest, by the scale factor `2^(j - i)` (`nn.Upsample`).
    Nearest,
    /// HRNet-Semantic-Segmentation's: bilinear to the higher resolution's size
    /// (`F.interpolate(size=..., align_corners=ALIGN_CORNERS)`).
    Bilinear {
        /// `config.MODEL.ALIGN_CORNERS`.
        align_corners: bool,
    },
}

/// A convolution `{name}.0` with its batch norm `{name}.1` (a `Sequential` of timm's).
fn conv_bn_seq(
    (gpu, sd, prefix): (&Gpu, &StateDict, &str),
    p: Conv2dParams,
    name: &str,
) -> Result<ConvBnAct> {
    let at = key(prefix, name);
    conv_bn(gpu, sd, p, &key(&at, "0"), &key(&at, "1"), EPS)
}
