//! The WGSL sources, embedded at build time, with one small, explicit preprocessing step.
//!
//! Two rewrites, nothing else:
//! - a line `#include "name.wgsl"` is replaced by that file's text;
//! - a line `const NAME: u32 = 8u; // @specialize` gets its value replaced when the caller
//!   specialises `NAME` (see [`source`]). The value in the file is the default that the
//!   shader tests validate.
//!
//! Why both this and WGSL `override` constants: overrides cannot size function-scope
//! arrays, and register tiles (arrays whose length equals the loop trip count, which
//! shader compilers such as Mesa's unroll and keep in registers) need constant sizes.
//! Everything else is specialised with `override` constants at pipeline creation.

/// `(file name, text)` of a file under `shaders/`.
macro_rules! wgsl {
    ($name:literal) => {
        ($name, include_str!(concat!("../shaders/", $name)))
    };
}

const FILES: &[(&str, &str)] = &[
    wgsl!("common.wgsl"),
    wgsl!("conv_direct.wgsl"),
    wgsl!("conv_pointwise.wgsl"),
    wgsl!("conv_pointwise_scalar.wgsl"),
    wgsl!("conv_pointwise_body.wgsl"),
    wgsl!("conv_depthwise.wgsl"),
    wgsl!("conv_depthwise_vec.wgsl"),
    wgsl!("conv_depthwise_body.wgsl"),
    wgsl!("conv_transpose.wgsl"),
    wgsl!("conv_transpose_blocks.wgsl"),
    wgsl!("max_pool.wgsl"),
    wgsl!("avg_pool.wgsl"),
    wgsl!("max_unpool_scatter.wgsl"),
    wgsl!("max_unpool_gather.wgsl"),
    wgsl!("max_unpool_window.wgsl"),
    wgsl!("global_pool.wgsl"),
    wgsl!("adaptive_avg_pool.wgsl"),
    wgsl!("resample.wgsl"),
    wgsl!("resample_int.wgsl"),
    wgsl!("bilinear_int.wgsl"),
    wgsl!("copy.wgsl"),
    wgsl!("norm_stats.wgsl"),
    wgsl!("norm_apply.wgsl"),
    wgsl!("batch_norm_backward.wgsl"),
    wgsl!("channel_copy.wgsl"),
    wgsl!("elementwise.wgsl"),
    wgsl!("channel_pool.wgsl"),
    wgsl!("se_gate.wgsl"),
];

/// Names of the compute shaders (the files with an entry point `main`).
pub fn names() -> impl Iterator<Item = &'static str> {
    FILES.iter().map(|(n, _)| *n).filter(|n| !is_include(n))
}

/// Names of every embedded WGSL file, include files too.
pub fn files() -> impl Iterator<Item = &'static str> {
    FILES.iter().map(|(n, _)| *n)
}

/// Include files (no entry point of their own): `common.wgsl` and the `*_body.wgsl`
/// files that several shaders share.
fn is_include(name: &str) -> bool {
    name == "common.wgsl" || name.ends_with("_body.wgsl")
}

/// The names of the `@specialize` constants a shader declares, with their defaults.
pub fn specializations(name: &str) -> Vec<(String, u32)> {
    let Some(text) = raw(name) else {
        return Vec::new();
    };
    text.lines().filter_map(parse_specialize).collect()
}

fn raw(name: &str) -> Option<&'static str> {
    FILES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
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
    let declared = specializations(name);
    if specialize
        .iter()
        .any(|(k, _)| !declared.iter().any(|(d, _)| d == k))
    {
        return None;
    }
    let text = raw(name)?;
    let mut out = String::with_capacity(text.len() + 2048);
    for line in text.lines() {
        if let Some(inc) = line.trim().strip_prefix("#include ") {
            out.push_str(&source(inc.trim().trim_matches('"'), &[])?);
        } else if let Some((const_name, _)) = parse_specialize(line) {
            match specialize.iter().find(|(k, _)| *k == const_name) {
                Some((_, v)) => out.push_str(&format!("const {const_name}: u32 = {v}u;")),
                None => out.push_str(line),
            }
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn specialize_rewrites_only_marked_constants() {
        let specs = super::specializations("conv_direct.wgsl");
        assert!(specs.iter().any(|(n, _)| n == "PX"), "{specs:?}");
        let text = super::source("conv_direct.wgsl", &[("PX", 13)]).unwrap();
        assert!(text.contains("const PX: u32 = 13u;"));
        assert!(!text.lines().any(|l| l.trim_start().starts_with("#include")));
        assert!(super::source("conv_direct.wgsl", &[("NOT_DECLARED", 1)]).is_none());
        assert!(super::source("missing.wgsl", &[]).is_none());
    }
}
