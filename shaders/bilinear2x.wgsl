// Bilinear 2x upsampling with align_corners = False (PyTorch's source index
// (o + 0.5) / 2 - 0.5, clamped at 0): output column 2j takes inputs (j - 1, j) with
// weights (1/4, 3/4) (column 0: (0, 1) with (1, 0)), column 2j + 1 takes (j, j + 1) with
// (3/4, 1/4), the right neighbour clamped at the edge; rows likewise. Each invocation
// writes 8 outputs (two vec4 stores) of one row from one vec4 and two neighbours of each
// of its two input rows, blending in the same order as resample.wgsl:
// ly0 * (lx0 * x00 + lx1 * x01) + ly1 * (lx0 * x10 + lx1 * x11).
// Needs the input width divisible by 4 (src/ops/upsample.rs checks).
#include "common.wgsl"

struct Bilinear2xParams {
    planes: u32,
    h: u32,
    w: u32, // input width
    w4: u32, // w / 4
    total: u32, // planes * 2h * w4
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Bilinear2xParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<vec4<f32>>;

// The 8 horizontally blended values of output columns 8k .. 8k + 7 from input row `row`.
fn blend_row(row: u32, k: u32) -> array<f32, 8> {
    let base = row * p.w;
    let v = x4[row * p.w4 + k];
    let left = x[base + max(4u * k, 1u) - 1u];
    let right = x[base + min(4u * k + 4u, p.w - 1u)];
    var vals = array<f32, 6>(left, v.x, v.y, v.z, v.w, right);
    var h: array<f32, 8>;
    for (var t = 0u; t < 4u; t++) {
        // Even column 2j, j = 4k + t: (j - 1, j) with (1/4, 3/4); column 0: (0, 1), (1, 0).
        if (k == 0u && t == 0u) {
            // (The input width is at least 4, so input 1 exists.)
            h[0] = 1.0 * vals[1] + 0.0 * vals[2];
        } else {
            h[2u * t] = 0.25 * vals[t] + 0.75 * vals[t + 1u];
        }
        // Odd column 2j + 1: (j, j + 1) with (3/4, 1/4); the right neighbour is clamped.
        h[2u * t + 1u] = 0.75 * vals[t + 1u] + 0.25 * vals[t + 2u];
    }
    return h;
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
    let k = s % p.w4;
    let orow = s / p.w4; // plane * 2h + oy
    let oy = orow % (2u * p.h);
    let plane = orow / (2u * p.h);
    let j = oy / 2u;
    var r0: u32;
    var r1: u32;
    var ly0: f32;
    var ly1: f32;
    if (oy % 2u == 0u) {
        if (j == 0u) {
            r0 = 0u;
            r1 = min(1u, p.h - 1u);
            ly0 = 1.0;
            ly1 = 0.0;
        } else {
            r0 = j - 1u;
            r1 = j;
            ly0 = 0.25;
            ly1 = 0.75;
        }
    } else {
        r0 = j;
        r1 = min(j + 1u, p.h - 1u);
        ly0 = 0.75;
        ly1 = 0.25;
    }
    let top = blend_row(plane * p.h + r0, k);
    let bottom = blend_row(plane * p.h + r1, k);
    var o: array<f32, 8>;
    for (var m = 0u; m < 8u; m++) {
        o[m] = ly0 * top[m] + ly1 * bottom[m];
    }
    let out = orow * (2u * p.w4) + 2u * k;
    y[out] = vec4<f32>(o[0], o[1], o[2], o[3]);
    y[out + 1u] = vec4<f32>(o[4], o[5], o[6], o[7]);
}
