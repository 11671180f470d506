//! `randla`: RandLA-Net semantic segmentation of point clouds, in one binary.
//!
//! Each subcommand lives in its own file under `commands/`; this file only parses the command line
//! and dispatches.

mod commands;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = commands::Cli::parse();
    commands::run(cli)
}
