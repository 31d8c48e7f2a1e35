//! Channel plumbing and attention: channel shuffle (g = 2) on 232 x 28 x 28, concat of two
//! 116-channel halves, ShuffleNetV2's shuffled pair (against concat then shuffle), a
//! 116-channel narrow, a 28 x 28 crop of 232 x 34 x 34, residual add, a product of two
//! maps, a GRU's blend and a guided filter's division and multiply-add, PIDNet's fusions
//! (a blend weighted per pixel, a gated sum, a channel dot product), the blends of
//! Selective Kernel and ResNeSt attention, and an SE block on 96 x 28 x 28, each next to a plain
//! buffer copy of the same feature map on the same adapter in the same run (GB/s from
//! the bytes each op must move); the copy also with 2 and 4 vec4s per invocation.

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::{Array1, Array4};
use segblocks::ops::attention::{SeGateKernel, SqueezeExcitation, SqueezeExcitationParams};
use segblocks::ops::copy::{Pad2dParams, PadMode};
use segblocks::ops::{channel, Activation};

fn bench(c: &mut Criterion) {
    let gpu = common::gpu();
    let mut g = common::group(c, "channel");
    let shape = [1, 232, 28, 28];
    common::bench_copy(&mut g, &gpu, shape);
    let x = common::input(shape);
    let bytes = 8 * x.len() as u64;
    // The copy with 2 and 4 vec4s per invocation (`copy_with`, for GPUs to compare).
    for per in [2, 4] {
        common::bench_bytes(
            &mut g,
            &gpu,
            &format!("copy_{per}vec4_232_28"),
            &x,
            bytes,
            |r, t| segblocks::ops::copy::copy_with(r, t, per),
        );
    }
    common::bench_bytes(
        &mut g,
        &gpu,
        "channel_shuffle_g2_232_28",
        &x,
        bytes,
        |rec, t| channel::channel_shuffle(rec, t, 2),
    );
    let half = gpu.upload(common::input([1, 116, 28, 28]).view()).unwrap();
    common::bench_bytes(
        &mut g,
        &gpu,
        "concat_116+116_28",
        &common::input([1, 116, 28, 28]),
        bytes,
        |rec, t| channel::concat(rec, &[t, &half]),
    );
    // ShuffleNetV2's cat + shuffle(2) in two strided copies, against the two steps.
    common::bench_bytes(
        &mut g,
        &gpu,
        "shuffle_pair_116+116_28",
        &common::input([1, 116, 28, 28]),
        bytes,
        |rec, t| channel::shuffle_pair(rec, t, &half),
    );
    common::bench_bytes(
        &mut g,
        &gpu,
        "concat_then_shuffle_116+116_28",
        &common::input([1, 116, 28, 28]),
        bytes,
        |rec, t| {
            let joined = channel::concat(rec, &[t, &half])?;
            channel::channel_shuffle(rec, &joined, 2)
        },
    );
    common::bench_bytes(
        &mut g,
        &gpu,
        "narrow_116_of_232_28",
        &x,
        bytes / 2,
        |rec, t| channel::narrow(rec, t, 116, 116),
    );
    // FCN's crops: a 28 x 28 window of every plane.
    let window = segblocks::ops::copy::CropParams2d::new((0, 0), (28, 28));
    let big = common::input([1, 232, 34, 34]);
    common::bench_bytes(&mut g, &gpu, "crop_232_34_to_28", &big, bytes, |rec, t| {
        segblocks::ops::copy::crop(rec, &window, t)
    });
    // Padding 232 x 26 x 26 back to 28 x 28, zeros and reflected.
    let small = common::input([1, 232, 26, 26]);
    for mode in [PadMode::Constant, PadMode::Reflect] {
        let pad = Pad2dParams::new((1, 1, 1, 1)).mode(mode);
        let name = format!("pad_{mode:?}_232_26_to_28");
        common::bench_bytes(&mut g, &gpu, &name, &small, bytes, |rec, t| {
            segblocks::ops::copy::pad2d(rec, &pad, t)
        });
    }
    let other = gpu.upload(x.view()).unwrap();
    common::bench_bytes(
        &mut g,
        &gpu,
        "add_relu_232_28",
        &x,
        12 * x.len() as u64,
        |rec, t| channel::add(rec, t, &other, Activation::Relu),
    );
    // A ConvGRU's reset gate on its state, and its update (reads the state, the
    // candidate and the gate), Robust Video Matting's.
    common::bench_bytes(
        &mut g,
        &gpu,
        "mul_232_28",
        &x,
        12 * x.len() as u64,
        |rec, t| channel::mul(rec, t, &other, Activation::None),
    );
    common::bench_bytes(
        &mut g,
        &gpu,
        "blend_232_28",
        &x,
        16 * x.len() as u64,
        |rec, t| channel::blend(rec, t, &other, &other),
    );
    // PIDNet's fusions: the blend weighted per pixel (reads both maps and one plane),
    // the light boundary fusion's gated sum (reads three maps), and the pixel attention's
    // channel dot product (reads two maps, writes one plane).
    let plane = gpu.upload(common::input([1, 1, 28, 28]).view()).unwrap();
    let plane_bytes = 4 * 28 * 28;
    common::bench_bytes(
        &mut g,
        &gpu,
        "blend_spatial_232_28",
        &x,
        12 * x.len() as u64 + plane_bytes,
        |rec, t| {
            channel::blend_spatial(rec, t, &other, &plane, (Activation::None, Activation::Relu))
        },
    );
    common::bench_bytes(
        &mut g,
        &gpu,
        "add_gated_232_28",
        &x,
        16 * x.len() as u64,
        |rec, t| channel::add_gated(rec, t, &other, &other, Activation::Sigmoid),
    );
    common::bench_bytes(
        &mut g,
        &gpu,
        "channel_dot_232_28",
        &x,
        8 * x.len() as u64 + plane_bytes,
        |rec, t| channel::channel_dot(rec, t, &other, Activation::Sigmoid),
    );
    // A guided filter's `cov / (var + eps)` and `A * x + b`.
    common::bench_bytes(
        &mut g,
        &gpu,
        "div_232_28",
        &x,
        12 * x.len() as u64,
        |rec, t| channel::div(rec, t, &other, 1e-5),
    );
    common::bench_bytes(
        &mut g,
        &gpu,
        "mul_add_232_28",
        &x,
        16 * x.len() as u64,
        |rec, t| channel::mul_add(rec, t, &other, &other),
    );
    // Selective Kernel attention's blend of two paths by a per-channel sigmoid weight
    // (reads both paths and the gate, writes one map).
    let gate = gpu.upload(common::input([1, 232, 1, 1]).view()).unwrap();
    common::bench_bytes(
        &mut g,
        &gpu,
        "lerp_channels_232_28",
        &x,
        12 * x.len() as u64,
        |rec, t| channel::lerp_channels(rec, t, &other, &gate, Activation::Sigmoid),
    );
    // ResNeSt's split attention at radix 4 (`resnest50d_4s2x40d`): four splits of 232
    // channels weighted by their softmax and summed (reads the splits, writes one).
    let radix = common::input([1, 4 * 232, 28, 28]);
    let logits = gpu
        .upload(common::input([1, 4 * 232, 1, 1]).view())
        .unwrap();
    common::bench_bytes(
        &mut g,
        &gpu,
        "radix_softmax_sum_r4_232_28",
        &radix,
        20 * x.len() as u64,
        |rec, t| segblocks::ops::attention::radix_softmax_sum(rec, t, &logits, 4),
    );
    // DPT's class-token readout: a per-channel value added with GELU (reads the map,
    // writes one).
    common::bench_bytes(
        &mut g,
        &gpu,
        "add_channels_gelu_232_28",
        &x,
        bytes,
        |rec, t| channel::add_channels(rec, t, &gate, Activation::Gelu),
    );
    // A ViT-B/16's position embedding on a batch of 4 (768 channels, 197 tokens): the
    // one-sample map read once a sample.
    let tokens = common::input([4, 768, 1, 197]);
    let position = gpu.upload(common::input([1, 768, 1, 197]).view()).unwrap();
    common::bench_bytes(
        &mut g,
        &gpu,
        "add_broadcast_4x768_197",
        &tokens,
        12 * tokens.len() as u64,
        |rec, t| channel::add_broadcast(rec, t, &position, Activation::None),
    );
    // Standalone activations, cheap and transcendental, next to the same copy.
    for act in [Activation::HardSwish, Activation::Gelu, Activation::Mish] {
        let name = format!("activation_{act:?}_232_28");
        common::bench_bytes(&mut g, &gpu, &name, &x, bytes, |rec, t| {
            channel::activation(rec, t, act)
        });
    }
    common::bench_bytes(&mut g, &gpu, "elu_232_28", &x, bytes, |rec, t| {
        channel::activation_with(rec, t, channel::ParamActivation::elu())
    });
    // A segmentation head's last step: class probabilities and the label map of 21
    // classes at 128 x 128.
    let logits = common::input([1, 21, 128, 128]);
    let logit_bytes = 8 * logits.len() as u64;
    common::bench_bytes(
        &mut g,
        &gpu,
        "softmax_21_128",
        &logits,
        logit_bytes,
        channel::softmax,
    );
    let ln = channel::LayerNorm2d::new(&gpu, (21, 1e-6), None, None).unwrap();
    common::bench_bytes(
        &mut g,
        &gpu,
        "layer_norm_2d_21_128",
        &logits,
        logit_bytes,
        |rec, t| ln.forward(rec, t),
    );
    let label_bytes = 4 * logits.len() as u64 + 4 * 128 * 128;
    common::bench_bytes(
        &mut g,
        &gpu,
        "argmax_21_128",
        &logits,
        label_bytes,
        |rec, t| {
            // The label map stays on the GPU; the bench reads the logits back instead.
            channel::argmax(rec, t).map(|_| t.clone())
        },
    );
    let prelu = channel::PRelu::new(&gpu, Array1::from_elem(232, 0.25).view()).unwrap();
    common::bench_bytes(&mut g, &gpu, "prelu_232_28", &x, bytes, |rec, t| {
        prelu.forward(rec, t)
    });

    let se_shape = [1, 96, 28, 28];
    common::bench_copy(&mut g, &gpu, se_shape);
    let params = SqueezeExcitationParams::new(96, 24);
    let se = SqueezeExcitation::new(
        &gpu,
        params,
        Array4::from_elem([24, 96, 1, 1], 0.01).view(),
        Array1::from_elem(24, 0.1).view(),
        Array4::from_elem([96, 24, 1, 1], 0.02).view(),
        Array1::from_elem(96, 0.0).view(),
    )
    .unwrap();
    let xs = common::input(se_shape);
    for kernel in SeGateKernel::ALL {
        common::bench_bytes(
            &mut g,
            &gpu,
            &format!("se_96_28_{kernel:?}"),
            &xs,
            params.cost(se_shape).unwrap().bytes,
            |rec, t| se.forward_with(rec, t, kernel),
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
