// Pointwise convolution for planes whose pixel count is not a multiple of 4 (7 x 7 maps,
// odd sizes): the body of conv_pointwise.wgsl with each pixel group read as four scalar
// loads (the last group clamped to the plane) and written as up to four scalar stores.
#include "epilogue.wgsl"

// Register tile (see src/shaders.rs): arrays sized exactly by their loops' trip counts.
const Q: u32 = 4u; // @specialize
const OC_VEC: u32 = 2u; // @specialize
// The stores unrolled (see conv_pointwise_body.wgsl): accumulators stay in registers.
const STORE_LOOP: bool = false;

@group(0) @binding(0) var<uniform> p: PointwiseParams;
@group(0) @binding(1) var<storage, read> x: array<Act>;
// Weights and bias: layer buffers at the context's precision (Wt); read as f32.
@group(0) @binding(2) var<storage, read> wt: array<vec4<Wt>>;
@group(0) @binding(3) var<storage, read> bias: array<Wt>;
@group(0) @binding(4) var<storage, read_write> y: array<Act>;
// The residual added in the store (RESIDUAL != 0).
@group(0) @binding(5) var<storage, read> res: array<Act>;
// The input gate's logits [N, C_in] (GATED): x * act(gate) is convolved, an SE
// block's scale applied as the input is read.
@group(0) @binding(6) var<storage, read> gate: array<Act>;

fn load_weights(i: u32) -> vec4<f32> {
    return vec4<f32>(wt[i]);
}

fn load_group(plane: u32, g: u32) -> vec4<f32> {
    let size = p.hw;
    let base = plane * size;
    let last = size - 1u;
    let i = 4u * g;
    return vec4<f32>(
        f32(x[base + min(i, last)]),
        f32(x[base + min(i + 1u, last)]),
        f32(x[base + min(i + 2u, last)]),
        f32(x[base + min(i + 3u, last)]),
    );
}

fn store_group(plane: u32, g: u32, v: vec4<f32>) {
    let size = p.hw;
    for (var k = 0u; k < 4u; k++) {
        let pixel = 4u * g + k;
        if (pixel < size) {
            let i = plane * size + pixel;
            var r = 0.0;
            if (RESIDUAL != 0u) {
                r = f32(res[i]);
            }
            y[i] = Act(finish(v[k], r));
        }
    }
}

#include "conv_pointwise_body.wgsl"
