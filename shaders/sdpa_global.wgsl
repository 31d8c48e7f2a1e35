// One softmax over every score of a sample and head (smp MAnet's position attention,
// `softmax(scores.view(N, -1))`): from the key splits' per-query maxima and sums of
// `sdpa.wgsl` (SPLIT = 1), the largest maximum and the denominator rescaled to it. One
// invocation per sample and head walks its queries and splits (the first value chunk's
// records: the scores do not depend on the chunk). A NaN maximum anywhere makes the
// maximum NaN; no finite score leaves -inf (and a zero denominator).
#include "common.wgsl"
#include "sdpa_max.wgsl"

struct SdpaGlobalUniform {
    maps: u32, // N * heads
    queries: u32,
    splits: u32,
    chunks: u32,
    split_records: u32,
}

// -inf read at run time (a constant infinity is a shader-creation error in WGSL).
var<private> NEG_INFINITY_BITS: u32 = 0xff800000u;

@group(0) @binding(0) var<uniform> p: SdpaGlobalUniform;
@group(0) @binding(1) var<storage, read> stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> global_stats: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let bh = thread_index(inv, lid);
    if (bh >= p.maps) {
        return;
    }
    let first = bh * p.chunks * p.queries; // chunk 0's first record
    var largest = split_maximum_start();
    for (var s = 0u; s < p.splits; s++) {
        for (var n = 0u; n < p.queries; n++) {
            largest = split_maximum_add(largest, stats[2u * (s * p.split_records + first + n)]);
        }
    }
    var top = largest.top;
    var sum = 0.0;
    for (var s = 0u; s < p.splits; s++) {
        for (var n = 0u; n < p.queries; n++) {
            let at = 2u * (s * p.split_records + first + n);
            let mx = stats[at];
            sum += select(0.0, exp(mx - top) * stats[at + 1u], is_finite(mx));
        }
    }
    if (largest.poisoned) {
        top = bitcast<f32>(NAN_BITS);
    } else if (!largest.seen) {
        top = bitcast<f32>(NEG_INFINITY_BITS);
    }
    global_stats[2u * bh] = top;
    global_stats[2u * bh + 1u] = sum;
}
