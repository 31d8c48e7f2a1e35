// Antialiased resampling along one axis (`F.interpolate(..., antialias=True)`, bilinear
// and bicubic): output j of the axis sums size[j] inputs from start[j] with weights
// w[j * k + t], computed and normalised on the host with PyTorch's formulas (the filter
// widened by the downscale factor). AXIS 0 resamples rows (along W), AXIS 1 columns
// (along H); the op runs the two in turn. One invocation per output element.
#include "common.wgsl"

override AXIS: u32 = 0u;

struct AaParams {
    total: u32, // planes * oh * ow
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    k: u32, // weights per output position (the widest support)
}

@group(0) @binding(0) var<uniform> p: AaParams;
@group(0) @binding(1) var<storage, read> x: array<Act>;
// [start, size] per output position of the axis.
@group(0) @binding(2) var<storage, read> spans: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read> weights: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<Act>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let o = thread_index(inv, lid);
    if (o >= p.total) {
        return;
    }
    let ox = o % p.ow;
    let oy = (o / p.ow) % p.oh;
    let plane = o / (p.ow * p.oh);
    var j = ox;
    var stride = 1u;
    var base = (plane * p.h + oy) * p.w;
    if (AXIS == 1u) {
        j = oy;
        stride = p.w;
        base = plane * p.h * p.w + ox;
    }
    let span = spans[j];
    var sum = 0.0;
    for (var t = 0u; t < span.y; t++) {
        sum += weights[j * p.k + t] * f32(x[base + (span.x + t) * stride]);
    }
    y[o] = Act(sum);
}
