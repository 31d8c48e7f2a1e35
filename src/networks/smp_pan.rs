//! segmentation_models_pytorch's `PAN` (`smp.PAN(encoder_name, encoder_depth,
//! encoder_output_stride, decoder_channels, decoder_interpolation, in_channels, classes,
//! activation, upsampling)`), the Pyramid Attention Network, on the encoders of
//! [`SmpEncoder`] (dilated past `encoder_output_stride`, 16 by default, as smp does).
//!
//! The decoder: a feature pyramid attention block (`decoder.fpa`) on the deepest feature
//! — a 1x1 branch (`mid`) gated per pixel by a one-channel pyramid (three 2x2 max pools
//! with 7x7, 5x5 and two 3x3 convolutions, merged coarse to fine with bilinear resizes,
//! `align_corners=True`), plus a global-pool branch (`branch1`) — then one global
//! attention upsample block per shallower feature down to stride 4 (`decoder.gau3`,
//! `gau2`, `gau1`): a 3x3 convolution of the feature, gated per channel by the sigmoid of
//! a 1x1 convolution of the pooled deeper map, plus the deeper map resized to it
//! (`decoder_interpolation`). Every convolution has a bias and batch norm. A 3x3 head to
//! the classes (`segmentation_head.0`), a bilinear resize (`align_corners=True`) by
//! `upsampling`, the activation. With `aux_params`, smp's classification head gives a
//! second output.

use crate::blocks::{Architecture, ConvBnAct, Graph, Model, Op, ValueId};
use crate::error::{fail_if, positive, Result};
use crate::gpu::Gpu;
use crate::ops::conv::Conv2dParams;
use crate::ops::pool::{GlobalPool, MaxPool2dParams};
use crate::ops::upsample::UpsampleMode;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

use super::smp_unet::{check_divisible, check_smp_rules, segmentation_head, set_smp_outputs};
use super::{HeadActivation, SmpAuxParams, SmpEncoder};

/// The configuration of an smp `PAN`.
#[derive(Clone, Debug, PartialEq)]
pub struct SmpPanConfig {
    /// The encoder (`encoder_name`; [`SmpPanConfig::new`] takes smp's names).
    pub encoder: SmpEncoder,
    /// Stages of the encoder used, 3 to 5 (`encoder_depth`, 5).
    pub encoder_depth: usize,
    /// The encoder's output stride, 16 or 32 (`encoder_output_stride`, 16): with 16 the
    /// last stage is dilated instead of strided.
    pub encoder_output_stride: usize,
    /// Input channels (`in_channels`, 3).
    pub in_channels: usize,
    /// Classes (`classes`, 1).
    pub classes: usize,
    /// Channels of the decoder (`decoder_channels`, 32).
    pub decoder_channels: usize,
    /// How the attention upsample blocks resize the deeper map (`decoder_interpolation`):
    /// smp's `"bilinear"`, the default, aligns the corners (`Bilinear { align_corners:
    /// true }`); its other modes do not (`"bicubic"` is `Bicubic { align_corners: false
    /// }`).
    pub decoder_interpolation: UpsampleMode,
    /// The head's bilinear resize factor (`upsampling`, 4; 1 for none).
    pub upsampling: usize,
    /// The head's activation, after its resize (`activation`, none by default).
    pub activation: HeadActivation,
    /// smp's classification head (`aux_params`; `None`, the default, for none): a second
    /// output, the labels.
    pub aux_params: Option<SmpAuxParams>,
}

impl SmpPanConfig {
    /// `smp.PAN(encoder_name, in_channels=in_channels, classes=classes)`; the encoder
    /// names are [`SmpEncoder::from_name`]'s.
    pub fn new(encoder_name: &str, in_channels: usize, classes: usize) -> Result<Self> {
        Ok(SmpPanConfig {
            encoder: SmpEncoder::from_name(encoder_name)?,
            encoder_depth: 5,
            encoder_output_stride: 16,
            in_channels,
            classes,
            decoder_channels: 32,
            decoder_interpolation: ALIGNED,
            upsampling: 4,
            activation: HeadActivation::Identity,
            aux_params: None,
        })
    }

    /// The stride of the deepest feature (smp's `encoder.output_stride`).
    fn stride(&self) -> usize {
        self.encoder_output_stride.min(1 << self.encoder_depth)
    }
}

crate::ops::setters!(SmpPanConfig {
    /// Sets `aux_params` (a classification head: a second output).
    aux_params: Option<SmpAuxParams>,
    /// Sets `encoder_depth`.
    encoder_depth: usize,
    /// Sets `encoder_output_stride` (16 or 32).
    encoder_output_stride: usize,
    /// Sets `decoder_channels`.
    decoder_channels: usize,
    /// Sets `decoder_interpolation`.
    decoder_interpolation: UpsampleMode,
    /// Sets the head's `upsampling`.
    upsampling: usize,
    /// Sets the head's activation.
    activation: HeadActivation,
});

/// An smp `PAN` for inference: input `[N, in_channels, H, W]` with H and W divisible by
/// the encoder's output stride and at least 8 times it, output `[N, classes, H, W]` with
/// the default `upsampling`.
pub type SmpPan = Model<SmpPanConfig>;

/// The feature pyramid attention's resizes: `mode="bilinear", align_corners=True`.
const ALIGNED: UpsampleMode = UpsampleMode::Bilinear {
    align_corners: true,
};

impl Architecture for SmpPanConfig {
    /// Checks the configuration on its own, with smp's rules: output stride 16 or 32,
    /// depth 3 to 5, the encoder's checks.
    fn validate(&self) -> Result<()> {
        positive(&[
            ("in_channels", self.in_channels),
            ("classes", self.classes),
            ("decoder_channels", self.decoder_channels),
            ("upsampling", self.upsampling),
        ])?;
        let os = self.encoder_output_stride;
        fail_if(os != 16 && os != 32, "encoder_output_stride", || {
            format!("PAN supports an output stride of 16 or 32, got {os}")
        })?;
        check_smp_rules(
            &self.encoder,
            (self.encoder_depth, 3..=5),
            self.decoder_interpolation,
        )
    }

    /// Loads the encoder, `decoder.fpa`, `decoder.gau{k}` and `segmentation_head.0` under
    /// `prefix`.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let at = |n: &str| key(prefix, n);
        let depth = self.encoder_depth;
        let dc = self.decoder_channels;
        let shape = (self.in_channels, depth, self.encoder_output_stride);
        let (mut g, features) = self.encoder.graph((gpu, sd, prefix), shape)?;
        let channels = self.encoder.channels(self.in_channels);
        let ctx = (gpu, sd);
        let deepest = (features[depth], channels[depth]);
        let mut y = feature_pyramid_attention(&mut g, ctx, deepest, dc, &at("decoder.fpa"))?;
        // smp's gau3 (stride 16) down to gau1 (stride 4), as deep as the encoder goes.
        for level in (2..depth).rev() {
            let name = at(&format!("decoder.gau{}", level - 1));
            let low = (features[level], channels[level]);
            let mode = self.decoder_interpolation;
            y = attention_upsample(&mut g, ctx, low, (y, dc), mode, &name)?;
        }
        let shape = (dc, self.classes, 3);
        let head = (self.upsampling, self.activation);
        let y = segmentation_head(&mut g, y, shape, head, (gpu, sd, prefix))?;
        set_smp_outputs(&mut g, y, self.aux_params, deepest, (gpu, sd, prefix))?;
        Ok(g)
    }

    /// Checks an input shape: `in_channels` channels, height and width divisible by the
    /// encoder's output stride (smp's `check_input_shape`), and a deepest feature of at
    /// least 8x8, which the pyramid's three 2x2 pools need (PyTorch fails on less).
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        self.encoder.check_input(input)?;
        let stride = self.stride();
        check_divisible(input, self.in_channels, stride)?;
        fail_if(
            input[2] < 8 * stride || input[3] < 8 * stride,
            "input",
            || {
                format!(
                    "height and width must be at least {} (8 times the output stride {stride}): \
                 the feature pyramid attention pools the deepest feature three times, got \
                 {input:?}",
                    8 * stride
                )
            },
        )
    }
}

/// smp PAN's `ConvBnRelu` under `name`: `{name}.conv` (with a bias), `{name}.bn`, ReLU
/// when `relu`.
fn conv_bn_relu(
    (gpu, sd): (&Gpu, &StateDict),
    params: Conv2dParams,
    name: &str,
    relu: bool,
) -> Result<ConvBnAct> {
    let act = if relu {
        Activation::Relu
    } else {
        Activation::None
    };
    let params = params.bias(true).activation(act);
    let (conv, bn) = (key(name, "conv"), key(name, "bn"));
    ConvBnAct::load(gpu, sd, params, &conv, Some(&bn), 1e-5)
}

/// A `k`x`k` convolution with "same" padding, `cin` to `cout` channels.
fn square(cin: usize, cout: usize, k: usize) -> Conv2dParams {
    Conv2dParams::new(cin, cout, k).padding(k / 2)
}

/// smp's `FPABlock` under `name` on `feature` (`c` channels), `out` channels.
fn feature_pyramid_attention(
    g: &mut Graph,
    ctx: (&Gpu, &StateDict),
    (feature, c): (ValueId, usize),
    out: usize,
    name: &str,
) -> Result<ValueId> {
    let at = |n: &str| key(name, n);
    let conv = |g: &mut Graph, x: ValueId, params: Conv2dParams, n: &str| -> Result<_> {
        Ok(g.add(at(n), conv_bn_relu(ctx, params, &at(n), true)?, &[x]))
    };
    let resize =
        |g: &mut Graph, x: ValueId, like: ValueId, n: &str| g.resize_like(at(n), ALIGNED, x, like);
    let pool = |g: &mut Graph, x: ValueId, n: &str| {
        g.add(at(n), Op::MaxPool(MaxPool2dParams::new(2).stride(2)), &[x])
    };
    let pooled = g.add(at("branch1.0"), Op::GlobalPool(GlobalPool::Avg), &[feature]);
    let global = conv(g, pooled, Conv2dParams::new(c, out, 1), "branch1.1")?;
    let global = resize(g, global, feature, "branch1.resize");
    let middle = conv(g, feature, Conv2dParams::new(c, out, 1), "mid.0")?;
    let x1 = pool(g, feature, "down1.0");
    let x1 = conv(g, x1, square(c, 1, 7), "down1.1")?;
    let x2 = pool(g, x1, "down2.0");
    let x2 = conv(g, x2, square(1, 1, 5), "down2.1")?;
    let x3 = pool(g, x2, "down3.0");
    let x3 = conv(g, x3, square(1, 1, 3), "down3.1")?;
    let x3 = conv(g, x3, square(1, 1, 3), "down3.2")?;
    let x3 = resize(g, x3, x2, "down3.resize");
    let x2 = conv(g, x2, square(1, 1, 5), "conv2")?;
    let x = g.add(at("add2"), Op::Add, &[x2, x3]);
    let x = resize(g, x, x1, "resize2");
    let x1 = conv(g, x1, square(1, 1, 7), "conv1")?;
    let x = g.add(at("add1"), Op::Add, &[x, x1]);
    let x = resize(g, x, feature, "resize1");
    let gated = g.add(at("gate"), Op::ScaleSpatial(Activation::None), &[middle, x]);
    Ok(g.add(name.to_string(), Op::Add, &[gated, global]))
}

/// smp's `GAUBlock` under `name`: the shallower feature `low` (`c` channels) through a
/// 3x3 `conv2`, gated per channel by `sigmoid(conv1(pool(high)))`, plus `high` resized to
/// it with `mode`.
fn attention_upsample(
    g: &mut Graph,
    ctx: (&Gpu, &StateDict),
    (low, c): (ValueId, usize),
    (high, out): (ValueId, usize),
    mode: UpsampleMode,
    name: &str,
) -> Result<ValueId> {
    let at = |n: &str| key(name, n);
    let resized = g.resize_like(at("resize"), mode, high, low);
    let conv2 = conv_bn_relu(ctx, square(c, out, 3), &at("conv2"), true)?;
    let x = g.add(at("conv2"), conv2, &[low]);
    let pooled = g.add(at("conv1.0"), Op::GlobalPool(GlobalPool::Avg), &[high]);
    let conv1 = conv_bn_relu(ctx, Conv2dParams::new(out, out, 1), &at("conv1.1"), false)?;
    let logits = g.add(at("conv1.1"), conv1, &[pooled]);
    Ok(g.add(
        name.to_string(),
        Op::ScaleChannelsAdd {
            gate: Activation::Sigmoid,
            act: Activation::None,
        },
        &[x, logits, resized],
    ))
}
