//! 2-D convolution with PyTorch's semantics (`torch.nn.Conv2d` / `F.conv2d`): standard,
//! pointwise, depthwise (with channel multiplier), group, dilated, and depthwise separable.
//!
//! Weights use PyTorch's layout `[C_out, C_in / groups, kH, kW]`. Padding is symmetric
//! (`padding=p`), `'same'` (`padding_same()`, stride 1, the odd extra row / column at
//! the bottom / right as in PyTorch), or explicit per side (`padding_asymmetric`, what
//! `F.pad` before the convolution or TensorFlow's strided `'SAME'` gives, see
//! [`tf_same_padding`]), with PyTorch's four `padding_mode`s. The output size per axis is
//! `floor((in + pad_before + pad_after - dilation * (kernel - 1) - 1) / stride) + 1`.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use ndarray::{Array1, Array4, ArrayView1, ArrayView4};

use super::channel::ParamActivation;
use super::copy::{CropParams2d, Pad2dParams};
use super::{setters, Activation, Cost, IntoPair, Window, WINDOW_MAX};
use crate::error::{fail_if, invalid, positive, Error, Result};
use crate::gpu::{
    check_dims, check_owner, DeviceCaps, Gpu, LazyWeights, PooledBuffer, Recorder, Tensor,
};
use crate::launch::{
    loop_nest, loop_tree, read, read_opt, specialize, texels, uniform, write, write_opt, Args,
    Binding, Constants, Count, Kernel, KernelInfo, Launch, Specialize, Trip, LOOP_BUDGET,
    TEXEL_ROW, TEXEL_ROWS_ANYWHERE,
};
use crate::weights::{key, StateDict};

/// The kernel rows and columns of a convolution that read its input on a given input
/// shape ([`Conv2dParams::live_taps`]): first and last, inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LiveTaps {
    /// First and last kernel row kept.
    pub rows: (usize, usize),
    /// First and last kernel column kept.
    pub cols: (usize, usize),
}

impl LiveTaps {
    /// How many taps: kept rows times kept columns (none for an inverted range).
    pub fn count(&self) -> usize {
        let ((r0, r1), (c0, c1)) = (self.rows, self.cols);
        (r1 + 1).saturating_sub(r0) * (c1 + 1).saturating_sub(c0)
    }

    /// The taps' weights out of a PyTorch-layout weight `[C_out, C_in / groups, kH, kW]`
    /// (the weight of [`Conv2dParams::trimmed`]); an error where the taps do not lie
    /// inside the weight's window.
    pub fn weight(&self, weight: ArrayView4<f32>) -> Result<Array4<f32>> {
        let &[.., kh, kw] = weight.shape() else {
            unreachable!("a 4-d view")
        };
        self.check((kh, kw))?;
        let ((r0, r1), (c0, c1)) = (self.rows, self.cols);
        Ok(weight
            .slice(ndarray::s![.., .., r0..=r1, c0..=c1])
            .to_owned())
    }

    /// An error naming the taps where they are not a non-empty range of each axis of a
    /// `kernel_size` window.
    fn check(&self, kernel_size: (usize, usize)) -> Result<()> {
        let (kh, kw) = kernel_size;
        let ((r0, r1), (c0, c1)) = (self.rows, self.cols);
        if r0 > r1 || r1 >= kh || c0 > c1 || c1 >= kw {
            return Err(invalid(
                "taps",
                format!(
                    "rows {:?} and columns {:?} are not first <= last inside a {kh} x {kw} \
                     kernel",
                    self.rows, self.cols
                ),
            ));
        }
        Ok(())
    }
}

/// The first and last of the `k` taps (stride `s`, dilation `d`) that read inside an axis
/// of `size` for some of its `out` outputs with padding `(before, after)`, kept wider where
/// dropping a tap would need negative padding.
fn live_range(
    size: usize,
    out: usize,
    (k, s, d): (usize, usize, usize),
    (before, after): (usize, usize),
) -> (usize, usize) {
    // Output o reads index o * s + t * d - before with tap t: the first output reading at
    // or past 0 is the only candidate for the lowest index inside.
    let live = |t: usize| {
        let at = t * d;
        let o = if at >= before {
            0
        } else {
            (before - at).div_ceil(s)
        };
        o < out && o * s + at - before < size
    };
    match ((0..k).find(|&t| live(t)), (0..k).rev().find(|&t| live(t))) {
        (Some(first), Some(last)) => (
            first.min(before / d),
            last.max((k - 1).saturating_sub(after / d)),
        ),
        _ => (0, k - 1),
    }
}

/// A rectangle of a convolution's output and the taps that read inside the input for
/// every output in it ([`Conv2dParams::tap_regions`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TapRegion {
    /// Output rows `start..end`.
    pub rows: (usize, usize),
    /// Output columns `start..end`.
    pub cols: (usize, usize),
    /// The kernel rows and columns that read the input there (all others read padding).
    pub taps: LiveTaps,
}

impl TapRegion {
    /// Outputs per sample and channel: the rectangle's rows times its columns (none for
    /// an inverted range).
    pub fn outputs(&self) -> usize {
        self.rows.1.saturating_sub(self.rows.0) * self.cols.1.saturating_sub(self.cols.0)
    }
}

/// A run of outputs along one axis, `(first, end)`, and the first and last taps that read
/// inside the axis for each of them.
type TapBand = ((usize, usize), (usize, usize));

/// Along one axis of a stride-1 convolution (kernel `k`, dilation `d`, padding `before`
/// on an axis of `size` with `out` outputs): the runs of outputs whose live taps (those
/// reading inside the axis) are the same; `None` if an output reads only padding.
fn tap_bands(
    size: usize,
    out: usize,
    (k, d): (usize, usize),
    before: usize,
) -> Option<Vec<TapBand>> {
    let mut bands: Vec<TapBand> = Vec::new();
    for o in 0..out {
        // Tap t reads index o + t * d - before.
        let inside = |t: &usize| o + t * d >= before && o + t * d - before < size;
        let first = (0..k).find(inside)?;
        let last = (0..k).rev().find(inside)?;
        match bands.last_mut() {
            Some((run, taps)) if *taps == (first, last) => run.1 = o + 1,
            _ => bands.push(((o, o + 1), (first, last))),
        }
    }
    Some(bands)
}

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
    /// An activation with parameters (leaky ReLU, ELU, hardtanh, softplus) fused after
    /// `activation` (default none): `nn.Conv2d` followed by `nn.LeakyReLU(0.2)` in one pass.
    pub param_activation: Option<ParamActivation>,
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
            param_activation: None,
        }
    }

    /// A depthwise convolution: `groups = channels`, `out_channels = channels * multiplier`.
    pub fn depthwise(channels: usize, multiplier: usize, kernel_size: impl IntoPair) -> Self {
        Self::new(channels, channels * multiplier, kernel_size).groups(channels)
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

    /// The kernel rows and columns that read the input for at least one output on
    /// `input`, where they are fewer than the kernel's: with zero padding, a tap whose
    /// every read falls in the padding adds nothing. An atrous convolution whose dilation
    /// reaches past the map (DeepLab's ASPP at rates 24 and 36 on a 20 x 20 map) is its
    /// centre tap alone, a pointwise convolution. `None` when every tap reads the input
    /// for some output, for other padding modes, or when the input does not fit the
    /// parameters. Dead taps are dropped only as far as the padding they skip: the
    /// convolution of [`Conv2dParams::trimmed`] never needs negative padding.
    pub fn live_taps(&self, input: [usize; 4]) -> Option<LiveTaps> {
        if self.padding_mode != PaddingMode::Zeros {
            return None;
        }
        let out = self.output_shape(input).ok()?;
        let (pads_h, pads_w) = self.pads();
        let axis = |a: usize, pads: (usize, usize), pick: fn((usize, usize)) -> usize| {
            live_range(
                input[2 + a],
                out[2 + a],
                (
                    pick(self.kernel_size),
                    pick(self.stride),
                    pick(self.dilation),
                ),
                pads,
            )
        };
        let taps = LiveTaps {
            rows: axis(0, pads_h, |p| p.0),
            cols: axis(1, pads_w, |p| p.1),
        };
        let (kh, kw) = self.kernel_size;
        (taps.rows != (0, kh - 1) || taps.cols != (0, kw - 1)).then_some(taps)
    }

    /// The same convolution with the window cut to `taps` ([`Conv2dParams::live_taps`]):
    /// the padding before shrinks by the dropped leading taps times the dilation, the
    /// padding after by the trailing ones, so every output reads the same inputs with the
    /// same weights and the output shape is unchanged. An axis left with one tap gets
    /// dilation 1 (it no longer matters). An error where the taps are not a range of the
    /// kernel's window, or drop more taps than the padding covers (any taps that
    /// [`Conv2dParams::live_taps`] gives are fine).
    pub fn trimmed(&self, taps: LiveTaps) -> Result<Conv2dParams> {
        taps.check(self.kernel_size)?;
        let ((top, bottom), (left, right)) = self.pads();
        let (kh, kw) = self.kernel_size;
        let (dh, dw) = self.dilation;
        let ((r0, r1), (c0, c1)) = (taps.rows, taps.cols);
        let shrunk = |pad: usize, dropped: usize, d: usize| pad.checked_sub(dropped * d);
        let (Some(top), Some(left), Some(bottom), Some(right)) = (
            shrunk(top, r0, dh),
            shrunk(left, c0, dw),
            shrunk(bottom, kh - 1 - r1, dh),
            shrunk(right, kw - 1 - c1, dw),
        ) else {
            return Err(invalid(
                "taps",
                format!(
                    "rows {:?} and columns {:?} drop taps inside the input: padding {:?} \
                     with dilation {:?} covers fewer",
                    taps.rows,
                    taps.cols,
                    self.pads(),
                    self.dilation
                ),
            ));
        };
        let (before, after) = ((top, left), (bottom, right));
        Ok(Conv2dParams {
            padding: before,
            padding_after: (after != before).then_some(after),
            ..self.region_params(taps)
        })
    }

    /// For stride 1 and zero padding, the output cut into rectangles in each of which
    /// the same kernel rows and columns read inside the input for every output, the
    /// others only padding: each rectangle is the convolution of a crop of the input with
    /// those taps alone and no padding (what [`Conv2d::forward`] runs). DeepLab's ASPP
    /// at rate 12 on a 20 x 20 map is 9 rectangles of 1 to 4 taps, 36% of the 3 x 3
    /// convolution's work. `None` for other strides or padding modes, when the input does
    /// not fit, when some output reads only padding, or when every output reads with
    /// every tap (one rectangle).
    pub fn tap_regions(&self, input: [usize; 4]) -> Option<Vec<TapRegion>> {
        if self.padding_mode != PaddingMode::Zeros || self.stride != (1, 1) {
            return None;
        }
        let out = self.output_shape(input).ok()?;
        let ((top, _), (left, _)) = self.pads();
        let rows = tap_bands(input[2], out[2], (self.kernel_size.0, self.dilation.0), top)?;
        let cols = tap_bands(
            input[3],
            out[3],
            (self.kernel_size.1, self.dilation.1),
            left,
        )?;
        if rows.len() * cols.len() == 1 {
            return None;
        }
        Some(
            rows.iter()
                .flat_map(|&(r, tr)| {
                    cols.iter().map(move |&(c, tc)| TapRegion {
                        rows: r,
                        cols: c,
                        taps: LiveTaps { rows: tr, cols: tc },
                    })
                })
                .collect(),
        )
    }

    /// The convolution of one [`TapRegion`]: its taps, no padding, over the crop of the
    /// input that [`Conv2dParams::region_input`] gives (an axis left with one tap gets
    /// dilation 1, as in [`Conv2dParams::trimmed`]).
    pub(crate) fn region_params(&self, taps: LiveTaps) -> Conv2dParams {
        let ((r0, r1), (c0, c1)) = (taps.rows, taps.cols);
        let size = (r1 - r0 + 1, c1 - c0 + 1);
        let (dh, dw) = self.dilation;
        Conv2dParams {
            kernel_size: size,
            padding: (0, 0),
            padding_after: None,
            padding_same: false,
            dilation: (
                if size.0 == 1 { 1 } else { dh },
                if size.1 == 1 { 1 } else { dw },
            ),
            ..*self
        }
    }

    /// The input rows and columns (`start..end`) that [`TapRegion`] `region` reads.
    pub(crate) fn region_input(&self, region: &TapRegion) -> ((usize, usize), (usize, usize)) {
        let ((top, _), (left, _)) = self.pads();
        let (dh, dw) = self.dilation;
        let span = |(o0, o1): (usize, usize), (t0, t1): (usize, usize), d: usize, before| {
            (o0 + t0 * d - before, o1 - 1 + t1 * d - before + 1)
        };
        (
            span(region.rows, region.taps.rows, dh, top),
            span(region.cols, region.taps.cols, dw, left),
        )
    }

    /// Multiply-accumulates per output channel and input channel of a group, summed over
    /// `regions` (for comparing a cut with the whole: [`Conv2d::forward`]).
    fn region_taps(regions: &[TapRegion]) -> usize {
        regions.iter().map(|r| r.outputs() * r.taps.count()).sum()
    }

    /// The pointwise convolution of this one's columns ([`ConvKernel::Im2colTexels`]):
    /// `C_in * kH * kW` input channels, the same outputs, bias and activations.
    fn columns(&self) -> Conv2dParams {
        let (kh, kw) = self.kernel_size;
        Conv2dParams {
            groups: self.groups,
            bias: self.bias,
            activation: self.activation,
            param_activation: self.param_activation,
            ..Conv2dParams::new(self.in_channels * kh * kw, self.out_channels, 1)
        }
    }

    /// The window (kernel size, stride, the padding before, dilation).
    pub fn window(&self) -> Window {
        let ((top, _), (left, _)) = self.pads();
        Window::new(self.kernel_size, self.stride, (top, left), self.dilation)
    }

    /// Checks that a residual can join with `join`: `AddThen` brings its own activation,
    /// so the convolution must have none; the activation with parameters after
    /// `AfterActivationThen`'s sum must have valid parameters.
    pub(crate) fn check_join(&self, join: ResidualJoin) -> Result<()> {
        let a = self.activation;
        fail_if(
            matches!(join, ResidualJoin::AddThen(_)) && a != Activation::None,
            "join",
            || format!("AddThen applies its own activation; the convolution already has {a:?}"),
        )?;
        match join {
            ResidualJoin::AfterActivationThen(_, Some(p)) => p.validate(),
            _ => Ok(()),
        }
    }

    /// Checks that the output can be shuffled with `groups`.
    pub(crate) fn check_shuffle(&self, groups: usize) -> Result<()> {
        let c = self.out_channels;
        fail_if(groups == 0 || !c.is_multiple_of(groups), "groups", || {
            format!("out_channels ({c}) must be divisible by the shuffle groups ({groups})")
        })
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
        positive(&[
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
        ])?;
        Window::new(self.kernel_size, self.stride, self.padding, self.dilation).validate()?;
        if let Some(after) = self.padding_after {
            fail_if(
                after.0 > WINDOW_MAX || after.1 > WINDOW_MAX,
                "padding",
                || format!("{after:?} (after) is out of range (at most {WINDOW_MAX})"),
            )?;
        }
        fail_if(self.groups == 0, "groups", || "must be at least 1, got 0")?;
        // 'same' pads d * (k - 1) / 2 on a side: the kernels' i32 coordinates need it within
        // WINDOW_MAX like an explicit padding.
        let ((before_h, _), (before_w, _)) = self.pads();
        fail_if(
            self.padding_same && before_h.max(before_w) > WINDOW_MAX,
            "padding",
            || {
                format!(
                    "'same' padding of {:?} is out of range (at most {WINDOW_MAX})",
                    (before_h, before_w)
                )
            },
        )?;
        fail_if(
            self.padding_same && self.stride != (1, 1),
            "padding",
            || {
                format!(
                    "'same' padding needs stride 1 (as in PyTorch), got stride {:?}",
                    self.stride
                )
            },
        )?;
        fail_if(
            !self.in_channels.is_multiple_of(self.groups),
            "groups",
            || {
                format!(
                    "in_channels ({}) must be divisible by groups ({})",
                    self.in_channels, self.groups
                )
            },
        )?;
        fail_if(
            !self.out_channels.is_multiple_of(self.groups),
            "groups",
            || {
                format!(
                    "out_channels ({}) must be divisible by groups ({})",
                    self.out_channels, self.groups
                )
            },
        )?;
        if let Some(act) = self.param_activation {
            act.validate()?;
        }
        check_dims("weight", &self.weight_shape())
    }

    /// Validates the parameters against an input shape `[N, C, H, W]` and returns the
    /// output shape `[N, C_out, H_out, W_out]`.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        self.validate()?;
        super::check_channels(input, self.in_channels)?;
        let (pads_h, pads_w) = self.pads();
        let [oh, ow] = super::per_axis(|a, pick| {
            let (before, after) = [pads_h, pads_w][a];
            let axis = ["height", "width"][a];
            self.padding_mode
                .check(input[2 + a], before.max(after), axis)?;
            let (k, s, d) = (
                pick(self.kernel_size),
                pick(self.stride),
                pick(self.dilation),
            );
            conv_out_len("kernel_size", input[2 + a], k, s, before + after, d)
        })?;
        super::layer_output(input, self.out_channels, [oh, ow])
    }

    /// Parameters, MACs and bytes of this convolution on `input`.
    ///
    /// Parameters are `C_out * (C_in / g) * kH * kW (+ C_out bias)`, which is the seeds'
    /// `k^2 C_in C_out / g` for group convolution; MACs are that weight count times the
    /// number of output pixels (per image, times N).
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let out = self.output_shape(input)?;
        let pixels = out[0] * out[2] * out[3];
        Ok(Cost::of_layer(
            (self.weight_shape(), self.bias),
            pixels,
            input,
            out,
        ))
    }
}

setters!(Conv2dParams {
    /// Sets the padding mode (`'zeros'`, `'reflect'`, `'replicate'`, `'circular'`).
    padding_mode: PaddingMode,
});
super::conv_setters!(Conv2dParams);

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
    // Saturating: absurd sizes give a padding the convolution's validation refuses.
    let span = dilation
        .saturating_mul(kernel.saturating_sub(1))
        .saturating_add(1);
    let total =
        ((out.max(1) - 1).saturating_mul(stride).saturating_add(span)).saturating_sub(input);
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
    /// `then(act(conv(x)) + r)`: the convolution's activations (the plain one and the one
    /// with parameters) before the add, and a second pair after it, `then = (a, p)` applied
    /// as `p(a(.))`: ENet's bottlenecks, whose branch ends in a ReLU or PReLU and whose sum
    /// in another (a one-slope `nn.PReLU` is [`ParamActivation::LeakyRelu`] with its
    /// weight as the slope).
    AfterActivationThen(Activation, Option<ParamActivation>),
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
    /// The value of the `PAD_MODE` override in `shaders/padding.wgsl`.
    pub(crate) fn shader_code(self) -> u32 {
        match self {
            PaddingMode::Zeros => 0,
            PaddingMode::Reflect => 1,
            PaddingMode::Replicate => 2,
            PaddingMode::Circular => 3,
        }
    }

    /// PyTorch's limits: reflect needs `pad < size`, circular `pad <= size`.
    fn check(self, size: usize, pad: usize, axis: &str) -> Result<()> {
        let ok = match self {
            PaddingMode::Reflect => pad < size,
            PaddingMode::Circular => pad <= size,
            _ => true,
        };
        fail_if(!ok, "padding", || {
            format!("{pad} is too large for {self:?} padding of {axis} {size}")
        })?;
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
    fail_if(extent > padded, name, || {
        format!(
            "dilated kernel extent {extent} (kernel {kernel}, dilation {dilation}) is larger \
                 than the padded input {padded} (input {input}, padding {padding}): output size \
                 would be zero"
        )
    })?;
    Ok((padded - extent) / stride + 1)
}

/// The GPU kernels a convolution can run with, each with the sub-variants that shapes
/// allow. [`select_kernel`] picks one; [`ConvKernel::candidates`] lists every one that
/// can run a configuration, for tests that force each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvKernel {
    /// Register-tiled direct convolution (`conv_direct.wgsl`): each invocation computes a
    /// row strip of output pixels for 4 to 16 output channels. Runs every configuration.
    Direct {
        /// Keep the strip's input row segment in registers (each input loaded once per
        /// kernel row): needs the segment to be at most 40 values (not very wide dilations).
        row_buffer: bool,
    },
    /// The direct kernel with its row buffer reading the input and the weights as texels
    /// (`conv_direct_texels.wgsl`, [`Access::Texels`](crate::launch::Access::Texels): each
    /// copied into a texture before the dispatch). Needs the row segment within the row
    /// buffer, and the input and the weights within `TEXEL_ROW` x 8,192 vec4s. Chosen on
    /// CPU adapters (see `PointwiseTexels`) for the convolutions that the pointwise
    /// kernels do not run.
    DirectTexels {
        /// Fetch the row segment as aligned vec4 texels instead of one texel per value:
        /// needs zero padding, an input width divisible by 4 and a segment of at most 31
        /// values (strips of a multiple of 4 / gcd(sW, 4) pixels, so every strip starts
        /// at the same offset from an aligned column).
        vector_loads: bool,
        /// Write the output (and read a fused residual) four pixels at a time
        /// (`conv_tiles_out4.wgsl`): needs output rows and strips of a multiple of 4
        /// pixels.
        vector_stores: bool,
    },
    /// Tiled matrix product for 1x1, stride-1, unpadded, ungrouped convolutions
    /// (`conv_pointwise*.wgsl`).
    Pointwise {
        /// Four pixels per load and store (`conv_pointwise.wgsl`): needs `H * W` divisible
        /// by 4; otherwise four scalar loads per pixel group (`conv_pointwise_scalar.wgsl`).
        vector_io: bool,
    },
    /// The vector pointwise kernel reading its input and weights as texels
    /// (`conv_pointwise_texels.wgsl`, [`Access::Texels`](crate::launch::Access::Texels):
    /// each copied into a texture before the dispatch). Needs a pointwise convolution and
    /// the input and the weights within `TEXEL_ROW` x 8,192 vec4s; planes that are not a
    /// multiple of 4 pixels (7 x 7 maps) read each group of four pixels from the two
    /// texels it spans and store one value at a time. Chosen on CPU adapters, which fetch
    /// texels with vector gathers but load storage buffers one invocation at a time.
    PointwiseTexels,
    /// The input's columns (`im2col.wgsl`: one row per input channel and tap, read as
    /// texels), then [`ConvKernel::PointwiseTexels`] over them with the direct kernel's
    /// packed weights: two dispatches and a buffer of `C_in * kH * kW` output-sized
    /// planes, for the pointwise kernel's larger register tile. Needs one group,
    /// `C_in * kH * kW` within the loop budget, and the
    /// input, the columns and the weights within `TEXEL_ROW` x 8,192 vec4s. Chosen on CPU
    /// adapters where the columns stay within [`IM2COL_MAX_BYTES`].
    Im2colTexels,
    /// Four output rows (one where the map is shorter or the window dilated, except
    /// zero-padded windows of at least 5 rows at stride 1, whose four rows are the
    /// dilation apart) of one channel per invocation with per-channel weights
    /// (`conv_depthwise*.wgsl`), each input row read once for all of them; needs
    /// `groups == in_channels` (any channel multiplier).
    Depthwise {
        /// Keep the input row segment in registers (at most 40 values).
        row_buffer: bool,
        /// Read the row segment as aligned vec4s: needs zero padding, an input width
        /// divisible by 4, and the row buffer.
        vector_loads: bool,
        /// Write the output (and read a fused residual) as vec4s
        /// (`conv_depthwise_vec.wgsl`): needs output rows and strips of a multiple of 4.
        vector_stores: bool,
    },
    /// The depthwise kernel with vector loads and stores (`Depthwise { row_buffer: true,
    /// vector_loads: true, vector_stores: true }`) reading its input's vec4s as texels
    /// (`conv_depthwise_texels.wgsl`, [`Access::Texels`](crate::launch::Access::Texels)).
    /// Needs what that variant needs and the input within `TEXEL_ROW` x 8,192 vec4s.
    /// Chosen on CPU adapters where it runs.
    DepthwiseTexels,
    /// Depthwise convolution with its input patch in workgroup memory
    /// (`conv_depthwise_tiled.wgsl`): 16 x 8 output pixels of one channel per workgroup,
    /// each input read from device memory once. Needs `groups == in_channels` and a patch
    /// of at most 2,048 values (`(8 - 1) * sH + (kH - 1) * dH + 1` rows by
    /// `(16 - 1) * sW + (kW - 1) * dW + 1` columns). Chosen for depthwise convolutions on
    /// GPU-class devices.
    DepthwiseTiled,
    /// Workgroup-tiled implicit matrix product (`conv_gemm.wgsl`, the tfjs / ONNX Runtime
    /// WebGPU design): 32 output channels x 32 output pixels per workgroup, 4 x 4 per
    /// invocation, the reduction walked 16 taps at a time through workgroup memory. Runs
    /// every configuration; chosen on GPU-class devices for all but depthwise
    /// convolutions.
    Gemm,
    /// [`ConvKernel::Gemm`] with its reduction cut into at most `splits` ranges of whole
    /// 16-tap steps, each run by workgroups of its own that store their raw sums (f32, a
    /// buffer of `splits` outputs), then a second dispatch that adds the ranges and
    /// applies the bias and the store (`conv_gemm_reduce.wgsl`): `splits` times the
    /// workgroups, for maps too small to fill a large GPU with the plain kernel's 32 x 32
    /// tiles (3 x 3 64 -> 64 at 56 x 56 gives it 196). Needs at least `splits` steps
    /// (`ceil(C_in / groups * kH * kW / 16) >= splits`); a layer whose `splits` outputs
    /// would not fit one storage binding is refused with [`Error::TooLarge`] naming
    /// `kernel`. Not chosen by [`select_kernel`] yet: for the device benchmark to measure.
    GemmSplitK {
        /// The most reduction ranges (2 to 8).
        splits: u32,
    },
}

impl ConvKernel {
    /// Every variant and sub-variant, for tests that force each one (vector loads read
    /// the row buffer, so there is no depthwise variant with one and not the other).
    pub const ALL: [ConvKernel; 22] = {
        const fn d(row_buffer: bool, vector_loads: bool, vector_stores: bool) -> ConvKernel {
            ConvKernel::Depthwise {
                row_buffer,
                vector_loads,
                vector_stores,
            }
        }
        [
            ConvKernel::Direct { row_buffer: true },
            ConvKernel::Direct { row_buffer: false },
            ConvKernel::DirectTexels {
                vector_loads: true,
                vector_stores: true,
            },
            ConvKernel::DirectTexels {
                vector_loads: true,
                vector_stores: false,
            },
            ConvKernel::DirectTexels {
                vector_loads: false,
                vector_stores: true,
            },
            ConvKernel::DirectTexels {
                vector_loads: false,
                vector_stores: false,
            },
            ConvKernel::PointwiseTexels,
            ConvKernel::Im2colTexels,
            ConvKernel::Pointwise { vector_io: true },
            ConvKernel::Pointwise { vector_io: false },
            d(true, true, true),
            d(true, true, false),
            d(true, false, true),
            d(true, false, false),
            d(false, false, true),
            d(false, false, false),
            ConvKernel::DepthwiseTexels,
            ConvKernel::DepthwiseTiled,
            ConvKernel::Gemm,
            ConvKernel::GemmSplitK { splits: 4 },
            ConvKernel::GemmSplitK { splits: 2 },
            ConvKernel::GemmSplitK { splits: 8 },
        ]
    };

    /// Every variant and sub-variant that can run `params` on `input`.
    pub fn candidates(params: &Conv2dParams, input: [usize; 4]) -> Vec<ConvKernel> {
        Self::ALL
            .into_iter()
            .filter(|k| k.supports(params, input))
            .collect()
    }

    /// The kernel [`select_kernel`] picks for `caps` first, then the fullest sub-variant
    /// of every other family that can run `params` on `input`: what a benchmark compares
    /// the choice with.
    pub fn choice_and_alternatives(
        params: &Conv2dParams,
        input: [usize; 4],
        caps: &DeviceCaps,
    ) -> Vec<ConvKernel> {
        let family = |k: &ConvKernel| std::mem::discriminant(k);
        let mut kernels = vec![select_kernel(params, input, caps)];
        for k in Self::candidates(params, input) {
            if !kernels.iter().any(|c| family(c) == family(&k)) {
                kernels.push(k);
            }
        }
        kernels
    }

    /// The dispatches this kernel records for one convolution: two for
    /// [`ConvKernel::Im2colTexels`] (the columns, then the product) and
    /// [`ConvKernel::GemmSplitK`] (the ranges' sums, then their total and the store), one
    /// for the others.
    pub fn dispatches(self) -> usize {
        match self {
            ConvKernel::Im2colTexels | ConvKernel::GemmSplitK { .. } => 2,
            _ => 1,
        }
    }

    /// Whether this kernel scales its input by a gate as it reads it
    /// ([`Conv2d::forward_gated`] in one pass): the pointwise kernels and the GEMM.
    pub fn applies_input_gate(self) -> bool {
        matches!(
            self,
            ConvKernel::Pointwise { .. }
                | ConvKernel::PointwiseTexels
                | ConvKernel::Gemm
                | ConvKernel::GemmSplitK { .. }
        )
    }

    /// Whether this kernel can run `params` on an input of shape `input`.
    pub fn supports(self, params: &Conv2dParams, input: [usize; 4]) -> bool {
        let Ok(out) = params.output_shape(input) else {
            return false;
        };
        let input_fits_texels = fits_texels(input.iter().product());
        match self {
            ConvKernel::Direct { row_buffer } => {
                !row_buffer || direct_row_fits(params, out[3], false)
            }
            ConvKernel::DirectTexels {
                vector_loads,
                vector_stores,
            } => {
                direct_row_fits(params, out[3], vector_loads)
                    && (!vector_loads
                        || (params.padding_mode == PaddingMode::Zeros
                            && input[3].is_multiple_of(4)))
                    && (!vector_stores
                        || (out[3].is_multiple_of(4)
                            && direct_px(params, out[3], vector_loads)
                                .is_some_and(|px| px.is_multiple_of(4))))
                    && input_fits_texels
                    && fits_texels(blocked_len(params))
            }
            ConvKernel::Pointwise { vector_io } => {
                params.is_pointwise() && (!vector_io || (input[2] * input[3]).is_multiple_of(4))
            }
            ConvKernel::PointwiseTexels => {
                params.is_pointwise() && input_fits_texels && fits_texels(blocked_len(params))
            }
            ConvKernel::Im2colTexels => {
                let columns = params.columns();
                params.groups == 1
                    && pointwise_loops(&columns) <= LOOP_BUDGET
                    && input_fits_texels
                    && fits_texels(out[0] * columns.in_channels * out[2] * out[3])
                    && fits_texels(blocked_len(params))
            }
            ConvKernel::Depthwise {
                row_buffer,
                vector_loads,
                vector_stores,
            } => {
                let t = DepthwiseTile::new(params, [out[2], out[3]], vector_loads);
                params.is_depthwise()
                    && (!row_buffer || t.row <= DEPTHWISE_ROW_MAX)
                    && (!vector_loads
                        || (row_buffer
                            && t.row <= VEC_ROW_MAX
                            && params.padding_mode == PaddingMode::Zeros
                            && input[3].is_multiple_of(4)
                            && (t.px * params.stride.1).is_multiple_of(4)))
                    && (!vector_stores || (t.px.is_multiple_of(4) && out[3].is_multiple_of(4)))
            }
            ConvKernel::DepthwiseTexels => {
                let vectors = ConvKernel::Depthwise {
                    row_buffer: true,
                    vector_loads: true,
                    vector_stores: true,
                };
                vectors.supports(params, input) && input_fits_texels
            }
            ConvKernel::DepthwiseTiled => {
                params.is_depthwise() && depthwise_patch(params).0 <= DEPTHWISE_PATCH_MAX
            }
            ConvKernel::Gemm => true,
            ConvKernel::GemmSplitK { splits } => {
                let steps = params.in_per_group() * params.kernel_size.0 * params.kernel_size.1;
                (2..=8).contains(&splits) && steps.div_ceil(GEMM_TILE.2) >= splits as usize
            }
        }
    }
}

/// The kernel the library runs for `params` on `input` on a device with `caps`.
///
/// Depthwise convolutions get [`ConvKernel::DepthwiseTiled`] on GPU-class devices where
/// its input patch fits, and otherwise the register-strip depthwise kernel with every
/// sub-variant the shapes allow (on CPU adapters its vector loads only as texels,
/// [`ConvKernel::DepthwiseTexels`]) where its loop over a row's strips stays within the
/// loop budget (maps tens of thousands of pixels wide take the direct kernels). Other convolutions get the workgroup-tiled
/// [`ConvKernel::Gemm`] on GPU-class devices (where workgroup memory is on-chip and
/// reuse through it is what reaches the arithmetic peak) when its reduction stays within
/// the loop budget and each group has at least 16 output channels (half its tile).
/// CPU-emulated adapters (lavapipe, llvmpipe, SwiftShader, WARP), where workgroup memory
/// is ordinary memory behind barriers, get the register-tiled kernels reading texels:
/// [`ConvKernel::PointwiseTexels`] where it applies, else [`ConvKernel::Im2colTexels`]
/// for one group of at least 128 output channels whose columns stay within
/// [`IM2COL_MAX_BYTES`] and half the binding limit, else [`ConvKernel::DirectTexels`] (with
/// vector loads where its strips are as wide, vector stores where rows and strips are
/// multiples of 4 pixels), else the direct kernel.
pub fn select_kernel(params: &Conv2dParams, input: [usize; 4], caps: &DeviceCaps) -> ConvKernel {
    let best = |k: ConvKernel| k.supports(params, input).then_some(k);
    if params.is_depthwise() && params.in_channels > 1 {
        if !caps.cpu && ConvKernel::DepthwiseTiled.supports(params, input) {
            return ConvKernel::DepthwiseTiled;
        }
        // The register-strip kernels below loop over a row's strips: on maps too wide for
        // the loop budget (tens of thousands of pixels) depthwise convolutions take the
        // direct kernels further down, one strip an invocation.
        let within = |k: ConvKernel| depthwise_within_budget(params, input, k);
        // Vector loads as texels: gathers on a CPU adapter (see `PointwiseTexels`).
        if caps.cpu
            && ConvKernel::DepthwiseTexels.supports(params, input)
            && within(ConvKernel::DepthwiseTexels)
        {
            return ConvKernel::DepthwiseTexels;
        }
        // Aligned vec4 loads (then shifted into the row) coalesce on a GPU; on a CPU
        // adapter they cost more than the scalar loads they replace (lavapipe, same run,
        // MobileNet layers at 128 x 128 down to 28 x 28: 0.74-0.87x the time without
        // them; 1.0-1.1x at 112 x 112 stride 2), so CPU adapters read scalars
        // (`cargo bench --bench conv -- depthwise`).
        let vector_loads = !caps.cpu
            && best(ConvKernel::Depthwise {
                row_buffer: true,
                vector_loads: true,
                vector_stores: false,
            })
            .is_some();
        let row_buffer = best(ConvKernel::Depthwise {
            row_buffer: true,
            vector_loads: false,
            vector_stores: false,
        })
        .is_some();
        let vector_stores = best(ConvKernel::Depthwise {
            row_buffer: row_buffer || vector_loads,
            vector_loads,
            vector_stores: true,
        })
        .is_some();
        let strips = ConvKernel::Depthwise {
            row_buffer: row_buffer || vector_loads,
            vector_loads,
            vector_stores,
        };
        if within(strips) {
            return strips;
        }
    }
    // Groups of fewer than half a tile's output channels would leave most of each GEMM
    // tile empty (ResNeXt's 32 groups of 4: 7/8 of it): those take the register kernels
    // (lavapipe: 19x faster on the suite's g=32 layer; the waste is the same on a GPU).
    let gemm_fills = 2 * params.out_per_group() >= GEMM_TILE.0;
    if !caps.cpu && gemm_fills && gemm_loops(params) <= LOOP_BUDGET {
        return ConvKernel::Gemm;
    }
    // On planes that are not a multiple of 4 pixels (7 x 7 maps) the pointwise kernel's
    // scalar variant measured no faster than the direct kernel (lavapipe: 320 -> 1280 at
    // 7 x 7, 3.3 ms both), so on GPUs those go to the direct kernel; CPU adapters read
    // them as texels.
    // The row buffer only where its segment, if too long to unroll, keeps the invocation
    // within the loop budget (wide dilations over many channels: ASPP's 2048-channel
    // branches); without it the same convolution stays within.
    let within_budget = |k: ConvKernel| {
        params.output_shape(input).is_ok_and(|out| {
            let vector_loads = matches!(
                k,
                ConvKernel::DirectTexels {
                    vector_loads: true,
                    ..
                }
            );
            let px = direct_px(params, out[3], vector_loads);
            px.is_some_and(|px| direct_loops(params, px, true) <= LOOP_BUDGET)
        })
    };
    let direct = |k: ConvKernel| best(k).filter(|k| within_budget(*k));
    // Texel fetches are vector gathers on CPU adapters, storage loads one invocation at a
    // time: on lavapipe MobileNetV2's pointwise layers take 0.20-0.55x the kernel time
    // (0.38x in all) and 0.42x with the copies into textures and the readback (medians
    // of 11, interleaved). A GPU coalesces the storage loads and gets the GEMM.
    // The direct kernel as texels on CPU adapters too: 0.42-0.68x the kernel time of its
    // storage-load form over U-Net, ResNet and stem layers (lavapipe, medians of 5,
    // interleaved), with aligned vector loads 0.42-0.47x where their strips are as wide;
    // narrower strips (7 x 7 stems at stride 2) measured slower than one texel per value.
    let cpu = |k: Option<ConvKernel>| k.filter(|_| caps.cpu);
    // Not for 1 x 1 windows that the pointwise kernels do not take (strides, padding):
    // llvmpipe's GL driver ran the storage-load form in 0.25-0.56x the time (medians of
    // 6, interleaved: 320 -> 1280 at 7 x 7 4.3 against 10.8 ms, 256 -> 256 at 13 x 13 2.0
    // against 8.2, stride 2 1024 -> 2048 to 7 x 7 39 against 69); lavapipe ran the two
    // within 0.7-1.4x of each other, layer by layer, and MobileNetV2's five 7 x 7 1 x 1
    // layers in 19.1-19.6 ms against 19.5-22.2 (old and new binaries alternated).
    // Four pixels a store where the rows and strips allow it: the stems, whose three
    // input channels make the stores a large part of the work (lavapipe, kernel time,
    // medians of 40 alternations in one process, 3 runs: selfie's 3 -> 16 to 128 x 128
    // 0.87-0.97x, MobileNetV2's 3 -> 32 to 112 x 112 0.87-0.94x in 5 runs of 6 and 1.1x
    // in one); 3 x 3 layers of 32-64 channels within 2% either way.
    let direct_texels = |vector_loads: bool| {
        let k = |vector_stores| ConvKernel::DirectTexels {
            vector_loads,
            vector_stores,
        };
        cpu(direct(k(true)).or(direct(k(false)))).filter(|_| params.kernel_size != (1, 1))
    };
    let as_wide = params
        .output_shape(input)
        .is_ok_and(|out| direct_px(params, out[3], true) >= direct_px(params, out[3], false));
    // The columns and the pointwise kernel's larger tile where there are enough output
    // channels to share the columns' cost (lavapipe, 3 x 3 layers, same run: 0.68-0.97x
    // the direct texel kernel's time at 128-512 output channels, 1.0-1.3x at 64, 2x at
    // 16), within a memory cap and half the device's binding limit (buffers come in size
    // classes).
    let columns_fit = params.output_shape(input).is_ok_and(|out| {
        let values = out[0] * params.columns().in_channels * out[2] * out[3];
        let cap = IM2COL_MAX_BYTES.min(caps.max_storage_buffer_binding_size / 2);
        values as u64 * 4 <= cap
    });
    let im2col = cpu(best(ConvKernel::Im2colTexels))
        .filter(|_| params.out_channels >= IM2COL_MIN_OUT && columns_fit);
    // Planes of any size as texels, 7 x 7 and 1 x 1 maps too (lavapipe, upload,
    // convolution and readback, medians of 9, interleaved with the direct kernel, which
    // took them before: 320 -> 1280 at 7 x 7 0.5-0.75x its time, 960 -> 160 and 160 -> 960
    // at 7 x 7 0.6-0.8x, 1024 -> 256 at 9 x 9 0.4-0.5x, 2048 -> 256 at 1 x 1 0.5-0.9x).
    cpu(best(ConvKernel::PointwiseTexels))
        .or(best(ConvKernel::Pointwise { vector_io: true }))
        .or(im2col)
        .or(direct_texels(true).filter(|_| as_wide))
        .or(direct_texels(false))
        .or(direct(ConvKernel::Direct { row_buffer: true }))
        .unwrap_or(ConvKernel::Direct { row_buffer: false })
}

/// The kernel the library runs for `params` on `input` scaled by an input gate
/// ([`Conv2d::forward_gated`]): [`select_kernel`]'s choice where it applies the gate, else a
/// pointwise kernel where one supports the convolution (on CPU adapters the texel kernel,
/// on GPUs the scalar variant for planes that are not a multiple of 4 pixels), which reads
/// the input once instead of a separate scale's read, write and read; else the choice
/// again, after a scale pass.
pub fn select_gated_kernel(
    params: &Conv2dParams,
    input: [usize; 4],
    caps: &DeviceCaps,
) -> ConvKernel {
    let chosen = select_kernel(params, input, caps);
    if chosen.applies_input_gate() {
        return chosen;
    }
    [
        ConvKernel::PointwiseTexels,
        ConvKernel::Pointwise { vector_io: true },
        ConvKernel::Pointwise { vector_io: false },
    ]
    .into_iter()
    .filter(|k| caps.cpu || *k != ConvKernel::PointwiseTexels)
    .find(|k| k.supports(params, input))
    .unwrap_or(chosen)
}

/// Output rows and columns per workgroup of `conv_depthwise_tiled.wgsl` (`TH`, `TW`).
const DEPTHWISE_TILE: (usize, usize) = (8, 16);
/// Largest input patch of `conv_depthwise_tiled.wgsl` in values (`PATCH_MAX`).
const DEPTHWISE_PATCH_MAX: usize = 2048;

/// The input patch a workgroup of `conv_depthwise_tiled.wgsl` reads: `(values, rows,
/// columns)`.
fn depthwise_patch(p: &Conv2dParams) -> (usize, usize, usize) {
    let (th, tw) = DEPTHWISE_TILE;
    let rows = (th - 1) * p.stride.0 + (p.kernel_size.0 - 1) * p.dilation.0 + 1;
    let cols = (tw - 1) * p.stride.1 + (p.kernel_size.1 - 1) * p.dilation.1 + 1;
    (rows.saturating_mul(cols), rows, cols)
}

/// Output channels, output pixels and reduction taps per workgroup step of
/// `conv_gemm.wgsl` (`TM`, `TN`, `TK`).
const GEMM_TILE: (usize, usize, usize) = (32, 32, 16);

/// The loop iterations of one invocation of the GEMM kernel: per reduction step, two
/// tile rows of four loads each (unrolled), then the TK taps (unrolled).
fn gemm_loops(p: &Conv2dParams) -> u64 {
    let k = p.in_per_group() * p.kernel_size.0 * p.kernel_size.1;
    let steps = k.div_ceil(GEMM_TILE.2) as u64;
    loop_nest(&[Trip::Uniform(steps), Trip::Constant(2), Trip::Constant(4)]).max(loop_nest(&[
        Trip::Uniform(steps),
        Trip::Constant(GEMM_TILE.2 as u64),
    ]))
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
/// Longest row segment read with aligned vector loads. llvmpipe's GL driver returns wrong
/// values for the depthwise vector path with 10 or more vec4s in flight (segments of 34
/// values and up: only very wide strides and dilations; the random sweep found it), where
/// its Vulkan driver is right; shorter segments are right on both.
const VEC_ROW_MAX: usize = 31;

/// Whether a binding of `values` elements fits a texels texture on every device
/// (`TEXEL_ROW` x `TEXEL_ROWS_ANYWHERE` vec4s).
pub(crate) fn fits_texels(values: usize) -> bool {
    values.div_ceil(4) <= (TEXEL_ROW * TEXEL_ROWS_ANYWHERE) as usize
}

/// Output pixels per invocation of the direct kernels for rows of `ow` pixels:
/// [`strip_px`]'s, or with aligned vector loads a multiple of `4 / gcd(sW, 4)` (so
/// `PX * sW` is a multiple of 4 and every strip starts at the same offset from an aligned
/// column), rounded up, then lowered until the row segment is within [`VEC_ROW_MAX`];
/// `None` where no strip is that short.
fn direct_px(params: &Conv2dParams, ow: usize, vector_loads: bool) -> Option<usize> {
    let px = strip_px(ow, DIRECT_PX_MAX);
    if !vector_loads {
        return Some(px);
    }
    let step = match params.stride.1 % 4 {
        0 => 1,
        2 => 2,
        _ => 4,
    };
    (1..=px.div_ceil(step))
        .rev()
        .map(|k| k * step)
        .find(|&px| strip_row(params, px) <= VEC_ROW_MAX)
}

/// Whether the direct kernels' strip for rows of `ow` pixels ([`direct_px`]) has a row
/// segment that fits the row buffer ([`DIRECT_ROW_MAX`]).
fn direct_row_fits(params: &Conv2dParams, ow: usize, vector_loads: bool) -> bool {
    direct_px(params, ow, vector_loads).is_some_and(|px| strip_row(params, px) <= DIRECT_ROW_MAX)
}

/// Most pixels per invocation in `conv_pointwise.wgsl` (four vec4; fewer on planes of
/// fewer pixels, see [`pointwise_groups`]).
const POINTWISE_PX: usize = 16;

/// Pixel groups (vec4s) per invocation of the pointwise kernels on planes of `hw` pixels:
/// four, or as many as a smaller plane has (1 x 1 and 3 x 3 maps).
fn pointwise_groups(hw: usize) -> usize {
    hw.div_ceil(4).clamp(1, POINTWISE_PX / 4)
}

/// Cut forms of one layer kept (trimmed and region layers, [`Conv2d::forward`] on a few
/// input sizes).
const TRIMS_KEPT: usize = 20;

/// The most [`TapRegion`]s [`Conv2d::forward`] runs a layer as.
const REGIONS_MAX: usize = 9;

/// Pointwise tiles (16 pixels x 16 channels) that keep a CPU adapter busy: the cost
/// `Conv2d::forward` gives a smaller rectangle is scaled up as if it had this many.
const REGION_BUSY: usize = 64;

/// The fewest multiply-accumulates a cut into [`TapRegion`]s must save (see
/// `Conv2d::forward`): each region costs up to four dispatches (crop, convolution, pad,
/// add), about 50 us each on lavapipe, where this is 1-3 ms of arithmetic.
const REGIONS_MIN_SAVED: usize = 64 << 20;

/// The input row segment a strip of `px` outputs reads: `(px - 1) * sW + (kW - 1) * dW + 1`.
fn strip_row(params: &Conv2dParams, px: usize) -> usize {
    (px - 1) * params.stride.1 + (params.kernel_size.1 - 1) * params.dilation.1 + 1
}

/// Output rows per invocation of `conv_depthwise.wgsl` (`PY`) where the map has as many:
/// each input row read then serves up to four output rows, so a 3 x 3 window reads each
/// input 1.5 times instead of 3 (loads are what costs on CPU adapters, and what a GPU's
/// caches absorb). On lavapipe, kernel time alone (GPU timestamps, medians of 15,
/// interleaved): 0.63x for 3 x 3 at 56 x 56, 0.85x at stride 2, 0.5x for 5 x 5, 0.58x
/// at 7 x 7; 8 rows leaves the loops rolled and runs 2-4x slower.
const DEPTHWISE_ROWS: usize = 4;

/// The depthwise kernel's strip: pixels, row segment and strips per row, and the output
/// rows of each invocation.
struct DepthwiseTile {
    px: usize,
    row: usize,
    strips_x: usize,
    rows: usize,
    /// Output rows between an invocation's rows (`YS`): the dilation of a dilated,
    /// zero-padded window of at least 5 rows at stride 1 on a map of at least
    /// `DEPTHWISE_ROWS` such rows, else 1.
    step: usize,
}

impl DepthwiseTile {
    fn new(params: &Conv2dParams, [oh, ow]: [usize; 2], vector_loads: bool) -> Self {
        // Rows a dilation apart where the window is at least 5 rows tall (lavapipe, texel
        // kernel, medians of 11, old and new binaries alternated 5 times: 5 x 5 at
        // dilation 2 on 16 x 16 maps 0.65-0.85x the time of one row an invocation; 3 x 3
        // at dilation 2 on 32 x 32 1.2-1.4x, at dilation 4 on 64 x 64 0.9-1.0x, so those
        // keep one row).
        // Zero padding only: the rows of a last, partial block lie past the map, and the
        // other modes index them as if at most one map away.
        let dilated = params.dilation.0 > 1;
        let dilated_rows = dilated
            && params.kernel_size.0 >= 5
            && params.stride.0 == 1
            && params.padding_mode == PaddingMode::Zeros
            && oh >= DEPTHWISE_ROWS * params.dilation.0;
        let step = if dilated_rows { params.dilation.0 } else { 1 };
        // Aligned vec4 loads need every strip to start at the same offset from a 4-aligned
        // column: full 8-pixel strips (the last one may overhang).
        let px = if vector_loads {
            DEPTHWISE_PX_MAX
        } else {
            strip_px(ow, DEPTHWISE_PX_MAX)
        };
        DepthwiseTile {
            px,
            row: strip_row(params, px),
            strips_x: ow.div_ceil(px),
            // One row where the map has fewer (one pipeline fewer than a row count per
            // height), and for the dilated windows that keep one (above): rows next to
            // each other share few of a dilated window's input rows.
            rows: if dilated_rows || (!dilated && oh >= DEPTHWISE_ROWS) {
                DEPTHWISE_ROWS
            } else {
                1
            },
            step,
        }
    }
}

uniform! {
    /// The register-tiled convolutions, direct and transposed
    /// (`shaders/conv_tiles.wgsl`).
    pub(crate) struct TiledConvParams {
        n: u32,
        c_in: u32,
        h: u32,
        w: u32,
        c_out: u32,
        oh: u32,
        ow: u32,
        groups: u32,
        cin_pg: u32,
        cout_pg: u32,
        cout_pg_pad: u32,
        oc_blocks_pg: u32,
        pad_h: u32,
        pad_w: u32,
        strips_x: u32,
        strip_blocks: u32,
        pact_a: f32,
        pact_b: f32,
        then_a: f32,
        then_b: f32,
    }
}

uniform! {
    /// `shaders/conv_depthwise_tiled.wgsl`.
    pub(crate) struct DepthwiseTiledParams {
        n: u32,
        c_in: u32,
        h: u32,
        w: u32,
        c_out: u32,
        oh: u32,
        ow: u32,
        multiplier: u32,
        pad_h: u32,
        pad_w: u32,
        tiles_x: u32,
        tiles_y: u32,
        ih: u32,
        iw: u32,
        pact_a: f32,
        pact_b: f32,
        then_a: f32,
        then_b: f32,
    }
}

uniform! {
    /// `shaders/conv_gemm.wgsl`.
    pub(crate) struct GemmConvParams {
        n: u32,
        c_in: u32,
        h: u32,
        w: u32,
        c_out: u32,
        oh: u32,
        ow: u32,
        groups: u32,
        cin_pg: u32,
        cout_pg: u32,
        cout_pg_pad: u32,
        pad_h: u32,
        pad_w: u32,
        kh: u32,
        kw: u32,
        sh: u32,
        sw: u32,
        dh: u32,
        dw: u32,
        k: u32,
        oc_tiles: u32,
        px_tiles: u32,
        splits: u32,
        k_split: u32,
        pact_a: f32,
        pact_b: f32,
        then_a: f32,
        then_b: f32,
    }
}

uniform! {
    /// `shaders/conv_gemm_reduce.wgsl`.
    pub(crate) struct GemmReduceParams {
        total: u32,
        c_out: u32,
        ohw: u32,
        splits: u32,
        pact_a: f32,
        pact_b: f32,
        then_a: f32,
        then_b: f32,
    }
}

uniform! {
    /// `shaders/conv_pointwise_body.wgsl`.
    pub(crate) struct PointwiseParams {
        n: u32,
        c_in: u32,
        c_out: u32,
        hw: u32,
        cout_pad: u32,
        oc_blocks: u32,
        tiles: u32,
        act_t: f32,
        act_lo: f32,
        act_hi: f32,
        act_scale: f32,
        act_times_v: u32,
        pact_a: f32,
        pact_b: f32,
        then_a: f32,
        then_b: f32,
    }
}

uniform! {
    /// `shaders/conv_depthwise_body.wgsl`.
    pub(crate) struct DepthwiseParams {
        n: u32,
        c_in: u32,
        h: u32,
        w: u32,
        c_out: u32,
        oh: u32,
        ow: u32,
        multiplier: u32,
        pad_h: u32,
        pad_w: u32,
        strips_x: u32,
        rows: u32,
        act_t: f32,
        act_lo: f32,
        act_hi: f32,
        act_scale: f32,
        act_times_v: u32,
        pact_a: f32,
        pact_b: f32,
        then_a: f32,
        then_b: f32,
    }
}

/// What the convolutions do in their store (`shaders/epilogue.wgsl`): the activation and
/// an activation with parameters after it, a fused residual and a fused channel shuffle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Epilogue {
    pub(crate) act: Activation,
    pub(crate) param: Option<ParamActivation>,
    pub(crate) residual: Option<ResidualJoin>,
    /// Shuffle groups (0: none).
    pub(crate) shuffle_groups: u32,
    /// The activation read from the kernel's uniform (`ACT` at `AT_RUN`), not compiled
    /// in: see [`at_run_where_cheap`].
    pub(crate) at_run: bool,
}

impl Epilogue {
    /// The activation the store applies (`ACT`).
    fn store_act(&self) -> Activation {
        match self.residual {
            Some(ResidualJoin::AddThen(a)) => a,
            _ => self.act,
        }
    }

    /// The activations after the sum of [`ResidualJoin::AfterActivationThen`] (none for
    /// the other joins).
    fn then(&self) -> (Activation, Option<ParamActivation>) {
        match self.residual {
            Some(ResidualJoin::AfterActivationThen(a, p)) => (a, p),
            _ => (Activation::None, None),
        }
    }

    /// The parameters of its activations with parameters, as the kernels' uniforms carry
    /// them (`pact_a`, `pact_b`, `then_a`, `then_b`: `StoreArgs` of
    /// `shaders/param_activation.wgsl`), so that they are not part of the pipeline.
    pub(crate) fn store_args(&self) -> [f32; 4] {
        let (_, a, b) = param_args(self.param);
        let (_, then_a, then_b) = param_args(self.then().1);
        [a, b, then_a, then_b]
    }

    /// The residual join (`RESIDUAL`): 0 none, 1 after the activation, 2 before it, 3
    /// after it with a second activation on the sum.
    fn residual_code(&self) -> u32 {
        match self.residual {
            None => 0,
            Some(ResidualJoin::AfterActivation) => 1,
            Some(ResidualJoin::BeforeActivation | ResidualJoin::AddThen(_)) => 2,
            Some(ResidualJoin::AfterActivationThen(..)) => 3,
        }
    }
}

impl Specialize for Epilogue {
    fn write(&self, c: &mut Constants) {
        if self.at_run {
            c.set("ACT", AT_RUN);
        } else {
            self.store_act().write(c);
        }
        c.set("RESIDUAL", self.residual_code());
        c.set("SHUFFLE_G", self.shuffle_groups);
        self.param.write(c);
        let (then_act, then_param) = self.then();
        c.set("THEN_ACT", then_act.shader_code());
        c.set("THEN_PACT", param_args(then_param).0);
    }
}

/// The store of a CPU adapter's kernel: its activation read from its uniform
/// (`Epilogue::at_run`) where the activation has an [`ActivationAtRun`] form,
/// so that one pipeline serves them all; otherwise compiled in. llvmpipe compiles each
/// pipeline at its first dispatch (0.15-0.5 s for a register-tiled convolution), while
/// the at-run store costs a few arithmetic operations a value; a GPU keeps its constants.
/// (The exponential activations, the residual join and the input gate stay constants:
/// llvmpipe runs a branch it cannot prove uniform under a mask, so an at-run `exp` or
/// residual read would be paid by every store.)
fn at_run_where_cheap(epilogue: Epilogue) -> Epilogue {
    Epilogue {
        at_run: ActivationAtRun::of(epilogue.store_act()).is_some(),
        ..epilogue
    }
}

/// `AT_RUN` of `shaders/activation.wgsl`: a constant whose value the kernel reads from
/// its uniform instead.
const AT_RUN: u32 = 255;

/// A piecewise-linear activation as the parameters of `ActAtRun`
/// (`shaders/activation.wgsl`): `m * clamp(v + t, lo, hi) * scale`, where `m` is `v`
/// when `times_v`, else 1: the activation's own operations, but for hardsigmoid's and
/// hardswish's product with 1/6 in place of their division by 6 (within an ulp: the
/// division made the selfie network's pointwise layers 5-10% slower on lavapipe).
#[derive(Clone, Copy, Debug, PartialEq)]
struct ActivationAtRun {
    t: f32,
    lo: f32,
    hi: f32,
    scale: f32,
    times_v: bool,
}

impl ActivationAtRun {
    /// `Activation::None`'s form.
    const IDENTITY: Self = Self {
        t: 0.0,
        lo: f32::NEG_INFINITY,
        hi: f32::INFINITY,
        scale: 1.0,
        times_v: false,
    };

    /// The uniform's activation for `epilogue`: identity where it is compiled in (the
    /// kernel ignores the uniform's then).
    fn of_store(epilogue: &Epilogue) -> Self {
        Self::of(epilogue.store_act()).unwrap_or(Self::IDENTITY)
    }

    /// The form of `a`, for the activations that have one.
    fn of(a: Activation) -> Option<Self> {
        let linear = |t, lo, hi, scale, times_v| Self {
            t,
            lo,
            hi,
            scale,
            times_v,
        };
        Some(match a {
            Activation::None => Self::IDENTITY,
            Activation::Relu => linear(0.0, 0.0, f32::INFINITY, 1.0, false),
            Activation::Relu6 => linear(0.0, 0.0, 6.0, 1.0, false),
            Activation::HardSigmoid => linear(3.0, 0.0, 6.0, 1.0 / 6.0, false),
            Activation::HardSwish => linear(3.0, 0.0, 6.0, 1.0 / 6.0, true),
            _ => return None,
        })
    }
}

/// The kind (0: none) and the two parameters of `param_formula4`.
fn param_args(p: Option<ParamActivation>) -> (u32, f32, f32) {
    p.map_or((0, 0.0, 0.0), |p| {
        let (mode, a, b) = p.shader_args();
        (mode + 1, a, b)
    })
}

/// `PACT` of `shaders/param_activation.wgsl` (0: none); the kernel's uniform carries its
/// parameters (`Epilogue::store_args`).
impl Specialize for Option<ParamActivation> {
    fn write(&self, c: &mut Constants) {
        c.set("PACT", param_args(*self).0);
    }
}

/// `PAD_MODE` of `shaders/padding.wgsl`.
impl Specialize for PaddingMode {
    fn write(&self, c: &mut Constants) {
        c.set("PAD_MODE", self.shader_code());
    }
}

specialize! {
    /// What the row-strip kernels (direct and depthwise) are specialised with: the window,
    /// the store, the padding mode, the strip's pixels and the row segment of `row` values
    /// kept in registers when `row_buffer`.
    struct StripSpec {
        window: Window, epilogue: Epilogue, pad_mode: PaddingMode, px: Count => "PX",
        row: Count => "ROW", row_buffer: bool => "ROWBUF"
    }
}

specialize! {
    /// The constants of `conv_depthwise_tiled.wgsl`: the window, the store and the
    /// padding mode.
    struct DepthwiseTiledSpec { window: Window, epilogue: Epilogue, pad_mode: PaddingMode }
}

specialize! {
    /// The constants of `conv_gemm.wgsl`: the store, the input gate and the padding mode
    /// (the window is in its uniform).
    struct GemmSpec {
        epilogue: Epilogue, gate: InputGate, pad_mode: PaddingMode, partial: bool => "PARTIAL"
    }
}

specialize! {
    /// The constants of `conv_direct*.wgsl`: the strip, the channel tile, the aligned
    /// vector loads (`shift`: columns from the aligned vec4 before a strip to its first
    /// input) and the four-pixel stores.
    struct DirectSpec {
        strip: StripSpec, oc_vec: Count => "OC_VEC", vector_loads: bool => "VEC",
        vector_stores: bool => "Y4", shift: u32 => "SHIFT"
    }
}

specialize! {
    /// The constants of `conv_pointwise*.wgsl`: the store, the vec4s of pixels and the
    /// channel tile.
    struct PointwiseSpec {
        epilogue: Epilogue, gate: InputGate, q: Count => "Q", oc_vec: Count => "OC_VEC",
        aligned: bool => "ALIGNED"
    }
}

/// A gate on a convolution's input (`GATED`, `GATE_ACT` of
/// `shaders/conv_pointwise_body.wgsl` and `shaders/conv_gemm.wgsl`): each input plane
/// scaled by the activation of its logit as it is read, a squeeze-and-excitation's scale
/// fused into the convolution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct InputGate(pub(crate) Option<Activation>);

impl Specialize for InputGate {
    fn write(&self, c: &mut Constants) {
        c.set("GATED", u32::from(self.0.is_some()));
        c.set("GATE_ACT", self.0.map_or(0, |a| a.shader_code()));
    }
}

specialize! {
    /// The constants of `conv_depthwise*.wgsl`: the strip, the aligned vector loads
    /// (`shift`: columns from the aligned vec4 before a strip to its first input) and the
    /// output rows per invocation.
    struct DepthwiseSpec {
        strip: StripSpec, vector_loads: bool => "VEC", shift: u32 => "SHIFT", rows: Count => "PY",
        step: Count => "YS"
    }
}

const CONV_DIRECT: Kernel<TiledConvParams, DirectSpec> = Kernel::new(
    "conv_direct.wgsl",
    &[
        read("x"),
        read("wt"),
        read("bias"),
        write("y"),
        read_opt("res"),
    ],
);
const CONV_DIRECT_TEXELS: Kernel<TiledConvParams, DirectSpec> = Kernel::new(
    "conv_direct_texels.wgsl",
    &[
        texels("x"),
        texels("wt"),
        read("bias"),
        write("y"),
        read_opt("res"),
    ],
);
const CONV_DEPTHWISE_TILED: Kernel<DepthwiseTiledParams, DepthwiseTiledSpec> = Kernel::new(
    "conv_depthwise_tiled.wgsl",
    &[
        read("x"),
        read("wt"),
        read("bias"),
        write("y"),
        read_opt("res"),
    ],
);
const CONV_GEMM: Kernel<GemmConvParams, GemmSpec> = Kernel::new(
    "conv_gemm.wgsl",
    &[
        read("x"),
        read("wt"),
        read("bias"),
        write_opt("y"),
        read_opt("res"),
        read_opt("gate"),
        write_opt("part"),
    ],
);
const CONV_GEMM_REDUCE: Kernel<GemmReduceParams, Epilogue> = Kernel::new(
    "conv_gemm_reduce.wgsl",
    &[read("part"), read("bias"), write("y"), read_opt("res")],
);
const CONV_POINTWISE: Kernel<PointwiseParams, PointwiseSpec> = Kernel::new(
    "conv_pointwise.wgsl",
    &[
        read("x"),
        read("wt"),
        read("bias"),
        write("y"),
        read_opt("res"),
        read_opt("gate"),
    ],
);
// Workgroups of 16 on CPU adapters, which run each workgroup on one thread: small layers
// still split into enough of them to keep every core busy (lavapipe, medians of 11,
// interleaved: 960 -> 160 at 7 x 7 0.6x and 576 -> 96 at 14 x 14 0.8x the time of
// workgroups of 64; large planes within 3%).
const CONV_POINTWISE_TEXELS: Kernel<PointwiseParams, PointwiseSpec> = Kernel::new(
    "conv_pointwise_texels.wgsl",
    &[
        texels("x"),
        texels("wt"),
        read("bias"),
        write("y"),
        read_opt("res"),
        read_opt("gate"),
    ],
)
.sized(16);
const CONV_POINTWISE_SCALAR: Kernel<PointwiseParams, PointwiseSpec> = Kernel::new(
    "conv_pointwise_scalar.wgsl",
    &[
        read("x"),
        read("wt"),
        read("bias"),
        write("y"),
        read_opt("res"),
        read_opt("gate"),
    ],
);
const DEPTHWISE_BINDINGS: &[Binding] = &[
    read("x"),
    read("wt"),
    read("bias"),
    write("y"),
    read("x4"),
    read_opt("res"),
];
const CONV_DEPTHWISE: Kernel<DepthwiseParams, DepthwiseSpec> =
    Kernel::new("conv_depthwise.wgsl", DEPTHWISE_BINDINGS);
const CONV_DEPTHWISE_VEC: Kernel<DepthwiseParams, DepthwiseSpec> =
    Kernel::new("conv_depthwise_vec.wgsl", DEPTHWISE_BINDINGS);
const CONV_DEPTHWISE_TEXELS: Kernel<DepthwiseParams, DepthwiseSpec> = Kernel::new(
    "conv_depthwise_texels.wgsl",
    &[
        read("x"),
        read("wt"),
        read("bias"),
        write("y"),
        texels("x4"),
        read_opt("res"),
    ],
);

uniform! {
    /// `shaders/im2col.wgsl`.
    pub(crate) struct Im2colParams {
        c: u32,
        h: u32,
        w: u32,
        oh: u32,
        ow: u32,
        pad_h: u32,
        pad_w: u32,
        total: u32,
    }
}

specialize! {
    /// The constants of `im2col.wgsl`: the window and the padding mode.
    struct Im2colSpec { window: Window, pad_mode: PaddingMode }
}

const IM2COL: Kernel<Im2colParams, Im2colSpec> =
    Kernel::new("im2col.wgsl", &[texels("x"), write("y")]);

/// The largest columns buffer [`select_kernel`] lets [`ConvKernel::Im2colTexels`] make
/// (at f32; it is half that at f16), and at most half the device's largest binding.
pub const IM2COL_MAX_BYTES: u64 = 64 << 20;

/// The fewest output channels for which [`select_kernel`] picks
/// [`ConvKernel::Im2colTexels`].
const IM2COL_MIN_OUT: usize = 128;

/// The kernels of this family.
pub(crate) const KERNELS: &[&dyn KernelInfo] = &[
    &CONV_DIRECT,
    &CONV_DIRECT_TEXELS,
    &CONV_GEMM,
    &CONV_GEMM_REDUCE,
    &CONV_DEPTHWISE_TILED,
    &CONV_POINTWISE,
    &CONV_POINTWISE_SCALAR,
    &CONV_POINTWISE_TEXELS,
    &IM2COL,
    &CONV_DEPTHWISE,
    &CONV_DEPTHWISE_VEC,
    &CONV_DEPTHWISE_TEXELS,
];

/// The window of the register-tiled kernels' uniform: the geometry every tiled
/// convolution shares and its store's activation parameters ([`Epilogue::store_args`]),
/// with the strip layout left to the plan.
pub(crate) fn tiled_uniform(
    n: usize,
    (c_in, in_hw): (usize, (usize, usize)),
    (c_out, out_hw): (usize, (usize, usize)),
    groups: usize,
    pads: (usize, usize),
    [pact_a, pact_b, then_a, then_b]: [f32; 4],
) -> TiledConvParams {
    let (cin_pg, cout_pg) = (c_in / groups, c_out / groups);
    let oc_vec = tile_oc_vec(cout_pg);
    TiledConvParams {
        n: n as u32,
        c_in: c_in as u32,
        h: in_hw.0 as u32,
        w: in_hw.1 as u32,
        c_out: c_out as u32,
        oh: out_hw.0 as u32,
        ow: out_hw.1 as u32,
        groups: groups as u32,
        cin_pg: cin_pg as u32,
        cout_pg: cout_pg as u32,
        cout_pg_pad: blocked_pad(cout_pg) as u32,
        oc_blocks_pg: cout_pg.div_ceil(4 * oc_vec) as u32,
        pad_h: pads.0 as u32,
        pad_w: pads.1 as u32,
        strips_x: 0,
        strip_blocks: 0,
        pact_a,
        pact_b,
        then_a,
        then_b,
    }
}

/// The direct kernel's dispatch for `p` from `input` to `out`: from storage buffers, or as
/// texels (with aligned vector loads or not, vector stores or not).
fn plan_direct(
    p: &Conv2dParams,
    (input, out): ([usize; 4], [usize; 4]),
    (row_buffer, texels): (bool, Option<(bool, bool)>),
    epilogue: Epilogue,
) -> Launch {
    let [n, _, oh, ow] = out;
    let (vector_loads, vector_stores) = texels.unwrap_or_default();
    let kernel = if texels.is_some() {
        &CONV_DIRECT_TEXELS
    } else {
        &CONV_DIRECT
    };
    // `supports` checked that the texel variants have a strip.
    let px = direct_px(p, ow, vector_loads).unwrap_or(1);
    let ((top, _), (left, _)) = p.pads();
    let mut u = tiled_uniform(
        n,
        (p.in_channels, (input[2], input[3])),
        (p.out_channels, (oh, ow)),
        p.groups,
        (top, left),
        epilogue.store_args(),
    );
    u.strips_x = ow.div_ceil(px) as u32;
    let spec = DirectSpec {
        strip: StripSpec {
            window: p.window(),
            epilogue,
            pad_mode: p.padding_mode,
            px: Count(px as u32),
            row: Count(if row_buffer {
                strip_row(p, px) as u32
            } else {
                0
            }),
            row_buffer,
        },
        oc_vec: Count(tile_oc_vec(p.out_per_group()) as u32),
        vector_loads,
        vector_stores,
        shift: if vector_loads {
            ((4 - left % 4) % 4) as u32
        } else {
            0
        },
    };
    let wg = kernel.workgroup_size as usize;
    let strip_blocks = (oh * u.strips_x as usize).div_ceil(wg);
    u.strip_blocks = strip_blocks as u32;
    let workgroups = n * p.groups * u.oc_blocks_pg as usize * strip_blocks;
    kernel
        .launch(&spec, &u)
        .workgroups(workgroups)
        .loops(direct_loops(p, px, row_buffer))
}

/// The loop iterations of one invocation of the direct kernel with strips of `px` output
/// pixels: per channel and kernel row, the row segment's loads (with the row buffer),
/// then the taps of the row.
fn direct_loops(p: &Conv2dParams, px: usize, row_buffer: bool) -> u64 {
    let (kh, kw) = p.kernel_size;
    let row = if row_buffer { strip_row(p, px) } else { 0 };
    let [cin, kh, kw, px, row] = [p.in_per_group(), kh, kw, px, row].map(|v| v as u64);
    loop_tree(
        &[Trip::Uniform(cin), Trip::Constant(kh)],
        &[
            &[Trip::Constant(row)],
            &[Trip::Constant(kw), Trip::Constant(px)],
        ],
    )
}

/// The workgroup-tiled depthwise kernel's dispatch for `p` from `input` to `out`.
fn plan_depthwise_tiled(
    p: &Conv2dParams,
    input: [usize; 4],
    out: [usize; 4],
    epilogue: Epilogue,
) -> Launch {
    let [n, c_out, oh, ow] = out;
    let (th, tw) = DEPTHWISE_TILE;
    let (values, rows, cols) = depthwise_patch(p);
    let ((top, _), (left, _)) = p.pads();
    let [pact_a, pact_b, then_a, then_b] = epilogue.store_args();
    let u = DepthwiseTiledParams {
        n: n as u32,
        c_in: p.in_channels as u32,
        h: input[2] as u32,
        w: input[3] as u32,
        c_out: c_out as u32,
        oh: oh as u32,
        ow: ow as u32,
        multiplier: p.out_per_group() as u32,
        pad_h: top as u32,
        pad_w: left as u32,
        tiles_x: ow.div_ceil(tw) as u32,
        tiles_y: oh.div_ceil(th) as u32,
        ih: rows as u32,
        iw: cols as u32,
        pact_a,
        pact_b,
        then_a,
        then_b,
    };
    let spec = DepthwiseTiledSpec {
        window: p.window(),
        epilogue,
        pad_mode: p.padding_mode,
    };
    let kernel = &CONV_DEPTHWISE_TILED;
    let loads = values.div_ceil(kernel.workgroup_size as usize) as u64;
    let (kh, kw) = p.kernel_size;
    let workgroups = n * c_out * u.tiles_x as usize * u.tiles_y as usize;
    kernel.launch(&spec, &u).workgroups(workgroups).loops(
        loop_nest(&[Trip::Uniform(loads)])
            + loop_nest(&[Trip::Constant(kh as u64), Trip::Constant(kw as u64)]),
    )
}

/// The reduction cut into at most `splits` ranges of whole steps: the taps per range and
/// the number of ranges (1 and all the taps for the plain kernel).
fn split_reduction(p: &Conv2dParams, splits: usize) -> (usize, usize) {
    let k = p.in_per_group() * p.kernel_size.0 * p.kernel_size.1;
    let steps = k.div_ceil(GEMM_TILE.2);
    let per = steps.div_ceil(splits.max(1)) * GEMM_TILE.2;
    (per, k.div_ceil(per))
}

/// The GEMM kernel's dispatch for `p` from `input` to `out`, its reduction cut into at
/// most `splits` ranges (raw sums to `part`, [`plan_gemm_reduce`] then) where above 1.
fn plan_gemm(
    p: &Conv2dParams,
    (input, out): ([usize; 4], [usize; 4]),
    splits: usize,
    (epilogue, gate): (Epilogue, InputGate),
) -> Launch {
    let [n, c_out, oh, ow] = out;
    let (k_split, splits) = split_reduction(p, splits);
    let (tm, tn, _) = GEMM_TILE;
    let ((top, _), (left, _)) = p.pads();
    let (cin_pg, cout_pg) = (p.in_per_group(), p.out_per_group());
    let [pact_a, pact_b, then_a, then_b] = epilogue.store_args();
    let u = GemmConvParams {
        n: n as u32,
        c_in: p.in_channels as u32,
        h: input[2] as u32,
        w: input[3] as u32,
        c_out: c_out as u32,
        oh: oh as u32,
        ow: ow as u32,
        groups: p.groups as u32,
        cin_pg: cin_pg as u32,
        cout_pg: cout_pg as u32,
        cout_pg_pad: blocked_pad(cout_pg) as u32,
        pad_h: top as u32,
        pad_w: left as u32,
        kh: p.kernel_size.0 as u32,
        kw: p.kernel_size.1 as u32,
        sh: p.stride.0 as u32,
        sw: p.stride.1 as u32,
        dh: p.dilation.0 as u32,
        dw: p.dilation.1 as u32,
        k: (cin_pg * p.kernel_size.0 * p.kernel_size.1) as u32,
        oc_tiles: cout_pg.div_ceil(tm) as u32,
        px_tiles: (oh * ow).div_ceil(tn) as u32,
        splits: splits as u32,
        k_split: k_split as u32,
        pact_a,
        pact_b,
        then_a,
        then_b,
    };
    // A split's first pass stores raw sums: one pipeline whatever the store.
    let partial = splits > 1;
    let spec = GemmSpec {
        epilogue: if partial {
            Epilogue::default()
        } else {
            epilogue
        },
        gate,
        pad_mode: p.padding_mode,
        partial,
    };
    let workgroups = splits * n * p.groups * u.oc_tiles as usize * u.px_tiles as usize;
    CONV_GEMM
        .launch(&spec, &u)
        .workgroups(workgroups)
        .loops(gemm_loops(p))
}

/// The second dispatch of a split reduction ([`plan_gemm`]): the `splits` ranges of `out`
/// added, then the bias and the store.
fn plan_gemm_reduce(out: [usize; 4], splits: usize, epilogue: Epilogue) -> Launch {
    let total = out.iter().product::<usize>();
    let [pact_a, pact_b, then_a, then_b] = epilogue.store_args();
    let u = GemmReduceParams {
        total: total as u32,
        c_out: out[1] as u32,
        ohw: (out[2] * out[3]) as u32,
        splits: splits as u32,
        pact_a,
        pact_b,
        then_a,
        then_b,
    };
    CONV_GEMM_REDUCE
        .launch(&epilogue, &u)
        .threads(total)
        .loops(loop_nest(&[Trip::Uniform(splits as u64)]))
}

/// The pointwise kernel's dispatch for `p` from `input` to `out`.
fn plan_pointwise(
    p: &Conv2dParams,
    input: [usize; 4],
    kernel: &'static Kernel<PointwiseParams, PointwiseSpec>,
    (epilogue, gate): (Epilogue, InputGate),
) -> Launch {
    let n = input[0];
    let hw = input[2] * input[3];
    let oc_vec = pointwise_oc_vec(p.out_channels);
    let oc_blocks = p.out_channels.div_ceil(4 * oc_vec);
    let q = pointwise_groups(hw);
    let tiles = hw.div_ceil(4 * q);
    let act = ActivationAtRun::of_store(&epilogue);
    let [pact_a, pact_b, then_a, then_b] = epilogue.store_args();
    let u = PointwiseParams {
        n: n as u32,
        c_in: p.in_channels as u32,
        c_out: p.out_channels as u32,
        hw: hw as u32,
        cout_pad: blocked_pad(p.out_channels) as u32,
        oc_blocks: oc_blocks as u32,
        tiles: tiles as u32,
        act_t: act.t,
        act_lo: act.lo,
        act_hi: act.hi,
        act_scale: act.scale,
        act_times_v: u32::from(act.times_v),
        pact_a,
        pact_b,
        then_a,
        then_b,
    };
    let invocations = n * oc_blocks * tiles;
    let spec = PointwiseSpec {
        epilogue,
        gate,
        q: Count(q as u32),
        oc_vec: Count(oc_vec as u32),
        aligned: hw.is_multiple_of(4),
    };
    kernel
        .launch(&spec, &u)
        .threads(invocations)
        .loops(pointwise_loops(p))
}

/// Loop iterations of one pointwise invocation: the input channels (its Q pixel groups
/// are unrolled).
fn pointwise_loops(p: &Conv2dParams) -> u64 {
    loop_nest(&[
        Trip::Uniform(p.in_channels as u64),
        Trip::Constant((POINTWISE_PX / 4) as u64),
    ])
}

/// The columns dispatch of [`ConvKernel::Im2colTexels`] for `p` from `input` to an
/// output of shape `out`.
fn plan_im2col(p: &Conv2dParams, input: [usize; 4], out: [usize; 4]) -> Launch {
    let ((top, _), (left, _)) = p.pads();
    let total = out[0] * p.columns().in_channels * out[2] * out[3];
    let u = Im2colParams {
        c: input[1] as u32,
        h: input[2] as u32,
        w: input[3] as u32,
        oh: out[2] as u32,
        ow: out[3] as u32,
        pad_h: top as u32,
        pad_w: left as u32,
        total: total as u32,
    };
    let spec = Im2colSpec {
        window: p.window(),
        pad_mode: p.padding_mode,
    };
    IM2COL.launch(&spec, &u).threads(total.div_ceil(4))
}

/// The depthwise kernel's dispatch for `p` from `input` to `out`.
fn plan_depthwise(
    p: &Conv2dParams,
    (input, out): ([usize; 4], [usize; 4]),
    (row_buffer, vector_loads): (bool, bool),
    kernel: &'static Kernel<DepthwiseParams, DepthwiseSpec>,
    epilogue: Epilogue,
) -> Launch {
    let [n, c_out, oh, ow] = out;
    let t = DepthwiseTile::new(p, [oh, ow], vector_loads);
    let ((top, _), (left, _)) = p.pads();
    let span = t.rows * t.step;
    let rows = n * c_out * t.step * oh.div_ceil(span);
    let act = ActivationAtRun::of_store(&epilogue);
    let [pact_a, pact_b, then_a, then_b] = epilogue.store_args();
    let u = DepthwiseParams {
        n: n as u32,
        c_in: p.in_channels as u32,
        h: input[2] as u32,
        w: input[3] as u32,
        c_out: c_out as u32,
        oh: oh as u32,
        ow: ow as u32,
        multiplier: p.out_per_group() as u32,
        pad_h: top as u32,
        pad_w: left as u32,
        strips_x: t.strips_x as u32,
        rows: rows as u32,
        act_t: act.t,
        act_lo: act.lo,
        act_hi: act.hi,
        act_scale: act.scale,
        act_times_v: u32::from(act.times_v),
        pact_a,
        pact_b,
        then_a,
        then_b,
    };
    let spec = DepthwiseSpec {
        strip: StripSpec {
            window: p.window(),
            epilogue,
            pad_mode: p.padding_mode,
            px: Count(t.px as u32),
            row: Count(if row_buffer { t.row as u32 } else { 0 }),
            row_buffer,
        },
        vector_loads,
        shift: if vector_loads {
            ((4 - left % 4) % 4) as u32
        } else {
            0
        },
        rows: Count(t.rows as u32),
        step: Count(t.step as u32),
    };
    let loops = depthwise_loops(p, &t, row_buffer);
    kernel.launch(&spec, &u).threads(rows).loops(loops)
}

/// Whether the register-strip depthwise `kernel` (a `Depthwise` variant or
/// `DepthwiseTexels`) stays within the loop budget for `p` on `input`.
fn depthwise_within_budget(p: &Conv2dParams, input: [usize; 4], kernel: ConvKernel) -> bool {
    let (row_buffer, vector_loads) = match kernel {
        ConvKernel::Depthwise {
            row_buffer,
            vector_loads,
            ..
        } => (row_buffer, vector_loads),
        ConvKernel::DepthwiseTexels => (true, true),
        _ => return false,
    };
    p.output_shape(input).is_ok_and(|[_, _, oh, ow]| {
        let t = DepthwiseTile::new(p, [oh, ow], vector_loads);
        depthwise_loops(p, &t, row_buffer) <= LOOP_BUDGET
    })
}

/// Loop iterations of one `conv_depthwise*.wgsl` invocation with tile `t`, as lavapipe
/// runs them: its loop over the input rows of a strip stays a loop although its trip
/// count is a constant (Mesa does not unroll a loop around that much unrolled code), and
/// without the row buffer the tap and pixel loops inside it stay loops too. Counting
/// them as unrolled let depthwise layers on maps 120,000 pixels wide come back short
/// (20,000 without the row buffer), every variant.
fn depthwise_loops(p: &Conv2dParams, t: &DepthwiseTile, row_buffer: bool) -> u64 {
    let (kh, kw) = p.kernel_size;
    let in_rows = (t.rows - 1) * t.step * p.stride.0 + (kh - 1) * p.dilation.0 + 1;
    let inner = |v: usize| {
        if row_buffer {
            Trip::Constant(v as u64)
        } else {
            Trip::Uniform(v as u64)
        }
    };
    let [py, kw, px] = [t.rows, kw, t.px].map(inner);
    let row = Trip::Constant(if row_buffer { t.row as u64 } else { 0 });
    loop_tree(
        &[
            Trip::Uniform(t.strips_x as u64),
            Trip::Uniform(in_rows as u64),
        ],
        &[&[py], &[row], &[py, kw, px], &[py, px]],
    )
}

/// The dispatch that runs `p` on `input` with `kernel` (which must support it).
#[cfg(test)]
pub(crate) fn plan(
    p: &Conv2dParams,
    input: [usize; 4],
    kernel: ConvKernel,
    epilogue: Epilogue,
) -> Result<Launch> {
    plan_gated(p, input, kernel, (epilogue, InputGate(None)))
}

/// [`plan`] with a gate on the input, which only the pointwise kernels and the GEMM apply
/// ([`ConvKernel::applies_input_gate`]).
fn plan_gated(
    p: &Conv2dParams,
    input: [usize; 4],
    kernel: ConvKernel,
    (epilogue, gate): (Epilogue, InputGate),
) -> Result<Launch> {
    let out = p.output_shape(input)?;
    fail_if(!kernel.supports(p, input), "kernel", || {
        format!("{kernel:?} does not support {p:?} on input {input:?}")
    })?;
    fail_if(
        gate.0.is_some() && !kernel.applies_input_gate(),
        "kernel",
        || format!("{kernel:?} applies no input gate"),
    )?;
    Ok(match kernel {
        ConvKernel::Direct { row_buffer } => {
            plan_direct(p, (input, out), (row_buffer, None), epilogue)
        }
        ConvKernel::DirectTexels {
            vector_loads,
            vector_stores,
        } => plan_direct(
            p,
            (input, out),
            (true, Some((vector_loads, vector_stores))),
            epilogue,
        ),
        ConvKernel::Gemm => plan_gemm(p, (input, out), 1, (epilogue, gate)),
        // The first of its two dispatches (`record_gated` adds the second).
        ConvKernel::GemmSplitK { splits } => {
            plan_gemm(p, (input, out), splits as usize, (epilogue, gate))
        }
        ConvKernel::DepthwiseTiled => plan_depthwise_tiled(p, input, out, epilogue),
        ConvKernel::Pointwise { vector_io } => {
            let kernel = if vector_io {
                &CONV_POINTWISE
            } else {
                &CONV_POINTWISE_SCALAR
            };
            plan_pointwise(p, input, kernel, (epilogue, gate))
        }
        ConvKernel::PointwiseTexels => plan_pointwise(
            p,
            input,
            &CONV_POINTWISE_TEXELS,
            (at_run_where_cheap(epilogue), gate),
        ),
        ConvKernel::Im2colTexels => {
            // The second of its two dispatches (`record_im2col` makes the columns).
            let columns = p.columns();
            let shape = [out[0], columns.in_channels, out[2], out[3]];
            plan_pointwise(
                &columns,
                shape,
                &CONV_POINTWISE_TEXELS,
                (at_run_where_cheap(epilogue), gate),
            )
        }
        ConvKernel::Depthwise {
            row_buffer,
            vector_loads,
            vector_stores,
        } => {
            let kernel = if vector_stores {
                &CONV_DEPTHWISE_VEC
            } else {
                &CONV_DEPTHWISE
            };
            plan_depthwise(
                p,
                (input, out),
                (row_buffer, vector_loads),
                kernel,
                epilogue,
            )
        }
        ConvKernel::DepthwiseTexels => plan_depthwise(
            p,
            (input, out),
            (true, true),
            &CONV_DEPTHWISE_TEXELS,
            at_run_where_cheap(epilogue),
        ),
    })
}

/// A convolution layer's weights: kept on the host in PyTorch's layout and uploaded, on
/// the first use of a kernel, in the layout that kernel reads; the bias on the GPU.
/// [`Conv2d`] and the transposed convolution share it.
#[derive(Debug)]
pub(crate) struct PackedWeights {
    gpu: Gpu,
    host: Vec<f32>,
    bias: LazyWeights,
    layouts: [OnceLock<Arc<PooledBuffer>>; 2],
}

/// What [`PackedWeights`] and the references need to know of a (transposed)
/// convolution's parameters.
pub(crate) trait WeightShapes {
    /// Checks the parameters on their own (before any shape is derived from them).
    fn validate(&self) -> Result<()>;
    /// PyTorch's weight shape.
    fn weight_shape(&self) -> [usize; 4];
    /// Whether there is a bias, and its length.
    fn bias_len(&self) -> (bool, usize);
    /// Validates against an input shape and returns the output's.
    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]>;
}

/// [`WeightShapes`] by the parameters' own methods and their `bias` / `out_channels`.
macro_rules! weight_shapes {
    ($t:ident) => {
        impl $crate::ops::conv::WeightShapes for $t {
            fn validate(&self) -> Result<()> {
                $t::validate(self)
            }
            fn weight_shape(&self) -> [usize; 4] {
                $t::weight_shape(self)
            }
            fn bias_len(&self) -> (bool, usize) {
                (self.bias, self.out_channels)
            }
            fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
                $t::output_shape(self, input)
            }
        }
    };
}
pub(crate) use weight_shapes;

weight_shapes!(Conv2dParams);

/// Validates the parameters, then `weight` against their weight shape.
fn check_weight_shape(params: &impl WeightShapes, weight: ArrayView4<f32>) -> Result<()> {
    params.validate()?;
    let shape = params.weight_shape();
    if weight.shape() != shape {
        return Err(Error::ShapeMismatch {
            name: "weight",
            expected: shape.to_vec(),
            actual: weight.shape().to_vec(),
        });
    }
    Ok(())
}

impl PackedWeights {
    /// Checks `weight` and `bias` against the parameters' shapes, then uploads the bias
    /// (zeros for a layer without one).
    pub(crate) fn new(
        gpu: &Gpu,
        params: &impl WeightShapes,
        weight: ArrayView4<f32>,
        bias: Option<ArrayView1<f32>>,
    ) -> Result<Self> {
        check_weight_shape(params, weight)?;
        let (has_bias, out_channels) = params.bias_len();
        let bias = bias_or_zeros(has_bias, out_channels, bias)?;
        Ok(PackedWeights {
            gpu: gpu.clone(),
            host: weight.iter().copied().collect(),
            bias: gpu.lazy_weights("bias", bias)?,
            layouts: [OnceLock::new(), OnceLock::new()],
        })
    }

    /// `{prefix}.weight` and, when the layer has a bias, `{prefix}.bias`.
    pub(crate) fn load(
        sd: &StateDict,
        prefix: &str,
        params: &impl WeightShapes,
    ) -> Result<(Array4<f32>, Option<Array1<f32>>)> {
        params.validate()?;
        let (has_bias, out_channels) = params.bias_len();
        let w = sd.get4(&key(prefix, "weight"), params.weight_shape())?;
        let b = if has_bias {
            Some(sd.get1(&key(prefix, "bias"), out_channels)?)
        } else {
            None
        };
        Ok((w, b))
    }

    pub(crate) fn gpu_id(&self) -> u64 {
        self.gpu.id()
    }

    /// The bias buffer (uploaded on the first call).
    pub(crate) fn bias(&self) -> Result<&Arc<PooledBuffer>> {
        self.bias.buffer()
    }

    /// Layout `slot`: `pack` of the PyTorch-layout weights, uploaded on first use.
    pub(crate) fn layout(
        &self,
        slot: usize,
        pack: &dyn Fn(&[f32]) -> Vec<f32>,
    ) -> Result<&Arc<PooledBuffer>> {
        if let Some(b) = self.layouts[slot].get() {
            return Ok(b);
        }
        let buf = self.gpu.upload_weights("weight", &pack(&self.host))?;
        Ok(self.layouts[slot].get_or_init(|| buf))
    }
}

/// A convolution layer on the GPU: parameters plus weights uploaded once, in the layout
/// each kernel wants (repacked on first use of that kernel).
#[derive(Debug)]
pub struct Conv2d {
    params: Conv2dParams,
    weights: LayerWeights,
    /// The layer cut to its live taps ([`Conv2dParams::live_taps`]) or to a
    /// [`TapRegion`]'s, per parameters and taps: made on the first input that needs each.
    trims: Mutex<Vec<(Conv2dParams, LiveTaps, Arc<Conv2d>)>>,
}

/// A layer's weights: in one buffer, or split by output channels across layers of their
/// own when the packed weights exceed one storage binding.
#[derive(Debug)]
enum LayerWeights {
    /// Layouts: 0 PyTorch's as given (depthwise kernels), 1 [`pack_blocked`] (direct and
    /// pointwise kernels).
    Whole(PackedWeights),
    /// Consecutive output-channel slices, concatenated after they run.
    Split(Vec<Conv2d>),
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
        // The weight is in memory once its shape matches: the sizes below cannot overflow.
        check_weight_shape(&params, weight)?;
        let limit = gpu.limits().max_storage_buffer_binding_size;
        let bytes = 4 * blocked_len(&params) as u64;
        if bytes > limit && params.groups == 1 {
            return Self::split(gpu, params, weight, bias, limit);
        }
        let weights = PackedWeights::new(gpu, &params, weight, bias)?;
        gpu.check_binding_size("weight", bytes)?;
        Ok(Conv2d {
            params,
            weights: LayerWeights::Whole(weights),
            trims: Mutex::default(),
        })
    }

    /// A layer whose packed weights exceed one storage binding (`limit` bytes; VGG's
    /// `fc6` as a 7x7 convolution, 411 MB, against lavapipe's 128 MB), as layers of
    /// consecutive output channels, each within it (a multiple of 16 channels, the
    /// kernels' tile): their outputs are concatenated. One group only; a slice of 16
    /// channels that still does not fit is refused with [`Error::TooLarge`].
    fn split(
        gpu: &Gpu,
        params: Conv2dParams,
        weight: ArrayView4<f32>,
        bias: Option<ArrayView1<f32>>,
        limit: u64,
    ) -> Result<Self> {
        let bias = bias_or_zeros(params.bias, params.out_channels, bias)?;
        let slice = |channels: usize| Conv2dParams {
            out_channels: channels,
            ..params
        };
        let fits = |channels: usize| 4 * blocked_len(&slice(channels)) as u64 <= limit;
        let step = 16;
        let mut per = step;
        while per + step < params.out_channels && fits(per + step) {
            per += step;
        }
        if !fits(per) {
            return Err(Error::TooLarge {
                name: "weight",
                amount: 4 * blocked_len(&slice(per)) as u64,
                unit: "bytes for 16 output channels",
                limit,
                limit_name: "max_storage_buffer_binding_size",
            });
        }
        let parts = (0..params.out_channels)
            .step_by(per)
            .map(|c0| {
                let c1 = (c0 + per).min(params.out_channels);
                let w = weight.slice(ndarray::s![c0..c1, .., .., ..]);
                let b = ndarray::ArrayView1::from(&bias[c0..c1]);
                let p = slice(c1 - c0);
                Conv2d::new(gpu, p, w, p.bias.then_some(b))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Conv2d {
            params,
            weights: LayerWeights::Split(parts),
            trims: Mutex::default(),
        })
    }

    /// Loads `{prefix}.weight` (and `{prefix}.bias` when `params.bias`) by PyTorch's names.
    pub fn load(gpu: &Gpu, params: Conv2dParams, sd: &StateDict, prefix: &str) -> Result<Self> {
        let (w, b) = PackedWeights::load(sd, prefix, &params)?;
        Self::new(gpu, params, w.view(), b.as_ref().map(|b| b.view()))
    }

    /// The layer's parameters.
    pub fn params(&self) -> &Conv2dParams {
        &self.params
    }

    /// Output shape for `input`, or the error that `forward` would return.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        self.params.output_shape(input)
    }

    /// Records the convolution of `input` with the kernel [`select_kernel`] picks. Taps
    /// that read only zero padding for every output on this input are skipped
    /// ([`Conv2dParams::live_taps`]; as in every method that picks its own kernel): the
    /// result is the same, the work less. On CPU adapters an atrous convolution whose
    /// taps are live for only part of the output may run as rectangles of it, each with
    /// its own live taps ([`Conv2dParams::tap_regions`]), where that saves enough.
    pub fn forward(&self, rec: &mut Recorder<'_>, input: &Tensor) -> Result<Tensor> {
        if let Some(regions) = self.regions_worth_cutting(rec.gpu().caps(), input.shape()) {
            return self.forward_regions(rec, input, &regions);
        }
        let trimmed = self.trimmed_for(input.shape())?;
        let layer = trimmed.as_deref().unwrap_or(self);
        let kernel = select_kernel(&layer.params, input.shape(), rec.gpu().caps());
        layer.forward_with(rec, input, kernel)
    }

    /// The [`TapRegion`]s of `input` where running them pays: on CPU adapters (a GPU's
    /// kernels skip rows and columns of padding as they go; llvmpipe runs every branch
    /// under a mask, so only a cut made on the host saves work there), one group, and at
    /// least [`REGIONS_MIN_SAVED`] multiply-accumulates and a third of the live taps'
    /// saved against up to four dispatches a region.
    fn regions_worth_cutting(
        &self,
        caps: &DeviceCaps,
        input: [usize; 4],
    ) -> Option<Vec<TapRegion>> {
        if !caps.cpu || self.params.groups != 1 || !matches!(self.weights, LayerWeights::Whole(_)) {
            return None;
        }
        let regions = self.params.tap_regions(input)?;
        if regions.len() > REGIONS_MAX {
            return None;
        }
        let out = self.params.output_shape(input).ok()?;
        let (kh, kw) = self.params.kernel_size;
        let live = self.params.live_taps(input).map_or(kh * kw, |t| t.count());
        // Work in taps x pixels, a small rectangle's counted as if it had REGION_BUSY
        // pointwise tiles: fewer leave a CPU adapter's lanes idle (DeepLabV3-MobileNetV3's
        // 4 x 4 corners of 4 taps over 3840 channels ran at 0.9 GFLOP/s).
        let tiles = |px: usize| px.div_ceil(POINTWISE_PX) * self.params.out_channels.div_ceil(16);
        let cost = |px: usize, taps: usize| px * taps * REGION_BUSY.div_ceil(tiles(px)).max(1);
        let whole_px = input[0] * out[2] * out[3];
        let whole = cost(whole_px, live);
        let cut: usize = regions
            .iter()
            .map(|r| cost(input[0] * r.outputs(), r.taps.count()))
            .sum();
        let per_tap = self.params.in_channels * self.params.out_channels;
        let saved = (whole_px * live)
            .saturating_sub(input[0] * Conv2dParams::region_taps(&regions))
            * per_tap;
        (3 * cut <= 2 * whole && saved >= REGIONS_MIN_SAVED).then_some(regions)
    }

    /// [`Conv2d::forward`] as its [`TapRegion`]s: each the convolution of its taps over
    /// its crop of the input, padded back to the output's size with zeros and added up
    /// (the rectangles do not overlap, so bias and activation apply once everywhere).
    fn forward_regions(
        &self,
        rec: &mut Recorder<'_>,
        input: &Tensor,
        regions: &[TapRegion],
    ) -> Result<Tensor> {
        input.check_gpu(rec.gpu(), "input")?;
        let s = input.shape();
        let out = self.params.output_shape(s)?;
        let mut total: Option<Tensor> = None;
        for region in regions {
            let (rows, cols) = self.params.region_input(region);
            let crop = if rows == (0, s[2]) && cols == (0, s[3]) {
                None
            } else {
                let window =
                    CropParams2d::new((rows.0, cols.0), (rows.1 - rows.0, cols.1 - cols.0));
                Some(super::copy::crop(rec, &window, input)?)
            };
            let x = crop.as_ref().unwrap_or(input);
            let layer = self.cut_layer(region.taps, self.params.region_params(region.taps))?;
            let kernel = select_kernel(&layer.params, x.shape(), rec.gpu().caps());
            let part = layer.forward_with(rec, x, kernel)?;
            let pads = [
                region.cols.0,
                out[3] - region.cols.1,
                region.rows.0,
                out[2] - region.rows.1,
            ];
            let [l, r, t, b] = pads.map(|p| p as i64);
            let placed = super::copy::pad2d(rec, &Pad2dParams::new((l, r, t, b)), &part)?;
            total = Some(match total {
                None => placed,
                Some(sum) => super::channel::add(rec, &sum, &placed, Activation::None)?,
            });
        }
        total.ok_or_else(|| invalid("regions", "none to run".to_string()))
    }

    /// This layer cut to its live taps on `input` ([`Conv2dParams::live_taps`]), or
    /// `None` where every tap is live (or the weights are split across bindings).
    fn trimmed_for(&self, input: [usize; 4]) -> Result<Option<Arc<Conv2d>>> {
        if !matches!(self.weights, LayerWeights::Whole(_)) {
            return Ok(None);
        }
        let Some(taps) = self.params.live_taps(input) else {
            return Ok(None);
        };
        self.cut_layer(taps, self.params.trimmed(taps)?).map(Some)
    }

    /// This layer's `taps` alone, with parameters `params` (the trimmed or a region's),
    /// made once and kept for a few input sizes.
    fn cut_layer(&self, taps: LiveTaps, params: Conv2dParams) -> Result<Arc<Conv2d>> {
        let LayerWeights::Whole(weights) = &self.weights else {
            return Err(invalid("weights", "split layers are not cut".to_string()));
        };
        let mut trims = self.trims.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((.., layer)) = trims.iter().find(|(p, t, _)| *p == params && *t == taps) {
            return Ok(layer.clone());
        }
        let shape = self.params.weight_shape();
        let full = ArrayView4::from_shape(shape, &weights.host)
            .map_err(|e| invalid("weight", format!("does not match its shape {shape:?}: {e}")))?;
        let bias = params.bias.then(|| ArrayView1::from(weights.bias.host()));
        let layer = Arc::new(Conv2d::new(
            &weights.gpu,
            params,
            taps.weight(full)?.view(),
            bias,
        )?);
        // A few input sizes at most; the oldest goes first.
        if trims.len() == TRIMS_KEPT {
            trims.remove(0);
        }
        trims.push((params, taps, layer.clone()));
        Ok(layer)
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

    /// Records the convolution of `input` scaled per channel by `gate_activation(gate)`:
    /// `conv(x * act(gate))`, with `gate` the logits `[N, C_in, 1, 1]` (a
    /// squeeze-and-excitation's excitation, [`SqueezeExcitation::excitation`]), and
    /// optionally a residual joined as in [`Conv2d::forward_residual`]. The pointwise and
    /// GEMM kernels apply the gate as they read the input, in the same pass (the kernel is
    /// [`select_gated_kernel`]'s); the others after a separate scale
    /// ([`scale_channels`](super::channel::scale_channels)).
    ///
    /// [`SqueezeExcitation::excitation`]: super::attention::SqueezeExcitation::excitation
    pub fn forward_gated(
        &self,
        rec: &mut Recorder<'_>,
        input: &Tensor,
        (gate, gate_activation): (&Tensor, Activation),
        residual: Option<(&Tensor, ResidualJoin)>,
    ) -> Result<Tensor> {
        let trimmed = self.trimmed_for(input.shape())?;
        let layer = trimmed.as_deref().unwrap_or(self);
        let kernel = select_gated_kernel(&layer.params, input.shape(), rec.gpu().caps());
        layer.forward_gated_with(rec, input, (gate, gate_activation), residual, kernel)
    }

    /// [`Conv2d::forward_gated`] with a chosen kernel.
    pub fn forward_gated_with(
        &self,
        rec: &mut Recorder<'_>,
        input: &Tensor,
        (gate, gate_activation): (&Tensor, Activation),
        residual: Option<(&Tensor, ResidualJoin)>,
        kernel: ConvKernel,
    ) -> Result<Tensor> {
        input.check_gpu(rec.gpu(), "input")?;
        gate.check_gpu(rec.gpu(), "gate")?;
        let s = input.shape();
        super::same_shape("gate", [s[0], s[1], 1, 1], gate.shape())?;
        let fused = kernel.applies_input_gate() && matches!(self.weights, LayerWeights::Whole(_));
        if !fused {
            let scaled = super::channel::scale_channels(rec, input, gate, gate_activation)?;
            return match residual {
                Some((r, join)) => self.forward_residual_with(rec, &scaled, r, join, kernel),
                None => self.forward_with(rec, &scaled, kernel),
            };
        }
        if let Some((r, join)) = residual {
            r.check_gpu(rec.gpu(), "residual")?;
            self.params.check_join(join)?;
            let out = self.params.output_shape(s)?;
            super::same_shape("residual", out, r.shape())?;
        }
        let gate = Some((gate, gate_activation));
        self.record_gated(rec, input, kernel, (0, residual), gate)
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
        let trimmed = self.trimmed_for(input.shape())?;
        let layer = trimmed.as_deref().unwrap_or(self);
        let kernel = select_kernel(&layer.params, input.shape(), rec.gpu().caps());
        layer.forward_residual_with(rec, input, residual, join, kernel)
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
        self.params.check_join(join)?;
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
        self.params.check_shuffle(groups)?;
        let trimmed = self.trimmed_for(input.shape())?;
        let layer = trimmed.as_deref().unwrap_or(self);
        let kernel = select_kernel(&layer.params, input.shape(), rec.gpu().caps());
        layer.record(rec, input, kernel, groups as u32, None)
    }

    fn record(
        &self,
        rec: &mut Recorder<'_>,
        input: &Tensor,
        kernel: ConvKernel,
        shuffle_groups: u32,
        residual: Option<(&Tensor, ResidualJoin)>,
    ) -> Result<Tensor> {
        self.record_gated(rec, input, kernel, (shuffle_groups, residual), None)
    }

    /// Records the convolution, with the store's shuffle and residual, and the input's
    /// gate when given (the kernel must apply it).
    fn record_gated(
        &self,
        rec: &mut Recorder<'_>,
        input: &Tensor,
        kernel: ConvKernel,
        (shuffle_groups, residual): (u32, Option<(&Tensor, ResidualJoin)>),
        gate: Option<(&Tensor, Activation)>,
    ) -> Result<Tensor> {
        input.check_gpu(rec.gpu(), "input")?;
        let weights = match &self.weights {
            LayerWeights::Whole(w) => w,
            LayerWeights::Split(parts) => {
                fail_if(shuffle_groups != 0 || residual.is_some(), "layer", || {
                    "a layer split across storage bindings (weights past \
                     max_storage_buffer_binding_size) runs plain forwards only, without \
                     a fused residual or channel shuffle"
                        .to_string()
                })?;
                self.params.output_shape(input.shape())?;
                let outs = parts
                    .iter()
                    .map(|part| {
                        // The last slice may be narrower than a forced kernel allows.
                        let k = if kernel.supports(&part.params, input.shape()) {
                            kernel
                        } else {
                            select_kernel(&part.params, input.shape(), rec.gpu().caps())
                        };
                        part.record(rec, input, k, 0, None)
                    })
                    .collect::<Result<Vec<_>>>()?;
                return super::channel::concat(rec, &outs.iter().collect::<Vec<_>>());
            }
        };
        check_owner(weights.gpu_id(), rec.gpu(), "layer")?;
        let epilogue = Epilogue {
            act: self.params.activation,
            param: self.params.param_activation,
            residual: residual.map(|(_, j)| j),
            shuffle_groups,
            at_run: false,
        };
        let input_gate = InputGate(gate.map(|(_, a)| a));
        let launch = plan_gated(&self.params, input.shape(), kernel, (epilogue, input_gate))?;
        let out_shape = self.params.output_shape(input.shape())?;
        // A split reduction's ranges and the length of their raw sums, checked before
        // anything is recorded: within one binding and u32 indices.
        let split = match kernel {
            ConvKernel::GemmSplitK { splits } => {
                let (_, ranges) = split_reduction(&self.params, splits as usize);
                let len = ranges.saturating_mul(out_shape.iter().product());
                let gpu = rec.gpu();
                gpu.check_binding_size("kernel", (len as u64).saturating_mul(4))?;
                check_dims("kernel", &[len, 1, 1, 1])?;
                Some((ranges, len))
            }
            _ => None,
        };
        let columns = self.record_im2col(rec, input, kernel)?;
        let output = rec.empty("output", out_shape)?;
        let split = match split {
            Some((ranges, len)) => Some((ranges, rec.alloc_f32("kernel", len)?)),
            None => None,
        };
        let weight = match kernel {
            ConvKernel::Depthwise { .. }
            | ConvKernel::DepthwiseTexels
            | ConvKernel::DepthwiseTiled => weights.layout(0, &|w| w.to_vec())?,
            _ => weights.layout(1, &|w| pack_blocked(&self.params, w))?,
        };
        let args = Args::new()
            .read("x", columns.as_ref().unwrap_or(input))
            .read("wt", weight)
            .read("bias", weights.bias()?)
            .read_opt("gate", gate.map(|(g, _)| g));
        let args = match &split {
            Some((_, part)) => args.write("part", part),
            None => args
                .write("y", &output)
                .read_opt("res", residual.map(|(r, _)| r)),
        };
        // The depthwise kernels also read the input as vec4s.
        let args = match kernel {
            ConvKernel::Depthwise { .. } | ConvKernel::DepthwiseTexels => args.read("x4", input),
            _ => args,
        };
        rec.run(&launch, args)?;
        if let Some((ranges, part)) = &split {
            let reduce = plan_gemm_reduce(out_shape, *ranges, epilogue);
            let args = Args::new()
                .read("part", part)
                .read("bias", weights.bias()?)
                .write("y", &output)
                .read_opt("res", residual.map(|(r, _)| r));
            rec.run(&reduce, args)?;
        }
        Ok(output)
    }

    /// With [`ConvKernel::Im2colTexels`], records its first dispatch and returns the
    /// columns its second reads; `None` for the other kernels. After [`plan_gated`], which
    /// checks that the kernel supports the input.
    fn record_im2col(
        &self,
        rec: &mut Recorder<'_>,
        input: &Tensor,
        kernel: ConvKernel,
    ) -> Result<Option<Tensor>> {
        if kernel != ConvKernel::Im2colTexels {
            return Ok(None);
        }
        let p = &self.params;
        let out = p.output_shape(input.shape())?;
        let columns = rec.empty("columns", [out[0], p.columns().in_channels, out[2], out[3]])?;
        let launch = plan_im2col(p, input.shape(), out);
        rec.run(&launch, Args::new().read("x", input).write("y", &columns))?;
        Ok(Some(columns))
    }

    /// Cost of this layer on `input`.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        self.params.cost(input)
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

    /// Sets the depthwise stage's stride.
    pub fn stride(mut self, stride: impl IntoPair) -> Self {
        self.depthwise = self.depthwise.stride(stride);
        self
    }

    /// Sets the depthwise stage's symmetric padding.
    pub fn padding(mut self, padding: impl IntoPair) -> Self {
        self.depthwise = self.depthwise.padding(padding);
        self
    }

    /// Sets the depthwise stage's dilation.
    pub fn dilation(mut self, dilation: impl IntoPair) -> Self {
        self.depthwise = self.depthwise.dilation(dilation);
        self
    }

    /// Enables or disables both stages' biases.
    pub fn bias(mut self, bias: bool) -> Self {
        self.depthwise = self.depthwise.bias(bias);
        self.pointwise = self.pointwise.bias(bias);
        self
    }

    /// Sets the activations fused after the depthwise and after the pointwise stage.
    pub fn activations(mut self, depthwise: Activation, pointwise: Activation) -> Self {
        self.depthwise = self.depthwise.activation(depthwise);
        self.pointwise = self.pointwise.activation(pointwise);
        self
    }

    /// Checks that the stages fit together: a depthwise first stage, a 1x1 second stage
    /// whose input channels are the first stage's output channels.
    pub fn validate(&self) -> Result<()> {
        self.depthwise.validate()?;
        self.pointwise.validate()?;
        fail_if(!self.depthwise.is_depthwise(), "depthwise.groups", || {
            format!(
                "must equal in_channels ({}) for the depthwise stage, got {}",
                self.depthwise.in_channels, self.depthwise.groups
            )
        })?;
        fail_if(
            self.pointwise.kernel_size != (1, 1),
            "pointwise.kernel_size",
            || format!("must be (1, 1), got {:?}", self.pointwise.kernel_size),
        )?;
        fail_if(
            self.pointwise.in_channels != self.depthwise.out_channels,
            "pointwise.in_channels",
            || {
                format!(
                    "must equal the depthwise stage's out_channels ({}), got {}",
                    self.depthwise.out_channels, self.pointwise.in_channels
                )
            },
        )?;
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

    /// Loads `{prefix}.depthwise.*` and `{prefix}.pointwise.*` by PyTorch's names (a
    /// module with two `nn.Conv2d` attributes of those names).
    pub fn load(
        gpu: &Gpu,
        params: DepthwiseSeparableParams,
        sd: &StateDict,
        prefix: &str,
    ) -> Result<Self> {
        params.validate()?;
        Ok(DepthwiseSeparableConv2d {
            depthwise: Conv2d::load(gpu, params.depthwise, sd, &key(prefix, "depthwise"))?,
            pointwise: Conv2d::load(gpu, params.pointwise, sd, &key(prefix, "pointwise"))?,
        })
    }

    /// Records both stages.
    pub fn forward(&self, rec: &mut Recorder<'_>, input: &Tensor) -> Result<Tensor> {
        let mid = self.depthwise.forward(rec, input)?;
        self.pointwise.forward(rec, &mid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of a launch's uniform field, read back from its bytes.
    fn field<U: crate::launch::Uniform>(launch: &Launch, name: &str) -> u32 {
        let (_, offset) = U::fields().into_iter().find(|(n, _)| *n == name).unwrap();
        u32::from_ne_bytes(launch.uniform[offset..offset + 4].try_into().unwrap())
    }

    #[test]
    fn split_reductions_cover_every_tap_once_in_whole_steps() {
        for (cin, k, splits) in [(64, 3, 4), (5, 3, 2), (7, 3, 8), (128, 3, 8), (2, 4, 2)] {
            let p = Conv2dParams::new(cin, 8, k);
            let taps = cin * k * k;
            let (per, ranges) = split_reduction(&p, splits);
            assert_eq!(per % GEMM_TILE.2, 0, "{cin} {k} {splits}");
            assert!(ranges <= splits && ranges * per >= taps && (ranges - 1) * per < taps);
            let supported = ConvKernel::GemmSplitK {
                splits: splits as u32,
            }
            .supports(&p, [1, cin, 9, 9]);
            assert_eq!(supported, taps.div_ceil(GEMM_TILE.2) >= splits, "{cin} {k}");
            if supported {
                assert!(ranges >= 2, "{cin} {k} {splits}: {ranges}");
            }
        }
    }

    /// Raw sums past one storage binding: a typed error naming the kernel, before anything
    /// is recorded.
    #[test]
    fn a_split_past_one_binding_is_refused_by_name() {
        let gpu = Gpu::with_options(crate::GpuOptions {
            max_storage_buffer_binding_size: Some(1 << 17),
            ..Default::default()
        })
        .unwrap();
        let params = Conv2dParams::new(32, 16, 3).padding(1).bias(false);
        let w = Array4::zeros(params.weight_shape());
        let conv = Conv2d::new(&gpu, params, w.view(), None).unwrap();
        // 16 x 32 x 32 outputs: 64 KiB, four ranges of them 256 KiB, the input 128 KiB.
        let x = gpu.upload(Array4::zeros([1, 32, 32, 32]).view()).unwrap();
        let mut rec = gpu.recorder();
        let e = conv.forward_with(&mut rec, &x, ConvKernel::GemmSplitK { splits: 4 });
        assert!(
            matches!(e, Err(Error::TooLarge { name: "kernel", .. })),
            "{e:?}"
        );
        assert_eq!(rec.dispatch_count(), 0);
        let y = conv.forward_with(&mut rec, &x, ConvKernel::Gemm).unwrap();
        assert_eq!(rec.download(&y).unwrap().shape(), &[1, 16, 32, 32]);
    }

    /// The split reduction's second pass applies the whole store: bias, activation, a
    /// residual and a channel shuffle, as the plain GEMM does (batch 2, groups, odd map).
    #[test]
    fn a_split_reduction_stores_as_the_plain_gemm() {
        let gpu = Gpu::new().unwrap();
        let params = Conv2dParams::new(12, 8, 3)
            .groups(2)
            .padding(1)
            .dilation(2)
            .activation(Activation::HardSwish);
        let input = [2, 12, 7, 9];
        let value = |i: usize| ((i * 37 % 23) as f32 - 11.0) / 8.0;
        let w = Array4::from_shape_fn(params.weight_shape(), |(a, b, c, d)| {
            value(a * 29 + b * 7 + c * 3 + d)
        });
        let bias = ndarray::Array1::from_shape_fn(8, |i| value(i + 5));
        let conv = Conv2d::new(&gpu, params, w.view(), Some(bias.view())).unwrap();
        let x = Array4::from_shape_fn(input, |(n, c, h, w)| value(n * 131 + c * 17 + h * 5 + w));
        let out = params.output_shape(input).unwrap();
        let r = Array4::from_shape_fn(out, |(n, c, h, w)| value(n + c * 3 + h * 7 + w * 11));
        let (xt, rt) = (gpu.upload(x.view()).unwrap(), gpu.upload(r.view()).unwrap());
        let run = |kernel: ConvKernel| {
            let mut rec = gpu.recorder();
            let joined = (&rt, ResidualJoin::AfterActivation);
            let y = conv.record(&mut rec, &xt, kernel, 4, Some(joined)).unwrap();
            assert_eq!(rec.dispatch_count(), kernel.dispatches(), "{kernel:?}");
            rec.download(&y).unwrap()
        };
        let want = run(ConvKernel::Gemm);
        for splits in [2, 4] {
            let kernel = ConvKernel::GemmSplitK { splits };
            assert!(kernel.supports(&params, input));
            let got = run(kernel);
            // Values in eighths: every partial sum is exact, whatever the order.
            assert_eq!(got, want, "{kernel:?}");
        }
    }

    #[test]
    fn a_gated_convolution_prefers_a_kernel_that_applies_the_gate() {
        let cpu = DeviceCaps {
            cpu: true,
            ..DeviceCaps::default()
        };
        let gpu = DeviceCaps::default();
        // LR-ASPP's high classifier at 1/16 of a 72 x 88 input: a 5 x 6 plane, 5 classes.
        // A GPU takes the direct kernel, which has no gate: the scalar pointwise kernel
        // applies it; a CPU adapter's choice applies it already.
        let p = Conv2dParams::new(128, 5, 1);
        let input = [1, 128, 5, 6];
        let gpu_choice = select_kernel(&p, input, &gpu);
        assert_eq!(gpu_choice, ConvKernel::Direct { row_buffer: true });
        assert!(!gpu_choice.applies_input_gate());
        assert_eq!(
            select_gated_kernel(&p, input, &gpu),
            ConvKernel::Pointwise { vector_io: false }
        );
        assert_eq!(select_kernel(&p, input, &cpu), ConvKernel::PointwiseTexels);
        assert_eq!(
            select_gated_kernel(&p, input, &cpu),
            ConvKernel::PointwiseTexels
        );
        // Where the choice applies the gate it stays: the texels pointwise kernel on a
        // CPU adapter, the GEMM on a GPU.
        let p = Conv2dParams::new(128, 64, 1);
        let input = [1, 128, 8, 8];
        assert_eq!(
            select_gated_kernel(&p, input, &cpu),
            ConvKernel::PointwiseTexels
        );
        assert_eq!(select_gated_kernel(&p, input, &gpu), ConvKernel::Gemm);
        // No pointwise kernel for a 3x3 window: the direct kernel, after a scale pass.
        let p = Conv2dParams::new(8, 5, 3);
        let input = [1, 8, 5, 6];
        assert!(!select_gated_kernel(&p, input, &cpu).applies_input_gate());
    }

    /// Each rectangle's convolution on its crop of the input gives the rectangle.
    #[test]
    fn tap_regions_crops_give_their_rectangles() {
        for (p, input) in [
            (
                Conv2dParams::new(8, 4, 3).padding(12).dilation(12),
                [2, 8, 20, 20],
            ),
            (
                Conv2dParams::new(8, 4, 3)
                    .padding((16, 12))
                    .dilation((16, 12)),
                [2, 8, 26, 30],
            ),
        ] {
            let regions = p.tap_regions(input).unwrap();
            for r in &regions {
                let (rows, cols) = p.region_input(r);
                assert!(rows.1 <= input[2] && cols.1 <= input[3], "{r:?}");
                let crop = [2, 8, rows.1 - rows.0, cols.1 - cols.0];
                let got = p.region_params(r.taps).output_shape(crop).unwrap();
                let want = [2, 4, r.rows.1 - r.rows.0, r.cols.1 - r.cols.0];
                assert_eq!(got, want, "{r:?}");
            }
        }
    }

    #[test]
    fn plans_are_computed_without_a_gpu() {
        // A CPU-emulated adapter: the register-tiled kernels.
        let caps = DeviceCaps {
            cpu: true,
            ..DeviceCaps::default()
        };
        // Pointwise 64 -> 24 on two 56 x 56 planes: two 12-channel tiles (3 vec4: no
        // padded channel), 16 pixels an invocation, 16 invocations a workgroup.
        let p = Conv2dParams::new(64, 24, 1).activation(Activation::Relu6);
        let input = [2, 64, 56, 56];
        let launch = plan(
            &p,
            input,
            select_kernel(&p, input, &caps),
            Epilogue {
                act: p.activation,
                ..Epilogue::default()
            },
        )
        .unwrap();
        assert_eq!(launch.file, "conv_pointwise_texels.wgsl");
        assert_eq!(launch.constants.get("OC_VEC"), Some(3));
        // The CPU form reads its activation (ReLU6: 2) from the uniform.
        assert_eq!(launch.constants.get("ACT"), Some(AT_RUN));
        assert_eq!(field::<PointwiseParams>(&launch, "act_hi"), 6f32.to_bits());
        assert_eq!(launch.constants.get("WORKGROUP_SIZE"), Some(16));
        // Tiles of 16 pixels, numbered across the dispatch (not a workgroup per block).
        let tiles = (56 * 56usize).div_ceil(16);
        assert_eq!(field::<PointwiseParams>(&launch, "tiles"), tiles as u32);
        assert_eq!(launch.workgroups, (2 * 2 * tiles).div_ceil(16) as u64);
        assert_eq!(launch.constants.get("Q"), Some(4));
        // Planes of fewer than 16 pixels: as many vec4s an invocation as they have.
        for (hw, q) in [
            ([1, 1], 1),
            ([2, 3], 2),
            ([3, 3], 3),
            ([3, 4], 3),
            ([4, 4], 4),
        ] {
            let input = [1, 64, hw[0], hw[1]];
            let k = select_kernel(&p, input, &caps);
            assert_eq!(k, ConvKernel::PointwiseTexels, "{hw:?}");
            let launch = plan(&p, input, k, Epilogue::default()).unwrap();
            assert_eq!(launch.constants.get("Q"), Some(q), "{hw:?}");
            assert_eq!(field::<PointwiseParams>(&launch, "tiles"), 1, "{hw:?}");
        }
        // A residual joined after the activation, and a shuffle, are constants of the store.
        let e = Epilogue {
            act: Activation::None,
            param: None,
            residual: Some(ResidualJoin::AfterActivation),
            shuffle_groups: 3,
            at_run: false,
        };
        let launch = plan(&p, input, ConvKernel::Direct { row_buffer: true }, e).unwrap();
        assert_eq!(launch.file, "conv_direct.wgsl");
        assert_eq!(launch.constants.get("RESIDUAL"), Some(1));
        assert_eq!(launch.constants.get("SHUFFLE_G"), Some(3));
        // Depthwise 3x3 stride 2 on a width divisible by 4: aligned vector loads (CPU
        // adapters read them as texels), 8-pixel strips, and the shift of a strip's
        // first input from its aligned vec4.
        let p = Conv2dParams::depthwise(32, 1, 3).stride(2).padding(1);
        let input = [1, 32, 56, 56];
        let k = ConvKernel::Depthwise {
            row_buffer: true,
            vector_loads: true,
            vector_stores: true,
        };
        assert_eq!(select_kernel(&p, input, &caps), ConvKernel::DepthwiseTexels);
        let launch = plan(&p, input, k, Epilogue::default()).unwrap();
        assert_eq!(launch.file, "conv_depthwise_vec.wgsl");
        assert_eq!(launch.constants.get("VEC"), Some(1));
        assert_eq!(launch.constants.get("PX"), Some(8));
        assert_eq!(launch.constants.get("SHIFT"), Some(3));
        assert_eq!(launch.constants.get("SH"), Some(2));
        // Four output rows an invocation.
        assert_eq!(launch.constants.get("PY"), Some(4));
        assert_eq!(field::<DepthwiseParams>(&launch, "rows"), 32 * 28 / 4);
        assert_eq!(launch.constants.get("YS"), Some(1));
        // A zero-padded 5 x 5 window at dilation 2: four rows two apart, row blocks of 8
        // rows in two phases (16 rows: 2 blocks x 2 phases per plane). A 3 x 3 dilated
        // window, a map of fewer than 8 rows, or reflect padding: one row an invocation.
        let dilated = Conv2dParams::depthwise(32, 1, 5).dilation(2).padding(4);
        let plan_rows = |p: &Conv2dParams, input: [usize; 4]| {
            let launch = plan(
                p,
                input,
                select_kernel(p, input, &caps),
                Epilogue::default(),
            );
            let launch = launch.unwrap();
            let get = |name| launch.constants.get(name).unwrap();
            (
                get("PY"),
                get("YS"),
                field::<DepthwiseParams>(&launch, "rows"),
            )
        };
        assert_eq!(plan_rows(&dilated, [1, 32, 16, 16]), (4, 2, 32 * 2 * 2));
        assert_eq!(plan_rows(&dilated, [1, 32, 7, 16]), (1, 1, 32 * 7));
        let reflect = dilated.padding_mode(PaddingMode::Reflect);
        assert_eq!(plan_rows(&reflect, [1, 32, 16, 16]), (1, 1, 32 * 16));
        let three = Conv2dParams::depthwise(32, 1, 3).dilation(2).padding(2);
        assert_eq!(plan_rows(&three, [1, 32, 16, 16]), (1, 1, 32 * 16));
        // A GPU: the depthwise convolution reads its input patch from workgroup memory,
        // 16 x 8 outputs a workgroup; the dense one is the GEMM, 32 x 32 a workgroup.
        let gpu = DeviceCaps::default();
        let k = select_kernel(&p, input, &gpu);
        assert_eq!(k, ConvKernel::DepthwiseTiled);
        let launch = plan(&p, input, k, Epilogue::default()).unwrap();
        assert_eq!(launch.file, "conv_depthwise_tiled.wgsl");
        // Patch: (8 - 1) * 2 + 3 rows, (16 - 1) * 2 + 3 columns.
        assert_eq!(field::<DepthwiseTiledParams>(&launch, "ih"), 17);
        assert_eq!(field::<DepthwiseTiledParams>(&launch, "iw"), 33);
        assert_eq!(launch.workgroups, 32 * 4 * 2);
        let dense = Conv2dParams::new(32, 48, 3).padding(1);
        let k = select_kernel(&dense, input, &gpu);
        assert_eq!(k, ConvKernel::Gemm);
        let launch = plan(&dense, input, k, Epilogue::default()).unwrap();
        assert_eq!(field::<GemmConvParams>(&launch, "k"), 32 * 9);
        assert_eq!(launch.workgroups, 2 * (56 * 56usize).div_ceil(32) as u64);
        // Every candidate plans; a kernel that does not apply is a typed error.
        for k in ConvKernel::candidates(&p, input) {
            assert!(plan(&p, input, k, Epilogue::default()).is_ok(), "{k:?}");
        }
        let err = plan(
            &p,
            input,
            ConvKernel::Pointwise { vector_io: true },
            Epilogue::default(),
        );
        assert!(matches!(
            err,
            Err(Error::InvalidParam { name: "kernel", .. })
        ));
    }
}
