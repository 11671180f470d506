//! `randla`: RandLA-Net semantic segmentation of point clouds, in one binary.
//!
//! Each subcommand lives in its own file under `commands/`; this file only parses the command line
//! and dispatches. The binary counts its heap exactly (see `randla-memory`), so memory reports
//! are byte-accurate.

mod commands;

use clap::Parser;

#[cfg(feature = "counting-alloc")]
#[global_allocator]
static ALLOC: randla_memory::CountingAllocator = randla_memory::CountingAllocator::SYSTEM;

fn main() -> anyhow::Result<()> {
    // Rust ignores SIGPIPE, so printing into a closed pipe (`randla info … | head`) would panic;
    // restore the default action: the process ends quietly, as Unix tools do.
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = commands::Cli::parse();
    commands::run(cli)
}
