//! Reference channel plumbing and elementwise ops, element by element.

use ndarray::{concatenate, Array4, ArrayView1, ArrayView4, Axis};

use crate::error::{fail_if, invalid, Error, Result};
use crate::ops::channel::{ChannelPoolOrder, ParamActivation};
use crate::ops::Activation;

/// Channel shuffle: output channel `j` is input channel `(j mod g) * (C / g) + j / g`.
pub fn channel_shuffle(x: ArrayView4<f32>, groups: usize) -> Result<Array4<f32>> {
    let c = x.shape()[1];
    fail_if(groups == 0 || !c.is_multiple_of(groups), "groups", || {
        format!("{groups} does not divide {c}")
    })?;
    let per = c / groups;
    let mut out = Array4::zeros(x.raw_dim());
    for j in 0..c {
        let src = (j % groups) * per + j / groups;
        out.index_axis_mut(Axis(1), j)
            .assign(&x.index_axis(Axis(1), src));
    }
    Ok(out)
}

/// Concatenation along channels.
pub fn concat(inputs: &[ArrayView4<f32>]) -> Result<Array4<f32>> {
    concatenate(Axis(1), inputs).map_err(|e| invalid("inputs", e.to_string()))
}

/// `x`'s shape as an array.
fn dims(x: &ArrayView4<f32>) -> [usize; 4] {
    let (n, c, h, w) = x.dim();
    [n, c, h, w]
}

/// A typed error naming `name` unless `x` has the shape `expected`.
fn check(name: &'static str, expected: [usize; 4], x: &ArrayView4<f32>) -> Result<()> {
    crate::ops::same_shape(name, expected, dims(x))
}

/// `x`'s batch and channels with 1 x 1 planes: the shape of a per-channel scale.
fn per_channel(x: &ArrayView4<f32>) -> [usize; 4] {
    let [n, c, _, _] = dims(x);
    [n, c, 1, 1]
}

/// `act(a + b)`; `b` must have `a`'s shape.
pub fn add(a: ArrayView4<f32>, b: ArrayView4<f32>, act: Activation) -> Result<Array4<f32>> {
    check("b", dims(&a), &b)?;
    let mut out = a.to_owned();
    out.zip_mut_with(&b, |o, &v| *o = super::activation(act, *o + v));
    Ok(out)
}

/// `act(a * b)`; `b` must have `a`'s shape.
pub fn mul(a: ArrayView4<f32>, b: ArrayView4<f32>, act: Activation) -> Result<Array4<f32>> {
    check("b", dims(&a), &b)?;
    let mut out = a.to_owned();
    out.zip_mut_with(&b, |o, &v| *o = super::activation(act, *o * v));
    Ok(out)
}

/// `c - a * b`, elementwise; `b` and `c` must have `a`'s shape.
pub fn sub_mul(c: ArrayView4<f32>, a: ArrayView4<f32>, b: ArrayView4<f32>) -> Result<Array4<f32>> {
    check("b", dims(&a), &b)?;
    check("c", dims(&a), &c)?;
    let mut out = c.to_owned();
    for (idx, v) in out.indexed_iter_mut() {
        *v -= a[idx] * b[idx];
    }
    Ok(out)
}

/// `a / (b + eps)`, elementwise; `b` must have `a`'s shape.
pub fn div(a: ArrayView4<f32>, b: ArrayView4<f32>, eps: f32) -> Result<Array4<f32>> {
    check("b", dims(&a), &b)?;
    let mut out = a.to_owned();
    out.zip_mut_with(&b, |o, &v| *o /= v + eps);
    Ok(out)
}

/// `a * b + c`, elementwise; `b` and `c` must have `a`'s shape.
pub fn mul_add(a: ArrayView4<f32>, b: ArrayView4<f32>, c: ArrayView4<f32>) -> Result<Array4<f32>> {
    check("b", dims(&a), &b)?;
    check("c", dims(&a), &c)?;
    let mut out = a.to_owned();
    for (idx, v) in out.indexed_iter_mut() {
        *v = *v * b[idx] + c[idx];
    }
    Ok(out)
}

/// `(1 - weight) * start + weight * end`, elementwise; `end` and `weight` must have
/// `start`'s shape.
pub fn blend(
    start: ArrayView4<f32>,
    end: ArrayView4<f32>,
    weight: ArrayView4<f32>,
) -> Result<Array4<f32>> {
    check("end", dims(&start), &end)?;
    check("weight", dims(&start), &weight)?;
    let mut out = start.to_owned();
    for (idx, v) in out.indexed_iter_mut() {
        let z = weight[idx];
        *v = (1.0 - z) * *v + z * end[idx];
    }
    Ok(out)
}

/// `act((1 - t) * start + t * end)` with `t = gate(weight[n, 0, h, w])`: one weight per
/// pixel for every channel; `end` of `start`'s shape, `weight` of `[N, 1, H, W]`.
pub fn blend_spatial(
    start: ArrayView4<f32>,
    end: ArrayView4<f32>,
    weight: ArrayView4<f32>,
    (gate, act): (Activation, Activation),
) -> Result<Array4<f32>> {
    let [n, _, h, w] = dims(&start);
    check("end", dims(&start), &end)?;
    check("weight", [n, 1, h, w], &weight)?;
    let mut out = start.to_owned();
    for ((b, c, y, x), v) in out.indexed_iter_mut() {
        let t = super::activation(gate, weight[[b, 0, y, x]]);
        *v = super::activation(act, (1.0 - t) * *v + t * end[[b, c, y, x]]);
    }
    Ok(out)
}

/// `a + gate(s) * b`, elementwise; `b` and `s` of `a`'s shape.
pub fn add_gated(
    a: ArrayView4<f32>,
    b: ArrayView4<f32>,
    s: ArrayView4<f32>,
    gate: Activation,
) -> Result<Array4<f32>> {
    check("b", dims(&a), &b)?;
    check("s", dims(&a), &s)?;
    let mut out = a.to_owned();
    for (idx, v) in out.indexed_iter_mut() {
        *v += super::activation(gate, s[idx]) * b[idx];
    }
    Ok(out)
}

/// `(1 - gate(s)) * a + b`, elementwise; `b` and `s` of `a`'s shape.
pub fn add_complement_gated(
    a: ArrayView4<f32>,
    b: ArrayView4<f32>,
    s: ArrayView4<f32>,
    gate: Activation,
) -> Result<Array4<f32>> {
    check("b", dims(&a), &b)?;
    check("s", dims(&a), &s)?;
    let mut out = a.to_owned();
    for (idx, v) in out.indexed_iter_mut() {
        *v = (1.0 - super::activation(gate, s[idx])) * *v + b[idx];
    }
    Ok(out)
}

/// `act(sum_c a[n, c, h, w] * b[n, c, h, w])` as an `[N, 1, H, W]` map; `b` of `a`'s
/// shape.
pub fn channel_dot(a: ArrayView4<f32>, b: ArrayView4<f32>, act: Activation) -> Result<Array4<f32>> {
    check("b", dims(&a), &b)?;
    let [n, c, h, w] = dims(&a);
    let mut out = Array4::zeros([n, 1, h, w]);
    for s in 0..n {
        for y in 0..h {
            for x in 0..w {
                let mut sum = 0.0f64;
                for ch in 0..c {
                    sum += a[[s, ch, y, x]] as f64 * b[[s, ch, y, x]] as f64;
                }
                out[[s, 0, y, x]] = super::activation(act, sum as f32);
            }
        }
    }
    Ok(out)
}

/// `act(x)`.
pub fn activation(x: ArrayView4<f32>, act: Activation) -> Array4<f32> {
    x.mapv(|v| super::activation(act, v))
}

/// `x[n, c, h, w] * gate(s[n, c])` for `s` of shape `[N, C, 1, 1]`.
pub fn scale_channels(
    x: ArrayView4<f32>,
    s: ArrayView4<f32>,
    gate: Activation,
) -> Result<Array4<f32>> {
    check("scale", per_channel(&x), &s)?;
    let mut out = x.to_owned();
    for ((n, c, _, _), v) in out.indexed_iter_mut() {
        *v *= super::activation(gate, s[[n, c, 0, 0]]);
    }
    Ok(out)
}

/// `x[n, c, h, w] * gate(s[n, c]) + branch[n, c, h, w]` for `s` of shape `[N, C, 1, 1]`
/// and `branch` of `x`'s shape.
pub fn scale_channels_add(
    x: ArrayView4<f32>,
    s: ArrayView4<f32>,
    gate: Activation,
    branch: ArrayView4<f32>,
) -> Result<Array4<f32>> {
    check("scale", per_channel(&x), &s)?;
    check("branch", dims(&x), &branch)?;
    let mut out = x.to_owned();
    for ((n, c, h, w), v) in out.indexed_iter_mut() {
        *v = *v * super::activation(gate, s[[n, c, 0, 0]]) + branch[[n, c, h, w]];
    }
    Ok(out)
}

/// `end * t + start * (1 - t)` with `t = gate(s[n, c, 0, 0])`: `torch.lerp` with one
/// weight per channel; `end` of `start`'s shape, `s` of shape `[N, C, 1, 1]`.
pub fn lerp_channels(
    start: ArrayView4<f32>,
    end: ArrayView4<f32>,
    s: ArrayView4<f32>,
    gate: Activation,
) -> Result<Array4<f32>> {
    check("end", dims(&start), &end)?;
    check("scale", per_channel(&start), &s)?;
    let mut out = start.to_owned();
    for ((n, c, h, w), v) in out.indexed_iter_mut() {
        let t = super::activation(gate, s[[n, c, 0, 0]]);
        *v = end[[n, c, h, w]] * t + *v * (1.0 - t);
    }
    Ok(out)
}

/// `act(x[n, c, h, w] + s[n, c, 0, 0])` for `s` of shape `[N, C, 1, 1]`.
pub fn add_channels(
    x: ArrayView4<f32>,
    s: ArrayView4<f32>,
    act: Activation,
) -> Result<Array4<f32>> {
    check("scale", per_channel(&x), &s)?;
    let mut out = x.to_owned();
    for ((n, c, _, _), v) in out.indexed_iter_mut() {
        *v = super::activation(act, *v + s[[n, c, 0, 0]]);
    }
    Ok(out)
}

/// `act(x[n, c, h, w] + b[0, c, h, w])` for `b` of shape `[1, C, H, W]`.
pub fn add_broadcast(
    x: ArrayView4<f32>,
    b: ArrayView4<f32>,
    act: Activation,
) -> Result<Array4<f32>> {
    let [_, c, h, w] = dims(&x);
    check("b", [1, c, h, w], &b)?;
    let mut out = x.to_owned();
    for ((_, c, h, w), v) in out.indexed_iter_mut() {
        *v = super::activation(act, *v + b[[0, c, h, w]]);
    }
    Ok(out)
}

/// `x[n, c, h, w] * gate(s[n, 0, h, w])` for `s` of shape `[N, 1, H, W]`.
pub fn scale_spatial(
    x: ArrayView4<f32>,
    s: ArrayView4<f32>,
    gate: Activation,
) -> Result<Array4<f32>> {
    let [n, _, h, w] = dims(&x);
    check("scale", [n, 1, h, w], &s)?;
    let mut out = x.to_owned();
    for ((n, _, h, w), v) in out.indexed_iter_mut() {
        *v *= super::activation(gate, s[[n, 0, h, w]]);
    }
    Ok(out)
}

/// Highway: `h * t + x * (1 - t)` with `t = sigmoid(t_logits)`; `h` and `t_logits` of
/// `x`'s shape.
pub fn highway(
    x: ArrayView4<f32>,
    h: ArrayView4<f32>,
    t_logits: ArrayView4<f32>,
) -> Result<Array4<f32>> {
    check("h", dims(&x), &h)?;
    check("t_logits", dims(&x), &t_logits)?;
    let mut out = x.to_owned();
    for (idx, v) in out.indexed_iter_mut() {
        let t = super::activation(Activation::Sigmoid, t_logits[idx]);
        *v = h[idx] * t + *v * (1.0 - t);
    }
    Ok(out)
}

/// Residual attention: `(1 + mask) * f + x`; `f` and `mask` of `x`'s shape.
pub fn residual_attention(
    x: ArrayView4<f32>,
    f: ArrayView4<f32>,
    mask: ArrayView4<f32>,
) -> Result<Array4<f32>> {
    check("f", dims(&x), &f)?;
    check("mask", dims(&x), &mask)?;
    let mut out = x.to_owned();
    for (idx, v) in out.indexed_iter_mut() {
        *v += (1.0 + mask[idx]) * f[idx];
    }
    Ok(out)
}

/// A typed error naming `input` unless `x` has channels to reduce over.
fn check_has_channels(x: &ArrayView4<f32>) -> Result<()> {
    fail_if(x.dim().1 == 0, "input", || {
        format!("needs at least 1 channel to reduce over, got {:?}", dims(x))
    })
}

/// Per-pixel mean and maximum over channels as two channels, in `order`; `x` needs at
/// least one channel.
pub fn channel_pool(x: ArrayView4<f32>, order: ChannelPoolOrder) -> Result<Array4<f32>> {
    check_has_channels(&x)?;
    let [n, c, h, w] = dims(&x);
    let (mean_at, max_at) = match order {
        ChannelPoolOrder::MeanMax => (0, 1),
        ChannelPoolOrder::MaxMean => (1, 0),
    };
    let mut out = Array4::zeros([n, 2, h, w]);
    for b in 0..n {
        for y in 0..h {
            for xx in 0..w {
                let mut best = f32::NEG_INFINITY;
                let mut sum = 0.0f64;
                for ch in 0..c {
                    let v = x[[b, ch, y, xx]];
                    if v > best || v.is_nan() {
                        best = v;
                    }
                    sum += v as f64;
                }
                out[[b, max_at, y, xx]] = best;
                out[[b, mean_at, y, xx]] = (sum / c as f64) as f32;
            }
        }
    }
    Ok(out)
}

/// An activation with parameters, element by element from PyTorch's formulas (the
/// exponentials in f64, rounded once).
pub fn activation_with(x: ArrayView4<f32>, act: ParamActivation) -> Result<Array4<f32>> {
    act.validate()?;
    Ok(x.mapv(|v| param_activation(act, v)))
}

/// One value of an activation with parameters (PyTorch's formulas, the exponentials in
/// f64, rounded once); the parameters are not checked.
pub fn param_activation(act: ParamActivation, v: f32) -> f32 {
    match act {
        ParamActivation::LeakyRelu { negative_slope } => {
            if v >= 0.0 {
                v
            } else {
                negative_slope * v
            }
        }
        ParamActivation::Elu { alpha } => {
            if v > 0.0 {
                v
            } else {
                (alpha as f64 * (v as f64).exp_m1()) as f32
            }
        }
        // NaN stays NaN (f32::clamp keeps it).
        ParamActivation::Hardtanh { min_val, max_val } => v.clamp(min_val, max_val),
        ParamActivation::Softplus { beta, threshold } => {
            let z = beta as f64 * v as f64;
            if z > threshold as f64 {
                v
            } else {
                (z.exp().ln_1p() / beta as f64) as f32
            }
        }
    }
}

/// PReLU: `x >= 0 ? x : weight[c] * x`, `weight` one slope or one per channel.
pub fn prelu(x: ArrayView4<f32>, weight: ArrayView1<f32>) -> Result<Array4<f32>> {
    let c = x.shape()[1];
    if weight.len() != 1 && weight.len() != c {
        return Err(Error::ShapeMismatch {
            name: "weight",
            expected: vec![c],
            actual: vec![weight.len()],
        });
    }
    let mut out = x.to_owned();
    for ((_, ch, _, _), v) in out.indexed_iter_mut() {
        let slope = if weight.len() == 1 {
            weight[0]
        } else {
            weight[ch]
        };
        if *v < 0.0 {
            *v *= slope;
        }
    }
    Ok(out)
}

/// The maximum of a pixel's channels (NaN if any is NaN) and the channel where it first
/// occurs (the first NaN's).
fn channel_max(x: ArrayView4<f32>, (n, h, w): (usize, usize, usize)) -> (f32, usize) {
    let mut best = (x[[n, 0, h, w]], 0);
    for c in 1..x.shape()[1] {
        let v = x[[n, c, h, w]];
        if !best.0.is_nan() && (v > best.0 || v.is_nan()) {
            best = (v, c);
        }
    }
    best
}

/// `torch.softmax(x, dim=1)` (`log = false`) or `torch.log_softmax(x, dim=1)`, in f64 per
/// pixel after subtracting the maximum; `x` needs at least one channel.
pub fn softmax(x: ArrayView4<f32>, log: bool) -> Result<Array4<f32>> {
    check_has_channels(&x)?;
    let s = x.shape();
    let mut out = Array4::<f32>::zeros((s[0], s[1], s[2], s[3]));
    for n in 0..s[0] {
        for h in 0..s[2] {
            for w in 0..s[3] {
                let m = channel_max(x, (n, h, w)).0 as f64;
                let sum: f64 = (0..s[1]).map(|c| (x[[n, c, h, w]] as f64 - m).exp()).sum();
                for c in 0..s[1] {
                    let d = x[[n, c, h, w]] as f64 - m;
                    out[[n, c, h, w]] = if log { d - sum.ln() } else { d.exp() / sum } as f32;
                }
            }
        }
    }
    Ok(out)
}

/// `x.argmax(dim=1, keepdim=True)`: the channel of each pixel's first maximum (its first
/// NaN's if it has one), `[N, 1, H, W]`; `x` needs at least one channel.
pub fn argmax(x: ArrayView4<f32>) -> Result<Array4<i64>> {
    check_has_channels(&x)?;
    let s = x.shape();
    Ok(Array4::from_shape_fn(
        (s[0], 1, s[2], s[3]),
        |(n, _, h, w)| channel_max(x, (n, h, w)).1 as i64,
    ))
}

/// torchvision's `LayerNorm2d`: each pixel's channels standardised (biased variance, in
/// f64) with `eps`, then `gamma[c] * x_hat + beta[c]`; `gamma` and `beta` must have one
/// value per channel.
pub fn layer_norm_2d(
    x: ArrayView4<f32>,
    eps: f32,
    gamma: ArrayView1<f32>,
    beta: ArrayView1<f32>,
) -> Result<Array4<f32>> {
    let s = x.shape();
    super::check_lengths(&[("weight", gamma.len()), ("bias", beta.len())], s[1])?;
    let mut out = Array4::<f32>::zeros((s[0], s[1], s[2], s[3]));
    for n in 0..s[0] {
        for h in 0..s[2] {
            for w in 0..s[3] {
                let v: Vec<f64> = (0..s[1]).map(|c| x[[n, c, h, w]] as f64).collect();
                let mean = v.iter().sum::<f64>() / v.len() as f64;
                let var = v.iter().map(|a| (a - mean) * (a - mean)).sum::<f64>() / v.len() as f64;
                let inv = 1.0 / (var + eps as f64).sqrt();
                for (c, a) in v.iter().enumerate() {
                    let y = (a - mean) * inv * gamma[c] as f64 + beta[c] as f64;
                    out[[n, c, h, w]] = y as f32;
                }
            }
        }
    }
    Ok(out)
}
