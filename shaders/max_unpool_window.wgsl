// Max unpooling when the indices come from a max pooling with non-overlapping windows
// (stride >= kernel, dilation 1) and the output is that pooling's input plane: each output
// position lies in at most one window, so it is a gather with no atomics and no clearing.
// Output (oy, ox) belongs to window ((oy + pH) / sH, (ox + pW) / sW) when the remainders
// are below the kernel size; it takes that window's value if the window's index is its
// own flat position, and zero otherwise. Here (h, w) is the pooled (input) size and
// (oh, ow) the unpooled output's.
#include "strips.wgsl"
#include "window.wgsl"

@group(0) @binding(0) var<uniform> p: StripParams;
@group(0) @binding(1) var<storage, read> x: array<Act>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> y: array<Act>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let s = thread_index(inv, lid);
    if (s >= p.total) {
        return;
    }
    let st = strip_of(s, p.strips_x, p.oh);
    let ty = st.oy + p.pad_h;
    let wy = ty / SH;
    let row_ok = ty % SH < KH && wy < p.h;
    for (var j = 0u; j < PX; j++) {
        let ox = st.ox0 + j;
        if (ox < p.ow) {
            let tx = ox + p.pad_w;
            let wx = tx / SW;
            var v = 0.0;
            if (row_ok && tx % SW < KW && wx < p.w) {
                let src = (st.plane * p.h + wy) * p.w + wx;
                if (idx[src] == i32(st.oy * p.ow + ox)) {
                    v = f32(x[src]);
                }
            }
            y[st.row * p.ow + ox] = Act(v);
        }
    }
}
