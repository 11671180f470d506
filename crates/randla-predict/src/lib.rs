//! # randla-predict: classify every point of a cloud
//!
//! [`Predictor::predict`] runs the main job on one [`randla_io::PointCloud`]:
//! 1. the model's input features are read off the cloud (xyz, then the attributes its
//!    `[input]` section names, each divided by its scale);
//! 2. the cloud is grid-subsampled at the model's `grid_size` (barycentres, mean features), keeping
//!    for every original point the index of its voxel;
//! 3. when the subsampled cloud fits the memory budget, it is shuffled and run through the fused
//!    engine in **one pass** (RandLA-Net's random sampling makes that possible: neighbourhoods are
//!    the same size in metres whatever the crop size); otherwise it is covered by overlapping
//!    crops of the largest size that fits, whose softmax probabilities are averaged with weights
//!    that favour each crop's centre, as the reference's voting does;
//! 4. every original point takes its voxel's probabilities: class, code, confidence.
//!
//! Writing the result back (LAS/LAZ copy-through, PLY, label files) is the CLI's job.

mod error;

use std::time::Instant;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use randla_engine::FusedEngine;
use randla_geom::sampling::grid_subsample;
use randla_geom::{MemoryBudget, Pyramid};
use randla_io::PointCloud;
use randla_model::model_dir::{ClassSpec, InputSpec, ModelDir};
use randla_model::RandLaNetConfig;

pub use error::{Error, Result};

/// Options of a prediction.
#[derive(Debug, Clone)]
pub struct PredictOptions {
    /// Memory the inference may hold (pyramid + network activations).
    pub budget: MemoryBudget,
    /// Keep the per-class probabilities of every point.
    pub probabilities: bool,
    /// Seed of the shuffles (random sampling is the prefix of a shuffled crop).
    pub seed: u64,
    /// Largest crop, in subsampled points (default: the budget decides).
    pub max_crop_points: Option<usize>,
}

impl Default for PredictOptions {
    fn default() -> Self {
        PredictOptions { budget: MemoryBudget::default(), probabilities: false, seed: 0, max_crop_points: None }
    }
}

/// The result for one cloud, one entry per original point.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Class index per point.
    pub class: Vec<u16>,
    /// The class's raw code per point (what gets written back).
    pub codes: Vec<u32>,
    /// Probability of the predicted class per point.
    pub confidence: Vec<f32>,
    /// `[N, classes]` probabilities, when asked for.
    pub probabilities: Option<Vec<f32>>,
    /// Class names.
    pub class_names: Vec<String>,
    /// What happened.
    pub stats: PredictStats,
}

/// Counters and timings of a prediction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PredictStats {
    /// Input points.
    pub points: usize,
    /// Points after grid subsampling.
    pub subsampled: usize,
    /// Network passes (1 = the whole cloud at once).
    pub passes: usize,
    /// Points per pass.
    pub crop_points: usize,
    /// Seconds in grid subsampling.
    pub subsample_s: f64,
    /// Seconds building neighbourhood pyramids.
    pub pyramid_s: f64,
    /// Seconds in the network.
    pub network_s: f64,
    /// Seconds projecting back to every point.
    pub project_s: f64,
}

/// A model ready to classify clouds.
#[derive(Debug)]
pub struct Predictor {
    engine: FusedEngine,
    config: RandLaNetConfig,
    input: InputSpec,
    classes: ClassSpec,
}

impl Predictor {
    /// A predictor for `model`. A model without an `[input]` section must take xyz only; one
    /// without `[classes]` writes class `i` as code `i`.
    pub fn new(model: &ModelDir) -> Result<Self> {
        let input = match &model.input {
            Some(i) => i.clone(),
            None if model.config.in_channels == 3 => InputSpec::xyz_only(),
            None => {
                return Err(Error::Model(format!(
                    "{}: the model takes {} input channels but its config.toml has no [input] section saying which point attributes follow xyz",
                    model.path.display(),
                    model.config.in_channels
                )));
            }
        };
        let classes = model.classes.clone().unwrap_or_else(|| ClassSpec::identity(model.config.num_classes));
        Ok(Predictor { engine: FusedEngine::new(&model.config, &model.weights)?, config: model.config.clone(), input, classes })
    }

    /// The class names.
    pub fn classes(&self) -> &ClassSpec {
        &self.classes
    }

    /// The network configuration.
    pub fn config(&self) -> &RandLaNetConfig {
        &self.config
    }

    /// The input attributes the model needs after xyz.
    pub fn input(&self) -> &InputSpec {
        &self.input
    }

    /// Bytes one pass over `n` subsampled points needs (pyramid, inputs, network activations).
    pub fn pass_bytes(&self, n: usize) -> usize {
        let pcfg = self.config.pyramid_config();
        let sizes = pcfg.level_sizes(n);
        Pyramid::estimate_bytes(n, &pcfg) + self.engine.estimate_peak_bytes(&sizes) + n * (self.config.in_channels + 2 * self.config.num_classes + 3) * 4
    }

    /// Classifies every point of `cloud` (`source` names it in errors). `progress(done, total)`
    /// is called after each pass with subsampled points covered so far.
    pub fn predict(&self, cloud: &PointCloud, source: &str, opts: &PredictOptions, progress: &(dyn Fn(usize, usize) + Sync)) -> Result<Prediction> {
        let n = cloud.len();
        if n == 0 {
            return Err(Error::Input(format!("{source}: the cloud holds no point")));
        }
        let mut stats = PredictStats { points: n, ..Default::default() };
        // 1. Input features (after xyz).
        let nf = self.input.features.len();
        let mut feats = vec![0f32; n * nf];
        for (j, (name, scale)) in self.input.features.iter().zip(&self.input.scale).enumerate() {
            let col = cloud.feature(name).ok_or_else(|| {
                Error::Input(format!(
                    "{source}: the model needs the attribute {name:?}, which this file does not have (it has {:?})",
                    cloud.feature_names()
                ))
            })?;
            feats.par_chunks_mut(nf.max(1)).zip(col.par_iter()).for_each(|(row, v)| row[j] = v / scale);
        }
        // 2. Grid subsampling.
        let t = Instant::now();
        let sub = grid_subsample(&cloud.positions, &feats, nf, None, self.config.grid_size)?;
        drop(feats);
        let m = sub.len();
        stats.subsampled = m;
        stats.subsample_s = t.elapsed().as_secs_f64();
        // 3. Inference: one pass or voting crops.
        let min_points = self.min_points();
        let mut crop = m;
        while crop > min_points && self.pass_bytes(crop) as u64 > opts.budget.bytes {
            crop = crop * 3 / 4;
        }
        if let Some(c) = opts.max_crop_points {
            crop = crop.min(c);
        }
        crop = crop.max(min_points);
        if self.pass_bytes(crop) as u64 > opts.budget.bytes {
            return Err(Error::Budget(format!(
                "{source}: even a crop of {crop} points needs about {} bytes, more than the memory budget of {}",
                self.pass_bytes(crop),
                opts.budget
            )));
        }
        stats.crop_points = crop.min(m);
        let c = self.config.num_classes;
        let probs = if crop >= m {
            stats.passes = 1;
            let all: Vec<u32> = (0..m as u32).collect();
            let p = self.run_crop(&sub.points, &sub.features, nf, &all, opts.seed, &mut stats)?;
            progress(m, m);
            p
        } else {
            self.vote(&sub.points, &sub.features, nf, crop, opts.seed, &mut stats, progress)?
        };
        // 4. Back to every point.
        let t = Instant::now();
        let mut class = vec![0u16; n];
        let mut confidence = vec![0f32; n];
        class.par_iter_mut().zip(confidence.par_iter_mut()).zip(sub.proj.par_iter()).for_each(|((cl, cf), &v)| {
            let row = &probs[v as usize * c..(v as usize + 1) * c];
            let (best, p) = row.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &p)| if p > b.1 { (i, p) } else { b });
            *cl = best as u16;
            *cf = p;
        });
        let codes = class.par_iter().map(|&k| self.classes.code(k as usize)).collect();
        let probabilities = opts.probabilities.then(|| {
            let mut out = vec![0f32; n * c];
            out.par_chunks_mut(c).zip(sub.proj.par_iter()).for_each(|(row, &v)| row.copy_from_slice(&probs[v as usize * c..(v as usize + 1) * c]));
            out
        });
        stats.project_s = t.elapsed().as_secs_f64();
        Ok(Prediction { class, codes, confidence, probabilities, class_names: self.classes.names.clone(), stats })
    }

    /// The fewest points a pass may have: every level must keep K points.
    fn min_points(&self) -> usize {
        // N_{l+1} = N_l / r_l must keep K points per level that has neighbours, and one at the end.
        let k = self.config.num_neighbors.max(1);
        self.config.sub_sampling_ratio.iter().rev().fold(1usize, |need, &r| k.max(r * need))
    }

    /// Softmax probabilities `[idx.len(), classes]` of the points `idx` of the subsampled cloud, in
    /// `idx` order: shuffled, recentred, padded by repetition when too small, one engine pass.
    fn run_crop(&self, pts: &[[f32; 3]], feats: &[f32], nf: usize, idx: &[u32], seed: u64, stats: &mut PredictStats) -> Result<Vec<f32>> {
        let c = self.config.num_classes;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Pad small crops by repeating points (as the reference does), then shuffle.
        let need = self.min_points().max(idx.len());
        let mut order: Vec<u32> = (0..need).map(|i| (i % idx.len()) as u32).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        let (mut lo, mut hi) = ([f32::MAX; 3], [f32::MIN; 3]);
        for &i in idx {
            let p = pts[i as usize];
            for d in 0..3 {
                lo[d] = lo[d].min(p[d]);
                hi[d] = hi[d].max(p[d]);
            }
        }
        let centre = [(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0, lo[2]];
        let cin = self.config.in_channels;
        let crop_pts: Vec<[f32; 3]> = order
            .iter()
            .map(|&o| {
                let p = pts[idx[o as usize] as usize];
                [p[0] - centre[0], p[1] - centre[1], p[2] - centre[2]]
            })
            .collect();
        let mut input = vec![0f32; need * cin];
        input.par_chunks_mut(cin).zip(order.par_iter()).zip(crop_pts.par_iter()).for_each(|((row, &o), p)| {
            row[..3].copy_from_slice(p);
            let s = idx[o as usize] as usize;
            row[3..].copy_from_slice(&feats[s * nf..(s + 1) * nf]);
        });
        let t = Instant::now();
        let pyr = Pyramid::build(&crop_pts, &self.config.pyramid_config())?;
        stats.pyramid_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut logits = self.engine.forward_crop(&input, &pyr)?;
        drop(pyr);
        FusedEngine::softmax_in_place(&mut logits, c);
        stats.network_s += t.elapsed().as_secs_f64();
        // Back to idx order (a padded point's first copy wins).
        let mut out = vec![0f32; idx.len() * c];
        for (pos, &o) in order.iter().enumerate().rev() {
            out[o as usize * c..(o as usize + 1) * c].copy_from_slice(&logits[pos * c..(pos + 1) * c]);
        }
        Ok(out)
    }

    /// Overlapping crops of `crop` points, each the nearest points to a centre, until every point
    /// is covered; probabilities averaged with centre-favouring weights `(1 − d²/d²_max)² + ε`.
    #[allow(clippy::too_many_arguments)]
    fn vote(&self, pts: &[[f32; 3]], feats: &[f32], nf: usize, crop: usize, seed: u64, stats: &mut PredictStats, progress: &(dyn Fn(usize, usize) + Sync)) -> Result<Vec<f32>> {
        let (m, c) = (pts.len(), self.config.num_classes);
        let mut acc = vec![0f32; m * c];
        let mut weight = vec![0f32; m];
        let order = randla_geom::knn::morton_order(pts);
        let mut covered = 0usize;
        let mut cursor = 0usize;
        let mut pass = 0u64;
        while covered < m {
            while weight[order[cursor] as usize] > 0.0 {
                cursor += 1;
            }
            let centre = pts[order[cursor] as usize];
            let mut d: Vec<(f32, u32)> = pts
                .par_iter()
                .enumerate()
                .map(|(i, p)| ((p[0] - centre[0]).powi(2) + (p[1] - centre[1]).powi(2) + (p[2] - centre[2]).powi(2), i as u32))
                .collect();
            d.select_nth_unstable_by(crop - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            d.truncate(crop);
            let dmax = d.iter().fold(0f32, |a, b| a.max(b.0)).max(f32::MIN_POSITIVE);
            let idx: Vec<u32> = d.iter().map(|e| e.1).collect();
            let probs = self.run_crop(pts, feats, nf, &idx, seed.wrapping_add(pass), stats)?;
            for (j, &(dd, i)) in d.iter().enumerate() {
                let w = (1.0 - dd / dmax).powi(2) + 1e-3;
                let i = i as usize;
                if weight[i] == 0.0 {
                    covered += 1;
                }
                weight[i] += w;
                for k in 0..c {
                    acc[i * c + k] += w * probs[j * c + k];
                }
            }
            pass += 1;
            stats.passes += 1;
            progress(covered, m);
        }
        acc.par_chunks_mut(c).zip(weight.par_iter()).for_each(|(row, &w)| row.iter_mut().for_each(|v| *v /= w));
        Ok(acc)
    }
}
