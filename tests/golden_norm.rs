//! Golden tests for the normalisation ops: the CPU reference and the GPU against PyTorch.
//!
//! `tests/golden/norm.json` holds PyTorch's float32 results on small random tensors for
//! `torch.nn.BatchNorm2d` in training mode (output and running statistics, `momentum`
//! 0.1, 0.3 and `None` over three consecutive calls), in eval mode, and its backward by
//! autograd (`grad_input`, `grad_weight`, `grad_bias`); `torch.nn.GroupNorm`;
//! `torch.nn.LayerNorm` over `(C, H, W)`, `(H, W)` and `(W,)`, with and without a bias;
//! `torch.nn.InstanceNorm2d` with and without affine, and with running statistics in
//! eval mode; and AdaIN written with torch ops. It is written by
//! `tests/golden/make_golden_norm.py` (see that script for the cases, the encoding and how
//! to regenerate). The other tests check the GPU against `segblocks::reference`; these pin
//! the reference itself (and the GPU, independently) to PyTorch's semantics: biased
//! variance for normalising, unbiased for the running variance, the momentum convention,
//! `momentum=None`'s cumulative average, where eps goes, the backward formula.
//!
//! Every case compares each quantity PyTorch recorded (outputs, running statistics,
//! gradients) on both sides. Failures are collected over all cases of a test and reported
//! together, with the case, the side and the quantity.

mod common;

use common::golden::{
    array, assert_no_failures, assert_unique_names, bool_of, cases, field, float_field, float_of,
    floats, gpu, str_of, usize_field, usize_of, usizes, OutOfBounds,
};
use ndarray::{Array1, Array4, ArrayD, ArrayView4, Axis, IxDyn};
use segblocks::ops::norm::{
    adain, BatchNorm2d, BatchNorm2dParams, GroupNorm, GroupNormParams, InstanceNorm2d,
    InstanceNorm2dParams, LayerNorm, LayerNormParams, NormalizedShape,
};
use segblocks::reference::norm as reference;
use segblocks::{Gpu, Recorder, Tensor};
use serde_json::Value;

const GOLDEN: &str = include_str!("golden/norm.json");

/// Reference vs PyTorch, every quantity: `|got - want| <= 1e-5 * (1 + |want|)`. The
/// reference computes in f64 (two-pass statistics) and rounds once. PyTorch works in f32
/// with its own accumulation (double sums for batch norm's statistics on the CPU, f32
/// moments for group and layer norm) and subtracts a mean rounded to f32;
/// `make_golden_norm.py` asserts every recorded value is within 5e-6 of an f64 evaluation
/// of the same module (about 1e-7 on most cases, 2e-6 on the values-around-50 case, where
/// half an ulp of the f32 mean is 1.9e-6). 1e-5 is above that and far below a wrong
/// variance (biased vs unbiased changes values by 1 / (2M), 1.4% at M = 35), a misplaced
/// eps or a wrong momentum.
const REFERENCE_TOL: f32 = 1e-5;

/// GPU vs PyTorch, normalised outputs and `grad_input`: `1e-4 * (1 + |want|)`. The golden
/// data keep the scale of these values near 1 (unit-ish inputs, weights around 1, `dy`
/// standard normal), so `1 + |want|` is the scale. The GPU sums the statistics in f32
/// (64 strided partial sums and a fixed tree), and `inverseSqrt` is not correctly rounded;
/// the mean of values around 50 is off by ~1e-5 absolute after the f32 sum, which moves a
/// unit-spread output by ~1e-5. 1e-4 leaves room for that and still catches a wrong
/// statistic, eps or affine.
const GPU_TOL: f32 = 1e-4;

/// Running mean and variance, GPU vs PyTorch: `1e-5 * (1 + |want|)`. They blend the old
/// value with momentum times a batch statistic, so a statistic error of ~1e-5 relative
/// (4096-term f32 sums) shrinks to ~momentum times that; a wrong momentum or a biased
/// variance (1 / (M - 1) off) moves them by far more.
const RUNNING_TOL: f32 = 1e-5;

/// `grad_weight` and `grad_bias`, GPU vs PyTorch: sums over the `M = N * H * W` values of
/// a channel (of `dy * x_hat` and of `dy`), so the bound is absolute plus relative:
/// `SUM_TERM_TOL * sqrt(M) * max|term| + GPU_TOL * |want|`. An f32 sum of M terms of size
/// at most T has rounding errors of random sign, ~6e-8 * sqrt(M) * T in all (1e-5 is ~170
/// times that); a sum that cancels to near zero has no relative scale of its own, hence
/// the absolute part. The relative part covers the error that `x_hat` carries from the
/// GPU's f32 mean and `inverseSqrt`. A missing or doubled term is of size T.
const SUM_TERM_TOL: f32 = 1e-5;

/// One call of a training-mode batch norm: its input, PyTorch's output and the running
/// statistics after the call.
struct Step {
    input: Array4<f32>,
    output: Array4<f32>,
    running_mean: Array1<f32>,
    running_var: Array1<f32>,
}

/// A batch norm layer's state before the case runs (PyTorch's parameters and buffers).
struct BnState {
    params: BatchNorm2dParams,
    /// `None` exactly when `params.affine` is false.
    weight: Option<Array1<f32>>,
    bias: Option<Array1<f32>>,
    running_mean: Array1<f32>,
    running_var: Array1<f32>,
}

impl BnState {
    /// The affine to hand the reference: the layer's, or the identity when not affine.
    fn gamma_beta(&self) -> (Array1<f32>, Array1<f32>) {
        let c = self.params.num_features;
        (
            self.weight.clone().unwrap_or_else(|| Array1::ones(c)),
            self.bias.clone().unwrap_or_else(|| Array1::zeros(c)),
        )
    }

    fn layer(&self, gpu: &Gpu) -> segblocks::Result<BatchNorm2d> {
        BatchNorm2d::new(
            gpu,
            self.params,
            self.weight.as_ref().map(|w| w.view()),
            self.bias.as_ref().map(|b| b.view()),
        )
        .and_then(|bn| bn.with_running_stats(self.running_mean.view(), self.running_var.view()))
    }
}

/// What a case runs, with PyTorch's results.
// A couple of dozen cases, loaded once per test: variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Op {
    /// `steps.len()` consecutive training-mode calls (3 for `momentum=None`).
    BatchNormTrain { bn: BnState, steps: Vec<Step> },
    BatchNormEval {
        bn: BnState,
        input: Array4<f32>,
        output: Array4<f32>,
    },
    /// Training-mode forward, then backward of `sum(output * grad_output)`.
    BatchNormBackward {
        bn: BnState,
        input: Array4<f32>,
        grad_output: Array4<f32>,
        output: Array4<f32>,
        grad_input: Array4<f32>,
        grad_weight: Array1<f32>,
        grad_bias: Array1<f32>,
    },
    GroupNorm {
        params: GroupNormParams,
        weight: Array1<f32>,
        bias: Array1<f32>,
        input: Array4<f32>,
        output: Array4<f32>,
    },
    /// Over the trailing `weight.shape()` dimensions with an elementwise affine of that
    /// shape; `bias` is `None` for `bias=False`.
    LayerNorm {
        eps: f32,
        weight: ArrayD<f32>,
        bias: Option<ArrayD<f32>>,
        input: Array4<f32>,
        output: Array4<f32>,
    },
    /// `weight` and `bias` are `None` for `affine=False`; `running` holds the running mean
    /// and variance with `track_running_stats=True` (in eval mode).
    InstanceNorm {
        eps: f32,
        weight: Option<Array1<f32>>,
        bias: Option<Array1<f32>>,
        running: Option<(Array1<f32>, Array1<f32>)>,
        input: Array4<f32>,
        output: Array4<f32>,
    },
    AdaIn {
        eps: f32,
        content: Array4<f32>,
        style: Array4<f32>,
        output: Array4<f32>,
    },
}

/// Op families, for the per-family tests and the coverage check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    BatchNormTrain,
    BatchNormEval,
    BatchNormBackward,
    GroupNorm,
    LayerNorm,
    InstanceNorm,
    AdaIn,
}

impl Family {
    const ALL: [Family; 7] = [
        Family::BatchNormTrain,
        Family::BatchNormEval,
        Family::BatchNormBackward,
        Family::GroupNorm,
        Family::LayerNorm,
        Family::InstanceNorm,
        Family::AdaIn,
    ];
}

struct Case {
    name: String,
    op: Op,
}

impl Case {
    fn family(&self) -> Family {
        match self.op {
            Op::BatchNormTrain { .. } => Family::BatchNormTrain,
            Op::BatchNormEval { .. } => Family::BatchNormEval,
            Op::BatchNormBackward { .. } => Family::BatchNormBackward,
            Op::GroupNorm { .. } => Family::GroupNorm,
            Op::LayerNorm { .. } => Family::LayerNorm,
            Op::InstanceNorm { .. } => Family::InstanceNorm,
            Op::AdaIn { .. } => Family::AdaIn,
        }
    }

    /// The (first) input's shape.
    fn input_shape(&self) -> [usize; 4] {
        let x = match &self.op {
            Op::BatchNormTrain { steps, .. } => &steps[0].input,
            Op::BatchNormEval { input, .. }
            | Op::BatchNormBackward { input, .. }
            | Op::GroupNorm { input, .. }
            | Op::LayerNorm { input, .. }
            | Op::InstanceNorm { input, .. } => input,
            Op::AdaIn { content, .. } => content,
        };
        x.dim().into()
    }

    fn describe(&self) -> String {
        let what = match &self.op {
            Op::BatchNormTrain { bn, steps } => {
                format!("{:?}, {} call(s)", bn.params, steps.len())
            }
            Op::BatchNormEval { bn, .. } | Op::BatchNormBackward { bn, .. } => {
                format!("{:?}", bn.params)
            }
            Op::GroupNorm { params, .. } => format!("{params:?}"),
            Op::LayerNorm {
                eps, weight, bias, ..
            } => format!(
                "layer norm over {:?}, eps {eps}, bias {}",
                weight.shape(),
                bias.is_some()
            ),
            Op::InstanceNorm {
                eps,
                weight,
                running,
                ..
            } => format!(
                "instance norm, eps {eps}, affine {}, running statistics {}",
                weight.is_some(),
                running.is_some()
            ),
            Op::AdaIn { eps, style, .. } => {
                format!("AdaIN, eps {eps}, style {:?}", style.shape())
            }
        };
        format!("[{what}, input {:?}]", self.input_shape())
    }

    /// PyTorch's quantities for this case, in the order both runs return them.
    fn wants(&self) -> Vec<Want> {
        let value = |what: String, a: &Array4<f32>| Want {
            what,
            shape: a.shape().to_vec(),
            values: a.iter().copied().collect(),
            kind: Kind::Value,
        };
        let running = |what: String, a: &Array1<f32>| Want {
            what,
            shape: vec![a.len()],
            values: a.to_vec(),
            kind: Kind::Running,
        };
        match &self.op {
            Op::BatchNormTrain { steps, .. } => steps
                .iter()
                .enumerate()
                .flat_map(|(k, s)| {
                    let k = k + 1;
                    [
                        value(format!("call {k} output"), &s.output),
                        running(format!("call {k} running_mean"), &s.running_mean),
                        running(format!("call {k} running_var"), &s.running_var),
                    ]
                })
                .collect(),
            Op::BatchNormEval { output, .. }
            | Op::GroupNorm { output, .. }
            | Op::LayerNorm { output, .. }
            | Op::InstanceNorm { output, .. }
            | Op::AdaIn { output, .. } => vec![value("output".into(), output)],
            Op::BatchNormBackward {
                bn,
                input,
                grad_output,
                output,
                grad_input,
                grad_weight,
                grad_bias,
            } => {
                let (m, max_dy, max_dy_xhat) = channel_terms(bn.params.eps, input, grad_output);
                let sum = |what: &str, a: &Array1<f32>, max_term: Vec<f32>| Want {
                    what: what.into(),
                    shape: vec![a.len()],
                    values: a.to_vec(),
                    kind: Kind::ChannelSum { m, max_term },
                };
                vec![
                    value("output".into(), output),
                    value("grad_input".into(), grad_input),
                    sum("grad_weight", grad_weight, max_dy_xhat),
                    sum("grad_bias", grad_bias, max_dy),
                ]
            }
        }
    }
}

/// `M = N * H * W`, and per channel the largest `|dy|` and `|dy * x_hat|` (statistics in
/// f64 from the golden input): the sizes of the terms that `grad_bias` and `grad_weight`
/// sum.
fn channel_terms(eps: f32, x: &Array4<f32>, dy: &Array4<f32>) -> (usize, Vec<f32>, Vec<f32>) {
    let channels = x.shape()[1];
    let m = x.len() / channels;
    let (mut max_dy, mut max_dy_xhat) = (Vec::new(), Vec::new());
    for c in 0..channels {
        let xc = x.index_axis(Axis(1), c);
        let dc = dy.index_axis(Axis(1), c);
        let mean = xc.iter().map(|&v| v as f64).sum::<f64>() / m as f64;
        let var = xc.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / m as f64;
        let invstd = 1.0 / (var + eps as f64).sqrt();
        let (mut a, mut b) = (0.0f64, 0.0f64);
        for (&xv, &g) in xc.iter().zip(dc.iter()) {
            a = a.max((g as f64).abs());
            b = b.max((g as f64 * (xv as f64 - mean) * invstd).abs());
        }
        max_dy.push(a as f32);
        max_dy_xhat.push(b as f32);
    }
    (m, max_dy, max_dy_xhat)
}

/// What kind of quantity a value is, which sets its tolerance (see the constants).
#[derive(Clone, Debug)]
enum Kind {
    /// A normalised output or `grad_input`.
    Value,
    /// A running mean or variance.
    Running,
    /// A per-channel sum of `m` terms (`grad_weight`, `grad_bias`), the largest `|term|`
    /// of each channel.
    ChannelSum { m: usize, max_term: Vec<f32> },
}

impl Kind {
    /// The largest allowed `|got - want|` for value `i` of the quantity.
    fn bound(&self, gpu: bool, i: usize, want: f32) -> f32 {
        match self {
            _ if !gpu => REFERENCE_TOL * (1.0 + want.abs()),
            Kind::Value => GPU_TOL * (1.0 + want.abs()),
            Kind::Running => RUNNING_TOL * (1.0 + want.abs()),
            Kind::ChannelSum { m, max_term } => {
                SUM_TERM_TOL * (*m as f32).sqrt() * max_term[i] + GPU_TOL * want.abs()
            }
        }
    }
}

/// One quantity PyTorch recorded.
struct Want {
    what: String,
    shape: Vec<usize>,
    values: Vec<f32>,
    kind: Kind,
}

// ----------------------------------------------------------------------------------------
// Loading

/// The field `key`, a flat list of `len` floats (possibly non-finite).
fn array1(case: &Value, name: &str, key: &str, len: usize) -> Array1<f32> {
    let data = floats(field(case, name, key), name, key);
    assert_eq!(data.len(), len, "case {name}: {key:?} length");
    Array1::from(data)
}

/// A per-channel vector that is `null` exactly when `present` is false.
/// The layer norm of a case: over `weight`'s shape, with a bias when the case has one.
fn layer_params(weight: &ArrayD<f32>, bias: &Option<ArrayD<f32>>, eps: f32) -> LayerNormParams {
    let dims = weight.shape();
    let shape = match dims.len() {
        1 => NormalizedShape::from([dims[0]]),
        2 => [dims[0], dims[1]].into(),
        _ => [dims[0], dims[1], dims[2]].into(),
    };
    LayerNormParams::new(shape).eps(eps).bias(bias.is_some())
}

fn optional_array1(
    case: &Value,
    name: &str,
    key: &str,
    len: usize,
    present: bool,
) -> Option<Array1<f32>> {
    match field(case, name, key) {
        Value::Null => {
            assert!(
                !present,
                "case {name}: {key:?} is null but the layer is affine"
            );
            None
        }
        _ => {
            assert!(
                present,
                "case {name}: {key:?} is given but the layer is not affine"
            );
            Some(array1(case, name, key, len))
        }
    }
}

/// The batch norm state shared by the three batch norm ops (`momentum` only in training).
fn load_bn_state(c: &Value, n: &str) -> BnState {
    let channels = usize_field(c, n, "num_features");
    let momentum = match c.get("momentum") {
        None => 0.1, // eval and backward cases: irrelevant to what is checked
        Some(Value::Null) => f32::NAN,
        Some(m) => float_of(m, n, "momentum"),
    };
    let affine = c.get("affine").is_none_or(|_| bool_of(c, n, "affine"));
    BnState {
        params: BatchNorm2dParams::new(channels)
            .eps(float_field(c, n, "eps"))
            .momentum((!momentum.is_nan()).then_some(momentum))
            .affine(affine),
        weight: optional_array1(c, n, "weight", channels, affine),
        bias: optional_array1(c, n, "bias", channels, affine),
        running_mean: array1(c, n, "running_mean", channels),
        running_var: array1(c, n, "running_var", channels),
    }
}

fn load_op(c: &Value, n: &str) -> Op {
    let op = str_of(c, n, "op");
    if op == "adain" {
        let content_shape = usizes::<4>(c, n, "content_shape");
        return Op::AdaIn {
            eps: float_field(c, n, "eps"),
            content: array(c, n, "content", content_shape),
            style: array(c, n, "style", usizes::<4>(c, n, "style_shape")),
            output: array(c, n, "output", content_shape),
        };
    }
    let shape = usizes::<4>(c, n, "input_shape");
    let channels = shape[1];
    let input = || array(c, n, "input", shape);
    let output = || array(c, n, "output", shape);
    match op {
        "batch_norm_train" => {
            let steps: Vec<Step> = field(c, n, "steps")
                .as_array()
                .unwrap_or_else(|| panic!("case {n}: \"steps\" is not an array"))
                .iter()
                .map(|s| Step {
                    input: array(s, n, "input", shape),
                    output: array(s, n, "output", shape),
                    running_mean: array1(s, n, "running_mean", channels),
                    running_var: array1(s, n, "running_var", channels),
                })
                .collect();
            assert!(!steps.is_empty(), "case {n}: no steps");
            Op::BatchNormTrain {
                bn: load_bn_state(c, n),
                steps,
            }
        }
        "batch_norm_eval" => Op::BatchNormEval {
            bn: load_bn_state(c, n),
            input: input(),
            output: output(),
        },
        "batch_norm_backward" => Op::BatchNormBackward {
            bn: load_bn_state(c, n),
            input: input(),
            grad_output: array(c, n, "grad_output", shape),
            output: output(),
            grad_input: array(c, n, "grad_input", shape),
            grad_weight: array1(c, n, "grad_weight", channels),
            grad_bias: array1(c, n, "grad_bias", channels),
        },
        "group_norm" => {
            assert!(bool_of(c, n, "affine"), "case {n}: only affine group norm");
            assert_eq!(
                usize_field(c, n, "num_channels"),
                channels,
                "case {n}: num_channels"
            );
            Op::GroupNorm {
                params: GroupNormParams::new(usize_field(c, n, "num_groups"), channels)
                    .eps(float_field(c, n, "eps"))
                    .affine(true),
                weight: array1(c, n, "weight", channels),
                bias: array1(c, n, "bias", channels),
                input: input(),
                output: output(),
            }
        }
        "layer_norm" => {
            let norm_shape: Vec<usize> = field(c, n, "normalized_shape")
                .as_array()
                .unwrap_or_else(|| panic!("case {n}: normalized_shape is not a list"))
                .iter()
                .map(|v| usize_of(v, n, "normalized_shape"))
                .collect();
            assert_eq!(
                norm_shape,
                shape[4 - norm_shape.len()..],
                "case {n}: normalized_shape"
            );
            let bias = match field(c, n, "bias") {
                Value::Null => None,
                _ => Some(array(c, n, "bias", IxDyn(&norm_shape))),
            };
            Op::LayerNorm {
                eps: float_field(c, n, "eps"),
                weight: array(c, n, "weight", IxDyn(&norm_shape)),
                bias,
                input: input(),
                output: output(),
            }
        }
        "instance_norm" => {
            let affine = bool_of(c, n, "affine");
            let tracking = c.get("track_running_stats").is_some_and(|v| v == true);
            let running = tracking.then(|| {
                (
                    array1(c, n, "running_mean", channels),
                    array1(c, n, "running_var", channels),
                )
            });
            Op::InstanceNorm {
                eps: float_field(c, n, "eps"),
                weight: optional_array1(c, n, "weight", channels, affine),
                bias: optional_array1(c, n, "bias", channels, affine),
                running,
                input: input(),
                output: output(),
            }
        }
        other => panic!("case {n}: unknown op {other:?}"),
    }
}

fn load_cases() -> Vec<Case> {
    cases(GOLDEN, "tests/golden/norm.json")
        .iter()
        .map(|c| {
            let name = str_of(c, "?", "name").to_string();
            Case {
                op: load_op(c, &name),
                name,
            }
        })
        .collect()
}

// ----------------------------------------------------------------------------------------
// Running: each side returns its values for the case's `wants()`, in the same order.

fn flat4(a: &Array4<f32>) -> Vec<f32> {
    a.iter().copied().collect()
}

/// The factor of training call `k` (1-based): the momentum, or `1 / k` for `None`.
fn momentum_factor(params: &BatchNorm2dParams, k: usize) -> f32 {
    params.momentum.unwrap_or(1.0 / k as f32)
}

fn run_reference(c: &Case) -> segblocks::Result<Vec<Vec<f32>>> {
    Ok(match &c.op {
        Op::BatchNormTrain { bn, steps } => {
            let (gamma, beta) = bn.gamma_beta();
            let (mut rm, mut rv) = (bn.running_mean.clone(), bn.running_var.clone());
            let mut got = Vec::new();
            for (k, s) in steps.iter().enumerate() {
                let r = reference::batch_norm_train(
                    &bn.params,
                    s.input.view(),
                    gamma.view(),
                    beta.view(),
                    rm.view(),
                    rv.view(),
                    momentum_factor(&bn.params, k + 1),
                )?;
                got.push(flat4(&r.output));
                got.push(r.running_mean.to_vec());
                got.push(r.running_var.to_vec());
                (rm, rv) = (r.running_mean, r.running_var);
            }
            got
        }
        Op::BatchNormEval { bn, input, .. } => {
            let (gamma, beta) = bn.gamma_beta();
            let y = reference::batch_norm_eval(
                &bn.params,
                input.view(),
                gamma.view(),
                beta.view(),
                bn.running_mean.view(),
                bn.running_var.view(),
            )?;
            vec![flat4(&y)]
        }
        Op::BatchNormBackward {
            bn,
            input,
            grad_output,
            ..
        } => {
            let (gamma, beta) = bn.gamma_beta();
            let fwd = reference::batch_norm_train(
                &bn.params,
                input.view(),
                gamma.view(),
                beta.view(),
                bn.running_mean.view(),
                bn.running_var.view(),
                momentum_factor(&bn.params, 1),
            )?;
            let (dx, dgamma, dbeta) = reference::batch_norm_backward(
                &bn.params,
                input.view(),
                grad_output.view(),
                gamma.view(),
            )?;
            vec![
                flat4(&fwd.output),
                flat4(&dx),
                dgamma.to_vec(),
                dbeta.to_vec(),
            ]
        }
        Op::GroupNorm {
            params,
            weight,
            bias,
            input,
            ..
        } => vec![flat4(&reference::group_norm(
            params,
            input.view(),
            weight.view(),
            bias.view(),
        )?)],
        Op::LayerNorm {
            eps,
            weight,
            bias,
            input,
            ..
        } => {
            let zeros = ArrayD::zeros(weight.shape());
            vec![flat4(&reference::layer_norm(
                &layer_params(weight, bias, *eps),
                input.view(),
                weight.view(),
                bias.as_ref().unwrap_or(&zeros).view(),
            )?)]
        }
        Op::InstanceNorm {
            eps,
            weight,
            bias,
            running,
            input,
            ..
        } => {
            let ch = input.shape()[1];
            let gamma = weight.clone().unwrap_or_else(|| Array1::ones(ch));
            let beta = bias.clone().unwrap_or_else(|| Array1::zeros(ch));
            let params = InstanceNorm2dParams::new(ch).eps(*eps).affine(true);
            match running {
                Some((mean, var)) => vec![flat4(&reference::instance_norm_running(
                    &params.track_running_stats(true),
                    input.view(),
                    (gamma.view(), beta.view()),
                    (mean.view(), var.view()),
                )?)],
                None => vec![flat4(&reference::instance_norm(
                    &params,
                    input.view(),
                    gamma.view(),
                    beta.view(),
                )?)],
            }
        }
        Op::AdaIn {
            eps,
            content,
            style,
            ..
        } => vec![flat4(&reference::adain(
            content.view(),
            style.view(),
            *eps,
        )?)],
    })
}

/// Uploads `x`, records `f` on it and downloads its one output.
fn one_output(
    x: ArrayView4<f32>,
    f: impl FnOnce(&mut Recorder<'_>, &Tensor) -> segblocks::Result<Tensor>,
) -> segblocks::Result<Vec<Vec<f32>>> {
    let gpu = gpu("golden_norm");
    let xt = gpu.upload(x)?;
    let mut rec = gpu.recorder();
    let y = f(&mut rec, &xt)?;
    Ok(vec![flat4(&rec.download(&y)?)])
}

fn run_gpu(c: &Case) -> segblocks::Result<Vec<Vec<f32>>> {
    let gpu = gpu("golden_norm");
    let upload = |a: &Array4<f32>| gpu.upload(a.view());
    Ok(match &c.op {
        Op::BatchNormTrain { bn, steps } => {
            let layer = bn.layer(gpu)?;
            let mut got = Vec::new();
            // One recorder per call, as a training loop would.
            for s in steps {
                let xt = upload(&s.input)?;
                let mut rec = gpu.recorder();
                let (y, _saved) = layer.forward_train(&mut rec, &xt)?;
                rec.submit()?;
                got.push(flat4(&gpu.download(&y)?));
                let (rm, rv) = layer.running_stats()?;
                got.push(rm.to_vec());
                got.push(rv.to_vec());
            }
            got
        }
        Op::BatchNormEval { bn, input, .. } => {
            let layer = bn.layer(gpu)?;
            one_output(input.view(), |rec, xt| layer.forward_eval(rec, xt))?
        }
        Op::BatchNormBackward {
            bn,
            input,
            grad_output,
            ..
        } => {
            let layer = bn.layer(gpu)?;
            let (xt, dyt) = (upload(input)?, upload(grad_output)?);
            let mut rec = gpu.recorder();
            let (y, saved) = layer.forward_train(&mut rec, &xt)?;
            let g = layer.backward(&mut rec, &xt, &dyt, &saved)?;
            rec.submit()?;
            vec![
                flat4(&gpu.download(&y)?),
                flat4(&gpu.download(&g.grad_input)?),
                flat4(&gpu.download(&g.grad_weight)?),
                flat4(&gpu.download(&g.grad_bias)?),
            ]
        }
        Op::GroupNorm {
            params,
            weight,
            bias,
            input,
            ..
        } => {
            let layer = GroupNorm::new(gpu, *params, Some(weight.view()), Some(bias.view()))?;
            one_output(input.view(), |rec, xt| layer.forward(rec, xt))?
        }
        Op::LayerNorm {
            eps,
            weight,
            bias,
            input,
            ..
        } => {
            let layer = LayerNorm::new(
                gpu,
                layer_params(weight, bias, *eps),
                Some(weight.view()),
                bias.as_ref().map(|b| b.view()),
            )?;
            one_output(input.view(), |rec, xt| layer.forward(rec, xt))?
        }
        Op::InstanceNorm {
            eps,
            weight,
            bias,
            running,
            input,
            ..
        } => {
            let mut layer = InstanceNorm2d::new(
                gpu,
                InstanceNorm2dParams::new(input.shape()[1])
                    .eps(*eps)
                    .affine(true)
                    .track_running_stats(running.is_some()),
                weight.as_ref().map(|w| w.view()),
                bias.as_ref().map(|b| b.view()),
            )?;
            if let Some((mean, var)) = running {
                layer = layer.with_running_stats(mean.view(), var.view())?;
            }
            one_output(input.view(), |rec, xt| layer.forward(rec, xt))?
        }
        Op::AdaIn {
            eps,
            content,
            style,
            ..
        } => {
            let st = upload(style)?;
            one_output(content.view(), |rec, ct| adain(rec, ct, &st, *eps))?
        }
    })
}

// ----------------------------------------------------------------------------------------
// Comparing

/// The position of flat index `i` in `shape`.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for (d, &len) in shape.iter().enumerate().rev() {
        idx[d] = i % len;
        i /= len;
    }
    idx
}

/// The largest `|got - want| / bound` over the quantity (infinite for a NaN or infinity
/// mismatch), and `None` when every value is within its bound, else a description of the
/// worst offender and how many values are out of bounds.
fn compare(got: &[f32], want: &Want, gpu: bool) -> (f32, Option<String>) {
    if got.len() != want.values.len() {
        return (
            f32::INFINITY,
            Some(format!(
                "{} values, want {} (shape {:?})",
                got.len(),
                want.values.len(),
                want.shape
            )),
        );
    }
    let mut max_ratio = 0.0f32;
    let mut out = OutOfBounds::default();
    for (i, (&g, &w)) in got.iter().zip(want.values.iter()).enumerate() {
        // Non-finite values must match bit for bit, any NaN matching any NaN.
        let same = (g.is_nan() && w.is_nan()) || g.to_bits() == w.to_bits();
        let bound = want.kind.bound(gpu, i, w);
        let err = (g - w).abs();
        let (ratio, ok) = match () {
            _ if same => (0.0, true),
            _ if w.is_finite() && !err.is_nan() => (err / bound, err <= bound),
            _ => (f32::INFINITY, false),
        };
        max_ratio = max_ratio.max(ratio);
        if !ok {
            out.record(ratio, || {
                format!(
                    "at {:?}: got {g}, want {w}, |diff| {err:e} > bound {bound:e}",
                    unravel(i, &want.shape)
                )
            });
        }
    }
    (max_ratio, out.message(want.values.len()))
}

/// Checks every case of `family` on one side (reference or GPU) and panics with every
/// failure at the end.
fn check_family(family: Family, gpu: bool) {
    let side = if gpu { "GPU" } else { "reference" };
    let mut failures = Vec::new();
    let mut runs = 0;
    for c in load_cases().iter().filter(|c| c.family() == family) {
        runs += 1;
        let wants = c.wants();
        let got = if gpu { run_gpu(c) } else { run_reference(c) };
        let mut fail = |msg: String| {
            failures.push(format!(
                "{} {}: {side} vs PyTorch: {msg}",
                c.name,
                c.describe()
            ))
        };
        match got {
            Err(e) => fail(format!("error: {e}")),
            Ok(got) => {
                assert_eq!(got.len(), wants.len(), "case {}: quantities", c.name);
                let mut worst = 0.0f32;
                for (g, w) in got.iter().zip(&wants) {
                    let (ratio, msg) = compare(g, w, gpu);
                    worst = worst.max(ratio);
                    if let Some(msg) = msg {
                        fail(format!("{}: {msg}", w.what));
                    }
                }
                eprintln!(
                    "golden_norm: {side:9} {:44} worst |diff| / bound {worst:.2e}",
                    c.name
                );
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
    let count = |f: Family| cases.iter().filter(|c| c.family() == f).count();
    let any = |pred: &dyn Fn(&Case) -> bool, what: &str| {
        assert!(cases.iter().any(pred), "no golden case with {what}");
    };
    let train = |c: &Case, pred: &dyn Fn(&BnState, &[Step]) -> bool| matches!(&c.op, Op::BatchNormTrain { bn, steps } if pred(bn, steps));
    any(
        &|c| {
            train(c, &|_, s| {
                s[0].input.shape()[0] == 2 && s[0].input.shape()[3] % 2 == 1
            })
        },
        "batch norm training, batch 2, odd width",
    );
    any(
        &|c| {
            train(c, &|_, s| {
                let sh = s[0].input.shape();
                sh[0] == 1 && sh[2] * sh[3] > 1
            })
        },
        "batch norm training, batch 1",
    );
    for m in [0.1, 0.3] {
        any(
            &|c| train(c, &|bn, _| bn.params.momentum == Some(m)),
            &format!("batch norm momentum {m}"),
        );
    }
    any(
        &|c| train(c, &|bn, s| bn.params.momentum.is_none() && s.len() == 3),
        "batch norm momentum=None over 3 calls",
    );
    any(
        &|c| train(c, &|bn, _| bn.params.eps == 1e-3),
        "batch norm training, eps 1e-3",
    );
    any(
        &|c| train(c, &|bn, _| !bn.params.affine),
        "batch norm training without affine",
    );
    any(
        &|c| {
            train(c, &|_, s| {
                let x = &s[0].input;
                let mean = x.mean().unwrap();
                let sd = x.std(0.0);
                mean > 40.0 && sd < 0.2 * mean
            })
        },
        "batch norm training on values around 50 with a small spread",
    );
    any(
        &|c| train(c, &|_, s| s[0].input.shape() == [1, 4, 64, 64]),
        "batch norm training 1x4x64x64",
    );
    assert!(count(Family::BatchNormEval) >= 3, "want 3 eval cases");
    any(
        &|c| matches!(&c.op, Op::BatchNormEval { bn, .. } if bn.params.eps != 1e-5),
        "batch norm eval with a non-default eps",
    );
    assert!(
        count(Family::BatchNormBackward) >= 3,
        "want 3 backward cases"
    );
    let backward = |c: &Case, pred: &dyn Fn([usize; 4]) -> bool| {
        c.family() == Family::BatchNormBackward && pred(c.input_shape())
    };
    any(&|c| backward(c, &|s| s[0] == 2), "backward, batch 2");
    any(&|c| backward(c, &|s| s[0] == 1), "backward, batch 1");
    any(&|c| backward(c, &|s| s[1] == 1), "backward, one channel");
    let group = |c: &Case, pred: &dyn Fn(&GroupNormParams) -> bool| matches!(&c.op, Op::GroupNorm { params, input, .. } if input.shape()[0] == 2 && pred(params));
    any(&|c| group(c, &|p| p.num_groups == 1), "group norm G=1");
    any(
        &|c| group(c, &|p| p.num_groups == p.num_channels),
        "group norm G=C",
    );
    any(
        &|c| group(c, &|p| p.num_groups == 2 && p.num_channels == 6),
        "group norm G=2, C=6",
    );
    any(
        &|c| group(c, &|p| p.num_groups == 32 && p.num_channels == 64),
        "group norm G=32, C=64",
    );
    assert!(count(Family::LayerNorm) >= 2, "want 2 layer norm cases");
    for dims in 1..=3 {
        any(
            &|c| matches!(&c.op, Op::LayerNorm { weight, .. } if weight.ndim() == dims),
            &format!("layer norm over {dims} trailing dimension(s)"),
        );
    }
    any(
        &|c| matches!(&c.op, Op::LayerNorm { bias: None, .. }),
        "layer norm without a bias",
    );
    any(
        &|c| {
            matches!(
                &c.op,
                Op::InstanceNorm {
                    running: Some(_),
                    ..
                }
            )
        },
        "instance norm with running statistics",
    );
    for affine in [true, false] {
        any(
            &|c| matches!(&c.op, Op::InstanceNorm { weight, .. } if weight.is_some() == affine),
            &format!("instance norm with affine={affine}"),
        );
    }
    assert!(count(Family::AdaIn) >= 2, "want 2 AdaIN cases");
    any(
        &|c| matches!(&c.op, Op::AdaIn { content, style, .. } if content.shape()[2..] != style.shape()[2..]),
        "AdaIN with a style of another size",
    );
}

#[test]
fn batch_norm_train_reference_matches_pytorch() {
    check_family(Family::BatchNormTrain, false);
}

#[test]
fn batch_norm_train_gpu_matches_pytorch() {
    check_family(Family::BatchNormTrain, true);
}

#[test]
fn batch_norm_eval_reference_matches_pytorch() {
    check_family(Family::BatchNormEval, false);
}

#[test]
fn batch_norm_eval_gpu_matches_pytorch() {
    check_family(Family::BatchNormEval, true);
}

#[test]
fn batch_norm_backward_reference_matches_pytorch() {
    check_family(Family::BatchNormBackward, false);
}

#[test]
fn batch_norm_backward_gpu_matches_pytorch() {
    check_family(Family::BatchNormBackward, true);
}

#[test]
fn group_norm_reference_matches_pytorch() {
    check_family(Family::GroupNorm, false);
}

#[test]
fn group_norm_gpu_matches_pytorch() {
    check_family(Family::GroupNorm, true);
}

#[test]
fn layer_norm_reference_matches_pytorch() {
    check_family(Family::LayerNorm, false);
}

#[test]
fn layer_norm_gpu_matches_pytorch() {
    check_family(Family::LayerNorm, true);
}

#[test]
fn instance_norm_reference_matches_pytorch() {
    check_family(Family::InstanceNorm, false);
}

#[test]
fn instance_norm_gpu_matches_pytorch() {
    check_family(Family::InstanceNorm, true);
}

#[test]
fn adain_reference_matches_pytorch() {
    check_family(Family::AdaIn, false);
}

#[test]
fn adain_gpu_matches_pytorch() {
    check_family(Family::AdaIn, true);
}
