// A frame of 8-bit RGBA or BGRA pixels (packed one per u32, rows `row_words` apart) to
// the network's NCHW input (stored as `Act`) in one pass: PyTorch's bilinear resize
// (`align_corners=False`) of the frame onto its content rectangle (the whole input, or
// a letterboxed part of it), `fill` around it, then `(v - mean) / std` per channel.
#include "common.wgsl"

struct FrameInParams {
    src_h: u32,
    src_w: u32,
    row_words: u32,
    bgra: u32,
    dst_h: u32,
    dst_w: u32,
    off_y: u32,
    off_x: u32,
    content_h: u32,
    content_w: u32,
    scale_y: f32, // src_h / content_h
    scale_x: f32,
    fill: f32,
    mean_r: f32,
    mean_g: f32,
    mean_b: f32,
    inv_std_r: f32,
    inv_std_g: f32,
    inv_std_b: f32,
}

@group(0) @binding(0) var<uniform> p: FrameInParams;
@group(0) @binding(1) var<storage, read> frame: array<u32>; // packed pixels, not a tensor
@group(0) @binding(2) var<storage, read_write> y: array<Act>;

fn texel(row: u32, col: u32) -> vec3<f32> {
    let v = unpack4x8unorm(frame[row * p.row_words + col]);
    return select(v.xyz, v.zyx, p.bgra == 1u);
}

// PyTorch's source index and weight for one axis: `scale * (dst + 0.5) - 0.5`, clamped
// at 0; the second tap stays inside.
fn taps(dst: u32, scale: f32, len: u32) -> vec3<f32> {
    // One rounding, as PyTorch's vectorised CPU kernels and CUDA compute it.
    let src = max(fma(scale, f32(dst) + 0.5, -0.5), 0.0);
    let i0 = min(u32(src), len - 1u);
    let i1 = min(i0 + 1u, len - 1u);
    return vec3<f32>(f32(i0), f32(i1), src - f32(i0));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(inv, lid);
    let plane = p.dst_h * p.dst_w;
    if (i >= plane) {
        return;
    }
    let oy = i / p.dst_w;
    let ox = i % p.dst_w;
    var rgb = vec3<f32>(p.fill);
    let cy = i32(oy) - i32(p.off_y);
    let cx = i32(ox) - i32(p.off_x);
    if (cy >= 0 && cy < i32(p.content_h) && cx >= 0 && cx < i32(p.content_w)) {
        let ty = taps(u32(cy), p.scale_y, p.src_h);
        let tx = taps(u32(cx), p.scale_x, p.src_w);
        let y0 = u32(ty.x);
        let y1 = u32(ty.y);
        let x0 = u32(tx.x);
        let x1 = u32(tx.y);
        let top = mix(texel(y0, x0), texel(y0, x1), tx.z);
        let bottom = mix(texel(y1, x0), texel(y1, x1), tx.z);
        rgb = mix(top, bottom, ty.z);
    }
    y[i] = Act((rgb.x - p.mean_r) * p.inv_std_r);
    y[plane + i] = Act((rgb.y - p.mean_g) * p.inv_std_g);
    y[2u * plane + i] = Act((rgb.z - p.mean_b) * p.inv_std_b);
}
