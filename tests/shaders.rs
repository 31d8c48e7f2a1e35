//! Every WGSL file is parsed and validated by naga, specialised with its default override
//! values, and translated to SPIR-V (Vulkan), MSL (Metal), HLSL (DX12) and GLSL ES 3.1
//! (GL), so a portability problem shows up here rather than on a user's machine.

use naga::back::PipelineConstants;
use naga::valid::{Capabilities, ValidationFlags, Validator};

fn validate(module: &naga::Module) -> naga::valid::ModuleInfo {
    Validator::new(ValidationFlags::all(), Capabilities::default())
        .validate(module)
        .unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn every_shader_file_is_embedded() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".wgsl"))
        .collect();
    on_disk.sort();
    let mut embedded: Vec<String> = segblocks::shaders::files().map(String::from).collect();
    embedded.sort();
    assert_eq!(on_disk, embedded, "shaders/ and src/shaders.rs disagree");
}

#[test]
fn shaders_validate_and_translate_to_every_backend() {
    let mut count = 0;
    for name in segblocks::shaders::names() {
        // The file's defaults, and every `@specialize` constant at its smallest value.
        let specs = segblocks::shaders::specializations(name);
        let ones: Vec<(&str, u32)> = specs.iter().map(|(n, _)| (n.as_str(), 1)).collect();
        for specialize in [Vec::new(), ones] {
            translate_everywhere(name, &specialize);
            count += 1;
        }
    }
    assert!(count >= 6, "expected the conv shaders, found {count}");
}

fn translate_everywhere(name: &str, specialize: &[(&str, u32)]) {
    {
        let source = segblocks::shaders::source(name, specialize).unwrap();
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&source)));
        let info = validate(&module);
        let ep = (naga::ShaderStage::Compute, "main");
        let (module, info) = naga::back::pipeline_constants::process_overrides(
            &module,
            &info,
            Some(ep),
            &PipelineConstants::default(),
        )
        .unwrap_or_else(|e| panic!("{name}: overrides: {e}"));
        let module = module.into_owned();
        let info = info.into_owned();
        // The specialised module must itself be valid (constant folding can expose
        // errors, e.g. a division by an override that is 0 in an unreachable branch).
        validate(&module);

        naga::back::spv::write_vec(
            &module,
            &info,
            &naga::back::spv::Options::default(),
            Some(&naga::back::spv::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: "main".into(),
            }),
        )
        .unwrap_or_else(|e| panic!("{name}: SPIR-V: {e}"));

        let msl_options = naga::back::msl::Options {
            lang_version: (2, 1),
            ..Default::default()
        };
        naga::back::msl::write_string(
            &module,
            &info,
            &msl_options,
            &naga::back::msl::PipelineOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{name}: MSL: {e}"));

        let mut hlsl = String::new();
        let hlsl_options = naga::back::hlsl::Options::default();
        let hlsl_pipeline = naga::back::hlsl::PipelineOptions::default();
        naga::back::hlsl::Writer::new(&mut hlsl, &hlsl_options, &hlsl_pipeline)
            .write(&module, &info, None)
            .unwrap_or_else(|e| panic!("{name}: HLSL: {e}"));

        let mut glsl = String::new();
        let glsl_options = naga::back::glsl::Options::default();
        let glsl_pipeline = naga::back::glsl::PipelineOptions {
            shader_stage: naga::ShaderStage::Compute,
            entry_point: "main".into(),
            multiview: None,
        };
        naga::back::glsl::Writer::new(
            &mut glsl,
            &module,
            &info,
            &glsl_options,
            &glsl_pipeline,
            naga::proc::BoundsCheckPolicies::default(),
        )
        .and_then(|mut w| w.write().map(|_| ()))
        .unwrap_or_else(|e| panic!("{name}: GLSL: {e}"));
    }
}
