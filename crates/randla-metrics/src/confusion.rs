//! The confusion matrix over dense class indices and the metrics derived from it.

use crate::{Error, Result};

/// Counts of (truth, predicted) class pairs over `num_classes` dense classes.
///
/// Row `t`, column `p` holds the number of points of truth class `t` predicted as `p`. All the
/// metrics are computed from these counts; see the crate documentation for their definitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    num_classes: usize,
    counts: Vec<u64>,
}

/// The metrics of one class, as computed by [`ConfusionMatrix::class_metrics`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassMetrics {
    /// Intersection over union, `TP / (TP + FP + FN)`.
    pub iou: Option<f64>,
    /// `TP / (TP + FP)`; `None` when the class is never predicted.
    pub precision: Option<f64>,
    /// `TP / (TP + FN)`; `None` when the class has no truth points.
    pub recall: Option<f64>,
    /// `2 TP / (2 TP + FP + FN)`.
    pub f1: Option<f64>,
    /// Points whose truth is this class.
    pub support: u64,
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

impl ConfusionMatrix {
    /// An empty (all-zero) matrix for classes `0..num_classes`.
    pub fn new(num_classes: usize) -> Self {
        ConfusionMatrix {
            num_classes,
            counts: vec![0; num_classes * num_classes],
        }
    }

    /// Number of classes (rows and columns).
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Counts one point of truth class `truth` predicted as `pred`.
    ///
    /// # Panics
    /// If either index is not below [`num_classes`](Self::num_classes); see
    /// [`try_add`](Self::try_add) for a checked version.
    pub fn add(&mut self, truth: usize, pred: usize) {
        self.add_count(truth, pred, 1);
    }

    /// Counts `count` points of truth class `truth` predicted as `pred`.
    ///
    /// # Panics
    /// If either index is out of range.
    pub fn add_count(&mut self, truth: usize, pred: usize, count: u64) {
        let n = self.num_classes;
        assert!(
            truth < n && pred < n,
            "class index ({truth}, {pred}) out of range for {n} classes"
        );
        self.counts[truth * n + pred] += count;
    }

    /// [`add`](Self::add), returning an error instead of panicking on an out-of-range index.
    pub fn try_add(&mut self, truth: usize, pred: usize) -> Result<()> {
        self.check("truth", truth as u64)?;
        self.check("predicted", pred as u64)?;
        self.add(truth, pred);
        Ok(())
    }

    /// Counts every pair `(truth[i], pred[i])`. Nothing is counted if the slices differ in
    /// length or any index is out of range.
    pub fn add_labels(&mut self, truth: &[u32], pred: &[u32]) -> Result<()> {
        if truth.len() != pred.len() {
            return Err(Error::LengthMismatch {
                what: "labels",
                truth: truth.len(),
                pred: pred.len(),
            });
        }
        if let Some(&t) = truth.iter().max() {
            self.check("truth", u64::from(t))?;
        }
        if let Some(&p) = pred.iter().max() {
            self.check("predicted", u64::from(p))?;
        }
        let n = self.num_classes;
        for (&t, &p) in truth.iter().zip(pred) {
            self.counts[t as usize * n + p as usize] += 1;
        }
        Ok(())
    }

    /// Adds the counts of `other` (for example one batch's matrix into an epoch's).
    pub fn merge(&mut self, other: &ConfusionMatrix) -> Result<()> {
        if other.num_classes != self.num_classes {
            return Err(Error::LengthMismatch {
                what: "classes",
                truth: self.num_classes,
                pred: other.num_classes,
            });
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        Ok(())
    }

    fn check(&self, which: &'static str, index: u64) -> Result<()> {
        if index >= self.num_classes as u64 {
            return Err(Error::ClassOutOfRange {
                which,
                index,
                num_classes: self.num_classes,
            });
        }
        Ok(())
    }

    /// Points of truth class `truth` predicted as `pred`.
    ///
    /// # Panics
    /// If either index is out of range.
    pub fn count(&self, truth: usize, pred: usize) -> u64 {
        assert!(truth < self.num_classes && pred < self.num_classes);
        self.counts[truth * self.num_classes + pred]
    }

    /// Row `truth`: the predictions of the points of that truth class.
    ///
    /// # Panics
    /// If `truth` is out of range.
    pub fn row(&self, truth: usize) -> &[u64] {
        let n = self.num_classes;
        &self.counts[truth * n..(truth + 1) * n]
    }

    /// The matrix as rows (truth) of columns (predicted).
    pub fn to_rows(&self) -> Vec<Vec<u64>> {
        (0..self.num_classes)
            .map(|t| self.row(t).to_vec())
            .collect()
    }

    /// All points counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Points predicted as their truth class (the diagonal).
    pub fn correct(&self) -> u64 {
        (0..self.num_classes).map(|c| self.count(c, c)).sum()
    }

    /// Points whose truth is class `c` (row sum): `TP + FN`.
    pub fn support(&self, c: usize) -> u64 {
        self.row(c).iter().sum()
    }

    /// Points predicted as class `c` (column sum): `TP + FP`.
    pub fn predicted(&self, c: usize) -> u64 {
        (0..self.num_classes).map(|t| self.count(t, c)).sum()
    }

    /// True positives of class `c`.
    pub fn true_positives(&self, c: usize) -> u64 {
        self.count(c, c)
    }

    /// False positives of class `c`: predicted `c`, truth another class.
    pub fn false_positives(&self, c: usize) -> u64 {
        self.predicted(c) - self.count(c, c)
    }

    /// False negatives of class `c`: truth `c`, predicted another class.
    pub fn false_negatives(&self, c: usize) -> u64 {
        self.support(c) - self.count(c, c)
    }

    /// IoU of class `c`, `TP / (TP + FP + FN)`; `None` if the class occurs nowhere.
    pub fn iou(&self, c: usize) -> Option<f64> {
        let tp = self.true_positives(c);
        ratio(tp, tp + self.false_positives(c) + self.false_negatives(c))
    }

    /// IoU of every class, in class order.
    pub fn ious(&self) -> Vec<Option<f64>> {
        (0..self.num_classes).map(|c| self.iou(c)).collect()
    }

    /// Precision of class `c`, `TP / (TP + FP)`; `None` if it is never predicted.
    pub fn precision(&self, c: usize) -> Option<f64> {
        ratio(self.true_positives(c), self.predicted(c))
    }

    /// Recall of class `c`, `TP / (TP + FN)`; `None` if it has no truth points.
    pub fn recall(&self, c: usize) -> Option<f64> {
        ratio(self.true_positives(c), self.support(c))
    }

    /// F1 score of class `c`, `2 TP / (2 TP + FP + FN)`; `None` if the class occurs nowhere.
    ///
    /// Equal to the harmonic mean of precision and recall where both are defined, and 0 (not
    /// undefined) for a class that is never predicted or never true but occurs on the other side.
    pub fn f1(&self, c: usize) -> Option<f64> {
        let tp = self.true_positives(c);
        ratio(
            2 * tp,
            2 * tp + self.false_positives(c) + self.false_negatives(c),
        )
    }

    /// All the metrics of class `c`.
    pub fn class_metrics(&self, c: usize) -> ClassMetrics {
        ClassMetrics {
            iou: self.iou(c),
            precision: self.precision(c),
            recall: self.recall(c),
            f1: self.f1(c),
            support: self.support(c),
        }
    }

    /// Mean IoU over the classes with support > 0 (see the crate documentation); `None` if no
    /// class has any truth point.
    pub fn miou(&self) -> Option<f64> {
        let ious: Vec<f64> = (0..self.num_classes)
            .filter(|&c| self.support(c) > 0)
            .filter_map(|c| self.iou(c))
            .collect();
        (!ious.is_empty()).then(|| ious.iter().sum::<f64>() / ious.len() as f64)
    }

    /// Overall accuracy: correct points / all points; `None` for an empty matrix.
    pub fn oa(&self) -> Option<f64> {
        ratio(self.correct(), self.total())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    /// Rows = truth, columns = predicted:
    /// ```text
    ///        p0 p1 p2 p3
    ///   t0 [  5, 1, 0, 0 ]   support 6
    ///   t1 [  2, 3, 1, 0 ]   support 6
    ///   t2 [  0, 0, 0, 0 ]   only ever predicted
    ///   t3 [  1, 1, 0, 0 ]   never predicted
    /// ```
    fn hand_case() -> ConfusionMatrix {
        let rows = [[5, 1, 0, 0], [2, 3, 1, 0], [0, 0, 0, 0], [1, 1, 0, 0]];
        let mut m = ConfusionMatrix::new(4);
        for (t, row) in rows.iter().enumerate() {
            for (p, &k) in row.iter().enumerate() {
                for _ in 0..k {
                    m.add(t, p);
                }
            }
        }
        m
    }

    #[test]
    fn hand_computed_case() {
        let m = hand_case();
        assert_eq!(m.total(), 14);
        assert_eq!(m.correct(), 8);
        assert!(close(m.oa(), 8.0 / 14.0));
        // Class 0: TP 5, FP 3, FN 1.
        assert_eq!(
            (
                m.true_positives(0),
                m.false_positives(0),
                m.false_negatives(0)
            ),
            (5, 3, 1)
        );
        assert!(close(m.iou(0), 5.0 / 9.0));
        assert!(close(m.precision(0), 5.0 / 8.0));
        assert!(close(m.recall(0), 5.0 / 6.0));
        assert!(close(m.f1(0), 5.0 / 7.0));
        // Class 1: TP 3, FP 2, FN 3.
        assert!(close(m.iou(1), 3.0 / 8.0));
        assert!(close(m.precision(1), 3.0 / 5.0));
        assert!(close(m.recall(1), 0.5));
        assert!(close(m.f1(1), 6.0 / 11.0));
        // Class 2: only predicted (FP 1): recall undefined, the rest 0.
        let c2 = m.class_metrics(2);
        assert_eq!(c2.support, 0);
        assert_eq!(c2.recall, None);
        assert!(close(c2.iou, 0.0) && close(c2.precision, 0.0) && close(c2.f1, 0.0));
        // Class 3: never predicted (FN 2): precision undefined, the rest 0.
        let c3 = m.class_metrics(3);
        assert_eq!(c3.support, 2);
        assert_eq!(c3.precision, None);
        assert!(close(c3.iou, 0.0) && close(c3.recall, 0.0) && close(c3.f1, 0.0));
        // mIoU over classes 0, 1 and 3 (support > 0): (5/9 + 3/8 + 0) / 3.
        assert!(close(m.miou(), 67.0 / 216.0));
        assert_eq!(m.to_rows()[1], vec![2, 3, 1, 0]);
    }

    #[test]
    fn f1_is_harmonic_mean_where_defined() {
        let m = hand_case();
        for c in 0..2 {
            let (p, r) = (m.precision(c).unwrap(), m.recall(c).unwrap());
            assert!(close(m.f1(c), 2.0 * p * r / (p + r)));
        }
    }

    #[test]
    fn perfect_and_empty() {
        let mut m = ConfusionMatrix::new(3);
        m.add_labels(&[0, 1, 1, 2], &[0, 1, 1, 2]).unwrap();
        assert_eq!(m.miou(), Some(1.0));
        assert_eq!(m.oa(), Some(1.0));
        let e = ConfusionMatrix::new(3);
        assert_eq!((e.miou(), e.oa(), e.iou(0)), (None, None, None));
        assert_eq!(ConfusionMatrix::new(0).miou(), None);
    }

    #[test]
    fn add_labels_and_merge_equal_adding_one_by_one() {
        let truth = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 3, 3];
        let pred = [0, 0, 0, 0, 0, 1, 0, 0, 1, 1, 1, 2, 0, 1];
        let mut a = ConfusionMatrix::new(4);
        a.add_labels(&truth[..5], &pred[..5]).unwrap();
        let mut b = ConfusionMatrix::new(4);
        b.add_labels(&truth[5..], &pred[5..]).unwrap();
        a.merge(&b).unwrap();
        assert_eq!(a, hand_case());
    }

    #[test]
    fn bad_input_is_an_error_and_counts_nothing() {
        let mut m = ConfusionMatrix::new(2);
        assert_eq!(
            m.add_labels(&[0, 1], &[0]),
            Err(Error::LengthMismatch {
                what: "labels",
                truth: 2,
                pred: 1
            })
        );
        let e = m.add_labels(&[0, 1], &[0, 2]).unwrap_err();
        assert!(e.to_string().contains("predicted class index 2"), "{e}");
        assert!(m.try_add(5, 0).is_err());
        assert!(m.merge(&ConfusionMatrix::new(3)).is_err());
        assert_eq!(m.total(), 0);
        m.try_add(1, 0).unwrap();
        assert_eq!(m.count(1, 0), 1);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn add_panics_out_of_range() {
        ConfusionMatrix::new(2).add(0, 2);
    }
}
