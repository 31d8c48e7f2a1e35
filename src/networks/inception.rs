//! Inception-v4 (Cadene's `pretrainedmodels` model, vendored by
//! segmentation_models_pytorch as its `inceptionv4` encoder) as smp builds it: every
//! `BasicConv2d` a convolution without bias, a batch norm (eps 1e-3) and ReLU; every 3x3
//! convolution and max pool padded by 1 (smp's "correct paddings", so that each stride
//! halves the map); the stem, `Mixed_3a` / `4a` / `5a`, four `Inception_A`, `Reduction_A`,
//! seven `Inception_B`, `Reduction_B` and three `Inception_C` blocks, each a concatenation
//! of branches; average pools not counting their padding. smp's features are the outputs
//! of `features.2`, `.4`, `.8`, `.14` and `.21` (64, 192, 384, 1024 and 1536 channels at
//! strides 2 to 32); it cannot be dilated.

use crate::blocks::{conv_bn, Architecture, Graph, Model, Op, ValueId};
use crate::error::{fail_if, Result};
use crate::gpu::Gpu;
use crate::ops::conv::Conv2dParams;
use crate::ops::pool::{AvgPool2dParams, MaxPool2dParams};
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// The batch norms' eps.
const EPS: f32 = 1e-3;

/// The modules of `features` after which smp takes a feature.
const TAPS: [usize; 5] = [2, 4, 8, 14, 21];

/// Channels of smp's features (the input's left out).
pub(crate) const FEATURE_CHANNELS: [usize; 5] = [64, 192, 384, 1024, 1536];

/// One `BasicConv2d`: output channels, kernel, stride, padding (3x3 kernels are padded by
/// 1 whatever this says, as smp patches them).
#[derive(Clone, Copy)]
struct Basic(usize, (usize, usize), usize, (usize, usize));

const fn one(out: usize) -> Basic {
    Basic(out, (1, 1), 1, (0, 0))
}

const fn three(out: usize, stride: usize) -> Basic {
    Basic(out, (3, 3), stride, (1, 1))
}

const fn wide(out: usize) -> Basic {
    Basic(out, (1, 7), 1, (0, 3))
}

const fn tall(out: usize) -> Basic {
    Basic(out, (7, 1), 1, (3, 0))
}

/// Builds smp's Inception-v4 graph pieces.
struct Builder<'a> {
    gpu: &'a Gpu,
    sd: &'a StateDict,
    prefix: &'a str,
}

impl Builder<'_> {
    /// The `BasicConv2d` `name` (its `conv` and `bn`) on `x` of `cin` channels.
    fn basic(
        &self,
        g: &mut Graph,
        x: ValueId,
        cin: usize,
        b: Basic,
        name: &str,
    ) -> Result<ValueId> {
        let Basic(out, kernel, stride, padding) = b;
        let padding = if kernel == (3, 3) { (1, 1) } else { padding };
        let p = Conv2dParams::new(cin, out, kernel)
            .stride(stride)
            .padding(padding)
            .bias(false)
            .activation(Activation::Relu);
        let at = |n: &str| key(self.prefix, &key(name, n));
        let layer = conv_bn(self.gpu, self.sd, p, &at("conv"), &at("bn"), EPS)?;
        Ok(g.add(name, layer, &[x]))
    }

    /// A `Sequential` of `BasicConv2d`s `name.{first}`, `name.{first + 1}`, ...; returns
    /// the last output and its channels.
    fn chain(
        &self,
        g: &mut Graph,
        (mut x, mut cin): (ValueId, usize),
        convs: &[Basic],
        (name, first): (&str, usize),
    ) -> Result<(ValueId, usize)> {
        for (i, &b) in convs.iter().enumerate() {
            x = self.basic(g, x, cin, b, &format!("{name}.{}", first + i))?;
            cin = b.0;
        }
        Ok((x, cin))
    }

    fn max_pool(g: &mut Graph, x: ValueId, name: &str) -> ValueId {
        let pool = MaxPool2dParams::new(3).stride(2).padding(1);
        g.add_multi(name, Op::MaxPool(pool), &[x], 2)[0]
    }

    /// `nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)` then the
    /// `BasicConv2d` `{name}.1`.
    fn pooled_branch(
        &self,
        g: &mut Graph,
        x: ValueId,
        cin: usize,
        out: usize,
        name: &str,
    ) -> Result<ValueId> {
        let pool = AvgPool2dParams::new(3)
            .stride(1)
            .padding(1)
            .count_include_pad(false);
        let y = g.add(format!("{name}.0"), Op::AvgPool(pool), &[x]);
        self.basic(g, y, cin, one(out), &format!("{name}.1"))
    }

    /// Module `features.{i}` on `x` of `cin` channels: its output and channels.
    fn module(&self, g: &mut Graph, x: ValueId, cin: usize, i: usize) -> Result<(ValueId, usize)> {
        let m = format!("features.{i}");
        let at = |n: &str| format!("{m}.{n}");
        let cat = |g: &mut Graph, parts: &[(ValueId, usize)]| {
            let ids: Vec<ValueId> = parts.iter().map(|p| p.0).collect();
            (
                g.add(at("cat"), Op::Concat, &ids),
                parts.iter().map(|p| p.1).sum(),
            )
        };
        Ok(match i {
            0 => (self.basic(g, x, cin, three(32, 2), &m)?, 32),
            1 => (self.basic(g, x, cin, three(32, 1), &m)?, 32),
            2 => (self.basic(g, x, cin, three(64, 1), &m)?, 64),
            3 => {
                let pooled = (Self::max_pool(g, x, &at("maxpool")), cin);
                let conv = (self.basic(g, x, cin, three(96, 2), &at("conv"))?, 96);
                cat(g, &[pooled, conv])
            }
            4 => {
                let b0 = self.chain(g, (x, cin), &[one(64), three(96, 1)], (&at("branch0"), 0))?;
                let convs = [one(64), wide(64), tall(64), three(96, 1)];
                let b1 = self.chain(g, (x, cin), &convs, (&at("branch1"), 0))?;
                cat(g, &[b0, b1])
            }
            5 => {
                let conv = (self.basic(g, x, cin, three(192, 2), &at("conv"))?, 192);
                let pooled = (Self::max_pool(g, x, &at("maxpool")), cin);
                cat(g, &[conv, pooled])
            }
            6..=9 => {
                let b0 = (self.basic(g, x, cin, one(96), &at("branch0"))?, 96);
                let b1 = self.chain(g, (x, cin), &[one(64), three(96, 1)], (&at("branch1"), 0))?;
                let convs = [one(64), three(96, 1), three(96, 1)];
                let b2 = self.chain(g, (x, cin), &convs, (&at("branch2"), 0))?;
                let b3 = (self.pooled_branch(g, x, cin, 96, &at("branch3"))?, 96);
                cat(g, &[b0, b1, b2, b3])
            }
            10 => {
                let b0 = (self.basic(g, x, cin, three(384, 2), &at("branch0"))?, 384);
                let convs = [one(192), three(224, 1), three(256, 2)];
                let b1 = self.chain(g, (x, cin), &convs, (&at("branch1"), 0))?;
                let b2 = (Self::max_pool(g, x, &at("branch2")), cin);
                cat(g, &[b0, b1, b2])
            }
            11..=17 => {
                let b0 = (self.basic(g, x, cin, one(384), &at("branch0"))?, 384);
                let convs = [one(192), wide(224), tall(256)];
                let b1 = self.chain(g, (x, cin), &convs, (&at("branch1"), 0))?;
                let convs = [one(192), tall(192), wide(224), tall(224), wide(256)];
                let b2 = self.chain(g, (x, cin), &convs, (&at("branch2"), 0))?;
                let b3 = (self.pooled_branch(g, x, cin, 128, &at("branch3"))?, 128);
                cat(g, &[b0, b1, b2, b3])
            }
            18 => {
                let b0 =
                    self.chain(g, (x, cin), &[one(192), three(192, 2)], (&at("branch0"), 0))?;
                let convs = [one(256), wide(256), tall(320), three(320, 2)];
                let b1 = self.chain(g, (x, cin), &convs, (&at("branch1"), 0))?;
                let b2 = (Self::max_pool(g, x, &at("branch2")), cin);
                cat(g, &[b0, b1, b2])
            }
            _ => {
                let b0 = (self.basic(g, x, cin, one(256), &at("branch0"))?, 256);
                let row = Basic(256, (1, 3), 1, (0, 1));
                let column = Basic(256, (3, 1), 1, (1, 0));
                let x1 = self.basic(g, x, cin, one(384), &at("branch1_0"))?;
                let b1a = (self.basic(g, x1, 384, row, &at("branch1_1a"))?, 256);
                let b1b = (self.basic(g, x1, 384, column, &at("branch1_1b"))?, 256);
                let x2 = self.basic(g, x, cin, one(384), &at("branch2_0"))?;
                let x2 = self.basic(g, x2, 384, Basic(448, (3, 1), 1, (1, 0)), &at("branch2_1"))?;
                let x2 = self.basic(g, x2, 448, Basic(512, (1, 3), 1, (0, 1)), &at("branch2_2"))?;
                let b2a = (self.basic(g, x2, 512, row, &at("branch2_3a"))?, 256);
                let b2b = (self.basic(g, x2, 512, column, &at("branch2_3b"))?, 256);
                let b3 = (self.pooled_branch(g, x, cin, 256, &at("branch3"))?, 256);
                // cat(x0, cat(x1a, x1b), cat(x2a, x2b), x3) is one concatenation.
                cat(g, &[b0, b1a, b1b, b2a, b2b, b3])
            }
        })
    }
}

/// smp's Inception-v4 encoder appended to `g` after `x` (`in_channels` channels), loaded
/// under `prefix`: its first `depth` features.
pub(crate) fn append(
    g: &mut Graph,
    x: ValueId,
    (gpu, sd, prefix): (&Gpu, &StateDict, &str),
    (in_channels, depth): (usize, usize),
) -> Result<Vec<ValueId>> {
    let b = Builder { gpu, sd, prefix };
    let mut features = vec![x];
    let (mut y, mut c) = (x, in_channels);
    let last = TAPS[depth.clamp(1, 5) - 1];
    for i in 0..=last {
        (y, c) = b.module(g, y, c, i)?;
        if TAPS.contains(&i) {
            features.push(y);
        }
    }
    Ok(features)
}

/// The configuration of smp's `inceptionv4` encoder (Inception-v4 has none of its own
/// beyond the input channels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InceptionV4Config {
    /// Input channels (3).
    pub in_channels: usize,
}

impl Default for InceptionV4Config {
    fn default() -> Self {
        InceptionV4Config { in_channels: 3 }
    }
}

/// smp's Inception-v4 encoder as a network: input `[N, in_channels, H, W]`, output
/// `features.21`'s `[N, 1536, H / 32, W / 32]` (rounded up); [`Model::forward_all`] also
/// gives smp's other features, deepest first.
pub type InceptionV4Features = Model<InceptionV4Config>;

impl Architecture for InceptionV4Config {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        fail_if(self.in_channels == 0, "in_channels", || {
            "must be at least 1, got 0".to_string()
        })
    }

    /// Loads `features.0` .. `features.21` under `prefix` (its `last_linear` ignored).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let mut g = Graph::new();
        let x = g.input();
        let f = append(&mut g, x, (gpu, sd, prefix), (self.in_channels, 5))?;
        g.set_outputs(&[f[5], f[4], f[3], f[2], f[1]]);
        Ok(g)
    }
}
