// Direct convolution, any kernel size, stride, padding, dilation and groups: the body
// shared by conv_direct.wgsl (storage loads) and conv_direct_texels.wgsl (texel loads).
//
// Each invocation computes PX consecutive output pixels of one row for 4 * OC_VEC output
// channels of one group. Loads dominate on every GPU and on lavapipe most of all, so the
// tile is built for reuse: one vec4 weight load serves PX pixels, and one input load
// serves 4 * OC_VEC channels and, through the row buffer, every kernel column that reads it.
//
// Weights are repacked as [g][C_in/g][kH][kW][C_out/g padded to 4 * OC_VEC] (src/ops/conv.rs),
// so a weight address depends only on the workgroup and the loop counters.
//
// The including file declares the bindings (`p`, `bias`, `y`, `res`) and defines
//   load_x(base, ix) -> f32: input column ix (padding applied) of the row starting at base;
//   load_x4(i) -> vec4<f32>: the i-th vec4 of the input (read when VEC = 1);
//   load_w(i) -> vec4<f32>: the i-th vec4 of the weights.
#include "padding.wgsl"
#include "window.wgsl"

// Register tile (see src/shaders.rs): arrays sized exactly by their loops' trip counts.
const PX: u32 = 8u; // @specialize
const OC_VEC: u32 = 2u; // @specialize
// Input row segment of one strip, (PX - 1) * SW + (KW - 1) * DW + 1, when ROWBUF is 1:
// each input is then loaded once per kernel row and reused by every kernel column.
// With ROWBUF 0 (very wide dilations) inputs are loaded per (column, pixel).
const ROW: u32 = 10u; // @specialize
const ROWBUF: u32 = 1u; // @specialize
// VEC = 1 (with ROWBUF): the row segment is read as aligned vec4s (input width divisible
// by 4, zero padding, PX * stride divisible by 4, so every strip starts SHIFT = -pad_w
// mod 4 columns past an aligned one): NV loads instead of ROW.
const VEC: u32 = 0u; // @specialize
const NV: u32 = (ROW + 6u) / 4u;
override SHIFT: u32 = 0u;
// Y4 = 1: four pixels of a channel a store (store_channel in conv_tiles.wgsl): needs
// output rows and strips of a multiple of 4 pixels; the texel kernel's vec4 output
// (conv_tiles_out4.wgsl) makes it pay.
const Y4: u32 = 0u; // @specialize

#include "conv_tiles.wgsl"

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    store_args = StoreArgs(p.pact_a, p.pact_b, p.then_a, p.then_b);
    let tile = tile_of(inv, lid);
    let n = tile.n;
    let g = tile.g;
    let oc0 = tile.oc0;
    if (n >= p.n || tile.strip >= p.oh * p.strips_x) {
        return;
    }
    let oy = tile.strip / p.strips_x;
    let ox0 = (tile.strip % p.strips_x) * PX;
    let iy0 = i32(oy * SH) - i32(p.pad_h);
    let ix0 = i32(ox0 * SW) - i32(p.pad_w);
    let oc_pad4 = p.cout_pg_pad / 4u;

    // Function-scope variables start zeroed in WGSL.
    var acc0: array<vec4<f32>, PX>;
    var acc1: array<vec4<f32>, PX>;
    var acc2: array<vec4<f32>, PX>;
    var acc3: array<vec4<f32>, PX>;
    var row: array<f32, ROW>;
    var xs: array<f32, PX>;

    for (var ci = 0u; ci < p.cin_pg; ci++) {
        let plane = (n * p.c_in + g * p.cin_pg + ci) * p.h;
        for (var ky = 0u; ky < KH; ky++) {
            let iy_raw = iy0 + i32(ky * DH);
            if (PAD_MODE != 0u || (iy_raw >= 0 && iy_raw < i32(p.h))) {
                let iy = pad_index(iy_raw, i32(p.h));
                let base = (plane + u32(iy)) * p.w;
                let wrow = ((g * p.cin_pg + ci) * KH + ky) * KW;
                if (VEC == 1u) {
                    // Aligned vec4s from column ix0 - SHIFT; ones outside the row are zero.
                    let w4 = i32(p.w / 4u);
                    let start4 = (ix0 - i32(SHIFT)) / 4;
                    var vb = array<vec4<f32>, NV>();
                    for (var v = 0u; v < NV; v++) {
                        let q = start4 + i32(v);
                        let inside = q >= 0 && q < w4;
                        let val = load_x4(base / 4u + u32(clamp(q, 0, w4 - 1)));
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
                    // A column tap whose every pixel reads zero padding adds nothing
                    // (dilated convolutions on small maps: most of ASPP's taps).
                    // An `if`, not a `continue`: on GL, Mesa leaves a loop with a
                    // `continue` rolled (see `no_loop_continues` in src/shaders.rs).
                    let first = ix0 + i32(kx * DW);
                    let last = first + i32((PX - 1u) * SW);
                    if (PAD_MODE != 0u || (last >= 0 && first < i32(p.w))) {
                        for (var j = 0u; j < PX; j++) {
                            if (ROWBUF == 1u) {
                                xs[j] = row[j * SW + kx * DW];
                            } else {
                                xs[j] = load_x(base, ix0 + i32(j * SW + kx * DW));
                            }
                        }
                        let widx = (wrow + kx) * oc_pad4 + oc0 / 4u;
                        accumulate_tap(&acc0, &acc1, &acc2, &acc3, &xs, widx);
                    }
                }
            }
        }
    }

    store_tiles(&acc0, &acc1, &acc2, &acc3, tile, oy, ox0, 1u);
}
