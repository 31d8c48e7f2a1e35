//! torchvision's `segmentation` models with their heads: `fcn_resnet50`,
//! `fcn_resnet101`, `deeplabv3_resnet50`, `deeplabv3_resnet101` and
//! `deeplabv3_mobilenet_v3_large` (with `lraspp_mobilenet_v3_large` in
//! [`super::LrAsppMobileNetV3`]), loaded from torchvision's state dicts by name
//! (`backbone.*`, `classifier.*`, `aux_classifier.*`).
//!
//! The backbone is a dilated ResNet (output stride 8, `replace_stride_with_dilation =
//! [False, True, True]`) or a dilated MobileNetV3-Large (output stride 16). The head is
//! FCN's (`FCNHead(2048, num_classes)`) or DeepLabV3's (`ASPP` with rates 12 / 24 / 36,
//! a 3x3 convolution with batch norm and ReLU, a 1x1 classifier). With `aux_loss` an
//! `FCNHead` on `layer3` (ResNet) or on the end of the 1/8 stage (MobileNetV3) gives the
//! auxiliary output. Both outputs are resized to the input bilinearly
//! (`align_corners=False`), as torchvision's `forward` returns them.

use super::{append_features, MobileNetV3FeaturesConfig, ResNetConfig};
use crate::blocks::{
    conv_bn, Architecture, Aspp, AsppConfig, ConvBnAct, FcnHead, FcnHeadConfig, Graph, Model,
    ValueId,
};
use crate::error::{positive, Result};
use crate::gpu::Gpu;
use crate::ops::conv::Conv2dParams;
use crate::ops::upsample::UpsampleMode;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// The backbone of a segmentation model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SegmentationBackbone {
    /// A ResNet (`backbone.conv1`, `backbone.layer1` ..); the head reads `layer4`, the
    /// auxiliary head `layer3`.
    ResNet(ResNetConfig),
    /// MobileNetV3's `features` (`backbone.0` ..); the head reads the last, the auxiliary
    /// head the end of the 1/8-resolution stage.
    MobileNetV3(MobileNetV3FeaturesConfig),
}

/// The head of a segmentation model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentationHead {
    /// FCN's: 3x3 to a quarter of the channels with batch norm and ReLU, 1x1 classifier.
    Fcn,
    /// DeepLabV3's: ASPP with these rates (torchvision: 12, 24, 36), 3x3 with batch norm
    /// and ReLU, 1x1 classifier.
    DeepLabV3 {
        /// The ASPP's dilation rates.
        atrous_rates: Vec<usize>,
    },
}

/// The configuration of a torchvision segmentation model; the presets reproduce
/// torchvision's builders.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentationConfig {
    /// The backbone.
    pub backbone: SegmentationBackbone,
    /// The head.
    pub head: SegmentationHead,
    /// Classes (torchvision's weights: 21).
    pub num_classes: usize,
    /// Whether the model has `aux_classifier` (torchvision: when loading its pretrained
    /// weights, or `aux_loss=True`); its output is [`Model::forward_all`]'s second.
    pub aux_loss: bool,
}

impl SegmentationConfig {
    fn resnet(resnet: ResNetConfig, head: SegmentationHead, num_classes: usize) -> Self {
        SegmentationConfig {
            backbone: SegmentationBackbone::ResNet(
                resnet.replace_stride_with_dilation([false, true, true]),
            ),
            head,
            num_classes,
            aux_loss: false,
        }
    }

    fn deeplab() -> SegmentationHead {
        SegmentationHead::DeepLabV3 {
            atrous_rates: vec![12, 24, 36],
        }
    }

    /// `fcn_resnet50(num_classes=num_classes)`.
    pub fn fcn_resnet50(num_classes: usize) -> Self {
        Self::resnet(ResNetConfig::resnet50(), SegmentationHead::Fcn, num_classes)
    }

    /// `fcn_resnet101(num_classes=num_classes)`.
    pub fn fcn_resnet101(num_classes: usize) -> Self {
        Self::resnet(
            ResNetConfig::resnet101(),
            SegmentationHead::Fcn,
            num_classes,
        )
    }

    /// `deeplabv3_resnet50(num_classes=num_classes)`.
    pub fn deeplabv3_resnet50(num_classes: usize) -> Self {
        Self::resnet(ResNetConfig::resnet50(), Self::deeplab(), num_classes)
    }

    /// `deeplabv3_resnet101(num_classes=num_classes)`.
    pub fn deeplabv3_resnet101(num_classes: usize) -> Self {
        Self::resnet(ResNetConfig::resnet101(), Self::deeplab(), num_classes)
    }

    /// `deeplabv3_mobilenet_v3_large(num_classes=num_classes)`: a dilated
    /// MobileNetV3-Large backbone.
    pub fn deeplabv3_mobilenet_v3_large(num_classes: usize) -> Self {
        SegmentationConfig {
            backbone: SegmentationBackbone::MobileNetV3(
                MobileNetV3FeaturesConfig::large().dilated(true),
            ),
            head: Self::deeplab(),
            num_classes,
            aux_loss: false,
        }
    }
}

crate::ops::setters!(SegmentationConfig {
    /// Sets `aux_loss` (torchvision's pretrained weights have the auxiliary head).
    aux_loss: bool,
});

/// A torchvision segmentation model for inference: input `[N, 3, H, W]` normalised as
/// torchvision's weights expect ([`Normalize::IMAGENET`](crate::ops::frame::Normalize)),
/// output the class logits `[N, num_classes, H, W]`;
/// [`Model::forward_all`] gives `[out, aux]` with the auxiliary head.
pub type SegmentationModel = Model<SegmentationConfig>;

impl Architecture for SegmentationConfig {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        positive(&[("num_classes", self.num_classes)])?;
        match &self.backbone {
            SegmentationBackbone::ResNet(r) => r.validate(),
            SegmentationBackbone::MobileNetV3(m) => m.low_stage().map(|_| ()),
        }
    }

    /// Loads `backbone.*`, `classifier.*` and, with `aux_loss`, `aux_classifier.*` under
    /// `prefix` as torchvision names them (empty for a whole model's state dict).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let mut g = Graph::new();
        let x = g.input();
        let backbone = key(prefix, "backbone");
        // The head's input and the auxiliary head's, with their channels.
        let ((high, high_c), (low, low_c)) = match &self.backbone {
            SegmentationBackbone::ResNet(r) => {
                let [_, _, l3, l4] = r.append(&mut g, x, (gpu, sd, &backbone))?;
                let c = r.stage_channels();
                ((l4, c[3]), (l3, c[2]))
            }
            SegmentationBackbone::MobileNetV3(m) => {
                let (stem, blocks, last) = m.load_parts(gpu, sd, &backbone)?;
                let outs = append_features(&mut g, x, stem, blocks, last);
                let low = m.low_stage()?;
                (
                    (outs[outs.len() - 1], m.channels_at(usize::MAX)),
                    (outs[low], m.channels_at(low)),
                )
            }
        };
        let classes = self.num_classes;
        let classifier = key(prefix, "classifier");
        let logits = match &self.head {
            SegmentationHead::Fcn => {
                let head = FcnHead::load(gpu, fcn_head(high_c, classes), sd, &classifier)?;
                g.add("classifier", head.into_graph(), &[high])
            }
            SegmentationHead::DeepLabV3 { atrous_rates } => deeplab_head(
                &mut g,
                high,
                (high_c, atrous_rates),
                classes,
                (gpu, sd, &classifier),
            )?,
        };
        let bilinear = UpsampleMode::Bilinear {
            align_corners: false,
        };
        let out = g.resize_like("resize", bilinear, logits, x);
        let mut outputs = vec![out];
        if self.aux_loss {
            let aux = key(prefix, "aux_classifier");
            let head = FcnHead::load(gpu, fcn_head(low_c, classes), sd, &aux)?;
            let aux_logits = g.add("aux_classifier", head.into_graph(), &[low]);
            outputs.push(g.resize_like("aux resize", bilinear, aux_logits, x));
        }
        g.set_outputs(&outputs);
        Ok(g)
    }
}

/// torchvision's `DeepLabHead(in_channels, num_classes)` under `prefix`: `0` the ASPP,
/// `1` / `2` a 3x3 convolution and its batch norm (ReLU), `4` the classifier.
fn deeplab_head(
    g: &mut Graph,
    x: ValueId,
    (in_channels, rates): (usize, &[usize]),
    classes: usize,
    (gpu, sd, prefix): (&Gpu, &StateDict, &str),
) -> Result<ValueId> {
    let aspp = AsppConfig {
        in_channels,
        atrous_rates: rates.to_vec(),
        out_channels: 256,
        separable: false,
    };
    let aspp = Aspp::load(gpu, aspp, sd, &key(prefix, "0"))?;
    let y = g.add(key(prefix, "0"), aspp.into_graph(), &[x]);
    let p = Conv2dParams::new(256, 256, 3)
        .padding(1)
        .bias(false)
        .activation(Activation::Relu);
    let conv = conv_bn(gpu, sd, p, &key(prefix, "1"), &key(prefix, "2"), 1e-5)?;
    let y = g.add(key(prefix, "1"), conv, &[y]);
    let last = ConvBnAct::load(
        gpu,
        sd,
        Conv2dParams::new(256, classes, 1),
        &key(prefix, "4"),
        None,
        0.0,
    )?;
    Ok(g.add(key(prefix, "4"), last, &[y]))
}

fn fcn_head(in_channels: usize, channels: usize) -> FcnHeadConfig {
    FcnHeadConfig {
        in_channels,
        channels,
    }
}
