//! segblocks compiled to WebAssembly and run on the WebGPU of its host (a browser, or
//! Deno in `scripts/web_smoke.sh`), with the calls the web allows (the async ones):
//! - every compute shader of the crate (f32, f16 where the adapter has it, parameters in a
//!   uniform or a storage buffer) compiled into a pipeline by the WebGPU's own compiler;
//! - every convolution kernel that supports a case, forced in turn, against the CPU
//!   reference (`segblocks::reference`, compiled to WebAssembly too);
//! - frames from RGBA / BGRA textures (sRGB or not, stretched or letterboxed) into the
//!   network's input, against the host path and the reference;
//! - MediaPipe's selfie network on the golden photo against TFLite's mask, on the kernels
//!   of a CPU adapter and on those of a GPU (at f32, and at f16 where the adapter has
//!   it), one frame at a time and three in flight;
//! - every transposed-convolution kernel, the interpolation kernels (the picked one and
//!   the tap kernel) and both global-pool kernels, forced in turn, and the other ops
//!   outside the networks (interpolation in every mode, pooling with indices and
//!   unpooling, adaptive pooling, norms, AdaIN, softmax, shuffles) against the reference;
//! - every other network of the crate (torchvision's segmentation models, U-Net, SegNet,
//!   FCN-8s), with `StateDict::synthetic` weights, on both kernel classes against the
//!   CPU reference at odd sizes and batch 1-2;
//! - the blocking calls refused with `Error::Unsupported` instead of hanging.
//!
//! `run` resolves with a report and rejects with the first failure. `validate` runs the
//! same calls on a WebGPU that checks every shader and command without running them
//! (Dawn's null backend, Chrome's WebGPU, in `scripts/web_smoke.sh`): every shape and
//! error is checked there, no value.

use ndarray::{Array1, Array4};
use segblocks::blocks::{Architecture, Model};
use segblocks::networks::{
    Fcn8sConfig, LrAsppConfig, MobileNetV2Config, MobileNetV3FeaturesConfig, SegNetConfig,
    SegmentationConfig, SelfieModel, SelfieSegmentation, UNetConfig,
};
use segblocks::ops::conv::{Conv2d, Conv2dParams, ConvKernel, PaddingMode};
use segblocks::wgpu;
use segblocks::{
    Activation, DeviceClass, Error, FramesInFlight, Gpu, GpuOptions, Precision, Recorder,
    StateDict, Tensor,
};
use std::sync::atomic::{AtomicBool, Ordering};
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

/// Whether readbacks are compared with the reference (not where nothing runs).
static COMPARE_VALUES: AtomicBool = AtomicBool::new(true);

fn compare_values() -> bool {
    COMPARE_VALUES.load(Ordering::Relaxed)
}

/// Whether a readback equals what it should exactly: its shape always, its values where
/// they are compared.
fn equal<T: PartialEq, D: ndarray::Dimension>(
    got: &ndarray::Array<T, D>,
    want: &ndarray::Array<T, D>,
) -> bool {
    got.shape() == want.shape() && (!compare_values() || got == want)
}

/// What a passed check says: its values matched, or (validation only) it was accepted.
fn matched(what: &'static str) -> &'static str {
    if compare_values() {
        what
    } else {
        "pass validation"
    }
}

/// Runs the checks; resolves with a report, rejects with what failed.
#[wasm_bindgen]
pub async fn run() -> Result<String, JsValue> {
    COMPARE_VALUES.store(true, Ordering::Relaxed);
    smoke_report().await
}

/// Runs the same calls on a WebGPU that validates shaders and commands without running
/// them: every shape and every error is checked, no value.
#[wasm_bindgen]
pub async fn validate() -> Result<String, JsValue> {
    COMPARE_VALUES.store(false, Ordering::Relaxed);
    smoke_report().await
}

async fn smoke_report() -> Result<String, JsValue> {
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
    // Half precision where the adapter has it (Chrome on most GPUs).
    let f16 = match Gpu::new_async(GpuOptions {
        precision: Precision::F16,
        ..GpuOptions::default()
    })
    .await
    {
        Ok(half) => Some(half),
        Err(Error::DeviceUnsupported {
            name: "SHADER_F16", ..
        }) => None,
        Err(e) => return Err(text(e)),
    };
    report.push(format!(
        "adapter {:?} on {:?} ({:?}), {:?} reductions, {}; {}",
        info.name,
        info.backend,
        info.device_type,
        gpu.caps().reduction(),
        if f16.is_some() {
            "shader-f16"
        } else {
            "no shader-f16"
        },
        if compare_values() {
            "values compared with the reference"
        } else {
            "validation only: shapes and errors checked, values not compared"
        }
    ));
    report.push(every_shader(&gpu, f16.as_ref()).await?);
    report.push(conv_kernels(&gpu).await?);
    report.push(ops(&gpu).await?);
    report.push(frames(&gpu).await?);
    let mut gpus = Vec::new();
    // The GPU class twice: as it chooses, and with every encoder block fused.
    for (class, fuse_expanding_blocks) in [
        (DeviceClass::Cpu, false),
        (DeviceClass::Gpu, false),
        (DeviceClass::Gpu, true),
    ] {
        let options = GpuOptions {
            device_class: Some(class),
            fuse_expanding_blocks,
            ..GpuOptions::default()
        };
        let gpu = Gpu::new_async(options.clone()).await.map_err(text)?;
        report.push(selfie(&gpu).await?);
        // The networks below on each class's own choice (the native tests run them fused).
        if !fuse_expanding_blocks {
            gpus.push(gpu);
        }
        if f16.is_some() {
            let options = GpuOptions {
                precision: Precision::F16,
                ..options
            };
            let gpu = Gpu::new_async(options).await.map_err(text)?;
            report.push(selfie(&gpu).await?);
        }
    }
    report.push(networks(&gpus).await?);
    Ok(report.join("\n"))
}

/// Every compute shader of the crate through the WebGPU's own compiler (Tint on Chrome),
/// with its default constants, the parameters in a uniform and (for the kernels that may
/// take them there) in a storage buffer, at f32 and (with `half`, a context at f16) f16,
/// with f16 arithmetic too where a kernel has that form:
/// the shader module and a pipeline with the default override values. Catches what
/// naga lets through and a browser refuses (its uniformity analysis, constant
/// expressions that overflow), whether or not the other checks run the kernel.
async fn every_shader(gpu: &Gpu, half: Option<&Gpu>) -> Check<String> {
    use segblocks::shaders::{self, ParamsBinding};
    let mut count = 0;
    for name in shaders::names() {
        let storage = shaders::INLINING_SENSITIVE
            .iter()
            .any(|(file, _, _)| *file == name);
        // (context, binding, F16, HALF_MATH)
        let mut forms = vec![(gpu, ParamsBinding::Uniform, 0, 0)];
        if storage {
            forms.push((gpu, ParamsBinding::Storage, 0, 0));
        }
        if let Some(half) = half {
            forms.push((half, ParamsBinding::Uniform, 1, 0));
            if shaders::has_half_math_form(name) {
                forms.push((half, ParamsBinding::Uniform, 1, 1));
            }
        }
        for (gpu, binding, f16, math) in forms {
            let mut specialize = vec![(shaders::PRECISION, f16)];
            if math == 1 {
                specialize.push((shaders::HALF_MATH, 1));
            }
            let source = shaders::source_with(name, &specialize, binding)
                .ok_or_else(|| format!("{name}: no source"))?;
            let device = gpu.device();
            let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
            let _ = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions::default(),
                cache: None,
            });
            if let Some(e) = scope.pop().await {
                return Err(format!(
                    "{name} ({binding:?}, F16 = {f16}, HALF_MATH = {math}): {e}"
                ));
            }
            count += 1;
        }
    }
    Ok(format!(
        "every shader: {count} forms compile into pipelines on this WebGPU"
    ))
}

/// Every network, on each context's kernels, against the reference.
async fn networks(gpus: &[Gpu]) -> Check<String> {
    let mut names = Vec::new();
    for gpu in gpus {
        let mv2 = MobileNetV2Config::torchvision().width_mult(0.5);
        check_model(gpu, "mobilenet_v2(0.5)", mv2, [2, 3, 45, 51]).await?;
        let mv3 = MobileNetV3FeaturesConfig::small()
            .reduced_tail(true)
            .dilated(true);
        check_model(
            gpu,
            "mobilenet_v3_small(reduced, dilated)",
            mv3,
            [1, 3, 57, 49],
        )
        .await?;
        let lraspp = LrAsppConfig::torchvision(3);
        check_model(gpu, "lraspp_mobilenet_v3_large(3)", lraspp, [2, 3, 67, 45]).await?;
        for (name, config, shape) in [
            (
                "deeplabv3_mobilenet_v3_large(4)",
                SegmentationConfig::deeplabv3_mobilenet_v3_large(4),
                [1, 3, 41, 37],
            ),
            (
                "fcn_resnet50(2)",
                SegmentationConfig::fcn_resnet50(2),
                [1, 3, 35, 33],
            ),
            (
                "deeplabv3_resnet50(3)",
                SegmentationConfig::deeplabv3_resnet50(3),
                [2, 3, 33, 30],
            ),
        ] {
            check_model(gpu, name, config, shape).await?;
        }
        let unet = UNetConfig::new(3, 2).base_channels(8);
        check_model(gpu, "unet", unet, [2, 3, 45, 67]).await?;
        let unet = UNetConfig::new(3, 3).base_channels(8).bilinear(true);
        check_model(gpu, "unet(bilinear)", unet, [1, 3, 37, 50]).await?;
        let segnet =
            SegNetConfig::vgg16_bn(3, 4).stages(vec![16, 32, 64, 64, 64], vec![2, 2, 3, 3, 3]);
        check_model(gpu, "segnet", segnet, [2, 3, 64, 96]).await?;
        let fcn8s = Fcn8sConfig::new(3).widths([8, 16, 32, 64, 64], 96);
        check_model(gpu, "fcn8s", fcn8s, [1, 3, 39, 45]).await?;
        names.push(if gpu.caps().cpu { "CPU" } else { "GPU" });
    }
    Ok(format!(
        "10 networks at odd sizes (batch 1-2) {} on {}-class kernels",
        matched("match the reference"),
        names.join("- and ")
    ))
}

/// The network of `config` with `StateDict::synthetic` weights on `gpu` against its CPU
/// reference, within 1e-4 of the reference's largest output (at least 1).
async fn check_model<A: Architecture>(
    gpu: &Gpu,
    name: &str,
    config: A,
    shape: [usize; 4],
) -> Check<()> {
    let net = Model::load(gpu, config, &StateDict::synthetic(), "").map_err(text)?;
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
    let mut checks = OpChecks::new(gpu);
    for (params, shape) in cases {
        let x = Array4::from_shape_fn(shape, |_| random());
        let w = Array4::from_shape_fn(params.weight_shape(), |_| random());
        let b = Array1::from_shape_fn(params.out_channels, |_| random());
        let conv = Conv2d::new(gpu, params, w.view(), Some(b.view())).map_err(text)?;
        let want = segblocks::reference::conv::conv2d(&params, x.view(), w.view(), Some(b.view()));
        let xt = gpu.upload(x.view()).map_err(text)?;
        for kernel in ConvKernel::candidates(&params, shape) {
            let name = format!("{params:?} on {shape:?}, {kernel:?}");
            let record = |rec: &mut Recorder<'_>| conv.forward_with(rec, &xt, kernel);
            checks.check(&name, record, &want).await?;
        }
    }
    Ok(format!(
        "convolutions: {} kernel runs on 6 cases {}",
        checks.count,
        matched("match the reference")
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
    if !compare_values() {
        return Ok(());
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
    use segblocks::ops::conv_transpose::{
        ConvTranspose2d, ConvTranspose2dParams, ConvTransposeKernel,
    };
    use segblocks::ops::{channel, norm, pool, upsample};
    use segblocks::reference as cpu;
    let x = input([2, 6, 23, 17], 0);
    let xt = gpu.upload(x.view()).map_err(text)?;
    let mut checks = OpChecks::new(gpu);
    // On a width of 16 the vector kernels apply too (integer factors, bilinear by 2,
    // bilinear strips): each mode runs the kernel the library picks and the tap kernel.
    let x16 = input([1, 4, 9, 16], 3);
    let x16t = gpu.upload(x16.view()).map_err(text)?;
    for params in [
        upsample::UpsampleParams::nearest().scale_factor(2.0),
        upsample::UpsampleParams::bilinear(false).scale_factor(2.0),
        upsample::UpsampleParams::bed_of_nails(2),
        upsample::UpsampleParams::bilinear(true).size((20, 40)),
    ] {
        let want = cpu::upsample::upsample(&params, x16.view());
        let picked = upsample::select_kernel(&params, [1, 4, 9, 16]);
        for kernel in [picked, upsample::UpsampleKernel::Taps] {
            if kernel.supports(&params, [1, 4, 9, 16]) {
                let record =
                    |rec: &mut Recorder<'_>| upsample::upsample_with(rec, &params, &x16t, kernel);
                checks
                    .check(&format!("{params:?}, {kernel:?}"), record, &want)
                    .await?;
            }
        }
    }
    for params in [
        upsample::UpsampleParams::nearest().scale_factor(2.0),
        upsample::UpsampleParams::nearest_exact().size((31, 40)),
        upsample::UpsampleParams::bilinear(false).scale_factor(2.0),
        upsample::UpsampleParams::bilinear(true).size((9, 50)),
        upsample::UpsampleParams::bicubic(false).size((40, 29)),
        upsample::UpsampleParams::bilinear(false)
            .antialias(true)
            .size((11, 7)),
        upsample::UpsampleParams::area().size((7, 5)),
    ] {
        let want = cpu::upsample::upsample(&params, x.view());
        let record = |rec: &mut Recorder<'_>| upsample::upsample(rec, &params, &xt);
        checks.check(&format!("{params:?}"), record, &want).await?;
    }
    // Max pooling with indices (ceil mode, padding, dilation), and unpooling with them.
    let mp = pool::MaxPool2dParams::new(3)
        .stride(2)
        .padding(1)
        .dilation(1)
        .ceil_mode(true);
    let up = pool::MaxUnpool2dParams::new(3).stride(2).padding(1);
    let (want_v, want_i) = cpu::pool::max_pool2d(&mp, x.view()).map_err(text)?;
    let want_u = cpu::pool::max_unpool2d(&up, want_v.view(), want_i.view());
    let mut rec = gpu.recorder();
    let (values, indices) = pool::max_pool2d(&mut rec, &mp, &xt).map_err(text)?;
    rec.submit().map_err(text)?;
    let unpool = |rec: &mut Recorder<'_>| pool::max_unpool2d(rec, &up, &values, &indices);
    checks.check("max_unpool2d", unpool, &want_u).await?;
    checks
        .check(
            "max_pool2d",
            |_: &mut Recorder<'_>| Ok(values.clone()),
            &Ok(want_v),
        )
        .await?;
    let got_i = gpu
        .recorder()
        .download_indices_async(&indices)
        .await
        .map_err(text)?;
    if !equal(&got_i, &want_i) {
        return Err("max_pool2d: indices differ".into());
    }
    let ap = pool::AvgPool2dParams::new(3)
        .stride(2)
        .padding(1)
        .ceil_mode(true)
        .count_include_pad(false);
    let record = |rec: &mut Recorder<'_>| pool::avg_pool2d(rec, &ap, &xt);
    let want = cpu::pool::avg_pool2d(&ap, x.view());
    checks.check("avg_pool2d", record, &want).await?;
    let aap = pool::AdaptiveAvgPool2dParams::new((5, 3));
    let record = |rec: &mut Recorder<'_>| pool::adaptive_avg_pool2d(rec, &aap, &xt);
    let want = cpu::pool::adaptive_avg_pool2d(&aap, x.view());
    checks.check("adaptive_avg_pool2d", record, &want).await?;
    let amp = pool::AdaptiveMaxPool2dParams::new((4, 6));
    let record = |rec: &mut Recorder<'_>| Ok(pool::adaptive_max_pool2d(rec, &amp, &xt)?.0);
    let want = cpu::pool::adaptive_max_pool2d(&amp, x.view()).map(|(values, _)| values);
    checks.check("adaptive_max_pool2d", record, &want).await?;
    for (kind, kernel) in [pool::GlobalPool::Avg, pool::GlobalPool::Max]
        .into_iter()
        .flat_map(|kind| pool::GlobalPoolKernel::ALL.map(|k| (kind, k)))
        .filter(|(_, k)| k.supports([2, 6, 23, 17]))
    {
        let record = |rec: &mut Recorder<'_>| pool::global_pool_with(rec, kind, &xt, kernel);
        let want = cpu::pool::global_pool(kind, x.view());
        checks
            .check(&format!("{kind:?}, {kernel:?}"), record, &want)
            .await?;
    }
    // Transposed convolutions, every kernel that supports each case.
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
            cpu::conv_transpose::conv_transpose2d(&params, x.view(), w.view(), Some(b.view()));
        let xt = gpu.upload(x.view()).map_err(text)?;
        for kernel in ConvTransposeKernel::ALL
            .into_iter()
            .filter(|k| k.supports(&params, shape))
        {
            let name = format!("{params:?} on {shape:?}, {kernel:?}");
            let record = |rec: &mut Recorder<'_>| layer.forward_with(rec, &xt, kernel);
            checks.check(&name, record, &want).await?;
        }
    }
    // Norms with synthetic affines, AdaIN, softmax and the shuffles.
    let sd = StateDict::synthetic();
    let (w, b) = (
        sd.get1("gn.weight", 6).map_err(text)?,
        sd.get1("gn.bias", 6).map_err(text)?,
    );
    let gn = norm::GroupNormParams::new(3, 6);
    let layer = norm::GroupNorm::load(gpu, gn, &sd, "gn").map_err(text)?;
    let want = cpu::norm::group_norm(&gn, x.view(), w.view(), b.view());
    let record = |rec: &mut Recorder<'_>| layer.forward(rec, &xt);
    checks.check("group_norm", record, &want).await?;
    let inorm = norm::InstanceNorm2dParams::new(6).affine(true);
    let layer = norm::InstanceNorm2d::load(gpu, inorm, &sd, "gn").map_err(text)?;
    let want = cpu::norm::instance_norm(&inorm, x.view(), w.view(), b.view());
    let record = |rec: &mut Recorder<'_>| layer.forward(rec, &xt);
    checks.check("instance_norm", record, &want).await?;
    let style = input([2, 6, 9, 11], 5);
    let st = gpu.upload(style.view()).map_err(text)?;
    let want = cpu::norm::adain(x.view(), style.view(), 1e-5);
    let record = |rec: &mut Recorder<'_>| norm::adain(rec, &xt, &st, 1e-5);
    checks.check("adain", record, &want).await?;
    let want = cpu::channel::softmax(x.view(), false);
    let record = |rec: &mut Recorder<'_>| channel::softmax(rec, &xt);
    checks.check("softmax", record, &want).await?;
    let want = cpu::channel::channel_shuffle(x.view(), 3);
    let record = |rec: &mut Recorder<'_>| channel::channel_shuffle(rec, &xt, 3);
    checks.check("channel_shuffle", record, &want).await?;
    let ps = input([1, 8, 5, 7], 2);
    let pt = gpu.upload(ps.view()).map_err(text)?;
    let want = cpu::upsample::pixel_shuffle(ps.view(), 2);
    let record = |rec: &mut Recorder<'_>| upsample::pixel_shuffle(rec, &pt, 2);
    checks.check("pixel_shuffle", record, &want).await?;
    Ok(format!(
        "ops: {} op calls {}",
        checks.count,
        matched("match the reference")
    ))
}

/// Op checks on one context, counted.
struct OpChecks<'g> {
    gpu: &'g Gpu,
    count: usize,
}

impl<'g> OpChecks<'g> {
    fn new(gpu: &'g Gpu) -> Self {
        OpChecks { gpu, count: 0 }
    }

    /// Records one op with `record`, reads its output back and compares it with the
    /// reference's `want` (within 1e-5 of its largest magnitude, at least 1).
    async fn check(
        &mut self,
        name: &str,
        record: impl FnOnce(&mut Recorder<'_>) -> segblocks::Result<Tensor>,
        want: &segblocks::Result<Array4<f32>>,
    ) -> Check<()> {
        let want = want
            .as_ref()
            .map_err(|e| format!("{name}: reference: {e}"))?;
        let mut rec = self.gpu.recorder();
        let y = record(&mut rec).map_err(text)?;
        let got = rec.download_async(&y).await.map_err(text)?;
        close(name, &got, want, 1e-5)?;
        self.count += 1;
        Ok(())
    }
}

/// A `(w, h)` texture of `format` that frames can be copied into and read from.
fn frame_texture(gpu: &Gpu, (w, h): (usize, usize), format: wgpu::TextureFormat) -> wgpu::Texture {
    gpu.device().create_texture(&wgpu::TextureDescriptor {
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
    })
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
            let texture = frame_texture(gpu, (w, h), format);
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
            if !equal(&got, &host) {
                return Err(format!(
                    "frame_from_texture {format:?} {params:?} differs from the host frame"
                ));
            }
            checked += 1;
        }
    }
    // wgpu's errors on the web come back from the next async readback: a frame from a
    // texture the application destroyed fails at the submission.
    let texture = frame_texture(gpu, (8, 8), wgpu::TextureFormat::Rgba8Unorm);
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
        "frames: {checked} texture frames {}; a destroyed texture gives Error::Gpu at the \
         next readback",
        matched("equal the host frame, which matches the reference")
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
    let class = format!(
        "{}-class{} {:?}",
        if gpu.caps().cpu { "CPU" } else { "GPU" },
        if gpu.caps().fuse_expanding_blocks {
            " (every block fused)"
        } else {
            ""
        },
        gpu.precision()
    );
    if compare_values() && (mean.is_nan() || mean >= 1e-3) {
        return Err(format!(
            "{class} kernels: mask off TFLite's by {mean} on average"
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
        if !equal(&outputs[0], &mask) {
            return Err(format!("{class} kernels: frame {i} in flight differs"));
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
    let compared = if compare_values() {
        format!(
            "mean abs difference to TFLite {mean:.1e}; {} frames in flight identical",
            frames.len()
        )
    } else {
        format!("{} frames in flight", frames.len())
    };
    Ok(format!(
        "selfie 256 x 256 on {class} kernels: {dispatches} dispatches, {compared}; blocking \
         download and profiling refused"
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
