//! U²-Net and IS-Net beyond the networks harness (`tests/networks.rs` runs the golden
//! cases of `tests/golden/networks/` against the PyTorch files in
//! `tests/golden/third_party`): the presets' sizes, the CPU reference against PyTorch, the
//! first map alone, and typed errors for bad configurations.

mod common;

use segblocks::networks::{Rsu, U2Net, U2NetConfig};
use segblocks::{Error, StateDict};

fn named<T: std::fmt::Debug>(r: segblocks::Result<T>, name: &str) {
    match r {
        Err(Error::InvalidParam { name: n, .. }) if n == name => {}
        other => panic!("expected an error naming {name}, got {other:?}"),
    }
}

/// The presets have PyTorch's parameter counts (`sum(p.numel() for p in
/// model.parameters())` of `U2NET(3, 1)`, `U2NETP(3, 1)`, `ISNetDIS(3, 1)`).
#[test]
fn presets_have_pytorchs_parameter_counts() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    for (name, params) in [
        ("u2net", 44_009_869),
        ("u2netp", 1_131_181),
        ("isnet-general-use", 44_046_790),
    ] {
        let cfg = U2NetConfig::from_name(name).unwrap();
        let net = U2Net::load(gpu, cfg, &sd, "").unwrap();
        let summary = net.summary([1, 3, 320, 320]).unwrap();
        assert_eq!(summary.total_params(), params, "{name}");
    }
    named(U2NetConfig::from_name("u3net"), "name");
}

/// The CPU reference against PyTorch (the harness checks the GPU's).
#[test]
fn reference_matches_pytorch() {
    let dir = format!("{}/tests/golden/networks", env!("CARGO_MANIFEST_DIR"));
    let file = StateDict::load(format!("{dir}/u2netp_one_channel.safetensors")).unwrap();
    let x = common::stored4(&file, "x").unwrap();
    let net = U2Net::load(
        common::gpu(),
        U2NetConfig::u2netp(1, 1),
        &StateDict::synthetic(),
        "",
    )
    .unwrap();
    let got = net.reference_all(x.view()).unwrap();
    let names = ["out", "side1", "side2", "side3", "side4", "side5", "side6"];
    assert_eq!(got.len(), names.len());
    for (g, n) in got.iter().zip(names) {
        let err = common::relative(g, &common::stored4(&file, n).unwrap());
        assert!(err < 1e-5, "{n}: {err}");
    }
}

/// `side_outputs(false)` returns the first map alone, the same values, in fewer
/// dispatches (no side sigmoids); IS-Net's first map is side1's.
#[test]
fn side_outputs_false_returns_the_first_map() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let x = common::random4(&mut common::rng(5), [1, 3, 21, 18]);
    let xg = gpu.upload(x.view()).unwrap();
    for cfg in [U2NetConfig::u2netp(3, 1), {
        let mut c = U2NetConfig::u2netp(3, 1);
        c.stem_channels = Some(8);
        c.encoder[0].in_channels = 8;
        c.fuse_sides = false;
        c
    }] {
        let all = U2Net::load(gpu, cfg.clone(), &sd, "").unwrap();
        let first = U2Net::load(gpu, cfg.clone().side_outputs(false), &sd, "").unwrap();
        let mut rec = gpu.recorder();
        let outs = all.forward_all(&mut rec, &xg).unwrap();
        let maps = 6 + usize::from(cfg.fuse_sides);
        assert_eq!(outs.len(), maps);
        let dispatches_all = rec.traffic().dispatches.len();
        let everything = rec.download(&outs[0]).unwrap();
        let mut rec = gpu.recorder();
        let outs = first.forward_all(&mut rec, &xg).unwrap();
        assert_eq!(outs.len(), 1);
        assert!(rec.traffic().dispatches.len() < dispatches_all);
        let alone = rec.download(&outs[0]).unwrap();
        assert_eq!(alone, everything);
        assert_eq!(alone.shape(), &[1, 1, 21, 18]);
        // Without the fusion the first map needs no other side map.
        let names: Vec<&str> = first.graph().names().collect();
        assert_eq!(names.contains(&"side2"), cfg.fuse_sides, "{names:?}");
    }
}

/// Every resize that only a concatenation reads is written into the concatenation's
/// channels by the resize itself: U²-NetP's 38 resized maps (28 inside its RSUs, 5
/// decoder inputs, and the 5 side maps, which only the fusion reads when the side maps
/// are not returned) take no copy, so of its 106 concatenated inputs 68 are copied (each
/// as one buffer range per sample, no dispatch), and the values are the reference's. The
/// summary still lists each resize.
#[test]
fn resized_maps_are_written_into_their_concatenation() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let cfg = U2NetConfig::u2netp(3, 1).side_outputs(false);
    let net = U2Net::load(gpu, cfg, &sd, "").unwrap();
    let x = common::random4(&mut common::rng(8), [2, 3, 37, 45]);
    let mut rec = gpu.recorder();
    let y = net
        .forward(&mut rec, &gpu.upload(x.view()).unwrap())
        .unwrap();
    let count = |kernel: &str| {
        let t = rec.traffic();
        t.dispatches.iter().filter(|d| d.kernel == kernel).count()
    };
    assert_eq!(count("channel_copy.wgsl"), 0);
    let traffic = rec.traffic();
    let concatenated = traffic.dispatches.iter().filter(|d| {
        let node = d.layer.rsplit('.').next().unwrap_or_default();
        d.kernel == "copy" && node.starts_with("cat")
    });
    assert_eq!(concatenated.count(), 2 * (106 - 38));
    let resizes =
        count("bilinear_int.wgsl") + count("resample.wgsl") + count("bilinear_strips.wgsl");
    assert_eq!(resizes, 38);
    // Its pools' indices are never read, so never written: the pools write their values
    // alone (the summary's output shapes).
    let traffic = rec.traffic();
    let pools = traffic
        .dispatches
        .iter()
        .filter(|d| d.kernel == "max_pool.wgsl");
    let (count, written) = pools.fold((0, 0), |(n, w), d| (n + 1, w + d.written));
    let summary = net.summary([2, 3, 37, 45]).unwrap();
    let values: usize = summary
        .rows
        .iter()
        .filter(|r| r.name.rsplit('.').next().unwrap().starts_with("pool"))
        .map(|r| 4 * r.output.iter().product::<usize>())
        .sum();
    assert_eq!(count, 33);
    assert_eq!(written, values as u64);
    let got = rec.download(&y).unwrap();
    let want = net.reference(x.view()).unwrap();
    let err = common::relative(&got, &want);
    assert!(err < 1e-5, "{err}");
    let listed = summary
        .rows
        .iter()
        .filter(|r| r.name.ends_with("dup"))
        .count();
    assert_eq!(listed, 28, "the resizes to the skips in the summary");
}

/// Configurations outside PyTorch's tables (three stages, RSU heights 2, 3 and 8, F forms
/// of 2 and 5 levels, a stem, no fusion, two output maps) and a one-pixel input: the GPU
/// against the CPU reference, every map.
#[test]
fn hand_built_configurations_match_the_reference() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let mut rng = common::rng(11);
    let three = U2NetConfig {
        in_channels: 2,
        out_channels: 2,
        stem_channels: Some(6),
        encoder: vec![
            Rsu::new(8, 6, 4, 8),
            Rsu::new(3, 8, 4, 12),
            Rsu::new(5, 12, 4, 8).dilated(),
        ],
        decoder: vec![Rsu::new(2, 20, 4, 8).dilated(), Rsu::new(2, 16, 3, 5)],
        fuse_sides: false,
        side_outputs: true,
    };
    let fused = U2NetConfig {
        stem_channels: None,
        encoder: vec![Rsu::new(3, 2, 4, 8), Rsu::new(2, 8, 4, 8).dilated()],
        decoder: vec![Rsu::new(3, 16, 4, 6)],
        fuse_sides: true,
        ..three.clone()
    };
    for (cfg, shapes) in [
        (three, [[2, 2, 37, 29], [1, 2, 1, 1]]),
        (fused, [[1, 2, 19, 40], [2, 2, 1, 3]]),
    ] {
        let net = U2Net::load(gpu, cfg.clone(), &sd, "").unwrap();
        for shape in shapes {
            let x = common::random4(&mut rng, shape);
            let mut rec = gpu.recorder();
            let outs = net
                .forward_all(&mut rec, &gpu.upload(x.view()).unwrap())
                .unwrap();
            let outs: Vec<_> = outs.iter().collect();
            let got = rec.download_many(&outs).unwrap();
            let want = net.reference_all(x.view()).unwrap();
            let maps = cfg.encoder.len() + usize::from(cfg.fuse_sides);
            assert_eq!(got.len(), maps);
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.shape(), &[shape[0], 2, shape[2], shape[3]]);
                let err = common::relative(g, w);
                assert!(err < 1e-5, "{shape:?}: {err}");
            }
        }
    }
}

/// Widths that do not chain, stage counts and RSU heights out of range, and inputs of
/// the wrong channel count are typed errors naming the parameter.
#[test]
fn bad_configurations_are_typed_errors() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let load = |cfg: U2NetConfig| U2Net::load(gpu, cfg, &sd, "");
    let mut cfg = U2NetConfig::u2netp(3, 1);
    cfg.decoder[1].in_channels = 96;
    named(load(cfg), "decoder");
    let mut cfg = U2NetConfig::u2netp(3, 1);
    cfg.encoder[2].in_channels = 32;
    named(load(cfg), "encoder");
    let mut cfg = U2NetConfig::u2netp(3, 1);
    cfg.decoder.pop();
    named(load(cfg), "decoder");
    let mut cfg = U2NetConfig::u2netp(3, 1);
    cfg.encoder.truncate(1);
    cfg.decoder.clear();
    named(load(cfg), "encoder");
    let mut cfg = U2NetConfig::u2netp(3, 1);
    cfg.encoder[0] = Rsu::new(11, 3, 16, 64);
    named(load(cfg), "encoder");
    let mut cfg = U2NetConfig::u2netp(3, 1);
    cfg.encoder[0].mid_channels = 0;
    named(load(cfg), "encoder");
    let mut cfg = U2NetConfig::u2netp(3, 1);
    cfg.decoder[4].height = 1;
    named(load(cfg), "decoder");
    let mut cfg = U2NetConfig::u2netp(3, 1);
    cfg.encoder.extend([Rsu::new(4, 64, 16, 64).dilated(); 3]);
    cfg.decoder
        .splice(0..0, [Rsu::new(4, 128, 16, 64).dilated(); 3]);
    named(load(cfg), "encoder");
    let mut cfg = U2NetConfig::isnet(3, 1);
    cfg.stem_channels = Some(0);
    named(load(cfg), "stem_channels");
    let mut cfg = U2NetConfig::u2netp(3, 1);
    cfg.decoder[0].out_channels = usize::MAX;
    named(load(cfg), "decoder");
    named(load(U2NetConfig::u2netp(3, 0)), "out_channels");
    let mut cfg = U2NetConfig::isnet(3, 1);
    cfg.stem_channels = Some(32);
    named(load(cfg), "encoder");
    let net = load(U2NetConfig::u2netp(3, 1)).unwrap();
    assert!(matches!(
        net.output_shape([1, 4, 32, 32]),
        Err(Error::ShapeMismatch { name: "input", .. })
    ));
    // Any size works, down to one pixel (ceil-mode pools never empty a map).
    assert_eq!(net.output_shape([2, 3, 1, 1]).unwrap(), [2, 1, 1, 1]);
}
