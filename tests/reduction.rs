//! Workgroup reductions (`shaders/reduce.wgsl`): the global pooling and the normalisation
//! statistics with each [`Reduction`] forced (a tree in workgroup memory, and subgroup
//! operations where the adapter has them), against the CPU reference: odd plane sizes,
//! planes split over several workgroups, NaN in a max, batch norm forward and backward,
//! group norm and the global response norm.

mod common;

use common::*;
use ndarray::{Array1, Array4};
use segblocks::ops::norm::{
    BatchNorm2d, BatchNorm2dParams, GlobalResponseNorm, GlobalResponseNormParams, GroupNorm,
    GroupNormParams,
};
use segblocks::ops::pool::{global_pool, GlobalPool};
use segblocks::{reference, Error, Gpu, GpuOptions, Reduction};

/// A context with subgroups allowed or not; `None` when they are asked for and the
/// adapter has none (GL), after checking that the refusal names the feature.
fn context(subgroups: bool) -> Option<Gpu> {
    match Gpu::with_options(GpuOptions {
        subgroups: Some(subgroups),
        ..GpuOptions::default()
    }) {
        Ok(gpu) => {
            let want = if subgroups {
                Reduction::Subgroup
            } else {
                Reduction::Workgroup
            };
            assert_eq!(gpu.caps().reduction(), want);
            Some(gpu)
        }
        Err(Error::DeviceUnsupported { name, .. }) if subgroups => {
            assert_eq!(name, "SUBGROUP");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

fn check_pooling(gpu: &Gpu, what: &str) {
    let mut r = rng(21);
    // Odd planes (read one value at a time), vec4 planes, one plane of 4.2 M values that
    // is split over several workgroups, and many planes.
    for shape in [
        [2, 5, 7, 9],
        [1, 3, 1, 1],
        [3, 17, 16, 16],
        [1, 1, 2047, 2047],
    ] {
        let mut x = random4(&mut r, shape).mapv(|v| v + 0.5);
        for kind in [GlobalPool::Avg, GlobalPool::Max] {
            let want = reference::pool::global_pool(kind, x.view()).unwrap();
            let xt = gpu.upload(x.view()).unwrap();
            let mut rec = gpu.recorder();
            let y = global_pool(&mut rec, kind, &xt).unwrap();
            let got = rec.download(&y).unwrap();
            // f32 sums of up to 4.2 M values of one sign, combined blockwise.
            let tol = want.mapv(|v| 1e-5 * (1.0 + v.abs()));
            let case = format!("{what}: {kind:?} {shape:?}");
            assert_close(got.view(), want.view(), tol.view(), &case);
        }
        // One NaN in the last plane: its max is NaN, every other plane's is not.
        let last = [shape[0] - 1, shape[1] - 1, shape[2] / 2, shape[3] - 1];
        x[last] = f32::NAN;
        let xt = gpu.upload(x.view()).unwrap();
        let mut rec = gpu.recorder();
        let y = global_pool(&mut rec, GlobalPool::Max, &xt).unwrap();
        let got = rec.download(&y).unwrap();
        let want = reference::pool::global_pool(GlobalPool::Max, x.view()).unwrap();
        for (g, w) in got.iter().zip(want.iter()) {
            assert!(
                g.is_nan() == w.is_nan() && (w.is_nan() || g == w),
                "{what}: max with NaN {shape:?}: {g} vs {w}"
            );
        }
    }
}

fn check_norms(gpu: &Gpu, what: &str) {
    let mut r = rng(22);
    // Segments of 35 values, of 20,000 (several workgroups' loops: split and combined),
    // and one of 16,384 runs of a single value.
    for shape in [[2, 3, 5, 7], [2, 2, 100, 100], [16384, 2, 1, 1]] {
        let c = shape[1];
        let params = BatchNorm2dParams::new(c);
        let (g, b) = (
            random1(&mut r, c).mapv(|v| 1.0 + 0.5 * v),
            random1(&mut r, c),
        );
        let bn = BatchNorm2d::new(gpu, params, Some(g.view()), Some(b.view())).unwrap();
        let x = random4(&mut r, shape).mapv(|v| 3.0 * v + 2.0);
        let dy = random4(&mut r, shape);
        let (rm, rv) = (Array1::zeros(c), Array1::ones(c));
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
        let (want_dx, want_dg, want_db) =
            reference::norm::batch_norm_backward(&params, x.view(), dy.view(), g.view()).unwrap();
        let (xt, dyt) = (
            gpu.upload(x.view()).unwrap(),
            gpu.upload(dy.view()).unwrap(),
        );
        let mut rec = gpu.recorder();
        let (y, saved) = bn.forward_train(&mut rec, &xt).unwrap();
        let grads = bn.backward(&mut rec, &xt, &dyt, &saved).unwrap();
        let out = rec
            .download_many(&[&y, &grads.grad_input, &grads.grad_weight, &grads.grad_bias])
            .unwrap();
        let case = format!("{what}: batch norm {shape:?}");
        let tol = |a: &Array4<f32>| a.mapv(|v| 1e-4 * (1.0 + v.abs()));
        assert_close(
            out[0].view(),
            want.output.view(),
            tol(&want.output).view(),
            &case,
        );
        assert_close(out[1].view(), want_dx.view(), tol(&want_dx).view(), &case);
        // The parameter gradients are sums over the segment: bounded by its length.
        let m = (shape[0] * shape[2] * shape[3]) as f32;
        for i in 0..c {
            assert!(
                (out[2][[0, i, 0, 0]] - want_dg[i]).abs() < 1e-6 * m,
                "{case}"
            );
            assert!(
                (out[3][[0, i, 0, 0]] - want_db[i]).abs() < 1e-6 * m,
                "{case}"
            );
        }
    }
    let params = GroupNormParams::new(2, 6);
    let x = random4(&mut r, [2, 6, 37, 41]).mapv(|v| v + 0.5);
    let (one, zero) = (Array1::ones(6), Array1::zeros(6));
    let want = reference::norm::group_norm(&params, x.view(), one.view(), zero.view()).unwrap();
    let gn = GroupNorm::new(gpu, params, None, None).unwrap();
    let mut rec = gpu.recorder();
    let y = gn
        .forward(&mut rec, &gpu.upload(x.view()).unwrap())
        .unwrap();
    let got = rec.download(&y).unwrap();
    let tol = want.mapv(|v| 1e-4 * (1.0 + v.abs()));
    assert_close(
        got.view(),
        want.view(),
        tol.view(),
        &format!("{what}: group norm"),
    );
    // The global response norm's scale reduces across a sample's channels: more channels
    // than a workgroup has invocations, batch 2.
    let params = GlobalResponseNormParams::new(150);
    let x = random4(&mut r, [2, 150, 3, 5]).mapv(|v| v + 0.5);
    let (weight, bias) = (random1(&mut r, 150), random1(&mut r, 150));
    let want = reference::norm::global_response_norm(&params, x.view(), weight.view(), bias.view())
        .unwrap();
    let grn = GlobalResponseNorm::new(gpu, params, weight.view(), bias.view()).unwrap();
    let mut rec = gpu.recorder();
    let y = grn
        .forward(&mut rec, &gpu.upload(x.view()).unwrap())
        .unwrap();
    let got = rec.download(&y).unwrap();
    let tol = want.mapv(|v| 1e-4 * (1.0 + v.abs()));
    let case = format!("{what}: global response norm");
    assert_close(got.view(), want.view(), tol.view(), &case);
}

#[test]
fn workgroup_tree_reductions_match_the_reference() {
    let gpu = context(false).unwrap();
    check_pooling(&gpu, "workgroup");
    check_norms(&gpu, "workgroup");
}

#[test]
fn subgroup_reductions_match_the_reference() {
    match context(true) {
        Some(gpu) => {
            check_pooling(&gpu, "subgroup");
            check_norms(&gpu, "subgroup");
        }
        // GL: refused by name (checked in `context`).
        None => assert_eq!(gpu().adapter_info().backend, segblocks::wgpu::Backend::Gl),
    }
}

/// Both forms give nearly the same sums (they differ by the order of the additions).
#[test]
fn the_two_reductions_agree() {
    let Some(sub) = context(true) else {
        return assert_eq!(gpu().adapter_info().backend, segblocks::wgpu::Backend::Gl);
    };
    let tree = context(false).unwrap();
    let x = random4(&mut rng(23), [2, 8, 61, 67]);
    let mut outs = Vec::new();
    for gpu in [&sub, &tree] {
        let xt = gpu.upload(x.view()).unwrap();
        let mut rec = gpu.recorder();
        let y = global_pool(&mut rec, GlobalPool::Avg, &xt).unwrap();
        outs.push(rec.download(&y).unwrap());
    }
    let tol = Array4::from_elem(outs[0].dim(), 1e-6f32);
    assert_close(
        outs[0].view(),
        outs[1].view(),
        tol.view(),
        "subgroup vs tree",
    );
}

/// Kernel choice is plain data: subgroups exactly where the device has them (and the
/// options allow them).
#[test]
fn reduction_choice_follows_the_device() {
    use segblocks::DeviceCaps;
    for cpu in [false, true] {
        let caps = |subgroups| DeviceCaps {
            cpu,
            subgroups,
            ..DeviceCaps::default()
        };
        assert_eq!(caps(true).reduction(), Reduction::Subgroup);
        assert_eq!(caps(false).reduction(), Reduction::Workgroup);
    }
    assert_eq!(DeviceCaps::default().reduction(), Reduction::Workgroup);
}
