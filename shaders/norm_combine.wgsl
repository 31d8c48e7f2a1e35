// Merges the per-part results of norm_stats.wgsl (PARTIAL) into each segment's
// statistics, one workgroup per segment, in a fixed order (deterministic).
//
// MODE 0: parts are (count, mean, sum of squared deviations) triples, merged with Chan
// et al.'s pairwise update, which keeps the variance free of the cancellation of
// E[x^2] - E[x]^2; writes stats[2s] = mean, stats[2s + 1] = biased variance and, with
// UPDATE_RUNNING, the running statistics as norm_stats.wgsl does.
// MODE 1: parts are (sum(dy), sum(dy * x_hat)) pairs, added into stats[2S + s] and
// stats[3S + s].
#include "common.wgsl"

override MODE: u32 = 0u;
override UPDATE_RUNNING: bool = false;

struct CombineParams {
    segments: u32,
    parts: u32,
    momentum: f32,
}

@group(0) @binding(0) var<uniform> p: CombineParams;
// No tensor is bound here: partials and stats (alloc_f32) and the running statistics (a
// layer buffer) all stay f32.
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
// The running statistics (UPDATE_RUNNING).
@group(0) @binding(3) var<storage, read_write> running: array<f32>;

var<workgroup> counts: array<f32, WORKGROUP_SIZE>;
var<workgroup> means: array<f32, WORKGROUP_SIZE>;
var<workgroup> m2s: array<f32, WORKGROUP_SIZE>;

// (count, mean, M2) of the union of two disjoint sets.
fn merge(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> {
    if (b.x == 0.0) {
        return a;
    }
    if (a.x == 0.0) {
        return b;
    }
    let n = a.x + b.x;
    let d = b.y - a.y;
    return vec3<f32>(n, a.y + d * (b.x / n), a.z + b.z + d * d * (a.x * (b.x / n)));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    // One segment per workgroup: the early exit and the barriers are uniform.
    let s = workgroup_index(inv);
    if (s >= p.segments) {
        return;
    }
    let first = s * p.parts;
    var acc = vec3<f32>(0.0);
    for (var q = lid; q < p.parts; q += WORKGROUP_SIZE) {
        let w = first + q;
        if (MODE == 0u) {
            acc = merge(acc, vec3<f32>(partials[3u * w], partials[3u * w + 1u], partials[3u * w + 2u]));
        } else {
            acc += vec3<f32>(partials[2u * w], partials[2u * w + 1u], 0.0);
        }
    }
    counts[lid] = acc.x;
    means[lid] = acc.y;
    m2s[lid] = acc.z;
    for (var width = WORKGROUP_SIZE / 2u; width > 0u; width = width / 2u) {
        workgroupBarrier();
        if (lid < width) {
            let a = vec3<f32>(counts[lid], means[lid], m2s[lid]);
            let b = vec3<f32>(counts[lid + width], means[lid + width], m2s[lid + width]);
            var r = a + b;
            if (MODE == 0u) {
                r = merge(a, b);
            }
            counts[lid] = r.x;
            means[lid] = r.y;
            m2s[lid] = r.z;
        }
    }
    workgroupBarrier();
    if (lid != 0u) {
        return;
    }
    if (MODE == 1u) {
        stats[2u * p.segments + s] = counts[0];
        stats[3u * p.segments + s] = means[0];
        return;
    }
    let n = counts[0];
    let mean = means[0];
    stats[2u * s] = mean;
    stats[2u * s + 1u] = m2s[0] / n;
    if (UPDATE_RUNNING) {
        let var_unbiased = m2s[0] / max(n - 1.0, 1.0);
        running[2u * s] = (1.0 - p.momentum) * running[2u * s] + p.momentum * mean;
        running[2u * s + 1u] = (1.0 - p.momentum) * running[2u * s + 1u] + p.momentum * var_unbiased;
    }
}
