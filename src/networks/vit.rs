//! timm's plain Vision Transformers (`VisionTransformer`: `vit_*`, `deit_*`, `deit3_*`) as
//! segmentation_models_pytorch's DPT reads them (`TimmViTEncoder`, timm's
//! `forward_intermediates`): a patch embedding (a `patch_size` x `patch_size` convolution
//! of stride `patch_size`), the class and register tokens put before the patch tokens, the
//! position embedding added (to the patch tokens only with `no_embed_class`), an optional
//! layer norm (`norm_pre`), then transformer blocks `x + ls1(attn(norm1(x)))`,
//! `x + ls2(mlp(norm2(x)))` (multi-head self-attention over every token; an MLP with GELU).
//! The outputs of chosen blocks are the features: the patch tokens as an `[N, C, h, w]`
//! map and the prefix tokens beside them (without the final norm, as smp takes them).
//!
//! The tokens are an `[N, C, 1, T]` map throughout: the linear layers are 1x1
//! convolutions, the layer norms normalise each token's channels, attention reads its heads
//! from channel groups ([`ops::sdpa`](crate::ops::sdpa)), the residuals are added in the
//! projections' stores, and the layer scales are folded into the projections' weights.

use ndarray::{s, Array4};

use crate::blocks::{ConvBnAct, Graph, HostValue, Inputs, LayerNorm2dNode, Node, Op, SdpaNode};
use crate::blocks::{Value, ValueId};
use crate::error::{fail_if, positive, Error, Result};
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::ops::conv::{Conv2dParams, ResidualJoin};
use crate::ops::copy::Pad2dParams;
use crate::ops::sdpa::SdpaParams;
use crate::ops::upsample::{upsample, UpsampleParams};
use crate::ops::{channel, Activation, Cost};
use crate::reference;
use crate::weights::{key, StateDict};

/// A plain Vision Transformer's configuration (timm's `VisionTransformer` arguments).
#[derive(Clone, Debug, PartialEq)]
pub struct VitConfig {
    /// The input size the position embedding was made for, `(height, width)` (`img_size`;
    /// timm's models take exactly this size).
    pub img_size: (usize, usize),
    /// Side of the square patches, and the stride of the patch embedding (`patch_size`).
    pub patch_size: usize,
    /// Input channels (`in_chans`).
    pub in_chans: usize,
    /// Channels of every token (`embed_dim`).
    pub embed_dim: usize,
    /// Transformer blocks (`depth`).
    pub depth: usize,
    /// Attention heads (`num_heads`; they divide `embed_dim`).
    pub num_heads: usize,
    /// Hidden channels of the MLPs (`int(embed_dim * mlp_ratio)`).
    pub mlp_hidden: usize,
    /// Whether the attention's `qkv` layer has a bias (`qkv_bias`).
    pub qkv_bias: bool,
    /// Whether a class token leads the sequence (`class_token`).
    pub class_token: bool,
    /// Register tokens after the class token (`reg_tokens`).
    pub reg_tokens: usize,
    /// Whether the position embedding covers the patch tokens only (`no_embed_class`:
    /// DeiT III, newer JAX models).
    pub no_embed_class: bool,
    /// A layer norm after the embeddings (`pre_norm`, CLIP's), which also removes the
    /// patch embedding's bias.
    pub pre_norm: bool,
    /// Whether the blocks scale their branches per channel (`init_values` set: `ls1`,
    /// `ls2`).
    pub layer_scale: bool,
    /// The layer norms' epsilon (timm's `LayerNorm`: 1e-6).
    pub eps: f32,
    /// Whether inputs of other sizes than `img_size` are taken (`dynamic_img_size`): the
    /// patch grid's position embedding is then resampled to the input's grid (bicubic,
    /// antialiased, as timm's `resample_abs_pos_embed`). Default false: exactly
    /// `img_size`.
    pub dynamic_img_size: bool,
}

impl VitConfig {
    /// A timm model name of the form `{vit,deit,deit3}_{size}_patch{p}_{img}` (a pretrained
    /// tag after a `.` is ignored): the 30 names of timm 1.0 of that form, e.g.
    /// `vit_tiny_patch16_224`, `vit_base_patch16_384.augreg_in21k`, `deit3_small_patch16_224`.
    /// Sizes: tiny (192 channels, 12 blocks, 3 heads), small (384, 12, 6), medium (512,
    /// 12, 8), base (768, 12, 12), large (1024, 24, 16), huge (1280, 32, 16); `deit3_*`
    /// adds layer scales and leaves the class token out of the position embedding.
    pub fn from_timm_name(name: &str) -> Result<Self> {
        let bad = |why: &str| Error::InvalidParam {
            name: "encoder_name",
            reason: format!("{name:?}: {why}"),
        };
        let arch = name.split('.').next().unwrap_or(name);
        let parts: Vec<&str> = arch.split('_').collect();
        let [family, size, patch, img] = parts[..] else {
            return Err(bad(
                "not of the form {vit,deit,deit3}_{size}_patch{p}_{img}",
            ));
        };
        let (embed_dim, depth, num_heads) = match size {
            "tiny" => (192, 12, 3),
            "small" => (384, 12, 6),
            "medium" => (512, 12, 8),
            "base" => (768, 12, 12),
            "large" => (1024, 24, 16),
            "huge" => (1280, 32, 16),
            _ => {
                return Err(bad(
                    "the size is not tiny, small, medium, base, large or huge",
                ))
            }
        };
        let deit3 = match family {
            "vit" | "deit" => false,
            "deit3" => true,
            _ => return Err(bad("the family is not vit, deit or deit3")),
        };
        let number = |s: Option<&str>| s.and_then(|s| s.parse::<usize>().ok());
        let patch_size =
            number(patch.strip_prefix("patch")).ok_or_else(|| bad("no patch size (`patch16`)"))?;
        let img = number(Some(img)).ok_or_else(|| bad("no image size (`224`)"))?;
        Ok(VitConfig {
            img_size: (img, img),
            patch_size,
            in_chans: 3,
            embed_dim,
            depth,
            num_heads,
            mlp_hidden: 4 * embed_dim,
            qkv_bias: true,
            class_token: true,
            reg_tokens: 0,
            no_embed_class: deit3,
            pre_norm: false,
            layer_scale: deit3,
            eps: 1e-6,
            dynamic_img_size: false,
        })
    }

    /// Checks that the sizes are positive, the heads divide the channels, the patches fit
    /// the image, and `eps` is positive.
    pub fn validate(&self) -> Result<()> {
        positive(&[
            ("img_size", self.img_size.0.min(self.img_size.1)),
            ("patch_size", self.patch_size),
            ("in_chans", self.in_chans),
            ("embed_dim", self.embed_dim),
            ("depth", self.depth),
            ("num_heads", self.num_heads),
            ("mlp_hidden", self.mlp_hidden),
        ])?;
        fail_if(
            !self.embed_dim.is_multiple_of(self.num_heads),
            "num_heads",
            || {
                format!(
                    "{} heads do not divide embed_dim {}",
                    self.num_heads, self.embed_dim
                )
            },
        )?;
        fail_if(
            self.patch_size > self.img_size.0.min(self.img_size.1),
            "patch_size",
            || {
                format!(
                    "{} is larger than img_size {:?}",
                    self.patch_size, self.img_size
                )
            },
        )?;
        fail_if(self.eps.is_nan() || self.eps <= 0.0, "eps", || {
            format!("must be positive, got {}", self.eps)
        })
    }

    /// The patch grid `(img_size / patch_size)`, rounded down as the convolution does
    /// (`(0, 0)` for a `patch_size` of 0, which `validate` refuses).
    pub fn grid(&self) -> (usize, usize) {
        let per = |side: usize| side.checked_div(self.patch_size).unwrap_or(0);
        (per(self.img_size.0), per(self.img_size.1))
    }

    /// The tokens before the patch tokens: the class token and the register tokens
    /// (`num_prefix_tokens`).
    pub fn num_prefix_tokens(&self) -> usize {
        usize::from(self.class_token) + self.reg_tokens
    }

    /// The encoder under `prefix` (`patch_embed.proj`, `cls_token`, `reg_token`,
    /// `pos_embed`, `norm_pre`, `blocks.{i}`) on `x`, run up to the last of `indices`
    /// (block indices, ascending): for each index, the patch tokens as an
    /// `[N, embed_dim, h, w]` map and the prefix tokens as `[N, embed_dim, 1, P]`.
    pub(crate) fn append(
        &self,
        g: &mut Graph,
        x: ValueId,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        indices: &[usize],
    ) -> Result<Vec<(ValueId, ValueId)>> {
        // Validated by the model that embeds it (`SmpDptConfig::validate`).
        let at = |n: &str| key(prefix, n);
        let dim = self.embed_dim;
        let p = self.patch_size;
        let embed = Conv2dParams::new(self.in_chans, dim, p)
            .stride(p)
            .bias(!self.pre_norm);
        let proj = at("patch_embed.proj");
        let patches = g.add(
            proj.clone(),
            ConvBnAct::load(gpu, sd, embed, &proj, None, 0.0)?,
            &[x],
        );
        let tokens = VitEmbedNode::load(gpu, sd, self, prefix)?;
        let mut y = g.add(at("pos_embed"), tokens, &[patches]);
        if self.pre_norm {
            let norm = LayerNorm2dNode::load(gpu, sd, (dim, self.eps), &at("norm_pre"))?;
            y = g.add(at("norm_pre"), norm, &[y]);
        }
        let prefix_len = self.num_prefix_tokens();
        let mut features = Vec::new();
        let last = indices.last().copied().unwrap_or(0);
        for b in 0..=last.min(self.depth - 1) {
            let block = at(&format!("blocks.{b}"));
            y = self.block(g, y, (gpu, sd, &block))?;
            if indices.contains(&b) {
                let name = format!("{block}.patches");
                let patch_tokens = Op::Tokens {
                    start: prefix_len,
                    len: None,
                };
                let flat = g.add(name.clone(), patch_tokens, &[y]);
                let map = g.add_sized(format!("{name}.map"), Op::ReshapeLike, &[flat], &[patches]);
                let prefix_tokens = match prefix_len {
                    0 => map,
                    n => g.add(
                        format!("{block}.prefix"),
                        Op::Tokens {
                            start: 0,
                            len: Some(n),
                        },
                        &[y],
                    ),
                };
                features.push((map, prefix_tokens));
            }
        }
        Ok(features)
    }

    /// One transformer `Block` under `block`.
    fn block(
        &self,
        g: &mut Graph,
        x: ValueId,
        (gpu, sd, block): (&Gpu, &StateDict, &str),
    ) -> Result<ValueId> {
        let at = |n: &str| key(block, n);
        let dim = self.embed_dim;
        let norm = LayerNorm2dNode::load(gpu, sd, (dim, self.eps), &at("norm1"))?;
        let normed = g.add(at("norm1"), norm, &[x]);
        let qkv = split_linear(gpu, sd, &at("attn.qkv"), dim, (3, self.qkv_bias))?;
        let [q, k, v]: [ConvBnAct; 3] = qkv
            .try_into()
            .map_err(|_| Error::Gpu("qkv: three parts".into()))?;
        let q = g.add(at("attn.qkv.q"), q, &[normed]);
        let k = g.add(at("attn.qkv.k"), k, &[normed]);
        let v = g.add(at("attn.qkv.v"), v, &[normed]);
        let heads = SdpaNode(SdpaParams::new(self.num_heads));
        let attn = g.add(at("attn"), heads, &[q, k, v]);
        let linear = |cin: usize, cout: usize, name: &str| {
            ConvBnAct::load_linear(gpu, sd, Conv2dParams::new(cin, cout, 1), &at(name))
        };
        let scaled = |layer: ConvBnAct, ls: &str| -> Result<ConvBnAct> {
            let layer = match self.layer_scale {
                true => layer.with_output_scale(gpu, sd.get1(&at(ls), dim)?.view())?,
                false => layer,
            };
            layer.with_residual(ResidualJoin::AfterActivation)
        };
        let proj = scaled(linear(dim, dim, "attn.proj")?, "ls1.gamma")?;
        let x = g.add(at("attn.proj"), proj, &[attn, x]);
        let norm = LayerNorm2dNode::load(gpu, sd, (dim, self.eps), &at("norm2"))?;
        let normed = g.add(at("norm2"), norm, &[x]);
        let hidden = self.mlp_hidden;
        let fc1 = ConvBnAct::load_linear(
            gpu,
            sd,
            Conv2dParams::new(dim, hidden, 1).activation(Activation::Gelu),
            &at("mlp.fc1"),
        )?;
        let h = g.add(at("mlp.fc1"), fc1, &[normed]);
        let fc2 = scaled(linear(hidden, dim, "mlp.fc2")?, "ls2.gamma")?;
        Ok(g.add(at("mlp.fc2"), fc2, &[h, x]))
    }
}

/// A linear layer `{linear}` of `parts * cin` outputs (`weight` `[parts * cin, cin]`,
/// `bias` when `bias`) as `parts` 1x1 convolutions of `cin` outputs each, in row order:
/// a fused `qkv` (or `kv`) projection split so that attention reads each from a map of
/// its own.
pub(crate) fn split_linear(
    gpu: &Gpu,
    sd: &StateDict,
    linear: &str,
    cin: usize,
    (parts, bias): (usize, bool),
) -> Result<Vec<ConvBnAct>> {
    let weight = sd.get(&key(linear, "weight"), &[parts * cin, cin])?;
    let bias = match bias {
        true => Some(sd.get1(&key(linear, "bias"), parts * cin)?),
        false => None,
    };
    (0..parts)
        .map(|i| {
            let rows = i * cin..(i + 1) * cin;
            let block = weight.slice(s![rows.clone(), ..]);
            let bias = bias.as_ref().map(|b| b.slice(s![rows]));
            linear_block(gpu, (linear, &i.to_string()), block, bias)
        })
        .collect()
}

/// A square block `weight` (`[c, c]`, outputs by inputs) of the linear layer `linear`,
/// with `bias` where given, as a 1x1 convolution named `{linear}.{part}`.
pub(crate) fn linear_block(
    gpu: &Gpu,
    (linear, part): (&str, &str),
    weight: ndarray::ArrayView2<f32>,
    bias: Option<ndarray::ArrayView1<f32>>,
) -> Result<ConvBnAct> {
    let (c, name) = (weight.nrows(), key(linear, part));
    let w = weight
        .to_owned()
        .into_shape_with_order((c, weight.ncols(), 1, 1))
        .map_err(|e| Error::Weights(format!("tensor `{linear}.weight`: {e}")))?;
    let mut block = StateDict::new();
    block.insert(key(&name, "weight"), w.into_dyn());
    if let Some(b) = bias {
        block.insert(key(&name, "bias"), b.to_owned().into_dyn());
    }
    let params = Conv2dParams::new(weight.ncols(), c, 1).bias(bias.is_some());
    ConvBnAct::load(gpu, &block, params, &name, None, 0.0)
}

/// The token sequence from the patch embedding: the prefix tokens (class, registers)
/// before the patch tokens and the position embedding added, as one constant
/// `[1, C, 1, T]` map added to the patch tokens padded by the prefix's length. On another
/// grid (`dynamic_img_size`) the patches' position embedding is resampled first and added
/// to the patch map, and the prefix's constant padded to the new length.
#[derive(Debug)]
struct VitEmbedNode {
    /// `[1, C, 1, P + h * w]`: the prefix tokens (with their position embedding unless
    /// `no_embed_class`) then the patch tokens' position embedding.
    constant: Array4<f32>,
    gpu_constant: Tensor,
    prefix: usize,
    grid: (usize, usize),
    /// With `dynamic_img_size`: the prefix's part of `constant` (`[1, C, 1, P]`, none
    /// without prefix tokens) and the patches' position embedding as a `[1, C, h, w]`
    /// map, to resample.
    dynamic: Option<(Option<Constant>, Constant)>,
    /// Parameters as timm counts them (`cls_token`, `reg_token`, `pos_embed`).
    params: u64,
}

impl VitEmbedNode {
    /// Loads `cls_token` `[1, 1, C]`, `reg_token` `[1, R, C]` and `pos_embed`
    /// `[1, L, C]` (`L` the patch count, plus the prefix unless `no_embed_class`) under
    /// `prefix`.
    fn load(gpu: &Gpu, sd: &StateDict, config: &VitConfig, prefix: &str) -> Result<Self> {
        let c = config.embed_dim;
        let (h, w) = config.grid();
        let n_prefix = config.num_prefix_tokens();
        let total = n_prefix + h * w;
        let mut constant = Array4::<f32>::zeros([1, c, 1, total]);
        let mut params = 0;
        let mut tokens: Vec<ndarray::Array2<f32>> = Vec::new();
        if config.class_token {
            let cls = sd.get(&key(prefix, "cls_token"), &[1, 1, c])?;
            tokens.push(cls.into_shape_with_order((1, c)).map_err(weights)?);
        }
        if config.reg_tokens > 0 {
            let r = config.reg_tokens;
            let reg = sd.get(&key(prefix, "reg_token"), &[1, r, c])?;
            tokens.push(reg.into_shape_with_order((r, c)).map_err(weights)?);
        }
        let mut t = 0;
        for block in &tokens {
            for row in block.rows() {
                constant.slice_mut(s![0, .., 0, t]).assign(&row);
                t += 1;
            }
            params += block.len() as u64;
        }
        let embedded = match config.no_embed_class {
            true => h * w,
            false => total,
        };
        let pos = sd.get(&key(prefix, "pos_embed"), &[1, embedded, c])?;
        let pos = pos.into_shape_with_order((embedded, c)).map_err(weights)?;
        params += pos.len() as u64;
        let first = total - embedded;
        for (i, row) in pos.rows().into_iter().enumerate() {
            let mut column = constant.slice_mut(s![0, .., 0, first + i]);
            column += &row;
        }
        let dynamic = match config.dynamic_img_size {
            false => None,
            true => {
                let up = |a: Array4<f32>| -> Result<Constant> {
                    let t = gpu.upload(a.view())?;
                    Ok((a, t))
                };
                let head = constant.slice(s![.., .., .., ..n_prefix]).to_owned();
                let head = match n_prefix {
                    0 => None,
                    _ => Some(up(head)?),
                };
                let map = constant
                    .slice(s![.., .., .., n_prefix..])
                    .to_owned()
                    .into_shape_with_order([1, c, h, w])
                    .map_err(weights)?;
                Some((head, up(map)?))
            }
        };
        let gpu_constant = gpu.upload(constant.view())?;
        Ok(VitEmbedNode {
            constant,
            gpu_constant,
            prefix: n_prefix,
            grid: (h, w),
            dynamic,
            params,
        })
    }

    /// The padding that makes room for the prefix tokens.
    fn pad(&self) -> Pad2dParams {
        Pad2dParams::new((self.prefix as i64, 0, 0, 0))
    }

    /// The resampling of the patches' position embedding to an `(h, w)` grid other than
    /// the one it was made for (timm's `resample_abs_pos_embed`), if the node takes one.
    fn resampling(&self, (h, w): (usize, usize)) -> Option<(&Embeddings, UpsampleParams)> {
        let dynamic = self.dynamic.as_ref()?;
        let params = UpsampleParams::bicubic(false).antialias(true).size((h, w));
        ((h, w) != self.grid).then_some((dynamic, params))
    }
}

/// A constant on the host (for the reference) and on the GPU.
type Constant = (Array4<f32>, Tensor);

/// [`VitEmbedNode`]'s prefix and patch-grid embeddings.
type Embeddings = (Option<Constant>, Constant);

fn weights(e: ndarray::ShapeError) -> Error {
    Error::Weights(format!("a token embedding: {e}"))
}

impl Node for VitEmbedNode {
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        let x = *inputs.get(0)?;
        let c = self.constant.dim().1;
        let (h, w) = match self.dynamic {
            Some(_) => (x[2], x[3]),
            None => self.grid,
        };
        crate::ops::same_shape("input", [x[0], c, h, w], x)?;
        Ok(vec![[x[0], c, 1, self.prefix + h * w]])
    }

    /// The embeddings as parameters; the pass reads the patches and the constant and
    /// writes the sequence.
    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        let out = self.shapes(inputs)?[0];
        Ok(Cost {
            params: self.params,
            macs: 0,
            bytes: channel::elementwise_cost(out, 1).bytes + 4 * self.constant.len() as u64,
        })
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        let x = inputs.get(0)?.tensor()?;
        let [n, c, h, w] = x.shape();
        self.shapes(&Inputs {
            values: vec![&[n, c, h, w]],
            shapes: vec![],
        })?;
        let Some(((head, map), resample)) = self.resampling((h, w)) else {
            let flat = x.reshape([n, c, 1, h * w])?;
            let padded = match self.prefix {
                0 => flat,
                _ => crate::ops::copy::pad2d(rec, &self.pad(), &flat)?,
            };
            let y = channel::add_broadcast(rec, &padded, &self.gpu_constant, Activation::None)?;
            return Ok(vec![Value::Tensor(y)]);
        };
        let position = upsample(rec, &resample, &map.1)?;
        let patches = channel::add_broadcast(rec, x, &position, Activation::None)?;
        let flat = patches.reshape([n, c, 1, h * w])?;
        let Some(head) = head else {
            return Ok(vec![Value::Tensor(flat)]);
        };
        let padded = crate::ops::copy::pad2d(rec, &self.pad(), &flat)?;
        let tail = Pad2dParams::new((0, (h * w) as i64, 0, 0));
        let prefix = crate::ops::copy::pad2d(rec, &tail, &head.1)?;
        let y = channel::add_broadcast(rec, &padded, &prefix, Activation::None)?;
        Ok(vec![Value::Tensor(y)])
    }

    /// timm's order: the prefix tokens concatenated before the patch tokens, then the
    /// position embedding (resampled to the input's grid where it differs) added.
    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        let x = inputs.get(0)?.tensor()?;
        let (n, c, h, w) = x.dim();
        let out = self.shapes(&Inputs {
            values: vec![&[n, c, h, w]],
            shapes: vec![],
        })?[0];
        let embedding = match self.resampling((h, w)) {
            None => self.constant.clone(),
            Some(((head, map), resample)) => {
                let grid = reference::upsample::upsample(&resample, map.0.view())?;
                let grid = grid
                    .into_shape_with_order([1, c, 1, h * w])
                    .map_err(weights)?;
                match head {
                    Some(head) => {
                        ndarray::concatenate(ndarray::Axis(3), &[head.0.view(), grid.view()])
                            .map_err(weights)?
                    }
                    None => grid,
                }
            }
        };
        let mut y = Array4::<f32>::zeros(out);
        for b in 0..n {
            for ch in 0..c {
                for t in 0..out[3] {
                    let token = match t.checked_sub(self.prefix) {
                        Some(i) => x[[b, ch, i / w, i % w]],
                        None => 0.0,
                    };
                    y[[b, ch, 0, t]] = token + embedding[[0, ch, 0, t]];
                }
            }
        }
        Ok(vec![HostValue::Tensor(y)])
    }
}
