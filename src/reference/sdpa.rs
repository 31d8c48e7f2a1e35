//! Reference scaled dot-product attention, query by query from the textbook formula.

use ndarray::{Array4, ArrayView4};

use crate::error::Result;
use crate::ops::sdpa::SdpaParams;

/// `y[n, h*Ev + j, l] = sum_m softmax_m(scale * sum_e q[n, h*E + e, l] k[n, h*E + e, m])
/// v[n, h*Ev + j, m]` over the pixels `l` of `q` and `m` of `k` / `v` (row-major), in f64;
/// a query whose scores hold a NaN or +inf, or are all -inf, gets NaN (PyTorch's softmax).
pub fn scaled_dot_product_attention(
    q: ArrayView4<f32>,
    k: ArrayView4<f32>,
    v: ArrayView4<f32>,
    params: SdpaParams,
) -> Result<Array4<f32>> {
    let dims = |a: &ArrayView4<f32>| {
        let s = a.shape();
        [s[0], s[1], s[2], s[3]]
    };
    let out = params.output_shape(dims(&q), dims(&k), dims(&v))?;
    let heads = params.num_heads;
    let (e_dim, v_dim) = (q.shape()[1] / heads, v.shape()[1] / heads);
    let scale = f64::from(params.scale_for(q.shape()[1]));
    let (kh, kw) = (k.shape()[2], k.shape()[3]);
    let mut y = Array4::zeros(out);
    for n in 0..out[0] {
        for h in 0..heads {
            for (qy, qx) in (0..out[2]).flat_map(|a| (0..out[3]).map(move |b| (a, b))) {
                let keys = (0..kh).flat_map(|a| (0..kw).map(move |b| (a, b)));
                let scores: Vec<f64> = keys
                    .clone()
                    .map(|(ky, kx)| {
                        let dot: f64 = (0..e_dim)
                            .map(|e| {
                                let c = h * e_dim + e;
                                f64::from(q[[n, c, qy, qx]]) * f64::from(k[[n, c, ky, kx]])
                            })
                            .sum();
                        scale * dot
                    })
                    .collect();
                let max = scores.iter().fold(f64::NEG_INFINITY, |m, &s| {
                    if m.is_nan() || s.is_nan() {
                        f64::NAN
                    } else {
                        m.max(s)
                    }
                });
                let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = weights.iter().sum();
                for j in 0..v_dim {
                    let c = h * v_dim + j;
                    let sum: f64 = keys
                        .clone()
                        .zip(&weights)
                        .map(|((ky, kx), w)| w / total * f64::from(v[[n, c, ky, kx]]))
                        .sum();
                    y[[n, c, qy, qx]] = sum as f32;
                }
            }
        }
    }
    Ok(y)
}
