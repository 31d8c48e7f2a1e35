//! Normalisation with PyTorch's semantics: batch norm (training forward with running
//! statistics, inference, backward, folding into a convolution), group norm, layer norm
//! over `(C, H, W)`, instance norm, and AdaIN.
//!
//! Statistics are computed per segment in two passes (mean, then squared deviations),
//! never as `E[x^2] - E[x]^2`, with one workgroup per segment and a fixed reduction order.
//! Normalisation uses the biased (population) variance; batch norm's running variance
//! uses the unbiased one, as in PyTorch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ndarray::{Array1, Array4, ArrayView1, ArrayView3};

use super::{Activation, Cost};
use crate::error::{invalid, Error, Result};
use crate::gpu::{check_dims, check_owner, Gpu, PooledBuffer, Recorder, Tensor};

const WORKGROUP: u64 = 64;
/// Elements per invocation in `norm_apply.wgsl` and `batch_norm_backward.wgsl` (`PX`).
const APPLY_PX: usize = 16;

fn check_eps(eps: f32) -> Result<()> {
    if !(eps.is_finite() && eps > 0.0) {
        return Err(invalid(
            "eps",
            format!("must be positive and finite, got {eps}"),
        ));
    }
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

fn check_channels(input: [usize; 4], channels: usize) -> Result<()> {
    check_dims("input", &input)?;
    if input[1] != channels {
        return Err(Error::ShapeMismatch {
            name: "input",
            expected: vec![input[0], channels, input[2], input[3]],
            actual: input.to_vec(),
        });
    }
    Ok(())
}

/// Memory traffic of a normalisation: read for the statistics (twice), read and write
/// for the normalisation; a few operations per element.
fn norm_cost(input: [usize; 4], params: u64) -> Cost {
    let elems = input.iter().product::<usize>() as u64;
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
}

/// Records the statistics pass. `mode` 0: mean and biased variance into `stats[0..2S]`
/// (and the running statistics update when `running` is given); 1: backward sums.
#[allow(clippy::too_many_arguments)]
fn record_stats(
    rec: &mut Recorder<'_>,
    seg: Segments,
    x: &Arc<PooledBuffer>,
    dy: &Arc<PooledBuffer>,
    stats: &Arc<PooledBuffer>,
    running: Option<(&Arc<PooledBuffer>, f32)>,
    mode: u32,
    eps: f32,
) -> Result<()> {
    let gpu = rec.gpu();
    let pipeline = gpu.pipeline(
        "norm_stats.wgsl",
        &[],
        &[
            ("MODE", mode as f64),
            ("UPDATE_RUNNING", if running.is_some() { 1.0 } else { 0.0 }),
        ],
    )?;
    let momentum = running.map_or(0.0, |(_, m)| m);
    let running_buf = running.map_or(stats, |(b, _)| b);
    let u = [
        seg.count as u32,
        seg.chunks as u32,
        seg.chunk_len as u32,
        seg.chunk_stride as u32,
        seg.seg_stride as u32,
        momentum.to_bits(),
        eps.to_bits(),
        0,
    ];
    // One workgroup per segment.
    rec.dispatch(
        &pipeline,
        &u,
        &[x, dy, stats, running_buf],
        seg.count as u64,
    )
}

/// Which affine the apply pass uses (the `MODE` of `norm_apply.wgsl`).
#[derive(Clone, Copy)]
enum ApplyMode {
    Batch = 0,
    Group = 1,
    Layer = 2,
    Instance = 3,
    AdaIn = 4,
}

#[allow(clippy::too_many_arguments)]
fn record_apply(
    rec: &mut Recorder<'_>,
    mode: ApplyMode,
    x: &Tensor,
    stats: &Arc<PooledBuffer>,
    gamma: &Arc<PooledBuffer>,
    beta: &Arc<PooledBuffer>,
    groups: usize,
    eps: f32,
) -> Result<Tensor> {
    record_apply_act(
        rec,
        mode,
        x,
        stats,
        gamma,
        beta,
        groups,
        eps,
        Activation::None,
    )
}

/// [`record_apply`] with an activation fused after the affine.
#[allow(clippy::too_many_arguments)]
fn record_apply_act(
    rec: &mut Recorder<'_>,
    mode: ApplyMode,
    x: &Tensor,
    stats: &Arc<PooledBuffer>,
    gamma: &Arc<PooledBuffer>,
    beta: &Arc<PooledBuffer>,
    groups: usize,
    eps: f32,
    act: Activation,
) -> Result<Tensor> {
    let gpu = rec.gpu();
    let s = x.shape();
    let y = rec.empty("output", s)?;
    let hw = s[2] * s[3];
    let strips = hw.div_ceil(APPLY_PX);
    let total = s[0] * s[1] * strips;
    let pipeline = gpu.pipeline(
        "norm_apply.wgsl",
        &[],
        &[("MODE", mode as u32 as f64), ("ACT", act.shader_code())],
    )?;
    let u = [
        (s[0] * s[1]) as u32,
        s[1] as u32,
        hw as u32,
        (s[1] / groups.max(1)) as u32,
        groups as u32,
        strips as u32,
        total as u32,
        eps.to_bits(),
    ];
    rec.dispatch(
        &pipeline,
        &u,
        &[x.pooled(), stats, gamma, beta, y.pooled()],
        (total as u64).div_ceil(WORKGROUP),
    )?;
    Ok(y)
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

    /// Sets eps.
    pub fn eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }

    /// Sets the momentum (`None`: cumulative moving average).
    pub fn momentum(mut self, momentum: Option<f32>) -> Self {
        self.momentum = momentum;
        self
    }

    /// Enables or disables the affine transform.
    pub fn affine(mut self, affine: bool) -> Self {
        self.affine = affine;
        self
    }

    /// Enables or disables running statistics.
    pub fn track_running_stats(mut self, track: bool) -> Self {
        self.track_running_stats = track;
        self
    }

    /// Checks the parameters on their own.
    pub fn validate(&self) -> Result<()> {
        if self.num_features == 0 {
            return Err(invalid("num_features", "must be at least 1, got 0"));
        }
        check_eps(self.eps)?;
        if let Some(m) = self.momentum {
            if !(m.is_finite() && (0.0..=1.0).contains(&m)) {
                return Err(invalid("momentum", format!("must be in [0, 1], got {m}")));
            }
        }
        Ok(())
    }

    /// Validates against `[N, C, H, W]` and returns the (unchanged) output shape.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        self.validate()?;
        check_channels(input, self.num_features)?;
        Ok(input)
    }

    /// Parameters (gamma and beta when affine), operations and bytes.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        self.output_shape(input)?;
        let params = if self.affine {
            2 * self.num_features as u64
        } else {
            0
        };
        Ok(norm_cost(input, params))
    }
}

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

/// Gradients of a batch norm layer.
#[derive(Debug)]
pub struct BatchNormGrads {
    /// dL/dx, shaped like the input.
    pub grad_input: Tensor,
    /// dL/dgamma, shape `[1, C, 1, 1]` (`sum(dy * x_hat)`).
    pub grad_weight: Tensor,
    /// dL/dbeta, shape `[1, C, 1, 1]` (`sum(dy)`).
    pub grad_bias: Tensor,
}

/// A batch norm layer on the GPU with its learnable parameters and running statistics.
pub struct BatchNorm2d {
    gpu: Gpu,
    params: BatchNorm2dParams,
    gamma: Arc<PooledBuffer>,
    beta: Arc<PooledBuffer>,
    /// `[C][mean, var]`.
    running: Arc<PooledBuffer>,
    num_batches_tracked: AtomicU64,
}

impl std::fmt::Debug for BatchNorm2d {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchNorm2d")
            .field("params", &self.params)
            .finish()
    }
}

impl BatchNorm2d {
    /// A fresh layer as PyTorch initialises it: gamma 1, beta 0, running mean 0, running
    /// variance 1.
    pub fn new(gpu: &Gpu, params: BatchNorm2dParams) -> Result<Self> {
        let c = params.num_features;
        Self::with_state(
            gpu,
            params,
            None,
            None,
            Array1::zeros(c).view(),
            Array1::ones(c).view(),
        )
    }

    /// A layer with given state (PyTorch's `weight`, `bias`, `running_mean`,
    /// `running_var`); `weight` and `bias` must be given exactly when `params.affine`.
    pub fn with_state(
        gpu: &Gpu,
        params: BatchNorm2dParams,
        weight: Option<ArrayView1<f32>>,
        bias: Option<ArrayView1<f32>>,
        running_mean: ArrayView1<f32>,
        running_var: ArrayView1<f32>,
    ) -> Result<Self> {
        params.validate()?;
        let c = params.num_features;
        let (gamma, beta) = affine_or_identity(params.affine, c, weight, bias)?;
        check_len("running_mean", &running_mean, c)?;
        check_len("running_var", &running_var, c)?;
        let running: Vec<f32> = running_mean
            .iter()
            .zip(running_var.iter())
            .flat_map(|(&m, &v)| [m, v])
            .collect();
        Ok(BatchNorm2d {
            gpu: gpu.clone(),
            params,
            gamma: gpu.upload_f32("weight", &gamma)?,
            beta: gpu.upload_f32("bias", &beta)?,
            running: gpu.upload_f32("running_mean", &running)?,
            num_batches_tracked: AtomicU64::new(0),
        })
    }

    /// The layer's parameters.
    pub fn params(&self) -> &BatchNorm2dParams {
        &self.params
    }

    /// How many training batches have updated the running statistics.
    pub fn num_batches_tracked(&self) -> u64 {
        self.num_batches_tracked.load(Ordering::Relaxed)
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
        if s[0] * s[2] * s[3] == 1 {
            return Err(invalid(
                "input",
                format!(
                    "expected more than 1 value per channel when training, got input of shape {s:?}"
                ),
            ));
        }
        let c = self.params.num_features;
        let stats = rec.alloc_f32("stats", 4 * c)?;
        let running = if self.params.track_running_stats {
            let tracked = self.num_batches_tracked.fetch_add(1, Ordering::Relaxed) + 1;
            let factor = self.params.momentum.unwrap_or(1.0 / tracked as f32);
            Some((&self.running, factor))
        } else {
            None
        };
        let seg = Segments::per_channel(s);
        record_stats(
            rec,
            seg,
            x.pooled(),
            x.pooled(),
            &stats,
            running,
            0,
            self.params.eps,
        )?;
        let y = record_apply(
            rec,
            ApplyMode::Batch,
            x,
            &stats,
            &self.gamma,
            &self.beta,
            1,
            self.params.eps,
        )?;
        let saved = BatchStats {
            stats,
            shape: s,
            gpu_id: rec.gpu().id(),
        };
        Ok((y, saved))
    }

    /// Inference-mode forward with the running statistics (with batch statistics when the
    /// layer does not track running statistics, as PyTorch does).
    pub fn forward_eval(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        self.check(rec, x)?;
        if !self.params.track_running_stats {
            let stats = rec.alloc_f32("stats", 4 * self.params.num_features)?;
            let seg = Segments::per_channel(x.shape());
            record_stats(
                rec,
                seg,
                x.pooled(),
                x.pooled(),
                &stats,
                None,
                0,
                self.params.eps,
            )?;
            return record_apply(
                rec,
                ApplyMode::Batch,
                x,
                &stats,
                &self.gamma,
                &self.beta,
                1,
                self.params.eps,
            );
        }
        record_apply(
            rec,
            ApplyMode::Batch,
            x,
            &self.running,
            &self.gamma,
            &self.beta,
            1,
            self.params.eps,
        )
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
        if !self.params.track_running_stats {
            return Err(invalid(
                "track_running_stats",
                "the fused inference path needs running statistics",
            ));
        }
        record_apply_act(
            rec,
            ApplyMode::Batch,
            x,
            &self.running,
            &self.gamma,
            &self.beta,
            1,
            self.params.eps,
            act,
        )
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
        self.check(rec, x)?;
        dy.check_gpu(rec.gpu(), "grad_output")?;
        let s = x.shape();
        super::same_shape("grad_output", s, dy.shape())?;
        if saved.shape != s || saved.gpu_id != rec.gpu().id() {
            return Err(invalid(
                "saved",
                format!(
                    "statistics of an input of shape {:?} cannot serve an input of shape {s:?}",
                    saved.shape
                ),
            ));
        }
        let gpu = rec.gpu();
        let c = self.params.num_features;
        // A private copy: the backward sums go into its upper half.
        let stats = rec.alloc_f32("stats", 4 * c)?;
        rec.copy(&saved.stats, 0, &stats, 0, 8 * c as u64);
        let seg = Segments::per_channel(s);
        record_stats(
            rec,
            seg,
            x.pooled(),
            dy.pooled(),
            &stats,
            None,
            1,
            self.params.eps,
        )?;
        let dx = rec.empty("grad_input", s)?;
        let hw = s[2] * s[3];
        let strips = hw.div_ceil(APPLY_PX);
        let total = s[0] * c * strips;
        let pipeline = gpu.pipeline("batch_norm_backward.wgsl", &[], &[])?;
        let u = [
            (s[0] * c) as u32,
            c as u32,
            hw as u32,
            (seg.elements() as f32).to_bits(),
            strips as u32,
            total as u32,
            self.params.eps.to_bits(),
            0,
        ];
        rec.dispatch(
            &pipeline,
            &u,
            &[x.pooled(), dy.pooled(), &stats, &self.gamma, dx.pooled()],
            (total as u64).div_ceil(WORKGROUP),
        )?;
        let grad_bias = rec.empty("grad_bias", [1, c, 1, 1])?;
        let grad_weight = rec.empty("grad_weight", [1, c, 1, 1])?;
        rec.copy(&stats, 8 * c as u64, grad_bias.pooled(), 0, 4 * c as u64);
        rec.copy(&stats, 12 * c as u64, grad_weight.pooled(), 0, 4 * c as u64);
        Ok(BatchNormGrads {
            grad_input: dx,
            grad_weight,
            grad_bias,
        })
    }

    /// Downloads the running mean and running variance.
    pub fn running_stats(&self) -> Result<(Array1<f32>, Array1<f32>)> {
        let c = self.params.num_features;
        let mut rec = self.gpu.recorder();
        let tmp = rec.empty("running_mean", [1, 1, c, 2])?;
        rec.copy(&self.running, 0, tmp.pooled(), 0, 8 * c as u64);
        let both = rec.download(&tmp)?;
        let mean = Array1::from_iter((0..c).map(|i| both[[0, 0, i, 0]]));
        let var = Array1::from_iter((0..c).map(|i| both[[0, 0, i, 1]]));
        Ok((mean, var))
    }
}

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
        (true, None, None) => Ok((vec![1.0; len], vec![0.0; len])),
        (false, None, None) => Ok((vec![1.0; len], vec![0.0; len])),
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
    let scale: Vec<f32> = (0..c)
        .map(|i| gamma[i] / (running_var[i] + eps).sqrt())
        .collect();
    let mut w = weight.to_owned();
    for (i, mut out_channel) in w.outer_iter_mut().enumerate() {
        out_channel.mapv_inplace(|v| v * scale[i]);
    }
    let b = Array1::from_iter(
        (0..c)
            .map(|i| (bias.as_ref().map_or(0.0, |b| b[i]) - running_mean[i]) * scale[i] + beta[i]),
    );
    Ok((w, b))
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

    /// Sets eps.
    pub fn eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }

    /// Enables or disables the affine transform.
    pub fn affine(mut self, affine: bool) -> Self {
        self.affine = affine;
        self
    }

    /// Validates against `[N, C, H, W]`.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        if self.num_groups == 0 || self.num_channels == 0 {
            return Err(invalid(
                "num_groups",
                format!(
                    "num_groups ({}) and num_channels ({}) must be positive",
                    self.num_groups, self.num_channels
                ),
            ));
        }
        if !self.num_channels.is_multiple_of(self.num_groups) {
            return Err(invalid(
                "num_groups",
                format!(
                    "num_channels ({}) must be divisible by num_groups ({})",
                    self.num_channels, self.num_groups
                ),
            ));
        }
        check_eps(self.eps)?;
        check_channels(input, self.num_channels)?;
        Ok(input)
    }

    /// Parameters, operations and bytes.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        self.output_shape(input)?;
        let params = if self.affine {
            2 * self.num_channels as u64
        } else {
            0
        };
        Ok(norm_cost(input, params))
    }
}

/// Group norm on the GPU. With `G = 1` it is layer norm with a per-channel affine; with
/// `G = C` it is instance norm (tested).
pub struct GroupNorm {
    gpu: Gpu,
    params: GroupNormParams,
    gamma: Arc<PooledBuffer>,
    beta: Arc<PooledBuffer>,
}

impl GroupNorm {
    /// Uploads a group norm; `weight`/`bias` (length C) default to 1 and 0.
    pub fn new(
        gpu: &Gpu,
        params: GroupNormParams,
        weight: Option<ArrayView1<f32>>,
        bias: Option<ArrayView1<f32>>,
    ) -> Result<Self> {
        params.output_shape([1, params.num_channels, 1, 1])?;
        let (g, b) = affine_or_identity(params.affine, params.num_channels, weight, bias)?;
        Ok(GroupNorm {
            gpu: gpu.clone(),
            params,
            gamma: gpu.upload_f32("weight", &g)?,
            beta: gpu.upload_f32("bias", &b)?,
        })
    }

    /// Records the normalisation.
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        x.check_gpu(rec.gpu(), "input")?;
        check_owner(self.gpu.id(), rec.gpu(), "layer")?;
        let s = self.params.output_shape(x.shape())?;
        let g = self.params.num_groups;
        let seg = Segments::contiguous(s[0] * g, (s[1] / g) * s[2] * s[3]);
        let stats = rec.alloc_f32("stats", 2 * seg.count)?;
        record_stats(
            rec,
            seg,
            x.pooled(),
            x.pooled(),
            &stats,
            None,
            0,
            self.params.eps,
        )?;
        record_apply(
            rec,
            ApplyMode::Group,
            x,
            &stats,
            &self.gamma,
            &self.beta,
            g,
            self.params.eps,
        )
    }
}

/// `torch.nn.LayerNorm(normalized_shape=(C, H, W))`: statistics over each sample's
/// `(C, H, W)`, elementwise affine of that shape.
pub struct LayerNorm {
    gpu: Gpu,
    shape: [usize; 3],
    eps: f32,
    gamma: Arc<PooledBuffer>,
    beta: Arc<PooledBuffer>,
}

impl LayerNorm {
    /// Uploads a layer norm over `normalized_shape = [C, H, W]`; `weight` and `bias`
    /// (that shape) default to 1 and 0 (also for `elementwise_affine=False`).
    pub fn new(
        gpu: &Gpu,
        normalized_shape: [usize; 3],
        eps: f32,
        weight: Option<ArrayView3<f32>>,
        bias: Option<ArrayView3<f32>>,
    ) -> Result<Self> {
        check_eps(eps)?;
        check_dims(
            "normalized_shape",
            &[
                1,
                normalized_shape[0],
                normalized_shape[1],
                normalized_shape[2],
            ],
        )?;
        let len: usize = normalized_shape.iter().product();
        let take =
            |name: &'static str, v: Option<ArrayView3<f32>>, fill: f32| -> Result<Vec<f32>> {
                match v {
                    None => Ok(vec![fill; len]),
                    Some(v) if v.shape() == normalized_shape => Ok(v.iter().copied().collect()),
                    Some(v) => Err(Error::ShapeMismatch {
                        name,
                        expected: normalized_shape.to_vec(),
                        actual: v.shape().to_vec(),
                    }),
                }
            };
        let g = take("weight", weight, 1.0)?;
        let b = take("bias", bias, 0.0)?;
        Ok(LayerNorm {
            gpu: gpu.clone(),
            shape: normalized_shape,
            eps,
            gamma: gpu.upload_f32("weight", &g)?,
            beta: gpu.upload_f32("bias", &b)?,
        })
    }

    /// Validates against `[N, C, H, W]`: the last three dimensions must be the
    /// normalized shape.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        check_dims("input", &input)?;
        if input[1..] != self.shape {
            return Err(Error::ShapeMismatch {
                name: "input",
                expected: vec![input[0], self.shape[0], self.shape[1], self.shape[2]],
                actual: input.to_vec(),
            });
        }
        Ok(input)
    }

    /// Records the normalisation.
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        x.check_gpu(rec.gpu(), "input")?;
        check_owner(self.gpu.id(), rec.gpu(), "layer")?;
        let s = self.output_shape(x.shape())?;
        let seg = Segments::contiguous(s[0], s[1] * s[2] * s[3]);
        let stats = rec.alloc_f32("stats", 2 * seg.count)?;
        record_stats(rec, seg, x.pooled(), x.pooled(), &stats, None, 0, self.eps)?;
        record_apply(
            rec,
            ApplyMode::Layer,
            x,
            &stats,
            &self.gamma,
            &self.beta,
            1,
            self.eps,
        )
    }

    /// Parameters (2 x C x H x W), operations and bytes.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        self.output_shape(input)?;
        Ok(norm_cost(
            input,
            2 * self.shape.iter().product::<usize>() as u64,
        ))
    }
}

/// `torch.nn.InstanceNorm2d` (without running statistics, PyTorch's default): each
/// `(n, c)` plane normalised on its own, optional per-channel affine.
pub struct InstanceNorm2d {
    gpu: Gpu,
    num_features: usize,
    eps: f32,
    gamma: Arc<PooledBuffer>,
    beta: Arc<PooledBuffer>,
}

impl InstanceNorm2d {
    /// Uploads an instance norm; `weight`/`bias` (length C) given for `affine=True`.
    pub fn new(
        gpu: &Gpu,
        num_features: usize,
        eps: f32,
        weight: Option<ArrayView1<f32>>,
        bias: Option<ArrayView1<f32>>,
    ) -> Result<Self> {
        check_eps(eps)?;
        if num_features == 0 {
            return Err(invalid("num_features", "must be at least 1, got 0"));
        }
        let affine = weight.is_some() || bias.is_some();
        let (g, b) = affine_or_identity(affine, num_features, weight, bias)?;
        Ok(InstanceNorm2d {
            gpu: gpu.clone(),
            num_features,
            eps,
            gamma: gpu.upload_f32("weight", &g)?,
            beta: gpu.upload_f32("bias", &b)?,
        })
    }

    /// Records the normalisation. PyTorch refuses a single value per plane in training
    /// mode; here the plane's variance is 0 and the output is the bias.
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        x.check_gpu(rec.gpu(), "input")?;
        check_owner(self.gpu.id(), rec.gpu(), "layer")?;
        let s = x.shape();
        check_channels(s, self.num_features)?;
        let seg = Segments::contiguous(s[0] * s[1], s[2] * s[3]);
        let stats = rec.alloc_f32("stats", 2 * seg.count)?;
        record_stats(rec, seg, x.pooled(), x.pooled(), &stats, None, 0, self.eps)?;
        record_apply(
            rec,
            ApplyMode::Instance,
            x,
            &stats,
            &self.gamma,
            &self.beta,
            1,
            self.eps,
        )
    }

    /// Parameters, operations and bytes.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        check_channels(input, self.num_features)?;
        Ok(norm_cost(input, 2 * self.num_features as u64))
    }
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
    record_stats(
        rec,
        seg_c,
        content.pooled(),
        content.pooled(),
        &content_stats,
        None,
        0,
        eps,
    )?;
    record_stats(
        rec,
        seg_s,
        style.pooled(),
        style.pooled(),
        &style_stats,
        None,
        0,
        eps,
    )?;
    record_apply(
        rec,
        ApplyMode::AdaIn,
        content,
        &content_stats,
        &style_stats,
        &style_stats,
        1,
        eps,
    )
}
