//! torchvision's ConvNeXt `features` (`convnext_tiny`, `_small`, `_base`, `_large`): a 4x4
//! stride-4 stem with `LayerNorm2d`; four stages of `CNBlock`s (a 7x7 depthwise
//! convolution, a layer norm over each pixel's channels (eps 1e-6), a linear layer to 4x
//! the channels with GELU, a linear layer back, scaled per channel by `layer_scale`, plus
//! the input); between stages a `LayerNorm2d` and a 2x2 stride-2 convolution doubling the
//! channels. The linear layers run as 1x1 convolutions, the layer scale folded into the
//! second one's weights and bias and the input added in its store: a block is four
//! dispatches. Names are torchvision's (`features.{stage}.{i}.block.{0,2,3,5}`,
//! `.layer_scale`).

use crate::blocks::{Architecture, ConvBnAct, Graph, LayerNorm2dNode, Model};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::ops::conv::{Conv2dParams, ResidualJoin};
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// torchvision's `convnext_tiny` / `_small` / `_base` / `_large`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvNextConfig {
    /// Channels of the four stages.
    pub channels: [usize; 4],
    /// Blocks of the four stages.
    pub blocks: [usize; 4],
}

/// torchvision's `convnext_*().features`: the last stage's output, at 1/32 of the input.
pub type ConvNextFeatures = Model<ConvNextConfig>;

/// Every layer norm's eps.
const EPS: f32 = 1e-6;

impl ConvNextConfig {
    /// By torchvision's name: `convnext_tiny`, `convnext_small`, `convnext_base` or
    /// `convnext_large`; any other name is an error naming `arch`.
    pub fn torchvision(name: &str) -> Result<Self> {
        let (channels, blocks) = match name {
            "convnext_tiny" => ([96, 192, 384, 768], [3, 3, 9, 3]),
            "convnext_small" => ([96, 192, 384, 768], [3, 3, 27, 3]),
            "convnext_base" => ([128, 256, 512, 1024], [3, 3, 27, 3]),
            "convnext_large" => ([192, 384, 768, 1536], [3, 3, 27, 3]),
            _ => {
                return Err(Error::InvalidParam {
                    name: "arch",
                    reason: format!(
                        "{name:?} is not one of torchvision's convnext_tiny, _small, _base, \
                         _large"
                    ),
                })
            }
        };
        Ok(ConvNextConfig { channels, blocks })
    }
}

impl Architecture for ConvNextConfig {
    /// Checks the configuration on its own: positive channels.
    fn validate(&self) -> Result<()> {
        let named: Vec<(&'static str, usize)> =
            self.channels.iter().map(|&c| ("channels", c)).collect();
        crate::error::positive(&named)
    }

    /// Loads `{prefix}.0` (the stem), `{prefix}.{1,3,5,7}.{i}` (the blocks) and
    /// `{prefix}.{2,4,6}` (the downsampling layers); the prefix is `features` in a whole
    /// model's state dict.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let at = |n: &str| key(prefix, n);
        let mut g = Graph::new();
        let x = g.input();
        let c0 = self.channels[0];
        let stem = Conv2dParams::new(3, c0, 4).stride(4);
        let stem = ConvBnAct::load(gpu, sd, stem, &at("0.0"), None, 0.0)?;
        let mut y = g.add(at("0.0"), stem, &[x]);
        let norm = LayerNorm2dNode::load(gpu, sd, (c0, EPS), &at("0.1"))?;
        y = g.add(at("0.1"), norm, &[y]);
        for (s, (&c, &n)) in self.channels.iter().zip(&self.blocks).enumerate() {
            if s > 0 {
                let down = at(&(2 * s).to_string());
                let prev = self.channels[s - 1];
                let norm = LayerNorm2dNode::load(gpu, sd, (prev, EPS), &key(&down, "0"))?;
                y = g.add(key(&down, "0"), norm, &[y]);
                let conv = Conv2dParams::new(prev, c, 2).stride(2);
                let conv = ConvBnAct::load(gpu, sd, conv, &key(&down, "1"), None, 0.0)?;
                y = g.add(key(&down, "1"), conv, &[y]);
            }
            for i in 0..n {
                let block = at(&format!("{}.{i}", 2 * s + 1));
                y = cn_block(&mut g, y, (gpu, sd, &block), c)?;
            }
        }
        g.set_outputs(&[y]);
        Ok(g)
    }
}

/// One `CNBlock` of `c` channels under `block` on `x`, appended to `g`.
fn cn_block(
    g: &mut Graph,
    x: crate::blocks::ValueId,
    (gpu, sd, block): (&Gpu, &StateDict, &str),
    c: usize,
) -> Result<crate::blocks::ValueId> {
    let at = |n: &str| key(block, n);
    let dw = Conv2dParams::depthwise(c, 1, 7).padding(3);
    let dw = ConvBnAct::load(gpu, sd, dw, &at("block.0"), None, 0.0)?;
    let mut y = g.add(at("block.0"), dw, &[x]);
    let norm = LayerNorm2dNode::load(gpu, sd, (c, EPS), &at("block.2"))?;
    y = g.add(at("block.2"), norm, &[y]);
    // The linear layers as 1x1 convolutions.
    let expand = Conv2dParams::new(c, 4 * c, 1).activation(Activation::Gelu);
    let expand = ConvBnAct::load_linear(gpu, sd, expand, &at("block.3"))?;
    y = g.add(at("block.3"), expand, &[y]);
    // `layer_scale` (`[c, 1, 1]`) folded into the second linear layer, the input added in
    // its store.
    let scale = sd.get(&at("layer_scale"), &[c, 1, 1])?;
    let scale: ndarray::Array1<f32> = scale.iter().copied().collect();
    let project = Conv2dParams::new(4 * c, c, 1);
    let project = ConvBnAct::load_linear(gpu, sd, project, &at("block.5"))?
        .with_output_scale(gpu, scale.view())?
        .with_residual(ResidualJoin::AfterActivation)?;
    Ok(g.add(at("block.5"), project, &[y, x]))
}
