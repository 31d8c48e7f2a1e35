// Depthwise convolution for GPU-class devices, its input tile in workgroup memory: any
// kernel size, stride, padding mode, dilation and channel multiplier whose tile fits.
//
// Each workgroup computes a TH x TW tile of one output channel's plane; each of its 64
// invocations two pixels of it (rows ty and ty + TH / 2 of column tx). The workgroup
// first loads the input patch the tile reads, IH x IW values, into workgroup memory with
// consecutive invocations reading consecutive columns (coalesced), once; every tap then
// reads it from there. With a 3 x 3 stride-1 window each input is read from device
// memory once instead of nine times. CPU-emulated adapters keep the register-strip
// kernels (conv_depthwise.wgsl), where workgroup memory is ordinary memory behind barriers.
//
// f16 arithmetic (HALF_MATH = 1, GpuOptions::f16_arithmetic, f16 tensors only): the patch
// is stored in f16 (half the workgroup memory) and each kernel row's products are summed
// in f16 (16 at a time in rows wider than that), those sums in f32 (as conv_gemm.wgsl
// sums its steps).
#include "epilogue.wgsl"
#include "padding.wgsl"
#include "window.wgsl"

struct DepthwiseTiledParams {
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
    tiles_x: u32, // ceil(ow / TW)
    tiles_y: u32, // ceil(oh / TH)
    ih: u32, // input patch rows: (TH - 1) * SH + (KH - 1) * DH + 1
    iw: u32, // input patch columns: (TW - 1) * SW + (KW - 1) * DW + 1
    pact_a: f32, // the store's activation parameters (StoreArgs)
    pact_b: f32,
    then_a: f32,
    then_b: f32,
}

@group(0) @binding(0) var<uniform> p: DepthwiseTiledParams;
@group(0) @binding(1) var<storage, read> x: array<Act>;
// Weights and bias: layer buffers at the context's precision (Wt); read as f32.
@group(0) @binding(2) var<storage, read> wt: array<Wt>;
@group(0) @binding(3) var<storage, read> bias: array<Wt>;
@group(0) @binding(4) var<storage, read_write> y: array<Act>;
// The residual added in the store (RESIDUAL != 0).
@group(0) @binding(5) var<storage, read> res: array<Act>;

const TW: u32 = 16u;
const TH: u32 = 8u;
// Largest input patch (values): 8 KiB of the 16 KiB every WebGPU device has.
const PATCH_MAX: u32 = 2048u;

// The type the products are computed in: f32, or f16 in the f16-arithmetic form
// (src/shaders.rs rewrites the alias).
const HALF_MATH: u32 = 0u; // @specialize
alias Mac = f32; // @half_math

// The longest f16 sum in the f16-arithmetic form: a kernel row, or CHAIN taps of a
// wider one (16, as conv_gemm.wgsl's step).
const CHAIN: u32 = 16u;

var<workgroup> tile_in: array<Mac, PATCH_MAX>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    store_args = StoreArgs(p.pact_a, p.pact_b, p.then_a, p.then_b);
    let wid = workgroup_index(inv);
    let tx_tile = wid % p.tiles_x;
    let t = wid / p.tiles_x;
    let ty_tile = t % p.tiles_y;
    let nc = t / p.tiles_y;
    let c = nc % p.c_out;
    let n = nc / p.c_out;
    // A folded grid's overhang: such workgroups still reach the barrier.
    let live = n < p.n;
    let oy0 = ty_tile * TH;
    let ox0 = tx_tile * TW;
    let iy0 = i32(oy0 * SH) - i32(p.pad_h);
    let ix0 = i32(ox0 * SW) - i32(p.pad_w);
    let plane = (n * p.c_in + c / p.multiplier) * p.h * p.w;

    // The last input row and column any output reads: a tile hanging over the output's
    // edge leaves the rest zero (pad_index maps only indices the padding can reach).
    let iy_last = i32((p.oh - 1u) * SH + (KH - 1u) * DH) - i32(p.pad_h);
    let ix_last = i32((p.ow - 1u) * SW + (KW - 1u) * DW) - i32(p.pad_w);
    let size = p.ih * p.iw;
    for (var i = lid; i < size; i += WORKGROUP_SIZE) {
        let iy = iy0 + i32(i / p.iw);
        let ix = ix0 + i32(i % p.iw);
        var v = 0.0;
        if (live && iy <= iy_last && ix <= ix_last) {
            if (PAD_MODE != 0u) {
                v = f32(x[plane + u32(pad_index(iy, i32(p.h))) * p.w + u32(pad_index(ix, i32(p.w)))]);
            } else if (iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w)) {
                v = f32(x[plane + u32(iy) * p.w + u32(ix)]);
            }
        }
        tile_in[i] = Mac(v);
    }
    workgroupBarrier();
    if (!live) {
        return;
    }

    let tx = lid % TW;
    let ty = lid / TW;
    var acc0 = 0.0;
    var acc1 = 0.0;
    let r0 = ty * SH * p.iw + tx * SW;
    let r1 = r0 + (TH / 2u) * SH * p.iw;
    let w0 = c * KH * KW;
    for (var ky = 0u; ky < KH; ky++) {
        if (HALF_MATH != 0u) {
            // The row's products summed in f16, at most CHAIN at a time, each such sum
            // then added to the f32 sums.
            for (var k0 = 0u; k0 < KW; k0 += CHAIN) {
                var s0 = Mac(0.0);
                var s1 = Mac(0.0);
                for (var kx = k0; kx < min(k0 + CHAIN, KW); kx++) {
                    let wv = Mac(wt[w0 + ky * KW + kx]);
                    let off = ky * DH * p.iw + kx * DW;
                    s0 = fma(tile_in[r0 + off], wv, s0);
                    s1 = fma(tile_in[r1 + off], wv, s1);
                }
                acc0 += f32(s0);
                acc1 += f32(s1);
            }
        } else {
            for (var kx = 0u; kx < KW; kx++) {
                let wv = f32(wt[w0 + ky * KW + kx]);
                let off = ky * DH * p.iw + kx * DW;
                acc0 = fma(f32(tile_in[r0 + off]), wv, acc0);
                acc1 = fma(f32(tile_in[r1 + off]), wv, acc1);
            }
        }
    }
    let b = f32(bias[c]);
    let ox = ox0 + tx;
    let out_plane = (n * p.c_out + shuffled_channel(c, p.c_out)) * p.oh * p.ow;
    for (var j = 0u; j < 2u; j++) {
        let oy = oy0 + ty + j * (TH / 2u);
        if (ox < p.ow && oy < p.oh) {
            let i = out_plane + oy * p.ow + ox;
            var r = 0.0;
            if (RESIDUAL != 0u) {
                r = f32(res[i]);
            }
            y[i] = Act(finish(select(acc0, acc1, j == 1u) + b, r));
        }
    }
}
