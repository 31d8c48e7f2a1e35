//! torchvision's DenseNet `features` (`densenet121`, `161`, `169`, `201`), also
//! segmentation_models_pytorch's `densenet*` encoders: a 7x7 stride-2 stem with batch norm
//! and ReLU, a 3x3 stride-2 max pool, four dense blocks ([`DenseBlock`](crate::blocks::DenseBlock))
//! with a transition between them (batch norm, ReLU, 1x1 convolution halving the channels,
//! 2x2 average pool), and a last batch norm (`norm5`). Names are torchvision's
//! (`features.conv0`, `.norm0`, `.denseblock{k}.denselayer{i}.*`, `.transition{k}.norm` /
//! `.conv`, `.norm5`).

use crate::blocks::{
    conv_bn, Architecture, BnActNode, DenseBlock, DenseBlockConfig, Graph, Model, Op, ValueId,
};
use crate::error::{positive, Error, Result};
use crate::gpu::Gpu;
use crate::ops::conv::Conv2dParams;
use crate::ops::pool::{AvgPool2dParams, MaxPool2dParams};
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// torchvision's `DenseNet(growth_rate, block_config, num_init_features, bn_size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DenseNetConfig {
    /// Channels each layer adds (`growth_rate`).
    pub growth_rate: usize,
    /// Layers of the four dense blocks (`block_config`).
    pub block_config: [usize; 4],
    /// Channels of the stem (`num_init_features`).
    pub num_init_features: usize,
    /// Bottleneck width factor (`bn_size`).
    pub bn_size: usize,
}

/// torchvision's `densenet*().features`: `norm5`'s output (the classifier's ReLU is not part
/// of it), at 1/32 of the input.
pub type DenseNetFeatures = Model<DenseNetConfig>;

/// Every batch norm's eps.
const EPS: f32 = 1e-5;

impl DenseNetConfig {
    /// By torchvision's (and smp's) name: `densenet121`, `densenet161`, `densenet169` or
    /// `densenet201`; any other name is an error naming `arch`.
    pub fn torchvision(name: &str) -> Result<Self> {
        let (growth_rate, block_config, num_init_features) = match name {
            "densenet121" => (32, [6, 12, 24, 16], 64),
            "densenet161" => (48, [6, 12, 36, 24], 96),
            "densenet169" => (32, [6, 12, 32, 32], 64),
            "densenet201" => (32, [6, 12, 48, 32], 64),
            _ => {
                return Err(Error::InvalidParam {
                    name: "arch",
                    reason: format!(
                        "{name:?} is not one of torchvision's densenet121, 161, 169, 201"
                    ),
                })
            }
        };
        Ok(DenseNetConfig {
            growth_rate,
            block_config,
            num_init_features,
            bn_size: 4,
        })
    }

    /// Channels after each dense block (before its transition halves them).
    fn block_channels(&self) -> [usize; 4] {
        let mut c = self.num_init_features;
        let mut out = [0; 4];
        for (k, &layers) in self.block_config.iter().enumerate() {
            c += layers * self.growth_rate;
            out[k] = c;
            c /= 2;
        }
        out
    }

    /// Channels of smp's features: the input's, the stem's, then after each block.
    pub(crate) fn feature_channels(&self, in_channels: usize) -> Vec<usize> {
        let mut c = vec![in_channels, self.num_init_features];
        c.extend(self.block_channels());
        c
    }

    /// The layers appended to `g` after `x` (the stem taking `in_channels`), up to smp's
    /// feature `depth` (1 to 5): the input, the stem's ReLU output, each block's output
    /// through its transition's norm and ReLU, and the last block's through `norm5`.
    pub(crate) fn append(
        &self,
        g: &mut Graph,
        x: ValueId,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        (in_channels, depth): (usize, usize),
    ) -> Result<Vec<ValueId>> {
        let at = |n: &str| key(prefix, n);
        let mut features = vec![x];
        let stem = Conv2dParams::new(in_channels, self.num_init_features, 7)
            .stride(2)
            .padding(3)
            .bias(false)
            .activation(Activation::Relu);
        let stem = conv_bn(gpu, sd, stem, &at("conv0"), &at("norm0"), EPS)?;
        let mut y = g.add(at("conv0"), stem, &[x]);
        features.push(y);
        let mut c = self.num_init_features;
        let channels = self.block_channels();
        for (k, &layers) in self.block_config.iter().enumerate() {
            if features.len() > depth {
                break;
            }
            if k == 0 {
                let pool = Op::MaxPool(MaxPool2dParams::new(3).stride(2).padding(1));
                y = g.add_multi(at("pool0"), pool, &[y], 2)[0];
            }
            let name = at(&format!("denseblock{}", k + 1));
            let cfg = DenseBlockConfig {
                num_layers: layers,
                num_input_features: c,
                bn_size: self.bn_size,
                growth_rate: self.growth_rate,
            };
            let block = DenseBlock::load(gpu, cfg, sd, &name)?.into_graph();
            y = g.add(name, block, &[y]);
            c = channels[k];
            if k == 3 {
                let norm = BnActNode::load(gpu, sd, (c, EPS), &at("norm5"), Activation::None)?;
                y = g.add(at("norm5"), norm, &[y]);
                features.push(y);
                break;
            }
            let t = at(&format!("transition{}", k + 1));
            let norm = BnActNode::load(gpu, sd, (c, EPS), &key(&t, "norm"), Activation::Relu)?;
            y = g.add(key(&t, "norm"), norm, &[y]);
            features.push(y);
            if features.len() > depth {
                break;
            }
            let conv = Conv2dParams::new(c, c / 2, 1).bias(false);
            let conv = crate::blocks::ConvBnAct::load(gpu, sd, conv, &key(&t, "conv"), None, 0.0)?;
            y = g.add(key(&t, "conv"), conv, &[y]);
            y = g.add(key(&t, "pool"), Op::AvgPool(AvgPool2dParams::new(2)), &[y]);
            c /= 2;
        }
        Ok(features)
    }
}

impl Architecture for DenseNetConfig {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        positive(&[
            ("growth_rate", self.growth_rate),
            ("num_init_features", self.num_init_features),
            ("bn_size", self.bn_size),
        ])?;
        let layers: Vec<(&'static str, usize)> = self
            .block_config
            .iter()
            .map(|&n| ("block_config", n))
            .collect();
        positive(&layers)
    }

    /// Loads `{prefix}.conv0` ... `{prefix}.norm5` (the prefix is `features` in a whole
    /// model's state dict).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let mut g = Graph::new();
        let x = g.input();
        let features = self.append(&mut g, x, (gpu, sd, prefix), (3, 5))?;
        g.set_outputs(&features[features.len() - 1..]);
        Ok(g)
    }
}
