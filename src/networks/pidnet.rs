//! PIDNet (Xu et al., CVPR 2023), the real-time semantic segmentation network of three
//! branches, as XuJiacong/PIDNet's `models/pidnet.py` and `models/model_utils.py` define it
//! (`PIDNet(m, n, num_classes, planes, ppm_planes, head_planes, augment)`), under its
//! state-dict names, so its Cityscapes and CamVid checkpoints load as they are (they were
//! saved from the training wrapper: their names start with `model`, the prefix to load
//! them with).
//!
//! - The integral branch (`conv1`: two 3x3 stride-2 convolutions with bias, batch norm and
//!   ReLU; `layer1` .. `layer4`: ResNet basic blocks; `layer5`: two bottlenecks of
//!   expansion 2) reaches 1/64 of the input, where a pyramid pooling module (`spp`:
//!   average pools of 5, 9 and 17 at strides 2, 4 and 8 and a global one, each batch norm,
//!   ReLU and a 1x1 convolution, resized back and added to the unpooled branch) gathers
//!   context: PIDNet-S and -M's parallel one (`PAPPM`: the four summed branches through
//!   one grouped 3x3 convolution), PIDNet-L's sequential one (`DAPPM`: each branch added
//!   to the previous one's output through its own 3x3 convolution).
//! - The proportional branch (`layer3_`, `layer4_`, `layer5_`) stays at 1/8; after each of
//!   `layer3` and `layer4` a pixel-attention-guided fusion (`pag3`, `pag4`) blends in the
//!   integral branch's map (`compression3`, `compression4`: 1x1 convolutions), weighted
//!   per pixel by the sigmoid of the channel dot product of both maps' 1x1 projections.
//! - The derivative branch (`layer3_d`, `layer4_d`, `layer5_d`) stays at 1/8 too, adding
//!   the integral branch's maps through `diff3` and `diff4` (3x3 convolutions, resized).
//! - The boundary-attention-guided fusion (`dfm`) joins the three at 1/8, weighted by the
//!   sigmoid of the derivative branch: `Light_Bag` in PIDNet-S and -M (two 1x1
//!   convolutions of `(1 - s) * i + p` and `i + s * p`, summed), `Bag` in PIDNet-L (batch
//!   norm, ReLU and a 3x3 convolution of `s * p + (1 - s) * i`); the head
//!   (`final_layer`: batch norm, ReLU, 3x3 convolution, batch norm, ReLU, 1x1 classifier
//!   with bias) gives the logits at 1/8.
//! - With `augment` (training, and the checkpoints' evaluation) the proportional branch's
//!   head (`seghead_p`) and the derivative branch's boundary head (`seghead_d`, one
//!   channel) come first and last: `[x_extra_p, x_, x_extra_d]`, as PyTorch returns them.
//!   The heads read their maps after the ReLU the model applies to them in place before
//!   the next stage (PyTorch's `temp_p` and `temp_d` alias the activated tensors).
//!
//! Every batch norm after a convolution is folded into it (its ReLU and the residual sums
//! in the convolution's store); those before a convolution (the pyramid's and the heads'
//! pre-activation ones) run as passes of their own. Each fusion is one pass (the dot
//! product and its sigmoid, the blend and its ReLU, each gated sum), and the layers and
//! the pyramid are DDRNet's ([`super::DdrNetConfig`]), which PIDNet's code reuses. The input is `[N, 3, H, W]` with H and
//! W positive multiples of 8: the derivative branch meets the resized maps at
//! `H // 8 x W // 8` only there (PyTorch fails elsewhere).

use super::ddrnet::{check_input, conv, Block, Builder, BILINEAR};
use crate::blocks::{Architecture, Graph, Model, Op, ValueId};
use crate::error::{positive, Result};
use crate::gpu::Gpu;
use crate::ops::{setters, Activation};
use crate::weights::{key, StateDict};

/// The configuration of a PIDNet: `PIDNet(m, n, num_classes, planes, ppm_planes,
/// head_planes, augment)`. The presets are `get_pred_model`'s (`augment` off), and
/// [`PidNetConfig::augment`] turns the two auxiliary heads on as `get_seg_model` builds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PidNetConfig {
    /// Basic blocks in `layer1`, `layer2`, `layer3_` and `layer4_` (`m`); 2 also selects
    /// the small derivative branch, `PAPPM` and `Light_Bag`, anything else the wide
    /// derivative branch, `DAPPM` and `Bag` (as the model's `if m == 2`).
    pub m: usize,
    /// Basic blocks in `layer3` and `layer4` (`n`).
    pub n: usize,
    /// Classes of the logits (`num_classes`; 19 for Cityscapes, 11 for CamVid).
    pub num_classes: usize,
    /// The base width (`planes`): the integral branch widens it to 16 times.
    pub planes: usize,
    /// The pyramid pooling module's branch width (`ppm_planes`).
    pub ppm_planes: usize,
    /// The segmentation heads' hidden width (`head_planes`).
    pub head_planes: usize,
    /// Whether `forward` returns the proportional branch's logits first and the boundary
    /// map last, around the logits (`augment`, default `false`).
    pub augment: bool,
}

impl PidNetConfig {
    /// PIDNet-S: `PIDNet(m=2, n=3, planes=32, ppm_planes=96, head_planes=128)`.
    pub fn pidnet_s(num_classes: usize) -> Self {
        Self::preset(num_classes, (2, 3), (32, 96, 128))
    }

    /// PIDNet-M: `PIDNet(m=2, n=3, planes=64, ppm_planes=96, head_planes=128)`.
    pub fn pidnet_m(num_classes: usize) -> Self {
        Self::preset(num_classes, (2, 3), (64, 96, 128))
    }

    /// PIDNet-L: `PIDNet(m=3, n=4, planes=64, ppm_planes=112, head_planes=256)`.
    pub fn pidnet_l(num_classes: usize) -> Self {
        Self::preset(num_classes, (3, 4), (64, 112, 256))
    }

    /// The preset of a model name: `pidnet_s`, `pidnet_m` or `pidnet_l` (the repository's
    /// `MODEL.NAME`s); another name is a typed error naming `name`.
    pub fn from_name(name: &str, num_classes: usize) -> Result<Self> {
        match name {
            "pidnet_s" => Ok(Self::pidnet_s(num_classes)),
            "pidnet_m" => Ok(Self::pidnet_m(num_classes)),
            "pidnet_l" => Ok(Self::pidnet_l(num_classes)),
            other => Err(crate::Error::InvalidParam {
                name: "name",
                reason: format!("unknown PIDNet {other:?}: pidnet_s, pidnet_m or pidnet_l"),
            }),
        }
    }

    fn preset(
        num_classes: usize,
        (m, n): (usize, usize),
        (planes, ppm_planes, head_planes): (usize, usize, usize),
    ) -> Self {
        PidNetConfig {
            m,
            n,
            num_classes,
            planes,
            ppm_planes,
            head_planes,
            augment: false,
        }
    }
}

setters!(PidNetConfig {
    /// Sets whether the auxiliary heads' maps come with the logits (`augment`).
    augment: bool,
});

/// A PIDNet: input `[N, 3, H, W]` (H and W multiples of 8), output the logits
/// `[N, num_classes, H / 8, W / 8]` (with `augment`, between the proportional branch's
/// logits and the boundary map `[N, 1, H / 8, W / 8]`).
pub type PidNet = Model<PidNetConfig>;

/// PIDNet's own fusions, on DDRNet's builder.
impl Builder<'_> {
    /// `PagFM(cin, mid)` under `name`: `x` blended with `y` (resized to `x`'s size) by
    /// `sigmoid(sum_c f_x(x) * up(f_y(y)))` per pixel, then the ReLU the model applies to
    /// the blend next, in the same pass.
    fn pag(
        &mut self,
        name: &str,
        x: ValueId,
        y: ValueId,
        (cin, mid): (usize, usize),
    ) -> Result<ValueId> {
        let y_q = self.conv_bn((name, "f_y.0", "f_y.1"), y, conv(cin, mid, 1, 1))?;
        let y_q = self.g.resize_like(key(name, "up_q"), BILINEAR, y_q, x);
        let x_k = self.conv_bn((name, "f_x.0", "f_x.1"), x, conv(cin, mid, 1, 1))?;
        let sim = self.g.add(
            key(name, "sim"),
            Op::ChannelDot(Activation::Sigmoid),
            &[x_k, y_q],
        );
        let y_up = self.g.resize_like(key(name, "up"), BILINEAR, y, x);
        Ok(self.g.add(
            key(name, "blend"),
            Op::BlendSpatial(Activation::None, Activation::Relu),
            &[x, y_up, sim],
        ))
    }

    /// `Light_Bag(c, c)` (`light`) or `Bag(c, c)` under `name` on the proportional map
    /// `p`, the integral one `i` and the derivative one `d`.
    fn boundary_fusion(
        &mut self,
        name: &str,
        [p, i, d]: [ValueId; 3],
        c: usize,
        light: bool,
    ) -> Result<ValueId> {
        let sigmoid = Activation::Sigmoid;
        if !light {
            let z = self.g.add(key(name, "blend"), Op::Highway, &[i, p, d]);
            return self.bn_relu_conv((name, "conv.0", "conv.2"), z, conv(c, c, 3, 1));
        }
        let to_p = Op::AddGated {
            gate: sigmoid,
            complement: true,
        };
        let to_p = self.g.add(key(name, "p_in"), to_p, &[i, p, d]);
        let to_i = Op::AddGated {
            gate: sigmoid,
            complement: false,
        };
        let to_i = self.g.add(key(name, "i_in"), to_i, &[i, p, d]);
        let i_add = self.conv_bn((name, "conv_i.0", "conv_i.1"), to_i, conv(c, c, 1, 1))?;
        let p = conv(c, c, 1, 1);
        self.conv_bn_join(
            (name, "conv_p.0", "conv_p.1"),
            [to_p, i_add],
            p,
            Activation::None,
        )
    }
}

impl Architecture for PidNetConfig {
    /// Checks that every width is positive (`m` or `n` 0 builds one block a stage, as
    /// `_make_layer` does).
    fn validate(&self) -> Result<()> {
        positive(&[
            ("num_classes", self.num_classes),
            ("planes", self.planes),
            ("ppm_planes", self.ppm_planes),
            ("head_planes", self.head_planes),
        ])
    }

    /// Loads `conv1`, `layer1` .. `layer5`, `compression3` / `4`, `pag3` / `4`,
    /// `layer3_` .. `layer5_`, `layer3_d` .. `layer5_d`, `diff3` / `4`, `spp`, `dfm` and
    /// `final_layer` (with `augment` also `seghead_p` and `seghead_d`).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let mut b = Builder::new(gpu, sd, prefix);
        let (m, n, p) = (self.m, self.n, self.planes);
        let small = m == 2;
        let relu = Activation::Relu;
        let x = b.g.input();
        let y = b.stem(x, p)?;
        let basic = Block::Basic;
        let y = b.layer(basic, "layer1", y, (p, p, m, 1), true)?;
        let y = b.layer(basic, "layer2", y, (p, 2 * p, m, 2), true)?;
        let x_p = b.layer(basic, "layer3_", y, (2 * p, 2 * p, m, 1), false)?;
        let d_width = if small { p } else { 2 * p };
        let x_d = b.single_layer(basic, "layer3_d", y, (2 * p, d_width))?;
        let y = b.layer(basic, "layer3", y, (2 * p, 4 * p, n, 2), true)?;
        let compressed = b.conv_bn(("compression3", "0", "1"), y, conv(4 * p, 2 * p, 1, 1))?;
        let x_p = b.pag("pag3", x_p, compressed, (2 * p, p))?;
        let diff = b.conv_bn(("diff3", "0", "1"), y, conv(4 * p, d_width, 3, 1))?;
        let diff = b.g.resize_like("diff3.up", BILINEAR, diff, x_d);
        // Each fusion's output is used only through the in-place ReLU the model applies to
        // it next (the maps kept for the auxiliary heads, `temp_p` and `temp_d`, alias
        // them, so the heads read them activated too): the ReLU is in the fusion's pass.
        let x_d = b.g.add("diff3.add", Op::AddThen(relu), &[x_d, diff]);
        let temp_p = x_p;
        let y = b.layer(basic, "layer4", y, (4 * p, 8 * p, n, 2), true)?;
        let x_p = b.layer(basic, "layer4_", x_p, (2 * p, 2 * p, m, 1), false)?;
        let x_d = match small {
            true => b.layer(Block::Bottleneck, "layer4_d", x_d, (p, p, 1, 1), false)?,
            false => b.single_layer(basic, "layer4_d", x_d, (2 * p, 2 * p))?,
        };
        let compressed = b.conv_bn(("compression4", "0", "1"), y, conv(8 * p, 2 * p, 1, 1))?;
        let x_p = b.pag("pag4", x_p, compressed, (2 * p, p))?;
        let diff = b.conv_bn(("diff4", "0", "1"), y, conv(8 * p, 2 * p, 3, 1))?;
        let diff = b.g.resize_like("diff4.up", BILINEAR, diff, x_d);
        let x_d = b.g.add("diff4.add", Op::AddThen(relu), &[x_d, diff]);
        let temp_d = x_d;
        let bottleneck = Block::Bottleneck;
        let x_p = b.layer(bottleneck, "layer5_", x_p, (2 * p, 2 * p, 1, 1), false)?;
        let x_d = b.layer(bottleneck, "layer5_d", x_d, (2 * p, 2 * p, 1, 1), false)?;
        let y = b.layer(bottleneck, "layer5", y, (8 * p, 8 * p, 2, 2), false)?;
        let y = b.pyramid("spp", y, (16 * p, self.ppm_planes, 4 * p), small)?;
        let y = b.g.resize_like("spp.up", BILINEAR, y, x_p);
        let fused = b.boundary_fusion("dfm", [x_p, y, x_d], 4 * p, small)?;
        let (classes, head) = (self.num_classes, self.head_planes);
        let logits = b.head("final_layer", fused, (4 * p, head, classes))?;
        let outs = match self.augment {
            true => vec![
                b.head("seghead_p", temp_p, (2 * p, head, classes))?,
                logits,
                b.head("seghead_d", temp_d, (2 * p, p, 1))?,
            ],
            false => vec![logits],
        };
        b.g.set_outputs(&outs);
        Ok(b.g)
    }

    /// Checks an input shape: 3 channels, height and width positive multiples of 8.
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        check_input(input)
    }
}
