//! What `randla bench model` and `randla bench train-step` share: the flags, the sizes, the
//! network configuration, the batches cut from the shipped tiles, the timing loop, the
//! cross-check and the report (table or JSON).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use randla_geom::{MemoryBudget, Pyramid};
use randla_memory::{MemoryMonitor, MemoryReport};
use randla_model::{Batch, Preset, RandLaNetConfig};
use serde::Serialize;

use super::scene::{self, Scene};

/// Flags of every network benchmark.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// `kitti` (4 layers `[16, 64, 128, 256]`), `s3dis` (5 layers `[16, …, 512]`) or a config file.
    #[arg(long, default_value = "kitti")]
    pub config: String,
    /// Input channels (xyz + intensity, return number, number of returns; zero-padded beyond 6).
    #[arg(long, default_value_t = 6)]
    pub in_channels: usize,
    /// Sizes as BATCHxPOINTS, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1x4096,1x16384,1x45056")]
    pub sizes: Vec<String>,
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
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One row of the report (the JSON keys of `--json`).
#[derive(Debug, Serialize)]
pub struct Row {
    pub batch: usize,
    pub points: usize,
    pub mode: &'static str,
    pub median_s: Option<f64>,
    pub peak_heap_bytes: Option<u64>,
    pub peak_rss_bytes: Option<u64>,
    pub max_abs_diff: Option<f32>,
}

/// A benchmark's checked inputs: thread pool, network configuration, budget, sizes, scene.
#[derive(Debug)]
pub struct Setup {
    pub pool: rayon::ThreadPool,
    pub cfg: RandLaNetConfig,
    pub budget: MemoryBudget,
    pub sizes: Vec<(usize, usize)>,
    pub scene: Scene,
}

impl Setup {
    /// Checks the flags and reads the scene.
    pub fn new(args: &BenchArgs) -> anyhow::Result<Self> {
        let sizes = args
            .sizes
            .iter()
            .map(|s| parse_size(s))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if args.repeat == 0 {
            bail!("--repeat must be at least 1");
        }
        let pool = super::bench::thread_pool(args.threads)?;
        let cfg = config(&args.config, args.in_channels)?;
        let budget = match &args.memory_budget {
            Some(s) => s.parse::<MemoryBudget>()?,
            None => MemoryBudget::default(),
        };
        let data = args.data.clone().unwrap_or_else(scene::default_data_dir);
        let scene = scene::load(&data)?;
        Ok(Setup {
            pool,
            cfg,
            budget,
            sizes,
            scene,
        })
    }

    /// `b` crops of `n` points (seeds 17, 18, …), their pyramids, the batch and the crops'
    /// classification codes in batch order.
    pub fn batch(&self, b: usize, n: usize) -> anyhow::Result<SizeBatch> {
        let t = Instant::now();
        let mut crops = Vec::with_capacity(b);
        let mut codes = Vec::with_capacity(b * n);
        for i in 0..b {
            let c = scene::crop(&self.scene, n, self.cfg.in_channels, 17 + i as u64);
            codes.extend_from_slice(&c.codes);
            crops.push((
                c.features,
                Pyramid::build(&c.points, &self.cfg.pyramid_config())?,
            ));
        }
        let refs: Vec<(&[f32], &Pyramid)> = crops.iter().map(|(f, p)| (f.as_slice(), p)).collect();
        let batch = Batch::from_crops(&refs, self.cfg.in_channels)?;
        eprintln!(
            "{b}x{n}: crops and pyramids built in {:.3} s",
            t.elapsed().as_secs_f64()
        );
        Ok(SizeBatch {
            crops,
            codes,
            batch,
        })
    }
}

/// The input of one size.
#[derive(Debug)]
pub struct SizeBatch {
    /// Features and pyramid per crop.
    pub crops: Vec<(Vec<f32>, Pyramid)>,
    /// Classification code per point, crop after crop.
    pub codes: Vec<u32>,
    /// The batch.
    pub batch: Batch,
}

fn parse_size(s: &str) -> anyhow::Result<(usize, usize)> {
    let (b, n) = s
        .split_once(['x', 'X'])
        .with_context(|| format!("size {s:?}: expected BATCHxPOINTS, e.g. 1x45056"))?;
    let b: usize = b
        .trim()
        .parse()
        .with_context(|| format!("size {s:?}: bad batch size"))?;
    let n: usize = n
        .trim()
        .parse()
        .with_context(|| format!("size {s:?}: bad point count"))?;
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

/// The progress bar over `len` size × mode runs.
pub fn progress_bar(len: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// The row of a size × mode that needs `need` bytes, over `budget`: said on stderr, all nulls.
pub fn over_budget(b: usize, n: usize, mode: &'static str, need: u64, budget: MemoryBudget) -> Row {
    eprintln!(
        "{b}x{n} {mode}: needs about {need} bytes, over the memory budget of {budget}; not run"
    );
    Row {
        batch: b,
        points: n,
        mode,
        median_s: None,
        peak_heap_bytes: None,
        peak_rss_bytes: None,
        max_abs_diff: None,
    }
}

/// Runs `run` `repeat` times under a memory monitor named `name` (RSS peak restarted): the
/// median seconds and the monitor's figures. The caller runs its warm-up before.
pub fn timed(
    repeat: usize,
    name: String,
    mut run: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<(f64, MemoryReport)> {
    let mut times = Vec::with_capacity(repeat);
    let mon = MemoryMonitor::with_rss_peak(name);
    for _ in 0..repeat {
        let t = Instant::now();
        run()?;
        times.push(t.elapsed().as_secs_f64());
    }
    let report = mon.report();
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], report))
}

/// The row of a measured size × mode.
pub fn measured(
    b: usize,
    n: usize,
    mode: &'static str,
    median_s: f64,
    report: &MemoryReport,
    max_abs_diff: Option<f32>,
) -> Row {
    Row {
        batch: b,
        points: n,
        mode,
        median_s: Some(median_s),
        peak_heap_bytes: report.heap_peak_bytes,
        peak_rss_bytes: report.rss_peak_bytes,
        max_abs_diff,
    }
}

/// Max |a − b| over two equally long slices, failing with `what` when it exceeds
/// `rel · max |reference| + abs`.
pub fn check_agrees(
    what: &str,
    values: &[f32],
    reference: &[f32],
    rel: f32,
    abs: f32,
) -> anyhow::Result<f32> {
    if values.len() != reference.len() {
        bail!(
            "{what}: {} values against {} in the reference",
            values.len(),
            reference.len()
        );
    }
    let d = reference
        .iter()
        .zip(values)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    if d.is_nan() || d > rel * scale + abs {
        bail!("{what}: differ from the standard mode by {d} (max |ref| {scale})");
    }
    Ok(d)
}

/// Prints the rows: a JSON array with `--json`, else `title` and a table.
pub fn print_report(rows: &[Row], json: bool, title: &str) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(rows)?);
        return Ok(());
    }
    println!("{title}");
    println!(
        "{:>5} {:>9} {:<18} {:>10} {:>14} {:>14} {:>12}",
        "batch", "points", "mode", "median s", "peak heap MiB", "peak RSS MiB", "max |Δ|"
    );
    let mib = |b: Option<u64>| b.map_or("-".into(), |b| format!("{:.1}", b as f64 / 1048576.0));
    for r in rows {
        println!(
            "{:>5} {:>9} {:<18} {:>10} {:>14} {:>14} {:>12}",
            r.batch,
            r.points,
            r.mode,
            r.median_s
                .map_or("over budget".into(), |s| format!("{s:.4}")),
            mib(r.peak_heap_bytes),
            mib(r.peak_rss_bytes),
            r.max_abs_diff.map_or("-".into(), |d| format!("{d:.2e}"))
        );
    }
    Ok(())
}
