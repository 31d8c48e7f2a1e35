// The columns of a convolution's input (im2col), for ConvKernel::Im2colTexels: row
// (ci * KH + ky) * KW + kx of image n holds, for every output pixel, the input value tap
// (ky, kx) of channel ci reads (the padding's value outside the map), so the convolution
// becomes the pointwise convolution of these C * KH * KW channels with the weights as they
// are packed for the direct kernel (src/ops/conv.rs). Each invocation writes four
// consecutive values of the columns (one vec4), which span two rows where the output
// plane is not a multiple of 4 pixels (7 x 7 maps: the pointwise texel kernel reads such
// planes as they lie); the input is read as texels (`launch::Access::Texels`): vector gathers on CPU adapters,
// which take this kernel.
#include "padding.wgsl"
#include "window.wgsl"
#include "texels.wgsl"

struct Im2colParams {
    c: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    pad_h: u32, // padding before (top)
    pad_w: u32, // padding before (left)
    total: u32, // N * C * KH * KW * OH * OW
}

@group(0) @binding(0) var<uniform> p: Im2colParams;
@group(0) @binding(1) var x: texture_2d<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4<Act>>;

// Input (iy, ix) of the plane starting at value `base`, padded as PAD_MODE says.
fn value(base: u32, iy: i32, ix: i32) -> f32 {
    let outside = iy < 0 || iy >= i32(p.h) || ix < 0 || ix >= i32(p.w);
    if (PAD_MODE == 0u && outside) {
        return 0.0;
    }
    let i = base + u32(pad_index(iy, i32(p.h))) * p.w + u32(pad_index(ix, i32(p.w)));
    return textureLoad(x, texel_at(i / 4u), 0)[i % 4u];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let g = thread_index(inv, lid);
    if (4u * g >= p.total) {
        return;
    }
    let hw = p.oh * p.ow;
    // Values past the end (the last vec4 of a total that is not a multiple of 4) are 0.
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        let f = 4u * g + j;
        let px = f % hw;
        let row = f / hw; // n * C * KH * KW + (ci * KH + ky) * KW + kx
        let r = row % (p.c * KH * KW);
        let n = row / (p.c * KH * KW);
        let ci = r / (KH * KW);
        let ky = (r / KW) % KH;
        let kx = r % KW;
        let base = (n * p.c + ci) * p.h * p.w;
        let iy = i32((px / p.ow) * SH + ky * DH) - i32(p.pad_h);
        let ix = i32((px % p.ow) * SW + kx * DW) - i32(p.pad_w);
        if (f < p.total) {
            v[j] = value(base, iy, ix);
        }
    }
    y[g] = vec4<Act>(v);
}
