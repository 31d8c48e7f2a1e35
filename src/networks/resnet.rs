//! torchvision's ResNet-50 / ResNet-101 (and ResNeXt) as feature extractors: the stem and
//! the four bottleneck stages, with `replace_stride_with_dilation` (the segmentation
//! models' dilated backbones, output stride 8).

use crate::blocks::{conv_bn, Architecture, Bottleneck, BottleneckConfig, Graph, Model, Op};
use crate::error::{fail_if, positive, Result};
use crate::gpu::Gpu;
use crate::ops::conv::Conv2dParams;
use crate::ops::pool::MaxPool2dParams;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// The configuration of torchvision's `resnet50()` / `resnet101()` (`ResNet(Bottleneck,
/// layers, groups, width_per_group, replace_stride_with_dilation)`) without the
/// classifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResNetConfig {
    /// Bottlenecks per stage (ResNet-50: `[3, 4, 6, 3]`, ResNet-101: `[3, 4, 23, 3]`).
    pub layers: [usize; 4],
    /// Whether `layer2`, `layer3`, `layer4` replace their stride 2 by dilation
    /// (torchvision's segmentation models: `[false, true, true]`).
    pub replace_stride_with_dilation: [bool; 3],
    /// Groups of the 3x3 convolutions (ResNeXt: 32).
    pub groups: usize,
    /// Width per group (ResNeXt-50 32x4d: 4; ResNet: 64).
    pub width_per_group: usize,
}

impl ResNetConfig {
    /// `resnet50()`.
    pub fn resnet50() -> Self {
        ResNetConfig {
            layers: [3, 4, 6, 3],
            replace_stride_with_dilation: [false; 3],
            groups: 1,
            width_per_group: 64,
        }
    }

    /// `resnet101()`.
    pub fn resnet101() -> Self {
        ResNetConfig {
            layers: [3, 4, 23, 3],
            ..Self::resnet50()
        }
    }

    /// Sets the groups and the width per group (ResNeXt).
    pub fn groups(mut self, groups: usize, width_per_group: usize) -> Self {
        self.groups = groups;
        self.width_per_group = width_per_group;
        self
    }

    /// The bottlenecks of each stage as torchvision's `_make_layer` builds them: the
    /// first of a stage strided (or, dilated, with the previous dilation) and projected,
    /// the others at the stage's dilation.
    pub fn stages(&self) -> [Vec<BottleneckConfig>; 4] {
        let mut inplanes = 64;
        let mut dilation = 1;
        std::array::from_fn(|i| {
            let planes = 64 << i;
            let mut stride = if i == 0 { 1 } else { 2 };
            let previous = dilation;
            if i > 0 && self.replace_stride_with_dilation[i - 1] {
                dilation *= stride;
                stride = 1;
            }
            let group = |b: BottleneckConfig| b.groups(self.groups, self.width_per_group);
            let first = group(BottleneckConfig::new(inplanes, planes))
                .stride(stride)
                .dilation(previous)
                .downsample(stride != 1 || inplanes != 4 * planes);
            inplanes = 4 * planes;
            let rest = (1..self.layers[i]).map(|_| {
                group(BottleneckConfig::new(inplanes, planes))
                    .dilation(dilation)
                    .downsample(false)
            });
            std::iter::once(first).chain(rest).collect()
        })
    }

    /// Output channels of each stage (`layer1` .. `layer4`).
    pub fn stage_channels(&self) -> [usize; 4] {
        [256, 512, 1024, 2048]
    }

    /// The stem and the stages appended to `g` after `x`, loaded under `prefix` (names
    /// `conv1`, `bn1`, `layer{i}.{j}`); returns the outputs of `layer1` .. `layer4`.
    pub(crate) fn append(
        &self,
        g: &mut Graph,
        x: crate::blocks::ValueId,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
    ) -> Result<[crate::blocks::ValueId; 4]> {
        let stem = Conv2dParams::new(3, 64, 7)
            .stride(2)
            .padding(3)
            .bias(false)
            .activation(Activation::Relu);
        let stem = conv_bn(
            gpu,
            sd,
            stem,
            &key(prefix, "conv1"),
            &key(prefix, "bn1"),
            1e-5,
        )?;
        let mut y = g.add("conv1", stem, &[x]);
        let pool = MaxPool2dParams::new(3).stride(2).padding(1);
        y = g.add_multi("maxpool", Op::MaxPool(pool), &[y], 2)[0];
        let mut outs = Vec::with_capacity(4);
        for (i, stage) in self.stages().into_iter().enumerate() {
            for (j, cfg) in stage.into_iter().enumerate() {
                let name = format!("layer{}.{j}", i + 1);
                let block = Bottleneck::load(gpu, cfg, sd, &key(prefix, &name))?;
                y = g.add(name, block.into_graph(), &[y]);
            }
            outs.push(y);
        }
        Ok([outs[0], outs[1], outs[2], outs[3]])
    }
}

crate::ops::setters!(ResNetConfig {
    /// Sets `replace_stride_with_dilation`.
    replace_stride_with_dilation: [bool; 3],
});

/// torchvision's ResNet without its pooling and classifier: input `[N, 3, H, W]`, output
/// `layer4`'s `[N, 2048, H / s, W / s]` (`s` 32, or 8 with the segmentation models'
/// dilation); [`Model::forward_all`] also gives `layer3`, `layer2` and `layer1`, in
/// that order after `layer4`.
pub type ResNetFeatures = Model<ResNetConfig>;

impl Architecture for ResNetConfig {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        positive(&[
            ("layers", self.layers.iter().copied().min().unwrap_or(0)),
            ("groups", self.groups),
            ("width_per_group", self.width_per_group),
        ])?;
        fail_if(self.layers.iter().any(|&n| n > 1024), "layers", || {
            format!("at most 1024 blocks a stage, got {:?}", self.layers)
        })
    }

    /// Loads `conv1`, `bn1` and `layer1` .. `layer4` under `prefix` (a whole
    /// `resnet50()`'s state dict: empty; a segmentation model's: `backbone`).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let mut g = Graph::new();
        let x = g.input();
        let [l1, l2, l3, l4] = self.append(&mut g, x, (gpu, sd, prefix))?;
        g.set_outputs(&[l4, l3, l2, l1]);
        Ok(g)
    }
}
