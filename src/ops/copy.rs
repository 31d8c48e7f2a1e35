//! A device-side tensor copy: the plain buffer-copy kernel that the memory-bound ops are
//! measured against, also useful to clone a tensor before an in-place use.

use super::Cost;
use crate::error::Result;
use crate::gpu::{Recorder, Tensor};

/// Records a copy of `input` into a new tensor.
pub fn copy(rec: &mut Recorder<'_>, input: &Tensor) -> Result<Tensor> {
    let gpu = rec.gpu();
    input.check_gpu(gpu, "input")?;
    let y = rec.empty("output", input.shape())?;
    let len4 = input.len().div_ceil(4);
    let pipeline = gpu.pipeline("copy.wgsl", &[], &[])?;
    rec.dispatch(
        &pipeline,
        &[len4 as u32, 0, 0, 0],
        &[input.pooled(), y.pooled()],
        (len4 as u64).div_ceil(64),
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
