//! Fast-SCNN (Poudel et al. 2019), the real-time semantic segmentation network, as
//! Tramac/Fast-SCNN-pytorch's `models/fast_scnn.py` defines it (the implementation its
//! Cityscapes checkpoint `fast_scnn_citys.pth` comes from), under its state-dict names, so
//! that checkpoint loads as it is.
//!
//! Learning to downsample (`learning_to_downsample.*`: a 3x3 convolution at stride 2
//! without padding, then two depthwise-separable convolutions at stride 2) gives the map
//! at 1/8; the global feature extractor (`global_feature_extractor.bottleneck1` .. `3`:
//! MobileNetV2's inverted residuals with ReLU, expansion 6, to 1/32) ends in a pyramid
//! pooling module (`ppm`: adaptive average pools to 1, 2, 3 and 6, each through a 1x1
//! convolution and resized back, bilinear with corners aligned, concatenated with its input
//! and fused); the feature fusion module (`feature_fusion`) upsamples it by 4 (bilinear,
//! corners aligned) through a depthwise 3x3 and a 1x1 convolution and adds the 1/8 map's
//! 1x1 projection, then ReLU; the classifier (`classifier`: two depthwise-separable
//! convolutions and a 1x1 convolution with bias) gives the logits, resized to the input's
//! size (bilinear, corners aligned). With `aux` an auxiliary head (`auxlayer`) on the 1/8
//! map follows as a second output.
//!
//! Here each inverted residual runs as MobileNetV2's do (fused where `select_kernel` picks
//! it), the fusion's sum and ReLU in the 1/8 projection's store. The two paths meet only
//! where the 1/8 map's sides (`ceil(ceil(((H - 3) / 2 + 1) / 2) / 2)`, the first
//! convolution unpadded) are multiples of 4 (1024 x 2048, 512 x 1024 and 256 x 256 are):
//! elsewhere PyTorch fails and this is a typed error. `tests/golden/third_party/fast_scnn`
//! holds the PyTorch file the tests compare with.

use crate::blocks::{conv_bn, mbconv_graph, Architecture, ConvBnAct, Graph, Model, Op, ValueId};
use crate::error::{fail_if, positive, Result};
use crate::gpu::Gpu;
use crate::ops::conv::{Conv2dParams, ResidualJoin};
use crate::ops::pool::AdaptiveAvgPool2dParams;
use crate::ops::upsample::{UpsampleMode, UpsampleParams};
use crate::ops::{setters, Activation};
use crate::weights::{key, StateDict};

/// Input channels.
const IMAGE: usize = 3;
/// Batch norm's eps (PyTorch's default).
const EPS: f32 = 1e-5;
/// The inverted residuals' expansion (`t`).
const EXPAND: usize = 6;

/// The configuration of a Fast-SCNN: `FastSCNN(num_classes, aux)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FastScnnConfig {
    /// Classes of the logits (`num_classes`; 19 for Cityscapes).
    pub num_classes: usize,
    /// The auxiliary head on the 1/8 map (`aux`, default `false`): its logits, resized to
    /// the input's size, follow the main ones.
    pub aux: bool,
}

impl FastScnnConfig {
    /// `FastSCNN(num_classes)`: the logits alone.
    pub fn new(num_classes: usize) -> Self {
        FastScnnConfig {
            num_classes,
            aux: false,
        }
    }
}

setters!(FastScnnConfig {
    /// Sets whether the auxiliary head's logits follow the main ones (`aux`).
    aux: bool,
});

/// A Fast-SCNN: input `[N, 3, H, W]` (see the module's note on sizes), output the logits
/// `[N, num_classes, H, W]` (and with `aux` the auxiliary head's after them).
pub type FastScnn = Model<FastScnnConfig>;

/// Where the weights are and the graph being built.
struct Builder<'a> {
    gpu: &'a Gpu,
    sd: &'a StateDict,
    prefix: &'a str,
    g: Graph,
}

impl Builder<'_> {
    /// The convolution `{seq}.{i}` with its batch norm `{seq}.{i + 1}` (a `Sequential`'s).
    fn seq_conv_bn(&self, seq: &str, i: usize, p: Conv2dParams) -> Result<ConvBnAct> {
        let at = |j: usize| key(self.prefix, &format!("{seq}.{j}"));
        conv_bn(self.gpu, self.sd, p, &at(i), &at(i + 1), EPS)
    }

    /// The convolution `name` (with bias) without a batch norm.
    fn plain_conv(&self, name: &str, p: Conv2dParams) -> Result<ConvBnAct> {
        ConvBnAct::load(self.gpu, self.sd, p, &key(self.prefix, name), None, 0.0)
    }

    /// `_ConvBNReLU` / `_DWConv` under `name` (`{name}.conv.0` and `.1`) on `x`.
    fn conv_bn_relu(&mut self, name: &str, x: ValueId, p: Conv2dParams) -> Result<ValueId> {
        let layer = self.seq_conv_bn(&key(name, "conv"), 0, p.activation(Activation::Relu))?;
        Ok(self.g.add(name, layer, &[x]))
    }

    /// `_DSConv(cin, cout, stride)` under `name` on `x`: depthwise 3x3 and 1x1, each with
    /// batch norm and ReLU.
    fn separable(
        &mut self,
        name: &str,
        x: ValueId,
        (cin, cout, stride): (usize, usize, usize),
    ) -> Result<ValueId> {
        let relu = Activation::Relu;
        let seq = key(name, "conv");
        let p = Conv2dParams::depthwise(cin, 1, 3)
            .stride(stride)
            .padding(1)
            .bias(false);
        let dw = self.seq_conv_bn(&seq, 0, p.activation(relu))?;
        let y = self.g.add(key(&seq, "0"), dw, &[x]);
        let p = Conv2dParams::new(cin, cout, 1).bias(false).activation(relu);
        let pw = self.seq_conv_bn(&seq, 3, p)?;
        Ok(self.g.add(key(&seq, "3"), pw, &[y]))
    }

    /// `LinearBottleneck(cin, cout, 6, stride)` under `name`: MobileNetV2's inverted
    /// residual with ReLU (`block.0` expand, `block.1` depthwise, `block.2` / `.3`
    /// projection).
    fn bottleneck(&self, name: &str, (cin, cout, stride): (usize, usize, usize)) -> Result<Graph> {
        let hidden = EXPAND * cin;
        let relu = Activation::Relu;
        let block = key(name, "block");
        let p = Conv2dParams::new(cin, hidden, 1)
            .bias(false)
            .activation(relu);
        let expand = self.seq_conv_bn(&key(&block, "0.conv"), 0, p)?;
        let p = Conv2dParams::depthwise(hidden, 1, 3)
            .stride(stride)
            .padding(1)
            .bias(false)
            .activation(relu);
        let depthwise = self.seq_conv_bn(&key(&block, "1.conv"), 0, p)?;
        let p = Conv2dParams::new(hidden, cout, 1).bias(false);
        let project = self.seq_conv_bn(&block, 2, p)?;
        let skip = stride == 1 && cin == cout;
        let layers = (Some(expand), depthwise, None, project);
        mbconv_graph(
            self.gpu,
            skip,
            layers,
            ["block.0", "block.1", "se", "block.2"],
        )
    }

    /// `x` resized bilinearly, corners aligned, to the size of `like`.
    fn resize_like(&mut self, name: String, x: ValueId, like: ValueId) -> ValueId {
        let mode = UpsampleMode::Bilinear {
            align_corners: true,
        };
        self.g.resize_like(name, mode, x, like)
    }

    /// `GlobalFeatureExtractor(64, [64, 96, 128], 128, 6, [3, 3, 3])` on the 1/8 map.
    fn global_features(&mut self, x: ValueId) -> Result<ValueId> {
        let gfe = "global_feature_extractor";
        let stages = [(64, 64, 2), (64, 96, 2), (96, 128, 1)];
        let mut y = x;
        for (s, (cin, cout, stride)) in stages.into_iter().enumerate() {
            for j in 0..3 {
                let name = format!("{gfe}.bottleneck{}.{j}", s + 1);
                let shape = if j == 0 {
                    (cin, cout, stride)
                } else {
                    (cout, cout, 1)
                };
                let block = self.bottleneck(&name, shape)?;
                y = self.g.add(name, block, &[y]);
            }
        }
        // The pyramid pooling module.
        let ppm = key(gfe, "ppm");
        let mut parts = vec![y];
        for (k, bins) in [1, 2, 3, 6].into_iter().enumerate() {
            let name = key(&ppm, &format!("conv{}", k + 1));
            let pool = Op::AdaptiveAvgPool(AdaptiveAvgPool2dParams::new(bins));
            let pooled = self.g.add(key(&name, "pool"), pool, &[y]);
            let p = Conv2dParams::new(128, 32, 1).bias(false);
            let z = self.conv_bn_relu(&name, pooled, p)?;
            parts.push(self.resize_like(key(&name, "up"), z, y));
        }
        let joined = self.g.add(key(&ppm, "cat"), Op::Concat, &parts);
        let p = Conv2dParams::new(256, 128, 1).bias(false);
        self.conv_bn_relu(&key(&ppm, "out"), joined, p)
    }
}

impl Architecture for FastScnnConfig {
    /// Checks that there is a class.
    fn validate(&self) -> Result<()> {
        positive(&[("num_classes", self.num_classes)])
    }

    /// Loads `learning_to_downsample.*`, `global_feature_extractor.*`, `feature_fusion.*`
    /// and `classifier.*` (with `aux` also `auxlayer.*`).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let mut b = Builder {
            gpu,
            sd,
            prefix,
            g: Graph::new(),
        };
        let x = b.g.input();
        let n = self.num_classes;
        // Learning to downsample: the first convolution has no padding.
        let ltd = "learning_to_downsample";
        let p = Conv2dParams::new(IMAGE, 32, 3).stride(2).bias(false);
        let y = b.conv_bn_relu(&key(ltd, "conv"), x, p)?;
        let y = b.separable(&key(ltd, "dsconv1"), y, (32, 48, 2))?;
        let higher = b.separable(&key(ltd, "dsconv2"), y, (48, 64, 2))?;
        let lower = b.global_features(higher)?;
        // Feature fusion: relu(conv_higher_res(higher) + conv_lower_res(dwconv(up4(lower)))).
        let ff = "feature_fusion";
        let up = UpsampleParams::bilinear(true).scale_factor(4.0);
        let lower = b.g.add(key(ff, "up"), Op::Upsample(up), &[lower]);
        let p = Conv2dParams::depthwise(128, 1, 3).padding(1).bias(false);
        let lower = b.conv_bn_relu(&key(ff, "dwconv"), lower, p)?;
        let lower_res = b.seq_conv_bn(
            &key(ff, "conv_lower_res"),
            0,
            Conv2dParams::new(128, 128, 1),
        )?;
        let lower = b.g.add(key(ff, "conv_lower_res"), lower_res, &[lower]);
        let higher_res = b
            .seq_conv_bn(
                &key(ff, "conv_higher_res"),
                0,
                Conv2dParams::new(64, 128, 1),
            )?
            .with_residual(ResidualJoin::AddThen(Activation::Relu))?;
        let fused =
            b.g.add(key(ff, "conv_higher_res"), higher_res, &[higher, lower]);
        // The classifier (its dropout is the identity in inference).
        let y = b.separable("classifier.dsconv1", fused, (128, 128, 1))?;
        let y = b.separable("classifier.dsconv2", y, (128, 128, 1))?;
        let p = Conv2dParams::new(128, n, 1);
        let classifier = b.plain_conv("classifier.conv.1", p)?;
        let logits = b.g.add("classifier.conv.1", classifier, &[y]);
        let mut outs = vec![b.resize_like("up".into(), logits, x)];
        if self.aux {
            let p = Conv2dParams::new(64, 32, 3).padding(1).bias(false);
            let conv = b.seq_conv_bn("auxlayer", 0, p.activation(Activation::Relu))?;
            let y = b.g.add("auxlayer.0", conv, &[higher]);
            let p = Conv2dParams::new(32, n, 1);
            let classifier = b.plain_conv("auxlayer.4", p)?;
            let y = b.g.add("auxlayer.4", classifier, &[y]);
            outs.push(b.resize_like("auxlayer.up".into(), y, x));
        }
        b.g.set_outputs(&outs);
        Ok(b.g)
    }

    /// Checks an input shape: 3 channels, and a 1/8 map whose sides are positive
    /// multiples of 4, where the global features upsampled by 4 meet it (as in PyTorch,
    /// which fails elsewhere).
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        crate::ops::check_channels(input, IMAGE)?;
        // The unpadded 3x3 convolution at stride 2, then two padded ones at stride 2.
        let eighth = |v: usize| (v >= 3).then(|| ((v - 3) / 2 + 1).div_ceil(2).div_ceil(2));
        let fits = |v: usize| eighth(v).is_some_and(|e| e.is_multiple_of(4));
        fail_if(!fits(input[2]) || !fits(input[3]), "input", || {
            format!(
                "height and width must leave a 1/8 map (after the unpadded 3x3 convolution at \
                 stride 2 and two padded ones) whose sides are multiples of 4, where the \
                 global features upsampled by 4 meet it (256, 512, 1024 and 2048 do), got \
                 {input:?}"
            )
        })
    }
}
