// The output and the residual of the register-tiled convolutions (conv_tiles.wgsl) as
// arrays of scalars: every store takes one value. The including file declares `y` and
// `res` as arrays of Act.

fn store_y(i: u32, v: f32) {
    y[i] = Act(v);
}

fn load_res(i: u32) -> f32 {
    return f32(res[i]);
}

// Four values (Y4 at 1; the four-pixel stores pay with conv_tiles_out4.wgsl).
fn store_y4(i4: u32, v: vec4<f32>) {
    for (var k = 0u; k < 4u; k++) {
        y[4u * i4 + k] = Act(v[k]);
    }
}

fn load_res4(i4: u32) -> vec4<f32> {
    return vec4<f32>(f32(res[4u * i4]), f32(res[4u * i4 + 1u]), f32(res[4u * i4 + 2u]), f32(res[4u * i4 + 3u]));
}
