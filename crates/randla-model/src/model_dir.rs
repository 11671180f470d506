//! Our native model directory: `config.toml` (the network configuration under `[model]`, plus
//! whatever sections training adds) and `weights.safetensors` (Open3D-ML parameter names, f32).

use std::path::{Path, PathBuf};

use crate::config::RandLaNetConfig;
use crate::error::{Error, Result};
use crate::weights::StateDict;

/// File name of the configuration inside a model directory.
pub const CONFIG_FILE: &str = "config.toml";
/// File name of the weights inside a model directory.
pub const WEIGHTS_FILE: &str = "weights.safetensors";

/// A model loaded from a directory.
#[derive(Debug, Clone)]
pub struct ModelDir {
    /// The directory.
    pub path: PathBuf,
    /// The network configuration.
    pub config: RandLaNetConfig,
    /// The weights, checked against the configuration.
    pub weights: StateDict,
}

impl ModelDir {
    /// Loads and checks a model directory.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(Error::io(dir, std::io::Error::new(std::io::ErrorKind::NotFound, "not a model directory")));
        }
        let config = RandLaNetConfig::from_file(dir.join(CONFIG_FILE))?;
        let weights = StateDict::load_safetensors(dir.join(WEIGHTS_FILE))?;
        weights.check(&config)?;
        Ok(ModelDir { path: dir.into(), config, weights })
    }

    /// Writes `config` and `weights` (checked first) into `dir`, creating it; each file is written
    /// atomically. Refuses to replace an existing model unless `overwrite`. `extra_toml` is
    /// appended to `config.toml` (training adds its data and label sections there).
    pub fn save(dir: impl AsRef<Path>, config: &RandLaNetConfig, weights: &StateDict, extra_toml: &str, overwrite: bool) -> Result<()> {
        let dir = dir.as_ref();
        weights.check(config)?;
        if !overwrite && (dir.join(CONFIG_FILE).exists() || dir.join(WEIGHTS_FILE).exists()) {
            return Err(Error::io(
                dir,
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "a model is already there (use --force to replace it)"),
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        weights.save_safetensors(dir.join(WEIGHTS_FILE))?;
        let mut text = String::from("# RandLA-Net configuration (Open3D-ML parameter names).\n");
        text.push_str(&config.to_toml_string());
        if !extra_toml.is_empty() {
            text.push('\n');
            text.push_str(extra_toml);
        }
        crate::write_atomic(&dir.join(CONFIG_FILE), text.as_bytes())
    }
}
