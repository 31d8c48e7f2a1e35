//! Tiled inference: a fully convolutional network run in overlapping tiles equals its
//! untiled output where the receptive field fits in the blending margin, and runs on
//! images whose activations exceed the device's storage-binding limit in one pass.

mod common;

use segblocks::networks::{UNet, UNetConfig};
use segblocks::tiling::{tiled_forward, Blend, TileParams};
use segblocks::{Error, Gpu, GpuOptions, StateDict};

fn unet(gpu: &Gpu) -> UNet {
    // Depth 2, 8 channels: a receptive field of 2 * 22 + 1 = 45 pixels (two 3x3
    // convolutions per level at scales 1, 2, 4 down and 2, 1 up, pools and 2x2
    // transposed convolutions).
    let cfg = UNetConfig::new(3, 2).base_channels(8).depth(2);
    UNet::load(gpu, cfg, &StateDict::synthetic(), "").unwrap()
}

fn max_abs(a: &ndarray::Array4<f32>, b: &ndarray::Array4<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b.iter())
        .fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn tiles_blend_into_the_untiled_output() {
    let gpu = common::gpu();
    let net = unet(gpu);
    // Batch 2, not a multiple of the tile's step.
    let x = common::random4(&mut common::rng(11), [2, 3, 100, 140]);
    let mut rec = gpu.recorder();
    let y = net
        .forward(&mut rec, &gpu.upload(x.view()).unwrap())
        .unwrap();
    let want = rec.download(&y).unwrap();
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    // Linear blending with a margin past the receptive field's half (22): exact.
    let params = TileParams::new((64, 80), 48)
        .blend(Blend::Linear { margin: 23 })
        .batch(3);
    let got = tiled_forward(gpu, &net, x.view(), &params).unwrap();
    let err = max_abs(&got, &want) / scale;
    eprintln!("tiled (linear, margin 23) vs untiled: relative {err:.1e}");
    assert!(err < 1e-5, "{err}");
    // A margin inside the receptive field: the seams show (two orders of magnitude above
    // rounding; small because the made-up weights' receptive field decays fast).
    let params = TileParams::new((48, 64), 16);
    let seams = max_abs(&tiled_forward(gpu, &net, x.view(), &params).unwrap(), &want) / scale;
    eprintln!("tiled (linear, margin 4) vs untiled: relative {seams:.1e}");
    assert!(seams > 100.0 * err.max(1e-7), "{seams}");
    // Gaussian blending: soft seams, never exact (tile borders keep some weight).
    let params = TileParams::new((48, 64), 32).blend(Blend::Gaussian { sigma: 0.25 });
    let soft = max_abs(&tiled_forward(gpu, &net, x.view(), &params).unwrap(), &want) / scale;
    eprintln!("tiled (gaussian) vs untiled: relative {soft:.1e}");
    assert!(soft < 0.1, "{soft}");
    // An image smaller than the tile is one tile.
    let small = x.slice(ndarray::s![..1, .., ..40, ..44]).to_owned();
    let mut rec = gpu.recorder();
    let y = net
        .forward(&mut rec, &gpu.upload(small.view()).unwrap())
        .unwrap();
    let whole = rec.download(&y).unwrap();
    let tiled = tiled_forward(gpu, &net, small.view(), &TileParams::new((48, 64), 16)).unwrap();
    assert_eq!(tiled, whole);
}

#[test]
fn an_image_beyond_the_binding_limit_runs_in_tiles() {
    // A device whose storage bindings hold 1 MiB: the 8-channel activations of a 256 x 256
    // image (2 MiB) do not fit in one pass.
    let small = Gpu::with_options(GpuOptions {
        max_storage_buffer_binding_size: Some(1 << 20),
        ..GpuOptions::default()
    })
    .unwrap();
    let net = unet(&small);
    let x = common::random4(&mut common::rng(12), [1, 3, 256, 256]);
    let mut rec = small.recorder();
    let untiled = small
        .upload(x.view())
        .and_then(|t| net.forward(&mut rec, &t));
    assert!(
        matches!(untiled, Err(Error::TooLarge { .. })),
        "{untiled:?}"
    );
    let params = TileParams::new((96, 96), 48)
        .blend(Blend::Linear { margin: 23 })
        .batch(1);
    let got = tiled_forward(&small, &net, x.view(), &params).unwrap();
    // The same network on a device without the limit, untiled.
    let gpu = common::gpu();
    let reference = unet(gpu);
    let mut rec = gpu.recorder();
    let y = reference
        .forward(&mut rec, &gpu.upload(x.view()).unwrap())
        .unwrap();
    let want = rec.download(&y).unwrap();
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let err = max_abs(&got, &want) / scale;
    eprintln!("256 x 256 in 96 x 96 tiles under a 1 MiB binding limit: relative {err:.1e}");
    assert!(err < 1e-5, "{err}");
}

#[test]
fn bad_tilings_are_typed_errors() {
    let gpu = common::gpu();
    let net = unet(gpu);
    let x = common::random4(&mut common::rng(13), [1, 3, 64, 64]);
    let cases = [
        (TileParams::new((0, 32), 8), "tile"),
        (TileParams::new((32, 32), 32), "overlap"),
        (TileParams::new((32, 32), 8).batch(0), "batch"),
        (
            TileParams::new((32, 32), 8).blend(Blend::Linear { margin: 4 }),
            "margin",
        ),
        (
            TileParams::new((32, 32), 8).blend(Blend::Gaussian { sigma: 0.0 }),
            "sigma",
        ),
    ];
    for (params, name) in cases {
        match tiled_forward(gpu, &net, x.view(), &params) {
            Err(Error::InvalidParam { name: n, .. }) => assert_eq!(n, name),
            other => panic!("{name}: {other:?}"),
        }
    }
    // A tile the network does not accept (under 4 pixels a side for depth 2).
    assert!(tiled_forward(gpu, &net, x.view(), &TileParams::new((3, 32), 1)).is_err());
}
