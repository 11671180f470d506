//! The whole network on the fused path.

use std::borrow::Cow;

use rayon::prelude::*;

use randla_geom::Pyramid;
use randla_geom::hint::prefetch;
use randla_geom::knn::morton_order;
use randla_model::{Batch, RandLaNetConfig, StateDict};

use crate::error::{Error, Result};
use crate::fold::{fc0, shared_mlp, split_columns, transposed_mlp};
use crate::kernels::{Dense, par_filled};
use crate::lfa::{Lfa, add_upsampled, decode, max_pool};

const SLOPE: f32 = 0.2;

/// RandLA-Net inference on the CPU, fused (see the crate documentation).
#[derive(Debug, Clone)]
pub struct FusedEngine {
    config: RandLaNetConfig,
    fc0: Dense,
    blocks: Vec<Lfa>,
    mlp: Dense,
    /// Per decoder layer: the skip half and the upsampled half of its convolution.
    decoder: Vec<(Dense, Dense)>,
    head: [Dense; 3],
}

impl FusedEngine {
    /// Checks `weights` against `config` and folds them.
    pub fn new(config: &RandLaNetConfig, weights: &StateDict) -> Result<Self> {
        config.validate()?;
        weights.check(config)?;
        let skips = config.skip_dims();
        let decoder = (0..config.num_layers)
            .map(|j| {
                let d = transposed_mlp(weights, &format!("decoder.{j}"))?;
                Ok(split_columns(&d, skips[skips.len() - j - 2]))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(FusedEngine {
            config: config.clone(),
            fc0: fc0(weights)?,
            blocks: (0..config.num_layers)
                .map(|i| Lfa::load(weights, i))
                .collect::<Result<_>>()?,
            mlp: shared_mlp(weights, "mlp", true)?,
            decoder,
            head: [
                shared_mlp(weights, "fc1.0", true)?,
                shared_mlp(weights, "fc1.1", true)?,
                shared_mlp(weights, "fc1.3", false)?,
            ],
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RandLaNetConfig {
        &self.config
    }

    /// Logits `[B, N, classes]` of a batch (validated first).
    pub fn forward(&self, batch: &Batch) -> Result<Vec<f32>> {
        batch.validate(&self.config)?;
        let (n0, c) = (batch.sizes[0], batch.channels);
        let classes = self.config.num_classes;
        let mut out = Vec::with_capacity(batch.batch_size * n0 * classes);
        for b in 0..batch.batch_size {
            let level = |l: usize| {
                let (n, next, k) = (batch.sizes[l], batch.sizes[l + 1], batch.k);
                Level {
                    n,
                    next,
                    xyz: &batch.coords[l][b * n * 3..(b + 1) * n * 3],
                    nb: &batch.neighbors[l][b * n * k..(b + 1) * n * k],
                    sub: &batch.sub_idx[l][b * next * k..(b + 1) * next * k],
                    up: &batch.interp_idx[l][b * n..(b + 1) * n],
                }
            };
            let levels: Vec<Level<'_>> = (0..batch.num_layers()).map(level).collect();
            out.extend(self.run(
                &batch.features[b * n0 * c..(b + 1) * n0 * c],
                &levels,
                batch.k,
                None,
                None,
                None,
            ));
        }
        Ok(out)
    }

    /// Logits `[N, classes]` of one crop: its `[N, in_channels]` features and its pyramid.
    pub fn forward_crop(&self, features: &[f32], pyramid: &Pyramid) -> Result<Vec<f32>> {
        self.forward_crop_inner(features, pyramid, None, None)
    }

    /// [`FusedEngine::forward_crop`] for one of several passes over the same points in other
    /// orders (test-time votes): `rows[i]` is the index, among `shared.points`, of the crop's
    /// row `i`. The first layer's output depends on the points and their neighbourhoods only, not
    /// on the order or the random sampling, so the first pass stores it in `shared` (by point) and
    /// the next passes reuse it instead of running `fc0` and `encoder.0` again. Every pass must
    /// have the same level-0 points and neighbourhoods.
    pub fn forward_crop_shared(
        &self,
        features: &[f32],
        pyramid: &Pyramid,
        rows: &[u32],
        shared: &mut SharedLevel0,
    ) -> Result<Vec<f32>> {
        let n = pyramid.level_sizes()[0];
        if rows.len() != n || rows.iter().any(|&b| b as usize >= shared.points) {
            return Err(Error::Input {
                what: "rows".into(),
                message: format!(
                    "{} rows for a crop of {n} points, each below {}",
                    rows.len(),
                    shared.points
                ),
            });
        }
        self.forward_crop_inner(features, pyramid, None, Some((rows, shared)))
    }

    fn forward_crop_inner(
        &self,
        features: &[f32],
        pyramid: &Pyramid,
        prof: Option<&mut Vec<Stage>>,
        shared: Option<(&[u32], &mut SharedLevel0)>,
    ) -> Result<Vec<f32>> {
        let cfg = &self.config;
        if pyramid.num_layers() != cfg.num_layers || pyramid.k() != cfg.num_neighbors {
            return Err(Error::Input {
                what: "pyramid".into(),
                message: format!(
                    "{} layers with k = {}, the model has num_layers = {} and num_neighbors = {}",
                    pyramid.num_layers(),
                    pyramid.k(),
                    cfg.num_layers,
                    cfg.num_neighbors
                ),
            });
        }
        let n = pyramid.level_sizes()[0];
        if features.len() != n * cfg.in_channels {
            return Err(Error::Input {
                what: "features".into(),
                message: format!(
                    "{} values for {n} points × in_channels = {}",
                    features.len(),
                    cfg.in_channels
                ),
            });
        }
        let levels: Vec<Level<'_>> = (0..cfg.num_layers)
            .map(|l| Level {
                n: pyramid.level_sizes()[l],
                next: pyramid.level_sizes()[l + 1],
                xyz: pyramid.coords(l).as_flattened(),
                nb: pyramid.neighbors(l),
                sub: pyramid.sub_idx(l),
                up: pyramid.interp_idx(l),
            })
            .collect();
        Ok(self.run(
            features,
            &levels,
            pyramid.k(),
            pyramid.spatial_order(),
            prof,
            shared,
        ))
    }

    fn run(
        &self,
        features: &[f32],
        levels: &[Level<'_>],
        k: usize,
        order: Option<&[u32]>,
        mut prof: Option<&mut Vec<Stage>>,
        mut shared: Option<(&[u32], &mut SharedLevel0)>,
    ) -> Vec<f32> {
        let profiling = prof.is_some();
        let mut monitor = profiling.then(|| randla_memory::MemoryMonitor::new("stage"));
        let mut mark = |name: String, points: usize, out: &[f32]| {
            if let (Some(p), Some(m)) = (prof.as_deref_mut(), monitor.take()) {
                let r = m.report();
                p.push(Stage {
                    name,
                    points,
                    seconds: r.wall_s,
                    output_bytes: out.len() * 4,
                    heap_peak_bytes: r.heap_peak_bytes,
                });
                monitor = Some(randla_memory::MemoryMonitor::new("stage"));
            }
        };
        let n0 = levels[0].n;
        // Lay every level out in Morton order so that neighbours sit near each other in memory.
        // A pass whose first layer an earlier pass left (`shared`) needs neither the features nor
        // level 0's coordinates and neighbours: those are not laid out.
        let level0_cached = shared.as_ref().is_some_and(|(_, s)| s.f0.is_some());
        let r = Reordered::new(
            features,
            self.config.in_channels,
            levels,
            k,
            order,
            !level0_cached,
        );
        let owned: Vec<Level<'_>> = (0..levels.len())
            .map(|l| Level {
                n: levels[l].n,
                next: levels[l].next,
                xyz: &r.xyz[l],
                nb: &r.nb[l],
                sub: &r.sub[l],
                up: &r.up[l],
            })
            .collect();
        let levels = &owned[..];
        mark("reorder".into(), n0, &r.features);
        // The first encoder layer's output, when an earlier pass over the same points left it.
        let c0 = 2 * self.blocks[0].d_out;
        let mut cached: Option<Vec<f32>> = shared.as_ref().and_then(|(rows, s)| {
            s.f0.as_ref().map(|f0| {
                const BLOCK: usize = 1024;
                par_filled(
                    n0 * c0,
                    BLOCK * c0,
                    || (),
                    |_, c, y| {
                        for (row, &p) in y.chunks_exact_mut(c0).zip(&r.perm0[c * BLOCK..]) {
                            let b = rows[p as usize] as usize;
                            row.copy_from_slice(&f0[b * c0..(b + 1) * c0]);
                        }
                    },
                )
            })
        });
        let mut x = if cached.is_some() {
            Vec::new()
        } else {
            self.fc0.apply(&r.features, n0, Some(SLOPE)) // [N0, 8]
        };
        mark("fc0".into(), n0, &x);
        let mut skips: Vec<Vec<f32>> = Vec::with_capacity(levels.len() + 1);
        for (l, (block, lv)) in self.blocks.iter().zip(levels).enumerate() {
            let y = match cached.take() {
                Some(y) => y,
                None => block.forward(&x, lv.xyz, lv.nb, lv.n, k), // [N_l, 2o]
            };
            if l == 0
                && let Some((rows, s)) = shared.as_mut()
                && s.f0.is_none()
            {
                let mut f0 = vec![0f32; s.points * c0];
                for (i, &p) in r.perm0.iter().enumerate() {
                    let b = rows[p as usize] as usize;
                    f0[b * c0..(b + 1) * c0].copy_from_slice(&y[i * c0..(i + 1) * c0]);
                }
                s.f0 = Some(f0);
            }
            mark(format!("encoder.{l}"), lv.n, &y);
            let c = 2 * block.d_out;
            let pooled = max_pool(&y, c, lv.sub, lv.next, k); // [N_{l+1}, 2o]
            mark(format!("random_sample.{l}"), lv.next, &pooled);
            if l == 0 {
                skips.push(y);
            }
            skips.push(pooled.clone());
            x = pooled;
        }
        let last = levels.len();
        x = self.mlp.apply(&x, levels[last - 1].next, Some(SLOPE)); // [N_L, C]
        mark("mlp".into(), levels[last - 1].next, &x);
        skips.pop();
        let layers = self.decoder.len();
        for (j, (skip_w, up_w)) in self.decoder.iter().enumerate().take(layers - 1) {
            let lv = &levels[last - 1 - j];
            let skip = skips.pop().expect("one skip per decoder layer");
            x = decode(skip_w, up_w, &skip, lv.n, &x, lv.next, lv.up); // [N_l, skip]
            mark(format!("decoder.{j}"), lv.n, &x);
        }
        // The last decoder layer and the head, block by block of rows.
        let skip = skips.pop().expect("one skip per decoder layer");
        let logits = self.decode_head(&skip, &x, &levels[0]); // [N0, classes]
        let logits = r.restore(logits, self.config.num_classes); // back to the input order
        mark(format!("decoder.{} + fc1", layers - 1), n0, &logits);
        logits
    }

    /// The last decoder layer and the head, `fc1.0` → `fc1.1` → `fc1.3`, block by block of
    /// rows so that the decoder's output and the head's 64- and 32-channel intermediates stay in
    /// cache: `skip [N0, S]` and `coarse [N1, C]` (upsampled through `lv.up`) → `[N0, classes]`.
    fn decode_head(&self, skip: &[f32], coarse: &[f32], lv: &Level<'_>) -> Vec<f32> {
        const ROWS: usize = 256;
        let (skip_w, up_w) = self.decoder.last().expect("at least one decoder layer");
        let [h0, h1, h2] = &self.head;
        let (s, d, classes) = (skip_w.inp, skip_w.out, h2.out);
        let yc = up_w.apply(coarse, lv.next, None); // [N1, d]
        par_filled(
            lv.n * classes,
            ROWS * classes,
            || {
                (
                    vec![0f32; ROWS * d],
                    vec![0f32; ROWS * h0.out],
                    vec![0f32; ROWS * h1.out],
                )
            },
            |(y, a, b), c, oc| {
                let rows = oc.len() / classes;
                let sc = &skip[c * ROWS * s..][..rows * s];
                let up = &lv.up[c * ROWS..][..rows];
                skip_w.apply_rows(sc, rows, y, None); // [rows, d]
                add_upsampled(&mut y[..rows * d], up, &yc, d);
                h0.apply_rows(&y[..rows * d], rows, a, Some(SLOPE)); // [rows, 64]
                h1.apply_rows(&a[..rows * h0.out], rows, b, Some(SLOPE)); // [rows, 32]
                h2.apply_rows(&b[..rows * h1.out], rows, oc, None); // [rows, classes]
            },
        )
    }

    /// Like [`FusedEngine::forward_crop`], also timing every stage of the network.
    pub fn forward_crop_profiled(
        &self,
        features: &[f32],
        pyramid: &Pyramid,
    ) -> Result<(Vec<f32>, Vec<Stage>)> {
        let mut stages = Vec::new();
        let logits = self.forward_crop_inner(features, pyramid, Some(&mut stages), None)?;
        Ok((logits, stages))
    }

    /// An upper estimate of the heap bytes one crop's forward holds at its peak, for level sizes
    /// `N_0 … N_L` (pyramid and input not included): the skip features, and at the busiest layer
    /// its per-point arrays plus the tile scratch of every thread.
    pub fn estimate_peak_bytes(&self, sizes: &[usize]) -> usize {
        let cfg = &self.config;
        let skips: usize = sizes[0] * 2 * cfg.dim_output[0]
            + (0..cfg.num_layers)
                .map(|l| sizes[l + 1] * 2 * cfg.dim_output[l])
                .sum::<usize>();
        let threads = rayon::current_num_threads();
        let layer = (0..cfg.num_layers)
            .map(|l| {
                let (o, d) = (cfg.dim_output[l], cfg.encoder_in_dims()[l]);
                sizes[l] * (d + 3 * o / 2 + 2 * o + 4 * o + 2 * o) + threads * 512 * 1024
            })
            .max()
            .unwrap_or(0);
        let head = sizes[0] * (2 * cfg.dim_output[0] + 64 + 32 + cfg.num_classes);
        4 * (skips + layer.max(head))
    }

    /// Class probabilities from logits (softmax per point), in place.
    pub fn softmax_in_place(logits: &mut [f32], classes: usize) {
        logits.par_chunks_mut(classes).for_each(|row| {
            let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let mut s = 0.0;
            row.iter_mut().for_each(|v| {
                *v = (*v - m).exp();
                s += *v;
            });
            row.iter_mut().for_each(|v| *v /= s);
        });
    }
}

/// The first encoder layer's output over a set of points, kept between passes over them in
/// other orders ([`FusedEngine::forward_crop_shared`]).
#[derive(Debug, Clone, Default)]
pub struct SharedLevel0 {
    /// Number of distinct points.
    pub points: usize,
    /// `[points, 2·d_out_0]`, once the first pass has run.
    f0: Option<Vec<f32>>,
}

impl SharedLevel0 {
    /// An empty store for `points` points.
    pub fn new(points: usize) -> Self {
        SharedLevel0 { points, f0: None }
    }

    /// Whether a pass has stored its first layer's output.
    pub fn is_filled(&self) -> bool {
        self.f0.is_some()
    }
}

/// Time spent in one stage of a forward.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// Stage name, after the reference's modules (`encoder.0`, `random_sample.0`, `decoder.2`,
    /// …; the last decoder layer and the head run as one stage, `decoder.3 + fc1`).
    pub name: String,
    /// Points the stage produced.
    pub points: usize,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Bytes of the stage's output tensor.
    pub output_bytes: usize,
    /// Peak live heap during the stage (whole process), when the counting allocator of
    /// `randla-memory` is installed.
    pub heap_peak_bytes: Option<u64>,
}

/// A crop's levels re-laid out in Morton order (indices remapped to match).
struct Reordered<'a> {
    perm0: Vec<u32>,
    /// `perm0` is the identity: the levels were laid out in space already and are borrowed.
    identity: bool,
    features: Cow<'a, [f32]>,
    xyz: Vec<Cow<'a, [f32]>>,
    nb: Vec<Cow<'a, [u32]>>,
    sub: Vec<Cow<'a, [u32]>>,
    up: Vec<Cow<'a, [u32]>>,
}

impl<'a> Reordered<'a> {
    /// Lays `features` and `levels` out in `order` (a spatially coherent permutation of level
    /// 0, checked by the pyramid that carried it), or in Morton order; without `level0`, the
    /// features and level 0's coordinates and neighbours are left empty (a pass that does not
    /// run the first layer).
    fn new(
        features: &'a [f32],
        channels: usize,
        levels: &[Level<'a>],
        k: usize,
        order: Option<&[u32]>,
        level0: bool,
    ) -> Self {
        let layers = levels.len();
        let n0 = levels.first().map_or(0, |l| l.n);
        // A crop laid out in space already (the pyramid's spatial order is the identity, see
        // `PyramidConfig::level_runs_along`) is used as it is.
        if let Some(o) = order
            && o.len() == n0
            && o.iter().enumerate().all(|(i, &v)| v as usize == i)
        {
            return Reordered {
                perm0: o.to_vec(),
                identity: true,
                features: Cow::Borrowed(features),
                xyz: levels.iter().map(|l| Cow::Borrowed(l.xyz)).collect(),
                nb: levels.iter().map(|l| Cow::Borrowed(l.nb)).collect(),
                sub: levels.iter().map(|l| Cow::Borrowed(l.sub)).collect(),
                up: levels.iter().map(|l| Cow::Borrowed(l.up)).collect(),
            };
        }
        // Every level of a pyramid is a prefix of level 0, so its Morton order is level 0's with
        // the points beyond it left out: one sort per crop instead of one per level. (Any
        // permutation gives the same outputs; this one keeps each level's neighbours near each
        // other in memory.)
        let perm0 = match order {
            Some(o) if o.len() == n0 => o.to_vec(),
            _ => {
                let pts0: Vec<[f32; 3]> = levels.first().map_or(Vec::new(), |l| {
                    l.xyz[..n0 * 3]
                        .chunks_exact(3)
                        .map(|c| [c[0], c[1], c[2]])
                        .collect()
                });
                morton_order(&pts0)
            }
        };
        let perms: Vec<Vec<u32>> = (0..=layers)
            .map(|l| {
                let n = if l < layers {
                    levels[l].n
                } else {
                    levels[l - 1].next
                };
                if n == n0 {
                    perm0.clone()
                } else {
                    perm0
                        .iter()
                        .copied()
                        .filter(|&i| (i as usize) < n)
                        .collect()
                }
            })
            .collect();
        let invs: Vec<Vec<u32>> = perms
            .iter()
            .map(|p| {
                let mut inv = vec![0u32; p.len()];
                for (i, &o) in p.iter().enumerate() {
                    inv[o as usize] = i as u32;
                }
                inv
            })
            .collect();
        let remap_rows = |src: &[u32], perm: &[u32], inv: &[u32], width: usize| {
            gather_rows(src, perm, width, |v| inv[v as usize])
        };
        let wanted = |l: usize| l > 0 || level0;
        Reordered {
            identity: false,
            features: Cow::Owned(if level0 {
                gather_rows(features, &perms[0], channels, |v| v)
            } else {
                Vec::new()
            }),
            xyz: (0..layers)
                .map(|l| {
                    Cow::Owned(if wanted(l) {
                        gather_rows(levels[l].xyz, &perms[l], 3, |v| v)
                    } else {
                        Vec::new()
                    })
                })
                .collect(),
            nb: (0..layers)
                .map(|l| {
                    Cow::Owned(if wanted(l) {
                        remap_rows(levels[l].nb, &perms[l], &invs[l], k)
                    } else {
                        Vec::new()
                    })
                })
                .collect(),
            sub: (0..layers)
                .map(|l| Cow::Owned(remap_rows(levels[l].sub, &perms[l + 1], &invs[l], k)))
                .collect(),
            up: (0..layers)
                .map(|l| Cow::Owned(remap_rows(levels[l].up, &perms[l], &invs[l + 1], 1)))
                .collect(),
            perm0: perms.into_iter().next().unwrap_or_default(),
        }
    }

    /// Rows of `x` (in the laid-out order) back in the input order.
    fn restore(&self, x: Vec<f32>, width: usize) -> Vec<f32> {
        if self.identity {
            return x;
        }
        let mut out = vec![0f32; x.len()];
        for (i, &o) in self.perm0.iter().enumerate() {
            out[o as usize * width..(o as usize + 1) * width]
                .copy_from_slice(&x[i * width..(i + 1) * width]);
        }
        out
    }
}

/// Rows `perm[0], perm[1], …` of the `[_, width]` table `src`, each value passed through `map`.
/// The rows are scattered over the whole table (the level-0 neighbour table is larger than the
/// L3), so each loop asks for the row [`AHEAD`] rows on while it copies this one.
fn gather_rows<T, U>(src: &[T], perm: &[u32], width: usize, map: impl Fn(T) -> U + Sync) -> Vec<U>
where
    T: Copy + Sync,
    U: Copy + Default + Send,
{
    const BLOCK: usize = 1024;
    par_filled(
        perm.len() * width,
        BLOCK * width,
        || (),
        |_, c, rows| {
            let perm = &perm[c * BLOCK..][..rows.len() / width];
            for (i, (row, &o)) in rows.chunks_exact_mut(width).zip(perm).enumerate() {
                if let Some(&next) = perm.get(i + AHEAD) {
                    prefetch(src, next as usize * width);
                }
                for (d, &v) in row.iter_mut().zip(&src[o as usize * width..][..width]) {
                    *d = map(v);
                }
            }
        },
    )
}

/// How many rows ahead [`gather_rows`] prefetches.
const AHEAD: usize = 16;

struct Level<'a> {
    n: usize,
    next: usize,
    xyz: &'a [f32],
    nb: &'a [u32],
    sub: &'a [u32],
    up: &'a [u32],
}
