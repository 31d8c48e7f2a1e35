//! Convolution layers of the shared peer suite (batch 1, f32, NCHW), each timed as the
//! peers are: a fresh input upload, the convolution, and reading the whole output back.
//! Criterion's throughput is set to the layer's FLOPs (2 x MACs), so `elem/s` reads as
//! FLOP/s. Each layer's picked kernel runs again in a half-precision context (`/f16`:
//! tensors and weights stored in f16, f32 arithmetic), and each layer runs its GPU-class
//! kernel (the GEMM, or the tiled depthwise kernel) at f16 storage with f32 and with f16
//! arithmetic (`Gemm/f16`, `Gemm/f16math`: `GpuOptions::f16_arithmetic`).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::{Array1, Array4};
use segblocks::ops::conv::{Conv2d, Conv2dParams, ConvKernel};
use segblocks::{Gpu, GpuOptions, Precision};

fn layers() -> Vec<(&'static str, Conv2dParams, [usize; 4])> {
    vec![
        (
            "conv3x3_64_56",
            Conv2dParams::new(64, 64, 3).padding(1),
            [1, 64, 56, 56],
        ),
        (
            "pointwise_144_24_56",
            Conv2dParams::new(144, 24, 1),
            [1, 144, 56, 56],
        ),
        // MobileNetV2's last layer and a projection at 7 x 7: planes that are not a
        // multiple of 4 pixels.
        (
            "pointwise_320_1280_7",
            Conv2dParams::new(320, 1280, 1),
            [1, 320, 7, 7],
        ),
        (
            "pointwise_960_160_7",
            Conv2dParams::new(960, 160, 1),
            [1, 960, 7, 7],
        ),
        (
            "depthwise3x3_144_56_s1",
            Conv2dParams::depthwise(144, 1, 3).padding(1),
            [1, 144, 56, 56],
        ),
        (
            "depthwise3x3_144_56_s2",
            Conv2dParams::depthwise(144, 1, 3).padding(1).stride(2),
            [1, 144, 56, 56],
        ),
        (
            "depthwise5x5_240_28_s1",
            Conv2dParams::depthwise(240, 1, 5).padding(2),
            [1, 240, 28, 28],
        ),
        (
            "group3x3_g32_128_28",
            Conv2dParams::new(128, 128, 3).padding(1).groups(32),
            [1, 128, 28, 28],
        ),
        (
            "dilated3x3_r6_128_32",
            Conv2dParams::new(128, 128, 3).padding(6).dilation(6),
            [1, 128, 32, 32],
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let gpu = Gpu::new().expect("a GPU adapter (install mesa-vulkan-drivers for lavapipe)");
    eprintln!(
        "adapter: {} ({:?})",
        gpu.adapter_info().name,
        gpu.adapter_info().backend
    );
    let half = Gpu::with_options(GpuOptions {
        precision: Precision::F16,
        ..GpuOptions::default()
    })
    .expect("an adapter with SHADER_F16 (lavapipe has it)");
    let half_math = Gpu::with_options(GpuOptions {
        precision: Precision::F16,
        f16_arithmetic: true,
        ..GpuOptions::default()
    })
    .expect("an adapter with SHADER_F16 (lavapipe has it)");
    let mut group = c.benchmark_group("conv");
    group.sample_size(10);
    group.warm_up_time(std::time::Duration::from_millis(500));
    group.measurement_time(std::time::Duration::from_secs(3));
    for (name, params, shape) in layers() {
        let w = Array4::from_shape_fn(params.weight_shape(), |(a, b, c, d)| {
            ((a * 7 + b * 5 + c * 3 + d) % 13) as f32 * 0.01 - 0.06
        });
        let b = Array1::from_shape_fn(params.out_channels, |i| i as f32 * 0.001);
        let conv = Conv2d::new(&gpu, params, w.view(), Some(b.view())).unwrap();
        let x = Array4::from_shape_fn(shape, |(_, c, h, w)| ((c + h * 3 + w) % 17) as f32 * 0.1);
        let flops = params.cost(shape).unwrap().flops();
        group.throughput(Throughput::Elements(flops));
        // The kernel the library picks, and the best sub-variant of every other family
        // that runs the layer (ALL lists each family's fullest sub-variant first).
        let mut kernels = ConvKernel::choice_and_alternatives(&params, shape, gpu.caps());
        let chosen = kernels[0];
        // The depthwise kernel's other load width (vector loads are chosen on GPUs only:
        // `-- depthwise` compares them on this adapter).
        if let ConvKernel::Depthwise {
            row_buffer,
            vector_loads,
            vector_stores,
        } = chosen
        {
            let other = ConvKernel::Depthwise {
                row_buffer,
                vector_loads: !vector_loads,
                vector_stores,
            };
            if other.supports(&params, shape) {
                kernels.push(other);
            }
        }
        for kernel in kernels {
            let picked = if kernel == chosen { "*" } else { "" };
            group.bench_function(format!("{name}/{kernel:?}{picked}"), |bch| {
                bch.iter(|| {
                    let xt = gpu.upload(x.view()).unwrap();
                    let mut rec = gpu.recorder();
                    let y = conv.forward_with(&mut rec, &xt, kernel).unwrap();
                    rec.download(&y).unwrap()
                })
            });
        }
        // The picked kernel with f16 tensors and weights (f32 arithmetic); the GPU-class
        // kernel in f32 and in f16 arithmetic.
        let tiled = if params.groups == params.in_channels {
            ConvKernel::DepthwiseTiled
        } else {
            ConvKernel::Gemm
        };
        let runs = [
            (&half, chosen, format!("{name}/{chosen:?}*/f16")),
            (&half, tiled, format!("{name}/{tiled:?}/f16")),
            (&half_math, tiled, format!("{name}/{tiled:?}/f16math")),
        ];
        for (ctx, kernel, label) in runs {
            let conv16 = Conv2d::new(ctx, params, w.view(), Some(b.view())).unwrap();
            group.bench_function(label, |bch| {
                bch.iter(|| {
                    let xt = ctx.upload(x.view()).unwrap();
                    let mut rec = ctx.recorder();
                    let y = conv16.forward_with(&mut rec, &xt, kernel).unwrap();
                    rec.download(&y).unwrap()
                })
            });
        }
    }
    // A leaky ReLU after the 3x3 convolution: fused into its store, against the
    // convolution followed by the standalone op (one more pass over the output).
    {
        use segblocks::ops::channel::{activation_with, ParamActivation};
        let leaky = ParamActivation::LeakyRelu {
            negative_slope: 0.2,
        };
        let (name, params, shape) = layers().swap_remove(0);
        let params = params.bias(false);
        let w = Array4::from_shape_fn(params.weight_shape(), |(a, b, c, d)| {
            ((a * 7 + b * 5 + c * 3 + d) % 13) as f32 * 0.01 - 0.06
        });
        let x = Array4::from_shape_fn(shape, |(_, c, h, w)| ((c + h * 3 + w) % 17) as f32 * 0.1);
        let fused = Conv2d::new(&gpu, params.param_activation(leaky), w.view(), None).unwrap();
        let plain = Conv2d::new(&gpu, params, w.view(), None).unwrap();
        group.throughput(Throughput::Elements(params.cost(shape).unwrap().flops()));
        group.bench_function(format!("{name}/leaky_relu_fused"), |bch| {
            bch.iter(|| {
                let xt = gpu.upload(x.view()).unwrap();
                let mut rec = gpu.recorder();
                let y = fused.forward(&mut rec, &xt).unwrap();
                rec.download(&y).unwrap()
            })
        });
        group.bench_function(format!("{name}/leaky_relu_separate"), |bch| {
            bch.iter(|| {
                let xt = gpu.upload(x.view()).unwrap();
                let mut rec = gpu.recorder();
                let y = plain.forward(&mut rec, &xt).unwrap();
                let y = activation_with(&mut rec, &y, leaky).unwrap();
                rec.download(&y).unwrap()
            })
        });
    }
    group.finish();

    // The floor every layer above pays: uploading its input and reading a tensor of the
    // same size back, with no compute.
    let mut floor = c.benchmark_group("roundtrip");
    floor.sample_size(10);
    floor.measurement_time(std::time::Duration::from_secs(2));
    for shape in [[1, 64, 56, 56], [1, 144, 56, 56]] {
        let x = Array4::<f32>::ones(shape);
        floor.throughput(Throughput::Bytes(8 * x.len() as u64));
        floor.bench_function(format!("{shape:?}"), |bch| {
            bch.iter(|| {
                let xt = gpu.upload(x.view()).unwrap();
                gpu.download(&xt).unwrap()
            })
        });
    }
    floor.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
