//! A small confusion matrix: per-class IoU, mIoU over classes present in the truth, OA.

use serde::Serialize;

/// Counts over dense class indices (rows = truth, columns = prediction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confusion {
    n: usize,
    counts: Vec<u64>,
}

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

impl Confusion {
    /// An empty matrix over `n` classes.
    pub fn new(n: usize) -> Self {
        Confusion { n, counts: vec![0; n * n] }
    }

    /// Adds one point; truths or predictions out of range (ignored labels) are skipped.
    pub fn add(&mut self, truth: u32, pred: u32) {
        let (t, p) = (truth as usize, pred as usize);
        if t < self.n && p < self.n {
            self.counts[t * self.n + p] += 1;
        }
    }

    /// The count of truth `t` predicted `p`.
    pub fn get(&self, t: usize, p: usize) -> u64 {
        self.counts[t * self.n + p]
    }

    /// IoU, mIoU, OA.
    pub fn scores(&self) -> Scores {
        let n = self.n;
        let mut iou = Vec::with_capacity(n);
        let mut support = Vec::with_capacity(n);
        let (mut sum, mut k, mut correct, mut total) = (0.0, 0usize, 0u64, 0u64);
        for c in 0..n {
            let tp = self.get(c, c);
            let row: u64 = (0..n).map(|p| self.get(c, p)).sum();
            let col: u64 = (0..n).map(|t| self.get(t, c)).sum();
            let union = row + col - tp;
            let v = (union > 0).then(|| tp as f64 / union as f64);
            if row > 0 {
                sum += v.unwrap_or(0.0);
                k += 1;
            }
            iou.push(v);
            support.push(row);
            correct += tp;
            total += row;
        }
        Scores { iou, miou: if k > 0 { sum / k as f64 } else { 0.0 }, oa: if total > 0 { correct as f64 / total as f64 } else { 0.0 }, support }
    }
}
