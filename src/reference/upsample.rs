//! Reference upsampling, one output element at a time from PyTorch's definitions:
//! nearest `src = min(floor(dst * scale), in - 1)` (identity when sizes match, `dst / 2`
//! for exact doubling); bilinear `src = dst * (in - 1) / (out - 1)` with
//! `align_corners`, else `max((dst + 0.5) * scale - 0.5, 0)`, where `scale` is
//! `1 / scale_factor` when one was given and `in / out` otherwise, computed in `f32` as
//! PyTorch does; nearest-exact `src = min(floor((dst + 0.5) * scale), in - 1)`; bicubic
//! Keys' cubic convolution (A = -0.75) of the 4 x 4 neighbours of
//! `src = dst * (in - 1) / (out - 1)` (align_corners) or `(dst + 0.5) * scale - 0.5`,
//! neighbours past the border replaced by the border's; bed-of-nails
//! `y[s*i, s*j] = x[i, j]`, zeros elsewhere. With `recompute_scale_factor`, `scale` is
//! `in / out` even when a scale factor gave the size.

use ndarray::{Array4, ArrayView4};

use crate::error::Result;
use crate::ops::pool::AdaptiveAvgPool2dParams;
use crate::ops::upsample::{UpsampleMode, UpsampleParams};
use crate::ops::Activation;

fn axis_scale(scale_factor: Option<f64>, input: usize, out: usize) -> f32 {
    match scale_factor {
        Some(f) => (1.0 / f) as f32,
        None => input as f32 / out as f32,
    }
}

fn nearest(dst: usize, input: usize, out: usize, scale_factor: Option<f64>) -> usize {
    if out == input {
        return dst;
    }
    if out == 2 * input {
        return dst / 2;
    }
    let src = (dst as f32 * axis_scale(scale_factor, input, out)).floor() as usize;
    src.min(input - 1)
}

fn nearest_exact(dst: usize, input: usize, out: usize, scale_factor: Option<f64>) -> usize {
    let s = axis_scale(scale_factor, input, out) as f64;
    // PyTorch multiplies in double and floors in float.
    let src = (((dst as f64 + 0.5) * s) as f32).floor() as usize;
    src.min(input - 1)
}

/// Keys' cubic convolution kernel with PyTorch's A = -0.75, at distance `d >= 0`.
fn cubic_weight(d: f32) -> f32 {
    const A: f32 = -0.75;
    if d <= 1.0 {
        ((A + 2.0) * d - (A + 3.0)) * d * d + 1.0
    } else if d < 2.0 {
        ((A * d - 5.0 * A) * d + 8.0 * A) * d - 4.0 * A
    } else {
        0.0
    }
}

/// The bicubic source position along one axis (not clamped at 0, unlike bilinear).
fn cubic_position(
    dst: usize,
    input: usize,
    out: usize,
    scale_factor: Option<f64>,
    align: bool,
) -> f32 {
    if align {
        if out > 1 {
            (input - 1) as f32 / (out - 1) as f32 * dst as f32
        } else {
            0.0
        }
    } else {
        // One rounding (a fused multiply-add), as PyTorch's vectorised CPU build and CUDA
        // compute `scale * (dst + 0.5) - 0.5`: a separate product can move the position
        // by an ulp, and the result by that ulp times the local slope.
        axis_scale(scale_factor, input, out).mul_add(dst as f32 + 0.5, -0.5)
    }
}

/// The four neighbours of `src` (clamped into `0..input`) and their weights.
fn cubic_taps(src: f32, input: usize) -> [(usize, f32); 4] {
    let i = (src.floor() as i64).min(input as i64 - 1);
    let t = (src - i as f32).clamp(0.0, 1.0);
    let mut taps = [(0, 0.0); 4];
    for (k, tap) in taps.iter_mut().enumerate() {
        let offset = k as i64 - 1;
        let index = (i + offset).clamp(0, input as i64 - 1) as usize;
        *tap = (index, cubic_weight((t - offset as f32).abs()));
    }
    taps
}

fn linear(dst: usize, input: usize, out: usize, scale_factor: Option<f64>, align: bool) -> f32 {
    if out == input {
        // PyTorch copies an axis whose size does not change, whatever the scale factor
        // that gave that size (`compute_source_index_and_lambda`).
        dst as f32
    } else if align {
        if out > 1 {
            (input - 1) as f32 / (out - 1) as f32 * dst as f32
        } else {
            0.0
        }
    } else {
        let s = axis_scale(scale_factor, input, out);
        // One rounding, as in `cubic_position`.
        s.mul_add(dst as f32 + 0.5, -0.5).max(0.0)
    }
}

/// Upsamples `input` as `params` says.
pub fn upsample(params: &UpsampleParams, input: ArrayView4<f32>) -> Result<Array4<f32>> {
    let in_shape: [usize; 4] = input.shape().try_into().expect("4-D");
    let out_shape = params.output_shape(in_shape)?;
    if params.mode == UpsampleMode::Area {
        // F.interpolate(mode='area') is adaptive average pooling to the output size.
        let pool = AdaptiveAvgPool2dParams::new((out_shape[2], out_shape[3]));
        return super::pool::adaptive_avg_pool2d(&pool, input);
    }
    if params.antialias {
        return Ok(antialiased(params, input, out_shape));
    }
    let [batch, channels, height, width] = in_shape;
    let [_, _, out_h, out_w] = out_shape;
    let (fy, fx) = match params.kernel_scales() {
        Some((a, b)) => (Some(a), Some(b)),
        None => (None, None),
    };
    let mut out = Array4::<f32>::zeros(out_shape);
    for n in 0..batch {
        for c in 0..channels {
            for oy in 0..out_h {
                for ox in 0..out_w {
                    out[[n, c, oy, ox]] = match params.mode {
                        UpsampleMode::Nearest => {
                            let iy = nearest(oy, height, out_h, fy);
                            let ix = nearest(ox, width, out_w, fx);
                            input[[n, c, iy, ix]]
                        }
                        UpsampleMode::Bilinear { align_corners } => {
                            let sy = linear(oy, height, out_h, fy, align_corners);
                            let sx = linear(ox, width, out_w, fx, align_corners);
                            // In f32 a source position on an axis of 2^24 pixels or
                            // more can round up to the axis's length.
                            let (y0, x0) =
                                ((sy as usize).min(height - 1), (sx as usize).min(width - 1));
                            let y1 = if y0 + 1 < height { y0 + 1 } else { y0 };
                            let x1 = if x0 + 1 < width { x0 + 1 } else { x0 };
                            let (ly, lx) = (sy - y0 as f32, sx - x0 as f32);
                            let v = |y: usize, x: usize| input[[n, c, y, x]];
                            (1.0 - ly) * ((1.0 - lx) * v(y0, x0) + lx * v(y0, x1))
                                + ly * ((1.0 - lx) * v(y1, x0) + lx * v(y1, x1))
                        }
                        UpsampleMode::NearestExact => {
                            let iy = nearest_exact(oy, height, out_h, fy);
                            let ix = nearest_exact(ox, width, out_w, fx);
                            input[[n, c, iy, ix]]
                        }
                        UpsampleMode::Bicubic { align_corners } => {
                            let sy = cubic_position(oy, height, out_h, fy, align_corners);
                            let sx = cubic_position(ox, width, out_w, fx, align_corners);
                            let mut total = 0.0;
                            for (iy, wy) in cubic_taps(sy, height) {
                                let mut row = 0.0;
                                for (ix, wx) in cubic_taps(sx, width) {
                                    row += wx * input[[n, c, iy, ix]];
                                }
                                total += wy * row;
                            }
                            total
                        }
                        UpsampleMode::Area => unreachable!("pooled above"),
                        UpsampleMode::BedOfNails { stride } => {
                            if oy % stride.0 == 0 && ox % stride.1 == 0 {
                                input[[n, c, oy / stride.0, ox / stride.1]]
                            } else {
                                0.0
                            }
                        }
                    };
                }
            }
        }
    }
    Ok(out)
}

/// `act(residual + F.interpolate(input, ...))`: [`upsample`], then the sum with
/// `residual` (the output's shape) and the activation, element by element.
pub fn upsample_add(
    params: &UpsampleParams,
    input: ArrayView4<f32>,
    residual: ArrayView4<f32>,
    act: Activation,
) -> Result<Array4<f32>> {
    let resized = upsample(params, input)?;
    let out_shape: [usize; 4] = resized.shape().try_into().expect("4-D");
    crate::ops::same_shape(
        "residual",
        out_shape,
        residual.shape().try_into().expect("4-D"),
    )?;
    let mut out = residual.to_owned();
    for (idx, v) in out.indexed_iter_mut() {
        *v = super::activation(act, *v + resized[idx]);
    }
    Ok(out)
}

/// `F.pixel_shuffle(x, r)`: `y[n, c, h r + i, w r + j] = x[n, c r^2 + i r + j, h, w]`.
pub fn pixel_shuffle(x: ArrayView4<f32>, upscale_factor: usize) -> Result<Array4<f32>> {
    let s: [usize; 4] = x.shape().try_into().expect("4-D");
    let out = crate::ops::upsample::pixel_shuffle_shape(s, upscale_factor)?;
    let r = upscale_factor;
    Ok(Array4::from_shape_fn(out, |(n, c, oy, ox)| {
        let (i, j) = (oy % r, ox % r);
        x[[n, c * r * r + i * r + j, oy / r, ox / r]]
    }))
}

/// `F.pixel_unshuffle(x, r)`: `y[n, c r^2 + i r + j, h, w] = x[n, c, h r + i, w r + j]`.
pub fn pixel_unshuffle(x: ArrayView4<f32>, downscale_factor: usize) -> Result<Array4<f32>> {
    let s: [usize; 4] = x.shape().try_into().expect("4-D");
    let out = crate::ops::upsample::pixel_unshuffle_shape(s, downscale_factor)?;
    let r = downscale_factor;
    Ok(Array4::from_shape_fn(out, |(n, oc, oy, ox)| {
        let (c, k) = (oc / (r * r), oc % (r * r));
        x[[n, c, oy * r + k / r, ox * r + k % r]]
    }))
}

/// The antialiasing filter's taps for output `o` of an axis (PyTorch's `antialias=True`):
/// centred at `scale * (o + 0.5)`, the filter (triangle, or Keys' cubic with `A = -0.5`)
/// stretched by the downscale factor, cut at the input's edges and normalised to sum 1.
fn antialias_taps(
    o: usize,
    (input, out): (usize, usize),
    scale_factor: Option<f64>,
    (bicubic, align_corners): (bool, bool),
) -> Vec<(usize, f64)> {
    // PyTorch leaves an axis whose size does not change as it is, whatever the scale
    // factor that gave that size.
    if input == out {
        return vec![(o, 1.0)];
    }
    let scale = match (align_corners, out > 1) {
        (true, true) => (input - 1) as f64 / (out - 1) as f64,
        (true, false) => 0.0,
        (false, _) => axis_scale(scale_factor, input, out) as f64,
    };
    let stretch = scale.max(1.0);
    let support = if bicubic { 2.0 } else { 1.0 } * stretch;
    let center = scale * (o as f64 + 0.5);
    let filter = |x: f64| {
        let x = x.abs();
        match (bicubic, x) {
            (false, x) if x < 1.0 => 1.0 - x,
            (true, x) if x < 1.0 => (1.5 * x - 2.5) * x * x + 1.0,
            (true, x) if x < 2.0 => ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0,
            _ => 0.0,
        }
    };
    let first = ((center - support + 0.5) as i64).max(0) as usize;
    let end = ((center + support + 0.5) as i64).clamp(first as i64, input as i64) as usize;
    let taps: Vec<(usize, f64)> = (first..end)
        .map(|i| (i, filter((i as f64 - center + 0.5) / stretch)))
        .collect();
    let total: f64 = taps.iter().map(|t| t.1).sum();
    taps.into_iter()
        .map(|(i, w)| (i, if total != 0.0 { w / total } else { w }))
        .collect()
}

/// `F.interpolate(..., antialias=True)`: each output the weighted sum of its rows' and
/// columns' taps.
fn antialiased(params: &UpsampleParams, x: ArrayView4<f32>, out: [usize; 4]) -> Array4<f32> {
    let (bicubic, align_corners) = match params.mode {
        UpsampleMode::Bicubic { align_corners } => (true, align_corners),
        UpsampleMode::Bilinear { align_corners } => (false, align_corners),
        _ => (false, false),
    };
    let f = params.kernel_scales();
    let (h, w) = (x.shape()[2], x.shape()[3]);
    let kind = (bicubic, align_corners);
    let rows: Vec<_> = (0..out[2])
        .map(|o| antialias_taps(o, (h, out[2]), f.map(|f| f.0), kind))
        .collect();
    let cols: Vec<_> = (0..out[3])
        .map(|o| antialias_taps(o, (w, out[3]), f.map(|f| f.1), kind))
        .collect();
    Array4::from_shape_fn(out, |(n, c, oy, ox)| {
        let mut sum = 0.0f64;
        for &(iy, wy) in &rows[oy] {
            for &(ix, wx) in &cols[ox] {
                sum += wy * wx * x[[n, c, iy, ix]] as f64;
            }
        }
        sum as f32
    })
}
