//! The reference crop and padding, element by element.

use ndarray::{Array4, ArrayView4};

use crate::error::Result;
use crate::ops::copy::{CropParams2d, Pad2dParams, PadMode};

/// `x[..., top:top + h, left:left + w]`.
pub fn crop(params: &CropParams2d, x: ArrayView4<f32>) -> Result<Array4<f32>> {
    let s: [usize; 4] = x.shape().try_into().expect("4-D");
    let out = params.output_shape(s)?;
    let (top, left) = params.offset;
    Ok(Array4::from_shape_fn(out, |(n, c, i, j)| {
        x[[n, c, i + top, j + left]]
    }))
}

/// `F.pad` of the last two dimensions: output `(oy, ox)` reads input
/// `(oy - top, ox - left)`; outside the input, constant mode writes the value, reflect
/// mirrors about the edge (without repeating it), replicate repeats the edge, and
/// circular wraps within the rows and columns left after negative pads crop.
pub fn pad2d(params: &Pad2dParams, x: ArrayView4<f32>) -> Result<Array4<f32>> {
    let s: [usize; 4] = x.shape().try_into().expect("4-D");
    let out = params.output_shape(s)?;
    let (l, r, t, b) = params.pad;
    let source = |o: usize, before: i64, after: i64, n: usize| -> Option<usize> {
        let n = n as i64;
        let i = o as i64 - before;
        let mapped = match params.mode {
            PadMode::Constant => i,
            PadMode::Reflect if i < 0 => -i,
            PadMode::Reflect if i >= n => 2 * n - 2 - i,
            PadMode::Reflect => i,
            PadMode::Replicate => i.clamp(0, n - 1),
            PadMode::Circular => {
                // The window kept after negative pads, wrapped from where it starts.
                let lo = (-before).max(0);
                let kept = n - lo - (-after).max(0);
                let at = before.max(0);
                lo + (o as i64 - at).rem_euclid(kept)
            }
        };
        (0..n).contains(&mapped).then_some(mapped as usize)
    };
    Ok(Array4::from_shape_fn(out, |(n, c, oy, ox)| {
        match (source(oy, t, b, s[2]), source(ox, l, r, s[3])) {
            (Some(iy), Some(ix)) => x[[n, c, iy, ix]],
            _ => params.value,
        }
    }))
}
