//! # randla-model: RandLA-Net described without a tensor library
//!
//! What every implementation of the network shares (the burn network in `randla-burn`, the fused
//! CPU engine in `randla-engine`):
//! - [`RandLaNetConfig`]: the hyper-parameters with Open3D-ML's names and defaults, read from our
//!   TOML or from Open3D-ML's YAML configs unchanged;
//! - [`StateDict`]: the weights by Open3D-ML parameter name, read from Open3D-ML `.pth`
//!   checkpoints (a small, non-executing torch reader) or safetensors, checked against a config;
//! - [`Batch`]: the network input, Open3D-ML's layout, built from [`randla_geom::Pyramid`]s or read
//!   from safetensors;
//! - [`model_dir`]: our native model directory (`config.toml` + `weights.safetensors`).
//!
//! ```
//! use randla_model::{RandLaNetConfig, StateDict};
//! let config = RandLaNetConfig::default(); // SemanticKITTI: 4 layers, 1.24 M parameters
//! let weights = StateDict::random(&config, 0);
//! weights.check(&config).unwrap();
//! assert_eq!(weights.num_trainable_parameters(), 1_242_307);
//! ```

pub mod batch;
pub mod config;
pub mod error;
pub mod model_dir;
mod pth;
pub mod weights;

use std::path::Path;

pub use batch::Batch;
pub use config::{Preset, RandLaNetConfig};
pub use error::{Error, Result};
pub use weights::{Param, StateDict};

/// Converts a safetensors view of any float or integer type to `f32` values.
pub(crate) fn tensor_to_f32(
    v: &safetensors::tensor::TensorView<'_>,
) -> std::result::Result<Vec<f32>, String> {
    use safetensors::Dtype::*;
    let d = v.data();
    Ok(match v.dtype() {
        F32 => d
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        F64 => d
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        BF16 => d
            .chunks_exact(2)
            .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
            .collect(),
        I64 => d
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        I32 => d
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        other => return Err(format!("unsupported dtype {other:?}")),
    })
}

/// Converts an integer safetensors view to `u32` indices, refusing negative or huge values.
pub(crate) fn tensor_to_u32(
    v: &safetensors::tensor::TensorView<'_>,
) -> std::result::Result<Vec<u32>, String> {
    use safetensors::Dtype::*;
    let d = v.data();
    let vals: Vec<i64> = match v.dtype() {
        I64 => d
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        I32 => d
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64)
            .collect(),
        U32 => d
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()) as i64)
            .collect(),
        other => {
            return Err(format!(
                "index tensors must be int64, int32 or uint32, got {other:?}"
            ));
        }
    };
    vals.iter()
        .enumerate()
        .map(|(i, &x)| {
            u32::try_from(x).map_err(|_| format!("index {x} at flat position {i} is out of range"))
        })
        .collect()
}

/// Writes `bytes` to `path` through a temporary file in the same folder, then renames it into
/// place, so a reader never sees a half-written file (`randla_io`'s atomic write: its temporary
/// file is also removed when `randla` is interrupted mid-write).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    randla_io::atomic::write_atomic(path, &[], true, |f| f.write_all_or_err(bytes))
        .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))
}

/// Serialises named tensors to safetensors, atomically.
pub(crate) fn save_tensors(
    path: &Path,
    tensors: &[(String, safetensors::Dtype, Vec<usize>, Vec<u8>)],
) -> Result<()> {
    let views = tensors
        .iter()
        .map(|(n, dt, shape, bytes)| {
            safetensors::tensor::TensorView::new(*dt, shape.clone(), bytes)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::batch(n.clone(), e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let out = safetensors::serialize(views, None).map_err(|e| Error::Checkpoint {
        path: path.into(),
        message: e.to_string(),
    })?;
    write_atomic(path, &out)
}
