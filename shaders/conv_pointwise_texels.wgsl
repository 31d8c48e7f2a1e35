// The pointwise convolution of conv_pointwise.wgsl reading its input and weights as
// texels: each binding holds a buffer's vec4s copied into a 2-D texture, TEXEL_ROW to a
// row (the recorder makes the copy, see `launch::Access::Texels`). CPU adapters run
// texel fetches as vector gathers over the invocations of a SIMD register but storage
// loads one invocation at a time (lavapipe: 5x the load throughput), so they take this
// variant (src/ops/conv.rs). Planes that are not a multiple of 4 pixels (7 x 7 maps, not
// ALIGNED) read each group of 4 pixels from the two texels it spans.
#include "epilogue.wgsl"
#include "conv_pointwise_store4.wgsl"
#include "texels.wgsl"

// Register tile (see src/shaders.rs): arrays sized exactly by their loops' trip counts.
const Q: u32 = 4u; // @specialize
const OC_VEC: u32 = 2u; // @specialize
// The stores in a loop (see conv_pointwise_body.wgsl): CPU adapters compile faster.
const STORE_LOOP: bool = true;

@group(0) @binding(0) var<uniform> p: PointwiseParams;
@group(0) @binding(1) var x: texture_2d<f32>;
// Weights: the blocked layout of conv_pointwise.wgsl; bias at the context's precision.
@group(0) @binding(2) var wt: texture_2d<f32>;
@group(0) @binding(3) var<storage, read> bias: array<Wt>;
@group(0) @binding(4) var<storage, read_write> y: array<vec4<Act>>;
// The residual added in the store (RESIDUAL != 0).
@group(0) @binding(5) var<storage, read> res: array<vec4<Act>>;
// The input gate's logits [N, C_in] (GATED): x * act(gate) is convolved, an SE
// block's scale applied as the input is read.
@group(0) @binding(6) var<storage, read> gate: array<Act>;

fn load_weights(i: u32) -> vec4<f32> {
    return textureLoad(wt, texel_at(i), 0);
}

fn load_group(plane: u32, g: u32) -> vec4<f32> {
    if (ALIGNED) {
        return textureLoad(x, texel_at(plane * (p.hw / 4u) + g), 0);
    }
    // The group starts `o` values into texel f / 4. Values past the plane (or the input)
    // land only in lanes that are not stored.
    let f = plane * p.hw + 4u * g;
    let o = f % 4u;
    let a = textureLoad(x, texel_at(f / 4u), 0);
    let b = textureLoad(x, texel_at(f / 4u + 1u), 0);
    var v = select(a, vec4<f32>(a.yzw, b.x), o == 1u);
    v = select(v, vec4<f32>(a.zw, b.xy), o == 2u);
    return select(v, vec4<f32>(a.w, b.xyz), o == 3u);
}

#include "conv_pointwise_body.wgsl"
