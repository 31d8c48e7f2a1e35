//! Semantic segmentation with a Hugging Face SegFormer checkpoint: a photo in, each pixel's
//! class out as a colour-coded PNG (`target/segformer/labels.png`), and the classes that
//! cover the most of it.
//!
//! ```text
//! cargo run --release --example segformer -- [--model DIR] [IMAGE]
//! ```
//!
//! `DIR` holds a checkpoint as the Hub has it, `config.json` and `model.safetensors` (e.g.
//! `nvidia/segformer-b0-finetuned-ade-512-512`): the network is configured from the first
//! and loaded from the second by name. Without `--model` it runs SegFormer-B0 with made-up
//! weights (its classes mean nothing): a check of the path, not a segmentation.
//!
//! The photo goes through what transformers' `SegformerImageProcessor` does: resized to 512
//! x 512 (bilinear), scaled to `[0, 1]`, normalised with ImageNet's statistics (on the GPU,
//! `ops::frame`). Each pixel of the quarter-size logits takes its best class (on the GPU,
//! in the same submission), and the label map is scaled to the photo's size (nearest).
//! transformers' `post_process_semantic_segmentation` resizes the logits first, which
//! smooths the boundaries; for ADE20K's 150 classes at 512 x 512 that is a 157 MB map,
//! more than one storage binding takes on many devices.

use std::path::PathBuf;

use segblocks::networks::{HfSegformer, HfSegformerConfig};
use segblocks::ops::channel::argmax;
use segblocks::ops::frame::{frame_from_host, FrameLayout, FrameParams, Normalize, PixelFormat};
use segblocks::{Gpu, StateDict};

type AnyResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> AnyResult<()> {
    let mut input = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/data/astronaut.png"
    ));
    let mut model: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--model" => model = Some(args.next().ok_or("--model needs a directory")?.into()),
            "-h" | "--help" => {
                println!("usage: segformer [--model DIR] [IMAGE]");
                return Ok(());
            }
            _ => input = a.into(),
        }
    }

    // The configuration and weights of the checkpoint, or B0 made up.
    let (cfg, sd, labels) = match &model {
        Some(dir) => {
            let json = std::fs::read_to_string(dir.join("config.json"))?;
            let cfg = HfSegformerConfig::from_config_json(&json)?;
            let sd = StateDict::load(dir.join("model.safetensors"))?;
            (cfg, sd, class_names(&json))
        }
        None => {
            println!("no --model: SegFormer-B0 with made-up weights (a check of the path)");
            (
                HfSegformerConfig::b(0, 150)?,
                StateDict::synthetic(),
                Vec::new(),
            )
        }
    };

    let photo = image::open(&input)
        .map_err(|e| format!("{}: {e}", input.display()))?
        .to_rgba8();
    let (width, height) = photo.dimensions();
    let layout = FrameLayout::packed(width as usize, height as usize, PixelFormat::Rgba8);
    let mut to_input = FrameParams::new(512, 512);
    to_input.normalize = Normalize::IMAGENET;

    let gpu = Gpu::new()?;
    let net = HfSegformer::load(&gpu, cfg, &sd, "")?;
    let summary = net.summary([1, 3, 512, 512])?;
    println!(
        "SegFormer: {:.1} M parameters, {:.2} GMACs at 512 x 512, {} classes",
        summary.total_params() as f64 / 1e6,
        summary.total_macs() as f64 / 1e9,
        cfg.num_labels
    );
    let start = std::time::Instant::now();
    let mut rec = gpu.recorder();
    let x = frame_from_host(&mut rec, photo.as_raw(), &layout, &to_input)?;
    let logits = net.forward(&mut rec, &x)?;
    let classes = argmax(&mut rec, &logits)?;
    let classes = rec.download_indices(&classes)?;
    println!(
        "photo to classes: {:.0} ms",
        start.elapsed().as_secs_f64() * 1e3
    );

    // Each class a colour of its own; the classes that cover the most of the photo.
    let (rows, cols) = (classes.shape()[2], classes.shape()[3]);
    let mut counts = vec![0usize; cfg.num_labels];
    let picture = image::RgbImage::from_fn(width, height, |x, y| {
        let (r, c) = (
            y as usize * rows / height as usize,
            x as usize * cols / width as usize,
        );
        let class = classes[[0, 0, r, c]] as usize;
        counts[class] += 1;
        image::Rgb(colour(class))
    });
    let out_dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/segformer"));
    std::fs::create_dir_all(&out_dir)?;
    let path = out_dir.join("labels.png");
    picture.save(&path)?;
    println!("wrote {}", path.display());
    let mut ranked: Vec<(usize, usize)> = counts.into_iter().enumerate().collect();
    ranked.sort_by_key(|&(_, count)| std::cmp::Reverse(count));
    let pixels = (width * height) as f64;
    for (class, count) in ranked.into_iter().take(5).filter(|(_, c)| *c > 0) {
        let name = labels.get(class).map_or("", String::as_str);
        println!(
            "  class {class:3} {name:<20} {:5.1}%",
            100.0 * count as f64 / pixels
        );
    }
    Ok(())
}

/// The class names of a transformers `config.json` (`id2label`), by index; empty where it
/// has none.
fn class_names(json: &str) -> Vec<String> {
    let config: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let Some(labels) = config.get("id2label").and_then(|v| v.as_object()) else {
        return Vec::new();
    };
    let mut names = vec![String::new(); labels.len()];
    for (id, name) in labels {
        if let (Ok(i), Some(name)) = (id.parse::<usize>(), name.as_str()) {
            if let Some(slot) = names.get_mut(i) {
                *slot = name.to_string();
            }
        }
    }
    names
}

/// A colour for `class`, far from its neighbours' (the golden angle around the hue circle).
fn colour(class: usize) -> [u8; 3] {
    let hue = (class as f64 * 137.507_764) % 360.0;
    let (s, v) = (0.65, 0.95);
    let c = v * s;
    let h = hue / 60.0;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [r, g, b].map(|u| ((u + m) * 255.0).round() as u8)
}
