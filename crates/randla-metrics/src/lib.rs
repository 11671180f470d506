//! # randla-metrics: how good a segmentation is
//!
//! - [`ConfusionMatrix`]: counts over dense class indices `0..num_classes` (rows = truth,
//!   columns = prediction), with per-class IoU, precision, recall, F1 and support, the mean IoU
//!   and the overall accuracy. Training accumulates one per epoch; `randla eval` builds one per
//!   file pair.
//! - [`CodeConfusion`]: the same for arbitrary sparse class codes (LAS classification 2, 5, 6,
//!   64...), built from two label slices, with ignored truth codes left out.
//! - [`asprs`]: ASPRS LAS class names, for reports.
//!
//! ## Definitions
//!
//! For class `c` with `TP` = points of truth `c` predicted `c`, `FP` = points predicted `c` whose
//! truth is another class, `FN` = points of truth `c` predicted as another class:
//!
//! | metric | formula | undefined (`None`) when |
//! |---|---|---|
//! | IoU | `TP / (TP + FP + FN)` | `TP + FP + FN = 0` (class absent from both) |
//! | precision | `TP / (TP + FP)` | the class is never predicted |
//! | recall | `TP / (TP + FN)` | the class has no truth points (support 0) |
//! | F1 | `2 TP / (2 TP + FP + FN)` (the harmonic mean of precision and recall) | as IoU |
//! | support | `TP + FN`, the truth count | never |
//! | OA | correct points / all points | no points |
//! | mIoU | mean IoU over the classes whose **support is > 0** | no class has support |
//!
//! The mIoU rule: a class that occurs only in the prediction does not enter the mean (its false
//! positives already lower the IoU of the classes whose points it took); a class that occurs in
//! the truth and is never predicted enters with IoU 0.

pub mod asprs;
mod codes;
mod confusion;

pub use codes::CodeConfusion;
pub use confusion::{ClassMetrics, ConfusionMatrix};

/// Errors of this crate: inputs that do not fit the matrix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A class index is not below the number of classes.
    #[error("{which} class index {index} is out of range: the matrix has {num_classes} classes")]
    ClassOutOfRange {
        /// `"truth"` or `"predicted"`.
        which: &'static str,
        /// The offending index.
        index: u64,
        /// The matrix's number of classes.
        num_classes: usize,
    },
    /// Two label sequences (or two matrices) that must have the same length (size) do not.
    #[error("{what}: truth has {truth}, prediction has {pred}")]
    LengthMismatch {
        /// What was compared (`"labels"`, `"classes"`).
        what: &'static str,
        /// The truth side's length.
        truth: usize,
        /// The prediction side's length.
        pred: usize,
    },
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
