// The activations with parameters, PyTorch's formulas, in one place for both their forms:
// fused into a store after its activation (param_activation.wgsl) and standalone
// (activation_param.wgsl, parameters from a uniform).
#include "common.wgsl"

// Kinds: 0 none, 1 leaky_relu (a: slope), 2 elu (a: alpha), 3 hardtanh (a, b: bounds),
// 4 softplus (a: beta, b: threshold). A NaN lane is kept as it came (see activation4).
fn param_formula4(kind: u32, v: vec4<f32>, a: f32, b: f32) -> vec4<f32> {
    return select(param_formula4_numbers(kind, v, a, b), v, nan_lanes(v));
}

fn param_formula4_numbers(kind: u32, v: vec4<f32>, a: f32, b: f32) -> vec4<f32> {
    switch kind {
        case 1u: { return select(a * v, v, v >= vec4<f32>(0.0)); }
        case 2u: { return select(a * (exp(v) - 1.0), v, v > vec4<f32>(0.0)); }
        case 3u: { return clamp(v, vec4<f32>(a), vec4<f32>(b)); }
        case 4u: {
            let z = a * v;
            return select(log(1.0 + exp(z)) / a, v, z > vec4<f32>(b));
        }
        default: { return v; }
    }
}
