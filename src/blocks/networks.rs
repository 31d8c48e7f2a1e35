//! Whole backbones assembled from the blocks, loading torchvision's names.

use ndarray::{Array4, ArrayView4};

use super::{key, ConvBnAct, InvertedResidual, InvertedResidualConfig, Summary, SummaryRow};
use crate::error::{invalid, Result};
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::ops::conv::Conv2dParams;
use crate::ops::Activation;
use crate::weights::StateDict;

/// torchvision's `_make_divisible(v, 8)`: round to the nearest multiple of 8, at least 8,
/// and never more than 10% below `v`.
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let mut new_v = d.max(((v + d / 2.0) / d).floor() * d);
    if new_v < 0.9 * v {
        new_v += d;
    }
    new_v as usize
}

/// torchvision's `mobilenet_v2(width_mult).features`: a 3x3 stride-2 stem, the 17
/// inverted residuals of the `[t, c, n, s]` table, and a 1x1 to 1280 channels (more when
/// `width_mult > 1`), every convolution with batch norm and ReLU6 but the projections.
#[derive(Debug)]
pub struct MobileNetV2Features {
    stem: ConvBnAct,
    blocks: Vec<InvertedResidual>,
    last: ConvBnAct,
}

impl MobileNetV2Features {
    /// The `[t, c, n, s]` table of the paper and torchvision.
    pub const SETTINGS: [[usize; 4]; 7] = [
        [1, 16, 1, 1],
        [6, 24, 2, 2],
        [6, 32, 3, 2],
        [6, 64, 4, 2],
        [6, 96, 3, 1],
        [6, 160, 3, 2],
        [6, 320, 1, 1],
    ];

    /// Loads `{prefix}.0 ... {prefix}.18` (the prefix is `features` in a whole
    /// `mobilenet_v2()` state dict, empty for the state dict of `.features` itself).
    pub fn load(gpu: &Gpu, width_mult: f64, sd: &StateDict, prefix: &str) -> Result<Self> {
        if !(width_mult.is_finite() && width_mult > 0.0) {
            return Err(invalid(
                "width_mult",
                format!("must be positive, got {width_mult}"),
            ));
        }
        let eps = 1e-5;
        let mut input = make_divisible(32.0 * width_mult, 8);
        let last_channel = make_divisible(1280.0 * width_mult.max(1.0), 8);
        let stem = ConvBnAct::load(
            gpu,
            sd,
            Conv2dParams::new(3, input, 3)
                .stride(2)
                .padding(1)
                .bias(false)
                .activation(Activation::Relu6),
            &key(prefix, "0.0"),
            Some(&key(prefix, "0.1")),
            eps,
        )?;
        let mut blocks = Vec::new();
        let mut index = 1;
        for [t, c, n, s] in Self::SETTINGS {
            let out = make_divisible(c as f64 * width_mult, 8);
            for i in 0..n {
                let cfg = InvertedResidualConfig {
                    inp: input,
                    oup: out,
                    stride: if i == 0 { s } else { 1 },
                    expand_ratio: t as f64,
                };
                blocks.push(InvertedResidual::load(
                    gpu,
                    cfg,
                    sd,
                    &key(prefix, &index.to_string()),
                )?);
                input = out;
                index += 1;
            }
        }
        let last = ConvBnAct::load(
            gpu,
            sd,
            Conv2dParams::new(input, last_channel, 1)
                .bias(false)
                .activation(Activation::Relu6),
            &key(prefix, &format!("{index}.0")),
            Some(&key(prefix, &format!("{index}.1"))),
            eps,
        )?;
        Ok(MobileNetV2Features { stem, blocks, last })
    }

    /// Records the whole backbone into `rec` (one submission when the caller submits).
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        let mut y = self.stem.forward(rec, x)?;
        for b in &self.blocks {
            y = b.forward(rec, &y)?;
        }
        self.last.forward(rec, &y)
    }

    /// CPU reference forward.
    pub fn reference(&self, x: ArrayView4<f32>) -> Result<Array4<f32>> {
        let mut y = self.stem.reference(x)?;
        for b in &self.blocks {
            y = b.reference(y.view())?;
        }
        self.last.reference(y.view())
    }

    /// Every convolution with its output shape, parameters (batch norms included) and
    /// MACs; the parameter total equals PyTorch's `sum(p.numel() for p in parameters())`.
    pub fn summary(&self, input: [usize; 4]) -> Result<Summary> {
        let mut s = Summary::default();
        let mut shape = s.push("0 (stem)", &self.stem, input)?;
        for (i, b) in self.blocks.iter().enumerate() {
            let sub = b.summary(shape)?;
            for row in sub.rows {
                shape = row.output;
                s.rows.push(SummaryRow {
                    name: format!("{} {}", i + 1, row.name),
                    ..row
                });
            }
        }
        s.push(
            &format!("{} (last)", self.blocks.len() + 1),
            &self.last,
            shape,
        )?;
        Ok(s)
    }
}
