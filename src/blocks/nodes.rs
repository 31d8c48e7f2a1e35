//! The nodes blocks are made of: a convolution with its batch norm and activation
//! ([`ConvBnAct`], fusing residuals and channel shuffles into its store), squeeze-and-
//! excitation, and the weightless ops ([`Op`]). Each knows its shapes, cost, GPU forward
//! and CPU reference, so a graph of them is described once.

use std::sync::Arc;

use ndarray::{Array1, Array4, ArrayView1, ArrayView4};

use super::graph::{HostValue, Inputs, Node, Value};
use super::SummaryRow;
use crate::error::{fail_if, invalid, Result};
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::ops::attention::{
    radix_softmax_sum, radix_softmax_sum_cost, radix_softmax_sum_shape, Eca, EcaParams, SeWeights,
    SqueezeExcitation, SqueezeExcitationParams, MAX_RADIX,
};
use crate::ops::channel::{self, elementwise_cost, ParamActivation};
use crate::ops::conv::{Conv2d, Conv2dParams, PackedWeights, ResidualJoin};
use crate::ops::conv_transpose::{ConvTranspose2d, ConvTranspose2dParams};
use crate::ops::copy::{CropParams2d, Pad2dParams};
use crate::ops::decoder_stage::{DecoderStage, DecoderStageParams};
use crate::ops::lraspp_head::{LrAsppHead, LrAsppHeadParams, Pointwise};
use crate::ops::norm::{
    batch_norm_scale_shift, fold_batch_norm, BatchNorm2dParams, GlobalResponseNorm,
    GlobalResponseNormParams,
};
use crate::ops::pool::{
    self, AdaptiveAvgPool2dParams, AvgPool2dParams, GlobalPool, MaxPool2dParams, MaxUnpool2dParams,
};
use crate::ops::upsample::{self, UpsampleMode, UpsampleParams};
use crate::ops::{Activation, Cost};
use crate::reference;
use crate::weights::{key, StateDict};

/// Batch-norm state as PyTorch stores it.
#[derive(Clone, Debug)]
pub(crate) struct BnState {
    pub(crate) gamma: Array1<f32>,
    pub(crate) beta: Array1<f32>,
    pub(crate) mean: Array1<f32>,
    pub(crate) var: Array1<f32>,
    pub(crate) eps: f32,
}

impl BnState {
    /// Channel `o`'s `[gamma, beta, mean, var]` ([`batch_norm_scale_shift`]'s order).
    pub(crate) fn channel(&self, o: usize) -> [f32; 4] {
        [self.gamma[o], self.beta[o], self.mean[o], self.var[o]]
    }

    pub(crate) fn load(sd: &StateDict, prefix: &str, channels: usize, eps: f32) -> Result<Self> {
        let get = |n: &str| sd.get1(&key(prefix, n), channels);
        Ok(BnState {
            gamma: get("weight")?,
            beta: get("bias")?,
            mean: get("running_mean")?,
            var: get("running_var")?,
            eps,
        })
    }

    /// The CPU reference of the batch norm (inference).
    pub(crate) fn reference(&self, x: ArrayView4<f32>) -> Result<Array4<f32>> {
        let p = BatchNorm2dParams::new(self.gamma.len()).eps(self.eps);
        reference::norm::batch_norm_eval(
            &p,
            x,
            self.gamma.view(),
            self.beta.view(),
            self.mean.view(),
            self.var.view(),
        )
    }
}

/// A convolution, optionally followed by an inference batch norm, then an activation:
/// torchvision's `Conv2dNormActivation`, or a `conv` / `bn` pair of a ResNet block. On the
/// GPU it is one convolution with the batch norm folded in, which can also add a residual
/// (a second input) and shuffle its output channels in its store.
#[derive(Debug)]
pub struct ConvBnAct {
    params: Conv2dParams,
    weight: Array4<f32>,
    bias: Option<Array1<f32>>,
    bn: Option<BnState>,
    conv: Conv2d,
    join: Option<ResidualJoin>,
    shuffle_groups: usize,
    /// The activation of a gate on the input (a graph input after `x`, the logits
    /// `[N, C_in, 1, 1]`): the layer convolves `x * act(gate)`.
    gate: Option<Activation>,
    /// A per-output-channel scale after the batch norm (ConvNeXt's `layer_scale`), folded
    /// into the GPU weights.
    scale: Option<Array1<f32>>,
    /// The weights are a fixed buffer, not parameters ([`ConvBnAct::fixed`]).
    fixed: bool,
    /// A per-input-channel value added to the input before the convolution (a 1x1
    /// unpadded layer only), folded into the GPU bias ([`ConvBnAct::with_input_offset`]).
    input_offset: Option<Array1<f32>>,
    /// Weights that are zeros by construction, not parameters
    /// ([`ConvBnAct::with_structural_zeros`]).
    structural_zeros: u64,
    /// Learned parameters of the activations in its store, PReLU slopes
    /// ([`ConvBnAct::with_activation_params`]).
    activation_params: u64,
}

impl ConvBnAct {
    /// Loads `{conv}.weight` (and `{conv}.bias` when `params.bias`) and, with `bn`, the
    /// batch norm `{bn}.weight/bias/running_mean/running_var` with `eps`.
    /// `params.activation` is applied after the batch norm.
    pub fn load(
        gpu: &Gpu,
        sd: &StateDict,
        params: Conv2dParams,
        conv: &str,
        bn: Option<&str>,
        eps: f32,
    ) -> Result<Self> {
        let (weight, bias) = PackedWeights::load(sd, conv, &params)?;
        let bn = match bn {
            Some(name) => Some(BnState::load(sd, name, params.out_channels, eps)?),
            None => None,
        };
        let gpu_conv = match &bn {
            Some(b) => {
                let (w, fb) = fold_batch_norm(
                    weight.view(),
                    bias.as_ref().map(|b| b.view()),
                    b.gamma.view(),
                    b.beta.view(),
                    b.mean.view(),
                    b.var.view(),
                    b.eps,
                )?;
                Conv2d::new(gpu, params.bias(true), w.view(), Some(fb.view()))?
            }
            None => Conv2d::new(gpu, params, weight.view(), bias.as_ref().map(|b| b.view()))?,
        };
        Ok(ConvBnAct {
            params,
            weight,
            bias,
            bn,
            conv: gpu_conv,
            join: None,
            shuffle_groups: 0,
            gate: None,
            scale: None,
            fixed: false,
            input_offset: None,
            structural_zeros: 0,
            activation_params: 0,
        })
    }

    /// The layer with `zeros` of its weights zeros by construction (a MixNet layer's
    /// smaller windows centred in its largest, or its groups' weights in one
    /// block-diagonal matrix): its cost counts them as neither parameters nor
    /// multiply-accumulates, as PyTorch's layers have neither.
    pub(crate) fn with_structural_zeros(mut self, zeros: u64) -> Self {
        self.structural_zeros = zeros;
        self
    }

    /// A convolution whose weights are a fixed buffer, not learned parameters (timm's
    /// `BlurPool2d` filter, which no state dict holds): no bias or batch norm, and its
    /// cost counts no parameters, as PyTorch counts none.
    pub(crate) fn fixed(gpu: &Gpu, params: Conv2dParams, weight: Array4<f32>) -> Result<Self> {
        let params = params.bias(false);
        let conv = Conv2d::new(gpu, params, weight.view(), None)?;
        Ok(ConvBnAct {
            params,
            weight,
            bias: None,
            bn: None,
            conv,
            join: None,
            shuffle_groups: 0,
            gate: None,
            scale: None,
            fixed: true,
            input_offset: None,
            structural_zeros: 0,
            activation_params: 0,
        })
    }

    /// PyTorch's `nn.Linear(in_channels, out_channels)` under `{linear}` (`weight` of
    /// shape `[out, in]`, `bias`) as the 1x1 convolution `params` (its activation after
    /// the linear layer): a per-pixel linear layer, or one on a pooled `[N, C, 1, 1]` map.
    pub(crate) fn load_linear(
        gpu: &Gpu,
        sd: &StateDict,
        params: Conv2dParams,
        linear: &str,
    ) -> Result<Self> {
        let (cout, cin) = (params.out_channels, params.in_channels);
        let (w, b) = (key(linear, "weight"), key(linear, "bias"));
        let weight = sd
            .get(&w, &[cout, cin])?
            .into_shape_with_order((cout, cin, 1, 1))
            .map_err(|e| crate::error::Error::Weights(format!("tensor `{w}`: {e}")))?;
        let mut as_conv = StateDict::new();
        as_conv.insert(w, weight.into_dyn());
        as_conv.insert(b.clone(), sd.get1(&b, cout)?.into_dyn());
        Self::load(gpu, &as_conv, params, linear, None, 0.0)
    }

    /// The layer's output scaled per channel by `scale` (`out_channels` values) after the
    /// batch norm, before the activation: ConvNeXt's `layer_scale * block(x)`. Folded into
    /// the weights the GPU runs; counted as parameters, as PyTorch counts them.
    pub fn with_output_scale(mut self, gpu: &Gpu, scale: ArrayView1<f32>) -> Result<Self> {
        let c = self.params.out_channels;
        fail_if(scale.len() != c, "scale", || {
            format!(
                "needs {c} values (one per output channel), got {}",
                scale.len()
            )
        })?;
        self.scale = Some(scale.to_owned());
        let (w, b) = self.folded()?;
        self.conv = Conv2d::new(gpu, self.params.bias(true), w.view(), Some(b.view()))?;
        Ok(self)
    }

    /// The layer convolving its input plus `offset` (one value per input channel, the
    /// input's gate applied first): the affine shift of a norm before it, such as ConvNeXt
    /// V2's global response norm bias. A 1x1 unpadded layer only, where the offset folds
    /// exactly into the bias the GPU runs (`W (x + o) + b = W x + (W o + b)`); not
    /// counted as this layer's parameters.
    pub(crate) fn with_input_offset(mut self, gpu: &Gpu, offset: ArrayView1<f32>) -> Result<Self> {
        let p = &self.params;
        let unpadded = p.padding == (0, 0) && p.padding_after.is_none() && !p.padding_same;
        fail_if(p.kernel_size != (1, 1) || !unpadded, "input_offset", || {
            format!(
                "folds only into a 1x1 unpadded convolution, got kernel {:?}, padding {:?}",
                p.kernel_size, p.padding
            )
        })?;
        fail_if(offset.len() != p.in_channels, "input_offset", || {
            format!(
                "needs {} values (one per input channel), got {}",
                p.in_channels,
                offset.len()
            )
        })?;
        self.input_offset = Some(offset.to_owned());
        let (w, b) = self.folded()?;
        self.conv = Conv2d::new(gpu, self.params.bias(true), w.view(), Some(b.view()))?;
        Ok(self)
    }

    /// Counts `n` learned parameters of the activations its store applies (one-slope
    /// `nn.PReLU`s run as [`ParamActivation::LeakyRelu`]), as PyTorch counts them.
    pub(crate) fn with_activation_params(mut self, n: u64) -> Self {
        self.activation_params = n;
        self
    }

    /// The layer reading a second input, a residual joined in its store (see
    /// [`ResidualJoin`]).
    pub fn with_residual(mut self, join: ResidualJoin) -> Result<Self> {
        self.params.check_join(join)?;
        self.join = Some(join);
        Ok(self)
    }

    /// The layer scaling its input per channel by `act(gate)` as it reads it, the gate's
    /// logits `[N, C_in, 1, 1]` the graph input after `x` (and before the residual): a
    /// squeeze-and-excitation's scale fused into the convolution after it
    /// ([`Conv2d::forward_gated`](crate::ops::conv::Conv2d::forward_gated)).
    pub(crate) fn with_input_gate(mut self, act: Activation) -> Result<Self> {
        fail_if(self.shuffle_groups != 0, "gate", || {
            "a gated layer writes no shuffled output"
        })?;
        self.gate = Some(act);
        Ok(self)
    }

    /// The layer writing its output channel-shuffled with `groups` (ShuffleNet).
    pub fn with_shuffle(mut self, groups: usize) -> Result<Self> {
        self.params.check_shuffle(groups)?;
        self.shuffle_groups = groups;
        Ok(self)
    }

    /// The convolution's parameters (with the activation).
    pub fn params(&self) -> &Conv2dParams {
        &self.params
    }

    /// The weight and bias the GPU runs: the batch norm, the output scale and the input
    /// offset folded in, a zero bias when the layer has none.
    pub(crate) fn folded(&self) -> Result<(Array4<f32>, Array1<f32>)> {
        let (mut w, mut b) = self.folded_bn()?;
        if let Some(scale) = &self.scale {
            for (o, &s) in scale.iter().enumerate() {
                w.index_axis_mut(ndarray::Axis(0), o)
                    .map_inplace(|v| *v *= s);
                b[o] *= s;
            }
        }
        if let Some(offset) = &self.input_offset {
            // Each output channel sees its group's input channels.
            let per_group = self.params.in_channels / self.params.groups;
            let out_per_group = self.params.out_channels / self.params.groups;
            for (o, bias) in b.iter_mut().enumerate() {
                let first = (o / out_per_group) * per_group;
                let taps = w.slice(ndarray::s![o, .., 0, 0]);
                *bias += taps
                    .iter()
                    .zip(offset.slice(ndarray::s![first..first + per_group]))
                    .map(|(w, v)| w * v)
                    .sum::<f32>();
            }
        }
        Ok((w, b))
    }

    /// The weight and bias with the batch norm folded in (not the output scale).
    fn folded_bn(&self) -> Result<(Array4<f32>, Array1<f32>)> {
        let bias = self.bias.as_ref().map(|b| b.view());
        match &self.bn {
            Some(b) => fold_batch_norm(
                self.weight.view(),
                bias,
                b.gamma.view(),
                b.beta.view(),
                b.mean.view(),
                b.var.view(),
                b.eps,
            ),
            None => Ok((
                self.weight.clone(),
                self.bias
                    .clone()
                    .unwrap_or_else(|| Array1::zeros(self.params.out_channels)),
            )),
        }
    }

    /// Records the layer on `x` (a layer built to join a residual needs it: use it in a
    /// graph).
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        fail_if(self.join.is_some(), "residual", || {
            "the layer joins a residual; none given"
        })?;
        fail_if(self.gate.is_some(), "gate", || {
            "the layer scales its input by a gate; none given"
        })?;
        match self.shuffle_groups {
            0 => self.conv.forward(rec, x),
            g => self.conv.forward_shuffled(rec, x, g),
        }
    }

    /// The CPU reference of the layer on `x`: convolution, batch norm with running
    /// statistics, activation (and the shuffle).
    pub fn reference(&self, x: ArrayView4<f32>) -> Result<Array4<f32>> {
        self.reference_with(x, None)
    }

    /// CPU reference: convolution, batch norm with running statistics, activation, the
    /// shuffle and the residual join.
    fn reference_with(
        &self,
        x: ArrayView4<f32>,
        residual: Option<ArrayView4<f32>>,
    ) -> Result<Array4<f32>> {
        let plain = Conv2dParams {
            activation: Activation::None,
            param_activation: None,
            ..self.params
        };
        let shifted = self.input_offset.as_ref().map(|offset| {
            let mut s = x.to_owned();
            for (mut plane, &v) in s.axis_iter_mut(ndarray::Axis(1)).zip(offset) {
                plane += v;
            }
            s
        });
        let x = shifted.as_ref().map_or(x.view(), |s| s.view());
        let y = reference::conv::conv2d(
            &plain,
            x,
            self.weight.view(),
            self.bias.as_ref().map(|b| b.view()),
        )?;
        let mut y = match &self.bn {
            Some(b) => b.reference(y.view())?,
            None => y,
        };
        if let Some(scale) = &self.scale {
            for (mut plane, &s) in y.axis_iter_mut(ndarray::Axis(1)).zip(scale) {
                plane.map_inplace(|v| *v *= s);
            }
        }
        let act = |y: ArrayView4<f32>, a| reference::channel::activation(y, a);
        let shuffle = |y: Array4<f32>| match self.shuffle_groups {
            0 => Ok(y),
            g => reference::channel::channel_shuffle(y.view(), g),
        };
        let a = self.params.activation;
        // The activation with parameters follows the activation, whichever it is.
        let then_param = |y: Array4<f32>| match self.params.param_activation {
            Some(p) => reference::channel::activation_with(y.view(), p),
            None => Ok(y),
        };
        match (self.join, residual) {
            (None, _) => shuffle(then_param(act(y.view(), a))?),
            (Some(join), Some(r)) => {
                let y = shuffle(y)?;
                Ok(match join {
                    ResidualJoin::AfterActivation => {
                        let y = then_param(act(y.view(), a))?;
                        reference::channel::add(y.view(), r, Activation::None)?
                    }
                    ResidualJoin::BeforeActivation => {
                        then_param(reference::channel::add(y.view(), r, a)?)?
                    }
                    ResidualJoin::AddThen(then) => {
                        then_param(reference::channel::add(y.view(), r, then)?)?
                    }
                    ResidualJoin::AfterActivationThen(then, then_p) => {
                        let y = then_param(act(y.view(), a))?;
                        let y = reference::channel::add(y.view(), r, then)?;
                        match then_p {
                            Some(p) => reference::channel::activation_with(y.view(), p)?,
                            None => y,
                        }
                    }
                })
            }
            (Some(_), None) => Err(invalid(
                "residual",
                "the layer joins a residual; none given",
            )),
        }
    }

    /// Cost of the convolution plus the batch norm's parameters (folded away at run time,
    /// but part of the model, as PyTorch counts them).
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let mut c = self.params.cost(input)?;
        if self.fixed {
            c.params = 0;
        }
        let [n, _, h, w] = self.params.output_shape(input)?;
        c.params -= self.structural_zeros;
        c.macs -= self.structural_zeros * (n * h * w) as u64;
        if self.bn.is_some() {
            c.params += 2 * self.params.out_channels as u64;
        }
        if let Some(scale) = &self.scale {
            c.params += scale.len() as u64;
        }
        c.params += self.activation_params;
        Ok(c)
    }
}

impl ConvBnAct {
    /// The graph input holding the residual: after `x` and the gate's logits.
    fn residual_input(&self) -> usize {
        1 + usize::from(self.gate.is_some())
    }
}

impl Node for ConvBnAct {
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        let s = *inputs.get(0)?;
        let out = self.params.output_shape(s)?;
        if self.gate.is_some() {
            crate::ops::same_shape("gate", [s[0], s[1], 1, 1], *inputs.get(1)?)?;
        }
        if self.join.is_some() {
            crate::ops::same_shape("residual", out, *inputs.get(self.residual_input())?)?;
        }
        Ok(vec![out])
    }

    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        ConvBnAct::cost(self, *inputs.get(0)?)
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        let x = inputs.get(0)?.tensor()?;
        if let Some(act) = self.gate {
            let gate = inputs.get(1)?.tensor()?;
            let residual = match self.join {
                Some(join) => Some((inputs.get(self.residual_input())?.tensor()?, join)),
                None => None,
            };
            let y = self.conv.forward_gated(rec, x, (gate, act), residual)?;
            return Ok(vec![Value::Tensor(y)]);
        }
        let y = match self.join {
            Some(join) => {
                let r = inputs.get(1)?.tensor()?;
                self.conv.forward_residual(rec, x, r, join)?
            }
            None if self.shuffle_groups > 0 => {
                self.conv.forward_shuffled(rec, x, self.shuffle_groups)?
            }
            None => self.conv.forward(rec, x)?,
        };
        Ok(vec![Value::Tensor(y)])
    }

    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        let x = inputs.get(0)?.tensor()?;
        let r = match self.join {
            Some(_) => Some(inputs.get(self.residual_input())?.tensor()?),
            None => None,
        };
        let y = match self.gate {
            Some(act) => {
                let gate = inputs.get(1)?.tensor()?;
                let scaled = reference::channel::scale_channels(x, gate, act)?;
                self.reference_with(scaled.view(), r)?
            }
            None => self.reference_with(x, r)?,
        };
        Ok(vec![HostValue::Tensor(y)])
    }
}

/// A transposed convolution, optionally followed by an inference batch norm, then its
/// activation, with its host weights (for the reference) as a node; on the GPU the batch
/// norm is folded into the weights.
#[derive(Debug)]
pub(crate) struct ConvTransposeNode {
    params: ConvTranspose2dParams,
    weight: Array4<f32>,
    bias: Option<Array1<f32>>,
    bn: Option<BnState>,
    layer: ConvTranspose2d,
    /// Whether the output takes the size of the shape input ([`ConvTransposeNode::sized`]).
    sized: bool,
    /// Learned parameters of its activations (PReLU slopes), as PyTorch counts them.
    activation_params: u64,
}

impl ConvTransposeNode {
    /// Loads `{prefix}.weight` (and `{prefix}.bias` when `params.bias`).
    pub(crate) fn load(
        gpu: &Gpu,
        sd: &StateDict,
        params: ConvTranspose2dParams,
        prefix: &str,
    ) -> Result<Self> {
        let (weight, bias) = PackedWeights::load(sd, prefix, &params)?;
        let layer =
            ConvTranspose2d::new(gpu, params, weight.view(), bias.as_ref().map(|b| b.view()))?;
        Ok(ConvTransposeNode {
            params,
            weight,
            bias,
            bn: None,
            layer,
            sized: false,
            activation_params: 0,
        })
    }

    /// Loads the transposed convolution `{conv}` and the batch norm `{bn}` (eps `eps`)
    /// after it; `params.activation` follows the batch norm.
    pub(crate) fn load_with_bn(
        gpu: &Gpu,
        sd: &StateDict,
        params: ConvTranspose2dParams,
        (conv, bn): (&str, &str),
        eps: f32,
    ) -> Result<Self> {
        let (weight, bias) = PackedWeights::load(sd, conv, &params)?;
        let norm = BnState::load(sd, bn, params.out_channels, eps)?;
        // y = (conv(x) + b - mean) * s + beta with s = gamma / sqrt(var + eps), per output
        // channel: the weight's second axis within each group.
        let per_group = params.out_channels / params.groups;
        let in_per_group = params.in_channels / params.groups;
        let mut folded = weight.clone();
        let mut shift = Array1::zeros(params.out_channels);
        for o in 0..params.out_channels {
            let b = bias.as_ref().map_or(0.0, |b| b[o]);
            let (s, t) = batch_norm_scale_shift(norm.channel(o), eps, b);
            let g = o / per_group;
            let rows = g * in_per_group..(g + 1) * in_per_group;
            folded
                .slice_mut(ndarray::s![rows, o % per_group, .., ..])
                .mapv_inplace(|w| (f64::from(w) * s) as f32);
            shift[o] = t as f32;
        }
        let gpu_params = ConvTranspose2dParams {
            bias: true,
            ..params
        };
        let layer = ConvTranspose2d::new(gpu, gpu_params, folded.view(), Some(shift.view()))?;
        Ok(ConvTransposeNode {
            params,
            weight,
            bias,
            bn: Some(norm),
            layer,
            sized: false,
            activation_params: 0,
        })
    }

    /// The layer sized as PyTorch's `forward(x, output_size)`: its output takes the height
    /// and width of the graph's shape input (the output padding chosen for it, see
    /// [`ConvTranspose2dParams::for_output_size`]).
    pub(crate) fn sized(mut self) -> Self {
        self.sized = true;
        self
    }

    /// Counts `n` learned parameters of its activations (one-slope PReLUs).
    pub(crate) fn with_activation_params(mut self, n: u64) -> Self {
        self.activation_params = n;
        self
    }

    /// The output's height and width when [`ConvTransposeNode::sized`]: the shape input's.
    fn output_size(&self, shapes: &[[usize; 4]]) -> Result<Option<(usize, usize)>> {
        if !self.sized {
            return Ok(None);
        }
        let like = shapes
            .first()
            .ok_or_else(|| crate::Error::Gpu("graph wiring: no output size".into()))?;
        Ok(Some((like[2], like[3])))
    }

    /// The parameters for `input` (with the output padding that reaches the shape input's
    /// size when [`ConvTransposeNode::sized`]).
    fn params_for(
        &self,
        input: [usize; 4],
        shapes: &[[usize; 4]],
    ) -> Result<ConvTranspose2dParams> {
        match self.output_size(shapes)? {
            Some(size) => self.params.for_output_size(input, size),
            None => Ok(self.params),
        }
    }
}

impl Node for ConvTransposeNode {
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        let x = *inputs.get(0)?;
        Ok(vec![self.params_for(x, &inputs.shapes)?.output_shape(x)?])
    }

    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        let x = *inputs.get(0)?;
        let mut c = self.params_for(x, &inputs.shapes)?.cost(x)?;
        if self.bn.is_some() {
            c.params += 2 * self.params.out_channels as u64;
        }
        c.params += self.activation_params;
        Ok(c)
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        let x = inputs.get(0)?.tensor()?;
        let y = match self.output_size(&inputs.shapes)? {
            Some(size) => self.layer.forward_to_size(rec, x, size)?,
            None => self.layer.forward(rec, x)?,
        };
        Ok(vec![Value::Tensor(y)])
    }

    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        let x = inputs.get(0)?.tensor()?;
        let (n, c, h, wd) = x.dim();
        let params = self.params_for([n, c, h, wd], &inputs.shapes)?;
        let (w, b) = (self.weight.view(), self.bias.as_ref().map(|b| b.view()));
        let Some(bn) = &self.bn else {
            let y = reference::conv_transpose::conv_transpose2d(&params, x, w, b)?;
            return Ok(vec![HostValue::Tensor(y)]);
        };
        let plain = ConvTranspose2dParams {
            activation: Activation::None,
            param_activation: None,
            ..params
        };
        let y = reference::conv_transpose::conv_transpose2d(&plain, x, w, b)?;
        let y = bn.reference(y.view())?;
        // The activation, then the one with parameters (the kernel's order).
        let y = reference::channel::activation(y.view(), self.params.activation);
        let y = match &self.params.param_activation {
            Some(p) => reference::channel::activation_with(y.view(), *p)?,
            None => y,
        };
        Ok(vec![HostValue::Tensor(y)])
    }
}

/// Squeeze-and-excitation as a node: `x * gate(excitation(x))`, or, as
/// [`SeNode::gate_of_sum`], the gate logits of the sum of its two inputs.
#[derive(Debug)]
pub(crate) struct SeNode {
    block: Arc<SqueezeExcitation>,
    params: SqueezeExcitationParams,
    weights: SeWeights,
    of_sum: bool,
    /// Whether the node outputs the gate logits of its input (the scale is fused into the
    /// convolution after it) rather than the gated input.
    gate_only: bool,
}

impl SeNode {
    /// Loads `{fc1}` and `{fc2}` (1x1 convolutions with bias).
    pub(crate) fn load(
        gpu: &Gpu,
        sd: &StateDict,
        params: SqueezeExcitationParams,
        fc1: &str,
        fc2: &str,
    ) -> Result<Self> {
        let weights = SeWeights::load(sd, params, fc1, fc2)?;
        Ok(SeNode {
            block: Arc::new(weights.upload(gpu, params)?),
            params,
            weights,
            of_sum: false,
            gate_only: false,
        })
    }

    /// The SE layer, shared (a fused block runs it between its two passes).
    pub(crate) fn layer(&self) -> Arc<SqueezeExcitation> {
        self.block.clone()
    }

    /// Whether the node computes the gate of a sum (and not the gated scale).
    pub(crate) fn of_sum(&self) -> bool {
        self.of_sum
    }

    /// The node computing the gate logits `[N, C, 1, 1]` of `avgpool(a) + avgpool(b)` from
    /// inputs `a`, `b` (see [`SqueezeExcitation::excitation_of_sum`]: the gate of `a + b`
    /// for one size, and `b` may be smaller).
    pub(crate) fn gate_of_sum(mut self) -> Self {
        self.of_sum = true;
        self
    }

    /// The node computing the gate logits `[N, C, 1, 1]` of its input, for a
    /// convolution that applies the scale as it reads (`ConvBnAct::with_input_gate`);
    /// its summary row still shows the gated map, the module's output.
    pub(crate) fn gate_only(mut self) -> Self {
        self.gate_only = true;
        self
    }

    /// The activation turning the gate's logits into the scale.
    pub(crate) fn scale_activation(&self) -> Activation {
        self.params.scale_activation
    }
}

impl Node for SeNode {
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        let s = *inputs.get(0)?;
        crate::ops::same_shape("input", [s[0], self.params.input_channels, s[2], s[3]], s)?;
        if self.of_sum {
            let b = *inputs.get(1)?;
            crate::ops::same_shape("b", [s[0], s[1], b[2], b[3]], b)?;
            return Ok(vec![[s[0], s[1], 1, 1]]);
        }
        if self.gate_only {
            return Ok(vec![[s[0], s[1], 1, 1]]);
        }
        Ok(vec![s])
    }

    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        self.params.cost(*inputs.get(0)?)
    }

    fn rows(&self, name: &str, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<SummaryRow>> {
        let cost = self.cost(inputs)?;
        self.shapes(inputs)?;
        let output = match self.of_sum {
            true => [inputs.get(0)?[0], inputs.get(0)?[1], 1, 1],
            // The module's output: the gated map, even when the scale is fused.
            false => *inputs.get(0)?,
        };
        Ok(vec![SummaryRow {
            name: name.to_string(),
            output,
            params: cost.params,
            macs: cost.macs,
        }])
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        let x = inputs.get(0)?.tensor()?;
        let y = if self.of_sum {
            let b = inputs.get(1)?.tensor()?;
            self.block.excitation_of_sum(rec, x, b)?
        } else if self.gate_only {
            self.block.excitation(rec, x)?
        } else {
            self.block.forward(rec, x)?
        };
        Ok(vec![Value::Tensor(y)])
    }

    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        let x = inputs.get(0)?.tensor()?;
        let [fc1, fc2] = self.weights.fc();
        let y = if self.of_sum {
            let pool = |t| reference::pool::global_pool(GlobalPool::Avg, t);
            let pooled = pool(x)? + pool(inputs.get(1)?.tensor()?)?;
            reference::attention::excitation(&self.params, pooled.view(), fc1, fc2)?
        } else if self.gate_only {
            let pooled = reference::pool::global_pool(GlobalPool::Avg, x)?;
            reference::attention::excitation(&self.params, pooled.view(), fc1, fc2)?
        } else {
            reference::attention::squeeze_excitation(&self.params, x, fc1, fc2)?
        };
        Ok(vec![HostValue::Tensor(y)])
    }
}

/// Efficient channel attention's gate logits of its input, `[N, C, 1, 1]` (the scale is
/// fused into the pass after it, as [`SeNode::gate_only`]'s).
#[derive(Debug)]
pub(crate) struct EcaGateNode {
    layer: Eca,
    /// The kernel, for the reference.
    weight: Array1<f32>,
}

impl EcaGateNode {
    /// Loads `{prefix}.conv.weight` (`[1, 1, k]`, no bias: timm's `EcaModule`).
    pub(crate) fn load(gpu: &Gpu, sd: &StateDict, params: EcaParams, prefix: &str) -> Result<Self> {
        let weight = Eca::load_weight(params, sd, prefix)?;
        Ok(EcaGateNode {
            layer: Eca::new(gpu, params, weight.view())?,
            weight,
        })
    }
}

impl Node for EcaGateNode {
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        let s = *inputs.get(0)?;
        crate::ops::check_channels(s, self.layer.params().channels)?;
        Ok(vec![[s[0], s[1], 1, 1]])
    }

    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        self.layer.cost(*inputs.get(0)?)
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        let logits = self.layer.logits(rec, inputs.get(0)?.tensor()?)?;
        Ok(vec![Value::Tensor(logits)])
    }

    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        let x = inputs.get(0)?.tensor()?;
        let logits = reference::attention::eca_logits(x, self.weight.view())?;
        Ok(vec![HostValue::Tensor(logits)])
    }
}

/// The scale of a global response norm (ConvNeXt V2's `mlp.grn`), `[N, C, 1, 1]`: its
/// input times this plus its bias is the norm's output, which the layer after it computes
/// as it reads the input ([`GlobalResponseNorm::scale`]).
#[derive(Debug)]
pub(crate) struct GrnScaleNode {
    norm: GlobalResponseNorm,
    /// The weight, for the reference.
    weight: Array1<f32>,
}

impl GrnScaleNode {
    /// Loads `{prefix}.weight` and `{prefix}.bias` of `c` values each; returns the node and
    /// the bias (for the layer that adds it).
    pub(crate) fn load(
        gpu: &Gpu,
        sd: &StateDict,
        params: GlobalResponseNormParams,
        prefix: &str,
    ) -> Result<(Self, Array1<f32>)> {
        let c = params.channels;
        let weight = sd.get1(&key(prefix, "weight"), c)?;
        let bias = sd.get1(&key(prefix, "bias"), c)?;
        let norm = GlobalResponseNorm::new(gpu, params, weight.view(), bias.view())?;
        Ok((GrnScaleNode { norm, weight }, bias))
    }
}

impl Node for GrnScaleNode {
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        let s = self.norm.params().output_shape(*inputs.get(0)?)?;
        Ok(vec![[s[0], s[1], 1, 1]])
    }

    /// The norm's weight and bias (the bias is added by the layer after it).
    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        self.norm.cost(*inputs.get(0)?)
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        let scale = self.norm.scale(rec, inputs.get(0)?.tensor()?)?;
        Ok(vec![Value::Tensor(scale)])
    }

    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        let x = inputs.get(0)?.tensor()?;
        let params = self.norm.params();
        let scale = reference::norm::global_response_norm_scale(params, x, self.weight.view())?;
        Ok(vec![HostValue::Tensor(scale)])
    }
}

/// Softmax attention over two paths, as a node on inputs `(path0, path1)`: timm's
/// `SelectiveKernelAttn` with the weighting after it (the paths summed, averaged over each
/// plane, `fc_reduce`, an inference batch norm, ReLU, `fc_select` to both paths' logits, a
/// softmax across the paths, their weighted sum). On the GPU it is the
/// squeeze-and-excitation gate of the paths' sum (the batch norm folded into
/// `fc_reduce`, `fc_select` into the difference of its two halves:
/// `softmax([l0, l1])[0] = sigmoid(l0 - l1)`) and one blend; the reference is timm's
/// order.
#[derive(Debug)]
pub(crate) struct TwoPathAttentionNode {
    gate: SqueezeExcitation,
    fc1: Array4<f32>,
    bn: BnState,
    fc2: Array4<f32>,
}

impl TwoPathAttentionNode {
    /// Loads `{fc1}.weight` `[A, C, 1, 1]`, the batch norm `{bn}.*` and `{fc2}.weight`
    /// `[2 C, A, 1, 1]` (no biases) for paths of `c` channels and `a` attention channels.
    pub(crate) fn load(
        gpu: &Gpu,
        sd: &StateDict,
        (c, a): (usize, usize),
        [fc1, bn, fc2]: &[String; 3],
    ) -> Result<Self> {
        let fc1 = sd.get4(&key(fc1, "weight"), [a, c, 1, 1])?;
        let bn = BnState::load(sd, bn, a, 1e-5)?;
        let fc2 = sd.get4(&key(fc2, "weight"), [2 * c, a, 1, 1])?;
        let (w1, b1) = fold_batch_norm(
            fc1.view(),
            None,
            bn.gamma.view(),
            bn.beta.view(),
            bn.mean.view(),
            bn.var.view(),
            bn.eps,
        )?;
        let w2 =
            &fc2.slice(ndarray::s![..c, .., .., ..]) - &fc2.slice(ndarray::s![c.., .., .., ..]);
        let params = SqueezeExcitationParams::new(c, a);
        let zeros = Array1::zeros(c);
        let gate =
            SqueezeExcitation::new(gpu, params, w1.view(), b1.view(), w2.view(), zeros.view())?;
        Ok(TwoPathAttentionNode { gate, fc1, bn, fc2 })
    }
}

impl Node for TwoPathAttentionNode {
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        let x = *inputs.get(0)?;
        let c = self.fc1.dim().1;
        crate::ops::same_shape("path0", [x[0], c, x[2], x[3]], x)?;
        crate::ops::same_shape("path1", x, *inputs.get(1)?)?;
        Ok(vec![x])
    }

    /// `fc1`, the batch norm's weight and bias and `fc2`, as PyTorch counts them; the
    /// blend reads both paths and writes one map.
    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        let x = *inputs.get(0)?;
        let (a, c) = (self.fc1.dim().0, self.fc1.dim().1);
        let params = (a * c + 2 * a + 2 * c * a) as u64;
        Ok(Cost {
            params,
            macs: (x[0] * 3 * a * c) as u64,
            bytes: channel::elementwise_cost(x, 2).bytes + 4 * params,
        })
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        let (p0, p1) = (inputs.get(0)?.tensor()?, inputs.get(1)?.tensor()?);
        let difference = self.gate.excitation_of_sum(rec, p0, p1)?;
        // softmax([l0, l1])[0] = sigmoid(l0 - l1): path 1 blended towards path 0.
        let y = channel::lerp_channels(rec, p1, p0, &difference, Activation::Sigmoid)?;
        Ok(vec![Value::Tensor(y)])
    }

    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        let paths = [inputs.get(0)?.tensor()?, inputs.get(1)?.tensor()?];
        let bn = &self.bn;
        let stats = [
            bn.gamma.view(),
            bn.beta.view(),
            bn.mean.view(),
            bn.var.view(),
        ];
        let y = reference::attention::selective_kernel(
            &paths,
            self.fc1.view(),
            stats,
            bn.eps,
            self.fc2.view(),
        )?;
        Ok(vec![HostValue::Tensor(y)])
    }
}

/// timm's `SplitAttn` after its convolution (ResNeSt's split attention), as a node on that
/// convolution's output `[N, R * C, H, W]` after `bn0` and ReLU (`R = radix` splits of `C`
/// channels): the splits' sum averaged over each plane, `fc1` (grouped, with bias),
/// `bn1`, ReLU, `fc2` (grouped, with bias), a softmax across the splits (a sigmoid at
/// radix 1) and the splits' weighted sum. On the GPU it is the squeeze-and-excitation
/// logits of the whole input (its `fc1` the grouped `fc1` made dense, `bn1` folded in,
/// repeated for every split so that it sums the splits' means; its `fc2` dense, its rows
/// in split order) and one [`radix_softmax_sum`](crate::ops::attention::radix_softmax_sum)
/// pass: no split is copied out. The reference is timm's order.
#[derive(Debug)]
pub(crate) struct SplitAttentionNode {
    gate: SqueezeExcitation,
    /// `(radix, groups)`.
    splits: (usize, usize),
    fc1: (Array4<f32>, Array1<f32>),
    bn: BnState,
    fc2: (Array4<f32>, Array1<f32>),
}

impl SplitAttentionNode {
    /// Loads `{fc1}.weight` `[A, C / G, 1, 1]` and `{fc1}.bias`, the batch norm `{bn}.*`
    /// and `{fc2}.weight` `[R * C, A / G, 1, 1]` and `{fc2}.bias` for splits of `c`
    /// channels, `a` attention channels, `R = radix` and `G = groups`.
    pub(crate) fn load(
        gpu: &Gpu,
        sd: &StateDict,
        (c, a): (usize, usize),
        (radix, groups): (usize, usize),
        [fc1, bn, fc2]: &[String; 3],
    ) -> Result<Self> {
        fail_if(radix == 0 || radix > MAX_RADIX, "radix", || {
            format!("split attention takes radix 1 to {MAX_RADIX}, got {radix}")
        })?;
        fail_if(
            groups == 0 || !c.is_multiple_of(groups) || !a.is_multiple_of(groups),
            "groups",
            || format!("{c} and {a} channels do not split into {groups} groups"),
        )?;
        let (cg, ag) = (c / groups, a / groups);
        let with_bias = |name: &str, shape: [usize; 4]| -> Result<(Array4<f32>, Array1<f32>)> {
            let w = sd.get4(&key(name, "weight"), shape)?;
            let b = sd.get(&key(name, "bias"), &[shape[0]])?;
            Ok((w, Array1::from_iter(b.iter().copied())))
        };
        let fc1 = with_bias(fc1, [a, cg, 1, 1])?;
        let bn = BnState::load(sd, bn, a, 1e-5)?;
        let fc2 = with_bias(fc2, [radix * c, ag, 1, 1])?;
        // fc1 dense (block diagonal), bn1 folded in, then repeated for every split.
        let dense = Array4::from_shape_fn((a, c, 1, 1), |(o, i, _, _)| {
            if i / cg == o / ag {
                fc1.0[[o, i % cg, 0, 0]]
            } else {
                0.0
            }
        });
        let (w1, b1) = fold_batch_norm(
            dense.view(),
            Some(fc1.1.view()),
            bn.gamma.view(),
            bn.beta.view(),
            bn.mean.view(),
            bn.var.view(),
            bn.eps,
        )?;
        let w1 = Array4::from_shape_fn((a, radix * c, 1, 1), |(o, i, _, _)| w1[[o, i % c, 0, 0]]);
        // fc2's channel g * R * Cg + r * Cg + j (timm's `RadixSoftmax` view) is split r's
        // channel g * Cg + j: row r * C + g * Cg + j here.
        let source = |row: usize| {
            let (r, ch) = (row / c, row % c);
            let (g, j) = (ch / cg, ch % cg);
            (g, g * radix * cg + r * cg + j)
        };
        let w2 = Array4::from_shape_fn((radix * c, a, 1, 1), |(row, i, _, _)| {
            let (g, src) = source(row);
            if i / ag == g {
                fc2.0[[src, i % ag, 0, 0]]
            } else {
                0.0
            }
        });
        let b2 = Array1::from_shape_fn(radix * c, |row| fc2.1[source(row).1]);
        let params = SqueezeExcitationParams::new(radix * c, a);
        let gate = SqueezeExcitation::new(gpu, params, w1.view(), b1.view(), w2.view(), b2.view())?;
        Ok(SplitAttentionNode {
            gate,
            splits: (radix, groups),
            fc1,
            bn,
            fc2,
        })
    }

    /// The channels of one split.
    fn channels(&self) -> usize {
        self.fc1.0.dim().1 * self.splits.1
    }
}

impl Node for SplitAttentionNode {
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        let x = *inputs.get(0)?;
        let (radix, c) = (self.splits.0, self.channels());
        crate::ops::check_channels(x, radix * c)?;
        Ok(vec![radix_softmax_sum_shape(x, [x[0], x[1], 1, 1], radix)?])
    }

    /// `fc1`, the batch norm's weight and bias and `fc2` with their biases, as PyTorch
    /// counts them, and the weighted sum.
    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        let x = *inputs.get(0)?;
        let (w1, w2) = (self.fc1.0.len(), self.fc2.0.len());
        let a = self.fc1.0.dim().0;
        let params = (w1 + a + 2 * a + w2 + self.fc2.1.len()) as u64;
        let sum = radix_softmax_sum_cost(x, self.splits.0)?;
        Ok(Cost {
            params,
            macs: sum.macs + (x[0] * (w1 + w2)) as u64,
            bytes: sum.bytes + elementwise_cost(x, 0).bytes + 4 * params,
        })
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        let x = inputs.get(0)?.tensor()?;
        let logits = self.gate.excitation(rec, x)?;
        let y = radix_softmax_sum(rec, x, &logits, self.splits.0)?;
        Ok(vec![Value::Tensor(y)])
    }

    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        let x = inputs.get(0)?.tensor()?;
        let bn = &self.bn;
        let stats = [
            bn.gamma.view(),
            bn.beta.view(),
            bn.mean.view(),
            bn.var.view(),
        ];
        let y = reference::attention::resnest_split_attention(
            x,
            self.splits,
            (self.fc1.0.view(), self.fc1.1.view()),
            stats,
            bn.eps,
            (self.fc2.0.view(), self.fc2.1.view()),
        )?;
        Ok(vec![HostValue::Tensor(y)])
    }
}

/// The shape of `x` padded with zero channels to `channels` ([`Op::PadChannels`]), or an
/// error naming `channels` when the input has more.
fn pad_channels_shape(x: [usize; 4], channels: usize) -> Result<[usize; 4]> {
    fail_if(channels < x[1], "channels", || {
        format!("padding to {channels} channels, but the input has {}", x[1])
    })?;
    Ok([x[0], channels, x[2], x[3]])
}

/// The weightless ops a block is made of, as graph nodes.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    /// `[N, C, 1, 1]` average or max of each plane.
    GlobalPool(GlobalPool),
    /// Average pooling.
    AvgPool(AvgPool2dParams),
    /// Adaptive average pooling (PSPNet's pyramid bins).
    AdaptiveAvgPool(AdaptiveAvgPool2dParams),
    /// Max pooling: two outputs, the values and their indices.
    MaxPool(MaxPool2dParams),
    /// Max unpooling of inputs `(x, indices)` back to the size of the shape input (the map
    /// the indices were pooled from).
    MaxUnpool(MaxUnpool2dParams),
    /// Resampling to the size of the shape input.
    ResizeLike(UpsampleMode),
    /// Resampling with fixed parameters (U-Net's `nn.Upsample(scale_factor=2)`).
    Upsample(UpsampleParams),
    /// Zero padding (or cropping) to the size of the shape input, split as milesial's
    /// U-Net does: `diff // 2` before, the rest after.
    PadLike,
    /// The zero padding that TensorFlow's `'SAME'` ([`tf_same_padding`]) gives this
    /// convolution's input beyond the convolution's own padding (timm's `Conv2dSame`,
    /// whose padding follows the input's size): the convolution keeps the padding of the
    /// common case, and only other sizes take a pass (a strided window on an odd axis:
    /// one leading row or column). Padding that TensorFlow's would not cover is an error.
    ///
    /// [`tf_same_padding`]: crate::ops::conv::tf_same_padding
    PadToTfSame(Conv2dParams),
    /// Concatenation of every input along channels.
    Concat,
    /// ShuffleNetV2's `channel_shuffle(cat([a[:, :C_b], b]), 2)` of inputs `(a, b)`, two
    /// copies ([`channel::shuffle_pair`]).
    ShufflePair,
    /// Channels `start..start + length` of the input (`narrow(1, start, length)`).
    Narrow(usize, usize),
    /// The input with zero channels after its own, up to this many in all
    /// (`torch.cat((x, torch.zeros(n, channels - c, h, w)), 1)`: ENet's downsampling
    /// shortcut).
    PadChannels(usize),
    /// An activation.
    Activation(Activation),
    /// `x * gate(s)` of inputs `(x, s)`, `s` of shape `[N, 1, H, W]` (spatial attention).
    ScaleSpatial(Activation),
    /// `x * gate(s)` of inputs `(x, s)`, `s` of shape `[N, C, 1, 1]` (channel attention
    /// whose logits come from another map: smp MAnet's gates).
    ScaleChannels(Activation),
    /// `act(x * gate(s) + branch)` of inputs `(x, s, branch)`, `s` of shape `[N, C, 1, 1]`
    /// (a channel gate and a skip in one pass: PAN's global attention upsample, SENet's
    /// block end).
    ScaleChannelsAdd {
        /// The activation turning `s` into the scale.
        gate: Activation,
        /// The activation of the sum.
        act: Activation,
    },
    /// The sum of inputs `(a, b)` (same shapes).
    Add,
    /// `act(a + b)` of inputs `(a, b)` (same shapes).
    AddThen(Activation),
    /// `act(a * b)` of inputs `(a, b)` (same shapes).
    Mul(Activation),
    /// `(1 - weight) * start + weight * end` of inputs `(start, end, weight)` (same
    /// shapes): a GRU's update.
    Blend,
    /// `(1 - t) * start + t * end`, `t = sigmoid(t_logits)`, of inputs
    /// `(start, end, t_logits)` (same shapes; [`channel::highway`]): PIDNet's
    /// boundary-attention-guided fusion.
    Highway,
    /// `act((1 - t) * start + t * end)`, `t = gate(weight)`, of inputs
    /// `(start, end, weight)`, `weight` of shape `[N, 1, H, W]`, as `(gate, act)`: PIDNet's
    /// pixel-attention-guided fusion.
    BlendSpatial(Activation, Activation),
    /// `a + gate(s) * b` (or with `complement`, `(1 - gate(s)) * a + b`) of inputs
    /// `(a, b, s)` (same shapes): PIDNet's light boundary-attention-guided fusion.
    AddGated {
        /// The gate turning `s` into the weight.
        gate: Activation,
        /// `(1 - gate(s)) * a + b` instead.
        complement: bool,
    },
    /// `act(sum_c a * b)` of inputs `(a, b)` (same shapes) as an `[N, 1, H, W]` map.
    ChannelDot(Activation),
    /// `c - a * b` of inputs `(c, a, b)` (same shapes).
    SubMul,
    /// `a * b + c` of inputs `(a, b, c)` (same shapes).
    MulAdd,
    /// `a / (b + eps)` of inputs `(a, b)` (same shapes).
    Div(f32),
    /// Softmax over the channels (`log`: log-softmax), `nn.Softmax2d` / `nn.LogSoftmax(1)`.
    Softmax {
        /// Log-softmax instead.
        log: bool,
    },
    /// The window of the shape input's size at this offset (rows, columns): FCN's crops.
    CropLike((usize, usize)),
    /// `act(x + s)` of inputs `(x, s)`, `s` of shape `[N, C, 1, 1]` (DPT's class-token
    /// readouts).
    AddChannels(Activation),
    /// Tokens `start..start + len` of a token sequence held as a `[N, C, 1, T]` map
    /// (`x[:, start:start + len]` of timm's `[N, T, C]`).
    Tokens {
        /// The first token.
        start: usize,
        /// How many (`None`: the rest, `x[:, start:]`).
        len: Option<usize>,
    },
    /// The input's values as a map of the shape input's height and width (a view, no
    /// pass): `[N, C, 1, h * w]` tokens back to an image-like `[N, C, h, w]`.
    ReshapeLike,
}

impl Op {
    pub(crate) fn resize(&self, inputs: &Inputs<'_, impl Sized>) -> Result<Option<UpsampleParams>> {
        Ok(match self {
            Op::ResizeLike(mode) => {
                let s = inputs.shape(0)?;
                Some(UpsampleParams {
                    mode: *mode,
                    size: Some((s[2], s[3])),
                    scale_factor: None,
                    recompute_scale_factor: false,
                    antialias: false,
                })
            }
            _ => None,
        })
    }

    /// [`Op::PadLike`]'s padding of an input of shape `x`.
    fn pad(&self, x: [usize; 4], inputs: &Inputs<'_, impl Sized>) -> Result<Option<Pad2dParams>> {
        Ok(match self {
            Op::PadLike => {
                let s = inputs.shape(0)?;
                let split = |target: usize, have: usize| {
                    let diff = target as i64 - have as i64;
                    (diff.div_euclid(2), diff - diff.div_euclid(2))
                };
                let ((top, bottom), (left, right)) = (split(s[2], x[2]), split(s[3], x[3]));
                Some(Pad2dParams::new((left, right, top, bottom)))
            }
            Op::PadToTfSame(conv) => {
                let (kh, kw) = conv.kernel_size;
                let ((top, bottom), (left, right)) = conv.pads();
                let rest = |x: usize, k, s, d, before: usize, after: usize| {
                    let (b, a) = crate::ops::conv::tf_same_padding(x, k, s, d);
                    let fits = b >= before && a >= after;
                    fits.then(|| ((b - before) as i64, (a - after) as i64))
                };
                let rows = rest(x[2], kh, conv.stride.0, conv.dilation.0, top, bottom);
                let cols = rest(x[3], kw, conv.stride.1, conv.dilation.1, left, right);
                let ((t, b), (l, r)) =
                    rows.zip(cols).ok_or_else(|| crate::Error::InvalidParam {
                        name: "padding",
                        reason: format!(
                            "{:?} exceeds TensorFlow's 'SAME' padding of a {kh}x{kw} window \
                             at stride {:?} on {x:?}",
                            conv.pads(),
                            conv.stride
                        ),
                    })?;
                Some(Pad2dParams::new((l, r, t, b)))
            }
            _ => None,
        })
    }

    fn crop(&self, inputs: &Inputs<'_, impl Sized>) -> Result<Option<CropParams2d>> {
        Ok(match self {
            Op::CropLike(offset) => {
                let s = inputs.shape(0)?;
                Some(CropParams2d::new(*offset, (s[2], s[3])))
            }
            _ => None,
        })
    }

    fn unpool(&self, inputs: &Inputs<'_, impl Sized>) -> Result<Option<MaxUnpool2dParams>> {
        Ok(match self {
            Op::MaxUnpool(p) => {
                let s = inputs.shape(0)?;
                Some(p.output_size((s[2], s[3])))
            }
            _ => None,
        })
    }
}

/// An [`Op::MaxPool`] whose indices nothing reads: the values alone
/// ([`pool::max_pool2d_values`]), no index tensor written. [`Graph`]'s forward plan puts
/// it in place of such a pool.
///
/// [`Graph`]: super::Graph
#[derive(Debug)]
pub(crate) struct MaxPoolValues(pub(crate) MaxPool2dParams);

impl Node for MaxPoolValues {
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        Ok(vec![self.0.output_shape(*inputs.get(0)?)?])
    }

    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        self.0.values_cost(*inputs.get(0)?)
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        let y = pool::max_pool2d_values(rec, &self.0, inputs.get(0)?.tensor()?)?;
        Ok(vec![Value::Tensor(y)])
    }

    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        let (values, _) = reference::pool::max_pool2d(&self.0, inputs.get(0)?.tensor()?)?;
        Ok(vec![HostValue::Tensor(values)])
    }
}

/// One input of a [`ConcatInPlace`]: a value copied into its channels, or the source of a
/// resize written there directly.
#[derive(Clone, Debug)]
pub(crate) enum ConcatPart {
    /// The value input, copied.
    Copy,
    /// The value input resized by this op ([`Op::ResizeLike`], reading the next shape
    /// input, or [`Op::Upsample`]).
    Resize(Op),
}

/// A concatenation along channels whose resized inputs are written into the output by
/// their resize ([`upsample::upsample_into`]) instead of being stored and then copied:
/// one dispatch and one round trip of the resized map fewer each (area and antialiased
/// resizes, which run passes of their own, still resize and then copy). [`Graph`]'s forward
/// plan puts it in place of an [`Op::Concat`] and the resizes only it reads.
///
/// [`Graph`]: super::Graph
#[derive(Debug)]
pub(crate) struct ConcatInPlace {
    pub(crate) parts: Vec<ConcatPart>,
}

impl ConcatInPlace {
    /// Each part's resize (`None` for a copied part), from the shape inputs in part order
    /// (one for each [`Op::ResizeLike`]).
    fn resizes<V>(&self, inputs: &Inputs<'_, V>) -> Result<Vec<Option<UpsampleParams>>> {
        let mut like = inputs.shapes.iter().copied();
        self.parts
            .iter()
            .map(|part| match part {
                ConcatPart::Copy => Ok(None),
                ConcatPart::Resize(Op::Upsample(p)) => Ok(Some(*p)),
                ConcatPart::Resize(op) => {
                    let one = Inputs::<()> {
                        values: Vec::new(),
                        shapes: like.next().into_iter().collect(),
                    };
                    let p = op.resize(&one)?.ok_or_else(|| {
                        crate::Error::Gpu("graph: a concatenated part is no resize".into())
                    })?;
                    Ok(Some(p))
                }
            })
            .collect()
    }

    /// Each part's shape in the concatenation (the value inputs' shapes `inputs`, each
    /// part's resize `resizes`), and the concatenation's.
    fn part_shapes(
        inputs: &Inputs<'_, [usize; 4]>,
        resizes: &[Option<UpsampleParams>],
    ) -> Result<(Vec<[usize; 4]>, [usize; 4])> {
        let parts = resizes
            .iter()
            .enumerate()
            .map(|(i, resize)| {
                let x = *inputs.get(i)?;
                resize.map_or(Ok(x), |p| p.output_shape(x))
            })
            .collect::<Result<Vec<_>>>()?;
        let out = Op::Concat.shapes(&Inputs {
            values: parts.iter().collect(),
            shapes: Vec::new(),
        })?[0];
        Ok((parts, out))
    }
}

impl Node for ConcatInPlace {
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        Ok(vec![Self::part_shapes(inputs, &self.resizes(inputs)?)?.1])
    }

    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        let resizes = self.resizes(inputs)?;
        Self::part_shapes(inputs, &resizes)?;
        let mut cost = Cost::default();
        for (i, resize) in resizes.into_iter().enumerate() {
            let x = *inputs.get(i)?;
            let part = match resize {
                // Read and written once.
                None => Cost {
                    bytes: 8 * x.iter().product::<usize>() as u64,
                    ..Cost::default()
                },
                Some(p) => p.cost(x)?,
            };
            cost.params += part.params;
            cost.macs += part.macs;
            cost.bytes += part.bytes;
        }
        Ok(cost)
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        let values = inputs.all(Value::tensor)?;
        let value_shapes: Vec<[usize; 4]> = values.iter().map(|t| t.shape()).collect();
        let shapes = Inputs {
            values: value_shapes.iter().collect(),
            shapes: inputs.shapes.clone(),
        };
        let resizes = self.resizes(inputs)?;
        let (parts, out) = Self::part_shapes(&shapes, &resizes)?;
        let y = rec.empty("output", out)?;
        let mut offset = 0;
        for ((resize, x), part_shape) in resizes.into_iter().zip(&values).zip(parts) {
            match resize {
                None => channel::copy_into_channels(rec, x, &y, offset)?,
                Some(p) => upsample::upsample_into(rec, &p, x, &y, offset)?,
            }
            offset += part_shape[1];
        }
        Ok(vec![Value::Tensor(y)])
    }

    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        let mut parts = Vec::with_capacity(self.parts.len());
        for (i, resize) in self.resizes(inputs)?.into_iter().enumerate() {
            let x = inputs.get(i)?.tensor()?;
            parts.push(match resize {
                None => x.to_owned(),
                Some(p) => reference::upsample::upsample(&p, x)?,
            });
        }
        let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
        Ok(vec![HostValue::Tensor(reference::channel::concat(&views)?)])
    }
}

/// `act(other + resize(x))` of inputs `(x, other)` (and the resize's shape input, for
/// [`Op::ResizeLike`]): an [`Op::Add`] or [`Op::AddThen`] and the resize only it reads, in
/// one pass ([`upsample::upsample_add`]): one dispatch and one round trip of the resized
/// map fewer. [`Graph`]'s forward plan puts it in place of both.
///
/// [`Graph`]: super::Graph
#[derive(Debug)]
pub(crate) struct ResizeAdd {
    /// The [`Op::ResizeLike`] or [`Op::Upsample`].
    pub(crate) resize: Op,
    /// The sum's activation.
    pub(crate) act: Activation,
}

impl ResizeAdd {
    /// The resize's parameters (from the shape input for [`Op::ResizeLike`]).
    fn params<V>(&self, inputs: &Inputs<'_, V>) -> Result<UpsampleParams> {
        match &self.resize {
            Op::Upsample(p) => Ok(*p),
            op => op.resize(inputs)?.ok_or_else(|| {
                crate::Error::Gpu("graph: a fused sum's addend is no resize".into())
            }),
        }
    }
}

impl Node for ResizeAdd {
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        let out = self.params(inputs)?.output_shape(*inputs.get(0)?)?;
        crate::ops::same_shape("b", out, *inputs.get(1)?)?;
        Ok(vec![out])
    }

    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        let out = self.shapes(inputs)?[0];
        let mut cost = self.params(inputs)?.cost(*inputs.get(0)?)?;
        // The other operand, read once in the resize's store.
        cost.bytes += 4 * out.iter().product::<usize>() as u64;
        Ok(cost)
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        let (x, other) = (inputs.get(0)?.tensor()?, inputs.get(1)?.tensor()?);
        let p = self.params(inputs)?;
        let y = upsample::upsample_add(rec, &p, x, other, self.act)?;
        Ok(vec![Value::Tensor(y)])
    }

    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        let (x, other) = (inputs.get(0)?.tensor()?, inputs.get(1)?.tensor()?);
        let p = self.params(inputs)?;
        let y = reference::upsample::upsample_add(&p, x, other, self.act)?;
        Ok(vec![HostValue::Tensor(y)])
    }
}

impl Node for Op {
    fn as_op(&self) -> Option<&Op> {
        Some(self)
    }

    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        let x = *inputs.get(0)?;
        let same = |name, i: usize, want: [usize; 4]| -> Result<()> {
            crate::ops::same_shape(name, want, *inputs.get(i)?)
        };
        Ok(match self {
            Op::GlobalPool(k) => vec![k.output_shape(x)?],
            Op::AvgPool(p) => vec![p.output_shape(x)?],
            Op::AdaptiveAvgPool(p) => vec![p.output_shape(x)?],
            Op::MaxPool(p) => {
                let out = p.output_shape(x)?;
                vec![out, out]
            }
            Op::MaxUnpool(_) => {
                same("indices", 1, x)?;
                vec![self.unpool(inputs)?.expect("unpool").output_shape(x)?]
            }
            Op::ResizeLike(_) => {
                vec![self.resize(inputs)?.expect("resize").output_shape(x)?]
            }
            Op::Upsample(p) => vec![p.output_shape(x)?],
            Op::PadLike | Op::PadToTfSame(_) => {
                vec![self.pad(x, inputs)?.expect("pad").output_shape(x)?]
            }
            Op::Concat => {
                let mut c = 0;
                for s in &inputs.values {
                    if (s[0], s[2], s[3]) != (x[0], x[2], x[3]) {
                        return Err(crate::Error::ShapeMismatch {
                            name: "inputs",
                            expected: vec![x[0], s[1], x[2], x[3]],
                            actual: s.to_vec(),
                        });
                    }
                    c += s[1];
                }
                vec![[x[0], c, x[2], x[3]]]
            }
            Op::ShufflePair => vec![channel::shuffle_pair_shape(x, *inputs.get(1)?)?],
            Op::Narrow(start, length) => vec![channel::narrow_shape(x, *start, *length)?],
            Op::PadChannels(channels) => vec![pad_channels_shape(x, *channels)?],
            Op::Activation(_) | Op::Softmax { .. } => vec![x],
            Op::ScaleSpatial(_) => {
                same("scale", 1, [x[0], 1, x[2], x[3]])?;
                vec![x]
            }
            Op::ScaleChannels(_) => {
                same("scale", 1, [x[0], x[1], 1, 1])?;
                vec![x]
            }
            Op::ScaleChannelsAdd { .. } => {
                same("scale", 1, [x[0], x[1], 1, 1])?;
                same("branch", 2, x)?;
                vec![x]
            }
            Op::Add | Op::AddThen(_) | Op::Mul(_) | Op::Div(_) => {
                same("b", 1, x)?;
                vec![x]
            }
            Op::Blend | Op::SubMul | Op::MulAdd | Op::Highway | Op::AddGated { .. } => {
                same("inputs", 1, x)?;
                same("inputs", 2, x)?;
                vec![x]
            }
            Op::BlendSpatial(..) => {
                same("end", 1, x)?;
                same("weight", 2, [x[0], 1, x[2], x[3]])?;
                vec![x]
            }
            Op::ChannelDot(_) => {
                same("b", 1, x)?;
                vec![channel::channel_dot_shape(x)]
            }
            Op::CropLike(_) => vec![self.crop(inputs)?.expect("crop").output_shape(x)?],
            Op::AddChannels(_) => {
                same("scale", 1, [x[0], x[1], 1, 1])?;
                vec![x]
            }
            Op::Tokens { start, len } => vec![tokens_params(*start, *len, x).output_shape(x)?],
            Op::ReshapeLike => vec![reshaped(x, inputs.shape(0)?)?],
        })
    }

    /// Bytes moved; no parameters, and no MACs: summaries count multiply-accumulates of
    /// layers with weights, as torchinfo does.
    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        let x = *inputs.get(0)?;
        let full = match self {
            Op::GlobalPool(k) => k.cost(x)?,
            Op::AvgPool(p) => p.cost(x)?,
            Op::AdaptiveAvgPool(p) => p.cost(x)?,
            Op::MaxPool(p) => p.cost(x)?,
            Op::MaxUnpool(_) => self.unpool(inputs)?.expect("unpool").cost(x)?,
            Op::ResizeLike(_) => self.resize(inputs)?.expect("resize").cost(x)?,
            Op::Upsample(p) => p.cost(x)?,
            Op::PadLike | Op::PadToTfSame(_) => match self.pad(x, inputs)?.expect("pad") {
                p if p.pad == (0, 0, 0, 0) => Cost::default(),
                p => p.cost(x)?,
            },
            Op::Concat => Cost {
                bytes: 8 * x.iter().product::<usize>() as u64,
                ..Cost::default()
            },
            // Each copied value read and written once.
            Op::ShufflePair => Cost {
                bytes: 16 * inputs.get(1)?.iter().product::<usize>() as u64,
                ..Cost::default()
            },
            // The first channels of one sample are a view.
            Op::Narrow(start, length) if channel::is_prefix(x, *start, *length) => Cost::default(),
            Op::Narrow(_, length) => Cost {
                bytes: 8 * (x[0] * length * x[2] * x[3]) as u64,
                ..Cost::default()
            },
            // Every output value written by the clear, the input's copied over them.
            Op::PadChannels(channels) => Cost {
                bytes: 4 * ((x[0] * channels * x[2] * x[3]) as u64)
                    + 8 * x.iter().product::<usize>() as u64,
                ..Cost::default()
            },
            Op::Activation(_) => elementwise_cost(x, 1),
            // A max, a sum and the writes: three reads of the input.
            Op::Softmax { .. } => elementwise_cost(x, 3),
            Op::ScaleSpatial(_)
            | Op::ScaleChannels(_)
            | Op::Add
            | Op::AddThen(_)
            | Op::Mul(_)
            | Op::Div(_)
            | Op::ScaleChannelsAdd { .. }
            | Op::AddChannels(_) => elementwise_cost(x, 2),
            Op::Blend | Op::SubMul | Op::MulAdd | Op::Highway | Op::AddGated { .. } => {
                elementwise_cost(x, 3)
            }
            // The weight is a single plane, read once for every channel.
            Op::BlendSpatial(..) => elementwise_cost(x, 2),
            Op::ChannelDot(_) => channel::channel_dot_cost(x),
            Op::CropLike(_) => match self.crop(inputs)?.expect("crop") {
                p if p.offset == (0, 0) && p.size == (x[2], x[3]) => Cost::default(),
                p => p.cost(x)?,
            },
            Op::Tokens { start, len } => tokens_params(*start, *len, x).cost(x)?,
            Op::ReshapeLike => Cost::default(),
        };
        Ok(Cost {
            bytes: full.bytes,
            ..Cost::default()
        })
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        let t = |i: usize| -> Result<&Tensor> { inputs.get(i)?.tensor() };
        let one = |y: Tensor| Ok(vec![Value::Tensor(y)]);
        match self {
            Op::GlobalPool(k) => one(pool::global_pool(rec, *k, t(0)?)?),
            Op::AvgPool(p) => one(pool::avg_pool2d(rec, p, t(0)?)?),
            Op::AdaptiveAvgPool(p) => one(pool::adaptive_avg_pool2d(rec, p, t(0)?)?),
            Op::MaxPool(p) => {
                let (v, i) = pool::max_pool2d(rec, p, t(0)?)?;
                Ok(vec![Value::Tensor(v), Value::Indices(i)])
            }
            Op::MaxUnpool(_) => {
                let p = self.unpool(inputs)?.expect("unpool");
                one(pool::max_unpool2d(
                    rec,
                    &p,
                    t(0)?,
                    inputs.get(1)?.indices()?,
                )?)
            }
            Op::ResizeLike(_) => {
                let p = self.resize(inputs)?.expect("resize");
                one(upsample::upsample(rec, &p, t(0)?)?)
            }
            Op::Upsample(p) => one(upsample::upsample(rec, p, t(0)?)?),
            Op::PadLike | Op::PadToTfSame(_) => {
                match self.pad(t(0)?.shape(), inputs)?.expect("pad") {
                    // Sizes that already match: the input itself, no pass.
                    p if p.pad == (0, 0, 0, 0) => one(t(0)?.clone()),
                    p => one(crate::ops::copy::pad2d(rec, &p, t(0)?)?),
                }
            }
            Op::Concat => one(channel::concat(rec, &inputs.all(Value::tensor)?)?),
            Op::ShufflePair => one(channel::shuffle_pair(rec, t(0)?, t(1)?)?),
            Op::Narrow(start, length) => one(channel::narrow(rec, t(0)?, *start, *length)?),
            Op::PadChannels(channels) => {
                let x = t(0)?;
                let [n, _, h, w] = x.shape();
                let y = rec.zeros("padded", [n, *channels, h, w])?;
                channel::copy_into_channels(rec, x, &y, 0)?;
                one(y)
            }
            Op::Activation(a) => one(channel::activation(rec, t(0)?, *a)?),
            Op::Softmax { log: false } => one(channel::softmax(rec, t(0)?)?),
            Op::Softmax { log: true } => one(channel::log_softmax(rec, t(0)?)?),
            Op::ScaleSpatial(gate) => one(channel::scale_spatial(rec, t(0)?, t(1)?, *gate)?),
            Op::ScaleChannels(gate) => one(channel::scale_channels(rec, t(0)?, t(1)?, *gate)?),
            Op::ScaleChannelsAdd { gate, act } => one(channel::scale_channels_add_then(
                rec,
                t(0)?,
                t(1)?,
                *gate,
                t(2)?,
                *act,
            )?),
            Op::Add => one(channel::add(rec, t(0)?, t(1)?, Activation::None)?),
            Op::AddThen(act) => one(channel::add(rec, t(0)?, t(1)?, *act)?),
            Op::Mul(act) => one(channel::mul(rec, t(0)?, t(1)?, *act)?),
            Op::Blend => one(channel::blend(rec, t(0)?, t(1)?, t(2)?)?),
            Op::Highway => one(channel::highway(rec, t(0)?, t(1)?, t(2)?)?),
            Op::BlendSpatial(gate, act) => one(channel::blend_spatial(
                rec,
                t(0)?,
                t(1)?,
                t(2)?,
                (*gate, *act),
            )?),
            Op::AddGated { gate, complement } => {
                let gated = match complement {
                    false => channel::add_gated,
                    true => channel::add_complement_gated,
                };
                one(gated(rec, t(0)?, t(1)?, t(2)?, *gate)?)
            }
            Op::ChannelDot(act) => one(channel::channel_dot(rec, t(0)?, t(1)?, *act)?),
            Op::SubMul => one(channel::sub_mul(rec, t(0)?, t(1)?, t(2)?)?),
            Op::MulAdd => one(channel::mul_add(rec, t(0)?, t(1)?, t(2)?)?),
            Op::Div(eps) => one(channel::div(rec, t(0)?, t(1)?, *eps)?),
            Op::CropLike(_) => {
                let (p, x) = (self.crop(inputs)?.expect("crop"), t(0)?);
                let s = x.shape();
                match p.offset == (0, 0) && p.size == (s[2], s[3]) {
                    // The whole map (an upsampled map that already has its skip's size):
                    // the input itself, no pass.
                    true => one(x.clone()),
                    false => one(crate::ops::copy::crop(rec, &p, x)?),
                }
            }
            Op::AddChannels(act) => one(channel::add_channels(rec, t(0)?, t(1)?, *act)?),
            Op::Tokens { start, len } => {
                let x = t(0)?;
                let p = tokens_params(*start, *len, x.shape());
                one(crate::ops::copy::crop(rec, &p, x)?)
            }
            Op::ReshapeLike => {
                let x = t(0)?;
                one(x.reshape(reshaped(x.shape(), inputs.shape(0)?)?)?)
            }
        }
    }

    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        let t = |i: usize| -> Result<ArrayView4<'_, f32>> { inputs.get(i)?.tensor() };
        let one = |y: Array4<f32>| Ok(vec![HostValue::Tensor(y)]);
        use reference::{channel as rc, pool as rp};
        match self {
            Op::GlobalPool(k) => one(rp::global_pool(*k, t(0)?)?),
            Op::AvgPool(p) => one(rp::avg_pool2d(p, t(0)?)?),
            Op::AdaptiveAvgPool(p) => one(rp::adaptive_avg_pool2d(p, t(0)?)?),
            Op::MaxPool(p) => {
                let (v, i) = rp::max_pool2d(p, t(0)?)?;
                Ok(vec![HostValue::Tensor(v), HostValue::Indices(i)])
            }
            Op::MaxUnpool(_) => {
                let p = self.unpool(inputs)?.expect("unpool");
                one(rp::max_unpool2d(&p, t(0)?, inputs.get(1)?.indices()?)?)
            }
            Op::ResizeLike(_) => {
                let p = self.resize(inputs)?.expect("resize");
                one(reference::upsample::upsample(&p, t(0)?)?)
            }
            Op::Upsample(p) => one(reference::upsample::upsample(p, t(0)?)?),
            Op::PadLike | Op::PadToTfSame(_) => {
                let x = t(0)?;
                let (n, c, h, w) = x.dim();
                let p = self.pad([n, c, h, w], inputs)?.expect("pad");
                one(reference::copy::pad2d(&p, x)?)
            }
            Op::Concat => one(rc::concat(&inputs.all(HostValue::tensor)?)?),
            Op::ShufflePair => {
                let b = t(1)?;
                let a = t(0)?;
                let a = a.slice(ndarray::s![.., ..b.dim().1, .., ..]);
                let joined = rc::concat(&[a, b])?;
                one(rc::channel_shuffle(joined.view(), 2)?)
            }
            Op::Narrow(start, length) => {
                let x = t(0)?;
                channel::narrow_shape(
                    [x.dim().0, x.dim().1, x.dim().2, x.dim().3],
                    *start,
                    *length,
                )?;
                one(x
                    .slice(ndarray::s![.., *start..start + length, .., ..])
                    .to_owned())
            }
            Op::PadChannels(channels) => {
                let x = t(0)?;
                let (n, c, h, w) = x.dim();
                pad_channels_shape([n, c, h, w], *channels)?;
                let mut y = Array4::zeros((n, *channels, h, w));
                y.slice_mut(ndarray::s![.., ..c, .., ..]).assign(&x);
                one(y)
            }
            Op::Activation(a) => one(rc::activation(t(0)?, *a)),
            Op::Softmax { log } => one(rc::softmax(t(0)?, *log)?),
            Op::ScaleSpatial(gate) => one(rc::scale_spatial(t(0)?, t(1)?, *gate)?),
            Op::ScaleChannels(gate) => one(rc::scale_channels(t(0)?, t(1)?, *gate)?),
            Op::ScaleChannelsAdd { gate, act } => one(rc::activation(
                rc::scale_channels_add(t(0)?, t(1)?, *gate, t(2)?)?.view(),
                *act,
            )),
            Op::Add => one(rc::add(t(0)?, t(1)?, Activation::None)?),
            Op::AddThen(act) => one(rc::add(t(0)?, t(1)?, *act)?),
            Op::Mul(act) => one(rc::mul(t(0)?, t(1)?, *act)?),
            Op::Blend => one(rc::blend(t(0)?, t(1)?, t(2)?)?),
            Op::Highway => one(rc::highway(t(0)?, t(1)?, t(2)?)?),
            Op::BlendSpatial(gate, act) => {
                one(rc::blend_spatial(t(0)?, t(1)?, t(2)?, (*gate, *act))?)
            }
            Op::AddGated { gate, complement } => {
                let gated = match complement {
                    false => rc::add_gated,
                    true => rc::add_complement_gated,
                };
                one(gated(t(0)?, t(1)?, t(2)?, *gate)?)
            }
            Op::ChannelDot(act) => one(rc::channel_dot(t(0)?, t(1)?, *act)?),
            Op::SubMul => one(rc::sub_mul(t(0)?, t(1)?, t(2)?)?),
            Op::MulAdd => one(rc::mul_add(t(0)?, t(1)?, t(2)?)?),
            Op::Div(eps) => one(rc::div(t(0)?, t(1)?, *eps)?),
            Op::CropLike(_) => {
                let p = self.crop(inputs)?.expect("crop");
                one(reference::copy::crop(&p, t(0)?)?)
            }
            Op::AddChannels(act) => one(rc::add_channels(t(0)?, t(1)?, *act)?),
            Op::Tokens { start, len } => {
                let x = t(0)?;
                let (n, c, h, w) = x.dim();
                let p = tokens_params(*start, *len, [n, c, h, w]);
                one(reference::copy::crop(&p, x)?)
            }
            Op::ReshapeLike => {
                let x = t(0)?;
                let (n, c, h, w) = x.dim();
                let shape = reshaped([n, c, h, w], inputs.shape(0)?)?;
                let y = x.to_owned().into_shape_with_order(shape).map_err(|e| {
                    crate::Error::InvalidParam {
                        name: "input",
                        reason: e.to_string(),
                    }
                })?;
                one(y)
            }
        }
    }
}

/// [`Op::ReshapeLike`]'s output: `x`'s values as a map of `like`'s height and width.
fn reshaped(x: [usize; 4], like: [usize; 4]) -> Result<[usize; 4]> {
    let want = [x[0], x[1], like[2], like[3]];
    crate::error::fail_if(x[2] * x[3] != like[2] * like[3], "input", || {
        format!("{x:?} does not hold the values of a {want:?} map")
    })?;
    Ok(want)
}

/// The crop of tokens `start..start + len` (`None`: to the end) along a `[N, C, 1, T]`
/// sequence of shape `x`.
fn tokens_params(start: usize, len: Option<usize>, x: [usize; 4]) -> CropParams2d {
    CropParams2d::new((0, start), (1, len.unwrap_or(x[3].saturating_sub(start))))
}

/// A [`DecoderStage`] as a node on inputs `(skip, gate logits, low)`, with its host
/// weights for the reference.
#[derive(Debug)]
pub(crate) struct DecoderStageNode {
    stage: DecoderStage,
    /// `(weight, bias)` of the 1x1 refinement and of the depthwise convolution.
    weights: [(Array4<f32>, Array1<f32>); 2],
    /// The head's parameters, weight and bias ([`DecoderStage::with_head`]).
    head: Option<(ConvTranspose2dParams, Array4<f32>, Option<Array1<f32>>)>,
    /// The projection's parameters, weight and bias ([`DecoderStage::with_projection`]).
    projection: Option<(Conv2dParams, Array4<f32>, Option<Array1<f32>>)>,
}

impl DecoderStageNode {
    /// Loads `{refine}.weight`, `{refine}.bias`, `{depthwise}.weight`, `{depthwise}.bias`.
    pub(crate) fn load(
        gpu: &Gpu,
        sd: &StateDict,
        params: DecoderStageParams,
        refine: &str,
        depthwise: &str,
    ) -> Result<Self> {
        params.validate()?;
        let get = |prefix: &str, p: Conv2dParams| -> Result<(Array4<f32>, Array1<f32>)> {
            let (w, b) = PackedWeights::load(sd, prefix, &p)?;
            Ok((w, b.expect("a layer with bias loads one")))
        };
        let weights = [
            get(refine, params.refine())?,
            get(depthwise, params.depthwise())?,
        ];
        let view = |i: usize| (weights[i].0.view(), weights[i].1.view());
        let stage = DecoderStage::new(gpu, params, view(0), view(1))?;
        Ok(DecoderStageNode {
            stage,
            weights,
            head: None,
            projection: None,
        })
    }

    /// Adds the transposed-convolution head `{prefix}.weight` (and `.bias`), run in the
    /// stage's pass.
    pub(crate) fn with_head(
        mut self,
        sd: &StateDict,
        params: ConvTranspose2dParams,
        prefix: &str,
    ) -> Result<Self> {
        let (w, b) = PackedWeights::load(sd, prefix, &params)?;
        self.stage = self
            .stage
            .with_head(params, w.view(), b.as_ref().map(|b| b.view()))?;
        self.head = Some((params, w, b));
        Ok(self)
    }

    /// Adds the 1x1 convolution `{prefix}.weight` (and `.bias`), run in the stage's pass.
    pub(crate) fn with_projection(
        mut self,
        sd: &StateDict,
        params: Conv2dParams,
        prefix: &str,
    ) -> Result<Self> {
        let (w, b) = PackedWeights::load(sd, prefix, &params)?;
        self.stage = self
            .stage
            .with_projection(params, w.view(), b.as_ref().map(|b| b.view()))?;
        self.projection = Some((params, w, b));
        Ok(self)
    }
}

impl Node for DecoderStageNode {
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        let out = self
            .stage
            .output_shape(*inputs.get(0)?, *inputs.get(1)?, *inputs.get(2)?)?;
        Ok(vec![out])
    }

    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        self.stage.cost(*inputs.get(0)?)
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        let t = |i: usize| -> Result<&Tensor> { inputs.get(i)?.tensor() };
        let y = self.stage.forward(rec, t(0)?, t(1)?, t(2)?)?;
        Ok(vec![Value::Tensor(y)])
    }

    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        let t = |i: usize| -> Result<ArrayView4<'_, f32>> { inputs.get(i)?.tensor() };
        let view = |i: usize| (self.weights[i].0.view(), self.weights[i].1.view());
        let y = reference::decoder_stage::decoder_stage(
            self.stage.params(),
            t(0)?,
            t(1)?,
            t(2)?,
            view(0),
            view(1),
        )?;
        let y = match (&self.head, &self.projection) {
            (Some((p, w, b)), _) => reference::conv_transpose::conv_transpose2d(
                p,
                y.view(),
                w.view(),
                b.as_ref().map(|b| b.view()),
            )?,
            (None, Some((p, w, b))) => {
                reference::conv::conv2d(p, y.view(), w.view(), b.as_ref().map(|b| b.view()))?
            }
            (None, None) => y,
        };
        Ok(vec![HostValue::Tensor(y)])
    }
}

/// A 1x1 layer's host weight and bias.
type HostPointwise = (Array4<f32>, Option<Array1<f32>>);

fn host_view(l: &HostPointwise) -> Pointwise<'_> {
    (l.0.view(), l.1.as_ref().map(|b| b.view()))
}

/// An [`LrAsppHead`] as a node on its input, with its host weights for the reference.
#[derive(Debug)]
pub(crate) struct LrAsppHeadNode {
    head: LrAsppHead,
    /// Branch, gate and classifier weights and biases.
    weights: (HostPointwise, HostPointwise, Option<HostPointwise>),
}

impl LrAsppHeadNode {
    /// Loads the branch `{branch}`, the gate `{gate}` and the classifier `{classifier}`
    /// (1x1 convolutions: `.weight`, and `.bias` where `with_bias`).
    pub(crate) fn load(
        gpu: &Gpu,
        sd: &StateDict,
        params: LrAsppHeadParams,
        [branch, gate, classifier]: [&str; 3],
        with_bias: bool,
    ) -> Result<Self> {
        let [pb, pg, pc] = params.layers();
        let get =
            |p: Conv2dParams, prefix: &str| PackedWeights::load(sd, prefix, &p.bias(with_bias));
        let weights = (
            get(pb, branch)?,
            get(pg, gate)?,
            params
                .out_channels
                .map(|_| get(pc, classifier))
                .transpose()?,
        );
        let head = {
            let (b, g, c) = &weights;
            LrAsppHead::new(
                gpu,
                params,
                host_view(b),
                host_view(g),
                c.as_ref().map(host_view),
            )?
        };
        Ok(LrAsppHeadNode { head, weights })
    }
}

impl Node for LrAsppHeadNode {
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        Ok(vec![self.head.params().output_shape(*inputs.get(0)?)?])
    }

    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        self.head.cost(*inputs.get(0)?)
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        let y = self.head.forward(rec, inputs.get(0)?.tensor()?)?;
        Ok(vec![Value::Tensor(y)])
    }

    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        let (b, g, c) = &self.weights;
        let y = reference::lraspp_head::lraspp_head(
            self.head.params(),
            inputs.get(0)?.tensor()?,
            host_view(b),
            host_view(g),
            c.as_ref().map(host_view),
        )?;
        Ok(vec![HostValue::Tensor(y)])
    }
}

/// An inference batch norm followed by an activation, on its own (a pre-activation
/// network's norm whose input is not a convolution's output: DenseNet's transitions).
#[derive(Debug)]
pub(crate) struct BnActNode {
    layer: crate::ops::norm::BatchNorm2d,
    host: BnState,
    act: Activation,
    /// An activation with parameters after `act`, and how many of its parameters are
    /// learned (a PReLU's slope: 1), as [`BnActNode::then`] sets them.
    then: Option<(ParamActivation, u64)>,
}

impl BnActNode {
    /// Loads `{prefix}.weight`, `.bias`, `.running_mean` and `.running_var`.
    pub(crate) fn load(
        gpu: &Gpu,
        sd: &StateDict,
        (channels, eps): (usize, f32),
        prefix: &str,
        act: Activation,
    ) -> Result<Self> {
        let host = BnState::load(sd, prefix, channels, eps)?;
        let layer = crate::ops::norm::BatchNorm2d::new(
            gpu,
            BatchNorm2dParams::new(channels).eps(eps),
            Some(host.gamma.view()),
            Some(host.beta.view()),
        )?
        .with_running_stats(host.mean.view(), host.var.view())?;
        Ok(BnActNode {
            layer,
            host,
            act,
            then: None,
        })
    }

    /// The node with `act` after its activation (a pass of its own), `learned` of whose
    /// parameters count as the model's (a one-slope `nn.PReLU`: 1).
    pub(crate) fn then(mut self, act: ParamActivation, learned: u64) -> Result<Self> {
        act.validate()?;
        self.then = Some((act, learned));
        Ok(self)
    }

    /// Records the norm and the activations on `x`.
    pub(crate) fn run(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        let y = self.layer.forward_eval_act(rec, x, self.act)?;
        match self.then {
            Some((p, _)) => crate::ops::channel::activation_with(rec, &y, p),
            None => Ok(y),
        }
    }

    /// The CPU reference: the batch norm, then the activations.
    pub(crate) fn reference_of(&self, x: ArrayView4<f32>) -> Result<Array4<f32>> {
        let y = self.host.reference(x)?;
        let y = reference::channel::activation(y.view(), self.act);
        match self.then {
            Some((p, _)) => reference::channel::activation_with(y.view(), p),
            None => Ok(y),
        }
    }
}

impl Node for BnActNode {
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        let x = *inputs.get(0)?;
        crate::ops::same_shape("input", [x[0], self.host.gamma.len(), x[2], x[3]], x)?;
        Ok(vec![x])
    }

    /// The affine parameters (the running statistics are buffers, as torchinfo counts).
    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        let x = *inputs.get(0)?;
        let then = self.then.map_or(Cost::default(), |(_, learned)| Cost {
            params: learned,
            ..elementwise_cost(x, 1)
        });
        Ok(Cost {
            params: 2 * self.host.gamma.len() as u64 + then.params,
            macs: 0,
            bytes: elementwise_cost(x, 2).bytes + then.bytes,
        })
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        let x = inputs.get(0)?.tensor()?;
        Ok(vec![Value::Tensor(self.run(rec, x)?)])
    }

    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        let y = self.reference_of(inputs.get(0)?.tensor()?)?;
        Ok(vec![HostValue::Tensor(y)])
    }
}

/// torchvision's / smp's `LayerNorm2d` (`nn.LayerNorm(C)` over each pixel's channels)
/// as a node, its affine loaded by name.
#[derive(Debug)]
pub(crate) struct LayerNorm2dNode {
    layer: crate::ops::channel::LayerNorm2d,
    eps: f32,
    gamma: Array1<f32>,
    beta: Array1<f32>,
}

impl LayerNorm2dNode {
    /// Loads `{prefix}.weight` and `{prefix}.bias` (`num_channels` each).
    pub(crate) fn load(
        gpu: &Gpu,
        sd: &StateDict,
        (num_channels, eps): (usize, f32),
        prefix: &str,
    ) -> Result<Self> {
        let get = |n: &str| sd.get1(&key(prefix, n), num_channels);
        let (gamma, beta) = (get("weight")?, get("bias")?);
        let layer = crate::ops::channel::LayerNorm2d::new(
            gpu,
            (num_channels, eps),
            Some(gamma.view()),
            Some(beta.view()),
        )?;
        Ok(LayerNorm2dNode {
            layer,
            eps,
            gamma,
            beta,
        })
    }
}

impl Node for LayerNorm2dNode {
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        Ok(vec![self.layer.output_shape(*inputs.get(0)?)?])
    }

    /// The affine parameters; normalising is not counted as MACs (as torchinfo).
    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        let x = *inputs.get(0)?;
        Ok(Cost {
            params: 2 * self.gamma.len() as u64,
            macs: 0,
            bytes: elementwise_cost(x, 2).bytes,
        })
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        let y = self.layer.forward(rec, inputs.get(0)?.tensor()?)?;
        Ok(vec![Value::Tensor(y)])
    }

    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        let x = inputs.get(0)?.tensor()?;
        let y =
            reference::channel::layer_norm_2d(x, self.eps, self.gamma.view(), self.beta.view())?;
        Ok(vec![HostValue::Tensor(y)])
    }
}

/// `nn.GroupNorm(num_groups, C)` with its affine weights `{prefix}.weight` / `.bias`, then
/// an activation (smp's `Conv3x3GNReLU`); the host weights kept for the reference.
#[derive(Debug)]
pub(crate) struct GroupNormNode {
    layer: crate::ops::norm::GroupNorm,
    params: crate::ops::norm::GroupNormParams,
    gamma: Array1<f32>,
    beta: Array1<f32>,
    act: Activation,
}

impl GroupNormNode {
    /// Loads `{prefix}.weight` and `{prefix}.bias` (`num_channels` each).
    pub(crate) fn load(
        gpu: &Gpu,
        sd: &StateDict,
        params: crate::ops::norm::GroupNormParams,
        prefix: &str,
        act: Activation,
    ) -> Result<Self> {
        params.validate()?;
        let get = |n: &str| sd.get1(&key(prefix, n), params.num_channels);
        let (gamma, beta) = (get("weight")?, get("bias")?);
        let layer =
            crate::ops::norm::GroupNorm::new(gpu, params, Some(gamma.view()), Some(beta.view()))?;
        Ok(GroupNormNode {
            layer,
            params,
            gamma,
            beta,
            act,
        })
    }
}

impl Node for GroupNormNode {
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        Ok(vec![self.params.output_shape(*inputs.get(0)?)?])
    }

    /// The affine parameters; normalising is not counted as MACs (as torchinfo).
    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        let x = *inputs.get(0)?;
        Ok(Cost {
            params: 2 * self.params.num_channels as u64,
            macs: 0,
            bytes: elementwise_cost(x, 2).bytes,
        })
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        let y = self.layer.forward(rec, inputs.get(0)?.tensor()?)?;
        let y = match self.act {
            Activation::None => y,
            act => channel::activation(rec, &y, act)?,
        };
        Ok(vec![Value::Tensor(y)])
    }

    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        let x = inputs.get(0)?.tensor()?;
        let y = reference::norm::group_norm(&self.params, x, self.gamma.view(), self.beta.view())?;
        Ok(vec![HostValue::Tensor(reference::channel::activation(
            y.view(),
            self.act,
        ))])
    }
}

/// A RepVGG / MobileOne block as trained, `act(Σ conv_i(x) + scale(x) + skip(x))`: `k`x`k`
/// convolution branches with batch norm, a 1x1 "scale" branch with batch norm (when
/// `k > 1`) and a batch-norm "skip" of the input (when the block keeps its shape). The GPU
/// runs the branches folded into one `k`x`k` convolution with bias (the 1x1 kernel at the
/// centre, the skip as a scaled identity kernel: RepVGG's re-parameterisation); the CPU
/// reference runs every branch as PyTorch does; parameters count every branch.
#[derive(Debug)]
pub(crate) struct RepConvNode {
    /// The main convolution's parameters, with the activation.
    params: Conv2dParams,
    /// Every convolution branch's parameters (no bias, no activation), weight and norm.
    branches: Vec<(Conv2dParams, Array4<f32>, BnState)>,
    /// The skip's batch norm.
    skip: Option<BnState>,
    /// The folded convolution the GPU runs.
    fused: ConvBnAct,
}

/// Where a re-parameterisable block's branches sit in its state dict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RepNames {
    /// MobileOne's: `rbr_conv.{i}`, `rbr_scale`, `rbr_skip`.
    MobileOne,
    /// timm's `RepVggBlock`: `conv_kxk` (one branch), `conv_1x1`, `identity`.
    TimmRepVgg,
}

impl RepNames {
    fn conv(self, i: usize) -> String {
        match self {
            RepNames::MobileOne => format!("rbr_conv.{i}"),
            RepNames::TimmRepVgg => "conv_kxk".to_string(),
        }
    }

    fn scale(self) -> &'static str {
        match self {
            RepNames::MobileOne => "rbr_scale",
            RepNames::TimmRepVgg => "conv_1x1",
        }
    }

    fn skip(self) -> &'static str {
        match self {
            RepNames::MobileOne => "rbr_skip",
            RepNames::TimmRepVgg => "identity",
        }
    }
}

impl RepConvNode {
    /// Loads `{prefix}.rbr_conv.{i}.conv` / `.bn` for `i < conv_branches`, `{prefix}.
    /// rbr_scale.conv` / `.bn` when the kernel is larger than 1x1, and `{prefix}.rbr_skip`
    /// when `skip` (or their `names` in timm's RepVGG, one convolution branch), all batch
    /// norms with `eps`; `params` is the main convolution's (its bias ignored, its
    /// activation after the sum).
    pub(crate) fn load(
        gpu: &Gpu,
        sd: &StateDict,
        params: Conv2dParams,
        (prefix, names): (&str, RepNames),
        (conv_branches, skip): (usize, bool),
        eps: f32,
    ) -> Result<Self> {
        fail_if(conv_branches == 0, "num_conv_branches", || {
            "must be positive, got 0".to_string()
        })?;
        fail_if(
            names == RepNames::TimmRepVgg && conv_branches != 1,
            "num_conv_branches",
            || format!("timm's RepVGG blocks have one, got {conv_branches}"),
        )?;
        let plain = Conv2dParams {
            activation: Activation::None,
            param_activation: None,
            ..params.bias(false)
        };
        let branch = |p: Conv2dParams, at: String| -> Result<_> {
            let (weight, _) = PackedWeights::load(sd, &key(&at, "conv"), &p)?;
            let bn = BnState::load(sd, &key(&at, "bn"), p.out_channels, eps)?;
            Ok((p, weight, bn))
        };
        let mut branches = (0..conv_branches)
            .map(|i| branch(plain, key(prefix, &names.conv(i))))
            .collect::<Result<Vec<_>>>()?;
        let (kh, kw) = params.kernel_size;
        if kh > 1 || kw > 1 {
            let one = Conv2dParams {
                kernel_size: (1, 1),
                padding: (0, 0),
                dilation: (1, 1),
                ..plain
            };
            branches.push(branch(one, key(prefix, names.scale()))?);
        }
        let skip = match skip {
            true => {
                fail_if(
                    params.in_channels != params.out_channels || params.stride != (1, 1),
                    "skip",
                    || {
                        format!(
                            "needs as many input as output channels and stride 1, got {} -> \
                             {}, stride {:?}",
                            params.in_channels, params.out_channels, params.stride
                        )
                    },
                )?;
                Some(BnState::load(
                    sd,
                    &key(prefix, names.skip()),
                    params.in_channels,
                    eps,
                )?)
            }
            false => None,
        };
        let (weight, bias) = Self::fold(&params, &branches, skip.as_ref())?;
        let mut folded = StateDict::new();
        folded.insert("fused.weight", weight.into_dyn());
        folded.insert("fused.bias", bias.into_dyn());
        let fused = ConvBnAct::load(gpu, &folded, params.bias(true), "fused", None, 0.0)?;
        Ok(RepConvNode {
            params,
            branches,
            skip,
            fused,
        })
    }

    /// The one `k`x`k` kernel and bias equal to the sum of the branches.
    fn fold(
        params: &Conv2dParams,
        branches: &[(Conv2dParams, Array4<f32>, BnState)],
        skip: Option<&BnState>,
    ) -> Result<(Array4<f32>, Array1<f32>)> {
        let (kh, kw) = params.kernel_size;
        let in_per_group = params.in_channels / params.groups;
        let mut weight = Array4::<f32>::zeros((params.out_channels, in_per_group, kh, kw));
        let mut bias = Array1::<f32>::zeros(params.out_channels);
        for (p, w, bn) in branches {
            let (w, b) = fold_batch_norm(
                w.view(),
                None,
                bn.gamma.view(),
                bn.beta.view(),
                bn.mean.view(),
                bn.var.view(),
                bn.eps,
            )?;
            // A smaller kernel sits at the centre (its padding is the larger one's less
            // the difference).
            let (oy, ox) = ((kh - p.kernel_size.0) / 2, (kw - p.kernel_size.1) / 2);
            let mut window = weight.slice_mut(ndarray::s![
                ..,
                ..,
                oy..oy + p.kernel_size.0,
                ox..ox + p.kernel_size.1
            ]);
            window += &w;
            bias += &b;
        }
        if let Some(bn) = skip {
            // Each sum in f64, rounded once.
            for o in 0..params.out_channels {
                let (s, shift) = batch_norm_scale_shift(bn.channel(o), bn.eps, 0.0);
                let centre = &mut weight[[o, o % in_per_group, kh / 2, kw / 2]];
                *centre = (f64::from(*centre) + s) as f32;
                bias[o] = (f64::from(bias[o]) + shift) as f32;
            }
        }
        Ok((weight, bias))
    }
}

impl Node for RepConvNode {
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        Ok(vec![self.params.output_shape(*inputs.get(0)?)?])
    }

    /// Every branch's parameters (convolution and norm), as PyTorch counts the trained
    /// block; the MACs of the folded convolution, the one that runs.
    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        let mut cost = self.fused.params().cost(*inputs.get(0)?)?;
        cost.params = self
            .branches
            .iter()
            .map(|(_, w, bn)| (w.len() + 2 * bn.gamma.len()) as u64)
            .sum::<u64>()
            + self.skip.as_ref().map_or(0, |bn| 2 * bn.gamma.len() as u64);
        Ok(cost)
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        Node::forward(&self.fused, rec, inputs)
    }

    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        let x = inputs.get(0)?.tensor()?;
        let mut sum = match &self.skip {
            Some(bn) => bn.reference(x)?,
            None => {
                let (n, c, h, w) = x.dim();
                Array4::zeros(self.params.output_shape([n, c, h, w])?)
            }
        };
        for (p, w, bn) in &self.branches {
            let y = reference::conv::conv2d(p, x, w.view(), None)?;
            sum += &bn.reference(y.view())?;
        }
        let y = reference::channel::activation(sum.view(), self.params.activation);
        Ok(vec![HostValue::Tensor(y)])
    }
}

/// Multi-head scaled dot-product attention of inputs `(q, k, v)` over their pixels
/// ([`scaled_dot_product_attention`](crate::ops::sdpa::scaled_dot_product_attention)):
/// the Mix Transformer's efficient self-attention after its projections.
#[derive(Debug)]
pub(crate) struct SdpaNode(pub(crate) crate::ops::sdpa::SdpaParams);

impl SdpaNode {
    fn shapes3(inputs: &Inputs<'_, [usize; 4]>) -> Result<[[usize; 4]; 3]> {
        Ok([*inputs.get(0)?, *inputs.get(1)?, *inputs.get(2)?])
    }
}

impl Node for SdpaNode {
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        let [q, k, v] = Self::shapes3(inputs)?;
        Ok(vec![self.0.output_shape(q, k, v)?])
    }

    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        let [q, k, v] = Self::shapes3(inputs)?;
        self.0.cost(q, k, v)
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        let (q, k, v) = (
            inputs.get(0)?.tensor()?,
            inputs.get(1)?.tensor()?,
            inputs.get(2)?.tensor()?,
        );
        let y = crate::ops::sdpa::scaled_dot_product_attention(rec, q, k, v, self.0)?;
        Ok(vec![Value::Tensor(y)])
    }

    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        let (q, k, v) = (
            inputs.get(0)?.tensor()?,
            inputs.get(1)?.tensor()?,
            inputs.get(2)?.tensor()?,
        );
        let y = reference::sdpa::scaled_dot_product_attention(q, k, v, self.0)?;
        Ok(vec![HostValue::Tensor(y)])
    }
}

/// OCR's spatial gather of inputs `(probs, feats)`
/// ([`spatial_gather`](crate::ops::sdpa::spatial_gather)): the classes' region
/// representations, `[N, C, K, 1]`.
#[derive(Debug)]
pub(crate) struct SpatialGatherNode(pub(crate) crate::ops::sdpa::SpatialGatherParams);

impl Node for SpatialGatherNode {
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        Ok(vec![self
            .0
            .output_shape(*inputs.get(0)?, *inputs.get(1)?)?])
    }

    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        self.0.cost(*inputs.get(0)?, *inputs.get(1)?)
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        let (probs, feats) = (inputs.get(0)?.tensor()?, inputs.get(1)?.tensor()?);
        let y = crate::ops::sdpa::spatial_gather(rec, probs, feats, self.0)?;
        Ok(vec![Value::Tensor(y)])
    }

    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        let (probs, feats) = (inputs.get(0)?.tensor()?, inputs.get(1)?.tensor()?);
        let y = reference::sdpa::spatial_gather(probs, feats, self.0)?;
        Ok(vec![HostValue::Tensor(y)])
    }
}
