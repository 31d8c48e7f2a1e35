//! The fused decoder stage (gated skip + 2x bilinear resize + 1x1 + residual depthwise in
//! one dispatch) and its layer-by-layer variant against the CPU reference: odd sizes that
//! leave partial tiles, batch > 1, channel counts that are not multiples of 4, another
//! kernel size and other activations; the choice; the SE gate of a map and a half-size
//! map; bad input.

mod common;

use common::*;
use ndarray::{Array1, Array4};
use segblocks::ops::attention::{SeGateKernel, SqueezeExcitation, SqueezeExcitationParams};
use segblocks::ops::conv::Conv2dParams;
use segblocks::ops::conv_transpose::ConvTranspose2dParams;
use segblocks::ops::decoder_stage::{
    select_kernel, DecoderStage, DecoderStageKernel, DecoderStageParams, StageTail,
};
use segblocks::ops::upsample::UpsampleParams;
use segblocks::ops::Activation;
use segblocks::reference;
use segblocks::Error;

type Wb = (Array4<f32>, Array1<f32>);

fn weights(p: &DecoderStageParams, seed: u64) -> (Wb, Wb) {
    let mut r = rng(seed);
    let (cin, cout, k) = (p.in_channels, p.out_channels, p.kernel_size);
    let mut pair = |shape: [usize; 4]| (random4(&mut r, shape), random1(&mut r, shape[0]));
    (pair([cout, cin, 1, 1]), pair([cout, 1, k, k]))
}

fn view(wb: &Wb) -> (ndarray::ArrayView4<'_, f32>, ndarray::ArrayView1<'_, f32>) {
    (wb.0.view(), wb.1.view())
}

/// What a tested stage ends with.
#[derive(Clone, Copy, Debug)]
enum End {
    Nothing,
    Head(ConvTranspose2dParams),
    Projection(Conv2dParams),
}

/// Runs every variant of `p` on a skip of `shape` against the reference.
fn check(p: DecoderStageParams, shape: [usize; 4], seed: u64) {
    check_with_end(p, End::Nothing, shape, seed)
}

/// [`check`] of a stage that ends with a transposed-convolution head or a projection.
fn check_with_end(p: DecoderStageParams, end: End, shape: [usize; 4], seed: u64) {
    let gpu = gpu();
    let [n, c, h, w] = shape;
    let (refine, depthwise) = weights(&p, seed);
    let mut r = rng(seed + 1);
    let skip = random4(&mut r, shape);
    let gate = random4(&mut r, [n, c, 1, 1]);
    let low = random4(&mut r, [n, c, h / 2, w / 2]);
    let want = reference::decoder_stage::decoder_stage(
        &p,
        skip.view(),
        gate.view(),
        low.view(),
        view(&refine),
        view(&depthwise),
    )
    .unwrap();
    let mut stage = DecoderStage::new(gpu, p, view(&refine), view(&depthwise)).unwrap();
    let mut r = rng(seed + 2);
    let want = match end {
        End::Head(hp) => {
            let w = random4(&mut r, [hp.in_channels, hp.out_channels, 2, 2]);
            let b = hp.bias.then(|| random1(&mut r, hp.out_channels));
            let b = b.as_ref().map(|b| b.view());
            stage = stage.with_head(hp, w.view(), b).unwrap();
            reference::conv_transpose::conv_transpose2d(&hp, want.view(), w.view(), b).unwrap()
        }
        End::Projection(cp) => {
            let w = random4(&mut r, [cp.out_channels, cp.in_channels, 1, 1]);
            let b = cp.bias.then(|| random1(&mut r, cp.out_channels));
            let b = b.as_ref().map(|b| b.view());
            stage = stage.with_projection(cp, w.view(), b).unwrap();
            assert_eq!(stage.tail(), StageTail::Projection(&cp));
            reference::conv::conv2d(&cp, want.view(), w.view(), b).unwrap()
        }
        End::Nothing => want,
    };
    let up = |a: &Array4<f32>| gpu.upload(a.view()).unwrap();
    let (skip_t, gate_t, low_t) = (up(&skip), up(&gate), up(&low));
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let bound = Array4::from_elem(want.dim(), 2e-5 * scale + 1e-5);
    for kernel in DecoderStageKernel::ALL {
        // Fresh (zeroed) buffers: a recycled output of the previous variant would hide
        // values this one fails to write.
        gpu.trim_pool();
        let mut rec = gpu.recorder();
        let y = stage
            .forward_with(&mut rec, &skip_t, &gate_t, &low_t, kernel)
            .unwrap();
        let dispatches = rec.dispatch_count();
        let got = rec.download(&y).unwrap();
        assert_close(
            got.view(),
            want.view(),
            bound.view(),
            &format!("{p:?} {end:?} {shape:?} {kernel:?}"),
        );
        if kernel == DecoderStageKernel::Fused {
            assert_eq!(dispatches, 1, "the fused stage is one dispatch");
        } else {
            // The resize and the gated skip in one pass where the integer-factor bilinear
            // kernel takes the low-resolution map (its width a multiple of 4), then the
            // 1x1, the depthwise and the tail.
            let resize = if (w / 2).is_multiple_of(4) { 1 } else { 2 };
            let tail = usize::from(!matches!(end, End::Nothing));
            assert_eq!(dispatches, resize + 2 + tail, "{shape:?} {end:?}");
        }
    }
}

#[test]
fn the_selfie_stage_matches_the_reference_with_both_kernels() {
    // 8x8 tiles: a size with partial tiles in both directions, batch 2.
    check(DecoderStageParams::new(16, 16), [2, 16, 18, 22], 1);
    // The selfie model's first stage at a small size.
    check(DecoderStageParams::new(24, 24), [1, 24, 16, 16], 2);
    // Batch 2, 6 channels, an odd low-resolution height (7 x 4): the layers' resize and
    // gated skip in one pass.
    check(DecoderStageParams::new(6, 6), [2, 6, 14, 8], 5);
}

#[test]
fn the_transposed_convolution_head_runs_in_the_same_pass() {
    // The selfie model's last layer: 16 -> 1, sigmoid; partial tiles, batch 2.
    let head = ConvTranspose2dParams::new(16, 1, 2)
        .stride(2)
        .activation(Activation::Sigmoid);
    check_with_end(
        DecoderStageParams::new(16, 16),
        End::Head(head),
        [2, 16, 10, 18],
        8,
    );
    // Three output channels, no bias, odd channel count.
    let mut head = ConvTranspose2dParams::new(5, 3, 2).stride(2);
    head.bias = false;
    check_with_end(
        DecoderStageParams::new(6, 5),
        End::Head(head),
        [1, 6, 12, 6],
        9,
    );
}

#[test]
fn the_next_stages_projection_runs_in_the_same_pass() {
    // The selfie model's first two stages: 24 -> 16 and 16 -> 16; partial tiles, batch 2.
    let proj = Conv2dParams::new(24, 16, 1);
    check_with_end(
        DecoderStageParams::new(24, 24),
        End::Projection(proj),
        [2, 24, 18, 14],
        10,
    );
    // Odd channel counts, no bias, an activation, the widest projection.
    let mut proj = Conv2dParams::new(7, 5, 1).activation(Activation::Relu6);
    proj.bias = false;
    check_with_end(
        DecoderStageParams::new(3, 7),
        End::Projection(proj),
        [1, 3, 6, 10],
        11,
    );
    let proj = Conv2dParams::new(16, 32, 1).activation(Activation::HardSwish);
    check_with_end(
        DecoderStageParams::new(16, 16),
        End::Projection(proj),
        [1, 16, 8, 16],
        12,
    );
}

#[test]
fn odd_channel_counts_kernel_sizes_and_activations_match() {
    let p = DecoderStageParams::new(5, 7).kernel_size(5).activations(
        Activation::HardSigmoid,
        Activation::HardSwish,
        Activation::None,
    );
    check(p, [3, 5, 10, 6], 3);
    // One channel, a 2x2 map (one partial tile, a 1x1 low input), a 1x1 depthwise.
    let p = DecoderStageParams::new(1, 3).kernel_size(1);
    check(p, [1, 1, 2, 2], 4);
}

#[test]
fn the_choice_fuses_what_fits_and_the_layers_take_the_rest() {
    let caps = &segblocks::DeviceCaps {
        cpu: false,
        ..gpu().caps().clone()
    };
    let p = DecoderStageParams::new(16, 16);
    assert_eq!(
        select_kernel(&p, StageTail::None, [1, 16, 128, 128], caps),
        DecoderStageKernel::Fused
    );
    let wide = DecoderStageParams::new(48, 16);
    assert_eq!(
        select_kernel(&wide, StageTail::None, [1, 48, 16, 16], caps),
        DecoderStageKernel::Layers
    );
    // Forcing the fused kernel where it does not fit is a typed error, the layers run.
    let (refine, depthwise) = weights(&wide, 5);
    let stage = DecoderStage::new(gpu(), wide, view(&refine), view(&depthwise)).unwrap();
    let gpu = gpu();
    let skip = gpu.upload(Array4::zeros([1, 48, 4, 4]).view()).unwrap();
    let gate = gpu.upload(Array4::zeros([1, 48, 1, 1]).view()).unwrap();
    let low = gpu.upload(Array4::zeros([1, 48, 2, 2]).view()).unwrap();
    let mut rec = gpu.recorder();
    let err = stage
        .forward_with(&mut rec, &skip, &gate, &low, DecoderStageKernel::Fused)
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidParam { name: "kernel", .. }),
        "{err}"
    );
    let y = stage.forward(&mut rec, &skip, &gate, &low).unwrap();
    assert_eq!(y.shape(), [1, 16, 4, 4]);
}

#[test]
fn bad_input_is_a_typed_error() {
    let gpu = gpu();
    let p = DecoderStageParams::new(4, 4);
    let (refine, depthwise) = weights(&p, 6);
    // Weights of the wrong shape name the tensor.
    let err = DecoderStage::new(gpu, p, view(&depthwise), view(&refine)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ShapeMismatch {
                name: "refine.weight",
                ..
            }
        ),
        "{err}"
    );
    let err =
        DecoderStage::new(gpu, p.kernel_size(2), view(&refine), view(&depthwise)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidParam {
                name: "kernel_size",
                ..
            }
        ),
        "{err}"
    );
    // Heads other than kernel 2, stride 2, or too wide.
    for head in [
        ConvTranspose2dParams::new(4, 1, 3).stride(2),
        ConvTranspose2dParams::new(4, 1, 2),
        ConvTranspose2dParams::new(4, 5, 2).stride(2),
        ConvTranspose2dParams::new(3, 1, 2).stride(2),
    ] {
        let stage = DecoderStage::new(gpu, p, view(&refine), view(&depthwise)).unwrap();
        let k = head.kernel_size.0;
        let w = Array4::zeros([head.in_channels, head.out_channels, k, k]);
        let b = Array1::zeros(head.out_channels);
        let err = stage.with_head(head, w.view(), Some(b.view())).unwrap_err();
        assert!(
            matches!(err, Error::InvalidParam { name: "head", .. }),
            "{head:?}: {err}"
        );
    }
    // Projections other than a plain 1x1 from the stage's channels, or too wide; a
    // second tail.
    for proj in [
        Conv2dParams::new(4, 4, 3),
        Conv2dParams::new(4, 4, 1).stride(2),
        Conv2dParams::new(4, 4, 1).padding(1),
        Conv2dParams::new(4, 4, 1).groups(2),
        Conv2dParams::new(3, 4, 1),
        Conv2dParams::new(4, 33, 1),
    ] {
        let stage = DecoderStage::new(gpu, p, view(&refine), view(&depthwise)).unwrap();
        let (k, c) = (proj.kernel_size.0, proj.in_channels / proj.groups);
        let w = Array4::zeros([proj.out_channels, c, k, k]);
        let b = Array1::zeros(proj.out_channels);
        let err = stage
            .with_projection(proj, w.view(), Some(b.view()))
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidParam {
                    name: "projection",
                    ..
                }
            ),
            "{proj:?}: {err}"
        );
    }
    let head = ConvTranspose2dParams::new(4, 1, 2).stride(2);
    let proj = Conv2dParams::new(4, 4, 1);
    let stage = DecoderStage::new(gpu, p, view(&refine), view(&depthwise))
        .unwrap()
        .with_head(
            head,
            Array4::zeros([4, 1, 2, 2]).view(),
            Some(Array1::zeros(1).view()),
        )
        .unwrap();
    let err = stage
        .with_projection(
            proj,
            Array4::zeros([4, 4, 1, 1]).view(),
            Some(Array1::zeros(4).view()),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidParam {
                name: "projection",
                ..
            }
        ),
        "{err}"
    );
    let stage = DecoderStage::new(gpu, p, view(&refine), view(&depthwise)).unwrap();
    let t = |shape: [usize; 4]| gpu.upload(Array4::zeros(shape).view()).unwrap();
    // (skip, gate, low) shapes and the operand the error names.
    type Case = ([usize; 4], [usize; 4], [usize; 4], &'static str);
    let cases: [Case; 4] = [
        ([1, 4, 8, 8], [1, 4, 1, 1], [1, 4, 8, 8], "low"),
        ([1, 4, 8, 8], [1, 3, 1, 1], [1, 4, 4, 4], "gate"),
        ([1, 3, 8, 8], [1, 4, 1, 1], [1, 4, 4, 4], "skip"),
        ([1, 4, 7, 8], [1, 4, 1, 1], [1, 4, 3, 4], "skip"),
    ];
    for (skip, gate, low, name) in cases {
        for kernel in DecoderStageKernel::ALL {
            let mut rec = gpu.recorder();
            let err = stage
                .forward_with(&mut rec, &t(skip), &t(gate), &t(low), kernel)
                .unwrap_err();
            let got = match &err {
                Error::ShapeMismatch { name, .. } | Error::InvalidParam { name, .. } => *name,
                other => panic!("{other}"),
            };
            assert_eq!(got, name, "{skip:?} {gate:?} {low:?} {kernel:?}: {err}");
        }
    }
}

#[test]
fn the_gate_of_a_map_and_a_half_size_map_is_the_gate_of_the_resized_sum() {
    let gpu = gpu();
    let (n, c, s) = (2, 12, 6);
    let params = SqueezeExcitationParams::new(c, s);
    let mut r = rng(7);
    let fc1 = (random4(&mut r, [s, c, 1, 1]), random1(&mut r, s));
    let fc2 = (random4(&mut r, [c, s, 1, 1]), random1(&mut r, c));
    let se = SqueezeExcitation::new(
        gpu,
        params,
        fc1.0.view(),
        fc1.1.view(),
        fc2.0.view(),
        fc2.1.view(),
    )
    .unwrap();
    let a = random4(&mut r, [n, c, 14, 10]);
    let low = random4(&mut r, [n, c, 7, 5]);
    // The reference: the gate of a + resize(low), the sum materialised.
    let up = reference::upsample::upsample(
        &UpsampleParams::bilinear(false).scale_factor(2.0),
        low.view(),
    )
    .unwrap();
    let sum = &a + &up;
    let want =
        reference::attention::excitation(&params, sum.view(), view(&fc1), view(&fc2)).unwrap();
    let (at, lt) = (
        gpu.upload(a.view()).unwrap(),
        gpu.upload(low.view()).unwrap(),
    );
    let bound = Array4::from_elem(want.dim(), 1e-4);
    for kernel in SeGateKernel::ALL {
        gpu.trim_pool();
        let mut rec = gpu.recorder();
        let g = se
            .excitation_with(&mut rec, &at, Some(&lt), kernel)
            .unwrap();
        let got = rec.download(&g).unwrap();
        assert_close(
            got.view(),
            want.view(),
            bound.view(),
            &format!("{kernel:?}"),
        );
    }
    // Another batch or channel count is refused, naming the operand.
    let mut rec = gpu.recorder();
    let other = gpu.upload(Array4::zeros([1, c, 7, 5]).view()).unwrap();
    let err = se.excitation_of_sum(&mut rec, &at, &other).unwrap_err();
    assert!(
        matches!(err, Error::ShapeMismatch { name: "b", .. }),
        "{err}"
    );
}
