//! Voxel-grid subsampling, as the reference's `grid_subsampling.cpp`.
//!
//! The grid origin is `floor(min / cell) * cell`; each occupied voxel gives one point: the
//! barycentre of its points, the mean of their features and their majority label (the smallest
//! label wins a tie). Unlike the reference, whose output order follows a hash map's iteration,
//! the output is sorted by voxel id, so it is deterministic.

use rayon::prelude::*;

use crate::error::{Error, Result, check_finite, first_non_finite};
use crate::knn::{SharedOut, bounds};

/// The result of [`grid_subsample`].
#[derive(Debug, Clone, PartialEq)]
pub struct GridSubsampled {
    /// `[M, 3]` voxel barycentres.
    pub points: Vec<[f32; 3]>,
    /// `[M, channels]` mean features, row-major.
    pub features: Vec<f32>,
    /// Feature channels per point.
    pub channels: usize,
    /// `[M]` majority label of each voxel, when labels were given.
    pub labels: Option<Vec<u32>>,
    /// `[N]` for every input point, the index of its voxel's point in `points`.
    pub proj: Vec<u32>,
}

impl GridSubsampled {
    /// Number of subsampled points.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// True when no point survived (never, for a non-empty input).
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

/// The voxel of a point, as integer coordinates, for a grid of cell `cell` anchored at `origin`.
#[inline]
pub fn voxel_of(p: [f32; 3], origin: [f64; 3], cell: f64) -> [u64; 3] {
    // `as u64` truncates towards zero and saturates (negative and NaN → 0): for every value the
    // same as `floor().max(0.0) as u64`, without a call to libm's `floor` per coordinate (the
    // baseline x86-64 target has no rounding instruction).
    std::array::from_fn(|d| ((p[d] as f64 - origin[d]) / cell) as u64)
}

/// The grid origin the reference uses: `floor(min / cell) * cell`, per axis.
pub fn grid_origin(points: &[[f32; 3]], cell: f64) -> [f64; 3] {
    origin_below(bounds(points).0, cell)
}

/// [`grid_origin`] from the points' per-axis minimum.
fn origin_below(min: [f32; 3], cell: f64) -> [f64; 3] {
    std::array::from_fn(|d| (min[d] as f64 / cell).floor() * cell)
}

/// How many sorted points ahead the barycentre loop asks for their coordinates and features: on
/// the 10 M-point IGN cloud (1.4 points a voxel, each voxel's points far apart in the file) the
/// loop took 0.31 s without, 0.25 s with 24 and 0.24 s with 64.
const AHEAD: usize = 64;

/// Subsamples `points` on a voxel grid of edge `cell`.
///
/// `features` is `[N, channels]` row-major (empty with `channels == 0`); `labels`, when given, has
/// one label per point.
pub fn grid_subsample(
    points: &[[f32; 3]],
    features: &[f32],
    channels: usize,
    labels: Option<&[u32]>,
    cell: f32,
) -> Result<GridSubsampled> {
    let n = points.len();
    if n == 0 {
        return Err(Error::Empty {
            what: "point cloud",
        });
    }
    if u32::try_from(n).is_err() {
        return Err(Error::InvalidParameter {
            name: "point count",
            value: n.to_string(),
            reason: "points are indexed with 32 bits: at most 4,294,967,295",
        });
    }
    if !(cell.is_finite() && cell > 0.0) {
        return Err(Error::InvalidParameter {
            name: "grid size",
            value: cell.to_string(),
            reason: "must be a finite positive length",
        });
    }
    if features.len() != n * channels {
        return Err(Error::LengthMismatch {
            what: "features (points × channels)",
            expected: n * channels,
            actual: features.len(),
        });
    }
    if let Some(l) = labels
        && l.len() != n
    {
        return Err(Error::LengthMismatch {
            what: "labels",
            expected: n,
            actual: l.len(),
        });
    }
    check_finite(points)?;
    if let Some(i) = first_non_finite(features) {
        return Err(Error::NonFiniteFeature {
            index: i / channels,
            column: i % channels,
            value: features[i],
        });
    }
    let cell = cell as f64;
    let (min, max) = bounds(points);
    let origin = origin_below(min, cell);
    let dims_f: [f64; 3] =
        std::array::from_fn(|d| ((max[d] as f64 - origin[d]) / cell).floor() + 1.0);
    if dims_f.iter().product::<f64>() >= 2f64.powi(63) {
        return Err(Error::InvalidParameter {
            name: "grid size",
            value: format!(
                "{cell} (grid of {} × {} × {} voxels)",
                dims_f[0], dims_f[1], dims_f[2]
            ),
            reason: "too fine for the cloud's extent: the voxel ids overflow 64 bits",
        });
    }
    let dims: [u64; 3] = std::array::from_fn(|d| dims_f[d] as u64);
    let nxy = dims[0] * dims[1];

    let voxel = |p: [f32; 3]| {
        let v = voxel_of(p, origin, cell);
        v[0].min(dims[0] - 1) + dims[0] * v[1].min(dims[1] - 1) + nxy * v[2].min(dims[2] - 1)
    };
    // The points sorted by voxel (ties by index), and where each voxel's run starts (u32:
    // point indices are u32 already).
    let (order, starts) = if nxy.saturating_mul(dims[2]) <= 1 << 32 {
        // Voxel ids fit 32 bits: one u64 key per point, voxel above index (8 bytes a point).
        let mut keys: Vec<u64> = points
            .par_iter()
            .enumerate()
            .map(|(i, &p)| (voxel(p) << 32) | i as u64)
            .collect();
        keys.par_sort_unstable();
        let starts = run_starts(n, |i| keys[i] >> 32 != keys[i - 1] >> 32);
        (keys.par_iter().map(|&k| k as u32).collect(), starts)
    } else {
        let mut keyed: Vec<(u64, u32)> = points
            .par_iter()
            .enumerate()
            .map(|(i, &p)| (voxel(p), i as u32))
            .collect();
        keyed.par_sort_unstable();
        let starts = run_starts(n, |i| keyed[i].0 != keyed[i - 1].0);
        (keyed.par_iter().map(|k| k.1).collect::<Vec<u32>>(), starts)
    };
    let m = starts.len() - 1;

    // Every voxel's barycentre, mean features and label, written in place (no per-voxel
    // allocation), in parallel blocks of voxels.
    const BLOCK: usize = 4096;
    let mut out_points = vec![[0f32; 3]; m];
    // One row per voxel even with no channels (rows of width 1, cut off below): the blocks of
    // points and of features are zipped, and an empty feature buffer has no blocks at all.
    let mut out_features = vec![0f32; m * channels.max(1)];
    let mut out_labels = vec![0u32; if labels.is_some() { m } else { 0 }];
    out_points
        .par_chunks_mut(BLOCK)
        .zip(out_features.par_chunks_mut(BLOCK * channels.max(1)))
        .enumerate()
        .for_each(|(blk, (pts, feats))| {
            let mut fsum = vec![0f64; channels];
            for (j, p) in pts.iter_mut().enumerate() {
                let g = blk * BLOCK + j;
                let (s0, s1) = (starts[g] as usize, starts[g + 1] as usize);
                // The members of the voxels a few ahead, scattered over the cloud's arrays: asked
                // for now so that they are in cache when their turn comes.
                if let Some(&i) = order.get(s0 + AHEAD) {
                    crate::hint::prefetch(points, i as usize);
                    crate::hint::prefetch(features, i as usize * channels);
                }
                let members = &order[s0..s1];
                let mut sum = [0f64; 3];
                fsum.fill(0.0);
                for &i in members {
                    let i = i as usize;
                    for d in 0..3 {
                        sum[d] += points[i][d] as f64;
                    }
                    for (f, &v) in fsum
                        .iter_mut()
                        .zip(&features[i * channels..(i + 1) * channels])
                    {
                        *f += v as f64;
                    }
                }
                let cnt = members.len() as f64;
                *p = std::array::from_fn(|d| (sum[d] / cnt) as f32);
                for (o, s) in feats[j * channels..(j + 1) * channels]
                    .iter_mut()
                    .zip(&fsum)
                {
                    *o = (s / cnt) as f32;
                }
            }
        });
    if let Some(l) = labels {
        out_labels.par_iter_mut().enumerate().for_each(|(g, o)| {
            *o = majority(
                order[starts[g] as usize..starts[g + 1] as usize]
                    .iter()
                    .map(|&i| l[i as usize]),
            );
        });
    }

    // The inverse map, voxel by voxel: each input point is written once.
    let mut proj = vec![0u32; n];
    let out = SharedOut(proj.as_mut_ptr());
    (0..m).into_par_iter().with_min_len(BLOCK).for_each(|g| {
        for &i in &order[starts[g] as usize..starts[g + 1] as usize] {
            // SAFETY: `order` holds each input index `i < n` exactly once, so every slot of
            // `proj` (length n, alive until the loop ends) is written by one task only.
            unsafe { *out.get().add(i as usize) = g as u32 };
        }
    });
    out_features.truncate(m * channels);
    Ok(GridSubsampled {
        points: out_points,
        features: out_features,
        channels,
        labels: labels.map(|_| out_labels),
        proj,
    })
}

/// `0`, every `i` in `1..n` where `new_run(i)` says a run of equal voxels starts, then `n`.
fn run_starts(n: usize, new_run: impl Fn(usize) -> bool) -> Vec<u32> {
    let mut starts: Vec<u32> = Vec::with_capacity(n / 4 + 2);
    starts.push(0);
    starts.extend((1..n).filter(|&i| new_run(i)).map(|i| i as u32));
    starts.push(n as u32);
    starts
}

/// The most frequent label; the smallest one on a tie.
fn majority(labels: impl Iterator<Item = u32>) -> u32 {
    let mut v: Vec<u32> = labels.collect();
    v.sort_unstable();
    let (mut best, mut best_n) = (v[0], 0usize);
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j < v.len() && v[j] == v[i] {
            j += 1;
        }
        if j - i > best_n {
            best = v[i];
            best_n = j - i;
        }
        i = j;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_case() {
        // Two points in voxel (0,0,0), one in voxel (1,0,0) for a 1 m grid anchored at 0.
        let pts = [[0.2, 0.2, 0.2], [0.4, 0.6, 0.2], [1.5, 0.5, 0.5]];
        let feats = [1.0, 10.0, 3.0, 20.0, 5.0, 30.0];
        let out = grid_subsample(&pts, &feats, 2, Some(&[7, 7, 2]), 1.0).unwrap();
        assert_eq!(out.len(), 2);
        assert!((out.points[0][0] - 0.3).abs() < 1e-6 && (out.points[0][1] - 0.4).abs() < 1e-6);
        assert_eq!(out.features, vec![2.0, 15.0, 5.0, 30.0]);
        assert_eq!(out.labels, Some(vec![7, 2]));
        assert_eq!(out.proj, vec![0, 0, 1]);
    }

    #[test]
    fn points_without_features_are_the_same_barycentres() {
        // A model that reads coordinates only subsamples with no feature channels: the points
        // must still be the barycentres (they once came back all zero, the features' empty
        // buffer ending the parallel loop over blocks before it began).
        let pts: Vec<[f32; 3]> = (0..20_000)
            .map(|i| {
                let i = i as f32;
                [(i * 0.37) % 31.0, (i * 0.11) % 17.0, (i * 0.05) % 3.0]
            })
            .collect();
        let ones = vec![1.0; pts.len()];
        let with = grid_subsample(&pts, &ones, 1, None, 0.5).unwrap();
        let without = grid_subsample(&pts, &[], 0, None, 0.5).unwrap();
        assert!(
            with.len() > 4096,
            "several blocks of voxels: {}",
            with.len()
        );
        assert_eq!(without.points, with.points);
        assert_eq!(without.proj, with.proj);
        assert!(without.features.is_empty() && without.channels == 0);
        let hand = grid_subsample(&[[0.2, 0.2, 0.2], [0.4, 0.6, 0.2]], &[], 0, None, 1.0).unwrap();
        assert!((hand.points[0][0] - 0.3).abs() < 1e-6 && (hand.points[0][1] - 0.4).abs() < 1e-6);
    }

    #[test]
    fn voxels_equal_the_floored_quotient() {
        let floored = |v: f32, o: f64, c: f64| ((v as f64 - o) / c).floor().max(0.0) as u64;
        let values = [
            0.0,
            -0.0,
            0.25,
            0.5,
            0.7499999,
            0.75,
            1.0,
            -0.1,
            -7.0,
            3.999_999_8,
            1e-30,
            1e30,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ];
        for (o, c) in [
            (0.0, 0.25),
            (-1.0, 0.25),
            (0.5, 1.0),
            (0.0, 0.06),
            (-3.5, 1e-9),
        ] {
            for &v in &values {
                let p = [v, v * 0.5, -v];
                let want = [0, 1, 2].map(|d| floored(p[d], o, c));
                assert_eq!(voxel_of(p, [o; 3], c), want, "{p:?} origin {o} cell {c}");
            }
        }
    }

    #[test]
    fn majority_prefers_smallest_on_ties() {
        assert_eq!(majority([5, 3, 5, 3, 9].into_iter()), 3);
        assert_eq!(majority([4].into_iter()), 4);
        assert_eq!(majority([2, 6, 6].into_iter()), 6);
    }

    #[test]
    fn bad_input_is_refused() {
        let pts = [[0.0, 0.0, 0.0]];
        assert!(matches!(
            grid_subsample(&[], &[], 0, None, 1.0),
            Err(Error::Empty { .. })
        ));
        assert!(grid_subsample(&pts, &[], 0, None, 0.0).is_err());
        assert!(grid_subsample(&pts, &[], 0, None, f32::NAN).is_err());
        assert!(matches!(
            grid_subsample(&pts, &[1.0], 2, None, 1.0),
            Err(Error::LengthMismatch { .. })
        ));
        assert!(matches!(
            grid_subsample(&pts, &[], 0, Some(&[1, 2]), 1.0),
            Err(Error::LengthMismatch { .. })
        ));
        assert!(matches!(
            grid_subsample(&[[f32::INFINITY, 0.0, 0.0]], &[], 0, None, 1.0),
            Err(Error::NonFinite { axis: "x", .. })
        ));
        assert!(matches!(
            grid_subsample(&pts, &[f32::NAN], 1, None, 1.0),
            Err(Error::NonFiniteFeature { column: 0, .. })
        ));
        assert!(
            grid_subsample(&[[0.0, 0.0, 0.0], [1e30, 1e30, 1e30]], &[], 0, None, 1e-9).is_err()
        );
    }
}
