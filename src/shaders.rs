//! The WGSL sources, embedded at build time, with one small, explicit preprocessing step,
//! and the list of every kernel the library launches ([`kernels`]).
//!
//! Five rewrites, nothing else:
//! - a line `#include "name.wgsl"` is replaced by that file's text (each file once per
//!   shader; a second include of the same file is dropped);
//! - a line `const NAME: u32 = 8u; // @specialize` gets its value replaced when the caller
//!   specialises `NAME` (see [`source`]). The value in the file is the default that the
//!   shader tests validate;
//! - with `F16` specialised to 1 (a context at [`Precision::F16`](crate::Precision)), the
//!   lines `alias Act = f32; // @precision` and `alias Wt = f32; // @precision` of
//!   `common.wgsl` become f16 aliases and the module starts with `enable f16;`. `Act` is
//!   the storage type of activation tensors, `Wt` that of the weights of the layers that
//!   store them at the context's precision; kernels read both into f32 (`f32(x[i])`,
//!   `vec4<f32>(x4[i])`), compute and accumulate in f32 (but see `HALF_MATH` below), and
//!   write `Act(v)` / `vec4<Act>(v)`. Statistics, partial sums and tables stay `f32`;
//! - with `HALF_MATH` specialised to 1 (a context with
//!   [`GpuOptions::f16_arithmetic`](crate::GpuOptions::f16_arithmetic)), a kernel that
//!   declares it (its f16-arithmetic form, [`has_half_math_form`]) gets its line
//!   `alias Mac = f32; // @half_math` as an f16 alias: the type its inner products are
//!   computed in;
//! - with `SUBGROUPS` specialised to 1 (a device with subgroups,
//!   [`DeviceCaps::reduction`](crate::DeviceCaps::reduction)), an include of a file that
//!   has a subgroup form (`reduce.wgsl` → `reduce_subgroup.wgsl`, [`SUBGROUP_FORMS`])
//!   includes that form instead: the same functions, written with subgroup operations.
//!
//! Why both this and WGSL `override` constants: overrides cannot size function-scope
//! arrays or set `@workgroup_size` for every backend, and register tiles (arrays whose
//! length equals the loop trip count, which shader compilers such as Mesa's unroll and
//! keep in registers) need constant sizes. Everything else is specialised with `override`
//! constants at pipeline creation; on the native backends the library folds their values
//! into the parsed module itself, with the branches they decide, before the driver sees
//! it (`src/shader_fold.rs`: dead code was half of lavapipe's pipeline creation). On the
//! Rust side both kinds are set the same way, through a kernel's
//! [`Specialize`](crate::launch::Specialize) type.

use crate::launch::{KernelDescription, KernelInfo};

/// `(file name, text)` of a file under `shaders/`.
macro_rules! wgsl {
    ($name:literal) => {
        ($name, include_str!(concat!("../shaders/", $name)))
    };
}

const FILES: &[(&str, &str)] = &[
    wgsl!("common.wgsl"),
    wgsl!("activation.wgsl"),
    wgsl!("epilogue.wgsl"),
    wgsl!("param_activation.wgsl"),
    wgsl!("param_formula.wgsl"),
    wgsl!("padding.wgsl"),
    wgsl!("window.wgsl"),
    wgsl!("adaptive_bins.wgsl"),
    wgsl!("strips.wgsl"),
    wgsl!("conv_tiles.wgsl"),
    wgsl!("conv_tiles_out.wgsl"),
    wgsl!("conv_tiles_out4.wgsl"),
    wgsl!("conv_direct.wgsl"),
    wgsl!("conv_direct_body.wgsl"),
    wgsl!("conv_direct_texels.wgsl"),
    wgsl!("conv_gemm.wgsl"),
    wgsl!("conv_gemm_reduce.wgsl"),
    wgsl!("conv_pointwise.wgsl"),
    wgsl!("conv_pointwise_scalar.wgsl"),
    wgsl!("conv_pointwise_texels.wgsl"),
    wgsl!("conv_pointwise_store4.wgsl"),
    wgsl!("texels.wgsl"),
    wgsl!("conv_pointwise_body.wgsl"),
    wgsl!("im2col.wgsl"),
    wgsl!("conv_depthwise.wgsl"),
    wgsl!("conv_depthwise_vec.wgsl"),
    wgsl!("conv_depthwise_texels.wgsl"),
    wgsl!("conv_depthwise_store4.wgsl"),
    wgsl!("conv_depthwise_body.wgsl"),
    wgsl!("conv_depthwise_tiled.wgsl"),
    wgsl!("conv_transpose.wgsl"),
    wgsl!("conv_transpose_body.wgsl"),
    wgsl!("conv_transpose_texels.wgsl"),
    wgsl!("conv_transpose_blocks.wgsl"),
    wgsl!("conv_transpose_blocks_body.wgsl"),
    wgsl!("conv_transpose_blocks_texels.wgsl"),
    wgsl!("max_pool.wgsl"),
    wgsl!("avg_pool.wgsl"),
    wgsl!("max_unpool_scatter.wgsl"),
    wgsl!("max_unpool_gather.wgsl"),
    wgsl!("max_unpool_window.wgsl"),
    wgsl!("global_pool.wgsl"),
    wgsl!("global_pool_planes.wgsl"),
    wgsl!("global_pool_io.wgsl"),
    wgsl!("adaptive_avg_pool.wgsl"),
    wgsl!("adaptive_max_pool.wgsl"),
    wgsl!("resample.wgsl"),
    wgsl!("resample_int.wgsl"),
    wgsl!("bilinear_int.wgsl"),
    wgsl!("bilinear_strips.wgsl"),
    wgsl!("pixel_shuffle.wgsl"),
    wgsl!("resample_aa.wgsl"),
    wgsl!("copy.wgsl"),
    wgsl!("crop.wgsl"),
    wgsl!("pad.wgsl"),
    wgsl!("frame_in.wgsl"),
    wgsl!("mask_out.wgsl"),
    wgsl!("composite.wgsl"),
    wgsl!("norm_stats.wgsl"),
    wgsl!("norm_combine.wgsl"),
    wgsl!("norm_apply.wgsl"),
    wgsl!("batch_norm_backward.wgsl"),
    wgsl!("grn.wgsl"),
    wgsl!("channel_copy.wgsl"),
    wgsl!("elementwise.wgsl"),
    wgsl!("activation_param.wgsl"),
    wgsl!("channel_softmax.wgsl"),
    wgsl!("channel_pool.wgsl"),
    wgsl!("channel_dot.wgsl"),
    wgsl!("se_gate.wgsl"),
    wgsl!("radix_softmax_sum.wgsl"),
    wgsl!("sdpa.wgsl"),
    wgsl!("sdpa_max.wgsl"),
    wgsl!("sdpa_combine.wgsl"),
    wgsl!("sdpa_global.wgsl"),
    wgsl!("inverted_residual.wgsl"),
    wgsl!("decoder_stage.wgsl"),
    wgsl!("lraspp_head.wgsl"),
    wgsl!("reduce.wgsl"),
    wgsl!("reduce_subgroup.wgsl"),
];

/// Include files with a form written with subgroup operations, included in their place
/// when [`SUBGROUPS`] is specialised to 1.
pub const SUBGROUP_FORMS: &[(&str, &str)] = &[("reduce.wgsl", "reduce_subgroup.wgsl")];

/// The `@specialize` constant that selects the subgroup forms of the includes.
pub const SUBGROUPS: &str = "SUBGROUPS";

/// Whether a shader's workgroup reductions have a subgroup form (it declares
/// [`SUBGROUPS`]).
pub fn has_subgroup_form(name: &str) -> bool {
    declares_context_constant(name, SUBGROUPS)
}

/// The `@specialize` constant that selects a kernel's f16-arithmetic form: its `Mac`
/// alias becomes f16 (see the module docs). Set by the recorder, never by a kernel.
pub const HALF_MATH: &str = "HALF_MATH";

/// Whether a shader has an f16-arithmetic form (it declares [`HALF_MATH`]).
pub fn has_half_math_form(name: &str) -> bool {
    declares_context_constant(name, HALF_MATH)
}

/// Whether shader `name` declares the context constant `constant` ([`set_by_context`]):
/// every shader's declared context constants, listed once (the recorder asks at each
/// dispatch).
fn declares_context_constant(name: &str, constant: &str) -> bool {
    type Table = Vec<(&'static str, Vec<String>)>;
    static TABLE: std::sync::OnceLock<Table> = std::sync::OnceLock::new();
    TABLE
        .get_or_init(|| {
            names()
                .map(|n| {
                    let declared = specializations(n).into_iter().map(|(k, _)| k);
                    (n, declared.filter(|k| set_by_context(k)).collect())
                })
                .collect()
        })
        .iter()
        .any(|(n, declared)| *n == name && declared.iter().any(|k| k == constant))
}

/// Whether the `@specialize` constant `name` is set by the recorder from the context
/// ([`PRECISION`], [`SUBGROUPS`], [`HALF_MATH`]) rather than by a kernel's plan.
pub fn set_by_context(name: &str) -> bool {
    [PRECISION, SUBGROUPS, HALF_MATH].contains(&name)
}

/// Every kernel the library launches, as its Rust side declares it: file, uniform layout,
/// bindings, constants and workgroup size. `tests/shaders.rs` checks each against its
/// WGSL with naga.
pub fn kernels() -> Vec<KernelDescription> {
    let families: [&[&dyn KernelInfo]; 14] = [
        crate::ops::conv::KERNELS,
        crate::ops::conv_transpose::KERNELS,
        crate::ops::pool::KERNELS,
        crate::ops::upsample::KERNELS,
        crate::ops::norm::KERNELS,
        crate::ops::channel::KERNELS,
        crate::ops::attention::KERNELS,
        crate::ops::sdpa::KERNELS,
        crate::ops::copy::KERNELS,
        crate::ops::frame::KERNELS,
        crate::ops::composite::KERNELS,
        crate::ops::inverted_residual::KERNELS,
        crate::ops::decoder_stage::KERNELS,
        crate::ops::lraspp_head::KERNELS,
    ];
    families
        .iter()
        .flat_map(|f| f.iter().map(|k| k.describe()))
        .collect()
}

/// Names of the compute shaders (the files no other file includes).
pub fn names() -> impl Iterator<Item = &'static str> {
    FILES.iter().map(|(n, _)| *n).filter(|n| !is_include(n))
}

/// Names of every embedded WGSL file, include files too.
pub fn files() -> impl Iterator<Item = &'static str> {
    FILES.iter().map(|(n, _)| *n)
}

/// Whether another file includes `name` (or it is the subgroup form of an include).
fn is_include(name: &str) -> bool {
    SUBGROUP_FORMS.iter().any(|(_, form)| *form == name)
        || FILES
            .iter()
            .any(|(_, text)| text.lines().any(|l| include_target(l) == Some(name)))
}

/// The `@specialize` constants a shader declares (its includes' too), with their
/// defaults.
pub fn specializations(name: &str) -> Vec<(String, u32)> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    collect_specializations(name, &mut seen, &mut out);
    out
}

fn collect_specializations(name: &str, seen: &mut Vec<String>, out: &mut Vec<(String, u32)>) {
    if seen.iter().any(|s| s == name) {
        return;
    }
    seen.push(name.to_string());
    let Some(text) = raw(name) else {
        return;
    };
    for line in text.lines() {
        if let Some(inc) = include_target(line) {
            collect_specializations(inc, seen, out);
        } else if let Some(s) = parse_specialize(line) {
            out.push(s);
        }
    }
}

fn raw(name: &str) -> Option<&'static str> {
    FILES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

fn include_target(line: &str) -> Option<&str> {
    Some(
        line.trim()
            .strip_prefix("#include ")?
            .trim()
            .trim_matches('"'),
    )
}

/// Parses `const NAME: u32 = 8u; // @specialize` into `(NAME, 8)`.
fn parse_specialize(line: &str) -> Option<(String, u32)> {
    let (decl, marker) = line.split_once("//")?;
    if marker.trim() != "@specialize" {
        return None;
    }
    let rest = decl.trim().strip_prefix("const ")?;
    let (name, rest) = rest.split_once(':')?;
    let value = rest.split_once('=')?.1.trim().trim_end_matches(';').trim();
    let value = value.trim_end_matches('u').parse().ok()?;
    Some((name.trim().to_string(), value))
}

/// The preprocessed WGSL source of a shader with the given `@specialize` values, or
/// `None` for an unknown shader or a name it does not declare as specialisable.
pub fn source(name: &str, specialize: &[(&str, u32)]) -> Option<String> {
    source_with(name, specialize, ParamsBinding::Uniform)
}

/// Where a kernel's parameters (the struct `p` at binding 0) are bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ParamsBinding {
    /// `var<uniform>`: what GPUs read fastest.
    #[default]
    Uniform,
    /// `var<storage, read>` (the same struct): for kernels that Mesa's lavapipe (22.3)
    /// recompiles at nearly every dispatch when their parameters are a uniform buffer,
    /// whose values it inlines into a variant of the shader (measured: 11 ms a dispatch
    /// for the SE gate, 0.4 ms from a storage buffer).
    Storage,
}

/// [`source`] with the parameters bound as `params` says.
pub fn source_with(
    name: &str,
    specialize: &[(&str, u32)],
    params: ParamsBinding,
) -> Option<String> {
    let declared = specializations(name);
    if specialize
        .iter()
        .any(|(k, _)| !declared.iter().any(|(d, _)| d == k))
    {
        return None;
    }
    let mut out = String::with_capacity(8192);
    let set = |name: &str| specialize.iter().any(|&(k, v)| k == name && v == 1);
    let (half, half_math) = (set(PRECISION), set(HALF_MATH));
    if half || half_math {
        out.push_str("enable f16;\n");
    }
    let mode = Expansion {
        half,
        subgroups: set(SUBGROUPS),
        half_math,
    };
    expand(name, specialize, mode, &mut Vec::new(), &mut out)?;
    if params == ParamsBinding::Storage {
        out = out.replace(UNIFORM_PARAMS, "var<storage, read> p:");
    }
    Some(out)
}

/// How every kernel declares its parameters (checked by `tests/shaders.rs`).
pub const UNIFORM_PARAMS: &str = "var<uniform> p:";

/// The kernels (a file, and a constant with its value) that bind their parameters in a
/// storage buffer on Mesa's software drivers by default ([`ParamsBinding::Storage`],
/// `GpuOptions::params_in_storage`): those measured slower there with uniform
/// parameters. Lavapipe (Mesa 22.3) took 11 ms a dispatch for the SE gate of a map plus
/// a second map (`SUM`, the selfie decoder's gates) with its parameters in a uniform
/// buffer and 0.4 ms with them in a storage buffer, and its vec4-weight form (`VEC`) the
/// small SE blocks' gates 1.6-2.4 ms instead of 0.12-0.18 ms; every other kernel, the
/// plain SE gate included, measured faster with uniforms (8-29% on the convolutions; the
/// selfie network, `mobilenet_v2().features`, LR-ASPP, U-Net, SegNet and DeepLabV3, per
/// kernel, same run).
pub const INLINING_SENSITIVE: &[(&str, &str, u32)] =
    &[("se_gate.wgsl", "SUM", 1), ("se_gate.wgsl", "VEC", 1)];

/// The `@specialize` constant that selects f16 storage for `Act` (see the module docs).
pub const PRECISION: &str = "F16";

/// The storage bindings of a shader whose element type is the context's precision:
/// `Act` (activation tensors) and `Wt` (weights), by WGSL variable name.
pub fn precision_bindings(name: &str) -> &'static [String] {
    static TABLE: std::sync::OnceLock<Vec<(&'static str, Vec<String>)>> =
        std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        names()
            .map(|n| {
                let text = source(n, &[]).unwrap_or_default();
                let acts = text
                    .lines()
                    .filter_map(|l| {
                        let decl = l.split("//").next()?;
                        let rest = decl.split_once("var<storage")?.1;
                        let (var, ty) = rest.split_once('>')?.1.split_once(':')?;
                        let is_act = ["<Act>", "<vec4<Act>>", "<Wt>", "<vec4<Wt>>"]
                            .iter()
                            .any(|t| ty.contains(t));
                        is_act.then(|| var.trim().to_string())
                    })
                    .collect();
                (n, acts)
            })
            .collect()
    });
    table
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(&[], |(_, a)| a.as_slice())
}

/// The rewrites of a preprocessing run beyond the `@specialize` values.
#[derive(Clone, Copy)]
struct Expansion {
    /// f16 aliases (`F16` = 1).
    half: bool,
    /// Subgroup forms of the includes (`SUBGROUPS` = 1).
    subgroups: bool,
    /// f16 inner products (`HALF_MATH` = 1).
    half_math: bool,
}

fn expand<'a>(
    name: &'a str,
    specialize: &[(&str, u32)],
    mode: Expansion,
    included: &mut Vec<&'a str>,
    out: &mut String,
) -> Option<()> {
    if included.contains(&name) {
        return Some(());
    }
    included.push(name);
    let text = raw(name)?;
    for line in text.lines() {
        if let Some(inc) = include_target(line) {
            let mut inc = files().find(|f| *f == inc)?;
            if mode.subgroups {
                if let Some((_, form)) = SUBGROUP_FORMS.iter().find(|(f, _)| *f == inc) {
                    inc = form;
                }
            }
            expand(inc, specialize, mode, included, out)?;
            continue;
        }
        let marker = line.trim_end();
        if (mode.half && marker.ends_with("// @precision"))
            || (mode.half_math && marker.ends_with("// @half_math"))
        {
            out.push_str(&line.replace("f32", "f16"));
            out.push('\n');
            continue;
        }
        match parse_specialize(line) {
            Some((const_name, _)) => match specialize.iter().find(|(k, _)| *k == const_name) {
                Some((_, v)) => out.push_str(&format!("const {const_name}: u32 = {v}u;")),
                None => out.push_str(line),
            },
            None => out.push_str(line),
        }
        out.push('\n');
    }
    Some(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn specialize_rewrites_only_marked_constants() {
        let specs = super::specializations("conv_direct.wgsl");
        assert!(specs.iter().any(|(n, _)| n == "PX"), "{specs:?}");
        assert!(
            specs.iter().any(|(n, _)| n == "WORKGROUP_SIZE"),
            "{specs:?}"
        );
        let text =
            super::source("conv_direct.wgsl", &[("PX", 13), ("WORKGROUP_SIZE", 32)]).unwrap();
        assert!(text.contains("const PX: u32 = 13u;"));
        assert!(text.contains("const WORKGROUP_SIZE: u32 = 32u;"));
        assert!(!text.lines().any(|l| l.trim_start().starts_with("#include")));
        assert_eq!(
            text.matches("struct Invocation").count(),
            1,
            "common.wgsl once"
        );
        assert!(super::source("conv_direct.wgsl", &[("NOT_DECLARED", 1)]).is_none());
        assert!(super::source("missing.wgsl", &[]).is_none());
    }

    /// The shaders' texel row is the recorder's.
    #[test]
    fn texel_rows_agree() {
        let (_, text) = super::FILES
            .iter()
            .find(|(n, _)| *n == "texels.wgsl")
            .unwrap();
        let line = format!("const TEXEL_ROW: u32 = {}u;", crate::launch::TEXEL_ROW);
        assert!(text.contains(&line), "{text}");
    }

    /// No shader has a `continue`. naga writes a WGSL `for` loop as GLSL
    /// `while (true) { if (!loop_init) { i++; } loop_init = false; ... }`, and a
    /// `continue` in it keeps Mesa from unrolling the loop: on llvmpipe (GL) the direct
    /// convolution's tap loop, left rolled, ran 18 iterations per input channel where the
    /// loop budget counts one, and llvmpipe, which ends an invocation after 65,535
    /// iterations, returned the sum of the first 3,641 input channels (and nothing for
    /// the output channels stored after it). Lavapipe (SPIR-V) unrolled it.
    #[test]
    fn no_loop_continues() {
        for (name, text) in super::FILES {
            for (i, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                assert!(
                    !code
                        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .any(|w| w == "continue"),
                    "{name}:{}: `continue` (write an `if` around the rest): {line}",
                    i + 1
                );
            }
        }
    }

    /// The shaders are compiled without wgpu's loop bounding (`shader_checks` in gpu.rs),
    /// which is sound only while every loop terminates: each is a `for` whose counter
    /// rises by `++` or `+=` towards a `<` bound, or halves towards 0.
    #[test]
    fn every_loop_is_a_bounded_for() {
        for (name, text) in super::FILES {
            for (i, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                let words: Vec<&str> = code
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .collect();
                assert!(
                    !words.iter().any(|w| *w == "loop" || *w == "while"),
                    "{name}:{}: `loop` / `while` need wgpu's loop bounding: {line}",
                    i + 1
                );
                let Some(start) = code.find("for (") else {
                    continue;
                };
                let header = &code[start + 5..];
                let parts: Vec<&str> = header.split(';').map(str::trim).collect();
                assert_eq!(parts.len(), 3, "{name}:{}: {line}", i + 1);
                let var = parts[0]
                    .strip_prefix("var ")
                    .and_then(|r| r.split([' ', ':', '=']).next())
                    .unwrap_or_else(|| panic!("{name}:{}: {line}", i + 1));
                let step = parts[2];
                let rising = (step.starts_with(&format!("{var}++"))
                    || step.starts_with(&format!("{var} += ")))
                    && parts[1].starts_with(&format!("{var} < "));
                let halving = step.starts_with(&format!("{var} = {var} / 2u"))
                    && parts[1] == format!("{var} > 0u");
                assert!(
                    rising || halving,
                    "{name}:{}: a loop that may not terminate: {line}",
                    i + 1
                );
            }
        }
    }
}
