//! HRNet-OCR (HRNet-Semantic-Segmentation's `seg_hrnet_ocr.py`) beyond the networks
//! harness (`tests/networks.rs` runs the golden cases of `tests/golden/networks/` against
//! the PyTorch file in `tests/golden/third_party/hrnet_seg`): PyTorch's parameter counts,
//! the CPU reference against PyTorch, the outputs without the auxiliary logits and resized
//! to the input, and typed errors for configurations and inputs it cannot run.

mod common;

use segblocks::networks::{HrNetConfig, HrNetOcr, HrNetOcrConfig};
use segblocks::{Error, StateDict};

/// `sum(p.numel() for p in HighResolutionNet(config).parameters())` of seg_hrnet_ocr.py
/// with the published head (512 / 256 channels): HRNetV2-W48 + OCR (70.4 M, as the
/// repository's model zoo lists it) and W18-small v2 + OCR, for Cityscapes' 19 classes and
/// ADE20K's 150.
#[test]
fn parameters_are_pytorchs() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    for (name, classes, params) in [
        ("hrnet_w48", 19, 70_372_678),
        ("hrnet_w48", 150, 70_534_332),
        ("hrnet_w18_small_v2", 19, 6_379_278),
        ("hrnet_w18_small_v2", 150, 6_481_982),
    ] {
        let cfg = HrNetOcrConfig::from_name(name, classes).unwrap();
        let net = HrNetOcr::load(gpu, cfg, &sd, "").unwrap();
        let summary = net.summary([1, 3, 512, 1024]).unwrap();
        assert_eq!(summary.total_params(), params, "{name} {classes} classes");
    }
}

/// The golden case's configuration: a narrow trunk, five classes, a 20-channel head with
/// 13-channel attention, corners not aligned.
fn narrow() -> HrNetOcrConfig {
    let trunk = HrNetConfig {
        stem_width: 64,
        stage1_blocks: 1,
        stage1_planes: 8,
        modules: [1, 1, 1],
        blocks: [1, 1, 1],
        widths: [4, 8, 12, 6],
    };
    HrNetOcrConfig::new(trunk, 5)
        .ocr_mid_channels(20)
        .ocr_key_channels(13)
        .align_corners(false)
}

/// The CPU reference against PyTorch's logits and auxiliary logits (the harness checks
/// the GPU's) at an odd size, batch 3; without `aux_output` the logits alone, the same;
/// with `resize_to_input` both outputs at the input's size, the GPU's as the reference's.
#[test]
fn reference_matches_pytorch_and_outputs_follow_the_configuration() {
    let dir = format!("{}/tests/golden/networks", env!("CARGO_MANIFEST_DIR"));
    let file =
        StateDict::load(format!("{dir}/hrnet_ocr_narrow_noalign_batch3.safetensors")).unwrap();
    let x = common::stored4(&file, "x").unwrap();
    let want = common::stored4(&file, "out").unwrap();
    let want_aux = common::stored4(&file, "aux").unwrap();
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let net = HrNetOcr::load(gpu, narrow().aux_output(true), &sd, "").unwrap();
    let got = net.reference_all(x.view()).unwrap();
    assert_eq!(got.len(), 2);
    for (got, want, what) in [(&got[0], &want, "logits"), (&got[1], &want_aux, "aux")] {
        let err = common::relative(got, want);
        assert!(err < 1e-5, "{what}: {err}");
    }

    let net = HrNetOcr::load(gpu, narrow(), &sd, "").unwrap();
    let xt = gpu.upload(x.view()).unwrap();
    let mut rec = gpu.recorder();
    let outs = net.forward_all(&mut rec, &xt).unwrap();
    assert_eq!(outs.len(), 1);
    let y = rec.download(&outs[0]).unwrap();
    let err = common::relative(&y, &want);
    assert!(err < 1e-4, "logits alone: {err}");

    let cfg = narrow().aux_output(true).resize_to_input(true);
    let net = HrNetOcr::load(gpu, cfg, &sd, "").unwrap();
    let mut rec = gpu.recorder();
    let outs = net.forward_all(&mut rec, &xt).unwrap();
    let outs: Vec<_> = outs.iter().collect();
    let got = rec.download_many(&outs).unwrap();
    let resized = net.reference_all(x.view()).unwrap();
    for (g, r) in got.iter().zip(&resized) {
        assert_eq!(g.shape(), [3, 5, 37, 50]);
        let err = common::relative(g, r);
        assert!(err < 1e-4, "{err}");
    }
}

/// Any size runs (the logits at a quarter of it, rounded up at each stride); other
/// channel counts, an empty input, no class, no head channel, attention wider than the
/// kernel keeps in registers, an unknown name and a missing weight are typed errors
/// naming what is wrong.
#[test]
fn inputs_and_configurations_it_cannot_run_are_typed_errors() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let cfg = HrNetOcrConfig::from_name("hrnet_w18_small_v1", 4)
        .unwrap()
        .ocr_mid_channels(16)
        .ocr_key_channels(8);
    let net = HrNetOcr::load(gpu, cfg, &sd, "").unwrap();
    assert_eq!(net.output_shape([2, 3, 45, 61]).unwrap(), [2, 4, 12, 16]);
    assert_eq!(net.output_shape([1, 3, 1, 1]).unwrap(), [1, 4, 1, 1]);
    assert!(matches!(
        net.output_shape([1, 4, 64, 64]),
        Err(Error::ShapeMismatch { name: "input", .. })
    ));
    assert!(net.output_shape([1, 3, 0, 64]).is_err());
    let bad = |cfg: HrNetOcrConfig| match HrNetOcr::load(gpu, cfg, &sd, "") {
        Err(Error::InvalidParam { name, .. }) => name,
        other => panic!("{cfg:?}: {other:?}"),
    };
    assert_eq!(bad(cfg.ocr_key_channels(257)), "ocr_key_channels");
    assert_eq!(bad(cfg.ocr_key_channels(0)), "ocr_key_channels");
    assert_eq!(bad(cfg.ocr_mid_channels(0)), "ocr_mid_channels");
    assert_eq!(
        bad(HrNetOcrConfig {
            num_classes: 0,
            ..cfg
        }),
        "num_classes"
    );
    let trunk = HrNetConfig {
        widths: [16, 0, 64, 128],
        ..cfg.trunk
    };
    assert_eq!(bad(HrNetOcrConfig { trunk, ..cfg }), "widths");
    assert!(matches!(
        HrNetOcrConfig::from_name("hrnet_w99", 19),
        Err(Error::InvalidParam { name: "name", .. })
    ));
    assert!(HrNetOcr::load(gpu, cfg, &StateDict::new(), "").is_err());
}
