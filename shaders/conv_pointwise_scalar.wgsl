// Pointwise convolution for planes whose pixel count is not a multiple of 4 (7 x 7 maps,
// odd sizes): the body of conv_pointwise.wgsl with each pixel group read as four scalar
// loads (the last group clamped to the plane) and written as up to four scalar stores.
#include "epilogue.wgsl"

// Register tile (see src/shaders.rs): arrays sized exactly by their loops' trip counts.
const Q: u32 = 4u; // @specialize
const OC_VEC: u32 = 2u; // @specialize

@group(0) @binding(0) var<uniform> p: PointwiseParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
// The residual added in the store (RESIDUAL != 0).
@group(0) @binding(5) var<storage, read> res: array<f32>;

fn load_group(plane: u32, g: u32) -> vec4<f32> {
    let size = p.hw;
    let base = plane * size;
    let last = size - 1u;
    let i = 4u * g;
    return vec4<f32>(
        x[base + min(i, last)],
        x[base + min(i + 1u, last)],
        x[base + min(i + 2u, last)],
        x[base + min(i + 3u, last)],
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
                r = res[i];
            }
            y[i] = finish(v[k], r);
        }
    }
}

#include "conv_pointwise_body.wgsl"
