//! PIDNet beyond the networks harness (`tests/networks.rs` runs the golden cases of
//! `tests/golden/networks/` against XuJiacong/PIDNet's model, vendored in
//! `tests/golden/third_party/pidnet`): PyTorch's parameter counts of the three presets, the
//! CPU reference against PyTorch, and typed errors for inputs and configurations PyTorch's
//! PIDNet cannot run.

mod common;

use segblocks::networks::{PidNet, PidNetConfig};
use segblocks::{Error, StateDict};

/// `sum(p.numel() for p in PIDNet(...).parameters())` for `get_pred_model`'s presets and
/// `get_seg_model`'s (`augment=True`).
#[test]
fn parameters_are_pytorchs() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    for (name, classes, augment, params) in [
        ("pidnet_s", 19, false, 7_625_715),
        ("pidnet_s", 19, true, 7_720_935),
        ("pidnet_s", 11, false, 7_624_683),
        ("pidnet_m", 19, false, 28_538_515),
        ("pidnet_m", 19, true, 28_763_111),
        ("pidnet_l", 19, false, 36_939_571),
        ("pidnet_l", 19, true, 37_314_311),
        ("pidnet_l", 11, false, 36_937_515),
    ] {
        let cfg = PidNetConfig::from_name(name, classes)
            .unwrap()
            .augment(augment);
        let net = PidNet::load(gpu, cfg, &sd, "").unwrap();
        let summary = net.summary([1, 3, 1024, 2048]).unwrap();
        assert_eq!(summary.total_params(), params, "{cfg:?}");
    }
}

/// The CPU reference against PyTorch (the harness checks the GPU's): PIDNet-S's form at
/// batch 2, PIDNet-L's with the auxiliary heads.
#[test]
fn reference_matches_pytorch() {
    let dir = format!("{}/tests/golden/networks", env!("CARGO_MANIFEST_DIR"));
    let sd = StateDict::synthetic();
    for (file, cfg) in [
        (
            "pidnet_small_odd_batch2",
            PidNetConfig {
                m: 2,
                n: 3,
                num_classes: 5,
                planes: 6,
                ppm_planes: 10,
                head_planes: 12,
                augment: false,
            },
        ),
        (
            "pidnet_large_augment",
            PidNetConfig {
                m: 3,
                n: 4,
                num_classes: 3,
                planes: 4,
                ppm_planes: 6,
                head_planes: 8,
                augment: true,
            },
        ),
    ] {
        let file = StateDict::load(format!("{dir}/{file}.safetensors")).unwrap();
        let x = common::stored4(&file, "x").unwrap();
        let net = PidNet::load(common::gpu(), cfg, &sd, "").unwrap();
        let got = net.reference_all(x.view()).unwrap();
        let names = ["out", "side1", "side2"];
        assert_eq!(got.len(), if cfg.augment { 3 } else { 1 });
        for (y, name) in got.iter().zip(names) {
            let err = common::relative(y, &common::stored4(&file, name).unwrap());
            assert!(err < 1e-5, "{cfg:?} {name}: {err}");
        }
    }
}

/// Sides that are not multiples of 8 (PyTorch's D branch cannot add the resized maps
/// there), channel counts other than 3, zero widths and unknown names are typed errors
/// naming the parameter; the logits are at 1/8 and the boundary map has one channel.
#[test]
fn inputs_and_configurations_it_cannot_run_are_typed_errors() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let cfg = PidNetConfig::pidnet_s(19).augment(true);
    let net = PidNet::load(gpu, cfg, &sd, "").unwrap();
    assert_eq!(net.output_shape([2, 3, 8, 8]).unwrap(), [2, 19, 1, 1]);
    assert_eq!(
        net.output_shape([1, 3, 1024, 2048]).unwrap(),
        [1, 19, 128, 256]
    );
    let summary = net.summary([1, 3, 64, 96]).unwrap();
    assert!(format!("{summary}").contains("seghead_d"), "{summary}");
    for shape in [[1, 3, 60, 64], [1, 3, 64, 60], [1, 3, 0, 8], [1, 3, 7, 8]] {
        assert!(
            matches!(
                net.output_shape(shape),
                Err(Error::InvalidParam { name: "input", .. })
            ),
            "{shape:?}"
        );
    }
    assert!(matches!(
        net.output_shape([1, 1, 64, 64]),
        Err(Error::ShapeMismatch { name: "input", .. })
    ));
    for (cfg, name) in [
        (PidNetConfig::pidnet_s(0), "num_classes"),
        (
            PidNetConfig {
                head_planes: 0,
                ..cfg
            },
            "head_planes",
        ),
        (PidNetConfig { planes: 0, ..cfg }, "planes"),
        (
            PidNetConfig {
                ppm_planes: 0,
                ..cfg
            },
            "ppm_planes",
        ),
    ] {
        let err = PidNet::load(gpu, cfg, &sd, "").unwrap_err();
        assert!(
            matches!(err, Error::InvalidParam { name: n, .. } if n == name),
            "{cfg:?}: {err}"
        );
    }
    assert!(matches!(
        PidNetConfig::from_name("pidnet_xl", 19),
        Err(Error::InvalidParam { name: "name", .. })
    ));
    // A checkpoint of another width: the tensor is named.
    let mut wrong = StateDict::synthetic();
    wrong.insert(
        "model.conv1.0.weight",
        ndarray::ArrayD::zeros(ndarray::IxDyn(&[16, 3, 3, 3])),
    );
    let err = PidNet::load(gpu, cfg, &wrong, "model").unwrap_err();
    assert!(format!("{err}").contains("model.conv1.0.weight"), "{err}");
}
