//! The training configuration (TOML): data, classes, input features, network size, schedule.
//!
//! ```toml
//! # Relative paths are relative to this file's folder.
//! [data]
//! layout = "las"                 # las (LAS/LAZ/PLY/XYZ files; also "files", "ply", "xyz") | s3dis | semantic3d | semantickitti | toronto3d
//! root = "../data/ign-lidar-hd"  # entries below are relative to root
//! train = ["test_data_77050_*", "test_data_77055_*"]   # files, folders or `*` patterns
//! val = ["test_data_77060_*"]
//! grid_size = 0.25               # metres
//!
//! [classes]                      # training class i stands for the raw codes codes[i]
//! names = ["ground", "vegetation", "building", "other"]
//! codes = [[2], [3, 4, 5], [6], [1, 64]]
//! ignore = [0]                   # raw codes left out of the loss and the metrics
//!
//! [input]                        # after xyz, each divided by its scale
//! features = ["intensity", "return_number", "number_of_returns"]
//! scale = [5000.0, 5.0, 5.0]
//!
//! [model]
//! num_points = 8192
//! dim_output = [16, 32, 64, 128]
//! sub_sampling_ratio = [4, 4, 4, 4]
//!
//! [train]
//! epochs = 30
//! steps_per_epoch = 40
//! batch_size = 2
//! learning_rate = 0.01
//! lr_decay = 0.95
//! ```

use std::path::{Path, PathBuf};

use randla_model::RandLaNetConfig;
use randla_model::model_dir::{ClassSpec, InputSpec};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Dataset layouts `[data] layout` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Generic files: LAS/LAZ, PLY, XYZ/CSV (labels from the classification / label column).
    /// Also accepted as `files`, `ply` or `xyz`, the names a user with such files may try.
    #[serde(alias = "files", alias = "ply", alias = "xyz")]
    Las,
    /// S3DIS: `Area_N/<room>/Annotations/*.txt`; an entry is an area or a room folder.
    S3dis,
    /// Semantic3D: `*.txt` point files with sibling `*.labels`.
    Semantic3d,
    /// SemanticKITTI: `sequences/NN/velodyne/*.bin` with `labels/*.label`; an entry is a
    /// sequence folder (or a scan).
    Semantickitti,
    /// Toronto3D: `L00N.ply` with a `scalar_Label` property.
    Toronto3d,
}

/// `[data]`: where the clouds are and how they are subsampled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// The dataset layout.
    #[serde(default = "default_layout")]
    pub layout: Layout,
    /// Folder the entries are relative to (itself relative to the configuration file).
    #[serde(default)]
    pub root: Option<PathBuf>,
    /// Training entries: files, folders, or file-name patterns with `*`.
    pub train: Vec<String>,
    /// Validation entries (validated at full resolution with the deployment predictor).
    #[serde(default)]
    pub val: Vec<String>,
    /// Grid-subsampling cell in metres.
    pub grid_size: f32,
    /// Preprocessing cache folder (default: `RUN_DIR/cache`).
    #[serde(default)]
    pub cache: Option<PathBuf>,
}

fn default_layout() -> Layout {
    Layout::Las
}

/// `[classes]`: the training classes and the raw codes each stands for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassesConfig {
    /// One name per class.
    pub names: Vec<String>,
    /// Raw codes of each class (the first is written back by `randla predict`).
    pub codes: Vec<Vec<u32>>,
    /// Raw codes left out of the loss and the metrics. Codes neither in a class nor here are
    /// ignored too, unless `strict`.
    #[serde(default)]
    pub ignore: Vec<u32>,
    /// Refuse clouds holding codes that are neither in a class nor ignored.
    #[serde(default)]
    pub strict: bool,
}

/// `[input]`: the point attributes after xyz.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// Attribute names as `randla_io` reads them.
    #[serde(default)]
    pub features: Vec<String>,
    /// Each attribute is divided by its scale.
    #[serde(default)]
    pub scale: Vec<f32>,
}

/// `[model]`: the network size (input channels, classes and grid size follow from the rest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Neighbours per point, K.
    pub num_neighbors: usize,
    /// Points per training crop.
    pub num_points: usize,
    /// Sub-sampling ratio per layer (one per entry of `dim_output`).
    pub sub_sampling_ratio: Vec<usize>,
    /// Width of the first embedding.
    pub dim_features: usize,
    /// `d_out` per encoder layer.
    pub dim_output: Vec<usize>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            num_neighbors: 16,
            num_points: 8192,
            sub_sampling_ratio: vec![4, 4, 4, 4],
            dim_features: 8,
            dim_output: vec![16, 32, 64, 128],
        }
    }
}

/// Which implementation runs the training steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// The fused step ([`crate::FusedTrainer`]): a hand-written backward pass on the fused
    /// engine's kernels, checked against burn's autodiff; about 4× faster than `burn` at half
    /// its memory (BENCHMARKS.md).
    #[default]
    Fused,
    /// burn's autodiff over `randla-burn`'s network (the op-by-op reference; the only engine
    /// with gradient checkpointing).
    Burn,
}

/// How training crops are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SamplerKind {
    /// The reference's spatially regular sampler: the least-visited point, jittered.
    Possibility,
    /// A uniformly random point of a uniformly random cloud.
    Random,
}

/// `[train.augment]`: random transforms of each training crop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentConfig {
    /// Rotate about z by a uniform angle.
    pub rotate_z: bool,
    /// Per-axis scale factor range `[min, max]` (`[1, 1]`: none).
    pub scale: [f32; 2],
    /// Same factor for x and y (z still separate).
    pub scale_isotropic_xy: bool,
    /// Mirror x with probability 1/2.
    pub flip_x: bool,
    /// Mirror y with probability 1/2.
    pub flip_y: bool,
    /// Gaussian xyz noise σ in metres.
    pub noise: f32,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            rotate_z: true,
            scale: [0.9, 1.1],
            scale_isotropic_xy: true,
            flip_x: true,
            flip_y: false,
            noise: 0.001,
        }
    }
}

/// `[train]`: the schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    /// Epochs.
    pub epochs: usize,
    /// Optimiser steps per epoch.
    pub steps_per_epoch: usize,
    /// Crops per step.
    pub batch_size: usize,
    /// Adam's initial learning rate.
    pub learning_rate: f64,
    /// Learning rate factor applied after every epoch.
    pub lr_decay: f64,
    /// Seed of everything random (initial weights, sampler, augmentation, dropout).
    pub seed: u64,
    /// Crop sampler.
    pub sampler: SamplerKind,
    /// Jitter σ (metres) of the possibility sampler's crop centre.
    pub centre_noise: f32,
    /// Weight the loss by the reference's class weights `1 / (n_c/Σn + 0.02)`.
    pub class_weights: bool,
    /// Exponent applied to the class weights: 1 is the reference; 0.5 tempers them (a rare,
    /// noisy class such as "unclassified" then takes fewer points from the others).
    pub class_weight_power: f64,
    /// Augmentation.
    pub augment: AugmentConfig,
    /// Which implementation runs the steps (`"fused"`, the default, or `"burn"`).
    pub engine: Engine,
    /// Memory saving: gradient checkpointing in training (recomputes activations in backward;
    /// `engine = "burn"` only).
    pub gradient_checkpointing: bool,
    /// Memory the validation predictor may use, in MiB (it falls back to voting crops beyond).
    pub val_budget_mib: u64,
    /// Validate every this many epochs (and always after the last).
    pub val_every: usize,
    /// Batch-norm running-average momentum (PyTorch convention). Open3D-ML uses 0.01, which
    /// needs thousands of steps before the running statistics the deployed model uses catch up
    /// with the weights; short runs need more (0.1, PyTorch's default).
    pub bn_momentum: f64,
}

impl Default for TrainSection {
    fn default() -> Self {
        TrainSection {
            epochs: 30,
            steps_per_epoch: 50,
            batch_size: 2,
            learning_rate: 0.01,
            lr_decay: 0.95,
            seed: 0,
            sampler: SamplerKind::Possibility,
            centre_noise: 0.35,
            class_weights: true,
            class_weight_power: 1.0,
            augment: AugmentConfig::default(),
            engine: Engine::Fused,
            gradient_checkpointing: false,
            val_budget_mib: 2048,
            val_every: 1,
            bn_momentum: 0.1,
        }
    }
}

/// The whole training configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Where the data is.
    pub data: DataConfig,
    /// The classes.
    pub classes: ClassesConfig,
    /// The input attributes.
    #[serde(default)]
    pub input: InputConfig,
    /// The network size.
    #[serde(default)]
    pub model: ModelConfig,
    /// The schedule.
    #[serde(default)]
    pub train: TrainSection,
    /// The file this configuration came from (relative paths resolve against its folder).
    #[serde(skip)]
    pub source: PathBuf,
}

impl TrainConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(path, "read the training configuration", e))?;
        Self::from_toml_str(&text, path)
    }

    /// Parses and checks a configuration; `path` names it in errors and anchors relative paths.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Self> {
        let mut c: TrainConfig = toml::from_str(text).map_err(|e| Error::ConfigParse {
            path: path.into(),
            message: e.to_string(),
        })?;
        c.source = path.to_path_buf();
        c.validate()?;
        Ok(c)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        let p = &self.source;
        let bad =
            |field: &str, value: String, reason: &str| Err(Error::config(p, field, value, reason));
        if self.data.train.is_empty() {
            return bad(
                "data.train",
                "[]".into(),
                "needs at least one file, folder or pattern",
            );
        }
        if !(self.data.grid_size.is_finite() && self.data.grid_size > 0.0) {
            return bad(
                "data.grid_size",
                self.data.grid_size.to_string(),
                "must be a positive length in metres",
            );
        }
        let c = &self.classes;
        if c.names.len() < 2 {
            return bad(
                "classes.names",
                format!("{:?}", c.names),
                "needs at least two classes",
            );
        }
        if c.codes.len() != c.names.len() {
            return bad(
                "classes.codes",
                format!("{:?}", c.codes),
                &format!("needs one code list per name ({} names)", c.names.len()),
            );
        }
        let mut seen = std::collections::BTreeMap::new();
        for (i, list) in c.codes.iter().enumerate() {
            if list.is_empty() {
                return bad(
                    &format!("classes.codes[{i}]"),
                    "[]".into(),
                    "every class needs at least one code",
                );
            }
            for &code in list {
                if let Some(j) = seen.insert(code, i) {
                    return bad(
                        &format!("classes.codes[{i}]"),
                        format!("{list:?}"),
                        &format!("code {code} is already in class {j} ({})", c.names[j]),
                    );
                }
                if c.ignore.contains(&code) {
                    return bad(
                        "classes.ignore",
                        format!("{:?}", c.ignore),
                        &format!("code {code} is also in class {i}"),
                    );
                }
            }
        }
        let inp = &self.input;
        if inp.features.len() != inp.scale.len() {
            return bad(
                "input.scale",
                format!("{:?}", inp.scale),
                &format!(
                    "needs one scale per feature ({} features)",
                    inp.features.len()
                ),
            );
        }
        if let Some(s) = inp.scale.iter().find(|s| !(s.is_finite() && **s != 0.0)) {
            return bad(
                "input.scale",
                s.to_string(),
                "scales must be finite and non-zero",
            );
        }
        let m = &self.model;
        if m.dim_output.is_empty() {
            return bad("model.dim_output", "[]".into(), "needs at least one layer");
        }
        if m.sub_sampling_ratio.len() != m.dim_output.len() {
            return bad(
                "model.sub_sampling_ratio",
                format!("{:?}", m.sub_sampling_ratio),
                &format!(
                    "needs one ratio per layer of dim_output ({})",
                    m.dim_output.len()
                ),
            );
        }
        let t = &self.train;
        for (field, v) in [
            ("train.epochs", t.epochs),
            ("train.steps_per_epoch", t.steps_per_epoch),
            ("train.batch_size", t.batch_size),
            ("train.val_every", t.val_every),
        ] {
            if v == 0 {
                return bad(field, "0".into(), "must be at least 1");
            }
        }
        if !(t.learning_rate.is_finite() && t.learning_rate > 0.0) {
            return bad(
                "train.learning_rate",
                t.learning_rate.to_string(),
                "must be positive",
            );
        }
        if !(t.lr_decay.is_finite() && t.lr_decay > 0.0 && t.lr_decay <= 1.0) {
            return bad(
                "train.lr_decay",
                t.lr_decay.to_string(),
                "must be in (0, 1]",
            );
        }
        if t.gradient_checkpointing && t.engine != Engine::Burn {
            return bad(
                "train.gradient_checkpointing",
                "true".into(),
                "applies to engine = \"burn\" only (the fused engine keeps less than burn's checkpointing does); set engine = \"burn\" or remove it",
            );
        }
        if !(t.bn_momentum.is_finite() && t.bn_momentum > 0.0 && t.bn_momentum <= 1.0) {
            return bad(
                "train.bn_momentum",
                t.bn_momentum.to_string(),
                "must be in (0, 1]",
            );
        }
        if !(t.class_weight_power.is_finite() && t.class_weight_power >= 0.0) {
            return bad(
                "train.class_weight_power",
                t.class_weight_power.to_string(),
                "must be ≥ 0",
            );
        }
        let a = &t.augment;
        if !(a.scale[0].is_finite()
            && a.scale[1].is_finite()
            && a.scale[0] > 0.0
            && a.scale[0] <= a.scale[1])
        {
            return bad(
                "train.augment.scale",
                format!("{:?}", a.scale),
                "must be [min, max] with 0 < min ≤ max",
            );
        }
        if !(a.noise.is_finite() && a.noise >= 0.0) {
            return bad("train.augment.noise", a.noise.to_string(), "must be ≥ 0");
        }
        if !(t.centre_noise.is_finite() && t.centre_noise >= 0.0) {
            return bad(
                "train.centre_noise",
                t.centre_noise.to_string(),
                "must be ≥ 0",
            );
        }
        let net = self.network();
        net.validate()
            .map_err(|e| Error::config(p, "model", format!("{:?}", self.model), e.to_string()))?;
        Ok(())
    }

    /// The network configuration this training builds.
    pub fn network(&self) -> RandLaNetConfig {
        RandLaNetConfig {
            num_neighbors: self.model.num_neighbors,
            num_layers: self.model.dim_output.len(),
            num_points: self.model.num_points,
            num_classes: self.classes.names.len(),
            sub_sampling_ratio: self.model.sub_sampling_ratio.clone(),
            in_channels: 3 + self.input.features.len(),
            dim_features: self.model.dim_features,
            dim_output: self.model.dim_output.clone(),
            grid_size: self.data.grid_size,
            ignored_label_inds: Vec::new(),
            ..RandLaNetConfig::default()
        }
    }

    /// The model directory's `[input]`.
    pub fn input_spec(&self) -> InputSpec {
        InputSpec {
            features: self.input.features.clone(),
            scale: self.input.scale.clone(),
        }
    }

    /// The model directory's `[classes]`.
    pub fn class_spec(&self) -> ClassSpec {
        ClassSpec {
            names: self.classes.names.clone(),
            codes: self.classes.codes.clone(),
        }
    }

    /// The folder relative paths resolve against: the configuration file's folder.
    pub fn base_dir(&self) -> PathBuf {
        self.source
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// The data root, resolved.
    pub fn data_root(&self) -> PathBuf {
        let base = self.base_dir();
        match &self.data.root {
            Some(r) => base.join(r),
            None => base,
        }
    }

    /// A stable fingerprint of everything that shapes training (for checkpoint compatibility).
    pub fn fingerprint(&self) -> String {
        let mut c = self.clone();
        c.source = PathBuf::new();
        c.train.epochs = 0; // more epochs may be asked for on resume
        c.train.val_every = 0;
        c.train.val_budget_mib = 0;
        c.data.cache = None;
        let text = serde_json::to_string(&c).unwrap_or_default();
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
    }
}

/// Maps raw codes to training classes.
#[derive(Debug, Clone)]
pub struct ClassMap {
    table: std::collections::HashMap<u32, u32>,
    ignore: Vec<u32>,
    strict: bool,
}

/// The label of an ignored point, after mapping.
pub const IGNORED: u32 = u32::MAX;

impl ClassMap {
    /// The map of a `[classes]` section.
    pub fn new(c: &ClassesConfig) -> Self {
        let mut table = std::collections::HashMap::new();
        for (i, list) in c.codes.iter().enumerate() {
            for &code in list {
                table.insert(code, i as u32);
            }
        }
        ClassMap {
            table,
            ignore: c.ignore.clone(),
            strict: c.strict,
        }
    }

    /// The class of a raw code ([`IGNORED`] for ignored or, unless strict, unknown codes).
    pub fn map(&self, code: u32) -> std::result::Result<u32, u32> {
        match self.table.get(&code) {
            Some(&c) => Ok(c),
            None if self.ignore.contains(&code) || !self.strict => Ok(IGNORED),
            None => Err(code),
        }
    }

    /// Maps every label of a cloud read from `path`.
    pub fn map_all(&self, labels: &[u32], path: &Path) -> Result<Vec<u32>> {
        labels
            .iter()
            .map(|&l| self.map(l))
            .collect::<std::result::Result<Vec<_>, u32>>()
            .map_err(|code| Error::Dataset {
                path: path.into(),
                message: format!(
                    "code {code} is in no class of [classes] and not in classes.ignore (strict)"
                ),
            })
    }
}
