//! MediaPipe's selfie segmentation network (`selfie_segmentation.tflite`, Apache-2.0), built
//! from the library's blocks: a MobileNetV3-style encoder (hard-swish stem, eight inverted
//! residuals, five with squeeze-and-excitation), an LR-ASPP-like head (a ReLU branch gated
//! by a sigmoid of the pooled features), three decoder stages that resize by 2x, gate the
//! encoder's skip connection with an SE-style channel attention and refine with a 1x1 and
//! a residual depthwise 3x3, and a 2x2 stride-2 transposed convolution to one sigmoid
//! channel: the probability that a pixel belongs to a person.
//!
//! The decoder applies each 1x1 convolution before the 2x resize that precedes it in the
//! .tflite graph: both are linear and the bilinear weights of every output pixel sum to 1
//! (so the bias passes through), so the function is the same at a quarter of the
//! convolution's work and a fraction of the resize's traffic.
//!
//! Weights come from `models/selfie_segmentation/model.safetensors`, converted from the
//! .tflite file by `tests/golden/make_golden_selfie.py` into PyTorch layouts under the
//! TFLite layer names (`conv2d_3.weight`, `depthwise_conv2d_7.bias`, `segment.weight`);
//! the landscape model (`landscape.safetensors`) has the same layers and names but for
//! the last, `conv2d_transpose`.
//! TFLite's strided convolutions pad TensorFlow's `'SAME'` way, one more row and column
//! after than before ([`tf_same_padding`]); the GPU convolutions take that padding as is.

use crate::blocks::{
    v3_block_graph, Architecture, ConvBnAct, DecoderStageNode, Graph, LrAsppHeadNode,
    MobileNetV3Config, Model, SeNode, ValueId,
};
use crate::error::{fail_if, Error, Result};
use crate::gpu::Gpu;
use crate::ops::attention::SqueezeExcitationParams;
use crate::ops::conv::{tf_same_padding, Conv2dParams};
use crate::ops::conv_transpose::ConvTranspose2dParams;
use crate::ops::decoder_stage::{select_kernel, DecoderStageKernel, DecoderStageParams, StageTail};
use crate::ops::lraspp_head::LrAsppHeadParams;
use crate::ops::Activation;
use crate::weights::StateDict;

/// The encoder as the .tflite graph has it, one inverted residual a row: channels (input,
/// expanded, output), depthwise kernel and stride, hard-swish (else ReLU), and the SE's
/// squeezed channels. The TFLite layer names follow from the table: block `i` is
/// `conv2d_{a}` (expansion), `depthwise_conv2d_{i}` (`depthwise_conv2d` for block 0), SE
/// `conv2d_{a + 1}` / `conv2d_{a + 2}` when present, then the projection; `a` counts on.
type BlockRow = ([usize; 3], usize, usize, bool, Option<usize>);
const ENCODER: [BlockRow; 8] = [
    ([16, 16, 16], 3, 2, false, Some(8)),
    ([16, 72, 24], 3, 2, false, None),
    ([24, 88, 24], 3, 1, false, None),
    ([24, 96, 32], 5, 2, true, Some(24)),
    ([32, 128, 32], 5, 1, true, Some(32)),
    ([32, 128, 32], 5, 1, true, Some(32)),
    ([32, 96, 32], 5, 1, true, Some(24)),
    ([32, 96, 32], 5, 1, true, Some(24)),
];

/// Encoder blocks whose outputs are the decoder's skips (at 1/4 and 1/8 of the input; the
/// stem's output at 1/2 is the third).
const SKIP_BLOCKS: [usize; 2] = [0, 2];

/// Decoder stages' input and output channels. Stage `j`'s layers are `conv2d_{31 + 4j}`
/// (resize 1x1), `conv2d_{32 + 4j}` / `conv2d_{33 + 4j}` (gate fc1 / fc2),
/// `conv2d_{34 + 4j}` (refine 1x1) and `depthwise_conv2d_{8 + j}`.
const DECODER: [(usize, usize); 3] = [(128, 24), (24, 16), (16, 16)];

fn conv2d(n: usize) -> String {
    format!("conv2d_{n}")
}

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

/// Inverted residual `index` of the encoder, its first layer `conv2d_{first}`: a
/// [`MobileNetV3Block`] (expansion always present, SE with a sigmoid gate, biases and no
/// batch norm) loaded under the TFLite layer names. Returns the graph and the next
/// block's first layer number.
fn encoder_block(
    (gpu, sd): (&Gpu, &StateDict),
    index: usize,
    first: usize,
    row: BlockRow,
) -> Result<(Graph, usize)> {
    let ([input, hidden, out], kernel, stride, hard_swish, squeeze) = row;
    let act = if hard_swish {
        Activation::HardSwish
    } else {
        Activation::Relu
    };
    let depthwise_name = match index {
        0 => "depthwise_conv2d".to_string(),
        i => format!("depthwise_conv2d_{i}"),
    };
    let expand = Conv2dParams::new(input, hidden, 1).activation(act);
    let expand = load_conv(gpu, sd, expand, &conv2d(first))?;
    let depthwise = Conv2dParams::depthwise(hidden, 1, kernel)
        .stride(stride)
        .activation(act);
    let depthwise = load_conv(gpu, sd, same_conv(depthwise), &depthwise_name)?;
    let se = match squeeze {
        Some(s) => {
            let params = SqueezeExcitationParams::new(hidden, s);
            Some(SeNode::load(
                gpu,
                sd,
                params,
                &conv2d(first + 1),
                &conv2d(first + 2),
            )?)
        }
        None => None,
    };
    let last = first + 1 + 2 * usize::from(squeeze.is_some());
    let project = load_conv(gpu, sd, Conv2dParams::new(hidden, out, 1), &conv2d(last))?;
    let cfg = MobileNetV3Config {
        input_channels: input,
        kernel,
        expanded_channels: hidden,
        out_channels: out,
        use_se: squeeze.is_some(),
        use_hs: hard_swish,
        stride,
        dilation: 1,
    };
    let se_name = format!("{depthwise_name} (SE)");
    let names = [&conv2d(first), &depthwise_name, &se_name, &conv2d(last)];
    let names = names.map(|n| n.as_str());
    let block = v3_block_graph(gpu, &cfg, (Some(expand), depthwise, se, project), names)?;
    Ok((block, last + 1))
}

/// What follows a decoder stage in its pass: the next stage's 1x1 convolution
/// `conv2d_{31 + 4 (index + 1)}` to `.0` channels, or the network's last layer (a
/// transposed convolution and its weights' name).
enum StageEnd<'a> {
    Projection(usize),
    Head(ConvTranspose2dParams, &'a str),
}

/// Appends a decoder stage to `g` on `low` (the 1x1 convolution `conv2d_{31 + 4 index}`
/// of the previous stage's output, at its resolution, computed in that stage's pass): a
/// channel gate on `skip` computed from `skip + resize(low)` (the mean of a 2x bilinear
/// resize is the mean of its input, so neither the resize nor the sum is materialised),
/// then, as one [`DecoderStageNode`], `z = gated skip + resize(low)`, `a = relu(1x1(z))`
/// and `a + relu(depthwise 3x3(a))`, and `end` after it.
fn decoder_stage(
    g: &mut Graph,
    (low, skip): (ValueId, ValueId),
    (gpu, sd): (&Gpu, &StateDict),
    (index, c): (usize, usize),
    end: StageEnd<'_>,
) -> Result<ValueId> {
    let first = 31 + 4 * index;
    let convs = [0, 1, 2, 3].map(|k| conv2d(first + k));
    let depthwise_name = format!("depthwise_conv2d_{}", 8 + index);
    let gate = SeNode::load(
        gpu,
        sd,
        SqueezeExcitationParams::new(c, c),
        &convs[1],
        &convs[2],
    )?;
    let s = g.add(
        format!("{} / {} (gate)", convs[1], convs[2]),
        gate.gate_of_sum(),
        &[skip, low],
    );
    // TensorFlow's 'SAME' padding of a stride-1 3x3 is the symmetric (1, 1) the stage uses.
    let mut stage = DecoderStageNode::load(
        gpu,
        sd,
        DecoderStageParams::new(c, c),
        &convs[3],
        &depthwise_name,
    )?;
    let mut name = format!("resize + gated skip + {} + {depthwise_name}", convs[3]);
    match end {
        StageEnd::Head(params, prefix) => {
            stage = stage.with_head(sd, params, prefix)?;
            name = format!("{name} + {prefix} (transposed)");
        }
        StageEnd::Projection(next_c) => {
            let prefix = conv2d(first + 4);
            let params = Conv2dParams::new(c, next_c, 1);
            // The projection joins the stage's pass where the stage runs fused (its kernel
            // choice does not depend on the map's size). Where it runs as layers (CPU
            // adapters) it stays a node of its own: the graph then frees the stage's
            // inputs before the projection's output is allocated, which keeps the
            // recording's buffer reuse (and peak memory) as it was.
            let tail = StageTail::Projection(&params);
            let probe = [1, c, 16, 16];
            if select_kernel(&DecoderStageParams::new(c, c), tail, probe, gpu.caps())
                == DecoderStageKernel::Fused
            {
                stage = stage.with_projection(sd, params, &prefix)?;
                name = format!("{name} + {prefix}");
            } else {
                let out = g.add(name, stage, &[skip, s, low]);
                let conv = load_conv(gpu, sd, params, &prefix)?;
                return Ok(g.add(prefix, conv, &[out]));
            }
        }
    }
    Ok(g.add(name, stage, &[skip, s, low]))
}

/// Which of MediaPipe's selfie segmentation models (the same architecture and layer
/// names, trained at different sizes; both in the `mediapipe==0.10.14` wheel).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SelfieModel {
    /// `selfie_segmentation.tflite`, trained at 256 x 256
    /// (`models/selfie_segmentation/model.safetensors`).
    #[default]
    Square,
    /// `selfie_segmentation_landscape.tflite`, trained at 144 x 256 (height x width)
    /// (`models/selfie_segmentation/landscape.safetensors`); its last layer is named
    /// `conv2d_transpose`.
    Landscape,
}

impl SelfieModel {
    /// The input `(height, width)` the model was trained at.
    pub fn input_size(&self) -> (usize, usize) {
        match self {
            SelfieModel::Square => (256, 256),
            SelfieModel::Landscape => (144, 256),
        }
    }

    /// The converted weights' file name under `models/selfie_segmentation/`.
    pub fn weights_file(&self) -> &'static str {
        match self {
            SelfieModel::Square => "model.safetensors",
            SelfieModel::Landscape => "landscape.safetensors",
        }
    }

    /// The converted weights shipped with the crate (`models/selfie_segmentation/`).
    pub fn bundled_weights(&self) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models/selfie_segmentation")
            .join(self.weights_file())
    }

    /// The name of the last layer (the transposed convolution) in the converted file.
    fn last_layer(&self) -> &'static str {
        match self {
            SelfieModel::Square => "segment",
            SelfieModel::Landscape => "conv2d_transpose",
        }
    }
}

impl std::str::FromStr for SelfieModel {
    type Err = Error;

    /// `square` or `landscape`.
    fn from_str(name: &str) -> Result<Self> {
        match name {
            "square" => Ok(SelfieModel::Square),
            "landscape" => Ok(SelfieModel::Landscape),
            other => Err(crate::error::invalid(
                "model",
                format!("square or landscape, got {other:?}"),
            )),
        }
    }
}

/// MediaPipe's selfie segmentation network for inference: input `[N, 3, H, W]` RGB in
/// `[0, 1]` (the models were trained at [`SelfieModel::input_size`]; H and W must be
/// multiples of 16), output `[N, 1, H, W]` person probabilities.
pub type SelfieSegmentation = Model<SelfieModel>;

impl SelfieSegmentation {
    /// The input size the square model was trained at ([`SelfieModel::input_size`] for
    /// either).
    pub const INPUT_SIZE: (usize, usize) = (256, 256);
}

impl Architecture for SelfieModel {
    /// Builds the network from the converted weights (see the module docs for the names)
    /// under `prefix` (empty for the converted file); errors name the missing or
    /// mis-shaped tensor.
    fn build(&self, gpu: &Gpu, sd: &StateDict, prefix: &str) -> Result<Graph> {
        fail_if(!prefix.is_empty(), "prefix", || {
            format!("the converted model's names have no prefix, got {prefix:?}")
        })?;
        let stem = Conv2dParams::new(3, 16, 3)
            .stride(2)
            .activation(Activation::HardSwish);
        let mut g = Graph::new();
        let x = g.input();
        let half = g.add(
            "conv2d (stem)",
            load_conv(gpu, sd, same_conv(stem), "conv2d")?,
            &[x],
        );
        let mut skips = vec![half];
        let mut y = half;
        let mut first = 1;
        for (i, &row) in ENCODER.iter().enumerate() {
            let (block, next) = encoder_block((gpu, sd), i, first, row)?;
            y = g.add("", block, &[y]);
            first = next;
            if SKIP_BLOCKS.contains(&i) {
                skips.push(y);
            }
        }
        // The LR-ASPP-like head and the first decoder stage's 1x1, which follows it at the
        // same resolution: relu(conv2d_29(y)) * sigmoid(conv2d_30(pool(y))), then
        // conv2d_31, one node.
        let head = LrAsppHeadNode::load(
            gpu,
            sd,
            LrAsppHeadParams::new(32, 128, DECODER[0].1),
            ["conv2d_29", "conv2d_30", "conv2d_31"],
            true,
        )?;
        let mut low = g.add("conv2d_29 / conv2d_30 / conv2d_31 (head)", head, &[y]);
        // The last layer runs in the last stage's pass.
        let segment = ConvTranspose2dParams::new(16, 1, 2)
            .stride(2)
            .activation(Activation::Sigmoid);
        // Each stage but the last ends with the next one's 1x1 (its `low` input).
        for (j, &(_, c)) in DECODER.iter().enumerate() {
            let skip = skips.pop().expect("one skip per decoder stage");
            let end = match DECODER.get(j + 1) {
                Some(&(_, next_c)) => StageEnd::Projection(next_c),
                None => StageEnd::Head(segment, self.last_layer()),
            };
            low = decoder_stage(&mut g, (low, skip), (gpu, sd), (j, c), end)?;
        }
        g.set_outputs(&[low]);
        Ok(g)
    }

    /// Checks an input shape: 3 channels, height and width positive multiples of 16.
    fn check_input(&self, input: [usize; 4]) -> Result<()> {
        if input[1] != 3 {
            return Err(Error::ShapeMismatch {
                name: "input",
                expected: vec![input[0], 3, input[2], input[3]],
                actual: input.to_vec(),
            });
        }
        fail_if(
            input[0] == 0
                || input[2] == 0
                || input[3] == 0
                || !input[2].is_multiple_of(16)
                || !input[3].is_multiple_of(16),
            "input",
            || {
                format!(
                    "height and width must be positive multiples of 16 (the encoder halves \
                     them four times and the decoder doubles them back), got {:?}",
                    input
                )
            },
        )?;
        Ok(())
    }
}
