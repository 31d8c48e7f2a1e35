//! Compositing, pixel by pixel: the frame's background blurred (resized, Gaussian rows
//! then columns with replicated edges, resized back) or tinted, mixed with the frame by
//! the mask, in `f64`.

use ndarray::{Array3, ArrayView4};

use super::frame::{frame_to_input, output_to_mask};
use crate::error::{fail_if, Result};
use crate::ops::composite::{gaussian_taps, Background};
use crate::ops::frame::{
    FrameLayout, FrameParams, MaskFormat, MaskLayout, MaskParams, PixelFormat,
};

/// `[3, h, w]` blurred along one axis (`axis` 1 rows, 2 columns), edges replicated.
fn blur_axis(x: &Array3<f64>, taps: &[f32], axis: usize) -> Array3<f64> {
    let r = (taps.len() / 2) as isize;
    let len = x.shape()[axis] as isize;
    Array3::from_shape_fn(x.raw_dim(), |(c, y, xx)| {
        let mut sum = 0.0;
        for (k, &t) in taps.iter().enumerate() {
            let d = k as isize - r;
            let at = |p: usize| ((p as isize + d).clamp(0, len - 1)) as usize;
            let v = if axis == 1 {
                x[[c, at(y), xx]]
            } else {
                x[[c, y, at(xx)]]
            };
            sum += t as f64 * v;
        }
        sum
    })
}

/// PyTorch's bilinear sample (`align_corners=False`) of `img` `[3, h, w]` at output
/// pixel `(oy, ox)` of an `(out_h, out_w)` resize.
fn bilinear(
    img: &Array3<f64>,
    c: usize,
    (oy, ox): (usize, usize),
    (out_h, out_w): (usize, usize),
) -> f64 {
    let axis = |dst: usize, len: usize, out: usize| {
        let src = (len as f64 / out as f64 * (dst as f64 + 0.5) - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(len - 1);
        (i0, (i0 + 1).min(len - 1), src - i0 as f64)
    };
    let (y0, y1, ly) = axis(oy, img.shape()[1], out_h);
    let (x0, x1, lx) = axis(ox, img.shape()[2], out_w);
    (1.0 - ly) * ((1.0 - lx) * img[[c, y0, x0]] + lx * img[[c, y0, x1]])
        + ly * ((1.0 - lx) * img[[c, y1, x0]] + lx * img[[c, y1, x1]])
}

/// The composited frame's bytes, packed (`4 * width` a row) in the frame's byte order,
/// alpha 255.
pub fn composite(
    bytes: &[u8],
    layout: &FrameLayout,
    output: ArrayView4<f32>,
    mask: &MaskParams,
    background: &Background,
) -> Result<Vec<u8>> {
    layout.validate()?;
    background.validate()?;
    fail_if(bytes.len() < layout.span(), "bytes", || {
        format!("need {} bytes, got {}", layout.span(), bytes.len())
    })?;
    let (h, w) = (layout.height, layout.width);
    let target = MaskLayout::packed(w, h, MaskFormat::R32Float);
    let m = output_to_mask(output, mask, &target)?;
    let blurred = match *background {
        Background::Blur { sigma, downscale } => {
            let small =
                FrameParams::new(h.div_ceil(downscale).max(1), w.div_ceil(downscale).max(1));
            let x = frame_to_input(bytes, layout, &small)?;
            let x = x.index_axis(ndarray::Axis(0), 0).mapv(|v| v as f64);
            let taps = gaussian_taps(sigma / downscale as f32)?;
            Some(blur_axis(&blur_axis(&x, &taps, 2), &taps, 1))
        }
        Background::Tint { .. } => None,
    };
    let order = |c: usize| match layout.format {
        PixelFormat::Rgba8 => c,
        PixelFormat::Bgra8 => 2 - c,
    };
    let mut out = vec![255u8; 4 * w * h];
    for y in 0..h {
        for x in 0..w {
            let alpha = (m[[y, x]] as f64).clamp(0.0, 1.0);
            for c in 0..3 {
                let fg = bytes[y * layout.bytes_per_row + 4 * x + order(c)] as f64 / 255.0;
                let bg = match background {
                    Background::Blur { .. } => blurred
                        .as_ref()
                        .map_or(fg, |b| bilinear(b, c, (y, x), (h, w))),
                    Background::Tint { color, amount } => {
                        fg + (color[c] as f64 - fg) * *amount as f64
                    }
                };
                let v = bg + (fg - bg) * alpha;
                out[4 * (y * w + x) + order(c)] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
    }
    Ok(out)
}
