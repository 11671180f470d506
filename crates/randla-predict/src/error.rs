//! The error type of prediction.

/// What can go wrong classifying a cloud.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model cannot be used as it is.
    #[error("{0}")]
    Model(String),
    /// The cloud does not fit the model.
    #[error("{0}")]
    Input(String),
    /// Not even the smallest crop fits the memory budget.
    #[error("{0}")]
    Budget(String),
    /// The engine refused its input.
    #[error(transparent)]
    Engine(#[from] randla_engine::Error),
    /// The geometry core refused its input.
    #[error(transparent)]
    Geom(#[from] randla_geom::Error),
}

/// Result alias of prediction.
pub type Result<T> = std::result::Result<T, Error>;
