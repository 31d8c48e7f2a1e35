//! The BiSeNets: [`BiSeNetV2`] for real-time semantic segmentation and the first BiSeNet as
//! face parsing runs it ([`BiSeNet`], see [`BiSeNetConfig`]).
//!
//! BiSeNetV2 (Yu et al. 2021), the real-time two-branch semantic segmentation network, as
//! CoinCheung/BiSeNet's `lib/models/bisenetv2.py` defines it (the implementation its
//! Cityscapes, COCO-Stuff and ADE20K checkpoints come from), under its state-dict names,
//! so those checkpoints load as they are.
//!
//! A detail branch (`detail.S1` .. `detail.S3`: nine 3x3 convolutions with batch norm and
//! ReLU, down to 1/8 of the input) keeps the spatial detail; a semantic branch
//! (`segment.*`) reaches 1/32 through a stem (a strided convolution, then a strided
//! bottleneck beside a max pool, concatenated and fused), gather-and-expand layers (a 3x3
//! convolution, a depthwise 3x3 expanding the channels six times, a 1x1 projection and a
//! residual; the strided ones with a second depthwise layer and a depthwise-separable
//! shortcut) and a context embedding (the global average, batch norm, a 1x1 convolution,
//! added to every pixel). The bilateral guided aggregation (`bga`) gates each branch by
//! the other (sigmoids of the semantic maps, the one upsampled by 4, the product of the
//! other upsampled by 4, both nearest) and sums them; the segment head (`head`: a 3x3
//! convolution to 1024 channels, a 1x1 classifier with bias) upsamples the logits by 8,
//! bilinear with corners not aligned. With [`BiSeNetAuxMode::Train`] the four auxiliary
//! heads (`aux2`, `aux3`, `aux4`, `aux5_4`) on the semantic branch's stages follow as
//! further outputs, as the PyTorch model returns them in training.
//!
//! Here the sigmoids run in the stores of the convolutions before them (before the
//! nearest upsampling, which only copies values), the residuals and their ReLU in the
//! projections' stores, and the aggregation's products and sum as two elementwise
//! passes. The branches meet only where the detail branch's map (a size of
//! `ceil(H / 8)`) is a multiple of 4 on both axes (any multiple of 32 is): elsewhere
//! PyTorch fails and this is a typed error. `tests/golden/third_party/bisenet` and
//! `facexlib_parsing` hold the PyTorch files the tests compare with.

use ndarray::Array4;

use super::{conv1x1, conv3x3, ResNetConfig};
use crate::blocks::{conv_bn, Architecture, ConvBnAct, Graph, Model, Op, ValueId};
use crate::error::{fail_if, positive, Result};
use crate::gpu::Gpu;
use crate::ops::conv::{Conv2dParams, ResidualJoin};
use crate::ops::pool::{AvgPool2dParams, GlobalPool, MaxPool2dParams};
use crate::ops::upsample::{UpsampleMode, UpsampleParams};
use crate::ops::{setters, Activation};
use crate::weights::{key, StateDict};

/// Input channels (the detail branch and the stem take RGB).
const IMAGE: usize = 3;
/// Batch norm's eps (PyTorch's default, as the model builds its norms).
const EPS: f32 = 1e-5;
/// The semantic branch's width at its end (the context embedding and the aggregation).
const WIDE: usize = 128;
/// The gather-and-expand layers' expansion (`exp_ratio`).
const EXPAND: usize = 6;

/// BiSeNetV2's `aux_mode`: which outputs `forward` returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BiSeNetAuxMode {
    /// `'train'` (the PyTorch model's default): the logits, then the four auxiliary heads'
    /// (`aux2`, `aux3`, `aux4`, `aux5_4`, at 1/4 to 1/32 of the input, each upsampled
    /// back to that stage's size times its factor).
    Train,
    /// `'eval'`: the logits alone; the auxiliary heads are neither built nor loaded. (The
    /// PyTorch model's `'pred'` is this followed by an argmax over the classes:
    /// [`crate::ops::channel::argmax`].)
    #[default]
    Eval,
}

/// The configuration of a BiSeNetV2: `BiSeNetV2(n_classes, aux_mode)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BiSeNetV2Config {
    /// Classes of the logits (`n_classes`; 19 for Cityscapes).
    pub n_classes: usize,
    /// Which outputs `forward` returns (`aux_mode`, default [`BiSeNetAuxMode::Eval`]).
    pub aux_mode: BiSeNetAuxMode,
}

impl BiSeNetV2Config {
    /// `BiSeNetV2(n_classes, aux_mode='eval')`: the logits alone.
    pub fn new(n_classes: usize) -> Self {
        BiSeNetV2Config {
            n_classes,
            aux_mode: BiSeNetAuxMode::Eval,
        }
    }
}

setters!(BiSeNetV2Config {
    /// Sets which outputs `forward` returns (`aux_mode`).
    aux_mode: BiSeNetAuxMode,
});

/// A BiSeNetV2: input `[N, 3, H, W]` (`ceil(H / 8)` and `ceil(W / 8)` multiples of 4),
/// output the logits `[N, n_classes, 8 ceil(H / 8), 8 ceil(W / 8)]` (and with
/// [`BiSeNetAuxMode::Train`] the auxiliary heads' after them: see [`BiSeNetV2Config`]).
pub type BiSeNetV2 = Model<BiSeNetV2Config>;

/// Where the weights are and the graph being built (STDC-Seg's builds on it too).
pub(super) struct Builder<'a> {
    gpu: &'a Gpu,
    sd: &'a StateDict,
    prefix: &'a str,
    pub(super) g: Graph,
}

/// A 3x3 depthwise convolution (`groups=cin`) with `multiplier` outputs per channel,
/// without bias, padded by 1.
pub(super) fn depthwise3x3(cin: usize, multiplier: usize, stride: usize) -> Conv2dParams {
    Conv2dParams::depthwise(cin, multiplier, 3)
        .stride(stride)
        .padding(1)
        .bias(false)
}

impl<'a> Builder<'a> {
    /// An empty graph on the weights `sd` under `prefix`.
    pub(super) fn new(gpu: &'a Gpu, sd: &'a StateDict, prefix: &'a str) -> Self {
        Builder {
            gpu,
            sd,
            prefix,
            g: Graph::new(),
        }
    }

    fn at(&self, name: &str) -> String {
        key(self.prefix, name)
    }

    /// `ConvBNReLU` under `name` (`{name}.conv`, `{name}.bn`).
    pub(super) fn conv_bn_relu(
        &mut self,
        name: &str,
        x: ValueId,
        p: Conv2dParams,
    ) -> Result<ValueId> {
        let p = p.activation(Activation::Relu);
        let (conv, bn) = (self.at(&key(name, "conv")), self.at(&key(name, "bn")));
        let layer = conv_bn(self.gpu, self.sd, p, &conv, &bn, EPS)?;
        Ok(self.g.add(name, layer, &[x]))
    }

    /// The convolution `{seq}.{i}` with its batch norm `{seq}.{i + 1}` (a `Sequential`'s).
    pub(super) fn seq_conv_bn(&self, seq: &str, i: usize, p: Conv2dParams) -> Result<ConvBnAct> {
        let conv = self.at(&format!("{seq}.{i}"));
        let bn = self.at(&format!("{seq}.{}", i + 1));
        conv_bn(self.gpu, self.sd, p, &conv, &bn, EPS)
    }

    /// The convolution `name` without a batch norm.
    fn plain_conv(&self, name: &str, p: Conv2dParams) -> Result<ConvBnAct> {
        ConvBnAct::load(self.gpu, self.sd, p, &self.at(name), None, 0.0)
    }

    /// `DetailBranch`: the map at 1/8 of the input, 128 channels.
    fn detail(&mut self, x: ValueId) -> Result<ValueId> {
        let stages: [&[(usize, usize, usize)]; 3] = [
            &[(IMAGE, 64, 2), (64, 64, 1)],
            &[(64, 64, 2), (64, 64, 1), (64, 64, 1)],
            &[(64, 128, 2), (128, 128, 1), (128, 128, 1)],
        ];
        let mut y = x;
        for (s, layers) in stages.iter().enumerate() {
            for (j, &(cin, cout, stride)) in layers.iter().enumerate() {
                let name = format!("detail.S{}.{j}", s + 1);
                y = self.conv_bn_relu(&name, y, conv3x3(cin, cout, stride))?;
            }
        }
        Ok(y)
    }

    /// `StemBlock` (`segment.S1S2`): 16 channels at 1/4.
    fn stem(&mut self, x: ValueId) -> Result<ValueId> {
        let s = "segment.S1S2";
        let feat = self.conv_bn_relu(&key(s, "conv"), x, conv3x3(IMAGE, 16, 2))?;
        let left = self.conv_bn_relu(&key(s, "left.0"), feat, conv1x1(16, 8))?;
        let left = self.conv_bn_relu(&key(s, "left.1"), left, conv3x3(8, 16, 2))?;
        let pool = MaxPool2dParams::new(3).stride(2).padding(1);
        let right = self
            .g
            .add_multi(key(s, "right"), Op::MaxPool(pool), &[feat], 2)[0];
        let joined = self.g.add(key(s, "cat"), Op::Concat, &[left, right]);
        self.conv_bn_relu(&key(s, "fuse"), joined, conv3x3(32, 16, 1))
    }

    /// `GELayerS1(c, c)` under `name`: `relu(conv2(dwconv(conv1(x))) + x)`.
    fn gather_expand(&mut self, name: &str, x: ValueId, c: usize) -> Result<ValueId> {
        let y = self.conv_bn_relu(&key(name, "conv1"), x, conv3x3(c, c, 1))?;
        let p = depthwise3x3(c, EXPAND, 1).activation(Activation::Relu);
        let dw = self.seq_conv_bn(&key(name, "dwconv"), 0, p)?;
        let y = self.g.add(key(name, "dwconv"), dw, &[y]);
        let project = self
            .seq_conv_bn(&key(name, "conv2"), 0, conv1x1(EXPAND * c, c))?
            .with_residual(ResidualJoin::AddThen(Activation::Relu))?;
        Ok(self.g.add(key(name, "conv2"), project, &[y, x]))
    }

    /// `GELayerS2(cin, cout)` under `name`: the strided layer, its shortcut a depthwise
    /// 3x3 at stride 2 and a 1x1 projection, each with batch norm.
    fn gather_expand_strided(
        &mut self,
        name: &str,
        x: ValueId,
        (cin, cout): (usize, usize),
    ) -> Result<ValueId> {
        let mid = EXPAND * cin;
        let y = self.conv_bn_relu(&key(name, "conv1"), x, conv3x3(cin, cin, 1))?;
        let dw1 = self.seq_conv_bn(&key(name, "dwconv1"), 0, depthwise3x3(cin, EXPAND, 2))?;
        let y = self.g.add(key(name, "dwconv1"), dw1, &[y]);
        let p = depthwise3x3(mid, 1, 1).activation(Activation::Relu);
        let dw2 = self.seq_conv_bn(&key(name, "dwconv2"), 0, p)?;
        let y = self.g.add(key(name, "dwconv2"), dw2, &[y]);
        let sc = key(name, "shortcut");
        let sc_dw = self.seq_conv_bn(&sc, 0, depthwise3x3(cin, 1, 2))?;
        let shortcut = self.g.add(key(&sc, "0"), sc_dw, &[x]);
        let sc_pw = self.seq_conv_bn(&sc, 2, conv1x1(cin, cout))?;
        let shortcut = self.g.add(key(&sc, "2"), sc_pw, &[shortcut]);
        let project = self
            .seq_conv_bn(&key(name, "conv2"), 0, conv1x1(mid, cout))?
            .with_residual(ResidualJoin::AddThen(Activation::Relu))?;
        Ok(self.g.add(key(name, "conv2"), project, &[y, shortcut]))
    }

    /// `CEBlock` (`segment.S5_5`): `conv_last(conv_gap(bn(mean(x))) + x)`.
    fn context_embedding(&mut self, x: ValueId) -> Result<ValueId> {
        let s = "segment.S5_5";
        let pooled = self
            .g
            .add(key(s, "mean"), Op::GlobalPool(GlobalPool::Avg), &[x]);
        // The batch norm of the pooled values, as a 1x1 depthwise layer of unit weights
        // (not parameters) with the norm folded in.
        let mut local = StateDict::new();
        local.insert(
            "unit.weight",
            Array4::<f32>::ones((WIDE, 1, 1, 1)).into_dyn(),
        );
        let bn = self.at(&key(s, "bn"));
        for stat in ["weight", "bias", "running_mean", "running_var"] {
            let v = self.sd.get1(&key(&bn, stat), WIDE)?;
            local.insert(format!("bn.{stat}"), v.into_dyn());
        }
        let p = Conv2dParams::depthwise(WIDE, 1, 1).bias(false);
        let norm = ConvBnAct::load(self.gpu, &local, p, "unit", Some("bn"), EPS)?
            .with_structural_zeros(WIDE as u64);
        let y = self.g.add(key(s, "bn"), norm, &[pooled]);
        let y = self.conv_bn_relu(&key(s, "conv_gap"), y, conv1x1(WIDE, WIDE))?;
        let y = self
            .g
            .add(key(s, "add"), Op::AddChannels(Activation::None), &[x, y]);
        self.conv_bn_relu(&key(s, "conv_last"), y, conv3x3(WIDE, WIDE, 1))
    }

    /// `SegmentBranch`: its stages' maps at 1/4, 1/8, 1/16 and 1/32 (`feat2` .. `feat5_4`)
    /// and the context embedding's (`feat5_5`).
    fn segment(&mut self, x: ValueId) -> Result<[ValueId; 5]> {
        let feat2 = self.stem(x)?;
        let feat3 = self.gather_expand_strided("segment.S3.0", feat2, (16, 32))?;
        let feat3 = self.gather_expand("segment.S3.1", feat3, 32)?;
        let feat4 = self.gather_expand_strided("segment.S4.0", feat3, (32, 64))?;
        let feat4 = self.gather_expand("segment.S4.1", feat4, 64)?;
        let mut feat5 = self.gather_expand_strided("segment.S5_4.0", feat4, (64, WIDE))?;
        for j in 1..4 {
            feat5 = self.gather_expand(&format!("segment.S5_4.{j}"), feat5, WIDE)?;
        }
        let context = self.context_embedding(feat5)?;
        Ok([feat2, feat3, feat4, feat5, context])
    }

    /// `BGALayer` (`bga`) of the detail map `d` and the semantic map `s`:
    /// `conv(left1(d) * up4(sigmoid(right1(s))) + up4(left2(d) * sigmoid(right2(s))))`.
    fn aggregation(&mut self, d: ValueId, s: ValueId) -> Result<ValueId> {
        let c = WIDE;
        let sigmoid = Activation::Sigmoid;
        let left1 = self.seq_conv_bn("bga.left1", 0, depthwise3x3(c, 1, 1))?;
        let left1 = self.g.add("bga.left1.0", left1, &[d]);
        let left1_pw = self.plain_conv("bga.left1.2", conv1x1(c, c))?;
        let left1 = self.g.add("bga.left1.2", left1_pw, &[left1]);
        let left2 = self.seq_conv_bn("bga.left2", 0, conv3x3(c, c, 2))?;
        let left2 = self.g.add("bga.left2.0", left2, &[d]);
        let pool = AvgPool2dParams::new(3).stride(2).padding(1);
        let left2 = self.g.add("bga.left2.2", Op::AvgPool(pool), &[left2]);
        // The sigmoids in the convolutions' stores: nearest upsampling only copies values.
        let right1 = self.seq_conv_bn("bga.right1", 0, conv3x3(c, c, 1).activation(sigmoid))?;
        let right1 = self.g.add("bga.right1.0", right1, &[s]);
        let right2 = self.seq_conv_bn("bga.right2", 0, depthwise3x3(c, 1, 1))?;
        let right2 = self.g.add("bga.right2.0", right2, &[s]);
        let right2_pw = self.plain_conv("bga.right2.2", conv1x1(c, c).activation(sigmoid))?;
        let right2 = self.g.add("bga.right2.2", right2_pw, &[right2]);
        let up = || Op::Upsample(UpsampleParams::nearest().scale_factor(4.0));
        let right1 = self.g.add("bga.up1", up(), &[right1]);
        let right = self
            .g
            .add("bga.right", Op::Mul(Activation::None), &[left2, right2]);
        let right = self.g.add("bga.up2", up(), &[right]);
        let sum = self.g.add("bga.sum", Op::MulAdd, &[left1, right1, right]);
        let conv =
            self.seq_conv_bn("bga.conv", 0, conv3x3(c, c, 1).activation(Activation::Relu))?;
        Ok(self.g.add("bga.conv", conv, &[sum]))
    }

    /// `SegmentHead(cin, mid, n_classes, up_factor, aux)` under `name` on `x`.
    fn head(
        &mut self,
        name: &str,
        x: ValueId,
        (cin, mid, classes): (usize, usize, usize),
        (up_factor, aux): (usize, bool),
    ) -> Result<ValueId> {
        let mut y = self.conv_bn_relu(&key(name, "conv"), x, conv3x3(cin, mid, 1))?;
        // `drop` (dropout) is the identity in inference.
        let (mut width, mut up_factor) = (mid, up_factor);
        if aux {
            let up = Op::Upsample(UpsampleParams::nearest().scale_factor(2.0));
            y = self.g.add(key(name, "conv_out.0.0"), up, &[y]);
            let wide = up_factor * up_factor;
            y = self.conv_bn_relu(&key(name, "conv_out.0.1"), y, conv3x3(mid, wide, 1))?;
            (width, up_factor) = (wide, up_factor / 2);
        }
        let p = Conv2dParams::new(width, classes, 1);
        let classifier = self.plain_conv(&key(name, "conv_out.1"), p)?;
        let y = self.g.add(key(name, "conv_out.1"), classifier, &[y]);
        let up = UpsampleParams::bilinear(false).scale_factor(up_factor as f64);
        Ok(self.g.add(key(name, "conv_out.2"), Op::Upsample(up), &[y]))
    }
}

impl Architecture for BiSeNetV2Config {
    /// Checks that there is a class.
    fn validate(&self) -> Result<()> {
        positive(&[("n_classes", self.n_classes)])
    }

    /// Loads `detail.*`, `segment.*`, `bga.*` and `head.*` (with
    /// [`BiSeNetAuxMode::Train`] also `aux2.*`, `aux3.*`, `aux4.*` and `aux5_4.*`).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let mut b = Builder::new(gpu, sd, prefix);
        let x = b.g.input();
        let detail = b.detail(x)?;
        let [feat2, feat3, feat4, feat5_4, context] = b.segment(x)?;
        let joined = b.aggregation(detail, context)?;
        let n = self.n_classes;
        let logits = b.head("head", joined, (WIDE, 1024, n), (8, false))?;
        let mut outs = vec![logits];
        if self.aux_mode == BiSeNetAuxMode::Train {
            let aux = [
                ("aux2", feat2, 16, 4),
                ("aux3", feat3, 32, 8),
                ("aux4", feat4, 64, 16),
                ("aux5_4", feat5_4, WIDE, 32),
            ];
            for (name, feat, cin, up_factor) in aux {
                outs.push(b.head(name, feat, (cin, 128, n), (up_factor, true))?);
            }
        }
        b.g.set_outputs(&outs);
        Ok(b.g)
    }

    /// Checks an input shape: 3 channels, and a detail map (`ceil(H / 8)` by
    /// `ceil(W / 8)`) whose sides are positive multiples of 4, where the semantic branch's
    /// map upsampled by 4 meets it (as in PyTorch, which fails elsewhere).
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        crate::ops::check_channels(input, IMAGE)?;
        let fits = |v: usize| v > 0 && v.div_ceil(8).is_multiple_of(4);
        fail_if(!fits(input[2]) || !fits(input[3]), "input", || {
            format!(
                "height and width must leave a 1/8 map (rounded up) whose sides are \
                 multiples of 4, where the branches meet (any multiple of 32 does), got \
                 {input:?}"
            )
        })
    }
}

/// The configuration of a BiSeNet (V1) as zllrunning/face-parsing.PyTorch defines it in
/// `model.py`, and facexlib copies it in `facexlib/parsing/bisenet.py` (the face parsing
/// model of GFPGAN, CodeFormer and facexlib's `init_parsing_model('bisenet')`, trained on
/// CelebAMask-HQ's 19 classes): `BiSeNet(n_classes)` (facexlib's `num_class`), under its
/// state-dict names, so `79999_iter.pth` and `parsing_bisenet.pth` load as they are.
///
/// A ResNet-18 context path (`cp.resnet.*`, torchvision's names without the classifier)
/// gives maps at 1/8, 1/16 and 1/32. Attention refinement modules (`cp.arm16`,
/// `cp.arm32`: a 3x3 convolution to 128 channels scaled per channel by a sigmoid of its
/// global average through a 1x1 convolution and batch norm) refine the deeper two; the
/// deepest gets the global context (`cp.conv_avg` of its average) added, and each is
/// resized to the next's size (nearest) through a 3x3 convolution (`cp.conv_head32`,
/// `cp.conv_head16`) and added to it. The feature fusion module (`ffm`) concatenates the
/// 1/8 map of the ResNet (which replaces the spatial path) with the context path's,
/// fuses them by a 1x1 convolution and adds its channel attention's scaling (`feat *
/// sigmoid(conv2(relu(conv1(mean))))`). Three heads (`conv_out` on the fusion,
/// `conv_out16` and `conv_out32` on the context path's maps at 1/8 and 1/16: a 3x3
/// convolution and a 1x1 classifier without bias) are resized to the input's size
/// (bilinear, corners aligned). Any input size runs.
///
/// Here the channel attentions are applied as their maps are read (the 1/16 one with the
/// upsampled deeper map added in the same pass, the fusion's with its own input added),
/// never stored scaled on their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BiSeNetConfig {
    /// Classes of the logits (`n_classes`, facexlib's `num_class`; 19 for face parsing).
    pub n_classes: usize,
    /// Whether `forward` returns the two auxiliary heads' logits after the main ones, as
    /// the PyTorch model does (`out, out16, out32`; default `true`). `false` returns the
    /// main logits alone and neither builds nor loads `conv_out16` and `conv_out32`.
    pub side_outputs: bool,
}

impl BiSeNetConfig {
    /// `BiSeNet(n_classes)`: the logits and the two auxiliary heads', as PyTorch's
    /// `forward` returns them.
    pub fn new(n_classes: usize) -> Self {
        BiSeNetConfig {
            n_classes,
            side_outputs: true,
        }
    }
}

setters!(BiSeNetConfig {
    /// Sets whether the auxiliary heads' logits follow the main ones.
    side_outputs: bool,
});

/// A BiSeNet (face parsing): input `[N, 3, H, W]`, outputs the logits `[N, n_classes, H,
/// W]` (and with `side_outputs` the two auxiliary heads': see [`BiSeNetConfig`]).
pub type BiSeNet = Model<BiSeNetConfig>;

impl Builder<'_> {
    /// `AttentionRefinementModule(cin, 128)` under `name` on `x`: the convolved map and
    /// its attention's logits (`[N, 128, 1, 1]`, before the sigmoid).
    fn refinement(&mut self, name: &str, x: ValueId, cin: usize) -> Result<[ValueId; 2]> {
        let feat = self.conv_bn_relu(&key(name, "conv"), x, conv3x3(cin, WIDE, 1))?;
        let pooled = self
            .g
            .add(key(name, "pool"), Op::GlobalPool(GlobalPool::Avg), &[feat]);
        let (conv, bn) = (
            self.at(&key(name, "conv_atten")),
            self.at(&key(name, "bn_atten")),
        );
        let atten = conv_bn(self.gpu, self.sd, conv1x1(WIDE, WIDE), &conv, &bn, EPS)?;
        let logits = self.g.add(key(name, "conv_atten"), atten, &[pooled]);
        Ok([feat, logits])
    }

    /// `BiSeNetOutput(cin, mid, n_classes)` under `name` on `x`: a 3x3 convolution with
    /// batch norm and ReLU, and a 1x1 classifier without bias.
    pub(super) fn logits_head(
        &mut self,
        name: &str,
        x: ValueId,
        (cin, mid, classes): (usize, usize, usize),
    ) -> Result<ValueId> {
        let y = self.conv_bn_relu(&key(name, "conv"), x, conv3x3(cin, mid, 1))?;
        let classifier = self.plain_conv(&key(name, "conv_out"), conv1x1(mid, classes))?;
        Ok(self.g.add(key(name, "conv_out"), classifier, &[y]))
    }

    /// [`Builder::logits_head`] resized to `like`'s size (bilinear, corners aligned).
    fn output(
        &mut self,
        name: &str,
        x: ValueId,
        dims: (usize, usize, usize),
        like: ValueId,
    ) -> Result<ValueId> {
        let y = self.logits_head(name, x, dims)?;
        let bilinear = UpsampleMode::Bilinear {
            align_corners: true,
        };
        Ok(self.g.resize_like(key(name, "up"), bilinear, y, like))
    }

    /// The BiSeNet (V1) decoder on a backbone's maps at 1/8, 1/16 and 1/32 of the input
    /// `x` (each with its channel count): the context path (`cp.conv_avg`, `cp.arm32`,
    /// `cp.arm16`, `cp.conv_head32`, `cp.conv_head16`), the feature fusion module (`ffm`)
    /// on the 1/8 map and the context path's, and the heads (`conv_out`, with
    /// `side_outputs` also `conv_out16` and `conv_out32`) resized to `x`'s size; returns
    /// the heads' logits.
    pub(super) fn context_and_heads(
        &mut self,
        x: ValueId,
        [(feat8, c8), (feat16, c16), (feat32, c32)]: [(ValueId, usize); 3],
        n: usize,
        side_outputs: bool,
    ) -> Result<Vec<ValueId>> {
        let pooled = self
            .g
            .add("cp.pool", Op::GlobalPool(GlobalPool::Avg), &[feat32]);
        let context = self.conv_bn_relu("cp.conv_avg", pooled, conv1x1(c32, WIDE))?;
        let [arm32, logits32] = self.refinement("cp.arm32", feat32, c32)?;
        let scaled = self.g.add(
            "cp.arm32",
            Op::ScaleChannels(Activation::Sigmoid),
            &[arm32, logits32],
        );
        let sum32 = self.g.add(
            "cp.sum32",
            Op::AddChannels(Activation::None),
            &[scaled, context],
        );
        let nearest = UpsampleMode::Nearest;
        let up32 = self.g.resize_like("cp.up32", nearest, sum32, feat16);
        let cp16 = self.conv_bn_relu("cp.conv_head32", up32, conv3x3(WIDE, WIDE, 1))?;
        let [arm16, logits16] = self.refinement("cp.arm16", feat16, c16)?;
        let gate = Op::ScaleChannelsAdd {
            gate: Activation::Sigmoid,
            act: Activation::None,
        };
        let sum16 = self
            .g
            .add("cp.arm16", gate.clone(), &[arm16, logits16, cp16]);
        let up16 = self.g.resize_like("cp.up16", nearest, sum16, feat8);
        let cp8 = self.conv_bn_relu("cp.conv_head16", up16, conv3x3(WIDE, WIDE, 1))?;
        // The feature fusion module: the backbone's 1/8 map beside the context path's.
        let joined = self.g.add("ffm.cat", Op::Concat, &[feat8, cp8]);
        let fused = self.conv_bn_relu("ffm.convblk", joined, conv1x1(c8 + WIDE, 2 * WIDE))?;
        let pooled = self
            .g
            .add("ffm.pool", Op::GlobalPool(GlobalPool::Avg), &[fused]);
        let p = conv1x1(2 * WIDE, WIDE / 2).activation(Activation::Relu);
        let fc1 = self.plain_conv("ffm.conv1", p)?;
        let hidden = self.g.add("ffm.conv1", fc1, &[pooled]);
        let fc2 = self.plain_conv("ffm.conv2", conv1x1(WIDE / 2, 2 * WIDE))?;
        let logits = self.g.add("ffm.conv2", fc2, &[hidden]);
        let fused = self.g.add("ffm", gate, &[fused, logits, fused]);
        let mut outs = vec![self.output("conv_out", fused, (2 * WIDE, 2 * WIDE, n), x)?];
        if side_outputs {
            outs.push(self.output("conv_out16", cp8, (WIDE, 64, n), x)?);
            outs.push(self.output("conv_out32", cp16, (WIDE, 64, n), x)?);
        }
        Ok(outs)
    }
}

impl Architecture for BiSeNetConfig {
    /// Checks that there is a class.
    fn validate(&self) -> Result<()> {
        positive(&[("n_classes", self.n_classes)])
    }

    /// Loads `cp.*`, `ffm.*` and `conv_out.*` (with `side_outputs` also `conv_out16.*` and
    /// `conv_out32.*`).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let mut b = Builder::new(gpu, sd, prefix);
        let x = b.g.input();
        let resnet = key(prefix, "cp.resnet");
        let [_, feat8, feat16, feat32] =
            ResNetConfig::resnet18().append(&mut b.g, x, (gpu, sd, &resnet))?;
        let feats = [(feat8, 128), (feat16, 256), (feat32, 512)];
        let outs = b.context_and_heads(x, feats, self.n_classes, self.side_outputs)?;
        b.g.set_outputs(&outs);
        Ok(b.g)
    }

    /// Checks an input shape: 3 channels (the ResNet's layers check the rest).
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        crate::ops::check_channels(input, IMAGE)
    }
}
