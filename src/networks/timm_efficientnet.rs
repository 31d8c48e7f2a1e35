//! segmentation_models_pytorch's `timm-efficientnet-b0` .. `b8`, `timm-efficientnet-l2`
//! and `timm-tf_efficientnet_lite0` .. `lite4` encoders, and through its `tu-` encoders
//! timm's EfficientNets, EfficientNet-Lites, EfficientNetV2s and EfficientNet-EdgeTPUs
//! (each also in its TensorFlow-padded `tf_` form): timm's `EfficientNet` built from its
//! architecture definitions, under timm's names (`conv_stem`, `bn1`, then
//! `blocks.{stage}.{i}.*`: `conv_dw` / `bn1` / `se.conv_reduce` / `se.conv_expand` /
//! `conv_pw` / `bn2` for the depthwise-separable blocks, `conv_pw` / `bn1` / `conv_dw` /
//! `bn2` / `se.*` / `conv_pwl` / `bn3` for the inverted residuals, `conv_exp` / `bn1` /
//! `conv_pwl` / `bn2` for the edge residuals (EfficientNetV2's fused blocks), `conv` /
//! `bn1` for the plain convolution blocks).
//!
//! Unlike EfficientNet-PyTorch's model (smp's `efficientnet-b*`), timm pads symmetrically
//! (PyTorch's `k / 2`, even for the `tf_` Lite models as smp builds them) and its batch
//! norm eps is 1e-5; its `tf_` models pad strided windows as TensorFlow's `'SAME'` and
//! take eps 1e-3. EfficientNet: SiLU, squeeze-and-excitation with a quarter of the
//! block's input channels. Lite: ReLU6, no squeeze-and-excitation, the stem and the first
//! and last stages not scaled. V2: SiLU, edge residuals in the first stages,
//! squeeze-and-excitation in the inverted residuals. EdgeTPU: ReLU, edge residuals first,
//! no squeeze-and-excitation.
//!
//! The same builder makes timm's MixNets (`mixnet_*`, `tf_mixnet_*`: timm's `MixedConv2d`,
//! its groups' layers under `{conv}.{i}`, depthwise windows of several sizes and 1x1
//! layers in two groups, loaded as one convolution each; ReLU, then SiLU with
//! squeeze-and-excitation to a half or a quarter), TinyNets, MnasNets, SPNASNet and
//! FBNet-C; a stage may hold several block definitions, its depth scaled as a whole.
//!
//! smp's `tu-` encoders run timm's own model of the same blocks (under `encoder.model`):
//! their stride-2 feature is the first stage's output, and they dilate by timm's
//! `output_stride` rule.

use crate::blocks::{
    conv_bn, make_divisible, make_divisible_with_limit, padded_inverted_residual_graph, Graph, Op,
    SeNode, ValueId,
};
use crate::error::{fail_if, Error, Result};
use crate::gpu::Gpu;
use crate::ops::attention::SqueezeExcitationParams;
use crate::ops::conv::{tf_same_padding, Conv2dParams, ResidualJoin};
use crate::ops::Activation;
use crate::weights::{key, StateDict};

use super::efficientnet::STAGES;
use super::smp_unet::smp_dilation;

/// The family of one of timm's EfficientNets: its table of stages and its rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimmEfficientNetArch {
    /// EfficientNet (`efficientnet_b0` .. `b8`, `efficientnet_l2`): SiLU,
    /// squeeze-and-excitation with a quarter of each block's input channels.
    EfficientNet,
    /// EfficientNet-Lite (`efficientnet_lite0` .. `lite4`): ReLU6, no
    /// squeeze-and-excitation, the stem and the first and last stages not scaled.
    Lite,
    /// EfficientNetV2-B0 .. B3 (`tf_efficientnetv2_b*`): a 32-channel stem, channels
    /// rounded to the nearest multiple of 8 (never up by timm's 90% rule).
    V2Base,
    /// EfficientNetV2-S (`efficientnetv2_s`, `efficientnetv2_rw_t`): a 24-channel stem.
    V2S,
    /// timm's own first EfficientNetV2-S (`efficientnetv2_rw_s`): an edge residual first
    /// stage and 272 channels in the last.
    V2SRw,
    /// timm's EfficientNetV2-M of the same stages (`efficientnetv2_rw_m`): the last two
    /// stages' depths scaled by 1.6 whatever the depth multiplier.
    V2MRw,
    /// EfficientNetV2-M (`efficientnetv2_m`).
    V2M,
    /// EfficientNetV2-L (`efficientnetv2_l`).
    V2L,
    /// EfficientNetV2-XL (`efficientnetv2_xl`).
    V2XL,
    /// EfficientNet-EdgeTPU (`efficientnet_es` / `em` / `el`): ReLU, edge residuals in the
    /// first three stages, no squeeze-and-excitation.
    EdgeTpu,
    /// MixNet-S (`mixnet_s`): depthwise windows of several sizes in one layer (timm's
    /// `MixedConv2d`), 1x1 layers in two groups, ReLU in the first stages and SiLU with
    /// squeeze-and-excitation after, a 16-channel stem.
    MixNetS,
    /// MixNet-M and its scalings (`mixnet_m` / `l` / `xl` / `xxl`): MixNet-S's design, a
    /// 24-channel stem, stage depths scaled with rounding (not up).
    MixNetM,
    /// TinyNet (`tinynet_a` .. `e`): EfficientNet-B0's stages, its 32-channel stem never
    /// scaled, stage depths scaled with rounding (not up).
    TinyNet,
    /// MnasNet-A1 (`semnasnet_050` .. `140`): ReLU, squeeze-and-excitation in three
    /// stages.
    MnasNetA1,
    /// MnasNet-B1 (`mnasnet_050` .. `140`): ReLU, no squeeze-and-excitation.
    MnasNetB1,
    /// MnasNet-Small (`mnasnet_small`): an 8-channel stem, squeeze-and-excitation in three
    /// stages.
    MnasNetSmall,
    /// Single-Path NAS (`spnasnet_100`): ReLU, two block definitions in three stages.
    SpNasNet,
    /// FBNet-C (`fbnetc_100`): ReLU, a 16-channel stem, an inverted residual without
    /// expansion first, up to four block definitions a stage.
    FbNetC,
}

/// One of smp's timm EfficientNet encoders.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimmEfficientNetConfig {
    /// The family: its stages, activation and rounding.
    pub arch: TimmEfficientNetArch,
    /// Channel multiplier, rounded per layer to a multiple of 8.
    pub channel_multiplier: f64,
    /// Block-count multiplier, rounded up per stage.
    pub depth_multiplier: f64,
    /// timm's `tf_` models: TensorFlow's `'SAME'` padding on strided windows and batch norm
    /// eps 1e-3 (else PyTorch's symmetric padding and 1e-5).
    pub tf_padding: bool,
}

/// The kind of one of timm's EfficientNet blocks (its `arch_def` code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BlockKind {
    /// `cn`: a k x k convolution with batch norm and the activation.
    Conv,
    /// `er`: a k x k expansion with the activation and a linear 1x1 projection.
    EdgeResidual,
    /// `ds`: a depthwise k x k and a linear 1x1 projection.
    DepthwiseSeparable,
    /// `ir`: a 1x1 expansion, a depthwise k x k and a linear 1x1 projection.
    InvertedResidual,
}

/// One block definition of an `arch_def` (a stage has one, or in MixNet, SPNASNet and
/// FBNet-C up to four).
#[derive(Clone, Copy, Debug)]
struct Stage {
    kind: BlockKind,
    repeats: usize,
    /// The depthwise window (in MixNet the largest of `mixing.depthwise`).
    kernel: usize,
    stride: usize,
    expand: usize,
    output: usize,
    /// Squeeze-and-excitation to `se` times the block's input channels (0: none).
    se: f64,
    /// The input added to the output where the stride is 1 and the widths match (`cn`
    /// blocks only with `_skip`, the others unless `_noskip`).
    skip: bool,
    /// `_fc`: the expansion's width taken from these channels instead of the input's
    /// (EdgeTPU's first block).
    expand_from: Option<usize>,
    /// The block's own activation (`_nsw`), else the model's.
    activation: Option<Activation>,
    /// MixNet's `MixedConv2d` groups of the block's layers.
    mixing: Mixing,
}

const fn stage(kind: BlockKind, [repeats, kernel, stride, expand, output]: [usize; 5]) -> Stage {
    Stage {
        kind,
        repeats,
        kernel,
        stride,
        expand,
        output,
        se: if matches!(kind, BlockKind::InvertedResidual) {
            0.25
        } else {
            0.0
        },
        skip: !matches!(kind, BlockKind::Conv),
        expand_from: None,
        activation: None,
        mixing: Mixing::NONE,
    }
}

const fn cn_skip(s: [usize; 5]) -> Stage {
    Stage {
        skip: true,
        ..stage(BlockKind::Conv, s)
    }
}

const fn er(s: [usize; 5]) -> Stage {
    stage(BlockKind::EdgeResidual, s)
}

/// An inverted residual with squeeze-and-excitation (EfficientNetV2's).
const fn ir_se(s: [usize; 5]) -> Stage {
    stage(BlockKind::InvertedResidual, s)
}

/// An inverted residual without squeeze-and-excitation (EdgeTPU's).
const fn ir(s: [usize; 5]) -> Stage {
    Stage {
        se: 0.0,
        ..stage(BlockKind::InvertedResidual, s)
    }
}

// timm's `_gen_efficientnetv2_*` and `_gen_efficientnet_edge` tables: [repeats, kernel,
// stride, expansion, output channels].
const V2_BASE: [Stage; 6] = [
    cn_skip([1, 3, 1, 1, 16]),
    er([2, 3, 2, 4, 32]),
    er([2, 3, 2, 4, 48]),
    ir_se([3, 3, 2, 4, 96]),
    ir_se([5, 3, 1, 6, 112]),
    ir_se([8, 3, 2, 6, 192]),
];
const V2_S: [Stage; 6] = [
    cn_skip([2, 3, 1, 1, 24]),
    er([4, 3, 2, 4, 48]),
    er([4, 3, 2, 4, 64]),
    ir_se([6, 3, 2, 4, 128]),
    ir_se([9, 3, 1, 6, 160]),
    ir_se([15, 3, 2, 6, 256]),
];
const V2_S_RW: [Stage; 6] = [
    er([2, 3, 1, 1, 24]),
    er([4, 3, 2, 4, 48]),
    er([4, 3, 2, 4, 64]),
    ir_se([6, 3, 2, 4, 128]),
    ir_se([9, 3, 1, 6, 160]),
    ir_se([15, 3, 2, 6, 272]),
];
const V2_M: [Stage; 7] = [
    cn_skip([3, 3, 1, 1, 24]),
    er([5, 3, 2, 4, 48]),
    er([5, 3, 2, 4, 80]),
    ir_se([7, 3, 2, 4, 160]),
    ir_se([14, 3, 1, 6, 176]),
    ir_se([18, 3, 2, 6, 304]),
    ir_se([5, 3, 1, 6, 512]),
];
const V2_L: [Stage; 7] = [
    cn_skip([4, 3, 1, 1, 32]),
    er([7, 3, 2, 4, 64]),
    er([7, 3, 2, 4, 96]),
    ir_se([10, 3, 2, 4, 192]),
    ir_se([19, 3, 1, 6, 224]),
    ir_se([25, 3, 2, 6, 384]),
    ir_se([7, 3, 1, 6, 640]),
];
const V2_XL: [Stage; 7] = [
    cn_skip([4, 3, 1, 1, 32]),
    er([8, 3, 2, 4, 64]),
    er([8, 3, 2, 4, 96]),
    ir_se([16, 3, 2, 4, 192]),
    ir_se([24, 3, 1, 6, 256]),
    ir_se([32, 3, 2, 6, 512]),
    ir_se([8, 3, 1, 6, 640]),
];
const EDGE_TPU: [Stage; 6] = [
    Stage {
        skip: false,
        expand_from: Some(24),
        ..er([1, 3, 1, 4, 24])
    },
    er([2, 3, 2, 8, 32]),
    er([4, 3, 2, 8, 48]),
    ir([5, 5, 2, 8, 96]),
    ir([4, 5, 1, 8, 144]),
    ir([2, 5, 2, 8, 192]),
];

/// timm's `MixedConv2d` channel groups in a block's layers (MixNet's; one group each
/// elsewhere): the channels split by `_split_channels` (equal parts, the first taking the
/// remainder), each part convolved by its own layer (`{conv}.{i}`), the outputs
/// concatenated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mixing {
    /// The depthwise window of each group (fewer than two: one group, the block's kernel).
    pub(crate) depthwise: &'static [usize],
    /// Groups of the 1x1 expansion (`_a1.1`: 2).
    pub(crate) expand: usize,
    /// Groups of the 1x1 projection (`_p1.1`: 2).
    pub(crate) project: usize,
}

impl Mixing {
    /// One group in every layer.
    pub(crate) const NONE: Mixing = Mixing {
        depthwise: &[],
        expand: 1,
        project: 1,
    };
}

/// A MixNet inverted residual, `ir_r{repeats}_k{depthwise windows}_s{stride}_e{expand}_c{output}`:
/// the model's activation (ReLU), no squeeze-and-excitation, 1x1 layers of one group.
const fn mix(depthwise: &'static [usize], [repeats, stride, expand, output]: [usize; 4]) -> Stage {
    let (mut kernel, mut i) = (0, 0);
    while i < depthwise.len() {
        if depthwise[i] > kernel {
            kernel = depthwise[i];
        }
        i += 1;
    }
    Stage {
        se: 0.0,
        mixing: Mixing {
            depthwise,
            ..Mixing::NONE
        },
        ..stage(
            BlockKind::InvertedResidual,
            [repeats, kernel, stride, expand, output],
        )
    }
}

impl Stage {
    /// `_a1.1` / `_p1.1`: the expansion and the projection in `expand` and `project`
    /// groups.
    const fn grouped(self, expand: usize, project: usize) -> Stage {
        Stage {
            mixing: Mixing {
                expand,
                project,
                ..self.mixing
            },
            ..self
        }
    }

    /// `_se{ratio}_nsw`: squeeze-and-excitation to `ratio` of the input channels, SiLU.
    const fn swish_se(self, ratio: f64) -> Stage {
        Stage {
            se: ratio,
            activation: Some(Activation::Silu),
            ..self
        }
    }

    /// `_noskip`: no input added to the output.
    const fn no_skip(self) -> Stage {
        Stage {
            skip: false,
            ..self
        }
    }
}

/// `ds_r1_k3_s1_c{output}`: a depthwise-separable block (MixNet's and the NAS models'
/// first stage).
const fn ds(output: usize) -> Stage {
    stage(BlockKind::DepthwiseSeparable, [1, 3, 1, 1, output])
}

// timm's `_gen_mixnet_s` and `_gen_mixnet_m` tables: each stage's block definitions.
const MIXNET_S: [&[Stage]; 6] = [
    &[ds(16)],
    &[
        mix(&[3], [1, 2, 6, 24]).grouped(2, 2),
        mix(&[3], [1, 1, 3, 24]).grouped(2, 2),
    ],
    &[
        mix(&[3, 5, 7], [1, 2, 6, 40]).swish_se(0.5),
        mix(&[3, 5], [3, 1, 6, 40]).grouped(2, 2).swish_se(0.5),
    ],
    &[
        mix(&[3, 5, 7], [1, 2, 6, 80]).grouped(1, 2).swish_se(0.25),
        mix(&[3, 5], [2, 1, 6, 80]).grouped(1, 2).swish_se(0.25),
    ],
    &[
        mix(&[3, 5, 7], [1, 1, 6, 120]).grouped(2, 2).swish_se(0.5),
        mix(&[3, 5, 7, 9], [2, 1, 3, 120])
            .grouped(2, 2)
            .swish_se(0.5),
    ],
    &[
        mix(&[3, 5, 7, 9, 11], [1, 2, 6, 200]).swish_se(0.5),
        mix(&[3, 5, 7, 9], [2, 1, 6, 200])
            .grouped(1, 2)
            .swish_se(0.5),
    ],
];
const MIXNET_M: [&[Stage]; 6] = [
    &[ds(24)],
    &[
        mix(&[3, 5, 7], [1, 2, 6, 32]).grouped(2, 2),
        mix(&[3], [1, 1, 3, 32]).grouped(2, 2),
    ],
    &[
        mix(&[3, 5, 7, 9], [1, 2, 6, 40]).swish_se(0.5),
        mix(&[3, 5], [3, 1, 6, 40]).grouped(2, 2).swish_se(0.5),
    ],
    &[
        mix(&[3, 5, 7], [1, 2, 6, 80]).swish_se(0.25),
        mix(&[3, 5, 7, 9], [3, 1, 6, 80])
            .grouped(2, 2)
            .swish_se(0.25),
    ],
    &[
        mix(&[3], [1, 1, 6, 120]).swish_se(0.5),
        mix(&[3, 5, 7, 9], [3, 1, 3, 120])
            .grouped(2, 2)
            .swish_se(0.5),
    ],
    &[
        mix(&[3, 5, 7, 9], [1, 2, 6, 200]).swish_se(0.5),
        mix(&[3, 5, 7, 9], [3, 1, 6, 200])
            .grouped(1, 2)
            .swish_se(0.5),
    ],
];

// timm's `_gen_mnasnet_a1`, `_gen_mnasnet_b1`, `_gen_mnasnet_small`, `_gen_spnasnet` and
// `_gen_fbnetc` tables: each stage's block definitions, [repeats, kernel, stride,
// expansion, output channels].
const MNASNET_A1: [&[Stage]; 7] = [
    &[ds(16).no_skip()],
    &[ir([2, 3, 2, 6, 24])],
    &[ir_se([3, 5, 2, 3, 40])],
    &[ir([4, 3, 2, 6, 80])],
    &[ir_se([2, 3, 1, 6, 112])],
    &[ir_se([3, 5, 2, 6, 160])],
    &[ir([1, 3, 1, 6, 320])],
];
const MNASNET_B1: [&[Stage]; 7] = [
    &[ds(16).no_skip()],
    &[ir([3, 3, 2, 3, 24])],
    &[ir([3, 5, 2, 3, 40])],
    &[ir([3, 5, 2, 6, 80])],
    &[ir([2, 3, 1, 6, 96])],
    &[ir([4, 5, 2, 6, 192])],
    &[ir([1, 3, 1, 6, 320]).no_skip()],
];
const MNASNET_SMALL: [&[Stage]; 7] = [
    &[ds(8)],
    &[ir([1, 3, 2, 3, 16])],
    &[ir([2, 3, 2, 6, 16])],
    &[ir_se([4, 5, 2, 6, 32])],
    &[ir_se([3, 3, 1, 6, 32])],
    &[ir_se([3, 5, 2, 6, 88])],
    &[ir([1, 3, 1, 6, 144])],
];
const SPNASNET: [&[Stage]; 7] = [
    &[ds(16).no_skip()],
    &[ir([3, 3, 2, 3, 24])],
    &[ir([1, 5, 2, 6, 40]), ir([3, 3, 1, 3, 40])],
    &[ir([1, 5, 2, 6, 80]), ir([3, 3, 1, 3, 80])],
    &[ir([1, 5, 1, 6, 96]), ir([3, 5, 1, 3, 96])],
    &[ir([4, 5, 2, 6, 192])],
    &[ir([1, 3, 1, 6, 320]).no_skip()],
];
const FBNET_C: [&[Stage]; 7] = [
    &[ir([1, 3, 1, 1, 16])],
    &[ir([1, 3, 2, 6, 24]), ir([2, 3, 1, 1, 24])],
    &[
        ir([1, 5, 2, 6, 32]),
        ir([1, 5, 1, 3, 32]),
        ir([1, 5, 1, 6, 32]),
        ir([1, 3, 1, 6, 32]),
    ],
    &[
        ir([1, 5, 2, 6, 64]),
        ir([1, 5, 1, 3, 64]),
        ir([2, 5, 1, 6, 64]),
    ],
    &[ir([3, 5, 1, 6, 112]), ir([1, 5, 1, 3, 112])],
    &[ir([4, 5, 2, 6, 184])],
    &[ir([1, 3, 1, 6, 352])],
];

/// EfficientNet-B0 .. B8 and L2's (channel, depth) multipliers by variant.
fn b_multipliers(variant: &str) -> Option<(f64, f64)> {
    Some(match variant {
        "b0" => (1.0, 1.0),
        "b1" => (1.0, 1.1),
        "b2" => (1.1, 1.2),
        "b3" => (1.2, 1.4),
        "b4" => (1.4, 1.8),
        "b5" => (1.6, 2.2),
        "b6" => (1.8, 2.6),
        "b7" => (2.0, 3.1),
        "b8" => (2.2, 3.6),
        "l2" => (4.3, 5.3),
        _ => return None,
    })
}

impl TimmEfficientNetConfig {
    fn new(arch: TimmEfficientNetArch, (channel_multiplier, depth_multiplier): (f64, f64)) -> Self {
        TimmEfficientNetConfig {
            arch,
            channel_multiplier,
            depth_multiplier,
            tf_padding: false,
        }
    }

    /// smp's encoder name: `timm-efficientnet-b0` .. `b8`, `timm-efficientnet-l2`,
    /// `timm-tf_efficientnet_lite0` .. `lite4`; any other name is an error naming
    /// `encoder_name`.
    pub fn from_smp(name: &str) -> Result<Self> {
        let found = if let Some(v) = name.strip_prefix("timm-efficientnet-") {
            b_multipliers(v).map(|m| Self::new(TimmEfficientNetArch::EfficientNet, m))
        } else if let Some(v) = name.strip_prefix("timm-tf_efficientnet_lite") {
            ["0", "1", "2", "3", "4"]
                .contains(&v)
                .then(|| b_multipliers(&format!("b{v}")))
                .flatten()
                .map(|m| Self::new(TimmEfficientNetArch::Lite, m))
        } else {
            None
        };
        found.ok_or_else(|| Error::InvalidParam {
            name: "encoder_name",
            reason: format!(
                "{name:?} is not one of smp's timm-efficientnet-b0 .. b8, \
                 timm-efficientnet-l2, timm-tf_efficientnet_lite0 .. lite4"
            ),
        })
    }

    /// timm's own name, as smp's `tu-` encoders take it: `efficientnet_b0` .. `b8`,
    /// `efficientnet_l2`, `efficientnet_lite0` .. `lite4`, `efficientnetv2_rw_t` /
    /// `rw_s` / `rw_m`, `efficientnetv2_s` / `m` / `l` / `xl`, `efficientnet_es` / `em` / `el`,
    /// the `tf_` forms of all these but the `rw` ones, and `tf_efficientnetv2_b0` ..
    /// `b3`, MixNet's `mixnet_s` / `m` / `l` / `xl` / `xxl` and `tf_mixnet_s` / `m` / `l`,
    /// `tinynet_a` .. `e`, the MnasNets `mnasnet_050` / `075` / `100` / `140`,
    /// `semnasnet_050` .. `140` and `mnasnet_small`, `spnasnet_100` and `fbnetc_100` (a
    /// pretrained tag after `.` ignored); `None` for any other.
    pub fn from_timm(name: &str) -> Option<Self> {
        use TimmEfficientNetArch::*;
        let name = name.split('.').next()?;
        let (tf_padding, name) = match name.strip_prefix("tf_") {
            Some(rest) => (true, rest),
            None => (false, name),
        };
        if let Some(config) = Self::nas(name) {
            return (!tf_padding).then_some(config);
        }
        let v2_base = |m| tf_padding.then_some(Self::new(V2Base, m));
        let mut config = match name {
            "efficientnetv2_rw_t" if !tf_padding => Self::new(V2S, (0.8, 0.9)),
            "efficientnetv2_rw_s" if !tf_padding => Self::new(V2SRw, (1.0, 1.0)),
            "efficientnetv2_rw_m" if !tf_padding => Self::new(V2MRw, (1.2, 1.2)),
            "efficientnetv2_s" => Self::new(V2S, (1.0, 1.0)),
            "efficientnetv2_m" => Self::new(V2M, (1.0, 1.0)),
            "efficientnetv2_l" => Self::new(V2L, (1.0, 1.0)),
            "efficientnetv2_xl" => Self::new(V2XL, (1.0, 1.0)),
            "efficientnetv2_b0" => v2_base((1.0, 1.0))?,
            "efficientnetv2_b1" => v2_base((1.0, 1.1))?,
            "efficientnetv2_b2" => v2_base((1.1, 1.2))?,
            "efficientnetv2_b3" => v2_base((1.2, 1.4))?,
            "efficientnet_es" => Self::new(EdgeTpu, (1.0, 1.0)),
            "efficientnet_em" => Self::new(EdgeTpu, (1.0, 1.1)),
            "efficientnet_el" => Self::new(EdgeTpu, (1.2, 1.4)),
            "mixnet_s" => Self::new(MixNetS, (1.0, 1.0)),
            "mixnet_m" => Self::new(MixNetM, (1.0, 1.0)),
            "mixnet_l" => Self::new(MixNetM, (1.3, 1.0)),
            "mixnet_xl" if !tf_padding => Self::new(MixNetM, (1.6, 1.2)),
            "mixnet_xxl" if !tf_padding => Self::new(MixNetM, (2.4, 1.3)),
            _ => {
                let smp = match name.strip_prefix("efficientnet_lite") {
                    Some(v) => format!("timm-tf_efficientnet_lite{v}"),
                    None => format!("timm-efficientnet-{}", name.strip_prefix("efficientnet_")?),
                };
                Self::from_smp(&smp).ok()?
            }
        };
        config.tf_padding = tf_padding;
        Some(config)
    }

    /// TinyNet, the MnasNets, SPNASNet and FBNet-C by timm's name (none has a `tf_` form).
    fn nas(name: &str) -> Option<Self> {
        use TimmEfficientNetArch::*;
        let width = |size: &str| match size {
            "050" => Some(0.5),
            "075" => Some(0.75),
            "100" => Some(1.0),
            "140" => Some(1.4),
            _ => None,
        };
        Some(match name {
            "tinynet_a" => Self::new(TinyNet, (1.0, 1.2)),
            "tinynet_b" => Self::new(TinyNet, (0.75, 1.1)),
            "tinynet_c" => Self::new(TinyNet, (0.54, 0.85)),
            "tinynet_d" => Self::new(TinyNet, (0.54, 0.695)),
            "tinynet_e" => Self::new(TinyNet, (0.51, 0.6)),
            "mnasnet_small" => Self::new(MnasNetSmall, (1.0, 1.0)),
            "spnasnet_100" => Self::new(SpNasNet, (1.0, 1.0)),
            "fbnetc_100" => Self::new(FbNetC, (1.0, 1.0)),
            _ => match name.split_once('_')? {
                ("mnasnet", size) => Self::new(MnasNetB1, (width(size)?, 1.0)),
                ("semnasnet", size) => Self::new(MnasNetA1, (width(size)?, 1.0)),
                _ => return None,
            },
        })
    }

    /// Checks the configuration: finite multipliers in (0, 16].
    pub(crate) fn validate(&self) -> Result<()> {
        check_multipliers(self.channel_multiplier, self.depth_multiplier)
    }

    /// Checks the configuration as smp's own `timm-` encoders build it: an EfficientNet or
    /// a Lite, PyTorch's padding, finite multipliers in (0, 16].
    pub(crate) fn validate_smp(&self) -> Result<()> {
        let arch = self.arch;
        let smp = matches!(
            arch,
            TimmEfficientNetArch::EfficientNet | TimmEfficientNetArch::Lite
        );
        fail_if(!smp, "arch", || {
            format!("smp's timm- encoders build EfficientNets and Lites, got {arch:?}")
        })?;
        fail_if(self.tf_padding, "tf_padding", || {
            "smp's timm- encoders pad as PyTorch does".to_string()
        })?;
        self.validate()
    }

    /// The stages of the `arch_def`, each its block definitions, before any scaling.
    fn stages(&self) -> Vec<Vec<Stage>> {
        use TimmEfficientNetArch::*;
        let one_each = |stages: &[Stage]| stages.iter().map(|&s| vec![s]).collect();
        let defs_each = |stages: &[&[Stage]]| stages.iter().map(|defs| defs.to_vec()).collect();
        match self.arch {
            EfficientNet | Lite | TinyNet => STAGES
                .iter()
                .enumerate()
                .map(|(s, &[repeats, kernel, stride, expand, output])| {
                    let kind = match s {
                        0 => BlockKind::DepthwiseSeparable,
                        _ => BlockKind::InvertedResidual,
                    };
                    let se = if self.arch == Lite { 0.0 } else { 0.25 };
                    vec![Stage {
                        se,
                        ..stage(kind, [repeats, kernel, stride, expand, output])
                    }]
                })
                .collect(),
            V2Base => one_each(&V2_BASE),
            V2S => one_each(&V2_S),
            V2SRw | V2MRw => one_each(&V2_S_RW),
            V2M => one_each(&V2_M),
            V2L => one_each(&V2_L),
            V2XL => one_each(&V2_XL),
            EdgeTpu => one_each(&EDGE_TPU),
            MixNetS => defs_each(&MIXNET_S),
            MixNetM => defs_each(&MIXNET_M),
            MnasNetA1 => defs_each(&MNASNET_A1),
            MnasNetB1 => defs_each(&MNASNET_B1),
            MnasNetSmall => defs_each(&MNASNET_SMALL),
            SpNasNet => defs_each(&SPNASNET),
            FbNetC => defs_each(&FBNET_C),
        }
    }

    /// timm's `round_channels`: `c` times the multiplier to a multiple of 8 (V2-B*: the
    /// nearest; else never below 90% of it).
    fn channels(&self, c: usize) -> usize {
        let scaled = c as f64 * self.channel_multiplier;
        match self.arch {
            TimmEfficientNetArch::V2Base => make_divisible_with_limit(scaled, 8, 0.0),
            _ => make_divisible(scaled, 8),
        }
    }

    fn stem_channels(&self) -> usize {
        use TimmEfficientNetArch::*;
        match self.arch {
            Lite => 32,
            TinyNet => 32,
            MnasNetSmall => self.channels(8),
            MixNetS | FbNetC => self.channels(16),
            V2S | V2SRw | V2MRw | V2M | MixNetM => self.channels(24),
            EfficientNet | V2Base | V2L | V2XL | EdgeTpu | MnasNetA1 | MnasNetB1 | SpNasNet => {
                self.channels(32)
            }
        }
    }

    /// Blocks of each definition of stage `s` of `n` ([`scale_stage_depth`], rounded for
    /// MixNet-M and TinyNet, up for the others). Lite keeps the first and last stages,
    /// `efficientnetv2_rw_m` scales its last two by 1.6.
    fn repeats(&self, s: usize, n: usize, defs: &[Stage]) -> Vec<usize> {
        use TimmEfficientNetArch::*;
        let multiplier = match self.arch {
            Lite if s == 0 || s == n - 1 => 1.0,
            V2MRw if s + 2 >= n => 1.6,
            _ => self.depth_multiplier,
        };
        let repeats: Vec<usize> = defs.iter().map(|d| d.repeats).collect();
        scale_stage_depth(&repeats, multiplier, matches!(self.arch, MixNetM | TinyNet))
    }

    fn activation(&self) -> Activation {
        use TimmEfficientNetArch::*;
        match self.arch {
            Lite => Activation::Relu6,
            EfficientNet | V2Base | V2S | V2SRw | V2MRw | V2M | V2L | V2XL | TinyNet => {
                Activation::Silu
            }
            EdgeTpu | MixNetS | MixNetM | MnasNetA1 | MnasNetB1 | MnasNetSmall | SpNasNet
            | FbNetC => Activation::Relu,
        }
    }

    fn layers(&self) -> TimmLayers {
        TimmLayers::new(self.tf_padding)
    }

    /// The stages after which timm takes its features (each one a stage whose next
    /// strides, and the last): strides 2, 4, 8, 16 and 32.
    fn taps(stages: &[Vec<Stage>]) -> Vec<usize> {
        (0..stages.len())
            .filter(|&s| stages.get(s + 1).is_none_or(|next| next[0].stride > 1))
            .collect()
    }

    /// The output channels of stage `defs`.
    fn stage_channels(&self, defs: &[Stage]) -> usize {
        defs.last().map_or(0, |d| self.channels(d.output))
    }

    /// Channels of smp's features: the input's, the stem's (`universal`: the first
    /// stage's, timm's own stride-2 feature), then those of the other taps.
    pub(crate) fn feature_channels(&self, in_channels: usize, universal: bool) -> Vec<usize> {
        let stages = self.stages();
        let taps = Self::taps(&stages);
        let stride2 = match universal {
            true => self.stage_channels(&stages[taps[0]]),
            false => self.stem_channels(),
        };
        let mut c = vec![in_channels, stride2];
        c.extend(taps[1..].iter().map(|&s| self.stage_channels(&stages[s])));
        c
    }

    /// The stem (`{prefix}.conv_stem`, `bn1`, taking `in_channels` channels) and the
    /// stages smp runs for `depth` features appended to `g` after `x`; returns smp's
    /// features (the input's first). Stages past `output_stride` (16: stages 3 and 4
    /// are at 16, 5 and 6 at 32) run at stride 1, dilated as smp's `make_dilated` does.
    ///
    /// `universal`: timm's own model as smp's `tu-` encoders run it instead: the
    /// stride-2 feature is the first stage's output, and the dilation follows timm's
    /// `output_stride` (a dilated stage's first block keeps the previous dilation).
    pub(crate) fn append(
        &self,
        g: &mut Graph,
        x: ValueId,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        (in_channels, depth, output_stride): (usize, usize, usize),
        universal: bool,
    ) -> Result<Vec<ValueId>> {
        let at = |name: &str| key(prefix, name);
        let stem = Conv2dParams::new(in_channels, self.stem_channels(), 3)
            .stride(2)
            .activation(self.activation());
        let mut y = self.layers().stem(g, x, (gpu, sd, prefix), stem)?;
        let mut features = vec![x];
        if !universal {
            features.push(y);
        }
        let stages = self.stages();
        let taps = Self::taps(&stages);
        let run = match depth {
            0 => 0,
            1 if !universal => 0,
            d => taps[d - 1] + 1,
        };
        let mut timm_rule = TimmOutputStride::new(output_stride);
        let mut input = self.stem_channels();
        let mut stage_stride = 2;
        for (s, defs) in stages.iter().enumerate().take(run) {
            let counts = self.repeats(s, stages.len(), defs);
            let blocks = defs
                .iter()
                .zip(counts)
                .flat_map(|(st, n)| (0..n).map(move |r| (st, r == 0)));
            for (i, (st, first)) in blocks.enumerate() {
                let output = self.channels(st.output);
                let stride = if first { st.stride } else { 1 };
                stage_stride *= stride;
                let smp_rate = smp_dilation(stage_stride, output_stride);
                let (stride, dilation, skip_stride) = match universal {
                    false => (stride, smp_rate, stride),
                    true => {
                        let (stride, dilation) = timm_rule.block(stride);
                        (stride, dilation, stride)
                    }
                };
                let block = Block {
                    stage: *st,
                    input,
                    output,
                    stride,
                    dilation,
                    // smp's `make_dilated` patches built blocks, which keep the skip of
                    // their stride; timm decides the skip after its `output_stride` rule.
                    skip: st.skip && skip_stride == 1 && input == output,
                };
                let name = format!("blocks.{s}.{i}");
                let graph = self.block((gpu, sd, &at(&name)), block)?;
                y = g.add(name, graph, &[y]);
                input = output;
            }
            if taps.contains(&s) && (universal || s > 0) {
                features.push(y);
            }
        }
        Ok(features)
    }

    /// One block under `prefix`.
    fn block(&self, ctx: (&Gpu, &StateDict, &str), b: Block) -> Result<Graph> {
        let act = b.stage.activation.unwrap_or(self.activation());
        let st = b.stage;
        let hidden = make_divisible(
            (st.expand_from.map_or(b.input, |c| self.channels(c)) * st.expand) as f64,
            8,
        );
        // smp's `make_dilated` keeps the stride of a dilated block for its skip.
        let stride_dilation = match b.dilation {
            1 => (b.stride, 1),
            d => (1, d),
        };
        let layers = self.layers();
        match st.kind {
            BlockKind::Conv | BlockKind::EdgeResidual => {
                let hidden = (st.kind == BlockKind::EdgeResidual).then_some(hidden);
                let block = TimmConvBlock {
                    channels: (b.input, hidden, b.output),
                    kernel: st.kernel,
                    stride_dilation,
                    activation: act,
                    skip: b.skip,
                };
                layers.conv_block(ctx, block)
            }
            BlockKind::DepthwiseSeparable | BlockKind::InvertedResidual => {
                let se = (st.se > 0.0).then(|| {
                    // timm's `SqueezeExcite(mid, rd_ratio=se / e)`, Python's `round`.
                    let squeezed = (hidden as f64 * (st.se / st.expand as f64)).round_ties_even();
                    SqueezeExcitationParams::new(hidden, squeezed.max(1.0) as usize)
                        .activation(act)
                        .scale_activation(Activation::Sigmoid)
                });
                let block = TimmBlock {
                    channels: (b.input, hidden, b.output),
                    separable: st.kind == BlockKind::DepthwiseSeparable,
                    kernel: st.kernel,
                    stride_dilation,
                    activation: act,
                    se,
                    skip: b.skip,
                    mixing: st.mixing,
                    project_activation: false,
                };
                layers.block(ctx, block)
            }
        }
    }
}

/// Checks a timm model's `channel_multiplier` and `depth_multiplier`: finite, in (0, 16].
pub(crate) fn check_multipliers(channel_multiplier: f64, depth_multiplier: f64) -> Result<()> {
    for (name, m) in [
        ("channel_multiplier", channel_multiplier),
        ("depth_multiplier", depth_multiplier),
    ] {
        fail_if(!(m.is_finite() && m > 0.0 && m <= 16.0), name, || {
            format!("must be in (0, 16], got {m}")
        })?;
    }
    Ok(())
}

/// timm's `_scale_stage_depth`: the blocks of each of a stage's block definitions, their
/// `repeats` scaled by `multiplier`. The stage's total is scaled, up (`round`: to the
/// nearest, ties to even as Python's `round`, at least one), then shared out from the last
/// definition back, each its rounded share of what is left and at least one.
pub(crate) fn scale_stage_depth(repeats: &[usize], multiplier: f64, round: bool) -> Vec<usize> {
    let mut total: usize = repeats.iter().sum();
    let scaled = total as f64 * multiplier;
    let mut scaled = match round {
        true => (scaled.round_ties_even() as usize).max(1),
        false => scaled.ceil() as usize,
    };
    let mut out = vec![0; repeats.len()];
    for (&r, o) in repeats.iter().zip(&mut out).rev() {
        let share = r as f64 / total as f64 * scaled as f64;
        *o = (share.round_ties_even() as usize).max(1);
        total -= r;
        scaled = scaled.saturating_sub(*o);
    }
    out
}

/// How one of timm's models builds its layers: the batch norm eps, and whether strided
/// windows pad as TensorFlow's `'SAME'` (timm's `Conv2dSame`, the `tf_` models).
#[derive(Clone, Copy, Debug)]
pub(crate) struct TimmLayers {
    pub(crate) eps: f32,
    pub(crate) tf_padding: bool,
}

impl TimmLayers {
    /// The `tf_` models' layers (`'SAME'` padding, eps 1e-3) or the others' (PyTorch's
    /// padding, timm's default eps 1e-5).
    pub(crate) fn new(tf_padding: bool) -> Self {
        TimmLayers {
            eps: if tf_padding { 1e-3 } else { 1e-5 },
            tf_padding,
        }
    }
}

/// One of timm's `DepthwiseSeparableConv` or `InvertedResidual` blocks, its widths and
/// rules resolved by the model that builds it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TimmBlock {
    /// Input, expanded (the depthwise layer's) and output channels.
    pub(crate) channels: (usize, usize, usize),
    /// A `DepthwiseSeparableConv` (no expansion; its layers named `conv_dw` / `bn1`,
    /// `conv_pw` / `bn2`).
    pub(crate) separable: bool,
    pub(crate) kernel: usize,
    /// The depthwise layer's.
    pub(crate) stride_dilation: (usize, usize),
    pub(crate) activation: Activation,
    pub(crate) se: Option<SqueezeExcitationParams>,
    /// The input added to the output.
    pub(crate) skip: bool,
    /// MixNet's channel groups ([`Mixing::NONE`] elsewhere).
    pub(crate) mixing: Mixing,
    /// The projection takes the activation too (timm's `dsa` blocks, `pw_act`).
    pub(crate) project_activation: bool,
}

impl TimmLayers {
    /// `p` (a square window) padded as timm pads it: PyTorch's symmetric `k / 2 *
    /// dilation`, or for the `tf_` models on a strided window TensorFlow's `'SAME'` for
    /// an axis the stride divides, with the op that pads other sizes further to run on
    /// its input.
    pub(crate) fn padded(&self, p: Conv2dParams) -> (Conv2dParams, Option<Op>) {
        let (k, stride, dilation) = (p.kernel_size.0, p.stride.0, p.dilation.0);
        if self.tf_padding && stride > 1 {
            let pad = tf_same_padding(stride * k, k, stride, dilation);
            let p = p.padding_asymmetric(pad, pad);
            return (p, Some(Op::PadToTfSame(p)));
        }
        (p.padding(k / 2 * dilation), None)
    }

    /// The stem `p` (`{prefix}.conv_stem`, `bn1`, padded by [`Self::padded`]) appended to
    /// `g` after `x`; returns its output.
    pub(crate) fn stem(
        &self,
        g: &mut Graph,
        x: ValueId,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        p: Conv2dParams,
    ) -> Result<ValueId> {
        let (p, pad) = self.padded(p.bias(false));
        let (conv, bn) = (key(prefix, "conv_stem"), key(prefix, "bn1"));
        let stem = conv_bn(gpu, sd, p, &conv, &bn, self.eps)?;
        let mut y = x;
        if let Some(pad) = pad {
            y = g.add("conv_stem.pad", pad, &[y]);
        }
        Ok(g.add("conv_stem", stem, &[y]))
    }

    /// Block `b` under `prefix` (`conv_pw` / `bn1`, `conv_dw` / `bn2`, `se.conv_reduce` /
    /// `se.conv_expand`, `conv_pwl` / `bn3`).
    pub(crate) fn block(
        &self,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        b: TimmBlock,
    ) -> Result<Graph> {
        let at = |name: &str| key(prefix, name);
        // `windows`: one per channel group of a MixNet layer (fewer than two: one group).
        let layer = |p: Conv2dParams, (conv, bn): (&str, &str), windows: &[usize]| {
            let (conv, bn) = (at(conv), at(bn));
            if windows.len() < 2 {
                return conv_bn(gpu, sd, p, &conv, &bn, self.eps);
            }
            let (p, mixed, zeros) = mixed_conv(sd, p, windows, (&conv, &bn))?;
            Ok(conv_bn(gpu, &mixed, p, &conv, &bn, self.eps)?.with_structural_zeros(zeros))
        };
        let (expand_windows, project_windows) =
            (vec![1; b.mixing.expand], vec![1; b.mixing.project]);
        let (input, hidden, output) = b.channels;
        let [pw, dw, pwl] = match b.separable {
            true => [("", ""), ("conv_dw", "bn1"), ("conv_pw", "bn2")],
            false => [("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3")],
        };
        let expand = match b.separable {
            true => None,
            false => {
                let p = Conv2dParams::new(input, hidden, 1)
                    .bias(false)
                    .activation(b.activation);
                Some(layer(p, pw, &expand_windows)?)
            }
        };
        let (stride, dilation) = b.stride_dilation;
        let depthwise = Conv2dParams::depthwise(hidden, 1, b.kernel)
            .stride(stride)
            .dilation(dilation)
            .bias(false)
            .activation(b.activation);
        let (depthwise, pad) = self.padded(depthwise);
        let depthwise = layer(depthwise, dw, b.mixing.depthwise)?;
        let se = match b.se {
            None => None,
            Some(se) => {
                let (reduce, expand) = (at("se.conv_reduce"), at("se.conv_expand"));
                Some(SeNode::load(gpu, sd, se, &reduce, &expand)?)
            }
        };
        let project = Conv2dParams::new(hidden, output, 1).bias(false);
        let project = match b.project_activation {
            true => project.activation(b.activation),
            false => project,
        };
        let project = layer(project, pwl, &project_windows)?;
        let names = [pw.0, dw.0, "se", pwl.0];
        padded_inverted_residual_graph(gpu, b.skip, (expand, depthwise, se, project), names, pad)
    }
}

/// timm's `MixedConv2d` at `conv` (`{conv}.{i}.weight`, one convolution per window in
/// `windows`, each on its group of `_split_channels`) with its batch norm `bn`, as the one
/// convolution `p` (its window the largest) that computes the same, the weights it loads
/// (under `conv` and `bn`), and how many of them are zeros by construction. Depthwise:
/// each group's window centred in the largest; the zeros around it add nothing, and
/// PyTorch's `k / 2 * dilation` padding and TensorFlow's `'SAME'` (odd windows) both grow
/// by half the difference, so every output reads the inputs it read. Pointwise: one
/// block-diagonal layer, not a grouped one: twice the multiply-accumulates of two groups,
/// but the pointwise kernels (and the fused inverted residual) take it, where a grouped
/// 1x1 layer takes the direct kernel; Unet on `tu-mixnet_m` at 160 took 0.9x the time
/// (median of 8 interleaved pairs on lavapipe) in 111 dispatches instead of 123.
fn mixed_conv(
    sd: &StateDict,
    p: Conv2dParams,
    windows: &[usize],
    (conv, bn): (&str, &str),
) -> Result<(Conv2dParams, StateDict, u64)> {
    let n = windows.len();
    let split = |c: usize| {
        let mut parts = vec![c / n; n];
        parts[0] += c % n;
        parts
    };
    let (ins, outs) = (split(p.in_channels), split(p.out_channels));
    fail_if(ins.contains(&0) || outs.contains(&0), "channels", || {
        format!(
            "{} -> {} channels cannot be split in {n} groups",
            p.in_channels, p.out_channels
        )
    })?;
    let depthwise = p.is_depthwise();
    let k = p.kernel_size.0;
    let mut weight = ndarray::Array4::<f32>::zeros(p.weight_shape());
    let (mut in_at, mut out_at, mut learned) = (0, 0, 0);
    for (i, (&window, (&cin, &cout))) in windows.iter().zip(ins.iter().zip(&outs)).enumerate() {
        let per_group = if depthwise { 1 } else { cin };
        let part = sd.get4(
            &key(conv, &format!("{i}.weight")),
            [cout, per_group, window, window],
        )?;
        let at = (k - window) / 2;
        // A depthwise layer's one input per channel is its own.
        let from = if depthwise { 0 } else { in_at };
        weight
            .slice_mut(ndarray::s![
                out_at..out_at + cout,
                from..from + per_group,
                at..at + window,
                at..at + window
            ])
            .assign(&part);
        learned += part.len();
        (in_at, out_at) = (in_at + cin, out_at + cout);
    }
    let zeros = (weight.len() - learned) as u64;
    let mut mixed = StateDict::new();
    mixed.insert(key(conv, "weight"), weight.into_dyn());
    for name in ["weight", "bias", "running_mean", "running_var"] {
        let name = key(bn, name);
        mixed.insert(name.clone(), sd.get(&name, &[p.out_channels])?);
    }
    Ok((p, mixed, zeros))
}

/// timm's `EfficientNetBuilder` bookkeeping for its `output_stride` (EfficientNet and
/// MobileNetV3 alike): the stride reached so far (the stem's 2 to start) and the dilation
/// in force.
pub(crate) struct TimmOutputStride {
    output_stride: usize,
    reached: usize,
    dilation: usize,
}

impl TimmOutputStride {
    pub(crate) fn new(output_stride: usize) -> Self {
        TimmOutputStride {
            output_stride,
            reached: 2,
            dilation: 1,
        }
    }

    /// The stride and dilation of the next block, whose own stride is `stride`: a stride
    /// past the output stride becomes a dilation of the blocks after this one, which
    /// keeps the dilation in force before it.
    pub(crate) fn block(&mut self, stride: usize) -> (usize, usize) {
        let current = self.dilation;
        if stride > 1 && self.reached * stride > self.output_stride {
            self.dilation *= stride;
            return (1, current);
        }
        self.reached *= stride;
        (stride, current)
    }
}

/// One of timm's `ConvBnAct` (no `hidden` width: `conv` / `bn1` with the activation) or
/// `EdgeResidual` blocks (`conv_exp` / `bn1` to `hidden` with the activation, then
/// `conv_pwl` / `bn2`, linear), its widths and rules resolved by the model that builds it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TimmConvBlock {
    /// Input, expanded (`EdgeResidual` only) and output channels.
    pub(crate) channels: (usize, Option<usize>, usize),
    pub(crate) kernel: usize,
    /// The k x k layer's.
    pub(crate) stride_dilation: (usize, usize),
    pub(crate) activation: Activation,
    /// The input added to the output.
    pub(crate) skip: bool,
}

impl TimmLayers {
    /// Block `b` under `prefix` (`conv` / `bn1`, or `conv_exp` / `bn1`, `conv_pwl` / `bn2`).
    pub(crate) fn conv_block(
        &self,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        b: TimmConvBlock,
    ) -> Result<Graph> {
        let at = |name: &str| key(prefix, name);
        let (input, hidden, output) = b.channels;
        let (stride, dilation) = b.stride_dilation;
        // A dilated 1x1 window is an undilated one (and keeps the pointwise kernels).
        let dilation = if b.kernel == 1 { 1 } else { dilation };
        let window = Conv2dParams::new(input, hidden.unwrap_or(output), b.kernel)
            .stride(stride)
            .dilation(dilation)
            .bias(false)
            .activation(b.activation);
        let (window, pad) = self.padded(window);
        let name = if hidden.is_some() { "conv_exp" } else { "conv" };
        let mut layer = conv_bn(gpu, sd, window, &at(name), &at("bn1"), self.eps)?;
        let mut g = Graph::new();
        let x = g.input();
        let mut y = x;
        if let Some(pad) = pad {
            y = g.add(format!("{name}.pad"), pad, &[y]);
        }
        let mut name = name;
        if let Some(hidden) = hidden {
            y = g.add(name, layer, &[y]);
            let project = Conv2dParams::new(hidden, output, 1).bias(false);
            name = "conv_pwl";
            layer = conv_bn(gpu, sd, project, &at(name), &at("bn2"), self.eps)?;
        }
        let mut inputs = vec![y];
        if b.skip {
            layer = layer.with_residual(ResidualJoin::AfterActivation)?;
            inputs.push(x);
        }
        let y = g.add(name, layer, &inputs);
        g.set_outputs(&[y]);
        Ok(g)
    }
}

/// One block as timm builds it.
#[derive(Clone, Copy, Debug)]
struct Block {
    stage: Stage,
    input: usize,
    output: usize,
    stride: usize,
    dilation: usize,
    skip: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::conv::conv2d;
    use ndarray::{concatenate, s, Array4, Axis};

    /// The blocks of each stage as timm builds them (timm 1.0's `len(model.blocks[s])`):
    /// MixNet-M's and TinyNet's scaled depths rounded, not up, and shared out from the
    /// last definition.
    #[test]
    fn depths_are_timms() {
        let timm: [(&str, &[usize]); 15] = [
            ("mixnet_s", &[1, 2, 4, 3, 3, 3]),
            ("mixnet_m", &[1, 2, 4, 4, 4, 4]),
            ("mixnet_l", &[1, 2, 4, 4, 4, 4]),
            ("mixnet_xl", &[1, 2, 5, 5, 5, 5]),
            ("mixnet_xxl", &[1, 3, 5, 5, 5, 5]),
            ("tinynet_a", &[1, 2, 2, 4, 4, 5, 1]),
            ("tinynet_b", &[1, 2, 2, 3, 3, 4, 1]),
            ("tinynet_c", &[1, 2, 2, 3, 3, 3, 1]),
            ("tinynet_d", &[1, 1, 1, 2, 2, 3, 1]),
            ("tinynet_e", &[1, 1, 1, 2, 2, 2, 1]),
            ("mnasnet_050", &[1, 3, 3, 3, 2, 4, 1]),
            ("semnasnet_140", &[1, 2, 3, 4, 2, 3, 1]),
            ("mnasnet_small", &[1, 1, 2, 4, 3, 3, 1]),
            ("spnasnet_100", &[1, 3, 4, 4, 4, 4, 1]),
            ("fbnetc_100", &[1, 3, 4, 4, 4, 4, 1]),
        ];
        for (name, want) in timm {
            let config = TimmEfficientNetConfig::from_timm(name).unwrap();
            let stages = config.stages();
            let got: Vec<usize> = (0..stages.len())
                .map(|s| config.repeats(s, stages.len(), &stages[s]).iter().sum())
                .collect();
            assert_eq!(got, want, "{name}");
        }
        // 1.3 x (1 + 3): 5.2 rounds to 5, the last definition's 3.9 to 4, the first's 1.
        let xxl = TimmEfficientNetConfig::from_timm("mixnet_xxl").unwrap();
        assert_eq!(xxl.repeats(2, 6, MIXNET_M[2]), [1, 4]);
        // 1.3 x (1 + 1): 2.6 rounds to 3, the last's 1.5 to 2 (ties to even), the first's 1.
        assert_eq!(xxl.repeats(1, 6, MIXNET_M[1]), [1, 2]);
        for refused in [
            "tf_mixnet_xl",
            "tf_tinynet_a",
            "mnasnet_200",
            "semnasnet",
            "tinynet_f",
        ] {
            assert!(
                TimmEfficientNetConfig::from_timm(refused).is_none(),
                "{refused}"
            );
        }
    }

    /// timm's `_split_channels`: `c` in `n` equal groups, the first taking the remainder.
    fn split(c: usize, n: usize) -> Vec<usize> {
        (0..n)
            .map(|i| c / n + if i == 0 { c % n } else { 0 })
            .collect()
    }

    /// timm's `MixedConv2d`: each group of `split` convolved by its own layer with its
    /// own padding, the outputs concatenated.
    fn timm_mixed(
        sd: &StateDict,
        x: &Array4<f32>,
        (windows, out_channels, depthwise): (&[usize], usize, bool),
        pad: impl Fn(Conv2dParams) -> Conv2dParams,
    ) -> Array4<f32> {
        let n = windows.len();
        let (ins, outs) = (split(x.shape()[1], n), split(out_channels, n));
        let mut at = 0;
        let mut parts = vec![];
        for (i, (&k, (&cin, &cout))) in windows.iter().zip(ins.iter().zip(&outs)).enumerate() {
            let p = match depthwise {
                true => Conv2dParams::depthwise(cin, 1, k),
                false => Conv2dParams::new(cin, cout, k),
            };
            let p = pad(p.stride(if depthwise { 2 } else { 1 }).bias(false));
            let w = sd
                .get4(&format!("conv.{i}.weight"), p.weight_shape())
                .unwrap();
            let xi = x.slice(s![.., at..at + cin, .., ..]);
            parts.push(conv2d(&p, xi, w.view(), None).unwrap());
            at += cin;
        }
        let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
        concatenate(Axis(1), &views).unwrap()
    }

    /// The one convolution `mixed_conv` loads computes timm's `MixedConv2d`, for
    /// depthwise groups of unequal sizes at stride 2 with PyTorch's and TensorFlow's
    /// padding on odd and even inputs, and for pointwise groups equal and unequal; the
    /// zeros it adds are counted.
    #[test]
    fn mixed_conv_is_timm_mixed_conv2d() {
        let sd = StateDict::synthetic();
        let cases: [(&[usize], usize, usize, bool); 4] = [
            (&[3, 5, 7], 10, 10, true),
            (&[3, 5, 7, 9, 11], 12, 12, true),
            (&[1, 1], 9, 7, false),
            (&[1, 1], 8, 6, false),
        ];
        for (windows, cin, cout, depthwise) in cases {
            for (size, tf) in [(9, false), (9, true), (8, true)] {
                let x = sd.get4("x", [2, cin, size, size]).unwrap();
                let pad = |p: Conv2dParams| {
                    let k = p.kernel_size.0;
                    match tf && p.stride.0 > 1 {
                        true => {
                            let pad = tf_same_padding(size, k, p.stride.0, 1);
                            p.padding_asymmetric(pad, pad)
                        }
                        false => p.padding(k / 2),
                    }
                };
                let want = timm_mixed(&sd, &x, (windows, cout, depthwise), pad);
                let k = windows.iter().max().copied().unwrap();
                let p = match depthwise {
                    true => Conv2dParams::depthwise(cin, 1, k).stride(2),
                    false => Conv2dParams::new(cin, cout, 1),
                };
                let (p, mixed, zeros) =
                    mixed_conv(&sd, p.bias(false), windows, ("conv", "bn")).unwrap();
                let w = mixed.get4("conv.weight", p.weight_shape()).unwrap();
                let got = conv2d(&pad(p), x.view(), w.view(), None).unwrap();
                let case = format!("{windows:?} {cin} -> {cout}, {size} x {size}, tf {tf}");
                assert_eq!(got.shape(), want.shape(), "{case}");
                let err = (&got - &want).iter().fold(0f32, |m, d| m.max(d.abs()));
                assert!(err < 1e-5, "{case}: off by {err}");
                let n = windows.len();
                let (ins, outs) = (split(cin, n), split(cout, n));
                let learned: usize = (0..n)
                    .map(|i| outs[i] * if depthwise { 1 } else { ins[i] } * windows[i].pow(2))
                    .sum();
                assert_eq!(zeros as usize, w.len() - learned, "{case}: zeros");
            }
        }
        let too_many = Conv2dParams::depthwise(2, 1, 5).bias(false);
        let err = mixed_conv(&sd, too_many, &[3, 5, 7], ("conv", "bn")).unwrap_err();
        assert!(err.to_string().contains("channels"), "{err}");
    }
}
