//! U-Net (Ronneberger et al. 2015) as milesial/Pytorch-UNet writes it in PyTorch: double
//! 3x3 convolutions with batch norm and ReLU (padding 1), 2x2 max pooling down, 2x2
//! stride-2 transposed convolutions up (or, with `bilinear`, a 2x bilinear resize with
//! `align_corners=True` and halved widths), the upsampled map zero-padded to its skip's
//! size (so any input of at least `2^depth` pixels a side works, as in PyTorch) and
//! concatenated after the skip, a 1x1 classifier. Depth and base width are configurable;
//! names are that repository's (`inc`, `down{i}`, `up{i}`, `outc`), so its checkpoints
//! load as they are. `tests/golden/make_golden_classic.py` holds the PyTorch module the
//! tests compare with.

use crate::blocks::{
    conv_bn, Architecture, ConvBnAct, ConvTransposeNode, Graph, Model, Op, ValueId,
};
use crate::error::{fail_if, positive, Result};
use crate::gpu::Gpu;
use crate::ops::conv::Conv2dParams;
use crate::ops::conv_transpose::ConvTranspose2dParams;
use crate::ops::pool::MaxPool2dParams;
use crate::ops::setters;
use crate::ops::upsample::UpsampleParams;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// The configuration of a U-Net.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UNetConfig {
    /// Input channels (milesial's `n_channels`).
    pub in_channels: usize,
    /// Classes (`n_classes`).
    pub num_classes: usize,
    /// Channels of the first stage (64); stage `i` has `base_channels << i`.
    pub base_channels: usize,
    /// Poolings (4).
    pub depth: usize,
    /// milesial's `bilinear`: upsample with `nn.Upsample(scale_factor=2, mode='bilinear',
    /// align_corners=True)` instead of transposed convolutions; the deepest stage and every
    /// up stage but the last then have half the channels (`factor = 2`), and each up
    /// stage's first convolution `in_channels / 2` (its `mid_channels`).
    pub bilinear: bool,
}

impl UNetConfig {
    /// milesial's `UNet(n_channels, n_classes, bilinear=False)`: base width 64, depth 4.
    pub fn new(in_channels: usize, num_classes: usize) -> Self {
        UNetConfig {
            in_channels,
            num_classes,
            base_channels: 64,
            depth: 4,
            bilinear: false,
        }
    }
}

setters!(UNetConfig {
    /// Sets the base width.
    base_channels: usize,
    /// Sets the depth.
    depth: usize,
    /// Sets the upsampling (bilinear resizes instead of transposed convolutions).
    bilinear: bool,
});

/// A U-Net for inference: input `[N, in_channels, H, W]` with H and W at least
/// `2^depth`, output the class logits `[N, num_classes, H, W]`.
pub type UNet = Model<UNetConfig>;

/// milesial's `DoubleConv` under `prefix` (`double_conv.0/1` and `.3/4`), appended after
/// `x`: `cin -> mid -> cout` channels.
fn double_conv(
    g: &mut Graph,
    x: ValueId,
    (gpu, sd, prefix): (&Gpu, &StateDict, &str),
    (cin, mid, cout): (usize, usize, usize),
) -> Result<ValueId> {
    let p = |cin, cout| {
        Conv2dParams::new(cin, cout, 3)
            .padding(1)
            .bias(false)
            .activation(Activation::Relu)
    };
    let at = |i: &str| key(prefix, &format!("double_conv.{i}"));
    let first = conv_bn(gpu, sd, p(cin, mid), &at("0"), &at("1"), 1e-5)?;
    let y = g.add(at("0"), first, &[x]);
    let second = conv_bn(gpu, sd, p(mid, cout), &at("3"), &at("4"), 1e-5)?;
    Ok(g.add(at("3"), second, &[y]))
}

impl Architecture for UNetConfig {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        positive(&[
            ("in_channels", self.in_channels),
            ("num_classes", self.num_classes),
            ("base_channels", self.base_channels),
            ("depth", self.depth),
        ])?;
        fail_if(
            self.depth > 16 || (self.base_channels << self.depth) > 1 << 20,
            "depth",
            || {
                format!(
                    "at most 16 and base_channels << depth at most 2^20, got depth {} with \
                     {} base channels",
                    self.depth, self.base_channels
                )
            },
        )
    }

    /// Loads `inc`, `down{i}.maxpool_conv.1`, `up{i}.up` (transposed convolutions only),
    /// `up{i}.conv` and `outc.conv`.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let (base, depth) = (self.base_channels, self.depth);
        // milesial's `factor`: with bilinear upsampling the deepest stage and the up stages
        // but the last have half the channels.
        let factor = if self.bilinear { 2 } else { 1 };
        let at = |n: &str| key(prefix, n);
        let mut g = Graph::new();
        let x = g.input();
        let mut skips = vec![double_conv(
            &mut g,
            x,
            (gpu, sd, &at("inc")),
            (self.in_channels, base, base),
        )?];
        let pool = Op::MaxPool(MaxPool2dParams::new(2));
        for i in 1..=depth {
            let down = at(&format!("down{i}"));
            let before = *skips.last().expect("the stem's output");
            let pooled = g.add_multi(key(&down, "pool"), pool.clone(), &[before], 2)[0];
            let conv = key(&down, "maxpool_conv.1");
            let out = if i == depth {
                (base << i) / factor
            } else {
                base << i
            };
            let width = (base << (i - 1), out, out);
            skips.push(double_conv(&mut g, pooled, (gpu, sd, &conv), width)?);
        }
        let mut y = skips.pop().expect("the deepest stage");
        for i in 1..=depth {
            let c = base << (depth - i + 1);
            let out = if i == depth { base } else { (c / 2) / factor };
            let up = at(&format!("up{i}"));
            let upsampled = if self.bilinear {
                let resize = UpsampleParams::bilinear(true).scale_factor(2.0);
                g.add(key(&up, "up"), Op::Upsample(resize), &[y])
            } else {
                let transposed = ConvTranspose2dParams::new(c, c / 2, 2).stride(2);
                let transposed = ConvTransposeNode::load(gpu, sd, transposed, &key(&up, "up"))?;
                g.add(key(&up, "up"), transposed, &[y])
            };
            let skip = skips.pop().expect("one skip per stage");
            // Odd sizes pooled down come back one short: padded to the skip's size.
            let padded = g.add_sized(key(&up, "pad"), Op::PadLike, &[upsampled], &[skip]);
            let joined = g.add(key(&up, "cat"), Op::Concat, &[skip, padded]);
            let mid = if self.bilinear { c / 2 } else { out };
            y = double_conv(&mut g, joined, (gpu, sd, &key(&up, "conv")), (c, mid, out))?;
        }
        let classifier = Conv2dParams::new(base, self.num_classes, 1);
        let classifier = ConvBnAct::load(gpu, sd, classifier, &at("outc.conv"), None, 0.0)?;
        let out = g.add("outc", classifier, &[y]);
        g.set_outputs(&[out]);
        Ok(g)
    }

    /// Checks an input shape: `in_channels` channels, height and width at least
    /// `2^depth` (every pooling keeps a pixel).
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        crate::ops::check_channels(input, self.in_channels)?;
        let step = 1usize << self.depth;
        fail_if(input[2] < step || input[3] < step, "input", || {
            format!("height and width must be at least 2^depth = {step}, got {input:?}")
        })
    }
}
