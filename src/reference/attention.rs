//! Reference attention blocks, composed from the other references: SE as torchvision's
//! `SqueezeExcitation`, ECA, CBAM (channel then spatial attention).

use ndarray::{Array4, ArrayView1, ArrayView4};

use crate::error::{fail_if, Error, Result};
use crate::ops::attention::{CbamParams, SqueezeExcitationParams};
use crate::ops::conv::Conv2dParams;
use crate::ops::pool::GlobalPool;
use crate::ops::Activation;

/// The gate logits `fc2(act(fc1(avgpool(x))))`, shape `[N, C, 1, 1]`.
pub fn excitation(
    params: &SqueezeExcitationParams,
    x: ArrayView4<f32>,
    fc1: (ArrayView4<f32>, ArrayView1<f32>),
    fc2: (ArrayView4<f32>, ArrayView1<f32>),
) -> Result<Array4<f32>> {
    let (c, s) = (params.input_channels, params.squeeze_channels);
    let pooled = super::pool::global_pool(GlobalPool::Avg, x)?;
    let p1 = Conv2dParams::new(c, s, 1).activation(params.activation);
    let h = super::conv::conv2d(&p1, pooled.view(), fc1.0, Some(fc1.1))?;
    super::conv::conv2d(&Conv2dParams::new(s, c, 1), h.view(), fc2.0, Some(fc2.1))
}

/// `x * scale_act(fc2(act(fc1(avgpool(x)))))`.
pub fn squeeze_excitation(
    params: &SqueezeExcitationParams,
    x: ArrayView4<f32>,
    fc1: (ArrayView4<f32>, ArrayView1<f32>),
    fc2: (ArrayView4<f32>, ArrayView1<f32>),
) -> Result<Array4<f32>> {
    let logits = excitation(params, x, fc1, fc2)?;
    super::channel::scale_channels(x, logits.view(), params.scale_activation)
}

/// ECA's gate logits `conv1d_k(avgpool(x))` across channels (zero padding, no bias),
/// shape `[N, C, 1, 1]`.
pub fn eca_logits(x: ArrayView4<f32>, weight: ArrayView1<f32>) -> Result<Array4<f32>> {
    let (n, c, _, _) = x.dim();
    let k = weight.len();
    fail_if(c == 0, "input", || {
        "needs at least 1 channel, got 0".to_string()
    })?;
    fail_if(k.is_multiple_of(2), "weight", || {
        format!("an odd kernel size is needed, got {k} taps")
    })?;
    let pooled = super::pool::global_pool(GlobalPool::Avg, x)?;
    let mut logits = Array4::<f32>::zeros([n, c, 1, 1]);
    for b in 0..n {
        for ch in 0..c {
            let mut sum = 0.0f64;
            for t in 0..k {
                let src = ch as isize + t as isize - (k as isize - 1) / 2;
                if src >= 0 && (src as usize) < c {
                    sum += weight[t] as f64 * pooled[[b, src as usize, 0, 0]] as f64;
                }
            }
            logits[[b, ch, 0, 0]] = sum as f32;
        }
    }
    Ok(logits)
}

/// ECA: `x * sigmoid(conv1d_k(avgpool(x)))` across channels, zero padding, no bias.
pub fn eca(x: ArrayView4<f32>, weight: ArrayView1<f32>) -> Result<Array4<f32>> {
    let logits = eca_logits(x, weight)?;
    super::channel::scale_channels(x, logits.view(), Activation::Sigmoid)
}

/// CBAM: channel attention with a shared MLP over the average and max descriptors, then
/// spatial attention with a k x k convolution over the per-pixel mean and max across
/// channels (in `params.pool_order`). Biases as `params` says.
pub fn cbam(
    params: &CbamParams,
    x: ArrayView4<f32>,
    mlp1: (ArrayView4<f32>, Option<ArrayView1<f32>>),
    mlp2: (ArrayView4<f32>, Option<ArrayView1<f32>>),
    spatial_weight: ArrayView4<f32>,
    spatial_bias: Option<ArrayView1<f32>>,
) -> Result<Array4<f32>> {
    params.validate()?;
    let (n, c, h, w) = x.dim();
    crate::ops::check_channels([n, c, h, w], params.gate_channels)?;
    if params.hidden() == 0 {
        crate::ops::attention::check_empty_mlp(params, mlp1, mlp2)?;
    }
    let [p1, p2] = params.mlp();
    let mlp = |d: &Array4<f32>| -> Result<Array4<f32>> {
        if params.hidden() == 0 {
            // Linear(C, 0) gives an empty vector; Linear(0, C) of it is its bias alone.
            let n = d.shape()[0];
            return Ok(Array4::from_shape_fn(
                [n, params.gate_channels, 1, 1],
                |(_, k, _, _)| mlp2.1.as_ref().map_or(0.0, |b| b[k]),
            ));
        }
        let h = super::conv::conv2d(&p1, d.view(), mlp1.0, mlp1.1)?;
        super::conv::conv2d(&p2, h.view(), mlp2.0, mlp2.1)
    };
    let avg = mlp(&super::pool::global_pool(GlobalPool::Avg, x)?)?;
    let max = mlp(&super::pool::global_pool(GlobalPool::Max, x)?)?;
    let logits = super::channel::add(avg.view(), max.view(), Activation::None)?;
    let x1 = super::channel::scale_channels(x, logits.view(), Activation::Sigmoid)?;
    let pooled = super::channel::channel_pool(x1.view(), params.pool_order)?;
    let s = super::conv::conv2d(
        &params.spatial(),
        pooled.view(),
        spatial_weight,
        spatial_bias,
    )?;
    super::channel::scale_spatial(x1.view(), s.view(), Activation::Sigmoid)
}

/// Selective Kernel attention as timm's `SelectiveKernel` applies it to its paths
/// (`SelectiveKernelAttn` and the weighting after it): the paths `[N, C, H, W]` summed,
/// averaged over each plane, `fc_reduce` (`[A, C, 1, 1]`, no bias), an inference batch
/// norm (`bn`: weight, bias, running mean, running variance; `eps`), ReLU, `fc_select`
/// (`[P * C, A, 1, 1]`, no bias), a softmax across the `P` paths for each channel, and
/// the paths summed with those weights.
pub fn selective_kernel(
    paths: &[ArrayView4<f32>],
    fc_reduce: ArrayView4<f32>,
    bn: [ArrayView1<f32>; 4],
    eps: f32,
    fc_select: ArrayView4<f32>,
) -> Result<Array4<f32>> {
    split_attention(paths, (fc_reduce, None), bn, eps, (fc_select, None))
}

/// Split attention over paths, as timm's `SplitAttn` weighs its radix splits (at
/// cardinality 1) and `SelectiveKernelAttn` its paths: [`selective_kernel`] with optional
/// biases of the two 1x1 convolutions (`fc1`: `[A]`, `fc2`: `[P * C]`).
pub fn split_attention(
    paths: &[ArrayView4<f32>],
    (fc_reduce, reduce_bias): (ArrayView4<f32>, Option<ArrayView1<f32>>),
    bn: [ArrayView1<f32>; 4],
    eps: f32,
    (fc_select, select_bias): (ArrayView4<f32>, Option<ArrayView1<f32>>),
) -> Result<Array4<f32>> {
    let Some(first) = paths.first() else {
        return Err(Error::InvalidParam {
            name: "paths",
            reason: "needs one path at least, got none".into(),
        });
    };
    let (n, c, h, w) = first.dim();
    let shape = |a: &ArrayView4<f32>| a.shape().to_vec();
    for p in paths {
        crate::ops::same_shape("paths", [n, c, h, w], p.dim().into())?;
    }
    let a = fc_reduce.dim().0;
    let p = paths.len();
    let expect = |name, want: Vec<usize>, got: Vec<usize>| -> Result<()> {
        fail_if(want != got, name, || {
            format!("expected shape {want:?}, got {got:?}")
        })
    };
    expect("fc_reduce", vec![a, c, 1, 1], shape(&fc_reduce))?;
    expect("fc_select", vec![p * c, a, 1, 1], shape(&fc_select))?;
    for t in &bn {
        expect("bn", vec![a], t.shape().to_vec())?;
    }
    if let Some(bias) = reduce_bias {
        expect("fc1_bias", vec![a], bias.shape().to_vec())?;
    }
    if let Some(bias) = select_bias {
        expect("fc2_bias", vec![p * c], bias.shape().to_vec())?;
    }
    let reduce_bias = |j: usize| reduce_bias.map_or(0.0, |b| b[j] as f64);
    let select_bias = |k: usize| select_bias.map_or(0.0, |b| b[k] as f64);
    let [gamma, beta, mean, var] = bn;
    let mut out = Array4::zeros((n, c, h, w));
    for b in 0..n {
        // x.sum(1).mean((2, 3))
        let pooled: Vec<f64> = (0..c)
            .map(|ch| {
                let mut s = 0.0f64;
                for path in paths {
                    for y in 0..h {
                        for x in 0..w {
                            s += path[[b, ch, y, x]] as f64;
                        }
                    }
                }
                s / (h * w) as f64
            })
            .collect();
        // fc_reduce, bn, ReLU
        let hidden: Vec<f64> = (0..a)
            .map(|j| {
                let z: f64 = (0..c)
                    .map(|i| fc_reduce[[j, i, 0, 0]] as f64 * pooled[i])
                    .sum::<f64>()
                    + reduce_bias(j);
                let z = (z - mean[j] as f64) / (var[j] as f64 + eps as f64).sqrt()
                    * gamma[j] as f64
                    + beta[j] as f64;
                z.max(0.0)
            })
            .collect();
        for ch in 0..c {
            // fc_select, viewed as [P, C]: path k's logit of channel ch is row k * C + ch.
            let logits: Vec<f64> = (0..p)
                .map(|k| {
                    (0..a)
                        .map(|j| fc_select[[k * c + ch, j, 0, 0]] as f64 * hidden[j])
                        .sum::<f64>()
                        + select_bias(k * c + ch)
                })
                .collect();
            let top = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let exps: Vec<f64> = logits.iter().map(|l| (l - top).exp()).collect();
            let total: f64 = exps.iter().sum();
            for y in 0..h {
                for x in 0..w {
                    let v: f64 = paths
                        .iter()
                        .zip(&exps)
                        .map(|(path, e)| path[[b, ch, y, x]] as f64 * e / total)
                        .sum();
                    out[[b, ch, y, x]] = v as f32;
                }
            }
        }
    }
    Ok(out)
}

/// ResNeSt's split-attention weighting (timm's `RadixSoftmax` and the weighted sum after
/// it): `x` `[N, R * C, H, W]` holds `R = radix` splits of `C` channels, `logits`
/// `[N, R * C, 1, 1]` one logit per split and channel in the same order; the output
/// `[N, C, H, W]` is `sum_r w_r * x[:, r * C + c]`, `w` the softmax across the splits of
/// `logits[:, r * C + c]` (at radix 1 `w_0 = sigmoid(logit)`, as timm).
pub fn radix_softmax_sum(
    x: ArrayView4<f32>,
    logits: ArrayView4<f32>,
    radix: usize,
) -> Result<Array4<f32>> {
    let shape =
        crate::ops::attention::radix_softmax_sum_shape(x.dim().into(), logits.dim().into(), radix)?;
    let [n, c, h, w] = shape;
    let mut out = Array4::zeros((n, c, h, w));
    for b in 0..n {
        for ch in 0..c {
            let l: Vec<f64> = (0..radix)
                .map(|r| logits[[b, r * c + ch, 0, 0]] as f64)
                .collect();
            let weights: Vec<f64> = if radix == 1 {
                vec![1.0 / (1.0 + (-l[0]).exp())]
            } else {
                let top = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let exps: Vec<f64> = l.iter().map(|v| (v - top).exp()).collect();
                let total: f64 = exps.iter().sum();
                exps.iter().map(|e| e / total).collect()
            };
            for y in 0..h {
                for xx in 0..w {
                    let v: f64 = (0..radix)
                        .map(|r| weights[r] * x[[b, r * c + ch, y, xx]] as f64)
                        .sum();
                    out[[b, ch, y, xx]] = v as f32;
                }
            }
        }
    }
    Ok(out)
}

/// timm's `SplitAttn` after its convolution, batch norm and ReLU (`bn0`, `act0`), in its
/// order: `x` `[N, R * C, H, W]` (`R = radix` splits of `C` channels) summed over the
/// splits and averaged over each plane, `fc1` (`[A, C / G, 1, 1]` and bias, `G = groups`
/// groups), the inference batch norm `bn1` (weight, bias, running mean and variance;
/// `eps`), ReLU, `fc2` (`[R * C, A / G, 1, 1]` and bias, `G` groups), `RadixSoftmax`
/// (`view(N, G, R, -1).transpose(1, 2)`, softmax across the splits; sigmoid at radix 1)
/// and the weighted sum of the splits ([`radix_softmax_sum`]).
pub fn resnest_split_attention(
    x: ArrayView4<f32>,
    (radix, groups): (usize, usize),
    fc1: (ArrayView4<f32>, ArrayView1<f32>),
    bn: [ArrayView1<f32>; 4],
    eps: f32,
    fc2: (ArrayView4<f32>, ArrayView1<f32>),
) -> Result<Array4<f32>> {
    let (n, rc, h, w) = x.dim();
    fail_if(radix == 0 || !rc.is_multiple_of(radix), "radix", || {
        format!("{rc} channels do not split into {radix} splits")
    })?;
    let c = rc / radix;
    let a = fc1.0.dim().0;
    // x.reshape(N, R, C, H, W).sum(1).mean((2, 3))
    let mut gap = Array4::<f32>::zeros((n, c, 1, 1));
    for b in 0..n {
        for ch in 0..c {
            let mut s = 0.0f64;
            for r in 0..radix {
                for y in 0..h {
                    for xx in 0..w {
                        s += x[[b, r * c + ch, y, xx]] as f64;
                    }
                }
            }
            gap[[b, ch, 0, 0]] = (s / (h * w) as f64) as f32;
        }
    }
    let p1 = Conv2dParams::new(c, a, 1).groups(groups);
    let mut hidden = super::conv::conv2d(&p1, gap.view(), fc1.0, Some(fc1.1))?;
    let [gamma, beta, mean, var] = bn;
    for t in &bn {
        fail_if(t.len() != a, "bn", || {
            format!("expected {a} values, got {}", t.len())
        })?;
    }
    for ((_, j, _, _), v) in hidden.indexed_iter_mut() {
        let z = (*v as f64 - mean[j] as f64) / (var[j] as f64 + eps as f64).sqrt()
            * gamma[j] as f64
            + beta[j] as f64;
        *v = z.max(0.0) as f32;
    }
    let p2 = Conv2dParams::new(a, rc, 1).groups(groups);
    let attn = super::conv::conv2d(&p2, hidden.view(), fc2.0, Some(fc2.1))?;
    // RadixSoftmax: fc2's channel g * R * Cg + r * Cg + j is split r's channel g * Cg + j.
    let cg = c / groups;
    let mut logits = Array4::<f32>::zeros((n, rc, 1, 1));
    for b in 0..n {
        for r in 0..radix {
            for g in 0..groups {
                for j in 0..cg {
                    logits[[b, r * c + g * cg + j, 0, 0]] =
                        attn[[b, g * radix * cg + r * cg + j, 0, 0]];
                }
            }
        }
    }
    radix_softmax_sum(x, logits.view(), radix)
}
