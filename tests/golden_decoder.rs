//! Golden tests for the decoder ops: the CPU reference and the GPU against PyTorch.
//!
//! `tests/golden/decoder.json` holds PyTorch's float32 results on small random tensors for
//! `F.conv_transpose2d` (+ activation), `F.max_pool2d(..., return_indices=True)`,
//! `F.max_unpool2d`, `F.interpolate` (nearest, nearest-exact; bilinear and bicubic with
//! `align_corners` on and off; `recompute_scale_factor`),
//! `F.adaptive_avg_pool2d` and `F.adaptive_max_pool2d(x, 1)`; it is written by
//! `tests/golden/make_golden_decoder.py` (see that script for the cases, the encoding and
//! how to regenerate). The other tests check the GPU against `segblocks::reference`; these
//! pin the reference itself (and the GPU, independently) to PyTorch's semantics, including
//! its rules for ties, NaN, infinities and repeated unpooling indices.
//!
//! Every case checks three things: the op's `output_shape` equals PyTorch's, the reference
//! equals PyTorch, the GPU equals PyTorch. Failures are collected over all cases of a test
//! and reported together.

mod common;

use common::golden::{
    activation, array, assert_no_failures, assert_unique_names, bias_values, bool_of, cases,
    compare, field, floats, gpu, shaped, str_of, usize_field, usize_of, usizes, usizes_of, Tol,
};
use ndarray::{Array1, Array4, ArrayView4};
use segblocks::ops::conv_transpose::{ConvTranspose2d, ConvTranspose2dParams, ConvTransposeKernel};
use segblocks::ops::pool::{
    global_pool_with, AdaptiveAvgPool2dParams, AdaptiveMaxPool2dParams, GlobalPool,
    GlobalPoolKernel, MaxPool2dParams, MaxUnpool2dParams,
};
use segblocks::ops::upsample::{
    select_kernel as select_upsample_kernel, upsample_with, UpsampleKernel, UpsampleMode,
    UpsampleParams,
};
use segblocks::ops::Activation;
use segblocks::reference;
use serde_json::Value;

const GOLDEN: &str = include_str!("golden/decoder.json");

/// Transposed convolution, reference vs PyTorch: `|got - want| <= 1e-5 * (1 + |want|)`.
/// The reference accumulates in f64 and rounds once; PyTorch accumulates in f32 in its own
/// order, a few ulps off (`make_golden_decoder.py` asserts it is within 1e-6 of an f64
/// evaluation). Relative 1e-5 is ~80 f32 ulps: far above that rounding, far below any
/// wrong tap, phase, padding or activation.
const CONV_T_REFERENCE_TOL: f32 = 1e-5;

/// Transposed convolution, GPU vs PyTorch: `1e-4 * (1 + |want|)`. The GPU sums in f32 in
/// yet another order and its `exp` (sigmoid) is not correctly rounded; the sums here have
/// at most a few dozen terms, so 1e-4 leaves plenty of room while still catching wrong taps.
const CONV_T_GPU_TOL: f32 = 1e-4;

/// Bilinear interpolation and averages (reference and GPU): `1e-6 * (1 + |want|)`.
/// Bilinear source positions and weights come from PyTorch's own f32 formulas and are
/// bit-identical; the blend is the same handful of f32 operations, which may still differ
/// in the last bits where a compiler contracts a multiply-add into an FMA or evaluates in
/// another order. Averages are sums of at most 35 values: PyTorch sums in f32 and divides
/// by the window height then width, the reference sums in f64, the GPU in f32 (Kahan for
/// the global mean); all within a few ulps. 1e-6 is ~8 ulps of a value near 1: a wrong
/// tap, weight or window moves results by orders of magnitude more.
const BLEND_TOL: f32 = 1e-6;

/// Bicubic interpolation (reference and GPU): `4e-6 * (1 + |want|)`. Taps and weights
/// follow PyTorch's f32 formulas, but each output sums 16 products whose weights have
/// negative lobes, so rounding differences are a few ulps of the *inputs* (randn, up to
/// ~3.5 here), not of the output: measured up to 1.8e-6 against PyTorch (the reference and
/// the GPU agree with each other exactly). A wrong tap or weight moves results by 1e-2
/// or more.
const CUBIC_TOL: f32 = 4e-6;

/// What a case runs.
enum Op {
    ConvTranspose {
        params: ConvTranspose2dParams,
        weight: Array4<f32>,
        bias: Option<Array1<f32>>,
    },
    /// `indices` has the output's shape.
    MaxPool {
        params: MaxPool2dParams,
        indices: Array4<i64>,
    },
    /// `indices` has the input's shape.
    MaxUnpool {
        params: MaxUnpool2dParams,
        indices: Array4<i64>,
    },
    Upsample {
        params: UpsampleParams,
    },
    /// Also run as [`GlobalPool::Avg`] when the output size is 1x1.
    AdaptiveAvg {
        params: AdaptiveAvgPool2dParams,
    },
    /// `F.adaptive_max_pool2d(x, output_size, return_indices=True)`; also run as
    /// [`GlobalPool::Max`] (values only) when the output size is 1x1. `indices` has the
    /// output's shape.
    AdaptiveMax {
        params: AdaptiveMaxPool2dParams,
        indices: Array4<i64>,
    },
    /// `F.pixel_shuffle` (or `F.pixel_unshuffle`) with `factor`.
    PixelShuffle {
        factor: usize,
        unshuffle: bool,
    },
}

/// Op families, for the per-family tests and the coverage check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    ConvTranspose,
    MaxPool,
    MaxUnpool,
    Upsample,
    AdaptivePool,
}

impl Family {
    const ALL: [Family; 5] = [
        Family::ConvTranspose,
        Family::MaxPool,
        Family::MaxUnpool,
        Family::Upsample,
        Family::AdaptivePool,
    ];
}

struct Case {
    name: String,
    op: Op,
    input_shape: [usize; 4],
    output_shape: [usize; 4],
    input: Array4<f32>,
    output: Array4<f32>,
}

impl Case {
    fn family(&self) -> Family {
        match self.op {
            Op::ConvTranspose { .. } => Family::ConvTranspose,
            Op::MaxPool { .. } => Family::MaxPool,
            Op::MaxUnpool { .. } => Family::MaxUnpool,
            Op::Upsample { .. } | Op::PixelShuffle { .. } => Family::Upsample,
            Op::AdaptiveAvg { .. } | Op::AdaptiveMax { .. } => Family::AdaptivePool,
        }
    }

    /// The ways this case is run: usually one, two for an adaptive average to 1x1
    /// (`AdaptiveAvgPool2dParams` and `GlobalPool::Avg`).
    fn runs(&self) -> Vec<Run> {
        match &self.op {
            Op::ConvTranspose { .. } => vec![Run::ConvTranspose],
            Op::MaxPool { .. } => vec![Run::MaxPool],
            Op::MaxUnpool { .. } => vec![Run::MaxUnpool],
            Op::Upsample { .. } => vec![Run::Upsample],
            Op::AdaptiveAvg { params } if params.output_size == (Some(1), Some(1)) => {
                vec![Run::AdaptiveAvg, Run::Global(GlobalPool::Avg)]
            }
            Op::AdaptiveAvg { .. } => vec![Run::AdaptiveAvg],
            Op::AdaptiveMax { params, .. } if params.output_size == (Some(1), Some(1)) => {
                vec![Run::AdaptiveMax, Run::Global(GlobalPool::Max)]
            }
            Op::AdaptiveMax { .. } => vec![Run::AdaptiveMax],
            Op::PixelShuffle { .. } => vec![Run::PixelShuffle],
        }
    }

    fn describe(&self) -> String {
        let what = match &self.op {
            Op::ConvTranspose { params: p, .. } => format!(
                "C_in {} C_out {} k {:?} s {:?} p {:?} op {:?} d {:?} g {} bias {} act {:?}",
                p.in_channels,
                p.out_channels,
                p.kernel_size,
                p.stride,
                p.padding,
                p.output_padding,
                p.dilation,
                p.groups,
                p.bias,
                p.activation
            ),
            Op::MaxPool { params, .. } => format!("{params:?}"),
            Op::MaxUnpool { params, .. } => format!("{params:?}"),
            Op::Upsample { params } => format!("{params:?}"),
            Op::AdaptiveAvg { params } => format!("{params:?}"),
            Op::AdaptiveMax { params, .. } => format!("{params:?}"),
            Op::PixelShuffle { factor, unshuffle } => {
                format!("pixel shuffle factor {factor}, inverse {unshuffle}")
            }
        };
        format!("[{what}, input {:?}]", self.input_shape)
    }
}

#[derive(Clone, Copy, Debug)]
enum Run {
    ConvTranspose,
    MaxPool,
    MaxUnpool,
    Upsample,
    AdaptiveAvg,
    AdaptiveMax,
    PixelShuffle,
    Global(GlobalPool),
}

impl Run {
    fn tol(self, case: &Case, gpu: bool) -> Tol {
        match (self, &case.op) {
            (Run::ConvTranspose, _) if gpu => Tol::Rel(CONV_T_GPU_TOL),
            (Run::ConvTranspose, _) => Tol::Rel(CONV_T_REFERENCE_TOL),
            (Run::Upsample, Op::Upsample { params })
                if matches!(
                    params.mode,
                    UpsampleMode::Nearest | UpsampleMode::NearestExact
                ) =>
            {
                Tol::Exact
            }
            // PyTorch's antialiased path computes its window centres and weights in f32
            // (the reference in f64, the GPU's host-built tables in f32 as PyTorch): a
            // centre's rounding grows with its coordinate, about eps * side, which at 80
            // pixels a side (a fuzzed upscale of 45 rows by 1.75) moved outputs by 9e-6.
            (Run::Upsample, Op::Upsample { params }) if params.antialias && !gpu => {
                let side = case.input_shape[2..]
                    .iter()
                    .chain(&case.output_shape[2..])
                    .max()
                    .copied()
                    .unwrap_or(1);
                Tol::Rel(CUBIC_TOL.max(2.0 * f32::EPSILON * side as f32))
            }
            (Run::Upsample, Op::Upsample { params })
                if matches!(params.mode, UpsampleMode::Bicubic { .. }) || params.antialias =>
            {
                Tol::Rel(CUBIC_TOL)
            }
            (Run::Upsample, _) | (Run::AdaptiveAvg, _) | (Run::Global(GlobalPool::Avg), _) => {
                Tol::Rel(BLEND_TOL)
            }
            (Run::MaxPool, _)
            | (Run::MaxUnpool, _)
            | (Run::AdaptiveMax, _)
            | (Run::PixelShuffle, _)
            | (Run::Global(GlobalPool::Max), _) => Tol::Exact,
        }
    }
}

/// A run's result: values, and indices for max pooling.
struct Output {
    values: Array4<f32>,
    indices: Option<Array4<i64>>,
}

// ----------------------------------------------------------------------------------------
// Loading

/// The field `key`, a flat list of integers (pooling indices), as an array of `shape`.
fn index_array4(case: &Value, name: &str, key: &str, shape: [usize; 4]) -> Array4<i64> {
    let data: Vec<i64> = field(case, name, key)
        .as_array()
        .unwrap_or_else(|| panic!("case {name}: {key:?} is not an array"))
        .iter()
        .map(|x| {
            x.as_i64()
                .unwrap_or_else(|| panic!("case {name}: {key:?} holds a non-integer: {x}"))
        })
        .collect();
    shaped(data, name, key, shape)
}

/// A pair whose entries may be null (`None`: keep the input's size).
fn optional_pair(case: &Value, name: &str, key: &str) -> (Option<usize>, Option<usize>) {
    let list = field(case, name, key)
        .as_array()
        .unwrap_or_else(|| panic!("case {name}: {key:?} is not a list"));
    assert_eq!(list.len(), 2, "case {name}: {key:?}");
    let entry = |v: &Value| (!v.is_null()).then(|| usize_of(v, name, key));
    (entry(&list[0]), entry(&list[1]))
}

fn load_op(c: &Value, n: &str, input_shape: [usize; 4], output_shape: [usize; 4]) -> Op {
    match str_of(c, n, "op") {
        "conv_transpose2d" => {
            let has_bias = bool_of(c, n, "bias");
            let params = ConvTranspose2dParams::new(
                usize_field(c, n, "in_channels"),
                usize_field(c, n, "out_channels"),
                usizes::<2>(c, n, "kernel_size"),
            )
            .stride(usizes::<2>(c, n, "stride"))
            .padding(usizes::<2>(c, n, "padding"))
            .output_padding(usizes::<2>(c, n, "output_padding"))
            .dilation(usizes::<2>(c, n, "dilation"))
            .groups(usize_field(c, n, "groups"))
            .bias(has_bias)
            .activation(activation(str_of(c, n, "activation"), n));
            let bias = bias_values(c, n, has_bias, params.out_channels, floats);
            Op::ConvTranspose {
                weight: array(c, n, "weight", params.weight_shape()),
                params,
                bias,
            }
        }
        "max_pool2d" => Op::MaxPool {
            params: MaxPool2dParams::new(usizes::<2>(c, n, "kernel_size"))
                .stride(usizes::<2>(c, n, "stride"))
                .padding(usizes::<2>(c, n, "padding"))
                .dilation(usizes::<2>(c, n, "dilation"))
                .ceil_mode(bool_of(c, n, "ceil_mode")),
            indices: index_array4(c, n, "indices", output_shape),
        },
        "max_unpool2d" => {
            let mut params = MaxUnpool2dParams::new(usizes::<2>(c, n, "kernel_size"))
                .stride(usizes::<2>(c, n, "stride"))
                .padding(usizes::<2>(c, n, "padding"));
            match field(c, n, "output_size") {
                Value::Null => {}
                v => params = params.output_size(usizes_of::<2>(v, n, "output_size")),
            }
            Op::MaxUnpool {
                params,
                indices: index_array4(c, n, "indices", input_shape),
            }
        }
        "interpolate" => {
            let base = match str_of(c, n, "mode") {
                "nearest" => UpsampleParams::nearest(),
                "nearest-exact" => UpsampleParams::nearest_exact(),
                "bilinear" => UpsampleParams::bilinear(bool_of(c, n, "align_corners")),
                "bicubic" => UpsampleParams::bicubic(bool_of(c, n, "align_corners")),
                "area" => UpsampleParams::area(),
                other => panic!("case {n}: unknown interpolation mode {other:?}"),
            };
            let params = match (field(c, n, "size"), field(c, n, "scale_factor")) {
                (Value::Null, Value::Null) => panic!("case {n}: neither size nor scale_factor"),
                (size, Value::Null) => base.size(usizes_of::<2>(size, n, "size")),
                (Value::Null, scale) => {
                    let f = scale
                        .as_array()
                        .and_then(|a| Some((a.first()?.as_f64()?, a.get(1)?.as_f64()?)))
                        .unwrap_or_else(|| panic!("case {n}: bad scale_factor {scale}"));
                    base.scale_factors(f)
                }
                _ => panic!("case {n}: both size and scale_factor"),
            };
            let params = params
                .recompute_scale_factor(bool_of(c, n, "recompute_scale_factor"))
                .antialias(c.get("antialias").is_some_and(|v| v == true));
            Op::Upsample { params }
        }
        "adaptive_avg_pool2d" => Op::AdaptiveAvg {
            params: AdaptiveAvgPool2dParams::with_optional(optional_pair(c, n, "output_size")),
        },
        op @ ("pixel_shuffle" | "pixel_unshuffle") => Op::PixelShuffle {
            factor: usize_field(c, n, "factor"),
            unshuffle: op == "pixel_unshuffle",
        },
        "adaptive_max_pool2d" => Op::AdaptiveMax {
            params: AdaptiveMaxPool2dParams::with_optional(optional_pair(c, n, "output_size")),
            indices: index_array4(c, n, "indices", output_shape),
        },
        other => panic!("case {n}: unknown op {other:?}"),
    }
}

fn load_cases() -> Vec<Case> {
    cases(GOLDEN, "tests/golden/decoder.json")
        .iter()
        .map(|c| {
            let name = str_of(c, "?", "name").to_string();
            let n = name.as_str();
            let input_shape = usizes::<4>(c, n, "input_shape");
            let output_shape = usizes::<4>(c, n, "output_shape");
            Case {
                op: load_op(c, n, input_shape, output_shape),
                input: array(c, n, "input", input_shape),
                output: array(c, n, "output", output_shape),
                name,
                input_shape,
                output_shape,
            }
        })
        .collect()
}

// ----------------------------------------------------------------------------------------
// Running

fn run_output_shape(c: &Case, run: Run) -> segblocks::Result<[usize; 4]> {
    let s = c.input_shape;
    match (run, &c.op) {
        (Run::ConvTranspose, Op::ConvTranspose { params, .. }) => params.output_shape(s),
        (Run::MaxPool, Op::MaxPool { params, .. }) => params.output_shape(s),
        (Run::MaxUnpool, Op::MaxUnpool { params, .. }) => params.output_shape(s),
        (Run::Upsample, Op::Upsample { params }) => params.output_shape(s),
        (Run::AdaptiveAvg, Op::AdaptiveAvg { params }) => params.output_shape(s),
        (Run::AdaptiveMax, Op::AdaptiveMax { params, .. }) => params.output_shape(s),
        (Run::PixelShuffle, Op::PixelShuffle { factor, unshuffle }) => match unshuffle {
            false => segblocks::ops::upsample::pixel_shuffle_shape(s, *factor),
            true => segblocks::ops::upsample::pixel_unshuffle_shape(s, *factor),
        },
        (Run::Global(kind), _) => kind.output_shape(s),
        _ => unreachable!("run {run:?} does not belong to case {}", c.name),
    }
}

fn run_reference(c: &Case, run: Run) -> segblocks::Result<Output> {
    let x = c.input.view();
    let values = |values| Output {
        values,
        indices: None,
    };
    match (run, &c.op) {
        (
            Run::ConvTranspose,
            Op::ConvTranspose {
                params,
                weight,
                bias,
            },
        ) => reference::conv_transpose::conv_transpose2d(
            params,
            x,
            weight.view(),
            bias.as_ref().map(|b| b.view()),
        )
        .map(values),
        (Run::MaxPool, Op::MaxPool { params, .. }) => {
            let (v, i) = reference::pool::max_pool2d(params, x)?;
            Ok(Output {
                values: v,
                indices: Some(i),
            })
        }
        (Run::MaxUnpool, Op::MaxUnpool { params, indices }) => {
            reference::pool::max_unpool2d(params, x, indices.view()).map(values)
        }
        (Run::Upsample, Op::Upsample { params }) => {
            reference::upsample::upsample(params, x).map(values)
        }
        (Run::AdaptiveAvg, Op::AdaptiveAvg { params }) => {
            reference::pool::adaptive_avg_pool2d(params, x).map(values)
        }
        (Run::PixelShuffle, Op::PixelShuffle { factor, unshuffle }) => match unshuffle {
            false => reference::upsample::pixel_shuffle(x, *factor).map(values),
            true => reference::upsample::pixel_unshuffle(x, *factor).map(values),
        },
        (Run::AdaptiveMax, Op::AdaptiveMax { params, .. }) => {
            let (v, i) = reference::pool::adaptive_max_pool2d(params, x)?;
            Ok(Output {
                values: v,
                indices: Some(i),
            })
        }
        (Run::Global(kind), _) => reference::pool::global_pool(kind, x).map(values),
        _ => unreachable!("run {run:?} does not belong to case {}", c.name),
    }
}

/// Runs `c` with each of `kernels` (each in a fresh recording) and returns the output
/// farthest from PyTorch's (relative error; NaN counts as farthest): the comparison that
/// follows then covers every kernel.
fn farthest<K>(
    c: &Case,
    kernels: impl IntoIterator<Item = K>,
    run: impl Fn(&mut segblocks::Recorder<'_>, K) -> segblocks::Result<segblocks::Tensor>,
) -> segblocks::Result<Array4<f32>> {
    let err = |got: &Array4<f32>| {
        got.iter()
            .zip(c.output.iter())
            .map(|(g, w)| (g - w).abs() / (1.0 + w.abs()))
            .fold(
                0.0f32,
                |m, e| if e.is_nan() { f32::INFINITY } else { m.max(e) },
            )
    };
    let gpu = gpu("golden_decoder");
    let mut outputs = Vec::new();
    for kernel in kernels {
        let mut rec = gpu.recorder();
        let y = run(&mut rec, kernel)?;
        outputs.push(rec.download(&y)?);
    }
    Ok(outputs
        .into_iter()
        .max_by(|a, b| err(a).total_cmp(&err(b)))
        .expect("at least one kernel supports every case"))
}

fn run_gpu(c: &Case, run: Run) -> segblocks::Result<Output> {
    let gpu = gpu("golden_decoder");
    let xt = gpu.upload(c.input.view())?;
    // Fresh (zeroed) buffers: a recycled output of the previous variant (the adaptive pool
    // before the global one on the same case) would hide values this one fails to write.
    gpu.trim_pool();
    let values = |values| Output {
        values,
        indices: None,
    };
    match (run, &c.op) {
        (
            Run::ConvTranspose,
            Op::ConvTranspose {
                params,
                weight,
                bias,
            },
        ) => {
            // Every kernel that supports the case (the GPU class's and this adapter's).
            let layer =
                ConvTranspose2d::new(gpu, *params, weight.view(), bias.as_ref().map(|b| b.view()))?;
            let kernels = ConvTransposeKernel::ALL
                .into_iter()
                .filter(|k| k.supports(params, c.input_shape));
            farthest(c, kernels, |rec, k| layer.forward_with(rec, &xt, k)).map(values)
        }
        (Run::MaxPool, Op::MaxPool { params, .. }) => {
            let mut rec = gpu.recorder();
            let (v, i) = segblocks::ops::pool::max_pool2d(&mut rec, params, &xt)?;
            rec.submit()?;
            Ok(Output {
                values: gpu.download(&v)?,
                indices: Some(gpu.download_indices(&i)?),
            })
        }
        (Run::MaxUnpool, Op::MaxUnpool { params, indices }) => {
            let it = gpu.upload_indices(indices.view())?;
            let mut rec = gpu.recorder();
            let y = segblocks::ops::pool::max_unpool2d(&mut rec, params, &xt, &it)?;
            rec.download(&y).map(values)
        }
        (Run::Upsample, Op::Upsample { params }) => {
            // The kernel the library picks and the tap kernel, which runs every mode.
            let picked = select_upsample_kernel(params, c.input_shape);
            let mut kernels = vec![picked];
            let taps = UpsampleKernel::Taps;
            if picked != taps && taps.supports(params, c.input_shape) {
                kernels.push(taps);
            }
            farthest(c, kernels, |rec, k| upsample_with(rec, params, &xt, k)).map(values)
        }
        (Run::AdaptiveAvg, Op::AdaptiveAvg { params }) => {
            let mut rec = gpu.recorder();
            let y = segblocks::ops::pool::adaptive_avg_pool2d(&mut rec, params, &xt)?;
            rec.download(&y).map(values)
        }
        (Run::PixelShuffle, Op::PixelShuffle { factor, unshuffle }) => {
            use segblocks::ops::upsample::{pixel_shuffle, pixel_unshuffle};
            let mut rec = gpu.recorder();
            let y = match unshuffle {
                false => pixel_shuffle(&mut rec, &xt, *factor)?,
                true => pixel_unshuffle(&mut rec, &xt, *factor)?,
            };
            rec.download(&y).map(values)
        }
        (Run::AdaptiveMax, Op::AdaptiveMax { params, .. }) => {
            let mut rec = gpu.recorder();
            let (v, i) = segblocks::ops::pool::adaptive_max_pool2d(&mut rec, params, &xt)?;
            rec.submit()?;
            Ok(Output {
                values: gpu.download(&v)?,
                indices: Some(gpu.download_indices(&i)?),
            })
        }
        (Run::Global(kind), _) => {
            let kernels = GlobalPoolKernel::ALL
                .into_iter()
                .filter(|k| k.supports(c.input_shape));
            farthest(c, kernels, |rec, k| global_pool_with(rec, kind, &xt, k)).map(values)
        }
        _ => unreachable!("run {run:?} does not belong to case {}", c.name),
    }
}

// ----------------------------------------------------------------------------------------
// Comparing

/// `None` when the indices are equal, else the first mismatch and how many there are.
fn compare_indices(
    got: ArrayView4<i64>,
    want: ArrayView4<i64>,
    values: ArrayView4<f32>,
) -> Option<String> {
    if got.shape() != want.shape() {
        return Some(format!(
            "indices shape {:?}, want {:?}",
            got.shape(),
            want.shape()
        ));
    }
    let mut bad = 0usize;
    let mut first = None;
    for (((idx, &g), &w), &v) in got.indexed_iter().zip(want.iter()).zip(values.iter()) {
        if g != w {
            bad += 1;
            first.get_or_insert(format!("at {idx:?} (PyTorch value {v}): got {g}, want {w}"));
        }
    }
    first.map(|f| format!("{bad} of {} indices differ; first {f}", got.len()))
}

/// Checks one run of every case of `family` on one side (reference or GPU) and panics with
/// every failure at the end.
fn check_family(family: Family, gpu: bool) {
    let side = if gpu { "GPU" } else { "reference" };
    let mut failures = Vec::new();
    let mut runs = 0;
    for c in load_cases().iter().filter(|c| c.family() == family) {
        for run in c.runs() {
            runs += 1;
            let tol = run.tol(c, gpu);
            let got = if gpu {
                run_gpu(c, run)
            } else {
                run_reference(c, run)
            };
            let msg = match got {
                Err(e) => Some(format!("error: {e}")),
                Ok(out) => {
                    let (rel, mut msg) = compare(out.values.view(), c.output.view(), tol);
                    let want_i = match &c.op {
                        Op::MaxPool { indices, .. } | Op::AdaptiveMax { indices, .. } => {
                            Some(indices)
                        }
                        _ => None,
                    };
                    if let (Some(indices), Some(got_i)) = (want_i, &out.indices) {
                        if let Some(m) =
                            compare_indices(got_i.view(), indices.view(), c.output.view())
                        {
                            msg = Some(match msg {
                                Some(v) => format!("{v}; {m}"),
                                None => m,
                            });
                        }
                    }
                    eprintln!(
                        "golden_decoder: {side:9} {:13} {:40} max rel err {rel:.2e} ({tol:?})",
                        format!("{run:?}"),
                        c.name
                    );
                    msg
                }
            };
            if let Some(msg) = msg {
                failures.push(format!(
                    "{} {}: {side} ({run:?}) vs PyTorch: {msg}",
                    c.name,
                    c.describe()
                ));
            }
        }
    }
    assert!(
        runs > 0 || common::golden::fuzzing(),
        "no golden cases for {family:?}"
    );
    assert_no_failures(&failures);
}

// ----------------------------------------------------------------------------------------
// Tests

#[test]
fn golden_cases_cover_the_brief() {
    let cases = load_cases();
    assert_unique_names(cases.iter().map(|c| c.name.as_str()));
    for f in Family::ALL {
        assert!(
            cases.iter().any(|c| c.family() == f),
            "no golden case for {f:?}"
        );
    }
    let any = |pred: &dyn Fn(&Case) -> bool, what: &str| {
        assert!(cases.iter().any(pred), "no golden case with {what}");
    };
    let convt = |c: &Case, pred: &dyn Fn(&ConvTranspose2dParams) -> bool| matches!(&c.op, Op::ConvTranspose { params, .. } if pred(params));
    for a in [Activation::None, Activation::Relu, Activation::Sigmoid] {
        any(
            &|c| convt(c, &|p| p.activation == a),
            &format!("conv_transpose {a:?}"),
        );
    }
    any(
        &|c| convt(c, &|p| p.output_padding != (0, 0)),
        "output_padding",
    );
    any(
        &|c| convt(c, &|p| p.stride.0 != p.stride.1),
        "asymmetric stride",
    );
    any(
        &|c| convt(c, &|p| p.groups > 1 && p.groups == p.in_channels),
        "depthwise transpose",
    );
    any(
        &|c| convt(c, &|p| p.groups > 1 && p.in_per_group() > 1),
        "grouped transpose",
    );
    any(
        &|c| convt(c, &|p| p.dilation != (1, 1)),
        "dilated transpose",
    );
    any(&|c| convt(c, &|p| !p.bias), "transpose without bias");
    any(&|c| convt(c, &|p| p.stride == (8, 8)), "FCN 8x transpose");
    let pool = |c: &Case, pred: &dyn Fn(&MaxPool2dParams) -> bool| matches!(&c.op, Op::MaxPool { params, .. } if pred(params));
    any(&|c| pool(c, &|p| p.ceil_mode), "ceil-mode pooling");
    any(&|c| pool(c, &|p| p.dilation != (1, 1)), "dilated pooling");
    any(
        &|c| pool(c, &|p| p.stride < p.kernel_size),
        "overlapping pooling",
    );
    any(
        &|c| pool(c, &|p| p.kernel_size.0 != p.kernel_size.1),
        "non-square pooling",
    );
    let pool_input = |c: &Case, pred: &dyn Fn(f32) -> bool| {
        matches!(c.op, Op::MaxPool { .. }) && c.input.iter().any(|&v| pred(v))
    };
    any(&|c| pool_input(c, &f32::is_nan), "NaN in a pooling input");
    any(
        &|c| pool_input(c, &|v| v == f32::NEG_INFINITY),
        "-inf in a pooling input",
    );
    any(
        &|c| c.output.iter().any(|&v| v == f32::NEG_INFINITY),
        "an all -inf window",
    );
    any(
        &|c| global_max(c) && c.input.iter().any(|v| v.is_nan()),
        "NaN in global max",
    );
    any(
        &|c| matches!(c.op, Op::AdaptiveMax { .. }) && !global_max(c),
        "adaptive max to a size other than 1x1",
    );
    any(
        &|c| {
            matches!(&c.op, Op::AdaptiveMax { params, .. }
                if params.output_size.0.is_none() || params.output_size.1.is_none())
        },
        "adaptive max keeping an axis (None)",
    );
    any(
        &|c| matches!(c.op, Op::AdaptiveMax { .. }) && c.input_shape[2] * c.input_shape[3] > 4096,
        "adaptive max with bins too large for one pass",
    );
    // Ties: a pooling window whose maximum occurs at several positions.
    any(
        &|c| match &c.op {
            Op::MaxPool { params, .. } => has_tied_window(c, params),
            _ => false,
        },
        "a pooling window with a tied maximum",
    );
    // Repeated unpooling indices, with different values (so the winner matters).
    any(
        &|c| match &c.op {
            Op::MaxUnpool { indices, .. } => has_conflicting_duplicates(c, indices),
            _ => false,
        },
        "unpooling indices repeated with different values",
    );
    any(
        &|c| matches!(&c.op, Op::MaxUnpool { params, .. } if params.output_size.is_some()),
        "unpooling with an explicit output_size",
    );
    let up = |c: &Case, pred: &dyn Fn(&UpsampleParams) -> bool| matches!(&c.op, Op::Upsample { params } if pred(params));
    for mode in [
        UpsampleMode::Nearest,
        UpsampleMode::Bilinear {
            align_corners: false,
        },
        UpsampleMode::Bilinear {
            align_corners: true,
        },
    ] {
        any(
            &|c| up(c, &|p| p.mode == mode && p.size.is_some()),
            &format!("{mode:?} with size"),
        );
        any(
            &|c| up(c, &|p| p.mode == mode && p.scale_factor.is_some()),
            &format!("{mode:?} with scale_factor"),
        );
    }
    any(
        &|c| up(c, &|p| p.size == Some((1, 1))),
        "a 1x1 interpolation output",
    );
    any(
        &|c| matches!(&c.op, Op::AdaptiveAvg { params } if params.output_size == (Some(1), Some(1))),
        "global average",
    );
    any(
        &|c| {
            matches!(&c.op, Op::AdaptiveAvg { params }
                if params.output_size.0.is_some_and(|oh| oh > c.input_shape[2]))
        },
        "adaptive average with overlapping (upsampling) windows",
    );
    for mode in ["Bilinear", "Bicubic"] {
        for down in [false, true] {
            any(
                &|c| {
                    up(c, &|p| {
                        p.antialias && format!("{:?}", p.mode).starts_with(mode)
                    }) && (c.output_shape[2] < c.input_shape[2]) == down
                },
                &format!("antialiased {mode}, downsampling {down}"),
            );
        }
    }
    for unshuffle in [false, true] {
        any(
            &|c| matches!(&c.op, Op::PixelShuffle { unshuffle: u, factor } if *u == unshuffle && *factor > 2),
            &format!("pixel shuffle (inverse {unshuffle}) by 3"),
        );
    }
    for (what, scaled) in [("size", false), ("scale_factor", true)] {
        any(
            &|c| {
                up(c, &|p| {
                    p.mode == UpsampleMode::Area && p.scale_factor.is_some() == scaled
                })
            },
            &format!("area interpolation with {what}"),
        );
    }
    for axis in 0..2 {
        any(
            &|c| {
                matches!(&c.op, Op::AdaptiveAvg { params }
                    if [params.output_size.0, params.output_size.1][axis].is_none())
            },
            &format!("adaptive average keeping axis {axis} (None)"),
        );
    }
}

/// Whether the case is adaptive max pooling to 1x1 (global max).
fn global_max(c: &Case) -> bool {
    matches!(&c.op, Op::AdaptiveMax { params, .. } if params.output_size == (Some(1), Some(1)))
}

/// Whether some window of a max-pooling case holds its (non-NaN) maximum twice.
fn has_tied_window(c: &Case, p: &MaxPool2dParams) -> bool {
    let [n, ch, h, w] = c.input_shape;
    let [_, _, oh, ow] = c.output_shape;
    (0..n * ch * oh * ow).any(|o| {
        let (ox, oy, plane) = (o % ow, (o / ow) % oh, o / (ow * oh));
        let (b, cc) = (plane / ch, plane % ch);
        let best = c.output[[b, cc, oy, ox]];
        let mut hits = 0;
        for ky in 0..p.kernel_size.0 {
            for kx in 0..p.kernel_size.1 {
                let iy = (oy * p.stride.0 + ky * p.dilation.0) as isize - p.padding.0 as isize;
                let ix = (ox * p.stride.1 + kx * p.dilation.1) as isize - p.padding.1 as isize;
                if (0..h as isize).contains(&iy)
                    && (0..w as isize).contains(&ix)
                    && c.input[[b, cc, iy as usize, ix as usize]] == best
                {
                    hits += 1;
                }
            }
        }
        hits > 1
    })
}

/// Whether some plane of an unpooling case names one output position twice with
/// different values.
fn has_conflicting_duplicates(c: &Case, indices: &Array4<i64>) -> bool {
    let [n, ch, _, _] = c.input_shape;
    (0..n).any(|b| {
        (0..ch).any(|cc| {
            let idx = indices.slice(ndarray::s![b, cc, .., ..]);
            let x = c.input.slice(ndarray::s![b, cc, .., ..]);
            let pairs: Vec<(i64, f32)> = idx.iter().copied().zip(x.iter().copied()).collect();
            pairs.iter().enumerate().any(|(i, &(j, v))| {
                pairs[i + 1..]
                    .iter()
                    .any(|&(j2, v2)| j2 == j && v2.to_bits() != v.to_bits())
            })
        })
    })
}

#[test]
fn output_shapes_match_pytorch() {
    let mut failures = Vec::new();
    for c in load_cases() {
        for run in c.runs() {
            match run_output_shape(&c, run) {
                Ok(s) if s == c.output_shape => {}
                other => failures.push(format!(
                    "{} {}: {run:?} output_shape({:?}) = {other:?}, PyTorch gives {:?}",
                    c.name,
                    c.describe(),
                    c.input_shape,
                    c.output_shape
                )),
            }
        }
    }
    assert_no_failures(&failures);
}

#[test]
fn conv_transpose_reference_matches_pytorch() {
    check_family(Family::ConvTranspose, false);
}

#[test]
fn conv_transpose_gpu_matches_pytorch() {
    check_family(Family::ConvTranspose, true);
}

#[test]
fn max_pool_reference_matches_pytorch() {
    check_family(Family::MaxPool, false);
}

#[test]
fn max_pool_gpu_matches_pytorch() {
    check_family(Family::MaxPool, true);
}

#[test]
fn max_unpool_reference_matches_pytorch() {
    check_family(Family::MaxUnpool, false);
}

#[test]
fn max_unpool_gpu_matches_pytorch() {
    check_family(Family::MaxUnpool, true);
}

#[test]
fn interpolate_reference_matches_pytorch() {
    check_family(Family::Upsample, false);
}

#[test]
fn interpolate_gpu_matches_pytorch() {
    check_family(Family::Upsample, true);
}

#[test]
fn adaptive_pool_reference_matches_pytorch() {
    check_family(Family::AdaptivePool, false);
}

#[test]
fn adaptive_pool_gpu_matches_pytorch() {
    check_family(Family::AdaptivePool, true);
}
