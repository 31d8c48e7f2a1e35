//! Whole networks, one file each, loaded from their PyTorch / torchvision (or converted
//! TFLite) state dicts by name: MobileNetV2, MobileNetV3, ResNet (ResNet-18 to 152,
//! ResNeXt, Wide ResNet), RegNet (X and Y), EfficientNet (B0 to B7, V2), ConvNeXt, DenseNet,
//! VGG, SENet, ShuffleNetV2 and MNASNet feature extractors, torchvision's segmentation models (FCN and DeepLabV3 on ResNet-50/101 and
//! MobileNetV3, LR-ASPP), segmentation_models_pytorch's `Unet`, `UnetPlusPlus`, `FPN`, `DeepLabV3`,
//! `DeepLabV3Plus`, `Linknet`, `PSPNet`, `UPerNet`, `Segformer`, `PAN` and `MAnet` on ResNet,
//! MobileNetV2, VGG, DenseNet, SENet, MobileOne, Xception, SegFormer's Mix Transformer and
//! EfficientNet encoders (EfficientNet-PyTorch's
//! B0 to B7, also a feature extractor of its own, and timm's B0 to B8, L2 and Lite0 to Lite4;
//! through smp's timm universal encoders also timm's ResNet family, MobileNets, RegNets,
//! ConvNeXts, GENets and RepVGGs),
//! Hugging Face transformers' SegFormer (`SegformerForSemanticSegmentation`, the Hub's
//! checkpoints by their names), MediaPipe's selfie segmentation models, U²-Net and IS-Net for background removal, MODNet
//! for portrait matting, BiSeNetV2, Fast-SCNN, ENet, ERFNet, DDRNet, PIDNet and STDC-Seg
//! for real-time semantic segmentation, HRNetV2 and HRNet-OCR (HRNet-Semantic-Segmentation's)
//! for semantic segmentation at high resolution, and BiSeNet for face parsing. Each is a
//! [`Model`](crate::blocks::Model) of its configuration: its graph gives its GPU forward,
//! CPU reference and summary. Every torchvision network has a `torchvision` preset that
//! reproduces torchvision's configuration.

mod bisenet;
mod convnext;
mod ddrnet;
mod densenet;
mod dpn;
mod efficientnet;
mod enet;
mod erfnet;
mod fast_scnn;
mod fcn8s;
mod gernet;
mod hf_segformer;
mod hrnet;
mod hrnet_ocr;
mod hrnet_seg;
mod inception;
mod lraspp;
mod mix_transformer;
mod mnasnet;
mod mobilenet_v2;
mod mobilenet_v3;
mod mobileone;
mod modnet;
mod pidnet;
mod regnet;
mod repvgg;
mod resnet;
mod rvm;
mod segmentation;
mod segnet;
mod selfie;
mod senet;
mod shufflenet;
mod sknet;
mod smp_deeplab;
mod smp_dpt;
mod smp_fpn;
mod smp_linknet;
mod smp_manet;
mod smp_pan;
mod smp_pspnet;
mod smp_segformer;
mod smp_unet;
mod smp_upernet;
mod stdc;
mod timm_efficientnet;
mod timm_mobilenet;
mod u2net;
mod unet;
mod vgg;
mod vit;
mod xception;
mod xception_aligned;

pub use bisenet::{BiSeNet, BiSeNetAuxMode, BiSeNetConfig, BiSeNetV2, BiSeNetV2Config};
pub use convnext::{ConvNextConfig, ConvNextFeatures};
pub use ddrnet::{DdrNet, DdrNetConfig};
pub use densenet::{DenseNetConfig, DenseNetFeatures};
pub use dpn::{DpnConfig, DpnFeatures};
pub use efficientnet::{
    EfficientNetArch, EfficientNetConfig, EfficientNetFeatures, EfficientNetPyTorchConfig,
    EfficientNetPyTorchFeatures,
};
pub use enet::{Enet, EnetConfig};
pub use erfnet::{ErfNet, ErfNetConfig};
pub use fast_scnn::{FastScnn, FastScnnConfig};
pub use fcn8s::{Fcn8s, Fcn8sConfig};
pub use gernet::{GerNetBlock, GerNetConfig, GerNetStage};
pub use hf_segformer::{HfSegformer, HfSegformerConfig};
pub use hrnet::HrNetConfig;
pub use hrnet_ocr::{HrNetOcr, HrNetOcrConfig};
pub use hrnet_seg::{HrNetSeg, HrNetSegConfig};
pub use inception::{InceptionArch, InceptionConfig, InceptionFeatures};
pub use lraspp::{LrAsppConfig, LrAsppMobileNetV3};
pub use mix_transformer::MixTransformerConfig;
pub use mnasnet::{MnasNetConfig, MnasNetFeatures};
pub use mobilenet_v2::{MobileNetV2Config, MobileNetV2Features};
pub use mobilenet_v3::{MobileNetV3Arch, MobileNetV3Features, MobileNetV3FeaturesConfig};
pub use mobileone::MobileOneConfig;
pub use modnet::{ModNet, ModNetConfig};
pub use pidnet::{PidNet, PidNetConfig};
pub use regnet::{RegNetConfig, RegNetFeatures, RegNetStage};
pub use repvgg::RepVggConfig;
pub use resnet::{
    ResNetAttention, ResNetBlock, ResNetConfig, ResNetFeatures, ResNetStageBlock, ResNetStem,
};
pub use rvm::{RobustVideoMatting, RvmConfig, RvmMaps, RvmOutput, RvmRefiner, RvmRun, RvmVariant};
pub use segmentation::{
    SegmentationBackbone, SegmentationConfig, SegmentationHead, SegmentationModel,
};
pub use segnet::{SegNet, SegNetConfig};
pub use selfie::{SelfieModel, SelfieSegmentation};
pub use senet::{SeNetBlock, SeNetConfig, SeNetFeatures};
pub use shufflenet::{ShuffleNetV2Config, ShuffleNetV2Features};
pub use sknet::{SkResNetBlock, SkResNetConfig, SkResNetFeatures};
pub use smp_deeplab::{SmpDeepLabV3, SmpDeepLabV3Config, SmpDeepLabV3Plus, SmpDeepLabV3PlusConfig};
pub use smp_dpt::{DptReadout, SmpDpt, SmpDptConfig};
pub use smp_fpn::{FpnMerge, SmpFpn, SmpFpnConfig};
pub use smp_linknet::{SmpLinknet, SmpLinknetConfig};
pub use smp_manet::{SmpMAnet, SmpMAnetConfig};
pub use smp_pan::{SmpPan, SmpPanConfig};
pub use smp_pspnet::{SmpPspNet, SmpPspNetConfig};
pub use smp_segformer::{SmpSegformer, SmpSegformerConfig};
pub use smp_unet::{
    HeadActivation, SmpAuxParams, SmpEncoder, SmpUnet, SmpUnetConfig, SmpUnetPlusPlus,
};
pub use smp_upernet::{SmpUperNet, SmpUperNetConfig};
pub use stdc::{StdcBackbone, StdcSeg, StdcSegConfig};
pub use timm_efficientnet::{TimmEfficientNetArch, TimmEfficientNetConfig};
pub use timm_mobilenet::{TimmMobileNetArch, TimmMobileNetConfig};
pub use u2net::{Rsu, U2Net, U2NetConfig};
pub use unet::{UNet, UNetConfig};
pub use vgg::{VggConfig, VggFeatures};
pub use vit::VitConfig;
pub use xception_aligned::AlignedXceptionConfig;

use crate::blocks::{ConvBnAct, Graph, ValueId};
use crate::ops::conv::Conv2dParams;

/// A 3x3 convolution without bias at `stride`, padded by 1 (`nn.Conv2d(cin, cout, 3,
/// stride, 1, bias=False)`).
pub(crate) fn conv3x3(cin: usize, cout: usize, stride: usize) -> Conv2dParams {
    Conv2dParams::new(cin, cout, 3)
        .stride(stride)
        .padding(1)
        .bias(false)
}

/// A 1x1 convolution without bias.
pub(crate) fn conv1x1(cin: usize, cout: usize) -> Conv2dParams {
    Conv2dParams::new(cin, cout, 1).bias(false)
}

/// `x` resized bilinearly (corners not aligned: `F.interpolate(x, size=like's,
/// mode='bilinear')`) to the size of `like`.
pub(crate) fn resize_like(g: &mut Graph, name: String, x: ValueId, like: ValueId) -> ValueId {
    let bilinear = crate::ops::upsample::UpsampleMode::Bilinear {
        align_corners: false,
    };
    g.resize_like(name, bilinear, x, like)
}

/// torchvision's `features` layout shared by the MobileNets: `{prefix}.0` a stem
/// convolution, `{prefix}.1 ..` the blocks (their graphs), `{prefix}.{n + 1}` a last
/// convolution. Appends them to `g` after `x`; returns the last output and the output
/// after each of the first `k` nodes for `k = 0 ..= n + 1` (0: the stem's).
fn append_features(
    g: &mut Graph,
    x: ValueId,
    stem: ConvBnAct,
    blocks: Vec<Graph>,
    last: ConvBnAct,
) -> Vec<ValueId> {
    let mut outs = vec![g.add("0", stem, &[x])];
    for (i, b) in blocks.into_iter().enumerate() {
        let y = g.add((i + 1).to_string(), b, &[outs[i]]);
        outs.push(y);
    }
    let n = outs.len();
    let y = g.add(n.to_string(), last, &[outs[n - 1]]);
    outs.push(y);
    outs
}

/// A feature extractor's graph: `append` puts the network after the graph's input and
/// returns its features, shallowest first; the graph outputs them deepest first.
pub(crate) fn features_deepest_first(
    append: impl FnOnce(
        &mut crate::blocks::Graph,
        crate::blocks::ValueId,
    ) -> crate::Result<Vec<crate::blocks::ValueId>>,
) -> crate::Result<crate::blocks::Graph> {
    let mut g = crate::blocks::Graph::new();
    let x = g.input();
    let mut outs = append(&mut g, x)?;
    outs.reverse();
    g.set_outputs(&outs);
    Ok(g)
}
