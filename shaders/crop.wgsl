// A window of every plane: `y[p, i, j] = x[p, i + top, j + left]` (FCN's crops of its
// skip scores; `x[..., top:top + h, left:left + w]` in PyTorch).
#include "common.wgsl"

struct CropParams {
    total: u32, // planes * h * w
    h: u32,
    w: u32,
    in_h: u32,
    in_w: u32,
    top: u32,
    left: u32,
}

@group(0) @binding(0) var<uniform> p: CropParams;
@group(0) @binding(1) var<storage, read> x: array<Act>;
@group(0) @binding(2) var<storage, read_write> y: array<Act>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(inv, lid);
    if (i >= p.total) {
        return;
    }
    let j = i % p.w;
    let row = (i / p.w) % p.h;
    let plane = i / (p.w * p.h);
    y[i] = Act(f32(x[(plane * p.in_h + row + p.top) * p.in_w + j + p.left]));
}
