//! Misuse, tried as a hostile user would: layers and tensors of one `Gpu` used with
//! another's recorder, and (below) errors that must stay with the call that caused them.

mod common;

use common::*;
use ndarray::{Array1, Array4};
use segblocks::blocks::{Bottleneck, BottleneckConfig, InvertedResidual, InvertedResidualConfig};
use segblocks::ops::attention::{
    Cbam, CbamParams, Eca, EcaParams, SqueezeExcitation, SqueezeExcitationParams,
};
use segblocks::ops::channel::{ChannelPoolOrder, DenseBuffer};
use segblocks::ops::conv::{
    Conv2d, Conv2dParams, DepthwiseSeparableConv2d, DepthwiseSeparableParams,
};
use segblocks::ops::conv_transpose::{ConvTranspose2d, ConvTranspose2dParams};
use segblocks::ops::norm::{
    BatchNorm2d, BatchNorm2dParams, GroupNorm, GroupNormParams, InstanceNorm2d,
    InstanceNorm2dParams, LayerNorm, LayerNormParams,
};
use segblocks::ops::pool::{self, MaxPool2dParams};
use segblocks::{Error, Gpu, Recorder, StateDict, Tensor};

/// Asserts a `WrongDevice` error.
fn wrong_device<T: std::fmt::Debug>(result: segblocks::Result<T>, what: &str) {
    assert!(
        matches!(result, Err(Error::WrongDevice { .. })),
        "{what}: {result:?}"
    );
}

/// Every layer type built on one `Gpu` and recorded into another's recorder (with that
/// recorder's own input) returns `WrongDevice`: no panic inside wgpu.
#[test]
fn every_layer_refuses_another_devices_recorder() {
    let a = gpu();
    let b = Gpu::new().unwrap();
    let c = 8;
    let x = b.upload(Array4::zeros([1, c, 8, 8]).view()).unwrap();
    let w = |shape: [usize; 4]| Array4::<f32>::zeros(shape);
    let ones = Array1::<f32>::ones(c);
    let check = |what: &str, f: &dyn Fn(&mut Recorder<'_>, &Tensor) -> segblocks::Result<()>| {
        let mut rec = b.recorder();
        wrong_device(f(&mut rec, &x), what);
    };

    let p = Conv2dParams::new(c, c, 3).padding(1);
    let conv = Conv2d::new(a, p, w(p.weight_shape()).view(), Some(ones.view())).unwrap();
    check("conv", &|rec, x| conv.forward(rec, x).map(drop));
    let p = ConvTranspose2dParams::new(c, c, 2).stride(2);
    let tconv = ConvTranspose2d::new(a, p, w(p.weight_shape()).view(), Some(ones.view())).unwrap();
    check("transposed conv", &|rec, x| tconv.forward(rec, x).map(drop));
    let p = DepthwiseSeparableParams::new(c, c, 3, 1).bias(false);
    let dw = w(p.depthwise.weight_shape());
    let pw = w(p.pointwise.weight_shape());
    let sep = DepthwiseSeparableConv2d::new(a, p, dw.view(), None, pw.view(), None).unwrap();
    check("separable conv", &|rec, x| sep.forward(rec, x).map(drop));

    let bn = BatchNorm2d::new(a, BatchNorm2dParams::new(c), None, None).unwrap();
    check("batch norm eval", &|rec, x| {
        bn.forward_eval(rec, x).map(drop)
    });
    check("batch norm train", &|rec, x| {
        bn.forward_train(rec, x).map(drop)
    });
    let bn_b = BatchNorm2d::new(&b, BatchNorm2dParams::new(c), None, None).unwrap();
    let xa = a.upload(Array4::zeros([1, c, 8, 8]).view()).unwrap();
    let mut rec_a = a.recorder();
    let (_, saved_a) = bn.forward_train(&mut rec_a, &xa).unwrap();
    check(
        "batch norm backward with another device's statistics",
        &|rec, x| bn_b.backward(rec, x, x, &saved_a).map(drop),
    );
    let gn = GroupNorm::new(a, GroupNormParams::new(2, c), None, None).unwrap();
    check("group norm", &|rec, x| gn.forward(rec, x).map(drop));
    let ln = LayerNorm::new(a, LayerNormParams::new([c, 8, 8]), None, None).unwrap();
    check("layer norm", &|rec, x| ln.forward(rec, x).map(drop));
    let inorm = InstanceNorm2d::new(a, InstanceNorm2dParams::new(c), None, None).unwrap();
    check("instance norm", &|rec, x| inorm.forward(rec, x).map(drop));

    let p = SqueezeExcitationParams::new(c, 2);
    let (w1, w2) = (w([2, c, 1, 1]), w([c, 2, 1, 1]));
    let b1 = Array1::zeros(2);
    let se = SqueezeExcitation::new(a, p, w1.view(), b1.view(), w2.view(), ones.view()).unwrap();
    check("squeeze-excitation", &|rec, x| se.forward(rec, x).map(drop));
    check("excitation of a sum", &|rec, x| {
        se.excitation_of_sum(rec, x, x).map(drop)
    });
    let p = EcaParams::new(c);
    let eca = Eca::new(a, p, Array1::zeros(p.kernel_size).view()).unwrap();
    check("ECA", &|rec, x| eca.forward(rec, x).map(drop));
    let mut p = CbamParams::new(c, ChannelPoolOrder::MeanMax);
    p.reduction_ratio = 4;
    p.mlp_bias = false;
    let [m1, m2] = p.mlp();
    let (m1, m2, sp) = (
        w(m1.weight_shape()),
        w(m2.weight_shape()),
        w(p.spatial().weight_shape()),
    );
    let cbam = Cbam::new(a, p, (m1.view(), None), (m2.view(), None), sp.view(), None).unwrap();
    check("CBAM", &|rec, x| cbam.forward(rec, x).map(drop));

    let sd = StateDict::synthetic();
    let bottleneck = Bottleneck::load(a, BottleneckConfig::new(c, 2), &sd, "").unwrap();
    check("bottleneck", &|rec, x| bottleneck.forward(rec, x).map(drop));
    let cfg = InvertedResidualConfig {
        inp: c,
        oup: c,
        stride: 1,
        expand_ratio: 6.0,
    };
    let ir = InvertedResidual::load(a, cfg, &sd, "").unwrap();
    check("inverted residual", &|rec, x| ir.forward(rec, x).map(drop));

    // A dense buffer of one device, appended to through another's recorder.
    let mut dense = DenseBuffer::new(&mut rec_a, &xa, 2 * c).unwrap();
    let mut rec = b.recorder();
    wrong_device(dense.append(&mut rec, &x), "dense buffer append");
    wrong_device(dense.features(&mut rec), "dense buffer features");

    // Tensors of one device given to another's recorder, and downloads.
    let mut rec = b.recorder();
    wrong_device(
        pool::max_pool2d(&mut rec, &MaxPool2dParams::new(2), &xa),
        "max pool",
    );
    wrong_device(b.download(&xa), "download");
    wrong_device(b.recorder().download(&xa), "recorder download");
}

/// wgpu errors belong to the call that caused them: while one thread provokes validation
/// errors on the shared device (through the raw `wgpu::Device`), every call of another
/// thread succeeds with the right numbers.
#[test]
fn a_gpu_error_stays_in_its_thread() {
    let gpu = gpu();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut r = rng(21);
    let p = Conv2dParams::new(4, 4, 3).padding(1);
    let w = random4(&mut r, p.weight_shape());
    let b = random1(&mut r, 4);
    let x = random4(&mut r, [1, 4, 9, 9]);
    let want = segblocks::reference::conv::conv2d(&p, x.view(), w.view(), Some(b.view())).unwrap();
    let conv = Conv2d::new(gpu, p, w.view(), Some(b.view())).unwrap();
    let xt = gpu.upload(x.view()).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            // A mappable storage buffer is invalid without a native-only feature.
            let invalid = || {
                gpu.device().create_buffer(&wgpu::BufferDescriptor {
                    label: Some("invalid on purpose"),
                    size: 16,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
                    mapped_at_creation: false,
                })
            };
            let scope = gpu.device().push_error_scope(wgpu::ErrorFilter::Validation);
            invalid();
            assert!(
                pollster::block_on(scope.pop()).is_some(),
                "no error provoked"
            );
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                invalid();
            }
        });
        for i in 0..40 {
            let mut rec = gpu.recorder();
            let y = conv
                .forward(&mut rec, &xt)
                .unwrap_or_else(|e| panic!("call {i}: {e}"));
            let got = rec
                .download(&y)
                .unwrap_or_else(|e| panic!("download {i}: {e}"));
            let err = (&got - &want).mapv(f32::abs).fold(0f32, |m, &v| m.max(v));
            assert!(err < 1e-4, "call {i}: error {err}");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

/// A `download_async` future dropped after its readback was mapped (a cancelled task)
/// leaves the readback pool usable: later downloads of the same size succeed.
#[test]
fn a_cancelled_download_leaves_the_readback_pool_usable() {
    use std::future::Future;
    let gpu = gpu();
    let x = random4(&mut rng(22), [1, 3, 5, 7]);
    let t = gpu.upload(x.view()).unwrap();
    for _ in 0..3 {
        let rec = gpu.recorder();
        let mut fut = Box::pin(rec.download_async(&t));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let _ = fut.as_mut().poll(&mut cx);
        // Let the copy finish and the mapping complete, then cancel.
        gpu.device()
            .poll(wgpu::PollType::wait_indefinitely())
            .unwrap();
        drop(fut);
        assert_eq!(gpu.download(&t).unwrap(), x);
        assert_eq!(
            pollster::block_on(gpu.recorder().download_async(&t)).unwrap(),
            x
        );
    }
}

/// Extreme values are typed errors before any host work, in debug builds (overflow
/// checks) as in release builds: no panic, no huge allocation, no spin, no shape that
/// wrapped around.
#[test]
fn extreme_values_are_typed_errors() {
    use segblocks::ops::pool::{AvgPool2dParams, MaxPool2dParams};
    use segblocks::ops::upsample::{upsample, UpsampleParams};
    let gpu = gpu();
    let x = gpu.upload(Array4::zeros([1, 1, 4, 4]).view()).unwrap();
    let start = std::time::Instant::now();
    for (what, params) in [
        ("scale 1e300", UpsampleParams::nearest().scale_factor(1e300)),
        ("scale 1e9", UpsampleParams::nearest().scale_factor(1e9)),
        (
            "size 2^33",
            UpsampleParams::bilinear(false).size((1 << 33, 3)),
        ),
        ("size 2^40", UpsampleParams::nearest().size((1 << 40, 4))),
        ("bed of nails 2^31", UpsampleParams::bed_of_nails(1 << 31)),
        ("bed of nails 2^62", UpsampleParams::bed_of_nails(1 << 62)),
    ] {
        let r = params.output_shape([1, 1, 4, 4]);
        assert!(r.is_err(), "{what}: {r:?}");
        let mut rec = gpu.recorder();
        let r = upsample(&mut rec, &params, &x);
        assert!(r.is_err(), "{what}: {r:?}");
    }
    // A valid but very long output is refused by the device limits, without first
    // checking a billion source indices or building a billion-entry table.
    for params in [
        UpsampleParams::nearest().size((1 << 30, 4)),
        UpsampleParams::bilinear(false).size((4, 1 << 30)),
    ] {
        let mut rec = gpu.recorder();
        let r = upsample(&mut rec, &params, &x);
        assert!(
            matches!(r, Err(Error::TooLarge { .. })),
            "{params:?}: {r:?}"
        );
    }
    assert!(x.reshape([(1 << 62) + 1, 4, 1, 1]).is_err());
    assert!(x.reshape([usize::MAX, usize::MAX, 2, 2]).is_err());
    let depthwise = Conv2dParams::depthwise(1, 1, 3).padding(1_073_741_823);
    assert!(depthwise.output_shape([1, 1, 4, 4]).is_err());
    for p in [
        MaxPool2dParams::new(7)
            .stride(2)
            .padding(usize::MAX)
            .dilation(2),
        MaxPool2dParams::new(1 << 32),
        MaxPool2dParams::new(2).stride(1 << 32),
        MaxPool2dParams::new(usize::MAX).dilation(usize::MAX),
    ] {
        assert!(p.output_shape([1, 1, 4, 4]).is_err(), "{p:?}");
    }
    for p in [
        AvgPool2dParams::new(2).divisor_override(Some(1 << 32)),
        AvgPool2dParams::new(1 << 32),
        AvgPool2dParams::new(2).padding(usize::MAX),
    ] {
        assert!(
            matches!(
                p.output_shape([1, 1, 4, 4]),
                Err(Error::InvalidParam { .. })
            ),
            "{p:?}"
        );
    }
    for p in [
        Conv2dParams::new(1, 1, 1 << 32),
        Conv2dParams::new(1, 1, 3).stride(1 << 32),
        Conv2dParams::new(1, 1, 3).dilation(usize::MAX),
    ] {
        assert!(
            matches!(
                p.output_shape([1, 1, 4, 4]),
                Err(Error::InvalidParam { .. })
            ),
            "{p:?}"
        );
    }
    // Channel counts whose weights could not be indexed: refused before anything is made
    // up or allocated, also when loading.
    let sd = StateDict::synthetic();
    for p in [
        Conv2dParams::new(usize::MAX, 1, 1),
        Conv2dParams::new(1, usize::MAX, 1),
        Conv2dParams::new(1 << 20, 1 << 20, 3),
    ] {
        assert!(p.validate().is_err(), "{p:?}");
        assert!(Conv2d::load(gpu, p, &sd, "").is_err(), "{p:?}");
    }
    let p = ConvTranspose2dParams::new(1 << 20, 1 << 20, 3);
    assert!(ConvTranspose2d::load(gpu, p, &sd, "").is_err(), "{p:?}");
    let p = ConvTranspose2dParams::new(1, 1, 3)
        .stride(1 << 20)
        .output_padding(1 << 19);
    assert!(p.output_shape([1, 1, 1 << 10, 1 << 10]).is_err(), "{p:?}");
    assert!(
        start.elapsed().as_secs() < 5,
        "extreme values took {:?}",
        start.elapsed()
    );
}

/// A tensor holds data only once the recording that produces it is submitted: reading it
/// elsewhere before that (or after the recording was dropped) is a typed error, never
/// another tensor's stale values, and a recording cannot consume it ahead of its producer.
#[test]
fn tensors_of_unsubmitted_recordings_cannot_be_read() {
    let gpu = gpu();
    let x = random4(&mut rng(23), [1, 2, 4, 4]);
    let xt = gpu.upload(x.view()).unwrap();
    let relu = |rec: &mut Recorder<'_>| {
        segblocks::ops::channel::activation(rec, &xt, segblocks::Activation::Relu).unwrap()
    };
    let not_submitted = |r: segblocks::Result<Array4<f32>>, dropped: bool| {
        assert!(
            matches!(r, Err(Error::NotSubmitted { dropped: d, .. }) if d == dropped),
            "{r:?}"
        )
    };
    // Dropped unsubmitted.
    let mut rec = gpu.recorder();
    let y = relu(&mut rec);
    drop(rec);
    not_submitted(gpu.download(&y), true);
    // Not submitted yet: a download, and another recording reading it, are refused; once
    // submitted, both work.
    let mut producer = gpu.recorder();
    let y = relu(&mut producer);
    not_submitted(gpu.download(&y), false);
    let mut consumer = gpu.recorder();
    let r = segblocks::ops::channel::activation(&mut consumer, &y, segblocks::Activation::Relu);
    assert!(
        matches!(r, Err(Error::NotSubmitted { dropped: false, .. })),
        "{r:?}"
    );
    producer.submit().unwrap();
    assert_eq!(gpu.download(&y).unwrap(), x.mapv(|v| v.max(0.0)));
    let mut consumer = gpu.recorder();
    let z = segblocks::ops::channel::activation(&mut consumer, &y, segblocks::Activation::Relu);
    assert_eq!(
        consumer.download(&z.unwrap()).unwrap(),
        x.mapv(|v| v.max(0.0))
    );
}

/// A training step whose recording is dropped changes nothing: neither the running
/// statistics nor the count of tracked batches (with `momentum=None` the next step is
/// then the first of the cumulative average, as in PyTorch).
#[test]
fn a_dropped_training_step_changes_no_running_statistics() {
    let gpu = gpu();
    let params = BatchNorm2dParams::new(2).momentum(None);
    let bn = BatchNorm2d::new(gpu, params, None, None).unwrap();
    let mut r = rng(24);
    let (a, b) = (
        random4(&mut r, [2, 2, 3, 3]),
        random4(&mut r, [2, 2, 3, 3]).mapv(|v| v + 2.0),
    );
    let mut rec = gpu.recorder();
    bn.forward_train(&mut rec, &gpu.upload(a.view()).unwrap())
        .unwrap();
    drop(rec);
    assert_eq!(bn.num_batches_tracked(), 0);
    let (mean, var) = bn.running_stats().unwrap();
    assert_eq!((mean.to_vec(), var.to_vec()), (vec![0.0; 2], vec![1.0; 2]));
    let mut rec = gpu.recorder();
    bn.forward_train(&mut rec, &gpu.upload(b.view()).unwrap())
        .unwrap();
    rec.submit().unwrap();
    assert_eq!(bn.num_batches_tracked(), 1);
    // The first step of a cumulative average takes the batch's statistics whole.
    let (mean, _) = bn.running_stats().unwrap();
    for c in 0..2 {
        let want = b.slice(ndarray::s![.., c, .., ..]).mean().unwrap();
        assert!((mean[c] - want).abs() < 1e-5, "{mean} vs {want}");
    }
}

/// The pipeline cache is bounded: many distinct configurations keep at most the
/// configured number compiled, evicted ones are compiled again when needed, and every
/// result stays right.
#[test]
fn the_pipeline_cache_stays_bounded() {
    let gpu = Gpu::with_options(segblocks::GpuOptions {
        max_cached_pipelines: Some(4),
        ..Default::default()
    })
    .unwrap();
    let mut r = rng(25);
    let x = random4(&mut r, [1, 2, 9, 9]);
    let xt = gpu.upload(x.view()).unwrap();
    let mut run = |k: usize| {
        let p = Conv2dParams::new(2, 2, k).bias(false);
        let w = random4(&mut r, p.weight_shape());
        let want = segblocks::reference::conv::conv2d(&p, x.view(), w.view(), None).unwrap();
        let conv = Conv2d::new(&gpu, p, w.view(), None).unwrap();
        let mut rec = gpu.recorder();
        let y = conv.forward(&mut rec, &xt).unwrap();
        let got = rec.download(&y).unwrap();
        let err = (&got - &want).mapv(f32::abs).fold(0f32, |m, &v| m.max(v));
        assert!(err < 1e-4, "kernel {k}: {err}");
        assert!(gpu.pipelines_cached() <= 4, "{}", gpu.pipelines_cached());
    };
    for k in 1..=7 {
        run(k);
    }
    let created = gpu.pipelines_created();
    run(1);
    assert_eq!(
        gpu.pipelines_created(),
        created + 1,
        "evicted, compiled again"
    );
}

/// After the device is lost every call returns `DeviceLost` (no panic, no misleading
/// error), and a new `Gpu` can be created and used.
#[test]
fn a_lost_device_says_so_and_a_new_gpu_works() {
    let gpu = Gpu::new().unwrap();
    let x = random4(&mut rng(26), [1, 2, 6, 6]);
    let xt = gpu.upload(x.view()).unwrap();
    let p = Conv2dParams::new(2, 2, 3).padding(1).bias(false);
    let w = random4(&mut rng(27), p.weight_shape());
    let conv = Conv2d::new(&gpu, p, w.view(), None).unwrap();
    gpu.device().destroy();
    assert!(gpu.is_lost());
    let lost = |r: segblocks::Result<()>, what: &str| {
        assert!(matches!(r, Err(Error::DeviceLost(_))), "{what}: {r:?}")
    };
    lost(gpu.upload(x.view()).map(drop), "upload");
    lost(gpu.download(&xt).map(drop), "download");
    let mut rec = gpu.recorder();
    lost(conv.forward(&mut rec, &xt).map(drop), "forward");
    lost(rec.submit(), "submit");
    lost(Conv2d::new(&gpu, p, w.view(), None).map(drop), "new layer");
    let fresh = Gpu::new().unwrap();
    let conv = Conv2d::new(&fresh, p, w.view(), None).unwrap();
    let mut rec = fresh.recorder();
    let y = conv
        .forward(&mut rec, &fresh.upload(x.view()).unwrap())
        .unwrap();
    let want = segblocks::reference::conv::conv2d(&p, x.view(), w.view(), None).unwrap();
    let got = rec.download(&y).unwrap();
    assert!((&got - &want).mapv(f32::abs).fold(0f32, |m, &v| m.max(v)) < 1e-4);
}

/// A size drawn for the sweep: mostly small, sometimes zero, sometimes past every limit.
fn size(r: &mut rand::rngs::StdRng, max: usize) -> usize {
    use rand::Rng;
    match r.gen_range(0..40) {
        0 => 0,
        1 => r.gen_range(1usize << 24..1 << 34),
        2 => usize::MAX,
        _ => r.gen_range(1..=max),
    }
}

fn pair(r: &mut rand::rngs::StdRng, max: usize) -> (usize, usize) {
    use rand::Rng;
    let a = size(r, max);
    // Mostly square, as most layers are.
    if r.gen_bool(0.7) {
        (a, a)
    } else {
        (a, size(r, max))
    }
}

/// An input shape for the sweep: `channels` most of the time, small spatial sizes.
fn input_shape(r: &mut rand::rngs::StdRng, channels: usize) -> [usize; 4] {
    use rand::Rng;
    let c = if r.gen_bool(0.85) {
        channels
    } else {
        size(r, 6)
    };
    [size(r, 2), c, size(r, 9), size(r, 9)]
}

/// Tallies of one family's sweep.
#[derive(Debug, Default)]
struct Tally {
    cases: usize,
    valid: usize,
    compared: usize,
}

/// Holds the invariants of one random case: the shape check, the cost and the GPU op
/// agree on validity; errors are typed (never `Error::Gpu`, the "library bug" variant);
/// valid results match the reference within `tol` (relative).
fn sweep_case(
    tally: &mut Tally,
    what: &str,
    shape: segblocks::Result<[usize; 4]>,
    cost_ok: bool,
    gpu_and_reference: Option<(segblocks::Result<Array4<f32>>, Array4<f32>)>,
    tol: f32,
) {
    tally.cases += 1;
    assert_eq!(shape.is_ok(), cost_ok, "{what}: output_shape vs cost");
    if let Err(Error::Gpu(msg)) = &shape {
        panic!("{what}: library bug reported: {msg}");
    }
    tally.valid += usize::from(shape.is_ok());
    let Some((got, want)) = gpu_and_reference else {
        return;
    };
    match (&shape, got) {
        (Ok(s), Ok(got)) => {
            assert_eq!(got.shape(), &s[..], "{what}: GPU shape");
            assert_eq!(got.shape(), want.shape(), "{what}: reference shape");
            for (g, w) in got.iter().zip(want.iter()) {
                let same =
                    g == w || (g - w).abs() <= tol * (1.0 + w.abs()) || (g.is_nan() && w.is_nan());
                assert!(same, "{what}: got {g}, want {w}");
            }
            tally.compared += 1;
        }
        (Err(_), Err(Error::Gpu(msg))) => panic!("{what}: library bug reported: {msg}"),
        (Err(_), Err(_)) => {}
        // A valid shape past this device's limits (output_shape knows no device).
        (Ok(_), Err(Error::TooLarge { .. })) => {}
        (s, got) => panic!("{what}: output_shape {s:?} but the GPU op gave {got:?}"),
    }
}

/// Whether a case of `family` runs on the GPU: every invalid one (refused before any
/// work), and valid ones until enough were compared (each compiles a pipeline).
fn sampled(tallies: &std::collections::BTreeMap<&str, Tally>, family: &str, valid: bool) -> bool {
    !valid || tallies.get(family).is_none_or(|t| t.compared < 40)
}

/// Uploads `shape` random values when the shape is valid and small enough to test.
fn small_input(
    gpu: &Gpu,
    r: &mut rand::rngs::StdRng,
    shape: [usize; 4],
) -> Option<(Array4<f32>, Tensor)> {
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
    if n == 0 || n > 4096 {
        return None;
    }
    let x = random4(r, shape);
    let t = gpu.upload(x.view()).unwrap();
    Some((x, t))
}

/// Thousands of random parameter sets, valid and invalid, through every op family: no
/// panic (with overflow checks, as `cargo test` builds), a typed error for each invalid
/// one, and agreement with the CPU reference for the valid ones small enough to run.
#[test]
fn random_parameter_sets_never_panic_and_agree_with_the_reference() {
    use rand::Rng;
    use segblocks::ops::conv::PaddingMode;
    use segblocks::ops::norm::NormalizedShape;
    use segblocks::ops::pool::{
        AdaptiveMaxPool2dParams, AvgPool2dParams, MaxPool2dParams, MaxUnpool2dParams,
    };
    use segblocks::ops::upsample::{upsample, UpsampleMode, UpsampleParams};
    use segblocks::reference;
    let gpu = gpu();
    let mut r = rng(2026);
    let mut tallies = std::collections::BTreeMap::<&str, Tally>::new();
    let acts = [
        segblocks::Activation::None,
        segblocks::Activation::Relu,
        segblocks::Activation::Sigmoid,
        segblocks::Activation::HardSwish,
    ];
    for _ in 0..600 {
        // Convolution.
        let mut p = Conv2dParams::new(size(&mut r, 6), size(&mut r, 6), pair(&mut r, 4));
        p.stride = pair(&mut r, 3);
        p.padding = (r.gen_range(0..3), r.gen_range(0..3));
        p.dilation = pair(&mut r, 3);
        p.groups = if r.gen_bool(0.6) { 1 } else { size(&mut r, 3) };
        p.bias = r.gen_bool(0.5);
        p.padding_same = r.gen_bool(0.1);
        p.padding_mode = [
            PaddingMode::Zeros,
            PaddingMode::Reflect,
            PaddingMode::Replicate,
            PaddingMode::Circular,
        ][r.gen_range(0..4)];
        p.activation = acts[r.gen_range(0..acts.len())];
        let shape = input_shape(&mut r, p.in_channels);
        let run = sampled(&tallies, "conv", p.output_shape(shape).is_ok())
            .then(|| small_input(gpu, &mut r, shape))
            .flatten();
        let run = run.and_then(|(x, xt)| {
            let ws = p.weight_shape();
            let small = p.validate().is_ok() && ws.iter().product::<usize>() <= 4096;
            let w = random4(&mut r, if small { ws } else { [1, 1, 1, 1] });
            let b = random1(&mut r, p.out_channels.min(64));
            let layer = Conv2d::new(gpu, p, w.view(), p.bias.then(|| b.view()));
            assert_eq!(layer.is_ok(), small, "{p:?}: layer");
            let layer = layer.ok()?;
            let mut rec = gpu.recorder();
            let got = layer.forward(&mut rec, &xt).and_then(|y| rec.download(&y));
            let want = reference::conv::conv2d(&p, x.view(), w.view(), p.bias.then(|| b.view()));
            Some((got, want.unwrap_or_default()))
        });
        let t = tallies.entry("conv").or_default();
        sweep_case(
            t,
            &format!("{p:?} on {shape:?}"),
            p.output_shape(shape),
            p.cost(shape).is_ok(),
            run,
            1e-4,
        );

        // Transposed convolution.
        let mut q = ConvTranspose2dParams::new(size(&mut r, 6), size(&mut r, 6), pair(&mut r, 4));
        q.stride = pair(&mut r, 3);
        q.padding = (r.gen_range(0..3), r.gen_range(0..3));
        q.output_padding = (r.gen_range(0..3), r.gen_range(0..3));
        q.dilation = pair(&mut r, 2);
        q.groups = if r.gen_bool(0.6) { 1 } else { size(&mut r, 2) };
        q.bias = r.gen_bool(0.5);
        let shape = input_shape(&mut r, q.in_channels);
        let run = sampled(&tallies, "conv_transpose", q.output_shape(shape).is_ok())
            .then(|| small_input(gpu, &mut r, shape))
            .flatten();
        let run = run.and_then(|(x, xt)| {
            let ws = q.weight_shape();
            let small = q.validate().is_ok() && ws.iter().product::<usize>() <= 4096;
            let w = random4(&mut r, if small { ws } else { [1, 1, 1, 1] });
            let b = random1(&mut r, q.out_channels.min(64));
            let layer = ConvTranspose2d::new(gpu, q, w.view(), q.bias.then(|| b.view()));
            assert_eq!(layer.is_ok(), small, "{q:?}: layer");
            let layer = layer.ok()?;
            let mut rec = gpu.recorder();
            let got = layer.forward(&mut rec, &xt).and_then(|y| rec.download(&y));
            let want = reference::conv_transpose::conv_transpose2d(
                &q,
                x.view(),
                w.view(),
                q.bias.then(|| b.view()),
            );
            Some((got, want.unwrap_or_default()))
        });
        let t = tallies.entry("conv_transpose").or_default();
        sweep_case(
            t,
            &format!("{q:?} on {shape:?}"),
            q.output_shape(shape),
            q.cost(shape).is_ok(),
            run,
            1e-4,
        );

        // Max and average pooling.
        let mut m = MaxPool2dParams::new(pair(&mut r, 4));
        m.stride = pair(&mut r, 3);
        m.padding = (r.gen_range(0..3), r.gen_range(0..3));
        m.dilation = pair(&mut r, 3);
        m.ceil_mode = r.gen_bool(0.5);
        let shape = input_shape(&mut r, 3);
        let run = sampled(&tallies, "max_pool", m.output_shape(shape).is_ok())
            .then(|| small_input(gpu, &mut r, shape))
            .flatten()
            .map(|(x, xt)| {
                let mut rec = gpu.recorder();
                let got = pool::max_pool2d(&mut rec, &m, &xt).and_then(|(v, _)| rec.download(&v));
                let want = reference::pool::max_pool2d(&m, x.view()).map(|(v, _)| v);
                (got, want.unwrap_or_default())
            });
        let t = tallies.entry("max_pool").or_default();
        sweep_case(
            t,
            &format!("{m:?} on {shape:?}"),
            m.output_shape(shape),
            m.cost(shape).is_ok(),
            run,
            0.0,
        );
        let mut a = AvgPool2dParams::new(pair(&mut r, 4));
        a.stride = pair(&mut r, 3);
        a.padding = (r.gen_range(0..3), r.gen_range(0..3));
        a.ceil_mode = r.gen_bool(0.5);
        a.count_include_pad = r.gen_bool(0.5);
        a.divisor_override = r.gen_bool(0.2).then(|| size(&mut r, 9));
        let shape = input_shape(&mut r, 3);
        let run = sampled(&tallies, "avg_pool", a.output_shape(shape).is_ok())
            .then(|| small_input(gpu, &mut r, shape))
            .flatten()
            .map(|(x, xt)| {
                let mut rec = gpu.recorder();
                let got = pool::avg_pool2d(&mut rec, &a, &xt).and_then(|y| rec.download(&y));
                (
                    got,
                    reference::pool::avg_pool2d(&a, x.view()).unwrap_or_default(),
                )
            });
        let t = tallies.entry("avg_pool").or_default();
        sweep_case(
            t,
            &format!("{a:?} on {shape:?}"),
            a.output_shape(shape),
            a.cost(shape).is_ok(),
            run,
            1e-5,
        );

        // Upsampling.
        let scales = [
            0.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            1e300,
            0.5,
            1.0,
            1.5,
            2.0,
            3.0,
        ];
        let mut u = match r.gen_range(0..7) {
            0 => UpsampleParams::nearest(),
            1 => UpsampleParams::bilinear(r.gen_bool(0.5)),
            2 => UpsampleParams::nearest_exact(),
            3 => UpsampleParams::bicubic(r.gen_bool(0.5)),
            4 => UpsampleParams::area(),
            _ => UpsampleParams::bed_of_nails(pair(&mut r, 3)),
        };
        u = u
            .recompute_scale_factor(r.gen_bool(0.3))
            .antialias(r.gen_bool(0.2));
        if !matches!(u.mode, UpsampleMode::BedOfNails { .. }) || r.gen_bool(0.1) {
            match r.gen_range(0..5) {
                0 => u.size = Some(pair(&mut r, 12)),
                1 => {
                    u.scale_factor = Some((scales[r.gen_range(0..10)], scales[r.gen_range(0..10)]))
                }
                2 => {}
                _ => {
                    let f = scales[r.gen_range(5..10)];
                    u.scale_factor = Some((f, f));
                }
            }
        }
        let shape = input_shape(&mut r, 2);
        let run = sampled(&tallies, "upsample", u.output_shape(shape).is_ok())
            .then(|| small_input(gpu, &mut r, shape))
            .flatten()
            .map(|(x, xt)| {
                let mut rec = gpu.recorder();
                let got = upsample(&mut rec, &u, &xt).and_then(|y| rec.download(&y));
                // The reference only where the GPU ran (outputs past the device's limits
                // are too large to compute here).
                let want = got
                    .as_ref()
                    .ok()
                    .and_then(|_| reference::upsample::upsample(&u, x.view()).ok());
                (got, want.unwrap_or_default())
            });
        let t = tallies.entry("upsample").or_default();
        sweep_case(
            t,
            &format!("{u:?} on {shape:?}"),
            u.output_shape(shape),
            u.cost(shape).is_ok(),
            run,
            1e-5,
        );

        // Group norm.
        let eps = [1e-5, 0.0, -1.0, f32::NAN, 1e-3][r.gen_range(0..5)];
        let g = GroupNormParams::new(size(&mut r, 4), size(&mut r, 8)).eps(eps);
        let shape = input_shape(&mut r, g.num_channels);
        let run = sampled(&tallies, "group_norm", g.output_shape(shape).is_ok())
            .then(|| small_input(gpu, &mut r, shape))
            .flatten()
            .and_then(|(x, xt)| {
                let layer = GroupNorm::new(gpu, g, None, None);
                match (&layer, g.validate()) {
                    (Ok(_), Ok(())) | (Err(_), Err(_)) | (Err(Error::TooLarge { .. }), Ok(())) => {}
                    (layer, valid) => panic!("{g:?}: layer {layer:?}, parameters {valid:?}"),
                }
                let layer = layer.ok()?;
                let mut rec = gpu.recorder();
                let got = layer.forward(&mut rec, &xt).and_then(|y| rec.download(&y));
                let c = g.num_channels.min(64);
                let (one, zero) = (Array1::ones(c), Array1::zeros(c));
                let want = reference::norm::group_norm(&g, x.view(), one.view(), zero.view());
                Some((got, want.unwrap_or_default()))
            });
        let t = tallies.entry("group_norm").or_default();
        sweep_case(
            t,
            &format!("{g:?} on {shape:?}"),
            g.output_shape(shape),
            g.cost(shape).is_ok(),
            run,
            1e-4,
        );

        // Max unpooling with random (valid) indices, duplicates included.
        let mut un = MaxUnpool2dParams::new(pair(&mut r, 4));
        un.stride = pair(&mut r, 3);
        un.padding = (r.gen_range(0..3), r.gen_range(0..3));
        let shape = input_shape(&mut r, 2);
        if r.gen_bool(0.3) {
            if let Ok(o) = un.output_shape(shape) {
                let grow = (r.gen_range(0..2), r.gen_range(0..2));
                un = un.output_size((o[2] + grow.0, o[3] + grow.1));
            } else {
                un = un.output_size(pair(&mut r, 9));
            }
        }
        let run = sampled(&tallies, "max_unpool", un.output_shape(shape).is_ok())
            .then(|| small_input(gpu, &mut r, shape))
            .flatten()
            .and_then(|(x, xt)| {
                let out = un.output_shape(shape).ok()?;
                let plane = (out[2] * out[3]) as i64;
                let idx = ndarray::Array4::from_shape_fn(shape, |_| r.gen_range(0..plane));
                // (Indices past i32 are refused on upload: such planes are not swept.)
                let it = gpu.upload_indices(idx.view()).ok()?;
                let mut rec = gpu.recorder();
                let got =
                    pool::max_unpool2d(&mut rec, &un, &xt, &it).and_then(|y| rec.download(&y));
                // The reference only where the GPU ran (a valid output may be past the
                // device's limits, and too large to compute on the host here).
                let want = got
                    .as_ref()
                    .ok()
                    .and_then(|_| reference::pool::max_unpool2d(&un, x.view(), idx.view()).ok());
                Some((got, want.unwrap_or_default()))
            });
        let t = tallies.entry("max_unpool").or_default();
        sweep_case(
            t,
            &format!("{un:?} on {shape:?}"),
            un.output_shape(shape),
            un.cost(shape).is_ok(),
            run,
            0.0,
        );

        // Adaptive max pooling (None keeps the input's size).
        // Huge sizes become usize::MAX: a valid output of millions of elements would only
        // make the sweep slow (device limits are swept by the other families).
        let optional = |r: &mut rand::rngs::StdRng| {
            r.gen_bool(0.8).then(|| match size(r, 7) {
                big if big > 4096 => usize::MAX,
                o => o,
            })
        };
        let am = AdaptiveMaxPool2dParams::with_optional((optional(&mut r), optional(&mut r)));
        let shape = input_shape(&mut r, 2);
        let run = sampled(
            &tallies,
            "adaptive_max_pool",
            am.output_shape(shape).is_ok(),
        )
        .then(|| small_input(gpu, &mut r, shape))
        .flatten()
        .map(|(x, xt)| {
            let mut rec = gpu.recorder();
            let got =
                pool::adaptive_max_pool2d(&mut rec, &am, &xt).and_then(|(v, _)| rec.download(&v));
            let want = reference::pool::adaptive_max_pool2d(&am, x.view()).map(|(v, _)| v);
            (got, want.unwrap_or_default())
        });
        let t = tallies.entry("adaptive_max_pool").or_default();
        sweep_case(
            t,
            &format!("{am:?} on {shape:?}"),
            am.output_shape(shape),
            am.cost(shape).is_ok(),
            run,
            0.0,
        );

        // Layer norm over the trailing 1 to 3 dimensions of an input that mostly has them.
        let channels = size(&mut r, 4);
        let shape = input_shape(&mut r, channels);
        let dims = r.gen_range(1..=3);
        let mut trailing = shape[4 - dims..].to_vec();
        if r.gen_bool(0.2) {
            trailing[0] = size(&mut r, 9);
        }
        let normalized: NormalizedShape = match dims {
            1 => trailing[0].into(),
            2 => [trailing[0], trailing[1]].into(),
            _ => [trailing[0], trailing[1], trailing[2]].into(),
        };
        let ln = LayerNormParams::new(normalized).bias(r.gen_bool(0.7));
        let run = sampled(&tallies, "layer_norm", ln.output_shape(shape).is_ok())
            .then(|| small_input(gpu, &mut r, shape))
            .flatten()
            .and_then(|(x, xt)| {
                let layer = LayerNorm::new(gpu, ln, None, None).ok()?;
                let mut rec = gpu.recorder();
                let got = layer.forward(&mut rec, &xt).and_then(|y| rec.download(&y));
                let one = ndarray::ArrayD::ones(normalized.dims());
                let zero = ndarray::ArrayD::zeros(normalized.dims());
                let want = reference::norm::layer_norm(&ln, x.view(), one.view(), zero.view());
                Some((got, want.unwrap_or_default()))
            });
        let t = tallies.entry("layer_norm").or_default();
        sweep_case(
            t,
            &format!("{ln:?} on {shape:?}"),
            ln.output_shape(shape),
            ln.cost(shape).is_ok(),
            run,
            1e-4,
        );
    }
    eprintln!("{tallies:#?}");
    for (family, t) in &tallies {
        assert!(
            t.valid > 30 && t.valid < t.cases,
            "{family}: {t:?} (the sweep should mix valid and invalid)"
        );
        assert!(
            t.compared >= 40,
            "{family}: {t:?} (too few results compared)"
        );
    }
}

/// What the README promises threads: contexts, tensors and layers move between threads
/// and are shared by them.
#[test]
fn contexts_tensors_and_layers_are_send_and_sync() {
    fn shared<T: Send + Sync>() {}
    shared::<Gpu>();
    shared::<Tensor>();
    shared::<segblocks::IndexTensor>();
    shared::<Conv2d>();
    shared::<BatchNorm2d>();
    shared::<SqueezeExcitation>();
    shared::<Bottleneck>();
    shared::<segblocks::networks::LrAsppMobileNetV3>();
    shared::<Error>();
}

/// Asserts an `InvalidParam`, `ShapeMismatch` or `TooLarge` error naming `name`.
fn names<T: std::fmt::Debug>(result: segblocks::Result<T>, name: &str) {
    match result {
        Err(Error::InvalidParam { name: n, .. })
        | Err(Error::ShapeMismatch { name: n, .. })
        | Err(Error::TooLarge { name: n, .. }) => assert_eq!(n, name, "{result:?}"),
        other => panic!("expected an error naming {name}, got {other:?}"),
    }
}

/// Bad values given to the CPU references, the parameter helpers and the context's
/// options: typed errors naming them, never a panic, a hang or a silently wrong answer.
#[test]
fn references_helpers_and_options_refuse_bad_values() {
    use segblocks::ops::composite::{gaussian_taps, Background};
    use segblocks::ops::frame::{Fit, FrameLayout, MaskParams, PixelFormat};
    use segblocks::ops::inverted_residual::InvertedResidualParams;
    use segblocks::reference;
    // An inverted residual with a skip whose padding changes the size would add the
    // input at other pixels (the GPU) or panic (the reference).
    let p = InvertedResidualParams::new(8, 16, 8).padding_asymmetric(0, 0);
    names(p.output_shape([1, 8, 9, 9]), "padding");
    let x = Array4::<f32>::zeros([1, 8, 9, 9]);
    let (w1, b1) = (
        Array4::<f32>::zeros([16, 8, 1, 1]),
        Array1::<f32>::zeros(16),
    );
    let (wd, w2, b2) = (
        Array4::<f32>::zeros([16, 1, 3, 3]),
        Array4::<f32>::zeros([8, 16, 1, 1]),
        Array1::<f32>::zeros(8),
    );
    let ok = InvertedResidualParams::new(8, 16, 8);
    let dw = (wd.view(), b1.view());
    let project = (w2.view(), b2.view());
    names(
        reference::inverted_residual::inverted_residual(&p, x.view(), None, dw, None, project),
        "padding",
    );
    names(
        reference::inverted_residual::inverted_residual(&ok, x.view(), None, dw, None, project),
        "expand",
    );
    let expand = Some((w1.view(), b1.view()));
    let y =
        reference::inverted_residual::inverted_residual(&ok, x.view(), expand, dw, None, project);
    assert_eq!(y.unwrap().dim(), (1, 8, 9, 9));
    // Lowered limits that leave nothing.
    for options in [
        segblocks::GpuOptions {
            max_compute_workgroups_per_dimension: Some(0),
            ..Default::default()
        },
        segblocks::GpuOptions {
            max_storage_buffer_binding_size: Some(16),
            ..Default::default()
        },
    ] {
        let name = if options.max_compute_workgroups_per_dimension.is_some() {
            "max_compute_workgroups_per_dimension"
        } else {
            "max_storage_buffer_binding_size"
        };
        names(Gpu::with_options(options), name);
    }
    // Compositing on the CPU: the background's and the frame's checks.
    let layout = FrameLayout::packed(4, 3, PixelFormat::Rgba8);
    let bytes = vec![128u8; 4 * 4 * 3];
    let out = Array4::<f32>::zeros([1, 1, 3, 4]);
    let mask = MaskParams::new();
    let blur = Background::Blur {
        sigma: 2.0,
        downscale: 0,
    };
    names(
        reference::composite::composite(&bytes, &layout, out.view(), &mask, &blur),
        "downscale",
    );
    let tint = Background::Tint {
        color: [0.0; 3],
        amount: 1.0,
    };
    names(
        reference::composite::composite(&bytes[..10], &layout, out.view(), &mask, &tint),
        "bytes",
    );
    names(gaussian_taps(0.0), "sigma");
    names(gaussian_taps(f32::NAN), "sigma");
    names(gaussian_taps(1e9), "sigma");
    // A stride that the kernels' 32-bit word offsets cannot reach.
    let wide = FrameLayout {
        bytes_per_row: 1 << 40,
        ..layout
    };
    names(wide.validate(), "bytes_per_row");
    // A letterbox of an empty side and tiles that overlap entirely: no panic, no hang.
    let fit = Fit::Letterbox { fill: 0.0 };
    assert_eq!(fit.content_rect((0, 5), (4, 4)).size.0, 0);
    let starts = segblocks::tiling::TileParams::starts(40, 10, 10);
    assert_eq!((starts.len(), starts[30]), (31, 30));
    // Channel reductions over no channel.
    let empty = Array4::<f32>::zeros([1, 0, 2, 2]);
    names(reference::channel::softmax(empty.view(), false), "input");
    names(reference::channel::argmax(empty.view()), "input");
    names(
        reference::channel::channel_pool(empty.view(), ChannelPoolOrder::MeanMax),
        "input",
    );
    // CBAM with another channel count, ECA with an even kernel, AdaIN and batch norm with
    // bad factors.
    let x = Array4::<f32>::zeros([1, 4, 3, 3]);
    let cbam = CbamParams::new(6, ChannelPoolOrder::MeanMax);
    let (m1, m2) = (
        Array4::<f32>::zeros([0, 6, 1, 1]),
        Array4::<f32>::zeros([6, 0, 1, 1]),
    );
    let sw = Array4::<f32>::zeros([1, 2, 7, 7]);
    names(
        reference::attention::cbam(
            &cbam,
            x.view(),
            (m1.view(), None),
            (m2.view(), None),
            sw.view(),
            None,
        ),
        "input",
    );
    names(
        reference::attention::eca_logits(x.view(), Array1::zeros(2).view()),
        "weight",
    );
    names(reference::norm::adain(x.view(), x.view(), -1.0), "eps");
    let bn = BatchNorm2dParams::new(4);
    let ones = Array1::<f32>::ones(4);
    let o = ones.view();
    names(
        reference::norm::batch_norm_train(&bn, x.view(), o, o, o, o, f32::NAN),
        "momentum",
    );
    // An unpooling to more values than a tensor may hold.
    let unpool = pool::MaxUnpool2dParams::new(1 << 20);
    names(unpool.output_shape([1, 1, 1 << 12, 1 << 12]), "output");
    // A state dict entry in Fortran order is stored as PyTorch's contiguous tensors are.
    let mut sd = StateDict::new();
    let f = Array4::from_shape_fn([2, 3, 1, 1], |(o, i, _, _)| (o * 3 + i) as f32);
    let fortran = f.t().as_standard_layout().into_owned().reversed_axes();
    assert!(!fortran.is_standard_layout());
    sd.insert("w", fortran.into_dyn());
    assert!(sd.tensor("w").unwrap().is_standard_layout());
    assert_eq!(sd.get4("w", [2, 3, 1, 1]).unwrap(), f);
}
