//! 2-D convolution with PyTorch's semantics (`torch.nn.Conv2d` / `F.conv2d`): standard,
//! pointwise, depthwise (with channel multiplier), group, dilated, and depthwise separable.
//!
//! Weights use PyTorch's layout `[C_out, C_in / groups, kH, kW]`. Padding is symmetric
//! (`padding=p`), `'same'` (`padding_same()`, stride 1, the odd extra row / column at
//! the bottom / right as in PyTorch), or explicit per side (`padding_asymmetric`, what
//! `F.pad` before the convolution or TensorFlow's strided `'SAME'` gives, see
//! [`tf_same_padding`]), with PyTorch's four `padding_mode`s. The output size per axis is
//! `floor((in + pad_before + pad_after - dilation * (kernel - 1) - 1) / stride) + 1`.

use std::sync::{Arc, OnceLock};

use ndarray::{ArrayView1, ArrayView4};

use super::{Activation, Cost, IntoPair};
use crate::error::{invalid, Error, Result};
use crate::gpu::{check_dims, check_owner, Gpu, PooledBuffer, Recorder, Tensor};

/// Parameters of a 2-D convolution, named as in `torch.nn.Conv2d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dParams {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel size `(kH, kW)`.
    pub kernel_size: (usize, usize),
    /// Stride `(sH, sW)`, default 1.
    pub stride: (usize, usize),
    /// Padding on each side `(pH, pW)`, default 0 (ignored when `padding_same`); with
    /// `padding_after` set, the padding before (top, left) only.
    pub padding: (usize, usize),
    /// Padding after (bottom, right) when it differs from `padding`; `None` is symmetric.
    pub padding_after: Option<(usize, usize)>,
    /// PyTorch's `padding='same'`: the output has the input's size (stride 1 only).
    pub padding_same: bool,
    /// How the padding is filled (default zeros).
    pub padding_mode: PaddingMode,
    /// Dilation `(dH, dW)`, default 1 (atrous rate).
    pub dilation: (usize, usize),
    /// Groups, default 1; `groups == in_channels` is a depthwise convolution.
    pub groups: usize,
    /// Whether the layer has a bias (default true, as in PyTorch).
    pub bias: bool,
    /// Activation fused after the bias (default none).
    pub activation: Activation,
}

impl Conv2dParams {
    /// A convolution with PyTorch's defaults: stride 1, padding 0, dilation 1, groups 1,
    /// bias, no activation.
    pub fn new(in_channels: usize, out_channels: usize, kernel_size: impl IntoPair) -> Self {
        Conv2dParams {
            in_channels,
            out_channels,
            kernel_size: kernel_size.into_pair(),
            stride: (1, 1),
            padding: (0, 0),
            padding_after: None,
            padding_same: false,
            padding_mode: PaddingMode::Zeros,
            dilation: (1, 1),
            groups: 1,
            bias: true,
            activation: Activation::None,
        }
    }

    /// A depthwise convolution: `groups = channels`, `out_channels = channels * multiplier`.
    pub fn depthwise(channels: usize, multiplier: usize, kernel_size: impl IntoPair) -> Self {
        Self::new(channels, channels * multiplier, kernel_size).groups(channels)
    }

    /// Sets the stride.
    pub fn stride(mut self, stride: impl IntoPair) -> Self {
        self.stride = stride.into_pair();
        self
    }

    /// Sets symmetric padding.
    pub fn padding(mut self, padding: impl IntoPair) -> Self {
        self.padding = padding.into_pair();
        self.padding_after = None;
        self.padding_same = false;
        self
    }

    /// Sets the padding per side, `(before, after)` for the height (top, bottom) and the
    /// width (left, right): `F.pad(x, (left, right, top, bottom))` followed by an
    /// unpadded convolution, in one pass. Ports of TensorFlow / TFLite models use it for
    /// strided `'SAME'` convolutions ([`tf_same_padding`]).
    pub fn padding_asymmetric(mut self, height: (usize, usize), width: (usize, usize)) -> Self {
        self.padding = (height.0, width.0);
        self.padding_after = Some((height.1, width.1));
        self.padding_same = false;
        self
    }

    /// PyTorch's `padding='same'`: total padding `dilation * (kernel - 1)` per axis, half
    /// (rounded down) before and the rest after.
    pub fn padding_same(mut self) -> Self {
        self.padding_same = true;
        self
    }

    /// Sets the padding mode (`'zeros'`, `'reflect'`, `'replicate'`, `'circular'`).
    pub fn padding_mode(mut self, mode: PaddingMode) -> Self {
        self.padding_mode = mode;
        self
    }

    /// Padding `(before, after)` per axis `(height, width)`.
    pub fn pads(&self) -> ((usize, usize), (usize, usize)) {
        let axis = |p: usize, after: Option<usize>, k: usize, d: usize| {
            if self.padding_same {
                let total = d * (k.max(1) - 1);
                (total / 2, total - total / 2)
            } else {
                (p, after.unwrap_or(p))
            }
        };
        let after = self.padding_after;
        (
            axis(
                self.padding.0,
                after.map(|a| a.0),
                self.kernel_size.0,
                self.dilation.0,
            ),
            axis(
                self.padding.1,
                after.map(|a| a.1),
                self.kernel_size.1,
                self.dilation.1,
            ),
        )
    }

    /// Sets the dilation.
    pub fn dilation(mut self, dilation: impl IntoPair) -> Self {
        self.dilation = dilation.into_pair();
        self
    }

    /// Sets the number of groups.
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }

    /// Enables or disables the bias.
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// Sets the fused activation.
    pub fn activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// Input channels per group.
    pub fn in_per_group(&self) -> usize {
        self.in_channels / self.groups.max(1)
    }

    /// Output channels per group.
    pub fn out_per_group(&self) -> usize {
        self.out_channels / self.groups.max(1)
    }

    /// True for a depthwise convolution (`groups == in_channels`, any multiplier).
    pub fn is_depthwise(&self) -> bool {
        self.groups == self.in_channels
    }

    /// True for a 1x1, stride-1, unpadded, ungrouped convolution (a matrix product).
    pub fn is_pointwise(&self) -> bool {
        self.kernel_size == (1, 1)
            && self.stride == (1, 1)
            && self.pads() == ((0, 0), (0, 0))
            && self.groups == 1
    }

    /// PyTorch's weight shape `[C_out, C_in / groups, kH, kW]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        [
            self.out_channels,
            self.in_per_group(),
            self.kernel_size.0,
            self.kernel_size.1,
        ]
    }

    /// Checks the parameters on their own.
    pub fn validate(&self) -> Result<()> {
        if self.in_channels == 0 {
            return Err(invalid("in_channels", "must be at least 1, got 0"));
        }
        if self.out_channels == 0 {
            return Err(invalid("out_channels", "must be at least 1, got 0"));
        }
        if self.kernel_size.0 == 0 || self.kernel_size.1 == 0 {
            return Err(invalid(
                "kernel_size",
                format!("must be positive, got {:?}", self.kernel_size),
            ));
        }
        if self.stride.0 == 0 || self.stride.1 == 0 {
            return Err(invalid(
                "stride",
                format!("must be positive, got {:?}", self.stride),
            ));
        }
        if self.dilation.0 == 0 || self.dilation.1 == 0 {
            return Err(invalid(
                "dilation",
                format!("must be positive, got {:?}", self.dilation),
            ));
        }
        if self.groups == 0 {
            return Err(invalid("groups", "must be at least 1, got 0"));
        }
        if self.padding_same && self.stride != (1, 1) {
            return Err(invalid(
                "padding",
                format!(
                    "'same' padding needs stride 1 (as in PyTorch), got stride {:?}",
                    self.stride
                ),
            ));
        }
        if !self.in_channels.is_multiple_of(self.groups) {
            return Err(invalid(
                "groups",
                format!(
                    "in_channels ({}) must be divisible by groups ({})",
                    self.in_channels, self.groups
                ),
            ));
        }
        if !self.out_channels.is_multiple_of(self.groups) {
            return Err(invalid(
                "groups",
                format!(
                    "out_channels ({}) must be divisible by groups ({})",
                    self.out_channels, self.groups
                ),
            ));
        }
        let limit = u32::MAX as usize / 4;
        for (name, v) in [
            ("kernel_size", self.kernel_size.0.max(self.kernel_size.1)),
            ("stride", self.stride.0.max(self.stride.1)),
            ("padding", self.padding.0.max(self.padding.1)),
            (
                "padding_after",
                self.padding_after.map_or(0, |(h, w)| h.max(w)),
            ),
            ("dilation", self.dilation.0.max(self.dilation.1)),
        ] {
            if v > limit {
                return Err(invalid(name, format!("{v} is out of range")));
            }
        }
        Ok(())
    }

    /// Validates the parameters against an input shape `[N, C, H, W]` and returns the
    /// output shape `[N, C_out, H_out, W_out]`.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        self.validate()?;
        check_dims("input", &input)?;
        if input[1] != self.in_channels {
            return Err(Error::ShapeMismatch {
                name: "input",
                expected: vec![input[0], self.in_channels, input[2], input[3]],
                actual: input.to_vec(),
            });
        }
        let ((top, bottom), (left, right)) = self.pads();
        self.padding_mode
            .check(input[2], top.max(bottom), "height")?;
        self.padding_mode
            .check(input[3], left.max(right), "width")?;
        let out_h = conv_out_len(
            "kernel_size",
            input[2],
            self.kernel_size.0,
            self.stride.0,
            top + bottom,
            self.dilation.0,
        )?;
        let out_w = conv_out_len(
            "kernel_size",
            input[3],
            self.kernel_size.1,
            self.stride.1,
            left + right,
            self.dilation.1,
        )?;
        Ok([input[0], self.out_channels, out_h, out_w])
    }

    /// Parameters, MACs and bytes of this convolution on `input`.
    ///
    /// Parameters are `C_out * (C_in / g) * kH * kW (+ C_out bias)`, which is the seeds'
    /// `k^2 C_in C_out / g` for group convolution; MACs are that weight count times the
    /// number of output pixels (per image, times N).
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let out = self.output_shape(input)?;
        let weights =
            (self.out_channels * self.in_per_group() * self.kernel_size.0 * self.kernel_size.1)
                as u64;
        let params = weights
            + if self.bias {
                self.out_channels as u64
            } else {
                0
            };
        let out_pixels = (out[0] * out[2] * out[3]) as u64;
        let elems_in: u64 = input.iter().product::<usize>() as u64;
        let elems_out: u64 = out.iter().product::<usize>() as u64;
        Ok(Cost {
            params,
            macs: weights * out_pixels,
            bytes: 4 * (elems_in + elems_out + params),
        })
    }
}

/// TensorFlow's `'SAME'` padding `(before, after)` along one axis of length `input`: the
/// output has `ceil(input / stride)` positions and the padding they need, `max((out - 1) *
/// stride + dilation * (kernel - 1) + 1 - input, 0)`, is split with the odd one after. With
/// stride 2 and an even input this is asymmetric (3x3: `(0, 1)`, 5x5: `(1, 2)`), which
/// PyTorch's symmetric `padding` cannot express; pass the result to
/// [`Conv2dParams::padding_asymmetric`].
pub fn tf_same_padding(
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
) -> (usize, usize) {
    let out = input.div_ceil(stride.max(1));
    let span = dilation * kernel.saturating_sub(1) + 1;
    let total = ((out.max(1) - 1) * stride + span).saturating_sub(input);
    (total / 2, total - total / 2)
}

/// Where a residual fused into a convolution ([`Conv2d::forward_residual`]) joins its
/// output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResidualJoin {
    /// `act(conv(x)) + r`.
    AfterActivation,
    /// `act(conv(x) + r)`.
    BeforeActivation,
    /// `a(conv(x) + r)` for a convolution without an activation of its own: a
    /// ResNet-style block whose ReLU follows the add, while its last convolution (batch
    /// norm folded in) has none.
    AddThen(Activation),
}

/// How a convolution's padding is filled (PyTorch's `padding_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PaddingMode {
    /// Zeros (`'zeros'`).
    #[default]
    Zeros,
    /// Mirror without repeating the edge (`'reflect'`); padding must be below the size.
    Reflect,
    /// Repeat the edge value (`'replicate'`).
    Replicate,
    /// Wrap around (`'circular'`); padding must not exceed the size.
    Circular,
}

impl PaddingMode {
    /// The value of the `PAD_MODE` override in `shaders/common.wgsl`.
    pub(crate) fn shader_code(self) -> f64 {
        match self {
            PaddingMode::Zeros => 0.0,
            PaddingMode::Reflect => 1.0,
            PaddingMode::Replicate => 2.0,
            PaddingMode::Circular => 3.0,
        }
    }

    /// PyTorch's limits: reflect needs `pad < size`, circular `pad <= size`.
    fn check(self, size: usize, pad: usize, axis: &str) -> Result<()> {
        let ok = match self {
            PaddingMode::Reflect => pad < size,
            PaddingMode::Circular => pad <= size,
            _ => true,
        };
        if !ok {
            return Err(invalid(
                "padding",
                format!("{pad} is too large for {self:?} padding of {axis} {size}"),
            ));
        }
        Ok(())
    }
}

/// Output length of a convolution along one axis with `padding` in total (both sides),
/// or an error naming `name` when the dilated kernel does not fit the padded input.
pub(crate) fn conv_out_len(
    name: &'static str,
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Result<usize> {
    let padded = input + padding;
    let extent = dilation * (kernel - 1) + 1;
    if extent > padded {
        return Err(invalid(
            name,
            format!(
                "dilated kernel extent {extent} (kernel {kernel}, dilation {dilation}) is larger \
                 than the padded input {padded} (input {input}, padding {padding}): output size \
                 would be zero"
            ),
        ));
    }
    Ok((padded - extent) / stride + 1)
}

/// The GPU kernels a convolution can run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvKernel {
    /// Register-tiled direct convolution: each invocation computes a row strip of output
    /// pixels for 4 or 8 output channels. Handles every configuration.
    Direct,
    /// Tiled matrix product for 1x1 stride-1 unpadded ungrouped convolutions, loading
    /// four pixels per instruction when `H * W` is divisible by 4 (four scalar loads per
    /// pixel group otherwise).
    Pointwise,
    /// One output channel per invocation with per-channel weights; needs
    /// `groups == in_channels` (any channel multiplier).
    Depthwise,
}

impl ConvKernel {
    /// Every kernel, for tests that force each one.
    pub const ALL: [ConvKernel; 3] = [
        ConvKernel::Direct,
        ConvKernel::Pointwise,
        ConvKernel::Depthwise,
    ];

    /// Whether this kernel can run `params` on an input of shape `input`.
    pub fn supports(self, params: &Conv2dParams, input: [usize; 4]) -> bool {
        // Every kernel handles any input size (the pointwise kernel's scalar variant
        // takes planes that are not a multiple of 4 pixels).
        let _ = input;
        match self {
            ConvKernel::Direct => true,
            ConvKernel::Pointwise => params.is_pointwise(),
            ConvKernel::Depthwise => params.is_depthwise(),
        }
    }
}

/// The kernel the library runs for `params` on `input`: the specialised kernel where one
/// applies, the direct kernel otherwise.
pub fn select_kernel(params: &Conv2dParams, input: [usize; 4]) -> ConvKernel {
    if ConvKernel::Depthwise.supports(params, input) && params.in_channels > 1 {
        ConvKernel::Depthwise
    } else if ConvKernel::Pointwise.supports(params, input)
        && (input[2] * input[3]).is_multiple_of(4)
    {
        // On planes that are not a multiple of 4 pixels (7 x 7 maps) the pointwise
        // kernel's scalar variant measured no faster than the direct kernel (lavapipe:
        // 320 -> 1280 at 7 x 7, 3.3 ms both).
        ConvKernel::Pointwise
    } else {
        ConvKernel::Direct
    }
}

/// Most output pixels per invocation along a row (`PX` in `conv_direct.wgsl`).
pub(crate) const DIRECT_PX_MAX: usize = 16;
/// Longest input row segment `conv_direct.wgsl` keeps in registers (`ROW`).
const DIRECT_ROW_MAX: usize = 40;
/// Most output pixels per invocation of `conv_depthwise.wgsl` (`PX`); wider strips
/// measured slower there (more live registers per lane, same loads per output).
const DEPTHWISE_PX_MAX: usize = 8;
/// Longest input row segment `conv_depthwise.wgsl` keeps in registers (`ROW`).
const DEPTHWISE_ROW_MAX: usize = 40;
/// Pixels per invocation in `conv_pointwise.wgsl` (four vec4).
const POINTWISE_PX: usize = 16;
/// Invocations per workgroup in every conv shader.
pub(crate) const WORKGROUP: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct ConvUniform {
    pub(crate) n: u32,
    pub(crate) c_in: u32,
    pub(crate) h: u32,
    pub(crate) w: u32,
    pub(crate) c_out: u32,
    pub(crate) oh: u32,
    pub(crate) ow: u32,
    pub(crate) groups: u32,
    pub(crate) cin_pg: u32,
    pub(crate) cout_pg: u32,
    pub(crate) cout_pg_pad: u32,
    pub(crate) oc_blocks_pg: u32,
    pub(crate) pad_h: u32,
    pub(crate) pad_w: u32,
    pub(crate) strips_x: u32,
    pub(crate) work: u32,
}

/// A convolution layer on the GPU: parameters plus weights uploaded once, in the layout
/// each kernel wants (repacked on first use of that kernel).
pub struct Conv2d {
    gpu: Gpu,
    params: Conv2dParams,
    /// PyTorch-layout weights, kept on the host for repacking.
    weight_host: Vec<f32>,
    bias: Arc<PooledBuffer>,
    /// `[C_out, C_in/g, kH, kW]` as given (depthwise kernel).
    weight_plain: OnceLock<Arc<PooledBuffer>>,
    /// `[g][C_in/g][kH][kW][C_out/g padded to the channel tile]` (direct and pointwise).
    weight_blocked: OnceLock<Arc<PooledBuffer>>,
}

impl std::fmt::Debug for Conv2d {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conv2d")
            .field("params", &self.params)
            .finish()
    }
}

impl Conv2d {
    /// Uploads a convolution layer. `weight` has PyTorch's shape
    /// `[C_out, C_in / groups, kH, kW]`; `bias` has length `C_out` and must be given exactly
    /// when `params.bias` is true.
    pub fn new(
        gpu: &Gpu,
        params: Conv2dParams,
        weight: ArrayView4<f32>,
        bias: Option<ArrayView1<f32>>,
    ) -> Result<Self> {
        params.validate()?;
        if weight.shape() != params.weight_shape() {
            return Err(Error::ShapeMismatch {
                name: "weight",
                expected: params.weight_shape().to_vec(),
                actual: weight.shape().to_vec(),
            });
        }
        let bias_host = bias_or_zeros(params.bias, params.out_channels, bias)?;
        let weight_host: Vec<f32> = weight.iter().copied().collect();
        gpu.check_binding_size("weight", 4 * blocked_len(&params) as u64)?;
        Ok(Conv2d {
            gpu: gpu.clone(),
            params,
            weight_host,
            bias: gpu.upload_f32("bias", &bias_host)?,
            weight_plain: OnceLock::new(),
            weight_blocked: OnceLock::new(),
        })
    }

    /// The layer's parameters.
    pub fn params(&self) -> &Conv2dParams {
        &self.params
    }

    /// Output shape for `input`, or the error that `forward` would return.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        self.params.output_shape(input)
    }

    /// Records the convolution of `input` with the kernel [`select_kernel`] picks.
    pub fn forward(&self, rec: &mut Recorder<'_>, input: &Tensor) -> Result<Tensor> {
        let kernel = select_kernel(&self.params, input.shape());
        self.forward_with(rec, input, kernel)
    }

    /// Records the convolution with a chosen kernel (an error if it does not apply).
    pub fn forward_with(
        &self,
        rec: &mut Recorder<'_>,
        input: &Tensor,
        kernel: ConvKernel,
    ) -> Result<Tensor> {
        self.record(rec, input, kernel, 0, None)
    }

    /// Records the convolution with a residual added in the same pass: `act(conv(x)) + r`
    /// ([`ResidualJoin::AfterActivation`], MobileNet's linear bottlenecks, whose last
    /// convolution has no activation) or `act(conv(x) + r)`
    /// ([`ResidualJoin::BeforeActivation`]), or `a(conv(x) + r)` for a convolution without
    /// activation ([`ResidualJoin::AddThen`], ResNet's blocks). `residual` has the
    /// output's shape. Saves the separate add's pass and its output buffer.
    pub fn forward_residual(
        &self,
        rec: &mut Recorder<'_>,
        input: &Tensor,
        residual: &Tensor,
        join: ResidualJoin,
    ) -> Result<Tensor> {
        let kernel = select_kernel(&self.params, input.shape());
        self.forward_residual_with(rec, input, residual, join, kernel)
    }

    /// [`Conv2d::forward_residual`] with a chosen kernel.
    pub fn forward_residual_with(
        &self,
        rec: &mut Recorder<'_>,
        input: &Tensor,
        residual: &Tensor,
        join: ResidualJoin,
        kernel: ConvKernel,
    ) -> Result<Tensor> {
        residual.check_gpu(rec.gpu(), "residual")?;
        if matches!(join, ResidualJoin::AddThen(_)) && self.params.activation != Activation::None {
            return Err(invalid(
                "join",
                format!(
                    "AddThen applies its own activation; the convolution already has {:?}",
                    self.params.activation
                ),
            ));
        }
        let out = self.params.output_shape(input.shape())?;
        super::same_shape("residual", out, residual.shape())?;
        self.record(rec, input, kernel, 0, Some((residual, join)))
    }

    /// Records the convolution followed by a channel shuffle with `groups`, fused: the
    /// output is written already shuffled (equal to
    /// [`channel_shuffle`](super::channel::channel_shuffle) of the plain output), so a
    /// ShuffleNet unit needs no separate shuffle pass.
    pub fn forward_shuffled(
        &self,
        rec: &mut Recorder<'_>,
        input: &Tensor,
        groups: usize,
    ) -> Result<Tensor> {
        if groups == 0 || !self.params.out_channels.is_multiple_of(groups) {
            return Err(invalid(
                "groups",
                format!(
                    "out_channels ({}) must be divisible by the shuffle groups ({groups})",
                    self.params.out_channels
                ),
            ));
        }
        let kernel = select_kernel(&self.params, input.shape());
        self.record(rec, input, kernel, groups, None)
    }

    fn record(
        &self,
        rec: &mut Recorder<'_>,
        input: &Tensor,
        kernel: ConvKernel,
        shuffle_groups: usize,
        residual: Option<(&Tensor, ResidualJoin)>,
    ) -> Result<Tensor> {
        let gpu = rec.gpu();
        input.check_gpu(gpu, "input")?;
        check_owner(self.gpu.id(), gpu, "layer")?;
        let p = &self.params;
        let in_shape = input.shape();
        let out_shape = p.output_shape(in_shape)?;
        if !kernel.supports(p, in_shape) {
            return Err(invalid(
                "kernel",
                format!("{kernel:?} does not support {p:?} on input {in_shape:?}"),
            ));
        }
        let output = rec.empty("output", out_shape)?;
        // Output channels per invocation in vec4 units; the blocked weight layout is padded
        // for the largest tile, so every kernel's tile divides it.
        let oc_vec = match kernel {
            ConvKernel::Direct => tile_oc_vec(p.out_per_group()),
            ConvKernel::Pointwise => pointwise_oc_vec(p.out_per_group()),
            ConvKernel::Depthwise => 1,
        };
        let cout_pg = p.out_per_group();
        let cout_pg_pad = blocked_pad(cout_pg);
        let oc_blocks_pg = cout_pg.div_ceil(4 * oc_vec);
        let [n, _, oh, ow] = out_shape;
        let mut u = ConvUniform {
            n: n as u32,
            c_in: p.in_channels as u32,
            h: in_shape[2] as u32,
            w: in_shape[3] as u32,
            c_out: p.out_channels as u32,
            oh: oh as u32,
            ow: ow as u32,
            groups: p.groups as u32,
            cin_pg: p.in_per_group() as u32,
            cout_pg: cout_pg as u32,
            cout_pg_pad: cout_pg_pad as u32,
            oc_blocks_pg: oc_blocks_pg as u32,
            pad_h: p.pads().0 .0 as u32,
            pad_w: p.pads().1 .0 as u32,
            strips_x: 0,
            work: 0,
        };
        let act = (
            "ACT",
            match residual {
                Some((_, ResidualJoin::AddThen(a))) => a.shader_code(),
                _ => p.activation.shader_code(),
            },
        );
        let shuffle = ("SHUFFLE_G", shuffle_groups as f64);
        let pad_mode = ("PAD_MODE", p.padding_mode.shader_code());
        let join = (
            "RESIDUAL",
            match residual {
                None => 0.0,
                Some((_, ResidualJoin::AfterActivation)) => 1.0,
                Some((_, ResidualJoin::BeforeActivation | ResidualJoin::AddThen(_))) => 2.0,
            },
        );
        // Bound to the input when there is none (read-only aliasing is allowed).
        let res = residual.map_or(input, |(r, _)| r).pooled();
        match kernel {
            ConvKernel::Direct => {
                let px = strip_px(ow, DIRECT_PX_MAX);
                let strips_x = ow.div_ceil(px);
                let strips = oh * strips_x;
                let strip_blocks = strips.div_ceil(WORKGROUP);
                u.strips_x = strips_x as u32;
                u.work = strip_blocks as u32;
                let row = (px - 1) * p.stride.1 + (p.kernel_size.1 - 1) * p.dilation.1 + 1;
                let rowbuf = row <= DIRECT_ROW_MAX;
                let pipeline = gpu.pipeline(
                    "conv_direct.wgsl",
                    &[
                        ("PX", px as u32),
                        ("OC_VEC", oc_vec as u32),
                        ("ROW", if rowbuf { row as u32 } else { 1 }),
                        ("ROWBUF", rowbuf as u32),
                    ],
                    &[
                        act,
                        shuffle,
                        pad_mode,
                        join,
                        ("KH", p.kernel_size.0 as f64),
                        ("KW", p.kernel_size.1 as f64),
                        ("SH", p.stride.0 as f64),
                        ("SW", p.stride.1 as f64),
                        ("DH", p.dilation.0 as f64),
                        ("DW", p.dilation.1 as f64),
                    ],
                )?;
                let weight = self.blocked()?;
                let groups_total = (n * p.groups * oc_blocks_pg * strip_blocks) as u64;
                rec.dispatch(
                    &pipeline,
                    &u,
                    &[input.pooled(), weight, &self.bias, output.pooled(), res],
                    groups_total,
                )?;
            }
            ConvKernel::Pointwise => {
                let pixels = in_shape[2] * in_shape[3];
                let tiles = pixels.div_ceil(POINTWISE_PX);
                let tile_blocks = tiles.div_ceil(WORKGROUP);
                u.strips_x = tiles as u32;
                u.work = tile_blocks as u32;
                // Planes of a multiple of 4 pixels are read and written as vec4s.
                let shader = if pixels.is_multiple_of(4) {
                    "conv_pointwise.wgsl"
                } else {
                    "conv_pointwise_scalar.wgsl"
                };
                let pipeline = gpu.pipeline(
                    shader,
                    &[("Q", (POINTWISE_PX / 4) as u32), ("OC_VEC", oc_vec as u32)],
                    &[act, shuffle, join],
                )?;
                let weight = self.blocked()?;
                rec.dispatch(
                    &pipeline,
                    &u,
                    &[input.pooled(), weight, &self.bias, output.pooled(), res],
                    (n * oc_blocks_pg * tile_blocks) as u64,
                )?;
            }
            ConvKernel::Depthwise => {
                // Aligned vec4 row loads when every strip starts at the same offset
                // from a 4-aligned column: 8-pixel strips (the last one may overhang).
                let vec = p.padding_mode == PaddingMode::Zeros
                    && in_shape[3].is_multiple_of(4)
                    && (DEPTHWISE_PX_MAX * p.stride.1).is_multiple_of(4);
                let px = if vec {
                    DEPTHWISE_PX_MAX
                } else {
                    strip_px(ow, DEPTHWISE_PX_MAX)
                };
                let strips_x = ow.div_ceil(px);
                let total = n * p.out_channels * oh;
                u.strips_x = strips_x as u32;
                u.work = total as u32;
                let row = (px - 1) * p.stride.1 + (p.kernel_size.1 - 1) * p.dilation.1 + 1;
                let rowbuf = row <= DEPTHWISE_ROW_MAX;
                let vec = vec && rowbuf;
                let shift = (4 - u.pad_w % 4) % 4;
                // Vector stores when output rows and strips are multiples of 4 pixels.
                let shader = if px.is_multiple_of(4) && ow.is_multiple_of(4) {
                    "conv_depthwise_vec.wgsl"
                } else {
                    "conv_depthwise.wgsl"
                };
                let pipeline = gpu.pipeline(
                    shader,
                    &[
                        ("PX", px as u32),
                        ("ROW", if rowbuf { row as u32 } else { 1 }),
                        ("ROWBUF", rowbuf as u32),
                        ("VEC", vec as u32),
                    ],
                    &[
                        act,
                        shuffle,
                        pad_mode,
                        ("KH", p.kernel_size.0 as f64),
                        ("KW", p.kernel_size.1 as f64),
                        ("SH", p.stride.0 as f64),
                        ("SW", p.stride.1 as f64),
                        ("DH", p.dilation.0 as f64),
                        ("DW", p.dilation.1 as f64),
                        ("SHIFT", if vec { shift as f64 } else { 0.0 }),
                        join,
                    ],
                )?;
                let weight = self.plain()?;
                rec.dispatch(
                    &pipeline,
                    &u,
                    &[
                        input.pooled(),
                        weight,
                        &self.bias,
                        output.pooled(),
                        input.pooled(),
                        res,
                    ],
                    total.div_ceil(WORKGROUP) as u64,
                )?;
            }
        }
        Ok(output)
    }

    /// Cost of this layer on `input`.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        self.params.cost(input)
    }

    fn plain(&self) -> Result<&Arc<PooledBuffer>> {
        if let Some(b) = self.weight_plain.get() {
            return Ok(b);
        }
        let buf = self.gpu.upload_f32("weight", &self.weight_host)?;
        Ok(self.weight_plain.get_or_init(|| buf))
    }

    fn blocked(&self) -> Result<&Arc<PooledBuffer>> {
        if let Some(b) = self.weight_blocked.get() {
            return Ok(b);
        }
        let packed = pack_blocked(&self.params, &self.weight_host);
        let buf = self.gpu.upload_f32("weight", &packed)?;
        Ok(self.weight_blocked.get_or_init(|| buf))
    }
}

/// The bias as given, or zeros for a layer without one; an error when the bias and the
/// `bias` flag disagree or its length is not `out_channels`.
pub(crate) fn bias_or_zeros(
    has_bias: bool,
    out_channels: usize,
    bias: Option<ArrayView1<f32>>,
) -> Result<Vec<f32>> {
    match (has_bias, bias) {
        (true, Some(b)) if b.len() != out_channels => Err(Error::ShapeMismatch {
            name: "bias",
            expected: vec![out_channels],
            actual: vec![b.len()],
        }),
        (true, Some(b)) => Ok(b.to_vec()),
        (false, None) => Ok(vec![0.0; out_channels]),
        (true, None) => Err(invalid(
            "bias",
            "params.bias is true but no bias was given (use .bias(false) for none)",
        )),
        (false, Some(_)) => Err(invalid("bias", "a bias was given but params.bias is false")),
    }
}

/// Output channels per invocation of the register-tiled kernels, in vec4 units: up to 4
/// (sixteen channels), fewer when a group has fewer output channels, where the rest of the
/// tile would be padding.
pub(crate) fn tile_oc_vec(cout_pg: usize) -> usize {
    cout_pg.div_ceil(4).min(4)
}

/// Pixels per invocation for the row-strip kernels: as many as fit (up to `max`), spread
/// evenly over the row so the last strip is not mostly padding (56 -> 4 x 14 for 16).
pub(crate) fn strip_px(out_w: usize, max: usize) -> usize {
    let strips = out_w.div_ceil(max);
    out_w.div_ceil(strips)
}

/// Output channels per invocation of `conv_pointwise.wgsl`, in vec4 units (1..=4): the
/// tile that wastes the fewest padded channels, the wider one on a tie (24 -> 2 x 12).
pub(crate) fn pointwise_oc_vec(cout: usize) -> usize {
    (1..=4usize)
        .rev()
        .min_by_key(|v| cout.div_ceil(4 * v) * 4 * v - cout)
        .unwrap_or(1)
}

/// Output channels per group in the blocked weight layout: padded so that every kernel's
/// channel tile reads inside the row.
pub(crate) fn blocked_pad(cout_pg: usize) -> usize {
    [4 * tile_oc_vec(cout_pg), 4 * pointwise_oc_vec(cout_pg)]
        .into_iter()
        .map(|tile| cout_pg.div_ceil(tile) * tile)
        .max()
        .unwrap_or(cout_pg)
}

fn blocked_len(p: &Conv2dParams) -> usize {
    p.groups * p.in_per_group() * p.kernel_size.0 * p.kernel_size.1 * blocked_pad(p.out_per_group())
}

/// Repacks PyTorch weights `[C_out][C_in/g][kH][kW]` into `[g][C_in/g][kH][kW][C_out/g pad]`
/// so that one vec4 load brings four output channels' weights for one tap.
fn pack_blocked(p: &Conv2dParams, w: &[f32]) -> Vec<f32> {
    let (cin_pg, cout_pg) = (p.in_per_group(), p.out_per_group());
    let pad = blocked_pad(cout_pg);
    let (kh, kw) = p.kernel_size;
    let mut out = vec![0.0f32; blocked_len(p)];
    for g in 0..p.groups {
        for co in 0..cout_pg {
            for ci in 0..cin_pg {
                for ky in 0..kh {
                    for kx in 0..kw {
                        let src = (((g * cout_pg + co) * cin_pg + ci) * kh + ky) * kw + kx;
                        let dst = ((((g * cin_pg + ci) * kh + ky) * kw + kx) * pad) + co;
                        out[dst] = w[src];
                    }
                }
            }
        }
    }
    out
}

/// Parameters of a depthwise-separable convolution (MobileNet): a depthwise `k x k`
/// convolution with channel multiplier, then a pointwise 1x1 convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DepthwiseSeparableParams {
    /// The depthwise stage (`groups == in_channels`).
    pub depthwise: Conv2dParams,
    /// The pointwise stage (1x1).
    pub pointwise: Conv2dParams,
}

impl DepthwiseSeparableParams {
    /// `in_channels -> in_channels * depth_multiplier` depthwise `kernel_size`, then
    /// `-> out_channels` pointwise; both with bias and no activation until set.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel_size: impl IntoPair,
        depth_multiplier: usize,
    ) -> Self {
        DepthwiseSeparableParams {
            depthwise: Conv2dParams::depthwise(in_channels, depth_multiplier, kernel_size),
            pointwise: Conv2dParams::new(in_channels * depth_multiplier, out_channels, 1),
        }
    }

    /// Checks that the stages fit together: a depthwise first stage, a 1x1 second stage
    /// whose input channels are the first stage's output channels.
    pub fn validate(&self) -> Result<()> {
        self.depthwise.validate()?;
        self.pointwise.validate()?;
        if !self.depthwise.is_depthwise() {
            return Err(invalid(
                "depthwise.groups",
                format!(
                    "must equal in_channels ({}) for the depthwise stage, got {}",
                    self.depthwise.in_channels, self.depthwise.groups
                ),
            ));
        }
        if self.pointwise.kernel_size != (1, 1) {
            return Err(invalid(
                "pointwise.kernel_size",
                format!("must be (1, 1), got {:?}", self.pointwise.kernel_size),
            ));
        }
        if self.pointwise.in_channels != self.depthwise.out_channels {
            return Err(invalid(
                "pointwise.in_channels",
                format!(
                    "must equal the depthwise stage's out_channels ({}), got {}",
                    self.depthwise.out_channels, self.pointwise.in_channels
                ),
            ));
        }
        Ok(())
    }

    /// Validates both stages against `input` and returns the output shape.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        self.validate()?;
        let mid = self.depthwise.output_shape(input)?;
        self.pointwise.output_shape(mid)
    }

    /// Combined cost of both stages.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        self.validate()?;
        let mid = self.depthwise.output_shape(input)?;
        Ok(self.depthwise.cost(input)? + self.pointwise.cost(mid)?)
    }
}

/// A depthwise-separable convolution on the GPU, recorded as two dispatches in one
/// submission (depthwise, then pointwise). The intermediate tensor never leaves the GPU.
#[derive(Debug)]
pub struct DepthwiseSeparableConv2d {
    /// The depthwise stage.
    pub depthwise: Conv2d,
    /// The pointwise stage.
    pub pointwise: Conv2d,
}

impl DepthwiseSeparableConv2d {
    /// Uploads both stages; weights and biases in PyTorch layout.
    pub fn new(
        gpu: &Gpu,
        params: DepthwiseSeparableParams,
        depthwise_weight: ArrayView4<f32>,
        depthwise_bias: Option<ArrayView1<f32>>,
        pointwise_weight: ArrayView4<f32>,
        pointwise_bias: Option<ArrayView1<f32>>,
    ) -> Result<Self> {
        params.validate()?;
        Ok(DepthwiseSeparableConv2d {
            depthwise: Conv2d::new(gpu, params.depthwise, depthwise_weight, depthwise_bias)?,
            pointwise: Conv2d::new(gpu, params.pointwise, pointwise_weight, pointwise_bias)?,
        })
    }

    /// Records both stages.
    pub fn forward(&self, rec: &mut Recorder<'_>, input: &Tensor) -> Result<Tensor> {
        let mid = self.depthwise.forward(rec, input)?;
        self.pointwise.forward(rec, &mid)
    }
}
