//! The ShuffleNet units: v1 (group convolutions, the shuffle fused into the first
//! convolution's store) and v2 (torchvision's `shufflenetv2.InvertedResidual`).

use super::{conv_bn, Architecture, Graph, Model, Op};
use crate::error::{fail_if, invalid, Result};
use crate::gpu::Gpu;
use crate::ops::conv::{Conv2dParams, ResidualJoin};
use crate::ops::pool::AvgPool2dParams;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// torchvision's `shufflenetv2.InvertedResidual(inp, oup, stride)`: stride 1 splits the
/// channels in half and transforms the second half; stride 2 transforms the input in
/// two branches; the halves are concatenated and shuffled with 2 groups (here written
/// straight to their shuffled channels: two copies, no concatenated map).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShuffleV2Config {
    /// Input channels.
    pub inp: usize,
    /// Output channels (even).
    pub oup: usize,
    /// 1 to 3.
    pub stride: usize,
}

/// A ShuffleNetV2 unit for inference.
pub type ShuffleV2Unit = Model<ShuffleV2Config>;

impl Architecture for ShuffleV2Config {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        let cfg = self;
        fail_if(
            !(1..=3).contains(&cfg.stride) || !cfg.oup.is_multiple_of(2),
            "stride",
            || {
                format!(
                    "stride must be 1 to 3 and oup even, got stride {} and oup {}",
                    cfg.stride, cfg.oup
                )
            },
        )
    }

    /// Loads `branch1.{0,1,2,3}` (stride > 1 only) and `branch2.{0,1,3,4,5,6}`.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let cfg = self;
        let bf = cfg.oup / 2;
        fail_if(cfg.stride == 1 && cfg.inp != 2 * bf, "inp", || {
            format!(
                "with stride 1, inp ({}) must equal oup ({})",
                cfg.inp, cfg.oup
            )
        })?;
        let eps = 1e-5;
        let k = |n: &str| key(prefix, n);
        let relu = Activation::Relu;
        let mut g = Graph::new();
        let x = g.input();
        let (left, right) = if cfg.stride > 1 {
            let dw = Conv2dParams::depthwise(cfg.inp, 1, 3)
                .stride(cfg.stride)
                .padding(1)
                .bias(false);
            let pw = Conv2dParams::new(cfg.inp, bf, 1)
                .bias(false)
                .activation(relu);
            let a = g.add(
                "branch1.0",
                conv_bn(gpu, sd, dw, &k("branch1.0"), &k("branch1.1"), eps)?,
                &[x],
            );
            let l = g.add(
                "branch1.2",
                conv_bn(gpu, sd, pw, &k("branch1.2"), &k("branch1.3"), eps)?,
                &[a],
            );
            (l, x)
        } else {
            // The identity half is read from the input where the output is written; only
            // the transformed half is copied out.
            (x, g.add("split", Op::Narrow(bf, bf), &[x]))
        };
        let in2 = if cfg.stride > 1 { cfg.inp } else { bf };
        let p0 = Conv2dParams::new(in2, bf, 1).bias(false).activation(relu);
        let p3 = Conv2dParams::depthwise(bf, 1, 3)
            .stride(cfg.stride)
            .padding(1)
            .bias(false);
        let p5 = Conv2dParams::new(bf, bf, 1).bias(false).activation(relu);
        let mut r = right;
        for (name, p, bn) in [
            ("branch2.0", p0, "branch2.1"),
            ("branch2.3", p3, "branch2.4"),
            ("branch2.5", p5, "branch2.6"),
        ] {
            r = g.add(name, conv_bn(gpu, sd, p, &k(name), &k(bn), eps)?, &[r]);
        }
        // cat + channel_shuffle(2) in two strided copies.
        let y = g.add("shuffle", Op::ShufflePair, &[left, r]);
        g.set_outputs(&[y]);
        Ok(g)
    }
}

/// A ShuffleNet v1 unit: 1x1 group convolution (BN, ReLU) whose output is written already
/// channel-shuffled (the shuffle fused into its store), 3x3 depthwise (stride, BN), 1x1
/// group convolution (BN); stride 1 adds the input, stride 2 concatenates a 3x3 stride-2
/// average pool of the input; ReLU at the end. Names `compress.0/.1`, `depthwise.0/.1`,
/// `expand.0/.1` (convolution, batch norm).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShuffleV1Config {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels (including the pooled shortcut for stride 2).
    pub out_channels: usize,
    /// Groups of the 1x1 convolutions.
    pub groups: usize,
    /// Groups of the first 1x1 (1 for the first unit of stage 2, as in the paper).
    pub first_groups: usize,
    /// 1 or 2.
    pub stride: usize,
    /// Bottleneck channels (a quarter of the output in the paper).
    pub bottleneck: usize,
}

/// A ShuffleNet v1 unit for inference.
pub type ShuffleV1Unit = Model<ShuffleV1Config>;

impl Architecture for ShuffleV1Config {
    /// Loads the unit's three convolutions and batch norms.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let cfg = self;
        let branch_out = if cfg.stride == 2 {
            cfg.out_channels
                .checked_sub(cfg.in_channels)
                .filter(|c| *c > 0)
                .ok_or_else(|| {
                    invalid(
                        "out_channels",
                        format!(
                            "with stride 2, out_channels ({}) must exceed in_channels ({})",
                            cfg.out_channels, cfg.in_channels
                        ),
                    )
                })?
        } else if cfg.stride == 1 && cfg.in_channels == cfg.out_channels {
            cfg.out_channels
        } else {
            return Err(invalid(
                "stride",
                format!(
                    "stride 1 needs in_channels == out_channels, stride 2 a wider output; got \
                     stride {}, {} -> {}",
                    cfg.stride, cfg.in_channels, cfg.out_channels
                ),
            ));
        };
        let k = |n: &str| key(prefix, n);
        let eps = 1e-5;
        let relu = Activation::Relu;
        let pc = Conv2dParams::new(cfg.in_channels, cfg.bottleneck, 1)
            .groups(cfg.first_groups)
            .bias(false)
            .activation(relu);
        let pd = Conv2dParams::depthwise(cfg.bottleneck, 1, 3)
            .stride(cfg.stride)
            .padding(1)
            .bias(false);
        let pe = Conv2dParams::new(cfg.bottleneck, branch_out, 1)
            .groups(cfg.groups)
            .bias(false);
        let compress = conv_bn(gpu, sd, pc, &k("compress.0"), &k("compress.1"), eps)?
            .with_shuffle(cfg.groups)?;
        let depthwise = conv_bn(gpu, sd, pd, &k("depthwise.0"), &k("depthwise.1"), eps)?;
        let expand = conv_bn(gpu, sd, pe, &k("expand.0"), &k("expand.1"), eps)?;
        let mut g = Graph::new();
        let x = g.input();
        let a = g.add("compress", compress, &[x]);
        let b = g.add("depthwise", depthwise, &[a]);
        let y = if cfg.stride == 1 {
            g.add(
                "expand",
                expand.with_residual(ResidualJoin::AddThen(relu))?,
                &[b, x],
            )
        } else {
            let c = g.add("expand", expand, &[b]);
            let pool = AvgPool2dParams::new(3).stride(2).padding(1);
            let shortcut = g.add("shortcut", Op::AvgPool(pool), &[x]);
            let joined = g.add("cat", Op::Concat, &[shortcut, c]);
            g.add("relu", Op::Activation(relu), &[joined])
        };
        g.set_outputs(&[y]);
        Ok(g)
    }
}
