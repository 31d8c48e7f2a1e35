// One channel of a network's output resized to the frame (PyTorch's bilinear,
// `align_corners=False`, from the content rectangle of a letterboxed input), optionally
// thresholded (a hard step, or a smoothstep `feather` wide on each side), and packed
// as R8Unorm (4 pixels a word), R16Float (2) or R32Float (1) in rows `row_words` apart:
// what a texture copy or the app's buffer takes as is.
#include "common.wgsl"

struct MaskOutParams {
    src_h: u32,
    src_w: u32,
    plane_offset: u32,
    off_y: u32,
    off_x: u32,
    content_h: u32,
    content_w: u32,
    scale_y: f32, // content_h / dst_h
    scale_x: f32,
    dst_h: u32,
    dst_w: u32,
    row_words: u32,
    words_per_row: u32, // words holding pixels
    threshold: f32,
    feather: f32,
}

// 0 R8Unorm, 1 R16Float, 2 R32Float.
const FORMAT: u32 = 0u; // @specialize
// 0 none, 1 step, 2 smoothstep.
const THRESHOLD: u32 = 0u; // @specialize
const PER_WORD: u32 = 4u >> FORMAT;

@group(0) @binding(0) var<uniform> p: MaskOutParams;
@group(0) @binding(1) var<storage, read> mask: array<Act>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>; // packed texels, not a tensor

fn at(row: u32, col: u32) -> f32 {
    return f32(mask[p.plane_offset + row * p.src_w + col]);
}

// Source taps on one axis of the content rectangle `[off, off + len)`.
fn taps(dst: u32, scale: f32, off: u32, len: u32) -> vec3<f32> {
    // One rounding, as PyTorch's vectorised CPU kernels and CUDA compute it.
    let src = max(fma(scale, f32(dst) + 0.5, -0.5), 0.0);
    let i0 = min(u32(src), len - 1u);
    let i1 = min(i0 + 1u, len - 1u);
    return vec3<f32>(f32(off + i0), f32(off + i1), src - f32(i0));
}

fn thresholded(v: f32) -> f32 {
    switch THRESHOLD {
        case 1u: { return select(0.0, 1.0, v >= p.threshold); }
        case 2u: { return smoothstep(p.threshold - p.feather, p.threshold + p.feather, v); }
        default: { return v; }
    }
}

// The binary16 bits of `v`, rounded to nearest even (`pack2x16float` needs a capability
// that GL ES and some drivers lack).
fn f16_bits(v: f32) -> u32 {
    let b = bitcast<u32>(v);
    let sign = (b >> 16u) & 0x8000u;
    if (is_nan(v)) {
        return sign | 0x7e00u;
    }
    let e = i32((b >> 23u) & 0xffu) - 112;
    var m = b & 0x7fffffu;
    if (e >= 31) {
        return sign | 0x7c00u;
    }
    if (e <= 0) {
        // Subnormal: units of 2^-24.
        if (e < -10) {
            return sign;
        }
        m = m | 0x800000u;
        let shift = u32(14 - e);
        var h = m >> shift;
        let rem = m & ((1u << shift) - 1u);
        let half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (h & 1u) == 1u)) {
            h += 1u;
        }
        return sign | h;
    }
    // A carry out of the mantissa moves into the exponent, as rounding should.
    var h = (u32(e) << 10u) | (m >> 13u);
    let rem = m & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u) == 1u)) {
        h += 1u;
    }
    return sign | h;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(inv, lid);
    if (i >= p.dst_h * p.words_per_row) {
        return;
    }
    let row = i / p.words_per_row;
    let word = i % p.words_per_row;
    // The rows' taps are shared by the word's pixels.
    let ty = taps(row, p.scale_y, p.off_y, p.content_h);
    let y0 = u32(ty.x);
    let y1 = u32(ty.y);
    var v: array<f32, PER_WORD>;
    for (var k = 0u; k < PER_WORD; k++) {
        let col = word * PER_WORD + k;
        let tx = taps(min(col, p.dst_w - 1u), p.scale_x, p.off_x, p.content_w);
        let x0 = u32(tx.x);
        let x1 = u32(tx.y);
        let top = mix(at(y0, x0), at(y0, x1), tx.z);
        let bottom = mix(at(y1, x0), at(y1, x1), tx.z);
        // Pixels past the row's end pad the word with zeros.
        v[k] = select(0.0, thresholded(mix(top, bottom, ty.z)), col < p.dst_w);
    }
    var packed: u32;
    if (FORMAT == 0u) {
        packed = pack4x8unorm(vec4<f32>(v[0], v[min(1u, PER_WORD - 1u)],
            v[min(2u, PER_WORD - 1u)], v[min(3u, PER_WORD - 1u)]));
    } else if (FORMAT == 1u) {
        packed = f16_bits(v[0]) | (f16_bits(v[min(1u, PER_WORD - 1u)]) << 16u);
    } else {
        packed = bitcast<u32>(v[0]);
    }
    out[row * p.row_words + word] = packed;
}
