//! Scaled dot-product attention as SegFormer's Mix Transformer runs it (criterion
//! "elements" are FLOPs: 2 x the MACs of the two products, so the rate reads as FLOP/s):
//! `mit_b0`'s first stage at 512 x 512 (128 x 128 queries of one 32-channel head over the
//! 16 x 16 keys of its spatial reduction), `mit_b1`'s (64 channels), its last stage
//! (16 x 16 tokens, 8 heads, self-attention), and a walk over 1,024 keys that is split
//! over the keys and joined by the combining pass; each with both kernel variants (4 and 8
//! queries an invocation). Then OCR's spatial gather (the same kernel with one-hot
//! queries) as HRNet-OCR runs it on Cityscapes at 512 x 1024: 19 classes' softmax over
//! 128 x 256 pixels weighting 512 channels, with each variant. PyTorch's peer:
//! `benches/torch_segmentation.py sdpa`.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use segblocks::ops::sdpa::{
    scaled_dot_product_attention_with, spatial_gather_with, SdpaKernel, SdpaParams,
    SpatialGatherParams,
};

fn bench(c: &mut Criterion) {
    let gpu = common::gpu();
    let mut g = common::group(c, "sdpa");
    // name, heads, E, query map, key map
    let cases = [
        ("mit_b0_stage1_512", 1, 32, [128, 128], [16, 16]),
        ("mit_b1_stage1_512", 1, 64, [128, 128], [16, 16]),
        ("mit_b1_stage4_512", 8, 64, [16, 16], [16, 16]),
        ("split_keys_1024", 1, 64, [32, 32], [32, 32]),
    ];
    for (name, heads, e, [qh, qw], [kh, kw]) in cases {
        let (qs, ks) = ([1, heads * e, qh, qw], [1, heads * e, kh, kw]);
        let p = SdpaParams::new(heads);
        g.throughput(Throughput::Elements(p.cost(qs, ks, ks).unwrap().flops()));
        let (q, k, v) = (common::input(qs), common::input(ks), common::input(ks));
        let (kt, vt) = (gpu.upload(k.view()).unwrap(), gpu.upload(v.view()).unwrap());
        for kernel in SdpaKernel::ALL {
            g.bench_function(format!("{name}_{kernel:?}"), |b| {
                b.iter(|| {
                    let qt = gpu.upload(q.view()).unwrap();
                    let mut rec = gpu.recorder();
                    let y = scaled_dot_product_attention_with(&mut rec, (&qt, &kt, &vt), p, kernel)
                        .unwrap();
                    rec.download(&y).unwrap()
                })
            });
        }
    }
    // OCR's spatial gather (a fresh map of logits a call, the features fixed).
    let (ps, fs) = ([1, 19, 128, 256], [1, 512, 128, 256]);
    let p = SpatialGatherParams::new();
    g.throughput(Throughput::Elements(p.cost(ps, fs).unwrap().flops()));
    let (probs, ft) = (
        common::input(ps),
        gpu.upload(common::input(fs).view()).unwrap(),
    );
    for kernel in SdpaKernel::ALL {
        g.bench_function(
            format!("spatial_gather_ocr_cityscapes_512_{kernel:?}"),
            |b| {
                b.iter(|| {
                    let pt = gpu.upload(probs.view()).unwrap();
                    let mut rec = gpu.recorder();
                    let y = spatial_gather_with(&mut rec, (&pt, &ft), p, kernel).unwrap();
                    rec.download(&y).unwrap()
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
