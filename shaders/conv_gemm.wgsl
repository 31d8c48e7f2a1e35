// Workgroup-tiled implicit-GEMM convolution for GPU-class devices (the tfjs / ONNX
// Runtime WebGPU design): any kernel size, stride, padding mode, dilation and groups.
//
// Per group the convolution is a matrix product Y[co][pixel] = sum_k W[co][k] X[k][pixel]
// with k = (ci, ky, kx) and X the im2col view of the input, never materialised. Each
// workgroup computes a TM x TN tile (output channels x output pixels of one image and
// group); each of its 8 x 8 invocations a 4 x 4 block of it. The K dimension is walked
// TK at a time: the workgroup loads the weight and input tiles into workgroup memory once
// (coalesced: weights as vec4 along channels, inputs along output pixels), and every
// invocation reads them TM / 4 + TN / 4 times from there instead of from device memory.
// On CPU-emulated adapters workgroup memory costs more than it saves, so they keep the
// register-tiled kernels (src/ops/conv.rs, select_kernel).
//
// Split-K (PARTIAL): the reduction is cut into `splits` ranges of `k_split` taps, one per
// workgroup of a slice of the grid, each storing its raw sums (no bias, activation,
// residual or shuffle) to `part` [split][N][C_out][pixels] in f32;
// conv_gemm_reduce.wgsl adds them up and applies the store. Small maps give the plain
// kernel too few workgroups to fill a large GPU; the split multiplies them.
//
// Weights are the blocked layout [g][C_in/g][kH][kW][C_out/g padded to 4] (pack_blocked):
// row k of group g is contiguous along output channels.
//
// f16 arithmetic (HALF_MATH = 1, GpuOptions::f16_arithmetic, f16 tensors only): the tiles
// are stored in f16 (half the workgroup memory and its traffic) and each TK-tap step's
// products are summed in f16, the step's sum then added to the f32 accumulator. A sum of
// at most TK rounded terms, where an f16 sum of the whole reduction would lose the small
// terms of a long one (K up to 4,608 in a ResNet's 3x3 layers) and could overflow.
#include "padding.wgsl"
#include "epilogue.wgsl"

struct GemmConvParams {
    n: u32,
    c_in: u32,
    h: u32,
    w: u32,
    c_out: u32,
    oh: u32,
    ow: u32,
    groups: u32,
    cin_pg: u32,
    cout_pg: u32,
    cout_pg_pad: u32,
    pad_h: u32,
    pad_w: u32,
    // The window, from the uniform rather than specialised: it only enters index
    // arithmetic once per load, so one pipeline serves every kernel size, stride and
    // dilation (fewer pipelines to compile at start).
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    dh: u32,
    dw: u32,
    k: u32, // cin_pg * kh * kw: the reduction length
    oc_tiles: u32, // ceil(cout_pg / TM)
    px_tiles: u32, // ceil(oh * ow / TN)
    splits: u32, // reduction ranges (1 unless PARTIAL)
    k_split: u32, // taps per range, a multiple of TK (k unless PARTIAL)
    pact_a: f32, // the store's activation parameters (StoreArgs)
    pact_b: f32,
    then_a: f32,
    then_b: f32,
}

@group(0) @binding(0) var<uniform> p: GemmConvParams;
@group(0) @binding(1) var<storage, read> x: array<Act>;
// Weights and bias: layer buffers at the context's precision (Wt); read as f32.
@group(0) @binding(2) var<storage, read> wt: array<vec4<Wt>>;
@group(0) @binding(3) var<storage, read> bias: array<Wt>;
@group(0) @binding(4) var<storage, read_write> y: array<Act>;
// The residual added in the store (RESIDUAL != 0).
@group(0) @binding(5) var<storage, read> res: array<Act>;
// The input gate's logits [N, C_in] (GATED): x * act(gate) is convolved, an SE block's
// (or LR-ASPP's) scale applied as the input is read; every padding mode commutes with it.
@group(0) @binding(6) var<storage, read> gate: array<Act>;
// The split ranges' raw sums (PARTIAL).
@group(0) @binding(7) var<storage, read_write> part: array<f32>;

// The type the inner products are computed in: f32, or f16 in the f16-arithmetic form
// (src/shaders.rs rewrites the alias).
const HALF_MATH: u32 = 0u; // @specialize
alias Mac = f32; // @half_math

override GATED: bool = false;
override PARTIAL: bool = false;
override GATE_ACT: u32 = 0u;

// Output channels and pixels per workgroup, and the reduction step. 64 invocations, each
// 4 channels x 4 pixels (WORKGROUP_SIZE must be (TM / 4) * (TN / 4)).
const TM: u32 = 32u;
const TN: u32 = 32u;
const TK: u32 = 16u;
const TM4: u32 = 8u; // TM / 4
const TN4: u32 = 8u; // TN / 4

// [TK][TM / 4] weights and [TK][TN / 4] inputs, four channels or pixels per vec4.
var<workgroup> w_tile: array<vec4<Mac>, 128>;
var<workgroup> x_tile: array<vec4<Mac>, 128>;

// The input at (iy, ix) of the channel plane starting at `plane`, with the padding mode.
fn load_x(plane: u32, iy: i32, ix: i32) -> f32 {
    if (PAD_MODE != 0u) {
        let yy = u32(pad_index(iy, i32(p.h)));
        let xx = u32(pad_index(ix, i32(p.w)));
        return f32(x[plane + yy * p.w + xx]);
    }
    if (iy < 0 || iy >= i32(p.h) || ix < 0 || ix >= i32(p.w)) {
        return 0.0;
    }
    return f32(x[plane + u32(iy) * p.w + u32(ix)]);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    store_args = StoreArgs(p.pact_a, p.pact_b, p.then_a, p.then_b);
    let wid = workgroup_index(inv);
    let px_tile = wid % p.px_tiles;
    let t = wid / p.px_tiles;
    let oc_tile = t % p.oc_tiles;
    let t2 = t / p.oc_tiles;
    let g = t2 % p.groups;
    let t3 = t2 / p.groups;
    let n = t3 % p.n;
    let split = t3 / p.n;
    // A folded grid's overhang: such workgroups run no reduction step (k_begin >= k,
    // the same for all of a workgroup's invocations, so no barrier is skipped by some).
    let live = split < p.splits;
    let k_begin = split * p.k_split;
    let k_end = min(k_begin + p.k_split, p.k);
    let ohw = p.oh * p.ow;
    let pix0 = px_tile * TN;
    let co0 = oc_tile * TM;

    // Loading role: four consecutive pixels (or channels) `lane` of tile rows `row` and
    // `row + 8`.
    let lane = lid % 8u;
    let row = lid / 8u;
    var iy0: array<i32, 4>;
    var ix0: array<i32, 4>;
    var inside: array<bool, 4>;
    for (var q = 0u; q < 4u; q++) {
        let pix = pix0 + lane * 4u + q;
        inside[q] = live && pix < ohw;
        let oy = pix / p.ow;
        let ox = pix % p.ow;
        iy0[q] = i32(oy * p.sh) - i32(p.pad_h);
        ix0[q] = i32(ox * p.sw) - i32(p.pad_w);
    }
    let co_load = co0 + lane * 4u;
    let load_w = live && co_load < p.cout_pg_pad;
    let w_base = g * p.k;
    let plane0 = n * p.c_in + g * p.cin_pg;

    // Computing role: channels tm * 4 .. + 3 and pixels tn * 4 .. + 3 of the tile.
    let tm = lid % TM4;
    let tn = lid / TM4;
    // acc[q]: pixel q's four channels.
    var acc: array<vec4<f32>, 4>;

    for (var k0 = k_begin; k0 < k_end; k0 += TK) {
        for (var r = 0u; r < 2u; r++) {
            let kk = row + r * 8u;
            let k = k0 + kk;
            var wv = vec4<Mac>(0.0);
            if (load_w && k < k_end) {
                wv = vec4<Mac>(wt[((w_base + k) * p.cout_pg_pad + co_load) / 4u]);
            }
            w_tile[kk * TM4 + lane] = wv;
            var xs = array<Mac, 4>();
            if (k < k_end) {
                let taps = p.kh * p.kw;
                let ci = k / taps;
                let tap = k % taps;
                let dy = i32((tap / p.kw) * p.dh);
                let dx = i32((tap % p.kw) * p.dw);
                let plane = (plane0 + ci) * p.h * p.w;
                var s = 1.0;
                if (GATED) {
                    s = activation4(GATE_ACT, vec4<f32>(f32(gate[plane0 + ci]))).x;
                }
                for (var q = 0u; q < 4u; q++) {
                    if (inside[q]) {
                        xs[q] = Mac(load_x(plane, iy0[q] + dy, ix0[q] + dx) * s);
                    }
                }
            }
            x_tile[kk * TN4 + lane] = vec4<Mac>(xs[0], xs[1], xs[2], xs[3]);
        }
        workgroupBarrier();
        if (HALF_MATH != 0u) {
            // The step's products summed in f16, then added to the f32 sums.
            var step = array<vec4<Mac>, 4>();
            for (var kk = 0u; kk < TK; kk++) {
                let a = w_tile[kk * TM4 + tm];
                let b = x_tile[kk * TN4 + tn];
                step[0] = fma(a, vec4<Mac>(b.x), step[0]);
                step[1] = fma(a, vec4<Mac>(b.y), step[1]);
                step[2] = fma(a, vec4<Mac>(b.z), step[2]);
                step[3] = fma(a, vec4<Mac>(b.w), step[3]);
            }
            for (var q = 0u; q < 4u; q++) {
                acc[q] += vec4<f32>(step[q]);
            }
        } else {
            for (var kk = 0u; kk < TK; kk++) {
                let a = vec4<f32>(w_tile[kk * TM4 + tm]);
                let b = vec4<f32>(x_tile[kk * TN4 + tn]);
                acc[0] = fma(a, vec4<f32>(b.x), acc[0]);
                acc[1] = fma(a, vec4<f32>(b.y), acc[1]);
                acc[2] = fma(a, vec4<f32>(b.z), acc[2]);
                acc[3] = fma(a, vec4<f32>(b.w), acc[3]);
            }
        }
        workgroupBarrier();
    }

    if (!live) {
        return;
    }
    for (var q = 0u; q < 4u; q++) {
        let pix = pix0 + tn * 4u + q;
        for (var c = 0u; c < 4u; c++) {
            let co = co0 + tm * 4u + c;
            if (pix < ohw && co < p.cout_pg) {
                let cc = g * p.cout_pg + co;
                if (PARTIAL) {
                    part[((split * p.n + n) * p.c_out + cc) * ohw + pix] = acc[q][c];
                } else {
                    let i = (n * p.c_out + shuffled_channel(cc, p.c_out)) * ohw + pix;
                    var r = 0.0;
                    if (RESIDUAL != 0u) {
                        r = f32(res[i]);
                    }
                    y[i] = Act(finish(acc[q][c] + f32(bias[cc]), r));
                }
            }
        }
    }
}
