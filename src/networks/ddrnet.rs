//! DDRNet (Hong et al. 2021), the deep dual-resolution network for real-time semantic
//! segmentation, as ydhongHIT/DDRNet's `segmentation/DDRNet_23_slim.py`, `DDRNet_23.py`
//! and `DDRNet_39.py` define it (`DualResNet(BasicBlock, layers, num_classes, planes,
//! spp_planes, head_planes, augment)`), under its state-dict names, so its Cityscapes
//! checkpoints load as they are (saved from the training wrapper: their names start with
//! `model`, the prefix to load them with). Also the building blocks PIDNet shares with it
//! ([`super::PidNetConfig`]: its `model_utils.py` is DDRNet's modules).
//!
//! - A stem (`conv1`: two 3x3 stride-2 convolutions with bias, batch norm and ReLU) and
//!   two stages of ResNet basic blocks (`layer1`, `layer2`) reach 1/8.
//! - Two branches follow: a low-resolution one (`layer3`, `layer4`: basic blocks at 1/16
//!   and 1/32; `layer5`: a bottleneck of expansion 2 at 1/64) and a high-resolution one
//!   that stays at 1/8 (`layer3_`, `layer4_`; `layer5_`: a bottleneck), exchanging their
//!   maps after each stage (bilateral fusion): the high one's through 3x3 stride-2
//!   convolutions (`down3`; `down4`, two of them) added to the low one, the low one's
//!   through a 1x1 convolution (`compression3`, `compression4`), resized bilinearly and
//!   added to the high one. DDRNet-39 splits the third stage in two halves, each with its
//!   own fusion (`layer3_1` / `layer3_2`, `layer3_1_` / `layer3_2_`, `down3_1` / `down3_2`,
//!   `compression3_1` / `compression3_2`).
//! - The deep aggregation pyramid pooling module (`spp`, `DAPPM`: average pools of 5, 9
//!   and 17 at strides 2, 4 and 8 and a global one, each batch norm, ReLU and a 1x1
//!   convolution, resized back and added to the previous scale's output through a 3x3
//!   convolution) on the 1/64 map, resized to 1/8 and added to the high branch, and the
//!   head (`final_layer`: batch norm, ReLU, 3x3 convolution, batch norm, ReLU, 1x1
//!   classifier with bias) give the logits at 1/8.
//! - With `augment` the auxiliary head (`seghead_extra`) on the high branch after the
//!   third stage follows the logits: `[x_, x_extra]`, as PyTorch returns them.
//!
//! Every batch norm after a convolution is folded into it, its ReLU and the fusions'
//! sums in its store (a map the model uses both before and after a ReLU gets a pass for
//! the ReLU); those before a convolution (the pyramid's and the heads') run as passes of
//! their own. The input is `[N, 3, H, W]` with H and W positive multiples of 8: the high
//! branch meets the resized maps at `H // 8 x W // 8` only there (PyTorch fails elsewhere).

use crate::blocks::{conv_bn, Architecture, BnActNode, ConvBnAct, Graph, Model, Op, ValueId};
use crate::error::{fail_if, positive, Result};
use crate::gpu::Gpu;
use crate::ops::conv::{Conv2dParams, ResidualJoin};
use crate::ops::pool::{AvgPool2dParams, GlobalPool};
use crate::ops::upsample::UpsampleMode;
use crate::ops::{setters, Activation};
use crate::weights::{key, StateDict};

/// Input channels (`conv1` takes RGB).
pub(super) const IMAGE: usize = 3;
/// Batch norm's eps (PyTorch's default: the models set only the momentum).
pub(super) const EPS: f32 = 1e-5;
/// The output stride of the logits: the sides must be multiples of it.
pub(super) const STRIDE: usize = 8;
/// Every resize is bilinear without aligned corners (PIDNet's `algc = False`, DDRNet's
/// `F.interpolate` default).
pub(super) const BILINEAR: UpsampleMode = UpsampleMode::Bilinear {
    align_corners: false,
};

/// The two residual blocks of the model, with their expansion.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Block {
    /// `BasicBlock` (expansion 1; ends in ReLU unless `no_relu`).
    Basic,
    /// `Bottleneck` (expansion 2; ends without ReLU unless `no_relu=False`).
    Bottleneck,
}

impl Block {
    fn expansion(self) -> usize {
        match self {
            Block::Basic => 1,
            Block::Bottleneck => 2,
        }
    }
}

/// Where the weights are and the graph being built.
pub(super) struct Builder<'a> {
    pub(super) gpu: &'a Gpu,
    pub(super) sd: &'a StateDict,
    pub(super) prefix: &'a str,
    pub(super) g: Graph,
}

/// A `k` x `k` convolution without bias at `stride`, padded to keep the size.
pub(super) fn conv(cin: usize, cout: usize, k: usize, stride: usize) -> Conv2dParams {
    Conv2dParams::new(cin, cout, k)
        .stride(stride)
        .padding(k / 2)
        .bias(false)
}

impl<'a> Builder<'a> {
    /// A builder of an empty graph, loading from `sd` under `prefix`.
    pub(super) fn new(gpu: &'a Gpu, sd: &'a StateDict, prefix: &'a str) -> Self {
        Builder {
            gpu,
            sd,
            prefix,
            g: Graph::new(),
        }
    }

    pub(super) fn at(&self, name: &str) -> String {
        key(self.prefix, name)
    }

    /// The convolution `{name}.{conv}` with its batch norm `{name}.{bn}` on `x`.
    pub(super) fn conv_bn(
        &mut self,
        (name, conv, bn): (&str, &str, &str),
        x: ValueId,
        p: Conv2dParams,
    ) -> Result<ValueId> {
        let (c, b) = (self.at(&key(name, conv)), self.at(&key(name, bn)));
        let layer = conv_bn(self.gpu, self.sd, p, &c, &b, EPS)?;
        Ok(self.g.add(key(name, conv), layer, &[x]))
    }

    /// `then(conv(x) + residual)`: the convolution `{name}.{conv}` with its batch norm
    /// `{name}.{bn}` on `x`, the sum and its activation in its store.
    pub(super) fn conv_bn_join(
        &mut self,
        (name, conv, bn): (&str, &str, &str),
        [x, residual]: [ValueId; 2],
        p: Conv2dParams,
        then: Activation,
    ) -> Result<ValueId> {
        let (c, b) = (self.at(&key(name, conv)), self.at(&key(name, bn)));
        let layer = conv_bn(self.gpu, self.sd, p, &c, &b, EPS)?
            .with_residual(ResidualJoin::AddThen(then))?;
        Ok(self.g.add(key(name, conv), layer, &[x, residual]))
    }

    /// Batch norm `{name}.{bn}` over `channels` and ReLU on `x`, a pass of its own (a
    /// pre-activation norm: it cannot fold into the convolution after it).
    fn bn_relu(
        &mut self,
        (name, bn): (&str, &str),
        x: ValueId,
        channels: usize,
    ) -> Result<ValueId> {
        let at = self.at(&key(name, bn));
        let norm = BnActNode::load(self.gpu, self.sd, (channels, EPS), &at, Activation::Relu)?;
        Ok(self.g.add(key(name, bn), norm, &[x]))
    }

    /// The convolution `{name}.{conv}` alone, without a norm.
    fn plain_conv(&self, (name, conv): (&str, &str), p: Conv2dParams) -> Result<ConvBnAct> {
        ConvBnAct::load(self.gpu, self.sd, p, &self.at(&key(name, conv)), None, 0.0)
    }

    /// Batch norm `{name}.{bn}` and ReLU on `x`, then the convolution `{name}.{conv}`.
    pub(super) fn bn_relu_conv(
        &mut self,
        (name, bn, conv): (&str, &str, &str),
        x: ValueId,
        p: Conv2dParams,
    ) -> Result<ValueId> {
        let y = self.bn_relu((name, bn), x, p.in_channels)?;
        let layer = self.plain_conv((name, conv), p)?;
        Ok(self.g.add(key(name, conv), layer, &[y]))
    }

    /// One residual block under `name`: `relu_end` says whether its sum ends in ReLU.
    pub(super) fn block(
        &mut self,
        kind: Block,
        name: &str,
        x: ValueId,
        (inplanes, planes, stride): (usize, usize, usize),
        (downsample, relu_end): (bool, bool),
    ) -> Result<ValueId> {
        let out = planes * kind.expansion();
        let identity = match downsample {
            true => self.conv_bn(
                (name, "downsample.0", "downsample.1"),
                x,
                conv(inplanes, out, 1, stride),
            )?,
            false => x,
        };
        let relu = Activation::Relu;
        let y = match kind {
            Block::Basic => {
                let p = conv(inplanes, planes, 3, stride).activation(relu);
                self.conv_bn((name, "conv1", "bn1"), x, p)?
            }
            Block::Bottleneck => {
                let p = conv(inplanes, planes, 1, 1).activation(relu);
                let y = self.conv_bn((name, "conv1", "bn1"), x, p)?;
                let p = conv(planes, planes, 3, stride).activation(relu);
                self.conv_bn((name, "conv2", "bn2"), y, p)?
            }
        };
        let (last, last_bn, k) = match kind {
            Block::Basic => ("conv2", "bn2", 3),
            Block::Bottleneck => ("conv3", "bn3", 1),
        };
        let p = conv(planes, out, k, 1);
        let end = if relu_end { relu } else { Activation::None };
        self.conv_bn_join((name, last, last_bn), [y, identity], p, end)
    }

    /// `_make_layer(block, inplanes, planes, blocks, stride)` under `name`; `relu_after`:
    /// the model applies ReLU to its output (in the last block's store here).
    pub(super) fn layer(
        &mut self,
        kind: Block,
        name: &str,
        x: ValueId,
        (inplanes, planes, blocks, stride): (usize, usize, usize, usize),
        relu_after: bool,
    ) -> Result<ValueId> {
        let out = planes * kind.expansion();
        let mut y = x;
        // `_make_layer` builds its first block even for `blocks` 0.
        for i in 0..blocks.max(1) {
            // The first block keeps its class's default (`BasicBlock` ends in ReLU,
            // `Bottleneck` not); of the rest, only the last ends without.
            let no_relu = match i {
                0 => kind == Block::Bottleneck,
                _ => i == blocks - 1,
            };
            let relu_end = !no_relu || (relu_after && i + 1 >= blocks);
            let (cin, s) = if i == 0 { (inplanes, stride) } else { (out, 1) };
            let downsample = i == 0 && (stride != 1 || inplanes != out);
            let block_name = key(name, &i.to_string());
            y = self.block(
                kind,
                &block_name,
                y,
                (cin, planes, s),
                (downsample, relu_end),
            )?;
        }
        Ok(y)
    }

    /// `_make_single_layer(block, inplanes, planes)` under `name`: one block without ReLU.
    pub(super) fn single_layer(
        &mut self,
        kind: Block,
        name: &str,
        x: ValueId,
        (inplanes, planes): (usize, usize),
    ) -> Result<ValueId> {
        let downsample = inplanes != planes * kind.expansion();
        self.block(kind, name, x, (inplanes, planes, 1), (downsample, false))
    }

    /// The stem `conv1` on the input: two 3x3 stride-2 convolutions with bias (`conv1.0`,
    /// `conv1.3`), each with batch norm and ReLU, to `planes` channels at 1/4.
    pub(super) fn stem(&mut self, x: ValueId, planes: usize) -> Result<ValueId> {
        let relu = Activation::Relu;
        let p = Conv2dParams::new(IMAGE, planes, 3)
            .stride(2)
            .padding(1)
            .activation(relu);
        let y = self.conv_bn(("conv1", "0", "1"), x, p)?;
        let p = Conv2dParams::new(planes, planes, 3)
            .stride(2)
            .padding(1)
            .activation(relu);
        self.conv_bn(("conv1", "3", "4"), y, p)
    }

    /// `PAPPM(inplanes, branch, out)` (`parallel`) or `DAPPM` under `name` on `x`.
    pub(super) fn pyramid(
        &mut self,
        name: &str,
        x: ValueId,
        (inplanes, branch, out): (usize, usize, usize),
        parallel: bool,
    ) -> Result<ValueId> {
        let x0 = self.bn_relu_conv(
            (name, "scale0.0", "scale0.2"),
            x,
            conv(inplanes, branch, 1, 1),
        )?;
        let mut scales = vec![x0];
        let mut previous = x0;
        for k in 1..=4 {
            let scale = format!("{name}.scale{k}");
            let pool = match k {
                4 => Op::GlobalPool(GlobalPool::Avg),
                _ => {
                    // Windows of 5, 9 and 17 at strides 2, 4 and 8, padded by the stride.
                    let stride = 1 << k;
                    Op::AvgPool(
                        AvgPool2dParams::new(2 * stride + 1)
                            .stride(stride)
                            .padding(stride),
                    )
                }
            };
            let pooled = self.g.add(key(&scale, "0"), pool, &[x]);
            let s = self.bn_relu_conv((&scale, "1", "3"), pooled, conv(inplanes, branch, 1, 1))?;
            let up = self.g.resize_like(key(&scale, "up"), BILINEAR, s, x);
            let base = if parallel { x0 } else { previous };
            let sum = self.g.add(key(&scale, "add"), Op::Add, &[up, base]);
            if parallel {
                scales.push(sum);
            } else {
                let process = format!("{name}.process{k}");
                previous =
                    self.bn_relu_conv((&process, "0", "2"), sum, conv(branch, branch, 3, 1))?;
                scales.push(previous);
            }
        }
        let joined = if parallel {
            let cat = self.g.add(key(name, "cat"), Op::Concat, &scales[1..]);
            let p = conv(4 * branch, 4 * branch, 3, 1).groups(4);
            let processed =
                self.bn_relu_conv((name, "scale_process.0", "scale_process.2"), cat, p)?;
            self.g
                .add(key(name, "cat_out"), Op::Concat, &[x0, processed])
        } else {
            self.g.add(key(name, "cat"), Op::Concat, &scales)
        };
        let shortcut = self.bn_relu_conv(
            (name, "shortcut.0", "shortcut.2"),
            x,
            conv(inplanes, out, 1, 1),
        )?;
        let y = self.bn_relu((name, "compression.0"), joined, 5 * branch)?;
        let layer = self
            .plain_conv((name, "compression.2"), conv(5 * branch, out, 1, 1))?
            .with_residual(ResidualJoin::AddThen(Activation::None))?;
        Ok(self
            .g
            .add(key(name, "compression.2"), layer, &[y, shortcut]))
    }

    /// `segmenthead(cin, mid, classes)` under `name` on `x`: batch norm, ReLU, a 3x3
    /// convolution, batch norm and ReLU (folded), a 1x1 classifier with bias.
    pub(super) fn head(
        &mut self,
        name: &str,
        x: ValueId,
        (cin, mid, classes): (usize, usize, usize),
    ) -> Result<ValueId> {
        let y = self.bn_relu((name, "bn1"), x, cin)?;
        let p = conv(cin, mid, 3, 1).activation(Activation::Relu);
        let y = self.conv_bn((name, "conv1", "bn2"), y, p)?;
        let layer = self.plain_conv((name, "conv2"), Conv2dParams::new(mid, classes, 1))?;
        Ok(self.g.add(key(name, "conv2"), layer, &[y]))
    }
}

/// Checks an input shape of DDRNet or PIDNet: 3 channels, height and width positive
/// multiples of 8.
pub(super) fn check_input(input: [usize; 4]) -> Result<()> {
    crate::ops::check_channels(input, IMAGE)?;
    let fits = |s: usize| s > 0 && s.is_multiple_of(STRIDE);
    fail_if(!fits(input[2]) || !fits(input[3]), "input", || {
        format!(
            "height and width must be positive multiples of {STRIDE} (the 1/8 branch meets \
             the resized maps at H // 8 x W // 8 only there), got {input:?}"
        )
    })
}

/// The configuration of a DDRNet: `DualResNet(BasicBlock, layers, num_classes, planes,
/// spp_planes, head_planes, augment)`, in the form of `DDRNet_23*.py` or (`split_stage3`)
/// `DDRNet_39.py`. The presets are the files' own models (`augment` off).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DdrNetConfig {
    /// Basic blocks per stage (`layers`): `layer1`, `layer2`, `layer3` (with
    /// `split_stage3`, half of it in each of `layer3_1` and `layer3_2`, and as many in
    /// `layer3_1_` and `layer3_2_`) and `layer4` (with `split_stage3` also `layer4_`; the
    /// 23 form's `layer3_` and `layer4_` have 2 whatever `layers` says, as its file builds
    /// them).
    pub layers: [usize; 4],
    /// Classes of the logits (`num_classes`; 19 for Cityscapes).
    pub num_classes: usize,
    /// The base width (`planes`): the low branch widens it to 16 times, the high branch
    /// keeps twice it.
    pub planes: usize,
    /// The pyramid pooling module's branch width (`spp_planes`).
    pub spp_planes: usize,
    /// The segmentation heads' hidden width (`head_planes`).
    pub head_planes: usize,
    /// Whether `forward` returns the auxiliary head's logits after the logits (`augment`,
    /// default `false`).
    pub augment: bool,
    /// DDRNet-39's third stage: two halves, each with its bilateral fusion.
    pub split_stage3: bool,
}

impl DdrNetConfig {
    /// DDRNet-23-slim (`DDRNet_23_slim.py`): `layers=[2, 2, 2, 2]`, `planes=32`,
    /// `spp_planes=128`, `head_planes=64`.
    pub fn ddrnet_23_slim(num_classes: usize) -> Self {
        Self::preset(num_classes, [2, 2, 2, 2], (32, 128, 64), false)
    }

    /// DDRNet-23 (`DDRNet_23.py`): `layers=[2, 2, 2, 2]`, `planes=64`, `spp_planes=128`,
    /// `head_planes=128`.
    pub fn ddrnet_23(num_classes: usize) -> Self {
        Self::preset(num_classes, [2, 2, 2, 2], (64, 128, 128), false)
    }

    /// DDRNet-39 (`DDRNet_39.py`): `layers=[3, 4, 6, 3]`, `planes=64`, `spp_planes=128`,
    /// `head_planes=256`, the third stage split.
    pub fn ddrnet_39(num_classes: usize) -> Self {
        Self::preset(num_classes, [3, 4, 6, 3], (64, 128, 256), true)
    }

    /// The preset of a model name: `ddrnet_23_slim`, `ddrnet_23` or `ddrnet_39`; another
    /// name is a typed error naming `name`.
    pub fn from_name(name: &str, num_classes: usize) -> Result<Self> {
        match name {
            "ddrnet_23_slim" => Ok(Self::ddrnet_23_slim(num_classes)),
            "ddrnet_23" => Ok(Self::ddrnet_23(num_classes)),
            "ddrnet_39" => Ok(Self::ddrnet_39(num_classes)),
            other => Err(crate::Error::InvalidParam {
                name: "name",
                reason: format!("unknown DDRNet {other:?}: ddrnet_23_slim, ddrnet_23 or ddrnet_39"),
            }),
        }
    }

    fn preset(
        num_classes: usize,
        layers: [usize; 4],
        (planes, spp_planes, head_planes): (usize, usize, usize),
        split_stage3: bool,
    ) -> Self {
        DdrNetConfig {
            layers,
            num_classes,
            planes,
            spp_planes,
            head_planes,
            augment: false,
            split_stage3,
        }
    }
}

setters!(DdrNetConfig {
    /// Sets whether the auxiliary head's logits follow the logits (`augment`).
    augment: bool,
});

/// A DDRNet: input `[N, 3, H, W]` (H and W multiples of 8), output the logits
/// `[N, num_classes, H / 8, W / 8]` (with `augment`, the auxiliary head's after them).
pub type DdrNet = Model<DdrNetConfig>;

/// One third-stage part's names: the low branch's layer, the high branch's, the fusion
/// to the low branch and the one to the high branch.
struct Stage3Names {
    low: &'static str,
    high: &'static str,
    down: &'static str,
    compression: &'static str,
}

impl Architecture for DdrNetConfig {
    /// Checks that every width is positive (a stage of 0 blocks has one, as
    /// `_make_layer` builds it).
    fn validate(&self) -> Result<()> {
        positive(&[
            ("num_classes", self.num_classes),
            ("planes", self.planes),
            ("spp_planes", self.spp_planes),
            ("head_planes", self.head_planes),
        ])
    }

    /// Loads `conv1`, `layer1` .. `layer5`, the high branch's `layer3_` .. `layer5_`,
    /// `down3` / `down4`, `compression3` / `4` (DDRNet-39: the `_1` / `_2` halves), `spp`
    /// and `final_layer` (with `augment` also `seghead_extra`).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let mut b = Builder::new(gpu, sd, prefix);
        let (p, layers) = (self.planes, self.layers);
        let high_width = 2 * p;
        let relu = Activation::Relu;
        let basic = Block::Basic;
        let x = b.g.input();
        let y = b.stem(x, p)?;
        // `layer1`'s and `layer2`'s outputs are read only through ReLU: in their stores.
        let y = b.layer(basic, "layer1", y, (p, p, layers[0], 1), true)?;
        let y = b.layer(basic, "layer2", y, (p, 2 * p, layers[1], 2), true)?;
        let parts: &[(Stage3Names, usize, usize)] = if self.split_stage3 {
            &[
                (
                    Stage3Names {
                        low: "layer3_1",
                        high: "layer3_1_",
                        down: "down3_1",
                        compression: "compression3_1",
                    },
                    layers[2] / 2,
                    layers[2] / 2,
                ),
                (
                    Stage3Names {
                        low: "layer3_2",
                        high: "layer3_2_",
                        down: "down3_2",
                        compression: "compression3_2",
                    },
                    layers[2] / 2,
                    layers[2] / 2,
                ),
            ]
        } else {
            &[(
                Stage3Names {
                    low: "layer3",
                    high: "layer3_",
                    down: "down3",
                    compression: "compression3",
                },
                layers[2],
                2,
            )]
        };
        // Both branches' inputs, activated.
        let (mut low, mut high) = (y, y);
        let (mut low_in, mut high_in) = (2 * p, 2 * p);
        let mut temp = None;
        for (k, (names, low_blocks, high_blocks)) in parts.iter().enumerate() {
            let stride = if k == 0 { 2 } else { 1 };
            let l = b.layer(
                basic,
                names.low,
                low,
                (low_in, 4 * p, *low_blocks, stride),
                false,
            )?;
            let h = b.layer(
                basic,
                names.high,
                high,
                (high_in, high_width, *high_blocks, 1),
                false,
            )?;
            let l_relu = b.g.add(key(names.low, "relu"), Op::Activation(relu), &[l]);
            let h_relu = b.g.add(key(names.high, "relu"), Op::Activation(relu), &[h]);
            let p_down = conv(high_width, 4 * p, 3, 2);
            low = b.conv_bn_join((names.down, "0", "1"), [h_relu, l], p_down, relu)?;
            let p_comp = conv(4 * p, high_width, 1, 1);
            let compressed = b.conv_bn((names.compression, "0", "1"), l_relu, p_comp)?;
            let up =
                b.g.resize_like(key(names.compression, "up"), BILINEAR, compressed, h);
            let last = k + 1 == parts.len();
            high = if last && self.augment {
                // The auxiliary head reads the sum before the ReLU.
                let sum = b.g.add(key(names.compression, "add"), Op::Add, &[h, up]);
                temp = Some(sum);
                b.g.add(key(names.high, "out_relu"), Op::Activation(relu), &[sum])
            } else {
                b.g.add(key(names.compression, "add"), Op::AddThen(relu), &[h, up])
            };
            (low_in, high_in) = (4 * p, high_width);
        }
        let high_blocks4 = if self.split_stage3 { layers[3] } else { 2 };
        let l4 = b.layer(basic, "layer4", low, (4 * p, 8 * p, layers[3], 2), false)?;
        let h4 = b.layer(
            basic,
            "layer4_",
            high,
            (high_width, high_width, high_blocks4, 1),
            false,
        )?;
        let l4_relu = b.g.add("layer4.relu", Op::Activation(relu), &[l4]);
        let h4_relu = b.g.add("layer4_.relu", Op::Activation(relu), &[h4]);
        let d = conv(high_width, 4 * p, 3, 2).activation(relu);
        let d = b.conv_bn(("down4", "0", "1"), h4_relu, d)?;
        let low = b.conv_bn_join(("down4", "3", "4"), [d, l4], conv(4 * p, 8 * p, 3, 2), relu)?;
        let compressed = b.conv_bn(
            ("compression4", "0", "1"),
            l4_relu,
            conv(8 * p, high_width, 1, 1),
        )?;
        let up = b.g.resize_like("compression4.up", BILINEAR, compressed, h4);
        let high = b.g.add("compression4.add", Op::AddThen(relu), &[h4, up]);
        let bottleneck = Block::Bottleneck;
        let high = b.layer(
            bottleneck,
            "layer5_",
            high,
            (high_width, high_width, 1, 1),
            false,
        )?;
        let low = b.layer(bottleneck, "layer5", low, (8 * p, 8 * p, 1, 2), false)?;
        let low = b.pyramid("spp", low, (16 * p, self.spp_planes, 4 * p), false)?;
        let low = b.g.resize_like("spp.up", BILINEAR, low, high);
        let sum = b.g.add("final_layer.add", Op::Add, &[low, high]);
        let (classes, head) = (self.num_classes, self.head_planes);
        let logits = b.head("final_layer", sum, (4 * p, head, classes))?;
        let mut outs = vec![logits];
        if let Some(temp) = temp {
            outs.push(b.head("seghead_extra", temp, (high_width, head, classes))?);
        }
        b.g.set_outputs(&outs);
        Ok(b.g)
    }

    /// Checks an input shape: 3 channels, height and width positive multiples of 8.
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        check_input(input)
    }
}
