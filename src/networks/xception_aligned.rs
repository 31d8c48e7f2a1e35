//! timm's Aligned Xceptions (`xception41`, `xception65`, `xception71`: the modified Xception
//! of DeepLabV3+, "Encoder-Decoder with Atrous Separable Convolution") as
//! segmentation_models_pytorch runs them through its `TimmUniversalEncoder`
//! (`tu-xception*`; timm's hook-based features, whose flattened names are `stem_{i}` and
//! `blocks_{i}`).
//!
//! - A stem of a 3x3 stride-2 and a 3x3 convolution (`stem_0`, `stem_1`: `.conv`, `.bn`,
//!   ReLU).
//! - Blocks (`blocks_{i}`) of three separable convolutions (`stack.conv{k}`: a depthwise
//!   3x3 `conv_dw` with its batch norm `bn_dw`, a pointwise `conv_pw` with `bn_pw`), each
//!   after a ReLU; the last one takes the block's stride. The skip is the block's input or,
//!   where the width or the stride changes, a strided 1x1 convolution with batch norm
//!   (`shortcut.conv` / `.bn`). The last block has no skip and no leading ReLUs: each of
//!   its separable convolutions' two layers ends in a ReLU.
//! - The features at strides 2 to 16 are taken inside each strided block, at the input of
//!   its last separable convolution (after its ReLU, the hook on `stack.act3`); the last
//!   feature is the last block's output.
//!
//! Every batch norm has eps 1e-3; no convolution has a bias. Blocks past the output stride
//! run at stride 1 and dilate every later block by that stride (timm's rule: the block
//! whose stride is dropped keeps the dilation it had).

use crate::blocks::{conv_bn, ConvBnAct, Graph, Op, ValueId};
use crate::error::{fail_if, Result};
use crate::gpu::Gpu;
use crate::ops::conv::{Conv2dParams, ResidualJoin};
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// Which Aligned Xception (timm's `block_cfg`): the entry flow's blocks and the middle
/// flow's length differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlignedXceptionConfig {
    /// `xception41`: three strided entry blocks, 8 middle blocks.
    Xception41,
    /// `xception65`: three strided entry blocks, 16 middle blocks.
    Xception65,
    /// `xception71`: five entry blocks (strided, 1, strided, 1, strided), 16 middle blocks.
    Xception71,
}

/// One block of `block_cfg`: input channels, the three separable convolutions' output
/// channels, stride, and whether it is the exit block (no skip, no leading ReLUs).
#[derive(Clone, Copy, Debug)]
struct XBlock {
    cin: usize,
    out: [usize; 3],
    stride: usize,
    exit: bool,
}

/// Batch norm eps of every layer.
const EPS: f32 = 1e-3;

impl AlignedXceptionConfig {
    /// timm's `xception41`, `xception65` or `xception71` (a pretrained tag after `.`
    /// ignored); `None` for any other name (the pre-activation `xception41p` /
    /// `xception65p` among them).
    pub fn timm(name: &str) -> Option<Self> {
        Some(match name.split('.').next()? {
            "xception41" => AlignedXceptionConfig::Xception41,
            "xception65" => AlignedXceptionConfig::Xception65,
            "xception71" => AlignedXceptionConfig::Xception71,
            _ => return None,
        })
    }

    /// The blocks, in order (timm's `block_cfg`).
    fn blocks(self) -> Vec<XBlock> {
        let b = |cin, cout, stride| XBlock {
            cin,
            out: [cout; 3],
            stride,
            exit: false,
        };
        let (mut blocks, middle) = match self {
            AlignedXceptionConfig::Xception41 => {
                (vec![b(64, 128, 2), b(128, 256, 2), b(256, 728, 2)], 8)
            }
            AlignedXceptionConfig::Xception65 => {
                (vec![b(64, 128, 2), b(128, 256, 2), b(256, 728, 2)], 16)
            }
            AlignedXceptionConfig::Xception71 => (
                vec![
                    b(64, 128, 2),
                    b(128, 256, 1),
                    b(256, 256, 2),
                    b(256, 728, 1),
                    b(728, 728, 2),
                ],
                16,
            ),
        };
        blocks.extend(std::iter::repeat_n(b(728, 728, 1), middle));
        blocks.push(XBlock {
            out: [728, 1024, 1024],
            ..b(728, 0, 2)
        });
        blocks.push(XBlock {
            cin: 1024,
            out: [1536, 1536, 2048],
            stride: 1,
            exit: true,
        });
        blocks
    }

    /// Channels of smp's features for an input of `in_channels` channels: the input, the
    /// four strided blocks' taps and the last block's output.
    pub(crate) fn feature_channels(self, in_channels: usize) -> Vec<usize> {
        let blocks = self.blocks();
        let mut c = vec![in_channels];
        c.extend(blocks.iter().filter(|b| b.stride > 1).map(|b| b.out[1]));
        c.push(blocks.last().expect("exit block").out[2]);
        c
    }

    /// smp's features of the encoder under `prefix` (smp's `encoder.model`) appended to `g`
    /// after `x`: the input and the first `depth` of the strided blocks' taps and the last
    /// block's output, the blocks past `output_stride` (8, 16 or 32) dilated.
    pub(crate) fn append_timm(
        self,
        g: &mut Graph,
        x: ValueId,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        (in_channels, depth, output_stride): (usize, usize, usize),
    ) -> Result<Vec<ValueId>> {
        fail_if(
            ![8, 16, 32].contains(&output_stride),
            "encoder_output_stride",
            || {
                format!("timm's Aligned Xception takes an output stride of 8, 16 or 32, got {output_stride}")
            },
        )?;
        let ctx = (gpu, sd, prefix);
        let at = |n: &str| key(prefix, n);
        let stem = |cin: usize, cout: usize, stride: usize, name: &str| {
            let p = Conv2dParams::new(cin, cout, 3)
                .stride(stride)
                .padding(1)
                .bias(false)
                .activation(Activation::Relu);
            conv_bn(
                gpu,
                sd,
                p,
                &at(&key(name, "conv")),
                &at(&key(name, "bn")),
                EPS,
            )
        };
        let y = g.add("stem_0", stem(in_channels, 32, 2, "stem_0")?, &[x]);
        let mut y = g.add("stem_1", stem(32, 64, 1, "stem_1")?, &[y]);
        let mut features = vec![x];
        let (mut reached, mut dilation) = (2, 1);
        for (i, block) in self.blocks().into_iter().enumerate() {
            if features.len() > depth {
                break;
            }
            // timm's rule: a block's dilation is the one reached before it; a stride that
            // would pass the output stride dilates the blocks after it instead.
            let block_dilation = dilation;
            let mut stride = block.stride;
            if stride > 1 {
                if reached * stride > output_stride {
                    dilation *= stride;
                    stride = 1;
                } else {
                    reached *= stride;
                }
            }
            let name = format!("blocks_{i}");
            // The block whose tap is the last feature asked for runs up to its tap only.
            let tap_only = block.stride > 1 && features.len() == depth;
            let shape = (stride, block_dilation, tap_only);
            let (out, tap) = self.append_block(g, y, ctx, &name, block, shape)?;
            features.extend(tap);
            y = out;
        }
        if features.len() == depth {
            features.push(y);
        }
        Ok(features)
    }

    /// One block named `name` on `x` at `stride` and `dilation`: its output, and its tap
    /// (the last separable convolution's input) where the block is strided in timm's
    /// configuration; with `tap_only`, the tap alone (as output too).
    fn append_block(
        self,
        g: &mut Graph,
        x: ValueId,
        (gpu, sd, prefix): (&Gpu, &StateDict, &str),
        name: &str,
        block: XBlock,
        (stride, dilation, tap_only): (usize, usize, bool),
    ) -> Result<(ValueId, Option<ValueId>)> {
        let relu = Activation::Relu;
        let at = |n: &str| key(prefix, &key(name, n));
        let cout = block.out[2];
        let skip = if block.exit || tap_only {
            None
        } else if cout != block.cin || stride != 1 {
            let p = Conv2dParams::new(block.cin, cout, 1)
                .stride(stride)
                .bias(false);
            let conv = conv_bn(gpu, sd, p, &at("shortcut.conv"), &at("shortcut.bn"), EPS)?;
            Some(g.add(key(name, "shortcut"), conv, &[x]))
        } else {
            Some(x)
        };
        // The leading ReLU of the first separable convolution (timm's `act1`, not in place:
        // the skip reads the block's input); the others run in the previous pointwise
        // convolution's store.
        let mut y = if block.exit {
            x
        } else {
            g.add(key(name, "stack.act1"), Op::Activation(relu), &[x])
        };
        let mut cin = block.cin;
        let mut tap = None;
        for k in 0..3 {
            let conv = format!("stack.conv{}", k + 1);
            let last = k == 2;
            // timm's `get_padding(3, stride, dilation)`.
            let s = if last { stride } else { 1 };
            let depthwise = Conv2dParams::depthwise(cin, 1, 3)
                .stride(s)
                .padding((s - 1 + 2 * dilation) / 2)
                .dilation(dilation)
                .bias(false);
            let act = if block.exit || !last {
                relu
            } else {
                Activation::None
            };
            let depthwise = depthwise.activation(if block.exit { relu } else { Activation::None });
            let dw_at = |n: &str| at(&key(&conv, n));
            let depthwise = conv_bn(gpu, sd, depthwise, &dw_at("conv_dw"), &dw_at("bn_dw"), EPS)?;
            let pointwise = Conv2dParams::new(cin, block.out[k], 1)
                .bias(false)
                .activation(act);
            let mut pointwise: ConvBnAct =
                conv_bn(gpu, sd, pointwise, &dw_at("conv_pw"), &dw_at("bn_pw"), EPS)?;
            if last && block.stride > 1 {
                tap = Some(y);
                if tap_only {
                    return Ok((y, tap));
                }
            }
            let node = key(name, &conv);
            let d = g.add(key(&node, "conv_dw"), depthwise, &[y]);
            y = match (last, skip) {
                (true, Some(skip)) => {
                    pointwise = pointwise.with_residual(ResidualJoin::AddThen(Activation::None))?;
                    g.add(key(&node, "conv_pw"), pointwise, &[d, skip])
                }
                _ => g.add(key(&node, "conv_pw"), pointwise, &[d]),
            };
            cin = block.out[k];
        }
        Ok((y, tap))
    }
}
