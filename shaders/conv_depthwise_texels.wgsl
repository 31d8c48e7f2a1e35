// conv_depthwise_vec.wgsl (vec4 stores) with its aligned vec4 row loads (VEC = 1) read as
// texels: the input copied into a 2-D texture by the recorder (`launch::Access::Texels`).
// CPU adapters fetch texels with vector gathers but load storage buffers one invocation
// at a time (src/ops/conv.rs chooses this variant there).
#include "conv_depthwise_body.wgsl"
#include "conv_depthwise_store4.wgsl"
#include "texels.wgsl"

@group(0) @binding(0) var<uniform> p: DepthwiseParams;
@group(0) @binding(1) var<storage, read> x: array<Act>;
// Weights and bias: layer buffers at the context's precision (Wt); read as f32.
@group(0) @binding(2) var<storage, read> wt: array<Wt>;
@group(0) @binding(3) var<storage, read> bias: array<Wt>;
@group(0) @binding(4) var<storage, read_write> y: array<vec4<Act>>;
// The input again, as vec4 texels (VEC = 1).
@group(0) @binding(5) var x4: texture_2d<f32>;
// The residual added in the store (RESIDUAL != 0).
@group(0) @binding(6) var<storage, read> res: array<vec4<Act>>;

fn load_x4(i: u32) -> vec4<f32> {
    return textureLoad(x4, texel_at(i), 0);
}
