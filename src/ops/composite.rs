//! Compositing a frame with the network's mask, on the GPU: the background blurred (a
//! separable Gaussian at a reduced resolution, as video-call apps do) or tinted towards a
//! colour (amount 1 replaces it), the person kept. The result is an RGBA8 / BGRA8 frame
//! in the application's texture, or on the host.
//!
//! A blurred background takes four dispatches: the frame resized to `1 / downscale` of
//! its size ([`crate::ops::frame`]'s kernel), a horizontal and a vertical depthwise
//! convolution with Gaussian weights and replicated edges ([`Conv2d`]), and the
//! composite, which upsamples the blurred frame bilinearly, samples the mask as
//! [`mask_to_texture`](super::frame::mask_to_texture) does and blends
//! `mix(background, frame, mask)` on the stored (gamma-encoded) values. A tint is the
//! composite alone.

use std::sync::Arc;

use ndarray::{Array1, Array4};

use super::conv::{Conv2d, Conv2dParams, PaddingMode};
use super::frame::{FrameLayout, FrameParams, MaskParams, PixelFormat};
use crate::error::{fail_if, Result};
use crate::gpu::{Gpu, PooledBuffer, Recorder, Tensor};
use crate::launch::{read, read_opt, specialize, uniform, write, Args, Kernel, KernelInfo, Launch};

uniform! {
    /// `shaders/composite.wgsl`.
    pub(crate) struct CompositeParams {
        src_h: u32,
        src_w: u32,
        row_words: u32,
        bgra_in: u32,
        out_row_words: u32,
        bgra_out: u32,
        mask_h: u32,
        mask_w: u32,
        plane_offset: u32,
        off_y: u32,
        off_x: u32,
        content_h: u32,
        content_w: u32,
        mscale_y: f32,
        mscale_x: f32,
        threshold: f32,
        feather: f32,
        bg_h: u32,
        bg_w: u32,
        bscale_y: f32,
        bscale_x: f32,
        tint_r: f32,
        tint_g: f32,
        tint_b: f32,
        tint_amount: f32,
    }
}

specialize! {
    /// The constants of `composite.wgsl`.
    struct CompositeSpec { threshold: u32 => "THRESHOLD", background: u32 => "BACKGROUND" }
}

const COMPOSITE: Kernel<CompositeParams, CompositeSpec> = Kernel::new(
    "composite.wgsl",
    &[
        read("frame"),
        read("mask"),
        read_opt("background"),
        write("out"),
    ],
);

/// The kernels of this family.
pub(crate) const KERNELS: &[&dyn KernelInfo] = &[&COMPOSITE];

/// The widest Gaussian accepted, in pixels of the downscaled frame (taps `2 * 3 * sigma + 1`).
pub const SIGMA_MAX: f32 = 64.0;

/// What replaces the background.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Background {
    /// The frame blurred by a Gaussian of standard deviation `sigma` frame pixels,
    /// computed at `1 / downscale` of the frame's size (1 blurs at full size).
    Blur {
        /// Standard deviation in frame pixels (positive).
        sigma: f32,
        /// The blur's resolution divisor (at least 1).
        downscale: usize,
    },
    /// The frame mixed towards `color` (`[0, 1]` RGB) by `amount` (1: replaced).
    Tint {
        /// The colour.
        color: [f32; 3],
        /// How far, in `[0, 1]`.
        amount: f32,
    },
}

impl Background {
    /// A blur of `sigma` frame pixels at a quarter of the frame's size.
    pub fn blur(sigma: f32) -> Self {
        Background::Blur {
            sigma,
            downscale: 4,
        }
    }

    /// Checks the parameters: a positive `downscale`, a positive `sigma` of at most
    /// [`SIGMA_MAX`] pixels after it, a `color` and an `amount` in [0, 1].
    pub fn validate(&self) -> Result<()> {
        match *self {
            Background::Blur { sigma, downscale } => {
                fail_if(downscale == 0, "downscale", || {
                    "must be at least 1, got 0".to_string()
                })?;
                let small = sigma / downscale as f32;
                fail_if(
                    !(sigma.is_finite() && sigma > 0.0 && small <= SIGMA_MAX),
                    "sigma",
                    || {
                        format!(
                            "must be positive, at most {SIGMA_MAX} pixels after the \
                             downscale by {downscale}; got {sigma}"
                        )
                    },
                )
            }
            Background::Tint { color, amount } => {
                fail_if(
                    color.iter().any(|c| !(0.0..=1.0).contains(c)),
                    "color",
                    || format!("must be in [0, 1], got {color:?}"),
                )?;
                fail_if(!(0.0..=1.0).contains(&amount), "amount", || {
                    format!("must be in [0, 1], got {amount}")
                })
            }
        }
    }
}

/// The normalised 1-D Gaussian of standard deviation `sigma` over `2 * ceil(3 sigma) + 1`
/// taps (torchvision's `_get_gaussian_kernel1d` with that size); `sigma` positive and at
/// most [`SIGMA_MAX`].
pub fn gaussian_taps(sigma: f32) -> Result<Vec<f32>> {
    fail_if(
        !(sigma.is_finite() && sigma > 0.0 && sigma <= SIGMA_MAX),
        "sigma",
        || format!("must be positive and at most {SIGMA_MAX}, got {sigma}"),
    )?;
    let radius = (3.0 * sigma).ceil().max(1.0) as i32;
    let w: Vec<f64> = (-radius..=radius)
        .map(|x| (-0.5 * (x as f64 / sigma as f64).powi(2)).exp())
        .collect();
    let sum: f64 = w.iter().sum();
    Ok(w.iter().map(|v| (v / sum) as f32).collect())
}

/// The two depthwise convolutions of a separable Gaussian on 3 channels, edges replicated.
fn gaussian_layers(gpu: &Gpu, sigma: f32) -> Result<(Conv2d, Conv2d)> {
    let taps = gaussian_taps(sigma)?;
    let k = taps.len();
    let radius = k / 2;
    let layer = |kernel: (usize, usize), padding: (usize, usize)| {
        let params = Conv2dParams::depthwise(3, 1, kernel)
            .padding(padding)
            .padding_mode(PaddingMode::Replicate);
        let weight =
            Array4::from_shape_fn((3, 1, kernel.0, kernel.1), |(_, _, y, x)| taps[y.max(x)]);
        Conv2d::new(gpu, params, weight.view(), Some(Array1::zeros(3).view()))
    };
    Ok((layer((1, k), (0, radius))?, layer((k, 1), (radius, 0))?))
}

/// Composites frames with masks for one [`Background`] (its blur's layers built once).
pub struct Compositor {
    background: Background,
    blur: Option<(Conv2d, Conv2d)>,
}

impl std::fmt::Debug for Compositor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compositor")
            .field("background", &self.background)
            .finish()
    }
}

/// Frames up to this many pixels a side are blurred; the downscale keeps the blurred
/// frame at least 1 x 1.
fn downscaled(side: usize, downscale: usize) -> usize {
    side.div_ceil(downscale).max(1)
}

impl Compositor {
    /// Checks the background and uploads a blur's Gaussian weights.
    pub fn new(gpu: &Gpu, background: Background) -> Result<Self> {
        background.validate()?;
        let blur = match background {
            Background::Blur { sigma, downscale } => {
                Some(gaussian_layers(gpu, sigma / downscale as f32)?)
            }
            Background::Tint { .. } => None,
        };
        Ok(Compositor { background, blur })
    }

    /// The background.
    pub fn background(&self) -> Background {
        self.background
    }

    /// Records the composite of the frame in `pixels` (laid out as `layout`) with the
    /// mask of `output`, as packed pixels of `out_format` in rows `out_row_words` words
    /// apart: a `[1, 1, H, out_row_words]` tensor holding the words' bits.
    fn record(
        &self,
        rec: &mut Recorder<'_>,
        (pixels, layout): (&Arc<PooledBuffer>, &FrameLayout),
        output: &Tensor,
        mask: &MaskParams,
        (out_format, out_row_words): (PixelFormat, usize),
    ) -> Result<Tensor> {
        output.check_gpu(rec.gpu(), "output")?;
        let target = super::frame::MaskLayout::packed(
            layout.width,
            layout.height,
            super::frame::MaskFormat::R32Float,
        );
        mask.validate(output.shape(), &target)?;
        let blurred = match (&self.blur, self.background) {
            (Some((h, v)), Background::Blur { downscale, .. }) => {
                let small = FrameParams::new(
                    downscaled(layout.height, downscale),
                    downscaled(layout.width, downscale),
                );
                let x = small.record(rec, pixels, layout)?;
                let x = h.forward(rec, &x)?;
                Some(v.forward(rec, &x)?)
            }
            _ => None,
        };
        let [_, c, mh, mw] = output.shape();
        let rect = mask
            .fit
            .content_rect((mh, mw), (layout.height, layout.width));
        let (mode, threshold, feather) = mask.threshold.parts();
        let (bg_h, bg_w) = blurred
            .as_ref()
            .map_or((1, 1), |b| (b.shape()[2], b.shape()[3]));
        let (tint, amount) = match self.background {
            Background::Tint { color, amount } => (color, amount),
            Background::Blur { .. } => ([0.0; 3], 0.0),
        };
        let u = CompositeParams {
            src_h: layout.height as u32,
            src_w: layout.width as u32,
            row_words: (layout.bytes_per_row / 4) as u32,
            bgra_in: u32::from(layout.format == PixelFormat::Bgra8),
            out_row_words: out_row_words as u32,
            bgra_out: u32::from(out_format == PixelFormat::Bgra8),
            mask_h: mh as u32,
            mask_w: mw as u32,
            plane_offset: ((mask.batch * c + mask.channel) * mh * mw) as u32,
            off_y: rect.offset.0 as u32,
            off_x: rect.offset.1 as u32,
            content_h: rect.size.0 as u32,
            content_w: rect.size.1 as u32,
            mscale_y: rect.size.0 as f32 / layout.height as f32,
            mscale_x: rect.size.1 as f32 / layout.width as f32,
            threshold,
            feather,
            bg_h: bg_h as u32,
            bg_w: bg_w as u32,
            bscale_y: bg_h as f32 / layout.height as f32,
            bscale_x: bg_w as f32 / layout.width as f32,
            tint_r: tint[0],
            tint_g: tint[1],
            tint_b: tint[2],
            tint_amount: amount,
        };
        let spec = CompositeSpec {
            threshold: mode,
            background: u32::from(blurred.is_none()),
        };
        let launch: Launch = COMPOSITE
            .launch(&spec, &u)
            .threads(layout.width * layout.height);
        // Packed RGBA8 words: 4 bytes each at every precision.
        let out = rec.empty_f32("composite", [1, 1, layout.height, out_row_words])?;
        rec.run(
            &launch,
            Args::new()
                .read("frame", pixels)
                .read("mask", output)
                .read_opt("background", blurred.as_ref())
                .write("out", &out),
        )?;
        Ok(out)
    }

    /// Records the composite of the application's frame `texture` (as
    /// [`frame_from_texture`](super::frame::frame_from_texture) takes it) with the mask of
    /// `output` into the application's `target` (a 2-D `Rgba8Unorm(Srgb)` or
    /// `Bgra8Unorm(Srgb)` texture of the frame's size with `COPY_DST` usage), in the
    /// recording's submission.
    pub fn composite_texture(
        &self,
        rec: &mut Recorder<'_>,
        frame: &wgpu::Texture,
        output: &Tensor,
        mask: &MaskParams,
        target: &wgpu::Texture,
    ) -> Result<()> {
        let out_format = PixelFormat::of_texture(target.format())?;
        super::frame::check_texture(target, wgpu::TextureUsages::COPY_DST)?;
        fail_if(target.size() != frame.size(), "target", || {
            format!(
                "must have the frame's size {:?}, got {:?}",
                frame.size(),
                target.size()
            )
        })?;
        let (pixels, layout) = super::frame::copy_texture(rec, frame)?;
        let row_words = layout.bytes_per_row / 4;
        let out = self.record(
            rec,
            (&pixels, &layout),
            output,
            mask,
            (out_format, row_words),
        )?;
        rec.copy_to_texture(out.pooled(), layout.bytes_per_row as u32, target)
    }

    /// Records the composite of a frame in host memory (as
    /// [`frame_from_host`](super::frame::frame_from_host) takes it) with the mask of
    /// `output`; returns the packed composited frame (`4 * width` bytes a row, the
    /// frame's byte order) as a `[1, 1, height, width]` tensor of the words' bits, which
    /// [`frame_bytes`] turns into bytes once downloaded (with the recording, later:
    /// [`Recorder::download_later`]).
    pub fn record_host(
        &self,
        rec: &mut Recorder<'_>,
        bytes: &[u8],
        layout: &FrameLayout,
        output: &Tensor,
        mask: &MaskParams,
    ) -> Result<Tensor> {
        let pixels = super::frame::upload_frame(rec, bytes, layout)?;
        self.record(
            rec,
            (&pixels, layout),
            output,
            mask,
            (layout.format, layout.width),
        )
    }

    /// [`Compositor::record_host`], submitted and waited for: the composited frame's
    /// bytes.
    pub fn composite_host(
        &self,
        mut rec: Recorder<'_>,
        bytes: &[u8],
        layout: &FrameLayout,
        output: &Tensor,
        mask: &MaskParams,
    ) -> Result<Vec<u8>> {
        let out = self.record_host(&mut rec, bytes, layout, output, mask)?;
        Ok(frame_bytes(&rec.download(&out)?))
    }
}

/// The bytes of a downloaded packed frame ([`Compositor::record_host`]'s tensor).
pub fn frame_bytes(words: &Array4<f32>) -> Vec<u8> {
    words
        .iter()
        .flat_map(|w| w.to_bits().to_le_bytes())
        .collect()
}
