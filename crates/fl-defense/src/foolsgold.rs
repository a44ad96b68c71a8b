//! FoolsGold (Fung, Yoon and Beschastnikh, "The limitations of federated learning in Sybil
//! settings", RAID 2020): clients whose update histories point the same way (Sybils pushing
//! one objective) are down-weighted. Each client's history is the sum of all its updates so
//! far (state kept across rounds and in checkpoints). With cs the cosine similarities of the
//! round's clients' histories (0 on the diagonal and for a zero history), as the authors'
//! code: pardoning (cs_ij scaled by max_i / max_j where client i's largest similarity is
//! below j's), weight 1 - max_j cs_ij clipped to [0, 1], rescaled so the largest is 1 (then
//! 0.99), and `kappa (ln(w / (1 - w)) + 0.5)` clipped to [0, 1]. The aggregate is the mean of
//! the round's updates weighted by those weights (the authors apply the weighted sum as the
//! step; this lab divides by the weights' sum, so a round of distinct clients moves as FedAvg
//! with equal weights would). Clients of weight 0 are reported dropped; if every weight is 0
//! the step is zero.

use crate::config::RuleParams;
use fl_core::error::{CoreError, Result};
use fl_core::update::check_updates;
use fl_core::{Aggregate, Aggregator, ServerRound, Update};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `[defense.foolsgold]` section.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FoolsGoldParams {
    /// The logit's scale (default 1, the paper's).
    pub kappa: f64,
}

impl Default for FoolsGoldParams {
    fn default() -> Self {
        Self { kappa: 1.0 }
    }
}

impl RuleParams for FoolsGoldParams {
    fn validate(&self) -> Result<()> {
        crate::check::positive("kappa", self.kappa)
    }
    fn build(&self) -> Box<dyn Aggregator> {
        Box::new(FoolsGold {
            params: *self,
            history: BTreeMap::new(),
        })
    }
}

/// FoolsGold with its clients' update histories.
#[derive(Debug, Clone)]
pub struct FoolsGold {
    /// Its parameters.
    pub params: FoolsGoldParams,
    /// Each client's summed updates so far.
    pub history: BTreeMap<usize, Vec<f32>>,
}

/// The weights of clients with histories `h` (in order), as the authors' code computes them.
pub fn weights(h: &[&[f32]], kappa: f64) -> Vec<f64> {
    let n = h.len();
    let norms: Vec<f64> = h.iter().map(|v| fl_core::geometry::norm(v)).collect();
    let mut cs = vec![vec![0.0f64; n]; n];
    for i in 0..n {
        for j in 0..n {
            if i != j && norms[i] > 0.0 && norms[j] > 0.0 {
                cs[i][j] = fl_core::geometry::dot(h[i], h[j]) / (norms[i] * norms[j]);
            }
        }
    }
    let maxcs: Vec<f64> = cs
        .iter()
        .map(|r| r.iter().copied().fold(f64::MIN, f64::max))
        .collect();
    for i in 0..n {
        for j in 0..n {
            if i != j && maxcs[i] < maxcs[j] {
                cs[i][j] *= maxcs[i] / maxcs[j];
            }
        }
    }
    let mut wv: Vec<f64> = cs
        .iter()
        .map(|r| (1.0 - r.iter().copied().fold(f64::MIN, f64::max)).clamp(0.0, 1.0))
        .collect();
    let top = wv.iter().copied().fold(0.0, f64::max);
    if top == 0.0 {
        return vec![0.0; n];
    }
    for w in &mut wv {
        *w /= top;
        if *w == 1.0 {
            *w = 0.99;
        }
        *w = if *w == 0.0 {
            0.0
        } else {
            (kappa * ((*w / (1.0 - *w)).ln() + 0.5)).clamp(0.0, 1.0)
        };
    }
    wv
}

impl Aggregator for FoolsGold {
    fn state(&self) -> Option<Vec<u8>> {
        fl_core::checkpoint::encode(&self.history).ok()
    }

    fn set_state(&mut self, state: &[u8]) -> Result<()> {
        self.history = fl_core::checkpoint::decode(state)?;
        Ok(())
    }

    fn aggregate(&mut self, _: &ServerRound<'_>, updates: &[Update]) -> Result<Aggregate> {
        check_updates(updates)?;
        if updates.len() < 2 {
            return Err(CoreError::Aggregation(
                "foolsgold compares clients and needs at least two updates".into(),
            ));
        }
        let mut v: Vec<&Update> = updates.iter().collect();
        v.sort_by_key(|u| u.client);
        for u in &v {
            let h = self
                .history
                .entry(u.client)
                .or_insert_with(|| vec![0.0; u.delta.len()]);
            if h.len() != u.delta.len() {
                return Err(CoreError::Aggregation(format!(
                    "foolsgold: client {} sent {} values, its history has {}",
                    u.client,
                    u.delta.len(),
                    h.len()
                )));
            }
            for (a, d) in h.iter_mut().zip(&u.delta) {
                *a += d;
            }
        }
        let hist: Vec<&[f32]> = v
            .iter()
            .map(|u| self.history[&u.client].as_slice())
            .collect();
        let w = weights(&hist, self.params.kappa);
        let total: f64 = w.iter().sum();
        let len = v[0].delta.len();
        let mut acc = vec![0.0f64; len];
        if total > 0.0 {
            for (u, &wi) in v.iter().zip(&w) {
                for (a, &d) in acc.iter_mut().zip(&u.delta) {
                    *a += wi * d as f64;
                }
            }
            acc.iter_mut().for_each(|a| *a /= total);
        }
        let kept = v
            .iter()
            .zip(&w)
            .filter(|(_, w)| **w > 0.0)
            .map(|(u, _)| u.client)
            .collect();
        let zero = w.iter().filter(|w| **w == 0.0).count();
        Ok(
            Aggregate::new(acc.into_iter().map(|x| x as f32).collect(), kept)
                .with_metric("zero_weight", zero as f64),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{round, ups};

    #[test]
    fn sybils_pointing_the_same_way_get_no_weight() {
        // Two identical Sybils (clients 2 and 3) and two honest clients at right angles to
        // each other and to them. Sybils: cs = 1 with each other, 0 otherwise -> 1 - 1 = 0.
        // Honest: largest similarity 0 -> weight 1, rescaled 1 -> 0.99, logit(0.99) + 0.5 > 1
        // -> 1.
        let pts: [&[f32]; 4] = [
            &[1.0, 0.0, 0.0],
            &[0.0, 1.0, 0.0],
            &[0.0, 0.0, 1.0],
            &[0.0, 0.0, 1.0],
        ];
        let mut fg = FoolsGoldParams::default().build();
        let a = fg.aggregate(&round(), &ups(&pts)).unwrap();
        assert_eq!(a.kept, [0, 1]);
        assert_eq!(a.delta, [0.5, 0.5, 0.0]);
        assert_eq!(a.metrics["zero_weight"], 2.0);
        // Three clients at 0, 60 and 90 degrees:
        let w = weights(&[&[1.0, 0.0], &[0.5, 0.75f32.sqrt()], &[0.0, 1.0]], 1.0);
        // cs(0,1) = 0.5, cs(1,2) = 0.866, cs(0,2) = 0. max: 0.5, 0.866, 0.866. Pardoning
        // scales cs(0,1) by 0.5/0.866 for client 0 -> 0.289; weights 1 - 0.289 = 0.711,
        // 0.134, 0.134; rescaled 1 -> .99, 0.188, 0.188; logit + 0.5: 1 (clipped),
        // ln(0.188/0.812) + 0.5 < 0 -> 0.
        assert_eq!(w, [1.0, 0.0, 0.0]);
    }

    #[test]
    fn the_history_carries_over_rounds_and_checkpoints() {
        let mut fg = FoolsGold {
            params: FoolsGoldParams::default(),
            history: BTreeMap::new(),
        };
        // Round 1: clients 0 and 1 differ; round 2: client 1 copies client 0's direction, but
        // its history still holds round 1, so it is not yet a perfect Sybil.
        fg.aggregate(&round(), &ups(&[&[1.0, 0.0], &[0.0, 1.0]]))
            .unwrap();
        let state = fg.state().unwrap();
        fg.aggregate(&round(), &ups(&[&[1.0, 0.0], &[1.0, 0.0]]))
            .unwrap();
        assert_eq!(fg.history[&1], [1.0, 1.0]);
        let mut again = FoolsGold {
            params: FoolsGoldParams::default(),
            history: BTreeMap::new(),
        };
        again.set_state(&state).unwrap();
        assert_eq!(again.history[&1], [0.0, 1.0]);
        assert!(fg.aggregate(&round(), &ups(&[&[1.0, 0.0]])).is_err());
        assert!(FoolsGoldParams { kappa: 0.0 }.validate().is_err());
    }
}
