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

fn main() -> std::process::ExitCode {
    // Rust ignores SIGPIPE, so printing into a closed pipe (`randla info … | head`) would panic;
    // restore the default action: the process ends quietly, as Unix tools do.
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = commands::Cli::parse();
    match commands::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The message and its causes, as anyhow prints them, but without a stack trace
            // even where RUST_BACKTRACE is set: a bad file is the user's error, not ours.
            eprintln!("Error: {e}");
            let causes: Vec<String> = e.chain().skip(1).map(|c| c.to_string()).collect();
            if !causes.is_empty() {
                eprintln!("\nCaused by:");
                for (i, c) in causes.iter().enumerate() {
                    eprintln!("    {i}: {c}");
                }
            }
            std::process::ExitCode::FAILURE
        }
    }
}
