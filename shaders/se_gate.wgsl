// Squeeze-and-excitation's squeeze and excitation in one pass, one workgroup per sample:
// channel means (global average pool), then fc1 + activation and fc2 (1x1 convolutions
// on the pooled vector) in workgroup memory. Writes the gate logits [N, C]; the gate
// activation is applied by the scale pass that reads the feature map (elementwise.wgsl),
// so the whole block is two dispatches. With SUM the pooled vector is mean(x) + mean(x2),
// each over its own plane: the pool of x + x2 for maps of one size (a gate computed from a
// sum that is never materialised), and, for x2 half x's size, the pool of x plus x2
// resized 2x bilinearly (which keeps a plane's mean).
#include "activation.wgsl"

override SUM: bool = false;
// C and S multiples of 4: the weights are read four at a time (`weights4`, the same
// buffer; `weights` is then not bound), each load feeding four multiply-adds.
override VEC: bool = false;

const MAX_C: u32 = 2048u;
const MAX_S: u32 = 512u;

struct SeParams {
    c: u32,
    s: u32,
    hw: u32,
    hw2: u32, // x2's plane (SUM)
}

@group(0) @binding(0) var<uniform> p: SeParams;
// Read as vec4s: four values per load when H * W is a multiple of 4, single values picked
// out of them otherwise.
@group(0) @binding(1) var<storage, read> x: array<vec4<Act>>;
// fc1's weight [S, C] and bias [S], then fc2's weight [C, S] and bias [C], one after the
// other (the buffer the fused inverted residual reads too); a layer buffer, stored at the
// context's precision (`Wt`).
@group(0) @binding(2) var<storage, read> weights: array<Wt>;
@group(0) @binding(3) var<storage, read_write> gate: array<Act>; // [N, C]
// The second summand (SUM).
@group(0) @binding(4) var<storage, read> x2: array<vec4<Act>>;
// The weights as vec4s (VEC).
@group(0) @binding(5) var<storage, read> weights4: array<vec4<Wt>>;

var<workgroup> pooled: array<vec4<f32>, MAX_C / 4u>;
var<workgroup> hidden: array<vec4<f32>, MAX_S / 4u>;
var<workgroup> lane_sums: array<f32, WORKGROUP_SIZE>;

fn weight(i: u32) -> f32 {
    if (VEC) {
        return f32(weights4[i / 4u][i % 4u]);
    }
    return f32(weights[i]);
}

fn load4(second: bool, i: u32) -> vec4<f32> {
    if (second) {
        return vec4<f32>(x2[i]);
    }
    return vec4<f32>(x[i]);
}

// The sum of the values lane, lane + lanes, lane + 2 lanes, ... of the plane of hw values
// at base of x (or of x2).
fn plane_sum(second: bool, base: u32, hw: u32, lane: u32, lanes: u32) -> f32 {
    // Blocked sum: partial sums of 64 loads keep rounding small on large planes.
    var total = 0.0;
    if (hw % 4u == 0u) {
        let base4 = base / 4u;
        let hw4 = hw / 4u;
        for (var b0 = lane; b0 < hw4; b0 += 64u * lanes) {
            var part = vec4<f32>(0.0);
            for (var i = b0; i < min(b0 + 64u * lanes, hw4); i += lanes) {
                part += load4(second, base4 + i);
            }
            total += (part.x + part.y) + (part.z + part.w);
        }
    } else {
        for (var b0 = lane; b0 < hw; b0 += 256u * lanes) {
            var part = 0.0;
            for (var i = b0; i < min(b0 + 256u * lanes, hw); i += lanes) {
                let e = base + i;
                part += load4(second, e / 4u)[e % 4u];
            }
            total += part;
        }
    }
    return total;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    // One workgroup per sample (uniform), so the barriers below are in uniform control flow.
    let n = workgroup_index(inv);
    // Every invocation pools: `lanes` of them share a channel when there are fewer
    // channels than invocations, and add up their sums in workgroup memory.
    let lanes = max(WORKGROUP_SIZE / max(p.c, 1u), 1u);
    let per_round = WORKGROUP_SIZE / lanes;
    let lane = lid % lanes;
    let slot = lid / lanes;
    let rounds = (p.c + per_round - 1u) / per_round;
    for (var r = 0u; r < rounds; r++) {
        let c = r * per_round + slot;
        let mine = c < p.c && slot < per_round;
        var s = 0.0;
        if (mine) {
            s = plane_sum(false, (n * p.c + c) * p.hw, p.hw, lane, lanes) / f32(p.hw);
            if (SUM) {
                s += plane_sum(true, (n * p.c + c) * p.hw2, p.hw2, lane, lanes) / f32(p.hw2);
            }
        }
        lane_sums[lid] = s;
        workgroupBarrier();
        if (mine && lane == 0u) {
            var total = 0.0;
            for (var l = 0u; l < lanes; l++) {
                total += lane_sums[lid + l];
            }
            pooled[c / 4u][c % 4u] = total;
        }
        workgroupBarrier();
    }
    let b1 = p.s * p.c;
    let w2 = b1 + p.s;
    let b2 = w2 + p.c * p.s;
    for (var s = lid; s < p.s; s += WORKGROUP_SIZE) {
        var acc = weight(b1 + s);
        if (VEC) {
            // Four partial sums, one per lane of the vec4s.
            var acc4 = vec4<f32>(0.0);
            let row = s * p.c / 4u;
            for (var c4 = 0u; c4 < p.c / 4u; c4++) {
                acc4 = fma(vec4<f32>(weights4[row + c4]), pooled[c4], acc4);
            }
            acc += (acc4.x + acc4.y) + (acc4.z + acc4.w);
        } else {
            for (var c = 0u; c < p.c; c++) {
                acc = fma(weight(s * p.c + c), pooled[c / 4u][c % 4u], acc);
            }
        }
        hidden[s / 4u][s % 4u] = activate(acc);
    }
    workgroupBarrier();
    for (var c = lid; c < p.c; c += WORKGROUP_SIZE) {
        var acc = weight(b2 + c);
        if (VEC) {
            var acc4 = vec4<f32>(0.0);
            let row = (w2 + c * p.s) / 4u;
            for (var s4 = 0u; s4 < p.s / 4u; s4++) {
                acc4 = fma(vec4<f32>(weights4[row + s4]), hidden[s4], acc4);
            }
            acc += (acc4.x + acc4.y) + (acc4.z + acc4.w);
        } else {
            for (var s = 0u; s < p.s; s++) {
                acc = fma(weight(w2 + c * p.s + s), hidden[s / 4u][s % 4u], acc);
            }
        }
        gate[n * p.c + c] = Act(acc);
    }
}
