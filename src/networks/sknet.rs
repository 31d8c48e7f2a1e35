//! timm's Selective Kernel ResNets as segmentation_models_pytorch builds them (its
//! `timm-skresnet18`, `timm-skresnet34` and `timm-skresnext50_32x4d` encoders, timm's
//! `ResNet` with `SelectiveKernelBasic` / `SelectiveKernelBottleneck` blocks) as feature
//! extractors: the 7x7 stem (`conv1`, `bn1`, ReLU), a 3x3 stride-2 max pool and four
//! stages. A Selective Kernel convolution (`SelectiveKernel`) runs two 3x3 paths, the
//! second dilated twice as much (timm's `keep_3x3` form of a 5x5 path), each on its half
//! of the input channels (`split_input`), with batch norm and ReLU; its attention
//! (`SelectiveKernelAttn`) pools the paths' sum, squeezes it (`fc_reduce`, batch norm,
//! ReLU), and weighs the paths per channel by a softmax of `fc_select`'s logits.
//!
//! On the GPU the two paths' softmax weights are `sigmoid(l0 - l1)` and its complement:
//! `fc_select` is folded at load into the one row difference, the squeeze's batch norm
//! into `fc_reduce`, so the attention is one squeeze-and-excitation gate over the paths'
//! sum (never materialised) and one channel-gated blend
//! ([`lerp_channels`](crate::ops::channel::lerp_channels)). The CPU reference keeps timm's
//! order ([`crate::reference::attention::selective_kernel`]).

use crate::blocks::{conv_bn, Architecture, Graph, Model, Op, TwoPathAttentionNode, ValueId};
use crate::error::{fail_if, positive, Result};
use crate::gpu::Gpu;
use crate::ops::conv::{Conv2dParams, ResidualJoin};
use crate::ops::pool::MaxPool2dParams;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// The block a Selective Kernel ResNet is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SkResNetBlock {
    /// `SelectiveKernelBasic`: a Selective Kernel 3x3 (strided), a 3x3 with batch norm,
    /// expansion 1 (SK-ResNet-18 / 34).
    Basic,
    /// `SelectiveKernelBottleneck`: 1x1, a grouped Selective Kernel 3x3 (strided), 1x1,
    /// expansion 4 (SK-ResNeXt-50).
    Bottleneck,
}

/// The configuration of timm's `ResNet(block, layers, cardinality, base_width,
/// block_args=dict(sk_kwargs=...))` with Selective Kernel blocks, without its classifier,
/// as segmentation_models_pytorch builds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SkResNetConfig {
    /// The block.
    pub block: SkResNetBlock,
    /// Blocks per stage (SK-ResNet-34: `[3, 4, 6, 3]`).
    pub layers: [usize; 4],
    /// Groups of each path's 3x3 convolution in bottlenecks (`cardinality`, 32; basic
    /// blocks: 1).
    pub cardinality: usize,
    /// Width per group of the bottlenecks (`base_width`, 4; basic blocks: 64).
    pub base_width: usize,
    /// The attention's squeeze: `rd_ratio = 1 / rd_reduction` of the block's width,
    /// rounded by timm's `make_divisible` to a multiple of `rd_divisor` (8 for smp's
    /// SK-ResNets, which pass `rd_ratio=1/8`; 16 for SK-ResNeXt, timm's default).
    pub rd_reduction: usize,
    /// The multiple the squeeze's width is rounded to (`rd_divisor`, 8).
    pub rd_divisor: usize,
}

impl SkResNetConfig {
    /// segmentation_models_pytorch's encoder names: `timm-skresnet18`,
    /// `timm-skresnet34`, `timm-skresnext50_32x4d`; any other name is an error naming
    /// `encoder_name`.
    pub fn from_smp(name: &str) -> Result<Self> {
        let basic = |layers| SkResNetConfig {
            block: SkResNetBlock::Basic,
            layers,
            cardinality: 1,
            base_width: 64,
            rd_reduction: 8,
            rd_divisor: 8,
        };
        Ok(match name {
            "timm-skresnet18" => basic([2, 2, 2, 2]),
            "timm-skresnet34" => basic([3, 4, 6, 3]),
            // smp passes no `sk_kwargs` here: timm's `SelectiveKernel` defaults.
            "timm-skresnext50_32x4d" => SkResNetConfig {
                block: SkResNetBlock::Bottleneck,
                layers: [3, 4, 6, 3],
                cardinality: 32,
                base_width: 4,
                rd_reduction: 16,
                rd_divisor: 8,
            },
            other => {
                return Err(crate::Error::InvalidParam {
                    name: "encoder_name",
                    reason: format!(
                        "{other:?} is not one of smp's Selective Kernel encoders \
                         (timm-skresnet18, timm-skresnet34, timm-skresnext50_32x4d)"
                    ),
                })
            }
        })
    }

    fn expansion(&self) -> usize {
        match self.block {
            SkResNetBlock::Basic => 1,
            SkResNetBlock::Bottleneck => 4,
        }
    }

    /// Channels of the stem and of `layer1` .. `layer4`'s outputs.
    pub fn feature_channels(&self) -> [usize; 5] {
        let e = self.expansion();
        [64, 64 * e, 128 * e, 256 * e, 512 * e]
    }

    /// The attention's squeeze width for a block of `width` channels (timm's
    /// `make_divisible(width * rd_ratio, rd_divisor)`).
    pub fn attention_channels(&self, width: usize) -> usize {
        let d = self.rd_divisor;
        let v = width as f64 / self.rd_reduction as f64;
        let rounded = ((v + d as f64 / 2.0) as usize / d * d).max(d);
        if (rounded as f64) < 0.9 * v {
            rounded + d
        } else {
            rounded
        }
    }

    /// The stem and the first `stages` stages appended to `g` after `x` (`in_channels`
    /// channels), loaded under `prefix`; returns the stem's output and each stage's. An
    /// `output_stride` of 16 or 8 patches the stages past it as smp's `make_dilated`
    /// does: every convolution of `layer3` (16) / `layer4` (32) at stride 1 and dilated
    /// by the stage's stride over `output_stride`, both paths of a Selective Kernel
    /// convolution alike (32: none).
    pub(crate) fn append_stages(
        &self,
        g: &mut Graph,
        x: ValueId,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        (in_channels, stages, output_stride): (usize, usize, usize),
    ) -> Result<Vec<ValueId>> {
        let stem = Conv2dParams::new(in_channels, 64, 7)
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
        let mut outs = vec![y];
        if stages == 0 {
            return Ok(outs);
        }
        let pool = MaxPool2dParams::new(3).stride(2).padding(1);
        y = g.add_multi("maxpool", Op::MaxPool(pool), &[y], 2)[0];
        let mut inplanes = 64;
        for (i, &blocks) in self.layers.iter().enumerate().take(stages) {
            let planes = 64 << i;
            let stage_stride = 4 << i;
            let built_stride = if i == 0 { 1 } else { 2 };
            let rate = super::smp_unet::smp_dilation(stage_stride, output_stride);
            for j in 0..blocks {
                let stride = if j == 0 { built_stride } else { 1 };
                let block = SkBlock {
                    inplanes,
                    planes,
                    // timm builds the projection before smp patches the strides away.
                    downsample: stride != 1 || inplanes != planes * self.expansion(),
                    stride: if rate > 1 { 1 } else { stride },
                    patched: (rate > 1).then_some(rate),
                };
                let name = format!("layer{}.{j}", i + 1);
                y = self.append_block(g, y, block, (gpu, sd, prefix), &name)?;
                inplanes = planes * self.expansion();
            }
            outs.push(y);
        }
        Ok(outs)
    }

    /// One block, `name` under `prefix`.
    fn append_block(
        &self,
        g: &mut Graph,
        x: ValueId,
        b: SkBlock,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        name: &str,
    ) -> Result<ValueId> {
        let node = |n: &str| key(name, n);
        let at = |n: &str| key(prefix, &node(n));
        let relu = Activation::Relu;
        let out = b.planes * self.expansion();
        // A 3x3 at this block's dilation (every convolution of a patched stage has it).
        let conv3 = |cin, cout, dilation: usize, groups| {
            let d = b.patched.unwrap_or(dilation);
            Conv2dParams::new(cin, cout, 3)
                .stride(b.stride)
                .padding(d)
                .dilation(d)
                .groups(groups)
                .bias(false)
        };
        let residual = if b.downsample {
            let d = b.patched.unwrap_or(1);
            let pd = Conv2dParams::new(b.inplanes, out, 1)
                .stride(b.stride)
                .dilation(d)
                .bias(false);
            let (conv, bn) = (at("downsample.0"), at("downsample.1"));
            let layer = conv_bn(gpu, sd, pd, &conv, &bn, 1e-5)?;
            g.add(node("downsample"), layer, &[x])
        } else {
            x
        };
        let sk = |g: &mut Graph,
                  x,
                  cin: usize,
                  width: usize,
                  groups: usize,
                  conv: &str|
         -> Result<ValueId> {
            let half = cin / 2;
            let mut paths = Vec::with_capacity(2);
            for (k, dilation) in [(0, 1), (1, 2)] {
                let input = g.add(
                    node(&format!("{conv}.split{k}")),
                    Op::Narrow(k * half, half),
                    &[x],
                );
                let p = conv3(half, width, dilation, groups.min(width)).activation(relu);
                let path = format!("{conv}.paths.{k}");
                let layer = conv_bn(
                    gpu,
                    sd,
                    p,
                    &at(&format!("{path}.conv")),
                    &at(&format!("{path}.bn")),
                    1e-5,
                )?;
                paths.push(g.add(node(&path), layer, &[input]));
            }
            let attn = at(&format!("{conv}.attn"));
            let names = [
                key(&attn, "fc_reduce"),
                key(&attn, "bn"),
                key(&attn, "fc_select"),
            ];
            let widths = (width, self.attention_channels(width));
            let attn = TwoPathAttentionNode::load(gpu, sd, widths, &names)?;
            Ok(g.add(node(conv), attn, &paths))
        };
        let end = ResidualJoin::AddThen(relu);
        match self.block {
            SkResNetBlock::Basic => {
                let y = sk(g, x, b.inplanes, b.planes, 1, "conv1")?;
                let p2 = conv3(b.planes, out, 1, 1).stride(1);
                let layer = conv_bn(gpu, sd, p2, &at("conv2.conv"), &at("conv2.bn"), 1e-5)?
                    .with_residual(end)?;
                Ok(g.add(node("conv2"), layer, &[y, residual]))
            }
            SkResNetBlock::Bottleneck => {
                let width = b.planes * self.base_width / 64 * self.cardinality;
                let p1 = Conv2dParams::new(b.inplanes, width, 1)
                    .bias(false)
                    .activation(relu);
                let layer = conv_bn(gpu, sd, p1, &at("conv1.conv"), &at("conv1.bn"), 1e-5)?;
                let y = g.add(node("conv1"), layer, &[x]);
                let y = sk(g, y, width, width, self.cardinality, "conv2")?;
                let p3 = Conv2dParams::new(width, out, 1).bias(false);
                let layer = conv_bn(gpu, sd, p3, &at("conv3.conv"), &at("conv3.bn"), 1e-5)?
                    .with_residual(end)?;
                Ok(g.add(node("conv3"), layer, &[y, residual]))
            }
        }
    }
}

/// One block's place in the network.
#[derive(Clone, Copy, Debug)]
struct SkBlock {
    inplanes: usize,
    planes: usize,
    stride: usize,
    downsample: bool,
    /// smp's dilation of a patched stage: every convolution at this one.
    patched: Option<usize>,
}

/// A Selective Kernel ResNet without its pooling and classifier: input `[N, 3, H, W]`,
/// output `layer4`'s `[N, 512 * expansion, H / 32, W / 32]`; [`Model::forward_all`] also
/// gives `layer3`, `layer2`, `layer1` and the stem's output, in that order after `layer4`.
pub type SkResNetFeatures = Model<SkResNetConfig>;

impl Architecture for SkResNetConfig {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        positive(&[
            ("layers", self.layers.iter().copied().min().unwrap_or(0)),
            ("cardinality", self.cardinality),
            ("base_width", self.base_width),
            ("rd_reduction", self.rd_reduction),
            ("rd_divisor", self.rd_divisor),
        ])?;
        fail_if(self.layers.iter().any(|&n| n > 1024), "layers", || {
            format!("at most 1024 blocks a stage, got {:?}", self.layers)
        })?;
        if self.block == SkResNetBlock::Basic {
            fail_if(
                self.cardinality != 1 || self.base_width != 64,
                "cardinality",
                || {
                    format!(
                        "basic blocks only support cardinality 1 and base_width 64 (as timm), \
                         got {} and {}",
                        self.cardinality, self.base_width
                    )
                },
            )?;
        }
        // Each path takes half of the Selective Kernel convolution's input channels, in
        // `cardinality` groups (timm asserts the split; PyTorch the groups).
        for i in 0..4 {
            let planes = 64 << i;
            let width = match self.block {
                SkResNetBlock::Basic => planes,
                SkResNetBlock::Bottleneck => planes * self.base_width / 64 * self.cardinality,
            };
            let groups = self.cardinality.min(width);
            fail_if(
                width == 0 || !(width / 2).is_multiple_of(groups) || !width.is_multiple_of(groups),
                "cardinality",
                || {
                    format!(
                        "layer{}'s paths ({} -> {width} channels) cannot be split into {groups} \
                         groups",
                        i + 1,
                        width / 2
                    )
                },
            )?;
        }
        Ok(())
    }

    /// Loads `conv1`, `bn1` and `layer1` .. `layer4` under `prefix` (timm's names; its
    /// `fc` ignored).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        super::features_deepest_first(|g, x| {
            self.append_stages(g, x, (gpu, sd, prefix), (3, 4, 32))
        })
    }
}
