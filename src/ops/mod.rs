//! GPU ops: parameters with PyTorch names, validation against a shape, kernel choice,
//! dispatch and cost. Each file is one op family; its CPU oracle lives under the same
//! name in [`crate::reference`](mod@crate::reference).

pub mod attention;
pub mod channel;
pub mod conv;
pub mod conv_transpose;
pub mod copy;
pub mod norm;
pub mod pool;
pub mod upsample;

/// `Ok` when `got` is `want`, else a [`ShapeMismatch`](crate::Error::ShapeMismatch)
/// naming the operand.
pub(crate) fn same_shape(
    name: &'static str,
    want: [usize; 4],
    got: [usize; 4],
) -> crate::Result<()> {
    if want != got {
        return Err(crate::Error::ShapeMismatch {
            name,
            expected: want.to_vec(),
            actual: got.to_vec(),
        });
    }
    Ok(())
}

/// An activation fused into an op's epilogue (applied after the bias).
///
/// The formulas are PyTorch's: `hardsigmoid(x) = relu6(x + 3) / 6`,
/// `hardswish(x) = x * relu6(x + 3) / 6`, `silu(x) = x * sigmoid(x)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Activation {
    /// Identity.
    #[default]
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `relu6(x + 3) / 6`.
    HardSigmoid,
    /// `x * relu6(x + 3) / 6` (MobileNetV3).
    HardSwish,
    /// `x * sigmoid(x)`, also called swish.
    Silu,
}

impl Activation {
    /// Every activation, for sweeps.
    pub const ALL: [Activation; 7] = [
        Activation::None,
        Activation::Relu,
        Activation::Relu6,
        Activation::Sigmoid,
        Activation::HardSigmoid,
        Activation::HardSwish,
        Activation::Silu,
    ];

    /// The value of the `ACT` override constant in `shaders/common.wgsl`.
    pub(crate) fn shader_code(self) -> f64 {
        match self {
            Activation::None => 0.0,
            Activation::Relu => 1.0,
            Activation::Relu6 => 2.0,
            Activation::Sigmoid => 3.0,
            Activation::HardSigmoid => 4.0,
            Activation::HardSwish => 5.0,
            Activation::Silu => 6.0,
        }
    }
}

/// A pair of per-axis values `(height, width)`, built from one number or a pair, as
/// PyTorch accepts `stride=2` and `stride=(2, 1)` alike.
pub trait IntoPair {
    /// The `(height, width)` pair.
    fn into_pair(self) -> (usize, usize);
}

impl IntoPair for usize {
    fn into_pair(self) -> (usize, usize) {
        (self, self)
    }
}

impl IntoPair for (usize, usize) {
    fn into_pair(self) -> (usize, usize) {
        self
    }
}

impl IntoPair for [usize; 2] {
    fn into_pair(self) -> (usize, usize) {
        (self[0], self[1])
    }
}

/// Parameters, multiply-accumulates and memory traffic of one op or block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Learnable parameters (weights and biases).
    pub params: u64,
    /// Multiply-accumulate operations for one forward pass.
    pub macs: u64,
    /// Bytes read and written by a forward pass that touches each tensor once (f32).
    pub bytes: u64,
}

impl Cost {
    /// Floating-point operations, counting a multiply-accumulate as two.
    pub fn flops(&self) -> u64 {
        2 * self.macs
    }
}

impl std::ops::Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost {
            params: self.params + o.params,
            macs: self.macs + o.macs,
            bytes: self.bytes + o.bytes,
        }
    }
}
