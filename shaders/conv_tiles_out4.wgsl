// The output and the residual of the register-tiled convolutions (conv_tiles.wgsl) as
// arrays of vec4s: with Y4 at 1 (output rows and strips of a multiple of 4 pixels) four
// pixels of a channel go out in one store (see `select_kernel` in src/ops/conv.rs for
// what it measured); other shapes store one value at a time into its vec4. The including
// file declares `y` and `res` as arrays of vec4<Act>.

fn store_y(i: u32, v: f32) {
    y[i / 4u][i % 4u] = Act(v);
}

fn load_res(i: u32) -> f32 {
    return f32(res[i / 4u][i % 4u]);
}

fn store_y4(i4: u32, v: vec4<f32>) {
    y[i4] = vec4<Act>(v);
}

fn load_res4(i4: u32) -> vec4<f32> {
    return vec4<f32>(res[i4]);
}
