//! ERFNet beyond the networks harness (`tests/networks.rs` runs the golden cases of
//! `tests/golden/networks/` against `tests/golden/erfnet_model.py`, erfnet_pytorch's model
//! written out under its names): PyTorch's parameter counts, the CPU reference against
//! PyTorch, and typed errors for inputs and configurations PyTorch's ERFNet cannot run.

mod common;

use segblocks::networks::{ErfNet, ErfNetConfig};
use segblocks::{Error, StateDict};

/// `sum(p.numel() for p in Net(classes).parameters())` less the layers the forward does
/// not run: the encoder's `output_conv` in the full network, the decoder in encoder mode.
#[test]
fn parameters_are_pytorchs() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    for (classes, only_encode, params) in [
        (20, false, 2_064_256),
        (19, false, 2_064_191),
        (20, true, 1_876_624),
    ] {
        let cfg = ErfNetConfig::new(classes).only_encode(only_encode);
        let net = ErfNet::load(gpu, cfg, &sd, "").unwrap();
        let summary = net.summary([1, 3, 512, 1024]).unwrap();
        assert_eq!(summary.total_params(), params, "{cfg:?}");
    }
}

/// The CPU reference against PyTorch (the harness checks the GPU's): the logits at batch 2,
/// the encoder's.
#[test]
fn reference_matches_pytorch() {
    let dir = format!("{}/tests/golden/networks", env!("CARGO_MANIFEST_DIR"));
    let sd = StateDict::synthetic();
    for (file, classes, only_encode) in [("erfnet_batch2", 5, false), ("erfnet_encoder", 3, true)] {
        let file = StateDict::load(format!("{dir}/{file}.safetensors")).unwrap();
        let x = common::stored4(&file, "x").unwrap();
        let cfg = ErfNetConfig::new(classes).only_encode(only_encode);
        let net = ErfNet::load(common::gpu(), cfg, &sd, "").unwrap();
        let got = net.reference(x.view()).unwrap();
        let err = common::relative(&got, &common::stored4(&file, "out").unwrap());
        assert!(err < 1e-5, "{cfg:?}: {err}");
    }
}

/// Sides that are not multiples of 8 (where PyTorch's downsamplers cannot concatenate),
/// channel counts other than 3 and no class are typed errors naming the parameter; the
/// output is the input's size, or an eighth of it in encoder mode.
#[test]
fn inputs_and_configurations_it_cannot_run_are_typed_errors() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let net = ErfNet::load(gpu, ErfNetConfig::new(20), &sd, "").unwrap();
    assert_eq!(net.output_shape([2, 3, 8, 8]).unwrap(), [2, 20, 8, 8]);
    assert_eq!(
        net.output_shape([1, 3, 512, 1024]).unwrap(),
        [1, 20, 512, 1024]
    );
    let encoder = ErfNetConfig::new(20).only_encode(true);
    let encoder = ErfNet::load(gpu, encoder, &sd, "").unwrap();
    assert_eq!(encoder.output_shape([3, 3, 40, 56]).unwrap(), [3, 20, 5, 7]);
    for shape in [
        [1, 3, 44, 64],
        [1, 3, 64, 36],
        [1, 3, 47, 64],
        [1, 3, 4, 8],
        [1, 3, 0, 0],
    ] {
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
        ErfNet::load(gpu, ErfNetConfig::new(0), &sd, ""),
        Err(Error::InvalidParam {
            name: "num_classes",
            ..
        })
    ));
}
