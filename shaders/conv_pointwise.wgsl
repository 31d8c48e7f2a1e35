// Pointwise (1x1, stride 1, no padding, one group) convolution as a tiled matrix product:
// Y[n] (C_out x P) = W (C_out x C_in) * X[n] (C_in x P), P = H * W divisible by 4.
//
// Each invocation computes 16 pixels (four vec4 loads per input channel) for 4 * OC_VEC
// output channels (one or two vec4 weight loads per input channel), so every load feeds
// 16 or 32 multiply-adds. Weights are [C_in][C_out padded to 4 * OC_VEC] (src/ops/conv.rs).
// Workgroups: linear index = (n * oc_blocks_pg + block) * work + tile block.
#include "common.wgsl"

override OC_VEC: u32 = 2u;

const Q: u32 = 4u; // vec4 pixel groups per invocation

@group(0) @binding(0) var<uniform> p: ConvParams;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> wt: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let wid = linear_workgroup(wg, nwg);
    let tile_block = wid % p.work;
    let t = wid / p.work;
    let block = t % p.oc_blocks_pg;
    let n = t / p.oc_blocks_pg;
    if (n >= p.n) {
        return;
    }
    let tile = tile_block * 64u + lid;
    let p4 = (p.h * p.w) / 4u;
    let q0 = tile * Q;
    if (q0 >= p4) {
        return;
    }
    let oc0 = block * 4u * OC_VEC;
    let oc_pad4 = p.cout_pg_pad / 4u;

    // acc[k * Q + q]: output channel oc0 + k, pixels 4 * (q0 + q) .. + 3.
    // Function-scope variables start zeroed in WGSL.
    var acc: array<vec4<f32>, 32>;
    // Pixel groups past the end of the plane read the plane's last group (a harmless
    // duplicate) and are not written.
    var qidx: array<u32, Q>;
    for (var q = 0u; q < Q; q++) {
        qidx[q] = min(q0 + q, p4 - 1u);
    }

    for (var ci = 0u; ci < p.c_in; ci++) {
        let xrow = (n * p.c_in + ci) * p4;
        var xv: array<vec4<f32>, Q>;
        for (var q = 0u; q < Q; q++) {
            xv[q] = x[xrow + qidx[q]];
        }
        let widx = ci * oc_pad4 + oc0 / 4u;
        let w0 = wt[widx];
        for (var k = 0u; k < 4u; k++) {
            for (var q = 0u; q < Q; q++) {
                acc[k * Q + q] = fma(xv[q], vec4<f32>(w0[k]), acc[k * Q + q]);
            }
        }
        if (OC_VEC > 1u) {
            let w1 = wt[widx + 1u];
            for (var k = 0u; k < 4u; k++) {
                for (var q = 0u; q < Q; q++) {
                    acc[(k + 4u) * Q + q] = fma(xv[q], vec4<f32>(w1[k]), acc[(k + 4u) * Q + q]);
                }
            }
        }
    }

    // Constant trip counts and no early exit: the loops unroll and acc stays in registers.
    for (var k = 0u; k < 4u * OC_VEC; k++) {
        let co = oc0 + k;
        let cc = min(co, p.cout_pg - 1u);
        let b = bias[cc];
        let out_row = (n * p.c_out + cc) * p4;
        for (var q = 0u; q < Q; q++) {
            if (co < p.cout_pg && q0 + q < p4) {
                y[out_row + q0 + q] = activate4(acc[k * Q + q] + b);
            }
        }
    }
}
