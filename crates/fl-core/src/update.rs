//! What a participant sends the server, and the aggregation interface.

use crate::error::{CoreError, Result};

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

/// The server's result for one round.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The step added to the global parameters.
    pub delta: Vec<f32>,
    /// Clients whose updates counted (for robust rules, those not discarded).
    pub kept: Vec<usize>,
}

/// A server-side aggregation rule on flat updates (FedAvg, and the robust rules of fl-defense).
pub trait Aggregator: Send + Sync {
    /// The name in configs.
    fn name(&self) -> &str;
    /// Combines the round's updates (never empty, all of one length) into one step.
    fn aggregate(&self, updates: &[Update]) -> Result<Aggregate>;

    /// [`Aggregator::aggregate`] for round `round` of a run seeded `seed`; the federation calls
    /// this. Rules that draw randomness (DP noise) take it from these; others need not
    /// override it.
    fn aggregate_round(&self, updates: &[Update], round: usize, seed: u64) -> Result<Aggregate> {
        let _ = (round, seed);
        self.aggregate(updates)
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
    fn name(&self) -> &str {
        "fedavg"
    }

    fn aggregate(&self, updates: &[Update]) -> Result<Aggregate> {
        check_updates(updates)?;
        Ok(Aggregate {
            delta: weighted_mean(&updates.iter().collect::<Vec<_>>())?,
            kept: updates.iter().map(|u| u.client).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(client: usize, delta: Vec<f32>, n: usize) -> Update {
        Update {
            client,
            delta,
            num_samples: n,
            train_loss: 0.0,
        }
    }

    #[test]
    fn fedavg_weighted_by_hand() {
        let a = FedAvg
            .aggregate(&[up(0, vec![1.0, 0.0], 1), up(1, vec![4.0, 8.0], 3)])
            .unwrap();
        assert_eq!(a.delta, vec![3.25, 6.0]);
        assert_eq!(a.kept, vec![0, 1]);
    }

    #[test]
    fn fedavg_of_identical_updates_is_that_update() {
        let u: Vec<Update> = (0..5)
            .map(|k| up(k, vec![0.5, -2.0, 7.0], 10 + k))
            .collect();
        assert_eq!(FedAvg.aggregate(&u).unwrap().delta, vec![0.5, -2.0, 7.0]);
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
        let (a, b) = (FedAvg.aggregate(&u).unwrap(), FedAvg.aggregate(&r).unwrap());
        assert!((a.delta[0] - b.delta[0]).abs() < 1e-6);
    }

    #[test]
    fn rejects_empty_and_ragged() {
        assert!(FedAvg.aggregate(&[]).is_err());
        let e = FedAvg
            .aggregate(&[up(0, vec![1.0], 1), up(1, vec![1.0, 2.0], 1)])
            .unwrap_err();
        assert!(e.to_string().contains("client 1 has 2 values"), "{e}");
    }
}
