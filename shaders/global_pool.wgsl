// Global average or max pooling over each (n, c) plane: one invocation per plane.
// MODE 0: mean; MODE 1: max, NaN propagating as in PyTorch.
// The mean sums x - x[0] (so a large common offset costs no precision) in blocks of 256
// whose partial sums are added separately, keeping rounding error small on long planes.
// (Kahan compensation is not used: shader compilers may reassociate it away.)
#include "common.wgsl"

override MODE: u32 = 0u;

struct GlobalParams {
    planes: u32,
    plane: u32, // H * W
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: GlobalParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let pl = linear_workgroup(wg, nwg) * 64u + lid;
    if (pl >= p.planes) {
        return;
    }
    let base = pl * p.plane;
    if (MODE == 0u) {
        let shift = x[base];
        var total = 0.0;
        for (var b0 = 0u; b0 < p.plane; b0 += 256u) {
            var part = 0.0;
            for (var i = b0; i < min(b0 + 256u, p.plane); i++) {
                part += x[base + i] - shift;
            }
            total += part;
        }
        y[pl] = shift + total / f32(p.plane);
    } else {
        var best = x[base];
        for (var i = 1u; i < p.plane; i++) {
            let v = x[base + i];
            if (v > best || is_nan(v)) {
                best = v;
            }
        }
        y[pl] = best;
    }
}
