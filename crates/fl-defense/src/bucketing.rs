//! Bucketing (Karimireddy, He and Jaggi, "Byzantine-robust learning on heterogeneous datasets
//! via bucketing", ICLR 2022; as ByzFL's `Bucketing`): the updates, in a random order from
//! `stream(seed, "bucketing", [round])`, cut into buckets of `s`, each bucket averaged (equal
//! weights; the last holds the remainder when s does not divide n). A pre-aggregation step:
//! `aggregator = "bucketing+<rule>"`.

use crate::check::at_least_one;
use crate::mix::{Mixed, PreAggregator, PreParams};
use fl_core::error::Result;
use fl_core::geometry::mean;
use fl_core::{ServerRound, Update};
use fl_data::rng::stream;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

/// The `[defense.bucketing]` section.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bucketing {
    /// Updates per bucket (default 2, the paper's).
    pub s: usize,
}

impl Default for Bucketing {
    fn default() -> Self {
        Self { s: 2 }
    }
}

impl PreParams for Bucketing {
    fn validate(&self) -> Result<()> {
        at_least_one("s", self.s, "leave no update in any bucket")
    }
    fn build(&self) -> Box<dyn PreAggregator> {
        Box::new(*self)
    }
}

impl PreAggregator for Bucketing {
    fn mix(&mut self, round: &ServerRound<'_>, updates: &[Update]) -> Result<Vec<Mixed>> {
        let mut order: Vec<usize> = (0..updates.len()).collect();
        order.shuffle(&mut stream(round.seed, "bucketing", &[round.round as u64]));
        Ok(order
            .chunks(self.s)
            .map(|bucket| {
                let delta = mean(
                    &bucket
                        .iter()
                        .map(|&i| updates[i].delta.as_slice())
                        .collect::<Vec<_>>(),
                );
                let mut from = bucket.to_vec();
                from.sort_unstable();
                Mixed {
                    update: Update {
                        client: 0,
                        delta,
                        num_samples: bucket.iter().map(|&i| updates[i].num_samples).sum(),
                        train_loss: bucket.iter().map(|&i| updates[i].train_loss).sum::<f64>()
                            / bucket.len() as f64,
                    },
                    from,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{round, ups};

    #[test]
    fn buckets_partition_the_updates_and_average_them() {
        let u = ups(&[&[1.0], &[2.0], &[4.0], &[8.0], &[16.0]]);
        let out = Bucketing { s: 2 }.mix(&round(), &u).unwrap();
        // 5 updates in buckets of 2: 2 + 2 + 1.
        let sizes: Vec<usize> = out.iter().map(|m| m.from.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
        let mut all: Vec<usize> = out.iter().flat_map(|m| m.from.clone()).collect();
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2, 3, 4], "every update in exactly one bucket");
        for m in &out {
            let mean = m.from.iter().map(|&i| u[i].delta[0]).sum::<f32>() / m.from.len() as f32;
            assert_eq!(m.update.delta[0], mean);
            assert_eq!(m.update.num_samples, 10 * m.from.len());
        }
        // The order is the round's: the same round gives the same buckets, another round
        // (almost surely) others.
        let again = Bucketing { s: 2 }.mix(&round(), &u).unwrap();
        assert_eq!(
            out.iter().map(|m| m.from.clone()).collect::<Vec<_>>(),
            again.iter().map(|m| m.from.clone()).collect::<Vec<_>>()
        );
        assert!(Bucketing { s: 0 }.validate().is_err());
    }
}
