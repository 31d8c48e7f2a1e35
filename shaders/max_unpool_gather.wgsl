// Max unpooling, pass 2 of 2: each output element takes the value of the input element
// that owns it (see max_unpool_scatter.wgsl, whose uniform it shares), or zero.
#include "common.wgsl"

struct UnpoolParams {
    planes: u32,
    in_plane: u32,
    out_plane: u32,
}

@group(0) @binding(0) var<uniform> p: UnpoolParams;
@group(0) @binding(1) var<storage, read> x: array<Act>;
@group(0) @binding(2) var<storage, read> owner: array<u32>; // scratch claims, not a tensor
@group(0) @binding(3) var<storage, read_write> y: array<Act>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let o = thread_index(inv, lid);
    if (o >= p.planes * p.out_plane) {
        return;
    }
    let own = owner[o];
    let src = (o / p.out_plane) * p.in_plane + max(own, 1u) - 1u;
    y[o] = Act(select(0.0, f32(x[src]), own > 0u));
}
