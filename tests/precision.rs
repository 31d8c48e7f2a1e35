//! Half precision (`Precision::F16`): every kernel family against the CPU reference with a
//! tolerance derived from f16's rounding, the selfie network against TFLite's mask, peak
//! memory against the f32 context, and typed errors for what has no f16 form.
//!
//! The bound. An f16 context stores every tensor in binary16: the input is rounded once
//! when uploaded (relative error at most u = 2^-11), every kernel computes in f32 (unless
//! `GpuOptions::f16_arithmetic` asks for f16 products, bounded in their own test below)
//! and rounds its output once. The tests compare with the reference run on the rounded input,
//! so a one-pass op is off by at most `u * |y|` (its output rounding) plus the f32
//! accumulation error, which the f32 tests bound by `terms * 2^-24 * sum |terms|`. An op of
//! `k` passes rounds `k - 1` intermediate tensors too: each adds at most `u` times the
//! magnitude of what it rounds, carried to the output with the op's gain; those bounds are
//! written per op below.

mod common;

use common::*;
use ndarray::{Array1, Array4};
use segblocks::ops::conv::{Conv2d, Conv2dParams, ConvKernel};
use segblocks::ops::Activation;
use segblocks::reference;
use segblocks::{Gpu, GpuOptions, Precision};
use std::sync::OnceLock;

/// binary16's unit roundoff.
const U: f32 = 1.0 / 2048.0;

/// One half-precision context per test binary.
fn half() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        Gpu::with_options(GpuOptions {
            precision: Precision::F16,
            ..GpuOptions::default()
        })
        .expect("the test adapter (lavapipe) has SHADER_F16")
    })
}

/// A GPU-class half-precision context (fused blocks, tiled conv kernels).
fn half_gpu_class() -> Gpu {
    Gpu::with_options(GpuOptions {
        precision: Precision::F16,
        device_class: Some(segblocks::DeviceClass::Gpu),
        ..GpuOptions::default()
    })
    .unwrap()
}

/// A half-precision GPU-class context whose GEMM convolution computes in f16
/// (`GpuOptions::f16_arithmetic`).
fn half_math_gpu_class() -> Gpu {
    Gpu::with_options(GpuOptions {
        precision: Precision::F16,
        f16_arithmetic: true,
        device_class: Some(segblocks::DeviceClass::Gpu),
        ..GpuOptions::default()
    })
    .unwrap()
}

/// `v` rounded to binary16 (what an f16 context stores).
fn r16(v: f32) -> f32 {
    half::f16::from_f32(v).to_f32()
}

/// `x` rounded to binary16 (what an f16 context stores when `x` is uploaded).
fn round16<D: ndarray::Dimension>(x: &ndarray::Array<f32, D>) -> ndarray::Array<f32, D> {
    x.mapv(r16)
}

/// Uploading rounds to nearest even and downloading gives the stored values back exactly.
#[test]
fn upload_rounds_once_and_download_is_exact() {
    let gpu = half();
    assert_eq!(gpu.precision(), Precision::F16);
    let mut r = rng(1);
    // Odd length: the last half-word is padding.
    let x = random4(&mut r, [1, 3, 5, 7]).mapv(|v| v * 300.0);
    let t = gpu.upload(x.view()).unwrap();
    assert_eq!(t.precision(), Precision::F16);
    assert_eq!(t.bytes(), 2 * 105);
    let back = gpu.download(&t).unwrap();
    assert_eq!(back, round16(&x));
    for (a, b) in back.iter().zip(x.iter()) {
        assert!((a - b).abs() <= U * b.abs(), "{a} vs {b}");
    }
}

/// `|got - want| <= u * |want| + slack` elementwise, where `slack` is the f32 bound of
/// the op (per element).
fn assert_one_rounding(got: &Array4<f32>, want: &Array4<f32>, slack: &Array4<f32>, what: &str) {
    let bound = ndarray::Zip::from(want)
        .and(slack)
        .map_collect(|w, s| U * w.abs() + s);
    assert_close(got.view(), want.view(), bound.view(), what);
}

/// Every convolution kernel (the register kernels, the tiled GEMM and depthwise ones) at
/// f16 storage: one rounding of the output off the reference on the stored input.
#[test]
fn conv_kernels_round_once() {
    let gpu = half();
    let cases = [
        (
            Conv2dParams::new(5, 7, 3).padding(1).stride(2),
            [2, 5, 11, 9],
        ),
        (Conv2dParams::new(8, 16, 1), [1, 8, 13, 12]),
        // Planes that are not a multiple of 4 pixels (the texel kernel's shifted reads
        // and single-value stores).
        (Conv2dParams::new(8, 16, 1), [2, 8, 7, 7]),
        (
            Conv2dParams::new(6, 6, 3)
                .groups(6)
                .padding(1)
                .activation(Activation::Relu6),
            [2, 6, 9, 16],
        ),
        (
            Conv2dParams::new(4, 8, 3).padding(2).dilation(2).groups(2),
            [1, 4, 10, 7],
        ),
        (
            Conv2dParams::new(3, 4, 5).padding(2).bias(false),
            [1, 3, 8, 8],
        ),
    ];
    for (i, (params, input)) in cases.into_iter().enumerate() {
        let mut r = rng(10 + i as u64);
        // Inputs and weights as the f16 context stores them.
        let x = round16(&random4(&mut r, input));
        let w = round16(&random4(&mut r, params.weight_shape()));
        let b = params
            .bias
            .then(|| random1(&mut r, params.out_channels).mapv(r16));
        let want =
            reference::conv::conv2d(&params, x.view(), w.view(), b.as_ref().map(|b| b.view()))
                .unwrap();
        let slack = conv_slack(&params, &x, &w, b.as_ref());
        let conv = Conv2d::new(gpu, params, w.view(), b.as_ref().map(|b| b.view())).unwrap();
        let xt = gpu.upload(x.view()).unwrap();
        let mut tried = 0;
        for k in ConvKernel::candidates(&params, input) {
            if !k.supports(&params, input) {
                continue;
            }
            // Fresh (zeroed) buffers: a recycled output of the previous variant would hide
            // values this one fails to write.
            gpu.trim_pool();
            let mut rec = gpu.recorder();
            let y = conv.forward_with(&mut rec, &xt, k).unwrap();
            assert_eq!(y.precision(), Precision::F16);
            let got = rec.download(&y).unwrap();
            assert_one_rounding(&got, &want, &slack, &format!("{k:?} {params:?} {input:?}"));
            tried += 1;
        }
        assert!(tried >= 2, "{params:?}: {tried} kernels");
    }
}

/// The kernels with an f16-arithmetic form (`GpuOptions::f16_arithmetic`: the GEMM
/// convolution, both of its kernels, and the tiled depthwise one) against the reference on
/// the stored input and weights. The GEMM sums each 16-tap step's products in f16, the
/// depthwise kernel each kernel row's (16 taps at a time in wider rows): a chain of `m`
/// fused multiply-adds, each rounding
/// once, is off by at most `gamma_m = m u / (1 - m u)` times the sum of its terms'
/// magnitudes (one more rounding where an input gate's product is stored in f16 first),
/// plus half the smallest f16 subnormal (2^-25) a rounding near zero. The chains' sums are
/// added in f32 (the f32 bound) and the output rounds once. The same layers in f32
/// arithmetic must differ from it, or the f16 form did not run.
#[test]
fn f16_arithmetic_stays_within_its_chains_roundings() {
    use segblocks::ops::conv::{PaddingMode, ResidualJoin};
    let math = half_math_gpu_class();
    assert!(math.f16_arithmetic());
    let storage = half_gpu_class();
    let gamma = |n: f32| n * U / (1.0 - n * U);
    let cases = [
        (
            Conv2dParams::new(5, 7, 3).padding(1).stride(2),
            [2, 5, 11, 9],
        ),
        (Conv2dParams::new(64, 40, 1), [1, 64, 7, 13]),
        (
            Conv2dParams::new(12, 8, 3)
                .padding(2)
                .dilation(2)
                .groups(2)
                .padding_mode(PaddingMode::Reflect)
                .activation(Activation::Relu6),
            [2, 12, 10, 7],
        ),
        (Conv2dParams::new(96, 24, 3).padding(1), [1, 96, 6, 5]),
        (
            Conv2dParams::depthwise(6, 2, 3).padding(1).stride(2),
            [2, 6, 19, 21],
        ),
        (
            Conv2dParams::depthwise(8, 1, 5)
                .padding(4)
                .dilation(2)
                .padding_mode(PaddingMode::Reflect)
                .activation(Activation::Relu6),
            [1, 8, 17, 13],
        ),
        // Rows wider than 16 taps: summed 16 at a time.
        (
            Conv2dParams::depthwise(4, 1, (1, 21)).padding((0, 10)),
            [1, 4, 5, 40],
        ),
    ];
    let mut differs = 0;
    for (i, (params, input)) in cases.into_iter().enumerate() {
        let depthwise = params.groups == params.in_channels;
        let kernels = if depthwise {
            vec![ConvKernel::DepthwiseTiled]
        } else {
            vec![ConvKernel::Gemm, ConvKernel::GemmSplitK { splits: 2 }]
        };
        let mut r = rng(40 + i as u64);
        let x = round16(&random4(&mut r, input));
        let w = round16(&random4(&mut r, params.weight_shape()));
        let b = random1(&mut r, params.out_channels).mapv(r16);
        let out = params.output_shape(input).unwrap();
        let res = round16(&random4(&mut r, out));
        // Every third GEMM case gated (sigmoid), every second case with a residual.
        let gated = i % 3 == 0 && !depthwise;
        let gate = random4(&mut r, [input[0], input[1], 1, 1]).mapv(r16);
        let scaled = if gated {
            let s = gate.mapv(|g| 1.0 / (1.0 + (-g).exp()));
            &x * &s
        } else {
            x.clone()
        };
        let residual = i % 2 == 1;
        let plain = reference::conv::conv2d(&params, scaled.view(), w.view(), Some(b.view()));
        let mut want = plain.unwrap();
        if residual {
            want += &res;
        }
        let mag = reference::conv::conv2d(
            &params.activation(Activation::None),
            scaled.mapv(f32::abs).view(),
            w.mapv(f32::abs).view(),
            Some(b.mapv(f32::abs).view()),
        )
        .unwrap();
        let k = params.in_per_group() * params.kernel_size.0 * params.kernel_size.1;
        let steps = if depthwise {
            params.kernel_size.1.min(16)
        } else {
            16
        };
        let chain = gamma((steps + usize::from(gated)) as f32);
        let f32_slack = conv_slack(&params, &scaled, &w, Some(&b));
        let slack = ndarray::Zip::from(&mag)
            .and(&f32_slack)
            .map_collect(|m, s| chain * m + (k + 16) as f32 * 2f32.powi(-25) + s);
        let mut got = Vec::new();
        for gpu in [&math, &storage] {
            let conv = Conv2d::new(gpu, params, w.view(), Some(b.view())).unwrap();
            let xt = gpu.upload(x.view()).unwrap();
            let gt = gpu.upload(gate.view()).unwrap();
            let rt = gpu.upload(res.view()).unwrap();
            for &kernel in &kernels {
                gpu.trim_pool();
                let mut rec = gpu.recorder();
                let join = residual.then_some((&rt, ResidualJoin::AfterActivation));
                let y = if gated {
                    let g = (&gt, Activation::Sigmoid);
                    conv.forward_gated_with(&mut rec, &xt, g, join, kernel)
                } else if let Some((rt, join)) = join {
                    conv.forward_residual_with(&mut rec, &xt, rt, join, kernel)
                } else {
                    conv.forward_with(&mut rec, &xt, kernel)
                };
                got.push(rec.download(&y.unwrap()).unwrap());
            }
        }
        let what = format!("{params:?} {input:?} gated {gated} residual {residual}");
        for (j, g) in got.iter().enumerate() {
            // The f16-arithmetic results within the derived bound; the f32-arithmetic
            // ones (the second half) within it too, a fortiori.
            assert_one_rounding(g, &want, &slack, &format!("{what} run {j}"));
        }
        let worst = |g: &Array4<f32>| {
            ndarray::Zip::from(g)
                .and(&want)
                .and(&mag)
                .fold(0f32, |m, g, w, a| m.max((g - w).abs() / (chain * a)))
        };
        eprintln!(
            "case {i}: worst error / (gamma * magnitude): f16 arithmetic {:.3}, f32 arithmetic {:.3}",
            worst(&got[0]),
            worst(&got[kernels.len()])
        );
        differs += usize::from(got[0] != got[kernels.len()]);
    }
    assert_eq!(
        differs, 7,
        "f16 arithmetic changed {differs} of 7 layers' outputs"
    );
}

/// f16 arithmetic needs f16 tensors: asked for in an f32 context, it is refused by name.
#[test]
fn f16_arithmetic_without_f16_tensors_is_refused() {
    let err = Gpu::with_options(GpuOptions {
        f16_arithmetic: true,
        ..GpuOptions::default()
    })
    .unwrap_err();
    match err {
        segblocks::Error::InvalidParam { name, reason } => {
            assert_eq!(name, "f16_arithmetic");
            assert!(reason.contains("F32"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

/// The f32 accumulation bound of a convolution (as tests/conv.rs derives it).
fn conv_slack(
    params: &Conv2dParams,
    x: &Array4<f32>,
    w: &Array4<f32>,
    b: Option<&Array1<f32>>,
) -> Array4<f32> {
    let abs_params = params.activation(Activation::None);
    let mag = reference::conv::conv2d(
        &abs_params,
        x.mapv(f32::abs).view(),
        w.mapv(f32::abs).view(),
        b.map(|b| b.mapv(f32::abs)).as_ref().map(|b| b.view()),
    )
    .unwrap();
    let terms = (params.in_per_group() * params.kernel_size.0 * params.kernel_size.1 + 1) as f32;
    mag.mapv(|m| 2.0 * terms * f32::EPSILON * m + 1e-6)
}

const SELFIE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/models/selfie_segmentation/model.safetensors"
);

/// The golden photo as the selfie tests make it (2x2 box average of the 512 x 512 PNG).
fn astronaut_256() -> Array4<f32> {
    let img = image::open(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/data/astronaut.png"
    ))
    .unwrap()
    .to_rgb8();
    Array4::from_shape_fn([1, 3, 256, 256], |(_, c, y, x)| {
        let sum: u32 = [(0, 0), (0, 1), (1, 0), (1, 1)]
            .iter()
            .map(|&(dy, dx)| img.get_pixel(2 * x as u32 + dx, 2 * y as u32 + dy)[c] as u32)
            .sum();
        sum as f32 / 1020.0
    })
}

fn mean_abs(a: &Array4<f32>, b: &Array4<f32>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    let sum: f64 = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| {
            let d = (*x as f64 - *y as f64).abs();
            assert!(d.is_finite(), "non-finite output");
            d
        })
        .sum();
    sum / a.len() as f64
}

/// One selfie forward pass (after a first one that compiles and uploads): the mask and
/// the peak device memory of the pass, the weights included.
fn selfie_mask_and_peak(gpu: &Gpu) -> (Array4<f32>, u64) {
    use segblocks::networks::{SelfieModel, SelfieSegmentation};
    let sd = segblocks::StateDict::load(SELFIE).unwrap();
    let net = SelfieSegmentation::load(gpu, SelfieModel::Square, &sd, "").unwrap();
    let xt = gpu.upload(astronaut_256().view()).unwrap();
    let mut rec = gpu.recorder();
    let y = net.forward(&mut rec, &xt).unwrap();
    let first = rec.download(&y).unwrap();
    drop(y);
    gpu.reset_peak_memory();
    let mut rec = gpu.recorder();
    let y = net.forward(&mut rec, &xt).unwrap();
    let mask = rec.download(&y).unwrap();
    assert_eq!(first, mask);
    (mask, gpu.memory_stats().peak_live_bytes)
}

/// The targets: the f16 selfie mask within 1e-3 mean absolute difference of
/// TFLite's, on the CPU-class and the GPU-class kernels (those also in f16 arithmetic), and
/// its peak memory at most 0.55x the f32 context's.
#[test]
fn selfie_mask_in_f16_matches_tflite_in_half_the_memory() {
    let golden = segblocks::StateDict::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/selfie/mask.safetensors"
    ))
    .unwrap()
    .get4("mask", [1, 1, 256, 256])
    .unwrap();
    let own = Gpu::with_options(GpuOptions {
        precision: Precision::F16,
        ..GpuOptions::default()
    })
    .unwrap();
    let (mask, peak16) = selfie_mask_and_peak(&own);
    let err = mean_abs(&mask, &golden);
    let (mask_gpu_class, _) = selfie_mask_and_peak(&half_gpu_class());
    let err_gpu_class = mean_abs(&mask_gpu_class, &golden);
    let (mask_math, _) = selfie_mask_and_peak(&half_math_gpu_class());
    let err_math = mean_abs(&mask_math, &golden);
    let (mask32, peak32) = selfie_mask_and_peak(&Gpu::new().unwrap());
    let ratio = peak16 as f64 / peak32 as f64;
    eprintln!(
        "selfie f16 vs TFLite: mean abs {err:.2e} (CPU-class kernels), {err_gpu_class:.2e} \
         (GPU-class), {err_math:.2e} (GPU-class, f16 arithmetic); f16 vs f32 mask {:.2e}; peak memory {peak16} vs {peak32} bytes ({ratio:.3}x)",
        mean_abs(&mask, &mask32)
    );
    assert!(err < 1e-3, "{err}");
    assert!(err_gpu_class < 1e-3, "{err_gpu_class}");
    assert!(err_math < 1e-3, "{err_math}");
    assert_ne!(mask_math, mask_gpu_class, "f16 arithmetic changed nothing");
    assert!(ratio <= 0.55, "peak memory ratio {ratio}");
}

/// torchvision's `mobilenet_v2(width_mult=0.35).features` in f16: within 1e-2 of the f32
/// result, relative to the output's largest value.
#[test]
fn mobilenet_v2_features_in_f16_within_1e_2_of_f32() {
    use segblocks::networks::{MobileNetV2Config, MobileNetV2Features};
    let sd = segblocks::StateDict::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/mobilenet_v2_features.safetensors"
    ))
    .unwrap();
    let x: Array4<f32> = sd
        .get("__input__", &[1, 3, 64, 64])
        .unwrap()
        .into_dimensionality()
        .unwrap();
    let cfg = MobileNetV2Config::torchvision().width_mult(0.35);
    let run = |gpu: &Gpu| {
        let net = MobileNetV2Features::load(gpu, cfg, &sd, "").unwrap();
        let mut rec = gpu.recorder();
        let y = net
            .forward(&mut rec, &gpu.upload(x.view()).unwrap())
            .unwrap();
        rec.download(&y).unwrap()
    };
    let f32_out = run(common::gpu());
    let scale = f32_out.iter().fold(0f32, |m, v| m.max(v.abs()));
    let mut outputs: Vec<Array4<f32>> = Vec::new();
    for (gpu, what) in [
        (half().clone(), "CPU-class"),
        (half_gpu_class(), "GPU-class"),
        (half_math_gpu_class(), "GPU-class, f16 arithmetic"),
    ] {
        let f16_out = run(&gpu);
        if gpu.f16_arithmetic() {
            let storage_only = outputs.last().expect("the GPU-class f32-arithmetic run");
            assert_ne!(&f16_out, storage_only, "f16 arithmetic changed nothing");
        }
        let worst = f16_out
            .iter()
            .zip(f32_out.iter())
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
            / scale;
        eprintln!("mobilenet_v2 features f16 vs f32 ({what}): {worst:.2e} of the largest output");
        assert!(worst < 1e-2, "{what}: {worst}");
        outputs.push(f16_out);
    }
}

/// Robust Video Matting in f16 on two frames, the state carried in f16 too: within 1e-2
/// of PyTorch's f32 result, relative to each output's largest value.
#[test]
fn rvm_in_f16_within_1e_2_of_pytorch() {
    use segblocks::networks::{RobustVideoMatting, RvmConfig, RvmMaps, RvmRun};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/rvm");
    for (name, ratio) in [("mobilenetv3_odd_batch2", 1.0), ("mobilenetv3_half", 0.5)] {
        let file = segblocks::StateDict::load(format!("{dir}/{name}.safetensors")).unwrap();
        let mut sd = segblocks::StateDict::synthetic();
        for n in ["project_mat.conv.bias", "refiner.box_filter.weight"] {
            sd.insert(n, file.tensor(n).unwrap().clone());
        }
        for gpu in [half().clone(), half_gpu_class()] {
            let net = RobustVideoMatting::load(&gpu, RvmConfig::mobilenetv3(), &sd, "").unwrap();
            let run = RvmRun::default().downsample_ratio(ratio);
            let mut state = None;
            for t in 0..2 {
                let x = common::stored4(&file, &format!("x{t}")).unwrap();
                let mut rec = gpu.recorder();
                let out = net
                    .forward(
                        &mut rec,
                        &gpu.upload(x.view()).unwrap(),
                        state.as_ref(),
                        run,
                    )
                    .unwrap();
                let RvmMaps::Matting { fgr, pha } = &out.maps else {
                    panic!("the matting pass")
                };
                let got = rec.download_many(&[fgr, pha, &out.state[3]]).unwrap();
                for (g, n) in got.iter().zip(["fgr", "pha", "r4_"]) {
                    let want = common::stored4(&file, &format!("{n}{t}")).unwrap();
                    let err = common::relative(g, &want);
                    eprintln!("rvm {name} f16 frame {t} {n}: {err:.1e}");
                    assert!(err < 1e-2, "{name} frame {t} {n}: {err}");
                }
                state = Some(out.state);
            }
        }
    }
}

/// A device without `SHADER_F16` is refused by name; f32-only work is refused with a
/// typed error, never a wrong answer.
#[test]
fn what_has_no_f16_form_is_refused_by_name() {
    use segblocks::ops::norm::{BatchNorm2d, BatchNorm2dParams};
    use segblocks::Error;
    // wgpu's GL backend (llvmpipe) has no f16 in shaders.
    let gl = Gpu::with_options(GpuOptions {
        backends: Some(segblocks::wgpu::Backends::GL),
        precision: Precision::F16,
        ..GpuOptions::default()
    });
    match gl {
        Err(Error::DeviceUnsupported { name, .. }) => assert_eq!(name, "SHADER_F16"),
        Err(Error::NoAdapter(_)) => eprintln!("no GL adapter here: the refusal is not tested"),
        other => panic!("{other:?}"),
    }
    // The application's device, created without the feature, then with it.
    for with_f16 in [false, true] {
        let (device, queue, info) = pollster::block_on(async {
            let instance = segblocks::wgpu::Instance::new(
                segblocks::wgpu::InstanceDescriptor::new_without_display_handle_from_env(),
            );
            let adapter = instance
                .request_adapter(&segblocks::wgpu::RequestAdapterOptions::default())
                .await
                .unwrap();
            let features = if with_f16 {
                segblocks::wgpu::Features::SHADER_F16
            } else {
                segblocks::wgpu::Features::empty()
            };
            let (device, queue) = adapter
                .request_device(&segblocks::wgpu::DeviceDescriptor {
                    required_features: features,
                    ..Default::default()
                })
                .await
                .unwrap();
            (device, queue, adapter.get_info())
        });
        let options = GpuOptions {
            precision: Precision::F16,
            ..GpuOptions::default()
        };
        match Gpu::from_device(device, queue, info, options) {
            Ok(app) => {
                assert!(with_f16);
                let x = Array4::from_elem([1, 2, 3, 3], 0.25f32);
                let t = app.upload(x.view()).unwrap();
                let mut rec = app.recorder();
                let y = segblocks::ops::channel::add(&mut rec, &t, &t, Activation::None).unwrap();
                assert_eq!(rec.download(&y).unwrap(), x.mapv(|v| 2.0 * v));
            }
            Err(Error::DeviceUnsupported { name, .. }) => {
                assert!(!with_f16);
                assert_eq!(name, "SHADER_F16");
            }
            Err(e) => panic!("{e}"),
        }
    }
    let gpu = half();
    let bn = BatchNorm2d::new(gpu, BatchNorm2dParams::new(3), None, None).unwrap();
    let mut rec = gpu.recorder();
    match bn.record_running_stats(&mut rec) {
        Err(Error::Unsupported { name, .. }) => assert_eq!(name, "record_running_stats"),
        other => panic!("{other:?}"),
    }
    // Reading the running statistics still works (they are f32 in every context).
    let (mean, var) = bn.running_stats().unwrap();
    assert_eq!(mean.to_vec(), vec![0.0; 3]);
    assert_eq!(var.to_vec(), vec![1.0; 3]);
}

/// An op whose output is its input's values moved, kept or mixed by one f32 expression of
/// a few terms, checked as one rounding (`slack` covers the f32 arithmetic).
fn check_one_pass(
    what: &str,
    input: [usize; 4],
    seed: u64,
    slack: f32,
    reference: impl Fn(&Array4<f32>) -> Array4<f32>,
    gpu_op: impl Fn(&mut segblocks::Recorder<'_>, &segblocks::Tensor) -> segblocks::Tensor,
) {
    let gpu = half();
    let x = round16(&random4(&mut rng(seed), input));
    let want = reference(&x);
    let mut rec = gpu.recorder();
    let y = gpu_op(&mut rec, &gpu.upload(x.view()).unwrap());
    assert_eq!(y.precision(), Precision::F16, "{what}");
    let got = rec.download(&y).unwrap();
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let slack = Array4::from_elem(want.raw_dim(), slack * f32::EPSILON * scale + 1e-7);
    assert_one_rounding(&got, &want, &slack, what);
}

/// Pooling, upsampling, elementwise, channel and copy ops: one rounding each.
#[test]
fn data_movement_and_pooling_ops_round_once() {
    use segblocks::ops::{channel, copy, pool, upsample};
    let shape = [2, 5, 9, 11];
    let maxp = pool::MaxPool2dParams::new(3).stride(2).padding(1);
    check_one_pass(
        "max_pool2d",
        shape,
        30,
        0.0,
        |x| reference::pool::max_pool2d(&maxp, x.view()).unwrap().0,
        |rec, x| pool::max_pool2d(rec, &maxp, x).unwrap().0,
    );
    let avgp = pool::AvgPool2dParams::new(3).stride(2).padding(1);
    check_one_pass(
        "avg_pool2d",
        shape,
        31,
        16.0,
        |x| reference::pool::avg_pool2d(&avgp, x.view()).unwrap(),
        |rec, x| pool::avg_pool2d(rec, &avgp, x).unwrap(),
    );
    check_one_pass(
        "global average pool",
        shape,
        32,
        256.0,
        |x| reference::pool::global_pool(pool::GlobalPool::Avg, x.view()).unwrap(),
        |rec, x| pool::global_pool(rec, pool::GlobalPool::Avg, x).unwrap(),
    );
    check_one_pass(
        "global max pool",
        shape,
        33,
        0.0,
        |x| reference::pool::global_pool(pool::GlobalPool::Max, x.view()).unwrap(),
        |rec, x| pool::global_pool(rec, pool::GlobalPool::Max, x).unwrap(),
    );
    // (Bicubic sums 16 products: a larger f32 slack.)
    for (name, up, slack) in [
        (
            "bilinear x2",
            upsample::UpsampleParams::bilinear(false).scale_factor(2.0),
            8.0,
        ),
        (
            "bilinear aligned x3",
            upsample::UpsampleParams::bilinear(true).scale_factor(3.0),
            8.0,
        ),
        (
            "nearest x2",
            upsample::UpsampleParams::nearest().scale_factor(2.0),
            8.0,
        ),
        (
            "nearest-exact to 7 x 9",
            upsample::UpsampleParams::nearest_exact().size((7, 9)),
            8.0,
        ),
        (
            "bicubic x1.5",
            upsample::UpsampleParams::bicubic(false).scale_factor(1.5),
            20.0,
        ),
    ] {
        check_one_pass(
            name,
            shape,
            34,
            slack,
            |x| reference::upsample::upsample(&up, x.view()).unwrap(),
            |rec, x| upsample::upsample(rec, &up, x).unwrap(),
        );
    }
    // A residual sum and its activation in the resize's store: still one rounding (the
    // vec4 bilinear kernel where the width is whole vec4s, the tap kernel elsewhere).
    for (name, up, input) in [
        (
            "bilinear x2 + residual",
            upsample::UpsampleParams::bilinear(false).scale_factor(2.0),
            [2, 5, 9, 12],
        ),
        (
            "nearest x2 + residual",
            upsample::UpsampleParams::nearest().scale_factor(2.0),
            [2, 5, 9, 11],
        ),
    ] {
        let residual = round16(&random4(&mut rng(35), up.output_shape(input).unwrap()));
        let act = segblocks::ops::Activation::Relu;
        check_one_pass(
            name,
            input,
            36,
            8.0,
            |x| reference::upsample::upsample_add(&up, x.view(), residual.view(), act).unwrap(),
            |rec, x| {
                let r = half().upload(residual.view()).unwrap();
                upsample::upsample_add(rec, &up, x, &r, act).unwrap()
            },
        );
    }
    // Widths of whole vec4s: the strip kernel's vec4 loads and stores of f16.
    let aligned = upsample::UpsampleParams::bilinear(true).size((20, 40));
    assert_eq!(
        upsample::select_kernel(&aligned, [2, 5, 9, 16]),
        upsample::UpsampleKernel::BilinearStrips
    );
    check_one_pass(
        "bilinear strips to 20 x 40",
        [2, 5, 9, 16],
        35,
        8.0,
        |x| reference::upsample::upsample(&aligned, x.view()).unwrap(),
        |rec, x| upsample::upsample(rec, &aligned, x).unwrap(),
    );
    // Antialiasing runs rows then columns, its intermediate stored in f16: two roundings,
    // each within half an f16 ulp of values no larger than the input (the bilinear
    // filter's weights are non-negative and sum to 1).
    {
        let gpu = half();
        let x = round16(&random4(&mut rng(44), shape));
        let aa = upsample::UpsampleParams::bilinear(false)
            .size((3, 2))
            .antialias(true);
        let want = reference::upsample::upsample(&aa, x.view()).unwrap();
        let mut rec = gpu.recorder();
        let y = upsample::upsample(&mut rec, &aa, &gpu.upload(x.view()).unwrap()).unwrap();
        let got = rec.download(&y).unwrap();
        let scale = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let tol = want.mapv(|_| 2f32.powi(-10) * scale + 1e-6);
        assert_close(
            got.view(),
            want.view(),
            tol.view(),
            "antialiased bilinear in f16",
        );
    }
    check_one_pass(
        "pixel shuffle + unshuffle",
        [2, 8, 6, 4],
        34,
        0.0,
        |x| {
            let y = reference::upsample::pixel_shuffle(x.view(), 2).unwrap();
            reference::upsample::pixel_unshuffle(y.view(), 4).unwrap()
        },
        |rec, x| {
            let y = upsample::pixel_shuffle(rec, x, 2).unwrap();
            upsample::pixel_unshuffle(rec, &y, 4).unwrap()
        },
    );
    for act in [
        channel::ParamActivation::LeakyRelu {
            negative_slope: 0.2,
        },
        channel::ParamActivation::elu(),
        channel::ParamActivation::softplus(),
    ] {
        check_one_pass(
            "activation with parameters",
            shape,
            37,
            8.0,
            |x| reference::channel::activation_with(x.view(), act).unwrap(),
            |rec, x| channel::activation_with(rec, x, act).unwrap(),
        );
    }
    check_one_pass(
        "softmax over channels",
        shape,
        45,
        16.0,
        |x| reference::channel::softmax(x.view(), false).unwrap(),
        |rec, x| channel::softmax(rec, x).unwrap(),
    );
    check_one_pass(
        "add + relu",
        shape,
        35,
        2.0,
        |x| reference::channel::add(x.view(), x.view(), Activation::Relu).unwrap(),
        |rec, x| channel::add(rec, x, x, Activation::Relu).unwrap(),
    );
    // The products of maps (a GRU's reset gate, a guided filter's statistics).
    check_one_pass(
        "mul",
        shape,
        351,
        2.0,
        |x| reference::channel::mul(x.view(), x.view(), Activation::None).unwrap(),
        |rec, x| channel::mul(rec, x, x, Activation::None).unwrap(),
    );
    check_one_pass(
        "div",
        shape,
        354,
        2.0,
        |x| reference::channel::div(x.view(), x.mapv(|v| v.max(0.0)).view(), 1.0).unwrap(),
        |rec, x| {
            let divisor = channel::activation(rec, x, Activation::Relu).unwrap();
            channel::div(rec, x, &divisor, 1.0).unwrap()
        },
    );
    check_one_pass(
        "mul_add",
        shape,
        352,
        4.0,
        |x| reference::channel::mul_add(x.view(), x.view(), x.view()).unwrap(),
        |rec, x| channel::mul_add(rec, x, x, x).unwrap(),
    );
    check_one_pass(
        "sub_mul",
        shape,
        353,
        4.0,
        |x| reference::channel::sub_mul(x.view(), x.view(), x.view()).unwrap(),
        |rec, x| channel::sub_mul(rec, x, x, x).unwrap(),
    );
    check_one_pass(
        "hardswish",
        shape,
        36,
        8.0,
        |x| reference::channel::activation(x.view(), Activation::HardSwish),
        |rec, x| channel::activation(rec, x, Activation::HardSwish).unwrap(),
    );
    check_one_pass(
        "channel_shuffle",
        [1, 6, 5, 3],
        37,
        0.0,
        |x| reference::channel::channel_shuffle(x.view(), 3).unwrap(),
        |rec, x| channel::channel_shuffle(rec, x, 3).unwrap(),
    );
    check_one_pass(
        "concat",
        shape,
        38,
        0.0,
        |x| reference::channel::concat(&[x.view(), x.view()]).unwrap(),
        |rec, x| channel::concat(rec, &[x, x]).unwrap(),
    );
    let crop = copy::CropParams2d::new((1, 2), (5, 6));
    check_one_pass(
        "crop",
        shape,
        39,
        0.0,
        |x| reference::copy::crop(&crop, x.view()).unwrap(),
        |rec, x| copy::crop(rec, &crop, x).unwrap(),
    );
    for (i, mode) in [
        copy::PadMode::Constant,
        copy::PadMode::Reflect,
        copy::PadMode::Circular,
    ]
    .into_iter()
    .enumerate()
    {
        let pad = copy::Pad2dParams::new((2, -1, 1, 3)).mode(mode).value(0.75);
        check_one_pass(
            "pad",
            shape,
            40 + i as u64,
            0.0,
            |x| reference::copy::pad2d(&pad, x.view()).unwrap(),
            |rec, x| copy::pad2d(rec, &pad, x).unwrap(),
        );
    }
}

/// Normalisation: the statistics are f32 sums of the stored (exact) values, so the output
/// is rounded once; batch norm in eval mode is one pass with f32 running statistics.
#[test]
fn norms_round_once() {
    use segblocks::ops::norm::{BatchNorm2d, BatchNorm2dParams, GroupNorm, GroupNormParams};
    let gpu = half();
    let (c, shape) = (6, [2, 6, 7, 5]);
    let mut r = rng(40);
    let gamma = round16(&random1(&mut r, c));
    let beta = round16(&random1(&mut r, c));
    let gn_params = GroupNormParams::new(3, c);
    let gn = GroupNorm::new(gpu, gn_params, Some(gamma.view()), Some(beta.view())).unwrap();
    check_one_pass(
        "group_norm",
        shape,
        41,
        64.0,
        |x| reference::norm::group_norm(&gn_params, x.view(), gamma.view(), beta.view()).unwrap(),
        |rec, x| gn.forward(rec, x).unwrap(),
    );
    let mean = random1(&mut r, c);
    let var = random1(&mut r, c).mapv(|v| v.abs() + 0.5);
    let bn_params = BatchNorm2dParams::new(c);
    let bn = BatchNorm2d::new(gpu, bn_params, Some(gamma.view()), Some(beta.view()))
        .unwrap()
        .with_running_stats(mean.view(), var.view())
        .unwrap();
    check_one_pass(
        "batch_norm eval",
        shape,
        42,
        16.0,
        |x| {
            reference::norm::batch_norm_eval(
                &bn_params,
                x.view(),
                gamma.view(),
                beta.view(),
                mean.view(),
                var.view(),
            )
            .unwrap()
        },
        |rec, x| bn.forward_eval(rec, x).unwrap(),
    );
}

/// Squeeze-and-excitation, two passes: the gate logits `g` are stored (rounded, relative
/// error u) before `y = x * sigmoid(g)`; sigmoid's slope is at most 1/4, so the stored
/// gate adds at most `|x| * |g| * u / 4` to the output's own rounding.
#[test]
fn squeeze_excitation_rounds_its_gate_and_its_output() {
    use segblocks::ops::attention::{SqueezeExcitation, SqueezeExcitationParams};
    let gpu = half();
    let (c, s, shape) = (8, 4, [2, 8, 9, 7]);
    let mut r = rng(50);
    let x = round16(&random4(&mut r, shape));
    let params = SqueezeExcitationParams::new(c, s);
    let w1 = round16(&random4(&mut r, [s, c, 1, 1]));
    let b1 = round16(&random1(&mut r, s));
    let w2 = round16(&random4(&mut r, [c, s, 1, 1]));
    let b2 = round16(&random1(&mut r, c));
    let fc1 = (w1.view(), b1.view());
    let fc2 = (w2.view(), b2.view());
    let want = reference::attention::squeeze_excitation(&params, x.view(), fc1, fc2).unwrap();
    let logits = reference::attention::excitation(&params, x.view(), fc1, fc2).unwrap();
    let se =
        SqueezeExcitation::new(gpu, params, w1.view(), b1.view(), w2.view(), b2.view()).unwrap();
    let mut rec = gpu.recorder();
    let y = se
        .forward(&mut rec, &gpu.upload(x.view()).unwrap())
        .unwrap();
    let got = rec.download(&y).unwrap();
    let bound = ndarray::Zip::from(&want)
        .and(&x)
        .and_broadcast(&logits)
        .map_collect(|y, x, g| U * (y.abs() + x.abs() * g.abs() / 4.0) + 1e-6);
    assert_close(got.view(), want.view(), bound.view(), "squeeze-excitation");
}

/// The f32 slack the fused-op tests use (their sums run in another order than the
/// reference's), per element: `2e-5` of the output's scale.
fn fused_slack(want: &Array4<f32>) -> Array4<f32> {
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    Array4::from_elem(want.raw_dim(), 2e-5 * scale + 1e-6)
}

/// Transposed convolution, every kernel: one rounding.
#[test]
fn conv_transpose_rounds_once() {
    use segblocks::ops::conv_transpose::{
        ConvTranspose2d, ConvTranspose2dParams, ConvTransposeKernel,
    };
    let gpu = half();
    for (i, (params, input)) in [
        (
            ConvTranspose2dParams::new(6, 4, 4).stride(2).padding(1),
            [2, 6, 7, 5],
        ),
        (
            ConvTranspose2dParams::new(16, 1, 2).stride(2),
            [1, 16, 9, 12],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = rng(60 + i as u64);
        let x = round16(&random4(&mut r, input));
        let w = round16(&random4(&mut r, params.weight_shape()));
        let b = round16(&random1(&mut r, params.out_channels));
        let want = reference::conv_transpose::conv_transpose2d(
            &params,
            x.view(),
            w.view(),
            Some(b.view()),
        )
        .unwrap();
        let layer = ConvTranspose2d::new(gpu, params, w.view(), Some(b.view())).unwrap();
        let xt = gpu.upload(x.view()).unwrap();
        let mut tried = 0;
        for k in ConvTransposeKernel::ALL {
            if !k.supports(&params, input) {
                continue;
            }
            gpu.trim_pool();
            let mut rec = gpu.recorder();
            let y = layer.forward_with(&mut rec, &xt, k).unwrap();
            let got = rec.download(&y).unwrap();
            assert_one_rounding(
                &got,
                &want,
                &fused_slack(&want),
                &format!("{k:?} {params:?}"),
            );
            tried += 1;
        }
        assert!(tried >= 1);
    }
}

/// The fused kernels keep every intermediate in f32 workgroup memory or registers, so the
/// whole block is one rounding of its output: the inverted residual (every tile kind
/// the plan offers), the decoder stage with its transposed-convolution head, and the
/// LR-ASPP branch.
#[test]
fn fused_blocks_round_once() {
    use segblocks::ops::conv_transpose::ConvTranspose2dParams;
    use segblocks::ops::decoder_stage::{DecoderStage, DecoderStageKernel, DecoderStageParams};
    use segblocks::ops::inverted_residual::{
        fused_candidates, FusedInvertedResidual, FusedPass, InvertedResidualParams,
    };
    use segblocks::ops::lraspp_head::{LrAsppHead, LrAsppHeadKernel, LrAsppHeadParams};
    let gpu = half_gpu_class();
    let mut r = rng(70);
    let mut pair = |shape: [usize; 4]| {
        (
            round16(&random4(&mut r, shape)),
            round16(&random1(&mut r, shape[0])),
        )
    };

    // Inverted residual: expansion, stride 2, odd sizes and channel counts.
    let p = InvertedResidualParams {
        stride: 2,
        ..InvertedResidualParams::new(6, 36, 10)
    };
    let input = [2, 6, 15, 9];
    let (e, d, pr) = (
        pair([36, 6, 1, 1]),
        pair([36, 1, 3, 3]),
        pair([10, 36, 1, 1]),
    );
    let x = round16(&random4(&mut rng(71), input));
    let want = reference::inverted_residual::inverted_residual(
        &p,
        x.view(),
        Some(v(&e)),
        v(&d),
        None,
        v(&pr),
    )
    .unwrap();
    let layer = FusedInvertedResidual::new(&gpu, p, Some(v(&e)), v(&d), v(&pr)).unwrap();
    let xt = gpu.upload(x.view()).unwrap();
    let tiles = fused_candidates(&p, FusedPass::Block, input, gpu.caps());
    for tile in tiles.iter().take(3) {
        gpu.trim_pool();
        let mut rec = gpu.recorder();
        let y = layer.forward_with(&mut rec, &xt, *tile).unwrap();
        let got = rec.download(&y).unwrap();
        assert_one_rounding(&got, &want, &fused_slack(&want), &format!("{tile:?}"));
    }

    // The selfie decoder's last stage with its 2x2 stride-2 transposed-convolution head.
    let sp = DecoderStageParams::new(16, 16);
    let shape = [2, 16, 10, 18];
    let (refine, depthwise) = (pair([16, 16, 1, 1]), pair([16, 1, 3, 3]));
    let hp = ConvTranspose2dParams::new(16, 1, 2)
        .stride(2)
        .activation(Activation::Sigmoid);
    let head = pair([16, 1, 2, 2]);
    let head_b = round16(&random1(&mut rng(72), 1));
    let mut r = rng(73);
    let skip = round16(&random4(&mut r, shape));
    let gate = round16(&random4(&mut r, [2, 16, 1, 1]));
    let low = round16(&random4(&mut r, [2, 16, 5, 9]));
    let stage_out = reference::decoder_stage::decoder_stage(
        &sp,
        skip.view(),
        gate.view(),
        low.view(),
        v(&refine),
        v(&depthwise),
    )
    .unwrap();
    let want = reference::conv_transpose::conv_transpose2d(
        &hp,
        stage_out.view(),
        head.0.view(),
        Some(head_b.view()),
    )
    .unwrap();
    let stage = DecoderStage::new(&gpu, sp, v(&refine), v(&depthwise))
        .unwrap()
        .with_head(hp, head.0.view(), Some(head_b.view()))
        .unwrap();
    let up = |a: &Array4<f32>| gpu.upload(a.view()).unwrap();
    let mut rec = gpu.recorder();
    let y = stage
        .forward_with(
            &mut rec,
            &up(&skip),
            &up(&gate),
            &up(&low),
            DecoderStageKernel::Fused,
        )
        .unwrap();
    let got = rec.download(&y).unwrap();
    assert_one_rounding(&got, &want, &fused_slack(&want), "decoder stage + head");

    // The LR-ASPP branch: pool, gate, branch, scale and classifier in one pass.
    let lp = LrAsppHeadParams::new(12, 8, 3);
    let (branch, gate_w, classifier) =
        (pair([8, 12, 1, 1]), pair([8, 12, 1, 1]), pair([3, 8, 1, 1]));
    let x = round16(&random4(&mut rng(74), [2, 12, 7, 9]));
    let want = reference::lraspp_head::lraspp_head(
        &lp,
        x.view(),
        o(&branch),
        o(&gate_w),
        Some(o(&classifier)),
    )
    .unwrap();
    let head = LrAsppHead::new(&gpu, lp, o(&branch), o(&gate_w), Some(o(&classifier))).unwrap();
    let mut rec = gpu.recorder();
    let y = head
        .forward_with(&mut rec, &up(&x), LrAsppHeadKernel::Fused)
        .unwrap();
    let got = rec.download(&y).unwrap();
    assert_one_rounding(&got, &want, &fused_slack(&want), "LR-ASPP branch");
}

type Pair = (Array4<f32>, Array1<f32>);

/// A weight and its bias as views.
fn v(p: &Pair) -> (ndarray::ArrayView4<'_, f32>, ndarray::ArrayView1<'_, f32>) {
    (p.0.view(), p.1.view())
}

/// A weight and its (present) bias as the LR-ASPP head takes them.
fn o(
    p: &Pair,
) -> (
    ndarray::ArrayView4<'_, f32>,
    Option<ndarray::ArrayView1<'_, f32>>,
) {
    (p.0.view(), Some(p.1.view()))
}

/// A frame of 8-bit pixels into an f16 tensor (resize and normalisation in f32, one
/// rounding of the result), as `frame_from_host` makes the network's input.
#[test]
fn frames_enter_f16_tensors_with_one_rounding() {
    use segblocks::ops::frame::{
        frame_from_host, FrameLayout, FrameParams, Normalize, PixelFormat,
    };
    let gpu = half();
    let (h, w) = (13, 19);
    let bytes: Vec<u8> = (0..h * w * 4)
        .map(|i| ((i * 37 + i / 7) % 256) as u8)
        .collect();
    let layout = FrameLayout::packed(w, h, PixelFormat::Rgba8);
    let params = FrameParams::new(16, 16).normalize(Normalize {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    });
    let want = reference::frame::frame_to_input(&bytes, &layout, &params).unwrap();
    let mut rec = gpu.recorder();
    let x = frame_from_host(&mut rec, &bytes, &layout, &params).unwrap();
    assert_eq!(x.precision(), Precision::F16);
    let got = rec.download(&x).unwrap();
    let slack = Array4::from_elem(want.raw_dim(), 1e-5);
    assert_one_rounding(&got, &want, &slack, "frame_from_host");
}

/// Attention (`ops::sdpa`) at f16 storage: q, k and v stored in binary16, scores,
/// softmax and sums in f32 (the key splits' partial results too), one rounding of the
/// output off the reference on the stored inputs; the slack is the f32 op's bound in
/// `tests/sdpa.rs` (a convex combination of the values, 2e-5 for values of order 1).
#[test]
fn attention_rounds_once() {
    use segblocks::ops::sdpa::{scaled_dot_product_attention, SdpaParams};
    let gpu = half();
    let mut r = rng(77);
    // One pass (16 keys), and 800 keys of 64 channels: split and joined.
    for (heads, e, q_map, k_map) in [(2, 8, [5, 7], [4, 4]), (1, 64, [3, 5], [40, 20])] {
        let q = round16(&random4(&mut r, [2, heads * e, q_map[0], q_map[1]]));
        let k = round16(&random4(&mut r, [2, heads * e, k_map[0], k_map[1]]).mapv(|v| 0.3 * v));
        let v = round16(&random4(&mut r, [2, heads * e, k_map[0], k_map[1]]));
        let p = SdpaParams::new(heads);
        let want =
            reference::sdpa::scaled_dot_product_attention(q.view(), k.view(), v.view(), p).unwrap();
        let up = |a: &Array4<f32>| gpu.upload(a.view()).unwrap();
        let mut rec = gpu.recorder();
        let y = scaled_dot_product_attention(&mut rec, &up(&q), &up(&k), &up(&v), p).unwrap();
        assert_eq!(y.precision(), Precision::F16);
        let got = rec.download(&y).unwrap();
        let slack = Array4::from_elem(want.raw_dim(), 2e-5);
        assert_one_rounding(&got, &want, &slack, &format!("attention {heads} x {e}"));
    }
}
