//! torchvision's ShuffleNetV2 (`shufflenet_v2_x0_5`, `_x1_0`, `_x1_5`, `_x2_0`) as a
//! feature extractor: `conv1` (3x3 stride 2, batch norm, ReLU), a 3x3 stride-2 max pool,
//! `stage2` .. `stage4` of [`ShuffleV2Unit`](crate::blocks::ShuffleV2Unit)s (the first of
//! each at stride 2; 4, 8 and 4 units), and `conv5` (1x1, batch norm, ReLU); the pooling
//! and `fc` left out.

use crate::blocks::{conv_bn, Architecture, Graph, Model, Op, ShuffleV2Config, ShuffleV2Unit};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::ops::conv::Conv2dParams;
use crate::ops::pool::MaxPool2dParams;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// torchvision's `ShuffleNetV2(stages_repeats, stages_out_channels)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShuffleNetV2Config {
    /// Units of `stage2`, `stage3`, `stage4` (4, 8, 4).
    pub stages_repeats: [usize; 3],
    /// Output channels of `conv1`, the three stages and `conv5` (x1.0: 24, 116, 232, 464,
    /// 1024); the stages' must be even.
    pub stages_out_channels: [usize; 5],
}

impl ShuffleNetV2Config {
    /// By torchvision's name: `shufflenet_v2_x0_5`, `shufflenet_v2_x1_0`,
    /// `shufflenet_v2_x1_5` or `shufflenet_v2_x2_0`; any other name is an error naming
    /// `arch`.
    pub fn torchvision(name: &str) -> Result<Self> {
        let stages_out_channels = match name {
            "shufflenet_v2_x0_5" => [24, 48, 96, 192, 1024],
            "shufflenet_v2_x1_0" => [24, 116, 232, 464, 1024],
            "shufflenet_v2_x1_5" => [24, 176, 352, 704, 1024],
            "shufflenet_v2_x2_0" => [24, 244, 488, 976, 2048],
            other => {
                return Err(Error::InvalidParam {
                    name: "arch",
                    reason: format!(
                        "{other:?} is not one of torchvision's shufflenet_v2_x0_5 / x1_0 / \
                         x1_5 / x2_0"
                    ),
                })
            }
        };
        Ok(ShuffleNetV2Config {
            stages_repeats: [4, 8, 4],
            stages_out_channels,
        })
    }
}

/// torchvision's ShuffleNetV2 up to `conv5`: input `[N, 3, H, W]`, output `conv5`'s
/// `[N, stages_out_channels[4], H / 32, W / 32]` (rounded up at each stride);
/// [`Model::forward_all`] also gives `stage4`, `stage3`, `stage2` and the max pool's
/// output, in that order after it.
pub type ShuffleNetV2Features = Model<ShuffleNetV2Config>;

impl Architecture for ShuffleNetV2Config {
    /// Checks the configuration on its own: positive repeats and channels, even stage
    /// channels (torchvision's units split them in half).
    fn validate(&self) -> Result<()> {
        crate::error::positive(&[
            (
                "stages_repeats",
                self.stages_repeats.iter().copied().min().unwrap_or(0),
            ),
            (
                "stages_out_channels",
                self.stages_out_channels.iter().copied().min().unwrap_or(0),
            ),
        ])?;
        crate::error::fail_if(
            self.stages_out_channels[1..4]
                .iter()
                .any(|c| !c.is_multiple_of(2)),
            "stages_out_channels",
            || {
                format!(
                    "the stages' channels must be even, got {:?}",
                    self.stages_out_channels
                )
            },
        )
    }

    /// Loads `conv1.{0,1}`, `stage{2,3,4}.{i}` and `conv5.{0,1}` under `prefix` (a whole
    /// model's state dict, its `fc` ignored).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let at = |n: &str| key(prefix, n);
        let relu = Activation::Relu;
        let c = self.stages_out_channels;
        let mut g = Graph::new();
        let x = g.input();
        let p = Conv2dParams::new(3, c[0], 3)
            .stride(2)
            .padding(1)
            .bias(false)
            .activation(relu);
        let conv1 = conv_bn(gpu, sd, p, &at("conv1.0"), &at("conv1.1"), 1e-5)?;
        let y = g.add("conv1", conv1, &[x]);
        let pool = Op::MaxPool(MaxPool2dParams::new(3).stride(2).padding(1));
        let mut y = g.add_multi("maxpool", pool, &[y], 2)[0];
        let mut outs = vec![y];
        let mut inp = c[0];
        for (s, &repeats) in self.stages_repeats.iter().enumerate() {
            let oup = c[s + 1];
            for i in 0..repeats {
                let stride = if i == 0 { 2 } else { 1 };
                let cfg = ShuffleV2Config { inp, oup, stride };
                let name = format!("stage{}.{i}", s + 2);
                let unit = ShuffleV2Unit::load(gpu, cfg, sd, &at(&name))?;
                y = g.add(name, unit.into_graph(), &[y]);
                inp = oup;
            }
            outs.push(y);
        }
        let p = Conv2dParams::new(inp, c[4], 1).bias(false).activation(relu);
        let conv5 = conv_bn(gpu, sd, p, &at("conv5.0"), &at("conv5.1"), 1e-5)?;
        let y = g.add("conv5", conv5, &[y]);
        outs.push(y);
        outs.reverse();
        g.set_outputs(&outs);
        Ok(g)
    }
}
