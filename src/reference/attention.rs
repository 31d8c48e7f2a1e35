//! Reference attention blocks, composed from the other references: SE as torchvision's
//! `SqueezeExcitation`, ECA, CBAM (channel then spatial attention).

use ndarray::{Array4, ArrayView1, ArrayView4};

use crate::error::Result;
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
    Ok(super::channel::scale_channels(
        x,
        logits.view(),
        params.scale_activation,
    ))
}

/// ECA: `x * sigmoid(conv1d_k(avgpool(x)))` across channels, zero padding, no bias.
pub fn eca(x: ArrayView4<f32>, weight: ArrayView1<f32>) -> Result<Array4<f32>> {
    let [n, c, _, _]: [usize; 4] = x.shape().try_into().expect("4-D");
    let k = weight.len();
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
    Ok(super::channel::scale_channels(
        x,
        logits.view(),
        Activation::Sigmoid,
    ))
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
    let logits = super::channel::add(avg.view(), max.view(), Activation::None);
    let x1 = super::channel::scale_channels(x, logits.view(), Activation::Sigmoid);
    let pooled = super::channel::channel_pool(x1.view(), params.pool_order);
    let s = super::conv::conv2d(
        &params.spatial(),
        pooled.view(),
        spatial_weight,
        spatial_bias,
    )?;
    Ok(super::channel::scale_spatial(
        x1.view(),
        s.view(),
        Activation::Sigmoid,
    ))
}
