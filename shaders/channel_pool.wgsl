// Channel pooling for CBAM's spatial attention: for every pixel, the maximum and the mean
// over channels, written as channel 0 (max) and channel 1 (mean) of an [N, 2, H, W]
// tensor, in the order of the CBAM reference code (ChannelPool). NaN propagates in the max.
#include "common.wgsl"

struct ChannelPoolParams {
    c: u32,
    hw: u32,
    total: u32, // n * hw
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: ChannelPoolParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = linear_workgroup(wg, nwg) * 64u + lid;
    if (e >= p.total) {
        return;
    }
    let n = e / p.hw;
    let i = e % p.hw;
    let base = n * p.c * p.hw + i;
    var best = x[base];
    var sum = 0.0;
    for (var c = 0u; c < p.c; c++) {
        let v = x[base + c * p.hw];
        if (v > best || is_nan(v)) {
            best = v;
        }
        sum += v;
    }
    y[(2u * n) * p.hw + i] = best;
    y[(2u * n + 1u) * p.hw + i] = sum / f32(p.c);
}
