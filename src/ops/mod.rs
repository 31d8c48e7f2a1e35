//! GPU ops: parameters with PyTorch names, validation against a shape, kernel choice,
//! dispatch and cost. Each file is one op family; its CPU oracle lives under the same
//! name in [`crate::reference`](mod@crate::reference).

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

use crate::error::{fail_if, Result};
use crate::launch::{Constant, Constants, Specialize};

/// `Ok` when `got` is `want`, else a [`ShapeMismatch`](crate::Error::ShapeMismatch)
/// naming the operand.
pub(crate) fn same_shape(
    name: &'static str,
    want: [usize; 4],
    got: [usize; 4],
) -> crate::Result<()> {
    same_dims(name, &want, &got)
}

/// [`same_shape`] for any number of dimensions (weights, biases).
pub(crate) fn same_dims(name: &'static str, want: &[usize], got: &[usize]) -> crate::Result<()> {
    if want != got {
        return Err(crate::Error::ShapeMismatch {
            name,
            expected: want.to_vec(),
            actual: got.to_vec(),
        });
    }
    Ok(())
}

/// Checks `[N, C, H, W]`: no zero dimension, and `channels` channels.
pub(crate) fn check_channels(input: [usize; 4], channels: usize) -> crate::Result<()> {
    crate::gpu::check_dims("input", &input)?;
    same_shape("input", [input[0], channels, input[2], input[3]], input)
}

/// `[N, channels, height, width]` of a layer's output, checked like every shape.
pub(crate) fn layer_output(
    input: [usize; 4],
    channels: usize,
    [height, width]: [usize; 2],
) -> crate::Result<[usize; 4]> {
    let out = [input[0], channels, height, width];
    crate::gpu::check_dims("output", &out)?;
    Ok(out)
}

/// `f(axis, pick)` for the height (axis 0) and the width (axis 1), where `pick` takes that
/// axis's value of a `(height, width)` pair.
pub(crate) fn per_axis<T>(
    f: impl Fn(usize, &dyn Fn((usize, usize)) -> usize) -> crate::Result<T>,
) -> crate::Result<[T; 2]> {
    Ok([f(0, &|p| p.0)?, f(1, &|p| p.1)?])
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
    /// `tanh(x)`.
    Tanh,
    /// `x * Phi(x) = x / 2 * (1 + erf(x / sqrt(2)))` (`nn.GELU()`, `approximate='none'`).
    Gelu,
    /// `x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3)))` (`nn.GELU(approximate='tanh')`).
    GeluTanh,
    /// `x * tanh(softplus(x))`, `softplus(x) = ln(1 + exp(x))` (`nn.Mish()`).
    Mish,
}

impl Activation {
    /// Every activation, for sweeps.
    pub const ALL: [Activation; 11] = [
        Activation::None,
        Activation::Relu,
        Activation::Relu6,
        Activation::Sigmoid,
        Activation::HardSigmoid,
        Activation::HardSwish,
        Activation::Silu,
        Activation::Tanh,
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::Mish,
    ];

    /// The activation's code in `activation4` of `shaders/common.wgsl`.
    pub(crate) fn shader_code(self) -> u32 {
        match self {
            Activation::None => 0,
            Activation::Relu => 1,
            Activation::Relu6 => 2,
            Activation::Sigmoid => 3,
            Activation::HardSigmoid => 4,
            Activation::HardSwish => 5,
            Activation::Silu => 6,
            Activation::Tanh => 7,
            Activation::Gelu => 8,
            Activation::GeluTanh => 9,
            Activation::Mish => 10,
        }
    }
}

/// The `ACT` constant of `shaders/activation.wgsl`.
impl Specialize for Activation {
    fn write(&self, c: &mut Constants) {
        c.set("ACT", self.value());
    }
}

/// An activation as one constant under another name (a gate's).
impl Constant for Activation {
    fn value(&self) -> u32 {
        self.shader_code()
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

impl Cost {
    /// The cost of a layer with weights of `weight_shape` and, when `bias`, one bias per
    /// output channel, each weight used once per one of `pixels` pixels, from `input` to
    /// `output`: bytes count the input, the output and the parameters once (f32).
    pub(crate) fn of_layer(
        (weight_shape, bias): ([usize; 4], bool),
        pixels: usize,
        input: [usize; 4],
        output: [usize; 4],
    ) -> Cost {
        let weights: usize = weight_shape.iter().product();
        let params = (weights + if bias { output[1] } else { 0 }) as u64;
        let elems = |s: [usize; 4]| s.iter().product::<usize>() as u64;
        Cost {
            params,
            macs: weights as u64 * pixels as u64,
            bytes: 4 * (elems(input) + elems(output) + params),
        }
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

/// The sliding window of a convolution, transposed convolution or pooling: kernel size,
/// stride, padding (before; the window's `padding` field) and dilation per axis `(height,
/// width)`. The params types keep PyTorch's flat field names and hand out their window
/// with `window()`; this is where the checks every windowed op shares live, and what
/// `shaders/window.wgsl` is specialised with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Window {
    /// `(kH, kW)`.
    pub kernel_size: (usize, usize),
    /// `(sH, sW)`.
    pub stride: (usize, usize),
    /// `(pH, pW)` before the first row / column.
    pub padding: (usize, usize),
    /// `(dH, dW)`.
    pub dilation: (usize, usize),
}

/// The largest kernel size, stride, padding or dilation a window accepts: every index
/// the kernels compute from them stays within `i32`.
pub const WINDOW_MAX: usize = (1 << 24) - 1;

impl Window {
    /// A window of these per-axis `(height, width)` values.
    pub fn new(
        kernel_size: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
        dilation: (usize, usize),
    ) -> Window {
        Window {
            kernel_size,
            stride,
            padding,
            dilation,
        }
    }

    /// Checks that kernel size, stride and dilation are positive and that every value is
    /// at most [`WINDOW_MAX`], naming the parameter at fault.
    pub fn validate(&self) -> Result<()> {
        for (name, v, min) in [
            ("kernel_size", self.kernel_size, 1),
            ("stride", self.stride, 1),
            ("padding", self.padding, 0),
            ("dilation", self.dilation, 1),
        ] {
            fail_if(v.0 < min || v.1 < min, name, || {
                format!("must be positive, got {v:?}")
            })?;
            fail_if(v.0 > WINDOW_MAX || v.1 > WINDOW_MAX, name, || {
                format!("{v:?} is out of range (at most {WINDOW_MAX})")
            })?;
        }
        Ok(())
    }

    /// The extent of the dilated kernel along each axis, `dilation * (kernel - 1) + 1`.
    pub fn extent(&self) -> (usize, usize) {
        (
            self.dilation.0 * (self.kernel_size.0.max(1) - 1) + 1,
            self.dilation.1 * (self.kernel_size.1.max(1) - 1) + 1,
        )
    }
}

/// `KH`, `KW`, `SH`, `SW`, `DH`, `DW` of `shaders/window.wgsl` (the padding is a uniform
/// value: it does not change the code).
impl Specialize for Window {
    fn write(&self, c: &mut Constants) {
        // Validated windows fit (WINDOW_MAX); the default window is the 1x1 identity.
        let v = |x: usize| x.max(1) as u32;
        c.set("KH", v(self.kernel_size.0));
        c.set("KW", v(self.kernel_size.1));
        c.set("SH", v(self.stride.0));
        c.set("SW", v(self.stride.1));
        c.set("DH", v(self.dilation.0));
        c.set("DW", v(self.dilation.1));
    }
}

/// Builder methods that set one field each, keeping the documentation given:
/// `setters!(Type { /// doc\n field: FieldType, ... })`.
macro_rules! setters {
    ($ty:ty { $( $(#[$doc:meta])* $name:ident : $t:ty ),* $(,)? }) => {
        impl $ty {
            $(
                $(#[$doc])*
                pub fn $name(mut self, $name: $t) -> Self {
                    self.$name = $name;
                    self
                }
            )*
        }
    };
}
pub(crate) use setters;

/// Builder methods for `(height, width)` fields that take one value or a pair, as
/// PyTorch's `stride=2` and `stride=(2, 1)`: `pair_setters!(Type { /// doc\n field, ... })`.
macro_rules! pair_setters {
    ($ty:ty { $( $(#[$doc:meta])* $name:ident ),* $(,)? }) => {
        impl $ty {
            $(
                $(#[$doc])*
                pub fn $name(mut self, $name: impl $crate::ops::IntoPair) -> Self {
                    self.$name = $name.into_pair();
                    self
                }
            )*
        }
    };
}
pub(crate) use pair_setters;

/// The builder methods both convolutions share: groups, bias, the fused activation,
/// stride and dilation.
macro_rules! conv_setters {
    ($ty:ty) => {
        $crate::ops::setters!($ty {
            /// Sets the number of groups.
            groups: usize,
            /// Enables or disables the bias.
            bias: bool,
            /// Sets the fused activation.
            activation: Activation,
        });
        $crate::ops::pair_setters!($ty {
            /// Sets the stride (one value or a `(height, width)` pair).
            stride,
            /// Sets the dilation (one value or a `(height, width)` pair).
            dilation,
        });
        impl $ty {
            /// Fuses an activation with parameters after the activation
            /// (`ParamActivation::leaky_relu()` for `nn.LeakyReLU()` after the layer, in
            /// one pass); checked by `validate`.
            pub fn param_activation(mut self, act: $crate::ops::channel::ParamActivation) -> Self {
                self.param_activation = Some(act);
                self
            }
        }
    };
}
pub(crate) use conv_setters;
