//! A device-side tensor copy: the plain buffer-copy kernel that the memory-bound ops are
//! measured against, also useful to clone a tensor before an in-place use; a crop, the
//! copy of a window of every plane (`x[..., top:top + h, left:left + w]`); and padding
//! (`F.pad` on the last two dimensions, every mode, pads of either sign).

use super::Cost;
use crate::error::{fail_if, invalid, Result};
use crate::gpu::{Recorder, Tensor};
use crate::launch::{read, specialize, uniform, write, Args, Kernel, KernelInfo, Launch};

uniform! {
    /// `shaders/copy.wgsl`.
    pub(crate) struct CopyParams {
        /// Number of vec4 elements.
        len4: u32,
        /// Invocations: `ceil(len4 / PER)`.
        threads: u32,
    }
}

specialize! {
    /// `PER` of `shaders/copy.wgsl`: vec4s each invocation copies.
    struct CopySpec { per: u32 => "PER" }
}

/// The vec4s each invocation of [`copy`] moves: one. On the NVIDIA H200 a copy of one
/// vec4 an invocation reached 0.54x PyTorch's bandwidth (f32) and half that in f16;
/// [`copy_with`] runs the others for the device benchmark to compare before any is chosen.
pub const COPY_VEC4S_PER_INVOCATION: usize = 1;

uniform! {
    /// `shaders/crop.wgsl`.
    pub(crate) struct CropParams {
        total: u32,
        h: u32,
        w: u32,
        in_h: u32,
        in_w: u32,
        top: u32,
        left: u32,
    }
}

uniform! {
    /// `shaders/pad.wgsl`.
    pub(crate) struct PadParams {
        total: u32,
        h: u32,
        w: u32,
        oh: u32,
        ow: u32,
        top: i32,
        left: i32,
        lo_h: u32,
        n_h: u32,
        lo_w: u32,
        n_w: u32,
        at_h: u32,
        at_w: u32,
        value: f32,
    }
}

specialize! {
    /// `PAD_MODE` of `shaders/pad.wgsl`.
    struct PadSpec { mode: u32 => "PAD_MODE" }
}

const COPY: Kernel<CopyParams, CopySpec> = Kernel::new("copy.wgsl", &[read("x"), write("y")]);
const CROP: Kernel<CropParams> = Kernel::new("crop.wgsl", &[read("x"), write("y")]);
const PAD: Kernel<PadParams, PadSpec> = Kernel::new("pad.wgsl", &[read("x"), write("y")]);

/// The kernels of this family.
pub(crate) const KERNELS: &[&dyn KernelInfo] = &[&COPY, &CROP, &PAD];

/// How [`pad2d`] fills the border (`F.pad`'s `mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PadMode {
    /// `'constant'`: [`Pad2dParams::value`] outside the input.
    #[default]
    Constant,
    /// `'reflect'`: mirrored about the edge, the edge not repeated (each pad smaller than
    /// the input).
    Reflect,
    /// `'replicate'`: the edge value repeated.
    Replicate,
    /// `'circular'`: wrapped around (each pad at most the size kept after negative pads).
    Circular,
}

impl PadMode {
    fn code(self) -> u32 {
        match self {
            PadMode::Constant => 0,
            PadMode::Reflect => 1,
            PadMode::Replicate => 2,
            PadMode::Circular => 3,
        }
    }
}

/// `F.pad(x, (left, right, top, bottom), mode, value)` on `[N, C, H, W]`: pads of either
/// sign (a negative one removes rows or columns, as in PyTorch).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pad2dParams {
    /// `(left, right, top, bottom)`, PyTorch's order for the last two dimensions.
    pub pad: (i64, i64, i64, i64),
    /// The fill rule (default constant).
    pub mode: PadMode,
    /// The constant mode's fill value (default 0).
    pub value: f32,
}

impl Pad2dParams {
    /// Constant zero padding by `(left, right, top, bottom)`.
    pub fn new(pad: (i64, i64, i64, i64)) -> Self {
        Pad2dParams {
            pad,
            mode: PadMode::Constant,
            value: 0.0,
        }
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: PadMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the constant mode's fill value.
    pub fn value(mut self, value: f32) -> Self {
        self.value = value;
        self
    }

    /// Validates against `[N, C, H, W]`; returns `[N, C, H + top + bottom, W + left +
    /// right]`.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        crate::gpu::check_dims("input", &input)?;
        let (l, r, t, b) = self.pad;
        // The kernel computes `output coordinate - pad` in i32: coordinates stay below
        // 2^29 (one binding), so pads within 2^30 cannot wrap.
        let limit = 1i64 << 30;
        fail_if([l, r, t, b].iter().any(|p| p.abs() > limit), "pad", || {
            format!("{:?} has a pad past +-{limit}", self.pad)
        })?;
        let grown = |size: usize, a: i64, b: i64, axis: &str| -> Result<usize> {
            let n = i64::try_from(size).unwrap_or(i64::MAX);
            let out = n.checked_add(a).and_then(|v| v.checked_add(b));
            match out {
                Some(o) if o > 0 => Ok(o as usize),
                _ => Err(invalid(
                    "pad",
                    format!("({a}, {b}) on {axis} {size} leaves no {axis}"),
                )),
            }
        };
        let out = [
            input[0],
            input[1],
            grown(input[2], t, b, "height")?,
            grown(input[3], l, r, "width")?,
        ];
        crate::gpu::check_dims("pad", &out)?;
        for (size, (a, b), axis) in [(input[2], (t, b), "height"), (input[3], (l, r), "width")] {
            let n = size as i64;
            let kept = n - (-a).max(0) - (-b).max(0);
            let ok = match self.mode {
                PadMode::Constant | PadMode::Replicate => true,
                PadMode::Reflect => a < n && b < n,
                PadMode::Circular => kept > 0 && a <= kept && b <= kept,
            };
            fail_if(!ok, "pad", || {
                format!(
                    "({a}, {b}) is too large for {:?} padding of {axis} {size}",
                    self.mode
                )
            })?;
        }
        Ok(out)
    }

    /// Bytes moved (the output written, about as much read): a copy of the output's.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        Ok(cost(self.output_shape(input)?))
    }
}

/// Records `F.pad` of `input`'s last two dimensions as `params` says.
pub fn pad2d(rec: &mut Recorder<'_>, params: &Pad2dParams, input: &Tensor) -> Result<Tensor> {
    input.check_gpu(rec.gpu(), "input")?;
    let s = input.shape();
    let out = params.output_shape(s)?;
    let y = rec.empty("output", out)?;
    let total = out.iter().product::<usize>();
    let (l, r, t, b) = params.pad;
    // Circular: the window kept after the negative pads, and where it starts in the output.
    let window = |size: usize, a: i64, b: i64| {
        let lo = (-a).max(0);
        (
            lo as u32,
            (size as i64 - lo - (-b).max(0)) as u32,
            a.max(0) as u32,
        )
    };
    let (lo_h, n_h, at_h) = window(s[2], t, b);
    let (lo_w, n_w, at_w) = window(s[3], l, r);
    let u = PadParams {
        total: total as u32,
        h: s[2] as u32,
        w: s[3] as u32,
        oh: out[2] as u32,
        ow: out[3] as u32,
        top: t as i32,
        left: l as i32,
        lo_h,
        n_h,
        lo_w,
        n_w,
        at_h,
        at_w,
        value: params.value,
    };
    let spec = PadSpec {
        mode: params.mode.code(),
    };
    rec.run(
        &PAD.launch(&spec, &u).threads(total),
        Args::new().read("x", input).write("y", &y),
    )?;
    Ok(y)
}

/// A crop: `size` (rows, columns) of every plane from `offset` (top, left).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CropParams2d {
    /// First row and column kept.
    pub offset: (usize, usize),
    /// Rows and columns kept.
    pub size: (usize, usize),
}

impl CropParams2d {
    /// `x[..., top:top + h, left:left + w]`.
    pub fn new(offset: (usize, usize), size: (usize, usize)) -> Self {
        CropParams2d { offset, size }
    }

    /// Checks the window against `[N, C, H, W]`; returns `[N, C, h, w]`.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        let (o, s) = (self.offset, self.size);
        fail_if(s.0 == 0 || s.1 == 0, "size", || {
            format!("must be positive, got {s:?}")
        })?;
        fail_if(
            o.0.saturating_add(s.0) > input[2] || o.1.saturating_add(s.1) > input[3],
            "offset",
            || {
                format!(
                    "the window {s:?} at {o:?} does not fit in {}x{}",
                    input[2], input[3]
                )
            },
        )?;
        Ok([input[0], input[1], s.0, s.1])
    }

    /// Bytes moved (the window read, the output written): a copy of the output's.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        Ok(cost(self.output_shape(input)?))
    }
}

/// Records a crop of `input` into a new tensor.
pub fn crop(rec: &mut Recorder<'_>, params: &CropParams2d, input: &Tensor) -> Result<Tensor> {
    input.check_gpu(rec.gpu(), "input")?;
    let s = input.shape();
    let out = params.output_shape(s)?;
    let y = rec.empty("output", out)?;
    let total = out.iter().product::<usize>();
    let u = CropParams {
        total: total as u32,
        h: out[2] as u32,
        w: out[3] as u32,
        in_h: s[2] as u32,
        in_w: s[3] as u32,
        top: params.offset.0 as u32,
        left: params.offset.1 as u32,
    };
    rec.run(
        &CROP.launch(&(), &u).threads(total),
        Args::new().read("x", input).write("y", &y),
    )?;
    Ok(y)
}

/// The copy of a tensor of `shape`, `per` vec4s an invocation.
fn plan(shape: [usize; 4], per: usize) -> Launch {
    let len4 = shape.iter().product::<usize>().div_ceil(4);
    let threads = len4.div_ceil(per);
    let u = CopyParams {
        len4: len4 as u32,
        threads: threads as u32,
    };
    COPY.launch(&CopySpec { per: per as u32 }, &u)
        .threads(threads)
        .loops(2 * per as u64)
}

/// Records a copy of `input` into a new tensor.
pub fn copy(rec: &mut Recorder<'_>, input: &Tensor) -> Result<Tensor> {
    copy_with(rec, input, COPY_VEC4S_PER_INVOCATION)
}

/// [`copy`] with each invocation moving `vec4s_per_invocation` (1 to 4) vec4s: the
/// variants the device benchmark compares.
pub fn copy_with(
    rec: &mut Recorder<'_>,
    input: &Tensor,
    vec4s_per_invocation: usize,
) -> Result<Tensor> {
    fail_if(
        !(1..=4).contains(&vec4s_per_invocation),
        "vec4s_per_invocation",
        || format!("must be 1 to 4, got {vec4s_per_invocation}"),
    )?;
    input.check_gpu(rec.gpu(), "input")?;
    let y = rec.empty("output", input.shape())?;
    rec.run(
        &plan(input.shape(), vec4s_per_invocation),
        Args::new().read("x", input).write("y", &y),
    )?;
    Ok(y)
}

/// Bytes a copy moves (read plus write).
pub fn cost(shape: [usize; 4]) -> Cost {
    Cost {
        params: 0,
        macs: 0,
        bytes: 8 * shape.iter().product::<usize>() as u64,
    }
}
