// LR-ASPP's high-resolution branch in one pass (src/ops/lraspp_head.rs):
//   g = GATE_ACT(w_gate . avgpool(x) + b_gate)               per image, [mid]
//   h = ACT(w_branch . x + b_branch) * g                     per pixel, [mid]
//   y = w_classifier . h + b_classifier  (or y = h without a classifier)
// Each workgroup first computes the gate of its image (pooling the map itself with POOL,
// else reading the pooled vector), then each invocation takes one pixel: its input
// channels stay in registers, the mid channels are produced one at a time and folded
// straight into the classifier's sums, so h never reaches device memory.
#include "common.wgsl"

// Input channels, mid channels and classifier outputs in vec4s.
const CIN4: u32 = 8u; // @specialize
const MID4: u32 = 32u; // @specialize
const COUT4: u32 = 6u; // @specialize
// 1: the classifier follows (y has c_out channels); 0: y is h (mid channels).
const CLASSIFIER: u32 = 1u; // @specialize
// 1: pool x here; 0: read the pooled vector from `pooled`.
const POOL: u32 = 1u; // @specialize
override ACT: u32 = 1u;
override GATE_ACT: u32 = 3u;

struct LrAsppHeadUniform {
    n: u32,
    c_in: u32,
    mid: u32,
    c_out: u32,
    hw: u32,
    tiles: u32, // workgroups per image
}

@group(0) @binding(0) var<uniform> p: LrAsppHeadUniform;
@group(0) @binding(1) var<storage, read> x: array<Act>; // [n, c_in, hw]
@group(0) @binding(2) var<storage, read> pooled: array<Act>; // [n, c_in] (POOL == 0)
// The weights and biases below are layer buffers, stored at the context's precision (`Wt`).
// [mid, CIN4] vec4s of 4 input channels each (zero padded), for the branch and the gate.
@group(0) @binding(3) var<storage, read> w_branch: array<vec4<Wt>>;
@group(0) @binding(4) var<storage, read> w_gate: array<vec4<Wt>>;
// [mid, COUT4] vec4s of 4 output channels (zero padded).
@group(0) @binding(5) var<storage, read> w_classifier: array<vec4<Wt>>;
// The branch's (mid), the gate's (mid) and the classifier's (COUT4 * 4) biases.
@group(0) @binding(6) var<storage, read> biases: array<Wt>;
@group(0) @binding(7) var<storage, read_write> y: array<Act>;

var<workgroup> pooled_sh: array<vec4<f32>, CIN4>;
var<workgroup> gate_sh: array<f32, MID4 * 4u>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let t = lid;
    let wg = workgroup_index(inv);
    let n = wg / p.tiles;
    // Uniform per workgroup.
    if (n >= p.n) {
        return;
    }
    // 1. The pooled input of this image, 4 channels an invocation.
    for (var c4 = t; c4 < CIN4; c4 += WORKGROUP_SIZE) {
        var v = vec4<f32>(0.0);
        for (var j = 0u; j < 4u; j++) {
            let c = 4u * c4 + j;
            if (c < p.c_in) {
                if (POOL == 1u) {
                    let base = (n * p.c_in + c) * p.hw;
                    // Blocked sum: partial sums of 256 keep rounding small.
                    var total = 0.0;
                    for (var b0 = 0u; b0 < p.hw; b0 += 256u) {
                        var part = 0.0;
                        for (var i = b0; i < min(b0 + 256u, p.hw); i++) {
                            part += f32(x[base + i]);
                        }
                        total += part;
                    }
                    v[j] = total / f32(p.hw);
                } else {
                    v[j] = f32(pooled[n * p.c_in + c]);
                }
            }
        }
        pooled_sh[c4] = v;
    }
    workgroupBarrier();
    // 2. The gate.
    for (var m = t; m < MID4 * 4u; m += WORKGROUP_SIZE) {
        var g = 0.0;
        if (m < p.mid) {
            var s = vec4<f32>(0.0);
            for (var c4 = 0u; c4 < CIN4; c4++) {
                s += vec4<f32>(w_gate[m * CIN4 + c4]) * pooled_sh[c4];
            }
            g = activation4(GATE_ACT, vec4<f32>(f32(biases[p.mid + m]) + s.x + s.y + s.z + s.w)).x;
        }
        gate_sh[m] = g;
    }
    workgroupBarrier();

    // 3. One pixel per invocation.
    let pixel = (wg % p.tiles) * WORKGROUP_SIZE + t;
    if (pixel >= p.hw) {
        return;
    }
    var xv: array<vec4<f32>, CIN4>;
    for (var c4 = 0u; c4 < CIN4; c4++) {
        for (var j = 0u; j < 4u; j++) {
            let c = min(4u * c4 + j, p.c_in - 1u);
            xv[c4][j] = select(0.0, f32(x[(n * p.c_in + c) * p.hw + pixel]), 4u * c4 + j < p.c_in);
        }
    }
    let cb = 2u * p.mid;
    var acc: array<vec4<f32>, COUT4>;
    for (var k = 0u; k < COUT4; k++) {
        acc[k] = vec4<f32>(f32(biases[cb + 4u * k]), f32(biases[cb + 4u * k + 1u]),
            f32(biases[cb + 4u * k + 2u]), f32(biases[cb + 4u * k + 3u]));
    }
    for (var m = 0u; m < p.mid; m++) {
        var s = vec4<f32>(0.0);
        for (var c4 = 0u; c4 < CIN4; c4++) {
            s += vec4<f32>(w_branch[m * CIN4 + c4]) * xv[c4];
        }
        let h = activation4(ACT, vec4<f32>(f32(biases[m]) + s.x + s.y + s.z + s.w)).x * gate_sh[m];
        if (CLASSIFIER == 1u) {
            for (var k = 0u; k < COUT4; k++) {
                acc[k] += vec4<f32>(w_classifier[m * COUT4 + k]) * h;
            }
        } else {
            y[(n * p.mid + m) * p.hw + pixel] = Act(h);
        }
    }
    if (CLASSIFIER == 1u) {
        for (var k = 0u; k < COUT4; k++) {
            for (var j = 0u; j < 4u; j++) {
                let co = 4u * k + j;
                if (co < p.c_out) {
                    y[(n * p.c_out + co) * p.hw + pixel] = Act(acc[k][j]);
                }
            }
        }
    }
}
