//! Writes a model directory with random weights, for timing prediction before a model is trained
//! (the time does not depend on the weights). Input: xyz + intensity, return number, number of
//! returns (IGN LiDAR HD); classes ground / vegetation / building / other.
//!
//! Usage: `cargo run --release -p randla-predict --example random_model -- OUT_DIR [GRID_SIZE]`

use randla_model::model_dir::{ClassSpec, InputSpec, ModelDir};
use randla_model::{RandLaNetConfig, StateDict};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(out) = args.next() else {
        eprintln!("usage: random_model OUT_DIR [GRID_SIZE]");
        std::process::exit(2);
    };
    let grid: f32 = args.next().and_then(|g| g.parse().ok()).unwrap_or(0.2);
    let cfg = RandLaNetConfig {
        in_channels: 6,
        num_classes: 4,
        grid_size: grid,
        ..RandLaNetConfig::default()
    };
    let input = InputSpec {
        features: vec![
            "intensity".into(),
            "return_number".into(),
            "number_of_returns".into(),
        ],
        scale: vec![65535.0, 5.0, 5.0],
    };
    let classes = ClassSpec {
        names: vec![
            "ground".into(),
            "vegetation".into(),
            "building".into(),
            "other".into(),
        ],
        codes: vec![vec![2], vec![3, 4, 5], vec![6], vec![1, 64]],
    };
    let model = ModelDir::new(
        cfg.clone(),
        StateDict::random(&cfg, 0),
        Some(input),
        Some(classes),
    )
    .expect("a consistent model");
    if let Err(e) = model.save(&out, true) {
        eprintln!("{out}: {e}");
        std::process::exit(1);
    }
    eprintln!("random model written to {out}");
}
