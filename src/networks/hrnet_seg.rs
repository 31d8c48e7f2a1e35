//! HRNetV2 for semantic segmentation ([`HrNetSeg`]): HRNet/HRNet-Semantic-Segmentation's
//! `seg_hrnet.py` (`HighResolutionNet(config)`, "Deep High-Resolution Representation
//! Learning for Visual Recognition"), under its state-dict names, so the checkpoints of
//! its model zoo (Cityscapes, PASCAL-Context, LIP, ADE20K, COCO-Stuff: HRNetV2-W48, and
//! the small W18 v1 / v2 on Cityscapes) load as they are (their names begin with `model`,
//! the training wrapper's: give that as the prefix).
//!
//! The trunk is the HRNet timm took over (see [`HrNetConfig`]): a stem of two strided 3x3
//! convolutions (`conv1` / `bn1`, `conv2` / `bn2`), `layer1`'s bottlenecks, and stages 2
//! to 4 of parallel branches at strides 4 to 32 with their transitions. Its fusions bring
//! a lower resolution up bilinearly to the higher one's size (`F.interpolate(size=...,
//! align_corners=ALIGN_CORNERS)`, where timm upsamples nearest by a scale factor), so any
//! input size runs. The head (`last_layer`) concatenates the four branches, the lower
//! three resized bilinearly to the first's size, then runs a 1x1 convolution with bias,
//! batch norm and ReLU, and a classifier with bias (`FINAL_CONV_KERNEL` 1, or 3 padded by
//! 1). The logits are at a quarter of the input's size (each side rounded up), as
//! PyTorch's `forward` returns them; [`HrNetSegConfig::resize_to_input`] resizes them to
//! the input's size as the repository's test code does.
//!
//! Here the resized branches are written straight into the concatenation's channels, and
//! each fusion's resized term is added in its resize's store.
//! `tests/golden/third_party/hrnet_seg` holds the PyTorch files the tests compare with.

use super::hrnet::FuseResize;
use super::HrNetConfig;
use crate::blocks::{conv_bn, Architecture, ConvBnAct, Graph, Model, Op, ValueId};
use crate::error::{fail_if, positive, Error, Result};
use crate::gpu::Gpu;
use crate::ops::conv::Conv2dParams;
use crate::ops::setters;
use crate::ops::upsample::UpsampleMode;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// Input channels (the stem takes RGB).
pub(super) const IMAGE: usize = 3;
/// Batch norm's eps (PyTorch's default; the model sets only the momentum).
pub(super) const EPS: f32 = 1e-5;

/// The configuration of HRNet-Semantic-Segmentation's `HighResolutionNet` (see the module
/// documentation): input `[N, 3, H, W]` of any size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HrNetSegConfig {
    /// The trunk: `MODEL.EXTRA`'s `STAGE1` .. `STAGE4` (the stem is 64 channels wide, as
    /// the model builds it).
    pub trunk: HrNetConfig,
    /// Classes of the logits (`DATASET.NUM_CLASSES`; 19 for Cityscapes).
    pub num_classes: usize,
    /// The classifier's kernel (`MODEL.EXTRA.FINAL_CONV_KERNEL`): 1, or 3 padded by 1.
    pub final_conv_kernel: usize,
    /// Whether the bilinear resizes align corners (`MODEL.ALIGN_CORNERS`; the
    /// repository's default is `true`, its Cityscapes, PASCAL-Context and LIP
    /// configurations set `false`).
    pub align_corners: bool,
    /// Whether the logits are resized to the input's size (bilinear, `align_corners`), as
    /// the repository's `inference` does (default `false`: the quarter-size logits
    /// `forward` returns).
    pub resize_to_input: bool,
}

impl HrNetSegConfig {
    /// A network on `trunk` with `num_classes`: a 1x1 classifier, corners not aligned
    /// (the published configurations'), quarter-size logits.
    pub fn new(trunk: HrNetConfig, num_classes: usize) -> Self {
        HrNetSegConfig {
            trunk,
            num_classes,
            final_conv_kernel: 1,
            align_corners: false,
            resize_to_input: false,
        }
    }

    /// By the name of the published configuration's trunk: `hrnet_w48` (the model zoo's
    /// HRNetV2-W48), `hrnet_w18_small_v1` and `hrnet_w18_small_v2` (its Cityscapes small
    /// models), or any other width timm names (`hrnet_w18`, `hrnet_w32`, ...; `HrNetConfig::
    /// timm`); another name is a typed error naming `name`.
    pub fn from_name(name: &str, num_classes: usize) -> Result<Self> {
        Ok(Self::new(trunk_from_name(name)?, num_classes))
    }
}

setters!(HrNetSegConfig {
    /// Sets the classifier's kernel (1 or 3).
    final_conv_kernel: usize,
    /// Sets whether the bilinear resizes align corners.
    align_corners: bool,
    /// Sets whether the logits are resized to the input's size.
    resize_to_input: bool,
});

/// HRNetV2 for segmentation: input `[N, 3, H, W]`, output the logits `[N, num_classes,
/// ceil(H / 4), ceil(W / 4)]` (with `resize_to_input`, `[N, num_classes, H, W]`): see
/// [`HrNetSegConfig`].
pub type HrNetSeg = Model<HrNetSegConfig>;

impl Architecture for HrNetSegConfig {
    /// Checks the trunk, that there is a class, and the classifier's kernel (1 or 3, as
    /// the model pads only those to keep the size).
    fn validate(&self) -> Result<()> {
        self.trunk.validate()?;
        positive(&[("num_classes", self.num_classes)])?;
        fail_if(
            !matches!(self.final_conv_kernel, 1 | 3),
            "final_conv_kernel",
            || {
                format!(
                    "the classifier pads a 3x3 kernel by 1 and a 1x1 by 0 (others change \
                     the map's size), got {}",
                    self.final_conv_kernel
                )
            },
        )
    }

    /// Loads `conv1` / `bn1`, `conv2` / `bn2`, `layer1`, `transition1` .. `transition3`,
    /// `stage2` .. `stage4` and `last_layer` (`.0` the 1x1 convolution, `.1` its batch
    /// norm, `.3` the classifier).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let mut g = Graph::new();
        let x = g.input();
        let trunk = &self.trunk;
        let joined = append_features(trunk, &mut g, x, (gpu, sd, prefix), self.align_corners)?;
        let bilinear = UpsampleMode::Bilinear {
            align_corners: self.align_corners,
        };
        let classes = (self.num_classes, self.final_conv_kernel);
        let ctx = (gpu, sd, prefix);
        let mut logits = append_head(trunk, &mut g, joined, ctx, ("last_layer", classes))?;
        if self.resize_to_input {
            logits = g.resize_like("resize", bilinear, logits, x);
        }
        g.set_outputs(&[logits]);
        Ok(g)
    }

    /// Checks an input shape: 3 channels (the layers check the rest).
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        crate::ops::check_channels(input, IMAGE)
    }
}

/// HRNetV2's head on the concatenated representation `joined` of `trunk` under `{name}`:
/// a 1x1 convolution with bias, batch norm and ReLU (`.0`, `.1`), then a classifier with
/// bias to `classes` with a `kernel` x `kernel` window padded by half of it (`.3`). It is
/// `last_layer` here and HRNet-OCR's `aux_head` (kernel 1).
pub(super) fn append_head(
    trunk: &HrNetConfig,
    g: &mut Graph,
    joined: ValueId,
    (gpu, sd, prefix): (&Gpu, &StateDict, &str),
    (name, (classes, kernel)): (&str, (usize, usize)),
) -> Result<ValueId> {
    let c: usize = trunk.widths.iter().sum();
    let at = |n: &str| key(prefix, &format!("{name}.{n}"));
    let p = Conv2dParams::new(c, c, 1).activation(Activation::Relu);
    let fuse = conv_bn(gpu, sd, p, &at("0"), &at("1"), EPS)?;
    let y = g.add(format!("{name}.0"), fuse, &[joined]);
    let p = Conv2dParams::new(c, classes, kernel).padding(kernel / 2);
    let classifier = ConvBnAct::load(gpu, sd, p, &at("3"), None, 0.0)?;
    Ok(g.add(format!("{name}.3"), classifier, &[y]))
}

/// The trunk of a published configuration by name (see [`HrNetSegConfig::from_name`]).
pub(super) fn trunk_from_name(name: &str) -> Result<HrNetConfig> {
    let timm = match name {
        "hrnet_w18_small_v1" => "hrnet_w18_small",
        other => other,
    };
    HrNetConfig::timm(timm).ok_or_else(|| Error::InvalidParam {
        name: "name",
        reason: format!(
            "unknown HRNet {name:?}: hrnet_w18_small_v1, hrnet_w18_small_v2, hrnet_w18, \
             hrnet_w30, hrnet_w32, hrnet_w40, hrnet_w44, hrnet_w48 or hrnet_w64"
        ),
    })
}

/// HRNetV2's representation, which the segmentation head and HRNet-OCR's both read: the
/// stem and stages of `trunk` (bilinear fusions) on the image `x`, then the four branches
/// concatenated at the first's size (a quarter of the input's, each side rounded up), the
/// lower three resized bilinearly: `sum(widths)` channels.
pub(super) fn append_features(
    trunk: &HrNetConfig,
    g: &mut Graph,
    x: ValueId,
    ctx: (&Gpu, &StateDict, &str),
    align_corners: bool,
) -> Result<ValueId> {
    let stem = trunk.append_stem(g, x, ctx, IMAGE)?;
    let branches = trunk.append_stages(g, stem, ctx, FuseResize::Bilinear { align_corners })?;
    let bilinear = UpsampleMode::Bilinear { align_corners };
    let mut parts = vec![branches[0]];
    for (i, &b) in branches.iter().enumerate().skip(1) {
        parts.push(g.resize_like(format!("up{i}"), bilinear, b, branches[0]));
    }
    Ok(g.add("cat", Op::Concat, &parts))
}
