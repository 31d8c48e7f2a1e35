//! MODNet beyond the networks harness (`tests/networks.rs` runs the golden cases of
//! `tests/golden/networks/` against the PyTorch files in `tests/golden/third_party/modnet`):
//! PyTorch's parameter counts, the CPU reference against PyTorch, and typed errors for
//! inputs PyTorch's MODNet cannot run.

mod common;

use segblocks::networks::{ModNet, ModNetConfig};
use segblocks::{Error, StateDict};

/// `sum(p.numel() for p in MODNet().parameters())`, less the semantic and detail heads
/// that `forward(img, True)` skips.
#[test]
fn parameters_are_pytorchs() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    for (inference, params) in [(false, 6_487_075), (true, 6_476_609)] {
        let cfg = ModNetConfig::new().inference(inference);
        let net = ModNet::load(gpu, cfg, &sd, "").unwrap();
        let summary = net.summary([1, 3, 512, 512]).unwrap();
        assert_eq!(summary.total_params(), params, "inference {inference}");
    }
}

/// The CPU reference against PyTorch (the harness checks the GPU's): the matte, the
/// semantic map and the detail map at the least size, batch 3.
#[test]
fn reference_matches_pytorch() {
    let dir = format!("{}/tests/golden/networks", env!("CARGO_MANIFEST_DIR"));
    let file = StateDict::load(format!("{dir}/modnet_least_batch3.safetensors")).unwrap();
    let x = common::stored4(&file, "x").unwrap();
    let cfg = ModNetConfig::new().inference(false);
    let net = ModNet::load(common::gpu(), cfg, &StateDict::synthetic(), "").unwrap();
    let got = net.reference_all(x.view()).unwrap();
    assert_eq!(got.len(), 3);
    for (g, n) in got.iter().zip(["out", "side1", "side2"]) {
        let err = common::relative(g, &common::stored4(&file, n).unwrap());
        assert!(err < 1e-5, "{n}: {err}");
    }
}

/// Sizes that are not multiples of 32 (where PyTorch's branches fail to concatenate) and
/// channel counts other than 3 are typed errors naming the input.
#[test]
fn inputs_it_cannot_run_are_typed_errors() {
    let net = ModNet::load(
        common::gpu(),
        ModNetConfig::new(),
        &StateDict::synthetic(),
        "",
    )
    .unwrap();
    assert_eq!(net.output_shape([2, 3, 64, 96]).unwrap(), [2, 1, 64, 96]);
    for shape in [[1, 3, 48, 64], [1, 3, 64, 100], [1, 3, 0, 32]] {
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
}
