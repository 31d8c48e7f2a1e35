//! Blocks loaded from torchvision state dicts (safetensors files written by
//! tests/golden/make_golden_blocks.py with random weights and non-trivial batch-norm
//! statistics, in eval mode): the GPU forward (batch norms folded) and the CPU reference
//! forward (batch norms unfolded) both reproduce torchvision's output, and the summaries'
//! parameter totals equal PyTorch's parameter counts.

mod common;

use common::*;
use ndarray::{Array4, ArrayView4};
use segblocks::blocks::{
    Architecture, Aspp, AsppConfig, BasicBlock, BasicBlockConfig, Bottleneck, BottleneckConfig,
    BottleneckKind, DenseBlock, DenseBlockConfig, FcnHead, FcnHeadConfig, InvertedResidual,
    InvertedResidualConfig, MobileNetV3Block, MobileNetV3Config, Model, ShuffleV2Config,
    ShuffleV2Unit,
};
use segblocks::ops::attention::{Cbam, CbamParams, SqueezeExcitation, SqueezeExcitationParams};
use segblocks::ops::channel::ChannelPoolOrder;
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

/// A block's GPU and reference forwards and its summary's parameter total: every block
/// is a `Model` of its architecture, used the same way.
fn boxed<A: Architecture + 'static>(
    block: segblocks::Result<Model<A>>,
    input: [usize; 4],
) -> (GpuForward, CpuForward, Option<u64>) {
    let b = std::rc::Rc::new(block.unwrap());
    let params = b.summary(input).unwrap().total_params();
    assert_eq!(
        b.output_shape(input).unwrap(),
        b.summary(input).unwrap().rows.last().unwrap().output
    );
    let b2 = b.clone();
    (
        Box::new(move |r, x| b.forward(r, x)),
        Box::new(move |x| b2.reference(x)),
        Some(params),
    )
}

/// Builds the block a case describes on `gpu`: its GPU and reference forwards and, where
/// the block has a summary, its parameter total.
fn build(
    gpu: &segblocks::Gpu,
    case: &Value,
    sd: &StateDict,
) -> (GpuForward, CpuForward, Option<u64>) {
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
            // The projection as torchvision decides: whether the module (the state dict)
            // has one.
            let cfg = BottleneckConfig::new(us(&args["inplanes"]), us(&args["planes"]))
                .stride(arg(args, "stride", 1))
                .groups(arg(args, "groups", 1), arg(args, "base_width", 64))
                .dilation(arg(args, "dilation", 1));
            let b = Bottleneck::load(gpu, cfg, sd, "");
            let has = b.as_ref().map(|b| b.has_downsample()).unwrap_or(false);
            assert_eq!(has, args.get("downsample").is_some(), "{class}");
            boxed(b, input)
        }
        ["BasicBlock", _] => {
            let cfg = BasicBlockConfig::new(us(&args["inplanes"]), us(&args["planes"]))
                .stride(arg(args, "stride", 1))
                .groups(arg(args, "groups", 1), arg(args, "base_width", 64))
                .dilation(arg(args, "dilation", 1));
            let b = BasicBlock::load(gpu, cfg, sd, "");
            let has = b.as_ref().map(|b| b.has_downsample()).unwrap_or(false);
            assert_eq!(has, args.get("downsample").is_some(), "{class}");
            boxed(b, input)
        }
        ["InvertedResidual", "mobilenetv2"] => {
            let cfg = InvertedResidualConfig {
                inp: us(&args["inp"]),
                oup: us(&args["oup"]),
                stride: us(&args["stride"]),
                expand_ratio: args["expand_ratio"].as_f64().unwrap(),
            };
            boxed(InvertedResidual::load(gpu, cfg, sd, ""), input)
        }
        ["InvertedResidual", "shufflenetv2"] => {
            let cfg = ShuffleV2Config {
                inp: us(&args["inp"]),
                oup: us(&args["oup"]),
                stride: us(&args["stride"]),
            };
            boxed(ShuffleV2Unit::load(gpu, cfg, sd, ""), input)
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
            boxed(MobileNetV3Block::load(gpu, cfg, sd, ""), input)
        }
        ["SqueezeExcitation", _] => {
            let (c, s) = (us(&args["input_channels"]), us(&args["squeeze_channels"]));
            let params = SqueezeExcitationParams::new(c, s);
            let se = SqueezeExcitation::load(gpu, params, sd, "").unwrap();
            let (w1, b1) = (
                sd.get4("fc1.weight", [s, c, 1, 1]).unwrap(),
                sd.get1("fc1.bias", s).unwrap(),
            );
            let (w2, b2) = (
                sd.get4("fc2.weight", [c, s, 1, 1]).unwrap(),
                sd.get1("fc2.bias", c).unwrap(),
            );
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
            let cfg = AsppConfig {
                in_channels: us(&args["in_channels"]),
                atrous_rates: args["atrous_rates"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(us)
                    .collect(),
                out_channels: us(&args["out_channels"]),
                separable: false,
            };
            boxed(Aspp::load(gpu, cfg, sd, ""), input)
        }
        ["_DenseBlock", _] => {
            let cfg = DenseBlockConfig {
                num_layers: us(&args["num_layers"]),
                num_input_features: us(&args["num_input_features"]),
                bn_size: us(&args["bn_size"]),
                growth_rate: us(&args["growth_rate"]),
            };
            boxed(DenseBlock::load(gpu, cfg, sd, ""), input)
        }
        ["FCNHead", _] => {
            let cfg = FcnHeadConfig {
                in_channels: us(&args["in_channels"]),
                channels: us(&args["channels"]),
            };
            boxed(FcnHead::load(gpu, cfg, sd, ""), input)
        }
        ["CBAM", _] => {
            // The CBAM authors' module by its state dict: the obvious call, with the order
            // of its spatial maps stated.
            let c = us(&args["gate_channels"]);
            let r = us(&args["reduction_ratio"]);
            let params = CbamParams::new(c, ChannelPoolOrder::MaxMean).reduction_ratio(r);
            let cbam = Cbam::load(gpu, params, sd, "").unwrap();
            // The reference: the authors' layers, the spatial batch norm applied after
            // the convolution (folded with PyTorch's formula, checked in tests/norm.rs).
            let (h, k) = (c / r, 7);
            let linear = |n: &str, o: usize, i: usize| {
                let w = sd.get(&format!("{n}.weight"), &[o, i]).unwrap();
                let w = Array4::from_shape_vec([o, i, 1, 1], w.iter().copied().collect()).unwrap();
                (w, sd.get1(&format!("{n}.bias"), o).unwrap())
            };
            let (w1, b1) = linear("ChannelGate.mlp.1", h, c);
            let (w2, b2) = linear("ChannelGate.mlp.3", c, h);
            let ws = sd
                .get4("SpatialGate.spatial.conv.weight", [1, 2, k, k])
                .unwrap();
            let bn = |n: &str| sd.get1(&format!("SpatialGate.spatial.bn.{n}"), 1).unwrap();
            let (ws, bs) = segblocks::ops::norm::fold_batch_norm(
                ws.view(),
                None,
                bn("weight").view(),
                bn("bias").view(),
                bn("running_mean").view(),
                bn("running_var").view(),
                1e-5,
            )
            .unwrap();
            let folded = params.spatial_bias(true);
            (
                Box::new(move |r, x| cbam.forward(r, x)),
                Box::new(move |x| {
                    reference::attention::cbam(
                        &folded,
                        x,
                        (w1.view(), Some(b1.view())),
                        (w2.view(), Some(b2.view())),
                        ws.view(),
                        Some(bs.view()),
                    )
                }),
                None,
            )
        }
        other => panic!("unknown class {class} ({other:?})"),
    }
}

/// Every case of the golden blocks (or of `SEGBLOCKS_GOLDEN_DIR/blocks`, random cases of
/// `scripts/fuzz_golden.py`) on the kernels this adapter gets and on a GPU's (fused
/// inverted residuals, tiled convolutions).
#[test]
fn torchvision_blocks_load_and_match() {
    let dir = golden::golden_dir("tests/golden/blocks");
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let cases = cases["cases"].as_array().unwrap();
    assert!(cases.len() >= 12);
    let own = gpu_class();
    for (gpu, class) in [(gpu(), "own class"), (&own, "GPU class")] {
        for case in cases {
            check_block(gpu, &dir, case, class);
        }
    }
}

/// One golden block on `gpu`: the reference and the GPU forward against PyTorch's output,
/// the summary's parameters against PyTorch's count.
fn check_block(gpu: &segblocks::Gpu, dir: &std::path::Path, case: &Value, class: &str) {
    let name = format!("{} ({class})", case["name"].as_str().unwrap());
    let sd = StateDict::load(dir.join(case["file"].as_str().unwrap())).unwrap();
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
    let (forward, reference, params) = build(gpu, case, &sd);
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
    let wrong = BottleneckConfig::new(64, 16).groups(2, 64);
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
    let cfg = DenseBlockConfig {
        num_layers: 3,
        num_input_features: 8,
        bn_size: 2,
        growth_rate: 4,
    };
    let block = DenseBlock::load(gpu, cfg, &sd, "").unwrap();
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
    // Per layer: BN + ReLU, conv1, conv2; each append, like the initial one, a buffer
    // copy, no dispatch (no feature copies for batch 1).
    assert_eq!(rec.dispatch_count(), 3 * 3);
    let got = rec.download(&y).unwrap();
    let tol = want1.mapv(|v| 1e-4 * (1.0 + v.abs()));
    assert_close(got.view(), want1.view(), tol.view(), "dense block, batch 1");
    assert_eq!(block.out_channels(), 20);
}

/// torchvision's `mobilenet_v2(width_mult=0.35).features`: its state dict, input and
/// output.
fn mobilenet_v2_golden() -> (StateDict, Array4<f32>, Array4<f32>) {
    let sd = StateDict::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/mobilenet_v2_features.safetensors"
    ))
    .unwrap();
    let get = |name: &str, shape: &[usize]| -> Array4<f32> {
        sd.get(name, shape).unwrap().into_dimensionality().unwrap()
    };
    let (x, want) = (
        get("__input__", &[1, 3, 64, 64]),
        get("__output__", &[1, 1280, 2, 2]),
    );
    (sd, x, want)
}

#[test]
fn mobilenet_v2_features_end_to_end() {
    use segblocks::networks::{MobileNetV2Config, MobileNetV2Features};
    // A context of its own: the pipeline count below must not see other tests' work. The
    // layers' kernels (a CPU adapter's choice) on any adapter: the count below is theirs.
    let own = cpu_class();
    let gpu = &own;
    let (sd, x, want) = mobilenet_v2_golden();
    let cfg = MobileNetV2Config::torchvision().width_mult(0.35);
    let net = MobileNetV2Features::load(gpu, cfg, &sd, "").unwrap();
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
    assert_weights_on_device_once(gpu, torch_params, xt.shape().iter().product());
}

/// What stays live on `gpu` after forward passes (its layers' weights and `live_values`
/// f32 values of live tensors) is the network's `params` once: the fused kernels' copies
/// go up only on devices that run them (size classes and channel padding add a little).
fn assert_weights_on_device_once(gpu: &segblocks::Gpu, params: usize, live_values: usize) {
    let weights = gpu.memory_stats().live_bytes as usize - 4 * live_values;
    assert!(
        weights <= params * 4 * 5 / 4,
        "weights take {weights} bytes of device memory for {params} parameters"
    );
}

/// One forward of `x` on `gpu`: what it moved, and its output.
fn traffic_and_output(
    gpu: &segblocks::Gpu,
    x: &Array4<f32>,
    forward: impl FnOnce(
        &mut segblocks::Recorder<'_>,
        &segblocks::Tensor,
    ) -> segblocks::Result<segblocks::Tensor>,
) -> (segblocks::traffic::Traffic, Array4<f32>) {
    let mut rec = gpu.recorder();
    let y = forward(&mut rec, &gpu.upload(x.view()).unwrap()).unwrap();
    let traffic = rec.traffic();
    (traffic, rec.download(&y).unwrap())
}

/// The same network with every inverted residual one fused dispatch
/// (`GpuOptions::fuse_expanding_blocks`; by default a GPU fuses only the first block, which
/// has no expansion, and lavapipe none: see `ops::inverted_residual::select_kernel`).
#[test]
fn mobilenet_v2_features_fused_as_on_a_gpu() {
    use segblocks::networks::{MobileNetV2Config, MobileNetV2Features};
    let (sd, x, want) = mobilenet_v2_golden();
    let tol = want.mapv(|v| 1e-3 * (1.0 + v.abs()));
    // A GPU's own choice: the first block fused, the others as their layers.
    let plain = gpu_class();
    let net = MobileNetV2Features::load(
        &plain,
        MobileNetV2Config::torchvision().width_mult(0.35),
        &sd,
        "",
    )
    .unwrap();
    let (traffic, got) = traffic_and_output(&plain, &x, |r, x| net.forward(r, x));
    assert_close(
        got.view(),
        want.view(),
        tol.view(),
        "MobileNetV2 features, GPU",
    );
    assert_eq!(fused_count(&traffic), (51, 1));
    let own = gpu_class_fused();
    let gpu = &own;
    assert!(!gpu.caps().cpu);
    let cfg = MobileNetV2Config::torchvision().width_mult(0.35);
    let net = MobileNetV2Features::load(gpu, cfg, &sd, "").unwrap();
    let (traffic, got) = traffic_and_output(gpu, &x, |r, x| net.forward(r, x));
    assert_close(
        got.view(),
        want.view(),
        tol.view(),
        "MobileNetV2 features, fused",
    );
    // The stem, 17 fused blocks and the last 1x1 convolution.
    assert_eq!(traffic.dispatches.len(), 19);
    // A second forward takes the remembered choices: the same dispatches and output.
    let (again, same) = traffic_and_output(gpu, &x, |r, x| net.forward(r, x));
    assert_eq!((again.dispatches, same), (traffic.dispatches.clone(), got));
    // A fused block's dispatch carries the names of the layers it replaces.
    let fused: Vec<&str> = traffic
        .dispatches
        .iter()
        .filter(|d| d.kernel == "inverted_residual.wgsl")
        .map(|d| d.layer.as_str())
        .collect();
    assert!(
        fused.contains(&"3.expand + depthwise + project"),
        "{fused:?}"
    );
    assert_weights_on_device_once(gpu, torch_parameter_count(&sd), 0);
}

#[test]
fn mobilenet_v3_features_end_to_end() {
    use segblocks::networks::{MobileNetV3Features, MobileNetV3FeaturesConfig};
    // The layers' kernels (a CPU adapter's choice) and a GPU's fused blocks, on any adapter.
    let cpu_class = common::cpu_class();
    let gpu = &cpu_class;
    let gpu_class = common::gpu_class_fused();
    for (file, cfg, out, params, counts) in [
        (
            "mobilenet_v3_small_features",
            MobileNetV3FeaturesConfig::small().width_mult(0.5),
            [2, 288, 2, 2],
            256_296,
            (43, 22, 20),
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
            (54, 25, 23),
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
        let unfused = rec.dispatch_count();
        let got = rec.download(&y).unwrap();
        assert_close(got.view(), want.view(), tol.view(), &format!("{file}, GPU"));
        // Every block fused (`fuse_expanding_blocks`), those with SE in two passes that
        // compute the gate themselves.
        let net = MobileNetV3Features::load(&gpu_class, cfg, &sd, "").unwrap();
        let (traffic, got) = traffic_and_output(&gpu_class, &x, |r, x| net.forward(r, x));
        assert_close(
            got.view(),
            want.view(),
            tol.view(),
            &format!("{file}, fused"),
        );
        let fused = traffic
            .dispatches
            .iter()
            .filter(|d| d.kernel == "inverted_residual.wgsl")
            .count();
        eprintln!(
            "{file}: {unfused} dispatches unfused, {} fused ({fused} fused kernels)",
            traffic.dispatches.len()
        );
        assert_eq!((unfused, traffic.dispatches.len(), fused), counts, "{file}");
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
    use segblocks::networks::{LrAsppConfig, LrAsppMobileNetV3};
    let gpu = gpu();
    let sd = StateDict::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/lraspp_mobilenet_v3_large.safetensors"
    ))
    .unwrap();
    // torchvision's configuration at width 0.35: the preset is dilated.
    let cfg = LrAsppConfig::torchvision(5);
    let cfg = cfg.backbone(cfg.backbone.width_mult(0.35));
    let net = LrAsppMobileNetV3::load(gpu, cfg, &sd, "").unwrap();
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
    // The kernels a GPU gets: the high classifier (a GEMM there) applies the sigmoid gate
    // as it reads the branch, so no pass scales the branch first.
    let own = gpu_class();
    let fused = LrAsppMobileNetV3::load(&own, cfg, &sd, "").unwrap();
    let (traffic, got) = traffic_and_output(&own, &x, |r, x| fused.forward(r, x));
    assert_close(got.view(), want.view(), tol.view(), "LR-ASPP, GPU class");
    let classifier: Vec<_> = traffic
        .dispatches
        .iter()
        .filter(|d| d.layer.starts_with("classifier"))
        .map(|d| d.kernel)
        .collect();
    assert!(!classifier.contains(&"elementwise.wgsl"), "{classifier:?}");
    assert!(
        classifier.contains(&"conv_pointwise_scalar.wgsl"),
        "{classifier:?}"
    );
    assert!(matches!(
        LrAsppMobileNetV3::load(
            gpu,
            LrAsppConfig {
                num_classes: 0,
                ..cfg
            },
            &sd,
            ""
        ),
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
fn segnet_stage_round_trips_through_the_pooling_indices() {
    use segblocks::blocks::{SegNetStage, SegNetStageConfig};
    let gpu = gpu();
    let sd = StateDict::synthetic();
    let cfg = SegNetStageConfig {
        in_channels: 3,
        channels: 8,
        out_channels: 4,
        encoder_convs: 2,
        decoder_convs: 2,
    };
    let stage = SegNetStage::load(gpu, cfg, &sd, "stage").unwrap();
    let mut r = rng(22);
    // An odd size: the unpooling returns to 11 x 9, not 10 x 8.
    let x = random4(&mut r, [2, 3, 11, 9]);
    let want = stage.reference(x.view()).unwrap();
    let mut rec = gpu.recorder();
    let y = stage
        .forward(&mut rec, &gpu.upload(x.view()).unwrap())
        .unwrap();
    let got = rec.download(&y).unwrap();
    assert_eq!(got.shape(), &[2, 4, 11, 9]);
    let tol = want.mapv(|v| 1e-4 * (1.0 + v.abs()));
    assert_close(got.view(), want.view(), tol.view(), "SegNet stage");
    let s = stage.summary([2, 3, 11, 9]).unwrap();
    assert_eq!(s.rows.last().unwrap().output, [2, 4, 11, 9]);
    // Parameters: four 3x3 convolutions with batch norm.
    let convs = [(3, 8), (8, 8), (8, 8), (8, 4)];
    let want_params: usize = convs.iter().map(|(i, o)| i * o * 9 + 2 * o).sum();
    assert_eq!(s.total_params() as usize, want_params);
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

/// The recorder counts every dispatch with the layer that recorded it and the bytes of
/// the tensors it binds: a convolution reads its input and weights and writes its
/// output; a block's dispatches carry its nodes' names and add up to the recording's.
#[test]
fn traffic_counts_dispatches_layers_and_bytes() {
    use segblocks::ops::conv::{Conv2d, Conv2dParams};
    // The kernels a CPU adapter gets, on any adapter: the counts below are theirs.
    let cpu_class = cpu_class();
    let gpu = &cpu_class;
    let p = Conv2dParams::new(4, 8, 3).padding(1);
    let w = Array4::<f32>::zeros(p.weight_shape());
    let b = ndarray::Array1::<f32>::zeros(8);
    let conv = Conv2d::new(gpu, p, w.view(), Some(b.view())).unwrap();
    let x = gpu.upload(Array4::zeros([2, 4, 9, 9]).view()).unwrap();
    let mut rec = gpu.recorder();
    let y = conv.forward(&mut rec, &x).unwrap();
    let t = rec.traffic();
    assert_eq!(t.dispatch_count(), 1);
    let kernel = t.dispatches.iter().find(|d| d.kernel != "copy").unwrap();
    assert_eq!(kernel.written, 4 * y.len() as u64);
    let logical = 4 * (x.len() + w.len() + b.len()) as u64;
    // The weights are bound in the kernel's packed layout (padded to whole channel tiles).
    assert!(kernel.read >= logical && kernel.read < 2 * logical, "{t}");
    // Operands read as texels (on CPU adapters) are first copied into textures: each copy
    // reads and writes what it moves, part of what the kernel reads.
    let copied: u64 = t
        .dispatches
        .iter()
        .filter(|d| d.kernel == "copy")
        .map(|d| d.written)
        .sum();
    assert!(copied <= kernel.read, "{t}");
    assert_eq!(t.written(), kernel.written + copied, "{t}");
    assert_eq!(t.read(), kernel.read + copied, "{t}");
    drop(rec);

    let cfg = InvertedResidualConfig {
        inp: 8,
        oup: 8,
        stride: 1,
        expand_ratio: 6.0,
    };
    let block = InvertedResidual::load(gpu, cfg, &StateDict::synthetic(), "").unwrap();
    let x = gpu.upload(Array4::zeros([1, 8, 10, 10]).view()).unwrap();
    let mut rec = gpu.recorder();
    block.forward(&mut rec, &x).unwrap();
    let t = rec.traffic();
    assert_eq!(t.dispatch_count(), rec.dispatch_count());
    let layers: Vec<_> = t.by_layer().into_iter().map(|l| l.layer).collect();
    assert_eq!(layers, ["expand", "depthwise", "project"]);
    assert_eq!(
        t.by_layer().iter().map(|l| l.dispatches).sum::<usize>(),
        t.dispatches.len()
    );
    // The expanded activations (48 channels) cross memory twice: written by the expansion,
    // read by the depthwise convolution.
    assert!(t.written() >= 4 * (48 + 48 + 8) * 100, "{t}");
    println!("{t}");
}

/// timm's block options (ECA or squeeze-and-excitation before the skip joins, anti-aliased
/// strides, pooled projections): the GPU forward matches the CPU reference at odd channel
/// counts and batch 2, and values a block cannot take are typed errors naming them.
#[test]
fn timm_block_options_match_the_reference_and_refuse_bad_values() {
    use segblocks::blocks::{AntiAlias, AvgDown};
    let gpu = gpu();
    let sd = StateDict::synthetic();
    let mut r = rng(29);
    let check = |block: &dyn Fn(&mut Recorder<'_>, &Tensor) -> segblocks::Result<Tensor>,
                 want: Array4<f32>,
                 x: &Array4<f32>,
                 what: &str| {
        let mut rec = gpu.recorder();
        let y = block(&mut rec, &gpu.upload(x.view()).unwrap()).unwrap();
        let got = rec.download(&y).unwrap();
        let tol = want.mapv(|v| 1e-4 * (1.0 + v.abs()));
        assert_close(got.view(), want.view(), tol.view(), what);
    };
    let bottleneck = BottleneckConfig::new(24, 5)
        .stride(2)
        .eca(3)
        .anti_alias(Some(AntiAlias::AvgPool))
        .avg_down(AvgDown::Strided);
    let b = Bottleneck::load(gpu, bottleneck, &sd, "layer2.0").unwrap();
    let x = random4(&mut r, [2, 24, 10, 14]);
    let want = b.reference(x.view()).unwrap();
    assert_eq!(want.shape(), &[2, 20, 5, 7]);
    check(&|rec, t| b.forward(rec, t), want, &x, "ECA bottleneck");
    // Res2Net's hierarchical splits: a first block (strided, projected: the last split
    // pooled) and a later one (each split after the first adds the previous output), odd
    // widths, grouped. ResNeSt's split attention: a strided block (averaging after it), a
    // dilated one, radix 4 in 2 groups averaging before it (odd sides), radix 1 in 4
    // groups (a sigmoid), radix 3 in 2 groups.
    let res2net = BottleneckKind::Res2Net { scale: 4 };
    let split_attention = |radix, avd_first| BottleneckKind::SplitAttention { radix, avd_first };
    let resnest = split_attention(2, false);
    for (cfg, shape) in [
        (
            BottleneckConfig::new(24, 8)
                .groups(1, 40)
                .stride(2)
                .kind(res2net),
            [2, 24, 9, 11],
        ),
        (
            BottleneckConfig::new(32, 8).groups(3, 12).kind(res2net),
            [1, 32, 7, 5],
        ),
        (
            BottleneckConfig::new(24, 6).stride(2).kind(resnest),
            [2, 24, 9, 11],
        ),
        (
            BottleneckConfig::new(24, 6).dilation(2).kind(resnest),
            [1, 24, 7, 5],
        ),
        (
            BottleneckConfig::new(24, 8)
                .groups(2, 64)
                .stride(2)
                .kind(split_attention(4, true)),
            [2, 24, 9, 11],
        ),
        (
            BottleneckConfig::new(32, 8)
                .groups(4, 24)
                .stride(2)
                .kind(split_attention(1, true)),
            [1, 32, 10, 7],
        ),
        (
            BottleneckConfig::new(16, 16)
                .groups(2, 48)
                .kind(split_attention(3, false)),
            [2, 16, 6, 5],
        ),
    ] {
        let b = Bottleneck::load(gpu, cfg, &sd, "layer1.0").unwrap();
        let x = random4(&mut r, shape);
        let want = b.reference(x.view()).unwrap();
        check(&|rec, t| b.forward(rec, t), want, &x, &format!("{cfg:?}"));
    }
    let basic = BasicBlockConfig::new(12, 12)
        .se(8)
        .anti_alias(Some(AntiAlias::AvgPool))
        .stride(2);
    let b = BasicBlock::load(gpu, basic, &sd, "layer1.0").unwrap();
    let x = random4(&mut r, [1, 12, 8, 6]);
    let want = b.reference(x.view()).unwrap();
    check(&|rec, t| b.forward(rec, t), want, &x, "SE basic block");
    // timm's blur pool (reflect padding, the binomial filter): a strided bottleneck on odd
    // sides (the blur keeps the projection's size), the first block of a dilated stage
    // (a blur at stride 1 after the previous dilation), a strided basic block.
    let blur = Some(AntiAlias::BlurPool);
    for (cfg, shape) in [
        (
            BottleneckConfig::new(24, 5)
                .stride(2)
                .anti_alias(blur)
                .avg_down(AvgDown::Strided),
            [2, 24, 9, 11],
        ),
        (
            BottleneckConfig::new(16, 4)
                .dilation(2)
                .first_dilation(Some(1))
                .anti_alias(blur),
            [1, 16, 7, 5],
        ),
    ] {
        let b = Bottleneck::load(gpu, cfg, &sd, "layer3.0").unwrap();
        assert!(b.graph().names().any(|n| n == "aa"), "{cfg:?}");
        let x = random4(&mut r, shape);
        let want = b.reference(x.view()).unwrap();
        check(&|rec, t| b.forward(rec, t), want, &x, &format!("{cfg:?}"));
    }
    let basic_blur = BasicBlockConfig::new(12, 16).anti_alias(blur).stride(2);
    let blurred = BasicBlock::load(gpu, basic_blur, &sd, "layer2.0").unwrap();
    let x = random4(&mut r, [2, 12, 7, 6]);
    let want = blurred.reference(x.view()).unwrap();
    assert_eq!(want.shape(), &[2, 16, 4, 3]);
    check(
        &|rec, t| blurred.forward(rec, t),
        want,
        &x,
        "blur-pooled basic block",
    );
    // An anti-aliased stride on an odd side: the pooled branch is a row shorter than the
    // strided projection, which PyTorch refuses too.
    let odd = b.forward(
        &mut gpu.recorder(),
        &gpu.upload(random4(&mut r, [1, 12, 7, 6]).view()).unwrap(),
    );
    assert!(matches!(odd, Err(Error::ShapeMismatch { .. })), "{odd:?}");
    let named = |e: Option<Error>, name: &str| {
        assert!(
            matches!(&e, Some(Error::InvalidParam { name: n, .. }) if *n == name),
            "{name}: {e:?}"
        );
    };
    let se0 = BottleneckConfig::new(16, 4).se(0);
    named(
        Bottleneck::load(gpu, se0, &sd, "").err(),
        "squeeze_channels",
    );
    let even = BottleneckConfig::new(16, 4).eca(4);
    named(Bottleneck::load(gpu, even, &sd, "").err(), "kernel_size");
    let scale0 = BottleneckConfig::new(16, 4).kind(BottleneckKind::Res2Net { scale: 0 });
    named(Bottleneck::load(gpu, scale0, &sd, "").err(), "scale");
    for radix in [0, 9] {
        let cfg = BottleneckConfig::new(16, 4).kind(split_attention(radix, false));
        named(Bottleneck::load(gpu, cfg, &sd, "").err(), "radix");
    }
    // 3 groups do not divide a split attention's 32 attention channels.
    let uneven = BottleneckConfig::new(16, 4)
        .groups(3, 64)
        .kind(split_attention(2, false));
    named(Bottleneck::load(gpu, uneven, &sd, "").err(), "groups");
    let basic_eca = BasicBlockConfig::new(16, 16).eca(0);
    named(
        BasicBlock::load(gpu, basic_eca, &sd, "").err(),
        "kernel_size",
    );
}
