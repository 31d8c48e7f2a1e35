// The store of the convolutions: the fused activation, a fused residual and a fused
// channel shuffle (`#include "epilogue.wgsl"`).
#include "activation.wgsl"

// A residual fused into the store: 0 none, 1 act(v) + r (joining after the activation, as
// MobileNet's linear bottlenecks), 2 act(v + r) (before it, as ResNet's blocks).
override RESIDUAL: u32 = 0u;

// An activation with parameters after the activation: 0 none, 1 leaky_relu (a: slope),
// 2 elu (a: alpha), 3 hardtanh (a, b: bounds, NaN kept), 4 softplus (a: beta, b:
// threshold); PyTorch's formulas, as activation_param.wgsl. A and B are f32 bit patterns.
override PACT: u32 = 0u;
override PACT_A: u32 = 0u;
override PACT_B: u32 = 0u;

fn param_activate4(v: vec4<f32>) -> vec4<f32> {
    let a = bitcast<f32>(PACT_A);
    let b = bitcast<f32>(PACT_B);
    switch PACT {
        case 1u: { return select(a * v, v, v >= vec4<f32>(0.0)); }
        case 2u: { return select(a * (exp(v) - 1.0), v, v > vec4<f32>(0.0)); }
        case 3u: { return select(clamp(v, vec4<f32>(a), vec4<f32>(b)), v, nan_lanes(v)); }
        case 4u: {
            let z = a * v;
            return select(log(1.0 + exp(z)) / a, v, z > vec4<f32>(b));
        }
        default: { return v; }
    }
}

// Both activations, in order.
fn activate_all4(v: vec4<f32>) -> vec4<f32> {
    return param_activate4(activate4(v));
}

fn finish4(v: vec4<f32>, r: vec4<f32>) -> vec4<f32> {
    switch RESIDUAL {
        case 1u: {
            return activate_all4(v) + r;
        }
        case 2u: {
            return activate_all4(v + r);
        }
        default: {
            return activate_all4(v);
        }
    }
}

fn finish(v: f32, r: f32) -> f32 {
    return finish4(vec4<f32>(v), vec4<f32>(r)).x;
}

// A channel shuffle fused into the store (ShuffleNet): with SHUFFLE_G > 0, output channel
// co is written where channel_shuffle(groups = SHUFFLE_G) puts it,
// (co mod (C / g)) * g + floor(co / (C / g)), so no separate shuffle pass is needed.
override SHUFFLE_G: u32 = 0u;

fn shuffled_channel(co: u32, channels: u32) -> u32 {
    if (SHUFFLE_G == 0u) {
        return co;
    }
    // max(): the division is constant-folded even where SHUFFLE_G is 0.
    let g = max(SHUFFLE_G, 1u);
    let per = channels / g;
    return (co % per) * g + co / per;
}
