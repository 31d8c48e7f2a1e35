// The pixel-block transposed convolution (conv_transpose_blocks_body.wgsl) reading its
// input and weights as texels (`launch::Access::Texels`: copied into 2-D textures, TEXEL_ROW
// vec4s to a row, by the recorder): vector gathers on CPU adapters, where storage loads
// run one invocation at a time (src/ops/conv_transpose.rs chooses it there).
#include "conv_transpose_blocks_body.wgsl"
#include "texels.wgsl"

@group(0) @binding(0) var<uniform> p: BlocksParams;
@group(0) @binding(1) var x: texture_2d<f32>;
// Weights: [C_out][C_in][KK4] vec4s; bias at the context's precision.
@group(0) @binding(2) var wt: texture_2d<f32>;
@group(0) @binding(3) var<storage, read> bias: array<Wt>;
@group(0) @binding(4) var<storage, read_write> y: array<vec4<Act>>;

fn load_x4(i: u32) -> vec4<f32> {
    return textureLoad(x, texel_at(i), 0);
}

fn load_w(i: u32) -> vec4<f32> {
    return textureLoad(wt, texel_at(i), 0);
}
