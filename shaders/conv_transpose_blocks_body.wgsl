// Transposed convolution whose kernel equals its stride (no padding, dilation or output
// padding, one group): the U-Net / FCN 2x2-stride-2 upsampling and MediaPipe's last layer.
// Every input pixel owns the sH x sW output block under it,
//   y[n, co, sH * i + a, sW * j + b] = bias[co] + sum_ci x[n, ci, i, j] * w[ci, co, a, b],
// so no output is shared and each invocation computes the blocks of four consecutive input
// pixels (one vec4 load per input channel, used for OCB output channels) for OCB output
// channels, writing each of its sH output rows as sW vec4 stores. Needs the input width
// divisible by 4 (src/ops/conv_transpose.rs). Weights are repacked as [C_out][C_in][KK4]
// with the sH * sW taps padded to a multiple of 4 (KK4), read as vec4s.
//
// The body shared by conv_transpose_blocks.wgsl (storage loads) and
// conv_transpose_blocks_texels.wgsl (texel loads): the including file declares the
// bindings and defines load_x4(i) and load_w(i), the i-th vec4 of the input and of the
// weights.
#include "activation.wgsl"
#include "param_activation.wgsl"

const SH: u32 = 2u; // @specialize
const SW: u32 = 2u; // @specialize
// Output channels per invocation: each input vec4 loaded serves OCB * SH * SW taps.
const OCB: u32 = 1u; // @specialize
const TAPS: u32 = SH * SW;
const KK4: u32 = (TAPS + 3u) / 4u;

struct BlocksParams {
    n: u32,
    c_in: u32,
    h: u32,
    w4: u32, // input width / 4
    c_out: u32,
    co_blocks: u32, // ceil(c_out / OCB)
    total: u32, // n * co_blocks * h * w4
    pact_a: f32, // the store's activation parameters (StoreArgs)
    pact_b: f32,
    then_a: f32,
    then_b: f32,
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    store_args = StoreArgs(p.pact_a, p.pact_b, p.then_a, p.then_b);
    let t = thread_index(inv, lid);
    if (t >= p.total) {
        return;
    }
    let j4 = t % p.w4;
    let row = t / p.w4; // (n * co_blocks + block) * h + i
    let i = row % p.h;
    let nb = row / p.h;
    let co0 = (nb % p.co_blocks) * OCB;
    let n = nb / p.co_blocks;

    // acc[o * TAPS + tap] holds channel co0 + o, tap (a, b) = (tap / SW, tap % SW), for
    // the four input pixels.
    var acc: array<vec4<f32>, OCB * TAPS>;
    var wv: array<vec4<f32>, KK4>;
    for (var ci = 0u; ci < p.c_in; ci++) {
        let xv = load_x4(((n * p.c_in + ci) * p.h + i) * p.w4 + j4);
        for (var o = 0u; o < OCB; o++) {
            // Channels past the last (a partial block) repeat it and are not stored.
            let co = min(co0 + o, p.c_out - 1u);
            let wbase = (co * p.c_in + ci) * KK4;
            for (var v = 0u; v < KK4; v++) {
                wv[v] = load_w(wbase + v);
            }
            for (var q = 0u; q < TAPS; q++) {
                acc[o * TAPS + q] = fma(xv, vec4<f32>(wv[q / 4u][q % 4u]), acc[o * TAPS + q]);
            }
        }
    }

    let oh = p.h * SH;
    let ow4 = p.w4 * SW; // output row length / 4
    for (var o = 0u; o < OCB; o++) {
        let co = co0 + o;
        if (co < p.c_out) {
            let b = f32(bias[co]);
            for (var a = 0u; a < SH; a++) {
                let out_row = ((n * p.c_out + co) * oh + SH * i + a) * ow4;
                // Output columns SW * 4 * j4 + e, e = jj * SW + bb, come from pixel jj, tap bb.
                var vals = array<f32, 4 * SW>();
                for (var e = 0u; e < 4u * SW; e++) {
                    vals[e] = acc[o * TAPS + a * SW + e % SW][e / SW];
                }
                for (var v = 0u; v < SW; v++) {
                    let r = vec4<f32>(vals[4u * v], vals[4u * v + 1u], vals[4u * v + 2u], vals[4u * v + 3u]);
                    y[out_row + SW * j4 + v] = vec4<Act>(param_activate4(activate4(r + b)));
                }
            }
        }
    }
}
