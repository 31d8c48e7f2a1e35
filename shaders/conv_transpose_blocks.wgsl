// The pixel-block transposed convolution (conv_transpose_blocks_body.wgsl) reading its
// input and weights from storage buffers.
#include "conv_transpose_blocks_body.wgsl"

@group(0) @binding(0) var<uniform> p: BlocksParams;
@group(0) @binding(1) var<storage, read> x: array<vec4<Act>>;
// Weights and bias: layer buffers at the context's precision (Wt); read as f32.
@group(0) @binding(2) var<storage, read> wt: array<vec4<Wt>>;
@group(0) @binding(3) var<storage, read> bias: array<Wt>;
@group(0) @binding(4) var<storage, read_write> y: array<vec4<Act>>;

fn load_x4(i: u32) -> vec4<f32> {
    return vec4<f32>(x[i]);
}

fn load_w(i: u32) -> vec4<f32> {
    return vec4<f32>(wt[i]);
}
