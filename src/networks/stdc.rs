//! STDC-Seg (Fan et al., "Rethinking BiSeNet For Real-time Semantic Segmentation", CVPR
//! 2021): [`StdcSeg`], as MichaelFan01/STDC-Seg's `models/model_stages.py` defines it
//! (`BiSeNet(backbone, n_classes, use_boundary_2, use_boundary_4, use_boundary_8,
//! use_conv_last)`), under its state-dict names, so its Cityscapes and CamVid checkpoints
//! (STDC1-Seg, STDC2-Seg) load as they are.
//!
//! The backbone is an STDC network (`nets/stdcnet.py`'s `STDCNet813`, STDC1, or
//! `STDCNet1446`, STDC2, as the context path builds them: `CatBottleneck` blocks of four
//! convolutions, base width 64) under `cp.backbone.features.{i}`: two strided 3x3
//! convolutions (1/2 and 1/4), then three stages of short-term dense concatenate blocks
//! (1/8, 1/16, 1/32). Each block runs a 1x1 convolution to half its width and a chain of
//! three 3x3 convolutions (a quarter, an eighth, an eighth), and concatenates the four
//! maps; a stage's first block halves the map by a 3x3 depthwise convolution with batch
//! norm (`avd_layer`) before the chain and a 3x3 average pool (stride 2, padded, the
//! padding counted) of its first map. The decoder is the first BiSeNet's (the context
//! path's attention refinement, global context and feature fusion, and its three heads:
//! see [`BiSeNetConfig`](super::BiSeNetConfig)), on the backbone's 1/8 map where that
//! network has a spatial path; the detail heads (`conv_out_sp2` / `sp4` / `sp8`) that
//! training supervises with boundaries can follow as outputs.
//!
//! `tests/golden/third_party/stdc_seg` holds the PyTorch files the tests compare with.

use super::bisenet::{depthwise3x3, Builder};
use super::{conv1x1, conv3x3};
use crate::blocks::{Architecture, Graph, Model, Op, ValueId};
use crate::error::{positive, Error, Result};
use crate::gpu::Gpu;
use crate::ops::pool::AvgPool2dParams;
use crate::ops::setters;
use crate::weights::{key, StateDict};

/// Input channels (the backbone's first convolution takes RGB).
const IMAGE: usize = 3;
/// The backbone's base width (`base`, fixed by the context path's attention widths).
const BASE: usize = 64;

/// Which STDC network the context path runs (`backbone` in PyTorch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum StdcBackbone {
    /// `'STDCNet813'` (STDC1): two blocks in each stage.
    #[default]
    StdcNet813,
    /// `'STDCNet1446'` (STDC2): four, five and three blocks.
    StdcNet1446,
}

impl StdcBackbone {
    /// The blocks of each of the three stages (`layers`).
    fn layers(self) -> [usize; 3] {
        match self {
            StdcBackbone::StdcNet813 => [2, 2, 2],
            StdcBackbone::StdcNet1446 => [4, 5, 3],
        }
    }
}

/// The configuration of STDC-Seg's `BiSeNet` (see the module documentation): input
/// `[N, 3, H, W]` of any size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StdcSegConfig {
    /// The backbone (`backbone`).
    pub backbone: StdcBackbone,
    /// Classes of the logits (`n_classes`; 19 for Cityscapes, 11 for CamVid).
    pub n_classes: usize,
    /// Whether the backbone's deepest map passes through `cp.backbone.conv_last` (a 1x1
    /// convolution to 1024 channels with batch norm and ReLU) before the context path
    /// (`use_conv_last`; default `false`, as the published models were trained).
    pub use_conv_last: bool,
    /// Whether the detail head on the 1/2 map (`conv_out_sp2`) follows as an output
    /// (`use_boundary_2`; needs `use_boundary_4` and `use_boundary_8`, the only forms
    /// PyTorch's `forward` returns).
    pub use_boundary_2: bool,
    /// Whether the detail head on the 1/4 map (`conv_out_sp4`) follows as an output
    /// (`use_boundary_4`; needs `use_boundary_8`).
    pub use_boundary_4: bool,
    /// Whether the detail head on the 1/8 map (`conv_out_sp8`) follows as an output
    /// (`use_boundary_8`; the published models were trained with it).
    pub use_boundary_8: bool,
    /// Whether the two auxiliary heads' logits (`conv_out16`, `conv_out32`) follow the
    /// main ones, as PyTorch's `forward` returns them (default `true`). `false` neither
    /// builds nor loads them.
    pub side_outputs: bool,
}

impl StdcSegConfig {
    /// `BiSeNet(backbone, n_classes)`: the logits and the two auxiliary heads', as
    /// PyTorch's `forward` returns them, without the detail heads.
    pub fn new(backbone: StdcBackbone, n_classes: usize) -> Self {
        StdcSegConfig {
            backbone,
            n_classes,
            use_conv_last: false,
            use_boundary_2: false,
            use_boundary_4: false,
            use_boundary_8: false,
            side_outputs: true,
        }
    }

    /// STDC1-Seg: `BiSeNet('STDCNet813', n_classes)`.
    pub fn stdc1(n_classes: usize) -> Self {
        Self::new(StdcBackbone::StdcNet813, n_classes)
    }

    /// STDC2-Seg: `BiSeNet('STDCNet1446', n_classes)`.
    pub fn stdc2(n_classes: usize) -> Self {
        Self::new(StdcBackbone::StdcNet1446, n_classes)
    }

    /// By PyTorch's backbone name (`STDCNet813`, `STDCNet1446`) or the paper's (`STDC1`,
    /// `STDC2`, any case); another name is a typed error naming `backbone`.
    pub fn from_name(backbone: &str, n_classes: usize) -> Result<Self> {
        match backbone.to_ascii_lowercase().as_str() {
            "stdcnet813" | "stdc1" => Ok(Self::stdc1(n_classes)),
            "stdcnet1446" | "stdc2" => Ok(Self::stdc2(n_classes)),
            _ => Err(Error::InvalidParam {
                name: "backbone",
                reason: format!(
                    "unknown STDC backbone {backbone:?}: STDCNet813 (STDC1) or STDCNet1446 \
                     (STDC2)"
                ),
            }),
        }
    }

    /// The detail heads `forward` returns after the logits: name, the backbone map's
    /// index (1/2, 1/4, 1/8) and its channels.
    fn detail_heads(&self) -> Vec<(&'static str, usize, usize)> {
        [
            (self.use_boundary_2, "conv_out_sp2", 0, BASE / 2),
            (self.use_boundary_4, "conv_out_sp4", 1, BASE),
            (self.use_boundary_8, "conv_out_sp8", 2, 4 * BASE),
        ]
        .into_iter()
        .filter(|h| h.0)
        .map(|(_, name, map, channels)| (name, map, channels))
        .collect()
    }
}

setters!(StdcSegConfig {
    /// Sets whether `cp.backbone.conv_last` runs on the deepest map.
    use_conv_last: bool,
    /// Sets whether the 1/2 detail head's map follows the logits.
    use_boundary_2: bool,
    /// Sets whether the 1/4 detail head's map follows the logits.
    use_boundary_4: bool,
    /// Sets whether the 1/8 detail head's map follows the logits.
    use_boundary_8: bool,
    /// Sets whether the auxiliary heads' logits follow the main ones.
    side_outputs: bool,
});

/// STDC-Seg: input `[N, 3, H, W]`, outputs the logits `[N, n_classes, H, W]`, with
/// `side_outputs` the two auxiliary heads' (the same shape), then each detail head's map
/// `[N, 1, h, w]` at its own scale (1/2, 1/4, 1/8, rounded up): see [`StdcSegConfig`].
pub type StdcSeg = Model<StdcSegConfig>;

impl Builder<'_> {
    /// `CatBottleneck(cin, cout, 4, stride)` under `name` (`block_num` 4, the context
    /// path's).
    fn cat_bottleneck(
        &mut self,
        name: &str,
        x: ValueId,
        (cin, cout, stride): (usize, usize, usize),
    ) -> Result<ValueId> {
        let at = |k: usize| format!("{name}.conv_list.{k}");
        let first = self.conv_bn_relu(&at(0), x, conv1x1(cin, cout / 2))?;
        let mut chain = first;
        let mut part0 = first;
        if stride == 2 {
            let avd = depthwise3x3(cout / 2, 1, 2);
            let avd = self.seq_conv_bn(&key(name, "avd_layer"), 0, avd)?;
            chain = self.g.add(key(name, "avd_layer"), avd, &[first]);
            let pool = AvgPool2dParams::new(3).stride(2).padding(1);
            part0 = self.g.add(key(name, "skip"), Op::AvgPool(pool), &[first]);
        }
        let mut parts = vec![part0];
        // The chain's widths as `CatBottleneck` sets them for four convolutions: a
        // quarter, an eighth and an eighth of the block's.
        let widths = [
            (cout / 2, cout / 4),
            (cout / 4, cout / 8),
            (cout / 8, cout / 8),
        ];
        for (k, (cin, cout)) in widths.into_iter().enumerate() {
            chain = self.conv_bn_relu(&at(k + 1), chain, conv3x3(cin, cout, 1))?;
            parts.push(chain);
        }
        Ok(self.g.add(key(name, "cat"), Op::Concat, &parts))
    }

    /// The STDC network's maps at 1/2, 1/4, 1/8, 1/16 and 1/32 with their channels
    /// (`STDCNet813` / `STDCNet1446.forward`), under `cp.backbone`.
    fn stdc_backbone(
        &mut self,
        x: ValueId,
        backbone: StdcBackbone,
        use_conv_last: bool,
    ) -> Result<[(ValueId, usize); 5]> {
        let at = |i: usize| format!("cp.backbone.features.{i}");
        let feat2 = self.conv_bn_relu(&at(0), x, conv3x3(IMAGE, BASE / 2, 2))?;
        let feat4 = self.conv_bn_relu(&at(1), feat2, conv3x3(BASE / 2, BASE, 2))?;
        let mut maps = vec![(feat2, BASE / 2), (feat4, BASE)];
        let (mut y, mut cin, mut i) = (feat4, BASE, 2);
        for (s, blocks) in backbone.layers().into_iter().enumerate() {
            let cout = BASE << (s + 2);
            for j in 0..blocks {
                let stride = if j == 0 { 2 } else { 1 };
                y = self.cat_bottleneck(&at(i), y, (cin, cout, stride))?;
                (cin, i) = (cout, i + 1);
            }
            maps.push((y, cout));
        }
        if use_conv_last {
            let last = self.conv_bn_relu("cp.backbone.conv_last", y, conv1x1(cin, cin))?;
            maps[4] = (last, cin);
        }
        Ok([maps[0], maps[1], maps[2], maps[3], maps[4]])
    }
}

impl Architecture for StdcSegConfig {
    /// Checks that there is a class, and that the detail heads asked for are a form
    /// PyTorch's `forward` returns (`use_boundary_8`, with `use_boundary_4`, with
    /// `use_boundary_2`; elsewhere it returns `None`).
    fn validate(&self) -> Result<()> {
        positive(&[("n_classes", self.n_classes)])?;
        let flags = [
            ("use_boundary_2", self.use_boundary_2),
            ("use_boundary_4", self.use_boundary_4),
            ("use_boundary_8", self.use_boundary_8),
        ];
        // Each flag set needs every flag after it (the deeper heads).
        for (k, (name, set)) in flags.iter().enumerate() {
            if let Some((missing, _)) = flags[k + 1..].iter().find(|f| *set && !f.1) {
                return Err(Error::InvalidParam {
                    name: missing,
                    reason: format!(
                        "{name} needs {missing} too: PyTorch's forward returns the detail \
                         heads at 1/8, at 1/4 and 1/8, or at 1/2, 1/4 and 1/8 only"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Loads `cp.backbone.features.*` (with `use_conv_last` also `cp.backbone.conv_last`),
    /// `cp.*`, `ffm.*`, `conv_out.*`, with `side_outputs` `conv_out16.*` and
    /// `conv_out32.*`, and the detail heads asked for (`conv_out_sp2` / `sp4` / `sp8`).
    /// The backbone's classifier (`conv_last` without `use_conv_last`, `fc`, `bn`,
    /// `linear`) and `conv_out_sp16`, which `forward` never runs, are not read.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let mut b = Builder::new(gpu, sd, prefix);
        let x = b.g.input();
        let maps = b.stdc_backbone(x, self.backbone, self.use_conv_last)?;
        let [_, _, feat8, feat16, feat32] = maps;
        let mut outs = b.context_and_heads(
            x,
            [feat8, feat16, feat32],
            self.n_classes,
            self.side_outputs,
        )?;
        for (name, map, channels) in self.detail_heads() {
            outs.push(b.logits_head(name, maps[map].0, (channels, 64, 1))?);
        }
        b.g.set_outputs(&outs);
        Ok(b.g)
    }

    /// Checks an input shape: 3 channels (the layers check the rest).
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        crate::ops::check_channels(input, IMAGE)
    }
}
