//! End-to-end latency of whole networks, one submission per forward pass including the
//! input upload and the readback of the output: torchvision's MobileNetV2 and
//! MobileNetV3-Large feature extractors at 1 x 3 x 224 x 224 (width 1.0, made-up weights:
//! speed does not depend on their values) and MediaPipe's selfie segmentation at
//! 1 x 3 x 256 x 256 (its real weights), and torchvision's LR-ASPP segmentation model on
//! MobileNetV3-Large at 1 x 3 x 256 x 256.
//! Throughput is in FLOPs (2 x MACs from the summary): `elem/s` reads as FLOP/s. Before
//! timing, each network's dispatches and bytes moved per forward are printed next to the
//! minimum (weights, input and output once).
//!
//! The `recording` group times what a forward costs the host alone: recording and
//! submitting the selfie network's dispatches (GPU-class kernels, input resident, the
//! wait for the device untimed), with its bind groups reused from the previous frame
//! (`GpuOptions::max_cached_bind_groups`, the default) and created afresh. `elem/s` reads
//! as dispatches recorded per second.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use segblocks::networks::{
    LrAsppConfig, LrAsppMobileNetV3, MobileNetV2Config, MobileNetV2Features, MobileNetV3Features,
    MobileNetV3FeaturesConfig, SelfieModel, SelfieSegmentation,
};
use segblocks::{DeviceClass, Gpu, GpuOptions, Precision, Recorder, StateDict, Tensor};

/// Prints what one forward of `name` moves (see `segblocks::traffic`).
fn report(
    gpu: &Gpu,
    name: &str,
    x: &ndarray::Array4<f32>,
    params: u64,
    forward: impl Fn(&mut Recorder<'_>, &Tensor) -> segblocks::Result<Tensor>,
) {
    let xt = gpu.upload(x.view()).unwrap();
    let mut rec = gpu.recorder();
    let y = forward(&mut rec, &xt).unwrap();
    let traffic = rec.traffic();
    rec.submit().unwrap();
    let minimum = gpu.precision().bytes() * (params + x.len() as u64 + y.len() as u64);
    eprintln!(
        "{name}: {} dispatches, {:.2} MB read + {:.2} MB written per forward \
         (minimum {:.2} MB: {:.1}x)",
        traffic.dispatch_count(),
        traffic.read() as f64 / 1e6,
        traffic.written() as f64 / 1e6,
        minimum as f64 / 1e6,
        (traffic.read() + traffic.written()) as f64 / minimum as f64
    );
}

/// The report with the kernels a GPU gets (fused inverted residuals, see
/// `ops::inverted_residual::select_kernel`), from a context of that class: the dispatch and
/// byte counts a GPU user sees, which lavapipe (a CPU adapter) does not run by default.
fn report_gpu_class<M>(
    name: &str,
    x: &ndarray::Array4<f32>,
    params: u64,
    load: impl Fn(&Gpu) -> M,
    forward: impl Fn(&M, &mut Recorder<'_>, &Tensor) -> segblocks::Result<Tensor>,
) {
    for precision in [Precision::F32, Precision::F16] {
        let gpu = Gpu::with_options(GpuOptions {
            device_class: Some(DeviceClass::Gpu),
            precision,
            ..GpuOptions::default()
        })
        .unwrap();
        let net = load(&gpu);
        report(
            &gpu,
            &format!("{name} (GPU-class kernels, {precision:?})"),
            x,
            params,
            |r, x| forward(&net, r, x),
        );
    }
}

/// A context that stores tensors and weights in f16 (`Precision::F16`).
fn half() -> Gpu {
    Gpu::with_options(GpuOptions {
        precision: Precision::F16,
        ..GpuOptions::default()
    })
    .unwrap()
}

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
    report(
        &gpu,
        "mobilenet_v2.features",
        &x,
        summary.total_params(),
        |r, x| net.forward(r, x),
    );
    report_gpu_class(
        "mobilenet_v2.features",
        &x,
        summary.total_params(),
        |g| {
            let cfg = MobileNetV2Config::torchvision();
            MobileNetV2Features::load(g, cfg, &StateDict::synthetic(), "").unwrap()
        },
        |n, r, x| n.forward(r, x),
    );
    g.throughput(Throughput::Elements(2 * summary.total_macs()));
    g.bench_function("mobilenet_v2_features_224", |b| {
        b.iter(|| {
            let xt = gpu.upload(x.view()).unwrap();
            let mut rec = gpu.recorder();
            let y = net.forward(&mut rec, &xt).unwrap();
            rec.download(&y).unwrap()
        })
    });
    let gpu16 = half();
    let net16 = MobileNetV2Features::load(
        &gpu16,
        MobileNetV2Config::torchvision(),
        &StateDict::synthetic(),
        "",
    )
    .unwrap();
    g.bench_function("mobilenet_v2_features_224_f16", |b| {
        b.iter(|| {
            let xt = gpu16.upload(x.view()).unwrap();
            let mut rec = gpu16.recorder();
            let y = net16.forward(&mut rec, &xt).unwrap();
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
    report(
        &gpu,
        "mobilenet_v3_large.features",
        &x,
        summary.total_params(),
        |r, x| v3.forward(r, x),
    );
    report_gpu_class(
        "mobilenet_v3_large.features",
        &x,
        summary.total_params(),
        |g| {
            let cfg = MobileNetV3FeaturesConfig::large();
            MobileNetV3Features::load(g, cfg, &StateDict::synthetic(), "").unwrap()
        },
        |n, r, x| n.forward(r, x),
    );
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
    report(
        &gpu,
        "lraspp_mobilenet_v3_large",
        &seg,
        summary.total_params(),
        |r, x| lraspp.forward(r, x),
    );
    report_gpu_class(
        "lraspp_mobilenet_v3_large",
        &seg,
        summary.total_params(),
        |g| {
            LrAsppMobileNetV3::load(
                g,
                LrAsppConfig::torchvision(21),
                &StateDict::synthetic(),
                "",
            )
            .unwrap()
        },
        |n, r, x| n.forward(r, x),
    );
    g.throughput(Throughput::Elements(2 * summary.total_macs()));
    g.bench_function("lraspp_mobilenet_v3_large_256", |b| {
        b.iter(|| {
            let xt = gpu.upload(seg.view()).unwrap();
            let mut rec = gpu.recorder();
            let y = lraspp.forward(&mut rec, &xt).unwrap();
            rec.download(&y).unwrap()
        })
    });

    let selfie_weights = StateDict::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/selfie_segmentation/model.safetensors"
    ))
    .unwrap();
    let selfie = SelfieSegmentation::load(&gpu, SelfieModel::Square, &selfie_weights, "").unwrap();
    let shape = [1, 3, 256, 256];
    let summary = selfie.summary(shape).unwrap();
    eprintln!(
        "selfie segmentation: {} parameters, {} MACs",
        summary.total_params(),
        summary.total_macs()
    );
    let x = common::input(shape).mapv(|v| 0.5 + 0.5 * v);
    report(
        &gpu,
        "selfie segmentation",
        &x,
        summary.total_params(),
        |r, x| selfie.forward(r, x),
    );
    report_gpu_class(
        "selfie segmentation",
        &x,
        summary.total_params(),
        |g| SelfieSegmentation::load(g, SelfieModel::Square, &selfie_weights, "").unwrap(),
        |n, r, x| n.forward(r, x),
    );
    g.throughput(Throughput::Elements(2 * summary.total_macs()));
    g.bench_function("selfie_segmentation_256", |b| {
        b.iter(|| {
            let xt = gpu.upload(x.view()).unwrap();
            let mut rec = gpu.recorder();
            let y = selfie.forward(&mut rec, &xt).unwrap();
            rec.download(&y).unwrap()
        })
    });
    let gpu16 = half();
    let selfie16 =
        SelfieSegmentation::load(&gpu16, SelfieModel::Square, &selfie_weights, "").unwrap();
    report(
        &gpu16,
        "selfie segmentation (f16)",
        &x,
        summary.total_params(),
        |r, x| selfie16.forward(r, x),
    );
    g.bench_function("selfie_segmentation_256_f16", |b| {
        b.iter(|| {
            let xt = gpu16.upload(x.view()).unwrap();
            let mut rec = gpu16.recorder();
            let y = selfie16.forward(&mut rec, &xt).unwrap();
            rec.download(&y).unwrap()
        })
    });
    g.finish();
    recording(c, &selfie_weights);
}

/// The host's side of a selfie forward: recording and submission, bind groups cached
/// and not (see the module's doc).
fn recording(c: &mut Criterion, weights: &StateDict) {
    let mut g = common::group(c, "recording");
    let shape = [1, 3, 128, 128];
    for (label, max_cached_bind_groups) in [("cached", None), ("uncached", Some(0))] {
        let gpu = Gpu::with_options(GpuOptions {
            device_class: Some(DeviceClass::Gpu),
            max_cached_bind_groups,
            ..GpuOptions::default()
        })
        .unwrap();
        let net = SelfieSegmentation::load(&gpu, SelfieModel::Square, weights, "").unwrap();
        net.prepare(&gpu, shape).unwrap();
        let x = gpu.upload(common::input(shape).view()).unwrap();
        let forward = || {
            let started = std::time::Instant::now();
            let mut rec = gpu.recorder();
            net.forward(&mut rec, &x).unwrap();
            let dispatches = rec.dispatch_count();
            rec.submit().unwrap();
            let host = started.elapsed();
            gpu.device()
                .poll(segblocks::wgpu::PollType::Wait {
                    submission_index: None,
                    timeout: None,
                })
                .unwrap();
            // lavapipe's threads settle before the next recording: they would share the
            // host's cores with it.
            std::thread::sleep(std::time::Duration::from_millis(2));
            (host, dispatches)
        };
        let (_, dispatches) = forward();
        g.throughput(Throughput::Elements(dispatches as u64));
        g.bench_function(format!("selfie_128_gpu_class_{label}"), |b| {
            // The median of the sample's forwards: lavapipe's threads, which share the
            // host's two cores here, make the mean swing by 2x between samples.
            b.iter_custom(|iters| {
                let mut host: Vec<_> = (0..iters).map(|_| forward().0).collect();
                host.sort();
                host[host.len() / 2] * iters as u32
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
