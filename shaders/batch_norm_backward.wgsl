// Batch norm backward for the input, with the per-channel sums from norm_stats.wgsl
// (MODE 1): dx = gamma * invstd / M * (M * dy - sum(dy) - x_hat * sum(dy * x_hat)),
// M = N * H * W, x_hat = (x - mean) * invstd (the seed's formula, section 3.1.2).
// `stats` holds [mean, var] per channel, then sum(dy) per channel, then sum(dy * x_hat).
#include "common.wgsl"

const PX: u32 = 16u;

struct BackwardParams {
    planes: u32,
    c: u32,
    hw: u32,
    count: f32, // M
    strips: u32,
    total: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: BackwardParams;
@group(0) @binding(1) var<storage, read> x: array<Act>;
@group(0) @binding(2) var<storage, read> dy: array<Act>;
// The statistics (alloc_f32) and gamma (a layer buffer) stay f32.
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read> gamma: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<Act>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let s = thread_index(inv, lid);
    if (s >= p.total) {
        return;
    }
    let plane = s / p.strips;
    let p0 = (s % p.strips) * PX;
    let c = plane % p.c;
    let mean = stats[2u * c];
    let invstd = inverseSqrt(stats[2u * c + 1u] + p.eps);
    let sum_dy = stats[2u * p.c + c];
    let sum_dy_xhat = stats[3u * p.c + c];
    let k = gamma[c] * invstd / p.count;
    let base = plane * p.hw;
    for (var j = 0u; j < PX; j++) {
        let i = p0 + j;
        if (i < p.hw) {
            let xhat = (f32(x[base + i]) - mean) * invstd;
            dx[base + i] = Act(k * (p.count * f32(dy[base + i]) - sum_dy - xhat * sum_dy_xhat));
        }
    }
}
