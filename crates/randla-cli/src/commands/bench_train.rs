//! `randla bench train-step`: time and peak memory of one training step (forward in training
//! mode, cross-entropy, backward, Adam) over sizes × modes, the modes cross-checked.
//!
//! A step is randla-train's own [`randla_train::step_on_batch`] (what `randla train` runs), with
//! learning rate 0.01 (Open3D-ML's RandLANet default) and unweighted cross-entropy over the
//! crop's real IGN classes (codes 1–6 → classes 0–5, 64 → 6, anything else ignored). Every mode
//! starts from the same random weights (seed 0) and a fresh Adam, with the device's RNG seeded
//! identically, so dropout (0.5, active: this is a training forward with batch statistics) draws
//! the same masks in every mode. Each mode runs one warm-up step, then `--repeat` timed steps
//! that simply continue training from there (weights, Adam moments and batch-norm running
//! averages carry on, as in `randla train`); the median is reported.
//!
//! max |Δ| of a mode = max over the warm-up step's loss and every tensor of the network after it
//! (parameters, batch-norm running averages) of |mode − standard|; beyond 1e-4 · max |standard| +
//! 1e-5 the run fails.
//!
//! The `fused` mode is randla-train's [`FusedTrainer`] (hand-written backward on the fused
//! engine's kernels). Its dropout masks come from its own generator, and Adam's first step moves
//! every weight by ±lr whatever the gradient's size, so weights after a step are no cross-check
//! for it; its max |Δ| is instead over the loss and every gradient of one step with dropout off,
//! against burn's autodiff on the same batch and weights (beyond 1e-3 · max |burn| + 1e-6 the run
//! fails), computed before the timed steps.

use anyhow::bail;
use clap::{Args, ValueEnum};
use randla_burn::burn::tensor::Device;
use randla_burn::{BatchTensors, RandLaNet};
use randla_model::{Batch, RandLaNetConfig, StateDict};
use randla_train::{Adam, FusedTrainer, IGNORED, named_gradients, weighted_cross_entropy};

use super::bench_common::{
    BenchArgs, Setup, check_agrees, measured, over_budget, print_report, progress_bar, timed,
};

/// Learning rate of the benchmarked steps.
const LR: f64 = 0.01;
/// Seed of the device RNG (dropout masks) at the start of every mode.
const DEVICE_SEED: u64 = 5;

/// A way of training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TrainMode {
    /// burn's autodiff keeping every intermediate the backward pass needs (the reference).
    Standard,
    /// burn's gradient checkpointing: cheap intermediates are recomputed in the backward pass
    /// instead of kept.
    Checkpointed,
    /// randla-train's fused step: hand-written backward on the fused engine's kernels.
    Fused,
}

impl TrainMode {
    fn name(self) -> &'static str {
        match self {
            TrainMode::Standard => "standard",
            TrainMode::Checkpointed => "checkpointed",
            TrainMode::Fused => "fused",
        }
    }

    fn device(self) -> Device {
        let d = randla_burn::cpu_device().autodiff();
        match self {
            TrainMode::Standard | TrainMode::Fused => d,
            TrainMode::Checkpointed => d.gradient_checkpointing(),
        }
    }

    /// Rough peak bytes of a step (for the budget check): the `[B, N_l, K, C]` intermediates of
    /// every encoder level kept for the backward pass, per-point tensors, weights, gradients and
    /// Adam moments. Fitted above the measured heap peaks (KITTI config, 1x4096: 202 MB standard;
    /// 1x45056: 1.83 GB standard, 1.53 GB checkpointed).
    fn estimate(self, cfg: &RandLaNetConfig, batch: &Batch) -> u64 {
        let b = batch.batch_size;
        let per_point =
            batch.sizes[0] * (2 * cfg.dim_output[0] * 4 + 64 + 32 + cfg.num_classes) * 4;
        let neigh: usize = (0..cfg.num_layers)
            .map(|l| b * batch.sizes[l] * batch.k * (4 * cfg.dim_output[l] + 10) * 4)
            .sum();
        let kept = match self {
            TrainMode::Standard => neigh * 7 / 2,
            TrainMode::Checkpointed => neigh * 3,
            // Measured heap peaks: 133 MB at 1x4096, 868 MB at 1x45056.
            TrainMode::Fused => neigh * 7 / 4,
        };
        (4 * b * per_point + kept + 8 * 4 * cfg.num_trainable_parameters()) as u64
    }
}

/// Arguments of `randla bench train-step`.
#[derive(Debug, Args)]
pub struct TrainStepArgs {
    #[command(flatten)]
    pub common: BenchArgs,
    /// Modes to run, comma-separated; the first that runs is the reference for max |Δ| (put
    /// `standard` first).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "standard,checkpointed,fused"
    )]
    pub modes: Vec<TrainMode>,
}

/// Training class of an IGN LiDAR HD classification code.
fn class_of(code: u32) -> u32 {
    match code {
        1..=6 => code - 1,
        64 => 6,
        _ => IGNORED,
    }
}

/// The loss and every tensor of the network, flattened (the cross-check's values).
fn snapshot(net: &RandLaNet, loss: f64) -> anyhow::Result<Vec<f32>> {
    let sd: StateDict = net.to_state_dict()?;
    let mut v = vec![loss as f32];
    for (_, p) in sd.iter() {
        v.extend_from_slice(&p.data);
    }
    Ok(v)
}

/// The fused step's cross-check: max |Δ| over the loss and every gradient of one step with
/// dropout off, against burn's autodiff (standard mode) on the same batch and weights.
fn fused_check(
    cfg: &RandLaNetConfig,
    weights: &StateDict,
    batch: &Batch,
    labels: &[u32],
    class_weights: &[f32],
) -> anyhow::Result<f32> {
    let device = TrainMode::Standard.device();
    let mut net = RandLaNet::from_state_dict(cfg, weights, &device)?.set_training(true);
    net.head.dropout = randla_burn::burn::nn::DropoutConfig::new(0.0).init();
    let input = BatchTensors::from_batch(batch, cfg, &device)?;
    let loss = weighted_cross_entropy(net.forward(&input)?, labels, class_weights)?;
    let burn_loss = loss
        .clone()
        .try_into_vec_as::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?[0];
    let grads = loss.backward();
    let burn = named_gradients(net, &grads)?;
    let mut fused = FusedTrainer::new(cfg, weights, DEVICE_SEED)?;
    fused.dropout = 0.0;
    let fused_loss = fused.loss_and_gradients(batch, labels, class_weights)? as f32;
    let (mut got, mut want) = (vec![fused_loss], vec![burn_loss]);
    for (name, g) in fused.gradients().iter() {
        got.extend_from_slice(&g.data);
        want.extend_from_slice(&burn.get(name)?.data);
    }
    check_agrees(
        &format!(
            "{}x{} fused: loss and gradients of one step against burn's autodiff",
            batch.batch_size, batch.sizes[0]
        ),
        &got,
        &want,
        1e-3,
        1e-6,
    )
}

/// Runs `randla bench train-step`.
pub fn run(args: TrainStepArgs) -> anyhow::Result<()> {
    let setup = Setup::new(&args.common)?;
    let Setup {
        pool,
        cfg,
        budget,
        sizes,
        ..
    } = &setup;
    let weights = StateDict::random(cfg, 0);
    let class_weights = vec![1f32; cfg.num_classes];
    let mut rows = Vec::new();
    let bar = progress_bar(sizes.len() * args.modes.len());
    pool.install(|| -> anyhow::Result<()> {
        for &(b, n) in sizes {
            let size = setup.batch(b, n)?;
            let labels: Vec<u32> = size.codes.iter().map(|&c| class_of(c)).collect();
            if labels.iter().all(|&l| l == IGNORED) {
                bail!("{b}x{n}: no point of the crop has a training class (IGN codes 1-6, 64)");
            }
            let mut standard: Option<Vec<f32>> = None;
            for &mode in &args.modes {
                let name = mode.name();
                bar.set_message(format!("{b}x{n} {name}"));
                let need = mode.estimate(cfg, &size.batch);
                if need > budget.bytes {
                    rows.push(over_budget(b, n, name, need, *budget));
                    bar.inc(1);
                    continue;
                }
                let mut adam = Adam::default();
                let (median_s, report, max_abs_diff) = if mode == TrainMode::Fused {
                    let check = fused_check(cfg, &weights, &size.batch, &labels, &class_weights)?;
                    let mut fused = FusedTrainer::new(cfg, &weights, DEVICE_SEED)?;
                    let mut step =
                        || fused.step(&mut adam, &size.batch, &labels, &class_weights, LR);
                    let mut losses = vec![step()?];
                    let (median_s, report) =
                        timed(args.common.repeat, format!("{b}x{n} {name}"), || {
                            losses.push(step()?);
                            Ok(())
                        })?;
                    eprintln!("{b}x{n} {name}: losses {losses:.4?}");
                    (median_s, report, Some(check))
                } else {
                    let device = mode.device();
                    device.seed(DEVICE_SEED);
                    let input = BatchTensors::from_batch(&size.batch, cfg, &device)?;
                    let net = RandLaNet::from_state_dict(cfg, &weights, &device)?;
                    let mut step = |net| {
                        randla_train::step_on_batch(
                            net,
                            &mut adam,
                            &input,
                            &labels,
                            &class_weights,
                            LR,
                        )
                    };
                    // Warm-up: the step that is cross-checked.
                    let (net, loss) = step(net)?;
                    let after = snapshot(&net, loss)?;
                    let mut net = Some(net);
                    let mut losses = vec![loss];
                    let (median_s, report) =
                        timed(args.common.repeat, format!("{b}x{n} {name}"), || {
                            let current = net
                                .take()
                                .expect("the network is put back after every step");
                            let (next, loss) = step(current)?;
                            net = Some(next);
                            losses.push(loss);
                            Ok(())
                        })?;
                    eprintln!("{b}x{n} {name}: losses {losses:.4?}");
                    let max_abs_diff = match &standard {
                        Some(s) => Some(check_agrees(
                            &format!("{b}x{n} {name}: loss and weights after one step"),
                            &after,
                            s,
                            1e-4,
                            1e-5,
                        )?),
                        None => {
                            standard = Some(after);
                            None
                        }
                    };
                    (median_s, report, max_abs_diff)
                };
                rows.push(measured(b, n, name, median_s, &report, max_abs_diff));
                bar.inc(1);
            }
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    let title = format!(
        "train step (forward + cross-entropy + backward + Adam, lr {LR}): {} layers {:?}, k = {}, {} input channels, {} threads",
        cfg.num_layers,
        cfg.dim_output,
        cfg.num_neighbors,
        cfg.in_channels,
        pool.current_num_threads()
    );
    print_report(&rows, args.common.json, &title)
}
