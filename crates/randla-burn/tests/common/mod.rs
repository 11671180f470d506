//! Helpers shared by the integration tests.
#![allow(dead_code)]

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use randla_geom::{Pyramid, PyramidConfig};
use randla_model::{Batch, RandLaNetConfig};

/// A small configuration: `layers` levels of width `dims`, ratio 4 (2 for the last), K = `k`.
pub fn small_config(
    k: usize,
    dims: &[usize],
    in_channels: usize,
    classes: usize,
) -> RandLaNetConfig {
    let layers = dims.len();
    let mut ratios = vec![4; layers];
    ratios[layers - 1] = 2;
    RandLaNetConfig {
        num_neighbors: k,
        num_layers: layers,
        num_points: 256,
        num_classes: classes,
        sub_sampling_ratio: ratios,
        in_channels,
        dim_features: 8,
        dim_output: dims.to_vec(),
        ..RandLaNetConfig::default()
    }
}

/// `b` random crops of `n` points (uniform in a 4 m cube) with their pyramids and features
/// `[xyz, extra channels uniform in [0, 1)]`.
pub fn random_batch(config: &RandLaNetConfig, b: usize, n: usize, seed: u64) -> Batch {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let pc = PyramidConfig {
        k: config.num_neighbors,
        ratios: config.sub_sampling_ratio.clone(),
    };
    let mut crops = Vec::new();
    for _ in 0..b {
        let pts: Vec<[f32; 3]> = (0..n)
            .map(|_| {
                [
                    rng.random::<f32>() * 4.0,
                    rng.random::<f32>() * 4.0,
                    rng.random::<f32>() * 4.0,
                ]
            })
            .collect();
        let pyramid = Pyramid::build(&pts, &pc).expect("pyramid");
        let feats: Vec<f32> = pts
            .iter()
            .flat_map(|p| {
                let mut f = p.to_vec();
                f.extend((3..config.in_channels).map(|_| rng.random::<f32>()));
                f
            })
            .collect();
        crops.push((feats, pyramid));
    }
    let refs: Vec<(&[f32], &Pyramid)> = crops.iter().map(|(f, p)| (f.as_slice(), p)).collect();
    Batch::from_crops(&refs, config.in_channels).expect("batch")
}

/// max |a − b| and max |b|.
pub fn max_diff(a: &[f32], b: &[f32]) -> (f32, f32) {
    assert_eq!(a.len(), b.len());
    let d = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    let m = b.iter().map(|x| x.abs()).fold(0.0f32, f32::max);
    (d, m)
}

/// The values of a tensor.
pub fn values<const D: usize>(t: burn::tensor::Tensor<D>) -> Vec<f32> {
    t.try_into_vec_as::<f32>().expect("f32 tensor")
}
