//! torchvision's ConvNeXt `features` (`convnext_tiny`, `_small`, `_base`, `_large`): a 4x4
//! stride-4 stem with `LayerNorm2d`; four stages of `CNBlock`s (a 7x7 depthwise
//! convolution, a layer norm over each pixel's channels (eps 1e-6), a linear layer to 4x
//! the channels with GELU, a linear layer back, scaled per channel by `layer_scale`, plus
//! the input); between stages a `LayerNorm2d` and a 2x2 stride-2 convolution doubling the
//! channels. The linear layers run as 1x1 convolutions, the layer scale folded into the
//! second one's weights and bias and the input added in its store: a block is four
//! dispatches. Names are torchvision's (`features.{stage}.{i}.block.{0,2,3,5}`,
//! `.layer_scale`).
//!
//! timm's ConvNeXts ([`ConvNextConfig::timm`]: `convnext_atto` .. `convnext_xlarge`) are
//! the same network under timm's names, as smp's `tu-convnext_*` encoders hold them
//! (`stem_0` / `stem_1`, `stages_{s}.downsample.{0,1}`, `stages_{s}.blocks.{i}.conv_dw`
//! / `norm` / `mlp.fc1` / `mlp.fc2` / `gamma`; the small models' `conv_mlp` stores the
//! linear layers as 1x1 convolutions), dilated by timm's `output_stride` rule, and its
//! ConvNeXt V2s (`convnextv2_atto` .. `convnextv2_huge`, [`ConvNextConfig::grn`]): a
//! global response norm (`mlp.grn`) between each block's GELU and its second linear
//! layer instead of the layer scale; on the GPU the norm's statistics and scale are two
//! dispatches and the second linear layer applies the scale as it reads its input.

use crate::blocks::{
    Architecture, ConvBnAct, Graph, GrnScaleNode, LayerNorm2dNode, Model, ValueId,
};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::ops::conv::{Conv2dParams, ResidualJoin};
use crate::ops::norm::GlobalResponseNormParams;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// torchvision's `convnext_tiny` / `_small` / `_base` / `_large`, or one of timm's
/// ConvNeXts ([`ConvNextConfig::timm`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvNextConfig {
    /// Channels of the four stages.
    pub channels: [usize; 4],
    /// Blocks of the four stages.
    pub blocks: [usize; 4],
    /// timm's `conv_mlp` (its `atto` .. `nano` models): the block's linear layers are 1x1
    /// convolutions (`[out, in, 1, 1]` weights); the same computation.
    pub conv_mlp: bool,
    /// ConvNeXt V2 (timm's `convnextv2_*`, `use_grn`, no layer scale): a global response
    /// norm (`mlp.grn`) between the block's GELU and its second linear layer, which
    /// applies the norm's scale as it reads its input and holds the norm's bias in its
    /// own; `false`: ConvNeXt V1, its output scaled by the layer scale.
    pub grn: bool,
}

/// torchvision's `convnext_*().features`: the last stage's output, at 1/32 of the input.
pub type ConvNextFeatures = Model<ConvNextConfig>;

/// Every layer norm's eps.
const EPS: f32 = 1e-6;

impl ConvNextConfig {
    /// By torchvision's name: `convnext_tiny`, `convnext_small`, `convnext_base` or
    /// `convnext_large`; any other name is an error naming `arch`.
    pub fn torchvision(name: &str) -> Result<Self> {
        match name {
            "convnext_tiny" | "convnext_small" | "convnext_base" | "convnext_large" => {
                Ok(Self::timm(name).expect("one of timm's too"))
            }
            _ => Err(Error::InvalidParam {
                name: "arch",
                reason: format!(
                    "{name:?} is not one of torchvision's convnext_tiny, _small, _base, _large"
                ),
            }),
        }
    }

    /// By timm's name: `convnext_atto`, `_femto`, `_pico`, `_nano` (with `conv_mlp`),
    /// `_tiny`, `_small`, `_base`, `_large`, `_xlarge`, and ConvNeXt V2's
    /// `convnextv2_atto`, `_femto`, `_pico`, `_nano` (with `conv_mlp`), `_tiny`, `_small`,
    /// `_base`, `_large`, `_huge` (a pretrained tag after `.` ignored); `None` for any
    /// other.
    pub fn timm(name: &str) -> Option<Self> {
        let name = name.split('.').next()?;
        if let Some(size) = name.strip_prefix("convnextv2_") {
            let v1 = match size {
                "huge" => ConvNextConfig {
                    channels: [352, 704, 1408, 2816],
                    ..Self::timm("convnext_large")?
                },
                _ => Self::timm(&format!("convnext_{size}"))?,
            };
            return (size != "xlarge").then_some(ConvNextConfig { grn: true, ..v1 });
        }
        let (channels, blocks, conv_mlp) = match name {
            "convnext_atto" => ([40, 80, 160, 320], [2, 2, 6, 2], true),
            "convnext_femto" => ([48, 96, 192, 384], [2, 2, 6, 2], true),
            "convnext_pico" => ([64, 128, 256, 512], [2, 2, 6, 2], true),
            "convnext_nano" => ([80, 160, 320, 640], [2, 2, 8, 2], true),
            "convnext_tiny" => ([96, 192, 384, 768], [3, 3, 9, 3], false),
            "convnext_small" => ([96, 192, 384, 768], [3, 3, 27, 3], false),
            "convnext_base" => ([128, 256, 512, 1024], [3, 3, 27, 3], false),
            "convnext_large" => ([192, 384, 768, 1536], [3, 3, 27, 3], false),
            "convnext_xlarge" => ([256, 512, 1024, 2048], [3, 3, 27, 3], false),
            _ => return None,
        };
        Some(ConvNextConfig {
            channels,
            blocks,
            conv_mlp,
            grn: false,
        })
    }

    /// Channels of smp's features for an input of `in_channels` channels: the input's, an
    /// empty stride-2 feature's (smp's placeholder for a model that starts at 1/4), then
    /// each stage's.
    pub(crate) fn feature_channels(&self, in_channels: usize) -> Vec<usize> {
        let mut c = vec![in_channels, 0];
        c.extend(self.channels);
        c
    }

    /// timm's model under `prefix` (`stem_0`, `stem_1`, `stages_{s}.*`, taking `in_channels`
    /// channels) appended to `g` after `x` for smp's `depth` features: the input, the
    /// empty stride-2 feature (the input stands for it, as for the Mix Transformers) and
    /// the first `depth - 1` stages' outputs. Stages past `output_stride` run at stride
    /// 1, dilated by timm's rule.
    pub(crate) fn append_timm(
        &self,
        g: &mut Graph,
        x: ValueId,
        ctx: (&Gpu, &StateDict, &str),
        (in_channels, depth, output_stride): (usize, usize, usize),
    ) -> Result<Vec<ValueId>> {
        let trunk = (in_channels, depth.saturating_sub(1), output_stride);
        let mut features = vec![x, x];
        features.extend(self.append_trunk(g, x, ctx, &TIMM, trunk)?);
        Ok(features)
    }

    /// The stem and the first `stages` stages under `prefix`, named by `names`, appended
    /// to `g` after `x` (`in_channels` channels); returns each stage's output. A stage
    /// whose stride would pass `output_stride` is dilated instead (timm's rule; 32:
    /// never): its downsampling convolution at stride 1, padded as timm's `'same'`, at the
    /// previous stage's dilation (1 while the new one is 1 or 2, else 2).
    fn append_trunk(
        &self,
        g: &mut Graph,
        x: ValueId,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        names: &Names,
        (in_channels, stages, output_stride): (usize, usize, usize),
    ) -> Result<Vec<ValueId>> {
        let at = |n: &str| key(prefix, n);
        let c0 = self.channels[0];
        let stem = Conv2dParams::new(in_channels, c0, 4).stride(4);
        let stem = ConvBnAct::load(gpu, sd, stem, &at(names.stem.0), None, 0.0)?;
        let mut y = g.add(at(names.stem.0), stem, &[x]);
        let norm = LayerNorm2dNode::load(gpu, sd, (c0, EPS), &at(names.stem.1))?;
        y = g.add(at(names.stem.1), norm, &[y]);
        let (mut reached, mut dilation) = (4, 1);
        let mut outs = Vec::new();
        for (s, (&c, &n)) in self
            .channels
            .iter()
            .zip(&self.blocks)
            .enumerate()
            .take(stages)
        {
            if s > 0 {
                let mut stride = 2;
                if reached >= output_stride {
                    (dilation, stride) = (dilation * 2, 1);
                }
                reached *= stride;
                let first = if dilation <= 2 { 1 } else { 2 };
                let down = at(&(names.downsample)(s));
                let prev = self.channels[s - 1];
                let norm = LayerNorm2dNode::load(gpu, sd, (prev, EPS), &key(&down, "0"))?;
                y = g.add(key(&down, "0"), norm, &[y]);
                // timm's `'same'` for a 2x2 window at stride 1: `first` rows and columns
                // in all, the odd one after.
                let pad = if stride == 1 { first } else { 0 };
                let split = (pad / 2, pad - pad / 2);
                let conv = Conv2dParams::new(prev, c, 2)
                    .stride(stride)
                    .dilation(first)
                    .padding_asymmetric(split, split);
                let conv = ConvBnAct::load(gpu, sd, conv, &key(&down, "1"), None, 0.0)?;
                y = g.add(key(&down, "1"), conv, &[y]);
            }
            for i in 0..n {
                let block = at(&(names.block)(s, i));
                y = self.block(g, y, (gpu, sd, &block), names, (c, dilation))?;
            }
            outs.push(y);
        }
        Ok(outs)
    }

    /// One block of `c` channels under `block` on `x`, its depthwise convolution dilated
    /// by `dilation`, appended to `g`.
    fn block(
        &self,
        g: &mut Graph,
        x: ValueId,
        (gpu, sd, block): (&Gpu, &StateDict, &str),
        names: &Names,
        (c, dilation): (usize, usize),
    ) -> Result<ValueId> {
        let at = |n: &str| key(block, n);
        let dw = Conv2dParams::depthwise(c, 1, 7)
            .padding(3 * dilation)
            .dilation(dilation);
        let dw = ConvBnAct::load(gpu, sd, dw, &at(names.dw), None, 0.0)?;
        let mut y = g.add(at(names.dw), dw, &[x]);
        let norm = LayerNorm2dNode::load(gpu, sd, (c, EPS), &at(names.norm))?;
        y = g.add(at(names.norm), norm, &[y]);
        // The linear layers as 1x1 convolutions.
        let linear = |p: Conv2dParams, name: &str| match self.conv_mlp {
            true => ConvBnAct::load(gpu, sd, p, &at(name), None, 0.0),
            false => ConvBnAct::load_linear(gpu, sd, p, &at(name)),
        };
        let expand = Conv2dParams::new(c, 4 * c, 1).activation(Activation::Gelu);
        y = g.add(at(names.fc1), linear(expand, names.fc1)?, &[y]);
        if self.grn {
            // ConvNeXt V2 (timm's names only): the global response norm's scale applied by
            // the second linear layer as it reads its input, the norm's bias added to that
            // input (folded into the layer's bias), no layer scale; the block's input
            // added in its store.
            let params = GlobalResponseNormParams::new(4 * c);
            let (norm, norm_bias) = GrnScaleNode::load(gpu, sd, params, &at("mlp.grn"))?;
            let scale = g.add(at("mlp.grn"), norm, &[y]);
            let project = linear(Conv2dParams::new(4 * c, c, 1), names.fc2)?
                .with_input_offset(gpu, norm_bias.view())?
                .with_input_gate(Activation::None)?
                .with_residual(ResidualJoin::AfterActivation)?;
            return Ok(g.add(at(names.fc2), project, &[y, scale, x]));
        }
        // The layer scale (`[c, 1, 1]` in torchvision, `[c]` in timm) folded into the
        // second linear layer, the input added in its store.
        let scale = sd.get(&at(names.scale.0), &names.scale.1(c))?;
        let scale: ndarray::Array1<f32> = scale.iter().copied().collect();
        let project = linear(Conv2dParams::new(4 * c, c, 1), names.fc2)?
            .with_output_scale(gpu, scale.view())?
            .with_residual(ResidualJoin::AfterActivation)?;
        Ok(g.add(at(names.fc2), project, &[y, x]))
    }
}

/// The names of a ConvNeXt's layers: the stem's convolution and norm, stage `s`'s
/// downsampling layers (its `.0` norm and `.1` convolution), block `i` of stage `s`, and
/// a block's layers (the layer scale with its shape for `c` channels).
struct Names {
    stem: (&'static str, &'static str),
    downsample: fn(usize) -> String,
    block: fn(usize, usize) -> String,
    dw: &'static str,
    norm: &'static str,
    fc1: &'static str,
    fc2: &'static str,
    scale: (&'static str, fn(usize) -> Vec<usize>),
}

/// torchvision's names (`features.{i}`: the stem at 0, stage `s`'s blocks at `2s + 1`,
/// its downsampling at `2s`).
const TORCHVISION: Names = Names {
    stem: ("0.0", "0.1"),
    downsample: |s| (2 * s).to_string(),
    block: |s, i| format!("{}.{i}", 2 * s + 1),
    dw: "block.0",
    norm: "block.2",
    fc1: "block.3",
    fc2: "block.5",
    scale: ("layer_scale", |c| vec![c, 1, 1]),
};

/// timm's names, as its `features_only` model (smp's) flattens them: `stem_0`,
/// `stages_{s}`.
const TIMM: Names = Names {
    stem: ("stem_0", "stem_1"),
    downsample: |s| format!("stages_{s}.downsample"),
    block: |s, i| format!("stages_{s}.blocks.{i}"),
    dw: "conv_dw",
    norm: "norm",
    fc1: "mlp.fc1",
    fc2: "mlp.fc2",
    scale: ("gamma", |c| vec![c]),
};

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
        let mut g = Graph::new();
        let x = g.input();
        let trunk = (3, 4, 32);
        let outs = self.append_trunk(&mut g, x, (gpu, sd, prefix), &TORCHVISION, trunk)?;
        g.set_outputs(&outs[3..]);
        Ok(g)
    }
}
