//! Confusion over sparse class codes (LAS classification, dataset labels).

use std::collections::{BTreeSet, HashMap};

use crate::{ConfusionMatrix, Error, Result};

/// A [`ConfusionMatrix`] whose classes are arbitrary `u32` codes, in ascending code order.
///
/// The classes are the codes that occur, at the points that are scored, in the truth or in the
/// prediction. A point is scored unless its truth code is ignored; a prediction of an ignored
/// code at a scored point is a (visible) error, so that code then appears as a class with
/// support 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeConfusion {
    codes: Vec<u32>,
    matrix: ConfusionMatrix,
    ignored: u64,
}

impl CodeConfusion {
    /// Scores `pred[i]` against `truth[i]` for every `i` whose truth code is not in `ignore`.
    pub fn from_labels(truth: &[u32], pred: &[u32], ignore: &[u32]) -> Result<Self> {
        if truth.len() != pred.len() {
            return Err(Error::LengthMismatch {
                what: "labels",
                truth: truth.len(),
                pred: pred.len(),
            });
        }
        let ignore: BTreeSet<u32> = ignore.iter().copied().collect();
        // Pair counts first: one pass over the points, a hash lookup only when the pair changes
        // (labels come in long runs in real files).
        let mut pairs: HashMap<(u32, u32), u64> = HashMap::new();
        let mut ignored = 0u64;
        let mut run: Option<((u32, u32), u64)> = None;
        for (&t, &p) in truth.iter().zip(pred) {
            if ignore.contains(&t) {
                ignored += 1;
                continue;
            }
            match &mut run {
                Some((key, n)) if *key == (t, p) => *n += 1,
                _ => {
                    if let Some((key, n)) = run.take() {
                        *pairs.entry(key).or_insert(0) += n;
                    }
                    run = Some(((t, p), 1));
                }
            }
        }
        if let Some((key, n)) = run {
            *pairs.entry(key).or_insert(0) += n;
        }
        let codes: Vec<u32> = pairs
            .keys()
            .flat_map(|&(t, p)| [t, p])
            .collect::<BTreeSet<u32>>()
            .into_iter()
            .collect();
        let index: HashMap<u32, usize> = codes.iter().enumerate().map(|(i, &c)| (c, i)).collect();
        let mut matrix = ConfusionMatrix::new(codes.len());
        for (&(t, p), &n) in &pairs {
            matrix.add_count(index[&t], index[&p], n);
        }
        Ok(CodeConfusion {
            codes,
            matrix,
            ignored,
        })
    }

    /// The class codes, ascending; class `i` of [`matrix`](Self::matrix) is `codes()[i]`.
    pub fn codes(&self) -> &[u32] {
        &self.codes
    }

    /// The confusion matrix over [`codes`](Self::codes).
    pub fn matrix(&self) -> &ConfusionMatrix {
        &self.matrix
    }

    /// The matrix index of `code`, if it is a class.
    pub fn index_of(&self, code: u32) -> Option<usize> {
        self.codes.binary_search(&code).ok()
    }

    /// Points left out because their truth code is ignored.
    pub fn ignored(&self) -> u64 {
        self.ignored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_codes_in_ascending_order() {
        let truth = [6, 6, 2, 2, 2, 64, 1, 1];
        let pred = [6, 2, 2, 2, 6, 64, 1, 5];
        let c = CodeConfusion::from_labels(&truth, &pred, &[]).unwrap();
        assert_eq!(c.codes(), &[1, 2, 5, 6, 64]);
        let m = c.matrix();
        assert_eq!(m.total(), 8);
        let (i2, i6) = (c.index_of(2).unwrap(), c.index_of(6).unwrap());
        assert_eq!(m.count(i2, i2), 2);
        assert_eq!(m.count(i2, i6), 1);
        assert_eq!(m.count(i6, i2), 1);
        assert_eq!(m.support(c.index_of(5).unwrap()), 0);
        assert_eq!(m.oa(), Some(5.0 / 8.0));
        assert_eq!(c.index_of(3), None);
        assert_eq!(c.ignored(), 0);
    }

    #[test]
    fn ignored_truth_codes_are_not_scored() {
        let truth = [1, 1, 2, 2, 3];
        let pred = [2, 7, 2, 1, 3];
        let c = CodeConfusion::from_labels(&truth, &pred, &[1]).unwrap();
        assert_eq!(c.ignored(), 2);
        // Code 7 only occurred at ignored points; code 1 is predicted at a scored point.
        assert_eq!(c.codes(), &[1, 2, 3]);
        assert_eq!(c.matrix().total(), 3);
        assert_eq!(c.matrix().support(0), 0);
        assert_eq!(c.matrix().miou(), Some((0.5 + 1.0) / 2.0));
    }

    #[test]
    fn lengths_must_match() {
        assert!(matches!(
            CodeConfusion::from_labels(&[1, 2], &[1], &[]),
            Err(Error::LengthMismatch { .. })
        ));
        let empty = CodeConfusion::from_labels(&[], &[], &[]).unwrap();
        assert!(empty.codes().is_empty() && empty.matrix().oa().is_none());
    }
}
