//! MediaPipe's selfie segmentation network end to end: the GPU mask against TFLite's own
//! output for the same photo (tests/golden/make_golden_selfie.py), the CPU reference
//! against both, one submission, no recompilation, and peak device memory.

mod common;

use ndarray::Array4;
use segblocks::networks::{SelfieModel, SelfieSegmentation};
use segblocks::{Error, Gpu, StateDict};

const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/models/selfie_segmentation/model.safetensors"
);

/// The golden input: examples/data/astronaut.png (512 x 512) reduced to 256 x 256 by 2x2
/// box averaging of the 8-bit pixels, scaled to [0, 1], exactly as the golden script does.
fn astronaut_256() -> Array4<f32> {
    let img = image::open(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/data/astronaut.png"
    ))
    .unwrap()
    .to_rgb8();
    assert_eq!(img.dimensions(), (512, 512));
    Array4::from_shape_fn([1, 3, 256, 256], |(_, c, y, x)| {
        let sum: u32 = [(0, 0), (0, 1), (1, 0), (1, 1)]
            .iter()
            .map(|&(dy, dx)| img.get_pixel(2 * x as u32 + dx, 2 * y as u32 + dy)[c] as u32)
            .sum();
        sum as f32 / 1020.0
    })
}

/// The landscape golden input: rows 112 .. 400 of the astronaut (288 x 512), reduced to
/// 144 x 256 the same way.
fn astronaut_band() -> Array4<f32> {
    let img = image::open(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/data/astronaut.png"
    ))
    .unwrap()
    .to_rgb8();
    Array4::from_shape_fn([1, 3, 144, 256], |(_, c, y, x)| {
        let sum: u32 = [(0, 0), (0, 1), (1, 0), (1, 1)]
            .iter()
            .map(|&(dy, dx)| img.get_pixel(2 * x as u32 + dx, 112 + 2 * y as u32 + dy)[c] as u32)
            .sum();
        sum as f32 / 1020.0
    })
}

fn golden_mask() -> Array4<f32> {
    let sd = StateDict::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/selfie/mask.safetensors"
    ))
    .unwrap();
    sd.get4("mask", [1, 1, 256, 256]).unwrap()
}

fn mean_and_max_abs(a: &Array4<f32>, b: &Array4<f32>) -> (f64, f64) {
    assert_eq!(a.shape(), b.shape());
    let mut sum = 0.0f64;
    let mut max = 0.0f64;
    for (x, y) in a.iter().zip(b.iter()) {
        let d = (*x as f64 - *y as f64).abs();
        assert!(d.is_finite(), "non-finite output");
        sum += d;
        max = max.max(d);
    }
    (sum / a.len() as f64, max)
}

#[test]
fn gpu_mask_matches_tflite_in_one_submission() {
    // A context of its own, so that the pipeline and memory counters see this test only.
    let gpu = Gpu::new().unwrap();
    let net = SelfieSegmentation::load(
        &gpu,
        SelfieModel::Square,
        &StateDict::load(MODEL).unwrap(),
        "",
    )
    .unwrap();
    let x = astronaut_256();
    let golden = golden_mask();
    let xt = gpu.upload(x.view()).unwrap();
    // The first pass compiles the pipelines and uploads the weights of every kernel.
    let compiled_before = gpu.pipelines_created();
    let mut rec = gpu.recorder();
    let y = net.forward(&mut rec, &xt).unwrap();
    let first = rec.download(&y).unwrap();
    drop(y);
    let compiled = gpu.pipelines_created();
    assert!(compiled > compiled_before);
    let input_bytes = (x.len() * 4) as u64;
    let weights = gpu.memory_stats().live_bytes - input_bytes;

    gpu.reset_peak_memory();
    let mut rec = gpu.recorder();
    let y = net.forward(&mut rec, &xt).unwrap();
    let dispatches = rec.dispatch_count();
    let reused = rec.buffers_reused();
    let mask = rec.download(&y).unwrap();
    let peak = gpu.memory_stats().peak_live_bytes;
    // The second pass compiled nothing and gave the same mask.
    assert_eq!(gpu.pipelines_created(), compiled);
    assert_eq!(first, mask);

    let (mean, max) = mean_and_max_abs(&mask, &golden);
    eprintln!(
        "selfie GPU vs TFLite: mean abs {mean:.2e}, max abs {max:.2e}; {dispatches} dispatches, \
         {reused} outputs in reused buffers; peak {peak} bytes (weights {weights})"
    );
    assert!(mean < 1e-3, "mean abs difference {mean} to TFLite's mask");
    // The mask is a real segmentation: about half the photo is the astronaut.
    let person = mask.iter().filter(|&&p| p > 0.5).count() as f64 / mask.len() as f64;
    assert!((0.4..0.7).contains(&person), "person fraction {person}");

    // Liveness reuse. Peak memory counts the weights, the input, every buffer the
    // recording uses, uniforms and the readback buffer. The largest pair of activations
    // one op reads and writes is 2 MiB (two 16 x 128 x 128 maps). Without reuse the peak is
    // about 10 MB; with it, 5.7 MB = weights + 2.5 x that pair: the target of 2x is
    // not met, because buffers are reused whole (no sub-allocation), so a 1.15 MB
    // expansion cannot take the place of a freed 1 MiB one; the greedy reuse also depends
    // on the order of allocations (fusing the SE scales into the projections removed five
    // expanded maps, yet moved the peak from 5.89 to 6.02 MB; uploading only the weights of
    // the kernels that run then took it to 5.72 MB). This bound catches a loss of the reuse.
    assert!(reused > 0);
    // The weights are on the device once, in the layout of the kernels that ran: the
    // fused kernels' copies go up only where they run (size classes and channel padding
    // add a few percent).
    let params = net.summary([1, 3, 256, 256]).unwrap().total_params();
    assert!(
        weights <= params * 4 * 5 / 4,
        "weights take {weights} bytes of device memory for {params} parameters"
    );
    let largest_pair = 2 * 16 * 128 * 128 * 4;
    assert!(
        peak <= weights + 13 * largest_pair / 5,
        "peak {peak} > weights {weights} + 2.6 x {largest_pair}"
    );
}

/// The kernels a GPU gets (the fused head and decoder stages, the encoder's expanding
/// blocks as their layers) give TFLite's mask too, and so does every encoder block fused
/// (`GpuOptions::fuse_expanding_blocks`: those with SE in two passes around their gate),
/// in fewer dispatches.
#[test]
fn gpu_class_kernels_match_tflite() {
    let sd = StateDict::load(MODEL).unwrap();
    // The mask's mean and largest difference from TFLite's, and the dispatch counts.
    let run = |gpu: &segblocks::Gpu| {
        let net = SelfieSegmentation::load(gpu, SelfieModel::Square, &sd, "").unwrap();
        let mut rec = gpu.recorder();
        let y = net
            .forward(&mut rec, &gpu.upload(astronaut_256().view()).unwrap())
            .unwrap();
        let traffic = rec.traffic();
        let mask = rec.download(&y).unwrap();
        (
            mean_and_max_abs(&mask, &golden_mask()),
            common::fused_count(&traffic),
        )
    };
    let ((mean, _), counts) = run(&common::gpu_class());
    assert!(mean < 1e-3, "mean abs difference {mean} to TFLite's mask");
    // The fused head and 3 decoder stages; the encoder's blocks as their layers.
    assert_eq!(counts, (39, 4));
    let ((mean, max), counts) = run(&common::gpu_class_fused());
    eprintln!("selfie, GPU-class kernels, vs TFLite: mean abs {mean:.2e}, max abs {max:.2e}");
    assert!(mean < 1e-3, "mean abs difference {mean} to TFLite's mask");
    // 13 fused inverted residual passes (two per SE block, the gate computed in them), the
    // fused head, 3 fused decoder stages (the first two ending with the next one's 1x1,
    // the last with the transposed convolution) and their gates (one dispatch each, the
    // largest map's pooled first), and the stem.
    assert_eq!(counts, (23, 18));
}

#[test]
fn reference_matches_tflite_and_the_gpu_batch_of_two() {
    let gpu = common::gpu();
    let net = SelfieSegmentation::load(
        gpu,
        SelfieModel::Square,
        &StateDict::load(MODEL).unwrap(),
        "",
    )
    .unwrap();
    let x = astronaut_256();
    let want = net.reference(x.view()).unwrap();
    let (mean, max) = mean_and_max_abs(&want, &golden_mask());
    eprintln!("selfie reference vs TFLite: mean abs {mean:.2e}, max abs {max:.2e}");
    assert!(mean < 1e-4, "reference vs TFLite: mean abs {mean}");

    // Batch of two at a size other than the training one: the photo and its mirror image
    // at 256 x 128 (the right half), GPU against the reference.
    let half = x.slice(ndarray::s![.., .., .., 128..]).to_owned();
    let mirrored = half.slice(ndarray::s![.., .., .., ..;-1]).to_owned();
    let batch = ndarray::concatenate(ndarray::Axis(0), &[half.view(), mirrored.view()]).unwrap();
    let want = net.reference(batch.view()).unwrap();
    let xt = gpu.upload(batch.view()).unwrap();
    let mut rec = gpu.recorder();
    let y = net.forward(&mut rec, &xt).unwrap();
    let got = rec.download(&y).unwrap();
    assert_eq!(got.shape(), [2, 1, 256, 128]);
    let (mean, max) = mean_and_max_abs(&got, &want);
    eprintln!("selfie GPU vs reference (batch 2, 256 x 128): mean abs {mean:.2e}, max {max:.2e}");
    assert!(mean < 1e-5 && max < 1e-3, "mean {mean}, max {max}");
}

#[test]
fn summary_counts_the_tflite_parameters_and_bad_input_is_refused() {
    let gpu = common::gpu();
    let net = SelfieSegmentation::load(
        gpu,
        SelfieModel::Square,
        &StateDict::load(MODEL).unwrap(),
        "",
    )
    .unwrap();
    let summary = net.summary([1, 3, 256, 256]).unwrap();
    // The number of weights in the .tflite file (printed by the conversion script).
    assert_eq!(summary.total_params(), 106_401, "{summary}");
    assert_eq!(summary.rows.last().unwrap().output, [1, 1, 256, 256]);

    let mut rec = gpu.recorder();
    for shape in [[1, 3, 250, 256], [1, 3, 256, 8]] {
        let x = gpu.upload(Array4::zeros(shape).view()).unwrap();
        match net.forward(&mut rec, &x) {
            Err(Error::InvalidParam { name: "input", .. }) => {}
            other => panic!("{shape:?}: {other:?}"),
        }
    }
    let x = gpu.upload(Array4::zeros([1, 4, 32, 32]).view()).unwrap();
    assert!(matches!(
        net.forward(&mut rec, &x),
        Err(Error::ShapeMismatch { name: "input", .. })
    ));

    // A state dict without the last layer names it.
    let mut sd = StateDict::new();
    let full = StateDict::load(MODEL).unwrap();
    for name in full.names().filter(|n| !n.starts_with("segment.")) {
        sd.insert(name, full.tensor(name).unwrap().clone());
    }
    match SelfieSegmentation::load(gpu, SelfieModel::Square, &sd, "") {
        Err(e) => assert!(e.to_string().contains("segment.weight"), "{e}"),
        Ok(_) => panic!("loaded without segment.weight"),
    }
}

#[test]
fn the_landscape_model_matches_tflite() {
    let gpu = common::gpu();
    let model = SelfieModel::Landscape;
    let path = format!(
        "{}/models/selfie_segmentation/{}",
        env!("CARGO_MANIFEST_DIR"),
        model.weights_file()
    );
    let net = SelfieSegmentation::load(gpu, model, &StateDict::load(&path).unwrap(), "").unwrap();
    assert_eq!(model.input_size(), (144, 256));
    let golden = StateDict::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/selfie/landscape_mask.safetensors"
    ))
    .unwrap()
    .get4("mask", [1, 1, 144, 256])
    .unwrap();
    let x = astronaut_band();
    let mut rec = gpu.recorder();
    let y = net
        .forward(&mut rec, &gpu.upload(x.view()).unwrap())
        .unwrap();
    let got = rec.download(&y).unwrap();
    let (mean, max) = mean_and_max_abs(&got, &golden);
    eprintln!("landscape GPU vs TFLite: mean abs {mean:.2e}, max abs {max:.2e}");
    assert!(mean < 1e-3, "mean abs difference {mean} to TFLite's mask");
    let want = net.reference(x.view()).unwrap();
    let (mean, _) = mean_and_max_abs(&want, &golden);
    assert!(mean < 1e-4, "reference vs TFLite: mean abs {mean}");
    assert_eq!(
        net.summary([1, 3, 144, 256]).unwrap().total_params(),
        106_401
    );
    // The square model's weights lack the landscape's last layer: refused by name.
    match SelfieSegmentation::load(gpu, model, &StateDict::load(MODEL).unwrap(), "") {
        Err(e) => assert!(e.to_string().contains("conv2d_transpose.weight"), "{e}"),
        Ok(_) => panic!("loaded the square weights as the landscape model"),
    }
}
