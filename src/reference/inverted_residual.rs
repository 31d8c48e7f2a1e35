//! Reference inverted residual: its layers one after the other, as the block defines them
//! (`project(se(act(depthwise(act(expand(x)))))) (+ x)`), each the reference op.

use ndarray::{Array4, ArrayView4};

use crate::error::{fail_if, Result};
use crate::ops::attention::SqueezeExcitationParams;
use crate::ops::conv::Conv2dParams;
use crate::ops::inverted_residual::{InvertedResidualParams, WeightBias};

/// An SE layer's parameters and its `fc1` and `fc2` weights and biases.
pub type SeLayer<'a> = (&'a SqueezeExcitationParams, WeightBias<'a>, WeightBias<'a>);

/// The block on `x` with folded weights and biases (PyTorch layouts; `expand` only with an
/// expansion, `se` only with `use_se`).
pub fn inverted_residual(
    params: &InvertedResidualParams,
    x: ArrayView4<f32>,
    expand: Option<WeightBias<'_>>,
    depthwise: WeightBias<'_>,
    se: Option<SeLayer<'_>>,
    project: WeightBias<'_>,
) -> Result<Array4<f32>> {
    let p = params;
    let (n, c, h, w) = x.dim();
    p.output_shape([n, c, h, w])?;
    fail_if(expand.is_some() != p.has_expansion(), "expand", || {
        format!(
            "weights {} but the block has {} expansion",
            if expand.is_some() { "given" } else { "missing" },
            if p.has_expansion() { "an" } else { "no" }
        )
    })?;
    fail_if(se.is_some() != p.use_se, "se", || {
        format!(
            "layer {} but use_se is {}",
            if se.is_some() { "given" } else { "missing" },
            p.use_se
        )
    })?;
    let expanded = match expand {
        Some((w, b)) => {
            let conv = Conv2dParams::new(p.in_channels, p.hidden_channels, 1)
                .activation(p.expand_activation);
            super::conv::conv2d(&conv, x, w, Some(b))?
        }
        None => x.to_owned(),
    };
    let pads = p.pads();
    let dw = Conv2dParams::depthwise(p.hidden_channels, 1, p.kernel_size)
        .stride(p.stride)
        .padding_asymmetric(pads, pads)
        .dilation(p.dilation)
        .activation(p.depthwise_activation);
    let (w, b) = depthwise;
    let d = super::conv::conv2d(&dw, expanded.view(), w, Some(b))?;
    let d = match se {
        Some((se, fc1, fc2)) => super::attention::squeeze_excitation(se, d.view(), fc1, fc2)?,
        None => d,
    };
    let (w, b) = project;
    let proj = Conv2dParams::new(p.hidden_channels, p.out_channels, 1);
    let y = super::conv::conv2d(&proj, d.view(), w, Some(b))?;
    Ok(if p.has_skip() { y + x } else { y })
}
