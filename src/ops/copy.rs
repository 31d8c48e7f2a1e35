//! A device-side tensor copy: the plain buffer-copy kernel that the memory-bound ops are
//! measured against, also useful to clone a tensor before an in-place use; and a crop,
//! the copy of a window of every plane (`x[..., top:top + h, left:left + w]`).

use super::Cost;
use crate::error::{fail_if, Result};
use crate::gpu::{Recorder, Tensor};
use crate::launch::{read, uniform, write, Args, Kernel, KernelInfo, Launch};

uniform! {
    /// `shaders/copy.wgsl`.
    pub(crate) struct CopyParams {
        /// Number of vec4 elements.
        len4: u32,
    }
}

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

const COPY: Kernel<CopyParams> = Kernel::new("copy.wgsl", &[read("x"), write("y")]);
const CROP: Kernel<CropParams> = Kernel::new("crop.wgsl", &[read("x"), write("y")]);

/// The kernels of this family.
pub(crate) const KERNELS: &[&dyn KernelInfo] = &[&COPY, &CROP];

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

    /// Bytes moved (the window read, the output written).
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let out = self.output_shape(input)?;
        Ok(Cost {
            params: 0,
            macs: 0,
            bytes: 8 * out.iter().product::<usize>() as u64,
        })
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

/// The copy of a tensor of `shape`.
fn plan(shape: [usize; 4]) -> Launch {
    let len4 = shape.iter().product::<usize>().div_ceil(4);
    COPY.launch(&(), &CopyParams { len4: len4 as u32 })
        .threads(len4)
}

/// Records a copy of `input` into a new tensor.
pub fn copy(rec: &mut Recorder<'_>, input: &Tensor) -> Result<Tensor> {
    input.check_gpu(rec.gpu(), "input")?;
    let y = rec.empty("output", input.shape())?;
    rec.run(
        &plan(input.shape()),
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
