// Depthwise convolution writing its output (and reading a fused residual) as vec4s: the
// body of conv_depthwise.wgsl for output rows of a multiple of 4 pixels and strips of a
// multiple of 4 (src/ops/conv.rs chooses it).
#include "conv_depthwise_body.wgsl"

@group(0) @binding(0) var<uniform> p: DepthwiseParams;
@group(0) @binding(1) var<storage, read> x: array<Act>;
// Weights and bias: layer buffers at the context's precision (Wt); read as f32.
@group(0) @binding(2) var<storage, read> wt: array<Wt>;
@group(0) @binding(3) var<storage, read> bias: array<Wt>;
@group(0) @binding(4) var<storage, read_write> y: array<vec4<Act>>;
// The input again, as vec4s (VEC = 1).
@group(0) @binding(5) var<storage, read> x4: array<vec4<Act>>;
// The residual added in the store (RESIDUAL != 0).
@group(0) @binding(6) var<storage, read> res: array<vec4<Act>>;

fn load_x4(i: u32) -> vec4<f32> {
    return vec4<f32>(x4[i]);
}

fn store_strip(out_row: u32, ox0: u32, acc: ptr<function, array<f32, PX>>, b: f32) {
    var v: vec4<f32>;
    for (var j = 0u; j < PX; j++) {
        v[j % 4u] = (*acc)[j] + b;
        if (j % 4u == 3u && ox0 + j - 3u < p.ow) {
            let i = (out_row + ox0 + j - 3u) / 4u;
            var r = vec4<f32>(0.0);
            if (RESIDUAL != 0u) {
                r = vec4<f32>(res[i]);
            }
            y[i] = vec4<Act>(finish4(v, r));
        }
    }
}

