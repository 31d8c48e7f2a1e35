//! torchvision's segmentation models (`fcn_resnet50/101`, `deeplabv3_resnet50/101`,
//! `deeplabv3_mobilenet_v3_large`) against torchvision itself: the outputs and auxiliary
//! outputs of `tests/golden/make_golden_segmentation.py`, which fills each model with the
//! weights `StateDict::synthetic()` makes up (the same generator, bit for bit) so that no
//! 100+ MB state dict is committed.

mod common;

use ndarray::Array4;
use segblocks::networks::{ResNetConfig, ResNetFeatures, SegmentationConfig, SegmentationModel};
use segblocks::StateDict;

struct Golden {
    x: Array4<f32>,
    out: Array4<f32>,
    aux: Array4<f32>,
}

fn golden(name: &str) -> Golden {
    let path = format!(
        "{}/tests/golden/segmentation/{name}.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    let sd = StateDict::load(path).unwrap();
    let get = |n: &str| common::stored4(&sd, n).unwrap();
    Golden {
        x: get("x"),
        out: get("out"),
        aux: get("aux"),
    }
}

/// The model with the auxiliary head, its GPU outputs against torchvision's, and its
/// parameter count against torchvision's (`parameters()`, auxiliary head included).
fn check(name: &str, cfg: SegmentationConfig, params: u64, reference: bool) {
    let gpu = common::gpu();
    let g = golden(name);
    let net =
        SegmentationModel::load(gpu, cfg.aux_loss(true), &StateDict::synthetic(), "").unwrap();
    let s = g.x.shape();
    let summary = net.summary([s[0], s[1], s[2], s[3]]).unwrap();
    assert_eq!(summary.total_params(), params, "{name}");
    let mut rec = gpu.recorder();
    let outs = net
        .forward_all(&mut rec, &gpu.upload(g.x.view()).unwrap())
        .unwrap();
    let got = rec.download_many(&[&outs[0], &outs[1]]).unwrap();
    let (out, aux) = (
        common::relative(&got[0], &g.out),
        common::relative(&got[1], &g.aux),
    );
    eprintln!("{name}: GPU vs torchvision, relative {out:.1e} (out), {aux:.1e} (aux)");
    assert!(out < 1e-3 && aux < 1e-3, "{name}: {out} {aux}");
    if reference {
        let want = net.reference_all(g.x.view()).unwrap();
        let (out, aux) = (
            common::relative(&want[0], &g.out),
            common::relative(&want[1], &g.aux),
        );
        eprintln!("{name}: reference vs torchvision, relative {out:.1e}, {aux:.1e}");
        assert!(out < 1e-4 && aux < 1e-4, "{name}: reference {out} {aux}");
    }
}

#[test]
fn fcn_resnet50_matches_torchvision() {
    // (The CPU reference of a ResNet-50 takes over a minute: the blocks' references are
    // checked on their own, and the MobileNetV3 model's here.)
    check(
        "fcn_resnet50",
        SegmentationConfig::fcn_resnet50(3),
        35_308_358,
        false,
    );
}

#[test]
fn deeplabv3_resnet50_matches_torchvision() {
    check(
        "deeplabv3_resnet50",
        SegmentationConfig::deeplabv3_resnet50(3),
        41_994_822,
        false,
    );
}

#[test]
fn deeplabv3_mobilenet_v3_large_matches_torchvision() {
    check(
        "deeplabv3_mobilenet_v3_large",
        SegmentationConfig::deeplabv3_mobilenet_v3_large(3),
        11_024_504,
        true,
    );
}

#[test]
fn resnet101_models_match_torchvision() {
    check(
        "fcn_resnet101",
        SegmentationConfig::fcn_resnet101(3),
        54_300_486,
        false,
    );
    check(
        "deeplabv3_resnet101",
        SegmentationConfig::deeplabv3_resnet101(3),
        60_986_950,
        false,
    );
}

#[test]
fn resnet50_features_match_torchvision_at_every_stage() {
    let gpu = common::gpu();
    let path = format!(
        "{}/tests/golden/segmentation/resnet50_features.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    let sd = StateDict::load(path).unwrap();
    let get = |n: &str| common::stored4(&sd, n).unwrap();
    let net =
        ResNetFeatures::load(gpu, ResNetConfig::resnet50(), &StateDict::synthetic(), "").unwrap();
    let x = get("x");
    // ResNet-50 without fc: 25,557,032 - 2,049,000.
    assert_eq!(
        net.summary([2, 3, 45, 61]).unwrap().total_params(),
        23_508_032
    );
    let mut rec = gpu.recorder();
    let outs = net
        .forward_all(&mut rec, &gpu.upload(x.view()).unwrap())
        .unwrap();
    let outs: Vec<_> = outs.iter().collect();
    let got = rec.download_many(&outs).unwrap();
    assert_eq!(got[3].shape(), [2, 256, 12, 16]);
    for (i, layer) in ["layer4", "layer3"].iter().enumerate() {
        let err = common::relative(&got[i], &get(layer));
        eprintln!("resnet50 {layer} {:?}: relative {err:.1e}", got[i].shape());
        assert!(err < 1e-3, "{layer}: {err}");
    }
}
