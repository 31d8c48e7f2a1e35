// The gather transposed convolution (conv_transpose_body.wgsl) reading its input and
// weights from storage buffers: every device, every configuration.
// The stores unrolled (see store_tiles in conv_tiles.wgsl): accumulators stay in registers.
const STORE_LOOP: bool = false;
#include "conv_transpose_body.wgsl"
#include "conv_tiles_out.wgsl"

@group(0) @binding(0) var<uniform> p: TiledConvParams;
@group(0) @binding(1) var<storage, read> x: array<Act>;
// Weights and bias: layer buffers at the context's precision (Wt); read as f32.
@group(0) @binding(2) var<storage, read> wt: array<vec4<Wt>>;
@group(0) @binding(3) var<storage, read> bias: array<Wt>;
@group(0) @binding(4) var<storage, read_write> y: array<Act>;
// A residual added in the store (RESIDUAL != 0).
@group(0) @binding(5) var<storage, read> res: array<Act>;

fn load_w(i: u32) -> vec4<f32> {
    return vec4<f32>(wt[i]);
}

fn load_x(base: u32, ix: i32) -> f32 {
    let inside = ix >= 0 && ix < i32(p.w);
    let v = f32(x[base + u32(clamp(ix, 0, i32(p.w) - 1))]);
    return select(0.0, v, inside);
}
