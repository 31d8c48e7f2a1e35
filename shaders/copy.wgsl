// A plain buffer copy, PER vec4s per invocation: the bandwidth yardstick that the
// memory-bound ops are measured against (benches), and a device-side tensor clone. An
// invocation copies vec4s i, i + T, .. i + (PER - 1) T (T invocations in all, so each
// load and store instruction of a subgroup stays contiguous), loading all of them before
// it stores any: more bytes in flight per invocation where one vec4 (16 bytes, 8 in f16)
// leaves a GPU's memory system short of requests.
#include "common.wgsl"

struct CopyParams {
    len4: u32, // number of vec4 elements
    threads: u32, // invocations: ceil(len4 / PER)
}

@group(0) @binding(0) var<uniform> p: CopyParams;
@group(0) @binding(1) var<storage, read> x: array<vec4<Act>>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4<Act>>;

// vec4s per invocation, 1 to 4.
override PER: u32 = 1u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(inv, lid);
    if (i >= p.threads) {
        return;
    }
    var v: array<vec4<Act>, 4>;
    for (var k = 0u; k < PER; k++) {
        let j = i + k * p.threads;
        if (j < p.len4) {
            v[k] = x[j];
        }
    }
    for (var k = 0u; k < PER; k++) {
        let j = i + k * p.threads;
        if (j < p.len4) {
            y[j] = v[k];
        }
    }
}
