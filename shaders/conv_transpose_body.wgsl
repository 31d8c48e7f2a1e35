// Transposed convolution (`conv_transpose2d`) written as a gather: each output pixel reads
// the inputs that reach it, so the result is deterministic (no atomics, no scatter).
//
// Output pixel (oy, ox) takes input (iy, ix) through tap (ky, kx) when
// oy + pH - ky * dH = iy * sH and ox + pW - kx * dW = ix * sW. Pixels of one row whose
// column has the same phase (ox mod sW) use the same taps, and for consecutive pixels of
// one phase the inputs are consecutive: so each invocation computes PX pixels of one phase
// (ox = phase + sW * (strip * PX + j)) for 4 * OC_VEC output channels, the register tile of
// conv_direct.wgsl. Weights are repacked from PyTorch's [C_in][C_out/g][kH][kW] into
// [g][C_in/g][kH][kW][C_out/g padded to 4 * OC_VEC] (src/ops/conv_transpose.rs).
// Strips per (n, g, block) plane: oh * min(sW, ow) * strips_x (conv_tiles.wgsl).
// Without dilation (TAPS = ceil(kW / sW) > 0) the columns one phase reads for its
// successive taps are the previous tap's shifted by one: each further tap loads a single
// new input and shifts the rest in registers.
//
// The body shared by conv_transpose.wgsl (storage loads) and conv_transpose_texels.wgsl
// (texel loads): the including file declares the bindings (`p`, `bias`, `y`, `res`) and
// defines load_x(base, ix) (input column ix of the row starting at base, zero outside
// it) and load_w(i) (the i-th vec4 of the weights).
#include "window.wgsl"

const PX: u32 = 8u; // @specialize
const OC_VEC: u32 = 2u; // @specialize
const TAPS: u32 = 2u; // @specialize
// A phase's pixels lie a stride apart: one value a store (conv_tiles.wgsl).
const Y4: u32 = 0u;

#include "conv_tiles.wgsl"

// True when t is a non-negative multiple of s below s * len; then t / s is the index.
fn tap_index(t: i32, s: u32, len: u32) -> bool {
    return t >= 0 && (u32(t) % s) == 0u && u32(t) / s < len;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    store_args = StoreArgs(p.pact_a, p.pact_b, p.then_a, p.then_b);
    let tile = tile_of(inv, lid);
    let n = tile.n;
    let g = tile.g;
    let oc0 = tile.oc0;
    let sidx = tile.strip;
    // Phases past the output's width have no pixel: a stride wider than the output
    // (1 x 65,536) would otherwise make oh * SW * strips_x overflow 32 bits.
    let phases = min(SW, p.ow);
    if (n >= p.n || sidx >= p.oh * phases * p.strips_x) {
        return;
    }
    let oy = sidx / (phases * p.strips_x);
    let rem = sidx % (phases * p.strips_x);
    let phase = rem / p.strips_x;
    let j0 = (rem % p.strips_x) * PX;
    let oc_pad4 = p.cout_pg_pad / 4u;

    // Function-scope variables start zeroed in WGSL.
    var acc0: array<vec4<f32>, PX>;
    var acc1: array<vec4<f32>, PX>;
    var acc2: array<vec4<f32>, PX>;
    var acc3: array<vec4<f32>, PX>;
    var xs: array<f32, PX>;

    for (var ky = 0u; ky < KH; ky++) {
        let ty = i32(oy + p.pad_h) - i32(ky * DH);
        if (tap_index(ty, SH, p.h)) {
            let iy = u32(ty) / SH;
            if (TAPS > 0u) {
                // dW = 1: the taps of this phase are kx0, kx0 + sW, ...; tap m reads input
                // columns ix_first - m + j.
                let kx0 = (phase + p.pad_w) % SW;
                let ix_first = i32((phase + p.pad_w - kx0) / SW + j0);
                for (var ci = 0u; ci < p.cin_pg; ci++) {
                    let base = ((n * p.c_in + g * p.cin_pg + ci) * p.h + iy) * p.w;
                    for (var j = 0u; j < PX; j++) {
                        xs[j] = load_x(base, ix_first + i32(j));
                    }
                    for (var m = 0u; m < TAPS; m++) {
                        if (m > 0u) {
                            let fresh = load_x(base, ix_first - i32(m));
                            var shifted = array<f32, PX>();
                            for (var j = 0u; j < PX; j++) {
                                shifted[j] = select(xs[max(j, 1u) - 1u], fresh, j == 0u);
                            }
                            xs = shifted;
                        }
                        let kx = kx0 + m * SW;
                        if (kx < KW) {
                            let widx = (((g * p.cin_pg + ci) * KH + ky) * KW + kx) * oc_pad4 + oc0 / 4u;
                            accumulate_tap(&acc0, &acc1, &acc2, &acc3, &xs, widx);
                        }
                    }
                }
            } else {
                for (var kx = 0u; kx < KW; kx++) {
                    // Input column of pixel j: (phase + pW - kx * dW) / sW + j0 + j, when the
                    // numerator is a multiple of sW (the same for every j of this phase). The
                    // numerator is lifted by `lift * sW` to stay non-negative: `%` and `/` on
                    // negative integers differ between backends (GLSL leaves them undefined).
                    let lift = (KW * DW) / SW + 1u;
                    let tx = phase + p.pad_w + lift * SW - kx * DW;
                    if (tx % SW == 0u) {
                        let ix0 = i32(tx / SW) - i32(lift) + i32(j0);
                        for (var ci = 0u; ci < p.cin_pg; ci++) {
                            let base = ((n * p.c_in + g * p.cin_pg + ci) * p.h + iy) * p.w;
                            for (var j = 0u; j < PX; j++) {
                                xs[j] = load_x(base, ix0 + i32(j));
                            }
                            let widx = (((g * p.cin_pg + ci) * KH + ky) * KW + kx) * oc_pad4 + oc0 / 4u;
                            accumulate_tap(&acc0, &acc1, &acc2, &acc3, &xs, widx);
                        }
                    }
                }
            }
        }
    }

    store_tiles(&acc0, &acc1, &acc2, &acc3, tile, oy, phase + SW * j0, SW);
}
