//! The error type of the burn network.

/// Everything that can go wrong building, loading or running the network.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration, the weights or the batch were refused by the model description
    /// (missing, unexpected or mis-shaped parameter; bad batch tensor; bad configuration).
    #[error(transparent)]
    Model(#[from] randla_model::Error),
    /// A batch handed to the network does not fit it.
    #[error("batch tensor {name}: {message}")]
    Batch {
        /// The offending tensor (Open3D-ML name, e.g. `neighbor_indices.2`).
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A forward option cannot be honoured.
    #[error("forward option {option}: {message}")]
    Option {
        /// The option.
        option: &'static str,
        /// Why it is refused.
        message: String,
    },
    /// A tensor could not be read back from the device.
    #[error("reading tensor {name} from the device: {message}")]
    Read {
        /// The tensor (a parameter name or `logits`).
        name: String,
        /// What the backend said.
        message: String,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn batch(name: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Batch {
            name: name.into(),
            message: message.into(),
        }
    }
}
