//! `randla bench model`: forward time and peak memory over sizes × modes, outputs cross-checked.

use anyhow::bail;
use clap::{Args, ValueEnum};
use randla_engine::FusedEngine;
use randla_geom::MemoryBudget;
use randla_model::{Batch, RandLaNetConfig, StateDict};
use serde::Serialize;

use super::bench_common::{
    BenchArgs, Setup, SizeBatch, check_agrees, measured, over_budget, print_report, progress_bar,
    timed,
};

/// A way of running the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The burn network, op by op, every block over the whole cloud (the reference for max |Δ|).
    Standard,
    /// The burn network with the local feature aggregation over chunks of points.
    MemoryEfficient,
    /// The fused CPU engine (randla-engine).
    Fused,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Standard => "standard",
            Mode::MemoryEfficient => "memory-efficient",
            Mode::Fused => "fused",
        }
    }

    /// Rough peak bytes of a forward in this mode (for the budget check).
    fn estimate(
        self,
        cfg: &RandLaNetConfig,
        engine: &FusedEngine,
        batch: &Batch,
        lfa_budget: u64,
    ) -> u64 {
        let b = batch.batch_size;
        let per_point: usize =
            batch.sizes[0] * (2 * cfg.dim_output[0] * 4 + 64 + 32 + cfg.num_classes) * 4;
        let neigh = |l: usize| b * batch.sizes[l] * batch.k * (4 * cfg.dim_output[l] + 10) * 4;
        match self {
            Mode::Standard => {
                (b * per_point + (0..cfg.num_layers).map(neigh).max().unwrap_or(0) * 2) as u64
            }
            Mode::MemoryEfficient => (b * per_point) as u64 + lfa_budget,
            Mode::Fused => {
                (engine.estimate_peak_bytes(&batch.sizes)
                    + b * batch.sizes[0] * cfg.num_classes * 4) as u64
            }
        }
    }
}

/// Arguments of `randla bench model`.
#[derive(Debug, Args)]
pub struct ModelArgs {
    #[command(flatten)]
    pub common: BenchArgs,
    /// Modes to run, comma-separated; the first that runs is the reference for max |Δ| (put
    /// `standard` first).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "standard,memory-efficient,fused"
    )]
    pub modes: Vec<Mode>,
    /// Print the per-stage time profile of each fused run.
    #[arg(long)]
    pub profile: bool,
}

fn tensor_values(t: randla_burn::burn::tensor::Tensor<3>) -> anyhow::Result<Vec<f32>> {
    t.try_into_vec_as::<f32>()
        .map_err(|e| anyhow::anyhow!("reading the logits back: {e:?}"))
}

/// Runs `randla bench model`.
pub fn run(args: ModelArgs) -> anyhow::Result<()> {
    let setup = Setup::new(&args.common)?;
    let Setup {
        pool,
        cfg,
        budget,
        sizes,
        ..
    } = &setup;
    let weights = StateDict::random(cfg, 0);
    let engine = FusedEngine::new(cfg, &weights)?;
    let device = randla_burn::cpu_device();
    let net = if args.modes.iter().any(|m| *m != Mode::Fused) {
        Some(randla_burn::RandLaNet::from_state_dict(
            cfg, &weights, &device,
        )?)
    } else {
        None
    };
    // The memory-efficient mode's per-chunk intermediates: its default chunk budget (small
    // chunks stay in cache), never more than an eighth of the memory budget.
    let lfa_budget =
        MemoryBudget::bytes(randla_burn::DEFAULT_LFA_BUDGET.bytes.min(budget.bytes / 8));
    let mut rows = Vec::new();
    let bar = progress_bar(sizes.len() * args.modes.len());
    pool.install(|| -> anyhow::Result<()> {
        for &(b, n) in sizes {
            let SizeBatch { crops, batch, .. } = setup.batch(b, n)?;
            let mut standard: Option<Vec<f32>> = None;
            for &mode in &args.modes {
                bar.set_message(format!("{b}x{n} {}", mode.name()));
                let need = mode.estimate(cfg, &engine, &batch, lfa_budget.bytes);
                if need > budget.bytes {
                    rows.push(over_budget(b, n, mode.name(), need, *budget));
                    bar.inc(1);
                    continue;
                }
                let tensors = match mode {
                    Mode::Fused => None,
                    _ => Some(randla_burn::BatchTensors::from_batch(&batch, cfg, &device)?),
                };
                let run = || -> anyhow::Result<Vec<f32>> {
                    Ok(match (mode, &net, &tensors) {
                        (Mode::Fused, _, _) => engine.forward(&batch)?,
                        (Mode::Standard, Some(net), Some(t)) => tensor_values(net.forward(t)?)?,
                        (Mode::MemoryEfficient, Some(net), Some(t)) => {
                            tensor_values(net.forward_with(
                                t,
                                &randla_burn::ForwardOptions::memory_efficient(lfa_budget),
                            )?)?
                        }
                        _ => bail!("mode {} has no network", mode.name()),
                    })
                };
                let out = run()?; // warm-up
                let (median_s, report) = timed(
                    args.common.repeat,
                    format!("{b}x{n} {}", mode.name()),
                    || {
                        std::hint::black_box(run()?);
                        Ok(())
                    },
                )?;
                let max_abs_diff = match &standard {
                    Some(s) => Some(check_agrees(
                        &format!("{b}x{n} {}: logits", mode.name()),
                        &out,
                        s,
                        1e-4,
                        1e-5,
                    )?),
                    None => {
                        standard = Some(out);
                        None
                    }
                };
                if args.profile && b == 1 {
                    let (_, stages) = engine.forward_crop_profiled(&crops[0].0, &crops[0].1)?;
                    let peak = stages
                        .iter()
                        .filter_map(|s| s.heap_peak_bytes.map(|p| (p, s.name.clone())))
                        .max();
                    eprintln!("  per-stage profile of one fused forward ({b}x{n}):");
                    for s in &stages {
                        eprintln!(
                            "  {:<16} {:>9} pts {:>9.2} ms  out {:>8.1} MiB  heap peak {:>8.1} MiB",
                            s.name,
                            s.points,
                            s.seconds * 1e3,
                            s.output_bytes as f64 / 1048576.0,
                            s.heap_peak_bytes.unwrap_or(0) as f64 / 1048576.0
                        );
                    }
                    if let Some((p, name)) = peak {
                        eprintln!(
                            "  the peak is in {name}: {:.1} MiB of heap",
                            p as f64 / 1048576.0
                        );
                    }
                }
                rows.push(measured(b, n, mode.name(), median_s, &report, max_abs_diff));
                bar.inc(1);
            }
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    let title = format!(
        "model: {} layers {:?}, k = {}, {} input channels, {} threads",
        cfg.num_layers,
        cfg.dim_output,
        cfg.num_neighbors,
        cfg.in_channels,
        pool.current_num_threads()
    );
    print_report(&rows, args.common.json, &title)
}
