// Joins the key splits of `sdpa.wgsl` (SPLIT = 1) for one (sample and head, value chunk,
// query): each split's accumulators and sum rescaled from its maximum to the largest,
// then divided. A NaN maximum (a NaN or +inf score) makes the outputs NaN, as does no
// finite score at all (PyTorch's softmax); a split without a finite score weighs 0 (its
// accumulators are 0, or NaN from a -inf score's 0 * inf, which then propagates).
// GLOBAL = 1: one softmax over every score of the sample and head (smp MAnet's position
// attention): the maximum and the denominator are `sdpa_global.wgsl`'s, not the query's.
// TOKEN_MAJOR = 1: the output written as `[N, L, heads * Ev]` (a token's channels
// together) into the output's buffer, which PyTorch's `reshape` of that tensor to the
// map's shape then reads as it is.
#include "common.wgsl"
#include "sdpa_max.wgsl"

// Value channels an invocation of the split pass accumulated.
const VALUE_CHUNK: u32 = 32u; // @specialize
const GLOBAL: u32 = 0u; // @specialize
const TOKEN_MAJOR: u32 = 0u; // @specialize

struct SdpaCombineUniform {
    threads: u32,
    queries: u32,
    splits: u32,
    chunks: u32,
    value_dim: u32,
    heads: u32,
}

@group(0) @binding(0) var<uniform> p: SdpaCombineUniform;
@group(0) @binding(1) var<storage, read> stats: array<f32>;
@group(0) @binding(2) var<storage, read> partial: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<Act>;
// GLOBAL: the maximum and denominator of each sample and head.
@group(0) @binding(4) var<storage, read> global_stats: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let t = thread_index(inv, lid);
    if (t >= p.threads) {
        return;
    }
    let n = t % p.queries;
    let rest = t / p.queries;
    let chunk = rest % p.chunks;
    let bh = rest / p.chunks;
    var largest = split_maximum_start();
    if (GLOBAL == 1u) {
        largest = split_maximum_add(largest, global_stats[2u * bh]);
    } else {
        for (var s = 0u; s < p.splits; s++) {
            largest = split_maximum_add(largest, stats[2u * (s * p.threads + t)]);
        }
    }
    let top = largest.top;
    var sum = 0.0;
    var acc: array<f32, max(VALUE_CHUNK, 1u)>;
    for (var s = 0u; s < p.splits; s++) {
        let at = s * p.threads + t;
        let mx = stats[2u * at];
        let w = select(0.0, exp(mx - top), is_finite(mx));
        sum += w * stats[2u * at + 1u];
        for (var j = 0u; j < VALUE_CHUNK; j++) {
            acc[j] += w * partial[at * VALUE_CHUNK + j];
        }
    }
    if (GLOBAL == 1u) {
        sum = global_stats[2u * bh + 1u];
    }
    let j0 = chunk * VALUE_CHUNK;
    let count = min(VALUE_CHUNK, p.value_dim - j0);
    for (var j = 0u; j < VALUE_CHUNK; j++) {
        if (j < count) {
            var out = acc[j] / sum;
            if (largest.poisoned || !largest.seen) {
                out = bitcast<f32>(NAN_BITS);
            }
            var at = (bh * p.value_dim + j0 + j) * p.queries + n;
            if (TOKEN_MAJOR == 1u) {
                let b = bh / p.heads;
                let h = bh % p.heads;
                at = (b * p.queries + n) * (p.heads * p.value_dim) + h * p.value_dim + j0 + j;
            }
            y[at] = Act(out);
        }
    }
}
