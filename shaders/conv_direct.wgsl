// Direct convolution, any kernel size, stride, padding, dilation and groups.
//
// Each invocation computes PX consecutive output pixels of one row for 4 * OC_VEC output
// channels of one group. Loads dominate on every GPU and on lavapipe most of all, so the
// tile is built for reuse: one vec4 weight load serves PX pixels and one input load serves
// up to 4 * OC_VEC channels and, through the row buffer, every kernel column that reads it.
//
// Weights are repacked as [g][C_in/g][kH][kW][C_out/g padded to 4 * OC_VEC] (src/ops/conv.rs).
// Workgroups: linear index = ((n * groups + g) * oc_blocks_pg + block) * work + strip block.
#include "common.wgsl"

override KH: u32 = 3u;
override KW: u32 = 3u;
override SH: u32 = 1u;
override SW: u32 = 1u;
override DH: u32 = 1u;
override DW: u32 = 1u;
// 1: four output channels per invocation, 2: eight.
override OC_VEC: u32 = 2u;
// Input row segment read by one strip: (PX - 1) * SW + (KW - 1) * DW + 1.
override ROW: u32 = 10u;
// True when ROW <= ROW_MAX: load each input of the segment once per row and reuse it for
// every kernel column; otherwise load per (column, pixel).
override ROWBUF: bool = true;

const PX: u32 = 8u;
const ROW_MAX: u32 = 40u;

@group(0) @binding(0) var<uniform> p: ConvParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

fn load_x(base: u32, ix: i32) -> f32 {
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
    let wid = linear_workgroup(wg, nwg);
    let strip_block = wid % p.work;
    let t = wid / p.work;
    let block = t % p.oc_blocks_pg;
    let t2 = t / p.oc_blocks_pg;
    let g = t2 % p.groups;
    let n = t2 / p.groups;
    if (n >= p.n) {
        return;
    }
    let strip = strip_block * 64u + lid;
    if (strip >= p.oh * p.strips_x) {
        return;
    }
    let oy = strip / p.strips_x;
    let ox0 = (strip % p.strips_x) * PX;
    let iy0 = i32(oy * SH) - i32(p.pad_h);
    let ix0 = i32(ox0 * SW) - i32(p.pad_w);
    let oc_pad4 = p.cout_pg_pad / 4u;
    let oc0 = block * 4u * OC_VEC;

    // Function-scope variables start zeroed in WGSL.
    var acc0: array<vec4<f32>, PX>;
    var acc1: array<vec4<f32>, PX>;
    var row: array<f32, ROW_MAX>;

    for (var ci = 0u; ci < p.cin_pg; ci++) {
        let plane = ((n * p.c_in + g * p.cin_pg + ci) * p.h) ;
        for (var ky = 0u; ky < KH; ky++) {
            let iy = iy0 + i32(ky * DH);
            if (iy >= 0 && iy < i32(p.h)) {
            let base = (plane + u32(iy)) * p.w;
            let wrow = ((g * p.cin_pg + ci) * KH + ky) * KW;
            if (ROWBUF) {
                for (var r = 0u; r < ROW; r++) {
                    row[r] = load_x(base, ix0 + i32(r));
                }
            }
            for (var kx = 0u; kx < KW; kx++) {
                let widx = (wrow + kx) * oc_pad4 + oc0 / 4u;
                let w0 = wt[widx];
                var w1 = vec4<f32>(0.0);
                if (OC_VEC > 1u) {
                    w1 = wt[widx + 1u];
                }
                for (var j = 0u; j < PX; j++) {
                    var v: f32;
                    if (ROWBUF) {
                        v = row[j * SW + kx * DW];
                    } else {
                        v = load_x(base, ix0 + i32(j * SW + kx * DW));
                    }
                    acc0[j] = fma(vec4<f32>(v), w0, acc0[j]);
                    if (OC_VEC > 1u) {
                        acc1[j] = fma(vec4<f32>(v), w1, acc1[j]);
                    }
                }
            }
            }
        }
    }

    // Every loop below has a constant trip count and no early exit, so the compiler can
    // unroll it and keep acc0 / acc1 in registers (a dynamic index would spill them).
    let co_base = g * p.cout_pg;
    for (var k = 0u; k < 4u * OC_VEC; k++) {
        let co = oc0 + k;
        let co_ok = co < p.cout_pg;
        let cc = co_base + min(co, p.cout_pg - 1u);
        let b = bias[cc];
        let out_row = ((n * p.c_out + cc) * p.oh + oy) * p.ow;
        for (var j = 0u; j < PX; j++) {
            var a: f32;
            if (k < 4u) {
                a = acc0[j][k];
            } else {
                a = acc1[j][k - 4u];
            }
            if (co_ok && ox0 + j < p.ow) {
                y[out_row + ox0 + j] = activate(a + b);
            }
        }
    }
}
