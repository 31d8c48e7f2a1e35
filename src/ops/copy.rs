//! A device-side tensor copy: the plain buffer-copy kernel that the memory-bound ops are
//! measured against, also useful to clone a tensor before an in-place use.

use super::Cost;
use crate::error::Result;
use crate::gpu::{Recorder, Tensor};
use crate::launch::{read, uniform, write, Args, Kernel, KernelInfo, Launch};

uniform! {
    /// `shaders/copy.wgsl`.
    pub(crate) struct CopyParams {
        /// Number of vec4 elements.
        len4: u32,
    }
}

const COPY: Kernel<CopyParams> = Kernel::new("copy.wgsl", &[read("x"), write("y")]);

/// The kernels of this family.
pub(crate) const KERNELS: &[&dyn KernelInfo] = &[&COPY];

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
