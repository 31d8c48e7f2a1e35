//! Segmentation-specific blocks: DeepLabV3's ASPP and DenseNet's dense block, loading
//! torchvision's state-dict names.

use ndarray::{Array4, ArrayView4};

use super::{key, BnState, ConvBnAct};
use crate::error::{invalid, Result};
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::ops::channel::{concat, DenseBuffer};
use crate::ops::conv::Conv2dParams;
use crate::ops::norm::{BatchNorm2d, BatchNorm2dParams};
use crate::ops::pool::GlobalPool;
use crate::ops::upsample::UpsampleParams;
use crate::ops::Activation;
use crate::reference;
use crate::weights::StateDict;

/// torchvision's `segmentation.deeplabv3.ASPP(in_channels, atrous_rates, out_channels)`:
/// a 1x1 branch, one dilated 3x3 branch per rate, an image-pooling branch (global average
/// pool, 1x1, bilinear resize back), concatenated and projected by a 1x1; every
/// convolution followed by batch norm and ReLU (the projection's dropout is an identity
/// in inference).
#[derive(Debug)]
pub struct Aspp {
    branches: Vec<ConvBnAct>,
    pooling: ConvBnAct,
    project: ConvBnAct,
}

impl Aspp {
    /// Loads `convs.{i}` and `project` under `prefix`.
    pub fn load(
        gpu: &Gpu,
        in_channels: usize,
        atrous_rates: &[usize],
        out_channels: usize,
        sd: &StateDict,
        prefix: &str,
    ) -> Result<Self> {
        if atrous_rates.is_empty() || atrous_rates.contains(&0) {
            return Err(invalid(
                "atrous_rates",
                format!("need one or more positive rates, got {atrous_rates:?}"),
            ));
        }
        let eps = 1e-5;
        let relu = Activation::Relu;
        let mut branches = vec![ConvBnAct::load(
            gpu,
            sd,
            Conv2dParams::new(in_channels, out_channels, 1)
                .bias(false)
                .activation(relu),
            &key(prefix, "convs.0.0"),
            Some(&key(prefix, "convs.0.1")),
            eps,
        )?];
        for (i, &rate) in atrous_rates.iter().enumerate() {
            let p = Conv2dParams::new(in_channels, out_channels, 3)
                .padding(rate)
                .dilation(rate)
                .bias(false)
                .activation(relu);
            branches.push(ConvBnAct::load(
                gpu,
                sd,
                p,
                &key(prefix, &format!("convs.{}.0", i + 1)),
                Some(&key(prefix, &format!("convs.{}.1", i + 1))),
                eps,
            )?);
        }
        let n = atrous_rates.len() + 1;
        let pooling = ConvBnAct::load(
            gpu,
            sd,
            Conv2dParams::new(in_channels, out_channels, 1)
                .bias(false)
                .activation(relu),
            &key(prefix, &format!("convs.{n}.1")),
            Some(&key(prefix, &format!("convs.{n}.2"))),
            eps,
        )?;
        let project = ConvBnAct::load(
            gpu,
            sd,
            Conv2dParams::new((n + 1) * out_channels, out_channels, 1)
                .bias(false)
                .activation(relu),
            &key(prefix, "project.0"),
            Some(&key(prefix, "project.1")),
            eps,
        )?;
        Ok(Aspp {
            branches,
            pooling,
            project,
        })
    }

    /// Records the block.
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        let s = x.shape();
        let mut outs = Vec::with_capacity(self.branches.len() + 1);
        for b in &self.branches {
            outs.push(b.forward(rec, x)?);
        }
        let pooled = GlobalPool::Avg.forward(rec, x)?;
        let p = self.pooling.forward(rec, &pooled)?;
        outs.push(
            UpsampleParams::bilinear(false)
                .size((s[2], s[3]))
                .forward(rec, &p)?,
        );
        let refs: Vec<&Tensor> = outs.iter().collect();
        let joined = concat(rec, &refs)?;
        self.project.forward(rec, &joined)
    }

    /// CPU reference forward.
    pub fn reference(&self, x: ArrayView4<f32>) -> Result<Array4<f32>> {
        let s = x.shape();
        let mut outs = Vec::new();
        for b in &self.branches {
            outs.push(b.reference(x)?);
        }
        let pooled = reference::pool::global_pool(GlobalPool::Avg, x)?;
        let p = self.pooling.reference(pooled.view())?;
        let up = UpsampleParams::bilinear(false).size((s[2], s[3]));
        outs.push(reference::upsample::upsample(&up, p.view())?);
        let views: Vec<ArrayView4<f32>> = outs.iter().map(|o| o.view()).collect();
        let joined = reference::channel::concat(&views)?;
        self.project.reference(joined.view())
    }
}

/// One DenseNet layer: BN + ReLU (pre-activation), 1x1 to `bn_size * growth_rate`, BN +
/// ReLU (folded into the 1x1), 3x3 to `growth_rate`.
#[derive(Debug)]
struct DenseLayer {
    norm1: BatchNorm2d,
    norm1_host: BnState,
    conv1: ConvBnAct,
    conv2: ConvBnAct,
}

/// torchvision's `densenet._DenseBlock(num_layers, num_input_features, bn_size,
/// growth_rate)`: each layer reads the concatenation of the input and every earlier
/// layer's output and adds `growth_rate` channels. On the GPU the features live in one
/// preallocated [`DenseBuffer`]: each layer's output is copied once.
#[derive(Debug)]
pub struct DenseBlock {
    layers: Vec<DenseLayer>,
    growth_rate: usize,
    input_features: usize,
}

impl DenseBlock {
    /// Loads `denselayer{i}.norm1 / conv1 / norm2 / conv2` under `prefix`.
    pub fn load(
        gpu: &Gpu,
        num_layers: usize,
        num_input_features: usize,
        bn_size: usize,
        growth_rate: usize,
        sd: &StateDict,
        prefix: &str,
    ) -> Result<Self> {
        if num_layers == 0 || growth_rate == 0 || bn_size == 0 || num_input_features == 0 {
            return Err(invalid(
                "num_layers",
                "layers, input features, bn_size and growth_rate must all be positive",
            ));
        }
        let eps = 1e-5;
        let mut layers = Vec::new();
        for i in 0..num_layers {
            let c = num_input_features + i * growth_rate;
            let name = |n: &str| key(prefix, &format!("denselayer{}.{n}", i + 1));
            let norm1_host = BnState::load(sd, &name("norm1"), c, eps)?;
            let norm1 = BatchNorm2d::with_state(
                gpu,
                BatchNorm2dParams::new(c).eps(eps),
                Some(norm1_host.gamma.view()),
                Some(norm1_host.beta.view()),
                norm1_host.mean.view(),
                norm1_host.var.view(),
            )?;
            let mid = bn_size * growth_rate;
            let p1 = Conv2dParams::new(c, mid, 1)
                .bias(false)
                .activation(Activation::Relu);
            let p2 = Conv2dParams::new(mid, growth_rate, 3)
                .padding(1)
                .bias(false);
            layers.push(DenseLayer {
                norm1,
                norm1_host,
                conv1: ConvBnAct::load(gpu, sd, p1, &name("conv1"), Some(&name("norm2")), eps)?,
                conv2: ConvBnAct::load(gpu, sd, p2, &name("conv2"), None, eps)?,
            });
        }
        Ok(DenseBlock {
            layers,
            growth_rate,
            input_features: num_input_features,
        })
    }

    /// Output channels: input features plus `num_layers * growth_rate`.
    pub fn out_channels(&self) -> usize {
        self.input_features + self.layers.len() * self.growth_rate
    }

    /// Records the block.
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        let mut dense = DenseBuffer::new(rec, x, self.out_channels())?;
        for l in &self.layers {
            let features = dense.features(rec)?;
            let a = l.norm1.forward_eval_act(rec, &features, Activation::Relu)?;
            let b = l.conv1.forward(rec, &a)?;
            let new = l.conv2.forward(rec, &b)?;
            dense.append(rec, &new)?;
        }
        dense.features(rec)
    }

    /// CPU reference forward.
    pub fn reference(&self, x: ArrayView4<f32>) -> Result<Array4<f32>> {
        let mut features = x.to_owned();
        for l in &self.layers {
            let h = &l.norm1_host;
            let p = BatchNorm2dParams::new(h.gamma.len()).eps(h.eps);
            let a = reference::norm::batch_norm_eval(
                &p,
                features.view(),
                h.gamma.view(),
                h.beta.view(),
                h.mean.view(),
                h.var.view(),
            )?;
            let a = reference::channel::activation(a.view(), Activation::Relu);
            let b = l.conv1.reference(a.view())?;
            let new = l.conv2.reference(b.view())?;
            features = reference::channel::concat(&[features.view(), new.view()])?;
        }
        Ok(features)
    }
}

/// torchvision's `segmentation.fcn.FCNHead(in_channels, channels)`: 3x3 to
/// `in_channels / 4` with batch norm and ReLU, (dropout: identity in inference), 1x1
/// classifier with bias. Names `0`, `1`, `4`.
#[derive(Debug)]
pub struct FcnHead {
    conv: ConvBnAct,
    classifier: ConvBnAct,
}

impl FcnHead {
    /// Loads `{prefix}.0`, `{prefix}.1` (batch norm) and `{prefix}.4`.
    pub fn load(
        gpu: &Gpu,
        in_channels: usize,
        channels: usize,
        sd: &StateDict,
        prefix: &str,
    ) -> Result<Self> {
        let inter = in_channels / 4;
        if inter == 0 || channels == 0 {
            return Err(invalid(
                "in_channels",
                format!("need at least 4 input channels and one class, got {in_channels} and {channels}"),
            ));
        }
        let p0 = Conv2dParams::new(in_channels, inter, 3)
            .padding(1)
            .bias(false)
            .activation(Activation::Relu);
        let p4 = Conv2dParams::new(inter, channels, 1);
        Ok(FcnHead {
            conv: ConvBnAct::load(
                gpu,
                sd,
                p0,
                &key(prefix, "0"),
                Some(&key(prefix, "1")),
                1e-5,
            )?,
            classifier: ConvBnAct::load(gpu, sd, p4, &key(prefix, "4"), None, 1e-5)?,
        })
    }

    /// Records the head (class logits at the input's resolution).
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        let h = self.conv.forward(rec, x)?;
        self.classifier.forward(rec, &h)
    }

    /// CPU reference forward.
    pub fn reference(&self, x: ArrayView4<f32>) -> Result<Array4<f32>> {
        self.classifier.reference(self.conv.reference(x)?.view())
    }
}
