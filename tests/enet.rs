//! ENet beyond the networks harness (`tests/networks.rs` runs the golden cases of
//! `tests/golden/networks/` against `tests/golden/enet_model.py`, PyTorch-ENet's model
//! written out under its names): PyTorch's parameter counts, the CPU reference against
//! PyTorch, and typed errors for inputs and configurations PyTorch's ENet cannot run.

mod common;

use segblocks::networks::{Enet, EnetConfig};
use segblocks::{Error, StateDict};

/// `sum(p.numel() for p in ENet(classes, encoder_relu, decoder_relu).parameters())`:
/// every PReLU slope counted once, as each activation is its own module.
#[test]
fn parameters_are_pytorchs() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    for (classes, encoder_relu, decoder_relu, params) in [
        (20, false, true, 351_804),
        (12, false, true, 350_652),
        (12, true, false, 350_577),
        (20, false, false, 351_822),
    ] {
        let cfg = EnetConfig::new(classes)
            .encoder_relu(encoder_relu)
            .decoder_relu(decoder_relu);
        let net = Enet::load(gpu, cfg, &sd, "").unwrap();
        let summary = net.summary([1, 3, 512, 1024]).unwrap();
        assert_eq!(summary.total_params(), params, "{cfg:?}");
    }
}

/// The CPU reference against PyTorch (the harness checks the GPU's): PReLU in the encoder
/// at an odd size and batch 2, PReLU in the decoder.
#[test]
fn reference_matches_pytorch() {
    let dir = format!("{}/tests/golden/networks", env!("CARGO_MANIFEST_DIR"));
    let sd = StateDict::synthetic();
    for (file, classes, encoder_relu) in [
        ("enet_odd_batch2", 5, false),
        ("enet_relu_encoder_prelu_decoder", 3, true),
    ] {
        let file = StateDict::load(format!("{dir}/{file}.safetensors")).unwrap();
        let x = common::stored4(&file, "x").unwrap();
        let cfg = EnetConfig::new(classes)
            .encoder_relu(encoder_relu)
            .decoder_relu(!encoder_relu);
        let net = Enet::load(common::gpu(), cfg, &sd, "").unwrap();
        let got = net.reference(x.view()).unwrap();
        let err = common::relative(&got, &common::stored4(&file, "out").unwrap());
        assert!(err < 1e-5, "{cfg:?}: {err}");
    }
}

/// Inputs under 7 rows or columns (PyTorch's pooling fails there), channel counts other
/// than 3 and no class are typed errors naming the parameter; odd sizes run at their own
/// size.
#[test]
fn inputs_and_configurations_it_cannot_run_are_typed_errors() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let net = Enet::load(gpu, EnetConfig::new(20), &sd, "").unwrap();
    for shape in [
        [2, 3, 7, 7],
        [1, 3, 61, 93],
        [3, 3, 512, 1024],
        [1, 3, 8, 9],
    ] {
        let want = [shape[0], 20, shape[2], shape[3]];
        assert_eq!(net.output_shape(shape).unwrap(), want, "{shape:?}");
    }
    for shape in [[1, 3, 6, 9], [1, 3, 9, 6], [1, 3, 0, 0]] {
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
        Enet::load(gpu, EnetConfig::new(0), &sd, ""),
        Err(Error::InvalidParam {
            name: "num_classes",
            ..
        })
    ));
    // A PReLU with one slope per channel is not ENet's: the tensor is named.
    let mut per_channel = StateDict::synthetic();
    per_channel.insert(
        "initial_block.out_activation.weight",
        ndarray::ArrayD::zeros(ndarray::IxDyn(&[16])),
    );
    let err = Enet::load(gpu, EnetConfig::new(3), &per_channel, "").unwrap_err();
    assert!(
        format!("{err}").contains("initial_block.out_activation.weight"),
        "{err}"
    );
}
