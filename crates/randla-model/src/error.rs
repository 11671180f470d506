//! The error type of the model description crate.

use std::path::PathBuf;

/// Everything that can go wrong reading or checking a configuration, weights or a batch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause, in the message itself (not also a `source`, so that a report of the
        /// error's chain does not repeat it).
        cause: std::io::Error,
    },
    /// A configuration file could not be parsed.
    #[error("{path}: invalid configuration: {message}")]
    ConfigParse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A configuration value is out of range or inconsistent.
    #[error("invalid configuration: {field} = {value}: {reason}")]
    Config {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A weights file is not what it claims to be.
    #[error("{path}: not a readable checkpoint: {message}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A parameter the configuration needs is absent.
    #[error("missing parameter {name} (expected shape {expected:?})")]
    MissingParameter {
        /// Its name.
        name: String,
        /// The shape the configuration implies.
        expected: Vec<usize>,
    },
    /// A parameter the configuration does not know.
    #[error(
        "unexpected parameter {name} (shape {shape:?}): it does not belong to this configuration"
    )]
    UnexpectedParameter {
        /// Its name.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// A parameter with the wrong shape.
    #[error("parameter {name} has shape {actual:?}, the configuration needs {expected:?}")]
    ShapeMismatch {
        /// Its name.
        name: String,
        /// The shape the configuration implies.
        expected: Vec<usize>,
        /// The shape found.
        actual: Vec<usize>,
    },
    /// A parameter holds NaN or infinity.
    #[error("parameter {name} holds a non-finite value at flat index {index}: {value}")]
    NonFiniteParameter {
        /// Its name.
        name: String,
        /// Flat index of the value.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A batch tensor is missing, mis-shaped or out of range.
    #[error("batch tensor {name}: {message}")]
    Batch {
        /// The tensor.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The geometry core refused its input.
    #[error(transparent)]
    Geom(#[from] randla_geom::Error),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause: source,
        }
    }

    pub(crate) fn batch(name: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Batch {
            name: name.into(),
            message: message.into(),
        }
    }
}
