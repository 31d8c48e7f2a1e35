//! A whole inverted residual in one dispatch (`shaders/inverted_residual.wgsl`): 1x1
//! expansion + activation, k x k depthwise + activation, linear 1x1 projection and the
//! skip, as torchvision's MobileNetV2 and MobileNetV3 blocks compute them, with the batch
//! norms folded into the weights. The expanded activations never reach device memory: a
//! workgroup computes them for its tile of output pixels (and the tile's halo) a few
//! hidden channels at a time, in workgroup memory. A block with squeeze-and-excitation
//! takes two such passes around its gate, which needs the whole depthwise output:
//! expansion + depthwise (writing that output), the SE gate, then gate + projection + skip.
//!
//! [`select_kernel`] decides between this kernel and the three separate convolutions:
//! the fused kernel recomputes the expansion on each tile's halo, and splits the output
//! channels into blocks (each recomputing the expansion) when one invocation would hold
//! too many projection sums, so it is chosen only when it does not multiply the work by
//! more than [`FUSED_WORK_MAX`], and only for blocks without an expansion layer: on a
//! discrete GPU the expanding blocks measured slower fused (see [`select_kernel`]).

use std::sync::Arc;

use ndarray::{ArrayView1, ArrayView4};

use super::attention::SqueezeExcitation;
use super::{Activation, Cost, Window};
use crate::error::{fail_if, positive, Error, Result};
use crate::gpu::{check_owner, DeviceCaps, Gpu, LazyWeights, Recorder, Tensor};
use crate::launch::{
    loop_tree, read, read_opt, shader_modes, specialize, uniform, write, Args, Count, Kernel,
    KernelInfo, Launch, Trip, LOOP_BUDGET,
};

uniform! {
    /// `shaders/inverted_residual.wgsl`.
    pub(crate) struct FusedBlockParams {
        n: u32,
        c_in: u32,
        h: u32,
        w: u32,
        hidden: u32,
        c_out: u32,
        cout4: u32,
        oh: u32,
        ow: u32,
        pad_h: u32,
        pad_w: u32,
        tiles_x: u32,
        tiles_y: u32,
        co_blocks: u32,
        chunks: u32,
        squeeze: u32,
        parts: u32,
    }
}

specialize! {
    /// The constants of `inverted_residual.wgsl`: the depthwise window, the tile and its
    /// halo, the hidden channels per pass (`hc`), the work per invocation (`units` of 4
    /// hidden channels x `qt` window positions, `dpt` depthwise values, `acc4` vec4s of
    /// projection sums), which parts exist, and the two activations.
    struct FusedSpec {
        window: Window,
        tile_h: Count => "TILE_H",
        tile_w: Count => "TILE_W",
        halo_h: Count => "HALO_H",
        halo_w: Count => "HALO_W",
        hc: Count => "HC",
        units: Count => "UNITS",
        qt: Count => "QT",
        dpt: Count => "DPT",
        acc4: Count => "ACC4",
        expand: bool => "EXPAND",
        skip: bool => "SKIP",
        expand_act: Activation => "EXPAND_ACT",
        depthwise_act: Activation => "DEPTHWISE_ACT",
        pass: FusedPass => "MODE",
        gate_act: Activation => "GATE_ACT",
        se_in_pass: bool => "SE_IN_PASS",
        se_len: Count => "SE_LEN",
        se_act: Activation => "SE_ACT",
    }
}

shader_modes! {
    /// Which part of a block one fused dispatch computes (the shader's `MODE`).
    pub enum FusedPass {
        /// The whole block (a block without SE).
        Block = 0,
        /// An SE block's first pass: expansion and depthwise convolution, writing the
        /// depthwise activations `[N, hidden, H_out, W_out]` (the gate needs all of them).
        Expand = 1,
        /// An SE block's second pass: the gated projection and the skip.
        Project = 2,
    }
}

const FUSED: Kernel<FusedBlockParams, FusedSpec> = Kernel::new(
    "inverted_residual.wgsl",
    &[
        read("x"),
        read_opt("w_expand"),
        read("w_depthwise"),
        read("w_project"),
        read("biases"),
        write("y"),
        read_opt("gate"),
        read_opt("residual"),
    ],
);

/// The kernels of this family.
pub(crate) const KERNELS: &[&dyn KernelInfo] = &[&FUSED];

/// The most projection sums one invocation keeps (registers).
const ACC_MAX: usize = 64;
/// Window positions per expansion unit (each unit is 4 hidden channels x `QT` positions).
const QT: usize = 4;
/// The most expansion units one invocation computes per pass.
const UNITS_MAX: usize = 4;
/// The most hidden channels per pass.
const HC_MAX: usize = 32;
/// The fused kernel is chosen when its multiply-adds (halo and channel-block
/// recomputation included) are at most this many times the separate convolutions', or
/// exceed them by at most [`FUSED_EXTRA_MACS`].
pub const FUSED_WORK_MAX: f64 = 1.5;
/// Extra multiply-adds always worth two dispatches and a round trip of the expanded
/// activations: about a microsecond on a laptop GPU, where a dispatch costs 2-8.
pub const FUSED_EXTRA_MACS: u64 = 4_000_000;

/// Parameters of an inverted residual as torchvision builds it: `Conv2dNormActivation`
/// 1x1 expansion (absent when `hidden_channels == in_channels`), depthwise `k x k` with
/// padding `(k - 1) / 2 * dilation` (or explicit before / after padding, as TensorFlow's
/// strided `'SAME'` gives), linear 1x1 projection, and the skip when `stride == 1`
/// and `in_channels == out_channels`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InvertedResidualParams {
    /// Input channels.
    pub in_channels: usize,
    /// Expanded channels (`in_channels` when there is no expansion).
    pub hidden_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Depthwise kernel size (square).
    pub kernel_size: usize,
    /// Depthwise stride.
    pub stride: usize,
    /// Depthwise dilation.
    pub dilation: usize,
    /// The depthwise convolution's zero padding `(before, after)`, the same on both axes
    /// (rows before the first / after the last, likewise columns); `None`: torchvision's
    /// `(k - 1) / 2 * dilation` on every side. See [`Self::padding_asymmetric`].
    pub padding: Option<(usize, usize)>,
    /// Activation after the expansion (MobileNetV2: ReLU6).
    pub expand_activation: Activation,
    /// Activation after the depthwise convolution.
    pub depthwise_activation: Activation,
    /// A 1x1 expansion even though `hidden_channels == in_channels` (MediaPipe's selfie
    /// model has one; torchvision's blocks expand exactly when the counts differ).
    pub force_expansion: bool,
    /// Squeeze-and-excitation between the depthwise convolution and the projection
    /// (MobileNetV3's `use_se`); the layer takes it with
    /// [`FusedInvertedResidual::with_squeeze_excitation`].
    pub use_se: bool,
}

impl InvertedResidualParams {
    /// MobileNetV2's block: 3x3 depthwise, ReLU6 after the expansion and the depthwise.
    pub fn new(in_channels: usize, hidden_channels: usize, out_channels: usize) -> Self {
        InvertedResidualParams {
            in_channels,
            hidden_channels,
            out_channels,
            kernel_size: 3,
            stride: 1,
            dilation: 1,
            padding: None,
            expand_activation: Activation::Relu6,
            depthwise_activation: Activation::Relu6,
            force_expansion: false,
            use_se: false,
        }
    }

    /// Whether the block has a 1x1 expansion.
    pub fn has_expansion(&self) -> bool {
        self.force_expansion || self.hidden_channels != self.in_channels
    }

    /// Whether the input is added to the output (torchvision's `use_res_connect`).
    pub fn has_skip(&self) -> bool {
        self.stride == 1 && self.in_channels == self.out_channels
    }

    /// Pads the depthwise input with `before` zeros before the first row and column and
    /// `after` after the last (TensorFlow's strided `'SAME'`, see
    /// [`tf_same_padding`](super::conv::tf_same_padding)).
    pub fn padding_asymmetric(mut self, before: usize, after: usize) -> Self {
        self.padding = Some((before, after));
        self
    }

    /// The depthwise convolution's padding `(before, after)` on each axis.
    pub fn pads(&self) -> (usize, usize) {
        self.padding.unwrap_or_else(|| {
            let pad = self.kernel_size.saturating_sub(1) / 2 * self.dilation;
            (pad, pad)
        })
    }

    /// The depthwise window (its padding: the padding before).
    pub fn window(&self) -> Window {
        let (k, s, d) = (self.kernel_size, self.stride, self.dilation);
        let pad = self.pads().0;
        Window::new((k, k), (s, s), (pad, pad), (d, d))
    }

    /// Checks the parameters on their own.
    pub fn validate(&self) -> Result<()> {
        positive(&[
            ("in_channels", self.in_channels),
            ("hidden_channels", self.hidden_channels),
            ("out_channels", self.out_channels),
        ])?;
        let after = self.pads().1;
        fail_if(after > super::WINDOW_MAX, "padding", || {
            format!("at most {} per side, got {after} after", super::WINDOW_MAX)
        })?;
        self.window().validate()
    }

    /// Validates against `[N, C_in, H, W]`; returns `[N, C_out, H_out, W_out]`.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        self.validate()?;
        super::check_channels(input, self.in_channels)?;
        let win = self.window();
        let [oh, ow] = super::per_axis(|a, pick| {
            let (k, s, p, d) = (
                pick(win.kernel_size),
                pick(win.stride),
                pick(win.padding),
                pick(win.dilation),
            );
            let after = self.pads().1;
            super::conv::conv_out_len("kernel_size", input[2 + a], k, s, p + after, d)
        })?;
        // The skip adds the input where the output is: the padding must keep the size.
        fail_if(
            self.has_skip() && [oh, ow] != [input[2], input[3]],
            "padding",
            || {
                format!(
                    "{:?} with a {}x{} window turns {}x{} into {oh}x{ow}, but a block with \
                     a skip (stride 1, in_channels == out_channels) must keep the size",
                    self.pads(),
                    self.kernel_size,
                    self.kernel_size,
                    input[2],
                    input[3]
                )
            },
        )?;
        super::layer_output(input, self.out_channels, [oh, ow])
    }

    /// Parameters (folded weights and biases) and MACs of the three convolutions.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let out = self.output_shape(input)?;
        let (cin, hid, cout, k) = (
            self.in_channels,
            self.hidden_channels,
            self.out_channels,
            self.kernel_size,
        );
        let expand = if self.has_expansion() { hid * cin } else { 0 };
        let pixels_in = input[0] * input[2] * input[3];
        let pixels_out = out[0] * out[2] * out[3];
        let elems = |s: [usize; 4]| s.iter().product::<usize>() as u64;
        let params = (expand + if self.has_expansion() { hid } else { 0 })
            + hid * k * k
            + hid
            + cout * hid
            + cout;
        Ok(Cost {
            params: params as u64,
            macs: (expand * pixels_in + (hid * k * k + cout * hid) * pixels_out) as u64,
            bytes: 4 * (elems(input) + elems(out) + params as u64),
        })
    }
}

/// How the fused kernel cuts the work: workgroups of `invocations` invocations, each
/// computing an output tile of `tile = (rows, columns)` pixels (at most `invocations`)
/// for one of `co_blocks` blocks of output channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FusedTile {
    /// Output pixels per tile, `(rows, columns)`.
    pub tile: (usize, usize),
    /// Blocks of output channels (each recomputes the expansion).
    pub co_blocks: usize,
    /// Invocations per workgroup: 64, 128 or 256 (more hold the sums of more channels).
    pub invocations: usize,
}

/// The workgroup sizes the choice considers (those within the device's limit).
const INVOCATIONS: [usize; 3] = [64, 128, 256];

/// The kernels an inverted residual can run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InvertedResidualKernel {
    /// The whole block in one dispatch (`inverted_residual.wgsl`).
    Fused(FusedTile),
    /// A block with SE in two fused dispatches around the gate: expansion + depthwise,
    /// then gate + projection + skip.
    TwoPass {
        /// The first pass's tile.
        expand: FusedTile,
        /// The second pass's tile.
        project: FusedTile,
        /// Where the gate is computed.
        gate: GatePlacement,
    },
    /// Expansion, depthwise (SE) and projection as separate dispatches (the block's own
    /// layers).
    Unfused,
}

/// Where a block with SE computes its gate (which needs the whole map of depthwise
/// activations, so neither pass can compute it alone).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GatePlacement {
    /// In the passes: the first also writes each tile's channel sums, the second adds them
    /// up and runs the SE's two 1x1 layers in every workgroup before the projection. Two
    /// dispatches a block.
    InPasses,
    /// A dispatch of its own between the passes (the SE layer's). Three a block.
    Separate,
}

/// The SE computed in the passes ([`GatePlacement::InPasses`]): squeezed channels, and the
/// first pass's tiles per image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SeInPass {
    squeeze: usize,
    parts: usize,
}

/// The tiles the choice considers: 4 to 196 pixels, at most 16 on a side; the 7s fit the
/// 7x7 and 14x14 maps of 224-pixel inputs (invocations past a multiple of the tile only
/// help with the expansion and the depthwise convolution).
const TILES: [(usize, usize); 18] = [
    (7, 7),
    (7, 14),
    (14, 7),
    (14, 14),
    (8, 8),
    (4, 16),
    (16, 4),
    (4, 8),
    (8, 4),
    (2, 16),
    (4, 4),
    (2, 8),
    (8, 2),
    (2, 4),
    (4, 2),
    (1, 8),
    (2, 2),
    (1, 4),
];

/// Everything a fused launch needs, derived from a tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FusedPlan {
    /// The block's output shape.
    out: [usize; 4],
    spec_sizes: [usize; 8],
    tiles: (usize, usize),
    co_blocks: usize,
    chunks: usize,
    loops: u64,
    macs: u64,
    /// Workgroup memory in floats: the expanded and depthwise tiles and `se_values`
    /// ([`se_values_len`]: a device counts every array its entry point refers to, even in
    /// a branch a constant rules out).
    floats: usize,
    /// The SE computed in the passes.
    se: Option<SeInPass>,
}

impl FusedPlan {
    /// The plan of `tile` for `pass` of the block `params` on the block's input `input`,
    /// or `None` when the tile cannot run it (too many sums per invocation, workgroup
    /// memory, the loop budget).
    fn new(
        params: &InvertedResidualParams,
        pass: FusedPass,
        input: [usize; 4],
        tile: FusedTile,
        caps: &DeviceCaps,
    ) -> Option<FusedPlan> {
        let out = params.output_shape(input).ok()?;
        let (th, tw) = tile.tile;
        let wg = tile.invocations;
        let tp = th * tw;
        let limit = caps.max_compute_invocations_per_workgroup as usize;
        if tp == 0 || wg > limit || tp > wg || tile.co_blocks == 0 {
            return None;
        }
        let lanes = wg / tp;
        let projects = pass != FusedPass::Expand;
        let (acc4, co_blocks) = if projects {
            let per_block = params.out_channels.div_ceil(tile.co_blocks);
            let acc4 = per_block.div_ceil(4 * lanes);
            (acc4, params.out_channels.div_ceil(4 * lanes * acc4))
        } else {
            (1, 1)
        };
        // The second pass reads its tile as it is: a 1 x 1 window.
        let win = match pass {
            FusedPass::Project => Window::default(),
            _ => params.window(),
        };
        let halo_h = (th - 1) * win.stride.0.max(1) + win.extent().0;
        let halo_w = (tw - 1) * win.stride.1.max(1) + win.extent().1;
        let halo = if pass == FusedPass::Project {
            1
        } else {
            halo_h * halo_w
        };
        let hidden = params.hidden_channels.next_multiple_of(4);
        let floats = caps.max_compute_workgroup_storage_size as usize / 4;
        let units_of = |hc: usize| (hc / 4 * halo.div_ceil(QT)).div_ceil(wg);
        let hc = (1..=HC_MAX.min(hidden) / 4)
            .rev()
            .map(|q| 4 * q)
            .find(|&hc| {
                units_of(hc) <= UNITS_MAX
                    && hc * (halo + tp) + se_values_len(params, pass, None) <= floats
            });
        let hc = match hc {
            Some(hc) if 4 * acc4 <= ACC_MAX => hc,
            _ => return None,
        };
        let (units, dpt) = (units_of(hc), (hc * tp).div_ceil(wg));
        let chunks = hidden.div_ceil(hc);
        let k = win.kernel_size.0.max(1) as u64;
        let c_in = params.in_channels as u64;
        let c = |n: usize| Trip::Constant(n as u64);
        let first: [&[Trip]; 2] = match pass {
            FusedPass::Project => [&[c(dpt)], &[]],
            _ => [
                &[c(units), Trip::Uniform(c_in)],
                &[c(dpt), Trip::Constant(k), Trip::Constant(k)],
            ],
        };
        let project: &[Trip] = if projects {
            &[Trip::Uniform(hc as u64), c(acc4)]
        } else {
            &[c(dpt)]
        };
        let loops = loop_tree(
            &[Trip::Uniform(chunks as u64)],
            &[first[0], first[1], project],
        ) + loop_tree(&[c(acc4), c(4)], &[]);
        if loops > LOOP_BUDGET {
            return None;
        }
        let tiles = (out[2].div_ceil(th), out[3].div_ceil(tw));
        let groups = (input[0] * tiles.0 * tiles.1) as u64;
        let expand = if params.has_expansion() { c_in } else { 0 };
        let hidden = hidden as u64;
        // Units entirely outside the image (the padding ring) are skipped.
        let in_image = (halo_h.min(input[2]) * halo_w.min(input[3])) as u64;
        let first_macs = match pass {
            FusedPass::Project => 0,
            _ => co_blocks as u64 * (expand * hidden * in_image + hidden * k * k * tp as u64),
        };
        let project_macs = if projects {
            hidden * (co_blocks * lanes * 4 * acc4 * tp) as u64
        } else {
            0
        };
        Some(FusedPlan {
            out,
            spec_sizes: [th, tw, halo_h, halo_w, hc, units, dpt, acc4],
            tiles,
            co_blocks,
            chunks,
            loops,
            macs: groups * (first_macs + project_macs),
            floats: hc * (halo + tp) + se_values_len(params, pass, None),
            se: None,
        })
    }

    /// [`FusedPlan::new`], or the typed error that names the tile that cannot run.
    fn checked(
        params: &InvertedResidualParams,
        pass: FusedPass,
        input: [usize; 4],
        tile: FusedTile,
        caps: &DeviceCaps,
    ) -> Result<FusedPlan> {
        FusedPlan::new(params, pass, input, tile, caps).ok_or_else(|| Error::InvalidParam {
            name: "kernel",
            reason: format!("{tile:?} cannot run {pass:?} of {params:?} on {input:?}"),
        })
    }

    /// The plan with the SE computed in the pass ([`GatePlacement::InPasses`]), or `None`
    /// when its loops or its workgroup memory do not fit.
    fn with_se(
        mut self,
        params: &InvertedResidualParams,
        pass: FusedPass,
        se: SeInPass,
        invocations: usize,
        caps: &DeviceCaps,
    ) -> Option<FusedPlan> {
        let (c, s) = (params.hidden_channels, se.squeeze);
        let per = |n: usize| Trip::Uniform(n.div_ceil(invocations) as u64);
        let [th, tw, ..] = self.spec_sizes;
        let extra = match pass {
            // Each pass's channel sums over the tile's pixels.
            FusedPass::Expand => loop_tree(
                &[
                    Trip::Uniform(self.chunks as u64),
                    Trip::Constant((th * tw) as u64),
                ],
                &[],
            ),
            FusedPass::Project => {
                loop_tree(&[per(c), Trip::Uniform(se.parts as u64)], &[])
                    + loop_tree(&[per(s), Trip::Uniform(c as u64)], &[])
                    + loop_tree(&[per(c), Trip::Uniform(s as u64)], &[])
            }
            FusedPass::Block => return None,
        };
        self.loops += extra;
        self.floats += se_values_len(params, pass, Some(se));
        self.floats -= se_values_len(params, pass, None);
        let limit = caps.max_compute_workgroup_storage_size as usize / 4;
        if self.loops > LOOP_BUDGET || self.floats > limit {
            return None;
        }
        self.se = Some(se);
        Some(self)
    }

    /// The dispatch of this plan for `pass` of the block `p` on the block's input shape
    /// `s`, with `tile` and the SE's gate activation `gate_act` and (for the SE in the
    /// pass) hidden activation `se_act`.
    fn launch(
        &self,
        p: &InvertedResidualParams,
        pass: FusedPass,
        s: [usize; 4],
        tile: FusedTile,
        (gate_act, se_act): (Activation, Activation),
    ) -> Launch {
        let plan = self;
        let out = pass_output(p, pass, plan.out);
        let [th, tw, halo_h, halo_w, hc, units, dpt, acc4] =
            plan.spec_sizes.map(|v| Count(v as u32));
        let window = match pass {
            FusedPass::Project => Window::default(),
            _ => p.window(),
        };
        let (halo_h, halo_w) = match pass {
            FusedPass::Project => (Count(1), Count(1)),
            _ => (halo_h, halo_w),
        };
        let spec = FusedSpec {
            window,
            tile_h: th,
            tile_w: tw,
            halo_h,
            halo_w,
            hc,
            units,
            qt: Count(QT as u32),
            dpt,
            acc4,
            expand: p.has_expansion() && pass != FusedPass::Project,
            skip: p.has_skip() && pass != FusedPass::Expand,
            expand_act: p.expand_activation,
            depthwise_act: p.depthwise_activation,
            pass,
            gate_act,
            se_in_pass: plan.se.is_some(),
            se_len: Count(se_values_len(p, pass, plan.se) as u32),
            se_act,
        };
        // What x is: the block's input, or for the second pass the first pass's output.
        let x = match pass {
            FusedPass::Project => pass_output(p, FusedPass::Expand, plan.out),
            _ => s,
        };
        let u32_of = |v: usize| v as u32;
        let u = FusedBlockParams {
            n: u32_of(x[0]),
            c_in: u32_of(x[1]),
            h: u32_of(x[2]),
            w: u32_of(x[3]),
            hidden: u32_of(p.hidden_channels.next_multiple_of(4)),
            c_out: u32_of(out[1]),
            cout4: u32_of(out[1].div_ceil(4)),
            oh: u32_of(out[2]),
            ow: u32_of(out[3]),
            pad_h: u32_of(window.padding.0),
            pad_w: u32_of(window.padding.1),
            tiles_x: u32_of(plan.tiles.1),
            tiles_y: u32_of(plan.tiles.0),
            co_blocks: u32_of(plan.co_blocks),
            chunks: u32_of(plan.chunks),
            squeeze: u32_of(plan.se.map_or(0, |se| se.squeeze)),
            parts: u32_of(plan.se.map_or(0, |se| se.parts)),
        };
        FUSED
            .launch(&spec, &u)
            .workgroup_size(tile.invocations as u32)
            .workgroups(s[0] * plan.tiles.0 * plan.tiles.1 * plan.co_blocks)
            .loops(plan.loops)
    }
}

/// The output of `pass` of a block whose output is `out`: that, or for the first pass of
/// an SE block the depthwise activations.
fn pass_output(p: &InvertedResidualParams, pass: FusedPass, out: [usize; 4]) -> [usize; 4] {
    match pass {
        FusedPass::Expand => [out[0], p.hidden_channels, out[2], out[3]],
        _ => out,
    }
}

/// The kernel for `params` on `input`: on a GPU, for a block without an expansion layer,
/// the fused kernel (two passes with SE) with the tiles that do the least work, when that
/// is at most [`FUSED_WORK_MAX`] times the separate convolutions' work (or
/// [`FUSED_EXTRA_MACS`] above it); else, and on a device that runs shaders on the CPU, the
/// separate layers.
///
/// Measured on an NVIDIA H200 (Vulkan, GPU time of each block alone, MobileNetV2's blocks
/// at a 224-pixel input, `examples/device_bench.rs`): the fused kernel ran the first block
/// (no expansion, 32 hidden channels at 112 x 112) in 0.87x the three convolutions' time,
/// and every expanding block (96 to 960 hidden channels) in 2.4-13.6x their time with the
/// tile chosen here (the best of nine tiles still slower in 10 of 11 blocks): each
/// workgroup runs all the hidden channels of its tile in sequence, and the 28 x 28 to
/// 7 x 7 maps give a few dozen workgroups where the convolutions launch thousands.
/// MobileNetV2 ran in 12.9 ms fused against PyTorch's 3.9 ms. Blocks with SE run the same
/// kernel in their two passes and take the same rule (their separate path was not timed
/// alone there). On lavapipe the fused kernel measured about 5x slower than the three
/// convolutions (its storage loads run lane by lane, and each of its loads feeds 1 to 4
/// multiply-adds where the convolutions' register tiles feed 16), so CPU adapters keep
/// the separate layers. [`DeviceCaps::fuse_expanding_blocks`]
/// ([`crate::GpuOptions::fuse_expanding_blocks`]) fuses expanding blocks on GPUs too;
/// tests force the fused kernel everywhere.
pub fn select_kernel(
    params: &InvertedResidualParams,
    input: [usize; 4],
    caps: &DeviceCaps,
) -> InvertedResidualKernel {
    let Ok(cost) = params.cost(input) else {
        return InvertedResidualKernel::Unfused;
    };
    if caps.cpu || (params.has_expansion() && !caps.fuse_expanding_blocks) {
        return InvertedResidualKernel::Unfused;
    }
    let pays = |macs: u64| {
        macs as f64 <= FUSED_WORK_MAX * cost.macs as f64 || macs <= cost.macs + FUSED_EXTRA_MACS
    };
    if params.use_se {
        let first = least_work(candidate_plans(params, FusedPass::Expand, input, caps));
        let second = least_work(candidate_plans(params, FusedPass::Project, input, caps));
        return match (first, second) {
            (Some((expand, a)), Some((project, b))) if pays(a + b) => {
                // SE layers squeeze: `hidden_channels` bounds their width.
                let squeeze = params.hidden_channels;
                let in_passes = se_plans(params, input, (expand, project), squeeze, caps);
                let gate = match in_passes {
                    Some(_) => GatePlacement::InPasses,
                    None => GatePlacement::Separate,
                };
                InvertedResidualKernel::TwoPass {
                    expand,
                    project,
                    gate,
                }
            }
            _ => InvertedResidualKernel::Unfused,
        };
    }
    match least_work(candidate_plans(params, FusedPass::Block, input, caps)) {
        Some((tile, macs)) if pays(macs) => InvertedResidualKernel::Fused(tile),
        _ => InvertedResidualKernel::Unfused,
    }
}

/// `SE_LEN`, the floats of the shader's `se_values`: the block's hidden and squeezed
/// channels in the pass that computes the gate itself (the projection of a block whose SE
/// is in its passes), else 1, as WGSL has no empty array.
fn se_values_len(p: &InvertedResidualParams, pass: FusedPass, se: Option<SeInPass>) -> usize {
    match se {
        Some(se) if pass == FusedPass::Project => p.hidden_channels + se.squeeze,
        _ => 1,
    }
}

/// The plans of both passes of a block with SE with the gate computed in them
/// ([`GatePlacement::InPasses`]) for an SE of `squeeze` channels, or `None` where they
/// do not fit.
fn se_plans(
    p: &InvertedResidualParams,
    input: [usize; 4],
    (expand, project): (FusedTile, FusedTile),
    squeeze: usize,
    caps: &DeviceCaps,
) -> Option<(FusedPlan, FusedPlan)> {
    let first = FusedPlan::new(p, FusedPass::Expand, input, expand, caps)?;
    let se = SeInPass {
        squeeze,
        parts: first.tiles.0 * first.tiles.1,
    };
    let first = first.with_se(p, FusedPass::Expand, se, expand.invocations, caps)?;
    let second = FusedPlan::new(p, FusedPass::Project, input, project, caps)?;
    let second = second.with_se(p, FusedPass::Project, se, project.invocations, caps)?;
    Some((first, second))
}

/// The tile of `plans` that does the least work, with its multiply-adds.
fn least_work(plans: Vec<(FusedTile, FusedPlan)>) -> Option<(FusedTile, u64)> {
    let work = plans.into_iter().map(|(t, plan)| (t, plan.macs));
    work.min_by_key(|&(_, macs)| macs)
}

/// Every tile that can run `pass` of the block `params` on the block's input `input`
/// (for tests that force each).
pub fn fused_candidates(
    params: &InvertedResidualParams,
    pass: FusedPass,
    input: [usize; 4],
    caps: &DeviceCaps,
) -> Vec<FusedTile> {
    let plans = candidate_plans(params, pass, input, caps);
    plans.into_iter().map(|(t, _)| t).collect()
}

/// [`fused_candidates`] with their plans.
fn candidate_plans(
    params: &InvertedResidualParams,
    pass: FusedPass,
    input: [usize; 4],
    caps: &DeviceCaps,
) -> Vec<(FusedTile, FusedPlan)> {
    let mut all: Vec<(FusedTile, FusedPlan)> = Vec::new();
    for invocations in INVOCATIONS {
        for tile in TILES {
            for co_blocks in 1..=8 {
                let t = FusedTile {
                    tile,
                    co_blocks,
                    invocations,
                };
                if let Some(p) = FusedPlan::new(params, pass, input, t, caps) {
                    // Different requests can give the same blocks; keep one of each.
                    let t = FusedTile {
                        co_blocks: p.co_blocks,
                        ..t
                    };
                    if !all.iter().any(|(seen, _)| *seen == t) {
                        all.push((t, p));
                    }
                }
            }
        }
    }
    all
}

/// The fused inverted residual on the GPU: the folded weights of its three convolutions.
#[derive(Debug)]
pub struct FusedInvertedResidual {
    gpu: Gpu,
    params: InvertedResidualParams,
    /// The weights and biases by their binding names (no expansion's without one),
    /// uploaded when the fused kernel first runs (a CPU adapter runs the layers instead).
    weights: Vec<LazyWeights>,
    /// The SE layer of a block with `use_se`.
    se: Option<Arc<SqueezeExcitation>>,
}

/// A convolution's weight and bias.
pub type WeightBias<'a> = (ArrayView4<'a, f32>, ArrayView1<'a, f32>);

impl FusedInvertedResidual {
    /// Uploads the block from its convolutions' weights and biases, batch norms folded in
    /// (PyTorch layouts): `expand` `[hidden, C_in, 1, 1]` (only with an expansion),
    /// `depthwise` `[hidden, 1, k, k]`, `project` `[C_out, hidden, 1, 1]`; biases of
    /// their output channels.
    pub fn new(
        gpu: &Gpu,
        params: InvertedResidualParams,
        expand: Option<WeightBias<'_>>,
        depthwise: WeightBias<'_>,
        project: WeightBias<'_>,
    ) -> Result<Self> {
        params.validate()?;
        let (cin, hid, cout, k) = (
            params.in_channels,
            params.hidden_channels,
            params.out_channels,
            params.kernel_size,
        );
        fail_if(expand.is_some() != params.has_expansion(), "expand", || {
            format!(
                "an expansion is needed exactly when hidden_channels ({hid}) differs from \
                     in_channels ({cin})"
            )
        })?;
        let check = |name: &'static str, (w, b): WeightBias<'_>, shape: [usize; 4]| {
            super::same_dims(name, &shape, w.shape())?;
            super::same_dims(name, &shape[..1], b.shape())
        };
        // Hidden channels are padded to a multiple of 4 with zero weights (their
        // projection weights are 0, so they add nothing); the expansion and the projection
        // go up transposed so that 4 channels are one vec4 load.
        let hid4 = hid.next_multiple_of(4);
        let cout4 = cout.next_multiple_of(4);
        let padded = |v: ArrayView1<f32>| {
            let mut out = v.to_vec();
            out.resize(hid4, 0.0);
            out
        };
        let mut host: Vec<(&'static str, Vec<f32>)> = Vec::new();
        // The biases share one buffer: [expansion (0 without one), depthwise, projection].
        let mut biases = vec![0.0; hid4];
        if let Some((w, b)) = expand {
            check("expand", (w, b), [hid, cin, 1, 1])?;
            let mut t = vec![0.0; cin * hid4];
            for ((h, c, _, _), &v) in w.indexed_iter() {
                t[c * hid4 + h] = v;
            }
            host.push(("w_expand", t));
            biases = padded(b);
        }
        let (dw, db) = depthwise;
        check("depthwise", (dw, db), [hid, 1, k, k])?;
        let mut dw_flat: Vec<f32> = dw.iter().copied().collect();
        dw_flat.resize(hid4 * k * k, 0.0);
        host.push(("w_depthwise", dw_flat));
        biases.extend(padded(db));
        let (pw, pb) = project;
        check("project", (pw, pb), [cout, hid, 1, 1])?;
        let mut t = vec![0.0; hid4 * cout4];
        for ((c, h, _, _), &v) in pw.indexed_iter() {
            t[h * cout4 + c] = v;
        }
        host.push(("w_project", t));
        biases.extend(pb.iter());
        host.push(("biases", biases));
        let weights = host
            .into_iter()
            .map(|(name, v)| gpu.lazy_weights(name, v))
            .collect::<Result<_>>()?;
        Ok(FusedInvertedResidual {
            gpu: gpu.clone(),
            params,
            weights,
            se: None,
        })
    }

    /// The parameters.
    pub fn params(&self) -> &InvertedResidualParams {
        &self.params
    }

    /// The block's SE layer (a block with `use_se`: its gate is computed between the two
    /// passes, on the depthwise activations).
    pub fn with_squeeze_excitation(mut self, se: Arc<SqueezeExcitation>) -> Result<Self> {
        let (c, hid) = (se.params().input_channels, self.params.hidden_channels);
        fail_if(!self.params.use_se || c != hid, "se", || {
            format!(
                "an SE layer of {c} channels needs use_se and {c} hidden channels, got \
                 use_se {} and {hid}",
                self.params.use_se
            )
        })?;
        self.se = Some(se);
        Ok(self)
    }

    /// Records the block with the tiles that do the least work (whether or not
    /// [`select_kernel`] would fuse here: this layer is the fused kernel); an error when
    /// no tile fits the device (loop budget, workgroup memory, sums per invocation).
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        let (p, s, caps) = (&self.params, x.shape(), rec.gpu().caps());
        p.output_shape(s)?;
        let best = |pass| least_work(candidate_plans(p, pass, s, caps)).map(|(t, _)| t);
        let none = || Error::InvalidParam {
            name: "input",
            reason: format!(
                "no fused tile fits this device for {p:?} on {s:?}; run the block's layers"
            ),
        };
        if p.use_se {
            let expand = best(FusedPass::Expand).ok_or_else(none)?;
            let project = best(FusedPass::Project).ok_or_else(none)?;
            let gate = self.gate_placement(s, (expand, project), caps);
            self.forward_two_pass(rec, x, (expand, project), gate)
        } else {
            self.forward_with(rec, x, best(FusedPass::Block).ok_or_else(none)?)
        }
    }

    /// Records the block (without SE) with a chosen tile `t` (an error if it cannot run
    /// this input).
    pub fn forward_with(&self, rec: &mut Recorder<'_>, x: &Tensor, t: FusedTile) -> Result<Tensor> {
        fail_if(self.params.use_se, "kernel", || {
            "a block with SE runs in two passes (forward_two_pass)"
        })?;
        x.check_gpu(rec.gpu(), "input")?;
        let (p, s) = (&self.params, x.shape());
        p.output_shape(s)?;
        let plan = FusedPlan::checked(p, FusedPass::Block, s, t, rec.gpu().caps())?;
        self.run_pass(rec, FusedPass::Block, x, (t, plan), None)
    }

    /// Where a block with SE computes its gate with these tiles on an input of `shape`:
    /// in the passes where they fit with this block's SE layer, else in a dispatch of its
    /// own.
    pub fn gate_placement(
        &self,
        shape: [usize; 4],
        tiles: (FusedTile, FusedTile),
        caps: &DeviceCaps,
    ) -> GatePlacement {
        let squeeze = self.se.as_ref().map(|se| se.params().squeeze_channels);
        match squeeze.and_then(|s| se_plans(&self.params, shape, tiles, s, caps)) {
            Some(_) => GatePlacement::InPasses,
            None => GatePlacement::Separate,
        }
    }

    /// Records a block with SE in two fused passes with chosen tiles `(expand, project)`:
    /// expansion and depthwise, the SE gate on their activations (in the passes, or a
    /// dispatch of its own: `gate`), then the gated projection and skip. An error when the
    /// tiles or the placement do not fit the device.
    pub fn forward_two_pass(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        (expand, project): (FusedTile, FusedTile),
        gate: GatePlacement,
    ) -> Result<Tensor> {
        let se = self.se.as_ref().ok_or_else(|| Error::InvalidParam {
            name: "se",
            reason: "a block with use_se needs its SE layer (with_squeeze_excitation)".into(),
        })?;
        x.check_gpu(rec.gpu(), "input")?;
        let (p, s, caps) = (&self.params, x.shape(), rec.gpu().caps());
        p.output_shape(s)?;
        let plan = |pass, t| FusedPlan::checked(p, pass, s, t, caps);
        let (first, second) = match gate {
            GatePlacement::Separate => (
                plan(FusedPass::Expand, expand)?,
                plan(FusedPass::Project, project)?,
            ),
            GatePlacement::InPasses => {
                let squeeze = se.params().squeeze_channels;
                se_plans(p, s, (expand, project), squeeze, caps).ok_or_else(|| {
                    Error::InvalidParam {
                        name: "gate",
                        reason: format!(
                        "the SE gate of {p:?} (squeezed to {squeeze}) does not fit in the passes \
                         {expand:?} and {project:?} on {s:?}; use GatePlacement::Separate"
                    ),
                    }
                })?
            }
        };
        let hidden = self.run_pass(rec, FusedPass::Expand, x, (expand, first), None)?;
        let act = se.params().scale_activation;
        let gating = match gate {
            GatePlacement::Separate => Gating::Logits(se.excitation(rec, &hidden)?),
            GatePlacement::InPasses => Gating::InPass(se),
        };
        self.run_pass(
            rec,
            FusedPass::Project,
            &hidden,
            (project, second),
            Some((gating, x, act)),
        )
    }

    /// Records one pass on `input` (the block's input, or the first pass's output for the
    /// second) with tile `t` and its plan, with the gating, the block's input and the gate
    /// activation there.
    fn run_pass(
        &self,
        rec: &mut Recorder<'_>,
        pass: FusedPass,
        input: &Tensor,
        (t, plan): (FusedTile, FusedPlan),
        gated: Option<(Gating<'_>, &Tensor, Activation)>,
    ) -> Result<Tensor> {
        let x = gated.as_ref().map_or(input, |g| g.1);
        x.check_gpu(rec.gpu(), "input")?;
        check_owner(self.gpu.id(), rec.gpu(), "layer")?;
        let (p, s) = (&self.params, x.shape());
        let se_act = self
            .se
            .as_ref()
            .map_or(Activation::None, |se| se.params().activation);
        let gate_act = gated.as_ref().map_or(Activation::None, |g| g.2);
        let launch = plan.launch(p, pass, s, t, (gate_act, se_act));
        let out = pass_output(p, pass, plan.out);
        // The first pass of an SE gated in the passes keeps its tile sums after the map.
        let y = match (pass, plan.se) {
            // Two values per sum: hi and lo, so that the sums stay precise in f16 storage
            // (store_tile_sums in inverted_residual.wgsl).
            (FusedPass::Expand, Some(se)) => {
                rec.empty_with_tail("output", out, 2 * se.parts * out[0] * out[1])?
            }
            _ => rec.empty("output", out)?,
        };
        let in_pass = matches!(gated, Some((Gating::InPass(_), _, _)));
        let mut args = Args::new().read("x", input);
        for w in &self.weights {
            // The SE's packed weights take the depthwise weights' place in the second pass.
            if !(in_pass && w.name() == "w_depthwise") {
                args = args.read(w.name(), w.buffer()?);
            }
        }
        match &gated {
            Some((Gating::Logits(gate), block_input, _)) => {
                args = args.read("gate", gate).read("residual", *block_input);
            }
            Some((Gating::InPass(se), block_input, _)) => {
                args = args
                    .read("w_depthwise", se.packed())
                    .read("residual", *block_input);
            }
            None => {}
        }
        rec.run(&launch, args.write("y", &y))?;
        Ok(y)
    }
}

/// What the second pass of a block with SE scales its channels by.
enum Gating<'a> {
    /// The logits of the SE layer's own dispatch.
    Logits(Tensor),
    /// The SE layer, computed in the pass from the first pass's tile sums.
    InPass(&'a SqueezeExcitation),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mnv2_block(cin: usize, t: usize, cout: usize, stride: usize) -> InvertedResidualParams {
        let mut p = InvertedResidualParams::new(cin, cin * t, cout);
        p.stride = stride;
        p
    }

    #[test]
    fn every_mobilenet_v2_block_has_a_fused_plan_within_the_budget() {
        let caps = DeviceCaps::default();
        // (C_in, t, C_out, stride, input size) of torchvision's mobilenet_v2 at 224, each
        // once.
        let table = "32 1 16 1 112, 16 6 24 2 112, 24 6 24 1 56, 24 6 32 2 56, 32 6 32 1 28, \
                     32 6 64 2 28, 64 6 64 1 14, 64 6 96 1 14, 96 6 96 1 14, 96 6 160 2 14, \
                     160 6 160 1 7, 160 6 320 1 7";
        let blocks = table.split(", ").map(|b| {
            let v: Vec<usize> = b.split(' ').map(|n| n.parse().unwrap()).collect();
            (v[0], v[1], v[2], v[3], v[4])
        });
        for (cin, t, cout, s, size) in blocks {
            let p = mnv2_block(cin, t, cout, s);
            let input = [1, cin, size, size];
            let all = fused_candidates(&p, FusedPass::Block, input, &caps);
            assert!(!all.is_empty(), "{p:?} at {size} has no fused tile");
            for tile in all {
                let plan = FusedPlan::new(&p, FusedPass::Block, input, tile, &caps).unwrap();
                assert!(plan.loops <= LOOP_BUDGET, "{tile:?}: {} loops", plan.loops);
                let [th, tw, hh, hw, hc, _, _, acc4] = plan.spec_sizes;
                assert!(4 * acc4 <= ACC_MAX);
                let floats = hc * (hh * hw + th * tw) + 1;
                assert_eq!(floats, plan.floats);
                assert!(4 * floats <= caps.max_compute_workgroup_storage_size as usize);
            }
        }
    }

    #[test]
    fn the_choice_falls_back_when_the_fused_kernel_would_not_pay() {
        let caps = DeviceCaps::default();
        // A block without an expansion: fused.
        let p = mnv2_block(32, 1, 16, 1);
        assert!(matches!(
            select_kernel(&p, [1, 32, 112, 112], &caps),
            InvertedResidualKernel::Fused(_)
        ));
        // Expanding blocks take the layers, though fused tiles can run them (measured
        // slower on a GPU).
        for (cin, cout, size) in [(24, 24, 56), (96, 96, 14)] {
            let p = mnv2_block(cin, 6, cout, 1);
            let input = [1, cin, size, size];
            assert!(!fused_candidates(&p, FusedPass::Block, input, &caps).is_empty());
            assert_eq!(
                select_kernel(&p, input, &caps),
                InvertedResidualKernel::Unfused
            );
            // Unless asked to fuse them.
            let fusing = DeviceCaps {
                fuse_expanding_blocks: true,
                ..caps.clone()
            };
            assert!(matches!(
                select_kernel(&p, input, &fusing),
                InvertedResidualKernel::Fused(_)
            ));
        }
        // A very wide block: each pass over the hidden channels loops over every input
        // channel, past the loop budget for every tile.
        let p = mnv2_block(1024, 6, 1024, 1);
        assert!(fused_candidates(&p, FusedPass::Block, [1, 1024, 14, 14], &caps).is_empty());
        assert_eq!(
            select_kernel(&p, [1, 1024, 14, 14], &caps),
            InvertedResidualKernel::Unfused
        );
        // Otherwise the rule: the fused tile doing the least work, when that work is
        // within FUSED_WORK_MAX of the convolutions' or FUSED_EXTRA_MACS above it.
        for (cin, cout, size) in [(16, 24, 112), (96, 96, 14), (160, 320, 7)] {
            for (co, n) in [(cout, 1), (8 * cout, 2)] {
                let p = mnv2_block(cin, 1, co, 1);
                let input = [n, cin, size, size];
                let cost = p.cost(input).unwrap().macs as f64;
                let best = fused_candidates(&p, FusedPass::Block, input, &caps)
                    .into_iter()
                    .map(|t| {
                        (
                            FusedPlan::new(&p, FusedPass::Block, input, t, &caps)
                                .unwrap()
                                .macs,
                            t,
                        )
                    })
                    .min_by_key(|b| b.0);
                let want = match best {
                    Some((macs, t))
                        if macs as f64 <= FUSED_WORK_MAX * cost
                            || macs as f64 <= cost + FUSED_EXTRA_MACS as f64 =>
                    {
                        InvertedResidualKernel::Fused(t)
                    }
                    _ => InvertedResidualKernel::Unfused,
                };
                assert_eq!(select_kernel(&p, input, &caps), want, "{p:?} {input:?}");
            }
        }
        // A software driver keeps the separate convolutions.
        let cpu = DeviceCaps {
            cpu: true,
            ..DeviceCaps::default()
        };
        assert_eq!(
            select_kernel(&mnv2_block(24, 6, 24, 1), [1, 24, 56, 56], &cpu),
            InvertedResidualKernel::Unfused
        );
        // A bad shape is not fused (forward reports its error).
        assert_eq!(
            select_kernel(&p, [1, 3, 14, 14], &caps),
            InvertedResidualKernel::Unfused
        );
    }

    #[test]
    fn launches_carry_the_tile_grid_and_workgroup_size() {
        let caps = DeviceCaps::default();
        let p = mnv2_block(160, 6, 160, 1);
        let input = [2, 160, 7, 7];
        for tile in fused_candidates(&p, FusedPass::Block, input, &caps) {
            let plan = FusedPlan::new(&p, FusedPass::Block, input, tile, &caps).unwrap();
            let launch = plan.launch(
                &p,
                FusedPass::Block,
                input,
                tile,
                (Activation::None, Activation::None),
            );
            let (th, tw) = tile.tile;
            let tiles = 7usize.div_ceil(th) * 7usize.div_ceil(tw);
            assert_eq!(launch.workgroups, (2 * tiles * plan.co_blocks) as u64);
            assert_eq!(launch.workgroup_size as usize, tile.invocations);
            let c = &launch.constants;
            assert_eq!(c.get("WORKGROUP_SIZE"), Some(tile.invocations as u32));
            assert_eq!(c.get("TILE_H"), Some(th as u32));
            assert_eq!(c.get("SKIP"), Some(1));
            assert_eq!(c.get("EXPAND"), Some(1));
            assert!(launch.loops <= LOOP_BUDGET);
        }
    }

    /// Workgroup floats of a launch as the shader declares its arrays (`expanded`,
    /// `depthwise`, `se_values`): what a device counts against its limit.
    fn declared_floats(launch: &Launch) -> usize {
        let c = |name: &str| launch.constants.get(name).unwrap() as usize;
        let tp = c("TILE_H") * c("TILE_W");
        c("HC") * (c("HALO_H") * c("HALO_W") + tp) + c("SE_LEN")
    }

    #[test]
    fn every_pass_declares_the_workgroup_memory_it_planned() {
        // MobileNetV2's and MobileNetV3's blocks (with SE: both passes), at WebGPU's
        // default 16 KiB and at 32 KiB.
        let mut blocks: Vec<(InvertedResidualParams, usize)> = [
            (16, 1, 16, 1, 112),
            (24, 6, 24, 1, 56),
            (32, 6, 64, 2, 28),
            (96, 6, 160, 2, 14),
            (160, 6, 320, 1, 7),
        ]
        .into_iter()
        .map(|(cin, t, cout, s, size)| (mnv2_block(cin, t, cout, s), size))
        .collect();
        for (cin, hidden, cout, k, stride, size) in [
            (24, 72, 40, 5, 2, 56),
            (40, 120, 40, 5, 1, 28),
            (112, 672, 160, 5, 2, 14),
            (160, 960, 160, 5, 1, 7),
        ] {
            let mut p = InvertedResidualParams::new(cin, hidden, cout);
            p.kernel_size = k;
            p.stride = stride;
            p.use_se = true;
            blocks.push((p, size));
        }
        for bytes in [16_384, 32_768] {
            let caps = DeviceCaps {
                max_compute_workgroup_storage_size: bytes,
                ..DeviceCaps::default()
            };
            let acts = (Activation::None, Activation::None);
            for (p, size) in &blocks {
                let input = [1, p.in_channels, *size, *size];
                let mut checked = 0;
                if !p.use_se {
                    for (tile, plan) in candidate_plans(p, FusedPass::Block, input, &caps) {
                        let launch = plan.launch(p, FusedPass::Block, input, tile, acts);
                        assert_eq!(declared_floats(&launch), plan.floats, "{p:?} {tile:?}");
                        assert!(4 * plan.floats <= bytes as usize);
                        checked += 1;
                    }
                }
                let expand = candidate_plans(p, FusedPass::Expand, input, &caps);
                let project = candidate_plans(p, FusedPass::Project, input, &caps);
                for (&(e, _), &(q, _)) in expand.iter().zip(project.iter().cycle()) {
                    let squeeze = (p.hidden_channels / 4).next_multiple_of(8);
                    let Some((first, second)) = se_plans(p, input, (e, q), squeeze, &caps) else {
                        continue;
                    };
                    for (pass, tile, plan) in [
                        (FusedPass::Expand, e, first),
                        (FusedPass::Project, q, second),
                    ] {
                        let launch = plan.launch(p, pass, input, tile, acts);
                        let floats = declared_floats(&launch);
                        assert_eq!(floats, plan.floats, "{p:?} {pass:?} {tile:?}");
                        assert!(4 * floats <= bytes as usize, "{p:?} {pass:?} {tile:?}");
                        checked += 1;
                    }
                }
                // Both passes of every SE block, the one pass of the others.
                assert!(
                    checked >= if p.use_se { 2 } else { 1 },
                    "{p:?} at {bytes} bytes"
                );
            }
        }
    }

    #[test]
    fn plans_respect_tiny_workgroup_memory() {
        let caps = DeviceCaps {
            max_compute_workgroup_storage_size: 1024,
            ..DeviceCaps::default()
        };
        let p = mnv2_block(24, 1, 24, 1);
        for tile in fused_candidates(&p, FusedPass::Block, [1, 24, 56, 56], &caps) {
            let plan = FusedPlan::new(&p, FusedPass::Block, [1, 24, 56, 56], tile, &caps).unwrap();
            let [th, tw, hh, hw, hc, ..] = plan.spec_sizes;
            assert!(4 * hc * (hh * hw + th * tw) <= 1024);
        }
        let none = DeviceCaps {
            max_compute_workgroup_storage_size: 64,
            ..DeviceCaps::default()
        };
        assert_eq!(
            select_kernel(&p, [1, 24, 56, 56], &none),
            InvertedResidualKernel::Unfused
        );
    }
}
