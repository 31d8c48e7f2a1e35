//! Reference decoder stage: its layers one after the other, as the stage defines them
//! (`a = refine(skip * gate(g) + upsample(low))`, `a + depthwise(a)`), each the reference
//! op.

use ndarray::{Array4, ArrayView4};

use crate::error::Result;
use crate::ops::decoder_stage::DecoderStageParams;
use crate::ops::inverted_residual::WeightBias;
use crate::ops::upsample::UpsampleParams;

/// The stage on `skip` `[N, C, H, W]`, gate logits `gate` `[N, C, 1, 1]` and `low`
/// `[N, C, H / 2, W / 2]`, with the 1x1 `refine` and the `depthwise` weights and biases
/// (PyTorch layouts).
pub fn decoder_stage(
    params: &DecoderStageParams,
    skip: ArrayView4<f32>,
    gate: ArrayView4<f32>,
    low: ArrayView4<f32>,
    refine: WeightBias<'_>,
    depthwise: WeightBias<'_>,
) -> Result<Array4<f32>> {
    let s = |a: &ArrayView4<f32>| -> [usize; 4] { a.shape().try_into().expect("4-D") };
    params.output_shape(s(&skip), s(&gate), s(&low))?;
    let up = super::upsample::upsample(&UpsampleParams::bilinear(false).scale_factor(2.0), low)?;
    let z = super::channel::scale_channels_add(skip, gate, params.gate_activation, up.view())?;
    let a = super::conv::conv2d(&params.refine(), z.view(), refine.0, Some(refine.1))?;
    let d = super::conv::conv2d(
        &params.depthwise(),
        a.view(),
        depthwise.0,
        Some(depthwise.1),
    )?;
    Ok(a + d)
}
