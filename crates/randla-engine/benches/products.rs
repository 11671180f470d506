//! The dense product kernel (`kernels::gemm_rows`) on the engine's shapes: rows × input channels
//! × output channels of the tile passes' score products (512 × 32 × 64, 256 × 64 × 128) and of
//! the per-point layers (512 × 16 × 32, 512 × 128 × 128, 512 × 8 × 16), throughput in
//! multiply-adds. On CPUs with AVX-512F it runs the 8 × 32 AVX-512 kernel for 16 columns or more
//! (same bits as the AVX2 one); session 10's Xeon measured 72–87 G multiply-adds/s there against
//! 49–51 for the AVX2 kernel (BENCHMARKS.md).
//!
//! Run with: `cargo bench -p randla-engine --bench products`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use randla_engine::kernels::gemm_rows;

fn products(c: &mut Criterion) {
    let mut g = c.benchmark_group("gemm_rows");
    for (m, kd, n) in [
        (512, 32, 64),
        (256, 64, 128),
        (512, 16, 32),
        (512, 128, 128),
        (512, 8, 16),
    ] {
        let a: Vec<f32> = (0..m * kd).map(|i| (i % 97) as f32 * 0.01).collect();
        let wt: Vec<f32> = (0..kd * n).map(|i| (i % 13) as f32 * 0.1).collect();
        let mut out = vec![0f32; m * n];
        g.throughput(Throughput::Elements((m * kd * n) as u64));
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{m}x{kd}x{n}")),
            &(),
            |b, _| b.iter(|| gemm_rows(black_box(&a), m, kd, black_box(&wt), n, &mut out, false)),
        );
    }
    g.finish();
}

criterion_group!(benches, products);
criterion_main!(benches);
