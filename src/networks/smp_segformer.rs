//! segmentation_models_pytorch's `Segformer` (`smp.Segformer(encoder_name, encoder_depth,
//! decoder_segmentation_channels, in_channels, classes, activation, upsampling)`) on the
//! encoders of [`SmpEncoder`]: SegFormer's all-MLP decoder. Each encoder feature from
//! stride 2 on goes through a per-pixel linear layer to `decoder_segmentation_channels`
//! (`decoder.mlp_stage.{i}.linear`, the deepest feature first) and a bilinear resize
//! (`align_corners=False`) to a quarter of the input's size; the resized maps are
//! concatenated, deepest first, and fused by a 1x1 convolution with batch norm and ReLU
//! (`decoder.fuse_stage.{0,1}`); a 1x1 head to the classes (`segmentation_head.0`), a
//! bilinear resize (`align_corners=True`) by `upsampling`, the activation. On the GPU the
//! fusion is folded into the per-feature layers, which then run at each feature's own
//! resolution (see `AllMlpDecoder`): the same function, a fraction of the MACs.
//!
//! On smp's Mix Transformer encoders (`mit_b0` .. `mit_b5`, the ones SegFormer was
//! published with) this is SegFormer itself; their empty stride-2 feature is dropped, as
//! smp does. With `aux_params`, smp's classification head gives a second output.

use ndarray::{Array1, Array2, Array4};

use crate::blocks::{Architecture, Graph, HostValue, Inputs, Model, Node, Value, ValueId};
use crate::error::{positive, Error, Result};
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::ops::channel;
use crate::ops::conv::{Conv2d, Conv2dParams, ResidualJoin};
use crate::ops::norm::BatchNorm2dParams;
use crate::ops::upsample::{upsample, UpsampleParams};
use crate::ops::{Activation, Cost};
use crate::reference;
use crate::weights::{key, StateDict};

use super::smp_unet::{check_divisible, check_encoder_depth, segmentation_head, set_smp_outputs};
use super::{HeadActivation, SmpAuxParams, SmpEncoder};

/// The configuration of an smp `Segformer`.
#[derive(Clone, Debug, PartialEq)]
pub struct SmpSegformerConfig {
    /// The encoder (`encoder_name`; [`SmpSegformerConfig::new`] takes smp's names).
    pub encoder: SmpEncoder,
    /// Stages of the encoder used, 3 to 5 (`encoder_depth`, 5).
    pub encoder_depth: usize,
    /// Input channels (`in_channels`, 3).
    pub in_channels: usize,
    /// Classes (`classes`, 1).
    pub classes: usize,
    /// Channels of the decoder's linear layers and fusion (`decoder_segmentation_channels`,
    /// 256).
    pub decoder_segmentation_channels: usize,
    /// The head's bilinear resize factor (`upsampling`, 4; 1 for none).
    pub upsampling: usize,
    /// The head's activation, after its resize (`activation`, none by default).
    pub activation: HeadActivation,
    /// smp's classification head (`aux_params`; `None`, the default, for none): a second
    /// output, the labels.
    pub aux_params: Option<SmpAuxParams>,
}

impl SmpSegformerConfig {
    /// `smp.Segformer(encoder_name, in_channels=in_channels, classes=classes)`; the encoder
    /// names are [`SmpEncoder::from_name`]'s.
    pub fn new(encoder_name: &str, in_channels: usize, classes: usize) -> Result<Self> {
        Ok(SmpSegformerConfig {
            encoder: SmpEncoder::from_name(encoder_name)?,
            encoder_depth: 5,
            in_channels,
            classes,
            decoder_segmentation_channels: 256,
            upsampling: 4,
            activation: HeadActivation::Identity,
            aux_params: None,
        })
    }
}

crate::ops::setters!(SmpSegformerConfig {
    /// Sets `aux_params` (a classification head: a second output).
    aux_params: Option<SmpAuxParams>,
    /// Sets `encoder_depth`.
    encoder_depth: usize,
    /// Sets `decoder_segmentation_channels`.
    decoder_segmentation_channels: usize,
    /// Sets the head's `upsampling`.
    upsampling: usize,
    /// Sets the head's activation.
    activation: HeadActivation,
});

/// An smp `Segformer` for inference: input `[N, in_channels, H, W]` with H and W
/// divisible by `2^encoder_depth`, output `[N, classes, H, W]` with the default
/// `upsampling`.
pub type SmpSegformer = Model<SmpSegformerConfig>;

impl Architecture for SmpSegformerConfig {
    /// Checks the configuration on its own: depth 3 to 5, the encoder's checks.
    fn validate(&self) -> Result<()> {
        positive(&[
            ("in_channels", self.in_channels),
            ("classes", self.classes),
            (
                "decoder_segmentation_channels",
                self.decoder_segmentation_channels,
            ),
            ("upsampling", self.upsampling),
        ])?;
        check_encoder_depth(&self.encoder, self.encoder_depth, 3..=5)
    }

    /// Loads the encoder, `decoder.mlp_stage.{i}.linear`, `decoder.fuse_stage` and
    /// `segmentation_head.0` under `prefix`.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let at = |n: &str| key(prefix, n);
        let depth = self.encoder_depth;
        let sc = self.decoder_segmentation_channels;
        let (mut g, features) = self
            .encoder
            .graph((gpu, sd, prefix), (self.in_channels, depth, 32))?;
        let channels = self.encoder.channels(self.in_channels);
        // A quarter of the input's size is the stride-4 feature's size: the input is
        // divisible by 2^depth >= 8.
        let quarter = features[2];
        // smp drops an empty stride-2 feature (the Mix Transformer's) from the decoder;
        // the rest, deepest first.
        let levels: Vec<usize> = (1..=depth).rev().filter(|&l| channels[l] > 0).collect();
        let level_channels: Vec<usize> = levels.iter().map(|&l| channels[l]).collect();
        let decoder = AllMlpDecoder::load(gpu, sd, &level_channels, sc, &at("decoder"))?;
        let inputs: Vec<ValueId> = levels.iter().map(|&l| features[l]).collect();
        let y = g.add_sized(at("decoder"), decoder, &inputs, &[quarter]);
        let shape = (sc, self.classes, 1);
        let head = (self.upsampling, self.activation);
        let y = segmentation_head(&mut g, y, shape, head, (gpu, sd, prefix))?;
        let last = (features[depth], channels[depth]);
        set_smp_outputs(&mut g, y, self.aux_params, last, (gpu, sd, prefix))?;
        Ok(g)
    }

    /// Checks an input shape: `in_channels` channels, height and width divisible by
    /// `2^encoder_depth` (smp's `check_input_shape`).
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        self.encoder.check_input(input)?;
        check_divisible(input, self.in_channels, 1 << self.encoder_depth)
    }
}

/// smp's Segformer decoder after the encoder (transformers' `SegformerDecodeHead` up to
/// its classifier too, loaded by [`AllMlpDecoder::load_named`]): `relu(bn(fuse(cat(resize(linear_i(f_i))))))`
/// over the features `f_i` (deepest first, the value inputs), to the size of the shape
/// input (a quarter of the model's input).
///
/// On the GPU the fusion is folded into the per-feature layers: bilinear resizing is
/// linear and keeps constants (its weights sum to 1), so `fuse(cat(resize(L_i f_i + l_i)))`
/// is `sum_i resize(M_i f_i + m_i)` with `M_i = W_i L_i` and `m_i = W_i l_i` (`W_i` the
/// fusion's columns for feature `i`), and the batch norm's scale and shift fold in too.
/// Each feature then goes through one 1x1 convolution at its own resolution, the deeper
/// ones are resized and summed, and the stride-4 one adds the sum and the ReLU in its
/// store: the fusion's `n * C x C` convolution at a quarter of the input's size (most of
/// SegFormer-B0's MACs) is gone. The CPU reference runs the layers as smp does.
#[derive(Debug)]
pub(super) struct AllMlpDecoder {
    /// Each feature's `Linear` (`[C, C_i]`, `[C]`), deepest first.
    linears: Vec<(Array2<f32>, Array1<f32>)>,
    /// The fusion convolution's weight, `[C, n * C, 1, 1]` (no bias: a batch norm follows).
    fuse: Array4<f32>,
    /// The batch norm: weight, bias, running mean and variance.
    bn: [Array1<f32>; 4],
    /// The folded 1x1 convolutions, deepest first; the last one carries every shift.
    convs: Vec<Conv2d>,
}

/// The fusion's batch norm epsilon (smp's `Conv2dReLU`: `nn.BatchNorm2d` defaults).
const FUSE_BN_EPS: f64 = 1e-5;

impl AllMlpDecoder {
    /// Loads `{prefix}.mlp_stage.{i}.linear` (for the features of `channels`, deepest
    /// first) and `{prefix}.fuse_stage.{0,1}`, and folds them for the GPU.
    fn load(
        gpu: &Gpu,
        sd: &StateDict,
        channels: &[usize],
        sc: usize,
        prefix: &str,
    ) -> Result<Self> {
        let at = |n: &str| key(prefix, n);
        let linears: Vec<String> = (0..channels.len())
            .map(|i| at(&format!("mlp_stage.{i}.linear")))
            .collect();
        let fuse = (at("fuse_stage.0"), at("fuse_stage.1"));
        Self::load_named(gpu, sd, (channels, sc), &linears, (&fuse.0, &fuse.1))
    }

    /// Loads the linear layers `linears` (for the features of `channels`, deepest first,
    /// to `sc` channels), the fusion convolution `fuse` and its batch norm `bn`, and folds
    /// them for the GPU.
    pub(super) fn load_named(
        gpu: &Gpu,
        sd: &StateDict,
        (channels, sc): (&[usize], usize),
        linear_names: &[String],
        (fuse_name, bn_name): (&str, &str),
    ) -> Result<Self> {
        let n = channels.len();
        crate::ops::same_dims("features", &[n], &[linear_names.len()])?;
        let mut linears = Vec::with_capacity(n);
        for (name, &c) in linear_names.iter().zip(channels) {
            let w = sd.get(&key(name, "weight"), &[sc, c])?;
            let w = w
                .into_dimensionality::<ndarray::Ix2>()
                .map_err(|e| Error::Weights(format!("{name}.weight: {e}")))?;
            linears.push((w, sd.get1(&key(name, "bias"), sc)?));
        }
        let fuse = sd.get4(&key(fuse_name, "weight"), [sc, n * sc, 1, 1])?;
        let bn_at = |n: &str| sd.get1(&key(bn_name, n), sc);
        let bn = [
            bn_at("weight")?,
            bn_at("bias")?,
            bn_at("running_mean")?,
            bn_at("running_var")?,
        ];
        // The batch norm as a per-channel scale and shift.
        let scale: Vec<f64> = (0..sc)
            .map(|o| f64::from(bn[0][o]) / (f64::from(bn[3][o]) + FUSE_BN_EPS).sqrt())
            .collect();
        let shift: Vec<f64> = (0..sc)
            .map(|o| f64::from(bn[1][o]) - scale[o] * f64::from(bn[2][o]))
            .collect();
        let mut convs = Vec::with_capacity(n);
        for (i, (l, b)) in linears.iter().enumerate() {
            let c = channels[i];
            let mut m = Array4::<f32>::zeros([sc, c, 1, 1]);
            let mut bias = Array1::<f32>::zeros(sc);
            for o in 0..sc {
                let w = |k: usize| f64::from(fuse[[o, i * sc + k, 0, 0]]);
                for ci in 0..c {
                    let dot: f64 = (0..sc).map(|k| w(k) * f64::from(l[[k, ci]])).sum();
                    m[[o, ci, 0, 0]] = (scale[o] * dot) as f32;
                }
                let dot: f64 = (0..sc).map(|k| w(k) * f64::from(b[k])).sum();
                let last = if i + 1 == n { shift[o] } else { 0.0 };
                bias[o] = (scale[o] * dot + last) as f32;
            }
            let p = Conv2dParams::new(c, sc, 1);
            convs.push(Conv2d::new(gpu, p, m.view(), Some(bias.view()))?);
        }
        Ok(AllMlpDecoder {
            linears,
            fuse,
            bn,
            convs,
        })
    }

    /// The output shape for features of `shapes` (deepest first) and a target of `target`.
    fn output_shape(&self, shapes: &[[usize; 4]], target: [usize; 4]) -> Result<[usize; 4]> {
        crate::ops::same_dims("features", &[self.linears.len()], &[shapes.len()])?;
        for (conv, &s) in self.convs.iter().zip(shapes) {
            conv.params().output_shape(s)?;
            crate::ops::same_dims("features", &[shapes[0][0]], &[s[0]])?;
        }
        Ok([shapes[0][0], self.fuse.shape()[0], target[2], target[3]])
    }

    fn resize_to(target: [usize; 4]) -> UpsampleParams {
        UpsampleParams::bilinear(false).size((target[2], target[3]))
    }
}

impl Node for AllMlpDecoder {
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        let shapes: Vec<[usize; 4]> = inputs.all(|s| Ok(*s))?;
        Ok(vec![self.output_shape(&shapes, inputs.shape(0)?)?])
    }

    /// smp's parameters (the linear layers, the fusion and its batch norm's affine); the
    /// MACs of what runs (the folded per-feature convolutions).
    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        let shapes: Vec<[usize; 4]> = inputs.all(|s| Ok(*s))?;
        let out = self.output_shape(&shapes, inputs.shape(0)?)?;
        let params = self
            .linears
            .iter()
            .map(|(w, b)| w.len() + b.len())
            .sum::<usize>()
            + self.fuse.len()
            + 2 * self.bn[0].len();
        let macs: usize = shapes
            .iter()
            .map(|s| s[0] * s[1] * s[2] * s[3] * out[1])
            .sum();
        let elems: usize = shapes
            .iter()
            .map(|s| s.iter().product::<usize>())
            .sum::<usize>()
            + out.iter().product::<usize>();
        Ok(Cost {
            params: params as u64,
            macs: macs as u64,
            bytes: 4 * (elems + params) as u64,
        })
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        let features = inputs.all(|v| v.tensor())?;
        let shapes: Vec<[usize; 4]> = features.iter().map(|t| t.shape()).collect();
        let target = inputs.shape(0)?;
        let out = self.output_shape(&shapes, target)?;
        let resize = Self::resize_to(target);
        let at_target = |s: [usize; 4]| (s[2], s[3]) == (out[2], out[3]);
        let (last, deeper) = features.split_last().expect("a feature at least");
        let mut sum: Option<Tensor> = None;
        for (conv, x) in self.convs.iter().zip(deeper) {
            let mut y = conv.forward(rec, x)?;
            if !at_target(y.shape()) {
                y = upsample(rec, &resize, &y)?;
            }
            sum = Some(match sum {
                None => y,
                Some(s) => channel::add(rec, &s, &y, Activation::None)?,
            });
        }
        let conv = self.convs.last().expect("a convolution a feature");
        // Segformer takes two levels at least (`encoder_depth` >= 3).
        let Some(sum) = sum else {
            return Err(Error::InvalidParam {
                name: "encoder_depth",
                reason: format!(
                    "Segformer's decoder needs 2 features or more, got {}",
                    features.len()
                ),
            });
        };
        let y = if at_target(last.shape()) {
            conv.forward_residual(rec, last, &sum, ResidualJoin::AddThen(Activation::Relu))?
        } else {
            let y = conv.forward(rec, last)?;
            let y = upsample(rec, &resize, &y)?;
            channel::add(rec, &sum, &y, Activation::Relu)?
        };
        Ok(vec![Value::Tensor(y)])
    }

    /// smp's order: each linear layer, the resize, the concatenation, the fusion, the
    /// batch norm, the ReLU.
    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        let features = inputs.all(|v| v.tensor())?;
        let target = inputs.shape(0)?;
        let resize = Self::resize_to(target);
        let mut resized = Vec::with_capacity(features.len());
        for ((w, b), x) in self.linears.iter().zip(&features) {
            let (sc, c) = w.dim();
            let w4 = w
                .view()
                .into_shape_with_order((sc, c, 1, 1))
                .expect("same length");
            let p = Conv2dParams::new(c, sc, 1);
            let y = reference::conv::conv2d(&p, x.view(), w4, Some(b.view()))?;
            resized.push(reference::upsample::upsample(&resize, y.view())?);
        }
        let views: Vec<_> = resized.iter().map(|r| r.view()).collect();
        let joined = reference::channel::concat(&views)?;
        let sc = self.fuse.shape()[0];
        let p = Conv2dParams::new(joined.shape()[1], sc, 1).bias(false);
        let fused = reference::conv::conv2d(&p, joined.view(), self.fuse.view(), None)?;
        let bn = BatchNorm2dParams::new(sc);
        let [g, b, m, v] = &self.bn;
        let y = reference::norm::batch_norm_eval(
            &bn,
            fused.view(),
            g.view(),
            b.view(),
            m.view(),
            v.view(),
        )?;
        Ok(vec![HostValue::Tensor(reference::channel::activation(
            y.view(),
            Activation::Relu,
        ))])
    }
}
