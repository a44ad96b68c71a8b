//! The one error type of this crate.

/// What can go wrong in the federated core.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A data error (reading, partitioning).
    #[error(transparent)]
    Data(#[from] fl_data::DataError),
    /// An invalid configuration value.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The global model's parameters are no longer finite.
    #[error("the global model diverged in round {round}: {what} is not finite")]
    Divergent {
        /// The round in which it happened.
        round: usize,
        /// What was found not finite.
        what: String,
    },
    /// An aggregation rule cannot apply to these updates.
    #[error("aggregation failed: {0}")]
    Aggregation(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A participant failed.
    #[error("participant {client} failed: {reason}")]
    Participant {
        /// Which client.
        client: usize,
        /// Why.
        reason: String,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, CoreError>;
