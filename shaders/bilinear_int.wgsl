// Bilinear upsampling by an integer factor S (2, 4 or 8) with align_corners = False.
// PyTorch's source index for output o = S * j + r is (o + 0.5) / S - 0.5, clamped at 0:
// phases r < S / 2 blend inputs (j - 1, j) with weights (1 - l, l), l = (r + 0.5) / S + 0.5
// (for j = 0 the clamp gives (0, 1) with (1, 0)); phases r >= S / 2 blend (j, j + 1) with
// l = (r + 0.5) / S - 0.5, the right neighbour clamped at the edge; rows likewise. With S
// a power of two these weights are exact in f32 (src/ops/upsample.rs checks them against
// the general tap formula before choosing this kernel). Each invocation writes 4 * S
// outputs (S vec4 stores) of one row from one vec4 and two neighbours of each of its two
// input rows, blending in the same order as resample.wgsl:
// ly0 * (lx0 * x00 + lx1 * x01) + ly1 * (lx0 * x10 + lx1 * x11).
// Needs the input width divisible by 4 (src/ops/upsample.rs checks).
#include "common.wgsl"

const S: u32 = 2u; // @specialize
const OUT: u32 = 4u * S;

struct BilinearIntParams {
    planes: u32,
    h: u32,
    w: u32, // input width
    w4: u32, // w / 4
    total: u32, // planes * S * h * w4
}

@group(0) @binding(0) var<uniform> p: BilinearIntParams;
// The input as vec4s; the two neighbours of each group are picked out of the vec4s
// around it.
@group(0) @binding(1) var<storage, read> x4: array<vec4<Act>>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4<Act>>;

fn x_at(i: u32) -> f32 {
    return f32(x4[i / 4u][i % 4u]);
}

// The weight of the second input of phase r (see the top).
fn lambda(r: u32) -> f32 {
    let l = (f32(r) + 0.5) / f32(S);
    return select(l - 0.5, l + 0.5, r < S / 2u);
}

// The OUT horizontally blended values of output columns OUT * k .. from input row `row`.
fn blend_row(row: u32, k: u32) -> array<f32, OUT> {
    let base = row * p.w;
    let v = vec4<f32>(x4[row * p.w4 + k]);
    let left = x_at(base + max(4u * k, 1u) - 1u);
    let right = x_at(base + min(4u * k + 4u, p.w - 1u));
    var vals = array<f32, 6>(left, v.x, v.y, v.z, v.w, right);
    var h: array<f32, OUT>;
    for (var o = 0u; o < OUT; o++) {
        let t = o / S;
        let r = o % S;
        let l = lambda(r);
        if (r < S / 2u) {
            if (k == 0u && t == 0u) {
                // Clamped at the left edge: input 0 with weight 1, input 1 with 0 (the
                // input width is at least 4, so input 1 exists).
                h[o] = 1.0 * vals[1] + 0.0 * vals[2];
            } else {
                h[o] = (1.0 - l) * vals[t] + l * vals[t + 1u];
            }
        } else {
            h[o] = (1.0 - l) * vals[t + 1u] + l * vals[t + 2u];
        }
    }
    return h;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation) {
    let s = thread_index(inv);
    if (s >= p.total) {
        return;
    }
    let k = s % p.w4;
    let orow = s / p.w4; // plane * S * h + oy
    let oy = orow % (S * p.h);
    let plane = orow / (S * p.h);
    let j = oy / S;
    let r = oy % S;
    let l = lambda(r);
    var r0: u32;
    var r1: u32;
    var ly0: f32;
    var ly1: f32;
    if (r < S / 2u) {
        if (j == 0u) {
            r0 = 0u;
            r1 = min(1u, p.h - 1u);
            ly0 = 1.0;
            ly1 = 0.0;
        } else {
            r0 = j - 1u;
            r1 = j;
            ly0 = 1.0 - l;
            ly1 = l;
        }
    } else {
        r0 = j;
        r1 = min(j + 1u, p.h - 1u);
        ly0 = 1.0 - l;
        ly1 = l;
    }
    let top = blend_row(plane * p.h + r0, k);
    let bottom = blend_row(plane * p.h + r1, k);
    var o: array<f32, OUT>;
    for (var m = 0u; m < OUT; m++) {
        o[m] = ly0 * top[m] + ly1 * bottom[m];
    }
    let out = orow * (S * p.w4) + S * k;
    for (var q = 0u; q < S; q++) {
        y[out + q] = vec4<Act>(vec4<f32>(o[4u * q], o[4u * q + 1u], o[4u * q + 2u], o[4u * q + 3u]));
    }
}
