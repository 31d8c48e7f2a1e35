//! The classic segmentation architectures (U-Net, SegNet, FCN-8s) against the PyTorch modules of
//! `tests/golden/make_golden_classic.py`, with the weights `StateDict::synthetic()` makes
//! up on both sides.

mod common;

use ndarray::Array4;
use segblocks::networks::{Fcn8s, Fcn8sConfig, SegNet, SegNetConfig, UNet, UNetConfig};
use segblocks::{Error, StateDict};

fn golden(name: &str) -> (Array4<f32>, Array4<f32>) {
    let path = format!(
        "{}/tests/golden/classic/{name}.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    let sd = StateDict::load(path).unwrap();
    let get = |n: &str| common::stored4(&sd, n).unwrap();
    (get("x"), get("out"))
}

fn run<A: segblocks::blocks::Architecture>(
    name: &str,
    net: &segblocks::blocks::Model<A>,
    params: u64,
    reference: bool,
) {
    let gpu = common::gpu();
    let (x, want) = golden(name);
    let s = x.shape();
    assert_eq!(
        net.summary([s[0], s[1], s[2], s[3]])
            .unwrap()
            .total_params(),
        params,
        "{name}"
    );
    let mut rec = gpu.recorder();
    let y = net
        .forward(&mut rec, &gpu.upload(x.view()).unwrap())
        .unwrap();
    let got = rec.download(&y).unwrap();
    let err = common::relative(&got, &want);
    eprintln!("{name}: GPU vs PyTorch relative {err:.1e}");
    assert!(err < 1e-3, "{name}: {err}");
    if reference {
        let err = common::relative(&net.reference(x.view()).unwrap(), &want);
        eprintln!("{name}: reference vs PyTorch relative {err:.1e}");
        assert!(err < 1e-4, "{name}: reference {err}");
    }
}

#[test]
fn unet_matches_pytorch() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let cfg = UNetConfig::new(3, 2).base_channels(16);
    let net = UNet::load(gpu, cfg, &sd, "").unwrap();
    run("unet", &net, 1_942_594, false);
    let cfg = UNetConfig::new(1, 3).base_channels(8).depth(3);
    let net = UNet::load(gpu, cfg, &sd, "").unwrap();
    run("unet_depth3", &net, 121_051, true);
    // milesial's full U-Net: 31,037,698 parameters for 3 channels and 2 classes.
    let full = UNet::load(gpu, UNetConfig::new(3, 2), &sd, "").unwrap();
    assert_eq!(
        full.summary([1, 3, 64, 64]).unwrap().total_params(),
        31_037_698
    );
    // milesial's bilinear U-Net: 17,263,042 parameters (half-width deepest stage).
    let bilinear = UNetConfig::new(3, 2).bilinear(true);
    let bilinear = UNet::load(gpu, bilinear, &sd, "").unwrap();
    assert_eq!(
        bilinear.summary([1, 3, 64, 64]).unwrap().total_params(),
        17_263_042
    );
    // Sizes smaller than 2^depth are refused by name.
    assert!(matches!(
        full.output_shape([1, 3, 15, 64]),
        Err(Error::InvalidParam { name: "input", .. })
    ));
}

/// Sizes that are not multiples of 2^depth (each upsampled map zero-padded to its skip's
/// size, as milesial's `Up` does) and the bilinear variant, against PyTorch.
#[test]
fn unet_matches_pytorch_at_odd_sizes_and_bilinear() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let cfg = UNetConfig::new(3, 2).base_channels(8);
    let net = UNet::load(gpu, cfg, &sd, "").unwrap();
    assert_eq!(net.output_shape([2, 3, 45, 67]).unwrap(), [2, 2, 45, 67]);
    run("unet_odd_size", &net, 486_562, true);
    let cfg = UNetConfig::new(3, 3).base_channels(8).bilinear(true);
    let net = UNet::load(gpu, cfg, &sd, "").unwrap();
    run("unet_bilinear", &net, 270_915, true);
    let cfg = UNetConfig::new(2, 1)
        .base_channels(8)
        .depth(3)
        .bilinear(true);
    let net = UNet::load(gpu, cfg, &sd, "").unwrap();
    run("unet_bilinear_depth3", &net, 67_497, false);
    // Where the sizes match no padding pass runs; where one is odd, it does.
    let x = gpu
        .upload(Array4::<f32>::zeros([1, 2, 24, 40]).view())
        .unwrap();
    let mut rec = gpu.recorder();
    net.forward(&mut rec, &x).unwrap();
    assert!(!rec
        .traffic()
        .dispatches
        .iter()
        .any(|d| d.kernel == "pad.wgsl"));
    let mut rec = gpu.recorder();
    let odd = gpu
        .upload(Array4::<f32>::zeros([1, 2, 25, 40]).view())
        .unwrap();
    net.forward(&mut rec, &odd).unwrap();
    assert!(rec
        .traffic()
        .dispatches
        .iter()
        .any(|d| d.kernel == "pad.wgsl"));
}

#[test]
fn segnet_matches_pytorch_at_odd_sizes() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let cfg = SegNetConfig::vgg16_bn(3, 4).stages(vec![16, 32, 64, 64, 64], vec![2, 2, 3, 3, 3]);
    let net = SegNet::load(gpu, cfg, &sd, "").unwrap();
    run("segnet", &net, 664_852, true);
    let net = SegNet::load(gpu, SegNetConfig::vgg16_bn(3, 5), &sd, "").unwrap();
    run("segnet_vgg16", &net, 29_474_949, false);
    assert!(matches!(
        net.output_shape([1, 3, 16, 64]),
        Err(Error::InvalidParam { name: "input", .. })
    ));
    let bad = SegNetConfig::vgg16_bn(3, 5).stages(vec![8, 8], vec![2]);
    assert!(matches!(
        SegNet::load(gpu, bad, &sd, ""),
        Err(Error::InvalidParam { name: "convs", .. })
    ));
}

#[test]
fn fcn8s_matches_pytorch_with_its_crops() {
    let gpu = common::gpu();
    let cfg = Fcn8sConfig::new(3).widths([8, 16, 32, 64, 64], 96);
    let net = Fcn8s::load(gpu, cfg, &StateDict::synthetic(), "").unwrap();
    run("fcn8s", &net, 544_209, true);
    // Another size: the crops follow it.
    assert_eq!(net.output_shape([1, 3, 1, 500]).unwrap(), [1, 3, 1, 500]);
    assert!(matches!(
        net.output_shape([1, 4, 32, 32]),
        Err(Error::ShapeMismatch { name: "input", .. })
    ));
}

#[test]
fn crop_matches_the_reference_and_refuses_windows_outside() {
    use segblocks::ops::copy::{crop, CropParams2d};
    let gpu = common::gpu();
    let x = common::random4(&mut common::rng(9), [2, 3, 11, 13]);
    let p = CropParams2d::new((3, 5), (7, 6));
    let mut rec = gpu.recorder();
    let y = crop(&mut rec, &p, &gpu.upload(x.view()).unwrap()).unwrap();
    let got = rec.download(&y).unwrap();
    assert_eq!(got, segblocks::reference::copy::crop(&p, x.view()).unwrap());
    assert_eq!(got[[1, 2, 0, 0]], x[[1, 2, 3, 5]]);
    let outside = CropParams2d::new((5, 5), (7, 6));
    assert!(matches!(
        outside.output_shape([2, 3, 11, 13]),
        Err(Error::InvalidParam { name: "offset", .. })
    ));
    assert!(matches!(
        CropParams2d::new((0, 0), (0, 2)).output_shape([1, 1, 4, 4]),
        Err(Error::InvalidParam { name: "size", .. })
    ));
}
