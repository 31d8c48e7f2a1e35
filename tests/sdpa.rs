//! Scaled dot-product attention (`ops::sdpa`, `shaders/sdpa.wgsl`) against the CPU
//! reference: one and several heads, batch 2, odd maps, head sizes that are not multiples
//! of 4, value channels split over several invocations, more keys than queries and the
//! reverse, a key walk longer than the loop budget's per-loop share, an explicit scale,
//! non-finite inputs, and the typed errors; OCR's spatial gather (the same kernel with
//! one-hot queries) the same way. PyTorch's numbers for the op are pinned in
//! `tests/golden_channel.rs`.

mod common;

use common::*;
use ndarray::{s, Array4};
use segblocks::ops::sdpa::{
    scaled_dot_product_attention, scaled_dot_product_attention_with, select_kernel, spatial_gather,
    spatial_gather_with, SdpaKernel, SdpaParams, SoftmaxScope, SpatialGatherParams, MAX_HEAD_DIM,
};
use segblocks::{reference, Error, Recorder, Tensor};

/// The op with each kernel variant that takes these shapes forced, each result handed to
/// `check` with the variant's name (the variants of one key step agree bit for bit: the
/// same arithmetic in the same order a query); the default entry point must give one of
/// them exactly.
fn run(
    q: &Array4<f32>,
    k: &Array4<f32>,
    v: &Array4<f32>,
    p: SdpaParams,
    check: impl Fn(&Array4<f32>, &str),
) {
    let gpu = gpu();
    let (qt, kt, vt) = (
        gpu.upload(q.view()).unwrap(),
        gpu.upload(k.view()).unwrap(),
        gpu.upload(v.view()).unwrap(),
    );
    let keys = k.shape()[2] * k.shape()[3];
    every_variant(
        keys,
        |rec, kernel| scaled_dot_product_attention_with(rec, (&qt, &kt, &vt), p, kernel),
        |rec| scaled_dot_product_attention(rec, &qt, &kt, &vt, p),
        check,
    );
}

/// Records `op` with each kernel variant that takes `keys` keys and the default entry
/// point `default`, checks that the variants of one key step agree bit for bit and that
/// the default gives one of them exactly, hands each result to `check`, and checks that a
/// variant needing 4 keys a step refuses other key counts by name.
fn every_variant(
    keys: usize,
    op: impl Fn(&mut Recorder<'_>, SdpaKernel) -> segblocks::Result<Tensor>,
    default: impl Fn(&mut Recorder<'_>) -> segblocks::Result<Tensor>,
    check: impl Fn(&Array4<f32>, &str),
) {
    let gpu = gpu();
    let outs: Vec<(SdpaKernel, Array4<f32>)> = SdpaKernel::ALL
        .iter()
        .filter(|kernel| kernel.supports(keys))
        .map(|&kernel| {
            let mut rec = gpu.recorder();
            let y = op(&mut rec, kernel).unwrap();
            (kernel, rec.download(&y).unwrap())
        })
        .collect();
    let same = |a: &Array4<f32>, b: &Array4<f32>| {
        a.iter()
            .zip(b.iter())
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
    };
    for pair in outs.chunks(2) {
        if let [(k0, a), (k1, b)] = pair {
            assert!(same(a, b), "{k1:?} differs from {k0:?}");
        }
    }
    let mut rec = gpu.recorder();
    let y = default(&mut rec).unwrap();
    let default = rec.download(&y).unwrap();
    assert!(
        outs.iter().any(|(_, o)| same(o, &default)),
        "the default kernel"
    );
    for (kernel, out) in &outs {
        check(out, &format!("{kernel:?}"));
    }
    if !keys.is_multiple_of(4) {
        let mut rec = gpu.recorder();
        let err = op(&mut rec, SdpaKernel::Queries4Keys4).unwrap_err();
        assert!(
            matches!(err, Error::InvalidParam { name: "kernel", .. }),
            "{err}"
        );
    }
}

#[test]
fn kernel_choice_keeps_four_workgroups() {
    assert_eq!(select_kernel(1, 128 * 128, 256), SdpaKernel::Queries8Keys4);
    assert_eq!(select_kernel(8, 256, 255), SdpaKernel::Queries8);
    assert_eq!(select_kernel(8, 64, 64), SdpaKernel::Queries4Keys4);
    assert_eq!(select_kernel(1, 7, 9), SdpaKernel::Queries4);
}

/// `(batch, heads, E, Ev, query map, key map)`.
type Case = (usize, usize, usize, usize, [usize; 2], [usize; 2]);

// Three tests, so that the test threads share the driver's compiles of their kernels.

#[test]
fn matches_the_reference_one_and_several_heads() {
    matches_the_reference(&[
        // SegFormer's stage 1 (mit_b0 at 64 x 64: 16 x 16 queries, sr 8: 2 x 2 keys).
        (1, 1, 32, 32, [16, 16], [2, 2]),
        // Several heads, batch 2, odd maps.
        (2, 5, 32, 32, [5, 7], [3, 3]),
        (2, 2, 64, 64, [9, 4], [9, 4]),
    ]);
}

#[test]
fn matches_the_reference_at_odd_head_sizes() {
    matches_the_reference(&[
        // Head sizes that are not multiples of 4; E != Ev.
        (1, 3, 3, 5, [7, 5], [4, 6]),
        (2, 1, 1, 1, [1, 1], [1, 1]),
        // Value channels split over invocations (80 -> 2 x 40; 130 -> 3 x 44 / 42).
        (1, 1, 16, 80, [6, 6], [5, 5]),
        (1, 2, 8, 130, [3, 5], [2, 7]),
    ]);
}

#[test]
fn matches_the_reference_with_one_key_or_one_query() {
    matches_the_reference(&[
        (1, 2, 32, 32, [4, 4], [1, 1]),
        (2, 1, 12, 7, [1, 1], [33, 31]),
    ]);
}

/// Every case with the default scale and an explicit one, against the reference.
fn matches_the_reference(cases: &[Case]) {
    let mut r = rng(41);
    for &(n, heads, e, ev, [qh, qw], [kh, kw]) in cases {
        let q = random4(&mut r, [n, heads * e, qh, qw]).mapv(|v| 2.0 * v);
        let k = random4(&mut r, [n, heads * e, kh, kw]).mapv(|v| 2.0 * v);
        let v = random4(&mut r, [n, heads * ev, kh, kw]);
        for p in [SdpaParams::new(heads), SdpaParams::new(heads).scale(0.37)] {
            let want =
                reference::sdpa::scaled_dot_product_attention(q.view(), k.view(), v.view(), p)
                    .unwrap();
            // A convex combination of the values: the scores' f32 rounding and WGSL's
            // exp (a few ulps) move the weights by ~1e-6 relative.
            let bound = want.mapv(|_| 2e-5);
            let case = format!("{n}x{heads} heads E {e} Ev {ev} q {qh}x{qw} k {kh}x{kw} {p:?}");
            run(&q, &k, &v, p, |got, kernel| {
                assert_close(
                    got.view(),
                    want.view(),
                    bound.view(),
                    &format!("{case} {kernel}"),
                )
            });
        }
    }
}

/// One softmax over every score of a sample and head, and the output written token-major
/// (smp MAnet's position attention: `softmax(scores.view(N, -1))`, then `reshape` of the
/// token-major product), alone and together, in one pass and through key splits.
#[test]
fn global_softmax_and_token_major_output_match_the_reference() {
    let mut r = rng(44);
    // (batch, heads, E, Ev, query map, key map)
    let cases: [Case; 4] = [
        (2, 1, 8, 12, [3, 5], [3, 5]),
        (1, 2, 4, 6, [4, 4], [2, 3]),
        (2, 1, 16, 40, [6, 7], [6, 7]),
        // 900 keys of 64 channels: split, the global statistics over the splits.
        (1, 1, 64, 64, [2, 3], [30, 30]),
    ];
    for (n, heads, e, ev, [qh, qw], [kh, kw]) in cases {
        let q = random4(&mut r, [n, heads * e, qh, qw]);
        let k = random4(&mut r, [n, heads * e, kh, kw]).mapv(|v| 0.5 * v);
        let v = random4(&mut r, [n, heads * ev, kh, kw]);
        for (scope, token_major) in [
            (SoftmaxScope::All, false),
            (SoftmaxScope::Keys, true),
            (SoftmaxScope::All, true),
        ] {
            let p = SdpaParams::new(heads)
                .scale(1.0)
                .softmax(scope)
                .token_major(token_major);
            let want =
                reference::sdpa::scaled_dot_product_attention(q.view(), k.view(), v.view(), p)
                    .unwrap();
            // The global softmax's weights are small (1 / (L * M) each): the same bound
            // relative to the largest output.
            let top = want.iter().fold(0f32, |m, x| m.max(x.abs()));
            let bound = want.mapv(|_| 2e-5 * top.max(1e-3));
            let case = format!("{n}x{heads} E {e} Ev {ev} q {qh}x{qw} k {kh}x{kw} {p:?}");
            run(&q, &k, &v, p, |got, kernel| {
                assert_close(
                    got.view(),
                    want.view(),
                    bound.view(),
                    &format!("{case} {kernel}"),
                )
            });
        }
    }
    // A NaN score poisons its whole sample under the global softmax, not the other one.
    let q = random4(&mut r, [2, 4, 3, 3]);
    let mut k = random4(&mut r, [2, 4, 3, 3]);
    k[[0, 1, 2, 2]] = f32::NAN;
    let v = random4(&mut r, [2, 4, 3, 3]);
    let p = SdpaParams::new(1).softmax(SoftmaxScope::All);
    run(&q, &k, &v, p, |got, kernel| {
        let sample = |i| got.index_axis(ndarray::Axis(0), i);
        assert!(sample(0).iter().all(|x| x.is_nan()), "{kernel}");
        assert!(sample(1).iter().all(|x| x.is_finite()), "{kernel}");
    });
}

/// 12,288 keys of 64 channels: a walk of 12,288 x (64 + 64) inner iterations, far past
/// Mesa's per-invocation loop limit if it counted the whole nest (the results would be
/// silently wrong); the queries sample it sparsely so that the reference stays quick.
#[test]
fn long_key_walks_are_complete() {
    let mut r = rng(42);
    let (e, keys) = (64, [96, 128]);
    let q = random4(&mut r, [1, e, 2, 3]);
    let k = random4(&mut r, [1, e, keys[0], keys[1]]).mapv(|v| 0.25 * v);
    // Values that grow along the keys: dropping the walk's tail lowers every output.
    let mut v = random4(&mut r, [1, e, keys[0], keys[1]]);
    for (idx, x) in v.indexed_iter_mut() {
        *x += (idx.2 * keys[1] + idx.3) as f32 / 1000.0;
    }
    let p = SdpaParams::new(1);
    let want =
        reference::sdpa::scaled_dot_product_attention(q.view(), k.view(), v.view(), p).unwrap();
    let bound = want.mapv(|w| 2e-5 * (1.0 + w.abs()));
    run(&q, &k, &v, p, |got, kernel| {
        assert_close(
            got.view(),
            want.view(),
            bound.view(),
            &format!("12,288 keys {kernel}"),
        )
    });
}

/// PyTorch's softmax on non-finite scores: a NaN or +inf score makes the query's row NaN,
/// -inf scores get weight 0, and a query whose scores are all -inf gets NaN; a NaN value
/// reaches every query that weights it.
#[test]
fn non_finite_inputs_follow_pytorch() {
    let mut r = rng(43);
    let q = random4(&mut r, [1, 4, 2, 3]);
    let mut k = random4(&mut r, [1, 4, 3, 2]);
    let mut v = random4(&mut r, [1, 4, 3, 2]);
    let p = SdpaParams::new(2);
    // Head 0: key 1 has +inf channels for query 0 only where its q is positive, so mixed
    // signs give NaN or +-inf scores; head 1: value NaN at key 4.
    k.slice_mut(s![0, 0..2, 0, 1]).fill(f32::INFINITY);
    v[[0, 3, 2, 0]] = f32::NAN;
    let mut q2 = q.clone();
    // Query (1, 2) of head 1 gets -inf scores everywhere: NaN.
    q2[[0, 2, 1, 2]] = f32::NEG_INFINITY;
    q2[[0, 3, 1, 2]] = 0.0;
    k.slice_mut(s![0, 2, .., ..])
        .mapv_inplace(|x| x.abs() + 0.5);
    let want =
        reference::sdpa::scaled_dot_product_attention(q2.view(), k.view(), v.view(), p).unwrap();
    assert!(want.iter().any(|x| x.is_nan()) && want.iter().any(|x| x.is_finite()));
    let bound = want.mapv(|_| 2e-5);
    run(&q2, &k, &v, p, |got, kernel| {
        assert_close_non_finite(got.view(), want.view(), bound.view(), kernel)
    });

    // The same through the key splits (800 keys of 64 channels: 4 splits joined by the
    // combining pass): +inf keys in the third split only, a query of -inf scores.
    let q = random4(&mut r, [1, 64, 2, 2]);
    let mut k = random4(&mut r, [1, 64, 40, 20]).mapv(|x| 0.3 * x);
    let mut v = random4(&mut r, [1, 64, 40, 20]);
    k.slice_mut(s![0, 0..3, 30, 5]).fill(f32::INFINITY);
    v[[0, 7, 2, 3]] = f32::NAN;
    let mut q2 = q.clone();
    q2.slice_mut(s![0, .., 1, 1]).fill(0.0);
    q2[[0, 63, 1, 1]] = f32::NEG_INFINITY;
    k.slice_mut(s![0, 63, .., ..])
        .mapv_inplace(|x| x.abs() + 0.5);
    let p = SdpaParams::new(1);
    let want =
        reference::sdpa::scaled_dot_product_attention(q2.view(), k.view(), v.view(), p).unwrap();
    assert!(want.iter().any(|x| x.is_nan()) && want.iter().any(|x| x.is_finite()));
    let bound = want.mapv(|_| 2e-5);
    run(&q2, &k, &v, p, |got, kernel| {
        assert_close_non_finite(got.view(), want.view(), bound.view(), kernel)
    });
}

#[test]
fn bad_shapes_are_typed_errors() {
    let p = SdpaParams::new(2);
    let named = |r: Result<[usize; 4], Error>| match r {
        Err(Error::InvalidParam { name, .. }) | Err(Error::ShapeMismatch { name, .. }) => name,
        other => panic!("expected a typed error, got {other:?}"),
    };
    let ok = p.output_shape([2, 8, 3, 5], [2, 8, 2, 2], [2, 6, 2, 2]);
    assert_eq!(ok.unwrap(), [2, 6, 3, 5]);
    let e = 2 * (MAX_HEAD_DIM + 1);
    let (q, kv) = ([1, 8, 3, 5], [1, 8, 2, 2]);
    // (params, query, key, value, the parameter the error names)
    let bad = [
        (SdpaParams::new(0), q, kv, kv, "num_heads"),
        (SdpaParams::new(3), q, kv, [1, 9, 2, 2], "num_heads"),
        (
            SdpaParams::new(3),
            [1, 9, 3, 5],
            [1, 9, 2, 2],
            kv,
            "num_heads",
        ),
        (p, q, [1, 6, 2, 2], kv, "key"),
        (p, q, [2, 8, 2, 2], kv, "key"),
        (p, q, kv, [1, 8, 2, 3], "value"),
        (p, [1, 8, 0, 5], kv, kv, "query"),
        (p.scale(f32::NAN), q, kv, kv, "scale"),
        (p, [1, e, 3, 5], [1, e, 2, 2], kv, "query"),
    ];
    for (params, q, k, v, name) in bad {
        assert_eq!(
            named(params.output_shape(q, k, v)),
            name,
            "{params:?} {q:?} {k:?} {v:?}"
        );
    }
    // The recorder refuses the same shapes before recording anything.
    let gpu = gpu();
    let q = gpu
        .upload(Array4::<f32>::zeros([1, 8, 3, 5]).view())
        .unwrap();
    let k = gpu
        .upload(Array4::<f32>::zeros([1, 6, 2, 2]).view())
        .unwrap();
    let mut rec = gpu.recorder();
    let err = scaled_dot_product_attention(&mut rec, &q, &k, &k, p).unwrap_err();
    assert!(
        matches!(err, Error::ShapeMismatch { name: "key", .. }),
        "{err}"
    );
}

/// [`spatial_gather`] with each kernel variant that takes these shapes forced, as [`run`]
/// does for attention.
fn run_gather(
    probs: &Array4<f32>,
    feats: &Array4<f32>,
    p: SpatialGatherParams,
    check: impl Fn(&Array4<f32>, &str),
) {
    let gpu = gpu();
    let (pt, ft) = (
        gpu.upload(probs.view()).unwrap(),
        gpu.upload(feats.view()).unwrap(),
    );
    every_variant(
        probs.shape()[2] * probs.shape()[3],
        |rec, kernel| spatial_gather_with(rec, (&pt, &ft), p, kernel),
        |rec| spatial_gather(rec, &pt, &ft, p),
        check,
    );
}

/// OCR's spatial gather against the reference: batch 2, odd maps (pixel counts that are
/// not multiples of 4), Cityscapes' 19 classes, more classes than a head may have channels
/// (one-hot queries keep none in registers), value channels split over invocations, an
/// explicit scale, and a walk over 12,288 pixels split over the keys.
#[test]
fn spatial_gather_matches_the_reference() {
    let mut r = rng(45);
    // (batch, classes, channels, map, scale)
    let cases = [
        (2, 19, 24, [7, 9], 1.0),
        (1, 5, 70, [8, 6], 0.5),
        (3, 1, 3, [1, 1], 1.0),
        (1, MAX_HEAD_DIM + 44, 8, [5, 4], 1.0),
        (2, 3, 5, [96, 128], 2.0),
    ];
    for (n, classes, channels, [h, w], scale) in cases {
        let probs = random4(&mut r, [n, classes, h, w]).mapv(|v| 3.0 * v);
        let mut feats = random4(&mut r, [n, channels, h, w]);
        // Features that grow along the pixels: a dropped tail of the walk lowers them all.
        for (idx, x) in feats.indexed_iter_mut() {
            *x += (idx.2 * w + idx.3) as f32 / 1000.0;
        }
        let p = SpatialGatherParams::new().scale(scale);
        let want = reference::sdpa::spatial_gather(probs.view(), feats.view(), p).unwrap();
        assert_eq!(want.shape(), [n, channels, classes, 1]);
        let bound = want.mapv(|x| 2e-5 * (1.0 + x.abs()));
        let case = format!("{n}x{classes} classes {channels} channels {h}x{w} scale {scale}");
        run_gather(&probs, &feats, p, |got, kernel| {
            assert_close(
                got.view(),
                want.view(),
                bound.view(),
                &format!("{case} {kernel}"),
            )
        });
    }
}

/// PyTorch's softmax on non-finite logits: a class with a NaN or +inf logit, or only
/// -inf ones, gets NaN; -inf logits weigh 0; a NaN feature reaches every class.
#[test]
fn spatial_gather_non_finite_inputs_follow_pytorch() {
    let mut r = rng(46);
    let mut probs = random4(&mut r, [1, 6, 3, 5]);
    let mut feats = random4(&mut r, [1, 4, 3, 5]);
    probs[[0, 0, 1, 2]] = f32::NAN;
    probs[[0, 1, 2, 4]] = f32::INFINITY;
    probs.slice_mut(s![0, 2, .., ..]).fill(f32::NEG_INFINITY);
    probs.slice_mut(s![0, 3, 0, ..]).fill(f32::NEG_INFINITY);
    let p = SpatialGatherParams::new();
    let want = reference::sdpa::spatial_gather(probs.view(), feats.view(), p).unwrap();
    assert!(want.iter().any(|x| x.is_nan()) && want.iter().any(|x| x.is_finite()));
    let bound = want.mapv(|_| 2e-5);
    run_gather(&probs, &feats, p, |got, kernel| {
        assert_close_non_finite(got.view(), want.view(), bound.view(), kernel)
    });
    feats[[0, 3, 2, 2]] = f32::NAN;
    let want = reference::sdpa::spatial_gather(probs.view(), feats.view(), p).unwrap();
    assert!(want.slice(s![0, 3, .., 0]).iter().all(|x| x.is_nan()));
    run_gather(&probs, &feats, p, |got, kernel| {
        assert_close_non_finite(got.view(), want.view(), bound.view(), kernel)
    });
}

#[test]
fn spatial_gather_bad_shapes_are_typed_errors() {
    let p = SpatialGatherParams::new();
    let named = |r: Result<[usize; 4], Error>| match r {
        Err(Error::InvalidParam { name, .. }) | Err(Error::ShapeMismatch { name, .. }) => name,
        other => panic!("expected a typed error, got {other:?}"),
    };
    assert_eq!(
        p.output_shape([2, 19, 7, 9], [2, 48, 7, 9]).unwrap(),
        [2, 48, 19, 1]
    );
    // (params, probs, feats, the parameter the error names)
    let bad = [
        (p, [1, 19, 7, 9], [2, 48, 7, 9], "feats"),
        (p, [1, 19, 7, 9], [1, 48, 7, 8], "feats"),
        (p, [1, 0, 7, 9], [1, 48, 7, 9], "probs"),
        (p, [1, 19, 7, 9], [1, 48, 0, 9], "feats"),
        (
            p.scale(f32::INFINITY),
            [1, 19, 7, 9],
            [1, 48, 7, 9],
            "scale",
        ),
    ];
    for (params, probs, feats, name) in bad {
        assert_eq!(
            named(params.output_shape(probs, feats)),
            name,
            "{params:?} {probs:?} {feats:?}"
        );
    }
    // The recorder refuses the same shapes, and a kernel that needs 4 pixels a step on 63.
    let gpu = gpu();
    let probs = gpu
        .upload(Array4::<f32>::zeros([1, 19, 7, 9]).view())
        .unwrap();
    let feats = gpu
        .upload(Array4::<f32>::zeros([1, 48, 7, 8]).view())
        .unwrap();
    let mut rec = gpu.recorder();
    let err = spatial_gather(&mut rec, &probs, &feats, p).unwrap_err();
    assert!(
        matches!(err, Error::ShapeMismatch { name: "feats", .. }),
        "{err}"
    );
    let err =
        spatial_gather_with(&mut rec, (&probs, &probs), p, SdpaKernel::Queries8Keys4).unwrap_err();
    assert!(
        matches!(err, Error::InvalidParam { name: "kernel", .. }),
        "{err}"
    );
}
