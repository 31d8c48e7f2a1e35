//! Segments an image larger than one pass in overlapping tiles and reports the device
//! memory it took: a U-Net (milesial's, made-up weights; give real ones with
//! `--weights FILE`) over a generated image of SIDE x SIDE pixels.
//!
//! ```text
//! cargo run --release --example tiled -- [--side 2048] [--tile 256] [--overlap 64]
//!     [--base 16] [--weights unet.safetensors]
//! ```
//!
//! `--base` is the U-Net's width (its first stage's channels; milesial's is 64).
//!
//! The peak device memory depends on the tile and the batch, not on the image: compare
//! `--side 2048` with `--side 8192`.

use std::time::Instant;

use segblocks::networks::{UNet, UNetConfig};
use segblocks::tiling::{tiled_forward, TileParams};
use segblocks::{Gpu, StateDict};

type AnyResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> AnyResult<()> {
    let (mut side, mut tile, mut overlap) = (2048usize, 256usize, 64usize);
    let mut weights = None;
    let mut base = 16usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--side" => side = value()?.parse()?,
            "--tile" => tile = value()?.parse()?,
            "--overlap" => overlap = value()?.parse()?,
            "--weights" => weights = Some(value()?),
            "--base" => base = value()?.parse()?,
            _ => {
                println!(
                    "usage: tiled [--side N] [--tile N] [--overlap N] [--base N] [--weights FILE]"
                );
                return Ok(());
            }
        }
    }
    let gpu = Gpu::new()?;
    let sd = match &weights {
        Some(path) => StateDict::load(path)?,
        None => StateDict::synthetic(),
    };
    // A narrow U-Net keeps the example quick on a software driver.
    let cfg = UNetConfig::new(3, 2).base_channels(base);
    let net = UNet::load(&gpu, cfg, &sd, "")?;
    let image = ndarray::Array4::from_shape_fn((1, 3, side, side), |(_, c, y, x)| {
        ((x * 7 + y * 13 + c * 29) % 255) as f32 / 255.0
    });
    gpu.reset_peak_memory();
    let params = TileParams::new((tile, tile), overlap);
    let t = Instant::now();
    let out = tiled_forward(&gpu, &net, image.view(), &params)?;
    let elapsed = t.elapsed();
    let stats = gpu.memory_stats();
    let rows = TileParams::starts(side, tile, overlap).len();
    println!(
        "{side}x{side} image in {} tiles of {tile}x{tile} (overlap {overlap}): output {:?} in \
         {:.1} s; peak device memory {:.1} MB",
        rows * rows,
        out.shape(),
        elapsed.as_secs_f64(),
        stats.peak_live_bytes as f64 / 1e6
    );
    Ok(())
}
