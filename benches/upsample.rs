//! Upsampling: nearest 2x, bilinear 2x (both align_corners settings), bed-of-nails 2x,
//! nearest-exact 1.5x and bicubic 2x on 64 x 56 x 56, and a segmentation head's bilinear
//! resize of 21-class logits from 64 x 64 to 256 x 256 (corners aligned or not) and from
//! 33 x 45 to 133 x 181, next to a plain buffer copy of the same output size on the same
//! adapter in the same run; a resize with a residual sum and ReLU in its store
//! (`upsample_add`: DDRNet's bilinear fusions, HRNet's and FPN's nearest ones) next to the
//! resize and then the sum as two passes. Throughput in bytes moved (GB/s, the fused
//! form's bytes for both).

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use segblocks::ops::upsample::UpsampleParams;

fn bench(c: &mut Criterion) {
    let gpu = common::gpu();
    let mut g = common::group(c, "upsample");
    common::bench_copy(&mut g, &gpu, [1, 64, 112, 112]);
    let shape = [1, 64, 56, 56];
    let x = common::input(shape);
    for (name, p) in [
        (
            "nearest2x_64_56",
            UpsampleParams::nearest().scale_factor(2.0),
        ),
        (
            "bilinear2x_64_56",
            UpsampleParams::bilinear(false).scale_factor(2.0),
        ),
        (
            "bilinear2x_align_64_56",
            UpsampleParams::bilinear(true).size(112),
        ),
        ("bed_of_nails2x_64_56", UpsampleParams::bed_of_nails(2)),
        (
            "nearest_exact1.5x_64_56",
            UpsampleParams::nearest_exact().scale_factor(1.5),
        ),
        (
            "bicubic2x_64_56",
            UpsampleParams::bicubic(false).scale_factor(2.0),
        ),
    ] {
        common::bench_bytes(
            &mut g,
            &gpu,
            name,
            &x,
            p.cost(shape).unwrap().bytes,
            |rec, t| segblocks::ops::upsample::upsample(rec, &p, t),
        );
    }
    // The residual sum in the resize's store, and as a pass of its own after it.
    let residual = gpu.upload(common::input([1, 64, 112, 112]).view()).unwrap();
    for (name, p) in [
        (
            "bilinear2x_64_56",
            UpsampleParams::bilinear(false).scale_factor(2.0),
        ),
        (
            "nearest2x_64_56",
            UpsampleParams::nearest().scale_factor(2.0),
        ),
    ] {
        use segblocks::ops::{channel, upsample, Activation::Relu};
        let bytes = p.cost(shape).unwrap().bytes + 4 * residual.len() as u64;
        common::bench_bytes(
            &mut g,
            &gpu,
            &format!("{name}_add_relu"),
            &x,
            bytes,
            |rec, t| upsample::upsample_add(rec, &p, t, &residual, Relu),
        );
        common::bench_bytes(
            &mut g,
            &gpu,
            &format!("{name}_then_add_relu"),
            &x,
            bytes,
            |rec, t| {
                let y = upsample::upsample(rec, &p, t)?;
                channel::add(rec, &residual, &y, Relu)
            },
        );
    }
    let logits = common::input([1, 21, 64, 64]);
    let head = UpsampleParams::bilinear(false).size(256);
    common::bench_bytes(
        &mut g,
        &gpu,
        "bilinear_logits_21_64to256",
        &logits,
        head.cost([1, 21, 64, 64]).unwrap().bytes,
        |rec, t| segblocks::ops::upsample::upsample(rec, &head, t),
    );
    // Aligned corners (smp's heads, Fast-SCNN, the face parser) take the strip kernel;
    // odd sizes the tap kernel's row groups.
    for (name, shape, p) in [
        (
            "bilinear_align_logits_21_64to256",
            [1, 21, 64, 64],
            UpsampleParams::bilinear(true).scale_factor(4.0),
        ),
        (
            "bilinear_logits_21_33x45_to_133x181",
            [1, 21, 33, 45],
            UpsampleParams::bilinear(false).size((133, 181)),
        ),
    ] {
        let logits = common::input(shape);
        common::bench_bytes(
            &mut g,
            &gpu,
            name,
            &logits,
            p.cost(shape).unwrap().bytes,
            |rec, t| segblocks::ops::upsample::upsample(rec, &p, t),
        );
    }
    // torchvision's Resize (antialiased bilinear): a 512 x 512 frame to 224 x 224.
    let frame = common::input([1, 3, 512, 512]);
    let resize = UpsampleParams::bilinear(false).size(224).antialias(true);
    common::bench_bytes(
        &mut g,
        &gpu,
        "bilinear_antialias_3_512to224",
        &frame,
        resize.cost([1, 3, 512, 512]).unwrap().bytes,
        |rec, t| segblocks::ops::upsample::upsample(rec, &resize, t),
    );
    // Sub-pixel upsampling's rearrangement: 256 channels at 56 x 56 to 64 at 112 x 112.
    let deep = common::input([1, 256, 56, 56]);
    common::bench_bytes(
        &mut g,
        &gpu,
        "pixel_shuffle_256_56_r2",
        &deep,
        8 * deep.len() as u64,
        |rec, t| segblocks::ops::upsample::pixel_shuffle(rec, t, 2),
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
