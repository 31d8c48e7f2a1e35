// The frame with its background replaced, one output pixel (a packed RGBA8 / BGRA8 word)
// per invocation: `mix(background, frame, m)`, with `m` the network's mask sampled as
// `mask_out.wgsl` does (bilinear from the content rectangle, optionally thresholded) and
// the background either the blurred frame (a small `[1, 3, bh, bw]` tensor upsampled
// bilinearly) or the frame tinted towards a colour. Blending is on the stored
// (gamma-encoded) values, as the frame's bytes hold them.
#include "common.wgsl"

struct CompositeParams {
    src_h: u32,
    src_w: u32,
    row_words: u32,
    bgra_in: u32,
    out_row_words: u32,
    bgra_out: u32,
    mask_h: u32,
    mask_w: u32,
    plane_offset: u32,
    off_y: u32,
    off_x: u32,
    content_h: u32,
    content_w: u32,
    mscale_y: f32, // content_h / src_h
    mscale_x: f32,
    threshold: f32,
    feather: f32,
    bg_h: u32,
    bg_w: u32,
    bscale_y: f32, // bg_h / src_h
    bscale_x: f32,
    tint_r: f32,
    tint_g: f32,
    tint_b: f32,
    tint_amount: f32,
}

// 0 none, 1 step, 2 smoothstep.
const THRESHOLD: u32 = 0u; // @specialize
// 0 the blurred frame (`background`), 1 the frame tinted.
const BACKGROUND: u32 = 0u; // @specialize

@group(0) @binding(0) var<uniform> p: CompositeParams;
@group(0) @binding(1) var<storage, read> frame: array<u32>; // packed pixels, not a tensor
@group(0) @binding(2) var<storage, read> mask: array<Act>;
@group(0) @binding(3) var<storage, read> background: array<Act>;
// Packed pixel words (bound as a tensor's buffer, see src/ops/composite.rs): u32 at
// either precision.
@group(0) @binding(4) var<storage, read_write> out: array<u32>;

// PyTorch's bilinear taps (`align_corners=False`) on `[off, off + len)`.
fn taps(dst: u32, scale: f32, off: u32, len: u32) -> vec3<f32> {
    // One rounding, as PyTorch's vectorised CPU kernels and CUDA compute it.
    let src = max(fma(scale, f32(dst) + 0.5, -0.5), 0.0);
    let i0 = min(u32(src), len - 1u);
    let i1 = min(i0 + 1u, len - 1u);
    return vec3<f32>(f32(off + i0), f32(off + i1), src - f32(i0));
}

fn mask_at(fy: u32, fx: u32) -> f32 {
    let ty = taps(fy, p.mscale_y, p.off_y, p.content_h);
    let tx = taps(fx, p.mscale_x, p.off_x, p.content_w);
    let r0 = p.plane_offset + u32(ty.x) * p.mask_w;
    let r1 = p.plane_offset + u32(ty.y) * p.mask_w;
    let top = mix(f32(mask[r0 + u32(tx.x)]), f32(mask[r0 + u32(tx.y)]), tx.z);
    let bottom = mix(f32(mask[r1 + u32(tx.x)]), f32(mask[r1 + u32(tx.y)]), tx.z);
    let v = mix(top, bottom, ty.z);
    switch THRESHOLD {
        case 1u: { return select(0.0, 1.0, v >= p.threshold); }
        case 2u: { return smoothstep(p.threshold - p.feather, p.threshold + p.feather, v); }
        default: { return clamp(v, 0.0, 1.0); }
    }
}

fn background_at(fy: u32, fx: u32) -> vec3<f32> {
    let ty = taps(fy, p.bscale_y, 0u, p.bg_h);
    let tx = taps(fx, p.bscale_x, 0u, p.bg_w);
    let plane = p.bg_h * p.bg_w;
    var rgb: vec3<f32>;
    for (var c = 0u; c < 3u; c++) {
        let r0 = c * plane + u32(ty.x) * p.bg_w;
        let r1 = c * plane + u32(ty.y) * p.bg_w;
        let top = mix(f32(background[r0 + u32(tx.x)]), f32(background[r0 + u32(tx.y)]), tx.z);
        let bottom = mix(f32(background[r1 + u32(tx.x)]), f32(background[r1 + u32(tx.y)]), tx.z);
        rgb[c] = mix(top, bottom, ty.z);
    }
    return rgb;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(inv, lid);
    if (i >= p.src_h * p.src_w) {
        return;
    }
    let fy = i / p.src_w;
    let fx = i % p.src_w;
    let texel = unpack4x8unorm(frame[fy * p.row_words + fx]);
    let fg = select(texel.xyz, texel.zyx, p.bgra_in == 1u);
    var bg: vec3<f32>;
    if (BACKGROUND == 0u) {
        bg = background_at(fy, fx);
    } else {
        bg = mix(fg, vec3<f32>(p.tint_r, p.tint_g, p.tint_b), p.tint_amount);
    }
    let rgb = mix(bg, fg, mask_at(fy, fx));
    let px = select(rgb, rgb.zyx, p.bgra_out == 1u);
    out[fy * p.out_row_words + fx] = pack4x8unorm(vec4<f32>(px, 1.0));
}
