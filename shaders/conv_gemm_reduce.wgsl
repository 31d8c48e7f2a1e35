// The second pass of the split-K GEMM convolution (conv_gemm.wgsl with PARTIAL): one
// output value per invocation, the splits' raw sums added in order, then the bias and the
// store (activation, residual, channel shuffle) of the plain kernel.
#include "common.wgsl"
#include "epilogue.wgsl"

struct GemmReduceParams {
    total: u32, // N * C_out * pixels
    c_out: u32,
    ohw: u32,
    splits: u32,
    pact_a: f32, // the store's activation parameters (StoreArgs)
    pact_b: f32,
    then_a: f32,
    then_b: f32,
}

@group(0) @binding(0) var<uniform> p: GemmReduceParams;
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<Wt>;
@group(0) @binding(3) var<storage, read_write> y: array<Act>;
@group(0) @binding(4) var<storage, read> res: array<Act>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    store_args = StoreArgs(p.pact_a, p.pact_b, p.then_a, p.then_b);
    let i = thread_index(inv, lid);
    if (i >= p.total) {
        return;
    }
    let pix = i % p.ohw;
    let nc = i / p.ohw;
    let cc = nc % p.c_out;
    let n = nc / p.c_out;
    var v = 0.0;
    for (var s = 0u; s < p.splits; s++) {
        v += part[s * p.total + i];
    }
    let o = (n * p.c_out + shuffled_channel(cc, p.c_out)) * p.ohw + pix;
    var r = 0.0;
    if (RESIDUAL != 0u) {
        r = f32(res[o]);
    }
    y[o] = Act(finish(v + f32(bias[cc]), r));
}
