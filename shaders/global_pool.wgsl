// Global average or max pooling over each (n, c) plane: one workgroup per plane, its
// invocations reading the plane four values at a time (when H * W is a multiple of 4)
// and combining their partial results (reduce.wgsl: in workgroup memory, or with subgroup
// operations), so even a few large planes keep every core busy.
// MODE 0: mean; MODE 1: max, NaN propagating as in PyTorch.
// SUM 1 (mean only): the mean of x + x2, without the sum ever being stored.
// The mean sums x - x[0] (so a large common offset costs no precision), each invocation
// in blocks of WORKGROUP_SIZE loads whose partial sums are added separately, keeping
// rounding error small on long planes. (Kahan compensation is not used: shader compilers
// may reassociate it away.)
// A plane too long for one workgroup's loops (src/launch.rs, LOOP_BUDGET) is split into
// `parts` parts of `part_len` loads, workgroup w taking part w % parts of plane
// w / parts and writing y[w]: the part's max, or x[0] + sum(x - x[0]) * parts / plane, so
// that the plain average (or max) of a plane's parts, by this kernel again, is the
// plane's. With one part, y[w] is the plane's result.
#include "common.wgsl"
#include "reduce.wgsl"

override MODE: u32 = 0u;
override SUM: bool = false;

#include "global_pool_io.wgsl"

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32, lanes: Lanes) {
    // One part of a plane per workgroup: `w` is uniform, so the early return and the barriers
    // below are in uniform control flow.
    let w = workgroup_index(inv);
    if (w >= p.planes * p.parts) {
        return;
    }
    let pl = w / p.parts;
    let base = pl * p.plane;
    let vec = p.plane % 4u == 0u;
    let first = (w % p.parts) * p.part_len;
    let count = min(select(p.plane, p.plane / 4u, vec), first + p.part_len);
    let block = WORKGROUP_SIZE * WORKGROUP_SIZE;
    var r: f32;
    if (MODE == 0u) {
        let shift = value(base);
        var total = 0.0;
        for (var b0 = first + lid; b0 < count; b0 += block) {
            var part = vec4<f32>(0.0);
            for (var i = b0; i < min(b0 + block, count); i += WORKGROUP_SIZE) {
                if (vec) {
                    part += value4(base / 4u + i) - shift;
                } else {
                    part.x += value(base + i) - shift;
                }
            }
            total += (part.x + part.y) + (part.z + part.w);
        }
        r = total;
    } else {
        r = value(base);
        for (var i = first + lid; i < count; i += WORKGROUP_SIZE) {
            if (vec) {
                let v = vec4<f32>(x[base / 4u + i]);
                r = max_nan(max_nan(r, v.x), max_nan(max_nan(v.y, v.z), v.w));
            } else {
                r = max_nan(r, value(base + i));
            }
        }
    }
    if (MODE == 0u) {
        let total = workgroup_sum2(vec2<f32>(r, 0.0), lid, lanes).x;
        if (lid == 0u) {
            y[w] = Act(value(base) + total / f32(p.plane) * f32(p.parts));
        }
    } else {
        let total = workgroup_max_nan(r, lid, lanes);
        if (lid == 0u) {
            y[w] = Act(total);
        }
    }
}
