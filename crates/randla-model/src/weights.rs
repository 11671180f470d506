//! Weights: a name → tensor map with Open3D-ML's `state_dict` names, read from Open3D-ML `.pth`
//! checkpoints or our `.safetensors`, checked against a configuration.

use std::collections::BTreeMap;
use std::path::Path;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::RandLaNetConfig;
use crate::error::{Error, Result};

/// One tensor: its shape and its values in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// The shape (empty for a scalar).
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values, row-major.
    pub data: Vec<f32>,
}

impl Param {
    /// A tensor of the given shape and values (their counts must agree).
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Param { shape, data }
    }
}

/// Network weights by Open3D-ML parameter name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDict {
    params: BTreeMap<String, Param>,
}

impl StateDict {
    /// An empty state dict.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads weights: an Open3D-ML/PyTorch checkpoint (`.pth`, `.pt`, `.ckpt`) or safetensors
    /// (`.safetensors`).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        match ext.as_str() {
            "pth" | "pt" | "ckpt" | "tar" => Self::load_pth(path),
            "safetensors" => Self::load_safetensors(path),
            other => Err(Error::Checkpoint {
                path: path.into(),
                message: format!("unknown weights format {other:?}: expected .pth or .safetensors"),
            }),
        }
    }

    /// Reads an Open3D-ML checkpoint (key `model_state_dict`) or a bare PyTorch state dict.
    pub fn load_pth(path: impl AsRef<Path>) -> Result<Self> {
        Ok(StateDict {
            params: crate::pth::read_pth(path.as_ref())?.into_iter().collect(),
        })
    }

    /// Reads a safetensors file (f32, f64, f16, bf16 and integer tensors; all become `f32`).
    pub fn load_safetensors(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_safetensors_bytes(path, &bytes)
    }

    /// Parses safetensors `bytes` (as [`StateDict::load_safetensors`]); `path` names them in
    /// errors.
    pub fn from_safetensors_bytes(path: impl AsRef<Path>, bytes: &[u8]) -> Result<Self> {
        let path = path.as_ref();
        let bad = |message: String| Error::Checkpoint {
            path: path.into(),
            message,
        };
        let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
        let mut params = BTreeMap::new();
        for (name, view) in st.tensors() {
            let data =
                crate::tensor_to_f32(&view).map_err(|m| bad(format!("tensor {name}: {m}")))?;
            params.insert(
                name,
                Param {
                    shape: view.shape().to_vec(),
                    data,
                },
            );
        }
        Ok(StateDict { params })
    }

    /// Writes every tensor as `f32` safetensors, atomically (temporary file, then rename).
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = self
            .params
            .iter()
            .map(|(n, p)| {
                (
                    n.clone(),
                    p.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    p.shape.clone(),
                )
            })
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
            .iter()
            .map(|(n, b, s)| {
                let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .expect("sizes computed from the shape");
                (n.clone(), v)
            })
            .collect();
        let out = safetensors::serialize(views, None).map_err(|e| Error::Checkpoint {
            path: path.into(),
            message: e.to_string(),
        })?;
        crate::write_atomic(path, &out)
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Result<&Param> {
        self.params
            .get(name)
            .ok_or_else(|| Error::MissingParameter {
                name: name.into(),
                expected: vec![],
            })
    }

    /// Inserts or replaces a tensor.
    pub fn insert(&mut self, name: impl Into<String>, param: Param) {
        self.params.insert(name.into(), param);
    }

    /// Removes a tensor.
    pub fn remove(&mut self, name: &str) -> Option<Param> {
        self.params.remove(name)
    }

    /// Every tensor, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Param)> {
        self.params.iter()
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// True when there is no tensor.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Number of values in trainable tensors (batch-norm running statistics excluded).
    pub fn num_trainable_parameters(&self) -> usize {
        self.params
            .iter()
            .filter(|(n, _)| crate::config::is_trainable(n))
            .map(|(_, p)| p.data.len())
            .sum()
    }

    /// Checks the tensors against `config`: every expected tensor present with its shape, no
    /// tensor the configuration does not know, every value finite. A missing
    /// `num_batches_tracked` counter is tolerated (it does not affect the network).
    pub fn check(&self, config: &RandLaNetConfig) -> Result<()> {
        let expected = config.parameter_shapes();
        for (name, shape) in &expected {
            match self.params.get(name) {
                None if name.ends_with("num_batches_tracked") => {}
                None => {
                    return Err(Error::MissingParameter {
                        name: name.clone(),
                        expected: shape.clone(),
                    });
                }
                Some(p) if &p.shape != shape => {
                    return Err(Error::ShapeMismatch {
                        name: name.clone(),
                        expected: shape.clone(),
                        actual: p.shape.clone(),
                    });
                }
                Some(p) => {
                    if let Some(i) = p.data.iter().position(|v| !v.is_finite()) {
                        return Err(Error::NonFiniteParameter {
                            name: name.clone(),
                            index: i,
                            value: p.data[i],
                        });
                    }
                }
            }
        }
        let known: std::collections::HashSet<&str> =
            expected.iter().map(|(n, _)| n.as_str()).collect();
        if let Some((name, p)) = self
            .params
            .iter()
            .find(|(n, _)| !known.contains(n.as_str()))
        {
            return Err(Error::UnexpectedParameter {
                name: name.clone(),
                shape: p.shape.clone(),
            });
        }
        Ok(())
    }

    /// The configuration these weights imply: layers, widths, input channels and classes are read
    /// off the tensor shapes; what weights cannot tell (`num_neighbors`, `sub_sampling_ratio`,
    /// `num_points`, `grid_size`) keeps the defaults of `base`. The result is checked against the
    /// weights.
    pub fn infer_config(&self, base: &RandLaNetConfig) -> Result<RandLaNetConfig> {
        let shape = |name: &str| self.get(name).map(|p| p.shape.clone());
        let fc0 = shape("fc0.weight")?;
        let head = shape("fc1.3.conv.weight")?;
        let mut dim_output = Vec::new();
        while let Ok(s) = shape(&format!("encoder.{}.mlp2.conv.weight", dim_output.len())) {
            dim_output.push(s[1]);
        }
        let layers = dim_output.len();
        let mut cfg = RandLaNetConfig {
            num_layers: layers,
            in_channels: fc0.get(1).copied().unwrap_or(0),
            dim_features: fc0.first().copied().unwrap_or(0),
            num_classes: head.first().copied().unwrap_or(0),
            dim_output,
            ..base.clone()
        };
        if cfg.sub_sampling_ratio.len() != layers {
            cfg.sub_sampling_ratio = (0..layers)
                .map(|i| base.sub_sampling_ratio.get(i).copied().unwrap_or(4))
                .collect();
        }
        cfg.validate()?;
        self.check(&cfg)?;
        Ok(cfg)
    }

    /// Fresh weights for `config`, initialised as PyTorch initialises Open3D-ML's modules:
    /// linear and convolution weights and biases uniform in ±1/√fan_in (Kaiming-uniform with
    /// a = √5), batch-norm γ = 1, β = 0, running mean 0, running variance 1. Deterministic in `seed`.
    pub fn random(config: &RandLaNetConfig, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let shapes = config.parameter_shapes();
        let fan_in_of: BTreeMap<String, usize> = shapes
            .iter()
            .filter(|(n, s)| n.ends_with("weight") && s.len() >= 2)
            .map(|(n, s)| {
                // PyTorch takes fan-in from dimension 1: `in` for Linear/Conv2d [out, in, ..],
                // `out` for ConvTranspose2d [in, out, ..].
                (
                    n.trim_end_matches("weight").to_string(),
                    s[1] * s[2..].iter().product::<usize>(),
                )
            })
            .collect();
        let mut params = BTreeMap::new();
        for (name, shape) in shapes {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = if name.contains("batch_norm.") || name.starts_with("bn0.") {
                let v = if name.ends_with(".weight") || name.ends_with("running_var") {
                    1.0
                } else {
                    0.0
                };
                vec![v; n]
            } else {
                let stem = name.trim_end_matches("weight").trim_end_matches("bias");
                let fan_in = fan_in_of.get(stem).copied().unwrap_or(1).max(1);
                let bound = 1.0 / (fan_in as f32).sqrt();
                (0..n)
                    .map(|_| (rng.random::<f32>() * 2.0 - 1.0) * bound)
                    .collect()
            };
            params.insert(name, Param { shape, data });
        }
        StateDict { params }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_weights_fit_their_config() {
        let cfg = RandLaNetConfig::default();
        let sd = StateDict::random(&cfg, 1);
        sd.check(&cfg).unwrap();
        assert_eq!(
            sd.num_trainable_parameters(),
            cfg.num_trainable_parameters()
        );
        assert_eq!(sd, StateDict::random(&cfg, 1));
        assert_ne!(sd, StateDict::random(&cfg, 2));
        let w = &sd.get("encoder.1.mlp1.conv.weight").unwrap().data;
        let bound = 1.0 / (32f32).sqrt();
        assert!(w.iter().all(|v| v.abs() <= bound));
        assert!(w.iter().any(|v| v.abs() > bound * 0.5));
    }

    #[test]
    fn config_is_inferred_from_shapes() {
        let s3dis = crate::RandLaNetConfig::preset(crate::Preset::S3dis);
        let sd = StateDict::random(&s3dis, 3);
        let got = sd.infer_config(&RandLaNetConfig::default()).unwrap();
        // Shapes give the network; the rest keeps the base's values (ratio 4 for the new layer).
        assert_eq!(
            (
                got.num_layers,
                &got.dim_output,
                got.in_channels,
                got.num_classes
            ),
            (5, &s3dis.dim_output, 6, 13)
        );
        assert_eq!(got.sub_sampling_ratio, vec![4; 5]);
        assert_eq!(sd.infer_config(&s3dis).unwrap(), s3dis);
        let mut broken = sd.clone();
        broken.remove("fc0.weight");
        assert!(
            broken
                .infer_config(&RandLaNetConfig::default())
                .unwrap_err()
                .to_string()
                .contains("fc0.weight")
        );
    }

    #[test]
    fn check_names_the_offending_tensor() {
        let cfg = RandLaNetConfig::default();
        let mut sd = StateDict::random(&cfg, 1);
        sd.remove("encoder.2.pool1.score_fn.0.bias");
        let e = sd.check(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("missing parameter encoder.2.pool1.score_fn.0.bias"),
            "{e}"
        );
        let mut sd = StateDict::random(&cfg, 1);
        sd.insert(
            "decoder.1.conv.weight",
            Param::new(vec![2, 2], vec![0.0; 4]),
        );
        let e = sd.check(&cfg).unwrap_err().to_string();
        assert!(e.contains("decoder.1.conv.weight has shape [2, 2]"), "{e}");
        let mut sd = StateDict::random(&cfg, 1);
        sd.insert("encoder.9.extra", Param::new(vec![1], vec![0.0]));
        let e = sd.check(&cfg).unwrap_err().to_string();
        assert!(e.contains("unexpected parameter encoder.9.extra"), "{e}");
        let mut sd = StateDict::random(&cfg, 1);
        sd.insert("fc0.bias", Param::new(vec![8], vec![f32::NAN; 8]));
        assert!(
            sd.check(&cfg)
                .unwrap_err()
                .to_string()
                .contains("non-finite")
        );
    }
}
