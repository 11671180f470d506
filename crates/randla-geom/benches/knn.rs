//! KNN throughput: build a KD-tree over N uniform random points (100 m cube) and query the k = 16
//! nearest neighbours of every point, for N = 10^3 … 10^6; kiddo 6's `ImmutableKdTree` on the same
//! data as the in-bench peer (the Python peers are run by `shared/reference/peers/knn_bench.py`).
//!
//! Hypothesis: a bucketed tree in struct-of-arrays layout, queried in tree order, beats kiddo's
//! per-query API by keeping the working set in cache.
//!
//! Run with: `cargo bench -p randla-geom --bench knn`

use std::hint::black_box;
use std::num::NonZero;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiddo::{ImmutableKdTree, SquaredEuclidean};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use randla_geom::KdTree;

const SIZES: &[usize] = &[1_000, 10_000, 100_000, 1_000_000];
const K: usize = 16;

fn cloud(n: usize) -> Vec<[f32; 3]> {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    (0..n)
        .map(|_| std::array::from_fn(|_| rng.random::<f32>() * 100.0))
        .collect()
}

fn knn(c: &mut Criterion) {
    let mut g = c.benchmark_group("knn_all_points_k16");
    g.sample_size(10);
    for &n in SIZES {
        let pts = cloud(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("randla_build", n), &pts, |b, pts| {
            b.iter(|| KdTree::build(black_box(pts)).unwrap())
        });
        let tree = KdTree::build(&pts).unwrap();
        g.bench_with_input(BenchmarkId::new("randla_query", n), &tree, |b, tree| {
            b.iter(|| tree.knn_self(K).unwrap())
        });
        let kd: ImmutableKdTree<f32, 3> = ImmutableKdTree::new_from_slice(&pts).unwrap();
        g.bench_with_input(BenchmarkId::new("kiddo_query", n), &pts, |b, pts| {
            b.iter(|| {
                kd.query_batch(pts)
                    .nearest_n::<SquaredEuclidean<f32>>(NonZero::new(K).unwrap())
                    .execute()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, knn);
criterion_main!(benches);
