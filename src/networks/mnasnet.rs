//! torchvision's MNASNet (`mnasnet0_5`, `mnasnet0_75`, `mnasnet1_0`, `mnasnet1_3`; the
//! B1 variant) as a feature extractor, its `layers`: a 3x3 stride-2 convolution, a
//! depthwise-separable block (3x3 depthwise, 1x1 linear), six stacks of inverted
//! residuals (ReLU, kernels 3 and 5, expansion 3 or 6) and a 1x1 convolution to 1280
//! channels, every convolution with batch norm; the classifier left out.

use crate::blocks::{conv_bn, make_divisible, mbconv_graph, Architecture, Graph, Model};
use crate::error::{fail_if, Error, Result};
use crate::gpu::Gpu;
use crate::ops::conv::Conv2dParams;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// torchvision's `MNASNet(alpha)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MnasNetConfig {
    /// The width multiplier (`alpha`): every width but the last 1280 scaled and rounded to
    /// a multiple of 8.
    pub alpha: f64,
}

/// The six stacks: output width (before `alpha`), kernel, stride, expansion, repeats.
const STACKS: [[usize; 5]; 6] = [
    [24, 3, 2, 3, 3],
    [40, 5, 2, 3, 3],
    [80, 5, 2, 6, 3],
    [96, 3, 1, 6, 2],
    [192, 5, 2, 6, 4],
    [320, 3, 1, 6, 1],
];

impl MnasNetConfig {
    /// By torchvision's name: `mnasnet0_5`, `mnasnet0_75`, `mnasnet1_0` or `mnasnet1_3`;
    /// any other name is an error naming `arch`.
    pub fn torchvision(name: &str) -> Result<Self> {
        let alpha = match name {
            "mnasnet0_5" => 0.5,
            "mnasnet0_75" => 0.75,
            "mnasnet1_0" => 1.0,
            "mnasnet1_3" => 1.3,
            other => {
                return Err(Error::InvalidParam {
                    name: "arch",
                    reason: format!(
                        "{other:?} is not one of torchvision's mnasnet0_5 / 0_75 / 1_0 / 1_3"
                    ),
                })
            }
        };
        Ok(MnasNetConfig { alpha })
    }

    /// `_round_to_multiple_of(width * alpha, 8)`.
    fn width(&self, width: usize) -> usize {
        make_divisible(width as f64 * self.alpha, 8)
    }
}

/// torchvision's `mnasnet*().layers`: input `[N, 3, H, W]`, output `[N, 1280, H / 32,
/// W / 32]` (rounded up at each stride).
pub type MnasNetFeatures = Model<MnasNetConfig>;

impl Architecture for MnasNetConfig {
    /// Checks the configuration on its own: a positive, finite `alpha`.
    fn validate(&self) -> Result<()> {
        fail_if(
            !(self.alpha.is_finite() && self.alpha > 0.0 && self.alpha <= 64.0),
            "alpha",
            || format!("must be in (0, 64], got {}", self.alpha),
        )
    }

    /// Loads `layers.{i}` under `prefix` (a whole model's state dict, its `classifier`
    /// ignored).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let at = |i: usize| key(prefix, &format!("layers.{i}"));
        let relu = Activation::Relu;
        let (c0, c1) = (self.width(32), self.width(16));
        let mut g = Graph::new();
        let x = g.input();
        let layers = [
            (
                Conv2dParams::new(3, c0, 3)
                    .stride(2)
                    .padding(1)
                    .activation(relu),
                0,
            ),
            (
                Conv2dParams::depthwise(c0, 1, 3)
                    .padding(1)
                    .activation(relu),
                3,
            ),
            (Conv2dParams::new(c0, c1, 1), 6),
        ];
        let mut y = x;
        for (p, i) in layers {
            let layer = conv_bn(gpu, sd, p.bias(false), &at(i), &at(i + 1), EPS)?;
            y = g.add(format!("layers.{i}"), layer, &[y]);
        }
        let mut input = c1;
        for (s, [width, kernel, stride, expand, repeats]) in STACKS.into_iter().enumerate() {
            let output = self.width(width);
            for j in 0..repeats {
                let name = format!("layers.{}.{j}", 8 + s);
                let stride = if j == 0 { stride } else { 1 };
                let block = (input, output, kernel, stride, expand);
                let block = inverted_residual(gpu, sd, &key(prefix, &name), block)?;
                y = g.add(name, block, &[y]);
                input = output;
            }
        }
        let p = Conv2dParams::new(input, 1280, 1)
            .bias(false)
            .activation(relu);
        let last = conv_bn(gpu, sd, p, &at(14), &at(15), EPS)?;
        let y = g.add("layers.14", last, &[y]);
        g.set_outputs(&[y]);
        Ok(g)
    }
}

/// Batch norm eps of every layer.
const EPS: f32 = 1e-5;

/// One `_InvertedResidual` under `prefix` (`layers.{0,1}` expansion, `{3,4}` depthwise,
/// `{6,7}` projection); the input added when it keeps its shape.
fn inverted_residual(
    gpu: &Gpu,
    sd: &StateDict,
    prefix: &str,
    (input, output, kernel, stride, expand): (usize, usize, usize, usize, usize),
) -> Result<Graph> {
    let at = |i: usize| key(prefix, &format!("layers.{i}"));
    let relu = Activation::Relu;
    let mid = input * expand;
    let p = Conv2dParams::new(input, mid, 1)
        .bias(false)
        .activation(relu);
    let expand = conv_bn(gpu, sd, p, &at(0), &at(1), EPS)?;
    let p = Conv2dParams::depthwise(mid, 1, kernel)
        .stride(stride)
        .padding(kernel / 2)
        .bias(false)
        .activation(relu);
    let depthwise = conv_bn(gpu, sd, p, &at(3), &at(4), EPS)?;
    let p = Conv2dParams::new(mid, output, 1).bias(false);
    let project = conv_bn(gpu, sd, p, &at(6), &at(7), EPS)?;
    let skip = input == output && stride == 1;
    let names = ["layers.0", "layers.3", "se", "layers.6"];
    mbconv_graph(gpu, skip, (Some(expand), depthwise, None, project), names)
}
