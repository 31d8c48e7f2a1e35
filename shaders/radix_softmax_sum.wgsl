// ResNeSt's split-attention weighting (timm's `RadixSoftmax` and the weighted sum after
// it, in one pass): x holds RADIX splits of C channels ([N, RADIX * C, H, W], split r in
// channels r * C ..), logits is [N, RADIX * C] in the same order, and
// y[n, c] = sum_r w_r * x[n, r * C + c], w the softmax across r of logits[n, r * C + c]
// (one split: w_0 = sigmoid(logit), as timm). Each invocation writes PX consecutive values
// of one plane and computes the plane's weights once.
#include "common.wgsl"

override RADIX: u32 = 2u;
// The largest RADIX (function-scope arrays need a constant size); the host refuses more.
const MAX_RADIX: u32 = 8u;
const PX: u32 = 16u;

struct RadixSumParams {
    c: u32, // channels of one split (of y)
    hw: u32,
    strips: u32, // ceil(hw / PX)
    total: u32, // n * c * strips
}

@group(0) @binding(0) var<uniform> p: RadixSumParams;
@group(0) @binding(1) var<storage, read> x: array<Act>;
@group(0) @binding(2) var<storage, read> logits: array<Act>;
@group(0) @binding(3) var<storage, read_write> y: array<Act>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let s = thread_index(inv, lid);
    if (s >= p.total) {
        return;
    }
    let plane = s / p.strips; // n * c + ch
    let p0 = (s % p.strips) * PX;
    let n = plane / p.c;
    let ch = plane % p.c;
    let first = n * RADIX * p.c + ch; // split 0's channel, as an index of logits
    var w = array<f32, MAX_RADIX>();
    if (RADIX == 1u) {
        w[0] = 1.0 / (1.0 + exp(-f32(logits[first])));
    } else {
        var top = f32(logits[first]);
        for (var r = 1u; r < RADIX; r++) {
            top = max(top, f32(logits[first + r * p.c]));
        }
        var total = 0.0;
        for (var r = 0u; r < RADIX; r++) {
            w[r] = exp(f32(logits[first + r * p.c]) - top);
            total += w[r];
        }
        for (var r = 0u; r < RADIX; r++) {
            w[r] /= total;
        }
    }
    let split = p.c * p.hw;
    let src = first * p.hw;
    let dst = plane * p.hw;
    for (var k = 0u; k < PX; k++) {
        let i = p0 + k;
        if (i < p.hw) {
            var acc = 0.0;
            for (var r = 0u; r < RADIX; r++) {
                acc += w[r] * f32(x[src + r * split + i]);
            }
            y[dst + i] = Act(acc);
        }
    }
}
