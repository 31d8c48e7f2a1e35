// The direct convolution (conv_direct_body.wgsl) reading its input and weights as texels:
// each binding holds a buffer's vec4s copied into a 2-D texture, TEXEL_ROW to a row (the
// recorder makes the copy, see `launch::Access::Texels`). CPU adapters run texel fetches
// as vector gathers over the invocations of a SIMD register but storage loads one
// invocation at a time, so they take this variant (src/ops/conv.rs). With VEC = 1 the row
// segment is fetched as aligned vec4s; otherwise each input value is picked out of its
// texel.
// The stores in a loop (see store_tiles in conv_tiles.wgsl): CPU adapters compile faster.
const STORE_LOOP: bool = true;
#include "conv_direct_body.wgsl"
#include "texels.wgsl"
#include "conv_tiles_out4.wgsl"

@group(0) @binding(0) var<uniform> p: TiledConvParams;
@group(0) @binding(1) var x: texture_2d<f32>;
// Weights: the blocked layout of conv_direct.wgsl; bias at the context's precision.
@group(0) @binding(2) var wt: texture_2d<f32>;
@group(0) @binding(3) var<storage, read> bias: array<Wt>;
@group(0) @binding(4) var<storage, read_write> y: array<vec4<Act>>;
// The residual added in the store (RESIDUAL != 0).
@group(0) @binding(5) var<storage, read> res: array<vec4<Act>>;

fn load_x4(i: u32) -> vec4<f32> {
    return textureLoad(x, texel_at(i), 0);
}

fn load_at(i: u32) -> f32 {
    return load_x4(i / 4u)[i % 4u];
}

fn load_x(base: u32, ix: i32) -> f32 {
    if (PAD_MODE != 0u) {
        return load_at(base + u32(pad_index(ix, i32(p.w))));
    }
    let inside = ix >= 0 && ix < i32(p.w);
    let v = load_at(base + u32(clamp(ix, 0, i32(p.w) - 1)));
    return select(0.0, v, inside);
}

fn load_w(i: u32) -> vec4<f32> {
    return textureLoad(wt, texel_at(i), 0);
}
