//! With the counting allocator installed, heap figures are exact: a scope sees its own
//! allocation as its peak, nested scopes keep the outer peak, and freed memory leaves the count.

use randla_memory::{CountingAllocator, MemoryMonitor, memory_info};

#[global_allocator]
static A: CountingAllocator = CountingAllocator::SYSTEM;

#[test]
fn scopes_report_exact_heap_peaks() {
    // A heap allocation (not an array on the stack) so that the counter has seen one.
    #[allow(clippy::useless_vec)]
    let _warm = vec![1u8; 10];
    assert!(randla_memory::counting_installed());
    let outer = MemoryMonitor::new("outer");
    let big = vec![7u8; 8 << 20];
    let inner = MemoryMonitor::new("inner");
    let small = vec![1u8; 1 << 20];
    drop(small);
    let r_inner = inner.report();
    drop(big);
    let r_outer = outer.report();
    let start = r_outer.heap_start_bytes.unwrap();
    // The inner scope began with the 8 MiB live and peaked 1 MiB higher.
    let inner_rise = r_inner.heap_peak_bytes.unwrap() - r_inner.heap_start_bytes.unwrap();
    assert!(
        (1 << 20..(1 << 20) + 4096).contains(&inner_rise),
        "inner rise {inner_rise}"
    );
    // The outer scope's peak includes both buffers at once.
    let outer_rise = r_outer.heap_peak_bytes.unwrap() - start;
    assert!(
        ((9 << 20)..(9 << 20) + 8192).contains(&outer_rise),
        "outer rise {outer_rise}"
    );
    // Everything was freed.
    assert!(r_outer.heap_end_bytes.unwrap() <= start + 4096);
    let info = memory_info();
    assert!(info.rss_bytes.unwrap() > 0 && info.rss_peak_bytes.unwrap() >= info.rss_bytes.unwrap());
    let json = serde_json::to_value(r_outer).unwrap();
    for key in ["name", "wall_s", "heap_peak_bytes", "rss_peak_bytes"] {
        assert!(json.get(key).is_some(), "{key}");
    }
}
