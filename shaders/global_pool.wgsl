// Global average or max pooling over each (n, c) plane: one invocation per plane.
// MODE 0: mean (accumulated in f32 with Kahan compensation, so long planes stay
// accurate); MODE 1: max, NaN propagating as in PyTorch.
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
        var sum = 0.0;
        var comp = 0.0;
        for (var i = 0u; i < p.plane; i++) {
            let v = x[base + i] - comp;
            let t = sum + v;
            comp = (t - sum) - v;
            sum = t;
        }
        y[pl] = sum / f32(p.plane);
    } else {
        var best = x[base];
        for (var i = 1u; i < p.plane; i++) {
            let v = x[base + i];
            if (v > best || v != v) {
                best = v;
            }
        }
        y[pl] = best;
    }
}
