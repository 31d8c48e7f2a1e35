// Max unpooling when the indices come from a max pooling with non-overlapping windows
// (stride >= kernel, dilation 1) and the output is that pooling's input plane: each output
// position lies in at most one window, so it is a gather with no atomics and no clearing.
// Output (oy, ox) belongs to window ((oy + pH) / sH, (ox + pW) / sW) when the remainders
// are below the kernel size; it takes that window's value if the window's index is its
// own flat position, and zero otherwise.
#include "common.wgsl"

override KH: u32 = 2u;
override KW: u32 = 2u;
override SH: u32 = 2u;
override SW: u32 = 2u;

struct UnpoolWindowParams {
    planes: u32,
    h: u32, // pooled (input) size
    w: u32,
    oh: u32, // output size
    ow: u32,
    pad_h: u32,
    pad_w: u32,
    strips_x: u32, // ceil(ow / PX)
    total: u32, // planes * oh * strips_x
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Outputs per invocation along a row (the index decode is paid once per strip).
const PX: u32 = 8u;

@group(0) @binding(0) var<uniform> p: UnpoolWindowParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let s = linear_workgroup(wg, nwg) * 64u + lid;
    if (s >= p.total) {
        return;
    }
    let ox0 = (s % p.strips_x) * PX;
    let row = s / p.strips_x;
    let oy = row % p.oh;
    let plane = row / p.oh;
    let ty = oy + p.pad_h;
    let wy = ty / SH;
    let row_ok = ty % SH < KH && wy < p.h;
    for (var j = 0u; j < PX; j++) {
        let ox = ox0 + j;
        if (ox < p.ow) {
            let tx = ox + p.pad_w;
            let wx = tx / SW;
            var v = 0.0;
            if (row_ok && tx % SW < KW && wx < p.w) {
                let src = (plane * p.h + wy) * p.w + wx;
                if (idx[src] == i32(oy * p.ow + ox)) {
                    v = x[src];
                }
            }
            y[row * p.ow + ox] = v;
        }
    }
}
