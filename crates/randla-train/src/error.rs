//! Errors of training: each names the file, the field or the step that failed.

use std::path::PathBuf;

/// What can go wrong while configuring, preprocessing or training.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration field has a bad value.
    #[error("{path}: `{field}` = {value}: {reason}")]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// The field, dotted (`train.batch_size`).
        field: String,
        /// The offending value.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// The configuration file is not valid TOML or has unknown/missing fields.
    #[error("{path}: {message}")]
    ConfigParse {
        /// The configuration file.
        path: PathBuf,
        /// The parser's message (it names the field and line).
        message: String,
    },
    /// A file or folder could not be read or written.
    #[error("{path}: {context}: {cause}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done.
        context: &'static str,
        /// The underlying error, in the message itself (not also a `source`, so that a report of
        /// the error's chain does not repeat it).
        cause: std::io::Error,
    },
    /// A dataset entry does not fit its layout.
    #[error("{path}: {message}")]
    Dataset {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A checkpoint or cache file is unreadable or does not fit this run.
    #[error("{path}: {message}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Reading a point cloud failed.
    #[error(transparent)]
    Read(#[from] randla_io::Error),
    /// Geometry (subsampling, KNN, pyramids) failed.
    #[error(transparent)]
    Geom(#[from] randla_geom::Error),
    /// The network description or weights were refused.
    #[error(transparent)]
    Model(#[from] randla_model::Error),
    /// The burn network failed.
    #[error(transparent)]
    Burn(#[from] randla_burn::Error),
    /// Validation by prediction failed.
    #[error(transparent)]
    Predict(#[from] randla_predict::Error),
    /// Training diverged or a tensor could not be read back.
    #[error("training: {0}")]
    Training(String),
}

impl Error {
    /// An I/O error on `path` while doing `context`.
    pub fn io(path: impl Into<PathBuf>, context: &'static str, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            context,
            cause: source,
        }
    }

    /// A bad configuration field.
    pub fn config(
        path: impl Into<PathBuf>,
        field: impl Into<String>,
        value: impl ToString,
        reason: impl Into<String>,
    ) -> Self {
        Error::Config {
            path: path.into(),
            field: field.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
