//! LR-ASPP's high-resolution branch (pool, gate, branch, scale, classifier) fused into one
//! pass, with its pool apart, and as its layers, against the CPU reference: odd sizes,
//! batch > 1, channel counts that are not multiples of 4, with and without the classifier
//! and biases; the choice; bad input.

mod common;

use common::*;
use ndarray::{Array1, Array4};
use segblocks::ops::lraspp_head::{select_kernel, LrAsppHead, LrAsppHeadKernel, LrAsppHeadParams};
use segblocks::ops::Activation;
use segblocks::reference;
use segblocks::Error;

type Layer = (Array4<f32>, Option<Array1<f32>>);

struct Weights {
    branch: Layer,
    gate: Layer,
    classifier: Option<Layer>,
}

fn weights(p: &LrAsppHeadParams, bias: bool, seed: u64) -> Weights {
    let mut r = rng(seed);
    let mut layer = |shape: [usize; 4]| {
        let w = random4(&mut r, shape);
        (w, bias.then(|| random1(&mut r, shape[0])))
    };
    let (c, m) = (p.in_channels, p.inter_channels);
    Weights {
        branch: layer([m, c, 1, 1]),
        gate: layer([m, c, 1, 1]),
        classifier: p.out_channels.map(|k| layer([k, m, 1, 1])),
    }
}

type View<'a> = (
    ndarray::ArrayView4<'a, f32>,
    Option<ndarray::ArrayView1<'a, f32>>,
);

fn view(l: &Layer) -> View<'_> {
    (l.0.view(), l.1.as_ref().map(|b| b.view()))
}

fn check(p: LrAsppHeadParams, bias: bool, shape: [usize; 4], seed: u64) {
    let gpu = gpu();
    let w = weights(&p, bias, seed);
    let x = random4(&mut rng(seed + 1), shape);
    let classifier = w.classifier.as_ref().map(view);
    let want = reference::lraspp_head::lraspp_head(
        &p,
        x.view(),
        view(&w.branch),
        view(&w.gate),
        classifier,
    )
    .unwrap();
    let head = LrAsppHead::new(gpu, p, view(&w.branch), view(&w.gate), classifier).unwrap();
    let xt = gpu.upload(x.view()).unwrap();
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let bound = Array4::from_elem(want.dim(), 2e-5 * scale + 1e-5);
    for kernel in LrAsppHeadKernel::ALL {
        // Fresh (zeroed) buffers: a recycled output of the previous variant would hide
        // values this one fails to write.
        gpu.trim_pool();
        let mut rec = gpu.recorder();
        let y = head.forward_with(&mut rec, &xt, kernel).unwrap();
        let dispatches = rec.dispatch_count();
        let got = rec.download(&y).unwrap();
        assert_close(
            got.view(),
            want.view(),
            bound.view(),
            &format!("{p:?} bias {bias} {shape:?} {kernel:?}"),
        );
        if kernel == LrAsppHeadKernel::Fused {
            assert_eq!(dispatches, 1, "the fused branch is one dispatch");
        }
    }
}

#[test]
fn the_selfie_head_matches_the_reference_with_every_kernel() {
    // The selfie model's head (32 -> 128 -> 24), batch 2, a map that is not a whole number
    // of workgroups.
    check(LrAsppHeadParams::new(32, 128, 24), true, [2, 32, 9, 13], 1);
}

#[test]
fn odd_channels_no_bias_no_classifier_and_other_activations_match() {
    let p = LrAsppHeadParams {
        activation: Activation::HardSwish,
        gate_activation: Activation::HardSigmoid,
        ..LrAsppHeadParams::new(7, 10, 3)
    };
    check(p, false, [3, 7, 5, 6], 2);
    check(
        LrAsppHeadParams::new(5, 6, 1).without_classifier(),
        true,
        [1, 5, 1, 1],
        3,
    );
}

#[test]
fn the_choice_and_bad_input() {
    let gpu = gpu();
    let caps = &segblocks::DeviceCaps {
        cpu: false,
        ..gpu.caps().clone()
    };
    let wide = LrAsppHeadParams::new(96, 16, 4);
    assert_eq!(
        select_kernel(&wide, [1, 96, 8, 8], caps),
        LrAsppHeadKernel::Layers
    );
    let w = weights(&wide, true, 4);
    let c = w.classifier.as_ref().map(view);
    let head = LrAsppHead::new(gpu, wide, view(&w.branch), view(&w.gate), c).unwrap();
    let x = gpu.upload(Array4::zeros([1, 96, 8, 8]).view()).unwrap();
    let mut rec = gpu.recorder();
    let err = head
        .forward_with(&mut rec, &x, LrAsppHeadKernel::Fused)
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidParam { name: "kernel", .. }),
        "{err}"
    );
    let y = head.forward(&mut rec, &x).unwrap();
    assert_eq!(y.shape(), [1, 4, 8, 8]);
    // A wrong input channel count, wrong weights, a missing classifier.
    let x = gpu.upload(Array4::zeros([1, 95, 8, 8]).view()).unwrap();
    for kernel in LrAsppHeadKernel::ALL {
        let err = head.forward_with(&mut rec, &x, kernel).unwrap_err();
        assert!(
            matches!(err, Error::ShapeMismatch { name: "input", .. }),
            "{err}"
        );
    }
    let err = LrAsppHead::new(gpu, wide, view(&w.gate), view(&w.gate), None).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidParam {
                name: "classifier",
                ..
            }
        ),
        "{err}"
    );
    let err = LrAsppHead::new(
        gpu,
        wide,
        view(&w.branch),
        view(&w.branch),
        w.classifier.as_ref().map(|_| view(&w.gate)),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ShapeMismatch {
                name: "classifier",
                ..
            }
        ),
        "{err}"
    );
    let err = LrAsppHead::new(
        gpu,
        LrAsppHeadParams::new(96, 0, 4),
        view(&w.branch),
        view(&w.gate),
        None,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidParam {
                name: "channels",
                ..
            }
        ),
        "{err}"
    );
}
