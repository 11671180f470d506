//! Brute-force KNN: the oracle the KD-tree is tested against.

use rayon::prelude::*;

use super::{Neighbours, check_query, sq_dist};
use crate::error::{Result, check_finite};

/// Exact KNN of every query among `points` by exhaustive search, O(N·M).
///
/// Same conventions as [`super::KdTree`]: ties broken by the smaller index, rows sorted nearest first.
pub fn knn(points: &[[f32; 3]], queries: &[[f32; 3]], k: usize) -> Result<Neighbours> {
    check_query(points.len(), k, "point cloud")?;
    check_finite(points)?;
    check_finite(queries)?;
    let rows: Vec<(Vec<u32>, Vec<f32>)> = queries
        .par_iter()
        .map(|&q| {
            let mut all: Vec<(f32, u32)> = points
                .iter()
                .enumerate()
                .map(|(i, &p)| (sq_dist(q, p), i as u32))
                .collect();
            let cmp = |a: &(f32, u32), b: &(f32, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
            if all.len() > k {
                all.select_nth_unstable_by(k - 1, cmp);
                all.truncate(k);
            }
            all.sort_unstable_by(cmp);
            (
                all.iter().map(|e| e.1).collect(),
                all.iter().map(|e| e.0.sqrt()).collect(),
            )
        })
        .collect();
    let mut indices = Vec::with_capacity(queries.len() * k);
    let mut distances = Vec::with_capacity(queries.len() * k);
    for (i, d) in rows {
        indices.extend(i);
        distances.extend(d);
    }
    Ok(Neighbours {
        k,
        indices,
        distances,
    })
}
