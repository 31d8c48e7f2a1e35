//! Golden tests: the CPU reference convolution and every GPU kernel against PyTorch.
//!
//! `tests/golden/conv2d.json` holds `activation(F.conv2d(x, w, b, stride, padding,
//! dilation, groups))` computed by PyTorch in float32 on small random tensors; it is written
//! by `tests/golden/make_golden.py` (see that script for the cases and how to regenerate).
//! The other tests check the GPU against `segblocks::reference`; these pin the reference
//! itself (and the GPU, independently) to PyTorch's semantics.

mod common;

use common::golden::{
    activation, array, assert_no_failures, assert_unique_names, bias_values, bool_of, cases,
    compare, gpu, number_array, numbers, str_of, usize_field, usizes, Tol,
};
use ndarray::{Array1, Array4};
use segblocks::ops::conv::{Conv2d, Conv2dParams, ConvKernel};
use segblocks::ops::Activation;

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

fn load_cases() -> Vec<Case> {
    cases(GOLDEN, "tests/golden/conv2d.json")
        .iter()
        .map(|c| {
            let name = str_of(c, "?", "name").to_string();
            let n = name.as_str();
            let has_bias = bool_of(c, n, "bias");
            let act = str_of(c, n, "activation");
            let params = Conv2dParams::new(
                usize_field(c, n, "in_channels"),
                usize_field(c, n, "out_channels"),
                usizes::<2>(c, n, "kernel_size"),
            )
            .stride(usizes::<2>(c, n, "stride"))
            .padding(usizes::<2>(c, n, "padding"))
            .dilation(usizes::<2>(c, n, "dilation"))
            .groups(usize_field(c, n, "groups"))
            .bias(has_bias)
            .activation(activation(act, n));
            let input_shape = usizes::<4>(c, n, "input_shape");
            let output_shape = usizes::<4>(c, n, "output_shape");
            // conv2d.json has no non-finite values, and reading only JSON numbers keeps it so:
            // a "nan" string fails to load rather than matching a NaN under `Tol::Rel`.
            let bias = bias_values(c, n, has_bias, params.out_channels, numbers);
            Case {
                // Input and output may hold NaN / inf (scripts/fuzz_golden.py --non-finite).
                input: array(c, n, "input", input_shape),
                weight: number_array(c, n, "weight", params.weight_shape()),
                output: array(c, n, "output", output_shape),
                name,
                params,
                input_shape,
                output_shape,
                bias,
            }
        })
        .collect()
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
    assert_unique_names(cases.iter().map(|c| c.name.as_str()));
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
    assert_no_failures(&failures);
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
                let (rel, msg) = compare(y.view(), c.output.view(), Tol::Rel(REFERENCE_TOL));
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
    assert_no_failures(&failures);
}

fn run_gpu(c: &Case, kernel: ConvKernel) -> segblocks::Result<Array4<f32>> {
    let gpu = gpu("golden_conv");
    let conv = Conv2d::new(
        gpu,
        c.params,
        c.weight.view(),
        c.bias.as_ref().map(|b| b.view()),
    )?;
    let xt = gpu.upload(c.input.view())?;
    // Fresh (zeroed) buffers: a recycled output of the previous variant would hide values
    // this one fails to write.
    gpu.trim_pool();
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
                    let (rel, msg) = compare(y.view(), c.output.view(), Tol::Rel(GPU_TOL));
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
    assert_no_failures(&failures);
}
