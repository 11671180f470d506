//! Validation scores, computed by `randla-metrics`' confusion matrix — the same definitions
//! (`IoU = TP / (TP + FP + FN)`, mIoU over the classes with truth points, OA) that `randla eval`
//! reports.

use randla_metrics::ConfusionMatrix;
use serde::Serialize;

/// Scores of one validation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scores {
    /// Per-class IoU (`None`: class absent from truth and prediction).
    pub iou: Vec<Option<f64>>,
    /// Mean IoU over the classes with truth points.
    pub miou: f64,
    /// Overall accuracy.
    pub oa: f64,
    /// Truth points per class.
    pub support: Vec<u64>,
}

impl Scores {
    /// The scores of `m` (0 for mIoU and OA of an empty matrix).
    pub fn from_confusion(m: &ConfusionMatrix) -> Self {
        Scores {
            iou: m.ious(),
            miou: m.miou().unwrap_or(0.0),
            oa: m.oa().unwrap_or(0.0),
            support: (0..m.num_classes()).map(|c| m.support(c)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_follow_the_confusion_matrix() {
        // truth 0: 3 right, 1 as class 1; truth 1: 2 right; class 2 only predicted once (truth 1).
        let mut m = ConfusionMatrix::new(3);
        for (t, p, n) in [(0, 0, 3), (0, 1, 1), (1, 1, 2), (1, 2, 1)] {
            m.add_count(t, p, n);
        }
        let s = Scores::from_confusion(&m);
        assert_eq!(s.support, vec![4, 3, 0]);
        assert_eq!(s.iou, vec![Some(3.0 / 4.0), Some(2.0 / 4.0), Some(0.0)]);
        // Class 2 has no truth point: left out of the mean.
        assert!((s.miou - (0.75 + 0.5) / 2.0).abs() < 1e-12);
        assert!((s.oa - 5.0 / 7.0).abs() < 1e-12);
    }
}
