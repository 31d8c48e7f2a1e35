//! torchvision's VGG `features` (`vgg11` .. `vgg19`, with or without batch norm), also
//! segmentation_models_pytorch's `vgg*` encoders, which are these layers: 3x3 convolutions
//! (padding 1) with ReLU, batch norm between them in the `_bn` models, and 2x2 max pools,
//! numbered as torchvision's `make_layers` numbers them (`features.{i}`).

use crate::blocks::{conv_bn, Architecture, ConvBnAct, Graph, Model, Op, ValueId};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::ops::conv::Conv2dParams;
use crate::ops::pool::MaxPool2dParams;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// torchvision's `vgg{depth}` / `vgg{depth}_bn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VggConfig {
    /// 11, 13, 16 or 19 weight layers (torchvision's configurations A, B, D and E).
    pub depth: usize,
    /// Batch norm after every convolution (the `_bn` models).
    pub batch_norm: bool,
}

/// torchvision's `vgg*().features`: the output after the fifth max pool.
pub type VggFeatures = Model<VggConfig>;

/// A max pool in a configuration.
const M: usize = 0;

impl VggConfig {
    /// By torchvision's (and smp's) name: `vgg11`, `vgg11_bn`, `vgg13`, `vgg13_bn`,
    /// `vgg16`, `vgg16_bn`, `vgg19` or `vgg19_bn`; any other name is an error naming
    /// `arch`.
    pub fn torchvision(name: &str) -> Result<Self> {
        let (base, batch_norm) = match name.strip_suffix("_bn") {
            Some(base) => (base, true),
            None => (name, false),
        };
        let depth = match base {
            "vgg11" => 11,
            "vgg13" => 13,
            "vgg16" => 16,
            "vgg19" => 19,
            _ => {
                return Err(Error::InvalidParam {
                    name: "arch",
                    reason: format!("{name:?} is not one of torchvision's vgg11 .. vgg19(_bn)"),
                })
            }
        };
        Ok(VggConfig { depth, batch_norm })
    }

    /// torchvision's `cfgs`: output channels of each convolution, [`M`] for a max pool.
    fn layers(&self) -> Result<&'static [usize]> {
        Ok(match self.depth {
            11 => &[64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M],
            13 => &[
                64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512, M,
            ],
            16 => &[
                64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M,
            ],
            19 => &[
                64, 64, M, 128, 128, M, 256, 256, 256, 256, M, 512, 512, 512, 512, M, 512, 512,
                512, 512, M,
            ],
            d => {
                return Err(Error::InvalidParam {
                    name: "depth",
                    reason: format!("VGG has 11, 13, 16 or 19 layers, got {d}"),
                })
            }
        })
    }

    /// The layers appended to `g` after `x` (the first convolution taking `in_channels`),
    /// stopping after the pool that ends stage `stages`: the output of each stage before
    /// its pool, then the last pool's output (smp's VGG features: the first at the
    /// input's size, every other at half the previous one's).
    pub(crate) fn append(
        &self,
        g: &mut Graph,
        x: ValueId,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        (in_channels, stages): (usize, usize),
    ) -> Result<Vec<ValueId>> {
        let (mut y, mut cin, mut index) = (x, in_channels, 0);
        let mut outs = Vec::new();
        for &width in self.layers()? {
            if width == M {
                outs.push(y);
                if outs.len() > stages {
                    break;
                }
                let pool = Op::MaxPool(MaxPool2dParams::new(2).stride(2));
                y = g.add_multi(key(prefix, &index.to_string()), pool, &[y], 2)[0];
                index += 1;
                continue;
            }
            let p = Conv2dParams::new(cin, width, 3)
                .padding(1)
                .activation(Activation::Relu);
            let conv = key(prefix, &index.to_string());
            let layer = if self.batch_norm {
                conv_bn(
                    gpu,
                    sd,
                    p,
                    &conv,
                    &key(prefix, &(index + 1).to_string()),
                    1e-5,
                )?
            } else {
                ConvBnAct::load(gpu, sd, p, &conv, None, 0.0)?
            };
            y = g.add(conv, layer, &[y]);
            index += if self.batch_norm { 3 } else { 2 };
            cin = width;
        }
        if outs.len() == 5 && stages >= 5 {
            outs.push(y);
        }
        Ok(outs)
    }
}

impl Architecture for VggConfig {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        self.layers().map(|_| ())
    }

    /// Loads `{prefix}.{i}` (the prefix is `features` in a whole model's state dict).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let mut g = Graph::new();
        let x = g.input();
        let outs = self.append(&mut g, x, (gpu, sd, prefix), (3, 5))?;
        g.set_outputs(&outs[outs.len() - 1..]);
        Ok(g)
    }
}
