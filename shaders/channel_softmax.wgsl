// Reductions over the channels of each pixel (PyTorch's dim=1): MODE 0 softmax, 1 log
// softmax (both with the maximum subtracted first; NaN or +inf anywhere in a pixel's
// channels, or -inf in all, makes all of them NaN, as in PyTorch), 2 argmax (the first
// maximum's channel; the first NaN's if there is one), 3 layer norm over the channels
// (torchvision's LayerNorm2d: mean, then the biased variance of the deviations, then
// gamma[c] * x_hat + beta[c]).
// One invocation per pixel of one sample, which walks the channels (stride H * W).
#include "common.wgsl"

override MODE: u32 = 0u;

struct ChannelSoftmaxParams {
    pixels: u32, // N * H * W
    c: u32,
    hw: u32,
    eps: f32, // layer norm
}

@group(0) @binding(0) var<uniform> p: ChannelSoftmaxParams;
@group(0) @binding(1) var<storage, read> x: array<Act>;
@group(0) @binding(2) var<storage, read_write> y: array<Act>;
@group(0) @binding(3) var<storage, read_write> idx: array<i32>;
// Layer norm's affine (f32).
@group(0) @binding(4) var<storage, read> gamma: array<f32>;
@group(0) @binding(5) var<storage, read> beta: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let t = thread_index(inv, lid);
    if (t >= p.pixels) {
        return;
    }
    let n = t / p.hw;
    let base = n * p.c * p.hw + t % p.hw;
    if (MODE == 3u) {
        var mean = 0.0;
        for (var c = 0u; c < p.c; c++) {
            mean += f32(x[base + c * p.hw]);
        }
        mean /= f32(p.c);
        var var_sum = 0.0;
        for (var c = 0u; c < p.c; c++) {
            let d = f32(x[base + c * p.hw]) - mean;
            var_sum += d * d;
        }
        let inv = inverseSqrt(var_sum / f32(p.c) + p.eps);
        for (var c = 0u; c < p.c; c++) {
            let d = f32(x[base + c * p.hw]) - mean;
            y[base + c * p.hw] = Act(d * inv * gamma[c] + beta[c]);
        }
        return;
    }
    // The maximum, NaN sticky; and where it first occurs.
    var m = f32(x[base]);
    var at = 0u;
    for (var c = 1u; c < p.c; c++) {
        let v = f32(x[base + c * p.hw]);
        if (!is_nan(m) && (v > m || is_nan(v))) {
            m = v;
            at = c;
        }
    }
    if (MODE == 2u) {
        idx[t] = i32(at);
        return;
    }
    if (!is_finite(m)) {
        // A NaN, an infinity, or every channel -inf: x - max is NaN somewhere, and so is
        // the sum, for every channel in PyTorch. Written out, not left to exp(NaN) (which
        // SwiftShader makes infinite, so that 0 / sum gave 0).
        for (var c = 0u; c < p.c; c++) {
            y[base + c * p.hw] = Act(bitcast<f32>(NAN_BITS));
        }
        return;
    }
    var sum = 0.0;
    for (var c = 0u; c < p.c; c++) {
        sum += exp(f32(x[base + c * p.hw]) - m);
    }
    let log_sum = log(sum);
    for (var c = 0u; c < p.c; c++) {
        let d = f32(x[base + c * p.hw]) - m;
        if (MODE == 0u) {
            y[base + c * p.hw] = Act(exp(d) / sum);
        } else {
            y[base + c * p.hw] = Act(d - log_sum);
        }
    }
}
