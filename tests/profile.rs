//! The per-dispatch profiler: timestamp queries on lavapipe, the synchronised fallback
//! when they are turned off; profiling changes the timing, not the results.

mod common;

use segblocks::networks::{SelfieModel, SelfieSegmentation};
use segblocks::profile::ProfileMethod;
use segblocks::{Error, Gpu, GpuOptions, StateDict};

const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/models/selfie_segmentation/model.safetensors"
);

fn profile_selfie(gpu: &Gpu) -> segblocks::profile::Profile {
    let net = SelfieSegmentation::load(
        gpu,
        SelfieModel::Square,
        &StateDict::load(MODEL).unwrap(),
        "",
    )
    .unwrap();
    let x = common::random4(&mut common::rng(3), [1, 3, 128, 128]);
    let xt = gpu.upload(x.view()).unwrap();
    // Unprofiled, for the result.
    let mut rec = gpu.recorder();
    let y = net.forward(&mut rec, &xt).unwrap();
    let want = rec.download(&y).unwrap();
    let mut rec = gpu.recorder();
    rec.enable_profiling().unwrap();
    let y = net.forward(&mut rec, &xt).unwrap();
    let dispatches = rec.dispatch_count();
    let profile = rec.profile().unwrap();
    assert_eq!(gpu.download(&y).unwrap(), want);
    assert_eq!(profile.dispatches.len(), dispatches);
    assert!(profile
        .dispatches
        .iter()
        .all(|d| d.ms >= 0.0 && !d.kernel.is_empty()));
    assert!(profile.total_ms() > 0.0);
    let top = profile.top(5);
    assert_eq!(top.len(), 5);
    assert!(top.windows(2).all(|w| w[0].ms >= w[1].ms));
    eprintln!("{profile}");
    profile
}

#[test]
fn timestamps_time_every_dispatch() {
    let gpu = Gpu::new().unwrap();
    let profile = profile_selfie(&gpu);
    if gpu.adapter_info().backend == segblocks::wgpu::Backend::Vulkan {
        // lavapipe has compute timestamps.
        assert_eq!(profile.method, ProfileMethod::Timestamps);
        // Device times lie within the submission's wall time.
        assert!(
            profile.total_ms() <= profile.wall_ms * 1.05 + 0.5,
            "{profile}"
        );
    }
}

#[test]
fn without_timestamps_the_fallback_synchronises() {
    let gpu = Gpu::with_options(GpuOptions {
        timestamp_queries: Some(false),
        ..GpuOptions::default()
    })
    .unwrap();
    let profile = profile_selfie(&gpu);
    assert_eq!(profile.method, ProfileMethod::Synchronised);
}

#[test]
fn profiling_is_asked_for_before_recording() {
    let gpu = common::gpu();
    let x = gpu
        .upload(common::random4(&mut common::rng(4), [1, 4, 8, 8]).view())
        .unwrap();
    let mut rec = gpu.recorder();
    segblocks::ops::copy::copy(&mut rec, &x).unwrap();
    assert!(matches!(
        rec.enable_profiling(),
        Err(Error::InvalidParam {
            name: "profiling",
            ..
        })
    ));
    assert!(matches!(
        rec.profile(),
        Err(Error::InvalidParam {
            name: "profiling",
            ..
        })
    ));
}
