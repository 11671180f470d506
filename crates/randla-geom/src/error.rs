//! The error type of the geometry crate.

/// Everything that can go wrong in the geometry core. Every variant names the offending value.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The point cloud (or the index subset) holds no point.
    #[error("{what} is empty: at least one point is needed")]
    Empty {
        /// What was empty ("point cloud", "source subset", ...).
        what: &'static str,
    },
    /// `k` was zero.
    #[error("k must be at least 1, got k = 0")]
    ZeroK,
    /// Fewer points than neighbours asked for.
    #[error("{what} has {points} point(s), fewer than k = {k}")]
    TooFewPoints {
        /// Which cloud or pyramid level.
        what: String,
        /// Its number of points.
        points: usize,
        /// The number of neighbours asked for.
        k: usize,
    },
    /// A coordinate is NaN or infinite.
    #[error("point {index} has a non-finite {axis} coordinate: {value}")]
    NonFinite {
        /// Index of the point in its cloud.
        index: usize,
        /// "x", "y" or "z".
        axis: &'static str,
        /// The offending value.
        value: f64,
    },
    /// A feature value is NaN or infinite.
    #[error("point {index} has a non-finite value in feature column {column}: {value}")]
    NonFiniteFeature {
        /// Index of the point.
        index: usize,
        /// Feature column.
        column: usize,
        /// The offending value.
        value: f32,
    },
    /// An index is outside the cloud.
    #[error("{what}: index {index} is out of range for a cloud of {len} points")]
    IndexOutOfRange {
        /// Where the index came from.
        what: &'static str,
        /// The index.
        index: usize,
        /// The cloud size.
        len: usize,
    },
    /// Two arrays that must have matching lengths do not.
    #[error("{what}: expected length {expected}, got {actual}")]
    LengthMismatch {
        /// Which array.
        what: &'static str,
        /// The expected length.
        expected: usize,
        /// The actual length.
        actual: usize,
    },
    /// A parameter is outside its valid range.
    #[error("invalid {name}: {value} ({reason})")]
    InvalidParameter {
        /// The parameter name.
        name: &'static str,
        /// Its value, rendered.
        value: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// An operation needs a built cache.
    #[error("the KNN cache holds no cloud: call build(points) first")]
    NotBuilt,
    /// A single item does not fit the memory budget.
    #[error("{what} needs {needed} bytes, more than the memory budget of {budget} bytes")]
    OverBudget {
        /// What did not fit.
        what: String,
        /// Bytes it needs.
        needed: u64,
        /// The budget.
        budget: u64,
    },
}

/// Result alias of the geometry crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Checks that every coordinate is finite.
pub fn check_finite(points: &[[f32; 3]]) -> Result<()> {
    const AXES: [&str; 3] = ["x", "y", "z"];
    match first_non_finite(points.as_flattened()) {
        Some(i) => Err(Error::NonFinite {
            index: i / 3,
            axis: AXES[i % 3],
            value: points[i / 3][i % 3] as f64,
        }),
        None => Ok(()),
    }
}

/// The position of the first non-finite value of `values`, if any: blocks are checked without
/// a branch per value (vectorised), and only a block with a bad value is searched.
pub(crate) fn first_non_finite(values: &[f32]) -> Option<usize> {
    const BLOCK: usize = 4096;
    values.chunks(BLOCK).enumerate().find_map(|(b, block)| {
        if block.iter().fold(true, |ok, v| ok & v.is_finite()) {
            None
        } else {
            block
                .iter()
                .position(|v| !v.is_finite())
                .map(|i| b * BLOCK + i)
        }
    })
}

/// Checks that `order` is a permutation of `0..order.len()`; the error names it `name` and
/// says `reason`.
pub(crate) fn check_permutation(
    order: &[u32],
    name: &'static str,
    reason: &'static str,
) -> Result<()> {
    let mut seen = vec![false; order.len()];
    for &i in order {
        match seen.get_mut(i as usize) {
            Some(s) if !*s => *s = true,
            _ => {
                return Err(Error::InvalidParameter {
                    name,
                    value: format!("contains {i} out of range or twice"),
                    reason,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The block-wise check finds the first non-finite coordinate wherever it sits: first block,
    /// a later block, the last point; and passes finite clouds of any length.
    #[test]
    fn check_finite_names_the_first_bad_coordinate() {
        for n in [0, 1, 1023, 1024, 1025, 5000] {
            let pts: Vec<[f32; 3]> = (0..n).map(|i| [i as f32, 1.0, -2.0]).collect();
            assert!(check_finite(&pts).is_ok(), "{n} points");
        }
        for (at, axis, v) in [
            (0, 0, f32::NAN),
            (1500, 1, f32::INFINITY),
            (4999, 2, f32::NAN),
        ] {
            let mut pts: Vec<[f32; 3]> = (0..5000).map(|i| [i as f32, 1.0, -2.0]).collect();
            pts[at][axis] = v;
            // A later bad value must not be reported first.
            pts[4999][0] = f32::NEG_INFINITY;
            match check_finite(&pts) {
                Err(Error::NonFinite { index, axis: a, .. }) => {
                    assert_eq!(index, at);
                    assert_eq!(a, ["x", "y", "z"][if at == 4999 { 0 } else { axis }]);
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
