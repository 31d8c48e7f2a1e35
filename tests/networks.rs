//! Whole networks at the configurations of `tests/golden/networks/` (written by
//! `tests/golden/make_golden_networks.py`, or at random by `scripts/fuzz_golden.py --only
//! networks` into `SEGBLOCKS_GOLDEN_DIR/networks`), every one through the same harness:
//! built by its PyTorch names from `StateDict::synthetic()`, run on the kernels this
//! adapter gets and on a GPU's, compared with PyTorch's outputs (auxiliary ones included) within 1e-4 relative,
//! its parameter count with PyTorch's.

mod common;

use common::golden::golden_dir;
use ndarray::Array4;
use segblocks::blocks::{Architecture, BottleneckKind, Model};
use segblocks::networks::{
    BiSeNet, BiSeNetAuxMode, BiSeNetConfig, BiSeNetV2, BiSeNetV2Config, ConvNextConfig,
    ConvNextFeatures, DdrNet, DdrNetConfig, DenseNetConfig, DenseNetFeatures, DpnConfig,
    DpnFeatures, DptReadout, EfficientNetConfig, EfficientNetFeatures, EfficientNetPyTorchConfig,
    EfficientNetPyTorchFeatures, Enet, EnetConfig, ErfNet, ErfNetConfig, FastScnn, FastScnnConfig,
    Fcn8s, Fcn8sConfig, FpnMerge, HeadActivation, HfSegformer, HfSegformerConfig, HrNetConfig,
    HrNetOcr, HrNetOcrConfig, HrNetSeg, HrNetSegConfig, InceptionConfig, InceptionFeatures,
    LrAsppConfig, LrAsppMobileNetV3, MnasNetConfig, MnasNetFeatures, MobileNetV2Config,
    MobileNetV2Features, MobileNetV3Features, MobileNetV3FeaturesConfig, MobileOneConfig, ModNet,
    ModNetConfig, PidNet, PidNetConfig, RegNetConfig, RegNetFeatures, ResNetAttention,
    ResNetConfig, ResNetFeatures, SeNetConfig, SeNetFeatures, SegNet, SegNetConfig,
    SegmentationConfig, SegmentationModel, ShuffleNetV2Config, ShuffleNetV2Features,
    SkResNetConfig, SkResNetFeatures, SmpAuxParams, SmpDeepLabV3, SmpDeepLabV3Config,
    SmpDeepLabV3Plus, SmpDeepLabV3PlusConfig, SmpDpt, SmpDptConfig, SmpEncoder, SmpFpn,
    SmpFpnConfig, SmpLinknet, SmpLinknetConfig, SmpMAnet, SmpMAnetConfig, SmpPan, SmpPanConfig,
    SmpPspNet, SmpPspNetConfig, SmpSegformer, SmpSegformerConfig, SmpUnet, SmpUnetConfig,
    SmpUperNet, SmpUperNetConfig, StdcSeg, StdcSegConfig, TimmEfficientNetArch,
    TimmEfficientNetConfig, TimmMobileNetArch, TimmMobileNetConfig, U2Net, U2NetConfig, UNet,
    UNetConfig, VggConfig, VggFeatures,
};
use segblocks::ops::upsample::UpsampleMode;
use segblocks::{Gpu, StateDict};
use serde_json::Value;

fn us(v: &Value) -> usize {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}")) as usize
}

fn list(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(us).collect()
}

/// One forward of `x` through `model` on `gpu`: every output, and the summary's parameters.
fn run<A: Architecture>(
    gpu: &Gpu,
    model: segblocks::Result<Model<A>>,
    x: &Array4<f32>,
) -> (Vec<Array4<f32>>, u64) {
    let model = model.unwrap();
    let s = x.shape();
    let params = model
        .summary([s[0], s[1], s[2], s[3]])
        .unwrap()
        .total_params();
    let mut rec = gpu.recorder();
    let outs = model
        .forward_all(&mut rec, &gpu.upload(x.view()).unwrap())
        .unwrap();
    let outs: Vec<_> = outs.iter().collect();
    (rec.download_many(&outs).unwrap(), params)
}

/// The network a case describes, run on `gpu` with the weights `sd`.
fn forward(gpu: &Gpu, case: &Value, x: &Array4<f32>, sd: &StateDict) -> (Vec<Array4<f32>>, u64) {
    let a = &case["args"];
    let flag = |n: &str| a[n].as_bool().unwrap();
    match case["kind"].as_str().unwrap() {
        "unet" => {
            let cfg = UNetConfig::new(us(&a["cin"]), us(&a["classes"]))
                .base_channels(us(&a["base"]))
                .depth(us(&a["depth"]))
                .bilinear(flag("bilinear"));
            run(gpu, UNet::load(gpu, cfg, sd, ""), x)
        }
        "segnet" => {
            let cfg = SegNetConfig {
                in_channels: us(&a["cin"]),
                num_classes: us(&a["classes"]),
                widths: list(&a["widths"]),
                convs: list(&a["convs"]),
            };
            run(gpu, SegNet::load(gpu, cfg, sd, ""), x)
        }
        "fcn8s" => {
            let w = list(&a["widths"]);
            let cfg = Fcn8sConfig {
                num_classes: us(&a["classes"]),
                widths: [w[0], w[1], w[2], w[3], w[4]],
                fc_channels: us(&a["fc"]),
            };
            run(gpu, Fcn8s::load(gpu, cfg, sd, ""), x)
        }
        "mbv2" => {
            let cfg =
                MobileNetV2Config::torchvision().width_mult(a["width_mult"].as_f64().unwrap());
            run(gpu, MobileNetV2Features::load(gpu, cfg, sd, ""), x)
        }
        "mbv3" => {
            let arch = match a["arch"].as_str().unwrap() {
                "large" => MobileNetV3FeaturesConfig::large(),
                _ => MobileNetV3FeaturesConfig::small(),
            };
            let cfg = arch
                .width_mult(a["width_mult"].as_f64().unwrap())
                .reduced_tail(flag("reduced_tail"))
                .dilated(flag("dilated"));
            run(gpu, MobileNetV3Features::load(gpu, cfg, sd, ""), x)
        }
        "seg" => {
            let k = us(&a["classes"]);
            let cfg = match a["name"].as_str().unwrap() {
                "lraspp_mobilenet_v3_large" => {
                    return run(
                        gpu,
                        LrAsppMobileNetV3::load(gpu, LrAsppConfig::torchvision(k), sd, ""),
                        x,
                    )
                }
                "fcn_resnet50" => SegmentationConfig::fcn_resnet50(k),
                "fcn_resnet101" => SegmentationConfig::fcn_resnet101(k),
                "deeplabv3_resnet50" => SegmentationConfig::deeplabv3_resnet50(k),
                "deeplabv3_resnet101" => SegmentationConfig::deeplabv3_resnet101(k),
                "deeplabv3_mobilenet_v3_large" => {
                    SegmentationConfig::deeplabv3_mobilenet_v3_large(k)
                }
                other => panic!("unknown model {other}"),
            };
            run(
                gpu,
                SegmentationModel::load(gpu, cfg.aux_loss(flag("aux")), sd, ""),
                x,
            )
        }
        "resnet" => {
            let mut cfg = match a["name"].as_str().unwrap() {
                "resnet18" => ResNetConfig::resnet18(),
                "resnet34" => ResNetConfig::resnet34(),
                "resnet50" => ResNetConfig::resnet50(),
                "resnet101" => ResNetConfig::resnet101(),
                "resnet152" => ResNetConfig::resnet152(),
                "resnext50_32x4d" => ResNetConfig::resnext50_32x4d(),
                "resnext101_32x8d" => ResNetConfig::resnext101_32x8d(),
                "resnext101_64x4d" => ResNetConfig::resnext101_64x4d(),
                "wide_resnet50_2" => ResNetConfig::wide_resnet50_2(),
                "wide_resnet101_2" => ResNetConfig::wide_resnet101_2(),
                other => panic!("unknown model {other}"),
            };
            let d = a["dilation"].as_array().unwrap();
            cfg.replace_stride_with_dilation = std::array::from_fn(|i| d[i].as_bool().unwrap());
            // PyTorch's module returns layer4 alone, the first of the features' outputs.
            let (mut outs, params) = run(gpu, ResNetFeatures::load(gpu, cfg, sd, ""), x);
            outs.truncate(1);
            (outs, params)
        }
        "mnasnet" => {
            let cfg = MnasNetConfig::torchvision(a["name"].as_str().unwrap()).unwrap();
            run(gpu, MnasNetFeatures::load(gpu, cfg, sd, ""), x)
        }
        "regnet" => {
            let cfg = RegNetConfig::torchvision(a["name"].as_str().unwrap()).unwrap();
            // torchvision's trunk returns the last stage's output, the first.
            let (mut outs, params) = run(gpu, RegNetFeatures::load(gpu, cfg, sd, ""), x);
            outs.truncate(1);
            (outs, params)
        }
        "shufflenet" => {
            let cfg = ShuffleNetV2Config::torchvision(a["name"].as_str().unwrap()).unwrap();
            // torchvision's module (up to conv5) returns conv5's output, the first.
            let (mut outs, params) = run(gpu, ShuffleNetV2Features::load(gpu, cfg, sd, ""), x);
            outs.truncate(1);
            (outs, params)
        }
        "senet" => {
            let cfg = SeNetConfig::from_name(a["name"].as_str().unwrap()).unwrap();
            // pretrainedmodels' `features` returns layer4 alone, the first output.
            let (mut outs, params) = run(gpu, SeNetFeatures::load(gpu, cfg, sd, ""), x);
            outs.truncate(1);
            (outs, params)
        }
        "inceptionresnetv2" => {
            let cfg = InceptionConfig::from_smp("inceptionresnetv2").unwrap();
            // The deepest feature is the case's output.
            let model = InceptionFeatures::load(gpu, cfg, sd, "");
            let (mut outs, params) = run(gpu, model, x);
            outs.truncate(1);
            (outs, params)
        }
        "inceptionv4" => {
            let cfg = InceptionConfig::from_smp("inceptionv4").unwrap();
            // The deepest feature is the case's output.
            let (mut outs, params) = run(gpu, InceptionFeatures::load(gpu, cfg, sd, ""), x);
            outs.truncate(1);
            (outs, params)
        }
        "dpn" => {
            let cfg = DpnConfig::from_smp(a["name"].as_str().unwrap()).unwrap();
            // The deepest feature is the case's output.
            let (mut outs, params) = run(gpu, DpnFeatures::load(gpu, cfg, sd, ""), x);
            outs.truncate(1);
            (outs, params)
        }
        "sknet" => {
            let cfg = SkResNetConfig::from_smp(a["name"].as_str().unwrap()).unwrap();
            // The deepest feature is the case's output.
            let (mut outs, params) = run(gpu, SkResNetFeatures::load(gpu, cfg, sd, ""), x);
            outs.truncate(1);
            (outs, params)
        }
        "densenet" => {
            let cfg = DenseNetConfig::torchvision(a["name"].as_str().unwrap()).unwrap();
            run(gpu, DenseNetFeatures::load(gpu, cfg, sd, ""), x)
        }
        "convnext" => {
            let cfg = ConvNextConfig::torchvision(a["name"].as_str().unwrap()).unwrap();
            run(gpu, ConvNextFeatures::load(gpu, cfg, sd, ""), x)
        }
        "vgg" => {
            let cfg = VggConfig::torchvision(a["name"].as_str().unwrap()).unwrap();
            run(gpu, VggFeatures::load(gpu, cfg, sd, ""), x)
        }
        "tv_effnet" => {
            let cfg = EfficientNetConfig::torchvision(a["name"].as_str().unwrap()).unwrap();
            run(gpu, EfficientNetFeatures::load(gpu, cfg, sd, ""), x)
        }
        "effnet" => {
            let cfg = EfficientNetPyTorchConfig::b(us(&a["variant"])).unwrap();
            run(gpu, EfficientNetPyTorchFeatures::load(gpu, cfg, sd, ""), x)
        }
        "smp_unet" | "smp_unetplusplus" => {
            let encoder = smp_encoder(a);
            let mode = interpolation(a);
            let (cin, classes) = (us(&a["cin"]), us(&a["classes"]));
            let cfg = match case["kind"].as_str().unwrap() {
                "smp_unet" => SmpUnetConfig::new(encoder, cin, classes),
                _ => SmpUnetConfig::unet_plus_plus(encoder, cin, classes),
            };
            let cfg = cfg
                .unwrap()
                .depth(us(&a["depth"]), &list(&a["decoder_channels"]))
                .decoder_use_norm(flag("use_norm"))
                .decoder_interpolation(mode)
                .decoder_scse(a.get("attention").and_then(Value::as_str) == Some("scse"))
                .activation(head_activation(a));
            run(
                gpu,
                SmpUnet::load(gpu, cfg.aux_params(aux_params(a)), sd, ""),
                x,
            )
        }
        "smp_fpn" => {
            let merge = match a["merge"].as_str().unwrap() {
                "add" => FpnMerge::Add,
                _ => FpnMerge::Cat,
            };
            let cfg = SmpFpnConfig::new(smp_encoder(a), us(&a["cin"]), us(&a["classes"]))
                .unwrap()
                .encoder_depth(us(&a["depth"]))
                .pyramid_channels(us(&a["pyramid"]))
                .segmentation_channels(us(&a["segmentation"]))
                .merge(merge)
                .decoder_interpolation(interpolation(a))
                .upsampling(us(&a["upsampling"]))
                .activation(head_activation(a));
            run(
                gpu,
                SmpFpn::load(gpu, cfg.aux_params(aux_params(a)), sd, ""),
                x,
            )
        }
        "smp_deeplabv3" => {
            let cfg = SmpDeepLabV3Config::new(smp_encoder(a), us(&a["cin"]), us(&a["classes"]))
                .unwrap()
                .encoder_depth(us(&a["depth"]))
                .encoder_output_stride(us(&a["output_stride"]))
                .decoder_channels(us(&a["decoder_channels"]))
                .atrous_rates(rates(a))
                .aspp_separable(flag("separable"))
                .upsampling(a["upsampling"].as_u64().map(|u| u as usize))
                .activation(head_activation(a));
            run(
                gpu,
                SmpDeepLabV3::load(gpu, cfg.aux_params(aux_params(a)), sd, ""),
                x,
            )
        }
        "smp_deeplabv3plus" => {
            let cfg = SmpDeepLabV3PlusConfig::new(smp_encoder(a), us(&a["cin"]), us(&a["classes"]))
                .unwrap()
                .encoder_depth(us(&a["depth"]))
                .encoder_output_stride(us(&a["output_stride"]))
                .decoder_channels(us(&a["decoder_channels"]))
                .atrous_rates(rates(a))
                .aspp_separable(flag("separable"))
                .upsampling(us(&a["upsampling"]))
                .activation(head_activation(a));
            run(
                gpu,
                SmpDeepLabV3Plus::load(gpu, cfg.aux_params(aux_params(a)), sd, ""),
                x,
            )
        }
        "smp_linknet" => {
            let cfg = SmpLinknetConfig::new(smp_encoder(a), us(&a["cin"]), us(&a["classes"]))
                .unwrap()
                .encoder_depth(us(&a["depth"]))
                .decoder_use_norm(flag("use_norm"))
                .activation(head_activation(a));
            run(
                gpu,
                SmpLinknet::load(gpu, cfg.aux_params(aux_params(a)), sd, ""),
                x,
            )
        }
        "smp_pspnet" => {
            let cfg = SmpPspNetConfig::new(smp_encoder(a), us(&a["cin"]), us(&a["classes"]))
                .unwrap()
                .encoder_depth(us(&a["depth"]))
                .psp_out_channels(us(&a["psp_out"]))
                .decoder_use_norm(flag("use_norm"))
                .upsampling(us(&a["upsampling"]))
                .activation(head_activation(a));
            run(
                gpu,
                SmpPspNet::load(gpu, cfg.aux_params(aux_params(a)), sd, ""),
                x,
            )
        }
        "smp_upernet" => {
            let cfg = SmpUperNetConfig::new(smp_encoder(a), us(&a["cin"]), us(&a["classes"]))
                .unwrap()
                .encoder_depth(us(&a["depth"]))
                .decoder_channels(us(&a["decoder_channels"]))
                .decoder_use_norm(flag("use_norm"))
                .upsampling(us(&a["upsampling"]))
                .activation(head_activation(a));
            run(
                gpu,
                SmpUperNet::load(gpu, cfg.aux_params(aux_params(a)), sd, ""),
                x,
            )
        }
        "smp_dpt" => run(gpu, SmpDpt::load(gpu, dpt_config(a), sd, ""), x),
        "smp_segformer" => {
            let cfg = SmpSegformerConfig::new(smp_encoder(a), us(&a["cin"]), us(&a["classes"]))
                .unwrap()
                .encoder_depth(us(&a["depth"]))
                .decoder_segmentation_channels(us(&a["segmentation"]))
                .upsampling(us(&a["upsampling"]))
                .activation(head_activation(a));
            run(
                gpu,
                SmpSegformer::load(gpu, cfg.aux_params(aux_params(a)), sd, ""),
                x,
            )
        }
        "smp_pan" => {
            // smp's GAU aligns the corners of its bilinear resizes.
            let mode = match interpolation(a) {
                UpsampleMode::Bilinear { .. } => UpsampleMode::Bilinear {
                    align_corners: true,
                },
                other => other,
            };
            let cfg = SmpPanConfig::new(smp_encoder(a), us(&a["cin"]), us(&a["classes"]))
                .unwrap()
                .encoder_depth(us(&a["depth"]))
                .encoder_output_stride(us(&a["output_stride"]))
                .decoder_channels(us(&a["decoder_channels"]))
                .decoder_interpolation(mode)
                .upsampling(us(&a["upsampling"]))
                .activation(head_activation(a));
            run(
                gpu,
                SmpPan::load(gpu, cfg.aux_params(aux_params(a)), sd, ""),
                x,
            )
        }
        "smp_manet" => {
            let cfg = SmpMAnetConfig::new(smp_encoder(a), us(&a["cin"]), us(&a["classes"]))
                .unwrap()
                .depth(us(&a["depth"]), &list(&a["decoder_channels"]))
                .decoder_pab_channels(us(&a["pab"]))
                .decoder_use_norm(flag("use_norm"))
                .decoder_interpolation(interpolation(a))
                .activation(head_activation(a));
            run(
                gpu,
                SmpMAnet::load(gpu, cfg.aux_params(aux_params(a)), sd, ""),
                x,
            )
        }
        "u2net" => {
            let (cin, maps) = (us(&a["cin"]), us(&a["classes"]));
            let cfg = match a["name"].as_str().unwrap() {
                "u2net" => U2NetConfig::u2net(cin, maps),
                "u2netp" => U2NetConfig::u2netp(cin, maps),
                "isnet" => U2NetConfig::isnet(cin, maps),
                other => panic!("unknown U²-Net {other}"),
            };
            run(gpu, U2Net::load(gpu, cfg, sd, ""), x)
        }
        "modnet" => {
            let cfg = ModNetConfig::new().inference(flag("inference"));
            run(gpu, ModNet::load(gpu, cfg, sd, ""), x)
        }
        "bisenetv2" => {
            let mode = match a["aux_mode"].as_str().unwrap() {
                "train" => BiSeNetAuxMode::Train,
                "eval" => BiSeNetAuxMode::Eval,
                other => panic!("unknown aux_mode {other}"),
            };
            let cfg = BiSeNetV2Config::new(us(&a["classes"])).aux_mode(mode);
            run(gpu, BiSeNetV2::load(gpu, cfg, sd, ""), x)
        }
        "bisenet" => {
            let cfg = BiSeNetConfig::new(us(&a["classes"]));
            run(gpu, BiSeNet::load(gpu, cfg, sd, ""), x)
        }
        "fast_scnn" => {
            let cfg = FastScnnConfig::new(us(&a["classes"])).aux(flag("aux"));
            run(gpu, FastScnn::load(gpu, cfg, sd, ""), x)
        }
        "enet" => {
            let cfg = EnetConfig::new(us(&a["classes"]))
                .encoder_relu(flag("encoder_relu"))
                .decoder_relu(flag("decoder_relu"));
            run(gpu, Enet::load(gpu, cfg, sd, ""), x)
        }
        "erfnet" => {
            let cfg = ErfNetConfig::new(us(&a["classes"])).only_encode(flag("only_encode"));
            run(gpu, ErfNet::load(gpu, cfg, sd, ""), x)
        }
        "ddrnet" => {
            let l = list(&a["layers"]);
            let cfg = DdrNetConfig {
                layers: [l[0], l[1], l[2], l[3]],
                num_classes: us(&a["classes"]),
                planes: us(&a["planes"]),
                spp_planes: us(&a["spp"]),
                head_planes: us(&a["head"]),
                augment: flag("augment"),
                split_stage3: flag("split"),
            };
            run(gpu, DdrNet::load(gpu, cfg, sd, ""), x)
        }
        "pidnet" => {
            let cfg = PidNetConfig {
                m: us(&a["m"]),
                n: us(&a["n"]),
                num_classes: us(&a["classes"]),
                planes: us(&a["planes"]),
                ppm_planes: us(&a["ppm"]),
                head_planes: us(&a["head"]),
                augment: flag("augment"),
            };
            run(gpu, PidNet::load(gpu, cfg, sd, ""), x)
        }
        "hrnet_seg" => {
            let cfg = HrNetSegConfig::new(hrnet_trunk(a), us(&a["classes"]))
                .final_conv_kernel(us(&a["final_kernel"]))
                .align_corners(flag("align"));
            run(gpu, HrNetSeg::load(gpu, cfg, sd, ""), x)
        }
        "hf_segformer" => {
            let four = |n: &str| -> [usize; 4] { list(&a[n]).try_into().unwrap() };
            let cfg = HfSegformerConfig {
                num_channels: us(&a["cin"]),
                hidden_sizes: four("hidden"),
                depths: four("depths"),
                num_attention_heads: four("heads"),
                sr_ratios: four("sr"),
                patch_sizes: four("patch"),
                strides: four("strides"),
                mlp_ratios: four("mlp"),
                decoder_hidden_size: us(&a["decoder"]),
                num_labels: us(&a["classes"]),
                resize_to_input: false,
            };
            // The config.json transformers wrote for the case reads as the same network.
            if let Some(json) = case.get("hf_config") {
                let read = HfSegformerConfig::from_config_json(&json.to_string()).unwrap();
                assert_eq!(read, cfg, "{}'s hf_config", case["name"]);
            }
            run(gpu, HfSegformer::load(gpu, cfg, sd, ""), x)
        }
        "hrnet_ocr" => {
            let cfg = HrNetOcrConfig::new(hrnet_trunk(a), us(&a["classes"]))
                .ocr_mid_channels(us(&a["mid"]))
                .ocr_key_channels(us(&a["key"]))
                .align_corners(flag("align"))
                .aux_output(true);
            run(gpu, HrNetOcr::load(gpu, cfg, sd, ""), x)
        }
        "stdc" => {
            let name = a["backbone"].as_str().unwrap();
            let boundary = list(&a["boundary"]);
            let cfg = StdcSegConfig::from_name(name, us(&a["classes"]))
                .unwrap()
                .use_conv_last(flag("use_conv_last"))
                .use_boundary_2(boundary.contains(&2))
                .use_boundary_4(boundary.contains(&4))
                .use_boundary_8(boundary.contains(&8));
            run(gpu, StdcSeg::load(gpu, cfg, sd, ""), x)
        }
        other => panic!("unknown kind {other}"),
    }
}

/// An HRNet case's trunk: `stage1` (bottlenecks, their channels), `modules`, `blocks`,
/// `widths`.
fn hrnet_trunk(a: &Value) -> HrNetConfig {
    let (l, w) = (list(&a["stage1"]), list(&a["widths"]));
    let (m, b) = (list(&a["modules"]), list(&a["blocks"]));
    HrNetConfig {
        stem_width: 64,
        stage1_blocks: l[0],
        stage1_planes: l[1],
        modules: [m[0], m[1], m[2]],
        blocks: [b[0], b[1], b[2]],
        widths: [w[0], w[1], w[2], w[3]],
    }
}

/// A case's smp `encoder` name.
fn smp_encoder(a: &Value) -> &str {
    a["encoder"].as_str().unwrap()
}

/// A case's smp head `activation`.
/// A DPT case's configuration: smp's arguments, and timm's (`vit`) on the encoder.
fn dpt_config(a: &Value) -> SmpDptConfig {
    let mut cfg = SmpDptConfig::new(
        a["encoder"].as_str().unwrap(),
        us(&a["cin"]),
        us(&a["classes"]),
    )
    .unwrap()
    .encoder_depth(us(&a["depth"]))
    .encoder_output_indices(
        a["indices"]
            .as_array()
            .map(|v| v.iter().map(|i| i.as_i64().unwrap()).collect()),
    )
    .decoder_readout(DptReadout::from_name(a["readout"].as_str().unwrap()).unwrap())
    .decoder_intermediate_channels(a["mid"].as_array().unwrap().iter().map(us).collect())
    .decoder_fusion_channels(us(&a["fusion"]))
    .activation(head_activation(a))
    .aux_params(aux_params(a));
    let vit = &a["vit"];
    let e = &mut cfg.encoder;
    e.img_size = match &vit["img_size"] {
        Value::Array(hw) => (us(&hw[0]), us(&hw[1])),
        v => (us(v), us(v)),
    };
    e.embed_dim = us(&vit["embed_dim"]);
    e.num_heads = us(&vit["num_heads"]);
    e.mlp_hidden = (e.embed_dim as f64 * vit["mlp_ratio"].as_f64().unwrap_or(4.0)) as usize;
    let flag = |n: &str, default: bool| vit[n].as_bool().unwrap_or(default);
    e.class_token = flag("class_token", true);
    e.pre_norm = flag("pre_norm", false);
    e.qkv_bias = flag("qkv_bias", true);
    e.dynamic_img_size = flag("dynamic_img_size", false);
    e.reg_tokens = vit["reg_tokens"].as_u64().unwrap_or(0) as usize;
    cfg
}

fn head_activation(a: &Value) -> HeadActivation {
    HeadActivation::from_smp(a["activation"].as_str()).unwrap()
}

/// A case's smp classification head (`aux`), if any.
fn aux_params(a: &Value) -> Option<SmpAuxParams> {
    let aux = a.get("aux")?;
    let p = SmpAuxParams::new(us(&aux["classes"]))
        .pooling(aux["pooling"].as_str().unwrap())
        .unwrap();
    Some(p.activation(head_activation(aux)))
}

/// A case's three `rates`.
fn rates(a: &Value) -> [usize; 3] {
    let r = list(&a["rates"]);
    [r[0], r[1], r[2]]
}

/// A case's `interpolation`, a mode of `F.interpolate` (align_corners False).
fn interpolation(a: &Value) -> UpsampleMode {
    match a["interpolation"].as_str().unwrap() {
        "nearest" => UpsampleMode::Nearest,
        "nearest-exact" => UpsampleMode::NearestExact,
        "bilinear" => UpsampleMode::Bilinear {
            align_corners: false,
        },
        "bicubic" => UpsampleMode::Bicubic {
            align_corners: false,
        },
        "area" => UpsampleMode::Area,
        other => panic!("unknown interpolation {other}"),
    }
}

/// The golden cases, all of them or (`SEGBLOCKS_NETWORKS=one-per-kind`, the SwiftShader
/// run of CI) the first of each kind.
fn golden_cases() -> (std::path::PathBuf, Vec<Value>) {
    let dir = golden_dir("tests/golden/networks");
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let mut cases = doc["cases"].as_array().unwrap().clone();
    match std::env::var("SEGBLOCKS_NETWORKS").as_deref() {
        Err(_) | Ok("all") => {}
        Ok("one-per-kind") => {
            let mut seen = std::collections::BTreeSet::new();
            cases.retain(|c| seen.insert(c["kind"].as_str().unwrap().to_string()));
        }
        Ok(other) => panic!("SEGBLOCKS_NETWORKS={other}: expected all or one-per-kind"),
    }
    (dir, cases)
}

#[test]
fn every_network_kind_has_a_committed_case() {
    let (_, cases) = golden_cases();
    let kinds: std::collections::BTreeSet<_> =
        cases.iter().map(|c| c["kind"].as_str().unwrap()).collect();
    if !common::golden::fuzzing() {
        assert_eq!(
            kinds.len(),
            45,
            "every kind has a committed case: {kinds:?}"
        );
    }
}

// The harness in eight parts, every eighth case each, so that the test threads (one per
// core) share it: a case keeps about one core busy, and in one part the 654 forwards took
// lavapipe 11.8 minutes on 2 cores, in four the whole file 5.3 (eight balance the
// threads' ends better: a few cases take ten times the median).
const PARTS: usize = 8;

macro_rules! parts {
    ($($name:ident = $part:expr),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                networks_match_pytorch($part);
            }
        )*
    };
}

parts!(
    networks_match_pytorch_part_1_of_8 = 0,
    networks_match_pytorch_part_2_of_8 = 1,
    networks_match_pytorch_part_3_of_8 = 2,
    networks_match_pytorch_part_4_of_8 = 3,
    networks_match_pytorch_part_5_of_8 = 4,
    networks_match_pytorch_part_6_of_8 = 5,
    networks_match_pytorch_part_7_of_8 = 6,
    networks_match_pytorch_part_8_of_8 = 7,
);

/// Every [`PARTS`]-th golden case from the `part`-th, through one harness.
fn networks_match_pytorch(part: usize) {
    let (dir, cases) = golden_cases();
    let own = common::gpu_class();
    let synthetic = StateDict::synthetic();
    for case in cases.iter().skip(part).step_by(PARTS) {
        let name = case["name"].as_str().unwrap();
        let file = StateDict::load(dir.join(case["file"].as_str().unwrap())).unwrap();
        let get = |n: &str| common::stored4(&file, n);
        let x = get("x").unwrap();
        // U²-Net's side maps after its first output.
        let sides = (1..=6).map(|i| format!("side{i}"));
        let names = ["out".to_string(), "aux".to_string()]
            .into_iter()
            .chain(sides);
        let want: Vec<_> = names.filter_map(|n| get(&n)).collect();
        let flag = |n: &str| case["args"].get(n).and_then(Value::as_bool) == Some(true);
        // A calibrated case's file holds its batch norms' measured statistics; the other
        // tensors are made up.
        let calibrated = flag("calibrated").then(|| {
            let mut sd = StateDict::synthetic();
            let sides = ["side1", "side2", "side3", "side4", "side5", "side6"];
            let outputs = |n: &str| ["x", "out", "aux"].contains(&n) || sides.contains(&n);
            for n in file.names().filter(|n| !outputs(n)) {
                sd.insert(n, file.tensor(n).unwrap().clone());
            }
            sd
        });
        for (gpu, class) in [(common::gpu(), "own class"), (&own, "GPU class")] {
            let started = std::time::Instant::now();
            // A legacy case loads the state dict its file holds, under smp's older names; a
            // reparam case the one MobileOne's reparameterize_model gives.
            let legacy = flag("legacy") || flag("reparam");
            let sd = match &calibrated {
                _ if legacy => &file,
                Some(sd) => sd,
                None => &synthetic,
            };
            let (got, params) = forward(gpu, case, &x, sd);
            eprintln!(
                "{name} ({class}): {:.0} ms",
                started.elapsed().as_secs_f64() * 1e3
            );
            assert_eq!(got.len(), want.len(), "{name}: outputs");
            // Every committed case with made-up statistics is within 2e-6; 1e-4 still sees a
            // dilation lost deep in an encoder (smp's DeepLabV3+ attenuates it to 3e-4 of
            // its output). A calibrated case's features reach the output at full scale, its
            // f32 rounding too: its outputs were computed in float64, and the library may
            // be off them by four times PyTorch's own f32 error (a mistake is off by 1e-2
            // or more there).
            let f32_error = case["f32_error"].as_f64().unwrap_or(0.0) as f32;
            let tolerance = (4.0 * f32_error).max(1e-4);
            for (g, w) in got.iter().zip(&want) {
                let err = common::relative(g, w);
                if f32_error > 0.0 {
                    eprintln!(
                        "{name} ({class}): relative error {err:.1e}, {:.1}x PyTorch's f32 error",
                        err / f32_error
                    );
                }
                assert!(
                    err < tolerance,
                    "{name} ({class}): relative error {err} (tolerance {tolerance})"
                );
            }
            assert_eq!(
                params,
                case["parameters"].as_u64().unwrap(),
                "{name}: parameters"
            );
        }
    }
}

/// The configuration of smp's encoder `name`, which must be one of timm's ResNets.
fn timm_resnet(name: &str) -> ResNetConfig {
    match SmpEncoder::from_name(name) {
        Ok(SmpEncoder::TimmUniversalResNet(r)) => r,
        other => panic!("{name}: {other:?}"),
    }
}

/// Asserts that `e` is an [`segblocks::Error::InvalidParam`] naming `name`.
fn named(e: Option<segblocks::Error>, name: &str) {
    assert!(
        matches!(&e, Some(segblocks::Error::InvalidParam { name: n, .. }) if *n == name),
        "{name}: {e:?}"
    );
}

/// smp's `Unet` and `FPN` refusals as typed errors naming the parameter: an unknown
/// encoder, a depth outside smp's range, decoder widths that do not match the depth (FPN: a
/// segmentation width GroupNorm(32) cannot split), an activation it has no module for,
/// and (FPN) an input not divisible by `2^encoder_depth`.
#[test]
fn smp_bad_configurations_are_typed_errors() {
    use segblocks::Error;
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    named(SmpUnetConfig::new("mit_b6", 3, 1).err(), "encoder_name");
    named(
        HeadActivation::from_smp(Some("argmax2d")).err(),
        "activation",
    );
    let cfg = SmpUnetConfig::new("resnet18", 3, 2).unwrap();
    let load = |cfg: SmpUnetConfig| SmpUnet::load(gpu, cfg, &sd, "").err();
    named(load(cfg.clone().depth(6, &[8; 6])), "encoder_depth");
    named(load(cfg.clone().depth(0, &[])), "encoder_depth");
    // smp's Unet runs a depth of 1 or 2 too, except on a Mix Transformer (its first
    // feature is empty), and UnetPlusPlus from 2.
    assert!(load(cfg.clone().depth(1, &[8])).is_none());
    let mit = SmpUnetConfig::new("mit_b0", 3, 2).unwrap();
    named(load(mit.depth(1, &[8])), "encoder_depth");
    let convnext = SmpUnetConfig::new("tu-convnext_atto", 3, 2).unwrap();
    named(load(convnext.depth(1, &[8])), "encoder_depth");
    named(load(cfg.clone().depth(4, &[8; 5])), "decoder_channels");
    named(load(cfg.clone().depth(3, &[8, 0, 8])), "decoder_channels");
    named(
        load(
            cfg.clone()
                .decoder_interpolation(UpsampleMode::BedOfNails { stride: (2, 2) }),
        ),
        "decoder_interpolation",
    );
    // scse on 8 channels: its squeeze has none (PyTorch's convolution refuses it too).
    let e = load(cfg.clone().depth(3, &[8, 8, 8]).decoder_scse(true));
    named(e, "squeeze_channels");
    let net = SmpUnet::load(gpu, cfg.clone().depth(3, &[8, 8, 8]), &sd, "").unwrap();
    assert_eq!(net.output_shape([2, 3, 24, 16]).unwrap(), [2, 2, 24, 16]);
    // smp 0.6's Unet takes any size (each block resizes to its skip); not other channels.
    assert_eq!(net.output_shape([2, 3, 23, 21]).unwrap(), [2, 2, 23, 21]);
    let mut rec = gpu.recorder();
    let x = gpu.upload(Array4::zeros([1, 2, 12, 16]).view()).unwrap();
    let e = net.forward(&mut rec, &x).err();
    assert!(
        matches!(&e, Some(Error::ShapeMismatch { name: "input", .. })),
        "{e:?}"
    );
    // The classification head: smp's two poolings, at least one class.
    named(SmpAuxParams::new(3).pooling("min").err(), "pooling");
    let aux = Some(SmpAuxParams::new(0));
    named(load(cfg.clone().aux_params(aux)), "aux_params.classes");
    let aux = Some(SmpAuxParams::new(4).pooling("max").unwrap());
    let net = SmpUnet::load(
        gpu,
        cfg.clone().depth(3, &[8, 8, 8]).aux_params(aux),
        &sd,
        "",
    );
    let mut rec = gpu.recorder();
    let x = gpu.upload(Array4::zeros([2, 3, 16, 24]).view()).unwrap();
    let outs = net.unwrap().forward_all(&mut rec, &x).unwrap();
    let shapes: Vec<_> = outs.iter().map(|t| t.shape()).collect();
    assert_eq!(shapes, [[2, 2, 16, 24], [2, 4, 1, 1]]);
    // UnetPlusPlus resizes by 2: smp checks the input's divisibility for it.
    let nested = SmpUnetConfig::unet_plus_plus("resnet18", 3, 2)
        .unwrap()
        .depth(3, &[8, 8, 8]);
    let net = SmpUnet::load(gpu, nested.clone(), &sd, "").unwrap();
    assert_eq!(net.output_shape([1, 3, 24, 16]).unwrap(), [1, 2, 24, 16]);
    named(net.output_shape([1, 3, 23, 16]).err(), "input");
    named(load(nested.clone().depth(1, &[8])), "encoder_depth");
    assert!(load(nested.depth(2, &[8, 8])).is_none());
    // smp refuses the Mix Transformers in UnetPlusPlus (their empty stride-2 feature).
    let nested = SmpUnetConfig::unet_plus_plus("mit_b0", 3, 2).unwrap();
    named(load(nested), "encoder_name");
    // FPN: GroupNorm's 32 groups need a multiple of 32 channels; depth 3 to 5.
    let fpn = SmpFpnConfig::new("mobilenet_v2", 3, 2).unwrap();
    let load = |cfg: SmpFpnConfig| SmpFpn::load(gpu, cfg, &sd, "").err();
    named(
        load(fpn.clone().segmentation_channels(48)),
        "decoder_segmentation_channels",
    );
    named(load(fpn.clone().encoder_depth(6)), "encoder_depth");
    named(load(fpn.clone().upsampling(0)), "upsampling");
    named(
        SmpFpnConfig::new("tu-convnext_huge", 3, 2).err(),
        "encoder_name",
    );
    // smp's FPN takes a Mix Transformer at depth 5 only (and fails on a ConvNeXt at
    // other depths).
    let mit = SmpFpnConfig::new("mit_b0", 3, 2).unwrap();
    named(load(mit.encoder_depth(4)), "encoder_depth");
    let convnext = SmpFpnConfig::new("tu-convnext_atto", 3, 2).unwrap();
    named(load(convnext.encoder_depth(4)), "encoder_depth");
    let net = SmpFpn::load(
        gpu,
        fpn.segmentation_channels(32).pyramid_channels(16),
        &sd,
        "",
    )
    .unwrap();
    assert_eq!(net.output_shape([1, 3, 64, 32]).unwrap(), [1, 2, 64, 32]);
    named(net.output_shape([1, 3, 64, 48]).err(), "input");
}

/// smp's `DeepLabV3` / `DeepLabV3Plus` refusals as typed errors naming the parameter: an
/// output stride other than 8 or 16, a depth outside 1..=5 (3..=5 for the plus), a zero
/// rate or upsampling, an input not divisible by the encoder's output stride; and the
/// shallow depths smp accepts.
#[test]
fn smp_deeplab_bad_configurations_are_typed_errors() {
    use segblocks::Error;
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    named(
        SmpDeepLabV3Config::new("tu-convnext_huge", 3, 1).err(),
        "encoder_name",
    );
    let v3 = SmpDeepLabV3Config::new("resnet18", 3, 2)
        .unwrap()
        .decoder_channels(8);
    let load = |cfg: SmpDeepLabV3Config| SmpDeepLabV3::load(gpu, cfg, &sd, "").err();
    named(
        load(v3.clone().encoder_output_stride(32)),
        "encoder_output_stride",
    );
    named(load(v3.clone().encoder_depth(6)), "encoder_depth");
    named(load(v3.clone().encoder_depth(0)), "encoder_depth");
    named(
        load(v3.clone().atrous_rates([1, 0, 2])),
        "decoder_atrous_rates",
    );
    named(load(v3.clone().upsampling(Some(0))), "upsampling");
    named(load(v3.clone().decoder_channels(0)), "decoder_channels");
    // Depth 2: the ASPP on layer1 at a quarter of the input, resized back by 4 (as smp).
    let net = SmpDeepLabV3::load(gpu, v3.clone().encoder_depth(2), &sd, "").unwrap();
    assert_eq!(net.output_shape([1, 3, 24, 40]).unwrap(), [1, 2, 24, 40]);
    named(net.output_shape([1, 3, 24, 42]).err(), "input");
    // Output stride 8: inputs divisible by 8, the output at the input's size.
    let net = SmpDeepLabV3::load(gpu, v3, &sd, "").unwrap();
    assert_eq!(net.output_shape([2, 3, 24, 40]).unwrap(), [2, 2, 24, 40]);
    named(net.output_shape([2, 3, 24, 36]).err(), "input");
    let e = net.output_shape([2, 4, 24, 40]).err();
    assert!(
        matches!(&e, Some(Error::ShapeMismatch { name: "input", .. })),
        "{e:?}"
    );
    let plus = SmpDeepLabV3PlusConfig::new("mobilenet_v2", 3, 2)
        .unwrap()
        .decoder_channels(8);
    let load = |cfg: SmpDeepLabV3PlusConfig| SmpDeepLabV3Plus::load(gpu, cfg, &sd, "").err();
    named(load(plus.clone().encoder_depth(2)), "encoder_depth");
    named(
        load(plus.clone().encoder_output_stride(4)),
        "encoder_output_stride",
    );
    named(load(plus.clone().upsampling(0)), "upsampling");
    // Depth 3 at output stride 16: the stride is 8 (smp's `min(16, 2^3)`).
    let net = SmpDeepLabV3Plus::load(gpu, plus.encoder_depth(3), &sd, "").unwrap();
    assert_eq!(net.output_shape([1, 3, 24, 40]).unwrap(), [1, 2, 24, 40]);
    named(net.output_shape([1, 3, 20, 40]).err(), "input");
}

/// smp's `Linknet` and `PSPNet` refusals as typed errors naming the parameter: a depth
/// outside 1..=5, a zero width or upsampling, an input not divisible by `2^encoder_depth`.
#[test]
fn smp_linknet_pspnet_bad_configurations_are_typed_errors() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    named(
        SmpLinknetConfig::new("resnet999", 3, 1).err(),
        "encoder_name",
    );
    let link = SmpLinknetConfig::new("resnet18", 3, 2).unwrap();
    let load = |cfg: SmpLinknetConfig| SmpLinknet::load(gpu, cfg, &sd, "").err();
    named(
        load(SmpLinknetConfig::new("mit_b0", 3, 2).unwrap()),
        "encoder_name",
    );
    // A ConvNeXt's empty stride-2 feature: a depth of 2 at least (timm refuses none).
    let convnext = SmpLinknetConfig::new("tu-convnext_atto", 3, 2).unwrap();
    named(load(convnext.encoder_depth(1)), "encoder_depth");
    named(load(link.clone().encoder_depth(0)), "encoder_depth");
    named(load(link.clone().encoder_depth(6)), "encoder_depth");
    named(
        load(SmpLinknetConfig {
            classes: 0,
            ..link.clone()
        }),
        "classes",
    );
    let net = SmpLinknet::load(gpu, link.encoder_depth(3), &sd, "").unwrap();
    assert_eq!(net.output_shape([2, 3, 24, 40]).unwrap(), [2, 2, 24, 40]);
    named(net.output_shape([2, 3, 24, 36]).err(), "input");
    let psp = SmpPspNetConfig::new("mobilenet_v2", 3, 2)
        .unwrap()
        .psp_out_channels(16);
    let load = |cfg: SmpPspNetConfig| SmpPspNet::load(gpu, cfg, &sd, "").err();
    named(load(psp.clone().encoder_depth(6)), "encoder_depth");
    named(load(psp.clone().psp_out_channels(0)), "psp_out_channels");
    named(load(psp.clone().upsampling(0)), "upsampling");
    // Depth 3 and upsampling 8: the input's size back; depth 2, a quarter map times 8.
    let net = SmpPspNet::load(gpu, psp.clone(), &sd, "").unwrap();
    assert_eq!(net.output_shape([1, 3, 24, 40]).unwrap(), [1, 2, 24, 40]);
    named(net.output_shape([1, 3, 20, 40]).err(), "input");
    let net = SmpPspNet::load(gpu, psp.encoder_depth(2), &sd, "").unwrap();
    assert_eq!(net.output_shape([1, 3, 20, 40]).unwrap(), [1, 2, 40, 80]);
    // smp's EfficientNet encoders: B0 to B7, at depth 2 or more.
    for bad in ["efficientnet-b8", "efficientnet-b", "efficientnet-b01"] {
        named(SmpPspNetConfig::new(bad, 3, 2).err(), "encoder_name");
    }
    let effnet = SmpPspNetConfig::new("efficientnet-b7", 3, 2).unwrap();
    named(load(effnet.encoder_depth(1)), "encoder_depth");
}

/// smp UPerNet configurations it refuses: a depth outside 3..=5, no decoder channels,
/// an input not divisible by `2^encoder_depth`.
#[test]
fn smp_upernet_bad_configurations_are_typed_errors() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let cfg = SmpUperNetConfig::new("resnet18", 3, 2)
        .unwrap()
        .decoder_channels(8);
    let load = |cfg: SmpUperNetConfig| SmpUperNet::load(gpu, cfg, &sd, "").err();
    named(load(cfg.clone().encoder_depth(2)), "encoder_depth");
    named(load(cfg.clone().encoder_depth(6)), "encoder_depth");
    named(load(cfg.clone().decoder_channels(0)), "decoder_channels");
    named(load(cfg.clone().upsampling(0)), "upsampling");
    let net = SmpUperNet::load(gpu, cfg.encoder_depth(3), &sd, "").unwrap();
    assert_eq!(net.output_shape([2, 3, 24, 40]).unwrap(), [2, 2, 24, 40]);
    named(net.output_shape([2, 3, 24, 36]).err(), "input");
}

/// smp Segformer configurations it refuses: a depth outside 3..=5, no decoder channels,
/// an input not divisible by `2^encoder_depth`.
#[test]
fn smp_segformer_bad_configurations_are_typed_errors() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let cfg = SmpSegformerConfig::new("resnet18", 3, 2)
        .unwrap()
        .decoder_segmentation_channels(8);
    let load = |cfg: SmpSegformerConfig| SmpSegformer::load(gpu, cfg, &sd, "").err();
    named(load(cfg.clone().encoder_depth(2)), "encoder_depth");
    named(load(cfg.clone().encoder_depth(6)), "encoder_depth");
    named(
        load(cfg.clone().decoder_segmentation_channels(0)),
        "decoder_segmentation_channels",
    );
    named(load(cfg.clone().upsampling(0)), "upsampling");
    named(
        SmpSegformerConfig::new("mit_b6", 3, 2).err(),
        "encoder_name",
    );
    let net = SmpSegformer::load(gpu, cfg.encoder_depth(3), &sd, "").unwrap();
    assert_eq!(net.output_shape([2, 3, 24, 40]).unwrap(), [2, 2, 24, 40]);
    named(net.output_shape([2, 3, 24, 36]).err(), "input");
}

/// smp PAN configurations it refuses: an output stride other than 16 or 32, a depth
/// outside 3..=5, no decoder channels, a VGG encoder (it cannot be dilated), an input not
/// divisible by the output stride or too small for the pyramid's three pools.
#[test]
fn smp_pan_bad_configurations_are_typed_errors() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let cfg = SmpPanConfig::new("resnet18", 3, 2)
        .unwrap()
        .decoder_channels(8);
    let load = |cfg: SmpPanConfig| SmpPan::load(gpu, cfg, &sd, "").err();
    named(
        load(cfg.clone().encoder_output_stride(8)),
        "encoder_output_stride",
    );
    named(load(cfg.clone().encoder_depth(2)), "encoder_depth");
    named(load(cfg.clone().encoder_depth(6)), "encoder_depth");
    named(load(cfg.clone().decoder_channels(0)), "decoder_channels");
    let vgg = SmpPanConfig::new("vgg11", 3, 2).unwrap();
    named(load(vgg), "encoder_output_stride");
    let bed = UpsampleMode::BedOfNails { stride: (2, 2) };
    named(
        load(cfg.clone().decoder_interpolation(bed)),
        "decoder_interpolation",
    );
    let net = SmpPan::load(gpu, cfg.clone(), &sd, "").unwrap();
    assert_eq!(
        net.output_shape([1, 3, 128, 144]).unwrap(),
        [1, 2, 128, 144]
    );
    named(net.output_shape([1, 3, 128, 136]).err(), "input");
    named(net.output_shape([1, 3, 112, 128]).err(), "input");
    let net = SmpPan::load(gpu, cfg.encoder_depth(3), &sd, "").unwrap();
    assert_eq!(net.output_shape([1, 3, 64, 72]).unwrap(), [1, 2, 64, 72]);
}

/// MNASNets by names torchvision does not have, and widths it cannot build.
#[test]
fn mnasnet_bad_names_and_configurations_are_typed_errors() {
    for bad in ["mnasnet2_0", "mnasnet", "mnasnet1_00"] {
        named(MnasNetConfig::torchvision(bad).err(), "arch");
    }
    let sd = StateDict::synthetic();
    for alpha in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let cfg = MnasNetConfig { alpha };
        named(
            MnasNetFeatures::load(common::gpu(), cfg, &sd, "").err(),
            "alpha",
        );
    }
}

/// GENets whose stages timm could not build: typed errors naming the field, before any
/// weight is read.
#[test]
fn gernet_bad_configurations_are_typed_errors() {
    use segblocks::networks::GerNetConfig;
    let sd = StateDict::synthetic();
    let gernet = GerNetConfig::timm("gernet_s").unwrap();
    let load = |g: GerNetConfig| {
        let cfg = SmpUnetConfig {
            encoder: SmpEncoder::TimmUniversalGerNet(g),
            ..SmpUnetConfig::new("tu-gernet_s", 3, 2).unwrap()
        };
        SmpUnet::load(common::gpu(), cfg, &sd, "").err()
    };
    let mut bad = gernet;
    bad.stages[3].group_size = 11;
    named(load(bad), "group_size");
    let mut bad = gernet;
    bad.stages[1].stride = 3;
    named(load(bad), "stride");
    let mut bad = gernet;
    bad.stages[4].depth = 0;
    named(load(bad), "depth");
    named(
        load(GerNetConfig {
            num_features: 0,
            ..gernet
        }),
        "num_features",
    );
    assert_eq!(GerNetConfig::timm("gernet_xl"), None);
}

/// HRNets: every timm name, configurations with nothing to build, the dilation timm
/// refuses (DeepLab's output strides) and inputs whose branches PyTorch cannot sum are
/// typed errors, before any weight is read or any pass recorded.
#[test]
fn hrnet_bad_configurations_are_typed_errors() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    for name in [
        "hrnet_w18_small",
        "hrnet_w18_small_v2",
        "hrnet_w18",
        "hrnet_w30",
        "hrnet_w32",
        "hrnet_w40",
        "hrnet_w44",
        "hrnet_w48.ms_in1k",
        "hrnet_w64",
        "hrnet_w18_ssld",
        "hrnet_w48_ssld",
    ] {
        assert!(HrNetConfig::timm(name).is_some(), "{name}");
    }
    assert_eq!(HrNetConfig::timm("hrnet_w99"), None);
    named(
        SmpUnetConfig::new("tu-hrnet_w99", 3, 2).err(),
        "encoder_name",
    );
    let hrnet = HrNetConfig::timm("hrnet_w18_small").unwrap();
    let load = |h: HrNetConfig| {
        let cfg = SmpUnetConfig {
            encoder: SmpEncoder::TimmUniversalHrNet(h),
            ..SmpUnetConfig::new("tu-hrnet_w18_small", 3, 2).unwrap()
        };
        SmpUnet::load(gpu, cfg, &sd, "").err()
    };
    let mut bad = hrnet;
    bad.widths[2] = 0;
    named(load(bad), "widths");
    let mut bad = hrnet;
    bad.modules[1] = 0;
    named(load(bad), "modules");
    named(
        load(HrNetConfig {
            stage1_blocks: 0,
            ..hrnet
        }),
        "stage1_blocks",
    );
    // timm reports 64 channels for the stem's feature, whatever its width.
    named(
        load(HrNetConfig {
            stem_width: 32,
            ..hrnet
        }),
        "stem_width",
    );
    // timm asserts an output stride of 32: smp's DeepLabs cannot run an HRNet.
    let v3 = SmpDeepLabV3Config::new("tu-hrnet_w18_small", 3, 2).unwrap();
    named(
        SmpDeepLabV3::load(gpu, v3, &sd, "").err(),
        "encoder_output_stride",
    );
    // Each branch must be twice the size of the next for the fusion's sums: 64 x 96
    // runs, 45 x 61 (branches of 12 x 16, 6 x 8, 3 x 4, 2 x 2: PyTorch first fails at
    // stage 4, the 2 x 2 branch upsampled by 8 to 16 rows against 12) is refused.
    let cfg = SmpUnetConfig::new("tu-hrnet_w18_small", 3, 2)
        .unwrap()
        .depth(5, &[8; 5]);
    let net = SmpUnet::load(gpu, cfg, &sd, "").unwrap();
    assert_eq!(net.output_shape([2, 3, 64, 96]).unwrap(), [2, 2, 64, 96]);
    named(net.output_shape([1, 3, 45, 61]).err(), "input");
    // A quarter of 61, rounded up, is 16: that axis halves exactly; 48 (12) does not.
    assert_eq!(net.output_shape([1, 3, 64, 61]).unwrap(), [1, 2, 64, 61]);
    named(net.output_shape([1, 3, 48, 64]).err(), "input");
    let mut rec = gpu.recorder();
    let x = gpu.upload(Array4::zeros([1, 3, 45, 61]).view()).unwrap();
    named(net.forward(&mut rec, &x).err(), "input");
    // At depth 1 too: timm runs every stage whatever the features kept.
    let cfg = SmpUnetConfig::new("tu-hrnet_w18_small", 3, 2)
        .unwrap()
        .depth(1, &[8]);
    let net = SmpUnet::load(gpu, cfg, &sd, "").unwrap();
    assert_eq!(net.output_shape([1, 3, 64, 32]).unwrap(), [1, 2, 64, 32]);
    named(net.output_shape([1, 3, 45, 61]).err(), "input");
}

/// Aligned Xceptions: timm's three names (a pretrained tag ignored), the pre-activation
/// ones refused by name; a DeepLabV3+ and a PAN at output stride 16 keep the input's size.
#[test]
fn aligned_xception_names_and_strides() {
    use segblocks::networks::AlignedXceptionConfig;
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    for (name, want) in [
        ("xception41", AlignedXceptionConfig::Xception41),
        ("xception65.ra3_in1k", AlignedXceptionConfig::Xception65),
        ("xception71", AlignedXceptionConfig::Xception71),
    ] {
        assert_eq!(AlignedXceptionConfig::timm(name), Some(want));
    }
    assert_eq!(AlignedXceptionConfig::timm("xception65p"), None);
    named(
        SmpUnetConfig::new("tu-xception65p", 3, 2).err(),
        "encoder_name",
    );
    let cfg = SmpDeepLabV3PlusConfig::new("tu-xception41", 3, 2)
        .unwrap()
        .decoder_channels(8);
    let net = SmpDeepLabV3Plus::load(gpu, cfg, &sd, "").unwrap();
    assert_eq!(net.output_shape([1, 3, 32, 48]).unwrap(), [1, 2, 32, 48]);
    // smp's PAN at its output stride of 16: the exit blocks dilated.
    let pan = SmpPanConfig::new("tu-xception41", 3, 2).unwrap();
    let net = SmpPan::load(gpu, pan, &sd, "").unwrap();
    assert_eq!(
        net.output_shape([2, 3, 128, 160]).unwrap(),
        [2, 2, 128, 160]
    );
}

/// RepVGGs whose blocks timm could not build: typed errors naming the field, before any
/// weight is read.
#[test]
fn repvgg_bad_configurations_are_typed_errors() {
    use segblocks::networks::RepVggConfig;
    let sd = StateDict::synthetic();
    let repvgg = RepVggConfig::timm("repvgg_b1g4").unwrap();
    let load = |r: RepVggConfig| {
        let cfg = SmpUnetConfig {
            encoder: SmpEncoder::TimmUniversalRepVgg(r),
            ..SmpUnetConfig::new("tu-repvgg_b1g4", 3, 2).unwrap()
        };
        SmpUnet::load(common::gpu(), cfg, &sd, "").err()
    };
    let mut bad = repvgg;
    bad.widths[2] = 250;
    named(load(bad), "groups");
    named(
        load(RepVggConfig {
            groups: 0,
            ..repvgg
        }),
        "groups",
    );
    let mut bad = repvgg;
    bad.depths[0] = 0;
    named(load(bad), "depths");
    named(
        load(RepVggConfig {
            stem_width: 0,
            ..repvgg
        }),
        "stem_width",
    );
    for bad in ["repvgg_d2se", "repvgg_b4", "repvgg_a0g4"] {
        assert_eq!(RepVggConfig::timm(bad), None, "{bad}");
    }
}

/// RegNets by names torchvision does not have, and stages it cannot build.
#[test]
fn regnet_bad_names_and_configurations_are_typed_errors() {
    for bad in ["regnet_x_128gf", "regnet_y_400", "regnet_z_400mf"] {
        named(RegNetConfig::torchvision(bad).err(), "arch");
    }
    let sd = StateDict::synthetic();
    let cfg = RegNetConfig::torchvision("regnet_x_400mf").unwrap();
    let load = |cfg| RegNetFeatures::load(common::gpu(), cfg, &sd, "").err();
    let mut bad = cfg;
    bad.stages[1].group_width = 24;
    named(load(bad), "group_width");
    let mut bad = cfg;
    bad.stages[2].depth = 0;
    named(load(bad), "depth");
    named(
        load(RegNetConfig {
            se_percent: 101,
            ..cfg
        }),
        "se_percent",
    );
}

/// ShuffleNetV2s by names torchvision does not have, and stages it cannot split.
#[test]
fn shufflenet_bad_names_and_configurations_are_typed_errors() {
    for bad in ["shufflenet_v2_x3_0", "shufflenet_v2", "shufflenet_v1_x1_0"] {
        named(ShuffleNetV2Config::torchvision(bad).err(), "arch");
    }
    let sd = StateDict::synthetic();
    let cfg = ShuffleNetV2Config::torchvision("shufflenet_v2_x0_5").unwrap();
    let load = |cfg| ShuffleNetV2Features::load(common::gpu(), cfg, &sd, "").err();
    let odd = ShuffleNetV2Config {
        stages_out_channels: [24, 47, 96, 192, 1024],
        ..cfg
    };
    named(load(odd), "stages_out_channels");
    let empty = ShuffleNetV2Config {
        stages_repeats: [4, 0, 4],
        ..cfg
    };
    named(load(empty), "stages_repeats");
}

/// timm EfficientNets by names smp does not have, and multipliers it cannot build.
#[test]
fn timm_efficientnet_bad_names_are_typed_errors() {
    for bad in [
        "timm-efficientnet-b9",
        "timm-efficientnet-",
        "timm-efficientnet-l1",
        "timm-tf_efficientnet_lite5",
        "timm-tf_efficientnet_liteb0",
    ] {
        named(TimmEfficientNetConfig::from_smp(bad).err(), "encoder_name");
        named(SmpUnetConfig::new(bad, 3, 2).err(), "encoder_name");
    }
    for good in ["timm-efficientnet-l2", "timm-tf_efficientnet_lite4"] {
        assert!(SmpUnetConfig::new(good, 3, 2).is_ok(), "{good}");
    }
    let sd = StateDict::synthetic();
    let mut cfg = SmpUnetConfig::new("timm-efficientnet-b0", 3, 2).unwrap();
    let base = TimmEfficientNetConfig::from_smp("timm-efficientnet-b0").unwrap();
    for (bad, name) in [
        (
            TimmEfficientNetConfig {
                channel_multiplier: 0.0,
                ..base
            },
            "channel_multiplier",
        ),
        (
            TimmEfficientNetConfig {
                depth_multiplier: f64::NAN,
                ..base
            },
            "depth_multiplier",
        ),
        (
            TimmEfficientNetConfig {
                arch: TimmEfficientNetArch::V2S,
                ..base
            },
            "arch",
        ),
        (
            TimmEfficientNetConfig {
                tf_padding: true,
                ..base
            },
            "tf_padding",
        ),
    ] {
        cfg.encoder = SmpEncoder::TimmEfficientNet(bad);
        named(
            SmpUnet::load(common::gpu(), cfg.clone(), &sd, "").err(),
            name,
        );
    }
}

/// MobileOnes by names smp does not have, and configurations it cannot build.
#[test]
fn mobileone_bad_names_and_configurations_are_typed_errors() {
    for bad in ["mobileone_s5", "mobileone", "mobileone_s01"] {
        named(MobileOneConfig::from_smp(bad).err(), "encoder_name");
        named(SmpUnetConfig::new(bad, 3, 2).err(), "encoder_name");
    }
    let sd = StateDict::synthetic();
    let mut cfg = SmpUnetConfig::new("mobileone_s0", 3, 2).unwrap();
    let base = MobileOneConfig::from_smp("mobileone_s0").unwrap();
    let load = |cfg: &SmpUnetConfig| SmpUnet::load(common::gpu(), cfg.clone(), &sd, "").err();
    cfg.encoder = SmpEncoder::MobileOne(MobileOneConfig {
        num_conv_branches: 0,
        ..base
    });
    named(load(&cfg), "num_conv_branches");
    cfg.encoder = SmpEncoder::MobileOne(MobileOneConfig {
        width_multipliers: [0.75, 1.0, 0.001, 2.0],
        ..base
    });
    named(load(&cfg), "width_multipliers");
    cfg.encoder = SmpEncoder::MobileOne(MobileOneConfig {
        num_blocks_per_stage: [2, 0, 10, 1],
        ..base
    });
    named(load(&cfg), "num_blocks_per_stage");
}

/// Dual Path Networks by names smp does not have, and configurations that cannot be
/// built, as typed errors.
#[test]
fn dpn_bad_names_and_configurations_are_typed_errors() {
    for bad in ["dpn", "dpn69", "dpn68c", "dpn92x"] {
        named(DpnConfig::from_smp(bad).err(), "encoder_name");
        named(SmpUnetConfig::new(bad, 3, 2).err(), "encoder_name");
    }
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let load = |cfg: DpnConfig| DpnFeatures::load(gpu, cfg, &sd, "").err();
    let cfg = DpnConfig::from_smp("dpn68").unwrap();
    // 128 bottleneck channels in stage 2 cannot be split into 48 groups.
    named(load(DpnConfig { groups: 48, ..cfg }), "groups");
    named(load(DpnConfig { groups: 0, ..cfg }), "groups");
    named(
        load(DpnConfig {
            k_sec: [3, 0, 12, 3],
            ..cfg
        }),
        "k_sec",
    );
    named(
        load(DpnConfig {
            inc_sec: [16, 32, 0, 64],
            ..cfg
        }),
        "inc_sec",
    );
    // smp's feature widths (its `out_channels`).
    let widths = |name| DpnConfig::from_smp(name).unwrap().feature_channels();
    assert_eq!(widths("dpn68"), [10, 144, 320, 704, 832]);
    assert_eq!(widths("dpn107"), [128, 376, 1152, 2432, 2688]);
    assert_eq!(widths("dpn131"), [128, 352, 832, 1984, 2688]);
}

/// Selective Kernel ResNets by names smp does not have, and configurations timm cannot
/// build (paths that cannot take half the input channels in `cardinality` groups, a
/// basic block with groups), as typed errors; the squeeze widths timm's `make_divisible`
/// gives.
#[test]
fn sknet_bad_names_and_configurations_are_typed_errors() {
    for bad in [
        "timm-skresnet50",
        "timm-skresnext101_32x4d",
        "skresnet18",
        "timm-sk",
    ] {
        if bad.starts_with("timm-sk") {
            named(SkResNetConfig::from_smp(bad).err(), "encoder_name");
        }
        named(SmpUnetConfig::new(bad, 3, 2).err(), "encoder_name");
    }
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let load = |cfg: SkResNetConfig| SkResNetFeatures::load(gpu, cfg, &sd, "").err();
    let next = SkResNetConfig::from_smp("timm-skresnext50_32x4d").unwrap();
    named(
        load(SkResNetConfig {
            cardinality: 4,
            base_width: 1,
            ..next
        }),
        "cardinality",
    );
    named(
        load(SkResNetConfig {
            cardinality: 0,
            ..next
        }),
        "cardinality",
    );
    let basic = SkResNetConfig::from_smp("timm-skresnet18").unwrap();
    named(
        load(SkResNetConfig {
            cardinality: 2,
            ..basic
        }),
        "cardinality",
    );
    named(
        load(SkResNetConfig {
            layers: [2, 0, 2, 2],
            ..basic
        }),
        "layers",
    );
    // make_divisible(64 / 8, 8) = 8, (512 / 8) = 64; SK-ResNeXt: 128 / 16 -> 8.
    assert_eq!(basic.attention_channels(64), 8);
    assert_eq!(basic.attention_channels(512), 64);
    assert_eq!(next.attention_channels(128), 8);
    assert_eq!(next.attention_channels(1024), 64);
    // A round-down below 90% of the value takes the next multiple (timm's round_limit).
    let coarse = SkResNetConfig {
        rd_divisor: 32,
        ..basic
    };
    assert_eq!(coarse.attention_channels(360), 64);
}

/// SENets by names `pretrainedmodels` does not have, and configurations it cannot build.
#[test]
fn senet_bad_names_and_configurations_are_typed_errors() {
    for bad in ["se_resnet18", "se_resnext50", "senet", "se_resnet50x"] {
        named(SeNetConfig::from_name(bad).err(), "arch");
        named(SmpUnetConfig::new(bad, 3, 2).err(), "encoder_name");
    }
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let cfg = SeNetConfig::from_name("senet154").unwrap();
    let load = |cfg: SeNetConfig| SeNetFeatures::load(gpu, cfg, &sd, "").err();
    let even = SeNetConfig {
        downsample_kernel_size: 2,
        ..cfg
    };
    named(load(even), "downsample_kernel_size");
    named(
        load(SeNetConfig {
            reduction: 0,
            ..cfg
        }),
        "reduction",
    );
    named(
        load(SeNetConfig {
            reduction: 512,
            ..cfg
        }),
        "reduction",
    );
    named(load(SeNetConfig { groups: 0, ..cfg }), "groups");
    named(
        load(SeNetConfig {
            layers: [3, 0, 2, 2],
            ..cfg
        }),
        "layers",
    );
}

/// VGGs by names torchvision does not have, and a VGG, Xception or Inception encoder
/// where smp would dilate it; an Inception network without input channels.
#[test]
fn vgg_bad_names_and_dilation_are_typed_errors() {
    for bad in ["vgg15", "vgg16_bnx", "vgg"] {
        named(VggConfig::torchvision(bad).err(), "arch");
        named(SmpUnetConfig::new(bad, 3, 2).err(), "encoder_name");
    }
    let sd = StateDict::synthetic();
    for encoder in ["vgg11", "xception", "inceptionv4", "inceptionresnetv2"] {
        let cfg = SmpDeepLabV3Config::new(encoder, 3, 2).unwrap();
        named(
            SmpDeepLabV3::load(common::gpu(), cfg, &sd, "").err(),
            "encoder_output_stride",
        );
    }
    named(
        SmpUnetConfig::new("inceptionv3", 3, 2).err(),
        "encoder_name",
    );
    for arch in ["inceptionv4", "inceptionresnetv2"] {
        let none = InceptionConfig {
            in_channels: 0,
            ..InceptionConfig::from_smp(arch).unwrap()
        };
        named(
            InceptionFeatures::load(common::gpu(), none, &sd, "").err(),
            "in_channels",
        );
    }
    named(
        InceptionConfig::from_smp("inceptionv3").err(),
        "encoder_name",
    );
}

/// DenseNets by names torchvision does not have, and a DenseNet encoder where smp would
/// dilate it.
#[test]
fn densenet_bad_names_and_dilation_are_typed_errors() {
    for bad in ["densenet100", "densenet", "densenet121x"] {
        named(DenseNetConfig::torchvision(bad).err(), "arch");
        named(SmpUnetConfig::new(bad, 3, 2).err(), "encoder_name");
    }
    let cfg = SmpDeepLabV3PlusConfig::new("densenet121", 3, 2).unwrap();
    let sd = StateDict::synthetic();
    named(
        SmpDeepLabV3Plus::load(common::gpu(), cfg, &sd, "").err(),
        "encoder_output_stride",
    );
}

/// A ConvNeXt by a name torchvision does not have (timm's `convnext_atto` too).
#[test]
fn convnext_bad_names_are_typed_errors() {
    for bad in [
        "convnext_huge",
        "convnext",
        "convnext_tiny_",
        "convnext_atto",
    ] {
        named(ConvNextConfig::torchvision(bad).err(), "arch");
    }
    let cfg = ConvNextConfig {
        channels: [96, 0, 384, 768],
        blocks: [1, 1, 1, 1],
        conv_mlp: false,
        grn: false,
    };
    named(
        ConvNextFeatures::load(common::gpu(), cfg, &StateDict::synthetic(), "").err(),
        "channels",
    );
}

/// EfficientNets by names their libraries do not have.
#[test]
fn efficientnet_bad_names_are_typed_errors() {
    for bad in [
        "efficientnet_b8",
        "efficientnet_v2_xl",
        "efficientnet_b",
        "efficientnet-b0",
    ] {
        named(EfficientNetConfig::torchvision(bad).err(), "arch");
    }
    named(EfficientNetPyTorchConfig::b(8).err(), "variant");
    let cfg = EfficientNetConfig {
        arch: segblocks::networks::EfficientNetArch::B(9),
    };
    named(
        EfficientNetFeatures::load(common::gpu(), cfg, &StateDict::synthetic(), "").err(),
        "arch",
    );
}

/// The CPU references of an smp Linknet (transposed convolutions with batch norm, skips
/// added in the store) and PSPNet (adaptive pools to bins larger than the map, no norm)
/// against smp's outputs.
#[test]
fn smp_linknet_pspnet_references_match_smp() {
    let sd = StateDict::synthetic();
    let cfg = SmpLinknetConfig::new("resnet34", 3, 2).unwrap();
    let net = SmpLinknet::load(common::gpu(), cfg, &sd, "").unwrap();
    reference_matches(&net, "smp_linknet_resnet34");
    let cfg = SmpPspNetConfig::new("mobilenet_v2", 3, 4)
        .unwrap()
        .encoder_depth(5)
        .psp_out_channels(64)
        .decoder_use_norm(false)
        .upsampling(32)
        .activation(HeadActivation::Softmax);
    let net = SmpPspNet::load(common::gpu(), cfg, &sd, "").unwrap();
    reference_matches(&net, "smp_pspnet_mobilenet_v2_depth5_no_norm");
}

/// The CPU reference of an smp DeepLabV3+ (dilated MobileNetV2 encoder, separable ASPP
/// and decoder) against smp's output.
#[test]
fn smp_deeplabv3plus_reference_matches_smp() {
    let cfg = SmpDeepLabV3PlusConfig::new("mobilenet_v2", 1, 4)
        .unwrap()
        .encoder_output_stride(8)
        .decoder_channels(64)
        .atrous_rates([2, 4, 6]);
    let net = SmpDeepLabV3Plus::load(common::gpu(), cfg, &StateDict::synthetic(), "").unwrap();
    reference_matches(&net, "smp_deeplabv3plus_mobilenet_v2_os8");
}

/// The CPU reference of an smp Unet (scse, bicubic, sigmoid: the graph ops the other
/// networks do not use) against smp's output.
#[test]
fn smp_unet_reference_matches_smp() {
    let cfg = SmpUnetConfig::new("resnet18", 2, 2)
        .unwrap()
        .depth(3, &[32, 16, 16])
        .decoder_interpolation(UpsampleMode::Bicubic {
            align_corners: false,
        })
        .decoder_scse(true)
        .activation(HeadActivation::Sigmoid);
    let net = SmpUnet::load(common::gpu(), cfg, &StateDict::synthetic(), "").unwrap();
    reference_matches(&net, "smp_unet_resnet18_scse_depth3");
}

/// The CPU reference of an smp FPN (GroupNorm, cat merge, softmax after the head's resize)
/// against smp's output.
#[test]
fn smp_fpn_reference_matches_smp() {
    let cfg = SmpFpnConfig::new("mobilenet_v2", 1, 4)
        .unwrap()
        .encoder_depth(4)
        .pyramid_channels(48)
        .segmentation_channels(32)
        .merge(FpnMerge::Cat)
        .decoder_interpolation(UpsampleMode::Bilinear {
            align_corners: false,
        })
        .upsampling(2)
        .activation(HeadActivation::Softmax);
    let net = SmpFpn::load(common::gpu(), cfg, &StateDict::synthetic(), "").unwrap();
    reference_matches(&net, "smp_fpn_mobilenet_v2_cat_depth4");
}

/// The CPU reference of an smp Unet on timm's TensorFlow-padded minimal MobileNetV3 at an
/// odd size (each strided window's extra leading row and column, `Op::PadToTfSame`)
/// against smp's output.
#[test]
fn smp_unet_tf_mobilenetv3_reference_matches_smp() {
    let cfg = SmpUnetConfig::new("tu-tf_mobilenetv3_small_minimal_100", 3, 2)
        .unwrap()
        .depth(5, &[16, 16, 8, 8, 8]);
    let net = SmpUnet::load(common::gpu(), cfg, &StateDict::synthetic(), "").unwrap();
    reference_matches(&net, "smp_unet_tu_tf_mobilenetv3_small_minimal_100_odd");
}

/// The CPU references of timm's RepVGG (every trained branch against the folded
/// convolution, the grouped blocks of `b1g4`), MobileNetV4 (the universal inverted
/// bottlenecks) and TensorFlow-padded EfficientNetV2 (convolution and edge-residual blocks
/// at an odd size) against smp's outputs.
#[test]
fn timm_repvgg_mobilenetv4_efficientnetv2_references_match_smp() {
    let sd = StateDict::synthetic();
    let psp = |encoder: &str| {
        let cfg = SmpPspNetConfig::new(encoder, 3, 2)
            .unwrap()
            .encoder_depth(3)
            .psp_out_channels(32)
            .upsampling(8);
        SmpPspNet::load(common::gpu(), cfg, &sd, "").unwrap()
    };
    reference_matches(&psp("tu-repvgg_b1g4"), "smp_pspnet_tu_repvgg_b1g4_depth3");
    reference_matches(
        &psp("tu-mobilenetv4_conv_medium"),
        "smp_pspnet_tu_mobilenetv4_conv_medium_depth3",
    );
    let cfg = SmpUnetConfig::new("tu-tf_efficientnetv2_s", 2, 2)
        .unwrap()
        .depth(3, &[16, 8, 8]);
    let net = SmpUnet::load(common::gpu(), cfg, &sd, "").unwrap();
    reference_matches(&net, "smp_unet_tu_tf_efficientnetv2_s_depth3");
}

/// The CPU references of the decoders and encoders whose reference differs from their GPU
/// path: MobileOne's blocks (every trained branch against the folded convolution), PAN's
/// gated skips and SENet's block ends (gate, skip and ReLU in one pass on the GPU).
#[test]
fn mobileone_pan_senet_references_match_smp() {
    let sd = StateDict::synthetic();
    let gpu = common::gpu();
    let cfg = SmpFpnConfig::new("mobileone_s1", 1, 2)
        .unwrap()
        .encoder_depth(4)
        .pyramid_channels(32)
        .segmentation_channels(32)
        .merge(FpnMerge::Cat)
        .decoder_interpolation(UpsampleMode::Bilinear {
            align_corners: false,
        })
        .activation(HeadActivation::Sigmoid);
    let net = SmpFpn::load(gpu, cfg, &sd, "").unwrap();
    reference_matches(&net, "smp_fpn_mobileone_s1_depth4_one_channel");
    let cfg = SmpPanConfig::new("mobilenet_v2", 2, 2)
        .unwrap()
        .encoder_depth(4)
        .encoder_output_stride(32)
        .decoder_channels(8)
        .decoder_interpolation(UpsampleMode::Nearest)
        .upsampling(2)
        .activation(HeadActivation::Sigmoid)
        .aux_params(Some(SmpAuxParams::new(2).pooling("max").unwrap()));
    let net = SmpPan::load(gpu, cfg, &sd, "").unwrap();
    reference_matches(&net, "smp_pan_mobilenet_v2_os32_depth4_nearest");
    let cfg = SmpPspNetConfig::new("senet154", 3, 2)
        .unwrap()
        .psp_out_channels(16)
        .aux_params(Some(SmpAuxParams::new(2)));
    let net = SmpPspNet::load(gpu, cfg, &sd, "").unwrap();
    reference_matches(&net, "smp_pspnet_senet154_depth3_aux");
}

/// The CPU references of SegFormer on its Mix Transformer B0 (the blocks' layer norms,
/// attention and Mix-FFN, and the all-MLP decoder run as smp runs it, where the GPU folds
/// the fusion into the per-feature layers) against smp's output.
#[test]
fn segformer_mit_reference_matches_smp() {
    let cfg = SmpSegformerConfig::new("mit_b0", 3, 2)
        .unwrap()
        .decoder_segmentation_channels(32);
    let net = SmpSegformer::load(common::gpu(), cfg, &StateDict::synthetic(), "").unwrap();
    reference_matches(&net, "smp_segformer_mit_b0");
}

/// The CPU reference of smp's MAnet (the position attention's softmax over every score
/// and its token-major product, the fusion blocks' two gates) against smp's output.
#[test]
fn manet_reference_matches_smp() {
    let cfg = SmpMAnetConfig::new("resnet18", 3, 2)
        .unwrap()
        .depth(1, &[16])
        .decoder_pab_channels(32);
    let net = SmpMAnet::load(common::gpu(), cfg, &StateDict::synthetic(), "").unwrap();
    reference_matches(&net, "smp_manet_resnet18_depth1");
    let cfg = SmpMAnetConfig::new("mobilenet_v2", 1, 3)
        .unwrap()
        .depth(4, &[32, 24, 16, 8])
        .decoder_pab_channels(8)
        .decoder_use_norm(false)
        .decoder_interpolation(UpsampleMode::Bilinear {
            align_corners: false,
        })
        .activation(HeadActivation::Sigmoid)
        .aux_params(Some(SmpAuxParams::new(2).pooling("max").unwrap()));
    let net = SmpMAnet::load(common::gpu(), cfg, &StateDict::synthetic(), "").unwrap();
    reference_matches(&net, "smp_manet_mobilenet_v2_depth4_bilinear_aux");
}

/// smp MAnet configurations it refuses: decoder widths that do not match the depth, a
/// depth outside 1..=5, no attention channels, an interpolation `F.interpolate` does not
/// have, an input not divisible by `2^encoder_depth`.
#[test]
fn smp_manet_bad_configurations_are_typed_errors() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let cfg = SmpMAnetConfig::new("resnet18", 3, 2)
        .unwrap()
        .depth(3, &[8, 8, 8]);
    let load = |cfg: SmpMAnetConfig| SmpMAnet::load(gpu, cfg, &sd, "").err();
    named(load(cfg.clone().depth(3, &[8, 8])), "decoder_channels");
    named(load(cfg.clone().depth(6, &[8; 6])), "encoder_depth");
    named(load(cfg.clone().depth(0, &[])), "encoder_depth");
    named(
        load(cfg.clone().decoder_pab_channels(0)),
        "decoder_pab_channels",
    );
    named(
        load(
            cfg.clone()
                .decoder_interpolation(UpsampleMode::BedOfNails { stride: (2, 2) }),
        ),
        "decoder_interpolation",
    );
    named(
        SmpMAnetConfig::new("tu-convnext_huge", 3, 2).err(),
        "encoder_name",
    );
    let net = SmpMAnet::load(gpu, cfg, &sd, "").unwrap();
    assert_eq!(net.output_shape([2, 3, 24, 40]).unwrap(), [2, 2, 24, 40]);
    named(net.output_shape([2, 3, 24, 36]).err(), "input");
}

/// The CPU reference of `net` on the committed golden `networks/{name}`'s input against
/// its output (smp's), within 1e-4 relative.
fn reference_matches<A: Architecture>(net: &Model<A>, name: &str) {
    let path = format!(
        "{}/tests/golden/networks/{name}.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    let file = StateDict::load(path).unwrap();
    let (x, want) = (
        common::stored4(&file, "x").unwrap(),
        common::stored4(&file, "out").unwrap(),
    );
    let got = net.reference(x.view()).unwrap();
    let err = common::relative(&got, &want);
    assert!(err < 1e-4, "{name}: reference vs smp: relative {err}");
}

/// The CPU reference of timm's Selective Kernel blocks (the softmax across the two paths,
/// the squeeze's batch norm) against smp's output, where a short decoder lets the
/// attention reach it.
#[test]
fn sknet_reference_matches_smp() {
    let cfg = SmpUnetConfig::new("timm-skresnext50_32x4d", 2, 2)
        .unwrap()
        .depth(2, &[16, 8])
        .decoder_use_norm(false);
    let net = SmpUnet::load(common::gpu(), cfg, &StateDict::synthetic(), "").unwrap();
    reference_matches(&net, "smp_unet_timm_skresnext50_32x4d_depth2");
}

/// The CPU reference of a Dual Path Network's blocks (both paths, the pre-activation
/// norms) against smp's output, where a short decoder lets the first stage reach it.
#[test]
fn dpn_reference_matches_smp() {
    let cfg = SmpUnetConfig::new("dpn68", 3, 2)
        .unwrap()
        .depth(2, &[16, 8])
        .decoder_use_norm(false);
    let net = SmpUnet::load(common::gpu(), cfg, &StateDict::synthetic(), "").unwrap();
    reference_matches(&net, "smp_unet_dpn68_depth2");
}

/// Every encoder name of smp 0.6.0 (`smp.encoders.get_encoder_names()`, 76 of them) is
/// one this library builds, with smp's feature widths (`out_channels`, listed from smp).
#[test]
fn every_smp_encoder_name_is_known_with_its_widths() {
    let smp = [
        ("resnet18", [3, 64, 64, 128, 256, 512]),
        ("resnet34", [3, 64, 64, 128, 256, 512]),
        ("resnet50", [3, 64, 256, 512, 1024, 2048]),
        ("resnet101", [3, 64, 256, 512, 1024, 2048]),
        ("resnet152", [3, 64, 256, 512, 1024, 2048]),
        ("resnext50_32x4d", [3, 64, 256, 512, 1024, 2048]),
        ("resnext101_32x4d", [3, 64, 256, 512, 1024, 2048]),
        ("resnext101_32x8d", [3, 64, 256, 512, 1024, 2048]),
        ("resnext101_32x16d", [3, 64, 256, 512, 1024, 2048]),
        ("resnext101_32x32d", [3, 64, 256, 512, 1024, 2048]),
        ("resnext101_32x48d", [3, 64, 256, 512, 1024, 2048]),
        ("dpn68", [3, 10, 144, 320, 704, 832]),
        ("dpn68b", [3, 10, 144, 320, 704, 832]),
        ("dpn92", [3, 64, 336, 704, 1552, 2688]),
        ("dpn98", [3, 96, 336, 768, 1728, 2688]),
        ("dpn107", [3, 128, 376, 1152, 2432, 2688]),
        ("dpn131", [3, 128, 352, 832, 1984, 2688]),
        ("vgg11", [64, 128, 256, 512, 512, 512]),
        ("vgg11_bn", [64, 128, 256, 512, 512, 512]),
        ("vgg13", [64, 128, 256, 512, 512, 512]),
        ("vgg13_bn", [64, 128, 256, 512, 512, 512]),
        ("vgg16", [64, 128, 256, 512, 512, 512]),
        ("vgg16_bn", [64, 128, 256, 512, 512, 512]),
        ("vgg19", [64, 128, 256, 512, 512, 512]),
        ("vgg19_bn", [64, 128, 256, 512, 512, 512]),
        ("senet154", [3, 128, 256, 512, 1024, 2048]),
        ("se_resnet50", [3, 64, 256, 512, 1024, 2048]),
        ("se_resnet101", [3, 64, 256, 512, 1024, 2048]),
        ("se_resnet152", [3, 64, 256, 512, 1024, 2048]),
        ("se_resnext50_32x4d", [3, 64, 256, 512, 1024, 2048]),
        ("se_resnext101_32x4d", [3, 64, 256, 512, 1024, 2048]),
        ("densenet121", [3, 64, 256, 512, 1024, 1024]),
        ("densenet169", [3, 64, 256, 512, 1280, 1664]),
        ("densenet201", [3, 64, 256, 512, 1792, 1920]),
        ("densenet161", [3, 96, 384, 768, 2112, 2208]),
        ("inceptionresnetv2", [3, 64, 192, 320, 1088, 1536]),
        ("inceptionv4", [3, 64, 192, 384, 1024, 1536]),
        ("efficientnet-b0", [3, 32, 24, 40, 112, 320]),
        ("efficientnet-b1", [3, 32, 24, 40, 112, 320]),
        ("efficientnet-b2", [3, 32, 24, 48, 120, 352]),
        ("efficientnet-b3", [3, 40, 32, 48, 136, 384]),
        ("efficientnet-b4", [3, 48, 32, 56, 160, 448]),
        ("efficientnet-b5", [3, 48, 40, 64, 176, 512]),
        ("efficientnet-b6", [3, 56, 40, 72, 200, 576]),
        ("efficientnet-b7", [3, 64, 48, 80, 224, 640]),
        ("mobilenet_v2", [3, 16, 24, 32, 96, 1280]),
        ("xception", [3, 64, 128, 256, 728, 2048]),
        ("timm-efficientnet-b0", [3, 32, 24, 40, 112, 320]),
        ("timm-efficientnet-b1", [3, 32, 24, 40, 112, 320]),
        ("timm-efficientnet-b2", [3, 32, 24, 48, 120, 352]),
        ("timm-efficientnet-b3", [3, 40, 32, 48, 136, 384]),
        ("timm-efficientnet-b4", [3, 48, 32, 56, 160, 448]),
        ("timm-efficientnet-b5", [3, 48, 40, 64, 176, 512]),
        ("timm-efficientnet-b6", [3, 56, 40, 72, 200, 576]),
        ("timm-efficientnet-b7", [3, 64, 48, 80, 224, 640]),
        ("timm-efficientnet-b8", [3, 72, 56, 88, 248, 704]),
        ("timm-efficientnet-l2", [3, 136, 104, 176, 480, 1376]),
        ("timm-tf_efficientnet_lite0", [3, 32, 24, 40, 112, 320]),
        ("timm-tf_efficientnet_lite1", [3, 32, 24, 40, 112, 320]),
        ("timm-tf_efficientnet_lite2", [3, 32, 24, 48, 120, 352]),
        ("timm-tf_efficientnet_lite3", [3, 32, 32, 48, 136, 384]),
        ("timm-tf_efficientnet_lite4", [3, 32, 32, 56, 160, 448]),
        ("timm-skresnet18", [3, 64, 64, 128, 256, 512]),
        ("timm-skresnet34", [3, 64, 64, 128, 256, 512]),
        ("timm-skresnext50_32x4d", [3, 64, 256, 512, 1024, 2048]),
        ("mit_b0", [3, 0, 32, 64, 160, 256]),
        ("mit_b1", [3, 0, 64, 128, 320, 512]),
        ("mit_b2", [3, 0, 64, 128, 320, 512]),
        ("mit_b3", [3, 0, 64, 128, 320, 512]),
        ("mit_b4", [3, 0, 64, 128, 320, 512]),
        ("mit_b5", [3, 0, 64, 128, 320, 512]),
        ("mobileone_s0", [3, 48, 48, 128, 256, 1024]),
        ("mobileone_s1", [3, 64, 96, 192, 512, 1280]),
        ("mobileone_s2", [3, 64, 96, 256, 640, 2048]),
        ("mobileone_s3", [3, 64, 128, 320, 768, 2048]),
        ("mobileone_s4", [3, 64, 192, 448, 896, 2048]),
    ];
    for (name, widths) in smp {
        let encoder = SmpEncoder::from_name(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(encoder.channels(3), widths, "{name}");
    }
}

/// A DPT case's network, configured from its `cases.json` arguments.
fn dpt_case(name: &str) -> SmpDpt {
    let dir = golden_dir("tests/golden/networks");
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let case = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case {name}"));
    SmpDpt::load(
        common::gpu(),
        dpt_config(&case["args"]),
        &StateDict::synthetic(),
        "",
    )
    .unwrap()
}

/// The CPU reference of timm's Vision Transformer (the token sequence built as timm
/// concatenates and adds it, register tokens, layer scales) and of DPT's readouts against
/// smp's output.
#[test]
fn dpt_reference_matches_smp() {
    for name in [
        "smp_dpt_vit_tiny_cat",
        "smp_dpt_deit3_add_depth3_aux",
        "smp_dpt_vit_patch8_reg_tokens_add",
        "smp_dpt_vit_tiny_dynamic_img_size",
        "smp_dpt_deit3_dynamic_img_size_reg_tokens",
    ] {
        reference_matches(&dpt_case(name), name);
    }
}

/// smp's and timm's refusals as typed errors naming the parameter: a name without `tu-`
/// or not a plain ViT, a depth beyond the blocks, indices out of range or repeated,
/// intermediate widths that do not match the depth, a readout smp does not know, heads
/// that do not divide the width; an input of another size than the encoder's (without
/// `dynamic_img_size`) or not a multiple of the patch (with it), and fused
/// maps whose sizes disagree (PyTorch fails to add them too).
#[test]
fn smp_dpt_bad_configurations_are_typed_errors() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    for bad in [
        "vit_tiny_patch16_224",
        "tu-vit_tiny_patch16",
        "tu-vit_giant_patch14_224",
        "tu-swin_tiny_patch4_window7_224",
        "tu-vit_tiny_patchx_224",
    ] {
        named(SmpDptConfig::new(bad, 3, 2).err(), "encoder_name");
    }
    named(DptReadout::from_name("mean").err(), "decoder_readout");
    let mut cfg = SmpDptConfig::new("tu-vit_tiny_patch16_224.augreg_in21k", 3, 2)
        .unwrap()
        .decoder_intermediate_channels(vec![8, 8, 8, 8])
        .decoder_fusion_channels(8);
    cfg.encoder.img_size = (64, 96);
    cfg.encoder.embed_dim = 24;
    cfg.encoder.num_heads = 2;
    cfg.encoder.mlp_hidden = 48;
    let load = |cfg: SmpDptConfig| SmpDpt::load(gpu, cfg, &sd, "").err();
    named(
        load(
            cfg.clone()
                .encoder_depth(13)
                .decoder_intermediate_channels(vec![8; 13]),
        ),
        "encoder_depth",
    );
    named(
        load(cfg.clone().encoder_depth(3)),
        "decoder_intermediate_channels",
    );
    named(
        load(cfg.clone().encoder_output_indices(Some(vec![0, 1, 2, 12]))),
        "encoder_output_indices",
    );
    named(
        load(cfg.clone().encoder_output_indices(Some(vec![0, 1, -13, 3]))),
        "encoder_output_indices",
    );
    named(
        load(cfg.clone().encoder_output_indices(Some(vec![1, 1, 2, 3]))),
        "encoder_output_indices",
    );
    named(
        load(cfg.clone().encoder_output_indices(Some(vec![1, 2]))),
        "encoder_output_indices",
    );
    named(
        load(cfg.clone().decoder_fusion_channels(0)),
        "decoder_fusion_channels",
    );
    let mut heads = cfg.clone();
    heads.encoder.num_heads = 5;
    named(load(heads), "num_heads");
    let net = SmpDpt::load(gpu, cfg.clone(), &sd, "").unwrap();
    assert_eq!(net.output_shape([2, 3, 64, 96]).unwrap(), [2, 2, 64, 96]);
    named(net.output_shape([2, 3, 96, 64]).err(), "input");
    assert!(matches!(
        net.output_shape([2, 4, 64, 96]),
        Err(segblocks::Error::ShapeMismatch { .. }) | Err(segblocks::Error::InvalidParam { .. })
    ));
    // Another size with `dynamic_img_size`: any multiple of the patch size.
    let mut dynamic = cfg.clone();
    dynamic.encoder.dynamic_img_size = true;
    let net = SmpDpt::load(gpu, dynamic, &sd, "").unwrap();
    assert_eq!(net.output_shape([2, 3, 128, 32]).unwrap(), [2, 2, 128, 32]);
    named(net.output_shape([2, 3, 72, 96]).err(), "input");
    // A 3 x 5 patch grid: the stride-32 map is 2 x 3, twice that is not the 3 x 5 of the
    // stride-16 map: the input is named.
    let mut odd = cfg;
    odd.encoder.img_size = (48, 80);
    let net = SmpDpt::load(gpu, odd, &sd, "").unwrap();
    named(net.output_shape([1, 3, 48, 80]).err(), "input");
}

/// smp's timm (`tu-`) ResNets and EfficientNets: each ResNet name builds timm's blocks,
/// stage depths, groups and widths (listed from timm 1.0), each gives smp's feature
/// widths, and so do the deep-stem `c` / `d` / `s` / `t` ResNets (their stem and
/// `avg_down`) and each MobileNetV3 name (smp's deprecated `timm-mobilenetv3_*` too); timm
/// models this library does not have (the anti-aliased ResNets, ConvNeXt, the
/// TensorFlow-padded `tf_` EfficientNets, MobileNetV3s and RegNets timm does not register,
/// RegNetZ, smp's deprecated `timm-resnest*`, an empty name) are typed errors; the RegNets
/// give smp's widths too.
#[test]
fn timm_universal_names_are_timm_configurations() {
    use segblocks::blocks::AntiAlias;
    use segblocks::networks::{ResNetBlock, ResNetStem};
    let timm = [
        ("tu-resnet18", true, [2, 2, 2, 2], 1, 64),
        ("tu-resnet26", false, [2, 2, 2, 2], 1, 64),
        ("tu-resnet34", true, [3, 4, 6, 3], 1, 64),
        ("tu-resnet50", false, [3, 4, 6, 3], 1, 64),
        ("tu-resnet101", false, [3, 4, 23, 3], 1, 64),
        ("tu-resnet152", false, [3, 8, 36, 3], 1, 64),
        ("tu-resnet200", false, [3, 24, 36, 3], 1, 64),
        ("tu-resnext50_32x4d", false, [3, 4, 6, 3], 32, 4),
        ("tu-resnext101_32x4d", false, [3, 4, 23, 3], 32, 4),
        ("tu-resnext101_32x8d", false, [3, 4, 23, 3], 32, 8),
        ("tu-resnext101_32x16d", false, [3, 4, 23, 3], 32, 16),
        ("tu-resnext101_32x32d", false, [3, 4, 23, 3], 32, 32),
        ("tu-resnext101_64x4d", false, [3, 4, 23, 3], 64, 4),
        ("tu-wide_resnet50_2", false, [3, 4, 6, 3], 1, 128),
        ("tu-wide_resnet101_2.tv2_in1k", false, [3, 4, 23, 3], 1, 128),
    ];
    for (name, basic, layers, groups, width) in timm {
        let r = &timm_resnet(name);
        let block = if basic {
            ResNetBlock::Basic
        } else {
            ResNetBlock::Bottleneck
        };
        assert_eq!(
            (r.block, r.layers, r.groups, r.width_per_group),
            (block, layers, groups, width),
            "{name}"
        );
        let deepest = if basic { 512 } else { 2048 };
        let widths = [3, 64, deepest / 8, deepest / 4, deepest / 2, deepest];
        assert_eq!(
            SmpEncoder::TimmUniversalResNet(*r).channels(3),
            widths,
            "{name}"
        );
    }
    // timm's stem variants: the stem, `avg_down`, blocks per stage, the stride-2 width.
    let deep = ResNetStem::Deep(32);
    let tiered = ResNetStem::DeepTiered(32);
    let wide = ResNetStem::Deep(64);
    let stems = [
        ("tu-resnet10t", tiered, true, [1, 1, 1, 1], 64),
        ("tu-resnet14t", tiered, true, [1, 1, 1, 1], 64),
        ("tu-resnet18d", deep, true, [2, 2, 2, 2], 64),
        ("tu-resnet26d", deep, true, [2, 2, 2, 2], 64),
        ("tu-resnet26t", tiered, true, [2, 2, 2, 2], 64),
        ("tu-resnet34d", deep, true, [3, 4, 6, 3], 64),
        ("tu-resnet50c", deep, false, [3, 4, 6, 3], 64),
        ("tu-resnet50d.a1_in1k", deep, true, [3, 4, 6, 3], 64),
        ("tu-resnet50s", wide, false, [3, 4, 6, 3], 128),
        ("tu-resnet50t", tiered, true, [3, 4, 6, 3], 64),
        ("tu-resnet101c", deep, false, [3, 4, 23, 3], 64),
        ("tu-resnet101d", deep, true, [3, 4, 23, 3], 64),
        ("tu-resnet101s", wide, false, [3, 4, 23, 3], 128),
        ("tu-resnet152c", deep, false, [3, 8, 36, 3], 64),
        ("tu-resnet152d", deep, true, [3, 8, 36, 3], 64),
        ("tu-resnet152s", wide, false, [3, 8, 36, 3], 128),
        ("tu-resnet200d", deep, true, [3, 24, 36, 3], 64),
        ("tu-resnext50d_32x4d", deep, true, [3, 4, 6, 3], 64),
    ];
    for (name, stem, avg_down, layers, stride2) in stems {
        let r = &timm_resnet(name);
        assert_eq!((r.attn_layer, r.anti_alias), (None, None), "{name}");
        assert_eq!(
            (r.stem, r.avg_down, r.layers),
            (stem, avg_down, layers),
            "{name}"
        );
        assert_eq!(
            SmpEncoder::TimmUniversalResNet(*r).channels(3)[1],
            stride2,
            "{name}"
        );
    }
    // timm's squeeze-and-excitation ResNets: the stem, `avg_down`, blocks, groups and
    // width per group.
    let se = [
        (
            "tu-seresnet18",
            ResNetStem::Standard,
            false,
            [2, 2, 2, 2],
            (1, 64),
        ),
        ("tu-seresnet50t", tiered, true, [3, 4, 6, 3], (1, 64)),
        ("tu-seresnet152d", deep, true, [3, 8, 36, 3], (1, 64)),
        ("tu-seresnet269d", deep, true, [3, 30, 48, 8], (1, 64)),
        ("tu-seresnext26t_32x4d", tiered, true, [2, 2, 2, 2], (32, 4)),
        (
            "tu-seresnext50_32x4d",
            ResNetStem::Standard,
            false,
            [3, 4, 6, 3],
            (32, 4),
        ),
        ("tu-seresnext101d_32x8d", deep, true, [3, 4, 23, 3], (32, 8)),
        (
            "tu-seresnext101_64x4d",
            ResNetStem::Standard,
            false,
            [3, 4, 23, 3],
            (64, 4),
        ),
    ];
    for (name, stem, avg_down, layers, groups) in se {
        let r = &timm_resnet(name);
        let got = (r.attn_layer, r.stem, r.avg_down, r.layers);
        let se = Some(ResNetAttention::SqueezeExcitation { reduction: 16 });
        assert_eq!(got, (se, stem, avg_down, layers), "{name}");
        assert_eq!((r.groups, r.width_per_group), groups, "{name}");
    }
    // timm's ECA, anti-aliased and blur-pooled ResNets: the attention, anti-aliasing, stem,
    // `avg_down`, blocks and groups.
    let (eca, se) = (
        Some(ResNetAttention::Eca),
        Some(ResNetAttention::SqueezeExcitation { reduction: 16 }),
    );
    let standard = ResNetStem::Standard;
    let (no, aa, blur) = (None, Some(AntiAlias::AvgPool), Some(AntiAlias::BlurPool));
    let others = [
        ("tu-ecaresnet26t", eca, no, tiered, [2, 2, 2, 2], 1),
        ("tu-ecaresnet50d", eca, no, deep, [3, 4, 6, 3], 1),
        ("tu-ecaresnet50t", eca, no, tiered, [3, 4, 6, 3], 1),
        ("tu-ecaresnetlight", eca, no, standard, [1, 1, 11, 3], 1),
        ("tu-ecaresnet101d", eca, no, deep, [3, 4, 23, 3], 1),
        ("tu-ecaresnet200d", eca, no, deep, [3, 24, 36, 3], 1),
        ("tu-ecaresnet269d", eca, no, deep, [3, 30, 48, 8], 1),
        ("tu-resnetblur18", None, blur, standard, [2, 2, 2, 2], 1),
        ("tu-resnetblur50", None, blur, standard, [3, 4, 6, 3], 1),
        ("tu-resnetblur50d", None, blur, deep, [3, 4, 6, 3], 1),
        ("tu-resnetblur101d", None, blur, deep, [3, 4, 23, 3], 1),
        ("tu-resnetaa34d", None, aa, deep, [3, 4, 6, 3], 1),
        ("tu-resnetaa50", None, aa, standard, [3, 4, 6, 3], 1),
        ("tu-resnetaa50d", None, aa, deep, [3, 4, 6, 3], 1),
        ("tu-resnetaa101d", None, aa, deep, [3, 4, 23, 3], 1),
        ("tu-seresnetaa50d", se, aa, deep, [3, 4, 6, 3], 1),
        ("tu-seresnextaa101d_32x8d", se, aa, deep, [3, 4, 23, 3], 32),
        ("tu-seresnextaa201d_32x8d", se, aa, wide, [3, 24, 36, 4], 32),
    ];
    for (name, attn, aa, stem, layers, groups) in others {
        let r = &timm_resnet(name);
        let got = (r.attn_layer, r.anti_alias, r.stem, r.layers, r.groups);
        assert_eq!(got, (attn, aa, stem, layers, groups), "{name}");
        let plain_stem = ["tu-resnetaa50", "tu-resnetblur18", "tu-resnetblur50"];
        assert_eq!(r.avg_down, !plain_stem.contains(&name), "{name}");
        assert!(!r.replace_stem_pool, "{name}");
    }
    // timm's ResNet-RS: the deep stem, `avg_down`, SE at a quarter of the width, the stem
    // pool a strided convolution; the blocks (timm's `resnetrs*` definitions).
    let rs = [
        ("tu-resnetrs50", [3, 4, 6, 3]),
        ("tu-resnetrs101", [3, 4, 23, 3]),
        ("tu-resnetrs152", [3, 8, 36, 3]),
        ("tu-resnetrs200", [3, 24, 36, 3]),
        ("tu-resnetrs270", [4, 29, 53, 4]),
        ("tu-resnetrs350", [4, 36, 72, 4]),
        ("tu-resnetrs420.tf_in1k", [4, 44, 87, 4]),
    ];
    for (name, layers) in rs {
        let r = &timm_resnet(name);
        let se = Some(ResNetAttention::SqueezeExcitation { reduction: 4 });
        let got = (r.attn_layer, r.stem, r.avg_down, r.replace_stem_pool);
        assert_eq!(got, (se, deep, true, true), "{name}");
        assert_eq!(
            (r.layers, r.groups, r.anti_alias),
            (layers, 1, None),
            "{name}"
        );
    }
    // timm's own EfficientNets, MobileNets, RegNets, ConvNeXts and GENets (by their `tu-` names and smp's
    // deprecated `timm-` ones): the family and smp's widths (listed from smp 0.6.0 / timm
    // 1.0). The EfficientNets' stride-2 one is the first stage's, the small MobileNetV3s'
    // the stem's, the MobileNetV3s' last one the 1x1 convolution's.
    let efficientnet = |e: &SmpEncoder| matches!(e, SmpEncoder::TimmUniversalEfficientNet(_));
    let mobilenet = |e: &SmpEncoder| matches!(e, SmpEncoder::TimmUniversalMobileNet(_));
    let regnet = |e: &SmpEncoder| matches!(e, SmpEncoder::TimmUniversalRegNet(_));
    let convnext = |e: &SmpEncoder| matches!(e, SmpEncoder::TimmUniversalConvNext(_));
    let gernet = |e: &SmpEncoder| matches!(e, SmpEncoder::TimmUniversalGerNet(_));
    let repvgg = |e: &SmpEncoder| matches!(e, SmpEncoder::TimmUniversalRepVgg(_));
    type Family = fn(&SmpEncoder) -> bool;
    let families: [(&str, Family, [usize; 6]); 82] = [
        ("tu-convnextv2_atto", convnext, [3, 0, 40, 80, 160, 320]),
        ("tu-convnextv2_huge", convnext, [3, 0, 352, 704, 1408, 2816]),
        ("timm-gernet_s", gernet, [3, 13, 48, 48, 384, 1920]),
        ("tu-gernet_m", gernet, [3, 32, 128, 192, 640, 2560]),
        (
            "tu-gernet_l.idstcv_in1k",
            gernet,
            [3, 32, 128, 192, 640, 2560],
        ),
        ("tu-convnext_atto", convnext, [3, 0, 40, 80, 160, 320]),
        ("tu-convnext_nano", convnext, [3, 0, 80, 160, 320, 640]),
        (
            "tu-convnext_tiny.fb_in22k",
            convnext,
            [3, 0, 96, 192, 384, 768],
        ),
        ("tu-convnext_xlarge", convnext, [3, 0, 256, 512, 1024, 2048]),
        (
            "tu-efficientnet_b0",
            efficientnet,
            [3, 16, 24, 40, 112, 320],
        ),
        (
            "tu-efficientnet_b3.ra2_in1k",
            efficientnet,
            [3, 24, 32, 48, 136, 384],
        ),
        (
            "tu-efficientnet_b8",
            efficientnet,
            [3, 32, 56, 88, 248, 704],
        ),
        (
            "tu-efficientnet_l2",
            efficientnet,
            [3, 72, 104, 176, 480, 1376],
        ),
        (
            "tu-efficientnet_lite0",
            efficientnet,
            [3, 16, 24, 40, 112, 320],
        ),
        (
            "tu-efficientnet_lite4",
            efficientnet,
            [3, 24, 32, 56, 160, 448],
        ),
        (
            "tu-tf_efficientnet_b0",
            efficientnet,
            [3, 16, 24, 40, 112, 320],
        ),
        (
            "tu-tf_efficientnet_l2",
            efficientnet,
            [3, 72, 104, 176, 480, 1376],
        ),
        (
            "tu-tf_efficientnet_lite4",
            efficientnet,
            [3, 24, 32, 56, 160, 448],
        ),
        (
            "tu-efficientnetv2_rw_t",
            efficientnet,
            [3, 24, 40, 48, 128, 208],
        ),
        (
            "tu-efficientnetv2_rw_m",
            efficientnet,
            [3, 32, 56, 80, 192, 328],
        ),
        (
            "tu-efficientnetv2_rw_s",
            efficientnet,
            [3, 24, 48, 64, 160, 272],
        ),
        (
            "tu-efficientnetv2_s",
            efficientnet,
            [3, 24, 48, 64, 160, 256],
        ),
        (
            "tu-tf_efficientnetv2_m",
            efficientnet,
            [3, 24, 48, 80, 176, 512],
        ),
        (
            "tu-efficientnetv2_l",
            efficientnet,
            [3, 32, 64, 96, 224, 640],
        ),
        (
            "tu-tf_efficientnetv2_xl",
            efficientnet,
            [3, 32, 64, 96, 256, 640],
        ),
        (
            "tu-tf_efficientnetv2_b0",
            efficientnet,
            [3, 16, 32, 48, 112, 192],
        ),
        (
            "tu-tf_efficientnetv2_b1",
            efficientnet,
            [3, 16, 32, 48, 112, 192],
        ),
        (
            "tu-tf_efficientnetv2_b2",
            efficientnet,
            [3, 16, 32, 56, 120, 208],
        ),
        (
            "tu-tf_efficientnetv2_b3",
            efficientnet,
            [3, 16, 40, 56, 136, 232],
        ),
        (
            "tu-efficientnet_es",
            efficientnet,
            [3, 24, 32, 48, 144, 192],
        ),
        (
            "tu-tf_efficientnet_em",
            efficientnet,
            [3, 24, 32, 48, 144, 192],
        ),
        (
            "tu-efficientnet_el",
            efficientnet,
            [3, 32, 40, 56, 176, 232],
        ),
        ("tu-mixnet_s", efficientnet, [3, 16, 24, 40, 120, 200]),
        ("tu-tf_mixnet_m", efficientnet, [3, 24, 32, 40, 120, 200]),
        ("tu-mixnet_l", efficientnet, [3, 32, 40, 56, 160, 264]),
        ("tu-mixnet_xl", efficientnet, [3, 40, 48, 64, 192, 320]),
        ("tu-mixnet_xxl", efficientnet, [3, 56, 80, 96, 288, 480]),
        ("tu-tinynet_a", efficientnet, [3, 16, 24, 40, 112, 320]),
        ("tu-tinynet_c", efficientnet, [3, 8, 16, 24, 64, 176]),
        ("tu-mnasnet_050", efficientnet, [3, 8, 16, 24, 48, 160]),
        ("tu-semnasnet_140", efficientnet, [3, 24, 32, 56, 160, 448]),
        ("tu-mnasnet_small", efficientnet, [3, 8, 16, 16, 32, 144]),
        ("tu-spnasnet_100", efficientnet, [3, 16, 24, 40, 96, 320]),
        ("tu-fbnetc_100", efficientnet, [3, 16, 24, 32, 112, 352]),
        ("tu-mobilenetv2_110d", mobilenet, [3, 16, 24, 32, 104, 352]),
        ("tu-mobilenetv2_120d", mobilenet, [3, 24, 32, 40, 112, 384]),
        (
            "tu-mobilenetv3_large_150d",
            mobilenet,
            [3, 24, 40, 64, 168, 1440],
        ),
        ("tu-mobilenetv3_rw", mobilenet, [3, 16, 24, 40, 112, 960]),
        (
            "tu-mobilenetv1_100h",
            mobilenet,
            [3, 64, 128, 256, 512, 1024],
        ),
        (
            "tu-mobilenetv1_125",
            mobilenet,
            [3, 80, 160, 320, 640, 1280],
        ),
        ("tu-fbnetv3_b", mobilenet, [3, 16, 24, 40, 120, 1344]),
        ("tu-fbnetv3_d", mobilenet, [3, 16, 24, 40, 128, 1440]),
        ("tu-fbnetv3_g", mobilenet, [3, 24, 40, 56, 160, 1728]),
        ("tu-lcnet_035", mobilenet, [3, 16, 24, 48, 88, 176]),
        ("tu-lcnet_075", mobilenet, [3, 24, 48, 96, 192, 384]),
        ("tu-lcnet_150", mobilenet, [3, 48, 96, 192, 384, 768]),
        (
            "tu-mobilenetv3_large_075",
            mobilenet,
            [3, 16, 24, 32, 88, 720],
        ),
        ("tu-repvgg_a0", repvgg, [3, 48, 48, 96, 192, 1280]),
        (
            "tu-repvgg_a2.rvgg_in1k",
            repvgg,
            [3, 64, 96, 192, 384, 1408],
        ),
        ("tu-repvgg_b1g4", repvgg, [3, 64, 128, 256, 512, 2048]),
        ("tu-repvgg_b3", repvgg, [3, 64, 192, 384, 768, 2560]),
        (
            "tu-mobilenetv4_conv_small",
            mobilenet,
            [3, 32, 32, 64, 96, 960],
        ),
        (
            "tu-mobilenetv4_conv_small_035",
            mobilenet,
            [3, 32, 16, 24, 32, 336],
        ),
        (
            "tu-mobilenetv4_conv_small_050.e3000_r224_in1k",
            mobilenet,
            [3, 32, 16, 32, 48, 480],
        ),
        (
            "tu-mobilenetv4_conv_medium",
            mobilenet,
            [3, 32, 48, 80, 160, 960],
        ),
        (
            "tu-mobilenetv4_conv_large",
            mobilenet,
            [3, 24, 48, 96, 192, 960],
        ),
        (
            "tu-mobilenetv3_large_100.ra_in1k",
            mobilenet,
            [3, 16, 24, 40, 112, 960],
        ),
        (
            "tu-mobilenetv3_small_050",
            mobilenet,
            [3, 16, 8, 16, 24, 288],
        ),
        (
            "tu-mobilenetv3_small_075",
            mobilenet,
            [3, 16, 16, 24, 40, 432],
        ),
        (
            "tu-mobilenetv3_small_100",
            mobilenet,
            [3, 16, 16, 24, 48, 576],
        ),
        (
            "tu-tf_mobilenetv3_large_075",
            mobilenet,
            [3, 16, 24, 32, 88, 720],
        ),
        (
            "tu-tf_mobilenetv3_large_minimal_100",
            mobilenet,
            [3, 16, 24, 40, 112, 960],
        ),
        (
            "tu-tf_mobilenetv3_small_minimal_100",
            mobilenet,
            [3, 16, 16, 24, 48, 576],
        ),
        (
            "timm-mobilenetv3_small_075",
            mobilenet,
            [3, 16, 16, 24, 40, 432],
        ),
        (
            "timm-mobilenetv3_large_100",
            mobilenet,
            [3, 16, 24, 40, 112, 960],
        ),
        ("tu-mobilenetv2_035", mobilenet, [3, 8, 8, 16, 32, 112]),
        ("tu-mobilenetv2_100", mobilenet, [3, 16, 24, 32, 96, 320]),
        ("tu-mobilenetv2_140", mobilenet, [3, 24, 32, 48, 136, 448]),
        ("tu-regnetx_002", regnet, [3, 32, 24, 56, 152, 368]),
        ("tu-regnety_640", regnet, [3, 32, 328, 984, 1968, 4920]),
        ("timm-regnetx_320", regnet, [3, 32, 336, 672, 1344, 2520]),
        (
            "tu-regnety_040.ra3_in1k",
            regnet,
            [3, 32, 128, 192, 512, 1088],
        ),
    ];
    for (name, family, widths) in families {
        let encoder = SmpEncoder::from_name(name).unwrap();
        assert!(family(&encoder), "{name}: {encoder:?}");
        assert_eq!(encoder.channels(3), widths, "{name}");
    }
    // A configuration timm has no model for, built by hand: a typed error at load.
    let cfg = TimmMobileNetConfig {
        arch: TimmMobileNetArch::V2,
        minimal: true,
        channel_multiplier: 1.0,
        tf_padding: false,
        depth_multiplier: 1.0,
    };
    let mut unet = SmpUnetConfig::new("tu-mobilenetv2_100", 3, 2).unwrap();
    unet.encoder = SmpEncoder::TimmUniversalMobileNet(cfg);
    named(
        SmpUnet::load(common::gpu(), unet.clone(), &StateDict::synthetic(), "").err(),
        "minimal",
    );
    // timm scales the depth of its MobileNetV2s and V3s only.
    let cfg = TimmMobileNetConfig {
        arch: TimmMobileNetArch::V4ConvSmall,
        minimal: false,
        depth_multiplier: 1.2,
        ..cfg
    };
    unet.encoder = SmpEncoder::TimmUniversalMobileNet(cfg);
    named(
        SmpUnet::load(common::gpu(), unet, &StateDict::synthetic(), "").err(),
        "depth_multiplier",
    );
    for bad in [
        "tu-resnetblur34",
        "tu-resnet34t",
        "tu-seresnet26d",
        "tu-ecaresnet50d_pruned",
        "tu-ecaresnet18",
        "tu-convnext_huge",
        "tu-convnextv2_giant",
        "tu-",
        "tu-resnet",
        "tu-efficientnet_b9",
        "tu-tf_efficientnetv2_rw_m",
        "tu-tf_mixnet_xl",
        "tu-mixnet_xs",
        "tu-tf_mnasnet_100",
        "tu-mnasnet_200",
        "tu-fbnetv3_a",
        "tu-tinynet_f",
        "tu-mobilenetv4_hybrid_medium",
        "tu-repvgg_d2se",
        "tu-mobilenetv4_conv_aa_medium",
        "tu-mobilenetv4_conv_blur_medium",
        "tu-tf_mobilenetv4_conv_small",
        "tu-mobilenetv4_conv_medium_075",
        "tu-tf_efficientnetv2_rw_s",
        "tu-efficientnetv2_b0",
        "tu-tf_efficientnet_cc_b0_4e",
        "tu-efficientnet_b3_pruned",
        "tu-tf_efficientnet_lite5",
        "tu-efficientnet_lite5",
        "tu-mobilenetv3_small_150d",
        "tu-tf_mobilenetv3_rw",
        "tu-lcnet_200",
        "tu-mobilenetv1_050",
        "tu-lcnetv2_base",
        "tu-tf_mobilenetv3_small_050",
        "tu-mobilenetv3_large_minimal_100",
        "tu-mobilenetv2_130d",
        "tu-tf_mobilenetv2_100",
        "timm-mobilenetv3_small_050",
        "timm-regnetx_640",
        "tu-regnetz_040",
        "timm-resnest50d_2s4x40d",
        "timm-gernet_xl",
        "tu-convnextv2_xlarge",
        "tu-gernet_xs",
        "tu-res2net50_26w_5s",
    ] {
        named(SmpEncoder::from_name(bad).err(), "encoder_name");
    }
    // timm's Res2Nets by their `tu-` names and smp's deprecated `timm-` ones: blocks,
    // `base_width`, cardinality, scale, stem.
    let res2nets = [
        (
            "tu-res2net50_26w_4s",
            [3, 4, 6, 3],
            (1, 26),
            4,
            ResNetStem::Standard,
        ),
        (
            "timm-res2net50_26w_4s",
            [3, 4, 6, 3],
            (1, 26),
            4,
            ResNetStem::Standard,
        ),
        (
            "timm-res2net101_26w_4s",
            [3, 4, 23, 3],
            (1, 26),
            4,
            ResNetStem::Standard,
        ),
        (
            "timm-res2net50_26w_6s",
            [3, 4, 6, 3],
            (1, 26),
            6,
            ResNetStem::Standard,
        ),
        (
            "timm-res2net50_26w_8s",
            [3, 4, 6, 3],
            (1, 26),
            8,
            ResNetStem::Standard,
        ),
        (
            "timm-res2net50_48w_2s",
            [3, 4, 6, 3],
            (1, 48),
            2,
            ResNetStem::Standard,
        ),
        (
            "timm-res2net50_14w_8s",
            [3, 4, 6, 3],
            (1, 14),
            8,
            ResNetStem::Standard,
        ),
        (
            "timm-res2next50",
            [3, 4, 6, 3],
            (8, 4),
            4,
            ResNetStem::Standard,
        ),
        ("tu-res2net50d", [3, 4, 6, 3], (1, 26), 4, deep),
        ("tu-res2net101d", [3, 4, 23, 3], (1, 26), 4, deep),
    ];
    for (name, layers, groups, scale, stem) in res2nets {
        let r = &timm_resnet(name);
        let got = (
            r.layers,
            (r.groups, r.width_per_group),
            r.bottleneck_kind,
            r.stem,
        );
        let kind = BottleneckKind::Res2Net { scale };
        assert_eq!(got, (layers, groups, kind, stem), "{name}");
        assert_eq!(r.avg_down, name.ends_with('d'), "{name}");
    }
    named(
        SmpEncoder::from_name("timm-res2net50_26w_5s").err(),
        "encoder_name",
    );
    // timm's ResNeSts: blocks, stem (deep, `avg_down`), radix, groups and where the
    // strided blocks average.
    let wide = ResNetStem::Deep(64);
    for (name, layers, stem) in [
        ("timm-resnest14d", [1; 4], deep),
        ("tu-resnest26d", [2; 4], deep),
        ("timm-resnest50d", [3, 4, 6, 3], deep),
        ("timm-resnest101e", [3, 4, 23, 3], wide),
        ("tu-resnest200e", [3, 24, 36, 3], wide),
        ("timm-resnest269e", [3, 30, 48, 8], wide),
    ] {
        let r = &timm_resnet(name);
        let kind = BottleneckKind::SplitAttention {
            radix: 2,
            avd_first: false,
        };
        let got = (r.layers, r.stem, r.avg_down, r.bottleneck_kind);
        assert_eq!(got, (layers, stem, true, kind), "{name}");
    }
    for (name, radix, groups, width) in [
        ("timm-resnest50d_4s2x40d", 4, 2, 40),
        ("tu-resnest50d_1s4x24d", 1, 4, 24),
    ] {
        let r = &timm_resnet(name);
        let kind = BottleneckKind::SplitAttention {
            radix,
            avd_first: true,
        };
        let got = (
            r.layers,
            r.stem,
            r.bottleneck_kind,
            r.groups,
            r.width_per_group,
        );
        assert_eq!(got, ([3, 4, 6, 3], deep, kind, groups, width), "{name}");
    }
    // A deep stem too narrow to build, Res2Net's splits in basic blocks or of scale 0,
    // split attention of a radix past 8, a convolutional stem pool with anti-aliasing, a
    // squeeze-and-excitation reduction of 0: typed errors naming them.
    let sd = StateDict::synthetic();
    let resnet18 = ResNetConfig::resnet18();
    for (cfg, name) in [
        (
            resnet18.bottleneck_kind(BottleneckKind::Res2Net { scale: 4 }),
            "bottleneck_kind",
        ),
        (
            ResNetConfig::resnet50().bottleneck_kind(BottleneckKind::Res2Net { scale: 0 }),
            "scale",
        ),
        (
            ResNetConfig::resnet50().bottleneck_kind(BottleneckKind::SplitAttention {
                radix: 9,
                avd_first: false,
            }),
            "radix",
        ),
        (resnet18.stem(ResNetStem::Deep(0)), "stem"),
        (resnet18.stem(ResNetStem::DeepTiered(2)), "stem"),
        (
            resnet18
                .replace_stem_pool(true)
                .anti_alias(Some(AntiAlias::BlurPool)),
            "replace_stem_pool",
        ),
        (
            resnet18.attn_layer(Some(ResNetAttention::SqueezeExcitation { reduction: 0 })),
            "attn_layer",
        ),
    ] {
        named(
            ResNetFeatures::load(common::gpu(), cfg, &sd, "").err(),
            name,
        );
    }
}
