//! HRNet-OCR ([`HrNetOcr`]): HRNet/HRNet-Semantic-Segmentation's `seg_hrnet_ocr.py`
//! (`HighResolutionNet(config)` with object-contextual representations, "Segmentation
//! Transformer: Object-Contextual Representations for Semantic Segmentation"), under its
//! state-dict names, so the HRNetV2-W48 + OCR checkpoints of its model zoo (Cityscapes,
//! PASCAL-Context, LIP, ADE20K, COCO-Stuff) load as they are (give the training wrapper's
//! `model` as the prefix where the names begin with it).
//!
//! The trunk and the concatenated four-branch representation are HRNetV2's
//! ([`HrNetSeg`](super::HrNetSeg)). The OCR head then runs, at a quarter of the input's
//! size:
//! - `aux_head`: a 1x1 convolution with bias, batch norm and ReLU, and a 1x1 classifier
//!   with bias: the soft object regions (auxiliary logits);
//! - `conv3x3_ocr`: a 3x3 convolution with bias, batch norm and ReLU to `MID_CHANNELS`;
//! - `ocr_gather_head`: each class's softmax over the pixels of its auxiliary logits
//!   weights those features ([`ops::sdpa::spatial_gather`](crate::ops::sdpa::spatial_gather)):
//!   the `[N, MID, K, 1]` object region representations;
//! - `ocr_distri_head` (`SpatialOCR_Module`, scale 1): the pixels' queries (`f_pixel`, two
//!   1x1 convolutions with batch norm and ReLU to `KEY_CHANNELS`) attend over the regions'
//!   keys (`f_object`, the same) and values (`f_down`, one), scaled by `KEY_CHANNELS^-0.5`
//!   ([`ops::sdpa`](crate::ops::sdpa)); `f_up` brings the context back to `MID_CHANNELS`,
//!   and `conv_bn_dropout` fuses it with the features (concatenated, context first: a 1x1
//!   convolution, batch norm and ReLU; the dropout is the identity at inference);
//! - `cls_head`: a 1x1 classifier with bias.
//!
//! PyTorch's `forward` returns `[aux logits, logits]`; here the logits come first and the
//! auxiliary logits follow only with [`HrNetOcrConfig::aux_output`] (the repository's
//! `TEST.OUTPUT_INDEX = -1` keeps the logits).
//! `tests/golden/third_party/hrnet_seg` holds the PyTorch files the tests compare with.

use super::hrnet_seg::{append_features, append_head, trunk_from_name, EPS, IMAGE};
use super::HrNetConfig;
use crate::blocks::{conv_bn, Architecture, ConvBnAct, Graph, Model, Op, SdpaNode};
use crate::blocks::{SpatialGatherNode, ValueId};
use crate::error::{fail_if, positive, Result};
use crate::gpu::Gpu;
use crate::ops::conv::Conv2dParams;
use crate::ops::sdpa::{SdpaParams, SpatialGatherParams, MAX_HEAD_DIM};
use crate::ops::setters;
use crate::ops::upsample::UpsampleMode;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// The configuration of HRNet-Semantic-Segmentation's OCR network (see the module
/// documentation): input `[N, 3, H, W]` of any size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HrNetOcrConfig {
    /// The trunk: `MODEL.EXTRA`'s `STAGE1` .. `STAGE4`.
    pub trunk: HrNetConfig,
    /// Classes of the logits (`DATASET.NUM_CLASSES`: 19 for Cityscapes, 59 or 60 for
    /// PASCAL-Context, 20 for LIP, 150 for ADE20K, 171 for COCO-Stuff).
    pub num_classes: usize,
    /// The OCR head's width (`MODEL.OCR.MID_CHANNELS`, 512 in every configuration).
    pub ocr_mid_channels: usize,
    /// The attention's query / key / value channels (`MODEL.OCR.KEY_CHANNELS`, 256; at
    /// most [`MAX_HEAD_DIM`]).
    pub ocr_key_channels: usize,
    /// Whether the bilinear resizes align corners (`MODEL.ALIGN_CORNERS`: `true`, the
    /// repository's default, which every OCR configuration keeps).
    pub align_corners: bool,
    /// Whether the auxiliary logits (`aux_head`'s, PyTorch's first output) follow the
    /// logits as a second output (default `false`).
    pub aux_output: bool,
    /// Whether the outputs are resized to the input's size (bilinear, `align_corners`),
    /// as the repository's `inference` does (default `false`: the quarter-size logits
    /// `forward` returns).
    pub resize_to_input: bool,
}

impl HrNetOcrConfig {
    /// A network on `trunk` with `num_classes` and the published head: 512 channels,
    /// 256-channel attention, corners aligned, the quarter-size logits alone.
    pub fn new(trunk: HrNetConfig, num_classes: usize) -> Self {
        HrNetOcrConfig {
            trunk,
            num_classes,
            ocr_mid_channels: 512,
            ocr_key_channels: 256,
            align_corners: true,
            aux_output: false,
            resize_to_input: false,
        }
    }

    /// By the name of the trunk, as [`HrNetSegConfig::from_name`](super::HrNetSegConfig::from_name)
    /// takes it (`hrnet_w48` is the model zoo's HRNetV2-W48 + OCR); another name is a typed
    /// error naming `name`.
    pub fn from_name(name: &str, num_classes: usize) -> Result<Self> {
        Ok(Self::new(trunk_from_name(name)?, num_classes))
    }
}

setters!(HrNetOcrConfig {
    /// Sets the OCR head's width.
    ocr_mid_channels: usize,
    /// Sets the attention's channels.
    ocr_key_channels: usize,
    /// Sets whether the bilinear resizes align corners.
    align_corners: bool,
    /// Sets whether the auxiliary logits are a second output.
    aux_output: bool,
    /// Sets whether the outputs are resized to the input's size.
    resize_to_input: bool,
});

/// HRNet-OCR: input `[N, 3, H, W]`, output the logits `[N, num_classes, ceil(H / 4),
/// ceil(W / 4)]` (with `resize_to_input`, `[N, num_classes, H, W]`), then with
/// `aux_output` the auxiliary logits of the same shape: see [`HrNetOcrConfig`].
pub type HrNetOcr = Model<HrNetOcrConfig>;

impl Architecture for HrNetOcrConfig {
    /// Checks the trunk, that there is a class and a channel, and that the attention's
    /// channels fit the kernel's registers.
    fn validate(&self) -> Result<()> {
        self.trunk.validate()?;
        positive(&[
            ("num_classes", self.num_classes),
            ("ocr_mid_channels", self.ocr_mid_channels),
            ("ocr_key_channels", self.ocr_key_channels),
        ])?;
        fail_if(
            self.ocr_key_channels > MAX_HEAD_DIM,
            "ocr_key_channels",
            || {
                format!(
                    "the attention keeps a query's {} channels in registers; at most \
                     {MAX_HEAD_DIM} are supported",
                    self.ocr_key_channels
                )
            },
        )
    }

    /// Loads HRNetV2's trunk (see [`HrNetSeg`](super::HrNetSeg)), `aux_head` (`.0` / `.1`,
    /// `.3`), `conv3x3_ocr` (`.0` / `.1`), `ocr_distri_head` (`object_context_block`'s
    /// `f_pixel`, `f_object`, `f_down`, `f_up`, and `conv_bn_dropout`) and `cls_head`.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let mut g = Graph::new();
        let x = g.input();
        let ctx = (gpu, sd, prefix);
        let feats = append_features(&self.trunk, &mut g, x, ctx, self.align_corners)?;
        let c: usize = self.trunk.widths.iter().sum();
        let (k, mid) = (self.num_classes, self.ocr_mid_channels);
        let at = |n: &str| key(prefix, n);
        // The soft object regions: HRNetV2's head (`last_layer`) as `aux_head`.
        let aux = append_head(&self.trunk, &mut g, feats, ctx, ("aux_head", (k, 1)))?;
        let p = Conv2dParams::new(c, mid, 3)
            .padding(1)
            .activation(Activation::Relu);
        let ocr = conv_bn(gpu, sd, p, &at("conv3x3_ocr.0"), &at("conv3x3_ocr.1"), EPS)?;
        let feats = g.add("conv3x3_ocr", ocr, &[feats]);
        let gather = SpatialGatherNode(SpatialGatherParams::new());
        let regions = g.add("ocr_gather_head", gather, &[aux, feats]);
        let head = key(prefix, "ocr_distri_head");
        let context = self.object_context(&mut g, ctx, &head, (feats, regions))?;
        let joined = g.add("ocr_distri_head.cat", Op::Concat, &[context, feats]);
        let fuse = bn_relu_conv(ctx, 2 * mid, mid, &key(&head, "conv_bn_dropout"), 0)?;
        let fused = g.add("ocr_distri_head.conv_bn_dropout", fuse, &[joined]);
        let p = Conv2dParams::new(mid, k, 1);
        let classifier = ConvBnAct::load(gpu, sd, p, &at("cls_head"), None, 0.0)?;
        let mut outputs = vec![g.add("cls_head", classifier, &[fused])];
        if self.aux_output {
            outputs.push(aux);
        }
        if self.resize_to_input {
            let bilinear = UpsampleMode::Bilinear {
                align_corners: self.align_corners,
            };
            for (i, y) in outputs.iter_mut().enumerate() {
                *y = g.resize_like(format!("resize{i}"), bilinear, *y, x);
            }
        }
        g.set_outputs(&outputs);
        Ok(g)
    }

    /// Checks an input shape: 3 channels (the layers check the rest).
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        crate::ops::check_channels(input, IMAGE)
    }
}

impl HrNetOcrConfig {
    /// `SpatialOCR_Module.object_context_block` under `{head}.object_context_block`: the
    /// pixels of `feats` attend over the object `regions`; the context, `MID_CHANNELS`
    /// wide, at the features' size.
    fn object_context(
        &self,
        g: &mut Graph,
        ctx: (&Gpu, &StateDict, &str),
        head: &str,
        (feats, regions): (ValueId, ValueId),
    ) -> Result<ValueId> {
        let block = key(head, "object_context_block");
        let (mid, kc) = (self.ocr_mid_channels, self.ocr_key_channels);
        let at = |n: &str| key(&block, n);
        // f_pixel and f_object: two 1x1 convolutions, each with batch norm and ReLU
        // (`.0` / `.1.0`, `.2` / `.3.0`).
        let mut project = |name: &str, x: ValueId| -> Result<ValueId> {
            let first = bn_relu_conv(ctx, mid, kc, &at(name), 0)?;
            let y = g.add(format!("{name}.0"), first, &[x]);
            let second = bn_relu_conv(ctx, kc, kc, &at(name), 2)?;
            Ok(g.add(format!("{name}.2"), second, &[y]))
        };
        let query = project("f_pixel", feats)?;
        let keys = project("f_object", regions)?;
        let down = bn_relu_conv(ctx, mid, kc, &at("f_down"), 0)?;
        let values = g.add("f_down", down, &[regions]);
        let attention = SdpaNode(SdpaParams::new(1));
        let context = g.add("object_context", attention, &[query, keys, values]);
        let up = bn_relu_conv(ctx, kc, mid, &at("f_up"), 0)?;
        Ok(g.add("f_up", up, &[context]))
    }
}

/// The 1x1 convolution without bias `{seq}.{index}` followed by `ModuleHelper.BNReLU`'s
/// batch norm `{seq}.{index + 1}.0` and ReLU.
fn bn_relu_conv(
    (gpu, sd, _): (&Gpu, &StateDict, &str),
    cin: usize,
    cout: usize,
    seq: &str,
    index: usize,
) -> Result<ConvBnAct> {
    let p = super::conv1x1(cin, cout).activation(Activation::Relu);
    let conv = key(seq, &index.to_string());
    let bn = key(seq, &format!("{}.0", index + 1));
    conv_bn(gpu, sd, p, &conv, &bn, EPS)
}
