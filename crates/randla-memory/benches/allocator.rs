//! What the counting allocator costs: an allocation + free pair through the system allocator
//! directly and through `CountingAllocator` (two relaxed atomic operations per allocation, one per
//! free), for small, medium and large blocks, from one thread and from two threads at once (the
//! counters are shared, so concurrent allocators contend for their cache line).
//! The end-to-end cost (the `randla` binary built with and without the counting allocator) is in
//! BENCHMARKS.md.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use randla_memory::CountingAllocator;

/// Pairs per measured iteration (per thread).
const N: usize = 10_000;

/// `n` allocation + free pairs of `size` bytes through `a`.
fn pairs<A: GlobalAlloc>(a: &A, size: usize, n: usize) {
    let layout = Layout::from_size_align(size, 16).expect("valid layout");
    for _ in 0..n {
        // SAFETY: a non-zero-size layout; the block is freed with the same layout.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            black_box(p).write(1);
            a.dealloc(p, layout);
        }
    }
}

fn bench(c: &mut Criterion) {
    let counting = CountingAllocator::SYSTEM;
    let mut g = c.benchmark_group("alloc_free_pairs_x10000");
    for size in [16usize, 4096, 1 << 20] {
        g.bench_with_input(BenchmarkId::new("system/1 thread", size), &size, |b, &s| {
            b.iter(|| pairs(&System, s, N))
        });
        g.bench_with_input(
            BenchmarkId::new("counting/1 thread", size),
            &size,
            |b, &s| b.iter(|| pairs(&counting, s, N)),
        );
        g.bench_with_input(
            BenchmarkId::new("system/2 threads", size),
            &size,
            |b, &s| {
                b.iter(|| {
                    std::thread::scope(|t| {
                        (0..2).for_each(|_| drop(t.spawn(|| pairs(&System, s, N))))
                    })
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("counting/2 threads", size),
            &size,
            |b, &s| {
                b.iter(|| {
                    std::thread::scope(|t| {
                        (0..2).for_each(|_| drop(t.spawn(|| pairs(&counting, s, N))))
                    })
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
