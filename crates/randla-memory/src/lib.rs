//! # randla-memory: how much memory, and how long
//!
//! - [`CountingAllocator`]: a global allocator wrapper that counts live heap bytes and their peak
//!   exactly. A binary opts in with
//!   `#[global_allocator] static A: randla_memory::CountingAllocator = randla_memory::CountingAllocator::SYSTEM;`
//!   (the `randla` binary does, behind its default feature `counting-alloc`). Its cost: two
//!   relaxed atomic operations per allocation and one per free — nothing measurable from one
//!   thread, 3–6 ns per allocation + free pair when two threads allocate at once, +4–9 % on
//!   burn's allocation-heavy forward, none on the fused engine (`benches/allocator.rs`,
//!   BENCHMARKS.md).
//! - [`memory_info`]: heap bytes now and at peak, process RSS now and at peak, RAM available.
//! - [`MemoryMonitor`]: a scope guard (`MemoryMonitor::new("forward pass")`) that reports wall
//!   time, heap at start / end / peak within the scope, RSS at start / end / peak, when asked
//!   ([`MemoryMonitor::report`]) or when dropped (printed to stderr if `RANDLA_MEMORY_LOG` is set),
//!   and, with the default feature `tracing`, as a `tracing` event (target `randla_memory`).
//!
//! Heap figures are exact only when the counting allocator is installed; otherwise they are
//! `None` and the RSS figures remain.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

static LIVE: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// A global allocator that forwards to another one and counts live bytes and their peak.
#[derive(Debug)]
pub struct CountingAllocator<A = System> {
    inner: A,
}

impl CountingAllocator<System> {
    /// Counting over the system allocator.
    pub const SYSTEM: CountingAllocator<System> = CountingAllocator { inner: System };
}

impl<A> CountingAllocator<A> {
    /// Counting over `inner`.
    pub const fn new(inner: A) -> Self {
        CountingAllocator { inner }
    }
}

#[inline]
fn grew(size: usize) {
    let now = LIVE.fetch_add(size as u64, Ordering::Relaxed) + size as u64;
    PEAK.fetch_max(now, Ordering::Relaxed);
    if !INSTALLED.load(Ordering::Relaxed) {
        INSTALLED.store(true, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the inner allocator; the counters are side data.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAllocator<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { self.inner.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { self.inner.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as u64, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub((layout.size() - new_size) as u64, Ordering::Relaxed);
            }
        }
        p
    }
}

/// True when a [`CountingAllocator`] is the global allocator (it has counted an allocation).
pub fn counting_installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// Memory figures of this process at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MemoryInfo {
    /// Live heap bytes (counting allocator only).
    pub heap_bytes: Option<u64>,
    /// Peak live heap bytes since start or the last [`reset_heap_peak`].
    pub heap_peak_bytes: Option<u64>,
    /// Resident set size.
    pub rss_bytes: Option<u64>,
    /// Peak resident set size (Linux `VmHWM`) since start or the last [`reset_rss_peak`].
    pub rss_peak_bytes: Option<u64>,
    /// RAM available to new allocations on the machine.
    pub available_bytes: Option<u64>,
}

/// The memory figures now.
pub fn memory_info() -> MemoryInfo {
    let installed = counting_installed();
    // Read the heap first: what follows allocates for a moment.
    let (heap, peak) = (LIVE.load(Ordering::Relaxed), PEAK.load(Ordering::Relaxed));
    let (rss, hwm) = rss();
    let mut sys = sysinfo::System::new().ok();
    let available = sys.as_mut().map(|s| {
        s.refresh_memory();
        s.available_memory()
    });
    MemoryInfo {
        heap_bytes: installed.then_some(heap),
        heap_peak_bytes: installed.then_some(peak),
        rss_bytes: rss,
        rss_peak_bytes: hwm,
        available_bytes: available.filter(|&a| a > 0),
    }
}

/// Live heap bytes now (0 without the counting allocator).
pub fn heap_bytes() -> u64 {
    LIVE.load(Ordering::Relaxed)
}

/// Restarts heap-peak tracking from the current live bytes; returns the previous peak.
pub fn reset_heap_peak() -> u64 {
    PEAK.swap(LIVE.load(Ordering::Relaxed), Ordering::Relaxed)
}

/// Restarts the kernel's peak-RSS tracking (Linux: writes 5 to `/proc/self/clear_refs`); false
/// where that is not possible.
pub fn reset_rss_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// (RSS, peak RSS) from `/proc/self/status`, else RSS from sysinfo.
fn rss() -> (Option<u64>, Option<u64>) {
    if let Ok(s) = std::fs::read_to_string("/proc/self/status") {
        let field = |name: &str| {
            s.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .map(|kb| kb * 1024)
        };
        return (field("VmRSS:"), field("VmHWM:"));
    }
    let mut sys = match sysinfo::System::new() {
        Ok(s) => s,
        Err(_) => return (None, None),
    };
    let pid = sysinfo::get_current_pid().ok();
    let rss = pid.and_then(|p| {
        sys.refresh_processes(sysinfo::ProcessesToUpdate::Some(&[p]), true);
        sys.process(p).map(|pr| pr.memory())
    });
    (rss, None)
}

/// What a [`MemoryMonitor`] measured over its scope.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MemoryReport {
    /// The scope's name.
    pub name: String,
    /// Wall time in seconds.
    pub wall_s: f64,
    /// Heap bytes at start (counting allocator only).
    pub heap_start_bytes: Option<u64>,
    /// Heap bytes at the end.
    pub heap_end_bytes: Option<u64>,
    /// Peak heap bytes within the scope.
    pub heap_peak_bytes: Option<u64>,
    /// RSS at start.
    pub rss_start_bytes: Option<u64>,
    /// RSS at the end.
    pub rss_end_bytes: Option<u64>,
    /// Peak RSS within the scope (the process peak when it could not be reset at the start).
    pub rss_peak_bytes: Option<u64>,
    /// Device (GPU) memory in use at the end, where the backend reports it.
    pub device_bytes: Option<u64>,
}

impl std::fmt::Display for MemoryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: Option<u64>| {
            b.map_or("-".to_string(), |b| {
                format!("{:.1} MiB", b as f64 / 1048576.0)
            })
        };
        write!(
            f,
            "{}: {:.3} s, heap {} → {} (peak {}), RSS {} → {} (peak {})",
            self.name,
            self.wall_s,
            mib(self.heap_start_bytes),
            mib(self.heap_end_bytes),
            mib(self.heap_peak_bytes),
            mib(self.rss_start_bytes),
            mib(self.rss_end_bytes),
            mib(self.rss_peak_bytes)
        )?;
        if let Some(d) = self.device_bytes {
            write!(f, ", device {}", mib(Some(d)))?;
        }
        Ok(())
    }
}

/// A scope guard measuring wall time and memory between its creation and [`MemoryMonitor::report`]
/// (or its drop). Monitors nest: an inner scope does not hide its peak from the outer one.
///
/// ```
/// let m = randla_memory::MemoryMonitor::new("build buffers");
/// let v = vec![0u8; 1 << 20];
/// let report = m.report();
/// assert!(report.wall_s >= 0.0);
/// drop(v);
/// ```
#[derive(Debug)]
pub struct MemoryMonitor {
    name: String,
    start: Instant,
    start_info: MemoryInfo,
    outer_peak: u64,
    rss_reset: bool,
    done: bool,
}

impl MemoryMonitor {
    /// Starts measuring a scope called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        let start_info = memory_info();
        let outer_peak = reset_heap_peak();
        MemoryMonitor {
            name: name.into(),
            start: Instant::now(),
            start_info,
            outer_peak,
            rss_reset: false,
            done: false,
        }
    }

    /// Like [`MemoryMonitor::new`], also restarting the kernel's peak-RSS tracking so that the
    /// reported RSS peak belongs to this scope (use it for top-level scopes: it affects the
    /// process-wide figure).
    pub fn with_rss_peak(name: impl Into<String>) -> Self {
        let rss_reset = reset_rss_peak();
        let mut m = Self::new(name);
        m.rss_reset = rss_reset;
        m
    }

    /// The figures so far, without ending the scope's peak tracking.
    pub fn peek(&self) -> MemoryReport {
        let end = memory_info();
        MemoryReport {
            name: self.name.clone(),
            wall_s: self.start.elapsed().as_secs_f64(),
            heap_start_bytes: self.start_info.heap_bytes,
            heap_end_bytes: end.heap_bytes,
            heap_peak_bytes: end.heap_peak_bytes,
            rss_start_bytes: self.start_info.rss_bytes,
            rss_end_bytes: end.rss_bytes,
            rss_peak_bytes: end.rss_peak_bytes,
            device_bytes: None,
        }
    }

    /// Ends the scope and returns its figures.
    pub fn report(mut self) -> MemoryReport {
        self.finish()
    }

    fn finish(&mut self) -> MemoryReport {
        let r = self.peek();
        self.done = true;
        // Give the outer scope its view back: its peak is the larger of the two.
        PEAK.fetch_max(self.outer_peak, Ordering::Relaxed);
        #[cfg(feature = "tracing")]
        tracing::info!(
            target: "randla_memory",
            scope = %r.name,
            wall_s = r.wall_s,
            heap_peak_bytes = r.heap_peak_bytes,
            rss_peak_bytes = r.rss_peak_bytes,
            "{r}"
        );
        r
    }
}

impl Drop for MemoryMonitor {
    fn drop(&mut self) {
        if !self.done {
            let r = self.finish();
            if std::env::var_os("RANDLA_MEMORY_LOG").is_some() {
                eprintln!("[memory] {r}");
            }
        }
    }
}
