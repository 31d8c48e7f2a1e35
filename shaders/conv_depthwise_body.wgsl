// The body of the depthwise convolution, shared by conv_depthwise.wgsl (scalar stores)
// and conv_depthwise_vec.wgsl (vec4 stores, output rows of a multiple of 4 pixels): the
// including file declares the bindings and defines
//   store_strip(out_row, ox0, acc, b): writes finish(acc[j] + b, residual) to output
//   pixels ox0 + j of the row starting at out_row (those inside the row).
//   load_x4(i) -> vec4<f32>: the i-th vec4 of the input (VEC = 1).
#include "epilogue.wgsl"
#include "padding.wgsl"
#include "window.wgsl"

// Register tile (see src/shaders.rs and conv_direct.wgsl).
const PX: u32 = 8u; // @specialize
const ROW: u32 = 10u; // @specialize
const ROWBUF: u32 = 1u; // @specialize
// Output rows per invocation: each input row read serves up to PY output rows (the
// loads per output fall from ROW * KH / PX towards ROW / PX).
const PY: u32 = 1u; // @specialize
// Output rows of an invocation are YS apart: with YS = DH (a dilated window at stride 1)
// they read the same input rows shifted by one kernel row, so PY rows read PY - 1 + KH
// input rows instead of PY * KH. Row blocks of PY * YS rows hold YS interleaved phases.
const YS: u32 = 1u; // @specialize
// VEC = 1: the row segment is read with aligned vec4 loads (input width divisible by 4,
// zero padding, PX * stride divisible by 4, so every strip starts SHIFT = -pad_w mod 4
// past an aligned column): NV loads instead of ROW.
const VEC: u32 = 0u; // @specialize
const NV: u32 = (ROW + 6u) / 4u;
// Filters of up to WREG taps (5 x 5) are kept in registers for the whole row.
const WREG: u32 = 25u;
override SHIFT: u32 = 0u;

struct DepthwiseParams {
    n: u32,
    c_in: u32,
    h: u32,
    w: u32,
    c_out: u32,
    oh: u32,
    ow: u32,
    multiplier: u32, // output channels per input channel
    pad_h: u32,
    pad_w: u32,
    strips_x: u32, // strips per output row
    rows: u32, // n * c_out * YS * ceil(oh / (PY * YS)): one invocation per PY output rows
    // The store's activation where ACT is AT_RUN (activation.wgsl).
    act_t: f32,
    act_lo: f32,
    act_hi: f32,
    act_scale: f32,
    act_times_v: u32,
    pact_a: f32, // the store's activation parameters (StoreArgs)
    pact_b: f32,
    then_a: f32,
    then_b: f32,
}

fn load_x(base: u32, ix: i32) -> f32 {
    if (PAD_MODE != 0u) {
        return f32(x[base + u32(pad_index(ix, i32(p.w)))]);
    }
    let inside = ix >= 0 && ix < i32(p.w);
    let v = f32(x[base + u32(clamp(ix, 0, i32(p.w) - 1))]);
    return select(0.0, v, inside);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    store_args = StoreArgs(p.pact_a, p.pact_b, p.then_a, p.then_b);
    let gid = thread_index(inv, lid);
    if (gid >= p.rows) {
        return;
    }
    act_at_run = ActAtRun(p.act_t, p.act_lo, p.act_hi, p.act_scale, p.act_times_v);
    let span = PY * YS;
    let row_blocks = YS * ((p.oh + span - 1u) / span);
    let block = gid % row_blocks;
    let oy0 = (block / YS) * span + block % YS;
    let nc = gid / row_blocks;
    let c = nc % p.c_out;
    let n = nc / p.c_out;
    let ci = c / p.multiplier;
    let iy0 = i32(oy0 * SH) - i32(p.pad_h);
    let plane = (n * p.c_in + ci) * p.h;
    let out_row = ((n * p.c_out + shuffled_channel(c, p.c_out)) * p.oh + oy0) * p.ow;
    let b = f32(bias[c]);
    // The channel's filter, loaded once per row instead of once per strip (storage loads
    // run lane by lane on CPU adapters; registers or stack slots are cheap everywhere).
    var wreg: array<f32, WREG>;
    if (KH * KW <= WREG) {
        for (var t = 0u; t < KH * KW; t++) {
            wreg[t] = f32(wt[c * KH * KW + t]);
        }
    }
    // Input rows the PY output rows read.
    let in_rows = (PY - 1u) * YS * SH + (KH - 1u) * DH + 1u;

    for (var sx = 0u; sx < p.strips_x; sx++) {
        let ox0 = sx * PX;
        let ix0 = i32(ox0 * SW) - i32(p.pad_w);
        var acc = array<f32, PX * PY>();
        var row = array<f32, ROW>();
        for (var r = 0u; r < in_rows; r++) {
            let iy_raw = iy0 + i32(r);
            // Dilated windows skip rows: read only those some output row needs.
            var needed = DH == 1u;
            for (var yy = 0u; yy < PY; yy++) {
                let d = i32(r) - i32(yy * YS * SH);
                needed = needed || (d >= 0 && u32(d) % DH == 0u && u32(d) / DH < KH);
            }
            if (needed && (PAD_MODE != 0u || (iy_raw >= 0 && iy_raw < i32(p.h)))) {
                let iy = pad_index(iy_raw, i32(p.h));
                let base = (plane + u32(iy)) * p.w;
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
                    for (var k = 0u; k < ROW; k++) {
                        row[k] = vb[(SHIFT + k) / 4u][(SHIFT + k) % 4u];
                    }
                } else if (ROWBUF == 1u) {
                    for (var k = 0u; k < ROW; k++) {
                        row[k] = load_x(base, ix0 + i32(k));
                    }
                }
                // Output row yy reads this input row with kernel row ky when
                // r = yy * YS * SH + ky * DH.
                for (var yy = 0u; yy < PY; yy++) {
                    let d = i32(r) - i32(yy * YS * SH);
                    if (d >= 0 && u32(d) % DH == 0u && u32(d) / DH < KH) {
                        let ky = u32(d) / DH;
                        for (var kx = 0u; kx < KW; kx++) {
                            var wv = 0.0;
                            if (KH * KW <= WREG) {
                                wv = wreg[ky * KW + kx];
                            } else {
                                wv = f32(wt[(c * KH + ky) * KW + kx]);
                            }
                            for (var j = 0u; j < PX; j++) {
                                var v = 0.0;
                                if (ROWBUF == 1u) {
                                    v = row[j * SW + kx * DW];
                                } else {
                                    v = load_x(base, ix0 + i32(j * SW + kx * DW));
                                }
                                acc[yy * PX + j] = fma(v, wv, acc[yy * PX + j]);
                            }
                        }
                    }
                }
            }
        }
        for (var yy = 0u; yy < PY; yy++) {
            if (oy0 + yy * YS < p.oh) {
                var out = array<f32, PX>();
                for (var j = 0u; j < PX; j++) {
                    out[j] = acc[yy * PX + j];
                }
                store_strip(out_row + yy * YS * p.ow, ox0, &out, b);
            }
        }
    }
}
