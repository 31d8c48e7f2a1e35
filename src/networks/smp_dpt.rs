//! segmentation_models_pytorch's `DPT` (`smp.DPT(encoder_name="tu-vit_...",
//! encoder_depth, encoder_output_indices, decoder_readout, decoder_intermediate_channels,
//! decoder_fusion_channels, in_channels, classes, activation, aux_params)`, Ranftl et al.,
//! 2021) on timm's plain Vision Transformers ([`VitConfig`]).
//!
//! The features of `encoder_depth` transformer blocks (by default spread evenly: the
//! 3rd, 6th, 9th and 12th of twelve) are read out with the class token (`"cat"`: a linear
//! layer over each patch token concatenated with the class token, then GELU; `"add"`: the
//! prefix tokens' mean added; `"ignore"`), reassembled to strides 4, 8, 16, 32 (a 1x1
//! convolution, a transposed convolution up or a strided 3x3 down, a 3x3 convolution to
//! `decoder_fusion_channels`), and fused deepest first by residual convolution units, each
//! fusion resized twice as large (bilinear, `align_corners=True`) and projected; the head
//! is a 3x3 convolution with batch norm and ReLU, a 1x1 to the classes and a bilinear
//! resize by 2.
//!
//! On the GPU the `"cat"` readout's linear layer runs as its two halves: a 1x1 convolution
//! over the patch tokens and one over the class token, whose per-channel result is added
//! with the GELU in one pass ([`channel::add_channels`](crate::ops::channel::add_channels)).

use crate::blocks::{conv_bn, Architecture, ConvBnAct, Graph, Model, Op, ValueId};
use crate::error::{fail_if, positive, Error, Result};
use crate::gpu::Gpu;
use crate::ops::conv::{Conv2dParams, ResidualJoin};
use crate::ops::conv_transpose::ConvTranspose2dParams;
use crate::ops::pool::GlobalPool;
use crate::ops::upsample::UpsampleParams;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

use super::smp_unet::set_smp_outputs;
use super::vit::{linear_block, VitConfig};
use super::{HeadActivation, SmpAuxParams};

/// How DPT reads the prefix (class) tokens into the patch tokens (`decoder_readout`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DptReadout {
    /// `"ignore"`: the patch tokens alone.
    Ignore,
    /// `"add"`: the mean of the prefix tokens added to every patch token.
    Add,
    /// `"cat"` (the default): `GELU(Linear(cat(patch, class token)))` per patch token.
    #[default]
    Cat,
}

impl DptReadout {
    /// smp's names `"ignore"`, `"add"`, `"cat"`; another is an error naming
    /// `decoder_readout`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "ignore" => Ok(DptReadout::Ignore),
            "add" => Ok(DptReadout::Add),
            "cat" => Ok(DptReadout::Cat),
            other => Err(Error::InvalidParam {
                name: "decoder_readout",
                reason: format!("{other:?} is not one of \"ignore\", \"add\", \"cat\""),
            }),
        }
    }
}

/// The configuration of an smp `DPT`.
#[derive(Clone, Debug, PartialEq)]
pub struct SmpDptConfig {
    /// The Vision Transformer (`encoder_name`, `tu-` and a [`VitConfig::from_timm_name`]
    /// name; its `in_chans` is the model's `in_channels`).
    pub encoder: VitConfig,
    /// Features taken from the transformer (`encoder_depth`, 4): one per intermediate
    /// channel count.
    pub encoder_depth: usize,
    /// The blocks whose outputs are the features (`encoder_output_indices`; negative
    /// counts from the end; `None`, the default: `encoder_depth` blocks spread evenly,
    /// smp's `int(depth / n * k) - 1`).
    pub encoder_output_indices: Option<Vec<i64>>,
    /// The class-token readout (`decoder_readout`, `"cat"`).
    pub decoder_readout: DptReadout,
    /// Channels of each feature's reassembly (`decoder_intermediate_channels`,
    /// `(256, 512, 1024, 1024)`).
    pub decoder_intermediate_channels: Vec<usize>,
    /// Channels of the fusion (`decoder_fusion_channels`, 256).
    pub decoder_fusion_channels: usize,
    /// Classes (`classes`, 1).
    pub classes: usize,
    /// The head's activation, after its resize (`activation`, none by default).
    pub activation: HeadActivation,
    /// smp's classification head on the deepest feature (`aux_params`; `None`, the
    /// default).
    pub aux_params: Option<SmpAuxParams>,
}

impl SmpDptConfig {
    /// `smp.DPT(encoder_name, in_channels=in_channels, classes=classes)`: the encoder name
    /// is `tu-` and a [`VitConfig::from_timm_name`] name, as smp requires.
    pub fn new(encoder_name: &str, in_channels: usize, classes: usize) -> Result<Self> {
        let name = encoder_name
            .strip_prefix("tu-")
            .ok_or_else(|| Error::InvalidParam {
                name: "encoder_name",
                reason: format!(
                    "DPT takes timm encoders only: the name must start with \"tu-\", got \
                     {encoder_name:?}"
                ),
            })?;
        let mut encoder = VitConfig::from_timm_name(name)?;
        encoder.in_chans = in_channels;
        Ok(SmpDptConfig {
            encoder,
            encoder_depth: 4,
            encoder_output_indices: None,
            decoder_readout: DptReadout::Cat,
            decoder_intermediate_channels: vec![256, 512, 1024, 1024],
            decoder_fusion_channels: 256,
            classes,
            activation: HeadActivation::Identity,
            aux_params: None,
        })
    }

    /// The encoder's blocks whose outputs are the features, ascending (timm returns them
    /// in block order), or an error naming `encoder_output_indices` or `encoder_depth`.
    pub fn output_indices(&self) -> Result<Vec<usize>> {
        let blocks = self.encoder.depth;
        let depth = self.encoder_depth;
        fail_if(depth == 0 || depth > blocks, "encoder_depth", || {
            format!("must be 1 to the encoder's {blocks} blocks, got {depth}")
        })?;
        let mut indices = match &self.encoder_output_indices {
            None => (1..=depth).map(|k| blocks * k / depth - 1).collect(),
            Some(given) => {
                fail_if(given.len() != depth, "encoder_output_indices", || {
                    format!("needs encoder_depth = {depth} indices, got {given:?}")
                })?;
                let n = blocks as i64;
                let mut out = Vec::new();
                for &i in given {
                    fail_if(i < -n || i >= n, "encoder_output_indices", || {
                        format!("{i} is outside [-{n}, {n}) (the encoder has {n} blocks)")
                    })?;
                    out.push(i.rem_euclid(n) as usize);
                }
                out
            }
        };
        indices.sort_unstable();
        let unique = indices.windows(2).all(|w| w[0] != w[1]);
        fail_if(!unique, "encoder_output_indices", || {
            format!("name one block twice: {indices:?}")
        })?;
        Ok(indices)
    }
}

crate::ops::setters!(SmpDptConfig {
    /// Sets `encoder_depth`.
    encoder_depth: usize,
    /// Sets `encoder_output_indices`.
    encoder_output_indices: Option<Vec<i64>>,
    /// Sets `decoder_readout`.
    decoder_readout: DptReadout,
    /// Sets `decoder_intermediate_channels`.
    decoder_intermediate_channels: Vec<usize>,
    /// Sets `decoder_fusion_channels`.
    decoder_fusion_channels: usize,
    /// Sets the head's activation.
    activation: HeadActivation,
    /// Sets `aux_params` (a classification head: a second output).
    aux_params: Option<SmpAuxParams>,
});

/// An smp `DPT` for inference: input `[N, in_channels, img_size.0, img_size.1]` (the
/// encoder's fixed size; with its `dynamic_img_size`, any height and width divisible by
/// the patch size whose fused maps line up), output `[N, classes, H, W]`.
pub type SmpDpt = Model<SmpDptConfig>;

impl Architecture for SmpDptConfig {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        self.encoder.validate()?;
        positive(&[
            ("classes", self.classes),
            ("decoder_fusion_channels", self.decoder_fusion_channels),
        ])?;
        let mid = &self.decoder_intermediate_channels;
        fail_if(
            mid.len() != self.encoder_depth || mid.contains(&0),
            "decoder_intermediate_channels",
            || {
                format!(
                    "needs encoder_depth = {} positive counts, got {mid:?}",
                    self.encoder_depth
                )
            },
        )?;
        self.output_indices().map(|_| ())
    }

    /// Loads `encoder.model`, `decoder.projection_blocks`, `decoder.reassemble_blocks`,
    /// `decoder.fusion_blocks` and `segmentation_head.head` under `prefix`.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let at = |n: &str| key(prefix, n);
        let vit = &self.encoder;
        let dim = vit.embed_dim;
        let fusion = self.decoder_fusion_channels;
        let mut g = Graph::new();
        let x = g.input();
        let indices = self.output_indices()?;
        let features = vit.append(&mut g, x, (gpu, sd, &at("encoder.model")), &indices)?;
        let has_prefix = vit.num_prefix_tokens() > 0;
        let mut reassembled = Vec::new();
        for (i, &(map, tokens)) in features.iter().enumerate() {
            let name = at(&format!("decoder.projection_blocks.{i}"));
            let y = match (self.decoder_readout, has_prefix) {
                (DptReadout::Ignore, _) | (DptReadout::Add, false) => map,
                (DptReadout::Add, true) => {
                    let mean = match vit.num_prefix_tokens() {
                        1 => tokens,
                        _ => g.add(
                            format!("{name}.mean"),
                            Op::GlobalPool(GlobalPool::Avg),
                            &[tokens],
                        ),
                    };
                    g.add(name, Op::AddChannels(Activation::None), &[map, mean])
                }
                (DptReadout::Cat, false) => {
                    let p = Conv2dParams::new(dim, dim, 1).activation(Activation::Gelu);
                    let linear = ConvBnAct::load_linear(gpu, sd, p, &key(&name, "project.0"))?;
                    g.add(name, linear, &[map])
                }
                (DptReadout::Cat, true) => {
                    let cls = g.add(
                        format!("{name}.cls"),
                        Op::Tokens {
                            start: 0,
                            len: Some(1),
                        },
                        &[tokens],
                    );
                    let [pixels, class] = readout_halves(gpu, sd, &key(&name, "project.0"), dim)?;
                    let pixels = g.add(format!("{name}.pixels"), pixels, &[map]);
                    let class = g.add(format!("{name}.class"), class, &[cls]);
                    g.add(name, Op::AddChannels(Activation::Gelu), &[pixels, class])
                }
            };
            let mid = self.decoder_intermediate_channels[i];
            let factor = reassemble_factor(vit.patch_size, i);
            let block = at(&format!("decoder.reassemble_blocks.{i}"));
            reassembled.push(reassemble(
                &mut g,
                y,
                (gpu, sd, &block),
                (dim, mid, fusion),
                factor,
            )?);
        }
        let mut fused: Option<ValueId> = None;
        for (j, &feature) in reassembled.iter().rev().enumerate() {
            let block = at(&format!("decoder.fusion_blocks.{j}"));
            let unit = |g: &mut Graph, x: ValueId, n: &str| {
                residual_conv_unit(g, x, (gpu, sd, &key(&block, n)), fusion)
            };
            let mut y = unit(&mut g, feature, "residual_conv_block1")?;
            if let Some(previous) = fused {
                y = g.add(format!("{block}.add"), Op::Add, &[y, previous]);
            }
            y = unit(&mut g, y, "residual_conv_block2")?;
            let up = UpsampleParams::bilinear(true).scale_factor(2.0);
            y = g.add(format!("{block}.interpolate"), Op::Upsample(up), &[y]);
            let project = Conv2dParams::new(fusion, fusion, 1);
            let project = ConvBnAct::load(gpu, sd, project, &key(&block, "project"), None, 0.0)?;
            fused = Some(g.add(key(&block, "project"), project, &[y]));
        }
        let y = fused.ok_or_else(|| Error::InvalidParam {
            name: "encoder_depth",
            reason: "DPT needs at least one feature".into(),
        })?;
        let head = at("segmentation_head.head");
        let conv = Conv2dParams::new(fusion, fusion, 3)
            .padding(1)
            .bias(false)
            .activation(Activation::Relu);
        let conv = conv_bn(gpu, sd, conv, &key(&head, "0"), &key(&head, "1"), 1e-5)?;
        let y = g.add(key(&head, "0"), conv, &[y]);
        let classifier = Conv2dParams::new(fusion, self.classes, 1);
        let classifier = ConvBnAct::load(gpu, sd, classifier, &key(&head, "4"), None, 0.0)?;
        let y = g.add(key(&head, "4"), classifier, &[y]);
        let up = UpsampleParams::bilinear(true).scale_factor(2.0);
        let y = g.add(at("segmentation_head.interpolate"), Op::Upsample(up), &[y]);
        let y = self.activation.append(&mut g, y);
        let deepest = features.last().map(|f| f.0).unwrap_or(x);
        set_smp_outputs(
            &mut g,
            y,
            self.aux_params,
            (deepest, dim),
            (gpu, sd, prefix),
        )?;
        Ok(g)
    }

    /// Checks an input shape: `in_channels` channels, height and width divisible by the
    /// patch size (smp's rule), and exactly the encoder's `img_size` unless it takes
    /// other sizes (`dynamic_img_size`; timm's fixed-size patch embedding otherwise).
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        let vit = &self.encoder;
        crate::ops::check_channels(input, vit.in_chans)?;
        let (h, w) = vit.img_size;
        fail_if(
            !vit.dynamic_img_size && (input[2], input[3]) != (h, w),
            "input",
            || {
                format!(
                    "the encoder takes {h}x{w} images (its img_size; dynamic_img_size for \
                     others), got {}x{}",
                    input[2], input[3]
                )
            },
        )?;
        let p = vit.patch_size;
        fail_if(
            !input[2].is_multiple_of(p) || !input[3].is_multiple_of(p),
            "input",
            || format!("height and width must be divisible by the patch size {p}, got {input:?}"),
        )?;
        // Each fusion level doubles the map below it and adds it to its own: the
        // reassembled maps must halve from one level to the next (a 3 x 5 patch grid
        // does not: its stride-2 map is 2 x 3), or PyTorch's add fails.
        let levels = self.output_indices()?.len();
        for (axis, side) in [("height", input[2]), ("width", input[3])] {
            let grid = side / p;
            let sides: Vec<usize> = (0..levels)
                .map(|i| reassembled_side(grid, reassemble_factor(p, i)))
                .collect();
            let bad = sides.windows(2).position(|w| w[0] != 2 * w[1]);
            fail_if(bad.is_some(), "input", || {
                let j = bad.unwrap_or(0);
                format!(
                    "the {axis} {side} makes a patch grid of {grid}, whose reassembled maps \
                     ({sides:?} for the fusion levels) do not halve from level to level: \
                     level {} doubles to {}, level {j} has {}",
                    j + 1,
                    2 * sides[j + 1],
                    sides[j]
                )
            })?;
        }
        Ok(())
    }
}

/// DPT's resampling of the `i`-th feature's patch grid: `patch_size / 2^(i + 2)`.
fn reassemble_factor(patch_size: usize, i: usize) -> f64 {
    patch_size as f64 / 2f64.powi(i.min(60) as i32 + 2)
}

/// The side of a feature map of `grid` patches after [`reassemble`] by `factor`.
fn reassembled_side(grid: usize, factor: f64) -> usize {
    if factor > 1.0 {
        grid * factor as usize
    } else if factor < 1.0 {
        grid.saturating_sub(1) / (1.0 / factor) as usize + 1
    } else {
        grid
    }
}

/// The `"cat"` readout's `Linear(2C, C)` (`{linear}.weight` `[C, 2C]`, `bias`) as the
/// 1x1 convolution of the patch tokens (the first `C` columns, with the bias) and that of
/// the class token (the rest, no bias).
fn readout_halves(gpu: &Gpu, sd: &StateDict, linear: &str, c: usize) -> Result<[ConvBnAct; 2]> {
    let weight = sd.get(&key(linear, "weight"), &[c, 2 * c])?;
    let bias = sd.get1(&key(linear, "bias"), c)?;
    let half = |i: usize| weight.slice(ndarray::s![.., i * c..(i + 1) * c]);
    Ok([
        linear_block(gpu, (linear, "pixels"), half(0), Some(bias.view()))?,
        linear_block(gpu, (linear, "class"), half(1), None)?,
    ])
}

/// A `ReassembleBlock` under `block`: `project_to_out_channel` (1x1 to `mid`), the
/// resampling by `factor` (above 1 a transposed convolution of kernel and stride
/// `int(factor)`, 1 none, below 1 a 3x3 convolution of stride `int(1 / factor)`),
/// `project_to_feature_dim` (3x3 to `out`, no bias).
fn reassemble(
    g: &mut Graph,
    x: ValueId,
    (gpu, sd, block): (&Gpu, &StateDict, &str),
    (cin, mid, out): (usize, usize, usize),
    factor: f64,
) -> Result<ValueId> {
    let at = |n: &str| key(block, n);
    let project = Conv2dParams::new(cin, mid, 1);
    let project = ConvBnAct::load(gpu, sd, project, &at("project_to_out_channel"), None, 0.0)?;
    let mut y = g.add(at("project_to_out_channel"), project, &[x]);
    if factor > 1.0 {
        let k = factor as usize;
        let up = ConvTranspose2dParams::new(mid, mid, k).stride(k);
        let up = crate::blocks::ConvTransposeNode::load(gpu, sd, up, &at("upsample"))?;
        y = g.add(at("upsample"), up, &[y]);
    } else if factor < 1.0 {
        let stride = (1.0 / factor) as usize;
        let down = Conv2dParams::new(mid, mid, 3).stride(stride).padding(1);
        let down = ConvBnAct::load(gpu, sd, down, &at("upsample"), None, 0.0)?;
        y = g.add(at("upsample"), down, &[y]);
    }
    let to_feature = Conv2dParams::new(mid, out, 3).padding(1).bias(false);
    let to_feature = ConvBnAct::load(
        gpu,
        sd,
        to_feature,
        &at("project_to_feature_dim"),
        None,
        0.0,
    )?;
    Ok(g.add(at("project_to_feature_dim"), to_feature, &[y]))
}

/// A `ResidualConvBlock` under `unit`: `x + bn2(conv2(relu(bn1(conv1(relu(x))))))`.
fn residual_conv_unit(
    g: &mut Graph,
    x: ValueId,
    (gpu, sd, unit): (&Gpu, &StateDict, &str),
    c: usize,
) -> Result<ValueId> {
    let at = |n: &str| key(unit, n);
    let relu = g.add(at("activation"), Op::Activation(Activation::Relu), &[x]);
    let conv = |act: Activation| {
        Conv2dParams::new(c, c, 3)
            .padding(1)
            .bias(false)
            .activation(act)
    };
    let c1 = conv_bn(
        gpu,
        sd,
        conv(Activation::Relu),
        &at("conv_1"),
        &at("batch_norm_1"),
        1e-5,
    )?;
    let y = g.add(at("conv_1"), c1, &[relu]);
    let c2 = conv_bn(
        gpu,
        sd,
        conv(Activation::None),
        &at("conv_2"),
        &at("batch_norm_2"),
        1e-5,
    )?
    .with_residual(ResidualJoin::AfterActivation)?;
    Ok(g.add(at("conv_2"), c2, &[y, x]))
}
