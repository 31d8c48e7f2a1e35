//! torchvision's ResNets as feature extractors: ResNet-18 / 34 (basic blocks), ResNet-50 /
//! 101 / 152, ResNeXt and Wide ResNet (bottlenecks): the stem and the four stages, with
//! `replace_stride_with_dilation` (the segmentation models' dilated backbones, output
//! stride 8).
//!
//! timm's ResNets are the same network under the same names; its stem variants are
//! options here: the deep stems of its `c`, `d`, `s` and `t` models ([`ResNetStem`]:
//! three 3x3 convolutions `conv1.0` / `.3` / `.6`) and the `avg_down` projections of its
//! `d` and `t` models ([`ResNetConfig::avg_down`]: an average pool, then an unstrided
//! 1x1 convolution `downsample.1` with its batch norm `downsample.2`), and its
//! squeeze-and-excitation and ECA blocks (`seresnet*`, `seresnext*`, `ecaresnet*`:
//! [`ResNetConfig::attn_layer`]) and its anti-aliased models (`resnetaa*`, `resnetblur*`:
//! [`ResNetConfig::anti_alias`]), its Res2Nets and ResNeSts
//! ([`ResNetConfig::bottleneck_kind`]), and its ResNet-RS's strided stem convolution in
//! place of the max pool ([`ResNetConfig::replace_stem_pool`]).

use crate::blocks::{
    blur_pool, conv_bn, make_divisible_with_limit, AntiAlias, Architecture, AvgDown, BasicBlock,
    BasicBlockConfig, BlockAttention, Bottleneck, BottleneckConfig, BottleneckKind, Graph, Model,
    Op,
};
use crate::error::{fail_if, positive, Result};
use crate::gpu::Gpu;
use crate::ops::conv::Conv2dParams;
use crate::ops::pool::{AvgPool2dParams, MaxPool2dParams};
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// The residual block a ResNet is made of (torchvision's `block` argument).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResNetBlock {
    /// `resnet.BasicBlock`: two 3x3 convolutions, expansion 1 (ResNet-18 / 34).
    Basic,
    /// `resnet.Bottleneck`: 1x1, 3x3, 1x1, expansion 4 (ResNet-50 and deeper).
    Bottleneck,
}

impl ResNetBlock {
    /// Output channels per plane of the block (torchvision's `block.expansion`).
    pub fn expansion(self) -> usize {
        match self {
            ResNetBlock::Basic => 1,
            ResNetBlock::Bottleneck => 4,
        }
    }
}

/// One block of a stage, as [`ResNetConfig::stages`] lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResNetStageBlock {
    /// A basic block.
    Basic(BasicBlockConfig),
    /// A bottleneck.
    Bottleneck(BottleneckConfig),
}

/// The configuration of torchvision's `ResNet(block, layers, groups, width_per_group,
/// replace_stride_with_dilation)` without the classifier: `resnet18()` ..
/// `resnet152()`, `resnext50_32x4d()` .., `wide_resnet50_2()` ...
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResNetConfig {
    /// The residual block (ResNet-18 / 34: basic; the others: bottleneck).
    pub block: ResNetBlock,
    /// Blocks per stage (ResNet-50: `[3, 4, 6, 3]`, ResNet-101: `[3, 4, 23, 3]`).
    pub layers: [usize; 4],
    /// Whether `layer2`, `layer3`, `layer4` replace their stride 2 by dilation
    /// (torchvision's segmentation models: `[false, true, true]`; basic blocks cannot
    /// dilate, as in torchvision).
    pub replace_stride_with_dilation: [bool; 3],
    /// Groups of the 3x3 convolutions (ResNeXt: 32 or 64; basic blocks: 1).
    pub groups: usize,
    /// Width per group (ResNeXt-50 32x4d: 4; Wide ResNet: 128; ResNet: 64).
    pub width_per_group: usize,
    /// The stem: torchvision's 7x7 convolution, or one of timm's deep stems.
    pub stem: ResNetStem,
    /// timm's `avg_down` (its `d` and `t` ResNets): each projection pools before an
    /// unstrided 1x1 convolution ([`AvgDown`]).
    pub avg_down: bool,
    /// timm's `attn_layer`: every block's output gated by channel attention before the
    /// skip joins ([`ResNetAttention`]); `None` (the default): none.
    pub attn_layer: Option<ResNetAttention>,
    /// timm's `aa_layer` ([`AntiAlias`]: `nn.AvgPool2d`, its `resnetaa*` models, or
    /// `BlurPool2d`, its `resnetblur*` models): the stem's max pool becomes a 2x2 average
    /// pool, or a max pool at stride 1 and a blur at stride 2, and each strided block
    /// pools after its 3x3 convolution, which runs at stride 1
    /// ([`BottleneckConfig::anti_alias`]); `None` (the default): none.
    pub anti_alias: Option<AntiAlias>,
    /// The bottlenecks' 3x3 stage ([`BottleneckKind`]): torchvision's convolution (the
    /// default), Res2Net's splits (timm's `res2net*` / `res2next50`, `width_per_group` its
    /// `base_width`) or ResNeSt's split attention (timm's `resnest*`). Bottlenecks only.
    pub bottleneck_kind: BottleneckKind,
    /// timm's `replace_stem_pool` (its `resnetrs*`): the stem's max pool replaced by a 3x3
    /// stride-2 convolution `maxpool.0` with its batch norm `maxpool.1` and ReLU. Not
    /// with `anti_alias` (no timm model has both).
    pub replace_stem_pool: bool,
}

/// The channel attention of timm's ResNet blocks (its `attn_layer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResNetAttention {
    /// `'se'`: squeeze-and-excitation to the block's output width over `reduction` (timm's
    /// `rd_ratio` is `1 / reduction`: 16 in its `seresnet*` and `seresnext*`, 4 in its
    /// `resnetrs*`), rounded to the nearest multiple of 8 (at least 8).
    SqueezeExcitation {
        /// The block's output width over the squeeze width.
        reduction: usize,
    },
    /// `'eca'` (its `ecaresnet*`): efficient channel attention, its kernel size from the
    /// block's output width `C` (`t = int((log2(C) + 1) / 2)`, the next odd number, at
    /// least 3).
    Eca,
}

impl ResNetAttention {
    /// The block option for a block of `channels` output channels.
    fn block(self, channels: usize) -> BlockAttention {
        match self {
            // timm's `make_divisible(channels * rd_ratio, 8, round_limit=0)`.
            ResNetAttention::SqueezeExcitation { reduction } => BlockAttention::SqueezeExcitation(
                make_divisible_with_limit(channels as f64 / reduction as f64, 8, 0.0),
            ),
            ResNetAttention::Eca => {
                let t = (((channels as f64).log2() + 1.0).abs() / 2.0) as usize;
                BlockAttention::Eca((t | 1).max(3))
            }
        }
    }
}

/// The stem of a ResNet, before its batch norm `bn1`, ReLU and max pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResNetStem {
    /// torchvision's `conv1`: a 7x7 convolution, stride 2, to 64 channels.
    Standard,
    /// timm's `deep` stem of this width `w` (its `c`, `d` and `s` ResNets): 3x3
    /// convolutions `conv1.0` (stride 2), `conv1.3`, `conv1.6` to `w`, `w` and `2w`
    /// channels, the first two with their batch norms (`conv1.1`, `conv1.4`) and ReLU.
    Deep(usize),
    /// timm's `deep_tiered` stem of width `w` (its `t` ResNets): the deep stem to
    /// `3 * (w / 4)`, `w` and `2w` channels.
    DeepTiered(usize),
}

impl ResNetStem {
    /// Output channels: 64, or twice a deep stem's width.
    pub fn channels(self) -> usize {
        match self {
            ResNetStem::Standard => 64,
            ResNetStem::Deep(w) | ResNetStem::DeepTiered(w) => 2 * w,
        }
    }
}

impl ResNetConfig {
    fn bottleneck(layers: [usize; 4]) -> Self {
        ResNetConfig {
            block: ResNetBlock::Bottleneck,
            layers,
            replace_stride_with_dilation: [false; 3],
            groups: 1,
            width_per_group: 64,
            stem: ResNetStem::Standard,
            avg_down: false,
            attn_layer: None,
            anti_alias: None,
            bottleneck_kind: BottleneckKind::Conv3x3,
            replace_stem_pool: false,
        }
    }

    /// `resnet18()`: basic blocks `[2, 2, 2, 2]`.
    pub fn resnet18() -> Self {
        ResNetConfig {
            block: ResNetBlock::Basic,
            ..Self::bottleneck([2, 2, 2, 2])
        }
    }

    /// `resnet34()`: basic blocks `[3, 4, 6, 3]`.
    pub fn resnet34() -> Self {
        ResNetConfig {
            block: ResNetBlock::Basic,
            ..Self::bottleneck([3, 4, 6, 3])
        }
    }

    /// `resnet50()`.
    pub fn resnet50() -> Self {
        Self::bottleneck([3, 4, 6, 3])
    }

    /// `resnet101()`.
    pub fn resnet101() -> Self {
        Self::bottleneck([3, 4, 23, 3])
    }

    /// `resnet152()`.
    pub fn resnet152() -> Self {
        Self::bottleneck([3, 8, 36, 3])
    }

    /// `resnext50_32x4d()`.
    pub fn resnext50_32x4d() -> Self {
        Self::resnet50().groups(32, 4)
    }

    /// `resnext101_32x8d()`.
    pub fn resnext101_32x8d() -> Self {
        Self::resnet101().groups(32, 8)
    }

    /// `resnext101_64x4d()`.
    pub fn resnext101_64x4d() -> Self {
        Self::resnet101().groups(64, 4)
    }

    /// `wide_resnet50_2()`: width per group 128.
    pub fn wide_resnet50_2() -> Self {
        Self::resnet50().groups(1, 128)
    }

    /// `wide_resnet101_2()`: width per group 128.
    pub fn wide_resnet101_2() -> Self {
        Self::resnet101().groups(1, 128)
    }

    /// Sets the groups and the width per group (ResNeXt, Wide ResNet).
    pub fn groups(mut self, groups: usize, width_per_group: usize) -> Self {
        self.groups = groups;
        self.width_per_group = width_per_group;
        self
    }

    /// The blocks of each stage as torchvision's `_make_layer` builds them: the first of
    /// a stage strided (or, dilated, with the previous dilation) and projected, the
    /// others at the stage's dilation.
    pub fn stages(&self) -> [Vec<ResNetStageBlock>; 4] {
        let expansion = self.block.expansion();
        let mut inplanes = self.stem.channels();
        let mut dilation = 1;
        std::array::from_fn(|i| {
            let planes = 64 << i;
            let mut stride = if i == 0 { 1 } else { 2 };
            let previous = dilation;
            let dilated = i > 0 && self.replace_stride_with_dilation[i - 1];
            if dilated {
                dilation *= stride;
                stride = 1;
            }
            let avg_down = match (self.avg_down, dilated) {
                (false, _) => None,
                (true, false) => Some(AvgDown::Strided),
                (true, true) => Some(AvgDown::Dilated),
            };
            let attn = self.attn_layer.map(|a| a.block(expansion * planes));
            let anti_alias = self.anti_alias;
            let block = |inplanes: usize, stride: usize, dilation: usize, downsample: bool| {
                match self.block {
                    ResNetBlock::Basic => ResNetStageBlock::Basic(BasicBlockConfig {
                        avg_down,
                        attn,
                        anti_alias,
                        ..BasicBlockConfig::new(inplanes, planes)
                            .groups(self.groups, self.width_per_group)
                            .stride(stride)
                            .dilation(dilation)
                            .downsample(downsample)
                    }),
                    ResNetBlock::Bottleneck => ResNetStageBlock::Bottleneck(BottleneckConfig {
                        avg_down,
                        attn,
                        anti_alias,
                        kind: self.bottleneck_kind,
                        ..BottleneckConfig::new(inplanes, planes)
                            .groups(self.groups, self.width_per_group)
                            .stride(stride)
                            .dilation(dilation)
                            .downsample(downsample)
                    }),
                }
            };
            let first = block(
                inplanes,
                stride,
                previous,
                stride != 1 || inplanes != expansion * planes,
            );
            inplanes = expansion * planes;
            let rest = (1..self.layers[i]).map(|_| block(inplanes, 1, dilation, false));
            std::iter::once(first).chain(rest).collect()
        })
    }

    /// [`ResNetConfig::stages`] as segmentation_models_pytorch's `make_dilated(output_stride)`
    /// patches them: every stage whose own stride (16 for `layer3`, 32 for `layer4`) is
    /// above `output_stride` gets stride 1 in all its convolutions (the projection's too)
    /// and one dilation, its stride over `output_stride`, in all of them (both 3x3
    /// convolutions of a basic block; the 3x3 of a bottleneck), padding `dilation`.
    /// Unlike torchvision's `replace_stride_with_dilation`, the first block of a stage
    /// takes the stage's dilation too. An `output_stride` of 32 changes nothing.
    pub fn smp_stages(&self, output_stride: usize) -> [Vec<ResNetStageBlock>; 4] {
        let mut stages = self.stages();
        for (i, stage) in stages.iter_mut().enumerate().skip(2) {
            let stage_stride = 4 << i;
            if stage_stride <= output_stride {
                continue;
            }
            let rate = stage_stride / output_stride;
            for block in stage {
                match block {
                    ResNetStageBlock::Basic(c) => {
                        (c.stride, c.dilation, c.first_dilation) = (1, rate, None)
                    }
                    ResNetStageBlock::Bottleneck(c) => (c.stride, c.dilation) = (1, rate),
                }
            }
        }
        stages
    }

    /// The stages as timm's ResNet builds them for `output_stride` (32, 16 or 8): each
    /// stage whose stride would pass it dilated instead, torchvision's
    /// `replace_stride_with_dilation` rule (the first block of a dilated stage keeps the
    /// previous dilation in its first 3x3, basic blocks included).
    pub fn timm_stages(&self, output_stride: usize) -> [Vec<ResNetStageBlock>; 4] {
        let dilate = |stride: usize| stride > output_stride;
        let mut stages = ResNetConfig {
            replace_stride_with_dilation: [dilate(8), dilate(16), dilate(32)],
            ..*self
        }
        .stages();
        // torchvision builds a dilated stage's first block at the previous dilation (in
        // both 3x3s of a basic block); timm's second 3x3 takes the stage's, and its
        // anti-aliasing blurs there (`first_dilation != dilation`).
        for (i, stage) in stages.iter_mut().enumerate() {
            let stage_dilation = (4 << i) / output_stride.min(4 << i);
            let (first_dilation, dilation) = match stage.first_mut() {
                Some(ResNetStageBlock::Basic(c)) => (&mut c.first_dilation, &mut c.dilation),
                Some(ResNetStageBlock::Bottleneck(c)) => (&mut c.first_dilation, &mut c.dilation),
                None => continue,
            };
            if *dilation != stage_dilation {
                (*first_dilation, *dilation) = (Some(*dilation), stage_dilation);
            }
        }
        stages
    }

    /// Output channels of each stage (`layer1` .. `layer4`): 64, 128, 256, 512 times the
    /// block's expansion.
    pub fn stage_channels(&self) -> [usize; 4] {
        [64, 128, 256, 512].map(|c| c * self.block.expansion())
    }

    /// The stem and the stages appended to `g` after `x`, loaded under `prefix` (names
    /// `conv1`, `bn1`, `layer{i}.{j}`); returns the outputs of `layer1` .. `layer4`.
    pub(crate) fn append(
        &self,
        g: &mut Graph,
        x: crate::blocks::ValueId,
        ctx: (&Gpu, &StateDict, &str),
    ) -> Result<[crate::blocks::ValueId; 4]> {
        let outs = self.append_stages(g, x, ctx, (3, 4, 32), DilationRule::Smp)?;
        Ok([outs[1], outs[2], outs[3], outs[4]])
    }

    /// The stem (`conv1`, `bn1`, ReLU: `in_channels` input channels) and the first
    /// `stages` stages (the first after the max pooling) appended to `g` after `x`;
    /// returns the stem's output and each stage's (segmentation_models_pytorch's encoder
    /// features, the input left out).
    ///
    /// An `output_stride` of 16 or 8 dilates the stages past it by `rule`: as smp's
    /// `make_dilated` does (32: none; see [`ResNetConfig::smp_stages`]), or as timm does
    /// ([`ResNetConfig::timm_stages`]).
    pub(crate) fn append_stages(
        &self,
        g: &mut Graph,
        x: crate::blocks::ValueId,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        (in_channels, stages, output_stride): (usize, usize, usize),
        rule: DilationRule,
    ) -> Result<Vec<crate::blocks::ValueId>> {
        let mut y = self.append_stem(g, x, (gpu, sd, prefix), in_channels)?;
        let mut outs = vec![y];
        if stages == 0 {
            return Ok(outs);
        }
        let max_pool = |g: &mut Graph, name: &str, stride| {
            let pool = MaxPool2dParams::new(3).stride(stride).padding(1);
            g.add_multi(name, Op::MaxPool(pool), &[y], 2)[0]
        };
        y = match self.anti_alias {
            None if self.replace_stem_pool => {
                let c = self.stem.channels();
                let p = Conv2dParams::new(c, c, 3)
                    .stride(2)
                    .padding(1)
                    .bias(false)
                    .activation(Activation::Relu);
                let at = |n: &str| key(prefix, n);
                let conv = conv_bn(gpu, sd, p, &at("maxpool.0"), &at("maxpool.1"), 1e-5)?;
                g.add("maxpool", conv, &[y])
            }
            None => max_pool(g, "maxpool", 2),
            Some(AntiAlias::AvgPool) => {
                g.add("maxpool", Op::AvgPool(AvgPool2dParams::new(2)), &[y])
            }
            Some(AntiAlias::BlurPool) => {
                let pooled = max_pool(g, "maxpool.0", 1);
                let blur = blur_pool(gpu, self.stem.channels(), 2)?;
                g.add("maxpool.1", blur, &[pooled])
            }
        };
        let all = match rule {
            DilationRule::Smp => self.smp_stages(output_stride),
            DilationRule::Timm => self.timm_stages(output_stride),
        };
        for (i, stage) in all.into_iter().take(stages).enumerate() {
            for (j, cfg) in stage.into_iter().enumerate() {
                let name = format!("layer{}.{j}", i + 1);
                let at = key(prefix, &name);
                let block = match cfg {
                    // torchvision refuses a dilated basic block; smp patches it after
                    // building it, so its configuration skips `validate`.
                    ResNetStageBlock::Basic(c) if c.dilation > 1 => c.build(gpu, sd, &at)?,
                    ResNetStageBlock::Basic(c) => BasicBlock::load(gpu, c, sd, &at)?.into_graph(),
                    ResNetStageBlock::Bottleneck(c) => {
                        Bottleneck::load(gpu, c, sd, &at)?.into_graph()
                    }
                };
                y = g.add(name, block, &[y]);
            }
            outs.push(y);
        }
        Ok(outs)
    }
}

impl ResNetConfig {
    /// The stem (`conv1` or timm's deep `conv1.*`, `bn1`, ReLU) on `x` (`in_channels`
    /// channels); returns its output.
    fn append_stem(
        &self,
        g: &mut Graph,
        x: crate::blocks::ValueId,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        in_channels: usize,
    ) -> Result<crate::blocks::ValueId> {
        let relu = Activation::Relu;
        let out = self.stem.channels();
        let at = |n: &str| key(prefix, n);
        let widths = match self.stem {
            ResNetStem::Standard => {
                let p = Conv2dParams::new(in_channels, out, 7)
                    .stride(2)
                    .padding(3)
                    .bias(false)
                    .activation(relu);
                let stem = conv_bn(gpu, sd, p, &at("conv1"), &at("bn1"), 1e-5)?;
                return Ok(g.add("conv1", stem, &[x]));
            }
            ResNetStem::Deep(w) => [in_channels, w, w, out],
            ResNetStem::DeepTiered(w) => [in_channels, 3 * (w / 4), w, out],
        };
        // `conv1` is a `Sequential`: convolutions at 0, 3, 6, batch norms at 1, 4, then
        // `bn1` after it.
        let names = [
            ("conv1.0", "conv1.1"),
            ("conv1.3", "conv1.4"),
            ("conv1.6", "bn1"),
        ];
        let mut y = x;
        for (i, (conv, bn)) in names.into_iter().enumerate() {
            let p = Conv2dParams::new(widths[i], widths[i + 1], 3)
                .stride(if i == 0 { 2 } else { 1 })
                .padding(1)
                .bias(false)
                .activation(relu);
            y = g.add(conv, conv_bn(gpu, sd, p, &at(conv), &at(bn), 1e-5)?, &[y]);
        }
        Ok(y)
    }
}

/// How a ResNet encoder dilates its stages past its output stride.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DilationRule {
    /// smp's `make_dilated` on its own ResNet encoders.
    Smp,
    /// timm's `output_stride` (smp's `tu-` encoders).
    Timm,
}

crate::ops::setters!(ResNetConfig {
    /// Sets `replace_stride_with_dilation`.
    replace_stride_with_dilation: [bool; 3],
    /// Sets the stem.
    stem: ResNetStem,
    /// Sets timm's `avg_down`.
    avg_down: bool,
    /// Sets timm's channel attention.
    attn_layer: Option<ResNetAttention>,
    /// Sets timm's anti-aliasing.
    anti_alias: Option<AntiAlias>,
    /// Sets the bottlenecks' 3x3 stage.
    bottleneck_kind: BottleneckKind,
    /// Sets timm's `replace_stem_pool`.
    replace_stem_pool: bool,
});

/// torchvision's ResNet without its pooling and classifier: input `[N, 3, H, W]`, output
/// `layer4`'s `[N, 2048, H / s, W / s]` (512 channels with basic blocks; `s` 32, or 8 with
/// the segmentation models' dilation); [`Model::forward_all`] also gives `layer3`, `layer2` and `layer1`, in
/// that order after `layer4`.
pub type ResNetFeatures = Model<ResNetConfig>;

impl Architecture for ResNetConfig {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        positive(&[
            ("layers", self.layers.iter().copied().min().unwrap_or(0)),
            ("groups", self.groups),
            ("width_per_group", self.width_per_group),
        ])?;
        if let ResNetStem::Deep(w) | ResNetStem::DeepTiered(w) = self.stem {
            let least = match self.stem {
                ResNetStem::DeepTiered(_) => 4,
                _ => 1,
            };
            fail_if(!(least..=4096).contains(&w), "stem", || {
                format!(
                    "a deep stem's width must be in {least}..=4096, got {:?}",
                    self.stem
                )
            })?;
        }
        fail_if(
            self.replace_stem_pool && self.anti_alias.is_some(),
            "replace_stem_pool",
            || {
                format!(
                    "a convolutional stem pool is not supported with anti_alias {:?}",
                    self.anti_alias
                )
            },
        )?;
        if let Some(ResNetAttention::SqueezeExcitation { reduction }) = self.attn_layer {
            fail_if(!(1..=4096).contains(&reduction), "attn_layer", || {
                format!("the squeeze-and-excitation reduction must be in 1..=4096, got {reduction}")
            })?;
        }
        fail_if(self.layers.iter().any(|&n| n > 1024), "layers", || {
            format!("at most 1024 blocks a stage, got {:?}", self.layers)
        })?;
        if self.block == ResNetBlock::Basic {
            fail_if(
                self.bottleneck_kind != BottleneckKind::Conv3x3,
                "bottleneck_kind",
                || {
                    format!(
                        "basic blocks have no bottleneck, got {:?}",
                        self.bottleneck_kind
                    )
                },
            )?;
            fail_if(
                self.groups != 1 || self.width_per_group != 64,
                "groups",
                || {
                    format!(
                        "basic blocks only support groups=1 and width_per_group=64 (as \
                     torchvision), got groups {} and width_per_group {}",
                        self.groups, self.width_per_group
                    )
                },
            )?;
            // torchvision refuses a basic block built with a dilation: any but the first
            // block of a stage after the first dilated one (a later stage's first block
            // too).
            let dilated = self
                .stages()
                .iter()
                .flatten()
                .any(|b| matches!(b, ResNetStageBlock::Basic(c) if c.dilation > 1));
            fail_if(dilated, "replace_stride_with_dilation", || {
                format!(
                    "dilation > 1 is not supported in basic blocks (as torchvision), got \
                     {:?} with layers {:?}",
                    self.replace_stride_with_dilation, self.layers
                )
            })?;
        }
        Ok(())
    }

    /// Loads `conv1`, `bn1` and `layer1` .. `layer4` under `prefix` (a whole
    /// `resnet50()`'s state dict, its `fc` ignored: empty; a segmentation model's: `backbone`).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let mut g = Graph::new();
        let x = g.input();
        let [l1, l2, l3, l4] = self.append(&mut g, x, (gpu, sd, prefix))?;
        g.set_outputs(&[l4, l3, l2, l1]);
        Ok(g)
    }
}
