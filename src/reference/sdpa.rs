//! Reference scaled dot-product attention, from the textbook formula: the score matrix,
//! its softmax, the weighted sum of the values; and OCR's spatial gather, each class's
//! softmax over the pixels weighting the features.

use ndarray::{Array2, Array3, Array4, ArrayView4};

use crate::error::{invalid, Result};
use crate::ops::sdpa::{SdpaParams, SoftmaxScope, SpatialGatherParams};

/// `y[n, h*Ev + j, l] = sum_m softmax(scale * sum_e q[n, h*E + e, l] k[n, h*E + e, m])
/// v[n, h*Ev + j, m]` over the pixels `l` of `q` and `m` of `k` / `v` (row-major), in f64;
/// the softmax over each query's keys, or over every score of the sample and head
/// ([`SoftmaxScope::All`]). A softmax whose scores hold a NaN or +inf, or are all -inf,
/// gives NaN (PyTorch's). With [`SdpaParams::token_major`] the result is first laid out
/// `[N, L, heads * Ev]` and read back as `[N, heads * Ev, Hq, Wq]` (PyTorch's `reshape`).
pub fn scaled_dot_product_attention(
    q: ArrayView4<f32>,
    k: ArrayView4<f32>,
    v: ArrayView4<f32>,
    params: SdpaParams,
) -> Result<Array4<f32>> {
    let out = params.output_shape(q.dim().into(), k.dim().into(), v.dim().into())?;
    let heads = params.num_heads;
    let (e_dim, v_dim) = (q.shape()[1] / heads, v.shape()[1] / heads);
    let scale = f64::from(params.scale_for(q.shape()[1]));
    let (qw, kw) = (q.shape()[3], k.shape()[3]);
    let (queries, keys) = (out[2] * out[3], k.shape()[2] * kw);
    // Token-major result: [N, L, heads * Ev].
    let mut tokens = Array3::<f32>::zeros([out[0], queries, out[1]]);
    for n in 0..out[0] {
        for h in 0..heads {
            let mut scores = Array2::<f64>::zeros([queries, keys]);
            for ((l, m), s) in scores.indexed_iter_mut() {
                let dot: f64 = (0..e_dim)
                    .map(|e| {
                        let c = h * e_dim + e;
                        f64::from(q[[n, c, l / qw, l % qw]]) * f64::from(k[[n, c, m / kw, m % kw]])
                    })
                    .sum();
                *s = scale * dot;
            }
            let weights = match params.softmax {
                SoftmaxScope::Keys => {
                    let mut w = scores.clone();
                    for mut row in w.rows_mut() {
                        let soft = softmax(row.iter().copied());
                        row.iter_mut().zip(soft).for_each(|(x, s)| *x = s);
                    }
                    w
                }
                SoftmaxScope::All => {
                    let soft = softmax(scores.iter().copied());
                    Array2::from_shape_vec([queries, keys], soft).expect("same length")
                }
            };
            for l in 0..queries {
                for j in 0..v_dim {
                    let c = h * v_dim + j;
                    let sum: f64 = (0..keys)
                        .map(|m| weights[[l, m]] * f64::from(v[[n, c, m / kw, m % kw]]))
                        .sum();
                    tokens[[n, l, c]] = sum as f32;
                }
            }
        }
    }
    if params.token_major {
        return tokens
            .into_shape_with_order(out)
            .map_err(|e| invalid("output", e.to_string()));
    }
    let mut y = Array4::zeros(out);
    for ((n, l, c), &t) in tokens.indexed_iter() {
        y[[n, c, l / out[3], l % out[3]]] = t;
    }
    Ok(y)
}

/// OCR's spatial gather: `y[n, c, k, 0] = sum_p softmax_p(scale * probs[n, k, p])
/// feats[n, c, p]` over the pixels `p` (row-major), in f64; a class whose logits hold a NaN
/// or +inf, or are all -inf, gets NaN (PyTorch's softmax).
pub fn spatial_gather(
    probs: ArrayView4<f32>,
    feats: ArrayView4<f32>,
    params: SpatialGatherParams,
) -> Result<Array4<f32>> {
    let out = params.output_shape(probs.dim().into(), feats.dim().into())?;
    let w = probs.shape()[3];
    let pixels = probs.shape()[2] * w;
    let scale = f64::from(params.scale);
    let mut y = Array4::zeros(out);
    for n in 0..out[0] {
        for class in 0..out[2] {
            let scores = (0..pixels).map(|p| scale * f64::from(probs[[n, class, p / w, p % w]]));
            let weights = softmax(scores);
            for c in 0..out[1] {
                let sum: f64 = (0..pixels)
                    .map(|p| weights[p] * f64::from(feats[[n, c, p / w, p % w]]))
                    .sum();
                y[[n, c, class, 0]] = sum as f32;
            }
        }
    }
    Ok(y)
}

/// PyTorch's softmax of `scores`: `exp(s - max) / sum`, NaN everywhere when a score is NaN
/// or the maximum is infinite (+inf, or every score -inf).
fn softmax(scores: impl Iterator<Item = f64> + Clone) -> Vec<f64> {
    let max = scores.clone().fold(f64::NEG_INFINITY, |m, s| {
        if m.is_nan() || s.is_nan() {
            f64::NAN
        } else {
            m.max(s)
        }
    });
    let exps: Vec<f64> = scores.map(|s| (s - max).exp()).collect();
    let total: f64 = exps.iter().sum();
    exps.iter().map(|e| e / total).collect()
}
