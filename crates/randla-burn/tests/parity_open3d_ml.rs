//! Parity with Open3D-ML's own PyTorch RandLANet on the fixture crop: same checkpoint, same input
//! batch, eval-mode logits within 1e-4·max|ref| + 1e-5, in the standard and memory-efficient modes.

mod common;

use std::path::PathBuf;

use burn::tensor::Device;
use randla_burn::{BatchTensors, ForwardOptions, RandLaNet};
use randla_geom::MemoryBudget;
use randla_model::{Batch, RandLaNetConfig, StateDict};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/parity")
        .join(name)
}

fn config() -> RandLaNetConfig {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("o3d_kitti_small.json")).unwrap())
            .unwrap();
    let cfg: RandLaNetConfig = serde_json::from_value(json["config"].clone()).unwrap();
    // The values the fixture was made with.
    assert_eq!(cfg.num_neighbors, 16);
    assert_eq!(cfg.num_layers, 4);
    assert_eq!(cfg.sub_sampling_ratio, vec![4, 4, 4, 4]);
    assert_eq!(
        (cfg.in_channels, cfg.dim_features, cfg.num_classes),
        (6, 8, 7)
    );
    assert_eq!(cfg.dim_output, vec![16, 64, 128, 256]);
    cfg
}

#[test]
fn logits_equal_open3d_ml_in_both_modes() {
    let cfg = config();
    let device = Device::flex();
    let sd = StateDict::load(fixture("o3d_kitti_small.pth")).unwrap();
    let net = RandLaNet::from_state_dict(&cfg, &sd, &device).unwrap();
    let batch = Batch::load_safetensors(fixture("o3d_kitti_small.io.safetensors")).unwrap();
    let io = StateDict::load_safetensors(fixture("o3d_kitti_small.io.safetensors")).unwrap();
    let reference = io.get("logits").unwrap();
    assert_eq!(reference.shape, vec![1, 4096, 7]);
    let input = BatchTensors::from_batch(&batch, &cfg, &device).unwrap();

    let standard = net.forward(&input).unwrap();
    assert_eq!(standard.dims(), [1, 4096, 7]);
    let standard = common::values(standard);
    let (d, m) = common::max_diff(&standard, &reference.data);
    eprintln!("standard mode: max |Δ| = {d:.3e}, max |ref| = {m:.3e}");
    assert!(
        d <= 1e-4 * m + 1e-5,
        "standard mode: max |Δ| {d} for max |ref| {m}"
    );

    // Memory-efficient: a small budget forces many chunks per level (and a fixed chunk too).
    for opts in [
        ForwardOptions::memory_efficient(MemoryBudget::bytes(2 << 20)),
        ForwardOptions::chunked(700),
    ] {
        let plan = net.chunk_plan(&input, &opts).unwrap();
        assert!(plan[0].unwrap() < 4096, "{plan:?}");
        let chunked = common::values(net.forward_with(&input, &opts).unwrap());
        let (d, m) = common::max_diff(&chunked, &reference.data);
        eprintln!("memory-efficient mode {plan:?}: max |Δ| = {d:.3e}");
        assert!(
            d <= 1e-4 * m + 1e-5,
            "memory-efficient mode: max |Δ| {d} for max |ref| {m}"
        );
        let (e, _) = common::max_diff(&chunked, &standard);
        assert!(e <= 1e-5 * m, "modes differ by {e}");
    }
}

#[test]
fn state_dict_round_trips_the_checkpoint() {
    let cfg = config();
    let sd = StateDict::load(fixture("o3d_kitti_small.pth")).unwrap();
    let net = RandLaNet::from_state_dict(&cfg, &sd, &Device::flex()).unwrap();
    let back = net.to_state_dict().unwrap();
    back.check(&cfg).unwrap();
    for (name, p) in sd.iter() {
        let q = back.get(name).unwrap();
        assert_eq!(p.shape, q.shape, "{name}");
        assert_eq!(p.data, q.data, "{name}");
    }
    assert_eq!(back.len(), cfg.parameter_shapes().len());
}
