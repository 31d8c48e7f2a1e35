//! Segments the person in a photo with MediaPipe's selfie segmentation network on the GPU.
//!
//! ```text
//! cargo run --release --example segment -- [IMAGE] [--out DIR] [--model square|landscape]
//!     [--profile] [--gpu-kernels] [--f16] [--f16-math]
//! ```
//!
//! `--f16` stores every tensor and weight in half precision (`Precision::F16`; the
//! kernels still compute in f32), on adapters with `SHADER_F16`. `--f16-math` does too,
//! and the GPU-class GEMM and depthwise convolutions compute their products in f16
//! (`GpuOptions::f16_arithmetic`; on a CPU adapter only with `--gpu-kernels`).
//!
//! `--gpu-kernels` takes the kernels a discrete or integrated GPU gets (fused blocks,
//! workgroup-tiled convolutions) whatever the adapter is; on a CPU adapter such as
//! lavapipe they are correct but slower than its own.
//!
//! `--profile` times every dispatch of one network forward on the GPU (timestamp queries
//! where the adapter has them, else a labelled synchronised fallback) and prints the five
//! most expensive next to the sum and the wall time of an unprofiled forward.
//!
//! IMAGE defaults to `examples/data/astronaut.png` (NASA, public domain, from
//! scikit-image); DIR defaults to `target/segment`; the model is MediaPipe's square
//! (256 x 256, default) or landscape (144 x 256) selfie model. Everything runs on the GPU in one
//! submission: the photo's RGBA bytes resized to the network's 256 x 256 input (as
//! MediaPipe does, without keeping the aspect ratio; `segblocks::ops::frame`), the
//! network, the bilinear resize of the mask back to the photo's size and the composite
//! of the photo with its background dimmed and tinted (`segblocks::ops::composite`). The
//! example writes `mask.png` (person probability as grey levels) and `overlay.png`.
//!
//! The weights are `models/selfie_segmentation/model.safetensors`, converted from
//! MediaPipe's `selfie_segmentation.tflite` (Apache-2.0, see the LICENSE next to it).

use std::path::PathBuf;
use std::time::Instant;

use image::{GrayImage, RgbaImage};
use segblocks::networks::{SelfieModel, SelfieSegmentation};
use segblocks::ops::composite::{frame_bytes, Background, Compositor};
use segblocks::ops::frame::{frame_from_host, FrameLayout, FrameParams, MaskParams, PixelFormat};
use segblocks::ops::upsample::UpsampleParams;
use segblocks::{Gpu, GpuOptions, StateDict};

type AnyResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> AnyResult<()> {
    let process_start = Instant::now();
    let mut input = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/data/astronaut.png"
    ));
    let mut out_dir = PathBuf::from("target/segment");
    let mut model = SelfieModel::Square;
    let mut profile = false;
    let mut device_class = None;
    let mut precision = segblocks::Precision::F32;
    let mut f16_arithmetic = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out_dir = args.next().ok_or("--out needs a directory")?.into(),
            "--model" => model = args.next().ok_or("--model needs a name")?.parse()?,
            "--profile" => profile = true,
            "--gpu-kernels" => device_class = Some(segblocks::DeviceClass::Gpu),
            "--f16" => precision = segblocks::Precision::F16,
            "--f16-math" => {
                precision = segblocks::Precision::F16;
                f16_arithmetic = true;
            }
            "-h" | "--help" => {
                println!(
                    "usage: segment [IMAGE] [--out DIR] [--model square|landscape] [--profile] \
                     [--gpu-kernels] [--f16] [--f16-math]"
                );
                return Ok(());
            }
            _ => input = a.into(),
        }
    }

    let photo = image::open(&input)
        .map_err(|e| format!("{}: {e}", input.display()))?
        .to_rgba8();
    let (width, height) = photo.dimensions();
    let (side_h, side_w) = model.input_size();
    let layout = FrameLayout::packed(width as usize, height as usize, PixelFormat::Rgba8);
    let to_input = FrameParams::new(side_h, side_w);

    // Compiled pipelines persist between runs (where the adapter supports it).
    let gpu = Gpu::with_options(GpuOptions {
        pipeline_cache_dir: segblocks::default_pipeline_cache_dir(),
        device_class,
        precision,
        f16_arithmetic,
        ..GpuOptions::default()
    })?;
    println!(
        "adapter: {} ({:?}), tensors in {:?}{}",
        gpu.adapter_info().name,
        gpu.adapter_info().backend,
        gpu.precision(),
        if gpu.f16_arithmetic() {
            ", f16 arithmetic"
        } else {
            ""
        }
    );
    let device_ready = process_start.elapsed();
    let net =
        SelfieSegmentation::load(&gpu, model, &StateDict::load(model.bundled_weights())?, "")?;
    let model_ready = process_start.elapsed();
    let summary = net.summary([1, 3, side_h, side_w])?;
    println!(
        "selfie segmentation: {} parameters, {:.1} M multiply-accumulates at {side_h}x{side_w}",
        summary.total_params(),
        summary.total_macs() as f64 / 1e6
    );
    let to_photo_size = UpsampleParams::bilinear(false).size((height as usize, width as usize));
    // The background: a third of the brightness, tinted blue; the person unchanged.
    let dim = Background::Tint {
        color: [0.0, 0.0, 135.0 / 255.0],
        amount: 2.0 / 3.0,
    };
    let compositor = Compositor::new(&gpu, dim)?;

    // One submission: the photo's bytes in, network, the mask at the photo's size and the
    // composite out, one readback.
    let record = |rec: &mut segblocks::Recorder<'_>| -> segblocks::Result<[segblocks::Tensor; 2]> {
        let x = frame_from_host(rec, photo.as_raw(), &layout, &to_input)?;
        let mask = net.forward(rec, &x)?;
        let full = segblocks::ops::upsample::upsample(rec, &to_photo_size, &mask)?;
        let overlay =
            compositor.record_host(rec, photo.as_raw(), &layout, &mask, &MaskParams::new())?;
        Ok([full, overlay])
    };
    let run = || -> AnyResult<(ndarray::Array4<f32>, Vec<u8>)> {
        let mut rec = gpu.recorder();
        let [full, overlay] = record(&mut rec)?;
        let mut out = rec.download_many(&[&full, &overlay])?;
        let overlay = frame_bytes(&out.pop().expect("two outputs"));
        Ok((out.pop().expect("two outputs"), overlay))
    };
    // Every pipeline of the submission compiled up front, in parallel.
    let t0 = Instant::now();
    let compiled = gpu.prepare(|rec| record(rec).map(|_| ()))?;
    let prepared = t0.elapsed();
    let t0 = Instant::now();
    let (mask, overlay) = run()?;
    let first = t0.elapsed();
    let to_first_mask = process_start.elapsed();
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        run()?;
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "segmented {}x{} in {:.1} ms (first run: {:.0} ms, after compiling {compiled} \
         pipelines in {:.0} ms)",
        width,
        height,
        times[times.len() / 2].as_secs_f64() * 1e3,
        first.as_secs_f64() * 1e3,
        prepared.as_secs_f64() * 1e3
    );
    println!(
        "first mask {:.0} ms after the process started (device {:.0} ms, model loaded {:.0} \
         ms; pipeline cache on disk: {})",
        to_first_mask.as_secs_f64() * 1e3,
        device_ready.as_secs_f64() * 1e3,
        model_ready.as_secs_f64() * 1e3,
        if gpu.has_pipeline_cache() {
            "yes"
        } else {
            "not supported"
        }
    );

    if profile {
        let x = {
            let mut rec = gpu.recorder();
            let x = frame_from_host(&mut rec, photo.as_raw(), &layout, &to_input)?;
            rec.submit()?;
            x
        };
        let mut walls = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let mut rec = gpu.recorder();
            let y = net.forward(&mut rec, &x)?;
            rec.download(&y)?;
            walls.push(t.elapsed().as_secs_f64() * 1e3);
        }
        walls.sort_by(f64::total_cmp);
        let mut rec = gpu.recorder();
        rec.enable_profiling()?;
        net.forward(&mut rec, &x)?;
        let p = rec.profile()?;
        println!(
            "profile ({:?}): {} dispatches sum to {:.2} ms; an unprofiled forward takes \
             {:.2} ms (median of 5, with readback): {:.0}%",
            p.method,
            p.dispatches.len(),
            p.total_ms(),
            walls[2],
            100.0 * p.total_ms() / walls[2]
        );
        for d in p.top(5) {
            println!(
                "  {:>8.3} ms {:>7.2} GB/s  {:<28} {}",
                d.ms,
                d.gb_per_s(),
                d.kernel,
                d.layer
            );
        }
    }

    // What one forward moves: dispatches and bytes, next to the least any implementation
    // must move (the weights, the input and the output, once each).
    let traffic = {
        let mut rec = gpu.recorder();
        let xt = frame_from_host(&mut rec, photo.as_raw(), &layout, &to_input)?;
        let mut rec = {
            rec.submit()?;
            gpu.recorder()
        };
        net.forward(&mut rec, &xt)?;
        let traffic = rec.traffic();
        rec.submit()?;
        traffic
    };
    let output = net.output_shape([1, 3, side_h, side_w])?;
    let minimum = gpu.precision().bytes() as usize
        * (summary.total_params() as usize
            + 3 * side_h * side_w
            + output.iter().product::<usize>());
    println!(
        "per forward: {} dispatches, {:.2} MB read and {:.2} MB written (minimum: {:.2} MB)",
        traffic.dispatch_count(),
        traffic.read() as f64 / 1e6,
        traffic.written() as f64 / 1e6,
        minimum as f64 / 1e6
    );

    std::fs::create_dir_all(&out_dir)?;
    let prob = |x: u32, y: u32| mask[[0, 0, y as usize, x as usize]].clamp(0.0, 1.0);
    let grey = GrayImage::from_fn(width, height, |x, y| {
        image::Luma([(prob(x, y) * 255.0).round() as u8])
    });
    let overlay = RgbaImage::from_raw(width, height, overlay).ok_or("overlay size")?;
    let mask_path = out_dir.join("mask.png");
    let overlay_path = out_dir.join("overlay.png");
    grey.save(&mask_path)?;
    overlay.save(&overlay_path)?;
    let person = mask.iter().filter(|&&p| p > 0.5).count() as f64 / mask.len() as f64;
    println!(
        "person on {:.1}% of the photo; wrote {} and {}",
        100.0 * person,
        mask_path.display(),
        overlay_path.display()
    );
    Ok(())
}
