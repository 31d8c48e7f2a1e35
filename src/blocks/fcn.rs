//! FCN's head (torchvision's `segmentation.fcn.FCNHead`).

use super::{conv_bn, Architecture, ConvBnAct, Graph, Model};
use crate::error::{fail_if, Result};
use crate::gpu::Gpu;
use crate::ops::conv::Conv2dParams;
use crate::ops::Activation;
use crate::weights::{key, StateDict};

/// torchvision's `FCNHead(in_channels, channels)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FcnHeadConfig {
    /// Input channels (the 3x3 reduces them to a quarter).
    pub in_channels: usize,
    /// Output channels (classes).
    pub channels: usize,
}

/// The FCN head for inference: 3x3 to `in_channels / 4` with batch norm and ReLU,
/// (dropout: identity in inference), 1x1 classifier with bias. Names `0`, `1`, `4`.
pub type FcnHead = Model<FcnHeadConfig>;

impl Architecture for FcnHeadConfig {
    /// Checks the configuration on its own.
    fn validate(&self) -> Result<()> {
        let cfg = self;
        let inter = cfg.in_channels / 4;
        fail_if(inter == 0 || cfg.channels == 0, "in_channels", || {
            format!(
                "need at least 4 input channels and one class, got {} and {}",
                cfg.in_channels, cfg.channels
            )
        })
    }

    /// Loads `0`, `1` (batch norm) and `4`.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        let cfg = self;
        let inter = cfg.in_channels / 4;
        let p0 = Conv2dParams::new(cfg.in_channels, inter, 3)
            .padding(1)
            .bias(false)
            .activation(Activation::Relu);
        let p4 = Conv2dParams::new(inter, cfg.channels, 1);
        let mut g = Graph::new();
        let x = g.input();
        let h = g.add(
            "0",
            conv_bn(gpu, sd, p0, &key(prefix, "0"), &key(prefix, "1"), 1e-5)?,
            &[x],
        );
        let classifier = ConvBnAct::load(gpu, sd, p4, &key(prefix, "4"), None, 0.0)?;
        let y = g.add("4", classifier, &[h]);
        g.set_outputs(&[y]);
        Ok(g)
    }
}
