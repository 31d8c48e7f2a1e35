//! Fast-SCNN beyond the networks harness (`tests/networks.rs` runs the golden cases of
//! `tests/golden/networks/` against the PyTorch file in `tests/golden/third_party/fast_scnn`):
//! PyTorch's parameter counts, the CPU reference against PyTorch, and typed errors for
//! configurations and inputs PyTorch's Fast-SCNN cannot run.

mod common;

use segblocks::networks::{FastScnn, FastScnnConfig};
use segblocks::{Error, StateDict};

/// `sum(p.numel() for p in FastSCNN(19, aux).parameters())` (Cityscapes' classes).
#[test]
fn parameters_are_pytorchs() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    for (aux, params) in [(false, 1_138_051), (true, 1_157_174)] {
        let net = FastScnn::load(gpu, FastScnnConfig::new(19).aux(aux), &sd, "").unwrap();
        let summary = net.summary([1, 3, 1024, 2048]).unwrap();
        assert_eq!(summary.total_params(), params, "aux {aux}");
    }
}

/// The CPU reference against PyTorch (the harness checks the GPU's): the logits at an odd
/// size, batch 2, and with the auxiliary head where the pyramid pooling sees a 5 x 5 map.
#[test]
fn reference_matches_pytorch() {
    let dir = format!("{}/tests/golden/networks", env!("CARGO_MANIFEST_DIR"));
    let sd = StateDict::synthetic();
    for (file, classes, aux) in [
        ("fast_scnn_odd_batch2", 5, false),
        ("fast_scnn_aux_odd", 2, true),
    ] {
        let file = StateDict::load(format!("{dir}/{file}.safetensors")).unwrap();
        let x = common::stored4(&file, "x").unwrap();
        let cfg = FastScnnConfig::new(classes).aux(aux);
        let net = FastScnn::load(common::gpu(), cfg, &sd, "").unwrap();
        let got = net.reference_all(x.view()).unwrap();
        let names: &[&str] = if aux { &["out", "aux"] } else { &["out"] };
        assert_eq!(got.len(), names.len());
        for (g, n) in got.iter().zip(names) {
            let err = common::relative(g, &common::stored4(&file, n).unwrap());
            assert!(err < 1e-5, "{n}: {err}");
        }
    }
}

/// Sizes whose 1/8 map is not a multiple of 4 (where PyTorch's paths fail to meet),
/// inputs under the first convolution's window, channel counts other than 3 and no class
/// are typed errors naming the parameter; odd sizes where the paths meet run.
#[test]
fn inputs_and_configurations_it_cannot_run_are_typed_errors() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let net = FastScnn::load(gpu, FastScnnConfig::new(19), &sd, "").unwrap();
    assert_eq!(net.output_shape([2, 3, 61, 93]).unwrap(), [2, 19, 61, 93]);
    assert_eq!(
        net.output_shape([1, 3, 1024, 2048]).unwrap(),
        [1, 19, 1024, 2048]
    );
    for shape in [[1, 3, 64, 80], [1, 3, 35, 64], [1, 3, 2, 64], [1, 3, 0, 0]] {
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
        FastScnn::load(gpu, FastScnnConfig::new(0), &sd, ""),
        Err(Error::InvalidParam {
            name: "num_classes",
            ..
        })
    ));
}
