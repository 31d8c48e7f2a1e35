// Average pooling (`avg_pool2d`), PyTorch's CPU definition: the window is clipped to the
// padded input for the padding-inclusive count, then to the input for the sum; the
// divisor is DIVISOR when it is non-zero (divisor_override), else the padded count
// (count_include_pad) or the number of input elements summed. One invocation per strip
// of PX outputs of a row. (No dilation: PyTorch's average pooling has none; DH = DW = 1.)
#include "strips.wgsl"
#include "window.wgsl"

override COUNT_INCLUDE_PAD: bool = true;
override DIVISOR: u32 = 0u;

@group(0) @binding(0) var<uniform> p: StripParams;
@group(0) @binding(1) var<storage, read> x: array<Act>;
@group(0) @binding(2) var<storage, read_write> y: array<Act>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let s = thread_index(inv, lid);
    if (s >= p.total) {
        return;
    }
    let st = strip_of(s, p.strips_x, p.oh);
    let base = st.plane * p.h * p.w;
    let hs = i32(st.oy * SH) - i32(p.pad_h);
    let he = min(hs + i32(KH), i32(p.h + p.pad_h));
    let y0 = max(hs, 0);
    let y1 = min(he, i32(p.h));
    for (var j = 0u; j < PX; j++) {
        let ox = st.ox0 + j;
        if (ox < p.ow) {
            let ws = i32(ox * SW) - i32(p.pad_w);
            let we = min(ws + i32(KW), i32(p.w + p.pad_w));
            // In f32: a window of 65,536 x 65,536 (legal with padding) overflows i32.
            let padded_count = f32(he - hs) * f32(we - ws);
            let x0 = max(ws, 0);
            let x1 = min(we, i32(p.w));
            var sum = 0.0;
            for (var iy = y0; iy < y1; iy++) {
                for (var ix = x0; ix < x1; ix++) {
                    sum += f32(x[base + u32(iy) * p.w + u32(ix)]);
                }
            }
            var divisor = f32((y1 - y0) * (x1 - x0));
            if (COUNT_INCLUDE_PAD) {
                divisor = padded_count;
            }
            if (DIVISOR != 0u) {
                divisor = f32(DIVISOR);
            }
            var v = sum / divisor;
            if (y1 <= y0 || x1 <= x0) {
                v = 0.0;
            }
            y[st.row * p.ow + ox] = Act(v);
        }
    }
}
