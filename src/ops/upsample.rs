//! Upsampling with PyTorch's semantics (`F.interpolate` / `nn.Upsample`): nearest (the
//! `'nearest'` index rule), bilinear with `align_corners` true or false, and bed-of-nails
//! zero insertion (the seeds' unpooling: each input lands at `(y * s, x * s)`, zeros
//! elsewhere; PyTorch has no such op).
//!
//! Source positions and blend weights are computed per axis on the host with PyTorch's
//! own single-precision formulas (`nearest_idx`, `area_pixel_compute_source_index`), so
//! they match PyTorch bit for bit; the GPU gathers and blends.

use super::Cost;
use crate::error::{invalid, Result};
use crate::gpu::{check_dims, Recorder, Tensor};

/// Outputs per invocation along a row (`PX` in `resample.wgsl`).
const RESAMPLE_PX: usize = 8;

/// How to resample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UpsampleMode {
    /// `mode='nearest'`: source index `min(floor(dst * scale), in - 1)`.
    Nearest,
    /// `mode='bilinear'`.
    Bilinear {
        /// PyTorch's `align_corners`.
        align_corners: bool,
    },
    /// Zero insertion with an integer stride per axis (output = input * stride).
    BedOfNails {
        /// `(sH, sW)`.
        stride: (usize, usize),
    },
}

/// Parameters of an upsampling: a mode and either an output size or a scale factor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpsampleParams {
    /// The resampling rule.
    pub mode: UpsampleMode,
    /// Exact output size `(H_out, W_out)`.
    pub size: Option<(usize, usize)>,
    /// Scale factor per axis; the output size is `floor(in * scale)`, and the scale itself
    /// (not `in / out`) maps positions, as in PyTorch with `recompute_scale_factor=None`.
    pub scale_factor: Option<(f64, f64)>,
}

impl UpsampleParams {
    /// Nearest-neighbour upsampling; set `size` or `scale_factor` next.
    pub fn nearest() -> Self {
        UpsampleParams {
            mode: UpsampleMode::Nearest,
            size: None,
            scale_factor: None,
        }
    }

    /// Bilinear upsampling; set `size` or `scale_factor` next.
    pub fn bilinear(align_corners: bool) -> Self {
        UpsampleParams {
            mode: UpsampleMode::Bilinear { align_corners },
            size: None,
            scale_factor: None,
        }
    }

    /// Bed-of-nails (zero-insertion) unpooling with `stride`.
    pub fn bed_of_nails(stride: impl super::IntoPair) -> Self {
        UpsampleParams {
            mode: UpsampleMode::BedOfNails {
                stride: stride.into_pair(),
            },
            size: None,
            scale_factor: None,
        }
    }

    /// Sets the output size.
    pub fn size(mut self, size: impl super::IntoPair) -> Self {
        self.size = Some(size.into_pair());
        self
    }

    /// Sets the same scale factor on both axes.
    pub fn scale_factor(mut self, scale: f64) -> Self {
        self.scale_factor = Some((scale, scale));
        self
    }

    /// Sets a scale factor per axis `(sH, sW)`.
    pub fn scale_factors(mut self, scale: (f64, f64)) -> Self {
        self.scale_factor = Some(scale);
        self
    }

    /// Validates against `[N, C, H, W]`; returns `[N, C, H_out, W_out]`.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        check_dims("input", &input)?;
        if let UpsampleMode::BedOfNails { stride } = self.mode {
            if stride.0 == 0 || stride.1 == 0 {
                return Err(invalid(
                    "stride",
                    format!("must be positive, got {stride:?}"),
                ));
            }
            if self.size.is_some() || self.scale_factor.is_some() {
                return Err(invalid(
                    "size",
                    "bed-of-nails takes its output size from the stride; set neither size nor scale_factor",
                ));
            }
            return Ok([input[0], input[1], input[2] * stride.0, input[3] * stride.1]);
        }
        let (oh, ow) = match (self.size, self.scale_factor) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "size",
                    "only one of size or scale_factor may be set",
                ))
            }
            (None, None) => return Err(invalid("size", "one of size or scale_factor must be set")),
            (Some(s), None) => {
                if s.0 == 0 || s.1 == 0 {
                    return Err(invalid("size", format!("must be positive, got {s:?}")));
                }
                s
            }
            (None, Some(f)) => {
                if !(f.0.is_finite() && f.1.is_finite() && f.0 > 0.0 && f.1 > 0.0) {
                    return Err(invalid(
                        "scale_factor",
                        format!("must be positive and finite, got {f:?}"),
                    ));
                }
                let oh = (input[2] as f64 * f.0).floor() as usize;
                let ow = (input[3] as f64 * f.1).floor() as usize;
                if oh == 0 || ow == 0 {
                    return Err(invalid(
                        "scale_factor",
                        format!(
                            "{f:?} on a {}x{} input gives an empty output",
                            input[2], input[3]
                        ),
                    ));
                }
                (oh, ow)
            }
        };
        Ok([input[0], input[1], oh, ow])
    }

    /// No parameters; MACs: 3 per output for bilinear, none otherwise; bytes moved.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let out = self.output_shape(input)?;
        let outs = out.iter().product::<usize>() as u64;
        let macs = match self.mode {
            UpsampleMode::Bilinear { .. } => 3 * outs,
            _ => 0,
        };
        Ok(Cost {
            params: 0,
            macs,
            bytes: 4 * (input.iter().product::<usize>() as u64 + outs),
        })
    }

    /// Records the upsampling of `input`.
    pub fn forward(&self, rec: &mut Recorder<'_>, input: &Tensor) -> Result<Tensor> {
        let gpu = rec.gpu();
        input.check_gpu(gpu, "input")?;
        let s = input.shape();
        let out = self.output_shape(s)?;
        if let Some((sy, sx)) = self.integer_factors(s) {
            return self.forward_integer(rec, input, out, sy, sx);
        }
        if let Some(factor) = self.bilinear_int_factor(s) {
            return self.forward_bilinear_int(rec, input, out, factor);
        }
        let (rows, cols) = (
            self.taps(s[2], out[2], self.scale_factor.map(|f| f.0), 0),
            self.taps(s[3], out[3], self.scale_factor.map(|f| f.1), 1),
        );
        let rows = gpu.upload_slice("rows", &rows)?;
        let cols = gpu.upload_slice("cols", &cols)?;
        let y = rec.empty("output", out)?;
        let strips_x = out[3].div_ceil(RESAMPLE_PX);
        let total = s[0] * s[1] * out[2] * strips_x;
        let mode = match self.mode {
            UpsampleMode::Nearest => 0.0,
            UpsampleMode::Bilinear { .. } => 1.0,
            UpsampleMode::BedOfNails { .. } => 2.0,
        };
        let pipeline = gpu.pipeline("resample.wgsl", &[], &[("MODE", mode)])?;
        rec.dispatch(
            &pipeline,
            &[
                (s[0] * s[1]) as u32,
                s[2] as u32,
                s[3] as u32,
                out[2] as u32,
                out[3] as u32,
                strips_x as u32,
                total as u32,
                0,
            ],
            &[input.pooled(), &rows, &cols, y.pooled()],
            (total as u64).div_ceil(64),
        )?;
        Ok(y)
    }

    /// The kernel choice: `Some((sy, sx))` when the op on `input` is an integer-factor
    /// replication (nearest whose PyTorch index rule gives exactly `o / k` on both axes,
    /// or bed-of-nails) and the input width is a multiple of 4, which
    /// `resample_int.wgsl` runs at about copy speed; `None` for the general tap-table
    /// kernel (`resample.wgsl`) or an invalid configuration.
    pub fn integer_factors(&self, input: [usize; 4]) -> Option<(usize, usize)> {
        let out = self.output_shape(input).ok()?;
        if !input[3].is_multiple_of(4) {
            return None;
        }
        match self.mode {
            UpsampleMode::BedOfNails { stride } => Some(stride),
            UpsampleMode::Nearest => {
                let axis = |i: usize, o: usize, scale: Option<f64>| -> Option<usize> {
                    if !o.is_multiple_of(i) {
                        return None;
                    }
                    let k = o / i;
                    (0..o)
                        .all(|d| nearest_source(d, i, o, scale) == d / k)
                        .then_some(k)
                };
                let f = self.scale_factor;
                Some((
                    axis(input[2], out[2], f.map(|f| f.0))?,
                    axis(input[3], out[3], f.map(|f| f.1))?,
                ))
            }
            UpsampleMode::Bilinear { .. } => None,
        }
    }

    /// The kernel choice for bilinear: `Some(s)` when `bilinear_int.wgsl` applies, i.e.
    /// upsampling by the same factor `s` of 2, 4 or 8 on both axes with
    /// `align_corners = False` (PyTorch's taps, computed by its general formula, are
    /// checked here against the kernel's per-phase weights) and an input width divisible
    /// by 4; `None` for the general tap-table kernel (`resample.wgsl`).
    pub fn bilinear_int_factor(&self, input: [usize; 4]) -> Option<usize> {
        let out = self.output_shape(input).ok()?;
        if self.mode
            != (UpsampleMode::Bilinear {
                align_corners: false,
            })
            || !input[3].is_multiple_of(4)
        {
            return None;
        }
        let factor = out[3] / input[3];
        if ![2, 4, 8].contains(&factor)
            || out[3] != factor * input[3]
            || out[2] != factor * input[2]
        {
            return None;
        }
        // The kernel's taps for output o = factor * j + r (see bilinear_int.wgsl).
        let kernel_taps = |o: usize, len: usize| {
            let (j, r) = (o / factor, o % factor);
            let l = (r as f32 + 0.5) / factor as f32;
            if r < factor / 2 {
                if j == 0 {
                    (0, 1.min(len - 1), 1.0, 0.0)
                } else {
                    (j - 1, j, 1.0 - (l + 0.5), l + 0.5)
                }
            } else {
                (j, (j + 1).min(len - 1), 1.0 - (l - 0.5), l - 0.5)
            }
        };
        let pattern = |len: usize, scale: Option<f64>| {
            (0..factor * len)
                .all(|o| linear_source(o, len, factor * len, scale, false) == kernel_taps(o, len))
        };
        let f = self.scale_factor;
        (pattern(input[2], f.map(|f| f.0)) && pattern(input[3], f.map(|f| f.1))).then_some(factor)
    }

    fn forward_bilinear_int(
        &self,
        rec: &mut Recorder<'_>,
        input: &Tensor,
        out: [usize; 4],
        factor: usize,
    ) -> Result<Tensor> {
        let gpu = rec.gpu();
        let s = input.shape();
        let y = rec.empty("output", out)?;
        let w4 = s[3] / 4;
        let total = s[0] * s[1] * factor * s[2] * w4;
        let pipeline = gpu.pipeline("bilinear_int.wgsl", &[("S", factor as u32)], &[])?;
        rec.dispatch(
            &pipeline,
            &[
                (s[0] * s[1]) as u32,
                s[2] as u32,
                s[3] as u32,
                w4 as u32,
                total as u32,
                0,
                0,
                0,
            ],
            &[input.pooled(), input.pooled(), y.pooled()],
            (total as u64).div_ceil(64),
        )?;
        Ok(y)
    }

    fn forward_integer(
        &self,
        rec: &mut Recorder<'_>,
        input: &Tensor,
        out: [usize; 4],
        sy: usize,
        sx: usize,
    ) -> Result<Tensor> {
        let gpu = rec.gpu();
        let s = input.shape();
        let y = rec.empty("output", out)?;
        let rows = s[0] * s[1] * s[2];
        let w4 = s[3] / 4;
        let total = rows * w4;
        let bed = matches!(self.mode, UpsampleMode::BedOfNails { .. });
        let pipeline = gpu.pipeline(
            "resample_int.wgsl",
            &[],
            &[
                ("SX", sx as f64),
                ("SY", sy as f64),
                ("BED_OF_NAILS", if bed { 1.0 } else { 0.0 }),
            ],
        )?;
        rec.dispatch(
            &pipeline,
            &[rows as u32, w4 as u32, total as u32, 0],
            &[input.pooled(), y.pooled()],
            (total as u64).div_ceil(64),
        )?;
        Ok(y)
    }

    /// Per-axis taps `[i0, i1, l0 bits, l1 bits]` for output positions `0..out`.
    fn taps(&self, input: usize, out: usize, scale: Option<f64>, axis: usize) -> Vec<[u32; 4]> {
        (0..out)
            .map(|o| match self.mode {
                UpsampleMode::Nearest => {
                    let i = nearest_source(o, input, out, scale) as u32;
                    [i, i, 1f32.to_bits(), 0f32.to_bits()]
                }
                UpsampleMode::Bilinear { align_corners } => {
                    let (i0, i1, l0, l1) = linear_source(o, input, out, scale, align_corners);
                    [i0 as u32, i1 as u32, l0.to_bits(), l1.to_bits()]
                }
                UpsampleMode::BedOfNails { stride } => {
                    let s = if axis == 0 { stride.0 } else { stride.1 };
                    let on_grid = o % s == 0;
                    let i = (o / s) as u32;
                    let l0 = if on_grid { 1f32 } else { 0f32 };
                    [i, i, l0.to_bits(), 0f32.to_bits()]
                }
            })
            .collect()
    }
}

/// PyTorch's `compute_scales_value<float>`: the given scale's reciprocal, else in / out.
fn scale_value(scale: Option<f64>, input: usize, out: usize) -> f32 {
    match scale {
        Some(s) if s > 0.0 => (1.0 / s) as f32,
        _ => input as f32 / out as f32,
    }
}

/// PyTorch's `nearest_idx`.
fn nearest_source(o: usize, input: usize, out: usize, scale: Option<f64>) -> usize {
    if out == input {
        o
    } else if out == 2 * input {
        o >> 1
    } else {
        let s = scale_value(scale, input, out);
        ((o as f32 * s).floor() as usize).min(input - 1)
    }
}

/// PyTorch's `area_pixel_compute_scale` and `area_pixel_compute_source_index` for linear
/// modes: returns `(i0, i1, lambda0, lambda1)`.
fn linear_source(
    o: usize,
    input: usize,
    out: usize,
    scale: Option<f64>,
    align_corners: bool,
) -> (usize, usize, f32, f32) {
    let src = if align_corners {
        let s = if out > 1 {
            (input - 1) as f32 / (out - 1) as f32
        } else {
            0.0
        };
        s * o as f32
    } else {
        let s = scale_value(scale, input, out);
        (s * (o as f32 + 0.5) - 0.5).max(0.0)
    };
    let i0 = (src as usize).min(input - 1);
    let i1 = i0 + usize::from(i0 < input - 1);
    let l1 = src - i0 as f32;
    (i0, i1, 1.0 - l1, l1)
}
