//! The per-layer index pyramid of one crop, exactly as the reference `tf_map` builds it.
//!
//! For a crop of `N_0` points in shuffled order and sub-sampling ratios `r_0 … r_{L-1}`:
//! `N_{l+1} = N_l / r_l` (integer division), level `l + 1` is the *prefix* of level `l` (random
//! sampling is the prefix of a shuffled crop), and for each layer `l`:
//! - `neighbors(l)`: `[N_l, K]`, the K nearest level-`l` points of every level-`l` point (self
//!   included);
//! - `sub_idx(l)`: `[N_{l+1}, K]`, the first `N_{l+1}` rows of `neighbors(l)`, the pooling
//!   neighbourhoods of the points kept;
//! - `interp_idx(l)`: `[N_l]`, the nearest level-`l + 1` point of every level-`l` point, for
//!   nearest upsampling in the decoder.
//!
//! `sub_idx` is a view, not a copy, so a pyramid holds `Σ N_l · (K + 1)` indices: O(N·K).

use rayon::prelude::*;

use crate::error::{Error, Result, check_finite, check_permutation};
use crate::knn::KdTree;

/// What a pyramid is built with: neighbours per point and one sub-sampling ratio per layer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PyramidConfig {
    /// Neighbours per point (the reference's `num_neighbors`/`k_n`, 16).
    pub k: usize,
    /// Sub-sampling ratio of each layer (the reference's `sub_sampling_ratio`, `[4, 4, 4, 4]`).
    pub ratios: Vec<usize>,
}

impl Default for PyramidConfig {
    /// The paper's SemanticKITTI setting: k = 16, four layers of ratio 4.
    fn default() -> Self {
        PyramidConfig {
            k: 16,
            ratios: vec![4, 4, 4, 4],
        }
    }
}

impl PyramidConfig {
    /// The point count of every level, `N_0 … N_L`, for a crop of `n` points.
    pub fn level_sizes(&self, n: usize) -> Vec<usize> {
        let mut sizes = vec![n];
        for &r in &self.ratios {
            let last = *sizes.last().unwrap_or(&0);
            sizes.push(last / r.max(1));
        }
        sizes
    }

    /// A spatially coherent order of a crop in sampling order that keeps its levels: `curve`
    /// lists the crop's positions along a space-filling curve (such as the Morton order
    /// [`crate::sampling::stratified_order_with_curve`] returns); the result lists, in curve
    /// order, the positions `0..N_L` (the deepest level), then `N_L..N_{L-1}`, and so on to
    /// `N_1..N_0`. Each run keeps its place, so the crop reordered so has the same levels (every
    /// level the same points, still a prefix of the one below), and each level is a few runs of
    /// nearby points: a pyramid built on it can be used as it is laid out
    /// ([`Pyramid::with_spatial_order`] with the identity), without gathering every level into
    /// Morton order first.
    pub fn level_runs_along(&self, curve: &[u32]) -> Result<Vec<u32>> {
        let n = curve.len();
        check_permutation(
            curve,
            "curve",
            "must be a permutation of the crop's positions",
        )?;
        let sizes = self.level_sizes(n);
        // Run r holds the positions p with sizes[r + 1] <= p < sizes[r] (the last run, r = L,
        // those below sizes[L]); each fills its own range in curve order.
        let mut cursor: Vec<usize> = sizes[1..].to_vec();
        cursor.push(0);
        let mut out = vec![0u32; n];
        for &p in curve {
            // The deepest level that holds p (sizes decrease).
            let r = sizes.iter().rposition(|&s| (p as usize) < s).unwrap_or(0);
            out[cursor[r]] = p;
            cursor[r] += 1;
        }
        Ok(out)
    }

    /// Checks the configuration against a crop of `n` points.
    pub fn validate(&self, n: usize) -> Result<()> {
        if self.k == 0 {
            return Err(Error::ZeroK);
        }
        if self.ratios.is_empty() {
            return Err(Error::InvalidParameter {
                name: "sub-sampling ratios",
                value: "[]".into(),
                reason: "at least one layer is needed",
            });
        }
        if let Some(r) = self.ratios.iter().find(|&&r| r < 1) {
            return Err(Error::InvalidParameter {
                name: "sub-sampling ratio",
                value: r.to_string(),
                reason: "ratios must be at least 1",
            });
        }
        if n == 0 {
            return Err(Error::Empty { what: "crop" });
        }
        let sizes = self.level_sizes(n);
        for (l, &s) in sizes[..self.ratios.len()].iter().enumerate() {
            if s < self.k {
                return Err(Error::TooFewPoints {
                    what: format!("pyramid level {l}"),
                    points: s,
                    k: self.k,
                });
            }
        }
        let last = sizes[self.ratios.len()];
        if last == 0 {
            return Err(Error::TooFewPoints {
                what: format!(
                    "pyramid level {} (after sub-sampling by {:?})",
                    self.ratios.len(),
                    self.ratios
                ),
                points: 0,
                k: 1,
            });
        }
        Ok(())
    }
}

/// The nearest of the first `m` points for every point of `level` (the upsampling indices), from
/// the level's own K nearest neighbours where they hold one of those points, else from `tree`
/// (built over the first `m` points).
///
/// Exact: level `l + 1` is a prefix of level `l`, so when a point's K nearest level-`l` points
/// include prefix points, the nearest of them (by the tree's own f32 distance, ties to the smaller
/// index) is its nearest prefix point — a nearer one would be among its K nearest. With ratio 4
/// and K = 16 only about (3/4)^16 ≈ 1 % of the points need the tree.
fn nearest_in_prefix(
    level: &[[f32; 3]],
    neighbors: &[u32],
    k: usize,
    m: usize,
    tree: &KdTree,
) -> Result<Vec<u32>> {
    const NONE: u32 = u32::MAX;
    let mut out = vec![NONE; level.len()];
    #[cfg(target_arch = "x86_64")]
    if k == 16
        && level.len() < (i32::MAX / 3) as usize
        && std::arch::is_x86_feature_detected!("avx512f")
    {
        assert!(m <= level.len());
        out.par_chunks_mut(1024).enumerate().for_each(|(c, chunk)| {
            for (r, o) in chunk.iter_mut().enumerate() {
                let i = c * 1024 + r;
                // SAFETY: AVX-512F was detected; the row (bounds-checked slice) has 16 entries;
                // `m` ≤ the level's points (asserted above), whose `3 · index` fits the gathers'
                // i32 offsets.
                *o = unsafe { nearest_in_prefix_k16(level, &neighbors[i * 16..][..16], i, m) };
            }
        });
    } else {
        nearest_in_prefix_rows(level, neighbors, k, m, &mut out);
    }
    #[cfg(not(target_arch = "x86_64"))]
    nearest_in_prefix_rows(level, neighbors, k, m, &mut out);
    // The tree queries them in its own spatially coherent (Morton) order.
    let missing: Vec<u32> = (0..level.len() as u32)
        .filter(|&i| out[i as usize] == NONE)
        .collect();
    if !missing.is_empty() {
        let queries: Vec<[f32; 3]> = missing.iter().map(|&i| level[i as usize]).collect();
        let found = tree.knn_indices(&queries, 1)?;
        for (&i, &j) in missing.iter().zip(&found) {
            out[i as usize] = j;
        }
    }
    Ok(out)
}

/// [`nearest_in_prefix`]'s first step for any K: each row's nearest neighbour below `m` (by the
/// tree's f32 distance, ties to the smaller index), or `u32::MAX` where the row has none.
fn nearest_in_prefix_rows(
    level: &[[f32; 3]],
    neighbors: &[u32],
    k: usize,
    m: usize,
    out: &mut [u32],
) {
    const NONE: u32 = u32::MAX;
    out.par_chunks_mut(1024).enumerate().for_each(|(c, chunk)| {
        for (r, o) in chunk.iter_mut().enumerate() {
            let i = c * 1024 + r;
            let q = level[i];
            let mut best = (f32::INFINITY, NONE);
            for &j in &neighbors[i * k..(i + 1) * k] {
                if (j as usize) < m {
                    let p = level[j as usize];
                    let (dx, dy, dz) = (q[0] - p[0], q[1] - p[1], q[2] - p[2]);
                    let d = dx * dx + dy * dy + dz * dz;
                    if d < best.0 || (d == best.0 && j < best.1) {
                        best = (d, j);
                    }
                }
            }
            *o = best.1;
        }
    });
}

/// [`nearest_in_prefix_rows`] for one row of K = 16 in AVX-512 registers, without branches: the
/// prefix neighbours' coordinates gathered, their distances by the same f32 expression, and the
/// smallest `distance bits << 32 | index` key (distances are non-negative, so their bits order
/// like them; ties go to the smaller index). `u32::MAX` when no neighbour is below `m`.
///
/// # Safety
/// The CPU must support AVX-512F; `row` has 16 entries, `m ≤ level.len()` and
/// `3 · level.len()` fits an `i32` (only entries below `m` are read through).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn nearest_in_prefix_k16(level: &[[f32; 3]], row: &[u32], i: usize, m: usize) -> u32 {
    use std::arch::x86_64::*;
    debug_assert!(row.len() == 16 && i < level.len());
    let q = level[i];
    let base = level.as_ptr().cast::<f32>();
    // SAFETY: 16 indices from the row (16 entries); the gathers read only the lanes whose
    // entry is below `m` ≤ `level.len()`, so coordinates of points of `level`.
    unsafe {
        let nb = _mm512_loadu_si512(row.as_ptr().cast());
        let below = _mm512_cmplt_epu32_mask(nb, _mm512_set1_epi32(m.min(u32::MAX as usize) as i32));
        if below == 0 {
            return u32::MAX;
        }
        let at = _mm512_mullo_epi32(nb, _mm512_set1_epi32(3));
        let zero = _mm512_setzero_ps();
        let x = _mm512_mask_i32gather_ps::<4>(zero, below, at, base);
        let y = _mm512_mask_i32gather_ps::<4>(zero, below, at, base.add(1));
        let z = _mm512_mask_i32gather_ps::<4>(zero, below, at, base.add(2));
        let dx = _mm512_sub_ps(_mm512_set1_ps(q[0]), x);
        let dy = _mm512_sub_ps(_mm512_set1_ps(q[1]), y);
        let dz = _mm512_sub_ps(_mm512_set1_ps(q[2]), z);
        // Exactly ((dx·dx + dy·dy) + dz·dz), rounded after every step, as the tree computes.
        let d = _mm512_add_ps(
            _mm512_add_ps(_mm512_mul_ps(dx, dx), _mm512_mul_ps(dy, dy)),
            _mm512_mul_ps(dz, dz),
        );
        // Keys: distance bits above the index; lanes at or above `m` out of the running.
        let bits = _mm512_castps_si512(d);
        let lo_keys = _mm512_or_si512(
            _mm512_slli_epi64::<32>(_mm512_cvtepu32_epi64(_mm512_castsi512_si256(bits))),
            _mm512_cvtepu32_epi64(_mm512_castsi512_si256(nb)),
        );
        let hi_keys = _mm512_or_si512(
            _mm512_slli_epi64::<32>(_mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64::<1>(bits))),
            _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64::<1>(nb)),
        );
        let none = _mm512_set1_epi64(-1);
        let lo_keys = _mm512_mask_mov_epi64(none, below as u8, lo_keys);
        let hi_keys = _mm512_mask_mov_epi64(none, (below >> 8) as u8, hi_keys);
        let key = _mm512_reduce_min_epu64(_mm512_min_epu64(lo_keys, hi_keys));
        key as u32
    }
}

/// The index pyramid of one crop (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Pyramid {
    k: usize,
    coords: Vec<[f32; 3]>,
    sizes: Vec<usize>,
    neighbors: Vec<Vec<u32>>,
    interp: Vec<Vec<u32>>,
    /// A spatially coherent order of level 0, when the caller knows one.
    spatial: Option<Vec<u32>>,
}

impl Pyramid {
    /// Builds the pyramid of a crop whose points are already in (shuffled) sampling order.
    pub fn build(points: &[[f32; 3]], config: &PyramidConfig) -> Result<Self> {
        Self::build_inner(points, config, None)
    }

    /// [`Pyramid::build`] with the level-0 neighbours already known (`[N_0, K]`, e.g. those of
    /// the same points in another order, remapped): the level-0 KNN, the largest part of a
    /// pyramid, is not run again. The rows must be each point's exact K nearest points (in any
    /// order); the upsampling indices are derived from them.
    pub fn build_with_level0(
        points: &[[f32; 3]],
        config: &PyramidConfig,
        neighbors0: Vec<u32>,
    ) -> Result<Self> {
        if neighbors0.len() != points.len() * config.k {
            return Err(Error::InvalidParameter {
                name: "level-0 neighbours",
                value: neighbors0.len().to_string(),
                reason: "must hold K indices per point",
            });
        }
        if let Some(&i) = neighbors0.iter().find(|&&i| i as usize >= points.len()) {
            return Err(Error::InvalidParameter {
                name: "level-0 neighbour index",
                value: i.to_string(),
                reason: "must be below the number of points",
            });
        }
        Self::build_inner(points, config, Some(neighbors0))
    }

    fn build_inner(
        points: &[[f32; 3]],
        config: &PyramidConfig,
        neighbors0: Option<Vec<u32>>,
    ) -> Result<Self> {
        config.validate(points.len())?;
        check_finite(points)?;
        let sizes = config.level_sizes(points.len());
        let layers = config.ratios.len();
        let mut nb = match neighbors0 {
            Some(nb) => nb,
            None => KdTree::build(points)?.knn_self_indices(config.k)?,
        };
        let mut neighbors = Vec::with_capacity(layers);
        let mut interp = Vec::with_capacity(layers);
        for l in 0..layers {
            let next = KdTree::build(&points[..sizes[l + 1]])?;
            let level = &points[..sizes[l]];
            interp.push(nearest_in_prefix(
                level,
                &nb,
                config.k,
                sizes[l + 1],
                &next,
            )?);
            // The next level's neighbours, from the tree just built (the last level has none).
            let next_nb = if l + 1 < layers {
                next.knn_self_indices(config.k)?
            } else {
                Vec::new()
            };
            neighbors.push(std::mem::replace(&mut nb, next_nb));
        }
        Ok(Pyramid {
            k: config.k,
            coords: points.to_vec(),
            sizes,
            neighbors,
            interp,
            spatial: None,
        })
    }

    /// This pyramid with a spatially coherent order of its level-0 points attached (a
    /// permutation of `0..N_0` listing nearby points next to each other, such as the Morton
    /// order [`crate::sampling::stratified_order_with_curve`] returns): a consumer that lays
    /// the crop out in space, as the fused engine does, takes it instead of sorting again.
    pub fn with_spatial_order(mut self, order: Vec<u32>) -> Result<Self> {
        if order.len() != self.sizes[0] {
            return Err(Error::InvalidParameter {
                name: "spatial order",
                value: format!("{} entries", order.len()),
                reason: "must list every level-0 point once",
            });
        }
        check_permutation(
            &order,
            "spatial order",
            "must be a permutation of the level-0 points",
        )?;
        self.spatial = Some(order);
        Ok(self)
    }

    /// The spatial order of level 0 attached by [`Pyramid::with_spatial_order`], if any.
    pub fn spatial_order(&self) -> Option<&[u32]> {
        self.spatial.as_deref()
    }

    /// Neighbours per point.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of layers `L`.
    pub fn num_layers(&self) -> usize {
        self.neighbors.len()
    }

    /// `N_0 … N_L`: the point count of every level (one more than the layers).
    pub fn level_sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// `[N_l, 3]` coordinates of level `l` (a prefix of the crop).
    pub fn coords(&self, l: usize) -> &[[f32; 3]] {
        &self.coords[..self.sizes[l]]
    }

    /// `[N_l, K]` neighbour indices of layer `l`.
    pub fn neighbors(&self, l: usize) -> &[u32] {
        &self.neighbors[l]
    }

    /// `[N_{l+1}, K]` pooling indices of layer `l` (the first rows of `neighbors(l)`).
    pub fn sub_idx(&self, l: usize) -> &[u32] {
        &self.neighbors[l][..self.sizes[l + 1] * self.k]
    }

    /// `[N_l]` nearest level-`l + 1` point of every level-`l` point.
    pub fn interp_idx(&self, l: usize) -> &[u32] {
        &self.interp[l]
    }

    /// Bytes held on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.coords.len() * 12
            + self.neighbors.iter().map(|v| v.len() * 4).sum::<usize>()
            + self.interp.iter().map(|v| v.len() * 4).sum::<usize>()
            + self.spatial.as_ref().map_or(0, |v| v.len() * 4)
            + self.sizes.len() * 8
    }

    /// The bytes a pyramid of `n` points will hold, known before building it.
    pub fn estimate_bytes(n: usize, config: &PyramidConfig) -> usize {
        let sizes = config.level_sizes(n);
        n * 12
            + sizes[..config.ratios.len()]
                .iter()
                .map(|s| s * (config.k + 1) * 4)
                .sum::<usize>()
            + sizes.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(n: usize) -> Vec<[f32; 3]> {
        // A shuffled-looking deterministic order of a jittered grid.
        (0..n)
            .map(|i| {
                let j = (i * 7919) % n;
                [
                    (j % 32) as f32 + (j as f32 * 0.37).sin() * 0.1,
                    (j / 32) as f32,
                    (j as f32 * 0.11).cos(),
                ]
            })
            .collect()
    }

    /// The vector row kernel equals the scalar rows on ties (an integer lattice with
    /// duplicates: many equal distances) and on rows with no prefix point.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_prefix_rows_equal_the_scalar_ones() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        let mut pts: Vec<[f32; 3]> = (0..600)
            .map(|i| [(i % 10) as f32, ((i / 10) % 10) as f32, (i / 100) as f32])
            .collect();
        pts.extend_from_within(40..140);
        let n = pts.len();
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        // Rows of random points, near ones first: ties among the prefix points are common.
        let rows: Vec<u32> = (0..n * 16).map(|_| (next() % n as u64) as u32).collect();
        for m in [0, 1, 37, 175, 600, n] {
            let mut want = vec![u32::MAX; n];
            nearest_in_prefix_rows(&pts, &rows, 16, m, &mut want);
            for i in 0..n {
                // SAFETY: AVX-512F is present (checked above); rows index into `pts`.
                let got = unsafe { nearest_in_prefix_k16(&pts, &rows[i * 16..][..16], i, m) };
                assert_eq!(got, want[i], "m = {m}, row {i}");
            }
        }
    }

    #[test]
    fn shapes_follow_tf_map() {
        let pts = grid(4096);
        let p = Pyramid::build(&pts, &PyramidConfig::default()).unwrap();
        assert_eq!(p.level_sizes(), &[4096, 1024, 256, 64, 16]);
        for l in 0..4 {
            assert_eq!(p.neighbors(l).len(), p.level_sizes()[l] * 16);
            assert_eq!(p.sub_idx(l).len(), p.level_sizes()[l + 1] * 16);
            assert_eq!(p.interp_idx(l).len(), p.level_sizes()[l]);
        }
        assert_eq!(
            p.heap_bytes(),
            Pyramid::estimate_bytes(4096, &PyramidConfig::default())
        );
    }

    #[test]
    fn upsampling_indices_equal_a_tree_query_for_every_point() {
        // Clustered points with exact duplicates, so that ties and sparse spots both occur.
        let mut pts = grid(6000);
        for i in (0..6000).step_by(7) {
            pts[i] = pts[(i * 13) % 6000];
        }
        for i in 0..300 {
            pts[i][2] += 40.0; // a far cluster, whose points find few sampled neighbours
        }
        for cfg in [
            PyramidConfig::default(),
            PyramidConfig {
                k: 4,
                ratios: vec![8, 2, 3],
            },
        ] {
            let p = Pyramid::build(&pts, &cfg).unwrap();
            for l in 0..p.num_layers() {
                let sizes = p.level_sizes();
                let tree = KdTree::build(&pts[..sizes[l + 1]]).unwrap();
                let want = tree.knn_indices(&pts[..sizes[l]], 1).unwrap();
                assert_eq!(p.interp_idx(l), &want[..], "level {l} of {cfg:?}");
            }
        }
    }

    #[test]
    fn known_level0_neighbours_give_the_same_pyramid() {
        let pts = grid(4096);
        let cfg = PyramidConfig::default();
        let full = Pyramid::build(&pts, &cfg).unwrap();
        let reused = Pyramid::build_with_level0(&pts, &cfg, full.neighbors(0).to_vec()).unwrap();
        assert_eq!(full, reused);
        assert!(Pyramid::build_with_level0(&pts, &cfg, vec![0; 5]).is_err());
        let mut bad = full.neighbors(0).to_vec();
        bad[3] = 4096;
        assert!(Pyramid::build_with_level0(&pts, &cfg, bad).is_err());
    }

    #[test]
    fn level_runs_keep_every_level_and_follow_the_curve() {
        let cfg = PyramidConfig {
            k: 4,
            ratios: vec![4, 3, 2],
        };
        let n = 1001;
        // A scrambled curve: rank r visits position (r · 389) mod n.
        let curve: Vec<u32> = (0..n).map(|r| ((r * 389) % n) as u32).collect();
        let runs = cfg.level_runs_along(&curve).unwrap();
        let sizes = cfg.level_sizes(n);
        let rank = |p: u32| curve.iter().position(|&c| c == p).unwrap();
        for l in 0..sizes.len() {
            let mut level: Vec<u32> = runs[..sizes[l]].to_vec();
            level.sort_unstable();
            assert_eq!(level, (0..sizes[l] as u32).collect::<Vec<_>>(), "level {l}");
            // Within the run of the points new at this level, curve order.
            let from = sizes.get(l + 1).copied().unwrap_or(0);
            let ranks: Vec<usize> = runs[from..sizes[l]].iter().map(|&p| rank(p)).collect();
            assert!(ranks.windows(2).all(|w| w[0] < w[1]), "run of level {l}");
        }
        assert!(cfg.level_runs_along(&[0, 0, 1]).is_err());
    }

    #[test]
    fn too_small_crops_are_refused() {
        let pts = grid(100);
        let err = Pyramid::build(&pts, &PyramidConfig::default()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::TooFewPoints {
                    points: 6,
                    k: 16,
                    ..
                }
            ),
            "{err}"
        );
        let cfg = PyramidConfig {
            k: 0,
            ratios: vec![2],
        };
        assert_eq!(Pyramid::build(&pts, &cfg).unwrap_err(), Error::ZeroK);
        let cfg = PyramidConfig {
            k: 4,
            ratios: vec![],
        };
        assert!(Pyramid::build(&pts, &cfg).is_err());
        let cfg = PyramidConfig {
            k: 4,
            ratios: vec![200],
        };
        assert!(Pyramid::build(&pts, &cfg).is_err());
        assert!(Pyramid::build(&[], &PyramidConfig::default()).is_err());
    }
}
