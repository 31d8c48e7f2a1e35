//! Robust Video Matting (Lin et al. 2022, PeterL1n/RobustVideoMatting's
//! `MattingNetwork`), the recurrent human matting network of video calls, under its
//! state-dict names, so its checkpoints (`rvm_mobilenetv3.pth`, `rvm_resnet50.pth`,
//! converted with `safetensors.torch.save_file(torch.load(path), out)`) load as they are.
//!
//! An encoder gives maps at 1/2, 1/4, 1/8 and 1/16 of the frame: torchvision's
//! `mobilenet_v3_large` features with the last stage dilated (the frame normalised with
//! ImageNet's mean and deviation first, inside the network), or torchvision's ResNet-50
//! with `replace_stride_with_dilation=[False, False, True]` (the stem's ReLU, `layer1`,
//! `layer2`, `layer4`). An LR-ASPP module (a 1x1 convolution + BN + ReLU, gated by a
//! sigmoid of a 1x1 convolution of the global average) reduces the deepest. The recurrent
//! decoder runs a ConvGRU on half the channels at each of the four resolutions, carrying
//! its hidden state from one frame to the next; between them each stage upsamples by 2
//! (bilinear, corners not aligned), crops to the skip's size and joins the skip and the
//! frame average-pooled to that size (`AvgPool2d(2, 2, count_include_pad=False,
//! ceil_mode=True)`). The output block's two 3x3 convolutions give 16 channels; a 1x1
//! projection gives the foreground residual and the alpha (or, in the segmentation pass,
//! one logit map).
//!
//! The states are tensors that stay on the GPU: pass each frame's [`RvmOutput::state`] to
//! the next forward. No state (`None`, PyTorch's `r1=None`) starts from zeros.
//!
//! PyTorch's time-series input `[B, T, C, H, W]` is the same network run over the frames
//! in order, the state carried: call [`RobustVideoMatting::forward`] once a frame.
//!
//! At a `downsample_ratio` other than 1 the frame is resized first (bilinear, the factor
//! mapping positions) and the matting pass brings its output back to the frame's size
//! through the deep guided filter (`DeepGuidedFilterRefiner`): each side of the resized
//! frame with its channel mean and the projection's foreground and alpha are box-filtered
//! (`refiner.box_filter`, a learned 3x3 depthwise convolution) into local means,
//! covariances and variances; three 1x1 convolutions of those and the decoder's 16
//! channels give the coefficients `A`, and `b = mean_y - A * mean_x`; both are resized
//! to the frame and `A * frame + b` is the output. The fast guided filter
//! (`RvmRefiner::FastGuidedFilter`) takes `A = cov / (var + 1e-5)` instead, from box
//! filters of constant weights (a 1x3 then a 3x1 mean).
//!
//! The RVM code is GPL-3.0 and not vendored; `tests/golden/make_golden_rvm.py` writes the
//! architecture out from torchvision's modules to make the golden files.

use ndarray::{Array4, ArrayView4};

use super::append_features;
use super::mobilenet_v3::MobileNetV3FeaturesConfig;
use super::resnet::{DilationRule, ResNetConfig};
use crate::blocks::ValueId;
use crate::blocks::{conv_bn, ConvBnAct, Graph, HostValue, Inputs, Node, Op, Summary, Value};
use crate::error::{fail_if, Error, Result};
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::ops::channel::{self, ParamActivation};
use crate::ops::conv::Conv2dParams;
use crate::ops::norm::{BatchNorm2d, BatchNorm2dParams};
use crate::ops::pool::{AvgPool2dParams, GlobalPool};
use crate::ops::upsample::UpsampleParams;
use crate::ops::{setters, Activation, Cost};
use crate::reference;
use crate::weights::{key, StateDict};

/// The frame's channels.
const IMAGE: usize = 3;
/// The output block's width (`decoder_channels[3]`), which the projections read.
const HIDDEN: usize = 16;

/// RVM's encoder (`MattingNetwork(variant=...)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RvmVariant {
    /// `'mobilenetv3'`: torchvision's MobileNetV3-Large, last stage dilated; LR-ASPP to
    /// 128 channels; decoder widths 80, 40, 32, 16.
    MobileNetV3,
    /// `'resnet50'`: torchvision's ResNet-50, `layer4` dilated; LR-ASPP to 256 channels;
    /// decoder widths 128, 64, 32, 16.
    ResNet50,
}

impl RvmVariant {
    /// `feature_channels` of the decoder (the maps at 1/2, 1/4, 1/8, and the LR-ASPP's
    /// output at 1/16).
    fn feature_channels(self) -> [usize; 4] {
        match self {
            RvmVariant::MobileNetV3 => [16, 24, 40, 128],
            RvmVariant::ResNet50 => [64, 256, 512, 256],
        }
    }

    /// `decoder_channels`.
    fn decoder_channels(self) -> [usize; 4] {
        match self {
            RvmVariant::MobileNetV3 => [80, 40, 32, HIDDEN],
            RvmVariant::ResNet50 => [128, 64, 32, HIDDEN],
        }
    }

    /// The encoder's deepest map's channels (the LR-ASPP's input).
    fn encoder_channels(self) -> usize {
        match self {
            RvmVariant::MobileNetV3 => 960,
            RvmVariant::ResNet50 => 2048,
        }
    }
}

/// RVM's refiner (`MattingNetwork(refiner=...)`), which the matting pass runs at a
/// `downsample_ratio` other than 1 to bring the alpha and foreground back to the frame's
/// size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RvmRefiner {
    /// `'deep_guided_filter'` (the default, and the released checkpoints'): a guided
    /// filter whose coefficients come from three 1x1 convolutions of the local
    /// statistics and the decoder's 16 channels (`refiner.box_filter`, `refiner.conv.*`).
    DeepGuidedFilter,
    /// `'fast_guided_filter'`: the classic guided filter (radius 1, eps 1e-5) of the
    /// resized frame and the projection, no weights (`A = cov / (var + eps)`).
    FastGuidedFilter,
}

impl RvmRefiner {
    /// The refiner of PyTorch's `refiner` name (`'deep_guided_filter'` or
    /// `'fast_guided_filter'`).
    pub fn from_name(refiner: &str) -> Result<Self> {
        match refiner {
            "deep_guided_filter" => Ok(RvmRefiner::DeepGuidedFilter),
            "fast_guided_filter" => Ok(RvmRefiner::FastGuidedFilter),
            _ => Err(Error::InvalidParam {
                name: "refiner",
                reason: format!(
                    "must be 'deep_guided_filter' or 'fast_guided_filter', got '{refiner}'"
                ),
            }),
        }
    }
}

/// The configuration of a Robust Video Matting network: `MattingNetwork(variant,
/// refiner)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RvmConfig {
    /// The encoder.
    pub variant: RvmVariant,
    /// The refiner.
    pub refiner: RvmRefiner,
}

impl RvmConfig {
    /// `MattingNetwork('mobilenetv3')` (`rvm_mobilenetv3.pth`).
    pub fn mobilenetv3() -> Self {
        RvmConfig {
            variant: RvmVariant::MobileNetV3,
            refiner: RvmRefiner::DeepGuidedFilter,
        }
    }

    /// `MattingNetwork('resnet50')` (`rvm_resnet50.pth`).
    pub fn resnet50() -> Self {
        RvmConfig {
            variant: RvmVariant::ResNet50,
            refiner: RvmRefiner::DeepGuidedFilter,
        }
    }

    /// Sets the refiner.
    pub fn refiner(self, refiner: RvmRefiner) -> Self {
        RvmConfig { refiner, ..self }
    }

    /// The configuration of PyTorch's `variant` name (`'mobilenetv3'` or `'resnet50'`),
    /// with the default refiner.
    pub fn from_name(variant: &str) -> Result<Self> {
        match variant {
            "mobilenetv3" => Ok(Self::mobilenetv3()),
            "resnet50" => Ok(Self::resnet50()),
            _ => Err(Error::InvalidParam {
                name: "variant",
                reason: format!("must be 'mobilenetv3' or 'resnet50', got '{variant}'"),
            }),
        }
    }
}

/// The arguments of one forward besides the frame and the state (`MattingNetwork.forward`'s
/// `downsample_ratio` and `segmentation_pass`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RvmRun {
    /// The frame is resized by this factor (bilinear, corners not aligned, the factor
    /// mapping positions) before the network; default 1.
    pub downsample_ratio: f64,
    /// Return the segmentation logits (`project_seg`) instead of the foreground and alpha.
    pub segmentation_pass: bool,
}

impl Default for RvmRun {
    fn default() -> Self {
        RvmRun {
            downsample_ratio: 1.0,
            segmentation_pass: false,
        }
    }
}

setters!(RvmRun {
    /// Sets the downsample ratio.
    downsample_ratio: f64,
    /// Sets whether the segmentation pass runs instead of the matting one.
    segmentation_pass: bool,
});

impl RvmRun {
    fn validate(&self) -> Result<()> {
        let r = self.downsample_ratio;
        fail_if(!(r.is_finite() && r > 0.0), "downsample_ratio", || {
            format!("must be positive and finite, got {r}")
        })
    }

    /// The resize of the frame, where the ratio asks for one.
    fn resize(&self) -> Option<UpsampleParams> {
        (self.downsample_ratio != 1.0)
            .then(|| UpsampleParams::bilinear(false).scale_factor(self.downsample_ratio))
    }
}

/// The maps of one frame.
#[derive(Clone, Debug)]
pub enum RvmMaps<T> {
    /// The matting pass: the foreground `[N, 3, H, W]` (the frame plus the predicted
    /// residual) and the alpha `[N, 1, H, W]`, both clamped to [0, 1].
    Matting {
        /// The foreground colour.
        fgr: T,
        /// The alpha matte.
        pha: T,
    },
    /// The segmentation pass: the logits `[N, 1, h, w]` at the resized frame's size (the
    /// frame's where the ratio is 1; the segmentation pass runs no refiner).
    Segmentation {
        /// The person's logits.
        seg: T,
    },
}

/// One frame's result: its maps and the recurrent state for the next frame.
#[derive(Clone, Debug)]
pub struct RvmOutput<T> {
    /// The foreground and alpha, or the segmentation logits.
    pub maps: RvmMaps<T>,
    /// `r1` .. `r4`: the ConvGRUs' hidden states at 1/2, 1/4, 1/8 and 1/16 of the
    /// (resized) frame.
    pub state: [T; 4],
}

/// A loaded Robust Video Matting network: frames `[N, 3, H, W]` with values in [0, 1],
/// any height and width; `N` independent streams, each with its own state.
#[derive(Debug)]
pub struct RobustVideoMatting {
    config: RvmConfig,
    /// Inputs: the (resized) frame and the four states; outputs: the decoder's 16
    /// channels and the four new states.
    core: Graph,
    /// Inputs: the frame and the decoder's output; outputs: foreground and alpha.
    matting: Graph,
    /// Input: the decoder's output; output: the logits.
    segmentation: Graph,
    /// Inputs: the frame, the resized frame and the decoder's output; outputs: foreground
    /// and alpha at the frame's size, through the refiner.
    refined: Graph,
}

impl RobustVideoMatting {
    /// Loads `backbone.*`, `aspp.*`, `decoder.*`, `project_mat.*`, `project_seg.*` and
    /// (the deep guided filter's) `refiner.*` under `prefix` (empty for a checkpoint as
    /// saved).
    pub fn load(gpu: &Gpu, config: RvmConfig, sd: &StateDict, prefix: &str) -> Result<Self> {
        let mut b = Builder {
            gpu,
            sd,
            prefix,
            g: Graph::with_inputs(5),
        };
        b.core(config.variant)?;
        let core = b.g;
        let projection = |name: &str, out: usize| {
            let p = Conv2dParams::new(HIDDEN, out, 1);
            ConvBnAct::load(gpu, sd, p, &key(prefix, &key(name, "conv")), None, 0.0)
        };
        let mut matting = Graph::with_inputs(2);
        let (src, hid) = (matting.input_at(0), matting.input_at(1));
        let y = matting.add("project_mat", projection("project_mat", 4)?, &[hid]);
        finish_matting(&mut matting, src, y);
        let mut b = Builder {
            gpu,
            sd,
            prefix,
            g: Graph::with_inputs(3),
        };
        let hid = b.g.input_at(2);
        let y =
            b.g.add("project_mat", projection("project_mat", 4)?, &[hid]);
        match config.refiner {
            RvmRefiner::DeepGuidedFilter => b.deep_guided_filter(y)?,
            RvmRefiner::FastGuidedFilter => b.fast_guided_filter(y)?,
        }
        let refined = b.g;
        let mut segmentation = Graph::new();
        let hid = segmentation.input();
        let seg = segmentation.add("project_seg", projection("project_seg", 1)?, &[hid]);
        segmentation.set_outputs(&[seg]);
        Ok(RobustVideoMatting {
            config,
            core,
            matting,
            segmentation,
            refined,
        })
    }

    /// The configuration it was loaded with.
    pub fn config(&self) -> &RvmConfig {
        &self.config
    }

    /// The shape the network runs at: the frame's, resized by the run's ratio.
    fn resized(&self, input: [usize; 4], run: &RvmRun) -> Result<[usize; 4]> {
        run.validate()?;
        crate::ops::check_channels(input, IMAGE)?;
        let Some(p) = run.resize() else {
            return Ok(input);
        };
        p.output_shape(input).map_err(|_| Error::InvalidParam {
            name: "downsample_ratio",
            reason: format!(
                "{} leaves no pixel of a {} x {} frame",
                run.downsample_ratio, input[2], input[3]
            ),
        })
    }

    /// The shapes of the states `r1` .. `r4` for frames of shape `input` under `run`:
    /// half the channels of each decoder stage at 1/2, 1/4, 1/8 and 1/16 of the resized
    /// frame (each side halved and rounded up).
    pub fn state_shapes(&self, input: [usize; 4], run: RvmRun) -> Result<[[usize; 4]; 4]> {
        let [n, _, mut h, mut w] = self.resized(input, &run)?;
        let dc = self.config.variant.decoder_channels();
        let fc = self.config.variant.feature_channels();
        let channels = [dc[2] / 2, dc[1] / 2, dc[0] / 2, fc[3] / 2];
        Ok(channels.map(|c| {
            (h, w) = (h.div_ceil(2), w.div_ceil(2));
            [n, c, h, w]
        }))
    }

    /// Checks the states against [`RobustVideoMatting::state_shapes`].
    fn check_state(&self, input: [usize; 4], run: RvmRun, state: [[usize; 4]; 4]) -> Result<()> {
        const NAMES: [&str; 4] = ["r1", "r2", "r3", "r4"];
        for ((name, want), got) in NAMES.iter().zip(self.state_shapes(input, run)?).zip(state) {
            crate::ops::same_shape(name, want, got)?;
        }
        Ok(())
    }

    /// Records one frame `src` (`[N, 3, H, W]`, values in [0, 1]) with the previous
    /// frame's state (`None`: zeros, the first frame), into one submission. A frame of
    /// another size (or ratio) starts again from `None`: the old state's shapes are a
    /// typed error naming `r1`..`r4`.
    pub fn forward(
        &self,
        rec: &mut Recorder<'_>,
        src: &Tensor,
        state: Option<&[Tensor; 4]>,
        run: RvmRun,
    ) -> Result<RvmOutput<Tensor>> {
        let input = src.shape();
        let shapes = self.state_shapes(input, run)?;
        let zeros;
        let state = match state {
            Some(s) => {
                self.check_state(input, run, s.clone().map(|t| t.shape()))?;
                s
            }
            None => {
                zeros = shapes
                    .iter()
                    .map(|s| rec.zeros("state", *s))
                    .collect::<Result<Vec<_>>>()?;
                <&[Tensor; 4]>::try_from(&zeros[..]).expect("four states")
            }
        };
        let resized = match run.resize() {
            Some(p) => crate::ops::upsample::upsample(rec, &p, src)?,
            None => src.clone(),
        };
        let mut inputs = vec![&resized];
        inputs.extend(state.iter());
        rec.enter_layer("core");
        let core = self.core.forward_inputs(rec, &inputs);
        rec.leave_layer();
        let mut core = core?.into_iter().map(|v| v.tensor().cloned());
        let mut next = || core.next().expect("five outputs");
        let hid = next()?;
        let state = [next()?, next()?, next()?, next()?];
        let maps = if run.segmentation_pass {
            let seg = self.segmentation.forward(rec, &hid)?;
            RvmMaps::Segmentation { seg }
        } else {
            let out = match run.resize() {
                Some(_) => self.refined.forward_inputs(rec, &[src, &resized, &hid])?,
                None => self.matting.forward_inputs(rec, &[src, &hid])?,
            };
            let (fgr, pha) = (out[0].tensor()?.clone(), out[1].tensor()?.clone());
            RvmMaps::Matting { fgr, pha }
        };
        Ok(RvmOutput { maps, state })
    }

    /// The CPU reference of [`RobustVideoMatting::forward`], from the reference ops and
    /// the unfolded weights.
    pub fn reference(
        &self,
        src: ArrayView4<f32>,
        state: Option<&[Array4<f32>; 4]>,
        run: RvmRun,
    ) -> Result<RvmOutput<Array4<f32>>> {
        let d = src.dim();
        let input = [d.0, d.1, d.2, d.3];
        let shapes = self.state_shapes(input, run)?;
        let state: [Array4<f32>; 4] = match state {
            Some(s) => {
                let dims = s.each_ref().map(|a| {
                    let d = a.dim();
                    [d.0, d.1, d.2, d.3]
                });
                self.check_state(input, run, dims)?;
                s.clone()
            }
            None => shapes.map(Array4::zeros),
        };
        let resized = match run.resize() {
            Some(p) => reference::upsample::upsample(&p, src)?,
            None => src.to_owned(),
        };
        let mut inputs = vec![resized.view()];
        inputs.extend(state.iter().map(|s| s.view()));
        let mut core = self
            .core
            .reference_inputs(&inputs)?
            .into_iter()
            .map(|v| v.tensor().map(|t| t.to_owned()));
        let mut next = || core.next().expect("five outputs");
        let hid = next()?;
        let state = [next()?, next()?, next()?, next()?];
        let maps = if run.segmentation_pass {
            let seg = self.segmentation.reference(hid.view())?;
            RvmMaps::Segmentation { seg }
        } else {
            let out = match run.resize() {
                Some(_) => {
                    let inputs = [src.view(), resized.view(), hid.view()];
                    self.refined.reference_inputs(&inputs)?
                }
                None => self.matting.reference_inputs(&[src.view(), hid.view()])?,
            };
            let fgr = out[0].tensor()?.to_owned();
            let pha = out[1].tensor()?.to_owned();
            RvmMaps::Matting { fgr, pha }
        };
        Ok(RvmOutput { maps, state })
    }

    /// Compiles every pipeline a forward on frames of shape `input` needs ([`Gpu::prepare`]);
    /// returns how many were compiled.
    pub fn prepare(&self, gpu: &Gpu, input: [usize; 4], run: RvmRun) -> Result<usize> {
        self.state_shapes(input, run)?;
        gpu.prepare(|rec| {
            let x = rec.empty("input", input)?;
            self.forward(rec, &x, None, run).map(|_| ())
        })
    }

    /// Every layer with its output shape, parameters and MACs for frames of shape
    /// `input` (the projection and refiner of the pass that `run` asks for; the frame's
    /// resize, which runs before the graphs, is not a row).
    pub fn summary(&self, input: [usize; 4], run: RvmRun) -> Result<Summary> {
        let shapes = self.state_shapes(input, run)?;
        let resized = self.resized(input, &run)?;
        let mut inputs = vec![resized];
        inputs.extend(shapes);
        let (mut summary, outputs) = self.core.summary_inputs(&inputs)?;
        let (head, _) = if run.segmentation_pass {
            self.segmentation.summary_inputs(&[outputs[0]])?
        } else if run.resize().is_some() {
            self.refined.summary_inputs(&[input, resized, outputs[0]])?
        } else {
            self.matting.summary_inputs(&[input, outputs[0]])?
        };
        summary.rows.extend(head.rows);
        Ok(summary)
    }
}

/// The end of the matting pass on the frame `src` and the 4 channels `y` (the foreground
/// residual and the alpha): `(fgr_residual + src).clamp(0, 1)` and `pha.clamp(0, 1)` as
/// the graph's outputs.
fn finish_matting(g: &mut Graph, src: ValueId, y: ValueId) {
    let residual = g.add("fgr_residual", Op::Narrow(0, 3), &[y]);
    let pha = g.add("pha", Op::Narrow(3, 1), &[y]);
    let fgr = g.add("fgr_add", Op::Add, &[residual, src]);
    let fgr = g.add("fgr", ClampUnit, &[fgr]);
    let pha = g.add("pha_clamp", ClampUnit, &[pha]);
    g.set_outputs(&[fgr, pha]);
}

/// A layer whose weights are counted elsewhere or are constants: the summary gives it no
/// parameters (the box filter's second to fourth use, the channel means).
#[derive(Debug)]
struct Uncounted(ConvBnAct);

impl Node for Uncounted {
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        Node::shapes(&self.0, inputs)
    }

    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        Ok(Cost {
            params: 0,
            ..Node::cost(&self.0, inputs)?
        })
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        Node::forward(&self.0, rec, inputs)
    }

    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        Node::reference(&self.0, inputs)
    }
}

/// `x.clamp(0., 1.)`.
#[derive(Debug)]
struct ClampUnit;

const UNIT: ParamActivation = ParamActivation::Hardtanh {
    min_val: 0.0,
    max_val: 1.0,
};

impl Node for ClampUnit {
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        Ok(vec![*inputs.get(0)?])
    }

    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        Ok(Cost {
            bytes: channel::elementwise_cost(*inputs.get(0)?, 1).bytes,
            ..Cost::default()
        })
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        let y = channel::activation_with(rec, inputs.get(0)?.tensor()?, UNIT)?;
        Ok(vec![Value::Tensor(y)])
    }

    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        let y = reference::channel::activation_with(inputs.get(0)?.tensor()?, UNIT)?;
        Ok(vec![HostValue::Tensor(y)])
    }
}

/// torchvision's `normalize(x, mean, std)`: `(x - mean) / std` per channel. On the GPU an
/// inference batch norm (scale `1 / std`, shift `-mean / std`); the reference divides.
#[derive(Debug)]
struct Normalize {
    layer: BatchNorm2d,
    mean: [f32; 3],
    std: [f32; 3],
}

impl Normalize {
    /// ImageNet's mean and standard deviation, as RVM's MobileNetV3 encoder uses them.
    fn imagenet(gpu: &Gpu) -> Result<Self> {
        let mean = [0.485f32, 0.456, 0.406];
        let std = [0.229f32, 0.224, 0.225];
        let ones = ndarray::Array1::<f32>::ones(3);
        let zeros = ndarray::Array1::<f32>::zeros(3);
        let var = ndarray::Array1::from_iter(std.iter().map(|s| s * s));
        let layer = BatchNorm2d::new(
            gpu,
            BatchNorm2dParams::new(3).eps(0.0),
            Some(ones.view()),
            Some(zeros.view()),
        )?
        .with_running_stats(ndarray::Array1::from_iter(mean).view(), var.view())?;
        Ok(Normalize { layer, mean, std })
    }
}

impl Node for Normalize {
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        let x = *inputs.get(0)?;
        crate::ops::check_channels(x, IMAGE)?;
        Ok(vec![x])
    }

    /// No parameters (the mean and deviation are constants).
    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        Ok(Cost {
            bytes: channel::elementwise_cost(*inputs.get(0)?, 1).bytes,
            ..Cost::default()
        })
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        let x = inputs.get(0)?.tensor()?;
        let y = self.layer.forward_eval_act(rec, x, Activation::None)?;
        Ok(vec![Value::Tensor(y)])
    }

    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        let mut y = inputs.get(0)?.tensor()?.to_owned();
        for (c, mut plane) in y.axis_iter_mut(ndarray::Axis(1)).enumerate() {
            plane.mapv_inplace(|v| (v - self.mean[c]) / self.std[c]);
        }
        Ok(vec![HostValue::Tensor(y)])
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

    /// A 3x3 convolution (padding 1) with bias and `act`, `{name}.0` (a ConvGRU's).
    fn conv3x3(
        &self,
        name: &str,
        (cin, cout): (usize, usize),
        act: Activation,
    ) -> Result<ConvBnAct> {
        let p = Conv2dParams::new(cin, cout, 3).padding(1).activation(act);
        ConvBnAct::load(self.gpu, self.sd, p, &self.at(&key(name, "0")), None, 0.0)
    }

    /// A 3x3 convolution without bias (padding 1), its batch norm and ReLU: `{name}.{conv}`
    /// and `{name}.{conv + 1}`.
    fn conv_bn_relu(
        &self,
        name: &str,
        conv: usize,
        (cin, cout): (usize, usize),
    ) -> Result<ConvBnAct> {
        let p = Conv2dParams::new(cin, cout, 3)
            .padding(1)
            .bias(false)
            .activation(Activation::Relu);
        let at = |i: usize| self.at(&key(name, &i.to_string()));
        conv_bn(self.gpu, self.sd, p, &at(conv), &at(conv + 1), 1e-5)
    }

    /// `cat([x, x.mean(1, keepdim=True)])` of a 3-channel map as one 1x1 convolution (the
    /// identity on the first three channels, thirds on the fourth).
    fn with_mean(&self) -> Result<Uncounted> {
        let mut w = Array4::<f32>::zeros((4, IMAGE, 1, 1));
        for c in 0..IMAGE {
            w[[c, c, 0, 0]] = 1.0;
            w[[IMAGE, c, 0, 0]] = 1.0 / IMAGE as f32;
        }
        let mut local = StateDict::new();
        local.insert("mean.weight", w.into_dyn());
        let p = Conv2dParams::new(IMAGE, 4, 1).bias(false);
        Ok(Uncounted(ConvBnAct::load(
            self.gpu, &local, p, "mean", None, 0.0,
        )?))
    }

    /// `refiner.box_filter`: the 3x3 depthwise convolution (padding 1, no bias) of 4
    /// channels.
    fn box_filter(&self) -> Result<ConvBnAct> {
        let p = Conv2dParams::new(4, 4, 3).padding(1).groups(4).bias(false);
        let at = self.at("refiner.box_filter");
        ConvBnAct::load(self.gpu, self.sd, p, &at, None, 0.0)
    }

    /// `BoxFilter(1)` of the fast guided filter: a 1x3 then a 3x1 depthwise convolution of
    /// 4 channels, every weight 1/3 (padding 1 along each), constants.
    fn box_filter_separable(&self) -> Result<[Uncounted; 2]> {
        let mut layers = Vec::with_capacity(2);
        for (k, pad) in [((1, 3), (0, 1)), ((3, 1), (1, 0))] {
            let w = Array4::<f32>::from_elem((4, 1, k.0, k.1), 1.0 / 3.0);
            let mut local = StateDict::new();
            local.insert("box.weight", w.into_dyn());
            let p = Conv2dParams::new(4, 4, k)
                .padding(pad)
                .groups(4)
                .bias(false);
            layers.push(Uncounted(ConvBnAct::load(
                self.gpu, &local, p, "box", None, 0.0,
            )?));
        }
        Ok(layers.try_into().expect("two layers"))
    }

    /// `DeepGuidedFilterRefiner` ([`Builder::guided_filter`] with the learned box filter
    /// and the coefficients from `refiner.conv.*`).
    fn deep_guided_filter(&mut self, y: ValueId) -> Result<()> {
        let hid = self.g.input_at(2);
        let at = |i: usize| self.at(&format!("refiner.conv.{i}"));
        let p = |cin: usize| {
            Conv2dParams::new(cin, HIDDEN, 1)
                .bias(false)
                .activation(Activation::Relu)
        };
        let conv0 = conv_bn(self.gpu, self.sd, p(8 + HIDDEN), &at(0), &at(1), 1e-5)?;
        let conv3 = conv_bn(self.gpu, self.sd, p(HIDDEN), &at(3), &at(4), 1e-5)?;
        let p6 = Conv2dParams::new(HIDDEN, 4, 1);
        let conv6 = ConvBnAct::load(self.gpu, self.sd, p6, &at(6), None, 0.0)?;
        // One learned filter, counted once in the summary.
        let mut boxes = Some(self.box_filter()?);
        let mut others = Vec::new();
        for _ in 0..3 {
            others.push(Uncounted(self.box_filter()?));
        }
        let mut others = others.into_iter();
        let filter = move |g: &mut Graph, name: &str, x: ValueId| match boxes.take() {
            Some(first) => g.add(format!("refiner.{name}"), first, &[x]),
            None => g.add(
                format!("refiner.{name}"),
                others.next().expect("four"),
                &[x],
            ),
        };
        self.guided_filter(y, filter, |g, cov_xy, var_x| {
            let joined = g.add("refiner.cat", Op::Concat, &[cov_xy, var_x, hid]);
            let a = g.add("refiner.conv.0", conv0, &[joined]);
            let a = g.add("refiner.conv.3", conv3, &[a]);
            g.add("refiner.conv.6", conv6, &[a])
        })
    }

    /// `FastGuidedFilterRefiner` ([`Builder::guided_filter`] with constant separable box
    /// filters and `A = cov / (var + 1e-5)`; the decoder's output unused).
    fn fast_guided_filter(&mut self, y: ValueId) -> Result<()> {
        let mut pairs = Vec::with_capacity(4);
        for _ in 0..4 {
            pairs.push(self.box_filter_separable()?);
        }
        let mut pairs = pairs.into_iter();
        let filter = move |g: &mut Graph, name: &str, x: ValueId| {
            let [rows, columns] = pairs.next().expect("four");
            let t = g.add(format!("refiner.{name}.x"), rows, &[x]);
            g.add(format!("refiner.{name}.y"), columns, &[t])
        };
        self.guided_filter(y, filter, |g, cov_xy, var_x| {
            g.add("refiner.A", Op::Div(1e-5), &[cov_xy, var_x])
        })
    }

    /// Both refiners on the graph's inputs (the frame, the resized frame) and `y`, the
    /// projection of the decoder's output (the foreground residual and alpha): each image
    /// with its channel mean; `filter` box-filters a map (four times: `mean_x`, `mean_y`,
    /// `box_xy`, `box_xx`); `coefficients` turns the covariance and variance into `A`;
    /// `b = mean_y - A * mean_x`; both resized to the frame and `A * frame + b` is the
    /// output, which sets the graph's outputs to the foreground and alpha.
    fn guided_filter(
        &mut self,
        y: ValueId,
        mut filter: impl FnMut(&mut Graph, &str, ValueId) -> ValueId,
        coefficients: impl FnOnce(&mut Graph, ValueId, ValueId) -> ValueId,
    ) -> Result<()> {
        let (src, base) = (self.g.input_at(0), self.g.input_at(1));
        let (fine_mean, base_mean) = (self.with_mean()?, self.with_mean()?);
        let g = &mut self.g;
        let fine_x = g.add("refiner.fine_x", fine_mean, &[src]);
        let base_x = g.add("refiner.base_x", base_mean, &[base]);
        let mean_x = filter(g, "mean_x", base_x);
        let mean_y = filter(g, "mean_y", y);
        let xy = g.add("refiner.xy", Op::Mul(Activation::None), &[base_x, y]);
        let xx = g.add("refiner.xx", Op::Mul(Activation::None), &[base_x, base_x]);
        let box_xy = filter(g, "box_xy", xy);
        let box_xx = filter(g, "box_xx", xx);
        let cov_xy = g.add("refiner.cov_xy", Op::SubMul, &[box_xy, mean_x, mean_y]);
        let var_x = g.add("refiner.var_x", Op::SubMul, &[box_xx, mean_x, mean_x]);
        let a = coefficients(g, cov_xy, var_x);
        let b = g.add("refiner.b", Op::SubMul, &[mean_y, a, mean_x]);
        let a = super::resize_like(g, "refiner.A_up".into(), a, src);
        let b = super::resize_like(g, "refiner.b_up".into(), b, src);
        let out = g.add("refiner.out", Op::MulAdd, &[a, fine_x, b]);
        finish_matting(g, src, out);
        Ok(())
    }

    /// The whole network but the projections: inputs the frame and `r1` .. `r4`.
    fn core(&mut self, variant: RvmVariant) -> Result<()> {
        let src = self.g.input_at(0);
        let r = [1, 2, 3, 4].map(|i| self.g.input_at(i));
        let [f1, f2, f3, f4] = match variant {
            RvmVariant::MobileNetV3 => self.mobilenet(src)?,
            RvmVariant::ResNet50 => self.resnet(src)?,
        };
        let fc = variant.feature_channels();
        let dc = variant.decoder_channels();
        let f4 = self.lraspp(f4, variant.encoder_channels(), fc[3])?;
        let pool = Op::AvgPool(AvgPool2dParams {
            ceil_mode: true,
            count_include_pad: false,
            ..AvgPool2dParams::new(2)
        });
        let s1 = self.g.add("decoder.avgpool.s1", pool.clone(), &[src]);
        let s2 = self.g.add("decoder.avgpool.s2", pool.clone(), &[s1]);
        let s3 = self.g.add("decoder.avgpool.s3", pool, &[s2]);
        let (x4, r4) = self.gru_half("decoder.decode4", f4, r[3], fc[3])?;
        let (x3, r3) =
            self.upsampling("decoder.decode3", [x4, f3, s3, r[2]], (fc[3], fc[2], dc[0]))?;
        let (x2, r2) =
            self.upsampling("decoder.decode2", [x3, f2, s2, r[1]], (dc[0], fc[1], dc[1]))?;
        let (x1, r1) =
            self.upsampling("decoder.decode1", [x2, f1, s1, r[0]], (dc[1], fc[0], dc[2]))?;
        let x0 = self.output_block("decoder.decode0", x1, src, (dc[2], dc[3]))?;
        self.g.set_outputs(&[x0, r1, r2, r3, r4]);
        Ok(())
    }

    /// `MobileNetV3LargeEncoder`: `features[1]`, `[3]`, `[6]` and `[16]` of the normalised
    /// frame.
    fn mobilenet(&mut self, src: ValueId) -> Result<[ValueId; 4]> {
        let cfg = MobileNetV3FeaturesConfig {
            dilated: true,
            ..MobileNetV3FeaturesConfig::large()
        };
        let features = self.at("backbone.features");
        let (stem, blocks, last) = cfg.load_parts(self.gpu, self.sd, &features)?;
        let mut g = Graph::new();
        let input = g.input();
        let outs = append_features(&mut g, input, stem, blocks, last);
        g.set_outputs(&[outs[1], outs[3], outs[6], outs[16]]);
        let x = self
            .g
            .add("backbone.normalize", Normalize::imagenet(self.gpu)?, &[src]);
        let f = self.g.add_multi("backbone.features", g, &[x], 4);
        Ok([f[0], f[1], f[2], f[3]])
    }

    /// `ResNet50Encoder`: the stem's ReLU, `layer1`, `layer2` and `layer4` (dilated).
    fn resnet(&mut self, src: ValueId) -> Result<[ValueId; 4]> {
        let mut g = Graph::new();
        let input = g.input();
        let ctx = (self.gpu, self.sd, self.at("backbone"));
        let outs = ResNetConfig::resnet50().append_stages(
            &mut g,
            input,
            (ctx.0, ctx.1, &ctx.2),
            (IMAGE, 4, 16),
            DilationRule::Timm,
        )?;
        g.set_outputs(&[outs[0], outs[1], outs[2], outs[4]]);
        let f = self.g.add_multi("backbone", g, &[src], 4);
        Ok([f[0], f[1], f[2], f[3]])
    }

    /// `LRASPP(cin, cout)`: `aspp1(x) * aspp2(x)`.
    fn lraspp(&mut self, x: ValueId, cin: usize, cout: usize) -> Result<ValueId> {
        let p = Conv2dParams::new(cin, cout, 1).bias(false);
        let (at1, at2) = (self.at("aspp.aspp1"), self.at("aspp.aspp2.1"));
        let relu = p.activation(Activation::Relu);
        let branch = conv_bn(
            self.gpu,
            self.sd,
            relu,
            &key(&at1, "0"),
            &key(&at1, "1"),
            1e-5,
        )?;
        let gate = ConvBnAct::load(self.gpu, self.sd, p, &at2, None, 0.0)?;
        let a = self.g.add("aspp.aspp1", branch, &[x]);
        let pooled = self
            .g
            .add("aspp.aspp2.0", Op::GlobalPool(GlobalPool::Avg), &[x]);
        let s = self.g.add("aspp.aspp2.1", gate, &[pooled]);
        Ok(self
            .g
            .add("aspp", Op::ScaleChannels(Activation::Sigmoid), &[a, s]))
    }

    /// `ConvGRU(c)` under `{name}` on input `x` and state `h`: returns the new state.
    fn gru(&mut self, name: &str, x: ValueId, h: ValueId, c: usize) -> Result<ValueId> {
        let ih = self.conv3x3(&key(name, "ih"), (2 * c, 2 * c), Activation::Sigmoid)?;
        let hh = self.conv3x3(&key(name, "hh"), (2 * c, c), Activation::Tanh)?;
        let g = &mut self.g;
        let xh = g.add(key(name, "cat_xh"), Op::Concat, &[x, h]);
        let rz = g.add(key(name, "ih"), ih, &[xh]);
        let r = g.add(key(name, "r"), Op::Narrow(0, c), &[rz]);
        let z = g.add(key(name, "z"), Op::Narrow(c, c), &[rz]);
        let rh = g.add(key(name, "rh"), Op::Mul(Activation::None), &[r, h]);
        let xrh = g.add(key(name, "cat_xrh"), Op::Concat, &[x, rh]);
        let candidate = g.add(key(name, "hh"), hh, &[xrh]);
        Ok(g.add(name, Op::Blend, &[h, candidate, z]))
    }

    /// Runs the ConvGRU `{name}.gru` on the second half of `x`'s `c` channels: returns
    /// the first half joined with the new state, and the state (`BottleneckBlock(c)`, and
    /// the end of each `UpsamplingBlock`).
    fn gru_half(
        &mut self,
        name: &str,
        x: ValueId,
        r: ValueId,
        c: usize,
    ) -> Result<(ValueId, ValueId)> {
        let half = c / 2;
        let a = self.g.add(key(name, "a"), Op::Narrow(0, half), &[x]);
        let b = self.g.add(key(name, "b"), Op::Narrow(half, c - half), &[x]);
        let state = self.gru(&key(name, "gru"), b, r, c - half)?;
        let y = self.g.add(key(name, "cat"), Op::Concat, &[a, state]);
        Ok((y, state))
    }

    /// `x` upsampled by 2 (bilinear, corners not aligned) and cropped to `like`'s size.
    fn up_to(&mut self, name: &str, x: ValueId, like: ValueId) -> ValueId {
        let p = UpsampleParams::bilinear(false).scale_factor(2.0);
        let up = self.g.add(key(name, "upsample"), Op::Upsample(p), &[x]);
        self.g
            .add_sized(key(name, "crop"), Op::CropLike((0, 0)), &[up], &[like])
    }

    /// `UpsamplingBlock(cin, skip, 3, cout)` on `[x, f, s, r]`.
    fn upsampling(
        &mut self,
        name: &str,
        [x, f, s, r]: [ValueId; 4],
        (cin, skip, cout): (usize, usize, usize),
    ) -> Result<(ValueId, ValueId)> {
        let conv = self.conv_bn_relu(&key(name, "conv"), 0, (cin + skip + IMAGE, cout))?;
        let up = self.up_to(name, x, s);
        let joined = self.g.add(key(name, "cat"), Op::Concat, &[up, f, s]);
        let y = self.g.add(key(name, "conv"), conv, &[joined]);
        self.gru_half(name, y, r, cout)
    }

    /// `OutputBlock(cin, 3, cout)` on `x` and the frame `s`.
    fn output_block(
        &mut self,
        name: &str,
        x: ValueId,
        s: ValueId,
        (cin, cout): (usize, usize),
    ) -> Result<ValueId> {
        let first = self.conv_bn_relu(&key(name, "conv"), 0, (cin + IMAGE, cout))?;
        let second = self.conv_bn_relu(&key(name, "conv"), 3, (cout, cout))?;
        let up = self.up_to(name, x, s);
        let joined = self.g.add(key(name, "cat"), Op::Concat, &[up, s]);
        let y = self.g.add(key(name, "conv.0"), first, &[joined]);
        Ok(self.g.add(key(name, "conv.3"), second, &[y]))
    }
}
