//! Grid subsampling throughput: N points of a LiDAR-like scene (a ground plane with trees of points
//! above it, 200 m × 200 m) subsampled at 0.2 m with one feature channel and labels, N = 10^4 … 10^6.
//!
//! Run with: `cargo bench -p randla-geom --bench grid_subsample`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use randla_geom::sampling::grid_subsample;

fn scene(n: usize) -> (Vec<[f32; 3]>, Vec<f32>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut pts = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let (x, y) = (rng.random::<f32>() * 200.0, rng.random::<f32>() * 200.0);
        if i % 3 == 0 {
            pts.push([x, y, rng.random::<f32>() * 15.0]);
            labels.push(5);
        } else {
            pts.push([x, y, 0.05 * rng.random::<f32>()]);
            labels.push(2);
        }
    }
    let feats = pts.iter().map(|p| p[2]).collect();
    (pts, feats, labels)
}

fn grid(c: &mut Criterion) {
    let mut g = c.benchmark_group("grid_subsample_0.2m");
    g.sample_size(10);
    for n in [10_000, 100_000, 1_000_000] {
        let (pts, feats, labels) = scene(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| grid_subsample(black_box(&pts), &feats, 1, Some(&labels), 0.2).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, grid);
criterion_main!(benches);
