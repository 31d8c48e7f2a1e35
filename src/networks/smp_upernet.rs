//! segmentation_models_pytorch's `UPerNet` (`smp.UPerNet(encoder_name, encoder_depth,
//! decoder_channels, decoder_use_norm, in_channels, classes, activation, upsampling)`) on
//! the encoders of [`SmpEncoder`]: the encoder's features from stride 4 on, each through a
//! `LayerNorm2d` (eps 1e-6); a pyramid pooling module on the deepest (for bins 1, 2, 3
//! and 6, an adaptive average pool, a 1x1 convolution with ReLU, a bilinear resize back;
//! the feature and the four concatenated, a 3x3 convolution with batch norm and ReLU); a
//! top-down FPN (each shallower feature through a 1x1 lateral convolution, the deeper
//! level resized to it bilinearly and added, a 3x3 convolution); every level resized to
//! stride 4, concatenated deepest last, fused by a 3x3 convolution; a 1x1 head to the
//! classes, a bilinear resize (`align_corners=True`) by `upsampling`, the activation. The
//! resizes inside the decoder are bilinear without aligned corners. Names are smp's
//! (`decoder.feature_norms.{i}`, `decoder.psp.blocks.{k}.1`, `decoder.psp.out_conv`,
//! `decoder.fpn_lateral_blocks.{i}.conv_norm_relu`, `decoder.fpn_conv_blocks.{i}`,
//! `decoder.fusion_block`, `segmentation_head.0`).
//!
//! With `aux_params`, smp's classification head gives a second output. Not covered: the
//! norms other than batch norm (or none).

use crate::blocks::{Architecture, Graph, LayerNorm2dNode, Model, Op, ValueId};
use crate::error::{positive, Result};
use crate::gpu::Gpu;
use crate::ops::conv::Conv2dParams;
use crate::ops::upsample::UpsampleMode;
use crate::weights::{key, StateDict};

use super::smp_pspnet::{pyramid_branches, BINS};
use super::smp_unet::{
    check_divisible, check_encoder_depth, conv2d_relu, segmentation_head, set_smp_outputs,
};
use super::{resize_like, HeadActivation, SmpAuxParams, SmpEncoder};

/// The configuration of an smp `UPerNet`.
#[derive(Clone, Debug, PartialEq)]
pub struct SmpUperNetConfig {
    /// The encoder (`encoder_name`; [`SmpUperNetConfig::new`] takes smp's names).
    pub encoder: SmpEncoder,
    /// Stages of the encoder used, 3 to 5 (`encoder_depth`, 5).
    pub encoder_depth: usize,
    /// Input channels (`in_channels`, 3).
    pub in_channels: usize,
    /// Classes (`classes`, 1).
    pub classes: usize,
    /// Channels of every decoder level (`decoder_channels`, 256).
    pub decoder_channels: usize,
    /// Batch norm after the decoder's convolutions (`decoder_use_norm`: `"batchnorm"` /
    /// `True`, the default), or none (`False`: the convolutions get a bias). The pyramid
    /// module's last convolution has batch norm either way, as in smp.
    pub decoder_use_norm: bool,
    /// The head's bilinear resize factor (`upsampling`, 4; 1 for none).
    pub upsampling: usize,
    /// The head's activation, after its resize (`activation`, none by default).
    pub activation: HeadActivation,
    /// smp's classification head (`aux_params`; `None`, the default, for none): a second
    /// output, the labels.
    pub aux_params: Option<SmpAuxParams>,
}

impl SmpUperNetConfig {
    /// `smp.UPerNet(encoder_name, in_channels=in_channels, classes=classes)`; the encoder
    /// names are [`SmpEncoder::from_name`]'s.
    pub fn new(encoder_name: &str, in_channels: usize, classes: usize) -> Result<Self> {
        Ok(SmpUperNetConfig {
            encoder: SmpEncoder::from_name(encoder_name)?,
            encoder_depth: 5,
            in_channels,
            classes,
            decoder_channels: 256,
            decoder_use_norm: true,
            upsampling: 4,
            activation: HeadActivation::Identity,
            aux_params: None,
        })
    }
}

crate::ops::setters!(SmpUperNetConfig {
    /// Sets `aux_params` (a classification head: a second output).
    aux_params: Option<SmpAuxParams>,
    /// Sets `encoder_depth`.
    encoder_depth: usize,
    /// Sets `decoder_channels`.
    decoder_channels: usize,
    /// Sets `decoder_use_norm` (batch norm or none).
    decoder_use_norm: bool,
    /// Sets the head's `upsampling`.
    upsampling: usize,
    /// Sets the head's activation.
    activation: HeadActivation,
});

/// An smp `UPerNet` for inference: input `[N, in_channels, H, W]` with H and W divisible
/// by `2^encoder_depth`, output `[N, classes, H, W]` with the default `upsampling`.
pub type SmpUperNet = Model<SmpUperNetConfig>;

/// The decoder's resizes: `F.interpolate(..., mode="bilinear", align_corners=False)`.
const BILINEAR: UpsampleMode = UpsampleMode::Bilinear {
    align_corners: false,
};

impl Architecture for SmpUperNetConfig {
    /// Checks the configuration on its own: depth 3 to 5, the encoder's checks.
    fn validate(&self) -> Result<()> {
        positive(&[
            ("in_channels", self.in_channels),
            ("classes", self.classes),
            ("decoder_channels", self.decoder_channels),
            ("upsampling", self.upsampling),
        ])?;
        check_encoder_depth(&self.encoder, self.encoder_depth, 3..=5)
    }

    /// Loads the encoder, the decoder's norms, pyramid, FPN and fusion, and
    /// `segmentation_head.0` under `prefix`.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let at = |n: &str| key(prefix, n);
        let depth = self.encoder_depth;
        let dc = self.decoder_channels;
        let norm = self.decoder_use_norm;
        let shape = (self.in_channels, depth, 32);
        let (mut g, features) = self.encoder.graph((gpu, sd, prefix), shape)?;
        let channels = self.encoder.channels(self.in_channels);
        // The features from stride 4 on, each normalised over its channels.
        let mut levels = Vec::with_capacity(depth - 1);
        for (i, level) in (2..=depth).enumerate() {
            let name = at(&format!("decoder.feature_norms.{i}"));
            let ln = LayerNorm2dNode::load(gpu, sd, (channels[level], 1e-6), &name)?;
            levels.push(g.add(name, ln, &[features[level]]));
        }
        let deepest = *levels.last().expect("depth 3 or more");
        let psp = self.pyramid(&mut g, (gpu, sd, prefix), deepest, channels[depth])?;
        // Top-down: each shallower level's lateral convolution plus the deeper level
        // resized to it.
        let mut fpn = vec![psp];
        for (i, (&lateral, level)) in levels
            .iter()
            .rev()
            .skip(1)
            .zip((2..depth).rev())
            .enumerate()
        {
            let name = at(&format!("decoder.fpn_lateral_blocks.{i}"));
            let conv = Conv2dParams::new(channels[level], dc, 1);
            let conv = conv2d_relu(gpu, sd, conv, &key(&name, "conv_norm_relu"), norm)?;
            let lateral = g.add(key(&name, "conv_norm_relu"), conv, &[lateral]);
            let state = *fpn.last().expect("the pyramid");
            let resized = resize_like(&mut g, key(&name, "resize"), state, lateral);
            fpn.push(g.add(name, Op::Add, &[resized, lateral]));
        }
        for (i, level) in fpn.iter_mut().enumerate().skip(1) {
            let name = at(&format!("decoder.fpn_conv_blocks.{}", i - 1));
            let conv = Conv2dParams::new(dc, dc, 3).padding(1);
            let conv = conv2d_relu(gpu, sd, conv, &name, norm)?;
            *level = g.add(name, conv, &[*level]);
        }
        // Every level at stride 4 (the last one's size), deepest last.
        let target = *fpn.last().expect("the levels");
        let mut stacked = Vec::with_capacity(fpn.len());
        for (i, &level) in fpn.iter().enumerate().rev() {
            stacked.push(if level == target {
                level
            } else {
                resize_like(&mut g, at(&format!("decoder.resize.{i}")), level, target)
            });
        }
        let joined = g.add(at("decoder.stack"), Op::Concat, &stacked);
        let conv = Conv2dParams::new(fpn.len() * dc, dc, 3).padding(1);
        let conv = conv2d_relu(gpu, sd, conv, &at("decoder.fusion_block"), norm)?;
        let y = g.add("decoder.fusion_block", conv, &[joined]);
        let shape = (dc, self.classes, 1);
        let head = (self.upsampling, self.activation);
        let y = segmentation_head(&mut g, y, shape, head, (gpu, sd, prefix))?;
        let last = (features[depth], channels[depth]);
        set_smp_outputs(&mut g, y, self.aux_params, last, (gpu, sd, prefix))?;
        Ok(g)
    }

    /// Checks an input shape: `in_channels` channels, height and width divisible by
    /// `2^encoder_depth` (smp's `check_input_shape`).
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        self.encoder.check_input(input)?;
        check_divisible(input, self.in_channels, 1 << self.encoder_depth)
    }
}

impl SmpUperNetConfig {
    /// smp's `PSPModule` on `feature` (`c` channels): the feature and its four pooled
    /// branches concatenated, then `decoder.psp.out_conv`.
    fn pyramid(
        &self,
        g: &mut Graph,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        feature: ValueId,
        c: usize,
    ) -> Result<ValueId> {
        let dc = self.decoder_channels;
        let block = |k: usize| key(prefix, &format!("decoder.psp.blocks.{k}"));
        let norm = |_| self.decoder_use_norm;
        let pyramid = pyramid_branches(g, (gpu, sd), feature, (c, dc), block, norm, BILINEAR)?;
        let branches: Vec<ValueId> = std::iter::once(feature).chain(pyramid).collect();
        let joined = g.add(key(prefix, "decoder.psp"), Op::Concat, &branches);
        let out = key(prefix, "decoder.psp.out_conv");
        let conv = Conv2dParams::new(c + BINS.len() * dc, dc, 3).padding(1);
        let conv = conv2d_relu(gpu, sd, conv, &out, true)?;
        Ok(g.add(out, conv, &[joined]))
    }
}
