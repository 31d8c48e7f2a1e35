// Global average or max pooling with one (n, c) plane per invocation, for many small
// planes on CPU adapters (the squeeze of an SE block: 960 planes of 16 x 16), where a
// workgroup per plane (global_pool.wgsl) spends more on starting workgroups and combining
// its lanes than on its few loads. No barriers, no lanes to combine.
// MODE 0: mean; MODE 1: max, NaN propagating as in PyTorch.
// SUM 1 (mean only): the mean of x + x2, without the sum ever being stored.
// VEC: the plane is a multiple of 4 values, read as vec4s (else single values picked out
// of them).
// The mean sums x - x[0] in blocks of WORKGROUP_SIZE loads whose partial sums are added
// separately, as global_pool.wgsl does.
#include "common.wgsl"

override MODE: u32 = 0u;
override SUM: bool = false;
override VEC: bool = true;

#include "global_pool_io.wgsl"

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let pl = thread_index(inv, lid);
    if (pl >= p.planes) {
        return;
    }
    let base = pl * p.plane;
    let count = p.part_len;
    if (MODE == 0u) {
        let shift = value(base);
        var total = 0.0;
        for (var b0 = 0u; b0 < count; b0 += WORKGROUP_SIZE) {
            var part = vec4<f32>(0.0);
            for (var i = b0; i < min(b0 + WORKGROUP_SIZE, count); i++) {
                if (VEC) {
                    part += value4(base / 4u + i) - shift;
                } else {
                    part.x += value(base + i) - shift;
                }
            }
            total += (part.x + part.y) + (part.z + part.w);
        }
        y[pl] = Act(shift + total / f32(p.plane));
    } else {
        var r = value(base);
        for (var i = 0u; i < count; i++) {
            if (VEC) {
                let v = value4(base / 4u + i);
                r = max_nan(max_nan(r, v.x), max_nan(max_nan(v.y, v.z), v.w));
            } else {
                r = max_nan(r, value(base + i));
            }
        }
        y[pl] = Act(r);
    }
}
