//! Prints the time of every stage of a fused forward (KITTI configuration, 6 input channels) on
//! a random LiDAR-like crop. Usage: `cargo run --release -p randla-engine --example profile [N]`.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use randla_engine::FusedEngine;
use randla_geom::Pyramid;
use randla_model::{RandLaNetConfig, StateDict};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(45_056);
    let cfg = RandLaNetConfig {
        in_channels: 6,
        num_classes: 7,
        ..RandLaNetConfig::default()
    };
    let engine = FusedEngine::new(&cfg, &StateDict::random(&cfg, 0)).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let pts: Vec<[f32; 3]> = (0..n)
        .map(|i| {
            let (x, y) = (rng.random::<f32>() * 40.0, rng.random::<f32>() * 40.0);
            [
                x,
                y,
                if i % 3 == 0 {
                    rng.random::<f32>() * 12.0
                } else {
                    0.1 * rng.random::<f32>()
                },
            ]
        })
        .collect();
    let pyr = Pyramid::build(&pts, &cfg.pyramid_config()).unwrap();
    let feats: Vec<f32> = pts
        .iter()
        .flat_map(|p| [p[0], p[1], p[2], 0.5, 0.2, 0.2])
        .collect();
    engine.forward_crop(&feats, &pyr).unwrap();
    let mut best: Option<Vec<randla_engine::Stage>> = None;
    for _ in 0..5 {
        let (_, st) = engine.forward_crop_profiled(&feats, &pyr).unwrap();
        let total: f64 = st.iter().map(|s| s.seconds).sum();
        if best
            .as_ref()
            .is_none_or(|b| b.iter().map(|s| s.seconds).sum::<f64>() > total)
        {
            best = Some(st);
        }
    }
    let st = best.unwrap();
    let total: f64 = st.iter().map(|s| s.seconds).sum();
    for s in &st {
        println!(
            "{:<16} {:>9} pts {:>8.2} ms {:>5.1}%",
            s.name,
            s.points,
            s.seconds * 1e3,
            100.0 * s.seconds / total
        );
    }
    println!("total {:.2} ms", total * 1e3);
}
