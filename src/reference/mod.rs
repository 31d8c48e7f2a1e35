//! The CPU oracle: every op written loop by loop from its textbook formula, for clarity,
//! in `f64` accumulation where the formula sums. It shares no code or tricks with the GPU
//! path (it only reads the same parameter structs) and is what the GPU is tested against.

pub mod attention;
pub mod channel;
pub mod composite;
pub mod conv;
pub mod conv_transpose;
pub mod copy;
pub mod decoder_stage;
pub mod frame;
pub mod inverted_residual;
pub mod lraspp_head;
pub mod norm;
pub mod pool;
pub mod sdpa;
pub mod upsample;

use ndarray::{ArrayView1, ArrayView4};

use crate::error::{Error, Result};
use crate::ops::conv::WeightShapes;
use crate::ops::Activation;

/// A typed error unless every named per-channel vector has `len` values (the input's
/// channels): the per-channel formulas index them by channel.
pub(crate) fn check_lengths(vectors: &[(&'static str, usize)], len: usize) -> Result<()> {
    for &(name, actual) in vectors {
        if actual != len {
            return Err(Error::ShapeMismatch {
                name,
                expected: vec![len],
                actual: vec![actual],
            });
        }
    }
    Ok(())
}

/// The input's and the output's shapes of a (transposed) convolution, after checking the
/// parameters against the input, `weight` against PyTorch's weight shape and the bias's
/// length.
fn conv_shapes(
    params: &impl WeightShapes,
    input: &ArrayView4<f32>,
    weight: &ArrayView4<f32>,
    bias: &Option<ArrayView1<f32>>,
) -> Result<([usize; 4], [usize; 4])> {
    let in_shape: [usize; 4] = input.shape().try_into().expect("4-D");
    let out_shape = params.output_shape(in_shape)?;
    check_weights(weight, params.weight_shape(), bias, params.bias_len().1)?;
    Ok((in_shape, out_shape))
}

/// Checks a layer's weights: `weight` of `shape`, and a bias of `out_channels` values.
fn check_weights(
    weight: &ArrayView4<f32>,
    shape: [usize; 4],
    bias: &Option<ArrayView1<f32>>,
    out_channels: usize,
) -> Result<()> {
    let mismatch = |name, expected: &[usize], actual: &[usize]| {
        Err(Error::ShapeMismatch {
            name,
            expected: expected.to_vec(),
            actual: actual.to_vec(),
        })
    };
    if weight.shape() != shape {
        return mismatch("weight", &shape, weight.shape());
    }
    match bias {
        Some(b) if b.len() != out_channels => mismatch("bias", &[out_channels], &[b.len()]),
        _ => Ok(()),
    }
}

/// A convolution's store: `a`, then the activation with parameters when there is one.
pub(crate) fn activations(
    a: Activation,
    param: Option<crate::ops::channel::ParamActivation>,
    x: f32,
) -> f32 {
    let y = activation(a, x);
    match param {
        Some(p) => channel::param_activation(p, y),
        None => y,
    }
}

/// The activation formula, as PyTorch defines it.
pub fn activation(a: Activation, x: f32) -> f32 {
    match a {
        Activation::None => x,
        // `x < 0 ? 0 : x`, as PyTorch's clamp_min: NaN and -0.0 pass through.
        Activation::Relu => {
            if x < 0.0 {
                0.0
            } else {
                x
            }
        }
        Activation::Relu6 => x.clamp(0.0, 6.0),
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Activation::HardSigmoid => (x + 3.0).clamp(0.0, 6.0) / 6.0,
        Activation::HardSwish => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
        Activation::Silu => x / (1.0 + (-x).exp()),
        // The transcendental ones in f64, rounded once.
        Activation::Tanh => (x as f64).tanh() as f32,
        Activation::Gelu => {
            let x = x as f64;
            (0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))) as f32
        }
        Activation::GeluTanh => {
            let x = x as f64;
            let k = (2.0 / std::f64::consts::PI).sqrt();
            (0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())) as f32
        }
        Activation::Mish => {
            let x = x as f64;
            (x * x.exp().ln_1p().tanh()) as f32
        }
    }
}
