//! segmentation_models_pytorch's `DeepLabV3` and `DeepLabV3Plus` on the encoders of
//! [`SmpEncoder`], dilated as smp dilates them (`encoder_output_stride` 8 or 16: every
//! convolution of the stages past it at stride 1 and one dilation, see
//! [`ResNetConfig::smp_stages`](super::ResNetConfig::smp_stages)).
//!
//! `DeepLabV3`: the ASPP (torchvision's, with separable dilated branches when
//! `decoder_aspp_separable`) on the last feature, a 3x3 convolution + batch norm + ReLU
//! (`decoder.conv`, `decoder.bn`; smp's older `decoder.1` / `decoder.2` names load too),
//! a 1x1 head to the classes, a bilinear resize (`align_corners=True`) back to the
//! input's size, the activation.
//!
//! `DeepLabV3Plus`: the ASPP (`decoder.aspp.0`), a separable 3x3 + batch norm + ReLU
//! (`decoder.aspp.1`, `.2`), a bilinear resize (`align_corners=True`) by 4 (2 at output
//! stride 8 or depth 3) to the second encoder stage's size; that stage's feature through a
//! 1x1 convolution to 48 channels + batch norm + ReLU (`decoder.block1`); both
//! concatenated, a separable 3x3 + batch norm + ReLU (`decoder.block2`); the 1x1 head,
//! its resize by `upsampling` (4), the activation. The dropout is the identity in
//! inference.
//!
//! With `aux_params`, smp's classification head on the encoder's last feature gives a
//! second output ([`SmpAuxParams`]).

use crate::blocks::{
    conv_bn, separable_conv_bn_relu, Architecture, Aspp, AsppConfig, Graph, Model, Op, ValueId,
};
use crate::error::{fail_if, positive, Result};
use crate::gpu::Gpu;
use crate::ops::conv::Conv2dParams;
use crate::ops::upsample::UpsampleParams;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

use super::smp_unet::{check_encoder_depth, segmentation_head, set_smp_outputs};
use super::{HeadActivation, SmpAuxParams, SmpEncoder};

/// The configuration of an smp `DeepLabV3`.
#[derive(Clone, Debug, PartialEq)]
pub struct SmpDeepLabV3Config {
    /// The encoder (`encoder_name`; [`SmpDeepLabV3Config::new`] takes smp's names).
    pub encoder: SmpEncoder,
    /// Stages of the encoder used, 1 to 5 (`encoder_depth`, 5).
    pub encoder_depth: usize,
    /// The encoder's output stride, 8 or 16 (`encoder_output_stride`, 8): the stages
    /// past it are dilated instead of strided.
    pub encoder_output_stride: usize,
    /// Input channels (`in_channels`, 3).
    pub in_channels: usize,
    /// Classes (`classes`, 1).
    pub classes: usize,
    /// Channels of the ASPP and of the decoder's convolution (`decoder_channels`, 256).
    pub decoder_channels: usize,
    /// Dilations of the ASPP's three 3x3 branches (`decoder_atrous_rates`, 12, 24, 36).
    pub atrous_rates: [usize; 3],
    /// Whether the ASPP's dilated branches are separable (`decoder_aspp_separable`,
    /// false).
    pub aspp_separable: bool,
    /// The head's bilinear resize factor (`upsampling`; `None`, the default, resizes back
    /// to the input's size: `2^encoder_depth` up to depth 3, the output stride beyond).
    pub upsampling: Option<usize>,
    /// The head's activation, after its resize (`activation`, none by default).
    pub activation: HeadActivation,
    /// smp's classification head (`aux_params`; `None`, the default, for none): a second
    /// output, the labels.
    pub aux_params: Option<SmpAuxParams>,
}

impl SmpDeepLabV3Config {
    /// `smp.DeepLabV3(encoder_name, in_channels=in_channels, classes=classes)`; the
    /// encoder names are [`SmpEncoder::from_name`]'s.
    pub fn new(encoder_name: &str, in_channels: usize, classes: usize) -> Result<Self> {
        Ok(SmpDeepLabV3Config {
            encoder: SmpEncoder::from_name(encoder_name)?,
            encoder_depth: 5,
            encoder_output_stride: 8,
            in_channels,
            classes,
            decoder_channels: 256,
            atrous_rates: [12, 24, 36],
            aspp_separable: false,
            upsampling: None,
            activation: HeadActivation::Identity,
            aux_params: None,
        })
    }

    /// The head's resize factor: `upsampling`, or smp's default.
    fn head_upsampling(&self) -> usize {
        self.upsampling.unwrap_or(if self.encoder_depth <= 3 {
            1 << self.encoder_depth
        } else {
            self.encoder_output_stride
        })
    }
}

crate::ops::setters!(SmpDeepLabV3Config {
    /// Sets `aux_params` (a classification head: a second output).
    aux_params: Option<SmpAuxParams>,
    /// Sets `encoder_depth`.
    encoder_depth: usize,
    /// Sets `encoder_output_stride`.
    encoder_output_stride: usize,
    /// Sets `decoder_channels`.
    decoder_channels: usize,
    /// Sets `decoder_atrous_rates`.
    atrous_rates: [usize; 3],
    /// Sets `decoder_aspp_separable`.
    aspp_separable: bool,
    /// Sets the head's `upsampling` (`None`: back to the input's size).
    upsampling: Option<usize>,
    /// Sets the head's activation.
    activation: HeadActivation,
});

/// An smp `DeepLabV3` for inference: input `[N, in_channels, H, W]` with H and W divisible
/// by the encoder's output stride, output `[N, classes, H, W]` (with the default
/// `upsampling`).
pub type SmpDeepLabV3 = Model<SmpDeepLabV3Config>;

/// The configuration of an smp `DeepLabV3Plus`.
#[derive(Clone, Debug, PartialEq)]
pub struct SmpDeepLabV3PlusConfig {
    /// The encoder (`encoder_name`; [`SmpDeepLabV3PlusConfig::new`] takes smp's names).
    pub encoder: SmpEncoder,
    /// Stages of the encoder used, 3 to 5 (`encoder_depth`, 5).
    pub encoder_depth: usize,
    /// The encoder's output stride, 8 or 16 (`encoder_output_stride`, 16).
    pub encoder_output_stride: usize,
    /// Input channels (`in_channels`, 3).
    pub in_channels: usize,
    /// Classes (`classes`, 1).
    pub classes: usize,
    /// Channels of the ASPP and of the decoder (`decoder_channels`, 256).
    pub decoder_channels: usize,
    /// Dilations of the ASPP's three 3x3 branches (`decoder_atrous_rates`, 12, 24, 36).
    pub atrous_rates: [usize; 3],
    /// Whether the ASPP's dilated branches are separable (`decoder_aspp_separable`,
    /// true).
    pub aspp_separable: bool,
    /// The head's bilinear resize factor (`upsampling`, 4; 1 for none).
    pub upsampling: usize,
    /// The head's activation, after its resize (`activation`, none by default).
    pub activation: HeadActivation,
    /// smp's classification head (`aux_params`; `None`, the default, for none): a second
    /// output, the labels.
    pub aux_params: Option<SmpAuxParams>,
}

impl SmpDeepLabV3PlusConfig {
    /// `smp.DeepLabV3Plus(encoder_name, in_channels=in_channels, classes=classes)`; the
    /// encoder names are [`SmpEncoder::from_name`]'s.
    pub fn new(encoder_name: &str, in_channels: usize, classes: usize) -> Result<Self> {
        Ok(SmpDeepLabV3PlusConfig {
            encoder: SmpEncoder::from_name(encoder_name)?,
            encoder_depth: 5,
            encoder_output_stride: 16,
            in_channels,
            classes,
            decoder_channels: 256,
            atrous_rates: [12, 24, 36],
            aspp_separable: true,
            upsampling: 4,
            activation: HeadActivation::Identity,
            aux_params: None,
        })
    }
}

crate::ops::setters!(SmpDeepLabV3PlusConfig {
    /// Sets `aux_params` (a classification head: a second output).
    aux_params: Option<SmpAuxParams>,
    /// Sets `encoder_depth`.
    encoder_depth: usize,
    /// Sets `encoder_output_stride`.
    encoder_output_stride: usize,
    /// Sets `decoder_channels`.
    decoder_channels: usize,
    /// Sets `decoder_atrous_rates`.
    atrous_rates: [usize; 3],
    /// Sets `decoder_aspp_separable`.
    aspp_separable: bool,
    /// Sets the head's `upsampling`.
    upsampling: usize,
    /// Sets the head's activation.
    activation: HeadActivation,
});

/// An smp `DeepLabV3Plus` for inference: input `[N, in_channels, H, W]` with H and W
/// divisible by the encoder's output stride, output `[N, classes, H, W]` (with the
/// default `upsampling`).
pub type SmpDeepLabV3Plus = Model<SmpDeepLabV3PlusConfig>;

/// The checks both models share: the channels, an output stride of 8 or 16, the depth in
/// `depths`, positive rates, the encoder's own checks.
fn check_deeplab(
    (encoder, depth, output_stride): (&SmpEncoder, usize, usize),
    depths: std::ops::RangeInclusive<usize>,
    (in_channels, classes, decoder_channels, upsampling): (usize, usize, usize, usize),
    rates: [usize; 3],
) -> Result<()> {
    positive(&[
        ("in_channels", in_channels),
        ("classes", classes),
        ("decoder_channels", decoder_channels),
        ("upsampling", upsampling),
    ])?;
    check_encoder_depth(encoder, depth, depths)?;
    fail_if(
        output_stride != 8 && output_stride != 16,
        "encoder_output_stride",
        || format!("DeepLab supports an output stride of 8 or 16, got {output_stride}"),
    )?;
    fail_if(rates.contains(&0), "decoder_atrous_rates", || {
        format!("dilations must be positive, got {rates:?}")
    })
}

/// The encoder's output stride as smp's `check_input_shape` reads it: the configured one,
/// or `2^depth` when that is smaller.
fn input_stride(depth: usize, output_stride: usize) -> usize {
    output_stride.min(1 << depth)
}

/// The ASPP of `decoder_channels` on `x` (`in_channels` channels), loaded from `prefix`.
fn aspp(
    g: &mut Graph,
    x: ValueId,
    (in_channels, out_channels, rates, separable): (usize, usize, [usize; 3], bool),
    (gpu, sd, prefix): (&Gpu, &StateDict, &str),
) -> Result<ValueId> {
    let cfg = AsppConfig {
        in_channels,
        atrous_rates: rates.to_vec(),
        out_channels,
        separable,
    };
    let aspp = Aspp::load(gpu, cfg, sd, prefix)?;
    Ok(g.add(prefix, aspp.into_graph(), &[x]))
}

impl Architecture for SmpDeepLabV3Config {
    /// Checks the configuration on its own, with smp's rules: output stride 8 or 16, depth
    /// 1 to 5, three positive rates.
    fn validate(&self) -> Result<()> {
        check_deeplab(
            (
                &self.encoder,
                self.encoder_depth,
                self.encoder_output_stride,
            ),
            1..=5,
            (
                self.in_channels,
                self.classes,
                self.decoder_channels,
                self.head_upsampling(),
            ),
            self.atrous_rates,
        )
    }

    /// Loads the encoder, `decoder.aspp`, `decoder.conv` / `decoder.bn` (or smp's older
    /// `decoder.0` / `.1` / `.2`) and `segmentation_head.0` under `prefix`.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let at = |n: &str| key(prefix, n);
        let depth = self.encoder_depth;
        let shape = (self.in_channels, depth, self.encoder_output_stride);
        let (mut g, features) = self.encoder.graph((gpu, sd, prefix), shape)?;
        let last = self.encoder.channels(self.in_channels)[depth];
        // smp's `load_state_dict` renames the `decoder.{0,1,2}` of its older releases.
        let legacy =
            !sd.contains(&at("decoder.conv.weight")) && sd.contains(&at("decoder.1.weight"));
        let [aspp_at, conv_at, bn_at] = if legacy {
            ["decoder.0", "decoder.1", "decoder.2"]
        } else {
            ["decoder.aspp", "decoder.conv", "decoder.bn"]
        }
        .map(at);
        let dc = self.decoder_channels;
        let shape = (last, dc, self.atrous_rates, self.aspp_separable);
        let y = aspp(&mut g, features[depth], shape, (gpu, sd, &aspp_at))?;
        let conv = Conv2dParams::new(dc, dc, 3)
            .padding(1)
            .bias(false)
            .activation(Activation::Relu);
        let conv = conv_bn(gpu, sd, conv, &conv_at, &bn_at, 1e-5)?;
        let y = g.add("decoder.conv", conv, &[y]);
        let head = (self.head_upsampling(), self.activation);
        let y = segmentation_head(&mut g, y, (dc, self.classes, 1), head, (gpu, sd, prefix))?;
        let deepest = (features[depth], last);
        set_smp_outputs(&mut g, y, self.aux_params, deepest, (gpu, sd, prefix))?;
        Ok(g)
    }

    /// Checks an input shape: `in_channels` channels, height and width divisible by the
    /// encoder's output stride (smp's `check_input_shape`).
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        self.encoder.check_input(input)?;
        let stride = input_stride(self.encoder_depth, self.encoder_output_stride);
        super::smp_unet::check_divisible(input, self.in_channels, stride)
    }
}

impl Architecture for SmpDeepLabV3PlusConfig {
    /// Checks the configuration on its own, with smp's rules: output stride 8 or 16, depth
    /// 3 to 5, three positive rates.
    fn validate(&self) -> Result<()> {
        check_deeplab(
            (
                &self.encoder,
                self.encoder_depth,
                self.encoder_output_stride,
            ),
            3..=5,
            (
                self.in_channels,
                self.classes,
                self.decoder_channels,
                self.upsampling,
            ),
            self.atrous_rates,
        )
    }

    /// Loads the encoder, `decoder.aspp.{0,1,2}`, `decoder.block1`, `decoder.block2` and
    /// `segmentation_head.0` under `prefix`.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let at = |n: &str| key(prefix, n);
        let depth = self.encoder_depth;
        let shape = (self.in_channels, depth, self.encoder_output_stride);
        let (mut g, features) = self.encoder.graph((gpu, sd, prefix), shape)?;
        let channels = self.encoder.channels(self.in_channels);
        let dc = self.decoder_channels;
        let shape = (channels[depth], dc, self.atrous_rates, self.aspp_separable);
        let y = aspp(
            &mut g,
            features[depth],
            shape,
            (gpu, sd, &at("decoder.aspp.0")),
        )?;
        let (conv, bn) = (at("decoder.aspp.1"), at("decoder.aspp.2"));
        let shape = (dc, dc, 1);
        let y =
            separable_conv_bn_relu(&mut g, y, "decoder.aspp.1", shape, (gpu, sd), (&conv, &bn))?;
        let scale = if self.encoder_output_stride == 16 && depth > 3 {
            4.0
        } else {
            2.0
        };
        let up = UpsampleParams::bilinear(true).scale_factor(scale);
        let y = g.add("decoder.up", Op::Upsample(up), &[y]);
        let highres = 48;
        let block1 = Conv2dParams::new(channels[2], highres, 1)
            .bias(false)
            .activation(Activation::Relu);
        let block1 = conv_bn(
            gpu,
            sd,
            block1,
            &at("decoder.block1.0"),
            &at("decoder.block1.1"),
            1e-5,
        )?;
        let skip = g.add("decoder.block1", block1, &[features[2]]);
        let joined = g.add("decoder.cat", Op::Concat, &[y, skip]);
        let (conv, bn) = (at("decoder.block2.0"), at("decoder.block2.1"));
        let shape = (dc + highres, dc, 1);
        let convs = (conv.as_str(), bn.as_str());
        let y = separable_conv_bn_relu(&mut g, joined, "decoder.block2", shape, (gpu, sd), convs)?;
        let head = (self.upsampling, self.activation);
        let y = segmentation_head(&mut g, y, (dc, self.classes, 1), head, (gpu, sd, prefix))?;
        let deepest = (features[depth], channels[depth]);
        set_smp_outputs(&mut g, y, self.aux_params, deepest, (gpu, sd, prefix))?;
        Ok(g)
    }

    /// Checks an input shape: `in_channels` channels, height and width divisible by the
    /// encoder's output stride (smp's `check_input_shape`).
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        self.encoder.check_input(input)?;
        let stride = input_stride(self.encoder_depth, self.encoder_output_stride);
        super::smp_unet::check_divisible(input, self.in_channels, stride)
    }
}
