// Per-segment statistics for the normalisations, one workgroup per segment.
//
// A segment is `chunks` runs of `chunk_len` contiguous elements, run k starting at
// s * seg_stride + k * chunk_stride: batch norm's channel c is N runs of H * W; group,
// layer and instance norm segments are one contiguous run.
//
// MODE 0 (forward statistics): two passes over the segment, the mean first and then the
// sum of squared deviations, so the variance never suffers the cancellation of
// E[x^2] - E[x]^2. Writes stats[2s] = mean, stats[2s + 1] = biased variance, and, when
// UPDATE_RUNNING is set (batch norm training), running[2s] and running[2s + 1] with
// momentum: running = (1 - m) * running + m * batch, the variance unbiased (n / (n - 1)).
// MODE 1 (batch norm backward): with the forward statistics in stats[0 .. 2S], writes
// stats[2S + s] = sum(dy) and stats[3S + s] = sum(dy * x_hat) (S segments).
//
// Each invocation accumulates a strided share in f32; the partial sums are combined
// in a fixed order (reduce.wgsl: a tree in workgroup memory, or subgroup operations),
// so results are deterministic.
//
// PARTIAL: a segment too long for one workgroup's loops (src/launch.rs, LOOP_BUDGET) is
// split into `parts` parts (runs r0..r1, elements e0..e1 of each run); each workgroup
// reduces one part and writes, for MODE 0, its count, mean and sum of squared deviations
// to partials[3w ..], for MODE 1 its two sums to partials[2w ..]; norm_combine.wgsl
// merges them. Without PARTIAL a workgroup's part is its whole segment.
#include "common.wgsl"
#include "reduce.wgsl"

override MODE: u32 = 0u;
override UPDATE_RUNNING: bool = false;
override PARTIAL: bool = false;

struct StatsParams {
    segments: u32,
    chunks: u32,
    chunk_len: u32,
    chunk_stride: u32,
    seg_stride: u32,
    runs_per_part: u32,
    piece: u32,
    pieces: u32, // parts along a run
    parts: u32, // parts per segment
    momentum: f32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: StatsParams;
@group(0) @binding(1) var<storage, read> x: array<Act>;
// The output gradient (MODE 1).
@group(0) @binding(2) var<storage, read> dy: array<Act>;
// Statistics, running statistics and partials are f32 buffers (not tensors), kept f32.
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
// The running statistics (UPDATE_RUNNING).
@group(0) @binding(4) var<storage, read_write> running: array<f32>;
// The parts' results (PARTIAL).
@group(0) @binding(5) var<storage, read_write> partials: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32, lanes: Lanes) {
    // The part is uniform across the workgroup, so the early exit below is too (barriers
    // stay in uniform control flow).
    let w = workgroup_index(inv);
    if (w >= p.segments * p.parts) {
        return;
    }
    let s = w / p.parts;
    let q = w % p.parts;
    let r0 = (q / p.pieces) * p.runs_per_part;
    let r1 = min(r0 + p.runs_per_part, p.chunks);
    let e0 = (q % p.pieces) * p.piece;
    let e1 = min(e0 + p.piece, p.chunk_len);
    let count = f32((r1 - r0) * (e1 - e0));
    let base = s * p.seg_stride;

    // Pass 1: the sum (MODE 0), or sum(dy) with the mean from the forward pass (MODE 1).
    var acc = 0.0;
    var acc2 = 0.0;
    var mean = 0.0;
    var invstd = 0.0;
    if (MODE == 1u) {
        mean = stats[2u * s];
        invstd = inverseSqrt(stats[2u * s + 1u] + p.eps);
    }
    for (var k = r0; k < r1; k++) {
        let start = base + k * p.chunk_stride;
        for (var i = e0 + lid; i < e1; i += WORKGROUP_SIZE) {
            if (MODE == 0u) {
                acc += f32(x[start + i]);
            } else {
                let g = f32(dy[start + i]);
                acc += g;
                acc2 += g * (f32(x[start + i]) - mean) * invstd;
            }
        }
    }
    let sums = workgroup_sum2(vec2<f32>(acc, acc2), lid, lanes);
    if (MODE == 1u) {
        if (PARTIAL) {
            if (lid == 0u) {
                partials[2u * w] = sums.x;
                partials[2u * w + 1u] = sums.y;
            }
        } else if (lid == 0u) {
            stats[2u * p.segments + s] = sums.x;
            stats[3u * p.segments + s] = sums.y;
        }
        return;
    }
    mean = sums.x / count;

    // Pass 2: squared deviations from the mean.
    acc = 0.0;
    for (var k = r0; k < r1; k++) {
        let start = base + k * p.chunk_stride;
        for (var i = e0 + lid; i < e1; i += WORKGROUP_SIZE) {
            let d = f32(x[start + i]) - mean;
            acc += d * d;
        }
    }
    let m2 = workgroup_sum2(vec2<f32>(acc, 0.0), lid, lanes).x;
    if (PARTIAL) {
        if (lid == 0u) {
            partials[3u * w] = count;
            partials[3u * w + 1u] = mean;
            partials[3u * w + 2u] = m2;
        }
        return;
    }
    if (lid == 0u) {
        let var_biased = m2 / count;
        stats[2u * s] = mean;
        stats[2u * s + 1u] = var_biased;
        if (UPDATE_RUNNING) {
            let var_unbiased = m2 / max(count - 1.0, 1.0);
            running[2u * s] = (1.0 - p.momentum) * running[2u * s] + p.momentum * mean;
            running[2u * s + 1u] = (1.0 - p.momentum) * running[2u * s + 1u] + p.momentum * var_unbiased;
        }
    }
}
