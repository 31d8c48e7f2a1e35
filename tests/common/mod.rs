//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod golden;

use std::sync::OnceLock;

use ndarray::{Array1, Array4, ArrayView4};
use rand::{rngs::StdRng, Rng, SeedableRng};
use segblocks::Gpu;

/// A context of its own with `options`, failing loudly where there is no adapter.
fn context(options: segblocks::GpuOptions) -> Gpu {
    Gpu::with_options(options).unwrap()
}

/// A context of its own whose kernel choice is a GPU's, on whatever adapter runs the
/// tests.
pub fn gpu_class() -> Gpu {
    context(segblocks::GpuOptions {
        device_class: Some(segblocks::DeviceClass::Gpu),
        ..segblocks::GpuOptions::default()
    })
}

/// [`gpu_class`] with every inverted residual that a fused plan fits fused, expanding ones
/// too (`GpuOptions::fuse_expanding_blocks`): the fused kernels in whole networks.
pub fn gpu_class_fused() -> Gpu {
    context(segblocks::GpuOptions {
        device_class: Some(segblocks::DeviceClass::Gpu),
        fuse_expanding_blocks: true,
        ..segblocks::GpuOptions::default()
    })
}

/// A context of its own whose kernel choice is a CPU adapter's (every block as its layers),
/// on whatever adapter runs the tests: for tests that count the layers' dispatches, on a
/// GPU too. Outputs poisoned, as [`gpu`]'s.
pub fn cpu_class() -> Gpu {
    context(segblocks::GpuOptions {
        device_class: Some(segblocks::DeviceClass::Cpu),
        poison_outputs: true,
        ..segblocks::GpuOptions::default()
    })
}

/// The dispatches of a recording, and how many of them are fused blocks (inverted
/// residuals, decoder stages and LR-ASPP heads).
pub fn fused_count(traffic: &segblocks::traffic::Traffic) -> (usize, usize) {
    let fused = traffic
        .dispatches
        .iter()
        .filter(|d| {
            [
                "inverted_residual.wgsl",
                "decoder_stage.wgsl",
                "lraspp_head.wgsl",
            ]
            .contains(&d.kernel)
        })
        .count();
    (traffic.dispatches.len(), fused)
}

/// One context per test binary (pipelines compile once), with poisoned outputs
/// (`GpuOptions::poison_outputs`: every output NaN until its op writes it, so a value a
/// kernel leaves unwritten fails a comparison even where the right value is 0). Fails
/// loudly when there is no adapter: the tests never skip silently.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        match Gpu::with_options(segblocks::GpuOptions {
            poison_outputs: true,
            ..segblocks::GpuOptions::default()
        }) {
            Ok(g) => {
                eprintln!(
                    "testing on {} ({:?}), outputs poisoned",
                    g.adapter_info().name,
                    g.adapter_info().backend
                );
                g
            }
            Err(e) => panic!("{e}"),
        }
    })
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

pub fn random4(rng: &mut StdRng, shape: [usize; 4]) -> Array4<f32> {
    Array4::from_shape_simple_fn(shape, || rng.gen_range(-1.0f32..1.0))
}

pub fn random1(rng: &mut StdRng, len: usize) -> Array1<f32> {
    Array1::from_shape_simple_fn(len, || rng.gen_range(-1.0f32..1.0))
}

/// Integers in `lo..=hi`, as f32: sums of up to 2^24 / max(|lo|, |hi|) of their products
/// with other such values are exact in f32 in any order, so a kernel's output must equal
/// the reference's (see the loop-budget tests).
pub fn integers4(rng: &mut StdRng, shape: [usize; 4], lo: i32, hi: i32) -> Array4<f32> {
    Array4::from_shape_simple_fn(shape, || rng.gen_range(lo..=hi) as f32)
}

/// [`integers4`] for a vector.
pub fn integers1(rng: &mut StdRng, len: usize, lo: i32, hi: i32) -> Array1<f32> {
    Array1::from_shape_simple_fn(len, || rng.gen_range(lo..=hi) as f32)
}

/// `max |got - want| / max |want|` (the error itself where `want` is all zeros; infinite
/// where one has a NaN the other has not): the whole-network tests' measure.
pub fn relative(got: &Array4<f32>, want: &Array4<f32>) -> f32 {
    assert_eq!(got.shape(), want.shape());
    // A NaN where the other holds a number is an infinite error (`f32::max` would skip it).
    if got
        .iter()
        .zip(want.iter())
        .any(|(a, b)| a.is_nan() != b.is_nan())
    {
        return f32::INFINITY;
    }
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let err = got
        .iter()
        .zip(want.iter())
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    // An all-zero reference (a log-softmax over one channel): the error itself.
    if scale == 0.0 {
        return err;
    }
    err / scale
}

/// The 4-d tensor `name` of a golden file, at the shape it is stored with (`None` when
/// the file has no such tensor).
pub fn stored4(sd: &segblocks::StateDict, name: &str) -> Option<Array4<f32>> {
    let s: [usize; 4] = sd.tensor(name)?.shape().try_into().unwrap();
    Some(sd.get4(name, s).unwrap())
}

/// Every output of `net`'s GPU forward on `x`, read back.
pub fn forward_all<A: segblocks::blocks::Architecture>(
    gpu: &Gpu,
    net: &segblocks::blocks::Model<A>,
    x: &Array4<f32>,
) -> Vec<Array4<f32>> {
    let mut rec = gpu.recorder();
    let outs = net
        .forward_all(&mut rec, &gpu.upload(x.view()).unwrap())
        .unwrap();
    rec.download_many(&outs.iter().collect::<Vec<_>>()).unwrap()
}

/// As [`assert_close`], where `want` may hold NaN and infinities (PyTorch's answers on
/// non-finite inputs): those must come back as they are, NaN for NaN and the same
/// infinity; finite values within `bound`.
pub fn assert_close_non_finite(
    got: ArrayView4<f32>,
    want: ArrayView4<f32>,
    bound: ArrayView4<f32>,
    what: &str,
) {
    assert_each_within(got, want, bound, what, |g, w, b| {
        if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= b
        }
    });
}

/// Asserts `|got - want| <= bound` elementwise, printing the first offenders.
pub fn assert_close(
    got: ArrayView4<f32>,
    want: ArrayView4<f32>,
    bound: ArrayView4<f32>,
    what: &str,
) {
    // Written so that NaN fails: a NaN difference is not within any bound.
    assert_each_within(got, want, bound, what, |g, w, b| (g - w).abs() <= b);
}

/// Asserts `within(got, want, bound)` for every value, printing the first offenders.
fn assert_each_within(
    got: ArrayView4<f32>,
    want: ArrayView4<f32>,
    bound: ArrayView4<f32>,
    what: &str,
    within: impl Fn(f32, f32, f32) -> bool,
) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let mut bad = Vec::new();
    for ((idx, &g), (&w, &b)) in got.indexed_iter().zip(want.iter().zip(bound.iter())) {
        if !within(g, w, b) {
            bad.push(format!("{idx:?}: got {g}, want {w} (bound {b})"));
        }
    }
    assert!(
        bad.is_empty(),
        "{what}: {} of {} values differ, first: {:?}",
        bad.len(),
        got.len(),
        &bad[..bad.len().min(5)]
    );
}
