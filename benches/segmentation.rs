//! End-to-end latency of the segmentation networks of issue 16, one submission per
//! forward including the input upload and the output readback, with made-up weights
//! (speed does not depend on their values): torchvision's `fcn_resnet50` and
//! `deeplabv3_resnet50` at 1 x 3 x 160 x 160 (21 classes; 512 is too slow for lavapipe: fcn_resnet50 takes 15 s at 224 there),
//! `deeplabv3_mobilenet_v3_large` at 1 x 3 x 256 x 256, `resnet18`'s features at 1 x 3 x
//! 224 x 224, segmentation_models_pytorch's `Unet("resnet34", classes=2)`,
//! `UnetPlusPlus("resnet34", classes=2)`, `FPN("resnet34",
//! classes=2)` and `DeepLabV3Plus("resnet34", classes=2)` at 160 and
//! `DeepLabV3Plus("mobilenet_v2", encoder_output_stride=8, classes=2)` at 1 x 3 x 256 x 256,
//! `Linknet("resnet34", classes=2)` and `PSPNet("resnet34", classes=2)` at 160,
//! `Segformer("mit_b0", classes=2)` (SegFormer-B0) at 256, transformers' SegFormer-B0 as the
//! Hub's ADE20K model (150 classes) at 512, `MAnet("resnet34", classes=2)` at
//! 160, `Unet` on timm's RegNetY-400MF (`tu-regnety_004`), ResNet-50-D (`tu-resnet50d`),
//! ConvNeXt-Atto (`tu-convnext_atto`), ECA-ResNet-50-D (`tu-ecaresnet50d`), Res2Net-50
//! (`timm-res2net50_26w_4s`), ResNeSt-50-D (`timm-resnest50d`, `timm-resnest50d_4s2x40d`)
//! GENet (`timm-gernet_s`, `tu-gernet_m`), the blur-pooled ResNet-50 (`tu-resnetblur50`) and
//! ConvNeXt-V2-Atto (`tu-convnextv2_atto`), the TensorFlow-padded EfficientNet-B0
//! (`tu-tf_efficientnet_b0`), EfficientNetV2-B0 (`tu-tf_efficientnetv2_b0`), RepVGG-A0
//! (`tu-repvgg_a0`), ResNet-RS-50 (`tu-resnetrs50`) and MixNet-M (`tu-mixnet_m`) at 160 and
//! on its
//! MobileNetV3-Large
//! (`tu-mobilenetv3_large_100`) and MobileNetV4-Conv-Small (`tu-mobilenetv4_conv_small`) at 256,
//! and U-Net (milesial's, 2 classes),
//! SegNet (VGG16-BN, 21 classes) and FCN-8s (21 classes; its 411 MB `fc6` runs as
//! output-channel slices where one storage binding cannot hold it) at 1 x 3 x 160 x 160,
//! U²-Net's `U2NETP` at 320 and `U2NET` at 160 (the first map, as rembg uses it) and
//! MODNet's matte at 256, BiSeNetV2 (19 classes) at 256 x 512, facexlib's face-parsing
//! BiSeNet (19 classes) at 512, Fast-SCNN (19 classes), ENet and ERFNet (20 classes) and
//! PIDNet-S, DDRNet-23-slim, STDC1-Seg, HRNetV2-W18-small-v2 and the same trunk with
//! HRNet-OCR's head (19 classes) at 512 x 1024, and Robust Video Matting (MobileNetV3) on a
//! stream of frames,
//! its recurrent state carried from one to the next on the GPU: 256 x 256 at
//! `downsample_ratio` 1, and 288 x 512 at 0.5 through the deep guided filter.
//! Throughput is in FLOPs (2 x MACs from the summary): `elem/s` reads as FLOP/s.
//! `benches/torch_segmentation.py` times the same networks in PyTorch on the CPU; run both
//! in one session and compare ratios.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use segblocks::blocks::{Architecture, Model};
use segblocks::networks::{
    BiSeNet, BiSeNetConfig, BiSeNetV2, BiSeNetV2Config, ConvNextConfig, ConvNextFeatures, DdrNet,
    DdrNetConfig, DenseNetConfig, DenseNetFeatures, EfficientNetConfig, EfficientNetFeatures, Enet,
    EnetConfig, ErfNet, ErfNetConfig, FastScnn, FastScnnConfig, Fcn8s, Fcn8sConfig, HfSegformer,
    HfSegformerConfig, HrNetOcr, HrNetOcrConfig, HrNetSeg, HrNetSegConfig, MnasNetConfig,
    MnasNetFeatures, ModNet, ModNetConfig, PidNet, PidNetConfig, RegNetConfig, RegNetFeatures,
    ResNetConfig, ResNetFeatures, SegNet, SegNetConfig, SegmentationConfig, SegmentationModel,
    ShuffleNetV2Config, ShuffleNetV2Features, SmpDeepLabV3Plus, SmpDeepLabV3PlusConfig, SmpDpt,
    SmpDptConfig, SmpFpn, SmpFpnConfig, SmpLinknet, SmpLinknetConfig, SmpMAnet, SmpMAnetConfig,
    SmpPan, SmpPanConfig, SmpPspNet, SmpPspNetConfig, SmpSegformer, SmpSegformerConfig, SmpUnet,
    SmpUnetConfig, SmpUperNet, SmpUperNetConfig, StdcSeg, StdcSegConfig, U2Net, U2NetConfig, UNet,
    UNetConfig,
};
use segblocks::networks::{RobustVideoMatting, RvmConfig, RvmMaps, RvmRun};
use segblocks::{Gpu, StateDict};

fn time<A: Architecture>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    gpu: &Gpu,
    name: &str,
    net: &Model<A>,
    shape: [usize; 4],
) {
    let summary = net.summary(shape).unwrap();
    eprintln!(
        "{name}: {:.1} M parameters, {:.2} GMACs at {shape:?}",
        summary.total_params() as f64 / 1e6,
        summary.total_macs() as f64 / 1e9
    );
    let x = common::input(shape);
    g.throughput(Throughput::Elements(2 * summary.total_macs()));
    g.bench_function(name, |b| {
        b.iter(|| {
            let xt = gpu.upload(x.view()).unwrap();
            let mut rec = gpu.recorder();
            let y = net.forward(&mut rec, &xt).unwrap();
            rec.download(&y).unwrap()
        })
    });
}

fn bench(c: &mut Criterion) {
    let gpu = common::gpu();
    let mut g = common::group(c, "segmentation");
    // One forward per sample (seconds each on lavapipe): criterion's linear sampling would
    // run 55.
    g.sampling_mode(criterion::SamplingMode::Flat);
    g.measurement_time(std::time::Duration::from_secs(5));
    let sd = StateDict::synthetic();
    let small = [1, 3, 160, 160];
    let cases = [
        ("fcn_resnet50_160", SegmentationConfig::fcn_resnet50(21)),
        (
            "deeplabv3_resnet50_160",
            SegmentationConfig::deeplabv3_resnet50(21),
        ),
    ];
    for (name, cfg) in cases {
        let net = SegmentationModel::load(&gpu, cfg, &sd, "").unwrap();
        time(&mut g, &gpu, name, &net, small);
    }
    let cfg = SegmentationConfig::deeplabv3_mobilenet_v3_large(21);
    let net = SegmentationModel::load(&gpu, cfg, &sd, "").unwrap();
    time(
        &mut g,
        &gpu,
        "deeplabv3_mobilenet_v3_large_256",
        &net,
        [1, 3, 256, 256],
    );
    // ResNet-18's features (layer4), the smallest ResNet backbone.
    let net = ResNetFeatures::load(&gpu, ResNetConfig::resnet18(), &sd, "").unwrap();
    time(
        &mut g,
        &gpu,
        "resnet18_features_224",
        &net,
        [1, 3, 224, 224],
    );
    // segmentation_models_pytorch's default Unet on ResNet-34.
    let cfg = SmpUnetConfig::new("resnet34", 3, 2).unwrap();
    let net = SmpUnet::load(&gpu, cfg, &sd, "").unwrap();
    time(&mut g, &gpu, "smp_unet_resnet34_160", &net, small);
    let cfg = SmpUnetConfig::unet_plus_plus("resnet34", 3, 2).unwrap();
    let net = SmpUnet::load(&gpu, cfg, &sd, "").unwrap();
    time(&mut g, &gpu, "smp_unetplusplus_resnet34_160", &net, small);
    let cfg = SmpFpnConfig::new("resnet34", 3, 2).unwrap();
    let net = SmpFpn::load(&gpu, cfg, &sd, "").unwrap();
    time(&mut g, &gpu, "smp_fpn_resnet34_160", &net, small);
    // smp's DeepLabV3+ on ResNet-34 (output stride 16, separable ASPP) and its MobileNetV2
    // encoder at output stride 8.
    let cfg = SmpDeepLabV3PlusConfig::new("resnet34", 3, 2).unwrap();
    let net = SmpDeepLabV3Plus::load(&gpu, cfg, &sd, "").unwrap();
    time(&mut g, &gpu, "smp_deeplabv3plus_resnet34_160", &net, small);
    let cfg = SmpDeepLabV3PlusConfig::new("mobilenet_v2", 3, 2)
        .unwrap()
        .encoder_output_stride(8);
    let net = SmpDeepLabV3Plus::load(&gpu, cfg, &sd, "").unwrap();
    time(
        &mut g,
        &gpu,
        "smp_deeplabv3plus_mobilenet_v2_os8_256",
        &net,
        [1, 3, 256, 256],
    );
    let cfg = SmpLinknetConfig::new("resnet34", 3, 2).unwrap();
    let net = SmpLinknet::load(&gpu, cfg, &sd, "").unwrap();
    time(&mut g, &gpu, "smp_linknet_resnet34_160", &net, small);
    let cfg = SmpPspNetConfig::new("resnet34", 3, 2).unwrap();
    let net = SmpPspNet::load(&gpu, cfg, &sd, "").unwrap();
    time(&mut g, &gpu, "smp_pspnet_resnet34_160", &net, small);
    let cfg = SmpUperNetConfig::new("resnet34", 3, 2).unwrap();
    let net = SmpUperNet::load(&gpu, cfg, &sd, "").unwrap();
    time(&mut g, &gpu, "smp_upernet_resnet34_160", &net, small);
    let cfg = SmpSegformerConfig::new("resnet34", 3, 2).unwrap();
    let net = SmpSegformer::load(&gpu, cfg, &sd, "").unwrap();
    time(&mut g, &gpu, "smp_segformer_resnet34_160", &net, small);
    // SegFormer as published: its Mix Transformer B0 encoder (attention over the pixels).
    let cfg = SmpSegformerConfig::new("mit_b0", 3, 2).unwrap();
    let net = SmpSegformer::load(&gpu, cfg, &sd, "").unwrap();
    time(
        &mut g,
        &gpu,
        "smp_segformer_mit_b0_256",
        &net,
        [1, 3, 256, 256],
    );
    // transformers' SegFormer-B0 as the Hub's ADE20K model (150 classes) at its 512 x 512,
    // the quarter-size logits.
    let cfg = HfSegformerConfig::b(0, 150).unwrap();
    let net = HfSegformer::load(&gpu, cfg, &sd, "").unwrap();
    time(
        &mut g,
        &gpu,
        "hf_segformer_b0_ade_512",
        &net,
        [1, 3, 512, 512],
    );
    // DPT on timm's ViT-Tiny/16 at its 224 x 224 (attention over 197 tokens, smp's default
    // decoder widths).
    let cfg = SmpDptConfig::new("tu-vit_tiny_patch16_224", 3, 2).unwrap();
    let net = SmpDpt::load(&gpu, cfg, &sd, "").unwrap();
    time(&mut g, &gpu, "smp_dpt_vit_tiny_224", &net, [1, 3, 224, 224]);
    let cfg = SmpMAnetConfig::new("resnet34", 3, 2).unwrap();
    let net = SmpMAnet::load(&gpu, cfg, &sd, "").unwrap();
    time(&mut g, &gpu, "smp_manet_resnet34_160", &net, small);
    let cfg = SmpPanConfig::new("resnet34", 3, 2).unwrap();
    let net = SmpPan::load(&gpu, cfg, &sd, "").unwrap();
    time(&mut g, &gpu, "smp_pan_resnet34_160", &net, small);
    // MobileOne's trained branches folded at load; timm's EfficientNet-B0; timm's
    // Selective Kernel ResNet-18; the Dual Path Network DPN-68.
    for encoder in [
        "mobileone_s0",
        "timm-efficientnet-b0",
        "timm-skresnet18",
        "dpn68",
        "tu-regnety_004",
        "tu-resnet50d",
        "tu-convnext_atto",
        "tu-ecaresnet50d",
        "timm-res2net50_26w_4s",
        "timm-resnest50d",
        "timm-resnest50d_4s2x40d",
        "timm-gernet_s",
        "tu-gernet_m",
        "tu-resnetblur50",
        "tu-convnextv2_atto",
        "tu-tf_efficientnet_b0",
        "tu-tf_efficientnetv2_b0",
        "tu-repvgg_a0",
        "tu-resnetrs50",
        "tu-mixnet_m",
        "tu-hrnet_w18_small",
        "tu-xception41",
    ] {
        let cfg = SmpUnetConfig::new(encoder, 3, 2).unwrap();
        let net = SmpUnet::load(&gpu, cfg, &sd, "").unwrap();
        let name = format!("smp_unet_{}_160", encoder.replace('-', "_"));
        time(&mut g, &gpu, &name, &net, small);
    }
    let cfg = SmpUnetConfig::new("se_resnext50_32x4d", 3, 2).unwrap();
    let net = SmpUnet::load(&gpu, cfg, &sd, "").unwrap();
    time(&mut g, &gpu, "smp_unet_se_resnext50_32x4d_160", &net, small);
    // EfficientNet-B0: torchvision's features, and smp's Unet on its efficientnet-b0.
    let cfg = EfficientNetConfig::torchvision("efficientnet_b0").unwrap();
    let net = EfficientNetFeatures::load(&gpu, cfg, &sd, "").unwrap();
    time(
        &mut g,
        &gpu,
        "efficientnet_b0_features_224",
        &net,
        [1, 3, 224, 224],
    );
    let cfg = RegNetConfig::torchvision("regnet_y_400mf").unwrap();
    let net = RegNetFeatures::load(&gpu, cfg, &sd, "").unwrap();
    time(
        &mut g,
        &gpu,
        "regnet_y_400mf_features_224",
        &net,
        [1, 3, 224, 224],
    );
    let cfg = MnasNetConfig::torchvision("mnasnet1_0").unwrap();
    let net = MnasNetFeatures::load(&gpu, cfg, &sd, "").unwrap();
    time(
        &mut g,
        &gpu,
        "mnasnet1_0_features_224",
        &net,
        [1, 3, 224, 224],
    );
    let cfg = ShuffleNetV2Config::torchvision("shufflenet_v2_x1_0").unwrap();
    let net = ShuffleNetV2Features::load(&gpu, cfg, &sd, "").unwrap();
    time(
        &mut g,
        &gpu,
        "shufflenet_v2_x1_0_features_224",
        &net,
        [1, 3, 224, 224],
    );
    let cfg = DenseNetConfig::torchvision("densenet121").unwrap();
    let net = DenseNetFeatures::load(&gpu, cfg, &sd, "").unwrap();
    time(
        &mut g,
        &gpu,
        "densenet121_features_224",
        &net,
        [1, 3, 224, 224],
    );
    let cfg = ConvNextConfig::torchvision("convnext_tiny").unwrap();
    let net = ConvNextFeatures::load(&gpu, cfg, &sd, "").unwrap();
    time(
        &mut g,
        &gpu,
        "convnext_tiny_features_224",
        &net,
        [1, 3, 224, 224],
    );
    let cfg = SmpUnetConfig::new("efficientnet-b0", 3, 2).unwrap();
    let net = SmpUnet::load(&gpu, cfg, &sd, "").unwrap();
    time(
        &mut g,
        &gpu,
        "smp_unet_efficientnet_b0_256",
        &net,
        [1, 3, 256, 256],
    );
    // Real-time video models: smp's Unet on timm's MobileNetV3-Large and MobileNetV4-Conv-Small.
    for encoder in ["tu-mobilenetv3_large_100", "tu-mobilenetv4_conv_small"] {
        let cfg = SmpUnetConfig::new(encoder, 3, 2).unwrap();
        let net = SmpUnet::load(&gpu, cfg, &sd, "").unwrap();
        let name = format!("smp_unet_{}_256", encoder.replace('-', "_"));
        time(&mut g, &gpu, &name, &net, [1, 3, 256, 256]);
    }
    let net = UNet::load(&gpu, UNetConfig::new(3, 2), &sd, "").unwrap();
    time(&mut g, &gpu, "unet_160", &net, small);
    let net = SegNet::load(&gpu, SegNetConfig::vgg16_bn(3, 21), &sd, "").unwrap();
    time(&mut g, &gpu, "segnet_vgg16_bn_160", &net, small);
    let net = Fcn8s::load(&gpu, Fcn8sConfig::new(21), &sd, "").unwrap();
    time(&mut g, &gpu, "fcn8s_160", &net, small);
    // Background removal as rembg runs it (its first map only): U2NETP at its 320 x 320,
    // the full U2NET at 160 (4x fewer FLOPs than at 320).
    let u2netp = U2NetConfig::u2netp(3, 1).side_outputs(false);
    let net = U2Net::load(&gpu, u2netp, &sd, "").unwrap();
    time(&mut g, &gpu, "u2netp_320", &net, [1, 3, 320, 320]);
    let u2net = U2NetConfig::u2net(3, 1).side_outputs(false);
    let net = U2Net::load(&gpu, u2net, &sd, "").unwrap();
    time(&mut g, &gpu, "u2net_160", &net, small);
    // Portrait matting for video: MODNet's matte at 256 x 256.
    let net = ModNet::load(&gpu, ModNetConfig::new(), &sd, "").unwrap();
    time(&mut g, &gpu, "modnet_256", &net, [1, 3, 256, 256]);
    // Real-time semantic segmentation: BiSeNetV2 with Cityscapes' 19 classes at a quarter
    // of its 1024 x 2048 frames (half each side: 256 x 512 is 1/16 of the pixels).
    let net = BiSeNetV2::load(&gpu, BiSeNetV2Config::new(19), &sd, "").unwrap();
    time(&mut g, &gpu, "bisenetv2_256x512", &net, [1, 3, 256, 512]);
    // Face parsing as facexlib runs it (GFPGAN, CodeFormer): BiSeNet, 19 classes, 512 x 512.
    let net = BiSeNet::load(&gpu, BiSeNetConfig::new(19), &sd, "").unwrap();
    time(&mut g, &gpu, "bisenet_face_512", &net, [1, 3, 512, 512]);
    // Fast-SCNN with Cityscapes' 19 classes at half its frames' size.
    let net = FastScnn::load(&gpu, FastScnnConfig::new(19), &sd, "").unwrap();
    time(&mut g, &gpu, "fast_scnn_512x1024", &net, [1, 3, 512, 1024]);
    // ENet as PyTorch-ENet's Cityscapes checkpoint runs (20 classes, 512 x 1024 frames).
    let net = Enet::load(&gpu, EnetConfig::new(20), &sd, "").unwrap();
    time(&mut g, &gpu, "enet_512x1024", &net, [1, 3, 512, 1024]);
    // ERFNet as erfnet_pytorch's Cityscapes checkpoint runs (20 classes, 512 x 1024).
    let net = ErfNet::load(&gpu, ErfNetConfig::new(20), &sd, "").unwrap();
    time(&mut g, &gpu, "erfnet_512x1024", &net, [1, 3, 512, 1024]);
    // PIDNet-S as its Cityscapes checkpoint evaluates (19 classes, the logits alone) at
    // 512 x 1024.
    let net = PidNet::load(&gpu, PidNetConfig::pidnet_s(19), &sd, "").unwrap();
    time(&mut g, &gpu, "pidnet_s_512x1024", &net, [1, 3, 512, 1024]);
    // DDRNet-23-slim as its Cityscapes checkpoint evaluates (19 classes) at 512 x 1024.
    let net = DdrNet::load(&gpu, DdrNetConfig::ddrnet_23_slim(19), &sd, "").unwrap();
    time(
        &mut g,
        &gpu,
        "ddrnet_23_slim_512x1024",
        &net,
        [1, 3, 512, 1024],
    );
    // STDC1-Seg as its Cityscapes checkpoint evaluates (19 classes; the two auxiliary
    // heads run too, as in PyTorch's forward) at 512 x 1024, the paper's STDC1-Seg50.
    let net = StdcSeg::load(&gpu, StdcSegConfig::stdc1(19), &sd, "").unwrap();
    time(&mut g, &gpu, "stdc1_seg_512x1024", &net, [1, 3, 512, 1024]);
    // HRNetV2-W18-small-v2 as HRNet-Semantic-Segmentation's Cityscapes model (19 classes,
    // the quarter-size logits its forward returns) at 512 x 1024.
    let cfg = HrNetSegConfig::from_name("hrnet_w18_small_v2", 19).unwrap();
    let net = HrNetSeg::load(&gpu, cfg, &sd, "").unwrap();
    time(
        &mut g,
        &gpu,
        "hrnet_w18_small_v2_seg_512x1024",
        &net,
        [1, 3, 512, 1024],
    );
    // HRNet-OCR with the same trunk and the published head (512 channels, 256-channel
    // attention), the logits alone, at 512 x 1024.
    let cfg = HrNetOcrConfig::from_name("hrnet_w18_small_v2", 19).unwrap();
    let net = HrNetOcr::load(&gpu, cfg, &sd, "").unwrap();
    time(
        &mut g,
        &gpu,
        "hrnet_w18_small_v2_ocr_512x1024",
        &net,
        [1, 3, 512, 1024],
    );
    // Video matting: each frame with the previous frame's state, the foreground and alpha
    // read back.
    let net = RobustVideoMatting::load(&gpu, RvmConfig::mobilenetv3(), &sd, "").unwrap();
    for (name, shape, ratio) in [
        ("rvm_mobilenetv3_256", [1, 3, 256, 256], 1.0),
        ("rvm_mobilenetv3_288x512_half", [1, 3, 288, 512], 0.5),
    ] {
        let run = RvmRun::default().downsample_ratio(ratio);
        let summary = net.summary(shape, run).unwrap();
        eprintln!(
            "{name}: {:.1} M parameters, {:.2} GMACs at {shape:?}",
            summary.total_params() as f64 / 1e6,
            summary.total_macs() as f64 / 1e9
        );
        let x = common::input(shape).mapv(|v| v.abs().min(1.0));
        let xt = gpu.upload(x.view()).unwrap();
        let mut rec = gpu.recorder();
        net.forward(&mut rec, &xt, None, run).unwrap();
        let traffic = rec.traffic();
        rec.submit().unwrap();
        eprintln!(
            "{name}: {} passes ({} compute dispatches), {:.1} MB read + {:.1} MB written",
            traffic.dispatches.len(),
            traffic.dispatch_count(),
            traffic.read() as f64 / 1e6,
            traffic.written() as f64 / 1e6
        );
        let mut state = None;
        g.throughput(Throughput::Elements(2 * summary.total_macs()));
        g.bench_function(name, |b| {
            b.iter(|| {
                let xt = gpu.upload(x.view()).unwrap();
                let mut rec = gpu.recorder();
                let out = net.forward(&mut rec, &xt, state.as_ref(), run).unwrap();
                let RvmMaps::Matting { fgr, pha } = &out.maps else {
                    unreachable!("the matting pass")
                };
                let maps = rec.download_many(&[fgr, pha]).unwrap();
                state = Some(out.state);
                maps
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
