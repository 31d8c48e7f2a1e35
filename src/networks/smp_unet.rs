//! segmentation_models_pytorch's `Unet` (`smp.Unet(encoder_name, encoder_depth, in_channels,
//! classes, decoder_channels, decoder_use_norm, decoder_interpolation, activation)`) with a
//! ResNet, MobileNetV2, EfficientNet, VGG, DenseNet or SENet encoder ([`SmpEncoder`]): the
//! encoder's stages give the skips (ResNet: the stem's output at 1/2, `layer1` at 1/4, ...;
//! MobileNetV2: `features.1`, `.3`, `.6`, `.13` and `.18`; EfficientNet: the stem's and
//! smp's `out_indexes` blocks; VGG: each stage before its pool); each decoder block resizes
//! its input to the next skip's size (`F.interpolate(size=...)`, nearest by default),
//! concatenates the skip after it, and runs two 3x3 convolutions with batch norm and ReLU;
//! the last block resizes to the input's size and has no skip; a 3x3 convolution gives the
//! classes, then the head's activation. A VGG encoder's last feature first goes through
//! smp's center block (two more 3x3 convolutions).
//! Names are smp's (`encoder.*`, `decoder.blocks.{i}.conv{1,2}.{0,1}`,
//! `segmentation_head.0`), so its checkpoints load as they are.
//!
//! With `decoder_attention_type="scse"` each block applies smp's `SCSEModule` after the
//! concatenation and after its second convolution: `x * cSE(x) + x * sSE(x)`, a squeeze-
//! and-excitation gate (reduction 16) and a 1x1 spatial gate, both sigmoid.
//!
//! smp's `UnetPlusPlus` takes the same parameters ([`SmpUnetConfig::unet_plus_plus`]): its
//! decoder nodes `decoder.blocks.x_{d}_{l}` are the same blocks, resizing by 2, joined by
//! nested dense skips.
//!
//! With `aux_params`, smp's classification head on the encoder's last feature gives a
//! second output ([`SmpAuxParams`]).
//!
//! Not covered: smp's timm universal (`tu-*`) encoders other than timm's ResNets (its
//! SE, ECA, anti-aliased, Res2Net and ResNeSt ones too), EfficientNets,
//! MobileNets, RegNets, ConvNeXts and GENets
//! ([`SmpEncoder::from_name`] lists every name), the norms other than batch norm (or
//! none).

use crate::blocks::{
    conv_bn, AntiAlias, Architecture, BottleneckKind, ConvBnAct, Graph, Model, Op, SeNode, ValueId,
};
use crate::error::{fail_if, positive, Error, Result};
use crate::gpu::Gpu;
use crate::ops::attention::SqueezeExcitationParams;
use crate::ops::conv::Conv2dParams;
use crate::ops::pool::{AvgPool2dParams, GlobalPool};
use crate::ops::upsample::{UpsampleMode, UpsampleParams};
use crate::ops::Activation;
use crate::weights::{key, StateDict};

use super::resnet::DilationRule;
use super::{
    AlignedXceptionConfig, ConvNextConfig, DenseNetConfig, DpnConfig, EfficientNetPyTorchConfig,
    GerNetConfig, HrNetConfig, InceptionConfig, MixTransformerConfig, MobileNetV2Config,
    MobileOneConfig, RegNetConfig, RepVggConfig, ResNetAttention, ResNetConfig, ResNetStem,
    SeNetConfig, SkResNetConfig, TimmEfficientNetConfig, TimmMobileNetConfig, VggConfig,
};

/// The encoder of an smp model (its `encoder_name`), under the state dict's `encoder.`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SmpEncoder {
    /// One of the ResNets (`resnet18` .. `resnext101_32x48d`): torchvision's ResNet.
    ResNet(ResNetConfig),
    /// `tu-resnet18`, `tu-resnet26`, `tu-resnet34`, `tu-resnet50`, `tu-resnet101`,
    /// `tu-resnet152`, `tu-resnet200`, `tu-resnext50_32x4d`, `tu-resnext101_32x4d` / `8d` /
    /// `16d` / `32d`, `tu-resnext101_64x4d`, `tu-wide_resnet50_2`, `tu-wide_resnet101_2`,
    /// and timm's stem variants `tu-resnet10t`, `tu-resnet14t`, `tu-resnet18d`,
    /// `tu-resnet26d` / `26t`, `tu-resnet34d`, `tu-resnet50c` / `50d` / `50s` / `50t`,
    /// `tu-resnet101c` / `d` / `s`, `tu-resnet152c` / `d` / `s`, `tu-resnet200d`,
    /// `tu-resnext50d_32x4d` ([`ResNetStem`], [`ResNetConfig::avg_down`]), and its
    /// squeeze-and-excitation ResNets `tu-seresnet18` / `34` / `50` / `50t` / `101` /
    /// `152` / `152d` / `200d` / `269d`, `tu-seresnext26d_32x4d` / `26t_32x4d` /
    /// `50_32x4d` / `101_32x4d` / `101_32x8d` / `101d_32x8d` / `101_64x4d`, its
    /// efficient-channel-attention ResNets `tu-ecaresnet26t`, `50d`, `50t`, `101d`,
    /// `200d`, `269d`, `tu-ecaresnetlight` ([`ResNetConfig::attn_layer`]), and its
    /// blur-pooled ResNets `tu-resnetblur18`, `50`, `50d`, `101d`, and its
    /// anti-aliased ResNets `tu-resnetaa34d`, `50`, `50d`, `101d`, `tu-seresnetaa50d`,
    /// `tu-seresnextaa101d_32x8d`, `tu-seresnextaa201d_32x8d`
    /// ([`ResNetConfig::anti_alias`]), and its Res2Nets `tu-res2net50_26w_4s` / `26w_6s` /
    /// `26w_8s` / `48w_2s` / `14w_8s`, `tu-res2net101_26w_4s`, `tu-res2next50`,
    /// `tu-res2net50d`, `tu-res2net101d`, and its ResNeSts `tu-resnest14d`, `26d`, `50d`,
    /// `101e`, `200e`, `269e`, `tu-resnest50d_4s2x40d`, `tu-resnest50d_1s4x24d`
    /// ([`ResNetConfig::bottleneck_kind`]; smp's
    /// deprecated `timm-res2*` and `timm-resnest*` names for them)
    /// (a pretrained tag after `.` ignored): timm's ResNet through smp's
    /// `TimmUniversalEncoder` (`encoder.model.conv1`, `encoder.model.layer{i}.*`), the same
    /// network as torchvision's, dilated as timm's `output_stride` does (the first block
    /// of a dilated stage keeps the previous dilation in its first 3x3).
    TimmUniversalResNet(ResNetConfig),
    /// `mobilenet_v2`: torchvision's `mobilenet_v2().features` (`encoder.features.*`).
    MobileNetV2,
    /// `efficientnet-b0` .. `efficientnet-b7`: EfficientNet-PyTorch's model
    /// (`encoder._conv_stem`, `encoder._blocks.*`; [`EfficientNetPyTorchConfig`]).
    EfficientNet(EfficientNetPyTorchConfig),
    /// `vgg11`, `vgg11_bn`, ... `vgg19_bn`: torchvision's VGG `features` (`encoder.features.*`;
    /// [`VggConfig`]): its features are each stage's output before its pool (the first at
    /// the input's size) and the last pool's; it cannot be dilated.
    Vgg(VggConfig),
    /// `densenet121`, `densenet161`, `densenet169`, `densenet201`: torchvision's DenseNet
    /// `features` (`encoder.features.*`; [`DenseNetConfig`]); it cannot be dilated.
    DenseNet(DenseNetConfig),
    /// `se_resnet50`, `se_resnet101`, `se_resnet152`, `se_resnext50_32x4d`,
    /// `se_resnext101_32x4d`, `senet154`: `pretrainedmodels`' SENets (`encoder.layer0.*`,
    /// `encoder.layer{i}.*`; [`SeNetConfig`]).
    SeNet(SeNetConfig),
    /// `timm-skresnet18`, `timm-skresnet34`, `timm-skresnext50_32x4d`: timm's Selective
    /// Kernel ResNets (`encoder.conv1`, `encoder.layer{i}.*`; [`SkResNetConfig`]).
    SkResNet(SkResNetConfig),
    /// `dpn68`, `dpn68b`, `dpn92`, `dpn98`, `dpn107`, `dpn131`: `pretrainedmodels`' Dual
    /// Path Networks (`encoder.features.conv1_1` .. `conv5_bn_ac`; [`DpnConfig`]).
    Dpn(DpnConfig),
    /// `timm-efficientnet-b0` .. `b8`, `timm-efficientnet-l2`, `timm-tf_efficientnet_lite0`
    /// .. `lite4`: timm's EfficientNet as smp builds it (`encoder.conv_stem`,
    /// `encoder.blocks.{stage}.{i}.*`; [`TimmEfficientNetConfig`]).
    TimmEfficientNet(TimmEfficientNetConfig),
    /// `tu-efficientnet_b0` .. `b8`, `tu-efficientnet_l2`, `tu-efficientnet_lite0` ..
    /// `lite4`, the EfficientNetV2s `tu-efficientnetv2_rw_t` / `rw_s` / `rw_m` / `s` / `m` / `l` /
    /// `xl`, the EdgeTPU models `tu-efficientnet_es` / `em` / `el`, the TensorFlow-padded
    /// `tf_` forms of all these but the `rw` ones, `tu-tf_efficientnetv2_b0` .. `b3`, and the
    /// MixNets `tu-mixnet_s` / `m` / `l` / `xl` / `xxl` and `tu-tf_mixnet_s` / `m` / `l`, and
    /// the NAS models on the same builder: `tu-tinynet_a` .. `e`, `tu-mnasnet_050` / `075` /
    /// `100` / `140`, `tu-semnasnet_050` .. `140`, `tu-mnasnet_small`, `tu-spnasnet_100`,
    /// `tu-fbnetc_100` (a pretrained tag after `.` ignored;
    /// [`TimmEfficientNetConfig::from_timm`]): timm's own
    /// EfficientNet through smp's `TimmUniversalEncoder` (`encoder.model.conv_stem`,
    /// `encoder.model.blocks.*`): the same blocks as the `timm-` encoders, but the stride-2
    /// feature is the first stage's output and the dilation follows timm's
    /// `output_stride` rule.
    TimmUniversalEfficientNet(TimmEfficientNetConfig),
    /// `tu-mobilenetv3_large_075` / `_100` / `_150d`, `tu-mobilenetv3_small_050` / `_075` / `_100`,
    /// `tu-mobilenetv3_rw`, `tu-lcnet_035` / `_050` / `_075` / `_100` / `_150`,
    /// `tu-mobilenetv1_100` / `_100h` / `_125`, `tu-fbnetv3_b` / `_d` / `_g`,
    /// `tu-tf_mobilenetv3_large_075` / `_100` / `_large_minimal_100`,
    /// `tu-tf_mobilenetv3_small_075` / `_100` / `_small_minimal_100` (a pretrained tag
    /// after `.` ignored), smp's deprecated `timm-mobilenetv3_*` names for the `tf_`
    /// ones, `tu-mobilenetv2_035` / `_050` / `_075` / `_100` / `_140` / `_110d` / `_120d`, and
    /// `tu-mobilenetv4_conv_small` / `_small_035` / `_small_050` / `_medium` / `_large`:
    /// timm's own MobileNetV4, V3 and V2 through smp's `TimmUniversalEncoder`
    /// (`encoder.model.conv_stem`, `encoder.model.blocks.*`; [`TimmMobileNetConfig`]),
    /// dilated by timm's `output_stride` rule.
    TimmUniversalMobileNet(TimmMobileNetConfig),
    /// `tu-regnetx_002` .. `tu-regnetx_320`, `tu-regnety_002` .. `tu-regnety_640` (a
    /// pretrained tag after `.` ignored) and smp's deprecated `timm-regnetx_*` /
    /// `timm-regnety_*` names for them: timm's RegNet through smp's `TimmUniversalEncoder`
    /// (`encoder.model.stem.conv`, `encoder.model.s{i}.b{j}.*`; [`RegNetConfig::timm`]),
    /// dilated by timm's `output_stride` rule.
    TimmUniversalRegNet(RegNetConfig),
    /// `tu-convnext_atto`, `_femto`, `_pico`, `_nano`, `_tiny`, `_small`, `_base`,
    /// `_large`, `_xlarge` and ConvNeXt V2's `tu-convnextv2_atto` .. `_huge` (a pretrained
    /// tag after `.` ignored): timm's ConvNeXt through
    /// smp's `TimmUniversalEncoder` (`encoder.model.stem_0` / `stem_1`, `encoder.model.stages_{s}.*`;
    /// [`ConvNextConfig::timm`]), dilated by timm's `output_stride` rule. It starts at
    /// 1/4 of the input: its stride-2 feature is empty (0 channels), as smp pads it.
    TimmUniversalConvNext(ConvNextConfig),
    /// `tu-gernet_s`, `tu-gernet_m`, `tu-gernet_l` (a pretrained tag after `.` ignored) and
    /// smp's deprecated `timm-gernet_*` names for them: timm's GENets through smp's
    /// `TimmUniversalEncoder` (`encoder.model.stem`, `encoder.model.stages_{i}.*`,
    /// `encoder.model.final_conv`; [`GerNetConfig`]), dilated by timm's `output_stride`
    /// rule.
    TimmUniversalGerNet(GerNetConfig),
    /// `tu-hrnet_w18_small`, `tu-hrnet_w18_small_v2`, `tu-hrnet_w18` .. `tu-hrnet_w64`
    /// (`_ssld` too; a pretrained tag after `.` ignored): timm's HRNets through smp's
    /// `TimmUniversalEncoder` (`encoder.model.conv1` .. `encoder.model.incre_modules.*`;
    /// [`HrNetConfig`]): the stem's first convolution and the four `incre_modules` as the
    /// features. They cannot be dilated (timm refuses it), and every branch's size must
    /// be twice the next one's, as PyTorch's sums need: a quarter of the input's height
    /// and width, rounded up, a multiple of 8 (sides of 29 to 32, 61 to 64, ...).
    TimmUniversalHrNet(HrNetConfig),
    /// `tu-xception41`, `tu-xception65`, `tu-xception71` (a pretrained tag after `.`
    /// ignored): timm's Aligned Xceptions (DeepLabV3+'s) through smp's
    /// `TimmUniversalEncoder` (`encoder.model.stem_{i}`, `encoder.model.blocks_{i}`;
    /// [`AlignedXceptionConfig`]), dilated by timm's `output_stride` rule.
    TimmUniversalXception(AlignedXceptionConfig),
    /// `tu-repvgg_a0` .. `tu-repvgg_b3g4` (a pretrained tag after `.` ignored): timm's
    /// RepVGGs through smp's `TimmUniversalEncoder` (`encoder.model.stem`,
    /// `encoder.model.stages_{i}.*`; [`RepVggConfig`]), each block's branches folded into
    /// one convolution at load time, dilated by timm's `output_stride` rule.
    TimmUniversalRepVgg(RepVggConfig),
    /// `mobileone_s0` .. `mobileone_s4`: Apple's MobileOne as smp builds it, its trained
    /// branches (`encoder.stage{i}.*.rbr_conv` / `rbr_scale` / `rbr_skip`) folded into one
    /// convolution a block at load time ([`MobileOneConfig`]).
    MobileOne(MobileOneConfig),
    /// `inceptionv4`, `inceptionresnetv2`: Cadene's Inception-v4 (`encoder.features.{i}`)
    /// and Inception-ResNet-v2 (`encoder.conv2d_1a` .. `encoder.conv2d_7b`) as smp builds
    /// them, every 3x3 convolution and max pool padded by 1 ([`InceptionConfig`]); they
    /// cannot be dilated.
    Inception(InceptionConfig),
    /// `xception`: Cadene's Xception as smp builds it (`encoder.conv1`, `encoder.block{i}`,
    /// ...); it cannot be dilated.
    Xception,
    /// `mit_b0` .. `mit_b5`: SegFormer's Mix Transformer as smp builds it
    /// (`encoder.patch_embed{i}`, `encoder.block{i}.*`, `encoder.norm{i}`;
    /// [`MixTransformerConfig`]); its stride-2 feature is empty (0 channels), and smp's
    /// `Linknet` and `UnetPlusPlus` refuse it.
    MixTransformer(MixTransformerConfig),
}

impl SmpEncoder {
    /// smp's `encoder_name`: `resnet18`, `resnet34`, `resnet50`, `resnet101`, `resnet152`,
    /// `resnext50_32x4d`, `resnext101_32x4d`, `resnext101_32x8d`, `resnext101_32x16d`,
    /// `resnext101_32x32d`, `resnext101_32x48d`, `mobilenet_v2`, `efficientnet-b0` ..
    /// `efficientnet-b7`, `vgg11` .. `vgg19_bn`, `densenet121` / `161` / `169` / `201`,
    /// `se_resnet50` / `101` / `152`, `se_resnext50_32x4d`, `se_resnext101_32x4d`,
    /// `senet154`, `timm-skresnet18`, `timm-skresnet34`, `timm-skresnext50_32x4d`, `dpn68`,
    /// `dpn68b`, `dpn92`, `dpn98`, `dpn107`, `dpn131`,
    /// `timm-efficientnet-b0` .. `b8`, `timm-efficientnet-l2` or
    /// `timm-tf_efficientnet_lite0` .. `lite4`, `mobileone_s0` .. `mobileone_s4`,
    /// `inceptionv4`, `inceptionresnetv2`, `xception` or `mit_b0` .. `mit_b5` (all 76 of
    /// smp 0.6.0's list), of timm's universal names the ResNets (SE, ECA, anti-aliased and
    /// Res2Nets too), EfficientNets, MobileNets ([`SmpEncoder::TimmUniversalResNet`],
    /// [`SmpEncoder::TimmUniversalEfficientNet`], [`SmpEncoder::TimmUniversalMobileNet`]) and
    /// RegNets ([`SmpEncoder::TimmUniversalRegNet`]), its ConvNeXts
    /// ([`SmpEncoder::TimmUniversalConvNext`]), GENets ([`SmpEncoder::TimmUniversalGerNet`]),
    /// HRNets ([`SmpEncoder::TimmUniversalHrNet`]) and Aligned Xceptions
    /// ([`SmpEncoder::TimmUniversalXception`]), and smp's deprecated `timm-mobilenetv3_*`,
    /// `timm-regnet*`, `timm-res2*`, `timm-resnest*` and `timm-gernet_*` names (run as smp
    /// 0.6 runs them: as timm's `tf_mobilenetv3_*`, `regnet*`, `res2*`, `resnest*` and
    /// `gernet_*`); any other name is an error naming `encoder_name`.
    pub fn from_name(encoder_name: &str) -> Result<Self> {
        if let Some(timm) = encoder_name.strip_prefix("tu-") {
            if let Some(e) = TimmEfficientNetConfig::from_timm(timm) {
                return Ok(SmpEncoder::TimmUniversalEfficientNet(e));
            }
            if let Some(m) = TimmMobileNetConfig::from_timm(timm) {
                return Ok(SmpEncoder::TimmUniversalMobileNet(m));
            }
            if let Some(r) = RegNetConfig::timm(timm) {
                return Ok(SmpEncoder::TimmUniversalRegNet(r));
            }
            if let Some(c) = ConvNextConfig::timm(timm) {
                return Ok(SmpEncoder::TimmUniversalConvNext(c));
            }
            if let Some(c) = GerNetConfig::timm(timm) {
                return Ok(SmpEncoder::TimmUniversalGerNet(c));
            }
            if let Some(c) = HrNetConfig::timm(timm) {
                return Ok(SmpEncoder::TimmUniversalHrNet(c));
            }
            if let Some(c) = AlignedXceptionConfig::timm(timm) {
                return Ok(SmpEncoder::TimmUniversalXception(c));
            }
            if let Some(c) = RepVggConfig::timm(timm) {
                return Ok(SmpEncoder::TimmUniversalRepVgg(c));
            }
            return timm_resnet(timm)
                .map(SmpEncoder::TimmUniversalResNet)
                .ok_or_else(|| Error::InvalidParam {
                    name: "encoder_name",
                    reason: format!(
                        "{encoder_name:?}: of smp's timm (`tu-`) encoders this library has \
                         timm's plain ResNets (tu-resnet18 .. tu-resnet200, their c, d, s \
                         and t stems, tu-resnext50_32x4d, tu-resnext50d_32x4d, \
                         tu-resnext101_32x4d .. 32x32d, \
                         tu-resnext101_64x4d, tu-wide_resnet50_2, tu-wide_resnet101_2), its \
                         SE, ECA and anti-aliased ResNets (tu-seresnet*, tu-seresnext*, \
                         tu-ecaresnet* but the pruned ones, tu-resnetaa*, \
                         tu-seresnetaa50d, tu-seresnextaa*, tu-resnetblur18 / 50 / 50d / \
                         101d), its ResNet-RS (tu-resnetrs50 .. 420), its Res2Nets (tu-res2net*, \
                         tu-res2next50) and ResNeSts (tu-resnest14d / 26d / 50d / 101e / \
                         200e / 269e, tu-resnest50d_4s2x40d / 1s4x24d), its \
                         EfficientNets (tu-efficientnet_b0 .. b8, tu-efficientnet_l2, \
                         tu-efficientnet_lite0 .. lite4, tu-efficientnetv2_rw_t / rw_s / rw_m, \
                         tu-efficientnetv2_s / m / l / xl, tu-efficientnet_es / em / el, \
                         the tf_ forms of these but the rw ones, \
                         tu-tf_efficientnetv2_b0 .. b3), its MixNets (tu-mixnet_s / m / l / \
                         xl / xxl, tu-tf_mixnet_s / m / l), TinyNets (tu-tinynet_a .. e), \
                         MnasNets (tu-mnasnet_050 / 075 / 100 / 140, tu-semnasnet_050 .. \
                         140, tu-mnasnet_small), tu-spnasnet_100, tu-fbnetc_100, its MobileNets \
                         (tu-mobilenetv2_035 / 050 / 075 / 100 / 140 / 110d / 120d, \
                         tu-mobilenetv3_large_075 / 100 / 150d, tu-mobilenetv3_rw, \
                         tu-lcnet_035 / 050 / 075 / 100 / 150, \
                         tu-mobilenetv1_100 / 100h / 125, tu-fbnetv3_b / d / g, \
                         tu-mobilenetv3_small_050 / 075 / \
                         100, tu-tf_mobilenetv3_large_075 / 100 / minimal_100, \
                         tu-tf_mobilenetv3_small_075 / 100 / minimal_100, \
                         tu-mobilenetv4_conv_small / small_035 / small_050 / medium / \
                         large), its RegNets \
                         (tu-regnetx_002 .. tu-regnetx_320, tu-regnety_002 .. \
                         tu-regnety_640), its ConvNeXts (tu-convnext_atto .. xlarge, \
                         tu-convnextv2_atto .. huge), its \
                         GENets (tu-gernet_s / m / l), its HRNets (tu-hrnet_w18_small, \
                         tu-hrnet_w18_small_v2, tu-hrnet_w18 / w30 / w32 / w40 / w44 / w48 / \
                         w64, tu-hrnet_w18_ssld / w48_ssld), its Aligned Xceptions \
                         (tu-xception41 / 65 / 71), its RepVGGs (tu-repvgg_a0 / a1 / \
                         a2 / b0 / b1 / b1g4 / b2 / b2g4 / b3 / b3g4) and, for DPT, its \
                         plain ViTs"
                    ),
                });
        }
        // smp 0.6 runs its deprecated `timm-mobilenetv3_*` names as timm's TensorFlow-padded
        // models through its `tu-` encoders, `timm-regnet*` as timm's RegNets, and the other
        // deprecated `timm-` names it maps to `tu-` encoders as timm's models this library
        // does not have.
        if let Some(rest) = encoder_name.strip_prefix("timm-mobilenetv3") {
            return TimmMobileNetConfig::from_timm(&format!("tf_mobilenetv3{rest}"))
                .map(SmpEncoder::TimmUniversalMobileNet)
                .ok_or_else(|| Error::InvalidParam {
                    name: "encoder_name",
                    reason: format!(
                        "{encoder_name:?} is not one of smp's timm-mobilenetv3_large_075 / \
                         100, timm-mobilenetv3_large_minimal_100, timm-mobilenetv3_small_075 \
                         / 100, timm-mobilenetv3_small_minimal_100"
                    ),
                });
        }
        if let Some(rest) = encoder_name.strip_prefix("timm-regnet") {
            return RegNetConfig::timm(&format!("regnet{rest}"))
                .map(SmpEncoder::TimmUniversalRegNet)
                .ok_or_else(|| Error::InvalidParam {
                    name: "encoder_name",
                    reason: format!(
                        "{encoder_name:?} is not one of smp's timm-regnetx_002 .. \
                         timm-regnetx_320, timm-regnety_002 .. timm-regnety_320"
                    ),
                });
        }
        if encoder_name.starts_with("timm-res2") || encoder_name.starts_with("timm-resnest") {
            return timm_resnet(&encoder_name["timm-".len()..])
                .map(SmpEncoder::TimmUniversalResNet)
                .ok_or_else(|| Error::InvalidParam {
                    name: "encoder_name",
                    reason: format!(
                        "{encoder_name:?} is not one of smp's timm-res2net50_26w_4s / \
                         26w_6s / 26w_8s / 48w_2s / 14w_8s, timm-res2net101_26w_4s, \
                         timm-res2next50, timm-resnest14d / 26d / 50d / 101e / 200e / 269e, \
                         timm-resnest50d_4s2x40d / 1s4x24d"
                    ),
                });
        }
        if let Some(rest) = encoder_name.strip_prefix("timm-gernet") {
            return GerNetConfig::timm(&format!("gernet{rest}"))
                .map(SmpEncoder::TimmUniversalGerNet)
                .ok_or_else(|| Error::InvalidParam {
                    name: "encoder_name",
                    reason: format!("{encoder_name:?} is not one of smp's timm-gernet_s / m / l"),
                });
        }
        if encoder_name.starts_with("mit_b") {
            return MixTransformerConfig::from_name(encoder_name).map(SmpEncoder::MixTransformer);
        }
        let resnext101 = |width| ResNetConfig::resnet101().groups(32, width);
        let efficientnet = encoder_name
            .strip_prefix("efficientnet-b")
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&v| v <= 7 && encoder_name.len() == "efficientnet-b0".len());
        if let Some(variant) = efficientnet {
            return Ok(SmpEncoder::EfficientNet(EfficientNetPyTorchConfig::b(
                variant,
            )?));
        }
        if encoder_name.starts_with("densenet") {
            return DenseNetConfig::torchvision(encoder_name)
                .map(SmpEncoder::DenseNet)
                .map_err(|_| Error::InvalidParam {
                    name: "encoder_name",
                    reason: format!("{encoder_name:?} is not one of smp's DenseNet encoders"),
                });
        }
        if encoder_name.starts_with("timm-efficientnet-")
            || encoder_name.starts_with("timm-tf_efficientnet_lite")
        {
            return TimmEfficientNetConfig::from_smp(encoder_name)
                .map(SmpEncoder::TimmEfficientNet);
        }
        if encoder_name.starts_with("dpn") {
            return DpnConfig::from_smp(encoder_name).map(SmpEncoder::Dpn);
        }
        if encoder_name.starts_with("timm-sk") {
            return SkResNetConfig::from_smp(encoder_name).map(SmpEncoder::SkResNet);
        }
        if encoder_name.starts_with("mobileone") {
            return MobileOneConfig::from_smp(encoder_name).map(SmpEncoder::MobileOne);
        }
        if encoder_name.starts_with("se_resne") || encoder_name == "senet154" {
            return SeNetConfig::from_name(encoder_name)
                .map(SmpEncoder::SeNet)
                .map_err(|_| Error::InvalidParam {
                    name: "encoder_name",
                    reason: format!("{encoder_name:?} is not one of smp's SENet encoders"),
                });
        }
        if encoder_name.starts_with("vgg") {
            return VggConfig::torchvision(encoder_name)
                .map(SmpEncoder::Vgg)
                .map_err(|_| Error::InvalidParam {
                    name: "encoder_name",
                    reason: format!("{encoder_name:?} is not one of smp's VGG encoders"),
                });
        }
        Ok(SmpEncoder::ResNet(match encoder_name {
            "resnet18" => ResNetConfig::resnet18(),
            "resnet34" => ResNetConfig::resnet34(),
            "resnet50" => ResNetConfig::resnet50(),
            "resnet101" => ResNetConfig::resnet101(),
            "resnet152" => ResNetConfig::resnet152(),
            "resnext50_32x4d" => ResNetConfig::resnext50_32x4d(),
            "resnext101_32x4d" => resnext101(4),
            "resnext101_32x8d" => resnext101(8),
            "resnext101_32x16d" => resnext101(16),
            "resnext101_32x32d" => resnext101(32),
            "resnext101_32x48d" => resnext101(48),
            "mobilenet_v2" => return Ok(SmpEncoder::MobileNetV2),
            "xception" => return Ok(SmpEncoder::Xception),
            "inceptionv4" | "inceptionresnetv2" => {
                return InceptionConfig::from_smp(encoder_name).map(SmpEncoder::Inception)
            }
            other => {
                return Err(Error::InvalidParam {
                    name: "encoder_name",
                    reason: format!(
                        "{other:?} is not one of the smp encoders this library has \
                         (ResNet, MobileNetV2, EfficientNet, timm's EfficientNet, VGG, \
                         DenseNet, SENet, SK-ResNet, DPN, MobileOne, Inception-v4, Inception-ResNet-v2, Xception, Mix Transformer)"
                    ),
                })
            }
        }))
    }

    /// Whether the encoder starts at 1/4 of the input, its stride-2 feature empty (0
    /// channels): the Mix Transformers and timm's ConvNeXts.
    pub(crate) fn starts_at_quarter(&self) -> bool {
        matches!(
            self,
            SmpEncoder::MixTransformer(_) | SmpEncoder::TimmUniversalConvNext(_)
        )
    }

    /// A typed error naming `encoder_name` for a Mix Transformer encoder, which smp's
    /// `model` refuses by name (its empty stride-2 feature; timm's ConvNeXts, whose
    /// stride-2 feature is empty too, it runs).
    pub(crate) fn refuse_mix_transformer(&self, model: &str) -> Result<()> {
        fail_if(
            matches!(self, SmpEncoder::MixTransformer(_)),
            "encoder_name",
            || format!("smp's {model} does not support the Mix Transformer (mit_b*) encoders"),
        )
    }

    /// Checks an input `[N, C, H, W]` against what the encoder runs, beyond the model's own
    /// rule: an HRNet's branches must halve exactly for its fusion's sums (`ceil(H / 4)`
    /// and `ceil(W / 4)` multiples of 8, as PyTorch's sums need; timm runs every stage at
    /// every encoder depth, so depth 1 too, though the library then runs the stem alone);
    /// the error names `input`.
    pub(crate) fn check_input(&self, input: [usize; 4]) -> Result<()> {
        let SmpEncoder::TimmUniversalHrNet(_) = self else {
            return Ok(());
        };
        let halves = |v: usize| v.div_ceil(4).is_multiple_of(8);
        fail_if(!(halves(input[2]) && halves(input[3])), "input", || {
            format!(
                "an HRNet's four branches must halve exactly (a quarter of the height \
                     and width, rounded up, a multiple of 8: e.g. multiples of 32), got \
                     {input:?}"
            )
        })
    }

    /// Checks the encoder's configuration.
    pub(crate) fn validate(&self) -> Result<()> {
        match self {
            SmpEncoder::ResNet(r) | SmpEncoder::TimmUniversalResNet(r) => r.validate(),
            SmpEncoder::MobileNetV2 => Ok(()),
            SmpEncoder::EfficientNet(e) => e.validate(),
            SmpEncoder::Vgg(v) => v.validate(),
            SmpEncoder::DenseNet(d) => d.validate(),
            SmpEncoder::SeNet(s) => s.validate(),
            SmpEncoder::SkResNet(s) => s.validate(),
            SmpEncoder::Dpn(d) => d.validate(),
            SmpEncoder::TimmEfficientNet(t) => t.validate_smp(),
            SmpEncoder::TimmUniversalEfficientNet(t) => t.validate(),
            SmpEncoder::TimmUniversalMobileNet(m) => m.validate(),
            SmpEncoder::TimmUniversalRegNet(r) => r.validate(),
            SmpEncoder::TimmUniversalConvNext(c) => c.validate(),
            SmpEncoder::TimmUniversalGerNet(c) => c.validate(),
            SmpEncoder::TimmUniversalHrNet(c) => c.validate(),
            SmpEncoder::TimmUniversalXception(_) => Ok(()),
            SmpEncoder::TimmUniversalRepVgg(c) => c.validate(),
            SmpEncoder::MobileOne(m) => m.validate(),
            SmpEncoder::Xception | SmpEncoder::Inception(_) => Ok(()),
            SmpEncoder::MixTransformer(m) => m.validate(),
        }
    }

    /// Channels of the encoder's features for an input of `in_channels` channels, the
    /// input's first (smp's `encoder.out_channels`; 0 for the Mix Transformers' empty
    /// stride-2 feature).
    pub fn channels(&self, in_channels: usize) -> Vec<usize> {
        match self {
            SmpEncoder::ResNet(r) | SmpEncoder::TimmUniversalResNet(r) => {
                let mut c = vec![in_channels, r.stem.channels()];
                c.extend(r.stage_channels());
                c
            }
            SmpEncoder::MobileNetV2 => vec![in_channels, 16, 24, 32, 96, 1280],
            SmpEncoder::EfficientNet(e) => e.feature_channels(in_channels),
            SmpEncoder::Vgg(_) => vec![64, 128, 256, 512, 512, 512],
            SmpEncoder::DenseNet(d) => d.feature_channels(in_channels),
            SmpEncoder::TimmEfficientNet(t) => t.feature_channels(in_channels, false),
            SmpEncoder::TimmUniversalEfficientNet(t) => t.feature_channels(in_channels, true),
            SmpEncoder::TimmUniversalMobileNet(m) => m.feature_channels(in_channels),
            SmpEncoder::TimmUniversalRegNet(r) => r.feature_channels(in_channels),
            SmpEncoder::TimmUniversalConvNext(c) => c.feature_channels(in_channels),
            SmpEncoder::TimmUniversalGerNet(c) => c.feature_channels(in_channels),
            SmpEncoder::TimmUniversalHrNet(c) => c.feature_channels(in_channels),
            SmpEncoder::TimmUniversalXception(c) => c.feature_channels(in_channels),
            SmpEncoder::TimmUniversalRepVgg(c) => c.feature_channels(in_channels),
            SmpEncoder::MobileOne(m) => m.feature_channels(in_channels),
            SmpEncoder::Xception => super::xception::feature_channels(in_channels),
            SmpEncoder::Inception(i) => {
                let mut c = vec![in_channels];
                c.extend(i.feature_channels());
                c
            }
            SmpEncoder::MixTransformer(m) => m.feature_channels(in_channels),
            SmpEncoder::SeNet(s) => {
                let mut c = vec![in_channels];
                c.extend(s.feature_channels());
                c
            }
            SmpEncoder::SkResNet(s) => {
                let mut c = vec![in_channels];
                c.extend(s.feature_channels());
                c
            }
            SmpEncoder::Dpn(d) => {
                let mut c = vec![in_channels];
                c.extend(d.feature_channels());
                c
            }
        }
    }

    /// A new graph holding the encoder (loaded from `{prefix}.encoder`) on its input: the
    /// graph and the features [`SmpEncoder::append`] gives.
    pub(crate) fn graph(
        &self,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        shape: (usize, usize, usize),
    ) -> Result<(Graph, Vec<ValueId>)> {
        let mut g = Graph::new();
        let x = g.input();
        let features = self.append(&mut g, x, (gpu, sd, &key(prefix, "encoder")), shape)?;
        Ok((g, features))
    }

    /// The encoder appended to `g` after `x`: the input and the first `depth` features,
    /// the stages past `output_stride` dilated as smp's `make_dilated` does (32: none).
    pub(crate) fn append(
        &self,
        g: &mut Graph,
        x: ValueId,
        ctx: (&Gpu, &StateDict, &str),
        (in_channels, depth, output_stride): (usize, usize, usize),
    ) -> Result<Vec<ValueId>> {
        let (gpu, sd, prefix) = ctx;
        let (features_prefix, model_prefix) = (key(prefix, "features"), key(prefix, "model"));
        let under_features = (gpu, sd, features_prefix.as_str());
        // smp's `TimmUniversalEncoder` holds timm's model as `model`.
        let under_model = (gpu, sd, model_prefix.as_str());
        // VGG's and DenseNet's features start at the input's size or the stem's, and smp
        // cannot dilate them.
        let undilated = || {
            fail_if(output_stride != 32, "encoder_output_stride", || {
                format!(
                    "VGG, DenseNet, Inception and Xception encoders cannot be dilated (smp \
                     refuses it), \
                     got {output_stride}"
                )
            })
        };
        let mut features = vec![x];
        match self {
            SmpEncoder::ResNet(r) => features.extend(r.append_stages(
                g,
                x,
                ctx,
                (in_channels, depth - 1, output_stride),
                DilationRule::Smp,
            )?),
            SmpEncoder::TimmUniversalResNet(r) => features.extend(r.append_stages(
                g,
                x,
                under_model,
                (in_channels, depth - 1, output_stride),
                DilationRule::Timm,
            )?),
            SmpEncoder::SeNet(se) => features.extend(se.append_stages(
                g,
                x,
                ctx,
                (in_channels, depth - 1, output_stride),
            )?),
            SmpEncoder::Dpn(d) => features.extend(d.append_stages(
                g,
                x,
                ctx,
                (in_channels, depth - 1, output_stride),
            )?),
            SmpEncoder::SkResNet(sk) => features.extend(sk.append_stages(
                g,
                x,
                ctx,
                (in_channels, depth - 1, output_stride),
            )?),
            SmpEncoder::TimmEfficientNet(t) => {
                features = t.append(g, x, ctx, (in_channels, depth, output_stride), false)?;
            }
            SmpEncoder::TimmUniversalEfficientNet(t) => {
                features =
                    t.append(g, x, under_model, (in_channels, depth, output_stride), true)?;
            }
            SmpEncoder::TimmUniversalMobileNet(m) => {
                features = m.append(g, x, under_model, (in_channels, depth, output_stride))?;
            }
            SmpEncoder::TimmUniversalRegNet(r) => {
                features = r.append_timm(g, x, under_model, (in_channels, depth, output_stride))?;
            }
            SmpEncoder::TimmUniversalConvNext(c) => {
                features = c.append_timm(g, x, under_model, (in_channels, depth, output_stride))?;
            }
            SmpEncoder::TimmUniversalGerNet(c) => {
                features = c.append_timm(g, x, under_model, (in_channels, depth, output_stride))?;
            }
            SmpEncoder::TimmUniversalHrNet(c) => {
                features = c.append_timm(g, x, under_model, (in_channels, depth, output_stride))?;
            }
            SmpEncoder::TimmUniversalXception(c) => {
                features = c.append_timm(g, x, under_model, (in_channels, depth, output_stride))?;
            }
            SmpEncoder::TimmUniversalRepVgg(c) => {
                features = c.append_timm(g, x, under_model, (in_channels, depth, output_stride))?;
            }
            SmpEncoder::MobileOne(m) => {
                features = m.append(g, x, ctx, (in_channels, depth, output_stride))?;
            }
            SmpEncoder::MixTransformer(m) => {
                features = m.append(g, x, ctx, (in_channels, depth, output_stride))?;
            }
            SmpEncoder::Inception(i) => {
                undilated()?;
                features = i.append(g, x, ctx, (in_channels, depth))?;
            }
            SmpEncoder::Xception => {
                undilated()?;
                features = super::xception::append(g, x, ctx, (in_channels, depth))?;
            }
            SmpEncoder::MobileNetV2 => {
                // smp's `_out_indexes`: the features after these modules.
                let indexes = [1, 3, 6, 13, 18];
                let outs = MobileNetV2Config::torchvision().append(
                    g,
                    x,
                    under_features,
                    (in_channels, indexes[depth - 1], output_stride),
                )?;
                features.extend(indexes[..depth].iter().map(|&i| outs[i]));
            }
            SmpEncoder::Vgg(v) => {
                undilated()?;
                features = v.append(g, x, under_features, (in_channels, depth))?;
            }
            SmpEncoder::DenseNet(d) => {
                undilated()?;
                features = d.append(g, x, under_features, (in_channels, depth))?;
            }
            SmpEncoder::EfficientNet(e) => {
                // The stem, then the blocks up to the last feature's; smp's `get_stages`
                // dilates the blocks after the stride-8 feature (stride 16) and after the
                // stride-16 one (stride 32).
                let taps = e.out_indexes();
                let dilation = |block: usize| {
                    let stage_stride = match block {
                        b if b > taps[2] => 32,
                        b if b > taps[1] => 16,
                        _ => 8,
                    };
                    smp_dilation(stage_stride, output_stride)
                };
                let blocks = depth.checked_sub(2).map_or(0, |d| taps[d] + 1);
                let outs = e.append(g, x, ctx, (in_channels, blocks, &dilation))?;
                features.push(outs[0]);
                features.extend(taps[..depth - 1].iter().map(|&i| outs[i + 1]));
            }
        }
        Ok(features)
    }
}

/// The activation smp's `SegmentationHead` applies to the logits (its `activation`
/// argument).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HeadActivation {
    /// `None` or `"identity"`: the logits.
    #[default]
    Identity,
    /// `"sigmoid"`.
    Sigmoid,
    /// `"tanh"`.
    Tanh,
    /// `"softmax2d"` (and `"softmax"`, which is over the channels of a 4-D tensor too).
    Softmax,
    /// `"logsoftmax"` (over the channels).
    LogSoftmax,
}

impl HeadActivation {
    /// smp's name of the activation (`None` for no activation): `"identity"`, `"sigmoid"`,
    /// `"tanh"`, `"softmax2d"`, `"softmax"` or `"logsoftmax"`; other names (`"argmax"`,
    /// a callable) are an error naming `activation`.
    pub fn from_smp(name: Option<&str>) -> Result<Self> {
        Ok(match name {
            None | Some("identity") => HeadActivation::Identity,
            Some("sigmoid") => HeadActivation::Sigmoid,
            Some("tanh") => HeadActivation::Tanh,
            Some("softmax2d" | "softmax") => HeadActivation::Softmax,
            Some("logsoftmax") => HeadActivation::LogSoftmax,
            Some(other) => {
                return Err(Error::InvalidParam {
                    name: "activation",
                    reason: format!(
                        "{other:?} is not one of None, \"identity\", \"sigmoid\", \"tanh\", \
                         \"softmax2d\", \"softmax\", \"logsoftmax\""
                    ),
                })
            }
        })
    }
}

impl HeadActivation {
    /// The activation as a node after `y` (`y` itself for the identity).
    pub(crate) fn append(self, g: &mut Graph, y: ValueId) -> ValueId {
        let op = match self {
            HeadActivation::Identity => return y,
            HeadActivation::Sigmoid => Op::Activation(Activation::Sigmoid),
            HeadActivation::Tanh => Op::Activation(Activation::Tanh),
            HeadActivation::Softmax => Op::Softmax { log: false },
            HeadActivation::LogSoftmax => Op::Softmax { log: true },
        };
        g.add("activation", op, &[y])
    }
}

/// smp's classification head on the encoder's last feature (`aux_params=dict(classes,
/// pooling, dropout, activation)`, `classification_head.3` the linear layer): a global
/// average or max pool, the linear layer to `classes`, the activation (the dropout is the
/// identity in inference). The model's second output, `[N, classes, 1, 1]` (smp's
/// `labels` are `[N, classes]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmpAuxParams {
    /// Classes of the label output (`classes`).
    pub classes: usize,
    /// `pooling`: `"avg"` (the default) or `"max"`.
    pub pooling: GlobalPool,
    /// `activation`: none, `"sigmoid"`, `"softmax"`, `"logsoftmax"`, `"tanh"`
    /// ([`HeadActivation`]; its softmax is over the classes).
    pub activation: HeadActivation,
}

impl SmpAuxParams {
    /// `aux_params=dict(classes=classes)`: average pooling, no activation.
    pub fn new(classes: usize) -> Self {
        SmpAuxParams {
            classes,
            pooling: GlobalPool::Avg,
            activation: HeadActivation::Identity,
        }
    }

    /// smp's `pooling` name, `"avg"` or `"max"`; another is an error naming `pooling`.
    pub fn pooling(mut self, pooling: &str) -> Result<Self> {
        self.pooling = match pooling {
            "avg" => GlobalPool::Avg,
            "max" => GlobalPool::Max,
            other => {
                return Err(Error::InvalidParam {
                    name: "pooling",
                    reason: format!("must be \"avg\" or \"max\", got {other:?}"),
                })
            }
        };
        Ok(self)
    }

    /// Sets the activation.
    pub fn activation(mut self, activation: HeadActivation) -> Self {
        self.activation = activation;
        self
    }

    /// The head on `feature` (`channels` channels) appended to `g`, its weights
    /// `{prefix}.classification_head.3.weight` (`[classes, channels]`) and `.bias`.
    pub(crate) fn append(
        &self,
        g: &mut Graph,
        feature: ValueId,
        channels: usize,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
    ) -> Result<ValueId> {
        positive(&[("aux_params.classes", self.classes)])?;
        let pooled = g.add(
            "classification_head.0",
            Op::GlobalPool(self.pooling),
            &[feature],
        );
        // The linear layer as a 1x1 convolution of the pooled map.
        let conv = Conv2dParams::new(channels, self.classes, 1);
        let linear = key(prefix, "classification_head.3");
        let conv = ConvBnAct::load_linear(gpu, sd, conv, &linear)?;
        let y = g.add("classification_head.3", conv, &[pooled]);
        Ok(self.activation.append(g, y))
    }
}

/// The outputs of an smp model: the mask `y`, and with `aux` the labels of its
/// classification head on the encoder's last feature.
pub(crate) fn set_smp_outputs(
    g: &mut Graph,
    y: ValueId,
    aux: Option<SmpAuxParams>,
    (feature, channels): (ValueId, usize),
    ctx: (&Gpu, &StateDict, &str),
) -> Result<()> {
    match aux {
        Some(aux) => {
            let labels = aux.append(g, feature, channels, ctx)?;
            g.set_outputs(&[y, labels]);
        }
        None => g.set_outputs(&[y]),
    }
    Ok(())
}

/// smp's rules the models here share: `encoder_depth` within `depths`, a decoder
/// interpolation that is a mode of `F.interpolate`, and the encoder's own checks.
pub(crate) fn check_smp_rules(
    encoder: &SmpEncoder,
    (depth, depths): (usize, std::ops::RangeInclusive<usize>),
    interpolation: UpsampleMode,
) -> Result<()> {
    check_encoder_depth(encoder, depth, depths)?;
    check_interpolation(interpolation)
}

/// A decoder interpolation that is a mode of `F.interpolate` (not bed-of-nails).
pub(crate) fn check_interpolation(interpolation: UpsampleMode) -> Result<()> {
    fail_if(
        matches!(interpolation, UpsampleMode::BedOfNails { .. }),
        "decoder_interpolation",
        || "must be a mode of F.interpolate".to_string(),
    )
}

/// One decoder width per encoder stage (smp's `decoder_channels` against its
/// `encoder_depth`).
pub(crate) fn check_decoder_widths(encoder_depth: usize, decoder_channels: &[usize]) -> Result<()> {
    fail_if(
        decoder_channels.len() != encoder_depth,
        "decoder_channels",
        || {
            format!(
                "one width per encoder stage: encoder_depth {encoder_depth} but {} widths \
             {decoder_channels:?}",
                decoder_channels.len(),
            )
        },
    )
}

/// timm's plain ResNet of this name (a pretrained tag after `.` ignored), if it is one.
fn timm_resnet(name: &str) -> Option<ResNetConfig> {
    let bottleneck = |layers: [usize; 4]| ResNetConfig {
        layers,
        ..ResNetConfig::resnet50()
    };
    let deep_avg = |r: ResNetConfig| r.stem(ResNetStem::Deep(32)).avg_down(true);
    let tiered = |r: ResNetConfig| r.stem(ResNetStem::DeepTiered(32)).avg_down(true);
    let se_by = |reduction, r: ResNetConfig| {
        r.attn_layer(Some(ResNetAttention::SqueezeExcitation { reduction }))
    };
    let se = |r| se_by(16, r);
    // ResNet-RS: the deep stem, `avg_down`, SE at a quarter, the stem pool a convolution.
    let rs = |layers| se_by(4, deep_avg(bottleneck(layers))).replace_stem_pool(true);
    let eca = |r: ResNetConfig| r.attn_layer(Some(ResNetAttention::Eca));
    let aa = |r: ResNetConfig| r.anti_alias(Some(AntiAlias::AvgPool));
    let blur = |r: ResNetConfig| r.anti_alias(Some(AntiAlias::BlurPool));
    let res2net = |r: ResNetConfig, base_width, scale| ResNetConfig {
        width_per_group: base_width,
        bottleneck_kind: BottleneckKind::Res2Net { scale },
        ..r
    };
    let split_attention = |radix, avd_first, r: ResNetConfig| ResNetConfig {
        bottleneck_kind: BottleneckKind::SplitAttention { radix, avd_first },
        ..r.avg_down(true)
    };
    let resnest = |layers, stem| split_attention(2, false, bottleneck(layers).stem(stem));
    let resnest50d = |radix, groups, width| {
        let r = ResNetConfig::resnet50().groups(groups, width);
        split_attention(radix, true, r.stem(ResNetStem::Deep(32)))
    };
    Some(match name.split('.').next()? {
        "resnet18" => ResNetConfig::resnet18(),
        "resnet26" => bottleneck([2, 2, 2, 2]),
        "resnet34" => ResNetConfig::resnet34(),
        "resnet50" => ResNetConfig::resnet50(),
        "resnet101" => ResNetConfig::resnet101(),
        "resnet152" => ResNetConfig::resnet152(),
        "resnet200" => bottleneck([3, 24, 36, 3]),
        "resnext50_32x4d" => ResNetConfig::resnext50_32x4d(),
        "resnext101_32x4d" => ResNetConfig::resnet101().groups(32, 4),
        "resnext101_32x8d" => ResNetConfig::resnet101().groups(32, 8),
        "resnext101_32x16d" => ResNetConfig::resnet101().groups(32, 16),
        "resnext101_32x32d" => ResNetConfig::resnet101().groups(32, 32),
        "resnext101_64x4d" => ResNetConfig::resnet101().groups(64, 4),
        "wide_resnet50_2" => ResNetConfig::resnet50().groups(1, 128),
        "wide_resnet101_2" => ResNetConfig::resnet101().groups(1, 128),
        // timm's stem variants (`c`: deep, `d`: deep with `avg_down`, `s`: deep of width
        // 64, `t`: deep tiered with `avg_down`).
        "resnet10t" => tiered(ResNetConfig {
            layers: [1; 4],
            ..ResNetConfig::resnet18()
        }),
        "resnet14t" => tiered(bottleneck([1; 4])),
        "resnet18d" => deep_avg(ResNetConfig::resnet18()),
        "resnet26d" => deep_avg(bottleneck([2, 2, 2, 2])),
        "resnet26t" => tiered(bottleneck([2, 2, 2, 2])),
        "resnet34d" => deep_avg(ResNetConfig::resnet34()),
        "resnet50c" => ResNetConfig::resnet50().stem(ResNetStem::Deep(32)),
        "resnet50d" => deep_avg(ResNetConfig::resnet50()),
        "resnet50s" => ResNetConfig::resnet50().stem(ResNetStem::Deep(64)),
        "resnet50t" => tiered(ResNetConfig::resnet50()),
        "resnet101c" => ResNetConfig::resnet101().stem(ResNetStem::Deep(32)),
        "resnet101d" => deep_avg(ResNetConfig::resnet101()),
        "resnet101s" => ResNetConfig::resnet101().stem(ResNetStem::Deep(64)),
        "resnet152c" => ResNetConfig::resnet152().stem(ResNetStem::Deep(32)),
        "resnet152d" => deep_avg(ResNetConfig::resnet152()),
        "resnet152s" => ResNetConfig::resnet152().stem(ResNetStem::Deep(64)),
        "resnet200d" => deep_avg(bottleneck([3, 24, 36, 3])),
        "resnext50d_32x4d" => deep_avg(ResNetConfig::resnext50_32x4d()),
        // timm's squeeze-and-excitation ResNets (`attn_layer='se'`).
        "seresnet18" => se(ResNetConfig::resnet18()),
        "seresnet34" => se(ResNetConfig::resnet34()),
        "seresnet50" => se(ResNetConfig::resnet50()),
        "seresnet50t" => se(tiered(ResNetConfig::resnet50())),
        "seresnet101" => se(ResNetConfig::resnet101()),
        "seresnet152" => se(ResNetConfig::resnet152()),
        "seresnet152d" => se(deep_avg(ResNetConfig::resnet152())),
        "seresnet200d" => se(deep_avg(bottleneck([3, 24, 36, 3]))),
        "seresnet269d" => se(deep_avg(bottleneck([3, 30, 48, 8]))),
        "seresnext26d_32x4d" => se(deep_avg(bottleneck([2, 2, 2, 2]).groups(32, 4))),
        "seresnext26t_32x4d" => se(tiered(bottleneck([2, 2, 2, 2]).groups(32, 4))),
        "seresnext50_32x4d" => se(ResNetConfig::resnext50_32x4d()),
        "seresnext101_32x4d" => se(ResNetConfig::resnet101().groups(32, 4)),
        "seresnext101_32x8d" => se(ResNetConfig::resnet101().groups(32, 8)),
        "seresnext101d_32x8d" => se(deep_avg(ResNetConfig::resnet101().groups(32, 8))),
        "seresnext101_64x4d" => se(ResNetConfig::resnet101().groups(64, 4)),
        // timm's ResNet-RS.
        "resnetrs50" => rs([3, 4, 6, 3]),
        "resnetrs101" => rs([3, 4, 23, 3]),
        "resnetrs152" => rs([3, 8, 36, 3]),
        "resnetrs200" => rs([3, 24, 36, 3]),
        "resnetrs270" => rs([4, 29, 53, 4]),
        "resnetrs350" => rs([4, 36, 72, 4]),
        "resnetrs420" => rs([4, 44, 87, 4]),
        // timm's efficient-channel-attention ResNets (`attn_layer='eca'`; its pruned
        // `ecaresnet50d_pruned` / `101d_pruned` have other widths).
        "ecaresnet26t" => eca(tiered(bottleneck([2, 2, 2, 2]))),
        "ecaresnet50d" => eca(deep_avg(ResNetConfig::resnet50())),
        "ecaresnet50t" => eca(tiered(ResNetConfig::resnet50())),
        "ecaresnetlight" => eca(bottleneck([1, 1, 11, 3]).avg_down(true)),
        "ecaresnet101d" => eca(deep_avg(ResNetConfig::resnet101())),
        "ecaresnet200d" => eca(deep_avg(bottleneck([3, 24, 36, 3]))),
        "ecaresnet269d" => eca(deep_avg(bottleneck([3, 30, 48, 8]))),
        // timm's Res2Nets (`Bottle2neck`: `base_width`, `cardinality`, `scale`).
        "res2net50_26w_4s" => res2net(ResNetConfig::resnet50(), 26, 4),
        "res2net101_26w_4s" => res2net(ResNetConfig::resnet101(), 26, 4),
        "res2net50_26w_6s" => res2net(ResNetConfig::resnet50(), 26, 6),
        "res2net50_26w_8s" => res2net(ResNetConfig::resnet50(), 26, 8),
        "res2net50_48w_2s" => res2net(ResNetConfig::resnet50(), 48, 2),
        "res2net50_14w_8s" => res2net(ResNetConfig::resnet50(), 14, 8),
        "res2next50" => res2net(ResNetConfig::resnet50().groups(8, 4), 4, 4),
        "res2net50d" => res2net(deep_avg(ResNetConfig::resnet50()), 26, 4),
        "res2net101d" => res2net(deep_avg(ResNetConfig::resnet101()), 26, 4),
        // timm's ResNeSts (`ResNestBottleneck` with `avd`; radix 2 and one group but in
        // `4s2x40d` and `1s4x24d`, which average before the split attention).
        "resnest14d" => resnest([1; 4], ResNetStem::Deep(32)),
        "resnest26d" => resnest([2; 4], ResNetStem::Deep(32)),
        "resnest50d" => resnest([3, 4, 6, 3], ResNetStem::Deep(32)),
        "resnest101e" => resnest([3, 4, 23, 3], ResNetStem::Deep(64)),
        "resnest200e" => resnest([3, 24, 36, 3], ResNetStem::Deep(64)),
        "resnest269e" => resnest([3, 30, 48, 8], ResNetStem::Deep(64)),
        "resnest50d_4s2x40d" => resnest50d(4, 2, 40),
        "resnest50d_1s4x24d" => resnest50d(1, 4, 24),
        // timm's blur-pooled ResNets (`aa_layer=BlurPool2d`).
        "resnetblur18" => blur(ResNetConfig::resnet18()),
        "resnetblur50" => blur(ResNetConfig::resnet50()),
        "resnetblur50d" => blur(deep_avg(ResNetConfig::resnet50())),
        "resnetblur101d" => blur(deep_avg(ResNetConfig::resnet101())),
        // timm's anti-aliased ResNets (`aa_layer=nn.AvgPool2d`).
        "resnetaa34d" => aa(deep_avg(ResNetConfig::resnet34())),
        "resnetaa50" => aa(ResNetConfig::resnet50()),
        "resnetaa50d" => aa(deep_avg(ResNetConfig::resnet50())),
        "resnetaa101d" => aa(deep_avg(ResNetConfig::resnet101())),
        "seresnetaa50d" => se(aa(deep_avg(ResNetConfig::resnet50()))),
        "seresnextaa101d_32x8d" => se(aa(deep_avg(ResNetConfig::resnet101().groups(32, 8)))),
        "seresnextaa201d_32x8d" => se(aa(bottleneck([3, 24, 36, 4])
            .groups(32, 8)
            .stem(ResNetStem::Deep(64))
            .avg_down(true))),
        _ => return None,
    })
}

/// An smp model's `encoder_depth` within the range it accepts, and the encoder's own
/// checks.
pub(crate) fn check_encoder_depth(
    encoder: &SmpEncoder,
    depth: usize,
    depths: std::ops::RangeInclusive<usize>,
) -> Result<()> {
    // smp's EfficientNet encoders refuse a depth of 1, and timm refuses a ConvNeXt with
    // no stage (smp asks it for `depth - 1`).
    let least = match encoder {
        SmpEncoder::EfficientNet(_) | SmpEncoder::TimmUniversalConvNext(_) => {
            (*depths.start()).max(2)
        }
        _ => *depths.start(),
    };
    let depths = least..=*depths.end();
    fail_if(!depths.contains(&depth), "encoder_depth", || {
        format!(
            "must be {} to {}, got {depth}",
            depths.start(),
            depths.end()
        )
    })?;
    encoder.validate()
}

/// The configuration of an smp `Unet` on any [`SmpEncoder`].
#[derive(Clone, Debug, PartialEq)]
pub struct SmpUnetConfig {
    /// The encoder (`encoder_name`; [`SmpUnetConfig::new`] takes smp's names).
    pub encoder: SmpEncoder,
    /// Stages of the encoder used, 1 to 5 (`encoder_depth`, 5; UnetPlusPlus and the Mix
    /// Transformer encoders: 2 to 5). Inputs of any size run (smp's Unet resizes each
    /// decoder stage to its skip's size, and does not check).
    pub encoder_depth: usize,
    /// Input channels (`in_channels`, 3): the encoder's first convolution takes them.
    pub in_channels: usize,
    /// Classes (`classes`).
    pub classes: usize,
    /// Output channels of each decoder block (`decoder_channels`, `(256, 128, 64, 32, 16)`),
    /// one per encoder stage used.
    pub decoder_channels: Vec<usize>,
    /// Batch norm between each decoder convolution and its ReLU (`decoder_use_norm`:
    /// `"batchnorm"` / `True`, the default), or none (`False`: the convolutions have a bias).
    pub decoder_use_norm: bool,
    /// How each decoder block resizes its input (`decoder_interpolation`: `"nearest"`, the
    /// default; `"bilinear"` and `"bicubic"` are `align_corners=False`).
    pub decoder_interpolation: UpsampleMode,
    /// `decoder_attention_type="scse"` (`false`: `None`, the default): smp's `SCSEModule`
    /// after each block's concatenation and second convolution. Widths under 16 leave its
    /// squeeze without a channel, which PyTorch refuses, and so does this.
    pub decoder_scse: bool,
    /// The head's activation (`activation`, none by default).
    pub activation: HeadActivation,
    /// smp's `UnetPlusPlus` instead of its `Unet` (same parameters): nested dense skips,
    /// blocks `decoder.blocks.x_{d}_{l}` that resize by 2 (`F.interpolate(scale_factor=2)`),
    /// inputs divisible by `2^encoder_depth` (see [`SmpUnetConfig::unet_plus_plus`]).
    pub nested: bool,
    /// smp's classification head (`aux_params`; `None`, the default, for none): a second
    /// output, the labels.
    pub aux_params: Option<SmpAuxParams>,
}

impl SmpUnetConfig {
    /// `smp.UnetPlusPlus(encoder_name, in_channels=in_channels, classes=classes)`: UNet++
    /// (Zhou et al.): decoder node `x_{d}_{l}` (depth `d`, level `l`) resizes `x_{d}_{l-1}`
    /// (the encoder feature for `l = d`) by 2 and concatenates every `x_{i}_{l}` with
    /// `i > d` and the encoder feature of its size; `x_0_{depth-1}` gives the output.
    pub fn unet_plus_plus(encoder_name: &str, in_channels: usize, classes: usize) -> Result<Self> {
        Ok(SmpUnetConfig {
            nested: true,
            ..Self::new(encoder_name, in_channels, classes)?
        })
    }

    /// `smp.Unet(encoder_name, in_channels=in_channels, classes=classes)`; the encoder
    /// names are [`SmpEncoder::from_name`]'s.
    pub fn new(encoder_name: &str, in_channels: usize, classes: usize) -> Result<Self> {
        let encoder = SmpEncoder::from_name(encoder_name)?;
        Ok(SmpUnetConfig {
            encoder,
            encoder_depth: 5,
            in_channels,
            classes,
            decoder_channels: vec![256, 128, 64, 32, 16],
            decoder_use_norm: true,
            decoder_interpolation: UpsampleMode::Nearest,
            decoder_scse: false,
            activation: HeadActivation::Identity,
            nested: false,
            aux_params: None,
        })
    }

    /// Sets the encoder depth and the decoder channels (one per stage), as smp requires
    /// them together.
    pub fn depth(mut self, encoder_depth: usize, decoder_channels: &[usize]) -> Self {
        self.encoder_depth = encoder_depth;
        self.decoder_channels = decoder_channels.to_vec();
        self
    }

    /// Sets `decoder_use_norm` (batch norm or none).
    pub fn decoder_use_norm(mut self, batch_norm: bool) -> Self {
        self.decoder_use_norm = batch_norm;
        self
    }

    /// Sets `decoder_interpolation`.
    pub fn decoder_interpolation(mut self, mode: UpsampleMode) -> Self {
        self.decoder_interpolation = mode;
        self
    }

    /// Sets `decoder_attention_type` to `"scse"` (`true`) or `None`.
    pub fn decoder_scse(mut self, scse: bool) -> Self {
        self.decoder_scse = scse;
        self
    }

    /// Sets the head's activation.
    pub fn activation(mut self, activation: HeadActivation) -> Self {
        self.activation = activation;
        self
    }

    /// Sets `aux_params` (a classification head: a second output).
    pub fn aux_params(mut self, aux_params: Option<SmpAuxParams>) -> Self {
        self.aux_params = aux_params;
        self
    }

    /// Channels of the encoder's features, the input's first: smp's `out_channels` up to
    /// the depth.
    fn encoder_channels(&self) -> Vec<usize> {
        let mut c = self.encoder.channels(self.in_channels);
        c.truncate(self.encoder_depth + 1);
        c
    }
}

impl SmpUnetConfig {
    /// One smp `DecoderBlock` under `block` on `resized` (its input after the resize, `cin`
    /// channels): the `skips` (`skip_channels` in all; `None` for the last block, which
    /// has none) concatenated after it and `attention1`, the 3x3 Conv2dReLUs `conv1` /
    /// `conv2` to `cout`, `attention2`. An empty list is smp's 0-channel skip (the Mix
    /// Transformer's stride-2 feature): nothing joins, `attention1` still runs.
    fn decoder_block(
        &self,
        g: &mut Graph,
        resized: ValueId,
        skips: Option<&[ValueId]>,
        (cin, skip_channels, cout): (usize, usize, usize),
        (gpu, sd, block): (&Gpu, &StateDict, &str),
    ) -> Result<ValueId> {
        let joined = match skips {
            None => resized,
            Some(skips) => {
                let j = if skips.is_empty() {
                    resized
                } else {
                    let inputs: Vec<_> = std::iter::once(resized)
                        .chain(skips.iter().copied())
                        .collect();
                    g.add(key(block, "cat"), Op::Concat, &inputs)
                };
                let c = cin + skip_channels;
                self.attention(g, j, c, (gpu, sd, &key(block, "attention1")))?
            }
        };
        let conv = |cin: usize, name: &str| -> Result<ConvBnAct> {
            let p = Conv2dParams::new(cin, cout, 3).padding(1);
            conv2d_relu(gpu, sd, p, &key(block, name), self.decoder_use_norm)
        };
        let a = g.add(
            key(block, "conv1"),
            conv(cin + skip_channels, "conv1")?,
            &[joined],
        );
        let y = g.add(key(block, "conv2"), conv(cout, "conv2")?, &[a]);
        self.attention(g, y, cout, (gpu, sd, &key(block, "attention2")))
    }

    /// smp's `UnetDecoder` on the encoder's `features` (`channels` each): from the head of
    /// the encoder down, each block resizes its input to the next feature's size (the
    /// input's for the last block, which has no skip). Returns the output and its channels.
    fn decoder(
        &self,
        g: &mut Graph,
        features: &[ValueId],
        channels: &[usize],
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
    ) -> Result<(ValueId, usize)> {
        let mut y = *features.last().expect("the encoder's last feature");
        let mut cin = *channels.last().expect("the encoder's channels");
        if let SmpEncoder::Vgg(_) = self.encoder {
            // smp's `UnetCenterBlock` on a VGG's last feature: two 3x3 Conv2dReLUs.
            for i in 0..2 {
                let name = key(prefix, &format!("decoder.center.{i}"));
                let p = Conv2dParams::new(cin, cin, 3).padding(1);
                let conv = conv2d_relu(gpu, sd, p, &name, self.decoder_use_norm)?;
                y = g.add(name, conv, &[y]);
            }
        }
        for (i, &cout) in self.decoder_channels.iter().enumerate() {
            let level = self.encoder_depth - 1 - i;
            let target = features[level];
            let block = key(prefix, &format!("decoder.blocks.{i}"));
            let target = if level > 0 && channels[level] == 0 {
                // The Mix Transformer's empty stride-2 feature is only a size, the input's
                // halved (rounded down): a 2x2 pool of the input has it; nothing joins.
                let half = Op::AvgPool(AvgPool2dParams::new(2));
                g.add(key(&block, "skip_size"), half, &[features[0]])
            } else {
                target
            };
            let mode = self.decoder_interpolation;
            let resized = g.resize_like(key(&block, "resize"), mode, y, target);
            let (skips, skip_channels) = match level {
                0 => (None, 0),
                _ if channels[level] == 0 => (Some(vec![]), 0),
                _ => (Some(vec![target]), channels[level]),
            };
            let shape = (cin, skip_channels, cout);
            y = self.decoder_block(g, resized, skips.as_deref(), shape, (gpu, sd, &block))?;
            cin = cout;
        }
        Ok((y, cin))
    }

    /// smp's `UnetPlusPlusDecoder`: with `f(k)` the encoder's features from the deepest
    /// (`k = 0`) up, node `x_{d}_{l}` resizes `x_{d}_{l-1}` (`f(d)` when `l = d`) by 2 and
    /// joins `x_{i}_{l}` for `d < i <= l` and `f(l + 1)`; `x_0_{depth-1}` resizes
    /// `x_0_{depth-2}` alone. Returns the output and its channels.
    fn nested_decoder(
        &self,
        g: &mut Graph,
        features: &[ValueId],
        channels: &[usize],
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
    ) -> Result<(ValueId, usize)> {
        let depth = self.encoder_depth;
        let dec = &self.decoder_channels;
        let f = |k: usize| features[depth - k];
        let skip_ch = |l: usize| {
            if l + 1 < depth {
                channels[depth - l - 1]
            } else {
                0
            }
        };
        let up = UpsampleParams {
            mode: self.decoder_interpolation,
            scale_factor: Some((2.0, 2.0)),
            ..UpsampleParams::nearest()
        };
        let last = depth - 1;
        // smp's order: level by level along the diagonals, then the output node.
        let order = (0..last)
            .flat_map(|layer| (0..last - layer).map(move |d| (d, d + layer, true)))
            .chain(std::iter::once((0, last, false)));
        let mut dense = std::collections::HashMap::new();
        let mut y = f(0);
        for (d, l, joins) in order {
            let input = if l == d { f(d) } else { dense[&(d, l - 1)] };
            let (cin, cout) = match d {
                0 if l == 0 => (channels[depth], dec[0]),
                0 => (dec[l - 1], dec[l]),
                _ => (skip_ch(l - 1), skip_ch(l)),
            };
            // smp's empty blocks (the nested ones over an encoder's empty stride-2
            // feature) give 0 channels: nothing to compute, nothing to join.
            if d > 0 && cout == 0 {
                continue;
            }
            let mut skips: Vec<ValueId> = Vec::new();
            if joins && skip_ch(l) > 0 {
                skips.extend((d + 1..=l).map(|i| dense[&(i, l)]));
                skips.push(f(l + 1));
            }
            let skip_channels = skips.len() * skip_ch(l);
            let block = key(prefix, &format!("decoder.blocks.x_{d}_{l}"));
            let resized = g.add(key(&block, "resize"), Op::Upsample(up), &[input]);
            let shape = (cin, skip_channels, cout);
            let skips = joins.then_some(skips.as_slice());
            y = self.decoder_block(g, resized, skips, shape, (gpu, sd, &block))?;
            dense.insert((d, l), y);
        }
        Ok((y, dec[last]))
    }

    /// smp's `Attention` under `prefix` on `x` (`channels` channels): `x` itself, or with
    /// `decoder_scse` its `SCSEModule` (`attention.cSE.1` / `.3`, `attention.sSE.0`).
    fn attention(
        &self,
        g: &mut Graph,
        x: ValueId,
        channels: usize,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
    ) -> Result<ValueId> {
        if !self.decoder_scse {
            return Ok(x);
        }
        let at = |n: &str| key(prefix, &format!("attention.{n}"));
        let se = SqueezeExcitationParams::new(channels, channels / 16);
        let se = SeNode::load(gpu, sd, se, &at("cSE.1"), &at("cSE.3"))?;
        let channel_gated = g.add(at("cSE"), se, &[x]);
        let spatial = Conv2dParams::new(channels, 1, 1);
        let spatial = ConvBnAct::load(gpu, sd, spatial, &at("sSE.0"), None, 0.0)?;
        let logits = g.add(at("sSE"), spatial, &[x]);
        let spatial_gated = g.add(
            at("sSE.gate"),
            Op::ScaleSpatial(Activation::Sigmoid),
            &[x, logits],
        );
        Ok(g.add(at("sum"), Op::Add, &[channel_gated, spatial_gated]))
    }
}

/// An smp `Unet` on any [`SmpEncoder`] for inference: input `[N, in_channels, H, W]` with
/// any H and W, output `[N, classes, H, W]` (the logits, or
/// the head's activation of them).
pub type SmpUnet = Model<SmpUnetConfig>;

/// An smp `UnetPlusPlus` for inference (a [`SmpUnetConfig`] built by
/// [`SmpUnetConfig::unet_plus_plus`]): input `[N, in_channels, H, W]` with H and W
/// divisible by `2^encoder_depth`, output `[N, classes, H, W]`.
pub type SmpUnetPlusPlus = Model<SmpUnetConfig>;

impl Architecture for SmpUnetConfig {
    /// Checks the configuration on its own, with smp's rules: depth 1 (UnetPlusPlus: 2) to 5, one decoder
    /// width per stage.
    fn validate(&self) -> Result<()> {
        positive(&[
            ("in_channels", self.in_channels),
            ("classes", self.classes),
            (
                "decoder_channels",
                self.decoder_channels.iter().copied().min().unwrap_or(1),
            ),
        ])?;
        // smp's Unet takes any depth its encoder gives (a Mix Transformer's first
        // feature is empty: 2 at least); UnetPlusPlus needs two levels.
        let least = match (self.nested, &self.encoder) {
            (true, _) => 2,
            (_, e) if e.starts_at_quarter() => 2,
            _ => 1,
        };
        check_smp_rules(
            &self.encoder,
            (self.encoder_depth, least..=5),
            self.decoder_interpolation,
        )?;
        if self.nested {
            self.encoder.refuse_mix_transformer("UnetPlusPlus")?;
        }
        check_decoder_widths(self.encoder_depth, &self.decoder_channels)
    }

    /// Loads `encoder.conv1`, `encoder.bn1`, `encoder.layer{1..depth-1}` (ResNet) or
    /// `encoder.features.{0..}` (MobileNetV2),
    /// `decoder.blocks.{i}.conv{1,2}` and `segmentation_head.0` under `prefix`.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let at = |n: &str| key(prefix, n);
        let shape = (self.in_channels, self.encoder_depth, 32);
        let (mut g, features) = self.encoder.graph((gpu, sd, prefix), shape)?;
        let channels = self.encoder_channels();
        let (y, cin) = if self.nested {
            self.nested_decoder(&mut g, &features, &channels, (gpu, sd, prefix))?
        } else {
            self.decoder(&mut g, &features, &channels, (gpu, sd, prefix))?
        };
        // The elementwise activations fused into the head's store (no resize between).
        let (fused, after) = match self.activation {
            HeadActivation::Sigmoid => (Activation::Sigmoid, HeadActivation::Identity),
            HeadActivation::Tanh => (Activation::Tanh, HeadActivation::Identity),
            other => (Activation::None, other),
        };
        let head = Conv2dParams::new(cin, self.classes, 3)
            .padding(1)
            .activation(fused);
        let head = ConvBnAct::load(gpu, sd, head, &at("segmentation_head.0"), None, 0.0)?;
        let out = g.add("segmentation_head", head, &[y]);
        let out = after.append(&mut g, out);
        let depth = self.encoder_depth;
        let deepest = (features[depth], channels[depth]);
        set_smp_outputs(&mut g, out, self.aux_params, deepest, (gpu, sd, prefix))?;
        Ok(g)
    }

    /// Checks an input shape: `in_channels` channels, of any size (smp 0.6's Unet sets
    /// `requires_divisible_input_shape = False`: each decoder block resizes to its skip)
    /// that the encoder runs ([`SmpEncoder::TimmUniversalHrNet`]'s rule).
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        self.encoder.check_input(input)?;
        if self.nested {
            // UnetPlusPlus resizes by 2, so smp checks the input's divisibility.
            return check_divisible(input, self.in_channels, 1 << self.encoder_depth);
        }
        crate::ops::check_channels(input, self.in_channels)
    }
}

/// smp's `Conv2dReLU` under `prefix`: the convolution `{prefix}.0` (with a bias exactly
/// when there is no norm), with `batch_norm` the batch norm `{prefix}.1`, then ReLU.
pub(crate) fn conv2d_relu(
    gpu: &Gpu,
    sd: &StateDict,
    params: Conv2dParams,
    prefix: &str,
    batch_norm: bool,
) -> Result<ConvBnAct> {
    let p = params.bias(!batch_norm).activation(Activation::Relu);
    let conv = key(prefix, "0");
    if batch_norm {
        conv_bn(gpu, sd, p, &conv, &key(prefix, "1"), 1e-5)
    } else {
        ConvBnAct::load(gpu, sd, p, &conv, None, 0.0)
    }
}

/// The dilation smp's `make_dilated(output_stride)` gives a stage whose own stride is
/// `stage_stride`: the stride over `output_stride` past it, 1 up to it.
pub(crate) fn smp_dilation(stage_stride: usize, output_stride: usize) -> usize {
    (stage_stride / output_stride).max(1)
}

/// smp's `SegmentationHead(in_channels, classes, kernel_size, upsampling)` on `x` under
/// `prefix` (`segmentation_head.0`, padded by half its kernel), a bilinear resize
/// (`align_corners=True`) by `upsampling` when above 1, then the activation: after the
/// resize, as smp's head (`sigmoid(resize(conv))` is not `resize(sigmoid(conv))`).
pub(crate) fn segmentation_head(
    g: &mut Graph,
    x: ValueId,
    (in_channels, classes, kernel): (usize, usize, usize),
    (upsampling, activation): (usize, HeadActivation),
    (gpu, sd, prefix): (&Gpu, &StateDict, &str),
) -> Result<ValueId> {
    let conv = Conv2dParams::new(in_channels, classes, kernel).padding(kernel / 2);
    let at = key(prefix, "segmentation_head.0");
    let conv = ConvBnAct::load(gpu, sd, conv, &at, None, 0.0)?;
    let mut y = g.add("segmentation_head", conv, &[x]);
    if upsampling > 1 {
        let up = UpsampleParams::bilinear(true).scale_factor(upsampling as f64);
        y = g.add("segmentation_head.1", Op::Upsample(up), &[y]);
    }
    Ok(activation.append(g, y))
}

/// smp's input rule: `in_channels` channels, height and width divisible by `stride`, the
/// encoder's output stride (`2^depth` unless dilated; its `check_input_shape`); the error
/// names `input`.
pub(crate) fn check_divisible(input: [usize; 4], in_channels: usize, stride: usize) -> Result<()> {
    crate::ops::check_channels(input, in_channels)?;
    fail_if(
        !input[2].is_multiple_of(stride) || !input[3].is_multiple_of(stride),
        "input",
        || {
            format!(
                "height and width must be divisible by the encoder's output stride {stride} \
                 (as smp requires), got {input:?}"
            )
        },
    )
}
