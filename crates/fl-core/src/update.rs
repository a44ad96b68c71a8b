//! What a participant sends the server, and the aggregation interface.

use crate::error::{CoreError, Result};
use std::collections::BTreeMap;

/// A participant's update for one round: the change it proposes to the global parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// The client that sent it.
    pub client: usize,
    /// Local parameters minus global parameters.
    pub delta: Vec<f32>,
    /// Samples it trained on (FedAvg's weight).
    pub num_samples: usize,
    /// Its mean local training loss.
    pub train_loss: f64,
}

/// What the server knows of the round it aggregates, besides the updates.
#[derive(Debug, Clone, Copy)]
pub struct ServerRound<'a> {
    /// The round, from 1.
    pub round: usize,
    /// The run's seed (rules that draw randomness derive their streams from it and the round).
    pub seed: u64,
    /// The global parameters the round started from (before this round's step).
    pub global: &'a [f32],
    /// The data the server holds, where the run gives it some (`server_samples`), with what
    /// it needs to train on it.
    pub server: Option<ServerData<'a>>,
}

/// The server's own data (a root set) and the model and local-training parameters of the
/// run, for rules that train on it (FLTrust).
#[derive(Clone, Copy)]
pub struct ServerData<'a> {
    /// The samples.
    pub data: &'a crate::data::LocalData,
    /// The run's model.
    pub spec: &'a crate::train::ModelSpec,
    /// The run's local-training parameters.
    pub train: &'a crate::train::TrainConfig,
}

impl std::fmt::Debug for ServerData<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ServerData({} samples, {:?})",
            self.data.len(),
            self.spec.kind
        )
    }
}

/// The server's result for one round.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The step added to the global parameters.
    pub delta: Vec<f32>,
    /// Clients whose updates counted (for robust rules, those not discarded).
    pub kept: Vec<usize>,
    /// The rule's own figures for the round (e.g. the clipping bound it used), written to
    /// `metrics.jsonl` under `server`.
    pub metrics: BTreeMap<String, f64>,
}

impl Aggregate {
    /// A step and the clients it kept, with no figures of the rule's own.
    pub fn new(delta: Vec<f32>, kept: Vec<usize>) -> Self {
        Self {
            delta,
            kept,
            metrics: BTreeMap::new(),
        }
    }

    /// The same, with the figure `name` set to `value`.
    pub fn with_metric(mut self, name: &str, value: f64) -> Self {
        self.metrics.insert(name.to_string(), value);
        self
    }
}

/// A server-side aggregation rule on flat updates (FedAvg, and the robust rules of fl-defense),
/// in the spirit of Flower's Strategy: the federation calls it once per round with the round,
/// the seed and the global parameters; it may keep whatever state it needs across rounds
/// (`&mut self`: momentum, client histories, reputations) and hold server data where its paper
/// gives it some (a root or validation set, passed to its constructor), and it returns the
/// step, the clients it kept and its own per-round figures.
///
/// A rule has no name of its own: configs name rules, and the registry that builds them
/// (`fl_defense::RULES`) is the one place a name is written.
pub trait Aggregator: Send {
    /// Combines the round's updates (never empty, all of one length, ordered by client id)
    /// into one step.
    fn aggregate(&mut self, round: &ServerRound<'_>, updates: &[Update]) -> Result<Aggregate>;

    /// What the rule keeps across rounds, for a checkpoint: `Some(empty)` for a rule without
    /// state, `None` (the default) when it cannot be saved, and then runs with it are not
    /// checkpointed (a resumed run would silently differ).
    fn state(&self) -> Option<Vec<u8>> {
        None
    }

    /// Restores what [`Aggregator::state`] saved.
    fn set_state(&mut self, state: &[u8]) -> Result<()> {
        crate::checkpoint::stateless("this aggregator", state)
    }
}

/// Checks that updates are non-empty and of one length; returns that length.
pub fn check_updates(updates: &[Update]) -> Result<usize> {
    let first = updates
        .first()
        .ok_or_else(|| CoreError::Aggregation("no updates to aggregate".into()))?;
    let len = first.delta.len();
    if let Some(u) = updates.iter().find(|u| u.delta.len() != len) {
        return Err(CoreError::Aggregation(format!(
            "update of client {} has {} values, client {} sent {len}",
            u.client,
            u.delta.len(),
            first.client
        )));
    }
    Ok(len)
}

/// The mean of `updates` weighted by sample count, accumulated in f64.
pub fn weighted_mean(updates: &[&Update]) -> Result<Vec<f32>> {
    let len = updates.first().map_or(0, |u| u.delta.len());
    let total: f64 = updates.iter().map(|u| u.num_samples as f64).sum();
    if total <= 0.0 {
        return Err(CoreError::Aggregation(
            "a weighted mean needs at least one update with samples".into(),
        ));
    }
    let mut acc = vec![0.0f64; len];
    for u in updates {
        let w = u.num_samples as f64 / total;
        for (a, &d) in acc.iter_mut().zip(&u.delta) {
            *a += w * d as f64;
        }
    }
    Ok(acc.into_iter().map(|x| x as f32).collect())
}

/// Federated averaging (McMahan et al.): the mean of the updates weighted by sample count.
#[derive(Debug, Clone, Copy, Default)]
pub struct FedAvg;

impl Aggregator for FedAvg {
    fn state(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
    }

    fn aggregate(&mut self, _: &ServerRound<'_>, updates: &[Update]) -> Result<Aggregate> {
        check_updates(updates)?;
        Ok(Aggregate::new(
            weighted_mean(&updates.iter().collect::<Vec<_>>())?,
            updates.iter().map(|u| u.client).collect(),
        ))
    }
}

/// The plain mean of the updates, every client weighing the same whatever its number of
/// samples: the FedPoisonMIA authors' rule without defense (`naive_average`), and the
/// averaging of ByzFL (`Average`) and most robust-aggregation papers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mean;

impl Aggregator for Mean {
    fn state(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
    }

    fn aggregate(&mut self, _: &ServerRound<'_>, updates: &[Update]) -> Result<Aggregate> {
        let len = check_updates(updates)?;
        let mut acc = vec![0.0f64; len];
        for u in updates {
            acc.iter_mut()
                .zip(&u.delta)
                .for_each(|(a, &d)| *a += d as f64);
        }
        let n = updates.len() as f64;
        Ok(Aggregate::new(
            acc.into_iter().map(|x| (x / n) as f32).collect(),
            updates.iter().map(|u| u.client).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fedavg(updates: &[Update]) -> Result<Aggregate> {
        let round = ServerRound {
            round: 1,
            seed: 0,
            global: &[],
            server: None,
        };
        FedAvg.aggregate(&round, updates)
    }

    fn up(client: usize, delta: Vec<f32>, n: usize) -> Update {
        Update {
            client,
            delta,
            num_samples: n,
            train_loss: 0.0,
        }
    }

    #[test]
    fn the_plain_mean_ignores_sample_counts() {
        let round = ServerRound {
            round: 1,
            seed: 0,
            global: &[],
            server: None,
        };
        let a = Mean
            .aggregate(
                &round,
                &[up(0, vec![1.0, 0.0], 1), up(1, vec![4.0, 8.0], 3)],
            )
            .unwrap();
        assert_eq!(a.delta, vec![2.5, 4.0]);
        assert_eq!(a.kept, vec![0, 1]);
        assert!(Mean.aggregate(&round, &[]).is_err());
    }

    #[test]
    fn fedavg_weighted_by_hand() {
        let a = fedavg(&[up(0, vec![1.0, 0.0], 1), up(1, vec![4.0, 8.0], 3)]).unwrap();
        assert_eq!(a.delta, vec![3.25, 6.0]);
        assert_eq!(a.kept, vec![0, 1]);
    }

    #[test]
    fn fedavg_of_identical_updates_is_that_update() {
        let u: Vec<Update> = (0..5)
            .map(|k| up(k, vec![0.5, -2.0, 7.0], 10 + k))
            .collect();
        assert_eq!(fedavg(&u).unwrap().delta, vec![0.5, -2.0, 7.0]);
    }

    #[test]
    fn fedavg_is_permutation_invariant() {
        let u = vec![
            up(0, vec![1.0], 2),
            up(1, vec![2.0], 5),
            up(2, vec![-3.0], 1),
        ];
        let mut r = u.clone();
        r.reverse();
        let (a, b) = (fedavg(&u).unwrap(), fedavg(&r).unwrap());
        assert!((a.delta[0] - b.delta[0]).abs() < 1e-6);
    }

    #[test]
    fn rejects_empty_and_ragged() {
        assert!(fedavg(&[]).is_err());
        let e = fedavg(&[up(0, vec![1.0], 1), up(1, vec![1.0, 2.0], 1)]).unwrap_err();
        assert!(e.to_string().contains("client 1 has 2 values"), "{e}");
    }
}
