//! Apple's MobileOne (`mobileone_s0` .. `mobileone_s4`) as segmentation_models_pytorch's
//! encoders build it: trained multi-branch blocks (`stage0`, then `stage{1..4}.{i}`
//! alternating a depthwise 3x3 and a pointwise 1x1 block), each block `relu(se(Σ
//! rbr_conv(x) + rbr_scale(x) + rbr_skip(x)))`. The GPU runs each block as one
//! convolution, its branches folded at load time (RepVGG's re-parameterisation, as
//! MobileOne's `reparameterize_model` does); the CPU reference runs the branches.
//! A state dict already re-parameterised (`reparam_conv.weight` / `.bias`) loads too.

use crate::blocks::{ConvBnAct, Graph, Op, RepConvNode, RepNames::MobileOne, SeNode, ValueId};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::ops::attention::SqueezeExcitationParams;
use crate::ops::conv::Conv2dParams;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

use super::smp_unet::smp_dilation;

/// One of smp's MobileOne encoders.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MobileOneConfig {
    /// Width multipliers of the four stages (S0: 0.75, 1, 1, 2).
    pub width_multipliers: [f64; 4],
    /// Blocks (depthwise + pointwise pairs) per stage (2, 8, 10, 1).
    pub num_blocks_per_stage: [usize; 4],
    /// The 3x3 branches of each stage block (S0: 4, the others 1; the stem has one).
    pub num_conv_branches: usize,
    /// Squeeze-and-excitation in the second half of stage 3 and all of stage 4 (S4).
    pub use_se: bool,
}

impl MobileOneConfig {
    /// smp's encoder name: `mobileone_s0` .. `mobileone_s4`; any other name is an error
    /// naming `encoder_name`.
    pub fn from_smp(name: &str) -> Result<Self> {
        let (width_multipliers, num_conv_branches, use_se) = match name {
            "mobileone_s0" => ([0.75, 1.0, 1.0, 2.0], 4, false),
            "mobileone_s1" => ([1.5, 1.5, 2.0, 2.5], 1, false),
            "mobileone_s2" => ([1.5, 2.0, 2.5, 4.0], 1, false),
            "mobileone_s3" => ([2.0, 2.5, 3.0, 4.0], 1, false),
            "mobileone_s4" => ([3.0, 3.5, 3.5, 4.0], 1, true),
            other => {
                return Err(Error::InvalidParam {
                    name: "encoder_name",
                    reason: format!("{other:?} is not one of smp's mobileone_s0 .. mobileone_s4"),
                })
            }
        };
        Ok(MobileOneConfig {
            width_multipliers,
            num_blocks_per_stage: [2, 8, 10, 1],
            num_conv_branches,
            use_se,
        })
    }

    /// Checks the configuration: positive widths, blocks and branches.
    pub(crate) fn validate(&self) -> Result<()> {
        crate::error::positive(&[
            (
                "num_blocks_per_stage",
                self.num_blocks_per_stage.iter().copied().min().unwrap_or(0),
            ),
            ("num_conv_branches", self.num_conv_branches),
        ])?;
        let planes = self.planes();
        crate::error::fail_if(
            planes.contains(&0) || self.stem_channels() == 0,
            "width_multipliers",
            || {
                format!(
                    "leave a stage without channels: {:?}",
                    self.width_multipliers
                )
            },
        )
    }

    fn stem_channels(&self) -> usize {
        64.min((64.0 * self.width_multipliers[0]) as usize)
    }

    fn planes(&self) -> [usize; 4] {
        let base = [64.0, 128.0, 256.0, 512.0];
        std::array::from_fn(|i| (base[i] * self.width_multipliers[i]) as usize)
    }

    /// Channels of smp's features: the input's, the stem's, then each stage's.
    pub(crate) fn feature_channels(&self, in_channels: usize) -> Vec<usize> {
        let mut c = vec![in_channels, self.stem_channels()];
        c.extend(self.planes());
        c
    }

    /// The stem (`{prefix}.stage0`, taking `in_channels` channels) and the stages smp
    /// runs for `depth` features appended to `g` after `x`; returns smp's features (the
    /// input's first). Stages 3 and 4 past `output_stride` run at stride 1, dilated as
    /// smp's `make_dilated` does.
    pub(crate) fn append(
        &self,
        g: &mut Graph,
        x: ValueId,
        ctx: (&Gpu, &StateDict, &str),
        (in_channels, depth, output_stride): (usize, usize, usize),
    ) -> Result<Vec<ValueId>> {
        let mut inplanes = self.stem_channels();
        let stem = Conv2dParams::new(in_channels, inplanes, 3)
            .stride(2)
            .padding(1);
        let mut y = self.block(g, x, ctx, "stage0", (stem, 1, false, false))?;
        let mut features = vec![x, y];
        for (s, &planes) in self
            .planes()
            .iter()
            .enumerate()
            .take(depth.saturating_sub(1))
        {
            let blocks = self.num_blocks_per_stage[s];
            let se_blocks = match (self.use_se, s) {
                (false, _) | (_, 0 | 1) => 0,
                (true, 2) => blocks / 2,
                (true, _) => blocks,
            };
            let dilation = smp_dilation(4 << s, output_stride);
            for i in 0..blocks {
                let se = i >= blocks - se_blocks;
                let stride = if i == 0 { 2 } else { 1 };
                let depthwise = Conv2dParams::depthwise(inplanes, 1, 3);
                let depthwise = match dilation {
                    1 => depthwise.stride(stride).padding(1),
                    d => depthwise.dilation(d).padding(d),
                };
                // The skip is the unpatched block's (MobileOne decides it when building).
                let name = format!("stage{}.{}", s + 1, 2 * i);
                let branches = self.num_conv_branches;
                y = self.block(g, y, ctx, &name, (depthwise, branches, se, stride == 1))?;
                let pointwise = Conv2dParams::new(inplanes, planes, 1);
                let name = format!("stage{}.{}", s + 1, 2 * i + 1);
                let skip = inplanes == planes;
                y = self.block(g, y, ctx, &name, (pointwise, branches, se, skip))?;
                inplanes = planes;
            }
            features.push(y);
        }
        Ok(features)
    }

    /// One MobileOne block `name` under `prefix` with the main convolution `params` (no
    /// activation: ReLU is added), `branches` 3x3 (or 1x1) branches, SE when `se` and a
    /// batch-norm skip when `skip` (the unpatched block keeps its shape).
    fn block(
        &self,
        g: &mut Graph,
        x: ValueId,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        name: &str,
        (params, branches, se, skip): (Conv2dParams, usize, bool, bool),
    ) -> Result<ValueId> {
        let at = |n: &str| key(prefix, &key(name, n));
        let act = if se {
            Activation::None
        } else {
            Activation::Relu
        };
        let params = params.activation(act);
        let y = if sd.contains(&at("reparam_conv.weight")) {
            let conv = ConvBnAct::load(gpu, sd, params.bias(true), &at("reparam_conv"), None, 0.0)?;
            g.add(name, conv, &[x])
        } else {
            let node = RepConvNode::load(
                gpu,
                sd,
                params,
                (&key(prefix, name), MobileOne),
                (branches, skip),
                EPS,
            )?;
            g.add(name, node, &[x])
        };
        if !se {
            return Ok(y);
        }
        let c = params.out_channels;
        let se = SqueezeExcitationParams::new(c, (c as f64 * 0.0625) as usize);
        let se = SeNode::load(gpu, sd, se, &at("se.reduce"), &at("se.expand"))?;
        let y = g.add(key(name, "se"), se, &[y]);
        Ok(g.add(
            key(name, "activation"),
            Op::Activation(Activation::Relu),
            &[y],
        ))
    }
}

/// Batch norm eps of every branch.
const EPS: f32 = 1e-5;
