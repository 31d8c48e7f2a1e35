// Bilinear upsampling by an integer factor S (2, 4, 8 or 16) with align_corners = False.
// PyTorch's source index for output o = S * j + r is (o + 0.5) / S - 0.5, clamped at 0:
// phases r < S / 2 blend inputs (j - 1, j) with weights (1 - l, l), l = (r + 0.5) / S + 0.5
// (for j = 0 the clamp gives (0, 1) with (1, 0)); phases r >= S / 2 blend (j, j + 1) with
// l = (r + 0.5) / S - 0.5, the right neighbour clamped at the edge; rows likewise. With S
// a power of two these weights are exact in f32 (src/ops/upsample.rs checks them against
// the general tap formula before choosing this kernel). Each invocation writes TP * S
// outputs (TP * S / 4 vec4 stores) of one row from TP input pixels (one vec4 where TP = 4)
// and their two neighbours in each of its two input rows, blending in the same order as
// resample.wgsl:
// ly0 * (lx0 * x00 + lx1 * x01) + ly1 * (lx0 * x10 + lx1 * x11).
// Needs the input width divisible by 4 (src/ops/upsample.rs checks). The output may be a
// channel window of a wider tensor (window_plane).
// GATED: the upsampled map is the addend of a gated skip, each output
// skip * activation4(GATE_ACT, gate[plane]) + up (elementwise.wgsl's scale-and-add of a
// decoder stage, in the same pass: the upsampled map is never stored).
// ADDEND: the upsampled map is the addend of a residual sum, each output
// activation4(SUM_ACT, skip + up) (`act(x + F.interpolate(...))`, in the same pass).
#include "common.wgsl"

override GATED: bool = false;
override GATE_ACT: u32 = 0u;
override ADDEND: bool = false;
override SUM_ACT: u32 = 0u;

const S: u32 = 2u; // @specialize
// Input pixels per invocation: the four of its vec4 while that makes at most 16 outputs
// (S = 2, 4), else 16 / S of them (S = 8: 2, S = 16: 1), the vec4 split into PARTS
// invocations: register arrays of more than 16 values were not unrolled by lavapipe's
// compiler and made S = 8 slower than the tap kernel.
const TP: u32 = 4u; // @specialize
const PARTS: u32 = 4u / TP;
const OUT: u32 = TP * S;

struct BilinearIntParams {
    planes: u32,
    h: u32,
    w: u32, // input width
    w4: u32, // w / 4
    total: u32, // planes * S * h * w4 * PARTS
    // The output's channel window (window_plane in common.wgsl; not with GATED or
    // ADDEND).
    c: u32,
    extra: u32,
    off: u32,
}

@group(0) @binding(0) var<uniform> p: BilinearIntParams;
@group(0) @binding(1) var<storage, read> x4: array<vec4<Act>>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4<Act>>;
// GATED: the skip (the output's shape) and its gate logits [N, C]; ADDEND: the residual
// (the output's shape) as the skip.
@group(0) @binding(3) var<storage, read> skip: array<vec4<Act>>;
@group(0) @binding(4) var<storage, read> gate: array<Act>;

fn x_at(i: u32) -> f32 {
    return f32(x4[i / 4u][i % 4u]);
}

fn lambda(r: u32) -> f32 {
    let l = (f32(r) + 0.5) / f32(S);
    return select(l - 0.5, l + 0.5, r < S / 2u);
}

// The OUT outputs of input row `row` from its pixels t0 .. t0 + TP - 1, t0 = 4 k + TP part.
fn blend_row(row: u32, k: u32, part: u32) -> array<f32, OUT> {
    let base = row * p.w;
    let t0 = 4u * k + TP * part;
    // vals[i]: input pixel t0 - 1 + i, clamped at both edges.
    var vals: array<f32, TP + 2u>;
    if (TP == 4u) {
        let v = vec4<f32>(x4[row * p.w4 + k]);
        for (var i = 0u; i < TP; i++) {
            vals[i + 1u] = v[i];
        }
    } else {
        for (var i = 0u; i < TP; i++) {
            vals[i + 1u] = x_at(base + t0 + i);
        }
    }
    vals[0] = x_at(base + max(t0, 1u) - 1u);
    vals[TP + 1u] = x_at(base + min(t0 + TP, p.w - 1u));
    var h: array<f32, OUT>;
    for (var o = 0u; o < OUT; o++) {
        let t = o / S;
        let r = o % S;
        let l = lambda(r);
        if (r < S / 2u) {
            if (t0 + t == 0u) {
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
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let s = thread_index(inv, lid);
    if (s >= p.total) {
        return;
    }
    let kp = s % (p.w4 * PARTS);
    let k = kp / PARTS;
    let part = kp % PARTS;
    let orow = s / (p.w4 * PARTS); // plane * S * h + oy
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
    let top = blend_row(plane * p.h + r0, k, part);
    let bottom = blend_row(plane * p.h + r1, k, part);
    var o: array<f32, OUT>;
    for (var m = 0u; m < OUT; m++) {
        o[m] = ly0 * top[m] + ly1 * bottom[m];
    }
    let out_row = window_plane(plane, p.c, p.extra, p.off) * S * p.h + oy;
    let out = out_row * (S * p.w4) + S * k + part * (OUT / 4u);
    var g = 0.0;
    if (GATED) {
        g = activation4(GATE_ACT, vec4<f32>(f32(gate[plane]))).x;
    }
    for (var q = 0u; q < OUT / 4u; q++) {
        var v = vec4<f32>(o[4u * q], o[4u * q + 1u], o[4u * q + 2u], o[4u * q + 3u]);
        if (GATED) {
            v = vec4<f32>(skip[out + q]) * g + v;
        }
        if (ADDEND) {
            v = activation4(SUM_ACT, vec4<f32>(skip[out + q]) + v);
        }
        y[out + q] = vec4<Act>(v);
    }
}
