//! Normalisation at the suite's sizes (batch norm inference on 64 x 112 x 112, group norm
//! G = 32 and the global response norm on 256 x 28 x 28) plus a large plane (1 x 64 x 256
//! x 256), next to a plain
//! buffer copy of the same input on the same adapter in the same run (GB/s from the bytes
//! each op must move). Training forward + backward is timed next to inference.

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::Array1;
use segblocks::ops::norm::{
    BatchNorm2d, BatchNorm2dParams, GlobalResponseNorm, GlobalResponseNormParams, GroupNorm,
    GroupNormParams,
};

fn bench(c: &mut Criterion) {
    let gpu = common::gpu();
    let mut g = common::group(c, "norm");
    for shape in [[1, 64, 112, 112], [1, 64, 256, 256]] {
        common::bench_copy(&mut g, &gpu, shape);
        let x = common::input(shape);
        let ch = shape[1];
        let params = BatchNorm2dParams::new(ch);
        let bn = BatchNorm2d::new(
            &gpu,
            params,
            Some(Array1::from_elem(ch, 1.5).view()),
            Some(Array1::from_elem(ch, 0.1).view()),
        )
        .and_then(|bn| {
            bn.with_running_stats(
                Array1::from_elem(ch, 0.2).view(),
                Array1::from_elem(ch, 2.0).view(),
            )
        })
        .unwrap();
        // Inference reads x once and writes y once.
        let bytes = 8 * x.len() as u64;
        let tag = format!("{}x{}x{}", shape[1], shape[2], shape[3]);
        common::bench_bytes(
            &mut g,
            &gpu,
            &format!("batchnorm_eval_{tag}"),
            &x,
            bytes,
            |rec, t| bn.forward_eval(rec, t),
        );
        common::bench_bytes(
            &mut g,
            &gpu,
            &format!("batchnorm_train_fwd_bwd_{tag}"),
            &x,
            bytes,
            |rec, t| {
                let (y, saved) = bn.forward_train(rec, t)?;
                Ok(bn.backward(rec, t, &y, &saved)?.grad_input)
            },
        );
    }
    let shape = [1, 256, 28, 28];
    common::bench_copy(&mut g, &gpu, shape);
    let x = common::input(shape);
    // With each workgroup reduction (the statistics pass).
    for (label, gpu) in common::reduction_contexts() {
        let gn = GroupNorm::new(&gpu, GroupNormParams::new(32, 256), None, None).unwrap();
        common::bench_bytes(
            &mut g,
            &gpu,
            &format!("groupnorm_g32_256x28x28/{label}"),
            &x,
            8 * x.len() as u64,
            |rec, t| gn.forward(rec, t),
        );
    }
    // ConvNeXt V2's global response norm at the group norm's size: the statistics read
    // the map, the affine reads and writes it.
    let grn = GlobalResponseNorm::new(
        &gpu,
        GlobalResponseNormParams::new(256),
        Array1::ones(256).view(),
        Array1::zeros(256).view(),
    )
    .unwrap();
    common::bench_bytes(
        &mut g,
        &gpu,
        "grn_256x28x28",
        &x,
        12 * x.len() as u64,
        |rec, t| grn.forward(rec, t),
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
