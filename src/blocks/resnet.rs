//! ResNet's bottleneck (torchvision's `resnet.Bottleneck`), ResNeXt included.

use super::{conv_bn, Architecture, Graph, Model};
use crate::error::{fail_if, Result};
use crate::gpu::Gpu;
use crate::ops::conv::{Conv2dParams, ResidualJoin};
use crate::ops::setters;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// torchvision's `resnet.Bottleneck` configuration (expansion 4): 1x1 reduce, 3x3 (stride,
/// groups, dilation), 1x1 expand, skip with an optional projection (`downsample`).
/// ResNeXt is `groups = 32, base_width = 4`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BottleneckConfig {
    /// Input channels.
    pub inplanes: usize,
    /// Bottleneck planes; the output has `4 * planes` channels.
    pub planes: usize,
    /// Stride of the 3x3 convolution (and of the projection).
    pub stride: usize,
    /// Groups of the 3x3 convolution (cardinality).
    pub groups: usize,
    /// Width per group at 64 planes (64 for ResNet, 4 for ResNeXt 32x4d).
    pub base_width: usize,
    /// Dilation of the 3x3 convolution.
    pub dilation: usize,
    /// Whether the skip has a 1x1 projection with batch norm. `None` (the default) does
    /// what torchvision's module does: a projection exactly when the state dict has one
    /// (`downsample.0.weight`), or, for a state dict without it, when torchvision would
    /// build one (stride not 1, or the channel counts differ), which then must be there.
    pub downsample: Option<bool>,
}

impl BottleneckConfig {
    /// A ResNet bottleneck: stride 1, groups 1, base width 64, dilation 1, the projection
    /// as the state dict says.
    pub fn new(inplanes: usize, planes: usize) -> Self {
        BottleneckConfig {
            inplanes,
            planes,
            stride: 1,
            groups: 1,
            base_width: 64,
            dilation: 1,
            downsample: None,
        }
    }

    /// Sets the groups and the width per group (ResNeXt: `groups(32, 4)`).
    pub fn groups(mut self, groups: usize, base_width: usize) -> Self {
        self.groups = groups;
        self.base_width = base_width;
        self
    }

    /// Forces the projection on or off.
    pub fn downsample(mut self, downsample: bool) -> Self {
        self.downsample = Some(downsample);
        self
    }

    /// The inner width, `planes * base_width / 64 * groups` (torchvision's formula).
    pub fn width(&self) -> usize {
        (self.planes as f64 * (self.base_width as f64 / 64.0)) as usize * self.groups
    }
}

setters!(BottleneckConfig {
    /// Sets the stride.
    stride: usize,
    /// Sets the dilation.
    dilation: usize,
});

/// A ResNet / ResNeXt bottleneck for inference: four dispatches, or three without
/// projection (the add and its ReLU are fused into the third convolution).
pub type Bottleneck = Model<BottleneckConfig>;

impl Bottleneck {
    /// Whether the skip has a projection (as the state dict said, when the
    /// configuration left it open).
    pub fn has_downsample(&self) -> bool {
        self.graph().names().any(|n| n == "downsample")
    }
}

impl Architecture for BottleneckConfig {
    /// Loads `conv1..3`, `bn1..3` and, with a projection, `downsample.0` / `downsample.1`.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let cfg = self;
        let k = |n: &str| key(prefix, n);
        let w = cfg.width();
        let out = 4 * cfg.planes;
        let torchvision_rule = cfg.stride != 1 || cfg.inplanes != out;
        let downsample = cfg
            .downsample
            .unwrap_or_else(|| sd.contains(&k("downsample.0.weight")) || torchvision_rule);
        fail_if(!downsample && torchvision_rule, "downsample", || {
            format!(
                "a skip without projection needs inplanes == 4 * planes and stride 1, got \
                     {} -> {out}, stride {}",
                cfg.inplanes, cfg.stride
            )
        })?;
        let eps = 1e-5;
        let relu = Activation::Relu;
        let p1 = Conv2dParams::new(cfg.inplanes, w, 1)
            .bias(false)
            .activation(relu);
        let p2 = Conv2dParams::new(w, w, 3)
            .stride(cfg.stride)
            .padding(cfg.dilation)
            .dilation(cfg.dilation)
            .groups(cfg.groups)
            .bias(false)
            .activation(relu);
        let p3 = Conv2dParams::new(w, out, 1).bias(false);
        let mut g = Graph::new();
        let x = g.input();
        let identity = if downsample {
            let pd = Conv2dParams::new(cfg.inplanes, out, 1)
                .stride(cfg.stride)
                .bias(false);
            let d = conv_bn(gpu, sd, pd, &k("downsample.0"), &k("downsample.1"), eps)?;
            g.add("downsample", d, &[x])
        } else {
            x
        };
        let a = g.add(
            "conv1",
            conv_bn(gpu, sd, p1, &k("conv1"), &k("bn1"), eps)?,
            &[x],
        );
        let b = g.add(
            "conv2",
            conv_bn(gpu, sd, p2, &k("conv2"), &k("bn2"), eps)?,
            &[a],
        );
        let conv3 = conv_bn(gpu, sd, p3, &k("conv3"), &k("bn3"), eps)?
            .with_residual(ResidualJoin::AddThen(relu))?;
        let y = g.add("conv3", conv3, &[b, identity]);
        g.set_outputs(&[y]);
        Ok(g)
    }
}
