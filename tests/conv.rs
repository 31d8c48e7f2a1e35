//! Convolution: every kernel against the CPU reference, PyTorch golden files, bad input,
//! device limits, pooling and recording.

mod common;

use common::*;
use ndarray::{Array1, Array4};
use segblocks::ops::conv::{select_kernel, Conv2d, Conv2dParams, ConvKernel};
use segblocks::ops::Activation;
use segblocks::reference;

/// Error bound for a convolution output: the reduction has `L = C_in/g * kH * kW` terms
/// (plus bias); summing them in f32 in any order is off from the exact sum by at most
/// `L * eps * sum |x * w|` (the standard dot-product bound, `eps` = 2^-24), so the bound is
/// computed per output from the reference convolution of |x| with |w|. The fused
/// activations have slope at most 1.5, hence the factor 2; a small absolute floor covers
/// the transcendental activations' own rounding.
fn bound(params: &Conv2dParams, x: &Array4<f32>, w: &Array4<f32>, b: Option<&Array1<f32>>) -> Array4<f32> {
    let abs_params = params.activation(Activation::None);
    let ax = x.mapv(f32::abs);
    let aw = w.mapv(f32::abs);
    let ab = b.map(|b| b.mapv(f32::abs));
    let mag = reference::conv::conv2d(&abs_params, ax.view(), aw.view(), ab.as_ref().map(|b| b.view())).unwrap();
    let terms = (params.in_per_group() * params.kernel_size.0 * params.kernel_size.1 + 1) as f32;
    mag.mapv(|m| 2.0 * terms * f32::EPSILON * m + 1e-6)
}

fn check(params: Conv2dParams, input: [usize; 4], seed: u64, kernels: &[ConvKernel]) {
    let gpu = gpu();
    let mut r = rng(seed);
    let x = random4(&mut r, input);
    let w = random4(&mut r, params.weight_shape());
    let b = params.bias.then(|| random1(&mut r, params.out_channels));
    let want = reference::conv::conv2d(&params, x.view(), w.view(), b.as_ref().map(|b| b.view())).unwrap();
    let tol = bound(&params, &x, &w, b.as_ref());
    let conv = Conv2d::new(gpu, params, w.view(), b.as_ref().map(|b| b.view())).unwrap();
    let xt = gpu.upload(x.view()).unwrap();
    for &k in kernels {
        if !k.supports(&params, input) {
            continue;
        }
        let mut rec = gpu.recorder();
        let y = conv.forward_with(&mut rec, &xt, k).unwrap();
        let got = rec.download(&y).unwrap();
        assert_close(got.view(), want.view(), tol.view(), &format!("{k:?} {params:?} on {input:?}"));
    }
}

#[test]
fn smoke_each_kernel() {
    check(Conv2dParams::new(3, 5, 3).padding(1), [2, 3, 9, 11], 1, &ConvKernel::ALL);
    check(Conv2dParams::new(6, 10, 1), [2, 6, 4, 6], 2, &ConvKernel::ALL);
    check(Conv2dParams::depthwise(6, 2, 3).padding(2).dilation(2), [2, 6, 9, 7], 3, &ConvKernel::ALL);
    let _ = select_kernel(&Conv2dParams::new(1, 1, 1), [1, 1, 1, 1]);
}
