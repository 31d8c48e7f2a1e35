//! SegFormer as Hugging Face transformers builds it (`SegformerForSemanticSegmentation`)
//! beyond the networks harness (`tests/networks.rs` runs the golden cases of
//! `tests/golden/networks/` made with transformers under its checkpoints' names):
//! transformers' parameter counts of B0 to B5, the names the presets take, the CPU
//! reference against PyTorch to f32 precision, the logits resized to the input, and typed
//! errors for configurations and inputs it cannot run.

mod common;

use segblocks::networks::{HfSegformer, HfSegformerConfig};
use segblocks::{Error, StateDict};

/// `sum(p.numel() for p in SegformerForSemanticSegmentation(config).parameters())` of the
/// Hub's B0 .. B5 configurations, for ADE20K's 150 classes and Cityscapes' 19
/// (SegFormer-B0 on ADE20K: 3.75 M, as published).
#[test]
fn parameters_are_transformers() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let counts = [
        (3_752_694, 3_719_027),
        (13_715_798, 13_682_131),
        (27_461_974, 27_361_235),
        (47_337_814, 47_237_075),
        (64_108_374, 64_007_635),
        (84_708_694, 84_607_955),
    ];
    for (variant, (ade, cityscapes)) in counts.into_iter().enumerate() {
        // Cityscapes' head for B0 only: the weights of every model are made up.
        let heads = if variant == 0 {
            &[(150, ade), (19, cityscapes)][..]
        } else {
            &[(150, ade)]
        };
        for &(labels, params) in heads {
            let cfg = HfSegformerConfig::b(variant, labels).unwrap();
            let net = HfSegformer::load(gpu, cfg, &sd, "").unwrap();
            let summary = net.summary([1, 3, 512, 512]).unwrap();
            assert_eq!(
                summary.total_params(),
                params,
                "B{variant}, {labels} labels"
            );
        }
    }
}

/// The Hub's names pick the variant; other names and variants are typed errors.
#[test]
fn names_pick_the_variant() {
    let b = |v| HfSegformerConfig::b(v, 150).unwrap();
    for (name, variant) in [
        ("nvidia/segformer-b0-finetuned-ade-512-512", 0),
        ("nvidia/segformer-b5-finetuned-cityscapes-1024-1024", 5),
        ("segformer-b2-finetuned-ade-512-512", 2),
        ("nvidia/mit-b3", 3),
        ("b1", 1),
    ] {
        assert_eq!(
            HfSegformerConfig::from_name(name, 150).unwrap(),
            b(variant),
            "{name}"
        );
    }
    for name in ["nvidia/segformer-b6", "nvidia/mit-b", "resnet50", "b10"] {
        assert!(
            matches!(
                HfSegformerConfig::from_name(name, 150),
                Err(Error::InvalidParam { name: "name", .. })
            ),
            "{name}"
        );
    }
    assert!(matches!(
        HfSegformerConfig::b(6, 150),
        Err(Error::InvalidParam {
            name: "variant",
            ..
        })
    ));
}

/// transformers' `config.json` read as it is: fields left out take `SegformerConfig`'s
/// defaults, the classes are `id2label`'s; what this network does not build and what is
/// not a configuration are typed errors naming the field. (`tests/networks.rs` reads the
/// config.json transformers wrote for each golden case.)
#[test]
fn config_json_is_read_with_transformers_defaults() {
    let b2 = r#"{"model_type": "segformer", "hidden_sizes": [64, 128, 320, 512],
        "depths": [3, 4, 6, 3], "decoder_hidden_size": 768,
        "id2label": {"0": "wall", "1": "building", "2": "sky"},
        "label2id": {"wall": 0, "building": 1, "sky": 2}, "layer_norm_eps": 1e-6}"#;
    let cfg = HfSegformerConfig::from_config_json(b2).unwrap();
    assert_eq!(cfg, HfSegformerConfig::b(2, 3).unwrap());
    // Nothing given: SegFormer-B0 with transformers' two labels.
    let cfg = HfSegformerConfig::from_config_json("{}").unwrap();
    assert_eq!(cfg, HfSegformerConfig::b(0, 2).unwrap());
    let cfg = HfSegformerConfig::from_config_json(r#"{"num_labels": 5}"#).unwrap();
    assert_eq!(cfg.num_labels, 5);
    let named = |json: &str| match HfSegformerConfig::from_config_json(json) {
        Err(Error::InvalidParam { name, .. }) => name,
        other => panic!("{json}: {other:?}"),
    };
    assert_eq!(named("{"), "config");
    assert_eq!(named(r#"{"model_type": "beit"}"#), "model_type");
    assert_eq!(named(r#"{"hidden_act": "relu"}"#), "hidden_act");
    assert_eq!(named(r#"{"num_encoder_blocks": 3}"#), "num_encoder_blocks");
    assert_eq!(
        named(r#"{"reshape_last_stage": false}"#),
        "reshape_last_stage"
    );
    assert_eq!(named(r#"{"depths": [2, 2, 2]}"#), "depths");
    assert_eq!(named(r#"{"strides": [4, 2, "2", 2]}"#), "strides");
    assert_eq!(named(r#"{"sr_ratios": 8}"#), "sr_ratios");
    assert_eq!(named(r#"{"num_channels": -1}"#), "num_channels");
    assert_eq!(named(r#"{"id2label": [0, 1]}"#), "id2label");
}

/// The golden case with mixed patch embeddings, strides and Mix-FFN ratios (two input
/// channels).
fn narrow() -> HfSegformerConfig {
    HfSegformerConfig {
        num_channels: 2,
        hidden_sizes: [8, 16, 24, 12],
        depths: [1, 2, 1, 1],
        num_attention_heads: [2, 4, 3, 1],
        sr_ratios: [4, 2, 1, 1],
        patch_sizes: [5, 3, 2, 3],
        strides: [4, 2, 2, 1],
        mlp_ratios: [2, 4, 3, 1],
        decoder_hidden_size: 10,
        num_labels: 3,
        resize_to_input: false,
    }
}

/// The CPU reference against PyTorch's float64 logits (batch norm calibrated, every
/// activation at unit scale) to f32 precision: 6.7e-7 relative, where smp's layer-norm
/// epsilon (1e-6 in place of transformers' 1e-5) gives 5.6e-6; with `resize_to_input`
/// the GPU's logits at the input's size are the reference's.
#[test]
fn reference_matches_pytorch_and_resizes_to_the_input() {
    let dir = format!("{}/tests/golden/networks", env!("CARGO_MANIFEST_DIR"));
    let file = StateDict::load(format!(
        "{dir}/hf_segformer_narrow_mixed_calibrated.safetensors"
    ))
    .unwrap();
    let x = common::stored4(&file, "x").unwrap();
    let want = common::stored4(&file, "out").unwrap();
    // The calibrated batch norm's statistics are in the case's file.
    let mut sd = StateDict::synthetic();
    for n in ["running_mean", "running_var"] {
        let name = format!("decode_head.batch_norm.{n}");
        sd.insert(name.clone(), file.tensor(&name).unwrap().clone());
    }
    let gpu = common::gpu();
    let net = HfSegformer::load(gpu, narrow(), &sd, "").unwrap();
    let got = net.reference(x.view()).unwrap();
    let err = common::relative(&got, &want);
    assert!(err < 2e-6, "{err}");

    let net = HfSegformer::load(gpu, narrow().resize_to_input(true), &sd, "").unwrap();
    assert_eq!(net.output_shape([1, 2, 37, 50]).unwrap(), [1, 3, 37, 50]);
    let mut rec = gpu.recorder();
    let y = net
        .forward(&mut rec, &gpu.upload(x.view()).unwrap())
        .unwrap();
    let y = rec.download(&y).unwrap();
    let resized = net.reference(x.view()).unwrap();
    let err = common::relative(&y, &resized);
    assert!(err < 1e-4, "{err}");
}

/// The logits at the first stage's size for any size its layers take; other channel
/// counts, a map too small for a spatial reduction, and configurations with a zero or
/// heads that do not divide their stage are typed errors naming what is wrong.
#[test]
fn inputs_and_configurations_it_cannot_run_are_typed_errors() {
    let gpu = common::gpu();
    let sd = StateDict::synthetic();
    let cfg = HfSegformerConfig::b(0, 5).unwrap().decoder_hidden_size(16);
    let net = HfSegformer::load(gpu, cfg, &sd, "").unwrap();
    assert_eq!(net.output_shape([2, 3, 45, 61]).unwrap(), [2, 5, 12, 16]);
    assert_eq!(net.output_shape([1, 3, 64, 64]).unwrap(), [1, 5, 16, 16]);
    assert!(matches!(
        net.output_shape([1, 4, 64, 64]),
        Err(Error::ShapeMismatch { name: "input", .. })
    ));
    // Stage 1 at 4 x 4 cannot take its 8 x 8 spatial reduction (PyTorch refuses too).
    assert!(net.output_shape([1, 3, 16, 16]).is_err());
    let bad = |cfg: HfSegformerConfig| match HfSegformer::load(gpu, cfg, &sd, "") {
        Err(Error::InvalidParam { name, .. }) => name,
        other => panic!("{cfg:?}: {other:?}"),
    };
    assert_eq!(
        bad(HfSegformerConfig {
            num_labels: 0,
            ..cfg
        }),
        "num_labels"
    );
    assert_eq!(bad(cfg.decoder_hidden_size(0)), "decoder_hidden_size");
    assert_eq!(bad(cfg.num_channels(0)), "num_channels");
    let heads = [1, 3, 5, 8];
    assert_eq!(
        bad(HfSegformerConfig {
            num_attention_heads: heads,
            ..cfg
        }),
        "num_heads"
    );
    let patch_sizes = [7, 0, 3, 3];
    assert_eq!(bad(HfSegformerConfig { patch_sizes, ..cfg }), "patch_sizes");
    let strides = [4, 2, 0, 2];
    assert_eq!(bad(HfSegformerConfig { strides, ..cfg }), "strides");
    let mlp_ratios = [4, 4, 4, 0];
    assert_eq!(bad(HfSegformerConfig { mlp_ratios, ..cfg }), "mlp_ratios");
    assert!(HfSegformer::load(gpu, cfg, &StateDict::new(), "").is_err());
}
