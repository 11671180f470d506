//! `KnnCache::clear()` gives the memory back: measured with a counting global allocator (this test
//! binary holds this one test, so nothing else allocates meanwhile).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use randla_geom::{KnnCache, MemoryBudget, PyramidConfig};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn clear_returns_the_heap_to_where_it_was() {
    let n = 200_000;
    let pts: Vec<[f32; 3]> = (0..n)
        .map(|i| {
            [
                (i % 100) as f32,
                (i / 100 % 100) as f32,
                (i / 10_000) as f32 * 0.37,
            ]
        })
        .collect();
    let mut cache = KnnCache::new(MemoryBudget::bytes(1 << 30));
    // Warm up rayon's pool so its allocations are not counted against the cache.
    cache.build(&pts[..1000]).unwrap();
    cache.clear();
    let before = LIVE.load(Ordering::Relaxed);
    cache.build(&pts).unwrap();
    cache.pyramid("p", &pts, &PyramidConfig::default()).unwrap();
    let held = LIVE.load(Ordering::Relaxed) - before;
    let accounted = cache.stats().bytes_held as isize;
    assert!(
        held >= accounted,
        "heap grew by {held} B, cache says it holds {accounted} B"
    );
    assert!(
        held < accounted * 2,
        "heap grew by {held} B, far more than the {accounted} B accounted"
    );
    cache.clear();
    let after = LIVE.load(Ordering::Relaxed) - before;
    assert!(
        after.abs() < 64 * 1024,
        "after clear() {after} B are still live out of {held} B"
    );
}
