//! LR-ASPP's high-resolution branch (Howard et al., *Searching for MobileNetV3*; torchvision's
//! `LRASPPHead` and MediaPipe's selfie model) as one op:
//!
//! ```text
//! g = gate_activation(conv1x1_gate(avgpool(x)))        (torchvision: scale, sigmoid)
//! h = activation(conv1x1_branch(x)) * g                 (torchvision: cbr, batch norm folded)
//! y = conv1x1_classifier(h)                            (optional: without it, y = h)
//! ```
//!
//! On the GPU it is one dispatch where the input is small enough for each workgroup to
//! pool it ([`LrAsppHeadKernel::Fused`]), two where it is not
//! ([`LrAsppHeadKernel::PoolThenFused`]), or its five layers for inputs wider than the
//! fused kernel keeps in registers ([`LrAsppHeadKernel::Layers`]); [`select_kernel`]
//! chooses.

use ndarray::{ArrayView1, ArrayView4};

use super::channel::scale_channels;
use super::conv::{Conv2d, Conv2dParams};
use super::pool::{global_pool, GlobalPool};
use super::{Activation, Cost};
use crate::error::{fail_if, Error, Result};
use crate::gpu::{check_owner, DeviceCaps, Gpu, LazyWeights, Recorder, Tensor};
use crate::launch::{
    loop_nest, read, read_opt, specialize, uniform, write, Args, Count, Kernel, KernelInfo, Launch,
    Trip, LOOP_BUDGET,
};

/// Parameters of the branch, named after torchvision's `LRASPPHead`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LrAsppHeadParams {
    /// Channels of the input (`high_channels`).
    pub in_channels: usize,
    /// Channels of the branch and of the gate (`inter_channels`).
    pub inter_channels: usize,
    /// Outputs of the classifier (`num_classes`); `None` without one (the output is `h`).
    pub out_channels: Option<usize>,
    /// After the branch's 1x1 (torchvision: ReLU).
    pub activation: Activation,
    /// After the gate's 1x1 (torchvision: sigmoid).
    pub gate_activation: Activation,
}

impl LrAsppHeadParams {
    /// torchvision's branch: ReLU, sigmoid gate, a classifier to `num_classes`.
    pub fn new(in_channels: usize, inter_channels: usize, num_classes: usize) -> Self {
        LrAsppHeadParams {
            in_channels,
            inter_channels,
            out_channels: Some(num_classes),
            activation: Activation::Relu,
            gate_activation: Activation::Sigmoid,
        }
    }

    /// Without the classifier: the output is the gated branch `h`.
    pub fn without_classifier(mut self) -> Self {
        self.out_channels = None;
        self
    }

    /// Checks the channel counts.
    pub fn validate(&self) -> Result<()> {
        let zero =
            self.in_channels == 0 || self.inter_channels == 0 || self.out_channels == Some(0);
        fail_if(zero, "channels", || {
            format!(
                "in_channels, inter_channels and out_channels must be at least 1, got {}, {} and \
                 {:?}",
                self.in_channels, self.inter_channels, self.out_channels
            )
        })
    }

    /// The output's channels.
    pub fn output_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.inter_channels)
    }

    /// The output shape for an input `[N, in_channels, H, W]`.
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        self.validate()?;
        super::check_channels(input, self.in_channels)?;
        Ok([input[0], self.output_channels(), input[2], input[3]])
    }

    /// The three convolutions as layers: branch (with its activation), gate (without the
    /// gate activation, which the scale applies), classifier.
    pub fn layers(&self) -> [Conv2dParams; 3] {
        let (c, m) = (self.in_channels, self.inter_channels);
        [
            Conv2dParams::new(c, m, 1).activation(self.activation),
            Conv2dParams::new(c, m, 1),
            Conv2dParams::new(m, self.out_channels.unwrap_or(1), 1),
        ]
    }

    /// Parameters, multiply-adds and bytes (input, weights and output once).
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        let out = self.output_shape(input)?;
        let [branch, gate, classifier] = self.layers();
        let pooled = [input[0], input[1], 1, 1];
        let mut parts = vec![branch.cost(input)?, gate.cost(pooled)?];
        if self.out_channels.is_some() {
            parts.push(classifier.cost([input[0], self.inter_channels, input[2], input[3]])?);
        }
        let params: u64 = parts.iter().map(|c| c.params).sum();
        let values = input.iter().product::<usize>() + out.iter().product::<usize>();
        Ok(Cost {
            params,
            macs: parts.iter().map(|c| c.macs).sum(),
            bytes: 4 * (values as u64 + params),
        })
    }
}

/// How the branch runs on the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LrAsppHeadKernel {
    /// One dispatch: each workgroup pools its image, computes the gate, then a pixel per
    /// invocation.
    Fused,
    /// The global pool, then the fused pass on the pooled vector.
    PoolThenFused,
    /// The pool, the gate's 1x1, the branch's 1x1, the scale and the classifier.
    Layers,
}

impl LrAsppHeadKernel {
    /// Every variant.
    pub const ALL: [LrAsppHeadKernel; 3] = [
        LrAsppHeadKernel::Fused,
        LrAsppHeadKernel::PoolThenFused,
        LrAsppHeadKernel::Layers,
    ];
}

/// The most input channels and classifier outputs the fused kernel keeps in registers.
pub const FUSED_MAX_CHANNELS: usize = 64;
/// The most mid channels of the fused kernel (its gate lives in workgroup memory).
pub const FUSED_MAX_INTER: usize = 1024;
/// The most input values per image that every fused workgroup pools itself; larger
/// inputs are pooled once by a pooling pass first.
pub const FUSED_POOL_MAX: usize = 16_384;

/// The fused kernel's launch, or `None` when it does not apply (too wide, loop budget).
fn fused_plan(p: &LrAsppHeadParams, input: [usize; 4], pool: bool) -> Option<Launch> {
    let [n, c, h, w] = input;
    let (m, cout) = (p.inter_channels, p.out_channels.unwrap_or(4));
    if c > FUSED_MAX_CHANNELS || cout > FUSED_MAX_CHANNELS || m > FUSED_MAX_INTER {
        return None;
    }
    let (cin4, mid4, cout4) = (c.div_ceil(4), m.div_ceil(4), cout.div_ceil(4));
    let hw = h * w;
    let wg = crate::launch::WORKGROUP_SIZE as usize;
    let per = |items: usize| Trip::Uniform(items.div_ceil(wg) as u64);
    let pooling = if pool {
        loop_nest(&[per(cin4), Trip::Constant(4), Trip::Uniform(hw as u64)])
    } else {
        0
    };
    let loops = pooling
        + loop_nest(&[per(4 * mid4), Trip::Constant(cin4 as u64)])
        + loop_nest(&[
            Trip::Uniform(m as u64),
            Trip::Constant(cin4.max(cout4) as u64),
        ]);
    if loops > LOOP_BUDGET {
        return None;
    }
    let tiles = hw.div_ceil(wg);
    let spec = LrAsppHeadSpec {
        cin4: Count(cin4 as u32),
        mid4: Count(mid4 as u32),
        cout4: Count(cout4 as u32),
        classifier: p.out_channels.is_some(),
        pool,
        act: p.activation,
        gate_act: p.gate_activation,
    };
    let u = LrAsppHeadUniform {
        n: n as u32,
        c_in: c as u32,
        mid: m as u32,
        c_out: p.output_channels() as u32,
        hw: hw as u32,
        tiles: tiles as u32,
    };
    Some(FUSED.launch(&spec, &u).workgroups(n * tiles).loops(loops))
}

/// The kernel for `params` on `input`: on a GPU, [`LrAsppHeadKernel::Fused`] while every
/// workgroup can pool its image quickly (at most [`FUSED_POOL_MAX`] values),
/// [`LrAsppHeadKernel::PoolThenFused`] for larger maps, and [`LrAsppHeadKernel::Layers`]
/// for inputs or classifiers wider than [`FUSED_MAX_CHANNELS`] (a pixel per invocation
/// would be a poor matrix product there: the convolution kernels' tiles do better).
/// Devices that run shaders on the CPU take the layers: on lavapipe the fused pass
/// measured 3.3-6.5x slower (each invocation loads every weight itself, lane by lane, where a
/// GPU broadcasts them).
pub fn select_kernel(
    params: &LrAsppHeadParams,
    input: [usize; 4],
    caps: &DeviceCaps,
) -> LrAsppHeadKernel {
    let values = input[1] * input[2] * input[3];
    if caps.cpu {
        LrAsppHeadKernel::Layers
    } else if values <= FUSED_POOL_MAX && fused_plan(params, input, true).is_some() {
        LrAsppHeadKernel::Fused
    } else if fused_plan(params, input, false).is_some() {
        LrAsppHeadKernel::PoolThenFused
    } else {
        LrAsppHeadKernel::Layers
    }
}

uniform! {
    /// Mirrors the uniform of `lraspp_head.wgsl`.
    pub(crate) struct LrAsppHeadUniform {
        n: u32,
        c_in: u32,
        mid: u32,
        c_out: u32,
        hw: u32,
        tiles: u32,
    }
}

specialize! {
    /// The fused kernel's sizes, options and activations.
    pub(crate) struct LrAsppHeadSpec {
        cin4: Count => "CIN4",
        mid4: Count => "MID4",
        cout4: Count => "COUT4",
        classifier: bool => "CLASSIFIER",
        pool: bool => "POOL",
        act: Activation => "ACT",
        gate_act: Activation => "GATE_ACT",
    }
}

const FUSED: Kernel<LrAsppHeadUniform, LrAsppHeadSpec> = Kernel::new(
    "lraspp_head.wgsl",
    &[
        read("x"),
        read_opt("pooled"),
        read("w_branch"),
        read("w_gate"),
        read_opt("w_classifier"),
        read("biases"),
        write("y"),
    ],
);

/// The kernels of this family.
pub(crate) const KERNELS: &[&dyn KernelInfo] = &[&FUSED];

/// A 1x1 convolution's weight `[out, in, 1, 1]` and bias (none: zeros).
pub type Pointwise<'a> = (ArrayView4<'a, f32>, Option<ArrayView1<'a, f32>>);

/// The branch on the GPU: the fused kernel's weights and the three layers.
#[derive(Debug)]
pub struct LrAsppHead {
    gpu: Gpu,
    params: LrAsppHeadParams,
    /// The fused kernel's `w_branch`, `w_gate` and `biases`.
    fused: [LazyWeights; 3],
    /// The fused kernel's `w_classifier`, with a classifier.
    fused_classifier: Option<LazyWeights>,
    /// The branch and gate layers.
    layers: [Conv2d; 2],
    /// The classifier layer, with a classifier.
    classifier: Option<Conv2d>,
}

impl LrAsppHead {
    /// Uploads the branch from PyTorch-layout 1x1 weights (batch norms folded in):
    /// `branch` and `gate` `[inter_channels, in_channels, 1, 1]`, `classifier`
    /// `[out_channels, inter_channels, 1, 1]` exactly when `params.out_channels` is set;
    /// a bias `None` is zeros.
    pub fn new(
        gpu: &Gpu,
        params: LrAsppHeadParams,
        branch: Pointwise<'_>,
        gate: Pointwise<'_>,
        classifier: Option<Pointwise<'_>>,
    ) -> Result<Self> {
        params.validate()?;
        let (c, m) = (params.in_channels, params.inter_channels);
        fail_if(
            classifier.is_some() != params.out_channels.is_some(),
            "classifier",
            || {
                format!(
                    "the classifier's weights are needed exactly when out_channels is set, got \
                 out_channels {:?}",
                    params.out_channels
                )
            },
        )?;
        let check = |name: &'static str, (w, b): Pointwise<'_>, shape: [usize; 4]| {
            super::same_dims(name, &shape, w.shape())?;
            match b {
                Some(b) => super::same_dims(name, &shape[..1], b.shape()),
                None => Ok(()),
            }
        };
        check("branch", branch, [m, c, 1, 1])?;
        check("gate", gate, [m, c, 1, 1])?;
        let cout = params.out_channels.unwrap_or(0);
        if let Some(cl) = classifier {
            check("classifier", cl, [cout, m, 1, 1])?;
        }
        // Rows of 4 input channels a vec4, zero padded.
        let c4 = c.next_multiple_of(4);
        let rows = |w: ArrayView4<f32>| {
            let mut out = vec![0.0; m * c4];
            for ((mi, ci, _, _), &v) in w.indexed_iter() {
                out[mi * c4 + ci] = v;
            }
            out
        };
        let bias = |b: Option<ArrayView1<f32>>, len: usize| {
            let mut v = b.map_or_else(Vec::new, |b| b.to_vec());
            v.resize(len, 0.0);
            v
        };
        let mut biases = bias(branch.1, m);
        biases.extend(bias(gate.1, m));
        let cout4 = cout.max(1).next_multiple_of(4);
        let w_classifier = match classifier {
            Some((w, b)) => {
                let mut t = vec![0.0; m * cout4];
                for ((co, mi, _, _), &v) in w.indexed_iter() {
                    t[mi * cout4 + co] = v;
                }
                biases.extend(bias(b, cout4));
                Some(gpu.lazy_weights("w_classifier", t)?)
            }
            None => None,
        };
        let fused = [
            gpu.lazy_weights("w_branch", rows(branch.0))?,
            gpu.lazy_weights("w_gate", rows(gate.0))?,
            gpu.lazy_weights("biases", biases)?,
        ];
        let [pb, pg, pc] = params.layers();
        let layer = |p: Conv2dParams, (w, b): Pointwise<'_>| -> Result<Conv2d> {
            let b = b.map_or_else(|| ndarray::Array1::zeros(p.out_channels), |b| b.to_owned());
            Conv2d::new(gpu, p, w, Some(b.view()))
        };
        Ok(LrAsppHead {
            gpu: gpu.clone(),
            params,
            fused,
            fused_classifier: w_classifier,
            layers: [layer(pb, branch)?, layer(pg, gate)?],
            classifier: classifier.map(|cl| layer(pc, cl)).transpose()?,
        })
    }

    /// The parameters.
    pub fn params(&self) -> &LrAsppHeadParams {
        &self.params
    }

    /// Records the branch with the kernel [`select_kernel`] picks.
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        let kernel = select_kernel(&self.params, x.shape(), rec.gpu().caps());
        self.forward_with(rec, x, kernel)
    }

    /// Records the branch with a chosen kernel (an error where the fused kernel does not
    /// apply).
    pub fn forward_with(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        kernel: LrAsppHeadKernel,
    ) -> Result<Tensor> {
        x.check_gpu(rec.gpu(), "input")?;
        check_owner(self.gpu.id(), rec.gpu(), "layer")?;
        let p = &self.params;
        let out = p.output_shape(x.shape())?;
        let fused = |rec: &mut Recorder<'_>, pooled: Option<&Tensor>| -> Result<Tensor> {
            let launch = fused_plan(p, x.shape(), pooled.is_none()).ok_or_else(|| Error::InvalidParam {
                name: "kernel",
                reason: format!(
                    "the fused LR-ASPP branch holds at most {FUSED_MAX_CHANNELS} input channels and \
                     classes and {FUSED_MAX_INTER} inter channels, got {p:?}; use \
                     LrAsppHeadKernel::Layers"
                ),
            })?;
            let y = rec.empty("output", out)?;
            let [wb, wg, biases] = &self.fused;
            let args = Args::new()
                .read("x", x)
                .read_opt("pooled", pooled)
                .read("w_branch", wb.buffer()?)
                .read("w_gate", wg.buffer()?)
                .read_opt(
                    "w_classifier",
                    self.fused_classifier
                        .as_ref()
                        .map(|w| w.buffer())
                        .transpose()?,
                )
                .read("biases", biases.buffer()?)
                .write("y", &y);
            rec.run(&launch, args)?;
            Ok(y)
        };
        match kernel {
            LrAsppHeadKernel::Fused => fused(rec, None),
            LrAsppHeadKernel::PoolThenFused => {
                let pooled = global_pool(rec, GlobalPool::Avg, x)?;
                fused(rec, Some(&pooled))
            }
            LrAsppHeadKernel::Layers => {
                let pooled = global_pool(rec, GlobalPool::Avg, x)?;
                let [branch_layer, gate_layer] = &self.layers;
                let gate = gate_layer.forward(rec, &pooled)?;
                let branch = branch_layer.forward(rec, x)?;
                let h = scale_channels(rec, &branch, &gate, p.gate_activation)?;
                // Dropped so that the recording can give the buffer to the classifier.
                drop(branch);
                match &self.classifier {
                    Some(classifier) => classifier.forward(rec, &h),
                    None => Ok(h),
                }
            }
        }
    }

    /// Parameters, multiply-adds and bytes on `input`.
    pub fn cost(&self, input: [usize; 4]) -> Result<Cost> {
        self.params.cost(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_maps_pool_in_the_pass_large_ones_first_wide_inputs_run_as_layers() {
        let caps = DeviceCaps::default();
        // The selfie model's head at 256 x 256: 32 channels at 16 x 16.
        let selfie = LrAsppHeadParams::new(32, 128, 24);
        assert_eq!(
            select_kernel(&selfie, [1, 32, 16, 16], &caps),
            LrAsppHeadKernel::Fused
        );
        assert_eq!(
            select_kernel(&selfie, [1, 32, 64, 64], &caps),
            LrAsppHeadKernel::PoolThenFused
        );
        // torchvision's LR-ASPP: 960 channels.
        let torchvision = LrAsppHeadParams::new(960, 128, 21);
        assert_eq!(
            select_kernel(&torchvision, [1, 960, 28, 28], &caps),
            LrAsppHeadKernel::Layers
        );
        let cpu = DeviceCaps {
            cpu: true,
            ..DeviceCaps::default()
        };
        assert_eq!(
            select_kernel(&selfie, [1, 32, 16, 16], &cpu),
            LrAsppHeadKernel::Layers
        );
    }
}
