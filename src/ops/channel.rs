//! Channel and spatial plumbing: channel shuffle (`F.channel_shuffle`), concatenation
//! and split along channels, residual add, activations as ops, elementwise gating (the
//! scale step of SE / CBAM / ECA), highway and residual-attention connections.

use super::{same_shape, Activation, Cost};
use crate::error::{invalid, Error, Result};
use crate::gpu::{Recorder, Tensor};

/// Elements per invocation in `channel_copy.wgsl` (`PX`).
const PX: usize = 16;
/// vec4s per invocation in `elementwise.wgsl` (`VEC`).
const ELEMENTWISE_VEC: usize = 4;

/// Copies channels `table` of every sample of `x` into channels `dst_offset..` of `y`.
fn record_channel_copy(
    rec: &mut Recorder<'_>,
    x: &Tensor,
    table: &[u32],
    y: &Tensor,
    dst_offset: usize,
) -> Result<()> {
    let gpu = rec.gpu();
    let (xs, ys) = (x.shape(), y.shape());
    let hw = xs[2] * xs[3];
    let strips = hw.div_ceil(PX);
    let total = xs[0] * table.len() * strips;
    let table_buf = gpu.upload_slice("table", table)?;
    let pipeline = gpu.pipeline("channel_copy.wgsl", &[], &[])?;
    let u = [
        hw as u32,
        xs[1] as u32,
        ys[1] as u32,
        dst_offset as u32,
        table.len() as u32,
        strips as u32,
        total as u32,
        0,
    ];
    rec.dispatch(
        &pipeline,
        &u,
        &[x.pooled(), &table_buf, y.pooled()],
        (total as u64).div_ceil(64),
    )
}

/// Channel shuffle with `groups` (ShuffleNet): output channel `j` takes input channel
/// `(j mod g) * (C / g) + floor(j / g)`; equivalently input channel `i` goes to
/// `(i mod (C / g)) * g + floor(i / (C / g))` (the seed's map).
pub fn channel_shuffle(rec: &mut Recorder<'_>, x: &Tensor, groups: usize) -> Result<Tensor> {
    x.check_gpu(rec.gpu(), "input")?;
    let s = x.shape();
    if groups == 0 || !s[1].is_multiple_of(groups) {
        return Err(invalid(
            "groups",
            format!("channels ({}) must be divisible by groups ({groups})", s[1]),
        ));
    }
    let per = s[1] / groups;
    let table: Vec<u32> = (0..s[1])
        .map(|j| ((j % groups) * per + j / groups) as u32)
        .collect();
    let y = rec.empty("output", s)?;
    record_channel_copy(rec, x, &table, &y, 0)?;
    Ok(y)
}

/// Concatenation along channels (`torch.cat(dim=1)`); all inputs share N, H and W.
pub fn concat(rec: &mut Recorder<'_>, inputs: &[&Tensor]) -> Result<Tensor> {
    let first = inputs
        .first()
        .ok_or_else(|| invalid("inputs", "at least one tensor is needed"))?;
    let s0 = first.shape();
    let mut channels = 0;
    for t in inputs {
        t.check_gpu(rec.gpu(), "inputs")?;
        let s = t.shape();
        if (s[0], s[2], s[3]) != (s0[0], s0[2], s0[3]) {
            return Err(Error::ShapeMismatch {
                name: "inputs",
                expected: vec![s0[0], s[1], s0[2], s0[3]],
                actual: s.to_vec(),
            });
        }
        channels += s[1];
    }
    let y = rec.empty("output", [s0[0], channels, s0[2], s0[3]])?;
    let mut offset = 0;
    for t in inputs {
        let c = t.shape()[1];
        let table: Vec<u32> = (0..c as u32).collect();
        record_channel_copy(rec, t, &table, &y, offset)?;
        offset += c;
    }
    Ok(y)
}

/// A preallocated channel buffer for dense blocks (DenseNet): each layer's output is
/// appended into the next free channels, so a block of L layers copies each output once
/// instead of re-concatenating everything at every layer.
///
/// [`DenseBuffer::features`] returns the channels filled so far. For batch size 1 that is
/// a view of the buffer's prefix (no copy at all); for larger batches the channels of one
/// sample are not contiguous across samples, so it is a compact copy.
#[derive(Debug)]
pub struct DenseBuffer {
    buffer: Tensor,
    filled: usize,
}

impl DenseBuffer {
    /// A buffer for `[N, capacity, H, W]` that starts with `initial`'s channels.
    pub fn new(rec: &mut Recorder<'_>, initial: &Tensor, capacity: usize) -> Result<Self> {
        initial.check_gpu(rec.gpu(), "initial")?;
        let s = initial.shape();
        if capacity < s[1] {
            return Err(invalid(
                "capacity",
                format!("{capacity} channels cannot hold the initial {}", s[1]),
            ));
        }
        let buffer = rec.empty("buffer", [s[0], capacity, s[2], s[3]])?;
        let mut dense = DenseBuffer { buffer, filled: 0 };
        dense.append(rec, initial)?;
        Ok(dense)
    }

    /// Channels filled so far.
    pub fn channels(&self) -> usize {
        self.filled
    }

    /// Appends `x`'s channels after those already filled.
    pub fn append(&mut self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<()> {
        x.check_gpu(rec.gpu(), "input")?;
        let (s, b) = (x.shape(), self.buffer.shape());
        if (s[0], s[2], s[3]) != (b[0], b[2], b[3]) {
            return Err(Error::ShapeMismatch {
                name: "input",
                expected: vec![b[0], s[1], b[2], b[3]],
                actual: s.to_vec(),
            });
        }
        if self.filled + s[1] > b[1] {
            return Err(invalid(
                "input",
                format!(
                    "{} more channels do not fit: {} of {} are filled",
                    s[1], self.filled, b[1]
                ),
            ));
        }
        let table: Vec<u32> = (0..s[1] as u32).collect();
        record_channel_copy(rec, x, &table, &self.buffer, self.filled)?;
        self.filled += s[1];
        Ok(())
    }

    /// The filled channels as a tensor `[N, channels(), H, W]`.
    pub fn features(&self, rec: &mut Recorder<'_>) -> Result<Tensor> {
        let b = self.buffer.shape();
        let shape = [b[0], self.filled, b[2], b[3]];
        if b[0] == 1 || self.filled == b[1] {
            return Ok(self.buffer.prefix_view(shape));
        }
        let y = rec.empty("output", shape)?;
        let table: Vec<u32> = (0..self.filled as u32).collect();
        record_channel_copy(rec, &self.buffer, &table, &y, 0)?;
        Ok(y)
    }
}

/// Split along channels into pieces of the given sizes (`torch.split(dim=1)`), as
/// ShuffleNet v2's channel split does.
pub fn split(rec: &mut Recorder<'_>, x: &Tensor, sizes: &[usize]) -> Result<Vec<Tensor>> {
    x.check_gpu(rec.gpu(), "input")?;
    let s = x.shape();
    if sizes.contains(&0) || sizes.iter().sum::<usize>() != s[1] {
        return Err(invalid(
            "sizes",
            format!(
                "{sizes:?} must be positive and sum to the channel count {}",
                s[1]
            ),
        ));
    }
    let mut start = 0u32;
    let mut out = Vec::with_capacity(sizes.len());
    for &c in sizes {
        let y = rec.empty("output", [s[0], c, s[2], s[3]])?;
        let table: Vec<u32> = (start..start + c as u32).collect();
        record_channel_copy(rec, x, &table, &y, 0)?;
        start += c as u32;
        out.push(y);
    }
    Ok(out)
}

/// The `MODE` of `elementwise.wgsl`.
#[derive(Clone, Copy)]
enum Mode {
    Activate = 0,
    Add = 1,
    ScaleChannels = 2,
    ScaleSpatial = 3,
    Highway = 4,
    ResidualAttention = 5,
    ScaleChannelsAdd = 6,
}

fn record_elementwise(
    rec: &mut Recorder<'_>,
    mode: Mode,
    a: &Tensor,
    b: Option<&Tensor>,
    s: Option<&Tensor>,
    act: Activation,
    gate: Activation,
) -> Result<Tensor> {
    let gpu = rec.gpu();
    let shape = a.shape();
    let hw = shape[2] * shape[3];
    let len4 = a.len().div_ceil(4);
    let total = len4.div_ceil(ELEMENTWISE_VEC);
    let y = rec.empty("output", shape)?;
    let pipeline = gpu.pipeline(
        "elementwise.wgsl",
        &[],
        &[
            ("MODE", mode as u32 as f64),
            ("ACT", act.shader_code()),
            ("GATE", gate.shader_code()),
        ],
    )?;
    let u = [shape[1] as u32, hw as u32, len4 as u32, total as u32];
    // Unused operands are bound to `a` (read-only aliasing is allowed).
    let b = b.unwrap_or(a);
    let s = s.unwrap_or(a);
    rec.dispatch(
        &pipeline,
        &u,
        &[a.pooled(), b.pooled(), s.pooled(), y.pooled()],
        (total as u64).div_ceil(64),
    )?;
    Ok(y)
}

/// An activation as a standalone op.
pub fn activation(rec: &mut Recorder<'_>, x: &Tensor, act: Activation) -> Result<Tensor> {
    x.check_gpu(rec.gpu(), "input")?;
    record_elementwise(rec, Mode::Activate, x, None, None, act, Activation::None)
}

/// Residual add `act(a + b)` (shapes must match).
pub fn add(rec: &mut Recorder<'_>, a: &Tensor, b: &Tensor, act: Activation) -> Result<Tensor> {
    a.check_gpu(rec.gpu(), "a")?;
    b.check_gpu(rec.gpu(), "b")?;
    same_shape("b", a.shape(), b.shape())?;
    record_elementwise(rec, Mode::Add, a, Some(b), None, act, Activation::None)
}

/// Channel-wise scaling `x * gate(s)` with `s` of shape `[N, C, 1, 1]`: the last step of
/// SE, ECA and CBAM's channel attention, with the gate activation fused into the pass.
pub fn scale_channels(
    rec: &mut Recorder<'_>,
    x: &Tensor,
    s: &Tensor,
    gate: Activation,
) -> Result<Tensor> {
    x.check_gpu(rec.gpu(), "input")?;
    s.check_gpu(rec.gpu(), "scale")?;
    let xs = x.shape();
    same_shape("scale", [xs[0], xs[1], 1, 1], s.shape())?;
    record_elementwise(
        rec,
        Mode::ScaleChannels,
        x,
        None,
        Some(s),
        Activation::None,
        gate,
    )
}

/// Channel-gated skip plus a branch, `x * gate(s) + branch` with `s` of shape
/// `[N, C, 1, 1]`, in one pass: the attention-gated skip connections of decoders such as
/// MediaPipe's selfie segmentation (the gate computed from `x + branch`).
pub fn scale_channels_add(
    rec: &mut Recorder<'_>,
    x: &Tensor,
    s: &Tensor,
    gate: Activation,
    branch: &Tensor,
) -> Result<Tensor> {
    x.check_gpu(rec.gpu(), "input")?;
    s.check_gpu(rec.gpu(), "scale")?;
    branch.check_gpu(rec.gpu(), "branch")?;
    let xs = x.shape();
    same_shape("scale", [xs[0], xs[1], 1, 1], s.shape())?;
    same_shape("branch", xs, branch.shape())?;
    record_elementwise(
        rec,
        Mode::ScaleChannelsAdd,
        x,
        Some(branch),
        Some(s),
        Activation::None,
        gate,
    )
}

/// Spatial scaling `x * gate(s)` with `s` of shape `[N, 1, H, W]` (CBAM's spatial
/// attention), the gate activation fused into the pass.
pub fn scale_spatial(
    rec: &mut Recorder<'_>,
    x: &Tensor,
    s: &Tensor,
    gate: Activation,
) -> Result<Tensor> {
    x.check_gpu(rec.gpu(), "input")?;
    s.check_gpu(rec.gpu(), "scale")?;
    let xs = x.shape();
    same_shape("scale", [xs[0], 1, xs[2], xs[3]], s.shape())?;
    record_elementwise(
        rec,
        Mode::ScaleSpatial,
        x,
        None,
        Some(s),
        Activation::None,
        gate,
    )
}

/// Highway connection `y = H(x) * T + x * (1 - T)` with `T = sigmoid(t_logits)`; `h` is
/// `H(x)` and `t_logits` typically a 1x1 convolution of `x` (all the same shape).
pub fn highway(
    rec: &mut Recorder<'_>,
    x: &Tensor,
    h: &Tensor,
    t_logits: &Tensor,
) -> Result<Tensor> {
    for (name, t) in [("input", x), ("h", h), ("t_logits", t_logits)] {
        t.check_gpu(rec.gpu(), name)?;
    }
    same_shape("h", x.shape(), h.shape())?;
    same_shape("t_logits", x.shape(), t_logits.shape())?;
    record_elementwise(
        rec,
        Mode::Highway,
        x,
        Some(h),
        Some(t_logits),
        Activation::None,
        Activation::Sigmoid,
    )
}

/// Residual attention `y = (1 + M(x)) * F(x) + x`; `mask` is `M(x)` (already in its
/// range, e.g. after a sigmoid), `f` is `F(x)`.
pub fn residual_attention(
    rec: &mut Recorder<'_>,
    x: &Tensor,
    f: &Tensor,
    mask: &Tensor,
) -> Result<Tensor> {
    for (name, t) in [("input", x), ("f", f), ("mask", mask)] {
        t.check_gpu(rec.gpu(), name)?;
    }
    same_shape("f", x.shape(), f.shape())?;
    same_shape("mask", x.shape(), mask.shape())?;
    record_elementwise(
        rec,
        Mode::ResidualAttention,
        x,
        Some(f),
        Some(mask),
        Activation::None,
        Activation::None,
    )
}

/// Per-pixel maximum and mean over channels, as `[N, 2, H, W]` (max first, as CBAM's
/// reference `ChannelPool`).
pub fn channel_max_mean(rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
    x.check_gpu(rec.gpu(), "input")?;
    let gpu = rec.gpu();
    let s = x.shape();
    let y = rec.empty("output", [s[0], 2, s[2], s[3]])?;
    let total = s[0] * s[2] * s[3];
    let pipeline = gpu.pipeline("channel_pool.wgsl", &[], &[])?;
    rec.dispatch(
        &pipeline,
        &[s[1] as u32, (s[2] * s[3]) as u32, total as u32, 0],
        &[x.pooled(), y.pooled()],
        (total as u64).div_ceil(64),
    )?;
    Ok(y)
}

/// Bytes moved by an elementwise op over `inputs` tensors of `shape` writing one.
pub fn elementwise_cost(shape: [usize; 4], inputs: u64) -> Cost {
    let e = shape.iter().product::<usize>() as u64;
    Cost {
        params: 0,
        macs: e * inputs,
        bytes: 4 * e * (inputs + 1),
    }
}
