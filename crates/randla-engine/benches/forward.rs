//! Fused-engine forward time for the reference's configurations: the SemanticKITTI model
//! (4 layers [16, 64, 128, 256], k = 16, 6 input channels) on one crop of 4,096 … 45,056 points of
//! a LiDAR-like scene, pyramid built outside the timed loop. Open3D-ML's anchor on this machine
//! kind for 45,056 points (40,960 in its README): 0.78 s quiet (shared/reference/peers/README.md);
//! compare only within one run (`randla bench model` runs both).
//!
//! Run with: `cargo bench -p randla-engine --bench forward`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use randla_engine::FusedEngine;
use randla_geom::Pyramid;
use randla_model::{RandLaNetConfig, StateDict};

fn forward(c: &mut Criterion) {
    let cfg = RandLaNetConfig {
        in_channels: 6,
        num_classes: 7,
        ..RandLaNetConfig::default()
    };
    let engine = FusedEngine::new(&cfg, &StateDict::random(&cfg, 0)).unwrap();
    let mut g = c.benchmark_group("fused_forward_kitti_config");
    g.sample_size(10);
    for n in [4_096, 45_056] {
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
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| engine.forward_crop(black_box(&feats), &pyr).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
