// Max pooling with indices (`max_pool2d(..., return_indices=True)`): one invocation per
// output element. Scans the window in row-major order and keeps a value when it is
// greater than the current maximum or NaN, PyTorch's CPU rule: ties keep the first
// position, NaN propagates (the last NaN's position is returned). Padding is never
// selected. The index is the flat position h * W + w within the input plane.
#include "common.wgsl"

override KH: u32 = 2u;
override KW: u32 = 2u;
override SH: u32 = 2u;
override SW: u32 = 2u;
override DH: u32 = 1u;
override DW: u32 = 1u;

struct PoolParams {
    planes: u32, // N * C
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    pad_h: u32,
    pad_w: u32,
    total: u32, // planes * oh * ow
}

@group(0) @binding(0) var<uniform> p: PoolParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> idx: array<i32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let o = linear_workgroup(wg, nwg) * 64u + lid;
    if (o >= p.total) {
        return;
    }
    let ox = o % p.ow;
    let oy = (o / p.ow) % p.oh;
    let plane = o / (p.ow * p.oh);
    let y0 = i32(oy * SH) - i32(p.pad_h);
    let x0 = i32(ox * SW) - i32(p.pad_w);
    let base = plane * p.h * p.w;
    var best = -bitcast<f32>(0x7f800000u); // -inf
    var best_i = -1;
    for (var ky = 0u; ky < KH; ky++) {
        let iy = y0 + i32(ky * DH);
        if (iy >= 0 && iy < i32(p.h)) {
            for (var kx = 0u; kx < KW; kx++) {
                let ix = x0 + i32(kx * DW);
                if (ix >= 0 && ix < i32(p.w)) {
                    let flat = iy * i32(p.w) + ix;
                    let v = x[base + u32(flat)];
                    // The first in-window position stands when every value is -inf.
                    if (best_i < 0 || v > best || v != v) {
                        best = v;
                        best_i = flat;
                    }
                }
            }
        }
    }
    y[o] = best;
    idx[o] = best_i;
}
