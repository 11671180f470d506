//! Fixtures shared by the integration tests.
#![allow(dead_code)]

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The real IGN LiDAR HD crop (18,826 points, local coordinates) and its classes.
pub fn ign_quarter() -> (Vec<[f32; 3]>, Vec<u32>) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/");
    let xyz = std::fs::read(format!("{dir}ign_77060_627760_sw_quarter.xyz.f32")).unwrap();
    let cls = std::fs::read(format!("{dir}ign_77060_627760_sw_quarter.class.u8")).unwrap();
    let pts: Vec<[f32; 3]> = xyz
        .chunks_exact(12)
        .map(|c| {
            std::array::from_fn(|d| f32::from_le_bytes(c[d * 4..d * 4 + 4].try_into().unwrap()))
        })
        .collect();
    assert_eq!(pts.len(), cls.len());
    (pts, cls.iter().map(|&c| c as u32).collect())
}

/// `n` uniform points in a box of the given sides.
pub fn uniform(n: usize, sides: [f32; 3], seed: u64) -> Vec<[f32; 3]> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| std::array::from_fn(|d| rng.random::<f32>() * sides[d]))
        .collect()
}

/// `n` points in a few tight Gaussian-ish clusters, with exact duplicates and points on a plane:
/// the cases that break careless KD-trees.
pub fn clustered(n: usize, seed: u64) -> Vec<[f32; 3]> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<[f32; 3]> = (0..5)
        .map(|_| std::array::from_fn(|_| rng.random::<f32>() * 50.0))
        .collect();
    let mut pts: Vec<[f32; 3]> = (0..n)
        .map(|i| {
            let c = centres[i % 5];
            let s = 0.01 + (i % 3) as f32;
            [
                c[0] + (rng.random::<f32>() - 0.5) * s,
                c[1] + (rng.random::<f32>() - 0.5) * s,
                if i % 7 == 0 {
                    0.0
                } else {
                    c[2] + (rng.random::<f32>() - 0.5) * s
                },
            ]
        })
        .collect();
    for i in (0..n).step_by(13) {
        pts[i] = pts[i / 2];
    }
    pts
}

/// A random permutation of `0..n`.
pub fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        v.swap(i, j);
    }
    v
}
