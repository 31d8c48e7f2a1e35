//! segblocks compiled to WebAssembly and run on the WebGPU of its host (a browser, or
//! Deno in `scripts/web_smoke.sh`), with the calls the web allows (the async ones):
//! - every convolution kernel that supports a case, forced in turn, against the CPU
//!   reference (`segblocks::reference`, compiled to WebAssembly too);
//! - MediaPipe's selfie network on the golden photo against TFLite's mask, on the kernels
//!   of a CPU adapter and on those of a GPU, one frame at a time and three in flight;
//! - the blocking calls refused with `Error::Unsupported` instead of hanging.
//!
//! `run` resolves with a report and rejects with the first failure.

use ndarray::{Array1, Array4};
use segblocks::networks::{SelfieModel, SelfieSegmentation};
use segblocks::ops::conv::{Conv2d, Conv2dParams, ConvKernel, PaddingMode};
use segblocks::{Activation, DeviceClass, Error, FramesInFlight, Gpu, GpuOptions, StateDict};
use wasm_bindgen::prelude::*;

const MODEL: &[u8] = include_bytes!("../../models/selfie_segmentation/model.safetensors");
const MASK: &[u8] = include_bytes!("../../tests/golden/selfie/mask.safetensors");
const PHOTO: &[u8] = include_bytes!("../../examples/data/astronaut.png");

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = log)]
    fn console_log(s: &str);
}

/// The library's warnings and errors (wgpu's errors among them, on the web) on the
/// console.
struct ConsoleLog;

impl log::Log for ConsoleLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            console_log(&format!("{} {}: {}", r.level(), r.target(), r.args()));
        }
    }
    fn flush(&self) {}
}

static LOGGER: ConsoleLog = ConsoleLog;

/// Runs the checks; resolves with a report, rejects with what failed.
#[wasm_bindgen]
pub async fn run() -> Result<String, JsValue> {
    let _ = log::set_logger(&LOGGER).map(|()| log::set_max_level(log::LevelFilter::Warn));
    smoke().await.map_err(|e| JsValue::from_str(&e))
}

type Check<T> = std::result::Result<T, String>;

fn text(e: Error) -> String {
    e.to_string()
}

async fn smoke() -> Check<String> {
    let mut report = Vec::new();
    match Gpu::new() {
        Err(Error::Unsupported { .. }) => report.push("Gpu::new: Error::Unsupported".into()),
        other => return Err(format!("Gpu::new on the web gave {other:?}")),
    }
    let gpu = Gpu::new_async(GpuOptions::default()).await.map_err(text)?;
    let info = gpu.adapter_info();
    report.push(format!(
        "adapter {:?} on {:?} ({:?})",
        info.name, info.backend, info.device_type
    ));
    report.push(conv_kernels(&gpu).await?);
    for class in [DeviceClass::Cpu, DeviceClass::Gpu] {
        let options = GpuOptions {
            device_class: Some(class),
            ..GpuOptions::default()
        };
        let gpu = Gpu::new_async(options).await.map_err(text)?;
        report.push(selfie(&gpu).await?);
    }
    Ok(report.join("\n"))
}

/// Every kernel of each case against the reference, within 1e-5 of its largest output.
async fn conv_kernels(gpu: &Gpu) -> Check<String> {
    let cases = [
        (
            Conv2dParams::new(3, 16, 3)
                .stride(2)
                .padding(1)
                .activation(Activation::HardSwish),
            [2, 3, 33, 30],
        ),
        (
            Conv2dParams::new(16, 24, 1).activation(Activation::Relu),
            [1, 16, 19, 21],
        ),
        (
            Conv2dParams::new(24, 24, 3).groups(24).padding(1),
            [2, 24, 32, 32],
        ),
        (
            Conv2dParams::new(24, 24, 5).groups(24).stride(2).padding(2),
            [1, 24, 31, 29],
        ),
        (
            Conv2dParams::new(8, 12, 3)
                .dilation(2)
                .padding(2)
                .padding_mode(PaddingMode::Reflect),
            [1, 8, 17, 23],
        ),
        (
            Conv2dParams::new(8, 16, 3).groups(4).stride(2),
            [3, 8, 15, 16],
        ),
    ];
    let mut seed = 1u32;
    let mut random = move || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    };
    let mut runs = 0;
    for (params, shape) in cases {
        let x = Array4::from_shape_fn(shape, |_| random());
        let w = Array4::from_shape_fn(params.weight_shape(), |_| random());
        let b = Array1::from_shape_fn(params.out_channels, |_| random());
        let conv = Conv2d::new(gpu, params, w.view(), Some(b.view())).map_err(text)?;
        let want = segblocks::reference::conv::conv2d(&params, x.view(), w.view(), Some(b.view()))
            .map_err(text)?;
        let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
        let xt = gpu.upload(x.view()).map_err(text)?;
        for kernel in ConvKernel::candidates(&params, shape) {
            let mut rec = gpu.recorder();
            let y = conv.forward_with(&mut rec, &xt, kernel).map_err(text)?;
            let got = rec.download_async(&y).await.map_err(text)?;
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            if worst.is_nan() || worst > 1e-5 * scale {
                return Err(format!(
                    "{params:?} on {shape:?}, {kernel:?}: off by {worst}"
                ));
            }
            runs += 1;
        }
    }
    Ok(format!(
        "convolutions: {runs} kernel runs on 6 cases match the reference"
    ))
}

/// The selfie mask on `gpu` against TFLite's (mean absolute difference within 1e-3), one
/// frame at a time and with frames in flight; then a blocking download, which must be
/// refused, and so must profiling.
async fn selfie(gpu: &Gpu) -> Check<String> {
    let weights = StateDict::from_safetensors(MODEL).map_err(text)?;
    let net = SelfieSegmentation::load(gpu, SelfieModel::Square, &weights, "").map_err(text)?;
    let x = gpu.upload(astronaut_256()?.view()).map_err(text)?;
    let mut rec = gpu.recorder();
    let y = net.forward(&mut rec, &x).map_err(text)?;
    let dispatches = rec.dispatch_count();
    let mask = rec.download_async(&y).await.map_err(text)?;
    let golden = StateDict::from_safetensors(MASK)
        .and_then(|sd| sd.get4("mask", [1, 1, 256, 256]))
        .map_err(text)?;
    let mean = mask
        .iter()
        .zip(golden.iter())
        .map(|(a, b)| f64::from((a - b).abs()))
        .sum::<f64>()
        / mask.len() as f64;
    let class = if gpu.caps().cpu { "CPU" } else { "GPU" };
    if mean.is_nan() || mean >= 1e-3 {
        return Err(format!(
            "{class}-class kernels: mask off TFLite's by {mean} on average"
        ));
    }
    let mut in_flight = FramesInFlight::new(2);
    let mut frames = Vec::new();
    for i in 0..3 {
        let mut rec = gpu.recorder();
        let y = net.forward(&mut rec, &x).map_err(text)?;
        frames.extend(in_flight.push_async(i, rec, &[&y]).await.map_err(text)?);
    }
    while let Some(frame) = in_flight.pop_async().await.map_err(text)? {
        frames.push(frame);
    }
    for (i, outputs) in &frames {
        if outputs[0] != mask {
            return Err(format!(
                "{class}-class kernels: frame {i} in flight differs"
            ));
        }
    }
    match gpu.recorder().download(&y) {
        Err(Error::Unsupported { .. }) => {}
        other => return Err(format!("a blocking download on the web gave {other:?}")),
    }
    match gpu.recorder().enable_profiling() {
        Err(Error::Unsupported { .. }) => {}
        other => return Err(format!("profiling on the web gave {other:?}")),
    }
    Ok(format!(
        "selfie 256 x 256 on {class}-class kernels: {dispatches} dispatches, mean abs \
         difference to TFLite {mean:.1e}; {} frames in flight identical; blocking download \
         and profiling refused",
        frames.len()
    ))
}

/// The golden input of `tests/selfie.rs`: the 512 x 512 photo reduced to 256 x 256 by
/// 2 x 2 box averaging of the 8-bit pixels, scaled to [0, 1].
fn astronaut_256() -> Check<Array4<f32>> {
    let img = image::load_from_memory(PHOTO)
        .map_err(|e| e.to_string())?
        .to_rgb8();
    Ok(Array4::from_shape_fn([1, 3, 256, 256], |(_, c, y, x)| {
        let sum: u32 = [(0, 0), (0, 1), (1, 0), (1, 1)]
            .iter()
            .map(|&(dy, dx)| u32::from(img.get_pixel(2 * x as u32 + dx, 2 * y as u32 + dy)[c]))
            .sum();
        sum as f32 / 1020.0
    }))
}
