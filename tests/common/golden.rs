//! Helpers shared by the golden tests (`tests/golden_*.rs`): the GPU context, reading the
//! JSON cases that the scripts in `tests/golden/` write, comparing results with PyTorch's
//! and reporting the failures.
//!
//! Every reader takes the case's `name` and the `key` it reads, only for its panic
//! messages: a malformed golden file fails loudly, naming the case and the field.

use std::fmt::Debug;
use std::sync::OnceLock;

use ndarray::{Array, Array1, ArrayView4, Dimension, StrideShape};
use segblocks::ops::Activation;
use segblocks::Gpu;
use serde_json::Value;

// ----------------------------------------------------------------------------------------
// GPU

/// One context per test binary; fails loudly (never skips) when there is no adapter.
/// `binary` is the test binary's name (`"golden_conv"`, ...), for the log line naming the
/// adapter and for the panic.
pub fn gpu(binary: &str) -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let g =
            Gpu::new().unwrap_or_else(|e| panic!("no GPU adapter for the {binary} tests: {e:?}"));
        eprintln!(
            "{binary}: testing on {} ({:?})",
            g.adapter_info().name,
            g.adapter_info().backend
        );
        g
    })
}

// ----------------------------------------------------------------------------------------
// Loading

/// Where `SEGBLOCKS_GOLDEN_DIR` asks to read the golden file `path` (`tests/golden/x.json`)
/// from instead, when it holds a file of that name: random cases written by
/// `scripts/fuzz_golden.py` in the same format. Tests that check the committed files'
/// coverage fail on such files; the comparisons with PyTorch are what they are for.
fn fuzz_override(path: &str) -> Option<(String, String)> {
    let dir = std::env::var_os(GOLDEN_DIR_VAR)?;
    let name = std::path::Path::new(path).file_name()?;
    let file = std::path::Path::new(&dir).join(name);
    let text = std::fs::read_to_string(&file).ok()?;
    eprintln!("reading {} instead of {path}", file.display());
    Some((text, file.display().to_string()))
}

/// Whether the golden files are being replaced by random ones (`SEGBLOCKS_GOLDEN_DIR`):
/// a family may then have no cases.
pub fn fuzzing() -> bool {
    std::env::var_os(GOLDEN_DIR_VAR).is_some()
}

/// The environment variable naming a directory of replacement golden files.
const GOLDEN_DIR_VAR: &str = "SEGBLOCKS_GOLDEN_DIR";

/// The text of the golden file at `path` (from the repository root), or of its
/// `SEGBLOCKS_GOLDEN_DIR` replacement.
pub fn golden_text(path: &str) -> String {
    match fuzz_override(path) {
        Some((text, _)) => text,
        None => {
            let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
            std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()))
        }
    }
}

/// The golden directory `dir` (from the repository root, `tests/golden/blocks`), or the
/// directory of the same name under `SEGBLOCKS_GOLDEN_DIR` when that holds one.
pub fn golden_dir(dir: &str) -> std::path::PathBuf {
    let committed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let replaced = std::env::var_os(GOLDEN_DIR_VAR).and_then(|root| {
        let name = std::path::Path::new(dir).file_name()?;
        let replaced = std::path::Path::new(&root).join(name);
        replaced.is_dir().then_some(replaced)
    });
    match replaced {
        Some(d) => {
            eprintln!("reading {} instead of {dir}", d.display());
            d
        }
        None => committed,
    }
}

/// The cases of a golden file: `json` is its text, which must be a non-empty JSON list;
/// `path` names the file in the panics. With `SEGBLOCKS_GOLDEN_DIR` set, a file of the
/// same name there replaces it.
pub fn cases(json: &str, path: &str) -> Vec<Value> {
    let replaced = fuzz_override(path);
    let (json, path) = match &replaced {
        Some((text, file)) => (text.as_str(), file.as_str()),
        None => (json, path),
    };
    let root: Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{path} is not JSON: {e:?}"));
    let Value::Array(cases) = root else {
        panic!("{path}: want a list of cases")
    };
    assert!(!cases.is_empty(), "{path} has no cases");
    cases
}

/// The field `key` of a case (or of any JSON object); it must be present (it may be null).
pub fn field<'a>(case: &'a Value, name: &str, key: &str) -> &'a Value {
    case.get(key)
        .unwrap_or_else(|| panic!("case {name}: missing field {key:?}"))
}

/// `v` as an unsigned integer; `key` is where it was read.
pub fn usize_of(v: &Value, name: &str, key: &str) -> usize {
    v.as_u64()
        .unwrap_or_else(|| panic!("case {name}: {key:?} is not an unsigned integer: {v}"))
        as usize
}

/// The unsigned integer field `key`.
pub fn usize_field(case: &Value, name: &str, key: &str) -> usize {
    usize_of(field(case, name, key), name, key)
}

/// `v` as a list of unsigned integers, of any length.
pub fn usize_vec_of(v: &Value, name: &str, key: &str) -> Vec<usize> {
    v.as_array()
        .unwrap_or_else(|| panic!("case {name}: {key:?} is not an array"))
        .iter()
        .map(|x| usize_of(x, name, key))
        .collect()
}

/// The field `key` as a list of unsigned integers, of any length.
pub fn usize_vec(case: &Value, name: &str, key: &str) -> Vec<usize> {
    usize_vec_of(field(case, name, key), name, key)
}

/// `v` as exactly `N` unsigned integers (a pair of sizes, a 4-D shape).
pub fn usizes_of<const N: usize>(v: &Value, name: &str, key: &str) -> [usize; N] {
    usize_vec_of(v, name, key)
        .try_into()
        .unwrap_or_else(|v: Vec<usize>| {
            panic!("case {name}: {key:?} has {} entries, want {N}", v.len())
        })
}

/// The field `key` as exactly `N` unsigned integers (a pair of sizes, a 4-D shape).
pub fn usizes<const N: usize>(case: &Value, name: &str, key: &str) -> [usize; N] {
    usizes_of(field(case, name, key), name, key)
}

/// The string field `key`.
pub fn str_of<'a>(case: &'a Value, name: &str, key: &str) -> &'a str {
    field(case, name, key)
        .as_str()
        .unwrap_or_else(|| panic!("case {name}: {key:?} is not a string"))
}

/// The boolean field `key`.
pub fn bool_of(case: &Value, name: &str, key: &str) -> bool {
    field(case, name, key)
        .as_bool()
        .unwrap_or_else(|| panic!("case {name}: {key:?} is not a bool"))
}

/// A float written as a JSON number: the shortest decimal of an f32, so parsing as f64
/// and casting gives the f32 back exactly (the scripts check this). Rejects anything else,
/// strings included.
pub fn number_of(x: &Value, name: &str, key: &str) -> f32 {
    x.as_f64()
        .unwrap_or_else(|| panic!("case {name}: {key:?} holds a non-number: {x}")) as f32
}

/// A float that may be non-finite: a JSON number (see [`number_of`]), or the string
/// "nan", "inf" or "-inf" (JSON has no literal for these).
pub fn float_of(x: &Value, name: &str, key: &str) -> f32 {
    match x {
        Value::String(s) => match s.as_str() {
            "nan" => f32::NAN,
            "inf" => f32::INFINITY,
            "-inf" => f32::NEG_INFINITY,
            other => panic!("case {name}: {key:?} holds an unknown float string {other:?}"),
        },
        _ => number_of(x, name, key),
    }
}

/// The float field `key`, possibly non-finite (see [`float_of`]).
pub fn float_field(case: &Value, name: &str, key: &str) -> f32 {
    float_of(field(case, name, key), name, key)
}

/// `v` as a list of finite floats, each a JSON number (see [`number_of`]): for golden
/// files that have no non-finite values.
pub fn numbers(v: &Value, name: &str, key: &str) -> Vec<f32> {
    v.as_array()
        .unwrap_or_else(|| panic!("case {name}: {key:?} is not an array"))
        .iter()
        .map(|x| number_of(x, name, key))
        .collect()
}

/// `v` as a list of floats, possibly non-finite (see [`float_of`]).
pub fn floats(v: &Value, name: &str, key: &str) -> Vec<f32> {
    v.as_array()
        .unwrap_or_else(|| panic!("case {name}: {key:?} is not an array"))
        .iter()
        .map(|x| float_of(x, name, key))
        .collect()
}

/// `data` (the values of `key`, in row-major order) as an array of `shape`; panics when
/// the number of values does not fit the shape.
pub fn shaped<T, D, Sh>(data: Vec<T>, name: &str, key: &str, shape: Sh) -> Array<T, D>
where
    D: Dimension,
    Sh: Into<StrideShape<D>> + Clone + Debug,
{
    Array::from_shape_vec(shape.clone(), data)
        .unwrap_or_else(|e| panic!("case {name}: {key:?} does not have shape {shape:?}: {e}"))
}

/// The field `key`, a flat list of floats (possibly non-finite, see [`float_of`]), as an
/// array of `shape` (`[usize; 4]` for an `Array4`, and so on).
pub fn array<D, Sh>(case: &Value, name: &str, key: &str, shape: Sh) -> Array<f32, D>
where
    D: Dimension,
    Sh: Into<StrideShape<D>> + Clone + Debug,
{
    shaped(floats(field(case, name, key), name, key), name, key, shape)
}

/// As [`array`], for golden files that have no non-finite values: every value must be a
/// JSON number (see [`numbers`]).
pub fn number_array<D, Sh>(case: &Value, name: &str, key: &str, shape: Sh) -> Array<f32, D>
where
    D: Dimension,
    Sh: Into<StrideShape<D>> + Clone + Debug,
{
    shaped(numbers(field(case, name, key), name, key), name, key, shape)
}

/// The bias of a convolution-like case, `None` when it has none. JSON cannot repeat the
/// key "bias": the flag is `"bias"` (`has_bias`, which the caller has read), the values
/// `"bias_values"` (null without a bias), read as a list by `read` ([`floats`] or
/// [`numbers`]). Panics when the two disagree or there are not `out_channels` values.
pub fn bias_values(
    case: &Value,
    name: &str,
    has_bias: bool,
    out_channels: usize,
    read: fn(&Value, &str, &str) -> Vec<f32>,
) -> Option<Array1<f32>> {
    let bias = match field(case, name, "bias_values") {
        Value::Null => None,
        v => Some(Array1::from(read(v, name, "bias_values"))),
    };
    assert_eq!(
        bias.is_some(),
        has_bias,
        "case {name}: \"bias\" flag disagrees with \"bias_values\""
    );
    if let Some(b) = &bias {
        assert_eq!(b.len(), out_channels, "case {name}: bias length");
    }
    bias
}

/// An activation by PyTorch's name for it (`"none"`, `"relu"`, `"hardswish"`, ...).
pub fn activation(s: &str, name: &str) -> Activation {
    match s {
        "none" => Activation::None,
        "relu" => Activation::Relu,
        "relu6" => Activation::Relu6,
        "sigmoid" => Activation::Sigmoid,
        "hardsigmoid" => Activation::HardSigmoid,
        "hardswish" => Activation::HardSwish,
        "silu" => Activation::Silu,
        "tanh" => Activation::Tanh,
        "gelu" => Activation::Gelu,
        "gelu_tanh" => Activation::GeluTanh,
        "mish" => Activation::Mish,
        other => panic!("case {name}: unknown activation {other:?}"),
    }
}

// ----------------------------------------------------------------------------------------
// Comparing

/// How a result's values are compared with PyTorch's.
#[derive(Clone, Copy, Debug)]
pub enum Tol {
    /// Bitwise equal, except that any NaN equals any NaN (pure data movement, max, ...).
    Exact,
    /// `|got - want| <= tol * (1 + |want|)`; a non-finite value must match as under
    /// [`Tol::Exact`].
    Rel(f32),
}

/// Counts the values out of bounds and remembers the worst one.
#[derive(Default)]
pub struct OutOfBounds {
    bad: usize,
    worst: Option<(f32, String)>,
}

impl OutOfBounds {
    /// Records one value out of bounds by `ratio` (how far out: `|got - want| / bound`,
    /// infinite for a NaN or infinity mismatch). `describe` is called only when the value
    /// is the worst so far; the first of equally bad values is kept.
    // `!(ratio <= worst)` rather than `ratio > worst`: a NaN ratio counts as the worst.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    pub fn record(&mut self, ratio: f32, describe: impl FnOnce() -> String) {
        self.bad += 1;
        if self.worst.as_ref().is_none_or(|(r, _)| !(ratio <= *r)) {
            self.worst = Some((ratio, describe()));
        }
    }

    /// `None` when nothing was recorded, else how many of the `total` values are out of
    /// bounds and the worst of them.
    pub fn message(self, total: usize) -> Option<String> {
        self.worst
            .map(|(_, msg)| format!("{} of {total} values out of bounds; worst {msg}", self.bad))
    }
}

/// The largest `|got - want| / (1 + |want|)` (infinite for a NaN or infinity mismatch,
/// zero for matching NaNs and infinities), and `None` when every value is within `tol`,
/// else a description of the worst offender and how many values are out of bounds.
pub fn compare(got: ArrayView4<f32>, want: ArrayView4<f32>, tol: Tol) -> (f32, Option<String>) {
    if got.shape() != want.shape() {
        return (
            f32::INFINITY,
            Some(format!("shape {:?}, want {:?}", got.shape(), want.shape())),
        );
    }
    let mut max_rel = 0.0f32;
    let mut out = OutOfBounds::default();
    for ((idx, &g), &w) in got.indexed_iter().zip(want.iter()) {
        // Non-finite values (and everything under Tol::Exact) must match bit for bit, any
        // NaN matching any NaN.
        let same = (g.is_nan() && w.is_nan()) || g.to_bits() == w.to_bits();
        let (rel, ratio, ok, bound) = match tol {
            _ if same => (0.0, 0.0, true, 0.0),
            Tol::Rel(t) if w.is_finite() => {
                let err = (g - w).abs();
                let bound = t * (1.0 + w.abs());
                let rel = if err.is_nan() {
                    f32::INFINITY
                } else {
                    err / (1.0 + w.abs())
                };
                (rel, rel / t, err <= bound, bound)
            }
            _ => (f32::INFINITY, f32::INFINITY, false, 0.0),
        };
        max_rel = max_rel.max(rel);
        if !ok {
            out.record(ratio, || {
                let how = match tol {
                    Tol::Exact => format!(
                        "bits {:#010x}, want {:#010x} (exact match required)",
                        g.to_bits(),
                        w.to_bits()
                    ),
                    Tol::Rel(_) => format!("|diff| {:e} > bound {bound:e}", (g - w).abs()),
                };
                format!("at {idx:?}: got {g}, want {w}, {how}")
            });
        }
    }
    (max_rel, out.message(got.len()))
}

// ----------------------------------------------------------------------------------------
// Reporting

/// Asserts that the cases' names are unique.
#[track_caller]
pub fn assert_unique_names<'a>(names: impl IntoIterator<Item = &'a str>) {
    let mut names: Vec<&str> = names.into_iter().collect();
    let count = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), count, "duplicate case names");
}

/// Asserts that a test collected no failures, else panics with all of them, one a line.
#[track_caller]
pub fn assert_no_failures(failures: &[String]) {
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
