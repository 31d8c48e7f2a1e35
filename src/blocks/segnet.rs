//! SegNet's encoder-decoder stage: 3x3 convolutions with batch norm and ReLU, 2x2 max
//! pooling that keeps its indices, and the decoder that max-unpools with those indices
//! before its own convolutions.

use super::{conv_bn, Architecture, ConvBnAct, Graph, Model, Op, ValueId};
use crate::error::{positive, Result};
use crate::gpu::Gpu;
use crate::ops::conv::Conv2dParams;
use crate::ops::pool::{MaxPool2dParams, MaxUnpool2dParams};
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// A SegNet stage: an encoder of `encoder_convs` 3x3 convolutions `in_channels ->
/// channels -> channels ...`, 2x2 max pooling with indices, max unpooling with those
/// indices back to the size before pooling (odd sizes included), and a decoder of
/// `decoder_convs` 3x3 convolutions `channels -> ... -> out_channels` (the last one
/// changes the width). Every convolution has batch norm and ReLU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegNetStageConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Channels of the encoder's convolutions (and the decoder's input).
    pub channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Convolutions before the pooling.
    pub encoder_convs: usize,
    /// Convolutions after the unpooling.
    pub decoder_convs: usize,
}

/// A SegNet encoder-decoder stage for inference: the indices never leave the GPU.
pub type SegNetStage = Model<SegNetStageConfig>;

/// `n` 3x3 convolutions with BN and ReLU, `{prefix}.{i}.0` / `{prefix}.{i}.1`, with
/// `(in, out)` channels from `widths`, appended to `g` after `x`.
pub(crate) fn conv_stack(
    g: &mut Graph,
    x: ValueId,
    (gpu, sd, prefix): (&Gpu, &StateDict, &str),
    widths: impl Iterator<Item = (usize, usize)>,
) -> Result<ValueId> {
    let mut y = x;
    for (i, (cin, cout)) in widths.enumerate() {
        let p = Conv2dParams::new(cin, cout, 3)
            .padding(1)
            .bias(false)
            .activation(Activation::Relu);
        let name = key(prefix, &i.to_string());
        let layer: ConvBnAct = conv_bn(gpu, sd, p, &key(&name, "0"), &key(&name, "1"), 1e-5)?;
        y = g.add(name, layer, &[y]);
    }
    Ok(y)
}

impl Architecture for SegNetStageConfig {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        positive(&[
            ("encoder_convs", self.encoder_convs),
            ("decoder_convs", self.decoder_convs),
        ])
    }

    /// Loads `encoder.{i}.0` / `.1` and `decoder.{i}.0` / `.1`.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let cfg = self;
        let mut g = Graph::new();
        let x = g.input();
        let c = cfg.channels;
        let enc = (gpu, sd, key(prefix, "encoder"));
        let widths = (0..cfg.encoder_convs).map(|i| (if i == 0 { cfg.in_channels } else { c }, c));
        let before = conv_stack(&mut g, x, (enc.0, enc.1, &enc.2), widths)?;
        let pool = MaxPool2dParams::new(2);
        let pooled = g.add_multi("pool", Op::MaxPool(pool), &[before], 2);
        let unpool = Op::MaxUnpool(MaxUnpool2dParams::from_pool(&pool));
        // The unpooling reads only the pre-pool map's shape, so that map's buffer is
        // free for the stages in between.
        let up = g.add_sized("unpool", unpool, &[pooled[0], pooled[1]], &[before]);
        let last = cfg.decoder_convs - 1;
        let widths =
            (0..cfg.decoder_convs).map(|i| (c, if i == last { cfg.out_channels } else { c }));
        let y = conv_stack(&mut g, up, (gpu, sd, &key(prefix, "decoder")), widths)?;
        g.set_outputs(&[y]);
        Ok(g)
    }
}
