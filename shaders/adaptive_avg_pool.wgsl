// Adaptive average pooling (`adaptive_avg_pool2d`): output (oy, ox) averages input rows
// floor(oy * H / OH) .. ceil((oy + 1) * H / OH) and the same for columns. One invocation
// per output element.
#include "common.wgsl"
#include "adaptive_bins.wgsl"

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
    var sum = 0.0;
    for (var iy = y0; iy < y1; iy++) {
        let row = (plane * p.h + iy) * p.w;
        for (var ix = x0; ix < x1; ix++) {
            sum += f32(x[row + ix]);
        }
    }
    y[o] = Act(sum / f32((y1 - y0) * (x1 - x0)));
}
