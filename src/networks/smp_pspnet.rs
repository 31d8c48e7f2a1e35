//! segmentation_models_pytorch's `PSPNet` (`smp.PSPNet(encoder_name, encoder_depth,
//! psp_out_channels, decoder_use_norm, in_channels, classes, activation, upsampling)`) on
//! the encoders of [`SmpEncoder`]: the pyramid pooling module on the encoder's last
//! feature (`C` channels): for bins 1, 2, 3 and 6, an adaptive average pool, a 1x1
//! convolution to `C / 4` with batch norm (none for the 1-bin branch, as smp) and ReLU,
//! a bilinear resize (`align_corners=True`) back; the four concatenated before the
//! feature; a 1x1 convolution to `psp_out_channels` with batch norm and ReLU (the dropout
//! is the identity in inference); a 3x3 head to the classes, a bilinear resize
//! (`align_corners=True`) by `upsampling`, the activation. Names are smp's
//! (`decoder.psp.blocks.{k}.pool.1.{0,1}`, `decoder.conv.{0,1}`, `segmentation_head.0`).
//!
//! With `aux_params`, smp's classification head gives a second output. Not covered: the
//! norms other than batch norm (or none).

use crate::blocks::{Architecture, Graph, Model, Op, ValueId};
use crate::error::{positive, Result};
use crate::gpu::Gpu;
use crate::ops::conv::Conv2dParams;
use crate::ops::pool::AdaptiveAvgPool2dParams;
use crate::ops::upsample::UpsampleMode;
use crate::weights::{key, StateDict};

use super::smp_unet::{
    check_divisible, check_encoder_depth, conv2d_relu, segmentation_head, set_smp_outputs,
};
use super::{HeadActivation, SmpAuxParams, SmpEncoder};

/// The configuration of an smp `PSPNet`.
#[derive(Clone, Debug, PartialEq)]
pub struct SmpPspNetConfig {
    /// The encoder (`encoder_name`; [`SmpPspNetConfig::new`] takes smp's names).
    pub encoder: SmpEncoder,
    /// Stages of the encoder used, 1 to 5 (`encoder_depth`, 3).
    pub encoder_depth: usize,
    /// Input channels (`in_channels`, 3).
    pub in_channels: usize,
    /// Classes (`classes`, 1).
    pub classes: usize,
    /// Channels after the pyramid pooling module (`psp_out_channels`, 512).
    pub psp_out_channels: usize,
    /// Batch norm after the decoder's convolutions (`decoder_use_norm`: `"batchnorm"` /
    /// `True`, the default), or none (`False`: the convolutions get a bias).
    pub decoder_use_norm: bool,
    /// The head's bilinear resize factor (`upsampling`, 8; 1 for none).
    pub upsampling: usize,
    /// The head's activation, after its resize (`activation`, none by default).
    pub activation: HeadActivation,
    /// smp's classification head (`aux_params`; `None`, the default, for none): a second
    /// output, the labels.
    pub aux_params: Option<SmpAuxParams>,
}

impl SmpPspNetConfig {
    /// `smp.PSPNet(encoder_name, in_channels=in_channels, classes=classes)`; the encoder
    /// names are [`SmpEncoder::from_name`]'s.
    pub fn new(encoder_name: &str, in_channels: usize, classes: usize) -> Result<Self> {
        Ok(SmpPspNetConfig {
            encoder: SmpEncoder::from_name(encoder_name)?,
            encoder_depth: 3,
            in_channels,
            classes,
            psp_out_channels: 512,
            decoder_use_norm: true,
            upsampling: 8,
            activation: HeadActivation::Identity,
            aux_params: None,
        })
    }
}

crate::ops::setters!(SmpPspNetConfig {
    /// Sets `aux_params` (a classification head: a second output).
    aux_params: Option<SmpAuxParams>,
    /// Sets `encoder_depth`.
    encoder_depth: usize,
    /// Sets `psp_out_channels`.
    psp_out_channels: usize,
    /// Sets `decoder_use_norm` (batch norm or none).
    decoder_use_norm: bool,
    /// Sets the head's `upsampling`.
    upsampling: usize,
    /// Sets the head's activation.
    activation: HeadActivation,
});

/// An smp `PSPNet` for inference: input `[N, in_channels, H, W]` with H and W divisible
/// by `2^encoder_depth`, output `[N, classes, H', W']` (the input's size with the default
/// depth and `upsampling`).
pub type SmpPspNet = Model<SmpPspNetConfig>;

/// The pyramid's bins (smp's `sizes`).
pub(crate) const BINS: [usize; 4] = [1, 2, 3, 6];

impl Architecture for SmpPspNetConfig {
    /// Checks the configuration on its own: depth 1 to 5, the encoder's checks.
    fn validate(&self) -> Result<()> {
        positive(&[
            ("in_channels", self.in_channels),
            ("classes", self.classes),
            ("psp_out_channels", self.psp_out_channels),
            ("upsampling", self.upsampling),
        ])?;
        check_encoder_depth(&self.encoder, self.encoder_depth, 1..=5)
    }

    /// Loads the encoder, `decoder.psp.blocks.{k}.pool.1`, `decoder.conv` and
    /// `segmentation_head.0` under `prefix`.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let at = |n: &str| key(prefix, n);
        let depth = self.encoder_depth;
        let shape = (self.in_channels, depth, 32);
        let (mut g, features) = self.encoder.graph((gpu, sd, prefix), shape)?;
        let c = self.encoder.channels(self.in_channels)[depth];
        let feature = features[depth];
        let bilinear = UpsampleMode::Bilinear {
            align_corners: true,
        };
        let block = |k: usize| at(&format!("decoder.psp.blocks.{k}.pool"));
        // smp leaves the 1-bin branch without norm (batch norm of one value a channel).
        let norm = |bins: usize| self.decoder_use_norm && bins > 1;
        let mut branches = pyramid_branches(
            &mut g,
            (gpu, sd),
            feature,
            (c, c / 4),
            block,
            norm,
            bilinear,
        )?;
        branches.push(feature);
        let joined = g.add("decoder.psp", Op::Concat, &branches);
        let conv = Conv2dParams::new(4 * (c / 4) + c, self.psp_out_channels, 1);
        let conv = conv2d_relu(gpu, sd, conv, &at("decoder.conv"), self.decoder_use_norm)?;
        let y = g.add("decoder.conv", conv, &[joined]);
        let shape = (self.psp_out_channels, self.classes, 3);
        let head = (self.upsampling, self.activation);
        let y = segmentation_head(&mut g, y, shape, head, (gpu, sd, prefix))?;
        set_smp_outputs(&mut g, y, self.aux_params, (feature, c), (gpu, sd, prefix))?;
        Ok(g)
    }

    /// Checks an input shape: `in_channels` channels, height and width divisible by
    /// `2^encoder_depth` (smp's `check_input_shape`).
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        self.encoder.check_input(input)?;
        check_divisible(input, self.in_channels, 1 << self.encoder_depth)
    }
}

/// smp's pyramid pooling branches on `feature` (`c` channels), the `out`-channel maps of
/// bins 1, 2, 3 and 6 in order: an adaptive average pool (`{block(k)}.0`), a 1x1
/// Conv2dReLU (`{block(k)}.1`, batch-normed where `norm(bins)`), a bilinear resize back to
/// the feature's size (`mode`). PSPNet's and UPerNet's pyramids.
pub(crate) fn pyramid_branches(
    g: &mut Graph,
    (gpu, sd): (&Gpu, &StateDict),
    feature: ValueId,
    (c, out): (usize, usize),
    block: impl Fn(usize) -> String,
    norm: impl Fn(usize) -> bool,
    mode: UpsampleMode,
) -> Result<Vec<ValueId>> {
    let mut branches = Vec::with_capacity(BINS.len() + 1);
    for (k, bins) in BINS.into_iter().enumerate() {
        let block = block(k);
        let pooled = g.add(
            key(&block, "0"),
            Op::AdaptiveAvgPool(AdaptiveAvgPool2dParams::new(bins)),
            &[feature],
        );
        let conv = conv2d_relu(
            gpu,
            sd,
            Conv2dParams::new(c, out, 1),
            &key(&block, "1"),
            norm(bins),
        )?;
        let y = g.add(key(&block, "1"), conv, &[pooled]);
        branches.push(g.resize_like(key(&block, "resize"), mode, y, feature));
    }
    Ok(branches)
}
