//! Adaptive IPM and ALIE: the attacker knows the server's rule and picks, each round, the
//! strength tau whose aggregate lands farthest from the benign mean, as ByzFL's
//! `Optimal_InnerProductManipulation` and `Optimal_ALittleIsEnough` do (after Allouah et al.,
//! 2023; the approach of Fang et al., 2020 and Shejwalkar and Houmansadr, 2021: search the
//! strength the rule in force lets through).
//!
//! The search, exactly ByzFL's: evaluate tau = `start`; expansion: step up by `delta`,
//! doubling it while the distance grows, until it does not (then the step shrinks by
//! `ratio`); contraction: try best + step, shrinking the step by `ratio` each time, until
//! `evals` evaluations are spent. Each evaluation aggregates the round's benign updates and
//! the attack's sampled clients' copies of the candidate with a copy of the server's rule,
//! whose state is restored before every try (so a rule with state, such as centered clipping,
//! is simulated from where the attacker's copy stands). The copy uses the run's seed, so for
//! a randomised rule (bucketing) the attacker predicts the server's draw: an upper bound on
//! what an attacker without the server's randomness can do.

use super::alie::Alie;
use super::ipm::Ipm;
use super::{Craft, CraftContext, RuleCopy, check_benign, mean};
use fl_core::Aggregator;
use fl_core::error::{CoreError, Result};
use fl_core::geometry::sq_distance;
use serde::{Deserialize, Serialize};

/// The `[attack.adaptive]` section: the search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchParams {
    /// Aggregations tried per round (default 20, ByzFL's).
    pub evals: usize,
    /// The first tau (default 0).
    pub start: f64,
    /// The first step (default 10).
    pub delta: f64,
    /// The step's shrink factor, in (0.5, 1) (default 0.8).
    pub ratio: f64,
}

impl Default for SearchParams {
    fn default() -> Self {
        Self {
            evals: 20,
            start: 0.0,
            delta: 10.0,
            ratio: 0.8,
        }
    }
}

impl SearchParams {
    /// Refuses no evaluation, a zero or non-finite step, a ratio outside (0.5, 1).
    pub fn validate(&self) -> Result<()> {
        let fine = self.evals > 0
            && self.start.is_finite()
            && self.delta.is_finite()
            && self.delta != 0.0
            && self.ratio > 0.5
            && self.ratio < 1.0;
        if !fine {
            return Err(CoreError::Config(format!(
                "attack.adaptive needs evals >= 1, a finite start, a non-zero delta and a ratio \
                 in (0.5, 1); got evals {}, start {}, delta {}, ratio {}",
                self.evals, self.start, self.delta, self.ratio
            )));
        }
        Ok(())
    }
}

/// Which attack's strength is searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scaled {
    /// `-tau x mean`.
    Ipm,
    /// `mean + tau x std`.
    Alie,
}

/// An attack whose strength is searched against a copy of the server's rule.
pub struct AdaptiveAttack {
    scaled: Scaled,
    search: SearchParams,
    rule: Box<dyn Aggregator>,
    tau: Option<f64>,
}

impl AdaptiveAttack {
    /// The attack `scaled` searching with `search` against `rule`, the attacker's copy of
    /// the server's rule; refuses a rule whose state cannot be saved and restored.
    pub fn new(scaled: Scaled, search: SearchParams, rule: Box<dyn Aggregator>) -> Result<Self> {
        if rule.state().is_none() {
            return Err(CoreError::Config(
                "an adaptive attack simulates the server's rule and needs one whose state can \
                 be saved (this rule's cannot)"
                    .into(),
            ));
        }
        Ok(Self {
            scaled,
            search,
            rule,
            tau: None,
        })
    }
}

/// The attack `scaled` at strength `tau`.
fn candidate(
    scaled: Scaled,
    benign: &[&[f32]],
    tau: f64,
    ctx: CraftContext<'_>,
) -> Result<Vec<f32>> {
    match scaled {
        Scaled::Ipm => Ipm { tau }.craft(benign, ctx),
        Scaled::Alie => Alie { tau }.craft(benign, ctx),
    }
}

impl Craft for AdaptiveAttack {
    fn craft(&mut self, benign: &[&[f32]], ctx: CraftContext<'_>) -> Result<Vec<f32>> {
        check_benign("an adaptive attack", benign)?;
        let target = mean(benign);
        let scaled = self.scaled;
        let mut copy = RuleCopy::new(self.rule.as_mut(), benign, ctx)?;
        let mut distance = |tau: f64| -> Result<f64> {
            let v = candidate(scaled, benign, tau, ctx)?;
            Ok(sq_distance(&copy.aggregate(&v)?.delta, &target).sqrt())
        };
        let s = self.search;
        let mut best = s.start;
        let mut best_y = distance(best)?;
        let mut step = s.delta;
        let mut left = s.evals - 1;
        // Expansion.
        while left > 0 {
            let x = best + step;
            let y = distance(x)?;
            left -= 1;
            if y > best_y {
                (best, best_y) = (x, y);
                step *= 2.0;
            } else {
                step *= s.ratio;
                break;
            }
        }
        // Contraction.
        while left > 0 {
            let x = best + step;
            let y = distance(x)?;
            left -= 1;
            if y > best_y {
                (best, best_y) = (x, y);
            }
            step *= s.ratio;
        }
        self.tau = Some(best);
        candidate(scaled, benign, best, ctx)
    }

    fn strength(&self) -> Option<f64> {
        self.tau
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::{ctx, refs};
    use fl_core::{Aggregate, FedAvg, ServerRound, Update};

    #[test]
    fn under_the_mean_the_search_climbs_and_keeps_the_largest_tau_tried() {
        // Against the plain mean the distance grows with tau without bound: expansion doubles
        // the step until the evaluations run out: 0, 10, 30, 70, ... (19 steps up).
        let v = vec![vec![1.0f32, 0.0], vec![3.0, 0.0], vec![2.0, 1.0]];
        let mut a =
            AdaptiveAttack::new(Scaled::Ipm, SearchParams::default(), Box::new(FedAvg)).unwrap();
        a.craft(&refs(&v), ctx()).unwrap();
        let expected = 10.0 * (2f64.powi(19) - 1.0);
        assert_eq!(a.strength(), Some(expected));
    }

    /// The median of three: two benign at 0 and 10, one malicious copy.
    struct MedianOf3;
    impl Aggregator for MedianOf3 {
        fn state(&self) -> Option<Vec<u8>> {
            Some(Vec::new())
        }
        fn aggregate(&mut self, _: &ServerRound<'_>, u: &[Update]) -> Result<Aggregate> {
            let mut x: Vec<f32> = u.iter().map(|u| u.delta[0]).collect();
            x.sort_by(f32::total_cmp);
            Ok(Aggregate::new(vec![x[1]], vec![]))
        }
    }

    #[test]
    fn a_bounded_rule_stops_the_climb_where_it_stops_helping() {
        // Benign 0 and 10 (mean 5); IPM sends -5 tau; the median of (0, 10, -5 tau) is 0 for
        // any tau >= 0, so every tau is as good as tau = 0 and the search keeps the start.
        let v = vec![vec![0.0f32], vec![10.0]];
        let one = CraftContext {
            malicious: 1,
            ..ctx()
        };
        let mut a =
            AdaptiveAttack::new(Scaled::Ipm, SearchParams::default(), Box::new(MedianOf3)).unwrap();
        let out = a.craft(&refs(&v), one).unwrap();
        assert_eq!(a.strength(), Some(0.0));
        assert_eq!(out, [-0.0]);
        assert!(
            SearchParams {
                ratio: 0.5,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            SearchParams {
                evals: 0,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
    }
}
