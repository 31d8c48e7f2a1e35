// Copies whole (n, c) planes between tensors by a channel table: output channel
// dst_offset + j * dst_stride of every sample takes input channel table[j]. Channel
// shuffle, channel split and each input of a concatenation are one dispatch of this
// kernel; so is each half of ShuffleNetV2's concatenate-and-shuffle (stride 2).
// Each invocation copies PX elements of one plane (the index decode is paid per strip).
#include "common.wgsl"

const PX: u32 = 16u;

struct ChannelCopyParams {
    hw: u32,
    c_src: u32, // channels of x
    c_dst: u32, // channels of y
    dst_offset: u32,
    count: u32, // channels copied per sample
    strips: u32, // ceil(hw / PX)
    total: u32, // n * count * strips
    dst_stride: u32, // output channels between consecutive copied channels
}

@group(0) @binding(0) var<uniform> p: ChannelCopyParams;
@group(0) @binding(1) var<storage, read> x: array<Act>;
@group(0) @binding(2) var<storage, read> table: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<Act>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let s = thread_index(inv, lid);
    if (s >= p.total) {
        return;
    }
    let row = s / p.strips;
    let p0 = (s % p.strips) * PX;
    let j = row % p.count;
    let n = row / p.count;
    let src = (n * p.c_src + table[j]) * p.hw;
    let dst = (n * p.c_dst + p.dst_offset + j * p.dst_stride) * p.hw;
    for (var k = 0u; k < PX; k++) {
        let i = p0 + k;
        if (i < p.hw) {
            y[dst + i] = Act(f32(x[src + i]));
        }
    }
}
