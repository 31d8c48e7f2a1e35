//! Reference pooling: max pooling with indices, max unpooling, global and adaptive pooling,
//! loop by loop from the definitions.

use ndarray::{Array4, ArrayView4};

use crate::error::{Error, Result};
use crate::ops::pool::{
    AdaptiveAvgPool2dParams, AdaptiveMaxPool2dParams, AvgPool2dParams, GlobalPool, MaxPool2dParams,
    MaxUnpool2dParams,
};

/// Max pooling: for each window, the largest value and its flat position `h * W + w`.
/// Starting from -inf at the window's first position inside the input, a value replaces the
/// current maximum when it is greater or NaN (PyTorch's CPU rule), so ties keep the first
/// position in row-major order and NaN propagates.
pub fn max_pool2d(
    params: &MaxPool2dParams,
    input: ArrayView4<f32>,
) -> Result<(Array4<f32>, Array4<i64>)> {
    let in_shape: [usize; 4] = input.shape().try_into().expect("4-D");
    let out_shape = params.output_shape(in_shape)?;
    let [batch, channels, height, width] = in_shape;
    let mut values = Array4::<f32>::zeros(out_shape);
    let mut indices = Array4::<i64>::zeros(out_shape);
    for n in 0..batch {
        for c in 0..channels {
            for oy in 0..out_shape[2] {
                for ox in 0..out_shape[3] {
                    // Start from -inf at the first dilated row and column inside the input
                    // (PyTorch); a window with nothing inside keeps exactly that.
                    let first = |start: isize, d: usize| -> isize {
                        let mut s = start;
                        while s < 0 {
                            s += d as isize;
                        }
                        s
                    };
                    let fy = first(
                        oy as isize * params.stride.0 as isize - params.padding.0 as isize,
                        params.dilation.0,
                    );
                    let fx = first(
                        ox as isize * params.stride.1 as isize - params.padding.1 as isize,
                        params.dilation.1,
                    );
                    let mut best = (f32::NEG_INFINITY, fy as i64 * width as i64 + fx as i64);
                    for ky in 0..params.kernel_size.0 {
                        for kx in 0..params.kernel_size.1 {
                            let iy = (oy * params.stride.0 + ky * params.dilation.0) as isize
                                - params.padding.0 as isize;
                            let ix = (ox * params.stride.1 + kx * params.dilation.1) as isize
                                - params.padding.1 as isize;
                            if iy < 0 || ix < 0 || iy >= height as isize || ix >= width as isize {
                                continue;
                            }
                            let v = input[[n, c, iy as usize, ix as usize]];
                            let flat = iy as i64 * width as i64 + ix as i64;
                            if v > best.0 || v.is_nan() {
                                best = (v, flat);
                            }
                        }
                    }
                    values[[n, c, oy, ox]] = best.0;
                    indices[[n, c, oy, ox]] = best.1;
                }
            }
        }
    }
    Ok((values, indices))
}

/// Max unpooling: zeros, then each input value written at its index, in increasing input
/// position (so the last writer wins where indices repeat).
pub fn max_unpool2d(
    params: &MaxUnpool2dParams,
    input: ArrayView4<f32>,
    indices: ArrayView4<i64>,
) -> Result<Array4<f32>> {
    let in_shape: [usize; 4] = input.shape().try_into().expect("4-D");
    if indices.shape() != input.shape() {
        return Err(Error::ShapeMismatch {
            name: "indices",
            expected: in_shape.to_vec(),
            actual: indices.shape().to_vec(),
        });
    }
    let out_shape = params.output_shape(in_shape)?;
    let out_w = out_shape[3];
    let plane = out_shape[2] * out_w;
    let mut out = Array4::<f32>::zeros(out_shape);
    for ((n, c, y, x), &v) in input.indexed_iter() {
        let i = indices[[n, c, y, x]];
        if i < 0 || i as usize >= plane {
            return Err(Error::InvalidParam {
                name: "indices",
                reason: format!(
                    "index {i} at {:?} is outside the output plane of {plane}",
                    (n, c, y, x)
                ),
            });
        }
        out[[n, c, i as usize / out_w, i as usize % out_w]] = v;
    }
    Ok(out)
}

/// Global average or max over each plane; output `[N, C, 1, 1]`.
pub fn global_pool(kind: GlobalPool, input: ArrayView4<f32>) -> Result<Array4<f32>> {
    let in_shape: [usize; 4] = input.shape().try_into().expect("4-D");
    let out_shape = kind.output_shape(in_shape)?;
    let mut out = Array4::<f32>::zeros(out_shape);
    for n in 0..in_shape[0] {
        for c in 0..in_shape[1] {
            let plane = input.slice(ndarray::s![n, c, .., ..]);
            out[[n, c, 0, 0]] = match kind {
                GlobalPool::Avg => {
                    (plane.iter().map(|&v| v as f64).sum::<f64>() / plane.len() as f64) as f32
                }
                GlobalPool::Max => {
                    // Greater-or-NaN replaces, as in max pooling: NaN propagates.
                    let mut m = f32::NEG_INFINITY;
                    for &v in plane.iter() {
                        if v > m || v.is_nan() {
                            m = v;
                        }
                    }
                    m
                }
            };
        }
    }
    Ok(out)
}

/// Adaptive average pooling: output `(oy, ox)` averages rows
/// `floor(oy * H / OH) .. ceil((oy + 1) * H / OH)` and likewise columns.
pub fn adaptive_avg_pool2d(
    params: &AdaptiveAvgPool2dParams,
    input: ArrayView4<f32>,
) -> Result<Array4<f32>> {
    let in_shape: [usize; 4] = input.shape().try_into().expect("4-D");
    let out_shape = params.output_shape(in_shape)?;
    let [batch, channels, height, width] = in_shape;
    let [_, _, out_h, out_w] = out_shape;
    let mut out = Array4::<f32>::zeros(out_shape);
    for n in 0..batch {
        for c in 0..channels {
            for oy in 0..out_h {
                let (y0, y1) = (oy * height / out_h, ((oy + 1) * height).div_ceil(out_h));
                for ox in 0..out_w {
                    let (x0, x1) = (ox * width / out_w, ((ox + 1) * width).div_ceil(out_w));
                    let mut sum = 0.0f64;
                    for iy in y0..y1 {
                        for ix in x0..x1 {
                            sum += input[[n, c, iy, ix]] as f64;
                        }
                    }
                    out[[n, c, oy, ox]] = (sum / ((y1 - y0) * (x1 - x0)) as f64) as f32;
                }
            }
        }
    }
    Ok(out)
}

/// Average pooling as PyTorch defines it: the window clipped to the padded input gives
/// the padding-inclusive count, clipped to the input the summed elements; the divisor is
/// `divisor_override`, else that padded count (`count_include_pad`) or the summed count.
pub fn avg_pool2d(params: &AvgPool2dParams, input: ArrayView4<f32>) -> Result<Array4<f32>> {
    let in_shape: [usize; 4] = input.shape().try_into().expect("4-D");
    let out_shape = params.output_shape(in_shape)?;
    let [batch, channels, height, width] = in_shape;
    let (kh, kw) = params.kernel_size;
    let (ph, pw) = (params.padding.0 as isize, params.padding.1 as isize);
    let mut out = Array4::<f32>::zeros(out_shape);
    for n in 0..batch {
        for c in 0..channels {
            for oy in 0..out_shape[2] {
                for ox in 0..out_shape[3] {
                    let hs = (oy * params.stride.0) as isize - ph;
                    let ws = (ox * params.stride.1) as isize - pw;
                    let he = (hs + kh as isize).min(height as isize + ph);
                    let we = (ws + kw as isize).min(width as isize + pw);
                    let padded = (he - hs) * (we - ws);
                    let (y0, y1) = (hs.max(0), he.min(height as isize));
                    let (x0, x1) = (ws.max(0), we.min(width as isize));
                    if y1 <= y0 || x1 <= x0 {
                        continue;
                    }
                    let mut sum = 0.0f64;
                    for iy in y0..y1 {
                        for ix in x0..x1 {
                            sum += input[[n, c, iy as usize, ix as usize]] as f64;
                        }
                    }
                    let divisor = match params.divisor_override {
                        Some(d) => d as f64,
                        None if params.count_include_pad => padded as f64,
                        None => ((y1 - y0) * (x1 - x0)) as f64,
                    };
                    out[[n, c, oy, ox]] = (sum / divisor) as f32;
                }
            }
        }
    }
    Ok(out)
}

/// Adaptive max pooling with indices: output `(oy, ox)` is the maximum of rows
/// `floor(oy * H / OH) .. ceil((oy + 1) * H / OH)` and likewise columns, scanned in
/// row-major order from the bin's first element; a value replaces the maximum when it is
/// greater or NaN. The index is the flat position `h * W + w` in the input plane.
pub fn adaptive_max_pool2d(
    params: &AdaptiveMaxPool2dParams,
    input: ArrayView4<f32>,
) -> Result<(Array4<f32>, Array4<i64>)> {
    let in_shape: [usize; 4] = input.shape().try_into().expect("4-D");
    let out_shape = params.output_shape(in_shape)?;
    let [batch, channels, height, width] = in_shape;
    let [_, _, out_h, out_w] = out_shape;
    let mut out = Array4::<f32>::zeros(out_shape);
    let mut indices = Array4::<i64>::zeros(out_shape);
    for n in 0..batch {
        for c in 0..channels {
            for oy in 0..out_h {
                let (y0, y1) = (oy * height / out_h, ((oy + 1) * height).div_ceil(out_h));
                for ox in 0..out_w {
                    let (x0, x1) = (ox * width / out_w, ((ox + 1) * width).div_ceil(out_w));
                    let mut best = (input[[n, c, y0, x0]], y0 * width + x0);
                    for iy in y0..y1 {
                        for ix in x0..x1 {
                            let v = input[[n, c, iy, ix]];
                            if v > best.0 || v.is_nan() {
                                best = (v, iy * width + ix);
                            }
                        }
                    }
                    out[[n, c, oy, ox]] = best.0;
                    indices[[n, c, oy, ox]] = best.1 as i64;
                }
            }
        }
    }
    Ok((out, indices))
}
