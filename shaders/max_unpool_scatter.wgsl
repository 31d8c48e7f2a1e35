// Max unpooling, pass 1 of 2 (`max_unpool2d`): every input element claims its target
// output position. When several claim the same position, the largest input position
// wins (atomicMax), which is what PyTorch's sequential CPU loop leaves behind; the
// result is therefore deterministic. `owner` starts zeroed; it holds input position + 1.
// `owner` is a scratch buffer of atomic u32 claims, not a tensor: it is the same at
// either precision (`Act` is not used here).
#include "common.wgsl"

struct UnpoolParams {
    planes: u32, // N * C
    in_plane: u32, // H * W of the input (and of the indices)
    out_plane: u32, // OH * OW
}

@group(0) @binding(0) var<uniform> p: UnpoolParams;
@group(0) @binding(1) var<storage, read> idx: array<i32>;
@group(0) @binding(2) var<storage, read_write> owner: array<atomic<u32>>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(inv, lid);
    if (i >= p.planes * p.in_plane) {
        return;
    }
    let target_pos = idx[i];
    // Out-of-range indices are rejected on the host; this guard only keeps a bad index
    // from writing outside its plane.
    if (target_pos >= 0 && u32(target_pos) < p.out_plane) {
        let plane = i / p.in_plane;
        atomicMax(&owner[plane * p.out_plane + u32(target_pos)], (i % p.in_plane) + 1u);
    }
}
