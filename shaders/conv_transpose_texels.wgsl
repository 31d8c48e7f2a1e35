// The gather transposed convolution (conv_transpose_body.wgsl) reading its input and
// weights as texels (`launch::Access::Texels`: copied into 2-D textures, TEXEL_ROW vec4s to
// a row, by the recorder; each input value picked out of its texel): vector gathers on CPU
// adapters, where storage loads run one invocation at a time (src/ops/conv_transpose.rs
// chooses it there).
// The stores in a loop (see store_tiles in conv_tiles.wgsl): CPU adapters compile faster.
const STORE_LOOP: bool = true;
#include "conv_transpose_body.wgsl"
#include "texels.wgsl"
#include "conv_tiles_out.wgsl"

@group(0) @binding(0) var<uniform> p: TiledConvParams;
@group(0) @binding(1) var x: texture_2d<f32>;
// Weights: the blocked layout of conv_transpose.wgsl; bias at the context's precision.
@group(0) @binding(2) var wt: texture_2d<f32>;
@group(0) @binding(3) var<storage, read> bias: array<Wt>;
@group(0) @binding(4) var<storage, read_write> y: array<Act>;
// A residual added in the store (RESIDUAL != 0).
@group(0) @binding(5) var<storage, read> res: array<Act>;

fn load_w(i: u32) -> vec4<f32> {
    return textureLoad(wt, texel_at(i), 0);
}

fn load_x(base: u32, ix: i32) -> f32 {
    let inside = ix >= 0 && ix < i32(p.w);
    let i = base + u32(clamp(ix, 0, i32(p.w) - 1));
    let v = textureLoad(x, texel_at(i / 4u), 0)[i % 4u];
    return select(0.0, v, inside);
}
