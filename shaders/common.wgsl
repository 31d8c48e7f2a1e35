// Shared by the op shaders through `#include "common.wgsl"` (see src/shaders.rs).

// Fused activation, chosen when the pipeline is created:
// 0 none, 1 relu, 2 relu6, 3 sigmoid, 4 hardsigmoid, 5 hardswish, 6 silu (PyTorch formulas).
override ACT: u32 = 0u;

fn activate4(v: vec4<f32>) -> vec4<f32> {
    return activation4(ACT, v);
}

// NaN lanes of v (on the bits, see is_nan).
fn nan_lanes(v: vec4<f32>) -> vec4<bool> {
    return (bitcast<vec4<u32>>(v) & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u);
}

// The activation with the given code (same numbering as ACT). NaN propagates through the
// clamping activations as in PyTorch (WGSL leaves min / max / clamp of NaN to the driver).
fn activation4(code: u32, v: vec4<f32>) -> vec4<f32> {
    switch code {
        case 1u: { return select(max(v, vec4<f32>(0.0)), v, nan_lanes(v)); }
        case 2u: { return select(clamp(v, vec4<f32>(0.0), vec4<f32>(6.0)), v, nan_lanes(v)); }
        case 3u: { return 1.0 / (1.0 + exp(-v)); }
        case 4u: {
            return select(clamp(v + 3.0, vec4<f32>(0.0), vec4<f32>(6.0)) / 6.0, v, nan_lanes(v));
        }
        case 5u: { return v * clamp(v + 3.0, vec4<f32>(0.0), vec4<f32>(6.0)) / 6.0; }
        case 6u: { return v / (1.0 + exp(-v)); }
        default: { return v; }
    }
}

fn activate(v: f32) -> f32 {
    return activate4(vec4<f32>(v)).x;
}

// A residual fused into a convolution's store: RESIDUAL 0 none, 1 act(v) + r (joining
// after the activation, as MobileNet's linear bottlenecks), 2 act(v + r) (before it, as
// ResNet's blocks).
override RESIDUAL: u32 = 0u;

fn finish4(v: vec4<f32>, r: vec4<f32>) -> vec4<f32> {
    switch RESIDUAL {
        case 1u: {
            return activate4(v) + r;
        }
        case 2u: {
            return activate4(v + r);
        }
        default: {
            return activate4(v);
        }
    }
}

fn finish(v: f32, r: f32) -> f32 {
    return finish4(vec4<f32>(v), vec4<f32>(r)).x;
}

// Convolution padding mode (PyTorch's padding_mode): 0 zeros, 1 reflect, 2 replicate,
// 3 circular. For modes 1-3 every tap reads a real input, at pad_index(i, n); for zeros
// the caller skips or zeroes taps outside the input.
override PAD_MODE: u32 = 0u;

// Maps a possibly out-of-range index (at most one size away, as the padding limits
// guarantee) into 0..n for the non-zero padding modes. Only non-negative integers are
// divided: `%` on negative integers differs between backends.
fn pad_index(i: i32, n: i32) -> i32 {
    switch PAD_MODE {
        case 1u: {
            if (i < 0) {
                return -i;
            }
            if (i >= n) {
                return 2 * n - 2 - i;
            }
            return i;
        }
        case 2u: { return clamp(i, 0, n - 1); }
        case 3u: { return i32(u32(i + n) % u32(n)); }
        default: { return i; }
    }
}

// A channel shuffle fused into a convolution's store (ShuffleNet): with SHUFFLE_G > 0,
// output channel co is written where channel_shuffle(groups = SHUFFLE_G) puts it,
// (co mod (C / g)) * g + floor(co / (C / g)), so no separate shuffle pass is needed.
override SHUFFLE_G: u32 = 0u;

fn shuffled_channel(co: u32, channels: u32) -> u32 {
    if (SHUFFLE_G == 0u) {
        return co;
    }
    // max(): the division is constant-folded even where SHUFFLE_G is 0.
    let g = max(SHUFFLE_G, 1u);
    let per = channels / g;
    return (co % per) * g + co / per;
}

// NaN test on the bits: `v != v` may be folded away by compilers that assume no NaN.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// Workgroup grids are folded into two dimensions when they exceed the device's
// per-dimension limit (src/gpu.rs, `Gpu::grid`); this recovers the linear index.
fn linear_workgroup(wg: vec3<u32>, num_wg: vec3<u32>) -> u32 {
    return wg.x + wg.y * num_wg.x;
}

// Uniform parameters shared by the convolution shaders (src/ops/conv.rs, ConvUniform).
struct ConvParams {
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
    oc_blocks_pg: u32,
    pad_h: u32,
    pad_w: u32,
    strips_x: u32,
    work: u32,
}
