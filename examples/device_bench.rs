//! The device benchmark's segblocks half: whole networks on the default adapter (on a
//! machine with a GPU, wgpu's Vulkan backend), made-up weights (the selfie model's real
//! ones), input resident on the device, each forward recorded, submitted and waited for
//! (no readback), median of 20 after 3 warm-ups; then one profiled forward's five most
//! expensive dispatches. Prints `segblocks <network> <ms>` lines (f32) and, where the
//! adapter has `SHADER_F16`, `segblocks_f16 <network> <ms>` lines (tensors and weights in
//! f16) and `segblocks_f16math <network> <ms>` lines (the same with the GPU-class GEMM
//! and depthwise convolutions computing in f16, `GpuOptions::f16_arithmetic`) that
//! `scripts/device_table.py` joins with `benches/torch_device.py`'s fp32 and fp16 lines.
//! See `scripts/device_bench.sh`.
//!
//! ```text
//! cargo run --release --example device_bench -- [--quick]
//! ```
//! Before the networks, the per-layer suite: convolution layers (the kernel the library
//! picks for the device, then the best of every other kernel family, indented, for the
//! record) and memory-bound ops against a plain copy, each timed as 50 forwards recorded
//! into one submission (median of 7 after 2 warm-ups), as `benches/torch_device.py` times
//! PyTorch's.
//!
//! The networks: the selfie model, MobileNetV2's features, LR-ASPP, DeepLabV3 and FCN,
//! a U-Net, transformers' SegFormer-B0 (ADE20K's 150 classes at 512), and the real-time ones at Cityscapes' 512 x 1024 (BiSeNetV2, DDRNet-23-slim,
//! PIDNet-S, STDC1-Seg, HRNetV2-W18-small-v2) and the model zoo's HRNetV2-W48 + OCR at
//! the same size, each computing what its PyTorch forward does.
//!
//! Each network line gives the host's share too: the median time to record and submit a
//! forward. After the f32 networks, the selfie model, MobileNetV2 and LR-ASPP again with
//! their work submitted every 8 and 16 dispatches while recording
//! (`GpuOptions::submit_every`; `segblocks_flush<n>` lines): whether the device starting
//! early hides the host's recording on this machine.
//!
//! `--networks` skips the per-layer suite. `--quick` runs the networks at an eighth of the side, 3 times each (a smoke test on
//! lavapipe), and the layers at an eighth of their side too.

use std::time::Instant;

use segblocks::blocks::{Architecture, Model};
use segblocks::networks::{
    BiSeNetV2, BiSeNetV2Config, DdrNet, DdrNetConfig, HfSegformer, HfSegformerConfig, HrNetOcr,
    HrNetOcrConfig, HrNetSeg, HrNetSegConfig, LrAsppConfig, LrAsppMobileNetV3, MobileNetV2Config,
    MobileNetV2Features, PidNet, PidNetConfig, SegmentationConfig, SegmentationModel, SelfieModel,
    SelfieSegmentation, StdcSeg, StdcSegConfig, UNet, UNetConfig,
};
use segblocks::ops::conv::{Conv2d, Conv2dParams, ConvKernel, ResidualJoin};
use segblocks::ops::inverted_residual::{
    fused_candidates, select_kernel as select_kernel_ir, FusedInvertedResidual, FusedPass,
    InvertedResidualKernel, InvertedResidualParams,
};
use segblocks::ops::upsample::{upsample, UpsampleParams};
use segblocks::ops::Activation;
use segblocks::{DeviceCaps, Gpu, GpuOptions, Precision, Recorder, StateDict, Tensor};

type AnyResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// One op recorded: what the layer suite times.
type OpFn<'a> = dyn Fn(&mut Recorder<'_>) -> segblocks::Result<Tensor> + 'a;

/// Times `net`'s forward on `gpu` and prints `{who} {name} <ms>` with the host's share:
/// the median time to record and submit a forward (where the work is flushed while
/// recording, the device runs meanwhile). Then a profiled forward's top dispatches.
fn time<A: Architecture>(
    gpu: &Gpu,
    (who, name): (&str, &str),
    net: &Model<A>,
    shape: [usize; 4],
    runs: usize,
) -> AnyResult<()> {
    let x = gpu.upload(ndarray::Array4::<f32>::from_elem(shape, 0.5).view())?;
    net.prepare(gpu, shape)?;
    let run = || -> AnyResult<(f64, f64)> {
        let t = Instant::now();
        let mut rec = gpu.recorder();
        net.forward(&mut rec, &x)?;
        rec.submit()?;
        let host = t.elapsed().as_secs_f64() * 1e3;
        gpu.device()
            .poll(segblocks::wgpu::PollType::Wait {
                submission_index: None,
                timeout: None,
            })
            .map_err(|e| e.to_string())?;
        Ok((t.elapsed().as_secs_f64() * 1e3, host))
    };
    for _ in 0..3 {
        run()?;
    }
    let runs = (0..runs).map(|_| run()).collect::<AnyResult<Vec<_>>>()?;
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let host = median(runs.iter().map(|r| r.1).collect());
    let median = median(runs.iter().map(|r| r.0).collect());
    let macs = net.summary(shape)?.total_macs();
    println!(
        "{who} {name} {median:.3} ms ({:.1} GFLOP/s), host {host:.3} ms to record and submit",
        2.0 * macs as f64 / (median * 1e6)
    );
    let mut rec = gpu.recorder();
    rec.enable_profiling()?;
    net.forward(&mut rec, &x)?;
    let profile = rec.profile()?;
    eprintln!(
        "  profile ({:?}): {} dispatches, {:.3} ms",
        profile.method,
        profile.dispatches.len(),
        profile.total_ms()
    );
    for d in profile.top(5) {
        eprintln!("    {:>8.3} ms  {:<28} {}", d.ms, d.kernel, d.layer);
    }
    Ok(())
}

fn main() -> AnyResult<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let with_layers = !std::env::args().any(|a| a == "--networks");
    let runs = if quick { 3 } else { 20 };
    let gpu = Gpu::new()?;
    let info = gpu.adapter_info();
    println!(
        "# adapter: {} ({:?}, {:?}, driver {} {})",
        info.name, info.backend, info.device_type, info.driver, info.driver_info
    );
    if with_layers {
        layers(&gpu, quick)?;
    }
    networks(&gpu, quick, runs)?;
    flushed(quick, runs)?;
    for f16_arithmetic in [false, true] {
        let half = Gpu::with_options(GpuOptions {
            precision: Precision::F16,
            f16_arithmetic,
            ..GpuOptions::default()
        });
        match half {
            Ok(half) => {
                if with_layers {
                    layers(&half, quick)?;
                }
                networks(&half, quick, runs)?
            }
            Err(e) => {
                println!("# no f16 run: {e}");
                break;
            }
        }
    }
    Ok(())
}

/// The networks whose forwards cost the host about as much as the device: the selfie
/// model, MobileNetV2's features and LR-ASPP, on `gpu` as `who`.
fn small_networks(gpu: &Gpu, who: &str, quick: bool, runs: usize) -> AnyResult<()> {
    let s = |side: usize| if quick { side / 8 } else { side };
    let sd = StateDict::synthetic();
    let selfie = format!(
        "{}/models/selfie_segmentation/model.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    let net = SelfieSegmentation::load(gpu, SelfieModel::Square, &StateDict::load(selfie)?, "")?;
    time(gpu, (who, "selfie_256"), &net, [1, 3, s(256), s(256)], runs)?;
    let net = MobileNetV2Features::load(gpu, MobileNetV2Config::torchvision(), &sd, "")?;
    let name = "mobilenet_v2_features_224";
    time(gpu, (who, name), &net, [1, 3, s(224), s(224)], runs)?;
    let net = LrAsppMobileNetV3::load(gpu, LrAsppConfig::torchvision(21), &sd, "")?;
    let name = "lraspp_mobilenet_v3_large_512";
    time(gpu, (who, name), &net, [1, 3, s(512), s(512)], runs)?;
    Ok(())
}

/// The small networks with their work submitted every 8 and every 16 dispatches while
/// they are recorded (`GpuOptions::submit_every`, f32), as `segblocks_flush<n>`: whether
/// the device starting early hides the host's recording.
fn flushed(quick: bool, runs: usize) -> AnyResult<()> {
    for every in [8, 16] {
        let gpu = Gpu::with_options(GpuOptions {
            submit_every: Some(every),
            ..GpuOptions::default()
        })?;
        small_networks(&gpu, &format!("segblocks_flush{every}"), quick, runs)?;
    }
    Ok(())
}

/// Every network on `gpu` (at its precision).
fn networks(gpu: &Gpu, quick: bool, runs: usize) -> AnyResult<()> {
    let s = |side: usize| if quick { side / 8 } else { side };
    let who = who(gpu);
    small_networks(gpu, who, quick, runs)?;
    let sd = StateDict::synthetic();
    let cases = [
        (
            "deeplabv3_mobilenet_v3_large_512",
            SegmentationConfig::deeplabv3_mobilenet_v3_large(21),
        ),
        ("fcn_resnet50_512", SegmentationConfig::fcn_resnet50(21)),
        (
            "deeplabv3_resnet50_512",
            SegmentationConfig::deeplabv3_resnet50(21),
        ),
    ];
    for (name, cfg) in cases {
        let net = SegmentationModel::load(gpu, cfg, &sd, "")?;
        time(gpu, (who, name), &net, [1, 3, s(512), s(512)], runs)?;
    }
    let net = UNet::load(gpu, UNetConfig::new(3, 2), &sd, "")?;
    time(gpu, (who, "unet_256"), &net, [1, 3, s(256), s(256)], runs)?;
    // transformers' SegFormer-B0 as the Hub's ADE20K model (150 classes).
    let net = HfSegformer::load(gpu, HfSegformerConfig::b(0, 150)?, &sd, "")?;
    let name = "hf_segformer_b0_ade_512";
    time(gpu, (who, name), &net, [1, 3, s(512), s(512)], runs)?;
    // Real-time semantic segmentation with Cityscapes' 19 classes at 512 x 1024, each
    // returning what its PyTorch forward computes (STDC-Seg's auxiliary heads too).
    let cityscapes = [1, 3, s(512), s(1024)];
    let net = BiSeNetV2::load(gpu, BiSeNetV2Config::new(19), &sd, "")?;
    time(gpu, (who, "bisenetv2_512x1024"), &net, cityscapes, runs)?;
    let net = DdrNet::load(gpu, DdrNetConfig::ddrnet_23_slim(19), &sd, "")?;
    time(
        gpu,
        (who, "ddrnet_23_slim_512x1024"),
        &net,
        cityscapes,
        runs,
    )?;
    let net = PidNet::load(gpu, PidNetConfig::pidnet_s(19), &sd, "")?;
    time(gpu, (who, "pidnet_s_512x1024"), &net, cityscapes, runs)?;
    let net = StdcSeg::load(gpu, StdcSegConfig::stdc1(19), &sd, "")?;
    time(gpu, (who, "stdc1_seg_512x1024"), &net, cityscapes, runs)?;
    let cfg = HrNetSegConfig::from_name("hrnet_w18_small_v2", 19)?;
    let net = HrNetSeg::load(gpu, cfg, &sd, "")?;
    time(
        gpu,
        (who, "hrnet_w18_small_v2_seg_512x1024"),
        &net,
        cityscapes,
        runs,
    )?;
    // The model zoo's HRNetV2-W48 + OCR (70.4 M parameters), its logits.
    let net = HrNetOcr::load(gpu, HrNetOcrConfig::from_name("hrnet_w48", 19)?, &sd, "")?;
    time(gpu, (who, "hrnet_w48_ocr_512x1024"), &net, cityscapes, runs)?;
    Ok(())
}

/// The label of `gpu`'s precision in result lines.
fn who(gpu: &Gpu) -> &'static str {
    match (gpu.precision(), gpu.f16_arithmetic()) {
        (Precision::F32, _) => "segblocks",
        (Precision::F16, false) => "segblocks_f16",
        (Precision::F16, true) => "segblocks_f16math",
    }
}

/// An op's time: `(gpu, wall)` in milliseconds. `gpu` is the median over 7 profiled
/// recordings of the op alone of its dispatches' GPU time (timestamp queries where the
/// adapter has them): the kernels' own speed. `wall` is per op of `BATCH` ops recorded
/// into one submission and waited for, median of 7 such batches after 2 warm-ups: it adds
/// what recording costs the host, which wgpu cannot overlap with the GPU's work within one
/// submission.
fn time_op(gpu: &Gpu, op: &OpFn) -> AnyResult<(f64, f64)> {
    const BATCH: usize = 50;
    let batch = || -> AnyResult<f64> {
        let t = Instant::now();
        let mut rec = gpu.recorder();
        let outputs = (0..BATCH)
            .map(|_| op(&mut rec))
            .collect::<segblocks::Result<Vec<_>>>()?;
        rec.submit()?;
        gpu.device()
            .poll(segblocks::wgpu::PollType::Wait {
                submission_index: None,
                timeout: None,
            })
            .map_err(|e| e.to_string())?;
        drop(outputs);
        Ok(t.elapsed().as_secs_f64() * 1e3 / BATCH as f64)
    };
    for _ in 0..2 {
        batch()?;
    }
    let mut walls = (0..7).map(|_| batch()).collect::<AnyResult<Vec<f64>>>()?;
    walls.sort_by(f64::total_cmp);
    let mut gpus = (0..7)
        .map(|_| -> AnyResult<f64> {
            let mut rec = gpu.recorder();
            rec.enable_profiling()?;
            let _y = op(&mut rec)?;
            Ok(rec.profile()?.total_ms())
        })
        .collect::<AnyResult<Vec<f64>>>()?;
    gpus.sort_by(f64::total_cmp);
    Ok((gpus[3], walls[3]))
}

/// The convolution layers of the suite (`benches/torch_device.py` lists the same).
fn conv_layers() -> Vec<(&'static str, Conv2dParams, [usize; 4])> {
    vec![
        (
            "conv3x3_64_56",
            Conv2dParams::new(64, 64, 3).padding(1),
            [1, 64, 56, 56],
        ),
        (
            "conv3x3_256_128",
            Conv2dParams::new(256, 256, 3).padding(1),
            [1, 256, 128, 128],
        ),
        (
            "conv3x3_s2_3_32_512",
            Conv2dParams::new(3, 32, 3).padding(1).stride(2),
            [1, 3, 512, 512],
        ),
        (
            "pointwise_144_24_56",
            Conv2dParams::new(144, 24, 1),
            [1, 144, 56, 56],
        ),
        (
            "pointwise_1024_256_64",
            Conv2dParams::new(1024, 256, 1),
            [1, 1024, 64, 64],
        ),
        (
            "pointwise_320_1280_7",
            Conv2dParams::new(320, 1280, 1),
            [1, 320, 7, 7],
        ),
        (
            "depthwise3x3_144_56_s1",
            Conv2dParams::depthwise(144, 1, 3).padding(1),
            [1, 144, 56, 56],
        ),
        (
            "depthwise3x3_144_56_s2",
            Conv2dParams::depthwise(144, 1, 3).padding(1).stride(2),
            [1, 144, 56, 56],
        ),
        (
            "depthwise5x5_240_28_s1",
            Conv2dParams::depthwise(240, 1, 5).padding(2),
            [1, 240, 28, 28],
        ),
        (
            "group3x3_g32_128_28",
            Conv2dParams::new(128, 128, 3).padding(1).groups(32),
            [1, 128, 28, 28],
        ),
        (
            "dilated3x3_r6_128_32",
            Conv2dParams::new(128, 128, 3).padding(6).dilation(6),
            [1, 128, 32, 32],
        ),
        (
            "dilated3x3_r12_256_64",
            Conv2dParams::new(256, 256, 3).padding(12).dilation(12),
            [1, 256, 64, 64],
        ),
    ]
}

/// Deterministic made-up weights (or inputs) of `shape`, small and of both signs.
fn weight(shape: [usize; 4]) -> ndarray::Array4<f32> {
    ndarray::Array4::from_shape_fn(shape, |(a, b, c, d)| {
        ((a * 7 + b * 5 + c * 3 + d) % 13) as f32 * 0.01 - 0.06
    })
}

/// The per-layer suite on `gpu`: convolutions in GFLOP/s, memory-bound ops in GB/s.
fn layers(gpu: &Gpu, quick: bool) -> AnyResult<()> {
    let shrink = |mut shape: [usize; 4]| {
        if quick {
            shape[2] = shape[2].div_ceil(8);
            shape[3] = shape[3].div_ceil(8);
        }
        shape
    };
    let who = who(gpu);
    for (name, params, shape) in conv_layers() {
        let shape = shrink(shape);
        let w = weight(params.weight_shape());
        let b = ndarray::Array1::from_shape_fn(params.out_channels, |i| i as f32 * 0.001);
        let conv = Conv2d::new(gpu, params, w.view(), Some(b.view()))?;
        let x = gpu.upload(
            ndarray::Array4::from_shape_fn(shape, |(_, c, h, w)| {
                ((c + h * 3 + w) % 17) as f32 * 0.1
            })
            .view(),
        )?;
        let gflop = params.cost(shape)?.flops() as f64 / 1e9;
        let mut kernels = ConvKernel::choice_and_alternatives(&params, shape, gpu.caps());
        let chosen = kernels[0];
        // Every split of the GEMM's reduction (the alternatives list the first only): the
        // data for choosing one on small maps.
        for splits in [2, 8] {
            let split = ConvKernel::GemmSplitK { splits };
            if split.supports(&params, shape) && !kernels.contains(&split) {
                kernels.push(split);
            }
        }
        for kernel in kernels {
            // A variant may refuse the layer (a split's sums past one binding): said, and
            // the suite goes on.
            let (ms, wall) = match time_op(gpu, &|rec| conv.forward_with(rec, &x, kernel)) {
                Ok(t) => t,
                Err(e) => {
                    println!("    {who} {name} {kernel:?}: {e}");
                    continue;
                }
            };
            let indent = if kernel == chosen { "" } else { "    " };
            println!(
                "{indent}{who} {name} {ms:.4} ms ({:.1} GFLOP/s) {kernel:?}, wall {wall:.4} ms",
                gflop / ms * 1e3
            );
        }
    }
    if gpu.f16_arithmetic() {
        // The memory-bound ops have no f16-arithmetic form: the f16 run timed them.
        return Ok(());
    }
    // Memory-bound ops on one large activation (several times a GPU's L2), in GB/s of the
    // bytes each must move at this precision.
    let shape = shrink([1, 128, 512, 512]);
    let elems = shape.iter().product::<usize>() as f64;
    let bytes_per = match gpu.precision() {
        Precision::F32 => 4.0,
        Precision::F16 => 2.0,
    };
    let a = gpu.upload(
        ndarray::Array4::from_shape_fn(shape, |(_, c, h, w)| ((c + h + w) % 7) as f32 - 3.0).view(),
    )?;
    let b = gpu.upload(
        ndarray::Array4::from_shape_fn(shape, |(_, c, h, w)| ((c + 2 * h + w) % 5) as f32).view(),
    )?;
    let small = shrink([1, 128, 256, 256]);
    let s = gpu.upload(
        ndarray::Array4::from_shape_fn(small, |(_, c, h, w)| ((c + h + w) % 7) as f32).view(),
    )?;
    let bilinear = UpsampleParams::bilinear(false).scale_factor(2.0);
    let ops: [(&str, f64, &OpFn); 6] = [
        ("copy_128_512", 2.0 * elems, &|rec| {
            segblocks::ops::copy::copy(rec, &a)
        }),
        // The copy with more vec4s in flight per invocation (`copy_with`): not chosen yet.
        ("copy_2vec4_128_512", 2.0 * elems, &|rec| {
            segblocks::ops::copy::copy_with(rec, &a, 2)
        }),
        ("copy_4vec4_128_512", 2.0 * elems, &|rec| {
            segblocks::ops::copy::copy_with(rec, &a, 4)
        }),
        ("relu_128_512", 2.0 * elems, &|rec| {
            segblocks::ops::channel::activation(rec, &a, Activation::Relu)
        }),
        ("add_128_512", 3.0 * elems, &|rec| {
            segblocks::ops::channel::add(rec, &a, &b, Activation::None)
        }),
        ("bilinear2x_128_256", 1.25 * elems, &|rec| {
            upsample(rec, &bilinear, &s)
        }),
    ];
    for (name, elements_moved, op) in ops {
        let (ms, wall) = time_op(gpu, op)?;
        println!(
            "{who} {name} {ms:.4} ms ({:.1} GB/s), wall {wall:.4} ms",
            elements_moved * bytes_per / ms / 1e6
        );
    }
    if gpu.precision() == Precision::F32 {
        inverted_residuals(gpu, quick)?;
    }
    Ok(())
}

/// MobileNetV2's inverted residuals at a 224-pixel input (torchvision's widths and
/// strides, one block of each shape), fused (the tile the library picks for a GPU and a
/// spread of the other tiles that can run the block) against the three convolutions, in
/// GPU time: the data for the fused kernel's choice on this device.
fn inverted_residuals(gpu: &Gpu, quick: bool) -> AnyResult<()> {
    // (input channels, expansion, output channels, stride, input side)
    let blocks: [(usize, usize, usize, usize, usize); 12] = [
        (32, 1, 16, 1, 112),
        (16, 6, 24, 2, 112),
        (24, 6, 24, 1, 56),
        (24, 6, 32, 2, 56),
        (32, 6, 32, 1, 28),
        (32, 6, 64, 2, 28),
        (64, 6, 64, 1, 14),
        (64, 6, 96, 1, 14),
        (96, 6, 96, 1, 14),
        (96, 6, 160, 2, 14),
        (160, 6, 160, 1, 7),
        (160, 6, 320, 1, 7),
    ];
    let who = who(gpu);
    let gpu_caps = DeviceCaps {
        cpu: false,
        ..gpu.caps().clone()
    };
    for (cin, t, cout, stride, side) in blocks {
        let side = if quick { side.div_ceil(4) } else { side };
        let hid = cin * t;
        let p = InvertedResidualParams {
            stride,
            ..InvertedResidualParams::new(cin, hid, cout)
        };
        let shape = [1, cin, side, side];
        let (wd, wp) = (weight([hid, 1, 3, 3]), weight([cout, hid, 1, 1]));
        let we = weight([hid, cin, 1, 1]);
        let (be, bd, bp) = (
            ndarray::Array1::<f32>::zeros(hid),
            ndarray::Array1::<f32>::zeros(hid),
            ndarray::Array1::<f32>::zeros(cout),
        );
        let expansion = p.has_expansion().then(|| (we.view(), be.view()));
        let fused = FusedInvertedResidual::new(
            gpu,
            p,
            expansion,
            (wd.view(), bd.view()),
            (wp.view(), bp.view()),
        )?;
        let relu6 = Activation::Relu6;
        let expand = Conv2d::new(
            gpu,
            Conv2dParams::new(cin, hid, 1).activation(relu6),
            we.view(),
            Some(be.view()),
        )?;
        let dw = Conv2dParams::depthwise(hid, 1, 3)
            .stride(stride)
            .padding(1)
            .activation(relu6);
        let depthwise = Conv2d::new(gpu, dw, wd.view(), Some(bd.view()))?;
        let project = Conv2d::new(
            gpu,
            Conv2dParams::new(hid, cout, 1),
            wp.view(),
            Some(bp.view()),
        )?;
        let x = gpu.upload(weight(shape).view())?;
        let gflop = 2.0 * p.cost(shape)?.macs as f64 / 1e9;
        let name = format!("ir_{cin}_{hid}_{cout}_s{stride}_{side}");
        let (ms, wall) = time_op(gpu, &|rec| {
            let e = if p.has_expansion() {
                expand.forward(rec, &x)?
            } else {
                x.clone()
            };
            let d = depthwise.forward(rec, &e)?;
            if p.has_skip() {
                project.forward_residual(rec, &d, &x, ResidualJoin::AfterActivation)
            } else {
                project.forward(rec, &d)
            }
        })?;
        println!(
            "{who} {name}_unfused {ms:.4} ms ({:.1} GFLOP/s), wall {wall:.4} ms",
            gflop / ms * 1e3
        );
        let chosen = select_kernel_ir(&p, shape, &gpu_caps);
        let candidates = fused_candidates(&p, FusedPass::Block, shape, &gpu_caps);
        let step = candidates.len().div_ceil(8).max(1);
        let mut tiles: Vec<_> = candidates.iter().step_by(step).copied().collect();
        if let InvertedResidualKernel::Fused(t) = chosen {
            tiles.retain(|c| *c != t);
            tiles.insert(0, t);
        }
        for (i, tile) in tiles.into_iter().enumerate() {
            let (ms, wall) = match time_op(gpu, &|rec| fused.forward_with(rec, &x, tile)) {
                Ok(t) => t,
                Err(e) => {
                    println!("    {who} {name}_fused {tile:?}: {e}");
                    continue;
                }
            };
            let picked = if i == 0 && matches!(chosen, InvertedResidualKernel::Fused(_)) {
                "*"
            } else {
                ""
            };
            println!(
                "    {who} {name}_fused {ms:.4} ms ({:.1} GFLOP/s) {tile:?}{picked}, wall {wall:.4} ms",
                gflop / ms * 1e3
            );
        }
    }
    Ok(())
}
