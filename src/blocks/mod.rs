//! Blocks built from the ops, loaded from PyTorch / torchvision state dicts under their
//! own names. One file per architecture family: [`resnet`](Bottleneck) (and
//! [`BasicBlock`]),
//! [`mobilenet`](InvertedResidual) (V1, V2 and V3 blocks), [`shufflenet`](ShuffleV2Unit),
//! [`densenet`](DenseBlock), [`segnet`](SegNetStage), [`deeplab`](Aspp) and
//! [`fcn`](FcnHead); the machinery they share is the [`Graph`] and its nodes. Whole
//! networks live in [`crate::networks`].
//!
//! Every block and network is a [`Model`] of an [`Architecture`]: its configuration type
//! describes the computation once, as a graph of nodes, from which the GPU forward, the
//! CPU reference and the summary all follow, so they cannot disagree; buffers are
//! released after their last use in the graph, so the recorder reuses them without the
//! block saying so.
//!
//! Blocks are built for inference: every batch norm is folded into the convolution
//! before it ([`fold_batch_norm`](crate::ops::norm::fold_batch_norm)), so a conv + BN +
//! activation is one dispatch. The CPU reference keeps the unfolded weights and runs the
//! reference ops (convolution, then batch norm, then activation), which is what the GPU
//! forward is tested against.

mod deeplab;
mod densenet;
mod fcn;
mod graph;
mod mobilenet;
mod nodes;
mod resnet;
mod segnet;
mod shufflenet;

pub(crate) use deeplab::separable_conv_bn_relu;
pub use deeplab::{Aspp, AsppConfig};
pub use densenet::{DenseBlock, DenseBlockConfig};
pub use fcn::{FcnHead, FcnHeadConfig};
pub use graph::Graph;
pub(crate) use mobilenet::{
    inverted_residual_graph as mbconv_graph, make_divisible_with_limit,
    padded_inverted_residual_graph, v3_block_graph,
};
pub use mobilenet::{
    make_divisible, DepthwiseSeparableBlock, DepthwiseSeparableConfig, InvertedResidual,
    InvertedResidualConfig, MobileNetV3Block, MobileNetV3Config,
};
pub use nodes::ConvBnAct;
pub(crate) use resnet::blur_pool;
pub use resnet::{
    AntiAlias, AvgDown, BasicBlock, BasicBlockConfig, BlockAttention, Bottleneck, BottleneckConfig,
    BottleneckKind,
};
pub(crate) use segnet::conv_stack;
pub use segnet::{SegNetStage, SegNetStageConfig};
pub use shufflenet::{ShuffleV1Config, ShuffleV1Unit, ShuffleV2Config, ShuffleV2Unit};

pub(crate) use graph::{HostValue, Inputs, Node, Value, ValueId};
pub(crate) use nodes::{
    BnActNode, ConvTransposeNode, DecoderStageNode, EcaGateNode, GrnScaleNode, GroupNormNode,
    LayerNorm2dNode, LrAsppHeadNode, Op, RepConvNode, RepNames, SdpaNode, SeNode,
    SpatialGatherNode, SplitAttentionNode, TwoPathAttentionNode,
};

use ndarray::{Array4, ArrayView4};

use crate::error::Result;
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::weights::StateDict;

/// A block or a network architecture: its configuration type, which knows how to build
/// the graph of the architecture from a state dict. Every block and network is a
/// [`Model`] of one (`Aspp` is `Model<AsppConfig>`, `MobileNetV2Features` is
/// `Model<MobileNetV2Config>`, ...).
pub trait Architecture: Clone + std::fmt::Debug {
    /// Checks the configuration on its own, before any weight is read (default: nothing
    /// to check). [`Model::load`] calls it first.
    fn validate(&self) -> Result<()> {
        Ok(())
    }

    /// Builds the graph with the weights named `{prefix}.{PyTorch name}` in `sd` (`prefix`
    /// empty for a state dict of the block itself). Errors name the missing or
    /// mis-shaped tensor.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph>;

    /// Checks an input shape beyond what the graph's ops check (default: nothing).
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        let _ = input;
        Ok(())
    }
}

/// A loaded block or network: loaded once from a state dict by PyTorch's names, then run
/// on the GPU, on the CPU (the reference) or summarised, all from its one [`Graph`].
///
/// ```no_run
/// use segblocks::blocks::{InvertedResidual, InvertedResidualConfig};
/// use segblocks::{Gpu, StateDict};
///
/// # fn main() -> segblocks::Result<()> {
/// let gpu = Gpu::new()?;
/// let sd = StateDict::load("mobilenet_v2.safetensors")?;
/// let cfg = InvertedResidualConfig { inp: 16, oup: 24, stride: 2, expand_ratio: 6.0 };
/// let block = InvertedResidual::load(&gpu, cfg, &sd, "features.2")?;
/// let x = gpu.upload(ndarray::Array4::<f32>::zeros((1, 16, 56, 56)).view())?;
/// let mut rec = gpu.recorder();
/// let y = block.forward(&mut rec, &x)?;
/// assert_eq!(rec.download(&y)?.shape(), &[1, 24, 28, 28]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Model<A> {
    config: A,
    graph: Graph,
}

impl<A: Architecture> Model<A> {
    /// Loads the architecture `config` with the weights named `{prefix}.{PyTorch name}`
    /// (`prefix` empty for a state dict of the block itself). Errors name the missing or
    /// mis-shaped tensor.
    pub fn load(gpu: &Gpu, config: A, sd: &StateDict, prefix: &str) -> Result<Self> {
        config.validate()?;
        let graph = config.build(gpu, sd, prefix)?;
        Ok(Model { config, graph })
    }

    /// The configuration it was loaded with.
    pub fn config(&self) -> &A {
        &self.config
    }

    /// The computation.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The graph, to embed in a larger one.
    pub(crate) fn into_graph(self) -> Graph {
        self.graph
    }

    /// Records the block into `rec` (one submission when the caller submits).
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        self.config.check_input(x.shape())?;
        self.graph.forward(rec, x)
    }

    /// Records the block into `rec`; returns every output (the first is
    /// [`Model::forward`]'s; a segmentation model's auxiliary output, a backbone's
    /// intermediate stages), in the order the model documents.
    pub fn forward_all(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Vec<Tensor>> {
        self.config.check_input(x.shape())?;
        self.graph
            .forward_all(rec, x)?
            .iter()
            .map(|v| v.tensor().cloned())
            .collect()
    }

    /// The CPU reference of every output ([`Model::forward_all`]).
    pub fn reference_all(&self, x: ArrayView4<f32>) -> Result<Vec<Array4<f32>>> {
        let s = x.shape();
        self.config.check_input([s[0], s[1], s[2], s[3]])?;
        self.graph
            .reference_all(x)?
            .iter()
            .map(|v| v.tensor().map(|t| t.to_owned()))
            .collect()
    }

    /// The CPU reference forward, from the reference ops and the unfolded weights.
    pub fn reference(&self, x: ArrayView4<f32>) -> Result<Array4<f32>> {
        let s = x.shape();
        self.config.check_input([s[0], s[1], s[2], s[3]])?;
        self.graph.reference(x)
    }

    /// Compiles every pipeline a forward on `input` needs, in parallel where the backend
    /// allows ([`Gpu::prepare`]), so that the first forward runs without compiling;
    /// returns how many were compiled. Pipelines depend on the kernels chosen, not on
    /// sizes alone: another input size usually needs none.
    pub fn prepare(&self, gpu: &Gpu, input: [usize; 4]) -> Result<usize> {
        self.config.check_input(input)?;
        gpu.prepare(|rec| {
            let x = rec.empty("input", input)?;
            self.graph.forward(rec, &x).map(|_| ())
        })
    }

    /// Every layer with its output shape, parameters (batch norms included, as PyTorch's
    /// `parameters()` counts them) and MACs, like torchinfo.
    pub fn summary(&self, input: [usize; 4]) -> Result<Summary> {
        self.config.check_input(input)?;
        self.graph.summary(input)
    }

    /// The output shape for `input`, or the error `forward` would return.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        self.config.check_input(input)?;
        self.graph.output_shape(input)
    }
}

/// One row of a block summary: a layer's name, output shape, parameters and MACs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryRow {
    /// Layer name (state-dict prefix, or the node's name).
    pub name: String,
    /// Output shape `[N, C, H, W]`.
    pub output: [usize; 4],
    /// Learnable parameters (batch-norm scale and shift included).
    pub params: u64,
    /// Multiply-accumulates of layers with weights.
    pub macs: u64,
}

/// A table of layers like torchinfo's, with totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// The layers in execution order.
    pub rows: Vec<SummaryRow>,
}

impl Summary {
    /// Total parameters.
    pub fn total_params(&self) -> u64 {
        self.rows.iter().map(|r| r.params).sum()
    }

    /// Total MACs.
    pub fn total_macs(&self) -> u64 {
        self.rows.iter().map(|r| r.macs).sum()
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<36} {:>22} {:>12} {:>14}",
            "layer", "output", "params", "MACs"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<36} {:>22} {:>12} {:>14}",
                r.name,
                format!("{:?}", r.output),
                r.params,
                r.macs
            )?;
        }
        write!(
            f,
            "{:<36} {:>22} {:>12} {:>14}",
            "total",
            "",
            self.total_params(),
            self.total_macs()
        )
    }
}

/// The convolution `{conv}` with its batch norm `{bn}` (eps) as a graph node.
pub(crate) fn conv_bn(
    gpu: &Gpu,
    sd: &StateDict,
    params: crate::ops::conv::Conv2dParams,
    conv: &str,
    bn: &str,
    eps: f32,
) -> Result<ConvBnAct> {
    ConvBnAct::load(gpu, sd, params, conv, Some(bn), eps)
}

/// The convolution `{prefix}.{index}.0` with its batch norm `{prefix}.{index}.1`
/// (torchvision's `Conv2dNormActivation` inside a `Sequential`; `index` may be a name).
pub(crate) fn conv_bn_at(
    gpu: &Gpu,
    sd: &StateDict,
    params: crate::ops::conv::Conv2dParams,
    prefix: &str,
    index: impl std::fmt::Display,
    eps: f32,
) -> Result<ConvBnAct> {
    let at = crate::weights::key(prefix, &index.to_string());
    conv_bn(
        gpu,
        sd,
        params,
        &crate::weights::key(&at, "0"),
        &crate::weights::key(&at, "1"),
        eps,
    )
}
