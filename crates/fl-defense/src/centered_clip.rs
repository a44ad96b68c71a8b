//! Centered clipping: Karimireddy, He and Jaggi, "Learning from History for Byzantine Robust
//! Optimization", ICML 2021. Starting from the previous round's aggregate (the history the
//! paper's title speaks of; zero in the first round), `iterations` times: move the center by
//! the mean of the updates' differences to it, each clipped to norm `tau`:
//! v <- v + (1/n) sum_i (x_i - v) min(1, tau / |x_i - v|).
//!
//! Definition as ByzFL's `CenteredClipping(m, L, tau)`, whose `m` is this rule's kept center
//! (the lab's cross-check): the plain mean over the updates, not FedAvg's weights. The rule
//! keeps its center across rounds, and in checkpoints.

use crate::check::{at_least_one, positive};
use crate::config::RuleParams;
use fl_core::checkpoint::{decode, encode};
use fl_core::error::{CoreError, Result};
use fl_core::update::check_updates;
use fl_core::{Aggregate, Aggregator, ServerRound, Update};
use serde::{Deserialize, Serialize};

/// `[defense.centered-clip]`'s parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CenteredClipParams {
    /// Clipping radius around the center (default 100, ByzFL's; the paper tunes it).
    pub tau: f64,
    /// Clipping iterations per round (default 1, ByzFL's and the paper's).
    pub iterations: usize,
}

impl Default for CenteredClipParams {
    fn default() -> Self {
        Self {
            tau: 100.0,
            iterations: 1,
        }
    }
}

impl RuleParams for CenteredClipParams {
    fn validate(&self) -> Result<()> {
        positive("tau", self.tau)?;
        at_least_one("iterations", self.iterations, "repeat last round's step")
    }

    fn build(&self) -> Box<dyn Aggregator> {
        Box::new(CenteredClip {
            params: *self,
            center: None,
        })
    }
}

/// The rule: its parameters and the center it carries from round to round. Every client is
/// kept; `clipped` (per round) counts the updates farther than `tau` from the center in the
/// last iteration.
#[derive(Debug, Clone, PartialEq)]
pub struct CenteredClip {
    /// Its parameters.
    pub params: CenteredClipParams,
    /// The last round's aggregate (`None` before the first round: zero).
    pub center: Option<Vec<f64>>,
}

impl Aggregator for CenteredClip {
    fn state(&self) -> Option<Vec<u8>> {
        encode(&self.center).ok()
    }

    fn set_state(&mut self, state: &[u8]) -> Result<()> {
        self.center = decode(state)?;
        Ok(())
    }

    fn aggregate(&mut self, _: &ServerRound<'_>, updates: &[Update]) -> Result<Aggregate> {
        let d = check_updates(updates)?;
        let mut v: Vec<&Update> = updates.iter().collect();
        v.sort_by_key(|u| u.client);
        let mut center = match self.center.take() {
            Some(c) if c.len() == d => c,
            Some(c) => {
                return Err(CoreError::Aggregation(format!(
                    "centered-clip: its center has {} values, the updates {d}",
                    c.len()
                )));
            }
            None => vec![0.0; d],
        };
        let n = v.len() as f64;
        let mut clipped = 0;
        for _ in 0..self.params.iterations {
            clipped = 0;
            let mut step = vec![0.0f64; d];
            for u in &v {
                let dist = u
                    .delta
                    .iter()
                    .zip(&center)
                    .map(|(&x, &c)| (x as f64 - c).powi(2))
                    .sum::<f64>()
                    .sqrt();
                let scale = if dist > self.params.tau {
                    clipped += 1;
                    self.params.tau / dist
                } else {
                    1.0
                };
                for ((s, &x), &c) in step.iter_mut().zip(&u.delta).zip(&center) {
                    *s += (x as f64 - c) * scale / n;
                }
            }
            center.iter_mut().zip(&step).for_each(|(c, s)| *c += s);
        }
        let delta = center.iter().map(|&c| c as f32).collect();
        self.center = Some(center);
        Ok(Aggregate::new(delta, v.iter().map(|u| u.client).collect())
            .with_metric("clipped", clipped as f64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{round, ups};

    fn rule(tau: f64) -> Box<dyn Aggregator> {
        CenteredClipParams { tau, iterations: 1 }.build()
    }

    #[test]
    fn by_hand_and_across_rounds() {
        let mut r = rule(1.0);
        // From 0: [3, 0] is 3 away, clipped to [1, 0]; [0, 0.5] is within: mean [0.5, 0.25].
        let a = r
            .aggregate(&round(), &ups(&[&[3.0, 0.0], &[0.0, 0.5]]))
            .unwrap();
        assert_eq!(a.delta, [0.5, 0.25]);
        assert_eq!(a.metrics["clipped"], 1.0);
        // The next round starts from [0.5, 0.25]: [1.5, 0.25] is 1 away (not clipped),
        // [0.5, 0.25] is at it: the center moves by [0.5, 0].
        let next = ups(&[&[1.5, 0.25], &[0.5, 0.25]]);
        let b = r.aggregate(&round(), &next).unwrap();
        assert_eq!(b.delta, [1.0, 0.25]);
        // A rule without that history gives something else for the same updates.
        let fresh = rule(1.0).aggregate(&round(), &next).unwrap();
        assert_ne!(fresh.delta, b.delta);
        // Its state carries the center through a checkpoint.
        let saved = r.state().unwrap();
        let mut restored = rule(1.0);
        restored.set_state(&saved).unwrap();
        assert_eq!(
            restored.aggregate(&round(), &next).unwrap(),
            r.aggregate(&round(), &next).unwrap()
        );
    }

    #[test]
    fn a_far_update_moves_the_center_by_tau_over_n_at_most() {
        let mut r = rule(0.5);
        let a = r
            .aggregate(&round(), &ups(&[&[0.0], &[0.0], &[0.0], &[1e6]]))
            .unwrap();
        assert!((a.delta[0] - 0.125).abs() < 1e-7, "{}", a.delta[0]);
    }

    #[test]
    fn checked() {
        let bad = |p: CenteredClipParams| p.validate().is_err();
        assert!(bad(CenteredClipParams {
            tau: 0.0,
            ..Default::default()
        }));
        assert!(bad(CenteredClipParams {
            iterations: 0,
            ..Default::default()
        }));
        let mut r = rule(1.0);
        r.aggregate(&round(), &ups(&[&[1.0, 2.0]])).unwrap();
        let err = r
            .aggregate(&round(), &ups(&[&[1.0]]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("its center has 2 values"), "{err}");
    }
}
