// Joins the key splits of `sdpa.wgsl` (SPLIT = 1) for one (sample and head, value chunk,
// query): each split's accumulators and sum rescaled from its maximum to the largest,
// then divided. A NaN maximum (a NaN or +inf score) makes the outputs NaN, as does no
// finite score at all (PyTorch's softmax); a split without a finite score weighs 0 (its
// accumulators are 0, or NaN from a -inf score's 0 * inf, which then propagates).
#include "common.wgsl"

// Value channels an invocation of the split pass accumulated.
const VALUE_CHUNK: u32 = 32u; // @specialize

struct SdpaCombineUniform {
    threads: u32,
    queries: u32,
    splits: u32,
    chunks: u32,
    value_dim: u32,
}

@group(0) @binding(0) var<uniform> p: SdpaCombineUniform;
@group(0) @binding(1) var<storage, read> stats: array<f32>;
@group(0) @binding(2) var<storage, read> partial: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<Act>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let t = thread_index(inv, lid);
    if (t >= p.threads) {
        return;
    }
    var top = 0.0;
    var seen = false;
    var poisoned = false;
    for (var s = 0u; s < p.splits; s++) {
        let mx = stats[2u * (s * p.threads + t)];
        if (is_nan(mx)) {
            poisoned = true;
        } else if (is_finite(mx) && (!seen || mx > top)) {
            top = mx;
            seen = true;
        }
    }
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
    let n = t % p.queries;
    let rest = t / p.queries;
    let chunk = rest % p.chunks;
    let bh = rest / p.chunks;
    let j0 = chunk * VALUE_CHUNK;
    let count = min(VALUE_CHUNK, p.value_dim - j0);
    let y_base = (bh * p.value_dim + j0) * p.queries + n;
    for (var j = 0u; j < VALUE_CHUNK; j++) {
        if (j < count) {
            var out = acc[j] / sum;
            if (poisoned || !seen) {
                out = bitcast<f32>(NAN_BITS);
            }
            y[y_base + j * p.queries] = Act(out);
        }
    }
}
