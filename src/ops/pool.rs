//! Pooling with PyTorch's semantics: max pooling with indices (`max_pool2d(...,
//! return_indices=True)`), max unpooling (`max_unpool2d`, SegNet's decoder step), global
//! average / max pooling, and adaptive average pooling (`adaptive_avg_pool2d`).

use super::{Cost, IntoPair};
use crate::error::{invalid, Result};
use crate::gpu::{check_dims, IndexTensor, PoolOrigin, Recorder, Tensor};

const WORKGROUP: u64 = 64;
/// Outputs per invocation along a row (`PX` in `max_pool.wgsl`, `max_unpool_window.wgsl`).
const STRIP_PX: usize = 8;

/// Parameters of `torch.nn.MaxPool2d`.
///
/// Ties inside a window keep the first position in row-major order; a NaN in the window
/// makes the output NaN (PyTorch's CPU rule: the last NaN's position is returned).
/// Indices are flat positions `h * W + w` within each `(n, c)` plane of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MaxPool2dParams {
    /// Window size `(kH, kW)`.
    pub kernel_size: (usize, usize),
    /// Stride, default equal to the kernel size.
    pub stride: (usize, usize),
    /// Implicit negative-infinity padding, at most half the kernel size (as in PyTorch).
    pub padding: (usize, usize),
    /// Dilation of the window, default 1.
    pub dilation: (usize, usize),
    /// Round the output size up instead of down (default false).
    pub ceil_mode: bool,
}

impl MaxPool2dParams {
    /// A max pool with stride = kernel size, no padding, dilation 1, floor mode.
    pub fn new(kernel_size: impl IntoPair) -> Self {
        let k = kernel_size.into_pair();
        MaxPool2dParams {
            kernel_size: k,
            stride: k,
            padding: (0, 0),
            dilation: (1, 1),
            ceil_mode: false,
        }
    }

    /// Sets the stride.
    pub fn stride(mut self, stride: impl IntoPair) -> Self {
        self.stride = stride.into_pair();
        self
    }

    /// Sets the padding.
    pub fn padding(mut self, padding: impl IntoPair) -> Self {
        self.padding = padding.into_pair();
        self
    }

    /// Sets the dilation.
    pub fn dilation(mut self, dilation: impl IntoPair) -> Self {
        self.dilation = dilation.into_pair();
        self
    }

    /// Sets ceil mode.
    pub fn ceil_mode(mut self, ceil_mode: bool) -> Self {
        self.ceil_mode = ceil_mode;
        self
    }

    /// Validates against `[N, C, H, W]` and returns `[N, C, H_out, W_out]`.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        check_dims("input", &input)?;
        positive("kernel_size", self.kernel_size)?;
        positive("stride", self.stride)?;
        positive("dilation", self.dilation)?;
        let oh = pool_out_len(
            input[2],
            self.kernel_size.0,
            self.stride.0,
            self.padding.0,
            self.dilation.0,
            self.ceil_mode,
        )?;
        let ow = pool_out_len(
            input[3],
            self.kernel_size.1,
            self.stride.1,
            self.padding.1,
            self.dilation.1,
            self.ceil_mode,
        )?;
        Ok([input[0], input[1], oh, ow])
    }

    /// No parameters; one comparison per window element (counted as MACs); bytes moved
    /// (input, output values and i32 indices).
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let out = self.output_shape(input)?;
        let outputs = out.iter().product::<usize>() as u64;
        Ok(Cost {
            params: 0,
            macs: outputs * (self.kernel_size.0 * self.kernel_size.1) as u64,
            bytes: 4 * (input.iter().product::<usize>() as u64 + 2 * outputs),
        })
    }

    /// Records max pooling of `input`; returns the pooled values and their indices.
    pub fn forward(&self, rec: &mut Recorder<'_>, input: &Tensor) -> Result<(Tensor, IndexTensor)> {
        let gpu = rec.gpu();
        input.check_gpu(gpu, "input")?;
        let s = input.shape();
        let out = self.output_shape(s)?;
        let y = rec.empty("output", out)?;
        let idx = rec.empty_indices(
            out,
            PoolOrigin {
                kernel_size: self.kernel_size,
                stride: self.stride,
                padding: self.padding,
                dilation: self.dilation,
                plane: (s[2], s[3]),
            },
        )?;
        let strips_x = out[3].div_ceil(STRIP_PX);
        let total = s[0] * s[1] * out[2] * strips_x;
        let u = [
            (s[0] * s[1]) as u32,
            s[2] as u32,
            s[3] as u32,
            out[2] as u32,
            out[3] as u32,
            self.padding.0 as u32,
            self.padding.1 as u32,
            strips_x as u32,
            total as u32,
            0,
            0,
            0,
        ];
        let pipeline = gpu.pipeline(
            "max_pool.wgsl",
            &[],
            &[
                ("KH", self.kernel_size.0 as f64),
                ("KW", self.kernel_size.1 as f64),
                ("SH", self.stride.0 as f64),
                ("SW", self.stride.1 as f64),
                ("DH", self.dilation.0 as f64),
                ("DW", self.dilation.1 as f64),
            ],
        )?;
        rec.dispatch(
            &pipeline,
            &u,
            &[input.pooled(), y.pooled(), idx.pooled()],
            (total as u64).div_ceil(WORKGROUP),
        )?;
        Ok((y, idx))
    }
}

fn positive(name: &'static str, v: (usize, usize)) -> Result<()> {
    if v.0 == 0 || v.1 == 0 {
        return Err(invalid(name, format!("must be positive, got {v:?}")));
    }
    Ok(())
}

/// PyTorch's `pooling_output_shape`: floor or ceil of the window count, where in ceil
/// mode the last window must start inside the input or its left padding.
fn pool_out_len(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    ceil_mode: bool,
) -> Result<usize> {
    let extent = dilation * (kernel - 1) + 1;
    // PyTorch's rule: at most half the (undilated) kernel size.
    if 2 * padding > kernel {
        return Err(invalid(
            "padding",
            format!("{padding} must be at most half the kernel size {kernel}"),
        ));
    }
    let padded = input + 2 * padding;
    if extent > padded {
        return Err(invalid(
            "kernel_size",
            format!(
                "dilated kernel extent {extent} is larger than the padded input {padded} \
                 (input {input}, padding {padding})"
            ),
        ));
    }
    let span = padded - extent;
    let mut out = if ceil_mode {
        span.div_ceil(stride) + 1
    } else {
        span / stride + 1
    };
    if ceil_mode && (out - 1) * stride >= input + padding {
        out -= 1;
    }
    Ok(out)
}

/// Parameters of `torch.nn.MaxUnpool2d`: values go back to the positions their indices
/// name, zeros elsewhere.
///
/// The default output size per axis is `(in - 1) * stride - 2 * padding + kernel`; an
/// explicit `output_size` (for odd inputs) must lie strictly within `stride` of it, as
/// PyTorch requires. When several inputs name the same position, the one with the largest
/// input position wins, deterministically (PyTorch's CPU loop leaves the same result).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MaxUnpool2dParams {
    /// Window size of the pooling being undone.
    pub kernel_size: (usize, usize),
    /// Stride, default equal to the kernel size.
    pub stride: (usize, usize),
    /// Padding of the pooling being undone.
    pub padding: (usize, usize),
    /// Explicit output size `(H_out, W_out)`.
    pub output_size: Option<(usize, usize)>,
}

impl MaxUnpool2dParams {
    /// An unpool with stride = kernel size, no padding, the default output size.
    pub fn new(kernel_size: impl IntoPair) -> Self {
        let k = kernel_size.into_pair();
        MaxUnpool2dParams {
            kernel_size: k,
            stride: k,
            padding: (0, 0),
            output_size: None,
        }
    }

    /// The unpool matching a pooling layer (same kernel, stride and padding).
    pub fn from_pool(pool: &MaxPool2dParams) -> Self {
        MaxUnpool2dParams {
            kernel_size: pool.kernel_size,
            stride: pool.stride,
            padding: pool.padding,
            output_size: None,
        }
    }

    /// Sets the stride.
    pub fn stride(mut self, stride: impl IntoPair) -> Self {
        self.stride = stride.into_pair();
        self
    }

    /// Sets the padding.
    pub fn padding(mut self, padding: impl IntoPair) -> Self {
        self.padding = padding.into_pair();
        self
    }

    /// Sets an explicit output size.
    pub fn output_size(mut self, size: impl IntoPair) -> Self {
        self.output_size = Some(size.into_pair());
        self
    }

    /// Validates against the pooled input `[N, C, H, W]`; returns the output shape.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        check_dims("input", &input)?;
        positive("kernel_size", self.kernel_size)?;
        positive("stride", self.stride)?;
        let default = |i: usize, k: usize, s: usize, p: usize| -> Result<usize> {
            let full = (i - 1) * s + k;
            if 2 * p >= full {
                return Err(invalid(
                    "padding",
                    format!(
                        "2 * padding ({}) leaves no output (size {full} before padding)",
                        2 * p
                    ),
                ));
            }
            Ok(full - 2 * p)
        };
        let dh = default(input[2], self.kernel_size.0, self.stride.0, self.padding.0)?;
        let dw = default(input[3], self.kernel_size.1, self.stride.1, self.padding.1)?;
        let (oh, ow) = match self.output_size {
            None => (dh, dw),
            Some((oh, ow)) => {
                for (axis, o, d, s) in [
                    ("height", oh, dh, self.stride.0),
                    ("width", ow, dw, self.stride.1),
                ] {
                    if o + s <= d || o >= d + s {
                        return Err(invalid(
                            "output_size",
                            format!(
                                "{o} ({axis}) could not come from these pooling parameters: \
                                 it must lie strictly between {} and {}",
                                d as i64 - s as i64,
                                d + s
                            ),
                        ));
                    }
                }
                (oh, ow)
            }
        };
        Ok([input[0], input[1], oh, ow])
    }

    /// No parameters or MACs; bytes moved (input values, indices, output).
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let out = self.output_shape(input)?;
        let ins = input.iter().product::<usize>() as u64;
        Ok(Cost {
            params: 0,
            macs: 0,
            bytes: 4 * (2 * ins + out.iter().product::<usize>() as u64),
        })
    }

    /// Records unpooling of `input` with `indices` (same shape as `input`, as returned by
    /// [`MaxPool2dParams::forward`] or [`Gpu::upload_indices`](crate::Gpu::upload_indices)).
    pub fn forward(
        &self,
        rec: &mut Recorder<'_>,
        input: &Tensor,
        indices: &IndexTensor,
    ) -> Result<Tensor> {
        let gpu = rec.gpu();
        input.check_gpu(gpu, "input")?;
        indices.check_gpu(gpu, "indices")?;
        let s = input.shape();
        super::same_shape("indices", s, indices.shape())?;
        let out = self.output_shape(s)?;
        let out_plane = out[2] * out[3];
        if indices.bound() > out_plane {
            return Err(invalid(
                "indices",
                format!(
                    "indices may point up to position {} but the output plane {}x{} has only \
                     {out_plane} positions",
                    indices.bound() - 1,
                    out[2],
                    out[3]
                ),
            ));
        }
        let y = rec.empty("output", out)?;
        if let Some(origin) = indices.origin().filter(|o| self.gather_applies(o, out)) {
            let strips_x = out[3].div_ceil(STRIP_PX);
            let total = s[0] * s[1] * out[2] * strips_x;
            let pipeline = gpu.pipeline(
                "max_unpool_window.wgsl",
                &[],
                &[
                    ("KH", origin.kernel_size.0 as f64),
                    ("KW", origin.kernel_size.1 as f64),
                    ("SH", origin.stride.0 as f64),
                    ("SW", origin.stride.1 as f64),
                ],
            )?;
            rec.dispatch(
                &pipeline,
                &[
                    (s[0] * s[1]) as u32,
                    s[2] as u32,
                    s[3] as u32,
                    out[2] as u32,
                    out[3] as u32,
                    origin.padding.0 as u32,
                    origin.padding.1 as u32,
                    strips_x as u32,
                    total as u32,
                    0,
                    0,
                    0,
                ],
                &[input.pooled(), indices.pooled(), y.pooled()],
                (total as u64).div_ceil(WORKGROUP),
            )?;
            return Ok(y);
        }
        let owner = rec.alloc_f32("output", out.iter().product())?;
        let planes = s[0] * s[1];
        let in_plane = s[2] * s[3];
        rec.clear(&owner);
        let scatter = gpu.pipeline("max_unpool_scatter.wgsl", &[], &[])?;
        let scatter_total = planes * in_plane;
        rec.dispatch(
            &scatter,
            &[
                planes as u32,
                in_plane as u32,
                out_plane as u32,
                scatter_total as u32,
            ],
            &[indices.pooled(), &owner],
            (scatter_total as u64).div_ceil(WORKGROUP),
        )?;
        let gather = gpu.pipeline("max_unpool_gather.wgsl", &[], &[])?;
        let gather_total = planes * out_plane;
        rec.dispatch(
            &gather,
            &[
                planes as u32,
                in_plane as u32,
                out_plane as u32,
                gather_total as u32,
            ],
            &[input.pooled(), &owner, y.pooled()],
            (gather_total as u64).div_ceil(WORKGROUP),
        )?;
        Ok(y)
    }
}

impl MaxUnpool2dParams {
    /// Whether unpooling can gather: the indices come from a max pooling whose windows
    /// cannot overlap (stride >= kernel, dilation 1), with this unpool's geometry, and the
    /// output is the plane that pooling read. Then each output position has exactly one
    /// candidate source and no atomics are needed.
    fn gather_applies(&self, origin: &PoolOrigin, out: [usize; 4]) -> bool {
        origin.dilation == (1, 1)
            && origin.stride.0 >= origin.kernel_size.0
            && origin.stride.1 >= origin.kernel_size.1
            && origin.kernel_size == self.kernel_size
            && origin.stride == self.stride
            && origin.padding == self.padding
            && origin.plane == (out[2], out[3])
    }
}

/// Parameters of `torch.nn.AvgPool2d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AvgPool2dParams {
    /// Window size `(kH, kW)`.
    pub kernel_size: (usize, usize),
    /// Stride, default equal to the kernel size.
    pub stride: (usize, usize),
    /// Zero padding, at most half the kernel size.
    pub padding: (usize, usize),
    /// Round the output size up (default false).
    pub ceil_mode: bool,
    /// Count padding in the divisor (default true, as in PyTorch).
    pub count_include_pad: bool,
    /// A fixed divisor instead of the window count.
    pub divisor_override: Option<usize>,
}

impl AvgPool2dParams {
    /// PyTorch's defaults: stride = kernel, no padding, floor mode, count_include_pad.
    pub fn new(kernel_size: impl IntoPair) -> Self {
        let k = kernel_size.into_pair();
        AvgPool2dParams {
            kernel_size: k,
            stride: k,
            padding: (0, 0),
            ceil_mode: false,
            count_include_pad: true,
            divisor_override: None,
        }
    }

    /// Sets the stride.
    pub fn stride(mut self, stride: impl IntoPair) -> Self {
        self.stride = stride.into_pair();
        self
    }

    /// Sets the padding.
    pub fn padding(mut self, padding: impl IntoPair) -> Self {
        self.padding = padding.into_pair();
        self
    }

    /// Sets ceil mode.
    pub fn ceil_mode(mut self, ceil_mode: bool) -> Self {
        self.ceil_mode = ceil_mode;
        self
    }

    /// Sets count_include_pad.
    pub fn count_include_pad(mut self, include: bool) -> Self {
        self.count_include_pad = include;
        self
    }

    /// Sets a fixed divisor.
    pub fn divisor_override(mut self, divisor: Option<usize>) -> Self {
        self.divisor_override = divisor;
        self
    }

    /// Validates against `[N, C, H, W]` and returns `[N, C, H_out, W_out]`.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        if self.divisor_override == Some(0) {
            return Err(invalid("divisor_override", "must be positive, got 0"));
        }
        MaxPool2dParams {
            kernel_size: self.kernel_size,
            stride: self.stride,
            padding: self.padding,
            dilation: (1, 1),
            ceil_mode: self.ceil_mode,
        }
        .output_shape(input)
    }

    /// No parameters; one add per window element; bytes moved.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let out = self.output_shape(input)?;
        let outs = out.iter().product::<usize>() as u64;
        Ok(Cost {
            params: 0,
            macs: outs * (self.kernel_size.0 * self.kernel_size.1) as u64,
            bytes: 4 * (input.iter().product::<usize>() as u64 + outs),
        })
    }

    /// Records the pooling.
    pub fn forward(&self, rec: &mut Recorder<'_>, input: &Tensor) -> Result<Tensor> {
        let gpu = rec.gpu();
        input.check_gpu(gpu, "input")?;
        let s = input.shape();
        let out = self.output_shape(s)?;
        let y = rec.empty("output", out)?;
        let strips_x = out[3].div_ceil(STRIP_PX);
        let total = s[0] * s[1] * out[2] * strips_x;
        let pipeline = gpu.pipeline(
            "avg_pool.wgsl",
            &[],
            &[
                ("KH", self.kernel_size.0 as f64),
                ("KW", self.kernel_size.1 as f64),
                ("SH", self.stride.0 as f64),
                ("SW", self.stride.1 as f64),
                (
                    "COUNT_INCLUDE_PAD",
                    if self.count_include_pad { 1.0 } else { 0.0 },
                ),
                ("DIVISOR", self.divisor_override.unwrap_or(0) as f64),
            ],
        )?;
        let u = [
            (s[0] * s[1]) as u32,
            s[2] as u32,
            s[3] as u32,
            out[2] as u32,
            out[3] as u32,
            self.padding.0 as u32,
            self.padding.1 as u32,
            strips_x as u32,
            total as u32,
            0,
            0,
            0,
        ];
        rec.dispatch(
            &pipeline,
            &u,
            &[input.pooled(), y.pooled()],
            (total as u64).div_ceil(WORKGROUP),
        )?;
        Ok(y)
    }
}

/// Global pooling over each `(n, c)` plane, output `[N, C, 1, 1]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GlobalPool {
    /// Mean (`adaptive_avg_pool2d(x, 1)`), summed relative to the plane's first value in
    /// blocks, so a large mean relative to the spread keeps its precision.
    Avg,
    /// Maximum (`adaptive_max_pool2d(x, 1)` values), NaN propagating.
    Max,
}

impl GlobalPool {
    /// Output shape `[N, C, 1, 1]`.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        check_dims("input", &input)?;
        Ok([input[0], input[1], 1, 1])
    }

    /// No parameters; one add or compare per input element; bytes moved.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        self.output_shape(input)?;
        let ins = input.iter().product::<usize>() as u64;
        Ok(Cost {
            params: 0,
            macs: ins,
            bytes: 4 * (ins + (input[0] * input[1]) as u64),
        })
    }

    /// Records the pooling.
    pub fn forward(&self, rec: &mut Recorder<'_>, input: &Tensor) -> Result<Tensor> {
        self.record(rec, input, None)
    }

    /// Records the pooling of `input + second` (average only) without storing the sum.
    pub(crate) fn record(
        &self,
        rec: &mut Recorder<'_>,
        input: &Tensor,
        second: Option<&Tensor>,
    ) -> Result<Tensor> {
        let gpu = rec.gpu();
        input.check_gpu(gpu, "input")?;
        let s = input.shape();
        let out = self.output_shape(s)?;
        let y = rec.empty("output", out)?;
        let planes = s[0] * s[1];
        let mode = match self {
            GlobalPool::Avg => 0.0,
            GlobalPool::Max => 1.0,
        };
        let sum = if second.is_some() { 1.0 } else { 0.0 };
        let pipeline = gpu.pipeline("global_pool.wgsl", &[], &[("MODE", mode), ("SUM", sum)])?;
        let x2 = second.unwrap_or(input).pooled();
        rec.dispatch(
            &pipeline,
            &[planes as u32, (s[2] * s[3]) as u32, 0, 0],
            &[input.pooled(), y.pooled(), input.pooled(), x2, x2],
            planes as u64,
        )?;
        Ok(y)
    }
}

/// `torch.nn.AdaptiveAvgPool2d`: output `(oy, ox)` averages input rows
/// `floor(oy * H / OH) .. ceil((oy + 1) * H / OH)` and likewise columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AdaptiveAvgPool2dParams {
    /// Output size `(OH, OW)`.
    pub output_size: (usize, usize),
}

impl AdaptiveAvgPool2dParams {
    /// Adaptive average pooling to `output_size`.
    pub fn new(output_size: impl IntoPair) -> Self {
        AdaptiveAvgPool2dParams {
            output_size: output_size.into_pair(),
        }
    }

    /// Validates against `[N, C, H, W]`; returns `[N, C, OH, OW]`.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        check_dims("input", &input)?;
        positive("output_size", self.output_size)?;
        Ok([input[0], input[1], self.output_size.0, self.output_size.1])
    }

    /// No parameters; one add per window element; bytes moved.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let out = self.output_shape(input)?;
        let ins = input.iter().product::<usize>() as u64;
        let outs = out.iter().product::<usize>() as u64;
        let win = (input[2].div_ceil(out[2]) + 1) * (input[3].div_ceil(out[3]) + 1);
        Ok(Cost {
            params: 0,
            macs: outs * win as u64,
            bytes: 4 * (ins + outs),
        })
    }

    /// Records the pooling.
    pub fn forward(&self, rec: &mut Recorder<'_>, input: &Tensor) -> Result<Tensor> {
        let gpu = rec.gpu();
        input.check_gpu(gpu, "input")?;
        let s = input.shape();
        let out = self.output_shape(s)?;
        let y = rec.empty("output", out)?;
        let total = out.iter().product::<usize>();
        let pipeline = gpu.pipeline("adaptive_avg_pool.wgsl", &[], &[])?;
        rec.dispatch(
            &pipeline,
            &[
                (s[0] * s[1]) as u32,
                s[2] as u32,
                s[3] as u32,
                out[2] as u32,
                out[3] as u32,
                total as u32,
                0,
                0,
            ],
            &[input.pooled(), y.pooled()],
            (total as u64).div_ceil(WORKGROUP),
        )?;
        Ok(y)
    }
}
