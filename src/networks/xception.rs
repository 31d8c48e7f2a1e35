//! Xception (Chollet's; Cadene's `pretrainedmodels` port) as segmentation_models_pytorch's
//! `xception` encoder builds it: a 3x3 stride-2 and a 3x3 convolution with batch norm and
//! ReLU (smp pads both by 1), twelve blocks of ReLU + separable convolution (depthwise
//! 3x3, then pointwise 1x1, `rep.{i}.conv1` / `.pointwise`) + batch norm, the strided
//! ones ending in a 3x3 stride-2 max pool, each added to its input (or to a 1x1 strided
//! projection with batch norm, `skip` / `skipbn`), then two more separable convolutions
//! (`conv3`, `conv4`). smp cannot dilate it.

use crate::blocks::{conv_bn, ConvBnAct, Graph, Op, ValueId};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::ops::conv::{Conv2dParams, ResidualJoin};
use crate::ops::pool::MaxPool2dParams;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// Xception's twelve blocks: input and output channels, separable convolutions, stride,
/// whether the block starts with ReLU, whether it widens in its first convolution.
const BLOCKS: [(usize, usize, usize, usize, bool, bool); 12] = [
    (64, 128, 2, 2, false, true),
    (128, 256, 2, 2, true, true),
    (256, 728, 2, 2, true, true),
    (728, 728, 3, 1, true, true),
    (728, 728, 3, 1, true, true),
    (728, 728, 3, 1, true, true),
    (728, 728, 3, 1, true, true),
    (728, 728, 3, 1, true, true),
    (728, 728, 3, 1, true, true),
    (728, 728, 3, 1, true, true),
    (728, 728, 3, 1, true, true),
    (728, 1024, 2, 2, true, false),
];

/// The blocks after which smp takes its features at strides 4, 8 and 16.
const TAPS: [usize; 3] = [0, 1, 10];

/// Batch norm eps of every layer.
const EPS: f32 = 1e-5;

/// Channels of smp's features: the input's, then 64, 128, 256, 728, 2048.
pub(crate) fn feature_channels(in_channels: usize) -> Vec<usize> {
    vec![in_channels, 64, 128, 256, 728, 2048]
}

/// The encoder (`{prefix}.conv1` ... `conv4`, taking `in_channels` channels) as far as
/// smp runs it for `depth` features, appended to `g` after `x`; returns smp's features
/// (the input's first).
pub(crate) fn append(
    g: &mut Graph,
    x: ValueId,
    (gpu, sd, prefix): (&Gpu, &StateDict, &str),
    (in_channels, depth): (usize, usize),
) -> Result<Vec<ValueId>> {
    let at = |n: &str| key(prefix, n);
    let relu = Activation::Relu;
    let stem = |cin, cout, stride| {
        Conv2dParams::new(cin, cout, 3)
            .stride(stride)
            .padding(1)
            .bias(false)
            .activation(relu)
    };
    let conv1 = conv_bn(
        gpu,
        sd,
        stem(in_channels, 32, 2),
        &at("conv1"),
        &at("bn1"),
        EPS,
    )?;
    let y = g.add("conv1", conv1, &[x]);
    let conv2 = conv_bn(gpu, sd, stem(32, 64, 1), &at("conv2"), &at("bn2"), EPS)?;
    let mut y = g.add("conv2", conv2, &[y]);
    let mut features = vec![x, y];
    let blocks = match depth {
        0 | 1 => 0,
        d => TAPS.get(d - 2).map_or(BLOCKS.len(), |&t| t + 1),
    };
    for (i, &spec) in BLOCKS.iter().enumerate().take(blocks) {
        let name = format!("block{}", i + 1);
        y = block(g, y, (gpu, sd, &at(&name)), &name, spec)?;
        if TAPS.contains(&i) {
            features.push(y);
        }
    }
    if depth >= 5 {
        let conv3 = separable(gpu, sd, (1024, 1536), &at("conv3"), &at("bn3"), relu)?;
        y = add_separable(g, y, conv3, "conv3");
        let conv4 = separable(
            gpu,
            sd,
            (1536, 2048),
            &at("conv4"),
            &at("bn4"),
            Activation::None,
        )?;
        y = add_separable(g, y, conv4, "conv4");
        features.push(y);
    }
    Ok(features)
}

/// A separable convolution's two layers: the depthwise 3x3 (`{conv}.conv1`, padded by 1)
/// and the pointwise 1x1 (`{conv}.pointwise`) with the batch norm `bn` and `act`.
fn separable(
    gpu: &Gpu,
    sd: &StateDict,
    (cin, cout): (usize, usize),
    conv: &str,
    bn: &str,
    act: Activation,
) -> Result<(ConvBnAct, ConvBnAct)> {
    let depthwise = Conv2dParams::depthwise(cin, 1, 3).padding(1).bias(false);
    let depthwise = ConvBnAct::load(gpu, sd, depthwise, &key(conv, "conv1"), None, 0.0)?;
    let pointwise = Conv2dParams::new(cin, cout, 1).bias(false).activation(act);
    let pointwise = conv_bn(gpu, sd, pointwise, &key(conv, "pointwise"), bn, EPS)?;
    Ok((depthwise, pointwise))
}

/// `layers` (a separable convolution) appended after `x` as `{name}.conv1` and
/// `{name}.pointwise`.
fn add_separable(
    g: &mut Graph,
    x: ValueId,
    (depthwise, pointwise): (ConvBnAct, ConvBnAct),
    name: &str,
) -> ValueId {
    let y = g.add(key(name, "conv1"), depthwise, &[x]);
    g.add(key(name, "pointwise"), pointwise, &[y])
}

/// One of Xception's blocks under `prefix`, its nodes named under `name`.
fn block(
    g: &mut Graph,
    x: ValueId,
    (gpu, sd, prefix): (&Gpu, &StateDict, &str),
    name: &str,
    (cin, cout, reps, stride, start_with_relu, grow_first): (
        usize,
        usize,
        usize,
        usize,
        bool,
        bool,
    ),
) -> Result<ValueId> {
    let at = |n: &str| key(prefix, n);
    let node = |n: &str| key(name, n);
    // The separable convolutions' channels, in order.
    let mut convs = Vec::with_capacity(reps);
    if grow_first {
        convs.push((cin, cout));
        convs.extend(std::iter::repeat_n((cout, cout), reps - 1));
    } else {
        convs.extend(std::iter::repeat_n((cin, cin), reps - 1));
        convs.push((cin, cout));
    }
    let skip = if cout != cin || stride != 1 {
        let p = Conv2dParams::new(cin, cout, 1).stride(stride).bias(false);
        let skip = conv_bn(gpu, sd, p, &at("skip"), &at("skipbn"), EPS)?;
        Some(g.add(node("skip"), skip, &[x]))
    } else {
        None
    };
    // The Sequential's indices: (ReLU, separable, BN) a convolution, the first ReLU
    // dropped when the block does not start with one.
    let first = usize::from(start_with_relu);
    let mut y = if start_with_relu {
        g.add(node("rep.0"), Op::Activation(Activation::Relu), &[x])
    } else {
        x
    };
    let last = convs.len() - 1;
    for (j, &channels) in convs.iter().enumerate() {
        let (conv, bn) = (first + 3 * j, first + 3 * j + 1);
        // The next convolution's leading ReLU runs in this one's store.
        let act = if j < last {
            Activation::Relu
        } else {
            Activation::None
        };
        let conv_at = at(&format!("rep.{conv}"));
        let bn_at = at(&format!("rep.{bn}"));
        let (depthwise, mut pointwise) = separable(gpu, sd, channels, &conv_at, &bn_at, act)?;
        let name = node(&format!("rep.{conv}"));
        let y_dw = g.add(key(&name, "conv1"), depthwise, &[y]);
        // The identity skip joins in the last convolution's store.
        if j == last && stride == 1 && skip.is_none() {
            pointwise = pointwise.with_residual(ResidualJoin::AddThen(Activation::None))?;
            return Ok(g.add(key(&name, "pointwise"), pointwise, &[y_dw, x]));
        }
        y = g.add(key(&name, "pointwise"), pointwise, &[y_dw]);
    }
    if stride != 1 {
        let pool = MaxPool2dParams::new(3).stride(stride).padding(1);
        y = g.add_multi(node("pool"), Op::MaxPool(pool), &[y], 2)[0];
    }
    let skip = skip.unwrap_or(x);
    Ok(g.add(name, Op::Add, &[y, skip]))
}
