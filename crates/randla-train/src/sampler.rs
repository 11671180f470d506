//! Training crops: the reference's spatially regular possibility sampler (or random centres),
//! augmentation, and the reference's class weights.

use rand::{Rng, RngExt};
use randla_geom::{KdTree, Pyramid, PyramidConfig};

use crate::cache::Prepared;
use crate::config::{AugmentConfig, SamplerKind};
use crate::error::Result;

/// The reference's class weights: `w_c = 1 / (n_c / Σn + 0.02)` (RandLA-Net `helper_tool.py`).
pub fn class_weights(counts: &[u64]) -> Vec<f32> {
    let total: u64 = counts.iter().sum();
    counts
        .iter()
        .map(|&n| {
            let f = if total == 0 {
                0.0
            } else {
                n as f64 / total as f64
            };
            (1.0 / (f + 0.02)) as f32
        })
        .collect()
}

/// A standard normal draw (Box–Muller).
pub fn gaussian<R: Rng + ?Sized>(rng: &mut R) -> f32 {
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// One crop: indices into one prepared cloud, shuffled (and padded by repetition when the cloud
/// is smaller than a crop).
#[derive(Debug, Clone, PartialEq)]
pub struct Crop {
    /// The cloud.
    pub cloud: usize,
    /// `num_points` indices into its subsampled points.
    pub idx: Vec<u32>,
}

/// Chooses training crops.
#[derive(Debug)]
pub struct Sampler {
    kind: SamplerKind,
    num_points: usize,
    centre_noise: f32,
    trees: Vec<KdTree>,
    /// Per cloud, per subsampled point: how much it has been covered (possibility sampler).
    pub possibility: Vec<Vec<f32>>,
    /// Per cloud, the least possibility.
    pub min_possibility: Vec<f32>,
}

impl Sampler {
    /// A sampler over `clouds`; possibilities start uniform in `[0, 1e-3)` as in the reference.
    pub fn new<R: Rng + ?Sized>(
        clouds: &[Prepared],
        kind: SamplerKind,
        num_points: usize,
        centre_noise: f32,
        rng: &mut R,
    ) -> Result<Self> {
        let mut trees = Vec::with_capacity(clouds.len());
        let mut possibility = Vec::with_capacity(clouds.len());
        for c in clouds {
            trees.push(KdTree::build(&c.points)?);
            possibility.push(
                (0..c.len())
                    .map(|_| rng.random::<f32>() * 1e-3)
                    .collect::<Vec<f32>>(),
            );
        }
        let min_possibility = possibility
            .iter()
            .map(|p| p.iter().copied().fold(f32::INFINITY, f32::min))
            .collect();
        Ok(Sampler {
            kind,
            num_points,
            centre_noise,
            trees,
            possibility,
            min_possibility,
        })
    }

    /// Replaces the possibility state (from a checkpoint). Returns false when the sizes differ.
    pub fn set_possibility(&mut self, possibility: Vec<Vec<f32>>) -> bool {
        if possibility.len() != self.possibility.len()
            || possibility
                .iter()
                .zip(&self.possibility)
                .any(|(a, b)| a.len() != b.len())
        {
            return false;
        }
        self.min_possibility = possibility
            .iter()
            .map(|p| p.iter().copied().fold(f32::INFINITY, f32::min))
            .collect();
        self.possibility = possibility;
        true
    }

    /// The next crop.
    pub fn next<R: Rng + ?Sized>(&mut self, clouds: &[Prepared], rng: &mut R) -> Result<Crop> {
        let (cloud, point) = match self.kind {
            SamplerKind::Possibility => {
                let c = (0..self.min_possibility.len())
                    .min_by(|&a, &b| self.min_possibility[a].total_cmp(&self.min_possibility[b]))
                    .expect("at least one cloud");
                let p = self.possibility[c]
                    .iter()
                    .enumerate()
                    .min_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(i, _)| i)
                    .expect("a cloud has points");
                (c, p)
            }
            SamplerKind::Random => {
                let c = rng.random_range(0..clouds.len());
                (c, rng.random_range(0..clouds[c].len()))
            }
        };
        let pts = &clouds[cloud].points;
        let mut centre = pts[point];
        if self.kind == SamplerKind::Possibility && self.centre_noise > 0.0 {
            for v in centre.iter_mut() {
                *v += gaussian(rng) * self.centre_noise;
            }
        }
        let k = self.num_points.min(pts.len());
        let nb = self.trees[cloud].knn(&[centre], k)?;
        let mut idx = nb.indices;
        if self.kind == SamplerKind::Possibility {
            let d2: Vec<f32> = idx
                .iter()
                .map(|&i| {
                    let p = pts[i as usize];
                    (0..3).map(|d| (p[d] - centre[d]).powi(2)).sum::<f32>()
                })
                .collect();
            let max = d2
                .iter()
                .copied()
                .fold(0f32, f32::max)
                .max(f32::MIN_POSITIVE);
            let poss = &mut self.possibility[cloud];
            for (&i, &d) in idx.iter().zip(&d2) {
                poss[i as usize] += (1.0 - d / max).powi(2);
            }
            self.min_possibility[cloud] = poss.iter().copied().fold(f32::INFINITY, f32::min);
        }
        let n = idx.len();
        while idx.len() < self.num_points {
            idx.push(idx[rng.random_range(0..n)]);
        }
        shuffle(&mut idx, rng);
        Ok(Crop { cloud, idx })
    }
}

/// Fisher–Yates.
pub fn shuffle<T, R: Rng + ?Sized>(v: &mut [T], rng: &mut R) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.random_range(0..=i));
    }
}

/// A crop ready for the network: `[N, C]` features (xyz first), its pyramid and labels.
#[derive(Debug, Clone)]
pub struct CropTensors {
    /// `[N, 3 + channels]`.
    pub features: Vec<f32>,
    /// The neighbourhood pyramid of the (augmented) coordinates.
    pub pyramid: Pyramid,
    /// Training class per point ([`crate::config::IGNORED`] for ignored ones).
    pub labels: Vec<u32>,
}

/// Builds the network input of a crop: xyz recentred as the predictor does (bounding-box centre
/// in x and y, lowest z), augmented, then the cloud's features.
pub fn crop_tensors<R: Rng + ?Sized>(
    cloud: &Prepared,
    crop: &Crop,
    aug: Option<&AugmentConfig>,
    pyramid: &PyramidConfig,
    rng: &mut R,
) -> Result<CropTensors> {
    let centre =
        randla_geom::sampling::crop_centre(crop.idx.iter().map(|&i| cloud.points[i as usize]));
    let mut xyz: Vec<[f32; 3]> = crop
        .idx
        .iter()
        .map(|&i| {
            let p = cloud.points[i as usize];
            [p[0] - centre[0], p[1] - centre[1], p[2] - centre[2]]
        })
        .collect();
    if let Some(a) = aug {
        augment(&mut xyz, a, rng);
    }
    let nf = cloud.channels;
    let c = 3 + nf;
    let mut features = vec![0f32; xyz.len() * c];
    for (row, (p, &i)) in features.chunks_exact_mut(c).zip(xyz.iter().zip(&crop.idx)) {
        row[..3].copy_from_slice(p);
        row[3..].copy_from_slice(&cloud.features[i as usize * nf..(i as usize + 1) * nf]);
    }
    let pyramid = Pyramid::build(&xyz, pyramid)?;
    let labels = crop.idx.iter().map(|&i| cloud.labels[i as usize]).collect();
    Ok(CropTensors {
        features,
        pyramid,
        labels,
    })
}

/// Rotation about z, per-axis scaling with optional mirroring, Gaussian noise (in this order,
/// as the reference's Semantic3D augmentation).
pub fn augment<R: Rng + ?Sized>(xyz: &mut [[f32; 3]], a: &AugmentConfig, rng: &mut R) {
    let theta = if a.rotate_z {
        rng.random::<f32>() * std::f32::consts::TAU
    } else {
        0.0
    };
    let (s, c) = theta.sin_cos();
    let mut scale = [0f32; 3];
    for v in scale.iter_mut() {
        *v = a.scale[0] + rng.random::<f32>() * (a.scale[1] - a.scale[0]);
    }
    if a.scale_isotropic_xy {
        scale[1] = scale[0];
    }
    if a.flip_x && rng.random::<bool>() {
        scale[0] = -scale[0];
    }
    if a.flip_y && rng.random::<bool>() {
        scale[1] = -scale[1];
    }
    for p in xyz.iter_mut() {
        let (x, y) = (c * p[0] - s * p[1], s * p[0] + c * p[1]);
        *p = [x * scale[0], y * scale[1], p[2] * scale[2]];
        if a.noise > 0.0 {
            for v in p.iter_mut() {
                *v += gaussian(rng) * a.noise;
            }
        }
    }
}
