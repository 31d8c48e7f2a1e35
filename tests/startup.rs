//! Starting fast: a persistent pipeline cache (checked, never trusted blindly), and no
//! pipeline compiled twice when the input size changes.

mod common;

use segblocks::networks::{SelfieModel, SelfieSegmentation};
use segblocks::{DeviceClass, Gpu, GpuOptions, StateDict};

const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/models/selfie_segmentation/model.safetensors"
);

fn forward(gpu: &Gpu, net: &SelfieSegmentation, shape: [usize; 4]) {
    let x = gpu
        .upload(common::random4(&mut common::rng(1), shape).view())
        .unwrap();
    let mut rec = gpu.recorder();
    let y = net.forward(&mut rec, &x).unwrap();
    rec.download(&y).unwrap();
}

#[test]
fn a_second_input_size_compiles_only_what_it_lacks() {
    // Each class of kernels in a context of its own (its pipeline count alone).
    for class in [DeviceClass::Cpu, DeviceClass::Gpu] {
        let gpu = Gpu::with_options(GpuOptions {
            device_class: Some(class),
            ..GpuOptions::default()
        })
        .unwrap();
        let sd = StateDict::load(MODEL).unwrap();
        let net = SelfieSegmentation::load(&gpu, SelfieModel::Square, &sd, "").unwrap();
        forward(&gpu, &net, [1, 3, 256, 256]);
        let first = gpu.pipelines_created();
        forward(&gpu, &net, [1, 3, 192, 320]);
        let second = gpu.pipelines_created() - first;
        // Both sizes again: nothing new.
        let before = gpu.pipelines_created();
        forward(&gpu, &net, [1, 3, 256, 256]);
        forward(&gpu, &net, [1, 3, 192, 320]);
        assert_eq!(gpu.pipelines_created(), before);
        eprintln!("{class:?} class: 256x256: {first} pipelines; 192x320 added {second}");
        // Sizes are uniforms, so the second size compiles nothing it has: at most a variant
        // whose register tile follows the map's width (on CPU adapters the depthwise
        // strips, whose pixels per invocation are chosen to divide the row). Fused
        // inverted residuals' tiles follow the map too: with every block fused
        // (`fuse_expanding_blocks`) an H200 compiled 5 new pipelines for the second size.
        let limit = match class {
            DeviceClass::Cpu => 2,
            DeviceClass::Gpu => 0,
        };
        assert!(second <= limit, "{class:?} class: {second} new of {first}");
    }
}

#[test]
fn the_pipeline_cache_persists_and_ignores_bad_files() {
    let dir = std::env::temp_dir().join(format!("segblocks-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let options = || GpuOptions {
        pipeline_cache_dir: Some(dir.clone()),
        ..GpuOptions::default()
    };
    let run = |gpu: &Gpu| {
        let x = gpu
            .upload(common::random4(&mut common::rng(2), [1, 4, 8, 8]).view())
            .unwrap();
        let mut rec = gpu.recorder();
        let y = segblocks::ops::copy::copy(&mut rec, &x).unwrap();
        rec.download(&y).unwrap()
    };
    let gpu = Gpu::with_options(options()).unwrap();
    if !gpu.has_pipeline_cache() {
        // GL and adapters without VK pipeline caches: nothing to persist, nothing written.
        run(&gpu);
        assert!(!gpu.save_pipeline_cache().unwrap());
        eprintln!(
            "{:?}: no pipeline cache support",
            gpu.adapter_info().backend
        );
        return;
    }
    let want = run(&gpu);
    assert!(
        gpu.save_pipeline_cache().unwrap(),
        "a new pipeline was compiled"
    );
    assert!(!gpu.save_pipeline_cache().unwrap(), "nothing new since");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let file = std::fs::read(&files[0]).unwrap();
    assert_eq!(&file[..8], b"SEGBPC01");
    drop(gpu);
    // Loaded again; then a truncated, a corrupt and a foreign file are ignored.
    let corrupt = {
        let mut f = file.clone();
        let last = f.len() - 1;
        f[last] ^= 0xff;
        f
    };
    for bytes in [
        file.clone(),
        file[..file.len() / 2].to_vec(),
        corrupt,
        b"not a cache".to_vec(),
    ] {
        std::fs::write(&files[0], &bytes).unwrap();
        let gpu = Gpu::with_options(options()).unwrap();
        assert!(gpu.has_pipeline_cache());
        assert_eq!(run(&gpu), want);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn prepare_compiles_every_pipeline_of_a_forward_up_front() {
    let gpu = Gpu::new().unwrap();
    let sd = StateDict::load(MODEL).unwrap();
    let net = SelfieSegmentation::load(&gpu, SelfieModel::Square, &sd, "").unwrap();
    let compiled = net.prepare(&gpu, [1, 3, 128, 160]).unwrap();
    assert_eq!(compiled, gpu.pipelines_created());
    assert!(compiled > 10, "{compiled}");
    // The forward compiles nothing more, and its result is the reference's.
    let x = common::random4(&mut common::rng(4), [1, 3, 128, 160]);
    let mut rec = gpu.recorder();
    let y = net
        .forward(&mut rec, &gpu.upload(x.view()).unwrap())
        .unwrap();
    let got = rec.download(&y).unwrap();
    assert_eq!(gpu.pipelines_created(), compiled);
    let want = net.reference(x.view()).unwrap();
    let err = got
        .iter()
        .zip(want.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(err < 1e-4, "{err}");
    // Preparing again compiles nothing; another size only what its kernels lack (tiles
    // chosen by width), after which its forward compiles nothing. Bad shapes are refused.
    assert_eq!(net.prepare(&gpu, [1, 3, 128, 160]).unwrap(), 0);
    let more = net.prepare(&gpu, [2, 3, 64, 64]).unwrap();
    let before = gpu.pipelines_created();
    assert_eq!(before, compiled + more);
    let x = gpu
        .upload(ndarray::Array4::zeros([2, 3, 64, 64]).view())
        .unwrap();
    let mut rec = gpu.recorder();
    let y = net.forward(&mut rec, &x).unwrap();
    rec.download(&y).unwrap();
    assert_eq!(gpu.pipelines_created(), before);
    assert!(net.prepare(&gpu, [1, 4, 64, 64]).is_err());
}

/// Kernel parameters in uniform buffers, in storage buffers for the kernels Mesa's
/// software drivers recompile (the default), or in storage buffers for every kernel: the
/// same mask each way.
#[test]
fn parameters_in_storage_buffers_give_the_same_mask() {
    let sd = StateDict::load(MODEL).unwrap();
    let x = common::random4(&mut common::rng(2), [1, 3, 256, 256]).mapv(|v| 0.5 + 0.5 * v);
    let masks: Vec<_> = [Some(false), None, Some(true)]
        .into_iter()
        .map(|params_in_storage| {
            let gpu = Gpu::with_options(GpuOptions {
                params_in_storage,
                ..GpuOptions::default()
            })
            .unwrap();
            let net = SelfieSegmentation::load(&gpu, SelfieModel::Square, &sd, "").unwrap();
            let mut rec = gpu.recorder();
            let y = net
                .forward(&mut rec, &gpu.upload(x.view()).unwrap())
                .unwrap();
            rec.download(&y).unwrap()
        })
        .collect();
    for m in &masks[1..] {
        let worst = m
            .iter()
            .zip(masks[0].iter())
            .fold(0f32, |w, (a, b)| w.max((a - b).abs()));
        assert!(worst <= 1e-6, "{worst}");
    }
}

#[test]
fn the_next_frame_reuses_every_bind_group() {
    for class in [DeviceClass::Cpu, DeviceClass::Gpu] {
        let context = |max_cached_bind_groups| {
            Gpu::with_options(GpuOptions {
                device_class: Some(class),
                max_cached_bind_groups,
                ..GpuOptions::default()
            })
            .unwrap()
        };
        let (cached, uncached) = (context(None), context(Some(0)));
        let sd = StateDict::load(MODEL).unwrap();
        let frame = |gpu: &Gpu, net: &SelfieSegmentation, seed| {
            // A new input tensor each frame, as a stream uploads them.
            let x = common::random4(&mut common::rng(seed), [1, 3, 96, 128]);
            let x = gpu.upload(x.view()).unwrap();
            let mut rec = gpu.recorder();
            let y = net.forward(&mut rec, &x).unwrap();
            let dispatches = rec.dispatch_count();
            (rec.download(&y).unwrap(), dispatches)
        };
        let net = SelfieSegmentation::load(&cached, SelfieModel::Square, &sd, "").unwrap();
        let reference = SelfieSegmentation::load(&uncached, SelfieModel::Square, &sd, "").unwrap();
        let (_, dispatches) = frame(&cached, &net, 1);
        assert_eq!(cached.bind_groups_created(), dispatches, "{class:?}");
        for seed in 2..5 {
            let before = cached.bind_groups_created();
            let (mask, _) = frame(&cached, &net, seed);
            assert_eq!(
                cached.bind_groups_created(),
                before,
                "{class:?} frame {seed}"
            );
            let (expected, _) = frame(&uncached, &reference, seed);
            assert_eq!(mask, expected, "{class:?} frame {seed}");
        }
        assert_eq!(uncached.bind_groups_created(), 3 * dispatches, "{class:?}");
        // Trimming the pool drops the cache with the buffers it would keep alive: the next
        // frame binds afresh, and still gives the same mask.
        cached.trim_pool();
        assert_eq!(cached.memory_stats().pooled_bytes, 0);
        let before = cached.bind_groups_created();
        let (mask, _) = frame(&cached, &net, 5);
        assert_eq!(
            cached.bind_groups_created() - before,
            dispatches,
            "{class:?}"
        );
        assert_eq!(mask, frame(&uncached, &reference, 5).0, "{class:?}");
    }
}

#[test]
fn work_flushed_while_recording_gives_the_same_mask() {
    let sd = StateDict::load(MODEL).unwrap();
    for class in [DeviceClass::Cpu, DeviceClass::Gpu] {
        let context = |submit_every| {
            Gpu::with_options(GpuOptions {
                device_class: Some(class),
                submit_every,
                ..GpuOptions::default()
            })
            .unwrap()
        };
        let x = common::random4(&mut common::rng(7), [2, 3, 64, 96]);
        let mut masks = Vec::new();
        for every in [None, Some(1), Some(5)] {
            let gpu = context(every);
            let net = SelfieSegmentation::load(&gpu, SelfieModel::Square, &sd, "").unwrap();
            let xt = gpu.upload(x.view()).unwrap();
            let mut rec = gpu.recorder();
            let y = net.forward(&mut rec, &xt).unwrap();
            let (dispatches, submissions) = (rec.dispatch_count(), rec.submissions());
            let want = every.map_or(0, |n| dispatches / n);
            assert_eq!(submissions, want, "{class:?} every {every:?}");
            masks.push(rec.download(&y).unwrap());
        }
        assert_eq!(masks[0], masks[1], "{class:?}: a submission per dispatch");
        assert_eq!(masks[0], masks[2], "{class:?}: one per five");
    }
}

#[test]
fn a_flush_waits_for_ops_that_count_their_submission() {
    use segblocks::ops::norm::{BatchNorm2d, BatchNorm2dParams};
    let gpu = Gpu::with_options(GpuOptions {
        submit_every: Some(1),
        ..GpuOptions::default()
    })
    .unwrap();
    let bn = BatchNorm2d::new(&gpu, BatchNorm2dParams::new(3), None, None).unwrap();
    let x = gpu
        .upload(common::random4(&mut common::rng(3), [2, 3, 4, 5]).view())
        .unwrap();
    // Dropped after flushing: the batch is not counted, and its statistics did not run.
    let mut rec = gpu.recorder();
    bn.forward_train(&mut rec, &x).unwrap();
    rec.flush().unwrap();
    assert_eq!(rec.submissions(), 0);
    drop(rec);
    assert_eq!(bn.num_batches_tracked(), 0);
    assert_eq!(
        bn.running_stats().unwrap().0,
        ndarray::Array1::<f32>::zeros(3)
    );
    // Before the op that counts: flushed.
    let mut rec = gpu.recorder();
    let y = segblocks::ops::copy::copy(&mut rec, &x).unwrap();
    assert_eq!(rec.submissions(), 1);
    bn.forward_train(&mut rec, &y).unwrap();
    rec.submit().unwrap();
    assert_eq!(bn.num_batches_tracked(), 1);
}
