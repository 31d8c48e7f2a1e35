//! STDC-Seg beyond the networks harness (`tests/networks.rs` runs the golden cases of
//! `tests/golden/networks/` against the PyTorch files in `tests/golden/third_party/stdc_seg`):
//! PyTorch's parameter counts, the CPU reference against PyTorch, and typed errors for
//! configurations and inputs PyTorch's model cannot run.

mod common;

use segblocks::networks::{StdcBackbone, StdcSeg, StdcSegConfig};
use segblocks::{Error, StateDict};

/// `sum(p.numel() for p in BiSeNet(backbone, 19).parameters())` (Cityscapes' classes)
/// less the modules `forward` never runs, which are not loaded: the backbone's classifier
/// (`conv_last` without `use_conv_last`, `fc`, `bn`, `linear`), `conv_out_sp16`, and each
/// detail head not asked for.
#[test]
fn parameters_are_pytorchs_less_what_forward_never_runs() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let conv_last: u64 = 1024 * 1024 + 2 * 1024;
    let classifier = 1024 * 1024 + 2 * 1024 + 1024 * 1000;
    // BiSeNetOutput(cin, 64, 1): a 3x3 convolution with batch norm, a 1x1 without bias.
    let detail = |cin: u64| cin * 64 * 9 + 2 * 64 + 64;
    let sp16 = detail(512);
    let all_detail = detail(32) + detail(64) + detail(256);
    for (backbone, pytorch) in [
        (StdcBackbone::StdcNet813, 12_048_928),
        (StdcBackbone::StdcNet1446, 16_079_392),
    ] {
        for (cfg, unused) in [
            (
                StdcSegConfig::new(backbone, 19),
                conv_last + classifier + sp16 + all_detail,
            ),
            (
                StdcSegConfig::new(backbone, 19).use_boundary_8(true),
                conv_last + classifier + sp16 + detail(32) + detail(64),
            ),
            (
                StdcSegConfig::new(backbone, 19)
                    .use_conv_last(true)
                    .use_boundary_2(true)
                    .use_boundary_4(true)
                    .use_boundary_8(true),
                classifier + sp16,
            ),
        ] {
            let net = StdcSeg::load(gpu, cfg, &sd, "").unwrap();
            let summary = net.summary([1, 3, 512, 1024]).unwrap();
            assert_eq!(summary.total_params(), pytorch - unused, "{cfg:?}");
        }
    }
}

/// The CPU reference against PyTorch (the harness checks the GPU's): STDC2 with
/// `conv_last` and every detail head at an odd size, and STDC1 at batch 2; without
/// `side_outputs` the GPU gives the logits alone, the same ones.
#[test]
fn reference_matches_pytorch() {
    let dir = format!("{}/tests/golden/networks", env!("CARGO_MANIFEST_DIR"));
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let file = StateDict::load(format!("{dir}/stdc2_boundary_odd.safetensors")).unwrap();
    let x = common::stored4(&file, "x").unwrap();
    let cfg = StdcSegConfig::stdc2(3)
        .use_conv_last(true)
        .use_boundary_2(true)
        .use_boundary_4(true)
        .use_boundary_8(true);
    let net = StdcSeg::load(gpu, cfg, &sd, "").unwrap();
    let got = net.reference_all(x.view()).unwrap();
    let names = ["out", "side1", "side2", "side3", "side4", "side5"];
    assert_eq!(got.len(), names.len());
    for (g, n) in got.iter().zip(names) {
        let err = common::relative(g, &common::stored4(&file, n).unwrap());
        assert!(err < 1e-5, "{n}: {err}");
    }
    let file = StateDict::load(format!("{dir}/stdc1_odd_batch2.safetensors")).unwrap();
    let x = common::stored4(&file, "x").unwrap();
    let net = StdcSeg::load(gpu, StdcSegConfig::stdc1(5), &sd, "").unwrap();
    let got = net.reference(x.view()).unwrap();
    let err = common::relative(&got, &common::stored4(&file, "out").unwrap());
    assert!(err < 1e-5, "{err}");
    let cfg = StdcSegConfig::stdc1(5).side_outputs(false);
    let net = StdcSeg::load(gpu, cfg, &sd, "").unwrap();
    let outs = common::forward_all(gpu, &net, &x);
    assert_eq!(outs.len(), 1);
    let err = common::relative(&outs[0], &common::stored4(&file, "out").unwrap());
    assert!(err < 1e-4, "{err}");
}

/// Any size runs (each stride rounds up, the detail maps at 1/2, 1/4 and 1/8 of it); other
/// channel counts, an empty input, no class, an unknown backbone, detail heads PyTorch's
/// `forward` does not return (it returns `None`) and a missing weight are typed errors
/// naming what is wrong.
#[test]
fn inputs_and_configurations_it_cannot_run_are_typed_errors() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let cfg = StdcSegConfig::stdc1(4)
        .use_boundary_4(true)
        .use_boundary_8(true);
    let net = StdcSeg::load(gpu, cfg, &sd, "").unwrap();
    let x = ndarray::Array4::<f32>::zeros((2, 3, 45, 61));
    let outs = common::forward_all(gpu, &net, &x);
    let shapes: Vec<_> = outs.iter().map(|t| t.shape()).collect();
    let logits: &[usize] = &[2, 4, 45, 61];
    let want = [logits, logits, logits, &[2, 1, 12, 16], &[2, 1, 6, 8]];
    assert_eq!(shapes, want);
    assert_eq!(net.output_shape([1, 3, 1, 1]).unwrap(), [1, 4, 1, 1]);
    assert!(matches!(
        net.output_shape([1, 4, 64, 64]),
        Err(Error::ShapeMismatch { name: "input", .. })
    ));
    assert!(net.output_shape([1, 3, 0, 64]).is_err());
    assert!(matches!(
        StdcSeg::load(gpu, StdcSegConfig::stdc2(0), &sd, ""),
        Err(Error::InvalidParam {
            name: "n_classes",
            ..
        })
    ));
    assert!(matches!(
        StdcSegConfig::from_name("STDCNet2000", 19),
        Err(Error::InvalidParam {
            name: "backbone",
            ..
        })
    ));
    assert_eq!(
        StdcSegConfig::from_name("STDCNet1446", 19).unwrap(),
        StdcSegConfig::stdc2(19)
    );
    assert_eq!(
        StdcSegConfig::from_name("stdc1", 19).unwrap(),
        StdcSegConfig::stdc1(19)
    );
    for (cfg, missing) in [
        (
            StdcSegConfig::stdc1(2).use_boundary_4(true),
            "use_boundary_8",
        ),
        (
            StdcSegConfig::stdc1(2).use_boundary_2(true),
            "use_boundary_4",
        ),
        (
            StdcSegConfig::stdc1(2)
                .use_boundary_2(true)
                .use_boundary_8(true),
            "use_boundary_4",
        ),
    ] {
        match StdcSeg::load(gpu, cfg, &sd, "") {
            Err(Error::InvalidParam { name, .. }) => assert_eq!(name, missing, "{cfg:?}"),
            other => panic!("{cfg:?}: {other:?}"),
        }
    }
    assert!(StdcSeg::load(gpu, StdcSegConfig::stdc1(2), &StateDict::new(), "").is_err());
}
