// Activations with parameters, as standalone ops (PyTorch's formulas), one invocation per
// PX consecutive elements of the flat NCHW index:
// MODE 0 leaky_relu   y = x >= 0 ? x : a * x                        (a: negative_slope)
// MODE 1 elu          y = x > 0 ? x : a * (exp(x) - 1)               (a: alpha)
// MODE 2 hardtanh     y = clamp(x, a, b), NaN kept                   (a, b: min_val, max_val)
// MODE 3 softplus     y = a x > b ? x : ln(1 + exp(a x)) / a          (a: beta, b: threshold)
// MODE 4 prelu        y = x >= 0 ? x : w[c] * x   (w: one weight, or one per channel)
// Modes 0-3 are param_formula.wgsl's formulas (its kinds 1-4), NaN kept.
#include "param_formula.wgsl"

override MODE: u32 = 0u;
const PX: u32 = 4u;

struct ParamActivationParams {
    len: u32, // N * C * H * W
    c: u32,
    hw: u32,
    per_channel: u32, // prelu: 1 when w has one weight per channel
    a: f32,
    b: f32,
}

@group(0) @binding(0) var<uniform> p: ParamActivationParams;
@group(0) @binding(1) var<storage, read> x: array<Act>;
@group(0) @binding(2) var<storage, read_write> y: array<Act>;
// PReLU's weights (MODE 4), f32.
@group(0) @binding(3) var<storage, read> w: array<f32>;

fn apply(v: f32, i: u32) -> f32 {
    if (MODE == 4u) {
        var k = 0u;
        if (p.per_channel == 1u) {
            k = (i / p.hw) % p.c;
        }
        // NaN kept as it came (see activation4 in common.wgsl).
        return select(select(w[k] * v, v, v >= 0.0), v, is_nan(v));
    }
    // Modes 0-3 are param_formula.wgsl's kinds 1-4.
    return param_formula4(MODE + 1u, vec4<f32>(v), p.a, p.b).x;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let t = thread_index(inv, lid);
    for (var j = 0u; j < PX; j++) {
        let i = t * PX + j;
        if (i < p.len) {
            y[i] = Act(apply(f32(x[i]), i));
        }
    }
}
