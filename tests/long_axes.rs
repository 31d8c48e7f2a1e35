//! Every op without weights (and the transposed convolution) on maps with one axis past
//! 65,536: products of two coordinates or sizes that are not element indices overflow
//! 32 bits there first (adaptive pooling's bin edges did), and loops over a row or column
//! meet the loop budget. Small integers as data, so that sums are exact: values that
//! only move are compared for equality, means and normalised values within a few
//! roundings.

mod common;

use common::*;
use ndarray::{Array1, Array4};
use segblocks::ops::conv_transpose::{ConvTranspose2d, ConvTranspose2dParams};
use segblocks::ops::copy::{pad2d, Pad2dParams, PadMode};
use segblocks::ops::norm::{GroupNorm, GroupNormParams};
use segblocks::ops::pool::{
    AdaptiveAvgPool2dParams, AdaptiveMaxPool2dParams, AvgPool2dParams, GlobalPool, MaxPool2dParams,
    MaxUnpool2dParams,
};
use segblocks::ops::upsample::UpsampleParams;
use segblocks::ops::{channel, pool, upsample};
use segblocks::{reference, Recorder, Result, Tensor};

/// How close an op's output must be to the reference's.
#[derive(Clone, Copy)]
enum Match {
    Exact,
    /// `|got - want| <= tol * (1 + |want|)`.
    Within(f32),
}

/// One op: its name, how it must match, the GPU recording and the reference.
type Case = (
    String,
    Match,
    Box<dyn Fn(&mut Recorder<'_>, &Tensor) -> Result<Tensor>>,
    Box<dyn Fn(&Array4<f32>) -> Result<Array4<f32>>>,
);

fn case(
    name: impl Into<String>,
    how: Match,
    gpu: impl Fn(&mut Recorder<'_>, &Tensor) -> Result<Tensor> + 'static,
    reference: impl Fn(&Array4<f32>) -> Result<Array4<f32>> + 'static,
) -> Case {
    (name.into(), how, Box::new(gpu), Box::new(reference))
}

fn cases(gpu: &segblocks::Gpu) -> Vec<Case> {
    let max = MaxPool2dParams::new(3).stride(2).padding(1);
    let unpool = MaxUnpool2dParams::from_pool(&max);
    let avg = AvgPool2dParams::new(3)
        .stride(1)
        .padding(1)
        .count_include_pad(false);
    let adaptive_avg = AdaptiveAvgPool2dParams::new((7, 7));
    let adaptive_max = AdaptiveMaxPool2dParams::new((7, 7));
    let mut v = vec![
        case(
            "max pool and unpool",
            Match::Exact,
            move |rec, x| {
                let (y, i) = pool::max_pool2d(rec, &max, x)?;
                let s = x.shape();
                pool::max_unpool2d(rec, &unpool.output_size((s[2], s[3])), &y, &i)
            },
            move |x| {
                let (y, i) = reference::pool::max_pool2d(&max, x.view())?;
                let s = x.shape();
                let p = unpool.output_size((s[2], s[3]));
                reference::pool::max_unpool2d(&p, y.view(), i.view())
            },
        ),
        case(
            "avg pool",
            Match::Within(1e-6),
            move |rec, x| pool::avg_pool2d(rec, &avg, x),
            move |x| reference::pool::avg_pool2d(&avg, x.view()),
        ),
        case(
            "adaptive avg pool",
            Match::Within(2e-6),
            move |rec, x| pool::adaptive_avg_pool2d(rec, &adaptive_avg, x),
            move |x| reference::pool::adaptive_avg_pool2d(&adaptive_avg, x.view()),
        ),
        case(
            "adaptive max pool",
            Match::Exact,
            move |rec, x| pool::adaptive_max_pool2d(rec, &adaptive_max, x).map(|(y, _)| y),
            move |x| Ok(reference::pool::adaptive_max_pool2d(&adaptive_max, x.view())?.0),
        ),
        case(
            "softmax over channels",
            Match::Within(1e-6),
            channel::softmax,
            |x| Ok(reference::channel::softmax(x.view(), false).unwrap()),
        ),
        case(
            "reflect pad",
            Match::Exact,
            |rec, x| {
                let p = Pad2dParams::new((2, 1, 1, 2)).mode(PadMode::Reflect);
                pad2d(rec, &p, x)
            },
            |x| {
                let p = Pad2dParams::new((2, 1, 1, 2)).mode(PadMode::Reflect);
                reference::copy::pad2d(&p, x.view())
            },
        ),
    ];
    for kind in [GlobalPool::Avg, GlobalPool::Max] {
        v.push(case(
            format!("global {kind:?} pool"),
            Match::Within(1e-6),
            move |rec, x| pool::global_pool(rec, kind, x),
            move |x| reference::pool::global_pool(kind, x.view()),
        ));
    }
    for (how, p) in [
        (Match::Exact, UpsampleParams::nearest().scale_factor(2.0)),
        (
            Match::Exact,
            UpsampleParams::nearest_exact().scale_factor(0.7),
        ),
        (
            Match::Within(1e-6),
            UpsampleParams::bilinear(false).scale_factor(2.0),
        ),
        (
            Match::Within(1e-5),
            UpsampleParams::bicubic(true).scale_factor(1.5),
        ),
        (
            Match::Within(1e-5),
            UpsampleParams::bilinear(false)
                .antialias(true)
                .scale_factor(0.4),
        ),
        (Match::Within(2e-6), UpsampleParams::area().size((7, 5))),
    ] {
        v.push(case(
            format!("{p:?}"),
            how,
            move |rec, x| upsample::upsample(rec, &p, x),
            move |x| reference::upsample::upsample(&p, x.view()),
        ));
    }
    // Group norm over the whole sample, and per channel.
    for groups in [1, 2] {
        let p = GroupNormParams::new(groups, 2);
        let (gamma, beta) = (Array1::from_elem(2, 1.5), Array1::from_elem(2, 0.25));
        let layer = GroupNorm::new(gpu, p, Some(gamma.view()), Some(beta.view())).unwrap();
        v.push(case(
            format!("group norm, {groups} groups"),
            Match::Within(1e-4),
            move |rec, x| layer.forward(rec, x),
            move |x| reference::norm::group_norm(&p, x.view(), gamma.view(), beta.view()),
        ));
    }
    let p = ConvTranspose2dParams::new(2, 3, 2).stride(2);
    let mut r = rng(16);
    let (w, b) = (
        integers4(&mut r, p.weight_shape(), -2, 2),
        integers1(&mut r, 3, -2, 2),
    );
    let layer = ConvTranspose2d::new(gpu, p, w.view(), Some(b.view())).unwrap();
    v.push(case(
        "transposed conv",
        Match::Exact,
        move |rec, x| layer.forward(rec, x),
        move |x| {
            reference::conv_transpose::conv_transpose2d(&p, x.view(), w.view(), Some(b.view()))
        },
    ));
    v
}

/// On this adapter's kernels and on a GPU's (storage reads instead of texels, other
/// pooling and transposed-convolution kernels).
#[test]
fn ops_on_axes_past_65536_match_the_reference() {
    let own = gpu_class();
    let mut r = rng(15);
    for (gpu, class) in [(gpu(), "own class"), (&own, "GPU class")] {
        for shape in [[1, 2, 3, 70_000], [1, 2, 70_000, 3]] {
            check_shape(gpu, class, &integers4(&mut r, shape, -3, 3));
        }
    }
}

fn check_shape(gpu: &segblocks::Gpu, class: &str, x: &Array4<f32>) {
    let xt = gpu.upload(x.view()).unwrap();
    for (name, how, run, reference) in cases(gpu) {
        let what = format!("{name} on {:?} ({class})", x.shape());
        let want = reference(x).unwrap_or_else(|e| panic!("{what}: reference: {e}"));
        let mut rec = gpu.recorder();
        let y = run(&mut rec, &xt).unwrap_or_else(|e| panic!("{what}: {e}"));
        let got = rec.download(&y).unwrap();
        match how {
            Match::Exact => assert!(got == want, "{what}: not equal"),
            Match::Within(tol) => {
                let bound = want.mapv(|v| tol * (1.0 + v.abs()));
                assert_close(got.view(), want.view(), bound.view(), &what);
            }
        }
    }
}
