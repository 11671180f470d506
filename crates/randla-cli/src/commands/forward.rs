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
    /// Which implementation runs the network: the fused CPU engine (fast), or the op-by-op burn
    /// network (the training implementation).
    #[arg(long, value_enum, default_value = "fused")]
    pub engine: Engine,
    /// Bound peak memory by running the local feature aggregation over chunks of points (burn's
    /// memory-efficient mode; the fused engine always works tile by tile).
    #[arg(long)]
    pub memory_efficient: bool,
    /// Memory budget of the memory-efficient mode's chunks (e.g. 512MiB).
    #[arg(long)]
    pub memory_budget: Option<String>,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

/// The implementations `randla forward` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// randla-engine: batch norm folded, tiled local feature aggregation.
    Fused,
    /// randla-burn on the CPU (Flex backend), op by op like Open3D-ML.
    Burn,
}

/// Runs `randla forward`.
pub fn run(args: ForwardArgs) -> anyhow::Result<()> {
    if args.output.exists() && !args.force {
        bail!(
            "{}: the output exists; use --force to replace it",
            args.output.display()
        );
    }
    let mut m = model::load(&args.model, args.config.as_ref())?;
    let batch = Batch::load_safetensors(&args.input)?;
    if m.inferred {
        // What the weights cannot say comes from the batch itself.
        m.config.num_neighbors = batch.k;
        m.config.sub_sampling_ratio = batch.sizes.windows(2).map(|w| w[0] / w[1].max(1)).collect();
    }
    batch
        .validate(&m.config)
        .with_context(|| format!("{} does not fit the model", args.input.display()))?;
    let t = std::time::Instant::now();
    let logits = match args.engine {
        Engine::Fused => FusedEngine::new(&m.config, &m.weights)?.forward(&batch)?,
        Engine::Burn => {
            let device = randla_burn::cpu_device();
            let net = randla_burn::RandLaNet::from_state_dict(&m.config, &m.weights, &device)?;
            let input = randla_burn::BatchTensors::from_batch(&batch, &m.config, &device)?;
            let opts = if args.memory_efficient {
                let budget = match &args.memory_budget {
                    Some(s) => s.parse::<randla_geom::MemoryBudget>()?,
                    None => randla_burn::DEFAULT_LFA_BUDGET,
                };
                randla_burn::ForwardOptions::memory_efficient(budget)
            } else {
                randla_burn::ForwardOptions::standard()
            };
            net.forward_with(&input, &opts)?
                .try_into_vec_as::<f32>()
                .map_err(|e| anyhow::anyhow!("reading the logits back: {e:?}"))?
        }
    };
    let secs = t.elapsed().as_secs_f64();
    let mut out = randla_model::StateDict::new();
    out.insert(
        "logits",
        randla_model::Param::new(
            vec![batch.batch_size, batch.num_points(), m.config.num_classes],
            logits,
        ),
    );
    out.save_safetensors(&args.output)?;
    eprintln!(
        "forward: {} × {} points → {} in {:.3} s ({})",
        batch.batch_size,
        batch.num_points(),
        args.output.display(),
        secs,
        match (args.engine, args.memory_efficient) {
            (Engine::Fused, _) => "fused CPU engine",
            (Engine::Burn, false) => "burn, standard mode",
            (Engine::Burn, true) => "burn, memory-efficient mode",
        }
    );
    Ok(())
}
