// An activation with parameters after a fused activation (`#include "param_activation.wgsl"`),
// set from `Option<ParamActivation>` in src/ops/conv.rs.
#include "common.wgsl"

// An activation with parameters after the activation: 0 none, 1 leaky_relu (a: slope),
// 2 elu (a: alpha), 3 hardtanh (a, b: bounds, NaN kept), 4 softplus (a: beta, b:
// threshold); PyTorch's formulas, as activation_param.wgsl. A and B are f32 bit patterns.
override PACT: u32 = 0u;
override PACT_A: u32 = 0u;
override PACT_B: u32 = 0u;

fn param_activate4(v: vec4<f32>) -> vec4<f32> {
    // NaN kept as it came (see activation4).
    return select(param_activate4_numbers(v), v, nan_lanes(v));
}

fn param_activate4_numbers(v: vec4<f32>) -> vec4<f32> {
    let a = bitcast<f32>(PACT_A);
    let b = bitcast<f32>(PACT_B);
    switch PACT {
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
