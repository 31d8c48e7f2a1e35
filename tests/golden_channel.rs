//! Golden tests for channel plumbing and attention: the CPU reference and the GPU against
//! PyTorch / torchvision.
//!
//! `tests/golden/channel.json` holds PyTorch's float32 results on small random tensors for
//! `F.channel_shuffle`, `torch.cat` and `torch.split` along channels, `act(a + b)` and the
//! activations alone (relu, relu6, hardswish, silu, sigmoid, hardsigmoid),
//! `torchvision.ops.misc.SqueezeExcitation` (ReLU / Sigmoid and MobileNetV3's ReLU /
//! Hardsigmoid), ECA and CBAM (transcriptions of their reference code), a highway
//! connection and residual attention, `F.scaled_dot_product_attention` over the pixels of
//! NCHW maps, HRNet-OCR's `SpatialGather_Module`, plus ECA's kernel-size formula for C = 1..=2048; it
//! is written by `tests/golden/make_golden_channel.py` (see that script for the cases, the
//! encoding and how to regenerate). The other tests check the GPU against
//! `segblocks::reference`; these pin the reference itself (and the GPU, independently) to
//! PyTorch's semantics: which channel goes where in a shuffle, the activation formulas at
//! their bends, torchvision's SE layout, ECA's padding and kernel size, CBAM's order of
//! gates and its [max, mean] channel pool.
//!
//! Every case compares each output PyTorch recorded on both sides (there is no reference
//! `split`, so split cases run on the GPU only). Failures are collected over all cases of
//! a test and reported together, with the case, the side and the output.

mod common;

use common::golden::{
    activation, assert_no_failures, assert_unique_names, bool_of, cases, compare, field,
    float_field, floats, gpu, shaped, str_of, usize_field, usize_vec, Tol,
};
use ndarray::{Array1, Array4, ArrayD, ArrayView4, Ix1, Ix2, Ix4};
use segblocks::ops::attention::{
    eca_kernel_size, Cbam, CbamParams, Eca, EcaParams, SqueezeExcitation, SqueezeExcitationParams,
};
use segblocks::ops::channel::{self, ChannelPoolOrder};
use segblocks::ops::sdpa::{
    scaled_dot_product_attention, spatial_gather, SdpaParams, SoftmaxScope, SpatialGatherParams,
};
use segblocks::ops::Activation;
use segblocks::reference;
use serde_json::Value;

const GOLDEN: &str = include_str!("golden/channel.json");

/// `act(a + b)`, activations, highway and residual attention, reference vs PyTorch:
/// `|got - want| <= 1e-6 * (1 + |want|)`. These are a handful of f32 operations per value
/// in the same order as PyTorch's CPU kernels (`x * relu6(x + 3) / 6`, `1 / (1 + exp(-x))`,
/// `x / (1 + exp(-x))`, `h * t + x * (1 - t)`, `(1 + m) * f + x`); only `exp` differs
/// (Rust's libm against PyTorch's vectorised one, each within an ulp or two), moving a
/// result by a few ulps. 1e-6 is ~8 ulps of a value near 1: a wrong bend (hardsigmoid's
/// +-3, relu6's 6), a missing `/ 6` or a swapped gate moves results by far more.
const ELEMENTWISE_REFERENCE_TOL: f32 = 1e-6;

/// The same ops, GPU vs PyTorch: `2e-6 * (1 + |want|)`. WGSL only bounds `exp`'s error by
/// `3 + 2 |x|` ulps (a vendor's fast `exp2` after multiplying by log2(e)); sigmoid and silu
/// pass `exp(-x)`'s relative error on scaled by `e / (1 + e) < 1`, so up to ~1e-6 relative
/// where the golden inputs reach |x| ~ 10 and sigmoid is not yet saturated. The shader may
/// also contract a multiply and an add into an FMA. Twice the reference bound still catches
/// any formula error.
const ELEMENTWISE_GPU_TOL: f32 = 2e-6;

/// SE, ECA and CBAM, reference vs PyTorch: `1e-5 * (1 + |want|)`. The reference pools and
/// convolves in f64 and rounds once per op; PyTorch sums in f32 (the 96-channel SE's 1x1
/// convolution, CBAM's 98-tap spatial convolution), a few ulps of the sums' magnitude off
/// (`make_golden_channel.py` asserts every output is within 1e-6 of an f64 evaluation). A
/// sigmoid gate passes a logit error through with a factor of at most 1/4. 1e-5 is ~80 f32
/// ulps: far above that rounding, far below a wrong tap, gate, pooling or channel order.
const ATTENTION_REFERENCE_TOL: f32 = 1e-5;

/// SE, ECA and CBAM, GPU vs PyTorch: `1e-4 * (1 + |want|)`. The GPU sums in f32 in yet
/// another order (global pooling, the 1x1 and 7x7 convolutions, CBAM's channel mean) and
/// its `exp` is not correctly rounded; as for the convolution golden tests, 1e-4 leaves
/// room for that while still catching any wrong tap or gate.
const ATTENTION_GPU_TOL: f32 = 1e-4;

/// Attention, reference vs PyTorch: `1e-5 * (1 + |want|)`. The reference sums the scores
/// and the weighted values in f64 and rounds once; PyTorch's f32 products are within
/// ~3e-7 of an f64 evaluation (`make_golden_channel.py` checks 1e-6). A wrong head split,
/// token order, scale or softmax axis moves outputs by far more.
const SDPA_REFERENCE_TOL: f32 = 1e-5;

/// Attention, GPU vs PyTorch: `2e-5 * (1 + |want|)`: f32 dot products of up to 32 terms
/// and WGSL's `exp` (a few ulps) shift the weights of a convex combination.
const SDPA_GPU_TOL: f32 = 2e-5;

/// What a case runs, with its inputs and parameters (PyTorch's outputs are in
/// [`Case::outputs`]).
enum Op {
    Shuffle {
        groups: usize,
        input: Array4<f32>,
    },
    Concat {
        inputs: Vec<Array4<f32>>,
    },
    Split {
        sections: Vec<usize>,
        input: Array4<f32>,
    },
    Add {
        act: Activation,
        a: Array4<f32>,
        b: Array4<f32>,
    },
    Activation {
        act: Activation,
        input: Array4<f32>,
    },
    SqueezeExcitation {
        params: SqueezeExcitationParams,
        fc1: (Array4<f32>, Array1<f32>),
        fc2: (Array4<f32>, Array1<f32>),
        input: Array4<f32>,
    },
    Eca {
        channels: usize,
        kernel_size: usize,
        weight: Array1<f32>,
        input: Array4<f32>,
    },
    /// MLP weights as the library takes them: PyTorch's `Linear` `[out, in]` reshaped to
    /// `[out, in, 1, 1]`.
    Cbam {
        reduction_ratio: usize,
        /// `[mean, max]` or the CBAM authors' `[max, mean]` maps (field `pool_order`).
        pool_order: ChannelPoolOrder,
        mlp1: (Array4<f32>, Option<Array1<f32>>),
        mlp2: (Array4<f32>, Option<Array1<f32>>),
        spatial_weight: Array4<f32>,
        spatial_bias: Option<Array1<f32>>,
        input: Array4<f32>,
    },
    Highway {
        input: Array4<f32>,
        h: Array4<f32>,
        t_logits: Array4<f32>,
    },
    ResidualAttention {
        input: Array4<f32>,
        f: Array4<f32>,
        mask: Array4<f32>,
    },
    /// `F.scaled_dot_product_attention` over the maps' pixels, heads on channel groups.
    Sdpa {
        params: SdpaParams,
        q: Array4<f32>,
        k: Array4<f32>,
        v: Array4<f32>,
    },
    /// HRNet-OCR's `SpatialGather_Module`: each class's softmax over the pixels weighting
    /// the features.
    SpatialGather {
        params: SpatialGatherParams,
        probs: Array4<f32>,
        feats: Array4<f32>,
    },
    /// ECA's kernel size by the reference code's formula, for each channel count.
    EcaKernelSizes {
        channels: Vec<usize>,
        kernel_sizes: Vec<usize>,
    },
}

/// Op families, for the per-family tests and the coverage check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Shuffle,
    ConcatSplit,
    AddActivation,
    SqueezeExcitation,
    Eca,
    Cbam,
    HighwayResidual,
    Sdpa,
}

impl Family {
    const ALL: [Family; 8] = [
        Family::Shuffle,
        Family::ConcatSplit,
        Family::AddActivation,
        Family::SqueezeExcitation,
        Family::Eca,
        Family::Cbam,
        Family::HighwayResidual,
        Family::Sdpa,
    ];
}

struct Case {
    name: String,
    op: Op,
    /// PyTorch's outputs, named as in the JSON (`output`, or `output0`, `output1`, ...).
    outputs: Vec<(String, Array4<f32>)>,
}

impl Case {
    fn family(&self) -> Family {
        match self.op {
            Op::Shuffle { .. } => Family::Shuffle,
            Op::Concat { .. } | Op::Split { .. } => Family::ConcatSplit,
            Op::Add { .. } | Op::Activation { .. } => Family::AddActivation,
            Op::SqueezeExcitation { .. } => Family::SqueezeExcitation,
            Op::Eca { .. } | Op::EcaKernelSizes { .. } => Family::Eca,
            Op::Cbam { .. } => Family::Cbam,
            Op::Highway { .. } | Op::ResidualAttention { .. } => Family::HighwayResidual,
            Op::Sdpa { .. } | Op::SpatialGather { .. } => Family::Sdpa,
        }
    }

    /// The (first) input's shape.
    fn input_shape(&self) -> Option<[usize; 4]> {
        let x = match &self.op {
            Op::Concat { inputs } => &inputs[0],
            Op::Add { a, .. } => a,
            Op::Shuffle { input, .. }
            | Op::Split { input, .. }
            | Op::Activation { input, .. }
            | Op::SqueezeExcitation { input, .. }
            | Op::Eca { input, .. }
            | Op::Cbam { input, .. }
            | Op::Highway { input, .. }
            | Op::ResidualAttention { input, .. } => input,
            Op::Sdpa { q, .. } => q,
            Op::SpatialGather { probs, .. } => probs,
            Op::EcaKernelSizes { .. } => return None,
        };
        Some(x.dim().into())
    }

    fn describe(&self) -> String {
        let what = match &self.op {
            Op::Shuffle { groups, .. } => format!("channel shuffle, groups {groups}"),
            Op::Concat { inputs } => format!(
                "cat of {:?}",
                inputs
                    .iter()
                    .map(|t| t.shape().to_vec())
                    .collect::<Vec<_>>()
            ),
            Op::Split { sections, .. } => format!("split into {sections:?}"),
            Op::Add { act, .. } => format!("add, {act:?}"),
            Op::Activation { act, .. } => format!("activation {act:?}"),
            Op::SqueezeExcitation { params, .. } => format!("{params:?}"),
            Op::Eca {
                channels,
                kernel_size,
                ..
            } => format!("ECA, C {channels}, k {kernel_size}"),
            Op::Cbam {
                reduction_ratio,
                spatial_weight,
                spatial_bias,
                ..
            } => format!(
                "CBAM, r {reduction_ratio}, spatial k {}, spatial bias {}",
                spatial_weight.shape()[2],
                spatial_bias.is_some()
            ),
            Op::Highway { .. } => "highway".to_string(),
            Op::ResidualAttention { .. } => "residual attention".to_string(),
            Op::Sdpa { params, k, .. } => format!("attention {params:?}, keys {:?}", k.shape()),
            Op::SpatialGather { params, feats, .. } => {
                format!("spatial gather {params:?}, features {:?}", feats.shape())
            }
            Op::EcaKernelSizes { channels, .. } => {
                format!("ECA kernel sizes for {} channel counts", channels.len())
            }
        };
        match self.input_shape() {
            Some(s) => format!("[{what}, input {s:?}]"),
            None => format!("[{what}]"),
        }
    }

    /// How values are compared with PyTorch's.
    fn tol(&self, gpu: bool) -> Tol {
        match (self.family(), gpu) {
            (Family::Shuffle | Family::ConcatSplit, _) => Tol::Exact,
            (Family::AddActivation | Family::HighwayResidual, false) => {
                Tol::Rel(ELEMENTWISE_REFERENCE_TOL)
            }
            (Family::AddActivation | Family::HighwayResidual, true) => {
                Tol::Rel(ELEMENTWISE_GPU_TOL)
            }
            (Family::SqueezeExcitation | Family::Eca | Family::Cbam, false) => {
                Tol::Rel(ATTENTION_REFERENCE_TOL)
            }
            (Family::SqueezeExcitation | Family::Eca | Family::Cbam, true) => {
                Tol::Rel(ATTENTION_GPU_TOL)
            }
            (Family::Sdpa, false) => Tol::Rel(SDPA_REFERENCE_TOL),
            (Family::Sdpa, true) => Tol::Rel(SDPA_GPU_TOL),
        }
    }
}

// ----------------------------------------------------------------------------------------
// Loading

/// The tensor `key`, with the shape in `key + "_shape"`.
fn tensor(case: &Value, name: &str, key: &str) -> ArrayD<f32> {
    let shape = usize_vec(case, name, &format!("{key}_shape"));
    shaped(floats(field(case, name, key), name, key), name, key, shape)
}

fn tensor4(case: &Value, name: &str, key: &str) -> Array4<f32> {
    tensor(case, name, key)
        .into_dimensionality::<Ix4>()
        .unwrap_or_else(|e| panic!("case {name}: {key:?} is not 4-D: {e}"))
}

fn tensor1(case: &Value, name: &str, key: &str) -> Array1<f32> {
    tensor(case, name, key)
        .into_dimensionality::<Ix1>()
        .unwrap_or_else(|e| panic!("case {name}: {key:?} is not 1-D: {e}"))
}

/// A PyTorch `Linear` weight `[out, in]` as the `[out, in, 1, 1]` of a 1x1 convolution.
fn linear_as_conv(case: &Value, name: &str, key: &str) -> Array4<f32> {
    let w = tensor(case, name, key)
        .into_dimensionality::<Ix2>()
        .unwrap_or_else(|e| panic!("case {name}: {key:?} is not 2-D: {e}"));
    let (o, i) = w.dim();
    w.into_shape_with_order([o, i, 1, 1])
        .expect("same element count")
}

/// The op and PyTorch's outputs of one JSON case.
fn load_case(c: &Value, n: &str) -> (Op, Vec<(String, Array4<f32>)>) {
    let output = || vec![("output".to_string(), tensor4(c, n, "output"))];
    let input = || tensor4(c, n, "input");
    match str_of(c, n, "op") {
        "channel_shuffle" => (
            Op::Shuffle {
                groups: usize_field(c, n, "groups"),
                input: input(),
            },
            output(),
        ),
        "cat" => {
            assert_eq!(usize_field(c, n, "dim"), 1, "case {n}: only dim 1");
            let inputs = (0..usize_field(c, n, "num_inputs"))
                .map(|i| tensor4(c, n, &format!("input{i}")))
                .collect();
            (Op::Concat { inputs }, output())
        }
        "split" => {
            assert_eq!(usize_field(c, n, "dim"), 1, "case {n}: only dim 1");
            let sections = usize_vec(c, n, "sections");
            let outputs: Vec<_> = (0..usize_field(c, n, "num_outputs"))
                .map(|i| {
                    let key = format!("output{i}");
                    let t = tensor4(c, n, &key);
                    (key, t)
                })
                .collect();
            assert_eq!(sections.len(), outputs.len(), "case {n}: sections");
            (
                Op::Split {
                    sections,
                    input: input(),
                },
                outputs,
            )
        }
        "add" => (
            Op::Add {
                act: activation(str_of(c, n, "activation"), n),
                a: tensor4(c, n, "a"),
                b: tensor4(c, n, "b"),
            },
            output(),
        ),
        "activation" => (
            Op::Activation {
                act: activation(str_of(c, n, "activation"), n),
                input: input(),
            },
            output(),
        ),
        "squeeze_excitation" => {
            let params = SqueezeExcitationParams::new(
                usize_field(c, n, "input_channels"),
                usize_field(c, n, "squeeze_channels"),
            )
            .activation(activation(str_of(c, n, "activation"), n))
            .scale_activation(activation(str_of(c, n, "scale_activation"), n));
            (
                Op::SqueezeExcitation {
                    params,
                    fc1: (tensor4(c, n, "fc1_weight"), tensor1(c, n, "fc1_bias")),
                    fc2: (tensor4(c, n, "fc2_weight"), tensor1(c, n, "fc2_bias")),
                    input: input(),
                },
                output(),
            )
        }
        "eca" => {
            let weight = tensor1(c, n, "weight");
            let kernel_size = usize_field(c, n, "kernel_size");
            assert_eq!(weight.len(), kernel_size, "case {n}: weight length");
            (
                Op::Eca {
                    channels: usize_field(c, n, "channels"),
                    kernel_size,
                    weight,
                    input: input(),
                },
                output(),
            )
        }
        "cbam" => {
            let has_bias = bool_of(c, n, "bias");
            let spatial_bias = optional_tensor1(c, n, "spatial_bias");
            assert_eq!(
                spatial_bias.is_some(),
                has_bias,
                "case {n}: \"bias\" flag disagrees with \"spatial_bias\""
            );
            let spatial_weight = tensor4(c, n, "spatial_weight");
            assert_eq!(
                spatial_weight.shape()[2],
                usize_field(c, n, "kernel_size"),
                "case {n}: spatial kernel size"
            );
            (
                Op::Cbam {
                    reduction_ratio: usize_field(c, n, "reduction_ratio"),
                    pool_order: match c.get("pool_order").and_then(|v| v.as_str()) {
                        None | Some("max_mean") => ChannelPoolOrder::MaxMean,
                        Some("mean_max") => ChannelPoolOrder::MeanMax,
                        Some(other) => panic!("case {n}: pool_order {other:?}"),
                    },
                    mlp1: (
                        linear_as_conv(c, n, "mlp1_weight"),
                        optional_tensor1(c, n, "mlp1_bias"),
                    ),
                    mlp2: (
                        linear_as_conv(c, n, "mlp2_weight"),
                        optional_tensor1(c, n, "mlp2_bias"),
                    ),
                    spatial_weight,
                    spatial_bias,
                    input: input(),
                },
                output(),
            )
        }
        "highway" => (
            Op::Highway {
                input: input(),
                h: tensor4(c, n, "h"),
                t_logits: tensor4(c, n, "t_logits"),
            },
            output(),
        ),
        "sdpa" => {
            let heads = usize_field(c, n, "num_heads");
            let mut params = match c.get("scale") {
                Some(_) => SdpaParams::new(heads).scale(float_field(c, n, "scale")),
                None => SdpaParams::new(heads),
            };
            // smp MAnet's position attention: one softmax over the whole score map, the
            // token-major product reshaped to the map.
            if c.get("softmax").is_some() {
                assert_eq!(str_of(c, n, "softmax"), "all", "case {n}: softmax scope");
                params = params.softmax(SoftmaxScope::All);
            }
            if c.get("token_major").is_some() {
                params = params.token_major(bool_of(c, n, "token_major"));
            }
            let (q, k, v) = (tensor4(c, n, "q"), tensor4(c, n, "k"), tensor4(c, n, "v"));
            (Op::Sdpa { params, q, k, v }, output())
        }
        "spatial_gather" => {
            let params = SpatialGatherParams::new().scale(float_field(c, n, "scale"));
            let (probs, feats) = (tensor4(c, n, "probs"), tensor4(c, n, "feats"));
            (
                Op::SpatialGather {
                    params,
                    probs,
                    feats,
                },
                output(),
            )
        }
        "residual_attention" => (
            Op::ResidualAttention {
                input: input(),
                f: tensor4(c, n, "f"),
                mask: tensor4(c, n, "mask"),
            },
            output(),
        ),
        "eca_kernel_size" => {
            let channels = usize_vec(c, n, "channels");
            let kernel_sizes = usize_vec(c, n, "kernel_size");
            assert_eq!(
                channels.len(),
                kernel_sizes.len(),
                "case {n}: table lengths"
            );
            (
                Op::EcaKernelSizes {
                    channels,
                    kernel_sizes,
                },
                Vec::new(),
            )
        }
        other => panic!("case {n}: unknown op {other:?}"),
    }
}

fn load_cases() -> Vec<Case> {
    cases(GOLDEN, "tests/golden/channel.json")
        .iter()
        .map(|c| {
            let name = str_of(c, "?", "name").to_string();
            let (op, outputs) = load_case(c, &name);
            Case { name, op, outputs }
        })
        .collect()
}

// ----------------------------------------------------------------------------------------
// Running

/// The reference's outputs, in the order of [`Case::outputs`]; `None` when the reference
/// has no such op (split) or the case has no tensors (the kernel-size table).
fn run_reference(c: &Case) -> Option<segblocks::Result<Vec<Array4<f32>>>> {
    use reference::attention as att;
    use reference::channel as ch;
    let one = |r: segblocks::Result<Array4<f32>>| Some(r.map(|y| vec![y]));
    match &c.op {
        Op::Shuffle { groups, input } => one(ch::channel_shuffle(input.view(), *groups)),
        Op::Concat { inputs } => {
            let views: Vec<ArrayView4<f32>> = inputs.iter().map(|t| t.view()).collect();
            one(ch::concat(&views))
        }
        Op::Split { .. } | Op::EcaKernelSizes { .. } => None,
        Op::Add { act, a, b } => one(ch::add(a.view(), b.view(), *act)),
        Op::Activation { act, input } => one(Ok(ch::activation(input.view(), *act))),
        Op::SqueezeExcitation {
            params,
            fc1,
            fc2,
            input,
        } => one(att::squeeze_excitation(
            params,
            input.view(),
            (fc1.0.view(), fc1.1.view()),
            (fc2.0.view(), fc2.1.view()),
        )),
        Op::Eca { weight, input, .. } => one(att::eca(input.view(), weight.view())),
        Op::Cbam {
            reduction_ratio,
            pool_order,
            mlp1,
            mlp2,
            spatial_weight,
            spatial_bias,
            input,
        } => one(att::cbam(
            &cbam_params(
                input,
                *reduction_ratio,
                *pool_order,
                spatial_weight,
                spatial_bias,
            )
            .mlp_bias(mlp1.1.is_some()),
            input.view(),
            (mlp1.0.view(), mlp1.1.as_ref().map(|b| b.view())),
            (mlp2.0.view(), mlp2.1.as_ref().map(|b| b.view())),
            spatial_weight.view(),
            spatial_bias.as_ref().map(|b| b.view()),
        )),
        Op::Highway { input, h, t_logits } => {
            one(ch::highway(input.view(), h.view(), t_logits.view()))
        }
        Op::Sdpa { params, q, k, v } => one(reference::sdpa::scaled_dot_product_attention(
            q.view(),
            k.view(),
            v.view(),
            *params,
        )),
        Op::ResidualAttention { input, f, mask } => {
            one(ch::residual_attention(input.view(), f.view(), mask.view()))
        }
        Op::SpatialGather {
            params,
            probs,
            feats,
        } => one(reference::sdpa::spatial_gather(
            probs.view(),
            feats.view(),
            *params,
        )),
    }
}

/// The GPU's outputs, in the order of [`Case::outputs`]; `None` for the kernel-size table.
fn run_gpu(c: &Case) -> Option<segblocks::Result<Vec<Array4<f32>>>> {
    if matches!(c.op, Op::EcaKernelSizes { .. }) {
        return None;
    }
    Some(run_gpu_inner(c))
}

fn run_gpu_inner(c: &Case) -> segblocks::Result<Vec<Array4<f32>>> {
    let gpu = gpu("golden_channel");
    let up = |a: &Array4<f32>| gpu.upload(a.view());
    let mut rec = gpu.recorder();
    let y = match &c.op {
        Op::Shuffle { groups, input } => channel::channel_shuffle(&mut rec, &up(input)?, *groups)?,
        Op::Concat { inputs } => {
            let ts = inputs
                .iter()
                .map(up)
                .collect::<segblocks::Result<Vec<_>>>()?;
            let refs: Vec<_> = ts.iter().collect();
            channel::concat(&mut rec, &refs)?
        }
        Op::Split { sections, input } => {
            let parts = channel::split(&mut rec, &up(input)?, sections)?;
            rec.submit()?;
            return parts.iter().map(|t| gpu.download(t)).collect();
        }
        Op::Add { act, a, b } => channel::add(&mut rec, &up(a)?, &up(b)?, *act)?,
        Op::Activation { act, input } => channel::activation(&mut rec, &up(input)?, *act)?,
        Op::SqueezeExcitation {
            params,
            fc1,
            fc2,
            input,
        } => SqueezeExcitation::new(
            gpu,
            *params,
            fc1.0.view(),
            fc1.1.view(),
            fc2.0.view(),
            fc2.1.view(),
        )?
        .forward(&mut rec, &up(input)?)?,
        Op::Eca {
            channels,
            weight,
            input,
            ..
        } => Eca::new(
            gpu,
            EcaParams::new(*channels).kernel_size(weight.len()),
            weight.view(),
        )?
        .forward(&mut rec, &up(input)?)?,
        Op::Cbam {
            reduction_ratio,
            pool_order,
            mlp1,
            mlp2,
            spatial_weight,
            spatial_bias,
            input,
        } => Cbam::new(
            gpu,
            cbam_params(
                input,
                *reduction_ratio,
                *pool_order,
                spatial_weight,
                spatial_bias,
            )
            .mlp_bias(mlp1.1.is_some()),
            (mlp1.0.view(), mlp1.1.as_ref().map(|b| b.view())),
            (mlp2.0.view(), mlp2.1.as_ref().map(|b| b.view())),
            spatial_weight.view(),
            spatial_bias.as_ref().map(|b| b.view()),
        )?
        .forward(&mut rec, &up(input)?)?,
        Op::Highway { input, h, t_logits } => {
            channel::highway(&mut rec, &up(input)?, &up(h)?, &up(t_logits)?)?
        }
        Op::ResidualAttention { input, f, mask } => {
            channel::residual_attention(&mut rec, &up(input)?, &up(f)?, &up(mask)?)?
        }
        Op::Sdpa { params, q, k, v } => {
            scaled_dot_product_attention(&mut rec, &up(q)?, &up(k)?, &up(v)?, *params)?
        }
        Op::SpatialGather {
            params,
            probs,
            feats,
        } => spatial_gather(&mut rec, &up(probs)?, &up(feats)?, *params)?,
        Op::EcaKernelSizes { .. } => unreachable!("no tensors to run"),
    };
    Ok(vec![rec.download(&y)?])
}

// ----------------------------------------------------------------------------------------
// Comparing

/// Checks every case of `family` on one side (reference or GPU) and panics with every
/// failure at the end.
fn check_family(family: Family, gpu: bool) {
    let side = if gpu { "GPU" } else { "reference" };
    let mut failures = Vec::new();
    let mut runs = 0;
    for c in load_cases().iter().filter(|c| c.family() == family) {
        let tol = c.tol(gpu);
        let got = if gpu { run_gpu(c) } else { run_reference(c) };
        let Some(got) = got else {
            if !c.outputs.is_empty() {
                eprintln!(
                    "golden_channel: {side:9} {:40} not run (no such op)",
                    c.name
                );
            }
            continue;
        };
        runs += 1;
        match got {
            Err(e) => failures.push(format!(
                "{} {}: {side} vs PyTorch: error: {e}",
                c.name,
                c.describe()
            )),
            Ok(got) if got.len() != c.outputs.len() => failures.push(format!(
                "{} {}: {side} gives {} outputs, PyTorch {}",
                c.name,
                c.describe(),
                got.len(),
                c.outputs.len()
            )),
            Ok(got) => {
                for (g, (what, want)) in got.iter().zip(&c.outputs) {
                    let (rel, msg) = compare(g.view(), want.view(), tol);
                    eprintln!(
                        "golden_channel: {side:9} {:40} {what:8} max rel err {rel:.2e} ({tol:?})",
                        c.name
                    );
                    if let Some(msg) = msg {
                        failures.push(format!(
                            "{} {}: {side} vs PyTorch, {what}: {msg}",
                            c.name,
                            c.describe()
                        ));
                    }
                }
            }
        }
    }
    assert!(
        runs > 0 || common::golden::fuzzing(),
        "no golden cases for {family:?} on the {side}"
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
    let batch2 = |c: &Case| c.input_shape().is_some_and(|s| s[0] == 2);
    for (g, ch) in [(2, 6), (3, 12), (4, 8)] {
        any(
            &|c| matches!(&c.op, Op::Shuffle { groups, input } if *groups == g && input.shape()[1] == ch),
            &format!("channel shuffle g {g} of {ch} channels"),
        );
    }
    any(
        &|c| matches!(c.op, Op::Shuffle { .. }) && batch2(c),
        "a batch-2 shuffle",
    );
    any(
        &|c| matches!(&c.op, Op::Concat { inputs } if inputs.len() == 3),
        "a concatenation of 3 tensors",
    );
    any(
        &|c| matches!(&c.op, Op::Split { sections, .. } if sections.len() == 3),
        "a split into 3 tensors",
    );
    for a in [
        Activation::Relu,
        Activation::Relu6,
        Activation::HardSwish,
        Activation::Silu,
        Activation::Sigmoid,
        Activation::HardSigmoid,
    ] {
        any(
            &|c| matches!(c.op, Op::Add { act, .. } if act == a),
            &format!("add + {a:?}"),
        );
        any(
            &|c| matches!(c.op, Op::Activation { act, .. } if act == a),
            &format!("activation {a:?}"),
        );
    }
    let se = |c: &Case, pred: &dyn Fn(&SqueezeExcitationParams) -> bool| matches!(&c.op, Op::SqueezeExcitation { params, .. } if pred(params));
    any(
        &|c| se(c, &|p| p.scale_activation == Activation::Sigmoid),
        "SE with torchvision's default sigmoid gate",
    );
    any(
        &|c| {
            se(c, &|p| {
                p.activation == Activation::Relu && p.scale_activation == Activation::HardSigmoid
            })
        },
        "MobileNetV3's SE (ReLU, hardsigmoid)",
    );
    any(
        &|c| se(c, &|p| (p.input_channels, p.squeeze_channels) == (96, 24)),
        "SE 96 -> 24",
    );
    for (ch, k) in [(16, 3), (64, 3), (256, 5)] {
        any(
            &|c| matches!(&c.op, Op::Eca { channels, kernel_size, .. } if (*channels, *kernel_size) == (ch, k)),
            &format!("ECA C {ch} k {k}"),
        );
    }
    any(
        &|c| matches!(c.op, Op::EcaKernelSizes { .. }),
        "the ECA kernel-size table",
    );
    any(
        &|c| matches!(&c.op, Op::Cbam { spatial_bias, .. } if spatial_bias.is_some()),
        "CBAM with a spatial bias",
    );
    any(
        &|c| matches!(&c.op, Op::Cbam { spatial_bias, .. } if spatial_bias.is_none()),
        "CBAM without a spatial bias",
    );
    any(
        &|c| matches!(c.op, Op::Cbam { .. }) && batch2(c),
        "a batch-2 CBAM",
    );
    any(&|c| matches!(c.op, Op::Highway { .. }), "highway");
    any(
        &|c| matches!(c.op, Op::ResidualAttention { .. }),
        "residual attention",
    );
}

/// `eca_kernel_size(C)` against the reference code's formula (the script computes it with
/// `math.log(C, 2)`, as ECANet does, and checks it against `math.log2`), for every channel
/// count up to 2048 and for each ECA case.
#[test]
fn eca_kernel_size_matches_the_reference_code() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for c in load_cases() {
        let pairs: Vec<(usize, usize)> = match &c.op {
            Op::EcaKernelSizes {
                channels,
                kernel_sizes,
            } => channels
                .iter()
                .copied()
                .zip(kernel_sizes.iter().copied())
                .collect(),
            Op::Eca {
                channels,
                kernel_size,
                ..
            } => vec![(*channels, *kernel_size)],
            _ => continue,
        };
        for (ch, k) in pairs {
            checked += 1;
            let got = eca_kernel_size(ch);
            if got != k {
                failures.push(format!(
                    "{}: eca_kernel_size({ch}) = {got}, the reference code gives {k}",
                    c.name
                ));
            }
        }
    }
    assert!(checked > 2000, "only {checked} ECA kernel sizes checked");
    assert_no_failures(&failures);
}

#[test]
fn channel_shuffle_reference_matches_pytorch() {
    check_family(Family::Shuffle, false);
}

#[test]
fn channel_shuffle_gpu_matches_pytorch() {
    check_family(Family::Shuffle, true);
}

#[test]
fn concat_split_reference_matches_pytorch() {
    check_family(Family::ConcatSplit, false);
}

#[test]
fn concat_split_gpu_matches_pytorch() {
    check_family(Family::ConcatSplit, true);
}

#[test]
fn add_activation_reference_matches_pytorch() {
    check_family(Family::AddActivation, false);
}

#[test]
fn add_activation_gpu_matches_pytorch() {
    check_family(Family::AddActivation, true);
}

#[test]
fn squeeze_excitation_reference_matches_torchvision() {
    check_family(Family::SqueezeExcitation, false);
}

#[test]
fn squeeze_excitation_gpu_matches_torchvision() {
    check_family(Family::SqueezeExcitation, true);
}

#[test]
fn eca_reference_matches_pytorch() {
    check_family(Family::Eca, false);
}

#[test]
fn eca_gpu_matches_pytorch() {
    check_family(Family::Eca, true);
}

#[test]
fn cbam_reference_matches_pytorch() {
    check_family(Family::Cbam, false);
}

#[test]
fn cbam_gpu_matches_pytorch() {
    check_family(Family::Cbam, true);
}

#[test]
fn sdpa_reference_matches_pytorch() {
    check_family(Family::Sdpa, false);
}

#[test]
fn sdpa_gpu_matches_pytorch() {
    check_family(Family::Sdpa, true);
}

#[test]
fn highway_residual_attention_reference_matches_pytorch() {
    check_family(Family::HighwayResidual, false);
}

#[test]
fn highway_residual_attention_gpu_matches_pytorch() {
    check_family(Family::HighwayResidual, true);
}

/// The 1-D tensor `key`, or `None` where the case stores null.
fn optional_tensor1(case: &Value, name: &str, key: &str) -> Option<Array1<f32>> {
    match field(case, name, key) {
        Value::Null => None,
        _ => Some(tensor1(case, name, key)),
    }
}

/// The CBAM parameters a case's tensors imply.
fn cbam_params(
    input: &Array4<f32>,
    reduction_ratio: usize,
    pool_order: ChannelPoolOrder,
    spatial_weight: &Array4<f32>,
    spatial_bias: &Option<Array1<f32>>,
) -> CbamParams {
    CbamParams::new(input.shape()[1], pool_order)
        .reduction_ratio(reduction_ratio)
        .kernel_size(spatial_weight.shape()[2])
        .spatial_bias(spatial_bias.is_some())
}
