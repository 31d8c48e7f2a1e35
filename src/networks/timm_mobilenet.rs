//! segmentation_models_pytorch's timm MobileNet encoders: timm's own `MobileNetV3`
//! (built by its `_gen_mobilenet_v3`) and MobileNetV2 (its `EfficientNet` built by
//! `_gen_mobilenet_v2`) through smp's `TimmUniversalEncoder`, under timm's names
//! (`encoder.model.conv_stem`, `bn1`, `blocks.{stage}.{i}.conv_dw` / `bn1` / `se.*` /
//! `conv_pw` / `bn2` for the depthwise-separable blocks, `conv_pw` / `bn1` / `conv_dw` /
//! `bn2` / `se.*` / `conv_pwl` / `bn3` for the inverted residuals, `conv` / `bn1` for the
//! MobileNetV3s' last 1x1 convolution): `tu-mobilenetv3_large_075` / `_100`,
//! `tu-mobilenetv3_small_050` / `_075` / `_100`, `tu-mobilenetv3_large_150d`, timm's first
//! `tu-mobilenetv3_rw`, PP-LCNet's `tu-lcnet_035` .. `_150`, MobileNetV1's
//! `tu-mobilenetv1_100` / `_100h` / `_125`, FBNetV3's `tu-fbnetv3_b` / `_d` / `_g`, the
//! TensorFlow-padded
//! `tu-tf_mobilenetv3_large_075` / `_100` / `_large_minimal_100`,
//! `tu-tf_mobilenetv3_small_075` / `_100` / `_small_minimal_100`, smp's deprecated
//! `timm-mobilenetv3_*` names, which smp 0.6 runs as the `tf_` models, and
//! `tu-mobilenetv2_035` / `_050` / `_075` / `_100` / `_140` / `_110d` / `_120d` (ReLU6, a 32-channel stem
//! scaled with the rest, no squeeze-and-excitation), and the convolutional MobileNetV4s
//! `tu-mobilenetv4_conv_small` / `_small_035` / `_small_050` / `_medium` / `_large`
//! (timm's `_gen_mobilenet_v4`: ReLU, `conv` / `bn1` convolution blocks, `conv_exp` /
//! `bn1`, `conv_pwl` / `bn2` fused inverted bottlenecks, and universal inverted
//! bottlenecks `dw_start`, `pw_exp`, `dw_mid`, `pw_proj`, each a `.conv` and a `.bn`, the
//! first window without activation, either depthwise window absent in some blocks; the
//! hybrid models' attention is not run, and their names are errors).
//!
//! timm's MobileNetV2 is torchvision's `mobilenet_v2` under timm's names and rounding
//! (its stem and every width scaled by the multiplier), without the last 1x1
//! convolution to 1280 channels, which is not among smp's features.
//!
//! timm's MobileNetV3 differs from torchvision's `mobilenet_v3_large` / `_small` in its names,
//! in the last stage (a 1x1 convolution to 960 / 576 channels that is part of the
//! features), in the expansion widths (`make_divisible(in * ratio)` of ratios such as 4.5
//! and 3.67) and in its squeeze-and-excitation widths (a quarter of the expanded
//! channels, rounded to 8). Hardswish, and ReLU in the blocks timm marks `nre`;
//! squeeze-and-excitation with ReLU and a hard sigmoid gate; batch norm eps 1e-5. The
//! `minimal` models have ReLU everywhere, 3x3 windows and no squeeze-and-excitation. The
//! `tf_` models pad as TensorFlow's `'SAME'` (timm's `Conv2dSame` on strided windows,
//! whose padding follows the input's size: the convolutions keep the padding of an even
//! axis, and an odd one takes a leading row or column first, [`Op::PadToTfSame`]) and
//! their batch norm eps is 1e-3. smp's features are the outputs before each stride and
//! the last stage's (the stem's on the small models, whose first block is strided),
//! dilated by timm's `output_stride` rule (a dilated stage's first block keeps the
//! previous dilation).
//!
//! [`Op::PadToTfSame`]: crate::blocks::Op

use crate::blocks::{conv_bn, make_divisible, make_divisible_with_limit, Graph, ValueId};
use crate::error::{fail_if, Result};
use crate::gpu::Gpu;
use crate::ops::attention::SqueezeExcitationParams;
use crate::ops::conv::Conv2dParams;
use crate::ops::conv::ResidualJoin;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

use super::timm_efficientnet::{
    check_multipliers, scale_stage_depth, Mixing, TimmBlock, TimmConvBlock, TimmLayers,
    TimmOutputStride,
};

/// Which of timm's MobileNets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimmMobileNetArch {
    /// `mobilenetv2_*`.
    V2,
    /// `mobilenetv1_100` / `_100h` / `_125` (timm's `_gen_mobilenet_v1`): ReLU6, a
    /// 32-channel stem scaled with the rest, depthwise-separable blocks whose projection
    /// takes the activation too (`dsa`).
    V1,
    /// `mobilenetv3_large_*`.
    V3Large,
    /// `mobilenetv3_small_*`.
    V3Small,
    /// `mobilenetv3_rw`: timm's own first MobileNetV3-Large, its first block without
    /// skip, squeeze-and-excitation to a quarter (rounded, not to 8) with the block's
    /// activation, batch norm eps 1e-3 (with PyTorch's padding).
    V3LargeRw,
    /// `lcnet_035` .. `lcnet_150` (PP-LCNet): depthwise-separable blocks whose projection
    /// takes the activation too (`dsa`), hardswish, squeeze-and-excitation in the last
    /// stage (a quarter, rounded, with ReLU).
    LcNet,
    /// `fbnetv3_b` (timm's `_gen_fbnetv3`, as `fbnetv3_a`): hardswish, up to three block
    /// definitions a stage, widths rounded to 8 never below 95%, squeeze-and-excitation
    /// to a quarter of the block's input channels (rounded the same way) with hardswish.
    FbNetV3B,
    /// `fbnetv3_d`: FBNetV3-B's design, a 24-channel stem, other stages.
    FbNetV3D,
    /// `fbnetv3_g`: FBNetV3-B's design, a 32-channel stem, wider and deeper stages.
    FbNetV3G,
    /// `mobilenetv4_conv_small*`.
    V4ConvSmall,
    /// `mobilenetv4_conv_medium`.
    V4ConvMedium,
    /// `mobilenetv4_conv_large`.
    V4ConvLarge,
}

/// One of timm's MobileNet models (`mobilenetv1_*`, `mobilenetv2_*`, `mobilenetv3_large_*` /
/// `mobilenetv3_small_*` and their `tf_` forms, `mobilenetv3_rw`, `lcnet_*`, `fbnetv3_*`,
/// `mobilenetv4_conv_*`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimmMobileNetConfig {
    /// The architecture.
    pub arch: TimmMobileNetArch,
    /// The MobileNetV3s' `minimal` form: ReLU everywhere, 3x3 windows, no
    /// squeeze-and-excitation.
    pub minimal: bool,
    /// Channel multiplier (0.35 .. 1.4 in timm's names), each width rounded to a
    /// multiple of 8; the MobileNetV3s' stem keeps its 16 channels below 0.75, the
    /// MobileNetV4s' its width below 1 (timm's `fix_stem`).
    pub channel_multiplier: f64,
    /// The `tf_` models: TensorFlow's `'SAME'` padding on strided windows and batch norm
    /// eps 1e-3 (else PyTorch's symmetric padding and 1e-5).
    pub tf_padding: bool,
    /// Block-count multiplier of a MobileNetV2 or V3 (1 for the others: any other value is
    /// a typed error), each stage's depth rounded up and shared out among its block
    /// definitions as timm does. A MobileNetV2's other than 1 (timm's `mobilenetv2_110d` /
    /// `_120d`, built with `fix_stem_head`) keeps the first and last stages' depth and the
    /// stem's 32 channels.
    pub depth_multiplier: f64,
}

/// How a block is built (timm's `ds`, `ir`, `cn`, `er` and `uir` block strings).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// `DepthwiseSeparableConv`: depthwise, SE, 1x1 projection.
    Separable,
    /// `DepthwiseSeparableConv` with `pw_act` (timm's `dsa`, LCNet's): the projection
    /// takes the activation, and there is no skip.
    SeparableAct,
    /// `InvertedResidual`: 1x1 expansion, depthwise, SE, 1x1 projection.
    Inverted,
    /// `ConvBnAct`: a convolution with its activation.
    Conv,
    /// `EdgeResidual` (MobileNetV4's FusedIB): a k x k expansion, a 1x1 projection.
    Edge,
    /// `UniversalInvertedResidual` (MobileNetV4's UIB): an optional depthwise `start`
    /// window without activation, a 1x1 expansion, an optional depthwise `kernel` window,
    /// a 1x1 projection.
    Universal,
}

/// One block string of timm's `arch_def`, repeated `repeats` times (the first of them
/// strided).
#[derive(Clone, Copy, Debug)]
struct BlockDef {
    kind: Kind,
    repeats: usize,
    kernel: usize,
    stride: usize,
    expand: f64,
    out: usize,
    se: bool,
    /// ReLU instead of the model's hardswish (timm's `nre`).
    relu: bool,
    /// `_noskip`: no input added to the output.
    no_skip: bool,
    /// The `UniversalInvertedResidual`'s first depthwise window (`a`; 0: none; its
    /// `kernel` is the middle one, 0: none).
    start: usize,
}

const fn def(
    kind: Kind,
    (repeats, kernel, stride): (usize, usize, usize),
    (expand, out): (f64, usize),
    (se, relu): (bool, bool),
) -> BlockDef {
    BlockDef {
        kind,
        repeats,
        kernel,
        stride,
        expand,
        out,
        se,
        relu,
        no_skip: false,
        start: 0,
    }
}

/// A `UniversalInvertedResidual` string: `uir_r{repeats}_a{start}_k{kernel}_s{stride}` with
/// its expansion and output channels.
const fn uir(
    (repeats, start, kernel, stride): (usize, usize, usize, usize),
    (expand, out): (f64, usize),
) -> BlockDef {
    BlockDef {
        start,
        ..def(
            Kind::Universal,
            (repeats, kernel, stride),
            (expand, out),
            (false, false),
        )
    }
}

/// A `ConvBnAct` string: `cn_r1_k{kernel}_s{stride}_c{out}`.
const fn cn((kernel, stride): (usize, usize), out: usize) -> BlockDef {
    def(Kind::Conv, (1, kernel, stride), (1.0, out), (false, false))
}

use Kind::{Inverted as IR, Separable as DS};

/// `mobilenetv3_large_*`'s `arch_def`, stage by stage.
const LARGE: &[&[BlockDef]] = &[
    &[def(DS, (1, 3, 1), (1.0, 16), (false, true))],
    &[
        def(IR, (1, 3, 2), (4.0, 24), (false, true)),
        def(IR, (1, 3, 1), (3.0, 24), (false, true)),
    ],
    &[def(IR, (3, 5, 2), (3.0, 40), (true, true))],
    &[
        def(IR, (1, 3, 2), (6.0, 80), (false, false)),
        def(IR, (1, 3, 1), (2.5, 80), (false, false)),
        def(IR, (2, 3, 1), (2.3, 80), (false, false)),
    ],
    &[def(IR, (2, 3, 1), (6.0, 112), (true, false))],
    &[def(IR, (3, 5, 2), (6.0, 160), (true, false))],
    &[cn((1, 1), 960)],
];

/// `mobilenetv3_rw`'s `arch_def`: the large one's, its first block without skip.
const LARGE_RW: &[&[BlockDef]] = &[
    &[BlockDef {
        no_skip: true,
        ..def(DS, (1, 3, 1), (1.0, 16), (false, true))
    }],
    LARGE[1],
    LARGE[2],
    LARGE[3],
    LARGE[4],
    LARGE[5],
    LARGE[6],
];

/// A `dsa` string (LCNet's): `dsa_r{repeats}_k{kernel}_s{stride}_c{out}`, with `se0.25`.
const fn dsa((repeats, kernel, stride): (usize, usize, usize), out: usize, se: bool) -> BlockDef {
    def(
        Kind::SeparableAct,
        (repeats, kernel, stride),
        (1.0, out),
        (se, false),
    )
}

/// `lcnet_*`'s `arch_def`, stage by stage (hardswish everywhere).
const LCNET: &[&[BlockDef]] = &[
    &[dsa((1, 3, 1), 32, false)],
    &[dsa((2, 3, 2), 64, false)],
    &[dsa((2, 3, 2), 128, false)],
    &[dsa((1, 3, 2), 256, false), dsa((1, 5, 1), 256, false)],
    &[dsa((4, 5, 1), 256, false)],
    &[dsa((2, 5, 2), 512, true)],
];

/// An `ir` string with `_se0.25` where `se`: `ir_r{repeats}_k{kernel}_s{stride}_e{expand}_c{out}`.
const fn ir(
    (repeats, kernel, stride): (usize, usize, usize),
    (expand, out): (f64, usize),
    se: bool,
) -> BlockDef {
    def(IR, (repeats, kernel, stride), (expand, out), (se, false))
}

// `_gen_fbnetv3`'s `arch_def`s for `fbnetv3_b`, `_d` and `_g`, stage by stage (hardswish
// everywhere).
const FBNET_V3_B: &[&[BlockDef]] = &[
    &[def(DS, (2, 3, 1), (1.0, 16), (false, false))],
    &[
        ir((1, 5, 2), (4.0, 24), false),
        ir((3, 5, 1), (2.0, 24), false),
    ],
    &[
        ir((1, 5, 2), (5.0, 40), true),
        ir((4, 5, 1), (3.0, 40), true),
    ],
    &[
        ir((1, 5, 2), (5.0, 72), false),
        ir((4, 3, 1), (3.0, 72), false),
    ],
    &[
        ir((1, 3, 1), (5.0, 120), true),
        ir((5, 5, 1), (3.0, 120), true),
    ],
    &[
        ir((1, 3, 2), (6.0, 184), true),
        ir((5, 5, 1), (4.0, 184), true),
        ir((1, 5, 1), (6.0, 224), true),
    ],
    &[cn((1, 1), 1344)],
];
const FBNET_V3_D: &[&[BlockDef]] = &[
    &[def(DS, (2, 3, 1), (1.0, 16), (false, false))],
    &[
        ir((1, 3, 2), (5.0, 24), false),
        ir((5, 3, 1), (2.0, 24), false),
    ],
    &[
        ir((1, 5, 2), (4.0, 40), true),
        ir((4, 3, 1), (3.0, 40), true),
    ],
    &[
        ir((1, 3, 2), (5.0, 72), false),
        ir((4, 3, 1), (3.0, 72), false),
    ],
    &[
        ir((1, 3, 1), (5.0, 128), true),
        ir((6, 5, 1), (3.0, 128), true),
    ],
    &[
        ir((1, 3, 2), (6.0, 208), true),
        ir((5, 5, 1), (5.0, 208), true),
        ir((1, 5, 1), (6.0, 240), true),
    ],
    &[cn((1, 1), 1440)],
];
const FBNET_V3_G: &[&[BlockDef]] = &[
    &[def(DS, (3, 3, 1), (1.0, 24), (false, false))],
    &[
        ir((1, 5, 2), (4.0, 40), false),
        ir((4, 5, 1), (2.0, 40), false),
    ],
    &[
        ir((1, 5, 2), (4.0, 56), true),
        ir((4, 5, 1), (3.0, 56), true),
    ],
    &[
        ir((1, 5, 2), (5.0, 104), false),
        ir((4, 3, 1), (3.0, 104), false),
    ],
    &[
        ir((1, 3, 1), (5.0, 160), true),
        ir((8, 5, 1), (3.0, 160), true),
    ],
    &[
        ir((1, 3, 2), (6.0, 264), true),
        ir((6, 5, 1), (5.0, 264), true),
        ir((2, 5, 1), (6.0, 288), true),
    ],
    &[cn((1, 1), 1728)],
];

/// `mobilenetv3_small_*`'s `arch_def`, stage by stage.
const SMALL: &[&[BlockDef]] = &[
    &[def(DS, (1, 3, 2), (1.0, 16), (true, true))],
    &[
        def(IR, (1, 3, 2), (4.5, 24), (false, true)),
        def(IR, (1, 3, 1), (3.67, 24), (false, true)),
    ],
    &[
        def(IR, (1, 5, 2), (4.0, 40), (true, false)),
        def(IR, (2, 5, 1), (6.0, 40), (true, false)),
    ],
    &[def(IR, (2, 5, 1), (3.0, 48), (true, false))],
    &[def(IR, (3, 5, 2), (6.0, 96), (true, false))],
    &[cn((1, 1), 576)],
];

/// `mobilenetv1_*`'s `arch_def`, stage by stage (ReLU6 everywhere).
const V1: &[&[BlockDef]] = &[
    &[dsa((1, 3, 1), 64, false)],
    &[dsa((2, 3, 2), 128, false)],
    &[dsa((2, 3, 2), 256, false)],
    &[dsa((6, 3, 2), 512, false)],
    &[dsa((2, 3, 2), 1024, false)],
];

/// `mobilenetv2_*`'s `arch_def`, stage by stage (ReLU6 everywhere).
const V2: &[&[BlockDef]] = &[
    &[def(DS, (1, 3, 1), (1.0, 16), (false, false))],
    &[def(IR, (2, 3, 2), (6.0, 24), (false, false))],
    &[def(IR, (3, 3, 2), (6.0, 32), (false, false))],
    &[def(IR, (4, 3, 2), (6.0, 64), (false, false))],
    &[def(IR, (3, 3, 1), (6.0, 96), (false, false))],
    &[def(IR, (3, 3, 2), (6.0, 160), (false, false))],
    &[def(IR, (1, 3, 1), (6.0, 320), (false, false))],
];

/// `tf_mobilenetv3_large_minimal_100`'s `arch_def`, stage by stage.
const LARGE_MINIMAL: &[&[BlockDef]] = &[
    &[def(DS, (1, 3, 1), (1.0, 16), (false, false))],
    &[
        def(IR, (1, 3, 2), (4.0, 24), (false, false)),
        def(IR, (1, 3, 1), (3.0, 24), (false, false)),
    ],
    &[def(IR, (3, 3, 2), (3.0, 40), (false, false))],
    &[
        def(IR, (1, 3, 2), (6.0, 80), (false, false)),
        def(IR, (1, 3, 1), (2.5, 80), (false, false)),
        def(IR, (2, 3, 1), (2.3, 80), (false, false)),
    ],
    &[def(IR, (2, 3, 1), (6.0, 112), (false, false))],
    &[def(IR, (3, 3, 2), (6.0, 160), (false, false))],
    &[cn((1, 1), 960)],
];

/// `tf_mobilenetv3_small_minimal_100`'s `arch_def`, stage by stage.
const SMALL_MINIMAL: &[&[BlockDef]] = &[
    &[def(DS, (1, 3, 2), (1.0, 16), (false, false))],
    &[
        def(IR, (1, 3, 2), (4.5, 24), (false, false)),
        def(IR, (1, 3, 1), (3.67, 24), (false, false)),
    ],
    &[
        def(IR, (1, 3, 2), (4.0, 40), (false, false)),
        def(IR, (2, 3, 1), (6.0, 40), (false, false)),
    ],
    &[def(IR, (2, 3, 1), (3.0, 48), (false, false))],
    &[def(IR, (3, 3, 2), (6.0, 96), (false, false))],
    &[cn((1, 1), 576)],
];

/// `mobilenetv4_conv_small`'s `arch_def`, stage by stage.
const V4_SMALL: &[&[BlockDef]] = &[
    &[cn((3, 2), 32), cn((1, 1), 32)],
    &[cn((3, 2), 96), cn((1, 1), 64)],
    &[
        uir((1, 5, 5, 2), (3.0, 96)),
        uir((4, 0, 3, 1), (2.0, 96)),
        uir((1, 3, 0, 1), (4.0, 96)),
    ],
    &[
        uir((1, 3, 3, 2), (6.0, 128)),
        uir((1, 5, 5, 1), (4.0, 128)),
        uir((1, 0, 5, 1), (4.0, 128)),
        uir((1, 0, 5, 1), (3.0, 128)),
        uir((2, 0, 3, 1), (4.0, 128)),
    ],
    &[cn((1, 1), 960)],
];

/// `mobilenetv4_conv_medium`'s `arch_def`, stage by stage.
const V4_MEDIUM: &[&[BlockDef]] = &[
    &[def(Kind::Edge, (1, 3, 2), (4.0, 48), (false, false))],
    &[uir((1, 3, 5, 2), (4.0, 80)), uir((1, 3, 3, 1), (2.0, 80))],
    &[
        uir((1, 3, 5, 2), (6.0, 160)),
        uir((2, 3, 3, 1), (4.0, 160)),
        uir((1, 3, 5, 1), (4.0, 160)),
        uir((1, 3, 3, 1), (4.0, 160)),
        uir((1, 3, 0, 1), (4.0, 160)),
        uir((1, 0, 0, 1), (2.0, 160)),
        uir((1, 3, 0, 1), (4.0, 160)),
    ],
    &[
        uir((1, 5, 5, 2), (6.0, 256)),
        uir((1, 5, 5, 1), (4.0, 256)),
        uir((2, 3, 5, 1), (4.0, 256)),
        uir((1, 0, 0, 1), (4.0, 256)),
        uir((1, 3, 0, 1), (4.0, 256)),
        uir((1, 3, 5, 1), (2.0, 256)),
        uir((1, 5, 5, 1), (4.0, 256)),
        uir((2, 0, 0, 1), (4.0, 256)),
        uir((1, 5, 0, 1), (2.0, 256)),
    ],
    &[cn((1, 1), 960)],
];

/// `mobilenetv4_conv_large`'s `arch_def`, stage by stage.
const V4_LARGE: &[&[BlockDef]] = &[
    &[def(Kind::Edge, (1, 3, 2), (4.0, 48), (false, false))],
    &[uir((1, 3, 5, 2), (4.0, 96)), uir((1, 3, 3, 1), (4.0, 96))],
    &[
        uir((1, 3, 5, 2), (4.0, 192)),
        uir((3, 3, 3, 1), (4.0, 192)),
        uir((1, 3, 5, 1), (4.0, 192)),
        uir((5, 5, 3, 1), (4.0, 192)),
        uir((1, 3, 0, 1), (4.0, 192)),
    ],
    &[
        uir((4, 5, 5, 2), (4.0, 512)),
        uir((1, 5, 0, 1), (4.0, 512)),
        uir((1, 5, 3, 1), (4.0, 512)),
        uir((2, 5, 0, 1), (4.0, 512)),
        uir((1, 5, 3, 1), (4.0, 512)),
        uir((1, 5, 5, 1), (4.0, 512)),
        uir((3, 5, 0, 1), (4.0, 512)),
    ],
    &[cn((1, 1), 960)],
];

/// Where smp takes a feature: after the stem or after a stage.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Tap {
    Stem,
    Stage(usize),
}

impl TimmMobileNetConfig {
    /// timm's name, as smp's `tu-` encoders take it: `mobilenetv1_100`, `_100h` (its head
    /// is not among the features), `_125`, `mobilenetv2_035`, `_050`, `_075`,
    /// `_100`, `_140`, `_110d`, `_120d`, `mobilenetv3_large_075`, `mobilenetv3_large_100`,
    /// `mobilenetv3_large_150d`, `mobilenetv3_rw`, `lcnet_035` / `050` / `075` / `100` /
    /// `150`, `fbnetv3_b` / `d` / `g`,
    /// `mobilenetv3_small_050`, `mobilenetv3_small_075`, `mobilenetv3_small_100`,
    /// `tf_mobilenetv3_large_075`, `tf_mobilenetv3_large_100`,
    /// `tf_mobilenetv3_large_minimal_100`, `tf_mobilenetv3_small_075`,
    /// `tf_mobilenetv3_small_100`, `tf_mobilenetv3_small_minimal_100`,
    /// `mobilenetv4_conv_small`, `_small_035`, `_small_050`, `mobilenetv4_conv_medium`,
    /// `mobilenetv4_conv_large` (a pretrained tag after `.` ignored); `None` for any
    /// other.
    pub fn from_timm(name: &str) -> Option<Self> {
        use TimmMobileNetArch::{V3Large as Large, V3Small as Small, V2 as Two};
        let name = name.split('.').next()?;
        let (tf_padding, name) = match name.strip_prefix("tf_") {
            Some(rest) => (true, rest),
            None => (false, name),
        };
        let (arch, minimal, channel_multiplier) = match (tf_padding, name) {
            (false, "mobilenetv1_100" | "mobilenetv1_100h") => (TimmMobileNetArch::V1, false, 1.0),
            (false, "mobilenetv1_125") => (TimmMobileNetArch::V1, false, 1.25),
            (false, "mobilenetv2_035") => (Two, false, 0.35),
            (false, "mobilenetv2_050") => (Two, false, 0.5),
            (false, "mobilenetv2_075") => (Two, false, 0.75),
            (false, "mobilenetv2_100") => (Two, false, 1.0),
            (false, "mobilenetv2_140") => (Two, false, 1.4),
            (false, "mobilenetv2_110d") => (Two, false, 1.1),
            (false, "mobilenetv2_120d") => (Two, false, 1.2),
            (_, "mobilenetv3_large_075") => (Large, false, 0.75),
            (_, "mobilenetv3_large_100") => (Large, false, 1.0),
            (false, "mobilenetv3_large_150d") => (Large, false, 1.5),
            (false, "mobilenetv3_rw") => (TimmMobileNetArch::V3LargeRw, false, 1.0),
            (false, "lcnet_035") => (TimmMobileNetArch::LcNet, false, 0.35),
            (false, "lcnet_050") => (TimmMobileNetArch::LcNet, false, 0.5),
            (false, "lcnet_075") => (TimmMobileNetArch::LcNet, false, 0.75),
            (false, "lcnet_100") => (TimmMobileNetArch::LcNet, false, 1.0),
            (false, "lcnet_150") => (TimmMobileNetArch::LcNet, false, 1.5),
            (false, "fbnetv3_b") => (TimmMobileNetArch::FbNetV3B, false, 1.0),
            (false, "fbnetv3_d") => (TimmMobileNetArch::FbNetV3D, false, 1.0),
            (false, "fbnetv3_g") => (TimmMobileNetArch::FbNetV3G, false, 1.0),
            (false, "mobilenetv3_small_050") => (Small, false, 0.5),
            (_, "mobilenetv3_small_075") => (Small, false, 0.75),
            (_, "mobilenetv3_small_100") => (Small, false, 1.0),
            (true, "mobilenetv3_large_minimal_100") => (Large, true, 1.0),
            (true, "mobilenetv3_small_minimal_100") => (Small, true, 1.0),
            (false, "mobilenetv4_conv_small_035") => (TimmMobileNetArch::V4ConvSmall, false, 0.35),
            (false, "mobilenetv4_conv_small_050") => (TimmMobileNetArch::V4ConvSmall, false, 0.5),
            (false, "mobilenetv4_conv_small") => (TimmMobileNetArch::V4ConvSmall, false, 1.0),
            (false, "mobilenetv4_conv_medium") => (TimmMobileNetArch::V4ConvMedium, false, 1.0),
            (false, "mobilenetv4_conv_large") => (TimmMobileNetArch::V4ConvLarge, false, 1.0),
            _ => return None,
        };
        let depth_multiplier = match name {
            "mobilenetv2_110d" => 1.2,
            "mobilenetv2_120d" => 1.4,
            "mobilenetv3_large_150d" => 1.2,
            _ => 1.0,
        };
        Some(TimmMobileNetConfig {
            arch,
            minimal,
            channel_multiplier,
            tf_padding,
            depth_multiplier,
        })
    }

    /// Checks the configuration: finite multipliers in (0, 16], a depth multiplier other
    /// than 1 only on a MobileNetV2 or V3, and `minimal` only on a MobileNetV3.
    pub(crate) fn validate(&self) -> Result<()> {
        let v3 = matches!(
            self.arch,
            TimmMobileNetArch::V3Large | TimmMobileNetArch::V3Small
        );
        fail_if(self.minimal && !v3, "minimal", || {
            format!("timm's {:?} has no minimal form", self.arch)
        })?;
        check_multipliers(self.channel_multiplier, self.depth_multiplier)?;
        let scaled = self.depth_multiplier != 1.0;
        let v2 = self.arch == TimmMobileNetArch::V2;
        fail_if(scaled && !(v2 || v3), "depth_multiplier", || {
            format!(
                "timm scales the depth of its MobileNetV2s and V3s only, got {} on {:?}",
                self.depth_multiplier, self.arch
            )
        })
    }

    /// timm's `fix_stem_head`, which its depth-scaled MobileNetV2s take: the stem's width
    /// and the first and last stages' depths unscaled.
    fn fix_stem_head(&self) -> bool {
        self.arch == TimmMobileNetArch::V2 && self.depth_multiplier != 1.0
    }

    /// Blocks of each definition of stage `s` ([`scale_stage_depth`], up; not the first
    /// and last stages with [`Self::fix_stem_head`]).
    fn repeats(&self, s: usize) -> Vec<usize> {
        let stages = self.stages();
        let repeats: Vec<usize> = stages[s].iter().map(|d| d.repeats).collect();
        let fixed = self.fix_stem_head() && (s == 0 || s + 1 == stages.len());
        match fixed {
            true => repeats,
            false => scale_stage_depth(&repeats, self.depth_multiplier, false),
        }
    }

    fn stages(&self) -> &'static [&'static [BlockDef]] {
        match (self.arch, self.minimal) {
            (TimmMobileNetArch::V2, _) => V2,
            (TimmMobileNetArch::V1, _) => V1,
            (TimmMobileNetArch::V3Large, false) => LARGE,
            (TimmMobileNetArch::V3LargeRw, _) => LARGE_RW,
            (TimmMobileNetArch::LcNet, _) => LCNET,
            (TimmMobileNetArch::FbNetV3B, _) => FBNET_V3_B,
            (TimmMobileNetArch::FbNetV3D, _) => FBNET_V3_D,
            (TimmMobileNetArch::FbNetV3G, _) => FBNET_V3_G,
            (TimmMobileNetArch::V3Small, false) => SMALL,
            (TimmMobileNetArch::V3Large, true) => LARGE_MINIMAL,
            (TimmMobileNetArch::V3Small, true) => SMALL_MINIMAL,
            (TimmMobileNetArch::V4ConvSmall, _) => V4_SMALL,
            (TimmMobileNetArch::V4ConvMedium, _) => V4_MEDIUM,
            (TimmMobileNetArch::V4ConvLarge, _) => V4_LARGE,
        }
    }

    /// The model's activation (`nre` blocks take ReLU).
    fn activation(&self) -> Activation {
        use TimmMobileNetArch::*;
        match (self.arch, self.minimal) {
            (V1 | V2, _) => Activation::Relu6,
            (V4ConvSmall | V4ConvMedium | V4ConvLarge, _) | (_, true) => Activation::Relu,
            (_, false) => Activation::HardSwish,
        }
    }

    fn layers(&self) -> TimmLayers {
        match self.arch {
            // `mobilenetv3_rw` takes TensorFlow's eps without its padding (which a
            // configuration built by hand may still ask for).
            TimmMobileNetArch::V3LargeRw => TimmLayers {
                eps: 1e-3,
                ..TimmLayers::new(self.tf_padding)
            },
            _ => TimmLayers::new(self.tf_padding),
        }
    }

    /// timm's `round_channels(c, multiplier)` (FBNetV3's with `round_limit=0.95`).
    fn channels(&self, c: usize) -> usize {
        make_divisible_with_limit(c as f64 * self.channel_multiplier, 8, self.round_limit())
    }

    /// How far below a width timm's rounding may go: 95% on FBNetV3, else 90%.
    fn round_limit(&self) -> f64 {
        use TimmMobileNetArch::*;
        match self.arch {
            FbNetV3B | FbNetV3D | FbNetV3G => 0.95,
            _ => 0.9,
        }
    }

    /// The stem's width: scaled, but not below the multiplier where timm's `fix_stem`
    /// keeps it.
    fn stem_channels(&self) -> usize {
        use TimmMobileNetArch::*;
        let (stem, fixed_below) = match self.arch {
            V1 | V2 => (32, 0.0),
            V3Large | V3Small => (16, 0.75),
            V3LargeRw | LcNet | FbNetV3B => (16, 0.0),
            FbNetV3D => (24, 0.0),
            FbNetV3G => (32, 0.0),
            V4ConvSmall | V4ConvMedium => (32, 1.0),
            V4ConvLarge => (24, 1.0),
        };
        match self.fix_stem_head() || self.channel_multiplier < fixed_below {
            true => stem,
            false => self.channels(stem),
        }
    }

    /// The features timm's `feature_info` lists, in order: the stem's where the first
    /// block is strided, then each stage's output before a strided stage, and the last.
    fn taps(&self) -> Vec<Tap> {
        let stages = self.stages();
        let strided = |s: usize| stages.get(s).is_none_or(|st| st[0].stride > 1);
        let mut taps = Vec::new();
        if strided(0) {
            taps.push(Tap::Stem);
        }
        taps.extend(
            (0..stages.len())
                .filter(|&s| strided(s + 1))
                .map(Tap::Stage),
        );
        taps
    }

    /// Channels of smp's features: the input's, then one per tap (five).
    pub(crate) fn feature_channels(&self, in_channels: usize) -> Vec<usize> {
        let stages = self.stages();
        let mut c = vec![in_channels];
        c.extend(self.taps().into_iter().map(|t| match t {
            Tap::Stem => self.stem_channels(),
            Tap::Stage(s) => self.channels(stages[s][stages[s].len() - 1].out),
        }));
        c
    }

    /// The stem (`{prefix}.conv_stem`, `bn1`, taking `in_channels` channels) and the
    /// stages smp runs for `depth` features appended to `g` after `x`; returns the input
    /// and the features. Strides past `output_stride` become dilations by timm's rule.
    pub(crate) fn append(
        &self,
        g: &mut Graph,
        x: ValueId,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        (in_channels, depth, output_stride): (usize, usize, usize),
    ) -> Result<Vec<ValueId>> {
        let at = |name: &str| key(prefix, name);
        let stem = Conv2dParams::new(in_channels, self.stem_channels(), 3)
            .stride(2)
            .activation(self.activation());
        let mut y = self.layers().stem(g, x, (gpu, sd, prefix), stem)?;
        let taps = self.taps();
        let wanted = &taps[..depth.min(taps.len())];
        let mut features = vec![x];
        if wanted.first() == Some(&Tap::Stem) {
            features.push(y);
        }
        let stages = wanted
            .iter()
            .filter_map(|t| match t {
                Tap::Stage(s) => Some(s + 1),
                Tap::Stem => None,
            })
            .max()
            .unwrap_or(0);
        let mut timm_rule = TimmOutputStride::new(output_stride);
        let mut input = self.stem_channels();
        for (s, stage) in self.stages().iter().enumerate().take(stages) {
            let mut i = 0;
            for (d, n) in stage.iter().zip(self.repeats(s)) {
                let output = self.channels(d.out);
                for r in 0..n {
                    let stride_dilation = timm_rule.block(if r == 0 { d.stride } else { 1 });
                    let name = format!("blocks.{s}.{i}");
                    let prefix = at(&name);
                    let ctx = (gpu, sd, prefix.as_str());
                    let block = self.block(ctx, *d, (input, output), stride_dilation)?;
                    y = g.add(name, block, &[y]);
                    input = output;
                    i += 1;
                }
            }
            if wanted.contains(&Tap::Stage(s)) {
                features.push(y);
            }
        }
        Ok(features)
    }

    /// One block under `prefix` from `input` to `output` channels, with this stride and
    /// dilation (timm's, after its `output_stride` rule).
    fn block(
        &self,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        d: BlockDef,
        (input, output): (usize, usize),
        (stride, dilation): (usize, usize),
    ) -> Result<Graph> {
        let act = match d.relu {
            true => Activation::Relu,
            false => self.activation(),
        };
        let hidden = match d.kind {
            Kind::Separable | Kind::SeparableAct | Kind::Conv => input,
            _ => make_divisible(input as f64 * d.expand, 8),
        };
        let skip = stride == 1 && input == output && !d.no_skip && d.kind != Kind::SeparableAct;
        match d.kind {
            Kind::Conv | Kind::Edge => {
                let block = TimmConvBlock {
                    channels: (input, (d.kind == Kind::Edge).then_some(hidden), output),
                    kernel: d.kernel,
                    stride_dilation: (stride, dilation),
                    activation: act,
                    // timm's `cn` blocks skip only where their string says `skip`.
                    skip: d.kind == Kind::Edge && skip,
                };
                return self.layers().conv_block((gpu, sd, prefix), block);
            }
            Kind::Universal => {
                let block = (input, hidden, output, skip);
                return self.universal((gpu, sd, prefix), d, block, (stride, dilation));
            }
            Kind::Separable | Kind::SeparableAct | Kind::Inverted => {}
        }
        // A quarter of the depthwise channels: rounded to 8 with ReLU (`_gen_mobilenet_v3`),
        // rounded with the block's activation (`_gen_mobilenet_v3_rw`) or with ReLU
        // (`_gen_lcnet`); a quarter of the input's, rounded as the widths, with the block's
        // activation (`_gen_fbnetv3`'s `se_from_exp=False`).
        let se = d.se.then(|| {
            use TimmMobileNetArch::*;
            let quarter = hidden as f64 * 0.25;
            let (squeezed, se_act) = match self.arch {
                V3LargeRw => (quarter.round_ties_even() as usize, act),
                LcNet => (quarter.round_ties_even() as usize, Activation::Relu),
                FbNetV3B | FbNetV3D | FbNetV3G => {
                    let limit = self.round_limit();
                    (make_divisible_with_limit(quarter / d.expand, 8, limit), act)
                }
                _ => (make_divisible(quarter, 8), Activation::Relu),
            };
            SqueezeExcitationParams::new(hidden, squeezed.max(1))
                .activation(se_act)
                .scale_activation(Activation::HardSigmoid)
        });
        let block = TimmBlock {
            channels: (input, hidden, output),
            separable: matches!(d.kind, Kind::Separable | Kind::SeparableAct),
            kernel: d.kernel,
            stride_dilation: (stride, dilation),
            activation: act,
            se,
            skip,
            mixing: Mixing::NONE,
            project_activation: d.kind == Kind::SeparableAct,
        };
        self.layers().block((gpu, sd, prefix), block)
    }

    /// timm's `UniversalInvertedResidual` under `prefix` (`dw_start`, `pw_exp`, `dw_mid`,
    /// `pw_proj`, each a `.conv` and a `.bn`): the stride on the middle window, or on the
    /// first without one; both windows dilated alike (as timm has them).
    fn universal(
        &self,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        d: BlockDef,
        (input, hidden, output, skip): (usize, usize, usize, bool),
        (stride, dilation): (usize, usize),
    ) -> Result<Graph> {
        let act = self.activation();
        let mut parts = Vec::new();
        if d.start > 0 {
            let first_stride = if d.kernel > 0 { 1 } else { stride };
            let p = Conv2dParams::depthwise(input, 1, d.start)
                .stride(first_stride)
                .dilation(dilation);
            parts.push(("dw_start", p));
        }
        parts.push((
            "pw_exp",
            Conv2dParams::new(input, hidden, 1).activation(act),
        ));
        if d.kernel > 0 {
            let p = Conv2dParams::depthwise(hidden, 1, d.kernel)
                .stride(stride)
                .dilation(dilation)
                .activation(act);
            parts.push(("dw_mid", p));
        }
        parts.push(("pw_proj", Conv2dParams::new(hidden, output, 1)));
        let last = parts.len() - 1;
        let layers = self.layers();
        let mut g = Graph::new();
        let x = g.input();
        let mut y = x;
        for (i, (name, p)) in parts.into_iter().enumerate() {
            let (p, pad) = layers.padded(p.bias(false));
            let at = |part: &str| key(prefix, &format!("{name}.{part}"));
            let mut layer = conv_bn(gpu, sd, p, &at("conv"), &at("bn"), layers.eps)?;
            if let Some(pad) = pad {
                y = g.add(format!("{name}.pad"), pad, &[y]);
            }
            let mut inputs = vec![y];
            if i == last && skip {
                layer = layer.with_residual(ResidualJoin::AfterActivation)?;
                inputs.push(x);
            }
            y = g.add(name, layer, &inputs);
        }
        g.set_outputs(&[y]);
        Ok(g)
    }
}
