// Integer-factor nearest upsampling and bed-of-nails unpooling, four input columns per
// invocation: one vec4 load, then SX vec4 stores on each of the SY output rows, so the
// op moves its bytes about as cheaply as a plain copy. Used when every output (oy, ox)
// takes input (oy / SY, ox / SX) (src/ops/upsample.rs checks this against PyTorch's
// index rule) and the input width is a multiple of 4. The output may be a channel window
// of a wider tensor (window_plane). BED_OF_NAILS writes zeros off the
// (SY, SX) grid instead of repeating the value.
// ADDEND: the resized map is the addend of a residual sum, each output
// activation4(SUM_ACT, res + resized) (`act(x + F.interpolate(...))`, the resized map
// never stored; the output is then a whole tensor, res of its shape).
#include "common.wgsl"

override SX: u32 = 2u;
override SY: u32 = 2u;
override BED_OF_NAILS: bool = false;
override ADDEND: bool = false;
override SUM_ACT: u32 = 0u;

struct ResampleIntParams {
    rows: u32, // N * C * H (input rows)
    w4: u32, // W / 4
    h: u32, // H
    // The output's channel window (window_plane in common.wgsl).
    c: u32,
    extra: u32,
    off: u32,
}

@group(0) @binding(0) var<uniform> p: ResampleIntParams;
@group(0) @binding(1) var<storage, read> x: array<vec4<Act>>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4<Act>>;
@group(0) @binding(3) var<storage, read> res: array<vec4<Act>>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(inv, lid);
    if (i >= p.rows * p.w4) {
        return;
    }
    let row = i / p.w4;
    let j = i % p.w4;
    // The input row's place in the output (its plane moved to the channel window).
    let out_in_row = window_plane(row / p.h, p.c, p.extra, p.off) * p.h + row % p.h;
    let v = vec4<f32>(x[i]);
    let out_w4 = p.w4 * SX; // output row length in vec4
    for (var r = 0u; r < SY; r++) {
        let out_row = (out_in_row * SY + r) * out_w4 + j * SX;
        for (var t = 0u; t < SX; t++) {
            // Output elements 4t .. 4t + 3 of this run of 4 * SX take input 4t / SX ...
            var o = vec4<f32>();
            for (var e = 0u; e < 4u; e++) {
                let m = 4u * t + e;
                var value = v[m / SX];
                if (BED_OF_NAILS && (r != 0u || m % SX != 0u)) {
                    value = 0.0;
                }
                o[e] = value;
            }
            if (ADDEND) {
                o = activation4(SUM_ACT, vec4<f32>(res[out_row + t]) + o);
            }
            y[out_row + t] = vec4<Act>(o);
        }
    }
}
