//! BiSeNetV2 and the face-parsing BiSeNet beyond the networks harness (`tests/networks.rs`
//! runs the golden cases of `tests/golden/networks/` against the PyTorch files in
//! `tests/golden/third_party/bisenet` and `facexlib_parsing`): PyTorch's parameter counts,
//! the CPU references against PyTorch, and typed errors for configurations and inputs
//! PyTorch's models cannot run.

mod common;

use segblocks::networks::{BiSeNet, BiSeNetAuxMode, BiSeNetConfig, BiSeNetV2, BiSeNetV2Config};
use segblocks::{Error, StateDict};

/// `sum(p.numel() for p in BiSeNetV2(19, aux_mode).parameters())` (Cityscapes' classes).
#[test]
fn parameters_are_pytorchs() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    for (mode, params) in [
        (BiSeNetAuxMode::Eval, 3_358_627),
        (BiSeNetAuxMode::Train, 5_231_487),
    ] {
        let cfg = BiSeNetV2Config::new(19).aux_mode(mode);
        let net = BiSeNetV2::load(gpu, cfg, &sd, "").unwrap();
        let summary = net.summary([1, 3, 512, 1024]).unwrap();
        assert_eq!(summary.total_params(), params, "{mode:?}");
    }
}

/// The CPU reference against PyTorch (the harness checks the GPU's): the logits and the
/// four auxiliary heads' at an odd size, batch 2.
#[test]
fn reference_matches_pytorch() {
    let dir = format!("{}/tests/golden/networks", env!("CARGO_MANIFEST_DIR"));
    let file = StateDict::load(format!("{dir}/bisenetv2_train_odd.safetensors")).unwrap();
    let x = common::stored4(&file, "x").unwrap();
    let cfg = BiSeNetV2Config::new(2).aux_mode(BiSeNetAuxMode::Train);
    let net = BiSeNetV2::load(common::gpu(), cfg, &StateDict::synthetic(), "").unwrap();
    let got = net.reference_all(x.view()).unwrap();
    let names = ["out", "side1", "side2", "side3", "side4"];
    assert_eq!(got.len(), names.len());
    for (g, n) in got.iter().zip(names) {
        let err = common::relative(g, &common::stored4(&file, n).unwrap());
        assert!(err < 1e-5, "{n}: {err}");
    }
}

/// Sizes whose 1/8 map (rounded up) is not a multiple of 4 (where PyTorch's branches fail
/// to meet), channel counts other than 3 and no class are typed errors naming the
/// parameter; odd sizes where the branches meet run, the logits at 8 times the 1/8 map.
#[test]
fn inputs_and_configurations_it_cannot_run_are_typed_errors() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let net = BiSeNetV2::load(gpu, BiSeNetV2Config::new(4), &sd, "").unwrap();
    assert_eq!(net.output_shape([2, 3, 57, 89]).unwrap(), [2, 4, 64, 96]);
    assert_eq!(net.output_shape([1, 3, 25, 32]).unwrap(), [1, 4, 32, 32]);
    for shape in [[1, 3, 48, 64], [1, 3, 64, 100], [1, 3, 0, 32], [1, 3, 8, 8]] {
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
    assert!(matches!(
        BiSeNetV2::load(gpu, BiSeNetV2Config::new(0), &sd, ""),
        Err(Error::InvalidParam {
            name: "n_classes",
            ..
        })
    ));
}

/// `sum(p.numel() for p in BiSeNet(19).parameters())` (facexlib's face parsing), less the
/// two auxiliary heads (a 3x3 convolution 128 -> 64 with batch norm and a 1x1 64 -> 19)
/// without `side_outputs`.
#[test]
fn face_parsing_parameters_are_pytorchs() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let head = 128 * 64 * 9 + 2 * 64 + 64 * 19;
    for (side_outputs, params) in [(true, 13_300_416), (false, 13_300_416 - 2 * head)] {
        let cfg = BiSeNetConfig::new(19).side_outputs(side_outputs);
        let net = BiSeNet::load(gpu, cfg, &sd, "").unwrap();
        let summary = net.summary([1, 3, 512, 512]).unwrap();
        assert_eq!(
            summary.total_params(),
            params,
            "side outputs {side_outputs}"
        );
    }
}

/// The face-parsing BiSeNet's CPU reference against PyTorch (the harness checks the
/// GPU's) at an odd size, batch 2; without `side_outputs` the GPU gives the logits alone,
/// the same ones.
#[test]
fn face_parsing_reference_matches_pytorch() {
    let dir = format!("{}/tests/golden/networks", env!("CARGO_MANIFEST_DIR"));
    let file = StateDict::load(format!("{dir}/bisenet_face_odd_batch2.safetensors")).unwrap();
    let x = common::stored4(&file, "x").unwrap();
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let net = BiSeNet::load(gpu, BiSeNetConfig::new(4), &sd, "").unwrap();
    let got = net.reference_all(x.view()).unwrap();
    let names = ["out", "side1", "side2"];
    assert_eq!(got.len(), names.len());
    for (g, n) in got.iter().zip(names) {
        let err = common::relative(g, &common::stored4(&file, n).unwrap());
        assert!(err < 1e-5, "{n}: {err}");
    }
    let cfg = BiSeNetConfig::new(4).side_outputs(false);
    let net = BiSeNet::load(gpu, cfg, &sd, "").unwrap();
    let outs = common::forward_all(gpu, &net, &x);
    assert_eq!(outs.len(), 1);
    let err = common::relative(&outs[0], &common::stored4(&file, "out").unwrap());
    assert!(err < 1e-4, "{err}");
}

/// The face-parsing BiSeNet refuses inputs of other than 3 channels, an empty input and no
/// class with typed errors; any other size runs, the logits at the input's size.
#[test]
fn face_parsing_bad_inputs_are_typed_errors() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let net = BiSeNet::load(gpu, BiSeNetConfig::new(19), &sd, "").unwrap();
    assert_eq!(net.output_shape([2, 3, 45, 61]).unwrap(), [2, 19, 45, 61]);
    assert_eq!(net.output_shape([1, 3, 1, 1]).unwrap(), [1, 19, 1, 1]);
    assert!(matches!(
        net.output_shape([1, 4, 64, 64]),
        Err(Error::ShapeMismatch { name: "input", .. })
    ));
    assert!(net.output_shape([1, 3, 0, 64]).is_err());
    assert!(matches!(
        BiSeNet::load(gpu, BiSeNetConfig::new(0), &sd, ""),
        Err(Error::InvalidParam {
            name: "n_classes",
            ..
        })
    ));
}
