// The store of the convolutions: the fused activation, a fused residual and a fused
// channel shuffle (`#include "epilogue.wgsl"`).
#include "activation.wgsl"
#include "param_activation.wgsl"

// A residual fused into the store: 0 none, 1 act(v) + r (joining after the activation, as
// MobileNet's linear bottlenecks), 2 act(v + r) (before it, as ResNet's blocks), 3
// then(act(v) + r) (a second activation after it, as ENet's bottlenecks).
override RESIDUAL: u32 = 0u;

// RESIDUAL 3's second activation: the activation THEN_ACT (an activation4 code), then the
// one with parameters THEN_PACT (a param_formula4 kind, 0 none) with the parameters
// store_args.then_a and .then_b (param_activation.wgsl).
override THEN_ACT: u32 = 0u;
override THEN_PACT: u32 = 0u;

// Both activations, in order.
fn activate_all4(v: vec4<f32>) -> vec4<f32> {
    return param_activate4(activate4(v));
}

// One call of the activations whatever RESIDUAL is: every store inlines this, and the
// driver's compile time grows with each inlined copy before the constants fold.
fn finish4(v: vec4<f32>, r: vec4<f32>) -> vec4<f32> {
    let a = activate_all4(select(v, v + r, RESIDUAL == 2u));
    if (RESIDUAL == 3u) {
        let s = activation4(THEN_ACT, a + r);
        return param_formula4(THEN_PACT, s, store_args.then_a, store_args.then_b);
    }
    return select(a, a + r, RESIDUAL == 1u);
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
