//! SegFormer's Mix Transformer encoders (`mit_b0` .. `mit_b5`) as
//! segmentation_models_pytorch builds them (`MixVisionTransformerEncoder`, NVIDIA's
//! SegFormer code): four stages, each an overlapping patch embedding (a strided
//! convolution, 7x7 / 4 then 3x3 / 2, and a layer norm over the channels), transformer
//! blocks and a layer norm. A block is `x + attn(norm1(x))` then `x + mlp(norm2(x))`:
//! efficient self-attention whose keys and values come from the map reduced by a
//! `sr_ratio` x `sr_ratio` strided convolution and a layer norm, then the Mix-FFN (a
//! linear layer, a 3x3 depthwise convolution, GELU, a linear layer).
//!
//! The tokens stay an NCHW map throughout: the linear layers are 1x1 convolutions, the
//! layer norms normalise each pixel's channels, attention reads its heads from channel
//! groups ([`ops::sdpa`](crate::ops::sdpa)), and both residuals are added in the stores
//! of the projections. smp's features are the input, an empty (0-channel) stride-2
//! placeholder, and the four stages' outputs.

use crate::blocks::{ConvBnAct, Graph, LayerNorm2dNode, SdpaNode, ValueId};
use crate::error::{fail_if, Error, Result};
use crate::gpu::Gpu;
use crate::ops::conv::{Conv2dParams, ResidualJoin};
use crate::ops::sdpa::SdpaParams;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

use super::smp_unet::smp_dilation;
use super::vit::split_linear;

/// smp's layer norms of the blocks and after each stage (`partial(LayerNorm, eps=1e-6)`).
const BLOCK_EPS: f32 = 1e-6;
/// The patch embeddings' and the attention's spatial-reduction layer norms (PyTorch's
/// default; Hugging Face's `SegformerModel` keeps it for every layer norm).
const EMBED_EPS: f32 = 1e-5;

/// Whose state-dict names (and layer-norm epsilons) a Mix Transformer is loaded with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MitNames {
    /// smp's (NVIDIA's SegFormer code): `patch_embed{i}`, `block{i}.{j}` with `attn.kv`
    /// one linear layer, `norm{i}`; the blocks' and stages' layer norms at eps 1e-6.
    Smp,
    /// Hugging Face's `SegformerEncoder`: `patch_embeddings.{i}`, `block.{i}.{j}` with
    /// `attention.self.key` and `.value` apart, `layer_norm.{i}`; every layer norm at
    /// PyTorch's default eps.
    HuggingFace,
}

impl MitNames {
    /// Stage `s`'s patch embedding (0-based) and its layer norm's name in it.
    fn embed(self, s: usize) -> (String, &'static str) {
        match self {
            MitNames::Smp => (format!("patch_embed{}", s + 1), "norm"),
            MitNames::HuggingFace => (format!("patch_embeddings.{s}"), "layer_norm"),
        }
    }

    /// Block `b` of stage `s`.
    fn block(self, s: usize, b: usize) -> String {
        match self {
            MitNames::Smp => format!("block{}.{b}", s + 1),
            MitNames::HuggingFace => format!("block.{s}.{b}"),
        }
    }

    /// Stage `s`'s closing layer norm.
    fn stage_norm(self, s: usize) -> String {
        match self {
            MitNames::Smp => format!("norm{}", s + 1),
            MitNames::HuggingFace => format!("layer_norm.{s}"),
        }
    }

    /// The epsilon of the blocks' and stages' layer norms.
    fn block_eps(self) -> f32 {
        match self {
            MitNames::Smp => BLOCK_EPS,
            MitNames::HuggingFace => EMBED_EPS,
        }
    }

    /// A block's layer under smp's name, in this naming.
    fn layer(self, smp: &'static str) -> &'static str {
        if self == MitNames::Smp {
            return smp;
        }
        match smp {
            "norm1" => "layer_norm_1",
            "attn.q" => "attention.self.query",
            "attn.sr" => "attention.self.sr",
            "attn.norm" => "attention.self.layer_norm",
            "attn.proj" => "attention.output.dense",
            "norm2" => "layer_norm_2",
            "mlp.fc1" => "mlp.dense1",
            "mlp.fc2" => "mlp.dense2",
            other => other, // mlp.dwconv.dwconv
        }
    }
}

/// A Mix Transformer's layout beyond smp's configuration: the names, each stage's patch
/// embedding (kernel, stride) and Mix-FFN ratio.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MitLayout {
    pub(crate) names: MitNames,
    pub(crate) patches: [(usize, usize); 4],
    pub(crate) mlp_ratios: [usize; 4],
}

/// A Mix Transformer's configuration (smp's `mix_transformer_encoders[name]["params"]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MixTransformerConfig {
    /// Channels of the four stages (`embed_dims`).
    pub embed_dims: [usize; 4],
    /// Attention heads of each stage (`num_heads`).
    pub num_heads: [usize; 4],
    /// Transformer blocks of each stage (`depths`).
    pub depths: [usize; 4],
    /// Spatial reduction of the keys and values in each stage (`sr_ratios`; 1: none).
    pub sr_ratios: [usize; 4],
    /// Hidden channels of the Mix-FFN over the stage's (`mlp_ratios`, 4 in every model).
    pub mlp_ratio: usize,
}

impl MixTransformerConfig {
    /// smp's `mit_b0` .. `mit_b5`; any other name is an error naming `encoder_name`.
    pub fn from_name(encoder_name: &str) -> Result<Self> {
        let depths = match encoder_name {
            "mit_b0" | "mit_b1" => [2, 2, 2, 2],
            "mit_b2" => [3, 4, 6, 3],
            "mit_b3" => [3, 4, 18, 3],
            "mit_b4" => [3, 8, 27, 3],
            "mit_b5" => [3, 6, 40, 3],
            other => {
                return Err(Error::InvalidParam {
                    name: "encoder_name",
                    reason: format!("{other:?} is not one of mit_b0 .. mit_b5"),
                })
            }
        };
        let embed_dims = if encoder_name == "mit_b0" {
            [32, 64, 160, 256]
        } else {
            [64, 128, 320, 512]
        };
        Ok(MixTransformerConfig {
            embed_dims,
            num_heads: [1, 2, 5, 8],
            depths,
            sr_ratios: [8, 4, 2, 1],
            mlp_ratio: 4,
        })
    }

    /// Checks that every width, head count, depth and ratio is positive and that the
    /// heads divide their stage's channels.
    pub fn validate(&self) -> Result<()> {
        let mut named = vec![("mlp_ratio", self.mlp_ratio)];
        for s in 0..4 {
            named.extend([
                ("embed_dims", self.embed_dims[s]),
                ("num_heads", self.num_heads[s]),
                ("depths", self.depths[s]),
                ("sr_ratios", self.sr_ratios[s]),
            ]);
        }
        crate::error::positive(&named)?;
        for (&c, &h) in self.embed_dims.iter().zip(&self.num_heads) {
            fail_if(!c.is_multiple_of(h), "num_heads", || {
                format!("{h} heads do not divide a stage's {c} channels")
            })?;
        }
        Ok(())
    }

    /// smp's `out_channels`: the input's, 0 (the empty stride-2 placeholder), then the
    /// stages'.
    pub(crate) fn feature_channels(&self, in_channels: usize) -> Vec<usize> {
        let mut c = vec![in_channels, 0];
        c.extend(self.embed_dims);
        c
    }

    /// The encoder (`{prefix}.patch_embed{i}`, `block{i}.{j}`, `norm{i}`) on `x` as far as
    /// smp runs it for `depth` features, the stride-16 and stride-32 stages dilated for
    /// `output_stride` as smp's `make_dilated` does (every convolution of the stage at
    /// stride 1, dilated, padded by half its kernel times the rate). Returns the
    /// features, the input's first and `x` again in place of the empty stride-2 one
    /// (its channel count, 0, marks it).
    pub(crate) fn append(
        &self,
        g: &mut Graph,
        x: ValueId,
        ctx: (&Gpu, &StateDict, &str),
        (in_channels, depth, output_stride): (usize, usize, usize),
    ) -> Result<Vec<ValueId>> {
        let layout = MitLayout {
            names: MitNames::Smp,
            patches: [(7, 4), (3, 2), (3, 2), (3, 2)],
            mlp_ratios: [self.mlp_ratio; 4],
        };
        self.append_with(g, x, ctx, (in_channels, depth, output_stride), layout)
    }

    /// [`MixTransformerConfig::append`] with the names, patch embeddings and Mix-FFN
    /// ratios of `layout`.
    pub(crate) fn append_with(
        &self,
        g: &mut Graph,
        x: ValueId,
        ctx: (&Gpu, &StateDict, &str),
        (in_channels, depth, output_stride): (usize, usize, usize),
        layout: MitLayout,
    ) -> Result<Vec<ValueId>> {
        let (gpu, sd, prefix) = ctx;
        let names = layout.names;
        let at = |n: &str| key(prefix, n);
        let mut features = vec![x, x];
        let mut y = x;
        let mut cin = in_channels;
        for s in 0..depth.saturating_sub(1).min(4) {
            let dim = self.embed_dims[s];
            // smp dilates the stride-16 and stride-32 stages only (its `get_stages`).
            let dilation = smp_dilation(4 << s, output_stride);
            let (k, stride) = layout.patches[s];
            let (embed, embed_norm) = names.embed(s);
            let embed = at(&embed);
            // Padded by half the kernel (`patch_size // 2`), also where kernel = stride.
            let conv = Conv2dParams::new(cin, dim, k).stride(stride).padding(k / 2);
            let conv = dilated(conv, dilation);
            let conv = ConvBnAct::load(gpu, sd, conv, &key(&embed, "proj"), None, 0.0)?;
            y = g.add(key(&embed, "proj"), conv, &[y]);
            let norm_name = key(&embed, embed_norm);
            let norm = LayerNorm2dNode::load(gpu, sd, (dim, EMBED_EPS), &norm_name)?;
            y = g.add(norm_name, norm, &[y]);
            for b in 0..self.depths[s] {
                let block = at(&names.block(s, b));
                let shape = (dim, self.num_heads[s], self.sr_ratios[s], dilation);
                let mix = (names, layout.mlp_ratios[s]);
                y = self.block(g, y, (gpu, sd, &block), shape, mix)?;
            }
            let name = at(&names.stage_norm(s));
            let norm = LayerNorm2dNode::load(gpu, sd, (dim, names.block_eps()), &name)?;
            y = g.add(name, norm, &[y]);
            features.push(y);
            cin = dim;
        }
        features.truncate(depth + 1);
        Ok(features)
    }

    /// One transformer `Block` of `dim` channels under `block`.
    fn block(
        &self,
        g: &mut Graph,
        x: ValueId,
        (gpu, sd, block): (&Gpu, &StateDict, &str),
        (dim, heads, sr_ratio, dilation): (usize, usize, usize, usize),
        (names, mlp_ratio): (MitNames, usize),
    ) -> Result<ValueId> {
        let at = |smp: &'static str| key(block, names.layer(smp));
        let linear = |cin: usize, cout: usize, name: &'static str| {
            ConvBnAct::load_linear(gpu, sd, Conv2dParams::new(cin, cout, 1), &at(name))
        };
        let eps = names.block_eps();
        let norm = LayerNorm2dNode::load(gpu, sd, (dim, eps), &at("norm1"))?;
        let normed = g.add(at("norm1"), norm, &[x]);
        let q = g.add(at("attn.q"), linear(dim, dim, "attn.q")?, &[normed]);
        let mut kv_source = normed;
        if sr_ratio > 1 {
            let sr = dilated(
                Conv2dParams::new(dim, dim, sr_ratio).stride(sr_ratio),
                dilation,
            );
            let sr = ConvBnAct::load(gpu, sd, sr, &at("attn.sr"), None, 0.0)?;
            let reduced = g.add(at("attn.sr"), sr, &[normed]);
            let norm = LayerNorm2dNode::load(gpu, sd, (dim, EMBED_EPS), &at("attn.norm"))?;
            kv_source = g.add(at("attn.norm"), norm, &[reduced]);
        }
        let (k, v) = match names {
            // `kv` (`[2 * dim, dim]`) as two projections: the keys its first `dim` rows,
            // the values the rest, so that attention reads each from a map of its own.
            MitNames::Smp => {
                let [k, v]: [ConvBnAct; 2] = split_linear(gpu, sd, &at("attn.kv"), dim, (2, true))?
                    .try_into()
                    .map_err(|_| Error::Gpu("kv: two parts".into()))?;
                (k, v)
            }
            MitNames::HuggingFace => (
                linear(dim, dim, "attention.self.key")?,
                linear(dim, dim, "attention.self.value")?,
            ),
        };
        let k = g.add(at("attn.kv.k"), k, &[kv_source]);
        let v = g.add(at("attn.kv.v"), v, &[kv_source]);
        let attn = g.add(at("attn"), SdpaNode(SdpaParams::new(heads)), &[q, k, v]);
        let proj = linear(dim, dim, "attn.proj")?.with_residual(ResidualJoin::AfterActivation)?;
        let x = g.add(at("attn.proj"), proj, &[attn, x]);
        let norm = LayerNorm2dNode::load(gpu, sd, (dim, eps), &at("norm2"))?;
        let normed = g.add(at("norm2"), norm, &[x]);
        let hidden = dim * mlp_ratio;
        let h = g.add(at("mlp.fc1"), linear(dim, hidden, "mlp.fc1")?, &[normed]);
        let dw =
            dilated(Conv2dParams::depthwise(hidden, 1, 3), dilation).activation(Activation::Gelu);
        let dw = ConvBnAct::load(gpu, sd, dw, &at("mlp.dwconv.dwconv"), None, 0.0)?;
        let h = g.add(at("mlp.dwconv.dwconv"), dw, &[h]);
        let fc2 = linear(hidden, dim, "mlp.fc2")?.with_residual(ResidualJoin::AfterActivation)?;
        Ok(g.add(at("mlp.fc2"), fc2, &[h, x]))
    }
}

/// smp's `replace_strides_with_dilation` on a convolution of a dilated stage (stride 1,
/// the rate, half the kernel times the rate as padding); the convolution padded by half
/// its kernel when `dilation` is 1 (the Mix Transformer's own padding; the 2x2 spatial
/// reduction of stage 3 has none, and a kernel of 1 pads 0).
fn dilated(p: Conv2dParams, dilation: usize) -> Conv2dParams {
    let k = p.kernel_size.0;
    if dilation > 1 {
        p.stride(1).dilation(dilation).padding((k / 2) * dilation)
    } else if p.stride.0 == k {
        p // the spatial reductions: kernel = stride, no padding
    } else {
        p.padding(k / 2)
    }
}
