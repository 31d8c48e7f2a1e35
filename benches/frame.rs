//! The application path: a 1280 x 720 BGRA frame in a texture to the selfie model's
//! 256 x 256 input (resize + normalise, one copy and one dispatch), and a 256 x 256 mask
//! back to a 1280 x 720 R8 texture, each next to a plain buffer copy of the frame's bytes
//! on the same adapter in the same run (GB/s from the bytes each must move).

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use segblocks::ops::frame::{
    frame_from_texture, mask_to_buffer, mask_to_texture, FrameParams, MaskFormat, MaskLayout,
    MaskParams, Normalize,
};

fn texture(
    gpu: &segblocks::Gpu,
    (w, h): (u32, u32),
    format: wgpu::TextureFormat,
    usage: wgpu::TextureUsages,
) -> wgpu::Texture {
    gpu.device().create_texture(&wgpu::TextureDescriptor {
        label: None,
        size: wgpu::Extent3d {
            width: w,
            height: h,
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

fn bench(c: &mut Criterion) {
    let gpu = common::gpu();
    let mut g = common::group(c, "frame");
    let (w, h) = (1280u32, 720u32);
    // A frame's bytes as f32s: the copy moves the same bytes in and out.
    common::bench_copy(&mut g, &gpu, [1, 1, h as usize, w as usize]);

    let frame = texture(
        &gpu,
        (w, h),
        wgpu::TextureFormat::Bgra8UnormSrgb,
        wgpu::TextureUsages::COPY_SRC | wgpu::TextureUsages::COPY_DST,
    );
    let pixels: Vec<u8> = (0..w * h * 4).map(|i| (i * 7 % 251) as u8).collect();
    gpu.queue().write_texture(
        frame.as_image_copy(),
        &pixels,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(4 * w),
            rows_per_image: None,
        },
        frame.size(),
    );
    let params = FrameParams::new(256, 256).normalize(Normalize::IMAGENET);
    // Read the frame (copied once into a buffer, then read), write the input.
    let frame_bytes = 4 * (w * h) as u64;
    g.throughput(Throughput::Bytes(3 * frame_bytes + 4 * 3 * 256 * 256));
    g.bench_function("frame_in_bgra_1280x720_to_256", |b| {
        b.iter(|| {
            let mut rec = gpu.recorder();
            let x = frame_from_texture(&mut rec, &frame, &params).unwrap();
            rec.download(&x).unwrap()
        })
    });

    let mask = gpu.upload(common::input([1, 1, 256, 256]).view()).unwrap();
    let target = texture(
        &gpu,
        (w, h),
        MaskFormat::R8Unorm.texture_format(),
        wgpu::TextureUsages::COPY_DST | wgpu::TextureUsages::TEXTURE_BINDING,
    );
    // Read the mask, write the packed rows, copy them into the texture.
    g.throughput(Throughput::Bytes(4 * 256 * 256 + 3 * (w * h) as u64));
    g.bench_function("mask_out_256_to_r8_1280x720", |b| {
        b.iter(|| {
            let mut rec = gpu.recorder();
            mask_to_texture(&mut rec, &mask, &MaskParams::new(), &target).unwrap();
            rec.submit().unwrap();
            gpu.device()
                .poll(wgpu::PollType::Wait {
                    submission_index: None,
                    timeout: None,
                })
                .unwrap();
        })
    });
    // The same into the application's buffer (no texture copy).
    let layout = MaskLayout::packed(w as usize, h as usize, MaskFormat::R8Unorm);
    let buffer = gpu.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: layout.span() as u64,
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    g.bench_function("mask_out_256_to_r8_buffer_1280x720", |b| {
        b.iter(|| {
            let mut rec = gpu.recorder();
            mask_to_buffer(&mut rec, &mask, &MaskParams::new(), &buffer, 0, &layout).unwrap();
            rec.submit().unwrap();
            gpu.device()
                .poll(wgpu::PollType::Wait {
                    submission_index: None,
                    timeout: None,
                })
                .unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
