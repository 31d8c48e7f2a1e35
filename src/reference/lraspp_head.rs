//! Reference LR-ASPP branch: its layers one after the other, as torchvision's
//! `LRASPPHead` runs them (`cbr(x) * scale(x)`, then the high classifier), each the
//! reference op.

use ndarray::{Array1, Array4, ArrayView4};

use crate::error::Result;
use crate::ops::lraspp_head::{LrAsppHeadParams, Pointwise};
use crate::ops::pool::GlobalPool;

/// The branch on `x` with 1x1 weights `branch`, `gate` and (when `params.out_channels` is
/// set) `classifier`, PyTorch layouts; a bias `None` is zeros.
pub fn lraspp_head(
    params: &LrAsppHeadParams,
    x: ArrayView4<f32>,
    branch: Pointwise<'_>,
    gate: Pointwise<'_>,
    classifier: Option<Pointwise<'_>>,
) -> Result<Array4<f32>> {
    params.output_shape(x.shape().try_into().expect("4-D"))?;
    let [pb, pg, pc] = params.layers();
    let conv = |p, input: ArrayView4<f32>, (w, b): Pointwise<'_>| {
        let b = b.map_or_else(|| Array1::<f32>::zeros(w.shape()[0]), |b| b.to_owned());
        super::conv::conv2d(&p, input, w, Some(b.view()))
    };
    let pooled = super::pool::global_pool(GlobalPool::Avg, x)?;
    let logits = conv(pg, pooled.view(), gate)?;
    let h = conv(pb, x, branch)?;
    let h = super::channel::scale_channels(h.view(), logits.view(), params.gate_activation)?;
    match classifier {
        Some(cl) => conv(pc, h.view(), cl),
        None => Ok(h),
    }
}
