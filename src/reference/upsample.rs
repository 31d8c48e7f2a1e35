//! Reference upsampling, one output element at a time from PyTorch's definitions:
//! nearest `src = min(floor(dst * scale), in - 1)` (identity when sizes match, `dst / 2`
//! for exact doubling); bilinear `src = dst * (in - 1) / (out - 1)` with
//! `align_corners`, else `max((dst + 0.5) * scale - 0.5, 0)`, where `scale` is
//! `1 / scale_factor` when one was given and `in / out` otherwise, computed in `f32` as
//! PyTorch does; bed-of-nails `y[s*i, s*j] = x[i, j]`, zeros elsewhere.

use ndarray::{Array4, ArrayView4};

use crate::error::Result;
use crate::ops::upsample::{UpsampleMode, UpsampleParams};

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

fn linear(dst: usize, input: usize, out: usize, scale_factor: Option<f64>, align: bool) -> f32 {
    if align {
        if out > 1 {
            (input - 1) as f32 / (out - 1) as f32 * dst as f32
        } else {
            0.0
        }
    } else {
        let s = axis_scale(scale_factor, input, out);
        (s * (dst as f32 + 0.5) - 0.5).max(0.0)
    }
}

/// Upsamples `input` as `params` says.
pub fn upsample(params: &UpsampleParams, input: ArrayView4<f32>) -> Result<Array4<f32>> {
    let in_shape: [usize; 4] = input.shape().try_into().expect("4-D");
    let out_shape = params.output_shape(in_shape)?;
    let [batch, channels, height, width] = in_shape;
    let [_, _, out_h, out_w] = out_shape;
    let (fy, fx) = match params.scale_factor {
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
                            let (y0, x0) = (sy as usize, sx as usize);
                            let y1 = if y0 + 1 < height { y0 + 1 } else { y0 };
                            let x1 = if x0 + 1 < width { x0 + 1 } else { x0 };
                            let (ly, lx) = (sy - y0 as f32, sx - x0 as f32);
                            let v = |y: usize, x: usize| input[[n, c, y, x]];
                            (1.0 - ly) * ((1.0 - lx) * v(y0, x0) + lx * v(y0, x1))
                                + ly * ((1.0 - lx) * v(y1, x0) + lx * v(y1, x1))
                        }
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
