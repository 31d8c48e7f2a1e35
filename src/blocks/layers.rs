//! The block types, each loading torchvision's state-dict names.

use ndarray::{Array4, ArrayView4};

use super::{key, make_divisible, ConvBnAct, SeLayer, Summary};
use crate::error::{invalid, Result};
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::ops::attention::SqueezeExcitationParams;
use crate::ops::channel::{channel_shuffle, concat, split};
use crate::ops::conv::Conv2dParams;
use crate::ops::{Activation, Cost};
use crate::reference;
use crate::weights::StateDict;

fn reference_add(a: &Array4<f32>, b: &Array4<f32>, act: Activation) -> Array4<f32> {
    reference::channel::add(a.view(), b.view(), act)
}

/// torchvision's `resnet.Bottleneck` configuration (expansion 4): 1x1 reduce, 3x3 (stride,
/// groups, dilation), 1x1 expand, skip with an optional projection (`downsample`).
/// ResNeXt is `groups = 32, base_width = 4`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BottleneckConfig {
    /// Input channels.
    pub inplanes: usize,
    /// Bottleneck planes; the output has `4 * planes` channels.
    pub planes: usize,
    /// Stride of the 3x3 convolution (and of the projection).
    pub stride: usize,
    /// Groups of the 3x3 convolution (cardinality).
    pub groups: usize,
    /// Width per group at 64 planes (64 for ResNet, 4 for ResNeXt 32x4d).
    pub base_width: usize,
    /// Dilation of the 3x3 convolution.
    pub dilation: usize,
    /// Whether the skip has a 1x1 projection with batch norm.
    pub downsample: bool,
}

impl BottleneckConfig {
    /// A ResNet bottleneck: stride 1, groups 1, base width 64, dilation 1, a projection
    /// exactly when the channel counts differ.
    pub fn new(inplanes: usize, planes: usize) -> Self {
        BottleneckConfig {
            inplanes,
            planes,
            stride: 1,
            groups: 1,
            base_width: 64,
            dilation: 1,
            downsample: inplanes != 4 * planes,
        }
    }

    /// The inner width, `planes * base_width / 64 * groups` (torchvision's formula).
    pub fn width(&self) -> usize {
        (self.planes as f64 * (self.base_width as f64 / 64.0)) as usize * self.groups
    }
}

/// A ResNet / ResNeXt bottleneck for inference.
#[derive(Debug)]
pub struct Bottleneck {
    cfg: BottleneckConfig,
    conv1: ConvBnAct,
    conv2: ConvBnAct,
    conv3: ConvBnAct,
    downsample: Option<ConvBnAct>,
}

impl Bottleneck {
    /// Loads `conv1..3`, `bn1..3` and `downsample.0` / `downsample.1` under `prefix`.
    pub fn load(gpu: &Gpu, cfg: BottleneckConfig, sd: &StateDict, prefix: &str) -> Result<Self> {
        let w = cfg.width();
        let out = 4 * cfg.planes;
        if !cfg.downsample && (cfg.inplanes != out || cfg.stride != 1) {
            return Err(invalid(
                "downsample",
                format!(
                    "a skip without projection needs inplanes == 4 * planes and stride 1, got \
                     {} -> {out}, stride {}",
                    cfg.inplanes, cfg.stride
                ),
            ));
        }
        let eps = 1e-5;
        let p1 = Conv2dParams::new(cfg.inplanes, w, 1)
            .bias(false)
            .activation(Activation::Relu);
        let p2 = Conv2dParams::new(w, w, 3)
            .stride(cfg.stride)
            .padding(cfg.dilation)
            .dilation(cfg.dilation)
            .groups(cfg.groups)
            .bias(false)
            .activation(Activation::Relu);
        let p3 = Conv2dParams::new(w, out, 1).bias(false);
        let downsample = if cfg.downsample {
            let pd = Conv2dParams::new(cfg.inplanes, out, 1)
                .stride(cfg.stride)
                .bias(false);
            Some(ConvBnAct::load(
                gpu,
                sd,
                pd,
                &key(prefix, "downsample.0"),
                Some(&key(prefix, "downsample.1")),
                eps,
            )?)
        } else {
            None
        };
        Ok(Bottleneck {
            cfg,
            conv1: ConvBnAct::load(
                gpu,
                sd,
                p1,
                &key(prefix, "conv1"),
                Some(&key(prefix, "bn1")),
                eps,
            )?,
            conv2: ConvBnAct::load(
                gpu,
                sd,
                p2,
                &key(prefix, "conv2"),
                Some(&key(prefix, "bn2")),
                eps,
            )?,
            conv3: ConvBnAct::load(
                gpu,
                sd,
                p3,
                &key(prefix, "conv3"),
                Some(&key(prefix, "bn3")),
                eps,
            )?,
            downsample,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BottleneckConfig {
        &self.cfg
    }

    /// Records the block (four dispatches, or three without projection: the add and its
    /// ReLU are fused into the third convolution).
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        let identity = match &self.downsample {
            Some(d) => d.forward(rec, x)?,
            None => x.clone(),
        };
        let a = self.conv1.forward(rec, x)?;
        let b = self.conv2.forward(rec, &a)?;
        drop(a);
        self.conv3
            .forward_add_then(rec, &b, &identity, Activation::Relu)
    }

    /// CPU reference forward with the unfolded batch norms.
    pub fn reference(&self, x: ArrayView4<f32>) -> Result<Array4<f32>> {
        let a = self.conv1.reference(x)?;
        let b = self.conv2.reference(a.view())?;
        let c = self.conv3.reference(b.view())?;
        let identity = match &self.downsample {
            Some(d) => d.reference(x)?,
            None => x.to_owned(),
        };
        Ok(reference_add(&c, &identity, Activation::Relu))
    }

    /// Layers with output shapes, parameters and MACs.
    pub fn summary(&self, input: [usize; 4]) -> Result<Summary> {
        let mut s = Summary::default();
        let a = s.push("conv1+bn1", &self.conv1, input)?;
        let b = s.push("conv2+bn2", &self.conv2, a)?;
        s.push("conv3+bn3", &self.conv3, b)?;
        if let Some(d) = &self.downsample {
            s.push("downsample", d, input)?;
        }
        Ok(s)
    }

    /// Total cost (parameters as PyTorch counts them, batch norms included).
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let s = self.summary(input)?;
        Ok(Cost {
            params: s.total_params(),
            macs: s.total_macs(),
            bytes: 0,
        })
    }
}

/// torchvision's `mobilenetv2.InvertedResidual(inp, oup, stride, expand_ratio)`: 1x1
/// expansion by `t` with ReLU6 (skipped when `t = 1`), 3x3 depthwise with ReLU6, 1x1
/// linear projection (no activation), skip when `stride == 1 and inp == oup`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InvertedResidualConfig {
    /// Input channels.
    pub inp: usize,
    /// Output channels.
    pub oup: usize,
    /// Stride of the depthwise convolution (1 or 2).
    pub stride: usize,
    /// Expansion ratio `t` (6 in MobileNetV2).
    pub expand_ratio: f64,
}

impl InvertedResidualConfig {
    /// Expanded channels, `round(inp * t)` as torchvision computes it.
    pub fn hidden(&self) -> usize {
        (self.inp as f64 * self.expand_ratio).round() as usize
    }
}

/// A MobileNetV2 inverted residual for inference.
#[derive(Debug)]
pub struct InvertedResidual {
    cfg: InvertedResidualConfig,
    layers: Vec<(String, ConvBnAct)>,
}

impl InvertedResidual {
    /// Loads `conv.0.0` / `conv.0.1` (expansion), the depthwise `conv.i.0` / `conv.i.1`,
    /// and the projection `conv.{i+1}` with its batch norm `conv.{i+2}` under `prefix`.
    pub fn load(
        gpu: &Gpu,
        cfg: InvertedResidualConfig,
        sd: &StateDict,
        prefix: &str,
    ) -> Result<Self> {
        if cfg.stride != 1 && cfg.stride != 2 {
            return Err(invalid(
                "stride",
                format!("must be 1 or 2, got {}", cfg.stride),
            ));
        }
        let hidden = cfg.hidden();
        let eps = 1e-5;
        let mut layers = Vec::new();
        let mut i = 0;
        if cfg.expand_ratio != 1.0 {
            let p = Conv2dParams::new(cfg.inp, hidden, 1)
                .bias(false)
                .activation(Activation::Relu6);
            let l = ConvBnAct::load(
                gpu,
                sd,
                p,
                &key(prefix, "conv.0.0"),
                Some(&key(prefix, "conv.0.1")),
                eps,
            )?;
            layers.push(("expand".to_string(), l));
            i = 1;
        }
        let p = Conv2dParams::depthwise(hidden, 1, 3)
            .stride(cfg.stride)
            .padding(1)
            .bias(false)
            .activation(Activation::Relu6);
        let dw = ConvBnAct::load(
            gpu,
            sd,
            p,
            &key(prefix, &format!("conv.{i}.0")),
            Some(&key(prefix, &format!("conv.{i}.1"))),
            eps,
        )?;
        layers.push(("depthwise".to_string(), dw));
        let p = Conv2dParams::new(hidden, cfg.oup, 1).bias(false);
        let project = ConvBnAct::load(
            gpu,
            sd,
            p,
            &key(prefix, &format!("conv.{}", i + 1)),
            Some(&key(prefix, &format!("conv.{}", i + 2))),
            eps,
        )?;
        layers.push(("project".to_string(), project));
        Ok(InvertedResidual { cfg, layers })
    }

    fn residual(&self) -> bool {
        self.cfg.stride == 1 && self.cfg.inp == self.cfg.oup
    }

    /// Records the block.
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        let mut y = x.clone();
        let (last, rest) = self.layers.split_last().expect("a projection at least");
        for (_, l) in rest {
            y = l.forward(rec, &y)?;
        }
        // The skip joins the linear projection in its store.
        if self.residual() {
            last.1.forward_residual(rec, &y, x)
        } else {
            last.1.forward(rec, &y)
        }
    }

    /// CPU reference forward.
    pub fn reference(&self, x: ArrayView4<f32>) -> Result<Array4<f32>> {
        let mut y = x.to_owned();
        for (_, l) in &self.layers {
            y = l.reference(y.view())?;
        }
        if self.residual() {
            y = reference_add(&y, &x.to_owned(), Activation::None);
        }
        Ok(y)
    }

    /// Layers with output shapes, parameters and MACs.
    pub fn summary(&self, input: [usize; 4]) -> Result<Summary> {
        let mut s = Summary::default();
        let mut shape = input;
        for (name, l) in &self.layers {
            shape = s.push(name, l, shape)?;
        }
        Ok(s)
    }
}

/// torchvision's MobileNetV3 `InvertedResidual` (from an `InvertedResidualConfig`):
/// optional 1x1 expansion, k x k depthwise (stride, dilation), optional SE with
/// hard-sigmoid gate, 1x1 projection; hard-swish or ReLU; batch norm eps 0.001.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MobileNetV3Config {
    /// Input channels.
    pub input_channels: usize,
    /// Depthwise kernel size.
    pub kernel: usize,
    /// Expanded channels.
    pub expanded_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Whether the block has squeeze-and-excitation.
    pub use_se: bool,
    /// Hard-swish (`"HS"`) or ReLU (`"RE"`).
    pub use_hs: bool,
    /// Depthwise stride.
    pub stride: usize,
    /// Depthwise dilation.
    pub dilation: usize,
}

/// A MobileNetV3 inverted residual for inference.
#[derive(Debug)]
pub struct MobileNetV3Block {
    cfg: MobileNetV3Config,
    expand: Option<ConvBnAct>,
    depthwise: ConvBnAct,
    se: Option<SeLayer>,
    project: ConvBnAct,
}

impl MobileNetV3Block {
    /// Loads `block.0 ...` under `prefix` with torchvision's numbering (expansion, depthwise,
    /// SE `fc1` / `fc2`, projection; indices shift when a part is absent).
    pub fn load(gpu: &Gpu, cfg: MobileNetV3Config, sd: &StateDict, prefix: &str) -> Result<Self> {
        if cfg.stride != 1 && cfg.stride != 2 {
            return Err(invalid(
                "stride",
                format!("must be 1 or 2, got {}", cfg.stride),
            ));
        }
        let eps = 1e-3;
        let act = if cfg.use_hs {
            Activation::HardSwish
        } else {
            Activation::Relu
        };
        let mut i = 0;
        let expand = if cfg.expanded_channels != cfg.input_channels {
            let p = Conv2dParams::new(cfg.input_channels, cfg.expanded_channels, 1)
                .bias(false)
                .activation(act);
            let l = ConvBnAct::load(
                gpu,
                sd,
                p,
                &key(prefix, "block.0.0"),
                Some(&key(prefix, "block.0.1")),
                eps,
            )?;
            i += 1;
            Some(l)
        } else {
            None
        };
        let e = cfg.expanded_channels;
        let stride = if cfg.dilation > 1 { 1 } else { cfg.stride };
        let p = Conv2dParams::depthwise(e, 1, cfg.kernel)
            .stride(stride)
            .padding((cfg.kernel - 1) / 2 * cfg.dilation)
            .dilation(cfg.dilation)
            .bias(false)
            .activation(act);
        let depthwise = ConvBnAct::load(
            gpu,
            sd,
            p,
            &key(prefix, &format!("block.{i}.0")),
            Some(&key(prefix, &format!("block.{i}.1"))),
            eps,
        )?;
        i += 1;
        let se = if cfg.use_se {
            let s = make_divisible(e as f64 / 4.0, 8);
            let params =
                SqueezeExcitationParams::new(e, s).scale_activation(Activation::HardSigmoid);
            let layer = SeLayer::load(
                gpu,
                sd,
                params,
                &key(prefix, &format!("block.{i}.fc1")),
                &key(prefix, &format!("block.{i}.fc2")),
            )?;
            i += 1;
            Some(layer)
        } else {
            None
        };
        let p = Conv2dParams::new(e, cfg.out_channels, 1).bias(false);
        let project = ConvBnAct::load(
            gpu,
            sd,
            p,
            &key(prefix, &format!("block.{i}.0")),
            Some(&key(prefix, &format!("block.{i}.1"))),
            eps,
        )?;
        Ok(MobileNetV3Block::from_layers(
            cfg, expand, depthwise, se, project,
        ))
    }

    /// A block from layers loaded under other names (a converted TFLite model): the
    /// forward, reference and residual rule are the same.
    pub(super) fn from_layers(
        cfg: MobileNetV3Config,
        expand: Option<ConvBnAct>,
        depthwise: ConvBnAct,
        se: Option<SeLayer>,
        project: ConvBnAct,
    ) -> Self {
        MobileNetV3Block {
            cfg,
            expand,
            depthwise,
            se,
            project,
        }
    }

    fn residual(&self) -> bool {
        self.cfg.stride == 1 && self.cfg.input_channels == self.cfg.out_channels
    }

    /// Records the block.
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        let mut y = match &self.expand {
            Some(l) => l.forward(rec, x)?,
            None => x.clone(),
        };
        y = self.depthwise.forward(rec, &y)?;
        if let Some(se) = &self.se {
            y = se.forward(rec, &y)?;
        }
        if self.residual() {
            self.project.forward_residual(rec, &y, x)
        } else {
            self.project.forward(rec, &y)
        }
    }

    /// CPU reference forward.
    pub fn reference(&self, x: ArrayView4<f32>) -> Result<Array4<f32>> {
        let mut y = match &self.expand {
            Some(l) => l.reference(x)?,
            None => x.to_owned(),
        };
        y = self.depthwise.reference(y.view())?;
        if let Some(se) = &self.se {
            y = se.reference(y.view())?;
        }
        y = self.project.reference(y.view())?;
        if self.residual() {
            y = reference_add(&y, &x.to_owned(), Activation::None);
        }
        Ok(y)
    }

    /// Layers with output shapes, parameters and MACs (the SE as one row).
    pub fn summary(&self, input: [usize; 4]) -> Result<Summary> {
        let mut s = Summary::default();
        let mut shape = input;
        if let Some(l) = &self.expand {
            shape = s.push("expand", l, shape)?;
        }
        shape = s.push("depthwise", &self.depthwise, shape)?;
        if let Some(se) = &self.se {
            let cost = se.cost(shape)?;
            s.push_cost("se", shape, cost);
        }
        s.push("project", &self.project, shape)?;
        Ok(s)
    }
}

/// torchvision's `shufflenetv2.InvertedResidual(inp, oup, stride)`: stride 1 splits the
/// channels in half and transforms the second half; stride 2 transforms the input in
/// two branches; the halves are concatenated and shuffled with 2 groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShuffleV2Config {
    /// Input channels.
    pub inp: usize,
    /// Output channels (even).
    pub oup: usize,
    /// 1 or 2.
    pub stride: usize,
}

/// A ShuffleNetV2 unit for inference.
#[derive(Debug)]
pub struct ShuffleV2Unit {
    cfg: ShuffleV2Config,
    branch1: Option<[ConvBnAct; 2]>,
    branch2: [ConvBnAct; 3],
}

impl ShuffleV2Unit {
    /// Loads `branch1.{0,1,2,3}` (stride 2 only) and `branch2.{0,1,3,4,5,6}` under `prefix`.
    pub fn load(gpu: &Gpu, cfg: ShuffleV2Config, sd: &StateDict, prefix: &str) -> Result<Self> {
        if !(1..=3).contains(&cfg.stride) || !cfg.oup.is_multiple_of(2) {
            return Err(invalid(
                "stride",
                format!(
                    "stride must be 1 to 3 and oup even, got stride {} and oup {}",
                    cfg.stride, cfg.oup
                ),
            ));
        }
        let bf = cfg.oup / 2;
        if cfg.stride == 1 && cfg.inp != 2 * bf {
            return Err(invalid(
                "inp",
                format!(
                    "with stride 1, inp ({}) must equal oup ({})",
                    cfg.inp, cfg.oup
                ),
            ));
        }
        let eps = 1e-5;
        let k = |n: &str| key(prefix, n);
        let branch1 = if cfg.stride > 1 {
            let dw = Conv2dParams::depthwise(cfg.inp, 1, 3)
                .stride(cfg.stride)
                .padding(1)
                .bias(false);
            let pw = Conv2dParams::new(cfg.inp, bf, 1)
                .bias(false)
                .activation(Activation::Relu);
            Some([
                ConvBnAct::load(gpu, sd, dw, &k("branch1.0"), Some(&k("branch1.1")), eps)?,
                ConvBnAct::load(gpu, sd, pw, &k("branch1.2"), Some(&k("branch1.3")), eps)?,
            ])
        } else {
            None
        };
        let in2 = if cfg.stride > 1 { cfg.inp } else { bf };
        let p0 = Conv2dParams::new(in2, bf, 1)
            .bias(false)
            .activation(Activation::Relu);
        let p3 = Conv2dParams::depthwise(bf, 1, 3)
            .stride(cfg.stride)
            .padding(1)
            .bias(false);
        let p5 = Conv2dParams::new(bf, bf, 1)
            .bias(false)
            .activation(Activation::Relu);
        Ok(ShuffleV2Unit {
            cfg,
            branch1,
            branch2: [
                ConvBnAct::load(gpu, sd, p0, &k("branch2.0"), Some(&k("branch2.1")), eps)?,
                ConvBnAct::load(gpu, sd, p3, &k("branch2.3"), Some(&k("branch2.4")), eps)?,
                ConvBnAct::load(gpu, sd, p5, &k("branch2.5"), Some(&k("branch2.6")), eps)?,
            ],
        })
    }

    /// Records the unit.
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        let (left, right) = match &self.branch1 {
            None => {
                let bf = self.cfg.oup / 2;
                let mut halves = split(rec, x, &[bf, bf])?;
                let right = halves.pop().expect("two halves");
                (halves.pop().expect("two halves"), right)
            }
            Some([dw, pw]) => {
                let a = dw.forward(rec, x)?;
                (pw.forward(rec, &a)?, x.clone())
            }
        };
        let mut r = right;
        for l in &self.branch2 {
            r = l.forward(rec, &r)?;
        }
        let joined = concat(rec, &[&left, &r])?;
        channel_shuffle(rec, &joined, 2)
    }

    /// CPU reference forward.
    pub fn reference(&self, x: ArrayView4<f32>) -> Result<Array4<f32>> {
        let (left, right) = match &self.branch1 {
            None => {
                let bf = self.cfg.oup / 2;
                (
                    x.slice(ndarray::s![.., ..bf, .., ..]).to_owned(),
                    x.slice(ndarray::s![.., bf.., .., ..]).to_owned(),
                )
            }
            Some([dw, pw]) => (pw.reference(dw.reference(x)?.view())?, x.to_owned()),
        };
        let mut r = right;
        for l in &self.branch2 {
            r = l.reference(r.view())?;
        }
        let joined = reference::channel::concat(&[left.view(), r.view()])?;
        reference::channel::channel_shuffle(joined.view(), 2)
    }
}

/// A MobileNet v1 depthwise-separable block: 3x3 depthwise (stride) + BN + ReLU, 1x1
/// pointwise + BN + ReLU, in the usual PyTorch layout `Sequential(conv_dw, bn, relu,
/// conv_pw, bn, relu)` (names `0`, `1`, `3`, `4`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DepthwiseSeparableConfig {
    /// Input channels (before the width multiplier).
    pub in_channels: usize,
    /// Output channels (before the width multiplier).
    pub out_channels: usize,
    /// Depthwise stride.
    pub stride: usize,
    /// Width multiplier alpha: channels become `round(alpha * c)` (at least 1).
    pub alpha: f64,
}

impl DepthwiseSeparableConfig {
    /// A block at full width.
    pub fn new(in_channels: usize, out_channels: usize, stride: usize) -> Self {
        DepthwiseSeparableConfig {
            in_channels,
            out_channels,
            stride,
            alpha: 1.0,
        }
    }

    /// Sets the width multiplier.
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }

    /// Channels after the width multiplier `(in, out)`.
    pub fn channels(&self) -> (usize, usize) {
        let scale = |c: usize| ((c as f64 * self.alpha).round() as usize).max(1);
        (scale(self.in_channels), scale(self.out_channels))
    }

    fn layers(&self) -> (Conv2dParams, Conv2dParams) {
        let (cin, cout) = self.channels();
        (
            Conv2dParams::depthwise(cin, 1, 3)
                .stride(self.stride)
                .padding(1)
                .bias(false)
                .activation(Activation::Relu),
            Conv2dParams::new(cin, cout, 1)
                .bias(false)
                .activation(Activation::Relu),
        )
    }

    /// Cost at resolution multiplier `rho` on a `[N, C, H, W]` base input (channels as
    /// given before alpha): the input becomes `round(rho * H) x round(rho * W)`.
    /// Parameters (batch norms included) scale about as alpha^2 and MACs as
    /// alpha^2 rho^2, the MobileNet paper's multipliers.
    pub fn cost_at(&self, rho: f64, base: [usize; 4]) -> Result<Cost> {
        if !(self.alpha > 0.0 && rho > 0.0) {
            return Err(invalid(
                "alpha",
                format!("alpha ({}) and rho ({rho}) must be positive", self.alpha),
            ));
        }
        let (cin, cout) = self.channels();
        let h = ((base[2] as f64 * rho).round() as usize).max(1);
        let w = ((base[3] as f64 * rho).round() as usize).max(1);
        let input = [base[0], cin, h, w];
        let (dw, pw) = self.layers();
        let mid = dw.output_shape(input)?;
        let mut c = dw.cost(input)? + pw.cost(mid)?;
        c.params += 2 * (cin + cout) as u64;
        Ok(c)
    }
}

/// A MobileNet v1 depthwise-separable block for inference.
#[derive(Debug)]
pub struct DepthwiseSeparableBlock {
    depthwise: ConvBnAct,
    pointwise: ConvBnAct,
}

impl DepthwiseSeparableBlock {
    /// Loads `{prefix}.0/.1` (depthwise and its BN) and `{prefix}.3/.4` (pointwise and BN).
    pub fn load(
        gpu: &Gpu,
        cfg: DepthwiseSeparableConfig,
        sd: &StateDict,
        prefix: &str,
    ) -> Result<Self> {
        let (dw, pw) = cfg.layers();
        Ok(DepthwiseSeparableBlock {
            depthwise: ConvBnAct::load(
                gpu,
                sd,
                dw,
                &key(prefix, "0"),
                Some(&key(prefix, "1")),
                1e-5,
            )?,
            pointwise: ConvBnAct::load(
                gpu,
                sd,
                pw,
                &key(prefix, "3"),
                Some(&key(prefix, "4")),
                1e-5,
            )?,
        })
    }

    /// Records the block.
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        let a = self.depthwise.forward(rec, x)?;
        self.pointwise.forward(rec, &a)
    }

    /// CPU reference forward.
    pub fn reference(&self, x: ArrayView4<f32>) -> Result<Array4<f32>> {
        self.pointwise
            .reference(self.depthwise.reference(x)?.view())
    }
}

/// `n` 3x3 convolutions with BN and ReLU, named `{prefix}.{i}.0` / `{prefix}.{i}.1`, with
/// `(in, out)` channels from `widths`.
fn conv3x3_stack(
    gpu: &Gpu,
    sd: &StateDict,
    prefix: &str,
    n: usize,
    widths: impl Iterator<Item = (usize, usize)>,
) -> Result<Vec<ConvBnAct>> {
    if n == 0 {
        return Err(invalid("n", "a stage needs at least one convolution"));
    }
    widths
        .enumerate()
        .map(|(i, (cin, cout))| {
            let p = Conv2dParams::new(cin, cout, 3)
                .padding(1)
                .bias(false)
                .activation(Activation::Relu);
            let conv = key(prefix, &format!("{i}.0"));
            ConvBnAct::load(
                gpu,
                sd,
                p,
                &conv,
                Some(&key(prefix, &format!("{i}.1"))),
                1e-5,
            )
        })
        .collect()
}

/// A SegNet encoder stage: `n` 3x3 convolutions with BN and ReLU (names
/// `{prefix}.{i}.0` / `{prefix}.{i}.1`), then 2x2 max pooling that keeps its indices for
/// the decoder.
#[derive(Debug)]
pub struct SegNetEncoder {
    convs: Vec<ConvBnAct>,
}

/// What an encoder stage hands its decoder: the pooled map, the indices, and the size
/// before pooling (for odd sizes).
#[derive(Debug)]
pub struct EncoderOutput {
    /// The pooled feature map.
    pub pooled: Tensor,
    /// Max-pooling indices (stay on the GPU).
    pub indices: crate::gpu::IndexTensor,
    /// `(H, W)` before pooling.
    pub size: (usize, usize),
}

impl SegNetEncoder {
    /// Loads `n` convolutions `in -> out -> out ...`.
    pub fn load(
        gpu: &Gpu,
        in_channels: usize,
        out_channels: usize,
        n: usize,
        sd: &StateDict,
        prefix: &str,
    ) -> Result<Self> {
        // in -> out, then out -> out.
        let widths = (0..n).map(|i| {
            (
                if i == 0 { in_channels } else { out_channels },
                out_channels,
            )
        });
        let convs = conv3x3_stack(gpu, sd, prefix, n, widths)?;
        Ok(SegNetEncoder { convs })
    }

    /// Records the stage.
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<EncoderOutput> {
        let mut y = x.clone();
        for c in &self.convs {
            y = c.forward(rec, &y)?;
        }
        let s = y.shape();
        let (pooled, indices) = crate::ops::pool::MaxPool2dParams::new(2).forward(rec, &y)?;
        Ok(EncoderOutput {
            pooled,
            indices,
            size: (s[2], s[3]),
        })
    }

    /// CPU reference: the pooled map and its indices.
    pub fn reference(&self, x: ArrayView4<f32>) -> Result<(Array4<f32>, Array4<i64>)> {
        let mut y = x.to_owned();
        for c in &self.convs {
            y = c.reference(y.view())?;
        }
        reference::pool::max_pool2d(&crate::ops::pool::MaxPool2dParams::new(2), y.view())
    }
}

/// A SegNet decoder stage: max unpooling with the encoder's indices back to its size,
/// then `n` 3x3 convolutions with BN and ReLU (`{prefix}.{i}.0` / `.1`).
#[derive(Debug)]
pub struct SegNetDecoder {
    convs: Vec<ConvBnAct>,
}

impl SegNetDecoder {
    /// Loads `n` convolutions `in -> in ... -> out` (the last one changes the width).
    pub fn load(
        gpu: &Gpu,
        in_channels: usize,
        out_channels: usize,
        n: usize,
        sd: &StateDict,
        prefix: &str,
    ) -> Result<Self> {
        // in -> in, the last one in -> out.
        let widths = (0..n).map(|i| {
            (
                in_channels,
                if i + 1 == n {
                    out_channels
                } else {
                    in_channels
                },
            )
        });
        let convs = conv3x3_stack(gpu, sd, prefix, n, widths)?;
        Ok(SegNetDecoder { convs })
    }

    /// Records the stage from its encoder's output (the indices never leave the GPU).
    pub fn forward(&self, rec: &mut Recorder<'_>, enc: &EncoderOutput) -> Result<Tensor> {
        let unpool = crate::ops::pool::MaxUnpool2dParams::new(2).output_size(enc.size);
        let mut y = unpool.forward(rec, &enc.pooled, &enc.indices)?;
        for c in &self.convs {
            y = c.forward(rec, &y)?;
        }
        Ok(y)
    }

    /// CPU reference from the encoder's reference output.
    pub fn reference(
        &self,
        pooled: ArrayView4<f32>,
        indices: ndarray::ArrayView4<i64>,
        size: (usize, usize),
    ) -> Result<Array4<f32>> {
        let unpool = crate::ops::pool::MaxUnpool2dParams::new(2).output_size(size);
        let mut y = reference::pool::max_unpool2d(&unpool, pooled, indices)?;
        for c in &self.convs {
            y = c.reference(y.view())?;
        }
        Ok(y)
    }
}

/// A ShuffleNet v1 unit: 1x1 group convolution (BN, ReLU) whose output is written already
/// channel-shuffled (the shuffle fused into its store), 3x3 depthwise (stride, BN), 1x1
/// group convolution (BN); stride 1 adds the input, stride 2 concatenates a 3x3 stride-2
/// average pool of the input; ReLU at the end. Names `compress.0/.1`, `depthwise.0/.1`,
/// `expand.0/.1` (convolution, batch norm).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShuffleV1Config {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels (including the pooled shortcut for stride 2).
    pub out_channels: usize,
    /// Groups of the 1x1 convolutions.
    pub groups: usize,
    /// Groups of the first 1x1 (1 for the first unit of stage 2, as in the paper).
    pub first_groups: usize,
    /// 1 or 2.
    pub stride: usize,
    /// Bottleneck channels (a quarter of the output in the paper).
    pub bottleneck: usize,
}

/// A ShuffleNet v1 unit for inference.
#[derive(Debug)]
pub struct ShuffleV1Unit {
    cfg: ShuffleV1Config,
    compress: ConvBnAct,
    depthwise: ConvBnAct,
    expand: ConvBnAct,
}

impl ShuffleV1Unit {
    /// Loads the unit under `prefix`.
    pub fn load(gpu: &Gpu, cfg: ShuffleV1Config, sd: &StateDict, prefix: &str) -> Result<Self> {
        let branch_out = if cfg.stride == 2 {
            cfg.out_channels
                .checked_sub(cfg.in_channels)
                .filter(|c| *c > 0)
                .ok_or_else(|| {
                    invalid(
                        "out_channels",
                        format!(
                            "with stride 2, out_channels ({}) must exceed in_channels ({})",
                            cfg.out_channels, cfg.in_channels
                        ),
                    )
                })?
        } else if cfg.stride == 1 && cfg.in_channels == cfg.out_channels {
            cfg.out_channels
        } else {
            return Err(invalid(
                "stride",
                format!(
                    "stride 1 needs in_channels == out_channels, stride 2 a wider output; got \
                     stride {}, {} -> {}",
                    cfg.stride, cfg.in_channels, cfg.out_channels
                ),
            ));
        };
        let k = |n: &str| key(prefix, n);
        let eps = 1e-5;
        let pc = Conv2dParams::new(cfg.in_channels, cfg.bottleneck, 1)
            .groups(cfg.first_groups)
            .bias(false)
            .activation(Activation::Relu);
        let pd = Conv2dParams::depthwise(cfg.bottleneck, 1, 3)
            .stride(cfg.stride)
            .padding(1)
            .bias(false);
        let pe = Conv2dParams::new(cfg.bottleneck, branch_out, 1)
            .groups(cfg.groups)
            .bias(false);
        Ok(ShuffleV1Unit {
            cfg,
            compress: ConvBnAct::load(gpu, sd, pc, &k("compress.0"), Some(&k("compress.1")), eps)?,
            depthwise: ConvBnAct::load(
                gpu,
                sd,
                pd,
                &k("depthwise.0"),
                Some(&k("depthwise.1")),
                eps,
            )?,
            expand: ConvBnAct::load(gpu, sd, pe, &k("expand.0"), Some(&k("expand.1")), eps)?,
        })
    }

    /// Records the unit: the shuffle costs no pass of its own.
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        let a = self.compress.forward_shuffled(rec, x, self.cfg.groups)?;
        let b = self.depthwise.forward(rec, &a)?;
        if self.cfg.stride == 1 {
            self.expand.forward_add_then(rec, &b, x, Activation::Relu)
        } else {
            let c = self.expand.forward(rec, &b)?;
            let pool = crate::ops::pool::AvgPool2dParams::new(3)
                .stride(2)
                .padding(1);
            let shortcut = pool.forward(rec, x)?;
            let joined = concat(rec, &[&shortcut, &c])?;
            crate::ops::channel::activation(rec, &joined, Activation::Relu)
        }
    }

    /// CPU reference forward (with an explicit shuffle).
    pub fn reference(&self, x: ArrayView4<f32>) -> Result<Array4<f32>> {
        let a = self.compress.reference(x)?;
        let a = reference::channel::channel_shuffle(a.view(), self.cfg.groups)?;
        let b = self.depthwise.reference(a.view())?;
        let c = self.expand.reference(b.view())?;
        if self.cfg.stride == 1 {
            Ok(reference_add(&c, &x.to_owned(), Activation::Relu))
        } else {
            let pool = crate::ops::pool::AvgPool2dParams::new(3)
                .stride(2)
                .padding(1);
            let shortcut = reference::pool::avg_pool2d(&pool, x)?;
            let joined = reference::channel::concat(&[shortcut.view(), c.view()])?;
            Ok(reference::channel::activation(
                joined.view(),
                Activation::Relu,
            ))
        }
    }
}
