// Resampling by per-axis tap tables: nearest, bilinear, and bed-of-nails (zero insertion).
// The tables are computed on the host with PyTorch's own float formulas (src/ops/upsample.rs),
// so source indices and weights match PyTorch exactly; the GPU only gathers and blends.
// Output element (oy, ox) = l0y * (l0x * x[i0y, i0x] + l1x * x[i0y, i1x])
//                         + l1y * (l0x * x[i1y, i0x] + l1x * x[i1y, i1x]).
// MODE 0 (nearest) and 2 (bed-of-nails) copy x[i0y, i0x] instead of blending, so that
// infinities and NaN pass through unchanged; bed-of-nails writes zero where l0 = 0
// (off the grid).
#include "common.wgsl"

override MODE: u32 = 1u;

struct Tap {
    i0: u32,
    i1: u32,
    l0: f32,
    l1: f32,
}

struct ResampleParams {
    planes: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    total: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: ResampleParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> rows: array<Tap>;
@group(0) @binding(3) var<storage, read> cols: array<Tap>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

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
    let r = rows[oy];
    let c = cols[ox];
    let base = plane * p.h * p.w;
    if (MODE != 1u) {
        let v = x[base + r.i0 * p.w + c.i0];
        y[o] = select(v, 0.0, MODE == 2u && (r.l0 == 0.0 || c.l0 == 0.0));
        return;
    }
    let top = c.l0 * x[base + r.i0 * p.w + c.i0] + c.l1 * x[base + r.i0 * p.w + c.i1];
    let bottom = c.l0 * x[base + r.i1 * p.w + c.i0] + c.l1 * x[base + r.i1 * p.w + c.i1];
    y[o] = r.l0 * top + r.l1 * bottom;
}
