//! Frames to network inputs and network outputs to masks, pixel by pixel: PyTorch's
//! bilinear rule (`align_corners=False`) written out per output pixel, in `f64`.

use ndarray::{Array2, Array4, ArrayView4};

use crate::error::{fail_if, Result};
use crate::ops::frame::{FrameLayout, FrameParams, MaskLayout, MaskParams, PixelFormat, Threshold};

/// The two source indices and the second's weight for output index `dst` of an axis
/// resized from `len` source samples to `out` (PyTorch's `area_pixel_compute_source_index`
/// with its clamp at 0).
fn taps(dst: usize, len: usize, out: usize) -> (usize, usize, f64) {
    let scale = len as f64 / out as f64;
    let src = (scale * (dst as f64 + 0.5) - 0.5).max(0.0);
    let i0 = (src.floor() as usize).min(len - 1);
    let i1 = (i0 + 1).min(len - 1);
    (i0, i1, src - i0 as f64)
}

/// The network's `[1, 3, H, W]` input from a frame's bytes (see
/// [`crate::ops::frame`]): each pixel's bytes over 255, resized bilinearly onto the
/// content rectangle, `fill` around it, then normalised.
pub fn frame_to_input(
    bytes: &[u8],
    layout: &FrameLayout,
    params: &FrameParams,
) -> Result<Array4<f32>> {
    let shape = params.output_shape(layout)?;
    fail_if(bytes.len() < layout.span(), "bytes", || {
        format!("need {} bytes, got {}", layout.span(), bytes.len())
    })?;
    let (h, w) = (shape[2], shape[3]);
    let rect = params
        .fit
        .content_rect((h, w), (layout.height, layout.width));
    let fill = match params.fit {
        crate::ops::frame::Fit::Stretch => 0.0,
        crate::ops::frame::Fit::Letterbox { fill } => fill as f64,
    };
    // The channel byte of (row, column, channel) with RGB order.
    let channel_byte = |c: usize| match layout.format {
        PixelFormat::Rgba8 => c,
        PixelFormat::Bgra8 => 2 - c,
    };
    let pixel = |row: usize, col: usize, c: usize| {
        bytes[row * layout.bytes_per_row + 4 * col + channel_byte(c)] as f64 / 255.0
    };
    let mut y = Array4::zeros(shape);
    for c in 0..3 {
        for oy in 0..h {
            for ox in 0..w {
                let inside = (rect.offset.0..rect.offset.0 + rect.size.0).contains(&oy)
                    && (rect.offset.1..rect.offset.1 + rect.size.1).contains(&ox);
                let v = if inside {
                    let (y0, y1, ly) = taps(oy - rect.offset.0, layout.height, rect.size.0);
                    let (x0, x1, lx) = taps(ox - rect.offset.1, layout.width, rect.size.1);
                    (1.0 - ly) * ((1.0 - lx) * pixel(y0, x0, c) + lx * pixel(y0, x1, c))
                        + ly * ((1.0 - lx) * pixel(y1, x0, c) + lx * pixel(y1, x1, c))
                } else {
                    fill
                };
                let n = params.normalize;
                y[[0, c, oy, ox]] = ((v - n.mean[c] as f64) / n.std[c] as f64) as f32;
            }
        }
    }
    Ok(y)
}

/// The mask of a network `output` at the size of `target` (see [`MaskParams`]), before
/// packing into the target's format: `[height, width]` values.
pub fn output_to_mask(
    output: ArrayView4<f32>,
    params: &MaskParams,
    target: &MaskLayout,
) -> Result<Array2<f32>> {
    let shape: [usize; 4] = output.shape().try_into().expect("4-D");
    params.validate(shape, target)?;
    let (h, w) = (shape[2], shape[3]);
    let rect = params
        .fit
        .content_rect((h, w), (target.height, target.width));
    let (n, c) = (params.batch, params.channel);
    let at = |row: usize, col: usize| output[[n, c, row, col]] as f64;
    let mut mask = Array2::zeros((target.height, target.width));
    for fy in 0..target.height {
        for fx in 0..target.width {
            let (y0, y1, ly) = taps(fy, rect.size.0, target.height);
            let (x0, x1, lx) = taps(fx, rect.size.1, target.width);
            let (y0, y1) = (y0 + rect.offset.0, y1 + rect.offset.0);
            let (x0, x1) = (x0 + rect.offset.1, x1 + rect.offset.1);
            let v = (1.0 - ly) * ((1.0 - lx) * at(y0, x0) + lx * at(y0, x1))
                + ly * ((1.0 - lx) * at(y1, x0) + lx * at(y1, x1));
            mask[[fy, fx]] = match params.threshold {
                Threshold::None => v as f32,
                Threshold::Step(t) => f32::from(v >= t as f64),
                Threshold::Smooth { threshold, feather } => {
                    let (lo, hi) = ((threshold - feather) as f64, (threshold + feather) as f64);
                    let t = ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
                    (t * t * (3.0 - 2.0 * t)) as f32
                }
            };
        }
    }
    Ok(mask)
}
