//! The network configuration: Open3D-ML's parameter names, the paper's defaults, read from our
//! TOML files or from Open3D-ML's YAML configs unchanged.

use std::path::Path;

use randla_geom::PyramidConfig;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// RandLA-Net's hyper-parameters, named as in Open3D-ML's `RandLANet` (older Open3D-ML YAML names
/// `k_n`, `dim_input` and `dim_feature` are accepted too).
///
/// The defaults are Open3D-ML's constructor defaults (its SemanticKITTI setting).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RandLaNetConfig {
    /// Model name; must be `RandLANet`.
    pub name: String,
    /// Neighbours per point, K.
    #[serde(alias = "k_n")]
    pub num_neighbors: usize,
    /// Encoder layers, L.
    pub num_layers: usize,
    /// Points per crop when training (and per pass when predicting by crops).
    pub num_points: usize,
    /// Output classes.
    pub num_classes: usize,
    /// Sub-sampling ratio of each layer.
    pub sub_sampling_ratio: Vec<usize>,
    /// Input channels: xyz plus the point features.
    #[serde(alias = "dim_input")]
    pub in_channels: usize,
    /// Width of the first (fc0) embedding.
    #[serde(alias = "dim_feature")]
    pub dim_features: usize,
    /// `d_out` of each encoder layer (the block outputs `2·d_out` channels).
    pub dim_output: Vec<usize>,
    /// Grid-subsampling cell in metres.
    pub grid_size: f32,
    /// Labels ignored by the loss.
    pub ignored_label_inds: Vec<i64>,
}

impl Default for RandLaNetConfig {
    fn default() -> Self {
        RandLaNetConfig {
            name: "RandLANet".into(),
            num_neighbors: 16,
            num_layers: 4,
            num_points: 45056,
            num_classes: 19,
            sub_sampling_ratio: vec![4, 4, 4, 4],
            in_channels: 3,
            dim_features: 8,
            dim_output: vec![16, 64, 128, 256],
            grid_size: 0.06,
            ignored_label_inds: Vec::new(),
        }
    }
}

/// A named preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// SemanticKITTI: 4 layers [16, 64, 128, 256], xyz only, 19 classes, 45,056 points (1.24 M parameters).
    SemanticKitti,
    /// S3DIS: 5 layers [16, 64, 128, 256, 512], xyz + rgb, 13 classes, 40,960 points (5.0 M parameters).
    S3dis,
}

impl RandLaNetConfig {
    /// The configuration of a preset.
    pub fn preset(p: Preset) -> Self {
        match p {
            Preset::SemanticKitti => RandLaNetConfig::default(),
            Preset::S3dis => RandLaNetConfig {
                num_layers: 5,
                num_points: 40960,
                num_classes: 13,
                sub_sampling_ratio: vec![4, 4, 4, 4, 2],
                in_channels: 6,
                dim_output: vec![16, 64, 128, 256, 512],
                grid_size: 0.04,
                ..RandLaNetConfig::default()
            },
        }
    }

    /// Reads a configuration file: Open3D-ML YAML (`.yml`/`.yaml`, its `model:` section) or our
    /// TOML (`.toml`: the keys at the top level or under `[model]`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let parse_err = |message: String| Error::ConfigParse {
            path: path.into(),
            message,
        };
        let cfg = match ext.as_str() {
            "yml" | "yaml" => Self::from_yaml_str(&text).map_err(parse_err)?,
            "toml" => Self::from_toml_str(&text).map_err(parse_err)?,
            other => {
                return Err(parse_err(format!(
                    "unknown configuration format {other:?}: expected .toml, .yml or .yaml"
                )));
            }
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses Open3D-ML YAML: the `model:` section when there is one, else the whole document.
    pub fn from_yaml_str(text: &str) -> std::result::Result<Self, String> {
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        let model = doc.get("model").cloned().unwrap_or(doc);
        serde_yaml_ng::from_value(model).map_err(|e| e.to_string())
    }

    /// Parses our TOML: the `[model]` table when there is one, else the top level.
    pub fn from_toml_str(text: &str) -> std::result::Result<Self, String> {
        let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
        let model = match doc.get("model") {
            Some(toml::Value::Table(t)) => t.clone(),
            _ => doc,
        };
        toml::Value::Table(model)
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())
    }

    /// Our TOML rendering, under `[model]`.
    pub fn to_toml_string(&self) -> String {
        #[derive(Serialize)]
        struct Doc<'a> {
            model: &'a RandLaNetConfig,
        }
        toml::to_string_pretty(&Doc { model: self }).unwrap_or_default()
    }

    /// Checks that the values are consistent.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, value: String, reason: &str| {
            Err(Error::Config {
                field,
                value,
                reason: reason.to_string(),
            })
        };
        if self.name != "RandLANet" {
            return bad("name", self.name.clone(), "only RandLANet is supported");
        }
        if self.num_neighbors == 0 {
            return bad("num_neighbors", "0".into(), "must be at least 1");
        }
        if self.num_layers == 0 {
            return bad("num_layers", "0".into(), "must be at least 1");
        }
        if self.dim_output.len() != self.num_layers {
            return bad(
                "dim_output",
                format!("{:?}", self.dim_output),
                &format!(
                    "needs one entry per layer (num_layers = {})",
                    self.num_layers
                ),
            );
        }
        if self.sub_sampling_ratio.len() != self.num_layers {
            return bad(
                "sub_sampling_ratio",
                format!("{:?}", self.sub_sampling_ratio),
                &format!(
                    "needs one entry per layer (num_layers = {})",
                    self.num_layers
                ),
            );
        }
        if self.sub_sampling_ratio.contains(&0) {
            return bad(
                "sub_sampling_ratio",
                format!("{:?}", self.sub_sampling_ratio),
                "ratios must be at least 1",
            );
        }
        if let Some(d) = self.dim_output.iter().find(|&&d| d < 2 || d % 2 != 0) {
            return bad(
                "dim_output",
                format!("{:?}", self.dim_output),
                &format!("{d}: every width must be even and at least 2"),
            );
        }
        if self.in_channels < 3 {
            return bad(
                "in_channels",
                self.in_channels.to_string(),
                "xyz are the first three channels, so at least 3",
            );
        }
        if self.dim_features == 0 {
            return bad("dim_features", "0".into(), "must be at least 1");
        }
        if self.num_classes == 0 {
            return bad("num_classes", "0".into(), "must be at least 1");
        }
        if !(self.grid_size.is_finite() && self.grid_size > 0.0) {
            return bad(
                "grid_size",
                self.grid_size.to_string(),
                "must be a positive length",
            );
        }
        if self.num_points == 0 {
            return bad("num_points", "0".into(), "must be at least 1");
        }
        Ok(())
    }

    /// The neighbourhood pyramid this network consumes.
    pub fn pyramid_config(&self) -> PyramidConfig {
        PyramidConfig {
            k: self.num_neighbors,
            ratios: self.sub_sampling_ratio.clone(),
        }
    }

    /// Input width of each encoder block: `dim_features`, then `2·dim_output[i-1]`.
    pub fn encoder_in_dims(&self) -> Vec<usize> {
        let mut dims = vec![self.dim_features];
        for &o in &self.dim_output[..self.num_layers - 1] {
            dims.push(2 * o);
        }
        dims
    }

    /// Widths of the encoder's skip list: the full-resolution output, then every sampled output
    /// (`[2·o_0, 2·o_0, 2·o_1, …, 2·o_{L-1}]`).
    pub fn skip_dims(&self) -> Vec<usize> {
        let mut dims = vec![2 * self.dim_output[0]];
        dims.extend(self.dim_output.iter().map(|o| 2 * o));
        dims
    }

    /// Width after the encoder (and of the middle `mlp`): `2·dim_output[L-1]`.
    pub fn bottleneck_dim(&self) -> usize {
        2 * self.dim_output[self.num_layers - 1]
    }

    /// `(in, out)` of each decoder layer: in = skip + previous width, out = skip width.
    pub fn decoder_dims(&self) -> Vec<(usize, usize)> {
        let skips = self.skip_dims();
        let mut prev = self.bottleneck_dim();
        (0..self.num_layers)
            .map(|j| {
                let skip = skips[skips.len() - j - 2];
                let d = (skip + prev, skip);
                prev = skip;
                d
            })
            .collect()
    }

    /// Input width of the head (`fc1.0`): the last decoder output, `2·dim_output[0]`.
    pub fn head_in(&self) -> usize {
        2 * self.dim_output[0]
    }

    /// Every Open3D-ML `state_dict` entry this configuration has, in the reference's order, with
    /// its shape. Batch-norm entries include `num_batches_tracked` (shape `[]`).
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let conv = |out: &mut Vec<(String, Vec<usize>)>,
                    name: &str,
                    shape: [usize; 2],
                    bn: bool,
                    transposed: bool| {
            let [co, ci] = shape;
            let w = if transposed {
                vec![ci, co, 1, 1]
            } else {
                vec![co, ci, 1, 1]
            };
            out.push((format!("{name}.conv.weight"), w));
            out.push((format!("{name}.conv.bias"), vec![co]));
            if bn {
                push_bn(out, &format!("{name}.batch_norm"), co);
            }
        };
        let f = self.dim_features;
        out.push(("fc0.weight".into(), vec![f, self.in_channels]));
        out.push(("fc0.bias".into(), vec![f]));
        push_bn(&mut out, "bn0", f);
        for (i, (&d, &o)) in self
            .encoder_in_dims()
            .iter()
            .zip(&self.dim_output)
            .enumerate()
        {
            let p = format!("encoder.{i}");
            conv(&mut out, &format!("{p}.mlp1"), [o / 2, d], true, false);
            conv(&mut out, &format!("{p}.lse1.mlp"), [o / 2, 10], true, false);
            out.push((format!("{p}.pool1.score_fn.0.weight"), vec![o, o]));
            out.push((format!("{p}.pool1.score_fn.0.bias"), vec![o]));
            conv(&mut out, &format!("{p}.pool1.mlp"), [o / 2, o], true, false);
            conv(
                &mut out,
                &format!("{p}.lse2.mlp"),
                [o / 2, o / 2],
                true,
                false,
            );
            out.push((format!("{p}.pool2.score_fn.0.weight"), vec![o, o]));
            out.push((format!("{p}.pool2.score_fn.0.bias"), vec![o]));
            conv(&mut out, &format!("{p}.pool2.mlp"), [o, o], true, false);
            conv(&mut out, &format!("{p}.mlp2"), [2 * o, o], true, false);
            conv(&mut out, &format!("{p}.shortcut"), [2 * o, d], true, false);
        }
        let c = self.bottleneck_dim();
        conv(&mut out, "mlp", [c, c], true, false);
        for (j, (i, o)) in self.decoder_dims().into_iter().enumerate() {
            conv(&mut out, &format!("decoder.{j}"), [o, i], true, true);
        }
        conv(&mut out, "fc1.0", [64, self.head_in()], true, false);
        conv(&mut out, "fc1.1", [32, 64], true, false);
        conv(&mut out, "fc1.3", [self.num_classes, 32], false, false);
        out
    }

    /// Number of trainable parameters (batch-norm running statistics excluded).
    pub fn num_trainable_parameters(&self) -> usize {
        self.parameter_shapes()
            .iter()
            .filter(|(n, _)| is_trainable(n))
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }
}

/// True for weights and biases; false for batch-norm running statistics and counters.
pub fn is_trainable(name: &str) -> bool {
    !(name.ends_with("running_mean")
        || name.ends_with("running_var")
        || name.ends_with("num_batches_tracked"))
}

fn push_bn(out: &mut Vec<(String, Vec<usize>)>, prefix: &str, c: usize) {
    for s in ["weight", "bias", "running_mean", "running_var"] {
        out.push((format!("{prefix}.{s}"), vec![c]));
    }
    out.push((format!("{prefix}.num_batches_tracked"), vec![]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_counts_match_the_reference() {
        // randlanet.md §1.4 and §2.1: KITTI config 1,242,307 parameters, 270 state_dict entries;
        // S3DIS config 4,995,093 parameters, 330 entries.
        let kitti = RandLaNetConfig::default();
        assert_eq!(kitti.num_trainable_parameters(), 1_242_307);
        assert_eq!(kitti.parameter_shapes().len(), 270);
        let s3dis = RandLaNetConfig::preset(Preset::S3dis);
        assert_eq!(s3dis.num_trainable_parameters(), 4_995_093);
        assert_eq!(s3dis.parameter_shapes().len(), 330);
        let shapes: std::collections::HashMap<_, _> =
            s3dis.parameter_shapes().into_iter().collect();
        assert_eq!(shapes["decoder.0.conv.weight"], vec![1536, 512, 1, 1]);
        assert_eq!(shapes["decoder.3.conv.weight"], vec![160, 32, 1, 1]);
        assert_eq!(shapes["decoder.4.conv.weight"], vec![64, 32, 1, 1]);
        assert_eq!(
            shapes["encoder.2.pool2.mlp.conv.weight"],
            vec![128, 128, 1, 1]
        );
        assert_eq!(shapes["mlp.conv.weight"], vec![1024, 1024, 1, 1]);
        assert_eq!(shapes["fc1.3.conv.weight"], vec![13, 32, 1, 1]);
    }

    #[test]
    fn open3d_ml_yaml_is_accepted_unchanged() {
        // The shape of Open3D-ML's ml3d/configs/randlanet_s3dis.yml (older key names included).
        let yml = "dataset:\n  name: S3DIS\n  num_points: 40960\nmodel:\n  name: RandLANet\n  batcher: DefaultBatcher\n  ckpt_path: # path\n  dim_feature: 8\n  dim_input: 6\n  dim_output:\n  - 16\n  - 64\n  - 128\n  - 256\n  - 512\n  grid_size: 0.04\n  ignored_label_inds: []\n  k_n: 16\n  num_classes: 13\n  num_layers: 5\n  num_points: 40960\n  sub_sampling_ratio:\n  - 4\n  - 4\n  - 4\n  - 4\n  - 2\n  t_normalize:\n    method: linear\npipeline:\n  name: SemanticSegmentation\n  batch_size: 2\n";
        let cfg = RandLaNetConfig::from_yaml_str(yml).unwrap();
        assert_eq!(cfg, RandLaNetConfig::preset(Preset::S3dis));
        let new_names = "model:\n  name: RandLANet\n  num_neighbors: 8\n  in_channels: 4\n  dim_features: 8\n  num_layers: 2\n  dim_output: [16, 32]\n  sub_sampling_ratio: [4, 2]\n  num_classes: 3\n";
        let cfg = RandLaNetConfig::from_yaml_str(new_names).unwrap();
        assert_eq!(
            (cfg.num_neighbors, cfg.in_channels, cfg.num_layers),
            (8, 4, 2)
        );
        cfg.validate().unwrap();
    }

    #[test]
    fn toml_round_trip() {
        let cfg = RandLaNetConfig::preset(Preset::S3dis);
        let text = cfg.to_toml_string();
        assert!(text.contains("[model]"));
        assert_eq!(RandLaNetConfig::from_toml_str(&text).unwrap(), cfg);
    }

    #[test]
    fn inconsistent_configs_are_refused() {
        let mut c = RandLaNetConfig {
            num_layers: 3,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("dim_output"));
        c = RandLaNetConfig {
            dim_output: vec![16, 64, 128, 255],
            ..Default::default()
        };
        assert!(c.validate().is_err());
        c = RandLaNetConfig {
            in_channels: 2,
            ..Default::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("in_channels = 2")
        );
        c = RandLaNetConfig {
            name: "KPConv".into(),
            ..Default::default()
        };
        assert!(c.validate().is_err());
        c = RandLaNetConfig {
            sub_sampling_ratio: vec![4, 0, 4, 4],
            ..Default::default()
        };
        assert!(c.validate().is_err());
    }
}
