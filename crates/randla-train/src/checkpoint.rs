//! Checkpoints: one safetensors file holding the network (Open3D-ML names, under `model/`),
//! Adam's moments (`adam.m/…`, `adam.v/…`), the sampler's possibilities (`possibility/i`), and
//! the trainer's state as JSON in the metadata. Written to a temporary file, synced, renamed.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use randla_model::{Param, StateDict};
use serde::{Deserialize, Serialize};

use crate::adam::Adam;
use crate::error::{Error, Result};

/// Writes `bytes` to `path` through a synced temporary file in the same folder and a rename, so
/// a reader sees the old file or the new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create the folder", e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    res.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, "write atomically", e)
    })
}

/// The trainer's scalar state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimiser steps completed.
    pub global_step: u64,
    /// Learning rate of the next epoch.
    pub lr: f64,
    /// Best validation mIoU so far (and its epoch).
    pub best_miou: Option<f64>,
    /// Epoch of the best mIoU.
    pub best_epoch: Option<usize>,
    /// Configuration fingerprint ([`crate::TrainConfig::fingerprint`]).
    pub fingerprint: String,
    /// Seconds spent training so far (over every process of the run).
    pub elapsed_s: f64,
    /// Adam's step count.
    pub adam_t: u64,
}

/// A checkpoint in memory.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The trainer's state.
    pub state: TrainerState,
    /// The network.
    pub weights: StateDict,
    /// The optimiser.
    pub adam: Adam,
    /// The sampler's possibilities, per cloud.
    pub possibility: Vec<Vec<f32>>,
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl Checkpoint {
    /// Writes the checkpoint atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut items: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (n, p) in self.weights.iter() {
            items.push((format!("model/{n}"), p.shape.clone(), f32_bytes(&p.data)));
        }
        for (n, v) in &self.adam.m {
            items.push((format!("adam.m/{n}"), vec![v.len()], f32_bytes(v)));
        }
        for (n, v) in &self.adam.v {
            items.push((format!("adam.v/{n}"), vec![v.len()], f32_bytes(v)));
        }
        for (i, v) in self.possibility.iter().enumerate() {
            items.push((format!("possibility/{i}"), vec![v.len()], f32_bytes(v)));
        }
        let views = items
            .iter()
            .map(|(n, s, b)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| Error::Checkpoint {
                        path: path.into(),
                        message: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut meta = HashMap::new();
        meta.insert(
            "randla_train_state".to_string(),
            serde_json::to_string(&self.state).expect("state serialises"),
        );
        let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| Error::Checkpoint {
            path: path.into(),
            message: e.to_string(),
        })?;
        write_atomic(path, &bytes)
    }

    /// Reads a checkpoint.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, "read the checkpoint", e))?;
        let bad = |m: String| Error::Checkpoint {
            path: path.into(),
            message: m,
        };
        let (_, meta) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let state: TrainerState = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("randla_train_state"))
            .ok_or_else(|| {
                bad("no trainer state in the metadata (not a randla-train checkpoint)".into())
            })
            .and_then(|s| serde_json::from_str(s).map_err(|e| bad(e.to_string())))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let mut weights = StateDict::new();
        let mut adam = Adam {
            t: state.adam_t,
            ..Adam::default()
        };
        let mut poss: BTreeMap<usize, Vec<f32>> = BTreeMap::new();
        for (name, view) in st.tensors() {
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(bad(format!(
                    "{name}: dtype {:?}, expected F32",
                    view.dtype()
                )));
            }
            let data: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
                .collect();
            if let Some(n) = name.strip_prefix("model/") {
                weights.insert(n, Param::new(view.shape().to_vec(), data));
            } else if let Some(n) = name.strip_prefix("adam.m/") {
                adam.m.insert(n.into(), data);
            } else if let Some(n) = name.strip_prefix("adam.v/") {
                adam.v.insert(n.into(), data);
            } else if let Some(i) = name.strip_prefix("possibility/") {
                let i: usize = i
                    .parse()
                    .map_err(|_| bad(format!("bad tensor name {name}")))?;
                poss.insert(i, data);
            } else {
                return Err(bad(format!("unexpected tensor {name}")));
            }
        }
        if poss.keys().enumerate().any(|(i, k)| i != *k) {
            return Err(bad("possibility tensors are not numbered 0..n".into()));
        }
        Ok(Checkpoint {
            state,
            weights,
            adam,
            possibility: poss.into_values().collect(),
        })
    }
}
