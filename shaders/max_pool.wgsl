// Max pooling with indices (`max_pool2d(..., return_indices=True)`): one invocation per
// strip of PX outputs of a row. Scans the window in row-major order and keeps a value
// when it is greater than the current maximum or NaN, PyTorch's CPU rule: ties keep the
// first position, NaN propagates (the last NaN's position is returned). Padding is never
// selected. The index is the flat position h * W + w within the input plane; with
// INDICES false (`max_pool2d_values`) only the values are written.
#include "strips.wgsl"
#include "window.wgsl"

// -inf read at run time: WGSL makes a constant expression that evaluates to an infinity
// a shader-creation error (Chrome's Tint refuses `-bitcast<f32>(0x7f800000u)`).
var<private> NEG_INFINITY_BITS: u32 = 0xff800000u;

override INDICES: bool = true;

@group(0) @binding(0) var<uniform> p: StripParams;
@group(0) @binding(1) var<storage, read> x: array<Act>;
@group(0) @binding(2) var<storage, read_write> y: array<Act>;
@group(0) @binding(3) var<storage, read_write> idx: array<i32>;

// The first of start, start + d, start + 2d, ... that is not negative.
fn first_inside(start: i32, d: u32) -> i32 {
    if (start >= 0) {
        return start;
    }
    let steps = (u32(-start) + d - 1u) / d;
    return start + i32(steps * d);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let s = thread_index(inv, lid);
    if (s >= p.total) {
        return;
    }
    let st = strip_of(s, p.strips_x, p.oh);
    let y0 = i32(st.oy * SH) - i32(p.pad_h);
    let base = st.plane * p.h * p.w;
    let fy = first_inside(y0, DH);
    for (var j = 0u; j < PX; j++) {
        let ox = st.ox0 + j;
        if (ox < p.ow) {
            let x0 = i32(ox * SW) - i32(p.pad_w);
            // PyTorch starts from -inf at the first dilated row / column inside the input;
            // a window with no element inside keeps exactly that (-inf, that position).
            let fx = first_inside(x0, DW);
            var best = bitcast<f32>(NEG_INFINITY_BITS);
            var best_i = fy * i32(p.w) + fx;
            for (var ky = 0u; ky < KH; ky++) {
                let iy = y0 + i32(ky * DH);
                if (iy >= 0 && iy < i32(p.h)) {
                    for (var kx = 0u; kx < KW; kx++) {
                        let ix = x0 + i32(kx * DW);
                        if (ix >= 0 && ix < i32(p.w)) {
                            let flat = iy * i32(p.w) + ix;
                            let v = f32(x[base + u32(flat)]);
                            if (v > best || is_nan(v)) {
                                best = v;
                                best_i = flat;
                            }
                        }
                    }
                }
            }
            let o = st.row * p.ow + ox;
            y[o] = Act(best);
            if (INDICES) {
                idx[o] = best_i;
            }
        }
    }
}
