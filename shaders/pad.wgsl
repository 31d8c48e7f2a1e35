// Padding of every plane (`F.pad(x, (left, right, top, bottom), mode, value)`), pads of
// either sign (a negative one crops): output (oy, ox) reads input (oy - top, ox - left),
// mapped by the mode. PAD_MODE 0 constant (VALUE outside the input), 1 reflect and
// 2 replicate (pad_index about the input's own edges), 3 circular (PyTorch wraps the
// window that is left after the negative pads have cropped: `lo .. lo + n` per axis).
#include "padding.wgsl"

struct PadParams {
    total: u32, // planes * oh * ow
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    top: i32,
    left: i32,
    // Circular: the kept window's start and length per axis, and the output offset of
    // its first element (the positive part of the leading pad).
    lo_h: u32,
    n_h: u32,
    lo_w: u32,
    n_w: u32,
    at_h: u32,
    at_w: u32,
    value: f32,
}

@group(0) @binding(0) var<uniform> p: PadParams;
@group(0) @binding(1) var<storage, read> x: array<Act>;
@group(0) @binding(2) var<storage, read_write> y: array<Act>;

// The index into the kept window of output position o (circular).
fn wrap(o: u32, at: u32, lo: u32, n: u32) -> u32 {
    // o + n - at >= 0: the leading pad is at most n (checked on the host).
    return lo + (o + n - at) % n;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(inv, lid);
    if (i >= p.total) {
        return;
    }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let plane = i / (p.ow * p.oh);
    var iy = i32(oy) - p.top;
    var ix = i32(ox) - p.left;
    if (PAD_MODE == 0u) {
        let inside = iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w);
        if (!inside) {
            y[i] = Act(p.value);
            return;
        }
    } else if (PAD_MODE == 3u) {
        iy = i32(wrap(oy, p.at_h, p.lo_h, p.n_h));
        ix = i32(wrap(ox, p.at_w, p.lo_w, p.n_w));
    } else {
        iy = pad_index(iy, i32(p.h));
        ix = pad_index(ix, i32(p.w));
    }
    y[i] = Act(f32(x[(plane * p.h + u32(iy)) * p.w + u32(ix)]));
}
