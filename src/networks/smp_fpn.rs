//! segmentation_models_pytorch's `FPN` (`smp.FPN(encoder_name, encoder_depth, in_channels,
//! classes, decoder_pyramid_channels, decoder_segmentation_channels, decoder_merge_policy,
//! decoder_interpolation, upsampling, activation)`) on the encoders of
//! [`SmpEncoder`]: the last four encoder features `c2 .. c5`; `p5` a 1x1 convolution of
//! `c5`, each lower level `p_k` the 2x resize of `p_{k+1}` plus a 1x1 convolution of `c_k`;
//! each `p_k` through 3x3 convolution + GroupNorm(32) + ReLU blocks, each followed by a 2x
//! bilinear resize (`align_corners=True`) until it reaches `p2`'s size; the four summed (or
//! concatenated); the dropout is the identity in inference; a 1x1 convolution to the
//! classes, a bilinear resize by `upsampling` (`align_corners=True`), then the activation.
//! Names are smp's (`encoder.*`, `decoder.p5`, `decoder.p{4,3,2}.skip_conv`,
//! `decoder.seg_blocks.{k}.block.{j}.block.{0,1}`, `segmentation_head.0`).
//!
//! With `aux_params`, smp's classification head on the encoder's last feature gives a
//! second output ([`SmpAuxParams`](super::SmpAuxParams)).

use crate::blocks::{Architecture, ConvBnAct, Graph, GroupNormNode, Model, Op, ValueId};
use crate::error::{fail_if, positive, Result};
use crate::gpu::Gpu;
use crate::ops::conv::{Conv2dParams, ResidualJoin};
use crate::ops::norm::GroupNormParams;
use crate::ops::upsample::{UpsampleMode, UpsampleParams};
use crate::ops::Activation;
use crate::weights::{key, StateDict};

use super::smp_unet::segmentation_head;
use super::{HeadActivation, SmpAuxParams, SmpEncoder};

/// How smp's FPN merges its four pyramid levels (`decoder_merge_policy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FpnMerge {
    /// `"add"`: their sum (the default).
    #[default]
    Add,
    /// `"cat"`: their concatenation, four times the segmentation channels.
    Cat,
}

/// The configuration of an smp `FPN`.
#[derive(Clone, Debug, PartialEq)]
pub struct SmpFpnConfig {
    /// The encoder (`encoder_name`).
    pub encoder: SmpEncoder,
    /// Stages of the encoder used, 3 to 5 (`encoder_depth`, 5); inputs must be divisible
    /// by `2^encoder_depth`, as smp requires.
    pub encoder_depth: usize,
    /// Input channels (`in_channels`, 3).
    pub in_channels: usize,
    /// Classes (`classes`).
    pub classes: usize,
    /// Channels of the pyramid (`decoder_pyramid_channels`, 256).
    pub pyramid_channels: usize,
    /// Channels of the segmentation blocks (`decoder_segmentation_channels`, 128): a
    /// multiple of 32, GroupNorm's groups.
    pub segmentation_channels: usize,
    /// `decoder_merge_policy`.
    pub merge: FpnMerge,
    /// How each pyramid level is resized to the next (`decoder_interpolation`,
    /// `"nearest"`; a scale factor of 2).
    pub decoder_interpolation: UpsampleMode,
    /// The head's bilinear resize factor (`upsampling`, 4; 1 for none).
    pub upsampling: usize,
    /// The head's activation, after its resize (`activation`, none by default).
    pub activation: HeadActivation,
    /// smp's classification head (`aux_params`; `None`, the default, for none): a second
    /// output, the labels.
    pub aux_params: Option<SmpAuxParams>,
}

impl SmpFpnConfig {
    /// `smp.FPN(encoder_name, in_channels=in_channels, classes=classes)`; the encoder names
    /// are [`SmpEncoder::from_name`]'s.
    pub fn new(encoder_name: &str, in_channels: usize, classes: usize) -> Result<Self> {
        Ok(SmpFpnConfig {
            encoder: SmpEncoder::from_name(encoder_name)?,
            encoder_depth: 5,
            in_channels,
            classes,
            pyramid_channels: 256,
            segmentation_channels: 128,
            merge: FpnMerge::Add,
            decoder_interpolation: UpsampleMode::Nearest,
            upsampling: 4,
            activation: HeadActivation::Identity,
            aux_params: None,
        })
    }
}

crate::ops::setters!(SmpFpnConfig {
    /// Sets `aux_params` (a classification head: a second output).
    aux_params: Option<SmpAuxParams>,
    /// Sets `encoder_depth`.
    encoder_depth: usize,
    /// Sets `decoder_pyramid_channels`.
    pyramid_channels: usize,
    /// Sets `decoder_segmentation_channels`.
    segmentation_channels: usize,
    /// Sets `decoder_merge_policy`.
    merge: FpnMerge,
    /// Sets `decoder_interpolation`.
    decoder_interpolation: UpsampleMode,
    /// Sets the head's `upsampling`.
    upsampling: usize,
    /// Sets the head's activation.
    activation: HeadActivation,
});

/// An smp `FPN` for inference: input `[N, in_channels, H, W]` with H and W divisible by
/// `2^encoder_depth`, output `[N, classes, H', W']` (the input's size at depth 5 with the
/// default `upsampling` of 4).
pub type SmpFpn = Model<SmpFpnConfig>;

impl Architecture for SmpFpnConfig {
    /// Checks the configuration on its own, with smp's rules.
    fn validate(&self) -> Result<()> {
        positive(&[
            ("in_channels", self.in_channels),
            ("classes", self.classes),
            ("decoder_pyramid_channels", self.pyramid_channels),
            ("decoder_segmentation_channels", self.segmentation_channels),
            ("upsampling", self.upsampling),
        ])?;
        super::smp_unet::check_smp_rules(
            &self.encoder,
            (self.encoder_depth, 3..=5),
            self.decoder_interpolation,
        )?;
        fail_if(
            self.encoder.starts_at_quarter() && self.encoder_depth != 5,
            "encoder_depth",
            || {
                format!(
                    "smp's FPN takes an encoder whose stride-2 feature is empty (mit_b*, \
                     tu-convnext_*) at depth 5 only, got {}",
                    self.encoder_depth
                )
            },
        )?;
        fail_if(
            !self.segmentation_channels.is_multiple_of(32),
            "decoder_segmentation_channels",
            || {
                format!(
                    "GroupNorm(32, C) needs a multiple of 32, got {}",
                    self.segmentation_channels
                )
            },
        )
    }

    /// Loads the encoder, `decoder.p5`, `decoder.p{4,3,2}.skip_conv`,
    /// `decoder.seg_blocks.*` and `segmentation_head.0` under `prefix`.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let at = |n: &str| key(prefix, n);
        let ctx = (gpu, sd, prefix);
        let depth = self.encoder_depth;
        let shape = (self.in_channels, depth, 32);
        let (mut g, features) = self.encoder.graph((gpu, sd, prefix), shape)?;
        let channels = self.encoder.channels(self.in_channels);
        // c2 .. c5: the last four features (the input among them at depth 3).
        let c = |k: usize| (features[depth + k - 5], channels[depth + k - 5]);
        let conv1x1 = |cin: usize, name: &str| {
            let p = Conv2dParams::new(cin, self.pyramid_channels, 1);
            ConvBnAct::load(gpu, sd, p, &at(name), None, 0.0)
        };
        let (c5, c5_channels) = c(5);
        let mut pyramid = vec![g.add("decoder.p5", conv1x1(c5_channels, "decoder.p5")?, &[c5])];
        for level in [4, 3, 2] {
            let name = format!("decoder.p{level}");
            let up = UpsampleParams {
                scale_factor: Some((2.0, 2.0)),
                ..UpsampleParams::nearest()
            };
            let up = UpsampleParams {
                mode: self.decoder_interpolation,
                ..up
            };
            let above = *pyramid.last().expect("p5");
            let resized = g.add(key(&name, "resize"), Op::Upsample(up), &[above]);
            let (ck, ck_channels) = c(level);
            let skip = conv1x1(ck_channels, &format!("{name}.skip_conv"))?
                .with_residual(ResidualJoin::AfterActivation)?;
            pyramid.push(g.add(key(&name, "skip_conv"), skip, &[ck, resized]));
        }
        let mut levels = Vec::with_capacity(4);
        for (k, (&p, upsamples)) in pyramid.iter().zip([3, 2, 1, 0]).enumerate() {
            levels.push(self.segmentation_block(&mut g, p, k, upsamples, ctx)?);
        }
        let merged = match self.merge {
            FpnMerge::Add => {
                let mut sum = levels[0];
                for &l in &levels[1..] {
                    sum = g.add("decoder.merge", Op::Add, &[sum, l]);
                }
                sum
            }
            FpnMerge::Cat => g.add("decoder.merge", Op::Concat, &levels),
        };
        let merged_channels = match self.merge {
            FpnMerge::Add => self.segmentation_channels,
            FpnMerge::Cat => 4 * self.segmentation_channels,
        };
        let shape = (merged_channels, self.classes, 1);
        let head = (self.upsampling, self.activation);
        let y = segmentation_head(&mut g, merged, shape, head, (gpu, sd, prefix))?;
        let (c5, c5_channels) = c(5);
        super::smp_unet::set_smp_outputs(&mut g, y, self.aux_params, (c5, c5_channels), ctx)?;
        Ok(g)
    }

    /// Checks an input shape: `in_channels` channels, height and width divisible by
    /// `2^encoder_depth` (smp's `check_input_shape`).
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        self.encoder.check_input(input)?;
        super::smp_unet::check_divisible(input, self.in_channels, 1 << self.encoder_depth)
    }
}

impl SmpFpnConfig {
    /// `decoder.seg_blocks.{k}`: `Conv3x3GNReLU` blocks on `p`, the first from the pyramid's
    /// channels, each but a lone one (`upsamples` 0) followed by a 2x bilinear resize.
    fn segmentation_block(
        &self,
        g: &mut Graph,
        p: ValueId,
        k: usize,
        upsamples: usize,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
    ) -> Result<ValueId> {
        let mut y = p;
        let mut cin = self.pyramid_channels;
        for j in 0..upsamples.max(1) {
            let block = key(prefix, &format!("decoder.seg_blocks.{k}.block.{j}.block"));
            let conv = Conv2dParams::new(cin, self.segmentation_channels, 3)
                .padding(1)
                .bias(false);
            let conv = ConvBnAct::load(gpu, sd, conv, &key(&block, "0"), None, 0.0)?;
            y = g.add(key(&block, "0"), conv, &[y]);
            let gn = GroupNormParams::new(32, self.segmentation_channels);
            let gn = GroupNormNode::load(gpu, sd, gn, &key(&block, "1"), Activation::Relu)?;
            y = g.add(key(&block, "1"), gn, &[y]);
            if upsamples > 0 {
                let up = UpsampleParams::bilinear(true).scale_factor(2.0);
                y = g.add(key(&block, "up"), Op::Upsample(up), &[y]);
            }
            cin = self.segmentation_channels;
        }
        Ok(y)
    }
}
