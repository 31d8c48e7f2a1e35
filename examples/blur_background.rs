//! Blurs the background of a video, frame by frame, on the GPU: MediaPipe's selfie
//! segmentation network between a frame in and a composited frame out, one submission a
//! frame, with and without keeping frames in flight.
//!
//! ```text
//! cargo run --release --example blur_background -- [FOLDER] [--frames N] [--out DIR]
//!     [--depth D] [--sigma S] [--model square|landscape] [--no-write]
//! ```
//!
//! FOLDER holds the frames (PNG or JPEG, read in name order); without it the example
//! generates N frames (default 30) from `examples/data/astronaut.png` (the photo panned
//! back and forth across a 384 x 288 window, a period of 30 frames: only those 30 are
//! held in memory, so a stream of any length runs in the same host memory). Each frame goes in as RGBA bytes (`ops::frame`), is
//! resized to the network's input (256 x 256 for the square model, the default; 144 x 256
//! for the landscape one), segmented, and composited with its
//! background blurred (a Gaussian of S frame pixels, default 6; `ops::composite`); the
//! frames are written to DIR (default `target/blur_background`) unless `--no-write`.
//!
//! The frames run twice: one at a time (record, submit, wait, write), then pipelined
//! with `FramesInFlight` (D frames in flight, default 1: the next frame is uploaded and
//! its network runs while the last one is read back and written). The example prints
//! each run's mean latency per frame, frames per second, their ratio, and the device
//! memory, buffers and the process's resident memory (RSS, Linux) after the warm-up,
//! after the first 10 pipelined frames, at the last one and at the end, with the change
//! from the 10th to the last.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use image::RgbaImage;
use segblocks::networks::{SelfieModel, SelfieSegmentation};
use segblocks::ops::composite::{frame_bytes, Background, Compositor};
use segblocks::ops::frame::{frame_from_host, FrameLayout, FrameParams, MaskParams, PixelFormat};
use segblocks::{FramesInFlight, Gpu, GpuOptions, Recorder, StateDict, Tensor};

type AnyResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const PHOTO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/astronaut.png");

struct Options {
    folder: Option<PathBuf>,
    frames: usize,
    out: PathBuf,
    depth: usize,
    sigma: f32,
    model: SelfieModel,
    write: bool,
}

fn options() -> AnyResult<Option<Options>> {
    let mut o = Options {
        folder: None,
        frames: 30,
        out: PathBuf::from("target/blur_background"),
        depth: 1,
        sigma: 6.0,
        model: SelfieModel::Square,
        write: true,
    };
    let mut args = std::env::args().skip(1);
    let value = |name: &str, args: &mut dyn Iterator<Item = String>| {
        args.next().ok_or_else(|| format!("{name} needs a value"))
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--frames" => o.frames = value("--frames", &mut args)?.parse()?,
            "--out" => o.out = value("--out", &mut args)?.into(),
            "--depth" => o.depth = value("--depth", &mut args)?.parse()?,
            "--sigma" => o.sigma = value("--sigma", &mut args)?.parse()?,
            "--model" => o.model = value("--model", &mut args)?.parse()?,
            "--no-write" => o.write = false,
            "-h" | "--help" => {
                println!(
                    "usage: blur_background [FOLDER] [--frames N] [--out DIR] [--depth D] \
                     [--sigma S] [--model square|landscape] [--no-write]"
                );
                return Ok(None);
            }
            _ => o.folder = Some(a.into()),
        }
    }
    Ok(Some(o))
}

/// The frames of the stream: a folder's images in name order, or `count` frames of the
/// photo panned across a window, which repeat every `images.len()` frames.
struct Stream {
    images: Vec<RgbaImage>,
    count: usize,
}

impl Stream {
    fn frame(&self, i: usize) -> &RgbaImage {
        &self.images[i % self.images.len()]
    }
}

/// The process's resident memory in MB (Linux: `/proc/self/status`), or `None`.
fn rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1e3)
}

/// Device memory and RSS at one point of the stream.
fn memory_line(gpu: &Gpu, when: &str) -> (f64, Option<f64>) {
    let stats = gpu.memory_stats();
    let rss = rss_mb();
    println!(
        "{when:>28}: device {:.3} MB live in {} buffers created; RSS {}",
        stats.live_bytes as f64 / 1e6,
        stats.buffers_created,
        rss.map_or("n/a".to_string(), |r| format!("{r:.1} MB"))
    );
    (stats.live_bytes as f64, rss)
}

fn frames(o: &Options) -> AnyResult<Stream> {
    if let Some(folder) = &o.folder {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(folder)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
                matches!(ext.to_lowercase().as_str(), "png" | "jpg" | "jpeg")
            })
            .collect();
        paths.sort();
        let images: AnyResult<Vec<RgbaImage>> = paths
            .iter()
            .map(|p| {
                Ok(image::open(p)
                    .map_err(|e| format!("{}: {e}", p.display()))?
                    .to_rgba8())
            })
            .collect();
        let images = images?;
        if images.is_empty() {
            return Err(format!("no PNG or JPEG images in {}", folder.display()).into());
        }
        let count = images.len();
        return Ok(Stream { images, count });
    }
    let photo = image::open(PHOTO)?.to_rgba8();
    let (w, h) = (384u32, 288u32);
    let span = (photo.width() - w, photo.height() - h);
    let count = o.frames.max(1);
    let images = (0..count.min(30))
        .map(|i| {
            // Back and forth across the photo.
            let t = (i as f32 / 15.0 * std::f32::consts::PI).sin() * 0.5 + 0.5;
            let (x, y) = ((t * span.0 as f32) as u32, (t * span.1 as f32 * 0.5) as u32);
            image::imageops::crop_imm(&photo, x, y, w, h).to_image()
        })
        .collect();
    Ok(Stream { images, count })
}

/// Records frame `i`: its bytes in, the network, the composite out.
fn record<'g>(
    gpu: &'g Gpu,
    (net, compositor): (&SelfieSegmentation, &Compositor),
    frame: &RgbaImage,
) -> AnyResult<(Recorder<'g>, Tensor)> {
    let layout = FrameLayout::packed(
        frame.width() as usize,
        frame.height() as usize,
        PixelFormat::Rgba8,
    );
    let (h, w) = net.config().input_size();
    let mut rec = gpu.recorder();
    let x = frame_from_host(&mut rec, frame.as_raw(), &layout, &FrameParams::new(h, w))?;
    let mask = net.forward(&mut rec, &x)?;
    let out =
        compositor.record_host(&mut rec, frame.as_raw(), &layout, &mask, &MaskParams::new())?;
    Ok((rec, out))
}

fn write(o: &Options, i: usize, frame: &RgbaImage, words: &ndarray::Array4<f32>) -> AnyResult<()> {
    if o.write {
        let img = RgbaImage::from_raw(frame.width(), frame.height(), frame_bytes(words))
            .ok_or("composite size")?;
        img.save(o.out.join(format!("frame_{i:04}.png")))?;
    }
    Ok(())
}

fn report(name: &str, frames: usize, total: Duration, latencies: &[Duration]) -> f64 {
    let fps = frames as f64 / total.as_secs_f64();
    let mean = latencies.iter().sum::<Duration>().as_secs_f64() / latencies.len() as f64;
    println!(
        "{name:>10}: {fps:6.1} frames/s, latency {:6.1} ms per frame (submit to written)",
        mean * 1e3
    );
    fps
}

fn main() -> AnyResult<()> {
    let Some(o) = options()? else {
        return Ok(());
    };
    let stream = frames(&o)?;
    if o.write {
        std::fs::create_dir_all(&o.out)?;
    }
    // Compiled pipelines persist between runs (where the adapter supports it).
    let gpu = Gpu::with_options(GpuOptions {
        pipeline_cache_dir: segblocks::default_pipeline_cache_dir(),
        ..GpuOptions::default()
    })?;
    println!(
        "adapter: {} ({:?}); {} frames of {}x{}",
        gpu.adapter_info().name,
        gpu.adapter_info().backend,
        stream.count,
        stream.frame(0).width(),
        stream.frame(0).height()
    );
    let net = SelfieSegmentation::load(
        &gpu,
        o.model,
        &StateDict::load(o.model.bundled_weights())?,
        "",
    )?;
    let compositor = Compositor::new(&gpu, Background::blur(o.sigma))?;
    let parts = (&net, &compositor);

    // Warm-up: pipelines compiled, buffers pooled.
    let (rec, out) = record(&gpu, parts, stream.frame(0))?;
    write(&o, 0, stream.frame(0), &rec.download(&out)?)?;
    memory_line(&gpu, "after the warm-up");

    // One frame at a time.
    let mut latencies = Vec::new();
    let start = Instant::now();
    for i in 0..stream.count {
        let frame = stream.frame(i);
        let t = Instant::now();
        let (rec, out) = record(&gpu, parts, frame)?;
        write(&o, i, frame, &rec.download(&out)?)?;
        latencies.push(t.elapsed());
    }
    let single = report("one by one", stream.count, start.elapsed(), &latencies);

    // Frames in flight: frame i + depth is recorded and submitted before frame i is
    // read back and written.
    let mut in_flight = FramesInFlight::new(o.depth);
    let mut latencies = Vec::new();
    let start = Instant::now();
    let mut done = |(i, t0): (usize, Instant), words: &ndarray::Array4<f32>| -> AnyResult<()> {
        write(&o, i, stream.frame(i), words)?;
        latencies.push(t0.elapsed());
        Ok(())
    };
    let (mut settled, mut last) = (None, None);
    for i in 0..stream.count {
        let t = Instant::now();
        let (rec, out) = record(&gpu, parts, stream.frame(i))?;
        if let Some((tag, outs)) = in_flight.push((i, t), rec, &[&out])? {
            done(tag, &outs[0])?;
        }
        if i == 10 {
            settled = Some(memory_line(&gpu, "after 10 pipelined frames"));
        }
        if i + 1 == stream.count && i > 10 {
            last = Some(memory_line(&gpu, "at the last pipelined frame"));
        }
    }
    while let Some((tag, outs)) = in_flight.pop()? {
        done(tag, &outs[0])?;
    }
    let total = start.elapsed();
    let pipelined = report("pipelined", stream.count, total, &latencies);
    println!(
        "pipelined / one by one: {:.2}x the frame rate ({} frame(s) in flight)",
        pipelined / single,
        o.depth
    );
    memory_line(&gpu, "at the end");
    if let (Some((device, rss)), Some(end)) = (settled, last) {
        let change = |a: f64, b: f64| format!("{:+.2}%", 100.0 * (b / a - 1.0));
        println!(
            "from the 10th pipelined frame to the {}th: device memory {}, RSS {}",
            stream.count,
            change(device, end.0),
            rss.zip(end.1)
                .map_or("n/a".to_string(), |(a, b)| change(a, b))
        );
    }
    if o.write {
        println!(
            "wrote {} frames to {}",
            stream.count,
            Path::new(&o.out).display()
        );
    }
    Ok(())
}
