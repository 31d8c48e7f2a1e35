// Resampling by per-axis tap tables: nearest (and nearest-exact), bilinear, bicubic and
// bed-of-nails (zero insertion).
// The tables are computed on the host with PyTorch's own float formulas (src/ops/upsample.rs),
// so source indices and weights match PyTorch exactly; the GPU only gathers and blends.
// Output element (oy, ox) = l0y * (l0x * x[i0y, i0x] + l1x * x[i0y, i1x])
//                         + l1y * (l0x * x[i1y, i0x] + l1x * x[i1y, i1x]).
// MODE 0 (nearest) and 2 (bed-of-nails) copy x[i0y, i0x] instead of blending, so that
// infinities and NaN pass through unchanged; bed-of-nails writes zero where l0 = 0
// (off the grid).
// MODE 3 (bicubic) has two table entries per position: four indices, then their four
// weights' bits; each output is the rows' weighted sum of the columns' weighted sums, in
// PyTorch's order.
//
// Each invocation writes a strip of PX consecutive outputs in every row of a row group:
// up to 8 consecutive output rows that read the same input rows (an upsampling by 4
// makes groups of 4). It blends each of those input rows along the strip's columns once
// (per output column: one vec4 column tap and two input loads per input row; bicubic
// two taps and four loads per row, four rows), and each output row then costs its row
// weights and PX stores: loads are what SIMD-on-CPU drivers such as lavapipe pay for,
// lane by lane.
// ADDEND: the resized map is the addend of a residual sum, each output
// activation4(SUM_ACT, res + resized) (`act(x + F.interpolate(...))`, the resized map
// never stored; the output is then a whole tensor, res of its shape).
#include "common.wgsl"

override MODE: u32 = 1u;
override ADDEND: bool = false;
override SUM_ACT: u32 = 0u;

const PX: u32 = 8u;

// bilinear_strips.wgsl's uniform: the strips of each group's rows and the output's
// channel window (window_plane in common.wgsl).
struct ResampleParams {
    planes: u32, // N * C
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    groups: u32, // row groups
    strips_x: u32, // ceil(ow / PX)
    total: u32, // planes * groups * strips_x
    c: u32,
    extra: u32,
    off: u32,
}

@group(0) @binding(0) var<uniform> p: ResampleParams;
@group(0) @binding(1) var<storage, read> x: array<Act>;
// Per row group: (first output row, rows, its first two input rows).
@group(0) @binding(2) var<storage, read> groups: array<vec4<u32>>;
// The tap tables (host-computed, not tensors) stay u32 words at either precision.
@group(0) @binding(3) var<storage, read> rows: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> cols: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read_write> y: array<Act>;
@group(0) @binding(6) var<storage, read> res: array<Act>;

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
    let cubic = MODE == 3u;
    // The group's input rows, from its first row's tap.
    let r = rows[select(g.x, 2u * g.x, cubic)];
    let base = plane * p.h * p.w;
    let ox0 = strip * PX;
    // Per output column, its blend along each input row the group reads (one, two or,
    // bicubic, four).
    var across: array<vec4<f32>, PX>;
    for (var j = 0u; j < PX; j++) {
        let ox = ox0 + j;
        var a = vec4<f32>(0.0);
        if (ox < p.ow) {
            if (cubic) {
                let c = cols[2u * ox];
                let cw = bitcast<vec4<f32>>(cols[2u * ox + 1u]);
                for (var k = 0u; k < 4u; k++) {
                    let at = base + r[k] * p.w;
                    var h = cw.x * f32(x[at + c.x]);
                    h += cw.y * f32(x[at + c.y]);
                    h += cw.z * f32(x[at + c.z]);
                    h += cw.w * f32(x[at + c.w]);
                    a[k] = h;
                }
            } else if (MODE == 1u) {
                let c = cols[ox];
                let lx0 = bitcast<f32>(c.z);
                let lx1 = bitcast<f32>(c.w);
                let top = base + r.x * p.w;
                let bottom = base + r.y * p.w;
                a.x = lx0 * f32(x[top + c.x]) + lx1 * f32(x[top + c.y]);
                a.y = lx0 * f32(x[bottom + c.x]) + lx1 * f32(x[bottom + c.y]);
            } else {
                let c = cols[ox];
                a.x = f32(x[base + r.x * p.w + c.x]);
                // Bed-of-nails: zero off the grid's columns.
                if (MODE == 2u && c.z == 0u) {
                    a.x = 0.0;
                }
            }
        }
        across[j] = a;
    }
    let out_plane = window_plane(plane, p.c, p.extra, p.off) * p.oh;
    for (var k = 0u; k < g.y; k++) {
        let oy = g.x + k;
        let row = rows[select(oy, 2u * oy + 1u, cubic)];
        let out_row = (out_plane + oy) * p.ow;
        for (var j = 0u; j < PX; j++) {
            let ox = ox0 + j;
            if (ox < p.ow) {
                let a = across[j];
                var v = a.x;
                if (cubic) {
                    let rw = bitcast<vec4<f32>>(row);
                    v = 0.0;
                    v += rw.x * a.x;
                    v += rw.y * a.y;
                    v += rw.z * a.z;
                    v += rw.w * a.w;
                } else if (MODE == 1u) {
                    v = bitcast<f32>(row.z) * a.x + bitcast<f32>(row.w) * a.y;
                } else if (MODE == 2u && row.z == 0u) {
                    // Bed-of-nails: zero off the grid's rows.
                    v = 0.0;
                }
                if (ADDEND) {
                    v = activation4(SUM_ACT, vec4<f32>(f32(res[out_row + ox]) + v)).x;
                }
                y[out_row + ox] = Act(v);
            }
        }
    }
}
