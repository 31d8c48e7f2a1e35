//! Normalisation: batch norm (training with running statistics, inference, backward,
//! folding into a convolution), group, layer and instance norm, AdaIN, global response
//! norm; GPU against the
//! reference, the identities between them, accuracy on hard inputs, and bad input.

mod common;

use common::*;
use ndarray::{Array1, Array3, Array4};
use segblocks::ops::conv::{Conv2d, Conv2dParams};
use segblocks::ops::norm::{
    adain, fold_batch_norm, BatchNorm2d, BatchNorm2dParams, GlobalResponseNorm,
    GlobalResponseNormParams, GroupNorm, GroupNormParams, InstanceNorm2d, InstanceNorm2dParams,
    LayerNorm, LayerNormParams, NormalizedShape,
};
use segblocks::{reference, Error, Tensor};

/// Normalised outputs are O(|gamma| * |x_hat| + |beta|); the statistics are f32 sums over
/// the segment, so the error grows with the segment length only through rounding of
/// O(1) values: 1e-4 relative is a loose bound for the sizes tested here.
fn tol(want: &Array4<f32>) -> Array4<f32> {
    want.mapv(|v| 1e-4 * (1.0 + v.abs()))
}

fn down(t: &Tensor) -> Array4<f32> {
    gpu().download(t).unwrap()
}

fn affine(r: &mut rand::rngs::StdRng, c: usize) -> (Array1<f32>, Array1<f32>) {
    (random1(r, c).mapv(|v| 1.0 + 0.5 * v), random1(r, c))
}

/// Group norm with `params` and the affine `(g, b)` on `x` (uploaded as `xt`), on the GPU
/// against the reference; returns the GPU's output.
fn check_group_norm(
    params: GroupNormParams,
    (g, b): (&Array1<f32>, &Array1<f32>),
    (x, xt): (&Array4<f32>, &Tensor),
    what: &str,
) -> Array4<f32> {
    let gpu = gpu();
    let gn = GroupNorm::new(gpu, params, Some(g.view()), Some(b.view())).unwrap();
    let mut rec = gpu.recorder();
    let y = gn.forward(&mut rec, xt).unwrap();
    let got = rec.download(&y).unwrap();
    let want = reference::norm::group_norm(&params, x.view(), g.view(), b.view()).unwrap();
    assert_close(got.view(), want.view(), tol(&want).view(), what);
    got
}

/// The running statistics recorded before a training step are the values before it, for
/// every channel count: one channel included, whose mean would otherwise be the first
/// channels of the updated buffer (a view).
#[test]
fn recorded_running_statistics_are_snapshots() {
    let gpu = gpu();
    let mut r = rng(31);
    for c in [1, 3, 12] {
        let params = BatchNorm2dParams::new(c);
        let rm = random1(&mut r, c);
        let rv = random1(&mut r, c).mapv(|v| 1.0 + v.abs());
        let bn = BatchNorm2d::new(gpu, params, None, None)
            .and_then(|bn| bn.with_running_stats(rm.view(), rv.view()))
            .unwrap();
        let x = random4(&mut r, [2, c, 3, 4]).mapv(|v| 5.0 * v + 3.0);
        let xt = gpu.upload(x.view()).unwrap();
        let mut rec = gpu.recorder();
        let (mean, var) = bn.record_running_stats(&mut rec).unwrap();
        bn.forward_train(&mut rec, &xt).unwrap();
        let got = rec.download_many(&[&mean, &var]).unwrap();
        let flat = |a: &Array4<f32>| a.iter().copied().collect::<Vec<_>>();
        assert_eq!(flat(&got[0]), rm.to_vec(), "running mean, {c} channels");
        assert_eq!(flat(&got[1]), rv.to_vec(), "running var, {c} channels");
        // And the step did update them.
        let (after, _) = bn.running_stats().unwrap();
        assert_ne!(after.to_vec(), rm.to_vec(), "{c} channels");
    }
}

#[test]
fn batch_norm_training_updates_running_statistics() {
    let gpu = gpu();
    let mut r = rng(1);
    for (shape, momentum) in [
        ([2, 3, 5, 7], Some(0.1)),
        ([1, 4, 6, 6], Some(0.3)),
        ([3, 2, 1, 2], None),
    ] {
        let c = shape[1];
        let params = BatchNorm2dParams::new(c).momentum(momentum);
        let (g, b) = affine(&mut r, c);
        let rm = random1(&mut r, c);
        let rv = random1(&mut r, c).mapv(|v| 1.0 + v.abs());
        let bn = BatchNorm2d::new(gpu, params, Some(g.view()), Some(b.view()))
            .and_then(|bn| bn.with_running_stats(rm.view(), rv.view()))
            .unwrap();
        let (mut want_rm, mut want_rv) = (rm.clone(), rv.clone());
        for step in 1..=3u64 {
            let x = random4(&mut r, shape).mapv(|v| 3.0 * v + 2.0);
            let factor = momentum.unwrap_or(1.0 / step as f32);
            let want = reference::norm::batch_norm_train(
                &params,
                x.view(),
                g.view(),
                b.view(),
                want_rm.view(),
                want_rv.view(),
                factor,
            )
            .unwrap();
            let xt = gpu.upload(x.view()).unwrap();
            let mut rec = gpu.recorder();
            let (y, _) = bn.forward_train(&mut rec, &xt).unwrap();
            let got = rec.download(&y).unwrap();
            assert_close(
                got.view(),
                want.output.view(),
                tol(&want.output).view(),
                &format!("train {shape:?} step {step}"),
            );
            let (grm, grv) = bn.running_stats().unwrap();
            for i in 0..c {
                assert!(
                    (grm[i] - want.running_mean[i]).abs()
                        < 1e-5 * (1.0 + want.running_mean[i].abs()),
                    "running mean {grm} vs {}",
                    want.running_mean
                );
                assert!(
                    (grv[i] - want.running_var[i]).abs() < 1e-5 * (1.0 + want.running_var[i].abs()),
                    "running var {grv} vs {}",
                    want.running_var
                );
            }
            want_rm = want.running_mean;
            want_rv = want.running_var;
            assert_eq!(bn.num_batches_tracked(), step);
        }
        // Inference with the running statistics the training produced.
        let x = random4(&mut r, shape);
        let want = reference::norm::batch_norm_eval(
            &params,
            x.view(),
            g.view(),
            b.view(),
            want_rm.view(),
            want_rv.view(),
        )
        .unwrap();
        let xt = gpu.upload(x.view()).unwrap();
        let mut rec = gpu.recorder();
        let y = bn.forward_eval(&mut rec, &xt).unwrap();
        assert_close(
            rec.download(&y).unwrap().view(),
            want.view(),
            tol(&want).view(),
            "eval",
        );
    }
}

#[test]
fn batch_norm_without_running_statistics_uses_the_batch() {
    let gpu = gpu();
    let mut r = rng(2);
    let params = BatchNorm2dParams::new(3)
        .track_running_stats(false)
        .affine(false);
    let bn = BatchNorm2d::new(gpu, params, None, None).unwrap();
    let x = random4(&mut r, [2, 3, 4, 5]);
    let ones = Array1::ones(3);
    let zeros = Array1::zeros(3);
    let want = reference::norm::batch_norm_train(
        &params,
        x.view(),
        ones.view(),
        zeros.view(),
        zeros.view(),
        ones.view(),
        0.0,
    )
    .unwrap();
    let xt = gpu.upload(x.view()).unwrap();
    let mut rec = gpu.recorder();
    let y = bn.forward_eval(&mut rec, &xt).unwrap();
    assert_close(
        rec.download(&y).unwrap().view(),
        want.output.view(),
        tol(&want.output).view(),
        "eval without running stats",
    );
    assert_eq!(bn.num_batches_tracked(), 0);
}

#[test]
fn batch_norm_backward_matches_the_seed_formulas() {
    let gpu = gpu();
    let mut r = rng(3);
    for shape in [[2, 3, 5, 7], [1, 2, 3, 3], [4, 1, 2, 2]] {
        let c = shape[1];
        let params = BatchNorm2dParams::new(c);
        let (g, b) = affine(&mut r, c);
        let bn = BatchNorm2d::new(gpu, params, Some(g.view()), Some(b.view()))
            .and_then(|bn| bn.with_running_stats(Array1::zeros(c).view(), Array1::ones(c).view()))
            .unwrap();
        let x = random4(&mut r, shape);
        let dy = random4(&mut r, shape);
        let (want_dx, want_dg, want_db) =
            reference::norm::batch_norm_backward(&params, x.view(), dy.view(), g.view()).unwrap();
        let (xt, dyt) = (
            gpu.upload(x.view()).unwrap(),
            gpu.upload(dy.view()).unwrap(),
        );
        let mut rec = gpu.recorder();
        let (_, saved) = bn.forward_train(&mut rec, &xt).unwrap();
        let grads = bn.backward(&mut rec, &xt, &dyt, &saved).unwrap();
        rec.submit().unwrap();
        assert_close(
            down(&grads.grad_input).view(),
            want_dx.view(),
            tol(&want_dx).view(),
            "grad_input",
        );
        let m = (shape[0] * shape[2] * shape[3]) as f32;
        let gw = down(&grads.grad_weight);
        let gb = down(&grads.grad_bias);
        for i in 0..c {
            assert!(
                (gw[[0, i, 0, 0]] - want_dg[i]).abs() < 1e-5 * m,
                "dgamma {gw:?} vs {want_dg}"
            );
            assert!(
                (gb[[0, i, 0, 0]] - want_db[i]).abs() < 1e-5 * m,
                "dbeta {gb:?} vs {want_db}"
            );
        }
        // Sanity of the formula itself: dx sums to zero per channel (shift invariance).
        for i in 0..c {
            let s: f32 = want_dx.slice(ndarray::s![.., i, .., ..]).sum();
            assert!(s.abs() < 1e-4, "{s}");
        }
    }
}

#[test]
fn folding_batch_norm_into_the_convolution_changes_nothing() {
    let gpu = gpu();
    let mut r = rng(4);
    let conv_params = Conv2dParams::new(3, 6, 3).padding(1);
    let w = random4(&mut r, conv_params.weight_shape());
    let cb = random1(&mut r, 6);
    let (g, b) = affine(&mut r, 6);
    let rm = random1(&mut r, 6);
    let rv = random1(&mut r, 6).mapv(|v| 0.5 + v.abs());
    let bn_params = BatchNorm2dParams::new(6);
    let conv = Conv2d::new(gpu, conv_params, w.view(), Some(cb.view())).unwrap();
    let bn = BatchNorm2d::new(gpu, bn_params, Some(g.view()), Some(b.view()))
        .and_then(|bn| bn.with_running_stats(rm.view(), rv.view()))
        .unwrap();
    let (fw, fb) = fold_batch_norm(
        w.view(),
        Some(cb.view()),
        g.view(),
        b.view(),
        rm.view(),
        rv.view(),
        1e-5,
    )
    .unwrap();
    let folded = Conv2d::new(gpu, conv_params, fw.view(), Some(fb.view())).unwrap();
    let x = random4(&mut r, [2, 3, 9, 8]);
    let xt = gpu.upload(x.view()).unwrap();
    let mut rec = gpu.recorder();
    let mid = conv.forward(&mut rec, &xt).unwrap();
    let two = bn.forward_eval(&mut rec, &mid).unwrap();
    let one = folded.forward(&mut rec, &xt).unwrap();
    rec.submit().unwrap();
    let (two, one) = (down(&two), down(&one));
    assert_close(
        one.view(),
        two.view(),
        tol(&two).view(),
        "folded vs unfolded",
    );
}

#[test]
fn group_layer_and_instance_norm_and_their_identities() {
    let gpu = gpu();
    let mut r = rng(5);
    let shape = [2, 6, 5, 7];
    let x = random4(&mut r, shape).mapv(|v| 2.0 * v - 1.0);
    let xt = gpu.upload(x.view()).unwrap();
    let (g, b) = affine(&mut r, 6);
    let run_group = |groups: usize| {
        check_group_norm(
            GroupNormParams::new(groups, 6),
            (&g, &b),
            (&x, &xt),
            &format!("group norm G={groups}"),
        )
    };
    let g1 = run_group(1);
    let g2 = run_group(2);
    let g6 = run_group(6);
    assert_ne!(g1, g2);
    // G = 1 is layer norm with a per-channel affine.
    let g3 = Array3::from_shape_fn((6, 5, 7), |(c, _, _)| g[c]);
    let b3 = Array3::from_shape_fn((6, 5, 7), |(c, _, _)| b[c]);
    let ln = LayerNorm::new(
        gpu,
        LayerNormParams::new([6, 5, 7]).eps(1e-5),
        Some(g3.view().into_dyn()),
        Some(b3.view().into_dyn()),
    )
    .unwrap();
    let mut rec = gpu.recorder();
    let y = ln.forward(&mut rec, &xt).unwrap();
    let layer = rec.download(&y).unwrap();
    assert_close(
        layer.view(),
        g1.view(),
        tol(&g1).view(),
        "G=1 == layer norm",
    );
    let want = reference::norm::layer_norm(
        &LayerNormParams::new([x.shape()[1], x.shape()[2], x.shape()[3]]).eps(1e-5),
        x.view(),
        g3.view().into_dyn(),
        b3.view().into_dyn(),
    )
    .unwrap();
    assert_close(layer.view(), want.view(), tol(&want).view(), "layer norm");
    // G = C is instance norm.
    let inorm = InstanceNorm2d::new(
        gpu,
        InstanceNorm2dParams::new(6).eps(1e-5).affine(true),
        Some(g.view()),
        Some(b.view()),
    )
    .unwrap();
    let mut rec = gpu.recorder();
    let y = inorm.forward(&mut rec, &xt).unwrap();
    let inst = rec.download(&y).unwrap();
    assert_close(
        inst.view(),
        g6.view(),
        tol(&g6).view(),
        "G=C == instance norm",
    );
    let want = reference::norm::instance_norm(
        &InstanceNorm2dParams::new(x.shape()[1])
            .eps(1e-5)
            .affine(true),
        x.view(),
        g.view(),
        b.view(),
    )
    .unwrap();
    assert_close(inst.view(), want.view(), tol(&want).view(), "instance norm");
    // Layer norm with an elementwise (not per-channel) affine.
    let g3 = Array3::from_shape_fn((6, 5, 7), |(c, h, w)| {
        0.5 + ((c + h * 3 + w) % 5) as f32 * 0.3
    });
    let b3 = Array3::from_shape_fn((6, 5, 7), |(c, h, w)| {
        ((c * 7 + h + w * 2) % 3) as f32 - 1.0
    });
    let ln = LayerNorm::new(
        gpu,
        LayerNormParams::new([6, 5, 7]).eps(1e-3),
        Some(g3.view().into_dyn()),
        Some(b3.view().into_dyn()),
    )
    .unwrap();
    let mut rec = gpu.recorder();
    let y = ln.forward(&mut rec, &xt).unwrap();
    let want = reference::norm::layer_norm(
        &LayerNormParams::new([x.shape()[1], x.shape()[2], x.shape()[3]]).eps(1e-3),
        x.view(),
        g3.view().into_dyn(),
        b3.view().into_dyn(),
    )
    .unwrap();
    assert_close(
        rec.download(&y).unwrap().view(),
        want.view(),
        tol(&want).view(),
        "layer norm elementwise",
    );
}

/// Segments longer than one workgroup's loops are split into parts and merged (Mesa ends
/// an invocation after 65,535 loop iterations and used to return wrong statistics past
/// it): along the runs of a channel (many samples of one value), along one long run
/// (one group of 2.25 M values), and along both, forward and backward.
#[test]
fn statistics_of_segments_longer_than_one_workgroup_can_loop() {
    let gpu = gpu();
    let mut r = rng(8);
    for shape in [[16384, 2, 1, 1], [100, 2, 100, 100]] {
        let c = shape[1];
        let params = BatchNorm2dParams::new(c);
        let (g, b) = affine(&mut r, c);
        let (rm, rv) = (Array1::zeros(c), Array1::ones(c));
        let bn = BatchNorm2d::new(gpu, params, Some(g.view()), Some(b.view())).unwrap();
        let x = random4(&mut r, shape).mapv(|v| 3.0 * v + 2.0);
        let dy = random4(&mut r, shape);
        let want = reference::norm::batch_norm_train(
            &params,
            x.view(),
            g.view(),
            b.view(),
            rm.view(),
            rv.view(),
            0.1,
        )
        .unwrap();
        let (want_dx, want_dg, _) =
            reference::norm::batch_norm_backward(&params, x.view(), dy.view(), g.view()).unwrap();
        let (xt, dyt) = (
            gpu.upload(x.view()).unwrap(),
            gpu.upload(dy.view()).unwrap(),
        );
        let mut rec = gpu.recorder();
        let (y, saved) = bn.forward_train(&mut rec, &xt).unwrap();
        let grads = bn.backward(&mut rec, &xt, &dyt, &saved).unwrap();
        let out = rec
            .download_many(&[&y, &grads.grad_input, &grads.grad_weight])
            .unwrap();
        let what = format!("batch norm {shape:?}");
        assert_close(
            out[0].view(),
            want.output.view(),
            tol(&want.output).view(),
            &what,
        );
        assert_close(out[1].view(), want_dx.view(), tol(&want_dx).view(), &what);
        let (grm, grv) = bn.running_stats().unwrap();
        let m = (shape[0] * shape[2] * shape[3]) as f32;
        for i in 0..c {
            assert!(
                (grm[i] - want.running_mean[i]).abs() < 1e-4,
                "{what}: {grm}"
            );
            assert!((grv[i] - want.running_var[i]).abs() < 1e-4, "{what}: {grv}");
            assert!(
                (out[2][[0, i, 0, 0]] - want_dg[i]).abs() < 1e-5 * m,
                "{what}"
            );
        }
    }
    let params = GroupNormParams::new(1, 1);
    let x = random4(&mut r, [1, 1, 1500, 1500]).mapv(|v| v + 0.5);
    let (one, zero) = (Array1::ones(1), Array1::zeros(1));
    let want = reference::norm::group_norm(&params, x.view(), one.view(), zero.view()).unwrap();
    let gn = GroupNorm::new(gpu, params, None, None).unwrap();
    let mut rec = gpu.recorder();
    let y = gn
        .forward(&mut rec, &gpu.upload(x.view()).unwrap())
        .unwrap();
    let got = rec.download(&y).unwrap();
    assert_close(
        got.view(),
        want.view(),
        tol(&want).view(),
        "group norm of 2.25 M",
    );
}

/// Norms with nothing per channel (no affine, no running statistics) take any channel
/// count, as PyTorch does: `BatchNorm2d(3, affine=False, track_running_stats=False)` and
/// `InstanceNorm2d(3)` on 5 channels, `GroupNorm(2, 4, affine=False)` on 6; with
/// something per channel, or channels that the groups do not divide, they are refused.
/// The reference takes the input's channel count for its per-channel vectors.
#[test]
fn norms_with_nothing_per_channel_take_any_channel_count() {
    let gpu = gpu();
    let mut r = rng(8);
    let x = random4(&mut r, [2, 5, 4, 6]);
    let dy = random4(&mut r, [2, 5, 4, 6]);
    let xt = gpu.upload(x.view()).unwrap();
    let (ones, zeros) = (Array1::<f32>::ones(5), Array1::<f32>::zeros(5));
    let bare = BatchNorm2dParams::new(3)
        .affine(false)
        .track_running_stats(false);
    let bn = BatchNorm2d::new(gpu, bare, None, None).unwrap();
    let want = reference::norm::batch_norm_train(
        &bare,
        x.view(),
        ones.view(),
        zeros.view(),
        zeros.view(),
        ones.view(),
        0.1,
    )
    .unwrap()
    .output;
    let mut rec = gpu.recorder();
    let eval = bn.forward_eval(&mut rec, &xt).unwrap();
    let (train, saved) = bn.forward_train(&mut rec, &xt).unwrap();
    let dyt = gpu.upload(dy.view()).unwrap();
    let grads = bn.backward(&mut rec, &xt, &dyt, &saved).unwrap();
    rec.submit().unwrap();
    for (what, t) in [("batch norm eval", &eval), ("batch norm train", &train)] {
        assert_close(down(t).view(), want.view(), tol(&want).view(), what);
    }
    let (want_dx, _, _) =
        reference::norm::batch_norm_backward(&bare, x.view(), dy.view(), ones.view()).unwrap();
    let dx = down(&grads.grad_input);
    assert_close(dx.view(), want_dx.view(), tol(&want_dx).view(), "backward");

    let inorm = InstanceNorm2dParams::new(3);
    let layer = InstanceNorm2d::new(gpu, inorm, None, None).unwrap();
    let mut rec = gpu.recorder();
    let y = layer.forward(&mut rec, &xt).unwrap();
    let got = rec.download(&y).unwrap();
    let want = reference::norm::instance_norm(&inorm, x.view(), ones.view(), zeros.view()).unwrap();
    assert_close(got.view(), want.view(), tol(&want).view(), "instance norm");

    let six = random4(&mut r, [1, 6, 3, 5]);
    let sixt = gpu.upload(six.view()).unwrap();
    let gn = GroupNormParams::new(2, 4).affine(false);
    let layer = GroupNorm::new(gpu, gn, None, None).unwrap();
    let mut rec = gpu.recorder();
    let y = layer.forward(&mut rec, &sixt).unwrap();
    let got = rec.download(&y).unwrap();
    let (ones6, zeros6) = (Array1::<f32>::ones(6), Array1::<f32>::zeros(6));
    let want = reference::norm::group_norm(&gn, six.view(), ones6.view(), zeros6.view()).unwrap();
    assert_close(got.view(), want.view(), tol(&want).view(), "group norm");

    // Refused: 5 channels in 2 groups; an affine or running statistics of 3 channels.
    expect_param(gn.output_shape([1, 5, 3, 5]), "input");
    let shape = [2, 5, 4, 6];
    for refused in [
        BatchNorm2dParams::new(3).output_shape(shape),
        BatchNorm2dParams::new(3).affine(false).output_shape(shape),
        BatchNorm2dParams::new(3)
            .track_running_stats(false)
            .output_shape(shape),
        InstanceNorm2dParams::new(3)
            .affine(true)
            .output_shape(shape),
        InstanceNorm2dParams::new(3)
            .track_running_stats(true)
            .output_shape(shape),
        GroupNormParams::new(1, 3).output_shape(shape),
    ] {
        assert!(
            matches!(refused, Err(Error::ShapeMismatch { name: "input", .. })),
            "{refused:?}"
        );
    }
    // The reference refuses per-channel vectors of another length by name.
    let short = Array1::<f32>::ones(3);
    let err = reference::norm::instance_norm(&inorm, x.view(), short.view(), zeros.view());
    assert!(
        matches!(err, Err(Error::ShapeMismatch { name: "gamma", .. })),
        "{err:?}"
    );
}

#[test]
fn adain_transfers_style_statistics() {
    let gpu = gpu();
    let mut r = rng(6);
    let content = random4(&mut r, [2, 3, 6, 5]);
    let style = random4(&mut r, [2, 3, 9, 4]).mapv(|v| 4.0 * v + 3.0);
    let want = reference::norm::adain(content.view(), style.view(), 1e-5).unwrap();
    let (ct, st) = (
        gpu.upload(content.view()).unwrap(),
        gpu.upload(style.view()).unwrap(),
    );
    let mut rec = gpu.recorder();
    let y = adain(&mut rec, &ct, &st, 1e-5).unwrap();
    let got = rec.download(&y).unwrap();
    assert_close(got.view(), want.view(), tol(&want).view(), "adain");
}

#[test]
fn statistics_stay_accurate_on_hard_inputs() {
    let gpu = gpu();
    let mut r = rng(7);
    // Values around 50 with unit spread, and a large plane (1 x 4 x 512 x 512).
    for shape in [[2, 3, 17, 19], [1, 4, 512, 512]] {
        let x = random4(&mut r, shape).mapv(|v| 50.0 + v);
        let c = shape[1];
        let ones = Array1::ones(c);
        let zeros = Array1::zeros(c);
        let inorm =
            InstanceNorm2d::new(gpu, InstanceNorm2dParams::new(c).eps(1e-5), None, None).unwrap();
        let xt = gpu.upload(x.view()).unwrap();
        let mut rec = gpu.recorder();
        let y = inorm.forward(&mut rec, &xt).unwrap();
        let got = rec.download(&y).unwrap();
        let want = reference::norm::instance_norm(
            &InstanceNorm2dParams::new(x.shape()[1])
                .eps(1e-5)
                .affine(true),
            x.view(),
            ones.view(),
            zeros.view(),
        )
        .unwrap();
        // The normalised values are O(1): a naive E[x^2] - E[x]^2 in f32 would lose all
        // digits of the unit variance against 50^2 here.
        let t = want.mapv(|_| 2e-3);
        assert_close(
            got.view(),
            want.view(),
            t.view(),
            &format!("instance norm, mean 50, {shape:?}"),
        );
        let bn = BatchNorm2d::new(gpu, BatchNorm2dParams::new(c), None, None).unwrap();
        let mut rec = gpu.recorder();
        let (y, _) = bn.forward_train(&mut rec, &xt).unwrap();
        let got = rec.download(&y).unwrap();
        let want = reference::norm::batch_norm_train(
            &BatchNorm2dParams::new(c),
            x.view(),
            ones.view(),
            zeros.view(),
            zeros.view(),
            ones.view(),
            0.1,
        )
        .unwrap();
        assert_close(
            got.view(),
            want.output.view(),
            t.view(),
            &format!("batch norm, mean 50, {shape:?}"),
        );
    }
}

fn expect_param(result: segblocks::Result<impl std::fmt::Debug>, name: &str) {
    match result {
        Err(Error::InvalidParam { name: n, reason }) => assert_eq!(n, name, "{reason}"),
        other => panic!("expected InvalidParam({name}), got {other:?}"),
    }
}

/// eps = 0, which PyTorch takes: the statistics of random planes normalise as usual.
#[test]
fn zero_eps_normalises_as_pytorch() {
    let gpu = gpu();
    let mut r = rng(14);
    let x = random4(&mut r, [2, 4, 5, 3]);
    let xt = gpu.upload(x.view()).unwrap();
    let (g, b) = affine(&mut r, 4);
    let p = GroupNormParams::new(2, 4).eps(0.0);
    check_group_norm(p, (&g, &b), (&x, &xt), "group norm, eps 0");
    let p = InstanceNorm2dParams::new(4).eps(0.0);
    let inorm = InstanceNorm2d::new(gpu, p, None, None).unwrap();
    let mut rec = gpu.recorder();
    let y = inorm.forward(&mut rec, &xt).unwrap();
    let got = rec.download(&y).unwrap();
    let (one, zero) = (Array1::ones(4), Array1::zeros(4));
    let want = reference::norm::instance_norm(&p, x.view(), one.view(), zero.view()).unwrap();
    assert_close(
        got.view(),
        want.view(),
        tol(&want).view(),
        "instance norm, eps 0",
    );
}

#[test]
fn bad_input_is_a_typed_error() {
    let gpu = gpu();
    expect_param(
        GroupNormParams::new(4, 6).output_shape([1, 6, 2, 2]),
        "num_groups",
    );
    expect_param(
        GroupNormParams::new(0, 6).output_shape([1, 6, 2, 2]),
        "num_groups",
    );
    for eps in [-1.0, f32::NAN, f32::INFINITY] {
        expect_param(
            BatchNorm2dParams::new(3)
                .eps(eps)
                .output_shape([1, 3, 2, 2]),
            "eps",
        );
        expect_param(
            GroupNormParams::new(1, 3)
                .eps(eps)
                .output_shape([1, 3, 2, 2]),
            "eps",
        );
    }
    expect_param(
        BatchNorm2dParams::new(3)
            .momentum(Some(f32::NAN))
            .output_shape([1, 3, 2, 2]),
        "momentum",
    );
    assert!(matches!(
        BatchNorm2d::new(
            gpu,
            BatchNorm2dParams::new(3),
            Some(Array1::ones(2).view()),
            Some(Array1::zeros(3).view())
        )
        .and_then(|bn| bn.with_running_stats(Array1::zeros(3).view(), Array1::ones(3).view())),
        Err(Error::ShapeMismatch { name: "weight", .. })
    ));
    assert!(matches!(
        GroupNorm::new(
            gpu,
            GroupNormParams::new(1, 3),
            Some(Array1::ones(3).view()),
            Some(Array1::zeros(4).view())
        ),
        Err(Error::ShapeMismatch { name: "bias", .. })
    ));
    // Training with one value per channel is refused, as in PyTorch.
    let bn = BatchNorm2d::new(gpu, BatchNorm2dParams::new(3), None, None).unwrap();
    let x = gpu.upload(Array4::zeros([1, 3, 1, 1]).view()).unwrap();
    let mut rec = gpu.recorder();
    expect_param(bn.forward_train(&mut rec, &x), "input");
    // Wrong channel count; style and content with different channels.
    let x4 = gpu.upload(Array4::zeros([1, 4, 2, 2]).view()).unwrap();
    assert!(matches!(
        bn.forward_eval(&mut rec, &x4),
        Err(Error::ShapeMismatch { name: "input", .. })
    ));
    let x3 = gpu.upload(Array4::zeros([1, 3, 2, 2]).view()).unwrap();
    assert!(matches!(
        adain(&mut rec, &x3, &x4, 1e-5),
        Err(Error::ShapeMismatch { name: "style", .. })
    ));
    expect_param(adain(&mut rec, &x3, &x3, -1e-5), "eps");
    assert!(matches!(
        LayerNorm::new(gpu, LayerNormParams::new([3, 2, 2]).eps(1e-5), None, None)
            .unwrap()
            .forward(&mut rec, &x4),
        Err(Error::ShapeMismatch { name: "input", .. })
    ));
    // Layer norm over the trailing dimensions: [W] must be the input's last dimension.
    assert!(matches!(
        LayerNorm::new(gpu, LayerNormParams::new(3), None, None)
            .unwrap()
            .forward(&mut rec, &x4),
        Err(Error::ShapeMismatch { name: "input", .. })
    ));
    // A bias for a layer norm without one; a zero-sized normalized shape.
    let w = ndarray::ArrayD::<f32>::ones(ndarray::IxDyn(&[2, 2]));
    let params = LayerNormParams::new([2, 2]).bias(false);
    let with_bias = LayerNorm::new(gpu, params, Some(w.view()), Some(w.view()));
    expect_param(with_bias, "bias");
    expect_param(
        LayerNorm::new(gpu, LayerNormParams::new([0, 2]), None, None),
        "normalized_shape",
    );
    // Running statistics for an instance norm that does not track them, or of the wrong
    // length for one that does.
    let stats = Array1::<f32>::ones(3);
    let plain = InstanceNorm2d::new(gpu, InstanceNorm2dParams::new(3), None, None).unwrap();
    expect_param(
        plain.with_running_stats(stats.view(), stats.view()),
        "track_running_stats",
    );
    let tracking = InstanceNorm2dParams::new(4).track_running_stats(true);
    let tracked = InstanceNorm2d::new(gpu, tracking, None, None).unwrap();
    assert!(tracked
        .with_running_stats(stats.view(), stats.view())
        .is_err());
}

#[test]
fn layer_norm_over_rows_and_planes_matches_reference() {
    // [W] and [H, W] at batch 2, W not a multiple of the kernel's 16-element strips (the
    // strips cross rows), with and without a bias.
    let gpu = gpu();
    let x = random4(&mut rng(9), [2, 3, 5, 7]);
    let xt = gpu.upload(x.view()).unwrap();
    for (dims, bias) in [(vec![7], true), (vec![5, 7], true), (vec![7], false)] {
        let shape = ndarray::IxDyn(&dims);
        let g = ndarray::ArrayD::from_shape_fn(shape.clone(), |i: ndarray::IxDyn| {
            0.5 + (ndarray::Dimension::slice(&i).iter().sum::<usize>() % 3) as f32 * 0.4
        });
        let b = ndarray::ArrayD::from_shape_fn(shape, |i: ndarray::IxDyn| {
            (ndarray::Dimension::slice(&i).iter().sum::<usize>() % 4) as f32 * 0.25 - 0.3
        });
        let normalized: NormalizedShape = match dims.len() {
            1 => dims[0].into(),
            _ => [dims[0], dims[1]].into(),
        };
        let params = LayerNormParams::new(normalized).bias(bias);
        let ln = LayerNorm::new(gpu, params, Some(g.view()), bias.then(|| b.view())).unwrap();
        let mut rec = gpu.recorder();
        let y = ln.forward(&mut rec, &xt).unwrap();
        let zeros = ndarray::ArrayD::zeros(g.shape());
        let beta = if bias { b.view() } else { zeros.view() };
        let want = reference::norm::layer_norm(&params, x.view(), g.view(), beta).unwrap();
        assert_close(
            rec.download(&y).unwrap().view(),
            want.view(),
            tol(&want).view(),
            &format!("layer norm over {dims:?}, bias {bias}"),
        );
    }
}

#[test]
fn costs_count_bytes() {
    let c = BatchNorm2dParams::new(64).cost([1, 64, 112, 112]).unwrap();
    assert_eq!(c.params, 128);
    assert_eq!(c.bytes, 4 * (4 * 64 * 112 * 112 + 2 * 128));
    assert_eq!(
        GroupNormParams::new(32, 256)
            .cost([1, 256, 28, 28])
            .unwrap()
            .params,
        512
    );
}

/// A NaN or an infinity in a normalised segment makes every output of that segment NaN
/// (its mean or variance is NaN, as in PyTorch), and leaves the other segments alone:
/// group norm (2 groups, and 4: one channel each) and batch norm in training, GPU against
/// the reference; the NaN planes are those PyTorch 2.15 gives for the same positions. Passes
/// on lavapipe, GL and SwiftShader.
#[test]
fn non_finite_values_make_their_segment_nan() {
    let gpu = gpu();
    let mut r = rng(31);
    let shape = [2, 4, 5, 6];
    let mut x = random4(&mut r, shape);
    x[[0, 1, 2, 3]] = f32::NAN;
    x[[1, 2, 0, 0]] = f32::INFINITY;
    x[[1, 3, 4, 5]] = f32::NEG_INFINITY;
    let xt = gpu.upload(x.view()).unwrap();
    let (g, b) = affine(&mut r, 4);
    // Compares NaN with NaN, finite values within tol; returns which (sample, channel)
    // planes came out all NaN.
    let check = |got: &Array4<f32>, want: &Array4<f32>, what: &str| -> Vec<(usize, usize)> {
        assert_close_non_finite(got.view(), want.view(), tol(want).view(), what);
        let mut nan_planes = Vec::new();
        for n in 0..shape[0] {
            for c in 0..shape[1] {
                let plane = got.slice(ndarray::s![n, c, .., ..]);
                if plane.iter().all(|v| v.is_nan()) {
                    nan_planes.push((n, c));
                } else {
                    assert!(
                        plane.iter().all(|v| v.is_finite()),
                        "{what}: plane {n},{c} mixed"
                    );
                }
            }
        }
        nan_planes
    };
    for (groups, poisoned) in [
        (2, vec![(0, 0), (0, 1), (1, 2), (1, 3)]),
        (4, vec![(0, 1), (1, 2), (1, 3)]),
    ] {
        let params = GroupNormParams::new(groups, 4);
        let gn = GroupNorm::new(gpu, params, Some(g.view()), Some(b.view())).unwrap();
        let mut rec = gpu.recorder();
        let y = gn.forward(&mut rec, &xt).unwrap();
        let got = rec.download(&y).unwrap();
        let want = reference::norm::group_norm(&params, x.view(), g.view(), b.view()).unwrap();
        let what = format!("group norm G={groups}");
        assert_eq!(check(&got, &want, &what), poisoned, "{what}");
    }
    let params = BatchNorm2dParams::new(4);
    let bn = BatchNorm2d::new(gpu, params, Some(g.view()), Some(b.view())).unwrap();
    let mut rec = gpu.recorder();
    let (y, _) = bn.forward_train(&mut rec, &xt).unwrap();
    let got = rec.download(&y).unwrap();
    let (rm, rv) = (Array1::zeros(4), Array1::ones(4));
    let want = reference::norm::batch_norm_train(
        &params,
        x.view(),
        g.view(),
        b.view(),
        rm.view(),
        rv.view(),
        0.1,
    )
    .unwrap()
    .output;
    let channels_1_to_3 = vec![(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3)];
    assert_eq!(check(&got, &want, "batch norm"), channels_1_to_3);
}

/// ConvNeXt V2's global response norm, the whole norm and its scale alone: one-pixel
/// planes, odd sizes, more channels than a workgroup has invocations, planes long enough
/// for split statistics, an offset (the norm of a plane far from zero mean), batch 1 to 3;
/// bad parameters and inputs are typed errors.
#[test]
fn global_response_norm_matches_the_reference() {
    let gpu = gpu();
    let mut r = rng(61);
    for (shape, offset) in [
        ([2, 5, 7, 3], 0.0),
        ([1, 3, 1, 1], 0.5),
        ([3, 70, 4, 4], 3.0),
        ([1, 6, 150, 151], 1.0),
    ] {
        let c = shape[1];
        let x = random4(&mut r, shape).mapv(|v| v + offset);
        let (weight, bias) = affine(&mut r, c);
        let params = GlobalResponseNormParams::new(c);
        let grn = GlobalResponseNorm::new(gpu, params, weight.view(), bias.view()).unwrap();
        let mut rec = gpu.recorder();
        let xt = gpu.upload(x.view()).unwrap();
        let y = grn.forward(&mut rec, &xt).unwrap();
        let scale = grn.scale(&mut rec, &xt).unwrap();
        rec.submit().unwrap();
        let want =
            reference::norm::global_response_norm(&params, x.view(), weight.view(), bias.view())
                .unwrap();
        let want_scale =
            reference::norm::global_response_norm_scale(&params, x.view(), weight.view()).unwrap();
        assert_close(
            down(&y).view(),
            want.view(),
            tol(&want).view(),
            &format!("grn {shape:?}"),
        );
        assert_close(
            down(&scale).view(),
            want_scale.view(),
            tol(&want_scale).view(),
            &format!("grn scale {shape:?}"),
        );
    }
    let (weight, bias) = affine(&mut r, 4);
    let params = GlobalResponseNormParams::new(4);
    expect_param(
        GlobalResponseNorm::new(gpu, params.eps(-1.0), weight.view(), bias.view()),
        "eps",
    );
    expect_param(
        GlobalResponseNorm::new(
            gpu,
            GlobalResponseNormParams::new(0),
            weight.view(),
            bias.view(),
        ),
        "channels",
    );
    let short = Array1::zeros(3);
    let got = GlobalResponseNorm::new(gpu, params, short.view(), bias.view());
    assert!(
        matches!(&got, Err(Error::ShapeMismatch { name: "weight", .. })),
        "{got:?}"
    );
    let grn = GlobalResponseNorm::new(gpu, params, weight.view(), bias.view()).unwrap();
    let five = gpu.upload(random4(&mut r, [1, 5, 2, 2]).view()).unwrap();
    let got = grn.forward(&mut gpu.recorder(), &five);
    assert!(
        matches!(&got, Err(Error::ShapeMismatch { name: "input", .. })),
        "{got:?}"
    );
}
