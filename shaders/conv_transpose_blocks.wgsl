// Transposed convolution whose kernel equals its stride (no padding, dilation or output
// padding, one group): the U-Net / FCN 2x2-stride-2 upsampling and MediaPipe's last layer.
// Every input pixel owns the sH x sW output block under it,
//   y[n, co, sH * i + a, sW * j + b] = bias[co] + sum_ci x[n, ci, i, j] * w[ci, co, a, b],
// so no output is shared and each invocation computes the blocks of four consecutive input
// pixels (one vec4 load per input channel) for one output channel, writing each of its sH
// output rows as sW vec4 stores. Needs the input width divisible by 4 (src/ops/
// conv_transpose.rs). Weights are repacked as [C_out][C_in][KK4] with the sH * sW taps
// padded to a multiple of 4 (KK4), read as vec4s.
#include "activation.wgsl"
#include "param_activation.wgsl"

const SH: u32 = 2u; // @specialize
const SW: u32 = 2u; // @specialize
const TAPS: u32 = SH * SW;
const KK4: u32 = (TAPS + 3u) / 4u;

struct BlocksParams {
    n: u32,
    c_in: u32,
    h: u32,
    w4: u32, // input width / 4
    c_out: u32,
    total: u32, // n * c_out * h * w4
}

@group(0) @binding(0) var<uniform> p: BlocksParams;
@group(0) @binding(1) var<storage, read> x: array<vec4<Act>>;
// Weights and bias: layer buffers at the context's precision (Wt); read as f32.
@group(0) @binding(2) var<storage, read> wt: array<vec4<Wt>>;
@group(0) @binding(3) var<storage, read> bias: array<Wt>;
@group(0) @binding(4) var<storage, read_write> y: array<vec4<Act>>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation) {
    let t = thread_index(inv);
    if (t >= p.total) {
        return;
    }
    let j4 = t % p.w4;
    let row = t / p.w4; // (n * c_out + co) * h + i
    let i = row % p.h;
    let nco = row / p.h;
    let co = nco % p.c_out;
    let n = nco / p.c_out;

    // acc[tap] holds tap (a, b) = (tap / SW, tap % SW) for the four input pixels.
    var acc: array<vec4<f32>, TAPS>;
    var w: array<f32, TAPS>;
    for (var ci = 0u; ci < p.c_in; ci++) {
        let xv = vec4<f32>(x[((n * p.c_in + ci) * p.h + i) * p.w4 + j4]);
        let wbase = (co * p.c_in + ci) * KK4;
        for (var q = 0u; q < TAPS; q++) {
            w[q] = f32(wt[wbase + q / 4u][q % 4u]);
        }
        for (var q = 0u; q < TAPS; q++) {
            acc[q] = fma(xv, vec4<f32>(w[q]), acc[q]);
        }
    }

    let b = f32(bias[co]);
    let oh = p.h * SH;
    let ow4 = p.w4 * SW; // output row length / 4
    for (var a = 0u; a < SH; a++) {
        let out_row = ((n * p.c_out + co) * oh + SH * i + a) * ow4;
        // Output columns SW * 4 * j4 + e, e = jj * SW + bb, come from pixel jj, tap bb.
        var vals: array<f32, 4 * SW>;
        for (var e = 0u; e < 4u * SW; e++) {
            vals[e] = acc[a * SW + e % SW][e / SW];
        }
        for (var v = 0u; v < SW; v++) {
            let o = vec4<f32>(vals[4u * v], vals[4u * v + 1u], vals[4u * v + 2u], vals[4u * v + 3u]);
            y[out_row + SW * j4 + v] = vec4<Act>(param_activate4(activate4(o + b)));
        }
    }
}
