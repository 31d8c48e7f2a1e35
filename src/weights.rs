//! Weights by PyTorch state-dict name: read from safetensors files (f32, f16, bf16 or f64,
//! converted to f32, and integer buffers such as batch norm's `num_batches_tracked` as
//! their values in f32) or filled in memory, looked up with the shape the caller expects.
//! Every failure names the tensor: missing, mis-shaped, or of an unsupported type.

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::{Array1, Array4, ArrayD, IxDyn};

use crate::error::{Error, Result};

/// Named f32 tensors, as a PyTorch `state_dict` holds them.
#[derive(Clone, Debug, Default)]
pub struct StateDict {
    tensors: BTreeMap<String, ArrayD<f32>>,
    /// When set, a missing tensor is made up (deterministically from its name) instead of
    /// being an error: for benchmarks and smoke tests of architectures without a file.
    synthetic: bool,
}

/// f16 bits to f32 (IEEE 754 binary16: subnormals, infinities and NaN included).
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: value = f * 2^-24.
            let v = f as f32 * f32::from_bits(0x3380_0000);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, f) => sign | 0x7fc0_0000 | (f << 13),
        (e, f) => sign | ((e + 112) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

impl StateDict {
    /// An empty state dict.
    pub fn new() -> Self {
        Self::default()
    }

    /// A state dict that makes up every tensor asked for, deterministically from its name
    /// and shape: small weights, and batch-norm statistics in their valid ranges
    /// (`running_var` and `weight` near 1). For benchmarks and smoke tests, never for
    /// accuracy.
    pub fn synthetic() -> Self {
        StateDict {
            tensors: BTreeMap::new(),
            synthetic: true,
        }
    }

    fn make_up(name: &str, shape: &[usize]) -> ArrayD<f32> {
        // FNV-1a of the name seeds a small linear congruential sequence.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
        let scale = 1.0 / (fan_in as f32).sqrt();
        let centre =
            if name.ends_with("running_var") || (name.ends_with(".weight") && shape.len() == 1) {
                1.0
            } else {
                0.0
            };
        ArrayD::from_shape_fn(IxDyn(shape), |_| {
            h = h
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (h >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            centre + u * if centre == 0.0 { 2.0 * scale } else { 0.5 }
        })
    }

    /// Parses a safetensors file's bytes.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Self> {
        use safetensors::Dtype;
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| Error::Weights(format!("not a safetensors file: {e}")))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.iter() {
            let data = view.data();
            let values: Vec<f32> = match view.dtype() {
                Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                Dtype::F16 => data
                    .chunks_exact(2)
                    .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                    .collect(),
                Dtype::BF16 => data
                    .chunks_exact(2)
                    .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
                    .collect(),
                Dtype::F64 => data
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                    .collect(),
                // Integer buffers (batch norm's `num_batches_tracked`, index tables): their
                // values as f32, exact up to 2^24.
                Dtype::I64 => data
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                    .collect(),
                Dtype::U64 => data
                    .chunks_exact(8)
                    .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                    .collect(),
                Dtype::I32 => data
                    .chunks_exact(4)
                    .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32)
                    .collect(),
                Dtype::U32 => data
                    .chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32)
                    .collect(),
                Dtype::I16 => data
                    .chunks_exact(2)
                    .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])))
                    .collect(),
                Dtype::U16 => data
                    .chunks_exact(2)
                    .map(|b| f32::from(u16::from_le_bytes([b[0], b[1]])))
                    .collect(),
                Dtype::I8 => data.iter().map(|&b| f32::from(b as i8)).collect(),
                Dtype::U8 | Dtype::BOOL => data.iter().map(|&b| f32::from(b)).collect(),
                other => {
                    return Err(Error::Weights(format!(
                        "tensor `{name}` has type {other:?}; floating-point (F64, F32, F16, \
                         BF16) and integer tensors load"
                    )))
                }
            };
            let array = ArrayD::from_shape_vec(IxDyn(view.shape()), values)
                .map_err(|e| Error::Weights(format!("tensor `{name}`: {e}")))?;
            tensors.insert(name.to_string(), array);
        }
        Ok(StateDict {
            tensors,
            synthetic: false,
        })
    }

    /// Reads a safetensors file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .map_err(|e| Error::Weights(format!("reading {}: {e}", path.display())))?;
        Self::from_safetensors(&bytes)
    }

    /// Adds or replaces a tensor. A tensor in another memory order (a transposed view's
    /// copy, Fortran order) is stored in row-major order, as PyTorch's contiguous
    /// tensors are, so that the layers can reshape it.
    pub fn insert(&mut self, name: impl Into<String>, tensor: ArrayD<f32>) {
        let tensor = if tensor.is_standard_layout() {
            tensor
        } else {
            tensor.as_standard_layout().into_owned()
        };
        self.tensors.insert(name.into(), tensor);
    }

    /// Tensor names in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// True when `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The tensor `name` as stored, if present.
    pub fn tensor(&self, name: &str) -> Option<&ArrayD<f32>> {
        self.tensors.get(name)
    }

    /// The tensor `name` with exactly `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<ArrayD<f32>> {
        if self.synthetic && !self.tensors.contains_key(name) {
            return Ok(Self::make_up(name, shape));
        }
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| Error::Weights(format!("missing tensor `{name}` (shape {shape:?})")))?;
        if t.shape() != shape {
            return Err(Error::Weights(format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                t.shape()
            )));
        }
        Ok(t.clone())
    }

    /// A 4-D tensor (convolution weights, activations).
    pub fn get4(&self, name: &str, shape: [usize; 4]) -> Result<Array4<f32>> {
        self.get(name, &shape)?
            .into_dimensionality()
            .map_err(|e| Error::Weights(format!("tensor `{name}`: {e}")))
    }

    /// A 1-D tensor (biases, batch-norm parameters).
    pub fn get1(&self, name: &str, len: usize) -> Result<Array1<f32>> {
        self.get(name, &[len])?
            .into_dimensionality()
            .map_err(|e| Error::Weights(format!("tensor `{name}`: {e}")))
    }
}

/// `name` under `prefix` in a state dict: `prefix.name`, or `name` for an empty prefix.
pub(crate) fn key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::{f16_to_f32, StateDict};

    #[test]
    fn synthetic_tensors_are_deterministic_and_in_range() {
        let sd = StateDict::synthetic();
        let a = sd.get("layer.conv.weight", &[4, 3, 3, 3]).unwrap();
        assert_eq!(a, sd.get("layer.conv.weight", &[4, 3, 3, 3]).unwrap());
        assert!(a.iter().all(|v| v.abs() <= 0.2));
        let var = sd.get1("layer.bn.running_var", 8).unwrap();
        assert!(var.iter().all(|v| (0.7..=1.3).contains(v)));
        assert!(StateDict::new().get("x", &[1]).is_err());
    }

    /// A PyTorch state dict as `safetensors.torch.save_file` writes it: batch norm's
    /// `num_batches_tracked` in I64 beside the F32 weights (and other integer and F64
    /// tensors) loads, each value as f32; an 8-bit float is refused by name.
    #[test]
    fn integer_and_f64_tensors_load_as_f32() {
        use safetensors::tensor::TensorView;
        use safetensors::Dtype;
        let weight: Vec<u8> = [0.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let tracked = 1234i64.to_le_bytes().to_vec();
        let double: Vec<u8> = [0.25f64, -3.5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let index: Vec<u8> = [7i32, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
        let mask = vec![1u8, 0];
        let tensors = [
            (
                "bn.weight",
                TensorView::new(Dtype::F32, vec![2], &weight).unwrap(),
            ),
            (
                "bn.num_batches_tracked",
                TensorView::new(Dtype::I64, vec![], &tracked).unwrap(),
            ),
            (
                "double",
                TensorView::new(Dtype::F64, vec![2], &double).unwrap(),
            ),
            (
                "index",
                TensorView::new(Dtype::I32, vec![2], &index).unwrap(),
            ),
            (
                "mask",
                TensorView::new(Dtype::BOOL, vec![2], &mask).unwrap(),
            ),
        ];
        let bytes = safetensors::serialize(tensors, None).unwrap();
        let sd = StateDict::from_safetensors(&bytes).unwrap();
        let values = |n: &str| sd.tensor(n).unwrap().iter().copied().collect::<Vec<f32>>();
        assert_eq!(values("bn.weight"), [0.5, -2.0]);
        assert_eq!(values("bn.num_batches_tracked"), [1234.0]);
        assert_eq!(values("double"), [0.25, -3.5]);
        assert_eq!(values("index"), [7.0, -1.0]);
        assert_eq!(values("mask"), [1.0, 0.0]);
        let fp8 = [TensorView::new(Dtype::F8_E4M3, vec![2], &mask).unwrap()];
        let bytes = safetensors::serialize(fp8.into_iter().map(|t| ("fp8", t)), None).unwrap();
        let err = StateDict::from_safetensors(&bytes).unwrap_err();
        assert!(err.to_string().contains("fp8"), "{err}");
    }

    #[test]
    fn f16_conversion_covers_every_class() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
    }
}
