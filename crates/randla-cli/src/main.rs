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
    #[cfg(unix)]
    remove_unfinished_outputs_on_interrupt();
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

/// Ctrl-C, `kill` or a closed terminal (SIGINT, SIGTERM, SIGHUP) would end the process in the
/// middle of a write and leave its hidden temporary file (as large as the output) behind. These
/// signals are blocked in every thread (this runs before any other thread exists) and taken by
/// one thread instead, which removes the unfinished outputs' temporary files and ends the
/// process as the signal would have (status 128 + signal).
#[cfg(unix)]
fn remove_unfinished_outputs_on_interrupt() {
    // SAFETY: the set is initialised by sigemptyset before use; pthread_sigmask and sigwait
    // are given valid pointers; called before any other thread exists, so every later thread
    // inherits the mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let mut sig = 0;
                if libc::sigwait(&set, &mut sig) == 0 {
                    let n = randla_io::atomic::remove_unfinished();
                    if n > 0 {
                        eprintln!("\ninterrupted: {n} unfinished output(s) removed");
                    } else {
                        eprintln!("\ninterrupted");
                    }
                    std::process::exit(128 + sig);
                }
            });
        if spawned.is_err() {
            // No thread to take them: let the signals act as before.
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        }
    }
}
