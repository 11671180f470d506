//! `randla train`: train RandLA-Net from a training configuration into a run folder.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use randla_train::{CacheStatus, Event, TrainConfig, TrainOptions};

/// Arguments of `randla train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training configuration (TOML; see `configs/ign_lidar_hd.toml`). Relative paths in it are
    /// relative to its folder.
    #[arg(long)]
    pub config: PathBuf,
    /// Run folder: checkpoints, metrics.jsonl, and the trained model in `RUN_DIR/model`.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in `--out` from its last checkpoint (losing at most the epoch that was in
    /// progress); starts afresh when there is none.
    #[arg(long)]
    pub resume: bool,
    /// Preprocessing cache folder (default: `[data] cache`, else `RUN_DIR/cache`).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Epochs (overrides `[train] epochs`; with --resume, more epochs continue a finished run).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Plain log lines instead of progress bars.
    #[arg(long)]
    pub quiet: bool,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// Runs `randla train`.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let mut config = TrainConfig::load(&args.config)?;
    if let Some(e) = args.epochs {
        config.train.epochs = e;
        config.validate()?;
    }
    let opts = TrainOptions {
        resume: args.resume,
        stop_after_epochs: None,
        cache_dir: args.cache.clone(),
    };
    let t0 = Instant::now();
    let multi = MultiProgress::new();
    if args.quiet {
        multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let total = multi.add(ProgressBar::new(
        (config.train.epochs * config.train.steps_per_epoch) as u64,
    ));
    total.set_style(style(
        "run   [{bar:30}] {pos}/{len} steps  {elapsed} ETA {eta}  {msg}",
    ));
    let epoch_bar = multi.add(ProgressBar::new(config.train.steps_per_epoch as u64));
    epoch_bar.set_style(style("epoch [{bar:30}] {pos}/{len}  {msg}"));
    let names = config.classes.names.clone();
    let engine = config.train.engine;
    let quiet = args.quiet;
    let say = |m: String| {
        if quiet {
            eprintln!("{m}");
        } else {
            let _ = multi.println(m);
        }
    };
    let mut best = String::from("mIoU –");
    let mut on_event = |e: &Event| match e {
        Event::Cache {
            source,
            status,
            subsampled,
            points,
        } => say(format!(
            "{} {} ({points} points → {subsampled} after grid subsampling)",
            match status {
                CacheStatus::Hit => "cache hit:    ".to_string(),
                CacheStatus::Miss => "preprocessed: ".to_string(),
                CacheStatus::Rebuilt(why) => format!("cache rebuilt ({why}):"),
            },
            source.display()
        )),
        Event::Ready {
            class_counts,
            ignored,
            class_weights,
            parameters,
            val_clouds,
        } => {
            let per: Vec<String> = names
                .iter()
                .zip(class_counts.iter().zip(class_weights.iter()))
                .map(|(n, (c, w))| format!("{n} {c} (w {w:.2})"))
                .collect();
            say(format!("classes: {}", per.join(", ")));
            if *ignored > 0 {
                let all = class_counts.iter().sum::<u64>() + ignored;
                say(format!(
                    "ignored: {ignored} points ({:.1}%) whose codes are in classes.ignore or in no class's codes (`randla info FILE` lists a file's codes; `strict = true` refuses codes in no class)",
                    100.0 * *ignored as f64 / all as f64
                ));
            }
            say(format!(
                "network: {parameters} trainable parameters, {} engine; {val_clouds} validation cloud(s)",
                match engine {
                    randla_train::Engine::Fused => "fused",
                    randla_train::Engine::Burn => "burn",
                }
            ));
        }
        Event::Resumed { epoch, global_step } => {
            say(format!("resumed after epoch {epoch} (step {global_step})"));
            total.set_position(*global_step);
        }
        Event::EpochStart {
            epoch, epochs, lr, ..
        } => {
            epoch_bar.reset();
            epoch_bar.set_message(format!("epoch {}/{epochs} lr {lr:.2e}", epoch + 1));
        }
        Event::Step {
            loss,
            mean_loss,
            epoch,
            ..
        } => {
            epoch_bar.inc(1);
            total.inc(1);
            epoch_bar.set_message(format!(
                "epoch {} loss {loss:.4} (mean {mean_loss:.4})",
                epoch + 1
            ));
            total.set_message(best.clone());
        }
        Event::Validating { epoch } => epoch_bar.set_message(format!(
            "epoch {} validating at full resolution…",
            epoch + 1
        )),
        Event::EpochEnd { record } => {
            let mut line = format!(
                "epoch {:>3}  loss {:.4}  lr {:.2e}  {:.0}s",
                record.epoch + 1,
                record.loss,
                record.lr,
                record.secs
            );
            if let Some(v) = &record.val {
                let per: Vec<String> = v
                    .iou
                    .iter()
                    .map(|(n, x)| {
                        format!("{n} {}", x.map(|x| format!("{x:.3}")).unwrap_or("–".into()))
                    })
                    .collect();
                line += &format!(
                    "  mIoU {:.4}  OA {:.4}  [{}]{}",
                    v.miou,
                    v.oa,
                    per.join(", "),
                    if record.best { "  *best" } else { "" }
                );
                if record.best {
                    best = format!("best mIoU {:.4} (epoch {})", v.miou, record.epoch + 1);
                }
            }
            say(line);
        }
    };
    let summary = randla_train::train(&config, &args.out, &opts, &mut on_event)
        .with_context(|| format!("training into {}", args.out.display()))?;
    epoch_bar.finish_and_clear();
    total.finish_and_clear();
    eprintln!(
        "done: {} epochs, {} steps, {:.0} s of training ({:.0} s in this process); model in {}{}",
        summary.epochs,
        summary.global_step,
        summary.elapsed_s,
        t0.elapsed().as_secs_f64(),
        summary.model_dir.display(),
        summary
            .best
            .map(|(m, e)| format!("; best validation mIoU {m:.4} at epoch {}", e + 1))
            .unwrap_or_default()
    );
    Ok(())
}
