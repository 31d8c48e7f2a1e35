//! End-to-end latency of whole networks, one submission per forward pass including the
//! input upload and the readback of the output: torchvision's MobileNetV2 and
//! MobileNetV3-Large feature extractors at 1 x 3 x 224 x 224 (width 1.0, made-up weights:
//! speed does not depend on their values) and MediaPipe's selfie segmentation at
//! 1 x 3 x 256 x 256 (its real weights), and torchvision's LR-ASPP segmentation model on
//! MobileNetV3-Large at 1 x 3 x 256 x 256.
//! Throughput is in FLOPs (2 x MACs from the summary): `elem/s` reads as FLOP/s.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use segblocks::networks::{
    LrAsppConfig, LrAsppMobileNetV3, MobileNetV2Config, MobileNetV2Features, MobileNetV3Features,
    MobileNetV3FeaturesConfig, SelfieModel, SelfieSegmentation,
};
use segblocks::StateDict;

fn bench(c: &mut Criterion) {
    let gpu = common::gpu();
    let mut g = common::group(c, "blocks");
    let net = MobileNetV2Features::load(
        &gpu,
        MobileNetV2Config::torchvision(),
        &StateDict::synthetic(),
        "",
    )
    .unwrap();
    let shape = [1, 3, 224, 224];
    let summary = net.summary(shape).unwrap();
    eprintln!(
        "mobilenet_v2.features: {} parameters, {} MACs",
        summary.total_params(),
        summary.total_macs()
    );
    let x = common::input(shape);
    g.throughput(Throughput::Elements(2 * summary.total_macs()));
    g.bench_function("mobilenet_v2_features_224", |b| {
        b.iter(|| {
            let xt = gpu.upload(x.view()).unwrap();
            let mut rec = gpu.recorder();
            let y = net.forward(&mut rec, &xt).unwrap();
            rec.download(&y).unwrap()
        })
    });

    let v3 = MobileNetV3Features::load(
        &gpu,
        MobileNetV3FeaturesConfig::large(),
        &StateDict::synthetic(),
        "",
    )
    .unwrap();
    let summary = v3.summary(shape).unwrap();
    g.throughput(Throughput::Elements(2 * summary.total_macs()));
    g.bench_function("mobilenet_v3_large_features_224", |b| {
        b.iter(|| {
            let xt = gpu.upload(x.view()).unwrap();
            let mut rec = gpu.recorder();
            let y = v3.forward(&mut rec, &xt).unwrap();
            rec.download(&y).unwrap()
        })
    });

    // torchvision's lraspp_mobilenet_v3_large (21 classes) on a 1 x 3 x 256 x 256 image.
    let lraspp = LrAsppMobileNetV3::load(
        &gpu,
        LrAsppConfig::torchvision(21),
        &StateDict::synthetic(),
        "",
    )
    .unwrap();
    let seg = common::input([1, 3, 256, 256]);
    let summary = lraspp.summary([1, 3, 256, 256]).unwrap();
    g.throughput(Throughput::Elements(2 * summary.total_macs()));
    g.bench_function("lraspp_mobilenet_v3_large_256", |b| {
        b.iter(|| {
            let xt = gpu.upload(seg.view()).unwrap();
            let mut rec = gpu.recorder();
            let y = lraspp.forward(&mut rec, &xt).unwrap();
            rec.download(&y).unwrap()
        })
    });

    let selfie = SelfieSegmentation::load(
        &gpu,
        SelfieModel::Square,
        &StateDict::load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/models/selfie_segmentation/model.safetensors"
        ))
        .unwrap(),
        "",
    )
    .unwrap();
    let shape = [1, 3, 256, 256];
    let summary = selfie.summary(shape).unwrap();
    eprintln!(
        "selfie segmentation: {} parameters, {} MACs",
        summary.total_params(),
        summary.total_macs()
    );
    let x = common::input(shape).mapv(|v| 0.5 + 0.5 * v);
    g.throughput(Throughput::Elements(2 * summary.total_macs()));
    g.bench_function("selfie_segmentation_256", |b| {
        b.iter(|| {
            let xt = gpu.upload(x.view()).unwrap();
            let mut rec = gpu.recorder();
            let y = selfie.forward(&mut rec, &xt).unwrap();
            rec.download(&y).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
