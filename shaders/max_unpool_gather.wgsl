// Max unpooling, pass 2 of 2: each output element takes the value of the input element
// that owns it (see max_unpool_scatter.wgsl), or zero.
#include "common.wgsl"

struct UnpoolParams {
    planes: u32,
    in_plane: u32,
    out_plane: u32,
    total: u32,
}

@group(0) @binding(0) var<uniform> p: UnpoolParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> owner: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

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
    let plane = o / p.out_plane;
    let own = owner[o];
    let src = plane * p.in_plane + max(own, 1u) - 1u;
    y[o] = select(0.0, x[src], own > 0u);
}
