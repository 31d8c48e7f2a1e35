//! The fused inverted residual: every tile the choice can take against the CPU reference
//! (the three convolutions), at odd sizes, stride 2, batch > 1, channel counts that are
//! not multiples of 4, with and without expansion and skip; the choice itself; bad input.

mod common;

use common::*;
use ndarray::{Array1, Array4};
use segblocks::ops::inverted_residual::{
    fused_candidates, select_kernel, FusedInvertedResidual, FusedPass, FusedTile, GatePlacement,
    InvertedResidualKernel, InvertedResidualParams,
};
use segblocks::ops::Activation;
use segblocks::reference;
use segblocks::Error;

struct Weights {
    expand: Option<(Array4<f32>, Array1<f32>)>,
    depthwise: (Array4<f32>, Array1<f32>),
    project: (Array4<f32>, Array1<f32>),
}

fn weights(p: &InvertedResidualParams, seed: u64) -> Weights {
    let mut r = rng(seed);
    let (cin, hid, cout, k) = (
        p.in_channels,
        p.hidden_channels,
        p.out_channels,
        p.kernel_size,
    );
    let mut pair = |shape: [usize; 4]| (random4(&mut r, shape), random1(&mut r, shape[0]));
    Weights {
        expand: p.has_expansion().then(|| pair([hid, cin, 1, 1])),
        depthwise: pair([hid, 1, k, k]),
        project: pair([cout, hid, 1, 1]),
    }
}

fn view(
    wb: &(Array4<f32>, Array1<f32>),
) -> (ndarray::ArrayView4<'_, f32>, ndarray::ArrayView1<'_, f32>) {
    (wb.0.view(), wb.1.view())
}

/// The fused layer of `p` with the weights `w`.
fn upload(p: &InvertedResidualParams, w: &Weights) -> FusedInvertedResidual {
    let (e, d, pr) = (
        w.expand.as_ref().map(view),
        view(&w.depthwise),
        view(&w.project),
    );
    FusedInvertedResidual::new(gpu(), *p, e, d, pr).unwrap()
}

/// The reference block on `x`.
fn reference_of(p: &InvertedResidualParams, x: &Array4<f32>, w: &Weights) -> Array4<f32> {
    let e = w.expand.as_ref().map(view);
    let (d, pr) = (view(&w.depthwise), view(&w.project));
    reference::inverted_residual::inverted_residual(p, x.view(), e, d, None, pr).unwrap()
}

/// f32 sums in another order than the reference's f64 ones stay far below 1e-5 of the
/// largest output, while any wrong term moves an output by a sizeable share of it.
fn bound(want: &Array4<f32>) -> Array4<f32> {
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    Array4::from_elem(want.dim(), 2e-5 * scale + 1e-5)
}

/// Runs every fused tile of `p` on `input` (and the default choice) against the reference.
fn check(p: InvertedResidualParams, input: [usize; 4], seed: u64) -> usize {
    let gpu = gpu();
    let w = weights(&p, seed);
    let x = random4(&mut rng(seed + 1), input);
    let want = reference_of(&p, &x, &w);
    let layer = upload(&p, &w);
    let xt = gpu.upload(x.view()).unwrap();
    let all = fused_candidates(&p, FusedPass::Block, input, gpu.caps());
    assert!(!all.is_empty(), "{p:?} on {input:?}: no fused tile");
    // Each tile is a pipeline that takes a second or two to compile on lavapipe: the
    // GPU choice, the narrowest tile and one with several channel blocks cover every path
    // of the shader (partial tiles, halo, blocks).
    let mut tiles = Vec::new();
    let gpu_caps = segblocks::DeviceCaps {
        cpu: false,
        ..gpu.caps().clone()
    };
    if let InvertedResidualKernel::Fused(t) = select_kernel(&p, input, &gpu_caps) {
        tiles.push(t);
    }
    let narrow = all
        .iter()
        .filter(|t| t.co_blocks == 1)
        .min_by_key(|t| t.tile.0 * t.tile.1);
    let blocks = all.iter().find(|t| t.co_blocks > 1);
    // A tile that leaves invocations without sums, and a larger workgroup.
    let ragged = all
        .iter()
        .find(|t| t.invocations % (t.tile.0 * t.tile.1) != 0);
    let wide = all.iter().find(|t| t.invocations > 64);
    for t in narrow
        .into_iter()
        .chain(blocks)
        .chain(ragged)
        .chain(wide)
        .chain(all.first())
    {
        if !tiles.contains(t) {
            tiles.push(*t);
        }
    }
    let bound = bound(&want);
    for &tile in &tiles {
        // Fresh (zeroed) buffers: a recycled output of the previous variant would hide
        // values this one fails to write.
        gpu.trim_pool();
        let mut rec = gpu.recorder();
        let y = layer.forward_with(&mut rec, &xt, tile).unwrap();
        let got = rec.download(&y).unwrap();
        assert_close(
            got.view(),
            want.view(),
            bound.view(),
            &format!("{p:?} {input:?} {tile:?}"),
        );
    }
    tiles.len()
}

#[test]
fn mobilenet_v2_blocks_match_the_reference_with_every_tile() {
    // Expansion and skip; stride 2; no expansion; odd sizes and channel counts.
    let cases = [
        (InvertedResidualParams::new(8, 48, 8), [1, 8, 13, 11]),
        (
            InvertedResidualParams {
                stride: 2,
                ..InvertedResidualParams::new(6, 36, 10)
            },
            [2, 6, 15, 9],
        ),
        (InvertedResidualParams::new(7, 7, 5), [1, 7, 9, 17]),
        (InvertedResidualParams::new(5, 30, 5), [3, 5, 7, 7]),
    ];
    let mut total = 0;
    for (i, (p, s)) in cases.into_iter().enumerate() {
        total += check(p, s, 10 + i as u64);
    }
    assert!(total >= 8, "only {total} tiles tried");
}

#[test]
fn mobilenet_v3_blocks_with_other_kernels_activations_and_dilation() {
    let hs = Activation::HardSwish;
    let cases = [
        (
            InvertedResidualParams {
                kernel_size: 5,
                stride: 2,
                expand_activation: hs,
                depthwise_activation: hs,
                ..InvertedResidualParams::new(10, 30, 12)
            },
            [1, 10, 19, 14],
        ),
        (
            InvertedResidualParams {
                kernel_size: 5,
                dilation: 2,
                expand_activation: Activation::Relu,
                depthwise_activation: Activation::Relu,
                ..InvertedResidualParams::new(9, 27, 9)
            },
            [2, 9, 12, 12],
        ),
    ];
    for (i, (p, s)) in cases.into_iter().enumerate() {
        check(p, s, 40 + i as u64);
    }
}

#[test]
fn tensorflow_same_padding_one_more_after_than_before() {
    // The selfie model's strided blocks: 3x3 pads (0, 1), 5x5 pads (1, 2), the first with
    // an expansion to as many channels; and an odd size, where the extra row and column fall outside the image.
    let cases = [
        (
            InvertedResidualParams {
                stride: 2,
                expand_activation: Activation::Relu,
                depthwise_activation: Activation::Relu,
                ..InvertedResidualParams::new(6, 26, 9)
            }
            .padding_asymmetric(0, 1),
            [2, 6, 16, 12],
        ),
        (
            InvertedResidualParams {
                kernel_size: 5,
                stride: 2,
                expand_activation: Activation::HardSwish,
                depthwise_activation: Activation::HardSwish,
                ..InvertedResidualParams::new(8, 24, 12)
            }
            .padding_asymmetric(1, 2),
            [1, 8, 15, 18],
        ),
        // An expansion that keeps the channel count (the selfie model's first block).
        (
            InvertedResidualParams {
                stride: 2,
                force_expansion: true,
                ..InvertedResidualParams::new(10, 10, 10)
            }
            .padding_asymmetric(0, 1),
            [1, 10, 14, 14],
        ),
    ];
    for (i, (p, s)) in cases.into_iter().enumerate() {
        check(p, s, 50 + i as u64);
    }
    let p = cases[0].0;
    assert_eq!(p.output_shape([2, 6, 16, 12]).unwrap(), [2, 9, 8, 6]);
    assert!(matches!(
        p.padding_asymmetric(0, usize::MAX)
            .output_shape([1, 6, 8, 8]),
        Err(Error::InvalidParam {
            name: "padding",
            ..
        })
    ));
}

#[test]
fn channel_blocks_and_large_maps_match() {
    // Many output channels: the tiles split them into blocks.
    let p = InvertedResidualParams::new(16, 96, 160);
    let tiles = fused_candidates(&p, FusedPass::Block, [1, 16, 7, 7], gpu().caps());
    assert!(tiles.iter().any(|t| t.co_blocks > 1), "{tiles:?}");
    check(p, [1, 16, 7, 7], 60);
    check(InvertedResidualParams::new(4, 24, 6), [1, 4, 40, 33], 61);
    // 14 x 14 and 7 x 7 maps, as at the end of a 224-pixel network.
    check(InvertedResidualParams::new(12, 72, 20), [1, 12, 14, 14], 62);
    check(InvertedResidualParams::new(20, 120, 36), [2, 20, 7, 7], 63);
}

#[test]
fn the_default_choice_runs_and_bad_input_is_a_typed_error() {
    let gpu = gpu();
    let p = InvertedResidualParams::new(8, 48, 8);
    let w = weights(&p, 70);
    let layer = upload(&p, &w);
    let x = gpu
        .upload(random4(&mut rng(71), [1, 8, 16, 16]).view())
        .unwrap();
    // On a CPU adapter the choice for a block is the separate convolutions; the fused
    // layer itself still runs its best tile, and agrees with the reference.
    if gpu.caps().cpu {
        assert_eq!(
            select_kernel(&p, [1, 8, 16, 16], gpu.caps()),
            InvertedResidualKernel::Unfused
        );
    }
    let mut rec = gpu.recorder();
    let y = layer.forward(&mut rec, &x).unwrap();
    let got = rec.download(&y).unwrap();
    let want = reference_of(&p, &random4(&mut rng(71), [1, 8, 16, 16]), &w);
    assert_close(got.view(), want.view(), bound(&want).view(), "forward");
    // Wrong channels.
    let bad = gpu
        .upload(random4(&mut rng(72), [1, 5, 16, 16]).view())
        .unwrap();
    let mut rec = gpu.recorder();
    assert!(matches!(
        layer.forward(&mut rec, &bad),
        Err(Error::ShapeMismatch { .. })
    ));
    // A tile that cannot run: more pixels than invocations.
    let tile = FusedTile {
        tile: (16, 16),
        co_blocks: 1,
        invocations: 64,
    };
    assert!(matches!(
        layer.forward_with(&mut rec, &x, tile),
        Err(Error::InvalidParam { name: "kernel", .. })
    ));
    // Weights of the wrong shape, and an expansion the parameters do not have.
    let bad_dw = (
        Array4::<f32>::zeros((48, 1, 5, 5)),
        Array1::<f32>::zeros(48),
    );
    assert!(matches!(
        FusedInvertedResidual::new(
            gpu,
            p,
            w.expand.as_ref().map(view),
            view(&bad_dw),
            view(&w.project)
        ),
        Err(Error::ShapeMismatch {
            name: "depthwise",
            ..
        })
    ));
    assert!(matches!(
        FusedInvertedResidual::new(gpu, p, None, view(&w.depthwise), view(&w.project)),
        Err(Error::InvalidParam { name: "expand", .. })
    ));
    let zero = InvertedResidualParams::new(0, 48, 8);
    assert!(matches!(
        zero.output_shape([1, 0, 4, 4]),
        Err(Error::InvalidParam {
            name: "in_channels",
            ..
        })
    ));
}

#[test]
fn blocks_with_se_match_the_reference_in_two_passes() {
    use segblocks::ops::attention::{SqueezeExcitation, SqueezeExcitationParams};
    use std::sync::Arc;
    let gpu = gpu();
    let hs = Activation::HardSwish;
    let cases = [
        // MobileNetV3's: 5x5, hard-swish, hard-sigmoid gate, skip; batch 2, odd sizes.
        (
            InvertedResidualParams {
                kernel_size: 5,
                expand_activation: hs,
                depthwise_activation: hs,
                use_se: true,
                ..InvertedResidualParams::new(12, 36, 12)
            },
            Activation::HardSigmoid,
            [2, 12, 11, 13],
        ),
        // Stride 2, no skip, sigmoid gate (the selfie model's).
        (
            InvertedResidualParams {
                stride: 2,
                use_se: true,
                ..InvertedResidualParams::new(8, 40, 18)
            },
            Activation::Sigmoid,
            [1, 8, 17, 16],
        ),
    ];
    for (i, (p, gate, input)) in cases.into_iter().enumerate() {
        let seed = 80 + 10 * i as u64;
        let w = weights(&p, seed);
        let mut r = rng(seed + 1);
        let (hid, sq) = (p.hidden_channels, 8);
        let se_params = SqueezeExcitationParams::new(hid, sq).scale_activation(gate);
        let fc1 = (random4(&mut r, [sq, hid, 1, 1]), random1(&mut r, sq));
        let fc2 = (random4(&mut r, [hid, sq, 1, 1]), random1(&mut r, hid));
        let (f1, f2) = (view(&fc1), view(&fc2));
        let se = SqueezeExcitation::new(gpu, se_params, f1.0, f1.1, f2.0, f2.1).unwrap();
        let e = w.expand.as_ref().map(view);
        let layer = upload(&p, &w)
            .with_squeeze_excitation(Arc::new(se))
            .unwrap();
        let x = random4(&mut r, input);
        let se_ref = Some((&se_params, f1, f2));
        let (d, pr) = (view(&w.depthwise), view(&w.project));
        let want = reference::inverted_residual::inverted_residual(&p, x.view(), e, d, se_ref, pr)
            .unwrap();
        let xt = gpu.upload(x.view()).unwrap();
        let caps = gpu.caps();
        let firsts = fused_candidates(&p, FusedPass::Expand, input, caps);
        let seconds = fused_candidates(&p, FusedPass::Project, input, caps);
        let gpu_caps = segblocks::DeviceCaps {
            cpu: false,
            fuse_expanding_blocks: true,
            ..caps.clone()
        };
        let mut pairs = vec![(firsts[0], seconds[0])];
        pairs.push((*firsts.last().unwrap(), *seconds.last().unwrap()));
        match select_kernel(&p, input, &gpu_caps) {
            InvertedResidualKernel::TwoPass {
                expand,
                project,
                gate,
            } => {
                assert_eq!(gate, GatePlacement::InPasses, "{p:?}");
                pairs.push((expand, project));
            }
            k => panic!("{p:?}: {k:?}"),
        }
        for (a, b) in pairs {
            // The gate in the passes (two dispatches), or in its own (one at these sizes)
            // between them.
            for (gate, dispatches) in [(GatePlacement::InPasses, 2), (GatePlacement::Separate, 3)] {
                gpu.trim_pool();
                let mut rec = gpu.recorder();
                let y = layer.forward_two_pass(&mut rec, &xt, (a, b), gate).unwrap();
                assert_eq!(rec.dispatch_count(), dispatches);
                let got = rec.download(&y).unwrap();
                assert_close(
                    got.view(),
                    want.view(),
                    bound(&want).view(),
                    &format!("{a:?} {b:?} {gate:?}"),
                );
            }
        }
        // A block with SE does not run in one pass.
        let mut rec = gpu.recorder();
        assert!(matches!(
            layer.forward_with(&mut rec, &xt, firsts[0]),
            Err(Error::InvalidParam { name: "kernel", .. })
        ));
    }
    // The SE layer is refused by a block without use_se.
    let p = InvertedResidualParams::new(8, 48, 8);
    let w = weights(&p, 99);
    let layer = upload(&p, &w);
    let (f1, f2) = (Array4::zeros((8, 48, 1, 1)), Array4::zeros((48, 8, 1, 1)));
    let (b1, b2) = (Array1::zeros(8), Array1::zeros(48));
    let se_params = SqueezeExcitationParams::new(48, 8);
    let se = SqueezeExcitation::new(gpu, se_params, f1.view(), b1.view(), f2.view(), b2.view());
    assert!(matches!(
        layer.with_squeeze_excitation(std::sync::Arc::new(se.unwrap())),
        Err(Error::InvalidParam { name: "se", .. })
    ));
}
