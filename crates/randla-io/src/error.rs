//! The error type of `randla-io`.
//!
//! Every variant carries the path of the file concerned; variants about bad data also name the
//! field and the offending value, so that a message alone is enough to find and fix the input.

use std::path::{Path, PathBuf};

/// Errors returned by every reader and writer of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O operation on a file failed.
    #[error("{}: {action}: {cause}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What was being done (`"open"`, `"read point data"`...).
        action: String,
        /// The underlying error, in the message itself (not also a `source`, so that a report of
        /// the error's chain does not repeat it).
        cause: std::io::Error,
    },

    /// The format could not be determined from the file name.
    #[error("{}: unknown point-cloud format (extension {extension:?}); expected one of {expected}", path.display())]
    UnknownFormat {
        /// The file concerned.
        path: PathBuf,
        /// The extension found (empty if none).
        extension: String,
        /// The extensions that are understood.
        expected: &'static str,
    },

    /// A field of the file holds a value that is not valid here.
    #[error("{}: invalid {field} = {value}: {reason}", path.display())]
    Invalid {
        /// The file concerned.
        path: PathBuf,
        /// The field (header entry, property, column, line...).
        field: String,
        /// The offending value, as text.
        value: String,
        /// Why it is not acceptable.
        reason: String,
    },

    /// The file ended before all the data its header announces.
    #[error("{}: truncated: {field}: expected {expected}, found {found}", path.display())]
    Truncated {
        /// The file concerned.
        path: PathBuf,
        /// The field or section that is incomplete.
        field: String,
        /// What the header (or format) announces.
        expected: String,
        /// What is actually there.
        found: String,
    },

    /// Two counts that must agree do not (labels vs points, header vs data).
    #[error("{}: {field}: count mismatch: expected {expected}, found {found}", path.display())]
    CountMismatch {
        /// The file concerned.
        path: PathBuf,
        /// What was counted.
        field: String,
        /// The count required.
        expected: u64,
        /// The count found.
        found: u64,
    },

    /// A coordinate is NaN or infinite.
    #[error("{}: non-finite coordinate {field} = {value} at point {index}", path.display())]
    NonFinite {
        /// The file concerned.
        path: PathBuf,
        /// The coordinate (`x`, `y` or `z`).
        field: &'static str,
        /// The value read.
        value: f64,
        /// The zero-based index of the point.
        index: u64,
    },

    /// The file (or directory) holds no points.
    #[error("{}: empty: {what}", path.display())]
    Empty {
        /// The file concerned.
        path: PathBuf,
        /// What is empty (`"file has 0 bytes"`, `"0 points"`...).
        what: String,
    },

    /// The output file exists and overwriting was not requested.
    #[error("{}: output exists; pass the overwrite/force flag to replace it", path.display())]
    OutputExists {
        /// The output path.
        path: PathBuf,
    },

    /// The output path is the input file (possibly through a link or another spelling).
    #[error("{}: output is the input file {}; refusing to overwrite an input", path.display(), input.display())]
    OutputIsInput {
        /// The output path as given.
        path: PathBuf,
        /// The input path as given.
        input: PathBuf,
    },

    /// The file uses a feature this crate does not support.
    #[error("{}: unsupported {field} = {value}: {reason}", path.display())]
    Unsupported {
        /// The file concerned.
        path: PathBuf,
        /// The field concerned.
        field: String,
        /// Its value.
        value: String,
        /// What is missing.
        reason: String,
    },

    /// The LAZ (de)compressor reported an error.
    #[error("{}: laz {action}: {message}", path.display())]
    Laz {
        /// The file concerned.
        path: PathBuf,
        /// What was being done.
        action: String,
        /// The compressor's message.
        message: String,
    },

    /// A caller-supplied argument does not fit the file (e.g. class array length).
    #[error("{}: bad argument {field} = {value}: {reason}", path.display())]
    Argument {
        /// The file concerned.
        path: PathBuf,
        /// The argument.
        field: String,
        /// Its value.
        value: String,
        /// Why it does not fit.
        reason: String,
    },
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Builds an [`Error::Io`].
    pub(crate) fn io(path: &Path, action: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            action: action.into(),
            cause: source,
        }
    }

    /// Builds an [`Error::Invalid`].
    pub(crate) fn invalid(
        path: &Path,
        field: impl Into<String>,
        value: impl ToString,
        reason: impl Into<String>,
    ) -> Self {
        Error::Invalid {
            path: path.to_path_buf(),
            field: field.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// Builds an [`Error::Truncated`].
    pub(crate) fn truncated(
        path: &Path,
        field: impl Into<String>,
        expected: impl ToString,
        found: impl ToString,
    ) -> Self {
        Error::Truncated {
            path: path.to_path_buf(),
            field: field.into(),
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }

    /// Builds an [`Error::Unsupported`].
    pub(crate) fn unsupported(
        path: &Path,
        field: impl Into<String>,
        value: impl ToString,
        reason: impl Into<String>,
    ) -> Self {
        Error::Unsupported {
            path: path.to_path_buf(),
            field: field.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// Builds an [`Error::Argument`].
    pub(crate) fn argument(
        path: &Path,
        field: impl Into<String>,
        value: impl ToString,
        reason: impl Into<String>,
    ) -> Self {
        Error::Argument {
            path: path.to_path_buf(),
            field: field.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// Builds an [`Error::Empty`].
    pub(crate) fn empty(path: &Path, what: impl Into<String>) -> Self {
        Error::Empty {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }

    /// Builds an [`Error::CountMismatch`].
    pub(crate) fn count(path: &Path, field: impl Into<String>, expected: u64, found: u64) -> Self {
        Error::CountMismatch {
            path: path.to_path_buf(),
            field: field.into(),
            expected,
            found,
        }
    }

    /// The path of the file this error is about.
    pub fn path(&self) -> &Path {
        match self {
            Error::Io { path, .. }
            | Error::UnknownFormat { path, .. }
            | Error::Invalid { path, .. }
            | Error::Truncated { path, .. }
            | Error::CountMismatch { path, .. }
            | Error::NonFinite { path, .. }
            | Error::Empty { path, .. }
            | Error::OutputExists { path }
            | Error::OutputIsInput { path, .. }
            | Error::Unsupported { path, .. }
            | Error::Laz { path, .. }
            | Error::Argument { path, .. } => path,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_path_field_and_value() {
        let e = Error::invalid(
            Path::new("/d/a.ply"),
            "property x",
            "int",
            "must be float or double",
        );
        let s = e.to_string();
        assert!(
            s.contains("/d/a.ply") && s.contains("property x") && s.contains("int"),
            "{s}"
        );
        assert_eq!(e.path(), Path::new("/d/a.ply"));
        let s = Error::NonFinite {
            path: "f.txt".into(),
            field: "y",
            value: f64::NAN,
            index: 7,
        }
        .to_string();
        assert!(
            s.contains("f.txt") && s.contains("NaN") && s.contains("point 7"),
            "{s}"
        );
    }

    /// The OS error is said once: in the message, which a report of the error's chain (each
    /// source in turn, as anyhow prints it) would otherwise repeat.
    #[test]
    fn an_io_error_says_its_cause_once() {
        let e = Error::io(
            Path::new("/d/out.laz"),
            "write",
            std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device"),
        );
        let mut chain = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            chain += &format!(": {s}");
            source = s.source();
        }
        assert_eq!(chain, "/d/out.laz: write: No space left on device");
    }
}
