//! Reference 2-D convolution: `y[n, co, oy, ox] = act(b[co] + sum over ci in co's group,
//! ky, kx of w[co, ci, ky, kx] * x[n, g * C_in/g + ci, oy * sH - pH + ky * dH,
//! ox * sW - pW + kx * dW])`, where an index outside the input reads zero or, for the
//! other padding modes, the mirrored, edge or wrapped-around input.

use ndarray::{Array4, ArrayView1, ArrayView4};

use crate::error::Result;
use crate::ops::conv::{Conv2dParams, DepthwiseSeparableParams, PaddingMode};

/// Where index `i` of an axis of length `len` reads from under `mode` (`None`: zero).
fn source(i: isize, len: usize, mode: PaddingMode) -> Option<usize> {
    let n = len as isize;
    let j = match mode {
        PaddingMode::Zeros => i,
        PaddingMode::Reflect if i < 0 => -i,
        PaddingMode::Reflect if i >= n => 2 * (n - 1) - i,
        PaddingMode::Reflect => i,
        PaddingMode::Replicate => i.clamp(0, n - 1),
        PaddingMode::Circular => i.rem_euclid(n),
    };
    (0..n).contains(&j).then_some(j as usize)
}

/// Convolution of `input` with PyTorch-layout `weight` and optional `bias`.
pub fn conv2d(
    params: &Conv2dParams,
    input: ArrayView4<f32>,
    weight: ArrayView4<f32>,
    bias: Option<ArrayView1<f32>>,
) -> Result<Array4<f32>> {
    let (in_shape, out_shape) = super::conv_shapes(params, &input, &weight, &bias)?;
    let [batch, _, height, width] = in_shape;
    let [_, c_out, out_h, out_w] = out_shape;
    let cin_pg = params.in_per_group();
    let cout_pg = params.out_per_group();
    let (kh, kw) = params.kernel_size;
    let (sh, sw) = params.stride;
    let ((ph, _), (pw, _)) = params.pads();
    let (dh, dw) = params.dilation;
    let mut out = Array4::<f32>::zeros(out_shape);
    for n in 0..batch {
        for co in 0..c_out {
            let group = co / cout_pg;
            for oy in 0..out_h {
                for ox in 0..out_w {
                    let mut sum = 0.0f64;
                    for ci in 0..cin_pg {
                        let c = group * cin_pg + ci;
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * sh + ky * dh) as isize - ph as isize;
                                let ix = (ox * sw + kx * dw) as isize - pw as isize;
                                let mode = params.padding_mode;
                                let (Some(iy), Some(ix)) =
                                    (source(iy, height, mode), source(ix, width, mode))
                                else {
                                    continue;
                                };
                                let xv = input[[n, c, iy, ix]] as f64;
                                sum += xv * weight[[co, ci, ky, kx]] as f64;
                            }
                        }
                    }
                    if let Some(b) = &bias {
                        sum += b[co] as f64;
                    }
                    out[[n, co, oy, ox]] =
                        super::activations(params.activation, params.param_activation, sum as f32);
                }
            }
        }
    }
    Ok(out)
}

/// Depthwise convolution followed by pointwise convolution.
pub fn depthwise_separable(
    params: &DepthwiseSeparableParams,
    input: ArrayView4<f32>,
    depthwise_weight: ArrayView4<f32>,
    depthwise_bias: Option<ArrayView1<f32>>,
    pointwise_weight: ArrayView4<f32>,
    pointwise_bias: Option<ArrayView1<f32>>,
) -> Result<Array4<f32>> {
    params.validate()?;
    let mid = conv2d(&params.depthwise, input, depthwise_weight, depthwise_bias)?;
    conv2d(
        &params.pointwise,
        mid.view(),
        pointwise_weight,
        pointwise_bias,
    )
}
