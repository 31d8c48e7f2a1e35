//! Upsampling: nearest and nearest-exact (PyTorch's index rules), bilinear and bicubic
//! with and without align_corners, `recompute_scale_factor`, bed-of-nails; GPU against the
//! reference, and bad input.

mod common;

use common::*;
use ndarray::Array4;
use segblocks::ops::upsample::{
    select_kernel, upsample_with, UpsampleKernel, UpsampleMode, UpsampleParams,
};
use segblocks::{reference, Error};

fn check(params: UpsampleParams, shape: [usize; 4], seed: u64) {
    let gpu = gpu();
    let mut r = rng(seed);
    let x = random4(&mut r, shape);
    let want = reference::upsample::upsample(&params, x.view()).unwrap();
    let xt = gpu.upload(x.view()).unwrap();
    // The chosen kernel and the tap tables, which run every configuration, and the
    // bilinear strips wherever they apply.
    let mut kernels = vec![select_kernel(&params, shape), UpsampleKernel::Taps];
    if UpsampleKernel::BilinearStrips.supports(&params, shape) {
        kernels.push(UpsampleKernel::BilinearStrips);
    }
    for kernel in kernels {
        // Fresh (zeroed) buffers: a recycled output of the previous variant would hide
        // values this one fails to write.
        gpu.trim_pool();
        let mut rec = gpu.recorder();
        let y = upsample_with(&mut rec, &params, &xt, kernel).unwrap();
        let got = rec.download(&y).unwrap();
        // Nearest and bed-of-nails copy values; bilinear blends four values with the same
        // f32 weights, so only the rounding of three multiply-adds can differ; bicubic sums
        // 16 products whose weights have negative lobes: a few ulps of the inputs (< 1).
        let eps = match params.mode {
            UpsampleMode::Bicubic { .. } => 16.0 * f32::EPSILON,
            _ => 4.0 * f32::EPSILON,
        };
        let tol = want.mapv(|v| eps * (1.0 + v.abs()));
        assert_close(
            got.view(),
            want.view(),
            tol.view(),
            &format!("{kernel:?} {params:?} on {shape:?}"),
        );
    }
}

#[test]
fn nearest_sizes_and_scales() {
    for (p, s) in [
        (UpsampleParams::nearest().scale_factor(2.0), [2, 3, 5, 7]),
        (UpsampleParams::nearest().size((13, 10)), [1, 2, 5, 7]),
        (UpsampleParams::nearest().size((3, 4)), [1, 2, 7, 9]),
        (UpsampleParams::nearest().scale_factor(1.5), [1, 2, 5, 7]),
        (
            UpsampleParams::nearest().scale_factors((2.0, 3.0)),
            [1, 1, 4, 3],
        ),
        (UpsampleParams::nearest().scale_factor(0.5), [1, 1, 9, 9]),
    ] {
        check(p, s, 1);
    }
    // Exact doubling is `dst / 2`.
    let x = Array4::from_shape_fn([1, 1, 1, 3], |(_, _, _, w)| w as f32);
    let y = reference::upsample::upsample(&UpsampleParams::nearest().scale_factor(2.0), x.view())
        .unwrap();
    assert_eq!(y.row_iter_first(), vec![0.0, 0.0, 1.0, 1.0, 2.0, 2.0]);
}

#[test]
fn nearest_exact_bicubic_and_recomputed_scales() {
    let exact = UpsampleParams::nearest_exact;
    for (p, s) in [
        (exact().scale_factor(2.0), [2, 3, 5, 8]),
        (exact().size((13, 10)), [1, 2, 5, 7]),
        (exact().size((3, 4)), [1, 2, 7, 9]),
        (exact().scale_factor(1.7), [1, 2, 5, 7]),
        (
            exact().scale_factor(1.7).recompute_scale_factor(true),
            [1, 2, 5, 7],
        ),
        (exact().scale_factors((3.0, 2.0)), [1, 1, 4, 4]),
    ] {
        check(p, s, 2);
    }
    for align in [false, true] {
        let cubic = || UpsampleParams::bicubic(align);
        for (p, s) in [
            (cubic().scale_factor(2.0), [2, 3, 5, 8]),
            (cubic().size((13, 10)), [1, 2, 5, 7]),
            (cubic().size((3, 4)), [1, 2, 7, 9]),
            (cubic().size((5, 6)), [1, 1, 1, 1]),
            (cubic().size((1, 1)), [1, 1, 3, 4]),
            (cubic().scale_factor(1.3), [1, 2, 6, 5]),
            (
                cubic().scale_factor(1.3).recompute_scale_factor(true),
                [1, 2, 6, 5],
            ),
        ] {
            check(p, s, 3);
        }
    }
    check(
        UpsampleParams::bilinear(false)
            .scale_factor(0.45)
            .recompute_scale_factor(true),
        [2, 2, 9, 11],
        4,
    );
    // Nearest-exact samples pixel centres: 3 -> 5 takes 0, 0 (0.9 floors to 0), 1, 2, 2;
    // nearest takes 0, 0, 1, 1, 2.
    let x = Array4::from_shape_fn([1, 1, 1, 3], |(_, _, _, w)| w as f32);
    let up = |p: UpsampleParams| reference::upsample::upsample(&p, x.view()).unwrap();
    assert_eq!(
        up(exact().size((1, 5))).row_iter_first(),
        vec![0.0, 0.0, 1.0, 2.0, 2.0]
    );
    assert_eq!(
        up(UpsampleParams::nearest().size((1, 5))).row_iter_first(),
        vec![0.0, 0.0, 1.0, 1.0, 2.0]
    );
    // Bicubic weights sum to 1 (a constant stays), and a ramp stays a ramp where no tap
    // reaches past the border (source positions 1..=5 of 8; the clamped taps bend it
    // elsewhere, as in PyTorch).
    let ramp = Array4::from_shape_fn([1, 1, 1, 8], |(_, _, _, w)| w as f32);
    let got =
        reference::upsample::upsample(&UpsampleParams::bicubic(true).size((1, 15)), ramp.view())
            .unwrap()
            .row_iter_first();
    for (o, v) in got.iter().enumerate().filter(|(o, _)| (2..=10).contains(o)) {
        assert!((v - o as f32 * 0.5).abs() < 1e-5, "{got:?}");
    }
    let flat = Array4::from_elem([1, 1, 3, 4], 0.7f32);
    let got =
        reference::upsample::upsample(&UpsampleParams::bicubic(false).size((7, 5)), flat.view())
            .unwrap();
    assert!(got.iter().all(|v| (v - 0.7).abs() < 1e-6), "{got:?}");
}

trait FirstRow {
    fn row_iter_first(&self) -> Vec<f32>;
}

impl FirstRow for Array4<f32> {
    fn row_iter_first(&self) -> Vec<f32> {
        self.slice(ndarray::s![0, 0, 0, ..]).to_vec()
    }
}

#[test]
fn integer_factors_take_the_vector_path_and_agree() {
    // Widths divisible by 4 with integer factors run in resample_int.wgsl; the others in
    // resample.wgsl. Both must give exactly the reference.
    for (p, s) in [
        (UpsampleParams::nearest().scale_factor(2.0), [2, 3, 5, 8]),
        (
            UpsampleParams::nearest().scale_factors((2.0, 3.0)),
            [1, 2, 4, 4],
        ),
        (UpsampleParams::nearest().size((15, 12)), [1, 1, 5, 4]),
        (UpsampleParams::nearest().scale_factor(1.0), [1, 1, 3, 8]),
        (UpsampleParams::bed_of_nails(2), [2, 3, 4, 8]),
        (UpsampleParams::bed_of_nails((3, 2)), [1, 2, 3, 4]),
        (UpsampleParams::bed_of_nails((1, 3)), [1, 1, 2, 12]),
    ] {
        check(p, s, 7);
    }
    // The kernel choice itself.
    let s = [1, 3, 5, 8];
    assert_eq!(
        select_kernel(&UpsampleParams::nearest().scale_factor(2.0), s),
        UpsampleKernel::Integer { factors: (2, 2) }
    );
    assert_eq!(
        select_kernel(&UpsampleParams::nearest().size((15, 24)), s),
        UpsampleKernel::Integer { factors: (3, 3) }
    );
    assert_eq!(
        select_kernel(&UpsampleParams::bed_of_nails((3, 2)), s),
        UpsampleKernel::Integer { factors: (3, 2) }
    );
    assert!(!matches!(
        select_kernel(&UpsampleParams::nearest().scale_factor(2.0), [1, 3, 5, 7]),
        UpsampleKernel::Integer { .. }
    ));
    assert!(!matches!(
        select_kernel(&UpsampleParams::nearest().scale_factor(1.5), s),
        UpsampleKernel::Integer { .. }
    ));
    assert!(!matches!(
        select_kernel(&UpsampleParams::bilinear(false).scale_factor(2.0), s),
        UpsampleKernel::Integer { .. }
    ));
}

#[test]
fn bilinear_integer_factors_take_their_own_kernel_and_agree() {
    for (p, s) in [
        (
            UpsampleParams::bilinear(false).scale_factor(2.0),
            [2, 3, 5, 8],
        ),
        (UpsampleParams::bilinear(false).size((2, 8)), [1, 2, 1, 4]),
        (
            UpsampleParams::bilinear(false).size((14, 24)),
            [1, 3, 7, 12],
        ),
    ] {
        assert_eq!(
            select_kernel(&p, s),
            UpsampleKernel::BilinearInt { factor: 2 },
            "{p:?} {s:?}"
        );
        check(p, s, 9);
    }
    // Factors 4, 8 and 16 (DeepLab's and FCN-8s's heads), by scale and by size.
    for (p, s, factor) in [
        (
            UpsampleParams::bilinear(false).scale_factor(4.0),
            [2, 3, 5, 8],
            4,
        ),
        (
            UpsampleParams::bilinear(false).size((12, 16)),
            [1, 2, 3, 4],
            4,
        ),
        (
            UpsampleParams::bilinear(false).scale_factor(8.0),
            [1, 2, 3, 4],
            8,
        ),
        (
            UpsampleParams::bilinear(false).size((8, 64)),
            [1, 1, 1, 8],
            8,
        ),
        (
            UpsampleParams::bilinear(false).scale_factor(8.0),
            [2, 3, 5, 12],
            8,
        ),
        // Factor 16 (DeepLabV3-MobileNetV3's head at output stride 16), one input pixel
        // per invocation.
        (
            UpsampleParams::bilinear(false).scale_factor(16.0),
            [2, 3, 3, 4],
            16,
        ),
        (
            UpsampleParams::bilinear(false).size((32, 192)),
            [1, 2, 2, 12],
            16,
        ),
    ] {
        assert_eq!(
            select_kernel(&p, s),
            UpsampleKernel::BilinearInt { factor },
            "{p:?} {s:?}"
        );
        check(p, s, 10 + factor as u64);
    }
    for (p, s) in [
        (
            UpsampleParams::bilinear(true).scale_factor(2.0),
            [1, 1, 4, 8],
        ),
        (
            UpsampleParams::bilinear(false).scale_factor(2.0),
            [1, 1, 4, 6],
        ),
        (
            UpsampleParams::bilinear(false).scale_factor(3.0),
            [1, 1, 4, 8],
        ),
        (UpsampleParams::bilinear(false).size((8, 16)), [1, 1, 4, 4]),
        (UpsampleParams::nearest().scale_factor(2.0), [1, 1, 4, 8]),
    ] {
        assert!(
            !matches!(select_kernel(&p, s), UpsampleKernel::BilinearInt { .. }),
            "{p:?} {s:?}"
        );
    }
    // Infinities reach the 0-weighted neighbour as in PyTorch's formula (0 * inf = NaN),
    // identically in both kernels.
    let gpu = gpu();
    let x = ndarray::Array4::from_shape_fn([1, 1, 2, 4], |(_, _, h, w)| {
        if (h, w) == (1, 3) {
            f32::INFINITY
        } else {
            1.0
        }
    });
    for factor in [2.0, 4.0, 8.0, 16.0] {
        let p = UpsampleParams::bilinear(false).scale_factor(factor);
        let want = reference::upsample::upsample(&p, x.view()).unwrap();
        let mut rec = gpu.recorder();
        let y = segblocks::ops::upsample::upsample(&mut rec, &p, &gpu.upload(x.view()).unwrap())
            .unwrap();
        let got = rec.download(&y).unwrap();
        for (g, w) in got.iter().zip(want.iter()) {
            assert!(g == w || (g.is_nan() && w.is_nan()), "{got:?} vs {want:?}");
        }
    }
    // The same in the strip kernel and the tap kernel's row groups.
    let xt = gpu.upload(x.view()).unwrap();
    for align in [false, true] {
        let p = UpsampleParams::bilinear(align).size((5, 12));
        let want = reference::upsample::upsample(&p, x.view()).unwrap();
        for kernel in [UpsampleKernel::BilinearStrips, UpsampleKernel::Taps] {
            let mut rec = gpu.recorder();
            let y = upsample_with(&mut rec, &p, &xt, kernel).unwrap();
            let got = rec.download(&y).unwrap();
            for (g, w) in got.iter().zip(want.iter()) {
                assert!(
                    g == w || (g.is_nan() && w.is_nan()),
                    "{kernel:?}: {got:?} vs {want:?}"
                );
            }
        }
    }
}

#[test]
fn bilinear_align_corners_both_ways() {
    for align in [false, true] {
        for (p, s) in [
            (UpsampleParams::bilinear(align).size((11, 14)), [2, 3, 5, 7]),
            (UpsampleParams::bilinear(align).size((3, 4)), [1, 2, 7, 9]),
            (
                UpsampleParams::bilinear(align).scale_factor(2.0),
                [1, 2, 4, 5],
            ),
            (
                UpsampleParams::bilinear(align).scale_factor(0.5),
                [1, 2, 8, 6],
            ),
            (UpsampleParams::bilinear(align).size((1, 1)), [1, 1, 4, 4]),
            (
                UpsampleParams::bilinear(align).size((256, 256)),
                [1, 1, 16, 16],
            ),
        ] {
            check(p, s, 2);
        }
    }
    // align_corners = true keeps the corners exactly.
    let x = Array4::from_shape_fn([1, 1, 2, 2], |(_, _, h, w)| (h * 2 + w) as f32);
    let y = reference::upsample::upsample(&UpsampleParams::bilinear(true).size((3, 3)), x.view())
        .unwrap();
    assert_eq!(y.row_iter_first(), vec![0.0, 0.5, 1.0]);
}

#[test]
fn bilinear_strips_take_upsampling_by_any_factor() {
    for align in [false, true] {
        for (p, s, strips) in [
            // 2.5x, the last strip half full (20 = 2 * 8 + 4), batch 2.
            (
                UpsampleParams::bilinear(align).size((13, 20)),
                [2, 3, 5, 8],
                true,
            ),
            // The width kept, the height upsampled by a non-integer factor.
            (
                UpsampleParams::bilinear(align).size((11, 8)),
                [1, 2, 6, 8],
                true,
            ),
            // 16 -> 28 (1.75x: three vec4s for some strips).
            (
                UpsampleParams::bilinear(align).size((9, 28)),
                [1, 2, 4, 16],
                true,
            ),
            // A large non-integer factor (Fast-SCNN's 1/8 logits to the frame, 8x with
            // aligned corners, is not an integer factor of the taps).
            (
                UpsampleParams::bilinear(align).size((64, 128)),
                [2, 3, 8, 16],
                true,
            ),
            // The two cases of tests/golden/decoder.json (PyTorch's outputs) that run them.
            (
                UpsampleParams::bilinear(align).size((10, 20)),
                [1, 2, 4, 8],
                true,
            ),
            (
                UpsampleParams::bilinear(align).scale_factors((2.5, 3.0)),
                [2, 1, 3, 4],
                true,
            ),
            // A vertical factor of 20: row groups longer than an invocation's 8 rows.
            (
                UpsampleParams::bilinear(align).size((40, 16)),
                [1, 2, 2, 8],
                true,
            ),
            // By a scale factor with a height that shrinks.
            (
                UpsampleParams::bilinear(align).scale_factors((0.5, 3.0)),
                [1, 2, 8, 12],
                true,
            ),
            // Small factors: three input vec4s per strip and row.
            (
                UpsampleParams::bilinear(align).size((8, 20)),
                [1, 2, 4, 16],
                true,
            ),
            (
                UpsampleParams::bilinear(align).size((112, 112)),
                [1, 2, 56, 56],
                true,
            ),
            // A width that shrinks a little still fits three vec4s.
            (
                UpsampleParams::bilinear(align).size((8, 12)),
                [1, 2, 4, 16],
                true,
            ),
            // Halved, or widths not of whole vec4s: the taps.
            (
                UpsampleParams::bilinear(align).size((8, 8)),
                [1, 2, 4, 16],
                false,
            ),
            (
                UpsampleParams::bilinear(align).size((8, 30)),
                [1, 2, 4, 12],
                false,
            ),
            (
                UpsampleParams::bilinear(align).size((8, 32)),
                [1, 2, 4, 10],
                false,
            ),
        ] {
            let fits = UpsampleKernel::BilinearStrips.supports(&p, s);
            assert_eq!(fits, strips, "{p:?} on {s:?}");
            if strips && !matches!(select_kernel(&p, s), UpsampleKernel::BilinearInt { .. }) {
                assert_eq!(select_kernel(&p, s), UpsampleKernel::BilinearStrips);
            }
            check(p, s, 5);
        }
    }
    // Antialiasing and the other modes never take them.
    let s = [1, 2, 4, 8];
    for p in [
        UpsampleParams::bilinear(false)
            .size((9, 20))
            .antialias(true),
        UpsampleParams::nearest().size((9, 20)),
        UpsampleParams::bicubic(true).size((9, 20)),
    ] {
        assert!(!UpsampleKernel::BilinearStrips.supports(&p, s), "{p:?}");
        // Forced anyway, the kernel is a typed error.
        let x = gpu().upload(Array4::zeros(s).view()).unwrap();
        let forced = upsample_with(
            &mut gpu().recorder(),
            &p,
            &x,
            UpsampleKernel::BilinearStrips,
        );
        assert!(
            matches!(forced, Err(Error::InvalidParam { name: "kernel", .. })),
            "{forced:?}"
        );
    }
}

#[test]
fn bed_of_nails_inserts_zeros() {
    check(UpsampleParams::bed_of_nails(2), [2, 3, 4, 5], 3);
    check(UpsampleParams::bed_of_nails((3, 2)), [1, 2, 3, 3], 4);
    let x = Array4::from_elem([1, 1, 1, 2], 7.0f32);
    let y = reference::upsample::upsample(&UpsampleParams::bed_of_nails(2), x.view()).unwrap();
    assert_eq!(y.row_iter_first(), vec![7.0, 0.0, 7.0, 0.0]);
    assert_eq!(y.slice(ndarray::s![0, 0, 1, ..]).to_vec(), vec![0.0; 4]);
}

/// A factor whose vector kernel would loop past the budget (200 x 200 outputs per input
/// value) takes the tap kernel, which loops over at most 8 rows; forcing it is a typed error.
#[test]
fn factors_past_the_loop_budget_take_the_tap_kernel() {
    let params = UpsampleParams::bed_of_nails(200);
    let shape = [1, 1, 2, 4];
    assert_eq!(select_kernel(&params, shape), UpsampleKernel::Taps);
    check(params, shape, 5);
    let gpu = gpu();
    let x = gpu.upload(Array4::zeros(shape).view()).unwrap();
    let mut rec = gpu.recorder();
    let forced = upsample_with(
        &mut rec,
        &params,
        &x,
        UpsampleKernel::Integer {
            factors: (200, 200),
        },
    );
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
}

#[test]
fn infinities_pass_through_nearest() {
    let gpu = gpu();
    let x = Array4::from_shape_vec([1, 1, 1, 2], vec![f32::INFINITY, f32::NEG_INFINITY]).unwrap();
    let xt = gpu.upload(x.view()).unwrap();
    for p in [
        UpsampleParams::nearest().scale_factor(2.0),
        UpsampleParams::bed_of_nails(2),
    ] {
        let mut rec = gpu.recorder();
        let y = segblocks::ops::upsample::upsample(&mut rec, &p, &xt).unwrap();
        let got = rec.download(&y).unwrap();
        assert!(!got.iter().any(|v| v.is_nan()), "{p:?}: {got:?}");
    }
}

#[test]
fn bad_input_is_a_typed_error() {
    let s = [1, 1, 4, 4];
    let cases: Vec<(UpsampleParams, &str)> = vec![
        (UpsampleParams::nearest(), "size"),
        (UpsampleParams::nearest().size(3).scale_factor(2.0), "size"),
        (UpsampleParams::nearest().size((0, 3)), "size"),
        (
            UpsampleParams::nearest().size(2).antialias(true),
            "antialias",
        ),
        (UpsampleParams::area().size(2).antialias(true), "antialias"),
        (UpsampleParams::nearest().scale_factor(0.0), "scale_factor"),
        (
            UpsampleParams::nearest().scale_factor(f64::NAN),
            "scale_factor",
        ),
        (
            UpsampleParams::bilinear(false).scale_factor(0.1),
            "scale_factor",
        ),
        (UpsampleParams::bed_of_nails(0), "stride"),
        (UpsampleParams::bed_of_nails(2).size(8), "size"),
        (
            UpsampleParams::bed_of_nails(2).recompute_scale_factor(true),
            "size",
        ),
        (
            UpsampleParams::bicubic(false)
                .size(8)
                .recompute_scale_factor(true),
            "recompute_scale_factor",
        ),
        (UpsampleParams::nearest_exact(), "size"),
    ];
    for (p, name) in cases {
        match p.output_shape(s) {
            Err(Error::InvalidParam { name: n, reason }) => assert_eq!(n, name, "{p:?}: {reason}"),
            other => panic!("{p:?}: expected InvalidParam({name}), got {other:?}"),
        }
    }
    let c = UpsampleParams::bilinear(false)
        .scale_factor(2.0)
        .cost([1, 21, 64, 64])
        .unwrap();
    assert_eq!(c.macs, 3 * 21 * 128 * 128);
}

#[test]
fn pixel_shuffle_round_trips_and_refuses_bad_factors() {
    use segblocks::ops::upsample::{pixel_shuffle, pixel_unshuffle};
    let gpu = gpu();
    let x = random4(&mut rng(5), [2, 18, 3, 4]);
    let xt = gpu.upload(x.view()).unwrap();
    let mut rec = gpu.recorder();
    let y = pixel_shuffle(&mut rec, &xt, 3).unwrap();
    assert_eq!(y.shape(), [2, 2, 9, 12]);
    let back = pixel_unshuffle(&mut rec, &y, 3).unwrap();
    let (y, back) = {
        let v = rec.download_many(&[&y, &back]).unwrap();
        (v[0].clone(), v[1].clone())
    };
    let want = reference::upsample::pixel_shuffle(x.view(), 3).unwrap();
    let zero = want.mapv(|_| 0.0);
    assert_close(y.view(), want.view(), zero.view(), "pixel shuffle");
    assert_close(back.view(), x.view(), x.mapv(|_| 0.0).view(), "round trip");
    for (factor, unshuffle, name) in [
        (0, false, "upscale_factor"),
        (2, false, "upscale_factor"), // 18 channels, not divisible by 4
        (usize::MAX, false, "upscale_factor"),
        (0, true, "downscale_factor"),
        (5, true, "downscale_factor"), // 3 x 4 is not divisible by 5
    ] {
        let mut rec = gpu.recorder();
        let e = match unshuffle {
            false => pixel_shuffle(&mut rec, &xt, factor),
            true => pixel_unshuffle(&mut rec, &xt, factor),
        };
        assert!(
            matches!(&e, Err(Error::InvalidParam { name: n, .. }) if *n == name),
            "{factor} {unshuffle}: {e:?}"
        );
    }
}

/// `upsample_into` writes the resized map into a channel window of a wider tensor (the
/// resized part of a concatenation) on every kernel, the pooled ones through a copy,
/// leaving the other channels as they were; bad windows are typed errors.
#[test]
fn upsample_into_a_channel_window() {
    use segblocks::ops::upsample::upsample_into;
    let gpu = gpu();
    let mut r = rng(41);
    let cases = [
        (
            UpsampleParams::nearest().scale_factor(2.0),
            [2, 3, 5, 8],
            "integer",
        ),
        (
            UpsampleParams::bilinear(false).scale_factor(2.0),
            [2, 3, 5, 8],
            "bilinear int",
        ),
        (
            UpsampleParams::bilinear(false).size((11, 13)),
            [2, 3, 5, 7],
            "taps",
        ),
        (
            UpsampleParams::bicubic(true).size((9, 6)),
            [3, 2, 4, 5],
            "taps",
        ),
        (
            UpsampleParams::bilinear(true).size((11, 20)),
            [2, 3, 5, 8],
            "strips",
        ),
        (UpsampleParams::area().size((3, 4)), [2, 3, 7, 9], "area"),
        (
            UpsampleParams::bilinear(false).size((3, 4)).antialias(true),
            [2, 3, 7, 9],
            "aa",
        ),
    ];
    for (params, shape, what) in cases {
        let kernel = select_kernel(&params, shape);
        let expect_kernel = match what {
            "integer" => matches!(kernel, UpsampleKernel::Integer { .. }),
            "bilinear int" => matches!(kernel, UpsampleKernel::BilinearInt { .. }),
            "taps" => kernel == UpsampleKernel::Taps,
            "strips" => kernel == UpsampleKernel::BilinearStrips,
            "area" => kernel == UpsampleKernel::Area,
            _ => kernel == UpsampleKernel::Antialias,
        };
        assert!(expect_kernel, "{what}: {kernel:?}");
        let x = random4(&mut r, shape);
        let up = reference::upsample::upsample(&params, x.view()).unwrap();
        let [n, c, oh, ow] = [up.dim().0, up.dim().1, up.dim().2, up.dim().3];
        for (offset, total) in [(0, c + 2), (2, c + 2), (1, c + 5)] {
            let before = random4(&mut r, [n, total, oh, ow]);
            let mut want = before.clone();
            want.slice_mut(ndarray::s![.., offset..offset + c, .., ..])
                .assign(&up);
            let (xt, yt) = (
                gpu.upload(x.view()).unwrap(),
                gpu.upload(before.view()).unwrap(),
            );
            let mut rec = gpu.recorder();
            upsample_into(&mut rec, &params, &xt, &yt, offset).unwrap();
            let got = rec.download(&yt).unwrap();
            let tol = want.mapv(|v| 16.0 * f32::EPSILON * (1.0 + v.abs()));
            assert_close(
                got.view(),
                want.view(),
                tol.view(),
                &format!("{what} {params:?} on {shape:?} into {offset} of {total}"),
            );
        }
    }
    // Bad windows: too few channels, another size or batch, the input's own buffer.
    let params = UpsampleParams::nearest().scale_factor(2.0);
    let x = gpu.upload(random4(&mut r, [1, 3, 4, 4]).view()).unwrap();
    for (shape, offset) in [
        ([1, 4, 8, 8], 2),
        ([1, 3, 8, 8], usize::MAX),
        ([1, 3, 8, 7], 0),
        ([2, 3, 8, 8], 0),
    ] {
        let y = gpu.upload(Array4::<f32>::zeros(shape).view()).unwrap();
        let mut rec = gpu.recorder();
        let err = upsample_into(&mut rec, &params, &x, &y, offset).unwrap_err();
        assert!(
            matches!(err, Error::ShapeMismatch { name: "output", .. }),
            "{shape:?} at {offset}: {err}"
        );
    }
    let same = UpsampleParams::nearest().scale_factor(1.0);
    let mut rec = gpu.recorder();
    let err = upsample_into(&mut rec, &same, &x, &x, 0).unwrap_err();
    assert!(
        matches!(err, Error::InvalidParam { name: "output", .. }),
        "{err}"
    );
    // Also where the resize runs passes of its own.
    let area = UpsampleParams::area().size((4, 4));
    let err = upsample_into(&mut rec, &area, &x, &x, 0).unwrap_err();
    assert!(
        matches!(err, Error::InvalidParam { name: "output", .. }),
        "{err}"
    );
}

/// `act(residual + interpolate(x))` in one pass with every kernel that runs the resize
/// (two for area and antialias, which resize in passes of their own), batch 2 and odd
/// sizes, against the reference; a residual of another shape is a typed error.
#[test]
fn upsample_add_fuses_the_residual_sum_with_every_kernel() {
    use segblocks::ops::upsample::{upsample_add, upsample_add_with};
    use segblocks::ops::Activation;
    let gpu = gpu();
    let mut r = rng(43);
    let cases = [
        (UpsampleParams::nearest().scale_factor(2.0), [2, 3, 5, 8]),
        (UpsampleParams::bed_of_nails(2), [2, 3, 3, 4]),
        (
            UpsampleParams::bilinear(false).scale_factor(2.0),
            [2, 3, 5, 8],
        ),
        (
            UpsampleParams::bilinear(false).scale_factor(4.0),
            [2, 2, 3, 4],
        ),
        (
            UpsampleParams::bilinear(false).scale_factor(8.0),
            [2, 2, 2, 4],
        ),
        (UpsampleParams::bilinear(false).size((11, 13)), [2, 3, 5, 7]),
        (UpsampleParams::bilinear(true).size((11, 20)), [2, 3, 5, 8]),
        (UpsampleParams::bicubic(false).size((9, 6)), [2, 2, 4, 5]),
        (UpsampleParams::nearest_exact().size((7, 3)), [2, 2, 4, 5]),
        (UpsampleParams::area().size((3, 4)), [2, 3, 7, 9]),
        (
            UpsampleParams::bilinear(false).size((3, 4)).antialias(true),
            [2, 3, 7, 9],
        ),
    ];
    for (i, (params, shape)) in cases.into_iter().enumerate() {
        let act = [Activation::None, Activation::Relu, Activation::Sigmoid][i % 3];
        let x = random4(&mut r, shape);
        let out = params.output_shape(shape).unwrap();
        let residual = random4(&mut r, out);
        let want =
            reference::upsample::upsample_add(&params, x.view(), residual.view(), act).unwrap();
        let (xt, rt) = (
            gpu.upload(x.view()).unwrap(),
            gpu.upload(residual.view()).unwrap(),
        );
        let chosen = select_kernel(&params, shape);
        let mut kernels = vec![chosen];
        if !matches!(chosen, UpsampleKernel::Area | UpsampleKernel::Antialias) {
            kernels.push(UpsampleKernel::Taps);
        }
        if UpsampleKernel::BilinearStrips.supports(&params, shape) {
            kernels.push(UpsampleKernel::BilinearStrips);
        }
        for kernel in kernels {
            gpu.trim_pool();
            let mut rec = gpu.recorder();
            let y = upsample_add_with(&mut rec, &params, &xt, (&rt, act), kernel).unwrap();
            let passes = rec.dispatch_count();
            let got = rec.download(&y).unwrap();
            let tol = want.mapv(|v| 16.0 * f32::EPSILON * (1.0 + v.abs()));
            let what = format!("{kernel:?} {act:?} {params:?} on {shape:?}");
            assert_close(got.view(), want.view(), tol.view(), &what);
            // One pass where the resize is one dispatch: the sum is in its store.
            if !matches!(kernel, UpsampleKernel::Area | UpsampleKernel::Antialias) {
                assert_eq!(passes, 1, "{what}");
            }
        }
    }
    // The residual must have the resized shape.
    let params = UpsampleParams::bilinear(false).scale_factor(2.0);
    let x = gpu.upload(random4(&mut r, [2, 3, 4, 4]).view()).unwrap();
    for bad in [[2, 3, 8, 7], [1, 3, 8, 8], [2, 4, 8, 8]] {
        let residual = gpu.upload(random4(&mut r, bad).view()).unwrap();
        let mut rec = gpu.recorder();
        let err = upsample_add(&mut rec, &params, &x, &residual, Activation::Relu).unwrap_err();
        assert!(
            matches!(
                err,
                Error::ShapeMismatch {
                    name: "residual",
                    ..
                }
            ),
            "{bad:?}: {err}"
        );
    }
}
