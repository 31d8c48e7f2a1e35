//! Normalisation with PyTorch's semantics: batch norm (training forward with running
//! statistics, inference, backward, folding into a convolution), group norm, layer norm
//! over the trailing one to three dimensions (with or without a bias), instance norm (with
//! its own statistics or running ones), and AdaIN.
//!
//! Statistics are computed per segment in two passes (mean, then squared deviations),
//! never as `E[x^2] - E[x]^2`, with one workgroup per segment and a fixed reduction order.
//! Normalisation uses the biased (population) variance; batch norm's running variance
//! uses the unbiased one, as in PyTorch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ndarray::{Array1, Array4, ArrayView, ArrayView1, Ix1, IxDyn};

use super::{check_channels, Activation, Cost};
use crate::error::{fail_if, invalid, positive, Error, Result};
use crate::gpu::{check_dims, check_owner, Gpu, PooledBuffer, Recorder, Tensor};
use crate::launch::{
    loop_nest, read, read_opt, shader_modes, specialize, uniform, write, write_opt, Args, Kernel,
    KernelInfo, Trip,
};
use crate::ops::setters;
use crate::weights::StateDict;

/// Elements per invocation in `norm_apply.wgsl` and `batch_norm_backward.wgsl` (`PX`).
const APPLY_PX: usize = 16;

uniform! {
    /// `shaders/norm_stats.wgsl`.
    pub(crate) struct StatsParams {
        segments: u32,
        chunks: u32,
        chunk_len: u32,
        chunk_stride: u32,
        seg_stride: u32,
        runs_per_part: u32,
        piece: u32,
        pieces: u32,
        parts: u32,
        momentum: f32,
        eps: f32,
    }
}

uniform! {
    /// `shaders/norm_combine.wgsl`.
    pub(crate) struct CombineParams {
        segments: u32,
        parts: u32,
        momentum: f32,
    }
}

uniform! {
    /// `shaders/norm_apply.wgsl`.
    pub(crate) struct ApplyParams {
        planes: u32,
        c: u32,
        hw: u32,
        cpg: u32,
        groups: u32,
        strips: u32,
        total: u32,
        eps: f32,
        seg_len: u32,
    }
}

uniform! {
    /// `shaders/batch_norm_backward.wgsl`.
    pub(crate) struct BackwardParams {
        planes: u32,
        c: u32,
        hw: u32,
        count: f32,
        strips: u32,
        total: u32,
        eps: f32,
    }
}

specialize! {
    /// What `norm_stats.wgsl` computes (forward statistics, or with `backward` the sums of
    /// the backward pass); the constants of `norm_combine.wgsl`.
    struct StatsSpec { backward: bool => "MODE", update_running: bool => "UPDATE_RUNNING" }
}

specialize! {
    /// The constants of `norm_stats.wgsl`: whole segments, or parts of them.
    struct PartSpec { stats: StatsSpec, partial: bool => "PARTIAL" }
}

shader_modes! {
    /// Which affine `norm_apply.wgsl` applies (its `MODE`).
    enum ApplyMode {
        Batch = 0,
        Group = 1,
        Layer = 2,
        Instance = 3,
        AdaIn = 4,
    }
}

specialize! {
    /// The constants of `norm_apply.wgsl`.
    struct ApplySpec { mode: ApplyMode => "MODE", act: Activation }
}

const NORM_STATS: Kernel<StatsParams, PartSpec> = Kernel::new(
    "norm_stats.wgsl",
    &[
        read("x"),
        read_opt("dy"),
        write("stats"),
        write_opt("running"),
        write_opt("partials"),
    ],
);
const NORM_COMBINE: Kernel<CombineParams, StatsSpec> = Kernel::new(
    "norm_combine.wgsl",
    &[read("partials"), write("stats"), write_opt("running")],
);
const NORM_APPLY: Kernel<ApplyParams, ApplySpec> = Kernel::new(
    "norm_apply.wgsl",
    &[
        read("x"),
        read("stats"),
        read("gamma"),
        read_opt("beta"),
        write("y"),
    ],
);
const BATCH_NORM_BACKWARD: Kernel<BackwardParams> = Kernel::new(
    "batch_norm_backward.wgsl",
    &[
        read("x"),
        read("dy"),
        read("stats"),
        read("gamma"),
        write("dx"),
    ],
);

uniform! {
    /// `shaders/grn.wgsl`.
    pub(crate) struct GrnParams {
        c: u32,
        hw: u32,
        total: u32,
        eps: f32,
    }
}

specialize! {
    /// `MODE` of `grn.wgsl`: the scale (0) or the affine (1).
    struct GrnSpec { apply: bool => "MODE" }
}

const GRN: Kernel<GrnParams, GrnSpec> = Kernel::new(
    "grn.wgsl",
    &[
        read_opt("stats"),
        read("affine"),
        read_opt("x"),
        read_opt("scale"),
        write("y"),
    ],
);

/// Values of one plane per invocation of `grn.wgsl`'s affine pass (`PX`).
const GRN_PX: usize = 16;

/// The kernels of this family.
pub(crate) const KERNELS: &[&dyn KernelInfo] = &[
    &NORM_STATS,
    &NORM_COMBINE,
    &NORM_APPLY,
    &BATCH_NORM_BACKWARD,
    &GRN,
];

/// Refuses, before anything is built on the host, per-channel state the device could not
/// hold: `len` values of weight, bias and running statistics (two per channel).
fn check_per_channel(gpu: &Gpu, len: usize) -> Result<()> {
    gpu.check_binding_size("weight", (len as u64).saturating_mul(8))
}

/// eps as PyTorch takes it, 0 included (a constant segment then normalises to NaN, as
/// there); negative values are refused (PyTorch's square root of a negative variance).
pub(crate) fn check_eps(eps: f32) -> Result<()> {
    fail_if(!(eps.is_finite() && eps >= 0.0), "eps", || {
        format!("must be finite and at least 0, got {eps}")
    })?;
    Ok(())
}

fn check_len(name: &'static str, v: &ArrayView1<f32>, len: usize) -> Result<()> {
    if v.len() != len {
        return Err(Error::ShapeMismatch {
            name,
            expected: vec![len],
            actual: vec![v.len()],
        });
    }
    Ok(())
}

/// Memory traffic of a normalisation: read for the statistics (twice), read and write
/// for the normalisation; a few operations per element.
/// `affine` says whether there are `2 * affine_len` learnable parameters.
fn norm_cost(input: [usize; 4], (affine, affine_len): (bool, usize)) -> Cost {
    let elems = input.iter().product::<usize>() as u64;
    let params = if affine { 2 * affine_len as u64 } else { 0 };
    Cost {
        params,
        macs: 4 * elems,
        bytes: 4 * (4 * elems + 2 * params),
    }
}

/// How `norm_stats.wgsl` sees the segments of an `[N, C, H, W]` tensor.
#[derive(Clone, Copy)]
struct Segments {
    count: usize,
    chunks: usize,
    chunk_len: usize,
    chunk_stride: usize,
    seg_stride: usize,
}

impl Segments {
    /// Batch norm: channel c is N runs of H * W.
    fn per_channel(s: [usize; 4]) -> Self {
        let hw = s[2] * s[3];
        Segments {
            count: s[1],
            chunks: s[0],
            chunk_len: hw,
            chunk_stride: s[1] * hw,
            seg_stride: hw,
        }
    }

    /// `count` contiguous segments of `len` elements.
    fn contiguous(count: usize, len: usize) -> Self {
        Segments {
            count,
            chunks: 1,
            chunk_len: len,
            chunk_stride: 0,
            seg_stride: len,
        }
    }

    fn elements(&self) -> usize {
        self.chunks * self.chunk_len
    }

    /// How the segments are cut into parts: whole when one workgroup's loops stay within
    /// [`STATS_PASS_LOOPS`] per pass, else runs of at most `runs_per_part` runs and
    /// pieces of at most `piece` elements of a run.
    fn split(&self) -> StatsSplit {
        let pass_loops = |runs: usize, len: usize| runs as u64 * (1 + len.div_ceil(64) as u64);
        if pass_loops(self.chunks, self.chunk_len) <= STATS_PASS_LOOPS {
            return StatsSplit {
                runs_per_part: self.chunks.max(1),
                piece: self.chunk_len.max(1),
                pieces: 1,
                parts: 1,
            };
        }
        let piece = self.chunk_len.clamp(1, STATS_PIECE);
        let per_run = pass_loops(1, piece);
        let runs_per_part = ((STATS_PASS_LOOPS / per_run) as usize).clamp(1, self.chunks.max(1));
        let pieces = self.chunk_len.div_ceil(piece).max(1);
        StatsSplit {
            runs_per_part,
            piece,
            pieces,
            parts: self.chunks.div_ceil(runs_per_part).max(1) * pieces,
        }
    }

    fn uniform(&self, split: &StatsSplit, momentum: f32, eps: f32) -> StatsParams {
        StatsParams {
            segments: self.count as u32,
            chunks: self.chunks as u32,
            chunk_len: self.chunk_len as u32,
            chunk_stride: self.chunk_stride as u32,
            seg_stride: self.seg_stride as u32,
            runs_per_part: split.runs_per_part as u32,
            piece: split.piece as u32,
            pieces: split.pieces as u32,
            parts: split.parts as u32,
            momentum,
            eps,
        }
    }
}

/// Loop iterations per pass of one `norm_stats.wgsl` workgroup before a segment is split
/// (two passes plus the reductions stay well inside [`LOOP_BUDGET`]; parts this size also
/// give a large GPU enough workgroups).
const STATS_PASS_LOOPS: u64 = 8192;
/// Elements of one run in one part of a split segment.
const STATS_PIECE: usize = 64 * 128;

/// Parts of each segment (see [`Segments::split`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StatsSplit {
    runs_per_part: usize,
    piece: usize,
    pieces: usize,
    parts: usize,
}

impl StatsSplit {
    /// Loop iterations of one `norm_stats.wgsl` invocation: two passes and two tree
    /// reductions.
    fn loops(&self) -> u64 {
        let pass = loop_nest(&[
            Trip::Uniform(self.runs_per_part as u64),
            Trip::Uniform(self.piece.div_ceil(64) as u64),
        ]);
        2 * (pass + 6)
    }
}

/// Records `norm_stats.wgsl` for `seg` (forward statistics into `stats[0..2S]`, or with
/// `dy` the backward sums into `stats[2S..4S]`), and `norm_combine.wgsl` after it when the
/// segments are split. `running` (with the momentum) is updated by forward statistics.
fn record_segment_stats(
    rec: &mut Recorder<'_>,
    seg: Segments,
    (x, dy): (&Tensor, Option<&Tensor>),
    stats: &Arc<PooledBuffer>,
    running: Option<(&Arc<PooledBuffer>, f32)>,
    eps: f32,
) -> Result<()> {
    let spec = StatsSpec {
        backward: dy.is_some(),
        update_running: running.is_some(),
    };
    let split = seg.split();
    let momentum = running.map_or(0.0, |(_, m)| m);
    let u = seg.uniform(&split, momentum, eps);
    let partial = split.parts > 1;
    let launch = NORM_STATS
        .launch(
            &PartSpec {
                stats: spec,
                partial,
            },
            &u,
        )
        .workgroups(seg.count * split.parts)
        .loops(split.loops());
    let args = Args::new().read("x", x).read_opt("dy", dy);
    if !partial {
        let args = args
            .write("stats", stats)
            .write_opt("running", running.map(|(r, _)| r));
        return rec.run(&launch, args);
    }
    let width = if spec.backward { 2 } else { 3 };
    let partials = rec.alloc_f32("partials", width * seg.count * split.parts)?;
    // The whole-segment outputs are not written in this mode; `stats` is bound as the
    // kernel reads it (backward: the forward statistics).
    let args = args.write("stats", stats).write("partials", &partials);
    rec.run(&launch, args)?;
    let u = CombineParams {
        segments: seg.count as u32,
        parts: split.parts as u32,
        momentum,
    };
    let combine = NORM_COMBINE
        .launch(&spec, &u)
        .workgroups(seg.count)
        .loops(split.parts.div_ceil(64) as u64 + 6);
    let args = Args::new()
        .read("partials", &partials)
        .write("stats", stats)
        .write_opt("running", running.map(|(r, _)| r));
    rec.run(&combine, args)
}

/// Records the forward statistics of `x`'s segments (mean and biased variance into
/// `stats[0..2S]`), updating `running` with the momentum factor when given.
fn record_stats(
    rec: &mut Recorder<'_>,
    seg: Segments,
    x: &Tensor,
    stats: &Arc<PooledBuffer>,
    running: Option<(&Arc<PooledBuffer>, f32)>,
    eps: f32,
) -> Result<()> {
    record_segment_stats(rec, seg, (x, None), stats, running, eps)
}

/// Records `norm_apply.wgsl`: `act(gamma * (x - mean) / sqrt(var + eps) + beta)` with the
/// statistics of `mode`'s segments. `aux` is the number of groups for group norm and the
/// elements per segment for layer norm (ignored otherwise).
#[allow(clippy::too_many_arguments)]
fn record_apply(
    rec: &mut Recorder<'_>,
    mode: ApplyMode,
    x: &Tensor,
    stats: &Arc<PooledBuffer>,
    gamma: &Arc<PooledBuffer>,
    beta: Option<&Arc<PooledBuffer>>,
    aux: usize,
    eps: f32,
    act: Activation,
) -> Result<Tensor> {
    let s = x.shape();
    let (groups, seg_len) = match mode {
        ApplyMode::Group => (aux, 1),
        ApplyMode::Layer => (1, aux),
        _ => (1, 1),
    };
    let y = rec.empty("output", s)?;
    let hw = s[2] * s[3];
    let strips = hw.div_ceil(APPLY_PX);
    let total = s[0] * s[1] * strips;
    let u = ApplyParams {
        planes: (s[0] * s[1]) as u32,
        c: s[1] as u32,
        hw: hw as u32,
        cpg: (s[1] / groups.max(1)) as u32,
        groups: groups as u32,
        strips: strips as u32,
        total: total as u32,
        eps,
        seg_len: seg_len as u32,
    };
    let launch = NORM_APPLY
        .launch(&ApplySpec { mode, act }, &u)
        .threads(total);
    let args = Args::new()
        .read("x", x)
        .read("stats", stats)
        .read("gamma", gamma)
        .read_opt("beta", beta)
        .write("y", &y);
    rec.run(&launch, args)?;
    Ok(y)
}

/// The learnable scale and shift as given, or 1 and 0 (PyTorch's initial values): both
/// or neither must be given, and only when `affine`.
fn affine_or_identity(
    affine: bool,
    len: usize,
    weight: Option<ArrayView1<f32>>,
    bias: Option<ArrayView1<f32>>,
) -> Result<(Vec<f32>, Vec<f32>)> {
    match (affine, weight, bias) {
        (true, Some(w), Some(b)) => {
            check_len("weight", &w, len)?;
            check_len("bias", &b, len)?;
            Ok((w.to_vec(), b.to_vec()))
        }
        (_, None, None) => Ok((vec![1.0; len], vec![0.0; len])),
        (true, _, _) => Err(invalid(
            "weight",
            "give both weight and bias, or neither (for the default 1 and 0)",
        )),
        (false, _, _) => Err(invalid(
            "weight",
            "weight and bias were given but params.affine is false",
        )),
    }
}

/// A layer's `weight` and `bias`, when it has them.
type OptionalAffine = (Option<Array1<f32>>, Option<Array1<f32>>);

/// `{prefix}.weight` and `{prefix}.bias` of `shape` (flattened) when `affine`; a layer
/// without a bias (`bias = false`) reads no `{prefix}.bias` and gets zeros.
fn load_affine(
    sd: &StateDict,
    prefix: &str,
    (affine, bias): (bool, bool),
    shape: &[usize],
) -> Result<OptionalAffine> {
    if !affine {
        return Ok((None, None));
    }
    let get = |n: &str| -> Result<Array1<f32>> {
        Ok(sd
            .get(&crate::weights::key(prefix, n), shape)?
            .iter()
            .copied()
            .collect())
    };
    let weight = get("weight")?;
    let bias = match bias {
        true => get("bias")?,
        false => Array1::zeros(weight.len()),
    };
    Ok((Some(weight), Some(bias)))
}

/// A normalisation layer's learnable scale and shift on the GPU.
#[derive(Debug, Clone)]
struct Affine {
    gamma: Arc<PooledBuffer>,
    beta: Arc<PooledBuffer>,
    len: usize,
}

impl Affine {
    fn upload(gpu: &Gpu, gamma: &[f32], beta: &[f32]) -> Result<Self> {
        Ok(Affine {
            gamma: gpu.upload_f32("weight", gamma)?,
            beta: gpu.upload_f32("bias", beta)?,
            len: gamma.len(),
        })
    }

    /// This affine for an input of `channels` channels: itself, or where the channel
    /// count differs (a norm with nothing per channel, which takes any count) the
    /// identity of that length.
    fn for_channels(&self, gpu: &Gpu, channels: usize) -> Result<std::borrow::Cow<'_, Affine>> {
        if channels == self.len {
            return Ok(std::borrow::Cow::Borrowed(self));
        }
        let identity = Affine::upload(gpu, &vec![1.0; channels], &vec![0.0; channels])?;
        Ok(std::borrow::Cow::Owned(identity))
    }
}

/// How a normalisation sees its input's segments: the segments, the affine's layout and
/// `record_apply`'s `aux` (the groups of group norm, the segment length of layer norm).
type Layout = (Segments, ApplyMode, usize);

/// What group, layer and instance norm share: the learnable affine on the GPU, and the
/// record of statistics per segment followed by the normalisation; or, for instance norm
/// with running statistics, the normalisation with those.
#[derive(Debug)]
struct SegmentNorm {
    gpu: Gpu,
    affine: Affine,
    /// `[C][mean, var]` when the layer normalises with running statistics.
    running: Option<Arc<PooledBuffer>>,
}

impl SegmentNorm {
    /// Uploads `weight` and `bias` (`len` values each; both or neither, and only when
    /// `affine`; neither gives 1 and 0).
    fn new(
        gpu: &Gpu,
        (affine, len): (bool, usize),
        weight: Option<ArrayView1<f32>>,
        bias: Option<ArrayView1<f32>>,
    ) -> Result<Self> {
        check_per_channel(gpu, len)?;
        let (g, b) = affine_or_identity(affine, len, weight, bias)?;
        Ok(SegmentNorm {
            gpu: gpu.clone(),
            affine: Affine::upload(gpu, &g, &b)?,
            running: None,
        })
    }

    /// Loads `{prefix}.weight` and `{prefix}.bias` of `shape` when `affine` (`bias` false:
    /// no bias tensor, zeros).
    fn load(
        gpu: &Gpu,
        sd: &StateDict,
        prefix: &str,
        (affine, bias): (bool, bool),
        shape: &[usize],
    ) -> Result<Self> {
        let len = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        check_per_channel(gpu, len.unwrap_or(usize::MAX))?;
        let (w, b) = load_affine(sd, prefix, (affine, bias), shape)?;
        let len = shape.iter().product();
        Self::new(
            gpu,
            (affine, len),
            w.as_ref().map(|w| w.view()),
            b.as_ref().map(|b| b.view()),
        )
    }

    fn forward(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        (seg, mode, aux): Layout,
        eps: f32,
    ) -> Result<Tensor> {
        x.check_gpu(rec.gpu(), "input")?;
        check_owner(self.gpu.id(), rec.gpu(), "layer")?;
        let a = match mode {
            ApplyMode::Layer => std::borrow::Cow::Borrowed(&self.affine),
            _ => self.affine.for_channels(&self.gpu, x.shape()[1])?,
        };
        if let Some(running) = &self.running {
            let (beta, act) = (Some(&a.beta), Activation::None);
            return record_apply(
                rec,
                ApplyMode::Batch,
                x,
                running,
                &a.gamma,
                beta,
                1,
                eps,
                act,
            );
        }
        let stats = rec.alloc_f32("stats", 2 * seg.count)?;
        record_stats(rec, seg, x, &stats, None, eps)?;
        record_apply(
            rec,
            mode,
            x,
            &stats,
            &a.gamma,
            Some(&a.beta),
            aux,
            eps,
            Activation::None,
        )
    }
}

/// Parameters of `torch.nn.BatchNorm2d`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNorm2dParams {
    /// Channels `C`.
    pub num_features: usize,
    /// Added to the variance (default 1e-5).
    pub eps: f32,
    /// Running-statistics momentum (default `Some(0.1)`); `None` is PyTorch's cumulative
    /// moving average (factor `1 / num_batches_tracked`).
    pub momentum: Option<f32>,
    /// Learnable scale and shift (default true).
    pub affine: bool,
    /// Keep running statistics (default true); without them inference uses batch
    /// statistics, as PyTorch does.
    pub track_running_stats: bool,
}

impl BatchNorm2dParams {
    /// PyTorch's defaults: eps 1e-5, momentum 0.1, affine, tracking running statistics.
    pub fn new(num_features: usize) -> Self {
        BatchNorm2dParams {
            num_features,
            eps: 1e-5,
            momentum: Some(0.1),
            affine: true,
            track_running_stats: true,
        }
    }

    /// Checks the parameters on their own.
    pub fn validate(&self) -> Result<()> {
        positive(&[("num_features", self.num_features)])?;
        check_eps(self.eps)?;
        if let Some(m) = self.momentum {
            // PyTorch takes any factor (outside [0, 1] the update extrapolates).
            fail_if(!m.is_finite(), "momentum", || {
                format!("must be finite, got {m}")
            })?;
        }
        Ok(())
    }

    /// Validates against `[N, C, H, W]` and returns the (unchanged) output shape. `C` must
    /// be `num_features`, unless the layer has nothing per channel (no affine, no running
    /// statistics): then any channel count is taken, as PyTorch does.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        self.validate()?;
        if !self.affine && !self.track_running_stats {
            return check_dims("input", &input).map(|_| input);
        }
        check_channels(input, self.num_features).map(|_| input)
    }

    /// Parameters (gamma and beta when affine), operations and bytes.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let out = self.output_shape(input)?;
        Ok(norm_cost(out, (self.affine, self.num_features)))
    }
}

setters!(BatchNorm2dParams {
    /// Sets eps.
    eps: f32,
    /// Sets the momentum (`None`: cumulative moving average).
    momentum: Option<f32>,
    /// Enables or disables the affine transform.
    affine: bool,
    /// Enables or disables running statistics.
    track_running_stats: bool,
});

/// Batch statistics saved by [`BatchNorm2d::forward_train`] for the backward pass.
#[derive(Clone)]
pub struct BatchStats {
    stats: Arc<PooledBuffer>,
    shape: [usize; 4],
    gpu_id: u64,
}

impl std::fmt::Debug for BatchStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchStats")
            .field("shape", &self.shape)
            .finish()
    }
}

/// Gradients of a batch norm layer, on the GPU. [`BatchNormGrads::download`] reads all
/// three in one submission with PyTorch's shapes.
#[derive(Debug)]
pub struct BatchNormGrads {
    /// dL/dx, shaped like the input.
    pub grad_input: Tensor,
    /// dL/dgamma (`sum(dy * x_hat)`), on the GPU as `[1, C, 1, 1]` (f32 at every
    /// precision).
    pub grad_weight: Tensor,
    /// dL/dbeta (`sum(dy)`), on the GPU as `[1, C, 1, 1]`.
    pub grad_bias: Tensor,
}

/// Gradients of a batch norm layer on the host, with PyTorch's shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormGradArrays {
    /// `x.grad`, shaped like the input.
    pub grad_input: Array4<f32>,
    /// `bn.weight.grad`, shape `[C]`.
    pub grad_weight: Array1<f32>,
    /// `bn.bias.grad`, shape `[C]`.
    pub grad_bias: Array1<f32>,
}

impl BatchNormGrads {
    /// Submits `rec` (which recorded these gradients) and reads all three back in one
    /// submission.
    pub fn download(&self, rec: Recorder<'_>) -> Result<BatchNormGradArrays> {
        let mut arrays = rec
            .download_many(&[&self.grad_input, &self.grad_weight, &self.grad_bias])?
            .into_iter();
        let mut next = || arrays.next().expect("three downloads");
        let (grad_input, w, b) = (next(), next(), next());
        Ok(BatchNormGradArrays {
            grad_input,
            grad_weight: Array1::from_iter(w),
            grad_bias: Array1::from_iter(b),
        })
    }
}

/// A batch norm layer on the GPU with its learnable parameters and running statistics.
pub struct BatchNorm2d {
    gpu: Gpu,
    params: BatchNorm2dParams,
    affine: Affine,
    /// `[C][mean, var]`.
    running: Arc<PooledBuffer>,
    /// Batches of submitted training steps, and of recorded ones not yet submitted.
    batches: Arc<[AtomicU64; 2]>,
}

impl std::fmt::Debug for BatchNorm2d {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchNorm2d")
            .field("params", &self.params)
            .finish()
    }
}

impl BatchNorm2d {
    /// A layer with PyTorch's `weight` and `bias` (length C, both or neither; neither
    /// gives PyTorch's initial 1 and 0) and fresh running statistics (mean 0, variance
    /// 1); set trained ones with [`BatchNorm2d::with_running_stats`].
    pub fn new(
        gpu: &Gpu,
        params: BatchNorm2dParams,
        weight: Option<ArrayView1<f32>>,
        bias: Option<ArrayView1<f32>>,
    ) -> Result<Self> {
        params.validate()?;
        let c = params.num_features;
        check_per_channel(gpu, c)?;
        let (gamma, beta) = affine_or_identity(params.affine, c, weight, bias)?;
        let running: Vec<f32> = (0..c).flat_map(|_| [0.0, 1.0]).collect();
        Ok(BatchNorm2d {
            gpu: gpu.clone(),
            params,
            affine: Affine::upload(gpu, &gamma, &beta)?,
            running: gpu.upload_f32("running_mean", &running)?,
            batches: Arc::new([AtomicU64::new(0), AtomicU64::new(0)]),
        })
    }

    /// The layer with PyTorch's `running_mean` and `running_var` (length C).
    pub fn with_running_stats(
        mut self,
        running_mean: ArrayView1<f32>,
        running_var: ArrayView1<f32>,
    ) -> Result<Self> {
        let c = self.params.num_features;
        check_len("running_mean", &running_mean, c)?;
        check_len("running_var", &running_var, c)?;
        self.running = upload_running(&self.gpu, running_mean, running_var)?;
        Ok(self)
    }

    /// Loads `{prefix}.weight` and `{prefix}.bias` (when affine) and
    /// `{prefix}.running_mean` / `{prefix}.running_var` (when tracking) by PyTorch's names.
    pub fn load(
        gpu: &Gpu,
        params: BatchNorm2dParams,
        sd: &StateDict,
        prefix: &str,
    ) -> Result<Self> {
        params.validate()?;
        let c = params.num_features;
        check_per_channel(gpu, c)?;
        let (w, b) = load_affine(sd, prefix, (params.affine, true), &[c])?;
        let layer = Self::new(
            gpu,
            params,
            w.as_ref().map(|w| w.view()),
            b.as_ref().map(|b| b.view()),
        )?;
        if !params.track_running_stats {
            return Ok(layer);
        }
        let key = |n: &str| crate::weights::key(prefix, n);
        let mean = sd.get1(&key("running_mean"), c)?;
        let var = sd.get1(&key("running_var"), c)?;
        layer.with_running_stats(mean.view(), var.view())
    }

    /// The layer's parameters.
    pub fn params(&self) -> &BatchNorm2dParams {
        &self.params
    }

    /// How many training batches have updated the running statistics.
    pub fn num_batches_tracked(&self) -> u64 {
        self.batches[0].load(Ordering::Relaxed)
    }

    fn check(&self, rec: &Recorder<'_>, x: &Tensor) -> Result<()> {
        x.check_gpu(rec.gpu(), "input")?;
        check_owner(self.gpu.id(), rec.gpu(), "layer")?;
        self.params.output_shape(x.shape()).map(|_| ())
    }

    /// Training-mode forward: normalises with the batch's mean and biased variance over
    /// `(N, H, W)` and, when tracking, updates the running statistics in the same
    /// submission. Returns the output and the batch statistics for [`Self::backward`].
    /// Refuses a batch with one value per channel (`N * H * W = 1`), as PyTorch does.
    pub fn forward_train(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
    ) -> Result<(Tensor, BatchStats)> {
        self.check(rec, x)?;
        let s = x.shape();
        fail_if(s[0] * s[2] * s[3] == 1, "input", || {
            format!(
                "expected more than 1 value per channel when training, got input of shape {s:?}"
            )
        })?;
        // The input's channels: `num_features` unless the layer has nothing per channel.
        let c = s[1];
        let stats = rec.alloc_f32("stats", 4 * c)?;
        // Nothing is recorded unless the whole step can be: the running statistics change
        // exactly when the step runs.
        let elements = s.iter().product::<usize>() as u64;
        rec.gpu()
            .check_binding_size("output", elements.saturating_mul(4))?;
        let running = if self.params.track_running_stats {
            Some((&self.running, self.record_batch(rec)))
        } else {
            None
        };
        let eps = self.params.eps;
        record_stats(rec, Segments::per_channel(s), x, &stats, running, eps)?;
        let y = self.apply(rec, x, &stats, Activation::None)?;
        let saved = BatchStats {
            stats,
            shape: s,
            gpu_id: rec.gpu().id(),
        };
        Ok((y, saved))
    }

    /// Counts a training step of `rec` (tracked once `rec` is submitted, forgotten if it
    /// is dropped) and returns its momentum factor: `momentum`, or for the cumulative
    /// average `1 / n` with `n` counting this step and the recorded ones before it.
    fn record_batch(&self, rec: &mut Recorder<'_>) -> f32 {
        let [done, pending] = &*self.batches;
        let n = done.load(Ordering::Relaxed) + pending.fetch_add(1, Ordering::Relaxed) + 1;
        let batches = self.batches.clone();
        rec.on_submit(move |submitted| {
            batches[1].fetch_sub(1, Ordering::Relaxed);
            if submitted {
                batches[0].fetch_add(1, Ordering::Relaxed);
            }
        });
        self.params.momentum.unwrap_or(1.0 / n as f32)
    }

    fn apply(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        stats: &Arc<PooledBuffer>,
        act: Activation,
    ) -> Result<Tensor> {
        let a = self.affine.for_channels(&self.gpu, x.shape()[1])?;
        let eps = self.params.eps;
        record_apply(
            rec,
            ApplyMode::Batch,
            x,
            stats,
            &a.gamma,
            Some(&a.beta),
            1,
            eps,
            act,
        )
    }

    /// Inference-mode forward with the running statistics (with batch statistics when the
    /// layer does not track running statistics, as PyTorch does).
    pub fn forward_eval(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        self.check(rec, x)?;
        if !self.params.track_running_stats {
            let stats = rec.alloc_f32("stats", 4 * x.shape()[1])?;
            let seg = Segments::per_channel(x.shape());
            record_stats(rec, seg, x, &stats, None, self.params.eps)?;
            return self.apply(rec, x, &stats, Activation::None);
        }
        self.apply(rec, x, &self.running, Activation::None)
    }

    /// Inference-mode forward with an activation fused after the affine (a
    /// pre-activation block's BN + ReLU in one pass). Needs running statistics.
    pub fn forward_eval_act(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        act: Activation,
    ) -> Result<Tensor> {
        self.check(rec, x)?;
        fail_if(
            !self.params.track_running_stats,
            "track_running_stats",
            || "the fused inference path needs running statistics",
        )?;
        self.apply(rec, x, &self.running, act)
    }

    /// Backward of the training-mode forward: `grad_input`, `grad_weight` (gamma) and
    /// `grad_bias` (beta) from the upstream gradient `dy`, the forward input `x` and the
    /// statistics `forward_train` returned.
    pub fn backward(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        dy: &Tensor,
        saved: &BatchStats,
    ) -> Result<BatchNormGrads> {
        self.check_backward(rec, x, dy, saved)?;
        let c = x.shape()[1];
        // A private copy: the backward sums go into its upper half.
        let stats = rec.alloc_f32("stats", 4 * c)?;
        rec.copy(&saved.stats, 0, &stats, 0, 8 * c as u64)?;
        let seg = Segments::per_channel(x.shape());
        let eps = self.params.eps;
        record_segment_stats(rec, seg, (x, Some(dy)), &stats, None, eps)?;
        let grad_input = self.record_grad_input(rec, x, dy, &stats, seg.elements())?;
        // Copied from the f32 sums: parameter gradients are f32 at every precision.
        let grad_bias = rec.empty_f32("grad_bias", [1, c, 1, 1])?;
        let grad_weight = rec.empty_f32("grad_weight", [1, c, 1, 1])?;
        rec.copy(&stats, 8 * c as u64, grad_bias.pooled(), 0, 4 * c as u64)?;
        rec.copy(&stats, 12 * c as u64, grad_weight.pooled(), 0, 4 * c as u64)?;
        Ok(BatchNormGrads {
            grad_input,
            grad_weight,
            grad_bias,
        })
    }

    fn check_backward(
        &self,
        rec: &Recorder<'_>,
        x: &Tensor,
        dy: &Tensor,
        saved: &BatchStats,
    ) -> Result<()> {
        self.check(rec, x)?;
        dy.check_gpu(rec.gpu(), "grad_output")?;
        let s = x.shape();
        super::same_shape("grad_output", s, dy.shape())?;
        check_owner(saved.gpu_id, rec.gpu(), "saved")?;
        fail_if(saved.shape != s, "saved", || {
            format!(
                "statistics of an input of shape {:?} cannot serve an input of shape {s:?}",
                saved.shape
            )
        })
    }

    /// dx from the saved statistics and the per-channel sums of dy and dy·x̂.
    fn record_grad_input(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        dy: &Tensor,
        stats: &Arc<PooledBuffer>,
        count: usize,
    ) -> Result<Tensor> {
        let s = x.shape();
        let c = s[1];
        let gamma = self.affine.for_channels(&self.gpu, c)?;
        let dx = rec.empty("grad_input", s)?;
        let hw = s[2] * s[3];
        let strips = hw.div_ceil(APPLY_PX);
        let total = s[0] * c * strips;
        let u = BackwardParams {
            planes: (s[0] * c) as u32,
            c: c as u32,
            hw: hw as u32,
            count: count as f32,
            strips: strips as u32,
            total: total as u32,
            eps: self.params.eps,
        };
        let args = Args::new()
            .read("x", x)
            .read("dy", dy)
            .read("stats", stats)
            .read("gamma", &gamma.gamma)
            .write("dx", &dx);
        rec.run(&BATCH_NORM_BACKWARD.launch(&(), &u).threads(total), args)?;
        Ok(dx)
    }

    /// Records copies of the running mean and running variance (each `[1, C, 1, 1]`), to
    /// be read in the same submission as the outputs of a training step
    /// ([`Recorder::download_many`]). The statistics are f32 in every context: in one at
    /// [`Precision::F16`](crate::Precision) this is [`Error::Unsupported`](crate::Error)
    /// (read them with [`BatchNorm2d::running_stats`]).
    pub fn record_running_stats(&self, rec: &mut Recorder<'_>) -> Result<(Tensor, Tensor)> {
        check_owner(self.gpu.id(), rec.gpu(), "layer")?;
        if rec.gpu().precision() != crate::Precision::F32 {
            return Err(crate::Error::Unsupported {
                name: "record_running_stats",
                reason: "the running statistics are f32 and are split by an f32 kernel; \
                         in a half-precision context read them with running_stats()"
                    .into(),
            });
        }
        let c = self.params.num_features;
        if c == 1 {
            // One pair: two copies. A split's first piece would be a view of the buffer
            // that training updates in place, not a snapshot.
            let mean = rec.empty_f32("running_mean", [1, 1, 1, 1])?;
            let var = rec.empty_f32("running_var", [1, 1, 1, 1])?;
            rec.copy(&self.running, 0, mean.pooled(), 0, 4)?;
            rec.copy(&self.running, 4, var.pooled(), 0, 4)?;
            return Ok((mean, var));
        }
        // The [mean, var] pairs seen as C samples of 2 channels, split in two.
        let pairs = Tensor::from_pooled(self.running.clone(), [c, 2, 1, 1], self.gpu.id());
        let mut halves = super::channel::split(rec, &pairs, &[1, 1])?.into_iter();
        let mut next = || halves.next().expect("two halves").reshape([1, c, 1, 1]);
        Ok((next()?, next()?))
    }

    /// Downloads the running mean and running variance (each `[C]`).
    pub fn running_stats(&self) -> Result<(Array1<f32>, Array1<f32>)> {
        let c = self.params.num_features;
        let mut rec = self.gpu.recorder();
        let tmp = rec.empty_f32("running_mean", [1, 1, c, 2])?;
        rec.copy(&self.running, 0, tmp.pooled(), 0, 8 * c as u64)?;
        let both = rec.download(&tmp)?;
        let mean = Array1::from_iter((0..c).map(|i| both[[0, 0, i, 0]]));
        let var = Array1::from_iter((0..c).map(|i| both[[0, 0, i, 1]]));
        Ok((mean, var))
    }
}

/// Folds an inference batch norm into the preceding convolution's PyTorch-layout weights
/// `[C_out, C_in/g, kH, kW]` and bias: `w' = w * s`, `b' = (b - mean) * s + beta`, with
/// `s = gamma / sqrt(running_var + eps)` per output channel. The folded convolution gives
/// the same output as the convolution followed by the batch norm, in one pass.
pub fn fold_batch_norm(
    weight: ndarray::ArrayView4<f32>,
    bias: Option<ArrayView1<f32>>,
    gamma: ArrayView1<f32>,
    beta: ArrayView1<f32>,
    running_mean: ArrayView1<f32>,
    running_var: ArrayView1<f32>,
    eps: f32,
) -> Result<(Array4<f32>, Array1<f32>)> {
    check_eps(eps)?;
    let c = weight.shape()[0];
    check_len("weight", &gamma, c)?;
    check_len("bias", &beta, c)?;
    check_len("running_mean", &running_mean, c)?;
    check_len("running_var", &running_var, c)?;
    if let Some(b) = &bias {
        check_len("conv bias", b, c)?;
    }
    let folded: Vec<(f64, f64)> = (0..c)
        .map(|i| {
            let b = bias.as_ref().map_or(0.0, |b| b[i]);
            let bn = [gamma[i], beta[i], running_mean[i], running_var[i]];
            batch_norm_scale_shift(bn, eps, b)
        })
        .collect();
    let mut w = weight.to_owned();
    for (mut out_channel, &(scale, _)) in w.outer_iter_mut().zip(&folded) {
        out_channel.mapv_inplace(|v| (f64::from(v) * scale) as f32);
    }
    let b = Array1::from_iter(folded.iter().map(|&(_, shift)| shift as f32));
    Ok((w, b))
}

/// One channel's batch norm `[gamma, beta, running_mean, running_var]` (eps `eps`) after a
/// convolution whose bias is `bias`, as the scale of the convolution's weights and the
/// shift that replaces its bias: `s = gamma / sqrt(var + eps)`, `(bias - mean) * s +
/// beta`. In f64, so that each folded value is rounded once: the folded weights then
/// carry no more rounding than the weights PyTorch multiplies (f32 products of three
/// roundings measured up to twice the error on deep calibrated networks).
pub(crate) fn batch_norm_scale_shift(bn: [f32; 4], eps: f32, bias: f32) -> (f64, f64) {
    let [gamma, beta, mean, var] = bn.map(f64::from);
    let s = gamma / (var + f64::from(eps)).sqrt();
    (s, (f64::from(bias) - mean) * s + beta)
}

/// The inherent `output_shape` / `cost` and the [`SegmentNormParams`] impl of a norm's
/// parameters `$t`: `p` is the parameters, `affine` their affine flag, `shape` the affine's
/// shape, `start` the input axis it begins at, `bias` whether the affine has a shift,
/// `running` whether running statistics normalise, and `segments` the (count, length,
/// axes) of the segments of a validated input `s`.
macro_rules! segment_norm_params {
    ($t:ident, $dim:ty, |$p:ident, $s:ident| affine: $affine:expr, shape: $shape:expr,
     start: $start:expr, bias: $bias:expr, running: $running:expr,
     channel_groups: $groups:expr, segments: $segments:expr) => {
        impl $t {
            /// Validates against `[N, C, H, W]` (the channels, or for layer norm the
            /// trailing dimensions, must be the affine's shape); returns the output shape,
            /// the input's.
            pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
                self.check_input(input)
            }

            /// Parameters (the affine's scale and shift when affine), operations and bytes.
            pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
                self.norm_cost(input)
            }
        }

        impl sealed::Sealed for $t {}

        impl SegmentNormParams for $t {
            type AffineDim = $dim;
            fn check(&self) -> Result<()> {
                self.validate()
            }
            fn affine_shape(&self) -> (bool, Vec<usize>) {
                let $p = self;
                ($affine, $shape)
            }
            #[allow(unused_variables)] // constant for some norms
            fn affine_start(&self) -> usize {
                let $p = self;
                $start
            }
            #[allow(unused_variables)] // constant for some norms
            fn has_bias(&self) -> bool {
                let $p = self;
                $bias
            }
            #[allow(unused_variables)] // constant for some norms
            fn running_stats(&self) -> bool {
                let $p = self;
                $running
            }
            fn epsilon(&self) -> f32 {
                self.eps
            }
            #[allow(unused_variables)] // constant for some norms
            fn channel_groups(&self) -> Option<usize> {
                let $p = self;
                $groups
            }
            #[allow(unused_variables)] // instance and layer norm need no parameter
            fn segments(&self, $s: [usize; 4]) -> (usize, usize, NormAxes) {
                let $p = self;
                $segments
            }
        }
    };
}

/// Parameters of `torch.nn.GroupNorm`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupNormParams {
    /// Groups `G`, dividing `num_channels`.
    pub num_groups: usize,
    /// Channels `C`.
    pub num_channels: usize,
    /// Added to the variance (default 1e-5).
    pub eps: f32,
    /// Per-channel scale and shift (default true).
    pub affine: bool,
}

impl GroupNormParams {
    /// PyTorch's defaults: eps 1e-5, affine.
    pub fn new(num_groups: usize, num_channels: usize) -> Self {
        GroupNormParams {
            num_groups,
            num_channels,
            eps: 1e-5,
            affine: true,
        }
    }

    /// Checks the parameters on their own.
    pub fn validate(&self) -> Result<()> {
        positive(&[
            ("num_groups", self.num_groups),
            ("num_channels", self.num_channels),
        ])?;
        fail_if(
            !self.num_channels.is_multiple_of(self.num_groups),
            "num_groups",
            || {
                format!(
                    "num_channels ({}) must be divisible by num_groups ({})",
                    self.num_channels, self.num_groups
                )
            },
        )?;
        check_eps(self.eps)
    }
}

segment_norm_params!(GroupNormParams, Ix1, |p, s|
    affine: p.affine,
    shape: vec![p.num_channels],
    start: 1,
    bias: true,
    running: false,
    channel_groups: Some(p.num_groups),
    segments: (s[0] * p.num_groups, s[1] / p.num_groups * s[2] * s[3], NormAxes::Group(p.num_groups))
);

setters!(GroupNormParams {
    /// Sets eps.
    eps: f32,
    /// Enables or disables the affine transform.
    affine: bool,
});

/// `torch.nn.LayerNorm`'s `normalized_shape` on an `[N, C, H, W]` input: the trailing one,
/// two or three dimensions (`[W]`, `[H, W]` or `[C, H, W]`). Built from an array of 1 to 3
/// sizes or from one size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormalizedShape {
    dims: [usize; 3],
    len: usize,
}

impl NormalizedShape {
    /// The sizes, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.dims[..self.len]
    }
}

impl From<usize> for NormalizedShape {
    fn from(w: usize) -> Self {
        NormalizedShape {
            dims: [w, 0, 0],
            len: 1,
        }
    }
}

macro_rules! normalized_shape_from_array {
    ($($n:literal),*) => {$(
        impl From<[usize; $n]> for NormalizedShape {
            fn from(a: [usize; $n]) -> Self {
                let mut dims = [0; 3];
                dims[..$n].copy_from_slice(&a);
                NormalizedShape { dims, len: $n }
            }
        }
    )*};
}
normalized_shape_from_array!(1, 2, 3);

/// Parameters of `torch.nn.LayerNorm(normalized_shape)` on `[N, C, H, W]`: statistics over
/// the trailing `normalized_shape` dimensions (`(C, H, W)` per sample, `(H, W)` per plane
/// or `(W,)` per row), an elementwise affine of that shape.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerNormParams {
    /// The trailing dimensions normalised over.
    pub normalized_shape: NormalizedShape,
    /// Added to the variance (default 1e-5).
    pub eps: f32,
    /// Learnable elementwise scale and shift (default true).
    pub elementwise_affine: bool,
    /// Whether the elementwise affine has a shift (default true; PyTorch's `bias`).
    pub bias: bool,
}

impl LayerNormParams {
    /// PyTorch's defaults: eps 1e-5, elementwise affine with a bias. `normalized_shape` is
    /// `[C, H, W]`, `[H, W]`, `[W]` or `W`.
    pub fn new(normalized_shape: impl Into<NormalizedShape>) -> Self {
        LayerNormParams {
            normalized_shape: normalized_shape.into(),
            eps: 1e-5,
            elementwise_affine: true,
            bias: true,
        }
    }

    /// Checks the parameters on their own.
    pub fn validate(&self) -> Result<()> {
        let dims = self.normalized_shape.dims();
        let mut padded = [1; 4];
        padded[4 - dims.len()..].copy_from_slice(dims);
        check_dims("normalized_shape", &padded)?;
        check_eps(self.eps)
    }
}

segment_norm_params!(LayerNormParams, IxDyn, |p, s|
    affine: p.elementwise_affine,
    shape: p.normalized_shape.dims().to_vec(),
    start: 4 - p.normalized_shape.dims().len(),
    bias: p.bias,
    running: false,
    channel_groups: None,
    segments: {
        let len: usize = p.normalized_shape.dims().iter().product();
        (s.iter().product::<usize>() / len, len, NormAxes::Layer(len))
    }
);

setters!(LayerNormParams {
    /// Sets eps.
    eps: f32,
    /// Enables or disables the elementwise affine transform.
    elementwise_affine: bool,
    /// Enables or disables the affine's shift.
    bias: bool,
});

/// Parameters of `torch.nn.InstanceNorm2d`: each `(n, c)` plane normalised on its own, or
/// with `track_running_stats`, by running statistics per channel (PyTorch's `eval()`
/// mode; segblocks runs inference only for this layer).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InstanceNorm2dParams {
    /// Channels `C`.
    pub num_features: usize,
    /// Added to the variance (default 1e-5).
    pub eps: f32,
    /// Learnable per-channel scale and shift (default false, as in PyTorch).
    pub affine: bool,
    /// Normalise with running statistics (`running_mean`, `running_var`) instead of each
    /// plane's own (default false, as in PyTorch).
    pub track_running_stats: bool,
}

impl InstanceNorm2dParams {
    /// PyTorch's defaults: eps 1e-5, no affine, no running statistics.
    pub fn new(num_features: usize) -> Self {
        InstanceNorm2dParams {
            num_features,
            eps: 1e-5,
            affine: false,
            track_running_stats: false,
        }
    }

    /// Checks the parameters on their own.
    pub fn validate(&self) -> Result<()> {
        positive(&[("num_features", self.num_features)])?;
        check_eps(self.eps)
    }
}

segment_norm_params!(InstanceNorm2dParams, Ix1, |p, s|
    affine: p.affine,
    shape: vec![p.num_features],
    start: 1,
    bias: true,
    running: p.track_running_stats,
    channel_groups: Some(1),
    segments: (s[0] * s[1], s[2] * s[3], NormAxes::Instance)
);

setters!(InstanceNorm2dParams {
    /// Sets eps.
    eps: f32,
    /// Enables or disables the affine transform.
    affine: bool,
    /// Enables or disables normalisation with running statistics.
    track_running_stats: bool,
});

/// Group norm on the GPU. With `G = 1` it is layer norm with a per-channel affine; with
/// `G = C` it is instance norm (tested).
pub type GroupNorm = Norm<GroupNormParams>;
/// Layer norm on the GPU (`torch.nn.LayerNorm` over the trailing 1 to 3 dimensions).
pub type LayerNorm = Norm<LayerNormParams>;
/// Instance norm on the GPU. PyTorch refuses a single value per plane in training mode;
/// here the plane's variance is 0 and the output is the bias.
pub type InstanceNorm2d = Norm<InstanceNorm2dParams>;

mod sealed {
    /// Keeps [`SegmentNormParams`](super::SegmentNormParams) to this module's types.
    pub trait Sealed {}
}

/// Parameters of a norm whose statistics are taken over segments of each sample (group,
/// layer and instance norm): what [`Norm`] needs from them.
pub trait SegmentNormParams: Copy + std::fmt::Debug + sealed::Sealed {
    /// The affine's dimensionality: per channel (`Ix1`) or the normalized shape (`IxDyn`).
    type AffineDim: ndarray::Dimension;
    /// Checks the parameters on their own.
    fn check(&self) -> Result<()>;
    /// Whether there is a learnable affine, and its shape.
    fn affine_shape(&self) -> (bool, Vec<usize>);
    /// The input axis the affine's shape begins at (1: channels; layer norm: the first
    /// normalised dimension).
    fn affine_start(&self) -> usize;
    /// Whether the affine has a shift.
    fn has_bias(&self) -> bool;
    /// Whether running statistics normalise (instance norm with `track_running_stats`).
    fn running_stats(&self) -> bool;
    /// Added to the variance.
    fn epsilon(&self) -> f32;
    /// For the per-channel norms, the groups the channels fall into (group norm's
    /// groups, 1 for instance norm); `None` for layer norm.
    #[doc(hidden)]
    fn channel_groups(&self) -> Option<usize>;
    /// Validates against `[N, C, H, W]`, whose dimensions from the affine's start on must
    /// be the affine's shape, and returns the output shape (the input's). A group or
    /// instance norm with nothing per channel (no affine, no running statistics) takes
    /// any channel count, a multiple of its groups, as PyTorch does.
    fn check_input(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        self.check()?;
        check_dims("input", &input)?;
        let (affine, shape) = self.affine_shape();
        if let Some(groups) = self
            .channel_groups()
            .filter(|_| !affine && !self.running_stats())
        {
            fail_if(!input[1].is_multiple_of(groups), "input", || {
                format!(
                    "expected a number of channels divisible by num_groups ({groups}), got \
                     input of shape {input:?}"
                )
            })?;
            return Ok(input);
        }
        let start = self.affine_start();
        let mut want = input;
        want[start..start + shape.len()].copy_from_slice(&shape);
        super::same_shape("input", want, input).map(|_| input)
    }
    /// Parameters, operations and bytes on `input`.
    fn norm_cost(&self, input: [usize; 4]) -> Result<Cost> {
        let out = self.check_input(input)?;
        let (affine, shape) = self.affine_shape();
        let len: usize = shape.iter().product();
        let mut cost = norm_cost(out, (affine, len));
        if affine && !self.has_bias() {
            cost.params -= len as u64;
        }
        Ok(cost)
    }
    /// How the norm sees a validated input: the segments, the affine's layout and the
    /// number of groups (group norm).
    #[doc(hidden)]
    fn segments(&self, s: [usize; 4]) -> (usize, usize, NormAxes);
}

/// Which axes a norm's affine runs along (an implementation detail of
/// [`SegmentNormParams`]).
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub enum NormAxes {
    /// Per channel, statistics per group of channels.
    Group(usize),
    /// Elementwise over the trailing segment of this many elements.
    Layer(usize),
    /// Per channel, statistics per plane.
    Instance,
}

/// A group, layer or instance norm on the GPU: the parameters `P` say which (see the
/// aliases [`GroupNorm`], [`LayerNorm`] and [`InstanceNorm2d`]).
#[derive(Debug)]
pub struct Norm<P> {
    params: P,
    norm: SegmentNorm,
}

impl<P: SegmentNormParams> Norm<P> {
    /// Uploads the norm; `weight` and `bias` (of the affine's shape: `[C]`, or the
    /// normalized shape for layer norm; both or neither, and only when affine; no `bias`
    /// when `params.bias` is false) default to 1 and 0. With running statistics (instance
    /// norm's `track_running_stats`) they start at mean 0 and variance 1: set trained
    /// ones with [`Norm::with_running_stats`].
    pub fn new(
        gpu: &Gpu,
        params: P,
        weight: Option<ArrayView<f32, P::AffineDim>>,
        bias: Option<ArrayView<f32, P::AffineDim>>,
    ) -> Result<Self> {
        params.check()?;
        let (affine, shape) = params.affine_shape();
        let flat = |name: &'static str, v: Option<ArrayView<f32, P::AffineDim>>| match v {
            Some(v) if v.shape() != shape.as_slice() => Err(Error::ShapeMismatch {
                name,
                expected: shape.clone(),
                actual: v.shape().to_vec(),
            }),
            v => Ok(v.map(|v| v.iter().copied().collect::<Array1<f32>>())),
        };
        let (w, mut b) = (flat("weight", weight)?, flat("bias", bias)?);
        let len = shape.iter().product();
        if !params.has_bias() {
            fail_if(b.is_some(), "bias", || {
                "a bias was given but params.bias is false".to_string()
            })?;
            b = w.as_ref().map(|_| Array1::zeros(len));
        }
        let (w, b) = (w.as_ref().map(|w| w.view()), b.as_ref().map(|b| b.view()));
        let mut norm = SegmentNorm::new(gpu, (affine, len), w, b)?;
        if params.running_stats() {
            let running: Vec<f32> = (0..len).flat_map(|_| [0.0, 1.0]).collect();
            norm.running = Some(gpu.upload_f32("running_mean", &running)?);
        }
        Ok(Norm { params, norm })
    }

    /// Loads `{prefix}.weight` and `{prefix}.bias` (when affine, and the bias when the
    /// params have one), and `{prefix}.running_mean` / `{prefix}.running_var` (when
    /// normalising with running statistics) by PyTorch's names.
    pub fn load(gpu: &Gpu, params: P, sd: &StateDict, prefix: &str) -> Result<Self> {
        params.check()?;
        let (affine, shape) = params.affine_shape();
        let mut norm = SegmentNorm::load(gpu, sd, prefix, (affine, params.has_bias()), &shape)?;
        if params.running_stats() {
            let len = shape.iter().product();
            let key = |n: &str| crate::weights::key(prefix, n);
            let mean = sd.get1(&key("running_mean"), len)?;
            let var = sd.get1(&key("running_var"), len)?;
            norm.running = Some(upload_running(gpu, mean.view(), var.view())?);
        }
        Ok(Norm { params, norm })
    }

    /// The layer with trained `running_mean` and `running_var` (of the affine's length),
    /// for a norm that normalises with running statistics (instance norm with
    /// `track_running_stats`; any other is an error naming the parameter).
    pub fn with_running_stats(
        mut self,
        running_mean: ArrayView1<f32>,
        running_var: ArrayView1<f32>,
    ) -> Result<Self> {
        fail_if(!self.params.running_stats(), "track_running_stats", || {
            "this layer normalises with its input's statistics, not running ones".to_string()
        })?;
        let len = self.params.affine_shape().1.iter().product();
        check_len("running_mean", &running_mean, len)?;
        check_len("running_var", &running_var, len)?;
        let gpu = self.norm.gpu.clone();
        self.norm.running = Some(upload_running(&gpu, running_mean, running_var)?);
        Ok(self)
    }

    /// The layer's parameters.
    pub fn params(&self) -> &P {
        &self.params
    }

    /// Records the normalisation (PyTorch's inference semantics: with running statistics
    /// when the layer has them).
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        let s = self.params.check_input(x.shape())?;
        let (count, len, axes) = self.params.segments(s);
        let (mode, aux) = match axes {
            NormAxes::Group(g) => (ApplyMode::Group, g),
            NormAxes::Layer(len) => (ApplyMode::Layer, len),
            NormAxes::Instance => (ApplyMode::Instance, 1),
        };
        let seg = Segments::contiguous(count, len);
        self.norm
            .forward(rec, x, (seg, mode, aux), self.params.epsilon())
    }
}

/// `[C][mean, var]` on the GPU, as `norm_apply.wgsl`'s batch mode reads it.
fn upload_running(
    gpu: &Gpu,
    mean: ArrayView1<f32>,
    var: ArrayView1<f32>,
) -> Result<Arc<PooledBuffer>> {
    let pairs: Vec<f32> = mean
        .iter()
        .zip(var.iter())
        .flat_map(|(&m, &v)| [m, v])
        .collect();
    gpu.upload_f32("running_mean", &pairs)
}

/// Adaptive instance normalisation: `sigma(style) * (content - mu(content)) /
/// sigma(content) + mu(style)` per `(n, c)`, with population variance and
/// `sigma = sqrt(var + eps)`. Content and style may differ in spatial size but not in
/// batch or channels.
pub fn adain(rec: &mut Recorder<'_>, content: &Tensor, style: &Tensor, eps: f32) -> Result<Tensor> {
    let gpu = rec.gpu();
    content.check_gpu(gpu, "content")?;
    style.check_gpu(gpu, "style")?;
    check_eps(eps)?;
    let (c, s) = (content.shape(), style.shape());
    if c[0] != s[0] || c[1] != s[1] {
        return Err(Error::ShapeMismatch {
            name: "style",
            expected: vec![c[0], c[1], s[2], s[3]],
            actual: s.to_vec(),
        });
    }
    let planes = c[0] * c[1];
    let content_stats = rec.alloc_f32("stats", 2 * planes)?;
    let style_stats = rec.alloc_f32("stats", 2 * planes)?;
    let seg_c = Segments::contiguous(planes, c[2] * c[3]);
    let seg_s = Segments::contiguous(planes, s[2] * s[3]);
    record_stats(rec, seg_c, content, &content_stats, None, eps)?;
    record_stats(rec, seg_s, style, &style_stats, None, eps)?;
    // The style's statistics take gamma's place; AdaIN reads no beta.
    record_apply(
        rec,
        ApplyMode::AdaIn,
        content,
        &content_stats,
        &style_stats,
        None,
        1,
        eps,
        Activation::None,
    )
}

/// timm's `GlobalResponseNorm(dim, eps=1e-6)` (ConvNeXt V2's MLP): `x + bias + weight * x *
/// x_n` with `x_n = g / (mean_c g + eps)`, `g` the L2 norm of each `[n, c]` plane over its
/// `H * W` values and the mean over a sample's channels. The same for timm's
/// channels-last and channels-first forms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GlobalResponseNormParams {
    /// Channels `C` (`dim`).
    pub channels: usize,
    /// Added to the channels' mean norm (timm's default 1e-6).
    pub eps: f32,
}

impl GlobalResponseNormParams {
    /// timm's defaults: eps 1e-6.
    pub fn new(channels: usize) -> Self {
        GlobalResponseNormParams {
            channels,
            eps: 1e-6,
        }
    }

    /// Checks the parameters on their own.
    pub fn validate(&self) -> Result<()> {
        positive(&[("channels", self.channels)])?;
        check_eps(self.eps)
    }

    /// The output shape for an input of `shape` (the same), or an error.
    pub fn output_shape(&self, shape: [usize; 4]) -> Result<[usize; 4]> {
        self.validate()?;
        check_channels(shape, self.channels)?;
        Ok(shape)
    }

    /// `weight` and `bias` as parameters; the statistics read the input twice (mean and
    /// variance of each plane), the affine once, and it writes one map.
    pub fn cost(&self, shape: [usize; 4]) -> Result<Cost> {
        let s = self.output_shape(shape)?;
        let e = s.iter().product::<usize>() as u64;
        Ok(Cost {
            params: 2 * self.channels as u64,
            macs: 3 * e,
            bytes: 4 * (3 * e + 2 * self.channels as u64),
        })
    }
}

setters!(GlobalResponseNormParams {
    /// Sets eps.
    eps: f32,
});

/// Global response normalisation on the GPU ([`GlobalResponseNormParams`]): each plane's
/// mean and variance (`norm_stats.wgsl`, as instance norm takes them; the sum of squares
/// is `H W (mean^2 + var)`), then the per-plane scale `1 + weight * x_n` in a workgroup per
/// sample and the affine `x * scale + bias`: three dispatches, or two where the scale is
/// applied by the next layer as it reads its input ([`GlobalResponseNorm::scale`]).
#[derive(Debug)]
pub struct GlobalResponseNorm {
    gpu_id: u64,
    params: GlobalResponseNormParams,
    /// `weight[C]` then `bias[C]`.
    affine: Arc<PooledBuffer>,
}

impl GlobalResponseNorm {
    /// Uploads the norm with `weight` and `bias` of `[C]` values each.
    pub fn new(
        gpu: &Gpu,
        params: GlobalResponseNormParams,
        weight: ArrayView1<f32>,
        bias: ArrayView1<f32>,
    ) -> Result<Self> {
        params.validate()?;
        check_len("weight", &weight, params.channels)?;
        check_len("bias", &bias, params.channels)?;
        let values: Vec<f32> = weight.iter().chain(bias.iter()).copied().collect();
        Ok(GlobalResponseNorm {
            gpu_id: gpu.id(),
            params,
            affine: gpu.upload_f32("grn affine", &values)?,
        })
    }

    /// Loads `{prefix}.weight` and `{prefix}.bias` (timm's names).
    pub fn load(
        gpu: &Gpu,
        params: GlobalResponseNormParams,
        sd: &StateDict,
        prefix: &str,
    ) -> Result<Self> {
        params.validate()?;
        let key = |n: &str| crate::weights::key(prefix, n);
        let weight = sd.get1(&key("weight"), params.channels)?;
        let bias = sd.get1(&key("bias"), params.channels)?;
        Self::new(gpu, params, weight.view(), bias.view())
    }

    /// The norm's parameters.
    pub fn params(&self) -> &GlobalResponseNormParams {
        &self.params
    }

    /// Records the norm.
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        let scale = self.scale(rec, x)?;
        let s = x.shape();
        let y = rec.empty("output", s)?;
        let planes = s[0] * s[1];
        let total = planes * (s[2] * s[3]).div_ceil(GRN_PX);
        let u = self.uniform(s, total);
        let launch = GRN.launch(&GrnSpec { apply: true }, &u).threads(total);
        let args = Args::new()
            .read_opt("stats", None::<&Tensor>)
            .read("affine", &self.affine)
            .read("x", x)
            .read("scale", &scale)
            .write("y", &y);
        rec.run(&launch, args)?;
        Ok(y)
    }

    /// Records the norm's scale only: `1 + weight * x_n`, shape `[N, C, 1, 1]`, so that
    /// `forward(x) = x * scale + bias` (for a layer that applies the scale as it reads
    /// its input and holds the bias in its own, as a ConvNeXt V2 block's second linear
    /// layer does).
    pub fn scale(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        check_owner(self.gpu_id, rec.gpu(), "layer")?;
        x.check_gpu(rec.gpu(), "input")?;
        let s = self.params.output_shape(x.shape())?;
        let planes = s[0] * s[1];
        let stats = rec.alloc_f32("stats", 2 * planes)?;
        record_stats(
            rec,
            Segments::contiguous(planes, s[2] * s[3]),
            x,
            &stats,
            None,
            0.0,
        )?;
        let scale = rec.empty("scale", [s[0], s[1], 1, 1])?;
        let u = self.uniform(s, s[0]);
        let launch = GRN
            .launch(&GrnSpec { apply: false }, &u)
            .workgroups(s[0])
            .loops(2 * s[1].div_ceil(64) as u64 + 6);
        let args = Args::new()
            .read("stats", &stats)
            .read("affine", &self.affine)
            .read_opt("x", None::<&Tensor>)
            .read_opt("scale", None::<&Tensor>)
            .write("y", &scale);
        rec.run(&launch, args)?;
        Ok(scale)
    }

    fn uniform(&self, s: [usize; 4], total: usize) -> GrnParams {
        GrnParams {
            c: s[1] as u32,
            hw: (s[2] * s[3]) as u32,
            total: total as u32,
            eps: self.params.eps,
        }
    }

    /// What a forward pass on an input of `shape` costs.
    pub fn cost(&self, shape: [usize; 4]) -> Result<Cost> {
        self.params.cost(shape)
    }
}
