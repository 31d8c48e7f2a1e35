//! MODNet (Ke et al. 2022), the real-time portrait matting network (ZHKKKe/MODNet's
//! `src/models/modnet.py`), under its state-dict names, so its checkpoints
//! (`modnet_photographic_portrait_matting.ckpt`, `modnet_webcam_portrait_matting.ckpt`,
//! saved from `nn.DataParallel`: load them with the prefix `module`) load as they are.
//! Those checkpoints hold the backbone under two names (`module.backbone.*` and
//! `module.lr_branch.backbone.*`) that share storage, which `safetensors`' `save_file`
//! refuses: convert the loaded dict with a copy of each tensor,
//! `save_file({k: v.clone().contiguous() for k, v in ckpt.items()}, path)`.
//!
//! A MobileNetV2 backbone (`backbone.model.features.*`, the original MobileNetV2 code's
//! flat names: `conv.0` / `conv.1` expansion, `conv.3` / `conv.4` depthwise, `conv.6` /
//! `conv.7` projection) gives maps at 1/2, 1/4 and 1/32 of the input. The low-resolution
//! branch gates the deepest with squeeze-and-excitation (two linear layers without bias)
//! and upsamples it twice through 5x5 convolutions; the high-resolution branch joins the
//! shallow maps with the input resized to 1/2 and 1/4; the fusion branch combines both
//! into the matte at the input's size. Every `Conv2dIBNormRelu` normalises the first half
//! of its channels with batch norm and the rest with instance norm (`IBNorm`), then ReLU;
//! here the convolution runs as two: the batch-norm half with its norm folded in, and the
//! instance-norm half, normalised per plane, then concatenated. Upsampling is bilinear
//! with `scale_factor=2`, the input's resizes `scale_factor=1/2` and `1/4` (corners not
//! aligned). The branches concatenate the stride-32 backbone's maps, upsampled by 2 at a
//! time, with the input at 1/2 and 1/4: they meet only where the input's height and width
//! are multiples of 32, as in PyTorch.
//! `tests/golden/third_party/modnet` holds the PyTorch files the tests compare with.

use ndarray::{s, Array1, Array2};

use crate::blocks::{conv_bn, mbconv_graph, ConvBnAct, Graph, HostValue, Inputs};
use crate::blocks::{Architecture, InvertedResidualConfig, Model, Node, Op, Value, ValueId};
use crate::error::{fail_if, Result};
use crate::gpu::{Gpu, Recorder};
use crate::ops::conv::Conv2dParams;
use crate::ops::norm::{InstanceNorm2d, InstanceNorm2dParams};
use crate::ops::pool::GlobalPool;
use crate::ops::upsample::UpsampleParams;
use crate::ops::{channel, setters, Activation, Cost};
use crate::reference;
use crate::weights::{key, StateDict};

/// The backbone's widths at 1/2, 1/4, 1/8, 1/16 and 1/32 (`enc_channels`).
const ENC: [usize; 5] = [16, 24, 32, 96, 1280];
/// Input channels.
const IMAGE: usize = 3;
/// The high-resolution branch's width (`hr_channels`).
const HR: usize = 32;

/// The configuration of a MODNet: `MODNet()` with its MobileNetV2 backbone. PyTorch's
/// MODNet runs only at its defaults, 3 input channels and `hr_channels=32` (its branches
/// count 3 image channels and take the backbone's 32-channel map for a
/// `hr_channels`-wide one), so those are fixed here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ModNetConfig {
    /// `forward(img, inference)`: `true` (the default, as the demos call it) returns the
    /// matte alone; `false` also the semantic map (1/16 of the input's size) and the
    /// detail map, as training does: outputs `[matte, semantic, detail]`, each through a
    /// sigmoid.
    pub inference: bool,
}

impl ModNetConfig {
    /// `MODNet()` run as `forward(img, True)`: the matte alone.
    pub fn new() -> Self {
        ModNetConfig { inference: true }
    }
}

impl Default for ModNetConfig {
    fn default() -> Self {
        Self::new()
    }
}

setters!(ModNetConfig {
    /// Sets whether the matte alone is returned (`true`) or the semantic and detail
    /// maps too (`false`).
    inference: bool,
});

/// A MODNet for inference: input `[N, 3, H, W]` (H and W multiples of 32),
/// output the matte `[N, 1, H, W]` in [0, 1] (and with the `inference` field false the
/// semantic and detail maps: see [`ModNetConfig`]).
pub type ModNet = Model<ModNetConfig>;

/// Instance norm without affine, then ReLU: the instance-norm half of an `IBNorm`.
#[derive(Debug)]
struct InstanceNormRelu {
    params: InstanceNorm2dParams,
    layer: InstanceNorm2d,
}

impl Node for InstanceNormRelu {
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        Ok(vec![self.params.output_shape(*inputs.get(0)?)?])
    }

    /// No parameters (no affine); normalising is not counted as MACs (as torchinfo).
    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        Ok(Cost {
            bytes: channel::elementwise_cost(*inputs.get(0)?, 2).bytes,
            ..Cost::default()
        })
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        let y = self.layer.forward(rec, inputs.get(0)?.tensor()?)?;
        Ok(vec![Value::Tensor(channel::activation(
            rec,
            &y,
            Activation::Relu,
        )?)])
    }

    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        let x = inputs.get(0)?.tensor()?;
        let c = self.params.num_features;
        let (ones, zeros) = (Array1::ones(c), Array1::zeros(c));
        let y = reference::norm::instance_norm(&self.params, x, ones.view(), zeros.view())?;
        Ok(vec![HostValue::Tensor(reference::channel::activation(
            y.view(),
            Activation::Relu,
        ))])
    }
}

/// Where the weights are and the graph being built.
struct Builder<'a> {
    gpu: &'a Gpu,
    sd: &'a StateDict,
    prefix: &'a str,
    g: Graph,
}

impl Builder<'_> {
    fn at(&self, name: &str) -> String {
        key(self.prefix, name)
    }

    /// `Conv2dIBNormRelu(cin, cout, k, stride, padding)` under `name` (`layers.0` the
    /// convolution with bias, `layers.1.bnorm` the batch norm of the first `cout / 2`
    /// channels), after `x`.
    fn conv_ibn_relu(
        &mut self,
        name: &str,
        x: ValueId,
        (cin, cout, k, stride): (usize, usize, usize, usize),
    ) -> Result<ValueId> {
        let conv = self.at(&key(name, "layers.0"));
        let weight = self.sd.get4(&key(&conv, "weight"), [cout, cin, k, k])?;
        let bias = self.sd.get1(&key(&conv, "bias"), cout)?;
        let bnorm = self.at(&key(name, "layers.1.bnorm"));
        let half = cout / 2;
        // The two halves as layers of their own: the batch-norm half with its norm
        // folded in and ReLU in its store, the other half plain.
        let mut local = StateDict::new();
        let mut part = |n: &str, range: std::ops::Range<usize>| {
            let w = weight.slice(s![range.clone(), .., .., ..]).to_owned();
            local.insert(format!("{n}.weight"), w.into_dyn());
            let b = bias.slice(s![range]).to_owned();
            local.insert(format!("{n}.bias"), b.into_dyn());
        };
        part("bnorm", 0..half);
        part("inorm", half..cout);
        for stat in ["weight", "bias", "running_mean", "running_var"] {
            let v = self.sd.get1(&key(&bnorm, stat), half)?;
            local.insert(format!("bn.{stat}"), v.into_dyn());
        }
        let p = |c: usize| Conv2dParams::new(cin, c, k).stride(stride).padding(k / 2);
        let bn_half = p(half).activation(Activation::Relu);
        let bn_half = ConvBnAct::load(self.gpu, &local, bn_half, "bnorm", Some("bn"), 1e-5)?;
        let in_half = ConvBnAct::load(self.gpu, &local, p(cout - half), "inorm", None, 0.0)?;
        let a = self.g.add(key(name, "bnorm"), bn_half, &[x]);
        let t = self.g.add(key(name, "inorm.conv"), in_half, &[x]);
        let params = InstanceNorm2dParams::new(cout - half);
        let norm = InstanceNormRelu {
            params,
            layer: InstanceNorm2d::new(self.gpu, params, None, None)?,
        };
        let u = self.g.add(key(name, "inorm"), norm, &[t]);
        Ok(self.g.add(name, Op::Concat, &[a, u]))
    }

    /// `Conv2dIBNormRelu(.., with_ibn=False, with_relu=False)` under `name`: a plain
    /// convolution with bias, here with `act` in its store.
    fn conv(
        &mut self,
        name: &str,
        x: ValueId,
        (cin, cout, k, stride): (usize, usize, usize, usize),
        act: Activation,
    ) -> Result<ValueId> {
        let p = Conv2dParams::new(cin, cout, k)
            .stride(stride)
            .padding(k / 2)
            .activation(act);
        let conv = ConvBnAct::load(
            self.gpu,
            self.sd,
            p,
            &self.at(&key(name, "layers.0")),
            None,
            0.0,
        )?;
        Ok(self.g.add(name, conv, &[x]))
    }

    /// `F.interpolate(x, scale_factor=scale, mode='bilinear', align_corners=False)`.
    fn resize(&mut self, name: &str, x: ValueId, scale: f64) -> ValueId {
        let params = UpsampleParams::bilinear(false).scale_factor(scale);
        self.g.add(name, Op::Upsample(params), &[x])
    }

    /// The MobileNetV2 backbone up to `features.18`: the maps at 1/2, 1/4 and 1/32.
    fn backbone(&mut self, x: ValueId, in_channels: usize) -> Result<[ValueId; 3]> {
        let (gpu, sd) = (self.gpu, self.sd);
        let features = self.at("backbone.model.features");
        let f = |i: usize, j: usize| key(&features, &format!("{i}.{j}"));
        let relu6 = Activation::Relu6;
        let stem = Conv2dParams::new(in_channels, 32, 3)
            .stride(2)
            .padding(1)
            .bias(false)
            .activation(relu6);
        let stem = conv_bn(gpu, sd, stem, &f(0, 0), &f(0, 1), 1e-5)?;
        let mut y = self.g.add("backbone.model.features.0", stem, &[x]);
        // torchvision's table (t, c, n, s), as MODNet's MobileNetV2 writes it.
        let table = [
            (1.0, 16, 1, 1),
            (6.0, 24, 2, 2),
            (6.0, 32, 3, 2),
            (6.0, 64, 4, 2),
            (6.0, 96, 3, 1),
            (6.0, 160, 3, 2),
            (6.0, 320, 1, 1),
        ];
        let (mut inp, mut i, mut taps) = (32, 1, Vec::new());
        for (t, c, n, s) in table {
            for r in 0..n {
                let cfg = InvertedResidualConfig {
                    inp,
                    oup: c,
                    stride: if r == 0 { s } else { 1 },
                    expand_ratio: t,
                };
                let block = key(&features, &format!("{i}.conv"));
                let block = self.inverted_residual(&block, cfg)?;
                y = self
                    .g
                    .add(format!("backbone.model.features.{i}"), block, &[y]);
                if i == 1 || i == 3 {
                    taps.push(y);
                }
                inp = c;
                i += 1;
            }
        }
        let last = Conv2dParams::new(320, ENC[4], 1)
            .bias(false)
            .activation(relu6);
        let last = conv_bn(gpu, sd, last, &f(18, 0), &f(18, 1), 1e-5)?;
        let deepest = self.g.add("backbone.model.features.18", last, &[y]);
        Ok([taps[0], taps[1], deepest])
    }

    /// An inverted residual under `conv` with the original MobileNetV2 code's flat names.
    fn inverted_residual(&self, conv: &str, cfg: InvertedResidualConfig) -> Result<Graph> {
        let (gpu, sd) = (self.gpu, self.sd);
        let at = |j: usize| key(conv, &j.to_string());
        let hidden = cfg.hidden();
        let relu6 = Activation::Relu6;
        let expands = cfg.expand_ratio != 1.0;
        let expand = if expands {
            let p = Conv2dParams::new(cfg.inp, hidden, 1)
                .bias(false)
                .activation(relu6);
            Some(conv_bn(gpu, sd, p, &at(0), &at(1), 1e-5)?)
        } else {
            None
        };
        let d = if expands { 3 } else { 0 };
        let p = Conv2dParams::depthwise(hidden, 1, 3)
            .stride(cfg.stride)
            .padding(1)
            .bias(false)
            .activation(relu6);
        let depthwise = conv_bn(gpu, sd, p, &at(d), &at(d + 1), 1e-5)?;
        let p = Conv2dParams::new(hidden, cfg.oup, 1).bias(false);
        let project = conv_bn(gpu, sd, p, &at(d + 3), &at(d + 4), 1e-5)?;
        let skip = cfg.stride == 1 && cfg.inp == cfg.oup;
        let layers = (expand, depthwise, None, project);
        mbconv_graph(gpu, skip, layers, ["expand", "depthwise", "se", "project"])
    }

    /// `SEBlock(C, C, reduction=4)` under `name`: global average pool, `fc.0` (no bias),
    /// ReLU, `fc.2` (no bias), sigmoid, scale.
    fn se_block(&mut self, name: &str, x: ValueId, c: usize) -> Result<ValueId> {
        let squeeze = c / 4;
        let fc = self.at(&key(name, "fc"));
        let mut local = StateDict::new();
        for (j, (out, inp)) in [(0, (squeeze, c)), (2, (c, squeeze))] {
            let w: Array2<f32> = self
                .sd
                .get(&key(&fc, &format!("{j}.weight")), &[out, inp])?
                .into_dimensionality()
                .expect("2-D");
            let w = w
                .into_shape_with_order([out, inp, 1, 1])
                .expect("same length");
            local.insert(format!("fc{j}.weight"), w.into_dyn());
        }
        let pooled = self
            .g
            .add(key(name, "pool"), Op::GlobalPool(GlobalPool::Avg), &[x]);
        let p = Conv2dParams::new(c, squeeze, 1)
            .bias(false)
            .activation(Activation::Relu);
        let fc0 = ConvBnAct::load(self.gpu, &local, p, "fc0", None, 0.0)?;
        let h = self.g.add(key(name, "fc.0"), fc0, &[pooled]);
        let p = Conv2dParams::new(squeeze, c, 1).bias(false);
        let fc2 = ConvBnAct::load(self.gpu, &local, p, "fc2", None, 0.0)?;
        let logits = self.g.add(key(name, "fc.2"), fc2, &[h]);
        let gate = Op::ScaleChannels(Activation::Sigmoid);
        Ok(self.g.add(name, gate, &[x, logits]))
    }
}

impl Architecture for ModNetConfig {
    /// Every configuration is valid.
    fn validate(&self) -> Result<()> {
        Ok(())
    }

    /// Loads `backbone.model.features.*`, `lr_branch.*`, `hr_branch.*` and `f_branch.*`
    /// (with `inference` false also `lr_branch.conv_lr` and `hr_branch.conv_hr`).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let hr = HR;
        let mut b = Builder {
            gpu,
            sd,
            prefix,
            g: Graph::new(),
        };
        let img = b.g.input();
        let [enc2x, enc4x, enc32x] = b.backbone(img, IMAGE)?;
        // Low-resolution branch.
        let enc32x = b.se_block("lr_branch.se_block", enc32x, ENC[4])?;
        let lr16x = b.resize("lr_branch.up16x", enc32x, 2.0);
        let lr16x = b.conv_ibn_relu("lr_branch.conv_lr16x", lr16x, (ENC[4], ENC[3], 5, 1))?;
        let lr8x = b.resize("lr_branch.up8x", lr16x, 2.0);
        let lr8x = b.conv_ibn_relu("lr_branch.conv_lr8x", lr8x, (ENC[3], ENC[2], 5, 1))?;
        // High-resolution branch.
        let img2x = b.resize("hr_branch.img2x", img, 0.5);
        let img4x = b.resize("hr_branch.img4x", img, 0.25);
        let enc2x = b.conv_ibn_relu("hr_branch.tohr_enc2x", enc2x, (ENC[0], hr, 1, 1))?;
        let joined = b.g.add("hr_branch.cat_enc2x", Op::Concat, &[img2x, enc2x]);
        let cin = hr + IMAGE;
        let hr4x = b.conv_ibn_relu("hr_branch.conv_enc2x", joined, (cin, hr, 3, 2))?;
        let enc4x = b.conv_ibn_relu("hr_branch.tohr_enc4x", enc4x, (ENC[1], hr, 1, 1))?;
        let joined = b.g.add("hr_branch.cat_enc4x", Op::Concat, &[hr4x, enc4x]);
        let hr4x = b.conv_ibn_relu("hr_branch.conv_enc4x", joined, (2 * hr, 2 * hr, 3, 1))?;
        // lr8x upsampled once for both branches (PyTorch resizes it in each).
        let lr4x = b.resize("hr_branch.lr4x", lr8x, 2.0);
        let mut y =
            b.g.add("hr_branch.cat_hr4x", Op::Concat, &[hr4x, lr4x, img4x]);
        let widths = [(3 * hr + IMAGE, 2 * hr), (2 * hr, 2 * hr), (2 * hr, hr)];
        for (i, (cin, cout)) in widths.into_iter().enumerate() {
            y = b.conv_ibn_relu(&format!("hr_branch.conv_hr4x.{i}"), y, (cin, cout, 3, 1))?;
        }
        let hr2x = b.resize("hr_branch.up2x", y, 2.0);
        let mut y = b.g.add("hr_branch.cat_hr2x", Op::Concat, &[hr2x, enc2x]);
        let widths = [(2 * hr, 2 * hr), (2 * hr, hr), (hr, hr), (hr, hr)];
        for (i, (cin, cout)) in widths.into_iter().enumerate() {
            y = b.conv_ibn_relu(&format!("hr_branch.conv_hr2x.{i}"), y, (cin, cout, 3, 1))?;
        }
        let hr2x = y;
        // Fusion branch.
        let lr4x = b.conv_ibn_relu("f_branch.conv_lr4x", lr4x, (ENC[2], hr, 5, 1))?;
        let lr2x = b.resize("f_branch.lr2x", lr4x, 2.0);
        let joined = b.g.add("f_branch.cat_f2x", Op::Concat, &[lr2x, hr2x]);
        let f2x = b.conv_ibn_relu("f_branch.conv_f2x", joined, (2 * hr, hr, 3, 1))?;
        let f = b.resize("f_branch.up", f2x, 2.0);
        let joined = b.g.add("f_branch.cat_f", Op::Concat, &[f, img]);
        let cin = hr + IMAGE;
        let f = b.conv_ibn_relu("f_branch.conv_f.0", joined, (cin, hr / 2, 3, 1))?;
        let sigmoid = Activation::Sigmoid;
        let matte = b.conv("f_branch.conv_f.1", f, (hr / 2, 1, 1, 1), sigmoid)?;
        let mut outs = vec![matte];
        if !self.inference {
            let semantic = b.conv("lr_branch.conv_lr", lr8x, (ENC[2], 1, 3, 2), sigmoid)?;
            let up = b.resize("hr_branch.up", hr2x, 2.0);
            let joined = b.g.add("hr_branch.cat_hr", Op::Concat, &[up, img]);
            let d = b.conv_ibn_relu("hr_branch.conv_hr.0", joined, (cin, hr, 3, 1))?;
            let detail = b.conv("hr_branch.conv_hr.1", d, (hr, 1, 1, 1), sigmoid)?;
            outs.extend([semantic, detail]);
        }
        b.g.set_outputs(&outs);
        Ok(b.g)
    }

    /// Checks an input shape: 3 channels, height and width positive
    /// multiples of 32 (the branches' maps meet only there, as in PyTorch).
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        crate::ops::check_channels(input, IMAGE)?;
        let fits = |v: usize| v > 0 && v.is_multiple_of(32);
        fail_if(!fits(input[2]) || !fits(input[3]), "input", || {
            format!("height and width must be positive multiples of 32, got {input:?}")
        })
    }
}
