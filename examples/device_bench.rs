//! The device benchmark's segblocks half: whole networks on the default adapter (on a
//! machine with a GPU, wgpu's Vulkan backend), made-up weights (the selfie model's real
//! ones), input resident on the device, each forward recorded, submitted and waited for
//! (no readback), median of 20 after 3 warm-ups; then one profiled forward's five most
//! expensive dispatches. Prints `segblocks <network> <ms>` lines (f32) and, where the
//! adapter has `SHADER_F16`, `segblocks_f16 <network> <ms>` lines (tensors and weights in
//! f16) that `scripts/device_table.py` joins with `benches/torch_device.py`'s fp32 and
//! fp16 lines. See `scripts/device_bench.sh`.
//!
//! ```text
//! cargo run --release --example device_bench -- [--quick]
//! ```
//! `--quick` runs the networks at an eighth of the side, 3 times each (a smoke test on
//! lavapipe).

use std::time::Instant;

use segblocks::blocks::{Architecture, Model};
use segblocks::networks::{
    LrAsppConfig, LrAsppMobileNetV3, MobileNetV2Config, MobileNetV2Features, SegmentationConfig,
    SegmentationModel, SelfieModel, SelfieSegmentation, UNet, UNetConfig,
};
use segblocks::{Gpu, GpuOptions, Precision, StateDict};

type AnyResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn time<A: Architecture>(
    gpu: &Gpu,
    name: &str,
    net: &Model<A>,
    shape: [usize; 4],
    runs: usize,
) -> AnyResult<()> {
    let x = gpu.upload(ndarray::Array4::<f32>::from_elem(shape, 0.5).view())?;
    net.prepare(gpu, shape)?;
    let run = || -> AnyResult<f64> {
        let t = Instant::now();
        let mut rec = gpu.recorder();
        net.forward(&mut rec, &x)?;
        rec.submit()?;
        gpu.device()
            .poll(segblocks::wgpu::PollType::Wait {
                submission_index: None,
                timeout: None,
            })
            .map_err(|e| e.to_string())?;
        Ok(t.elapsed().as_secs_f64() * 1e3)
    };
    for _ in 0..3 {
        run()?;
    }
    let mut times = (0..runs).map(|_| run()).collect::<AnyResult<Vec<f64>>>()?;
    times.sort_by(f64::total_cmp);
    let macs = net.summary(shape)?.total_macs();
    let median = times[times.len() / 2];
    let who = match gpu.precision() {
        Precision::F32 => "segblocks",
        Precision::F16 => "segblocks_f16",
    };
    println!(
        "{who} {name} {median:.3} ms ({:.1} GFLOP/s)",
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
    let runs = if quick { 3 } else { 20 };
    let gpu = Gpu::new()?;
    let info = gpu.adapter_info();
    println!(
        "# adapter: {} ({:?}, {:?}, driver {} {})",
        info.name, info.backend, info.device_type, info.driver, info.driver_info
    );
    networks(&gpu, quick, runs)?;
    let half = Gpu::with_options(GpuOptions {
        precision: Precision::F16,
        ..GpuOptions::default()
    });
    match half {
        Ok(half) => networks(&half, quick, runs)?,
        Err(e) => println!("# no f16 run: {e}"),
    }
    Ok(())
}

/// Every network on `gpu` (at its precision).
fn networks(gpu: &Gpu, quick: bool, runs: usize) -> AnyResult<()> {
    let s = |side: usize| if quick { side / 8 } else { side };
    let gpu = gpu.clone();
    let sd = StateDict::synthetic();
    let selfie = format!(
        "{}/models/selfie_segmentation/model.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    let net = SelfieSegmentation::load(&gpu, SelfieModel::Square, &StateDict::load(selfie)?, "")?;
    time(&gpu, "selfie_256", &net, [1, 3, s(256), s(256)], runs)?;
    let net = MobileNetV2Features::load(&gpu, MobileNetV2Config::torchvision(), &sd, "")?;
    time(
        &gpu,
        "mobilenet_v2_features_224",
        &net,
        [1, 3, s(224), s(224)],
        runs,
    )?;
    let net = LrAsppMobileNetV3::load(&gpu, LrAsppConfig::torchvision(21), &sd, "")?;
    time(
        &gpu,
        "lraspp_mobilenet_v3_large_512",
        &net,
        [1, 3, s(512), s(512)],
        runs,
    )?;
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
        let net = SegmentationModel::load(&gpu, cfg, &sd, "")?;
        time(&gpu, name, &net, [1, 3, s(512), s(512)], runs)?;
    }
    let net = UNet::load(&gpu, UNetConfig::new(3, 2), &sd, "")?;
    time(&gpu, "unet_256", &net, [1, 3, s(256), s(256)], runs)?;
    Ok(())
}
