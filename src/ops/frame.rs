//! Frames in and masks out without leaving the GPU: the application path.
//!
//! **Frames in.** A frame of 8-bit RGBA or BGRA pixels (sRGB or not: the bytes are taken
//! as stored, as an image file holds them), from the application's texture, its buffer
//! (any row stride) or host memory, becomes the network's `[1, 3, H, W]` f32 input in
//! one dispatch: PyTorch's bilinear resize (`F.interpolate(..., mode='bilinear',
//! align_corners=False)` of the `[0, 1]` image), optionally keeping the aspect ratio by
//! letterboxing ([`Fit::Letterbox`]), then `(v - mean) / std` per channel
//! ([`Normalize`]). A texture or buffer is first copied (a copy command, not a dispatch)
//! into a pooled buffer; everything is recorded into the caller's [`Recorder`], in the
//! same submission as the network.
//!
//! **Masks out.** One channel of a network's output, resized back to the frame (the same
//! bilinear rule, from the letterboxed content rectangle), optionally thresholded
//! ([`Threshold`]: a hard step or a feathered edge), written as R8Unorm, R16Float or
//! R32Float ([`MaskFormat`]) into the application's texture or buffer, again one
//! dispatch plus a copy in the same submission.

use std::sync::Arc;

use super::{setters, Cost};
use crate::error::{fail_if, invalid, Result};
use crate::gpu::{PooledBuffer, Recorder, Tensor};
use crate::launch::{read, specialize, uniform, write, Args, Kernel, KernelInfo, Launch};

uniform! {
    /// `shaders/frame_in.wgsl`.
    pub(crate) struct FrameInParams {
        src_h: u32,
        src_w: u32,
        row_words: u32,
        bgra: u32,
        dst_h: u32,
        dst_w: u32,
        off_y: u32,
        off_x: u32,
        content_h: u32,
        content_w: u32,
        scale_y: f32,
        scale_x: f32,
        fill: f32,
        mean_r: f32,
        mean_g: f32,
        mean_b: f32,
        inv_std_r: f32,
        inv_std_g: f32,
        inv_std_b: f32,
    }
}

uniform! {
    /// `shaders/mask_out.wgsl`.
    pub(crate) struct MaskOutParams {
        src_h: u32,
        src_w: u32,
        plane_offset: u32,
        off_y: u32,
        off_x: u32,
        content_h: u32,
        content_w: u32,
        scale_y: f32,
        scale_x: f32,
        dst_h: u32,
        dst_w: u32,
        row_words: u32,
        words_per_row: u32,
        threshold: f32,
        feather: f32,
    }
}

specialize! {
    /// The constants of `mask_out.wgsl`: the texel format and the threshold's kind.
    struct MaskOutSpec { format: u32 => "FORMAT", threshold: u32 => "THRESHOLD" }
}

const FRAME_IN: Kernel<FrameInParams> = Kernel::new("frame_in.wgsl", &[read("frame"), write("y")]);
const MASK_OUT: Kernel<MaskOutParams, MaskOutSpec> =
    Kernel::new("mask_out.wgsl", &[read("mask"), write("out")]);

/// The kernels of this family.
pub(crate) const KERNELS: &[&dyn KernelInfo] = &[&FRAME_IN, &MASK_OUT];

/// The largest frame side accepted: every index the kernels compute stays within `u32`
/// and every coordinate is exact in `f32`.
pub const FRAME_SIDE_MAX: usize = 1 << 16;

/// Row pitch of texture copies (wgpu's `COPY_BYTES_PER_ROW_ALIGNMENT`).
const TEXTURE_ROW_ALIGN: usize = wgpu::COPY_BYTES_PER_ROW_ALIGNMENT as usize;

/// The byte order of a frame's 4-byte pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Red, green, blue, alpha (`Rgba8Unorm`, `Rgba8UnormSrgb`, `image::RgbaImage`).
    #[default]
    Rgba8,
    /// Blue, green, red, alpha (`Bgra8Unorm`, `Bgra8UnormSrgb`: most swapchains and
    /// camera frames).
    Bgra8,
}

impl PixelFormat {
    /// The pixel format of a texture format; other formats are refused (naming them).
    pub fn of_texture(format: wgpu::TextureFormat) -> Result<Self> {
        use wgpu::TextureFormat as F;
        match format {
            F::Rgba8Unorm | F::Rgba8UnormSrgb => Ok(PixelFormat::Rgba8),
            F::Bgra8Unorm | F::Bgra8UnormSrgb => Ok(PixelFormat::Bgra8),
            other => Err(invalid(
                "texture",
                format!("frames are Rgba8Unorm(Srgb) or Bgra8Unorm(Srgb) textures, got {other:?}"),
            )),
        }
    }
}

/// Where a frame's pixels are in its bytes: `height` rows of `width` 4-byte pixels,
/// `bytes_per_row` apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameLayout {
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Bytes from one row to the next: at least `4 * width`, a multiple of 4.
    pub bytes_per_row: usize,
    /// The byte order of a pixel.
    pub format: PixelFormat,
}

impl FrameLayout {
    /// Rows without padding (`bytes_per_row = 4 * width`).
    pub fn packed(width: usize, height: usize, format: PixelFormat) -> Self {
        FrameLayout {
            width,
            height,
            bytes_per_row: 4 * width,
            format,
        }
    }

    /// The bytes the frame spans: every row but the last in full, the last to its last
    /// pixel.
    pub fn span(&self) -> usize {
        self.bytes_per_row * self.height.saturating_sub(1) + 4 * self.width
    }

    /// Checks the sizes and the stride.
    pub fn validate(&self) -> Result<()> {
        check_side("frame width", self.width)?;
        check_side("frame height", self.height)?;
        fail_if(
            self.bytes_per_row < 4 * self.width || !self.bytes_per_row.is_multiple_of(4),
            "bytes_per_row",
            || {
                format!(
                    "rows of {} 4-byte pixels need a stride of at least {} bytes, a \
                     multiple of 4; got {}",
                    self.width,
                    4 * self.width,
                    self.bytes_per_row
                )
            },
        )?;
        check_stride(self.bytes_per_row, self.height)
    }
}

/// The kernels address a frame or mask in 32-bit words: a stride and a span beyond that
/// are a typed error, not a wrapped offset.
fn check_stride(bytes_per_row: usize, height: usize) -> Result<()> {
    let span = bytes_per_row.checked_mul(height);
    fail_if(
        span.is_none_or(|s| s / 4 > u32::MAX as usize),
        "bytes_per_row",
        || {
            format!(
                "{height} rows of {bytes_per_row} bytes are more than the kernels address \
                 ({} 4-byte words)",
                u32::MAX
            )
        },
    )
}

fn check_side(name: &'static str, side: usize) -> Result<()> {
    fail_if(side == 0 || side > FRAME_SIDE_MAX, name, || {
        format!("must be 1 ..= {FRAME_SIDE_MAX}, got {side}")
    })
}

/// How a frame meets the network's input size.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Fit {
    /// Resized to the input size, aspect ratio not kept.
    #[default]
    Stretch,
    /// Resized by one factor to fit inside the input (aspect ratio kept) and centred,
    /// the rest filled with `fill` (a `[0, 1]` pixel value, before normalisation).
    Letterbox {
        /// The border's value.
        fill: f32,
    },
}

/// Per-channel `(v - mean) / std` of the `[0, 1]` pixel values (torchvision's
/// `transforms.Normalize`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalize {
    /// Subtracted, per channel (R, G, B).
    pub mean: [f32; 3],
    /// Divided by, per channel: positive and finite.
    pub std: [f32; 3],
}

impl Normalize {
    /// The `[0, 1]` values as they are (MediaPipe's selfie model).
    pub const UNIT: Normalize = Normalize {
        mean: [0.0; 3],
        std: [1.0; 3],
    };

    /// ImageNet's statistics, as every torchvision model expects.
    pub const IMAGENET: Normalize = Normalize {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };

    /// To `[-1, 1]` (`mean = std = 0.5`).
    pub const SYMMETRIC: Normalize = Normalize {
        mean: [0.5; 3],
        std: [0.5; 3],
    };
}

impl Default for Normalize {
    fn default() -> Self {
        Normalize::UNIT
    }
}

/// Where the frame lands in the network's input: `offset` (rows, columns) and `size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ContentRect {
    /// First row and column covered by the frame.
    pub offset: (usize, usize),
    /// Rows and columns covered by the frame.
    pub size: (usize, usize),
}

impl Fit {
    /// The rectangle of an `input` (rows, columns) that a frame of `frame` (rows,
    /// columns) covers: all of it when stretched; letterboxed, the frame scaled by
    /// `min(H / h, W / w)` (sides rounded, at least 1) and centred (offsets rounded down).
    /// A zero side (which the frame ops refuse with a typed error) gives an empty
    /// rectangle rather than a panic.
    pub fn content_rect(&self, input: (usize, usize), frame: (usize, usize)) -> ContentRect {
        match self {
            Fit::Stretch => ContentRect {
                offset: (0, 0),
                size: input,
            },
            Fit::Letterbox { .. } => {
                let scale = (input.0 as f64 / frame.0 as f64).min(input.1 as f64 / frame.1 as f64);
                let side = |f: usize, i: usize| ((f as f64 * scale).round() as usize).max(1).min(i);
                let size = (side(frame.0, input.0), side(frame.1, input.1));
                ContentRect {
                    offset: ((input.0 - size.0) / 2, (input.1 - size.1) / 2),
                    size,
                }
            }
        }
    }

    fn fill(&self) -> f32 {
        match self {
            Fit::Stretch => 0.0,
            Fit::Letterbox { fill } => *fill,
        }
    }
}

/// How a frame becomes the network's input: its size `(height, width)`, the fit and the
/// normalisation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameParams {
    /// The network's input `(height, width)`.
    pub size: (usize, usize),
    /// Stretch (default) or letterbox.
    pub fit: Fit,
    /// Default [`Normalize::UNIT`].
    pub normalize: Normalize,
}

impl FrameParams {
    /// A frame resized (stretched) to `height x width`, values in `[0, 1]`.
    pub fn new(height: usize, width: usize) -> Self {
        FrameParams {
            size: (height, width),
            fit: Fit::Stretch,
            normalize: Normalize::UNIT,
        }
    }

    /// Checks the parameters against a frame; returns the input's shape `[1, 3, H, W]`.
    pub fn output_shape(&self, frame: &FrameLayout) -> Result<[usize; 4]> {
        frame.validate()?;
        check_side("size", self.size.0)?;
        check_side("size", self.size.1)?;
        let n = self.normalize;
        let bad_std = n.std.iter().find(|s| !(s.is_finite() && **s > 0.0));
        if let Some(s) = bad_std {
            return Err(invalid(
                "std",
                format!("must be positive and finite, got {s} in {:?}", n.std),
            ));
        }
        fail_if(n.mean.iter().any(|m| !m.is_finite()), "mean", || {
            format!("must be finite, got {:?}", n.mean)
        })?;
        fail_if(!self.fit.fill().is_finite(), "fill", || {
            format!("must be finite, got {}", self.fit.fill())
        })?;
        Ok([1, 3, self.size.0, self.size.1])
    }

    /// Bytes moved (the frame read once, the input written once); no multiply-adds.
    pub fn cost(&self, frame: &FrameLayout) -> Result<Cost> {
        let out = self.output_shape(frame)?;
        Ok(Cost {
            params: 0,
            macs: 0,
            bytes: (4 * frame.width * frame.height + 4 * out.iter().product::<usize>()) as u64,
        })
    }

    /// The dispatch for a frame of `layout` bound as words.
    fn plan(&self, layout: &FrameLayout) -> Launch {
        let rect = self
            .fit
            .content_rect(self.size, (layout.height, layout.width));
        let n = self.normalize;
        let u = FrameInParams {
            src_h: layout.height as u32,
            src_w: layout.width as u32,
            row_words: (layout.bytes_per_row / 4) as u32,
            bgra: u32::from(layout.format == PixelFormat::Bgra8),
            dst_h: self.size.0 as u32,
            dst_w: self.size.1 as u32,
            off_y: rect.offset.0 as u32,
            off_x: rect.offset.1 as u32,
            content_h: rect.size.0 as u32,
            content_w: rect.size.1 as u32,
            // PyTorch's `area_pixel_compute_scale`, in single precision.
            scale_y: layout.height as f32 / rect.size.0 as f32,
            scale_x: layout.width as f32 / rect.size.1 as f32,
            fill: self.fit.fill(),
            mean_r: n.mean[0],
            mean_g: n.mean[1],
            mean_b: n.mean[2],
            inv_std_r: 1.0 / n.std[0],
            inv_std_g: 1.0 / n.std[1],
            inv_std_b: 1.0 / n.std[2],
        };
        FRAME_IN.launch(&(), &u).threads(self.size.0 * self.size.1)
    }

    /// Records the conversion of the frame in `pixels` (laid out as `layout`).
    pub(crate) fn record(
        &self,
        rec: &mut Recorder<'_>,
        pixels: &Arc<PooledBuffer>,
        layout: &FrameLayout,
    ) -> Result<Tensor> {
        let shape = self.output_shape(layout)?;
        let y = rec.empty("input", shape)?;
        rec.run(
            &self.plan(layout),
            Args::new().read("frame", pixels).write("y", &y),
        )?;
        Ok(y)
    }
}

/// The network's input from a frame in host memory (`bytes` laid out as `layout`, e.g.
/// an `image::RgbaImage`'s raw bytes): uploaded once, converted on the GPU.
pub fn frame_from_host(
    rec: &mut Recorder<'_>,
    bytes: &[u8],
    layout: &FrameLayout,
    params: &FrameParams,
) -> Result<Tensor> {
    params.output_shape(layout)?;
    let pixels = upload_frame(rec, bytes, layout)?;
    params.record(rec, &pixels, layout)
}

/// Uploads a frame's bytes (checked against `layout`) into a new buffer.
pub(crate) fn upload_frame(
    rec: &Recorder<'_>,
    bytes: &[u8],
    layout: &FrameLayout,
) -> Result<Arc<PooledBuffer>> {
    layout.validate()?;
    let span = layout.span();
    fail_if(bytes.len() < span, "bytes", || {
        format!(
            "a {}x{} frame with rows {} bytes apart spans {span} bytes, got {}",
            layout.width,
            layout.height,
            layout.bytes_per_row,
            bytes.len()
        )
    })?;
    // Whole words: the copy to the device moves multiples of 4 bytes.
    let words: Vec<u32> = bytes[..span]
        .chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(w)
        })
        .collect();
    rec.gpu().upload_slice("bytes", &words)
}

/// Checks the application's `buffer` for a copy of `span` bytes of a `what` from byte
/// `offset`: the copy's `usage`, a 4-byte aligned offset, and room for the span.
fn check_app_buffer(
    buffer: &wgpu::Buffer,
    usage: wgpu::BufferUsages,
    offset: u64,
    span: u64,
    what: &str,
) -> Result<()> {
    fail_if(!buffer.usage().contains(usage), "buffer", || {
        format!("needs {usage:?} usage, has {:?}", buffer.usage())
    })?;
    fail_if(!offset.is_multiple_of(4), "offset", || {
        format!("must be a multiple of 4, got {offset}")
    })?;
    fail_if(
        offset.saturating_add(span) > buffer.size(),
        "buffer",
        || {
            format!(
                "the {what} spans bytes {offset} .. {} but the buffer has {}",
                offset.saturating_add(span),
                buffer.size()
            )
        },
    )
}

/// The network's input from a frame in the application's `buffer` (from byte `offset`, a
/// multiple of 4, laid out as `layout`; the buffer needs `COPY_SRC` usage), recorded
/// into `rec`: a copy and one dispatch in the recording's submission.
pub fn frame_from_buffer(
    rec: &mut Recorder<'_>,
    buffer: &wgpu::Buffer,
    offset: u64,
    layout: &FrameLayout,
    params: &FrameParams,
) -> Result<Tensor> {
    params.output_shape(layout)?;
    let span = layout.span() as u64;
    check_app_buffer(buffer, wgpu::BufferUsages::COPY_SRC, offset, span, "frame")?;
    let pixels = rec.alloc_f32("frame", span.div_ceil(4) as usize)?;
    rec.copy_from_buffer(buffer, offset, &pixels, span)?;
    params.record(rec, &pixels, layout)
}

/// Checks an application texture: 2-D, one sample, `usage` present.
pub(crate) fn check_texture(texture: &wgpu::Texture, usage: wgpu::TextureUsages) -> Result<()> {
    fail_if(
        texture.dimension() != wgpu::TextureDimension::D2
            || texture.sample_count() != 1
            || texture.depth_or_array_layers() != 1,
        "texture",
        || {
            format!(
                "must be 2-D with one layer and one sample, got {:?} with {} layers and {} \
                 samples",
                texture.dimension(),
                texture.depth_or_array_layers(),
                texture.sample_count()
            )
        },
    )?;
    fail_if(!texture.usage().contains(usage), "texture", || {
        format!("needs {usage:?} usage, has {:?}", texture.usage())
    })
}

/// Records a copy of a frame texture into a new buffer; returns it with its layout.
pub(crate) fn copy_texture(
    rec: &mut Recorder<'_>,
    texture: &wgpu::Texture,
) -> Result<(Arc<PooledBuffer>, FrameLayout)> {
    let format = PixelFormat::of_texture(texture.format())?;
    check_texture(texture, wgpu::TextureUsages::COPY_SRC)?;
    let (width, height) = (texture.width() as usize, texture.height() as usize);
    let layout = FrameLayout {
        width,
        height,
        bytes_per_row: (4 * width).next_multiple_of(TEXTURE_ROW_ALIGN),
        format,
    };
    layout.validate()?;
    let pixels = rec.alloc_f32("frame", layout.bytes_per_row / 4 * height)?;
    rec.copy_from_texture(texture, &pixels, layout.bytes_per_row as u32)?;
    Ok((pixels, layout))
}

/// The network's input from the application's `texture` (mip level 0 of a 2-D
/// `Rgba8Unorm(Srgb)` or `Bgra8Unorm(Srgb)` texture with `COPY_SRC` usage; sRGB bytes are
/// taken as stored), recorded into `rec`: a copy and one dispatch.
pub fn frame_from_texture(
    rec: &mut Recorder<'_>,
    texture: &wgpu::Texture,
    params: &FrameParams,
) -> Result<Tensor> {
    // The parameters are checked before anything is recorded.
    let size = texture.size();
    let probe = FrameLayout::packed(
        size.width as usize,
        size.height as usize,
        PixelFormat::Rgba8,
    );
    params.output_shape(&probe)?;
    let (pixels, layout) = copy_texture(rec, texture)?;
    params.record(rec, &pixels, &layout)
}

/// The texel format of a mask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MaskFormat {
    /// 8-bit unsigned normalised (values clamped to `[0, 1]`, rounded to 1/255).
    #[default]
    R8Unorm,
    /// Half float.
    R16Float,
    /// Single float (exact).
    R32Float,
}

impl MaskFormat {
    /// Bytes per pixel.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            MaskFormat::R8Unorm => 1,
            MaskFormat::R16Float => 2,
            MaskFormat::R32Float => 4,
        }
    }

    /// The matching texture format.
    pub fn texture_format(self) -> wgpu::TextureFormat {
        match self {
            MaskFormat::R8Unorm => wgpu::TextureFormat::R8Unorm,
            MaskFormat::R16Float => wgpu::TextureFormat::R16Float,
            MaskFormat::R32Float => wgpu::TextureFormat::R32Float,
        }
    }

    /// The mask format of a texture format; others are refused.
    pub fn of_texture(format: wgpu::TextureFormat) -> Result<Self> {
        use wgpu::TextureFormat as F;
        match format {
            F::R8Unorm => Ok(MaskFormat::R8Unorm),
            F::R16Float => Ok(MaskFormat::R16Float),
            F::R32Float => Ok(MaskFormat::R32Float),
            other => Err(invalid(
                "texture",
                format!("masks are R8Unorm, R16Float or R32Float textures, got {other:?}"),
            )),
        }
    }

    fn code(self) -> u32 {
        match self {
            MaskFormat::R8Unorm => 0,
            MaskFormat::R16Float => 1,
            MaskFormat::R32Float => 2,
        }
    }
}

/// What a mask's values become.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Threshold {
    /// The resized values as they are.
    #[default]
    None,
    /// 1 where the value is at least the threshold, else 0.
    Step(f32),
    /// A feathered edge: `smoothstep(threshold - feather, threshold + feather, v)`.
    Smooth {
        /// Where the edge is.
        threshold: f32,
        /// Half its width (positive).
        feather: f32,
    },
}

impl Threshold {
    /// The shaders' `THRESHOLD` code (0 none, 1 step, 2 smoothstep), threshold and
    /// feather.
    pub(crate) fn parts(&self) -> (u32, f32, f32) {
        match *self {
            Threshold::None => (0, 0.0, 0.0),
            Threshold::Step(t) => (1, t, 0.0),
            Threshold::Smooth { threshold, feather } => (2, threshold, feather),
        }
    }
}

/// How a network output becomes a mask of a frame's size.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MaskParams {
    /// The output channel (a class's probability or logit).
    pub channel: usize,
    /// The image of the batch.
    pub batch: usize,
    /// The fit the frame was given ([`FrameParams::fit`]): a letterboxed frame's mask
    /// comes from the content rectangle only.
    pub fit: Fit,
    /// Thresholding after the resize.
    pub threshold: Threshold,
}

/// Where a mask goes in the application's buffer: `height` rows of `width` pixels of
/// `format`, `bytes_per_row` apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MaskLayout {
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Bytes from one row to the next: at least `width` pixels, a multiple of 4.
    pub bytes_per_row: usize,
    /// Texel format.
    pub format: MaskFormat,
}

impl MaskLayout {
    /// Rows as short as the format allows (whole 4-byte words).
    pub fn packed(width: usize, height: usize, format: MaskFormat) -> Self {
        MaskLayout {
            width,
            height,
            bytes_per_row: (width * format.bytes_per_pixel()).next_multiple_of(4),
            format,
        }
    }

    /// The bytes the mask spans (every row in full).
    pub fn span(&self) -> usize {
        self.bytes_per_row * self.height
    }

    fn validate(&self) -> Result<()> {
        check_side("mask width", self.width)?;
        check_side("mask height", self.height)?;
        let min = self.width * self.format.bytes_per_pixel();
        fail_if(
            self.bytes_per_row < min || !self.bytes_per_row.is_multiple_of(4),
            "bytes_per_row",
            || {
                format!(
                    "rows of {} {:?} pixels need at least {min} bytes, a multiple of 4; \
                     got {}",
                    self.width, self.format, self.bytes_per_row
                )
            },
        )?;
        check_stride(self.bytes_per_row, self.height)
    }
}

setters!(FrameParams {
    /// Sets the fit.
    fit: Fit,
    /// Sets the normalisation.
    normalize: Normalize,
});

setters!(MaskParams {
    /// Sets the channel.
    channel: usize,
    /// Sets the batch index.
    batch: usize,
    /// Sets the fit (the frame's).
    fit: Fit,
    /// Sets the threshold.
    threshold: Threshold,
});

impl MaskParams {
    /// Channel 0 of image 0, stretched, no threshold.
    pub fn new() -> Self {
        MaskParams::default()
    }

    /// Checks the parameters against a network output `[N, C, H, W]` and the target.
    pub fn validate(&self, output: [usize; 4], target: &MaskLayout) -> Result<()> {
        target.validate()?;
        fail_if(output.contains(&0), "mask", || {
            format!("must not be empty, got {output:?}")
        })?;
        fail_if(self.batch >= output[0], "batch", || {
            format!(
                "the output has {} images, got index {}",
                output[0], self.batch
            )
        })?;
        fail_if(self.channel >= output[1], "channel", || {
            format!(
                "the output has {} channels, got index {}",
                output[1], self.channel
            )
        })?;
        match self.threshold {
            Threshold::None => Ok(()),
            Threshold::Step(t) => fail_if(!t.is_finite(), "threshold", || {
                format!("must be finite, got {t}")
            }),
            Threshold::Smooth { threshold, feather } => {
                fail_if(!threshold.is_finite(), "threshold", || {
                    format!("must be finite, got {threshold}")
                })?;
                fail_if(!(feather.is_finite() && feather > 0.0), "feather", || {
                    format!("must be positive and finite, got {feather}")
                })
            }
        }
    }

    /// The dispatch writing `target`'s pixels in rows `row_bytes` apart.
    fn plan(&self, output: [usize; 4], target: &MaskLayout, row_bytes: usize) -> Launch {
        let [_, c, h, w] = output;
        let rect = self.fit.content_rect((h, w), (target.height, target.width));
        let per_word = 4 / target.format.bytes_per_pixel();
        let words_per_row = target.width.div_ceil(per_word);
        let (mode, threshold, feather) = self.threshold.parts();
        let u = MaskOutParams {
            src_h: h as u32,
            src_w: w as u32,
            plane_offset: ((self.batch * c + self.channel) * h * w) as u32,
            off_y: rect.offset.0 as u32,
            off_x: rect.offset.1 as u32,
            content_h: rect.size.0 as u32,
            content_w: rect.size.1 as u32,
            scale_y: rect.size.0 as f32 / target.height as f32,
            scale_x: rect.size.1 as f32 / target.width as f32,
            dst_h: target.height as u32,
            dst_w: target.width as u32,
            row_words: (row_bytes / 4) as u32,
            words_per_row: words_per_row as u32,
            threshold,
            feather,
        };
        let spec = MaskOutSpec {
            format: target.format.code(),
            threshold: mode,
        };
        MASK_OUT
            .launch(&spec, &u)
            .threads(words_per_row * target.height)
    }

    /// Records the mask of `output` into a pooled buffer with rows `row_bytes` apart.
    fn record(
        &self,
        rec: &mut Recorder<'_>,
        output: &Tensor,
        target: &MaskLayout,
        row_bytes: usize,
    ) -> Result<Arc<PooledBuffer>> {
        output.check_gpu(rec.gpu(), "mask")?;
        self.validate(output.shape(), target)?;
        let words = row_bytes / 4 * target.height;
        let packed = rec.alloc_f32("mask", words)?;
        rec.run(
            &self.plan(output.shape(), target, row_bytes),
            Args::new().read("mask", output).write("out", &packed),
        )?;
        Ok(packed)
    }
}

/// Records the mask of `output` (`[N, C, H, W]`, see [`MaskParams`]) resized to the
/// application's `texture` (2-D, `R8Unorm`, `R16Float` or `R32Float`, `COPY_DST` usage,
/// its size the frame's): one dispatch and a copy in the recording's submission.
pub fn mask_to_texture(
    rec: &mut Recorder<'_>,
    output: &Tensor,
    params: &MaskParams,
    texture: &wgpu::Texture,
) -> Result<()> {
    let format = MaskFormat::of_texture(texture.format())?;
    check_texture(texture, wgpu::TextureUsages::COPY_DST)?;
    let (width, height) = (texture.width() as usize, texture.height() as usize);
    let row_bytes = (width * format.bytes_per_pixel()).next_multiple_of(TEXTURE_ROW_ALIGN);
    let target = MaskLayout {
        width,
        height,
        bytes_per_row: row_bytes,
        format,
    };
    let packed = params.record(rec, output, &target, row_bytes)?;
    rec.copy_to_texture(&packed, row_bytes as u32, texture)
}

/// Records the mask of `output` (see [`MaskParams`]) into the application's `buffer`
/// (`COPY_DST` usage) from byte `offset` (a multiple of 4), laid out as `layout`: one
/// dispatch and a copy in the recording's submission.
pub fn mask_to_buffer(
    rec: &mut Recorder<'_>,
    output: &Tensor,
    params: &MaskParams,
    buffer: &wgpu::Buffer,
    offset: u64,
    layout: &MaskLayout,
) -> Result<()> {
    layout.validate()?;
    let span = layout.span() as u64;
    check_app_buffer(buffer, wgpu::BufferUsages::COPY_DST, offset, span, "mask")?;
    let packed = params.record(rec, output, layout, layout.bytes_per_row)?;
    rec.copy_to_buffer(&packed, buffer, offset, span)
}

/// Bytes a mask moves: the source channel read once, the mask written once.
pub fn mask_cost(output: [usize; 4], target: &MaskLayout) -> Cost {
    Cost {
        params: 0,
        macs: 0,
        bytes: (4 * output[2] * output[3] + target.span()) as u64,
    }
}
