//! HRNetV2 for segmentation (HRNet-Semantic-Segmentation's `seg_hrnet.py`) beyond the
//! networks harness (`tests/networks.rs` runs the golden cases of `tests/golden/networks/`
//! against the PyTorch file in `tests/golden/third_party/hrnet_seg`): PyTorch's parameter
//! counts, the CPU reference against PyTorch, the logits resized to the input, and typed
//! errors for configurations and inputs PyTorch's model cannot run.

mod common;

use segblocks::networks::{HrNetConfig, HrNetSeg, HrNetSegConfig};
use segblocks::{Error, StateDict};

/// `sum(p.numel() for p in HighResolutionNet(config).parameters())` for the published
/// configurations with 19 classes, the classifier 1x1 and 3x3.
#[test]
fn parameters_are_pytorchs() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    for (name, k1, k3) in [
        ("hrnet_w18_small_v1", 1_540_819, 1_577_299),
        ("hrnet_w18_small_v2", 3_939_579, 3_980_619),
        ("hrnet_w18", 9_641_119, 9_682_159),
        ("hrnet_w48", 65_859_379, 65_968_819),
    ] {
        for (kernel, params) in [(1, k1), (3, k3)] {
            let cfg = HrNetSegConfig::from_name(name, 19)
                .unwrap()
                .final_conv_kernel(kernel);
            let net = HrNetSeg::load(gpu, cfg, &sd, "").unwrap();
            let summary = net.summary([1, 3, 512, 1024]).unwrap();
            assert_eq!(summary.total_params(), params, "{name} {kernel}x{kernel}");
        }
    }
}

/// The golden case's configuration: W18-small v2, three classes, the 3x3 classifier,
/// corners aligned.
fn small_v2_k3_align() -> HrNetSegConfig {
    HrNetSegConfig::from_name("hrnet_w18_small_v2", 3)
        .unwrap()
        .final_conv_kernel(3)
        .align_corners(true)
}

/// The CPU reference against PyTorch (the harness checks the GPU's) at an odd size; with
/// `resize_to_input` the GPU's logits are the quarter-size ones resized to the input
/// (bilinear, corners as configured), the reference's too.
#[test]
fn reference_matches_pytorch_and_resizes_to_the_input() {
    let dir = format!("{}/tests/golden/networks", env!("CARGO_MANIFEST_DIR"));
    let file =
        StateDict::load(format!("{dir}/hrnet_seg_w18_small_v2_k3_align.safetensors")).unwrap();
    let x = common::stored4(&file, "x").unwrap();
    let want = common::stored4(&file, "out").unwrap();
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let net = HrNetSeg::load(gpu, small_v2_k3_align(), &sd, "").unwrap();
    let got = net.reference(x.view()).unwrap();
    let err = common::relative(&got, &want);
    assert!(err < 1e-5, "{err}");

    let cfg = small_v2_k3_align().resize_to_input(true);
    let net = HrNetSeg::load(gpu, cfg, &sd, "").unwrap();
    assert_eq!(net.output_shape([1, 3, 37, 50]).unwrap(), [1, 3, 37, 50]);
    let mut rec = gpu.recorder();
    let y = net
        .forward(&mut rec, &gpu.upload(x.view()).unwrap())
        .unwrap();
    let y = rec.download(&y).unwrap();
    let resized = net.reference(x.view()).unwrap();
    let err = common::relative(&y, &resized);
    assert!(err < 1e-4, "{err}");
    // Aligned corners: the resized map's corners are the quarter-size logits' corners.
    let (h, w) = (want.shape()[2], want.shape()[3]);
    for c in 0..3 {
        for (r, q) in [(0, 0), (36, 49)] {
            let (sr, sq) = (
                if r == 0 { 0 } else { h - 1 },
                if q == 0 { 0 } else { w - 1 },
            );
            let d = (resized[[0, c, r, q]] - want[[0, c, sr, sq]]).abs();
            assert!(d < 1e-4, "corner ({r}, {q}) of class {c}: {d}");
        }
    }
}

/// Any size runs (the logits at a quarter of it, rounded up at each stride); other
/// channel counts, an empty input, no class, a classifier kernel other than 1 or 3, an
/// unknown name, a stem other than 64 wide and a missing weight are typed errors naming
/// what is wrong.
#[test]
fn inputs_and_configurations_it_cannot_run_are_typed_errors() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let cfg = HrNetSegConfig::from_name("hrnet_w18_small_v1", 4).unwrap();
    let net = HrNetSeg::load(gpu, cfg, &sd, "").unwrap();
    assert_eq!(net.output_shape([2, 3, 45, 61]).unwrap(), [2, 4, 12, 16]);
    assert_eq!(net.output_shape([1, 3, 1, 1]).unwrap(), [1, 4, 1, 1]);
    assert!(matches!(
        net.output_shape([1, 4, 64, 64]),
        Err(Error::ShapeMismatch { name: "input", .. })
    ));
    assert!(net.output_shape([1, 3, 0, 64]).is_err());
    let bad = |cfg: HrNetSegConfig| match HrNetSeg::load(gpu, cfg, &sd, "") {
        Err(Error::InvalidParam { name, .. }) => name,
        other => panic!("{cfg:?}: {other:?}"),
    };
    assert_eq!(bad(cfg.final_conv_kernel(2)), "final_conv_kernel");
    assert_eq!(
        bad(HrNetSegConfig {
            num_classes: 0,
            ..cfg
        }),
        "num_classes"
    );
    let trunk = HrNetConfig {
        stem_width: 32,
        ..cfg.trunk
    };
    assert_eq!(bad(HrNetSegConfig { trunk, ..cfg }), "stem_width");
    let trunk = HrNetConfig {
        widths: [16, 0, 64, 128],
        ..cfg.trunk
    };
    assert_eq!(bad(HrNetSegConfig { trunk, ..cfg }), "widths");
    assert!(matches!(
        HrNetSegConfig::from_name("hrnet_w99", 19),
        Err(Error::InvalidParam { name: "name", .. })
    ));
    assert!(HrNetSeg::load(gpu, cfg, &StateDict::new(), "").is_err());
}
