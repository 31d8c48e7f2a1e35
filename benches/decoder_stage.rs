//! The fused decoder stage against the same stage as its four layers (resize, gated add,
//! 1x1, residual depthwise): the selfie model's last stage (16 channels at 128 x 128, its
//! most expensive) and its first (24 channels at 32 x 32), batch 1, inputs already on the
//! device, full readback. Throughput in bytes of the stage's minimum traffic (skip, low,
//! gate, weights and output once): the stage is memory-bound on a GPU.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::Array1;
use segblocks::ops::decoder_stage::{DecoderStage, DecoderStageKernel, DecoderStageParams};

fn bench(c: &mut Criterion) {
    let gpu = common::gpu();
    let mut g = common::group(c, "decoder_stage");
    for (ch, size) in [(16, 128), (24, 32)] {
        let p = DecoderStageParams::new(ch, ch);
        let weight = |s: [usize; 4]| common::input(s).mapv(|v| 0.1 * v);
        let (wr, wd) = (weight([ch, ch, 1, 1]), weight([ch, 1, 3, 3]));
        let bias = Array1::<f32>::zeros(ch);
        let stage =
            DecoderStage::new(&gpu, p, (wr.view(), bias.view()), (wd.view(), bias.view())).unwrap();
        let shape = [1, ch, size, size];
        let up = |s: [usize; 4]| gpu.upload(common::input(s).view()).unwrap();
        let (skip, gate, low) = (
            up(shape),
            up([1, ch, 1, 1]),
            up([1, ch, size / 2, size / 2]),
        );
        g.throughput(Throughput::Bytes(p.cost(shape).unwrap().bytes));
        for kernel in DecoderStageKernel::ALL {
            g.bench_function(format!("{ch}ch_{size}_{kernel:?}"), |b| {
                b.iter(|| {
                    let mut rec = gpu.recorder();
                    let y = stage
                        .forward_with(&mut rec, &skip, &gate, &low, kernel)
                        .unwrap();
                    rec.download(&y).unwrap()
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
