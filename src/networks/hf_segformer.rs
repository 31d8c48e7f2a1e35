//! SegFormer as Hugging Face transformers builds it ([`HfSegformer`]:
//! `SegformerForSemanticSegmentation(SegformerConfig)`), under the names of its
//! checkpoints (`segformer.encoder.*`, `decode_head.*`), so the `model.safetensors` of the
//! Hub's SegFormer models (`nvidia/segformer-b0-finetuned-ade-512-512` .. `-b5-`, the
//! Cityscapes ones, and their fine-tunes) load as they are, configured by the `config.json`
//! beside them ([`HfSegformerConfig::from_config_json`]).
//!
//! The encoder is SegFormer's Mix Transformer (see [`MixTransformerConfig`]) with
//! transformers' names: `patch_embeddings.{i}` (`proj`, `layer_norm`), `block.{i}.{j}`
//! (`layer_norm_1`, `attention.self.query` / `key` / `value` / `sr` / `layer_norm`,
//! `attention.output.dense`, `layer_norm_2`, `mlp.dense1` / `dwconv.dwconv` / `dense2`)
//! and `layer_norm.{i}`; every layer norm at PyTorch's default eps (1e-5, where smp's
//! blocks use 1e-6). The decode head projects each stage's map to `decoder_hidden_size`
//! channels (`linear_c.{i}.proj`), resizes them bilinearly (corners not aligned) to the
//! first stage's size, concatenates them deepest first and fuses them with a 1x1
//! convolution, batch norm and ReLU (`linear_fuse`, `batch_norm`; folded into the
//! projections on the GPU as for smp's Segformer); `classifier` gives the logits at the
//! first stage's size (a quarter of the input's, each side rounded up), as transformers'
//! `forward` returns them. [`HfSegformerConfig::resize_to_input`] resizes them to the
//! input's size (bilinear, corners not aligned), as its image processor's
//! `post_process_semantic_segmentation` does. The input is the processor's normalised
//! `pixel_values`.

use super::mix_transformer::{MitLayout, MitNames};
use super::smp_segformer::AllMlpDecoder;
use super::MixTransformerConfig;
use crate::blocks::{Architecture, ConvBnAct, Graph, Model};
use crate::error::{positive, Error, Result};
use crate::gpu::Gpu;
use crate::ops::conv::Conv2dParams;
use crate::ops::setters;
use crate::ops::upsample::UpsampleMode;
use crate::weights::{key, StateDict};

/// The configuration of transformers' `SegformerForSemanticSegmentation`: its
/// `SegformerConfig`'s fields (four encoder blocks; `hidden_act` GELU, as every
/// published model has it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HfSegformerConfig {
    /// Input channels (`num_channels`, 3).
    pub num_channels: usize,
    /// Channels of the four stages (`hidden_sizes`).
    pub hidden_sizes: [usize; 4],
    /// Transformer layers of each stage (`depths`).
    pub depths: [usize; 4],
    /// Attention heads of each stage (`num_attention_heads`).
    pub num_attention_heads: [usize; 4],
    /// Spatial reduction of the keys and values of each stage (`sr_ratios`; 1: none).
    pub sr_ratios: [usize; 4],
    /// Kernel of each stage's patch embedding (`patch_sizes`, `[7, 3, 3, 3]`), padded by
    /// half of it.
    pub patch_sizes: [usize; 4],
    /// Stride of each stage's patch embedding (`strides`, `[4, 2, 2, 2]`).
    pub strides: [usize; 4],
    /// The Mix-FFN's hidden channels over the stage's (`mlp_ratios`, `[4, 4, 4, 4]`).
    pub mlp_ratios: [usize; 4],
    /// Channels of the decode head (`decoder_hidden_size`: 256 for B0 and B1, 768 for
    /// B2 to B5).
    pub decoder_hidden_size: usize,
    /// Classes of the logits (`num_labels`: 150 for ADE20K, 19 for Cityscapes).
    pub num_labels: usize,
    /// Whether the logits are resized to the input's size (default `false`: the
    /// quarter-size logits `forward` returns).
    pub resize_to_input: bool,
}

impl HfSegformerConfig {
    /// SegFormer-B0 .. B5 (`variant` 0 to 5) with `num_labels` classes, as the Hub's
    /// `nvidia/segformer-b{variant}-*` configurations have them; another variant is a
    /// typed error naming `variant`.
    pub fn b(variant: usize, num_labels: usize) -> Result<Self> {
        let depths = match variant {
            0 | 1 => [2, 2, 2, 2],
            2 => [3, 4, 6, 3],
            3 => [3, 4, 18, 3],
            4 => [3, 8, 27, 3],
            5 => [3, 6, 40, 3],
            other => {
                return Err(Error::InvalidParam {
                    name: "variant",
                    reason: format!("SegFormer has B0 to B5, got B{other}"),
                })
            }
        };
        let (hidden_sizes, decoder_hidden_size) = match variant {
            0 => ([32, 64, 160, 256], 256),
            1 => ([64, 128, 320, 512], 256),
            _ => ([64, 128, 320, 512], 768),
        };
        Ok(HfSegformerConfig {
            num_channels: 3,
            hidden_sizes,
            depths,
            num_attention_heads: [1, 2, 5, 8],
            sr_ratios: [8, 4, 2, 1],
            patch_sizes: [7, 3, 3, 3],
            strides: [4, 2, 2, 2],
            mlp_ratios: [4; 4],
            decoder_hidden_size,
            num_labels,
            resize_to_input: false,
        })
    }

    /// By a Hub name: `nvidia/segformer-b{0-5}-...` or `nvidia/mit-b{0-5}` (the
    /// organisation optional), or `b0` .. `b5`; another name is a typed error naming
    /// `name`.
    pub fn from_name(name: &str, num_labels: usize) -> Result<Self> {
        let model = name.rsplit('/').next().unwrap_or(name);
        let tail = model
            .strip_prefix("segformer-")
            .or_else(|| model.strip_prefix("mit-"))
            .unwrap_or(model);
        let variant = match tail.split('-').next() {
            Some(v) if v.len() == 2 && v.starts_with('b') => v[1..].parse::<usize>().ok(),
            _ => None,
        };
        match variant {
            Some(v) if v <= 5 => Self::b(v, num_labels),
            _ => Err(Error::InvalidParam {
                name: "name",
                reason: format!(
                    "{name:?} names no SegFormer: nvidia/segformer-b0-... to -b5-..., \
                     nvidia/mit-b0 .. b5, or b0 .. b5"
                ),
            }),
        }
    }

    /// From the `config.json` a SegFormer checkpoint comes with (transformers'
    /// `SegformerConfig`, as `save_pretrained` writes it): the fields it leaves out take
    /// `SegformerConfig`'s defaults, and the classes are `id2label`'s (2, transformers'
    /// default, without it). Text that is not JSON, a field of the wrong type, and
    /// configurations this network does not build (`num_encoder_blocks` other than 4,
    /// `hidden_act` other than GELU, `reshape_last_stage` false, a `model_type` other than
    /// `segformer`) are typed errors naming the field.
    pub fn from_config_json(json: &str) -> Result<Self> {
        use serde_json::Value;
        let invalid = |name: &'static str, reason: String| Error::InvalidParam { name, reason };
        let config: Value =
            serde_json::from_str(json).map_err(|e| invalid("config", format!("not JSON: {e}")))?;
        let field = |name: &str| config.get(name).filter(|v| !v.is_null());
        let count = |name: &'static str, v: &Value| {
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| invalid(name, format!("expected a count, got {v}")))
        };
        let one = |name: &'static str, default: usize| match field(name) {
            Some(v) => count(name, v),
            None => Ok(default),
        };
        let four = |name: &'static str, default: [usize; 4]| -> Result<[usize; 4]> {
            let Some(v) = field(name) else {
                return Ok(default);
            };
            let list = v
                .as_array()
                .ok_or_else(|| invalid(name, format!("expected a list, got {v}")))?;
            let values = list
                .iter()
                .map(|x| count(name, x))
                .collect::<Result<Vec<_>>>()?;
            <[usize; 4]>::try_from(values.as_slice()).map_err(|_| {
                invalid(
                    name,
                    format!("four encoder blocks take four values, got {}", list.len()),
                )
            })
        };
        let text = |name: &'static str, default: &str, want: &[&str]| -> Result<()> {
            let got = match field(name) {
                Some(v) => v
                    .as_str()
                    .ok_or_else(|| invalid(name, format!("expected a string, got {v}")))?
                    .to_string(),
                None => default.to_string(),
            };
            crate::error::fail_if(!want.contains(&got.as_str()), name, || {
                format!("{got:?}: this network builds {want:?}")
            })
        };
        text("model_type", "segformer", &["segformer"])?;
        text("hidden_act", "gelu", &["gelu"])?;
        crate::error::fail_if(
            one("num_encoder_blocks", 4)? != 4,
            "num_encoder_blocks",
            || "SegFormer's four encoder blocks are built".to_string(),
        )?;
        if let Some(v) = field("reshape_last_stage") {
            crate::error::fail_if(v.as_bool() != Some(true), "reshape_last_stage", || {
                format!("the decode head reads the last stage as a map (true), got {v}")
            })?;
        }
        let num_labels = match field("id2label") {
            Some(Value::Object(labels)) => labels.len(),
            Some(v) => return Err(invalid("id2label", format!("expected an object, got {v}"))),
            None => one("num_labels", 2)?,
        };
        let b0 = Self::b(0, num_labels)?;
        Ok(HfSegformerConfig {
            num_channels: one("num_channels", b0.num_channels)?,
            hidden_sizes: four("hidden_sizes", b0.hidden_sizes)?,
            depths: four("depths", b0.depths)?,
            num_attention_heads: four("num_attention_heads", b0.num_attention_heads)?,
            sr_ratios: four("sr_ratios", b0.sr_ratios)?,
            patch_sizes: four("patch_sizes", b0.patch_sizes)?,
            strides: four("strides", b0.strides)?,
            mlp_ratios: four("mlp_ratios", b0.mlp_ratios)?,
            decoder_hidden_size: one("decoder_hidden_size", b0.decoder_hidden_size)?,
            num_labels,
            resize_to_input: false,
        })
    }

    /// The encoder as [`MixTransformerConfig`] (its single `mlp_ratio` unused: the
    /// layout carries each stage's).
    fn encoder(&self) -> MixTransformerConfig {
        MixTransformerConfig {
            embed_dims: self.hidden_sizes,
            num_heads: self.num_attention_heads,
            depths: self.depths,
            sr_ratios: self.sr_ratios,
            mlp_ratio: self.mlp_ratios[0],
        }
    }
}

setters!(HfSegformerConfig {
    /// Sets the input channels.
    num_channels: usize,
    /// Sets the decode head's channels.
    decoder_hidden_size: usize,
    /// Sets whether the logits are resized to the input's size.
    resize_to_input: bool,
});

/// transformers' SegFormer for semantic segmentation: input `[N, num_channels, H, W]`,
/// output the logits `[N, num_labels, H1, W1]` at the first stage's size (`H1 =
/// floor((H - 1) / 4) + 1` with the published patch embedding), or `[N, num_labels, H, W]`
/// with `resize_to_input`: see [`HfSegformerConfig`].
pub type HfSegformer = Model<HfSegformerConfig>;

impl Architecture for HfSegformerConfig {
    /// Checks every size and count (positive; the heads dividing their stage's
    /// channels).
    fn validate(&self) -> Result<()> {
        self.encoder().validate()?;
        let mut named = vec![
            ("num_channels", self.num_channels),
            ("decoder_hidden_size", self.decoder_hidden_size),
            ("num_labels", self.num_labels),
        ];
        for s in 0..4 {
            named.extend([
                ("patch_sizes", self.patch_sizes[s]),
                ("strides", self.strides[s]),
                ("mlp_ratios", self.mlp_ratios[s]),
            ]);
        }
        positive(&named)
    }

    /// Loads `segformer.encoder` and `decode_head` (`linear_c.{i}.proj`, `linear_fuse`,
    /// `batch_norm`, `classifier`) under `prefix`.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let mut g = Graph::new();
        let x = g.input();
        let layout = MitLayout {
            names: MitNames::HuggingFace,
            patches: std::array::from_fn(|s| (self.patch_sizes[s], self.strides[s])),
            mlp_ratios: self.mlp_ratios,
        };
        let encoder = key(prefix, "segformer.encoder");
        // Features: the input twice (smp's placeholders), then the four stages.
        let features = self.encoder().append_with(
            &mut g,
            x,
            (gpu, sd, &encoder),
            (self.num_channels, 5, 32),
            layout,
        )?;
        let head = key(prefix, "decode_head");
        let at = |n: &str| key(&head, n);
        let linears: Vec<String> = (0..4)
            .rev()
            .map(|i| at(&format!("linear_c.{i}.proj")))
            .collect();
        let channels: Vec<usize> = self.hidden_sizes.iter().rev().copied().collect();
        let dec = self.decoder_hidden_size;
        let fuse = (at("linear_fuse"), at("batch_norm"));
        let decoder =
            AllMlpDecoder::load_named(gpu, sd, (&channels, dec), &linears, (&fuse.0, &fuse.1))?;
        let stages: Vec<_> = features[2..].iter().rev().copied().collect();
        let y = g.add_sized(at("linear_fuse"), decoder, &stages, &[features[2]]);
        let p = Conv2dParams::new(dec, self.num_labels, 1);
        let classifier = ConvBnAct::load(gpu, sd, p, &at("classifier"), None, 0.0)?;
        let mut logits = g.add(at("classifier"), classifier, &[y]);
        if self.resize_to_input {
            let bilinear = UpsampleMode::Bilinear {
                align_corners: false,
            };
            logits = g.resize_like("resize", bilinear, logits, x);
        }
        g.set_outputs(&[logits]);
        Ok(g)
    }

    /// Checks an input shape: `num_channels` channels (the layers check the rest).
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        crate::ops::check_channels(input, self.num_channels)
    }
}
