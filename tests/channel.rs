//! Channel plumbing and attention: shuffle, concat and split compared exactly, residual
//! add, activations, gating, highway and residual attention, SE, ECA and CBAM against the
//! reference, and bad input.

mod common;

use common::*;
use ndarray::{Array1, Array4};
use segblocks::ops::attention::{
    eca_kernel_size, Cbam, CbamParams, Eca, EcaParams, SeGateKernel, SqueezeExcitation,
    SqueezeExcitationParams,
};
use segblocks::ops::channel::{self, ChannelPoolOrder};
use segblocks::ops::Activation;
use segblocks::{reference, Error, Tensor};

fn up(x: &Array4<f32>) -> Tensor {
    gpu().upload(x.view()).unwrap()
}

fn tol(want: &Array4<f32>, rel: f32) -> Array4<f32> {
    want.mapv(|v| rel * (1.0 + v.abs()))
}

#[test]
fn shuffle_concat_split_are_exact() {
    let gpu = gpu();
    let mut r = rng(1);
    for (shape, g) in [
        ([2, 6, 3, 5], 2),
        ([1, 12, 4, 4], 3),
        ([1, 232, 7, 7], 2),
        ([1, 5, 2, 3], 5),
    ] {
        let x = random4(&mut r, shape);
        let mut rec = gpu.recorder();
        let y = channel::channel_shuffle(&mut rec, &up(&x), g).unwrap();
        assert_eq!(
            rec.download(&y).unwrap(),
            reference::channel::channel_shuffle(x.view(), g).unwrap()
        );
    }
    // The seed's map: input channel i goes to (i mod (C/g)) * g + floor(i / (C/g)).
    let x = Array4::from_shape_fn([1, 6, 1, 1], |(_, c, _, _)| c as f32);
    let y = reference::channel::channel_shuffle(x.view(), 2).unwrap();
    for i in 0..6 {
        assert_eq!(y[[0, (i % 3) * 2 + i / 3, 0, 0]], i as f32);
    }
    let (a, b, c) = (
        random4(&mut r, [2, 3, 4, 5]),
        random4(&mut r, [2, 1, 4, 5]),
        random4(&mut r, [2, 4, 4, 5]),
    );
    let mut rec = gpu.recorder();
    let cat = channel::concat(&mut rec, &[&up(&a), &up(&b), &up(&c)]).unwrap();
    let parts = channel::split(&mut rec, &cat, &[3, 1, 4]).unwrap();
    rec.submit().unwrap();
    let want = reference::channel::concat(&[a.view(), b.view(), c.view()]).unwrap();
    assert_eq!(gpu.download(&cat).unwrap(), want);
    for (part, orig) in parts.iter().zip([&a, &b, &c]) {
        assert_eq!(&gpu.download(part).unwrap(), orig);
    }
}

/// ShuffleNetV2's concatenate-and-shuffle in two strided copies equals concat then
/// shuffle(2), with `a` as wide as `b` (a stride-2 unit) or twice as wide (a stride-1 unit
/// passing its whole input); `narrow` equals a slice.
#[test]
fn shuffle_pair_and_narrow_are_exact() {
    let gpu = gpu();
    let mut r = rng(2);
    for (a_shape, b_shape) in [
        ([2, 5, 3, 7], [2, 5, 3, 7]),
        ([1, 232, 7, 7], [1, 116, 7, 7]),
        ([3, 4, 1, 17], [3, 3, 1, 17]),
    ] {
        let (a, b) = (random4(&mut r, a_shape), random4(&mut r, b_shape));
        let mut rec = gpu.recorder();
        let y = channel::shuffle_pair(&mut rec, &up(&a), &up(&b)).unwrap();
        let head = a.slice(ndarray::s![.., ..b_shape[1], .., ..]);
        let joined = reference::channel::concat(&[head, b.view()]).unwrap();
        let want = reference::channel::channel_shuffle(joined.view(), 2).unwrap();
        assert_eq!(rec.download(&y).unwrap(), want, "{a_shape:?} {b_shape:?}");
    }
    let x = random4(&mut r, [2, 7, 3, 5]);
    for (start, length) in [(0, 7), (3, 4), (6, 1)] {
        let mut rec = gpu.recorder();
        let y = channel::narrow(&mut rec, &up(&x), start, length).unwrap();
        let want = x.slice(ndarray::s![.., start..start + length, .., ..]);
        assert_eq!(rec.download(&y).unwrap(), want);
    }
    let mut rec = gpu.recorder();
    for (start, length) in [(0, 0), (5, 3), (usize::MAX, 2)] {
        expect_param(channel::narrow(&mut rec, &up(&x), start, length), "length");
    }
    let (a, b) = (
        up(&random4(&mut r, [1, 2, 3, 5])),
        up(&random4(&mut r, [1, 3, 3, 5])),
    );
    assert!(matches!(
        channel::shuffle_pair(&mut rec, &a, &b),
        Err(segblocks::Error::ShapeMismatch { name: "b", .. })
    ));
    let c = up(&random4(&mut r, [1, 2, 3, 4]));
    assert!(matches!(
        channel::shuffle_pair(&mut rec, &a, &c),
        Err(segblocks::Error::ShapeMismatch { name: "b", .. })
    ));
}

#[test]
fn convolution_with_fused_shuffle_equals_conv_then_shuffle() {
    use segblocks::ops::conv::{Conv2d, Conv2dParams};
    let gpu = gpu();
    let mut r = rng(9);
    // ShuffleNet v1's 1x1 group conv, a depthwise conv and a plain 3x3 (every kernel).
    for (params, shape, g) in [
        (Conv2dParams::new(12, 24, 1).groups(3), [2, 12, 5, 4], 3),
        (Conv2dParams::new(16, 32, 1), [1, 16, 4, 4], 4),
        (Conv2dParams::depthwise(8, 1, 3).padding(1), [1, 8, 6, 5], 2),
        (
            Conv2dParams::new(4, 6, 3)
                .padding(1)
                .activation(Activation::Relu),
            [1, 4, 5, 5],
            2,
        ),
    ] {
        let x = random4(&mut r, shape);
        let w = random4(&mut r, params.weight_shape());
        let b = random1(&mut r, params.out_channels);
        let conv = Conv2d::new(gpu, params, w.view(), Some(b.view())).unwrap();
        let xt = up(&x);
        let mut rec = gpu.recorder();
        let fused = conv.forward_shuffled(&mut rec, &xt, g).unwrap();
        let plain = conv.forward(&mut rec, &xt).unwrap();
        let unfused = channel::channel_shuffle(&mut rec, &plain, g).unwrap();
        rec.submit().unwrap();
        assert_eq!(
            gpu.download(&fused).unwrap(),
            gpu.download(&unfused).unwrap(),
            "{params:?}"
        );
    }
    let conv = Conv2d::new(
        gpu,
        Conv2dParams::new(2, 6, 1).bias(false),
        Array4::zeros([6, 2, 1, 1]).view(),
        None,
    )
    .unwrap();
    let mut rec = gpu.recorder();
    expect_param(
        conv.forward_shuffled(&mut rec, &up(&Array4::zeros([1, 2, 2, 2])), 4),
        "groups",
    );
}

#[test]
fn dense_buffer_appends_without_recopying() {
    let gpu = gpu();
    let mut r = rng(8);
    for n in [1, 2] {
        let x0 = random4(&mut r, [n, 3, 4, 5]);
        let (x1, x2) = (random4(&mut r, [n, 2, 4, 5]), random4(&mut r, [n, 4, 4, 5]));
        let mut rec = gpu.recorder();
        let mut dense = channel::DenseBuffer::new(&mut rec, &up(&x0), 9).unwrap();
        let first = dense.features(&mut rec).unwrap();
        dense.append(&mut rec, &up(&x1)).unwrap();
        let x2_gpu = up(&x2);
        let before = rec.traffic().dispatches.len();
        dense.append(&mut rec, &x2_gpu).unwrap();
        let traffic = rec.traffic();
        let written: u64 = traffic.dispatches[before..].iter().map(|d| d.written).sum();
        assert_eq!(written, x2_gpu.bytes(), "a copy of the new channels only");
        let all = dense.features(&mut rec).unwrap();
        assert_eq!(dense.channels(), 9);
        rec.submit().unwrap();
        assert_eq!(gpu.download(&first).unwrap(), x0, "batch {n}");
        let want = reference::channel::concat(&[x0.view(), x1.view(), x2.view()]).unwrap();
        assert_eq!(gpu.download(&all).unwrap(), want, "batch {n}");
        let mut rec = gpu.recorder();
        expect_param(dense.append(&mut rec, &up(&x1)), "input");
    }
}

#[test]
fn elementwise_ops_match_reference() {
    let gpu = gpu();
    let mut r = rng(2);
    let shape = [2, 3, 5, 7];
    let (a, b, s) = (
        random4(&mut r, shape).mapv(|v| 4.0 * v),
        random4(&mut r, shape),
        random4(&mut r, shape),
    );
    let (at, bt, st) = (up(&a), up(&b), up(&s));
    for act in Activation::ALL {
        let mut rec = gpu.recorder();
        let y = channel::add(&mut rec, &at, &bt, act).unwrap();
        let want = reference::channel::add(a.view(), b.view(), act).unwrap();
        assert_close(
            rec.download(&y).unwrap().view(),
            want.view(),
            tol(&want, 1e-6).view(),
            &format!("add {act:?}"),
        );
        let mut rec = gpu.recorder();
        let y = channel::activation(&mut rec, &at, act).unwrap();
        let want = reference::channel::activation(a.view(), act);
        assert_close(
            rec.download(&y).unwrap().view(),
            want.view(),
            tol(&want, 1e-6).view(),
            &format!("{act:?}"),
        );
    }
    let sc = random4(&mut r, [2, 3, 1, 1]);
    let ss = random4(&mut r, [2, 1, 5, 7]);
    for gate in [
        Activation::Sigmoid,
        Activation::HardSigmoid,
        Activation::None,
    ] {
        let mut rec = gpu.recorder();
        let y = channel::scale_channels(&mut rec, &at, &up(&sc), gate).unwrap();
        let want = reference::channel::scale_channels(a.view(), sc.view(), gate).unwrap();
        assert_close(
            rec.download(&y).unwrap().view(),
            want.view(),
            tol(&want, 1e-6).view(),
            "scale channels",
        );
        let mut rec = gpu.recorder();
        let y = channel::scale_channels_add(&mut rec, &at, &up(&sc), gate, &bt).unwrap();
        let want =
            reference::channel::scale_channels_add(a.view(), sc.view(), gate, b.view()).unwrap();
        assert_close(
            rec.download(&y).unwrap().view(),
            want.view(),
            tol(&want, 1e-6).view(),
            "scale channels add",
        );
        // With an activation after the sum (SENet's block end), in the same pass.
        for act in [Activation::Relu, Activation::Sigmoid] {
            let mut rec = gpu.recorder();
            let y =
                channel::scale_channels_add_then(&mut rec, &at, &up(&sc), gate, &bt, act).unwrap();
            let sum = reference::channel::scale_channels_add(a.view(), sc.view(), gate, b.view())
                .unwrap();
            let want = reference::channel::activation(sum.view(), act);
            assert_close(
                rec.download(&y).unwrap().view(),
                want.view(),
                tol(&want, 1e-6).view(),
                &format!("scale channels add then {act:?}"),
            );
        }
        let mut rec = gpu.recorder();
        let y = channel::scale_spatial(&mut rec, &at, &up(&ss), gate).unwrap();
        let want = reference::channel::scale_spatial(a.view(), ss.view(), gate).unwrap();
        assert_close(
            rec.download(&y).unwrap().view(),
            want.view(),
            tol(&want, 1e-6).view(),
            "scale spatial",
        );
    }
    let mut rec = gpu.recorder();
    let y = channel::highway(&mut rec, &at, &bt, &st).unwrap();
    let want = reference::channel::highway(a.view(), b.view(), s.view()).unwrap();
    assert_close(
        rec.download(&y).unwrap().view(),
        want.view(),
        tol(&want, 1e-6).view(),
        "highway",
    );
    for act in [Activation::None, Activation::Sigmoid] {
        let mut rec = gpu.recorder();
        let y = channel::mul(&mut rec, &at, &bt, act).unwrap();
        let want = reference::channel::mul(a.view(), b.view(), act).unwrap();
        assert_close(
            rec.download(&y).unwrap().view(),
            want.view(),
            tol(&want, 1e-6).view(),
            &format!("mul {act:?}"),
        );
    }
    // A GRU's update: the weight in [0, 1] as a sigmoid makes it.
    let z = s.mapv(|v| 1.0 / (1.0 + (-4.0 * v).exp()));
    let mut rec = gpu.recorder();
    let y = channel::blend(&mut rec, &at, &bt, &up(&z)).unwrap();
    let want = reference::channel::blend(a.view(), b.view(), z.view()).unwrap();
    assert_close(
        rec.download(&y).unwrap().view(),
        want.view(),
        tol(&want, 1e-6).view(),
        "blend",
    );
    // A guided filter's `a / (b + eps)`, zero divisors included (IEEE, as PyTorch).
    for eps in [0.0, 1e-5] {
        let mut divisor = b.clone();
        divisor[[0, 0, 0, 0]] = 0.0;
        divisor[[1, 2, 4, 6]] = -eps;
        let mut rec = gpu.recorder();
        let y = channel::div(&mut rec, &at, &up(&divisor), eps).unwrap();
        let got = rec.download(&y).unwrap();
        let want = reference::channel::div(a.view(), divisor.view(), eps).unwrap();
        for (g, w) in got.iter().zip(want.iter()) {
            assert!(
                (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= 2e-6 * w.abs(),
                "div eps {eps}: {g} against {w}"
            );
        }
    }
    // A guided filter's `c - a * b` and `a * b + c`.
    let mut rec = gpu.recorder();
    let y = channel::sub_mul(&mut rec, &st, &at, &bt).unwrap();
    let want = reference::channel::sub_mul(s.view(), a.view(), b.view()).unwrap();
    assert_close(
        rec.download(&y).unwrap().view(),
        want.view(),
        tol(&want, 1e-6).view(),
        "sub_mul",
    );
    let mut rec = gpu.recorder();
    let y = channel::mul_add(&mut rec, &at, &bt, &st).unwrap();
    let want = reference::channel::mul_add(a.view(), b.view(), s.view()).unwrap();
    assert_close(
        rec.download(&y).unwrap().view(),
        want.view(),
        tol(&want, 1e-6).view(),
        "mul_add",
    );
    let mut rec = gpu.recorder();
    let y = channel::residual_attention(&mut rec, &at, &bt, &st).unwrap();
    let want = reference::channel::residual_attention(a.view(), b.view(), s.view()).unwrap();
    assert_close(
        rec.download(&y).unwrap().view(),
        want.view(),
        tol(&want, 1e-6).view(),
        "residual attention",
    );
    for order in [ChannelPoolOrder::MeanMax, ChannelPoolOrder::MaxMean] {
        let mut rec = gpu.recorder();
        let y = channel::channel_pool(&mut rec, &at, order).unwrap();
        let want = reference::channel::channel_pool(a.view(), order).unwrap();
        assert_close(
            rec.download(&y).unwrap().view(),
            want.view(),
            tol(&want, 1e-6).view(),
            &format!("channel pool {order:?}"),
        );
    }
}

/// The channel-gated blend on planes whose size is and is not a multiple of 4 (a vec4
/// then spans two planes and their two gates), single pixels, batch 2.
#[test]
fn lerp_channels_matches_the_reference() {
    let gpu = gpu();
    let mut r = rng(41);
    for shape in [[2, 3, 4, 5], [2, 3, 5, 7], [1, 5, 1, 1], [2, 6, 3, 3]] {
        let (a, b) = (random4(&mut r, shape), random4(&mut r, shape));
        let s = random4(&mut r, [shape[0], shape[1], 1, 1]).mapv(|v| 4.0 * v);
        for gate in [Activation::Sigmoid, Activation::None] {
            let mut rec = gpu.recorder();
            let y = channel::lerp_channels(&mut rec, &up(&a), &up(&b), &up(&s), gate).unwrap();
            let want =
                reference::channel::lerp_channels(a.view(), b.view(), s.view(), gate).unwrap();
            assert_close(
                rec.download(&y).unwrap().view(),
                want.view(),
                tol(&want, 1e-6).view(),
                &format!("lerp channels {shape:?} {gate:?}"),
            );
        }
    }
}

/// ResNeSt's split-attention weighting, radix 1 to 4 and the largest, on planes of one
/// pixel to more than one strip of 16 (odd sizes), batch 1 to 3; at radix 2 the reference
/// equals the two-path blend by the sigmoid of the logits' difference (another formula);
/// bad radixes, splits and logits are typed errors naming them.
#[test]
fn radix_softmax_sum_matches_the_reference() {
    use segblocks::ops::attention::{radix_softmax_sum, MAX_RADIX};
    let gpu = gpu();
    let mut r = rng(47);
    for (radix, [n, c, h, w]) in [
        (1, [2, 5, 3, 7]),
        (2, [1, 3, 5, 7]),
        (3, [3, 2, 1, 1]),
        (4, [2, 6, 9, 5]),
        (MAX_RADIX, [1, 2, 4, 4]),
    ] {
        let x = random4(&mut r, [n, radix * c, h, w]);
        let logits = random4(&mut r, [n, radix * c, 1, 1]).mapv(|v| 4.0 * v);
        let mut rec = gpu.recorder();
        let y = radix_softmax_sum(&mut rec, &up(&x), &up(&logits), radix).unwrap();
        let want = reference::attention::radix_softmax_sum(x.view(), logits.view(), radix).unwrap();
        assert_eq!(want.shape(), &[n, c, h, w]);
        assert_close(
            rec.download(&y).unwrap().view(),
            want.view(),
            tol(&want, 1e-5).view(),
            &format!("radix {radix} {:?}", x.shape()),
        );
        if radix == 2 {
            let split = |r: usize| x.slice(ndarray::s![.., r * c..(r + 1) * c, .., ..]);
            let l = |r: usize| logits.slice(ndarray::s![.., r * c..(r + 1) * c, .., ..]);
            let difference = &l(0) - &l(1);
            let blend = reference::channel::lerp_channels(
                split(1),
                split(0),
                difference.view(),
                Activation::Sigmoid,
            )
            .unwrap();
            assert_close(
                want.view(),
                blend.view(),
                tol(&blend, 1e-5).view(),
                "radix 2 blend",
            );
        }
    }
    let x = up(&random4(&mut r, [1, 6, 3, 3]));
    let logits = up(&random4(&mut r, [1, 6, 1, 1]));
    let mut rec = gpu.recorder();
    for (radix, name) in [(0, "radix"), (MAX_RADIX + 1, "radix"), (4, "radix")] {
        expect_param(radix_softmax_sum(&mut rec, &x, &logits, radix), name);
    }
    let short = up(&random4(&mut r, [1, 3, 1, 1]));
    let got = radix_softmax_sum(&mut rec, &x, &short, 2);
    assert!(
        matches!(
            &got,
            Err(segblocks::Error::ShapeMismatch { name: "logits", .. })
        ),
        "{got:?}"
    );
}

/// The per-channel bias and the batch-broadcast map, on planes whose size is and is not a
/// multiple of 4 (a vec4 spanning two planes, or two samples), batch 1 to 3.
#[test]
fn add_channels_and_add_broadcast_match_the_reference() {
    let gpu = gpu();
    let mut r = rng(43);
    for shape in [[2, 3, 4, 5], [3, 3, 5, 7], [1, 5, 1, 1], [2, 7, 1, 197]] {
        let x = random4(&mut r, shape);
        let s = random4(&mut r, [shape[0], shape[1], 1, 1]);
        let b = random4(&mut r, [1, shape[1], shape[2], shape[3]]);
        for act in [Activation::None, Activation::Gelu] {
            let mut rec = gpu.recorder();
            let y = channel::add_channels(&mut rec, &up(&x), &up(&s), act).unwrap();
            let z = channel::add_broadcast(&mut rec, &up(&x), &up(&b), act).unwrap();
            let got = rec.download_many(&[&y, &z]).unwrap();
            let wants = [
                reference::channel::add_channels(x.view(), s.view(), act).unwrap(),
                reference::channel::add_broadcast(x.view(), b.view(), act).unwrap(),
            ];
            for ((got, want), what) in got.iter().zip(&wants).zip(["channels", "broadcast"]) {
                assert_close(
                    got.view(),
                    want.view(),
                    tol(want, 1e-6).view(),
                    &format!("add_{what} {shape:?} {act:?}"),
                );
            }
        }
    }
}

#[test]
fn nan_propagates_through_every_activation() {
    let gpu = gpu();
    let x = Array4::from_shape_vec([1, 1, 1, 4], vec![f32::NAN, -1.0, 2.0, 7.0]).unwrap();
    for act in Activation::ALL {
        let mut rec = gpu.recorder();
        let y = channel::activation(&mut rec, &up(&x), act).unwrap();
        let got = rec.download(&y).unwrap();
        assert!(got[[0, 0, 0, 0]].is_nan(), "{act:?}: {got:?}");
        assert!(
            reference::activation(act, f32::NAN).is_nan(),
            "{act:?} reference"
        );
        let want = reference::channel::activation(x.view(), act);
        for i in 1..4 {
            assert!(
                (got[[0, 0, 0, i]] - want[[0, 0, 0, i]]).abs() < 1e-6,
                "{act:?}"
            );
        }
    }
}

/// Channel pooling loops over the channels of a pixel: exact up to the loop budget, a
/// typed error past it (Mesa ends an invocation after 65,535 iterations, and 70,000
/// channels used to come back wrong).
#[test]
fn channel_pool_up_to_the_loop_budget() {
    let gpu = gpu();
    let c = segblocks::LOOP_BUDGET as usize;
    let mut r = rng(12);
    let x = random4(&mut r, [1, c, 1, 2]);
    let order = ChannelPoolOrder::MeanMax;
    let want = reference::channel::channel_pool(x.view(), order).unwrap();
    let mut rec = gpu.recorder();
    let y = channel::channel_pool(&mut rec, &up(&x), order).unwrap();
    let got = rec.download(&y).unwrap();
    assert_close(
        got.view(),
        want.view(),
        tol(&want, 1e-5).view(),
        "channel pool",
    );
    let mut rec = gpu.recorder();
    let over = channel::channel_pool(&mut rec, &up(&Array4::zeros([1, c + 1, 1, 2])), order);
    assert!(
        matches!(
            over,
            Err(Error::TooLarge {
                unit: "loop iterations per invocation",
                ..
            })
        ),
        "{over:?}"
    );
}

/// The fused gate pools every channel of a sample in one workgroup: past the loop budget
/// (a 181 x 181 map, 32,889 iterations per invocation) it is refused when forced, and the
/// automatic choice pools first and matches the reference.
#[test]
fn squeeze_excitation_past_the_loop_budget() {
    let gpu = gpu();
    let mut r = rng(13);
    let (c, s, shape) = (64, 8, [1, 64, 181, 181]);
    let params = SqueezeExcitationParams::new(c, s);
    let x = random4(&mut r, shape);
    let (w1, b1) = (random4(&mut r, [s, c, 1, 1]), random1(&mut r, s));
    let (w2, b2) = (random4(&mut r, [c, s, 1, 1]), random1(&mut r, c));
    let se =
        SqueezeExcitation::new(gpu, params, w1.view(), b1.view(), w2.view(), b2.view()).unwrap();
    let xt = up(&x);
    let mut rec = gpu.recorder();
    let forced = se.forward_with(&mut rec, &xt, SeGateKernel::Fused);
    assert!(
        matches!(
            forced,
            Err(Error::TooLarge {
                unit: "loop iterations per invocation",
                ..
            })
        ),
        "{forced:?}"
    );
    assert_ne!(se.select_gate_kernel(shape), SeGateKernel::Fused);
    let mut rec = gpu.recorder();
    let y = se.forward(&mut rec, &xt).unwrap();
    let got = rec.download(&y).unwrap();
    let want = reference::attention::squeeze_excitation(
        &params,
        x.view(),
        (w1.view(), b1.view()),
        (w2.view(), b2.view()),
    )
    .unwrap();
    assert_close(got.view(), want.view(), tol(&want, 1e-5).view(), "SE");
}

#[test]
fn squeeze_excitation_matches_reference() {
    let gpu = gpu();
    let mut r = rng(3);
    for (params, shape) in [
        (SqueezeExcitationParams::new(16, 4), [2, 16, 7, 5]),
        (
            SqueezeExcitationParams::with_reduction(96, 4)
                .unwrap()
                .activation(Activation::Relu)
                .scale_activation(Activation::HardSigmoid),
            [1, 96, 6, 6],
        ),
        (
            SqueezeExcitationParams::new(6, 1).activation(Activation::Silu),
            [1, 6, 1, 1],
        ),
    ] {
        let (c, s) = (params.input_channels, params.squeeze_channels);
        let x = random4(&mut r, shape);
        let (w1, b1) = (random4(&mut r, [s, c, 1, 1]), random1(&mut r, s));
        let (w2, b2) = (random4(&mut r, [c, s, 1, 1]), random1(&mut r, c));
        let se = SqueezeExcitation::new(gpu, params, w1.view(), b1.view(), w2.view(), b2.view())
            .unwrap();
        let mut rec = gpu.recorder();
        let y = se.forward(&mut rec, &up(&x)).unwrap();
        let gate_dispatches = match se.select_gate_kernel(shape) {
            SeGateKernel::Fused => 1,
            SeGateKernel::PoolThenExcite => 2,
            SeGateKernel::PoolThenConvs => 3,
        };
        assert_eq!(
            rec.dispatch_count(),
            gate_dispatches + 1,
            "gate, then gated scale"
        );
        let got = rec.download(&y).unwrap();
        let want = reference::attention::squeeze_excitation(
            &params,
            x.view(),
            (w1.view(), b1.view()),
            (w2.view(), b2.view()),
        )
        .unwrap();
        assert_close(
            got.view(),
            want.view(),
            tol(&want, 1e-5).view(),
            &format!("SE {params:?}"),
        );
        let cost = params.cost(shape).unwrap();
        assert_eq!(cost.params, (c * s + s + s * c + c) as u64);
        // Every gate kernel, for the block and for the gate of a sum without the sum
        // (decoder attention gates).
        let x2 = random4(&mut r, shape);
        let sum = &x + &x2;
        let want_gate = reference::attention::excitation(
            &params,
            sum.view(),
            (w1.view(), b1.view()),
            (w2.view(), b2.view()),
        )
        .unwrap();
        for kernel in SeGateKernel::ALL {
            // Fresh (zeroed) buffers: a recycled output of the previous variant would hide
            // values this one fails to write.
            gpu.trim_pool();
            let mut rec = gpu.recorder();
            let y = se.forward_with(&mut rec, &up(&x), kernel).unwrap();
            let got = rec.download(&y).unwrap();
            assert_close(
                got.view(),
                want.view(),
                tol(&want, 1e-5).view(),
                &format!("SE {kernel:?} {params:?}"),
            );
            gpu.trim_pool();
            let mut rec = gpu.recorder();
            let g = se
                .excitation_with(&mut rec, &up(&x), Some(&up(&x2)), kernel)
                .unwrap();
            let got = rec.download(&g).unwrap();
            assert_close(
                got.view(),
                want_gate.view(),
                tol(&want_gate, 1e-5).view(),
                &format!("SE gate of a sum {kernel:?} {params:?}"),
            );
        }
        let mut rec = gpu.recorder();
        se.excitation_of_sum(&mut rec, &up(&x), &up(&x2)).unwrap();
        assert_eq!(
            rec.dispatch_count(),
            gate_dispatches,
            "the sum is never stored"
        );
    }
    // Large maps pool with a workgroup per plane first.
    let params = SqueezeExcitationParams::new(16, 8);
    let (w1, b1) = (random4(&mut r, [8, 16, 1, 1]), random1(&mut r, 8));
    let (w2, b2) = (random4(&mut r, [16, 8, 1, 1]), random1(&mut r, 16));
    let se =
        SqueezeExcitation::new(gpu, params, w1.view(), b1.view(), w2.view(), b2.view()).unwrap();
    // Few channels share the one workgroup's invocations: fused while the map is small.
    assert_eq!(se.select_gate_kernel([1, 16, 8, 8]), SeGateKernel::Fused);
    assert_eq!(
        se.select_gate_kernel([1, 16, 128, 128]),
        SeGateKernel::PoolThenExcite
    );
    // Blocks with zero weights: only the choice of gate kernel is checked below.
    let zero_se = |c: usize, s: usize| {
        SqueezeExcitation::new(
            gpu,
            SqueezeExcitationParams::new(c, s),
            Array4::zeros([s, c, 1, 1]).view(),
            Array1::zeros(s).view(),
            Array4::zeros([c, s, 1, 1]).view(),
            Array1::zeros(c).view(),
        )
        .unwrap()
    };
    let wide = zero_se(96, 24);
    assert_eq!(
        wide.select_gate_kernel([1, 96, 16, 16]),
        SeGateKernel::Fused
    );
    assert_eq!(
        wide.select_gate_kernel([1, 96, 64, 64]),
        SeGateKernel::PoolThenExcite
    );
    // An excitation of 672 x 168 weights: one workgroup on a GPU; on a CPU adapter, where
    // a workgroup runs on one core, the two 1 x 1 convolutions.
    let widest = zero_se(672, 168);
    let want = if gpu.caps().cpu {
        SeGateKernel::PoolThenConvs
    } else {
        SeGateKernel::Fused
    };
    assert_eq!(widest.select_gate_kernel([1, 672, 7, 7]), want);
    // Below 100,000 fc1 weights (480 x 120) the one-workgroup pass stays on either class.
    let narrower = zero_se(480, 120);
    assert_eq!(
        narrower.select_gate_kernel([1, 480, 7, 7]),
        SeGateKernel::Fused
    );
    // 2048 channels squeezed to 512 (ResNet-RS's last stage) fit the excitation pass's
    // arrays but not the loop budget (two products of a million weights in one
    // workgroup): the 1 x 1 convolutions on either class, and on a GPU class, which
    // would otherwise take the one-workgroup pass, they match the reference.
    let params = SqueezeExcitationParams::new(2048, 512);
    assert!(!SeGateKernel::Fused.supports(&params));
    assert!(!SeGateKernel::PoolThenExcite.supports(&params));
    let x = random4(&mut r, [1, 2048, 2, 3]);
    let (w1, b1) = (random4(&mut r, [512, 2048, 1, 1]), random1(&mut r, 512));
    let (w2, b2) = (random4(&mut r, [2048, 512, 1, 1]), random1(&mut r, 2048));
    let weights = (w1.view(), b1.view(), w2.view(), b2.view());
    let want = reference::attention::squeeze_excitation(
        &params,
        x.view(),
        (w1.view(), b1.view()),
        (w2.view(), b2.view()),
    )
    .unwrap();
    for gpu in [gpu, &gpu_class()] {
        let (w1, b1, w2, b2) = weights;
        let se = SqueezeExcitation::new(gpu, params, w1, b1, w2, b2).unwrap();
        assert_eq!(
            se.select_gate_kernel([1, 2048, 2, 3]),
            SeGateKernel::PoolThenConvs
        );
        let mut rec = gpu.recorder();
        let y = se
            .forward(&mut rec, &gpu.upload(x.view()).unwrap())
            .unwrap();
        let got = rec.download(&y).unwrap();
        assert_close(
            got.view(),
            want.view(),
            tol(&want, 1e-4).view(),
            "SE 2048 -> 512",
        );
    }
    // Wider than the fused pass holds: pool, fc1, fc2 and scale as separate dispatches.
    let params = SqueezeExcitationParams::new(2100, 3);
    let x = random4(&mut r, [1, 2100, 1, 2]);
    let (w1, b1) = (random4(&mut r, [3, 2100, 1, 1]), random1(&mut r, 3));
    let (w2, b2) = (random4(&mut r, [2100, 3, 1, 1]), random1(&mut r, 2100));
    let se =
        SqueezeExcitation::new(gpu, params, w1.view(), b1.view(), w2.view(), b2.view()).unwrap();
    let mut rec = gpu.recorder();
    let y = se.forward(&mut rec, &up(&x)).unwrap();
    assert_eq!(rec.dispatch_count(), 4);
    let got = rec.download(&y).unwrap();
    let want = reference::attention::squeeze_excitation(
        &params,
        x.view(),
        (w1.view(), b1.view()),
        (w2.view(), b2.view()),
    )
    .unwrap();
    assert_close(
        got.view(),
        want.view(),
        tol(&want, 1e-4).view(),
        "SE, unfused",
    );
    let x2 = random4(&mut r, [1, 2100, 1, 2]);
    let mut rec = gpu.recorder();
    let g = se.excitation_of_sum(&mut rec, &up(&x), &up(&x2)).unwrap();
    let got = rec.download(&g).unwrap();
    let sum = &x + &x2;
    let want = reference::attention::excitation(
        &params,
        sum.view(),
        (w1.view(), b1.view()),
        (w2.view(), b2.view()),
    )
    .unwrap();
    assert_close(
        got.view(),
        want.view(),
        tol(&want, 1e-4).view(),
        "SE gate of a sum, unfused",
    );
    let mut rec = gpu.recorder();
    assert!(matches!(
        // Another batch (planes of another size are allowed: the pools are added).
        se.excitation_of_sum(&mut rec, &up(&x), &up(&random4(&mut r, [2, 2100, 1, 2]))),
        Err(Error::ShapeMismatch { name: "b", .. })
    ));
    assert_eq!(
        se.select_gate_kernel([1, 2100, 1, 2]),
        SeGateKernel::PoolThenConvs
    );
    expect_param(
        se.forward_with(&mut rec, &up(&x), SeGateKernel::Fused),
        "kernel",
    );
}

#[test]
fn eca_and_cbam_match_reference() {
    let gpu = gpu();
    let mut r = rng(4);
    assert_eq!(eca_kernel_size(64), 3);
    assert_eq!(eca_kernel_size(256), 5);
    assert_eq!(eca_kernel_size(512), 5);
    assert_eq!(eca_kernel_size(2048), 7);
    for (shape, k) in [
        ([2, 16, 5, 6], 3),
        ([1, 64, 4, 4], eca_kernel_size(64)),
        ([1, 9, 3, 3], 9),
        // Kernels longer than the channels (the reference code's k_size=3 on 2 channels).
        ([2, 2, 3, 3], 3),
        ([1, 1, 2, 2], 5),
    ] {
        let x = random4(&mut r, shape);
        let w = random1(&mut r, k);
        let eca = Eca::new(gpu, EcaParams::new(shape[1]).kernel_size(k), w.view()).unwrap();
        let mut rec = gpu.recorder();
        let y = eca.forward(&mut rec, &up(&x)).unwrap();
        let got = rec.download(&y).unwrap();
        let want = reference::attention::eca(x.view(), w.view()).unwrap();
        assert_close(
            got.view(),
            want.view(),
            tol(&want, 1e-5).view(),
            &format!("ECA k={k}"),
        );
    }
    for (shape, r_ratio, k, bias, order) in [
        ([2, 16, 9, 8], 4, 7, true, ChannelPoolOrder::MaxMean),
        ([1, 8, 5, 5], 4, 3, false, ChannelPoolOrder::MeanMax),
        // C < r: no hidden channel, the channel attention is sigmoid(2 * bias).
        ([3, 6, 5, 7], 16, 3, true, ChannelPoolOrder::MaxMean),
        ([1, 3, 4, 4], 4, 3, false, ChannelPoolOrder::MeanMax),
    ] {
        let c = shape[1];
        let hidden = c / r_ratio;
        let params = CbamParams::new(c, order)
            .reduction_ratio(r_ratio)
            .kernel_size(k)
            .spatial_bias(bias)
            .mlp_bias(bias);
        let x = random4(&mut r, shape);
        let (w1, b1) = (random4(&mut r, [hidden, c, 1, 1]), random1(&mut r, hidden));
        let (w2, b2) = (random4(&mut r, [c, hidden, 1, 1]), random1(&mut r, c));
        let ws = random4(&mut r, [1, 2, k, k]);
        let bs = bias.then(|| random1(&mut r, 1));
        let (b1, b2) = (bias.then_some(b1), bias.then_some(b2));
        let cbam = Cbam::new(
            gpu,
            params,
            (w1.view(), b1.as_ref().map(|b| b.view())),
            (w2.view(), b2.as_ref().map(|b| b.view())),
            ws.view(),
            bs.as_ref().map(|b| b.view()),
        )
        .unwrap();
        let mut rec = gpu.recorder();
        let out = cbam.forward_with_attention(&mut rec, &up(&x)).unwrap();
        let got = rec
            .download_many(&[&out.output, &out.channel_attention, &out.spatial_attention])
            .unwrap();
        let want = reference::attention::cbam(
            &params,
            x.view(),
            (w1.view(), b1.as_ref().map(|b| b.view())),
            (w2.view(), b2.as_ref().map(|b| b.view())),
            ws.view(),
            bs.as_ref().map(|b| b.view()),
        )
        .unwrap();
        // The maps: the channel gate is the output over the input where the spatial gate
        // is 1; check the shapes and ranges, and that output = x * channel * spatial.
        assert_eq!(got[1].shape(), &[shape[0], c, 1, 1]);
        assert_eq!(got[2].shape(), &[shape[0], 1, shape[2], shape[3]]);
        assert!(got[1]
            .iter()
            .chain(got[2].iter())
            .all(|v| (0.0..=1.0).contains(v)));
        let rebuilt = ndarray::Array4::from_shape_fn(shape, |(n, ch, h, w)| {
            x[[n, ch, h, w]] * got[1][[n, ch, 0, 0]] * got[2][[n, 0, h, w]]
        });
        let got = &got[0];
        assert_close(
            got.view(),
            rebuilt.view(),
            tol(&want, 1e-5).view(),
            "CBAM maps",
        );
        assert_close(
            got.view(),
            want.view(),
            tol(&want, 1e-5).view(),
            &format!("CBAM {shape:?}"),
        );
        assert!(cbam.cost(shape).unwrap().params > 0);
    }
}

fn expect_param(result: segblocks::Result<impl std::fmt::Debug>, name: &str) {
    match result {
        Err(Error::InvalidParam { name: n, reason }) => assert_eq!(n, name, "{reason}"),
        other => panic!("expected InvalidParam({name}), got {other:?}"),
    }
}

/// Concatenations, narrows and splits that move one run of consecutive channels per
/// sample are buffer copies (no dispatch) for up to 8 samples, the first channels of one
/// sample a view (nothing recorded); larger batches and ranges that are not 4-byte
/// aligned (f16 planes of an odd size) take the copy kernel. Every path gives PyTorch's
/// values. (`rec.traffic()` lists the copies; `dispatch_count` counts compute dispatches.)
#[test]
fn channel_runs_are_buffer_copies_or_views() {
    // Where the adapter has f16 (lavapipe's Vulkan; not llvmpipe's GL).
    let half = segblocks::Gpu::with_options(segblocks::GpuOptions {
        precision: segblocks::Precision::F16,
        ..segblocks::GpuOptions::default()
    })
    .ok();
    let mut r = rng(21);
    for (gpu, n, dispatched) in [(gpu(), 1, false), (gpu(), 2, false), (gpu(), 9, true)]
        .into_iter()
        .chain(half.iter().map(|half| (half, 2, true)))
    {
        // Planes of 15 values: odd in f16, whose runs then are not whole 4-byte words.
        let a = random4(&mut r, [n, 2, 3, 5]);
        let b = random4(&mut r, [n, 3, 3, 5]);
        let (ag, bg) = (gpu.upload(a.view()).unwrap(), gpu.upload(b.view()).unwrap());
        let (a, b) = (gpu.download(&ag).unwrap(), gpu.download(&bg).unwrap());
        let mut rec = gpu.recorder();
        let joined = channel::concat(&mut rec, &[&ag, &bg]).unwrap();
        let middle = channel::narrow(&mut rec, &joined, 1, 3).unwrap();
        let passes = rec.traffic().dispatches.len();
        let first = channel::narrow(&mut rec, &joined, 0, 2).unwrap();
        let view = rec.traffic().dispatches.len() == passes;
        let pieces = channel::split(&mut rec, &joined, &[4, 1]).unwrap();
        assert_eq!(
            rec.dispatch_count() > 0,
            dispatched,
            "batch {n}, {:?}",
            gpu.precision()
        );
        assert_eq!(view, n == 1 && !dispatched, "batch {n}");
        let got = rec.download_many(&[&joined, &middle, &first, &pieces[0], &pieces[1]]);
        let got = got.unwrap();
        let want = reference::channel::concat(&[a.view(), b.view()]).unwrap();
        let channels =
            |lo: usize, hi: usize| want.slice(ndarray::s![.., lo..hi, .., ..]).to_owned();
        assert_eq!(got[0], want, "batch {n}");
        assert_eq!(got[1], channels(1, 4), "batch {n}");
        assert_eq!(got[2], channels(0, 2), "batch {n}");
        assert_eq!(got[3], channels(0, 4), "batch {n}");
        assert_eq!(got[4], channels(4, 5), "batch {n}");
    }
}

/// The CPU references check their operands' shapes as the GPU ops do: a mismatched
/// operand is a typed error naming it, never an ndarray panic.
#[test]
fn reference_operands_of_another_shape_are_typed_errors() {
    use reference::channel as rc;
    let x = Array4::<f32>::zeros([2, 3, 4, 5]);
    let other = Array4::<f32>::zeros([2, 3, 5, 4]);
    let (x, o) = (x.view(), other.view());
    let plane = Array4::<f32>::zeros([2, 1, 4, 5]);
    let per_channel = Array4::<f32>::zeros([2, 3, 1, 1]);
    let expect = |r: segblocks::Result<Array4<f32>>, name: &str, actual: &[usize]| match r {
        Err(Error::ShapeMismatch {
            name: n, actual: a, ..
        }) => {
            assert_eq!((n, a.as_slice()), (name, actual));
        }
        other => panic!("expected ShapeMismatch({name}), got {other:?}"),
    };
    let none = Activation::None;
    expect(rc::add(x, o, none), "b", &[2, 3, 5, 4]);
    expect(rc::mul(x, o, none), "b", &[2, 3, 5, 4]);
    expect(rc::div(x, o, 0.0), "b", &[2, 3, 5, 4]);
    expect(rc::sub_mul(x, x, o), "b", &[2, 3, 5, 4]);
    expect(rc::sub_mul(o, x, x), "c", &[2, 3, 5, 4]);
    expect(rc::mul_add(x, x, o), "c", &[2, 3, 5, 4]);
    expect(rc::blend(x, o, x), "end", &[2, 3, 5, 4]);
    expect(rc::blend(x, x, o), "weight", &[2, 3, 5, 4]);
    expect(rc::highway(x, x, o), "t_logits", &[2, 3, 5, 4]);
    expect(rc::residual_attention(x, o, x), "f", &[2, 3, 5, 4]);
    expect(rc::residual_attention(x, x, o), "mask", &[2, 3, 5, 4]);
    // Per-channel and per-pixel operands: a full map where a scale belongs.
    expect(rc::scale_channels(x, x, none), "scale", &[2, 3, 4, 5]);
    expect(
        rc::add_channels(x, plane.view(), none),
        "scale",
        &[2, 1, 4, 5],
    );
    let sc = per_channel.view();
    expect(
        rc::scale_channels_add(x, sc, none, o),
        "branch",
        &[2, 3, 5, 4],
    );
    expect(
        rc::lerp_channels(x, x, plane.view(), none),
        "scale",
        &[2, 1, 4, 5],
    );
    expect(rc::scale_spatial(x, sc, none), "scale", &[2, 3, 1, 1]);
    expect(rc::add_broadcast(x, x, none), "b", &[2, 3, 4, 5]);
    // And the matching shapes pass.
    assert_eq!(
        rc::scale_spatial(x, plane.view(), none).unwrap().dim(),
        x.dim()
    );
    assert_eq!(rc::lerp_channels(x, x, sc, none).unwrap().dim(), x.dim());
}

/// PIDNet's fusions: the blend weighted per pixel (planes whose size is and is not a
/// multiple of 4: a vec4 in one plane or across two), the two gated sums, and the channel
/// dot product (one channel, a few, and more than a workgroup's lanes), each with every
/// gate, at batch 2.
#[test]
fn pidnet_fusion_ops_match_reference() {
    let gpu = gpu();
    let mut r = rng(31);
    for shape in [[2, 3, 5, 7], [2, 5, 4, 6], [1, 37, 3, 3]] {
        let [n, c, h, w] = shape;
        let (a, b, s) = (
            random4(&mut r, shape).mapv(|v| 4.0 * v),
            random4(&mut r, shape),
            random4(&mut r, shape).mapv(|v| 6.0 * v),
        );
        let plane = random4(&mut r, [n, 1, h, w]).mapv(|v| 6.0 * v);
        let (at, bt, st, pt) = (up(&a), up(&b), up(&s), up(&plane));
        for gate in [
            Activation::Sigmoid,
            Activation::HardSigmoid,
            Activation::None,
        ] {
            let mut rec = gpu.recorder();
            // PIDNet's blend ends in ReLU; the others with none.
            let act = match gate {
                Activation::None => Activation::Relu,
                _ => Activation::None,
            };
            let y = channel::blend_spatial(&mut rec, &at, &bt, &pt, (gate, act)).unwrap();
            let want =
                reference::channel::blend_spatial(a.view(), b.view(), plane.view(), (gate, act))
                    .unwrap();
            assert_close(
                rec.download(&y).unwrap().view(),
                want.view(),
                tol(&want, 1e-6).view(),
                &format!("blend_spatial {shape:?} {gate:?}"),
            );
            let mut rec = gpu.recorder();
            let y = channel::add_gated(&mut rec, &at, &bt, &st, gate).unwrap();
            let want = reference::channel::add_gated(a.view(), b.view(), s.view(), gate).unwrap();
            assert_close(
                rec.download(&y).unwrap().view(),
                want.view(),
                tol(&want, 1e-6).view(),
                &format!("add_gated {shape:?} {gate:?}"),
            );
            let mut rec = gpu.recorder();
            let y = channel::add_complement_gated(&mut rec, &at, &bt, &st, gate).unwrap();
            let want = reference::channel::add_complement_gated(a.view(), b.view(), s.view(), gate)
                .unwrap();
            assert_close(
                rec.download(&y).unwrap().view(),
                want.view(),
                tol(&want, 1e-6).view(),
                &format!("add_complement_gated {shape:?} {gate:?}"),
            );
        }
        for act in [Activation::Sigmoid, Activation::None, Activation::Relu] {
            let mut rec = gpu.recorder();
            let y = channel::channel_dot(&mut rec, &at, &bt, act).unwrap();
            let want = reference::channel::channel_dot(a.view(), b.view(), act).unwrap();
            assert_eq!(want.dim(), (n, 1, h, w));
            // A sum of `c` products: its rounding grows with the magnitudes summed.
            let scale = (c as f32).sqrt() * 4.0;
            assert_close(
                rec.download(&y).unwrap().view(),
                want.view(),
                want.mapv(|_| 1e-6 * scale).view(),
                &format!("channel_dot {shape:?} {act:?}"),
            );
        }
    }
    // The reference's formulas, one element each: the weight on the end.
    let one = |v: f32| Array4::from_elem([1, 1, 1, 1], v);
    let blended = reference::channel::blend_spatial(
        one(2.0).view(),
        one(6.0).view(),
        one(0.25).view(),
        (Activation::None, Activation::None),
    )
    .unwrap();
    assert_eq!(blended[[0, 0, 0, 0]], 3.0);
    let sum = reference::channel::add_gated(
        one(2.0).view(),
        one(6.0).view(),
        one(0.25).view(),
        Activation::None,
    )
    .unwrap();
    assert_eq!(sum[[0, 0, 0, 0]], 3.5);
    let sum = reference::channel::add_complement_gated(
        one(2.0).view(),
        one(6.0).view(),
        one(0.25).view(),
        Activation::None,
    )
    .unwrap();
    assert_eq!(sum[[0, 0, 0, 0]], 7.5);
}

/// The fusions' operands of other shapes are typed errors naming the operand.
#[test]
fn pidnet_fusion_operands_of_another_shape_are_typed_errors() {
    let gpu = gpu();
    let x = up(&Array4::zeros([2, 6, 4, 5]));
    let other = up(&Array4::zeros([2, 6, 4, 6]));
    let plane = up(&Array4::zeros([2, 1, 4, 5]));
    let mut rec = gpu.recorder();
    let sigmoid = Activation::Sigmoid;
    let named = |r: segblocks::Result<Tensor>, want: &str| {
        assert!(
            matches!(&r, Err(Error::ShapeMismatch { name, .. }) if *name == want),
            "{want}: {:?}",
            r.err()
        );
    };
    named(
        channel::blend_spatial(&mut rec, &x, &other, &plane, (sigmoid, Activation::None)),
        "end",
    );
    named(
        channel::blend_spatial(&mut rec, &x, &x, &x, (sigmoid, Activation::None)),
        "weight",
    );
    named(channel::add_gated(&mut rec, &x, &other, &x, sigmoid), "b");
    named(channel::add_gated(&mut rec, &x, &x, &plane, sigmoid), "s");
    named(
        channel::add_complement_gated(&mut rec, &x, &x, &other, sigmoid),
        "s",
    );
    named(channel::channel_dot(&mut rec, &x, &other, sigmoid), "b");
    let rc = |r: segblocks::Result<Array4<f32>>, want: &str| {
        assert!(
            matches!(&r, Err(Error::ShapeMismatch { name, .. }) if *name == want),
            "{want}: {:?}",
            r.err()
        );
    };
    let (a, b) = (
        Array4::<f32>::zeros([1, 2, 3, 3]),
        Array4::<f32>::zeros([1, 2, 3, 4]),
    );
    rc(
        reference::channel::blend_spatial(
            a.view(),
            a.view(),
            a.view(),
            (sigmoid, Activation::None),
        ),
        "weight",
    );
    rc(
        reference::channel::add_gated(a.view(), b.view(), a.view(), sigmoid),
        "b",
    );
    rc(
        reference::channel::add_complement_gated(a.view(), a.view(), b.view(), sigmoid),
        "s",
    );
    rc(
        reference::channel::channel_dot(a.view(), b.view(), sigmoid),
        "b",
    );
}

#[test]
fn bad_input_is_a_typed_error() {
    let gpu = gpu();
    let x = up(&Array4::zeros([1, 6, 2, 2]));
    let y = up(&Array4::zeros([1, 6, 2, 3]));
    let mut rec = gpu.recorder();
    expect_param(channel::channel_shuffle(&mut rec, &x, 4), "groups");
    expect_param(channel::channel_shuffle(&mut rec, &x, 0), "groups");
    assert!(matches!(
        channel::add(&mut rec, &x, &y, Activation::None),
        Err(Error::ShapeMismatch { name: "b", .. })
    ));
    assert!(matches!(
        channel::concat(&mut rec, &[&x, &y]),
        Err(Error::ShapeMismatch { name: "inputs", .. })
    ));
    expect_param(channel::concat(&mut rec, &[]), "inputs");
    expect_param(channel::split(&mut rec, &x, &[2, 3]), "sizes");
    expect_param(channel::split(&mut rec, &x, &[6, 0]), "sizes");
    assert!(matches!(
        channel::scale_channels(&mut rec, &x, &y, Activation::Sigmoid),
        Err(Error::ShapeMismatch { name: "scale", .. })
    ));
    assert!(matches!(
        channel::scale_channels_add(
            &mut rec,
            &x,
            &up(&Array4::zeros([1, 6, 1, 1])),
            Activation::Sigmoid,
            &y
        ),
        Err(Error::ShapeMismatch { name: "branch", .. })
    ));
    let gate = up(&Array4::zeros([1, 6, 1, 1]));
    assert!(matches!(
        channel::lerp_channels(&mut rec, &x, &y, &gate, Activation::Sigmoid),
        Err(Error::ShapeMismatch { name: "end", .. })
    ));
    assert!(matches!(
        channel::lerp_channels(&mut rec, &x, &x, &y, Activation::Sigmoid),
        Err(Error::ShapeMismatch { name: "scale", .. })
    ));
    assert!(matches!(
        channel::add_channels(&mut rec, &x, &y, Activation::None),
        Err(Error::ShapeMismatch { name: "scale", .. })
    ));
    assert!(matches!(
        channel::add_broadcast(&mut rec, &x, &y, Activation::None),
        Err(Error::ShapeMismatch { name: "b", .. })
    ));
    assert!(matches!(
        channel::highway(&mut rec, &x, &x, &y),
        Err(Error::ShapeMismatch {
            name: "t_logits",
            ..
        })
    ));
    assert!(matches!(
        channel::mul(&mut rec, &x, &y, Activation::None),
        Err(Error::ShapeMismatch { name: "b", .. })
    ));
    assert!(matches!(
        channel::blend(&mut rec, &x, &x, &y),
        Err(Error::ShapeMismatch { name: "weight", .. })
    ));
    assert!(matches!(
        channel::blend(&mut rec, &x, &y, &x),
        Err(Error::ShapeMismatch { name: "end", .. })
    ));
    assert!(matches!(
        channel::div(&mut rec, &x, &y, 0.0),
        Err(Error::ShapeMismatch { name: "b", .. })
    ));
    expect_param(channel::div(&mut rec, &x, &x, f32::NAN), "eps");
    assert!(matches!(
        channel::sub_mul(&mut rec, &y, &x, &x),
        Err(Error::ShapeMismatch { name: "c", .. })
    ));
    assert!(matches!(
        channel::mul_add(&mut rec, &x, &y, &x),
        Err(Error::ShapeMismatch { name: "b", .. })
    ));
    expect_param(SqueezeExcitationParams::with_reduction(6, 8), "reduction");
    expect_param(
        Eca::new(
            gpu,
            EcaParams::new(6).kernel_size(4),
            Array1::zeros(4).view(),
        ),
        "kernel_size",
    );
    assert!(matches!(
        x.reshape([1, 5, 2, 2]),
        Err(Error::ShapeMismatch { name: "shape", .. })
    ));
}

/// The activations with parameters and PReLU against PyTorch (`golden/activation.json`):
/// the reference and the GPU, within a few f32 ulps (ELU's and softplus' exponentials).
#[test]
fn parametric_activations_and_prelu_match_pytorch() {
    use channel::{activation_with, PRelu, ParamActivation};
    use common::golden::{array, cases, float_field, str_of, usize_field, usizes};
    let gpu = gpu();
    let all = cases(
        include_str!("golden/activation.json"),
        "tests/golden/activation.json",
    );
    let mut ops = std::collections::BTreeSet::new();
    for c in &all {
        let n = str_of(c, "?", "name");
        if matches!(
            str_of(c, n, "op"),
            "softmax" | "log_softmax" | "argmax" | "layer_norm_2d"
        ) {
            continue; // channel_softmax_and_argmax_match_pytorch
        }
        let shape = usizes::<4>(c, n, "input_shape");
        let x: Array4<f32> = array(c, n, "input", shape);
        let want: Array4<f32> = array(c, n, "output", shape);
        let tol = want.mapv(|v| 2e-6 * (1.0 + v.abs()));
        let op = str_of(c, n, "op");
        ops.insert(op.to_string());
        let xt = gpu.upload(x.view()).unwrap();
        let mut rec = gpu.recorder();
        let (cpu, y) = if op == "prelu" {
            let w: Array1<f32> = array(c, n, "weight", usize_field(c, n, "num_parameters"));
            let layer = PRelu::new(gpu, w.view()).unwrap();
            let cpu = reference::channel::prelu(x.view(), w.view()).unwrap();
            (cpu, layer.forward(&mut rec, &xt).unwrap())
        } else {
            let act = match op {
                "leaky_relu" => ParamActivation::LeakyRelu {
                    negative_slope: float_field(c, n, "negative_slope"),
                },
                "elu" => ParamActivation::Elu {
                    alpha: float_field(c, n, "alpha"),
                },
                "hardtanh" => ParamActivation::Hardtanh {
                    min_val: float_field(c, n, "min_val"),
                    max_val: float_field(c, n, "max_val"),
                },
                "softplus" => ParamActivation::Softplus {
                    beta: float_field(c, n, "beta"),
                    threshold: float_field(c, n, "threshold"),
                },
                other => panic!("unknown op {other}"),
            };
            let cpu = reference::channel::activation_with(x.view(), act).unwrap();
            (cpu, activation_with(&mut rec, &xt, act).unwrap())
        };
        assert_close_non_finite(
            cpu.view(),
            want.view(),
            tol.view(),
            &format!("reference {n}"),
        );
        let got = rec.download(&y).unwrap();
        assert_close_non_finite(got.view(), want.view(), tol.view(), &format!("GPU {n}"));
    }
    assert_eq!(ops.len(), 5, "every op has golden cases: {ops:?}");
}

#[test]
fn parametric_activations_keep_nan_and_refuse_bad_parameters() {
    use channel::{activation_with, PRelu, ParamActivation};
    let gpu = gpu();
    let x = Array4::from_shape_vec([1, 2, 1, 3], vec![f32::NAN, -1.0, 2.0, -3.0, f32::NAN, 0.0])
        .unwrap();
    let xt = gpu.upload(x.view()).unwrap();
    for act in [
        ParamActivation::leaky_relu(),
        ParamActivation::elu(),
        ParamActivation::hardtanh(),
        ParamActivation::softplus(),
    ] {
        let mut rec = gpu.recorder();
        let y = activation_with(&mut rec, &xt, act).unwrap();
        let got = rec.download(&y).unwrap();
        let want = reference::channel::activation_with(x.view(), act).unwrap();
        for (g, w) in got.iter().zip(want.iter()) {
            assert!(
                (g.is_nan() && w.is_nan()) || (g - w).abs() <= 1e-6 * (1.0 + w.abs()),
                "{act:?}: got {g}, want {w}"
            );
        }
    }
    for (act, name) in [
        (
            ParamActivation::Hardtanh {
                min_val: 1.0,
                max_val: 0.0,
            },
            "max_val",
        ),
        (
            ParamActivation::Softplus {
                beta: 0.0,
                threshold: 20.0,
            },
            "beta",
        ),
        (
            ParamActivation::LeakyRelu {
                negative_slope: f32::NAN,
            },
            "negative_slope",
        ),
        (
            ParamActivation::Elu {
                alpha: f32::INFINITY,
            },
            "alpha",
        ),
    ] {
        let mut rec = gpu.recorder();
        let e = activation_with(&mut rec, &xt, act);
        assert!(
            matches!(&e, Err(Error::InvalidParam { name: n, .. }) if *n == name),
            "{act:?}: {e:?}"
        );
    }
    // Three slopes for two channels; no slope at all.
    let three = PRelu::new(gpu, Array1::from(vec![0.1, 0.2, 0.3]).view()).unwrap();
    let mut rec = gpu.recorder();
    assert!(matches!(
        three.forward(&mut rec, &xt),
        Err(Error::InvalidParam { name: "input", .. })
    ));
    assert!(matches!(
        PRelu::new(gpu, Array1::<f32>::zeros(0).view()),
        Err(Error::InvalidParam { name: "weight", .. })
    ));
}

/// Softmax, log softmax and argmax over the channels against PyTorch
/// (`golden/activation.json`), and argmax's tie and NaN rules against the reference.
#[test]
fn channel_softmax_and_argmax_match_pytorch() {
    use common::golden::{array, cases, field, float_field, str_of, usize_of, usizes};
    let gpu = gpu();
    let all = cases(
        include_str!("golden/activation.json"),
        "tests/golden/activation.json",
    );
    let mut seen = std::collections::BTreeSet::new();
    for c in &all {
        let n = str_of(c, "?", "name");
        let op = str_of(c, n, "op");
        if !matches!(op, "softmax" | "log_softmax" | "argmax" | "layer_norm_2d") {
            continue;
        }
        seen.insert(op.to_string());
        let shape = usizes::<4>(c, n, "input_shape");
        let x: Array4<f32> = array(c, n, "input", shape);
        let xt = gpu.upload(x.view()).unwrap();
        let mut rec = gpu.recorder();
        if op == "argmax" {
            let out = [shape[0], 1, shape[2], shape[3]];
            let labels = field(c, n, "output").as_array().unwrap();
            let labels = labels.iter().map(|v| usize_of(v, n, "output") as i64);
            let want = Array4::from_shape_vec(out, labels.collect()).unwrap();
            assert_eq!(
                reference::channel::argmax(x.view()).unwrap(),
                want,
                "reference {n}"
            );
            let idx = channel::argmax(&mut rec, &xt).unwrap();
            rec.submit().unwrap();
            assert_eq!(gpu.download_indices(&idx).unwrap(), want, "GPU {n}");
            continue;
        }
        let want: Array4<f32> = array(c, n, "output", shape);
        let tol = want.mapv(|v| 2e-6 * (1.0 + v.abs()));
        if op == "layer_norm_2d" {
            let g: Array1<f32> = array(c, n, "weight", shape[1]);
            let b: Array1<f32> = array(c, n, "bias", shape[1]);
            let eps = float_field(c, n, "eps");
            let cpu = reference::channel::layer_norm_2d(x.view(), eps, g.view(), b.view()).unwrap();
            assert_close_non_finite(
                cpu.view(),
                want.view(),
                tol.view(),
                &format!("reference {n}"),
            );
            let layer =
                channel::LayerNorm2d::new(gpu, (shape[1], eps), Some(g.view()), Some(b.view()))
                    .unwrap();
            let y = layer.forward(&mut rec, &xt).unwrap();
            let got = rec.download(&y).unwrap();
            assert_close_non_finite(got.view(), want.view(), tol.view(), &format!("GPU {n}"));
            continue;
        }
        let log = op == "log_softmax";
        let cpu = reference::channel::softmax(x.view(), log).unwrap();
        assert_close_non_finite(
            cpu.view(),
            want.view(),
            tol.view(),
            &format!("reference {n}"),
        );
        let y = match log {
            true => channel::log_softmax(&mut rec, &xt).unwrap(),
            false => channel::softmax(&mut rec, &xt).unwrap(),
        };
        let got = rec.download(&y).unwrap();
        assert_close_non_finite(got.view(), want.view(), tol.view(), &format!("GPU {n}"));
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
    // NaN: argmax takes the first NaN's channel, softmax makes the pixel NaN.
    let x = Array4::from_shape_vec(
        [1, 4, 1, 2],
        vec![1.0, 2.0, f32::NAN, 7.0, 3.0, f32::NAN, f32::NAN, 7.0],
    )
    .unwrap();
    let xt = gpu.upload(x.view()).unwrap();
    let mut rec = gpu.recorder();
    let idx = channel::argmax(&mut rec, &xt).unwrap();
    let y = channel::softmax(&mut rec, &xt).unwrap();
    rec.submit().unwrap();
    let got = gpu.download_indices(&idx).unwrap();
    assert_eq!(got, reference::channel::argmax(x.view()).unwrap());
    assert_eq!(got.iter().copied().collect::<Vec<_>>(), vec![1, 2]);
    assert!(gpu.download(&y).unwrap().iter().all(|v| v.is_nan()));
    // LayerNorm2d refuses a bad eps, a zero width and another channel count.
    for (params, name) in [
        ((4, -1e-6), "eps"),
        ((4, f32::NAN), "eps"),
        ((0, 1e-5), "num_channels"),
    ] {
        let e = channel::LayerNorm2d::new(gpu, params, None, None);
        assert!(
            matches!(&e, Err(Error::InvalidParam { name: n, .. }) if *n == name),
            "{params:?}: {e:?}"
        );
    }
    let ln = channel::LayerNorm2d::new(gpu, (3, 1e-5), None, None).unwrap();
    let mut rec = gpu.recorder();
    assert!(matches!(
        ln.forward(&mut rec, &xt),
        Err(Error::ShapeMismatch { name: "input", .. })
    ));
}

/// Softmax, log-softmax and argmax over channels holding NaN and infinities, against what
/// PyTorch 2.15 gives for each pixel (a NaN, or +inf, makes every channel NaN; -inf
/// channels get 0 / -inf; argmax takes the first NaN, else the first maximum).
#[test]
fn softmax_and_argmax_with_non_finite_channels_as_pytorch() {
    let gpu = gpu();
    let (nan, inf) = (f32::NAN, f32::INFINITY);
    // A pixel's channels; PyTorch's softmax and log-softmax (None: all NaN); its argmax.
    type Pixel = ([f32; 3], Option<[f32; 3]>, Option<[f32; 3]>, usize);
    let pixels: [Pixel; 7] = [
        ([1.0, nan, 2.0], None, None, 1),
        ([1.0, inf, 2.0], None, None, 1),
        (
            [1.0, -inf, 2.0],
            Some([0.268_941_43, 0.0, 0.731_058_6]),
            Some([-1.313_261_6, -inf, -0.313_261_66]),
            2,
        ),
        ([-inf, -inf, -inf], None, None, 0),
        ([nan, 5.0, nan], None, None, 0),
        ([inf, inf, 1.0], None, None, 0),
        (
            [3.0, 3.0, -1.0],
            Some([0.495_462_66, 0.495_462_66, 0.009_074_716]),
            Some([-0.702_263_3, -0.702_263_3, -4.702_263_4]),
            0,
        ),
    ];
    let x = Array4::from_shape_fn([1, 3, 1, pixels.len()], |(_, c, _, p)| pixels[p].0[c]);
    let mut rec = gpu.recorder();
    let input = up(&x);
    let soft = channel::softmax(&mut rec, &input).unwrap();
    let log = channel::log_softmax(&mut rec, &input).unwrap();
    let got = rec.download_many(&[&soft, &log]).unwrap();
    let arg = {
        let mut rec = gpu.recorder();
        let i = channel::argmax(&mut rec, &input).unwrap();
        rec.download_indices(&i).unwrap()
    };
    let same = |got: f32, want: f32| {
        if want.is_nan() {
            got.is_nan()
        } else if want.is_infinite() {
            got == want
        } else {
            (got - want).abs() <= 1e-6
        }
    };
    let reference = [
        reference::channel::softmax(x.view(), false).unwrap(),
        reference::channel::softmax(x.view(), true).unwrap(),
    ];
    let reference_arg = reference::channel::argmax(x.view()).unwrap();
    for (p, (values, soft_want, log_want, arg_want)) in pixels.iter().enumerate() {
        for c in 0..3 {
            let s = soft_want.map_or(nan, |w| w[c]);
            let l = log_want.map_or(nan, |w| w[c]);
            assert!(
                same(reference[0][[0, c, 0, p]], s),
                "reference softmax {values:?}"
            );
            assert!(
                same(reference[1][[0, c, 0, p]], l),
                "reference log {values:?}"
            );
            assert!(
                same(got[0][[0, c, 0, p]], s),
                "softmax of {values:?}, channel {c}: {} (PyTorch {s})",
                got[0][[0, c, 0, p]]
            );
            assert!(
                same(got[1][[0, c, 0, p]], l),
                "log_softmax of {values:?}, channel {c}: {} (PyTorch {l})",
                got[1][[0, c, 0, p]]
            );
        }
        assert_eq!(arg[[0, 0, 0, p]], *arg_want as i64, "argmax of {values:?}");
        assert_eq!(
            reference_arg[[0, 0, 0, p]],
            *arg_want as i64,
            "reference argmax"
        );
    }
}

/// CBAM's bad values are typed errors naming the parameter: a ratio or channel count of 0,
/// and, with no hidden channel, MLP weights or biases of the wrong shape.
#[test]
fn cbam_bad_parameters_are_typed_errors() {
    let gpu = gpu();
    let invalid = |r: segblocks::Result<()>, name: &str| match r {
        Err(Error::InvalidParam { name: n, .. }) => assert_eq!(n, name),
        other => panic!("expected InvalidParam({name}), got {other:?}"),
    };
    let order = ChannelPoolOrder::MaxMean;
    invalid(
        CbamParams::new(8, order).reduction_ratio(0).validate(),
        "reduction_ratio",
    );
    invalid(CbamParams::new(0, order).validate(), "gate_channels");
    // 6 channels, ratio 16: no hidden channel, MLP weights [0, 6] and [6, 0].
    let params = CbamParams::new(6, order).kernel_size(3);
    let spatial = Array4::<f32>::zeros([1, 2, 3, 3]);
    let build = |w1: [usize; 4], b1: usize, w2: [usize; 4], b2: usize| {
        let (w1, b1) = (Array4::<f32>::zeros(w1), Array1::<f32>::zeros(b1));
        let (w2, b2) = (Array4::<f32>::zeros(w2), Array1::<f32>::zeros(b2));
        Cbam::new(
            gpu,
            params,
            (w1.view(), Some(b1.view())),
            (w2.view(), Some(b2.view())),
            spatial.view(),
            None,
        )
        .map(drop)
    };
    build([0, 6, 1, 1], 0, [6, 0, 1, 1], 6).unwrap();
    let mismatch = |r: segblocks::Result<()>, name: &str| match r {
        Err(Error::ShapeMismatch { name: n, .. }) => assert_eq!(n, name),
        other => panic!("expected ShapeMismatch({name}), got {other:?}"),
    };
    mismatch(build([1, 6, 1, 1], 0, [6, 0, 1, 1], 6), "mlp1 weight");
    mismatch(build([0, 6, 1, 1], 0, [6, 1, 1, 1], 6), "mlp2 weight");
    invalid(build([0, 6, 1, 1], 1, [6, 0, 1, 1], 6), "mlp1 bias");
    invalid(build([0, 6, 1, 1], 0, [6, 0, 1, 1], 5), "mlp2 bias");
}
