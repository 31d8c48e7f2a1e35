//! Golden tests: the CPU reference convolution and every GPU kernel against PyTorch.
//!
//! `tests/golden/conv2d.json` holds `activation(F.conv2d(x, w, b, stride, padding,
//! dilation, groups))` computed by PyTorch in float32 on small random tensors; it is written
//! by `tests/golden/make_golden.py` (see that script for the cases and how to regenerate).
//! The other tests check the GPU against `segblocks::reference`; these pin the reference
//! itself (and the GPU, independently) to PyTorch's semantics.

use std::sync::OnceLock;

use ndarray::{Array1, Array4, ArrayView4};
use segblocks::ops::conv::{Conv2d, Conv2dParams, ConvKernel};
use segblocks::ops::Activation;
use segblocks::Gpu;
use serde_json::Value;

const GOLDEN: &str = include_str!("golden/conv2d.json");

/// Reference vs PyTorch: `|got - want| <= 1e-5 * (1 + |want|)`. Both compute the same
/// formula on the same float32 inputs, but the reference accumulates in f64 (and rounds
/// once), while PyTorch accumulates in f32 in its own order, so PyTorch carries a few ulps
/// of rounding error per output: relative 1e-5 is ~80 f32 ulps, far above what sums of at
/// most 147 terms produce (`make_golden.py` asserts PyTorch's f32 output is within 1e-6 of
/// an f64 evaluation) and far below any indexing, padding or activation mistake.
const REFERENCE_TOL: f32 = 1e-5;

/// GPU vs PyTorch: `|got - want| <= 1e-4 * (1 + |want|)`. The GPU sums in f32 in yet another
/// order and its `exp` (sigmoid, silu) is not correctly rounded; the reductions here are
/// short, so 1e-4 leaves plenty of room while still catching wrong taps.
const GPU_TOL: f32 = 1e-4;

/// One context per test binary; fails loudly (never skips) when there is no adapter.
fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let g = Gpu::new().expect("no GPU adapter for the golden conv tests");
        eprintln!(
            "golden_conv: testing on {} ({:?})",
            g.adapter_info().name,
            g.adapter_info().backend
        );
        g
    })
}

struct Case {
    name: String,
    params: Conv2dParams,
    input_shape: [usize; 4],
    output_shape: [usize; 4],
    input: Array4<f32>,
    weight: Array4<f32>,
    bias: Option<Array1<f32>>,
    output: Array4<f32>,
}

fn field<'a>(case: &'a Value, name: &str, key: &str) -> &'a Value {
    case.get(key)
        .unwrap_or_else(|| panic!("case {name}: missing field {key:?}"))
}

fn usize_of(v: &Value, name: &str, key: &str) -> usize {
    v.as_u64()
        .unwrap_or_else(|| panic!("case {name}: {key:?} is not an unsigned integer: {v}"))
        as usize
}

fn usizes<const N: usize>(case: &Value, name: &str, key: &str) -> [usize; N] {
    let v = field(case, name, key)
        .as_array()
        .unwrap_or_else(|| panic!("case {name}: {key:?} is not an array"));
    let v: Vec<usize> = v.iter().map(|x| usize_of(x, name, key)).collect();
    v.try_into().unwrap_or_else(|v: Vec<usize>| {
        panic!("case {name}: {key:?} has {} entries, want {N}", v.len())
    })
}

fn floats(v: &Value, name: &str, key: &str) -> Vec<f32> {
    v.as_array()
        .unwrap_or_else(|| panic!("case {name}: {key:?} is not an array"))
        .iter()
        .map(|x| {
            // The JSON numbers are exact float32 values, so the cast is exact.
            x.as_f64()
                .unwrap_or_else(|| panic!("case {name}: {key:?} holds a non-number: {x}"))
                as f32
        })
        .collect()
}

fn array4(case: &Value, name: &str, key: &str, shape: [usize; 4]) -> Array4<f32> {
    let data = floats(field(case, name, key), name, key);
    Array4::from_shape_vec(shape, data)
        .unwrap_or_else(|e| panic!("case {name}: {key:?} does not have shape {shape:?}: {e}"))
}

fn activation(s: &str, name: &str) -> Activation {
    match s {
        "none" => Activation::None,
        "relu" => Activation::Relu,
        "relu6" => Activation::Relu6,
        "sigmoid" => Activation::Sigmoid,
        "hardsigmoid" => Activation::HardSigmoid,
        "hardswish" => Activation::HardSwish,
        "silu" => Activation::Silu,
        other => panic!("case {name}: unknown activation {other:?}"),
    }
}

fn load_cases() -> Vec<Case> {
    let root: Value = serde_json::from_str(GOLDEN).expect("tests/golden/conv2d.json is not JSON");
    let cases = root
        .as_array()
        .expect("tests/golden/conv2d.json: want a list of cases");
    assert!(!cases.is_empty(), "tests/golden/conv2d.json has no cases");
    cases
        .iter()
        .map(|c| {
            let name = field(c, "?", "name")
                .as_str()
                .expect("case name is not a string")
                .to_string();
            let n = name.as_str();
            let has_bias = field(c, n, "bias")
                .as_bool()
                .unwrap_or_else(|| panic!("case {n}: \"bias\" is not a bool"));
            let act = field(c, n, "activation")
                .as_str()
                .unwrap_or_else(|| panic!("case {n}: \"activation\" is not a string"));
            let params = Conv2dParams::new(
                usize_of(field(c, n, "in_channels"), n, "in_channels"),
                usize_of(field(c, n, "out_channels"), n, "out_channels"),
                usizes::<2>(c, n, "kernel_size"),
            )
            .stride(usizes::<2>(c, n, "stride"))
            .padding(usizes::<2>(c, n, "padding"))
            .dilation(usizes::<2>(c, n, "dilation"))
            .groups(usize_of(field(c, n, "groups"), n, "groups"))
            .bias(has_bias)
            .activation(activation(act, n));
            let input_shape = usizes::<4>(c, n, "input_shape");
            let output_shape = usizes::<4>(c, n, "output_shape");
            // JSON cannot repeat the key "bias": the flag is "bias", the values "bias_values".
            let bias = match field(c, n, "bias_values") {
                Value::Null => None,
                v => Some(Array1::from(floats(v, n, "bias_values"))),
            };
            assert_eq!(
                bias.is_some(),
                has_bias,
                "case {n}: \"bias\" flag disagrees with \"bias_values\""
            );
            if let Some(b) = &bias {
                assert_eq!(b.len(), params.out_channels, "case {n}: bias length");
            }
            Case {
                input: array4(c, n, "input", input_shape),
                weight: array4(c, n, "weight", params.weight_shape()),
                output: array4(c, n, "output", output_shape),
                name,
                params,
                input_shape,
                output_shape,
                bias,
            }
        })
        .collect()
}

/// The largest `|got - want| / (1 + |want|)`, and `None` when it is `<= tol` everywhere, else
/// a description of the worst offender and how many values are out of bounds.
// `!(err <= bound)` rather than `err > bound`, so that NaN fails.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
fn compare(got: ArrayView4<f32>, want: ArrayView4<f32>, tol: f32) -> (f32, Option<String>) {
    if got.shape() != want.shape() {
        return (
            f32::INFINITY,
            Some(format!("shape {:?}, want {:?}", got.shape(), want.shape())),
        );
    }
    let mut max_rel = 0.0f32;
    let mut bad = 0usize;
    let mut worst: Option<(f32, String)> = None;
    for ((idx, &g), &w) in got.indexed_iter().zip(want.iter()) {
        let err = (g - w).abs();
        let bound = tol * (1.0 + w.abs());
        max_rel = max_rel.max(if err.is_nan() {
            f32::INFINITY
        } else {
            err / (1.0 + w.abs())
        });
        if !(err <= bound) {
            bad += 1;
            let ratio = if err.is_nan() {
                f32::INFINITY
            } else {
                err / bound
            };
            if worst.as_ref().is_none_or(|(r, _)| ratio > *r) {
                worst = Some((
                    ratio,
                    format!("at {idx:?}: got {g}, want {w}, |diff| {err:e} > bound {bound:e}"),
                ));
            }
        }
    }
    let msg =
        worst.map(|(_, msg)| format!("{bad} of {} values out of bounds; worst {msg}", got.len()));
    (max_rel, msg)
}

fn describe(p: &Conv2dParams) -> String {
    format!(
        "C_in {} C_out {} k {:?} s {:?} p {:?} d {:?} g {} bias {} act {:?}",
        p.in_channels,
        p.out_channels,
        p.kernel_size,
        p.stride,
        p.padding,
        p.dilation,
        p.groups,
        p.bias,
        p.activation
    )
}

#[test]
fn golden_cases_cover_the_brief() {
    let cases = load_cases();
    let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "duplicate case names");
    for a in Activation::ALL {
        assert!(
            cases.iter().any(|c| c.params.activation == a),
            "no golden case uses {a:?}"
        );
    }
    for k in ConvKernel::ALL {
        assert!(
            cases.iter().any(|c| k.supports(&c.params, c.input_shape)),
            "no golden case runs on the {k:?} kernel"
        );
    }
}

#[test]
fn output_shape_matches_pytorch() {
    let mut failures = Vec::new();
    for c in load_cases() {
        match c.params.output_shape(c.input_shape) {
            Ok(s) if s == c.output_shape => {}
            other => failures.push(format!(
                "{}: output_shape({:?}) = {other:?}, PyTorch gives {:?}",
                c.name, c.input_shape, c.output_shape
            )),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn reference_matches_pytorch() {
    let mut failures = Vec::new();
    for c in load_cases() {
        let got = segblocks::reference::conv::conv2d(
            &c.params,
            c.input.view(),
            c.weight.view(),
            c.bias.as_ref().map(|b| b.view()),
        );
        let msg = match got {
            Err(e) => Some(format!("error: {e}")),
            Ok(y) => {
                let (rel, msg) = compare(y.view(), c.output.view(), REFERENCE_TOL);
                eprintln!("golden_conv: reference {:40} max rel err {rel:.2e}", c.name);
                msg
            }
        };
        if let Some(msg) = msg {
            failures.push(format!(
                "{} [{}, input {:?}]: reference vs PyTorch: {msg}",
                c.name,
                describe(&c.params),
                c.input_shape
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn run_gpu(c: &Case, kernel: ConvKernel) -> segblocks::Result<Array4<f32>> {
    let gpu = gpu();
    let conv = Conv2d::new(
        gpu,
        c.params,
        c.weight.view(),
        c.bias.as_ref().map(|b| b.view()),
    )?;
    let xt = gpu.upload(c.input.view())?;
    let mut rec = gpu.recorder();
    let y = conv.forward_with(&mut rec, &xt, kernel)?;
    rec.download(&y)
}

#[test]
fn gpu_matches_pytorch() {
    let mut failures = Vec::new();
    let mut runs = 0;
    for c in load_cases() {
        for k in ConvKernel::ALL {
            if !k.supports(&c.params, c.input_shape) {
                continue;
            }
            runs += 1;
            let msg = match run_gpu(&c, k) {
                Err(e) => Some(format!("error: {e}")),
                Ok(y) => {
                    let (rel, msg) = compare(y.view(), c.output.view(), GPU_TOL);
                    eprintln!(
                        "golden_conv: GPU {:9} {:40} max rel err {rel:.2e}",
                        format!("{k:?}"),
                        c.name
                    );
                    msg
                }
            };
            if let Some(msg) = msg {
                failures.push(format!(
                    "{} [{}, input {:?}]: GPU kernel {k:?} vs PyTorch: {msg}",
                    c.name,
                    describe(&c.params),
                    c.input_shape
                ));
            }
        }
    }
    eprintln!("golden_conv: {runs} (case, kernel) runs on the GPU");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
