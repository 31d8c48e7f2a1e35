//! Pooling with PyTorch's semantics: max pooling with indices (`max_pool2d(...,
//! return_indices=True)`), max unpooling (`max_unpool2d`, SegNet's decoder step), global
//! average / max pooling, adaptive average pooling (`adaptive_avg_pool2d`) and adaptive
//! max pooling with indices (`adaptive_max_pool2d(..., return_indices=True)`).

use super::{pair_setters, setters, Cost, IntoPair, Window};
use crate::error::{fail_if, invalid, Result};
use crate::gpu::{check_dims, DeviceCaps, IndexTensor, PoolOrigin, Recorder, Tensor};
use crate::launch::{
    loop_nest, read, read_opt, specialize, uniform, write, write_opt, Args, Kernel, KernelInfo,
    Launch, Trip, LOOP_BUDGET,
};

uniform! {
    /// The geometry of the windowed poolings (`shaders/pool_window.wgsl`).
    pub(crate) struct StripParams {
        planes: u32,
        h: u32,
        w: u32,
        oh: u32,
        ow: u32,
        pad_h: u32,
        pad_w: u32,
        strips_x: u32,
        total: u32,
    }
}

uniform! {
    /// `shaders/max_unpool_scatter.wgsl` and `max_unpool_gather.wgsl`.
    pub(crate) struct UnpoolParams {
        planes: u32,
        in_plane: u32,
        out_plane: u32,
    }
}

uniform! {
    /// `shaders/global_pool.wgsl`.
    pub(crate) struct GlobalParams {
        planes: u32,
        plane: u32,
        parts: u32,
        part_len: u32,
    }
}

uniform! {
    /// `shaders/adaptive_avg_pool.wgsl`.
    pub(crate) struct AdaptiveParams {
        planes: u32,
        h: u32,
        w: u32,
        oh: u32,
        ow: u32,
    }
}

specialize! {
    /// The constants of `avg_pool.wgsl`.
    struct AvgPoolSpec {
        window: Window, count_include_pad: bool => "COUNT_INCLUDE_PAD", divisor: u32 => "DIVISOR"
    }
}

specialize! {
    /// The constants of `adaptive_max_pool.wgsl`: the input is a pooled plane whose
    /// original indices come along.
    struct AdaptiveMaxSpec { carry: bool => "CARRY" }
}

specialize! {
    /// The constants of `global_pool.wgsl`: the maximum (else the mean), of a sum.
    struct GlobalSpec { max: bool => "MODE", sum: bool => "SUM" }
}

specialize! {
    /// The constants of `global_pool_planes.wgsl`: those of `global_pool.wgsl`, and
    /// whether the plane is read as vec4s.
    struct GlobalPlanesSpec { max: bool => "MODE", sum: bool => "SUM", vec: bool => "VEC" }
}

specialize! {
    /// The constants of `max_pool.wgsl`: the window, and whether the indices are written.
    struct MaxPoolSpec { window: Window, indices: bool => "INDICES" }
}

const MAX_POOL: Kernel<StripParams, MaxPoolSpec> =
    Kernel::new("max_pool.wgsl", &[read("x"), write("y"), write_opt("idx")]);
const AVG_POOL: Kernel<StripParams, AvgPoolSpec> =
    Kernel::new("avg_pool.wgsl", &[read("x"), write("y")]);
const UNPOOL_WINDOW: Kernel<StripParams, Window> = Kernel::new(
    "max_unpool_window.wgsl",
    &[read("x"), read("idx"), write("y")],
);
const UNPOOL_SCATTER: Kernel<UnpoolParams> =
    Kernel::new("max_unpool_scatter.wgsl", &[read("idx"), write("owner")]);
const UNPOOL_GATHER: Kernel<UnpoolParams> = Kernel::new(
    "max_unpool_gather.wgsl",
    &[read("x"), read("owner"), write("y")],
);
const GLOBAL_POOL: Kernel<GlobalParams, GlobalSpec> =
    Kernel::new("global_pool.wgsl", &[read("x"), write("y"), read_opt("x2")]);
const GLOBAL_POOL_PLANES: Kernel<GlobalParams, GlobalPlanesSpec> = Kernel::new(
    "global_pool_planes.wgsl",
    &[read("x"), write("y"), read_opt("x2")],
);
const ADAPTIVE_AVG_POOL: Kernel<AdaptiveParams> =
    Kernel::new("adaptive_avg_pool.wgsl", &[read("x"), write("y")]);
const ADAPTIVE_MAX_POOL: Kernel<AdaptiveParams, AdaptiveMaxSpec> = Kernel::new(
    "adaptive_max_pool.wgsl",
    &[read("x"), write("y"), write("idx"), read_opt("idx_in")],
);

/// The kernels of this family.
pub(crate) const KERNELS: &[&dyn KernelInfo] = &[
    &MAX_POOL,
    &AVG_POOL,
    &UNPOOL_WINDOW,
    &UNPOOL_SCATTER,
    &UNPOOL_GATHER,
    &GLOBAL_POOL,
    &GLOBAL_POOL_PLANES,
    &ADAPTIVE_AVG_POOL,
    &ADAPTIVE_MAX_POOL,
];

/// Outputs per invocation along a row (`PX` in `shaders/pool_window.wgsl`).
const STRIP_PX: usize = 8;

/// The uniform of a windowed pooling from `input` `[N, C, H, W]` to `out`, and the number
/// of invocations (one per strip of [`STRIP_PX`] outputs of a row).
pub(crate) fn strip_geometry(
    input: [usize; 4],
    out: [usize; 4],
    padding: (usize, usize),
) -> (StripParams, usize) {
    let strips_x = out[3].div_ceil(STRIP_PX);
    let total = input[0] * input[1] * out[2] * strips_x;
    let u = StripParams {
        planes: (input[0] * input[1]) as u32,
        h: input[2] as u32,
        w: input[3] as u32,
        oh: out[2] as u32,
        ow: out[3] as u32,
        pad_h: padding.0 as u32,
        pad_w: padding.1 as u32,
        strips_x: strips_x as u32,
        total: total as u32,
    };
    (u, total)
}

/// The outputs of one strip of `strips.wgsl` that run their loops (a short row leaves the
/// rest idle).
pub(crate) fn strip_outputs(out: [usize; 4]) -> Trip {
    Trip::Constant(STRIP_PX.min(out[3]) as u64)
}

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

    /// The window (kernel size, stride, padding, dilation).
    pub fn window(&self) -> Window {
        Window::new(self.kernel_size, self.stride, self.padding, self.dilation)
    }

    /// Validates against `[N, C, H, W]` and returns `[N, C, H_out, W_out]`.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        check_dims("input", &input)?;
        self.window().validate()?;
        let [oh, ow] = super::per_axis(|a, pick| {
            let window = (
                pick(self.kernel_size),
                pick(self.stride),
                pick(self.padding),
            );
            pool_out_len(input[2 + a], window, pick(self.dilation), self.ceil_mode)
        })?;
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

    /// [`MaxPool2dParams::cost`] without the indices ([`max_pool2d_values`]).
    pub fn values_cost(&self, input: [usize; 4]) -> Result<Cost> {
        let cost = self.cost(input)?;
        let outputs = self.output_shape(input)?.iter().product::<usize>() as u64;
        Ok(Cost {
            bytes: cost.bytes - 4 * outputs,
            ..cost
        })
    }

    /// The dispatch that pools an input of shape `input` (validated by the caller),
    /// writing the indices too where `indices` is set.
    fn plan(&self, input: [usize; 4], out: [usize; 4], indices: bool) -> Launch {
        let (u, total) = strip_geometry(input, out, self.padding);
        let (kh, kw) = self.kernel_size;
        let spec = MaxPoolSpec {
            window: self.window(),
            indices,
        };
        MAX_POOL.launch(&spec, &u).threads(total).loops(loop_nest(&[
            strip_outputs(out),
            Trip::Constant(kh as u64),
            Trip::Constant(kw as u64),
        ]))
    }
}

setters!(MaxPool2dParams {
    /// Sets ceil mode.
    ceil_mode: bool,
});

pair_setters!(MaxPool2dParams {
    /// Sets the stride (one value or a `(height, width)` pair).
    stride,
    /// Sets the padding (one value or a `(height, width)` pair).
    padding,
    /// Sets the dilation (one value or a `(height, width)` pair).
    dilation,
});

/// Records max pooling of `input` (`F.max_pool2d(..., return_indices=True)`); returns the
/// pooled values and their indices.
pub fn max_pool2d(
    rec: &mut Recorder<'_>,
    params: &MaxPool2dParams,
    input: &Tensor,
) -> Result<(Tensor, IndexTensor)> {
    input.check_gpu(rec.gpu(), "input")?;
    let s = input.shape();
    let out = params.output_shape(s)?;
    let y = rec.empty("output", out)?;
    let origin = PoolOrigin {
        kernel_size: params.kernel_size,
        stride: params.stride,
        padding: params.padding,
        dilation: params.dilation,
        plane: (s[2], s[3]),
    };
    let idx = rec.empty_indices(out, origin)?;
    let args = Args::new()
        .read("x", input)
        .write("y", &y)
        .write("idx", &idx);
    rec.run(&params.plan(s, out, true), args)?;
    Ok((y, idx))
}

/// Max pooling without indices (`F.max_pool2d` / `nn.MaxPool2d` as most networks call
/// it): [`max_pool2d`]'s values, with no index tensor allocated or written. The graphs
/// of the networks take it for every pool whose indices nothing reads.
pub fn max_pool2d_values(
    rec: &mut Recorder<'_>,
    params: &MaxPool2dParams,
    input: &Tensor,
) -> Result<Tensor> {
    input.check_gpu(rec.gpu(), "input")?;
    let s = input.shape();
    let out = params.output_shape(s)?;
    let y = rec.empty("output", out)?;
    let args = Args::new().read("x", input).write("y", &y);
    rec.run(&params.plan(s, out, false), args)?;
    Ok(y)
}

fn positive(name: &'static str, v: (usize, usize)) -> Result<()> {
    fail_if(v.0 == 0 || v.1 == 0, name, || {
        format!("must be positive, got {v:?}")
    })?;
    Ok(())
}

/// PyTorch's `pooling_output_shape`: floor or ceil of the window count, where in ceil
/// mode the last window must start inside the input or its left padding.
fn pool_out_len(
    input: usize,
    (kernel, stride, padding): (usize, usize, usize),
    dilation: usize,
    ceil_mode: bool,
) -> Result<usize> {
    // PyTorch's rule: at most half the (undilated) kernel size.
    fail_if(2 * padding > kernel, "padding", || {
        format!("{padding} must be at most half the kernel size {kernel}")
    })?;
    // PyTorch's `pooling_output_shape`, in signed arithmetic: in ceil mode a window may
    // reach past the padded input as long as it starts inside the input or the left
    // padding. (The window's values are below 2^24 and the input's below 2^32, so i64
    // holds every product.)
    let (i, k, s, p, d) = [input, kernel, stride, padding, dilation]
        .map(|v| v as i64)
        .into();
    let extent = d * (k - 1) + 1;
    let span = i + 2 * p - extent + if ceil_mode { s - 1 } else { 0 };
    let mut out = span.div_euclid(s) + 1;
    if ceil_mode && (out - 1) * s >= i + p {
        out -= 1;
    }
    fail_if(out < 1, "kernel_size", || {
        format!(
            "the dilated window ({extent}) leaves no output on an input of {input} with \
             padding {padding}"
        )
    })?;
    Ok(out as usize)
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
    /// Explicit output size `(H_out, W_out)`: as in PyTorch, positive and within a stride
    /// of the default `(H - 1) * stride - 2 * padding + kernel_size` on each axis (strictly
    /// between default - stride and default + stride), also where that default is 0 or
    /// less.
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

    /// Sets an explicit output size.
    pub fn output_size(mut self, size: impl IntoPair) -> Self {
        self.output_size = Some(size.into_pair());
        self
    }

    /// Validates against the pooled input `[N, C, H, W]`; returns the output shape.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        check_dims("input", &input)?;
        Window {
            kernel_size: self.kernel_size,
            stride: self.stride,
            padding: self.padding,
            dilation: (1, 1),
        }
        .validate()?;
        // PyTorch's default size, (i - 1) * s - 2 p + k, may be 0 or less where an explicit
        // output_size (within a stride of it) still is valid.
        let default = |i: usize, k: usize, s: usize, p: usize| -> i64 {
            ((i - 1) * s + k) as i64 - 2 * p as i64
        };
        let dh = default(input[2], self.kernel_size.0, self.stride.0, self.padding.0);
        let dw = default(input[3], self.kernel_size.1, self.stride.1, self.padding.1);
        let (oh, ow) = match self.output_size {
            None => {
                fail_if(dh <= 0 || dw <= 0, "padding", || {
                    format!(
                        "2 * padding {:?} leaves no output (size {:?} before padding)",
                        (2 * self.padding.0, 2 * self.padding.1),
                        (
                            dh + 2 * self.padding.0 as i64,
                            dw + 2 * self.padding.1 as i64
                        )
                    )
                })?;
                (dh as usize, dw as usize)
            }
            Some((oh, ow)) => {
                for (axis, o, d, s) in [
                    ("height", oh, dh, self.stride.0),
                    ("width", ow, dw, self.stride.1),
                ] {
                    let (o, s) = (o as i64, s as i64);
                    fail_if(o <= 0 || o + s <= d || o >= d + s, "output_size", || {
                        format!(
                            "{o} ({axis}) could not come from these pooling parameters: \
                                 it must be positive and lie strictly between {} and {}",
                            d - s,
                            d + s
                        )
                    })?;
                }
                (oh, ow)
            }
        };
        let out = [input[0], input[1], oh, ow];
        check_dims("output", &out)?;
        Ok(out)
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

    /// The kernel that unpools `indices` to an output of shape `out`.
    fn select_kernel(&self, indices: &IndexTensor, out: [usize; 4]) -> UnpoolKernel {
        match indices.origin() {
            Some(o) if self.gather_applies(&o, out) => UnpoolKernel::Window,
            _ => UnpoolKernel::ScatterGather,
        }
    }

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

pair_setters!(MaxUnpool2dParams {
    /// Sets the stride (one value or a `(height, width)` pair).
    stride,
    /// Sets the padding (one value or a `(height, width)` pair).
    padding,
});

/// How [`max_unpool2d`] runs: chosen from where its indices came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnpoolKernel {
    /// A gather over the pooling windows, for indices of a max pooling with
    /// non-overlapping windows and this unpool's geometry (SegNet's 2x2 stride 2): one
    /// dispatch, no atomics.
    Window,
    /// Any indices: a scatter of claims (atomic max, so the last input position wins
    /// deterministically) into a zeroed buffer, then a gather: two dispatches.
    ScatterGather,
}

/// Records max unpooling of `input` with `indices` (same shape as `input`, as returned by
/// [`max_pool2d`] or [`Gpu::upload_indices`](crate::Gpu::upload_indices)):
/// `F.max_unpool2d`.
pub fn max_unpool2d(
    rec: &mut Recorder<'_>,
    params: &MaxUnpool2dParams,
    input: &Tensor,
    indices: &IndexTensor,
) -> Result<Tensor> {
    let out = check_unpool(rec, params, input, indices)?;
    let s = input.shape();
    let y = rec.empty("output", out)?;
    match params.select_kernel(indices, out) {
        UnpoolKernel::Window => {
            let (u, total) = strip_geometry(s, out, params.padding);
            let window = Window {
                kernel_size: params.kernel_size,
                stride: params.stride,
                padding: params.padding,
                dilation: (1, 1),
            };
            let args = Args::new()
                .read("x", input)
                .read("idx", indices)
                .write("y", &y);
            rec.run(&UNPOOL_WINDOW.launch(&window, &u).threads(total), args)?;
        }
        UnpoolKernel::ScatterGather => record_scatter_gather(rec, input, indices, &y)?,
    }
    Ok(y)
}

/// Validates the operands of [`max_unpool2d`] and returns the output shape.
fn check_unpool(
    rec: &Recorder<'_>,
    params: &MaxUnpool2dParams,
    input: &Tensor,
    indices: &IndexTensor,
) -> Result<[usize; 4]> {
    let gpu = rec.gpu();
    input.check_gpu(gpu, "input")?;
    indices.check_gpu(gpu, "indices")?;
    let s = input.shape();
    super::same_shape("indices", s, indices.shape())?;
    let out = params.output_shape(s)?;
    let out_plane = out[2] * out[3];
    fail_if(indices.bound() > out_plane, "indices", || {
        format!(
            "indices may point up to position {} but the output plane {}x{} has only \
                 {out_plane} positions",
            indices.bound() - 1,
            out[2],
            out[3]
        )
    })?;
    Ok(out)
}

/// Unpooling for arbitrary indices: each output position first learns which input writes
/// it (the last one, as PyTorch's CPU loop, through an atomic max), then gathers, so
/// colliding indices give a deterministic result.
fn record_scatter_gather(
    rec: &mut Recorder<'_>,
    input: &Tensor,
    indices: &IndexTensor,
    y: &Tensor,
) -> Result<()> {
    let (s, out) = (input.shape(), y.shape());
    let owner = rec.alloc_f32("output", out.iter().product())?;
    rec.clear(&owner);
    let u = UnpoolParams {
        planes: (s[0] * s[1]) as u32,
        in_plane: (s[2] * s[3]) as u32,
        out_plane: (out[2] * out[3]) as u32,
    };
    let scatter = UNPOOL_SCATTER.launch(&(), &u).threads(s.iter().product());
    rec.run(
        &scatter,
        Args::new().read("idx", indices).write("owner", &owner),
    )?;
    let gather = UNPOOL_GATHER.launch(&(), &u).threads(out.iter().product());
    let args = Args::new()
        .read("x", input)
        .read("owner", &owner)
        .write("y", y);
    rec.run(&gather, args)
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

    /// The window (kernel size, stride, padding; dilation 1).
    pub fn window(&self) -> Window {
        Window {
            kernel_size: self.kernel_size,
            stride: self.stride,
            padding: self.padding,
            dilation: (1, 1),
        }
    }

    /// Validates against `[N, C, H, W]` and returns `[N, C, H_out, W_out]`.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        match self.divisor_override {
            Some(0) => return Err(invalid("divisor_override", "must be positive, got 0")),
            Some(d) if d > u32::MAX as usize => {
                return Err(invalid(
                    "divisor_override",
                    format!("{d} is out of range (at most {})", u32::MAX),
                ))
            }
            _ => {}
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

    fn plan(&self, input: [usize; 4], out: [usize; 4]) -> Launch {
        let (u, total) = strip_geometry(input, out, self.padding);
        let spec = AvgPoolSpec {
            window: self.window(),
            count_include_pad: self.count_include_pad,
            divisor: self.divisor_override.unwrap_or(0) as u32,
        };
        // The window's rows and columns inside the input are loops with run-time bounds.
        let (kh, kw) = self.kernel_size;
        AVG_POOL.launch(&spec, &u).threads(total).loops(loop_nest(&[
            strip_outputs(out),
            Trip::Uniform(kh.min(input[2]) as u64),
            Trip::Uniform(kw.min(input[3]) as u64),
        ]))
    }
}

setters!(AvgPool2dParams {
    /// Sets ceil mode.
    ceil_mode: bool,
    /// Sets count_include_pad.
    count_include_pad: bool,
    /// Sets a fixed divisor.
    divisor_override: Option<usize>,
});

pair_setters!(AvgPool2dParams {
    /// Sets the stride (one value or a `(height, width)` pair).
    stride,
    /// Sets the padding (one value or a `(height, width)` pair).
    padding,
});

/// Records average pooling of `input` (`F.avg_pool2d`).
pub fn avg_pool2d(
    rec: &mut Recorder<'_>,
    params: &AvgPool2dParams,
    input: &Tensor,
) -> Result<Tensor> {
    input.check_gpu(rec.gpu(), "input")?;
    let s = input.shape();
    let out = params.output_shape(s)?;
    let y = rec.empty("output", out)?;
    rec.run(
        &params.plan(s, out),
        Args::new().read("x", input).write("y", &y),
    )?;
    Ok(y)
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
}

/// How [`global_pool`] runs ([`select_global_kernel`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GlobalPoolKernel {
    /// A workgroup per plane, its invocations' partial results combined
    /// (`global_pool.wgsl`; planes too long for one workgroup's loop budget are split
    /// into parts and pooled again): any shape, and a few large planes keep every core
    /// busy.
    Workgroup,
    /// One plane per invocation (`global_pool_planes.wgsl`): no barriers and no lanes to
    /// combine. Needs planes of at most [`GLOBAL_PLANE_MAX`] values.
    Invocation,
}

impl GlobalPoolKernel {
    /// Every variant.
    pub const ALL: [GlobalPoolKernel; 2] =
        [GlobalPoolKernel::Workgroup, GlobalPoolKernel::Invocation];

    /// Whether this kernel pools an input of `shape`.
    pub fn supports(self, shape: [usize; 4]) -> bool {
        self == GlobalPoolKernel::Workgroup || shape[2] * shape[3] <= GLOBAL_PLANE_MAX
    }
}

/// The largest plane (`H * W` values) of [`GlobalPoolKernel::Invocation`]: one
/// invocation's loads stay within the loop budget.
pub const GLOBAL_PLANE_MAX: usize = 16_384;

/// Fewest planes for [`GlobalPoolKernel::Invocation`]: below, the workgroup's lanes share
/// the plane (lavapipe: three planes of 101 x 99 took 1.35x the time one an invocation).
const GLOBAL_PLANES_MIN: usize = 4;

/// The kernel [`global_pool`] runs on an input of `shape`: on CPU adapters a plane per
/// invocation ([`GlobalPoolKernel::Invocation`]) where it holds the plane and there are
/// enough planes, else a workgroup per plane. On lavapipe, where a workgroup's start and
/// the combining of its lanes cost more than a small plane's loads, the plane per
/// invocation took 0.07-0.15x the time on SE blocks' 480-960 planes of 7 x 7 to 16 x 16,
/// 0.5-0.8x on 16-128 planes of 32 x 32 to 128 x 128 (medians of 8, interleaved; llvmpipe
/// GL 0.03-0.55x). GPUs keep the workgroups, whose lanes read a plane coalesced.
pub fn select_global_kernel(shape: [usize; 4], caps: &DeviceCaps) -> GlobalPoolKernel {
    let fits =
        shape[0] * shape[1] >= GLOBAL_PLANES_MIN && GlobalPoolKernel::Invocation.supports(shape);
    if caps.cpu && fits {
        GlobalPoolKernel::Invocation
    } else {
        GlobalPoolKernel::Workgroup
    }
}

/// Records global pooling of `input` (`F.adaptive_avg_pool2d(x, 1)` or the values of
/// `F.adaptive_max_pool2d(x, 1)`) with the kernel [`select_global_kernel`] picks.
pub fn global_pool(rec: &mut Recorder<'_>, kind: GlobalPool, input: &Tensor) -> Result<Tensor> {
    global_pool_of_sum(rec, kind, input, None)
}

/// [`global_pool`] with a chosen kernel (an error where it does not support the shape).
pub fn global_pool_with(
    rec: &mut Recorder<'_>,
    kind: GlobalPool,
    input: &Tensor,
    kernel: GlobalPoolKernel,
) -> Result<Tensor> {
    global_pool_run(rec, kind, input, None, kernel)
}

/// [`global_pool`] of `input + second` (average only) without storing the sum.
pub(crate) fn global_pool_of_sum(
    rec: &mut Recorder<'_>,
    kind: GlobalPool,
    input: &Tensor,
    second: Option<&Tensor>,
) -> Result<Tensor> {
    let kernel = select_global_kernel(input.shape(), rec.gpu().caps());
    global_pool_run(rec, kind, input, second, kernel)
}

fn global_pool_run(
    rec: &mut Recorder<'_>,
    kind: GlobalPool,
    input: &Tensor,
    second: Option<&Tensor>,
    kernel: GlobalPoolKernel,
) -> Result<Tensor> {
    input.check_gpu(rec.gpu(), "input")?;
    let s = input.shape();
    let out = kind.output_shape(s)?;
    if let Some(b) = second {
        b.check_gpu(rec.gpu(), "second")?;
        super::same_shape("second", s, b.shape())?;
        fail_if(kind != GlobalPool::Avg, "kind", || {
            "only the average of a sum is supported"
        })?;
    }
    fail_if(!kernel.supports(s), "kernel", || {
        format!(
            "{kernel:?} pools planes of at most {GLOBAL_PLANE_MAX} values, got {} x {}",
            s[2], s[3]
        )
    })?;
    let planes = s[0] * s[1];
    let plane = s[2] * s[3];
    let loads = if plane.is_multiple_of(4) {
        plane / 4
    } else {
        plane
    };
    let args = Args::new().read("x", input).read_opt("x2", second);
    if kernel == GlobalPoolKernel::Invocation {
        let spec = GlobalPlanesSpec {
            max: kind == GlobalPool::Max,
            sum: second.is_some(),
            vec: plane.is_multiple_of(4),
        };
        let u = GlobalParams {
            planes: planes as u32,
            plane: plane as u32,
            parts: 1,
            part_len: loads as u32,
        };
        let launch = GLOBAL_POOL_PLANES
            .launch(&spec, &u)
            .threads(planes)
            .loops(loads as u64 + (loads as u64).div_ceil(64) + 4);
        let y = rec.empty("output", out)?;
        rec.run(&launch, args.write("y", &y))?;
        return Ok(y);
    }
    let parts = loads.div_ceil(GLOBAL_PART).max(1);
    let spec = GlobalSpec {
        max: kind == GlobalPool::Max,
        sum: second.is_some(),
    };
    let launch = |planes: usize, plane: usize, parts: usize, part_len: usize| {
        let u = GlobalParams {
            planes: planes as u32,
            plane: plane as u32,
            parts: parts as u32,
            part_len: part_len as u32,
        };
        let per_thread = part_len.div_ceil(64) as u64;
        GLOBAL_POOL
            .launch(&spec, &u)
            .workgroups(planes * parts)
            .loops(per_thread + per_thread.div_ceil(64) + 6)
    };
    if parts == 1 {
        let y = rec.empty("output", out)?;
        rec.run(&launch(planes, plane, 1, loads), args.write("y", &y))?;
        return Ok(y);
    }
    // Each part's result, then the plain average (or max) of the parts.
    let partial = rec.empty("output", [s[0], s[1], 1, parts])?;
    rec.run(
        &launch(planes, plane, parts, GLOBAL_PART),
        args.write("y", &partial),
    )?;
    global_pool(rec, kind, &partial)
}

/// Loads (vec4s, or single values for planes whose size is not a multiple of 4) of one
/// part of a plane split across workgroups by `global_pool.wgsl`: 256 per invocation.
const GLOBAL_PART: usize = 64 * 256;

/// `torch.nn.AdaptiveAvgPool2d`: output `(oy, ox)` averages input rows
/// `floor(oy * H / OH) .. ceil((oy + 1) * H / OH)` and likewise columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AdaptiveAvgPool2dParams {
    /// Output size `(OH, OW)`; `None` keeps the input's size along that axis (PyTorch's
    /// `None` entries).
    pub output_size: (Option<usize>, Option<usize>),
}

impl AdaptiveAvgPool2dParams {
    /// Adaptive average pooling to `output_size`.
    pub fn new(output_size: impl IntoPair) -> Self {
        let (oh, ow) = output_size.into_pair();
        AdaptiveAvgPool2dParams {
            output_size: (Some(oh), Some(ow)),
        }
    }

    /// Adaptive average pooling to `output_size`, whose `None` entries keep the input's
    /// size (PyTorch's `AdaptiveAvgPool2d((None, 7))`).
    pub fn with_optional(output_size: (Option<usize>, Option<usize>)) -> Self {
        AdaptiveAvgPool2dParams { output_size }
    }

    /// Validates against `[N, C, H, W]`; returns `[N, C, OH, OW]`.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        adaptive_output_shape(input, self.output_size)
    }

    /// No parameters; one add per window element; bytes moved.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        Ok(adaptive_cost(input, self.output_shape(input)?, 1))
    }
}

/// Cost of an adaptive pooling from `input` to `out` writing `outputs` values per output
/// element (the values, and the indices of max pooling): an operation per element of
/// the widest bin, bytes moved.
fn adaptive_cost(input: [usize; 4], out: [usize; 4], outputs: u64) -> Cost {
    let ins = input.iter().product::<usize>() as u64;
    let outs = out.iter().product::<usize>() as u64;
    let win = (input[2].div_ceil(out[2]) + 1) * (input[3].div_ceil(out[3]) + 1);
    Cost {
        params: 0,
        macs: outs * win as u64,
        bytes: 4 * (ins + outputs * outs),
    }
}

/// Whether an adaptive pooling from `s` to `out` takes each bin in one pass: its bins'
/// loops stay within [`ADAPTIVE_WINDOW_LOOPS`] (otherwise one axis is pooled at a time).
fn adaptive_in_one_pass(s: [usize; 4], out: [usize; 4]) -> bool {
    let bin = |len: usize, out_len: usize| (len.div_ceil(out_len) + 1) as u64;
    let rows_and_columns = [
        Trip::Uniform(bin(s[2], out[2])),
        Trip::Uniform(bin(s[3], out[3])),
    ];
    loop_nest(&rows_and_columns) <= ADAPTIVE_WINDOW_LOOPS
}

/// The uniform of `adaptive_*_pool.wgsl` from `s` to `out`, and the loop iterations of
/// one invocation (its bin's rows by columns).
fn adaptive_geometry(s: [usize; 4], out: [usize; 4]) -> (AdaptiveParams, u64) {
    let u = AdaptiveParams {
        planes: (s[0] * s[1]) as u32,
        h: s[2] as u32,
        w: s[3] as u32,
        oh: out[2] as u32,
        ow: out[3] as u32,
    };
    let bin = |len: usize, out_len: usize| (len.div_ceil(out_len) + 1).min(len) as u64;
    let loops = loop_nest(&[
        Trip::Uniform(bin(s[2], out[2])),
        Trip::Uniform(bin(s[3], out[3])),
    ]);
    (u, loops)
}

/// The output shape of adaptive pooling of `input` to `output_size` (`None` keeps the
/// input's size).
fn adaptive_output_shape(
    input: [usize; 4],
    (oh, ow): (Option<usize>, Option<usize>),
) -> Result<[usize; 4]> {
    check_dims("input", &input)?;
    let size = (oh.unwrap_or(input[2]), ow.unwrap_or(input[3]));
    positive("output_size", size)?;
    let out = [input[0], input[1], size.0, size.1];
    check_dims("output_size", &out)?;
    // The kernels find bin edges in 32-bit integers from the quotient and remainder of
    // H / OH (`adaptive_bins.wgsl`), the largest product being OH * (H % OH) + OH - 1.
    let fits =
        |n: usize, len: usize| (n as u64) * (len % n) as u64 + n as u64 - 1 <= u64::from(u32::MAX);
    fail_if(
        !fits(size.0, input[2]) || !fits(size.1, input[3]),
        "output_size",
        || {
            format!(
                "output size {size:?} against the input's {:?} exceeds 32-bit bin arithmetic",
                (input[2], input[3])
            )
        },
    )?;
    Ok(out)
}

/// `torch.nn.AdaptiveMaxPool2d(output_size, return_indices=True)`: output `(oy, ox)` is
/// the maximum of input rows `floor(oy * H / OH) .. ceil((oy + 1) * H / OH)` and likewise
/// columns, with the flat position of the maximum within its plane (PyTorch's CPU rule:
/// ties keep the first, NaN propagates with the last NaN's position).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AdaptiveMaxPool2dParams {
    /// Output size `(OH, OW)`; `None` keeps the input's size along that axis.
    pub output_size: (Option<usize>, Option<usize>),
}

impl AdaptiveMaxPool2dParams {
    /// Adaptive max pooling to `output_size`.
    pub fn new(output_size: impl IntoPair) -> Self {
        let (oh, ow) = output_size.into_pair();
        AdaptiveMaxPool2dParams {
            output_size: (Some(oh), Some(ow)),
        }
    }

    /// Adaptive max pooling to `output_size`, whose `None` entries keep the input's size.
    pub fn with_optional(output_size: (Option<usize>, Option<usize>)) -> Self {
        AdaptiveMaxPool2dParams { output_size }
    }

    /// Validates against `[N, C, H, W]`; returns `[N, C, OH, OW]`.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        adaptive_output_shape(input, self.output_size)
    }

    /// No parameters; one comparison per window element; bytes moved (values and
    /// indices).
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        Ok(adaptive_cost(input, self.output_shape(input)?, 2))
    }
}

/// Records adaptive max pooling of `input` with indices
/// (`F.adaptive_max_pool2d(..., return_indices=True)`); returns the values and the flat
/// positions of the maxima within their input planes.
pub fn adaptive_max_pool2d(
    rec: &mut Recorder<'_>,
    params: &AdaptiveMaxPool2dParams,
    input: &Tensor,
) -> Result<(Tensor, IndexTensor)> {
    input.check_gpu(rec.gpu(), "input")?;
    let s = input.shape();
    let out = params.output_shape(s)?;
    let plane = (s[2], s[3]);
    if adaptive_in_one_pass(s, out) {
        return record_adaptive_max(rec, (input, None), out, plane);
    }
    // Columns first, then rows, carrying the original indices: the row-major rule picks
    // the same element (the first row holding the maximum, its first column; the last
    // row holding a NaN, its last NaN).
    let cols = record_adaptive_max(rec, (input, None), [s[0], s[1], s[2], out[3]], plane)?;
    record_adaptive_max(rec, (&cols.0, Some(&cols.1)), out, plane)
}

fn record_adaptive_max(
    rec: &mut Recorder<'_>,
    (input, carried): (&Tensor, Option<&IndexTensor>),
    out: [usize; 4],
    plane: (usize, usize),
) -> Result<(Tensor, IndexTensor)> {
    let s = input.shape();
    let y = rec.empty("output", out)?;
    let idx = rec.empty_plane_indices(out, plane)?;
    let (u, loops) = adaptive_geometry(s, out);
    let spec = AdaptiveMaxSpec {
        carry: carried.is_some(),
    };
    let launch = ADAPTIVE_MAX_POOL
        .launch(&spec, &u)
        .threads(out.iter().product())
        .loops(loops);
    let args = Args::new()
        .read("x", input)
        .write("y", &y)
        .write("idx", &idx)
        .read_opt("idx_in", carried);
    rec.run(&launch, args)?;
    Ok((y, idx))
}

/// Records adaptive average pooling of `input` (`F.adaptive_avg_pool2d`): each bin in
/// one pass where its loops are short, else one axis and then the other; an average to
/// 1 x 1 whose plane is longer than one invocation may loop over runs the global pool
/// (whose planes are split). A bin longer than [`LOOP_BUDGET`] along
/// one axis is refused with [`Error::TooLarge`](crate::Error::TooLarge).
pub fn adaptive_avg_pool2d(
    rec: &mut Recorder<'_>,
    params: &AdaptiveAvgPool2dParams,
    input: &Tensor,
) -> Result<Tensor> {
    input.check_gpu(rec.gpu(), "input")?;
    let s = input.shape();
    let out = params.output_shape(s)?;
    if adaptive_in_one_pass(s, out) {
        return record_adaptive(rec, input, out);
    }
    // One axis, then the other: every bin averages the same number of rows (columns) in
    // the first pass, so the average of its averages is the bin's average. The order
    // whose longer pass loops less.
    let rows_first = [s[0], s[1], out[2], s[3]];
    let columns_first = [s[0], s[1], s[2], out[3]];
    let (mid, loops) = [rows_first, columns_first]
        .map(|mid| {
            let loops = adaptive_geometry(s, mid).1;
            (mid, loops.max(adaptive_geometry(mid, out).1))
        })
        .into_iter()
        .min_by_key(|&(_, loops)| loops)
        .expect("two orders");
    if out[2..] == [1, 1] && loops > LOOP_BUDGET {
        // A bin longer than an invocation may loop over: the global pool splits planes.
        return global_pool(rec, GlobalPool::Avg, input);
    }
    let first = record_adaptive(rec, input, mid)?;
    record_adaptive(rec, &first, out)
}

/// Loop iterations per output up to which [`adaptive_avg_pool2d`] averages each bin in one
/// pass; larger bins are averaged by rows and then by columns.
const ADAPTIVE_WINDOW_LOOPS: u64 = 4096;

fn record_adaptive(rec: &mut Recorder<'_>, input: &Tensor, out: [usize; 4]) -> Result<Tensor> {
    let s = input.shape();
    let y = rec.empty("output", out)?;
    let (u, loops) = adaptive_geometry(s, out);
    let launch = ADAPTIVE_AVG_POOL
        .launch(&(), &u)
        .threads(out.iter().product())
        .loops(loops);
    rec.run(&launch, Args::new().read("x", input).write("y", &y))?;
    Ok(y)
}
