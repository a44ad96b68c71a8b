//! The summary of a run (`summary.json`): the figures a person reads first.

use fl_core::{FedConfig, RoundMetrics};
use serde::{Deserialize, Serialize};

/// Wall-time totals of a run, in seconds.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TimeSummary {
    /// All rounds.
    pub total_s: f64,
    /// Mean per round.
    pub mean_round_s: f64,
    /// Local training, summed over rounds.
    pub train_s: f64,
    /// Aggregation, summed.
    pub aggregate_s: f64,
    /// Evaluation, summed.
    pub eval_s: f64,
}

/// Headline numbers of a federated run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Run name.
    pub name: String,
    /// Dataset.
    pub dataset: String,
    /// Model.
    pub model: String,
    /// Number of model parameters.
    pub parameters: usize,
    /// Clients.
    pub clients: usize,
    /// Seed.
    pub seed: u64,
    /// Rounds run (fewer than configured when the target was reached).
    pub rounds_run: usize,
    /// Test accuracy after the last round.
    pub final_accuracy: f64,
    /// Test loss after the last round.
    pub final_test_loss: f64,
    /// Best test accuracy over the rounds.
    pub best_accuracy: f64,
    /// Round of the best accuracy.
    pub best_round: usize,
    /// The configured target, if any.
    pub target_accuracy: Option<f64>,
    /// First round whose accuracy reached the target.
    pub rounds_to_target: Option<usize>,
    /// Per-class test accuracy after the last round.
    pub final_per_class_accuracy: Vec<f64>,
    /// Timings (left out of snapshots: they vary).
    pub time: TimeSummary,
}

pub use fl_core::eval::round6;

impl Summary {
    /// Builds the summary from the rounds' metrics.
    pub fn new(config: &FedConfig, parameters: usize, rounds: &[RoundMetrics]) -> Self {
        let evaluated: Vec<(usize, &fl_core::eval::Evaluation)> = rounds
            .iter()
            .filter_map(|m| m.test.as_ref().map(|e| (m.round, e)))
            .collect();
        let last = evaluated.last();
        let (best_round, best) = evaluated.iter().fold((0, 0.0f64), |(br, b), &(r, e)| {
            if e.accuracy > b {
                (r, e.accuracy)
            } else {
                (br, b)
            }
        });
        let rounds_to_target = config.target_accuracy.and_then(|t| {
            evaluated
                .iter()
                .find(|(_, e)| e.accuracy >= t)
                .map(|&(r, _)| r)
        });
        let sum = |f: fn(&RoundMetrics) -> f64| rounds.iter().map(f).sum::<f64>();
        let total_s = sum(|m| m.time.total_s);
        Self {
            name: config.name.clone(),
            dataset: config.dataset.name().into(),
            model: config.model.name().into(),
            parameters,
            clients: config.clients,
            seed: config.seed,
            rounds_run: rounds.len(),
            final_accuracy: last.map_or(0.0, |(_, e)| round6(e.accuracy)),
            final_test_loss: last.map_or(f64::NAN, |(_, e)| round6(e.loss)),
            best_accuracy: round6(best),
            best_round,
            target_accuracy: config.target_accuracy,
            rounds_to_target,
            final_per_class_accuracy: last
                .map(|(_, e)| e.per_class_accuracy.iter().map(|&a| round6(a)).collect())
                .unwrap_or_default(),
            time: TimeSummary {
                total_s,
                mean_round_s: total_s / rounds.len().max(1) as f64,
                train_s: sum(|m| m.time.train_s),
                aggregate_s: sum(|m| m.time.aggregate_s),
                eval_s: sum(|m| m.time.eval_s),
            },
        }
    }
}
