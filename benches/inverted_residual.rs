//! The fused inverted residual against the same block as three convolutions (the path a
//! CPU adapter takes), MobileNetV2's 24 -> 144 -> 24 block at 56 x 56 and its stride-2
//! 16 -> 96 -> 24 block at 112 x 112, batch 1: fresh input upload, the block, full
//! readback. Throughput in FLOPs of the block (2 x MACs). On lavapipe the fused kernel is
//! expected to lose by a wide margin (its loads run lane by lane): this bench measures by
//! how much, and is the one to run on a GPU.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::{Array1, Array4};
use segblocks::ops::conv::{Conv2d, Conv2dParams, ResidualJoin};
use segblocks::ops::inverted_residual::{
    fused_candidates, select_kernel, FusedInvertedResidual, FusedPass, InvertedResidualKernel,
    InvertedResidualParams,
};
use segblocks::ops::Activation;
use segblocks::DeviceCaps;

fn bench(c: &mut Criterion) {
    let gpu = common::gpu();
    let mut g = common::group(c, "inverted_residual");
    let cases = [
        (
            "mnv2_24_144_24_56",
            InvertedResidualParams::new(24, 144, 24),
            56,
        ),
        (
            "mnv2_16_96_24_s2_112",
            InvertedResidualParams {
                stride: 2,
                ..InvertedResidualParams::new(16, 96, 24)
            },
            112,
        ),
    ];
    for (name, p, size) in cases {
        let (cin, hid, cout) = (p.in_channels, p.hidden_channels, p.out_channels);
        let shape = [1, cin, size, size];
        let weight = |s: [usize; 4]| common::input(s).mapv(|v| 0.1 * v);
        let (we, wd, wp) = (
            weight([hid, cin, 1, 1]),
            weight([hid, 1, 3, 3]),
            weight([cout, hid, 1, 1]),
        );
        let (be, bd, bp) = (
            Array1::<f32>::zeros(hid),
            Array1::<f32>::zeros(hid),
            Array1::<f32>::zeros(cout),
        );
        let fused = FusedInvertedResidual::new(
            &gpu,
            p,
            Some((we.view(), be.view())),
            (wd.view(), bd.view()),
            (wp.view(), bp.view()),
        )
        .unwrap();
        let relu6 = Activation::Relu6;
        let expand = Conv2d::new(
            &gpu,
            Conv2dParams::new(cin, hid, 1).activation(relu6),
            we.view(),
            Some(be.view()),
        )
        .unwrap();
        let dw_params = Conv2dParams::depthwise(hid, 1, 3)
            .stride(p.stride)
            .padding(1)
            .activation(relu6);
        let depthwise = Conv2d::new(&gpu, dw_params, wd.view(), Some(bd.view())).unwrap();
        let project = Conv2d::new(
            &gpu,
            Conv2dParams::new(hid, cout, 1),
            wp.view(),
            Some(bp.view()),
        )
        .unwrap();
        // The tile a GPU gets.
        let gpu_caps = DeviceCaps {
            cpu: false,
            ..gpu.caps().clone()
        };
        let tile = match select_kernel(&p, shape, &gpu_caps) {
            InvertedResidualKernel::Fused(t) => t,
            _ => fused_candidates(&p, FusedPass::Block, shape, &gpu_caps)[0],
        };
        let x: Array4<f32> = common::input(shape);
        let flops = 2 * p.cost(shape).unwrap().macs;
        g.throughput(Throughput::Elements(flops));
        g.bench_function(format!("{name}_fused"), |b| {
            b.iter(|| {
                let xt = gpu.upload(x.view()).unwrap();
                let mut rec = gpu.recorder();
                let y = fused.forward_with(&mut rec, &xt, tile).unwrap();
                rec.download(&y).unwrap()
            })
        });
        g.bench_function(format!("{name}_three_convs"), |b| {
            b.iter(|| {
                let xt = gpu.upload(x.view()).unwrap();
                let mut rec = gpu.recorder();
                let e = expand.forward(&mut rec, &xt).unwrap();
                let d = depthwise.forward(&mut rec, &e).unwrap();
                let y = if p.has_skip() {
                    project.forward_residual(&mut rec, &d, &xt, ResidualJoin::AfterActivation)
                } else {
                    project.forward(&mut rec, &d)
                }
                .unwrap();
                rec.download(&y).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
