//! Transposed convolution of the peer suite: 4x4 stride 2, 64 -> 32 channels at 28x28
//! (FCN-style 2x upsampling). Throughput in FLOPs (2 x MACs): `elem/s` reads as FLOP/s.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::{Array1, Array4};
use segblocks::ops::conv_transpose::{ConvTranspose2d, ConvTranspose2dParams};

fn bench(c: &mut Criterion) {
    let gpu = common::gpu();
    let mut g = common::group(c, "conv_transpose");
    let params = ConvTranspose2dParams::new(64, 32, 4).stride(2).padding(1);
    let shape = [1, 64, 28, 28];
    let w = Array4::from_shape_fn(params.weight_shape(), |(a, b, c, d)| {
        ((a + b * 3 + c * 5 + d) % 11) as f32 * 0.01
    });
    let b = Array1::from_elem(32, 0.1f32);
    let layer = ConvTranspose2d::new(&gpu, params, w.view(), Some(b.view())).unwrap();
    let x = common::input(shape);
    g.throughput(Throughput::Elements(params.cost(shape).unwrap().flops()));
    g.bench_function("tconv4x4_s2_64to32_28", |bch| {
        bch.iter(|| {
            let xt = gpu.upload(x.view()).unwrap();
            let mut rec = gpu.recorder();
            let y = layer.forward(&mut rec, &xt).unwrap();
            rec.download(&y).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
