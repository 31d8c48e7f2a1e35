// The dot product of two maps over their channels at every pixel, `act(sum_c a * b)`,
// written as the one channel of an [N, 1, H, W] tensor: PIDNet's pixel attention
// `sigmoid(torch.sum(x_k * y_q, dim=1))`, the product never stored. One invocation per
// pixel; the channel planes it steps through are read coalesced across the workgroup.
#include "activation.wgsl"

struct ChannelDotParams {
    c: u32,
    hw: u32,
    total: u32, // n * hw
}

@group(0) @binding(0) var<uniform> p: ChannelDotParams;
@group(0) @binding(1) var<storage, read> a: array<Act>;
@group(0) @binding(2) var<storage, read> b: array<Act>;
@group(0) @binding(3) var<storage, read_write> y: array<Act>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let e = thread_index(inv, lid);
    if (e >= p.total) {
        return;
    }
    let n = e / p.hw;
    let i = e % p.hw;
    let base = n * p.c * p.hw + i;
    var sum = 0.0;
    for (var c = 0u; c < p.c; c++) {
        let at = base + c * p.hw;
        sum += f32(a[at]) * f32(b[at]);
    }
    y[e] = Act(activate(sum));
}
