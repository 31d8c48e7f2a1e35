//! The one error type of the crate.

/// Everything that can go wrong in segblocks.
///
/// Every variant names the parameter or tensor at fault and the values that were
/// rejected, so that a message alone tells the user what to change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No adapter could be found (or none matched `WGPU_ADAPTER_NAME` / `WGPU_BACKEND`).
    #[error(
        "no GPU adapter available: {0}. On a Linux machine without a GPU install a software \
         Vulkan driver (`apt-get install -y mesa-vulkan-drivers`, lavapipe) or select the GL \
         backend with WGPU_BACKEND=gl"
    )]
    NoAdapter(String),

    /// The adapter refused to create a device.
    #[error("requesting a device from adapter `{adapter}` failed: {reason}")]
    RequestDevice {
        /// Adapter name as reported by the driver.
        adapter: String,
        /// The driver's or wgpu's reason.
        reason: String,
    },

    /// A device handed to [`Gpu::from_device`](crate::Gpu::from_device) lacks a limit or
    /// feature the library needs.
    #[error("the device does not support `{name}`: segblocks needs {needed}, the device has {available}")]
    DeviceUnsupported {
        /// The wgpu limit or feature (`max_storage_buffers_per_shader_stage`, ...).
        name: &'static str,
        /// What the library needs.
        needed: String,
        /// What the device offers.
        available: String,
    },

    /// A parameter has a value the operation cannot accept.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParam {
        /// PyTorch name of the parameter (`stride`, `groups`, ...).
        name: &'static str,
        /// What is wrong, with the offending values.
        reason: String,
    },

    /// A tensor or array has the wrong shape.
    #[error("shape mismatch for `{name}`: expected {expected:?}, got {actual:?}")]
    ShapeMismatch {
        /// Name of the tensor (`input`, `weight`, `bias`, ...).
        name: &'static str,
        /// The shape the operation needs.
        expected: Vec<usize>,
        /// The shape it was given.
        actual: Vec<usize>,
    },

    /// A tensor, a layer or saved statistics belong to another [`Gpu`](crate::Gpu) than the
    /// one asked to use them.
    #[error(
        "`{name}` belongs to GPU context #{tensor_gpu}, but was used with context #{this_gpu}"
    )]
    WrongDevice {
        /// Name of the tensor.
        name: &'static str,
        /// Id of the context that created the tensor.
        tensor_gpu: u64,
        /// Id of the context it was used with.
        this_gpu: u64,
    },

    /// A buffer, a grid or a loop would exceed a limit of the device or of the library.
    #[error("`{name}` needs {amount} {unit}, but at most {limit} are allowed ({limit_name})")]
    TooLarge {
        /// Name of the tensor, or of the kernel for grids and loops.
        name: &'static str,
        /// How much was requested, in `unit`.
        amount: u64,
        /// What `amount` and `limit` count: `"bytes"`, `"workgroups"` or `"loop
        /// iterations per invocation"`.
        unit: &'static str,
        /// The limit, in `unit`.
        limit: u64,
        /// The limit that applies (a wgpu limit's name, or [`LOOP_BUDGET`](crate::LOOP_BUDGET)).
        limit_name: &'static str,
    },
    /// A tensor was read outside the recording that produces it before that recording
    /// was submitted (or after it was dropped unsubmitted): its data does not exist yet.
    #[error(
        "`{name}` is the output of a recording that {}",
        if *dropped { "was dropped without being submitted" } else { "has not been submitted yet: submit it first" }
    )]
    NotSubmitted {
        /// Name of the tensor.
        name: &'static str,
        /// Whether that recording was dropped (rather than not yet submitted).
        dropped: bool,
    },
    /// The library has no kernel for what was asked: an op without an f16 form in a
    /// context at [`Precision::F16`](crate::Precision).
    #[error("`{name}`: not supported: {reason}")]
    Unsupported {
        /// The kernel or parameter concerned.
        name: &'static str,
        /// What is missing.
        reason: String,
    },
    /// The GPU device was lost (destroyed, reset by the driver after a hang, removed):
    /// every call of that [`Gpu`](crate::Gpu) now fails with this error; create a new one.
    #[error("the GPU device was lost ({0}); create a new Gpu to continue")]
    DeviceLost(String),
    /// wgpu reported an error that the library's own validation did not catch (a bug).
    #[error("GPU error (please report this as a segblocks bug): {0}")]
    Gpu(String),

    /// Reading a buffer back to the host failed.
    #[error("reading back from the GPU failed: {0}")]
    Readback(String),

    /// A weights file could not be read.
    #[error("weights: {0}")]
    Weights(String),
}

/// Shorthand for `Result<T, segblocks::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidParam {
        name,
        reason: reason.into(),
    }
}

/// `Err(InvalidParam)` naming the first of `values` that is 0 ("must be at least 1").
pub(crate) fn positive(values: &[(&'static str, usize)]) -> Result<()> {
    match values.iter().find(|(_, v)| *v == 0) {
        Some((name, _)) => Err(invalid(name, "must be at least 1, got 0")),
        None => Ok(()),
    }
}

/// `Err(InvalidParam)` naming `name` with `reason()` when `failed`, `Ok` otherwise: the one
/// shape of every parameter check.
pub(crate) fn fail_if<R: Into<String>>(
    failed: bool,
    name: &'static str,
    reason: impl FnOnce() -> R,
) -> Result<()> {
    if failed {
        return Err(invalid(name, reason()));
    }
    Ok(())
}
