// The vec4 store of the pointwise convolution (conv_pointwise.wgsl and
// conv_pointwise_texels.wgsl): four pixels of an output plane, with the fused residual
// read as vec4s. The including file declares `p`, `y` and `res`. Planes that are not a
// multiple of 4 pixels (not ALIGNED, the texel kernel only) take one value at a time,
// those inside the plane.

fn store_group(plane: u32, g: u32, v: vec4<f32>) {
    if (!ALIGNED) {
        for (var k = 0u; k < 4u; k++) {
            let pixel = 4u * g + k;
            if (pixel < p.hw) {
                let i = plane * p.hw + pixel;
                var r = 0.0;
                if (RESIDUAL != 0u) {
                    r = f32(res[i / 4u][i % 4u]);
                }
                y[i / 4u][i % 4u] = Act(finish(v[k], r));
            }
        }
        return;
    }
    let i = plane * (p.hw / 4u) + g;
    var r = vec4<f32>(0.0);
    if (RESIDUAL != 0u) {
        r = vec4<f32>(res[i]);
    }
    y[i] = vec4<Act>(finish4(v, r));
}
