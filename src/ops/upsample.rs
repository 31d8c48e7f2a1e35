//! Upsampling with PyTorch's semantics (`F.interpolate` / `nn.Upsample`): nearest (the
//! `'nearest'` index rule), nearest-exact, bilinear and bicubic with `align_corners` true
//! or false, area (adaptive average pooling to the output size), bed-of-nails zero
//! insertion (the seeds' unpooling: each input lands at `(y * s, x * s)`, zeros
//! elsewhere; PyTorch has no such op), and pixel shuffle / unshuffle (depth to space and
//! back, the sub-pixel convolution's rearrangement).
//!
//! Source positions and blend weights are computed per axis on the host with PyTorch's
//! own single-precision formulas (`nearest_idx`, `area_pixel_compute_source_index`), so
//! they match PyTorch bit for bit; the GPU gathers and blends.

use super::conv::InputGate;
use super::Activation;
use super::Cost;
use crate::error::{fail_if, invalid, Result};
use crate::gpu::{check_dims, Recorder, Tensor};
use crate::launch::{
    loop_nest, read, read_opt, specialize, uniform, write, Args, Count, Kernel, KernelInfo, Launch,
    Specialize, Trip, LOOP_BUDGET,
};

uniform! {
    /// `shaders/resample_int.wgsl`.
    pub(crate) struct ResampleIntParams {
        rows: u32,
        w4: u32,
        h: u32,
        c: u32,
        extra: u32,
        off: u32,
    }
}

uniform! {
    /// `shaders/bilinear_int.wgsl`.
    pub(crate) struct BilinearIntParams {
        planes: u32,
        h: u32,
        w: u32,
        w4: u32,
        total: u32,
        c: u32,
        extra: u32,
        off: u32,
    }
}

uniform! {
    /// `shaders/resample.wgsl` and `shaders/bilinear_strips.wgsl`: strips of
    /// [`RESAMPLE_PX`] outputs in each row group's rows, and the output's channel window.
    pub(crate) struct ResampleParams {
        planes: u32,
        h: u32,
        w: u32,
        oh: u32,
        ow: u32,
        groups: u32,
        strips_x: u32,
        total: u32,
        c: u32,
        extra: u32,
        off: u32,
    }
}

/// Where a resampling kernel writes: channels `offset .. offset + channels` of a tensor
/// of `total` channels (`window_plane` in `shaders/common.wgsl`); the whole output when
/// `total == channels`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ChannelWindow {
    channels: usize,
    total: usize,
    offset: usize,
}

impl ChannelWindow {
    fn whole(channels: usize) -> Self {
        ChannelWindow {
            channels,
            total: channels,
            offset: 0,
        }
    }

    /// The uniform fields `(c, extra, off)`.
    fn fields(self) -> (u32, u32, u32) {
        (
            self.channels as u32,
            (self.total - self.channels) as u32,
            self.offset as u32,
        )
    }
}

/// A residual sum fused into a resize's store (`ADDEND` and `SUM_ACT` of the resampling
/// kernels): with `Some(act)` each output is `act(residual + resized)` and the resized
/// map is never stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct Addend(Option<Activation>);

impl Specialize for Addend {
    fn write(&self, c: &mut crate::launch::Constants) {
        c.set("ADDEND", u32::from(self.0.is_some()));
        c.set("SUM_ACT", self.0.map_or(0, |a| a.shader_code()));
    }
}

specialize! {
    /// The constants of `resample.wgsl`: `MODE` (0 nearest, 1 bilinear, 2 bed-of-nails,
    /// 3 bicubic) and the fused residual sum.
    struct ResampleSpec { mode: u32 => "MODE", addend: Addend }
}

specialize! {
    /// The constants of `resample_int.wgsl`: the factors, the zero insertion and the
    /// fused residual sum.
    struct ResampleIntSpec {
        sy: Count => "SY", sx: Count => "SX", bed_of_nails: bool => "BED_OF_NAILS",
        addend: Addend
    }
}

specialize! {
    /// The constants of `bilinear_int.wgsl`: the factor, the input pixels per invocation
    /// ([`bilinear_int_pixels`]), the gated skip and the fused residual sum.
    struct BilinearIntSpec {
        factor: Count => "S", pixels: Count => "TP", gate: InputGate, addend: Addend
    }
}

/// Input pixels per invocation of `bilinear_int.wgsl` (`TP`): its whole vec4 while that
/// makes at most 16 outputs, else 16 / factor (lavapipe left longer register arrays
/// rolled up: factor 8 ran 1.6x slower than the tap kernel with 32 outputs, 16 with 64
/// 3.3x).
fn bilinear_int_pixels(factor: usize) -> usize {
    (16 / factor).clamp(1, 4)
}

const RESAMPLE: Kernel<ResampleParams, ResampleSpec> = Kernel::new(
    "resample.wgsl",
    &[
        read("x"),
        read("groups"),
        read("rows"),
        read("cols"),
        write("y"),
        read_opt("res"),
    ],
);
specialize! {
    /// The constants of `bilinear_strips.wgsl`: `SPAN` (the input vec4s per strip and
    /// row, 2 or 3) and the fused residual sum.
    struct BilinearStripsSpec { span: Count => "SPAN", addend: Addend }
}

const BILINEAR_STRIPS: Kernel<ResampleParams, BilinearStripsSpec> = Kernel::new(
    "bilinear_strips.wgsl",
    &[
        read("x4"),
        read("groups"),
        read("row_l1"),
        read("strips"),
        write("y"),
        read_opt("res"),
    ],
);

/// The outputs of a row per invocation of `resample.wgsl` and `bilinear_strips.wgsl`
/// (their `PX`); the strip kernel's table packs one 4-bit first column per output into a
/// u32 and their weights into two vec4s.
const RESAMPLE_PX: usize = 8;

/// The most output rows one invocation of `resample.wgsl` or `bilinear_strips.wgsl`
/// writes (a row group: consecutive rows that read the same input rows), so that a large
/// vertical factor still spreads over many invocations.
const STRIP_GROUP_ROWS: usize = 8;

/// Row groups of the resampling kernels: runs of at most [`STRIP_GROUP_ROWS`]
/// consecutive output rows with the same input rows `keys[oy]`, as `[first row, rows,
/// key[0], key[1]]`.
fn row_groups(keys: impl IntoIterator<Item = [u32; 4]>) -> Vec<[u32; 4]> {
    let mut groups: Vec<([u32; 4], [u32; 4])> = Vec::new();
    for (oy, key) in keys.into_iter().enumerate() {
        match groups.last_mut() {
            Some((k, g)) if *k == key && g[1] < STRIP_GROUP_ROWS as u32 => g[1] += 1,
            _ => groups.push((key, [oy as u32, 1, key[0], key[1]])),
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

/// The uniform of `resample.wgsl` and `bilinear_strips.wgsl` for `groups` row groups
/// of `out`, and its invocations.
fn resample_params(
    s: [usize; 4],
    out: [usize; 4],
    groups: usize,
    window: ChannelWindow,
) -> (ResampleParams, usize) {
    let (c, extra, off) = window.fields();
    let (planes, strips_x) = (s[0] * s[1], out[3].div_ceil(RESAMPLE_PX));
    let total = planes * groups * strips_x;
    let u = ResampleParams {
        planes: planes as u32,
        h: s[2] as u32,
        w: s[3] as u32,
        oh: out[2] as u32,
        ow: out[3] as u32,
        groups: groups as u32,
        strips_x: strips_x as u32,
        total: total as u32,
        c,
        extra,
        off,
    };
    (u, total)
}

/// The host-computed tables of `bilinear_strips.wgsl` (see its header).
struct BilinearStripTables {
    /// Three entries per strip of [`RESAMPLE_PX`] outputs.
    strips: Vec<[u32; 4]>,
    /// Per row group: its first output row, row count and two input rows.
    groups: Vec<[u32; 4]>,
    /// Per output row: the second input row's weight.
    row_l1: Vec<f32>,
    /// The input vec4s each strip reads per row (2 or 3).
    span: usize,
}

/// The host tables a resampling dispatch reads, built once by [`plan`] for the recording.
enum ResampleTables {
    /// The integer-factor kernels compute their taps in the shader.
    Computed,
    /// `bilinear_strips.wgsl`'s.
    Strips(BilinearStripTables),
    /// `resample.wgsl`'s row taps and row groups (its column taps are built when recorded).
    Taps {
        rows: Vec<[u32; 4]>,
        groups: Vec<[u32; 4]>,
    },
}
const RESAMPLE_INT: Kernel<ResampleIntParams, ResampleIntSpec> = Kernel::new(
    "resample_int.wgsl",
    &[read("x"), write("y"), read_opt("res")],
);
const BILINEAR_INT: Kernel<BilinearIntParams, BilinearIntSpec> = Kernel::new(
    "bilinear_int.wgsl",
    &[read("x4"), write("y"), read_opt("skip"), read_opt("gate")],
);

uniform! {
    /// `shaders/pixel_shuffle.wgsl`.
    pub(crate) struct PixelShuffleParams {
        total: u32,
        c_out: u32,
        oh: u32,
        ow: u32,
        c_in: u32,
        h: u32,
        w: u32,
        r: u32,
    }
}

specialize! {
    /// `MODE` of `pixel_shuffle.wgsl`: 0 shuffle (depth to space), 1 unshuffle.
    struct PixelShuffleSpec { unshuffle: bool => "MODE" }
}

const PIXEL_SHUFFLE: Kernel<PixelShuffleParams, PixelShuffleSpec> =
    Kernel::new("pixel_shuffle.wgsl", &[read("x"), write("y")]);

uniform! {
    /// `shaders/resample_aa.wgsl`.
    pub(crate) struct AaParams {
        total: u32,
        h: u32,
        w: u32,
        oh: u32,
        ow: u32,
        k: u32,
    }
}

specialize! {
    /// `AXIS` of `resample_aa.wgsl`: 0 along the rows (W), 1 along the columns (H).
    struct AaSpec { columns: bool => "AXIS" }
}

const RESAMPLE_AA: Kernel<AaParams, AaSpec> = Kernel::new(
    "resample_aa.wgsl",
    &[read("x"), read("spans"), read("weights"), write("y")],
);

/// The kernels of this family.
pub(crate) const KERNELS: &[&dyn KernelInfo] = &[
    &RESAMPLE,
    &BILINEAR_STRIPS,
    &RESAMPLE_INT,
    &BILINEAR_INT,
    &PIXEL_SHUFFLE,
    &RESAMPLE_AA,
];

/// PyTorch's antialiasing filter weights along one axis (`_compute_weights_aa` of
/// `UpSampleKernel.cpp`, in f32 as it computes them for float tensors): for each output
/// position the first input, the count, and the normalised weights; the support is the
/// filter's (1 for bilinear, 2 for bicubic) times the downscale factor when downsampling.
pub(crate) fn antialias_weights(
    input: usize,
    out: usize,
    scale: Option<f64>,
    (bicubic, align_corners): (bool, bool),
) -> Vec<(usize, Vec<f32>)> {
    if input == out {
        // PyTorch skips an axis whose size does not change, whatever the scale factor.
        return (0..out).map(|i| (i, vec![1.0])).collect();
    }
    let scale = if align_corners {
        if out > 1 {
            (input - 1) as f32 / (out - 1) as f32
        } else {
            0.0
        }
    } else {
        scale_value(scale, input, out)
    };
    let interp = if bicubic { 4.0f32 } else { 2.0 };
    let support = if scale >= 1.0 {
        interp * 0.5 * scale
    } else {
        interp * 0.5
    };
    let invscale = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
    let filter = |x: f32| {
        let x = x.abs();
        if bicubic {
            // Keys' cubic with A = -0.5 (PyTorch's antialiased bicubic).
            const A: f32 = -0.5;
            if x < 1.0 {
                ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
            } else if x < 2.0 {
                ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
            } else {
                0.0
            }
        } else if x < 1.0 {
            1.0 - x
        } else {
            0.0
        }
    };
    (0..out)
        .map(|i| {
            let center = scale * (i as f32 + 0.5);
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64)
                .min(input as i64)
                .max(xmin as i64);
            let mut w: Vec<f32> = (xmin..xmax as usize)
                .map(|j| filter((j as f32 - center + 0.5) * invscale))
                .collect();
            let total: f32 = w.iter().sum();
            if total != 0.0 {
                w.iter_mut().for_each(|v| *v /= total);
            }
            (xmin, w)
        })
        .collect()
}

/// One antialiased pass from `input` to `out` along the rows (W) or the `columns` (H).
fn record_antialias(
    rec: &mut Recorder<'_>,
    params: &UpsampleParams,
    (input, columns): (&Tensor, bool),
    out: [usize; 4],
    scales: Option<(f64, f64)>,
) -> Result<Tensor> {
    let s = input.shape();
    let (len_in, len_out, scale) = match columns {
        false => (s[3], out[3], scales.map(|f| f.1)),
        true => (s[2], out[2], scales.map(|f| f.0)),
    };
    let (bicubic, align_corners) = match params.mode {
        UpsampleMode::Bicubic { align_corners } => (true, align_corners),
        UpsampleMode::Bilinear { align_corners } => (false, align_corners),
        _ => (false, false),
    };
    // The output and the tables within the device's limits before any table is built.
    let y = rec.empty("output", out)?;
    rec.gpu()
        .check_binding_size("spans", (len_out as u64).saturating_mul(8))?;
    let taps = antialias_weights(len_in, len_out, scale, (bicubic, align_corners));
    let k = taps.iter().map(|(_, w)| w.len()).max().unwrap_or(1).max(1);
    let table_bytes = (len_out as u64).saturating_mul(4 * k as u64);
    rec.gpu().check_binding_size("weights", table_bytes)?;
    let mut spans = Vec::with_capacity(2 * len_out);
    let mut weights = vec![0f32; len_out * k];
    for (j, (start, w)) in taps.iter().enumerate() {
        spans.extend([*start as u32, w.len() as u32]);
        weights[j * k..j * k + w.len()].copy_from_slice(w);
    }
    let gpu = rec.gpu();
    let (spans, weights) = (
        gpu.upload_slice("spans", &spans)?,
        gpu.upload_f32("weights", &weights)?,
    );
    let total = out.iter().product::<usize>();
    let u = AaParams {
        total: total as u32,
        h: s[2] as u32,
        w: s[3] as u32,
        oh: out[2] as u32,
        ow: out[3] as u32,
        k: k as u32,
    };
    let launch = RESAMPLE_AA
        .launch(&AaSpec { columns }, &u)
        .threads(total)
        .loops(k as u64);
    let args = Args::new()
        .read("x", input)
        .read("spans", &spans)
        .read("weights", &weights)
        .write("y", &y);
    rec.run(&launch, args)?;
    Ok(y)
}

/// The output shape of `F.pixel_shuffle(x, upscale_factor)` on `input`: `[N, C / r^2,
/// H r, W r]`, with `C` divisible by `r^2`.
pub fn pixel_shuffle_shape(input: [usize; 4], upscale_factor: usize) -> Result<[usize; 4]> {
    check_dims("input", &input)?;
    let r = upscale_factor;
    let rr = r.checked_mul(r).filter(|&rr| rr > 0);
    let Some(rr) = rr.filter(|rr| input[1].is_multiple_of(*rr)) else {
        return Err(invalid(
            "upscale_factor",
            format!(
                "{r}: the channels ({}) must be divisible by its square",
                input[1]
            ),
        ));
    };
    let out = [
        input[0],
        input[1] / rr,
        input[2].saturating_mul(r),
        input[3].saturating_mul(r),
    ];
    check_dims("output", &out)?;
    Ok(out)
}

/// The output shape of `F.pixel_unshuffle(x, downscale_factor)` on `input`: `[N, C r^2,
/// H / r, W / r]`, with `H` and `W` divisible by `r`.
pub fn pixel_unshuffle_shape(input: [usize; 4], downscale_factor: usize) -> Result<[usize; 4]> {
    check_dims("input", &input)?;
    let r = downscale_factor;
    fail_if(
        r == 0 || !input[2].is_multiple_of(r) || !input[3].is_multiple_of(r),
        "downscale_factor",
        || {
            format!(
                "{r}: the height and width ({}, {}) must be divisible by it",
                input[2], input[3]
            )
        },
    )?;
    let out = [
        input[0],
        input[1].saturating_mul(r.saturating_mul(r)),
        input[2] / r,
        input[3] / r,
    ];
    check_dims("output", &out)?;
    Ok(out)
}

/// Records `F.pixel_shuffle(x, upscale_factor)` (depth to space, the sub-pixel
/// convolution's rearrangement): `y[n, c, h r + i, w r + j] = x[n, c r^2 + i r + j, h,
/// w]`.
pub fn pixel_shuffle(rec: &mut Recorder<'_>, x: &Tensor, upscale_factor: usize) -> Result<Tensor> {
    x.check_gpu(rec.gpu(), "input")?;
    let out = pixel_shuffle_shape(x.shape(), upscale_factor)?;
    record_pixel_shuffle(rec, x, out, upscale_factor, false)
}

/// Records `F.pixel_unshuffle(x, downscale_factor)` (space to depth), the inverse of
/// [`pixel_shuffle`].
pub fn pixel_unshuffle(
    rec: &mut Recorder<'_>,
    x: &Tensor,
    downscale_factor: usize,
) -> Result<Tensor> {
    x.check_gpu(rec.gpu(), "input")?;
    let out = pixel_unshuffle_shape(x.shape(), downscale_factor)?;
    record_pixel_shuffle(rec, x, out, downscale_factor, true)
}

fn record_pixel_shuffle(
    rec: &mut Recorder<'_>,
    x: &Tensor,
    out: [usize; 4],
    r: usize,
    unshuffle: bool,
) -> Result<Tensor> {
    let s = x.shape();
    let y = rec.empty("output", out)?;
    let total = out.iter().product::<usize>();
    let u = PixelShuffleParams {
        total: total as u32,
        c_out: out[1] as u32,
        oh: out[2] as u32,
        ow: out[3] as u32,
        c_in: s[1] as u32,
        h: s[2] as u32,
        w: s[3] as u32,
        r: r as u32,
    };
    let launch = PIXEL_SHUFFLE
        .launch(&PixelShuffleSpec { unshuffle }, &u)
        .threads(total);
    rec.run(&launch, Args::new().read("x", x).write("y", &y))?;
    Ok(y)
}

/// The kernels an upsampling can run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpsampleKernel {
    /// Per-axis tap tables computed on the host with PyTorch's formulas
    /// (`resample.wgsl`): every mode, size and scale. Each invocation blends a strip of 8
    /// columns along the input rows it reads once, for up to 8 output rows that read the
    /// same ones.
    Taps,
    /// Integer-factor replication (`resample_int.wgsl`): nearest whose PyTorch index rule
    /// gives exactly `o / k` on both axes, or bed-of-nails, with an input width divisible
    /// by 4. Reads a vec4 and writes `sx` vec4s per row: about copy speed.
    Integer {
        /// `(sy, sx)`.
        factors: (usize, usize),
    },
    /// Bilinear upsampling by 2, 4, 8 or 16 on both axes with `align_corners = False`
    /// (`bilinear_int.wgsl`), whose per-phase weights are checked against PyTorch's tap
    /// formula, with an input width divisible by 4.
    BilinearInt {
        /// The factor.
        factor: usize,
    },
    /// Bilinear resampling (`bilinear_strips.wgsl`) where the width grows, stays or
    /// shrinks a little, with input and output widths divisible by 4: each strip of 8
    /// outputs of a row reads its source columns from two or three vec4s of each input
    /// row (the host checks every strip), for up to 8 output rows that read the same
    /// input rows. The tap kernel's weights in its order, with a fraction of its loads,
    /// and vec4 stores.
    BilinearStrips,
    /// `mode='area'`: adaptive average pooling to the output size
    /// ([`adaptive_avg_pool2d`](super::pool::adaptive_avg_pool2d)'s kernel), as PyTorch
    /// computes it.
    Area,
    /// `antialias=True`: rows then columns, each output a normalised weighted sum over
    /// its (widened) support (`resample_aa.wgsl`).
    Antialias,
}

/// The kernel the library runs for `params` on `input`: the vector kernels where they
/// apply, the tap tables otherwise.
pub fn select_kernel(params: &UpsampleParams, input: [usize; 4]) -> UpsampleKernel {
    if params.mode == UpsampleMode::Area {
        return UpsampleKernel::Area;
    }
    if params.antialias {
        return UpsampleKernel::Antialias;
    }
    let factors = params.integer_factors(input);
    if let Some(factors) = factors.filter(|&f| integer_loops(f) <= LOOP_BUDGET) {
        UpsampleKernel::Integer { factors }
    } else if let Some(factor) = params.bilinear_int_factor(input) {
        UpsampleKernel::BilinearInt { factor }
    } else if params.bilinear_strips(input).is_some() {
        UpsampleKernel::BilinearStrips
    } else {
        UpsampleKernel::Taps
    }
}

impl UpsampleKernel {
    /// Whether this kernel can run `params` on `input` (any valid configuration but
    /// `mode='area'` runs on [`UpsampleKernel::Taps`]; that one on
    /// [`UpsampleKernel::Area`]).
    pub fn supports(self, params: &UpsampleParams, input: [usize; 4]) -> bool {
        let area = params.mode == UpsampleMode::Area;
        let aa = params.antialias;
        match self {
            UpsampleKernel::Area => area && params.output_shape(input).is_ok(),
            UpsampleKernel::Antialias => aa && params.output_shape(input).is_ok(),
            _ if aa => false,
            UpsampleKernel::Taps => !area && params.output_shape(input).is_ok(),
            UpsampleKernel::Integer { factors } => params.integer_factors(input) == Some(factors),
            UpsampleKernel::BilinearInt { factor } => {
                params.bilinear_int_factor(input) == Some(factor)
            }
            UpsampleKernel::BilinearStrips => params.bilinear_strips(input).is_some(),
        }
    }
}

/// The longest output axis whose source indices the vector kernels' choice checks one by
/// one against PyTorch's formulas (longer ones take the tap kernel, which is exact by
/// construction, instead of a long check on the host).
const VERIFIED_LEN: usize = 1 << 20;

/// Loop iterations of one `resample_int.wgsl` invocation (its rows and vec4 runs are
/// constant loops; large factors stay loops).
fn integer_loops((sy, sx): (usize, usize)) -> u64 {
    loop_nest(&[
        Trip::Constant(sy as u64),
        Trip::Constant(sx as u64),
        Trip::Constant(4),
    ])
}

/// Records the upsampling of `input` (`F.interpolate` / `nn.Upsample`, or bed-of-nails)
/// with the kernel [`select_kernel`] picks.
pub fn upsample(rec: &mut Recorder<'_>, params: &UpsampleParams, input: &Tensor) -> Result<Tensor> {
    upsample_with(rec, params, input, select_kernel(params, input.shape()))
}

/// [`upsample`] with a chosen kernel (an error if it does not apply).
pub fn upsample_with(
    rec: &mut Recorder<'_>,
    params: &UpsampleParams,
    input: &Tensor,
    kernel: UpsampleKernel,
) -> Result<Tensor> {
    input.check_gpu(rec.gpu(), "input")?;
    let s = input.shape();
    let out = params.output_shape(s)?;
    if kernel == UpsampleKernel::Area && kernel.supports(params, s) {
        let pool = super::pool::AdaptiveAvgPool2dParams::new((out[2], out[3]));
        return super::pool::adaptive_avg_pool2d(rec, &pool, input);
    }
    if kernel == UpsampleKernel::Antialias && kernel.supports(params, s) {
        let f = params.kernel_scales();
        let rows = record_antialias(rec, params, (input, false), [s[0], s[1], s[2], out[3]], f)?;
        return record_antialias(rec, params, (&rows, true), out, f);
    }
    resample_to_new(rec, params, (input, out), kernel, None)
}

/// One dispatch of a resampling kernel (not the pooled ones) from `input` into a new
/// tensor of shape `out`, with `addend`'s residual sum fused into the store.
fn resample_to_new(
    rec: &mut Recorder<'_>,
    params: &UpsampleParams,
    (input, out): (&Tensor, [usize; 4]),
    kernel: UpsampleKernel,
    addend: Option<(&Tensor, Activation)>,
) -> Result<Tensor> {
    let y = rec.empty("output", out)?;
    let window = ChannelWindow::whole(input.shape()[1]);
    record_resample(rec, params, (input, out), kernel, (&y, window), addend)?;
    Ok(y)
}

/// `act(residual + F.interpolate(input, ...))` in one pass: the resize's store adds the
/// residual (of the output's shape) and applies `act`, so the resized map is never
/// stored and read back. These sums are where high- and low-resolution branches meet:
/// DDRNet's and PIDNet's bilateral fusions and pyramid scales, HRNet's fuse layers, the
/// top-down paths of FPN and UPerNet. The graphs of the networks run every resize whose
/// only use is such a sum this way. Area and antialiased resizes, which build their
/// output in passes of their own, resize and then add.
///
/// Errors: `residual` not of the output's shape ([`Error::ShapeMismatch`] naming
/// `residual`), and [`upsample`]'s.
///
/// [`Error::ShapeMismatch`]: crate::Error::ShapeMismatch
pub fn upsample_add(
    rec: &mut Recorder<'_>,
    params: &UpsampleParams,
    input: &Tensor,
    residual: &Tensor,
    act: Activation,
) -> Result<Tensor> {
    let kernel = select_kernel(params, input.shape());
    upsample_add_with(rec, params, input, (residual, act), kernel)
}

/// [`upsample_add`] with a chosen kernel (an error if it does not apply).
pub fn upsample_add_with(
    rec: &mut Recorder<'_>,
    params: &UpsampleParams,
    input: &Tensor,
    (residual, act): (&Tensor, Activation),
    kernel: UpsampleKernel,
) -> Result<Tensor> {
    let gpu = rec.gpu();
    input.check_gpu(gpu, "input")?;
    residual.check_gpu(gpu, "residual")?;
    let s = input.shape();
    let out = params.output_shape(s)?;
    super::same_shape("residual", out, residual.shape())?;
    if matches!(kernel, UpsampleKernel::Area | UpsampleKernel::Antialias) {
        let y = upsample_with(rec, params, input, kernel)?;
        return super::channel::add(rec, residual, &y, act);
    }
    resample_to_new(rec, params, (input, out), kernel, Some((residual, act)))
}

/// [`upsample`] written into channels `channel_offset .. channel_offset + C` of `output`
/// (`[N, C_out, H_out, W_out]`) instead of a new tensor: the resized part of a
/// concatenation (`torch.cat([F.interpolate(x, ...), skip], dim=1)`) stored where the
/// concatenation keeps it, with no copy. The other channels of `output` are left as they
/// are. The graphs of the networks do this for every resize whose only use is a
/// concatenation. Area and antialiased resizes, which build their output in passes of
/// their own, resize and then copy into the window.
///
/// Errors: `output` of another N, size or too few channels for `channel_offset`
/// ([`Error::ShapeMismatch`](crate::Error::ShapeMismatch) naming `output`), `output`
/// sharing `input`'s buffer (`InvalidParam` naming `output`), and [`upsample`]'s.
pub fn upsample_into(
    rec: &mut Recorder<'_>,
    params: &UpsampleParams,
    input: &Tensor,
    output: &Tensor,
    channel_offset: usize,
) -> Result<()> {
    let gpu = rec.gpu();
    input.check_gpu(gpu, "input")?;
    output.check_gpu(gpu, "output")?;
    let s = input.shape();
    let out = params.output_shape(s)?;
    let total = output.shape()[1];
    let fits = channel_offset
        .checked_add(s[1])
        .is_some_and(|end| end <= total);
    if !fits
        || [output.shape()[0], output.shape()[2], output.shape()[3]] != [out[0], out[2], out[3]]
    {
        return Err(crate::error::Error::ShapeMismatch {
            name: "output",
            expected: vec![out[0], channel_offset.saturating_add(s[1]), out[2], out[3]],
            actual: output.shape().to_vec(),
        });
    }
    fail_if(output.shares_buffer(input), "output", || {
        "is a view of the input's buffer; the resize cannot write where it reads".to_string()
    })?;
    let window = ChannelWindow {
        channels: s[1],
        total,
        offset: channel_offset,
    };
    let kernel = select_kernel(params, s);
    if matches!(kernel, UpsampleKernel::Area | UpsampleKernel::Antialias) {
        // Pooled resizes record their own passes: resize, then copy into the window.
        let y = upsample_with(rec, params, input, kernel)?;
        return super::channel::copy_into_channels(rec, &y, output, channel_offset);
    }
    record_resample(rec, params, (input, out), kernel, (output, window), None)
}

/// One dispatch of a resampling kernel (not the pooled ones) from `input` to the output
/// shape `out` (`params.output_shape` of the input's), into `y`'s `window`, with
/// `addend`'s residual sum fused into the store (then `window` is the whole of `y`, the
/// residual of its shape).
fn record_resample(
    rec: &mut Recorder<'_>,
    params: &UpsampleParams,
    (input, out): (&Tensor, [usize; 4]),
    kernel: UpsampleKernel,
    (y, window): (&Tensor, ChannelWindow),
    addend: Option<(&Tensor, Activation)>,
) -> Result<()> {
    let s = input.shape();
    let (launch, host_tables) = plan(params, s, out, kernel, window, addend.map(|a| a.1))?;
    let (tables, strip_tables);
    let args = match host_tables {
        ResampleTables::Computed if matches!(kernel, UpsampleKernel::Integer { .. }) => {
            Args::new().read("x", input)
        }
        ResampleTables::Computed => Args::new().read("x4", input),
        ResampleTables::Strips(t) => {
            let gpu = rec.gpu();
            gpu.check_binding_size("groups", 16 * t.groups.len() as u64)?;
            gpu.check_binding_size("row_l1", 4 * t.row_l1.len() as u64)?;
            gpu.check_binding_size("strips", 16 * t.strips.len() as u64)?;
            strip_tables = (
                gpu.upload_slice("groups", &t.groups)?,
                gpu.upload_slice("row_l1", &t.row_l1)?,
                gpu.upload_slice("strips", &t.strips)?,
            );
            Args::new()
                .read("x4", input)
                .read("groups", &strip_tables.0)
                .read("row_l1", &strip_tables.1)
                .read("strips", &strip_tables.2)
        }
        ResampleTables::Taps { rows, groups } => {
            // The per-axis tap tables, computed on the host with PyTorch's formulas (after
            // checking that the device can hold them), and the row groups.
            let per_entry = if params.mode.is_bicubic() { 32 } else { 16 };
            let table_bytes = |len: usize| (len as u64).saturating_mul(per_entry);
            rec.gpu().check_binding_size("rows", table_bytes(out[2]))?;
            rec.gpu().check_binding_size("cols", table_bytes(out[3]))?;
            let f = params.kernel_scales();
            let cols = params.taps(s[3], out[3], f.map(|f| f.1), 1);
            let gpu = rec.gpu();
            tables = (
                gpu.upload_slice("rows", &rows)?,
                gpu.upload_slice("cols", &cols)?,
                gpu.upload_slice("groups", &groups)?,
            );
            Args::new()
                .read("x", input)
                .read("groups", &tables.2)
                .read("rows", &tables.0)
                .read("cols", &tables.1)
        }
    };
    let args = match addend {
        // bilinear_int.wgsl reads its residual as the skip of its gated form.
        Some((r, _)) if matches!(kernel, UpsampleKernel::BilinearInt { .. }) => {
            args.read("skip", r)
        }
        Some((r, _)) => args.read("res", r),
        None => args,
    };
    rec.run(&launch, args.write("y", y))
}

/// `skip * gate_activation(gate) + interpolate(low, scale_factor=2, mode="bilinear")`
/// (`align_corners=False`) in one pass of `bilinear_int.wgsl`: a decoder stage's resize
/// and gated skip (`scale_channels_add`) without the resized map ever stored. `None`
/// where that kernel does not take `low` (its width not a multiple of 4) or `skip` is not
/// twice its size; `gate` holds the logits `[N, C, 1, 1]`.
pub(crate) fn upsample2x_gated_add(
    rec: &mut Recorder<'_>,
    low: &Tensor,
    (skip, gate, gate_activation): (&Tensor, &Tensor, Activation),
) -> Result<Option<Tensor>> {
    let params = UpsampleParams::bilinear(false).scale_factor(2.0);
    let s = low.shape();
    let out = params.output_shape(s)?;
    let kernel = UpsampleKernel::BilinearInt { factor: 2 };
    if !kernel.supports(&params, s) || skip.shape() != out || gate.shape() != [s[0], s[1], 1, 1] {
        return Ok(None);
    }
    let gpu = rec.gpu();
    low.check_gpu(gpu, "low")?;
    skip.check_gpu(gpu, "skip")?;
    gate.check_gpu(gpu, "gate")?;
    let (mut launch, _) = plan(&params, s, out, kernel, ChannelWindow::whole(s[1]), None)?;
    InputGate(Some(gate_activation)).write(&mut launch.constants);
    let y = rec.empty("output", out)?;
    let args = Args::new()
        .read("x4", low)
        .read("skip", skip)
        .read("gate", gate)
        .write("y", &y);
    rec.run(&launch, args)?;
    Ok(Some(y))
}

/// The dispatch of `kernel` (which must support `params` on `s`) from `s` to `out`'s
/// `window`, and the host tables it reads.
fn plan(
    params: &UpsampleParams,
    s: [usize; 4],
    out: [usize; 4],
    kernel: UpsampleKernel,
    window: ChannelWindow,
    addend: Option<Activation>,
) -> Result<(Launch, ResampleTables)> {
    let addend = Addend(addend);
    let (c, extra, off) = window.fields();
    let pooled = matches!(kernel, UpsampleKernel::Area | UpsampleKernel::Antialias);
    let refuse = || format!("{kernel:?} does not support {params:?} on input {s:?}");
    // The strips' support is their tables being buildable: built once, below.
    let strips = kernel == UpsampleKernel::BilinearStrips;
    fail_if(
        pooled || !strips && !kernel.supports(params, s),
        "kernel",
        refuse,
    )?;
    let (planes, w4) = (s[0] * s[1], s[3] / 4);
    Ok(match kernel {
        UpsampleKernel::Area | UpsampleKernel::Antialias => {
            unreachable!("refused above: these record their own passes")
        }
        UpsampleKernel::Integer { factors } => {
            let spec = ResampleIntSpec {
                sy: Count(factors.0 as u32),
                sx: Count(factors.1 as u32),
                bed_of_nails: matches!(params.mode, UpsampleMode::BedOfNails { .. }),
                addend,
            };
            let rows = planes * s[2];
            let u = ResampleIntParams {
                rows: rows as u32,
                w4: w4 as u32,
                h: s[2] as u32,
                c,
                extra,
                off,
            };
            let launch = RESAMPLE_INT
                .launch(&spec, &u)
                .threads(rows * w4)
                .loops(integer_loops(factors));
            (launch, ResampleTables::Computed)
        }
        UpsampleKernel::BilinearInt { factor } => {
            let pixels = bilinear_int_pixels(factor);
            let total = planes * factor * s[2] * w4 * (4 / pixels);
            let u = BilinearIntParams {
                planes: planes as u32,
                h: s[2] as u32,
                w: s[3] as u32,
                w4: w4 as u32,
                total: total as u32,
                c,
                extra,
                off,
            };
            let spec = BilinearIntSpec {
                factor: Count(factor as u32),
                pixels: Count(pixels as u32),
                gate: InputGate(None),
                addend,
            };
            let launch = BILINEAR_INT.launch(&spec, &u).threads(total);
            (launch, ResampleTables::Computed)
        }
        UpsampleKernel::BilinearStrips => {
            let t = params.bilinear_strips(s);
            let t = t.ok_or_else(|| crate::error::invalid("kernel", refuse()))?;
            let (u, total) = resample_params(s, out, t.groups.len(), window);
            let spec = BilinearStripsSpec {
                span: Count(t.span as u32),
                addend,
            };
            let launch = BILINEAR_STRIPS
                .launch(&spec, &u)
                .threads(total)
                .loops(STRIP_GROUP_ROWS as u64);
            (launch, ResampleTables::Strips(t))
        }
        UpsampleKernel::Taps => {
            let mode = match params.mode {
                UpsampleMode::Nearest | UpsampleMode::NearestExact | UpsampleMode::Area => 0,
                UpsampleMode::Bilinear { .. } => 1,
                UpsampleMode::BedOfNails { .. } => 2,
                UpsampleMode::Bicubic { .. } => 3,
            };
            let (rows, groups) = params.tap_tables(s, out);
            let (u, total) = resample_params(s, out, groups.len(), window);
            let launch = RESAMPLE
                .launch(&ResampleSpec { mode, addend }, &u)
                .threads(total)
                .loops(STRIP_GROUP_ROWS as u64);
            (launch, ResampleTables::Taps { rows, groups })
        }
    })
}

/// How to resample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UpsampleMode {
    /// `mode='nearest'`: source index `min(floor(dst * scale), in - 1)`.
    Nearest,
    /// `mode='nearest-exact'`: source index `min(floor((dst + 0.5) * scale), in - 1)`
    /// (pixel centres; no shortcut for equal or doubled sizes).
    NearestExact,
    /// `mode='bilinear'`.
    Bilinear {
        /// PyTorch's `align_corners`.
        align_corners: bool,
    },
    /// `mode='bicubic'`: Keys' cubic convolution with `A = -0.75` over 4 x 4 taps, the
    /// taps past the border clamped to it (PyTorch's `upsample_bicubic2d`, no
    /// antialiasing). Overshoots the input's range, as PyTorch's does.
    Bicubic {
        /// PyTorch's `align_corners`.
        align_corners: bool,
    },
    /// `mode='area'`: each output averages its adaptive-pooling window
    /// (`adaptive_avg_pool2d` to the output size; a scale factor only sets that size).
    Area,
    /// Zero insertion with an integer stride per axis (output = input * stride).
    BedOfNails {
        /// `(sH, sW)`.
        stride: (usize, usize),
    },
}

impl UpsampleMode {
    fn is_bicubic(&self) -> bool {
        matches!(self, UpsampleMode::Bicubic { .. })
    }
}

/// Parameters of an upsampling: a mode and either an output size or a scale factor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpsampleParams {
    /// The resampling rule.
    pub mode: UpsampleMode,
    /// Exact output size `(H_out, W_out)`.
    pub size: Option<(usize, usize)>,
    /// Scale factor per axis; the output size is `floor(in * scale)`, and the scale itself
    /// (not `in / out`) maps positions, as in PyTorch with `recompute_scale_factor=None`.
    /// As in PyTorch, an axis whose size the factor leaves unchanged is copied by the
    /// nearest and bilinear modes and by antialiasing, but resampled by bicubic and
    /// nearest-exact.
    pub scale_factor: Option<(f64, f64)>,
    /// PyTorch's `recompute_scale_factor=True`: with a scale factor, only the output size
    /// comes from it; positions are mapped with `in / out`, as for an explicit size.
    pub recompute_scale_factor: bool,
    /// PyTorch's `antialias=True` (bilinear and bicubic only): when downsampling, the
    /// filter widens with the scale so that every input contributes (torchvision's
    /// `Resize` default); bicubic then uses `A = -0.5`. One known difference: PyTorch
    /// 2.x's CPU kernel gives every output row the first row's value when the output is
    /// one column wide and the height changes; this library computes each row.
    pub antialias: bool,
}

impl UpsampleParams {
    /// Nearest-neighbour upsampling; set `size` or `scale_factor` next.
    pub fn nearest() -> Self {
        Self::of(UpsampleMode::Nearest)
    }

    /// Upsampling with `mode` (no size or scale factor yet).
    fn of(mode: UpsampleMode) -> Self {
        UpsampleParams {
            mode,
            size: None,
            scale_factor: None,
            recompute_scale_factor: false,
            antialias: false,
        }
    }

    /// Sets PyTorch's `antialias` (see the field).
    pub fn antialias(mut self, antialias: bool) -> Self {
        self.antialias = antialias;
        self
    }

    /// `mode='nearest-exact'` upsampling; set `size` or `scale_factor` next.
    pub fn nearest_exact() -> Self {
        Self::of(UpsampleMode::NearestExact)
    }

    /// Bicubic upsampling; set `size` or `scale_factor` next.
    pub fn bicubic(align_corners: bool) -> Self {
        Self::of(UpsampleMode::Bicubic { align_corners })
    }

    /// Bilinear upsampling; set `size` or `scale_factor` next.
    pub fn bilinear(align_corners: bool) -> Self {
        Self::of(UpsampleMode::Bilinear { align_corners })
    }

    /// `mode='area'` resampling (adaptive average pooling to the output size); set
    /// `size` or `scale_factor` next.
    pub fn area() -> Self {
        Self::of(UpsampleMode::Area)
    }

    /// Bed-of-nails (zero-insertion) unpooling with `stride`.
    pub fn bed_of_nails(stride: impl super::IntoPair) -> Self {
        Self::of(UpsampleMode::BedOfNails {
            stride: stride.into_pair(),
        })
    }

    /// Sets PyTorch's `recompute_scale_factor` (see the field).
    pub fn recompute_scale_factor(mut self, recompute: bool) -> Self {
        self.recompute_scale_factor = recompute;
        self
    }

    /// The scale factors that map output positions to the input's: the given ones, or
    /// none (`in / out`) with an explicit size or `recompute_scale_factor`.
    pub fn kernel_scales(&self) -> Option<(f64, f64)> {
        self.scale_factor.filter(|_| !self.recompute_scale_factor)
    }

    /// Sets the output size.
    pub fn size(mut self, size: impl super::IntoPair) -> Self {
        self.size = Some(size.into_pair());
        self
    }

    /// Sets the same scale factor on both axes.
    pub fn scale_factor(mut self, scale: f64) -> Self {
        self.scale_factor = Some((scale, scale));
        self
    }

    /// Sets a scale factor per axis `(sH, sW)`.
    pub fn scale_factors(mut self, scale: (f64, f64)) -> Self {
        self.scale_factor = Some(scale);
        self
    }

    /// Validates against `[N, C, H, W]`; returns `[N, C, H_out, W_out]`.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        check_dims("input", &input)?;
        fail_if(
            self.antialias
                && !matches!(
                    self.mode,
                    UpsampleMode::Bilinear { .. } | UpsampleMode::Bicubic { .. }
                ),
            "antialias",
            || format!("applies to bilinear and bicubic only, not {:?}", self.mode),
        )?;
        if let UpsampleMode::BedOfNails { stride } = self.mode {
            fail_if(stride.0 == 0 || stride.1 == 0, "stride", || {
                format!("must be positive, got {stride:?}")
            })?;
            fail_if(
                self.size.is_some() || self.scale_factor.is_some() || self.recompute_scale_factor,
                "size",
                || {
                    "bed-of-nails takes its output size from the stride; set neither size, \
                     scale_factor nor recompute_scale_factor"
                },
            )?;
            let grown = |len: usize, s: usize| len.saturating_mul(s);
            let out = [
                input[0],
                input[1],
                grown(input[2], stride.0),
                grown(input[3], stride.1),
            ];
            check_dims("output", &out)?;
            return Ok(out);
        }
        let (oh, ow) = match (self.size, self.scale_factor) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "size",
                    "only one of size or scale_factor may be set",
                ))
            }
            (None, None) => return Err(invalid("size", "one of size or scale_factor must be set")),
            (Some(s), None) => {
                fail_if(s.0 == 0 || s.1 == 0, "size", || {
                    format!("must be positive, got {s:?}")
                })?;
                fail_if(
                    self.recompute_scale_factor,
                    "recompute_scale_factor",
                    || "is not meaningful with an explicit size (as in PyTorch)",
                )?;
                s
            }
            (None, Some(f)) => {
                fail_if(
                    !(f.0.is_finite() && f.1.is_finite() && f.0 > 0.0 && f.1 > 0.0),
                    "scale_factor",
                    || format!("must be positive and finite, got {f:?}"),
                )?;
                let oh = (input[2] as f64 * f.0).floor() as usize;
                let ow = (input[3] as f64 * f.1).floor() as usize;
                fail_if(oh == 0 || ow == 0, "scale_factor", || {
                    format!(
                        "{f:?} on a {}x{} input gives an empty output",
                        input[2], input[3]
                    )
                })?;
                (oh, ow)
            }
        };
        // (A float scale's product saturates at usize::MAX, refused here.)
        let out = [input[0], input[1], oh, ow];
        check_dims("output", &out)?;
        Ok(out)
    }

    /// No parameters; MACs: 3 per output for bilinear, 20 for bicubic, the windows'
    /// adds for area, none otherwise; bytes moved.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let out = self.output_shape(input)?;
        if self.mode == UpsampleMode::Area {
            return super::pool::AdaptiveAvgPool2dParams::new((out[2], out[3])).cost(input);
        }
        let outs = out.iter().product::<usize>() as u64;
        let macs = match self.mode {
            UpsampleMode::Bilinear { .. } => 3 * outs,
            // 4 taps along each of 4 rows, then 4 along the column.
            UpsampleMode::Bicubic { .. } => 20 * outs,
            _ => 0,
        };
        Ok(Cost {
            params: 0,
            macs,
            bytes: 4 * (input.iter().product::<usize>() as u64 + outs),
        })
    }

    /// The kernel choice: `Some((sy, sx))` when the op on `input` is an integer-factor
    /// replication (nearest whose PyTorch index rule gives exactly `o / k` on both axes,
    /// or bed-of-nails) and the input width is a multiple of 4, which
    /// `resample_int.wgsl` runs at about copy speed; `None` for the general tap-table
    /// kernel (`resample.wgsl`) or an invalid configuration.
    pub(crate) fn integer_factors(&self, input: [usize; 4]) -> Option<(usize, usize)> {
        let out = self.output_shape(input).ok()?;
        if !input[3].is_multiple_of(4) || out[2].max(out[3]) > VERIFIED_LEN {
            return None;
        }
        match self.mode {
            UpsampleMode::BedOfNails { stride } => Some(stride),
            UpsampleMode::Nearest | UpsampleMode::NearestExact => {
                let source = match self.mode {
                    UpsampleMode::Nearest => nearest_source,
                    _ => nearest_exact_source,
                };
                let axis = |i: usize, o: usize, scale: Option<f64>| -> Option<usize> {
                    if !o.is_multiple_of(i) {
                        return None;
                    }
                    let k = o / i;
                    (0..o).all(|d| source(d, i, o, scale) == d / k).then_some(k)
                };
                let f = self.kernel_scales();
                Some((
                    axis(input[2], out[2], f.map(|f| f.0))?,
                    axis(input[3], out[3], f.map(|f| f.1))?,
                ))
            }
            UpsampleMode::Bilinear { .. } | UpsampleMode::Bicubic { .. } | UpsampleMode::Area => {
                None
            }
        }
    }

    /// The kernel choice for bilinear: `Some(s)` when `bilinear_int.wgsl` applies, i.e.
    /// upsampling by the same factor `s` of 2, 4 or 8 on both axes with
    /// `align_corners = False` (PyTorch's taps, computed by its general formula, are
    /// checked here against the kernel's per-phase weights) and an input width divisible
    /// by 4; `None` for the general tap-table kernel (`resample.wgsl`).
    pub(crate) fn bilinear_int_factor(&self, input: [usize; 4]) -> Option<usize> {
        let out = self.output_shape(input).ok()?;
        if self.mode
            != (UpsampleMode::Bilinear {
                align_corners: false,
            })
            || !input[3].is_multiple_of(4)
            || out[2].max(out[3]) > VERIFIED_LEN
        {
            return None;
        }
        let factor = out[3] / input[3];
        if ![2, 4, 8, 16].contains(&factor)
            || out[3] != factor * input[3]
            || out[2] != factor * input[2]
        {
            return None;
        }
        // The kernel's taps for output o = factor * j + r (see bilinear_int.wgsl).
        let kernel_taps = |o: usize, len: usize| {
            let (j, r) = (o / factor, o % factor);
            let l = (r as f32 + 0.5) / factor as f32;
            if r < factor / 2 {
                if j == 0 {
                    (0, 1.min(len - 1), 1.0, 0.0)
                } else {
                    (j - 1, j, 1.0 - (l + 0.5), l + 0.5)
                }
            } else {
                (j, (j + 1).min(len - 1), 1.0 - (l - 0.5), l - 0.5)
            }
        };
        let pattern = |len: usize, scale: Option<f64>| {
            (0..factor * len)
                .all(|o| linear_source(o, len, factor * len, scale, false) == kernel_taps(o, len))
        };
        let f = self.kernel_scales();
        (pattern(input[2], f.map(|f| f.0)) && pattern(input[3], f.map(|f| f.1))).then_some(factor)
    }

    /// The tables of `bilinear_strips.wgsl` for bilinear resampling of `input`, or `None`
    /// where that kernel does not apply. Per strip of 8 outputs, three entries:
    /// `[first source vec4, first columns, steps, 0]` and the outputs' `l1` bits (each
    /// output's `l0` is `1 - l1`, as [`linear_source`] computes it). An output's first
    /// column is relative to the strip's first vec4 (4 bits), its step 1 where the
    /// second column is the next (1 bit), so every column of a strip must lie within the
    /// 12 from its first vec4 (upsampling the width, keeping it, or shrinking it a
    /// little); the span is 2 vec4s where every strip's columns lie within 8 (always at
    /// factors above about 2.3), else 3.
    /// Rows: groups of at most [`STRIP_GROUP_ROWS`] consecutive output rows that blend
    /// the same two input rows, and each row's `l1`.
    fn bilinear_strips(&self, input: [usize; 4]) -> Option<BilinearStripTables> {
        let UpsampleMode::Bilinear { align_corners } = self.mode else {
            return None;
        };
        let out = self.output_shape(input).ok()?;
        let (w, ow) = (input[3], out[3]);
        if self.antialias || !w.is_multiple_of(4) || !ow.is_multiple_of(4) {
            return None;
        }
        let scale = self.kernel_scales().map(|f| f.1);
        let mut table = Vec::with_capacity(3 * ow.div_ceil(RESAMPLE_PX));
        // The last column any strip reads, from its first vec4's first.
        let mut reach = 0;
        for ox0 in (0..ow).step_by(RESAMPLE_PX) {
            let first = linear_source(ox0, w, ow, scale, align_corners).0 & !3;
            let (mut starts, mut steps, mut l1s) = (0u32, 0u32, [0u32; RESAMPLE_PX]);
            for (j, ox) in (ox0..ow.min(ox0 + RESAMPLE_PX)).enumerate() {
                let (i0, i1, _, l1) = linear_source(ox, w, ow, scale, align_corners);
                let (c0, step) = (i0.checked_sub(first)?, i1 - i0);
                reach = reach.max(c0 + step);
                if reach >= 12 {
                    return None;
                }
                starts |= (c0 as u32) << (4 * j);
                steps |= (step as u32) << j;
                l1s[j] = l1.to_bits();
            }
            table.push([(first / 4) as u32, starts, steps, 0]);
            table.push([l1s[0], l1s[1], l1s[2], l1s[3]]);
            table.push([l1s[4], l1s[5], l1s[6], l1s[7]]);
        }
        let row_scale = self.kernel_scales().map(|f| f.0);
        let rows =
            (0..out[2]).map(|oy| linear_source(oy, input[2], out[2], row_scale, align_corners));
        let (mut keys, mut row_l1) = (Vec::new(), Vec::new());
        for (i0, i1, _, l1) in rows {
            keys.push([i0 as u32, i1 as u32, 0, 0]);
            row_l1.push(l1);
        }
        let groups = row_groups(keys);
        Some(BilinearStripTables {
            strips: table,
            groups,
            row_l1,
            span: (reach / 4 + 1).max(2),
        })
    }

    /// The row taps of `resample.wgsl` ([`Self::taps`] along the height) and its row
    /// groups: rows with the same input rows (their indices, all four for bicubic).
    fn tap_tables(&self, s: [usize; 4], out: [usize; 4]) -> (Vec<[u32; 4]>, Vec<[u32; 4]>) {
        let rows = self.taps(s[2], out[2], self.kernel_scales().map(|f| f.0), 0);
        let groups = if self.mode.is_bicubic() {
            row_groups(rows.iter().step_by(2).copied())
        } else {
            row_groups(rows.iter().map(|r| [r[0], r[1], 0, 0]))
        };
        (rows, groups)
    }

    /// Per-axis taps `[i0, i1, l0 bits, l1 bits]` for output positions `0..out`; for
    /// bicubic two entries per position, `[i0, i1, i2, i3]` and their four weights' bits.
    fn taps(&self, input: usize, out: usize, scale: Option<f64>, axis: usize) -> Vec<[u32; 4]> {
        let copy = |i: usize| [i as u32, i as u32, 1f32.to_bits(), 0f32.to_bits()];
        (0..out)
            .flat_map(|o| {
                let (entry, second) = match self.mode {
                    // Never asked: area runs as adaptive pooling, not from taps.
                    UpsampleMode::Area => (copy(0), None),
                    UpsampleMode::Nearest => (copy(nearest_source(o, input, out, scale)), None),
                    UpsampleMode::NearestExact => {
                        (copy(nearest_exact_source(o, input, out, scale)), None)
                    }
                    UpsampleMode::Bilinear { align_corners } => {
                        let (i0, i1, l0, l1) = linear_source(o, input, out, scale, align_corners);
                        ([i0 as u32, i1 as u32, l0.to_bits(), l1.to_bits()], None)
                    }
                    UpsampleMode::Bicubic { align_corners } => {
                        let (i, w) = cubic_source(o, input, out, scale, align_corners);
                        (i.map(|i| i as u32), Some(w.map(f32::to_bits)))
                    }
                    UpsampleMode::BedOfNails { stride } => {
                        let s = if axis == 0 { stride.0 } else { stride.1 };
                        let l0 = if o % s == 0 { 1f32 } else { 0f32 };
                        let i = (o / s) as u32;
                        ([i, i, l0.to_bits(), 0f32.to_bits()], None)
                    }
                };
                std::iter::once(entry).chain(second)
            })
            .collect()
    }
}

/// PyTorch's `compute_scales_value<float>`: the given scale's reciprocal, else in / out.
fn scale_value(scale: Option<f64>, input: usize, out: usize) -> f32 {
    match scale {
        Some(s) if s > 0.0 => (1.0 / s) as f32,
        _ => input as f32 / out as f32,
    }
}

/// PyTorch's `nearest_idx`.
fn nearest_source(o: usize, input: usize, out: usize, scale: Option<f64>) -> usize {
    if out == input {
        o
    } else if out == 2 * input {
        o >> 1
    } else {
        let s = scale_value(scale, input, out);
        ((o as f32 * s).floor() as usize).min(input - 1)
    }
}

/// PyTorch's `nearest_exact_idx`: `min(floor((o + 0.5) * scale), in - 1)`, the product
/// in double and floored in float, as its C++ does.
fn nearest_exact_source(o: usize, input: usize, out: usize, scale: Option<f64>) -> usize {
    let s = scale_value(scale, input, out);
    ((((o as f64 + 0.5) * s as f64) as f32).floor() as usize).min(input - 1)
}

/// PyTorch's bicubic taps (`upsample_bicubic2d`): the source position
/// (`area_pixel_compute_source_index` without the clamp at 0), its floor and fraction
/// (`guard_index_and_lambda`), the four indices `floor - 1 ..= floor + 2` clamped to the
/// input, and the cubic-convolution weights (`get_cubic_upsample_coefficients`, A = -0.75).
fn cubic_source(
    o: usize,
    input: usize,
    out: usize,
    scale: Option<f64>,
    align_corners: bool,
) -> ([usize; 4], [f32; 4]) {
    let src = area_pixel_source(o, input, out, scale, align_corners, true);
    let floor = src.floor();
    let i = (floor as i64).min(input as i64 - 1);
    let t = (src - i as f32).clamp(0.0, 1.0);
    let at = |k: i64| (i + k).clamp(0, input as i64 - 1) as usize;
    const A: f32 = -0.75;
    let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    (
        [at(-1), at(0), at(1), at(2)],
        [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)],
    )
}

/// PyTorch's `area_pixel_compute_scale` and `area_pixel_compute_source_index`: the source
/// position of output `o`, clamped at 0 except for cubic taps.
fn area_pixel_source(
    o: usize,
    input: usize,
    out: usize,
    scale: Option<f64>,
    align_corners: bool,
    cubic: bool,
) -> f32 {
    if align_corners {
        let s = if out > 1 {
            (input - 1) as f32 / (out - 1) as f32
        } else {
            0.0
        };
        s * o as f32
    } else {
        // One rounding (a fused multiply-add), as PyTorch's AVX2 / AVX-512 CPU kernels and
        // CUDA compute it (their compilers contract the expression).
        let src = scale_value(scale, input, out).mul_add(o as f32 + 0.5, -0.5);
        if cubic {
            src
        } else {
            src.max(0.0)
        }
    }
}

/// The two taps of PyTorch's linear modes: returns `(i0, i1, lambda0, lambda1)`.
fn linear_source(
    o: usize,
    input: usize,
    out: usize,
    scale: Option<f64>,
    align_corners: bool,
) -> (usize, usize, f32, f32) {
    if out == input {
        // PyTorch copies an axis whose size does not change (`compute_source_index_and_lambda`),
        // whatever the scale factor that gave that size.
        return (o, o, 1.0, 0.0);
    }
    let src = area_pixel_source(o, input, out, scale, align_corners, false);
    let i0 = (src as usize).min(input - 1);
    let i1 = i0 + usize::from(i0 < input - 1);
    let l1 = src - i0 as f32;
    (i0, i1, 1.0 - l1, l1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_strips_read_two_vec4s_where_eight_columns_suffice() {
        // Fast-SCNN's final resize (8x, corners aligned): two vec4s, row groups of 8.
        let fast_scnn = UpsampleParams::bilinear(true).size((512, 1024));
        let t = fast_scnn.bilinear_strips([1, 19, 64, 128]).unwrap();
        assert_eq!(t.span, 2);
        assert_eq!(t.strips.len(), 3 * 1024 / 8);
        assert!(t.groups.iter().all(|g| (1..=8).contains(&g[1])));
        assert_eq!(t.groups.iter().map(|g| g[1]).sum::<u32>(), 512);
        assert_eq!(t.row_l1.len(), 512);
        // 16 -> 20 needs three, a halved width more than the kernel reads.
        let small = UpsampleParams::bilinear(false).size((8, 20));
        assert_eq!(small.bilinear_strips([1, 2, 4, 16]).unwrap().span, 3);
        let halved = UpsampleParams::bilinear(false).size((8, 8));
        assert!(halved.bilinear_strips([1, 2, 4, 16]).is_none());
    }

    #[test]
    fn row_groups_join_rows_that_read_the_same_input_rows() {
        let keys = [[0, 1, 0, 0]; 10]
            .into_iter()
            .chain([[1, 1, 0, 0], [1, 2, 0, 0], [1, 2, 0, 0]]);
        assert_eq!(
            row_groups(keys),
            vec![[0, 8, 0, 1], [8, 2, 0, 1], [10, 1, 1, 1], [11, 2, 1, 2]]
        );
    }
}
