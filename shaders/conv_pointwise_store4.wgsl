// The vec4 store of the pointwise convolution (conv_pointwise.wgsl and
// conv_pointwise_texels.wgsl): four pixels of an output plane, with the fused residual
// read as vec4s. The including file declares `p`, `y` and `res`.

fn store_group(plane: u32, g: u32, v: vec4<f32>) {
    let i = plane * (p.hw / 4u) + g;
    var r = vec4<f32>(0.0);
    if (RESIDUAL != 0u) {
        r = vec4<f32>(res[i]);
    }
    y[i] = vec4<Act>(finish4(v, r));
}
