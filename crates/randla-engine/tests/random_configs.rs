//! On random configurations, random weights (non-trivial batch norms) and random crops, the fused
//! engine equals the naive op-by-op oracle (max |Δ| ≤ 1e-4·max|ref|), through both entry points.

mod common;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use randla_engine::FusedEngine;
use randla_geom::Pyramid;
use randla_model::{Batch, Param, RandLaNetConfig, StateDict};

fn perturb_bn(sd: &mut StateDict, rng: &mut ChaCha8Rng) {
    let names: Vec<String> = sd
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| n.contains("running_") || n.contains("batch_norm.") || n.starts_with("bn0."))
        .collect();
    for n in names {
        let p = sd.get(&n).unwrap().clone();
        let data = p
            .data
            .iter()
            .map(|_| {
                if n.ends_with("running_var") {
                    0.5 + rng.random::<f32>() * 1.5
                } else if n.ends_with("num_batches_tracked") {
                    0.0
                } else {
                    rng.random::<f32>() - 0.5 + if n.ends_with(".weight") { 1.0 } else { 0.0 }
                }
            })
            .collect();
        sd.insert(n, Param::new(p.shape, data));
    }
}

#[test]
fn fused_equals_naive_on_random_configs() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let configs = [
        RandLaNetConfig {
            num_layers: 2,
            dim_output: vec![8, 16],
            sub_sampling_ratio: vec![4, 4],
            num_neighbors: 8,
            in_channels: 3,
            num_classes: 4,
            ..Default::default()
        },
        RandLaNetConfig {
            num_layers: 3,
            dim_output: vec![16, 32, 64],
            sub_sampling_ratio: vec![4, 2, 2],
            num_neighbors: 16,
            in_channels: 5,
            num_classes: 9,
            dim_features: 6,
            ..Default::default()
        },
        RandLaNetConfig {
            num_layers: 1,
            dim_output: vec![4],
            sub_sampling_ratio: vec![3],
            num_neighbors: 5,
            in_channels: 4,
            num_classes: 2,
            ..Default::default()
        },
    ];
    for (ci, cfg) in configs.iter().enumerate() {
        let mut sd = StateDict::random(cfg, ci as u64);
        perturb_bn(&mut sd, &mut rng);
        let engine = FusedEngine::new(cfg, &sd).unwrap();
        let n = 700 + 300 * ci;
        let crops: Vec<(Vec<f32>, Pyramid)> = (0..2)
            .map(|_| {
                let pts: Vec<[f32; 3]> = (0..n)
                    .map(|_| {
                        [
                            rng.random::<f32>() * 8.0,
                            rng.random::<f32>() * 8.0,
                            rng.random::<f32>() * 2.0,
                        ]
                    })
                    .collect();
                let feats: Vec<f32> = pts
                    .iter()
                    .flat_map(|p| {
                        let mut f = p.to_vec();
                        f.extend((3..cfg.in_channels).map(|_| rng.random::<f32>()));
                        f
                    })
                    .collect();
                let pyr = Pyramid::build(&pts, &cfg.pyramid_config()).unwrap();
                (feats, pyr)
            })
            .collect();
        let refs: Vec<(&[f32], &Pyramid)> = crops.iter().map(|(f, p)| (f.as_slice(), p)).collect();
        let batch = Batch::from_crops(&refs, cfg.in_channels).unwrap();
        let got = engine.forward(&batch).unwrap();
        let naive = common::Naive { sd: &sd, cfg };
        let per = n * cfg.num_classes;
        for b in 0..2 {
            let want = naive.forward(&batch, b);
            let (d, m) = common::max_abs_diff(&got[b * per..(b + 1) * per], &want);
            assert!(
                d <= 1e-4 * m + 1e-6,
                "config {ci}, crop {b}: max |Δ| {d} of {m}"
            );
            let single = engine.forward_crop(&crops[b].0, &crops[b].1).unwrap();
            assert_eq!(
                single,
                got[b * per..(b + 1) * per],
                "forward_crop equals forward"
            );
            // Any layout order gives the same logits: the stratified sampling's Morton curve,
            // or a plain reversal (the worst locality).
            let pts = crops[b].1.coords(0).to_vec();
            let n0 = pts.len();
            let (_, curve) = randla_geom::sampling::stratified_order_with_curve(&pts, 7);
            for order in [
                curve.clone(),
                (0..n0 as u32).rev().collect(),
                (0..n0 as u32).collect(),
            ] {
                let hinted = crops[b].1.clone().with_spatial_order(order).unwrap();
                assert_eq!(
                    engine.forward_crop(&crops[b].0, &hinted).unwrap(),
                    single,
                    "a spatial order changes only the layout"
                );
            }
            // The crop itself reordered by level runs along the curve (same levels), its
            // pyramid built anew and taken as laid out: every point's logits are unchanged (no
            // distance ties among random points, so the same neighbourhoods).
            let runs = cfg.pyramid_config().level_runs_along(&curve).unwrap();
            let c_in = cfg.in_channels;
            let pts2: Vec<[f32; 3]> = runs.iter().map(|&p| pts[p as usize]).collect();
            let feats2: Vec<f32> = runs
                .iter()
                .flat_map(|&p| crops[b].0[p as usize * c_in..][..c_in].to_vec())
                .collect();
            let pyr2 = Pyramid::build(&pts2, &cfg.pyramid_config())
                .unwrap()
                .with_spatial_order((0..n0 as u32).collect())
                .unwrap();
            let laid_out = engine.forward_crop(&feats2, &pyr2).unwrap();
            let c = cfg.num_classes;
            for (i, &p) in runs.iter().enumerate() {
                assert_eq!(
                    laid_out[i * c..(i + 1) * c],
                    single[p as usize * c..(p as usize + 1) * c],
                    "config {ci}, crop {b}: point {p} laid out at {i}"
                );
            }
        }
    }
}

#[test]
fn mismatched_inputs_are_refused() {
    let cfg = RandLaNetConfig {
        num_layers: 2,
        dim_output: vec![8, 16],
        sub_sampling_ratio: vec![4, 4],
        num_neighbors: 8,
        num_classes: 3,
        ..Default::default()
    };
    let engine = FusedEngine::new(&cfg, &StateDict::random(&cfg, 0)).unwrap();
    let pts: Vec<[f32; 3]> = (0..200)
        .map(|i| [(i % 20) as f32, (i / 20) as f32, 0.0])
        .collect();
    let wrong = Pyramid::build(
        &pts,
        &randla_geom::PyramidConfig {
            k: 4,
            ratios: vec![4, 4],
        },
    )
    .unwrap();
    let feats: Vec<f32> = pts.iter().flatten().copied().collect();
    assert!(
        engine
            .forward_crop(&feats, &wrong)
            .unwrap_err()
            .to_string()
            .contains("num_neighbors = 8")
    );
    let right = Pyramid::build(&pts, &cfg.pyramid_config()).unwrap();
    assert!(
        engine
            .forward_crop(&feats[..30], &right)
            .unwrap_err()
            .to_string()
            .contains("features")
    );
    let mut sd = StateDict::random(&cfg, 0);
    sd.remove("encoder.1.pool2.mlp.conv.weight");
    assert!(
        FusedEngine::new(&cfg, &sd)
            .unwrap_err()
            .to_string()
            .contains("encoder.1.pool2.mlp.conv.weight")
    );
}
