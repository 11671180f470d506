//! Votes over the same points in other orders may share the first layer: a pass through
//! `forward_crop_shared` that reuses an earlier pass's first-layer output (and its level-0
//! neighbourhoods, remapped) gives the logits a fresh pass gives.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use randla_engine::{FusedEngine, SharedLevel0};
use randla_geom::{Pyramid, PyramidConfig};
use randla_model::{RandLaNetConfig, StateDict};

#[test]
fn a_reused_first_layer_gives_a_fresh_pass_logits() {
    let cfg = RandLaNetConfig {
        num_layers: 3,
        dim_output: vec![16, 32, 64],
        sub_sampling_ratio: vec![4, 4, 4],
        num_classes: 5,
        in_channels: 4,
        ..Default::default()
    };
    let engine = FusedEngine::new(&cfg, &StateDict::random(&cfg, 2)).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let n = 3000;
    let base: Vec<[f32; 3]> = (0..n)
        .map(|_| {
            let (x, y) = (rng.random::<f32>() * 20.0, rng.random::<f32>() * 20.0);
            [x, y, (x * 0.3).sin() + rng.random::<f32>() * 0.2]
        })
        .collect();
    let feat: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).cos()).collect();
    let pcfg: PyramidConfig = cfg.pyramid_config();
    let nb_base = Pyramid::build(&base, &pcfg).unwrap().neighbors(0).to_vec();
    // One pass over the points in `order` (crop row → base point).
    let crop = |order: &[u32]| {
        let pts: Vec<[f32; 3]> = order.iter().map(|&o| base[o as usize]).collect();
        let f: Vec<f32> = order
            .iter()
            .flat_map(|&o| {
                let p = base[o as usize];
                [p[0], p[1], p[2], feat[o as usize]]
            })
            .collect();
        (pts, f)
    };
    let mut shared = SharedLevel0::new(n);
    let mut orders = Vec::new();
    for seed in 0..3u64 {
        let mut order: Vec<u32> = (0..n as u32).collect();
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        for i in (1..n).rev() {
            order.swap(i, r.random_range(0..=i));
        }
        orders.push(order);
    }
    for (v, order) in orders.iter().enumerate() {
        let (pts, f) = crop(order);
        let fresh = engine
            .forward_crop(&f, &Pyramid::build(&pts, &pcfg).unwrap())
            .unwrap();
        let mut inv = vec![0u32; n];
        for (pos, &o) in order.iter().enumerate() {
            inv[o as usize] = pos as u32;
        }
        let k = pcfg.k;
        let nb: Vec<u32> = order
            .iter()
            .flat_map(|&o| {
                nb_base[o as usize * k..(o as usize + 1) * k]
                    .iter()
                    .map(|&b| inv[b as usize])
            })
            .collect();
        let pyr = Pyramid::build_with_level0(&pts, &pcfg, nb).unwrap();
        assert_eq!(shared.is_filled(), v > 0);
        let reused = engine
            .forward_crop_shared(&f, &pyr, order, &mut shared)
            .unwrap();
        assert!(shared.is_filled());
        let scale = fresh.iter().fold(0f32, |m, x| m.max(x.abs()));
        let diff = fresh
            .iter()
            .zip(&reused)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            diff <= 1e-4 * scale,
            "pass {v}: max |Δ| {diff} (max |logit| {scale})"
        );
    }
    // Rows that do not fit the store are refused.
    let (pts, f) = crop(&orders[0]);
    let pyr = Pyramid::build(&pts, &pcfg).unwrap();
    let mut small = SharedLevel0::new(10);
    assert!(
        engine
            .forward_crop_shared(&f, &pyr, &orders[0], &mut small)
            .is_err()
    );
}
