//! Inception-v4 and Inception-ResNet-v2 (Cadene's `pretrainedmodels` models, vendored by
//! segmentation_models_pytorch as its `inceptionv4` and `inceptionresnetv2` encoders) as
//! smp builds them. Inception-v4: every
//! `BasicConv2d` a convolution without bias, a batch norm (eps 1e-3) and ReLU; every 3x3
//! convolution and max pool padded by 1 (smp's "correct paddings", so that each stride
//! halves the map); the stem, `Mixed_3a` / `4a` / `5a`, four `Inception_A`, `Reduction_A`,
//! seven `Inception_B`, `Reduction_B` and three `Inception_C` blocks, each a concatenation
//! of branches; average pools not counting their padding. smp's features are the outputs
//! of `features.2`, `.4`, `.8`, `.14` and `.21` (64, 192, 384, 1024 and 1536 channels at
//! strides 2 to 32); it cannot be dilated.
//!
//! Inception-ResNet-v2: the same `BasicConv2d` and paddings; a stem, `mixed_5b`, ten
//! `Block35`, `mixed_6a`, twenty `Block17`, `mixed_7a`, nine `Block8`, `block8` and
//! `conv2d_7b`. Each residual block concatenates its branches, projects them with a 1x1
//! convolution (with bias) scaled by the block's `scale` (0.17, 0.10, 0.20; 1 for
//! `block8`) and adds its input, then ReLU (none after `block8`): on the GPU the scale is
//! folded into the projection's weights and the sum and ReLU run in its store. smp's
//! features: after `conv2d_2b`, `conv2d_4a`, `repeat`, `repeat_1` and `conv2d_7b` (64,
//! 192, 320, 1088 and 1536 channels).

use crate::blocks::{conv_bn, Architecture, ConvBnAct, Graph, Model, Op, ValueId};
use crate::error::{fail_if, Result};
use crate::gpu::Gpu;
use crate::ops::conv::{Conv2dParams, ResidualJoin};
use crate::ops::pool::{AvgPool2dParams, MaxPool2dParams};
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// The batch norms' eps.
const EPS: f32 = 1e-3;

/// The modules of `features` after which smp takes a feature.
const TAPS: [usize; 5] = [2, 4, 8, 14, 21];

/// Channels of smp's Inception-v4 features (the input's left out).
const V4_FEATURE_CHANNELS: [usize; 5] = [64, 192, 384, 1024, 1536];

/// Channels of smp's Inception-ResNet-v2 features (the input's left out).
const RESNET_V2_FEATURE_CHANNELS: [usize; 5] = [64, 192, 320, 1088, 1536];

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

    /// One concatenation of `parts` named `name`.
    fn cat(g: &mut Graph, parts: &[(ValueId, usize)], name: &str) -> (ValueId, usize) {
        let ids: Vec<ValueId> = parts.iter().map(|p| p.0).collect();
        (
            g.add(name, Op::Concat, &ids),
            parts.iter().map(|p| p.1).sum(),
        )
    }

    /// An Inception-ResNet-v2 residual block `name` on `x` (`cin` channels): its
    /// branches' concatenation projected by `{name}.conv2d` (1x1 with bias) to `cin`,
    /// scaled, added to `x`, then ReLU where `relu`.
    fn residual(
        &self,
        g: &mut Graph,
        (x, cin): (ValueId, usize),
        branches: &[(ValueId, usize)],
        (name, scale, relu): (&str, f32, bool),
    ) -> Result<ValueId> {
        let (joined, width) = Self::cat(g, branches, &format!("{name}.cat"));
        let p = Conv2dParams::new(width, cin, 1);
        let act = if relu {
            Activation::Relu
        } else {
            Activation::None
        };
        // The scale is a constant of the module, not a parameter: folded into the
        // projection's weight and bias as they load.
        let at = key(self.prefix, &format!("{name}.conv2d"));
        let mut scaled = StateDict::new();
        for (part, shape) in [("weight", vec![cin, width, 1, 1]), ("bias", vec![cin])] {
            let t = self.sd.get(&key(&at, part), &shape)?;
            scaled.insert(key("conv2d", part), t.mapv(|v| v * scale));
        }
        let conv = ConvBnAct::load(self.gpu, &scaled, p, "conv2d", None, 0.0)?
            .with_residual(ResidualJoin::AddThen(act))?;
        Ok(g.add(format!("{name}.conv2d"), conv, &[joined, x]))
    }

    /// Inception-ResNet-v2's module `name` (`mixed_5b`, `repeat.{i}`, ...) on `x`.
    fn resnet_v2_module(
        &self,
        g: &mut Graph,
        (x, cin): (ValueId, usize),
        name: &str,
    ) -> Result<(ValueId, usize)> {
        let at = |n: &str| format!("{name}.{n}");
        let block = name.split('.').next().unwrap_or(name);
        Ok(match block {
            "mixed_5b" => {
                let b0 = (self.basic(g, x, cin, one(96), &at("branch0"))?, 96);
                let five = Basic(64, (5, 5), 1, (2, 2));
                let b1 = self.chain(g, (x, cin), &[one(48), five], (&at("branch1"), 0))?;
                let convs = [one(64), three(96, 1), three(96, 1)];
                let b2 = self.chain(g, (x, cin), &convs, (&at("branch2"), 0))?;
                let b3 = (self.pooled_branch(g, x, cin, 64, &at("branch3"))?, 64);
                Self::cat(g, &[b0, b1, b2, b3], &at("cat"))
            }
            "repeat" => {
                let b0 = (self.basic(g, x, cin, one(32), &at("branch0"))?, 32);
                let b1 = self.chain(g, (x, cin), &[one(32), three(32, 1)], (&at("branch1"), 0))?;
                let convs = [one(32), three(48, 1), three(64, 1)];
                let b2 = self.chain(g, (x, cin), &convs, (&at("branch2"), 0))?;
                let y = self.residual(g, (x, cin), &[b0, b1, b2], (name, 0.17, true))?;
                (y, cin)
            }
            "mixed_6a" => {
                let b0 = (self.basic(g, x, cin, three(384, 2), &at("branch0"))?, 384);
                let convs = [one(256), three(256, 1), three(384, 2)];
                let b1 = self.chain(g, (x, cin), &convs, (&at("branch1"), 0))?;
                let b2 = (Self::max_pool(g, x, &at("branch2")), cin);
                Self::cat(g, &[b0, b1, b2], &at("cat"))
            }
            "repeat_1" => {
                let b0 = (self.basic(g, x, cin, one(192), &at("branch0"))?, 192);
                let convs = [one(128), wide(160), tall(192)];
                let b1 = self.chain(g, (x, cin), &convs, (&at("branch1"), 0))?;
                let y = self.residual(g, (x, cin), &[b0, b1], (name, 0.10, true))?;
                (y, cin)
            }
            "mixed_7a" => {
                let b0 =
                    self.chain(g, (x, cin), &[one(256), three(384, 2)], (&at("branch0"), 0))?;
                let b1 =
                    self.chain(g, (x, cin), &[one(256), three(288, 2)], (&at("branch1"), 0))?;
                let convs = [one(256), three(288, 1), three(320, 2)];
                let b2 = self.chain(g, (x, cin), &convs, (&at("branch2"), 0))?;
                let b3 = (Self::max_pool(g, x, &at("branch3")), cin);
                Self::cat(g, &[b0, b1, b2, b3], &at("cat"))
            }
            // `repeat_2.{i}` (scale 0.2, ReLU) and `block8` (scale 1, no ReLU).
            _ => {
                let b0 = (self.basic(g, x, cin, one(192), &at("branch0"))?, 192);
                let convs = [
                    one(192),
                    Basic(224, (1, 3), 1, (0, 1)),
                    Basic(256, (3, 1), 1, (1, 0)),
                ];
                let b1 = self.chain(g, (x, cin), &convs, (&at("branch1"), 0))?;
                let last = block == "block8";
                let scale = if last { 1.0 } else { 0.2 };
                let y = self.residual(g, (x, cin), &[b0, b1], (name, scale, !last))?;
                (y, cin)
            }
        })
    }

    /// Module `features.{i}` on `x` of `cin` channels: its output and channels.
    fn module(&self, g: &mut Graph, x: ValueId, cin: usize, i: usize) -> Result<(ValueId, usize)> {
        let m = format!("features.{i}");
        let at = |n: &str| format!("{m}.{n}");
        let cat = |g: &mut Graph, parts: &[(ValueId, usize)]| Self::cat(g, parts, &at("cat"));
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
fn append_v4(
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

/// smp's Inception-ResNet-v2 encoder appended to `g` after `x` (`in_channels` channels),
/// loaded under `prefix`: the input and its first `depth` features.
fn append_resnet_v2(
    g: &mut Graph,
    x: ValueId,
    (gpu, sd, prefix): (&Gpu, &StateDict, &str),
    (in_channels, depth): (usize, usize),
) -> Result<Vec<ValueId>> {
    let b = Builder { gpu, sd, prefix };
    let mut features = vec![x];
    let mut y = b.basic(g, x, in_channels, three(32, 2), "conv2d_1a")?;
    y = b.basic(g, y, 32, three(32, 1), "conv2d_2a")?;
    y = b.basic(g, y, 32, three(64, 1), "conv2d_2b")?;
    features.push(y);
    if depth >= 2 {
        y = Builder::max_pool(g, y, "maxpool_3a");
        y = b.basic(g, y, 64, one(80), "conv2d_3b")?;
        y = b.basic(g, y, 80, three(192, 1), "conv2d_4a")?;
        features.push(y);
    }
    let stages: [(&str, &str, usize); 3] = [
        ("mixed_5b", "repeat", 10),
        ("mixed_6a", "repeat_1", 20),
        ("mixed_7a", "repeat_2", 9),
    ];
    let mut c = 192;
    for (k, (mixed, repeat, blocks)) in stages.into_iter().enumerate() {
        if depth < k + 3 {
            break;
        }
        if k == 0 {
            y = Builder::max_pool(g, y, "maxpool_5a");
        }
        (y, c) = b.resnet_v2_module(g, (y, c), mixed)?;
        for i in 0..blocks {
            (y, c) = b.resnet_v2_module(g, (y, c), &format!("{repeat}.{i}"))?;
        }
        if k == 2 {
            (y, c) = b.resnet_v2_module(g, (y, c), "block8")?;
            y = b.basic(g, y, c, one(1536), "conv2d_7b")?;
        }
        features.push(y);
    }
    Ok(features)
}

/// Which of Cadene's Inception networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InceptionArch {
    /// Inception-v4 (smp's `inceptionv4`).
    V4,
    /// Inception-ResNet-v2 (smp's `inceptionresnetv2`).
    ResNetV2,
}

/// The configuration of smp's `inceptionv4` and `inceptionresnetv2` encoders (the
/// networks have none of their own beyond the input channels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InceptionConfig {
    /// The network.
    pub arch: InceptionArch,
    /// Input channels (3).
    pub in_channels: usize,
}

impl InceptionConfig {
    /// segmentation_models_pytorch's encoder names `inceptionv4` and
    /// `inceptionresnetv2` (3 input channels); any other name is an error naming
    /// `encoder_name`.
    pub fn from_smp(name: &str) -> Result<Self> {
        let arch = match name {
            "inceptionv4" => InceptionArch::V4,
            "inceptionresnetv2" => InceptionArch::ResNetV2,
            other => {
                return Err(crate::Error::InvalidParam {
                    name: "encoder_name",
                    reason: format!(
                        "{other:?} is not one of smp's Inception encoders (inceptionv4, \
                         inceptionresnetv2)"
                    ),
                })
            }
        };
        Ok(InceptionConfig {
            arch,
            in_channels: 3,
        })
    }

    /// Channels of smp's features (the input's left out).
    pub fn feature_channels(&self) -> [usize; 5] {
        match self.arch {
            InceptionArch::V4 => V4_FEATURE_CHANNELS,
            InceptionArch::ResNetV2 => RESNET_V2_FEATURE_CHANNELS,
        }
    }

    /// The encoder appended to `g` after `x` (`in_channels` channels; the configuration's
    /// own is for [`InceptionFeatures`]), loaded under `prefix`: the input and the first
    /// `depth` features.
    pub(crate) fn append(
        &self,
        g: &mut Graph,
        x: ValueId,
        ctx: (&Gpu, &StateDict, &str),
        (in_channels, depth): (usize, usize),
    ) -> Result<Vec<ValueId>> {
        match self.arch {
            InceptionArch::V4 => append_v4(g, x, ctx, (in_channels, depth)),
            InceptionArch::ResNetV2 => append_resnet_v2(g, x, ctx, (in_channels, depth)),
        }
    }
}

/// smp's Inception-v4 or Inception-ResNet-v2 encoder as a network: input `[N,
/// in_channels, H, W]`, output the deepest feature `[N, 1536, H / 32, W / 32]` (rounded
/// up); [`Model::forward_all`] also gives smp's other features, deepest first.
pub type InceptionFeatures = Model<InceptionConfig>;

impl Architecture for InceptionConfig {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        fail_if(self.in_channels == 0, "in_channels", || {
            "must be at least 1, got 0".to_string()
        })
    }

    /// Loads Inception-v4's `features.0` .. `features.21` or Inception-ResNet-v2's
    /// `conv2d_1a` .. `conv2d_7b` under `prefix` (the `last_linear` ignored).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        super::features_deepest_first(|g, x| {
            let f = self.append(g, x, (gpu, sd, prefix), (self.in_channels, 5))?;
            Ok(f[1..].to_vec())
        })
    }
}
