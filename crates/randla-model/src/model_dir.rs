//! Our native model directory: `config.toml` (the network under `[model]`, what feeds it under
//! `[input]`, what its classes mean under `[classes]`) and `weights.safetensors` (Open3D-ML
//! parameter names, f32).
//!
//! ```toml
//! [model]
//! num_neighbors = 16
//! # … every RandLaNetConfig field
//!
//! [input]                      # after xyz, in this order, each divided by its scale
//! features = ["intensity", "return_number", "number_of_returns"]
//! scale = [65535.0, 5.0, 5.0]
//!
//! [classes]                    # class i is written back as codes[i][0]
//! names = ["ground", "vegetation", "building", "other"]
//! codes = [[2], [3, 4, 5], [6], [1, 64]]
//!
//! [predict]                    # optional: how whole-cloud prediction runs this model
//! margin_radii = 0.5           # tile margins, in radii of the coarsest neighbourhoods
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::RandLaNetConfig;
use crate::error::{Error, Result};
use crate::weights::StateDict;

/// File name of the configuration inside a model directory.
pub const CONFIG_FILE: &str = "config.toml";
/// File name of the weights inside a model directory.
pub const WEIGHTS_FILE: &str = "weights.safetensors";

/// What feeds the network: xyz (recentred on each crop), then these point attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    /// Attribute names, as `randla_io` reads them (`intensity`, `return_number`, `red`, …).
    pub features: Vec<String>,
    /// Each attribute is divided by its scale.
    pub scale: Vec<f32>,
}

impl InputSpec {
    /// xyz only.
    pub fn xyz_only() -> Self {
        InputSpec {
            features: Vec::new(),
            scale: Vec::new(),
        }
    }

    /// Input channels this spec gives: 3 + features.
    pub fn channels(&self) -> usize {
        3 + self.features.len()
    }
}

/// What the network's classes are: names, and the raw codes each one stands for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassSpec {
    /// One name per class.
    pub names: Vec<String>,
    /// The raw codes (LAS classification, dataset label) of each class; the first is written back.
    pub codes: Vec<Vec<u32>>,
}

impl ClassSpec {
    /// Classes `0..n` named `class_i`, written back as code `i`.
    pub fn identity(n: usize) -> Self {
        ClassSpec {
            names: (0..n).map(|i| format!("class_{i}")).collect(),
            codes: (0..n).map(|i| vec![i as u32]).collect(),
        }
    }

    /// The code written for class `c`.
    pub fn code(&self, c: usize) -> u32 {
        self.codes[c][0]
    }
}

/// How whole-cloud prediction runs this model, where it was measured to differ from the
/// defaults (`[predict]`; every field optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictSpec {
    /// The context around each tile, in radii of the network's coarsest neighbourhoods (the
    /// default is one radius): how far this model's accuracy was checked to need it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin_radii: Option<f32>,
}

#[derive(Debug, Deserialize, Serialize)]
struct Sections {
    model: RandLaNetConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    input: Option<InputSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    classes: Option<ClassSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    predict: Option<PredictSpec>,
}

/// A model loaded from a directory.
#[derive(Debug, Clone)]
pub struct ModelDir {
    /// The directory.
    pub path: PathBuf,
    /// The network configuration.
    pub config: RandLaNetConfig,
    /// The weights, checked against the configuration.
    pub weights: StateDict,
    /// What feeds the network (absent in imported models: xyz only then, if that fits).
    pub input: Option<InputSpec>,
    /// What the classes mean (absent in imported models).
    pub classes: Option<ClassSpec>,
    /// How whole-cloud prediction runs it (absent: the defaults).
    pub predict: Option<PredictSpec>,
}

impl ModelDir {
    /// Loads and checks a model directory.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(Error::io(
                dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "not a model directory"),
            ));
        }
        let cfg_path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
        let weights_path = dir.join(WEIGHTS_FILE);
        let bytes = std::fs::read(&weights_path).map_err(|e| Error::io(&weights_path, e))?;
        Self::from_parts(dir, &text, &bytes)
    }

    /// A model from the contents of its two files (a model built into a program, say): the
    /// `config.toml` text and the `weights.safetensors` bytes. `path` names the model in errors
    /// and in [`ModelDir::path`]. Checked as [`ModelDir::load`] checks a directory.
    pub fn from_parts(path: impl AsRef<Path>, config_toml: &str, weights: &[u8]) -> Result<Self> {
        let dir = path.as_ref();
        let cfg_path = dir.join(CONFIG_FILE);
        let s: Sections = toml::from_str(config_toml).map_err(|e| Error::ConfigParse {
            path: cfg_path.clone(),
            message: e.to_string(),
        })?;
        s.model.validate()?;
        let weights = StateDict::from_safetensors_bytes(dir.join(WEIGHTS_FILE), weights)?;
        weights.check(&s.model)?;
        let m = ModelDir {
            path: dir.into(),
            config: s.model,
            weights,
            input: s.input,
            classes: s.classes,
            predict: s.predict,
        };
        m.check_specs()?;
        Ok(m)
    }

    /// Checks the input and class specs against the configuration.
    pub fn check_specs(&self) -> Result<()> {
        if let Some(i) = &self.input {
            if i.features.len() != i.scale.len() {
                return Err(Error::Config {
                    field: "input.scale",
                    value: format!("{:?}", i.scale),
                    reason: format!("needs one scale per feature ({})", i.features.len()),
                });
            }
            if i.channels() != self.config.in_channels {
                return Err(Error::Config {
                    field: "input.features",
                    value: format!("{:?}", i.features),
                    reason: format!(
                        "xyz + {} features = {} channels, the model takes in_channels = {}",
                        i.features.len(),
                        i.channels(),
                        self.config.in_channels
                    ),
                });
            }
            if let Some(s) = i.scale.iter().find(|s| !(s.is_finite() && **s != 0.0)) {
                return Err(Error::Config {
                    field: "input.scale",
                    value: s.to_string(),
                    reason: "scales must be finite and non-zero".into(),
                });
            }
        }
        if let Some(r) = self.predict.as_ref().and_then(|p| p.margin_radii)
            && !(r.is_finite() && r >= 0.0)
        {
            return Err(Error::Config {
                field: "predict.margin_radii",
                value: r.to_string(),
                reason: "must be a finite number of radii, 0 or more".into(),
            });
        }
        if let Some(c) = &self.classes
            && (c.names.len() != self.config.num_classes
                || c.codes.len() != self.config.num_classes
                || c.codes.iter().any(|v| v.is_empty()))
        {
            return Err(Error::Config {
                field: "classes",
                value: format!("{} names, {} code lists", c.names.len(), c.codes.len()),
                reason: format!(
                    "needs one name and a non-empty code list per class (num_classes = {})",
                    self.config.num_classes
                ),
            });
        }
        Ok(())
    }

    /// Writes the model into `dir` (created if needed), each file atomically. Refuses to replace
    /// an existing model unless `overwrite`.
    pub fn save(&self, dir: impl AsRef<Path>, overwrite: bool) -> Result<()> {
        let dir = dir.as_ref();
        self.weights.check(&self.config)?;
        self.check_specs()?;
        if !overwrite && (dir.join(CONFIG_FILE).exists() || dir.join(WEIGHTS_FILE).exists()) {
            return Err(Error::io(
                dir,
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "a model is already there (use --force to replace it)",
                ),
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        self.weights.save_safetensors(dir.join(WEIGHTS_FILE))?;
        let sections = Sections {
            model: self.config.clone(),
            input: self.input.clone(),
            classes: self.classes.clone(),
            predict: self.predict.clone(),
        };
        let mut text = String::from(
            "# RandLA-Net model (Open3D-ML parameter names); see randla-model's model_dir docs.\n",
        );
        text.push_str(
            &toml::to_string_pretty(&sections).map_err(|e| Error::ConfigParse {
                path: dir.join(CONFIG_FILE),
                message: e.to_string(),
            })?,
        );
        crate::write_atomic(&dir.join(CONFIG_FILE), text.as_bytes())
    }

    /// A model from its parts (not yet on disk).
    pub fn new(
        config: RandLaNetConfig,
        weights: StateDict,
        input: Option<InputSpec>,
        classes: Option<ClassSpec>,
    ) -> Result<Self> {
        let m = ModelDir {
            path: PathBuf::new(),
            config,
            weights,
            input,
            classes,
            predict: None,
        };
        m.weights.check(&m.config)?;
        m.check_specs()?;
        Ok(m)
    }
}
