//! timm's RepVGGs (`repvgg_a0` .. `repvgg_b3g4`, timm's `ByobNet`) as
//! segmentation_models_pytorch runs them through its `TimmUniversalEncoder`
//! (`tu-repvgg_*`): a RepVGG block as the stride-2 stem (`stem`) and four stages of them
//! (`stages_{i}.{j}`), the first of each strided. A block as trained is
//! `relu(conv_kxk(x) + conv_1x1(x) + identity(x))`: a 3x3 and a 1x1 convolution, each with its batch norm
//! (`.conv`, `.bn`), and a batch norm of the input (`identity`) where the block keeps its
//! width, stride and dilation. The GPU runs each block as one 3x3 convolution, its
//! branches folded at load time (RepVGG's re-parameterisation); the CPU reference runs
//! the branches. The `g4` models group every second block of a stage in 4. The features
//! are the stem's and the four stages', at strides 2 to 32, dilated by timm's `ByobNet`
//! rule past the output stride.

use crate::blocks::{make_divisible, Graph, RepConvNode, RepNames, ValueId};
use crate::error::{fail_if, positive, Result};
use crate::gpu::Gpu;
use crate::ops::conv::Conv2dParams;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

use super::gernet::ByobOutputStride;

/// One of timm's RepVGGs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RepVggConfig {
    /// Output channels of the stem (`stem_chs`).
    pub stem_width: usize,
    /// Blocks per stage (`d`).
    pub depths: [usize; 4],
    /// Output channels of each stage's blocks (`c * wf`).
    pub widths: [usize; 4],
    /// Groups of every second block's convolutions in a stage (1: none; the `g4` models:
    /// 4).
    pub groups: usize,
}

/// Batch norm eps of every layer.
const EPS: f32 = 1e-5;

impl RepVggConfig {
    /// timm's `repvgg_a0`, `a1`, `a2`, `b0`, `b1`, `b1g4`, `b2`, `b2g4`, `b3` or `b3g4` (a
    /// pretrained tag after `.` ignored), `None` for any other name (`repvgg_d2se`'s
    /// squeeze-and-excitation is not run).
    pub fn timm(name: &str) -> Option<Self> {
        const A: [usize; 4] = [2, 4, 14, 1];
        const B: [usize; 4] = [4, 6, 16, 1];
        let (depths, factors, stem_width, groups) = match name.split('.').next()? {
            "repvgg_a0" => (A, [0.75, 0.75, 0.75, 2.5], 48, 1),
            "repvgg_a1" => (A, [1.0, 1.0, 1.0, 2.5], 64, 1),
            "repvgg_a2" => (A, [1.5, 1.5, 1.5, 2.75], 64, 1),
            "repvgg_b0" => (B, [1.0, 1.0, 1.0, 2.5], 64, 1),
            "repvgg_b1" => (B, [2.0, 2.0, 2.0, 4.0], 64, 1),
            "repvgg_b1g4" => (B, [2.0, 2.0, 2.0, 4.0], 64, 4),
            "repvgg_b2" => (B, [2.5, 2.5, 2.5, 5.0], 64, 1),
            "repvgg_b2g4" => (B, [2.5, 2.5, 2.5, 5.0], 64, 4),
            "repvgg_b3" => (B, [3.0, 3.0, 3.0, 5.0], 64, 1),
            "repvgg_b3g4" => (B, [3.0, 3.0, 3.0, 5.0], 64, 4),
            _ => return None,
        };
        let base = [64.0, 128.0, 256.0, 512.0];
        Some(RepVggConfig {
            stem_width,
            depths,
            widths: [0, 1, 2, 3].map(|i| make_divisible(base[i] * factors[i], 8)),
            groups,
        })
    }

    /// Checks the configuration: positive widths, depths and groups, the groups dividing
    /// every width.
    pub(crate) fn validate(&self) -> Result<()> {
        positive(&[("stem_width", self.stem_width), ("groups", self.groups)])?;
        for (&depth, &width) in self.depths.iter().zip(&self.widths) {
            positive(&[("depths", depth), ("widths", width)])?;
            fail_if(!width.is_multiple_of(self.groups), "groups", || {
                format!("{} does not divide the width {width}", self.groups)
            })?;
        }
        Ok(())
    }

    /// Channels of smp's features for an input of `in_channels` channels: the input, the
    /// stem and the four stages.
    pub(crate) fn feature_channels(&self, in_channels: usize) -> Vec<usize> {
        let mut c = vec![in_channels, self.stem_width];
        c.extend(self.widths);
        c
    }

    /// smp's features of the encoder under `prefix` (smp's `encoder.model`: `stem`,
    /// `stages_{i}`) appended to `g` after `x`: the input and the first `depth` of the
    /// stem's and the four stages' outputs.
    pub(crate) fn append_timm(
        &self,
        g: &mut Graph,
        x: ValueId,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        (in_channels, depth, output_stride): (usize, usize, usize),
    ) -> Result<Vec<ValueId>> {
        let block = |(width_in, width): (usize, usize), stride, (d0, d1), groups, name: &str| {
            // timm's `get_padding(3, stride, dilation)`: symmetric.
            let p = Conv2dParams::new(width_in, width, 3)
                .stride(stride)
                .padding((stride - 1 + 2 * d0) / 2)
                .dilation(d0)
                .groups(groups)
                .activation(Activation::Relu);
            let identity = width_in == width && stride == 1 && d0 == d1;
            let at = (key(prefix, name), RepNames::TimmRepVgg);
            RepConvNode::load(gpu, sd, p, (&at.0, at.1), (1, identity), EPS)
        };
        let stem = block((in_channels, self.stem_width), 2, (1, 1), 1, "stem")?;
        let mut y = g.add("stem", stem, &[x]);
        let mut features = vec![x, y];
        let mut rule = ByobOutputStride::new(output_stride);
        let mut width_in = self.stem_width;
        for i in 0..depth.saturating_sub(1).min(4) {
            let (stride, mut first, dilation) = rule.stage(2);
            for j in 0..self.depths[i] {
                let name = format!("stages_{i}.{j}");
                let stride = if j == 0 { stride } else { 1 };
                // timm's group size `c // groups` on every second block.
                let groups = if j % 2 == 1 { self.groups } else { 1 };
                let widths = (width_in, self.widths[i]);
                let node = block(widths, stride, (first, dilation), groups, &name)?;
                y = g.add(name, node, &[y]);
                width_in = self.widths[i];
                first = dilation;
            }
            features.push(y);
        }
        features.truncate(depth + 1);
        Ok(features)
    }
}
