// Bilinear resampling (widths of whole vec4s, align_corners either way) where each strip
// of PX = 8 outputs of a row reads its source columns from SPAN (2 or 3) vec4s of each of
// its two input rows: upsampling the width, keeping it, or shrinking it a little. An
// invocation
// writes one strip in every output row of a row group: up to 8 consecutive output rows
// that blend the same two input rows (an upsampling by 8 makes groups of 8). It loads its
// 2 SPAN input vec4s and blends each row's columns once, and each output row then costs
// one weight load, eight multiply-adds and two vec4 stores.
// The taps are computed on the host with PyTorch's formulas (src/ops/upsample.rs):
// - per strip, three entries: its first source vec4, for each output its first source
//   column relative to that vec4's first (4 bits) and whether the second column is the
//   next one (1 bit; it is the same column at the right edge), and the outputs' second
//   weights l1 (the first's is 1 - l1, as PyTorch computes it);
// - per row group, its first output row, row count and two input rows;
// - per output row, its second weight (l1).
// The host checks that every strip's columns lie within 12 of its first vec4 (else the
// tap kernel runs) and sets SPAN to 2 where they all lie within 8 (always at factors
// above about 2.3), else 3. Loads are what a SIMD-on-CPU driver such as lavapipe pays
// for, lane by lane, and a GPU reads the vec4s coalesced: per 64 outputs at a factor of
// 8 this kernel makes about 16 loads, the tap kernel before its row groups 320.
// Each output blends in PyTorch's order, ly0 * (lx0 * x00 + lx1 * x01) + ly1 * (lx0 * x10
// + lx1 * x11), as resample.wgsl does.
// Needs the input and output widths divisible by 4 (rows of whole vec4s); the output
// may be a channel window of a wider tensor (window_plane).
// ADDEND: the resized map is the addend of a residual sum, each output
// activation4(SUM_ACT, res + resized) (`act(x + F.interpolate(...))`, the resized map
// never stored; the output is then a whole tensor, res of its shape).
#include "common.wgsl"

override ADDEND: bool = false;
override SUM_ACT: u32 = 0u;

const PX: u32 = 8u;
// Input vec4s per strip and row: 2 or 3.
const SPAN: u32 = 2u; // @specialize

// resample.wgsl's uniform.
struct ResampleParams {
    planes: u32, // N * C
    h: u32,
    w: u32, // a multiple of 4
    oh: u32,
    ow: u32,
    groups: u32, // row groups
    strips_x: u32, // ceil(ow / PX)
    total: u32, // planes * groups * strips_x
    // The output's channel window (window_plane in common.wgsl).
    c: u32,
    extra: u32,
    off: u32,
}

@group(0) @binding(0) var<uniform> p: ResampleParams;
@group(0) @binding(1) var<storage, read> x4: array<vec4<Act>>;
// Per row group: (first output row, rows, first input row, second input row).
@group(0) @binding(2) var<storage, read> groups: array<vec4<u32>>;
// Per output row: its second weight.
@group(0) @binding(3) var<storage, read> row_l1: array<f32>;
// Per strip, three entries: (first source vec4 of the row, the eight outputs' 4-bit
// first columns, their 1-bit steps to the second, 0), then the eight outputs' l1 bits.
@group(0) @binding(4) var<storage, read> strips: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read_write> y: array<vec4<Act>>;
@group(0) @binding(6) var<storage, read> res: array<vec4<Act>>;

// The store of four outputs at vec4 `at`, after the residual sum with ADDEND.
fn store(at: u32, v: vec4<f32>) {
    var o = v;
    if (ADDEND) {
        o = activation4(SUM_ACT, vec4<f32>(res[at]) + v);
    }
    y[at] = vec4<Act>(o);
}

// Column r (0 .. 4 SPAN - 1) of the loaded ones.
fn pick(v: array<vec4<f32>, 3>, r: u32) -> f32 {
    var q = select(v[0], v[1], r >= 4u);
    if (SPAN == 3u) {
        q = select(q, v[2], r >= 8u);
    }
    return q[r & 3u];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let s = thread_index(inv, lid);
    if (s >= p.total) {
        return;
    }
    let strip = s % p.strips_x;
    let t = s / p.strips_x;
    let plane = t / p.groups;
    let g = groups[t % p.groups];
    let entry = 3u * strip;
    let head = strips[entry];
    let l1_lo = bitcast<vec4<f32>>(strips[entry + 1u]);
    let l1_hi = bitcast<vec4<f32>>(strips[entry + 2u]);
    // The vec4s are clamped to the row: where one would pass the end, no output reads
    // it.
    let w4 = p.w / 4u;
    let top = (plane * p.h + g.z) * w4;
    let bottom = (plane * p.h + g.w) * w4;
    var t_in: array<vec4<f32>, 3>;
    var b_in: array<vec4<f32>, 3>;
    for (var v = 0u; v < SPAN; v++) {
        let at = min(head.x + v, w4 - 1u);
        t_in[v] = vec4<f32>(x4[top + at]);
        b_in[v] = vec4<f32>(x4[bottom + at]);
    }
    // Each input row's columns blended once for the group's rows.
    var tops: array<f32, PX>;
    var bottoms: array<f32, PX>;
    for (var j = 0u; j < PX; j++) {
        let c0 = (head.y >> (4u * j)) & 15u;
        let c1 = c0 + ((head.z >> j) & 1u);
        let lx1 = select(l1_lo, l1_hi, j >= 4u)[j & 3u];
        let lx0 = 1.0 - lx1;
        tops[j] = lx0 * pick(t_in, c0) + lx1 * pick(t_in, c1);
        bottoms[j] = lx0 * pick(b_in, c0) + lx1 * pick(b_in, c1);
    }
    let ox0 = strip * PX;
    let out_plane = window_plane(plane, p.c, p.extra, p.off) * p.oh;
    var o: array<f32, PX>;
    for (var k = 0u; k < g.y; k++) {
        let oy = g.x + k;
        let ly1 = row_l1[oy];
        let ly0 = 1.0 - ly1;
        for (var j = 0u; j < PX; j++) {
            o[j] = ly0 * tops[j] + ly1 * bottoms[j];
        }
        let out = ((out_plane + oy) * p.ow + ox0) / 4u;
        store(out, vec4<f32>(o[0], o[1], o[2], o[3]));
        if (ox0 + 4u < p.ow) {
            store(out + 1u, vec4<f32>(o[4], o[5], o[6], o[7]));
        }
    }
}
