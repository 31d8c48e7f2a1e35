//! MediaPipe's selfie segmentation network (`selfie_segmentation.tflite`, Apache-2.0), built
//! from the library's blocks: a MobileNetV3-style encoder (hard-swish stem, eight inverted
//! residuals, five with squeeze-and-excitation), an LR-ASPP-like head (a ReLU branch gated
//! by a sigmoid of the pooled features), three decoder stages that resize by 2x, gate the
//! encoder's skip connection with an SE-style channel attention and refine with a 1x1 and
//! a residual depthwise 3x3, and a 2x2 stride-2 transposed convolution to one sigmoid
//! channel: the probability that a pixel belongs to a person.
//!
//! Weights come from `models/selfie_segmentation/model.safetensors`, converted from the
//! .tflite file by `tests/golden/make_golden_selfie.py` into PyTorch layouts under the
//! TFLite layer names (`conv2d_3.weight`, `depthwise_conv2d_7.bias`, `segment.weight`).
//! TFLite's strided convolutions pad TensorFlow's `'SAME'` way, one more row and column
//! after than before ([`tf_same_padding`]); the GPU convolutions take that padding as is.

use ndarray::{Array1, Array4, ArrayView4};

use super::{ConvBnAct, MobileNetV3Block, MobileNetV3Config, SeLayer, Summary, SummaryRow};
use crate::error::{invalid, Error, Result};
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::ops::attention::SqueezeExcitationParams;
use crate::ops::channel::{scale_channels, scale_channels_add};
use crate::ops::conv::{tf_same_padding, Conv2dParams};
use crate::ops::conv_transpose::{ConvTranspose2d, ConvTranspose2dParams};
use crate::ops::pool::GlobalPool;
use crate::ops::upsample::UpsampleParams;
use crate::ops::Activation;
use crate::reference;
use crate::weights::StateDict;

/// One encoder block of the table: layer names, channels, depthwise kernel and stride.
struct BlockSpec {
    /// Expansion 1x1, depthwise, projection 1x1.
    names: [&'static str; 3],
    /// SE `fc1` and `fc2` names and the squeezed channels.
    se: Option<(&'static str, &'static str, usize)>,
    channels: [usize; 3],
    kernel: usize,
    stride: usize,
    hard_swish: bool,
}

const fn block(
    names: [&'static str; 3],
    se: Option<(&'static str, &'static str, usize)>,
    channels: [usize; 3],
    kernel: usize,
    stride: usize,
    hard_swish: bool,
) -> BlockSpec {
    BlockSpec {
        names,
        se,
        channels,
        kernel,
        stride,
        hard_swish,
    }
}

/// The encoder as the .tflite graph has it (channels: input, expanded, output).
const ENCODER: [BlockSpec; 8] = [
    block(
        ["conv2d_1", "depthwise_conv2d", "conv2d_4"],
        Some(("conv2d_2", "conv2d_3", 8)),
        [16, 16, 16],
        3,
        2,
        false,
    ),
    block(
        ["conv2d_5", "depthwise_conv2d_1", "conv2d_6"],
        None,
        [16, 72, 24],
        3,
        2,
        false,
    ),
    block(
        ["conv2d_7", "depthwise_conv2d_2", "conv2d_8"],
        None,
        [24, 88, 24],
        3,
        1,
        false,
    ),
    block(
        ["conv2d_9", "depthwise_conv2d_3", "conv2d_12"],
        Some(("conv2d_10", "conv2d_11", 24)),
        [24, 96, 32],
        5,
        2,
        true,
    ),
    block(
        ["conv2d_13", "depthwise_conv2d_4", "conv2d_16"],
        Some(("conv2d_14", "conv2d_15", 32)),
        [32, 128, 32],
        5,
        1,
        true,
    ),
    block(
        ["conv2d_17", "depthwise_conv2d_5", "conv2d_20"],
        Some(("conv2d_18", "conv2d_19", 32)),
        [32, 128, 32],
        5,
        1,
        true,
    ),
    block(
        ["conv2d_21", "depthwise_conv2d_6", "conv2d_24"],
        Some(("conv2d_22", "conv2d_23", 24)),
        [32, 96, 32],
        5,
        1,
        true,
    ),
    block(
        ["conv2d_25", "depthwise_conv2d_7", "conv2d_28"],
        Some(("conv2d_26", "conv2d_27", 24)),
        [32, 96, 32],
        5,
        1,
        true,
    ),
];

/// Encoder blocks whose outputs are the decoder's skips (at 1/4 and 1/8 of the input; the
/// stem's output at 1/2 is the third).
const SKIP_BLOCKS: [usize; 2] = [0, 2];

/// Decoder stages: (resize 1x1, gate fc1, gate fc2, refine 1x1, refine depthwise), input
/// and output channels.
const DECODER: [([&str; 5], usize, usize); 3] = [
    (
        [
            "conv2d_31",
            "conv2d_32",
            "conv2d_33",
            "conv2d_34",
            "depthwise_conv2d_8",
        ],
        128,
        24,
    ),
    (
        [
            "conv2d_35",
            "conv2d_36",
            "conv2d_37",
            "conv2d_38",
            "depthwise_conv2d_9",
        ],
        24,
        16,
    ),
    (
        [
            "conv2d_39",
            "conv2d_40",
            "conv2d_41",
            "conv2d_42",
            "depthwise_conv2d_10",
        ],
        16,
        16,
    ),
];

/// A k x k convolution padded as TensorFlow's `'SAME'` for even input sizes (which the
/// network requires: every strided layer sees an even size), with bias.
fn same_conv(params: Conv2dParams) -> Conv2dParams {
    let (k, s) = (params.kernel_size.0, params.stride.0);
    // Every even length gives the same split; 2k is one.
    let pad = tf_same_padding(2 * k, k, s, 1);
    params.padding_asymmetric(pad, pad)
}

fn load_conv(gpu: &Gpu, sd: &StateDict, params: Conv2dParams, name: &str) -> Result<ConvBnAct> {
    ConvBnAct::load(gpu, sd, params, name, None, 0.0)
}

/// An inverted residual of the encoder: a [`MobileNetV3Block`] (expansion always present,
/// SE with a sigmoid gate, biases and no batch norm) loaded under the TFLite layer names.
#[derive(Debug)]
struct EncoderBlock {
    names: [&'static str; 3],
    block: MobileNetV3Block,
}

impl EncoderBlock {
    fn load(gpu: &Gpu, sd: &StateDict, spec: &BlockSpec) -> Result<Self> {
        let [input, hidden, out] = spec.channels;
        let act = if spec.hard_swish {
            Activation::HardSwish
        } else {
            Activation::Relu
        };
        let expand = load_conv(
            gpu,
            sd,
            Conv2dParams::new(input, hidden, 1).activation(act),
            spec.names[0],
        )?;
        let depthwise = load_conv(
            gpu,
            sd,
            same_conv(
                Conv2dParams::depthwise(hidden, 1, spec.kernel)
                    .stride(spec.stride)
                    .activation(act),
            ),
            spec.names[1],
        )?;
        let se = match spec.se {
            Some((fc1, fc2, squeeze)) => Some(SeLayer::load(
                gpu,
                sd,
                SqueezeExcitationParams::new(hidden, squeeze),
                fc1,
                fc2,
            )?),
            None => None,
        };
        let project = load_conv(gpu, sd, Conv2dParams::new(hidden, out, 1), spec.names[2])?;
        let cfg = MobileNetV3Config {
            input_channels: input,
            kernel: spec.kernel,
            expanded_channels: hidden,
            out_channels: out,
            use_se: spec.se.is_some(),
            use_hs: spec.hard_swish,
            stride: spec.stride,
            dilation: 1,
        };
        Ok(EncoderBlock {
            names: spec.names,
            block: MobileNetV3Block::from_layers(cfg, Some(expand), depthwise, se, project),
        })
    }

    /// The block's rows under the TFLite layer names.
    fn summary(&self, s: &mut Summary, input: [usize; 4]) -> Result<[usize; 4]> {
        let mut shape = input;
        for row in self.block.summary(input)?.rows {
            shape = row.output;
            let name = match row.name.as_str() {
                "expand" => self.names[0].to_string(),
                "depthwise" => self.names[1].to_string(),
                "se" => format!("{} (SE)", self.names[1]),
                _ => self.names[2].to_string(),
            };
            s.rows.push(SummaryRow { name, ..row });
        }
        Ok(shape)
    }
}

/// A decoder stage: resize by 2 and a 1x1 convolution, a channel gate on the skip computed
/// from `skip + resized` (on the GPU without materialising the sum), then `relu(1x1)` plus `relu(depthwise 3x3)` of it.
#[derive(Debug)]
struct DecoderStage {
    names: [&'static str; 5],
    resize_conv: ConvBnAct,
    gate: SeLayer,
    refine: ConvBnAct,
    depthwise: ConvBnAct,
}

fn upsample2x() -> UpsampleParams {
    UpsampleParams::bilinear(false).scale_factor(2.0)
}

impl DecoderStage {
    fn load(
        gpu: &Gpu,
        sd: &StateDict,
        names: [&'static str; 5],
        cin: usize,
        c: usize,
    ) -> Result<Self> {
        Ok(DecoderStage {
            names,
            resize_conv: load_conv(gpu, sd, Conv2dParams::new(cin, c, 1), names[0])?,
            gate: SeLayer::load(
                gpu,
                sd,
                SqueezeExcitationParams::new(c, c),
                names[1],
                names[2],
            )?,
            refine: load_conv(
                gpu,
                sd,
                Conv2dParams::new(c, c, 1).activation(Activation::Relu),
                names[3],
            )?,
            depthwise: load_conv(
                gpu,
                sd,
                same_conv(Conv2dParams::depthwise(c, 1, 3).activation(Activation::Relu)),
                names[4],
            )?,
        })
    }

    /// Takes its inputs by value: each is dead after its last use inside the stage, and
    /// its buffer can take a later output of the same recording.
    fn forward(&self, rec: &mut Recorder<'_>, h: Tensor, skip: Tensor) -> Result<Tensor> {
        // The graph resizes, then applies the 1x1 convolution. Both are linear and the
        // bilinear weights of every output pixel sum to 1 (so the bias passes through):
        // convolving first and resizing the (fewer) output channels is the same function
        // at a quarter of the convolution's work and a fraction of the resize's traffic.
        let low = self.resize_conv.forward(rec, &h)?;
        drop(h);
        let y = upsample2x().forward(rec, &low)?;
        drop(low);
        let g = self.gate.excitation_of_sum(rec, &skip, &y)?;
        let z = scale_channels_add(rec, &skip, &g, Activation::Sigmoid, &y)?;
        drop((g, y, skip));
        let a = self.refine.forward(rec, &z)?;
        drop(z);
        // a + relu(depthwise(a)), the add fused into the depthwise pass.
        self.depthwise.forward_residual(rec, &a, &a)
    }

    /// The graph's order: resize, then the 1x1 convolution.
    fn reference(&self, h: ArrayView4<f32>, skip: ArrayView4<f32>) -> Result<Array4<f32>> {
        let up = reference::upsample::upsample(&upsample2x(), h)?;
        let y = self.resize_conv.reference(up.view())?;
        let s = reference::channel::add(skip, y.view(), Activation::None);
        let g = self.gate.reference_excitation(s.view())?;
        let z =
            reference::channel::scale_channels_add(skip, g.view(), Activation::Sigmoid, y.view());
        let a = self.refine.reference(z.view())?;
        let d = self.depthwise.reference(a.view())?;
        Ok(reference::channel::add(
            a.view(),
            d.view(),
            Activation::None,
        ))
    }

    fn summary(&self, s: &mut Summary, input: [usize; 4]) -> Result<[usize; 4]> {
        let up = upsample2x().output_shape(input)?;
        let shape = s.push(self.names[0], &self.resize_conv, up)?;
        let cost = self.gate.cost(shape)?;
        s.push_cost(
            format!("{} / {} (gate)", self.names[1], self.names[2]),
            shape,
            cost,
        );
        let shape = s.push(self.names[3], &self.refine, shape)?;
        s.push(self.names[4], &self.depthwise, shape)
    }
}

/// MediaPipe's selfie segmentation network for inference: input `[N, 3, H, W]` RGB in
/// `[0, 1]` (the model was trained at 256 x 256; H and W must be multiples of 16), output
/// `[N, 1, H, W]` person probabilities.
#[derive(Debug)]
pub struct SelfieSegmentation {
    stem: ConvBnAct,
    encoder: Vec<EncoderBlock>,
    head_branch: ConvBnAct,
    head_gate: ConvBnAct,
    decoder: Vec<DecoderStage>,
    segment: ConvTranspose2d,
    segment_params: ConvTranspose2dParams,
    segment_weight: Array4<f32>,
    segment_bias: Array1<f32>,
}

impl SelfieSegmentation {
    /// The input size the model was trained at.
    pub const INPUT_SIZE: (usize, usize) = (256, 256);

    /// Loads the converted weights (see the module docs for the names); errors name the
    /// missing or mis-shaped tensor.
    pub fn load(gpu: &Gpu, sd: &StateDict) -> Result<Self> {
        let stem = load_conv(
            gpu,
            sd,
            same_conv(
                Conv2dParams::new(3, 16, 3)
                    .stride(2)
                    .activation(Activation::HardSwish),
            ),
            "conv2d",
        )?;
        let encoder = ENCODER
            .iter()
            .map(|spec| EncoderBlock::load(gpu, sd, spec))
            .collect::<Result<Vec<_>>>()?;
        let head_branch = load_conv(
            gpu,
            sd,
            Conv2dParams::new(32, 128, 1).activation(Activation::Relu),
            "conv2d_29",
        )?;
        let head_gate = load_conv(gpu, sd, Conv2dParams::new(32, 128, 1), "conv2d_30")?;
        let decoder = DECODER
            .iter()
            .map(|&(names, cin, c)| DecoderStage::load(gpu, sd, names, cin, c))
            .collect::<Result<Vec<_>>>()?;
        let segment_params = ConvTranspose2dParams::new(16, 1, 2)
            .stride(2)
            .activation(Activation::Sigmoid);
        let segment_weight = sd.get4("segment.weight", segment_params.weight_shape())?;
        let segment_bias = sd.get1("segment.bias", 1)?;
        let segment = ConvTranspose2d::new(
            gpu,
            segment_params,
            segment_weight.view(),
            Some(segment_bias.view()),
        )?;
        Ok(SelfieSegmentation {
            stem,
            encoder,
            head_branch,
            head_gate,
            decoder,
            segment,
            segment_params,
            segment_weight,
            segment_bias,
        })
    }

    /// Checks an input shape: 3 channels, height and width positive multiples of 16.
    pub fn check_input(&self, input: [usize; 4]) -> Result<()> {
        if input[1] != 3 {
            return Err(Error::ShapeMismatch {
                name: "input",
                expected: vec![input[0], 3, input[2], input[3]],
                actual: input.to_vec(),
            });
        }
        if input[0] == 0
            || input[2] == 0
            || input[3] == 0
            || !input[2].is_multiple_of(16)
            || !input[3].is_multiple_of(16)
        {
            return Err(invalid(
                "input",
                format!(
                    "height and width must be positive multiples of 16 (the encoder halves \
                     them four times and the decoder doubles them back), got {:?}",
                    input
                ),
            ));
        }
        Ok(())
    }

    /// Records the whole network into `rec` (one submission when the caller submits); the
    /// result is `[N, 1, H, W]` probabilities.
    pub fn forward(&self, rec: &mut Recorder<'_>, x: &Tensor) -> Result<Tensor> {
        self.check_input(x.shape())?;
        let half = self.stem.forward(rec, x)?;
        let mut skips = vec![half.clone()];
        let mut y = half;
        for (i, b) in self.encoder.iter().enumerate() {
            y = b.block.forward(rec, &y)?;
            if SKIP_BLOCKS.contains(&i) {
                skips.push(y.clone());
            }
        }
        let pooled = GlobalPool::Avg.forward(rec, &y)?;
        let gate = self.head_gate.forward(rec, &pooled)?;
        let branch = self.head_branch.forward(rec, &y)?;
        drop((pooled, y));
        let mut h = scale_channels(rec, &branch, &gate, Activation::Sigmoid)?;
        drop((branch, gate));
        for stage in &self.decoder {
            let skip = skips.pop().expect("one skip per decoder stage");
            h = stage.forward(rec, h, skip)?;
        }
        self.segment.forward(rec, &h)
    }

    /// CPU reference forward, in the .tflite graph's order of operations.
    pub fn reference(&self, x: ArrayView4<f32>) -> Result<Array4<f32>> {
        let shape: [usize; 4] = x.shape().try_into().expect("4-D view");
        self.check_input(shape)?;
        let half = self.stem.reference(x)?;
        let mut y = half.clone();
        let mut skips = vec![half];
        for (i, b) in self.encoder.iter().enumerate() {
            y = b.block.reference(y.view())?;
            if SKIP_BLOCKS.contains(&i) {
                skips.push(y.clone());
            }
        }
        let pooled = reference::pool::global_pool(GlobalPool::Avg, y.view())?;
        let gate = self.head_gate.reference(pooled.view())?;
        let branch = self.head_branch.reference(y.view())?;
        let mut h =
            reference::channel::scale_channels(branch.view(), gate.view(), Activation::Sigmoid);
        for stage in &self.decoder {
            let skip = skips.pop().expect("one skip per decoder stage");
            h = stage.reference(h.view(), skip.view())?;
        }
        reference::conv_transpose::conv_transpose2d(
            &self.segment_params,
            h.view(),
            self.segment_weight.view(),
            Some(self.segment_bias.view()),
        )
    }

    /// Every layer with its output shape, parameters and MACs (the decoder's 1x1
    /// convolutions counted at the resized size, as in the graph).
    pub fn summary(&self, input: [usize; 4]) -> Result<Summary> {
        self.check_input(input)?;
        let mut s = Summary::default();
        let mut shape = s.push("conv2d (stem)", &self.stem, input)?;
        for b in &self.encoder {
            shape = b.summary(&mut s, shape)?;
        }
        let pooled = [shape[0], shape[1], 1, 1];
        s.push("conv2d_30 (head gate)", &self.head_gate, pooled)?;
        shape = s.push("conv2d_29 (head)", &self.head_branch, shape)?;
        for stage in &self.decoder {
            shape = stage.summary(&mut s, shape)?;
        }
        let cost = self.segment.cost(shape)?;
        s.push_cost(
            "segment (transposed)".to_string(),
            self.segment_params.output_shape(shape)?,
            cost,
        );
        Ok(s)
    }
}
