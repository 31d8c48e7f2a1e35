// A whole decoder stage in one pass (MediaPipe's selfie decoder, src/ops/decoder_stage.rs):
//   z = skip * GATE_ACT(gate) + bilinear_2x(low)
//   a = REFINE_ACT(1x1(z) + b1)
//   y = a + DEPTHWISE_ACT(depthwise_kxk(a) + b2)      ('same' zero padding of a)
// and, with HEAD_C > 0, a 2x2 stride-2 transposed convolution to HEAD_C channels after it
// (the network's last layer), or, with PROJECT_C > 0, a 1x1 convolution to PROJECT_C
// channels (the next stage's low-resolution input): y itself never reaches device memory
// then either.
// A workgroup computes a TILE_H x TILE_W tile of y for every channel of one image. The
// upsampled low-resolution map, the gated sum z and the refined a over the tile and its
// halo never reach device memory: z lives in each invocation's registers for one halo
// position, a in workgroup memory.
#include "common.wgsl"

const TILE_H: u32 = 8u; // @specialize
const TILE_W: u32 = 8u; // @specialize
// Depthwise kernel size (odd; the padding is (K - 1) / 2 on every side).
const K: u32 = 3u; // @specialize
// Input and output channels in vec4s (registers per halo position).
const CIN4: u32 = 4u; // @specialize
const COUT4: u32 = 4u; // @specialize
// Output channels of the transposed-convolution head (0: none, at most 4).
const HEAD_C: u32 = 0u; // @specialize
// Output channels of the 1x1 projection (0: none; a stage has a head or a projection).
const PROJECT_C: u32 = 0u; // @specialize
override GATE_ACT: u32 = 3u;
override REFINE_ACT: u32 = 1u;
override DEPTHWISE_ACT: u32 = 1u;
// The activation of the head or of the projection.
override TAIL_ACT: u32 = 0u;

const PAD: u32 = (K - 1u) / 2u;
const HALO_H: u32 = TILE_H + K - 1u;
const HALO_W: u32 = TILE_W + K - 1u;
const HALO: u32 = HALO_H * HALO_W;
const TP: u32 = TILE_H * TILE_W;
// 1 with a head or a projection, else 0: the stage's tile is kept in workgroup memory
// only for them.
const STAGED: u32 = min(HEAD_C + PROJECT_C, 1u);

struct DecoderStageUniform {
    n: u32,
    c_in: u32,
    c_out: u32,
    h: u32, // the output's (and skip's) size
    w: u32,
    low_h: u32, // the low-resolution input's size (h / 2, w / 2)
    low_w: u32,
    tiles_x: u32,
    tiles_y: u32,
}

@group(0) @binding(0) var<uniform> p: DecoderStageUniform;
@group(0) @binding(1) var<storage, read> skip: array<Act>; // [n, c_in, h, w]
@group(0) @binding(2) var<storage, read> gate: array<Act>; // [n, c_in] logits
@group(0) @binding(3) var<storage, read> low: array<Act>; // [n, c_in, low_h, low_w]
// The weights and biases below are layer buffers, stored at the context's precision (`Wt`).
// The 1x1 weights transposed, [c_in, COUT4] vec4s of 4 output channels (zero padded).
@group(0) @binding(4) var<storage, read> w_refine: array<vec4<Wt>>;
// The depthwise weights [c_out, K * K].
@group(0) @binding(5) var<storage, read> w_depthwise: array<Wt>;
// The 1x1's biases (COUT4 * 4, zero padded), then the depthwise's (c_out).
@group(0) @binding(6) var<storage, read> biases: array<Wt>;
// [n, c_out, h, w], the head's output [n, HEAD_C, 2 h, 2 w] or the projection's
// [n, PROJECT_C, h, w].
@group(0) @binding(7) var<storage, read_write> y: array<Act>;
// The head's weights as PyTorch has them, [c_out, HEAD_C, 2, 2], then its HEAD_C biases;
// or the projection's weights transposed, [c_out, PROJECT_C], then its PROJECT_C biases.
@group(0) @binding(8) var<storage, read> w_tail: array<Wt>;

var<workgroup> refined: array<f32, COUT4 * 4u * HALO>;
var<workgroup> gate_scale: array<f32, CIN4 * 4u>;
var<workgroup> staged: array<f32, COUT4 * 4u * TP * STAGED + 1u>;

// One axis of PyTorch's bilinear 2x resize (align_corners=False): the two source indices
// and the second one's weight for output index o.
fn source_axis(o: u32, size: u32) -> vec3<f32> {
    let s = max((f32(o) + 0.5) * 0.5 - 0.5, 0.0);
    let i0 = min(u32(s), size - 1u);
    let i1 = min(i0 + 1u, size - 1u);
    return vec3<f32>(f32(i0), f32(i1), s - f32(i0));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let t = lid;
    var wg = workgroup_index(inv);
    let tx = wg % p.tiles_x;
    wg /= p.tiles_x;
    let ty = wg % p.tiles_y;
    let n = wg / p.tiles_y;
    // Uniform per workgroup: every invocation of a workgroup leaves together.
    if (n >= p.n) {
        return;
    }
    for (var c = t; c < CIN4 * 4u; c += WORKGROUP_SIZE) {
        var s = 0.0;
        if (c < p.c_in) {
            s = activation4(GATE_ACT, vec4<f32>(f32(gate[n * p.c_in + c]))).x;
        }
        gate_scale[c] = s;
    }
    workgroupBarrier();

    let oy0 = ty * TILE_H;
    let ox0 = tx * TILE_W;
    let plane = p.h * p.w;
    let low_plane = p.low_h * p.low_w;

    // 1. a over the tile and its halo; positions outside the image are the depthwise
    // convolution's zero padding.
    for (var q = t; q < HALO; q += WORKGROUP_SIZE) {
        let iy = i32(oy0 + q / HALO_W) - i32(PAD);
        let ix = i32(ox0 + q % HALO_W) - i32(PAD);
        var acc = array<vec4<f32>, COUT4>();
        let inside = iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w);
        if (inside) {
            let sy = source_axis(u32(iy), p.low_h);
            let sx = source_axis(u32(ix), p.low_w);
            let r0 = u32(sy.x) * p.low_w;
            let r1 = u32(sy.y) * p.low_w;
            let c0 = u32(sx.x);
            let c1 = u32(sx.y);
            let at = u32(iy) * p.w + u32(ix);
            for (var k = 0u; k < COUT4; k++) {
                acc[k] = vec4<f32>(f32(biases[4u * k]), f32(biases[4u * k + 1u]),
                    f32(biases[4u * k + 2u]), f32(biases[4u * k + 3u]));
            }
            for (var ci = 0u; ci < p.c_in; ci++) {
                let lb = (n * p.c_in + ci) * low_plane;
                let top = mix(f32(low[lb + r0 + c0]), f32(low[lb + r0 + c1]), sx.z);
                let bottom = mix(f32(low[lb + r1 + c0]), f32(low[lb + r1 + c1]), sx.z);
                let z = f32(skip[(n * p.c_in + ci) * plane + at]) * gate_scale[ci]
                    + mix(top, bottom, sy.z);
                for (var k = 0u; k < COUT4; k++) {
                    acc[k] += vec4<f32>(w_refine[ci * COUT4 + k]) * z;
                }
            }
            for (var k = 0u; k < COUT4; k++) {
                acc[k] = activation4(REFINE_ACT, acc[k]);
            }
        }
        for (var k = 0u; k < COUT4; k++) {
            for (var j = 0u; j < 4u; j++) {
                refined[(4u * k + j) * HALO + q] = acc[k][j];
            }
        }
    }
    workgroupBarrier();

    // 2. y = a + act(depthwise(a)) for every (channel, pixel) of the tile.
    let db = COUT4 * 4u;
    for (var v = t; v < p.c_out * TP; v += WORKGROUP_SIZE) {
        let co = v / TP;
        let px = v % TP;
        let oy = oy0 + px / TILE_W;
        let ox = ox0 + px % TILE_W;
        if (oy < p.h && ox < p.w) {
            let first = co * HALO + (px / TILE_W) * HALO_W + px % TILE_W;
            var s = f32(biases[db + co]);
            for (var ky = 0u; ky < K; ky++) {
                for (var kx = 0u; kx < K; kx++) {
                    s += f32(w_depthwise[(co * K + ky) * K + kx]) * refined[first + ky * HALO_W + kx];
                }
            }
            let a = refined[first + PAD * HALO_W + PAD];
            let value = a + activation4(DEPTHWISE_ACT, vec4<f32>(s)).x;
            if (STAGED == 0u) {
                y[(n * p.c_out + co) * plane + oy * p.w + ox] = Act(value);
            } else {
                staged[co * TP + px] = value;
            }
        }
    }
    if (STAGED == 0u) {
        return;
    }
    workgroupBarrier();

    // 3a. The projection: every output channel of every pixel of the tile.
    if (PROJECT_C > 0u) {
        let project_bias = p.c_out * PROJECT_C;
        for (var v = t; v < PROJECT_C * TP; v += WORKGROUP_SIZE) {
            let oc = v / TP;
            let px = v % TP;
            let oy = oy0 + px / TILE_W;
            let ox = ox0 + px % TILE_W;
            if (oy < p.h && ox < p.w) {
                var s = f32(w_tail[project_bias + oc]);
                for (var c = 0u; c < p.c_out; c++) {
                    s += f32(w_tail[c * PROJECT_C + oc]) * staged[c * TP + px];
                }
                y[(n * PROJECT_C + oc) * plane + oy * p.w + ox] =
                    Act(activation4(TAIL_ACT, vec4<f32>(s)).x);
            }
        }
        return;
    }

    // 3b. The head: each pixel of the tile gives a 2x2 block of every output channel.
    let bias_at = p.c_out * HEAD_C * 4u;
    for (var v = t; v < HEAD_C * 4u * TP; v += WORKGROUP_SIZE) {
        let oc = v / (4u * TP);
        let px = (v / 4u) % TP;
        let ij = v % 4u;
        let oy = oy0 + px / TILE_W;
        let ox = ox0 + px % TILE_W;
        if (oy < p.h && ox < p.w) {
            var s = f32(w_tail[bias_at + oc]);
            for (var c = 0u; c < p.c_out; c++) {
                s += f32(w_tail[(c * HEAD_C + oc) * 4u + ij]) * staged[c * TP + px];
            }
            let at = ((n * HEAD_C + oc) * 2u * p.h + 2u * oy + ij / 2u) * 2u * p.w + 2u * ox + ij % 2u;
            y[at] = Act(activation4(TAIL_ACT, vec4<f32>(s)).x);
        }
    }
}
