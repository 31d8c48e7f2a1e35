// A plain buffer copy, four floats per invocation: the bandwidth yardstick that the
// memory-bound ops are measured against (benches), and a device-side tensor clone.
#include "common.wgsl"

struct CopyParams {
    len4: u32, // number of vec4 elements
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: CopyParams;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_workgroup(wg, nwg) * 64u + lid;
    if (i < p.len4) {
        y[i] = x[i];
    }
}
