//! Every WGSL file is parsed and validated by naga, specialised with its default override
//! values, and translated to SPIR-V (Vulkan), MSL (Metal), HLSL (DX12) and GLSL ES 3.1
//! (GL), so a portability problem shows up here rather than on a user's machine.
//!
//! The reflection test holds Rust and WGSL together: for every kernel the library
//! launches, the WGSL uniform struct has the Rust struct's name, field names and offsets
//! and size; the storage bindings have the names and access modes the Rust side binds,
//! in its order; the constants the Rust side sets are exactly those the shader declares;
//! the workgroup size is the declared one.

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
        // (F16 = 1, SUBGROUPS = 1 and HALF_MATH = 1 are the half-precision, subgroup and
        // f16-arithmetic forms, checked by their own tests.)
        let specs = segblocks::shaders::specializations(name);
        let ones: Vec<(&str, u32)> = specs
            .iter()
            .filter(|(n, _)| !segblocks::shaders::set_by_context(n))
            .map(|(n, _)| (n.as_str(), 1))
            .collect();
        for specialize in [Vec::new(), ones] {
            translate_everywhere(name, &specialize);
            count += 1;
        }
    }
    assert!(count >= 6, "expected the conv shaders, found {count}");
}

/// Translates a validated module to MSL 2.1 (panics naming `name` if naga cannot).
fn write_msl(name: &str, module: &naga::Module, info: &naga::valid::ModuleInfo) {
    let options = naga::back::msl::Options {
        lang_version: (2, 1),
        ..Default::default()
    };
    let pipeline = naga::back::msl::PipelineOptions::default();
    naga::back::msl::write_string(module, info, &options, &pipeline)
        .unwrap_or_else(|e| panic!("{name}: MSL: {e}"));
}

/// Parses and validates `source` (shader `name`, its `form` for messages) with naga's
/// `extra` capabilities, and translates it to SPIR-V 1.3, MSL 2.1 and HLSL 6.2: the
/// backends of the forms GL adapters never run (f16, subgroups).
fn translate_beyond_gl(name: &str, form: &str, source: &str, extra: Capabilities) {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
    let info = Validator::new(ValidationFlags::all(), Capabilities::default() | extra)
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name} ({form}): {}", e.emit_to_string(source)));
    let (module, info) = naga::back::pipeline_constants::process_overrides(
        &module,
        &info,
        Some((naga::ShaderStage::Compute, "main")),
        &PipelineConstants::default(),
    )
    .unwrap_or_else(|e| panic!("{name}: overrides: {e}"));
    let spv = naga::back::spv::Options {
        lang_version: (1, 3),
        ..Default::default()
    };
    naga::back::spv::write_vec(&module, &info, &spv, None)
        .unwrap_or_else(|e| panic!("{name}: SPIR-V: {e}"));
    write_msl(name, &module, &info);
    let mut hlsl = String::new();
    naga::back::hlsl::Writer::new(
        &mut hlsl,
        &naga::back::hlsl::Options {
            shader_model: naga::back::hlsl::ShaderModel::V6_2,
            ..Default::default()
        },
        &naga::back::hlsl::PipelineOptions::default(),
    )
    .write(&module, &info, None)
    .unwrap_or_else(|e| panic!("{name}: HLSL: {e}"));
}

/// Every shader with `Act` bindings validates with f16 storage and translates to SPIR-V,
/// MSL and HLSL (GLSL has no f16: GL adapters never offer `SHADER_F16`); the others have
/// no f16 form and are refused in a half-precision context.
#[test]
fn act_shaders_validate_with_f16_storage() {
    let mut count = 0;
    for name in segblocks::shaders::names() {
        if segblocks::shaders::precision_bindings(name).is_empty() {
            continue;
        }
        let source =
            segblocks::shaders::source(name, &[(segblocks::shaders::PRECISION, 1)]).unwrap();
        assert!(source.starts_with("enable f16;"), "{name}");
        assert!(source.contains("alias Act = f16;"), "{name}");
        translate_beyond_gl(name, "f16", &source, Capabilities::SHADER_FLOAT16);
        count += 1;
    }
    // Every kernel that reads or writes a tensor has an f16 form: all but the max-unpool
    // scatter (indices and atomics) and the norm statistics combine (f32 sums).
    assert_eq!(count, 53, "shaders with Act bindings");
}

/// The kernels with an f16-arithmetic form (the GPU-class GEMM and depthwise convolutions)
/// validate with it at f16 storage and translate to SPIR-V, MSL and HLSL; their default
/// form and their f16-storage form compute in f32.
#[test]
fn f16_arithmetic_forms_validate() {
    use segblocks::shaders::{has_half_math_form, source, HALF_MATH, PRECISION};
    let forms: Vec<&str> = segblocks::shaders::names()
        .filter(|n| has_half_math_form(n))
        .collect();
    assert_eq!(forms, ["conv_gemm.wgsl", "conv_depthwise_tiled.wgsl"]);
    for name in forms {
        for plain in [source(name, &[]), source(name, &[(PRECISION, 1)])] {
            assert!(plain.unwrap().contains("alias Mac = f32;"), "{name}");
        }
        let source = source(name, &[(PRECISION, 1), (HALF_MATH, 1)]).unwrap();
        assert!(source.starts_with("enable f16;"), "{name}");
        assert!(source.contains("alias Mac = f16;"), "{name}");
        assert!(source.contains("alias Act = f16;"), "{name}");
        translate_beyond_gl(
            name,
            "f16 arithmetic",
            &source,
            Capabilities::SHADER_FLOAT16,
        );
    }
}

/// The kernels whose workgroup reductions have a subgroup form (`reduce_subgroup.wgsl`)
/// validate with subgroup operations, at f32 and f16, and translate to SPIR-V, MSL and
/// HLSL (GL adapters have no subgroups); their default form uses none.
#[test]
fn reductions_have_a_subgroup_form_that_validates() {
    use segblocks::shaders::{has_subgroup_form, source, PRECISION, SUBGROUPS};
    let mut count = 0;
    for name in segblocks::shaders::names().filter(|n| has_subgroup_form(n)) {
        let plain = source(name, &[]).unwrap();
        assert!(
            !plain.contains("subgroupAdd("),
            "{name}: subgroup operations by default"
        );
        for half in [0, 1] {
            let source = source(name, &[(SUBGROUPS, 1), (PRECISION, half)]).unwrap();
            assert!(source.contains("subgroupAdd("), "{name}");
            let caps = Capabilities::SUBGROUP | Capabilities::SHADER_FLOAT16;
            translate_beyond_gl(name, "subgroups", &source, caps);
        }
        count += 1;
    }
    // The global pooling, the normalisation statistics and the global response norm's
    // scale.
    assert_eq!(count, 3, "shaders with a subgroup form");
}

/// Every kernel declares its parameters the one way the preprocessor can rebind them,
/// and validates with them in a storage buffer (`GpuOptions::params_in_storage`).
#[test]
fn parameters_rebind_as_a_storage_buffer() {
    use segblocks::shaders::{source_with, ParamsBinding, UNIFORM_PARAMS};
    for name in segblocks::shaders::names() {
        let uniform = segblocks::shaders::source(name, &[]).unwrap();
        assert_eq!(uniform.matches(UNIFORM_PARAMS).count(), 1, "{name}");
        let source = source_with(name, &[], ParamsBinding::Storage).unwrap();
        assert!(!source.contains(UNIFORM_PARAMS), "{name}");
        assert!(source.contains("var<storage, read> p:"), "{name}");
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&source)));
        validate(&module);
    }
    for (file, constant, _) in segblocks::shaders::INLINING_SENSITIVE {
        let k = segblocks::shaders::kernels();
        let k = k.iter().find(|k| k.file == *file).expect("a kernel's file");
        assert!(
            k.constants.get(constant).is_some(),
            "{file} sets no {constant}"
        );
    }
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

        write_msl(name, &module, &info);

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

/// Checks one kernel's Rust description against its WGSL; `Err` says what differs.
fn reflect(k: &segblocks::launch::KernelDescription, source: &str) -> Result<(), String> {
    use naga::{AddressSpace, StorageAccess, TypeInner};
    use segblocks::launch::Access;
    let module = naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
    let info = validate(&module);
    // Constants: `@specialize` ones (already in the source) and overrides, by name.
    // F16, SUBGROUPS and HALF_MATH are set by the recorder for the context's precision,
    // the device's reduction and the context's arithmetic, not by the kernel.
    let specialize: Vec<String> = segblocks::shaders::specializations(k.file)
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| !segblocks::shaders::set_by_context(n))
        .collect();
    let mut declared: Vec<String> = module
        .overrides
        .iter()
        .filter_map(|(_, o)| o.name.clone())
        .chain(specialize.iter().cloned())
        .collect();
    declared.sort();
    let mut set: Vec<String> = k.constants.iter().map(|(n, _)| n.to_string()).collect();
    set.sort();
    if declared != set {
        return Err(format!(
            "constants: WGSL declares {declared:?}, Rust sets {set:?}"
        ));
    }
    let overrides: PipelineConstants = k
        .constants
        .iter()
        .filter(|(n, _)| !specialize.iter().any(|s| s == n))
        .map(|(n, v)| (n.to_string(), f64::from(v)))
        .collect();
    let ep = (naga::ShaderStage::Compute, "main");
    let (module, _) =
        naga::back::pipeline_constants::process_overrides(&module, &info, Some(ep), &overrides)
            .map_err(|e| format!("overrides: {e}"))?;
    let main = module
        .entry_points
        .iter()
        .find(|e| e.name == "main")
        .ok_or("no entry point `main`")?;
    if main.workgroup_size != [k.workgroup_size, 1, 1] {
        return Err(format!(
            "workgroup size: WGSL {:?}, Rust {}",
            main.workgroup_size, k.workgroup_size
        ));
    }
    let mut bound: Vec<(u32, &naga::GlobalVariable)> = module
        .global_variables
        .iter()
        .filter_map(|(_, v)| v.binding.as_ref().map(|b| (b, v)))
        .filter(|(b, _)| b.group == 0)
        .map(|(b, v)| (b.binding, v))
        .collect();
    bound.sort_by_key(|(b, _)| *b);
    let want: Vec<u32> = (0..=k.bindings.len() as u32).collect();
    let got: Vec<u32> = bound.iter().map(|(b, _)| *b).collect();
    if got != want {
        return Err(format!("bindings: WGSL has {got:?}, Rust binds {want:?}"));
    }
    // Binding 0: the uniform.
    let (_, u) = bound[0];
    if u.space != AddressSpace::Uniform {
        return Err(format!("binding 0 is {:?}, not the uniform", u.space));
    }
    let ty = &module.types[u.ty];
    let TypeInner::Struct { members, span } = &ty.inner else {
        return Err("the uniform is not a struct".into());
    };
    if ty.name.as_deref() != Some(k.uniform.name) {
        return Err(format!(
            "uniform struct: WGSL {:?}, Rust {}",
            ty.name, k.uniform.name
        ));
    }
    let wgsl_fields: Vec<(String, usize)> = members
        .iter()
        .map(|m| (m.name.clone().unwrap_or_default(), m.offset as usize))
        .collect();
    let rust_fields: Vec<(String, usize)> = k
        .uniform
        .fields
        .iter()
        .map(|(n, o)| (n.to_string(), *o))
        .collect();
    if wgsl_fields != rust_fields {
        return Err(format!(
            "uniform {} fields: WGSL {wgsl_fields:?}, Rust {rust_fields:?}",
            k.uniform.name
        ));
    }
    if *span as usize != k.uniform.size {
        return Err(format!(
            "uniform size: WGSL {span}, Rust {}",
            k.uniform.size
        ));
    }
    // Bindings 1..: storage buffers by name and access.
    for ((_, v), b) in bound[1..].iter().zip(&k.bindings) {
        if b.access == Access::Texels {
            let name = v.name.as_deref().unwrap_or("");
            if name != b.name || v.space != AddressSpace::Handle {
                return Err(format!(
                    "binding `{}` (texels): WGSL has `{name}` in {:?}",
                    b.name, v.space
                ));
            }
            continue;
        }
        let AddressSpace::Storage { access } = v.space else {
            return Err(format!("`{}` is {:?}, not storage", b.name, v.space));
        };
        let writes = access.contains(StorageAccess::STORE);
        let name = v.name.as_deref().unwrap_or("");
        if name != b.name || writes != (b.access == Access::ReadWrite) {
            return Err(format!(
                "binding `{}` {:?}: WGSL has `{name}` {access:?}",
                b.name, b.access
            ));
        }
    }
    Ok(())
}

/// The source of a kernel with its default `@specialize` values.
fn kernel_source(k: &segblocks::launch::KernelDescription) -> String {
    let declared = segblocks::shaders::specializations(k.file);
    let specialize: Vec<(&str, u32)> = k
        .constants
        .iter()
        .filter(|(n, _)| declared.iter().any(|(d, _)| d == n))
        .collect();
    segblocks::shaders::source(k.file, &specialize).unwrap()
}

#[test]
fn rust_and_wgsl_agree_on_every_kernel() {
    let kernels = segblocks::shaders::kernels();
    let mut files: Vec<&str> = kernels.iter().map(|k| k.file).collect();
    files.sort();
    files.dedup();
    let mut shaders: Vec<&str> = segblocks::shaders::names().collect();
    shaders.sort();
    assert_eq!(
        files, shaders,
        "every compute shader has a kernel, and only those"
    );
    for k in &kernels {
        if let Err(e) = reflect(k, &kernel_source(k)) {
            panic!("{}: {e}", k.file);
        }
    }
}

#[test]
fn reflection_catches_a_reordered_uniform_field_a_renamed_binding_and_a_wrong_access() {
    let kernels = segblocks::shaders::kernels();
    let k = kernels.iter().find(|k| k.file == "max_pool.wgsl").unwrap();
    let source = kernel_source(k);
    reflect(k, &source).unwrap();
    // Two uniform fields swapped on the Rust side: the offsets no longer line up.
    let mut swapped = k.clone();
    let (a, b) = (swapped.uniform.fields[1].0, swapped.uniform.fields[2].0);
    swapped.uniform.fields[1].0 = b;
    swapped.uniform.fields[2].0 = a;
    let err = reflect(&swapped, &source).unwrap_err();
    assert!(err.contains("fields"), "{err}");
    // The same swap in the WGSL struct.
    let wgsl_swapped = source.replacen(
        "    h: u32, // input size\n    w: u32,",
        "    w: u32,\n    h: u32,",
        1,
    );
    assert_ne!(wgsl_swapped, source);
    assert!(reflect(k, &wgsl_swapped).unwrap_err().contains("fields"));
    // A binding read as read-write, and a binding under another name.
    let mut wrong = k.clone();
    wrong.bindings[0].access = segblocks::launch::Access::ReadWrite;
    assert!(reflect(&wrong, &source).unwrap_err().contains("binding"));
    let mut renamed = k.clone();
    renamed.bindings[1].name = "out";
    assert!(reflect(&renamed, &source).unwrap_err().contains("binding"));
    // A constant the shader does not declare.
    let mut extra = k.clone();
    extra.constants.set("NOT_IN_WGSL", 1);
    assert!(reflect(&extra, &source).unwrap_err().contains("constants"));
}

/// The `var`s declared without an initializer inside a loop of `source`, as
/// `"line: declaration"`. WGSL zeroes such a variable each time its declaration runs, but
/// not every implementation does: Deno's WebGPU zeroes it once per invocation, so a
/// value carried over from the previous iteration (an accumulator of the previous strip)
/// leaked into the next there (`scripts/web_smoke.sh` found it). Every shader spells the
/// zero out (`var acc = array<f32, N>();`), which naga translates to the same code.
fn uninitialised_vars_in_loops(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    // For each open brace: whether it is a loop's body or inside one.
    let mut in_loop: Vec<bool> = Vec::new();
    let mut loop_header = false;
    for (i, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let decl = code.trim();
        if decl.starts_with("var ")
            && !decl.starts_with("var<")
            && !decl.contains('=')
            && in_loop.last() == Some(&true)
        {
            found.push(format!("{}: {decl}", i + 1));
        }
        // Braces and the loop keywords, in order: a brace opened after `for`, `loop` or
        // `while` is a loop's body.
        let mut word = String::new();
        for c in code.chars().chain([' ']) {
            if c.is_alphanumeric() || c == '_' {
                word.push(c);
                continue;
            }
            loop_header |= matches!(word.as_str(), "for" | "loop" | "while");
            word.clear();
            if c == '{' {
                let outer = in_loop.last() == Some(&true);
                in_loop.push(outer || loop_header);
                loop_header = false;
            } else if c == '}' {
                in_loop.pop();
            }
        }
    }
    found
}

#[test]
fn no_uninitialised_var_inside_a_loop() {
    for name in segblocks::shaders::names() {
        let source = segblocks::shaders::source(name, &[]).unwrap();
        let found = uninitialised_vars_in_loops(&source);
        assert!(found.is_empty(), "{name}: {found:?}");
    }
    // The scan finds one in a nested loop body, and not one outside loops or initialised.
    let shader = "fn f() {\n    var a: f32;\n    for (var i = 0u; i < 4u; i++) {\n        \
                  if (i > 0u) {\n            var b: array<f32, 4>;\n            var c = 0.0;\n        \
                  }\n    }\n    var d: u32;\n}\n";
    assert_eq!(
        uninitialised_vars_in_loops(shader),
        ["5: var b: array<f32, 4>;"]
    );
}

/// The `bitcast<f32>(0x...u)` literals of a shader whose value is an infinity or NaN:
/// WGSL makes a constant expression that evaluates to one a shader-creation error
/// (Chrome's Tint refuses it; naga lets it through, so only the web smoke test's Dawn
/// run would see it).
fn non_finite_float_constants(source: &str) -> Vec<String> {
    const BITCAST: &str = "bitcast<f32>(0x";
    let mut found = Vec::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or_default();
        for (at, _) in code.match_indices(BITCAST) {
            let digits: String = code[at + BITCAST.len()..]
                .chars()
                .take_while(char::is_ascii_hexdigit)
                .collect();
            let bits = u32::from_str_radix(&digits, 16).expect("a hexadecimal literal");
            if !f32::from_bits(bits).is_finite() {
                found.push(format!("{BITCAST}{digits}u)"));
            }
        }
    }
    found
}

#[test]
fn no_non_finite_float_constant() {
    use segblocks::shaders::{has_subgroup_form, names, source, SUBGROUPS};
    for name in names() {
        let mut forms = vec![source(name, &[]).unwrap()];
        if has_subgroup_form(name) {
            forms.push(source(name, &[(SUBGROUPS, 1)]).unwrap());
        }
        for text in forms {
            let found = non_finite_float_constants(&text);
            assert!(found.is_empty(), "{name}: {found:?}");
        }
    }
    // The scan finds -inf and NaN, and passes a finite value, a run-time bitcast and a
    // comment.
    let shader = "let a = -bitcast<f32>(0x7f800000u);\nlet b = bitcast<f32>(0x7fc00000u);\n\
                  let c = bitcast<f32>(0x3f800000u);\nlet d = bitcast<f32>(BITS);\n\
                  // not bitcast<f32>(0xff800000u)\n";
    assert_eq!(
        non_finite_float_constants(shader),
        ["bitcast<f32>(0x7f800000u)", "bitcast<f32>(0x7fc00000u)"]
    );
}
