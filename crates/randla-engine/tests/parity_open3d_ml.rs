//! The fused engine reproduces Open3D-ML's own logits on the parity fixture (a checkpoint and a
//! batch cut from a real LiDAR tile, both written by Open3D-ML's RandLANet): max |Δ| ≤
//! 1e-4·max|ref| + 1e-5.

use randla_engine::FusedEngine;
use randla_model::{Batch, RandLaNetConfig, StateDict};

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/parity")
        .join(name)
}

#[test]
fn logits_equal_open3d_ml() {
    let cfg = RandLaNetConfig {
        num_points: 4096,
        num_classes: 7,
        in_channels: 6,
        ..RandLaNetConfig::default()
    };
    let weights = StateDict::load(fixture("o3d_kitti_small.pth")).unwrap();
    let batch = Batch::load_safetensors(fixture("o3d_kitti_small.io.safetensors")).unwrap();
    let reference = StateDict::load_safetensors(fixture("o3d_kitti_small.io.safetensors")).unwrap();
    let want = &reference.get("logits").unwrap().data;
    let engine = FusedEngine::new(&cfg, &weights).unwrap();
    let got = engine.forward(&batch).unwrap();
    assert_eq!(got.len(), want.len());
    let max_ref = want.iter().fold(0f32, |a, b| a.max(b.abs()));
    let max_diff = got
        .iter()
        .zip(want)
        .fold(0f32, |a, (g, w)| a.max((g - w).abs()));
    eprintln!("max |ref| = {max_ref}, max |Δ| = {max_diff:e}");
    assert!(
        max_diff <= 1e-4 * max_ref + 1e-5,
        "max |Δ| = {max_diff} for max |ref| = {max_ref}"
    );
    // The predictions agree everywhere.
    let argmax = |v: &[f32]| {
        v.chunks(7)
            .map(|r| {
                r.iter()
                    .enumerate()
                    .fold(0, |b, (i, x)| if *x > r[b] { i } else { b })
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(argmax(&got), argmax(want));
}

mod common;

#[test]
fn naive_oracle_equals_open3d_ml() {
    let cfg = RandLaNetConfig {
        num_points: 4096,
        num_classes: 7,
        in_channels: 6,
        ..RandLaNetConfig::default()
    };
    let weights = StateDict::load(fixture("o3d_kitti_small.pth")).unwrap();
    let batch = Batch::load_safetensors(fixture("o3d_kitti_small.io.safetensors")).unwrap();
    let reference = StateDict::load_safetensors(fixture("o3d_kitti_small.io.safetensors")).unwrap();
    let naive = common::Naive {
        sd: &weights,
        cfg: &cfg,
    };
    let got = naive.forward(&batch, 0);
    let (d, m) = common::max_abs_diff(&got, &reference.get("logits").unwrap().data);
    eprintln!("naive: max |Δ| {d:e} of {m}");
    assert!(d <= 1e-4 * m + 1e-5);
}
