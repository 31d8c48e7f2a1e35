//! Convolution: every kernel against the CPU reference, PyTorch golden files, bad input,
//! device limits, pooling and recording.

mod common;

use common::*;
use ndarray::{Array1, Array4};
use proptest::prelude::*;
use segblocks::ops::channel::ParamActivation;
use segblocks::ops::conv::{
    select_kernel, Conv2d, Conv2dParams, ConvKernel, DepthwiseSeparableConv2d,
    DepthwiseSeparableParams, LiveTaps, ResidualJoin,
};
use segblocks::ops::Activation;
use segblocks::reference;
use segblocks::{DeviceCaps, DeviceClass, Error, Gpu, GpuOptions, LOOP_BUDGET};

/// Error bound for a convolution output: the reduction has `L = C_in/g * kH * kW` terms
/// (plus bias); summing them in f32 in any order is off from the exact sum by at most
/// `L * eps * sum |x * w|` (the standard dot-product bound, `eps` = 2^-24), so the bound is
/// computed per output from the reference convolution of |x| with |w|. The fused
/// activations have slope at most 1.5, hence the factor 2; a small absolute floor covers
/// the transcendental activations' own rounding.
fn bound(
    params: &Conv2dParams,
    x: &Array4<f32>,
    w: &Array4<f32>,
    b: Option<&Array1<f32>>,
) -> Array4<f32> {
    let abs_params = params.activation(Activation::None);
    let ax = x.mapv(f32::abs);
    let aw = w.mapv(f32::abs);
    let ab = b.map(|b| b.mapv(f32::abs));
    let mag = reference::conv::conv2d(
        &abs_params,
        ax.view(),
        aw.view(),
        ab.as_ref().map(|b| b.view()),
    )
    .unwrap();
    let terms = (params.in_per_group() * params.kernel_size.0 * params.kernel_size.1 + 1) as f32;
    mag.mapv(|m| 2.0 * terms * f32::EPSILON * m + 1e-6)
}

fn check(params: Conv2dParams, input: [usize; 4], seed: u64, kernels: &[ConvKernel]) {
    let gpu = gpu();
    let mut r = rng(seed);
    let x = random4(&mut r, input);
    let w = random4(&mut r, params.weight_shape());
    let b = params.bias.then(|| random1(&mut r, params.out_channels));
    let want =
        reference::conv::conv2d(&params, x.view(), w.view(), b.as_ref().map(|b| b.view())).unwrap();
    let tol = bound(&params, &x, &w, b.as_ref());
    let conv = Conv2d::new(gpu, params, w.view(), b.as_ref().map(|b| b.view())).unwrap();
    let xt = gpu.upload(x.view()).unwrap();
    for &k in kernels {
        if !k.supports(&params, input) {
            continue;
        }
        // Fresh (zeroed) buffers: the previous kernel's output, recycled by the pool,
        // would hide values a kernel fails to write.
        gpu.trim_pool();
        let mut rec = gpu.recorder();
        let y = conv.forward_with(&mut rec, &xt, k).unwrap();
        let got = rec.download(&y).unwrap();
        assert_close(
            got.view(),
            want.view(),
            tol.view(),
            &format!("{k:?} {params:?} on {input:?}"),
        );
    }
    // The library's own choice, on the live taps where some read only padding.
    gpu.trim_pool();
    let mut rec = gpu.recorder();
    let y = conv.forward(&mut rec, &xt).unwrap();
    let got = rec.download(&y).unwrap();
    let live = params.live_taps(input);
    assert_close(
        got.view(),
        want.view(),
        tol.view(),
        &format!("forward {params:?} on {input:?} (live taps {live:?})"),
    );
}

/// Asserts that `result` is the loop-budget refusal.
fn assert_over_budget<T: std::fmt::Debug>(result: segblocks::Result<T>, what: &str) {
    match result {
        Err(Error::TooLarge { unit, limit, .. }) => {
            assert_eq!(
                (unit, limit),
                ("loop iterations per invocation", LOOP_BUDGET),
                "{what}"
            )
        }
        other => panic!("{what}: {other:?}"),
    }
}

/// [`check`] on small integers (inputs and weights in {-1, 0, 1}, biases in {-2, ..., 2}:
/// [`integers4`]), whose outputs must equal the reference's. At tens of thousands of terms
/// the rounding bound of random data is wider than the outputs themselves: a sum cut
/// short (llvmpipe ends an invocation after 65,535 loop iterations) or an output left
/// unwritten could pass it.
fn check_exact(params: Conv2dParams, input: [usize; 4], seed: u64, kernels: &[ConvKernel]) {
    let gpu = gpu();
    let mut r = rng(seed);
    let x = integers4(&mut r, input, -1, 1);
    let w = integers4(&mut r, params.weight_shape(), -1, 1);
    let b = params
        .bias
        .then(|| integers1(&mut r, params.out_channels, -2, 2));
    let want =
        reference::conv::conv2d(&params, x.view(), w.view(), b.as_ref().map(|b| b.view())).unwrap();
    let conv = Conv2d::new(gpu, params, w.view(), b.as_ref().map(|b| b.view())).unwrap();
    let xt = gpu.upload(x.view()).unwrap();
    for &k in kernels {
        assert!(k.supports(&params, input), "{k:?}");
        gpu.trim_pool();
        let mut rec = gpu.recorder();
        let y = conv.forward_with(&mut rec, &xt, k).unwrap();
        assert_eq!(
            rec.download(&y).unwrap(),
            want,
            "{k:?} {params:?} on {input:?}"
        );
    }
    // Every other kernel for the shape: exact too, or refused for the loop budget.
    for k in ConvKernel::ALL {
        if kernels.contains(&k) || !k.supports(&params, input) {
            continue;
        }
        gpu.trim_pool();
        let mut rec = gpu.recorder();
        match conv.forward_with(&mut rec, &xt, k) {
            Ok(y) => assert_eq!(
                rec.download(&y).unwrap(),
                want,
                "{k:?} {params:?} on {input:?}"
            ),
            Err(e) => assert_over_budget::<()>(Err(e), &format!("{k:?} {params:?}")),
        }
    }
}

/// One invocation loops over the input channels of its group: up to the loop budget the
/// result is exact (Mesa ends an invocation after 65,535 iterations, and a pointwise
/// convolution over 70,000 channels used to come back wrong), past it a typed error.
#[test]
fn input_channels_up_to_the_loop_budget() {
    let budget = LOOP_BUDGET as usize;
    let pointwise = [ConvKernel::Pointwise { vector_io: true }];
    check_exact(
        Conv2dParams::new(budget, 2, 1),
        [1, budget, 2, 2],
        61,
        &pointwise,
    );
    let direct = [
        ConvKernel::Direct { row_buffer: true },
        ConvKernel::DirectTexels {
            vector_loads: false,
            vector_stores: false,
        },
    ];
    check_exact(
        Conv2dParams::new(budget, 2, 3),
        [1, budget, 3, 3],
        62,
        &direct,
    );
    let gpu = gpu();
    for (p, kernel) in [
        (
            Conv2dParams::new(budget + 1, 2, 1).bias(false),
            pointwise[0],
        ),
        (Conv2dParams::new(budget + 1, 2, 3).bias(false), direct[0]),
        (Conv2dParams::new(budget + 1, 2, 3).bias(false), direct[1]),
    ] {
        let conv = Conv2d::new(gpu, p, Array4::zeros(p.weight_shape()).view(), None).unwrap();
        let x = gpu
            .upload(Array4::zeros([1, budget + 1, 4, 4]).view())
            .unwrap();
        let mut rec = gpu.recorder();
        assert_over_budget(conv.forward_with(&mut rec, &x, kernel), &format!("{p:?}"));
    }
}

/// ASPP's dilated branches over 2048 channels (deeplabv3_resnet50 at 160 x 160: layer4 is
/// 20 x 20): a row segment too long to unroll would run 210,944 loop iterations per
/// invocation with the row buffer, so the choice takes the direct kernel without it.
#[test]
fn wide_dilations_over_many_channels_stay_within_the_loop_budget() {
    let gpu = gpu();
    for rate in [12, 24, 36] {
        let p = Conv2dParams::new(2048, 4, 3)
            .padding(rate)
            .dilation(rate)
            .bias(false);
        let input = [1, 2048, 20, 20];
        let kernel = select_kernel(&p, input, gpu.caps());
        assert_eq!(
            kernel,
            ConvKernel::Direct { row_buffer: false },
            "rate {rate}"
        );
        check(p, input, 63 + rate as u64, &[kernel]);
    }
}

#[test]
fn named_configurations_every_kernel() {
    let all = &ConvKernel::ALL;
    // Standard 3x3, batch 2, odd sizes, channel counts not multiples of 4.
    check(Conv2dParams::new(3, 5, 3).padding(1), [2, 3, 9, 11], 1, all);
    // Stride-2 stems: 7x7 and 3x3.
    check(
        Conv2dParams::new(3, 16, 7).stride(2).padding(3),
        [1, 3, 23, 17],
        2,
        all,
    );
    check(
        Conv2dParams::new(3, 8, 3).stride(2).padding(1),
        [2, 3, 16, 15],
        3,
        all,
    );
    // 5x5 and non-square kernels with per-axis stride, padding and dilation.
    check(
        Conv2dParams::new(4, 6, 5).padding(2),
        [1, 4, 12, 10],
        4,
        all,
    );
    check(
        Conv2dParams::new(5, 7, (1, 7)).padding((0, 3)),
        [1, 5, 6, 13],
        5,
        all,
    );
    check(
        Conv2dParams::new(5, 7, (3, 1))
            .padding((1, 0))
            .stride((1, 2)),
        [2, 5, 9, 8],
        6,
        all,
    );
    check(
        Conv2dParams::new(3, 4, (2, 3))
            .dilation((2, 1))
            .stride((2, 3)),
        [1, 3, 11, 14],
        7,
        all,
    );
    // Dilated depthwise windows of 5 rows at stride 1: each invocation's four output rows
    // are the dilation apart (a partial last block of rows, a channel multiplier, a
    // dilation along rows only); a map shorter than four dilated rows keeps one row each.
    for (params, input, seed) in [
        (
            Conv2dParams::depthwise(6, 1, 5).dilation(2).padding(4),
            [2, 6, 19, 13],
            80,
        ),
        (
            Conv2dParams::depthwise(4, 2, 5).dilation(3).padding(6),
            [1, 4, 25, 16],
            81,
        ),
        (
            Conv2dParams::depthwise(5, 1, (5, 3))
                .dilation((2, 1))
                .padding((4, 1)),
            [2, 5, 8, 9],
            82,
        ),
        (
            Conv2dParams::depthwise(4, 1, 5).dilation(2).padding(4),
            [1, 4, 7, 8],
            83,
        ),
    ] {
        check(params, input, seed, all);
    }
    // Pointwise, with and without the vec4 pixel condition.
    check(Conv2dParams::new(12, 9, 1), [2, 12, 4, 5], 8, all);
    check(
        Conv2dParams::new(12, 9, 1).bias(false),
        [1, 12, 3, 3],
        9,
        all,
    );
    check(Conv2dParams::new(16, 40, 1), [1, 16, 8, 8], 10, all);
    // Depthwise with multipliers 1 and 3, stride 2.
    check(
        Conv2dParams::depthwise(10, 1, 3).padding(1),
        [2, 10, 13, 9],
        11,
        all,
    );
    check(
        Conv2dParams::depthwise(6, 3, 3).padding(1).stride(2),
        [1, 6, 12, 12],
        12,
        all,
    );
    check(
        Conv2dParams::depthwise(4, 1, 5).padding(2),
        [1, 4, 7, 30],
        13,
        all,
    );
    // Group convolution: ResNeXt-like 32 groups of 4, and groups with 8+ outputs each.
    check(
        Conv2dParams::new(64, 64, 3).padding(1).groups(32),
        [1, 64, 6, 6],
        14,
        all,
    );
    check(
        Conv2dParams::new(12, 18, 3).padding(1).groups(3),
        [2, 12, 7, 9],
        15,
        all,
    );
    // Atrous: DeepLab rates 6, 12, 18 (the last exceeds the row buffer and takes the
    // per-column load path).
    for (i, rate) in [6usize, 12, 18].into_iter().enumerate() {
        check(
            Conv2dParams::new(8, 6, 3).padding(rate).dilation(rate),
            [1, 8, 19, 21],
            16 + i as u64,
            all,
        );
    }
    // Single-pixel inputs.
    check(Conv2dParams::new(5, 3, 1), [3, 5, 1, 1], 20, all);
    check(Conv2dParams::new(5, 3, 3).padding(1), [2, 5, 1, 1], 21, all);
    // Padding larger than the kernel radius.
    check(Conv2dParams::new(2, 3, 3).padding(4), [1, 2, 3, 5], 22, all);
}

#[test]
fn every_activation_fuses() {
    for (i, act) in Activation::ALL.into_iter().enumerate() {
        let seed = 100 + i as u64;
        check(
            Conv2dParams::new(4, 9, 3).padding(1).activation(act),
            [1, 4, 6, 7],
            seed,
            &ConvKernel::ALL,
        );
        check(
            Conv2dParams::new(8, 5, 1).activation(act),
            [1, 8, 4, 4],
            seed,
            &ConvKernel::ALL,
        );
        check(
            Conv2dParams::depthwise(3, 2, 3).activation(act),
            [1, 3, 5, 9],
            seed,
            &ConvKernel::ALL,
        );
    }
}

/// Leaky ReLU, ELU, hardtanh and softplus with parameters other than PyTorch's defaults,
/// after a parameter-free activation or alone, in every kernel's store; the reference
/// applies them as the standalone op's reference does.
#[test]
fn every_param_activation_fuses() {
    let params = [
        ParamActivation::LeakyRelu {
            negative_slope: 0.2,
        },
        ParamActivation::Elu { alpha: 0.7 },
        ParamActivation::Hardtanh {
            min_val: -0.5,
            max_val: 0.8,
        },
        ParamActivation::Softplus {
            beta: 2.0,
            threshold: 1.5,
        },
    ];
    for (i, pact) in params.into_iter().enumerate() {
        let seed = 300 + i as u64;
        let before = [Activation::None, Activation::Relu6][i % 2];
        let layers = [
            (Conv2dParams::new(4, 9, 3).padding(1), [1, 4, 6, 7]),
            (Conv2dParams::new(8, 5, 1), [2, 8, 4, 4]),
            (Conv2dParams::depthwise(3, 2, 3), [1, 3, 5, 9]),
        ];
        for (p, shape) in layers {
            let p = p.activation(before).param_activation(pact);
            check(p, shape, seed, &ConvKernel::ALL);
            // The reference is the standalone op after the convolution.
            let mut r = rng(seed);
            let x = random4(&mut r, shape);
            let w = random4(&mut r, p.weight_shape());
            let fused = reference::conv::conv2d(&p, x.view(), w.view(), None).unwrap();
            let plain = Conv2dParams {
                param_activation: None,
                ..p
            };
            let conv = reference::conv::conv2d(&plain, x.view(), w.view(), None).unwrap();
            let then = reference::channel::activation_with(conv.view(), pact).unwrap();
            assert_eq!(fused, then, "{p:?}");
        }
    }
    // Bad parameters are refused when the layer is built.
    let bad = Conv2dParams::new(2, 2, 1).param_activation(ParamActivation::Softplus {
        beta: 0.0,
        threshold: 20.0,
    });
    let w = Array4::zeros(bad.weight_shape());
    match Conv2d::new(gpu(), bad, w.view(), None) {
        Err(Error::InvalidParam { name: "beta", .. }) => {}
        other => panic!("{other:?}"),
    }
}

/// A residual joined after the activations: `leaky(tanh(conv(x))) + r`; before them:
/// `leaky(tanh(conv(x) + r))`.
#[test]
fn param_activations_with_a_residual() {
    let gpu = gpu();
    let pact = ParamActivation::LeakyRelu {
        negative_slope: 0.1,
    };
    let p = Conv2dParams::new(6, 6, 3)
        .padding(1)
        .bias(false)
        .activation(Activation::Tanh)
        .param_activation(pact);
    let shape = [2, 6, 5, 8];
    let mut r = rng(77);
    let x = random4(&mut r, shape);
    let w = random4(&mut r, p.weight_shape());
    let res = random4(&mut r, shape);
    let plain = Conv2dParams {
        activation: Activation::None,
        param_activation: None,
        ..p
    };
    let conv = reference::conv::conv2d(&plain, x.view(), w.view(), None).unwrap();
    let leaky = |y: Array4<f32>| reference::channel::activation_with(y.view(), pact).unwrap();
    let tanh = |y: Array4<f32>| y.mapv(f32::tanh);
    let after = leaky(tanh(conv.clone())) + &res;
    let before = leaky(tanh(&conv + &res));
    let then = ParamActivation::LeakyRelu {
        negative_slope: -0.3,
    };
    let leaky_then = |y: Array4<f32>| reference::channel::activation_with(y.view(), then).unwrap();
    let between = leaky_then(tanh(leaky(tanh(conv.clone())) + &res));
    let layer = Conv2d::new(gpu, p, w.view(), None).unwrap();
    let (xt, rt) = (
        gpu.upload(x.view()).unwrap(),
        gpu.upload(res.view()).unwrap(),
    );
    for (join, want) in [
        (ResidualJoin::AfterActivation, after),
        (ResidualJoin::BeforeActivation, before),
        (
            ResidualJoin::AfterActivationThen(Activation::Tanh, Some(then)),
            between,
        ),
    ] {
        let mut rec = gpu.recorder();
        let y = layer.forward_residual(&mut rec, &xt, &rt, join).unwrap();
        let got = rec.download(&y).unwrap();
        let tol = want.mapv(|v| 1e-5 * (1.0 + v.abs()));
        assert_close(got.view(), want.view(), tol.view(), &format!("{join:?}"));
    }
}

/// The parameters of the activations with parameters (a PReLU's slope, the one after a
/// residual's sum) are the kernels' uniform, not their constants: layers that differ only
/// in them share one pipeline per kernel, and each still applies its own.
#[test]
fn param_activation_values_share_a_pipeline() {
    // A context of its own: the shared one's pipeline count moves with the other tests.
    let gpu = &Gpu::new().unwrap();
    let mut r = rng(79);
    let shape = [1, 8, 6, 7];
    let x = random4(&mut r, shape);
    let res = random4(&mut r, shape);
    let (xt, rt) = (
        gpu.upload(x.view()).unwrap(),
        gpu.upload(res.view()).unwrap(),
    );
    let leaky = |s: f32| ParamActivation::LeakyRelu { negative_slope: s };
    for (kernel, k) in [(ConvKernel::Gemm, 3), (ConvKernel::PointwiseTexels, 1)] {
        let before = gpu.pipelines_created();
        for (i, (own, then)) in [(0.25, -0.5), (0.75, 1.5), (-0.1, 0.01)]
            .into_iter()
            .enumerate()
        {
            let p = Conv2dParams::new(8, 8, k)
                .padding(k / 2)
                .bias(false)
                .param_activation(leaky(own));
            let w = random4(&mut r, p.weight_shape());
            let plain = Conv2dParams {
                param_activation: None,
                ..p
            };
            let z = reference::conv::conv2d(&plain, x.view(), w.view(), None).unwrap();
            let act = |y: Array4<f32>, s| {
                reference::channel::activation_with(y.view(), leaky(s)).unwrap()
            };
            let want = act(act(z, own) + &res, then);
            let join = ResidualJoin::AfterActivationThen(Activation::None, Some(leaky(then)));
            let conv = Conv2d::new(gpu, p, w.view(), None).unwrap();
            let mut rec = gpu.recorder();
            let y = conv
                .forward_residual_with(&mut rec, &xt, &rt, join, kernel)
                .unwrap();
            let got = rec.download(&y).unwrap();
            let tol = bound(&p, &x, &w, None).mapv(|t| 2.0 * t + 1e-5);
            assert_close(
                got.view(),
                want.view(),
                tol.view(),
                &format!("{kernel:?} {i}"),
            );
            assert_eq!(gpu.pipelines_created(), before + 1, "{kernel:?} {i}");
        }
    }
}

fn arb_case() -> impl Strategy<Value = (Conv2dParams, [usize; 4], u64)> {
    (
        1usize..=3,  // batch
        1usize..=4,  // groups selector
        1usize..=6,  // in channels per group
        1usize..=10, // out channels per group
        (1usize..=5, 1usize..=5),
        (1usize..=3, 1usize..=3),
        (0usize..=4, 0usize..=4),
        (1usize..=3, 1usize..=3),
        (1usize..=14, 1usize..=14),
        any::<u64>(),
        0usize..7,
        any::<bool>(),
    )
        .prop_filter_map(
            "output would be empty",
            |(n, gsel, cin_pg, cout_pg, k, s, pad, d, hw, seed, act, bias)| {
                // Group selector: 1 group, 2-3 groups, or depthwise (cin_pg = 1).
                let (groups, cin_pg) = match gsel {
                    1 => (1, cin_pg),
                    2 => (2, cin_pg),
                    3 => (3, cin_pg),
                    _ => (cin_pg + 1, 1),
                };
                let params = Conv2dParams::new(groups * cin_pg, groups * cout_pg, k)
                    .stride(s)
                    .padding(pad)
                    .dilation(d)
                    .groups(groups)
                    .bias(bias)
                    .activation(Activation::ALL[act]);
                let input = [n, groups * cin_pg, hw.0, hw.1];
                params
                    .output_shape(input)
                    .ok()
                    .map(|_| (params, input, seed))
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    /// Cut to its live taps, a convolution computes the same output (the reference on
    /// both: the dropped taps read only zero padding), with the same shape.
    #[test]
    fn live_taps_compute_the_same((params, input, seed) in arb_case()) {
        if let Some(taps) = params.live_taps(input) {
            let trimmed = params.trimmed(taps).unwrap();
            prop_assert_eq!(trimmed.output_shape(input).unwrap(), params.output_shape(input).unwrap());
            let k = trimmed.kernel_size;
            prop_assert!(k.0 <= params.kernel_size.0 && k.1 <= params.kernel_size.1 && k != params.kernel_size);
            let mut r = rng(seed);
            let x = random4(&mut r, input);
            let w = random4(&mut r, params.weight_shape());
            let b = params.bias.then(|| random1(&mut r, params.out_channels));
            let b = b.as_ref().map(|b| b.view());
            let want = reference::conv::conv2d(&params, x.view(), w.view(), b).unwrap();
            let got = reference::conv::conv2d(&trimmed, x.view(), taps.weight(w.view()).unwrap().view(), b).unwrap();
            let tol = want.mapv(|v| 1e-6 * v.abs().max(1.0));
            assert_close(got.view(), want.view(), tol.view(), &format!("{params:?} on {input:?} cut to {taps:?}"));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// Randomised sweep: every kernel that supports the case agrees with the reference.
    /// Two tests of 24 random cases each, so that the test threads share them: a case's
    /// time is mostly the driver compiling its kernels, on the thread that asks.
    #[test]
    fn random_configurations_match_reference((params, input, seed) in arb_case()) {
        check(params, input, seed, &ConvKernel::ALL);
    }

    /// 24 more random cases (see above).
    #[test]
    fn more_random_configurations_match_reference((params, input, seed) in arb_case()) {
        check(params, input, seed, &ConvKernel::ALL);
    }
}

/// Taps that read only zero padding are skipped: DeepLab's ASPP rates past the map are
/// their centre tap (a pointwise convolution), a window wider than the map loses its
/// outer taps, and nothing is cut where every tap reads the input or where the padding
/// is not zeros.
#[test]
fn taps_reading_only_padding_are_skipped() {
    let aspp = |rate: usize| {
        Conv2dParams::new(8, 6, 3)
            .padding(rate)
            .dilation(rate)
            .bias(false)
            .activation(Activation::Relu)
    };
    let map = [2, 8, 20, 20];
    let centre = aspp(36).live_taps(map).unwrap();
    assert_eq!((centre.rows, centre.cols), ((1, 1), (1, 1)));
    let cut = aspp(36).trimmed(centre).unwrap();
    assert!(cut.is_pointwise(), "{cut:?}");
    assert!(aspp(24)
        .trimmed(aspp(24).live_taps(map).unwrap())
        .unwrap()
        .is_pointwise());
    assert_eq!(aspp(12).live_taps(map), None);
    // Rows only: a tall map, a short dilation across it.
    let tall = Conv2dParams::new(3, 4, 3).padding(5).dilation(5);
    let taps = tall.live_taps([1, 3, 4, 11]).unwrap();
    assert_eq!((taps.rows, taps.cols), ((1, 1), (0, 2)));
    // A 7x7 window over 3x3: taps 1..=5 read it; the padding shrinks from 3 to 2.
    let wide = Conv2dParams::new(2, 2, 7).padding(3);
    let taps = wide.live_taps([1, 2, 3, 3]).unwrap();
    assert_eq!((taps.rows, taps.cols), ((1, 5), (1, 5)));
    assert_eq!(wide.trimmed(taps).unwrap().pads(), ((2, 2), (2, 2)));
    // Padding that is not zeros reads the map through every tap.
    assert!(aspp(2).live_taps([1, 8, 2, 2]).is_some());
    let circular = aspp(2).padding_mode(segblocks::ops::conv::PaddingMode::Circular);
    assert_eq!(circular.live_taps([1, 8, 2, 2]), None);
    for (params, input) in [
        (aspp(36), map),
        (aspp(24), [1, 8, 20, 13]),
        (aspp(12), [1, 8, 9, 20]),
        (tall, [1, 3, 4, 11]),
        (wide, [2, 2, 3, 3]),
        (wide.stride(2), [1, 2, 5, 3]),
        (
            Conv2dParams::depthwise(8, 1, 3).padding(24).dilation(24),
            map,
        ),
    ] {
        check(params, input, 7, &[]);
    }
}

/// Taps that are not a range of the window, or that drop taps the padding does not cover,
/// are typed errors naming them, never a panic.
#[test]
fn inconsistent_taps_are_typed_errors() {
    let p = Conv2dParams::new(2, 2, 3).padding(1);
    let w = Array4::<f32>::zeros(p.weight_shape());
    let cases = [
        LiveTaps {
            rows: (2, 1),
            cols: (0, 2),
        },
        LiveTaps {
            rows: (0, 3),
            cols: (0, 2),
        },
        LiveTaps {
            rows: (0, 2),
            cols: (1, 5),
        },
    ];
    for taps in cases {
        assert!(
            matches!(
                p.trimmed(taps),
                Err(Error::InvalidParam { name: "taps", .. })
            ),
            "{taps:?}"
        );
        assert!(
            matches!(
                taps.weight(w.view()),
                Err(Error::InvalidParam { name: "taps", .. })
            ),
            "{taps:?}"
        );
    }
    // Inside the window, but dropping two leading rows needs padding 2 (there is 1).
    let deep = LiveTaps {
        rows: (2, 2),
        cols: (0, 2),
    };
    assert!(matches!(
        p.trimmed(deep),
        Err(Error::InvalidParam { name: "taps", .. })
    ));
    assert_eq!(deep.weight(w.view()).unwrap().shape(), [2, 2, 1, 3]);
}

#[test]
fn kernel_selection_is_explicit() {
    // One table of shapes: the choice is a pure function, tested without a GPU. A
    // CPU-emulated adapter first (the register-tiled kernels).
    let caps = DeviceCaps {
        cpu: true,
        ..DeviceCaps::default()
    };
    let s = [1, 64, 56, 56];
    let texels = |vector_loads, vector_stores| ConvKernel::DirectTexels {
        vector_loads,
        vector_stores,
    };
    let dw = |vector_loads, vector_stores| ConvKernel::Depthwise {
        row_buffer: true,
        vector_loads,
        vector_stores,
    };
    for (params, input, want) in [
        // Texel fetches: vector gathers on a CPU adapter; a row of 56 pixels in strips of
        // 16 (4 x 14 without vector loads), so four pixels a store.
        (
            Conv2dParams::new(64, 64, 3).padding(1),
            s,
            texels(true, true),
        ),
        (Conv2dParams::new(64, 24, 1), s, ConvKernel::PointwiseTexels),
        // Planes that are not a multiple of 4 (9 x 9, 7 x 7, 1 x 1): the texel pointwise
        // kernel reads the two texels of each group of four pixels; strided 1 x 1
        // windows take the direct kernel reading storage.
        (
            Conv2dParams::new(96, 576, 1),
            [1, 96, 9, 9],
            ConvKernel::PointwiseTexels,
        ),
        (
            Conv2dParams::new(160, 960, 1),
            [1, 160, 7, 7],
            ConvKernel::PointwiseTexels,
        ),
        (
            Conv2dParams::new(2048, 256, 1),
            [2, 2048, 1, 1],
            ConvKernel::PointwiseTexels,
        ),
        (
            Conv2dParams::new(1024, 48, 1).stride(2),
            [1, 1024, 14, 14],
            ConvKernel::Direct { row_buffer: true },
        ),
        // A 7 x 7 stem at stride 2: vector loads would need strips of 12 instead of 16.
        (
            Conv2dParams::new(3, 64, 7).stride(2).padding(3),
            [2, 3, 160, 160],
            texels(false, true),
        ),
        // Rows of 40 in strips of 14: one value a store.
        (
            Conv2dParams::new(64, 64, 3).stride(2).padding(1),
            [1, 64, 80, 80],
            texels(true, false),
        ),
        // Reflect padding reads through pad_index: one texel per value.
        (
            Conv2dParams::new(8, 8, 3)
                .padding(1)
                .padding_mode(segblocks::ops::conv::PaddingMode::Reflect),
            [1, 8, 16, 16],
            texels(false, true),
        ),
        // Vector loads as texels on a CPU adapter (as storage loads they measured slower
        // than scalar ones there) where the row allows them and vector stores.
        (
            Conv2dParams::depthwise(64, 1, 3).padding(1),
            s,
            ConvKernel::DepthwiseTexels,
        ),
        (Conv2dParams::depthwise(64, 2, 3), s, dw(false, false)),
        // A width not divisible by 4: scalar loads; 54 output columns: scalar stores.
        (
            Conv2dParams::depthwise(64, 1, 3),
            [1, 64, 56, 55],
            dw(false, false),
        ),
        // Reflect padding reads through pad_index: no aligned vector loads.
        (
            Conv2dParams::depthwise(8, 1, 3)
                .padding(1)
                .padding_mode(segblocks::ops::conv::PaddingMode::Reflect),
            [1, 8, 16, 16],
            dw(false, true),
        ),
        // 54 output columns: one value a store.
        (
            Conv2dParams::new(64, 64, 3).groups(32),
            s,
            texels(true, false),
        ),
        // 128 output channels or more: the columns, then the pointwise kernel; not where
        // the columns pass the cap (64 x 9 x 512 x 512 values), nor for groups.
        (
            Conv2dParams::new(64, 128, 3).padding(1),
            s,
            ConvKernel::Im2colTexels,
        ),
        (
            Conv2dParams::new(64, 256, 3).stride(2).padding(1),
            [1, 64, 40, 40],
            ConvKernel::Im2colTexels,
        ),
        (
            Conv2dParams::new(64, 128, 3).padding(1),
            [1, 64, 512, 512],
            texels(true, true),
        ),
        (
            Conv2dParams::new(128, 128, 3).padding(1).groups(2),
            [1, 128, 56, 56],
            texels(true, true),
        ),
        // A dilation too wide for the row buffer.
        (
            Conv2dParams::new(4, 4, 3).dilation(20).padding(20),
            [1, 4, 64, 64],
            ConvKernel::Direct { row_buffer: false },
        ),
        (
            Conv2dParams::depthwise(4, 1, 3).dilation(20).padding(20),
            [1, 4, 64, 64],
            ConvKernel::Depthwise {
                row_buffer: false,
                vector_loads: false,
                vector_stores: true,
            },
        ),
    ] {
        let got = select_kernel(&params, input, &caps);
        assert_eq!(got, want, "{params:?} on {input:?}");
        // The texel variants are the CPU adapters' only.
        let gpu_choice = select_kernel(&params, input, &DeviceCaps::default());
        assert!(!matches!(
            gpu_choice,
            ConvKernel::DirectTexels { .. }
                | ConvKernel::PointwiseTexels
                | ConvKernel::DepthwiseTexels
                | ConvKernel::Im2colTexels
        ));
        assert!(got.supports(&params, input));
        assert!(ConvKernel::candidates(&params, input).contains(&got));
    }
    // The columns stay within half the device's binding limit: 64 x 9 x 112 x 112 values
    // (28.9 MB) do not on a device that binds 16 MB.
    let small = DeviceCaps {
        max_storage_buffer_binding_size: 16 << 20,
        ..caps
    };
    let wide = Conv2dParams::new(64, 128, 3).padding(1);
    assert_eq!(select_kernel(&wide, s, &small), ConvKernel::Im2colTexels);
    assert_eq!(
        select_kernel(&wide, [1, 64, 112, 112], &caps),
        ConvKernel::Im2colTexels
    );
    assert_eq!(
        select_kernel(&wide, [1, 64, 112, 112], &small),
        texels(true, true)
    );
    // A GPU: the workgroup-tiled GEMM for every convolution but the depthwise ones and
    // those with narrow groups, within the loop budget; depthwise ones with their input
    // patch in workgroup memory.
    let gpu_caps = DeviceCaps::default();
    for (params, input, want) in [
        (Conv2dParams::new(64, 64, 3).padding(1), s, ConvKernel::Gemm),
        (Conv2dParams::new(64, 24, 1), s, ConvKernel::Gemm),
        (Conv2dParams::new(64, 64, 3).groups(4), s, ConvKernel::Gemm),
        (
            Conv2dParams::new(64, 64, 3).groups(32),
            s,
            ConvKernel::Direct { row_buffer: true },
        ),
        (
            Conv2dParams::new(16, 16, 3).dilation(20).padding(20),
            [1, 16, 64, 64],
            ConvKernel::Gemm,
        ),
        (
            Conv2dParams::depthwise(64, 1, 3).padding(1),
            s,
            ConvKernel::DepthwiseTiled,
        ),
        (
            Conv2dParams::depthwise(8, 2, 5).stride(2).padding(2),
            [2, 8, 33, 33],
            ConvKernel::DepthwiseTiled,
        ),
        // A dilation whose input patch would not fit workgroup memory: the register strips.
        (
            Conv2dParams::depthwise(4, 1, 3).dilation(20).padding(20),
            [1, 4, 64, 64],
            ConvKernel::Depthwise {
                row_buffer: false,
                vector_loads: false,
                vector_stores: true,
            },
        ),
        // A reduction past the loop budget (60,000 x 3 x 3 taps, 16 per step): the direct
        // kernel, which then refuses it with TooLarge.
        (
            Conv2dParams::new(60_000, 8, 3),
            [1, 60_000, 3, 3],
            ConvKernel::Direct { row_buffer: false },
        ),
    ] {
        let got = select_kernel(&params, input, &gpu_caps);
        assert_eq!(got, want, "GPU: {params:?} on {input:?}");
        assert!(got.supports(&params, input));
    }
    // The pointwise kernel also runs planes that are not a multiple of 4 pixels (its
    // scalar variant), against the reference.
    check(
        Conv2dParams::new(9, 6, 1).activation(Activation::Relu),
        [2, 9, 7, 7],
        111,
        &[ConvKernel::Pointwise { vector_io: false }],
    );
    check(
        Conv2dParams::new(3, 17, 1),
        [1, 3, 1, 3],
        112,
        &[ConvKernel::Pointwise { vector_io: false }],
    );
    // Planes of 8 and 12 pixels: two and three vec4s per invocation.
    for (input, seed) in [([2, 5, 2, 4], 113), ([2, 5, 3, 4], 114)] {
        check(
            Conv2dParams::new(5, 7, 1),
            input,
            seed,
            &[
                ConvKernel::Pointwise { vector_io: true },
                ConvKernel::Pointwise { vector_io: false },
            ],
        );
    }
    // A kernel that does not apply is refused with a typed error, not run.
    let gpu = gpu();
    let p = Conv2dParams::new(4, 4, 3).bias(false);
    let conv = Conv2d::new(gpu, p, Array4::zeros(p.weight_shape()).view(), None).unwrap();
    let x = gpu.upload(Array4::zeros([1, 4, 8, 8]).view()).unwrap();
    let mut rec = gpu.recorder();
    for k in [
        ConvKernel::Pointwise { vector_io: true },
        ConvKernel::Depthwise {
            row_buffer: false,
            vector_loads: false,
            vector_stores: false,
        },
    ] {
        let err = conv.forward_with(&mut rec, &x, k).unwrap_err();
        assert!(
            matches!(err, Error::InvalidParam { name: "kernel", .. }),
            "{err}"
        );
    }
}

#[test]
fn depthwise_separable_is_one_recording() {
    let gpu = gpu();
    let mut r = rng(7);
    let params = DepthwiseSeparableParams::new(6, 10, 3, 2);
    let params = DepthwiseSeparableParams {
        depthwise: params
            .depthwise
            .padding(1)
            .stride(2)
            .activation(Activation::Relu6),
        pointwise: params.pointwise.activation(Activation::Relu6),
    };
    let x = random4(&mut r, [2, 6, 11, 12]);
    let dw = random4(&mut r, params.depthwise.weight_shape());
    let db = random1(&mut r, 12);
    let pw = random4(&mut r, params.pointwise.weight_shape());
    let pb = random1(&mut r, 10);
    let want = reference::conv::depthwise_separable(
        &params,
        x.view(),
        dw.view(),
        Some(db.view()),
        pw.view(),
        Some(pb.view()),
    )
    .unwrap();
    let layer = DepthwiseSeparableConv2d::new(
        gpu,
        params,
        dw.view(),
        Some(db.view()),
        pw.view(),
        Some(pb.view()),
    )
    .unwrap();
    let xt = gpu.upload(x.view()).unwrap();
    let mut rec = gpu.recorder();
    let y = layer.forward(&mut rec, &xt).unwrap();
    assert_eq!(rec.dispatch_count(), 2);
    let got = rec.download(&y).unwrap();
    assert_eq!(params.output_shape([2, 6, 11, 12]).unwrap(), [2, 10, 6, 6]);
    let tol = want.mapv(|v| 1e-4 * (1.0 + v.abs()));
    assert_close(got.view(), want.view(), tol.view(), "depthwise separable");
    // Cost: depthwise k^2 * C * m + pointwise C * m * C_out weights, plus biases.
    let cost = params.cost([2, 6, 11, 12]).unwrap();
    assert_eq!(cost.params, (9 * 12 + 12) + (12 * 10 + 10));
    assert_eq!(cost.macs, 2 * 6 * 6 * (9 * 12 + 12 * 10));
}

#[test]
fn an_input_gate_fuses_into_pointwise_and_gemm_kernels() {
    // conv(x * act(gate)) [+ residual]: the pointwise kernels (vector and scalar) and the
    // GEMM apply the gate as they read; the others scale first. Batch 2, plane sizes with
    // and without a multiple of 4 pixels, channel counts that are not multiples of 4, and
    // a grouped 3x3 convolution with reflect padding (the GEMM's gate before the padding).
    let gpu = gpu();
    let mut r = rng(31);
    let one = |c| Conv2dParams::new(c, 5, 1).bias(true);
    for (input, params, join) in [
        ([2, 6, 4, 5], one(6), None),
        ([2, 7, 3, 3], one(7), Some(ResidualJoin::AfterActivation)),
        (
            [2, 6, 5, 7],
            Conv2dParams::new(6, 4, 3)
                .groups(2)
                .padding(1)
                .padding_mode(segblocks::ops::conv::PaddingMode::Reflect)
                .bias(true),
            None,
        ),
    ] {
        let x = random4(&mut r, input);
        let w = random4(&mut r, params.weight_shape());
        let b = random1(&mut r, params.out_channels);
        let logits = random4(&mut r, [input[0], input[1], 1, 1]).mapv(|v| 4.0 * v);
        let out = params.output_shape(input).unwrap();
        let res = random4(&mut r, out);
        let conv = Conv2d::new(gpu, params, w.view(), Some(b.view())).unwrap();
        let (xt, gt, rt) = (
            gpu.upload(x.view()).unwrap(),
            gpu.upload(logits.view()).unwrap(),
            gpu.upload(res.view()).unwrap(),
        );
        for act in [Activation::HardSigmoid, Activation::Sigmoid] {
            let scaled = reference::channel::scale_channels(x.view(), logits.view(), act).unwrap();
            let conv_ref =
                reference::conv::conv2d(&params, scaled.view(), w.view(), Some(b.view())).unwrap();
            let want = match join {
                Some(_) => &conv_ref + &res,
                None => conv_ref,
            };
            let tol = want.mapv(|v| 1e-5 * (1.0 + v.abs()));
            let mut kernels = ConvKernel::candidates(&params, input);
            kernels.push(ConvKernel::Direct { row_buffer: true });
            assert!(kernels.contains(&ConvKernel::Gemm));
            for k in kernels {
                gpu.trim_pool();
                let mut rec = gpu.recorder();
                let residual = join.map(|j| (&rt, j));
                let y = conv
                    .forward_gated_with(&mut rec, &xt, (&gt, act), residual, k)
                    .unwrap();
                // One pass where the kernel applies the gate, two otherwise.
                let passes = k.dispatches() + usize::from(!k.applies_input_gate());
                assert_eq!(rec.dispatch_count(), passes, "{k:?}");
                let got = rec.download(&y).unwrap();
                let what = format!("{k:?} gate {act:?} on {input:?}, residual {join:?}");
                assert_close(got.view(), want.view(), tol.view(), &what);
            }
        }
        // A gate of the wrong shape is a typed error naming it.
        let bad = gpu
            .upload(Array4::<f32>::zeros([1, input[1], 1, 1]).view())
            .unwrap();
        let mut rec = gpu.recorder();
        let e = conv.forward_gated(&mut rec, &xt, (&bad, Activation::Sigmoid), None);
        assert!(
            matches!(e, Err(Error::ShapeMismatch { name: "gate", .. })),
            "{e:?}"
        );
    }
}

fn expect_param_error(result: segblocks::Result<impl std::fmt::Debug>, name: &str) -> String {
    match result {
        Err(Error::InvalidParam { name: n, reason }) => {
            assert_eq!(n, name, "{reason}");
            reason
        }
        other => panic!("expected an InvalidParam error for `{name}`, got {other:?}"),
    }
}

#[test]
fn bad_parameters_are_typed_errors() {
    let s = [1, 4, 8, 8];
    let r = expect_param_error(
        Conv2dParams::new(4, 4, 3).stride(0).output_shape(s),
        "stride",
    );
    assert!(r.contains("(0, 0)"), "{r}");
    expect_param_error(
        Conv2dParams::new(4, 4, 3).stride((1, 0)).output_shape(s),
        "stride",
    );
    expect_param_error(
        Conv2dParams::new(4, 4, 3).dilation(0).output_shape(s),
        "dilation",
    );
    expect_param_error(Conv2dParams::new(4, 4, 0).output_shape(s), "kernel_size");
    // 'same' padding of d * (k - 1) / 2 past the window limit (it wrapped i32 coordinates).
    expect_param_error(
        Conv2dParams::new(1, 1, (258, 1))
            .dilation((16_777_215, 1))
            .padding_same()
            .output_shape(s),
        "padding",
    );
    expect_param_error(
        Conv2dParams::new(4, 4, 3).groups(0).output_shape(s),
        "groups",
    );
    let r = expect_param_error(
        Conv2dParams::new(4, 6, 3).groups(4).output_shape(s),
        "groups",
    );
    assert!(
        r.contains("out_channels (6)") && r.contains("groups (4)"),
        "{r}"
    );
    let r = expect_param_error(
        Conv2dParams::new(6, 4, 3)
            .groups(4)
            .output_shape([1, 6, 8, 8]),
        "groups",
    );
    assert!(r.contains("in_channels (6)"), "{r}");
    expect_param_error(Conv2dParams::new(0, 4, 3).output_shape(s), "in_channels");
    expect_param_error(Conv2dParams::new(4, 0, 3).output_shape(s), "out_channels");
    // Output size of zero: kernel extent larger than the padded input.
    let r = expect_param_error(
        Conv2dParams::new(4, 4, 5).output_shape([1, 4, 3, 8]),
        "kernel_size",
    );
    assert!(
        r.contains("extent 5") && r.contains("padded input 3"),
        "{r}"
    );
    expect_param_error(
        Conv2dParams::new(4, 4, 3).dilation(4).output_shape(s),
        "kernel_size",
    );
    // Zero-sized dimensions.
    expect_param_error(
        Conv2dParams::new(4, 4, 1).output_shape([0, 4, 8, 8]),
        "input",
    );
    expect_param_error(
        Conv2dParams::new(4, 4, 1).output_shape([1, 4, 0, 8]),
        "input",
    );
    // Channel mismatch.
    match Conv2dParams::new(4, 4, 1).output_shape([1, 3, 8, 8]) {
        Err(Error::ShapeMismatch {
            name: "input",
            expected,
            actual,
        }) => {
            assert_eq!(expected, vec![1, 4, 8, 8]);
            assert_eq!(actual, vec![1, 3, 8, 8]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_weights_and_tensors_are_typed_errors() {
    let gpu = gpu();
    let p = Conv2dParams::new(4, 6, 3).groups(2);
    // Weight shape must be [C_out, C_in / groups, kH, kW] = [6, 2, 3, 3].
    match Conv2d::new(
        gpu,
        p,
        Array4::zeros([6, 4, 3, 3]).view(),
        Some(Array1::zeros(6).view()),
    ) {
        Err(Error::ShapeMismatch {
            name: "weight",
            expected,
            actual,
        }) => {
            assert_eq!(expected, vec![6, 2, 3, 3]);
            assert_eq!(actual, vec![6, 4, 3, 3]);
        }
        other => panic!("{other:?}"),
    }
    let w = Array4::zeros(p.weight_shape());
    assert!(matches!(
        Conv2d::new(gpu, p, w.view(), Some(Array1::zeros(5).view())),
        Err(Error::ShapeMismatch { name: "bias", .. })
    ));
    expect_param_error(Conv2d::new(gpu, p, w.view(), None), "bias");
    expect_param_error(
        Conv2d::new(gpu, p.bias(false), w.view(), Some(Array1::zeros(6).view())),
        "bias",
    );
    // Zero-sized upload.
    expect_param_error(
        gpu.upload(Array4::<f32>::zeros([1, 0, 2, 2]).view()),
        "input",
    );
    // Input with the wrong channel count at forward time.
    let conv = Conv2d::new(gpu, p, w.view(), Some(Array1::zeros(6).view())).unwrap();
    let x = gpu.upload(Array4::zeros([1, 3, 8, 8]).view()).unwrap();
    let mut rec = gpu.recorder();
    assert!(matches!(
        conv.forward(&mut rec, &x),
        Err(Error::ShapeMismatch { name: "input", .. })
    ));
    // A tensor from another context.
    let other = Gpu::new().unwrap();
    let x_other = other.upload(Array4::zeros([1, 4, 8, 8]).view()).unwrap();
    match conv.forward(&mut rec, &x_other) {
        Err(Error::WrongDevice {
            name: "input",
            tensor_gpu,
            this_gpu,
        }) => {
            assert_eq!(tensor_gpu, other.id());
            assert_eq!(this_gpu, gpu.id());
        }
        other => panic!("{other:?}"),
    }
    // A layer used with a recorder of another context.
    let mut rec_other = other.recorder();
    assert!(matches!(
        conv.forward(&mut rec_other, &x_other),
        Err(Error::WrongDevice { name: "layer", .. })
    ));
    assert!(matches!(other.download(&x), Err(Error::WrongDevice { .. })));
    drop(rec);
}

#[test]
fn grid_folds_past_the_workgroup_limit() {
    // With at most 16 workgroups per dimension, these dispatches need folded 2-D grids
    // (a CPU adapter's kernels, on any adapter). A GPU's kernels launch more, smaller
    // workgroups: past 16 x 16 of them the dispatch is refused with a typed error, never
    // run wrong.
    for class in [DeviceClass::Cpu, DeviceClass::Gpu] {
        let gpu = Gpu::with_options(GpuOptions {
            max_compute_workgroups_per_dimension: Some(16),
            device_class: Some(class),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(gpu.limits().max_compute_workgroups_per_dimension, 16);
        let mut r = rng(11);
        for (params, shape) in [
            (
                Conv2dParams::depthwise(24, 1, 3).padding(1),
                [2, 24, 40, 40],
            ),
            (Conv2dParams::new(16, 24, 1), [1, 16, 64, 64]),
            (Conv2dParams::new(4, 24, 3).padding(1), [3, 4, 40, 40]),
        ] {
            let x = random4(&mut r, shape);
            let w = random4(&mut r, params.weight_shape());
            let b = random1(&mut r, params.out_channels);
            let want =
                reference::conv::conv2d(&params, x.view(), w.view(), Some(b.view())).unwrap();
            let conv = Conv2d::new(&gpu, params, w.view(), Some(b.view())).unwrap();
            let xt = gpu.upload(x.view()).unwrap();
            let mut rec = gpu.recorder();
            let y = match conv.forward(&mut rec, &xt) {
                Err(Error::TooLarge {
                    name: "dispatch", ..
                }) if class == DeviceClass::Gpu => continue,
                y => y.unwrap(),
            };
            let got = rec.download(&y).unwrap();
            let tol = bound(&params, &x, &w, Some(&b));
            assert_close(
                got.view(),
                want.view(),
                tol.view(),
                &format!("folded {params:?} ({class:?})"),
            );
        }
    }
}

#[test]
fn tensors_beyond_the_binding_limit_are_refused() {
    let gpu = Gpu::with_options(GpuOptions {
        max_storage_buffer_binding_size: Some(1 << 16),
        ..Default::default()
    })
    .unwrap();
    match gpu.upload(Array4::zeros([1, 1, 128, 256]).view()) {
        Err(Error::TooLarge {
            name: "input",
            amount,
            unit: "bytes",
            limit,
            limit_name,
        }) => {
            assert_eq!(amount, 131072);
            assert_eq!(limit, 65536);
            assert_eq!(limit_name, "max_storage_buffer_binding_size");
        }
        other => panic!("{other:?}"),
    }
    // An op whose output would be too large refuses before touching the GPU.
    let p = Conv2dParams::new(1, 8, 1).bias(false);
    let conv = Conv2d::new(&gpu, p, Array4::zeros(p.weight_shape()).view(), None).unwrap();
    let x = gpu.upload(Array4::zeros([1, 1, 64, 64]).view()).unwrap();
    let mut rec = gpu.recorder();
    assert!(matches!(
        conv.forward(&mut rec, &x),
        Err(Error::TooLarge { name: "output", .. })
    ));
}

#[test]
fn texel_textures_are_reused_and_trimmed() {
    let gpu = Gpu::new().unwrap();
    let p = Conv2dParams::new(8, 12, 1).bias(false);
    let mut r = rng(5);
    let w = random4(&mut r, p.weight_shape());
    let conv = Conv2d::new(&gpu, p, w.view(), None).unwrap();
    let kernel = ConvKernel::PointwiseTexels;
    let run = |side: usize| {
        let x = random4(&mut rng(side as u64), [1, 8, side, side]);
        let xt = gpu.upload(x.view()).unwrap();
        let mut rec = gpu.recorder();
        let y = conv.forward_with(&mut rec, &xt, kernel).unwrap();
        let got = rec.download(&y).unwrap();
        let want = reference::conv::conv2d(&p, x.view(), w.view(), None).unwrap();
        let err = (&got - &want).iter().fold(0f32, |m, d| m.max(d.abs()));
        assert!(err < 1e-4, "texels: max error {err}");
    };
    // Sizes alternate: after one round the textures are all there.
    run(8);
    run(64);
    let after_one = gpu.memory_stats().texel_bytes;
    assert!(after_one > 0);
    for i in 0..20 {
        run(if i % 2 == 0 { 8 } else { 64 });
    }
    assert_eq!(gpu.memory_stats().texel_bytes, after_one);
    gpu.trim_pool();
    assert_eq!(gpu.memory_stats().texel_bytes, 0);
    run(8);
}

/// The texel pointwise kernel on planes that are not a multiple of 4 pixels: each group of
/// four pixels read from the two texels it spans (every offset into a texel, batch 2),
/// one value stored at a time, with a residual and with an input gate. Planes of fewer
/// than 16 pixels take as many vec4s per invocation as they have (1 x 1: one, 2 x 3: two,
/// 3 x 3: three).
#[test]
fn pointwise_texels_read_planes_of_any_size() {
    let gpu = Gpu::new().unwrap();
    let mut r = rng(223);
    for (input, c_out) in [
        ([2, 5, 7, 7], 9),
        ([2, 3, 3, 5], 4),
        ([1, 7, 1, 1], 6),
        ([2, 6, 2, 3], 5),
        ([2, 9, 3, 3], 20),
    ] {
        let c_in = input[1];
        let params = Conv2dParams::new(c_in, c_out, 1).activation(Activation::Relu6);
        let x = random4(&mut r, input);
        let w = random4(&mut r, params.weight_shape());
        let b = random1(&mut r, c_out);
        let res = random4(&mut r, [input[0], c_out, input[2], input[3]]);
        let logits = random4(&mut r, [input[0], c_in, 1, 1]);
        let conv = Conv2d::new(&gpu, params, w.view(), Some(b.view())).unwrap();
        let up = |a: &Array4<f32>| gpu.upload(a.view()).unwrap();
        let (xt, rt, gt) = (up(&x), up(&res), up(&logits));
        let kernel = ConvKernel::PointwiseTexels;
        assert!(kernel.supports(&params, input));
        let conv_ref = |x: &Array4<f32>| {
            reference::conv::conv2d(&params, x.view(), w.view(), Some(b.view())).unwrap()
        };
        let plain = conv_ref(&x);
        let plain_pre = reference::conv::conv2d(
            &params.activation(Activation::None),
            x.view(),
            w.view(),
            Some(b.view()),
        )
        .unwrap();
        let gated_x =
            reference::channel::scale_channels(x.view(), logits.view(), Activation::Sigmoid)
                .unwrap();
        let cases: [(&str, Array4<f32>); 3] = [
            ("plain", plain.clone()),
            (
                "residual",
                reference::channel::activation((plain_pre + &res).view(), Activation::Relu6),
            ),
            ("gated", conv_ref(&gated_x)),
        ];
        for (what, want) in cases {
            let mut rec = gpu.recorder();
            let y = match what {
                "plain" => conv.forward_with(&mut rec, &xt, kernel),
                "residual" => conv.forward_residual_with(
                    &mut rec,
                    &xt,
                    &rt,
                    ResidualJoin::BeforeActivation,
                    kernel,
                ),
                _ => {
                    conv.forward_gated_with(&mut rec, &xt, (&gt, Activation::Sigmoid), None, kernel)
                }
            }
            .unwrap();
            let got = rec.download(&y).unwrap();
            let tol = want.mapv(|v| 1e-5 * (1.0 + v.abs()));
            assert_close(
                got.view(),
                want.view(),
                tol.view(),
                &format!("{what} {input:?}"),
            );
        }
    }
}

/// The CPU adapters' pointwise and depthwise kernels read a piecewise-linear activation
/// (none, ReLU, ReLU6, hardsigmoid, hardswish) from their uniform: one pipeline for all
/// of them with each residual join and gate, each result still the reference's; the
/// others (sigmoid, SiLU, GELU, ...) keep pipelines of their own.
#[test]
fn cpu_kernels_take_linear_activations_at_run() {
    let gpu = Gpu::new().unwrap();
    let mut r = rng(211);
    let input = [2, 6, 3, 4];
    let x = random4(&mut r, input);
    let logits = random4(&mut r, [2, 6, 1, 1]).mapv(|v| 4.0 * v);
    let (xt, gt) = (
        gpu.upload(x.view()).unwrap(),
        gpu.upload(logits.view()).unwrap(),
    );
    let res = random4(&mut r, [2, 16, 3, 4]);
    let rt = gpu.upload(res.view()).unwrap();
    let mut run = |act: Activation, gate: Option<Activation>, join: Option<ResidualJoin>| {
        let params = Conv2dParams::new(6, 16, 1).bias(true).activation(act);
        let w = random4(&mut r, params.weight_shape());
        let b = random1(&mut r, 16);
        let scaled = match gate {
            Some(g) => reference::channel::scale_channels(x.view(), logits.view(), g).unwrap(),
            None => x.clone(),
        };
        let plain = params.activation(Activation::None);
        let z = reference::conv::conv2d(&plain, scaled.view(), w.view(), Some(b.view())).unwrap();
        let a = |v: Array4<f32>| reference::channel::activation(v.view(), act);
        let want = match join {
            None => a(z),
            Some(ResidualJoin::AfterActivation) => a(z) + &res,
            Some(ResidualJoin::BeforeActivation) => a(z + &res),
            Some(ResidualJoin::AfterActivationThen(..)) => (a(z) + &res).mapv(|v| v.max(0.0)),
            Some(ResidualJoin::AddThen(_)) => unreachable!(),
        };
        let conv = Conv2d::new(&gpu, params, w.view(), Some(b.view())).unwrap();
        let mut rec = gpu.recorder();
        let kernel = ConvKernel::PointwiseTexels;
        let residual = join.map(|j| (&rt, j));
        let y = match (gate, join) {
            (Some(g), _) => conv.forward_gated_with(&mut rec, &xt, (&gt, g), residual, kernel),
            (None, Some(j)) => conv.forward_residual_with(&mut rec, &xt, &rt, j, kernel),
            (None, None) => conv.forward_with(&mut rec, &xt, kernel),
        }
        .unwrap();
        let got = rec.download(&y).unwrap();
        let tol = want.mapv(|v| 1e-5 * (1.0 + v.abs()));
        let what = format!("{act:?} gate {gate:?} residual {join:?}");
        assert_close(got.view(), want.view(), tol.view(), &what);
    };
    let linear = [
        Activation::None,
        Activation::Relu,
        Activation::Relu6,
        Activation::HardSigmoid,
        Activation::HardSwish,
    ];
    for (gate, join) in [
        (None, None),
        (None, Some(ResidualJoin::AfterActivation)),
        (None, Some(ResidualJoin::BeforeActivation)),
        (
            None,
            Some(ResidualJoin::AfterActivationThen(Activation::Relu, None)),
        ),
        (Some(Activation::Sigmoid), None),
        (
            Some(Activation::HardSigmoid),
            Some(ResidualJoin::AfterActivation),
        ),
    ] {
        let before = gpu.pipelines_created();
        for act in linear {
            run(act, gate, join);
        }
        let what = format!("gate {gate:?} residual {join:?}");
        assert_eq!(gpu.pipelines_created(), before + 1, "one pipeline: {what}");
        for act in [Activation::Sigmoid, Activation::Gelu] {
            run(act, gate, join);
        }
        assert_eq!(gpu.pipelines_created(), before + 3, "their own: {what}");
    }
    // The depthwise kernel the same way (3x3, multiplier 2, batch 2).
    let before = gpu.pipelines_created();
    for act in linear {
        let params = Conv2dParams::depthwise(6, 2, 3)
            .padding(1)
            .bias(true)
            .activation(act);
        let w = random4(&mut r, params.weight_shape());
        let b = random1(&mut r, 12);
        let want = reference::conv::conv2d(&params, x.view(), w.view(), Some(b.view())).unwrap();
        let conv = Conv2d::new(&gpu, params, w.view(), Some(b.view())).unwrap();
        let mut rec = gpu.recorder();
        let y = conv
            .forward_with(&mut rec, &xt, ConvKernel::DepthwiseTexels)
            .unwrap();
        let got = rec.download(&y).unwrap();
        let tol = want.mapv(|v| 1e-5 * (1.0 + v.abs()));
        assert_close(
            got.view(),
            want.view(),
            tol.view(),
            &format!("depthwise {act:?}"),
        );
    }
    assert_eq!(
        gpu.pipelines_created(),
        before + 1,
        "one depthwise pipeline"
    );
}

/// Atrous convolutions whose rate reaches past part of the map (DeepLab's ASPP at rate 12
/// on a 20 x 20 map) run on CPU adapters as rectangles of the output with their live taps
/// alone: the same result as the whole convolution and the reference, at batch 2, odd
/// sizes and rows and columns cut differently.
#[test]
fn atrous_convolutions_run_as_rectangles_of_live_taps() {
    let aspp = Conv2dParams::new(256, 256, 3)
        .padding(12)
        .dilation(12)
        .activation(Activation::Relu);
    let regions = aspp.tap_regions([2, 256, 20, 20]).unwrap();
    assert_eq!(regions.len(), 9, "{regions:?}");
    let taps: usize = regions.iter().map(|r| r.outputs() * r.taps.count()).sum();
    assert_eq!(taps, 1296, "36% of 400 x 9");
    // Every output reading every tap, strides, other padding modes: no cut.
    assert!(Conv2dParams::new(8, 8, 3)
        .padding(1)
        .tap_regions([1, 8, 9, 9])
        .is_some());
    assert!(Conv2dParams::new(8, 8, 3)
        .tap_regions([1, 8, 9, 9])
        .is_none());
    assert!(Conv2dParams::new(8, 8, 3)
        .padding(12)
        .dilation(12)
        .stride(2)
        .tap_regions([1, 8, 20, 20])
        .is_none());
    let gpu = Gpu::with_options(GpuOptions::default()).unwrap();
    if !gpu.caps().cpu {
        return;
    }
    let mut r = rng(77);
    for (params, input) in [
        (aspp, [2, 256, 20, 20]),
        (
            Conv2dParams::new(128, 256, 3)
                .padding((16, 12))
                .dilation((16, 12))
                .activation(Activation::Relu6),
            [2, 128, 26, 30],
        ),
    ] {
        let x = random4(&mut r, input);
        let w = random4(&mut r, params.weight_shape());
        let b = random1(&mut r, params.out_channels);
        let want = reference::conv::conv2d(&params, x.view(), w.view(), Some(b.view())).unwrap();
        let tol = bound(&params, &x, &w, Some(&b));
        let conv = Conv2d::new(&gpu, params, w.view(), Some(b.view())).unwrap();
        let xt = gpu.upload(x.view()).unwrap();
        let mut rec = gpu.recorder();
        let y = conv.forward(&mut rec, &xt).unwrap();
        let dispatches = rec.dispatch_count();
        let got = rec.download(&y).unwrap();
        let what = format!("{params:?} on {input:?}");
        assert!(
            dispatches > 9,
            "{what}: cut into regions ({dispatches} dispatches)"
        );
        assert_close(got.view(), want.view(), tol.view(), &what);
    }
}

#[test]
fn buffer_pool_stays_flat_and_pipelines_compile_once() {
    let gpu = Gpu::new().unwrap();
    let p = Conv2dParams::new(4, 8, 3)
        .padding(1)
        .activation(Activation::Relu);
    let mut r = rng(3);
    let w = random4(&mut r, p.weight_shape());
    let b = random1(&mut r, 8);
    let conv = Conv2d::new(&gpu, p, w.view(), Some(b.view())).unwrap();
    let x = random4(&mut r, [1, 4, 16, 16]);
    let run = || {
        let xt = gpu.upload(x.view()).unwrap();
        let mut rec = gpu.recorder();
        let y = conv.forward(&mut rec, &xt).unwrap();
        rec.download(&y).unwrap()
    };
    let first = run();
    let pipelines = gpu.pipelines_created();
    let after_one = gpu.memory_stats();
    for _ in 0..1000 {
        assert_eq!(run(), first);
    }
    let after = gpu.memory_stats();
    assert_eq!(gpu.pipelines_created(), pipelines, "no recompilation");
    assert_eq!(
        after.live_bytes, after_one.live_bytes,
        "live bytes flat: {after:?}"
    );
    assert_eq!(
        after.buffers_created, after_one.buffers_created,
        "no new buffers: {after:?}"
    );
    assert!(after.pooled_bytes > 0);
    gpu.trim_pool();
    assert_eq!(gpu.memory_stats().pooled_bytes, 0);
}

#[test]
fn many_ops_one_submission_and_async_readback() {
    let gpu = gpu();
    let mut r = rng(5);
    let p1 = Conv2dParams::new(3, 8, 3)
        .padding(1)
        .activation(Activation::Relu);
    let p2 = Conv2dParams::depthwise(8, 1, 3).padding(1).stride(2);
    let p3 = Conv2dParams::new(8, 4, 1).activation(Activation::Sigmoid);
    let (w1, w2, w3) = (
        random4(&mut r, p1.weight_shape()),
        random4(&mut r, p2.weight_shape()),
        random4(&mut r, p3.weight_shape()),
    );
    let (b1, b2, b3) = (random1(&mut r, 8), random1(&mut r, 8), random1(&mut r, 4));
    let c1 = Conv2d::new(gpu, p1, w1.view(), Some(b1.view())).unwrap();
    let c2 = Conv2d::new(gpu, p2, w2.view(), Some(b2.view())).unwrap();
    let c3 = Conv2d::new(gpu, p3, w3.view(), Some(b3.view())).unwrap();
    let x = random4(&mut r, [2, 3, 20, 20]);
    let want = {
        let a = reference::conv::conv2d(&p1, x.view(), w1.view(), Some(b1.view())).unwrap();
        let b = reference::conv::conv2d(&p2, a.view(), w2.view(), Some(b2.view())).unwrap();
        reference::conv::conv2d(&p3, b.view(), w3.view(), Some(b3.view())).unwrap()
    };
    let xt = gpu.upload(x.view()).unwrap();
    let mut rec = gpu.recorder();
    // Intermediates are dropped while recording; the recorder keeps their buffers alive
    // until submission, so later allocations cannot alias them.
    let y = {
        let a = c1.forward(&mut rec, &xt).unwrap();
        let b = c2.forward(&mut rec, &a).unwrap();
        c3.forward(&mut rec, &b).unwrap()
    };
    assert_eq!(rec.dispatch_count(), 3);
    let got = pollster::block_on(rec.download_async(&y)).unwrap();
    let tol = want.mapv(|v| 1e-4 * (1.0 + v.abs()));
    assert_close(got.view(), want.view(), tol.view(), "three ops");
    let again = pollster::block_on(gpu.download_async(&y)).unwrap();
    assert_eq!(again, got);
}

#[test]
fn cost_model_reproduces_the_seed_figures() {
    let input = [1, 256, 56, 56];
    let standard = Conv2dParams::new(256, 256, 3)
        .padding(1)
        .bias(false)
        .cost(input)
        .unwrap();
    assert_eq!(standard.params, 589_824);
    assert_eq!(standard.macs, 589_824 * 56 * 56);
    assert_eq!(standard.flops(), 2 * standard.macs);
    let sep = DepthwiseSeparableParams::new(256, 256, 3, 1);
    let sep = DepthwiseSeparableParams {
        depthwise: sep.depthwise.padding(1).bias(false),
        pointwise: sep.pointwise.bias(false),
    };
    let ratio = sep.cost(input).unwrap().macs as f64 / standard.macs as f64;
    assert!((ratio - (1.0 / 256.0 + 1.0 / 9.0)).abs() < 1e-12, "{ratio}");
    for g in [1, 2, 4, 8, 32] {
        let p = Conv2dParams::new(256, 128, 3).groups(g).bias(false);
        assert_eq!(p.cost(input).unwrap().params, 9 * 256 * 128 / g as u64);
    }
    let bottleneck = Conv2dParams::new(256, 64, 1)
        .bias(false)
        .cost(input)
        .unwrap()
        .params
        + Conv2dParams::new(64, 64, 3)
            .bias(false)
            .cost([1, 64, 56, 56])
            .unwrap()
            .params
        + Conv2dParams::new(64, 256, 1)
            .bias(false)
            .cost([1, 64, 56, 56])
            .unwrap()
            .params;
    assert_eq!(bottleneck, 69_632);
    // Bias adds C_out parameters; stride and padding change MACs through the output size.
    let p = Conv2dParams::new(3, 32, 3).stride(2).padding(1);
    let c = p.cost([2, 3, 224, 224]).unwrap();
    assert_eq!(c.params, 32 * 3 * 9 + 32);
    assert_eq!(c.macs, 32 * 3 * 9 * 2 * 112 * 112);
}

#[test]
fn padding_modes_and_same_padding_match_pytorch() {
    use segblocks::ops::conv::PaddingMode;
    let text = common::golden::golden_text("tests/golden/conv2d_padding.json");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let gpu = gpu();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    let us = |v: &serde_json::Value| v.as_u64().unwrap() as usize;
    let pair = |v: &serde_json::Value| (us(&v[0]), us(&v[1]));
    let floats = |v: &serde_json::Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect::<Vec<_>>()
    };
    let shape4 = |v: &serde_json::Value| [us(&v[0]), us(&v[1]), us(&v[2]), us(&v[3])];
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let mode = match case["padding_mode"].as_str().unwrap() {
            "zeros" => PaddingMode::Zeros,
            "reflect" => PaddingMode::Reflect,
            "replicate" => PaddingMode::Replicate,
            "circular" => PaddingMode::Circular,
            other => panic!("{other}"),
        };
        let mut params = Conv2dParams::new(
            us(&case["in_channels"]),
            us(&case["out_channels"]),
            pair(&case["kernel_size"]),
        )
        .stride(pair(&case["stride"]))
        .dilation(pair(&case["dilation"]))
        .groups(us(&case["groups"]))
        .padding_mode(mode);
        params = if case["padding"].is_string() {
            params.padding_same()
        } else {
            params.padding(pair(&case["padding"]))
        };
        let input = shape4(&case["input_shape"]);
        let x = Array4::from_shape_vec(input, floats(&case["input"])).unwrap();
        let w = Array4::from_shape_vec(params.weight_shape(), floats(&case["weight"])).unwrap();
        let b = Array1::from_vec(floats(&case["bias"]));
        let want =
            Array4::from_shape_vec(shape4(&case["output_shape"]), floats(&case["output"])).unwrap();
        assert_eq!(
            params.output_shape(input).unwrap(),
            shape4(&case["output_shape"]),
            "{name}"
        );
        // The reference sums in f64, PyTorch in f32: they agree to f32 rounding.
        let tol = want.mapv(|v| 1e-5 * (1.0 + v.abs()));
        let got = reference::conv::conv2d(&params, x.view(), w.view(), Some(b.view())).unwrap();
        assert_close(
            got.view(),
            want.view(),
            tol.view(),
            &format!("reference {name}"),
        );
        let conv = Conv2d::new(gpu, params, w.view(), Some(b.view())).unwrap();
        let xt = gpu.upload(x.view()).unwrap();
        for k in ConvKernel::ALL
            .into_iter()
            .filter(|k| k.supports(&params, input))
        {
            gpu.trim_pool();
            let mut rec = gpu.recorder();
            let y = conv.forward_with(&mut rec, &xt, k).unwrap();
            let got = rec.download(&y).unwrap();
            let tol = want.mapv(|v| 1e-4 * (1.0 + v.abs()));
            assert_close(
                got.view(),
                want.view(),
                tol.view(),
                &format!("{k:?} {name}"),
            );
        }
    }
}

#[test]
fn padding_modes_every_kernel_random() {
    use segblocks::ops::conv::PaddingMode;
    let mut seed = 300;
    for mode in [
        PaddingMode::Reflect,
        PaddingMode::Replicate,
        PaddingMode::Circular,
    ] {
        for (params, shape) in [
            (Conv2dParams::new(3, 5, 3).padding(1), [2, 3, 6, 9]),
            (
                Conv2dParams::new(4, 4, (3, 5))
                    .padding((2, 1))
                    .stride(2)
                    .dilation((1, 2)),
                [1, 4, 9, 11],
            ),
            (
                Conv2dParams::depthwise(5, 2, 3).padding(2).dilation(2),
                [1, 5, 8, 7],
            ),
            (
                Conv2dParams::new(3, 6, 4).padding_same().groups(3),
                [1, 3, 7, 6],
            ),
        ] {
            seed += 1;
            check(params.padding_mode(mode), shape, seed, &ConvKernel::ALL);
        }
    }
    // PyTorch's limits: reflect needs padding below the size, circular at most the size;
    // 'same' needs stride 1.
    let r = Conv2dParams::new(1, 1, 3)
        .padding(3)
        .padding_mode(PaddingMode::Reflect)
        .output_shape([1, 1, 3, 8]);
    assert!(
        matches!(
            r,
            Err(Error::InvalidParam {
                name: "padding",
                ..
            })
        ),
        "{r:?}"
    );
    assert!(Conv2dParams::new(1, 1, 3)
        .padding(3)
        .padding_mode(PaddingMode::Circular)
        .output_shape([1, 1, 3, 8])
        .is_ok());
    let r = Conv2dParams::new(1, 1, 3)
        .padding_same()
        .stride(2)
        .output_shape([1, 1, 8, 8]);
    assert!(
        matches!(
            r,
            Err(Error::InvalidParam {
                name: "padding",
                ..
            })
        ),
        "{r:?}"
    );
    assert_eq!(
        Conv2dParams::new(1, 1, 4).padding_same().pads(),
        ((1, 2), (1, 2))
    );
}

#[test]
fn asymmetric_and_tensorflow_same_padding_every_kernel() {
    use segblocks::ops::conv::tf_same_padding;
    // TensorFlow's 'SAME': ceil(in / stride) outputs, the odd padding after.
    assert_eq!(tf_same_padding(256, 3, 2, 1), (0, 1));
    assert_eq!(tf_same_padding(32, 5, 2, 1), (1, 2));
    assert_eq!(tf_same_padding(31, 3, 2, 1), (1, 1));
    assert_eq!(tf_same_padding(7, 3, 1, 2), (2, 2));
    assert_eq!(tf_same_padding(5, 1, 2, 1), (0, 0));
    assert_eq!(tf_same_padding(4, 3, 3, 1), (1, 1));
    for (input, k, s) in [(256usize, 3usize, 2usize), (31, 5, 2), (17, 4, 3)] {
        let pad = tf_same_padding(input, k, s, 1);
        let out = Conv2dParams::new(1, 1, k)
            .stride(s)
            .padding_asymmetric(pad, pad)
            .output_shape([1, 1, input, input])
            .unwrap();
        assert_eq!(out[2], input.div_ceil(s), "{input} {k} {s}");
    }

    // The reference with (before, after) padding equals an unpadded convolution of the
    // zero-padded input (F.pad then conv2d).
    let mut r = rng(71);
    let x = random4(&mut r, [2, 3, 9, 10]);
    let ((top, bottom), (left, right)) = ((0, 2), (3, 1));
    let params = Conv2dParams::new(3, 4, 3)
        .stride((2, 1))
        .padding_asymmetric((top, bottom), (left, right));
    let w = random4(&mut r, params.weight_shape());
    let mut padded = Array4::<f32>::zeros([2, 3, 9 + top + bottom, 10 + left + right]);
    padded
        .slice_mut(ndarray::s![.., .., top..top + 9, left..left + 10])
        .assign(&x);
    let plain = Conv2dParams::new(3, 4, 3).stride((2, 1)).bias(false);
    let want = reference::conv::conv2d(&plain, padded.view(), w.view(), None).unwrap();
    let got = reference::conv::conv2d(&params.bias(false), x.view(), w.view(), None).unwrap();
    assert_close(
        got.view(),
        want.view(),
        want.mapv(|v| 1e-6 * (1.0 + v.abs())).view(),
        "asymmetric padding vs F.pad",
    );

    // Every kernel against the reference, the TFLite shapes among them.
    let all = &ConvKernel::ALL;
    let same = |k: usize, s: usize, n: usize| tf_same_padding(n, k, s, 1);
    check(
        Conv2dParams::new(3, 16, 3)
            .stride(2)
            .padding_asymmetric(same(3, 2, 32), same(3, 2, 32))
            .activation(Activation::HardSwish),
        [1, 3, 32, 32],
        72,
        all,
    );
    check(
        Conv2dParams::depthwise(24, 1, 5)
            .stride(2)
            .padding_asymmetric(same(5, 2, 16), same(5, 2, 18)),
        [2, 24, 16, 18],
        73,
        all,
    );
    check(
        Conv2dParams::depthwise(8, 2, 3).padding_asymmetric((2, 0), (0, 1)),
        [1, 8, 7, 9],
        74,
        all,
    );
    check(
        Conv2dParams::new(6, 5, 1).padding_asymmetric((1, 0), (0, 2)),
        [1, 6, 5, 4],
        75,
        all,
    );
    // Asymmetric padding is part of the validation: too small an input is an error.
    let r = Conv2dParams::new(1, 1, 5)
        .padding_asymmetric((0, 1), (0, 1))
        .output_shape([1, 1, 3, 3]);
    assert!(
        matches!(
            r,
            Err(Error::InvalidParam {
                name: "kernel_size",
                ..
            })
        ),
        "{r:?}"
    );
}

#[test]
fn freed_buffers_are_reused_within_a_recording() {
    // A chain where every intermediate dies right after its reader is recorded: the later
    // outputs go into the freed buffers, and the results are those of separate recordings.
    let gpu = Gpu::new().unwrap();
    let mut r = rng(81);
    let params = Conv2dParams::new(8, 8, 3)
        .padding(1)
        .bias(false)
        .activation(Activation::Relu);
    let w = random4(&mut r, params.weight_shape());
    let conv = Conv2d::new(&gpu, params, w.view(), None).unwrap();
    let x = random4(&mut r, [1, 8, 12, 12]);
    let xt = gpu.upload(x.view()).unwrap();

    let mut want = x.clone();
    // Rounding error grows through the chain: each layer's bound is its own plus the
    // earlier layers' carried through |w| (magnitudes `mag`, layer by layer).
    let mut mag = x.mapv(f32::abs);
    let abs_params = params.activation(Activation::None);
    let aw = w.mapv(f32::abs);
    let terms = (params.in_per_group() * 9 + 1) as f32;
    for _ in 0..6 {
        want = reference::conv::conv2d(&params, want.view(), w.view(), None).unwrap();
        mag = reference::conv::conv2d(&abs_params, mag.view(), aw.view(), None).unwrap();
    }
    let chain_bound = mag.mapv(|m| 6.0 * 2.0 * terms * f32::EPSILON * m + 1e-6);
    let mut rec = gpu.recorder();
    let mut y = conv.forward(&mut rec, &xt).unwrap();
    for _ in 0..5 {
        y = conv.forward(&mut rec, &y).unwrap();
    }
    assert_eq!(
        rec.buffers_reused(),
        4,
        "outputs 3..6 reuse the buffers of 1..4"
    );
    let got = rec.download(&y).unwrap();
    assert_close(
        got.view(),
        want.view(),
        chain_bound.view(),
        "chain with reuse",
    );
    // A tensor the caller still holds is never overwritten.
    let mut rec = gpu.recorder();
    let a = conv.forward(&mut rec, &xt).unwrap();
    let b = conv.forward(&mut rec, &a).unwrap();
    let c = conv.forward(&mut rec, &b).unwrap();
    assert_eq!(rec.buffers_reused(), 0);
    drop(c);
    let got_a = rec.download(&a).unwrap();
    let want_a = reference::conv::conv2d(&params, x.view(), w.view(), None).unwrap();
    assert_close(
        got_a.view(),
        want_a.view(),
        want_a.mapv(|v| 1e-4 * (1.0 + v.abs())).view(),
        "held tensor",
    );
}

#[test]
fn depthwise_vector_row_loads_every_padding_and_stride() {
    // Input widths divisible by 4 with zero padding take aligned vec4 row loads, whatever
    // the padding's offset from the alignment (pad 0..5), stride, kernel, dilation,
    // multiplier and overhanging last strip.
    let mut seed = 90;
    for (k, stride, pad, dil, mult, w) in [
        (3usize, 1usize, 0usize, 1usize, 1usize, 8usize),
        (3, 1, 1, 1, 1, 12),
        (3, 2, 1, 1, 1, 16),
        (5, 1, 2, 1, 2, 20),
        (5, 2, 3, 1, 1, 12),
        (3, 1, 5, 2, 1, 8),
        (7, 1, 3, 1, 1, 28),
        (3, 2, 4, 1, 1, 4),
    ] {
        seed += 1;
        let params = Conv2dParams::depthwise(6, mult, k)
            .stride(stride)
            .padding(pad)
            .dilation(dil)
            .activation(Activation::Relu6);
        check(params, [2, 6, 7, w], seed, &ConvKernel::ALL);
    }
    // Found by the random sweep on GL: a strip starting left of the row by more than an
    // aligned vec4 (padding 3, stride 3, dilation 3, one output column).
    check(
        Conv2dParams::depthwise(2, 1, (1, 5))
            .stride((1, 3))
            .padding((0, 3))
            .dilation((1, 3))
            .bias(false),
        [1, 2, 1, 8],
        98,
        &ConvKernel::ALL,
    );
    // The TFLite 'SAME' stride-2 case of the selfie network (pads 0 before, 1 after).
    check(
        Conv2dParams::depthwise(4, 1, 3)
            .stride(2)
            .padding_asymmetric((0, 1), (0, 1)),
        [1, 4, 16, 16],
        99,
        &ConvKernel::ALL,
    );
}

#[test]
fn fused_residual_every_kernel_and_join() {
    use segblocks::ops::conv::ResidualJoin;
    let gpu = gpu();
    let mut r = rng(101);
    for (params, input) in [
        (
            Conv2dParams::new(8, 8, 1).activation(Activation::Relu6),
            [2, 8, 4, 6],
        ),
        (
            Conv2dParams::new(5, 6, 3)
                .padding(1)
                .activation(Activation::HardSwish),
            [1, 5, 7, 9],
        ),
        (
            Conv2dParams::depthwise(6, 1, 3)
                .padding(1)
                .activation(Activation::Relu),
            [2, 6, 8, 8],
        ),
        // Rows of 8: the direct texel kernel reads the residual and stores four pixels
        // at a time.
        (
            Conv2dParams::new(5, 6, 3)
                .stride(2)
                .padding(1)
                .activation(Activation::HardSwish),
            [2, 5, 16, 15],
        ),
    ] {
        let x = random4(&mut r, input);
        let w = random4(&mut r, params.weight_shape());
        let b = random1(&mut r, params.out_channels);
        let out = params.output_shape(input).unwrap();
        let res = random4(&mut r, out);
        let conv = Conv2d::new(gpu, params, w.view(), Some(b.view())).unwrap();
        let plain = params.activation(Activation::None);
        let linear = reference::conv::conv2d(&plain, x.view(), w.view(), Some(b.view())).unwrap();
        let act = |v: f32| reference::activation(params.activation, v);
        let after = ndarray::Zip::from(&linear)
            .and(&res)
            .map_collect(|&v, &r| act(v) + r);
        let before = ndarray::Zip::from(&linear)
            .and(&res)
            .map_collect(|&v, &r| act(v + r));
        let between = ndarray::Zip::from(&linear)
            .and(&res)
            .map_collect(|&v, &r| (act(v) + r).max(0.0));
        let tol = bound(&params, &x, &w, Some(&b)).mapv(|t| t + 1e-5);
        let (xt, rt) = (
            gpu.upload(x.view()).unwrap(),
            gpu.upload(res.view()).unwrap(),
        );
        for kernel in ConvKernel::ALL
            .into_iter()
            .filter(|k| k.supports(&params, input))
        {
            for (join, want) in [
                (ResidualJoin::AfterActivation, &after),
                (ResidualJoin::BeforeActivation, &before),
                (
                    ResidualJoin::AfterActivationThen(Activation::Relu, None),
                    &between,
                ),
            ] {
                gpu.trim_pool();
                let mut rec = gpu.recorder();
                let y = conv
                    .forward_residual_with(&mut rec, &xt, &rt, join, kernel)
                    .unwrap();
                assert_eq!(rec.dispatch_count(), kernel.dispatches());
                let got = rec.download(&y).unwrap();
                assert_close(
                    got.view(),
                    want.view(),
                    tol.view(),
                    &format!("{kernel:?} {join:?} {params:?}"),
                );
            }
        }
        // AddThen: the join's own activation after the add, for a plain convolution.
        if params.activation != Activation::None {
            let mut rec = gpu.recorder();
            assert!(matches!(
                conv.forward_residual(&mut rec, &xt, &rt, ResidualJoin::AddThen(Activation::Relu)),
                Err(Error::InvalidParam { name: "join", .. })
            ));
        }
        let plain_conv = Conv2d::new(gpu, plain, w.view(), Some(b.view())).unwrap();
        let add_then = ndarray::Zip::from(&linear)
            .and(&res)
            .map_collect(|&v, &r| act(v + r));
        for kernel in ConvKernel::ALL
            .into_iter()
            .filter(|k| k.supports(&params, input))
        {
            gpu.trim_pool();
            let mut rec = gpu.recorder();
            let y = plain_conv
                .forward_residual_with(
                    &mut rec,
                    &xt,
                    &rt,
                    ResidualJoin::AddThen(params.activation),
                    kernel,
                )
                .unwrap();
            let got = rec.download(&y).unwrap();
            assert_close(
                got.view(),
                add_then.view(),
                tol.view(),
                &format!("{kernel:?} AddThen {params:?}"),
            );
        }
        // The residual must have the output's shape.
        let wrong = gpu.upload(Array4::zeros([1, 1, 1, 1]).view()).unwrap();
        let mut rec = gpu.recorder();
        assert!(matches!(
            conv.forward_residual(&mut rec, &xt, &wrong, ResidualJoin::AfterActivation),
            Err(Error::ShapeMismatch {
                name: "residual",
                ..
            })
        ));
        // The activation after the sum is checked like the layer's own: a slope that is
        // not a number is refused by name.
        let nan_slope = ParamActivation::LeakyRelu {
            negative_slope: f32::NAN,
        };
        let join = ResidualJoin::AfterActivationThen(Activation::None, Some(nan_slope));
        let mut rec = gpu.recorder();
        assert!(matches!(
            conv.forward_residual(&mut rec, &xt, &rt, join),
            Err(Error::InvalidParam {
                name: "negative_slope",
                ..
            })
        ));
    }
}

/// A layer whose packed weights exceed one storage binding runs as output-channel slices
/// (each within the binding), concatenated: the same result as the reference, with every
/// kernel that applies; the fused residual and shuffle are refused by name on it.
#[test]
fn weights_past_the_binding_limit_are_split_by_output_channels() {
    let gpu = Gpu::with_options(GpuOptions {
        max_storage_buffer_binding_size: Some(1 << 16),
        ..Default::default()
    })
    .unwrap();
    let mut r = rng(51);
    // 3x3 64 -> 40 (92 KB of packed weights: slices of 16, 16 and 8) and a 1x1
    // 1024 -> 24 (131 KB: 16 and 8), odd sizes.
    for (params, input) in [
        (
            Conv2dParams::new(64, 40, 3)
                .padding(1)
                .activation(Activation::Relu),
            [2, 64, 5, 7],
        ),
        (Conv2dParams::new(1024, 24, 1), [1, 1024, 3, 5]),
    ] {
        let w = random4(&mut r, params.weight_shape());
        let b = random1(&mut r, params.out_channels);
        let x = random4(&mut r, input);
        let want = reference::conv::conv2d(&params, x.view(), w.view(), Some(b.view())).unwrap();
        let conv = Conv2d::new(&gpu, params, w.view(), Some(b.view())).unwrap();
        let xt = gpu.upload(x.view()).unwrap();
        let tol = bound(&params, &x, &w, Some(&b));
        for kernel in ConvKernel::ALL
            .iter()
            .filter(|k| k.supports(&params, input))
        {
            gpu.trim_pool();
            let mut rec = gpu.recorder();
            let y = match conv.forward_with(&mut rec, &xt, *kernel) {
                // Forced, the columns' kernel may need a buffer past the limit too (the
                // choice never picks it then): a typed error naming them.
                Err(Error::TooLarge {
                    name: "columns", ..
                }) if *kernel == ConvKernel::Im2colTexels => continue,
                y => y.unwrap(),
            };
            let got = rec.download(&y).unwrap();
            assert_close(
                got.view(),
                want.view(),
                tol.view(),
                &format!("split {params:?} {kernel:?}"),
            );
        }
        let mut rec = gpu.recorder();
        let y = gpu.upload(want.view()).unwrap();
        let err = conv
            .forward_residual(
                &mut rec,
                &xt,
                &y,
                segblocks::ops::conv::ResidualJoin::AfterActivation,
            )
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidParam { name: "layer", .. }),
            "{err}"
        );
    }
    // Groups are not split: still refused by name.
    let p = Conv2dParams::new(64, 64, 3).groups(2);
    match Conv2d::new(
        &gpu,
        p,
        Array4::zeros(p.weight_shape()).view(),
        Some(Array1::zeros(64).view()),
    ) {
        Err(Error::TooLarge { name: "weight", .. }) => {}
        other => panic!("{other:?}"),
    }
}

/// The register-strip depthwise kernels loop over a row's strips, and lavapipe keeps their
/// loop over a strip's input rows a loop: on a map 120,000 pixels wide they pass the loop
/// budget (and came back short, as without the row buffer from 20,000), so they are
/// refused and the choice takes a direct kernel, exact on small integers.
#[test]
fn depthwise_rows_too_wide_for_the_strip_kernels() {
    let gpu = gpu();
    let p = Conv2dParams::depthwise(2, 1, 3).padding(1);
    let input = [1, 2, 3, 120_000];
    let mut r = rng(64);
    let x = integers4(&mut r, input, -1, 1);
    let w = integers4(&mut r, p.weight_shape(), -1, 1);
    let b = integers1(&mut r, 2, -2, 2);
    let want = reference::conv::conv2d(&p, x.view(), w.view(), Some(b.view())).unwrap();
    let conv = Conv2d::new(gpu, p, w.view(), Some(b.view())).unwrap();
    let xt = gpu.upload(x.view()).unwrap();
    let cpu = DeviceCaps {
        cpu: true,
        ..DeviceCaps::default()
    };
    for caps in [cpu, DeviceCaps::default()] {
        let chosen = select_kernel(&p, input, &caps);
        assert!(
            !matches!(
                chosen,
                ConvKernel::Depthwise { .. } | ConvKernel::DepthwiseTexels
            ),
            "{chosen:?}"
        );
    }
    let mut rec = gpu.recorder();
    let y = conv.forward(&mut rec, &xt).unwrap();
    assert_eq!(rec.download(&y).unwrap(), want);
    for k in [
        ConvKernel::DepthwiseTexels,
        ConvKernel::Depthwise {
            row_buffer: true,
            vector_loads: false,
            vector_stores: false,
        },
    ] {
        let mut rec = gpu.recorder();
        assert_over_budget(conv.forward_with(&mut rec, &xt, k), &format!("{k:?}"));
    }
}
