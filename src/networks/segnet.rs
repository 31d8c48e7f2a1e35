//! SegNet (Badrinarayanan et al. 2017): a VGG16-BN encoder whose 2x2 max poolings keep
//! their indices, and a mirrored decoder that max-unpools with those indices (to the
//! size before each pooling, odd sizes included) before each stage's 3x3 convolutions
//! with batch norm and ReLU, then a 3x3 classifier. The PyTorch module the names follow
//! (`encoders.{s}.{i}.0/1`, `decoders.{s}.{i}.0/1` deepest stage first, `classifier`) is in
//! `tests/golden/make_golden_classic.py`; the indices never leave the GPU.

use crate::blocks::{conv_stack, Architecture, ConvBnAct, Graph, Model, Op};
use crate::error::{fail_if, positive, Result};
use crate::gpu::Gpu;
use crate::ops::conv::Conv2dParams;
use crate::ops::pool::{MaxPool2dParams, MaxUnpool2dParams};
use crate::weights::{key, StateDict};

/// The configuration of a SegNet: per encoder stage its width and its number of
/// convolutions (VGG16-BN: 64, 128, 256, 512, 512 and 2, 2, 3, 3, 3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SegNetConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Classes.
    pub num_classes: usize,
    /// Each encoder stage's channels.
    pub widths: Vec<usize>,
    /// Each encoder stage's convolutions (its decoder stage has as many).
    pub convs: Vec<usize>,
}

impl SegNetConfig {
    /// SegNet with the VGG16-BN encoder.
    pub fn vgg16_bn(in_channels: usize, num_classes: usize) -> Self {
        SegNetConfig {
            in_channels,
            num_classes,
            widths: vec![64, 128, 256, 512, 512],
            convs: vec![2, 2, 3, 3, 3],
        }
    }

    /// Sets the stages' widths and convolution counts.
    pub fn stages(mut self, widths: Vec<usize>, convs: Vec<usize>) -> Self {
        self.widths = widths;
        self.convs = convs;
        self
    }
}

/// SegNet for inference: input `[N, in_channels, H, W]` (H and W at least `2^stages`),
/// output the class logits `[N, num_classes, H, W]`.
pub type SegNet = Model<SegNetConfig>;

impl Architecture for SegNetConfig {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        positive(&[
            ("in_channels", self.in_channels),
            ("num_classes", self.num_classes),
            ("widths", self.widths.len()),
        ])?;
        fail_if(self.widths.len() != self.convs.len(), "convs", || {
            format!(
                "one count per stage: {} widths, {} counts",
                self.widths.len(),
                self.convs.len()
            )
        })?;
        fail_if(
            self.widths.contains(&0) || self.convs.contains(&0) || self.widths.len() > 16,
            "widths",
            || {
                format!(
                    "1 ..= 16 stages of positive widths and counts, got {:?} and {:?}",
                    self.widths, self.convs
                )
            },
        )
    }

    /// Loads `encoders.*`, `decoders.*` and `classifier`.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let stages = self.widths.len();
        let mut g = Graph::new();
        let x = g.input();
        let pool = MaxPool2dParams::new(2);
        let mut y = x;
        let mut cin = self.in_channels;
        let mut saved = Vec::with_capacity(stages);
        for (s, (&w, &n)) in self.widths.iter().zip(&self.convs).enumerate() {
            let name = key(prefix, &format!("encoders.{s}"));
            let widths = (0..n).map(|i| (if i == 0 { cin } else { w }, w));
            let before = conv_stack(&mut g, y, (gpu, sd, &name), widths)?;
            let pooled = g.add_multi(key(&name, "pool"), Op::MaxPool(pool), &[before], 2);
            saved.push((before, pooled[1]));
            y = pooled[0];
            cin = w;
        }
        let unpool = Op::MaxUnpool(MaxUnpool2dParams::from_pool(&pool));
        for d in 0..stages {
            let s = stages - 1 - d;
            let (before, indices) = saved[s];
            let name = key(prefix, &format!("decoders.{d}"));
            // The unpooling reads only the pre-pool map's shape.
            y = g.add_sized(
                key(&name, "unpool"),
                unpool.clone(),
                &[y, indices],
                &[before],
            );
            let (w, n) = (self.widths[s], self.convs[s]);
            let next = if s > 0 {
                self.widths[s - 1]
            } else {
                self.widths[0]
            };
            let widths = (0..n).map(|i| (w, if i == n - 1 { next } else { w }));
            y = conv_stack(&mut g, y, (gpu, sd, &name), widths)?;
        }
        let classifier = Conv2dParams::new(self.widths[0], self.num_classes, 3).padding(1);
        let classifier =
            ConvBnAct::load(gpu, sd, classifier, &key(prefix, "classifier"), None, 0.0)?;
        let out = g.add("classifier", classifier, &[y]);
        g.set_outputs(&[out]);
        Ok(g)
    }

    /// Checks an input shape: `in_channels` channels, height and width at least
    /// `2^stages` (every pooling keeps a row and a column).
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        crate::ops::check_channels(input, self.in_channels)?;
        let least = 1usize << self.widths.len();
        fail_if(input[2] < least || input[3] < least, "input", || {
            format!("height and width must be at least 2^stages = {least}, got {input:?}")
        })
    }
}
