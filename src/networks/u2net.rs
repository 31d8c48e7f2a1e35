//! U²-Net (Qin et al. 2020) and IS-Net (Qin et al. 2022), the salient-object and
//! dichotomous-image segmentation networks behind most background-removal tools (rembg's
//! `u2net`, `u2netp`, `u2net_human_seg` and `isnet-general-use`, BRIA's RMBG-1.4), as
//! xuebinqin/U-2-Net's `model/u2net.py` (`U2NET`, `U2NETP`) and xuebinqin/DIS's
//! `IS-Net/models/isnet.py` (`ISNetDIS`) write them, under their state-dict names, so
//! their checkpoints load as they are.
//!
//! Both are a U-Net of residual U-blocks (RSU): `stage{i}` and `stage{i}d`, each a small
//! U-Net of its own (`rebnconvin`, `rebnconv{j}`, `rebnconv{j}d`: 3x3 convolutions with
//! bias, batch norm and ReLU) whose output is added to its input convolution's. An
//! `RSU-L` pools with 2x2 ceil-mode max pools between its first `L - 1` levels and dilates
//! its deepest convolution by 2; an `RSU-LF` ("4F") keeps the resolution and dilates its
//! levels by 1, 2, 4, 8. Between stages the same pools go down, and bilinear resizes
//! (`F.upsample(size=..., mode='bilinear')`, corners not aligned) back to the skip's size
//! go up, concatenated before the skip. A 3x3 side convolution on each decoder stage (and
//! the deepest encoder stage) gives a map resized to the input's size; U²-Net fuses the
//! six with a 1x1 `outconv`. Any input size works (ceil-mode pools never empty a map).
//! `tests/golden/third_party` holds the two PyTorch files the tests compare with.

use super::resize_like;
use crate::blocks::{conv_bn, Architecture, ConvBnAct, Graph, Model, Op, ValueId};
use crate::error::{fail_if, Result};
use crate::gpu::Gpu;
use crate::ops::conv::{Conv2dParams, ResidualJoin};
use crate::ops::pool::MaxPool2dParams;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// One residual U-block (RSU) of a U²-Net stage: `RSU7(in_ch, mid_ch, out_ch)` is
/// `Rsu::new(7, in_ch, mid_ch, out_ch)`, `RSU4F` is `Rsu::new(4, ..).dilated()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rsu {
    /// Levels `L` (U-Net's `RSU7` .. `RSU4`: 7 .. 4): convolutions `rebnconv1` ..
    /// `rebnconv{L}` down, `rebnconv{L-1}d` .. `rebnconv1d` up.
    pub height: usize,
    /// `RSU-LF`: no pooling, level `j` dilated by `2^(j-1)` (the `F` blocks, `RSU4F`);
    /// otherwise a 2x2 ceil-mode max pool after each of the first `L - 2` levels and the
    /// deepest convolution dilated by 2.
    pub dilated: bool,
    /// The block's input channels (`in_ch`).
    pub in_channels: usize,
    /// Channels inside the U (`mid_ch`).
    pub mid_channels: usize,
    /// Output channels (`out_ch`), also `rebnconvin`'s.
    pub out_channels: usize,
}

impl Rsu {
    /// `RSU{height}(in_ch, mid_ch, out_ch)`.
    pub fn new(
        height: usize,
        in_channels: usize,
        mid_channels: usize,
        out_channels: usize,
    ) -> Self {
        Rsu {
            height,
            dilated: false,
            in_channels,
            mid_channels,
            out_channels,
        }
    }

    /// The `F` form: dilations instead of pooling (`RSU4F`).
    pub fn dilated(self) -> Self {
        Rsu {
            dilated: true,
            ..self
        }
    }

    /// The dilation of level `j` (1-based) down, and of `rebnconv{j}d` up.
    fn dilation(&self, j: usize) -> usize {
        match (self.dilated, j) {
            (true, j) => 1 << (j - 1),
            (false, j) if j == self.height => 2,
            _ => 1,
        }
    }

    /// Checks the block on its own; errors name `name` (`encoder` or `decoder`) and the
    /// stage (`stage`).
    fn validate(&self, name: &'static str, stage: &str) -> Result<()> {
        let widths = [
            ("in_channels", self.in_channels),
            ("mid_channels", self.mid_channels),
            ("out_channels", self.out_channels),
        ];
        for (field, width) in widths {
            fail_if(!(1..=MAX_WIDTH).contains(&width), name, || {
                format!("{stage}.{field} must be 1 to {MAX_WIDTH}, got {width}")
            })?;
        }
        // The F form dilates its deepest level by 2^(L-1); ten levels pool a map 256 times.
        fail_if(!(2..=10).contains(&self.height), name, || {
            format!("{stage}: an RSU has 2 to 10 levels, got {}", self.height)
        })
    }
}

/// The widest layer a configuration may have (channel sums stay far from overflow).
const MAX_WIDTH: usize = 1 << 20;

/// The configuration of a U²-Net or IS-Net: its stages (2 to 8 encoder stages of
/// [`Rsu`] blocks of 2 to 10 levels, one decoder stage fewer), IS-Net's stem, and which
/// maps it returns. The presets [`u2net`](Self::u2net), [`u2netp`](Self::u2netp) and
/// [`isnet`](Self::isnet) are the published networks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct U2NetConfig {
    /// Input channels (`in_ch`, 3).
    pub in_channels: usize,
    /// Channels of every output map (`out_ch`, 1).
    pub out_channels: usize,
    /// IS-Net's `conv_in`: a 3x3 stride-2 convolution with bias (no norm, no activation)
    /// of this many channels before `stage1`, so the stages run at half the resolution
    /// (`None`: U²-Net, whose `stage1` reads the input).
    pub stem_channels: Option<usize>,
    /// The encoder's stages `stage1` .. `stage{n}`, shallowest first, a pool between each
    /// two.
    pub encoder: Vec<Rsu>,
    /// The decoder's stages `stage{n-1}d` .. `stage1d`, deepest first: each reads the
    /// deeper map resized to its skip's size, concatenated before the skip.
    pub decoder: Vec<Rsu>,
    /// U²-Net's `outconv`: the `n` side maps fused by a 1x1 convolution into the first
    /// output (`false`: IS-Net, whose first output is `side1`'s map).
    pub fuse_sides: bool,
    /// Return every map PyTorch's `forward` returns (U²-Net: the fused map and the `n`
    /// side maps, `n + 1` in all; IS-Net: the `n` side maps) rather than the first only.
    /// The presets set `true`; applications that use the first map alone (rembg does)
    /// skip the side maps' sigmoids and stores with `false` (and, without `fuse_sides`,
    /// the side convolutions and resizes the first map does not need).
    pub side_outputs: bool,
}

impl U2NetConfig {
    /// `U2NET(in_ch, out_ch)`: the full U²-Net (44.0 M parameters for 3 -> 1), the
    /// architecture of rembg's `u2net`, `u2net_human_seg` and U-2-Net's portrait model.
    pub fn u2net(in_channels: usize, out_channels: usize) -> Self {
        U2NetConfig {
            in_channels,
            out_channels,
            stem_channels: None,
            encoder: vec![
                Rsu::new(7, in_channels, 32, 64),
                Rsu::new(6, 64, 32, 128),
                Rsu::new(5, 128, 64, 256),
                Rsu::new(4, 256, 128, 512),
                Rsu::new(4, 512, 256, 512).dilated(),
                Rsu::new(4, 512, 256, 512).dilated(),
            ],
            decoder: Self::full_decoder(),
            fuse_sides: true,
            side_outputs: true,
        }
    }

    /// `U2NETP(in_ch, out_ch)`: the small U²-Net (1.13 M parameters for 3 -> 1), rembg's
    /// `u2netp`.
    pub fn u2netp(in_channels: usize, out_channels: usize) -> Self {
        let mut encoder = vec![Rsu::new(7, in_channels, 16, 64)];
        encoder.extend((4..=6).rev().map(|h| Rsu::new(h, 64, 16, 64)));
        encoder.extend([Rsu::new(4, 64, 16, 64).dilated(); 2]);
        U2NetConfig {
            in_channels,
            out_channels,
            stem_channels: None,
            encoder,
            decoder: vec![
                Rsu::new(4, 128, 16, 64).dilated(),
                Rsu::new(4, 128, 16, 64),
                Rsu::new(5, 128, 16, 64),
                Rsu::new(6, 128, 16, 64),
                Rsu::new(7, 128, 16, 64),
            ],
            fuse_sides: true,
            side_outputs: true,
        }
    }

    /// `ISNetDIS(in_ch, out_ch)`: IS-Net (44.0 M parameters for 3 -> 1), U²-Net's stages
    /// after a 64-channel stride-2 `conv_in`, six side maps and no fusion; the
    /// architecture of rembg's `isnet-general-use` and `isnet-anime` and of BRIA's
    /// RMBG-1.4 (`BriaRMBG`).
    pub fn isnet(in_channels: usize, out_channels: usize) -> Self {
        let mut cfg = Self::u2net(in_channels, out_channels);
        cfg.stem_channels = Some(64);
        cfg.encoder[0].in_channels = 64;
        cfg.fuse_sides = false;
        cfg
    }

    /// U²-Net's and IS-Net's decoder.
    fn full_decoder() -> Vec<Rsu> {
        vec![
            Rsu::new(4, 1024, 256, 512).dilated(),
            Rsu::new(4, 1024, 128, 256),
            Rsu::new(5, 512, 64, 128),
            Rsu::new(6, 256, 32, 64),
            Rsu::new(7, 128, 16, 64),
        ]
    }

    /// The preset of a name: `u2net` (also `u2net_human_seg`, `u2net_portrait`),
    /// `u2netp`, `isnet` (also `isnet-general-use`, `isnet-anime`, `rmbg-1.4`,
    /// `briarmbg`), 3 input
    /// channels and 1 output channel as their checkpoints have; other names are an error
    /// naming `name`.
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "u2net" | "u2net_human_seg" | "u2net_portrait" => Self::u2net(3, 1),
            "u2netp" => Self::u2netp(3, 1),
            "isnet" | "isnet-general-use" | "isnet-anime" | "rmbg-1.4" | "briarmbg" => {
                Self::isnet(3, 1)
            }
            _ => {
                return Err(crate::Error::InvalidParam {
                    name: "name",
                    reason: format!(
                        "unknown U²-Net {name:?}: expected u2net, u2net_human_seg, \
                         u2net_portrait, u2netp, isnet, isnet-general-use, isnet-anime, \
                         rmbg-1.4 or briarmbg"
                    ),
                })
            }
        })
    }

    /// Sets the `side_outputs` field: every map, or the first only.
    pub fn side_outputs(mut self, side_outputs: bool) -> Self {
        self.side_outputs = side_outputs;
        self
    }

    /// The stage before decoder stage `i` (0-based, deepest first) and its skip's
    /// channels: the deeper map's channels, the skip's.
    fn decoder_inputs(&self, i: usize) -> (usize, usize) {
        let n = self.encoder.len();
        let deeper = match i {
            0 => self.encoder[n - 1].out_channels,
            _ => self.decoder[i - 1].out_channels,
        };
        (deeper, self.encoder[n - 2 - i].out_channels)
    }
}

/// A U²-Net or IS-Net for inference: input `[N, in_channels, H, W]`, outputs maps
/// `[N, out_channels, H, W]` of probabilities (see [`U2NetConfig::side_outputs`]).
pub type U2Net = Model<U2NetConfig>;

/// `REBNCONV(cin, cout, dirate)` under `prefix`: `conv_s1` (3x3, padding and dilation
/// `dirate`, bias) with `bn_s1` and ReLU.
fn rebnconv(
    (gpu, sd, prefix): (&Gpu, &StateDict, &str),
    (cin, cout, dilation): (usize, usize, usize),
) -> Result<ConvBnAct> {
    let params = Conv2dParams::new(cin, cout, 3)
        .padding(dilation)
        .dilation(dilation)
        .activation(Activation::Relu);
    conv_bn(
        gpu,
        sd,
        params,
        &key(prefix, "conv_s1"),
        &key(prefix, "bn_s1"),
        1e-5,
    )
}

/// A 2x2 stride-2 ceil-mode max pool (its values).
fn pool(g: &mut Graph, name: String, x: ValueId) -> ValueId {
    let params = MaxPool2dParams::new(2).ceil_mode(true);
    g.add_multi(name, Op::MaxPool(params), &[x], 2)[0]
}

/// One RSU under `prefix` as a graph of its own.
fn rsu(gpu: &Gpu, sd: &StateDict, prefix: &str, block: Rsu) -> Result<Graph> {
    let (l, mid) = (block.height, block.mid_channels);
    let at = |n: String| key(prefix, &n);
    let mut g = Graph::new();
    let x = g.input();
    let conv_in = rebnconv(
        (gpu, sd, &at("rebnconvin".into())),
        (block.in_channels, block.out_channels, 1),
    )?;
    let hxin = g.add("rebnconvin", conv_in, &[x]);
    // Levels down: hx1 .. hx{L}, each after the previous one's pool (none in the F form
    // and none before the deepest level).
    let mut levels: Vec<ValueId> = Vec::with_capacity(l);
    for j in 1..=l {
        let input = match (j, levels.last()) {
            (1, _) => hxin,
            (_, Some(&prev)) if block.dilated || j == l => prev,
            (_, Some(&prev)) => pool(&mut g, format!("pool{}", j - 1), prev),
            (_, None) => unreachable!("level {j} follows level 1"),
        };
        let cin = if j == 1 { block.out_channels } else { mid };
        let name = format!("rebnconv{j}");
        let conv = rebnconv((gpu, sd, &at(name.clone())), (cin, mid, block.dilation(j)))?;
        levels.push(g.add(name, conv, &[input]));
    }
    // Levels up: rebnconv{j}d on cat(the deeper map, resized to hx{j} where pooled, hx{j}).
    let mut y = levels[l - 1];
    for j in (1..l).rev() {
        let skip = levels[j - 1];
        let deeper = if block.dilated || j == l - 1 {
            y
        } else {
            resize_like(&mut g, format!("rebnconv{}dup", j + 1), y, skip)
        };
        let joined = g.add(format!("cat{j}"), Op::Concat, &[deeper, skip]);
        let name = format!("rebnconv{j}d");
        let cout = if j == 1 { block.out_channels } else { mid };
        let mut conv = rebnconv(
            (gpu, sd, &at(name.clone())),
            (2 * mid, cout, block.dilation(j)),
        )?;
        y = if j == 1 {
            // `hx1d + hxin`, after hx1d's ReLU, in the convolution's store.
            conv = conv.with_residual(ResidualJoin::AfterActivation)?;
            g.add(name, conv, &[joined, hxin])
        } else {
            g.add(name, conv, &[joined])
        };
    }
    g.set_outputs(&[y]);
    Ok(g)
}

impl Architecture for U2NetConfig {
    /// Checks the configuration on its own: every width positive, at least two encoder
    /// stages and one decoder stage fewer, each stage's input the width that reaches it.
    fn validate(&self) -> Result<()> {
        for (name, width) in [
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
            ("stem_channels", self.stem_channels.unwrap_or(1)),
        ] {
            fail_if(!(1..=MAX_WIDTH).contains(&width), name, || {
                format!("1 to {MAX_WIDTH}, got {width}")
            })?;
        }
        let n = self.encoder.len();
        fail_if(!(2..=8).contains(&n), "encoder", || {
            format!("2 to 8 stages, got {n}")
        })?;
        fail_if(self.decoder.len() + 1 != n, "decoder", || {
            format!(
                "one stage fewer than the encoder's {n}, got {}",
                self.decoder.len()
            )
        })?;
        let mut width = self.stem_channels.unwrap_or(self.in_channels);
        for (i, stage) in self.encoder.iter().enumerate() {
            stage.validate("encoder", &format!("stage{}", i + 1))?;
            fail_if(stage.in_channels != width, "encoder", || {
                format!(
                    "stage{} reads {width} channels, its in_channels is {}",
                    i + 1,
                    stage.in_channels
                )
            })?;
            width = stage.out_channels;
        }
        for (i, stage) in self.decoder.iter().enumerate() {
            stage.validate("decoder", &format!("stage{}d", n - 1 - i))?;
            let (deeper, skip) = self.decoder_inputs(i);
            fail_if(stage.in_channels != deeper + skip, "decoder", || {
                format!(
                    "stage{}d reads {deeper} + {skip} channels, its in_channels is {}",
                    n - 1 - i,
                    stage.in_channels
                )
            })?;
        }
        Ok(())
    }

    /// Loads `conv_in` (IS-Net), `stage{i}` / `stage{i}d` (`.rebnconv*.conv_s1` /
    /// `.bn_s1`), `side{i}` and `outconv` (U²-Net).
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let at = |n: &str| key(prefix, n);
        let n = self.encoder.len();
        let mut g = Graph::new();
        let x = g.input();
        let mut hx = match self.stem_channels {
            Some(c) => {
                let p = Conv2dParams::new(self.in_channels, c, 3)
                    .stride(2)
                    .padding(1);
                let conv = ConvBnAct::load(gpu, sd, p, &at("conv_in"), None, 0.0)?;
                g.add("conv_in", conv, &[x])
            }
            None => x,
        };
        let mut skips = Vec::with_capacity(n);
        for (i, stage) in self.encoder.iter().enumerate() {
            let name = format!("stage{}", i + 1);
            if i > 0 {
                hx = pool(&mut g, format!("pool{i}{}", i + 1), hx);
            }
            hx = g.add(name.clone(), rsu(gpu, sd, &at(&name), *stage)?, &[hx]);
            skips.push(hx);
        }
        // Side maps from the deepest stage up: side{n} reads stage{n}, side{i} stage{i}d.
        let mut sides = vec![hx];
        for (i, stage) in self.decoder.iter().enumerate() {
            let level = n - 1 - i;
            let skip = skips[level - 1];
            let up = resize_like(&mut g, format!("stage{}up", level + 1), hx, skip);
            let joined = g.add(format!("cat{level}"), Op::Concat, &[up, skip]);
            let name = format!("stage{level}d");
            hx = g.add(name.clone(), rsu(gpu, sd, &at(&name), *stage)?, &[joined]);
            sides.push(hx);
        }
        sides.reverse();
        // Without the fusion and the side outputs only side1's map is needed.
        let maps_needed = match self.fuse_sides || self.side_outputs {
            true => n,
            false => 1,
        };
        let mut maps = Vec::with_capacity(maps_needed);
        for (i, (&side, width)) in sides
            .iter()
            .zip(self.decoder.iter().rev().chain(self.encoder.last()))
            .enumerate()
            .take(maps_needed)
        {
            let name = format!("side{}", i + 1);
            let p = Conv2dParams::new(width.out_channels, self.out_channels, 3).padding(1);
            let conv = ConvBnAct::load(gpu, sd, p, &at(&name), None, 0.0)?;
            let d = g.add(name.clone(), conv, &[side]);
            // U²-Net's side1 is at the input's size already: F.upsample to the same size
            // is a copy, left out.
            let resized = i > 0 || self.stem_channels.is_some();
            maps.push(match resized {
                true => resize_like(&mut g, format!("{name}up"), d, x),
                false => d,
            });
        }
        // The maps returned through a sigmoid: every one, or the first when it is a side
        // map (without the fusion) and none when it is the fused one.
        let returned = match self.side_outputs {
            true => maps.len(),
            false => usize::from(!self.fuse_sides),
        };
        let mut outs: Vec<ValueId> = maps[..returned]
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                let sigmoid = Op::Activation(Activation::Sigmoid);
                g.add(format!("sigmoid{}", i + 1), sigmoid, &[d])
            })
            .collect();
        if self.fuse_sides {
            // `outconv` on every side map's logits, its sigmoid in its store.
            let joined = g.add("cat_sides", Op::Concat, &maps);
            let p = Conv2dParams::new(n * self.out_channels, self.out_channels, 1)
                .activation(Activation::Sigmoid);
            let conv = ConvBnAct::load(gpu, sd, p, &at("outconv"), None, 0.0)?;
            outs.insert(0, g.add("outconv", conv, &[joined]));
        }
        g.set_outputs(&outs);
        Ok(g)
    }

    /// Checks an input shape: `in_channels` channels (any size works).
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        crate::ops::check_channels(input, self.in_channels)
    }
}
