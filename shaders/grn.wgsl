// timm's GlobalResponseNorm (ConvNeXt V2): y = x + bias + weight * x * x_n, x_n the L2
// norm g of each [n, c] plane over the mean of sample n's norms plus eps, in two passes
// after norm_stats.wgsl has taken each plane's mean and biased variance (stats[2 i],
// stats[2 i + 1]; g = sqrt(HW (mean^2 + var)), the sum of squares without a pass of its
// own):
// MODE 0: the scale s[n, c] = 1 + weight[c] * g[n, c] / (mean_c g[n, c] + eps), a
//   workgroup per sample (reduce.wgsl across its channels);
// MODE 1: y = x * s[n, c] + bias[c], PX values of a plane per invocation.
// A ConvNeXt V2 block needs only MODE 0: its next 1x1 convolution applies the scale as it
// reads its input and holds bias in its own.
#include "common.wgsl"
#include "reduce.wgsl"

override MODE: u32 = 0u;
const PX: u32 = 16u;

struct GrnParams {
    c: u32,
    hw: u32,
    total: u32, // MODE 0: samples; MODE 1: planes * ceil(hw / PX)
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: GrnParams;
// MODE 0: the planes' statistics.
@group(0) @binding(1) var<storage, read> stats: array<f32>;
// weight[C] then bias[C].
@group(0) @binding(2) var<storage, read> affine: array<f32>;
// MODE 1: the input and the scale.
@group(0) @binding(3) var<storage, read> x: array<Act>;
@group(0) @binding(4) var<storage, read> scale: array<Act>;
@group(0) @binding(5) var<storage, read_write> y: array<Act>;

// Plane i's L2 norm.
fn plane_norm(i: u32) -> f32 {
    let mean = stats[2u * i];
    return sqrt(f32(p.hw) * (mean * mean + max(stats[2u * i + 1u], 0.0)));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32, lanes: Lanes) {
    if (MODE == 0u) {
        // One sample per workgroup: `n` is uniform, so the barriers are in uniform control
        // flow.
        let n = workgroup_index(inv);
        if (n >= p.total) {
            return;
        }
        var total = 0.0;
        for (var c = lid; c < p.c; c += WORKGROUP_SIZE) {
            total += plane_norm(n * p.c + c);
        }
        let mean = workgroup_sum2(vec2<f32>(total, 0.0), lid, lanes).x / f32(p.c);
        let denominator = mean + p.eps;
        for (var c = lid; c < p.c; c += WORKGROUP_SIZE) {
            let g = plane_norm(n * p.c + c);
            y[n * p.c + c] = Act(1.0 + affine[c] * (g / denominator));
        }
        return;
    }
    let t = thread_index(inv, lid);
    if (t >= p.total) {
        return;
    }
    let strips = (p.hw + PX - 1u) / PX;
    let plane = t / strips;
    let p0 = (t % strips) * PX;
    let s = f32(scale[plane]);
    let b = affine[p.c + plane % p.c];
    let base = plane * p.hw;
    for (var k = 0u; k < PX; k++) {
        let i = p0 + k;
        if (i < p.hw) {
            y[base + i] = Act(f32(x[base + i]) * s + b);
        }
    }
}
