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
// Each invocation writes PX consecutive outputs of one row (strips.wgsl; no padding): the row tap is loaded once, each column tap is one vec4 load (i0, i1, l0
// bits, l1 bits).
#include "strips.wgsl"

override MODE: u32 = 1u;

// strips.wgsl's StripParams and the output's channel window (window_plane in
// common.wgsl).
struct ResampleParams {
    planes: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    pad_h: u32,
    pad_w: u32,
    strips_x: u32,
    total: u32,
    c: u32,
    extra: u32,
    off: u32,
}

@group(0) @binding(0) var<uniform> p: ResampleParams;
@group(0) @binding(1) var<storage, read> x: array<Act>;
// The tap tables (host-computed, not tensors) stay u32 words at either precision.
@group(0) @binding(2) var<storage, read> rows: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> cols: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read_write> y: array<Act>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let s = thread_index(inv, lid);
    if (s >= p.total) {
        return;
    }
    let st = strip_of(s, p.strips_x, p.oh);
    let ox0 = st.ox0;
    let cubic = MODE == 3u;
    let ri = select(st.oy, 2u * st.oy, cubic);
    let r = rows[ri];
    let base = st.plane * p.h * p.w;
    let top = base + r.x * p.w;
    let bottom = base + r.y * p.w;
    let ly0 = bitcast<f32>(r.z);
    let ly1 = bitcast<f32>(r.w);
    let out_row = (window_plane(st.plane, p.c, p.extra, p.off) * p.oh + st.oy) * p.ow;
    for (var j = 0u; j < PX; j++) {
        let ox = ox0 + j;
        if (ox < p.ow) {
            var v = 0.0;
            if (cubic) {
                let c = cols[2u * ox];
                let cw = bitcast<vec4<f32>>(cols[2u * ox + 1u]);
                let rw = bitcast<vec4<f32>>(rows[ri + 1u]);
                v = 0.0;
                for (var k = 0u; k < 4u; k++) {
                    let at = base + r[k] * p.w;
                    var t = cw.x * f32(x[at + c.x]);
                    t += cw.y * f32(x[at + c.y]);
                    t += cw.z * f32(x[at + c.z]);
                    t += cw.w * f32(x[at + c.w]);
                    v += rw[k] * t;
                }
            } else if (MODE == 1u) {
                let c = cols[ox];
                let lx0 = bitcast<f32>(c.z);
                let lx1 = bitcast<f32>(c.w);
                let t = lx0 * f32(x[top + c.x]) + lx1 * f32(x[top + c.y]);
                let b = lx0 * f32(x[bottom + c.x]) + lx1 * f32(x[bottom + c.y]);
                v = ly0 * t + ly1 * b;
            } else {
                let c = cols[ox];
                v = f32(x[top + c.x]);
                if (MODE == 2u && (ly0 == 0.0 || c.z == 0u)) {
                    v = 0.0;
                }
            }
            y[out_row + ox] = Act(v);
        }
    }
}
