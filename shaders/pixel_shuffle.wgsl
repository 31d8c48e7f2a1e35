// Pixel shuffle (`F.pixel_shuffle`, depth to space) and its inverse (`F.pixel_unshuffle`,
// MODE 1) with factor r: y[n, c, h r + i, w r + j] = x[n, c r^2 + i r + j, h, w]. One
// invocation per output element, which gathers its input.
#include "common.wgsl"

override MODE: u32 = 0u;

struct PixelShuffleParams {
    total: u32, // N * C_out * OH * OW
    c_out: u32,
    oh: u32,
    ow: u32,
    c_in: u32,
    h: u32,
    w: u32,
    r: u32,
}

@group(0) @binding(0) var<uniform> p: PixelShuffleParams;
@group(0) @binding(1) var<storage, read> x: array<Act>;
@group(0) @binding(2) var<storage, read_write> y: array<Act>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let o = thread_index(inv, lid);
    if (o >= p.total) {
        return;
    }
    let ox = o % p.ow;
    let oy = (o / p.ow) % p.oh;
    let oc = (o / (p.ow * p.oh)) % p.c_out;
    let n = o / (p.ow * p.oh * p.c_out);
    var ic: u32;
    var iy: u32;
    var ix: u32;
    if (MODE == 0u) {
        ic = oc * p.r * p.r + (oy % p.r) * p.r + ox % p.r;
        iy = oy / p.r;
        ix = ox / p.r;
    } else {
        let k = oc % (p.r * p.r);
        ic = oc / (p.r * p.r);
        iy = oy * p.r + k / p.r;
        ix = ox * p.r + k % p.r;
    }
    y[o] = x[((n * p.c_in + ic) * p.h + iy) * p.w + ix];
}
