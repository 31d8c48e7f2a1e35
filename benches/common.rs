//! Shared by the benchmarks: the GPU, deterministic inputs, and the timed step that the
//! peers time too (fresh input upload, the op, full readback).
#![allow(dead_code)]

use criterion::{BenchmarkGroup, Throughput};
use ndarray::Array4;
use segblocks::{Gpu, Recorder, Result, Tensor};

pub fn gpu() -> Gpu {
    let gpu = Gpu::new().expect("a GPU adapter (install mesa-vulkan-drivers for lavapipe)");
    eprintln!(
        "adapter: {} ({:?})",
        gpu.adapter_info().name,
        gpu.adapter_info().backend
    );
    gpu
}

/// A context for each workgroup reduction (`GpuOptions::subgroups`), labelled; the
/// subgroup one only where the adapter has subgroups.
pub fn reduction_contexts() -> Vec<(&'static str, Gpu)> {
    [("workgroup", false), ("subgroup", true)]
        .into_iter()
        .filter_map(|(label, subgroups)| {
            let options = segblocks::GpuOptions {
                subgroups: Some(subgroups),
                ..segblocks::GpuOptions::default()
            };
            match Gpu::with_options(options) {
                Ok(gpu) => Some((label, gpu)),
                Err(e) => {
                    eprintln!("{label} reductions: {e}");
                    None
                }
            }
        })
        .collect()
}

pub fn input(shape: [usize; 4]) -> Array4<f32> {
    Array4::from_shape_fn(shape, |(n, c, h, w)| {
        ((n * 3 + c * 5 + h * 3 + w) % 17) as f32 * 0.1 - 0.8
    })
}

pub fn group<'a>(
    c: &'a mut criterion::Criterion,
    name: &str,
) -> BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10);
    g.warm_up_time(std::time::Duration::from_millis(500));
    g.measurement_time(std::time::Duration::from_secs(2));
    g
}

/// Times `op` on a fresh upload of `x`, reading the whole output back, with throughput in
/// bytes (`bytes`) so criterion reports GB/s.
pub fn bench_bytes(
    g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    gpu: &Gpu,
    name: &str,
    x: &Array4<f32>,
    bytes: u64,
    op: impl Fn(&mut Recorder<'_>, &Tensor) -> Result<Tensor>,
) {
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function(name, |b| {
        b.iter(|| {
            let xt = gpu.upload(x.view()).unwrap();
            let mut rec = gpu.recorder();
            let y = op(&mut rec, &xt).unwrap();
            rec.download(&y).unwrap()
        })
    });
}

/// The yardstick for memory-bound ops: a plain buffer-copy kernel on the same adapter, in
/// the same run, timed the same way.
pub fn bench_copy(
    g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    gpu: &Gpu,
    shape: [usize; 4],
) {
    let x = input(shape);
    let bytes = segblocks::ops::copy::cost(shape).bytes;
    bench_bytes(
        g,
        gpu,
        &format!("copy_{}x{}x{}", shape[1], shape[2], shape[3]),
        &x,
        bytes,
        segblocks::ops::copy::copy,
    );
}
