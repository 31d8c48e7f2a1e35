//! Convolution layers of the shared peer suite (batch 1, f32, NCHW), each timed as the
//! peers are: a fresh input upload, the convolution, and reading the whole output back.
//! Criterion's throughput is set to the layer's FLOPs (2 x MACs), so `elem/s` reads as
//! FLOP/s. Each layer's picked kernel runs again in a half-precision context (`/f16`:
//! tensors and weights stored in f16, f32 arithmetic), and each layer runs its GPU-class
//! kernel (the GEMM, or the tiled depthwise kernel) at f16 storage with f32 and with f16
//! arithmetic (`Gemm/f16`, `Gemm/f16math`: `GpuOptions::f16_arithmetic`). Then the floor
//! (upload and readback, no compute) and the ceilings (`ceiling/fma_registers`: fused
//! multiply-adds with no loads, the adapter's arithmetic peak as WGSL reaches it;
//! `ceiling/storage_vec4_loads` and `ceiling/texel_loads`: what a kernel's loads cost).

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

    // The ceilings: fused multiply-adds with no load at all, the most any convolution
    // above could reach on this adapter (FLOP/s, same run); and what its loads cost:
    // vec4 loads from a storage buffer and texel fetches from a texture, at addresses
    // that differ per invocation, counted as loads per second.
    let mut ceiling = c.benchmark_group("ceiling");
    ceiling.sample_size(10);
    ceiling.measurement_time(std::time::Duration::from_secs(2));
    for (name, probe) in [
        ("fma_registers", Probe::Fma),
        ("storage_vec4_loads", Probe::StorageLoads),
        ("texel_loads", Probe::TexelLoads),
    ] {
        let (count, run) = probe.build(&gpu);
        ceiling.throughput(Throughput::Elements(count));
        ceiling.bench_function(name, |bch| bch.iter(&run));
    }
    ceiling.finish();
}

/// The ceiling kernels: 512 workgroups of 64 invocations, each running 4,096 steps.
#[derive(Clone, Copy)]
enum Probe {
    /// 16 independent vec4 fused multiply-adds a step (enough independent chains to hide
    /// their latency), in registers; counted in FLOPs.
    Fma,
    /// One vec4 load a step from a storage buffer, each invocation at its own address in
    /// the first 64 KiB (so the caches hold them), added up; counted in loads.
    StorageLoads,
    /// One texel fetch a step from a 1024-wide `rgba32float` texture (the texel kernels'
    /// layout), each invocation at its own texel of the first 4,096; counted in loads.
    TexelLoads,
}

impl Probe {
    /// What one run counts, and a closure that dispatches the kernel and waits.
    fn build(self, gpu: &Gpu) -> (u64, impl Fn() + '_) {
        use segblocks::wgpu;
        const ACCS: usize = 16;
        const STEPS: u32 = 4096;
        const GROUPS: u32 = 512;
        const SIDE: u32 = 1024;
        const WINDOW: u32 = 4096;
        let invocations = u64::from(GROUPS) * 64 * u64::from(STEPS);
        let (count, declare, body, result) = match self {
            Probe::Fma => {
                let decl: String = (0..ACCS)
                    .map(|i| format!("    var a{i} = vec4<f32>(f32(gid.x) * 1e-9 + {i}.0);\n"))
                    .collect();
                let body: String = (0..ACCS)
                    .map(|i| format!("        a{i} = fma(a{i}, m, c);\n"))
                    .collect();
                let sum: String = (0..ACCS).map(|i| format!(" + dot(a{i}, m)")).collect();
                let decl =
                    format!("{decl}    let m = vec4<f32>(0.999);\n    let c = vec4<f32>(0.001);\n");
                (
                    invocations * ACCS as u64 * 8,
                    decl,
                    body,
                    format!("0.0{sum}"),
                )
            }
            Probe::StorageLoads | Probe::TexelLoads => {
                let load = if matches!(self, Probe::StorageLoads) {
                    "src[j]".to_string()
                } else {
                    format!("textureLoad(tex, vec2<u32>(j % {SIDE}u, j / {SIDE}u), 0)")
                };
                let decl = "    var s = vec4<f32>(0.0);\n".to_string();
                // Within the first 64 KiB (cache-resident): the loads' own cost, not
                // the memory's.
                let body = format!(
                    "        let j = (gid.x * 7u + i * 64u) % {WINDOW}u;\n        s += {load};\n"
                );
                (invocations, decl, body, "dot(s, vec4<f32>(1.0))".into())
            }
        };
        let source = format!(
            "@group(0) @binding(0) var<storage, read_write> out: array<f32>;\n\
             @group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;\n\
             @group(0) @binding(2) var tex: texture_2d<f32>;\n\
             @compute @workgroup_size(64)\n\
             fn main(@builtin(global_invocation_id) gid: vec3<u32>) {{\n{declare}\
             for (var i = 0u; i < {STEPS}u; i++) {{\n{body}    }}\n    out[gid.x] = {result};\n}}\n"
        );
        let device = gpu.device();
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("ceiling probe"),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("ceiling probe"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let buffer = |size: u64, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("ceiling probe"),
                size,
                usage,
                mapped_at_creation: false,
            })
        };
        let out = buffer(u64::from(GROUPS) * 64 * 4, wgpu::BufferUsages::STORAGE);
        let src = buffer(u64::from(WINDOW) * 16, wgpu::BufferUsages::STORAGE);
        let texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("ceiling probe"),
            size: wgpu::Extent3d {
                width: SIDE,
                height: WINDOW / SIDE,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba32Float,
            usage: wgpu::TextureUsages::TEXTURE_BINDING,
            view_formats: &[],
        });
        let view = texture.create_view(&Default::default());
        // Bindings the kernel does not use are not in its derived layout.
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: out.as_entire_binding(),
        }];
        match self {
            Probe::Fma => {}
            Probe::StorageLoads => entries.push(wgpu::BindGroupEntry {
                binding: 1,
                resource: src.as_entire_binding(),
            }),
            Probe::TexelLoads => entries.push(wgpu::BindGroupEntry {
                binding: 2,
                resource: wgpu::BindingResource::TextureView(&view),
            }),
        }
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("ceiling probe"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let run = move || {
            let mut encoder = device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &bind_group, &[]);
                pass.dispatch_workgroups(GROUPS, 1, 1);
            }
            gpu.queue().submit([encoder.finish()]);
            device
                .poll(wgpu::PollType::Wait {
                    submission_index: None,
                    timeout: None,
                })
                .unwrap();
        };
        (count, run)
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
