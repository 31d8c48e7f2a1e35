// Depthwise convolution (groups == C_in) with channel multiplier m = C_out / C_in:
// output channel c reads input channel c / m with its own kH x kW filter.
//
// Each invocation computes one output row of one channel, PX pixels at a time; the input
// row segment is loaded once per kernel row and reused by every kernel column. Indices are
// decoded once per row: integer division by runtime values is scalarised on SIMD-on-CPU
// drivers such as lavapipe and would otherwise cost more than the loads.
// Weights are PyTorch's [C_out][1][kH][kW]. Invocations are numbered linearly over
// (n, c, output row).
#include "common.wgsl"

// Register tile (see src/shaders.rs and conv_direct.wgsl).
const PX: u32 = 8u; // @specialize
const ROW: u32 = 10u; // @specialize
const ROWBUF: u32 = 1u; // @specialize
// VEC = 1: the row segment is read with aligned vec4 loads (input width divisible by 4,
// zero padding, PX * stride divisible by 4, so every strip starts SHIFT = -pad_w mod 4
// past an aligned column): NV loads instead of ROW.
const VEC: u32 = 0u; // @specialize
const NV: u32 = (ROW + 6u) / 4u;
override SHIFT: u32 = 0u;

override KH: u32 = 3u;
override KW: u32 = 3u;
override SH: u32 = 1u;
override SW: u32 = 1u;
override DH: u32 = 1u;
override DW: u32 = 1u;

@group(0) @binding(0) var<uniform> p: ConvParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
// The input again, as vec4s (VEC = 1).
@group(0) @binding(5) var<storage, read> x4: array<vec4<f32>>;
// The residual added in the store (RESIDUAL != 0; bound to the input otherwise).
@group(0) @binding(6) var<storage, read> res: array<f32>;

fn load_x(base: u32, ix: i32) -> f32 {
    if (PAD_MODE != 0u) {
        return x[base + u32(pad_index(ix, i32(p.w)))];
    }
    let inside = ix >= 0 && ix < i32(p.w);
    let v = x[base + u32(clamp(ix, 0, i32(p.w) - 1))];
    return select(0.0, v, inside);
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let gid = linear_workgroup(wg, nwg) * 64u + lid;
    if (gid >= p.work) {
        return;
    }
    let oy = gid % p.oh;
    let nc = gid / p.oh;
    let c = nc % p.c_out;
    let n = nc / p.c_out;
    let ci = c / p.cout_pg;
    let iy0 = i32(oy * SH) - i32(p.pad_h);
    let plane = (n * p.c_in + ci) * p.h;
    let out_row = ((n * p.c_out + shuffled_channel(c, p.c_out)) * p.oh + oy) * p.ow;
    let b = bias[c];

    for (var sx = 0u; sx < p.strips_x; sx++) {
        let ox0 = sx * PX;
        let ix0 = i32(ox0 * SW) - i32(p.pad_w);
        // Function-scope variables start zeroed in WGSL; reset per strip.
        var acc: array<f32, PX>;
        var row: array<f32, ROW>;
        for (var ky = 0u; ky < KH; ky++) {
            let iy_raw = iy0 + i32(ky * DH);
            if (PAD_MODE != 0u || (iy_raw >= 0 && iy_raw < i32(p.h))) {
                let iy = pad_index(iy_raw, i32(p.h));
                let base = (plane + u32(iy)) * p.w;
                if (VEC == 1u) {
                    // Aligned vec4s from column ix0 - SHIFT; ones outside the row are zero.
                    let w4 = i32(p.w / 4u);
                    let start4 = (ix0 - i32(SHIFT)) / 4;
                    var vb: array<vec4<f32>, NV>;
                    for (var v = 0u; v < NV; v++) {
                        let q = start4 + i32(v);
                        let inside = q >= 0 && q < w4;
                        let val = x4[base / 4u + u32(clamp(q, 0, w4 - 1))];
                        vb[v] = select(vec4<f32>(0.0), val, inside);
                    }
                    for (var r = 0u; r < ROW; r++) {
                        row[r] = vb[(SHIFT + r) / 4u][(SHIFT + r) % 4u];
                    }
                } else if (ROWBUF == 1u) {
                    for (var r = 0u; r < ROW; r++) {
                        row[r] = load_x(base, ix0 + i32(r));
                    }
                }
                for (var kx = 0u; kx < KW; kx++) {
                    let wv = wt[(c * KH + ky) * KW + kx];
                    for (var j = 0u; j < PX; j++) {
                        var v: f32;
                        if (ROWBUF == 1u) {
                            v = row[j * SW + kx * DW];
                        } else {
                            v = load_x(base, ix0 + i32(j * SW + kx * DW));
                        }
                        acc[j] = fma(v, wv, acc[j]);
                    }
                }
            }
        }
        for (var j = 0u; j < PX; j++) {
            if (ox0 + j < p.ow) {
                let i = out_row + ox0 + j;
                var r = 0.0;
                if (RESIDUAL != 0u) {
                    r = res[i];
                }
                y[i] = finish(acc[j] + b, r);
            }
        }
    }
}
