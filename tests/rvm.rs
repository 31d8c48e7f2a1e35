//! Robust Video Matting against PyTorch (`tests/golden/rvm/`, written by
//! `tests/golden/make_golden_rvm.py`): two frames in a row, the second from the first's
//! recurrent state kept on the GPU, on both kernel classes; the CPU reference; PyTorch's
//! parameter counts; typed errors.

mod common;

use ndarray::Array4;
use segblocks::networks::{RobustVideoMatting, RvmConfig, RvmMaps, RvmOutput, RvmRefiner, RvmRun};
use segblocks::{Error, Gpu, StateDict, Tensor};
use serde_json::Value;

fn dir() -> std::path::PathBuf {
    common::golden::golden_dir("tests/golden/rvm")
}

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(dir().join("cases.json")).unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The made-up weights, with the file's alpha bias and box filter over them.
fn weights(file: &StateDict) -> StateDict {
    let mut sd = StateDict::synthetic();
    for name in ["project_mat.conv.bias", "refiner.box_filter.weight"] {
        if let Some(t) = file.tensor(name) {
            sd.insert(name, t.clone());
        }
    }
    sd
}

fn config(case: &Value) -> RvmConfig {
    let refiner = RvmRefiner::from_name(case["refiner"].as_str().unwrap()).unwrap();
    RvmConfig::from_name(case["variant"].as_str().unwrap())
        .unwrap()
        .refiner(refiner)
}

fn load(gpu: &Gpu, case: &Value, file: &StateDict) -> RobustVideoMatting {
    RobustVideoMatting::load(gpu, config(case), &weights(file), "").unwrap()
}

/// Every output of frame `t` against the file's: the maps of the pass `run` asks for and
/// the four states.
fn check(name: &str, file: &StateDict, t: usize, out: &RvmOutput<Array4<f32>>, bound: f32) {
    let mut pairs = Vec::new();
    match &out.maps {
        RvmMaps::Matting { fgr, pha } => pairs.extend([("fgr", fgr), ("pha", pha)]),
        RvmMaps::Segmentation { seg } => pairs.push(("seg", seg)),
    }
    let states = ["r1", "r2", "r3", "r4"];
    pairs.extend(states.iter().copied().zip(out.state.iter()));
    for (n, got) in pairs {
        let key = if n.starts_with('r') {
            format!("{n}_{t}")
        } else {
            format!("{n}{t}")
        };
        let want = common::stored4(file, &key).unwrap();
        let err = common::relative(got, &want);
        assert!(err < bound, "{name} frame {t} {n}: relative error {err}");
    }
}

fn download(gpu: &Gpu, out: &RvmOutput<Tensor>) -> RvmOutput<Array4<f32>> {
    let get = |t: &Tensor| gpu.download(t).unwrap();
    RvmOutput {
        maps: match &out.maps {
            RvmMaps::Matting { fgr, pha } => RvmMaps::Matting {
                fgr: get(fgr),
                pha: get(pha),
            },
            RvmMaps::Segmentation { seg } => RvmMaps::Segmentation { seg: get(seg) },
        },
        state: out.state.each_ref().map(get),
    }
}

/// Each case's passes on both frames, on both kernel classes: the matting pass (through
/// the deep guided filter where the ratio is not 1) and the segmentation pass; the second
/// frame reads the first's states as the GPU left them.
#[test]
fn rvm_matches_pytorch_over_two_frames() {
    let own = common::gpu_class();
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let file = StateDict::load(dir().join(format!("{name}.safetensors"))).unwrap();
        let ratio = case["downsample_ratio"].as_f64().unwrap();
        let frames = [0, 1].map(|t| common::stored4(&file, &format!("x{t}")).unwrap());
        for gpu in [common::gpu(), &own] {
            let net = load(gpu, &case, &file);
            let run = RvmRun::default().downsample_ratio(ratio);
            for run in [run, run.segmentation_pass(true)] {
                let mut state: Option<[Tensor; 4]> = None;
                for (t, x) in frames.iter().enumerate() {
                    let x = gpu.upload(x.view()).unwrap();
                    let mut rec = gpu.recorder();
                    let out = net.forward(&mut rec, &x, state.as_ref(), run).unwrap();
                    rec.submit().unwrap();
                    check(name, &file, t, &download(gpu, &out), 1e-4);
                    state = Some(out.state);
                }
            }
        }
    }
}

/// The CPU reference over both frames of the MobileNetV3 cases (the refiners in the
/// others), the states carried; the bound of the GPU's (the fast guided filter's division
/// takes the reference to 1.1e-5).
#[test]
fn rvm_reference_matches_pytorch() {
    for case in cases().iter().filter(|c| c["variant"] == "mobilenetv3") {
        let name = case["name"].as_str().unwrap();
        let file = StateDict::load(dir().join(format!("{name}.safetensors"))).unwrap();
        let net = load(common::gpu(), case, &file);
        let run = RvmRun::default().downsample_ratio(case["downsample_ratio"].as_f64().unwrap());
        let mut state = None;
        for t in 0..2 {
            let x = common::stored4(&file, &format!("x{t}")).unwrap();
            let out = net.reference(x.view(), state.as_ref(), run).unwrap();
            check(name, &file, t, &out, 1e-4);
            state = Some(out.state);
        }
    }
}

/// `sum(p.numel())` of PyTorch's model less the projection the pass skips and the refiner.
#[test]
fn rvm_parameters_are_pytorchs() {
    let sd = StateDict::synthetic();
    for case in cases() {
        let net = RobustVideoMatting::load(common::gpu(), config(&case), &sd, "").unwrap();
        let ratio = case["downsample_ratio"].as_f64().unwrap();
        let run = RvmRun::default().downsample_ratio(ratio);
        let summary = net.summary([1, 3, 64, 64], run).unwrap();
        assert_eq!(
            summary.total_params(),
            case["parameters"].as_u64().unwrap(),
            "{}",
            case["name"]
        );
    }
}

fn named(e: Error, name: &str) {
    let text = e.to_string();
    assert!(text.contains(name), "{text} should name {name}");
}

#[test]
fn rvm_bad_inputs_are_typed_errors() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    named(RvmConfig::from_name("mobilenetv2").unwrap_err(), "variant");
    named(RvmRefiner::from_name("guided").unwrap_err(), "refiner");
    let net = RobustVideoMatting::load(gpu, RvmConfig::mobilenetv3(), &sd, "").unwrap();
    let run = RvmRun::default();
    assert_eq!(
        net.state_shapes([2, 3, 45, 61], run).unwrap(),
        [
            [2, 16, 23, 31],
            [2, 20, 12, 16],
            [2, 40, 6, 8],
            [2, 64, 3, 4]
        ]
    );
    named(net.state_shapes([1, 4, 32, 32], run).unwrap_err(), "input");
    for ratio in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let run = run.downsample_ratio(ratio).segmentation_pass(true);
        named(
            net.state_shapes([1, 3, 32, 32], run).unwrap_err(),
            "downsample_ratio",
        );
    }
    // A ratio that leaves no pixel: the resize's error.
    let half = run.downsample_ratio(0.5);
    let e = net.summary([1, 3, 1, 32], half).unwrap_err();
    named(e, "downsample_ratio");
    assert_eq!(
        net.state_shapes([1, 3, 45, 61], half).unwrap()[0],
        [1, 16, 11, 15]
    );
    // A state of another frame size, or of another stage's width.
    let x = gpu
        .upload(Array4::<f32>::zeros((1, 3, 32, 32)).view())
        .unwrap();
    let shapes = net.state_shapes([1, 3, 32, 32], run).unwrap();
    let mut states: Vec<Tensor> = shapes
        .iter()
        .map(|s| gpu.upload(Array4::<f32>::zeros(*s).view()).unwrap())
        .collect();
    states[2] = gpu
        .upload(Array4::<f32>::zeros([1, 40, 5, 4]).view())
        .unwrap();
    let states: [Tensor; 4] = states.try_into().unwrap();
    let mut rec = gpu.recorder();
    let e = net.forward(&mut rec, &x, Some(&states), run).unwrap_err();
    named(e, "r3");
    let y = gpu
        .upload(Array4::<f32>::zeros((1, 3, 40, 40)).view())
        .unwrap();
    let e = net.forward(&mut rec, &y, Some(&states), run).unwrap_err();
    named(e, "r1");
}
