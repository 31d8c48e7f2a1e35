//! DeepLabV3's atrous spatial pyramid pooling (torchvision's `segmentation.deeplabv3.ASPP`,
//! and segmentation_models_pytorch's, which may make its dilated branches separable).

use super::{conv_bn, conv_bn_at, Architecture, ConvBnAct, Graph, Model, Op, ValueId};
use crate::error::{fail_if, Result};
use crate::gpu::Gpu;
use crate::ops::conv::Conv2dParams;
use crate::ops::pool::GlobalPool;
use crate::ops::upsample::UpsampleMode;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// torchvision's `ASPP(in_channels, atrous_rates, out_channels)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsppConfig {
    /// Input channels.
    pub in_channels: usize,
    /// One dilated 3x3 branch per rate (torchvision's DeepLabV3: 12, 24, 36).
    pub atrous_rates: Vec<usize>,
    /// Output channels of every branch and of the projection (256 in torchvision).
    pub out_channels: usize,
    /// Whether each dilated branch is smp's `SeparableConv2d` (a dilated depthwise 3x3,
    /// then a 1x1 to `out_channels`, both without bias: names `convs.{i}.0.0` and
    /// `convs.{i}.0.1`) instead of one 3x3 (`convs.{i}.0`); smp's
    /// `decoder_aspp_separable`, false in torchvision.
    pub separable: bool,
}

impl AsppConfig {
    /// torchvision's DeepLabV3 head ASPP: rates 12, 24, 36 and 256 channels.
    pub fn torchvision(in_channels: usize) -> Self {
        AsppConfig {
            in_channels,
            atrous_rates: vec![12, 24, 36],
            out_channels: 256,
            separable: false,
        }
    }

    /// Sets whether the dilated branches are separable (smp's `decoder_aspp_separable`).
    pub fn separable(mut self, separable: bool) -> Self {
        self.separable = separable;
        self
    }
}

/// ASPP for inference: a 1x1 branch, one dilated 3x3 branch per rate, an image-pooling
/// branch (global average pool, 1x1, bilinear resize back), concatenated and projected by
/// a 1x1; every convolution followed by batch norm and ReLU (the projection's dropout is
/// an identity in inference).
pub type Aspp = Model<AsppConfig>;

impl Architecture for AsppConfig {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        let cfg = self;
        let rates = &cfg.atrous_rates;
        fail_if(
            rates.is_empty() || rates.contains(&0),
            "atrous_rates",
            || format!("need one or more positive rates, got {rates:?}"),
        )
    }

    /// Loads `convs.{i}` and `project`.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let cfg = self;
        let rates = &cfg.atrous_rates;
        let (cin, cout) = (cfg.in_channels, cfg.out_channels);
        let k = |n: String| key(prefix, &n);
        let eps = 1e-5;
        let relu = Activation::Relu;
        let one = |cin| Conv2dParams::new(cin, cout, 1).bias(false).activation(relu);
        let mut g = Graph::new();
        let x = g.input();
        let convs = key(prefix, "convs");
        let b0 = conv_bn_at(gpu, sd, one(cin), &convs, 0, eps)?;
        let mut branches = vec![g.add("convs.0", b0, &[x])];
        for (i, &rate) in rates.iter().enumerate() {
            let name = format!("convs.{}", i + 1);
            if cfg.separable {
                // `Sequential(SeparableConv2d(depthwise, pointwise), bn, relu)`.
                let at = |n: &str| key(prefix, &format!("{name}.{n}"));
                let (conv, bn) = (at("0"), at("1"));
                let shape = (cin, cout, rate);
                let b = separable_conv_bn_relu(&mut g, x, &name, shape, (gpu, sd), (&conv, &bn))?;
                branches.push(b);
                continue;
            }
            let p = Conv2dParams::new(cin, cout, 3)
                .padding(rate)
                .dilation(rate)
                .bias(false)
                .activation(relu);
            let b = conv_bn_at(gpu, sd, p, &convs, i + 1, eps)?;
            branches.push(g.add(name, b, &[x]));
        }
        let n = rates.len() + 1;
        let pooled = g.add(
            format!("convs.{n}.0"),
            Op::GlobalPool(GlobalPool::Avg),
            &[x],
        );
        // The pooling branch is `Sequential(pool, conv, bn, relu)`.
        let (pc, pb) = (k(format!("convs.{n}.1")), k(format!("convs.{n}.2")));
        let pc = conv_bn(gpu, sd, one(cin), &pc, &pb, eps)?;
        let p = g.add(format!("convs.{n}.1"), pc, &[pooled]);
        let bilinear = UpsampleMode::Bilinear {
            align_corners: false,
        };
        branches.push(g.resize_like("resize", bilinear, p, x));
        let joined = g.add("cat", Op::Concat, &branches);
        let project = conv_bn_at(gpu, sd, one((n + 1) * cout), prefix, "project", eps)?;
        let y = g.add("project", project, &[joined]);
        g.set_outputs(&[y]);
        Ok(g)
    }
}

/// segmentation_models_pytorch's `SeparableConv2d(cin, cout, 3, padding=dilation,
/// dilation=dilation, bias=False)` followed by batch norm and ReLU, appended to `g` after
/// `x` as `{name}.0` / `{name}.1`: the depthwise 3x3 `{conv}.0` (no bias), the pointwise
/// 1x1 `{conv}.1`, the batch norm `{bn}`.
pub(crate) fn separable_conv_bn_relu(
    g: &mut Graph,
    x: ValueId,
    name: &str,
    (cin, cout, dilation): (usize, usize, usize),
    (gpu, sd): (&Gpu, &StateDict),
    (conv, bn): (&str, &str),
) -> Result<ValueId> {
    let depthwise = Conv2dParams::depthwise(cin, 1, 3)
        .padding(dilation)
        .dilation(dilation)
        .bias(false);
    let depthwise = ConvBnAct::load(gpu, sd, depthwise, &key(conv, "0"), None, 0.0)?;
    let y = g.add(key(name, "0"), depthwise, &[x]);
    let pointwise = Conv2dParams::new(cin, cout, 1)
        .bias(false)
        .activation(Activation::Relu);
    let pointwise = conv_bn(gpu, sd, pointwise, &key(conv, "1"), bn, 1e-5)?;
    Ok(g.add(key(name, "1"), pointwise, &[y]))
}
