//! ENet (Paszke et al. 2016), the real-time segmentation network of embedded and robotics
//! applications, as davidtvs/PyTorch-ENet's `models/enet.py` defines it today (since its
//! 2021 revision, the one its CamVid and Cityscapes checkpoints come from), under its
//! state-dict names, so those checkpoints load as they are:
//! `ENet(num_classes, encoder_relu=False, decoder_relu=True)`.
//!
//! - The initial block (`initial_block`) concatenates a 3x3 stride-2 convolution of the
//!   image (13 channels, `main_branch`) and its 3x3 stride-2 max pool (3 channels), then
//!   batch norm (`batch_norm`) and the activation (`out_activation`).
//! - A downsampling bottleneck (`downsample1_0`, `downsample2_0`) max-pools its input (2x2,
//!   indices kept), pads it with zero channels to the extension branch's width and adds the
//!   branch: a 2x2 stride-2 projection, a 3x3 convolution and a 1x1 expansion
//!   (`ext_conv1` .. `ext_conv3`), each with batch norm and activation; the sum takes the
//!   block's last activation (`out_activation`).
//! - A regular bottleneck (`regular*`, `dilated*`, `asymmetric*`) adds to its input a 1x1
//!   projection to a quarter of the channels, a 3x3 convolution (dilated), or a 5x1 and a
//!   1x5 one (asymmetric), and a 1x1 expansion.
//! - An upsampling bottleneck (`upsample4_0`, `upsample5_0`) unpools a 1x1 projection of
//!   its input (`main_conv1`, batch norm, no activation) with its downsampling bottleneck's
//!   indices to that bottleneck's input size, and adds a 1x1 projection, a 2x2 stride-2
//!   transposed convolution sized to the same (`ext_tconv1`, `ext_tconv1_bnorm`,
//!   `ext_tconv1_activation`) and a 1x1 expansion with batch norm but no activation
//!   (`ext_conv2`).
//! - A 3x3 stride-2 transposed convolution (`transposed_conv`) brings the logits to the
//!   input's size.
//!
//! Every activation is its own module: `nn.ReLU()`, or `nn.PReLU()` with one learned
//! slope (`{module}.weight`), which runs here as a leaky ReLU with that slope in the store
//! of the convolution it follows. The ReLU or PReLU that ends each bottleneck's branch and
//! the one after the sum run in the same store
//! ([`ResidualJoin::AfterActivationThen`]); dropout is the identity at inference.
//!
//! The input is `[N, 3, H, W]` with H and W at least 7 (after the initial block and two
//! downsamplings a row and a column must remain); odd sizes run as in PyTorch, whose
//! unpooling and sized transposed convolutions bring each decoder stage back to the exact
//! size of its encoder stage.

use crate::blocks::{
    conv_bn, Architecture, BnActNode, ConvBnAct, ConvTransposeNode, Graph, Model, Op, ValueId,
};
use crate::error::{fail_if, positive, Result};
use crate::gpu::Gpu;
use crate::ops::channel::ParamActivation;
use crate::ops::conv::{Conv2dParams, ResidualJoin};
use crate::ops::conv_transpose::ConvTranspose2dParams;
use crate::ops::pool::{MaxPool2dParams, MaxUnpool2dParams};
use crate::ops::{setters, Activation};
use crate::weights::{key, StateDict};

/// Input channels (the initial block's concatenation assumes an RGB image).
const IMAGE: usize = 3;
/// The initial block's channels (its convolution gives all but the image's 3).
const INITIAL: usize = 16;
/// Batch norm's eps (PyTorch's default).
const EPS: f32 = 1e-5;
/// A bottleneck's inner channels are its input's over this (`internal_ratio`).
const INTERNAL_RATIO: usize = 4;
/// The smallest height and width: two rows and columns after the initial block's
/// halving and two more halvings.
const LEAST_SIDE: usize = 7;

/// The configuration of an ENet: `ENet(num_classes, encoder_relu, decoder_relu)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EnetConfig {
    /// Classes of the logits (`num_classes`; 12 for CamVid, 20 for Cityscapes as the
    /// checkpoints were trained).
    pub num_classes: usize,
    /// ReLU in the initial block and the encoder's bottlenecks (`encoder_relu`, default
    /// `false`: PReLU).
    pub encoder_relu: bool,
    /// ReLU in the decoder's bottlenecks (`decoder_relu`, default `true`; `false`: PReLU).
    pub decoder_relu: bool,
}

impl EnetConfig {
    /// `ENet(num_classes)`: PReLU in the encoder, ReLU in the decoder.
    pub fn new(num_classes: usize) -> Self {
        EnetConfig {
            num_classes,
            encoder_relu: false,
            decoder_relu: true,
        }
    }
}

setters!(EnetConfig {
    /// Sets whether the encoder uses ReLU rather than PReLU (`encoder_relu`).
    encoder_relu: bool,
    /// Sets whether the decoder uses ReLU rather than PReLU (`decoder_relu`).
    decoder_relu: bool,
});

/// An ENet: input `[N, 3, H, W]` (H and W at least 7), output the logits
/// `[N, num_classes, H, W]`.
pub type Enet = Model<EnetConfig>;

/// The kind of a regular bottleneck's middle convolution.
#[derive(Clone, Copy)]
enum Middle {
    /// A 3x3 convolution with this dilation (and as much padding).
    Dilated(usize),
    /// A 5x1 and a 1x5 convolution, padding 2.
    Asymmetric,
}

/// Stages 2 and 3: each bottleneck's name and middle convolution (stage 2 numbers them
/// from 1, stage 3 from 0).
const STAGE_PATTERN: [(&str, Middle); 8] = [
    ("regular", Middle::Dilated(1)),
    ("dilated", Middle::Dilated(2)),
    ("asymmetric", Middle::Asymmetric),
    ("dilated", Middle::Dilated(4)),
    ("regular", Middle::Dilated(1)),
    ("dilated", Middle::Dilated(8)),
    ("asymmetric", Middle::Asymmetric),
    ("dilated", Middle::Dilated(16)),
];

/// One activation module: a ReLU, or a PReLU with its learned slope.
#[derive(Clone, Copy)]
struct Act {
    activation: Activation,
    param: Option<ParamActivation>,
    /// Learned parameters (the PReLU's slope).
    learned: u64,
}

/// Where the weights are and the graph being built.
struct Builder<'a> {
    gpu: &'a Gpu,
    sd: &'a StateDict,
    prefix: &'a str,
    g: Graph,
}

impl Builder<'_> {
    /// The activation module `name`: ReLU, or the PReLU whose slope is `{name}.weight`.
    fn act(&self, relu: bool, name: &str) -> Result<Act> {
        if relu {
            return Ok(Act {
                activation: Activation::Relu,
                param: None,
                learned: 0,
            });
        }
        let slope = self.sd.get1(&key(self.prefix, &key(name, "weight")), 1)?[0];
        let param = ParamActivation::LeakyRelu {
            negative_slope: slope,
        };
        param.validate()?;
        Ok(Act {
            activation: Activation::None,
            param: Some(param),
            learned: 1,
        })
    }

    /// The convolution `{seq}.{i}` (no bias) with its batch norm `{seq}.{i + 1}` and, with
    /// `act`, that activation after them (its PReLU slope counted as the layer's).
    fn conv(&self, seq: &str, i: usize, p: Conv2dParams, act: Option<Act>) -> Result<ConvBnAct> {
        let at = |j: usize| key(self.prefix, &format!("{seq}.{j}"));
        let p = p.bias(false);
        let Some(act) = act else {
            return conv_bn(self.gpu, self.sd, p, &at(i), &at(i + 1), EPS);
        };
        let p = Conv2dParams {
            activation: act.activation,
            param_activation: act.param,
            ..p
        };
        Ok(conv_bn(self.gpu, self.sd, p, &at(i), &at(i + 1), EPS)?
            .with_activation_params(act.learned))
    }

    /// The convolution `{seq}.{i}` with its batch norm and its own activation
    /// `{seq}.{i + 2}` (a `Sequential`'s conv, norm and ReLU or PReLU).
    fn conv_act(&self, seq: &str, i: usize, p: Conv2dParams, relu: bool) -> Result<ConvBnAct> {
        self.conv(seq, i, p, Some(self.seq_act(relu, seq, i)?))
    }

    /// The activation `{seq}.{i + 2}` of the convolution `{seq}.{i}`.
    fn seq_act(&self, relu: bool, seq: &str, i: usize) -> Result<Act> {
        self.act(relu, &format!("{seq}.{}", i + 2))
    }

    /// The branch's last convolution `{name}.ext_conv3.0` (1x1, batch norm, activation) on
    /// `y`, with the block's input `skip` added and `out_activation` applied in its store.
    fn expand_and_join(
        &mut self,
        name: &str,
        (y, skip): (ValueId, ValueId),
        (inner, out): (usize, usize),
        relu: bool,
    ) -> Result<ValueId> {
        let seq = key(name, "ext_conv3");
        let own = self.seq_act(relu, &seq, 0)?;
        let then = self.act(relu, &key(name, "out_activation"))?;
        let layer = self
            .conv(&seq, 0, Conv2dParams::new(inner, out, 1), Some(own))?
            .with_activation_params(own.learned + then.learned)
            .with_residual(ResidualJoin::AfterActivationThen(
                then.activation,
                then.param,
            ))?;
        Ok(self.g.add(seq, layer, &[y, skip]))
    }

    /// `InitialBlock(3, 16, relu)` under `initial_block` on the image `x`.
    fn initial(&mut self, x: ValueId, relu: bool) -> Result<ValueId> {
        let name = "initial_block";
        let p = Conv2dParams::new(IMAGE, INITIAL - IMAGE, 3)
            .stride(2)
            .padding(1)
            .bias(false);
        let conv_name = key(name, "main_branch");
        let conv = ConvBnAct::load(
            self.gpu,
            self.sd,
            p,
            &key(self.prefix, &conv_name),
            None,
            0.0,
        )?;
        let main = self.g.add(conv_name, conv, &[x]);
        let pool = MaxPool2dParams::new(3).stride(2).padding(1);
        let ext = self
            .g
            .add_multi(key(name, "ext_branch"), Op::MaxPool(pool), &[x], 2)[0];
        let joined = self.g.add(key(name, "cat"), Op::Concat, &[main, ext]);
        let act = self.act(relu, &key(name, "out_activation"))?;
        let bn = key(self.prefix, &key(name, "batch_norm"));
        let mut norm = BnActNode::load(self.gpu, self.sd, (INITIAL, EPS), &bn, act.activation)?;
        if let Some(p) = act.param {
            norm = norm.then(p, act.learned)?;
        }
        Ok(self.g.add(key(name, "batch_norm"), norm, &[joined]))
    }

    /// `DownsamplingBottleneck(cin, cout, return_indices=True, relu)` under `name` on `x`:
    /// the output and the pooling's indices.
    fn downsample(
        &mut self,
        name: &str,
        x: ValueId,
        (cin, cout): (usize, usize),
        relu: bool,
    ) -> Result<(ValueId, ValueId)> {
        let inner = cin / INTERNAL_RATIO;
        let pooled = self.g.add_multi(
            key(name, "main_max1"),
            Op::MaxPool(bottleneck_pool()),
            &[x],
            2,
        );
        let main = self
            .g
            .add(key(name, "pad"), Op::PadChannels(cout), &[pooled[0]]);
        let seq = key(name, "ext_conv1");
        let p = Conv2dParams::new(cin, inner, 2).stride(2);
        let layer = self.conv_act(&seq, 0, p, relu)?;
        let y = self.g.add(seq, layer, &[x]);
        let seq = key(name, "ext_conv2");
        let p = Conv2dParams::new(inner, inner, 3).padding(1);
        let layer = self.conv_act(&seq, 0, p, relu)?;
        let y = self.g.add(seq, layer, &[y]);
        let out = self.expand_and_join(name, (y, main), (inner, cout), relu)?;
        Ok((out, pooled[1]))
    }

    /// `RegularBottleneck(channels, ...)` under `name` on `x` with the middle convolution
    /// `middle`.
    fn regular(
        &mut self,
        name: &str,
        x: ValueId,
        channels: usize,
        middle: Middle,
        relu: bool,
    ) -> Result<ValueId> {
        let inner = channels / INTERNAL_RATIO;
        let seq = key(name, "ext_conv1");
        let p = Conv2dParams::new(channels, inner, 1);
        let layer = self.conv_act(&seq, 0, p, relu)?;
        let mut y = self.g.add(seq, layer, &[x]);
        let seq = key(name, "ext_conv2");
        let convs = match middle {
            Middle::Dilated(d) => {
                vec![(0, Conv2dParams::new(inner, inner, 3).padding(d).dilation(d))]
            }
            Middle::Asymmetric => vec![
                (0, Conv2dParams::new(inner, inner, (5, 1)).padding((2, 0))),
                (3, Conv2dParams::new(inner, inner, (1, 5)).padding((0, 2))),
            ],
        };
        for (i, p) in convs {
            let layer = self.conv_act(&seq, i, p, relu)?;
            y = self.g.add(format!("{seq}.{i}"), layer, &[y]);
        }
        self.expand_and_join(name, (y, x), (inner, channels), relu)
    }

    /// `UpsamplingBottleneck(cin, cout, relu)` under `name` on `x`, unpooling with
    /// `indices` to the size of `like` (its downsampling bottleneck's input).
    fn upsample(
        &mut self,
        name: &str,
        (x, indices, like): (ValueId, ValueId, ValueId),
        (cin, cout): (usize, usize),
        relu: bool,
    ) -> Result<ValueId> {
        let inner = cin / INTERNAL_RATIO;
        let seq = key(name, "main_conv1");
        let layer = self.conv(&seq, 0, Conv2dParams::new(cin, cout, 1), None)?;
        let main = self.g.add(seq, layer, &[x]);
        let unpool = Op::MaxUnpool(MaxUnpool2dParams::from_pool(&bottleneck_pool()));
        let main = self
            .g
            .add_sized(key(name, "main_unpool1"), unpool, &[main, indices], &[like]);
        let seq = key(name, "ext_conv1");
        let p = Conv2dParams::new(cin, inner, 1);
        let layer = self.conv_act(&seq, 0, p, relu)?;
        let y = self.g.add(seq, layer, &[x]);
        let act = self.act(relu, &key(name, "ext_tconv1_activation"))?;
        let p = ConvTranspose2dParams {
            activation: act.activation,
            param_activation: act.param,
            ..ConvTranspose2dParams::new(inner, inner, 2)
                .stride(2)
                .bias(false)
        };
        let (conv, bn) = (key(name, "ext_tconv1"), key(name, "ext_tconv1_bnorm"));
        let (conv_at, bn_at) = (key(self.prefix, &conv), key(self.prefix, &bn));
        let tconv = ConvTransposeNode::load_with_bn(self.gpu, self.sd, p, (&conv_at, &bn_at), EPS)?
            .sized()
            .with_activation_params(act.learned);
        let y = self.g.add_sized(conv, tconv, &[y], &[like]);
        // The expansion has no activation of its own: the block's follows the sum.
        let seq = key(name, "ext_conv2");
        let then = self.act(relu, &key(name, "out_activation"))?;
        let p = Conv2dParams::new(inner, cout, 1);
        let layer = self
            .conv(&seq, 0, p, Some(then))?
            .with_residual(ResidualJoin::BeforeActivation)?;
        Ok(self.g.add(seq, layer, &[y, main]))
    }
}

/// The bottlenecks' 2x2 max pool (stride 2, no padding) and its unpooling's window.
fn bottleneck_pool() -> MaxPool2dParams {
    MaxPool2dParams::new(2)
}

impl Architecture for EnetConfig {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        positive(&[("num_classes", self.num_classes)])
    }

    /// Loads `initial_block.*`, the bottlenecks (`downsample1_0`, `regular1_1` ..
    /// `dilated3_7`, `upsample4_0`, `regular4_1`, `regular4_2`, `upsample5_0`,
    /// `regular5_1`) and `transposed_conv`.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let mut b = Builder {
            gpu,
            sd,
            prefix,
            g: Graph::new(),
        };
        let (enc, dec) = (self.encoder_relu, self.decoder_relu);
        let image = b.g.input();
        let stage1_input = b.initial(image, enc)?;
        let (mut x, indices1) = b.downsample("downsample1_0", stage1_input, (INITIAL, 64), enc)?;
        for i in 1..=4 {
            x = b.regular(&format!("regular1_{i}"), x, 64, Middle::Dilated(1), enc)?;
        }
        let stage2_input = x;
        let (mut x, indices2) = b.downsample("downsample2_0", x, (64, 128), enc)?;
        for (stage, first) in [(2, 1), (3, 0)] {
            for (j, (kind, middle)) in STAGE_PATTERN.iter().enumerate() {
                let name = format!("{kind}{stage}_{}", first + j);
                x = b.regular(&name, x, 128, *middle, enc)?;
            }
        }
        x = b.upsample("upsample4_0", (x, indices2, stage2_input), (128, 64), dec)?;
        x = b.regular("regular4_1", x, 64, Middle::Dilated(1), dec)?;
        x = b.regular("regular4_2", x, 64, Middle::Dilated(1), dec)?;
        x = b.upsample(
            "upsample5_0",
            (x, indices1, stage1_input),
            (64, INITIAL),
            dec,
        )?;
        x = b.regular("regular5_1", x, INITIAL, Middle::Dilated(1), dec)?;
        let p = ConvTranspose2dParams::new(INITIAL, self.num_classes, 3)
            .stride(2)
            .padding(1)
            .bias(false);
        let name = "transposed_conv";
        let last = ConvTransposeNode::load(gpu, sd, p, &key(prefix, name))?.sized();
        let out = b.g.add_sized(name, last, &[x], &[image]);
        b.g.set_outputs(&[out]);
        Ok(b.g)
    }

    /// Checks an input shape: 3 channels, height and width at least 7.
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        crate::ops::check_channels(input, IMAGE)?;
        fail_if(
            input[2] < LEAST_SIDE || input[3] < LEAST_SIDE,
            "input",
            || {
                format!(
                    "height and width must be at least {LEAST_SIDE} (two rows and columns after \
                 the initial block and two downsamplings), got {input:?}"
                )
            },
        )
    }
}
