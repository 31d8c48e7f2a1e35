//! segmentation_models_pytorch's `MAnet` (`smp.MAnet(encoder_name, encoder_depth,
//! decoder_use_norm, decoder_channels, decoder_pab_channels, decoder_interpolation,
//! in_channels, classes, activation)`) on the encoders of [`SmpEncoder`] (Fan et al.'s
//! multi-scale attention net).
//!
//! The decoder's center is the position attention block (`decoder.center`: PAB) on the
//! encoder's deepest feature `x`: 1x1 convolutions `top_conv` and `center_conv` to
//! `decoder_pab_channels`, a 3x3 `bottom_conv`, the scores `center^T top` over every pair
//! of pixels normalised by **one** softmax over the whole score map, their product with
//! the bottom map laid out token-major and read back as a map (PyTorch's `reshape`),
//! added to `x`, then the 3x3 `out_conv`: one pass of [`ops::sdpa`](crate::ops::sdpa)
//! ([`SoftmaxScope::All`], token-major output) plus its statistics passes. Each decoder
//! block with a skip is a multi-scale fusion attention block (MFAB: `hl_conv` a 3x3 and a
//! 1x1 Conv2dReLU to the skip's channels, a resize by 2, the map scaled by the sum of two
//! squeeze-and-excitation gates (`SE_hl` of the map, `SE_ll` of the skip), concatenated
//! with the skip, two 3x3 Conv2dReLUs); the others (the last block, and a Mix
//! Transformer's empty stride-2 skip) resize by 2 and run the two convolutions. The head
//! is a 3x3 convolution, then the activation.
//!
//! With `aux_params`, smp's classification head gives a second output. Not covered: the
//! norms other than batch norm (or none).

use crate::blocks::{Architecture, ConvBnAct, Graph, Model, Op, SdpaNode, SeNode, ValueId};
use crate::error::{positive, Result};
use crate::gpu::Gpu;
use crate::ops::attention::SqueezeExcitationParams;
use crate::ops::conv::Conv2dParams;
use crate::ops::sdpa::{SdpaParams, SoftmaxScope};
use crate::ops::upsample::{UpsampleMode, UpsampleParams};
use crate::ops::Activation;
use crate::weights::{key, StateDict};

use super::smp_unet::{
    check_decoder_widths, check_divisible, check_encoder_depth, check_interpolation, conv2d_relu,
    segmentation_head, set_smp_outputs,
};
use super::{HeadActivation, SmpAuxParams, SmpEncoder};

/// The configuration of an smp `MAnet`.
#[derive(Clone, Debug, PartialEq)]
pub struct SmpMAnetConfig {
    /// The encoder (`encoder_name`; [`SmpMAnetConfig::new`] takes smp's names).
    pub encoder: SmpEncoder,
    /// Stages of the encoder used, 1 to 5 (`encoder_depth`, 5); one decoder block each.
    pub encoder_depth: usize,
    /// Input channels (`in_channels`, 3).
    pub in_channels: usize,
    /// Classes (`classes`, 1).
    pub classes: usize,
    /// Output channels of each decoder block (`decoder_channels`, `(256, 128, 64, 32,
    /// 16)`), one per encoder stage used.
    pub decoder_channels: Vec<usize>,
    /// Channels of the position attention's scores (`decoder_pab_channels`, 64).
    pub decoder_pab_channels: usize,
    /// Batch norm after each decoder convolution (`decoder_use_norm`: `"batchnorm"` /
    /// `True`, the default), or none (`False`: the convolutions get a bias).
    pub decoder_use_norm: bool,
    /// How each decoder block resizes its input by 2 (`decoder_interpolation`,
    /// `"nearest"`).
    pub decoder_interpolation: UpsampleMode,
    /// The head's activation (`activation`, none by default).
    pub activation: HeadActivation,
    /// smp's classification head (`aux_params`; `None`, the default, for none): a second
    /// output, the labels.
    pub aux_params: Option<SmpAuxParams>,
}

impl SmpMAnetConfig {
    /// `smp.MAnet(encoder_name, in_channels=in_channels, classes=classes)`; the encoder
    /// names are [`SmpEncoder::from_name`]'s.
    pub fn new(encoder_name: &str, in_channels: usize, classes: usize) -> Result<Self> {
        Ok(SmpMAnetConfig {
            encoder: SmpEncoder::from_name(encoder_name)?,
            encoder_depth: 5,
            in_channels,
            classes,
            decoder_channels: vec![256, 128, 64, 32, 16],
            decoder_pab_channels: 64,
            decoder_use_norm: true,
            decoder_interpolation: UpsampleMode::Nearest,
            activation: HeadActivation::Identity,
            aux_params: None,
        })
    }

    /// `encoder_depth` and its `decoder_channels` (one width per stage).
    pub fn depth(mut self, encoder_depth: usize, decoder_channels: &[usize]) -> Self {
        self.encoder_depth = encoder_depth;
        self.decoder_channels = decoder_channels.to_vec();
        self
    }
}

crate::ops::setters!(SmpMAnetConfig {
    /// Sets `aux_params` (a classification head: a second output).
    aux_params: Option<SmpAuxParams>,
    /// Sets `decoder_pab_channels`.
    decoder_pab_channels: usize,
    /// Sets `decoder_use_norm` (batch norm or none).
    decoder_use_norm: bool,
    /// Sets `decoder_interpolation`.
    decoder_interpolation: UpsampleMode,
    /// Sets the head's activation.
    activation: HeadActivation,
});

/// An smp `MAnet` for inference: input `[N, in_channels, H, W]` with H and W divisible
/// by `2^encoder_depth`, output `[N, classes, H, W]`.
pub type SmpMAnet = Model<SmpMAnetConfig>;

/// smp's `MFABBlock` squeeze: `max(1, skip_channels // reduction)` with its default
/// reduction 16.
fn mfab_squeeze(skip_channels: usize) -> usize {
    (skip_channels / 16).max(1)
}

impl SmpMAnetConfig {
    /// The position attention block `decoder.center` on `x` (`c` channels).
    fn center(
        &self,
        g: &mut Graph,
        x: ValueId,
        c: usize,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
    ) -> Result<ValueId> {
        let at = |n: &str| key(prefix, &format!("decoder.center.{n}"));
        let pab = self.decoder_pab_channels;
        let conv = |p: Conv2dParams, name: &str| ConvBnAct::load(gpu, sd, p, &at(name), None, 0.0);
        let top = conv(Conv2dParams::new(c, pab, 1), "top_conv")?;
        let top = g.add(at("top_conv"), top, &[x]);
        let center = conv(Conv2dParams::new(c, pab, 1), "center_conv")?;
        let center = g.add(at("center_conv"), center, &[x]);
        let bottom = conv(Conv2dParams::new(c, c, 3).padding(1), "bottom_conv")?;
        let bottom = g.add(at("bottom_conv"), bottom, &[x]);
        let attention = SdpaParams::new(1)
            .scale(1.0)
            .softmax(SoftmaxScope::All)
            .token_major(true);
        let sp_map = g.add(at("sp_map"), SdpaNode(attention), &[center, top, bottom]);
        let y = g.add(at("add"), Op::Add, &[x, sp_map]);
        let out = conv(Conv2dParams::new(c, c, 3).padding(1), "out_conv")?;
        Ok(g.add(at("out_conv"), out, &[y]))
    }

    /// Decoder block `block` on `x` (`cin` channels): MFAB with a skip of `skip_channels`
    /// (> 0), the plain block otherwise.
    fn block(
        &self,
        g: &mut Graph,
        x: ValueId,
        skip: Option<ValueId>,
        (cin, skip_channels, cout): (usize, usize, usize),
        (gpu, sd, block): (&Gpu, &StateDict, &str),
    ) -> Result<ValueId> {
        let at = |n: &str| key(block, n);
        let norm = self.decoder_use_norm;
        let up = Op::Upsample(UpsampleParams {
            mode: self.decoder_interpolation,
            scale_factor: Some((2.0, 2.0)),
            ..UpsampleParams::nearest()
        });
        let joined = match skip {
            Some(skip) if skip_channels > 0 => {
                let p = Conv2dParams::new(cin, cin, 3).padding(1);
                let hl = conv2d_relu(gpu, sd, p, &at("hl_conv.0"), norm)?;
                let y = g.add(at("hl_conv.0"), hl, &[x]);
                let p = Conv2dParams::new(cin, skip_channels, 1);
                let hl = conv2d_relu(gpu, sd, p, &at("hl_conv.1"), norm)?;
                let y = g.add(at("hl_conv.1"), hl, &[y]);
                let y = g.add(at("resize"), up, &[y]);
                // x * (sigmoid(SE_hl(x)) + sigmoid(SE_ll(skip))): the skip's gate scales
                // a copy, the map's gate scales the map and adds it.
                let se = SqueezeExcitationParams::new(skip_channels, mfab_squeeze(skip_channels));
                let gate = |name: &str| -> Result<SeNode> {
                    let fc = |i: usize| at(&format!("{name}.{i}"));
                    Ok(SeNode::load(gpu, sd, se, &fc(1), &fc(3))?.gate_only())
                };
                let hl = g.add(at("SE_hl"), gate("SE_hl")?, &[y]);
                let ll = g.add(at("SE_ll"), gate("SE_ll")?, &[skip]);
                let by_skip = g.add(
                    at("gate_ll"),
                    Op::ScaleChannels(Activation::Sigmoid),
                    &[y, ll],
                );
                let gated = Op::ScaleChannelsAdd {
                    gate: Activation::Sigmoid,
                    act: Activation::None,
                };
                let y = g.add(at("gate_hl"), gated, &[y, hl, by_skip]);
                g.add(at("cat"), Op::Concat, &[y, skip])
            }
            // The last block, or a Mix Transformer's empty skip (a concatenation with
            // nothing).
            _ => g.add(at("resize"), up, &[x]),
        };
        let conv1_in = if skip_channels > 0 {
            2 * skip_channels
        } else {
            cin
        };
        let p = Conv2dParams::new(conv1_in, cout, 3).padding(1);
        let conv1 = conv2d_relu(gpu, sd, p, &at("conv1"), norm)?;
        let y = g.add(at("conv1"), conv1, &[joined]);
        let p = Conv2dParams::new(cout, cout, 3).padding(1);
        let conv2 = conv2d_relu(gpu, sd, p, &at("conv2"), norm)?;
        Ok(g.add(at("conv2"), conv2, &[y]))
    }
}

impl Architecture for SmpMAnetConfig {
    /// Checks the configuration on its own: depth 1 to 5 with one width each, positive
    /// widths, an interpolation of `F.interpolate`, the encoder's checks.
    fn validate(&self) -> Result<()> {
        positive(&[
            ("in_channels", self.in_channels),
            ("classes", self.classes),
            ("decoder_pab_channels", self.decoder_pab_channels),
            (
                "decoder_channels",
                self.decoder_channels.iter().copied().min().unwrap_or(1),
            ),
        ])?;
        check_encoder_depth(&self.encoder, self.encoder_depth, 1..=5)?;
        check_interpolation(self.decoder_interpolation)?;
        check_decoder_widths(self.encoder_depth, &self.decoder_channels)
    }

    /// Loads the encoder, `decoder.center.*`, `decoder.blocks.{i}.*` and
    /// `segmentation_head.0` under `prefix`.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let depth = self.encoder_depth;
        let shape = (self.in_channels, depth, 32);
        let (mut g, features) = self.encoder.graph((gpu, sd, prefix), shape)?;
        let channels = self.encoder.channels(self.in_channels);
        let ctx = (gpu, sd, prefix);
        let mut y = self.center(&mut g, features[depth], channels[depth], ctx)?;
        let mut cin = channels[depth];
        for (i, &cout) in self.decoder_channels.iter().enumerate() {
            // The skip of block i is feature depth - 1 - i (none for the last block).
            let level = depth - 1 - i;
            let (skip, skip_channels) = match level {
                0 => (None, 0),
                l => (Some(features[l]), channels[l]),
            };
            let block = key(prefix, &format!("decoder.blocks.{i}"));
            let shape = (cin, skip_channels, cout);
            y = self.block(&mut g, y, skip, shape, (gpu, sd, &block))?;
            cin = cout;
        }
        let last = *self.decoder_channels.last().expect("depth >= 1");
        let head = (1, self.activation);
        let y = segmentation_head(&mut g, y, (last, self.classes, 3), head, ctx)?;
        let deepest = (features[depth], channels[depth]);
        set_smp_outputs(&mut g, y, self.aux_params, deepest, ctx)?;
        Ok(g)
    }

    /// Checks an input shape: `in_channels` channels, height and width divisible by
    /// `2^encoder_depth` (smp's `check_input_shape`).
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        self.encoder.check_input(input)?;
        check_divisible(input, self.in_channels, 1 << self.encoder_depth)
    }
}
