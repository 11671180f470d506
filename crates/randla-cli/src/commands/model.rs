//! Loading a model from the command line: a model directory, or a weights file with an optional
//! configuration file (inferred from the weights' shapes when absent).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use randla_model::model_dir::ModelDir;
use randla_model::{RandLaNetConfig, StateDict};

/// A model ready to run.
#[derive(Debug)]
pub struct LoadedModel {
    /// Its configuration.
    pub config: RandLaNetConfig,
    /// Its weights, checked against the configuration.
    pub weights: StateDict,
    /// Whether the configuration was read off the weights (no file gave it).
    pub inferred: bool,
}

/// Loads `model` (a directory, `.pth` or `.safetensors`), with `config` for a bare weights file.
pub fn load(model: &Path, config: Option<&PathBuf>) -> anyhow::Result<LoadedModel> {
    if model.is_dir() {
        if config.is_some() {
            bail!(
                "{}: a model directory carries its own config.toml; drop --config",
                model.display()
            );
        }
        let m = ModelDir::load(model)
            .with_context(|| format!("loading model directory {}", model.display()))?;
        return Ok(LoadedModel {
            config: m.config,
            weights: m.weights,
            inferred: false,
        });
    }
    if !model.exists() {
        bail!(
            "{}: no such model directory or weights file",
            model.display()
        );
    }
    let weights = StateDict::load(model)?;
    match config {
        Some(c) => {
            let config = RandLaNetConfig::from_file(c)?;
            weights.check(&config).with_context(|| {
                format!(
                    "{} does not fit the configuration {}",
                    model.display(),
                    c.display()
                )
            })?;
            Ok(LoadedModel {
                config,
                weights,
                inferred: false,
            })
        }
        None => {
            let config = weights
                .infer_config(&RandLaNetConfig::default())
                .with_context(|| {
                    format!(
                        "{}: cannot infer the configuration from the weights; give --config",
                        model.display()
                    )
                })?;
            Ok(LoadedModel {
                config,
                weights,
                inferred: true,
            })
        }
    }
}
