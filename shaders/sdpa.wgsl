// Scaled dot-product attention on channel-major maps (PyTorch's
// `F.scaled_dot_product_attention` with the tokens of an NCHW map):
//   y[b, h*Ev + j, n] = sum_m softmax_m(scale * sum_e q[b, h*E + e, n] k[b, h*E + e, m])
//                       * v[b, h*Ev + j, m]
// One invocation per (key split, sample and head, value chunk, block of 4 x QUERY_VECS
// queries), query blocks fastest so that a workgroup's lanes read neighbouring queries and
// the same keys. The queries are the lanes of vec4s: each key's and value's element is
// loaded once for all of them (loads, not arithmetic, bound the kernel on CPU drivers; on
// GPUs the workgroup's lanes share the same key addresses). The softmax is computed
// online (flash attention's running maximum and rescaled sums) in one walk over the keys,
// the query (pre-scaled) and the chunk's accumulators in registers. A NaN or +inf score
// makes the query's outputs NaN, and a query whose scores are all -inf gets 0 / 0 = NaN,
// as PyTorch's softmax gives.
// With ONE_HOT_QUERIES = 1 there is no query map: query l of a head (l < E) is the l-th
// unit vector, so its score for key m is the key's channel l itself, read directly (OCR's
// spatial gather: each class's softmax over the pixels of its logits weights the
// features).
// Walks longer than the loop budget are split over the keys (SPLIT = 1): each split
// writes its running maximum (NaN when poisoned, -inf when it saw no finite score), its
// sum and its unnormalised accumulators, and `sdpa_combine.wgsl` joins them.
#include "common.wgsl"

// E, the query's and key's channels per head.
const HEAD_DIM: u32 = 32u; // @specialize
// Value channels one invocation accumulates (the last chunk may have fewer).
const VALUE_CHUNK: u32 = 32u; // @specialize
// vec4s of queries an invocation computes.
const QUERY_VECS: u32 = 1u; // @specialize
// 1: write the partial results of a key split instead of the output.
const SPLIT: u32 = 0u; // @specialize
// Keys a step of the walk: 4 (one vec4 load brings four keys' elements, or values; the
// key count a multiple of 4), or 1.
const KEY_STEP: u32 = 1u; // @specialize
// 1: one-hot queries (no query map read).
const ONE_HOT_QUERIES: u32 = 0u; // @specialize

struct SdpaUniform {
    threads: u32, // invocations a split
    queries: u32, // L: the query map's pixels
    blocks: u32, // ceil(L / (4 * QUERY_VECS))
    keys: u32, // M: the key and value maps' pixels
    chunks: u32, // value chunks a head
    value_dim: u32, // Ev
    scale: f32,
    keys_per_split: u32,
    split_records: u32, // records a split: N * heads * chunks * L
}

// -inf read at run time (a constant infinity is a shader-creation error in WGSL).
var<private> NEG_INFINITY_BITS: u32 = 0xff800000u;

// Lanes that are neither infinite nor NaN (on the bits, as common.wgsl's is_finite).
fn finite_lanes(v: vec4<f32>) -> vec4<bool> {
    return (bitcast<vec4<u32>>(v) & vec4<u32>(0x7fffffffu)) < vec4<u32>(0x7f800000u);
}

@group(0) @binding(0) var<uniform> p: SdpaUniform;
@group(0) @binding(1) var<storage, read> q: array<Act>;
@group(0) @binding(2) var<storage, read> k: array<Act>;
@group(0) @binding(3) var<storage, read> v: array<Act>;
@group(0) @binding(4) var<storage, read_write> y: array<Act>;
// SPLIT: (maximum, sum) and the accumulators of each (split, thread).
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;
@group(0) @binding(6) var<storage, read_write> partial: array<f32>;
// KEY_STEP = 4: the keys and values four at a time (the same buffers as k and v).
@group(0) @binding(7) var<storage, read> k4: array<vec4<Act>>;
@group(0) @binding(8) var<storage, read> v4: array<vec4<Act>>;

// The largest finite f32, below every finite score.
const FLT_MAX: f32 = 0x1.fffffep+127f;

// The step's keys' elements from index i on (the lanes past KEY_STEP unused).
fn key_group(i: u32) -> vec4<f32> {
    if (KEY_STEP == 4u) {
        return vec4<f32>(k4[i / 4u]);
    }
    return vec4<f32>(f32(k[i]), 0.0, 0.0, 0.0);
}

// The step's values from index i on.
fn value_group(i: u32) -> vec4<f32> {
    if (KEY_STEP == 4u) {
        return vec4<f32>(v4[i / 4u]);
    }
    return vec4<f32>(f32(v[i]), 0.0, 0.0, 0.0);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let t_split = thread_index(inv, lid);
    let split = t_split / p.threads;
    let t = t_split % p.threads;
    if (split * p.keys_per_split >= p.keys) {
        return;
    }
    let block = t % p.blocks;
    let rest = t / p.blocks; // (b * heads + h) * chunks + chunk
    let chunk = rest % p.chunks;
    let bh = rest / p.chunks;
    let n0 = 4u * QUERY_VECS * block;
    let q_base = bh * HEAD_DIM * p.queries;
    // (max(.., 1u): a zero specialisation stays a valid module.)
    var qs: array<vec4<f32>, max(HEAD_DIM * QUERY_VECS * (1u - ONE_HOT_QUERIES), 1u)>; // [e * QUERY_VECS + b]
    for (var b = 0u; b < QUERY_VECS * (1u - ONE_HOT_QUERIES); b++) {
        // The block's queries (the last block's missing ones repeat the last query).
        let lanes = min(
            vec4<u32>(n0 + 4u * b) + vec4<u32>(0u, 1u, 2u, 3u),
            vec4<u32>(p.queries - 1u),
        );
        for (var e = 0u; e < HEAD_DIM; e++) {
            let row = q_base + e * p.queries;
            qs[e * QUERY_VECS + b] = vec4<f32>(
                f32(q[row + lanes.x]),
                f32(q[row + lanes.y]),
                f32(q[row + lanes.z]),
                f32(q[row + lanes.w]),
            ) * p.scale;
        }
    }
    let j0 = chunk * VALUE_CHUNK;
    let count = min(VALUE_CHUNK, p.value_dim - j0);
    let k_base = bh * HEAD_DIM * p.keys;
    let v_base = (bh * p.value_dim + j0) * p.keys;
    var acc: array<vec4<f32>, max(VALUE_CHUNK * QUERY_VECS, 1u)>; // [j * QUERY_VECS + b]
    var running_max: array<vec4<f32>, max(QUERY_VECS, 1u)>;
    var sum: array<vec4<f32>, max(QUERY_VECS, 1u)>;
    var seen: array<vec4<bool>, max(QUERY_VECS, 1u)>; // a finite score yet
    var poisoned: array<vec4<bool>, max(QUERY_VECS, 1u)>; // a NaN or +inf score
    let m_end = min(p.keys, (split + 1u) * p.keys_per_split);
    for (var m = split * p.keys_per_split; m < m_end; m += KEY_STEP) {
        // The scores of the step's keys: [kk * QUERY_VECS + b].
        var s = array<vec4<f32>, max(KEY_STEP * QUERY_VECS, 1u)>();
        if (ONE_HOT_QUERIES == 1u) {
            for (var b = 0u; b < QUERY_VECS; b++) {
                let lanes = min(
                    vec4<u32>(n0 + 4u * b) + vec4<u32>(0u, 1u, 2u, 3u),
                    vec4<u32>(p.queries - 1u),
                );
                let rows = vec4<u32>(k_base + m) + lanes * p.keys;
                // Each lane's own row: its keys' scores.
                let s0 = key_group(rows.x);
                let s1 = key_group(rows.y);
                let s2 = key_group(rows.z);
                let s3 = key_group(rows.w);
                for (var kk = 0u; kk < KEY_STEP; kk++) {
                    s[kk * QUERY_VECS + b] = vec4<f32>(s0[kk], s1[kk], s2[kk], s3[kk]) * p.scale;
                }
            }
        } else {
            for (var e = 0u; e < HEAD_DIM; e++) {
                let keys = key_group(k_base + e * p.keys + m);
                for (var kk = 0u; kk < KEY_STEP; kk++) {
                    for (var b = 0u; b < QUERY_VECS; b++) {
                        s[kk * QUERY_VECS + b] += qs[e * QUERY_VECS + b] * keys[kk];
                    }
                }
            }
        }
        var r = array<vec4<f32>, max(QUERY_VECS, 1u)>();
        var w = array<vec4<f32>, max(KEY_STEP * QUERY_VECS, 1u)>();
        var rescale = false;
        for (var b = 0u; b < QUERY_VECS; b++) {
            // The step's largest finite score, and whether there is one.
            var step_max = vec4<f32>(-FLT_MAX);
            var any_finite = vec4<bool>(false);
            for (var kk = 0u; kk < KEY_STEP; kk++) {
                let sk = s[kk * QUERY_VECS + b];
                let finite = finite_lanes(sk);
                let positive = sk > vec4<f32>(0.0);
                poisoned[b] = poisoned[b] | (!finite & (nan_lanes(sk) | positive));
                step_max = max(step_max, select(vec4<f32>(-FLT_MAX), sk, finite));
                any_finite = any_finite | finite;
            }
            let higher = step_max > running_max[b];
            let grow = any_finite & (!seen[b] | higher);
            r[b] = vec4<f32>(1.0);
            if (any(grow)) {
                // What was summed against the old maxima is rescaled (nothing before the
                // first finite score). Rare after the first keys: the exp only here.
                let first = select(vec4<f32>(0.0), exp(running_max[b] - step_max), seen[b]);
                r[b] = select(vec4<f32>(1.0), first, grow);
                rescale = true;
                running_max[b] = select(running_max[b], step_max, grow);
                seen[b] = seen[b] | grow;
            }
            // -inf scores weigh 0, multiplied all the same (0 * inf is NaN in PyTorch too).
            var step_sum = vec4<f32>(0.0);
            for (var kk = 0u; kk < KEY_STEP; kk++) {
                let sk = s[kk * QUERY_VECS + b];
                let wk = select(vec4<f32>(0.0), exp(sk - running_max[b]), finite_lanes(sk));
                w[kk * QUERY_VECS + b] = wk;
                step_sum += wk;
            }
            sum[b] = sum[b] * r[b] + step_sum;
        }
        if (rescale) {
            for (var j = 0u; j < VALUE_CHUNK; j++) {
                for (var b = 0u; b < QUERY_VECS; b++) {
                    acc[j * QUERY_VECS + b] *= r[b];
                }
            }
        }
        for (var j = 0u; j < VALUE_CHUNK; j++) {
            if (j < count) {
                let values = value_group(v_base + j * p.keys + m);
                for (var b = 0u; b < QUERY_VECS; b++) {
                    var a = acc[j * QUERY_VECS + b];
                    for (var kk = 0u; kk < KEY_STEP; kk++) {
                        a += w[kk * QUERY_VECS + b] * values[kk];
                    }
                    acc[j * QUERY_VECS + b] = a;
                }
            }
        }
    }
    for (var b = 0u; b < QUERY_VECS; b++) {
        let nb = n0 + 4u * b;
        if (nb >= p.queries) {
            break;
        }
        // Per query: its index among the combining pass's threads, and whether it exists.
        let tq = rest * p.queries + nb;
        let live = min(4u, p.queries - nb);
        if (SPLIT == 1u) {
            let none = vec4<f32>(bitcast<f32>(NEG_INFINITY_BITS));
            var mx = select(running_max[b], none, !seen[b]);
            mx = select(mx, vec4<f32>(bitcast<f32>(NAN_BITS)), poisoned[b]);
            for (var i = 0u; i < live; i++) {
                let record = split * p.split_records + tq + i;
                stats[2u * record] = mx[i];
                stats[2u * record + 1u] = sum[b][i];
                for (var j = 0u; j < VALUE_CHUNK; j++) {
                    partial[record * VALUE_CHUNK + j] = acc[j * QUERY_VECS + b][i];
                }
            }
        } else {
            // No finite score: 0 / 0, NaN as in PyTorch.
            let nan = poisoned[b] | !seen[b];
            let y_base = (bh * p.value_dim + j0) * p.queries + nb;
            for (var j = 0u; j < VALUE_CHUNK; j++) {
                if (j < count) {
                    let nans = vec4<f32>(bitcast<f32>(NAN_BITS));
                    let out = select(acc[j * QUERY_VECS + b] / sum[b], nans, nan);
                    let row = y_base + j * p.queries;
                    for (var i = 0u; i < live; i++) {
                        y[row + i] = Act(out[i]);
                    }
                }
            }
        }
    }
}
