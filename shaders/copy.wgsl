// A plain buffer copy, four floats per invocation: the bandwidth yardstick that the
// memory-bound ops are measured against (benches), and a device-side tensor clone.
#include "common.wgsl"

struct CopyParams {
    len4: u32, // number of vec4 elements
}

@group(0) @binding(0) var<uniform> p: CopyParams;
@group(0) @binding(1) var<storage, read> x: array<vec4<Act>>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4<Act>>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(inv, lid);
    if (i < p.len4) {
        y[i] = x[i];
    }
}
