//! EfficientNet-B0 to B7 as segmentation_models_pytorch's `efficientnet-b*` encoders
//! have it: Luke Melas-Kyriazi's EfficientNet-PyTorch (`efficientnet_pytorch`, vendored in
//! smp as `encoders/_efficientnet.py`), under its own names (`_conv_stem`, `_bn0`,
//! `_blocks.{i}._expand_conv`, `._bn0`, `._depthwise_conv`, `._bn1`, `._se_reduce`,
//! `._se_expand`, `._project_conv`, `._bn2`, `_conv_head`, `_bn1`).
//!
//! It ports TensorFlow's model, and keeps TensorFlow's `'SAME'` padding *fixed at the
//! resolution the model was defined for* (`Conv2dStaticSamePadding`: 224 for B0, 240 for
//! B1, ... 600 for B7): every convolution pads as it would at that size, whatever the
//! size of the image it runs on (a 3x3 stride-2 convolution defined at an even size pads
//! `(0, 1)`, at an odd size `(1, 1)`). Batch norm eps is 0.001, the activation SiLU, the
//! squeeze-and-excitation gate `sigmoid(fc2(silu(fc1(avgpool(x)))))` with
//! `max(1, int(block input channels * 0.25))` channels.
//!
//! torchvision's `efficientnet_b0` .. `efficientnet_b7` and `efficientnet_v2_s` / `_m` /
//! `_l` ([`EfficientNetConfig`], [`EfficientNetFeatures`]: their `features`) are the same
//! blocks under torchvision's names with PyTorch's symmetric padding (`(k - 1) / 2`);
//! EfficientNetV2's first stages are `FusedMBConv` blocks (a k x k expansion, then a 1x1
//! projection; no SE).

use crate::blocks::{
    conv_bn, conv_bn_at, make_divisible, mbconv_graph, Architecture, ConvBnAct, Graph, Model,
    SeNode, ValueId,
};
use crate::error::{fail_if, Error, Result};
use crate::gpu::Gpu;
use crate::ops::attention::SqueezeExcitationParams;
use crate::ops::conv::{tf_same_padding, Conv2dParams, ResidualJoin};
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// One of EfficientNet-PyTorch's models, B0 to B7: width and depth coefficients and the
/// resolution its static padding is computed for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EfficientNetPyTorchConfig {
    /// Which model, 0 (B0) to 7 (B7).
    pub variant: usize,
    /// Channel multiplier (`width_coefficient`), rounded per layer to a multiple of 8.
    pub width_coefficient: f64,
    /// Block-count multiplier (`depth_coefficient`), rounded up per stage.
    pub depth_coefficient: f64,
    /// The resolution the model was defined for (`image_size`), which fixes its padding.
    pub image_size: usize,
}

/// The stages of EfficientNet-B0 (`BlockDecoder`'s strings `r{repeats}_k{kernel}_s{stride}
/// _e{expand}_i{in}_o{out}_se0.25`; timm's `ds_r1_k3_s1_e1_c16`, `ir_r2_k3_s2_e6_c24`, ...):
/// repeats, kernel, stride, expansion, output channels.
pub(crate) const STAGES: [[usize; 5]; 7] = [
    [1, 3, 1, 1, 16],
    [2, 3, 2, 6, 24],
    [2, 5, 2, 6, 40],
    [3, 3, 2, 6, 80],
    [3, 5, 1, 6, 112],
    [4, 5, 2, 6, 192],
    [1, 3, 1, 6, 320],
];

/// EfficientNet-B0 to B7: width and depth coefficients and the resolution each was
/// defined for (`efficientnet_params`; torchvision's `_efficientnet_conf` has the same
/// coefficients).
const B_VARIANTS: [(f64, f64, usize); 8] = [
    (1.0, 1.0, 224),
    (1.0, 1.1, 240),
    (1.1, 1.2, 260),
    (1.2, 1.4, 300),
    (1.4, 1.8, 380),
    (1.6, 2.2, 456),
    (1.8, 2.6, 528),
    (2.0, 3.1, 600),
];

/// Batch norm eps of every layer (`batch_norm_epsilon`).
const EPS: f32 = 1e-3;

/// One MBConv block as the model builds it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct BlockSpec {
    input: usize,
    output: usize,
    kernel: usize,
    stride: usize,
    expand: usize,
    /// The static resolution of the block's input (its padding's).
    image_size: usize,
}

impl EfficientNetPyTorchConfig {
    /// `efficientnet-b{variant}` (`efficientnet_params`): B0 (1.0, 1.0, 224) to B7
    /// (2.0, 3.1, 600); any other variant is an error naming `variant`.
    pub fn b(variant: usize) -> Result<Self> {
        let &(width_coefficient, depth_coefficient, image_size) =
            B_VARIANTS.get(variant).ok_or_else(|| Error::InvalidParam {
                name: "variant",
                reason: format!("EfficientNet has B0 to B7, got B{variant}"),
            })?;
        Ok(EfficientNetPyTorchConfig {
            variant,
            width_coefficient,
            depth_coefficient,
            image_size,
        })
    }

    /// `round_filters`: `filters * width_coefficient` to the nearest multiple of 8, at
    /// least 8 and never more than 10% below.
    fn filters(&self, filters: usize) -> usize {
        make_divisible(filters as f64 * self.width_coefficient, 8)
    }

    /// `round_repeats`: `ceil(repeats * depth_coefficient)`.
    fn repeats(&self, repeats: usize) -> usize {
        (repeats as f64 * self.depth_coefficient).ceil() as usize
    }

    /// Channels of the stem's output.
    fn stem_channels(&self) -> usize {
        self.filters(32)
    }

    /// Every block, in order (`_blocks`).
    fn blocks(&self) -> Vec<BlockSpec> {
        let mut size = self.image_size.div_ceil(2);
        let mut blocks = Vec::new();
        let mut input = self.stem_channels();
        for [repeats, kernel, stride, expand, output] in STAGES {
            let output = self.filters(output);
            for i in 0..self.repeats(repeats) {
                let stride = if i == 0 { stride } else { 1 };
                blocks.push(BlockSpec {
                    input,
                    output,
                    kernel,
                    stride,
                    expand,
                    image_size: size,
                });
                size = size.div_ceil(stride);
                input = output;
            }
        }
        blocks
    }

    /// The blocks after which segmentation_models_pytorch's encoder takes its features at
    /// strides 4, 8, 16 and 32 (its `out_indexes`; B0's third is the first block of the
    /// 112-channel stage, not its last).
    pub(crate) fn out_indexes(&self) -> [usize; 4] {
        [
            [2, 4, 8, 15],
            [4, 7, 15, 22],
            [4, 7, 15, 22],
            [4, 7, 17, 25],
            [5, 9, 21, 31],
            [7, 12, 26, 38],
            [8, 14, 30, 44],
            [10, 17, 37, 54],
        ][self.variant]
    }

    /// Channels of smp's features: the input's, the stem's, then after each of
    /// [`EfficientNetPyTorchConfig::out_indexes`].
    pub(crate) fn feature_channels(&self, in_channels: usize) -> Vec<usize> {
        let blocks = self.blocks();
        let mut c = vec![in_channels, self.stem_channels()];
        c.extend(self.out_indexes().map(|i| blocks[i].output));
        c
    }

    /// The stem (`{prefix}._conv_stem`, taking `in_channels` channels) and the first
    /// `blocks` blocks `{prefix}._blocks.0, ...` appended to `g` after `x`; returns
    /// the stem's output and each block's. `dilation(i)` is the dilation of block `i`:
    /// above 1 it is smp's `replace_strides_with_dilation` (stride 1, PyTorch padding
    /// `(k / 2) * dilation`, the static padding removed; the skip stays the unpatched
    /// block's).
    pub(crate) fn append(
        &self,
        g: &mut Graph,
        x: ValueId,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        (in_channels, blocks, dilation): (usize, usize, &dyn Fn(usize) -> usize),
    ) -> Result<Vec<ValueId>> {
        let at = |name: &str| key(prefix, name);
        let stem_channels = self.stem_channels();
        let pad = tf_same_padding(self.image_size, 3, 2, 1);
        let stem = Conv2dParams::new(in_channels, stem_channels, 3)
            .stride(2)
            .padding_asymmetric(pad, pad)
            .bias(false)
            .activation(Activation::Silu);
        let stem = conv_bn(gpu, sd, stem, &at("_conv_stem"), &at("_bn0"), EPS)?;
        let mut outs = vec![g.add("_conv_stem", stem, &[x])];
        for (i, spec) in self.blocks().into_iter().enumerate().take(blocks) {
            let name = format!("_blocks.{i}");
            let block = mbconv(gpu, sd, &at(&name), spec, dilation(i))?;
            let y = g.add(name, block, &[*outs.last().expect("the stem")]);
            outs.push(y);
        }
        Ok(outs)
    }
}

/// The MBConv block `spec` under `prefix`, with `dilation` as in
/// [`EfficientNetPyTorchConfig::append`].
fn mbconv(
    gpu: &Gpu,
    sd: &StateDict,
    prefix: &str,
    spec: BlockSpec,
    dilation: usize,
) -> Result<Graph> {
    let at = |name: &str| key(prefix, name);
    let silu = Activation::Silu;
    let hidden = spec.input * spec.expand;
    let expand = if spec.expand != 1 {
        let p = Conv2dParams::new(spec.input, hidden, 1)
            .bias(false)
            .activation(silu);
        Some(conv_bn(gpu, sd, p, &at("_expand_conv"), &at("_bn0"), EPS)?)
    } else {
        None
    };
    let k = spec.kernel;
    let depthwise = Conv2dParams::depthwise(hidden, 1, k)
        .bias(false)
        .activation(silu);
    let depthwise = if dilation > 1 {
        depthwise.dilation(dilation).padding(k / 2 * dilation)
    } else {
        let pad = tf_same_padding(spec.image_size, k, spec.stride, 1);
        depthwise.stride(spec.stride).padding_asymmetric(pad, pad)
    };
    let depthwise = conv_bn(gpu, sd, depthwise, &at("_depthwise_conv"), &at("_bn1"), EPS)?;
    let squeezed = ((spec.input as f64 * 0.25) as usize).max(1);
    let se = SqueezeExcitationParams::new(hidden, squeezed)
        .activation(silu)
        .scale_activation(Activation::Sigmoid);
    let se = SeNode::load(gpu, sd, se, &at("_se_reduce"), &at("_se_expand"))?;
    let project = Conv2dParams::new(hidden, spec.output, 1).bias(false);
    let project = conv_bn(gpu, sd, project, &at("_project_conv"), &at("_bn2"), EPS)?;
    let skip = spec.stride == 1 && spec.input == spec.output;
    let names = ["_expand_conv", "_depthwise_conv", "_se", "_project_conv"];
    mbconv_graph(gpu, skip, (expand, depthwise, Some(se), project), names)
}

/// EfficientNet-PyTorch's `extract_features`: the stem, every block, and the 1x1 head
/// convolution to `round_filters(1280)` channels (`_conv_head`, `_bn1`, SiLU).
pub type EfficientNetPyTorchFeatures = Model<EfficientNetPyTorchConfig>;

impl Architecture for EfficientNetPyTorchConfig {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        Self::b(self.variant)?;
        for (name, c) in [
            ("width_coefficient", self.width_coefficient),
            ("depth_coefficient", self.depth_coefficient),
        ] {
            fail_if(!(c.is_finite() && c > 0.0), name, || {
                format!("must be positive, got {c}")
            })?;
        }
        fail_if(self.image_size == 0, "image_size", || {
            "must be positive".to_string()
        })
    }

    /// Loads `{prefix}._conv_stem`, `{prefix}._bn0`, `{prefix}._blocks.*`,
    /// `{prefix}._conv_head` and `{prefix}._bn1` (no classifier).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let mut g = Graph::new();
        let x = g.input();
        let outs = self.append(&mut g, x, (gpu, sd, prefix), (3, usize::MAX, &|_| 1))?;
        let input = self.blocks().last().expect("blocks").output;
        let head = Conv2dParams::new(input, self.filters(1280), 1)
            .bias(false)
            .activation(Activation::Silu);
        let at = |name: &str| key(prefix, name);
        let head = ConvBnAct::load(gpu, sd, head, &at("_conv_head"), Some(&at("_bn1")), EPS)?;
        let y = g.add("_conv_head", head, &[*outs.last().expect("blocks")]);
        g.set_outputs(&[y]);
        Ok(g)
    }
}

/// One of torchvision's EfficientNets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EfficientNetArch {
    /// `efficientnet_b0` .. `efficientnet_b7` (the number, 0 to 7).
    B(usize),
    /// `efficientnet_v2_s`.
    V2S,
    /// `efficientnet_v2_m`.
    V2M,
    /// `efficientnet_v2_l`.
    V2L,
}

/// torchvision's `efficientnet_*(...)`: which one (its `features`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EfficientNetConfig {
    /// The architecture.
    pub arch: EfficientNetArch,
}

/// torchvision's `efficientnet_*().features`: the 3x3 stride-2 stem, the MBConv (and, in
/// V2, FusedMBConv) stages, and the 1x1 convolution to 1280 channels (`4 x` the last
/// stage's in V1), every convolution with batch norm and SiLU but the projections.
pub type EfficientNetFeatures = Model<EfficientNetConfig>;

/// One stage of torchvision's table: fused (FusedMBConv), expansion, kernel, stride,
/// input and output channels, layers.
type StageRow = (bool, usize, usize, usize, usize, usize, usize);

impl EfficientNetConfig {
    /// torchvision's model by its function name: `efficientnet_b0` .. `efficientnet_b7`,
    /// `efficientnet_v2_s`, `efficientnet_v2_m` or `efficientnet_v2_l`; any other name is
    /// an error naming `arch`.
    pub fn torchvision(name: &str) -> Result<Self> {
        let arch = match name {
            "efficientnet_v2_s" => EfficientNetArch::V2S,
            "efficientnet_v2_m" => EfficientNetArch::V2M,
            "efficientnet_v2_l" => EfficientNetArch::V2L,
            _ => match name.strip_prefix("efficientnet_b").map(str::parse::<usize>) {
                Some(Ok(b)) if b <= 7 && name.len() == "efficientnet_b0".len() => {
                    EfficientNetArch::B(b)
                }
                _ => {
                    return Err(Error::InvalidParam {
                        name: "arch",
                        reason: format!(
                            "{name:?} is not one of torchvision's efficientnet_b0 .. b7, \
                             efficientnet_v2_s / m / l"
                        ),
                    })
                }
            },
        };
        Ok(EfficientNetConfig { arch })
    }

    /// Width and depth multipliers (`_efficientnet_conf`).
    fn multipliers(&self) -> (f64, f64) {
        match self.arch {
            EfficientNetArch::B(b) => {
                let (width, depth, _) = B_VARIANTS[b.min(7)];
                (width, depth)
            }
            _ => (1.0, 1.0),
        }
    }

    /// Batch norm eps: PyTorch's default for B0 to B4, 0.001 for B5 to B7 and V2.
    fn eps(&self) -> f32 {
        match self.arch {
            EfficientNetArch::B(b) if b <= 4 => 1e-5,
            _ => 1e-3,
        }
    }

    /// torchvision's table, channels and layers already multiplied, and the last
    /// convolution's output channels.
    fn stages(&self) -> (Vec<StageRow>, usize) {
        let (width, depth) = self.multipliers();
        let ch = |c: usize| make_divisible(c as f64 * width, 8);
        let layers = |n: usize| (n as f64 * depth).ceil() as usize;
        let mb = |e, k, s, i, o, n| (false, e, k, s, ch(i), ch(o), layers(n));
        let fused = |e, k, s, i, o, n| (true, e, k, s, i, o, n);
        match self.arch {
            EfficientNetArch::B(_) => {
                // B0's table, each stage's input the previous one's output.
                let mut input = 32;
                let rows: Vec<StageRow> = STAGES
                    .iter()
                    .map(|&[repeats, kernel, stride, expand, output]| {
                        let row = mb(expand, kernel, stride, input, output, repeats);
                        input = output;
                        row
                    })
                    .collect();
                let last = 4 * rows[6].5;
                (rows, last)
            }
            EfficientNetArch::V2S => (
                vec![
                    fused(1, 3, 1, 24, 24, 2),
                    fused(4, 3, 2, 24, 48, 4),
                    fused(4, 3, 2, 48, 64, 4),
                    mb(4, 3, 2, 64, 128, 6),
                    mb(6, 3, 1, 128, 160, 9),
                    mb(6, 3, 2, 160, 256, 15),
                ],
                1280,
            ),
            EfficientNetArch::V2M => (
                vec![
                    fused(1, 3, 1, 24, 24, 3),
                    fused(4, 3, 2, 24, 48, 5),
                    fused(4, 3, 2, 48, 80, 5),
                    mb(4, 3, 2, 80, 160, 7),
                    mb(6, 3, 1, 160, 176, 14),
                    mb(6, 3, 2, 176, 304, 18),
                    mb(6, 3, 1, 304, 512, 5),
                ],
                1280,
            ),
            EfficientNetArch::V2L => (
                vec![
                    fused(1, 3, 1, 32, 32, 4),
                    fused(4, 3, 2, 32, 64, 7),
                    fused(4, 3, 2, 64, 96, 7),
                    mb(4, 3, 2, 96, 192, 10),
                    mb(6, 3, 1, 192, 224, 19),
                    mb(6, 3, 2, 224, 384, 25),
                    mb(6, 3, 1, 384, 640, 7),
                ],
                1280,
            ),
        }
    }
}

impl Architecture for EfficientNetConfig {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        match self.arch {
            EfficientNetArch::B(b) => fail_if(b > 7, "arch", || {
                format!("torchvision has efficientnet_b0 to b7, got b{b}")
            }),
            _ => Ok(()),
        }
    }

    /// Loads `{prefix}.0` (the stem), `{prefix}.{stage}.{i}.block.*` and the last
    /// convolution (the prefix is `features` in a whole model's state dict).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let eps = self.eps();
        let silu = Activation::Silu;
        let (rows, last_channels) = self.stages();
        let mut g = Graph::new();
        let x = g.input();
        let stem = Conv2dParams::new(3, rows[0].4, 3)
            .stride(2)
            .padding(1)
            .bias(false)
            .activation(silu);
        let mut y = g.add("0", conv_bn_at(gpu, sd, stem, prefix, 0, eps)?, &[x]);
        for (s, &(fused, expand, k, stride, input, output, layers)) in rows.iter().enumerate() {
            for i in 0..layers {
                let (input, stride) = if i == 0 { (input, stride) } else { (output, 1) };
                let name = format!("{}.{i}", s + 1);
                let block = key(&key(prefix, &name), "block");
                let spec = (expand, k, stride, input, output);
                let block = if fused {
                    fused_mbconv(gpu, sd, &block, spec, eps)?
                } else {
                    torchvision_mbconv(gpu, sd, &block, spec, eps)?
                };
                y = g.add(name, block, &[y]);
            }
        }
        let index = rows.len() + 1;
        let last = Conv2dParams::new(rows[rows.len() - 1].5, last_channels, 1)
            .bias(false)
            .activation(silu);
        let last = conv_bn_at(gpu, sd, last, prefix, index, eps)?;
        let y = g.add(index.to_string(), last, &[y]);
        g.set_outputs(&[y]);
        Ok(g)
    }
}

/// A block's expansion, kernel, stride, input and output channels.
type BlockShape = (usize, usize, usize, usize, usize);

/// torchvision's `MBConv` under `{block}`: `block.0` expansion (when the expanded width
/// differs), depthwise, SE (`fc1`, `fc2`), projection, numbered in order.
fn torchvision_mbconv(
    gpu: &Gpu,
    sd: &StateDict,
    block: &str,
    (expand, k, stride, input, output): BlockShape,
    eps: f32,
) -> Result<Graph> {
    let silu = Activation::Silu;
    let hidden = make_divisible((input * expand) as f64, 8);
    let mut j = 0;
    let expansion = if hidden != input {
        let p = Conv2dParams::new(input, hidden, 1)
            .bias(false)
            .activation(silu);
        j += 1;
        Some(conv_bn_at(gpu, sd, p, block, 0, eps)?)
    } else {
        None
    };
    let p = Conv2dParams::depthwise(hidden, 1, k)
        .stride(stride)
        .padding((k - 1) / 2)
        .bias(false)
        .activation(silu);
    let depthwise = conv_bn_at(gpu, sd, p, block, j, eps)?;
    let se = key(block, &(j + 1).to_string());
    let params = SqueezeExcitationParams::new(hidden, (input / 4).max(1))
        .activation(silu)
        .scale_activation(Activation::Sigmoid);
    let se = SeNode::load(gpu, sd, params, &key(&se, "fc1"), &key(&se, "fc2"))?;
    let p = Conv2dParams::new(hidden, output, 1).bias(false);
    let project = conv_bn_at(gpu, sd, p, block, j + 2, eps)?;
    let skip = stride == 1 && input == output;
    let names = ["expand", "depthwise", "se", "project"];
    mbconv_graph(gpu, skip, (expansion, depthwise, Some(se), project), names)
}

/// torchvision's `FusedMBConv` under `{block}`: a k x k convolution to the expanded width
/// with SiLU and a linear 1x1 projection (`block.0`, `block.1`), or the k x k convolution
/// alone to the output width when the ratio is 1; the input added when the stride is 1
/// and the widths match.
fn fused_mbconv(
    gpu: &Gpu,
    sd: &StateDict,
    block: &str,
    (expand, k, stride, input, output): BlockShape,
    eps: f32,
) -> Result<Graph> {
    let silu = Activation::Silu;
    let hidden = make_divisible((input * expand) as f64, 8);
    let skip = stride == 1 && input == output;
    let conv = |cin, cout, k, stride| {
        Conv2dParams::new(cin, cout, k)
            .stride(stride)
            .padding((k - 1) / 2)
            .bias(false)
    };
    let mut g = Graph::new();
    let x = g.input();
    // With an expansion: the k x k convolution to `hidden`, then the 1x1 projection;
    // without: the k x k convolution to `output` alone.
    let (y, name, layer) = if hidden != input {
        let p = conv(input, hidden, k, stride).activation(silu);
        let y = g.add("0", conv_bn_at(gpu, sd, p, block, 0, eps)?, &[x]);
        let project = conv(hidden, output, 1, 1);
        (y, "1", conv_bn_at(gpu, sd, project, block, 1, eps)?)
    } else {
        let p = conv(input, output, k, stride).activation(silu);
        (x, "0", conv_bn_at(gpu, sd, p, block, 0, eps)?)
    };
    let (layer, inputs) = if skip {
        let layer = layer.with_residual(ResidualJoin::AfterActivation)?;
        (layer, vec![y, x])
    } else {
        (layer, vec![y])
    };
    let y = g.add(name, layer, &inputs);
    g.set_outputs(&[y]);
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// smp's `out_channels` of `efficientnet-b0` .. `-b7` (without the input's), and its
    /// last `out_indexes` the last block.
    #[test]
    fn blocks_give_smps_features() {
        let smp = [
            [32, 24, 40, 112, 320],
            [32, 24, 40, 112, 320],
            [32, 24, 48, 120, 352],
            [40, 32, 48, 136, 384],
            [48, 32, 56, 160, 448],
            [48, 40, 64, 176, 512],
            [56, 40, 72, 200, 576],
            [64, 48, 80, 224, 640],
        ];
        for (variant, want) in smp.iter().enumerate() {
            let cfg = EfficientNetPyTorchConfig::b(variant).unwrap();
            assert_eq!(cfg.feature_channels(3)[1..], want[..], "B{variant}");
            assert_eq!(cfg.blocks().len(), cfg.out_indexes()[3] + 1, "B{variant}");
        }
        assert!(EfficientNetPyTorchConfig::b(8).is_err());
    }

    /// The static resolution each block pads for: B1 (240) reaches its 5x5 stride-2
    /// block of stage 6 at 15 (odd: `(2, 2)`), B0 (224) at 14 (even: `(1, 2)`).
    #[test]
    fn padding_follows_the_defined_resolution() {
        let b1 = EfficientNetPyTorchConfig::b(1).unwrap().blocks();
        assert_eq!(
            (b1[16].image_size, b1[16].kernel, b1[16].stride),
            (15, 5, 2)
        );
        assert_eq!(tf_same_padding(15, 5, 2, 1), (2, 2));
        let b0 = EfficientNetPyTorchConfig::b(0).unwrap().blocks();
        assert_eq!(
            (b0[11].image_size, b0[11].kernel, b0[11].stride),
            (14, 5, 2)
        );
        assert_eq!(tf_same_padding(14, 5, 2, 1), (1, 2));
    }
}
