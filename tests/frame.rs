//! Frames in and masks out on the GPU (`segblocks::ops::frame`), and a context on the
//! application's own device: against PyTorch (`tests/golden/frame.json`, written by
//! `tests/golden/make_golden_frame.py`) and the CPU reference, through host bytes, the
//! application's buffers (any row stride, RGBA or BGRA) and textures (sRGB or not).

mod common;

use ndarray::{Array2, Array4};
use segblocks::ops::composite::{Background, Compositor};
use segblocks::ops::frame::{
    frame_from_buffer, frame_from_host, frame_from_texture, mask_to_buffer, mask_to_texture, Fit,
    FrameLayout, FrameParams, MaskFormat, MaskLayout, MaskParams, Normalize, PixelFormat,
    Threshold,
};
use segblocks::{reference, Error, FramesInFlight, Gpu, GpuOptions};
use serde_json::Value;

const GOLDEN: &str = include_str!("golden/frame.json");

fn golden() -> Value {
    serde_json::from_str(GOLDEN).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn usize_of(v: &Value) -> usize {
    v.as_u64().unwrap() as usize
}

/// The golden RGBA image: (bytes, height, width).
fn image() -> (Vec<u8>, usize, usize) {
    let g = golden();
    let img = &g["image"];
    let bytes = img["bytes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap() as u8)
        .collect();
    (bytes, usize_of(&img["height"]), usize_of(&img["width"]))
}

fn imagenet() -> Normalize {
    let g = golden();
    let three = |v: &Value| <[f32; 3]>::try_from(floats(v)).unwrap();
    Normalize {
        mean: three(&g["mean"]),
        std: three(&g["std"]),
    }
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The image's pixels re-laid: `format` byte order, rows `stride` bytes apart.
fn relayout(bytes: &[u8], h: usize, w: usize, format: PixelFormat, stride: usize) -> Vec<u8> {
    let mut out = vec![0xAB; stride * h];
    for y in 0..h {
        for x in 0..w {
            let src = &bytes[(y * w + x) * 4..][..4];
            let px = match format {
                PixelFormat::Rgba8 => [src[0], src[1], src[2], src[3]],
                PixelFormat::Bgra8 => [src[2], src[1], src[0], src[3]],
            };
            out[y * stride + 4 * x..][..4].copy_from_slice(&px);
        }
    }
    out
}

/// Reads an application buffer back (test-side wgpu).
fn read_buffer(gpu: &Gpu, buffer: &wgpu::Buffer) -> Vec<u8> {
    let (device, queue) = (gpu.device(), gpu.queue());
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: buffer.size(),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, buffer.size());
    queue.submit([encoder.finish()]);
    staging
        .slice(..)
        .map_async(wgpu::MapMode::Read, |r| r.unwrap());
    device
        .poll(wgpu::PollType::Wait {
            submission_index: None,
            timeout: None,
        })
        .unwrap();
    let data = staging.slice(..).get_mapped_range().unwrap().to_vec();
    data
}

/// Reads a 2-D texture back as rows of `row_bytes` bytes (test-side wgpu).
fn read_texture(gpu: &Gpu, texture: &wgpu::Texture, row_bytes: usize) -> Vec<u8> {
    let pitch = row_bytes.next_multiple_of(256);
    let h = texture.height() as usize;
    let buffer = gpu.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: (pitch * h) as u64,
        usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = gpu.device().create_command_encoder(&Default::default());
    encoder.copy_texture_to_buffer(
        texture.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &buffer,
            layout: wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(pitch as u32),
                rows_per_image: None,
            },
        },
        texture.size(),
    );
    gpu.queue().submit([encoder.finish()]);
    let padded = read_buffer(gpu, &buffer);
    (0..h)
        .flat_map(|y| padded[y * pitch..][..row_bytes].to_vec())
        .collect()
}

fn texture(
    gpu: &Gpu,
    (w, h): (usize, usize),
    format: wgpu::TextureFormat,
    usage: wgpu::TextureUsages,
) -> wgpu::Texture {
    gpu.device().create_texture(&wgpu::TextureDescriptor {
        label: None,
        size: wgpu::Extent3d {
            width: w as u32,
            height: h as u32,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage,
        view_formats: &[],
    })
}

/// An RGBA / BGRA texture holding the golden image.
fn frame_texture(gpu: &Gpu, format: wgpu::TextureFormat) -> wgpu::Texture {
    let (bytes, h, w) = image();
    let t = texture(
        gpu,
        (w, h),
        format,
        wgpu::TextureUsages::COPY_SRC | wgpu::TextureUsages::COPY_DST,
    );
    let pixel_format = PixelFormat::of_texture(format).unwrap();
    let data = relayout(&bytes, h, w, pixel_format, 4 * w);
    gpu.queue().write_texture(
        t.as_image_copy(),
        &data,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(4 * w as u32),
            rows_per_image: None,
        },
        t.size(),
    );
    t
}

fn host_frame(gpu: &Gpu, params: &FrameParams) -> Array4<f32> {
    let (bytes, h, w) = image();
    let layout = FrameLayout::packed(w, h, PixelFormat::Rgba8);
    let mut rec = gpu.recorder();
    let x = frame_from_host(&mut rec, &bytes, &layout, params).unwrap();
    rec.download(&x).unwrap()
}

#[test]
fn frames_match_pytorch_down_and_up() {
    let gpu = common::gpu();
    let g = golden();
    let (bytes, h, w) = image();
    let layout = FrameLayout::packed(w, h, PixelFormat::Rgba8);
    for case in g["frames"].as_array().unwrap() {
        let size = case["size"].as_array().unwrap();
        let params = FrameParams::new(usize_of(&size[0]), usize_of(&size[1])).normalize(imagenet());
        let want = floats(&case["output"]);
        let got = host_frame(gpu, &params);
        let reference = reference::frame::frame_to_input(&bytes, &layout, &params).unwrap();
        assert_eq!(got.shape(), reference.shape());
        let (g_err, r_err) = (
            max_abs(got.as_slice().unwrap(), &want),
            max_abs(reference.as_slice().unwrap(), &want),
        );
        eprintln!(
            "{:?}: GPU {g_err:.1e}, reference {r_err:.1e} from PyTorch",
            params.size
        );
        // f32 blending of values ~1, normalised by std ~0.22: a few ulps of 4.
        assert!(g_err < 1e-5 && r_err < 1e-5, "{g_err} {r_err}");
    }
}

#[test]
fn buffers_with_strides_and_textures_give_the_same_input() {
    let gpu = common::gpu();
    let (bytes, h, w) = image();
    let params = FrameParams::new(16, 24).normalize(Normalize::SYMMETRIC);
    let want = host_frame(gpu, &params);
    for format in [PixelFormat::Rgba8, PixelFormat::Bgra8] {
        // A padded stride, and the frame at an offset into the buffer.
        let stride = 4 * w + 12;
        let data = relayout(&bytes, h, w, format, stride);
        let mut contents = vec![0u8; 64];
        contents.extend(&data);
        let buffer = gpu.device().create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: contents.len().next_multiple_of(4) as u64,
            usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        contents.resize(buffer.size() as usize, 0);
        gpu.queue().write_buffer(&buffer, 0, &contents);
        let layout = FrameLayout {
            width: w,
            height: h,
            bytes_per_row: stride,
            format,
        };
        // Fresh (zeroed) buffers: a recycled output of the previous variant would hide
        // values this one fails to write.
        gpu.trim_pool();
        let mut rec = gpu.recorder();
        let x = frame_from_buffer(&mut rec, &buffer, 64, &layout, &params).unwrap();
        assert_eq!(rec.dispatch_count(), 1);
        let got = rec.download(&x).unwrap();
        assert_eq!(got, want, "{format:?} buffer");
    }
    for format in [
        wgpu::TextureFormat::Rgba8Unorm,
        wgpu::TextureFormat::Rgba8UnormSrgb,
        wgpu::TextureFormat::Bgra8Unorm,
        wgpu::TextureFormat::Bgra8UnormSrgb,
    ] {
        let t = frame_texture(gpu, format);
        gpu.trim_pool();
        let mut rec = gpu.recorder();
        let x = frame_from_texture(&mut rec, &t, &params).unwrap();
        let got = rec.download(&x).unwrap();
        assert_eq!(got, want, "{format:?} texture");
    }
}

#[test]
fn letterboxed_frames_and_their_masks_match_the_reference() {
    let gpu = common::gpu();
    let (bytes, h, w) = image();
    let layout = FrameLayout::packed(w, h, PixelFormat::Rgba8);
    let fit = Fit::Letterbox { fill: 0.5 };
    let params = FrameParams::new(16, 16).fit(fit).normalize(imagenet());
    // 13 x 19 into 16 x 16: scaled by 16 / 19 to 11 x 16, centred with 2 rows above.
    let rect = fit.content_rect((16, 16), (h, w));
    assert_eq!((rect.offset, rect.size), ((2, 0), (11, 16)));
    let got = host_frame(gpu, &params);
    let want = reference::frame::frame_to_input(&bytes, &layout, &params).unwrap();
    let err = max_abs(got.as_slice().unwrap(), want.as_slice().unwrap());
    assert!(err < 1e-5, "{err}");
    // The border holds the normalised fill.
    let border = (0.5 - 0.485) / 0.229;
    assert!((got[[0, 0, 0, 5]] - border).abs() < 1e-6);
    // The mask of that input comes back from the content rectangle only.
    let output = common::random4(&mut common::rng(3), [1, 1, 16, 16]);
    let target = MaskLayout::packed(w, h, MaskFormat::R32Float);
    let mask_params = MaskParams::new().fit(fit);
    let got = mask_via_buffer(gpu, &output, &mask_params, &target);
    let want = reference::frame::output_to_mask(output.view(), &mask_params, &target).unwrap();
    assert!(max_abs(got.as_slice().unwrap(), want.as_slice().unwrap()) < 1e-6);
}

/// Decodes a packed mask (rows `row_bytes` apart) to floats.
fn decode(data: &[u8], layout: &MaskLayout, row_bytes: usize) -> Array2<f32> {
    Array2::from_shape_fn((layout.height, layout.width), |(y, x)| {
        let row = &data[y * row_bytes..];
        match layout.format {
            MaskFormat::R8Unorm => row[x] as f32 / 255.0,
            MaskFormat::R16Float => f16_to_f32(u16::from_le_bytes([row[2 * x], row[2 * x + 1]])),
            MaskFormat::R32Float => f32::from_le_bytes(row[4 * x..][..4].try_into().unwrap()),
        }
    })
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let e = ((h >> 10) & 0x1f) as i32;
    let m = (h & 0x3ff) as f32;
    sign * match e {
        0 => m * 2f32.powi(-24),
        31 if m == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        _ => (1.0 + m / 1024.0) * 2f32.powi(e - 15),
    }
}

fn mask_via_buffer(
    gpu: &Gpu,
    output: &Array4<f32>,
    params: &MaskParams,
    layout: &MaskLayout,
) -> Array2<f32> {
    let buffer = gpu.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: layout.span() as u64 + 8,
        usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut rec = gpu.recorder();
    let y = gpu.upload(output.view()).unwrap();
    mask_to_buffer(&mut rec, &y, params, &buffer, 8, layout).unwrap();
    rec.submit().unwrap();
    let data = read_buffer(gpu, &buffer);
    decode(&data[8..], layout, layout.bytes_per_row)
}

/// The bound for a stored mask value of `want` in `format`: R8 rounds to 1/255 after
/// clamping to [0, 1]; R16F keeps 11 significant bits; R32F holds the f32 blend (a few ulps from
/// PyTorch's).
fn within(format: MaskFormat, got: f32, want: f32) -> bool {
    match format {
        MaskFormat::R8Unorm => (got - want.clamp(0.0, 1.0)).abs() <= 0.5 / 255.0 + 1e-6,
        MaskFormat::R16Float => (got - want).abs() <= want.abs() * 2f32.powi(-11) + 1e-7,
        MaskFormat::R32Float => (got - want).abs() <= 4e-6,
    }
}

#[test]
fn masks_match_pytorch_in_every_format_to_buffers_and_textures() {
    let gpu = common::gpu();
    let g = golden();
    let out = &g["network_output"];
    let shape: [usize; 4] = out["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(usize_of)
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    let output = Array4::from_shape_vec(shape, floats(&out["values"])).unwrap();
    let formats = [
        MaskFormat::R8Unorm,
        MaskFormat::R16Float,
        MaskFormat::R32Float,
    ];
    for case in g["masks"].as_array().unwrap() {
        let size = case["size"].as_array().unwrap();
        let (h, w) = (usize_of(&size[0]), usize_of(&size[1]));
        let params = MaskParams::new()
            .batch(usize_of(&case["batch"]))
            .channel(usize_of(&case["channel"]));
        let want = floats(&case["output"]);
        for format in formats {
            let layout = MaskLayout::packed(w, h, format);
            let reference =
                reference::frame::output_to_mask(output.view(), &params, &layout).unwrap();
            let r_err = max_abs(reference.as_slice().unwrap(), &want);
            // f32 blends of values up to ~3 in PyTorch: a few ulps.
            assert!(r_err < 4e-6, "reference {h}x{w}: {r_err}");
            let got = mask_via_buffer(gpu, &output, &params, &layout);
            for (i, (&g, &t)) in got.iter().zip(&want).enumerate() {
                assert!(within(format, g, t), "{format:?} {h}x{w} [{i}]: {g} vs {t}");
            }
            // The same into a texture of the frame's size.
            let t = texture(
                gpu,
                (w, h),
                format.texture_format(),
                wgpu::TextureUsages::COPY_SRC | wgpu::TextureUsages::COPY_DST,
            );
            let mut rec = gpu.recorder();
            let y = gpu.upload(output.view()).unwrap();
            mask_to_texture(&mut rec, &y, &params, &t).unwrap();
            rec.submit().unwrap();
            let row = w * format.bytes_per_pixel();
            let from_texture = decode(&read_texture(gpu, &t, row), &layout, row);
            assert_eq!(from_texture, got, "{format:?} texture");
        }
    }
}

#[test]
fn thresholds_step_and_feather_as_the_reference() {
    let gpu = common::gpu();
    let output = common::random4(&mut common::rng(5), [2, 3, 9, 7]);
    for threshold in [
        Threshold::Step(0.1),
        Threshold::Smooth {
            threshold: -0.2,
            feather: 0.3,
        },
    ] {
        let params = MaskParams::new().batch(1).channel(2).threshold(threshold);
        let layout = MaskLayout::packed(23, 17, MaskFormat::R32Float);
        let got = mask_via_buffer(gpu, &output, &params, &layout);
        let want = reference::frame::output_to_mask(output.view(), &params, &layout).unwrap();
        let err = max_abs(got.as_slice().unwrap(), want.as_slice().unwrap());
        // A value within rounding of the step's edge may fall either side: allow none here
        // (random values), and 1e-5 for the smoothstep.
        assert!(err < 1e-5, "{threshold:?}: {err}");
        assert!(got.iter().any(|&v| v > 0.99) && got.iter().any(|&v| v < 0.01));
    }
}

#[test]
fn bad_frames_and_targets_are_typed_errors() {
    let gpu = common::gpu();
    let (bytes, h, w) = image();
    let params = FrameParams::new(8, 8);
    let invalid = |r: Result<_, Error>, want: &str| match r {
        Err(Error::InvalidParam { name, .. }) if name == want => {}
        other => panic!("expected InvalidParam {want}, got {other:?}"),
    };
    let mut rec = gpu.recorder();
    let packed = FrameLayout::packed(w, h, PixelFormat::Rgba8);
    invalid(
        frame_from_host(&mut rec, &bytes[..100], &packed, &params).map(|_| ()),
        "bytes",
    );
    let zero = FrameLayout::packed(0, h, PixelFormat::Rgba8);
    invalid(
        frame_from_host(&mut rec, &bytes, &zero, &params).map(|_| ()),
        "frame width",
    );
    let short_rows = FrameLayout {
        bytes_per_row: 4 * w - 4,
        ..packed
    };
    invalid(
        frame_from_host(&mut rec, &bytes, &short_rows, &params).map(|_| ()),
        "bytes_per_row",
    );
    let bad_std = params.normalize(Normalize {
        mean: [0.0; 3],
        std: [1.0, 0.0, 1.0],
    });
    invalid(
        frame_from_host(&mut rec, &bytes, &packed, &bad_std).map(|_| ()),
        "std",
    );
    invalid(
        frame_from_host(&mut rec, &bytes, &packed, &FrameParams::new(0, 8)).map(|_| ()),
        "size",
    );
    // A buffer without COPY_SRC, one too small, an odd offset.
    let mapped = gpu.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 4096,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    invalid(
        frame_from_buffer(&mut rec, &mapped, 0, &packed, &params).map(|_| ()),
        "buffer",
    );
    let small = gpu.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 64,
        usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    invalid(
        frame_from_buffer(&mut rec, &small, 0, &packed, &params).map(|_| ()),
        "buffer",
    );
    invalid(
        frame_from_buffer(
            &mut rec,
            &small,
            2,
            &FrameLayout::packed(2, 2, PixelFormat::Rgba8),
            &params,
        )
        .map(|_| ()),
        "offset",
    );
    // Textures of the wrong format or usage.
    let r8 = texture(
        gpu,
        (8, 8),
        wgpu::TextureFormat::R8Unorm,
        wgpu::TextureUsages::COPY_SRC,
    );
    invalid(
        frame_from_texture(&mut rec, &r8, &params).map(|_| ()),
        "texture",
    );
    let no_copy = texture(
        gpu,
        (8, 8),
        wgpu::TextureFormat::Rgba8Unorm,
        wgpu::TextureUsages::TEXTURE_BINDING,
    );
    invalid(
        frame_from_texture(&mut rec, &no_copy, &params).map(|_| ()),
        "texture",
    );
    // Masks: a channel or image the output lacks, a zero feather, a wrong texture.
    let y = gpu.upload(Array4::zeros([1, 2, 4, 4]).view()).unwrap();
    let target = texture(
        gpu,
        (8, 8),
        wgpu::TextureFormat::R8Unorm,
        wgpu::TextureUsages::COPY_DST,
    );
    invalid(
        mask_to_texture(&mut rec, &y, &MaskParams::new().channel(2), &target),
        "channel",
    );
    invalid(
        mask_to_texture(&mut rec, &y, &MaskParams::new().batch(1), &target),
        "batch",
    );
    let feather = Threshold::Smooth {
        threshold: 0.5,
        feather: 0.0,
    };
    invalid(
        mask_to_texture(&mut rec, &y, &MaskParams::new().threshold(feather), &target),
        "feather",
    );
    let rgba = texture(
        gpu,
        (8, 8),
        wgpu::TextureFormat::Rgba8Unorm,
        wgpu::TextureUsages::COPY_DST,
    );
    invalid(
        mask_to_texture(&mut rec, &y, &MaskParams::new(), &rgba),
        "texture",
    );
    invalid(
        mask_to_buffer(
            &mut rec,
            &y,
            &MaskParams::new(),
            &small,
            0,
            &MaskLayout::packed(64, 64, MaskFormat::R8Unorm),
        ),
        "buffer",
    );
    let odd_rows = MaskLayout {
        bytes_per_row: 10,
        ..MaskLayout::packed(10, 2, MaskFormat::R8Unorm)
    };
    invalid(
        mask_to_buffer(&mut rec, &y, &MaskParams::new(), &small, 0, &odd_rows),
        "bytes_per_row",
    );
    // Nothing above reached wgpu: the recording is still good.
    assert!(rec.submit().is_ok());
}

#[test]
fn a_context_on_the_applications_device() {
    let (device, queue, info) = pollster::block_on(async {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions::default())
            .await
            .unwrap();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor::default())
            .await
            .unwrap();
        (device, queue, adapter.get_info())
    });
    let gpu = Gpu::from_device(
        device.clone(),
        queue.clone(),
        info.clone(),
        GpuOptions::default(),
    )
    .unwrap();
    assert_eq!(gpu.device(), &device);
    // The app's device works like the library's own: a frame in, compared with the
    // reference.
    let params = FrameParams::new(10, 14).normalize(imagenet());
    let t = frame_texture(&gpu, wgpu::TextureFormat::Bgra8UnormSrgb);
    let mut rec = gpu.recorder();
    let x = frame_from_texture(&mut rec, &t, &params).unwrap();
    let got = rec.download(&x).unwrap();
    let (bytes, h, w) = image();
    let layout = FrameLayout::packed(w, h, PixelFormat::Rgba8);
    let want = reference::frame::frame_to_input(&bytes, &layout, &params).unwrap();
    assert!(max_abs(got.as_slice().unwrap(), want.as_slice().unwrap()) < 1e-5);

    // A device created with fewer storage buffers than the kernels bind is refused by name.
    let (small, small_queue) = pollster::block_on(async {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions::default())
            .await
            .unwrap();
        adapter
            .request_device(&wgpu::DeviceDescriptor {
                required_limits: wgpu::Limits {
                    max_storage_buffers_per_shader_stage: 4,
                    ..wgpu::Limits::downlevel_defaults()
                },
                ..Default::default()
            })
            .await
            .unwrap()
    });
    match Gpu::from_device(small, small_queue, info, GpuOptions::default()) {
        Err(Error::DeviceUnsupported { name, .. }) => {
            assert_eq!(name, "max_storage_buffers_per_shader_stage")
        }
        other => panic!("expected DeviceUnsupported, got {other:?}"),
    }
}

#[test]
fn composites_blur_or_tint_the_background_as_the_reference() {
    let gpu = common::gpu();
    let (bytes, h, w) = image();
    let layout = FrameLayout::packed(w, h, PixelFormat::Rgba8);
    // A mask of a quarter of the frame's size, a person on the left.
    let output = Array4::from_shape_fn([1, 1, 4, 5], |(_, _, _, x)| 1.0 - x as f32 / 4.0);
    let mask = MaskParams::new();
    for background in [
        Background::blur(2.0),
        Background::Blur {
            sigma: 1.5,
            downscale: 1,
        },
        Background::Tint {
            color: [0.0, 0.5, 1.0],
            amount: 0.75,
        },
    ] {
        let compositor = Compositor::new(gpu, background).unwrap();
        let y = gpu.upload(output.view()).unwrap();
        let got = compositor
            .composite_host(gpu.recorder(), &bytes, &layout, &y, &mask)
            .unwrap();
        let want =
            reference::composite::composite(&bytes, &layout, output.view(), &mask, &background)
                .unwrap();
        assert_eq!(got.len(), want.len());
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        // Rounding to bytes: a value within f32 error of a half may round either way.
        assert!(worst <= 1, "{background:?}: off by {worst}");
        // The person (left) keeps the frame's pixels; the background (right) does not.
        let px = |x: usize| &got[4 * (5 * w + x)..][..3];
        let frame_px = |x: usize| &bytes[4 * (5 * w + x)..][..3];
        assert_eq!(px(0), frame_px(0));
        assert_ne!(px(w - 1), frame_px(w - 1));
    }
    // The texture path writes the same pixels (a BGRA frame into an RGBA target).
    let compositor = Compositor::new(gpu, Background::blur(2.0)).unwrap();
    let y = gpu.upload(output.view()).unwrap();
    let want = compositor
        .composite_host(gpu.recorder(), &bytes, &layout, &y, &mask)
        .unwrap();
    let frame = frame_texture(gpu, wgpu::TextureFormat::Bgra8Unorm);
    let target = texture(
        gpu,
        (w, h),
        wgpu::TextureFormat::Rgba8UnormSrgb,
        wgpu::TextureUsages::COPY_SRC | wgpu::TextureUsages::COPY_DST,
    );
    let mut rec = gpu.recorder();
    compositor
        .composite_texture(&mut rec, &frame, &y, &mask, &target)
        .unwrap();
    // Frame in, background resized, two blur passes, composite.
    assert_eq!(rec.dispatch_count(), 4);
    rec.submit().unwrap();
    assert_eq!(read_texture(gpu, &target, 4 * w), want);
    // Bad backgrounds and targets are typed errors.
    for (bad, name) in [
        (Background::blur(0.0), "sigma"),
        (
            Background::Blur {
                sigma: 1.0,
                downscale: 0,
            },
            "downscale",
        ),
        (
            Background::Tint {
                color: [0.0; 3],
                amount: 2.0,
            },
            "amount",
        ),
    ] {
        match Compositor::new(gpu, bad) {
            Err(Error::InvalidParam { name: n, .. }) => assert_eq!(n, name),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    let small = texture(
        gpu,
        (w - 1, h),
        wgpu::TextureFormat::Rgba8Unorm,
        wgpu::TextureUsages::COPY_DST,
    );
    let mut rec = gpu.recorder();
    assert!(matches!(
        compositor.composite_texture(&mut rec, &frame, &y, &mask, &small),
        Err(Error::InvalidParam { name: "target", .. })
    ));
}

#[test]
fn frames_in_flight_change_size_mid_stream_and_memory_stays_flat() {
    // A context of its own: its memory counters see this test only.
    let gpu = Gpu::new().unwrap();
    let (bytes, h, w) = image();
    let compositor = Compositor::new(&gpu, Background::blur(2.0)).unwrap();
    let mask = MaskParams::new().threshold(Threshold::Smooth {
        threshold: 0.5,
        feather: 0.1,
    });
    // The frames: the golden image, then a smaller crop of it (a size change mid-stream).
    let crop_w = w - 6;
    let cropped: Vec<u8> = (0..h - 3)
        .flat_map(|y| bytes[4 * y * w..][..4 * crop_w].to_vec())
        .collect();
    let frames = [
        (&bytes, FrameLayout::packed(w, h, PixelFormat::Rgba8)),
        (
            &cropped,
            FrameLayout::packed(crop_w, h - 3, PixelFormat::Rgba8),
        ),
    ];
    // A stand-in network: the mean over channels (channel 0 of CBAM's channel pool).
    let record = |rec: &mut segblocks::Recorder<'_>, i: usize| {
        let (frame, layout) = &frames[i % 2];
        let x = frame_from_host(rec, frame, layout, &FrameParams::new(8, 8)).unwrap();
        let m = segblocks::ops::channel::channel_pool(rec, &x, Default::default()).unwrap();
        compositor
            .record_host(rec, frame, layout, &m, &mask)
            .unwrap()
    };
    let one_at_a_time: Vec<_> = (0..2)
        .map(|i| {
            let mut rec = gpu.recorder();
            let out = record(&mut rec, i);
            rec.download(&out).unwrap()
        })
        .collect();
    let mut in_flight = FramesInFlight::new(2);
    let mut done = 0;
    let mut check = |(i, outs): (usize, Vec<Array4<f32>>)| {
        assert_eq!(
            outs[0].mapv(f32::to_bits),
            one_at_a_time[i % 2].mapv(f32::to_bits),
            "frame {i}"
        );
        done += 1;
    };
    let mut stats = Vec::new();
    for i in 0..60 {
        let mut rec = gpu.recorder();
        let out = record(&mut rec, i);
        if let Some(r) = in_flight.push(i, rec, &[&out]).unwrap() {
            check(r);
        }
        if i == 10 || i == 58 {
            stats.push(gpu.memory_stats());
        }
    }
    while let Some(r) = in_flight.pop().unwrap() {
        check(r);
    }
    // Steady state: after the first frames no buffer is created, and live memory at the
    // same point of the cycle of sizes is the same.
    assert_eq!(
        stats[0].buffers_created, stats[1].buffers_created,
        "{stats:?}"
    );
    assert_eq!(stats[0].live_bytes, stats[1].live_bytes, "{stats:?}");
    // The async forms (the only ones on the web) hand back the same frames in order.
    let handed_back = pollster::block_on(async {
        let mut in_flight = FramesInFlight::new(2);
        let mut order = Vec::new();
        for i in 0..6 {
            let mut rec = gpu.recorder();
            let out = record(&mut rec, i);
            if let Some(r) = in_flight.push_async(i, rec, &[&out]).await.unwrap() {
                order.push(r.0);
                check(r);
            }
        }
        while let Some(r) = in_flight.pop_async().await.unwrap() {
            order.push(r.0);
            check(r);
        }
        order
    });
    assert_eq!(handed_back, (0..6).collect::<Vec<_>>());
    // Natively every call returns its own errors: nothing is left for errors_async.
    pollster::block_on(gpu.errors_async()).unwrap();
    // Every frame of both streams checked.
    assert_eq!(done, 66);
}
