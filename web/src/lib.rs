//! segblocks compiled to WebAssembly and run on the WebGPU of its host (a browser, or
//! Deno in `scripts/web_smoke.sh`), with the calls the web allows (the async ones):
//! - every convolution kernel that supports a case, forced in turn, against the CPU
//!   reference (`segblocks::reference`, compiled to WebAssembly too);
//! - frames from RGBA / BGRA textures (sRGB or not, stretched or letterboxed) into the
//!   network's input, against the host path and the reference;
//! - MediaPipe's selfie network on the golden photo against TFLite's mask, on the kernels
//!   of a CPU adapter and on those of a GPU, one frame at a time and three in flight;
//! - every transposed-convolution kernel, the interpolation kernels (the picked one and
//!   the tap kernel) and both global-pool kernels, forced in turn, and the other ops
//!   outside the networks (interpolation in every mode, pooling with indices and
//!   unpooling, adaptive pooling, norms, AdaIN, softmax, shuffles) against the reference;
//! - every other network of the crate (torchvision's segmentation models, U-Net, SegNet,
//!   FCN-8s), with `StateDict::synthetic` weights, on both kernel classes against the
//!   CPU reference at odd sizes and batch 1-2;
//! - the blocking calls refused with `Error::Unsupported` instead of hanging.
//!
//! `run` resolves with a report and rejects with the first failure.

use ndarray::{Array1, Array4};
use segblocks::blocks::{Architecture, Model};
use segblocks::networks::{
    Fcn8s, Fcn8sConfig, LrAsppConfig, LrAsppMobileNetV3, MobileNetV2Config, MobileNetV2Features,
    MobileNetV3Features, MobileNetV3FeaturesConfig, SegNet, SegNetConfig, SegmentationConfig,
    SegmentationModel, SelfieModel, SelfieSegmentation, UNet, UNetConfig,
};
use segblocks::ops::conv::{Conv2d, Conv2dParams, ConvKernel, PaddingMode};
use segblocks::wgpu;
use segblocks::{Activation, DeviceClass, Error, FramesInFlight, Gpu, GpuOptions, StateDict};
use wasm_bindgen::prelude::*;

const MODEL: &[u8] = include_bytes!("../../models/selfie_segmentation/model.safetensors");
const MASK: &[u8] = include_bytes!("../../tests/golden/selfie/mask.safetensors");
const PHOTO: &[u8] = include_bytes!("../../examples/data/astronaut.png");

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = log)]
    fn console_log(s: &str);
}

/// The library's warnings and errors (wgpu's errors among them, on the web) on the
/// console.
struct ConsoleLog;

impl log::Log for ConsoleLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            console_log(&format!("{} {}: {}", r.level(), r.target(), r.args()));
        }
    }
    fn flush(&self) {}
}

static LOGGER: ConsoleLog = ConsoleLog;

/// Runs the checks; resolves with a report, rejects with what failed.
#[wasm_bindgen]
pub async fn run() -> Result<String, JsValue> {
    let _ = log::set_logger(&LOGGER).map(|()| log::set_max_level(log::LevelFilter::Warn));
    smoke().await.map_err(|e| JsValue::from_str(&e))
}

type Check<T> = std::result::Result<T, String>;

fn text(e: Error) -> String {
    e.to_string()
}

async fn smoke() -> Check<String> {
    let mut report = Vec::new();
    match Gpu::new() {
        Err(Error::Unsupported { .. }) => report.push("Gpu::new: Error::Unsupported".into()),
        other => return Err(format!("Gpu::new on the web gave {other:?}")),
    }
    let gpu = Gpu::new_async(GpuOptions::default()).await.map_err(text)?;
    let info = gpu.adapter_info();
    report.push(format!(
        "adapter {:?} on {:?} ({:?})",
        info.name, info.backend, info.device_type
    ));
    report.push(conv_kernels(&gpu).await?);
    report.push(ops(&gpu).await?);
    report.push(frames(&gpu).await?);
    let mut gpus = Vec::new();
    for class in [DeviceClass::Cpu, DeviceClass::Gpu] {
        let options = GpuOptions {
            device_class: Some(class),
            ..GpuOptions::default()
        };
        let gpu = Gpu::new_async(options).await.map_err(text)?;
        report.push(selfie(&gpu).await?);
        gpus.push(gpu);
    }
    report.push(networks(&gpus).await?);
    Ok(report.join("\n"))
}

/// Every network and the blocks no network uses, on each context's kernels, against the
/// reference.
async fn networks(gpus: &[Gpu]) -> Check<String> {
    let sd = StateDict::synthetic();
    let mut names = Vec::new();
    for gpu in gpus {
        let mv3_small = MobileNetV3FeaturesConfig::small()
            .reduced_tail(true)
            .dilated(true);
        check_model(
            gpu,
            "mobilenet_v2(0.5)",
            &MobileNetV2Features::load(
                gpu,
                MobileNetV2Config::torchvision().width_mult(0.5),
                &sd,
                "",
            )
            .map_err(text)?,
            [2, 3, 45, 51],
        )
        .await?;
        check_model(
            gpu,
            "mobilenet_v3_small(reduced, dilated)",
            &MobileNetV3Features::load(gpu, mv3_small, &sd, "").map_err(text)?,
            [1, 3, 57, 49],
        )
        .await?;
        check_model(
            gpu,
            "lraspp_mobilenet_v3_large(3)",
            &LrAsppMobileNetV3::load(gpu, LrAsppConfig::torchvision(3), &sd, "").map_err(text)?,
            [2, 3, 67, 45],
        )
        .await?;
        check_model(
            gpu,
            "deeplabv3_mobilenet_v3_large(4)",
            &SegmentationModel::load(
                gpu,
                SegmentationConfig::deeplabv3_mobilenet_v3_large(4),
                &sd,
                "",
            )
            .map_err(text)?,
            [1, 3, 41, 37],
        )
        .await?;
        check_model(
            gpu,
            "fcn_resnet50(2)",
            &SegmentationModel::load(gpu, SegmentationConfig::fcn_resnet50(2), &sd, "")
                .map_err(text)?,
            [1, 3, 35, 33],
        )
        .await?;
        check_model(
            gpu,
            "deeplabv3_resnet50(3)",
            &SegmentationModel::load(gpu, SegmentationConfig::deeplabv3_resnet50(3), &sd, "")
                .map_err(text)?,
            [2, 3, 33, 30],
        )
        .await?;
        check_model(
            gpu,
            "unet",
            &UNet::load(gpu, UNetConfig::new(3, 2).base_channels(8), &sd, "").map_err(text)?,
            [2, 3, 45, 67],
        )
        .await?;
        check_model(
            gpu,
            "unet(bilinear)",
            &UNet::load(
                gpu,
                UNetConfig::new(3, 3).base_channels(8).bilinear(true),
                &sd,
                "",
            )
            .map_err(text)?,
            [1, 3, 37, 50],
        )
        .await?;
        let segnet =
            SegNetConfig::vgg16_bn(3, 4).stages(vec![16, 32, 64, 64, 64], vec![2, 2, 3, 3, 3]);
        check_model(
            gpu,
            "segnet",
            &SegNet::load(gpu, segnet, &sd, "").map_err(text)?,
            [2, 3, 64, 96],
        )
        .await?;
        check_model(
            gpu,
            "fcn8s",
            &Fcn8s::load(
                gpu,
                Fcn8sConfig::new(3).widths([8, 16, 32, 64, 64], 96),
                &sd,
                "",
            )
            .map_err(text)?,
            [1, 3, 39, 45],
        )
        .await?;
        names.push(if gpu.caps().cpu { "CPU" } else { "GPU" });
    }
    Ok(format!(
        "10 networks at odd sizes (batch 1-2) match the reference on {}-class kernels",
        names.join("- and ")
    ))
}

/// `net` on `gpu` against its CPU reference, within 1e-4 of the reference's largest
/// output (at least 1).
async fn check_model<A: Architecture>(
    gpu: &Gpu,
    name: &str,
    net: &Model<A>,
    shape: [usize; 4],
) -> Check<()> {
    let x = input(shape, 0);
    let want = net.reference(x.view()).map_err(text)?;
    let xt = gpu.upload(x.view()).map_err(text)?;
    let mut rec = gpu.recorder();
    let y = net.forward(&mut rec, &xt).map_err(text)?;
    let got = rec.download_async(&y).await.map_err(text)?;
    let class = if gpu.caps().cpu { "CPU" } else { "GPU" };
    close(
        &format!("{name} on {shape:?}, {class}-class kernels"),
        &got,
        &want,
        1e-4,
    )
}

/// Every kernel of each case against the reference, within 1e-5 of its largest output
/// (at least 1).
async fn conv_kernels(gpu: &Gpu) -> Check<String> {
    let cases = [
        (
            Conv2dParams::new(3, 16, 3)
                .stride(2)
                .padding(1)
                .activation(Activation::HardSwish),
            [2, 3, 33, 30],
        ),
        (
            Conv2dParams::new(16, 24, 1).activation(Activation::Relu),
            [1, 16, 19, 21],
        ),
        (
            Conv2dParams::new(24, 24, 3).groups(24).padding(1),
            [2, 24, 32, 32],
        ),
        (
            Conv2dParams::new(24, 24, 5).groups(24).stride(2).padding(2),
            [1, 24, 31, 29],
        ),
        (
            Conv2dParams::new(8, 12, 3)
                .dilation(2)
                .padding(2)
                .padding_mode(PaddingMode::Reflect),
            [1, 8, 17, 23],
        ),
        (
            Conv2dParams::new(8, 16, 3).groups(4).stride(2),
            [3, 8, 15, 16],
        ),
    ];
    let mut seed = 1u32;
    let mut random = move || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    };
    let mut runs = 0;
    for (params, shape) in cases {
        let x = Array4::from_shape_fn(shape, |_| random());
        let w = Array4::from_shape_fn(params.weight_shape(), |_| random());
        let b = Array1::from_shape_fn(params.out_channels, |_| random());
        let conv = Conv2d::new(gpu, params, w.view(), Some(b.view())).map_err(text)?;
        let want = segblocks::reference::conv::conv2d(&params, x.view(), w.view(), Some(b.view()))
            .map_err(text)?;
        let xt = gpu.upload(x.view()).map_err(text)?;
        for kernel in ConvKernel::candidates(&params, shape) {
            let mut rec = gpu.recorder();
            let y = conv.forward_with(&mut rec, &xt, kernel).map_err(text)?;
            let got = rec.download_async(&y).await.map_err(text)?;
            close(
                &format!("{params:?} on {shape:?}, {kernel:?}"),
                &got,
                &want,
                1e-5,
            )?;
            runs += 1;
        }
    }
    Ok(format!(
        "convolutions: {runs} kernel runs on 6 cases match the reference"
    ))
}

/// A deterministic input of `shape` in [-0.5, 0.5), with ties (for the max pools).
fn input(shape: [usize; 4], salt: usize) -> Array4<f32> {
    Array4::from_shape_fn(shape, |(n, c, y, x)| {
        ((n * 7 + c * 13 + y * 5 + x * 3 + salt) % 17) as f32 / 17.0 - 0.5
    })
}

/// `got` within `tolerance` times `want`'s largest magnitude (at least 1) of `want`, else
/// an error naming `name`.
fn close(name: &str, got: &Array4<f32>, want: &Array4<f32>, tolerance: f32) -> Check<()> {
    if got.shape() != want.shape() {
        return Err(format!(
            "{name}: shape {:?}, want {:?}",
            got.shape(),
            want.shape()
        ));
    }
    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    if worst.is_nan() || worst > tolerance * scale {
        return Err(format!("{name}: off the reference by {worst}"));
    }
    Ok(())
}

/// The op families the networks leave out, against the reference.
async fn ops(gpu: &Gpu) -> Check<String> {
    use segblocks::ops::{channel, norm, pool, upsample};
    use segblocks::reference as cpu;
    let x = input([2, 6, 23, 17], 0);
    let xt = gpu.upload(x.view()).map_err(text)?;
    let mut checked = 0;
    let modes = [
        upsample::UpsampleParams::nearest().scale_factor(2.0),
        upsample::UpsampleParams::nearest_exact().size((31, 40)),
        upsample::UpsampleParams::bilinear(false).scale_factor(2.0),
        upsample::UpsampleParams::bilinear(true).size((9, 50)),
        upsample::UpsampleParams::bicubic(false).size((40, 29)),
        upsample::UpsampleParams::bilinear(false)
            .antialias(true)
            .size((11, 7)),
        upsample::UpsampleParams::area().size((7, 5)),
    ];
    // On a width of 16 the vector kernels apply too (integer factors, bilinear by 2):
    // each mode runs the kernel the library picks and the tap kernel.
    let x16 = input([1, 4, 9, 16], 3);
    let x16t = gpu.upload(x16.view()).map_err(text)?;
    for params in [
        upsample::UpsampleParams::nearest().scale_factor(2.0),
        upsample::UpsampleParams::bilinear(false).scale_factor(2.0),
        upsample::UpsampleParams::bed_of_nails(2),
    ] {
        let want = cpu::upsample::upsample(&params, x16.view()).map_err(text)?;
        let picked = upsample::select_kernel(&params, [1, 4, 9, 16]);
        for kernel in [picked, upsample::UpsampleKernel::Taps] {
            if !kernel.supports(&params, [1, 4, 9, 16]) {
                continue;
            }
            let mut rec = gpu.recorder();
            let y = upsample::upsample_with(&mut rec, &params, &x16t, kernel).map_err(text)?;
            let got = rec.download_async(&y).await.map_err(text)?;
            close(&format!("{params:?}, {kernel:?}"), &got, &want, 1e-5)?;
            checked += 1;
        }
    }
    for params in modes {
        let mut rec = gpu.recorder();
        let y = upsample::upsample(&mut rec, &params, &xt).map_err(text)?;
        let got = rec.download_async(&y).await.map_err(text)?;
        close(
            &format!("{params:?}"),
            &got,
            &cpu::upsample::upsample(&params, x.view()).map_err(text)?,
            1e-5,
        )?;
        checked += 1;
    }
    // Max pooling with indices (ceil mode, padding, dilation), and unpooling with them.
    let mp = pool::MaxPool2dParams::new(3)
        .stride(2)
        .padding(1)
        .dilation(1)
        .ceil_mode(true);
    let mut rec = gpu.recorder();
    let (values, indices) = pool::max_pool2d(&mut rec, &mp, &xt).map_err(text)?;
    let up = pool::MaxUnpool2dParams::new(3).stride(2).padding(1);
    let unpooled = pool::max_unpool2d(&mut rec, &up, &values, &indices).map_err(text)?;
    rec.submit().map_err(text)?;
    let (want_v, want_i) = cpu::pool::max_pool2d(&mp, x.view()).map_err(text)?;
    close(
        "max_pool2d",
        &gpu.recorder().download_async(&values).await.map_err(text)?,
        &want_v,
        1e-5,
    )?;
    if gpu
        .recorder()
        .download_indices_async(&indices)
        .await
        .map_err(text)?
        != want_i
    {
        return Err("max_pool2d: indices differ".into());
    }
    let want_u = cpu::pool::max_unpool2d(&up, want_v.view(), want_i.view()).map_err(text)?;
    close(
        "max_unpool2d",
        &gpu.recorder()
            .download_async(&unpooled)
            .await
            .map_err(text)?,
        &want_u,
        1e-5,
    )?;
    let ap = pool::AvgPool2dParams::new(3)
        .stride(2)
        .padding(1)
        .ceil_mode(true)
        .count_include_pad(false);
    let mut rec = gpu.recorder();
    let y = pool::avg_pool2d(&mut rec, &ap, &xt).map_err(text)?;
    close(
        "avg_pool2d",
        &rec.download_async(&y).await.map_err(text)?,
        &cpu::pool::avg_pool2d(&ap, x.view()).map_err(text)?,
        1e-5,
    )?;
    let aap = pool::AdaptiveAvgPool2dParams::new((5, 3));
    let mut rec = gpu.recorder();
    let y = pool::adaptive_avg_pool2d(&mut rec, &aap, &xt).map_err(text)?;
    close(
        "adaptive_avg_pool2d",
        &rec.download_async(&y).await.map_err(text)?,
        &cpu::pool::adaptive_avg_pool2d(&aap, x.view()).map_err(text)?,
        1e-5,
    )?;
    let amp = pool::AdaptiveMaxPool2dParams::new((4, 6));
    let mut rec = gpu.recorder();
    let (y, _) = pool::adaptive_max_pool2d(&mut rec, &amp, &xt).map_err(text)?;
    close(
        "adaptive_max_pool2d",
        &rec.download_async(&y).await.map_err(text)?,
        &cpu::pool::adaptive_max_pool2d(&amp, x.view())
            .map_err(text)?
            .0,
        1e-5,
    )?;
    for (kind, kernel) in [pool::GlobalPool::Avg, pool::GlobalPool::Max]
        .into_iter()
        .flat_map(|kind| pool::GlobalPoolKernel::ALL.map(|k| (kind, k)))
        .filter(|(_, k)| k.supports([2, 6, 23, 17]))
    {
        checked += 1;
        let mut rec = gpu.recorder();
        let y = pool::global_pool_with(&mut rec, kind, &xt, kernel).map_err(text)?;
        close(
            "global_pool",
            &rec.download_async(&y).await.map_err(text)?,
            &cpu::pool::global_pool(kind, x.view()).map_err(text)?,
            1e-5,
        )?;
    }
    checked += 4;
    // Transposed convolutions, every kernel that supports each case.
    use segblocks::ops::conv_transpose::{
        ConvTranspose2d, ConvTranspose2dParams, ConvTransposeKernel,
    };
    for (params, shape) in [
        (
            ConvTranspose2dParams::new(6, 4, 4).stride(2).padding(1),
            [2, 6, 23, 17],
        ),
        (
            ConvTranspose2dParams::new(6, 4, 3)
                .stride(2)
                .padding(1)
                .output_padding(1)
                .groups(2),
            [1, 6, 9, 16],
        ),
        (
            ConvTranspose2dParams::new(4, 3, 3)
                .stride((2, 3))
                .dilation(2)
                .activation(Activation::Relu),
            [1, 4, 7, 8],
        ),
    ] {
        let x = input(shape, 1);
        let w = input(params.weight_shape(), 4);
        let b = Array1::from_shape_fn(params.out_channels, |i| i as f32 * 0.1 - 0.2);
        let layer = ConvTranspose2d::new(gpu, params, w.view(), Some(b.view())).map_err(text)?;
        let want =
            cpu::conv_transpose::conv_transpose2d(&params, x.view(), w.view(), Some(b.view()))
                .map_err(text)?;
        let xt = gpu.upload(x.view()).map_err(text)?;
        for kernel in ConvTransposeKernel::ALL
            .into_iter()
            .filter(|k| k.supports(&params, shape))
        {
            let mut rec = gpu.recorder();
            let y = layer.forward_with(&mut rec, &xt, kernel).map_err(text)?;
            let got = rec.download_async(&y).await.map_err(text)?;
            close(
                &format!("{params:?} on {shape:?}, {kernel:?}"),
                &got,
                &want,
                1e-5,
            )?;
            checked += 1;
        }
    }
    // Norms with synthetic affines, AdaIN, softmax and the shuffles.
    let sd = StateDict::synthetic();
    let gn = norm::GroupNormParams::new(3, 6);
    let layer = norm::GroupNorm::load(gpu, gn, &sd, "gn").map_err(text)?;
    let (w, b) = (
        sd.get1("gn.weight", 6).map_err(text)?,
        sd.get1("gn.bias", 6).map_err(text)?,
    );
    let mut rec = gpu.recorder();
    let y = layer.forward(&mut rec, &xt).map_err(text)?;
    close(
        "group_norm",
        &rec.download_async(&y).await.map_err(text)?,
        &cpu::norm::group_norm(&gn, x.view(), w.view(), b.view()).map_err(text)?,
        1e-5,
    )?;
    let inorm = norm::InstanceNorm2dParams::new(6).affine(true);
    let layer = norm::InstanceNorm2d::load(gpu, inorm, &sd, "gn").map_err(text)?;
    let mut rec = gpu.recorder();
    let y = layer.forward(&mut rec, &xt).map_err(text)?;
    close(
        "instance_norm",
        &rec.download_async(&y).await.map_err(text)?,
        &cpu::norm::instance_norm(&inorm, x.view(), w.view(), b.view()).map_err(text)?,
        1e-5,
    )?;
    let style = input([2, 6, 9, 11], 5);
    let st = gpu.upload(style.view()).map_err(text)?;
    let mut rec = gpu.recorder();
    let y = norm::adain(&mut rec, &xt, &st, 1e-5).map_err(text)?;
    close(
        "adain",
        &rec.download_async(&y).await.map_err(text)?,
        &cpu::norm::adain(x.view(), style.view(), 1e-5).map_err(text)?,
        1e-5,
    )?;
    let mut rec = gpu.recorder();
    let y = channel::softmax(&mut rec, &xt).map_err(text)?;
    close(
        "softmax",
        &rec.download_async(&y).await.map_err(text)?,
        &cpu::channel::softmax(x.view(), false),
        1e-5,
    )?;
    let mut rec = gpu.recorder();
    let y = channel::channel_shuffle(&mut rec, &xt, 3).map_err(text)?;
    close(
        "channel_shuffle",
        &rec.download_async(&y).await.map_err(text)?,
        &cpu::channel::channel_shuffle(x.view(), 3).map_err(text)?,
        1e-5,
    )?;
    let ps = input([1, 8, 5, 7], 2);
    let pt = gpu.upload(ps.view()).map_err(text)?;
    let mut rec = gpu.recorder();
    let y = upsample::pixel_shuffle(&mut rec, &pt, 2).map_err(text)?;
    close(
        "pixel_shuffle",
        &rec.download_async(&y).await.map_err(text)?,
        &cpu::upsample::pixel_shuffle(ps.view(), 2).map_err(text)?,
        1e-5,
    )?;
    checked += 6;
    Ok(format!("ops: {checked} op calls match the reference"))
}

/// Frames from the application's textures (RGBA / BGRA, sRGB or not; stretched and
/// letterboxed, normalised) into the network's input, against the same frame's host bytes
/// and the reference.
async fn frames(gpu: &Gpu) -> Check<String> {
    use segblocks::ops::frame::{
        frame_from_host, frame_from_texture, Fit, FrameLayout, FrameParams, Normalize, PixelFormat,
    };
    let (w, h) = (37usize, 23usize);
    let rgba: Vec<u8> = (0..w * h * 4)
        .map(|i| ((i * 37 + i / 7) % 256) as u8)
        .collect();
    let layout = FrameLayout::packed(w, h, PixelFormat::Rgba8);
    let mut checked = 0;
    for params in [
        FrameParams::new(16, 24).normalize(Normalize::SYMMETRIC),
        FrameParams::new(30, 20).fit(Fit::Letterbox { fill: 0.5 }),
    ] {
        let want =
            segblocks::reference::frame::frame_to_input(&rgba, &layout, &params).map_err(text)?;
        let mut rec = gpu.recorder();
        let x = frame_from_host(&mut rec, &rgba, &layout, &params).map_err(text)?;
        let host = rec.download_async(&x).await.map_err(text)?;
        close(&format!("frame_from_host {params:?}"), &host, &want, 1e-5)?;
        for format in [
            wgpu::TextureFormat::Rgba8Unorm,
            wgpu::TextureFormat::Rgba8UnormSrgb,
            wgpu::TextureFormat::Bgra8Unorm,
            wgpu::TextureFormat::Bgra8UnormSrgb,
        ] {
            let bgra = matches!(
                format,
                wgpu::TextureFormat::Bgra8Unorm | wgpu::TextureFormat::Bgra8UnormSrgb
            );
            let bytes: Vec<u8> = rgba
                .chunks(4)
                .flat_map(|p| {
                    if bgra {
                        [p[2], p[1], p[0], p[3]]
                    } else {
                        [p[0], p[1], p[2], p[3]]
                    }
                })
                .collect();
            let texture = gpu.device().create_texture(&wgpu::TextureDescriptor {
                label: Some("frame"),
                size: wgpu::Extent3d {
                    width: w as u32,
                    height: h as u32,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format,
                usage: wgpu::TextureUsages::COPY_SRC | wgpu::TextureUsages::COPY_DST,
                view_formats: &[],
            });
            gpu.queue().write_texture(
                texture.as_image_copy(),
                &bytes,
                wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(4 * w as u32),
                    rows_per_image: None,
                },
                texture.size(),
            );
            let mut rec = gpu.recorder();
            let x = frame_from_texture(&mut rec, &texture, &params).map_err(text)?;
            let got = rec.download_async(&x).await.map_err(text)?;
            if got != host {
                return Err(format!(
                    "frame_from_texture {format:?} {params:?} differs from the host frame"
                ));
            }
            checked += 1;
        }
    }
    // wgpu's errors on the web come back from the next async readback: a frame from a
    // texture the application destroyed fails at the submission.
    let texture = gpu.device().create_texture(&wgpu::TextureDescriptor {
        label: Some("destroyed frame"),
        size: wgpu::Extent3d {
            width: 8,
            height: 8,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba8Unorm,
        usage: wgpu::TextureUsages::COPY_SRC | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    });
    texture.destroy();
    let mut rec = gpu.recorder();
    let x = frame_from_texture(&mut rec, &texture, &FrameParams::new(4, 4)).map_err(text)?;
    match rec.download_async(&x).await {
        Err(Error::Gpu(_)) => {}
        other => return Err(format!("a destroyed frame texture gave {other:?}")),
    }
    // Nothing left over: the next readback is clean.
    let mut rec = gpu.recorder();
    let x = frame_from_host(&mut rec, &rgba, &layout, &FrameParams::new(4, 4)).map_err(text)?;
    rec.download_async(&x).await.map_err(text)?;
    gpu.errors_async().await.map_err(text)?;
    Ok(format!(
        "frames: {checked} texture frames equal the host frame, which matches the reference; \
         a destroyed texture gives Error::Gpu at the next readback"
    ))
}

/// The selfie mask on `gpu` against TFLite's (mean absolute difference within 1e-3), one
/// frame at a time and with frames in flight; then a blocking download, which must be
/// refused, and so must profiling.
async fn selfie(gpu: &Gpu) -> Check<String> {
    let weights = StateDict::from_safetensors(MODEL).map_err(text)?;
    let net = SelfieSegmentation::load(gpu, SelfieModel::Square, &weights, "").map_err(text)?;
    let x = gpu.upload(astronaut_256()?.view()).map_err(text)?;
    let mut rec = gpu.recorder();
    let y = net.forward(&mut rec, &x).map_err(text)?;
    let dispatches = rec.dispatch_count();
    let mask = rec.download_async(&y).await.map_err(text)?;
    let golden = StateDict::from_safetensors(MASK)
        .and_then(|sd| sd.get4("mask", [1, 1, 256, 256]))
        .map_err(text)?;
    let mean = mask
        .iter()
        .zip(golden.iter())
        .map(|(a, b)| f64::from((a - b).abs()))
        .sum::<f64>()
        / mask.len() as f64;
    let class = if gpu.caps().cpu { "CPU" } else { "GPU" };
    if mean.is_nan() || mean >= 1e-3 {
        return Err(format!(
            "{class}-class kernels: mask off TFLite's by {mean} on average"
        ));
    }
    let mut in_flight = FramesInFlight::new(2);
    let mut frames = Vec::new();
    for i in 0..3 {
        let mut rec = gpu.recorder();
        let y = net.forward(&mut rec, &x).map_err(text)?;
        frames.extend(in_flight.push_async(i, rec, &[&y]).await.map_err(text)?);
    }
    while let Some(frame) = in_flight.pop_async().await.map_err(text)? {
        frames.push(frame);
    }
    for (i, outputs) in &frames {
        if outputs[0] != mask {
            return Err(format!(
                "{class}-class kernels: frame {i} in flight differs"
            ));
        }
    }
    match gpu.recorder().download(&y) {
        Err(Error::Unsupported { .. }) => {}
        other => return Err(format!("a blocking download on the web gave {other:?}")),
    }
    match gpu.recorder().enable_profiling() {
        Err(Error::Unsupported { .. }) => {}
        other => return Err(format!("profiling on the web gave {other:?}")),
    }
    Ok(format!(
        "selfie 256 x 256 on {class}-class kernels: {dispatches} dispatches, mean abs \
         difference to TFLite {mean:.1e}; {} frames in flight identical; blocking download \
         and profiling refused",
        frames.len()
    ))
}

/// The golden input of `tests/selfie.rs`: the 512 x 512 photo reduced to 256 x 256 by
/// 2 x 2 box averaging of the 8-bit pixels, scaled to [0, 1].
fn astronaut_256() -> Check<Array4<f32>> {
    let img = image::load_from_memory(PHOTO)
        .map_err(|e| e.to_string())?
        .to_rgb8();
    Ok(Array4::from_shape_fn([1, 3, 256, 256], |(_, c, y, x)| {
        let sum: u32 = [(0, 0), (0, 1), (1, 0), (1, 1)]
            .iter()
            .map(|&(dy, dx)| u32::from(img.get_pixel(2 * x as u32 + dx, 2 * y as u32 + dy)[c]))
            .sum();
        sum as f32 / 1020.0
    }))
}
