//! FCN-8s (Long et al. 2015) as the original Caffe model and its PyTorch port
//! (wkentaro/pytorch-fcn's `FCN8s`) define it: a VGG16 backbone whose first convolution
//! pads by 100, `fc6` / `fc7` as 7x7 and 1x1 convolutions, 1x1 score layers on `fc7`,
//! `pool4` and `pool3`, learned transposed-convolution upsampling 2x (`upscore2`), 2x
//! (`upscore_pool4`) and 8x (`upscore8`), the skips added after cropping at offsets 5 and
//! 9, and the output cropped at offset 31 to the input's size. Names follow that port
//! (`conv1_1` .. `conv5_3`, `fc6`, `fc7`, `score_fr`, `score_pool4`, `score_pool3`,
//! `upscore2`, `upscore_pool4`, `upscore8`); widths are configurable (the tests use a
//! narrow one; the full model has 134 M parameters).
//!
//! A crop of a 1x1 convolution's output equals the 1x1 convolution of the cropped input,
//! so the skips are cropped before their score layers, which add the upsampled scores in
//! their store: each skip is one crop and one convolution.

use crate::blocks::{Architecture, ConvBnAct, ConvTransposeNode, Graph, Model, Op};
use crate::error::{positive, Result};
use crate::gpu::Gpu;
use crate::ops::conv::{Conv2dParams, ResidualJoin};
use crate::ops::conv_transpose::ConvTranspose2dParams;
use crate::ops::pool::MaxPool2dParams;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// The configuration of an FCN-8s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fcn8sConfig {
    /// Classes (`n_class`, 21 for PASCAL VOC).
    pub num_classes: usize,
    /// The VGG16 stages' widths (64, 128, 256, 512, 512).
    pub widths: [usize; 5],
    /// `fc6` / `fc7` channels (4096).
    pub fc_channels: usize,
}

impl Fcn8sConfig {
    /// The original FCN-8s: VGG16 widths and 4096-channel `fc6` / `fc7`.
    pub fn new(num_classes: usize) -> Self {
        Fcn8sConfig {
            num_classes,
            widths: [64, 128, 256, 512, 512],
            fc_channels: 4096,
        }
    }

    /// Sets the widths (a narrower model of the same structure).
    pub fn widths(mut self, widths: [usize; 5], fc_channels: usize) -> Self {
        self.widths = widths;
        self.fc_channels = fc_channels;
        self
    }
}

/// FCN-8s for inference: input `[N, 3, H, W]` (any size), output the class scores
/// `[N, num_classes, H, W]`.
pub type Fcn8s = Model<Fcn8sConfig>;

/// Convolutions per VGG16 stage.
const CONVS: [usize; 5] = [2, 2, 3, 3, 3];

impl Architecture for Fcn8sConfig {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        positive(&[
            ("num_classes", self.num_classes),
            ("fc_channels", self.fc_channels),
            ("widths", self.widths.iter().copied().min().unwrap_or(0)),
        ])
    }

    /// Loads the layers named as in the module docs.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let at = |n: &str| key(prefix, n);
        let load = |p: Conv2dParams, n: &str| ConvBnAct::load(gpu, sd, p, &at(n), None, 0.0);
        let relu = Activation::Relu;
        let classes = self.num_classes;
        let mut g = Graph::new();
        let x = g.input();
        let mut y = x;
        let mut cin = 3;
        let mut pools = Vec::with_capacity(5);
        let pool = Op::MaxPool(MaxPool2dParams::new(2).stride(2).ceil_mode(true));
        for (s, (&w, &n)) in self.widths.iter().zip(&CONVS).enumerate() {
            for i in 0..n {
                // The first convolution pads by 100 (the original's trick so that any
                // input leaves fc6 a positive size; the crops undo it).
                let pad = if s == 0 && i == 0 { 100 } else { 1 };
                let p = Conv2dParams::new(cin, w, 3).padding(pad).activation(relu);
                let name = format!("conv{}_{}", s + 1, i + 1);
                y = g.add(name.clone(), load(p, &name)?, &[y]);
                cin = w;
            }
            y = g.add_multi(format!("pool{}", s + 1), pool.clone(), &[y], 2)[0];
            pools.push(y);
        }
        let fc = self.fc_channels;
        let fc6 = load(Conv2dParams::new(cin, fc, 7).activation(relu), "fc6")?;
        y = g.add("fc6", fc6, &[y]);
        let fc7 = load(Conv2dParams::new(fc, fc, 1).activation(relu), "fc7")?;
        y = g.add("fc7", fc7, &[y]);
        y = g.add(
            "score_fr",
            load(Conv2dParams::new(fc, classes, 1), "score_fr")?,
            &[y],
        );
        let up = |k: usize, s: usize, n: &str| {
            let p = ConvTranspose2dParams::new(classes, classes, k)
                .stride(s)
                .bias(false);
            ConvTransposeNode::load(gpu, sd, p, &at(n))
        };
        let upscore2 = g.add("upscore2", up(4, 2, "upscore2")?, &[y]);
        // score_pool4c = score_pool4(pool4)[5:5 + h, 5:5 + w]; fuse = upscore2 + it.
        let skip = |g: &mut Graph, pooled, offset, like, cin: usize, n: &str| -> Result<_> {
            let cropped = g.add_sized(
                format!("{n} crop"),
                Op::CropLike(offset),
                &[pooled],
                &[like],
            );
            let score = load(Conv2dParams::new(cin, classes, 1), n)?
                .with_residual(ResidualJoin::AfterActivation)?;
            Ok(g.add(n, score, &[cropped, like]))
        };
        let fuse4 = skip(
            &mut g,
            pools[3],
            (5, 5),
            upscore2,
            self.widths[3],
            "score_pool4",
        )?;
        let up4 = g.add("upscore_pool4", up(4, 2, "upscore_pool4")?, &[fuse4]);
        let fuse3 = skip(&mut g, pools[2], (9, 9), up4, self.widths[2], "score_pool3")?;
        let up8 = g.add("upscore8", up(16, 8, "upscore8")?, &[fuse3]);
        let out = g.add_sized("crop", Op::CropLike((31, 31)), &[up8], &[x]);
        g.set_outputs(&[out]);
        Ok(g)
    }

    /// Checks an input shape: 3 channels.
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        crate::ops::check_channels(input, 3)
    }
}
