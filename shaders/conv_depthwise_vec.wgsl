// Depthwise convolution writing its output (and reading a fused residual) as vec4s: the
// body of conv_depthwise.wgsl for output rows of a multiple of 4 pixels and strips of a
// multiple of 4 (src/ops/conv.rs chooses it).
#include "conv_depthwise_body.wgsl"
#include "conv_depthwise_store4.wgsl"

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
