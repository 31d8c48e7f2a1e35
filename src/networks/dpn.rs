//! Dual Path Networks (Cadene's `pretrainedmodels` DPN, vendored by
//! segmentation_models_pytorch as its `dpn68`, `dpn68b`, `dpn92`, `dpn98`, `dpn107` and
//! `dpn131` encoders) as feature extractors: a stem (`features.conv1_1`: 3x3 for the small
//! DPN-68, 7x7 otherwise, batch norm, ReLU, 3x3 stride-2 max pool) and four stages of dual
//! path blocks. A block carries two paths, a residual one (summed) and a dense one (grown by
//! concatenation); it runs pre-activation 1x1, grouped 3x3 and 1x1 convolutions
//! (`BnActConv2d`: batch norm, ReLU, convolution) on their concatenation, adds the first
//! `num_1x1_c` output channels to the residual path and appends the rest to the dense one;
//! the first block of a stage projects both paths (`c1x1_w_s1` / `c1x1_w_s2`). smp's
//! features are `relu(cat(residual, dense))` after each stage, and the last stage's
//! concatenation through `conv5_bn_ac` (batch norm, ReLU). Every batch norm has eps 1e-3.
//!
//! On the GPU each convolution's following batch norm and ReLU (the next `BnActConv2d`'s)
//! run in its store, the last 1x1 is two convolutions (the residual part adding the
//! residual path in its store, the dense part), and so is a projection: no channel range
//! of a convolution's output is copied out.

use ndarray::s;

use crate::blocks::{conv_bn, Architecture, BnActNode, ConvBnAct, Graph, Model, Op, ValueId};
use crate::error::{fail_if, positive, Result};
use crate::gpu::Gpu;
use crate::ops::conv::{Conv2dParams, ResidualJoin};
use crate::ops::pool::MaxPool2dParams;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// The batch norms' eps in every DPN.
const EPS: f32 = 1e-3;

/// The configuration of `pretrainedmodels`' `DPN(small, num_init_features, k_r, groups, b,
/// k_sec, inc_sec)` without its classifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DpnConfig {
    /// A 3x3 stem and bottlenecks of a quarter width (DPN-68).
    pub small: bool,
    /// The stem's output channels (`num_init_features`).
    pub num_init_features: usize,
    /// The bottleneck width factor (`k_r`): a stage's 1x1 and 3x3 convolutions have `k_r *
    /// bw / (64 * bw_factor)` channels.
    pub k_r: usize,
    /// Groups of the 3x3 convolutions.
    pub groups: usize,
    /// DPN-68b's block end: a batch norm and ReLU, then two 1x1 convolutions (`c1x1_c1`,
    /// `c1x1_c2`) instead of one split.
    pub b: bool,
    /// Blocks per stage.
    pub k_sec: [usize; 4],
    /// Channels each block adds to the dense path, per stage.
    pub inc_sec: [usize; 4],
}

impl DpnConfig {
    /// segmentation_models_pytorch's encoder names `dpn68`, `dpn68b`, `dpn92`, `dpn98`,
    /// `dpn107`, `dpn131`; any other name is an error naming `encoder_name`.
    pub fn from_smp(name: &str) -> Result<Self> {
        let dpn68 = DpnConfig {
            small: true,
            num_init_features: 10,
            k_r: 128,
            groups: 32,
            b: false,
            k_sec: [3, 4, 12, 3],
            inc_sec: [16, 32, 32, 64],
        };
        let large = |num_init_features, k_r, groups, k_sec, inc_sec| DpnConfig {
            small: false,
            num_init_features,
            k_r,
            groups,
            b: false,
            k_sec,
            inc_sec,
        };
        Ok(match name {
            "dpn68" => dpn68,
            "dpn68b" => DpnConfig { b: true, ..dpn68 },
            "dpn92" => large(64, 96, 32, [3, 4, 20, 3], [16, 32, 24, 128]),
            "dpn98" => large(96, 160, 40, [3, 6, 20, 3], [16, 32, 32, 128]),
            "dpn107" => large(128, 200, 50, [4, 8, 20, 3], [20, 64, 64, 128]),
            "dpn131" => large(128, 160, 40, [4, 8, 28, 3], [16, 32, 32, 128]),
            other => {
                return Err(crate::Error::InvalidParam {
                    name: "encoder_name",
                    reason: format!(
                        "{other:?} is not one of smp's DPN encoders (dpn68, dpn68b, dpn92, \
                         dpn98, dpn107, dpn131)"
                    ),
                })
            }
        })
    }

    fn bw_factor(&self) -> usize {
        if self.small {
            1
        } else {
            4
        }
    }

    /// `(bw, r, inc)` of stage `i`: the residual path's width, the bottleneck's, and the
    /// dense growth per block.
    fn stage_widths(&self, i: usize) -> (usize, usize, usize) {
        let bw = (64 << i) * self.bw_factor();
        (bw, self.k_r * bw / (64 * self.bw_factor()), self.inc_sec[i])
    }

    /// Channels of the stem's output and of each stage's feature (smp's `out_channels`
    /// without the input).
    pub fn feature_channels(&self) -> [usize; 5] {
        let mut c = [self.num_init_features, 0, 0, 0, 0];
        for i in 0..4 {
            let (bw, _, inc) = self.stage_widths(i);
            c[i + 1] = bw + (self.k_sec[i] + 2) * inc;
        }
        c
    }

    /// The stem and the first `stages` stages appended to `g` after `x` (`in_channels`
    /// channels), loaded under `prefix` (`features.*` below it); returns the stem's output
    /// and each stage's feature. An `output_stride` of 16 or 8 patches the stages past it
    /// as smp's `make_dilated` does: every convolution of `conv4_*` (16) / `conv5_*` (32)
    /// at stride 1, the 3x3s dilated by the stage's stride over `output_stride` (32:
    /// none).
    pub(crate) fn append_stages(
        &self,
        g: &mut Graph,
        x: ValueId,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        (in_channels, stages, output_stride): (usize, usize, usize),
    ) -> Result<Vec<ValueId>> {
        let at = |n: &str| key(prefix, &key("features", n));
        let k = if self.small { 3 } else { 7 };
        let stem = Conv2dParams::new(in_channels, self.num_init_features, k)
            .stride(2)
            .padding(k / 2)
            .bias(false)
            .activation(Activation::Relu);
        let stem = conv_bn(gpu, sd, stem, &at("conv1_1.conv"), &at("conv1_1.bn"), EPS)?;
        let y = g.add("conv1_1", stem, &[x]);
        let mut outs = vec![y];
        if stages == 0 {
            return Ok(outs);
        }
        let pool = MaxPool2dParams::new(3).stride(2).padding(1);
        let pooled = g.add_multi("conv1_1.pool", Op::MaxPool(pool), &[y], 2)[0];
        // The block input: one map (the stem's) or the two paths.
        let mut paths = Paths::One(pooled, self.num_init_features);
        for i in 0..stages.min(4) {
            let (bw, r, inc) = self.stage_widths(i);
            let rate = super::smp_unet::smp_dilation(4 << i, output_stride);
            let patched = i >= 2 && rate > 1;
            for j in 0..self.k_sec[i] {
                let block = DualPathBlock {
                    width: r,
                    residual: bw,
                    inc,
                    project: j == 0,
                    down: j == 0 && i > 0,
                    stride: if j == 0 && i > 0 && !patched { 2 } else { 1 },
                    dilation: if patched { rate } else { 1 },
                };
                let name = format!("conv{}_{}", i + 2, j + 1);
                paths = self.append_block(g, paths, block, (gpu, sd, &at(&name)), &name)?;
            }
            let Paths::Two(resid, dense, channels) = paths else {
                unreachable!("a stage has a block at least (validated)")
            };
            let joined = g.add(format!("conv{}.cat", i + 2), Op::Concat, &[resid, dense]);
            let feature = if i == 3 {
                let norm = BnActNode::load(
                    gpu,
                    sd,
                    (channels, EPS),
                    &at("conv5_bn_ac.bn"),
                    Activation::Relu,
                )?;
                g.add("conv5_bn_ac", norm, &[joined])
            } else {
                g.add(
                    format!("conv{}.relu", i + 2),
                    Op::Activation(Activation::Relu),
                    &[joined],
                )
            };
            outs.push(feature);
            paths = Paths::Joined(joined, resid, dense, channels);
        }
        Ok(outs)
    }

    /// One dual path block under `prefix` (its weights' names), `name` in the graph.
    fn append_block(
        &self,
        g: &mut Graph,
        input: Paths,
        b: DualPathBlock,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        name: &str,
    ) -> Result<Paths> {
        let at = |n: &str| key(prefix, n);
        let node = |n: &str| key(name, n);
        let (x_in, in_channels) = match input {
            Paths::One(x, c) => (x, c),
            Paths::Joined(joined, _, _, c) => (joined, c),
            Paths::Two(resid, dense, c) => (g.add(node("cat"), Op::Concat, &[resid, dense]), c),
        };
        let relu = Activation::Relu;
        // The residual and dense paths this block extends: a projection of the input's
        // (split into two convolutions), or the input's own.
        let (x_s1, x_s2, dense_channels) = if b.project {
            // Named by the stride the block was built with (smp's dilation patches it to 1).
            let proj = if b.down { "c1x1_w_s2" } else { "c1x1_w_s1" };
            let norm = BnActNode::load(
                gpu,
                sd,
                (in_channels, EPS),
                &at(&format!("{proj}.bn")),
                relu,
            )?;
            let activated = g.add(node(&format!("{proj}.bn")), norm, &[x_in]);
            let weight = format!("{proj}.conv.weight");
            let total = b.residual + 2 * b.inc;
            let mut part = |rows: std::ops::Range<usize>, label: &str| -> Result<ValueId> {
                let p = Conv2dParams::new(in_channels, rows.len(), 1)
                    .stride(b.stride)
                    .bias(false);
                let conv = sliced_conv(gpu, sd, &at(&weight), [total, in_channels], rows, p)?;
                Ok(g.add(node(&format!("{proj}.{label}")), conv, &[activated]))
            };
            let s1 = part(0..b.residual, "residual")?;
            let s2 = part(b.residual..total, "dense")?;
            (s1, s2, 2 * b.inc)
        } else {
            match input {
                Paths::Joined(_, resid, dense, c) | Paths::Two(resid, dense, c) => {
                    (resid, dense, c - b.residual)
                }
                Paths::One(..) => unreachable!("the first block projects"),
            }
        };
        // c1x1_a, with c3x3_b's batch norm and ReLU in its store.
        let norm = BnActNode::load(gpu, sd, (in_channels, EPS), &at("c1x1_a.bn"), relu)?;
        let activated = g.add(node("c1x1_a.bn"), norm, &[x_in]);
        let pa = Conv2dParams::new(in_channels, b.width, 1)
            .bias(false)
            .activation(relu);
        let conv = ConvBnAct::load(gpu, sd, pa, &at("c1x1_a.conv"), Some(&at("c3x3_b.bn")), EPS)?;
        let a = g.add(node("c1x1_a"), conv, &[activated]);
        // c3x3_b, with c1x1_c's batch norm and ReLU (DPN-68b's `CatBnAct`) in its store.
        let pb = Conv2dParams::new(b.width, b.width, 3)
            .stride(b.stride)
            .padding(b.dilation)
            .dilation(b.dilation)
            .groups(self.groups)
            .bias(false)
            .activation(relu);
        let conv = ConvBnAct::load(gpu, sd, pb, &at("c3x3_b.conv"), Some(&at("c1x1_c.bn")), EPS)?;
        let bottleneck = g.add(node("c3x3_b"), conv, &[a]);
        // c1x1_c: the residual part adds the residual path in its store.
        let pc = |out| Conv2dParams::new(b.width, out, 1).bias(false);
        let (c1, c2) = if self.b {
            let c1 = ConvBnAct::load(gpu, sd, pc(b.residual), &at("c1x1_c1"), None, 0.0)?;
            let c2 = ConvBnAct::load(gpu, sd, pc(b.inc), &at("c1x1_c2"), None, 0.0)?;
            (c1, c2)
        } else {
            let (w, total) = (at("c1x1_c.conv.weight"), b.residual + b.inc);
            let shape = [total, b.width];
            let c1 = sliced_conv(gpu, sd, &w, shape, 0..b.residual, pc(b.residual))?;
            let c2 = sliced_conv(gpu, sd, &w, shape, b.residual..total, pc(b.inc))?;
            (c1, c2)
        };
        let c1 = c1.with_residual(ResidualJoin::AddThen(Activation::None))?;
        let resid = g.add(node("c1x1_c.residual"), c1, &[bottleneck, x_s1]);
        let grown = g.add(node("c1x1_c.dense"), c2, &[bottleneck]);
        let dense = g.add(node("dense"), Op::Concat, &[x_s2, grown]);
        Ok(Paths::Two(
            resid,
            dense,
            b.residual + dense_channels + b.inc,
        ))
    }
}

/// A block's input.
#[derive(Clone, Copy, Debug)]
enum Paths {
    /// One map (the stem's), of this many channels.
    One(ValueId, usize),
    /// The residual and dense paths, `cat(residual, dense)` of this many channels not
    /// joined yet.
    Two(ValueId, ValueId, usize),
    /// The two paths and their concatenation (a stage's end joins them for its feature).
    Joined(ValueId, ValueId, ValueId, usize),
}

/// One block's shape.
#[derive(Clone, Copy, Debug)]
struct DualPathBlock {
    /// Channels of the 1x1 and 3x3 bottleneck (`num_1x1_a`, `num_3x3_b`).
    width: usize,
    /// Channels of the residual path (`num_1x1_c`).
    residual: usize,
    /// Channels added to the dense path.
    inc: usize,
    /// Whether the block projects its input (the first of a stage).
    project: bool,
    /// Whether it was built strided (`block_type="down"`: the first of the stages after
    /// the first).
    down: bool,
    stride: usize,
    dilation: usize,
}

/// The 1x1 convolution `params` with output channels `rows` of the weight `name` (of shape
/// `[out, in]` x 1 x 1).
fn sliced_conv(
    gpu: &Gpu,
    sd: &StateDict,
    name: &str,
    [out, cin]: [usize; 2],
    rows: std::ops::Range<usize>,
    params: Conv2dParams,
) -> Result<ConvBnAct> {
    let w = sd.get4(name, [out, cin, 1, 1])?;
    let mut part = StateDict::new();
    part.insert(
        "part.weight",
        w.slice(s![rows, .., .., ..]).to_owned().into_dyn(),
    );
    ConvBnAct::load(gpu, &part, params, "part", None, 0.0)
}

/// A Dual Path Network without its pooling and classifier: input `[N, 3, H, W]`, output
/// the last stage's `relu(bn(cat(residual, dense)))` at `H / 32`; [`Model::forward_all`]
/// also gives the stride-16, 8 and 4 features (`relu(cat(residual, dense))`) and the
/// stem's output, in that order after it.
pub type DpnFeatures = Model<DpnConfig>;

impl Architecture for DpnConfig {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        positive(&[
            ("num_init_features", self.num_init_features),
            ("k_r", self.k_r),
            ("groups", self.groups),
            ("k_sec", self.k_sec.iter().copied().min().unwrap_or(0)),
            ("inc_sec", self.inc_sec.iter().copied().min().unwrap_or(0)),
        ])?;
        fail_if(self.k_sec.iter().any(|&n| n > 1024), "k_sec", || {
            format!("at most 1024 blocks a stage, got {:?}", self.k_sec)
        })?;
        for i in 0..4 {
            let (_, r, _) = self.stage_widths(i);
            fail_if(r == 0 || !r.is_multiple_of(self.groups), "groups", || {
                format!(
                    "stage {}'s 3x3 convolution has {r} channels, not divisible into {} groups",
                    i + 2,
                    self.groups
                )
            })?;
        }
        Ok(())
    }

    /// Loads `features.conv1_1` .. `features.conv5_bn_ac` under `prefix` (its
    /// `last_linear` ignored).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        super::features_deepest_first(|g, x| {
            self.append_stages(g, x, (gpu, sd, prefix), (3, 4, 32))
        })
    }
}
