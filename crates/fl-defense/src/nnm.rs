//! Nearest-neighbour mixing (Allouah et al., "Fixing by mixing: a recipe for optimal
//! Byzantine ML under heterogeneity", AISTATS 2023; as ByzFL's `NNM`): every update is
//! replaced by the mean of its n - f nearest updates (itself included, Euclidean distance,
//! ties by client id). A pre-aggregation step: `aggregator = "nnm+<rule>"`.

use crate::check::at_least_one;
use crate::mix::{Mixed, PreAggregator, PreParams};
use fl_core::error::{CoreError, Result};
use fl_core::geometry::mean;
use fl_core::geometry::sq_distance;
use fl_core::{ServerRound, Update};
use serde::{Deserialize, Serialize};

/// The `[defense.nnm]` section.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Nnm {
    /// Attackers assumed: each update is mixed with its n - f nearest (default 1).
    pub f: usize,
}

impl Default for Nnm {
    fn default() -> Self {
        Self { f: 1 }
    }
}

impl PreParams for Nnm {
    fn validate(&self) -> Result<()> {
        at_least_one("f", self.f, "mix every update with all others, the mean")
    }
    fn build(&self) -> Box<dyn PreAggregator> {
        Box::new(*self)
    }
}

impl PreAggregator for Nnm {
    fn mix(&mut self, _: &ServerRound<'_>, updates: &[Update]) -> Result<Vec<Mixed>> {
        let n = updates.len();
        if self.f >= n {
            return Err(CoreError::Aggregation(format!(
                "nnm: f = {} leaves no neighbour among {n} updates",
                self.f
            )));
        }
        let k = n - self.f;
        Ok((0..n)
            .map(|i| {
                let mut order: Vec<(f64, usize)> = (0..n)
                    .map(|j| (sq_distance(&updates[i].delta, &updates[j].delta), j))
                    .collect();
                order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                let mut from: Vec<usize> = order[..k].iter().map(|p| p.1).collect();
                let delta = mean(
                    &from
                        .iter()
                        .map(|&j| updates[j].delta.as_slice())
                        .collect::<Vec<_>>(),
                );
                from.sort_unstable();
                Mixed {
                    update: Update {
                        delta,
                        ..updates[i].clone()
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
    fn each_update_becomes_the_mean_of_its_nearest() {
        // On a line: 0, 1, 10. With f = 1 each takes its 2 nearest: 0 -> (0, 1), 1 -> (1, 0),
        // 10 -> (10, 1).
        let u = ups(&[&[0.0], &[1.0], &[10.0]]);
        let out = Nnm { f: 1 }.mix(&round(), &u).unwrap();
        let v: Vec<f32> = out.iter().map(|m| m.update.delta[0]).collect();
        assert_eq!(v, [0.5, 0.5, 5.5]);
        assert_eq!(out[2].from, [1, 2]);
        assert_eq!(out[0].update.num_samples, 10, "an update keeps its weight");
        assert!(Nnm { f: 3 }.mix(&round(), &u).is_err());
        assert!(Nnm { f: 0 }.validate().is_err());
    }
}
