//! The dispatcher: device selection, pipeline cache, buffer pool, recording and readback.
//!
//! A [`Gpu`] owns everything a user should never have to manage. Ops are recorded into a
//! [`Recorder`] (one command encoder, one compute pass, one queue submission); tensors
//! ([`Tensor`]) are NCHW `f32` buffers that return to the pool when the last handle drops.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use ndarray::{Array4, ArrayView4};

use crate::error::{Error, Result};
use crate::launch::{Access, Args, Bindable, Constants, Launch, LOOP_BUDGET, TEXEL_ROW};
use crate::shaders;
pub use crate::traffic::{DispatchTraffic, Traffic};

static NEXT_GPU_ID: AtomicU64 = AtomicU64::new(1);

/// Most storage bindings of a kernel (checked by `Args::resolve`).
pub(crate) const MAX_BINDINGS: usize = 8;

/// How many times larger than a request a freed buffer may be and still be reused for it
/// within a recording.
const REUSE_MAX_WASTE: u64 = 16;

/// Options for [`Gpu::with_options`]. Every field left `None` falls back to wgpu's usual
/// environment variables (`WGPU_BACKEND`, `WGPU_ADAPTER_NAME`, `WGPU_POWER_PREF`) and then
/// to the adapter's own limits.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Backends to consider (default: `WGPU_BACKEND`, else all).
    pub backends: Option<wgpu::Backends>,
    /// Case-insensitive substring of the adapter name (default: `WGPU_ADAPTER_NAME`).
    pub adapter_name: Option<String>,
    /// Lower the storage-binding limit below the adapter's (for testing limit handling;
    /// at least [`GpuOptions::MIN_STORAGE_BINDING`] bytes, else a typed error).
    pub max_storage_buffer_binding_size: Option<u64>,
    /// Lower the workgroups-per-dimension limit below the adapter's (for testing grid
    /// folding; at least 1, else a typed error).
    pub max_compute_workgroups_per_dimension: Option<u32>,
    /// Compiled pipelines (and shader modules) kept for reuse, least recently used
    /// evicted first (default [`DEFAULT_PIPELINE_CACHE`]). A pipeline costs a few MB of
    /// host memory on software drivers; a process that runs many shapes stays bounded.
    pub max_cached_pipelines: Option<usize>,
    /// Choose kernels as for this class of device instead of the adapter's own
    /// ([`DeviceCaps::cpu`]): runs the GPU-class kernels on a software driver (tests), or
    /// the CPU-class ones on a GPU.
    pub device_class: Option<DeviceClass>,
    /// A directory for a persistent pipeline cache (wgpu's `PipelineCache`, on adapters
    /// that support it: Vulkan): compiled pipelines are loaded from it when the context
    /// is created and saved to it by [`Gpu::save_pipeline_cache`] (and when the last clone
    /// of the context is dropped), one file per adapter and driver
    /// (`wgpu::util::pipeline_cache_key`). Default: the `SEGBLOCKS_PIPELINE_CACHE`
    /// environment variable, else none; [`default_pipeline_cache_dir`] is the usual
    /// place. A file that is truncated, corrupt or not written by segblocks is ignored
    /// (and replaced at the next save).
    pub pipeline_cache_dir: Option<std::path::PathBuf>,
    /// Whether the profiler may use timestamp queries (default: where the adapter has
    /// them; `Some(false)` always takes the synchronised fallback).
    pub timestamp_queries: Option<bool>,
    /// The storage type of every tensor the context makes (default [`Precision::F32`]).
    /// [`Precision::F16`] needs the adapter's `SHADER_F16` feature.
    pub precision: Precision,
    /// Compute the products of the kernels that have an f16-arithmetic form in f16
    /// instead of f32 (default off). Those are the GPU-class convolutions: the tiled GEMM
    /// (`shaders/conv_gemm.wgsl`: [`crate::ops::conv::ConvKernel::Gemm`] and
    /// `GemmSplitK`) stores its workgroup tiles in f16 and sums each step of 16 products
    /// in f16, the tiled depthwise kernel (`DepthwiseTiled`) its input patch and each
    /// kernel row's products (16 at a time in wider rows); the sums of those stay f32.
    /// Other kernels keep f32 arithmetic. Needs [`Precision::F16`] (else a typed error
    /// naming `f16_arithmetic`). Meant for GPUs with fast f16 (twice the f32 rate on many; half
    /// the tiles' workgroup memory); CPU adapters compute f16 in f32 registers and gain
    /// nothing (0.87-1.03x the throughput on lavapipe, see the README's Half precision
    /// section). Each f16 sum has at most 16 terms (17 roundings with an input gate),
    /// so each output is off the f32-arithmetic result by at most about 16 f16 roundings
    /// of its products' magnitude; products or partial sums past f16's range (65,504)
    /// overflow.
    pub f16_arithmetic: bool,
    /// Bind the kernels' parameters as read-only storage buffers instead of uniform
    /// buffers: `Some(true)` for every kernel, `Some(false)` for none. Default: on Mesa's
    /// software drivers (lavapipe, llvmpipe), the kernels of
    /// [`shaders::INLINING_SENSITIVE`] only; nowhere else. Those drivers compile a
    /// variant of a shader with the uniform values it branches on inlined, which speeds
    /// up most kernels (measured 8-29% on the convolutions) but costs the listed ones a
    /// recompilation at nearly every dispatch (the SE gate: 11 ms a dispatch instead of
    /// 0.4 ms).
    pub params_in_storage: Option<bool>,
    /// Whether kernels may use subgroup operations (the adapter's `SUBGROUP` feature) for
    /// their workgroup reductions ([`DeviceCaps::reduction`]): `None` (default) where the
    /// adapter has them, `Some(false)` never, `Some(true)` always: an adapter without
    /// them is refused with [`Error::DeviceUnsupported`].
    pub subgroups: Option<bool>,
    /// Fill every output buffer a recording allocates with NaN (every bit set: NaN in
    /// f32 and f16) before the op that writes it, in the recording's order, instead of
    /// leaving the zeros of a new buffer or what a recycled one held: a testing aid, under
    /// which any value a kernel fails to write reads back as NaN, even where the right
    /// value is 0. Costs a copy per output. Default off (the crate's integration tests
    /// run with it).
    pub poison_outputs: bool,
    /// Run inverted residuals with an expansion layer (MobileNetV2 / V3's, the selfie
    /// model's) as one fused dispatch (two with SE) on GPU-class devices, wherever a fused
    /// plan fits, instead of their three layers. Default off: on a discrete GPU (NVIDIA
    /// H200) such blocks measured 2.4-13.6x slower fused (few workgroups, each running
    /// every hidden channel in sequence; see
    /// [`crate::ops::inverted_residual::select_kernel`]). For devices where it was measured
    /// to pay, and for tests of the fused kernel in whole networks.
    pub fuse_expanding_blocks: bool,
    /// Bind groups kept for reuse (default [`DEFAULT_BIND_GROUP_CACHE`]; `Some(0)` keeps
    /// none): a dispatch that binds the same pipeline, buffers and parameter slot as an
    /// earlier one (the same network on the next frame) reuses its bind group instead of
    /// creating one, a third of what recording a dispatch costs the host. Cached bind
    /// groups keep what they bind alive until [`Gpu::trim_pool`] or eviction: buffers,
    /// textures, and pipelines the pipeline cache has evicted.
    pub max_cached_bind_groups: Option<usize>,
    /// Submit a recording's work every this many dispatches while it is being recorded
    /// ([`Recorder::flush`]), so that the device starts on the first layers while the host
    /// records the rest; `None` (default) submits once, when the recording is. Work that
    /// is flushed runs even if the recording is then dropped (its outputs stay
    /// unreadable). Not measured to pay on lavapipe, where the driver's threads and the
    /// host share the CPU: an option for GPUs, where recording a dispatch costs the host
    /// about as much as running a small one costs the device.
    pub submit_every: Option<usize>,
}

/// The element type activation tensors are stored in on the device. Kernels compute and
/// accumulate in f32 at both precisions (unless [`GpuOptions::f16_arithmetic`] asks for f16
/// products where a kernel has that form); layer weights follow the precision. The choice
/// is made once, for a whole context ([`GpuOptions::precision`]): every tensor of that
/// context, uploaded or computed, has it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// 32-bit floats (PyTorch's default).
    #[default]
    F32,
    /// IEEE binary16 storage: half the memory and traffic of f32, about 3 significant
    /// decimal digits per stored value (relative rounding error at most 2^-11).
    F16,
}

impl Precision {
    /// Bytes per stored element.
    pub fn bytes(self) -> u64 {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 2,
        }
    }

    /// The largest relative error of storing one value at this precision (half a unit
    /// in the last place): 0 for f32 (the reference), 2^-11 for f16.
    pub fn unit_roundoff(self) -> f32 {
        match self {
            Precision::F32 => 0.0,
            Precision::F16 => 1.0 / 2048.0,
        }
    }
}

/// The stored element type of a storage buffer, as the kernels bind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Elem {
    /// f32 values (weights, statistics, partial sums, f32 tensors) or other 4-byte data.
    F32,
    /// f16 values (the tensors of a half-precision context).
    F16,
}

/// `$XDG_CACHE_HOME/segblocks`, else `$HOME/.cache/segblocks` (None without either):
/// where the examples keep their pipeline cache ([`GpuOptions::pipeline_cache_dir`]).
pub fn default_pipeline_cache_dir() -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| std::path::PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("segblocks"))
}

/// The header of a pipeline cache file: magic, format version, data length and an
/// FNV-1a hash of the data, so that a truncated, corrupt or foreign file never reaches
/// the driver.
const CACHE_MAGIC: &[u8; 8] = b"SEGBPC01";

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The data of a cache file written by [`encode_cache`], or None when it is not one.
fn decode_cache(file: &[u8]) -> Option<&[u8]> {
    let header = file.get(..24)?;
    if &header[..8] != CACHE_MAGIC {
        return None;
    }
    let len = u64::from_le_bytes(header[8..16].try_into().ok()?);
    let hash = u64::from_le_bytes(header[16..24].try_into().ok()?);
    let data = &file[24..];
    (data.len() as u64 == len && fnv1a(data) == hash).then_some(data)
}

fn encode_cache(data: &[u8]) -> Vec<u8> {
    let mut file = Vec::with_capacity(24 + data.len());
    file.extend_from_slice(CACHE_MAGIC);
    file.extend_from_slice(&(data.len() as u64).to_le_bytes());
    file.extend_from_slice(&fnv1a(data).to_le_bytes());
    file.extend_from_slice(data);
    file
}

/// A pipeline cache and the file it persists to.
struct DiskCache {
    cache: wgpu::PipelineCache,
    path: std::path::PathBuf,
    /// Pipelines created since the last save.
    dirty: std::sync::atomic::AtomicBool,
}

impl DiskCache {
    /// Opens (or starts) the cache of `info`'s adapter in `dir`, when the device has the
    /// feature and the backend keys caches.
    fn open(
        device: &wgpu::Device,
        info: &wgpu::AdapterInfo,
        dir: &std::path::Path,
    ) -> Option<Self> {
        if !device.features().contains(wgpu::Features::PIPELINE_CACHE) {
            return None;
        }
        let key = wgpu::util::pipeline_cache_key(info)?;
        let path = dir.join(format!("{key}.bin"));
        let file = std::fs::read(&path).unwrap_or_default();
        let data = decode_cache(&file);
        if data.is_none() && !file.is_empty() {
            log::warn!(
                "segblocks: ignoring invalid pipeline cache {}",
                path.display()
            );
        }
        // SAFETY: `data` was returned by `PipelineCache::get_data` for an adapter with the
        // same key: the file is named by the key and only ever written by `save` below,
        // and its length and hash are checked, so a truncated, corrupt or foreign file is
        // not passed. The driver checks its own header (vendor, device, driver version)
        // and `fallback` starts an empty cache when it does not match.
        let cache = unsafe {
            device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
                label: Some("segblocks"),
                data,
                fallback: true,
            })
        };
        Some(DiskCache {
            cache,
            path,
            dirty: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Writes the cache atomically (a temporary file renamed over the old one).
    fn save(&self) -> std::io::Result<bool> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(false);
        }
        let Some(data) = self.cache.get_data() else {
            return Ok(false);
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, encode_cache(&data))?;
        std::fs::rename(&tmp, &self.path)?;
        Ok(true)
    }
}

impl GpuOptions {
    /// The pipeline cache directory: the option, else `SEGBLOCKS_PIPELINE_CACHE`.
    fn cache_dir(&self) -> Option<std::path::PathBuf> {
        self.pipeline_cache_dir.clone().or_else(|| {
            std::env::var_os("SEGBLOCKS_PIPELINE_CACHE")
                .filter(|v| !v.is_empty())
                .map(Into::into)
        })
    }

    /// The smallest storage-binding limit the options may lower to: a few texels.
    pub const MIN_STORAGE_BINDING: u64 = 256;

    /// Checks the lowered limits (at least one workgroup per dimension and
    /// [`GpuOptions::MIN_STORAGE_BINDING`] bytes per binding) and that f16 arithmetic
    /// comes with f16 tensors.
    fn validate(&self) -> Result<()> {
        if let Some(v) = self.max_storage_buffer_binding_size {
            crate::error::fail_if(
                v < Self::MIN_STORAGE_BINDING,
                "max_storage_buffer_binding_size",
                || format!("at least {} bytes, got {v}", Self::MIN_STORAGE_BINDING),
            )?;
        }
        crate::error::fail_if(
            self.max_compute_workgroups_per_dimension == Some(0),
            "max_compute_workgroups_per_dimension",
            || "at least 1, got 0".to_string(),
        )?;
        crate::error::fail_if(
            self.f16_arithmetic && self.precision != Precision::F16,
            "f16_arithmetic",
            || {
                format!(
                    "f16 arithmetic needs f16 tensors (precision: Precision::F16), got {:?}",
                    self.precision
                )
            },
        )
    }

    /// `limits` with the options' lowered values applied.
    fn lowered(&self, mut limits: wgpu::Limits) -> wgpu::Limits {
        if let Some(v) = self.max_storage_buffer_binding_size {
            limits.max_storage_buffer_binding_size = limits.max_storage_buffer_binding_size.min(v);
        }
        if let Some(v) = self.max_compute_workgroups_per_dimension {
            limits.max_compute_workgroups_per_dimension =
                limits.max_compute_workgroups_per_dimension.min(v);
        }
        limits
    }
}

/// The least the kernels need of a device: WebGPU's defaults for what they use (a
/// compute stage with [`MAX_BINDINGS`] storage buffers and a uniform, 64-invocation
/// workgroups, the workgroup memory of the SE gate's and the norms' reductions).
fn check_device_limits(l: &wgpu::Limits) -> Result<()> {
    let d = wgpu::Limits::downlevel_defaults();
    let needs: [(&'static str, u64, u64); 7] = [
        (
            "max_storage_buffers_per_shader_stage",
            MAX_BINDINGS as u64,
            l.max_storage_buffers_per_shader_stage.into(),
        ),
        ("max_bind_groups", 1, l.max_bind_groups.into()),
        (
            "max_compute_invocations_per_workgroup",
            crate::launch::WORKGROUP_SIZE.into(),
            l.max_compute_invocations_per_workgroup.into(),
        ),
        (
            "max_compute_workgroup_size_x",
            crate::launch::WORKGROUP_SIZE.into(),
            l.max_compute_workgroup_size_x.into(),
        ),
        (
            "max_compute_workgroup_storage_size",
            d.max_compute_workgroup_storage_size.into(),
            l.max_compute_workgroup_storage_size.into(),
        ),
        (
            "max_compute_workgroups_per_dimension",
            d.max_compute_workgroups_per_dimension.into(),
            l.max_compute_workgroups_per_dimension.into(),
        ),
        (
            "max_storage_buffer_binding_size",
            d.max_storage_buffer_binding_size,
            l.max_storage_buffer_binding_size,
        ),
    ];
    for (name, needed, available) in needs {
        if available < needed {
            return Err(Error::DeviceUnsupported {
                name,
                needed: format!("at least {needed}"),
                available: available.to_string(),
            });
        }
    }
    Ok(())
}

/// The class of device kernel choice designs for (see [`GpuOptions::device_class`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceClass {
    /// Shaders run on the CPU (lavapipe, llvmpipe, SwiftShader, WARP).
    Cpu,
    /// A GPU.
    Gpu,
}

/// Pipelines a [`Gpu`] keeps compiled by default: several networks' worth.
pub const DEFAULT_PIPELINE_CACHE: usize = 128;

/// Bind groups a [`Gpu`] keeps for reuse by default: every dispatch of a few networks,
/// each with a few frames in flight.
pub const DEFAULT_BIND_GROUP_CACHE: usize = 2048;

/// A map that keeps at most `capacity` entries, evicting the least recently used
/// (`evict` of them at a time, so that a full cache scans its entries once per `evict`
/// insertions).
struct LruCache<K, V> {
    capacity: usize,
    evict: usize,
    tick: u64,
    entries: HashMap<K, (V, u64)>,
}

impl<K: std::hash::Hash + Eq + Clone, V: Clone> LruCache<K, V> {
    fn new(capacity: usize) -> Self {
        LruCache {
            capacity: capacity.max(1),
            evict: 1,
            tick: 0,
            entries: HashMap::new(),
        }
    }

    fn get(&mut self, key: &K) -> Option<V> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|(v, used)| {
            *used = tick;
            v.clone()
        })
    }

    /// The cache evicting `evict` entries at a time once full.
    fn evicting(mut self, evict: usize) -> Self {
        self.evict = evict.clamp(1, self.capacity);
        self
    }

    fn insert(&mut self, key: K, value: V) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            let mut ticks: Vec<u64> = self.entries.values().map(|(_, used)| *used).collect();
            let (_, newest_evicted, _) = ticks.select_nth_unstable(self.evict - 1);
            let cut = *newest_evicted;
            self.entries.retain(|_, (_, used)| *used > cut);
        }
        self.tick += 1;
        self.entries.insert(key, (value, self.tick));
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    fn clear(&mut self) {
        self.entries.clear();
    }
}

/// What a dispatch binds besides its parameters, as the bind-group cache tells
/// dispatches apart: the buffer of a storage binding, the texture of a texel one.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Bound {
    Buffer(wgpu::Buffer),
    Texels(wgpu::Texture),
}

/// Everything a bind group is made of: the pipeline whose derived layout it follows, the
/// parameter buffer with the offset and size of the dispatch's slot, the other bindings.
#[derive(Clone, PartialEq, Eq, Hash)]
struct BindKey {
    pipeline: wgpu::ComputePipeline,
    params: wgpu::Buffer,
    params_offset: u64,
    params_size: u64,
    bound: Vec<Bound>,
}

/// What kernel choice knows of a device: plain data, so that every choice can be tested
/// without one ([`Gpu::caps`] gives the device's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceCaps {
    /// Largest storage binding in bytes.
    pub max_storage_buffer_binding_size: u64,
    /// Workgroups per grid dimension.
    pub max_compute_workgroups_per_dimension: u32,
    /// Workgroup memory in bytes.
    pub max_compute_workgroup_storage_size: u32,
    /// Invocations per workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// The adapter runs shaders on the CPU (lavapipe, llvmpipe, SwiftShader, WARP): loads
    /// cost more than arithmetic and workgroup memory does not pay.
    pub cpu: bool,
    /// The device has subgroup operations in compute shaders (wgpu's `SUBGROUP` feature,
    /// enabled on the device) and [`GpuOptions::subgroups`] allows them.
    pub subgroups: bool,
    /// Run inverted residuals with an expansion layer as the fused kernel where it fits
    /// ([`GpuOptions::fuse_expanding_blocks`]; off by default, see
    /// [`crate::ops::inverted_residual::select_kernel`]).
    pub fuse_expanding_blocks: bool,
}

/// How a kernel combines the values of a workgroup's invocations
/// (`shaders/reduce.wgsl`): the global pooling and the normalisation statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// A tree in workgroup memory: log2 of the workgroup size barriers; every device.
    Workgroup,
    /// One subgroup operation per subgroup, then the subgroups' results in workgroup
    /// memory: two barriers (`shaders/reduce_subgroup.wgsl`).
    Subgroup,
}

impl Default for DeviceCaps {
    /// WebGPU's default limits on a GPU.
    fn default() -> Self {
        let l = wgpu::Limits::default();
        DeviceCaps {
            max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
            max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
            max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
            cpu: false,
            subgroups: false,
            fuse_expanding_blocks: false,
        }
    }
}

impl DeviceCaps {
    fn of(limits: &wgpu::Limits, info: &wgpu::AdapterInfo) -> Self {
        DeviceCaps {
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
            // A workgroup is one-dimensional: x bounds it too.
            max_compute_invocations_per_workgroup: limits
                .max_compute_invocations_per_workgroup
                .min(limits.max_compute_workgroup_size_x),
            cpu: info.device_type == wgpu::DeviceType::Cpu,
            subgroups: false,
            fuse_expanding_blocks: false,
        }
    }

    /// The reduction the kernels with a subgroup form use on this device: subgroups
    /// wherever the device has them (fewer barriers and no workgroup-memory round trips on
    /// GPUs; on lavapipe, whose subgroup is the 8 lanes of one SIMD register, measured
    /// faster too: see the README's Speed section).
    pub fn reduction(&self) -> Reduction {
        if self.subgroups {
            Reduction::Subgroup
        } else {
            Reduction::Workgroup
        }
    }
}

/// Byte counts of the buffer pool, from [`Gpu::memory_stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Bytes in buffers currently held by tensors, weights or in-flight recordings.
    pub live_bytes: u64,
    /// Bytes in free buffers kept for reuse.
    pub pooled_bytes: u64,
    /// Number of device buffers ever created by the pool.
    pub buffers_created: u64,
    /// The most bytes ever live at once since the context was created or
    /// [`Gpu::reset_peak_memory`] was called: the buffer memory a workload needs.
    pub peak_live_bytes: u64,
    /// Bytes in the textures that texel reads copy their operands into (CPU adapters'
    /// pointwise and depthwise convolutions): one per binding, format and power-of-two
    /// height, reused by every recording; not counted in the bytes above.
    pub texel_bytes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum BufferKind {
    Storage,
    Uniform,
    Readback,
}

impl BufferKind {
    fn usages(self) -> wgpu::BufferUsages {
        use wgpu::BufferUsages as U;
        match self {
            BufferKind::Storage => U::STORAGE | U::COPY_SRC | U::COPY_DST,
            // Storage too: where the parameters are bound as a storage buffer
            // (`GpuOptions::params_in_storage`).
            BufferKind::Uniform => U::UNIFORM | U::STORAGE | U::COPY_DST,
            BufferKind::Readback => U::MAP_READ | U::COPY_DST,
        }
    }
}

#[derive(Default)]
struct Pool {
    /// Free buffers by kind and size class, each with its serial number (creation
    /// order): a request takes the lowest, so that the same sequence of requests gets
    /// the same buffers whatever order they came back in (and a network's bind groups
    /// are found again on the next frame).
    free: HashMap<(BufferKind, u64), Vec<(u64, wgpu::Buffer)>>,
    stats: MemoryStats,
}

/// Rounds a request up to a size class: multiples of 256 bytes, then eight classes per
/// power of two, so reuse wastes at most 12.5% while shapes that differ slightly share buffers.
fn size_class(bytes: u64) -> u64 {
    let n = bytes.max(256).div_ceil(256).saturating_mul(256);
    let bits = 64 - (n - 1).leading_zeros();
    let step = 1u64 << bits.saturating_sub(4).max(8);
    n.div_ceil(step).saturating_mul(step)
}

/// What became of a recording: the buffers it allocated hold data only once it has been
/// submitted.
#[derive(Debug, Default)]
pub(crate) struct RecordingState(AtomicU8);

impl RecordingState {
    const RECORDING: u8 = 0;
    const SUBMITTED: u8 = 1;
    const DROPPED: u8 = 2;

    fn get(&self) -> u8 {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self, state: u8) {
        self.0.store(state, Ordering::Release);
    }
}

/// A device buffer on loan from the pool; it goes back when dropped.
pub(crate) struct PooledBuffer {
    buffer: wgpu::Buffer,
    /// Its rank in creation order among the context's buffers.
    serial: u64,
    /// The id of the [`Gpu`] whose device made it.
    gpu_id: u64,
    /// The recording whose ops fill it (an op output), or none (uploaded data, a layer's
    /// state): until that recording is submitted nothing else may read it.
    writer: Mutex<Option<Arc<RecordingState>>>,
    /// The bytes asked for when it was last handed out (its class may be larger).
    used: AtomicU64,
    /// What it holds since it was last handed out (0 = [`Elem::F32`], 1 = [`Elem::F16`]).
    elem: AtomicU8,
    kind: BufferKind,
    class: u64,
    pool: Weak<Mutex<Pool>>,
}

impl PooledBuffer {
    /// The bytes in use (see [`Bindable::bytes`]).
    pub(crate) fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The element type it holds.
    pub(crate) fn elem(&self) -> Elem {
        match self.elem.load(Ordering::Relaxed) {
            0 => Elem::F32,
            _ => Elem::F16,
        }
    }

    fn set_elem(&self, elem: Elem) {
        self.elem
            .store(u8::from(elem == Elem::F16), Ordering::Relaxed);
    }
}

impl std::fmt::Debug for PooledBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBuffer")
            .field("kind", &self.kind)
            .field("bytes", &self.class)
            .finish()
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            let mut pool = pool.lock().unwrap_or_else(|e| e.into_inner());
            pool.stats.live_bytes -= self.class;
            pool.stats.pooled_bytes += self.class;
            pool.free
                .entry((self.kind, self.class))
                .or_default()
                .push((self.serial, self.buffer.clone()));
        }
    }
}

/// Weights kept on the host until a kernel first binds them, then uploaded once at the
/// context's precision: a layer with a fused and an unfused form (an inverted residual, a
/// decoder stage) holds device memory only for the form its device runs.
#[derive(Debug)]
pub(crate) struct LazyWeights {
    gpu: Gpu,
    name: &'static str,
    host: Vec<f32>,
    device: std::sync::OnceLock<Arc<PooledBuffer>>,
}

impl LazyWeights {
    /// The binding name.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// The values on the host.
    pub(crate) fn host(&self) -> &[f32] {
        &self.host
    }

    /// The device buffer, uploaded on the first call.
    pub(crate) fn buffer(&self) -> Result<&Arc<PooledBuffer>> {
        if let Some(b) = self.device.get() {
            return Ok(b);
        }
        let buf = self.gpu.upload_weights(self.name, &self.host)?;
        Ok(self.device.get_or_init(|| buf))
    }
}

/// A 4-D NCHW tensor that lives on one [`Gpu`], stored at the context's [`Precision`]
/// (f32 unless the context asks for f16; uploads and downloads convert from and to f32).
///
/// Cloning is cheap (the buffer is shared). Tensors are immutable: every op writes a new
/// tensor, so a tensor can be read by any number of later ops in the same recording.
#[derive(Clone)]
pub struct Tensor {
    shape: [usize; 4],
    buf: Arc<PooledBuffer>,
    gpu_id: u64,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tensor")
            .field("shape", &self.shape)
            .field("gpu", &self.gpu_id)
            .finish()
    }
}

impl Tensor {
    /// Shape as `[N, C, H, W]`.
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when any dimension is zero (never the case for tensors the library creates).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn pooled(&self) -> &Arc<PooledBuffer> {
        &self.buf
    }

    /// The precision its values are stored at.
    pub fn precision(&self) -> Precision {
        match self.buf.elem() {
            Elem::F32 => Precision::F32,
            Elem::F16 => Precision::F16,
        }
    }

    /// Bytes its values take on the device.
    pub fn bytes(&self) -> u64 {
        self.precision().bytes() * self.len() as u64
    }

    /// The same data seen with another shape of the same element count (no copy; the
    /// buffer is shared), like PyTorch's `reshape` on a contiguous tensor.
    pub fn reshape(&self, shape: [usize; 4]) -> Result<Tensor> {
        check_dims("shape", &shape)?;
        if shape.iter().product::<usize>() != self.len() {
            return Err(Error::ShapeMismatch {
                name: "shape",
                expected: self.shape.to_vec(),
                actual: shape.to_vec(),
            });
        }
        Ok(Tensor {
            shape,
            buf: self.buf.clone(),
            gpu_id: self.gpu_id,
        })
    }

    /// A tensor over a buffer the library owns (a layer's state), for ops that read it.
    pub(crate) fn from_pooled(buf: Arc<PooledBuffer>, shape: [usize; 4], gpu_id: u64) -> Tensor {
        Tensor { shape, buf, gpu_id }
    }

    /// Whether the two tensors are views of one buffer.
    pub(crate) fn shares_buffer(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.buf, &other.buf)
    }

    /// A tensor over the first elements of this tensor's buffer (for views that are
    /// contiguous prefixes, such as the first channels of a batch-1 tensor).
    pub(crate) fn prefix_view(&self, shape: [usize; 4]) -> Tensor {
        debug_assert!(shape.iter().product::<usize>() <= self.len());
        Tensor {
            shape,
            buf: self.buf.clone(),
            gpu_id: self.gpu_id,
        }
    }

    /// Checks that the tensor belongs to `gpu`; `name` is used in the error.
    pub(crate) fn check_gpu(&self, gpu: &Gpu, name: &'static str) -> Result<()> {
        check_owner(self.gpu_id, gpu, name)
    }
}

impl Bindable for Tensor {
    fn buffer(&self) -> &Arc<PooledBuffer> {
        &self.buf
    }
    fn bytes(&self) -> u64 {
        Tensor::bytes(self)
    }
}

impl Bindable for IndexTensor {
    fn buffer(&self) -> &Arc<PooledBuffer> {
        &self.buf
    }
    fn bytes(&self) -> u64 {
        4 * self.shape.iter().product::<usize>() as u64
    }
}

/// A 4-D tensor of indices on the GPU, as max pooling returns them: for each element, the
/// flat position `h * W + w` of the maximum within its `(n, c)` plane of the pooled input
/// (PyTorch's convention). Stored as `i32` on the device, read back as `i64`.
#[derive(Clone)]
pub struct IndexTensor {
    shape: [usize; 4],
    buf: Arc<PooledBuffer>,
    gpu_id: u64,
    bound: usize,
    origin: Option<PoolOrigin>,
}

/// How pooled indices were made: the pooling window and the plane they point into.
/// Lets unpooling use a gather when windows cannot overlap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PoolOrigin {
    pub kernel_size: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    pub plane: (usize, usize),
}

impl std::fmt::Debug for IndexTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexTensor")
            .field("shape", &self.shape)
            .field("bound", &self.bound)
            .field("gpu", &self.gpu_id)
            .finish()
    }
}

impl IndexTensor {
    /// Shape as `[N, C, H, W]`.
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }

    /// Every index is below this value: the size of the plane the indices point into
    /// (for uploaded indices, their maximum plus one).
    pub fn bound(&self) -> usize {
        self.bound
    }

    pub(crate) fn origin(&self) -> Option<PoolOrigin> {
        self.origin
    }

    pub(crate) fn check_gpu(&self, gpu: &Gpu, name: &'static str) -> Result<()> {
        check_owner(self.gpu_id, gpu, name)
    }
}

/// A shader file with all its compile-time values.
type PipelineKey = (&'static str, Constants);

/// A shader file ready for its pipelines (see [`Gpu::shader`]).
#[derive(Clone)]
enum Shader {
    #[cfg(target_arch = "wasm32")]
    Wgsl(wgpu::ShaderModule),
    #[cfg(not(target_arch = "wasm32"))]
    Parsed(Arc<crate::shader_fold::Parsed>),
}

/// A shader file with its `@specialize` values and where it reads its parameters.
type ModuleKey = (
    &'static str,
    Vec<(&'static str, u32)>,
    shaders::ParamsBinding,
);

struct Inner {
    id: u64,
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    caps: DeviceCaps,
    /// The storage type of the context's tensors.
    precision: Precision,
    /// Whether kernels with an f16-arithmetic form use it.
    f16_arithmetic: bool,
    /// Which kernels read their parameters from a storage buffer.
    params: ParamsPolicy,
    /// Why the device was lost, once it is.
    lost: Arc<Mutex<Option<String>>>,
    /// The persistent pipeline cache, where configured and supported.
    disk_cache: Option<DiskCache>,
    modules: Mutex<LruCache<ModuleKey, Shader>>,
    pipelines: Mutex<LruCache<PipelineKey, wgpu::ComputePipeline>>,
    pipelines_created: AtomicUsize,
    /// Bind groups for reuse (none where [`GpuOptions::max_cached_bind_groups`] is 0).
    bind_groups: Option<Mutex<LruCache<BindKey, wgpu::BindGroup>>>,
    bind_groups_created: AtomicUsize,
    /// [`GpuOptions::submit_every`] (0 for never).
    submit_every: usize,
    pool: Arc<Mutex<Pool>>,
    /// Bound in the slots of absent optional operands, one per binding index (a buffer
    /// may not be bound both read-only and read-write in one dispatch). Never read or
    /// written: the kernel's constants say the operand is absent.
    unused: Vec<wgpu::Buffer>,
    /// The textures behind `Access::Texels` bindings, by (binding index, format, rows
    /// rounded up to a power of two). One each is enough: every copy into one ends the
    /// compute pass, and wgpu orders the copy after the dispatches that read it before.
    texels: Mutex<HashMap<(usize, wgpu::TextureFormat, u32), wgpu::Texture>>,
    /// Where outputs are poisoned ([`GpuOptions::poison_outputs`]), a buffer of NaN bytes
    /// copied over each new output, grown to the largest one.
    poison: Option<Mutex<Option<wgpu::Buffer>>>,
    /// On the web, the answers of the error scopes not yet awaited (see `Gpu::scoped`).
    web_scopes: Mutex<WebScopes>,
}

/// An error scope's answer, on its way.
type ScopeAnswer = std::pin::Pin<Box<dyn std::future::Future<Output = Option<wgpu::Error>> + Send>>;

/// On the web, where an error scope answers only after the module returns to the browser:
/// the answers not yet awaited, and the first error among those already in.
#[derive(Default)]
struct WebScopes {
    pending: Vec<ScopeAnswer>,
    first_error: Option<String>,
}

impl WebScopes {
    /// Past this many pending answers, those already in are collected (a stream that
    /// never reads back would otherwise grow the list without end).
    const COLLECT_AT: usize = 3 * 256;

    /// Keeps the answers still on their way; notes the first error among the others.
    fn collect_answered(&mut self) {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let first_error = &mut self.first_error;
        self.pending
            .retain_mut(|answer| match answer.as_mut().poll(&mut cx) {
                std::task::Poll::Pending => true,
                std::task::Poll::Ready(error) => {
                    if let Some(e) = error {
                        first_error.get_or_insert_with(|| e.to_string());
                    }
                    false
                }
            });
    }
}

fn invalid_io(name: &'static str, path: &std::path::Path, e: std::io::Error) -> Error {
    Error::InvalidParam {
        name,
        reason: format!("{}: {e}", path.display()),
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(c) = &self.disk_cache {
            if let Err(e) = c.save() {
                log::warn!(
                    "segblocks: saving the pipeline cache {}: {e}",
                    c.path.display()
                );
            }
        }
    }
}

/// `buffer` as rows `bytes_per_row` apart holding mip level 0 of a 2-D `texture`, and the
/// texture's extent (one layer).
fn texture_rows<'a>(
    buffer: &'a wgpu::Buffer,
    bytes_per_row: u32,
    texture: &wgpu::Texture,
) -> (wgpu::TexelCopyBufferInfo<'a>, wgpu::Extent3d) {
    let rows = wgpu::TexelCopyBufferInfo {
        buffer,
        layout: wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(bytes_per_row),
            rows_per_image: None,
        },
    };
    let extent = wgpu::Extent3d {
        depth_or_array_layers: 1,
        ..texture.size()
    };
    (rows, extent)
}

/// The GPU context: device, queue, pipeline cache and buffer pool.
///
/// Cheap to clone; all clones share the same device and caches.
#[derive(Clone)]
pub struct Gpu {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("id", &self.inner.id)
            .field("adapter", &self.inner.info.name)
            .field("backend", &self.inner.info.backend)
            .finish()
    }
}

impl Gpu {
    /// Opens the default adapter (honouring `WGPU_BACKEND` and `WGPU_ADAPTER_NAME`), blocking.
    /// On the web it is [`Error::Unsupported`]: use [`Gpu::new_async`].
    pub fn new() -> Result<Self> {
        Self::with_options(GpuOptions::default())
    }

    /// Opens an adapter chosen by `options`, blocking. On the web it is
    /// [`Error::Unsupported`]: use [`Gpu::new_async`].
    pub fn with_options(options: GpuOptions) -> Result<Self> {
        check_can_block("Gpu::new", "Gpu::new_async")?;
        pollster::block_on(Self::new_async(options))
    }

    /// Opens an adapter chosen by `options`. Without a backend choice (option or
    /// `WGPU_BACKEND`), the primary backends (Vulkan, Metal, DX12, WebGPU) are tried first
    /// and GL only when none of them has an adapter.
    pub async fn new_async(options: GpuOptions) -> Result<Self> {
        options.validate()?;
        let tries = match options.backends.or_else(wgpu::Backends::from_env) {
            Some(b) => vec![b],
            None => vec![wgpu::Backends::PRIMARY, wgpu::Backends::all()],
        };
        let wanted_name = options
            .adapter_name
            .clone()
            .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok())
            .filter(|s| !s.is_empty());
        let mut adapter = Err(Error::NoAdapter("no backend to try".into()));
        for backends in tries {
            adapter = open_adapter(backends, wanted_name.as_deref()).await;
            if adapter.is_ok() {
                break;
            }
        }
        let adapter = adapter?;
        let info = adapter.get_info();
        // Ask for everything the adapter offers, not wgpu's conservative defaults, so large
        // tensors fit in one binding.
        let limits = adapter.limits();
        // Timestamps for the profiler where the adapter has them; the pipeline cache
        // when one is asked for.
        let mut wanted = if options.timestamp_queries == Some(false) {
            wgpu::Features::empty()
        } else {
            wgpu::Features::TIMESTAMP_QUERY
        };
        if options.cache_dir().is_some() {
            wanted |= wgpu::Features::PIPELINE_CACHE;
        }
        check_precision(options.precision, adapter.features())?;
        if options.precision == Precision::F16 {
            wanted |= wgpu::Features::SHADER_F16;
        }
        check_subgroups(options.subgroups, adapter.features())?;
        if options.subgroups != Some(false) {
            wanted |= wgpu::Features::SUBGROUP;
        }
        let features = adapter.features() & wanted;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("segblocks"),
                required_features: features,
                required_limits: options.lowered(limits),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| Error::RequestDevice {
                adapter: info.name.clone(),
                reason: e.to_string(),
            })?;
        // Every wgpu call of the library runs inside error scopes (`Gpu::scoped`), which
        // return errors to the call that caused them. wgpu's default handler for errors
        // outside any scope panics; here such an error (a library bug) is logged.
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            log::error!("segblocks: wgpu error outside an error scope: {e}");
        }));
        let lost = Arc::new(Mutex::new(None));
        let lost_sink = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            let mut slot = lost_sink.lock().unwrap_or_else(|e| e.into_inner());
            *slot = Some(format!("{reason:?}: {message}"));
        });
        Self::from_parts(device, queue, info, &options, lost)
    }

    /// A context on the application's own device: segblocks records into `queue` and
    /// allocates from `device`, next to the application's work, so frames and masks can
    /// stay in GPU memory ([`crate::ops::frame`]). `info` is the adapter's
    /// (`adapter.get_info()`): it tells kernel choice whether shaders run on the CPU.
    /// The device keeps the limits it was created with (`options` may only lower them);
    /// a device without what the kernels need is refused with
    /// [`Error::DeviceUnsupported`] naming the limit. The library does not take the
    /// device over: it installs no uncaptured-error or device-lost handler (its own
    /// calls still report errors through error scopes), so [`Gpu::is_lost`] learns of a
    /// loss only from a failing call.
    pub fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        options: GpuOptions,
    ) -> Result<Self> {
        options.validate()?;
        check_device_limits(&device.limits())?;
        check_precision(options.precision, device.features())?;
        check_subgroups(options.subgroups, device.features())?;
        Self::from_parts(device, queue, info, &options, Arc::new(Mutex::new(None)))
    }

    fn from_parts(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        options: &GpuOptions,
        lost: Arc<Mutex<Option<String>>>,
    ) -> Result<Self> {
        let cache = options
            .max_cached_pipelines
            .unwrap_or(DEFAULT_PIPELINE_CACHE);
        let limits = options.lowered(device.limits());
        log::info!(
            "segblocks: using {} ({:?}, {:?})",
            info.name,
            info.backend,
            info.device_type
        );
        let disk_cache = options
            .cache_dir()
            .and_then(|dir| DiskCache::open(&device, &info, &dir));
        let params = ParamsPolicy::of(options, &info, &limits);
        let subgroups = options.subgroups != Some(false)
            && device.features().contains(wgpu::Features::SUBGROUP);
        let unused = (0..MAX_BINDINGS)
            .map(|_| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("segblocks unused operand"),
                    size: 256,
                    usage: wgpu::BufferUsages::STORAGE,
                    mapped_at_creation: false,
                })
            })
            .collect();
        Ok(Gpu {
            inner: Arc::new(Inner {
                id: NEXT_GPU_ID.fetch_add(1, Ordering::Relaxed),
                device,
                queue,
                caps: DeviceCaps {
                    cpu: match options.device_class {
                        Some(class) => class == DeviceClass::Cpu,
                        None => info.device_type == wgpu::DeviceType::Cpu,
                    },
                    subgroups,
                    fuse_expanding_blocks: options.fuse_expanding_blocks,
                    ..DeviceCaps::of(&limits, &info)
                },
                info,
                limits,
                precision: options.precision,
                f16_arithmetic: options.f16_arithmetic,
                params,
                lost,
                disk_cache,
                modules: Mutex::new(LruCache::new(cache)),
                pipelines: Mutex::new(LruCache::new(cache)),
                pipelines_created: AtomicUsize::new(0),
                bind_groups: match options
                    .max_cached_bind_groups
                    .unwrap_or(DEFAULT_BIND_GROUP_CACHE)
                {
                    0 => None,
                    n => Some(Mutex::new(LruCache::new(n).evicting(n / 8))),
                },
                bind_groups_created: AtomicUsize::new(0),
                submit_every: options.submit_every.unwrap_or(0),
                pool: Arc::new(Mutex::new(Pool::default())),
                unused,
                texels: Mutex::new(HashMap::new()),
                poison: options.poison_outputs.then(|| Mutex::new(None)),
                web_scopes: Mutex::new(WebScopes::default()),
            }),
        })
    }

    /// A process-unique id of this context (tensors remember the id of their context).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The storage type of every tensor this context makes ([`GpuOptions::precision`]).
    pub fn precision(&self) -> Precision {
        self.inner.precision
    }

    /// Whether the kernels with an f16-arithmetic form compute in f16
    /// ([`GpuOptions::f16_arithmetic`]).
    pub fn f16_arithmetic(&self) -> bool {
        self.inner.f16_arithmetic
    }

    /// The element type of this context's tensors.
    fn act_elem(&self) -> Elem {
        match self.inner.precision {
            Precision::F32 => Elem::F32,
            Precision::F16 => Elem::F16,
        }
    }

    /// The adapter that was picked (name, backend, driver).
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }

    /// The limits the device was created with (the adapter's own, unless lowered by options).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    /// What kernel choice knows of this device.
    pub fn caps(&self) -> &DeviceCaps {
        &self.inner.caps
    }

    /// The wgpu device, for users who mix segblocks with their own wgpu code.
    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }

    /// Whether compiled pipelines persist on disk ([`GpuOptions::pipeline_cache_dir`] set
    /// and the adapter supports pipeline caches).
    pub fn has_pipeline_cache(&self) -> bool {
        self.inner.disk_cache.is_some()
    }

    /// Saves the pipeline cache ([`GpuOptions::pipeline_cache_dir`]) when pipelines were
    /// compiled since it was loaded or last saved; returns whether a file was written.
    /// Also done when the last clone of the context is dropped.
    pub fn save_pipeline_cache(&self) -> Result<bool> {
        match &self.inner.disk_cache {
            Some(c) => c
                .save()
                .map_err(|e| invalid_io("pipeline_cache_dir", &c.path, e)),
            None => Ok(false),
        }
    }

    /// How many compute pipelines this context has compiled so far (each variant once).
    pub fn pipelines_created(&self) -> usize {
        self.inner.pipelines_created.load(Ordering::Relaxed)
    }

    /// How many bind groups this context has created so far: one per dispatch recorded,
    /// less those found in its cache ([`GpuOptions::max_cached_bind_groups`]).
    pub fn bind_groups_created(&self) -> usize {
        self.inner.bind_groups_created.load(Ordering::Relaxed)
    }

    /// Compute pipelines currently kept compiled (at most
    /// [`GpuOptions::max_cached_pipelines`]).
    pub fn pipelines_cached(&self) -> usize {
        self.inner
            .pipelines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Byte counts of the buffer pool and the texel textures.
    pub fn memory_stats(&self) -> MemoryStats {
        let mut stats = self
            .inner
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stats;
        stats.texel_bytes = self
            .inner
            .texels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|t| {
                let texel = t.format().block_copy_size(None).unwrap_or(16);
                u64::from(t.width()) * u64::from(t.height()) * u64::from(texel)
            })
            .sum();
        stats
    }

    /// Restarts [`MemoryStats::peak_live_bytes`] from the bytes live now.
    pub fn reset_peak_memory(&self) {
        let mut pool = self.inner.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.stats.peak_live_bytes = pool.stats.live_bytes;
    }

    /// Frees every pooled (unused) buffer and the texel textures (recreated when next
    /// needed), and drops the cached bind groups (which would keep them alive).
    pub fn trim_pool(&self) {
        let mut pool = self.inner.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.free.clear();
        pool.stats.pooled_bytes = 0;
        // Cached bind groups would keep the freed buffers and textures alive.
        if let Some(groups) = &self.inner.bind_groups {
            groups.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
        self.inner
            .texels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Runs `f` inside error scopes of this thread and returns what wgpu reported during
    /// it as an [`Error::Gpu`]. wgpu's scopes belong to the calling thread, so an error
    /// is reported to the call that caused it, never to another thread using the same
    /// `Gpu`.
    pub(crate) fn scoped<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        self.check_lost()?;
        let device = &self.inner.device;
        let scopes = [
            device.push_error_scope(wgpu::ErrorFilter::OutOfMemory),
            device.push_error_scope(wgpu::ErrorFilter::Validation),
            device.push_error_scope(wgpu::ErrorFilter::Internal),
        ];
        let value = f();
        // On the web a scope answers through a promise that settles only once the module
        // returns to the browser, so waiting here would never end: the answers are kept
        // and the next async readback (or `Gpu::errors_async`) returns their first error.
        if cfg!(target_arch = "wasm32") {
            let mut web = self
                .inner
                .web_scopes
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for scope in scopes.into_iter().rev() {
                web.pending.push(Box::pin(scope.pop()));
            }
            if web.pending.len() >= WebScopes::COLLECT_AT {
                web.collect_answered();
            }
            return Ok(value);
        }
        // Innermost first; every scope is popped even when an inner one reported.
        let mut first = None;
        for scope in scopes.into_iter().rev() {
            if let Some(e) = pollster::block_on(scope.pop()) {
                first.get_or_insert(e);
            }
        }
        match first {
            Some(e) => {
                // A call that failed because the device went away says so (wgpu reports
                // the loss from its next poll).
                self.poll_lost()?;
                Err(Error::Gpu(e.to_string()))
            }
            None => Ok(value),
        }
    }

    /// Resolves with the first error wgpu reported for this context's calls since the last
    /// check, as [`Error::Gpu`]. On native targets every call returns its errors itself,
    /// so this resolves at once with `Ok`. On the web the answers arrive only after the
    /// module returns to the browser: the async readbacks check them before returning
    /// data, and an application that writes its results to textures (no readback) awaits
    /// this to learn of a failure.
    pub async fn errors_async(&self) -> Result<()> {
        let (pending, mut first) = {
            let mut web = self
                .inner
                .web_scopes
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            (std::mem::take(&mut web.pending), web.first_error.take())
        };
        for answer in pending {
            if let Some(e) = answer.await {
                first.get_or_insert_with(|| e.to_string());
            }
        }
        match first {
            Some(e) => {
                self.poll_lost()?;
                Err(Error::Gpu(e))
            }
            None => Ok(()),
        }
    }

    /// [`Error::DeviceLost`] once the device is lost (destroyed, reset by the driver,
    /// unplugged): every later call of this `Gpu` fails with it, and a new `Gpu` must be
    /// created.
    pub(crate) fn check_lost(&self) -> Result<()> {
        match &*self.inner.lost.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(why) => Err(Error::DeviceLost(why.clone())),
            None => Ok(()),
        }
    }

    /// [`Gpu::check_lost`] after letting wgpu deliver a pending loss.
    fn poll_lost(&self) -> Result<()> {
        let _ = self.inner.device.poll(wgpu::PollType::Poll);
        self.check_lost()
    }

    /// Whether the device has been lost (see [`Error::DeviceLost`]).
    pub fn is_lost(&self) -> bool {
        self.poll_lost().is_err()
    }

    /// Checks a byte count against the storage binding and buffer limits.
    pub(crate) fn check_binding_size(&self, name: &'static str, bytes: u64) -> Result<()> {
        let l = &self.inner.limits;
        if bytes > l.max_storage_buffer_binding_size {
            return Err(Error::TooLarge {
                name,
                amount: bytes,
                unit: "bytes",
                limit: l.max_storage_buffer_binding_size,
                limit_name: "max_storage_buffer_binding_size",
            });
        }
        if bytes > l.max_buffer_size {
            return Err(Error::TooLarge {
                name,
                amount: bytes,
                unit: "bytes",
                limit: l.max_buffer_size,
                limit_name: "max_buffer_size",
            });
        }
        Ok(())
    }

    fn alloc(&self, kind: BufferKind, bytes: u64) -> Result<Arc<PooledBuffer>> {
        let class = size_class(bytes);
        let mut pool = self.inner.pool.lock().unwrap_or_else(|e| e.into_inner());
        let reused = pool.free.get_mut(&(kind, class)).and_then(|v| {
            let lowest = (0..v.len()).min_by_key(|&i| v[i].0)?;
            Some(v.swap_remove(lowest))
        });
        let (serial, buffer) = match reused {
            Some(b) => {
                pool.stats.pooled_bytes -= class;
                b
            }
            None => {
                // Out of memory is reported here, to this call.
                let buffer = self.scoped(|| {
                    self.inner.device.create_buffer(&wgpu::BufferDescriptor {
                        label: None,
                        size: class,
                        usage: kind.usages(),
                        mapped_at_creation: false,
                    })
                })?;
                pool.stats.buffers_created += 1;
                (pool.stats.buffers_created, buffer)
            }
        };
        pool.stats.live_bytes += class;
        pool.stats.peak_live_bytes = pool.stats.peak_live_bytes.max(pool.stats.live_bytes);
        Ok(Arc::new(PooledBuffer {
            buffer,
            serial,
            gpu_id: self.inner.id,
            writer: Mutex::new(None),
            used: AtomicU64::new(bytes),
            elem: AtomicU8::new(0),
            kind,
            class,
            pool: Arc::downgrade(&self.inner.pool),
        }))
    }

    /// Allocates a storage buffer of `len` f32 values, checking device limits.
    pub(crate) fn alloc_f32(&self, name: &'static str, len: usize) -> Result<Arc<PooledBuffer>> {
        let bytes = (len as u64).saturating_mul(4);
        self.check_binding_size(name, size_class(bytes))?;
        self.alloc(BufferKind::Storage, bytes)
    }

    /// Uploads f32 data into a new storage buffer.
    pub(crate) fn upload_f32(&self, name: &'static str, data: &[f32]) -> Result<Arc<PooledBuffer>> {
        self.upload_slice(name, data)
    }

    /// Uploads a layer's weights (or biases) at the context's precision: the kernels'
    /// `Wt` bindings.
    pub(crate) fn upload_weights(
        &self,
        name: &'static str,
        data: &[f32],
    ) -> Result<Arc<PooledBuffer>> {
        self.upload_at_precision(name, data)
    }

    /// Weights that go up on their first use (see [`LazyWeights`]), checked against the
    /// binding limit now (and refused now on a lost device, like an upload).
    pub(crate) fn lazy_weights(&self, name: &'static str, host: Vec<f32>) -> Result<LazyWeights> {
        self.poll_lost()?;
        let bytes = (host.len() as u64)
            .saturating_mul(self.inner.precision.bytes())
            .max(4);
        self.check_binding_size(name, size_class(bytes))?;
        Ok(LazyWeights {
            gpu: self.clone(),
            name,
            host,
            device: std::sync::OnceLock::new(),
        })
    }

    /// Uploads values stored at the context's precision (rounded to nearest even in f16).
    fn upload_at_precision(&self, name: &'static str, data: &[f32]) -> Result<Arc<PooledBuffer>> {
        match self.inner.precision {
            Precision::F32 => self.upload_f32(name, data),
            Precision::F16 => {
                // Padded to whole 4-byte words for the copy.
                let mut half: Vec<half::f16> =
                    data.iter().map(|&v| half::f16::from_f32(v)).collect();
                if half.len() % 2 == 1 {
                    half.push(half::f16::ZERO);
                }
                let buf = self.upload_slice(name, &half)?;
                buf.set_elem(Elem::F16);
                Ok(buf)
            }
        }
    }

    /// Uploads plain-old-data (f32, u32, small structs of them; f16 in pairs) into a new
    /// buffer, marked as holding f32 data.
    pub(crate) fn upload_slice<T: bytemuck::Pod>(
        &self,
        name: &'static str,
        data: &[T],
    ) -> Result<Arc<PooledBuffer>> {
        let bytes = std::mem::size_of_val(data);
        let buf = self.alloc_f32(name, bytes.div_ceil(4))?;
        if !data.is_empty() {
            let queue = &self.inner.queue;
            self.scoped(|| queue.write_buffer(&buf.buffer, 0, bytemuck::cast_slice(data)))?;
        }
        Ok(buf)
    }

    /// Uploads an NCHW array (any memory layout) as a new tensor.
    pub fn upload(&self, array: ArrayView4<f32>) -> Result<Tensor> {
        let shape: [usize; 4] = array.shape().try_into().expect("4-D view");
        check_dims("input", &shape)?;
        let data: std::borrow::Cow<[f32]> = match array.as_slice() {
            Some(s) => s.into(),
            None => array.iter().copied().collect::<Vec<_>>().into(),
        };
        let buf = self.upload_at_precision("input", &data)?;
        Ok(Tensor {
            shape,
            buf,
            gpu_id: self.inner.id,
        })
    }

    /// Uploads indices (flat `h * W + w` positions, as PyTorch's pooling returns them).
    /// Negative values and values that do not fit in `i32` are refused.
    pub fn upload_indices(&self, indices: ArrayView4<i64>) -> Result<IndexTensor> {
        let shape: [usize; 4] = indices.shape().try_into().expect("4-D view");
        check_dims("indices", &shape)?;
        let mut data = Vec::with_capacity(indices.len());
        let mut max = 0i64;
        for (pos, &v) in indices.indexed_iter() {
            if !(0..=i32::MAX as i64).contains(&v) {
                return Err(Error::InvalidParam {
                    name: "indices",
                    reason: format!("index {v} at {pos:?} is negative or too large"),
                });
            }
            max = max.max(v);
            data.push(v as i32);
        }
        let buf = self.alloc_f32("indices", data.len())?;
        let queue = &self.inner.queue;
        self.scoped(|| queue.write_buffer(&buf.buffer, 0, bytemuck::cast_slice(&data)))?;
        Ok(IndexTensor {
            shape,
            buf,
            gpu_id: self.inner.id,
            bound: max as usize + 1,
            origin: None,
        })
    }

    /// Reads indices back as `i64`, blocking.
    pub fn download_indices(&self, indices: &IndexTensor) -> Result<Array4<i64>> {
        self.recorder().download_indices(indices)
    }

    /// Starts a recording: ops record into one command encoder, submitted once.
    pub fn recorder(&self) -> Recorder<'_> {
        Recorder {
            gpu: self,
            state: Arc::default(),
            on_submit: Vec::new(),
            traffic: Vec::new(),
            layers: Vec::new(),
            encoder: None,
            pass: None,
            held: HashMap::new(),
            reused: 0,
            dispatches: 0,
            planned: None,
            profiling: None,
            params: Vec::new(),
            unsubmitted: 0,
            submissions: 0,
            flush_failed: None,
        }
    }

    /// Compiles every pipeline that `record` would need, in parallel where the backend
    /// allows (every backend but GL, whose calls share one context), without running
    /// anything: `record` records ops into a planning recorder, which makes no pipeline,
    /// bind group or dispatch and is never submitted (its tensors hold no data). Returns
    /// how many pipelines were compiled (those already compiled are skipped). A network
    /// prepares its pipelines this way when it is loaded
    /// ([`Model::prepare`](crate::blocks::Model::prepare)), so that its first frame runs
    /// without compiling.
    pub fn prepare(&self, record: impl FnOnce(&mut Recorder<'_>) -> Result<()>) -> Result<usize> {
        let mut rec = self.recorder();
        rec.planned = Some(Vec::new());
        record(&mut rec)?;
        let planned = rec.planned.take().unwrap_or_default();
        drop(rec);
        let mut seen = std::collections::HashSet::new();
        let keys: Vec<PipelineKey> = {
            let cached = self
                .inner
                .pipelines
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            planned
                .into_iter()
                .filter(|k| !cached.contains(k) && seen.insert(k.clone()))
                .collect()
        };
        let threads = match self.inner.info.backend {
            wgpu::Backend::Gl => 1,
            _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
        .min(keys.len());
        let next = AtomicUsize::new(0);
        let compile = || -> Result<()> {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((file, constants)) = keys.get(i) else {
                    return Ok(());
                };
                self.pipeline(file, constants)?;
            }
        };
        if threads <= 1 {
            compile()?;
        } else {
            std::thread::scope(|s| {
                let workers: Vec<_> = (0..threads).map(|_| s.spawn(compile)).collect();
                workers
                    .into_iter()
                    .map(|w| {
                        w.join()
                            .unwrap_or_else(|_| Err(Error::Gpu("a compile thread panicked".into())))
                    })
                    .collect::<Result<Vec<()>>>()
            })?;
        }
        Ok(keys.len())
    }

    /// Reads a tensor back, blocking until the GPU is done.
    pub fn download(&self, tensor: &Tensor) -> Result<Array4<f32>> {
        self.recorder().download(tensor)
    }

    /// Reads a tensor back asynchronously.
    pub async fn download_async(&self, tensor: &Tensor) -> Result<Array4<f32>> {
        self.recorder().download_async(tensor).await
    }

    /// The compiled pipeline for `file` with `constants` (its `@specialize` constants are
    /// written into the source, the rest are WGSL override values), compiled on first use.
    pub(crate) fn pipeline(
        &self,
        file: &'static str,
        constants: &Constants,
    ) -> Result<wgpu::ComputePipeline> {
        let key = (file, constants.clone());
        if let Some(p) = self
            .inner
            .pipelines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(p);
        }
        // `Instant` panics on the web (no clock in wasm32's std): timed natively only.
        let started = (!cfg!(target_arch = "wasm32")).then(std::time::Instant::now);
        let declared = shaders::specializations(file);
        let is_specialize = |name: &str| declared.iter().any(|(d, _)| d == name);
        let specialize: Vec<(&'static str, u32)> =
            constants.iter().filter(|(n, _)| is_specialize(n)).collect();
        let overrides: Vec<(&'static str, f64)> = constants
            .iter()
            .filter(|(n, _)| !is_specialize(n))
            .map(|(n, v)| (n, f64::from(v)))
            .collect();
        let binding = self.inner.params.binding(file, constants);
        let shader = {
            let mut modules = self.inner.modules.lock().unwrap_or_else(|e| e.into_inner());
            match modules.get(&(file, specialize.clone(), binding)) {
                Some(m) => m,
                None => {
                    let source =
                        shaders::source_with(file, &specialize, binding).ok_or_else(|| {
                            Error::Gpu(format!(
                                "{file}: unknown shader or constant in {specialize:?}"
                            ))
                        })?;
                    let m = self.shader(file, source)?;
                    modules.insert((file, specialize, binding), m.clone());
                    m
                }
            }
        };
        let (module, overrides) = match shader {
            #[cfg(target_arch = "wasm32")]
            Shader::Wgsl(module) => (module, overrides),
            #[cfg(not(target_arch = "wasm32"))]
            Shader::Parsed(parsed) => {
                let module = crate::shader_fold::specialize(&parsed, &overrides)
                    .map_err(|e| Error::Gpu(format!("{file}: {e}")))?;
                let module = self.create_module(
                    file,
                    wgpu::ShaderSource::Naga(std::borrow::Cow::Owned(module)),
                )?;
                (module, Vec::new())
            }
        };
        let pipeline = self.scoped(|| {
            self.inner
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(file),
                    layout: None,
                    module: &module,
                    entry_point: Some("main"),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants: &overrides,
                        zero_initialize_workgroup_memory: false,
                    },
                    cache: self.inner.disk_cache.as_ref().map(|c| &c.cache),
                })
        })?;
        if let Some(c) = &self.inner.disk_cache {
            c.dirty.store(true, Ordering::Release);
        }
        if let Some(started) = started {
            log::debug!(
                "segblocks: compiled {file} {:?} in {:.1} ms",
                constants,
                started.elapsed().as_secs_f64() * 1e3
            );
        }
        self.inner.pipelines_created.fetch_add(1, Ordering::Relaxed);
        self.inner
            .pipelines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// A shader ready for its pipelines: parsed once for [`crate::shader_fold`] on the
    /// native backends, a WGSL module that wgpu specialises on the web.
    fn shader(&self, file: &'static str, source: String) -> Result<Shader> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            crate::shader_fold::parse(file, &source)
                .map(|parsed| Shader::Parsed(Arc::new(parsed)))
                .map_err(Error::Gpu)
        }
        #[cfg(target_arch = "wasm32")]
        {
            self.create_module(file, wgpu::ShaderSource::Wgsl(source.into()))
                .map(Shader::Wgsl)
        }
    }

    /// A wgpu shader module from `source` with the crate's runtime checks.
    fn create_module(
        &self,
        file: &'static str,
        source: wgpu::ShaderSource<'_>,
    ) -> Result<wgpu::ShaderModule> {
        // SAFETY: the source is one of the crate's own shaders (`shaders::` preprocessed
        // files, never user input), and every loop in them is a `for` whose counter
        // rises by a constant step to a bound below 2^31 (element and channel counts,
        // validated against the buffer sizes) or halves to 0, so none can run forever:
        // wgpu's loop bounding (a counter on every loop) adds nothing but compile time,
        // about half of lavapipe's pipeline creation. Bounds and integer division checks
        // stay on.
        self.scoped(|| unsafe {
            self.inner.device.create_shader_module_trusted(
                wgpu::ShaderModuleDescriptor {
                    label: Some(file),
                    source,
                },
                shader_checks(),
            )
        })
    }

    /// Splits a linear workgroup count into a grid that respects
    /// `max_compute_workgroups_per_dimension`. Shaders recover the linear index as
    /// `wg.x + wg.y * num_workgroups.x` and ignore indices past the end.
    pub(crate) fn grid(&self, total: u64) -> Result<(u32, u32)> {
        let max = self.inner.limits.max_compute_workgroups_per_dimension as u64;
        let total = total.max(1);
        if total <= max {
            return Ok((total as u32, 1));
        }
        let y = total.div_ceil(max);
        if y > max {
            return Err(Error::TooLarge {
                name: "dispatch",
                amount: total,
                unit: "workgroups",
                limit: max * max,
                limit_name: "max_compute_workgroups_per_dimension squared",
            });
        }
        Ok((max as u32, y as u32))
    }
}

/// [`Error::Unsupported`] on the web for a call that would block until the GPU answers:
/// a WebAssembly module gets the answer only after it returns to the browser, so such a
/// call would never end there. `name` is the call, `instead` what to use.
fn check_can_block(name: &'static str, instead: &str) -> Result<()> {
    if cfg!(target_arch = "wasm32") {
        return Err(Error::Unsupported {
            name,
            reason: format!(
                "it blocks until the GPU answers, which a WebAssembly module cannot do \
                 (the browser delivers the answer only after the module returns); use \
                 {instead}"
            ),
        });
    }
    Ok(())
}

/// The runtime checks compiled into every shader: out-of-bounds accesses and integer
/// division by zero guarded, loops not bounded (see the `SAFETY` note where it is used).
fn shader_checks() -> wgpu::ShaderRuntimeChecks {
    let mut checks = wgpu::ShaderRuntimeChecks::checked();
    checks.force_loop_bounding = false;
    checks
}

/// The adapter named `wanted_name` (a case-insensitive substring), or wgpu's choice with
/// the power preference from `WGPU_POWER_PREF` (default high performance).
async fn open_adapter(
    backends: wgpu::Backends,
    wanted_name: Option<&str>,
) -> Result<wgpu::Adapter> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    let instance = wgpu::Instance::new(desc);
    match wanted_name {
        Some(name) => {
            let adapters = instance.enumerate_adapters(backends).await;
            let names: Vec<String> = adapters
                .iter()
                .map(|a| {
                    let i = a.get_info();
                    format!("{} ({:?})", i.name, i.backend)
                })
                .collect();
            adapters
                .into_iter()
                .find(|a| {
                    a.get_info()
                        .name
                        .to_lowercase()
                        .contains(&name.to_lowercase())
                })
                .ok_or_else(|| {
                    Error::NoAdapter(format!(
                        "no adapter name contains {name:?} (available: {names:?})"
                    ))
                })
        }
        None => instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::from_env()
                    .unwrap_or(wgpu::PowerPreference::HighPerformance),
                force_fallback_adapter: false,
                compatible_surface: None,
                apply_limit_buckets: false,
            })
            .await
            .map_err(|e| Error::NoAdapter(format!("{e} (backends {backends:?})"))),
    }
}

/// Which kernels bind their parameters in a storage buffer (see
/// [`GpuOptions::params_in_storage`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ParamsPolicy {
    /// None: every kernel reads a uniform buffer.
    Uniform,
    /// The kernels of [`shaders::INLINING_SENSITIVE`].
    Listed,
    /// Every kernel.
    Storage,
}

impl ParamsPolicy {
    /// The policy of `options` on this adapter: storage buffers only where the device has
    /// one to spare beside the kernels' own.
    fn of(options: &GpuOptions, info: &wgpu::AdapterInfo, limits: &wgpu::Limits) -> Self {
        let spare = limits.max_storage_buffers_per_shader_stage as usize > MAX_BINDINGS;
        let mesa_cpu = info.device_type == wgpu::DeviceType::Cpu && info.driver == "llvmpipe";
        match options.params_in_storage {
            _ if !spare => ParamsPolicy::Uniform,
            Some(true) => ParamsPolicy::Storage,
            Some(false) => ParamsPolicy::Uniform,
            None if mesa_cpu => ParamsPolicy::Listed,
            None => ParamsPolicy::Uniform,
        }
    }

    /// Where the kernel of `file` with `constants` reads its parameters.
    fn binding(self, file: &str, constants: &Constants) -> shaders::ParamsBinding {
        let storage = match self {
            ParamsPolicy::Uniform => false,
            ParamsPolicy::Listed => shaders::INLINING_SENSITIVE
                .iter()
                .any(|&(f, name, value)| f == file && constants.get(name) == Some(value)),
            ParamsPolicy::Storage => true,
        };
        if storage {
            shaders::ParamsBinding::Storage
        } else {
            shaders::ParamsBinding::Uniform
        }
    }
}

/// Refuses subgroups asked for (`Some(true)`) on a device without them.
fn check_subgroups(subgroups: Option<bool>, features: wgpu::Features) -> Result<()> {
    if subgroups == Some(true) && !features.contains(wgpu::Features::SUBGROUP) {
        return Err(Error::DeviceUnsupported {
            name: "SUBGROUP",
            needed: "the feature, for GpuOptions::subgroups = Some(true)".into(),
            available: "not supported by this adapter or device".into(),
        });
    }
    Ok(())
}

/// Refuses a precision the device cannot store: f16 needs `SHADER_F16`.
fn check_precision(precision: Precision, features: wgpu::Features) -> Result<()> {
    if precision == Precision::F16 && !features.contains(wgpu::Features::SHADER_F16) {
        return Err(Error::DeviceUnsupported {
            name: "SHADER_F16",
            needed: "the feature, for Precision::F16".into(),
            available: "not supported by this adapter or device".into(),
        });
    }
    Ok(())
}

/// Checks that something created by the context `owner` (a tensor's or a layer's) is used
/// with `gpu`; `name` is used in the error.
pub(crate) fn check_owner(owner: u64, gpu: &Gpu, name: &'static str) -> Result<()> {
    if owner != gpu.inner.id {
        return Err(Error::WrongDevice {
            name,
            tensor_gpu: owner,
            this_gpu: gpu.inner.id,
        });
    }
    Ok(())
}

/// Rejects shapes with a zero dimension.
pub(crate) fn check_dims(name: &'static str, shape: &[usize; 4]) -> Result<()> {
    if shape.contains(&0) {
        return Err(Error::InvalidParam {
            name,
            reason: format!("shape {shape:?} has a zero-sized dimension"),
        });
    }
    let elements = shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(u64::try_from(d).ok()?));
    match elements {
        Some(n) if n <= MAX_ELEMENTS => Ok(()),
        n => Err(Error::TooLarge {
            name,
            amount: n.unwrap_or(u64::MAX),
            unit: "elements",
            limit: MAX_ELEMENTS,
            limit_name: "MAX_ELEMENTS",
        }),
    }
}

/// The most elements a tensor may have: the shaders index with 32-bit integers. (Device
/// limits on buffer sizes usually refuse smaller tensors first, with
/// [`Error::TooLarge`] in bytes.)
pub const MAX_ELEMENTS: u64 = u32::MAX as u64;

/// Records ops into one command encoder and one compute pass; nothing reaches the GPU
/// until [`Recorder::submit`] or one of the download methods.
///
/// Buffers used by recorded ops are held by the recorder until submission. Once no tensor
/// refers to one any more (its last reader has been recorded), later ops of the same
/// recording write their outputs into it: buffers are reused by liveness, so a network's
/// peak memory is set by the activations alive at the same time, not by all of them.
/// This is safe because every op is a dispatch (or copy) in one command stream, ordered
/// after the reads recorded before it, while data uploads (`queue.write_buffer`, which
/// land before the whole submission) only ever go to fresh buffers from the pool.
pub struct Recorder<'g> {
    gpu: &'g Gpu,
    state: Arc<RecordingState>,
    /// Called with `true` once the recording is submitted, `false` if it is dropped or
    /// fails to submit: state that ops change only if their work runs (batch norm's count
    /// of tracked batches).
    on_submit: Vec<Box<dyn FnOnce(bool) + Send>>,
    /// Every dispatch and copy recorded, with the bytes it binds.
    traffic: Vec<DispatchTraffic>,
    /// The layer being recorded, outermost first (names of graph nodes).
    layers: Vec<String>,
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    /// Every buffer the recording uses, by address.
    held: HashMap<usize, Arc<PooledBuffer>>,
    reused: usize,
    dispatches: usize,
    /// Planning only ([`Gpu::prepare`]): the pipelines the recorded ops need, and no
    /// pipeline, bind group or dispatch.
    planned: Option<Vec<PipelineKey>>,
    /// Profiling ([`Recorder::enable_profiling`]).
    profiling: Option<Profiling>,
    /// The dispatches' parameters, packed into shared buffers.
    params: Vec<ParamChunk>,
    /// Dispatches recorded since the last submission of this recording's work.
    unsubmitted: usize,
    /// Queue submissions of this recording's work so far ([`Recorder::flush`]).
    submissions: usize,
    /// Why a flush failed: part of the work never ran, so the recording cannot be
    /// submitted ([`Recorder::submit`] returns this).
    flush_failed: Option<String>,
}

/// A buffer of dispatch parameters shared by up to [`PARAM_CHUNK`] bytes of a recording's
/// dispatches, each bound at its own offset, and written with one `queue.write_buffer`
/// when the recording is submitted: one write per dispatch cost about 4 us of host time
/// each (lavapipe, the selfie network: a third of its recording) and a staging buffer and
/// a copy command each.
struct ParamChunk {
    buffer: Arc<PooledBuffer>,
    bytes: Vec<u8>,
    /// How many of `bytes` are written to `buffer` already.
    written: usize,
}

/// Bytes of a [`ParamChunk`] (dispatches whose parameters are larger get one their size).
const PARAM_CHUNK: usize = 16 * 1024;

/// A profiled recording's state: timestamp query sets (two queries a dispatch), or host
/// times of synchronised dispatches; and which traffic entries are dispatches.
struct Profiling {
    sets: Vec<wgpu::QuerySet>,
    host_ms: Vec<f64>,
    dispatch_entries: Vec<usize>,
}

/// Queries per timestamp query set (128 dispatches).
const QUERIES_PER_SET: u32 = 256;

impl Drop for Recorder<'_> {
    /// A recording dropped without being submitted: its outputs never get data, and
    /// reading them elsewhere is an error ([`Error::NotSubmitted`]).
    fn drop(&mut self) {
        if self.state.get() == RecordingState::RECORDING {
            self.settle(false);
        }
    }
}

impl<'g> Recorder<'g> {
    /// The context this recorder belongs to.
    pub fn gpu(&self) -> &'g Gpu {
        self.gpu
    }

    /// Number of compute dispatches recorded so far.
    pub fn dispatch_count(&self) -> usize {
        self.dispatches
    }

    /// Queue submissions of this recording's work so far: [`Recorder::flush`]es that
    /// submitted something (the recording's own submission not counted).
    pub fn submissions(&self) -> usize {
        self.submissions
    }

    /// Submits the work recorded so far, without waiting, so that the device starts on it
    /// while the rest is recorded ([`GpuOptions::submit_every`] calls it every so many
    /// dispatches). The recording carries on; its outputs become readable once it is
    /// submitted as usual, and work flushed runs even if it is then dropped. Does nothing
    /// while a recorded op waits to learn whether its work is submitted (a training batch
    /// norm counting its batches: it must not count one whose statistics never update),
    /// while profiling (each dispatch is timed in the recording's one submission), in a
    /// planning recorder, and when nothing new was recorded.
    ///
    /// A flush that fails returns the error, and so does the recording's submission
    /// afterwards: the work it carried never runs, so the outputs never become readable.
    pub fn flush(&mut self) -> Result<()> {
        let waiting = !self.on_submit.is_empty() || self.profiling.is_some();
        if waiting || self.planned.is_some() || self.flush_failed.is_some() {
            return Ok(());
        }
        match self.submit_recorded() {
            Ok(index) => {
                self.submissions += usize::from(index.is_some());
                self.unsubmitted = 0;
                Ok(())
            }
            Err(e) => {
                self.flush_failed = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Ends the compute pass, writes the parameters recorded so far and submits the
    /// commands recorded since the last submission, if any (the recording goes on).
    fn submit_recorded(&mut self) -> Result<Option<wgpu::SubmissionIndex>> {
        self.pass = None;
        self.flush_params()?;
        let Some(encoder) = self.encoder.take() else {
            return Ok(None);
        };
        let queue = &self.gpu.inner.queue;
        self.gpu
            .scoped(|| queue.submit([encoder.finish()]))
            .map(Some)
    }

    /// Number of op outputs so far written into buffers freed earlier in this recording.
    pub fn buffers_reused(&self) -> usize {
        self.reused
    }

    fn hold(&mut self, buf: &Arc<PooledBuffer>) {
        self.held
            .entry(Arc::as_ptr(buf) as usize)
            .or_insert_with(|| buf.clone());
    }

    /// A storage buffer for `len` f32 values that ops of this recording write before they
    /// read it: the smallest buffer at least that large (and at most [`REUSE_MAX_WASTE`]
    /// times larger, so a small tensor does not take a buffer a large one needs later)
    /// that the recording holds and nothing else refers to any more, else a new one from
    /// the pool. (Shaders never ask a binding for its length, so a larger buffer serves a
    /// smaller tensor.)
    pub(crate) fn alloc_f32(
        &mut self,
        name: &'static str,
        len: usize,
    ) -> Result<Arc<PooledBuffer>> {
        self.alloc_elems(name, len, Elem::F32)
    }

    /// [`Recorder::alloc_f32`] for `len` values of type `elem`.
    fn alloc_elems(
        &mut self,
        name: &'static str,
        len: usize,
        elem: Elem,
    ) -> Result<Arc<PooledBuffer>> {
        let per = match elem {
            Elem::F32 => 4,
            Elem::F16 => 2,
        };
        let bytes = (len as u64).saturating_mul(per);
        let class = size_class(bytes);
        self.gpu.check_binding_size(name, class)?;
        let dead = self
            .held
            .values()
            .filter(|b| {
                b.kind == BufferKind::Storage
                    && (class..=REUSE_MAX_WASTE * class).contains(&b.class)
                    && Arc::strong_count(b) == 1
            })
            .min_by_key(|b| (b.class, b.serial));
        let buf = match dead {
            Some(b) => {
                self.reused += 1;
                b.clone()
            }
            None => self.gpu.alloc(BufferKind::Storage, bytes)?,
        };
        *buf.writer.lock().unwrap_or_else(|e| e.into_inner()) = Some(self.state.clone());
        buf.used.store(bytes, Ordering::Relaxed);
        buf.set_elem(elem);
        self.poison(&buf)?;
        Ok(buf)
    }

    /// Records a copy of NaN bytes over `buf` where outputs are poisoned
    /// ([`GpuOptions::poison_outputs`]); a planning recorder records nothing.
    fn poison(&mut self, buf: &PooledBuffer) -> Result<()> {
        let Some(poison) = &self.gpu.inner.poison else {
            return Ok(());
        };
        if self.planned.is_some() {
            return Ok(());
        }
        let size = buf.buffer.size();
        let source = {
            let mut source = poison.lock().unwrap_or_else(|e| e.into_inner());
            if source.as_ref().is_none_or(|b| b.size() < size) {
                let b = self
                    .gpu
                    .inner
                    .device
                    .create_buffer(&wgpu::BufferDescriptor {
                        label: Some("segblocks poison"),
                        size,
                        usage: wgpu::BufferUsages::COPY_SRC,
                        mapped_at_creation: true,
                    });
                b.slice(..)
                    .get_mapped_range_mut()
                    .map_err(|e| Error::Gpu(format!("poison buffer: {e}")))?
                    .copy_from_slice(&vec![0xFF; size as usize]);
                b.unmap();
                *source = Some(b);
            }
            source.clone()
        };
        if let Some(source) = source {
            self.encoder()
                .copy_buffer_to_buffer(&source, 0, &buf.buffer, 0, size);
        }
        Ok(())
    }

    /// Refuses to read `buf` in this recording when another recording fills it and has
    /// not been submitted: its data would be stale (or, if that recording is submitted
    /// later, the reads would run before the writes).
    fn check_written(&self, buf: &PooledBuffer, name: &'static str) -> Result<()> {
        let writer = buf.writer.lock().unwrap_or_else(|e| e.into_inner());
        match writer.as_ref() {
            Some(w) if !Arc::ptr_eq(w, &self.state) && w.get() != RecordingState::SUBMITTED => {
                Err(Error::NotSubmitted {
                    name,
                    dropped: w.get() == RecordingState::DROPPED,
                })
            }
            _ => Ok(()),
        }
    }

    /// Runs `hook(true)` once this recording is submitted, `hook(false)` if it is dropped
    /// unsubmitted or its submission fails.
    pub(crate) fn on_submit(&mut self, hook: impl FnOnce(bool) + Send + 'static) {
        self.on_submit.push(Box::new(hook));
    }

    /// Marks the recording submitted (or abandoned) and runs the hooks.
    fn settle(&mut self, submitted: bool) {
        let state = if submitted {
            RecordingState::SUBMITTED
        } else {
            RecordingState::DROPPED
        };
        self.state.set(state);
        for hook in self.on_submit.drain(..) {
            hook(submitted);
        }
    }

    /// An op's output tensor (see [`Recorder::alloc_f32`]).
    pub(crate) fn empty(&mut self, name: &'static str, shape: [usize; 4]) -> Result<Tensor> {
        check_dims(name, &shape)?;
        let elem = self.gpu.act_elem();
        Ok(Tensor {
            shape,
            buf: self.alloc_elems(name, shape.iter().product(), elem)?,
            gpu_id: self.gpu.inner.id,
        })
    }

    /// A tensor of zeros (`torch.zeros`), cleared by this recording.
    pub(crate) fn zeros(&mut self, name: &'static str, shape: [usize; 4]) -> Result<Tensor> {
        let t = self.empty(name, shape)?;
        self.clear(&t.buf);
        Ok(t)
    }

    /// An output tensor stored as f32 at every precision: a parameter's gradient, or
    /// 4-byte words that are not activations (packed pixels).
    pub(crate) fn empty_f32(&mut self, name: &'static str, shape: [usize; 4]) -> Result<Tensor> {
        check_dims(name, &shape)?;
        Ok(Tensor {
            shape,
            buf: self.alloc_f32(name, shape.iter().product())?,
            gpu_id: self.gpu.inner.id,
        })
    }

    /// An output tensor of `shape` whose buffer has room for `tail` more values (of the
    /// tensor's element type) after it, which its kernel fills with values of its own
    /// for a later kernel (partial sums).
    pub(crate) fn empty_with_tail(
        &mut self,
        name: &'static str,
        shape: [usize; 4],
        tail: usize,
    ) -> Result<Tensor> {
        check_dims(name, &shape)?;
        let len = shape.iter().product::<usize>().saturating_add(tail);
        let elem = self.gpu.act_elem();
        Ok(Tensor {
            shape,
            buf: self.alloc_elems(name, len, elem)?,
            gpu_id: self.gpu.inner.id,
        })
    }

    /// A pooling's index output (see [`Recorder::alloc_f32`]).
    pub(crate) fn empty_indices(
        &mut self,
        shape: [usize; 4],
        origin: PoolOrigin,
    ) -> Result<IndexTensor> {
        check_dims("indices", &shape)?;
        Ok(IndexTensor {
            shape,
            buf: self.alloc_f32("indices", shape.iter().product())?,
            gpu_id: self.gpu.inner.id,
            bound: origin.plane.0 * origin.plane.1,
            origin: Some(origin),
        })
    }

    /// The index output of a pooling without a fixed window (adaptive max pooling),
    /// pointing into planes of `plane` (height, width).
    pub(crate) fn empty_plane_indices(
        &mut self,
        shape: [usize; 4],
        plane: (usize, usize),
    ) -> Result<IndexTensor> {
        check_dims("indices", &shape)?;
        Ok(IndexTensor {
            shape,
            buf: self.alloc_f32("indices", shape.iter().product())?,
            gpu_id: self.gpu.inner.id,
            bound: plane.0 * plane.1,
            origin: None,
        })
    }

    fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        self.pass = None;
        self.encoder.get_or_insert_with(|| {
            self.gpu
                .inner
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("segblocks"),
                })
        })
    }

    /// Records one planned dispatch with its buffers bound by name: the kernel's uniform
    /// at binding 0 (uploaded here, padded to 16 bytes), the buffers of `args` at the
    /// bindings the kernel declares (an absent optional one gets a small unused buffer).
    pub(crate) fn run(&mut self, launch: &Launch, args: Args<'_>) -> Result<()> {
        if launch.loops > LOOP_BUDGET {
            return Err(Error::TooLarge {
                name: launch.file,
                amount: launch.loops,
                unit: "loop iterations per invocation",
                limit: LOOP_BUDGET,
                limit_name: "LOOP_BUDGET",
            });
        }
        let (read, written) = args.traffic();
        let buffers = args.resolve(launch.file, launch.bindings)?;
        // The ops check their operands by name; this keeps any buffer of another device
        // from reaching wgpu, which would panic.
        for (b, binding) in buffers.iter().zip(launch.bindings) {
            if let Some(b) = b {
                check_owner(b.gpu_id, self.gpu, binding.name)?;
                self.check_written(b, binding.name)?;
            }
        }
        let half = self.check_elems(launch, &buffers)?;
        let subgroups = self.gpu.caps().reduction() == Reduction::Subgroup
            && shaders::has_subgroup_form(launch.file);
        let half_math =
            half && self.gpu.inner.f16_arithmetic && shaders::has_half_math_form(launch.file);
        let specialised;
        let launch = if half || subgroups {
            let mut l = launch.clone();
            if half {
                l.constants.set(shaders::PRECISION, 1);
            }
            if half_math {
                l.constants.set(shaders::HALF_MATH, 1);
            }
            if subgroups {
                l.constants.set(shaders::SUBGROUPS, 1);
            }
            specialised = l;
            &specialised
        } else {
            launch
        };
        if let Some(planned) = &mut self.planned {
            planned.push((launch.file, launch.constants.clone()));
            self.dispatches += 1;
            return Ok(());
        }
        let pipeline = self.gpu.pipeline(launch.file, &launch.constants)?;
        let (gx, gy) = self.gpu.grid(launch.workgroups)?;
        let sizes: Vec<Option<u64>> = launch
            .bindings
            .iter()
            .map(|b| args.bytes_of(b.name))
            .collect();
        let texels = self.copy_to_texels(launch, &buffers, &sizes)?;
        let bind_group = self.bind(launch, &pipeline, &buffers, &texels)?;
        // Profiled with timestamps: each dispatch in a pass of its own, timed at its
        // begin and end.
        let timed = self.timestamp_slot();
        if timed.is_some() || self.pass.is_none() {
            self.pass = None;
            let profiling = self.profiling.as_ref();
            let writes = timed.and_then(|(set, index)| {
                profiling.map(|p| wgpu::ComputePassTimestampWrites {
                    query_set: &p.sets[set],
                    beginning_of_pass_write_index: Some(index),
                    end_of_pass_write_index: Some(index + 1),
                })
            });
            let encoder = self.encoder.get_or_insert_with(|| {
                self.gpu
                    .inner
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("segblocks"),
                    })
            });
            let pass = encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("segblocks"),
                    timestamp_writes: writes,
                })
                .forget_lifetime();
            self.pass = Some(pass);
        }
        let pass = self.pass.as_mut().expect("pass opened above");
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(gx, gy, 1);
        if timed.is_some() {
            self.pass = None;
        }
        for b in buffers.into_iter().flatten() {
            self.hold(b);
        }
        self.dispatches += 1;
        if let Some(p) = &mut self.profiling {
            p.dispatch_entries.push(self.traffic.len());
        }
        self.note_traffic(launch.file, read, written);
        self.unsubmitted += 1;
        let every = self.gpu.inner.submit_every;
        if every > 0 && self.unsubmitted >= every {
            self.flush()?;
        }
        if self.profiling.as_ref().is_some_and(|p| p.sets.is_empty()) {
            let ms = self.synchronise()?;
            if let Some(p) = &mut self.profiling {
                p.host_ms.push(ms);
            }
        }
        Ok(())
    }

    /// Checks that every buffer holds the element type its binding declares (`Act` and
    /// `Wt` bindings the context's precision, the others f32), and says whether the
    /// kernel runs with f16 `Act` and `Wt`. A kernel that has no f16 form is refused with
    /// [`Error::Unsupported`] in a half-precision context.
    fn check_elems(&self, launch: &Launch, buffers: &[Option<&Arc<PooledBuffer>>]) -> Result<bool> {
        let acts = shaders::precision_bindings(launch.file);
        let act = self.gpu.act_elem();
        for (b, binding) in buffers.iter().zip(launch.bindings) {
            let Some(b) = b else { continue };
            // Texels take their format from the buffer.
            if binding.access == Access::Texels {
                continue;
            }
            let is_act = acts.iter().any(|a| a == binding.name);
            let wanted = if is_act { act } else { Elem::F32 };
            if b.elem() != wanted {
                return Err(Error::Unsupported {
                    name: launch.file,
                    reason: format!(
                        "binding `{}` holds {:?} values but the kernel reads {:?} there \
                         (this kernel has no {:?} form yet)",
                        binding.name,
                        b.elem(),
                        wanted,
                        self.gpu.precision()
                    ),
                });
            }
        }
        Ok(act == Elem::F16 && !acts.is_empty())
    }

    /// Profiles this recording ([`Recorder::profile`] returns the times): with timestamp
    /// queries where the device has them, else by submitting and waiting after every
    /// dispatch (the labelled fallback, [`ProfileMethod::Synchronised`](crate::profile::ProfileMethod)).
    /// Profiling changes how the work is submitted, not what it computes; call it before
    /// recording anything. On the web it is [`Error::Unsupported`]: reading the times
    /// back blocks.
    pub fn enable_profiling(&mut self) -> Result<()> {
        check_can_block("enable_profiling", "a native build")?;
        if self.dispatches > 0 {
            return Err(Error::InvalidParam {
                name: "profiling",
                reason: format!(
                    "must be enabled before anything is recorded; {} dispatches already are",
                    self.dispatches
                ),
            });
        }
        let timestamps = self
            .gpu
            .inner
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY);
        self.profiling = Some(Profiling {
            sets: Vec::new(),
            host_ms: Vec::new(),
            dispatch_entries: Vec::new(),
        });
        if timestamps {
            // The first set now: its presence marks the timestamp method.
            let set = self.new_query_set()?;
            if let Some(p) = &mut self.profiling {
                p.sets.push(set);
            }
        }
        Ok(())
    }

    fn new_query_set(&self) -> Result<wgpu::QuerySet> {
        let device = &self.gpu.inner.device;
        self.gpu.scoped(|| {
            device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("segblocks profile"),
                ty: wgpu::QueryType::Timestamp,
                count: QUERIES_PER_SET,
            })
        })
    }

    /// The query set and first query index of the next dispatch, when profiling with
    /// timestamps (a new set when the last is full).
    fn timestamp_slot(&mut self) -> Option<(usize, u32)> {
        let p = self.profiling.as_ref()?;
        if p.sets.is_empty() {
            return None;
        }
        let k = p.dispatch_entries.len() as u32;
        let (set, index) = (
            (k / (QUERIES_PER_SET / 2)) as usize,
            2 * (k % (QUERIES_PER_SET / 2)),
        );
        if set == p.sets.len() {
            let new = self.new_query_set().ok()?;
            self.profiling.as_mut()?.sets.push(new);
        }
        Some((set, index))
    }

    /// The fallback: submits what is recorded and waits; returns the host time in ms.
    fn synchronise(&mut self) -> Result<f64> {
        let start = std::time::Instant::now();
        let Some(index) = self.submit_recorded()? else {
            return Ok(0.0);
        };
        self.gpu
            .inner
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: None,
            })
            .map_err(|e| Error::Readback(e.to_string()))?;
        Ok(start.elapsed().as_secs_f64() * 1e3)
    }

    /// Submits the profiled recording, waits, and returns each dispatch's time
    /// ([`Recorder::enable_profiling`] first). The recording's outputs are then ready to
    /// read ([`Gpu::download`]).
    pub fn profile(mut self) -> Result<crate::profile::Profile> {
        use crate::profile::{Profile, ProfileMethod};
        let Some(profiling) = self.profiling.take() else {
            return Err(Error::InvalidParam {
                name: "profiling",
                reason: "call enable_profiling before recording".into(),
            });
        };
        let n = profiling.dispatch_entries.len();
        let inner = self.gpu.inner.clone();
        if profiling.sets.is_empty() {
            // Every dispatch was submitted and timed as it was recorded; what remains
            // (copies) is submitted here.
            self.synchronise()?;
            self.settle(true);
            let dispatches = Self::profiled(
                &self.traffic,
                &profiling.dispatch_entries,
                profiling.host_ms,
            );
            let wall_ms = dispatches.iter().map(|d| d.ms).sum();
            return Ok(Profile {
                method: ProfileMethod::Synchronised,
                dispatches,
                wall_ms,
            });
        }
        {
            // Resolve every set into one buffer, then read it back.
            let bytes = u64::from(QUERIES_PER_SET) * 8;
            let total = bytes * profiling.sets.len() as u64;
            let (resolve, readback) = self.gpu.scoped(|| {
                let make = |usage| {
                    inner.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("segblocks profile"),
                        size: total,
                        usage,
                        mapped_at_creation: false,
                    })
                };
                (
                    make(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC),
                    make(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST),
                )
            })?;
            self.pass = None;
            let encoder = self.encoder();
            for (i, set) in profiling.sets.iter().enumerate() {
                let used = (2 * n as u32)
                    .saturating_sub(i as u32 * QUERIES_PER_SET)
                    .min(QUERIES_PER_SET);
                if used > 0 {
                    encoder.resolve_query_set(set, 0..used, &resolve, i as u64 * bytes);
                }
            }
            encoder.copy_buffer_to_buffer(&resolve, 0, &readback, 0, total);
            let traffic = std::mem::take(&mut self.traffic);
            let start = std::time::Instant::now();
            let index = self.finish()?;
            inner
                .device
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(index),
                    timeout: None,
                })
                .map_err(|e| Error::Readback(e.to_string()))?;
            let wall = start.elapsed().as_secs_f64() * 1e3;
            let (tx, rx) = std::sync::mpsc::channel();
            readback.slice(..).map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
            let _ = inner.device.poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: None,
            });
            rx.recv()
                .map_err(|e| Error::Readback(e.to_string()))?
                .map_err(|e| Error::Readback(e.to_string()))?;
            let ticks: Vec<u64> = {
                let view = readback
                    .slice(..)
                    .get_mapped_range()
                    .map_err(|e| Error::Readback(e.to_string()))?;
                bytemuck::cast_slice(&view).to_vec()
            };
            readback.unmap();
            let period = f64::from(inner.queue.get_timestamp_period());
            let ms = (0..n)
                .map(|k| {
                    let at = (k / (QUERIES_PER_SET as usize / 2)) * QUERIES_PER_SET as usize
                        + 2 * (k % (QUERIES_PER_SET as usize / 2));
                    ticks[at + 1].saturating_sub(ticks[at]) as f64 * period / 1e6
                })
                .collect();
            Ok(Profile {
                method: ProfileMethod::Timestamps,
                dispatches: Self::profiled(&traffic, &profiling.dispatch_entries, ms),
                wall_ms: wall,
            })
        }
    }

    fn profiled(
        traffic: &[DispatchTraffic],
        entries: &[usize],
        ms: Vec<f64>,
    ) -> Vec<crate::profile::DispatchProfile> {
        entries
            .iter()
            .zip(ms)
            .map(|(&i, ms)| {
                let t = &traffic[i];
                crate::profile::DispatchProfile {
                    kernel: t.kernel,
                    layer: t.layer.clone(),
                    read: t.read,
                    written: t.written,
                    ms,
                }
            })
            .collect()
    }

    fn note_traffic(&mut self, kernel: &'static str, read: u64, written: u64) {
        self.traffic.push(DispatchTraffic {
            kernel,
            layer: self
                .layers
                .iter()
                .filter(|l| !l.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join("."),
            read,
            written,
        });
    }

    /// What the recording moves so far: each dispatch (and buffer copy) with the layer
    /// that recorded it and the bytes of the tensors it reads and writes.
    pub fn traffic(&self) -> Traffic {
        Traffic {
            dispatches: self.traffic.clone(),
        }
    }

    /// Names the layer whose ops are recorded next (nested names join with `.`), until
    /// the matching [`Recorder::leave_layer`].
    pub(crate) fn enter_layer(&mut self, name: &str) {
        self.layers.push(name.to_string());
    }

    pub(crate) fn leave_layer(&mut self) {
        self.layers.pop();
    }

    /// Uploads the launch's uniform and binds it with `buffers` (absent optional
    /// operands bound to the unused buffer of their slot, texel ones to their texture):
    /// the bind group of an earlier dispatch that bound the same, else a new one.
    fn bind(
        &mut self,
        launch: &Launch,
        pipeline: &wgpu::ComputePipeline,
        buffers: &[Option<&Arc<PooledBuffer>>],
        texels: &[Option<wgpu::Texture>],
    ) -> Result<wgpu::BindGroup> {
        let mut bytes = launch.uniform.clone();
        bytes.resize(bytes.len().div_ceil(16).max(1) * 16, 0);
        let (uniform, offset) = self.param_slot(&bytes)?;
        let inner = &self.gpu.inner;
        let key = BindKey {
            pipeline: pipeline.clone(),
            params: uniform.buffer.clone(),
            params_offset: offset,
            params_size: bytes.len() as u64,
            bound: buffers
                .iter()
                .enumerate()
                .map(|(i, b)| match texels.get(i) {
                    Some(Some(texture)) => Bound::Texels(texture.clone()),
                    _ => Bound::Buffer(b.map_or(&inner.unused[i], |b| &b.buffer).clone()),
                })
                .collect(),
        };
        let cache = inner
            .bind_groups
            .as_ref()
            .map(|groups| groups.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(group) = cache.and_then(|mut groups| groups.get(&key)) {
            return Ok(group);
        }
        let views: Vec<Option<wgpu::TextureView>> = key
            .bound
            .iter()
            .map(|b| match b {
                Bound::Texels(t) => Some(t.create_view(&wgpu::TextureViewDescriptor::default())),
                Bound::Buffer(_) => None,
            })
            .collect();
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &uniform.buffer,
                offset,
                size: wgpu::BufferSize::new(bytes.len() as u64),
            }),
        }];
        for (i, (bound, view)) in key.bound.iter().zip(&views).enumerate() {
            let resource = match (bound, view) {
                (_, Some(view)) => wgpu::BindingResource::TextureView(view),
                (Bound::Buffer(b), None) => b.as_entire_binding(),
                (Bound::Texels(_), None) => unreachable!("a view made for every texture"),
            };
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource,
            });
        }
        let bind_group = self.gpu.scoped(|| {
            inner.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            })
        })?;
        inner.bind_groups_created.fetch_add(1, Ordering::Relaxed);
        if let Some(groups) = &inner.bind_groups {
            let mut groups = groups.lock().unwrap_or_else(|e| e.into_inner());
            groups.insert(key, bind_group.clone());
        }
        Ok(bind_group)
    }

    /// Room for a dispatch's parameters `bytes` in the recording's current
    /// [`ParamChunk`] (a new one where they do not fit): the buffer and the offset to bind.
    fn param_slot(&mut self, bytes: &[u8]) -> Result<(Arc<PooledBuffer>, u64)> {
        let limits = &self.gpu.inner.limits;
        // The parameters bind as a uniform or (`params_in_storage`) a storage buffer.
        let align = limits
            .min_uniform_buffer_offset_alignment
            .max(limits.min_storage_buffer_offset_alignment) as usize;
        let fits = |c: &ParamChunk| {
            c.bytes.len().div_ceil(align) * align + bytes.len() <= c.buffer.buffer.size() as usize
        };
        if !self.params.last().is_some_and(fits) {
            let size = PARAM_CHUNK.max(bytes.len());
            let buffer = self.gpu.alloc(BufferKind::Uniform, size as u64)?;
            self.params.push(ParamChunk {
                buffer,
                bytes: Vec::with_capacity(size),
                written: 0,
            });
        }
        let chunk = self.params.last_mut().expect("pushed above");
        let offset = chunk.bytes.len().div_ceil(align) * align;
        chunk.bytes.resize(offset, 0);
        chunk.bytes.extend_from_slice(bytes);
        Ok((chunk.buffer.clone(), offset as u64))
    }

    /// Writes the parameters recorded since the last call to their buffers (before each
    /// submission: a queue's writes land before the work submitted after them).
    fn flush_params(&mut self) -> Result<()> {
        let queue = &self.gpu.inner.queue;
        let chunks = &mut self.params;
        self.gpu.scoped(|| {
            for c in chunks.iter_mut().filter(|c| c.written < c.bytes.len()) {
                queue.write_buffer(&c.buffer.buffer, c.written as u64, &c.bytes[c.written..]);
                c.written = c.bytes.len();
            }
        })
    }

    /// Copies each buffer bound as [`Access::Texels`] into its texture (vec4 texels,
    /// `TEXEL_ROW` to a row, the format of the buffer's elements), ending the compute
    /// pass; returns the textures to bind, `None` for the other bindings. `sizes` are the
    /// bound values' bytes: a view (the first channels of a tensor) copies its own.
    fn copy_to_texels(
        &mut self,
        launch: &Launch,
        buffers: &[Option<&Arc<PooledBuffer>>],
        sizes: &[Option<u64>],
    ) -> Result<Vec<Option<wgpu::Texture>>> {
        let mut views = Vec::with_capacity(buffers.len());
        for (i, (b, binding)) in buffers.iter().zip(launch.bindings).enumerate() {
            let (Some(b), Access::Texels) = (b, binding.access) else {
                views.push(None);
                continue;
            };
            let (format, texel_bytes) = match b.elem() {
                Elem::F32 => (wgpu::TextureFormat::Rgba32Float, 16u64),
                Elem::F16 => (wgpu::TextureFormat::Rgba16Float, 8u64),
            };
            let bytes = sizes
                .get(i)
                .copied()
                .flatten()
                .map_or(b.used_bytes(), |s| s.min(b.used_bytes()));
            let texels = bytes.div_ceil(texel_bytes).max(1);
            if texels * texel_bytes > b.buffer.size() {
                return Err(Error::Gpu(format!(
                    "{}: `{}` holds {} bytes, not whole texels",
                    launch.file, binding.name, bytes
                )));
            }
            let row = u64::from(TEXEL_ROW);
            let rows = texels.div_ceil(row);
            let max_rows = u64::from(self.gpu.inner.limits.max_texture_dimension_2d);
            if rows > max_rows {
                return Err(Error::TooLarge {
                    name: binding.name,
                    amount: texels,
                    unit: "vec4 texels",
                    limit: max_rows * row,
                    limit_name: "TEXEL_ROW x max_texture_dimension_2d",
                });
            }
            let bucket = (rows as u32).next_power_of_two().min(max_rows as u32);
            let texture = {
                let mut pool = self
                    .gpu
                    .inner
                    .texels
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                pool.entry((i, format, bucket))
                    .or_insert_with(|| {
                        self.gpu
                            .inner
                            .device
                            .create_texture(&wgpu::TextureDescriptor {
                                label: Some("segblocks texels"),
                                size: wgpu::Extent3d {
                                    width: TEXEL_ROW,
                                    height: bucket,
                                    depth_or_array_layers: 1,
                                },
                                mip_level_count: 1,
                                sample_count: 1,
                                dimension: wgpu::TextureDimension::D2,
                                format,
                                usage: wgpu::TextureUsages::TEXTURE_BINDING
                                    | wgpu::TextureUsages::COPY_DST,
                                view_formats: &[],
                            })
                    })
                    .clone()
            };
            self.pass = None;
            let encoder = self.encoder();
            let bytes_per_row = (row * texel_bytes) as u32;
            // Whole rows, then the part of the last one the buffer holds.
            let (full, rest) = (texels / row, texels % row);
            let copies = [(0, full, row), (full, u64::from(rest > 0), rest)];
            for (first, height, width) in copies {
                if height == 0 {
                    continue;
                }
                encoder.copy_buffer_to_texture(
                    wgpu::TexelCopyBufferInfo {
                        buffer: &b.buffer,
                        layout: wgpu::TexelCopyBufferLayout {
                            offset: first * u64::from(bytes_per_row),
                            bytes_per_row: Some(bytes_per_row),
                            rows_per_image: None,
                        },
                    },
                    wgpu::TexelCopyTextureInfo {
                        texture: &texture,
                        mip_level: 0,
                        origin: wgpu::Origin3d {
                            x: 0,
                            y: first as u32,
                            z: 0,
                        },
                        aspect: wgpu::TextureAspect::All,
                    },
                    wgpu::Extent3d {
                        width: width as u32,
                        height: height as u32,
                        depth_or_array_layers: 1,
                    },
                );
            }
            let bytes = texels * texel_bytes;
            self.note_traffic("copy", bytes, bytes);
            views.push(Some(texture));
        }
        Ok(views)
    }

    /// Records a buffer-to-buffer copy of `bytes` bytes.
    pub(crate) fn copy(
        &mut self,
        src: &Arc<PooledBuffer>,
        src_offset: u64,
        dst: &Arc<PooledBuffer>,
        dst_offset: u64,
        bytes: u64,
    ) -> Result<()> {
        check_owner(src.gpu_id, self.gpu, "source")?;
        check_owner(dst.gpu_id, self.gpu, "destination")?;
        self.check_written(src, "source")?;
        // A planning recorder records nothing (see `Gpu::prepare`).
        if bytes == 0 || self.planned.is_some() {
            return Ok(());
        }
        let encoder = self.encoder();
        encoder.copy_buffer_to_buffer(&src.buffer, src_offset, &dst.buffer, dst_offset, bytes);
        self.hold(src);
        self.hold(dst);
        self.note_traffic("copy", bytes, bytes);
        Ok(())
    }

    /// Records a copy of `bytes` bytes from the application's `src` (from `offset`) into
    /// `dst`.
    pub(crate) fn copy_from_buffer(
        &mut self,
        src: &wgpu::Buffer,
        offset: u64,
        dst: &Arc<PooledBuffer>,
        bytes: u64,
    ) -> Result<()> {
        check_owner(dst.gpu_id, self.gpu, "destination")?;
        self.encoder()
            .copy_buffer_to_buffer(src, offset, &dst.buffer, 0, bytes);
        self.hold(dst);
        self.note_traffic("copy", bytes, bytes);
        Ok(())
    }

    /// Records a copy of `bytes` bytes of `src` into the application's `dst` (from
    /// `offset`).
    pub(crate) fn copy_to_buffer(
        &mut self,
        src: &Arc<PooledBuffer>,
        dst: &wgpu::Buffer,
        offset: u64,
        bytes: u64,
    ) -> Result<()> {
        check_owner(src.gpu_id, self.gpu, "source")?;
        self.check_written(src, "source")?;
        self.encoder()
            .copy_buffer_to_buffer(&src.buffer, 0, dst, offset, bytes);
        self.hold(src);
        self.note_traffic("copy", bytes, bytes);
        Ok(())
    }

    /// Records a copy of mip level 0 of the application's 2-D `texture` into `dst`, rows
    /// `bytes_per_row` apart (a multiple of 256).
    pub(crate) fn copy_from_texture(
        &mut self,
        texture: &wgpu::Texture,
        dst: &Arc<PooledBuffer>,
        bytes_per_row: u32,
    ) -> Result<()> {
        check_owner(dst.gpu_id, self.gpu, "destination")?;
        let (rows, extent) = texture_rows(&dst.buffer, bytes_per_row, texture);
        self.encoder()
            .copy_texture_to_buffer(texture.as_image_copy(), rows, extent);
        self.hold(dst);
        let bytes = u64::from(bytes_per_row) * u64::from(extent.height);
        self.note_traffic("copy", bytes, bytes);
        Ok(())
    }

    /// Records a copy of `src` (rows `bytes_per_row` apart, a multiple of 256) into mip
    /// level 0 of the application's 2-D `texture`.
    pub(crate) fn copy_to_texture(
        &mut self,
        src: &Arc<PooledBuffer>,
        bytes_per_row: u32,
        texture: &wgpu::Texture,
    ) -> Result<()> {
        check_owner(src.gpu_id, self.gpu, "source")?;
        self.check_written(src, "source")?;
        let (rows, extent) = texture_rows(&src.buffer, bytes_per_row, texture);
        self.encoder()
            .copy_buffer_to_texture(rows, texture.as_image_copy(), extent);
        self.hold(src);
        let bytes = u64::from(bytes_per_row) * u64::from(extent.height);
        self.note_traffic("copy", bytes, bytes);
        Ok(())
    }

    /// Records zero-filling a whole buffer.
    pub(crate) fn clear(&mut self, buf: &Arc<PooledBuffer>) {
        let encoder = self.encoder();
        encoder.clear_buffer(&buf.buffer, 0, None);
        self.hold(buf);
    }

    fn finish(mut self) -> Result<wgpu::SubmissionIndex> {
        self.pass = None;
        if let Some(why) = self.flush_failed.take() {
            self.settle(false);
            return Err(Error::Gpu(format!(
                "part of this recording's work failed to submit (Recorder::flush): {why}"
            )));
        }
        if let Err(e) = self.flush_params() {
            self.settle(false);
            return Err(e);
        }
        let encoder = self.encoder.take();
        let queue = &self.gpu.inner.queue;
        let index = self
            .gpu
            .scoped(|| queue.submit(encoder.map(|e| e.finish())));
        self.settle(index.is_ok());
        index
    }

    /// Submits everything recorded in one queue submission, without waiting.
    pub fn submit(self) -> Result<()> {
        self.finish().map(|_| ())
    }

    /// Records a copy of each source into its own staging buffer, submits, and starts
    /// mapping them all.
    fn start_readbacks(
        mut self,
        srcs: &[(&Arc<PooledBuffer>, [usize; 4])],
    ) -> Result<Vec<PendingRead>> {
        let mut staged = Vec::with_capacity(srcs.len());
        for &(src, shape) in srcs {
            let len: usize = shape.iter().product();
            let half = src.elem() == Elem::F16;
            // Whole 4-byte words: copies move multiples of 4 bytes.
            let bytes = if half {
                (len as u64).div_ceil(2) * 4
            } else {
                len as u64 * 4
            }
            .max(4);
            let staging = self.gpu.alloc(BufferKind::Readback, bytes)?;
            staging.set_elem(src.elem());
            self.copy(src, 0, &staging, 0, bytes)?;
            staged.push((staging, bytes, shape));
        }
        let gpu = self.gpu.clone();
        let index = self.finish()?;
        Ok(staged
            .into_iter()
            .map(|(staging, bytes, shape)| {
                let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
                staging
                    .buffer
                    .slice(..bytes)
                    .map_async(wgpu::MapMode::Read, move |r| {
                        let _ = tx.send(r);
                    });
                PendingRead {
                    gpu: gpu.clone(),
                    staging,
                    bytes,
                    shape,
                    index: index.clone(),
                    rx,
                    unmapped: false,
                }
            })
            .collect())
    }

    fn start_readback(self, src: &Arc<PooledBuffer>, shape: [usize; 4]) -> Result<PendingRead> {
        let mut reads = self.start_readbacks(&[(src, shape)])?;
        Ok(reads.pop().expect("one read"))
    }

    /// Submits the recording together with a copy of `tensor`, waits, and returns it.
    /// On the web it is [`Error::Unsupported`] (nothing is submitted): use
    /// [`Recorder::download_async`].
    pub fn download(self, tensor: &Tensor) -> Result<Array4<f32>> {
        check_can_block("download", "Recorder::download_async")?;
        tensor.check_gpu(self.gpu, "tensor")?;
        self.start_readback(tensor.pooled(), tensor.shape)?.wait()
    }

    /// Submits the recording together with copies of all `tensors` (one submission, one
    /// wait) and returns them in order: several outputs of one recording, such as a
    /// training step's output and running statistics, or a block's output and its
    /// attention maps. On the web it is [`Error::Unsupported`] (nothing is submitted): use
    /// [`Recorder::download_later`] and [`Download::wait_async`].
    pub fn download_many(self, tensors: &[&Tensor]) -> Result<Vec<Array4<f32>>> {
        check_can_block("download_many", "download_later and Download::wait_async")?;
        for t in tensors {
            t.check_gpu(self.gpu, "tensors")?;
        }
        let srcs: Vec<_> = tensors.iter().map(|t| (t.pooled(), t.shape)).collect();
        let reads = self.start_readbacks(&srcs)?;
        reads.into_iter().map(|r| r.wait()).collect()
    }

    /// Submits the recording together with copies of all `tensors` and returns at once:
    /// the [`Download`] waits for them later. Recording and submitting the next frame
    /// while this one's results are on their way keeps several frames in flight (see
    /// [`FramesInFlight`]).
    pub fn download_later(self, tensors: &[&Tensor]) -> Result<Download> {
        for t in tensors {
            t.check_gpu(self.gpu, "tensors")?;
        }
        let srcs: Vec<_> = tensors.iter().map(|t| (t.pooled(), t.shape)).collect();
        Ok(Download {
            reads: self.start_readbacks(&srcs)?,
        })
    }

    /// Submits the recording together with a copy of `tensor` and resolves when the data
    /// is back. On native targets a helper thread drives the device while the future waits.
    pub async fn download_async(self, tensor: &Tensor) -> Result<Array4<f32>> {
        tensor.check_gpu(self.gpu, "tensor")?;
        self.start_readback(tensor.pooled(), tensor.shape)?
            .wait_async()
            .await
    }

    /// Submits the recording together with a copy of `indices`, waits, and returns them
    /// as `i64`, PyTorch's index type. On the web it is [`Error::Unsupported`] (nothing is
    /// submitted): use [`Recorder::download_indices_async`].
    pub fn download_indices(self, indices: &IndexTensor) -> Result<Array4<i64>> {
        check_can_block("download_indices", "Recorder::download_indices_async")?;
        indices.check_gpu(self.gpu, "indices")?;
        let raw: Array4<i32> = self.start_readback(&indices.buf, indices.shape)?.wait()?;
        Ok(raw.mapv(i64::from))
    }

    /// Async form of [`Recorder::download_indices`].
    pub async fn download_indices_async(self, indices: &IndexTensor) -> Result<Array4<i64>> {
        indices.check_gpu(self.gpu, "indices")?;
        let raw: Array4<i32> = self
            .start_readback(&indices.buf, indices.shape)?
            .wait_async()
            .await?;
        Ok(raw.mapv(i64::from))
    }
}

/// Results of a submitted recording on their way back ([`Recorder::download_later`]).
pub struct Download {
    reads: Vec<PendingRead>,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shapes: Vec<_> = self.reads.iter().map(|r| r.shape).collect();
        f.debug_struct("Download").field("shapes", &shapes).finish()
    }
}

impl Download {
    /// Blocks until every tensor is back; returns them in the order asked. On the web it
    /// is [`Error::Unsupported`]: use [`Download::wait_async`].
    pub fn wait(self) -> Result<Vec<Array4<f32>>> {
        check_can_block("Download::wait", "Download::wait_async")?;
        self.reads.into_iter().map(|r| r.wait()).collect()
    }

    /// Resolves when every tensor is back; returns them in the order asked. On native
    /// targets a helper thread drives the device while the future waits.
    pub async fn wait_async(self) -> Result<Vec<Array4<f32>>> {
        let mut out = Vec::with_capacity(self.reads.len());
        for read in self.reads {
            out.push(read.wait_async().await?);
        }
        Ok(out)
    }
}

/// Keeps up to `depth` submitted frames in flight: [`FramesInFlight::push`] submits a
/// frame's recording and hands back the oldest frame's results once more than `depth`
/// are pending, so that while the caller reads or writes frame `N - depth`, the device
/// works on the frames after it. `T` is the caller's tag for a frame (its index, its
/// start time).
#[derive(Debug)]
pub struct FramesInFlight<T> {
    depth: usize,
    pending: std::collections::VecDeque<(T, Download)>,
}

impl<T> FramesInFlight<T> {
    /// At most `depth` frames waiting (1: the next frame is recorded while the last one
    /// runs; 0 is taken as 1).
    pub fn new(depth: usize) -> Self {
        FramesInFlight {
            depth: depth.max(1),
            pending: Default::default(),
        }
    }

    /// Frames submitted and not yet handed back.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no frame is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Submits `rec` with copies of `outputs` as frame `tag`; returns the oldest frame's
    /// tag and outputs when more than `depth` frames are pending. On the web it is
    /// [`Error::Unsupported`] (nothing is submitted): use [`FramesInFlight::push_async`].
    pub fn push(
        &mut self,
        tag: T,
        rec: Recorder<'_>,
        outputs: &[&Tensor],
    ) -> Result<Option<(T, Vec<Array4<f32>>)>> {
        check_can_block("FramesInFlight::push", "FramesInFlight::push_async")?;
        self.pending.push_back((tag, rec.download_later(outputs)?));
        if self.pending.len() > self.depth {
            return self.pop();
        }
        Ok(None)
    }

    /// Waits for the oldest pending frame. On the web it is [`Error::Unsupported`]: use
    /// [`FramesInFlight::pop_async`].
    pub fn pop(&mut self) -> Result<Option<(T, Vec<Array4<f32>>)>> {
        check_can_block("FramesInFlight::pop", "FramesInFlight::pop_async")?;
        match self.pending.pop_front() {
            Some((tag, download)) => Ok(Some((tag, download.wait()?))),
            None => Ok(None),
        }
    }

    /// [`FramesInFlight::push`] without blocking: the oldest frame's outputs, when more
    /// than `depth` frames are pending, are awaited.
    pub async fn push_async(
        &mut self,
        tag: T,
        rec: Recorder<'_>,
        outputs: &[&Tensor],
    ) -> Result<Option<(T, Vec<Array4<f32>>)>> {
        self.pending.push_back((tag, rec.download_later(outputs)?));
        if self.pending.len() > self.depth {
            return self.pop_async().await;
        }
        Ok(None)
    }

    /// Resolves with the oldest pending frame.
    pub async fn pop_async(&mut self) -> Result<Option<(T, Vec<Array4<f32>>)>> {
        match self.pending.pop_front() {
            Some((tag, download)) => Ok(Some((tag, download.wait_async().await?))),
            None => Ok(None),
        }
    }
}

struct PendingRead {
    gpu: Gpu,
    staging: Arc<PooledBuffer>,
    bytes: u64,
    shape: [usize; 4],
    index: wgpu::SubmissionIndex,
    rx: futures_intrusive::channel::shared::OneshotReceiver<
        std::result::Result<(), wgpu::BufferAsyncError>,
    >,
    /// Set once the data is read and the staging buffer unmapped.
    unmapped: bool,
}

impl Drop for PendingRead {
    /// A read dropped before it finished (a cancelled `download_async`, a failed map) ends
    /// its mapping, pending or done, so that its staging buffer returns to the pool ready
    /// for the next read of its size.
    fn drop(&mut self) {
        if !self.unmapped {
            let _ = self.gpu.scoped(|| self.staging.buffer.unmap());
        }
    }
}

impl PendingRead {
    /// Blocks until the copy is mapped.
    fn wait<T: bytemuck::Pod>(self) -> Result<Array4<T>> {
        self.gpu
            .inner
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(self.index.clone()),
                timeout: None,
            })
            .map_err(|e| {
                self.gpu
                    .poll_lost()
                    .err()
                    .unwrap_or(Error::Readback(e.to_string()))
            })?;
        pollster::block_on(self.finish())
    }

    /// Waits without blocking the caller; a helper thread drives the device on native. On
    /// the web, the errors wgpu reported for the calls before it come first.
    async fn wait_async<T: bytemuck::Pod>(self) -> Result<Array4<T>> {
        self.gpu.errors_async().await?;
        // The helper is joined, also when this future is dropped, never left running:
        // another poll may have delivered the map callback first, and a helper still
        // inside the driver when the process exits corrupts the heap there (seen on Mesa's
        // GL). The join is short: it waits for the one submission only.
        #[cfg(not(target_arch = "wasm32"))]
        let _poller = {
            let device = self.gpu.inner.device.clone();
            let index = self.index.clone();
            JoinOnDrop(Some(std::thread::spawn(move || {
                let _ = device.poll(wgpu::PollType::Wait {
                    submission_index: Some(index),
                    timeout: None,
                });
            })))
        };
        self.finish().await
    }

    async fn finish<T: bytemuck::Pod>(mut self) -> Result<Array4<T>> {
        match self.rx.receive().await {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                self.gpu.poll_lost()?;
                return Err(Error::Readback(e.to_string()));
            }
            None => return Err(Error::Readback("map callback dropped".into())),
        }
        let len: usize = self.shape.iter().product();
        let data = {
            let view = self
                .staging
                .buffer
                .slice(..self.bytes)
                .get_mapped_range()
                .map_err(|e| Error::Readback(e.to_string()))?;
            match self.staging.elem() {
                Elem::F32 => bytemuck::cast_slice::<u8, T>(&view)[..len].to_vec(),
                // f16 tensors are read back as f32 (the only type they are read as).
                Elem::F16 => {
                    let wide: Vec<f32> = bytemuck::cast_slice::<u8, half::f16>(&view)[..len]
                        .iter()
                        .map(|h| h.to_f32())
                        .collect();
                    bytemuck::cast_slice::<f32, T>(&wide).to_vec()
                }
            }
        };
        self.gpu.scoped(|| self.staging.buffer.unmap())?;
        self.unmapped = true;
        Array4::from_shape_vec(self.shape, data).map_err(|e| Error::Readback(e.to_string()))
    }
}

/// A thread joined when this is dropped.
#[cfg(not(target_arch = "wasm32"))]
struct JoinOnDrop(Option<std::thread::JoinHandle<()>>);

#[cfg(not(target_arch = "wasm32"))]
impl Drop for JoinOnDrop {
    fn drop(&mut self) {
        if let Some(thread) = self.0.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{size_class, Gpu, GpuOptions, LruCache};

    #[test]
    fn a_full_cache_evicts_its_least_recently_used_in_batches() {
        let mut one = LruCache::new(3);
        for k in 0..3 {
            one.insert(k, k);
        }
        assert_eq!(one.get(&0), Some(0));
        one.insert(3, 3);
        // 1 was used least recently.
        assert!(!one.contains(&1) && one.contains(&0) && one.len() == 3);
        let mut batch = LruCache::new(8).evicting(4);
        for k in 0..8 {
            batch.insert(k, k);
        }
        for k in [0, 2, 4, 6] {
            assert_eq!(batch.get(&k), Some(k));
        }
        batch.insert(8, 8);
        let mut kept: Vec<i32> = (0..9).filter(|k| batch.contains(k)).collect();
        kept.sort();
        assert_eq!(kept, [0, 2, 4, 6, 8]);
        // Inserting a key already there evicts nothing.
        batch.insert(8, 9);
        assert_eq!((batch.len(), batch.get(&8)), (5, Some(9)));
    }

    #[test]
    fn poisoned_outputs_read_nan_until_written() {
        let poisoned = Gpu::with_options(GpuOptions {
            poison_outputs: true,
            ..GpuOptions::default()
        })
        .unwrap();
        let mut rec = poisoned.recorder();
        let t = rec.empty("t", [1, 2, 3, 5]).unwrap();
        let got = rec.download(&t).unwrap();
        assert!(got.iter().all(|v| v.is_nan()), "{got:?}");
        // Without the option a new buffer holds zeros.
        let plain = Gpu::new().unwrap();
        let mut rec = plain.recorder();
        let t = rec.empty("t", [1, 2, 3, 5]).unwrap();
        assert!(rec.download(&t).unwrap().iter().all(|&v| v == 0.0));
    }

    #[test]
    fn size_classes_round_up_and_waste_little() {
        assert_eq!(size_class(1), 256);
        assert_eq!(size_class(256), 256);
        assert_eq!(size_class(257), 512);
        // Saturates instead of overflowing: a size past every limit stays past it.
        assert!(size_class(u64::MAX) > u64::MAX / 2);
        for n in [1000u64, 4097, 100_000, 12_845_056, 1 << 30] {
            let c = size_class(n);
            assert!(
                c >= n && (c - n) as f64 <= 0.125 * n as f64 + 256.0,
                "{n} -> {c}"
            );
        }
    }
}
