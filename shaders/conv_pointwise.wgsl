// Pointwise (1x1, stride 1, no padding, one group) convolution as a tiled matrix product:
// Y[n] (C_out x P) = W (C_out x C_in) * X[n] (C_in x P), P = H * W divisible by 4 (other
// sizes: conv_pointwise_scalar.wgsl, the same body with scalar loads and stores).
//
// Each invocation computes 4 * Q pixels (Q vec4 loads per input channel) for 4 * OC_VEC
// output channels, OC_VEC = 1..4 (OC_VEC vec4 weight loads per input channel), so every load feeds many
// multiply-adds. Weights are [C_in][C_out padded to 4 * OC_VEC] (src/ops/conv.rs).
#include "epilogue.wgsl"
#include "conv_pointwise_store4.wgsl"

// Register tile (see src/shaders.rs): arrays sized exactly by their loops' trip counts.
const Q: u32 = 4u; // @specialize
const OC_VEC: u32 = 2u; // @specialize
// The stores unrolled (see conv_pointwise_body.wgsl): accumulators stay in registers.
const STORE_LOOP: bool = false;

@group(0) @binding(0) var<uniform> p: PointwiseParams;
@group(0) @binding(1) var<storage, read> x: array<vec4<Act>>;
// Weights and bias: layer buffers at the context's precision (Wt); read as f32.
@group(0) @binding(2) var<storage, read> wt: array<vec4<Wt>>;
@group(0) @binding(3) var<storage, read> bias: array<Wt>;
@group(0) @binding(4) var<storage, read_write> y: array<vec4<Act>>;
// The residual added in the store (RESIDUAL != 0).
@group(0) @binding(5) var<storage, read> res: array<vec4<Act>>;
// The input gate's logits [N, C_in] (GATED): x * act(gate) is convolved, an SE
// block's scale applied as the input is read.
@group(0) @binding(6) var<storage, read> gate: array<Act>;

fn load_weights(i: u32) -> vec4<f32> {
    return vec4<f32>(wt[i]);
}

fn load_group(plane: u32, g: u32) -> vec4<f32> {
    return vec4<f32>(x[plane * (p.hw / 4u) + g]);
}

#include "conv_pointwise_body.wgsl"
