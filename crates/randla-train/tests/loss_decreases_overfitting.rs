//! Training works end to end on one small batch: the weighted loss falls when overfitting it,
//! and ignored labels contribute nothing.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use randla_burn::RandLaNet;
use randla_burn::burn::tensor::{Tensor, TensorData};
use randla_model::StateDict;
use randla_train::{
    Adam, IGNORED, Sampler, SamplerKind, TrainConfig, sampler, train_step, trainer,
    weighted_cross_entropy,
};

mod common;

#[test]
fn loss_falls_when_overfitting_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = common::tiny_setup(dir.path(), 1, 1, false);
    let config = TrainConfig::load(&cfg_path).unwrap();
    let clouds = trainer::prepare_train(&config, &dir.path().join("cache"), &mut |_| {}).unwrap();
    let net_cfg = config.network();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut s = Sampler::new(
        &clouds,
        SamplerKind::Possibility,
        net_cfg.num_points,
        0.0,
        &mut rng,
    )
    .unwrap();
    let pc = net_cfg.pyramid_config();
    let crops: Vec<_> = (0..2)
        .map(|_| {
            let c = s.next(&clouds, &mut rng).unwrap();
            sampler::crop_tensors(&clouds[c.cloud], &c, None, &pc, &mut rng).unwrap()
        })
        .collect();
    let device = trainer::training_device(&config);
    device.seed(0);
    let mut net =
        RandLaNet::from_state_dict(&net_cfg, &StateDict::random(&net_cfg, 1), &device).unwrap();
    let mut adam = Adam::default();
    let weights = vec![1.0; 3];
    let mut losses = Vec::new();
    for _ in 0..25 {
        let (n, l) = train_step(net, &mut adam, &net_cfg, &crops, &weights, 0.01, &device).unwrap();
        net = n;
        losses.push(l);
    }
    let first = losses[..3].iter().sum::<f64>() / 3.0;
    let last = losses[losses.len() - 3..].iter().sum::<f64>() / 3.0;
    assert!(last < 0.6 * first, "loss did not fall enough: {losses:?}");
    assert_eq!(adam.t, 25);
}

#[test]
fn weighted_cross_entropy_matches_the_formula_and_skips_ignored() {
    let device = randla_burn::cpu_device();
    let logits = vec![1.0f32, 2.0, 0.5, 0.0, -1.0, 3.0, 2.0, 2.0, 2.0];
    let t = Tensor::<3>::from_data(TensorData::new(logits.clone(), [1, 3, 3]), &device);
    let labels = [1, IGNORED, 0];
    let w = [2.0f32, 0.5, 1.0];
    let loss = weighted_cross_entropy(t, &labels, &w)
        .unwrap()
        .try_into_vec_as::<f32>()
        .unwrap()[0] as f64;
    let lse = |r: &[f32]| r.iter().map(|&x| (x as f64).exp()).sum::<f64>().ln();
    let l0 = 0.5 * (lse(&logits[0..3]) - 2.0);
    let l2 = 2.0 * (lse(&logits[6..9]) - 2.0);
    let expect = (l0 + l2) / 2.0;
    assert!((loss - expect).abs() < 1e-5, "{loss} vs {expect}");
}
