//! The reference crop, element by element.

use ndarray::{Array4, ArrayView4};

use crate::error::Result;
use crate::ops::copy::CropParams2d;

/// `x[..., top:top + h, left:left + w]`.
pub fn crop(params: &CropParams2d, x: ArrayView4<f32>) -> Result<Array4<f32>> {
    let s: [usize; 4] = x.shape().try_into().expect("4-D");
    let out = params.output_shape(s)?;
    let (top, left) = params.offset;
    Ok(Array4::from_shape_fn(out, |(n, c, i, j)| {
        x[[n, c, i + top, j + left]]
    }))
}
