// Channel pooling for CBAM's spatial attention: for every pixel, the mean and the maximum
// over channels, written as two channels of an [N, 2, H, W] tensor: mean first with
// MAX_FIRST false (the common PyTorch implementations), max first with MAX_FIRST true
// (the CBAM authors' `ChannelPool`). NaN propagates in the max.
#include "common.wgsl"

override MAX_FIRST: bool = false;

struct ChannelPoolParams {
    c: u32,
    hw: u32,
    total: u32, // n * hw
}

@group(0) @binding(0) var<uniform> p: ChannelPoolParams;
@group(0) @binding(1) var<storage, read> x: array<Act>;
@group(0) @binding(2) var<storage, read_write> y: array<Act>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let e = thread_index(inv, lid);
    if (e >= p.total) {
        return;
    }
    let n = e / p.hw;
    let i = e % p.hw;
    let base = n * p.c * p.hw + i;
    var best = f32(x[base]);
    var sum = 0.0;
    for (var c = 0u; c < p.c; c++) {
        let v = f32(x[base + c * p.hw]);
        if (v > best || is_nan(v)) {
            best = v;
        }
        sum += v;
    }
    let max_channel = u32(!MAX_FIRST);
    y[(2u * n + max_channel) * p.hw + i] = Act(best);
    y[(2u * n + 1u - max_channel) * p.hw + i] = Act(sum / f32(p.c));
}
