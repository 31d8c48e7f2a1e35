//! The fused LR-ASPP branch against its pool-apart variant and its five layers: the selfie
//! model's head (32 -> 128 -> 24 at 16 x 16, its size at a 256 x 256 input) and the same
//! at 64 x 64 (a 1024 x 1024 input), batch 1, input already on the device, full readback.
//! Throughput in FLOPs (2 x MACs).

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use segblocks::ops::lraspp_head::{LrAsppHead, LrAsppHeadKernel, LrAsppHeadParams};

fn bench(c: &mut Criterion) {
    let gpu = common::gpu();
    let mut g = common::group(c, "lraspp_head");
    let p = LrAsppHeadParams::new(32, 128, 24);
    let weight = |s: [usize; 4]| common::input(s).mapv(|v| 0.1 * v);
    let (wb, wg, wc) = (
        weight([128, 32, 1, 1]),
        weight([128, 32, 1, 1]),
        weight([24, 128, 1, 1]),
    );
    let head = LrAsppHead::new(
        &gpu,
        p,
        (wb.view(), None),
        (wg.view(), None),
        Some((wc.view(), None)),
    )
    .unwrap();
    for size in [16, 64] {
        let shape = [1, 32, size, size];
        let x = gpu.upload(common::input(shape).view()).unwrap();
        g.throughput(Throughput::Elements(2 * p.cost(shape).unwrap().macs));
        for kernel in LrAsppHeadKernel::ALL {
            g.bench_function(format!("{size}_{kernel:?}"), |b| {
                b.iter(|| {
                    let mut rec = gpu.recorder();
                    let y = head.forward_with(&mut rec, &x, kernel).unwrap();
                    rec.download(&y).unwrap()
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
