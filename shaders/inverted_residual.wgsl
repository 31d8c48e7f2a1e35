// A whole inverted residual in one pass: 1x1 expansion + activation, k x k depthwise +
// activation, linear 1x1 projection (+ the skip), batch norms folded into the weights.
// A workgroup computes one TILE_H x TILE_W tile of output pixels of one image for a block
// of output channels. It walks the hidden channels HC at a time: the expanded activations
// of the tile's input window (with its halo) and the depthwise results of the tile stay in
// workgroup memory, never in device memory; each invocation keeps the projection sums of
// one pixel for ACC output channels in registers.
#include "common.wgsl"
#include "window.wgsl"

// The tile and the split of the work (see `FusedPlan` in src/ops/inverted_residual.rs).
const TILE_H: u32 = 8u; // @specialize
const TILE_W: u32 = 8u; // @specialize
const HALO_H: u32 = 10u; // @specialize
const HALO_W: u32 = 10u; // @specialize
// Hidden channels per pass (a multiple of 4).
const HC: u32 = 8u; // @specialize
// Expansion work units (4 hidden channels x QT window positions) per invocation and pass.
const UNITS: u32 = 2u; // @specialize
const QT: u32 = 4u; // @specialize
// Depthwise values per invocation and pass.
const DPT: u32 = 8u; // @specialize
// vec4s of projection sums per invocation: 4 * ACC4 consecutive output channels.
const ACC4: u32 = 2u; // @specialize
// Whether there is an expansion (expand_ratio != 1) and a skip (stride 1, C_in == C_out).
const EXPAND: u32 = 1u; // @specialize
const SKIP: u32 = 0u; // @specialize
// 0: the whole block. A block with SE takes two passes around its gate (which needs the
// whole map): 1, the expansion and the depthwise convolution, whose activations go to y
// (c_out is then the hidden channel count); 2, the gated projection, x holding those
// activations (c_in is the hidden channel count), each channel scaled by
// GATE_ACT(gate[n, c]) on its way into the projection, the skip read from `residual`.
const MODE: u32 = 0u; // @specialize
override GATE_ACT: u32 = 0u;
// 1: the SE gate is computed in the passes themselves (two dispatches a block, not three):
// the first pass also writes each tile's per-channel sums of the depthwise activations
// after y's map ([n, parts, c_out, 2]: each sum as two Act values hi + lo, see
// store_tile_sums); the second sums them, runs the SE's two 1x1 layers (fc1 + SE_ACT,
// fc2 + GATE_ACT, weights packed in w_depthwise) into se_values, then scales by those
// instead of reading gate.
const SE_IN_PASS: u32 = 0u; // @specialize
// Workgroup floats for the pooled vector / gate (c_in) and the squeezed vector.
const SE_LEN: u32 = 1u; // @specialize
override SE_ACT: u32 = 1u;
// The activations after the expansion and after the depthwise convolution.
override EXPAND_ACT: u32 = 2u;
override DEPTHWISE_ACT: u32 = 2u;

const TP: u32 = TILE_H * TILE_W;
const HALO: u32 = HALO_H * HALO_W;
// Invocations per output pixel: each takes its own run of 4 * ACC4 channels (the
// invocations past LANES * TP only help with the expansion and the depthwise passes).
const LANES: u32 = WORKGROUP_SIZE / TP;
const QBLOCKS: u32 = (HALO + QT - 1u) / QT;

struct FusedBlockParams {
    n: u32,
    c_in: u32,
    h: u32,
    w: u32,
    hidden: u32, // padded to a multiple of 4 (the padding's weights are 0)
    c_out: u32,
    cout4: u32, // vec4s per row of w_project
    oh: u32,
    ow: u32,
    pad_h: u32,
    pad_w: u32,
    tiles_x: u32,
    tiles_y: u32,
    co_blocks: u32,
    chunks: u32, // ceil(hidden / HC)
    squeeze: u32, // SE_IN_PASS: the SE's squeezed channels
    parts: u32, // SE_IN_PASS: the first pass's tiles per image
}

@group(0) @binding(0) var<uniform> p: FusedBlockParams;
@group(0) @binding(1) var<storage, read> x: array<Act>;
// The weights and biases are layer buffers, stored at the context's precision (`Wt`).
// Transposed, [c_in, hidden] as vec4s of 4 hidden channels (absent without an expansion).
@group(0) @binding(2) var<storage, read> w_expand: array<vec4<Wt>>;
// [hidden, KH * KW].
@group(0) @binding(3) var<storage, read> w_depthwise: array<Wt>;
// Transposed, [hidden, cout4] vec4s of 4 output channels.
@group(0) @binding(4) var<storage, read> w_project: array<vec4<Wt>>;
// The expansion's, the depthwise's and the projection's biases one after the other
// ([hidden], [hidden], [c_out]): one binding, so that the kernel stays within WebGPU's
// eight storage bindings.
@group(0) @binding(5) var<storage, read> biases: array<Wt>;
@group(0) @binding(6) var<storage, read_write> y: array<Act>;
// MODE 2: the gate logits [n, c_in] and the block's input (for the skip).
@group(0) @binding(7) var<storage, read> gate: array<Act>;
@group(0) @binding(8) var<storage, read> residual: array<Act>;

var<workgroup> expanded: array<f32, HC * HALO>;
var<workgroup> depthwise: array<f32, HC * TP>;
var<workgroup> se_values: array<f32, SE_LEN>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let t = lid;
    var wg = workgroup_index(inv);
    let block = wg % p.co_blocks;
    wg /= p.co_blocks;
    let tx = wg % p.tiles_x;
    wg /= p.tiles_x;
    let ty = wg % p.tiles_y;
    let n = wg / p.tiles_y;
    if (n >= p.n) {
        return;
    }
    let oy0 = ty * TILE_H;
    let ox0 = tx * TILE_W;
    let iy0 = i32(oy0 * SH) - i32(p.pad_h);
    let ix0 = i32(ox0 * SW) - i32(p.pad_w);
    let plane = p.h * p.w;
    let x_base = n * p.c_in * plane;

    // This invocation's pixel and its run of output channels.
    let pix = t % TP;
    let lane = t / TP;
    let co_base = (block * LANES + lane) * 4u * ACC4;

    if (MODE == 2u && SE_IN_PASS == 1u) {
        se_gate_values(n, t);
    }

    var acc: array<vec4<f32>, ACC4>;
    for (var chunk = 0u; chunk < p.chunks; chunk++) {
        let hc0 = chunk * HC;
        let quads = min(HC, p.hidden - hc0) / 4u;
        if (MODE == 2u) {
            gated_tile(n, hc0, quads, oy0, ox0, t);
            workgroupBarrier();
            project_chunk(hc0, quads, pix, co_base, &acc);
            workgroupBarrier();
        } else {
            // 1. The expanded activations of the pass's hidden channels over the window, as
            // units of 4 channels x QT positions (one vec4 weight load and QT input loads feed
            // 4 * QT multiply-adds). The depthwise convolution's zero padding applies to them:
            // positions outside the image are 0.
            for (var u = 0u; u < UNITS; u++) {
                let unit = t + u * WORKGROUP_SIZE;
                let quad = unit / QBLOCKS;
                if (quad < quads) {
                    let q0 = (unit % QBLOCKS) * QT;
                    var offset = array<u32, QT>();
                    var inside = array<bool, QT>();
                    var any_inside = false;
                    for (var i = 0u; i < QT; i++) {
                        let q = min(q0 + i, HALO - 1u);
                        let iy = iy0 + i32(q / HALO_W);
                        let ix = ix0 + i32(q % HALO_W);
                        inside[i] = q0 + i < HALO && iy >= 0 && iy < i32(p.h) && ix >= 0
                            && ix < i32(p.w);
                        offset[i] = select(0u, u32(iy) * p.w + u32(ix), inside[i]);
                        any_inside = any_inside || inside[i];
                    }
                    let hc = hc0 + quad * 4u;
                    var e = array<vec4<f32>, QT>();
                    // Units entirely in the padding ring are zeros: no expansion to compute.
                    if (EXPAND == 1u && any_inside) {
                        let quads_in_row = p.hidden / 4u;
                        for (var ci = 0u; ci < p.c_in; ci++) {
                            let wv = vec4<f32>(w_expand[ci * quads_in_row + hc / 4u]);
                            let xc = x_base + ci * plane;
                            for (var i = 0u; i < QT; i++) {
                                e[i] += wv * f32(x[xc + offset[i]]);
                            }
                        }
                        let b = vec4<f32>(f32(biases[hc]), f32(biases[hc + 1u]),
                            f32(biases[hc + 2u]), f32(biases[hc + 3u]));
                        for (var i = 0u; i < QT; i++) {
                            e[i] = activation4(EXPAND_ACT, e[i] + b);
                        }
                    } else {
                        // Without an expansion the hidden channels are the input's (padded).
                        for (var i = 0u; i < QT; i++) {
                            for (var j = 0u; j < 4u; j++) {
                                let c = min(hc + j, p.c_in - 1u);
                                e[i][j] = select(0.0, f32(x[x_base + c * plane + offset[i]]), hc + j < p.c_in);
                            }
                        }
                    }
                    for (var i = 0u; i < QT; i++) {
                        if (q0 + i < HALO) {
                            let v = select(vec4<f32>(0.0), e[i], inside[i]);
                            let at = quad * 4u * HALO + q0 + i;
                            expanded[at] = v.x;
                            expanded[at + HALO] = v.y;
                            expanded[at + 2u * HALO] = v.z;
                            expanded[at + 3u * HALO] = v.w;
                        }
                    }
                }
            }
            workgroupBarrier();

            // 2. The depthwise convolution of the tile's pixels.
            for (var j = 0u; j < DPT; j++) {
                let v = t + j * WORKGROUP_SIZE;
                if (v < quads * 4u * TP) {
                    let hc_local = v / TP;
                    let hc = hc0 + hc_local;
                    let px = v % TP;
                    let first = hc_local * HALO + (px / TILE_W) * SH * HALO_W + (px % TILE_W) * SW;
                    var s = f32(biases[p.hidden + hc]);
                    for (var ky = 0u; ky < KH; ky++) {
                        for (var kx = 0u; kx < KW; kx++) {
                            let q = first + ky * DH * HALO_W + kx * DW;
                            s += f32(w_depthwise[hc * KH * KW + ky * KW + kx]) * expanded[q];
                        }
                    }
                    depthwise[v] = activation4(DEPTHWISE_ACT, vec4<f32>(s)).x;
                }
            }
            workgroupBarrier();

            if (MODE == 1u) {
                store_depthwise(n, hc0, quads, oy0, ox0, t);
                if (SE_IN_PASS == 1u) {
                    store_tile_sums(n, hc0, quads, oy0, ox0, t, ty * p.tiles_x + tx);
                }
            } else {
                project_chunk(hc0, quads, pix, co_base, &acc);
            }
            workgroupBarrier();
        }
    }
    if (MODE == 1u) {
        return;
    }

    let oy = oy0 + pix / TILE_W;
    let ox = ox0 + pix % TILE_W;
    // Invocations past the last whole multiple of the tile hold no sums.
    if (oy >= p.oh || ox >= p.ow || lane >= LANES) {
        return;
    }
    for (var k = 0u; k < ACC4; k++) {
        for (var j = 0u; j < 4u; j++) {
            let co = co_base + 4u * k + j;
            if (co < p.c_out) {
                var v = acc[k][j] + f32(biases[2u * p.hidden + co]);
                if (SKIP == 1u && MODE == 2u) {
                    v += f32(residual[((n * p.c_out + co) * p.oh + oy) * p.ow + ox]);
                } else if (SKIP == 1u) {
                    v += f32(x[x_base + co * plane + oy * p.w + ox]);
                }
                y[((n * p.c_out + co) * p.oh + oy) * p.ow + ox] = Act(v);
            }
        }
    }
}

// 3. The projection's partial sums over the pass's channels: one workgroup load and ACC4
// vec4 weight loads feed 4 * ACC4 multiply-adds.
fn project_chunk(
    hc0: u32,
    quads: u32,
    pix: u32,
    co_base: u32,
    acc: ptr<function, array<vec4<f32>, ACC4>>,
) {
    let last4 = p.cout4 - 1u;
    for (var hc_local = 0u; hc_local < quads * 4u; hc_local++) {
        let d = depthwise[hc_local * TP + pix];
        let row = (hc0 + hc_local) * p.cout4;
        for (var k = 0u; k < ACC4; k++) {
            (*acc)[k] += vec4<f32>(w_project[row + min(co_base / 4u + k, last4)]) * d;
        }
    }
}

// MODE 1: the pass's depthwise activations to y, [n, c_out (hidden), oh, ow].
fn store_depthwise(n: u32, hc0: u32, quads: u32, oy0: u32, ox0: u32, t: u32) {
    for (var j = 0u; j < DPT; j++) {
        let v = t + j * WORKGROUP_SIZE;
        let hc = hc0 + v / TP;
        let oy = oy0 + (v % TP) / TILE_W;
        let ox = ox0 + (v % TP) % TILE_W;
        if (v < quads * 4u * TP && hc < p.c_out && oy < p.oh && ox < p.ow) {
            y[((n * p.c_out + hc) * p.oh + oy) * p.ow + ox] = Act(depthwise[v]);
        }
    }
}

// MODE 2: the pass's channels of the tile of x (the depthwise activations), gated.
fn gated_tile(n: u32, hc0: u32, quads: u32, oy0: u32, ox0: u32, t: u32) {
    for (var j = 0u; j < DPT; j++) {
        let v = t + j * WORKGROUP_SIZE;
        if (v < quads * 4u * TP) {
            let hc = hc0 + v / TP;
            let oy = oy0 + (v % TP) / TILE_W;
            let ox = ox0 + (v % TP) % TILE_W;
            var d = 0.0;
            if (hc < p.c_in && oy < p.oh && ox < p.ow) {
                var g = 0.0;
                if (SE_IN_PASS == 1u) {
                    g = se_values[hc];
                } else {
                    g = activation4(GATE_ACT, vec4<f32>(f32(gate[n * p.c_in + hc]))).x;
                }
                d = f32(x[((n * p.c_in + hc) * p.h + oy) * p.w + ox]) * g;
            }
            depthwise[v] = d;
        }
    }
}

// MODE 1 with SE_IN_PASS: the tile's sum of each of the pass's channels over its pixels in
// the image, to y after the map, [n, parts, c_out, 2] (parts = tiles_x * tiles_y): each sum s
// as two Act values, hi = Act(s) and lo = Act(s - f32(hi)), read back as f32(hi) + f32(lo)
// (precise with Act = f16; with Act = f32, lo = 0). The tail is twice parts * n * c_out
// values long (src/ops/inverted_residual.rs).
fn store_tile_sums(n: u32, hc0: u32, quads: u32, oy0: u32, ox0: u32, t: u32, tile: u32) {
    let hc = hc0 + t;
    if (t < quads * 4u && hc < p.c_out) {
        var s = 0.0;
        for (var px = 0u; px < TP; px++) {
            if (oy0 + px / TILE_W < p.oh && ox0 + px % TILE_W < p.ow) {
                s += depthwise[t * TP + px];
            }
        }
        let parts = p.tiles_x * p.tiles_y;
        let at = p.n * p.c_out * p.oh * p.ow + 2u * ((n * parts + tile) * p.c_out + hc);
        let hi = Act(s);
        y[at] = hi;
        y[at + 1u] = Act(s - f32(hi));
    }
}

// MODE 2 with SE_IN_PASS: the gate of image n into se_values[0 .. c_in]: the mean of the
// first pass's tile sums (after x's map, hi + lo pairs, see store_tile_sums), fc1 + SE_ACT,
// fc2 + GATE_ACT. The SE's weights are packed in w_depthwise: fc1 [squeeze, c_in], its bias,
// fc2 [c_in, squeeze], its bias.
// Every workgroup of the image computes the same (a few thousand multiply-adds).
fn se_gate_values(n: u32, t: u32) {
    let c = p.c_in;
    let s = p.squeeze;
    let sums = p.n * c * p.h * p.w + 2u * n * p.parts * c;
    for (var ch = t; ch < c; ch += WORKGROUP_SIZE) {
        var total = 0.0;
        for (var part = 0u; part < p.parts; part++) {
            let at = sums + 2u * (part * c + ch);
            total += f32(x[at]) + f32(x[at + 1u]);
        }
        se_values[ch] = total / f32(p.h * p.w);
    }
    workgroupBarrier();
    for (var j = t; j < s; j += WORKGROUP_SIZE) {
        var a = f32(w_depthwise[s * c + j]);
        for (var ch = 0u; ch < c; ch++) {
            a += f32(w_depthwise[j * c + ch]) * se_values[ch];
        }
        se_values[c + j] = activation4(SE_ACT, vec4<f32>(a)).x;
    }
    workgroupBarrier();
    // Only the squeezed values are read now: the pooled ones can be overwritten.
    let w2 = s * c + s;
    for (var ch = t; ch < c; ch += WORKGROUP_SIZE) {
        var a = f32(w_depthwise[w2 + c * s + ch]);
        for (var j = 0u; j < s; j++) {
            a += f32(w_depthwise[w2 + ch * s + j]) * se_values[c + j];
        }
        se_values[ch] = activation4(GATE_ACT, vec4<f32>(a)).x;
    }
    workgroupBarrier();
}
