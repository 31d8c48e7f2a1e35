//! Reference transposed convolution, written as the scatter it is defined by: every input
//! pixel `x[n, ci, iy, ix]` adds `x * w[ci, co, ky, kx]` to output
//! `(iy * sH - pH + ky * dH, ix * sW - pW + kx * dW)` of every output channel `co` of its
//! group; then bias and activation.

use ndarray::{Array4, ArrayView1, ArrayView4};

use crate::error::Result;
use crate::ops::conv_transpose::ConvTranspose2dParams;

/// Transposed convolution of `input` with PyTorch-layout `weight` `[C_in, C_out/g, kH, kW]`.
pub fn conv_transpose2d(
    params: &ConvTranspose2dParams,
    input: ArrayView4<f32>,
    weight: ArrayView4<f32>,
    bias: Option<ArrayView1<f32>>,
) -> Result<Array4<f32>> {
    let (in_shape, out_shape) = super::conv_shapes(params, &input, &weight, &bias)?;
    let [batch, c_in, height, width] = in_shape;
    let [_, _, out_h, out_w] = out_shape;
    let (cin_pg, cout_pg) = (params.in_per_group(), params.out_per_group());
    let (kh, kw) = params.kernel_size;
    let mut sum = Array4::<f64>::zeros(out_shape);
    for n in 0..batch {
        for ci in 0..c_in {
            let group = ci / cin_pg;
            for iy in 0..height {
                for ix in 0..width {
                    let xv = input[[n, ci, iy, ix]] as f64;
                    for co_local in 0..cout_pg {
                        let co = group * cout_pg + co_local;
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let oy = (iy * params.stride.0 + ky * params.dilation.0) as isize
                                    - params.padding.0 as isize;
                                let ox = (ix * params.stride.1 + kx * params.dilation.1) as isize
                                    - params.padding.1 as isize;
                                if oy < 0 || ox < 0 || oy >= out_h as isize || ox >= out_w as isize
                                {
                                    continue;
                                }
                                sum[[n, co, oy as usize, ox as usize]] +=
                                    xv * weight[[ci, co_local, ky, kx]] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    let mut out = Array4::<f32>::zeros(out_shape);
    for ((n, co, oy, ox), v) in sum.indexed_iter() {
        let b = bias.as_ref().map_or(0.0, |b| b[co] as f64);
        out[[n, co, oy, ox]] =
            super::activations(params.activation, params.param_activation, (v + b) as f32);
    }
    Ok(out)
}
