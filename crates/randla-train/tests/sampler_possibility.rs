//! The possibility sampler: the reference's update (1 − d²/max d²)², the least-visited point
//! first, and determinism given a seed.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use randla_train::cache::Prepared;
use randla_train::{Sampler, SamplerKind};

fn grid_cloud(n: usize, offset: f32) -> Prepared {
    let mut points = Vec::new();
    for i in 0..n {
        for j in 0..n {
            points.push([i as f32 + offset, j as f32, 0.0]);
        }
    }
    let m = points.len();
    Prepared {
        source: "grid".into(),
        points,
        features: vec![],
        channels: 0,
        labels: vec![0; m],
        proj: (0..m as u32).collect(),
    }
}

#[test]
fn possibility_update_follows_the_reference() {
    let clouds = vec![grid_cloud(20, 0.0)];
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut s = Sampler::new(&clouds, SamplerKind::Possibility, 50, 0.0, &mut rng).unwrap();
    let before = s.possibility[0].clone();
    assert!(before.iter().all(|&p| (0.0..1e-3).contains(&p)));
    let start = before
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0;
    let crop = s.next(&clouds, &mut rng).unwrap();
    assert_eq!(crop.idx.len(), 50);
    let centre = clouds[0].points[start];
    let d2 = |i: usize| {
        let p = clouds[0].points[i];
        (p[0] - centre[0]).powi(2) + (p[1] - centre[1]).powi(2)
    };
    let max = crop
        .idx
        .iter()
        .map(|&i| d2(i as usize))
        .fold(0f32, f32::max);
    for i in 0..before.len() {
        let expect = if crop.idx.contains(&(i as u32)) {
            before[i] + (1.0 - d2(i) / max).powi(2)
        } else {
            before[i]
        };
        assert!((s.possibility[0][i] - expect).abs() < 1e-6, "point {i}");
    }
    // The centre got +1; the farthest crop points about +0.
    assert!((s.possibility[0][start] - before[start] - 1.0).abs() < 1e-6);
    assert_eq!(
        s.min_possibility[0],
        s.possibility[0]
            .iter()
            .copied()
            .fold(f32::INFINITY, f32::min)
    );
    // The crop holds the 50 nearest points, each once, in shuffled order.
    let mut sorted = crop.idx.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 50);
    assert_ne!(crop.idx, sorted);
}

#[test]
fn the_least_visited_cloud_and_point_come_next() {
    let clouds = vec![grid_cloud(10, 0.0), grid_cloud(10, 100.0)];
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut s = Sampler::new(&clouds, SamplerKind::Possibility, 30, 0.0, &mut rng).unwrap();
    // Covering everything takes crops from both clouds, alternating by least possibility.
    let mut seen = [0usize; 2];
    for _ in 0..20 {
        let c = s.next(&clouds, &mut rng).unwrap();
        seen[c.cloud] += 1;
    }
    assert!(seen[0] >= 5 && seen[1] >= 5, "{seen:?}");
    assert!(
        s.min_possibility.iter().all(|&m| m > 0.0),
        "every point visited after 20 crops of 30 over 200 points"
    );
}

#[test]
fn small_clouds_are_padded_by_repetition() {
    let clouds = vec![grid_cloud(4, 0.0)];
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut s = Sampler::new(&clouds, SamplerKind::Random, 40, 0.0, &mut rng).unwrap();
    let c = s.next(&clouds, &mut rng).unwrap();
    assert_eq!(c.idx.len(), 40);
    let mut u = c.idx.clone();
    u.sort();
    u.dedup();
    assert_eq!(u.len(), 16);
}

#[test]
fn crops_are_deterministic_given_the_seed() {
    let clouds = vec![grid_cloud(15, 0.0), grid_cloud(12, 50.0)];
    let run = |seed: u64, kind: SamplerKind| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut s = Sampler::new(&clouds, kind, 40, 0.35, &mut rng).unwrap();
        (0..6)
            .map(|_| s.next(&clouds, &mut rng).unwrap())
            .collect::<Vec<_>>()
    };
    for kind in [SamplerKind::Possibility, SamplerKind::Random] {
        assert_eq!(run(9, kind), run(9, kind));
        assert_ne!(run(9, kind), run(10, kind));
    }
}
