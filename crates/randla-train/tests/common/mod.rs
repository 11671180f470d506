//! Helpers shared by the integration tests: tiny synthetic labelled scenes and configurations.
#![allow(dead_code)]

use std::path::Path;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use randla_io::{Feature, PlyWriteOptions, PointCloud};

/// A small airborne-like scene: ground (code 2) over a `size` m square, a box building (6)
/// and a blob of vegetation (5), with `intensity` and `return_number` features.
pub fn scene(n: usize, size: f32, seed: u64) -> PointCloud {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pos = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    let mut intensity = Vec::with_capacity(n);
    let mut ret = Vec::with_capacity(n);
    for i in 0..n {
        let x = rng.random::<f32>() * size;
        let y = rng.random::<f32>() * size;
        let (z, code, int, r) = match i % 3 {
            0 => (rng.random::<f32>() * 0.05, 2, 800.0, 1.0),
            1 if x < size / 2.0 => (3.0 + rng.random::<f32>() * 0.1, 6, 1200.0, 1.0),
            1 => (0.02, 2, 820.0, 1.0),
            _ => (1.0 + rng.random::<f32>() * 4.0, 5, 300.0, 2.0),
        };
        pos.push([x, y, z]);
        labels.push(code);
        intensity.push(int + rng.random::<f32>() * 50.0);
        ret.push(r);
    }
    PointCloud {
        origin: [1000.0, 2000.0, 0.0],
        positions: pos,
        features: vec![
            Feature {
                name: "intensity".into(),
                values: intensity,
            },
            Feature {
                name: "return_number".into(),
                values: ret,
            },
        ],
        labels: Some(labels),
    }
}

/// Writes a cloud as binary PLY.
pub fn write_ply(path: &Path, cloud: &PointCloud) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    randla_io::write_ply(
        path,
        cloud,
        &PlyWriteOptions {
            overwrite: true,
            ..Default::default()
        },
    )
    .unwrap();
}

/// A tiny training configuration over `dir` (PLY files `train_*.ply`, `val_*.ply`).
pub fn tiny_config_text(epochs: usize, steps: usize, val: bool) -> String {
    format!(
        r#"
[data]
layout = "las"
train = ["train_*.ply"]
val = [{val}]
grid_size = 0.3

[classes]
names = ["ground", "vegetation", "building"]
codes = [[2], [3, 4, 5], [6]]

[input]
features = ["intensity", "return_number"]
scale = [1000.0, 5.0]

[model]
num_neighbors = 8
num_points = 256
sub_sampling_ratio = [4, 2]
dim_features = 8
dim_output = [8, 16]

[train]
epochs = {epochs}
steps_per_epoch = {steps}
batch_size = 2
learning_rate = 0.01
lr_decay = 0.95
seed = 3
"#,
        val = if val { "\"val_*.ply\"" } else { "" }
    )
}

/// Writes the tiny dataset and configuration into `dir`; returns the configuration path.
pub fn tiny_setup(dir: &Path, epochs: usize, steps: usize, val: bool) -> std::path::PathBuf {
    write_ply(&dir.join("train_a.ply"), &scene(1500, 12.0, 1));
    write_ply(&dir.join("train_b.ply"), &scene(1200, 10.0, 2));
    write_ply(&dir.join("val_a.ply"), &scene(900, 10.0, 3));
    let cfg = dir.join("train.toml");
    std::fs::write(&cfg, tiny_config_text(epochs, steps, val)).unwrap();
    cfg
}
