//! The configuration of a federated run (the serde shape of a config file's core sections).

use crate::device::DeviceKind;
use crate::error::{CoreError, Result};
use crate::model::ModelKind;
use crate::train::TrainConfig;
use fl_data::DatasetKind;
use fl_data::partition::PartitionConfig;
use fl_data::pool::PoolConfig;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Everything that defines a plain FedAvg-style run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FedConfig {
    /// Name of the run (its output folder under `results/`).
    pub name: String,
    /// Which dataset.
    pub dataset: DatasetKind,
    /// Folder holding `<dataset>/<idx files>` (`data/` after `cargo xtask download`,
    /// `fixtures/` for the bundled subsets).
    pub data_dir: PathBuf,
    /// Number of clients.
    pub clients: usize,
    /// Share C of clients sampled each round (at least one is).
    pub fraction: f64,
    /// Maximum number of rounds.
    pub rounds: usize,
    /// Stop once test accuracy reaches this (e.g. 0.985); `None` runs all rounds.
    pub target_accuracy: Option<f64>,
    /// Architecture of the shared classifier.
    pub model: ModelKind,
    /// Local training.
    pub train: TrainConfig,
    /// How the training set is split over clients.
    pub partition: PartitionConfig,
    /// The aggregation rule by name.
    pub aggregator: String,
    /// Compute device.
    pub device: DeviceKind,
    /// Clients trained at once on CPU devices (0 = one per core).
    pub threads: usize,
    /// Evaluate the global model every this many rounds (and after the last).
    pub eval_every: usize,
    /// Evaluate on the first this many test images (`None` = all).
    pub test_samples: Option<usize>,
    /// The run's seed: every random choice derives from it.
    pub seed: u64,
    /// Staleness: each sampled client trains from the global model of up to this many rounds
    /// back (drawn uniformly from 0..=max_delay per client and round, seeded; never before
    /// the initial model), and its update is added to the current model. 0 (the default, not
    /// written to configs) is synchronous FedAvg.
    #[serde(skip_serializing_if = "is_zero")]
    pub max_delay: usize,
    /// The FedPoisonMIA authors' split instead of `[partition]`: training and test splits
    /// pooled, a reserve held out, equal shares (absent: the usual splits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolConfig>,
    /// Samples of the training distribution the server holds (a root set, for rules whose
    /// papers give the server data, such as FLTrust): drawn from the training split outside
    /// every client's share (with `[pool]`: from the reserve) by `stream(seed,
    /// "server-data")`. 0 (the default, not written to configs): none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub server_samples: usize,
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

impl Default for FedConfig {
    fn default() -> Self {
        Self {
            name: "fedavg".into(),
            dataset: DatasetKind::Mnist,
            data_dir: PathBuf::from("data"),
            clients: 10,
            fraction: 1.0,
            rounds: 20,
            target_accuracy: None,
            model: ModelKind::CNN,
            train: TrainConfig::default(),
            partition: PartitionConfig::default(),
            aggregator: "fedavg".into(),
            device: DeviceKind::Flex,
            threads: 0,
            eval_every: 1,
            test_samples: None,
            seed: 0,
            max_delay: 0,
            pool: None,
            server_samples: 0,
        }
    }
}

impl FedConfig {
    /// Checks every value that does not need the data.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(CoreError::Config(m));
        if self.clients == 0 {
            return bad("clients cannot be zero".into());
        }
        if !(self.fraction > 0.0 && self.fraction <= 1.0) {
            return bad(format!("fraction must be in (0, 1], got {}", self.fraction));
        }
        if self.rounds == 0 {
            return bad("rounds cannot be zero".into());
        }
        if let Some(t) = self.target_accuracy
            && !(0.0..=1.0).contains(&t)
        {
            return bad(format!("target_accuracy must be in [0, 1], got {t}"));
        }
        if self.eval_every == 0 {
            return bad("eval_every cannot be zero".into());
        }
        if self.test_samples == Some(0) {
            return bad("test_samples cannot be zero".into());
        }
        if self.name.is_empty() || self.name.contains(['/', '\\']) || self.name.starts_with('.') {
            return bad(format!("name `{}` must be a plain folder name", self.name));
        }
        self.train.validate()?;
        self.partition
            .validate(self.clients, self.dataset.classes())?;
        if let Some(pool) = &self.pool {
            pool.validate(self.clients)?;
            if self.partition != PartitionConfig::default() {
                return bad(
                    "[pool] deals the clients' shares itself: leave [partition] at its default"
                        .into(),
                );
            }
        }
        Ok(())
    }

    /// Clients sampled per round: round(C * clients), at least 1.
    pub fn clients_per_round(&self) -> usize {
        ((self.fraction * self.clients as f64).round() as usize).clamp(1, self.clients)
    }

    /// The number of worker threads for client training.
    pub fn worker_threads(&self) -> usize {
        if !self.device.is_cpu() {
            return 1;
        }
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(f: impl FnOnce(&mut FedConfig)) -> String {
        let mut c = FedConfig::default();
        f(&mut c);
        c.validate().unwrap_err().to_string()
    }

    #[test]
    fn default_is_valid() {
        FedConfig::default().validate().unwrap();
    }

    #[test]
    fn one_error_per_invalid_value() {
        assert!(err(|c| c.clients = 0).contains("clients"));
        assert!(err(|c| c.fraction = 0.0).contains("fraction"));
        assert!(err(|c| c.fraction = 1.5).contains("fraction"));
        assert!(err(|c| c.rounds = 0).contains("rounds"));
        assert!(err(|c| c.target_accuracy = Some(2.0)).contains("target_accuracy"));
        assert!(err(|c| c.eval_every = 0).contains("eval_every"));
        assert!(err(|c| c.test_samples = Some(0)).contains("test_samples"));
        assert!(
            err(|c| c.pool = Some(PoolConfig {
                empty_clients: vec![99],
                ..Default::default()
            }))
            .contains("empty client 99")
        );
        assert!(
            err(|c| {
                c.pool = Some(PoolConfig::default());
                c.partition.samples_per_client = Some(10);
            })
            .contains("leave [partition]")
        );
        assert!(err(|c| c.name = "../x".into()).contains("plain folder"));
        assert!(err(|c| c.train.lr = 0.0).contains("lr"));
        assert!(err(|c| c.train.momentum = 1.0).contains("momentum"));
        assert!(err(|c| c.train.weight_decay = -1.0).contains("weight_decay"));
        assert!(err(|c| c.train.batch_size = 0).contains("batch_size"));
        assert!(err(|c| c.train.epochs = 0).contains("epochs"));
        let adam = |c: &mut FedConfig| c.train.optimizer = crate::train::OptimizerKind::Adam;
        assert!(
            err(|c| {
                adam(c);
                c.train.momentum = 0.9;
            })
            .contains("momentum applies to sgd")
        );
        assert!(
            err(|c| {
                adam(c);
                c.train.adam.beta1 = 1.0;
            })
            .contains("adam.beta1")
        );
        assert!(
            err(|c| {
                adam(c);
                c.train.adam.beta2 = -0.1;
            })
            .contains("adam.beta2")
        );
        assert!(
            err(|c| {
                adam(c);
                c.train.adam.epsilon = 0.0;
            })
            .contains("adam.epsilon")
        );
    }

    #[test]
    fn clients_per_round_rounds_and_clamps() {
        let mut c = FedConfig {
            fraction: 0.25,
            ..Default::default()
        };
        assert_eq!(c.clients_per_round(), 3);
        c.fraction = 0.01;
        assert_eq!(c.clients_per_round(), 1);
    }
}
