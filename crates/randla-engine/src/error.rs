//! The error type of the engine.

/// What can go wrong loading weights into the engine or running it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration, weights or batch were refused.
    #[error(transparent)]
    Model(#[from] randla_model::Error),
    /// An input does not fit the network.
    #[error("{what}: {message}")]
    Input {
        /// Which input.
        what: String,
        /// What is wrong.
        message: String,
    },
}

/// Result alias of the engine.
pub type Result<T> = std::result::Result<T, Error>;
