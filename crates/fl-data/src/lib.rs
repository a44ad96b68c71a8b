//! Data for federated-learning experiments: MNIST and Fashion-MNIST without any tensor library.
//!
//! - [`idx`] reads and writes IDX files (raw or gzip) with strict validation;
//! - [`Dataset`] holds `u8` pixels and labels, normalises to [-1, 1] on demand;
//! - [`partition`] splits a training set over clients (IID, Dirichlet, shards, contiguous),
//!   seeded, with classes withheld from chosen clients; [`pool`] is the FedPoisonMIA
//!   authors' split instead (training and test pooled, a reserve, equal shares);
//! - [`fetch`] gets the files from a local mirror or the official HTTP mirrors, checked by
//!   SHA-256 of the uncompressed bytes;
//! - [`rng::stream`] is the project's one way to make seeded randomness;
//! - [`atomic`] is its one way to write a file so no reader sees half of it.
//!
//! ```no_run
//! use fl_data::{Dataset, DatasetKind, Split, partition::PartitionConfig};
//! let train = Dataset::load("fixtures".as_ref(), DatasetKind::Mnist, Split::Train)?;
//! let parts = PartitionConfig::default().validate(10, train.classes())?.split(&train.labels, 42)?;
//! assert_eq!(parts.len(), 10);
//! # Ok::<(), fl_data::DataError>(())
//! ```

pub mod atomic;
pub mod checksum;
pub mod dataset;
pub mod error;
pub mod fetch;
pub mod idx;
pub mod partition;
pub mod pool;
pub mod rng;
pub mod scratch;

pub use dataset::{DataFile, Dataset, DatasetKind, ImageShape, Split};
pub use error::{DataError, Result};
