//! Pooling of the peer suite (2x2 max pooling with indices on 64 x 112 x 112), unpooling
//! back to 112 x 112, global (a workgroup per plane with each workgroup reduction, and a
//! plane per invocation) and adaptive (average and max) pooling, next to a plain buffer
//! copy of the same input on the same adapter in the same run. Throughput in bytes moved (GB/s).

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use segblocks::ops::pool::{
    global_pool_with, AdaptiveAvgPool2dParams, AdaptiveMaxPool2dParams, GlobalPool,
    GlobalPoolKernel, MaxPool2dParams, MaxUnpool2dParams,
};

fn bench(c: &mut Criterion) {
    let gpu = common::gpu();
    let mut g = common::group(c, "pool");
    let shape = [1, 64, 112, 112];
    let x = common::input(shape);
    common::bench_copy(&mut g, &gpu, shape);

    let pool = MaxPool2dParams::new(2);
    common::bench_bytes(
        &mut g,
        &gpu,
        "maxpool2x2_idx_64_112",
        &x,
        pool.cost(shape).unwrap().bytes,
        |rec, t| {
            // Values and indices both computed; the values are read back.
            segblocks::ops::pool::max_pool2d(rec, &pool, t).map(|(v, _)| v)
        },
    );
    common::bench_bytes(
        &mut g,
        &gpu,
        "maxpool2x2_64_112",
        &x,
        pool.values_cost(shape).unwrap().bytes,
        |rec, t| segblocks::ops::pool::max_pool2d_values(rec, &pool, t),
    );

    // Unpooling the pooled map (indices produced on the GPU, untimed) back to 112 x 112.
    let pooled_shape = [1, 64, 56, 56];
    let (indices, pooled) = {
        let xt = gpu.upload(x.view()).unwrap();
        let mut rec = gpu.recorder();
        let (v, i) = segblocks::ops::pool::max_pool2d(&mut rec, &pool, &xt).unwrap();
        rec.submit().unwrap();
        (i, gpu.download(&v).unwrap())
    };
    let unpool = MaxUnpool2dParams::from_pool(&pool);
    common::bench_bytes(
        &mut g,
        &gpu,
        "maxunpool2x2_64_56",
        &pooled,
        unpool.cost(pooled_shape).unwrap().bytes,
        |rec, t| segblocks::ops::pool::max_unpool2d(rec, &unpool, t, &indices),
    );

    // Global pooling, a workgroup per plane with each workgroup reduction, and a plane
    // per invocation: a large map, and the SE squeeze of MobileNetV3's last stage (960
    // planes of 7 x 7: the reduction is most of a workgroup's work).
    let se_shape = [1, 960, 7, 7];
    let se_x = common::input(se_shape);
    let contexts = common::reduction_contexts();
    let kernels = contexts
        .iter()
        .map(|(label, gpu)| (label.to_string(), gpu, GlobalPoolKernel::Workgroup))
        .chain([("invocation".to_string(), &gpu, GlobalPoolKernel::Invocation)]);
    for (label, gpu, kernel) in kernels {
        for kind in [GlobalPool::Avg, GlobalPool::Max] {
            for (x, shape) in [(&x, shape), (&se_x, se_shape)] {
                common::bench_bytes(
                    &mut g,
                    gpu,
                    &format!("global_{kind:?}_{}_{}/{label}", shape[1], shape[2]),
                    x,
                    kind.cost(shape).unwrap().bytes,
                    |rec, t| global_pool_with(rec, kind, t, kernel),
                );
            }
        }
    }
    let adaptive = AdaptiveAvgPool2dParams::new(6);
    common::bench_bytes(
        &mut g,
        &gpu,
        "adaptive_avg6_64_112",
        &x,
        adaptive.cost(shape).unwrap().bytes,
        |rec, t| segblocks::ops::pool::adaptive_avg_pool2d(rec, &adaptive, t),
    );
    let adaptive_max = AdaptiveMaxPool2dParams::new(6);
    common::bench_bytes(
        &mut g,
        &gpu,
        "adaptive_max6_64_112",
        &x,
        adaptive_max.cost(shape).unwrap().bytes,
        |rec, t| segblocks::ops::pool::adaptive_max_pool2d(rec, &adaptive_max, t).map(|(y, _)| y),
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
