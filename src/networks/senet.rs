//! The squeeze-and-excitation networks of Cadene's `pretrainedmodels` (vendored by
//! segmentation_models_pytorch as its `se_resnet*`, `se_resnext*` and `senet154`
//! encoders) as feature extractors: `layer0` (a 7x7 stem, or SENet-154's three 3x3
//! convolutions, with batch norm and ReLU), a 3x3 stride-2 max pool with `ceil_mode`, and
//! four stages of bottlenecks whose last batch norm feeds a squeeze-and-excitation gate
//! (`se_module.fc1` / `fc2`, 1x1 convolutions with bias, ReLU and sigmoid) before the
//! residual add and ReLU. SE-ResNet strides its first 1x1 convolution (Caffe's layout);
//! SE-ResNeXt and SENet-154 stride the grouped 3x3. Names are `pretrainedmodels`'
//! (`layer0.conv1`, `layer{i}.{j}.conv1` .. `se_module.fc2`, `downsample.{0,1}`).

use crate::blocks::{conv_bn, Architecture, Graph, Model, Op, SeNode, ValueId};
use crate::error::{fail_if, Error, Result};
use crate::gpu::Gpu;
use crate::ops::attention::SqueezeExcitationParams;
use crate::ops::conv::Conv2dParams;
use crate::ops::pool::MaxPool2dParams;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// The bottleneck an SENet is made of (`pretrainedmodels`' `block` argument).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SeNetBlock {
    /// `SEBottleneck` (SENet-154): 1x1 to `2 * planes`, grouped 3x3 to `4 * planes`
    /// (strided), 1x1 to `4 * planes`.
    SeBottleneck,
    /// `SEResNetBottleneck`: 1x1 to `planes` (strided), 3x3, 1x1 to `4 * planes`.
    SeResNet,
    /// `SEResNeXtBottleneck`: 1x1 to `floor(planes * 4 / 64) * groups`, grouped 3x3
    /// (strided), 1x1 to `4 * planes`.
    SeResNeXt,
}

/// The configuration of `pretrainedmodels`' `SENet(block, layers, groups, reduction,
/// inplanes, input_3x3, downsample_kernel_size, downsample_padding)` without its
/// classifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SeNetConfig {
    /// The bottleneck.
    pub block: SeNetBlock,
    /// Blocks per stage (SE-ResNet-50: `[3, 4, 6, 3]`).
    pub layers: [usize; 4],
    /// Groups of the 3x3 convolutions (SE-ResNeXt: 32; SENet-154: 64; SE-ResNet: 1).
    pub groups: usize,
    /// The squeeze-and-excitation reduction (16).
    pub reduction: usize,
    /// Channels of `layer0`'s output (64; SENet-154: 128).
    pub inplanes: usize,
    /// Whether `layer0` is three 3x3 convolutions (SENet-154) rather than one 7x7.
    pub input_3x3: bool,
    /// Kernel size of the projections of `layer2` .. `layer4` (1; SENet-154: 3, padded by
    /// 1); `layer1`'s is always 1.
    pub downsample_kernel_size: usize,
}

impl SeNetConfig {
    /// segmentation_models_pytorch's encoder names: `se_resnet50`, `se_resnet101`,
    /// `se_resnet152`, `se_resnext50_32x4d`, `se_resnext101_32x4d` and `senet154`
    /// (`pretrainedmodels`' models of the same names); any other name is an error naming
    /// `arch`.
    pub fn from_name(name: &str) -> Result<Self> {
        let se_resnet = |layers| SeNetConfig {
            block: SeNetBlock::SeResNet,
            layers,
            groups: 1,
            reduction: 16,
            inplanes: 64,
            input_3x3: false,
            downsample_kernel_size: 1,
        };
        let se_resnext = |layers| SeNetConfig {
            block: SeNetBlock::SeResNeXt,
            groups: 32,
            ..se_resnet(layers)
        };
        Ok(match name {
            "se_resnet50" => se_resnet([3, 4, 6, 3]),
            "se_resnet101" => se_resnet([3, 4, 23, 3]),
            "se_resnet152" => se_resnet([3, 8, 36, 3]),
            "se_resnext50_32x4d" => se_resnext([3, 4, 6, 3]),
            "se_resnext101_32x4d" => se_resnext([3, 4, 23, 3]),
            "senet154" => SeNetConfig {
                block: SeNetBlock::SeBottleneck,
                layers: [3, 8, 36, 3],
                groups: 64,
                reduction: 16,
                inplanes: 128,
                input_3x3: true,
                downsample_kernel_size: 3,
            },
            other => {
                return Err(Error::InvalidParam {
                    name: "arch",
                    reason: format!(
                        "{other:?} is not one of se_resnet50 / 101 / 152, se_resnext50_32x4d, \
                         se_resnext101_32x4d, senet154"
                    ),
                })
            }
        })
    }

    /// Channels of `layer0` .. `layer4`'s outputs.
    pub fn feature_channels(&self) -> [usize; 5] {
        [self.inplanes, 256, 512, 1024, 2048]
    }

    /// `layer0` and the first `stages` stages appended to `g` after `x` (`in_channels`
    /// channels), loaded under `prefix`; returns `layer0`'s output (before the pool) and
    /// each stage's. An `output_stride` of 16 or 8 patches the stages past it as smp's
    /// `make_dilated` does: every convolution at stride 1 and dilated by the stage's stride
    /// over `output_stride` (32: none).
    pub(crate) fn append_stages(
        &self,
        g: &mut Graph,
        x: ValueId,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        (in_channels, stages, output_stride): (usize, usize, usize),
    ) -> Result<Vec<ValueId>> {
        let at = |n: &str| key(prefix, n);
        let relu = Activation::Relu;
        let stem: Vec<(Conv2dParams, &str)> = if self.input_3x3 {
            let conv = |cin, cout, stride| {
                Conv2dParams::new(cin, cout, 3)
                    .stride(stride)
                    .padding(1)
                    .bias(false)
                    .activation(relu)
            };
            vec![
                (conv(in_channels, 64, 2), "1"),
                (conv(64, 64, 1), "2"),
                (conv(64, self.inplanes, 1), "3"),
            ]
        } else {
            let conv = Conv2dParams::new(in_channels, self.inplanes, 7)
                .stride(2)
                .padding(3)
                .bias(false)
                .activation(relu);
            vec![(conv, "1")]
        };
        let mut y = x;
        for (params, i) in stem {
            let (conv, bn) = (format!("layer0.conv{i}"), format!("layer0.bn{i}"));
            let layer = conv_bn(gpu, sd, params, &at(&conv), &at(&bn), 1e-5)?;
            y = g.add(conv, layer, &[y]);
        }
        let mut outs = vec![y];
        if stages == 0 {
            return Ok(outs);
        }
        // Caffe's pooling: no padding, the last partial window kept.
        let pool = MaxPool2dParams::new(3).stride(2).ceil_mode(true);
        y = g.add_multi("layer0.pool", Op::MaxPool(pool), &[y], 2)[0];
        let mut inplanes = self.inplanes;
        for (i, &blocks) in self.layers.iter().enumerate().take(stages) {
            let planes = 64 << i;
            let stage_stride = 4 << i;
            let (stride, dilation) = match (i, stage_stride > output_stride) {
                (0, _) => (1, 1),
                (_, true) => (1, stage_stride / output_stride),
                (_, false) => (2, 1),
            };
            for j in 0..blocks {
                let block = SeBlock {
                    inplanes,
                    planes,
                    stride: if j == 0 { stride } else { 1 },
                    dilation,
                    // layer1's projection is 1x1 whatever the network.
                    downsample_kernel: if i == 0 {
                        1
                    } else {
                        self.downsample_kernel_size
                    },
                };
                let name = format!("layer{}.{j}", i + 1);
                y = self.append_block(g, y, block, (gpu, sd, prefix), &name)?;
                inplanes = 4 * planes;
            }
            outs.push(y);
        }
        Ok(outs)
    }

    /// One bottleneck, `name` under `prefix`.
    fn append_block(
        &self,
        g: &mut Graph,
        x: ValueId,
        b: SeBlock,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        name: &str,
    ) -> Result<ValueId> {
        // Node names within the network, weight names under the prefix.
        let node = |n: &str| key(name, n);
        let at = |n: &str| key(prefix, &node(n));
        let out = 4 * b.planes;
        let (mid1, mid2, first_strided) = match self.block {
            SeNetBlock::SeBottleneck => (2 * b.planes, 4 * b.planes, false),
            SeNetBlock::SeResNet => (b.planes, b.planes, true),
            SeNetBlock::SeResNeXt => {
                // floor(planes * base_width / 64) * groups, base_width 4.
                let width = b.planes * 4 / 64 * self.groups;
                (width, width, false)
            }
        };
        let (s1, s2) = if first_strided {
            (b.stride, 1)
        } else {
            (1, b.stride)
        };
        let relu = Activation::Relu;
        let p1 = Conv2dParams::new(b.inplanes, mid1, 1)
            .stride(s1)
            .bias(false)
            .activation(relu);
        let p2 = Conv2dParams::new(mid1, mid2, 3)
            .stride(s2)
            .padding(b.dilation)
            .dilation(b.dilation)
            .groups(self.groups)
            .bias(false)
            .activation(relu);
        let p3 = Conv2dParams::new(mid2, out, 1).bias(false);
        let residual = if b.stride != 1 || b.inplanes != out {
            let k = b.downsample_kernel;
            let pd = Conv2dParams::new(b.inplanes, out, k)
                .stride(b.stride)
                .padding(k / 2 * b.dilation)
                .dilation(b.dilation)
                .bias(false);
            let (conv, bn) = (at("downsample.0"), at("downsample.1"));
            let d = conv_bn(gpu, sd, pd, &conv, &bn, 1e-5)?;
            g.add(node("downsample"), d, &[x])
        } else {
            x
        };
        let mut y = x;
        for (i, p) in [(1, p1), (2, p2), (3, p3)] {
            let (conv, bn) = (format!("conv{i}"), format!("bn{i}"));
            let layer = conv_bn(gpu, sd, p, &at(&conv), &at(&bn), 1e-5)?;
            y = g.add(node(&conv), layer, &[y]);
        }
        let se = SqueezeExcitationParams::new(out, out / self.reduction);
        let (fc1, fc2) = (at("se_module.fc1"), at("se_module.fc2"));
        let gate = SeNode::load(gpu, sd, se, &fc1, &fc2)?.gate_only();
        let logits = g.add(node("se_module"), gate, &[y]);
        let end = Op::ScaleChannelsAdd {
            gate: Activation::Sigmoid,
            act: relu,
        };
        Ok(g.add(name, end, &[y, logits, residual]))
    }
}

/// One block's place in the network.
#[derive(Clone, Copy, Debug)]
struct SeBlock {
    inplanes: usize,
    planes: usize,
    stride: usize,
    dilation: usize,
    downsample_kernel: usize,
}

/// An SENet without its pooling and classifier: input `[N, 3, H, W]`, output `layer4`'s
/// `[N, 2048, H / 32, W / 32]` (rounded up by the pool's `ceil_mode`);
/// [`Model::forward_all`] also gives `layer3`, `layer2`, `layer1` and `layer0`, in that
/// order after `layer4`.
pub type SeNetFeatures = Model<SeNetConfig>;

impl Architecture for SeNetConfig {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        crate::error::positive(&[
            ("layers", self.layers.iter().copied().min().unwrap_or(0)),
            ("groups", self.groups),
            ("reduction", self.reduction),
            ("inplanes", self.inplanes),
            ("downsample_kernel_size", self.downsample_kernel_size),
        ])?;
        fail_if(self.layers.iter().any(|&n| n > 1024), "layers", || {
            format!("at most 1024 blocks a stage, got {:?}", self.layers)
        })?;
        fail_if(
            self.downsample_kernel_size.is_multiple_of(2),
            "downsample_kernel_size",
            || {
                format!(
                    "must be odd (padded by half of it), got {}",
                    self.downsample_kernel_size
                )
            },
        )?;
        fail_if(self.reduction > 256, "reduction", || {
            format!(
                "leaves layer1's 256 channels no squeeze channel, got {}",
                self.reduction
            )
        })
    }

    /// Loads `layer0` and `layer1` .. `layer4` under `prefix` (a whole model's state
    /// dict, its `last_linear` ignored).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        super::features_deepest_first(|g, x| {
            self.append_stages(g, x, (gpu, sd, prefix), (3, 4, 32))
        })
    }
}
