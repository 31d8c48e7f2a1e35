//! The WGSL sources, embedded at build time, with one small preprocessing step.
//!
//! A line `#include "name.wgsl"` is replaced by that file's text; nothing else is
//! rewritten. Specialisation happens through WGSL `override` constants set when a
//! pipeline is created, so the text a shader is validated with is the text that runs.

const FILES: &[(&str, &str)] = &[
    ("common.wgsl", include_str!("../shaders/common.wgsl")),
    (
        "conv_direct.wgsl",
        include_str!("../shaders/conv_direct.wgsl"),
    ),
    (
        "conv_pointwise.wgsl",
        include_str!("../shaders/conv_pointwise.wgsl"),
    ),
    (
        "conv_depthwise.wgsl",
        include_str!("../shaders/conv_depthwise.wgsl"),
    ),
];

/// Names of the compute shaders (the files with an entry point `main`).
pub fn names() -> impl Iterator<Item = &'static str> {
    FILES.iter().map(|(n, _)| *n).filter(|n| !is_include(n))
}

/// Names of every embedded WGSL file, include files too.
pub fn files() -> impl Iterator<Item = &'static str> {
    FILES.iter().map(|(n, _)| *n)
}

fn is_include(name: &str) -> bool {
    name == "common.wgsl"
}

/// The preprocessed WGSL source of a shader, or `None` for an unknown name.
pub fn source(name: &str) -> Option<String> {
    let raw = FILES.iter().find(|(n, _)| *n == name)?.1;
    let mut out = String::with_capacity(raw.len() + 2048);
    for line in raw.lines() {
        match line.trim().strip_prefix("#include ") {
            Some(inc) => {
                let inc = inc.trim().trim_matches('"');
                out.push_str(&source(inc)?);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    Some(out)
}
