//! `randla bench predict`: the time of the prediction itself, on the span Open3D-ML's
//! `run_inference` is timed on, for a like-for-like comparison.
//!
//! It measures what `scripts/peers/o3d_run_inference.py` measures of Open3D-ML: the files are
//! read and the model is built first (not timed), then each file's cloud goes through one
//! prediction call, timed (grid subsampling, neighbourhoods, network passes, votes, and the
//! projection back to every original point), and the per-file times are summed. Nothing is
//! written. `randla predict` runs the same calls with the same options, so the predictions are
//! those it writes (the class counts are printed to check it); its own report times the whole
//! job, reads and writes included.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;
use clap::Args;
use randla_predict::{PredictOptions, Predictor};
use serde::Serialize;

use super::inputs::expand;
use super::predict::{PassArgs, read_model_inputs, resolve_model};

/// Arguments of `randla bench predict`.
#[derive(Debug, Args)]
pub struct PredictBenchArgs {
    /// Point-cloud files (or folders of them), as `randla predict` takes them.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Model directory (default: as `randla predict`).
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub pass: PassArgs,
    /// Rounds over all the files. The first round is reported as a fresh process's time (as
    /// the peer script's single call per file); later rounds give the median of a warm process
    /// and must repeat the first round's predictions.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What `randla bench predict --json` prints.
#[derive(Debug, Serialize)]
struct PredictBenchReport {
    files: usize,
    points: usize,
    votes: usize,
    threads: usize,
    /// The first round: the sum of the files' prediction times.
    inference_s: f64,
    /// The first round, file by file.
    per_file_s: Vec<f64>,
    /// Every round's sum.
    rounds_s: Vec<f64>,
    /// Median of `rounds_s`.
    median_s: f64,
    /// `points / inference_s`.
    points_per_s: f64,
    /// Peak resident set of the process (the clouds read included).
    peak_rss_mb: f64,
    /// Predicted class codes over all files: code → points (as `randla info --json`'s
    /// `classes`, the codes written as strings).
    classes: BTreeMap<u32, usize>,
}

/// Runs `randla bench predict`.
pub fn run(args: PredictBenchArgs) -> anyhow::Result<()> {
    let opts = args.pass.apply(PredictOptions::default())?;
    if args.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    let pool = super::bench::thread_pool(args.threads)?;
    let files = expand(&args.inputs)?;
    let model = resolve_model(args.model.as_deref())?;
    let predictor = Predictor::new(&model)?;
    let needed = &predictor.input().features;
    let clouds = pool.install(|| {
        files
            .iter()
            .map(|f| read_model_inputs(f, needed, false))
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let mut first: Vec<Vec<u32>> = Vec::new();
    let mut per_file_s = Vec::new();
    let mut rounds_s = Vec::new();
    for round in 0..args.repeat {
        let mut sum = 0.0;
        for (i, (file, cloud)) in files.iter().zip(&clouds).enumerate() {
            let name = file.display().to_string();
            let t = Instant::now();
            let p = pool.install(|| predictor.predict(cloud, &name, &opts, &|_, _| {}))?;
            let dt = t.elapsed().as_secs_f64();
            sum += dt;
            if round == 0 {
                per_file_s.push(dt);
                first.push(p.codes);
            } else if p.codes != first[i] {
                bail!(
                    "{name}: round {} predicted other classes than round 1 with the same seed",
                    round + 1
                );
            }
        }
        rounds_s.push(sum);
    }
    let mut sorted = rounds_s.clone();
    sorted.sort_by(f64::total_cmp);
    let median_s = if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0
    };
    let mut classes: BTreeMap<u32, usize> = BTreeMap::new();
    for &c in first.iter().flatten() {
        *classes.entry(c).or_default() += 1;
    }
    let points = clouds.iter().map(|c| c.len()).sum::<usize>();
    let report = PredictBenchReport {
        files: files.len(),
        points,
        votes: opts.votes,
        threads: pool.current_num_threads(),
        inference_s: rounds_s[0],
        per_file_s,
        median_s,
        points_per_s: points as f64 / rounds_s[0],
        rounds_s,
        peak_rss_mb: randla_memory::memory_info().rss_peak_bytes.unwrap_or(0) as f64 / 1048576.0,
        classes,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "prediction benchmark: {} file(s), {} points, {} vote(s), {} thread(s)",
            report.files, report.points, report.votes, report.threads
        );
        println!(
            "  first round {:>8.3} s  ({:.0} points/s; per file {})",
            report.inference_s,
            report.points_per_s,
            report
                .per_file_s
                .iter()
                .map(|s| format!("{s:.3} s"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if args.repeat > 1 {
            println!(
                "  median of {} rounds {:>8.3} s",
                args.repeat, report.median_s
            );
        }
        println!("  peak RSS {:.0} MiB", report.peak_rss_mb);
        println!(
            "  classes {}",
            report
                .classes
                .iter()
                .map(|(c, n)| format!("{c}:{n}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    Ok(())
}
