//! The federated-learning core every attack and defense stands on.
//!
//! - [`model`]: the architecture registry (`cnn`, `mlp`, `mlp-wide` with CPU kernels;
//!   `fedavg-cnn`, `resnet20` through burn; a new one is a burn module and one line), all with
//!   K + 1 outputs, the extra one being the "fake" class of the GAN attack, built for the image
//!   shape and classes of the dataset;
//! - [`params`]: model <-> flat `Vec<f32>` in a fixed order, seeded initialisation;
//! - [`train`]: local SGD or Adam with seeded shuffles, through the [`train::Trainer`] the
//!   spec picks (the CPU kernels, or burn's autodiff); [`eval`]: accuracy, per-class accuracy
//!   and confusion matrix;
//! - [`update`]: the [`Update`] a client sends and the [`Aggregator`] trait, with [`FedAvg`];
//!   [`geometry`]: norms, distances and angles between flat updates;
//! - [`participant`]: the [`Participant`] trait the protocol calls every client through;
//!   [`attack`]: the [`Attack`] seam (the clients an attack plays, what it records each
//!   round, its summary) and the one run loop; [`pool`]: the one worker pool (results in
//!   item order); [`checkpoint`]: what a run carries between rounds, saved and restored;
//! - [`federation`]: the round protocol; [`experiment`]: a whole run built from a
//!   [`FedConfig`];
//! - [`device`]: the compute device, chosen at run time; [`inference`] and [`backprop`]: the
//!   CPU forward pass and training step that evaluation and local training use on the flex
//!   device; [`matmul`]: their matrix product, in a summation order fixed by the shapes.
//!
//! ```no_run
//! use fl_core::{FedConfig, experiment::Experiment};
//! let cfg = FedConfig { data_dir: "fixtures".into(), rounds: 2, ..Default::default() };
//! let mut run = Experiment::build(&cfg)?;
//! let metrics = run.federation.run(&mut |m| println!("round {}", m.round))?;
//! # Ok::<(), fl_core::CoreError>(())
//! ```

pub mod attack;
pub mod backprop;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod device;
pub mod direct;
pub mod error;
pub mod eval;
pub mod experiment;
pub mod federation;
pub mod geometry;
pub mod inference;
pub mod matmul;
pub mod model;
pub mod norm;
pub mod params;
pub mod participant;
pub mod pool;
pub mod train;
pub mod update;

pub use attack::{Attack, MaliciousClients, NoAttack};
pub use config::FedConfig;
pub use device::{DeviceKind, DeviceMemory};
pub use error::{CoreError, Result};
pub use federation::{Federation, RoundMetrics};
pub use participant::{BenignClient, Participant, RoundContext};
pub use update::{Aggregate, Aggregator, FedAvg, Mean, ServerData, ServerRound, Update};
