//! `randla forward`: the network on an Open3D-ML-style batch, for users with their own
//! preprocessing and for parity checks.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use randla_engine::FusedEngine;
use randla_model::Batch;

use super::model;

/// Arguments of `randla forward`.
#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// Model directory (from `randla import` or `randla train`), or an Open3D-ML `.pth` /
    /// `.safetensors` weights file.
    #[arg(long)]
    pub model: PathBuf,
    /// Configuration for a bare weights file (Open3D-ML YAML or our TOML); inferred from the
    /// weights' shapes when absent.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The batch: safetensors with `features [B,N,C]` and per layer `coords.i`,
    /// `neighbor_indices.i`, `sub_idx.i`, `interp_idx.i` (Open3D-ML's layout).
    #[arg(long)]
    pub input: PathBuf,
    /// Output safetensors file; it gets `logits [B,N,classes]` (f32).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Bound peak memory by running the local feature aggregation over chunks of points. The
    /// fused CPU engine always works tile by tile, so its output and memory are the same with or
    /// without this flag.
    #[arg(long)]
    pub memory_efficient: bool,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Runs `randla forward`.
pub fn run(args: ForwardArgs) -> anyhow::Result<()> {
    if args.output.exists() && !args.force {
        bail!("{}: the output exists; use --force to replace it", args.output.display());
    }
    let mut m = model::load(&args.model, args.config.as_ref())?;
    let batch = Batch::load_safetensors(&args.input)?;
    if m.inferred {
        // What the weights cannot say comes from the batch itself.
        m.config.num_neighbors = batch.k;
        m.config.sub_sampling_ratio = batch.sizes.windows(2).map(|w| w[0] / w[1].max(1)).collect();
    }
    batch.validate(&m.config).with_context(|| format!("{} does not fit the model", args.input.display()))?;
    let engine = FusedEngine::new(&m.config, &m.weights)?;
    let t = std::time::Instant::now();
    let logits = engine.forward(&batch)?;
    let secs = t.elapsed().as_secs_f64();
    let mut out = randla_model::StateDict::new();
    out.insert(
        "logits",
        randla_model::Param::new(vec![batch.batch_size, batch.num_points(), m.config.num_classes], logits),
    );
    out.save_safetensors(&args.output)?;
    eprintln!(
        "forward: {} × {} points → {} in {:.3} s (fused CPU engine)",
        batch.batch_size,
        batch.num_points(),
        args.output.display(),
        secs
    );
    Ok(())
}
