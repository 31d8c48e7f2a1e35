//! Prints the parameter / MAC cost model for the convolution family, reproducing the
//! figures in the project's seed documents from segblocks' own `cost()` functions.
//!
//! Run: `cargo run --example cost_table`

use segblocks::ops::conv::{Conv2dParams, DepthwiseSeparableParams};
use segblocks::ops::Cost;

fn row(name: &str, cost: Cost) {
    println!(
        "{name:<52} {:>12} {:>14} {:>10.3}",
        cost.params,
        cost.macs,
        cost.flops() as f64 * 1e-9
    );
}

fn main() -> segblocks::Result<()> {
    let input = [1, 256, 56, 56];
    println!(
        "{:<52} {:>12} {:>14} {:>10}",
        "layer (input 1x256x56x56)", "params", "MACs", "GFLOP"
    );

    // Standard vs depthwise separable, k = 3, C_out = 256 (no bias, as in the seed).
    let standard = Conv2dParams::new(256, 256, 3).padding(1).bias(false);
    let separable = {
        let p = DepthwiseSeparableParams::new(256, 256, 3, 1);
        DepthwiseSeparableParams {
            depthwise: p.depthwise.padding(1).bias(false),
            pointwise: p.pointwise.bias(false),
        }
    };
    let (cs, cd) = (standard.cost(input)?, separable.cost(input)?);
    row("standard 3x3 conv 256->256", cs);
    row("depthwise-separable 3x3 256->256", cd);
    let ratio = cd.macs as f64 / cs.macs as f64;
    println!(
        "  separable / standard = {ratio:.4} (seed: 1/C_out + 1/k^2 = {:.4}), {:.1}x fewer MACs\n",
        1.0 / 256.0 + 1.0 / 9.0,
        1.0 / ratio
    );

    // Group convolution: k^2 C_in C_out / g parameters.
    for g in [1, 2, 4, 8, 32] {
        let p = Conv2dParams::new(256, 256, 3)
            .padding(1)
            .groups(g)
            .bias(false);
        row(&format!("group 3x3 conv 256->256, g = {g}"), p.cost(input)?);
    }
    println!("  parameters = k^2 * C_in * C_out / g\n");

    // Bottleneck: 1x1 256->64, 3x3 64->64, 1x1 64->256 versus one 3x3 256->256.
    let direct = Conv2dParams::new(256, 256, 3)
        .padding(1)
        .bias(false)
        .cost(input)?;
    let reduce = Conv2dParams::new(256, 64, 1).bias(false);
    let mid = Conv2dParams::new(64, 64, 3).padding(1).bias(false);
    let expand = Conv2dParams::new(64, 256, 1).bias(false);
    let bottleneck =
        reduce.cost(input)? + mid.cost([1, 64, 56, 56])? + expand.cost([1, 64, 56, 56])?;
    row("direct 3x3 256->256", direct);
    row(
        "bottleneck 1x1 256->64, 3x3 64->64, 1x1 64->256",
        bottleneck,
    );
    println!(
        "  {} vs {} parameters (seed: 589,824 vs 69,632), {:.1}x fewer\n",
        direct.params,
        bottleneck.params,
        direct.params as f64 / bottleneck.params as f64
    );

    // Width multiplier alpha: channels scale by alpha, parameters by about alpha^2.
    let full = separable.cost(input)?;
    let alpha = 0.75;
    let c = (256.0 * alpha) as usize;
    let thin = {
        let p = DepthwiseSeparableParams::new(c, c, 3, 1);
        DepthwiseSeparableParams {
            depthwise: p.depthwise.padding(1).bias(false),
            pointwise: p.pointwise.bias(false),
        }
    };
    let thin_cost = thin.cost([1, c, 56, 56])?;
    row("depthwise-separable 256->256 (alpha = 1)", full);
    row("depthwise-separable 192->192 (alpha = 0.75)", thin_cost);
    println!(
        "  width multiplier 0.75 cuts {:.1}% of the parameters (seed: about 43%)",
        100.0 * (1.0 - thin_cost.params as f64 / full.params as f64)
    );
    Ok(())
}
