//! ERFNet (Romera et al. 2017), the real-time segmentation network of driving and robotics
//! applications, as Eromera/erfnet_pytorch's `train/erfnet.py` defines it (`Net(num_classes)`,
//! the model of its Cityscapes checkpoint `erfnet_pretrained.pth`), under its state-dict
//! names, so that checkpoint loads as it is (saved from `nn.DataParallel`: its names start
//! with `module`, the prefix to load it with).
//!
//! - A downsampler block (`encoder.initial_block`, `encoder.layers.0` and `.6`) concatenates
//!   a 3x3 stride-2 convolution with bias (`conv`, to the output's channels less the
//!   input's) and a 2x2 max pool of its input, then batch norm (`bn`, eps 1e-3) and ReLU.
//! - A non-bottleneck-1D block (`encoder.layers.{1-5, 7-14}`, `decoder.layers.{1, 2, 4, 5}`)
//!   runs a 3x1 and a 1x3 convolution with bias (`conv3x1_1`, `conv1x3_1`; ReLU between,
//!   `bn1` and ReLU after), then the same dilated 2 to 16 times in the encoder's last eight
//!   (`conv3x1_2` along the height, `conv1x3_2` along the width; `bn2` after), adds its
//!   input and applies ReLU. Here each convolution is one dispatch, the batch norms folded
//!   in, the sum and its ReLU in the last one's store.
//! - An upsampler block (`decoder.layers.0` and `.3`) is a 3x3 stride-2 transposed
//!   convolution (padding 1, output padding 1, bias), batch norm and ReLU, one dispatch; the
//!   decoder's `output_conv`, a 2x2 stride-2 transposed convolution, gives the logits.
//! - With [`ErfNetConfig::only_encode`] the output is the encoder's `output_conv` (1x1) on
//!   its 1/8 features: PyTorch's `forward(x, only_encode=True)`, the encoder's pretraining.
//!
//! The input is `[N, 3, H, W]` with H and W multiples of 8: each downsampler's convolution
//! and pool meet only where the sides halve exactly (PyTorch fails elsewhere).

use crate::blocks::{
    Architecture, BnActNode, ConvBnAct, ConvTransposeNode, Graph, Model, Op, ValueId,
};
use crate::error::{fail_if, positive, Result};
use crate::gpu::Gpu;
use crate::ops::conv::{Conv2dParams, ResidualJoin};
use crate::ops::conv_transpose::ConvTranspose2dParams;
use crate::ops::pool::MaxPool2dParams;
use crate::ops::{setters, Activation};
use crate::weights::{key, StateDict};

/// Input channels (the first downsampler concatenates the image's 3 with 13).
const IMAGE: usize = 3;
/// ERFNet's batch norms' eps.
const EPS: f32 = 1e-3;
/// The encoder's output stride: the sides must be multiples of it.
const STRIDE: usize = 8;

/// The configuration of an ERFNet: `Net(num_classes)` and its forward's `only_encode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ErfNetConfig {
    /// Classes of the logits (`num_classes`; 20 for the Cityscapes checkpoint).
    pub num_classes: usize,
    /// The encoder's logits at 1/8 (`forward(x, only_encode=True)`, default `false`).
    pub only_encode: bool,
}

impl ErfNetConfig {
    /// `Net(num_classes)`: the decoder's logits at the input's size.
    pub fn new(num_classes: usize) -> Self {
        ErfNetConfig {
            num_classes,
            only_encode: false,
        }
    }
}

setters!(ErfNetConfig {
    /// Sets whether the output is the encoder's 1/8 logits (`only_encode`).
    only_encode: bool,
});

/// An ERFNet: input `[N, 3, H, W]` (H and W multiples of 8), output the logits
/// `[N, num_classes, H, W]` (with `only_encode`, `[N, num_classes, H / 8, W / 8]`).
pub type ErfNet = Model<ErfNetConfig>;

/// Where the weights are and the graph being built.
struct Builder<'a> {
    gpu: &'a Gpu,
    sd: &'a StateDict,
    prefix: &'a str,
    g: Graph,
}

impl Builder<'_> {
    /// The convolution `{name}.{conv}` (with bias), with the batch norm `{name}.{bn}` when
    /// given.
    fn conv(&self, name: &str, conv: &str, bn: Option<&str>, p: Conv2dParams) -> Result<ConvBnAct> {
        let at = |n: &str| key(self.prefix, &key(name, n));
        let bn = bn.map(at);
        ConvBnAct::load(self.gpu, self.sd, p, &at(conv), bn.as_deref(), EPS)
    }

    /// `DownsamplerBlock(cin, cout)` under `name` on `x`.
    fn downsampler(
        &mut self,
        name: &str,
        x: ValueId,
        (cin, cout): (usize, usize),
    ) -> Result<ValueId> {
        let p = Conv2dParams::new(cin, cout - cin, 3).stride(2).padding(1);
        let conv = self.conv(name, "conv", None, p)?;
        let main = self.g.add(key(name, "conv"), conv, &[x]);
        let pool = Op::MaxPool(MaxPool2dParams::new(2));
        let pooled = self.g.add_multi(key(name, "pool"), pool, &[x], 2)[0];
        let joined = self.g.add(key(name, "cat"), Op::Concat, &[main, pooled]);
        let bn = key(self.prefix, &key(name, "bn"));
        let norm = BnActNode::load(self.gpu, self.sd, (cout, EPS), &bn, Activation::Relu)?;
        Ok(self.g.add(key(name, "bn"), norm, &[joined]))
    }

    /// `non_bottleneck_1d(channels, _, dilated)` under `name` on `x`.
    fn non_bottleneck(&mut self, name: &str, x: ValueId, c: usize, d: usize) -> Result<ValueId> {
        let relu = Activation::Relu;
        let layers = [
            (
                "conv3x1_1",
                None,
                Conv2dParams::new(c, c, (3, 1)).padding((1, 0)),
            ),
            (
                "conv1x3_1",
                Some("bn1"),
                Conv2dParams::new(c, c, (1, 3)).padding((0, 1)),
            ),
            (
                "conv3x1_2",
                None,
                Conv2dParams::new(c, c, (3, 1))
                    .padding((d, 0))
                    .dilation((d, 1)),
            ),
        ];
        let mut y = x;
        for (conv, bn, p) in layers {
            let layer = self.conv(name, conv, bn, p.activation(relu))?;
            y = self.g.add(key(name, conv), layer, &[y]);
        }
        let p = Conv2dParams::new(c, c, (1, 3))
            .padding((0, d))
            .dilation((1, d));
        let last = self
            .conv(name, "conv1x3_2", Some("bn2"), p)?
            .with_residual(ResidualJoin::AddThen(relu))?;
        Ok(self.g.add(key(name, "conv1x3_2"), last, &[y, x]))
    }

    /// `UpsamplerBlock(cin, cout)` under `name` on `x`.
    fn upsampler(
        &mut self,
        name: &str,
        x: ValueId,
        (cin, cout): (usize, usize),
    ) -> Result<ValueId> {
        let p = ConvTranspose2dParams::new(cin, cout, 3)
            .stride(2)
            .padding(1)
            .output_padding(1)
            .activation(Activation::Relu);
        let (conv, bn) = (
            key(self.prefix, &key(name, "conv")),
            key(self.prefix, &key(name, "bn")),
        );
        let layer = ConvTransposeNode::load_with_bn(self.gpu, self.sd, p, (&conv, &bn), EPS)?;
        Ok(self.g.add(key(name, "conv"), layer, &[x]))
    }
}

impl Architecture for ErfNetConfig {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        positive(&[("num_classes", self.num_classes)])
    }

    /// Loads `encoder.*` and, unless `only_encode`, `decoder.*` (with `only_encode`, the
    /// encoder's `output_conv` instead).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let mut b = Builder {
            gpu,
            sd,
            prefix,
            g: Graph::new(),
        };
        let image = b.g.input();
        let mut x = b.downsampler("encoder.initial_block", image, (IMAGE, 16))?;
        x = b.downsampler("encoder.layers.0", x, (16, 64))?;
        for i in 1..=5 {
            x = b.non_bottleneck(&format!("encoder.layers.{i}"), x, 64, 1)?;
        }
        x = b.downsampler("encoder.layers.6", x, (64, 128))?;
        for (i, d) in (7..).zip([2, 4, 8, 16, 2, 4, 8, 16]) {
            x = b.non_bottleneck(&format!("encoder.layers.{i}"), x, 128, d)?;
        }
        let classes = self.num_classes;
        let out = if self.only_encode {
            let p = Conv2dParams::new(128, classes, 1);
            let layer = b.conv("encoder", "output_conv", None, p)?;
            b.g.add("encoder.output_conv", layer, &[x])
        } else {
            x = b.upsampler("decoder.layers.0", x, (128, 64))?;
            x = b.non_bottleneck("decoder.layers.1", x, 64, 1)?;
            x = b.non_bottleneck("decoder.layers.2", x, 64, 1)?;
            x = b.upsampler("decoder.layers.3", x, (64, 16))?;
            x = b.non_bottleneck("decoder.layers.4", x, 16, 1)?;
            x = b.non_bottleneck("decoder.layers.5", x, 16, 1)?;
            let p = ConvTranspose2dParams::new(16, classes, 2).stride(2);
            let name = "decoder.output_conv";
            let layer = ConvTransposeNode::load(gpu, sd, p, &key(prefix, name))?;
            b.g.add(name, layer, &[x])
        };
        b.g.set_outputs(&[out]);
        Ok(b.g)
    }

    /// Checks an input shape: 3 channels, height and width positive multiples of 8.
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        crate::ops::check_channels(input, IMAGE)?;
        let (h, w) = (input[2], input[3]);
        let halves = |s: usize| s > 0 && s.is_multiple_of(STRIDE);
        fail_if(!halves(h) || !halves(w), "input", || {
            format!(
                "height and width must be positive multiples of {STRIDE} (each downsampler's \
                 convolution and pool meet only where the sides halve exactly), got {input:?}"
            )
        })
    }
}
