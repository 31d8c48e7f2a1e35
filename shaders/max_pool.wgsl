// Max pooling with indices (`max_pool2d(..., return_indices=True)`): one invocation per
// strip of PX outputs of a row. Scans the window in row-major order and keeps a value when it is
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
    strips_x: u32, // ceil(ow / PX)
    total: u32, // planes * oh * strips_x
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Outputs per invocation along a row: integer division by a runtime value is scalarised
// on SIMD-on-CPU drivers, so the index decode is paid once per strip, not per output.
const PX: u32 = 8u;

@group(0) @binding(0) var<uniform> p: PoolParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> idx: array<i32>;

// The first of start, start + d, start + 2d, ... that is not negative.
fn first_inside(start: i32, d: u32) -> i32 {
    if (start >= 0) {
        return start;
    }
    let steps = (u32(-start) + d - 1u) / d;
    return start + i32(steps * d);
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let s = linear_workgroup(wg, nwg) * 64u + lid;
    if (s >= p.total) {
        return;
    }
    let ox0 = (s % p.strips_x) * PX;
    let row = s / p.strips_x;
    let oy = row % p.oh;
    let plane = row / p.oh;
    let y0 = i32(oy * SH) - i32(p.pad_h);
    let base = plane * p.h * p.w;
    let fy = first_inside(y0, DH);
    for (var j = 0u; j < PX; j++) {
        let ox = ox0 + j;
        if (ox < p.ow) {
            let x0 = i32(ox * SW) - i32(p.pad_w);
            // PyTorch starts from -inf at the first dilated row / column inside the input;
            // a window with no element inside keeps exactly that (-inf, that position).
            let fx = first_inside(x0, DW);
            var best = -bitcast<f32>(0x7f800000u);
            var best_i = fy * i32(p.w) + fx;
            for (var ky = 0u; ky < KH; ky++) {
                let iy = y0 + i32(ky * DH);
                if (iy >= 0 && iy < i32(p.h)) {
                    for (var kx = 0u; kx < KW; kx++) {
                        let ix = x0 + i32(kx * DW);
                        if (ix >= 0 && ix < i32(p.w)) {
                            let flat = iy * i32(p.w) + ix;
                            let v = x[base + u32(flat)];
                            if (v > best || is_nan(v)) {
                                best = v;
                                best_i = flat;
                            }
                        }
                    }
                }
            }
            let o = row * p.ow + ox;
            y[o] = best;
            idx[o] = best_i;
        }
    }
}
