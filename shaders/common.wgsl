// Included by every kernel (`#include "common.wgsl"`, see src/shaders.rs).

// Invocations per workgroup, set from the kernel's declaration in Rust (src/launch.rs).
const WORKGROUP_SIZE: u32 = 64u; // @specialize

// The storage type of activation tensors: f32, or f16 in a context at half precision
// (F16 = 1; src/shaders.rs rewrites the alias and enables f16). Arithmetic stays in f32:
// read with f32(x[i]) / vec4<f32>(x4[i]), write Act(v) / vec4<Act>(v).
// Weights and biases of the layers that store them at the context's precision (`Wt`)
// follow the same rule: read f32(w[i]).
const F16: u32 = 0u; // @specialize
alias Act = f32; // @precision
alias Wt = f32; // @precision

// The workgroup's builtins, which every kernel reads beside its lane's
// (`@builtin(local_invocation_index) lid: u32`, a parameter of its own: WGSL's uniformity
// analysis takes a parameter as a whole, and a workgroup index that shares one with the
// lane counts as non-uniform, so that a barrier after an early exit of whole workgroups
// is refused by Chrome's Tint). Grids with more workgroups than the device allows per
// dimension are folded into two dimensions (`Gpu::grid`); the indices below unfold them.
struct Invocation {
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
}

// The linear index of the invocation's workgroup.
fn workgroup_index(inv: Invocation) -> u32 {
    return inv.wg.x + inv.wg.y * inv.nwg.x;
}

// The linear index of the invocation in the dispatch.
fn thread_index(inv: Invocation, lid: u32) -> u32 {
    return workgroup_index(inv) * WORKGROUP_SIZE + lid;
}

// Where plane `plane` (n * c + k) of an op's output lands when the op writes into
// channels [off, off + c) of a tensor of c + extra channels (a concatenation written in
// place, src/ops/upsample.rs): plane n * (c + extra) + off + k. The identity where
// extra = off = 0.
fn window_plane(plane: u32, c: u32, extra: u32, off: u32) -> u32 {
    return plane + (plane / c) * extra + off;
}

// NaN test on the bits: `v != v` may be folded away by compilers that assume no NaN.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// Neither infinite nor NaN (on the bits, see is_nan).
fn is_finite(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) < 0x7f800000u;
}

// NaN read at run time: a constant expression that evaluates to NaN is a shader-creation
// error in WGSL (Chrome's Tint refuses `bitcast<f32>(0x7fc00000u)`).
var<private> NAN_BITS: u32 = 0x7fc00000u;

// NaN lanes of v (on the bits, see is_nan).
fn nan_lanes(v: vec4<f32>) -> vec4<bool> {
    return (bitcast<vec4<u32>>(v) & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u);
}

// tanh from exp(-2|v|), which cannot overflow (the builtin may be evaluated as
// sinh / cosh, NaN for large |v| on some drivers).
fn tanh4(v: vec4<f32>) -> vec4<f32> {
    let e = exp(-2.0 * abs(v));
    let t = (1.0 - e) / (1.0 + e);
    return select(t, -t, v < vec4<f32>(0.0));
}

// erf by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7).
fn erf4(v: vec4<f32>) -> vec4<f32> {
    let a = abs(v);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741
        + t * (-1.453152027 + t * 1.061405429))));
    let r = 1.0 - poly * exp(-a * a);
    return select(r, -r, v < vec4<f32>(0.0));
}

// The activation with the given code (src/ops/mod.rs, `Activation::shader_code`):
// 0 none, 1 relu, 2 relu6, 3 sigmoid, 4 hardsigmoid, 5 hardswish, 6 silu, 7 tanh, 8 gelu,
// 9 gelu (tanh approximation), 10 mish (PyTorch formulas).
fn activation4(code: u32, v: vec4<f32>) -> vec4<f32> {
    // NaN in, NaN out, as PyTorch: WGSL leaves min / max / clamp and the builtins free on
    // NaN (GPUs' min and max return the other operand; SwiftShader's exp(NaN) is inf,
    // which made sigmoid(NaN) 0), so every activation keeps a NaN lane as it came.
    return select(activation4_numbers(code, v), v, nan_lanes(v));
}

// activation4 on the lanes that are numbers.
fn activation4_numbers(code: u32, v: vec4<f32>) -> vec4<f32> {
    switch code {
        case 1u: { return max(v, vec4<f32>(0.0)); }
        case 2u: { return clamp(v, vec4<f32>(0.0), vec4<f32>(6.0)); }
        case 3u: { return 1.0 / (1.0 + exp(-v)); }
        case 4u: { return clamp(v + 3.0, vec4<f32>(0.0), vec4<f32>(6.0)) / 6.0; }
        case 5u: { return v * clamp(v + 3.0, vec4<f32>(0.0), vec4<f32>(6.0)) / 6.0; }
        case 6u: { return v / (1.0 + exp(-v)); }
        case 7u: { return tanh4(v); }
        case 8u: { return 0.5 * v * (1.0 + erf4(v * 0.70710678118654752)); }
        case 9u: {
            return 0.5 * v * (1.0 + tanh4(0.79788456080286536 * (v + 0.044715 * v * v * v)));
        }
        case 10u: { return v * tanh4(log(1.0 + exp(v))); }
        default: { return v; }
    }
}
