//! Reference normalisations in `f64`, from the textbook formulas: mean, then the
//! population variance as the mean squared deviation; batch norm backward exactly as the
//! seed writes it (section 3.1.2).

use ndarray::{Array1, Array4, ArrayView1, ArrayView4, ArrayViewD};

use super::check_lengths;
use crate::error::{Error, Result};
use crate::ops::norm::{
    BatchNorm2dParams, GlobalResponseNormParams, GroupNormParams, InstanceNorm2dParams,
    LayerNormParams,
};

/// Mean and population variance of a list of values.
fn mean_var(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    (mean, var)
}

/// `v -> (v - mean) / sqrt(var + eps)` with the mean and population variance of `values`.
fn standardizer<'a>(values: impl IntoIterator<Item = &'a f32>, eps: f32) -> impl Fn(f32) -> f64 {
    let values: Vec<f64> = values.into_iter().map(|&v| v as f64).collect();
    let (mean, var) = mean_var(&values);
    let sd = (var + eps as f64).sqrt();
    move |v| (v as f64 - mean) / sd
}

/// [`check_lengths`] of the affine and the running statistics.
fn check_affine_and_running(
    (gamma, beta): (&ArrayView1<f32>, &ArrayView1<f32>),
    (running_mean, running_var): (&ArrayView1<f32>, &ArrayView1<f32>),
    channels: usize,
) -> Result<()> {
    let vectors = [
        ("gamma", gamma.len()),
        ("beta", beta.len()),
        ("running_mean", running_mean.len()),
        ("running_var", running_var.len()),
    ];
    check_lengths(&vectors, channels)
}

fn channel_values(x: &ArrayView4<f32>, c: usize) -> Vec<f64> {
    let mut v = Vec::new();
    for n in 0..x.shape()[0] {
        for h in 0..x.shape()[2] {
            for w in 0..x.shape()[3] {
                v.push(x[[n, c, h, w]] as f64);
            }
        }
    }
    v
}

/// Result of a training-mode batch norm forward.
#[derive(Debug, Clone)]
pub struct BatchNormTrain {
    /// Normalised output.
    pub output: Array4<f32>,
    /// Batch mean per channel.
    pub mean: Array1<f32>,
    /// Batch (biased) variance per channel.
    pub var: Array1<f32>,
    /// Updated running mean.
    pub running_mean: Array1<f32>,
    /// Updated running variance (blended with the unbiased batch variance).
    pub running_var: Array1<f32>,
}

/// Training-mode batch norm: `y = gamma * (x - mean) / sqrt(var + eps) + beta` with the
/// batch statistics over `(N, H, W)`; `running = (1 - momentum) * running + momentum *
/// batch`, the variance unbiased (`n / (n - 1)`). `momentum` is the factor to use (for
/// PyTorch's `momentum=None`, `1 / num_batches_tracked`).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_train(
    params: &BatchNorm2dParams,
    x: ArrayView4<f32>,
    gamma: ArrayView1<f32>,
    beta: ArrayView1<f32>,
    running_mean: ArrayView1<f32>,
    running_var: ArrayView1<f32>,
    momentum: f32,
) -> Result<BatchNormTrain> {
    let shape: [usize; 4] = x.shape().try_into().expect("4-D");
    params.output_shape(shape)?;
    crate::error::fail_if(!momentum.is_finite(), "momentum", || {
        format!("must be finite, got {momentum}")
    })?;
    let channels = shape[1];
    check_affine_and_running((&gamma, &beta), (&running_mean, &running_var), channels)?;
    let mut out = Array4::<f32>::zeros(shape);
    let (mut mean, mut var) = (Array1::zeros(channels), Array1::zeros(channels));
    let (mut rm, mut rv) = (running_mean.to_owned(), running_var.to_owned());
    for c in 0..channels {
        let values = channel_values(&x, c);
        let (m, v) = mean_var(&values);
        let count = values.len() as f64;
        for n in 0..shape[0] {
            for h in 0..shape[2] {
                for w in 0..shape[3] {
                    let xhat = (x[[n, c, h, w]] as f64 - m) / (v + params.eps as f64).sqrt();
                    out[[n, c, h, w]] = (gamma[c] as f64 * xhat + beta[c] as f64) as f32;
                }
            }
        }
        mean[c] = m as f32;
        var[c] = v as f32;
        let unbiased = if count > 1.0 {
            v * count / (count - 1.0)
        } else {
            v
        };
        let mo = momentum as f64;
        rm[c] = ((1.0 - mo) * running_mean[c] as f64 + mo * m) as f32;
        rv[c] = ((1.0 - mo) * running_var[c] as f64 + mo * unbiased) as f32;
    }
    Ok(BatchNormTrain {
        output: out,
        mean,
        var,
        running_mean: rm,
        running_var: rv,
    })
}

/// Per-channel normalisation with given statistics (batch norm inference, and the apply
/// step shared by the other references): `gamma * (x - mean) / sqrt(var + eps) + beta`.
pub fn batch_norm_eval(
    params: &BatchNorm2dParams,
    x: ArrayView4<f32>,
    gamma: ArrayView1<f32>,
    beta: ArrayView1<f32>,
    running_mean: ArrayView1<f32>,
    running_var: ArrayView1<f32>,
) -> Result<Array4<f32>> {
    let shape: [usize; 4] = x.shape().try_into().expect("4-D");
    params.output_shape(shape)?;
    check_affine_and_running((&gamma, &beta), (&running_mean, &running_var), shape[1])?;
    let mut out = Array4::<f32>::zeros(shape);
    for ((n, c, h, w), &v) in x.indexed_iter() {
        let xhat = (v as f64 - running_mean[c] as f64)
            / (running_var[c] as f64 + params.eps as f64).sqrt();
        out[[n, c, h, w]] = (gamma[c] as f64 * xhat + beta[c] as f64) as f32;
    }
    Ok(out)
}

/// Batch norm backward (the seed's formulas): with `M = N * H * W` and
/// `x_hat = (x - mean) / sqrt(var + eps)`,
/// `dbeta = sum(dy)`, `dgamma = sum(dy * x_hat)`,
/// `dx = gamma / (M * sqrt(var + eps)) * (M * dy - dbeta - x_hat * dgamma)`.
/// Returns `(dx, dgamma, dbeta)`.
pub fn batch_norm_backward(
    params: &BatchNorm2dParams,
    x: ArrayView4<f32>,
    dy: ArrayView4<f32>,
    gamma: ArrayView1<f32>,
) -> Result<(Array4<f32>, Array1<f32>, Array1<f32>)> {
    let shape: [usize; 4] = x.shape().try_into().expect("4-D");
    params.output_shape(shape)?;
    if dy.shape() != x.shape() {
        return Err(Error::ShapeMismatch {
            name: "grad_output",
            expected: shape.to_vec(),
            actual: dy.shape().to_vec(),
        });
    }
    let channels = shape[1];
    check_lengths(&[("gamma", gamma.len())], channels)?;
    let mut dx = Array4::<f32>::zeros(shape);
    let (mut dgamma, mut dbeta) = (Array1::zeros(channels), Array1::zeros(channels));
    for c in 0..channels {
        let values = channel_values(&x, c);
        let (mean, var) = mean_var(&values);
        let m = values.len() as f64;
        let invstd = 1.0 / (var + params.eps as f64).sqrt();
        let (mut sum_dy, mut sum_dy_xhat) = (0.0f64, 0.0f64);
        for n in 0..shape[0] {
            for h in 0..shape[2] {
                for w in 0..shape[3] {
                    let g = dy[[n, c, h, w]] as f64;
                    sum_dy += g;
                    sum_dy_xhat += g * (x[[n, c, h, w]] as f64 - mean) * invstd;
                }
            }
        }
        for n in 0..shape[0] {
            for h in 0..shape[2] {
                for w in 0..shape[3] {
                    let xhat = (x[[n, c, h, w]] as f64 - mean) * invstd;
                    let g = dy[[n, c, h, w]] as f64;
                    dx[[n, c, h, w]] = (gamma[c] as f64 * invstd / m
                        * (m * g - sum_dy - xhat * sum_dy_xhat))
                        as f32;
                }
            }
        }
        dgamma[c] = sum_dy_xhat as f32;
        dbeta[c] = sum_dy as f32;
    }
    Ok((dx, dgamma, dbeta))
}

/// Group norm: statistics over each sample's `(C / G, H, W)` group, per-channel affine.
pub fn group_norm(
    params: &GroupNormParams,
    x: ArrayView4<f32>,
    gamma: ArrayView1<f32>,
    beta: ArrayView1<f32>,
) -> Result<Array4<f32>> {
    let shape: [usize; 4] = x.shape().try_into().expect("4-D");
    params.output_shape(shape)?;
    check_lengths(&[("gamma", gamma.len()), ("beta", beta.len())], shape[1])?;
    let cpg = shape[1] / params.num_groups;
    let mut out = Array4::<f32>::zeros(shape);
    for n in 0..shape[0] {
        for g in 0..params.num_groups {
            let block = x.slice(ndarray::s![n, g * cpg..(g + 1) * cpg, .., ..]);
            let xhat = standardizer(block.iter(), params.eps);
            for ((c, h, w), &v) in block.indexed_iter() {
                let ch = g * cpg + c;
                out[[n, ch, h, w]] = (gamma[ch] as f64 * xhat(v) + beta[ch] as f64) as f32;
            }
        }
    }
    Ok(out)
}

/// Layer norm over the trailing `normalized_shape` dimensions (`(C, H, W)` per sample,
/// `(H, W)` per plane or `(W,)` per row) with an elementwise affine of that shape.
pub fn layer_norm(
    params: &LayerNormParams,
    x: ArrayView4<f32>,
    gamma: ArrayViewD<f32>,
    beta: ArrayViewD<f32>,
) -> Result<Array4<f32>> {
    let shape: [usize; 4] = x.shape().try_into().expect("4-D");
    params.output_shape(shape)?;
    let dims = params.normalized_shape.dims();
    // The leading dimensions index the segments; the trailing ones, within a segment.
    let lead = 4 - dims.len();
    let mut out = Array4::<f32>::zeros(shape);
    let segments: usize = shape[..lead].iter().product();
    let seg_len: usize = dims.iter().product();
    for (name, actual) in [("gamma", gamma.shape()), ("beta", beta.shape())] {
        if actual != dims {
            return Err(Error::ShapeMismatch {
                name,
                expected: dims.to_vec(),
                actual: actual.to_vec(),
            });
        }
    }
    let flat_x: Vec<f32> = x.iter().copied().collect();
    let flat_g: Vec<f32> = gamma.iter().copied().collect();
    let flat_b: Vec<f32> = beta.iter().copied().collect();
    let flat_out = out.as_slice_mut().expect("standard layout");
    for seg in 0..segments {
        let values = &flat_x[seg * seg_len..(seg + 1) * seg_len];
        let xhat = standardizer(values.iter(), params.eps);
        for (i, &v) in values.iter().enumerate() {
            let (g, b) = (flat_g[i] as f64, flat_b[i] as f64);
            flat_out[seg * seg_len + i] = (g * xhat(v) + b) as f32;
        }
    }
    Ok(out)
}

/// Instance norm: each `(n, c)` plane on its own, per-channel affine.
pub fn instance_norm(
    params: &InstanceNorm2dParams,
    x: ArrayView4<f32>,
    gamma: ArrayView1<f32>,
    beta: ArrayView1<f32>,
) -> Result<Array4<f32>> {
    let shape: [usize; 4] = x.shape().try_into().expect("4-D");
    params.output_shape(shape)?;
    check_lengths(&[("gamma", gamma.len()), ("beta", beta.len())], shape[1])?;
    let mut out = Array4::<f32>::zeros(shape);
    for n in 0..shape[0] {
        for c in 0..shape[1] {
            let plane = x.slice(ndarray::s![n, c, .., ..]);
            let xhat = standardizer(plane.iter(), params.eps);
            for ((h, w), &v) in plane.indexed_iter() {
                out[[n, c, h, w]] = (gamma[c] as f64 * xhat(v) + beta[c] as f64) as f32;
            }
        }
    }
    Ok(out)
}

/// Instance norm with running statistics (`track_running_stats`, PyTorch's `eval()`):
/// each channel normalised by its running mean and variance, per-channel affine.
pub fn instance_norm_running(
    params: &InstanceNorm2dParams,
    x: ArrayView4<f32>,
    (gamma, beta): (ArrayView1<f32>, ArrayView1<f32>),
    (running_mean, running_var): (ArrayView1<f32>, ArrayView1<f32>),
) -> Result<Array4<f32>> {
    let shape: [usize; 4] = x.shape().try_into().expect("4-D");
    params.output_shape(shape)?;
    check_affine_and_running((&gamma, &beta), (&running_mean, &running_var), shape[1])?;
    let mut out = Array4::<f32>::zeros(shape);
    for ((n, c, h, w), &v) in x.indexed_iter() {
        let mean = running_mean[c] as f64;
        let std = (running_var[c] as f64 + params.eps as f64).sqrt();
        let xhat = (v as f64 - mean) / std;
        out[[n, c, h, w]] = (gamma[c] as f64 * xhat + beta[c] as f64) as f32;
    }
    Ok(out)
}

/// AdaIN: `sigma_s * (x - mu_c) / sigma_c + mu_s` per `(n, c)`, population variances,
/// `sigma = sqrt(var + eps)`.
pub fn adain(content: ArrayView4<f32>, style: ArrayView4<f32>, eps: f32) -> Result<Array4<f32>> {
    crate::ops::norm::check_eps(eps)?;
    let shape: [usize; 4] = content.shape().try_into().expect("4-D");
    crate::gpu::check_dims("content", &shape)?;
    let style_shape: [usize; 4] = style.shape().try_into().expect("4-D");
    crate::gpu::check_dims("style", &style_shape)?;
    if style.shape()[..2] != shape[..2] {
        return Err(Error::ShapeMismatch {
            name: "style",
            expected: vec![shape[0], shape[1], style.shape()[2], style.shape()[3]],
            actual: style.shape().to_vec(),
        });
    }
    let mut out = Array4::<f32>::zeros(shape);
    for n in 0..shape[0] {
        for c in 0..shape[1] {
            let cv: Vec<f64> = content
                .slice(ndarray::s![n, c, .., ..])
                .iter()
                .map(|&v| v as f64)
                .collect();
            let sv: Vec<f64> = style
                .slice(ndarray::s![n, c, .., ..])
                .iter()
                .map(|&v| v as f64)
                .collect();
            let (mc, vc) = mean_var(&cv);
            let (ms, vs) = mean_var(&sv);
            let (sc, ss) = ((vc + eps as f64).sqrt(), (vs + eps as f64).sqrt());
            for h in 0..shape[2] {
                for w in 0..shape[3] {
                    let v = content[[n, c, h, w]] as f64;
                    out[[n, c, h, w]] = (ss * (v - mc) / sc + ms) as f32;
                }
            }
        }
    }
    Ok(out)
}

/// The scale of global response normalisation, shape `[N, C, 1, 1]`:
/// `1 + weight[c] * g[n, c] / (m[n] + eps)`, `g` the L2 norm of each plane and `m[n]` the
/// mean of sample `n`'s norms (see [`global_response_norm`]).
pub fn global_response_norm_scale(
    params: &GlobalResponseNormParams,
    x: ArrayView4<f32>,
    weight: ArrayView1<f32>,
) -> Result<Array4<f32>> {
    let [n, c, h, w] = params.output_shape(x.dim().into())?;
    check_lengths(&[("weight", weight.len())], c)?;
    let mut scale = Array4::zeros((n, c, 1, 1));
    for b in 0..n {
        // x.norm(p=2, dim=(2, 3))
        let norms: Vec<f64> = (0..c)
            .map(|ch| {
                let mut squares = 0.0f64;
                for y in 0..h {
                    for xx in 0..w {
                        let v = x[[b, ch, y, xx]] as f64;
                        squares += v * v;
                    }
                }
                squares.sqrt()
            })
            .collect();
        let mean = norms.iter().sum::<f64>() / c as f64;
        for ch in 0..c {
            let x_n = norms[ch] / (mean + params.eps as f64);
            scale[[b, ch, 0, 0]] = (1.0 + weight[ch] as f64 * x_n) as f32;
        }
    }
    Ok(scale)
}

/// timm's `GlobalResponseNorm`: `x + bias + weight * x * x_n`, `x_n = g / (mean_c g +
/// eps)`, `g` the L2 norm of each `[n, c]` plane, the mean over a sample's channels.
pub fn global_response_norm(
    params: &GlobalResponseNormParams,
    x: ArrayView4<f32>,
    weight: ArrayView1<f32>,
    bias: ArrayView1<f32>,
) -> Result<Array4<f32>> {
    let scale = global_response_norm_scale(params, x, weight)?;
    check_lengths(&[("bias", bias.len())], params.channels)?;
    let mut y = x.to_owned();
    for ((b, ch, _, _), v) in y.indexed_iter_mut() {
        // x + bias + weight * x * x_n = x * (1 + weight * x_n) + bias
        *v = (*v as f64 * scale[[b, ch, 0, 0]] as f64 + bias[ch] as f64) as f32;
    }
    Ok(y)
}
