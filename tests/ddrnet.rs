//! DDRNet beyond the networks harness (`tests/networks.rs` runs the golden cases of
//! `tests/golden/networks/` against ydhongHIT/DDRNet's model, vendored in
//! `tests/golden/third_party/ddrnet`): PyTorch's parameter counts of the three presets, the
//! CPU reference against PyTorch, and typed errors for inputs and configurations PyTorch's
//! DDRNet cannot run.

mod common;

use segblocks::networks::{DdrNet, DdrNetConfig};
use segblocks::{Error, StateDict};

/// `sum(p.numel() for p in DualResNet(...).parameters())` for the three files' models,
/// with and without the auxiliary head.
#[test]
fn parameters_are_pytorchs() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    for (name, classes, augment, params) in [
        ("ddrnet_23_slim", 19, false, 5_695_987),
        ("ddrnet_23_slim", 19, true, 5_734_342),
        ("ddrnet_23_slim", 11, false, 5_695_467),
        ("ddrnet_23", 19, false, 20_148_947),
        ("ddrnet_23", 19, true, 20_299_366),
        ("ddrnet_39", 19, false, 32_360_275),
        ("ddrnet_39", 19, true, 32_660_838),
        ("ddrnet_39", 11, false, 32_358_219),
    ] {
        let cfg = DdrNetConfig::from_name(name, classes)
            .unwrap()
            .augment(augment);
        let net = DdrNet::load(gpu, cfg, &sd, "").unwrap();
        let summary = net.summary([1, 3, 1024, 2048]).unwrap();
        assert_eq!(summary.total_params(), params, "{cfg:?}");
    }
}

/// The configuration of the golden case `ddrnet_23_odd_batch2`.
fn odd_batch2_config() -> DdrNetConfig {
    DdrNetConfig {
        layers: [2, 1, 3, 2],
        num_classes: 5,
        planes: 6,
        spp_planes: 10,
        head_planes: 12,
        augment: false,
        split_stage3: false,
    }
}

/// The CPU reference against PyTorch (the harness checks the GPU's): the 23 form at batch
/// 2, DDRNet-39's split third stage with the auxiliary head.
#[test]
fn reference_matches_pytorch() {
    let dir = format!("{}/tests/golden/networks", env!("CARGO_MANIFEST_DIR"));
    let sd = StateDict::synthetic();
    for (file, cfg) in [
        ("ddrnet_23_odd_batch2", odd_batch2_config()),
        (
            "ddrnet_39_augment",
            DdrNetConfig {
                layers: [1, 2, 4, 3],
                num_classes: 3,
                planes: 4,
                spp_planes: 6,
                head_planes: 8,
                augment: true,
                split_stage3: true,
            },
        ),
    ] {
        let file = StateDict::load(format!("{dir}/{file}.safetensors")).unwrap();
        let x = common::stored4(&file, "x").unwrap();
        let net = DdrNet::load(common::gpu(), cfg, &sd, "").unwrap();
        let got = net.reference_all(x.view()).unwrap();
        assert_eq!(got.len(), if cfg.augment { 2 } else { 1 });
        for (y, name) in got.iter().zip(["out", "side1"]) {
            let err = common::relative(y, &common::stored4(&file, name).unwrap());
            assert!(err < 1e-5, "{cfg:?} {name}: {err}");
        }
    }
}

/// Sides that are not multiples of 8 (PyTorch's high branch cannot add the resized maps
/// there), channel counts other than 3, zero widths and unknown names are typed errors
/// naming the parameter; the logits are at 1/8.
#[test]
fn inputs_and_configurations_it_cannot_run_are_typed_errors() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let cfg = DdrNetConfig::ddrnet_23_slim(19).augment(true);
    let net = DdrNet::load(gpu, cfg, &sd, "").unwrap();
    assert_eq!(net.output_shape([2, 3, 8, 8]).unwrap(), [2, 19, 1, 1]);
    assert_eq!(
        net.output_shape([1, 3, 1024, 2048]).unwrap(),
        [1, 19, 128, 256]
    );
    let summary = net.summary([1, 3, 64, 96]).unwrap();
    assert!(format!("{summary}").contains("seghead_extra"), "{summary}");
    for shape in [[1, 3, 60, 64], [1, 3, 64, 60], [1, 3, 0, 8], [1, 3, 12, 8]] {
        assert!(
            matches!(
                net.output_shape(shape),
                Err(Error::InvalidParam { name: "input", .. })
            ),
            "{shape:?}"
        );
    }
    assert!(matches!(
        net.output_shape([1, 4, 64, 64]),
        Err(Error::ShapeMismatch { name: "input", .. })
    ));
    for (cfg, name) in [
        (DdrNetConfig::ddrnet_23(0), "num_classes"),
        (DdrNetConfig { planes: 0, ..cfg }, "planes"),
        (
            DdrNetConfig {
                spp_planes: 0,
                ..cfg
            },
            "spp_planes",
        ),
        (
            DdrNetConfig {
                head_planes: 0,
                ..cfg
            },
            "head_planes",
        ),
    ] {
        let err = DdrNet::load(gpu, cfg, &sd, "").unwrap_err();
        assert!(
            matches!(err, Error::InvalidParam { name: n, .. } if n == name),
            "{cfg:?}: {err}"
        );
    }
    assert!(matches!(
        DdrNetConfig::from_name("ddrnet_23s", 19),
        Err(Error::InvalidParam { name: "name", .. })
    ));
    // A checkpoint of another width: the tensor is named.
    let mut wrong = StateDict::synthetic();
    wrong.insert(
        "model.layer1.0.conv1.weight",
        ndarray::ArrayD::zeros(ndarray::IxDyn(&[16, 16, 3, 3])),
    );
    let err = DdrNet::load(gpu, cfg, &wrong, "model").unwrap_err();
    assert!(
        format!("{err}").contains("model.layer1.0.conv1.weight"),
        "{err}"
    );
}

/// Every resize whose only use is a sum (the bilateral fusions, the pyramid's scales, the
/// final sum) adds in its store: no separate pass for those sums, and the GPU output
/// still PyTorch's, at an odd size with batch 2.
#[test]
fn resizes_add_in_their_stores() {
    let dir = format!("{}/tests/golden/networks", env!("CARGO_MANIFEST_DIR"));
    let file = StateDict::load(format!("{dir}/ddrnet_23_odd_batch2.safetensors")).unwrap();
    let cfg = odd_batch2_config();
    let gpu = common::gpu();
    let net = DdrNet::load(gpu, cfg, &StateDict::synthetic(), "").unwrap();
    let x = common::stored4(&file, "x").unwrap();
    let mut rec = gpu.recorder();
    let y = net
        .forward(&mut rec, &gpu.upload(x.view()).unwrap())
        .unwrap();
    let traffic = rec.traffic();
    let sums: Vec<_> = traffic
        .dispatches
        .iter()
        .filter(|d| d.layer.ends_with("add"))
        .map(|d| (d.layer.as_str(), d.kernel))
        .collect();
    let resampled = |k: &str| {
        [
            "resample.wgsl",
            "resample_int.wgsl",
            "bilinear_int.wgsl",
            "bilinear_strips.wgsl",
        ]
        .contains(&k)
    };
    assert!(sums.iter().all(|(_, k)| resampled(k)), "{sums:?}");
    assert_eq!(sums.len(), 7, "{sums:?}");
    let got = rec.download(&y).unwrap();
    let err = common::relative(&got, &common::stored4(&file, "out").unwrap());
    assert!(err < 1e-4, "{err}");
}
