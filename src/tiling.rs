//! Images larger than one pass: tiled inference for any network whose output has its
//! input's size (the segmentation networks).
//!
//! The image is cut into overlapping tiles of one size, which run through the network a
//! batch at a time (one submission a batch, device memory bounded by the batch whatever
//! the image size), and the tiles' outputs are blended on the host with per-pixel
//! weights that sum to one:
//!
//! - [`Blend::Linear`]: across each overlap the weight ramps from 0 to 1, after a margin
//!   of zero weight at the tile's border (a quarter of the overlap by default). A pixel
//!   closer than the margin to a tile's border, whose receptive field that tile cuts,
//!   takes nothing from it: where the network's receptive field reaches at most the
//!   margin past a pixel, the tiled output equals the untiled one (up to rounding).
//! - [`Blend::Gaussian`]: a Gaussian bump per tile (standard deviation a fraction of the
//!   tile), smooth everywhere and never exactly zero: seams are soft but not exact.
//!
//! Tiles at the image's border keep full weight up to that border.

use ndarray::{s, Array1, Array4, ArrayView4, Axis};

use crate::blocks::{Architecture, Model};
use crate::error::{fail_if, Result};
use crate::gpu::Gpu;

/// How overlapping tiles are blended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Blend {
    /// Linear ramps across the overlaps after `margin` pixels of zero weight at each
    /// tile's inner borders (`margin * 2 < overlap`).
    Linear {
        /// Zero-weight pixels at each inner tile border.
        margin: usize,
    },
    /// A Gaussian of standard deviation `sigma` times the tile's size per axis.
    Gaussian {
        /// Relative standard deviation (positive; 0.25 is usual).
        sigma: f32,
    },
}

/// How an image is tiled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TileParams {
    /// Tile `(height, width)` (an input size the network accepts).
    pub tile: (usize, usize),
    /// Overlap of neighbouring tiles `(rows, columns)`, less than the tile.
    pub overlap: (usize, usize),
    /// The blending.
    pub blend: Blend,
    /// Tiles per forward pass (one submission each).
    pub batch: usize,
}

impl TileParams {
    /// Tiles of `tile` overlapping by `overlap` on both axes, linear blending with a
    /// quarter of the overlap as margin, four tiles a pass.
    pub fn new(tile: (usize, usize), overlap: usize) -> Self {
        TileParams {
            tile,
            overlap: (overlap, overlap),
            blend: Blend::Linear {
                margin: overlap / 4,
            },
            batch: 4,
        }
    }

    /// Checks the parameters on their own.
    pub fn validate(&self) -> Result<()> {
        let (t, o) = (self.tile, self.overlap);
        fail_if(t.0 == 0 || t.1 == 0, "tile", || {
            format!("must be positive, got {t:?}")
        })?;
        fail_if(o.0 >= t.0 || o.1 >= t.1, "overlap", || {
            format!("must be less than the tile {t:?}, got {o:?}")
        })?;
        fail_if(self.batch == 0, "batch", || {
            "must be at least 1".to_string()
        })?;
        match self.blend {
            Blend::Linear { margin } => fail_if(
                (o.0 > 0 && 2 * margin >= o.0) || (o.1 > 0 && 2 * margin >= o.1),
                "margin",
                || format!("twice the margin must be less than the overlap {o:?}, got {margin}"),
            ),
            Blend::Gaussian { sigma } => {
                fail_if(!(sigma.is_finite() && sigma > 0.0), "sigma", || {
                    format!("must be positive, got {sigma}")
                })
            }
        }
    }

    /// The tiles' first rows (or columns) along an axis of `len` pixels: a tile of the
    /// axis's tile size (or the whole axis, when shorter) every `tile - overlap` pixels,
    /// the last flush with the end. An overlap of the whole tile or more is taken as
    /// `tile - 1` (a step of one pixel), as [`tiled_forward`]'s validation never lets
    /// through.
    pub fn starts(len: usize, tile: usize, overlap: usize) -> Vec<usize> {
        if len <= tile {
            return vec![0];
        }
        let step = tile.saturating_sub(overlap).max(1);
        let mut starts: Vec<usize> = (0..)
            .map(|i| i * step)
            .take_while(|&s| s + tile < len)
            .collect();
        starts.push(len - tile);
        starts
    }

    /// The weights of a tile along one axis: `tile` values for a tile at `start` of an
    /// axis of `len` pixels with neighbours `overlap` deep.
    fn axis_weights(&self, start: usize, tile: usize, len: usize, overlap: usize) -> Array1<f32> {
        let (first, last) = (start == 0, start + tile >= len);
        match self.blend {
            Blend::Linear { margin } => Array1::from_shape_fn(tile, |i| {
                // Distance (in pixels, centre of the pixel) from each inner border.
                let ramp = |d: usize| {
                    if overlap == 0 {
                        return 1.0;
                    }
                    let span = (overlap - 2 * margin) as f32;
                    ((d as f32 + 0.5 - margin as f32) / span).clamp(0.0, 1.0)
                };
                let from_start = if first { 1.0 } else { ramp(i) };
                let from_end = if last { 1.0 } else { ramp(tile - 1 - i) };
                from_start.min(from_end)
            }),
            Blend::Gaussian { sigma } => Array1::from_shape_fn(tile, |i| {
                let centre = (tile as f32 - 1.0) / 2.0;
                let sd = sigma * tile as f32;
                // Flat to the image's border where there is no neighbour.
                let x = i as f32 - centre;
                let x = if (first && x < 0.0) || (last && x > 0.0) {
                    0.0
                } else {
                    x
                };
                (-0.5 * (x / sd) * (x / sd)).exp().max(1e-6)
            }),
        }
    }
}

crate::ops::setters!(TileParams {
    /// Sets the blending.
    blend: Blend,
    /// Sets the tiles per pass.
    batch: usize,
});

/// Runs `model` over `image` (`[N, C, H, W]` on the host, any size) in overlapping tiles
/// and blends their outputs: the `[N, K, H, W]` output the untiled forward would give
/// (exactly, with linear blending, where the receptive field fits in the margin). The
/// model's output must have its input's size; the tile size must be an input it accepts.
pub fn tiled_forward<A: Architecture>(
    gpu: &Gpu,
    model: &Model<A>,
    image: ArrayView4<f32>,
    params: &TileParams,
) -> Result<Array4<f32>> {
    params.validate()?;
    let [n, c, h, w]: [usize; 4] = image.shape().try_into().expect("4-D");
    fail_if(n == 0 || c == 0 || h == 0 || w == 0, "image", || {
        format!("must not be empty, got {:?}", image.shape())
    })?;
    let (th, tw) = (params.tile.0.min(h), params.tile.1.min(w));
    let out_tile = model.output_shape([params.batch, c, th, tw])?;
    fail_if((out_tile[2], out_tile[3]) != (th, tw), "model", || {
        format!(
            "tiled inference needs an output of the input's size; a {th}x{tw} tile gives {}x{}",
            out_tile[2], out_tile[3]
        )
    })?;
    let k = out_tile[1];
    let rows = TileParams::starts(h, th, params.overlap.0.min(th - 1));
    let cols = TileParams::starts(w, tw, params.overlap.1.min(tw - 1));
    let mut out = Array4::<f32>::zeros([n, k, h, w]);
    let mut norm = ndarray::Array2::<f32>::zeros((h, w));
    let tiles: Vec<(usize, usize, usize)> = (0..n)
        .flat_map(|b| {
            let cols = &cols;
            rows.iter()
                .flat_map(move |&y| cols.iter().map(move |&x| (b, y, x)))
        })
        .collect();
    for chunk in tiles.chunks(params.batch) {
        let mut batch = Array4::<f32>::zeros([chunk.len(), c, th, tw]);
        for (j, &(b, y, x)) in chunk.iter().enumerate() {
            batch
                .index_axis_mut(Axis(0), j)
                .assign(&image.slice(s![b, .., y..y + th, x..x + tw]));
        }
        let mut rec = gpu.recorder();
        let input = gpu.upload(batch.view())?;
        let y = model.forward(&mut rec, &input)?;
        let result = rec.download(&y)?;
        for (j, &(b, y, x)) in chunk.iter().enumerate() {
            let wy = params.axis_weights(y, th, h, params.overlap.0);
            let wx = params.axis_weights(x, tw, w, params.overlap.1);
            let weight = ndarray::Array2::from_shape_fn((th, tw), |(r, q)| wy[r] * wx[q]);
            let tile = result.index_axis(Axis(0), j);
            let mut target = out.slice_mut(s![b, .., y..y + th, x..x + tw]);
            for (mut plane, t) in target.outer_iter_mut().zip(tile.outer_iter()) {
                plane.zip_mut_with(&(&t * &weight), |o, v| *o += v);
            }
            // Every image has the same tiling: the weights' sum is counted once.
            if b == 0 {
                let mut nsum = norm.slice_mut(s![y..y + th, x..x + tw]);
                nsum += &weight;
            }
        }
    }
    for mut image in out.outer_iter_mut() {
        for mut plane in image.outer_iter_mut() {
            // Every pixel has a tile with positive weight; the floor only guards rounding.
            plane.zip_mut_with(&norm, |o, s| *o /= s.max(f32::MIN_POSITIVE));
        }
    }
    Ok(out)
}
