//! Exact k-nearest-neighbour search.
//!
//! [`KdTree`] is the workhorse: a bucketed KD-tree over `f32` coordinates, built in parallel, queried
//! in parallel in a spatially coherent order. [`brute`] is the O(N·M) oracle the tests compare it to.
//!
//! Conventions shared by every search here:
//! - distances are computed as `dx*dx + dy*dy + dz*dz` in `f32`, in that order, so the tree and the
//!   oracle agree to the bit;
//! - a point is its own neighbour (distance 0) when it is in the searched set;
//! - ties are broken by the smaller index, so results are deterministic;
//! - rows are sorted by ascending (distance, index).

pub mod brute;
mod kdtree;

pub use kdtree::{KdTree, morton_order};

/// The result of a KNN query: `k` neighbours for each of `len()` query points, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbours {
    /// Neighbours per query.
    pub k: usize,
    /// `[queries, k]` indices into the searched set, nearest first.
    pub indices: Vec<u32>,
    /// `[queries, k]` Euclidean distances, matching `indices`.
    pub distances: Vec<f32>,
}

impl Neighbours {
    /// Number of query rows.
    pub fn len(&self) -> usize {
        self.indices.len().checked_div(self.k).unwrap_or(0)
    }

    /// True when there is no query row.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The neighbour indices of query `i`.
    pub fn row(&self, i: usize) -> &[u32] {
        &self.indices[i * self.k..(i + 1) * self.k]
    }

    /// The neighbour distances of query `i`.
    pub fn row_distances(&self, i: usize) -> &[f32] {
        &self.distances[i * self.k..(i + 1) * self.k]
    }
}

/// Squared Euclidean distance, in the one evaluation order every search here uses.
#[inline(always)]
pub fn sq_dist(a: [f32; 3], b: [f32; 3]) -> f32 {
    let dx = a[0] - b[0];
    let dy = a[1] - b[1];
    let dz = a[2] - b[2];
    dx * dx + dy * dy + dz * dz
}

/// Checks the arguments common to every search.
pub(crate) fn check_query(points: usize, k: usize, what: &'static str) -> crate::Result<()> {
    if k == 0 {
        return Err(crate::Error::ZeroK);
    }
    if points == 0 {
        return Err(crate::Error::Empty { what });
    }
    if points < k {
        return Err(crate::Error::TooFewPoints {
            what: what.to_string(),
            points,
            k,
        });
    }
    Ok(())
}

/// A raw output pointer shared by parallel tasks that each write their own elements (KNN rows,
/// grid-subsampling projections).
pub(crate) struct SharedOut<T>(pub(crate) *mut T);
// SAFETY: the tasks write disjoint elements only (each user states why).
unsafe impl<T: Send> Send for SharedOut<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SharedOut<T> {}
impl<T> SharedOut<T> {
    pub(crate) fn get(&self) -> *mut T {
        self.0
    }
}

/// The per-axis minimum and maximum of some points.
///
/// NaN coordinates are skipped (as `f32::min` and `f32::max` skip them). The comparisons are
/// plain `<` and `>`, which compile to vector min/max instructions, in four independent chains.
pub fn bounds_of(mut points: impl Iterator<Item = [f32; 3]>) -> ([f32; 3], [f32; 3]) {
    #[inline(always)]
    fn grow(b: &mut ([f32; 3], [f32; 3]), p: [f32; 3]) {
        for d in 0..3 {
            b.0[d] = if p[d] < b.0[d] { p[d] } else { b.0[d] };
            b.1[d] = if p[d] > b.1[d] { p[d] } else { b.1[d] };
        }
    }
    let empty = ([f32::INFINITY; 3], [f32::NEG_INFINITY; 3]);
    let (mut a, mut b, mut c, mut d) = (empty, empty, empty, empty);
    // Four points a round, each into its own box.
    while let Some(p) = points.next() {
        grow(&mut a, p);
        let Some(p) = points.next() else { break };
        grow(&mut b, p);
        let Some(p) = points.next() else { break };
        grow(&mut c, p);
        let Some(p) = points.next() else { break };
        grow(&mut d, p);
    }
    for (lo, hi) in [b, c, d] {
        for k in 0..3 {
            a.0[k] = a.0[k].min(lo[k]);
            a.1[k] = a.1[k].max(hi[k]);
        }
    }
    a
}

/// [`bounds_of`] a whole cloud, in parallel blocks.
pub fn bounds(points: &[[f32; 3]]) -> ([f32; 3], [f32; 3]) {
    use rayon::prelude::*;
    points
        .par_chunks(1 << 16)
        .map(|c| bounds_of(c.iter().copied()))
        .reduce(
            || bounds_of(std::iter::empty()),
            |(a, b), (c, d)| {
                (
                    std::array::from_fn(|i| a[i].min(c[i])),
                    std::array::from_fn(|i| b[i].max(d[i])),
                )
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The four-chain bounds equal a plain fold with `f32::min` / `f32::max`, NaNs skipped, for
    /// every length around the chain count.
    #[test]
    fn bounds_equal_a_plain_fold() {
        let mut seed = 0x9e37_79b9u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for n in (0..12).chain([1000]) {
            let pts: Vec<[f32; 3]> = (0..n)
                .map(|_| {
                    std::array::from_fn(|_| match next() % 50 {
                        0 => f32::NAN,
                        v => v as f32 - 25.0 + (next() % 1000) as f32 / 1000.0,
                    })
                })
                .collect();
            let mut want = ([f32::INFINITY; 3], [f32::NEG_INFINITY; 3]);
            for p in &pts {
                for d in 0..3 {
                    want.0[d] = want.0[d].min(p[d]);
                    want.1[d] = want.1[d].max(p[d]);
                }
            }
            assert_eq!(bounds_of(pts.iter().copied()), want, "{n} points");
        }
    }
}
