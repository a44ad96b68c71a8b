//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while reading, checking or splitting a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid IDX file.
    #[error("{path}: {reason}")]
    Idx {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The uncompressed bytes do not have the published SHA-256.
    #[error("{path}: SHA-256 of the uncompressed bytes is {actual}, expected {expected}")]
    Checksum {
        /// The file.
        path: PathBuf,
        /// The published digest.
        expected: String,
        /// The digest of the bytes read.
        actual: String,
    },
    /// Images and labels disagree.
    #[error("{0}")]
    Mismatch(String),
    /// Invalid partition parameters.
    #[error("invalid partition: {0}")]
    Partition(String),
    /// A dataset name that is not known.
    #[error("unknown dataset `{0}` (known: mnist, fashion-mnist)")]
    UnknownDataset(String),
    /// Fetching from a mirror failed.
    #[error("download of {url} failed: {reason}")]
    Download {
        /// Where it was fetched from.
        url: String,
        /// Why it failed.
        reason: String,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, DataError>;
