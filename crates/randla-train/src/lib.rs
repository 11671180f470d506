//! # randla-train: training RandLA-Net on labelled point clouds
//!
//! - [`TrainConfig`]: the training configuration (TOML): data entries per split and their
//!   layout ([`Layout`]: generic LAS/LAZ/PLY, S3DIS, Semantic3D, SemanticKITTI, Toronto3D), the
//!   class mapping from raw codes, input features and scales, network size, schedule;
//! - [`cache`]: preprocessing (class mapping, feature scaling, grid subsampling) cached on disk
//!   by content hash and parameters, with a checksum; corrupt or stale entries are rebuilt;
//! - [`sampler`]: the reference's possibility sampler (or random crops), augmentation, class
//!   weights `1 / (n_c/Σn + 0.02)`;
//! - [`Adam`]: Adam with its state keyed by parameter path (saved in checkpoints);
//! - [`train`]: the loop (weighted cross-entropy ignoring ignored labels, exponential learning
//!   rate decay per epoch, validation at full resolution with the deployment predictor, JSONL
//!   metrics, atomic best/last checkpoints, resume after a kill losing at most the epoch in
//!   progress), deterministic given the seed.
//!
//! - [`FusedTrainer`]: the default training engine ([`Engine::Fused`]): forward in training
//!   mode, loss, a hand-written backward pass and Adam on randla-engine's kernels, its gradients
//!   checked against burn's autodiff; `engine = "burn"` trains `randla-burn`'s network instead.
//!
//! The model crate holds no training code.

pub mod adam;
pub mod cache;
pub mod checkpoint;
pub mod config;
pub mod dataset;
pub mod error;
pub mod fused;
pub mod metrics;
pub mod sampler;
pub mod trainer;

pub use adam::{Adam, named_gradients};
pub use cache::{CacheStatus, Prepared};
pub use checkpoint::{Checkpoint, TrainerState};
pub use config::{ClassMap, Engine, IGNORED, Layout, SamplerKind, TrainConfig};
pub use error::{Error, Result};
pub use fused::FusedTrainer;
pub use metrics::Scores;
pub use randla_metrics::ConfusionMatrix;
pub use sampler::{Crop, Sampler, class_weights};
pub use trainer::{
    EpochRecord, Event, TrainOptions, TrainSummary, ValRecord, step_on_batch, train, train_step,
    weighted_cross_entropy,
};
