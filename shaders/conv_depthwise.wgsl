// Depthwise convolution (groups == C_in) with channel multiplier m = C_out / C_in:
// output channel c reads input channel c / m with its own kH x kW filter.
//
// Each invocation computes PY output rows of one channel, PX pixels at a time; each input
// row segment is loaded once and reused by every kernel column and every output row that
// reads it. Indices are decoded once per invocation: integer division by runtime values
// is scalarised on SIMD-on-CPU drivers such as lavapipe and would otherwise cost more
// than the loads. Weights are PyTorch's [C_out][1][kH][kW]. Invocations are numbered
// linearly over (n, c, block of PY output rows, YS apart: see conv_depthwise_body.wgsl).
#include "conv_depthwise_body.wgsl"

@group(0) @binding(0) var<uniform> p: DepthwiseParams;
@group(0) @binding(1) var<storage, read> x: array<Act>;
// Weights and bias: layer buffers at the context's precision (Wt); read as f32.
@group(0) @binding(2) var<storage, read> wt: array<Wt>;
@group(0) @binding(3) var<storage, read> bias: array<Wt>;
@group(0) @binding(4) var<storage, read_write> y: array<Act>;
// The input again, as vec4s (VEC = 1).
@group(0) @binding(5) var<storage, read> x4: array<vec4<Act>>;
// The residual added in the store (RESIDUAL != 0).
@group(0) @binding(6) var<storage, read> res: array<Act>;

fn load_x4(i: u32) -> vec4<f32> {
    return vec4<f32>(x4[i]);
}

fn store_strip(out_row: u32, ox0: u32, acc: ptr<function, array<f32, PX>>, b: f32) {
    for (var j = 0u; j < PX; j++) {
        if (ox0 + j < p.ow) {
            let i = out_row + ox0 + j;
            var r = 0.0;
            if (RESIDUAL != 0u) {
                r = f32(res[i]);
            }
            y[i] = Act(finish((*acc)[j] + b, r));
        }
    }
}

