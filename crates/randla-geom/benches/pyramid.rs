//! Pyramid build time: the per-layer neighbours (k = 16), pooling and upsampling indices of one
//! shuffled crop, for the reference's crop sizes (4,096 … 65,536 points) and four layers of ratio 4.
//! Open3D-ML's anchor on this machine kind: 0.13–0.37 s for 40,960 points
//! (shared/reference/peers/README.md).
//!
//! Run with: `cargo bench -p randla-geom --bench pyramid`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use randla_geom::{Pyramid, PyramidConfig};

fn pyramid(c: &mut Criterion) {
    let mut g = c.benchmark_group("pyramid_k16_4x4");
    g.sample_size(10);
    let cfg = PyramidConfig::default();
    for n in [4_096, 40_960, 45_056, 65_536] {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let pts: Vec<[f32; 3]> = (0..n)
            .map(|_| {
                [
                    rng.random::<f32>() * 30.0,
                    rng.random::<f32>() * 30.0,
                    rng.random::<f32>() * 5.0,
                ]
            })
            .collect();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| Pyramid::build(black_box(&pts), &cfg).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, pyramid);
criterion_main!(benches);
