//! Multi-head scaled dot-product attention over the pixels of feature maps: PyTorch's
//! `F.scaled_dot_product_attention(q, k, v)` (no mask, no dropout) with the heads' tokens
//! read straight from NCHW maps, as the transformer blocks of SegFormer's Mix Transformer
//! compute it after their `Linear` projections (1x1 convolutions here).
//!
//! With `q` of shape `[N, heads * E, Hq, Wq]`, `k` of `[N, heads * E, Hk, Wk]` and `v` of
//! `[N, heads * Ev, Hk, Wk]`, head `h` reads channels `h * E .. (h + 1) * E` (PyTorch's
//! `reshape(N, L, heads, E)` of a token-major tensor), its `L = Hq * Wq` queries and
//! `M = Hk * Wk` keys in row-major pixel order, and writes channels `h * Ev .. (h + 1) *
//! Ev` of the `[N, heads * Ev, Hq, Wq]` output:
//! `y[n, h*Ev + j, l] = sum_m softmax_m(scale * q_l . k_m) v[n, h*Ev + j, m]`.
//!
//! Two options cover smp MAnet's position attention, written with matrix products:
//! [`SoftmaxScope::All`] normalises every score of a sample and head with one softmax,
//! and [`SdpaParams::token_major`] lays the product out token by token before it is read
//! back as a map (PyTorch's `reshape` of a `[N, L, C]` tensor to `[N, C, H, W]`).
//!
//! [`spatial_gather`] is OCR's spatial gather (HRNet-OCR's `SpatialGather_Module`) on the
//! same kernel: attention whose queries are the classes' one-hot vectors, so that each
//! class's softmax over the pixels of its logits weights the features.

use super::{same_dims, Cost};
use crate::error::{fail_if, Result};
use crate::gpu::{check_dims, Recorder, Tensor};
use crate::launch::{
    read, read_opt, specialize, uniform, write, write_opt, Args, Kernel, KernelInfo, LOOP_BUDGET,
};

uniform! {
    /// `shaders/sdpa.wgsl`.
    pub(crate) struct SdpaUniform {
        threads: u32,
        queries: u32,
        blocks: u32,
        keys: u32,
        chunks: u32,
        value_dim: u32,
        scale: f32,
        keys_per_split: u32,
        split_records: u32,
    }
}

uniform! {
    /// `shaders/sdpa_combine.wgsl`.
    pub(crate) struct SdpaCombineUniform {
        threads: u32,
        queries: u32,
        splits: u32,
        chunks: u32,
        value_dim: u32,
        heads: u32,
    }
}

uniform! {
    /// `shaders/sdpa_global.wgsl`.
    pub(crate) struct SdpaGlobalUniform {
        maps: u32,
        queries: u32,
        splits: u32,
        chunks: u32,
        split_records: u32,
    }
}

specialize! {
    /// The constants of `sdpa.wgsl`: the head's query / key channels and the value
    /// channels an invocation accumulates.
    struct SdpaSpec {
        head_dim: u32 => "HEAD_DIM",
        value_chunk: u32 => "VALUE_CHUNK",
        query_vecs: u32 => "QUERY_VECS",
        key_step: u32 => "KEY_STEP",
        split: bool => "SPLIT",
        one_hot_queries: bool => "ONE_HOT_QUERIES",
    }
}

specialize! {
    /// The constants of `sdpa_combine.wgsl`: the value channels of a chunk, one softmax
    /// over every score, the output token-major.
    struct SdpaCombineSpec {
        value_chunk: u32 => "VALUE_CHUNK",
        global: bool => "GLOBAL",
        token_major: bool => "TOKEN_MAJOR",
    }
}

const SDPA: Kernel<SdpaUniform, SdpaSpec> = Kernel::new(
    "sdpa.wgsl",
    &[
        read("q"),
        read_opt("k"),
        read_opt("v"),
        write_opt("y"),
        write_opt("stats"),
        write_opt("partial"),
        read_opt("k4"),
        read_opt("v4"),
    ],
);

const SDPA_COMBINE: Kernel<SdpaCombineUniform, SdpaCombineSpec> = Kernel::new(
    "sdpa_combine.wgsl",
    &[
        read("stats"),
        read("partial"),
        write("y"),
        read_opt("global_stats"),
    ],
);

const SDPA_GLOBAL: Kernel<SdpaGlobalUniform, ()> =
    Kernel::new("sdpa_global.wgsl", &[read("stats"), write("global_stats")]);

/// The kernels of this family.
pub(crate) const KERNELS: &[&dyn KernelInfo] = &[&SDPA, &SDPA_COMBINE, &SDPA_GLOBAL];

/// Which scores one softmax normalises.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SoftmaxScope {
    /// Each query's scores over the keys (attention as PyTorch's
    /// `scaled_dot_product_attention` computes it).
    #[default]
    Keys,
    /// Every score of a sample and head at once (`softmax(scores.view(N, -1))`: smp
    /// MAnet's position attention block).
    All,
}

/// The largest query / key channels a head may have: the kernel keeps a query in
/// registers.
pub const MAX_HEAD_DIM: usize = 256;

/// Value channels one invocation accumulates at most (more are split over invocations,
/// each walking the keys again).
const MAX_VALUE_CHUNK: usize = 64;

/// The attention kernel's variants: how many queries one invocation computes, each key
/// and value element loaded once for all of them (more queries: fewer loads a product,
/// more registers and fewer invocations), and whether the keys and values are read four
/// at a time (vec4 loads along the keys: a quarter of the load instructions; the key map's
/// pixel count must be a multiple of 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SdpaKernel {
    /// 4 queries (one vec4), one key a step.
    Queries4,
    /// 8 queries (two vec4s), one key a step.
    Queries8,
    /// 4 queries, keys and values four at a time.
    Queries4Keys4,
    /// 8 queries, keys and values four at a time.
    Queries8Keys4,
}

impl SdpaKernel {
    /// Every variant, for tests and benches that force each.
    pub const ALL: [SdpaKernel; 4] = [
        SdpaKernel::Queries4,
        SdpaKernel::Queries8,
        SdpaKernel::Queries4Keys4,
        SdpaKernel::Queries8Keys4,
    ];

    fn query_vecs(self) -> usize {
        match self {
            SdpaKernel::Queries4 | SdpaKernel::Queries4Keys4 => 1,
            SdpaKernel::Queries8 | SdpaKernel::Queries8Keys4 => 2,
        }
    }

    /// Keys a step of the walk.
    fn key_step(self) -> usize {
        match self {
            SdpaKernel::Queries4 | SdpaKernel::Queries8 => 1,
            SdpaKernel::Queries4Keys4 | SdpaKernel::Queries8Keys4 => 4,
        }
    }

    /// Whether the variant runs on a key map of `keys` pixels.
    pub fn supports(self, keys: usize) -> bool {
        keys.is_multiple_of(self.key_step())
    }
}

/// The kernel [`scaled_dot_product_attention`] runs for a query map of `queries` pixels
/// (`N * heads` maps of them) over `keys` keys: 8 queries an invocation while that still
/// leaves 256 invocations (4 workgroups) to spread over the device, 4 otherwise; keys four
/// at a time where their count allows.
pub fn select_kernel(maps: usize, queries: usize, keys: usize) -> SdpaKernel {
    let wide = maps * queries.div_ceil(8) >= 256;
    match (wide, keys.is_multiple_of(4)) {
        (true, true) => SdpaKernel::Queries8Keys4,
        (true, false) => SdpaKernel::Queries8,
        (false, true) => SdpaKernel::Queries4Keys4,
        (false, false) => SdpaKernel::Queries4,
    }
}

/// Parameters of [`scaled_dot_product_attention`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SdpaParams {
    /// Heads: the query's, key's and value's channels are split into this many equal
    /// groups.
    pub num_heads: usize,
    /// The factor of the dot products; `None` is PyTorch's default `1 / sqrt(E)`.
    pub scale: Option<f32>,
    /// Which scores a softmax normalises (each query's, the default).
    pub softmax: SoftmaxScope,
    /// The output written token-major: the buffer holds `[N, L, heads * Ev]` (each
    /// query's channels together), which the `[N, heads * Ev, Hq, Wq]` tensor returned
    /// reads as PyTorch reads `y.reshape(N, heads * Ev, Hq, Wq)` of that token-major `y`
    /// (smp MAnet's `sp_map.reshape(...)`). Off by default: channel-major, the usual map.
    pub token_major: bool,
}

impl SdpaParams {
    /// `num_heads` heads, PyTorch's default scale.
    pub fn new(num_heads: usize) -> Self {
        SdpaParams {
            num_heads,
            scale: None,
            softmax: SoftmaxScope::Keys,
            token_major: false,
        }
    }

    /// An explicit scale (PyTorch's `scale` argument, the Mix Transformer's `qk_scale`).
    pub fn scale(mut self, scale: f32) -> Self {
        self.scale = Some(scale);
        self
    }

    /// One softmax over `scope`.
    pub fn softmax(mut self, scope: SoftmaxScope) -> Self {
        self.softmax = scope;
        self
    }

    /// The output written token-major (see [`SdpaParams::token_major`]).
    pub fn token_major(mut self, token_major: bool) -> Self {
        self.token_major = token_major;
        self
    }

    /// Query / key channels per head for a query of `channels` channels.
    fn head_dim(&self, channels: usize) -> usize {
        channels / self.num_heads.max(1)
    }

    /// The scale used for queries of `channels` channels.
    pub fn scale_for(&self, channels: usize) -> f32 {
        self.scale
            .unwrap_or_else(|| 1.0 / (self.head_dim(channels) as f32).sqrt())
    }

    /// Validates the query, key and value shapes; returns the output's,
    /// `[N, value channels, Hq, Wq]`.
    pub fn output_shape(&self, q: [usize; 4], k: [usize; 4], v: [usize; 4]) -> Result<[usize; 4]> {
        check_dims("query", &q)?;
        check_dims("key", &k)?;
        check_dims("value", &v)?;
        fail_if(self.num_heads == 0, "num_heads", || {
            "must be positive".to_string()
        })?;
        if let Some(s) = self.scale {
            fail_if(!s.is_finite(), "scale", || {
                format!("must be finite, got {s}")
            })?;
        }
        let heads = self.num_heads;
        fail_if(!q[1].is_multiple_of(heads), "num_heads", || {
            format!("{heads} does not divide the query's {} channels", q[1])
        })?;
        fail_if(!v[1].is_multiple_of(heads), "num_heads", || {
            format!("{heads} does not divide the value's {} channels", v[1])
        })?;
        let e = q[1] / heads;
        fail_if(e > MAX_HEAD_DIM, "query", || {
            format!("{e} channels a head; at most {MAX_HEAD_DIM} are supported")
        })?;
        same_dims("key", &[q[0], q[1]], &k[..2])?;
        same_dims("value", &[k[0], v[1], k[2], k[3]], &v)?;
        Ok([q[0], v[1], q[2], q[3]])
    }

    /// MACs of the two products (`L * M * (E + Ev)` a sample and head) and the bytes of
    /// the three inputs and the output (f32); no parameters.
    pub fn cost(&self, q: [usize; 4], k: [usize; 4], v: [usize; 4]) -> Result<Cost> {
        let y = self.output_shape(q, k, v)?;
        let (l, m) = (q[2] * q[3], k[2] * k[3]);
        let elems: usize = [q, k, v, y]
            .iter()
            .map(|s| s.iter().product::<usize>())
            .sum();
        Ok(Cost {
            params: 0,
            macs: (q[0] * l * m * (q[1] + v[1])) as u64,
            bytes: 4 * elems as u64,
        })
    }
}

/// Records attention of `q` over `k` / `v` (see the module's documentation for the
/// layout) with the kernel [`select_kernel`] picks; typed errors for shapes that do not
/// match.
pub fn scaled_dot_product_attention(
    rec: &mut Recorder<'_>,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    params: SdpaParams,
) -> Result<Tensor> {
    let (qs, heads) = (q.shape(), params.num_heads.max(1));
    let ks = k.shape();
    let kernel = select_kernel(qs[0] * heads, qs[2] * qs[3], ks[2] * ks[3]);
    scaled_dot_product_attention_with(rec, (q, k, v), params, kernel)
}

/// [`scaled_dot_product_attention`] with the kernel variant forced.
pub fn scaled_dot_product_attention_with(
    rec: &mut Recorder<'_>,
    (q, k, v): (&Tensor, &Tensor, &Tensor),
    params: SdpaParams,
    kernel: SdpaKernel,
) -> Result<Tensor> {
    q.check_gpu(rec.gpu(), "query")?;
    k.check_gpu(rec.gpu(), "key")?;
    v.check_gpu(rec.gpu(), "value")?;
    let out = params.output_shape(q.shape(), k.shape(), v.shape())?;
    attend(rec, Some(q), (k, v), params, out, kernel)
}

/// Records the attention of validated shapes into a new tensor of shape `out`: of the
/// query map `q`, or (`None`) of one-hot queries, query `l` of a head the `l`-th unit
/// vector of its `E` channels, whose score for key `m` is the key's channel `l` itself.
fn attend(
    rec: &mut Recorder<'_>,
    q: Option<&Tensor>,
    (k, v): (&Tensor, &Tensor),
    params: SdpaParams,
    out: [usize; 4],
    kernel: SdpaKernel,
) -> Result<Tensor> {
    let (ks, vs) = (k.shape(), v.shape());
    let heads = params.num_heads;
    let (e, ev) = (ks[1] / heads, vs[1] / heads);
    let chunks = ev.div_ceil(MAX_VALUE_CHUNK);
    let value_chunk = ev.div_ceil(chunks);
    let (l, m) = (out[2] * out[3], ks[2] * ks[3]);
    // Queries a thread of the combining pass, blocks of 4 a thread of the attention pass.
    let records = ks[0] * heads * chunks * l;
    let query_vecs = kernel.query_vecs();
    let blocks = l.div_ceil(4 * query_vecs);
    let threads = ks[0] * heads * chunks * blocks;
    // Each invocation walks at most the loop budget (Mesa's software drivers stop an
    // invocation's loops after 65,535 iterations in all, silently); longer walks are
    // split over the keys and joined by a second pass. A key costs the dot products, the
    // accumulation and, when a maximum grows, the rescaling.
    fail_if(!kernel.supports(m), "kernel", || {
        format!("{kernel:?} needs a key count divisible by 4, got {m}")
    })?;
    let step = kernel.key_step();
    // One-hot queries read their scores (at most 2 x 4 lanes' loads a step, the widest
    // variant's) instead of walking the E channels, and load no query.
    let (score_loops, query_loads) = match q {
        Some(_) => (e, e),
        None => (8, 0),
    };
    let per_step = (score_loops + 2 * value_chunk) as u64;
    // Outside the walk: loading the queries, and writing 4 queries' partial results (or
    // outputs) a vec4 of them. The splits are planned for the widest variant (8 queries),
    // so that every variant of a key step splits alike and gives the same bits.
    let fixed = (query_vecs * (query_loads + 5 * value_chunk)) as u64;
    let widest = (2 * (query_loads + 5 * value_chunk)) as u64;
    let keys_per_split = step * (LOOP_BUDGET.saturating_sub(widest) / per_step).max(1) as usize;
    let splits = m.div_ceil(keys_per_split);
    let global = params.softmax == SoftmaxScope::All;
    // The one-pass kernel writes a query's normalised, channel-major output; the rest
    // goes through the combining pass.
    let direct = splits == 1 && !global && !params.token_major;
    let y = rec.empty("output", out)?;
    let u = SdpaUniform {
        threads: threads as u32,
        queries: l as u32,
        blocks: blocks as u32,
        keys: m as u32,
        chunks: chunks as u32,
        value_dim: ev as u32,
        scale: params.scale_for(ks[1]),
        keys_per_split: keys_per_split as u32,
        split_records: records as u32,
    };
    let spec = SdpaSpec {
        head_dim: e as u32,
        value_chunk: value_chunk as u32,
        query_vecs: query_vecs as u32,
        key_step: step as u32,
        split: !direct,
        one_hot_queries: q.is_none(),
    };
    let launch = SDPA
        .launch(&spec, &u)
        .threads(threads * splits)
        .loops((keys_per_split.min(m) / step) as u64 * per_step + fixed);
    // One-hot queries read no query map: the key map stands in for the binding.
    let args = Args::new().read("q", q.unwrap_or(k));
    let args = if step == 4 {
        args.read("k4", k).read("v4", v)
    } else {
        args.read("k", k).read("v", v)
    };
    if direct {
        rec.run(&launch, args.write("y", &y))?;
        return Ok(y);
    }
    let stats = rec.empty_f32("attention statistics", [splits, records, 2, 1])?;
    let partial = rec.empty_f32("attention partial sums", [splits, records, value_chunk, 1])?;
    rec.run(
        &launch,
        args.write("stats", &stats).write("partial", &partial),
    )?;
    let u = SdpaCombineUniform {
        threads: records as u32,
        queries: l as u32,
        splits: splits as u32,
        chunks: chunks as u32,
        value_dim: ev as u32,
        heads: heads as u32,
    };
    let spec = SdpaCombineSpec {
        value_chunk: value_chunk as u32,
        global,
        token_major: params.token_major,
    };
    let launch = SDPA_COMBINE
        .launch(&spec, &u)
        .threads(records)
        .loops((splits * (value_chunk + 1) + value_chunk) as u64);
    let mut args = Args::new()
        .read("stats", &stats)
        .read("partial", &partial)
        .write("y", &y);
    let global_stats;
    if global {
        let maps = ks[0] * heads;
        global_stats = rec.empty_f32("attention softmax statistics", [maps, 2, 1, 1])?;
        let u = SdpaGlobalUniform {
            maps: maps as u32,
            queries: l as u32,
            splits: splits as u32,
            chunks: chunks as u32,
            split_records: records as u32,
        };
        let reduce = SDPA_GLOBAL
            .launch(&(), &u)
            .threads(maps)
            .loops((2 * splits * l) as u64);
        let reduce_args = Args::new()
            .read("stats", &stats)
            .write("global_stats", &global_stats);
        rec.run(&reduce, reduce_args)?;
        args = args.read("global_stats", &global_stats);
    }
    rec.run(&launch, args)?;
    Ok(y)
}

/// Parameters of [`spatial_gather`]: OCR's `SpatialGather_Module(cls_num, scale)` (its
/// `cls_num` is unused by the module: the class count is the logits' channels).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpatialGatherParams {
    /// The factor of the logits before their softmax (`scale`; 1 by default).
    pub scale: f32,
}

impl Default for SpatialGatherParams {
    fn default() -> Self {
        Self::new()
    }
}

impl SpatialGatherParams {
    /// PyTorch's default, `scale = 1`.
    pub fn new() -> Self {
        SpatialGatherParams { scale: 1.0 }
    }

    /// The factor of the logits before their softmax.
    pub fn scale(mut self, scale: f32) -> Self {
        self.scale = scale;
        self
    }

    /// The attention this gather is: one head whose queries are the classes' one-hot
    /// vectors.
    fn attention(&self) -> SdpaParams {
        SdpaParams::new(1).scale(self.scale)
    }

    /// Validates the logits' `[N, K, H, W]` and the features' `[N, C, H, W]`; returns the
    /// output's, `[N, C, K, 1]`.
    pub fn output_shape(&self, probs: [usize; 4], feats: [usize; 4]) -> Result<[usize; 4]> {
        check_dims("probs", &probs)?;
        check_dims("feats", &feats)?;
        fail_if(!self.scale.is_finite(), "scale", || {
            format!("must be finite, got {}", self.scale)
        })?;
        same_dims("feats", &[probs[0], feats[1], probs[2], probs[3]], &feats)?;
        Ok([probs[0], feats[1], probs[1], 1])
    }

    /// MACs of the weighted sums (`K * H * W * C` a sample) and the bytes of the two
    /// inputs and the output (f32); no parameters.
    pub fn cost(&self, probs: [usize; 4], feats: [usize; 4]) -> Result<Cost> {
        let y = self.output_shape(probs, feats)?;
        let elems: usize = [probs, feats, y]
            .iter()
            .map(|s| s.iter().product::<usize>())
            .sum();
        Ok(Cost {
            params: 0,
            macs: (probs[0] * probs[1] * probs[2] * probs[3] * feats[1]) as u64,
            bytes: 4 * elems as u64,
        })
    }
}

/// Records OCR's spatial gather (HRNet-OCR's `SpatialGather_Module`): each class's
/// softmax over the pixels of `probs` (`[N, K, H, W]` logits, times `scale`) weights the
/// pixels of `feats` (`[N, C, H, W]`), giving the classes' region representations as
/// `[N, C, K, 1]`: `y[n, c, k, 0] = sum_p softmax_p(scale * probs[n, k, p]) feats[n, c, p]`
/// (PyTorch's `matmul(softmax(scale * probs.view(N, K, -1), 2), feats.view(N, C,
/// -1).permute(0, 2, 1)).permute(0, 2, 1).unsqueeze(3)`). It runs the attention kernel
/// with one-hot queries (the class `k` reads its logits as its scores), with the variant
/// [`select_kernel`] picks; any class count. Non-finite logits follow PyTorch's softmax
/// as [`scaled_dot_product_attention`] does.
pub fn spatial_gather(
    rec: &mut Recorder<'_>,
    probs: &Tensor,
    feats: &Tensor,
    params: SpatialGatherParams,
) -> Result<Tensor> {
    let (ps, fs) = (probs.shape(), feats.shape());
    let kernel = select_kernel(ps[0], ps[1], fs[2] * fs[3]);
    spatial_gather_with(rec, (probs, feats), params, kernel)
}

/// [`spatial_gather`] with the kernel variant forced.
pub fn spatial_gather_with(
    rec: &mut Recorder<'_>,
    (probs, feats): (&Tensor, &Tensor),
    params: SpatialGatherParams,
    kernel: SdpaKernel,
) -> Result<Tensor> {
    probs.check_gpu(rec.gpu(), "probs")?;
    feats.check_gpu(rec.gpu(), "feats")?;
    let out = params.output_shape(probs.shape(), feats.shape())?;
    attend(rec, None, (probs, feats), params.attention(), out, kernel)
}
