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

/// torchvision's `{name}()` as a feature extractor: `layer3` and `layer4` against
/// `{name}_features.safetensors`, the parameter count (without `fc`) against torchvision's
/// and `layer1`'s shape.
fn check_features(name: &str, cfg: ResNetConfig, params: u64, layer1: [usize; 4]) {
    let gpu = common::gpu();
    let path = format!(
        "{}/tests/golden/segmentation/{name}_features.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    let sd = StateDict::load(path).unwrap();
    let get = |n: &str| common::stored4(&sd, n).unwrap();
    let net = ResNetFeatures::load(gpu, cfg, &StateDict::synthetic(), "").unwrap();
    let x = get("x");
    let s = x.shape();
    assert_eq!(
        net.summary([s[0], s[1], s[2], s[3]])
            .unwrap()
            .total_params(),
        params,
        "{name}"
    );
    let mut rec = gpu.recorder();
    let outs = net
        .forward_all(&mut rec, &gpu.upload(x.view()).unwrap())
        .unwrap();
    let outs: Vec<_> = outs.iter().collect();
    let got = rec.download_many(&outs).unwrap();
    assert_eq!(got[3].shape(), layer1, "{name}");
    for (i, layer) in ["layer4", "layer3"].iter().enumerate() {
        let err = common::relative(&got[i], &get(layer));
        eprintln!("{name} {layer} {:?}: relative {err:.1e}", got[i].shape());
        assert!(err < 1e-3, "{name} {layer}: {err}");
    }
}

#[test]
fn resnet50_features_match_torchvision_at_every_stage() {
    // ResNet-50 without fc: 25,557,032 - 2,049,000.
    check_features(
        "resnet50",
        ResNetConfig::resnet50(),
        23_508_032,
        [2, 256, 12, 16],
    );
}

/// The basic-block ResNets (ResNet-18: batch 2, 45 x 61; ResNet-34: 37 x 53).
#[test]
fn resnet18_and_resnet34_features_match_torchvision() {
    check_features(
        "resnet18",
        ResNetConfig::resnet18(),
        11_176_512,
        [2, 64, 12, 16],
    );
    check_features(
        "resnet34",
        ResNetConfig::resnet34(),
        21_284_672,
        [2, 64, 10, 14],
    );
}

/// The presets that only change the bottlenecks' groups and width: ResNeXt-50 32x4d and
/// Wide ResNet-50-2 (batch 1, 33 x 40).
#[test]
fn resnext50_and_wide_resnet50_features_match_torchvision() {
    check_features(
        "resnext50_32x4d",
        ResNetConfig::resnext50_32x4d(),
        22_979_904,
        [1, 256, 9, 10],
    );
    check_features(
        "wide_resnet50_2",
        ResNetConfig::wide_resnet50_2(),
        66_834_240,
        [1, 256, 9, 10],
    );
}

/// What torchvision refuses to build with basic blocks is a typed error naming the
/// parameter: groups or a width per group other than (1, 64), and any block that would
/// be dilated (a stage after the first dilated one, or the rest of a dilated stage); a
/// dilation that reaches no block (the last stage of one block) is built, as there.
#[test]
fn basic_block_resnets_refuse_what_torchvision_refuses() {
    use segblocks::blocks::{BasicBlock, BasicBlockConfig};
    use segblocks::Error;
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let refused = |cfg: ResNetConfig, name: &str| {
        let e = ResNetFeatures::load(gpu, cfg, &sd, "");
        assert!(
            matches!(&e, Err(Error::InvalidParam { name: n, .. }) if *n == name),
            "{cfg:?}: {:?}",
            e.err()
        );
    };
    refused(ResNetConfig::resnet18().groups(32, 4), "groups");
    refused(ResNetConfig::resnet34().groups(1, 128), "groups");
    for dilate in [
        [false, true, true],
        [false, false, true],
        [true, false, false],
    ] {
        refused(
            ResNetConfig::resnet18().replace_stride_with_dilation(dilate),
            "replace_stride_with_dilation",
        );
    }
    let mut one_block = ResNetConfig::resnet18().replace_stride_with_dilation([false, false, true]);
    one_block.layers = [1, 1, 1, 1];
    let net = ResNetFeatures::load(gpu, one_block, &sd, "").unwrap();
    assert_eq!(net.output_shape([1, 3, 64, 64]).unwrap(), [1, 512, 4, 4]);
    let block = |cfg: BasicBlockConfig| BasicBlock::load(gpu, cfg, &sd, "layer1.0").err();
    assert!(matches!(
        block(BasicBlockConfig::new(64, 64).dilation(2)),
        Some(Error::InvalidParam {
            name: "dilation",
            ..
        })
    ));
    assert!(matches!(
        block(BasicBlockConfig::new(64, 64).groups(2, 64)),
        Some(Error::InvalidParam { name: "groups", .. })
    ));
    // A skip without projection where the channels change.
    assert!(matches!(
        block(BasicBlockConfig::new(64, 128).downsample(false)),
        Some(Error::InvalidParam {
            name: "downsample",
            ..
        })
    ));
}
