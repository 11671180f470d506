//! The fused training step computes what burn's autodiff computes: same loss, same gradient for
//! every trainable tensor, same batch-norm running statistics after the forward pass, on a batch
//! of two crops with ignored labels and unequal class weights (dropout off on both sides: their
//! masks come from different generators). Then Adam: the fused trainer's first step moves every
//! weight as randla-train's Adam does with burn's gradients. And the gradients are the same bits
//! on every run (so training with a seed is reproducible).

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use randla_burn::burn::nn::DropoutConfig;
use randla_burn::{BatchTensors, RandLaNet};
use randla_geom::Pyramid;
use randla_model::{Batch, RandLaNetConfig, StateDict};
use randla_train::{Adam, FusedTrainer, IGNORED, named_gradients, weighted_cross_entropy};

fn config() -> RandLaNetConfig {
    RandLaNetConfig {
        num_layers: 3,
        dim_output: vec![8, 16, 32],
        sub_sampling_ratio: vec![4, 4, 2],
        num_neighbors: 8,
        num_classes: 4,
        in_channels: 6,
        num_points: 512,
        ..RandLaNetConfig::default()
    }
}

/// Two crops of a LiDAR-like scene (ground, a wall, scattered vegetation), shuffled.
fn batch(cfg: &RandLaNetConfig) -> (Batch, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let n = cfg.num_points;
    let mut feats = Vec::new();
    let mut pyrs = Vec::new();
    let mut labels = Vec::new();
    for _ in 0..2 {
        let pts: Vec<[f32; 3]> = (0..n)
            .map(|i| match i % 4 {
                0 => [rng.random::<f32>() * 3.0, 0.0, rng.random::<f32>() * 2.0],
                1 => [
                    rng.random::<f32>() * 3.0,
                    rng.random::<f32>() * 3.0,
                    0.5 + rng.random::<f32>() * 1.5,
                ],
                _ => [
                    rng.random::<f32>() * 3.0,
                    rng.random::<f32>() * 3.0,
                    0.05 * rng.random::<f32>(),
                ],
            })
            .collect();
        for (i, p) in pts.iter().enumerate() {
            feats.extend_from_slice(&[p[0], p[1], p[2], p[2] * 0.5, 0.3, (i % 5) as f32 * 0.2]);
            labels.push(if i % 11 == 0 { IGNORED } else { (i % 4) as u32 });
        }
        pyrs.push(Pyramid::build(&pts, &cfg.pyramid_config()).unwrap());
    }
    let crops: Vec<(&[f32], &Pyramid)> = (0..2)
        .map(|b| (&feats[b * n * 6..(b + 1) * n * 6], &pyrs[b]))
        .collect();
    (Batch::from_crops(&crops, 6).unwrap(), labels)
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

#[test]
fn fused_gradients_equal_burn_autodiff() {
    let cfg = config();
    let (batch, labels) = batch(&cfg);
    let weights = StateDict::random(&cfg, 3);
    let class_weights = [1.0f32, 0.5, 2.0, 1.5];

    // burn, training mode, no dropout.
    let device = randla_burn::cpu_device().autodiff();
    let mut net = RandLaNet::from_state_dict(&cfg, &weights, &device)
        .unwrap()
        .set_training(true);
    net.head.dropout = DropoutConfig::new(0.0).init();
    let input = BatchTensors::from_batch(&batch, &cfg, &device).unwrap();
    let loss =
        weighted_cross_entropy(net.forward(&input).unwrap(), &labels, &class_weights).unwrap();
    let burn_loss = loss.clone().try_into_vec_as::<f32>().unwrap()[0] as f64;
    let grads = loss.backward();
    let burn_grads = named_gradients(net, &grads).unwrap();

    // Fused.
    let mut fused = FusedTrainer::new(&cfg, &weights, 0).unwrap();
    fused.dropout = 0.0;
    let fused_loss = fused
        .loss_and_gradients(&batch, &labels, &class_weights)
        .unwrap();
    assert!(
        (fused_loss - burn_loss).abs() < 1e-5 * burn_loss.abs(),
        "loss {fused_loss} vs {burn_loss}"
    );
    let fused_grads = fused.gradients();

    let global = fused_grads
        .iter()
        .map(|(_, p)| max_abs(&p.data))
        .fold(0.0f32, f32::max);
    assert!(global > 0.0);
    let mut checked = 0;
    for (name, g) in fused_grads.iter() {
        let want = burn_grads.get(name).unwrap();
        assert_eq!(g.shape, want.shape, "{name}");
        let scale = max_abs(&want.data);
        let diff = g
            .data
            .iter()
            .zip(&want.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            diff <= 2e-3 * scale + 1e-5 * global,
            "{name}: max |Δ| {diff:e}, max |burn| {scale:e} (global {global:e})"
        );
        checked += 1;
    }
    let trainable = burn_grads
        .iter()
        .filter(|(n, _)| !n.contains("running_") && !n.ends_with("num_batches_tracked"))
        .count();
    assert_eq!(checked, trainable, "every trainable tensor");

    // Running statistics after one training forward.
    let fused_sd = fused.state_dict();
    for (name, p) in fused_sd.iter() {
        if name.ends_with("running_mean") || name.ends_with("running_var") {
            let want = burn_grads.get(name).unwrap();
            let diff = p
                .data
                .iter()
                .zip(&want.data)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(diff < 1e-5, "{name}: max |Δ| {diff:e}");
        }
    }
}

#[test]
fn a_fused_step_moves_the_weights_like_adam_and_lowers_the_loss() {
    let cfg = config();
    let (batch, labels) = batch(&cfg);
    let weights = StateDict::random(&cfg, 4);
    let class_weights = [1.0f32; 4];
    let mut fused = FusedTrainer::new(&cfg, &weights, 0).unwrap();
    fused.dropout = 0.0;
    let mut probe = fused.clone();
    probe
        .loss_and_gradients(&batch, &labels, &class_weights)
        .unwrap();
    let grads = probe.gradients();
    let lr = 1e-3;
    let mut adam = Adam::default();
    let mut losses = vec![
        fused
            .step(&mut adam, &batch, &labels, &class_weights, lr)
            .unwrap(),
    ];
    // First Adam step: w − lr·m̂/(√v̂ + ε) = w − lr·g/(|g| + ε).
    let after = fused.state_dict();
    for (name, g) in grads.iter() {
        let (w0, w1) = (
            &weights.get(name).unwrap().data,
            &after.get(name).unwrap().data,
        );
        for i in 0..g.data.len() {
            let want = w0[i] - lr as f32 * g.data[i] / (g.data[i].abs() + 1e-8);
            assert!(
                (w1[i] - want).abs() < 1e-6,
                "{name}[{i}]: {} vs {want}",
                w1[i]
            );
        }
    }
    for _ in 0..20 {
        losses.push(
            fused
                .step(&mut adam, &batch, &labels, &class_weights, 0.01)
                .unwrap(),
        );
    }
    assert!(
        losses[losses.len() - 1] < 0.7 * losses[0],
        "the loss did not fall: {losses:?}"
    );
    assert_eq!(adam.t, 21);
}

#[test]
fn the_fused_gradients_are_the_same_on_every_run() {
    // Enough rows that every parallel sum has many blocks to split among the threads: a
    // reduction that associated its partial sums as rayon happened to split the work gave other
    // bits from run to run (and so other weights after training with the same seed).
    let cfg = RandLaNetConfig {
        num_points: 8192,
        ..config()
    };
    let (batch, labels) = batch(&cfg);
    let weights = StateDict::random(&cfg, 5);
    let class_weights = [1.0f32, 0.5, 2.0, 1.0];
    let mut trainer = FusedTrainer::new(&cfg, &weights, 0).unwrap();
    trainer.dropout = 0.0;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    let run = || {
        let mut t = trainer.clone();
        let loss = pool.install(|| {
            t.loss_and_gradients(&batch, &labels, &class_weights)
                .unwrap()
        });
        (loss.to_bits(), t.gradients())
    };
    let (loss, first) = run();
    for _ in 0..6 {
        let (l, grads) = run();
        assert_eq!(l, loss, "the loss changed between runs");
        for (name, g) in first.iter() {
            let other = &grads.get(name).unwrap().data;
            assert!(
                g.data
                    .iter()
                    .zip(other)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{name}: the gradient changed between runs"
            );
        }
    }
}
