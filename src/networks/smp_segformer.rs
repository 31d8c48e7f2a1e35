//! segmentation_models_pytorch's `Segformer` (`smp.Segformer(encoder_name, encoder_depth,
//! decoder_segmentation_channels, in_channels, classes, activation, upsampling)`) on the
//! encoders of [`SmpEncoder`]: SegFormer's all-MLP decoder. Each encoder feature from
//! stride 2 on goes through a per-pixel linear layer to `decoder_segmentation_channels`
//! (`decoder.mlp_stage.{i}.linear`, the deepest feature first) and a bilinear resize
//! (`align_corners=False`) to a quarter of the input's size; the resized maps are
//! concatenated, deepest first, and fused by a 1x1 convolution with batch norm and ReLU
//! (`decoder.fuse_stage.{0,1}`); a 1x1 head to the classes (`segmentation_head.0`), a
//! bilinear resize (`align_corners=True`) by `upsampling`, the activation.
//!
//! On smp's Mix Transformer encoders (`mit_b0` .. `mit_b5`, the ones SegFormer was
//! published with) this is SegFormer itself; their empty stride-2 feature is dropped, as
//! smp does. With `aux_params`, smp's classification head gives a second output.

use crate::blocks::{Architecture, ConvBnAct, Graph, Model, Op};
use crate::error::{positive, Result};
use crate::gpu::Gpu;
use crate::ops::conv::Conv2dParams;
use crate::ops::upsample::UpsampleMode;
use crate::weights::{key, StateDict};

use super::smp_unet::{
    check_divisible, check_encoder_depth, conv2d_relu, segmentation_head, set_smp_outputs,
};
use super::{HeadActivation, SmpAuxParams, SmpEncoder};

/// The configuration of an smp `Segformer`.
#[derive(Clone, Debug, PartialEq)]
pub struct SmpSegformerConfig {
    /// The encoder (`encoder_name`; [`SmpSegformerConfig::new`] takes smp's names).
    pub encoder: SmpEncoder,
    /// Stages of the encoder used, 3 to 5 (`encoder_depth`, 5).
    pub encoder_depth: usize,
    /// Input channels (`in_channels`, 3).
    pub in_channels: usize,
    /// Classes (`classes`, 1).
    pub classes: usize,
    /// Channels of the decoder's linear layers and fusion (`decoder_segmentation_channels`,
    /// 256).
    pub decoder_segmentation_channels: usize,
    /// The head's bilinear resize factor (`upsampling`, 4; 1 for none).
    pub upsampling: usize,
    /// The head's activation, after its resize (`activation`, none by default).
    pub activation: HeadActivation,
    /// smp's classification head (`aux_params`; `None`, the default, for none): a second
    /// output, the labels.
    pub aux_params: Option<SmpAuxParams>,
}

impl SmpSegformerConfig {
    /// `smp.Segformer(encoder_name, in_channels=in_channels, classes=classes)`; the encoder
    /// names are [`SmpEncoder::from_name`]'s.
    pub fn new(encoder_name: &str, in_channels: usize, classes: usize) -> Result<Self> {
        Ok(SmpSegformerConfig {
            encoder: SmpEncoder::from_name(encoder_name)?,
            encoder_depth: 5,
            in_channels,
            classes,
            decoder_segmentation_channels: 256,
            upsampling: 4,
            activation: HeadActivation::Identity,
            aux_params: None,
        })
    }
}

crate::ops::setters!(SmpSegformerConfig {
    /// Sets `aux_params` (a classification head: a second output).
    aux_params: Option<SmpAuxParams>,
    /// Sets `encoder_depth`.
    encoder_depth: usize,
    /// Sets `decoder_segmentation_channels`.
    decoder_segmentation_channels: usize,
    /// Sets the head's `upsampling`.
    upsampling: usize,
    /// Sets the head's activation.
    activation: HeadActivation,
});

/// An smp `Segformer` for inference: input `[N, in_channels, H, W]` with H and W
/// divisible by `2^encoder_depth`, output `[N, classes, H, W]` with the default
/// `upsampling`.
pub type SmpSegformer = Model<SmpSegformerConfig>;

impl Architecture for SmpSegformerConfig {
    /// Checks the configuration on its own: depth 3 to 5, the encoder's checks.
    fn validate(&self) -> Result<()> {
        positive(&[
            ("in_channels", self.in_channels),
            ("classes", self.classes),
            (
                "decoder_segmentation_channels",
                self.decoder_segmentation_channels,
            ),
            ("upsampling", self.upsampling),
        ])?;
        check_encoder_depth(&self.encoder, self.encoder_depth, 3..=5)
    }

    /// Loads the encoder, `decoder.mlp_stage.{i}.linear`, `decoder.fuse_stage` and
    /// `segmentation_head.0` under `prefix`.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let at = |n: &str| key(prefix, n);
        let depth = self.encoder_depth;
        let sc = self.decoder_segmentation_channels;
        let (mut g, features) = self
            .encoder
            .graph((gpu, sd, prefix), (self.in_channels, depth, 32))?;
        let channels = self.encoder.channels(self.in_channels);
        // A quarter of the input's size is the stride-4 feature's size: the input is
        // divisible by 2^depth >= 8.
        let quarter = features[2];
        let bilinear = Op::ResizeLike(UpsampleMode::Bilinear {
            align_corners: false,
        });
        // smp drops an empty stride-2 feature (the Mix Transformer's) from the decoder.
        let levels: Vec<usize> = (1..=depth).filter(|&l| channels[l] > 0).collect();
        let mut resized = Vec::with_capacity(depth);
        for (i, &level) in levels.iter().rev().enumerate() {
            let name = at(&format!("decoder.mlp_stage.{i}.linear"));
            let linear = Conv2dParams::new(channels[level], sc, 1);
            let linear = ConvBnAct::load_linear(gpu, sd, linear, &name)?;
            let y = g.add(&name, linear, &[features[level]]);
            // Resizing a map to its own size is the identity: no pass for stride 4.
            resized.push(match level {
                2 => y,
                _ => g.add_sized(key(&name, "resize"), bilinear.clone(), &[y], &[quarter])[0],
            });
        }
        let joined = g.add(at("decoder.concat"), Op::Concat, &resized);
        let fuse = Conv2dParams::new(levels.len() * sc, sc, 1);
        let fuse = conv2d_relu(gpu, sd, fuse, &at("decoder.fuse_stage"), true)?;
        let y = g.add("decoder.fuse_stage", fuse, &[joined]);
        let shape = (sc, self.classes, 1);
        let head = (self.upsampling, self.activation);
        let y = segmentation_head(&mut g, y, shape, head, (gpu, sd, prefix))?;
        let last = (features[depth], channels[depth]);
        set_smp_outputs(&mut g, y, self.aux_params, last, (gpu, sd, prefix))?;
        Ok(g)
    }

    /// Checks an input shape: `in_channels` channels, height and width divisible by
    /// `2^encoder_depth` (smp's `check_input_shape`).
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        check_divisible(input, self.in_channels, 1 << self.encoder_depth)
    }
}
