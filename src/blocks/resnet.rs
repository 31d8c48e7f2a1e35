//! ResNet's blocks: torchvision's `resnet.BasicBlock` (ResNet-18 / 34) and
//! `resnet.Bottleneck` (ResNet-50 and deeper, ResNeXt and Wide ResNet included).

use ndarray::Array4;

use super::{conv_bn, Architecture, ConvBnAct, Graph, Model, Op};
use crate::error::{fail_if, Result};
use crate::gpu::Gpu;
use crate::ops::attention::{EcaParams, SqueezeExcitationParams};
use crate::ops::conv::{Conv2dParams, PaddingMode, ResidualJoin};
use crate::ops::pool::AvgPool2dParams;
use crate::ops::setters;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// torchvision's `resnet.Bottleneck` configuration (expansion 4): 1x1 reduce, 3x3 (stride,
/// groups, dilation), 1x1 expand, skip with an optional projection (`downsample`).
/// ResNeXt is `groups = 32, base_width = 4`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BottleneckConfig {
    /// Input channels.
    pub inplanes: usize,
    /// Bottleneck planes; the output has `4 * planes` channels.
    pub planes: usize,
    /// Stride of the 3x3 convolution (and of the projection).
    pub stride: usize,
    /// Groups of the 3x3 convolution (cardinality).
    pub groups: usize,
    /// Width per group at 64 planes (64 for ResNet, 4 for ResNeXt 32x4d).
    pub base_width: usize,
    /// Dilation of the 3x3 convolution.
    pub dilation: usize,
    /// The 3x3 convolution's dilation where it differs from `dilation` (timm's
    /// `first_dilation`: the first block of a dilated stage keeps the previous stage's,
    /// and with [`AntiAlias::BlurPool`] blurs after it); `None` (the default): `dilation`.
    pub first_dilation: Option<usize>,
    /// Whether the skip has a 1x1 projection with batch norm. `None` (the default) does
    /// what torchvision's module does: a projection exactly when the state dict has one
    /// (`downsample.0.weight`), or, for a state dict without it, when torchvision would
    /// build one (stride not 1, or the channel counts differ), which then must be there.
    pub downsample: Option<bool>,
    /// The projection pools before its 1x1 convolution (timm's `avg_down`: the `d`
    /// ResNets; `downsample.1` / `downsample.2`); `None` (the default): torchvision's
    /// strided 1x1 convolution (`downsample.0` / `downsample.1`).
    pub avg_down: Option<AvgDown>,
    /// Channel attention on the last batch norm's output, before the skip joins (timm's
    /// `attn_layer`, under `se`); `None` (the default): none.
    pub attn: Option<BlockAttention>,
    /// timm's anti-aliasing (`aa_layer`, see [`AntiAlias`]): a strided block runs its 3x3
    /// convolution at stride 1 and then pools at the stride (`aa`, after the ReLU);
    /// `None` (the default): none.
    pub anti_alias: Option<AntiAlias>,
    /// The 3x3 stage: torchvision's convolution (the default), Res2Net's hierarchical
    /// splits or ResNeSt's split attention.
    pub kind: BottleneckKind,
}

/// The 3x3 stage of a bottleneck.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BottleneckKind {
    /// torchvision's `conv2` / `bn2`, ReLU.
    #[default]
    Conv3x3,
    /// Res2Net's hierarchical splits (timm's `Bottle2neck`, its `scale` `s`): `conv1`
    /// widens to `s` splits of the inner width; the first `max(1, s - 1)` splits each go
    /// through a 3x3 convolution (`convs.{i}` / `bns.{i}`, ReLU), each after the first
    /// adding the previous one's output (none in a block that strides or projects), the
    /// last split passes as it is (in a block that strides or projects: a 3x3 average
    /// pool at the stride, padding 1, zeros counted), and their concatenation goes to
    /// `conv3`.
    Res2Net {
        /// The number of splits.
        scale: usize,
    },
    /// ResNeSt's split attention (timm's `ResNestBottleneck` with `avd`, its `SplitAttn`
    /// as `conv2`): a 3x3 convolution to `radix` times the inner width in `radix * groups`
    /// groups (`conv2.conv`, `conv2.bn0`, ReLU), the splits weighted by a softmax across
    /// them (a sigmoid at radix 1) of the attention of their sum (`conv2.fc1` with bias,
    /// `conv2.bn1`, ReLU, `conv2.fc2` with bias, both in `groups` groups;
    /// `make_divisible(radix * width / 4, 8)` attention channels, at least 32) and summed;
    /// a block that strides runs it at stride 1 and averages at the stride after it
    /// (`avd_last`) or, with `avd_first`, before it (`avd_first`): a 3x3 pool, padding 1,
    /// zeros counted. Radix 1 to [`MAX_RADIX`](crate::ops::attention::MAX_RADIX).
    SplitAttention {
        /// The number of splits.
        radix: usize,
        /// Average before the split attention in a block that strides (timm's
        /// `avd_first`: `resnest50d_4s2x40d`, `resnest50d_1s4x24d`), not after it.
        avd_first: bool,
    },
}

/// timm's anti-aliasing layer (`aa_layer`) in a block that strides: its 3x3 convolution
/// runs at stride 1 and this pools after it at the block's stride (`aa`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AntiAlias {
    /// `nn.AvgPool2d(stride)` (timm's `resnetaa*` models): `stride x stride` averages at
    /// the stride. The stem's max pool becomes a 2x2 average.
    AvgPool,
    /// timm's `BlurPool2d` (its `resnetblur*` models): each channel blurred by the 3x3
    /// binomial filter (`[1, 2, 1]` times itself, over 16) at the stride after reflect
    /// padding by 1; also at stride 1 in the first block of a stage whose dilation grows
    /// (timm's `first_dilation != dilation`). The stem's max pool runs at stride 1 (`maxpool.0`)
    /// and a blur strides after it (`maxpool.1`).
    BlurPool,
}

/// The channel attention of a block's output before its skip joins (timm's `attn_layer`,
/// its weights under `se`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockAttention {
    /// Squeeze-and-excitation to this many channels (`'se'`: `se.fc1` / `se.fc2`, ReLU,
    /// sigmoid gate).
    SqueezeExcitation(usize),
    /// Efficient channel attention with this odd kernel size (`'eca'`: `se.conv`, a 1-D
    /// convolution across the pooled channels without bias, sigmoid gate).
    Eca(usize),
}

/// The pooling of timm's `avg_down` projection (its `downsample_avg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AvgDown {
    /// `nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)` at the block's
    /// stride; none at stride 1 (`nn.Identity`).
    Strided,
    /// timm's `AvgPool2dSame(2, 1)` in a stage whose stride became a dilation: a zero row
    /// and column after the map, then a 2x2 average at stride 1 (the zeros counted).
    Dilated,
}

impl BottleneckConfig {
    /// A ResNet bottleneck: stride 1, groups 1, base width 64, dilation 1, the projection
    /// as the state dict says.
    pub fn new(inplanes: usize, planes: usize) -> Self {
        BottleneckConfig {
            inplanes,
            planes,
            stride: 1,
            groups: 1,
            base_width: 64,
            dilation: 1,
            first_dilation: None,
            downsample: None,
            avg_down: None,
            attn: None,
            anti_alias: None,
            kind: BottleneckKind::Conv3x3,
        }
    }

    /// Sets the groups and the width per group (ResNeXt: `groups(32, 4)`).
    pub fn groups(mut self, groups: usize, base_width: usize) -> Self {
        self.groups = groups;
        self.base_width = base_width;
        self
    }

    /// Forces the projection on or off.
    pub fn downsample(mut self, downsample: bool) -> Self {
        self.downsample = Some(downsample);
        self
    }

    /// Pools in the projection first (timm's `avg_down`).
    pub fn avg_down(mut self, avg_down: AvgDown) -> Self {
        self.avg_down = Some(avg_down);
        self
    }

    /// Squeeze-and-excitation to `squeeze` channels before the skip joins (timm's `se`).
    pub fn se(mut self, squeeze: usize) -> Self {
        self.attn = Some(BlockAttention::SqueezeExcitation(squeeze));
        self
    }

    /// Efficient channel attention with this kernel size before the skip joins (timm's
    /// `eca`).
    pub fn eca(mut self, kernel_size: usize) -> Self {
        self.attn = Some(BlockAttention::Eca(kernel_size));
        self
    }

    /// The inner width, `planes * base_width / 64 * groups` (torchvision's formula).
    pub fn width(&self) -> usize {
        (self.planes as f64 * (self.base_width as f64 / 64.0)) as usize * self.groups
    }
}

setters!(BottleneckConfig {
    /// Sets the stride.
    stride: usize,
    /// Sets the dilation.
    dilation: usize,
    /// Sets the first block's dilation of the 3x3 convolution (timm's `first_dilation`).
    first_dilation: Option<usize>,
    /// Sets timm's anti-aliasing.
    anti_alias: Option<AntiAlias>,
    /// Sets the 3x3 stage.
    kind: BottleneckKind,
});

/// A ResNet / ResNeXt bottleneck for inference: four dispatches, or three without
/// projection (the add and its ReLU are fused into the third convolution).
pub type Bottleneck = Model<BottleneckConfig>;

impl Bottleneck {
    /// Whether the skip has a projection (as the state dict said, when the
    /// configuration left it open).
    pub fn has_downsample(&self) -> bool {
        self.graph().names().any(|n| n == "downsample")
    }
}

impl Architecture for BottleneckConfig {
    /// Loads `conv1..3`, `bn1..3` and, with a projection, `downsample.0` / `downsample.1`.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let cfg = self;
        let k = |n: &str| key(prefix, n);
        let w = cfg.width();
        let out = 4 * cfg.planes;
        let downsample = projection(
            cfg.downsample,
            cfg.avg_down,
            (cfg.stride, cfg.inplanes, out),
            sd,
            prefix,
        )?;
        let scale = match cfg.kind {
            BottleneckKind::Res2Net { scale } => scale,
            _ => 1,
        };
        fail_if(scale == 0, "scale", || {
            "Res2Net's scale must be at least 1, got 0".to_string()
        })?;
        if let BottleneckKind::SplitAttention { radix, .. } = cfg.kind {
            let max = crate::ops::attention::MAX_RADIX;
            fail_if(radix == 0 || radix > max, "radix", || {
                format!("split attention takes radix 1 to {max}, got {radix}")
            })?;
        }
        let eps = 1e-5;
        let relu = Activation::Relu;
        let p1 = Conv2dParams::new(cfg.inplanes, w * scale, 1)
            .bias(false)
            .activation(relu);
        let d = cfg.first_dilation.unwrap_or(cfg.dilation);
        let p2 = Conv2dParams::new(w, w, 3)
            .stride(anti_aliased_stride(cfg.anti_alias, cfg.stride))
            .padding(d)
            .dilation(d)
            .groups(cfg.groups)
            .bias(false)
            .activation(relu);
        let p3 = Conv2dParams::new(w * scale, out, 1).bias(false);
        let mut g = Graph::new();
        let x = g.input();
        let identity = skip(
            &mut g,
            x,
            (downsample, cfg.avg_down),
            (cfg.inplanes, out, cfg.stride),
            (gpu, sd, prefix),
        )?;
        let a = g.add(
            "conv1",
            conv_bn(gpu, sd, p1, &k("conv1"), &k("bn1"), eps)?,
            &[x],
        );
        let b = match cfg.kind {
            BottleneckKind::Conv3x3 => g.add(
                "conv2",
                conv_bn(gpu, sd, p2, &k("conv2"), &k("bn2"), eps)?,
                &[a],
            ),
            BottleneckKind::Res2Net { .. } => {
                let first = cfg.stride != 1 || downsample;
                hierarchical_splits(&mut g, a, (p2, scale, first), (gpu, sd, prefix))?
            }
            BottleneckKind::SplitAttention { radix, avd_first } => {
                let avd = (cfg.stride, avd_first);
                split_attention(&mut g, a, (p2, radix, avd), (gpu, sd, prefix))?
            }
        };
        let aa = (cfg.stride, w * scale, d != cfg.dilation);
        let b = anti_alias(&mut g, b, cfg.anti_alias, aa, gpu)?;
        let conv3 = conv_bn(gpu, sd, p3, &k("conv3"), &k("bn3"), eps)?;
        let end = (conv3, out, cfg.attn);
        let y = block_end(&mut g, (b, identity), end, "conv3", (gpu, sd, prefix))?;
        g.set_outputs(&[y]);
        Ok(g)
    }
}

/// Whether a block's skip has a projection: as `forced` says, else as torchvision's module
/// does (one exactly when the state dict has `downsample.0.weight`, or, for a state dict
/// without it, when torchvision would build one: stride not 1 or the channel counts
/// differ, in which case it must be there).
fn projection(
    forced: Option<bool>,
    avg_down: Option<AvgDown>,
    (stride, inplanes, out): (usize, usize, usize),
    sd: &StateDict,
    prefix: &str,
) -> Result<bool> {
    let torchvision_rule = stride != 1 || inplanes != out;
    let conv = key(prefix, projection_names(avg_down).0);
    let downsample =
        forced.unwrap_or_else(|| sd.contains(&key(&conv, "weight")) || torchvision_rule);
    fail_if(!downsample && torchvision_rule, "downsample", || {
        format!(
            "a skip without projection needs as many input as output channels and stride 1, \
             got {inplanes} -> {out}, stride {stride}"
        )
    })?;
    Ok(downsample)
}

/// A block's last layer `last` (`channels` wide, named `name`) on `x`, joining
/// `identity`: `relu(last(x) + identity)` in its store, or with channel attention (under
/// `se` in `prefix`) `relu(y * sigmoid(attn(y)) + identity)` in the pass after it.
fn block_end(
    g: &mut Graph,
    (x, identity): (super::ValueId, super::ValueId),
    (last, channels, attn): (super::ConvBnAct, usize, Option<BlockAttention>),
    name: &str,
    (gpu, sd, prefix): (&Gpu, &StateDict, &str),
) -> Result<super::ValueId> {
    let relu = Activation::Relu;
    let Some(attn) = attn else {
        let last = last.with_residual(ResidualJoin::AddThen(relu))?;
        return Ok(g.add(name, last, &[x, identity]));
    };
    let y = g.add(name, last, &[x]);
    let logits = match attn {
        BlockAttention::SqueezeExcitation(squeeze) => {
            let params = SqueezeExcitationParams::new(channels, squeeze);
            let (fc1, fc2) = (key(prefix, "se.fc1"), key(prefix, "se.fc2"));
            let gate = super::SeNode::load(gpu, sd, params, &fc1, &fc2)?.gate_only();
            g.add("se", gate, &[y])
        }
        BlockAttention::Eca(kernel_size) => {
            let params = EcaParams::new(channels).kernel_size(kernel_size);
            let gate = super::EcaGateNode::load(gpu, sd, params, &key(prefix, "se"))?;
            g.add("se", gate, &[y])
        }
    };
    let end = Op::ScaleChannelsAdd {
        gate: Activation::Sigmoid,
        act: relu,
    };
    Ok(g.add("se.scale", end, &[y, logits, identity]))
}

/// Res2Net's hierarchical 3x3 stage on `x` (`scale` splits of `conv`'s width; `first`: the
/// block strides or projects), as [`BottleneckKind::Res2Net`] describes it; returns the
/// concatenation.
fn hierarchical_splits(
    g: &mut Graph,
    x: super::ValueId,
    (conv, scale, first): (Conv2dParams, usize, bool),
    (gpu, sd, prefix): (&Gpu, &StateDict, &str),
) -> Result<super::ValueId> {
    let width = conv.in_channels;
    let mut outputs = Vec::with_capacity(scale);
    for i in 0..scale.saturating_sub(1).max(1) {
        let split = g.add(format!("split.{i}"), Op::Narrow(i * width, width), &[x]);
        let input = match outputs.last() {
            Some(&previous) if !first => g.add(format!("sum.{i}"), Op::Add, &[previous, split]),
            _ => split,
        };
        let (c, b) = (
            key(prefix, &format!("convs.{i}")),
            key(prefix, &format!("bns.{i}")),
        );
        outputs.push(g.add(
            format!("convs.{i}"),
            conv_bn(gpu, sd, conv, &c, &b, 1e-5)?,
            &[input],
        ));
    }
    if scale > 1 {
        let last = (scale - 1) * width;
        let mut rest = g.add("split.last", Op::Narrow(last, width), &[x]);
        if first {
            let pool = AvgPool2dParams::new(3).stride(conv.stride.0).padding(1);
            rest = g.add("pool", Op::AvgPool(pool), &[rest]);
        }
        outputs.push(rest);
    }
    Ok(g.add("cat", Op::Concat, &outputs))
}

/// ResNeSt's split attention on `x` (`conv`: the 3x3 convolution of one split, `radix`
/// splits; a block of this `stride` averages before it with `avd_first`, else after it),
/// as [`BottleneckKind::SplitAttention`] describes it.
fn split_attention(
    g: &mut Graph,
    x: super::ValueId,
    (conv, radix, (stride, avd_first)): (Conv2dParams, usize, (usize, bool)),
    (gpu, sd, prefix): (&Gpu, &StateDict, &str),
) -> Result<super::ValueId> {
    let width = conv.out_channels;
    let both = Conv2dParams {
        out_channels: radix * width,
        groups: radix * conv.groups,
        ..conv
    }
    .stride(1);
    let k = |n: &str| key(prefix, n);
    let avd = |g: &mut Graph, name: &str, x| {
        let pool = AvgPool2dParams::new(3).stride(stride).padding(1);
        g.add(name, Op::AvgPool(pool), &[x])
    };
    let x = if stride != 1 && avd_first {
        avd(g, "avd_first", x)
    } else {
        x
    };
    let splits = conv_bn(gpu, sd, both, &k("conv2.conv"), &k("conv2.bn0"), 1e-5)?;
    let splits = g.add("conv2", splits, &[x]);
    // timm's `make_divisible(radix * width / 4, 8, min_value=32)`: below 32 its 10% rule
    // never adds, so the floor can come last.
    let attention = super::make_divisible((radix * width) as f64 / 4.0, 8).max(32);
    let names = ["conv2.fc1", "conv2.bn1", "conv2.fc2"].map(k);
    let attn =
        super::SplitAttentionNode::load(gpu, sd, (width, attention), (radix, conv.groups), &names)?;
    let y = g.add("conv2.attn", attn, &[splits]);
    if stride == 1 || avd_first {
        return Ok(y);
    }
    Ok(avd(g, "avd_last", y))
}

/// The stride of a block's strided 3x3 convolution: 1 with timm's anti-aliasing, which
/// pools after it instead.
fn anti_aliased_stride(anti_alias: Option<AntiAlias>, stride: usize) -> usize {
    if anti_alias.is_some() {
        1
    } else {
        stride
    }
}

/// timm's anti-aliasing after a block's 3x3 convolution of `channels` channels (`aa`),
/// where timm's `use_aa` holds: at a stride, or where the block's first dilation differs
/// from the stage's (`dilation_grows`; there `nn.AvgPool2d(1)` changes nothing and the
/// blur runs at stride 1).
fn anti_alias(
    g: &mut Graph,
    x: super::ValueId,
    anti_alias: Option<AntiAlias>,
    (stride, channels, dilation_grows): (usize, usize, bool),
    gpu: &Gpu,
) -> Result<super::ValueId> {
    Ok(match anti_alias {
        Some(AntiAlias::AvgPool) if stride > 1 => {
            g.add("aa", Op::AvgPool(AvgPool2dParams::new(stride)), &[x])
        }
        Some(AntiAlias::BlurPool) if stride > 1 || dilation_grows => {
            g.add("aa", blur_pool(gpu, channels, stride)?, &[x])
        }
        _ => x,
    })
}

/// timm's `BlurPool2d(channels, filt_size=3, stride)`: each channel convolved with the
/// 3x3 binomial filter `[1, 2, 1]^T [1, 2, 1] / 16` at `stride` after reflect padding by 1
/// (the filter is a buffer, not a parameter).
pub(crate) fn blur_pool(gpu: &Gpu, channels: usize, stride: usize) -> Result<ConvBnAct> {
    let taps = [1.0, 2.0, 1.0];
    let weight =
        Array4::from_shape_fn((channels, 1, 3, 3), |(_, _, i, j)| taps[i] * taps[j] / 16.0);
    let params = Conv2dParams::new(channels, channels, 3)
        .stride(stride)
        .padding(1)
        .groups(channels)
        .padding_mode(PaddingMode::Reflect);
    ConvBnAct::fixed(gpu, params, weight)
}

/// The projection's convolution and batch norm: `downsample.0` / `.1`, or after
/// `avg_down`'s pooling `downsample.1` / `.2`.
fn projection_names(avg_down: Option<AvgDown>) -> (&'static str, &'static str) {
    match avg_down {
        None => ("downsample.0", "downsample.1"),
        Some(_) => ("downsample.1", "downsample.2"),
    }
}

/// The skip of a block: `x`, or when `downsample` its projection: a 1x1 convolution
/// (stride `stride`) with batch norm, or with `avg_down` a pooling and an unstrided one.
fn skip(
    g: &mut Graph,
    x: super::ValueId,
    (downsample, avg_down): (bool, Option<AvgDown>),
    (inplanes, out, stride): (usize, usize, usize),
    (gpu, sd, prefix): (&Gpu, &StateDict, &str),
) -> Result<super::ValueId> {
    if !downsample {
        return Ok(x);
    }
    let (conv, bn) = projection_names(avg_down);
    let mut y = x;
    let conv_stride = match avg_down {
        None => stride,
        Some(AvgDown::Strided) if stride == 1 => 1,
        Some(AvgDown::Strided) => {
            let pool = AvgPool2dParams::new(2)
                .stride(stride)
                .ceil_mode(true)
                .count_include_pad(false);
            y = g.add("downsample.pool", Op::AvgPool(pool), &[y]);
            1
        }
        Some(AvgDown::Dilated) => {
            // timm's `pad_same`: the 2x2 window at stride 1 pads one zero row and column
            // after the map whatever its size.
            let window = Conv2dParams::new(inplanes, inplanes, 2);
            y = g.add("downsample.pad", Op::PadToTfSame(window), &[y]);
            let pool = AvgPool2dParams::new(2).stride(1);
            y = g.add("downsample.pool", Op::AvgPool(pool), &[y]);
            1
        }
    };
    let pd = Conv2dParams::new(inplanes, out, 1)
        .stride(conv_stride)
        .bias(false);
    let d = conv_bn(gpu, sd, pd, &key(prefix, conv), &key(prefix, bn), 1e-5)?;
    Ok(g.add("downsample", d, &[y]))
}

/// torchvision's `resnet.BasicBlock` configuration (expansion 1, ResNet-18 / 34): 3x3
/// (stride) + BN + ReLU, 3x3 + BN, skip with an optional projection (`downsample`), ReLU.
/// As in torchvision, `groups` must be 1, `base_width` 64 and `dilation` 1 (the fields
/// exist so that a configuration copied from PyTorch is refused with the same reasons;
/// segmentation_models_pytorch's dilated encoders patch both 3x3 convolutions of a block
/// to one dilation after building it, which [`crate::networks::SmpEncoder`] builds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BasicBlockConfig {
    /// Input channels.
    pub inplanes: usize,
    /// Output channels (and those of the first convolution).
    pub planes: usize,
    /// Stride of the first 3x3 convolution (and of the projection).
    pub stride: usize,
    /// Groups: torchvision's `BasicBlock` only supports 1.
    pub groups: usize,
    /// Width per group: torchvision's `BasicBlock` only supports 64.
    pub base_width: usize,
    /// Dilation: torchvision's `BasicBlock` only supports 1.
    pub dilation: usize,
    /// The first 3x3 convolution's dilation where it differs from `dilation` (timm's
    /// `first_dilation`: the first block of a dilated stage keeps the previous stage's);
    /// `None` (the default): `dilation`. torchvision only supports 1.
    pub first_dilation: Option<usize>,
    /// Whether the skip has a 1x1 projection with batch norm; `None` (the default) as
    /// torchvision's module (see [`BottleneckConfig::downsample`]).
    pub downsample: Option<bool>,
    /// The projection pools first (timm's `avg_down`; see [`BottleneckConfig::avg_down`]).
    pub avg_down: Option<AvgDown>,
    /// Channel attention before the skip joins (see [`BottleneckConfig::attn`]).
    pub attn: Option<BlockAttention>,
    /// timm's anti-aliasing: a strided block runs its first 3x3 convolution at stride 1
    /// and then pools (see [`BottleneckConfig::anti_alias`]).
    pub anti_alias: Option<AntiAlias>,
}

impl BasicBlockConfig {
    /// A basic block: stride 1, the projection as the state dict says.
    pub fn new(inplanes: usize, planes: usize) -> Self {
        BasicBlockConfig {
            inplanes,
            planes,
            stride: 1,
            groups: 1,
            base_width: 64,
            dilation: 1,
            first_dilation: None,
            downsample: None,
            avg_down: None,
            attn: None,
            anti_alias: None,
        }
    }

    /// Sets the groups and the width per group (anything but `(1, 64)` is refused, as
    /// torchvision refuses it).
    pub fn groups(mut self, groups: usize, base_width: usize) -> Self {
        self.groups = groups;
        self.base_width = base_width;
        self
    }

    /// Forces the projection on or off.
    pub fn downsample(mut self, downsample: bool) -> Self {
        self.downsample = Some(downsample);
        self
    }

    /// Pools in the projection first (timm's `avg_down`).
    pub fn avg_down(mut self, avg_down: AvgDown) -> Self {
        self.avg_down = Some(avg_down);
        self
    }

    /// Squeeze-and-excitation to `squeeze` channels before the skip joins (timm's `se`).
    pub fn se(mut self, squeeze: usize) -> Self {
        self.attn = Some(BlockAttention::SqueezeExcitation(squeeze));
        self
    }

    /// Efficient channel attention with this kernel size before the skip joins (timm's
    /// `eca`).
    pub fn eca(mut self, kernel_size: usize) -> Self {
        self.attn = Some(BlockAttention::Eca(kernel_size));
        self
    }
}

setters!(BasicBlockConfig {
    /// Sets the stride.
    stride: usize,
    /// Sets the dilation (anything but 1 is refused, as torchvision refuses it).
    dilation: usize,
    /// Sets timm's anti-aliasing.
    anti_alias: Option<AntiAlias>,
});

/// A ResNet basic block for inference: three dispatches with a projection, two without
/// (the add and its ReLU are fused into the second convolution).
pub type BasicBlock = Model<BasicBlockConfig>;

impl BasicBlock {
    /// Whether the skip has a projection (as the state dict said, when the
    /// configuration left it open).
    pub fn has_downsample(&self) -> bool {
        self.graph().names().any(|n| n == "downsample")
    }
}

impl Architecture for BasicBlockConfig {
    /// torchvision's `BasicBlock.__init__` checks: groups 1 and base width 64, dilation 1.
    fn validate(&self) -> Result<()> {
        fail_if(self.groups != 1 || self.base_width != 64, "groups", || {
            format!(
                "BasicBlock only supports groups=1 and base_width=64 (as torchvision), got \
                 groups {} and base_width {}",
                self.groups, self.base_width
            )
        })?;
        let first = self.first_dilation.unwrap_or(self.dilation);
        fail_if(self.dilation != 1 || first != 1, "dilation", || {
            format!(
                "dilation > 1 is not supported in BasicBlock (as torchvision), got {} (first \
                 convolution {first})",
                self.dilation
            )
        })
    }

    /// Loads `conv1`, `bn1`, `conv2`, `bn2` and, with a projection, `downsample.0` /
    /// `downsample.1`.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let cfg = self;
        let k = |n: &str| key(prefix, n);
        let projected = (cfg.stride, cfg.inplanes, cfg.planes);
        let downsample = projection(cfg.downsample, cfg.avg_down, projected, sd, prefix)?;
        let relu = Activation::Relu;
        // Only smp's patched blocks (both convolutions dilated alike) and timm's (the
        // first keeping the previous stage's dilation) get here with a dilation.
        let d = cfg.dilation;
        let d1 = cfg.first_dilation.unwrap_or(d);
        let p1 = Conv2dParams::new(cfg.inplanes, cfg.planes, 3)
            .stride(anti_aliased_stride(cfg.anti_alias, cfg.stride))
            .padding(d1)
            .dilation(d1)
            .bias(false)
            .activation(relu);
        let p2 = Conv2dParams::new(cfg.planes, cfg.planes, 3)
            .padding(d)
            .dilation(d)
            .bias(false);
        let mut g = Graph::new();
        let x = g.input();
        let identity = skip(
            &mut g,
            x,
            (downsample, cfg.avg_down),
            (cfg.inplanes, cfg.planes, cfg.stride),
            (gpu, sd, prefix),
        )?;
        let a = g.add(
            "conv1",
            conv_bn(gpu, sd, p1, &k("conv1"), &k("bn1"), 1e-5)?,
            &[x],
        );
        let aa = (cfg.stride, cfg.planes, d1 != d);
        let a = anti_alias(&mut g, a, cfg.anti_alias, aa, gpu)?;
        let conv2 = conv_bn(gpu, sd, p2, &k("conv2"), &k("bn2"), 1e-5)?;
        let end = (conv2, cfg.planes, cfg.attn);
        let y = block_end(&mut g, (a, identity), end, "conv2", (gpu, sd, prefix))?;
        g.set_outputs(&[y]);
        Ok(g)
    }
}
