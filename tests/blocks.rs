//! Blocks loaded from torchvision state dicts (safetensors files written by
//! tests/golden/make_golden_blocks.py with random weights and non-trivial batch-norm
//! statistics, in eval mode): the GPU forward (batch norms folded) and the CPU reference
//! forward (batch norms unfolded) both reproduce torchvision's output, and the summaries'
//! parameter totals equal PyTorch's parameter counts.

mod common;

use common::*;
use ndarray::{Array4, ArrayView4};
use segblocks::blocks::{
    Aspp, Bottleneck, BottleneckConfig, DenseBlock, FcnHead, InvertedResidual,
    InvertedResidualConfig, MobileNetV3Block, MobileNetV3Config, ShuffleV2Config, ShuffleV2Unit,
};
use segblocks::ops::attention::{SqueezeExcitation, SqueezeExcitationParams};
use segblocks::{reference, Error, Recorder, StateDict, Tensor};
use serde_json::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/blocks");

fn us(v: &Value) -> usize {
    v.as_u64().unwrap() as usize
}

fn arg(args: &Value, name: &str, default: usize) -> usize {
    args.get(name).map_or(default, us)
}

type GpuForward = Box<dyn Fn(&mut Recorder<'_>, &Tensor) -> segblocks::Result<Tensor>>;
type CpuForward = Box<dyn Fn(ArrayView4<f32>) -> segblocks::Result<Array4<f32>>>;

/// Builds the block a case describes: its GPU and reference forwards and, where the block
/// has a summary, its parameter total.
fn build(case: &Value, sd: &StateDict) -> (GpuForward, CpuForward, Option<u64>) {
    let gpu = gpu();
    let args = &case["args"];
    let class = case["class"].as_str().unwrap();
    let input: Vec<usize> = case["input_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(us)
        .collect();
    let input = [input[0], input[1], input[2], input[3]];
    match class.rsplit('.').take(2).collect::<Vec<_>>().as_slice() {
        ["Bottleneck", _] => {
            let cfg = BottleneckConfig {
                inplanes: us(&args["inplanes"]),
                planes: us(&args["planes"]),
                stride: arg(args, "stride", 1),
                groups: arg(args, "groups", 1),
                base_width: arg(args, "base_width", 64),
                dilation: arg(args, "dilation", 1),
                downsample: args.get("downsample").is_some(),
            };
            let b = std::rc::Rc::new(Bottleneck::load(gpu, cfg, sd, "").unwrap());
            let params = b.summary(input).unwrap().total_params();
            let b2 = b.clone();
            (
                Box::new(move |r, x| b.forward(r, x)),
                Box::new(move |x| b2.reference(x)),
                Some(params),
            )
        }
        ["InvertedResidual", "mobilenetv2"] => {
            let cfg = InvertedResidualConfig {
                inp: us(&args["inp"]),
                oup: us(&args["oup"]),
                stride: us(&args["stride"]),
                expand_ratio: args["expand_ratio"].as_f64().unwrap(),
            };
            let b = std::rc::Rc::new(InvertedResidual::load(gpu, cfg, sd, "").unwrap());
            let params = b.summary(input).unwrap().total_params();
            let b2 = b.clone();
            (
                Box::new(move |r, x| b.forward(r, x)),
                Box::new(move |x| b2.reference(x)),
                Some(params),
            )
        }
        ["InvertedResidual", "shufflenetv2"] => {
            let cfg = ShuffleV2Config {
                inp: us(&args["inp"]),
                oup: us(&args["oup"]),
                stride: us(&args["stride"]),
            };
            let b = std::rc::Rc::new(ShuffleV2Unit::load(gpu, cfg, sd, "").unwrap());
            let b2 = b.clone();
            (
                Box::new(move |r, x| b.forward(r, x)),
                Box::new(move |x| b2.reference(x)),
                None,
            )
        }
        ["InvertedResidual", "mobilenetv3"] => {
            let c = &args["cnf"];
            let cfg = MobileNetV3Config {
                input_channels: us(&c["input_channels"]),
                kernel: us(&c["kernel"]),
                expanded_channels: us(&c["expanded_channels"]),
                out_channels: us(&c["out_channels"]),
                use_se: c["use_se"].as_bool().unwrap(),
                use_hs: c["activation"].as_str().unwrap() == "HS",
                stride: us(&c["stride"]),
                dilation: us(&c["dilation"]),
            };
            let b = std::rc::Rc::new(MobileNetV3Block::load(gpu, cfg, sd, "").unwrap());
            let b2 = b.clone();
            (
                Box::new(move |r, x| b.forward(r, x)),
                Box::new(move |x| b2.reference(x)),
                None,
            )
        }
        ["SqueezeExcitation", _] => {
            let (c, s) = (us(&args["input_channels"]), us(&args["squeeze_channels"]));
            let params = SqueezeExcitationParams::new(c, s);
            let (w1, b1) = (
                sd.get4("fc1.weight", [s, c, 1, 1]).unwrap(),
                sd.get1("fc1.bias", s).unwrap(),
            );
            let (w2, b2) = (
                sd.get4("fc2.weight", [c, s, 1, 1]).unwrap(),
                sd.get1("fc2.bias", c).unwrap(),
            );
            let se =
                SqueezeExcitation::new(gpu, params, w1.view(), b1.view(), w2.view(), b2.view())
                    .unwrap();
            (
                Box::new(move |r, x| se.forward(r, x)),
                Box::new(move |x| {
                    reference::attention::squeeze_excitation(
                        &params,
                        x,
                        (w1.view(), b1.view()),
                        (w2.view(), b2.view()),
                    )
                }),
                None,
            )
        }
        ["ASPP", _] => {
            let rates: Vec<usize> = args["atrous_rates"]
                .as_array()
                .unwrap()
                .iter()
                .map(us)
                .collect();
            let b = std::rc::Rc::new(
                Aspp::load(
                    gpu,
                    us(&args["in_channels"]),
                    &rates,
                    us(&args["out_channels"]),
                    sd,
                    "",
                )
                .unwrap(),
            );
            let b2 = b.clone();
            (
                Box::new(move |r, x| b.forward(r, x)),
                Box::new(move |x| b2.reference(x)),
                None,
            )
        }
        ["_DenseBlock", _] => {
            let b = std::rc::Rc::new(
                DenseBlock::load(
                    gpu,
                    us(&args["num_layers"]),
                    us(&args["num_input_features"]),
                    us(&args["bn_size"]),
                    us(&args["growth_rate"]),
                    sd,
                    "",
                )
                .unwrap(),
            );
            let b2 = b.clone();
            (
                Box::new(move |r, x| b.forward(r, x)),
                Box::new(move |x| b2.reference(x)),
                None,
            )
        }
        ["FCNHead", _] => {
            let b = std::rc::Rc::new(
                FcnHead::load(gpu, us(&args["in_channels"]), us(&args["channels"]), sd, "")
                    .unwrap(),
            );
            let b2 = b.clone();
            (
                Box::new(move |r, x| b.forward(r, x)),
                Box::new(move |x| b2.reference(x)),
                None,
            )
        }
        other => panic!("unknown class {class} ({other:?})"),
    }
}

#[test]
fn torchvision_blocks_load_and_match() {
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/cases.json")).unwrap())
            .unwrap();
    let cases = cases["cases"].as_array().unwrap();
    assert!(cases.len() >= 12);
    let gpu = gpu();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let sd = StateDict::load(format!("{DIR}/{}", case["file"].as_str().unwrap())).unwrap();
        let x: Array4<f32> = sd
            .get("__input__", &shape_of(case, "input_shape"))
            .unwrap()
            .into_dimensionality()
            .unwrap();
        let want: Array4<f32> = sd
            .get("__output__", &shape_of(case, "output_shape"))
            .unwrap()
            .into_dimensionality()
            .unwrap();
        let (forward, reference, params) = build(case, &sd);
        // f32 convolutions of short reductions plus folding: 1e-4 relative to the value's
        // scale; the saturating cases have outputs up to ~40.
        let tol = want.mapv(|v| 1e-4 * (1.0 + v.abs()));
        let cpu = reference(x.view()).unwrap();
        assert_close(
            cpu.view(),
            want.view(),
            tol.view(),
            &format!("reference {name}"),
        );
        let xt = gpu.upload(x.view()).unwrap();
        let mut rec = gpu.recorder();
        let y = forward(&mut rec, &xt).unwrap();
        let got = rec.download(&y).unwrap();
        assert_close(got.view(), want.view(), tol.view(), &format!("GPU {name}"));
        if let Some(p) = params {
            let torch_params = torch_parameter_count(&sd);
            assert_eq!(
                p as usize, torch_params,
                "{name}: parameters as PyTorch counts them"
            );
        }
    }
}

fn element_count(sd: &StateDict, name: &str) -> usize {
    sd.tensor(name).map_or(0, |t| t.len())
}

/// PyTorch's `sum(p.numel() for p in parameters())` for an exported state dict: every
/// tensor but the running statistics and the test's own `__input__` / `__output__`.
fn torch_parameter_count(sd: &StateDict) -> usize {
    sd.names()
        .filter(|n| {
            !n.starts_with("__") && !n.ends_with("running_mean") && !n.ends_with("running_var")
        })
        .map(|n| element_count(sd, n))
        .sum()
}

fn shape_of(case: &Value, key: &str) -> Vec<usize> {
    case[key].as_array().unwrap().iter().map(us).collect()
}

#[test]
fn missing_or_misshaped_weights_are_named() {
    let gpu = gpu();
    let sd = StateDict::load(format!("{DIR}/resnet_bottleneck.safetensors")).unwrap();
    // Loading under a prefix that does not exist names the first tensor looked up.
    match Bottleneck::load(gpu, BottleneckConfig::new(64, 16), &sd, "layer1.0") {
        Err(Error::Weights(msg)) => assert!(msg.contains("layer1.0.conv1.weight"), "{msg}"),
        other => panic!("{other:?}"),
    }
    // A configuration whose shapes disagree with the file names the tensor and both shapes.
    let wrong = BottleneckConfig {
        groups: 2,
        ..BottleneckConfig::new(64, 16)
    };
    match Bottleneck::load(gpu, wrong, &sd, "") {
        Err(Error::Weights(msg)) => assert!(
            msg.contains("conv1.weight") && msg.contains("[16, 64, 1, 1]"),
            "{msg}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        StateDict::from_safetensors(b"not a file"),
        Err(Error::Weights(_))
    ));
}

#[test]
fn dense_block_batch_one_reads_the_buffer_in_place() {
    let gpu = gpu();
    let sd = StateDict::load(format!("{DIR}/densenet_dense_block.safetensors")).unwrap();
    let block = DenseBlock::load(gpu, 3, 8, 2, 4, &sd, "").unwrap();
    let x: Array4<f32> = sd
        .get("__input__", &[2, 8, 7, 6])
        .unwrap()
        .into_dimensionality()
        .unwrap();
    let want: Array4<f32> = sd
        .get("__output__", &[2, 20, 7, 6])
        .unwrap()
        .into_dimensionality()
        .unwrap();
    let x1 = x.slice(ndarray::s![1..2, .., .., ..]).to_owned();
    let want1 = want.slice(ndarray::s![1..2, .., .., ..]).to_owned();
    let mut rec = gpu.recorder();
    let y = block
        .forward(&mut rec, &gpu.upload(x1.view()).unwrap())
        .unwrap();
    // Per layer: BN + ReLU, conv1, conv2, append (no feature copies for batch 1).
    assert_eq!(rec.dispatch_count(), 1 + 3 * 4);
    let got = rec.download(&y).unwrap();
    let tol = want1.mapv(|v| 1e-4 * (1.0 + v.abs()));
    assert_close(got.view(), want1.view(), tol.view(), "dense block, batch 1");
    assert_eq!(block.out_channels(), 20);
}

#[test]
fn mobilenet_v2_features_end_to_end() {
    use segblocks::blocks::MobileNetV2Features;
    // A context of its own: the pipeline count below must not see other tests' work.
    let own = segblocks::Gpu::new().unwrap();
    let gpu = &own;
    let sd = StateDict::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/mobilenet_v2_features.safetensors"
    ))
    .unwrap();
    let net = MobileNetV2Features::load(gpu, 0.35, &sd, "").unwrap();
    let x: Array4<f32> = sd
        .get("__input__", &[1, 3, 64, 64])
        .unwrap()
        .into_dimensionality()
        .unwrap();
    let want: Array4<f32> = sd
        .get("__output__", &[1, 1280, 2, 2])
        .unwrap()
        .into_dimensionality()
        .unwrap();
    // Nineteen layers of f32 convolutions: 1e-3 relative to the output's scale.
    let tol = want.mapv(|v| 1e-3 * (1.0 + v.abs()));
    let cpu = net.reference(x.view()).unwrap();
    assert_close(
        cpu.view(),
        want.view(),
        tol.view(),
        "MobileNetV2 features, reference",
    );
    let xt = gpu.upload(x.view()).unwrap();
    let run = || {
        let mut rec = gpu.recorder();
        let y = net.forward(&mut rec, &xt).unwrap();
        (rec.dispatch_count(), rec.download(&y).unwrap())
    };
    let (dispatches, got) = run();
    assert_close(
        got.view(),
        want.view(),
        tol.view(),
        "MobileNetV2 features, GPU",
    );
    // 52 convolutions (the 10 residual adds fused into their projections), recorded into
    // one submission.
    assert_eq!(dispatches, 52);
    // A second forward pass compiles no pipeline.
    let compiled = gpu.pipelines_created();
    let (_, again) = run();
    assert_eq!(gpu.pipelines_created(), compiled);
    assert_eq!(again, got);
    // The summary's parameter total is PyTorch's parameters() count.
    let summary = net.summary([1, 3, 64, 64]).unwrap();
    let torch_params = torch_parameter_count(&sd);
    assert_eq!(summary.total_params() as usize, torch_params);
    assert_eq!(torch_params, 396_128);
    assert_eq!(summary.rows.last().unwrap().output, [1, 1280, 2, 2]);
}

#[test]
fn mobilenet_v3_features_end_to_end() {
    use segblocks::blocks::{MobileNetV3Features, MobileNetV3FeaturesConfig};
    let gpu = gpu();
    for (file, cfg, out, params) in [
        (
            "mobilenet_v3_small_features",
            MobileNetV3FeaturesConfig::small().width_mult(0.5),
            [2, 288, 2, 2],
            256_296,
        ),
        (
            // The LR-ASPP segmentation backbone's configuration: dilated last stage.
            "mobilenet_v3_large_features",
            MobileNetV3FeaturesConfig::large()
                .width_mult(0.35)
                .reduced_tail(true)
                .dilated(true),
            [2, 192, 4, 4],
            223_088,
        ),
    ] {
        let sd = StateDict::load(format!(
            "{}/tests/golden/{file}.safetensors",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let net = MobileNetV3Features::load(gpu, cfg, &sd, "").unwrap();
        let x: Array4<f32> = sd
            .get("__input__", &[2, 3, 64, 64])
            .unwrap()
            .into_dimensionality()
            .unwrap();
        let want: Array4<f32> = sd
            .get("__output__", &out)
            .unwrap()
            .into_dimensionality()
            .unwrap();
        let tol = want.mapv(|v| 1e-3 * (1.0 + v.abs()));
        let cpu = net.reference(x.view()).unwrap();
        assert_close(
            cpu.view(),
            want.view(),
            tol.view(),
            &format!("{file}, reference"),
        );
        let xt = gpu.upload(x.view()).unwrap();
        let mut rec = gpu.recorder();
        let y = net.forward(&mut rec, &xt).unwrap();
        let got = rec.download(&y).unwrap();
        assert_close(got.view(), want.view(), tol.view(), &format!("{file}, GPU"));
        let summary = net.summary([2, 3, 64, 64]).unwrap();
        let torch_params = torch_parameter_count(&sd);
        assert_eq!(summary.total_params() as usize, torch_params, "{file}");
        assert_eq!(torch_params, params, "{file}");
        assert_eq!(summary.rows.last().unwrap().output, out);
    }
    // A bad width is a typed error.
    let sd = StateDict::new();
    assert!(matches!(
        MobileNetV3Features::load(
            gpu,
            MobileNetV3FeaturesConfig::small().width_mult(0.0),
            &sd,
            ""
        ),
        Err(segblocks::Error::InvalidParam {
            name: "width_mult",
            ..
        })
    ));
}

#[test]
fn lraspp_mobilenet_v3_segmentation_model_end_to_end() {
    use segblocks::blocks::{LrAsppMobileNetV3, MobileNetV3FeaturesConfig};
    let gpu = gpu();
    let sd = StateDict::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/lraspp_mobilenet_v3_large.safetensors"
    ))
    .unwrap();
    let cfg = MobileNetV3FeaturesConfig::large()
        .width_mult(0.35)
        .dilated(true);
    let net = LrAsppMobileNetV3::load(gpu, cfg, 5, &sd).unwrap();
    let x: Array4<f32> = sd
        .get("__input__", &[1, 3, 72, 88])
        .unwrap()
        .into_dimensionality()
        .unwrap();
    let want: Array4<f32> = sd
        .get("__output__", &[1, 5, 72, 88])
        .unwrap()
        .into_dimensionality()
        .unwrap();
    let tol = want.mapv(|v| 1e-3 * (1.0 + v.abs()));
    let cpu = net.reference(x.view()).unwrap();
    assert_close(cpu.view(), want.view(), tol.view(), "LR-ASPP, reference");
    let xt = gpu.upload(x.view()).unwrap();
    let mut rec = gpu.recorder();
    let y = net.forward(&mut rec, &xt).unwrap();
    let got = rec.download(&y).unwrap();
    assert_close(got.view(), want.view(), tol.view(), "LR-ASPP, GPU");
    assert!(matches!(
        LrAsppMobileNetV3::load(gpu, cfg, 0, &sd),
        Err(segblocks::Error::InvalidParam {
            name: "num_classes",
            ..
        })
    ));
}

#[test]
fn depthwise_separable_block_and_its_multipliers() {
    use segblocks::blocks::{DepthwiseSeparableBlock, DepthwiseSeparableConfig};
    let gpu = gpu();
    let sd = StateDict::synthetic();
    let mut r = rng(21);
    for cfg in [
        DepthwiseSeparableConfig::new(8, 16, 1),
        DepthwiseSeparableConfig::new(8, 16, 2).alpha(0.75),
    ] {
        let block = DepthwiseSeparableBlock::load(gpu, cfg, &sd, "").unwrap();
        let (cin, _) = cfg.channels();
        let x = random4(&mut r, [2, cin, 9, 8]);
        let want = block.reference(x.view()).unwrap();
        let mut rec = gpu.recorder();
        let y = block
            .forward(&mut rec, &gpu.upload(x.view()).unwrap())
            .unwrap();
        let got = rec.download(&y).unwrap();
        let tol = want.mapv(|v| 1e-4 * (1.0 + v.abs()));
        assert_close(got.view(), want.view(), tol.view(), &format!("{cfg:?}"));
    }
    // Width multiplier alpha = 0.75 cuts about 1 - 0.75^2 = 44% of the parameters; the
    // resolution multiplier rho scales MACs by rho^2 and leaves parameters alone.
    let base = [1, 512, 14, 14];
    let full = DepthwiseSeparableConfig::new(512, 512, 1)
        .cost_at(1.0, base)
        .unwrap();
    let thin = DepthwiseSeparableConfig::new(512, 512, 1)
        .alpha(0.75)
        .cost_at(1.0, base)
        .unwrap();
    let cut = 1.0 - thin.params as f64 / full.params as f64;
    assert!((cut - 0.4375).abs() < 0.01, "{cut}");
    let low = DepthwiseSeparableConfig::new(512, 512, 1)
        .cost_at(0.5, base)
        .unwrap();
    assert_eq!(low.params, full.params);
    assert!((low.macs as f64 / full.macs as f64 - 0.25).abs() < 1e-9);
    assert!(DepthwiseSeparableConfig::new(8, 8, 1)
        .alpha(0.0)
        .cost_at(1.0, base)
        .is_err());
}

#[test]
fn segnet_stages_round_trip_through_the_pooling_indices() {
    use segblocks::blocks::{SegNetDecoder, SegNetEncoder};
    let gpu = gpu();
    let sd = StateDict::synthetic();
    let enc = SegNetEncoder::load(gpu, 3, 8, 2, &sd, "enc").unwrap();
    let dec = SegNetDecoder::load(gpu, 8, 4, 2, &sd, "dec").unwrap();
    let mut r = rng(22);
    let x = random4(&mut r, [1, 3, 11, 9]);
    let (pooled, idx) = enc.reference(x.view()).unwrap();
    let want = dec.reference(pooled.view(), idx.view(), (11, 9)).unwrap();
    let mut rec = gpu.recorder();
    let e = enc
        .forward(&mut rec, &gpu.upload(x.view()).unwrap())
        .unwrap();
    assert_eq!(e.size, (11, 9));
    let y = dec.forward(&mut rec, &e).unwrap();
    let got = rec.download(&y).unwrap();
    assert_eq!(got.shape(), &[1, 4, 11, 9]);
    let tol = want.mapv(|v| 1e-4 * (1.0 + v.abs()));
    assert_close(
        got.view(),
        want.view(),
        tol.view(),
        "SegNet encoder + decoder",
    );
}

#[test]
fn shufflenet_v1_units_with_the_shuffle_fused() {
    use segblocks::blocks::{ShuffleV1Config, ShuffleV1Unit};
    let gpu = gpu();
    let sd = StateDict::synthetic();
    let mut r = rng(23);
    for (cfg, shape) in [
        (
            ShuffleV1Config {
                in_channels: 24,
                out_channels: 24,
                groups: 3,
                first_groups: 3,
                stride: 1,
                bottleneck: 6,
            },
            [2, 24, 7, 6],
        ),
        (
            ShuffleV1Config {
                in_channels: 24,
                out_channels: 240,
                groups: 3,
                first_groups: 1,
                stride: 2,
                bottleneck: 60,
            },
            [1, 24, 9, 8],
        ),
    ] {
        let unit = ShuffleV1Unit::load(gpu, cfg, &sd, "unit").unwrap();
        let x = random4(&mut r, shape);
        let want = unit.reference(x.view()).unwrap();
        let mut rec = gpu.recorder();
        let y = unit
            .forward(&mut rec, &gpu.upload(x.view()).unwrap())
            .unwrap();
        let got = rec.download(&y).unwrap();
        let tol = want.mapv(|v| 1e-4 * (1.0 + v.abs()));
        assert_close(got.view(), want.view(), tol.view(), &format!("{cfg:?}"));
    }
    let bad = ShuffleV1Config {
        in_channels: 24,
        out_channels: 24,
        groups: 3,
        first_groups: 3,
        stride: 2,
        bottleneck: 6,
    };
    assert!(matches!(
        ShuffleV1Unit::load(gpu, bad, &sd, ""),
        Err(Error::InvalidParam {
            name: "out_channels",
            ..
        })
    ));
}
