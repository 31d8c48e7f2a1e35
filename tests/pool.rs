//! Pooling: max pooling with indices (values and indices exact), unpooling, the
//! pool/unpool round trip, global and adaptive pooling, ties and NaN, bad input.

mod common;

use common::*;
use ndarray::Array4;
use proptest::prelude::*;
use rand::Rng;
use segblocks::ops::pool::{
    global_pool_with, select_global_kernel, AdaptiveAvgPool2dParams, AdaptiveMaxPool2dParams,
    AvgPool2dParams, GlobalPool, GlobalPoolKernel, MaxPool2dParams, MaxUnpool2dParams,
};
use segblocks::{reference, DeviceCaps, Error, LOOP_BUDGET};

fn gpu_pool(params: &MaxPool2dParams, x: &Array4<f32>) -> (Array4<f32>, Array4<i64>) {
    let gpu = gpu();
    let xt = gpu.upload(x.view()).unwrap();
    let mut rec = gpu.recorder();
    let (v, i) = segblocks::ops::pool::max_pool2d(&mut rec, params, &xt).unwrap();
    rec.submit().unwrap();
    (gpu.download(&v).unwrap(), gpu.download_indices(&i).unwrap())
}

/// Bitwise equality that treats NaN as equal to NaN.
fn same_bits(a: &Array4<f32>, b: &Array4<f32>) -> bool {
    a.shape() == b.shape()
        && a.iter()
            .zip(b.iter())
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

fn check_pool(params: MaxPool2dParams, x: &Array4<f32>) {
    let (want_v, want_i) = reference::pool::max_pool2d(&params, x.view()).unwrap();
    let (got_v, got_i) = gpu_pool(&params, x);
    assert!(
        same_bits(&got_v, &want_v),
        "{params:?}: values\n{got_v:?}\n{want_v:?}"
    );
    assert_eq!(got_i, want_i, "{params:?}: indices");
    // Without indices: the same values.
    let gpu = gpu();
    let xt = gpu.upload(x.view()).unwrap();
    let mut rec = gpu.recorder();
    let v = segblocks::ops::pool::max_pool2d_values(&mut rec, &params, &xt).unwrap();
    let got_v = rec.download(&v).unwrap();
    assert!(
        same_bits(&got_v, &want_v),
        "{params:?}: values without indices\n{got_v:?}\n{want_v:?}"
    );
}

/// A pool without indices writes its values alone: half the bytes of one with them.
#[test]
fn max_pool_without_indices_writes_no_indices() {
    let gpu = gpu();
    let x = gpu
        .upload(random4(&mut rng(3), [2, 3, 10, 12]).view())
        .unwrap();
    let params = MaxPool2dParams::new(2);
    let mut rec = gpu.recorder();
    segblocks::ops::pool::max_pool2d(&mut rec, &params, &x).unwrap();
    segblocks::ops::pool::max_pool2d_values(&mut rec, &params, &x).unwrap();
    let t = rec.traffic();
    let values = (2 * 3 * 5 * 6 * 4) as u64;
    assert_eq!(t.dispatches.len(), 2);
    assert_eq!(t.dispatches[0].written, 2 * values);
    assert_eq!(t.dispatches[1].written, values);
    // Bad input is refused as by the pool with indices.
    let mut rec = gpu.recorder();
    let err = segblocks::ops::pool::max_pool2d_values(&mut rec, &MaxPool2dParams::new(20), &x);
    expect_param(err, "kernel_size");
}

#[test]
fn max_pool_configurations() {
    let mut r = rng(1);
    let x = random4(&mut r, [2, 3, 9, 11]);
    check_pool(MaxPool2dParams::new(2), &x);
    check_pool(MaxPool2dParams::new(3).stride(2).padding(1), &x);
    check_pool(MaxPool2dParams::new(2).ceil_mode(true), &x);
    check_pool(MaxPool2dParams::new(3).stride(2).ceil_mode(true), &x);
    check_pool(
        MaxPool2dParams::new((2, 3)).stride((1, 2)).padding((1, 1)),
        &x,
    );
    check_pool(MaxPool2dParams::new(3).dilation(2).padding(1).stride(1), &x);
    check_pool(MaxPool2dParams::new(4).dilation(2).padding(2).stride(3), &x);
    check_pool(MaxPool2dParams::new((9, 11)), &x);
    // ceil mode: the last window must start inside the input or its left padding.
    assert_eq!(
        MaxPool2dParams::new(2)
            .ceil_mode(true)
            .output_shape([1, 1, 7, 9])
            .unwrap(),
        [1, 1, 4, 5]
    );
    assert_eq!(
        MaxPool2dParams::new(3)
            .stride(2)
            .padding(1)
            .ceil_mode(true)
            .output_shape([1, 1, 6, 6])
            .unwrap(),
        [1, 1, 4, 4]
    );
    // A window with nothing inside the input: -inf at its first dilated position (PyTorch).
    let (v, i) = gpu_pool(
        &MaxPool2dParams::new(2).stride(1).padding(1).dilation(2),
        &Array4::ones([1, 1, 1, 1]),
    );
    assert_eq!((v[[0, 0, 0, 0]], i[[0, 0, 0, 0]]), (f32::NEG_INFINITY, 2));
}

#[test]
fn ties_keep_the_first_position_and_nan_propagates() {
    // Values from a small set make ties in most windows.
    let mut r = rng(2);
    let x = Array4::from_shape_simple_fn([1, 2, 8, 8], || r.gen_range(0..3) as f32);
    check_pool(MaxPool2dParams::new(3).stride(1).padding(1), &x);
    let (_, idx) = gpu_pool(
        &MaxPool2dParams::new(2),
        &Array4::from_elem([1, 1, 2, 2], 1.0),
    );
    assert_eq!(idx[[0, 0, 0, 0]], 0, "all equal: first position");
    // NaN wins its window; -inf everywhere keeps the first position.
    let mut x = Array4::from_elem([1, 1, 4, 4], f32::NEG_INFINITY);
    x[[0, 0, 0, 1]] = f32::NAN;
    x[[0, 0, 1, 0]] = 5.0;
    x[[0, 0, 2, 3]] = f32::NAN;
    x[[0, 0, 3, 2]] = f32::NAN;
    check_pool(MaxPool2dParams::new(2), &x);
    let (v, i) = gpu_pool(&MaxPool2dParams::new(2), &x);
    assert!(v[[0, 0, 0, 0]].is_nan() && i[[0, 0, 0, 0]] == 1);
    assert_eq!((v[[0, 0, 0, 1]], i[[0, 0, 0, 1]]), (f32::NEG_INFINITY, 2));
    assert!(
        v[[0, 0, 1, 1]].is_nan() && i[[0, 0, 1, 1]] == 14,
        "the last NaN's position"
    );
}

fn arb_pool() -> impl Strategy<Value = (MaxPool2dParams, [usize; 4], u64)> {
    (
        (1usize..=4, 1usize..=4),
        (1usize..=3, 1usize..=3),
        (0usize..=2, 0usize..=2),
        (1usize..=2, 1usize..=2),
        any::<bool>(),
        (1usize..=2, 1usize..=3, 1usize..=12, 1usize..=12),
        any::<u64>(),
    )
        .prop_filter_map("invalid", |(k, s, p, d, ceil, (n, c, h, w), seed)| {
            let params = MaxPool2dParams::new(k)
                .stride(s)
                .padding(p)
                .dilation(d)
                .ceil_mode(ceil);
            let shape = [n, c, h, w];
            params
                .output_shape(shape)
                .ok()
                .map(|_| (params, shape, seed))
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_max_pools_match_reference((params, shape, seed) in arb_pool()) {
        let mut r = rng(seed);
        check_pool(params, &random4(&mut r, shape));
    }
}

#[test]
fn pool_then_unpool_restores_the_maxima() {
    let gpu = gpu();
    let mut r = rng(3);
    // (pool, input shape, dispatches of the unpool): non-overlapping windows gather in one
    // pass; overlapping windows take the deterministic scatter (claim, then gather).
    for (pool, shape, passes) in [
        (MaxPool2dParams::new(2), [2, 3, 8, 10], 1),
        (MaxPool2dParams::new(2), [1, 2, 7, 9], 1),
        (
            MaxPool2dParams::new((2, 3))
                .stride((3, 3))
                .padding((1, 0))
                .ceil_mode(true),
            [1, 2, 8, 10],
            1,
        ),
        (
            MaxPool2dParams::new(3).stride(2).padding(1),
            [1, 2, 9, 9],
            2,
        ),
    ] {
        let x = random4(&mut r, shape);
        let unpool = MaxUnpool2dParams::from_pool(&pool).output_size((shape[2], shape[3]));
        let xt = gpu.upload(x.view()).unwrap();
        let mut rec = gpu.recorder();
        // The indices stay on the GPU between the two ops: one submission.
        let (v, i) = segblocks::ops::pool::max_pool2d(&mut rec, &pool, &xt).unwrap();
        let before = rec.dispatch_count();
        let y = segblocks::ops::pool::max_unpool2d(&mut rec, &unpool, &v, &i).unwrap();
        assert_eq!(rec.dispatch_count() - before, passes, "{pool:?}");
        let got = rec.download(&y).unwrap();
        let (rv, ri) = reference::pool::max_pool2d(&pool, x.view()).unwrap();
        let want = reference::pool::max_unpool2d(&unpool, rv.view(), ri.view()).unwrap();
        assert_eq!(got, want, "{pool:?} on {shape:?}");
        // Every pooled maximum is back at its position; everything else is zero.
        for ((n, c, yy, xx), &v) in rv.indexed_iter() {
            let pos = ri[[n, c, yy, xx]] as usize;
            assert_eq!(got[[n, c, pos / shape[3], pos % shape[3]]], v);
            assert_eq!(x[[n, c, pos / shape[3], pos % shape[3]]], v);
        }
        let nonzero = got.iter().filter(|v| **v != 0.0).count();
        let distinct: std::collections::HashSet<_> = ri
            .indexed_iter()
            .map(|((n, c, _, _), &i)| (n, c, i))
            .collect();
        assert_eq!(nonzero, distinct.len());
    }
}

#[test]
fn unpool_with_repeated_indices_keeps_the_last_writer() {
    let gpu = gpu();
    let x = Array4::from_shape_vec([1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    let idx = Array4::from_shape_vec([1, 1, 2, 2], vec![5i64, 5, 0, 5]).unwrap();
    let p = MaxUnpool2dParams::new(2);
    let want = reference::pool::max_unpool2d(&p, x.view(), idx.view()).unwrap();
    assert_eq!(want[[0, 0, 1, 1]], 4.0);
    let xt = gpu.upload(x.view()).unwrap();
    let it = gpu.upload_indices(idx.view()).unwrap();
    let mut rec = gpu.recorder();
    let y = segblocks::ops::pool::max_unpool2d(&mut rec, &p, &xt, &it).unwrap();
    assert_eq!(rec.download(&y).unwrap(), want);
}

#[test]
fn global_and_adaptive_pooling() {
    let gpu = gpu();
    let mut r = rng(4);
    for shape in [[2, 5, 7, 9], [1, 3, 1, 1], [1, 2, 64, 64], [2, 65, 4, 3]] {
        let x = random4(&mut r, shape);
        let xt = gpu.upload(x.view()).unwrap();
        for kind in [GlobalPool::Avg, GlobalPool::Max] {
            let want = reference::pool::global_pool(kind, x.view()).unwrap();
            for kernel in GlobalPoolKernel::ALL {
                // Fresh (zeroed) buffers: a recycled output of the previous variant would
                // hide values this one fails to write.
                gpu.trim_pool();
                let mut rec = gpu.recorder();
                let y = global_pool_with(&mut rec, kind, &xt, kernel).unwrap();
                let got = rec.download(&y).unwrap();
                let tol = want.mapv(|v| 1e-6 * (1.0 + v.abs()));
                assert_close(
                    got.view(),
                    want.view(),
                    tol.view(),
                    &format!("{kind:?} {kernel:?} {shape:?}"),
                );
            }
        }
        for out in [(1, 1), (3, 5), (2, 2), (9, 4)] {
            let p = AdaptiveAvgPool2dParams::new(out);
            let want = reference::pool::adaptive_avg_pool2d(&p, x.view()).unwrap();
            let mut rec = gpu.recorder();
            let y = segblocks::ops::pool::adaptive_avg_pool2d(&mut rec, &p, &xt).unwrap();
            let got = rec.download(&y).unwrap();
            // Windows up to 64x64 summed in f32: relative error within window * eps.
            let tol = want.mapv(|v| 1e-5 * (1.0 + v.abs()));
            assert_close(
                got.view(),
                want.view(),
                tol.view(),
                &format!("adaptive {out:?} {shape:?}"),
            );
        }
    }
    // A large mean relative to the spread stays accurate (compensated summation), on the
    // largest plane of each kernel, read as vec4s or as single values.
    for shape in [[1, 1, 256, 256], [1, 4, 128, 128], [1, 4, 127, 129]] {
        let x = Array4::from_shape_fn(shape, |(_, c, y, x)| {
            1000.0 + ((y * 7 + x + c) % 5) as f32 * 0.001
        });
        let want = reference::pool::global_pool(GlobalPool::Avg, x.view()).unwrap();
        let xt = gpu.upload(x.view()).unwrap();
        for kernel in GlobalPoolKernel::ALL
            .into_iter()
            .filter(|k| k.supports(shape))
        {
            gpu.trim_pool();
            let mut rec = gpu.recorder();
            let y = global_pool_with(&mut rec, GlobalPool::Avg, &xt, kernel).unwrap();
            let got = rec.download(&y).unwrap();
            let err = (&got - &want).mapv(f32::abs).fold(0.0f32, |a, &b| a.max(b));
            assert!(err < 1e-4, "{kernel:?} {shape:?}: {got} vs {want}");
        }
    }
    // NaN propagates through the maximum, read as vec4s or one by one.
    for shape in [[1, 6, 4, 4], [1, 6, 3, 3]] {
        let mut x = random4(&mut r, shape);
        x[[0, 2, 1, 2]] = f32::NAN;
        let xt = gpu.upload(x.view()).unwrap();
        for kernel in GlobalPoolKernel::ALL {
            gpu.trim_pool();
            let mut rec = gpu.recorder();
            let y = global_pool_with(&mut rec, GlobalPool::Max, &xt, kernel).unwrap();
            let got = rec.download(&y).unwrap();
            let nan: Vec<bool> = got.iter().map(|v| v.is_nan()).collect();
            assert_eq!(
                nan,
                [false, false, true, false, false, false],
                "{kernel:?} {shape:?}"
            );
        }
    }
    // A plane past the one-invocation kernel's: a typed error when it is forced.
    let xt = gpu
        .upload(Array4::<f32>::zeros([1, 4, 129, 128]).view())
        .unwrap();
    let mut rec = gpu.recorder();
    let forced = global_pool_with(&mut rec, GlobalPool::Avg, &xt, GlobalPoolKernel::Invocation);
    assert!(
        matches!(forced, Err(Error::InvalidParam { name: "kernel", .. })),
        "{forced:?}"
    );
    // The choice: many small planes one per invocation on a CPU adapter, a workgroup per
    // plane on a GPU, for a single plane, or past the largest plane.
    let cpu = DeviceCaps {
        cpu: true,
        ..gpu.caps().clone()
    };
    let discrete = DeviceCaps {
        cpu: false,
        ..gpu.caps().clone()
    };
    for (shape, caps, want) in [
        ([1, 960, 16, 16], &cpu, GlobalPoolKernel::Invocation),
        ([1, 960, 16, 16], &discrete, GlobalPoolKernel::Workgroup),
        ([1, 1, 64, 64], &cpu, GlobalPoolKernel::Workgroup),
        ([1, 16, 256, 256], &cpu, GlobalPoolKernel::Workgroup),
    ] {
        assert_eq!(select_global_kernel(shape, caps), want, "{shape:?}");
    }
}

/// Planes and bins longer than one invocation may loop over (Mesa ends an invocation after
/// 65,535 loop iterations and used to return wrong results past it) are split: a global
/// pool over 4.2 M values (not a multiple of 4, so read one by one), adaptive bins of
/// 512 x 512. Windows that cannot be split are refused with a typed error just past the
/// budget and computed exactly just below it.
#[test]
fn pooling_past_one_invocations_loop_budget() {
    let gpu = gpu();
    let mut r = rng(9);
    let x = random4(&mut r, [1, 1, 2047, 2047]).mapv(|v| v + 0.5);
    let xt = gpu.upload(x.view()).unwrap();
    for kind in [GlobalPool::Avg, GlobalPool::Max] {
        let want = reference::pool::global_pool(kind, x.view()).unwrap();
        let mut rec = gpu.recorder();
        let y = segblocks::ops::pool::global_pool(&mut rec, kind, &xt).unwrap();
        let got = rec.download(&y).unwrap();
        let tol = want.mapv(|v| 1e-5 * (1.0 + v.abs()));
        assert_close(got.view(), want.view(), tol.view(), &format!("{kind:?}"));
    }
    for out in [(2, 2), (3, 5)] {
        let p = AdaptiveAvgPool2dParams::new(out);
        let want = reference::pool::adaptive_avg_pool2d(&p, x.view()).unwrap();
        let mut rec = gpu.recorder();
        let y = segblocks::ops::pool::adaptive_avg_pool2d(&mut rec, &p, &xt).unwrap();
        let got = rec.download(&y).unwrap();
        let tol = want.mapv(|v| 1e-5 * (1.0 + v.abs()));
        assert_close(
            got.view(),
            want.view(),
            tol.view(),
            &format!("adaptive {out:?}"),
        );
    }
    // A k x k window: k + k^2 loop iterations (one output per row, so one per strip).
    let fits = (1..)
        .take_while(|k| k + k * k <= LOOP_BUDGET as usize)
        .last()
        .unwrap();
    for k in [fits, fits + 1] {
        let x = random4(&mut r, [1, 1, k + 1, k + 1]);
        let xt = gpu.upload(x.view()).unwrap();
        let (mp, ap) = (MaxPool2dParams::new(k), AvgPool2dParams::new(k));
        let mut rec = gpu.recorder();
        let max = segblocks::ops::pool::max_pool2d(&mut rec, &mp, &xt);
        let avg = segblocks::ops::pool::avg_pool2d(&mut rec, &ap, &xt);
        if k == fits {
            let (max, avg) = (max.unwrap(), avg.unwrap());
            let got = rec.download_many(&[&max.0, &avg]).unwrap();
            let want_max = reference::pool::max_pool2d(&mp, x.view()).unwrap().0;
            let want_avg = reference::pool::avg_pool2d(&ap, x.view()).unwrap();
            assert_eq!(got[0], want_max, "max pool {k}x{k}");
            let tol = want_avg.mapv(|v| 1e-5 * (1.0 + v.abs()));
            assert_close(got[1].view(), want_avg.view(), tol.view(), "avg pool");
        } else {
            for result in [max.map(|m| m.0), avg] {
                match result {
                    Err(Error::TooLarge { unit, limit, .. }) => {
                        assert_eq!(
                            (unit, limit),
                            ("loop iterations per invocation", LOOP_BUDGET)
                        )
                    }
                    other => panic!("{k}x{k} window: {other:?}"),
                }
            }
        }
    }
}

/// Adaptive bins on axes longer than 65,536: the kernels' bin edges were `(o + 1) * W`
/// in 32 bits, which overflowed in the first pass of a two-pass pooling (it keeps the
/// axis, so `o` runs to W): bins past the overflow averaged the wrong columns. Integer
/// data and bins of a power of two make every output exact. A single bin longer than one
/// invocation may loop over (adaptive average to 1 x 1) takes the global pool.
#[test]
fn adaptive_bins_of_long_axes() {
    let gpu = gpu();
    let mut r = rng(12);
    for (shape, out) in [
        ([1, 1, 1, 131_072], (1, 8)),
        ([1, 2, 65_544, 2], (8, 1)),
        ([1, 1, 3, 300_000], (1, 1)),
    ] {
        let x = integers4(&mut r, shape, -3, 3);
        let xt = gpu.upload(x.view()).unwrap();
        let avg = AdaptiveAvgPool2dParams::new(out);
        let max = AdaptiveMaxPool2dParams::new(out);
        let mut rec = gpu.recorder();
        let a = segblocks::ops::pool::adaptive_avg_pool2d(&mut rec, &avg, &xt).unwrap();
        let got = rec.download(&a).unwrap();
        let want = reference::pool::adaptive_avg_pool2d(&avg, x.view()).unwrap();
        // Exact sums (integers), then a rounding or two in the means: one wrong element of
        // a bin is 30 times this bound.
        let tol = want.mapv(|v| 2e-6 * (1.0 + v.abs()));
        let what = format!("avg {shape:?} -> {out:?}");
        assert_close(got.view(), want.view(), tol.view(), &what);
        if out == (1, 1) {
            continue;
        }
        let mut rec = gpu.recorder();
        let (m, i) = segblocks::ops::pool::adaptive_max_pool2d(&mut rec, &max, &xt).unwrap();
        rec.submit().unwrap();
        let (want_m, want_i) = reference::pool::adaptive_max_pool2d(&max, x.view()).unwrap();
        assert_eq!(
            gpu.download(&m).unwrap(),
            want_m,
            "max {shape:?} -> {out:?}"
        );
        assert_eq!(
            gpu.download_indices(&i).unwrap(),
            want_i,
            "indices {shape:?}"
        );
    }
    // The edges' products now stay below OH * (H % OH) + OH: sizes the plain formula
    // refused are accepted, the rest still refused by name.
    let keep = AdaptiveAvgPool2dParams::new((70_000, 1));
    assert_eq!(
        keep.output_shape([1, 1, 140_000, 3]).unwrap(),
        [1, 1, 70_000, 1]
    );
    match AdaptiveAvgPool2dParams::new((1, 100_000)).output_shape([1, 1, 1, 199_999]) {
        Err(Error::InvalidParam { name, .. }) => assert_eq!(name, "output_size"),
        other => panic!("{other:?}"),
    }
}

/// A window of 65,536 x 65,536 over a small input (legal: the padding is half the
/// kernel): the count that includes the padding is 2^32, which overflowed the kernel's
/// i32 product to 0 (an infinite mean).
#[test]
fn avg_pool_windows_past_32_bit_counts() {
    let gpu = gpu();
    let x = integers4(&mut rng(13), [1, 2, 100, 100], 0, 3);
    let xt = gpu.upload(x.view()).unwrap();
    for k in [65_536, 46_341] {
        let p = AvgPool2dParams::new(k).padding(k / 2);
        let want = reference::pool::avg_pool2d(&p, x.view()).unwrap();
        let mut rec = gpu.recorder();
        let y = segblocks::ops::pool::avg_pool2d(&mut rec, &p, &xt).unwrap();
        let got = rec.download(&y).unwrap();
        let tol = want.mapv(|v| 1e-6 * v.abs());
        assert!(want.iter().all(|v| v.is_finite() && *v > 0.0), "{want:?}");
        assert_close(got.view(), want.view(), tol.view(), &format!("{k}"));
    }
}

/// In ceil mode PyTorch keeps a last window that starts inside the input even when the
/// (dilated) window is longer than the padded input; the shapes below are torch 2.15's.
#[test]
fn ceil_mode_keeps_windows_that_start_inside_the_input() {
    let gpu = gpu();
    let mut r = rng(10);
    let p = MaxPool2dParams::new(2).dilation(2).ceil_mode(true);
    assert_eq!(p.output_shape([1, 1, 4, 2]).unwrap(), [1, 1, 2, 1]);
    check_pool(p, &random4(&mut r, [1, 1, 4, 2]));
    check_pool(p.stride(3), &random4(&mut r, [2, 3, 5, 3]));
    let a = AvgPool2dParams::new(2).ceil_mode(true);
    assert_eq!(a.output_shape([2, 12, 1, 8]).unwrap(), [2, 12, 1, 4]);
    for (a, shape) in [
        (a, [2, 12, 1, 8]),
        (a.count_include_pad(false), [1, 2, 1, 5]),
        (
            AvgPool2dParams::new(3).stride(2).ceil_mode(true),
            [1, 1, 2, 6],
        ),
    ] {
        let x = random4(&mut r, shape);
        let want = reference::pool::avg_pool2d(&a, x.view()).unwrap();
        let mut rec = gpu.recorder();
        let y =
            segblocks::ops::pool::avg_pool2d(&mut rec, &a, &gpu.upload(x.view()).unwrap()).unwrap();
        let got = rec.download(&y).unwrap();
        let tol = want.mapv(|v| 1e-6 * (1.0 + v.abs()));
        assert_close(
            got.view(),
            want.view(),
            tol.view(),
            &format!("{a:?} {shape:?}"),
        );
    }
    // Without ceil mode the same window leaves no output: a typed error, as in PyTorch.
    assert!(MaxPool2dParams::new(2)
        .dilation(2)
        .output_shape([1, 1, 4, 2])
        .is_err());
}

fn expect_param(result: segblocks::Result<impl std::fmt::Debug>, name: &str) {
    match result {
        Err(Error::InvalidParam { name: n, reason }) => assert_eq!(n, name, "{reason}"),
        other => panic!("expected InvalidParam({name}), got {other:?}"),
    }
}

#[test]
fn bad_input_is_a_typed_error() {
    let s = [1, 1, 6, 6];
    expect_param(MaxPool2dParams::new(2).stride(0).output_shape(s), "stride");
    expect_param(MaxPool2dParams::new(0).output_shape(s), "kernel_size");
    expect_param(
        MaxPool2dParams::new(2).dilation(0).output_shape(s),
        "dilation",
    );
    expect_param(
        MaxPool2dParams::new(2).padding(2).output_shape(s),
        "padding",
    );
    expect_param(MaxPool2dParams::new(7).output_shape(s), "kernel_size");
    expect_param(MaxPool2dParams::new(2).output_shape([1, 0, 6, 6]), "input");
    expect_param(
        MaxUnpool2dParams::new(2).stride(0).output_shape(s),
        "stride",
    );
    // 3x3 pooled by 2 gives 6x6 by default; 7x7 is reachable, 8x8 is not.
    assert_eq!(
        MaxUnpool2dParams::new(2)
            .output_size(7)
            .output_shape([1, 1, 3, 3])
            .unwrap(),
        [1, 1, 7, 7]
    );
    expect_param(
        MaxUnpool2dParams::new(2)
            .output_size(8)
            .output_shape([1, 1, 3, 3]),
        "output_size",
    );
    expect_param(
        MaxUnpool2dParams::new(2)
            .output_size(4)
            .output_shape([1, 1, 3, 3]),
        "output_size",
    );
    // Pooled by 2 with padding 1 from one row: the default size is 0, but PyTorch takes
    // an output_size of 1 (within a stride of it); 0 stays refused.
    let padded = MaxUnpool2dParams::new(2).padding(1);
    expect_param(padded.output_shape([1, 1, 1, 1]), "padding");
    assert_eq!(
        padded.output_size(1).output_shape([1, 1, 1, 1]).unwrap(),
        [1, 1, 1, 1]
    );
    expect_param(
        padded.output_size((0, 1)).output_shape([1, 1, 1, 1]),
        "output_size",
    );
    expect_param(
        AdaptiveAvgPool2dParams::new(0).output_shape(s),
        "output_size",
    );
    let gpu = gpu();
    let x = gpu.upload(Array4::zeros([1, 1, 3, 3]).view()).unwrap();
    // Indices of the wrong shape, and indices pointing outside the output plane.
    let wrong = gpu
        .upload_indices(Array4::zeros([1, 1, 3, 2]).view())
        .unwrap();
    let mut rec = gpu.recorder();
    assert!(matches!(
        segblocks::ops::pool::max_unpool2d(&mut rec, &MaxUnpool2dParams::new(2), &x, &wrong),
        Err(Error::ShapeMismatch {
            name: "indices",
            ..
        })
    ));
    let far = gpu
        .upload_indices(Array4::from_elem([1, 1, 3, 3], 36i64).view())
        .unwrap();
    expect_param(
        segblocks::ops::pool::max_unpool2d(&mut rec, &MaxUnpool2dParams::new(2), &x, &far),
        "indices",
    );
    expect_param(
        gpu.upload_indices(Array4::from_elem([1, 1, 1, 1], -1i64).view()),
        "indices",
    );
}

#[test]
fn costs() {
    let c = MaxPool2dParams::new(2).cost([1, 64, 112, 112]).unwrap();
    assert_eq!((c.params, c.macs), (0, 64 * 56 * 56 * 4));
    assert_eq!(c.bytes, 4 * (64 * 112 * 112 + 2 * 64 * 56 * 56));
    let c = MaxUnpool2dParams::new(2).cost([1, 64, 56, 56]).unwrap();
    assert_eq!(c.bytes, 4 * (2 * 64 * 56 * 56 + 64 * 112 * 112));
}

#[test]
fn avg_pool_matches_pytorch_and_reference() {
    use segblocks::ops::pool::AvgPool2dParams;
    let text = common::golden::golden_text("tests/golden/avg_pool.json");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let us = |v: &serde_json::Value| v.as_u64().unwrap() as usize;
    let pair = |v: &serde_json::Value| (us(&v[0]), us(&v[1]));
    // NaN and infinities as "nan" / "inf" / "-inf" (fuzz_golden.py --non-finite).
    let floats = |v: &serde_json::Value| common::golden::floats(v, "avg_pool", "values");
    let shape4 = |v: &serde_json::Value| [us(&v[0]), us(&v[1]), us(&v[2]), us(&v[3])];
    let gpu = gpu();
    for case in doc["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let p = AvgPool2dParams::new(pair(&case["kernel_size"]))
            .stride(pair(&case["stride"]))
            .padding(pair(&case["padding"]))
            .ceil_mode(case["ceil_mode"].as_bool().unwrap())
            .count_include_pad(case["count_include_pad"].as_bool().unwrap())
            .divisor_override(case["divisor_override"].as_u64().map(|d| d as usize));
        let input = shape4(&case["input_shape"]);
        let x = Array4::from_shape_vec(input, floats(&case["input"])).unwrap();
        let want =
            Array4::from_shape_vec(shape4(&case["output_shape"]), floats(&case["output"])).unwrap();
        assert_eq!(
            p.output_shape(input).unwrap(),
            shape4(&case["output_shape"]),
            "{name}"
        );
        let tol = want.mapv(|v| 1e-6 * (1.0 + v.abs()));
        let cpu = reference::pool::avg_pool2d(&p, x.view()).unwrap();
        assert_close_non_finite(
            cpu.view(),
            want.view(),
            tol.view(),
            &format!("reference {name}"),
        );
        let mut rec = gpu.recorder();
        let y =
            segblocks::ops::pool::avg_pool2d(&mut rec, &p, &gpu.upload(x.view()).unwrap()).unwrap();
        let got = rec.download(&y).unwrap();
        assert_close_non_finite(got.view(), want.view(), tol.view(), &format!("GPU {name}"));
    }
    assert!(matches!(
        AvgPool2dParams::new(2)
            .divisor_override(Some(0))
            .output_shape([1, 1, 4, 4]),
        Err(Error::InvalidParam {
            name: "divisor_override",
            ..
        })
    ));
    assert!(matches!(
        AvgPool2dParams::new(2)
            .padding(2)
            .output_shape([1, 1, 4, 4]),
        Err(Error::InvalidParam {
            name: "padding",
            ..
        })
    ));
}
