//! DenseNet's dense block (torchvision's `densenet._DenseBlock`).

use super::{
    Architecture, BnActNode, ConvBnAct, Graph, HostValue, Inputs, Model, Node, SummaryRow, Value,
};
use crate::error::{positive, Result};
use crate::gpu::{Gpu, Recorder};
use crate::ops::channel::DenseBuffer;
use crate::ops::conv::Conv2dParams;
use crate::ops::{Activation, Cost};
use crate::reference;
use crate::weights::{key, StateDict};

/// torchvision's `densenet._DenseBlock(num_layers, num_input_features, bn_size,
/// growth_rate)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DenseBlockConfig {
    /// Layers.
    pub num_layers: usize,
    /// Input channels.
    pub num_input_features: usize,
    /// Bottleneck width factor: the 1x1 has `bn_size * growth_rate` channels.
    pub bn_size: usize,
    /// Channels each layer adds.
    pub growth_rate: usize,
}

impl DenseBlockConfig {
    /// Output channels: input features plus `num_layers * growth_rate`.
    pub fn out_channels(&self) -> usize {
        self.num_input_features + self.num_layers * self.growth_rate
    }
}

/// One DenseNet layer: BN + ReLU (pre-activation), 1x1 to `bn_size * growth_rate`, BN +
/// ReLU (folded into the 1x1), 3x3 to `growth_rate`.
#[derive(Debug)]
struct DenseLayer {
    norm1: BnActNode,
    conv1: ConvBnAct,
    conv2: ConvBnAct,
}

/// The whole block as one node: each layer reads the concatenation of the input and every
/// earlier layer's output and adds `growth_rate` channels. On the GPU the features live in
/// one preallocated [`DenseBuffer`], so each layer's output is copied once (a graph of
/// concatenations would copy every feature at every layer).
#[derive(Debug)]
struct DenseNode {
    cfg: DenseBlockConfig,
    layers: Vec<DenseLayer>,
}

impl DenseNode {
    fn layer_input(&self, input: [usize; 4], i: usize) -> [usize; 4] {
        [
            input[0],
            self.cfg.num_input_features + i * self.cfg.growth_rate,
            input[2],
            input[3],
        ]
    }
}

impl Node for DenseNode {
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        let x = *inputs.get(0)?;
        crate::ops::same_shape("input", self.layer_input(x, 0), x)?;
        Ok(vec![self.layer_input(x, self.layers.len())])
    }

    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        let rows = self.rows("", inputs)?;
        Ok(Cost {
            params: rows.iter().map(|r| r.params).sum(),
            macs: rows.iter().map(|r| r.macs).sum(),
            bytes: 0,
        })
    }

    fn rows(&self, name: &str, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<SummaryRow>> {
        let x = *inputs.get(0)?;
        let mut rows = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            let s = self.layer_input(x, i);
            let mid = l.conv1.params().output_shape(s)?;
            let prefix = format!("{name}denselayer{}", i + 1);
            rows.push(SummaryRow {
                name: format!("{prefix}.norm1"),
                output: s,
                params: 2 * s[1] as u64,
                macs: 0,
            });
            for (conv, input, part) in [(&l.conv1, s, "conv1"), (&l.conv2, mid, "conv2")] {
                let c = conv.cost(input)?;
                rows.push(SummaryRow {
                    name: format!("{prefix}.{part}"),
                    output: conv.params().output_shape(input)?,
                    params: c.params,
                    macs: c.macs,
                });
            }
        }
        rows.push(SummaryRow {
            name: format!("{name}features"),
            output: self.layer_input(x, self.layers.len()),
            params: 0,
            macs: 0,
        });
        Ok(rows)
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        let x = inputs.get(0)?.tensor()?;
        let mut dense = DenseBuffer::new(rec, x, self.cfg.out_channels())?;
        for l in &self.layers {
            let features = dense.features(rec)?;
            let a = l.norm1.run(rec, &features)?;
            let b = l.conv1.forward(rec, &a)?;
            let new = l.conv2.forward(rec, &b)?;
            dense.append(rec, &new)?;
        }
        Ok(vec![Value::Tensor(dense.features(rec)?)])
    }

    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        let mut features = inputs.get(0)?.tensor()?.to_owned();
        for l in &self.layers {
            let a = l.norm1.reference_of(features.view())?;
            let b = l.conv1.reference(a.view())?;
            let new = l.conv2.reference(b.view())?;
            features = reference::channel::concat(&[features.view(), new.view()])?;
        }
        Ok(vec![HostValue::Tensor(features)])
    }
}

/// torchvision's `densenet._DenseBlock` for inference.
pub type DenseBlock = Model<DenseBlockConfig>;

impl DenseBlock {
    /// Output channels: input features plus `num_layers * growth_rate`.
    pub fn out_channels(&self) -> usize {
        self.config().out_channels()
    }
}

impl Architecture for DenseBlockConfig {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        positive(&[
            ("num_layers", self.num_layers),
            ("num_input_features", self.num_input_features),
            ("bn_size", self.bn_size),
            ("growth_rate", self.growth_rate),
        ])
    }

    /// Loads `denselayer{i}.norm1 / conv1 / norm2 / conv2`.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let cfg = self;
        let eps = 1e-5;
        let mut layers = Vec::new();
        for i in 0..cfg.num_layers {
            let c = cfg.num_input_features + i * cfg.growth_rate;
            let name = |n: &str| key(prefix, &format!("denselayer{}.{n}", i + 1));
            let norm1 = BnActNode::load(gpu, sd, (c, eps), &name("norm1"), Activation::Relu)?;
            let mid = cfg.bn_size * cfg.growth_rate;
            let p1 = Conv2dParams::new(c, mid, 1)
                .bias(false)
                .activation(Activation::Relu);
            let p2 = Conv2dParams::new(mid, cfg.growth_rate, 3)
                .padding(1)
                .bias(false);
            layers.push(DenseLayer {
                norm1,
                conv1: ConvBnAct::load(gpu, sd, p1, &name("conv1"), Some(&name("norm2")), eps)?,
                conv2: ConvBnAct::load(gpu, sd, p2, &name("conv2"), None, eps)?,
            });
        }
        let mut g = Graph::new();
        let x = g.input();
        let y = g.add("", DenseNode { cfg: *cfg, layers }, &[x]);
        g.set_outputs(&[y]);
        Ok(g)
    }
}
