//! `randla bench …`: measured runs of the hot paths, for BENCHMARKS.md.

use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use randla_geom::KdTree;
use serde::Serialize;

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Exact KNN of every point of a uniform random cloud (100 m cube, fixed seed).
    Knn(KnnArgs),
    /// Forward time and peak memory of the network over batch sizes × point counts × modes, on
    /// crops of the shipped LiDAR tiles, outputs cross-checked.
    Model(super::bench_model::ModelArgs),
    /// Time and peak memory of one training step (forward in training mode, cross-entropy,
    /// backward, Adam) over batch sizes × point counts × modes, on crops of the shipped LiDAR
    /// tiles, the updated weights cross-checked.
    TrainStep(super::bench_train::TrainStepArgs),
    /// The prediction of whole files, timed on the span Open3D-ML's `run_inference` is timed
    /// on (files read and model built first, nothing written), the per-file times summed.
    Predict(super::bench_predict::PredictBenchArgs),
}

/// Arguments of `randla bench knn`.
#[derive(Debug, Args)]
pub struct KnnArgs {
    /// Number of points.
    #[arg(long, default_value_t = 1_000_000)]
    pub points: usize,
    /// Neighbours per point (the point itself included).
    #[arg(long, default_value_t = 16)]
    pub k: usize,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Random seed of the cloud.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Use the points of this point-cloud file (LAS/LAZ/PLY/…) instead of a random cloud;
    /// `--points` then caps how many are used.
    #[arg(long)]
    pub input: Option<std::path::PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What `randla bench knn --json` prints.
#[derive(Debug, Serialize)]
struct KnnReport {
    points: usize,
    k: usize,
    threads: usize,
    build_s: f64,
    query_s: f64,
    queries_per_s: f64,
}

/// Runs a benchmark.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Knn(args) => knn(args),
        BenchCommand::Model(args) => super::bench_model::run(args),
        BenchCommand::TrainStep(args) => super::bench_train::run(args),
        BenchCommand::Predict(args) => super::bench_predict::run(args),
    }
}

/// A uniform random cloud in a `side`-metre cube.
pub fn uniform_cloud(n: usize, side: f32, seed: u64) -> Vec<[f32; 3]> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            [
                rng.random::<f32>() * side,
                rng.random::<f32>() * side,
                rng.random::<f32>() * side,
            ]
        })
        .collect()
}

pub fn thread_pool(threads: Option<usize>) -> anyhow::Result<rayon::ThreadPool> {
    let mut b = rayon::ThreadPoolBuilder::new();
    if let Some(t) = threads {
        if t == 0 {
            bail!("--threads must be at least 1, got 0");
        }
        b = b.num_threads(t);
    }
    b.build().context("could not start the worker threads")
}

fn knn(args: KnnArgs) -> anyhow::Result<()> {
    if args.points == 0 {
        bail!("--points must be at least 1, got 0");
    }
    let pool = thread_pool(args.threads)?;
    let (points, what) = match &args.input {
        Some(path) => {
            let mut c = randla_io::read(path)?;
            c.positions.truncate(args.points);
            let what = format!("{} points of {}", c.len(), path.display());
            (c.positions, what)
        }
        None => (
            uniform_cloud(args.points, 100.0, args.seed),
            format!("{} uniform random points in a 100 m cube", args.points),
        ),
    };
    let report = pool.install(|| -> anyhow::Result<KnnReport> {
        let t = Instant::now();
        let tree = KdTree::build(&points)?;
        let build_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let nn = tree.knn_self(args.k)?;
        let query_s = t.elapsed().as_secs_f64();
        std::hint::black_box(&nn);
        Ok(KnnReport {
            points: points.len(),
            k: args.k,
            threads: rayon::current_num_threads(),
            build_s,
            query_s,
            queries_per_s: points.len() as f64 / query_s,
        })
    })?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "KNN benchmark: {what}, k = {}, {} thread(s)",
            report.k, report.threads
        );
        println!("  build   {:>9.3} s", report.build_s);
        println!(
            "  query   {:>9.3} s  (every point, distances included)",
            report.query_s
        );
        println!("  rate    {:>9.0} queries/s", report.queries_per_s);
    }
    Ok(())
}
