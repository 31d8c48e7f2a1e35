// Adaptive max pooling with indices (`adaptive_max_pool2d(..., return_indices=True)`):
// output (oy, ox) takes the maximum of input rows floor(oy * H / OH) ..
// ceil((oy + 1) * H / OH) and the same columns, scanned in row-major order with PyTorch's
// CPU rule: a value replaces the maximum when greater or NaN (ties keep the first
// position, the last NaN's position is returned). The index is the flat position
// h * W + w within the input plane. One invocation per output element.
// With CARRY the input is itself a pooled plane (large bins go by columns, then by rows)
// and each element's index into the original plane is read from idx_in: the row-major
// rule then still picks the original first maximum / last NaN.
#include "common.wgsl"
#include "adaptive_bins.wgsl"

override CARRY: bool = false;

struct AdaptiveParams {
    planes: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
}

@group(0) @binding(0) var<uniform> p: AdaptiveParams;
@group(0) @binding(1) var<storage, read> x: array<Act>;
@group(0) @binding(2) var<storage, read_write> y: array<Act>;
@group(0) @binding(3) var<storage, read_write> idx: array<i32>;
@group(0) @binding(4) var<storage, read> idx_in: array<i32>;

// The index into the original plane of element `flat` of plane `plane`.
fn original_index(plane: u32, flat: u32) -> i32 {
    if (CARRY) {
        return idx_in[plane * p.h * p.w + flat];
    }
    return i32(flat);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let o = thread_index(inv, lid);
    if (o >= p.planes * p.oh * p.ow) {
        return;
    }
    let ox = o % p.ow;
    let oy = (o / p.ow) % p.oh;
    let plane = o / (p.ow * p.oh);
    let y0 = bin_start(oy, p.h, p.oh);
    let y1 = bin_end(oy, p.h, p.oh);
    let x0 = bin_start(ox, p.w, p.ow);
    let x1 = bin_end(ox, p.w, p.ow);
    // Every bin holds at least one element: start from its first.
    var best_i = y0 * p.w + x0;
    var best = f32(x[plane * p.h * p.w + best_i]);
    for (var iy = y0; iy < y1; iy++) {
        let row = iy * p.w;
        for (var ix = x0; ix < x1; ix++) {
            let v = f32(x[plane * p.h * p.w + row + ix]);
            if (v > best || is_nan(v)) {
                best = v;
                best_i = row + ix;
            }
        }
    }
    y[o] = Act(best);
    idx[o] = original_index(plane, best_i);
}
