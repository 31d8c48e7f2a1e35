//! The MobileNet blocks: V1's depthwise-separable block (with the width and resolution
//! multipliers), V2's inverted residual (torchvision's `mobilenetv2.InvertedResidual`) and
//! V3's (torchvision's `mobilenetv3.InvertedResidual`, with SE and hard-swish).

use std::sync::Mutex;

use super::graph::{HostValue, Inputs, Node, Value};
use super::{conv_bn, conv_bn_at, Architecture, ConvBnAct, Graph, Model, SeNode, SummaryRow};
use crate::error::{fail_if, Error, Result};
use crate::gpu::{DeviceCaps, Gpu, Recorder, Tensor};
use crate::ops::attention::SqueezeExcitationParams;
use crate::ops::conv::{Conv2dParams, ResidualJoin};
use crate::ops::inverted_residual::{
    select_kernel, FusedInvertedResidual, GatePlacement, InvertedResidualKernel,
    InvertedResidualParams, WeightBias,
};
use crate::ops::setters;
use crate::ops::{Activation, Cost};
use crate::weights::{key, StateDict};

/// torchvision's `_make_divisible(v, 8)`: round to the nearest multiple of 8, at least 8,
/// and never more than 10% below `v`.
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    make_divisible_with_limit(v, divisor, 0.9)
}

/// timm's `make_divisible(v, divisor, round_limit=round_limit)`: `v` to the nearest
/// multiple of `divisor` (at least `divisor`), one multiple more where that falls below
/// `round_limit * v` (0.9 in torchvision's rule; 0 never).
pub(crate) fn make_divisible_with_limit(v: f64, divisor: usize, round_limit: f64) -> usize {
    let d = divisor as f64;
    let mut new_v = d.max(((v + d / 2.0) / d).floor() * d);
    if new_v < round_limit * v {
        new_v += d;
    }
    new_v as usize
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
    /// Expanded channels, `round(inp * t)` as torchvision computes it: Python's `round`
    /// takes halves to the even neighbour (33 x 2.5 gives 82).
    pub fn hidden(&self) -> usize {
        (self.inp as f64 * self.expand_ratio).round_ties_even() as usize
    }

    fn residual(&self) -> bool {
        self.stride == 1 && self.inp == self.oup
    }
}

/// A MobileNetV2 inverted residual for inference: three dispatches (two without
/// expansion), the skip added in the projection's store.
pub type InvertedResidual = Model<InvertedResidualConfig>;

impl Architecture for InvertedResidualConfig {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        check_stride(self.stride)
    }

    /// Loads `conv.0.0` / `conv.0.1` (expansion), the depthwise `conv.i.0` / `conv.i.1`,
    /// and the projection `conv.{i+1}` with its batch norm `conv.{i+2}`.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        self.build_dilated(gpu, sd, prefix, 1)
    }
}

impl InvertedResidualConfig {
    /// The block's graph; a `dilation` above 1 is segmentation_models_pytorch's patch of
    /// a dilated stage (`replace_strides_with_dilation`): the depthwise convolution at
    /// stride 1 with that dilation and padding, the skip still as the unpatched block's.
    pub(crate) fn build_dilated(
        &self,
        gpu: &Gpu,
        sd: &StateDict,
        prefix: &str,
        dilation: usize,
    ) -> Result<Graph> {
        let cfg = self;
        let stride = if dilation > 1 { 1 } else { cfg.stride };
        let conv = key(prefix, "conv");
        let at = |j: usize| key(&conv, &j.to_string());
        let (hidden, eps, relu6) = (cfg.hidden(), 1e-5, Activation::Relu6);
        let mut i = 0;
        let expand = if cfg.expand_ratio != 1.0 {
            let p = Conv2dParams::new(cfg.inp, hidden, 1)
                .bias(false)
                .activation(relu6);
            i = 1;
            Some(conv_bn_at(gpu, sd, p, &conv, 0, eps)?)
        } else {
            None
        };
        let p = Conv2dParams::depthwise(hidden, 1, 3)
            .stride(stride)
            .padding(dilation)
            .dilation(dilation)
            .bias(false)
            .activation(relu6);
        let depthwise = conv_bn_at(gpu, sd, p, &conv, i, eps)?;
        // The projection is not wrapped: its conv and batch norm are siblings.
        let p = Conv2dParams::new(hidden, cfg.oup, 1).bias(false);
        let project = conv_bn(gpu, sd, p, &at(i + 1), &at(i + 2), eps)?;
        let names = ["expand", "depthwise", "se", "project"];
        let layers = (expand, depthwise, None, project);
        inverted_residual_graph(gpu, cfg.residual(), layers, names)
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

impl MobileNetV3Config {
    fn activation(&self) -> Activation {
        if self.use_hs {
            Activation::HardSwish
        } else {
            Activation::Relu
        }
    }
}

/// A MobileNetV3 inverted residual for inference.
pub type MobileNetV3Block = Model<MobileNetV3Config>;

/// The graph of a MobileNetV3 block from its layers, its nodes named `names` (expansion,
/// depthwise, SE, projection); also for layers loaded under other names (a converted TFLite
/// model): the graph and the residual rule are the same.
pub(crate) fn v3_block_graph(
    gpu: &Gpu,
    cfg: &MobileNetV3Config,
    layers: BlockLayers,
    names: [&str; 4],
) -> Result<Graph> {
    let skip = cfg.stride == 1 && cfg.input_channels == cfg.out_channels;
    inverted_residual_graph(gpu, skip, layers, names)
}

/// An inverted residual's layers: expansion (optional), depthwise, SE (optional),
/// projection.
pub(crate) type BlockLayers = (Option<ConvBnAct>, ConvBnAct, Option<SeNode>, ConvBnAct);

/// The graph of an inverted residual (V2, V3 or EfficientNet's MBConv) from its layers,
/// its nodes named `names`, with the input added to the projection's output when `skip`.
/// A block whose layers the fused kernel can run ([`fusable`]) is one node that runs as
/// the fused kernel where [`select_kernel`] picks it and as these layers elsewhere.
pub(crate) fn inverted_residual_graph(
    gpu: &Gpu,
    skip: bool,
    layers: BlockLayers,
    names: [&str; 4],
) -> Result<Graph> {
    padded_inverted_residual_graph(gpu, skip, layers, names, None)
}

/// [`inverted_residual_graph`] with `pad` (a padding op, named after the depthwise layer
/// with `.pad`) run on the depthwise layer's input: timm's TensorFlow-padded strided
/// blocks, which the fused kernel does not run.
pub(crate) fn padded_inverted_residual_graph(
    gpu: &Gpu,
    skip: bool,
    (expand, depthwise, se, project): BlockLayers,
    names: [&str; 4],
    pad: Option<super::Op>,
) -> Result<Graph> {
    let fusable = match pad {
        Some(_) => None,
        None => fusable(skip, expand.as_ref(), &depthwise, se.as_ref(), &project),
    };
    let fused = match fusable {
        Some(params) => {
            let e = expand.as_ref().map(|l| l.folded()).transpose()?;
            let (d, p) = (depthwise.folded()?, project.folded()?);
            fn view(wb: &(ndarray::Array4<f32>, ndarray::Array1<f32>)) -> WeightBias<'_> {
                (wb.0.view(), wb.1.view())
            }
            let layer =
                FusedInvertedResidual::new(gpu, params, e.as_ref().map(view), view(&d), view(&p))?;
            Some(match &se {
                Some(se) => layer.with_squeeze_excitation(se.layer())?,
                None => layer,
            })
        }
        None => None,
    };
    let mut g = Graph::new();
    let x = g.input();
    let mut y = x;
    if let Some(l) = expand {
        y = g.add(names[0], l, &[y]);
    }
    if let Some(pad) = pad {
        y = g.add(format!("{}.pad", names[1]), pad, &[y]);
    }
    y = g.add(names[1], depthwise, &[y]);
    // The SE's scale is applied by the projection as it reads its input (one pass and one
    // expanded map fewer); the skip joins the projection in its store.
    let mut project_inputs = vec![y];
    let mut project = project;
    if let Some(se) = se {
        let act = se.scale_activation();
        project_inputs.push(g.add(names[2], se.gate_only(), &[y]));
        project = project.with_input_gate(act)?;
    }
    if skip {
        project_inputs.push(x);
        project = project.with_residual(ResidualJoin::AfterActivation)?;
    }
    let y = g.add(names[3], project, &project_inputs);
    g.set_outputs(&[y]);
    let Some(fused) = fused else {
        return Ok(g);
    };
    let mut outer = Graph::new();
    let x = outer.input();
    let node = FusedBlockNode {
        fused,
        layers: fused_layer_name(&g),
        unfused: g,
        choices: Mutex::default(),
    };
    // Unnamed: the summary and the traffic report name the layers inside.
    let y = outer.add("", node, &[x]);
    outer.set_outputs(&[y]);
    Ok(outer)
}

/// The names of `graph`'s layers joined by ` + `.
fn fused_layer_name(graph: &Graph) -> String {
    let names: Vec<&str> = graph.names().filter(|n| !n.is_empty()).collect();
    names.join(" + ")
}

/// The fused kernel's parameters for these layers, when it computes exactly what they
/// do: 1x1 expansion (or none) with an activation, a depthwise convolution with square
/// window and zero padding the same on both axes, an SE gate on the depthwise output
/// (or none), a linear 1x1 projection with the skip rule of the fused kernel.
fn fusable(
    skip: bool,
    expand: Option<&ConvBnAct>,
    depthwise: &ConvBnAct,
    se: Option<&SeNode>,
    project: &ConvBnAct,
) -> Option<InvertedResidualParams> {
    let d = depthwise.params();
    let (k, s, dil) = (d.kernel_size.0, d.stride.0, d.dilation.0);
    let square = d.kernel_size == (k, k) && d.stride == (s, s) && d.dilation == (dil, dil);
    // The same padding on both axes (symmetric or not), zeros.
    let (rows, columns) = d.pads();
    let padded = rows == columns && d.padding_mode == Default::default();
    let pointwise = |l: &ConvBnAct| l.params().is_pointwise();
    let params = InvertedResidualParams {
        in_channels: expand.map_or(d.in_channels, |e| e.params().in_channels),
        hidden_channels: d.in_channels,
        out_channels: project.params().out_channels,
        kernel_size: k,
        stride: s,
        dilation: dil,
        padding: Some(rows),
        expand_activation: expand.map_or(Activation::None, |e| e.params().activation),
        depthwise_activation: d.activation,
        force_expansion: expand.is_some(),
        use_se: se.is_some(),
    };
    // The fused kernel has no activations with parameters.
    let plain = [expand, Some(depthwise), Some(project)]
        .into_iter()
        .flatten()
        .all(|l| l.params().param_activation.is_none());
    let ok = se.is_none_or(|s| !s.of_sum())
        && plain
        && square
        && padded
        && d.is_depthwise()
        && d.out_channels == d.in_channels
        && expand.is_none_or(|e| pointwise(e) && e.params().out_channels == d.in_channels)
        && params.has_expansion() == expand.is_some()
        && pointwise(project)
        && project.params().activation == Activation::None
        && project.params().in_channels == d.in_channels
        && params.has_skip() == skip
        && params.validate().is_ok();
    ok.then_some(params)
}

/// An inverted residual behind one node: the fused kernel (two passes with SE) where
/// [`select_kernel`] picks it, its separate layers (`unfused`) elsewhere. The reference,
/// the shapes and the summary are the separate layers'.
#[derive(Debug)]
struct FusedBlockNode {
    fused: FusedInvertedResidual,
    /// The names of the layers the fused passes replace, joined by ` + `: their layer
    /// in the traffic report and the profile.
    layers: String,
    unfused: Graph,
    /// The kernel chosen per input shape and device: the choice weighs a few hundred
    /// tiles (about 0.1 ms), too much to repeat for every frame of a video.
    choices: Mutex<Vec<KernelChoice>>,
}

/// An input shape and device, and the kernel chosen for them.
type KernelChoice = ([usize; 4], DeviceCaps, InvertedResidualKernel);

/// Shapes whose choice a fused block keeps (the oldest is forgotten first).
const CHOICES_KEPT: usize = 8;

impl FusedBlockNode {
    /// [`select_kernel`] for `input` on a device with `caps`, remembered.
    fn kernel(&self, input: [usize; 4], caps: &DeviceCaps) -> InvertedResidualKernel {
        let mut choices = self.choices.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, k)) = choices.iter().find(|(s, c, _)| *s == input && c == caps) {
            return *k;
        }
        let k = select_kernel(self.fused.params(), input, caps);
        if choices.len() == CHOICES_KEPT {
            choices.remove(0);
        }
        choices.push((input, caps.clone(), k));
        k
    }
}

impl Node for FusedBlockNode {
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        self.unfused.shapes(inputs)
    }

    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        Node::cost(&self.unfused, inputs)
    }

    fn rows(&self, name: &str, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<SummaryRow>> {
        self.unfused.rows(name, inputs)
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        let x = inputs.get(0)?.tensor()?;
        let kernel = self.kernel(x.shape(), rec.gpu().caps());
        if kernel == InvertedResidualKernel::Unfused {
            return Node::forward(&self.unfused, rec, inputs);
        }
        rec.enter_layer(&self.layers);
        let y = self.forward_fused(rec, x, kernel);
        rec.leave_layer();
        y
    }

    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        Node::reference(&self.unfused, inputs)
    }
}

impl FusedBlockNode {
    /// The fused passes of `kernel` (not `Unfused`) on `x`.
    fn forward_fused(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        kernel: InvertedResidualKernel,
    ) -> Result<Vec<Value>> {
        match kernel {
            InvertedResidualKernel::Fused(tile) => {
                Ok(vec![Value::Tensor(self.fused.forward_with(rec, x, tile)?)])
            }
            InvertedResidualKernel::TwoPass {
                expand,
                project,
                gate,
            } => {
                // The choice bounds the SE's width by the hidden channels; a wider one
                // takes its own dispatch.
                let caps = rec.gpu().caps();
                let gate = match gate {
                    GatePlacement::InPasses => {
                        self.fused
                            .gate_placement(x.shape(), (expand, project), caps)
                    }
                    GatePlacement::Separate => GatePlacement::Separate,
                };
                let y = self
                    .fused
                    .forward_two_pass(rec, x, (expand, project), gate)?;
                Ok(vec![Value::Tensor(y)])
            }
            InvertedResidualKernel::Unfused => Err(Error::Gpu(
                "inverted residual: the unfused kernel has no fused passes".into(),
            )),
        }
    }
}

impl Architecture for MobileNetV3Config {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        check_stride(self.stride)
    }

    /// Loads `block.0 ...` with torchvision's numbering (expansion, depthwise, SE `fc1` /
    /// `fc2`, projection; indices shift when a part is absent).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let cfg = self;
        let k = |n: String| key(prefix, &n);
        let block = key(prefix, "block");
        let eps = 1e-3;
        let act = cfg.activation();
        let mut i = 0;
        let expand = if cfg.expanded_channels != cfg.input_channels {
            let p = Conv2dParams::new(cfg.input_channels, cfg.expanded_channels, 1)
                .bias(false)
                .activation(act);
            i += 1;
            Some(conv_bn_at(gpu, sd, p, &block, 0, eps)?)
        } else {
            None
        };
        let e = cfg.expanded_channels;
        // torchvision: a dilated depthwise convolution keeps stride 1.
        let stride = if cfg.dilation > 1 { 1 } else { cfg.stride };
        let p = Conv2dParams::depthwise(e, 1, cfg.kernel)
            .stride(stride)
            .padding((cfg.kernel - 1) / 2 * cfg.dilation)
            .dilation(cfg.dilation)
            .bias(false)
            .activation(act);
        let depthwise = conv_bn_at(gpu, sd, p, &block, i, eps)?;
        i += 1;
        let se = if cfg.use_se {
            let s = make_divisible(e as f64 / 4.0, 8);
            let params =
                SqueezeExcitationParams::new(e, s).scale_activation(Activation::HardSigmoid);
            let fc = |n: &str| k(format!("block.{i}.{n}"));
            let layer = SeNode::load(gpu, sd, params, &fc("fc1"), &fc("fc2"))?;
            i += 1;
            Some(layer)
        } else {
            None
        };
        let p = Conv2dParams::new(e, cfg.out_channels, 1).bias(false);
        let project = conv_bn_at(gpu, sd, p, &block, i, eps)?;
        let names = ["expand", "depthwise", "se", "project"];
        v3_block_graph(gpu, cfg, (expand, depthwise, se, project), names)
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
        fail_if(!(self.alpha > 0.0 && rho > 0.0), "alpha", || {
            format!("alpha ({}) and rho ({rho}) must be positive", self.alpha)
        })?;
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

setters!(DepthwiseSeparableConfig {
    /// Sets the width multiplier.
    alpha: f64,
});

/// A MobileNet v1 depthwise-separable block for inference.
pub type DepthwiseSeparableBlock = Model<DepthwiseSeparableConfig>;

impl Architecture for DepthwiseSeparableConfig {
    /// Loads `0` / `1` (depthwise and its BN) and `3` / `4` (pointwise and BN).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let cfg = self;
        let (dw, pw) = cfg.layers();
        let k = |n: &str| key(prefix, n);
        let mut g = Graph::new();
        let x = g.input();
        let a = g.add(
            "depthwise",
            conv_bn(gpu, sd, dw, &k("0"), &k("1"), 1e-5)?,
            &[x],
        );
        let y = g.add(
            "pointwise",
            conv_bn(gpu, sd, pw, &k("3"), &k("4"), 1e-5)?,
            &[a],
        );
        g.set_outputs(&[y]);
        Ok(g)
    }
}

/// MobileNet blocks run with stride 1 or 2.
fn check_stride(stride: usize) -> Result<()> {
    fail_if(stride != 1 && stride != 2, "stride", || {
        format!("must be 1 or 2, got {stride}")
    })
}
