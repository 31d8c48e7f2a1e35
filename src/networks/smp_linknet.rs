//! segmentation_models_pytorch's `Linknet` (`smp.Linknet(encoder_name, encoder_depth,
//! decoder_use_norm, in_channels, classes, activation)`) on the encoders of
//! [`SmpEncoder`]: from the encoder's last feature down, each decoder block is a 1x1
//! convolution to a quarter of its input's channels, a 4x4 stride-2 transposed convolution
//! (padding 1: twice the size), a 1x1 convolution to the next feature's channels (32 for
//! the last block), each followed by batch norm (or none) and ReLU, and the next feature
//! added; a 1x1 head to the classes, then the activation. Names are smp's
//! (`decoder.blocks.{i}.block.{0,1,2}.{0,1}`, `segmentation_head.0`).
//!
//! With `aux_params`, smp's classification head gives a second output. Not covered: the
//! norms other than batch norm (or none).

use crate::blocks::{Architecture, ConvBnAct, ConvTransposeNode, Graph, Model};
use crate::error::{positive, Result};
use crate::gpu::Gpu;
use crate::ops::conv::{Conv2dParams, ResidualJoin};
use crate::ops::conv_transpose::ConvTranspose2dParams;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

use super::smp_unet::{check_divisible, check_encoder_depth, conv2d_relu, set_smp_outputs};
use super::{HeadActivation, SmpAuxParams, SmpEncoder};

/// The configuration of an smp `Linknet`.
#[derive(Clone, Debug, PartialEq)]
pub struct SmpLinknetConfig {
    /// The encoder (`encoder_name`; [`SmpLinknetConfig::new`] takes smp's names).
    pub encoder: SmpEncoder,
    /// Stages of the encoder used, 1 to 5 (`encoder_depth`, 5); one decoder block each.
    pub encoder_depth: usize,
    /// Input channels (`in_channels`, 3).
    pub in_channels: usize,
    /// Classes (`classes`, 1).
    pub classes: usize,
    /// Batch norm after each decoder convolution (`decoder_use_norm`: `"batchnorm"` /
    /// `True`, the default), or none (`False`: the 1x1 convolutions get a bias; the
    /// transposed ones always have one).
    pub decoder_use_norm: bool,
    /// The head's activation (`activation`, none by default).
    pub activation: HeadActivation,
    /// smp's classification head (`aux_params`; `None`, the default, for none): a second
    /// output, the labels.
    pub aux_params: Option<SmpAuxParams>,
}

impl SmpLinknetConfig {
    /// `smp.Linknet(encoder_name, in_channels=in_channels, classes=classes)`; the encoder
    /// names are [`SmpEncoder::from_name`]'s.
    pub fn new(encoder_name: &str, in_channels: usize, classes: usize) -> Result<Self> {
        Ok(SmpLinknetConfig {
            encoder: SmpEncoder::from_name(encoder_name)?,
            encoder_depth: 5,
            in_channels,
            classes,
            decoder_use_norm: true,
            activation: HeadActivation::Identity,
            aux_params: None,
        })
    }
}

crate::ops::setters!(SmpLinknetConfig {
    /// Sets `aux_params` (a classification head: a second output).
    aux_params: Option<SmpAuxParams>,
    /// Sets `encoder_depth`.
    encoder_depth: usize,
    /// Sets `decoder_use_norm` (batch norm or none).
    decoder_use_norm: bool,
    /// Sets the head's activation.
    activation: HeadActivation,
});

/// An smp `Linknet` for inference: input `[N, in_channels, H, W]` with H and W divisible
/// by `2^encoder_depth`, output `[N, classes, H, W]`.
pub type SmpLinknet = Model<SmpLinknetConfig>;

impl Architecture for SmpLinknetConfig {
    /// Checks the configuration on its own: depth 1 to 5, the encoder's checks.
    fn validate(&self) -> Result<()> {
        positive(&[("in_channels", self.in_channels), ("classes", self.classes)])?;
        self.encoder.refuse_mix_transformer("Linknet")?;
        check_encoder_depth(&self.encoder, self.encoder_depth, 1..=5)
    }

    /// Loads the encoder, `decoder.blocks.{i}.block.*` and `segmentation_head.0` under
    /// `prefix`.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let at = |n: &str| key(prefix, n);
        let depth = self.encoder_depth;
        let shape = (self.in_channels, depth, 32);
        let (mut g, features) = self.encoder.graph((gpu, sd, prefix), shape)?;
        let channels = self.encoder.channels(self.in_channels);
        let norm = self.decoder_use_norm;
        // smp's widths: an empty feature (timm's ConvNeXts' stride-2 one) takes the
        // deeper one's, and joins nothing.
        let mut widths = channels.clone();
        for level in (1..depth).rev() {
            if widths[level] == 0 {
                widths[level] = widths[level + 1];
            }
        }
        let mut y = features[depth];
        for i in 0..depth {
            let level = depth - i;
            let (cin, cout) = (
                widths[level],
                if level > 1 { widths[level - 1] } else { 32 },
            );
            let mid = cin / 4;
            let block = at(&format!("decoder.blocks.{i}.block"));
            let reduce = conv2d_relu(
                gpu,
                sd,
                Conv2dParams::new(cin, mid, 1),
                &key(&block, "0"),
                norm,
            )?;
            y = g.add(key(&block, "0"), reduce, &[y]);
            let up = ConvTranspose2dParams::new(mid, mid, 4)
                .stride(2)
                .padding(1)
                .activation(Activation::Relu);
            let (conv, bn) = (key(&block, "1.0"), key(&block, "1.1"));
            let up = if norm {
                ConvTransposeNode::load_with_bn(gpu, sd, up, (&conv, &bn), 1e-5)?
            } else {
                ConvTransposeNode::load(gpu, sd, up, &conv)?
            };
            y = g.add(key(&block, "1"), up, &[y]);
            let expand = conv2d_relu(
                gpu,
                sd,
                Conv2dParams::new(mid, cout, 1),
                &key(&block, "2"),
                norm,
            )?;
            // The next feature (none after the last block) joins in the store.
            y = if level > 1 && channels[level - 1] > 0 {
                let expand = expand.with_residual(ResidualJoin::AfterActivation)?;
                g.add(key(&block, "2"), expand, &[y, features[level - 1]])
            } else {
                g.add(key(&block, "2"), expand, &[y])
            };
        }
        let head = Conv2dParams::new(32, self.classes, 1);
        let head = ConvBnAct::load(gpu, sd, head, &at("segmentation_head.0"), None, 0.0)?;
        let y = g.add("segmentation_head", head, &[y]);
        let y = self.activation.append(&mut g, y);
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
