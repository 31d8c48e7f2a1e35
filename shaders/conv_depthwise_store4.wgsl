// The vec4 store of the depthwise convolution (conv_depthwise_vec.wgsl and
// conv_depthwise_texels.wgsl): strip pixels written four at a time, with the fused
// residual read as vec4s. The including file declares `p`, `y` and `res`.

fn store_strip(out_row: u32, ox0: u32, acc: ptr<function, array<f32, PX>>, b: f32) {
    var v: vec4<f32>;
    for (var j = 0u; j < PX; j++) {
        v[j % 4u] = (*acc)[j] + b;
        if (j % 4u == 3u && ox0 + j - 3u < p.ow) {
            let i = (out_row + ox0 + j - 3u) / 4u;
            var r = vec4<f32>(0.0);
            if (RESIDUAL != 0u) {
                r = vec4<f32>(res[i]);
            }
            y[i] = vec4<Act>(finish4(v, r));
        }
    }
}
