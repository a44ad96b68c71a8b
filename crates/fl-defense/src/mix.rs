//! Pre-aggregation: a step that turns the round's updates into new vectors before a rule
//! aggregates them (nearest-neighbour mixing, bucketing), composable with any rule by name:
//! `aggregator = "nnm+krum"`, `"bucketing+nnm+median"` (applied left to right).
//!
//! Each mixed vector says which clients it is made from; the clients the final rule keeps
//! are reported as every client that went into the vectors it kept, so a malicious update
//! mixed into a kept vector counts as kept.

use fl_core::error::Result;
use fl_core::update::check_updates;
use fl_core::{Aggregate, Aggregator, ServerRound, Update};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// One vector out of a pre-aggregation step.
#[derive(Debug, Clone)]
pub struct Mixed {
    /// The vector, as an update (its client id is ignored: the composition numbers them).
    pub update: Update,
    /// Indices, into the step's input, of the updates it is made from.
    pub from: Vec<usize>,
}

/// A pre-aggregation step.
pub trait PreAggregator: Send {
    /// The step's output vectors from `updates` (ordered by client id).
    fn mix(&mut self, round: &ServerRound<'_>, updates: &[Update]) -> Result<Vec<Mixed>>;
}

/// The parameters of a pre-aggregation step (the serde shape of its `[defense.<name>]`).
pub trait PreParams: DeserializeOwned + Serialize + Default {
    /// Checks the values that do not depend on the number of updates.
    fn validate(&self) -> Result<()> {
        Ok(())
    }
    /// The step.
    fn build(&self) -> Box<dyn PreAggregator>;
}

/// Pre-aggregation steps, then a rule.
pub struct Composed {
    /// The steps, applied in order.
    pub steps: Vec<Box<dyn PreAggregator>>,
    /// The rule that aggregates their output.
    pub rule: Box<dyn Aggregator>,
}

impl Aggregator for Composed {
    /// The steps keep nothing across rounds; the state is the rule's.
    fn state(&self) -> Option<Vec<u8>> {
        self.rule.state()
    }

    fn set_state(&mut self, state: &[u8]) -> Result<()> {
        self.rule.set_state(state)
    }

    fn aggregate(&mut self, round: &ServerRound<'_>, updates: &[Update]) -> Result<Aggregate> {
        check_updates(updates)?;
        let mut current: Vec<Update> = updates.to_vec();
        current.sort_by_key(|u| u.client);
        // The clients each current vector is made from.
        let mut members: Vec<Vec<usize>> = current.iter().map(|u| vec![u.client]).collect();
        for step in &mut self.steps {
            let out = step.mix(round, &current)?;
            members = out
                .iter()
                .map(|m| {
                    let mut c: Vec<usize> =
                        m.from.iter().flat_map(|&i| members[i].clone()).collect();
                    c.sort_unstable();
                    c.dedup();
                    c
                })
                .collect();
            current = out
                .into_iter()
                .enumerate()
                .map(|(i, m)| Update {
                    client: i,
                    ..m.update
                })
                .collect();
        }
        let inner = self.rule.aggregate(round, &current)?;
        let mut kept: Vec<usize> = inner
            .kept
            .iter()
            .flat_map(|&i| members[i].clone())
            .collect();
        kept.sort_unstable();
        kept.dedup();
        Ok(Aggregate { kept, ..inner })
    }
}
