// Kernels that give each invocation a strip of PX outputs of one output row (the
// windowed poolings, unpooling by windows, resampling by tap tables) share this uniform
// and the strip decode (`#include "strips.wgsl"`). Decoding once per strip matters:
// integer division by a runtime value is scalarised on SIMD-on-CPU drivers such as
// lavapipe.
#include "common.wgsl"

struct StripParams {
    planes: u32, // N * C
    h: u32, // input size
    w: u32,
    oh: u32, // output size
    ow: u32,
    pad_h: u32,
    pad_w: u32,
    strips_x: u32, // ceil(ow / PX)
    total: u32, // planes * oh * strips_x
}

// Outputs per invocation along a row.
const PX: u32 = 8u;

struct Strip {
    plane: u32,
    row: u32, // plane * oh + oy: the output row
    oy: u32,
    ox0: u32, // the strip's first output column
}

fn strip_of(s: u32, strips_x: u32, oh: u32) -> Strip {
    let row = s / strips_x;
    return Strip(row / oh, row, row % oh, (s % strips_x) * PX);
}
