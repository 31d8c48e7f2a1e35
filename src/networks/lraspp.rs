//! torchvision's `lraspp_mobilenet_v3_large`: a MobileNetV3 backbone, the LR-ASPP head and
//! a bilinear resize of the class logits to the input size.

use super::append_features;
use crate::blocks::{Architecture, ConvBnAct, Graph, Model, Op};
use crate::error::{positive, Result};
use crate::gpu::Gpu;
use crate::ops::conv::{Conv2dParams, ResidualJoin};
use crate::ops::pool::GlobalPool;
use crate::ops::setters;
use crate::ops::upsample::UpsampleMode;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

use super::MobileNetV3FeaturesConfig;

/// The configuration of torchvision's `lraspp_mobilenet_v3_large(num_classes=...)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LrAsppConfig {
    /// The backbone (torchvision: large, width 1.0, dilated).
    pub backbone: MobileNetV3FeaturesConfig,
    /// Classes.
    pub num_classes: usize,
    /// The head's intermediate channels (torchvision: 128).
    pub inter_channels: usize,
}

impl LrAsppConfig {
    /// torchvision's `lraspp_mobilenet_v3_large(num_classes=num_classes)`: a dilated
    /// MobileNetV3-Large backbone and 128 intermediate channels (21 classes for the
    /// COCO-with-VOC-labels weights).
    pub fn torchvision(num_classes: usize) -> Self {
        LrAsppConfig {
            backbone: MobileNetV3FeaturesConfig::large().dilated(true),
            num_classes,
            inter_channels: 128,
        }
    }
}

setters!(LrAsppConfig {
    /// Sets another backbone configuration (torchvision always builds a dilated one).
    backbone: MobileNetV3FeaturesConfig,
});

/// torchvision's LR-ASPP segmentation model: the head takes the backbone's last output
/// (`high`) and the output of the block that ends the 1/8-resolution stage (`low`):
/// `low_classifier(low) + high_classifier(resize(cbr(high) * sigmoid(scale(pool(high)))))`,
/// then the logits are resized to the input. The high classifier (1x1, linear) runs before
/// the first resize instead of after: a bilinear resize's weights sum to 1 per output, so
/// the two commute (bias included), and the resize then moves `num_classes` channels
/// instead of 128; it also applies the sigmoid gate as it reads the branch.
pub type LrAsppMobileNetV3 = Model<LrAsppConfig>;

impl Architecture for LrAsppConfig {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        positive(&[
            ("num_classes", self.num_classes),
            ("inter_channels", self.inter_channels),
        ])
    }

    /// Loads `backbone.*` (the backbone's `features`) and `classifier.*` (the head) under
    /// `prefix` as torchvision names them (empty for a whole model's state dict).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let cfg = self;
        let low_index = cfg.backbone.low_stage()?;
        let low_channels = cfg.backbone.channels_at(low_index);
        let high_channels = cfg.backbone.channels_at(usize::MAX);
        let (stem, features, last) = cfg.backbone.load_parts(gpu, sd, &key(prefix, "backbone"))?;
        let head = |n: &str| key(prefix, &format!("classifier.{n}"));
        let (inter, classes) = (cfg.inter_channels, cfg.num_classes);
        let conv =
            |p: Conv2dParams, name: &str| ConvBnAct::load(gpu, sd, p, &head(name), None, 0.0);
        let cbr = ConvBnAct::load(
            gpu,
            sd,
            Conv2dParams::new(high_channels, inter, 1)
                .bias(false)
                .activation(Activation::Relu),
            &head("cbr.0"),
            Some(&head("cbr.1")),
            1e-5,
        )?;
        let scale = conv(
            Conv2dParams::new(high_channels, inter, 1).bias(false),
            "scale.1",
        )?;
        let low_classifier = conv(
            Conv2dParams::new(low_channels, classes, 1),
            "low_classifier",
        )?
        .with_residual(ResidualJoin::AfterActivation)?;
        // The gate `sigmoid(scale(pool(high)))` is applied by the high classifier as it reads
        // the branch (one pass and one map fewer than scaling first).
        let high_classifier = conv(Conv2dParams::new(inter, classes, 1), "high_classifier")?
            .with_input_gate(Activation::Sigmoid)?;
        let bilinear = UpsampleMode::Bilinear {
            align_corners: false,
        };

        let mut g = Graph::new();
        let x = g.input();
        let outs = append_features(&mut g, x, stem, features, last);
        let (high, low) = (outs[outs.len() - 1], outs[low_index]);
        let pooled = g.add(
            "classifier.scale.0",
            Op::GlobalPool(GlobalPool::Avg),
            &[high],
        );
        let gate = g.add("classifier.scale.1", scale, &[pooled]);
        let branch = g.add("classifier.cbr", cbr, &[high]);
        let high_logits = g.add(
            "classifier.high_classifier",
            high_classifier,
            &[branch, gate],
        );
        let up = g.resize_like("classifier.resize", bilinear, high_logits, low);
        let logits = g.add("classifier.low_classifier", low_classifier, &[low, up]);
        let y = g.resize_like("resize", bilinear, logits, x);
        g.set_outputs(&[y]);
        Ok(g)
    }
}
