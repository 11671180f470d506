//! Command-line definition and dispatch.

mod bench;
mod bench_common;
mod bench_model;
mod bench_predict;
mod bench_train;
mod eval;
mod fmt;
mod forward;
mod import;
mod info;
mod inputs;
mod model;
mod predict;
mod render;
mod scene;
mod train;

use clap::{Parser, Subcommand};

/// RandLA-Net semantic segmentation of point clouds: read, train, classify every point, write back.
#[derive(Debug, Parser)]
#[command(name = "randla", version, about, long_about = None)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Every subcommand of `randla`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Benchmarks: KNN, the network's forward pass, a training step, whole-file prediction.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Point count, bounds, attributes and class histogram of a point-cloud file.
    Info(info::InfoArgs),
    /// Import an Open3D-ML checkpoint (and its YAML config) into a native model directory.
    Import(import::ImportArgs),
    /// Run the network on an Open3D-ML-style input batch and write its logits.
    Forward(forward::ForwardArgs),
    /// Classify every point of LAS/LAZ/PLY/… files and write them back with only the
    /// classification changed.
    Predict(predict::PredictArgs),
    /// Score a prediction against the truth: per-class IoU, precision, recall, F1, mIoU, OA and
    /// the confusion matrix.
    Eval(eval::EvalArgs),
    /// Draw a classified cloud (its classes, the truth, or the errors) as a PNG with a legend.
    Render(render::RenderArgs),
    /// Train RandLA-Net from a training configuration (data, classes, features, schedule) into a
    /// run folder with checkpoints, a metrics log and a ready-to-use model directory.
    Train(train::TrainArgs),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        // The prediction benchmark runs with the allocator settings of `randla predict`.
        Command::Bench(bench::BenchCommand::Predict(args)) => {
            keep_freed_memory();
            huge_page_heap();
            bench_predict::run(args)
        }
        Command::Bench(cmd) => bench::run(cmd),
        Command::Info(args) => info::run(args),
        Command::Import(args) => import::run(args),
        Command::Forward(args) => forward::run(args),
        Command::Predict(args) => {
            keep_freed_memory();
            huge_page_heap();
            predict::run(args)
        }
        Command::Eval(args) => eval::run(args),
        Command::Render(args) => render::run(args),
        Command::Train(args) => {
            keep_freed_memory();
            train::run(args)
        }
    }
}

/// Lets glibc's allocator keep and reuse what the process frees instead of handing it back to
/// the system after every crop: every block comes from the heap (no `mmap`, whose blocks are
/// unmapped when freed, so a 0.5 M-point tile's larger arrays were faulted in afresh by each
/// tile), and the heap is never trimmed. Each crop's many short-lived arrays then reuse warm
/// pages instead of faulting in fresh zeroed ones: measured (BENCHMARKS.md) 8–11 % off `randla
/// predict` on the validation tiles; on a 10 M-point file 3 % (heap for blocks below 32 MiB)
/// and 3–5 % more (no `mmap` at all), for 5 % and then 16 % more peak RSS (1.05 → 1.22 GB).
/// Not used by the benchmarks, whose per-mode peak RSS must not include what an earlier mode
/// freed.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before the work starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Bytes at the start of the heap backed by transparent huge pages ([`huge_page_heap`]).
const HUGE_HEAP_BYTES: usize = 128 << 20;

/// Backs the next [`HUGE_HEAP_BYTES`] of the heap with transparent huge pages where the system
/// allows them on request (`madvise`; THP "madvise" or "always"), and keeps every thread on that
/// heap (one malloc arena): a small run's memory is then faulted in 2 MiB at a time instead of
/// 4 KiB. Two validation tiles at `--votes 2`: 17k page faults → 0.6–1k, system time 0.07 →
/// 0.03 s, wall 0.33 → 0.31 s (means of 10 runs; BENCHMARKS.md). Nothing is touched here:
/// pages are only reserved, and the resident set grows as they are used. No effect where THP is
/// off.
fn huge_page_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt, malloc, free and sbrk(0) (which only reads the break) are called as
    // documented; madvise(MADV_HUGEPAGE) only advises on a range that lies inside the heap (the
    // block just allocated up to the break), checked below.
    unsafe {
        const TWO_MIB: usize = 2 << 20;
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_TOP_PAD, HUGE_HEAP_BYTES as libc::c_int);
        let p = libc::malloc(TWO_MIB);
        if !p.is_null() {
            let end = libc::sbrk(0) as usize;
            let start = (p as usize + TWO_MIB - 1) & !(TWO_MIB - 1);
            // The block came from the heap's top, which the pad just extended (not from mmap).
            if end > start && end - (p as usize) <= HUGE_HEAP_BYTES + 2 * TWO_MIB {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
            libc::free(p);
        }
        // glibc's default pad again.
        libc::mallopt(libc::M_TOP_PAD, 128 << 10);
    }
}

/// Gives the heap's free pages back to the system (`malloc_trim`): for a large block freed
/// for good, which [`keep_freed_memory`]'s settings would otherwise keep resident.
pub(crate) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}
