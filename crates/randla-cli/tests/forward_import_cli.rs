//! `randla import` and `randla forward` as a user runs them: Open3D-ML's checkpoint becomes a
//! model directory, and the forward of its batch reproduces Open3D-ML's logits with both engines.

use std::path::{Path, PathBuf};
use std::process::Command;

use randla_model::StateDict;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/parity")
        .join(name)
}

fn randla(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_randla"))
        .args(args)
        .output()
        .expect("randla runs")
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn import_then_forward_reproduces_open3d_ml() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    let m = model.to_str().unwrap();
    let pth = fixture("o3d_kitti_small.pth");
    let io = fixture("o3d_kitti_small.io.safetensors");
    let out = randla(&["import", "--checkpoint", pth.to_str().unwrap(), "-o", m]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(model.join("config.toml").exists() && model.join("weights.safetensors").exists());
    // No silent overwrite.
    let again = randla(&["import", "--checkpoint", pth.to_str().unwrap(), "-o", m]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    let want = StateDict::load_safetensors(&io)
        .unwrap()
        .get("logits")
        .unwrap()
        .data
        .clone();
    for engine in [
        &["--engine", "fused"][..],
        &["--engine", "burn"],
        &["--engine", "burn", "--memory-efficient"],
    ] {
        let logits = dir.path().join("logits.safetensors");
        let mut args = vec![
            "forward",
            "--model",
            m,
            "--input",
            io.to_str().unwrap(),
            "-o",
            logits.to_str().unwrap(),
            "--force",
        ];
        args.extend_from_slice(engine);
        let out = randla(&args);
        assert!(
            out.status.success(),
            "{engine:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = StateDict::load_safetensors(&logits).unwrap();
        let got = got.get("logits").unwrap();
        assert_eq!(got.shape, vec![1, 4096, 7]);
        let d = max_diff(&got.data, &want);
        assert!(d <= 1e-4 * 0.634 + 1e-5, "{engine:?}: max |Δ| {d}");
    }
}

#[test]
fn forward_refuses_what_does_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("o.safetensors");
    let o = out_path.to_str().unwrap();
    // A batch that is not a batch.
    let bad = randla(&[
        "forward",
        "--model",
        fixture("o3d_kitti_small.pth").to_str().unwrap(),
        "--input",
        fixture("o3d_kitti_small.json").to_str().unwrap(),
        "-o",
        o,
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("o3d_kitti_small.json"));
    // A model that does not exist.
    let bad = randla(&[
        "forward",
        "--model",
        "/nonexistent/model",
        "--input",
        fixture("o3d_kitti_small.io.safetensors").to_str().unwrap(),
        "-o",
        o,
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/nonexistent/model"));
    assert!(!out_path.exists(), "nothing half-written");
}
