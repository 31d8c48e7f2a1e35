//! Whole backbones assembled from the blocks, loading torchvision's names.

use ndarray::{Array4, ArrayView4};

use super::{
    key, ConvBnAct, InvertedResidual, InvertedResidualConfig, MobileNetV3Block, MobileNetV3Config,
    Summary, SummaryRow,
};
use crate::error::{invalid, Result};
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::ops::channel::scale_channels;
use crate::ops::conv::Conv2dParams;
use crate::ops::pool::GlobalPool;
use crate::ops::upsample::UpsampleParams;
use crate::ops::Activation;
use crate::reference;
use crate::weights::StateDict;

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

/// A block a backbone chains: GPU forward, CPU reference forward and summary.
trait Stage {
    fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor>;
    fn reference(&self, x: ArrayView4<f32>) -> Result<Array4<f32>>;
    fn summary(&self, input: [usize; 4]) -> Result<Summary>;
}

impl Stage for InvertedResidual {
    fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        InvertedResidual::forward(self, rec, x)
    }
    fn reference(&self, x: ArrayView4<f32>) -> Result<Array4<f32>> {
        InvertedResidual::reference(self, x)
    }
    fn summary(&self, input: [usize; 4]) -> Result<Summary> {
        InvertedResidual::summary(self, input)
    }
}

impl Stage for MobileNetV3Block {
    fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        MobileNetV3Block::forward(self, rec, x)
    }
    fn reference(&self, x: ArrayView4<f32>) -> Result<Array4<f32>> {
        MobileNetV3Block::reference(self, x)
    }
    fn summary(&self, input: [usize; 4]) -> Result<Summary> {
        MobileNetV3Block::summary(self, input)
    }
}

/// torchvision's `features` layout shared by the MobileNets: `{prefix}.0` a stem
/// convolution, `{prefix}.1 ..` the blocks, `{prefix}.{n + 1}` a last convolution, each
/// convolution `.0` with its batch norm `.1`.
#[derive(Debug)]
struct Backbone<B> {
    stem: ConvBnAct,
    blocks: Vec<B>,
    last: ConvBnAct,
}

/// The convolution `{prefix}.{index}.0` with its batch norm `{prefix}.{index}.1`.
fn conv_bn(
    gpu: &Gpu,
    sd: &StateDict,
    params: Conv2dParams,
    prefix: &str,
    index: usize,
    eps: f32,
) -> Result<ConvBnAct> {
    ConvBnAct::load(
        gpu,
        sd,
        params,
        &key(prefix, &format!("{index}.0")),
        Some(&key(prefix, &format!("{index}.1"))),
        eps,
    )
}

impl<B: Stage> Backbone<B> {
    /// The GPU forward; with `tap = Some(k)` also the output after the first `k` blocks
    /// (the stem's for 0), which a segmentation head reads beside the last one.
    fn forward(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        tap: Option<usize>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let mut y = self.stem.forward(rec, x)?;
        let mut tapped = (tap == Some(0)).then(|| y.clone());
        for (i, b) in self.blocks.iter().enumerate() {
            y = b.forward(rec, &y)?;
            if tap == Some(i + 1) {
                tapped = Some(y.clone());
            }
        }
        Ok((self.last.forward(rec, &y)?, tapped))
    }

    /// The CPU reference forward, with the same tap.
    fn reference(
        &self,
        x: ArrayView4<f32>,
        tap: Option<usize>,
    ) -> Result<(Array4<f32>, Option<Array4<f32>>)> {
        let mut y = self.stem.reference(x)?;
        let mut tapped = (tap == Some(0)).then(|| y.clone());
        for (i, b) in self.blocks.iter().enumerate() {
            y = b.reference(y.view())?;
            if tap == Some(i + 1) {
                tapped = Some(y.clone());
            }
        }
        Ok((self.last.reference(y.view())?, tapped))
    }

    /// Every convolution with its output shape, parameters (batch norms included) and
    /// MACs; the parameter total equals PyTorch's `sum(p.numel() for p in parameters())`.
    fn summary(&self, input: [usize; 4]) -> Result<Summary> {
        let mut s = Summary::default();
        let mut shape = s.push("0 (stem)", &self.stem, input)?;
        for (i, b) in self.blocks.iter().enumerate() {
            for row in b.summary(shape)?.rows {
                shape = row.output;
                s.rows.push(SummaryRow {
                    name: format!("{} {}", i + 1, row.name),
                    ..row
                });
            }
        }
        s.push(
            &format!("{} (last)", self.blocks.len() + 1),
            &self.last,
            shape,
        )?;
        Ok(s)
    }
}

/// torchvision's `mobilenet_v2(width_mult).features`: a 3x3 stride-2 stem, the 17
/// inverted residuals of the `[t, c, n, s]` table, and a 1x1 to 1280 channels (more when
/// `width_mult > 1`), every convolution with batch norm and ReLU6 but the projections.
#[derive(Debug)]
pub struct MobileNetV2Features {
    net: Backbone<InvertedResidual>,
}

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

    /// Loads `{prefix}.0 ... {prefix}.18` (the prefix is `features` in a whole
    /// `mobilenet_v2()` state dict, empty for the state dict of `.features` itself).
    pub fn load(gpu: &Gpu, width_mult: f64, sd: &StateDict, prefix: &str) -> Result<Self> {
        if !(width_mult.is_finite() && width_mult > 0.0) {
            return Err(invalid(
                "width_mult",
                format!("must be positive, got {width_mult}"),
            ));
        }
        let eps = 1e-5;
        let mut input = make_divisible(32.0 * width_mult, 8);
        let last_channel = make_divisible(1280.0 * width_mult.max(1.0), 8);
        let stem = conv_bn(
            gpu,
            sd,
            Conv2dParams::new(3, input, 3)
                .stride(2)
                .padding(1)
                .bias(false)
                .activation(Activation::Relu6),
            prefix,
            0,
            eps,
        )?;
        let mut blocks = Vec::new();
        let mut index = 1;
        for [t, c, n, s] in Self::SETTINGS {
            let out = make_divisible(c as f64 * width_mult, 8);
            for i in 0..n {
                let cfg = InvertedResidualConfig {
                    inp: input,
                    oup: out,
                    stride: if i == 0 { s } else { 1 },
                    expand_ratio: t as f64,
                };
                blocks.push(InvertedResidual::load(
                    gpu,
                    cfg,
                    sd,
                    &key(prefix, &index.to_string()),
                )?);
                input = out;
                index += 1;
            }
        }
        let last = conv_bn(
            gpu,
            sd,
            Conv2dParams::new(input, last_channel, 1)
                .bias(false)
                .activation(Activation::Relu6),
            prefix,
            index,
            eps,
        )?;
        Ok(MobileNetV2Features {
            net: Backbone { stem, blocks, last },
        })
    }

    /// Records the whole backbone into `rec` (one submission when the caller submits).
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        Ok(self.net.forward(rec, x, None)?.0)
    }

    /// CPU reference forward.
    pub fn reference(&self, x: ArrayView4<f32>) -> Result<Array4<f32>> {
        Ok(self.net.reference(x, None)?.0)
    }

    /// Every convolution with its output shape, parameters (batch norms included) and
    /// MACs; the parameter total equals PyTorch's `sum(p.numel() for p in parameters())`.
    pub fn summary(&self, input: [usize; 4]) -> Result<Summary> {
        self.net.summary(input)
    }
}

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
    /// Dilation 2 instead of stride 2 in the last stage (default false; the LR-ASPP
    /// segmentation backbone uses it, keeping 1/16 of the input resolution).
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

    /// Sets the width multiplier.
    pub fn width_mult(mut self, width_mult: f64) -> Self {
        self.width_mult = width_mult;
        self
    }

    /// Sets `reduced_tail`.
    pub fn reduced_tail(mut self, reduced_tail: bool) -> Self {
        self.reduced_tail = reduced_tail;
        self
    }

    /// Sets `dilated`.
    pub fn dilated(mut self, dilated: bool) -> Self {
        self.dilated = dilated;
        self
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
}

/// torchvision's `mobilenet_v3_large(...).features` / `mobilenet_v3_small(...).features`:
/// a 3x3 stride-2 hard-swish stem, the inverted residuals of the table (SE with
/// hard-sigmoid gates, ReLU or hard-swish), and a 1x1 convolution to 6x the last block's
/// channels with hard-swish; batch norms (eps 0.001) folded.
#[derive(Debug)]
pub struct MobileNetV3Features {
    net: Backbone<MobileNetV3Block>,
}

impl MobileNetV3Features {
    /// Loads `{prefix}.0 ... {prefix}.{n + 1}` (`features` in a whole model's state
    /// dict, empty for the state dict of `.features` itself).
    pub fn load(
        gpu: &Gpu,
        cfg: MobileNetV3FeaturesConfig,
        sd: &StateDict,
        prefix: &str,
    ) -> Result<Self> {
        if !(cfg.width_mult.is_finite() && cfg.width_mult > 0.0) {
            return Err(invalid(
                "width_mult",
                format!("must be positive, got {}", cfg.width_mult),
            ));
        }
        let eps = 1e-3;
        let table = cfg.blocks();
        let first = table[0].input_channels;
        let stem = conv_bn(
            gpu,
            sd,
            Conv2dParams::new(3, first, 3)
                .stride(2)
                .padding(1)
                .bias(false)
                .activation(Activation::HardSwish),
            prefix,
            0,
            eps,
        )?;
        let blocks = table
            .iter()
            .enumerate()
            .map(|(i, &b)| MobileNetV3Block::load(gpu, b, sd, &key(prefix, &(i + 1).to_string())))
            .collect::<Result<Vec<_>>>()?;
        let last_in = table[table.len() - 1].out_channels;
        let index = table.len() + 1;
        let last = conv_bn(
            gpu,
            sd,
            Conv2dParams::new(last_in, 6 * last_in, 1)
                .bias(false)
                .activation(Activation::HardSwish),
            prefix,
            index,
            eps,
        )?;
        Ok(MobileNetV3Features {
            net: Backbone { stem, blocks, last },
        })
    }

    /// Records the whole backbone into `rec`.
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        Ok(self.net.forward(rec, x, None)?.0)
    }

    /// CPU reference forward.
    pub fn reference(&self, x: ArrayView4<f32>) -> Result<Array4<f32>> {
        Ok(self.net.reference(x, None)?.0)
    }

    /// Every layer with its output shape, parameters (batch norms included) and MACs; the
    /// parameter total equals PyTorch's.
    pub fn summary(&self, input: [usize; 4]) -> Result<Summary> {
        self.net.summary(input)
    }
}

/// torchvision's `lraspp_mobilenet_v3_large`: a MobileNetV3 backbone (dilated, so the last
/// stage stays at 1/16 of the input), the LR-ASPP head and a bilinear resize of the class
/// logits to the input size. The head takes the backbone's last output (`high`) and the
/// output of the block that ends the 1/8-resolution stage (`low`):
/// `low_classifier(low) + high_classifier(resize(cbr(high) * sigmoid(scale(pool(high)))))`.
#[derive(Debug)]
pub struct LrAsppMobileNetV3 {
    backbone: MobileNetV3Features,
    /// Number of backbone blocks whose output is the head's `low` input.
    low_blocks: usize,
    cbr: ConvBnAct,
    scale: ConvBnAct,
    low_classifier: ConvBnAct,
    high_classifier: ConvBnAct,
}

impl LrAsppMobileNetV3 {
    /// Loads `backbone.*` (the backbone's `features`) and `classifier.*` (the head) as
    /// torchvision names them, for `num_classes` classes and the head's default 128
    /// intermediate channels. torchvision builds the model with `dilated=True`.
    pub fn load(
        gpu: &Gpu,
        backbone: MobileNetV3FeaturesConfig,
        num_classes: usize,
        sd: &StateDict,
    ) -> Result<Self> {
        if num_classes == 0 {
            return Err(invalid("num_classes", "must be at least 1, got 0"));
        }
        let inter = 128;
        let blocks = backbone.blocks();
        // torchvision's stage indices: the stem, every strided block (features index
        // i + 1), the last convolution; `low` is the fourth from the end.
        let mut stages = vec![0];
        stages.extend(
            blocks
                .iter()
                .enumerate()
                .filter(|(_, b)| b.stride > 1)
                .map(|(i, _)| i + 1),
        );
        stages.push(blocks.len() + 1);
        if stages.len() < 4 {
            return Err(invalid(
                "backbone",
                format!("has {} stages, LR-ASPP needs 4", stages.len()),
            ));
        }
        let low_blocks = stages[stages.len() - 4];
        let low_channels = if low_blocks == 0 {
            blocks[0].input_channels
        } else {
            blocks[low_blocks - 1].out_channels
        };
        let high_channels = 6 * blocks[blocks.len() - 1].out_channels;
        let features = MobileNetV3Features::load(gpu, backbone, sd, "backbone")?;
        let cbr = ConvBnAct::load(
            gpu,
            sd,
            Conv2dParams::new(high_channels, inter, 1)
                .bias(false)
                .activation(Activation::Relu),
            "classifier.cbr.0",
            Some("classifier.cbr.1"),
            1e-5,
        )?;
        let scale = ConvBnAct::load(
            gpu,
            sd,
            Conv2dParams::new(high_channels, inter, 1).bias(false),
            "classifier.scale.1",
            None,
            0.0,
        )?;
        let low_classifier = ConvBnAct::load(
            gpu,
            sd,
            Conv2dParams::new(low_channels, num_classes, 1),
            "classifier.low_classifier",
            None,
            0.0,
        )?;
        let high_classifier = ConvBnAct::load(
            gpu,
            sd,
            Conv2dParams::new(inter, num_classes, 1),
            "classifier.high_classifier",
            None,
            0.0,
        )?;
        Ok(LrAsppMobileNetV3 {
            backbone: features,
            low_blocks,
            cbr,
            scale,
            low_classifier,
            high_classifier,
        })
    }

    /// Records the network: `[N, 3, H, W]` in, `[N, num_classes, H, W]` logits out.
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        let (high, low) = self.backbone.net.forward(rec, x, Some(self.low_blocks))?;
        let low = low.expect("low_blocks is at most the number of blocks");
        let pooled = GlobalPool::Avg.forward(rec, &high)?;
        let gate = self.scale.forward(rec, &pooled)?;
        let branch = self.cbr.forward(rec, &high)?;
        drop((pooled, high));
        let gated = scale_channels(rec, &branch, &gate, Activation::Sigmoid)?;
        drop((gate, branch));
        // The high classifier (1x1, linear) runs before the resize instead of after: a
        // bilinear resize's weights sum to 1 per output, so the two commute (bias
        // included), and the resize then moves num_classes channels instead of 128.
        let classes = self.high_classifier.forward(rec, &gated)?;
        drop(gated);
        let ls = low.shape();
        let up = UpsampleParams::bilinear(false)
            .size((ls[2], ls[3]))
            .forward(rec, &classes)?;
        drop(classes);
        let logits = self.low_classifier.forward_residual(rec, &low, &up)?;
        drop((low, up));
        let xs = x.shape();
        UpsampleParams::bilinear(false)
            .size((xs[2], xs[3]))
            .forward(rec, &logits)
    }

    /// CPU reference forward, in torchvision's order of operations.
    pub fn reference(&self, x: ArrayView4<f32>) -> Result<Array4<f32>> {
        let (high, low) = self.backbone.net.reference(x, Some(self.low_blocks))?;
        let low = low.expect("low_blocks is at most the number of blocks");
        let pooled = reference::pool::global_pool(GlobalPool::Avg, high.view())?;
        let gate = self.scale.reference(pooled.view())?;
        let branch = self.cbr.reference(high.view())?;
        let gated =
            reference::channel::scale_channels(branch.view(), gate.view(), Activation::Sigmoid);
        let ls = low.shape();
        let up = reference::upsample::upsample(
            &UpsampleParams::bilinear(false).size((ls[2], ls[3])),
            gated.view(),
        )?;
        let high_logits = self.high_classifier.reference(up.view())?;
        let low_logits = self.low_classifier.reference(low.view())?;
        let logits =
            reference::channel::add(low_logits.view(), high_logits.view(), Activation::None);
        reference::upsample::upsample(
            &UpsampleParams::bilinear(false).size((x.shape()[2], x.shape()[3])),
            logits.view(),
        )
    }
}
