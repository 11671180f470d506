//! # randla-predict: classify every point of a cloud
//!
//! [`Predictor::predict`] runs the main job on one [`randla_io::PointCloud`]:
//! 1. the model's input features are read off the cloud (xyz, then the attributes its
//!    `[input]` section names, each divided by its scale);
//! 2. the cloud is grid-subsampled at the model's `grid_size` (barycentres, mean features), keeping
//!    for every original point the index of its voxel;
//! 3. when the subsampled cloud is small enough (at most [`Predictor::default_tile_points`]
//!    points, or [`PredictOptions::tile_points`], and within the memory budget), it is shuffled
//!    and run through the fused engine in **one pass** (RandLA-Net's random sampling makes that
//!    possible: neighbourhoods are the same size in metres whatever the crop size); otherwise it
//!    is cut in the XY plane into balanced tiles (halves cut across the longer side, along the
//!    line of an XY grid of cells nearest the median) and each tile runs with a margin
//!    of context around it. Tiles stay near the size of the crops the model was trained on: the
//!    network reads each point's coordinates relative to its crop (x, y from the crop's centre,
//!    z above its lowest point), and over a much larger crop those leave the range it learned
//!    (500,000-point tiles cost 2.8 points of OA on the IGN tiles; BENCHMARKS.md). Tiles
//!    overlap by their margins; each point's softmax probabilities are the weighted vote of
//!    every pass that saw it (weight 1 in a tile's core, falling to 0 across its margin), the
//!    overlapping-crop voting of the reference without its redundancy. Tiles bound the memory
//!    and keep each pass cache-sized; two run at once where the budget holds both;
//!    with [`PredictOptions::votes`] > 1 every pass (the whole cloud or a tile) runs again with
//!    other random samplings and their probabilities are averaged (the reference's test-time
//!    voting);
//! 4. every original point takes its voxel's probabilities: class, code, confidence.
//!
//! Writing the result back (LAS/LAZ copy-through, PLY, label files) is the CLI's job.

mod error;

use std::time::Instant;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use randla_engine::{FusedEngine, SharedLevel0};
use randla_geom::knn::{bounds, morton_order};
use randla_geom::sampling::{self, grid_subsample, stratified_order_with_curve};
use randla_geom::{KdTree, MemoryBudget, Pyramid};
use randla_io::PointCloud;
use randla_model::RandLaNetConfig;
use randla_model::model_dir::{ClassSpec, InputSpec, ModelDir};

pub use error::{Error, Result};

/// Options of a prediction (default: the default memory budget, no probabilities, seed 0,
/// default tiles and margins).
#[derive(Debug, Clone, Default)]
pub struct PredictOptions {
    /// Memory the inference may hold (pyramid + network activations).
    pub budget: MemoryBudget,
    /// Keep the per-class probabilities of every point.
    pub probabilities: bool,
    /// Seed of the shuffles (random sampling is the prefix of a shuffled crop).
    pub seed: u64,
    /// Largest tile core, in subsampled points ([`Predictor::default_tile_points`] when
    /// `None`); the memory budget may make tiles smaller.
    pub tile_points: Option<usize>,
    /// Passes per point with different random samplings, their probabilities averaged (the
    /// reference's test-time voting); `0` and `1` both mean one.
    pub votes: usize,
    /// Context around each tile, in metres (default: the radius of the coarsest layer's
    /// neighbourhoods at the tile's point density, see [`Predictor::auto_margin`]).
    pub margin: Option<f32>,
    /// How each pass samples its levels.
    pub sampling: Sampling,
}

/// How a pass orders its points, whose prefixes are the network's random-sampling levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sampling {
    /// A random shuffle, spread evenly: every level is every `r^l`-th point along a Morton curve
    /// from a random start ([`sampling::stratified_order`]). Fewer holes in a single pass: on the two IGN
    /// validation tiles, OA 0.9099 against 0.9073 and mIoU 0.7245 against 0.7205 (means of six
    /// seeds, BENCHMARKS.md).
    #[default]
    Stratified,
    /// A plain shuffle, as Open3D-ML does.
    Random,
}

/// Largest tile core by default, in training crops ([`Predictor::default_tile_points`]).
pub const TILE_CROPS: usize = 8;

/// Upper bound of [`Predictor::default_tile_points`], in subsampled points: passes of this size
/// keep the pyramid's and the engine's working sets small (see BENCHMARKS.md, "Whole-cloud
/// prediction") and bound the memory of a pass to a few hundred MB.
pub const MAX_DEFAULT_TILE_POINTS: usize = 500_000;

/// The default margin is this many radii of the coarsest layer's neighbourhoods, for a model
/// whose `config.toml` does not say otherwise (`[predict] margin_radii`). One radius is what the
/// deepest aggregation reaches; how much of it a model needs is measured per model: the
/// session-12 model scored 0.0017 less mIoU on the 10 M-point IGN cloud with half a radius
/// (three seeds, BENCHMARKS.md), the built-in model since session 17 scores the same with half
/// (and runs 10–25 % faster), so its `config.toml` says 0.5.
pub const MARGIN_RADII: f32 = 1.0;

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
    /// Network passes (one per tile, or 1 for the whole cloud at once; times the votes).
    pub passes: usize,
    /// Passes of tiles run two at a time (included in `passes`).
    pub paired_passes: usize,
    /// Votes whose sampling and pyramid were built while the vote before ran the network
    /// (included in `passes`).
    pub pipelined_votes: usize,
    /// Points in the largest pass (a tile with its margin).
    pub crop_points: usize,
    /// Margin around the tiles, in metres (0 for one pass).
    pub margin_m: f32,
    /// Seconds in grid subsampling.
    pub subsample_s: f64,
    /// Seconds building neighbourhood pyramids (two tiles run at once count the wall time they
    /// shared, split in proportion to their own times).
    pub pyramid_s: f64,
    /// Seconds in the network (shared the same way).
    pub network_s: f64,
    /// Seconds projecting back to every point.
    pub project_s: f64,
}

impl PredictStats {
    /// Adds the passes and stage times of two runs `a`, `b` that ran at once for `wall` seconds:
    /// their stage times overlap, so they are scaled down to the wall time they shared, and the
    /// stages still add up to the run's time.
    fn add_overlapped(&mut self, a: &PredictStats, b: &PredictStats, wall: f64) {
        let sum = a.pyramid_s + a.network_s + b.pyramid_s + b.network_s;
        let f = if sum > wall { wall / sum } else { 1.0 };
        self.pyramid_s += (a.pyramid_s + b.pyramid_s) * f;
        self.network_s += (a.network_s + b.network_s) * f;
        self.passes += a.passes + b.passes;
    }
}

/// A cloud's model inputs after grid subsampling ([`Predictor::subsample`]): what
/// [`Predictor::predict_subsampled`] needs of the cloud.
#[derive(Debug)]
pub struct Subsampled {
    /// Points of the original cloud.
    points: usize,
    /// The cloud's name in errors.
    source: String,
    sub: randla_geom::sampling::GridSubsampled,
    subsample_s: f64,
}

impl Subsampled {
    /// Points of the original cloud.
    pub fn points(&self) -> usize {
        self.points
    }
}

/// A model ready to classify clouds.
#[derive(Debug)]
pub struct Predictor {
    engine: FusedEngine,
    config: RandLaNetConfig,
    input: InputSpec,
    classes: ClassSpec,
    /// Tile margins in coarse radii: the model's `[predict] margin_radii`, else [`MARGIN_RADII`].
    margin_radii: f32,
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
        let classes = model
            .classes
            .clone()
            .unwrap_or_else(|| ClassSpec::identity(model.config.num_classes));
        Ok(Predictor {
            engine: FusedEngine::new(&model.config, &model.weights)?,
            config: model.config.clone(),
            input,
            classes,
            margin_radii: model
                .predict
                .as_ref()
                .and_then(|p| p.margin_radii)
                .unwrap_or(MARGIN_RADII),
        })
    }

    /// The default tile margin, in radii of the coarsest neighbourhoods (see
    /// [`Predictor::auto_margin`]).
    pub fn margin_radii(&self) -> f32 {
        self.margin_radii
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
        Pyramid::estimate_bytes(n, &pcfg)
            + self.engine.estimate_peak_bytes(&sizes)
            + n * (self.config.in_channels + 2 * self.config.num_classes + 3) * 4
    }

    /// Classifies every point of `cloud` (`source` names it in errors). `progress(done, total)`
    /// is called after each pass with subsampled points covered so far.
    pub fn predict(
        &self,
        cloud: &PointCloud,
        source: &str,
        opts: &PredictOptions,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Prediction> {
        let s = self.subsample(cloud, source)?;
        self.predict_subsampled(s, opts, progress)
    }

    /// The first step of [`Predictor::predict`]: the model's input attributes of `cloud`,
    /// grid-subsampled. It is all the rest of the prediction needs of the cloud, so a caller
    /// that has no other use for the cloud can free it before [`Predictor::predict_subsampled`]
    /// (a 10 M-point cloud with three attributes holds 240 MB), or hand it over with
    /// [`Predictor::subsample_owned`].
    pub fn subsample(&self, cloud: &PointCloud, source: &str) -> Result<Subsampled> {
        let feats = self.input_features(cloud, source)?;
        self.subsample_features(&cloud.positions, &feats, source)
    }

    /// [`Predictor::subsample`] taking the cloud, whose attribute columns are freed as soon as
    /// the model's inputs are copied out of them: the grid subsampling, the memory peak of a
    /// large cloud's prediction, then runs without them (about 0.5 GB less at 40 M points).
    pub fn subsample_owned(&self, mut cloud: PointCloud, source: &str) -> Result<Subsampled> {
        let feats = self.input_features(&cloud, source)?;
        cloud.features = Vec::new();
        cloud.labels = None;
        self.subsample_features(&cloud.positions, &feats, source)
    }

    /// The model's input attributes of `cloud`, scaled, `[N, features]` row-major.
    fn input_features(&self, cloud: &PointCloud, source: &str) -> Result<Vec<f32>> {
        let n = cloud.len();
        if n == 0 {
            return Err(Error::Input(format!("{source}: the cloud holds no point")));
        }
        let nf = self.input.features.len();
        let mut feats = vec![0f32; n * nf];
        for (j, (name, scale)) in self
            .input
            .features
            .iter()
            .zip(&self.input.scale)
            .enumerate()
        {
            let col = cloud.feature(name).ok_or_else(|| {
                let names = cloud.feature_names();
                let has = if names.is_empty() {
                    "it has coordinates only".to_string()
                } else {
                    format!("it has {names:?}")
                };
                Error::Input(format!(
                    "{source}: the model needs the attribute {name:?}, which this file does not have ({has}); use a model trained on this file's attributes (--model DIR)"
                ))
            })?;
            feats
                .par_chunks_mut(nf.max(1))
                .zip(col.par_iter())
                .for_each(|(row, v)| row[j] = v / scale);
        }
        Ok(feats)
    }

    /// Grid subsampling of `positions` with their input attributes `feats`.
    fn subsample_features(
        &self,
        positions: &[[f32; 3]],
        feats: &[f32],
        source: &str,
    ) -> Result<Subsampled> {
        let nf = self.input.features.len();
        let t = Instant::now();
        let sub = grid_subsample(positions, feats, nf, None, self.config.grid_size)
            .map_err(|e| Error::Input(format!("{source}: grid subsampling: {e}")))?;
        Ok(Subsampled {
            points: positions.len(),
            source: source.to_string(),
            sub,
            subsample_s: t.elapsed().as_secs_f64(),
        })
    }

    /// The rest of [`Predictor::predict`] after [`Predictor::subsample`].
    pub fn predict_subsampled(
        &self,
        s: Subsampled,
        opts: &PredictOptions,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Prediction> {
        let Subsampled {
            points: n,
            source,
            sub,
            subsample_s,
        } = s;
        let source = source.as_str();
        let nf = self.input.features.len();
        let m = sub.len();
        let mut stats = PredictStats {
            points: n,
            subsampled: m,
            subsample_s,
            ..Default::default()
        };
        // 3. Inference: one pass or tiles.
        let min_points = self.min_points();
        if self.pass_bytes(min_points) as u64 > opts.budget.bytes {
            return Err(Error::Budget(format!(
                "{source}: even a pass over {min_points} points needs about {} bytes, more than the memory budget of {}",
                self.pass_bytes(min_points),
                opts.budget
            )));
        }
        let cap = opts
            .tile_points
            .unwrap_or_else(|| self.default_tile_points())
            .max(min_points);
        let c = self.config.num_classes;
        let probs = if m <= cap && self.pass_bytes(m) as u64 <= opts.budget.bytes {
            stats.crop_points = m;
            let all: Vec<u32> = (0..m as u32).collect();
            let p = self.run_voted(
                &sub.points,
                &sub.features,
                nf,
                &all,
                opts,
                opts.seed,
                &mut stats,
                true,
            )?;
            progress(m, m);
            p
        } else {
            self.tiled(
                &sub.points,
                &sub.features,
                nf,
                cap,
                opts,
                &mut stats,
                progress,
            )?
        };
        // 4. Back to every point.
        let t = Instant::now();
        let mut class = vec![0u16; n];
        let mut confidence = vec![0f32; n];
        class
            .par_iter_mut()
            .zip(confidence.par_iter_mut())
            .zip(sub.proj.par_iter())
            .for_each(|((cl, cf), &v)| {
                let row = &probs[v as usize * c..(v as usize + 1) * c];
                let (best, p) =
                    row.iter()
                        .enumerate()
                        .fold(
                            (0, f32::NEG_INFINITY),
                            |b, (i, &p)| if p > b.1 { (i, p) } else { b },
                        );
                *cl = best as u16;
                *cf = p;
            });
        let codes = class
            .par_iter()
            .map(|&k| self.classes.code(k as usize))
            .collect();
        let probabilities = opts.probabilities.then(|| {
            let mut out = vec![0f32; n * c];
            out.par_chunks_mut(c)
                .zip(sub.proj.par_iter())
                .for_each(|(row, &v)| {
                    row.copy_from_slice(&probs[v as usize * c..(v as usize + 1) * c])
                });
            out
        });
        stats.project_s = t.elapsed().as_secs_f64();
        Ok(Prediction {
            class,
            codes,
            confidence,
            probabilities,
            class_names: self.classes.names.clone(),
            stats,
        })
    }

    /// The fewest points a pass may have: every level must keep K points.
    fn min_points(&self) -> usize {
        // N_{l+1} = N_l / r_l must keep K points per level that has neighbours, and one at the end.
        let k = self.config.num_neighbors.max(1);
        self.config
            .sub_sampling_ratio
            .iter()
            .rev()
            .fold(1usize, |need, &r| k.max(r * need))
    }

    /// One pass ([`Self::prepare_crop`], [`Self::finish_crop`]) per vote over `opts.votes` random
    /// samplings (seeds `seed`, `seed + 2³²`, …), their probabilities averaged. `may_pipeline`:
    /// the next vote may be prepared while this one runs (not for tiles already run in pairs).
    #[allow(clippy::too_many_arguments)]
    fn run_voted(
        &self,
        pts: &[[f32; 3]],
        feats: &[f32],
        nf: usize,
        idx: &[u32],
        opts: &PredictOptions,
        seed: u64,
        stats: &mut PredictStats,
        may_pipeline: bool,
    ) -> Result<Vec<f32>> {
        let votes = opts.votes.max(1);
        // Votes over the same points share what does not depend on the sampling: the level-0
        // neighbourhoods and the first encoder layer (not for padded crops, whose repeated
        // points change the neighbourhoods).
        let (nb0, mut level0) = if votes > 1 && idx.len() >= self.min_points() {
            let t = Instant::now();
            let centre = crop_centre(pts, idx);
            let base: Vec<[f32; 3]> = idx
                .iter()
                .map(|&i| recentre(pts[i as usize], centre))
                .collect();
            let nb = KdTree::build(&base)?.knn_self_indices(self.config.num_neighbors)?;
            stats.pyramid_s += t.elapsed().as_secs_f64();
            (Some(nb), Some(SharedLevel0::new(idx.len())))
        } else {
            (None, None)
        };
        let seed_of = |vote: usize| seed.wrapping_add((vote as u64) << 32);
        // Vote v + 1's sampling and pyramid are built while vote v runs the network, when both
        // fit the budget together: the two fill the cores each other's sequential steps leave
        // idle. Every vote computes what it would one after the other, so the result is the same.
        let pipelined =
            may_pipeline && votes > 1 && 2 * self.pass_bytes(idx.len()) as u64 <= opts.budget.bytes;
        let prepare = |vote: usize, stats: &mut PredictStats| {
            self.prepare_crop(
                pts,
                feats,
                nf,
                idx,
                opts.sampling,
                seed_of(vote),
                nb0.as_deref(),
                stats,
            )
        };
        let mut probs: Vec<f32> = Vec::new();
        let mut next = Some(prepare(0, stats)?);
        for vote in 0..votes {
            let crop = next.take().expect("each vote is prepared before it runs");
            let p = if pipelined && vote + 1 < votes {
                let (mut sa, mut sb) = (PredictStats::default(), PredictStats::default());
                let t = Instant::now();
                let (p, n) = rayon::join(
                    || self.finish_crop(crop, level0.as_mut(), &mut sa),
                    || prepare(vote + 1, &mut sb),
                );
                stats.add_overlapped(&sa, &sb, t.elapsed().as_secs_f64());
                stats.pipelined_votes += 1;
                next = Some(n?);
                p?
            } else {
                let p = self.finish_crop(crop, level0.as_mut(), stats)?;
                if vote + 1 < votes {
                    next = Some(prepare(vote + 1, stats)?);
                }
                p
            };
            if vote == 0 {
                probs = p;
            } else {
                probs
                    .par_iter_mut()
                    .zip(p.par_iter())
                    .for_each(|(a, b)| *a += b);
            }
        }
        if votes > 1 {
            let inv = 1.0 / votes as f32;
            probs.par_iter_mut().for_each(|v| *v *= inv);
        }
        Ok(probs)
    }

    /// The first half of one pass over the points `idx` of the subsampled cloud: shuffled (and
    /// stratified), recentred, padded by repetition when too small, the network's input and
    /// neighbourhood pyramid built (level 0 from `shared_nb`, the votes' shared neighbourhoods in
    /// `idx` order, when there is no padding). [`Predictor::finish_crop`] runs the network.
    #[allow(clippy::too_many_arguments)]
    fn prepare_crop(
        &self,
        pts: &[[f32; 3]],
        feats: &[f32],
        nf: usize,
        idx: &[u32],
        sampling: Sampling,
        seed: u64,
        shared_nb: Option<&[u32]>,
        stats: &mut PredictStats,
    ) -> Result<PreparedCrop> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Pad small crops by repeating points (as the reference does), then shuffle.
        let need = self.min_points().max(idx.len());
        let mut order: Vec<u32> = (0..need).map(|i| (i % idx.len()) as u32).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        // The crop's points and features, gathered once in `idx` order (ascending indices for a
        // tile: near-sequential reads of the whole cloud's arrays); the shuffled gathers below
        // then read this compact copy, not the cloud.
        let local: Vec<[f32; 3]> = idx.par_iter().map(|&i| pts[i as usize]).collect();
        // The crop in sampling order, then laid out in space without changing its levels: each
        // level's new points along the Morton curve (the stratified sampling's own curve), so
        // the engine takes the pyramid as it is built instead of gathering every level again.
        let shuffled: Vec<[f32; 3]> = order.par_iter().map(|&o| local[o as usize]).collect();
        let curve = if sampling == Sampling::Stratified {
            let (strat, along) = stratified_order_with_curve(&shuffled, rng.random::<u32>());
            order = strat.into_par_iter().map(|i| order[i as usize]).collect();
            along
        } else {
            morton_order(&shuffled)
        };
        drop(shuffled);
        let cfg = self.config.pyramid_config();
        order = cfg
            .level_runs_along(&curve)?
            .into_par_iter()
            .map(|p| order[p as usize])
            .collect();
        drop(curve);
        let centre = crop_centre(pts, idx);
        let cin = self.config.in_channels;
        let crop_pts: Vec<[f32; 3]> = order
            .par_iter()
            .map(|&o| recentre(local[o as usize], centre))
            .collect();
        drop(local);
        let mut local_feats = vec![0f32; idx.len() * nf];
        local_feats
            .par_chunks_mut(nf.max(1))
            .zip(idx.par_iter())
            .for_each(|(row, &i)| row.copy_from_slice(&feats[i as usize * nf..][..nf]));
        let mut input = vec![0f32; need * cin];
        input
            .par_chunks_mut(cin)
            .zip(order.par_iter())
            .zip(crop_pts.par_iter())
            .for_each(|((row, &o), p)| {
                row[..3].copy_from_slice(p);
                let o = o as usize;
                row[3..].copy_from_slice(&local_feats[o * nf..(o + 1) * nf]);
            });
        drop(local_feats);
        // Without padding every point appears once: where each `idx` row sits in this order
        // (renumbers the shared neighbourhoods, and brings the results back to `idx` order).
        let pos_of: Option<Vec<u32>> = (need == idx.len()).then(|| {
            let mut pos_of = vec![0u32; need];
            for (pos, &o) in order.iter().enumerate() {
                pos_of[o as usize] = pos as u32;
            }
            pos_of
        });
        let t = Instant::now();
        let pyr = match (shared_nb, &pos_of) {
            // Every point once: the shared neighbourhoods, renumbered to this order.
            (Some(nb_base), Some(inv)) => {
                let k = cfg.k;
                let mut nb = vec![0u32; need * k];
                nb.par_chunks_mut(k)
                    .zip(order.par_iter())
                    .for_each(|(row, &o)| {
                        for (d, &b) in row.iter_mut().zip(&nb_base[o as usize * k..][..k]) {
                            *d = inv[b as usize];
                        }
                    });
                Pyramid::build_with_level0(&crop_pts, &cfg, nb)?
            }
            _ => Pyramid::build(&crop_pts, &cfg)?,
        };
        let pyr = pyr.with_spatial_order((0..need as u32).collect())?;
        stats.pyramid_s += t.elapsed().as_secs_f64();
        Ok(PreparedCrop {
            points: idx.len(),
            input,
            pyr,
            order,
            pos_of,
        })
    }

    /// The second half of a pass ([`Predictor::prepare_crop`]): the network, then softmax
    /// probabilities `[points, classes]` in `idx` order. `shared` keeps the first layer's output
    /// for the other votes over the same points (used only without padding).
    fn finish_crop(
        &self,
        crop: PreparedCrop,
        shared: Option<&mut SharedLevel0>,
        stats: &mut PredictStats,
    ) -> Result<Vec<f32>> {
        let c = self.config.num_classes;
        let PreparedCrop {
            points,
            input,
            pyr,
            order,
            pos_of,
        } = crop;
        let t = Instant::now();
        let mut logits = match shared {
            Some(s) if pos_of.is_some() => {
                self.engine.forward_crop_shared(&input, &pyr, &order, s)?
            }
            _ => self.engine.forward_crop(&input, &pyr)?,
        };
        drop(pyr);
        drop(input);
        FusedEngine::softmax_in_place(&mut logits, c);
        stats.network_s += t.elapsed().as_secs_f64();
        stats.passes += 1;
        // Back to idx order (a padded point's first copy wins).
        let mut out = vec![0f32; points * c];
        if let Some(pos_of) = &pos_of {
            out.par_chunks_mut(c)
                .zip(pos_of.par_iter())
                .for_each(|(row, &pos)| {
                    row.copy_from_slice(&logits[pos as usize * c..][..c]);
                });
        } else {
            for (pos, &o) in order.iter().enumerate().rev() {
                out[o as usize * c..(o as usize + 1) * c]
                    .copy_from_slice(&logits[pos * c..(pos + 1) * c]);
            }
        }
        Ok(out)
    }

    /// Largest tile core by default, in subsampled points: [`TILE_CROPS`] of the model's training
    /// crops (`num_points`), at most [`MAX_DEFAULT_TILE_POINTS`]. 65,536 for the built-in model.
    /// On the 10-million-point IGN cloud this is as fast as 500,000-point tiles (smaller passes
    /// stay in cache; with a margin of one radius they overlap as little) and scores OA 0.938
    /// against 0.910 (BENCHMARKS.md).
    pub fn default_tile_points(&self) -> usize {
        TILE_CROPS
            .saturating_mul(self.config.num_points)
            .min(MAX_DEFAULT_TILE_POINTS)
            .max(self.min_points())
    }

    /// The default margin around a tile of `n` points over `area` m²: [`Predictor::margin_radii`]
    /// radii of the coarsest layer's neighbourhoods (K points at the density left after all but
    /// the last random sampling; one radius is the context the deepest aggregation reaches).
    pub fn auto_margin(&self, n: usize, area: f32) -> f32 {
        let density = n as f32 / area.max(1e-6);
        let layers = self.config.sub_sampling_ratio.len();
        let thinning: usize = self.config.sub_sampling_ratio[..layers.saturating_sub(1)]
            .iter()
            .product();
        let radius = (self.config.num_neighbors as f32 * thinning as f32
            / (std::f32::consts::PI * density))
            .sqrt();
        self.margin_radii * radius
    }

    /// Balanced XY tiles of at most `cap` core points (fewer where a pass would exceed the
    /// budget), each run with its margin; probabilities voted with weight 1 in a tile's core and
    /// `(1 − d/margin)²` at distance `d` outside it.
    #[allow(clippy::too_many_arguments)]
    fn tiled(
        &self,
        pts: &[[f32; 3]],
        feats: &[f32],
        nf: usize,
        cap: usize,
        opts: &PredictOptions,
        stats: &mut PredictStats,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Vec<f32>> {
        let (m, c) = (pts.len(), self.config.num_classes);
        let min_points = self.min_points();
        // Aim the cores below the cap so that core + margin still fits the budget.
        let mut target = cap;
        while target > min_points && self.pass_bytes(target + target / 2) as u64 > opts.budget.bytes
        {
            target = target * 3 / 4;
        }
        let target = target.max(min_points);
        let (lo, hi) = bounds(pts);
        let (lo, hi) = ([lo[0], lo[1]], [hi[0], hi[1]]);
        let cells = Cells::new(pts, lo, hi);
        let mut acc = vec![0f32; m * c];
        let mut weight = vec![0f32; m];
        // The cores, cut along the cells' lines (through a cell only where one cell holds more
        // than a tile), in the order the loop below runs them: last in the stack first.
        let mut stack = Tile {
            lo,
            hi,
            core: Core::Cells {
                x: (0, cells.dims[0]),
                y: (0, cells.dims[1]),
                count: m,
            },
        }
        .split_to(pts, &cells, target);
        stack.reverse();
        // The next tile to run, its margin and its members (core and margin points with their
        // vote weights), splitting tiles further where a pass would not fit the budget.
        let next_tile = |stack: &mut Vec<Tile>| -> Option<ReadyTile> {
            while let Some(tile) = stack.pop() {
                let area = (tile.hi[0] - tile.lo[0]).max(0.0) * (tile.hi[1] - tile.lo[1]).max(0.0);
                let margin = opts
                    .margin
                    .unwrap_or_else(|| self.auto_margin(tile.count(), area))
                    .max(0.0);
                let members = cells.members(&tile, margin);
                if self.pass_bytes(members.len()) as u64 > opts.budget.bytes
                    && tile.count() > min_points
                    && let Some((a, b)) = tile.split(pts, &cells)
                {
                    stack.push(b);
                    stack.push(a);
                    continue;
                }
                return Some(ReadyTile {
                    tile,
                    margin,
                    members,
                });
            }
            None
        };
        let mut covered = 0usize;
        let mut tiles_run = 0u64;
        let mut add = |r: ReadyTile, probs: &[f32], stats: &mut PredictStats| {
            vote(&mut acc, &mut weight, &r.members, probs, c);
            stats.crop_points = stats.crop_points.max(r.members.len());
            stats.margin_m = stats.margin_m.max(r.margin);
            covered += r.tile.count();
            progress(covered, m);
        };
        let ids = |members: &[(u32, f32)]| members.iter().map(|e| e.0).collect::<Vec<u32>>();
        while let Some(a) = next_tile(&mut stack) {
            let b = next_tile(&mut stack);
            // Two tiles run at once on the same workers when both passes fit the budget together:
            // each fills the cores the other leaves idle at the ends of its steps. The seeds and
            // the order of the votes are those of one tile after the other, so the result is the
            // same.
            let fit_together = |a: &ReadyTile, b: &ReadyTile| {
                let most = a.members.len().max(b.members.len());
                2 * self.pass_bytes(most) as u64 <= opts.budget.bytes
            };
            match b {
                Some(b) if fit_together(&a, &b) => {
                    let (ia, ib) = (ids(&a.members), ids(&b.members));
                    let (mut sa, mut sb) = (PredictStats::default(), PredictStats::default());
                    let t = Instant::now();
                    let (pa, pb) = rayon::join(
                        || {
                            let seed = opts.seed.wrapping_add(tiles_run);
                            self.run_voted(pts, feats, nf, &ia, opts, seed, &mut sa, false)
                        },
                        || {
                            let seed = opts.seed.wrapping_add(tiles_run + 1);
                            self.run_voted(pts, feats, nf, &ib, opts, seed, &mut sb, false)
                        },
                    );
                    stats.add_overlapped(&sa, &sb, t.elapsed().as_secs_f64());
                    stats.paired_passes += sa.passes + sb.passes;
                    tiles_run += 2;
                    add(a, &pa?, stats);
                    add(b, &pb?, stats);
                }
                b => {
                    for t in std::iter::once(a).chain(b) {
                        let seed = opts.seed.wrapping_add(tiles_run);
                        let probs = self.run_voted(
                            pts,
                            feats,
                            nf,
                            &ids(&t.members),
                            opts,
                            seed,
                            stats,
                            true,
                        )?;
                        tiles_run += 1;
                        add(t, &probs, stats);
                    }
                }
            }
        }
        acc.par_chunks_mut(c)
            .zip(weight.par_iter())
            .for_each(|(row, &w)| row.iter_mut().for_each(|v| *v /= w));
        Ok(acc)
    }
}

/// One pass's network input, prepared ([`Predictor::prepare_crop`]) and waiting for the network
/// ([`Predictor::finish_crop`]).
struct PreparedCrop {
    /// Distinct points (`idx.len()`); the crop has more rows when padded.
    points: usize,
    /// `[rows, in_channels]` in `order`.
    input: Vec<f32>,
    pyr: Pyramid,
    /// Row → position in `idx`.
    order: Vec<u32>,
    /// Position in `idx` → row, when every point appears once (no padding).
    pos_of: Option<Vec<u32>>,
}

/// A tile ready to run: its margin and its members (core and margin points, each with its vote
/// weight).
struct ReadyTile {
    tile: Tile,
    margin: f32,
    members: Vec<(u32, f32)>,
}

/// The subsampled points bucketed in an XY grid, so that a tile finds the points of its core and
/// margin among the cells it overlaps rather than among every point of the cloud (which made
/// tiling quadratic: tiles × points).
struct Cells {
    lo: [f32; 2],
    /// Cell side, metres.
    size: f32,
    /// Cells along x and y.
    dims: [usize; 2],
    /// `start[c]..start[c + 1]` are cell `c`'s points in `pts` (cells row-major, y outer).
    start: Vec<u32>,
    /// Point indices by cell, ascending within a cell.
    pts: Vec<u32>,
    /// Those points' x and y, in the same order: a tile's members are tested reading memory in
    /// order rather than the cloud's points at random.
    xy: Vec<[f32; 2]>,
    /// `[dims[1] + 1, dims[0] + 1]` points in the cells below and left of each corner (a
    /// summed-area table): the count of any range of cells in four reads.
    below: Vec<u32>,
}

/// Points per cell [`Cells`] aims at.
const POINTS_PER_CELL: f32 = 64.0;

impl Cells {
    /// Buckets `pts`, whose XY bounds are `[lo, hi]`.
    fn new(pts: &[[f32; 3]], lo: [f32; 2], hi: [f32; 2]) -> Self {
        let ext = [(hi[0] - lo[0]).max(1e-3), (hi[1] - lo[1]).max(1e-3)];
        let cells = (pts.len() as f32 / POINTS_PER_CELL).max(1.0);
        let mut size = (ext[0] * ext[1] / cells).sqrt().max(1e-3);
        let grid = |size: f32| [0, 1].map(|d| (ext[d] / size) as usize + 1);
        // A thin strip of a cloud would need many more cells than points: coarser cells then.
        while grid(size)[0] * grid(size)[1] > 4 * cells as usize + 16 {
            size *= 2.0;
        }
        let dims = grid(size);
        let mut cells = Cells {
            lo,
            size,
            dims,
            start: vec![0; dims[0] * dims[1] + 1],
            pts: Vec::new(),
            xy: Vec::new(),
            below: vec![0; (dims[0] + 1) * (dims[1] + 1)],
        };
        let id: Vec<u32> = pts
            .par_iter()
            .map(|p| {
                let (x, y) = (cells.coord(p[0], 0), cells.coord(p[1], 1));
                (y * dims[0] + x) as u32
            })
            .collect();
        // A counting sort: ascending point index within each cell.
        for &c in &id {
            cells.start[c as usize + 1] += 1;
        }
        for c in 0..dims[0] * dims[1] {
            cells.start[c + 1] += cells.start[c];
        }
        let mut next = cells.start.clone();
        cells.pts = vec![0; pts.len()];
        cells.xy = vec![[0.0; 2]; pts.len()];
        for (i, &c) in id.iter().enumerate() {
            let at = next[c as usize] as usize;
            cells.pts[at] = i as u32;
            cells.xy[at] = [pts[i][0], pts[i][1]];
            next[c as usize] += 1;
        }
        let w = dims[0] + 1;
        for y in 0..dims[1] {
            for x in 0..dims[0] {
                let c = y * dims[0] + x;
                let here = cells.start[c + 1] - cells.start[c];
                cells.below[(y + 1) * w + x + 1] =
                    here + cells.below[y * w + x + 1] + cells.below[(y + 1) * w + x]
                        - cells.below[y * w + x];
            }
        }
        cells
    }

    /// Points in the cells `x.0..x.1` × `y.0..y.1`.
    fn count(&self, x: (usize, usize), y: (usize, usize)) -> usize {
        let w = self.dims[0] + 1;
        let at = |x: usize, y: usize| self.below[y * w + x] as usize;
        at(x.1, y.1) + at(x.0, y.0) - at(x.0, y.1) - at(x.1, y.0)
    }

    /// The points of the cells `x.0..x.1` of row `y`.
    fn row(&self, y: usize, x: (usize, usize)) -> &[u32] {
        &self.pts[self.row_range(y, x)]
    }

    /// Where the points of the cells `x.0..x.1` of row `y` lie in `pts` and `xy`.
    fn row_range(&self, y: usize, x: (usize, usize)) -> std::ops::Range<usize> {
        let row = y * self.dims[0];
        self.start[row + x.0] as usize..self.start[row + x.1] as usize
    }

    /// The points of the cells `x.0..x.1` × `y.0..y.1`.
    fn points_in(&self, x: (usize, usize), y: (usize, usize)) -> Vec<u32> {
        (y.0..y.1).flat_map(|y| self.row(y, x)).copied().collect()
    }

    /// The cell column (`d` = 0) or row (`d` = 1) of coordinate `v`, clamped to the grid.
    fn coord(&self, v: f32, d: usize) -> usize {
        (((v - self.lo[d]) / self.size).max(0.0) as usize).min(self.dims[d] - 1)
    }

    /// The points of `tile`'s core (weight 1) and of its margin (weight `(1 − d/margin)²` at
    /// distance `d` from the core), in ascending index order.
    fn members(&self, tile: &Tile, margin: f32) -> Vec<(u32, f32)> {
        // The cells of the box grown by the margin, and one more on each side so that rounding
        // in `coord` cannot leave a point out; the exact test below decides.
        let range = |d: usize| {
            let a = self.coord(tile.lo[d] - margin, d).saturating_sub(1);
            let b = (self.coord(tile.hi[d] + margin, d) + 1).min(self.dims[d] - 1);
            (a, b)
        };
        let ((x0, x1), (y0, y1)) = (range(0), range(1));
        let mut members: Vec<(u32, f32)> = (y0..=y1)
            .into_par_iter()
            .flat_map_iter(|y| {
                let r = self.row_range(y, (x0, x1 + 1));
                self.pts[r.clone()]
                    .iter()
                    .zip(&self.xy[r])
                    .filter_map(move |(&i, &p)| tile.weight_xy(p, margin).map(|w| (i, w)))
            })
            .collect();
        sort_by_index(&mut members);
        members
    }
}

/// Sorts `(index, weight)` entries by index: a least-significant-digit radix sort over the
/// 12-bit digits the largest index has (two passes for the ≤ 16.7 M points of a cloud), cheaper
/// than a comparison sort for a tile's tens of thousands of members, which are distinct.
fn sort_by_index(v: &mut Vec<(u32, f32)>) {
    const BITS: u32 = 12;
    const BUCKETS: usize = 1 << BITS;
    if v.len() < 256 {
        v.sort_unstable_by_key(|e| e.0);
        return;
    }
    let max = v.iter().map(|e| e.0).max().unwrap_or(0);
    let passes = (u32::BITS - max.leading_zeros()).div_ceil(BITS).max(1);
    let mut tmp = vec![(0u32, 0f32); v.len()];
    let mut count = vec![0usize; BUCKETS];
    for pass in 0..passes {
        let shift = pass * BITS;
        let digit = |e: &(u32, f32)| ((e.0 >> shift) as usize) & (BUCKETS - 1);
        count.iter_mut().for_each(|c| *c = 0);
        for e in v.iter() {
            count[digit(e)] += 1;
        }
        let mut sum = 0;
        for c in count.iter_mut() {
            let n = *c;
            *c = sum;
            sum += n;
        }
        for e in v.iter() {
            let d = digit(e);
            tmp[count[d]] = *e;
            count[d] += 1;
        }
        std::mem::swap(v, &mut tmp);
    }
}

/// A tile of the XY plane, `[lo, hi]`, and the points whose core it is. Its vote weights are
/// geometric ([`Tile::weight_xy`]): the boxes of the tiles cover the cloud's bounds without gaps, so
/// every point lies in some tile's core.
struct Tile {
    lo: [f32; 2],
    hi: [f32; 2],
    core: Core,
}

/// The points of a tile's core.
enum Core {
    /// Those of the [`Cells`] `x.0..x.1` × `y.0..y.1` (tiles cut along the cells' lines).
    Cells {
        x: (usize, usize),
        y: (usize, usize),
        count: usize,
    },
    /// These (tiles cut through a cell that holds more points than a tile).
    Points(Vec<u32>),
}

/// Adds one pass's probabilities `probs` (`[members, c]`), weighted, to the votes of its
/// members (distinct point indices, ascending): rows of `acc` (`[points, c]`) and `weight`.
/// Runs in parallel over runs of members, each owning the rows from its first to its last point.
fn vote(acc: &mut [f32], weight: &mut [f32], members: &[(u32, f32)], probs: &[f32], c: usize) {
    const RUN: usize = 8192;
    debug_assert!(members.windows(2).all(|w| w[0].0 < w[1].0));
    let mut jobs = Vec::with_capacity(members.len().div_ceil(RUN));
    let (mut acc, mut weight, mut base) = (acc, weight, 0usize);
    for (r, run) in members.chunks(RUN).enumerate() {
        let end = run.last().map_or(base, |e| e.0 as usize + 1);
        let (a, rest_a) = std::mem::take(&mut acc).split_at_mut((end - base) * c);
        let (w, rest_w) = std::mem::take(&mut weight).split_at_mut(end - base);
        jobs.push((a, w, base, run, &probs[r * RUN * c..][..run.len() * c]));
        (acc, weight, base) = (rest_a, rest_w, end);
    }
    // Rows this many members ahead are asked for early: a tile's members are spread over the
    // cloud's rows, so each row is a cache miss the prefetch overlaps with the work.
    const AHEAD: usize = 16;
    jobs.into_par_iter()
        .for_each(|(acc, weight, base, run, probs)| {
            for (k, (&(i, w), p)) in run.iter().zip(probs.chunks_exact(c)).enumerate() {
                if let Some(&(j, _)) = run.get(k + AHEAD) {
                    let j = j as usize - base;
                    randla_geom::hint::prefetch(acc, j * c);
                    randla_geom::hint::prefetch(weight, j);
                }
                let i = i as usize - base;
                weight[i] += w;
                for (a, &p) in acc[i * c..(i + 1) * c].iter_mut().zip(p) {
                    *a += w * p;
                }
            }
        });
}

impl Tile {
    /// Points in the core.
    fn count(&self) -> usize {
        match &self.core {
            Core::Cells { count, .. } => *count,
            Core::Points(idx) => idx.len(),
        }
    }

    /// [`Tile::weight_xy`] of a point given with its z (tests).
    #[cfg(test)]
    fn weight(&self, p: [f32; 3], margin: f32) -> Option<f32> {
        self.weight_xy([p[0], p[1]], margin)
    }

    /// The weight in this tile's vote of a point at `p` = (x, y): 1 in the core,
    /// `(1 − d/margin)²` at distance `d` outside it, `None` beyond the margin.
    fn weight_xy(&self, p: [f32; 2], margin: f32) -> Option<f32> {
        let dx = (self.lo[0] - p[0]).max(p[0] - self.hi[0]).max(0.0);
        let dy = (self.lo[1] - p[1]).max(p[1] - self.hi[1]).max(0.0);
        let d = (dx * dx + dy * dy).sqrt();
        if d == 0.0 {
            Some(1.0)
        } else if d < margin {
            Some((1.0 - d / margin).powi(2))
        } else {
            None
        }
    }

    /// This tile cut by [`Tile::split`] until each piece has at most `target` points (or cannot
    /// be cut), the pieces in depth-first order, lower half first; the halves of a cut are cut
    /// in parallel.
    fn split_to(self, pts: &[[f32; 3]], cells: &Cells, target: usize) -> Vec<Tile> {
        if self.count() <= target {
            return vec![self];
        }
        match self.split(pts, cells) {
            None => vec![self],
            Some((a, b)) => {
                let (mut a, b) = rayon::join(
                    || a.split_to(pts, cells, target),
                    || b.split_to(pts, cells, target),
                );
                a.extend(b);
                a
            }
        }
    }

    /// Two halves with about half the points each, cut across the longer side: along the cell
    /// line nearest the median (four reads of the cells' summed-area table per try), or through
    /// the points when the core is one cell wide or all its points share a cell line; `None`
    /// when every point has the same coordinate on both axes.
    fn split(&self, pts: &[[f32; 3]], cells: &Cells) -> Option<(Tile, Tile)> {
        match &self.core {
            Core::Cells { x, y, count } => self
                .split_cells(cells, *x, *y, *count)
                .or_else(|| self.split_points(pts, &cells.points_in(*x, *y))),
            Core::Points(idx) => self.split_points(pts, idx),
        }
    }

    fn split_cells(
        &self,
        cells: &Cells,
        x: (usize, usize),
        y: (usize, usize),
        count: usize,
    ) -> Option<(Tile, Tile)> {
        for axis in self.axes() {
            let (a, b) = if axis == 0 { x } else { y };
            if b - a < 2 {
                continue;
            }
            let below = |j: usize| {
                if axis == 0 {
                    cells.count((a, j), y)
                } else {
                    cells.count(x, (a, j))
                }
            };
            // The first line j in a+1..b at or past the median (the count below it grows with
            // j), or the line before it when that one is nearer.
            let (mut lo, mut hi) = (a + 1, b - 1);
            while lo < hi {
                let mid = (lo + hi) / 2;
                if 2 * below(mid) >= count {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            let mut j = lo;
            if j > a + 1 && count.abs_diff(2 * below(j - 1)) < count.abs_diff(2 * below(j)) {
                j -= 1;
            }
            // The nearest line to the median leaves points on both sides if any line does.
            let n = below(j);
            if n == 0 || n == count {
                continue;
            }
            let ((xa, ya), (xb, yb)) = if axis == 0 {
                (((x.0, j), y), ((j, x.1), y))
            } else {
                ((x, (y.0, j)), (x, (j, y.1)))
            };
            return Some(self.cut(
                axis,
                cells.lo[axis] + j as f32 * cells.size,
                Core::Cells {
                    x: xa,
                    y: ya,
                    count: n,
                },
                Core::Cells {
                    x: xb,
                    y: yb,
                    count: count - n,
                },
            ));
        }
        None
    }

    /// Two halves at the median point of the longer side (points on the split line go to the
    /// upper half).
    fn split_points(&self, pts: &[[f32; 3]], idx: &[u32]) -> Option<(Tile, Tile)> {
        for axis in self.axes() {
            let mut coords: Vec<f32> = idx.iter().map(|&i| pts[i as usize][axis]).collect();
            let mid = coords.len() / 2;
            let v = *coords.select_nth_unstable_by(mid, f32::total_cmp).1;
            let (a, b): (Vec<u32>, Vec<u32>) =
                idx.iter().partition(|&&i| pts[i as usize][axis] < v);
            if a.is_empty() || b.is_empty() {
                continue;
            }
            return Some(self.cut(axis, v, Core::Points(a), Core::Points(b)));
        }
        None
    }

    /// The axes to cut across, the longer side first.
    fn axes(&self) -> [usize; 2] {
        let long = usize::from(self.hi[1] - self.lo[1] > self.hi[0] - self.lo[0]);
        [long, 1 - long]
    }

    /// This tile's box cut at `v` across `axis`: the lower side with core `a`, the upper with `b`.
    fn cut(&self, axis: usize, v: f32, a: Core, b: Core) -> (Tile, Tile) {
        let (mut hi_a, mut lo_b) = (self.hi, self.lo);
        hi_a[axis] = v;
        lo_b[axis] = v;
        (
            Tile {
                lo: self.lo,
                hi: hi_a,
                core: a,
            },
            Tile {
                lo: lo_b,
                hi: self.hi,
                core: b,
            },
        )
    }
}

/// The point the crop `idx` of `pts` is recentred on ([`sampling::crop_centre`]).
fn crop_centre(pts: &[[f32; 3]], idx: &[u32]) -> [f32; 3] {
    sampling::crop_centre(idx.iter().map(|&i| pts[i as usize]))
}

fn recentre(p: [f32; 3], c: [f32; 3]) -> [f32; 3] {
    [p[0] - c[0], p[1] - c[1], p[2] - c[2]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_sort_like_a_comparison_sort() {
        // Small lists, lists of indices below 2^12, 2^24 and up to u32::MAX (one, two and three
        // radix passes).
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for (n, max) in [
            (10, 100u64),
            (5000, 1 << 12),
            (70_000, 1 << 24),
            (30_000, 1 << 32),
        ] {
            let mut v: Vec<(u32, f32)> =
                (0..n).map(|i| ((next() % max) as u32, i as f32)).collect();
            v.sort_unstable_by_key(|e| e.0);
            v.dedup_by_key(|e| e.0);
            // Members are distinct indices in any order.
            let want = v.clone();
            for i in (1..v.len()).rev() {
                v.swap(i, (next() % (i as u64 + 1)) as usize);
            }
            sort_by_index(&mut v);
            assert_eq!(v, want, "{n} below {max}");
        }
    }

    /// Every point's core/margin weight for `tile`, by testing every point (what [`Cells`]
    /// must reproduce).
    fn members_by_scan(pts: &[[f32; 3]], tile: &Tile, margin: f32) -> Vec<(u32, f32)> {
        pts.iter()
            .enumerate()
            .filter_map(|(i, &p)| tile.weight(p, margin).map(|w| (i as u32, w)))
            .collect()
    }

    /// A cloud cut into tiles of at most `target` points: the cores' counts add up to the
    /// cloud, every point lies in some core, and a tile is larger than `target` only when all
    /// its points share both coordinates.
    fn check_tiles(pts: &[[f32; 3]], target: usize) -> usize {
        let (lo, hi) = bounds(pts);
        let (lo, hi) = ([lo[0], lo[1]], [hi[0], hi[1]]);
        let cells = Cells::new(pts, lo, hi);
        let whole = Tile {
            lo,
            hi,
            core: Core::Cells {
                x: (0, cells.dims[0]),
                y: (0, cells.dims[1]),
                count: pts.len(),
            },
        };
        let tiles = whole.split_to(pts, &cells, target);
        assert_eq!(tiles.iter().map(Tile::count).sum::<usize>(), pts.len());
        for (i, &p) in pts.iter().enumerate() {
            assert!(
                tiles.iter().any(|t| t.weight(p, 0.0) == Some(1.0)),
                "point {i} {p:?} is in no core"
            );
        }
        for t in &tiles {
            if t.count() > target {
                let members = cells.members(t, 0.0);
                let first = pts[members[0].0 as usize];
                assert!(
                    members
                        .iter()
                        .all(|&(i, _)| pts[i as usize][..2] == first[..2]),
                    "a tile of {} points (target {target}) could have been cut",
                    t.count()
                );
            }
        }
        tiles.len()
    }

    #[test]
    fn tiles_cover_the_cloud_within_the_target() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        // `n` points spread over `[lo, lo + ext]` in x and y, at height `lo[2]`.
        let mut patch = |n: usize, lo: [f32; 3], ext: [f32; 2]| -> Vec<[f32; 3]> {
            (0..n)
                .map(|_| {
                    [
                        lo[0] + rng.random::<f32>() * ext[0],
                        lo[1] + rng.random::<f32>() * ext[1],
                        lo[2],
                    ]
                })
                .collect()
        };
        let uniform = patch(40_000, [0.0; 3], [300.0, 200.0]);
        let n = check_tiles(&uniform, 5_000);
        assert!(
            (8..=16).contains(&n),
            "{n} tiles of ≤ 5,000 for 40,000 points"
        );
        // Most points in one spot far smaller than a cell: cut through the points.
        let mut spot = patch(10_000, [0.0, 0.0, 1.0], [1000.0, 1000.0]);
        spot.extend(patch(20_000, [500.0, 500.0, 2.0], [0.1, 0.1]));
        check_tiles(&spot, 1_000);
        // A thin strip, and points all at one place (one tile, whatever the target).
        let strip = patch(5_000, [0.0; 3], [5000.0, 0.01]);
        check_tiles(&strip, 300);
        assert_eq!(check_tiles(&[[3.0, 4.0, 5.0]; 100], 10), 1);
    }

    #[test]
    fn votes_add_weighted_probabilities_to_their_rows() {
        let c = 2;
        let mut acc = vec![0f32; 20_000 * c];
        let mut weight = vec![0f32; 20_000];
        // Every third point, across several runs of members.
        let members: Vec<(u32, f32)> = (0..20_000u32)
            .step_by(3)
            .map(|i| (i, 0.5 + (i % 7) as f32 / 14.0))
            .collect();
        let probs: Vec<f32> = (0..members.len() * c).map(|v| v as f32).collect();
        vote(&mut acc, &mut weight, &members, &probs, c);
        vote(&mut acc, &mut weight, &members, &probs, c);
        for (i, (a, w)) in acc.chunks(c).zip(&weight).enumerate() {
            match members.binary_search_by_key(&(i as u32), |e| e.0) {
                Ok(j) => {
                    let wj = members[j].1;
                    assert_eq!(*w, 2.0 * wj);
                    for k in 0..c {
                        assert_eq!(a[k], 2.0 * wj * probs[j * c + k], "row {i}");
                    }
                }
                Err(_) => assert_eq!((a, *w), (&[0.0, 0.0][..], 0.0), "row {i}"),
            }
        }
    }

    #[test]
    fn cell_members_equal_a_scan_of_every_point() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        // A clustered cloud, a thin strip, and points all at one place.
        let clouds: Vec<Vec<[f32; 3]>> = vec![
            (0..20_000)
                .map(|i| {
                    let c = (i % 5) as f32 * 37.0;
                    [
                        c + rng.random::<f32>() * 20.0,
                        c * 0.5 + rng.random::<f32>() * 60.0,
                        rng.random::<f32>(),
                    ]
                })
                .collect(),
            (0..5_000)
                .map(|_| {
                    [
                        rng.random::<f32>() * 5000.0,
                        rng.random::<f32>() * 0.01,
                        0.0,
                    ]
                })
                .collect(),
            vec![[3.0, 4.0, 5.0]; 100],
        ];
        for pts in &clouds {
            let (lo, hi) = bounds(pts);
            let (lo, hi) = ([lo[0], lo[1]], [hi[0], hi[1]]);
            let cells = Cells::new(pts, lo, hi);
            for _ in 0..20 {
                let a = [0, 1].map(|d| lo[d] + rng.random::<f32>() * (hi[d] - lo[d]));
                let b = [0, 1].map(|d| lo[d] + rng.random::<f32>() * (hi[d] - lo[d]));
                let tile = Tile {
                    lo: [a[0].min(b[0]), a[1].min(b[1])],
                    hi: [a[0].max(b[0]), a[1].max(b[1])],
                    core: Core::Points(Vec::new()),
                };
                for margin in [0.0, 0.5, 8.6, 1e6] {
                    assert_eq!(
                        cells.members(&tile, margin),
                        members_by_scan(pts, &tile, margin),
                        "tile {:?}–{:?}, margin {margin}",
                        tile.lo,
                        tile.hi
                    );
                }
            }
        }
    }
}
