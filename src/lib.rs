//! # segblocks
//!
//! The building blocks of image-segmentation CNNs as WGSL compute shaders on any GPU that
//! wgpu reaches (Vulkan, Metal, DX12, GL, WebGPU), each checked against a plain CPU
//! reference. Semantics, parameter names and weight layouts follow PyTorch.
//!
//! ```no_run
//! use ndarray::{Array1, Array4};
//! use segblocks::{ops::conv::{Conv2d, Conv2dParams}, ops::Activation, Gpu};
//!
//! # fn main() -> segblocks::Result<()> {
//! let gpu = Gpu::new()?;
//! let params = Conv2dParams::new(3, 16, 3).stride(2).padding(1).activation(Activation::Relu);
//! let conv = Conv2d::new(
//!     &gpu,
//!     params,
//!     Array4::<f32>::zeros(params.weight_shape()).view(),
//!     Some(Array1::<f32>::zeros(16).view()),
//! )?;
//! let x = gpu.upload(Array4::<f32>::ones((1, 3, 64, 64)).view())?;
//! let mut rec = gpu.recorder();
//! let y = conv.forward(&mut rec, &x)?;
//! let y = rec.download(&y)?; // one submission: the conv and the copy back
//! assert_eq!(y.shape(), &[1, 16, 32, 32]);
//! # Ok(())
//! # }
//! ```
//!
//! Layout: [`ops`] holds each op family's parameters, validation, kernel choice, dispatch
//! and cost; [`reference`](mod@reference) the CPU oracle under the same names; `shaders/` the WGSL.
#![warn(missing_docs)]

pub mod blocks;
pub mod error;
pub mod gpu;
pub mod launch;
pub mod networks;
pub mod ops;
pub mod profile;
pub mod reference;
#[cfg(not(target_arch = "wasm32"))]
mod shader_fold;
pub mod shaders;
pub mod tiling;
pub mod traffic;
pub mod weights;

pub use error::{Error, Result};
pub use gpu::{
    default_pipeline_cache_dir, DeviceCaps, DeviceClass, Download, FramesInFlight, Gpu, GpuOptions,
    IndexTensor, MemoryStats, Precision, Recorder, Reduction, Tensor, DEFAULT_PIPELINE_CACHE,
    MAX_ELEMENTS,
};
pub use launch::LOOP_BUDGET;
pub use ops::{Activation, Cost};
pub use weights::StateDict;
/// The wgpu this crate is built with: the application's device, queue and textures must
/// come from the same version ([`Gpu::from_device`]).
pub use wgpu;

/// The names most programs use: `use segblocks::prelude::*;`.
pub mod prelude {
    pub use crate::ops::Activation;
    pub use crate::{Error, Gpu, Recorder, Result, StateDict, Tensor};
}

/// The README's Rust examples, compiled by `cargo test --doc` so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
