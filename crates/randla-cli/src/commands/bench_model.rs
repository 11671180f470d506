//! `randla bench model`: forward time and peak memory over sizes × modes, outputs cross-checked.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use randla_engine::FusedEngine;
use randla_geom::{MemoryBudget, Pyramid};
use randla_memory::MemoryMonitor;
use randla_model::{Batch, Preset, RandLaNetConfig, StateDict};
use serde::Serialize;

use super::scene;

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
    fn estimate(self, cfg: &RandLaNetConfig, engine: &FusedEngine, batch: &Batch, lfa_budget: u64) -> u64 {
        let b = batch.batch_size;
        let per_point: usize = batch.sizes[0] * (2 * cfg.dim_output[0] * 4 + 64 + 32 + cfg.num_classes) * 4;
        let neigh = |l: usize| b * batch.sizes[l] * batch.k * (4 * cfg.dim_output[l] + 10) * 4;
        match self {
            Mode::Standard => (b * per_point + (0..cfg.num_layers).map(neigh).max().unwrap_or(0) * 2) as u64,
            Mode::MemoryEfficient => (b * per_point) as u64 + lfa_budget,
            Mode::Fused => (engine.estimate_peak_bytes(&batch.sizes) + b * batch.sizes[0] * cfg.num_classes * 4) as u64,
        }
    }
}

/// Arguments of `randla bench model`.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// `kitti` (4 layers [16,64,128,256]), `s3dis` (5 layers [16,…,512]) or a config file.
    #[arg(long, default_value = "kitti")]
    pub config: String,
    /// Input channels (xyz + intensity, return number, number of returns; zero-padded beyond 6).
    #[arg(long, default_value_t = 6)]
    pub in_channels: usize,
    /// Sizes as BATCHxPOINTS, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1x4096,1x16384,1x45056")]
    pub sizes: Vec<String>,
    /// Modes to run, comma-separated; the first that runs is the reference for max |Δ| (put
    /// `standard` first).
    #[arg(long, value_delimiter = ',', default_value = "standard,memory-efficient,fused")]
    pub modes: Vec<Mode>,
    /// Timed runs per size and mode (after one warm-up run); the median is reported.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Memory budget (e.g. 8GiB); a size × mode that would not fit is reported, not run.
    /// Default: half the RAM available now.
    #[arg(long)]
    pub memory_budget: Option<String>,
    /// Folder of .las/.laz tiles to cut the clouds from.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Print the per-stage time profile of each fused run.
    #[arg(long)]
    pub profile: bool,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One row of the report (the JSON keys of `--json`).
#[derive(Debug, Serialize)]
struct Row {
    batch: usize,
    points: usize,
    mode: &'static str,
    median_s: Option<f64>,
    peak_heap_bytes: Option<u64>,
    peak_rss_bytes: Option<u64>,
    max_abs_diff: Option<f32>,
}

fn tensor_values(t: randla_burn::burn::tensor::Tensor<3>) -> anyhow::Result<Vec<f32>> {
    t.try_into_vec_as::<f32>().map_err(|e| anyhow::anyhow!("reading the logits back: {e:?}"))
}

fn parse_size(s: &str) -> anyhow::Result<(usize, usize)> {
    let (b, n) = s
        .split_once(['x', 'X'])
        .with_context(|| format!("size {s:?}: expected BATCHxPOINTS, e.g. 1x45056"))?;
    let b: usize = b.trim().parse().with_context(|| format!("size {s:?}: bad batch size"))?;
    let n: usize = n.trim().parse().with_context(|| format!("size {s:?}: bad point count"))?;
    if b == 0 || n == 0 {
        bail!("size {s:?}: batch and points must be at least 1");
    }
    Ok((b, n))
}

fn config(name: &str, in_channels: usize) -> anyhow::Result<RandLaNetConfig> {
    let mut cfg = match name {
        "kitti" | "semantickitti" => RandLaNetConfig::preset(Preset::SemanticKitti),
        "s3dis" => RandLaNetConfig::preset(Preset::S3dis),
        file => RandLaNetConfig::from_file(file)?,
    };
    cfg.in_channels = in_channels;
    cfg.num_classes = 7;
    cfg.validate()?;
    Ok(cfg)
}

/// Runs `randla bench model`.
pub fn run(args: ModelArgs) -> anyhow::Result<()> {
    let pool = super::bench::thread_pool(args.threads)?;
    let cfg = config(&args.config, args.in_channels)?;
    let budget = match &args.memory_budget {
        Some(s) => s.parse::<MemoryBudget>()?,
        None => MemoryBudget::default(),
    };
    let sizes = args.sizes.iter().map(|s| parse_size(s)).collect::<anyhow::Result<Vec<_>>>()?;
    if args.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    let data = args.data.clone().unwrap_or_else(scene::default_data_dir);
    let scene = scene::load(&data)?;
    let weights = StateDict::random(&cfg, 0);
    let engine = FusedEngine::new(&cfg, &weights)?;
    let device = randla_burn::cpu_device();
    let net = if args.modes.iter().any(|m| *m != Mode::Fused) { Some(randla_burn::RandLaNet::from_state_dict(&cfg, &weights, &device)?) } else { None };
    // The memory-efficient mode's per-chunk intermediates: its default chunk budget (small
    // chunks stay in cache), never more than an eighth of the memory budget.
    let lfa_budget = MemoryBudget::bytes(randla_burn::DEFAULT_LFA_BUDGET.bytes.min(budget.bytes / 8));
    let mut rows = Vec::new();
    let bar = indicatif::ProgressBar::new((sizes.len() * args.modes.len()) as u64);
    bar.set_style(indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}").unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()));
    pool.install(|| -> anyhow::Result<()> {
        for &(b, n) in &sizes {
            let t = Instant::now();
            let crops: Vec<(Vec<f32>, Pyramid)> = (0..b)
                .map(|i| {
                    let (pts, feats) = scene::crop(&scene, n, cfg.in_channels, 17 + i as u64);
                    Ok((feats, Pyramid::build(&pts, &cfg.pyramid_config())?))
                })
                .collect::<anyhow::Result<_>>()?;
            let refs: Vec<(&[f32], &Pyramid)> = crops.iter().map(|(f, p)| (f.as_slice(), p)).collect();
            let batch = Batch::from_crops(&refs, cfg.in_channels)?;
            eprintln!("{b}x{n}: crops and pyramids built in {:.3} s", t.elapsed().as_secs_f64());
            let mut standard: Option<Vec<f32>> = None;
            for &mode in &args.modes {
                bar.set_message(format!("{b}x{n} {}", mode.name()));
                let need = mode.estimate(&cfg, &engine, &batch, lfa_budget.bytes);
                if need > budget.bytes {
                    eprintln!("{b}x{n} {}: needs about {need} bytes, over the memory budget of {budget}; not run", mode.name());
                    rows.push(Row { batch: b, points: n, mode: mode.name(), median_s: None, peak_heap_bytes: None, peak_rss_bytes: None, max_abs_diff: None });
                    bar.inc(1);
                    continue;
                }
                let tensors = match mode {
                    Mode::Fused => None,
                    _ => Some(randla_burn::BatchTensors::from_batch(&batch, &cfg, &device)?),
                };
                let run = || -> anyhow::Result<Vec<f32>> {
                    Ok(match (mode, &net, &tensors) {
                        (Mode::Fused, _, _) => engine.forward(&batch)?,
                        (Mode::Standard, Some(net), Some(t)) => tensor_values(net.forward(t)?)?,
                        (Mode::MemoryEfficient, Some(net), Some(t)) => {
                            tensor_values(net.forward_with(t, &randla_burn::ForwardOptions::memory_efficient(lfa_budget))?)?
                        }
                        _ => bail!("mode {} has no network", mode.name()),
                    })
                };
                let out = run()?; // warm-up
                let mut times = Vec::with_capacity(args.repeat);
                let mon = MemoryMonitor::with_rss_peak(format!("{b}x{n} {}", mode.name()));
                for _ in 0..args.repeat {
                    let t = Instant::now();
                    std::hint::black_box(run()?);
                    times.push(t.elapsed().as_secs_f64());
                }
                let report = mon.report();
                times.sort_by(f64::total_cmp);
                let max_abs_diff = standard.as_ref().map(|s| s.iter().zip(&out).fold(0f32, |m, (a, b)| m.max((a - b).abs())));
                if let (Some(d), Some(s)) = (max_abs_diff, &standard) {
                    let scale = s.iter().fold(0f32, |m, v| m.max(v.abs()));
                    if d > 1e-4 * scale + 1e-5 {
                        bail!("{b}x{n} {}: logits differ from the standard mode by {d} (max |ref| {scale})", mode.name());
                    }
                }
                if standard.is_none() {
                    standard = Some(out);
                }
                if args.profile && b == 1 {
                    let (_, stages) = engine.forward_crop_profiled(&crops[0].0, &crops[0].1)?;
                    let peak = stages.iter().filter_map(|s| s.heap_peak_bytes.map(|p| (p, s.name.clone()))).max();
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
                        eprintln!("  the peak is in {name}: {:.1} MiB of heap", p as f64 / 1048576.0);
                    }
                }
                rows.push(Row {
                    batch: b,
                    points: n,
                    mode: mode.name(),
                    median_s: Some(times[times.len() / 2]),
                    peak_heap_bytes: report.heap_peak_bytes,
                    peak_rss_bytes: report.rss_peak_bytes,
                    max_abs_diff,
                });
                bar.inc(1);
            }
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&rows)?);
    } else {
        println!("model: {} layers {:?}, k = {}, {} input channels, {} threads", cfg.num_layers, cfg.dim_output, cfg.num_neighbors, cfg.in_channels, pool.current_num_threads());
        println!("{:>5} {:>9} {:<18} {:>10} {:>14} {:>14} {:>12}", "batch", "points", "mode", "median s", "peak heap MiB", "peak RSS MiB", "max |Δ|");
        let mib = |b: Option<u64>| b.map_or("-".into(), |b| format!("{:.1}", b as f64 / 1048576.0));
        for r in &rows {
            println!(
                "{:>5} {:>9} {:<18} {:>10} {:>14} {:>14} {:>12}",
                r.batch,
                r.points,
                r.mode,
                r.median_s.map_or("over budget".into(), |s| format!("{s:.4}")),
                mib(r.peak_heap_bytes),
                mib(r.peak_rss_bytes),
                r.max_abs_diff.map_or("-".into(), |d| format!("{d:.2e}"))
            );
        }
    }
    Ok(())
}
