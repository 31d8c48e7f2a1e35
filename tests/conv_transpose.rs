//! Transposed convolution: both GPU kernels against the CPU scatter reference, FCN
//! upsampling configurations, output_padding, groups, dilation, and bad input.

mod common;

use common::*;
use ndarray::{Array1, Array4};
use proptest::prelude::*;
use segblocks::ops::channel::ParamActivation;
use segblocks::ops::conv_transpose::{
    select_kernel, ConvTranspose2d, ConvTranspose2dParams, ConvTransposeKernel,
};
use segblocks::ops::Activation;
use segblocks::{reference, DeviceCaps, Error, LOOP_BUDGET};

/// Error bound per output: at most `L = C_in/g * kH * kW` products are summed, so f32
/// summation in any order is within `L * eps * sum |x * w|` of the exact value (see
/// tests/conv.rs); the magnitude sum comes from the reference on |x| and |w|.
fn bound(
    params: &ConvTranspose2dParams,
    x: &Array4<f32>,
    w: &Array4<f32>,
    b: Option<&Array1<f32>>,
) -> Array4<f32> {
    let abs_params = params.activation(Activation::None);
    let ab = b.map(|b| b.mapv(f32::abs));
    let mag = reference::conv_transpose::conv_transpose2d(
        &abs_params,
        x.mapv(f32::abs).view(),
        w.mapv(f32::abs).view(),
        ab.as_ref().map(|b| b.view()),
    )
    .unwrap();
    let terms = (params.in_per_group() * params.kernel_size.0 * params.kernel_size.1 + 1) as f32;
    mag.mapv(|m| 2.0 * terms * f32::EPSILON * m + 1e-6)
}

fn check(params: ConvTranspose2dParams, input: [usize; 4], seed: u64) {
    check_with(params, input, seed, &ConvTransposeKernel::ALL);
}

/// [`check`] with the given kernels (those that apply).
fn check_with(
    params: ConvTranspose2dParams,
    input: [usize; 4],
    seed: u64,
    kernels: &[ConvTransposeKernel],
) {
    let gpu = gpu();
    let mut r = rng(seed);
    let x = random4(&mut r, input);
    let w = random4(&mut r, params.weight_shape());
    let b = params.bias.then(|| random1(&mut r, params.out_channels));
    let want = reference::conv_transpose::conv_transpose2d(
        &params,
        x.view(),
        w.view(),
        b.as_ref().map(|b| b.view()),
    )
    .unwrap();
    let layer = ConvTranspose2d::new(gpu, params, w.view(), b.as_ref().map(|b| b.view())).unwrap();
    let xt = gpu.upload(x.view()).unwrap();
    let tol = bound(&params, &x, &w, b.as_ref());
    // Every kernel that applies, not only the one the library picks.
    for &kernel in kernels.iter().filter(|k| k.supports(&params, input)) {
        // Fresh (zeroed) buffers: a recycled output of the previous variant would hide
        // values this one fails to write.
        gpu.trim_pool();
        let mut rec = gpu.recorder();
        let y = layer.forward_with(&mut rec, &xt, kernel).unwrap();
        let got = rec.download(&y).unwrap();
        assert_close(
            got.view(),
            want.view(),
            tol.view(),
            &format!("{kernel:?} {params:?} on {input:?}"),
        );
    }
}

#[test]
fn kernel_equal_to_stride_takes_the_pixel_block_kernel() {
    // U-Net's and MediaPipe's 2x2 stride 2, odd channel counts, batch 2, a 3x3 stride 3,
    // a 4x2 kernel with the same strides, and activations.
    for (params, input) in [
        (
            ConvTranspose2dParams::new(16, 1, 2)
                .stride(2)
                .activation(Activation::Sigmoid),
            [1, 16, 5, 8],
        ),
        (ConvTranspose2dParams::new(5, 7, 2).stride(2), [2, 5, 3, 12]),
        (
            ConvTranspose2dParams::new(3, 4, 3)
                .stride(3)
                .activation(Activation::Relu),
            [1, 3, 4, 4],
        ),
        (
            ConvTranspose2dParams::new(4, 3, (4, 2))
                .stride((4, 2))
                .bias(false),
            [1, 4, 2, 8],
        ),
    ] {
        assert_eq!(
            select_kernel(&params, input, &DeviceCaps::default()),
            ConvTransposeKernel::PixelBlocks,
            "{params:?}"
        );
        // CPU adapters read its operands as texels.
        let cpu = DeviceCaps {
            cpu: true,
            ..DeviceCaps::default()
        };
        assert_eq!(
            select_kernel(&params, input, &cpu),
            ConvTransposeKernel::PixelBlocksTexels,
            "{params:?}"
        );
        check(params, input, 140 + input[3] as u64);
    }
    // Not applicable: padding, a width not divisible by 4, kernel != stride, groups.
    for (params, input) in [
        (
            ConvTranspose2dParams::new(4, 4, 2).stride(2).padding(1),
            [1, 4, 4, 8],
        ),
        (ConvTranspose2dParams::new(4, 4, 2).stride(2), [1, 4, 4, 6]),
        (ConvTranspose2dParams::new(4, 4, 4).stride(2), [1, 4, 4, 8]),
        (
            ConvTranspose2dParams::new(4, 4, 2).stride(2).groups(2),
            [1, 4, 4, 8],
        ),
    ] {
        assert_eq!(
            select_kernel(&params, input, &DeviceCaps::default()),
            ConvTransposeKernel::Gather { shifted_taps: true }
        );
        let cpu = DeviceCaps {
            cpu: true,
            ..DeviceCaps::default()
        };
        assert_eq!(
            select_kernel(&params, input, &cpu),
            ConvTransposeKernel::GatherTexels { shifted_taps: true }
        );
        check(params, input, 150);
        // Forcing it is a typed error.
        let gpu = gpu();
        let w = Array4::zeros(params.weight_shape());
        let b = params.bias.then(|| Array1::zeros(params.out_channels));
        let layer =
            ConvTranspose2d::new(gpu, params, w.view(), b.as_ref().map(|b| b.view())).unwrap();
        let xt = gpu.upload(Array4::zeros(input).view()).unwrap();
        for kernel in [
            ConvTransposeKernel::PixelBlocks,
            ConvTransposeKernel::PixelBlocksTexels,
        ] {
            let mut rec = gpu.recorder();
            let err = layer.forward_with(&mut rec, &xt, kernel).unwrap_err();
            assert!(
                matches!(err, Error::InvalidParam { name: "kernel", .. }),
                "{err}"
            );
        }
    }
}

/// Activations with parameters after the activation, in both kernels (the pixel-block
/// kernel for kernel = stride, the gather kernel otherwise); the reference is the
/// standalone op after the transposed convolution.
#[test]
fn param_activations_fuse_into_both_kernels() {
    let acts = [
        ParamActivation::LeakyRelu {
            negative_slope: 0.2,
        },
        ParamActivation::Elu { alpha: 0.6 },
        ParamActivation::Hardtanh {
            min_val: -0.3,
            max_val: 0.4,
        },
        ParamActivation::Softplus {
            beta: 3.0,
            threshold: 1.0,
        },
    ];
    for (i, pact) in acts.into_iter().enumerate() {
        for (p, input) in [
            (ConvTranspose2dParams::new(5, 3, 2).stride(2), [2, 5, 3, 8]),
            (
                ConvTranspose2dParams::new(4, 3, 4).stride(2).padding(1),
                [1, 4, 5, 6],
            ),
        ] {
            let p = p.activation(Activation::Tanh).param_activation(pact);
            check(p, input, 400 + i as u64);
            let mut r = rng(9);
            let x = random4(&mut r, input);
            let w = random4(&mut r, p.weight_shape());
            let b = random1(&mut r, p.out_channels);
            let run = |q: &ConvTranspose2dParams| {
                reference::conv_transpose::conv_transpose2d(q, x.view(), w.view(), Some(b.view()))
                    .unwrap()
            };
            let plain = ConvTranspose2dParams {
                param_activation: None,
                ..p
            };
            let then = reference::channel::activation_with(run(&plain).view(), pact).unwrap();
            assert_eq!(run(&p), then, "{p:?}");
        }
    }
}

#[test]
fn fcn_upsampling_configurations() {
    // FCN 2x: k = 4, s = 2, p = 1 doubles the size exactly.
    let p = ConvTranspose2dParams::new(6, 5, 4).stride(2).padding(1);
    assert_eq!(p.output_shape([2, 6, 7, 9]).unwrap(), [2, 5, 14, 18]);
    check(p, [2, 6, 7, 9], 1);
    // FCN 8x: k = 16, s = 8, p = 4.
    let p = ConvTranspose2dParams::new(3, 2, 16)
        .stride(8)
        .padding(4)
        .bias(false);
    assert_eq!(p.output_shape([1, 3, 5, 4]).unwrap(), [1, 2, 40, 32]);
    check(p, [1, 3, 5, 4], 2);
    // Odd output sizes through output_padding.
    let p = ConvTranspose2dParams::new(4, 4, 3)
        .stride(2)
        .padding(1)
        .output_padding(1);
    assert_eq!(p.output_shape([1, 4, 5, 5]).unwrap(), [1, 4, 10, 10]);
    check(p, [1, 4, 5, 5], 3);
    let p = ConvTranspose2dParams::new(4, 4, 3)
        .stride((2, 3))
        .padding(1)
        .output_padding((0, 2));
    check(p, [1, 4, 5, 6], 4);
    // Depthwise (groups = C_in), grouped, dilated, activation, stride 1.
    check(
        ConvTranspose2dParams::new(6, 6, 4)
            .stride(2)
            .padding(1)
            .groups(6),
        [1, 6, 6, 5],
        5,
    );
    check(
        ConvTranspose2dParams::new(6, 9, 3)
            .stride(2)
            .groups(3)
            .activation(Activation::Relu),
        [2, 6, 4, 7],
        6,
    );
    check(
        ConvTranspose2dParams::new(3, 20, 3)
            .dilation(2)
            .stride(2)
            .output_padding(1),
        [1, 3, 6, 6],
        7,
    );
    check(
        ConvTranspose2dParams::new(5, 3, (2, 5))
            .padding((0, 2))
            .activation(Activation::Sigmoid),
        [1, 5, 4, 3],
        8,
    );
    // Single input pixel.
    check(
        ConvTranspose2dParams::new(2, 3, 4).stride(2),
        [2, 2, 1, 1],
        9,
    );
}

fn arb_case() -> impl Strategy<Value = (ConvTranspose2dParams, [usize; 4], u64)> {
    (
        (1usize..=2, 1usize..=3, 1usize..=4, 1usize..=10),
        (1usize..=5, 1usize..=5),
        (1usize..=4, 1usize..=4),
        (0usize..=3, 0usize..=3),
        (0usize..=3, 0usize..=3),
        (1usize..=2, 1usize..=2),
        (1usize..=7, 1usize..=7),
        (any::<u64>(), 0usize..7, any::<bool>()),
    )
        .prop_filter_map(
            "invalid combination",
            |((n, groups, cin_pg, cout_pg), k, s, pad, op, d, hw, (seed, act, bias))| {
                let params = ConvTranspose2dParams::new(groups * cin_pg, groups * cout_pg, k)
                    .stride(s)
                    .padding(pad)
                    .output_padding(op)
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
    #![proptest_config(ProptestConfig { cases: 40, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_configurations_match_reference((params, input, seed) in arb_case()) {
        check(params, input, seed);
    }
}

/// The gather kernel loops over the input channels once for each kernel row, or without
/// shifted taps once for each tap: an invocation needs those that feed its output row and
/// phase only (2 of 3 rows, 2 x 2 of 3 x 3 taps at stride 2), but llvmpipe counts a loop
/// once for the 8 invocations of a SIMD register, which may need all of them. Exact up to
/// the loop budget, a typed error past it (Mesa ends an invocation after 65,535
/// iterations).
#[test]
fn input_channels_up_to_the_loop_budget() {
    let gpu = gpu();
    let p = |c: usize| {
        ConvTranspose2dParams::new(c, 2, 3)
            .stride(2)
            .padding(1)
            .bias(false)
    };
    for (shifted_taps, loops_per_channel) in [(true, 3), (false, 9)] {
        let kernel = ConvTransposeKernel::Gather { shifted_taps };
        let fits = LOOP_BUDGET as usize / loops_per_channel;
        // Small integers: the sums are exact, so one cut short cannot hide in the
        // rounding bound of tens of thousands of random terms.
        let mut r = rng(71);
        let x = integers4(&mut r, [1, fits, 2, 3], -1, 1);
        let w = integers4(&mut r, p(fits).weight_shape(), -1, 1);
        let want = reference::conv_transpose::conv_transpose2d(&p(fits), x.view(), w.view(), None)
            .unwrap();
        let layer = ConvTranspose2d::new(gpu, p(fits), w.view(), None).unwrap();
        let mut rec = gpu.recorder();
        let y = layer
            .forward_with(&mut rec, &gpu.upload(x.view()).unwrap(), kernel)
            .unwrap();
        assert_eq!(rec.download(&y).unwrap(), want, "{kernel:?}");
        let q = p(fits + 1);
        let layer =
            ConvTranspose2d::new(gpu, q, Array4::zeros(q.weight_shape()).view(), None).unwrap();
        let x = gpu
            .upload(Array4::zeros([1, fits + 1, 2, 3]).view())
            .unwrap();
        let mut rec = gpu.recorder();
        match layer.forward_with(&mut rec, &x, kernel) {
            Err(Error::TooLarge { unit, limit, .. }) => {
                assert_eq!(
                    (unit, limit),
                    ("loop iterations per invocation", LOOP_BUDGET)
                )
            }
            other => panic!("{kernel:?}: {other:?}"),
        }
    }
}

/// A stride wider than the output: the gather kernels run only the phases that hold a
/// pixel (they used to run all `stride` of them, and 65,536 rows by a stride of 65,536
/// made the strip count overflow 32 bits: no output was written). Every kernel, exact.
#[test]
fn strides_wider_than_the_output() {
    let gpu = gpu();
    let mut r = rng(72);
    for (p, input) in [
        (
            ConvTranspose2dParams::new(2, 3, 1).stride((1, 5)),
            [2, 2, 3, 1],
        ),
        (
            ConvTranspose2dParams::new(1, 2, (1, 2)).stride((2, 7)),
            [1, 1, 2, 1],
        ),
        (
            ConvTranspose2dParams::new(1, 1, 1).stride((1, 65_536)),
            [1, 1, 65_536, 1],
        ),
    ] {
        let x = integers4(&mut r, input, -3, 3);
        let w = integers4(&mut r, p.weight_shape(), -2, 2);
        let b = integers1(&mut r, p.out_channels, -2, 2);
        let want =
            reference::conv_transpose::conv_transpose2d(&p, x.view(), w.view(), Some(b.view()))
                .unwrap();
        let layer = ConvTranspose2d::new(gpu, p, w.view(), Some(b.view())).unwrap();
        let xt = gpu.upload(x.view()).unwrap();
        for kernel in ConvTransposeKernel::ALL {
            if !kernel.supports(&p, input) {
                continue;
            }
            let mut rec = gpu.recorder();
            let y = layer.forward_with(&mut rec, &xt, kernel).unwrap();
            assert_eq!(rec.download(&y).unwrap(), want, "{kernel:?} {p:?}");
        }
    }
}

#[test]
fn bad_parameters_are_typed_errors() {
    let s = [1, 4, 5, 5];
    for (p, name) in [
        (
            ConvTranspose2dParams::new(4, 4, 3)
                .stride(2)
                .output_padding(2),
            "output_padding",
        ),
        (
            ConvTranspose2dParams::new(4, 4, 3).output_padding(1),
            "output_padding",
        ),
        (ConvTranspose2dParams::new(4, 4, 3).stride(0), "stride"),
        (ConvTranspose2dParams::new(4, 4, 3).dilation(0), "dilation"),
        (ConvTranspose2dParams::new(4, 6, 3).groups(4), "groups"),
    ] {
        match p.output_shape(s) {
            Err(Error::InvalidParam { name: n, reason }) => assert_eq!(n, name, "{reason}"),
            other => panic!("{p:?}: expected InvalidParam({name}), got {other:?}"),
        }
    }
    // Padding that removes the whole output (1x1 input, 1x1 kernel, padding 1).
    match ConvTranspose2dParams::new(4, 4, 1)
        .padding(1)
        .output_shape([1, 4, 1, 1])
    {
        Err(Error::InvalidParam {
            name: "padding",
            reason,
        }) => assert!(reason.contains("-1"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // output_padding below the dilation is allowed even when not below the stride.
    assert!(ConvTranspose2dParams::new(4, 4, 3)
        .dilation(2)
        .output_padding(1)
        .output_shape(s)
        .is_ok());
    let gpu = gpu();
    let p = ConvTranspose2dParams::new(4, 6, 3).groups(2);
    match ConvTranspose2d::new(
        gpu,
        p,
        Array4::zeros([4, 6, 3, 3]).view(),
        Some(Array1::zeros(6).view()),
    ) {
        Err(Error::ShapeMismatch {
            name: "weight",
            expected,
            ..
        }) => assert_eq!(expected, vec![4, 3, 3, 3]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn cost_counts_every_input_pixel_times_its_weights() {
    let p = ConvTranspose2dParams::new(64, 32, 4).stride(2).padding(1);
    let c = p.cost([1, 64, 28, 28]).unwrap();
    assert_eq!(c.params, 64 * 32 * 16 + 32);
    assert_eq!(c.macs, 64 * 32 * 16 * 28 * 28);
}

/// `forward(x, output_size=...)`: the output padding that gives the requested size, over
/// the range PyTorch accepts (ranges below printed by torch 2.15), then run on the GPU.
#[test]
fn an_output_size_picks_the_output_padding() {
    let p = ConvTranspose2dParams::new(2, 3, 3).stride(2).padding(1);
    let input = [1, 2, 5, 5];
    // PyTorch: valid sizes range from [9, 9] to [10, 10].
    for (size, padding) in [((9, 9), (0, 0)), ((10, 10), (1, 1)), ((9, 10), (0, 1))] {
        let q = p.output_padding(1).for_output_size(input, size).unwrap();
        assert_eq!(q.output_padding, padding);
        assert_eq!(q.output_shape(input).unwrap(), [1, 3, size.0, size.1]);
        check(q, input, 40);
    }
    // Kernel (3, 2), stride (3, 2), padding (0, 1), dilation (2, 1) on 4 x 6: PyTorch's
    // range is [14, 10] to [16, 11].
    let p = ConvTranspose2dParams::new(2, 3, (3, 2))
        .stride((3, 2))
        .padding((0, 1))
        .dilation((2, 1));
    let input = [2, 2, 4, 6];
    let q = p.for_output_size(input, (16, 11)).unwrap();
    assert_eq!(q.output_padding, (2, 1));
    check(q, input, 41);
    // The layer itself, as `m(x, output_size=(15, 10))`.
    let mut r = rng(42);
    let w = random4(&mut r, p.weight_shape());
    let b = random1(&mut r, 3);
    let x = random4(&mut r, input);
    let layer = ConvTranspose2d::new(gpu(), p, w.view(), Some(b.view())).unwrap();
    let mut rec = gpu().recorder();
    let y = layer
        .forward_to_size(&mut rec, &gpu().upload(x.view()).unwrap(), (15, 10))
        .unwrap();
    let got = rec.download(&y).unwrap();
    let q = p.for_output_size(input, (15, 10)).unwrap();
    let want = reference::conv_transpose::conv_transpose2d(&q, x.view(), w.view(), Some(b.view()))
        .unwrap();
    assert_eq!(got.shape(), [2, 3, 15, 10]);
    let tol = want.mapv(|v| 1e-5 * (1.0 + v.abs()));
    assert_close(got.view(), want.view(), tol.view(), "forward_to_size");
    for size in [(13, 10), (17, 10), (14, 12), (14, 9)] {
        match p.for_output_size(input, size) {
            Err(Error::InvalidParam { name, reason }) => {
                assert_eq!(name, "output_size");
                assert!(reason.contains("(14, 10) to (16, 11)"), "{reason}");
            }
            other => panic!("{size:?}: {other:?}"),
        }
    }
    // A padding past the output without output padding: kernel 1, stride 3, padding 1 on
    // 1 x 1 gives -1 before it, and PyTorch's range is -1 to 1, so 1 x 1 is reachable
    // (output padding 2); 2 x 2 is not (it used to be accepted and give 1 x 1).
    let p = ConvTranspose2dParams::new(2, 3, 1).stride(3).padding(1);
    let q = p.for_output_size([1, 2, 1, 1], (1, 1)).unwrap();
    assert_eq!(q.output_padding, (2, 2));
    check(q, [1, 2, 1, 1], 43);
    let q = ConvTranspose2dParams::new(2, 3, 3).stride(3).padding(2);
    assert_eq!(
        q.for_output_size([1, 2, 1, 1], (1, 1))
            .unwrap()
            .output_padding,
        (2, 2)
    );
    for size in [(2, 2), (0, 1)] {
        match p.for_output_size([1, 2, 1, 1], size) {
            Err(Error::InvalidParam { name, .. }) => assert_eq!(name, "output_size"),
            other => panic!("{size:?}: {other:?}"),
        }
    }
}
