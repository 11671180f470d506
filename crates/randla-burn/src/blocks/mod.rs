//! The network's building blocks, one file each.

pub mod attentive_pooling;
pub mod batch_norm;
pub mod dilated_residual;
pub mod head;
pub mod local_spatial_encoding;
pub mod shared_mlp;

pub use attentive_pooling::AttentivePooling;
pub use batch_norm::BatchNorm;
pub use dilated_residual::DilatedResidualBlock;
pub use head::Head;
pub use local_spatial_encoding::LocalSpatialEncoding;
pub use shared_mlp::{Conv1x1, SharedMlp};
