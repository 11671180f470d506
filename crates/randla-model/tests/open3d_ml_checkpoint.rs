//! Open3D-ML's own checkpoint and batch (fixtures/parity) load completely and check against the
//! configuration they were made with; our safetensors round-trips them; broken files give errors.

use randla_model::{Batch, Param, RandLaNetConfig, StateDict};

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/parity")
        .join(name)
}

/// The configuration recorded in o3d_kitti_small.json.
fn parity_config() -> RandLaNetConfig {
    RandLaNetConfig {
        num_points: 4096,
        num_classes: 7,
        in_channels: 6,
        ..RandLaNetConfig::default()
    }
}

#[test]
fn checkpoint_loads_with_every_parameter() {
    let cfg = parity_config();
    let sd = StateDict::load(fixture("o3d_kitti_small.pth")).unwrap();
    assert_eq!(sd.len(), 270);
    sd.check(&cfg).unwrap();
    // The parameter count Open3D-ML reported for this model.
    assert_eq!(sd.num_trainable_parameters(), 1_241_935);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("o3d_kitti_small.json")).unwrap())
            .unwrap();
    assert_eq!(
        meta["params"].as_u64().unwrap() as usize,
        sd.num_trainable_parameters()
    );
    // Batch-norm statistics were randomised by the fixture script: running_var in [0.5, 2].
    let var = &sd
        .get("encoder.1.lse2.mlp.batch_norm.running_var")
        .unwrap()
        .data;
    assert!(var.iter().all(|v| (0.5..=2.0).contains(v)));
    assert!(var.iter().any(|v| (*v - 1.0).abs() > 0.05));
    // ConvTranspose2d weights keep their [in, out, 1, 1] layout.
    assert_eq!(
        sd.get("decoder.0.conv.weight").unwrap().shape,
        vec![768, 256, 1, 1]
    );
}

#[test]
fn safetensors_round_trip_is_exact() {
    let sd = StateDict::load(fixture("o3d_kitti_small.pth")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.safetensors");
    sd.save_safetensors(&p).unwrap();
    assert_eq!(StateDict::load(&p).unwrap(), sd);
}

#[test]
fn batch_loads_and_validates() {
    let cfg = parity_config();
    let b = Batch::load_safetensors(fixture("o3d_kitti_small.io.safetensors")).unwrap();
    assert_eq!((b.batch_size, b.channels, b.k), (1, 6, 16));
    assert_eq!(b.sizes, vec![4096, 1024, 256, 64, 16]);
    b.validate(&cfg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("b.safetensors");
    b.save_safetensors(&p).unwrap();
    assert_eq!(Batch::load_safetensors(&p).unwrap(), b);
    // A batch that does not fit the model.
    let wrong = RandLaNetConfig {
        in_channels: 3,
        ..cfg.clone()
    };
    assert!(
        b.validate(&wrong)
            .unwrap_err()
            .to_string()
            .contains("in_channels = 3")
    );
    let mut bad = b.clone();
    bad.neighbors[2][17] = 256;
    let e = bad.validate(&cfg).unwrap_err().to_string();
    assert!(
        e.contains("neighbor_indices.2") && e.contains("index 256"),
        "{e}"
    );
    let mut bad = b.clone();
    bad.interp_idx[1].pop();
    assert!(
        bad.validate(&cfg)
            .unwrap_err()
            .to_string()
            .contains("interp_idx.1")
    );
}

#[test]
fn broken_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    // Truncated checkpoint.
    let bytes = std::fs::read(fixture("o3d_kitti_small.pth")).unwrap();
    let p = dir.path().join("cut.pth");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = StateDict::load(&p).unwrap_err().to_string();
    assert!(e.contains("cut.pth"), "{e}");
    // Not a checkpoint at all.
    let p = dir.path().join("text.pth");
    std::fs::write(&p, "hello").unwrap();
    assert!(
        StateDict::load(&p)
            .unwrap_err()
            .to_string()
            .contains("not a readable checkpoint")
    );
    // Unknown extension, missing file.
    assert!(StateDict::load(dir.path().join("w.bin")).is_err());
    assert!(
        StateDict::load(dir.path().join("absent.safetensors"))
            .unwrap_err()
            .to_string()
            .contains("absent.safetensors")
    );
    // A batch file without the index tensors.
    let mut sd = StateDict::new();
    sd.insert("features", Param::new(vec![1, 2, 3], vec![0.0; 6]));
    let p = dir.path().join("b.safetensors");
    sd.save_safetensors(&p).unwrap();
    assert!(
        Batch::load_safetensors(&p)
            .unwrap_err()
            .to_string()
            .contains("neighbor_indices.0")
    );
}

#[test]
fn model_directory_round_trip() {
    use randla_model::model_dir::ModelDir;
    let cfg = parity_config();
    let sd = StateDict::load(fixture("o3d_kitti_small.pth")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("model");
    let input = randla_model::model_dir::InputSpec {
        features: vec![
            "intensity".into(),
            "return_number".into(),
            "number_of_returns".into(),
        ],
        scale: vec![65535.0, 5.0, 5.0],
    };
    let model = ModelDir::new(
        cfg.clone(),
        sd.clone(),
        Some(input.clone()),
        Some(randla_model::model_dir::ClassSpec::identity(7)),
    )
    .unwrap();
    model.save(&m, false).unwrap();
    let back = ModelDir::load(&m).unwrap();
    assert_eq!(back.config, cfg);
    assert_eq!(back.weights, sd);
    assert_eq!(back.input, Some(input));
    assert_eq!(back.classes.as_ref().unwrap().code(3), 3);
    // No silent overwrite.
    assert!(
        model
            .save(&m, false)
            .unwrap_err()
            .to_string()
            .contains("--force")
    );
    model.save(&m, true).unwrap();
    // Specs that do not fit the network are refused.
    let wrong = randla_model::model_dir::InputSpec {
        features: vec!["intensity".into()],
        scale: vec![1.0],
    };
    assert!(
        ModelDir::new(cfg.clone(), sd.clone(), Some(wrong), None)
            .unwrap_err()
            .to_string()
            .contains("in_channels = 6")
    );
    assert!(
        ModelDir::new(
            cfg,
            sd,
            None,
            Some(randla_model::model_dir::ClassSpec::identity(3))
        )
        .is_err()
    );
}
