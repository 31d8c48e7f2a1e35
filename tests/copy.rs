//! Padding (`F.pad` on the last two dimensions) against PyTorch's golden results and the
//! CPU reference: every mode, pads of either sign, batch > 1; bad pads are typed errors.
//! The plain copy with every count of vec4s per invocation, at both precisions.

mod common;

use common::golden::{array, cases, field, float_field, str_of, usizes};
use common::*;
use ndarray::Array4;
use segblocks::ops::copy::{pad2d, Pad2dParams, PadMode};
use segblocks::{reference, Error};

const GOLDEN: &str = include_str!("golden/pad.json");

fn mode_of(name: &str) -> PadMode {
    match name {
        "constant" => PadMode::Constant,
        "reflect" => PadMode::Reflect,
        "replicate" => PadMode::Replicate,
        "circular" => PadMode::Circular,
        other => panic!("unknown pad mode {other:?}"),
    }
}

#[test]
fn pad_matches_pytorch() {
    let gpu = gpu();
    let all = cases(GOLDEN, "tests/golden/pad.json");
    let mut modes = std::collections::BTreeSet::new();
    for c in &all {
        let n = str_of(c, "?", "name");
        let pad: Vec<i64> = field(c, n, "pad")
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let mode = mode_of(str_of(c, n, "mode"));
        modes.insert(format!("{mode:?}"));
        let params = Pad2dParams::new((pad[0], pad[1], pad[2], pad[3]))
            .mode(mode)
            .value(float_field(c, n, "value"));
        let shape = usizes::<4>(c, n, "input_shape");
        let out = usizes::<4>(c, n, "output_shape");
        let x: Array4<f32> = array(c, n, "input", shape);
        let want: Array4<f32> = array(c, n, "output", out);
        assert_eq!(params.output_shape(shape).unwrap(), out, "{n}");
        // A copy: exact on both sides (NaN and infinities too: fuzz_golden.py --non-finite).
        let zero = want.mapv(|_| 0.0);
        let cpu = reference::copy::pad2d(&params, x.view()).unwrap();
        assert_close_non_finite(
            cpu.view(),
            want.view(),
            zero.view(),
            &format!("reference {n}"),
        );
        let xt = gpu.upload(x.view()).unwrap();
        let mut rec = gpu.recorder();
        let y = pad2d(&mut rec, &params, &xt).unwrap();
        let got = rec.download(&y).unwrap();
        assert_close_non_finite(got.view(), want.view(), zero.view(), &format!("GPU {n}"));
    }
    assert_eq!(modes.len(), 4, "every mode has a golden case: {modes:?}");
}

#[test]
fn random_pads_agree_with_the_reference() {
    let gpu = gpu();
    let mut r = rng(77);
    use rand::Rng;
    let mut compared = 0;
    for _ in 0..200 {
        let shape = [
            r.gen_range(1..3),
            r.gen_range(1..4),
            r.gen_range(1..7),
            r.gen_range(1..8),
        ];
        let side = |r: &mut rand::rngs::StdRng| r.gen_range(-4i64..7);
        let pad = (side(&mut r), side(&mut r), side(&mut r), side(&mut r));
        let mode = [
            PadMode::Constant,
            PadMode::Reflect,
            PadMode::Replicate,
            PadMode::Circular,
        ][r.gen_range(0..4)];
        let params = Pad2dParams::new(pad).mode(mode).value(2.5);
        let x = random4(&mut r, shape);
        let xt = gpu.upload(x.view()).unwrap();
        let mut rec = gpu.recorder();
        let got = pad2d(&mut rec, &params, &xt).and_then(|y| rec.download(&y));
        match (params.output_shape(shape), got) {
            (Ok(out), Ok(got)) => {
                let want = reference::copy::pad2d(&params, x.view()).unwrap();
                assert_eq!(got.shape(), &out[..]);
                let zero = want.mapv(|_| 0.0);
                assert_close(got.view(), want.view(), zero.view(), &format!("{params:?}"));
                compared += 1;
            }
            (Err(_), Err(Error::InvalidParam { name: "pad", .. })) => {}
            (shape, got) => panic!("{params:?} on {shape:?}: {got:?}"),
        }
    }
    assert!(compared > 60, "{compared} compared");
}

#[test]
fn bad_pads_are_typed_errors() {
    let gpu = gpu();
    let x = gpu
        .upload(Array4::<f32>::zeros([1, 1, 3, 4]).view())
        .unwrap();
    for params in [
        // Reflect needs each pad below the size; circular at most the size kept.
        Pad2dParams::new((4, 0, 0, 0)).mode(PadMode::Reflect),
        Pad2dParams::new((0, 0, 0, 3)).mode(PadMode::Reflect),
        Pad2dParams::new((5, 0, 0, 0)).mode(PadMode::Circular),
        Pad2dParams::new((-2, 3, 0, 0)).mode(PadMode::Circular),
        // Nothing left, and pads past 2^30 (the kernel's i32 coordinates: replicate
        // with (-2^31 + 1, 2^31 - 1) on 2 rows wrapped to the wrong row).
        Pad2dParams::new((-2, -2, 0, 0)),
        Pad2dParams::new((0, 0, -3, 0)),
        Pad2dParams::new((i64::MAX, 0, 0, 0)),
        Pad2dParams::new((-(1 << 40), 1 << 40, 0, 0)),
        Pad2dParams::new((0, 0, -(1 << 31) + 1, (1 << 31) - 1)).mode(PadMode::Replicate),
        Pad2dParams::new((0, 0, 1 << 30 | 1, 0)),
    ] {
        let mut rec = gpu.recorder();
        let e = pad2d(&mut rec, &params, &x);
        assert!(
            matches!(e, Err(Error::InvalidParam { name: "pad", .. })),
            "{params:?}: {e:?}"
        );
    }
}

#[test]
fn copies_move_every_value_whatever_they_take_per_invocation() {
    use segblocks::ops::copy::copy_with;
    use segblocks::{Gpu, GpuOptions, Precision};
    let half = match Gpu::with_options(GpuOptions {
        precision: Precision::F16,
        ..GpuOptions::default()
    }) {
        Ok(half) => Some(half),
        // llvmpipe's GL driver and SwiftShader have no f16 (the CI's GL and SwiftShader
        // runs): refused by name.
        Err(Error::DeviceUnsupported {
            name: "SHADER_F16", ..
        }) => None,
        Err(e) => panic!("{e}"),
    };
    let info = gpu().adapter_info();
    let lavapipe =
        info.backend == segblocks::wgpu::Backend::Vulkan && info.name.contains("llvmpipe");
    assert!(half.is_some() || !lavapipe, "lavapipe has SHADER_F16");
    let mut r = rng(5);
    // One value, a tail of 1 in the last vec4, vec4 counts that 2, 3 and 4 do not divide,
    // a large even one.
    for shape in [
        [1, 1, 1, 1],
        [1, 3, 5, 7],
        [2, 3, 7, 5],
        [1, 1, 1, 4097],
        [2, 4, 16, 16],
    ] {
        // Quarters: exact in f16 too.
        let x = random4(&mut r, shape).mapv(|v| (v * 16.0).round() / 4.0);
        for gpu in std::iter::once(gpu()).chain(&half) {
            let xt = gpu.upload(x.view()).unwrap();
            for per in 1..=4 {
                let mut rec = gpu.recorder();
                let y = copy_with(&mut rec, &xt, per).unwrap();
                assert_eq!(
                    rec.download(&y).unwrap(),
                    x,
                    "{shape:?} {per} {:?}",
                    gpu.precision()
                );
            }
        }
    }
    let gpu = gpu();
    let xt = gpu
        .upload(Array4::<f32>::zeros([1, 1, 2, 2]).view())
        .unwrap();
    for per in [0, 5] {
        let mut rec = gpu.recorder();
        assert!(
            matches!(
                copy_with(&mut rec, &xt, per),
                Err(Error::InvalidParam {
                    name: "vec4s_per_invocation",
                    ..
                })
            ),
            "{per}"
        );
    }
}
