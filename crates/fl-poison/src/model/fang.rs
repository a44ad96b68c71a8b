//! Fang, Cao, Jia and Gong, "Local model poisoning attacks to Byzantine-robust federated
//! learning" (USENIX Security 2020), full-knowledge attacks, on updates (local minus global):
//!
//! - [`FangTrim`] (their attack on trimmed mean and median): the direction of change s is
//!   the sign of the benign mean; where s > 0 each malicious client sends a value below the
//!   benign minimum w_min (uniform in [w_min / b, w_min] if w_min > 0, else [b w_min, w_min]),
//!   where s <= 0 one above the benign maximum (in [w_max, b w_max] if w_max > 0, else
//!   [w_max / b, w_max]); b = 2. Each client draws its own from `stream(seed, "fang-trim",
//!   [client, round])`.
//! - [`FangKrum`] (their attack on Krum): every malicious client sends -lambda s, lambda
//!   starting at the paper's upper bound
//!   `1 / ((m - 2c - 1) sqrt(d)) min_i sum_{l in the m - c - 2 benign nearest to i} |w_l - w_i|
//!    + 1 / sqrt(d) max_i |w_i|` (m updates, c malicious, d values) and halved until the
//!   attacker's copy of the rule in force keeps a malicious update, or lambda falls below
//!   `threshold` (then the last lambda tried is sent).

use super::{Craft, CraftContext, RuleCopy, check_benign, mean};
use fl_core::Aggregator;
use fl_core::error::{CoreError, Result};
use fl_core::geometry::{norm, sq_distance};
use fl_data::rng::stream;
use rand::RngExt;
use serde::{Deserialize, Serialize};

/// The `[attack.fang]` section.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FangParams {
    /// How far beyond the benign range the trim attack may go (default 2, the paper's).
    pub b: f64,
    /// The Krum attack stops halving lambda below this (default 1e-5, the paper's).
    pub threshold: f64,
}

impl Default for FangParams {
    fn default() -> Self {
        Self {
            b: 2.0,
            threshold: 1e-5,
        }
    }
}

impl FangParams {
    /// Refuses b <= 1 or a non-positive threshold.
    pub fn validate(&self) -> Result<()> {
        let fine = self.b.is_finite() && self.b > 1.0 && self.threshold > 0.0;
        if !fine {
            return Err(CoreError::Config(format!(
                "attack.fang needs b > 1 and threshold > 0, got b {} threshold {}",
                self.b, self.threshold
            )));
        }
        Ok(())
    }
}

/// The sign of the benign mean, per coordinate (0 counted as negative, as "not increasing").
fn direction(benign: &[&[f32]]) -> Vec<f32> {
    mean(benign)
        .into_iter()
        .map(|m| if m > 0.0 { 1.0 } else { -1.0 })
        .collect()
}

/// Fang et al.'s attack on trimmed mean (and median).
#[derive(Debug, Clone, Copy)]
pub struct FangTrim {
    /// Its parameters.
    pub params: FangParams,
}

impl Craft for FangTrim {
    fn craft(&mut self, benign: &[&[f32]], ctx: CraftContext<'_>) -> Result<Vec<f32>> {
        check_benign("fang-trim", benign)?;
        let s = direction(benign);
        let b = self.params.b as f32;
        let mut rng = stream(
            ctx.seed,
            "fang-trim",
            &[ctx.client as u64, ctx.round as u64],
        );
        Ok((0..s.len())
            .map(|j| {
                let lo = benign.iter().map(|v| v[j]).fold(f32::INFINITY, f32::min);
                let hi = benign
                    .iter()
                    .map(|v| v[j])
                    .fold(f32::NEG_INFINITY, f32::max);
                let (a, z) = if s[j] > 0.0 {
                    if lo > 0.0 { (lo / b, lo) } else { (lo * b, lo) }
                } else if hi > 0.0 {
                    (hi, hi * b)
                } else {
                    (hi / b, hi)
                };
                let u: f32 = rng.random();
                a + (z - a) * u
            })
            .collect())
    }

    fn shared(&self) -> bool {
        false
    }
}

/// Fang et al.'s attack on Krum, checked against the attacker's copy of the rule in force.
pub struct FangKrum {
    params: FangParams,
    rule: Box<dyn Aggregator>,
    lambda: Option<f64>,
}

impl FangKrum {
    /// The attack with `params` against `rule`, the attacker's copy of the server's rule;
    /// refuses a rule whose state cannot be saved and restored.
    pub fn new(params: FangParams, rule: Box<dyn Aggregator>) -> Result<Self> {
        if rule.state().is_none() {
            return Err(CoreError::Config(
                "fang-krum simulates the server's rule and needs one whose state can be saved"
                    .into(),
            ));
        }
        Ok(Self {
            params,
            rule,
            lambda: None,
        })
    }
}

/// The paper's upper bound on lambda for `benign` updates and `c` malicious ones.
pub fn lambda_bound(benign: &[&[f32]], c: usize) -> f64 {
    let n = benign.len();
    let m = n + c;
    let d = benign[0].len() as f64;
    let k = (m.saturating_sub(c + 2)).clamp(1, n - 1);
    let near: f64 = (0..n)
        .map(|i| {
            let mut dist: Vec<f64> = (0..n)
                .filter(|&l| l != i)
                .map(|l| sq_distance(benign[l], benign[i]).sqrt())
                .collect();
            dist.sort_by(f64::total_cmp);
            dist[..k].iter().sum::<f64>()
        })
        .fold(f64::INFINITY, f64::min);
    let far = benign.iter().map(|v| norm(v)).fold(0.0, f64::max);
    let spread = (m.saturating_sub(2 * c + 1)).max(1) as f64;
    near / (spread * d.sqrt()) + far / d.sqrt()
}

impl Craft for FangKrum {
    fn craft(&mut self, benign: &[&[f32]], ctx: CraftContext<'_>) -> Result<Vec<f32>> {
        check_benign("fang-krum", benign)?;
        let s = direction(benign);
        let at =
            |lambda: f64| -> Vec<f32> { s.iter().map(|x| (-lambda * *x as f64) as f32).collect() };
        let threshold = self.params.threshold;
        let mut copy = RuleCopy::new(self.rule.as_mut(), benign, ctx)?;
        let c = copy.copies();
        let mut lambda = lambda_bound(benign, c);
        loop {
            let kept = copy.aggregate(&at(lambda))?.kept;
            if kept.iter().any(|&k| k < c) || lambda / 2.0 < threshold {
                break;
            }
            lambda /= 2.0;
        }
        drop(copy);
        self.lambda = Some(lambda);
        Ok(at(lambda))
    }

    fn strength(&self) -> Option<f64> {
        self.lambda
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::{ctx, refs};
    use fl_core::{Aggregate, FedAvg, ServerRound, Update};

    #[test]
    fn the_trim_attack_sits_just_beyond_the_benign_range_against_the_change() {
        // Coordinate 0 rises (mean 2 > 0): values below min 1 (> 0), in [0.5, 1]. Coordinate 1
        // falls (mean -2): values above max -1 (< 0), in [-1, -0.5]. Coordinate 2 rises with
        // min -1 (<= 0): values in [-2, -1].
        let v = vec![vec![1.0f32, -3.0, -1.0], vec![3.0, -1.0, 5.0]];
        let mut a = FangTrim {
            params: FangParams::default(),
        };
        let out = a.craft(&refs(&v), ctx()).unwrap();
        assert!((0.5..=1.0).contains(&out[0]), "{out:?}");
        assert!((-1.0..=-0.5).contains(&out[1]), "{out:?}");
        assert!((-2.0..=-1.0).contains(&out[2]), "{out:?}");
        // Each client draws its own.
        let other = a
            .craft(&refs(&v), CraftContext { client: 1, ..ctx() })
            .unwrap();
        assert_ne!(out, other);
        assert!(!a.shared());
        assert!(
            FangParams {
                b: 1.0,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn the_krum_bound_by_hand() {
        // Benign (0, 0), (3, 4), (6, 8); c = 1: m = 4, m - c - 2 = 1 nearest; distances 5
        // between neighbours: min over i of the nearest = 5; spread m - 2c - 1 = 1; d = 2;
        // the largest norm 10: 5 / sqrt 2 + 10 / sqrt 2.
        let v = vec![vec![0.0f32, 0.0], vec![3.0, 4.0], vec![6.0, 8.0]];
        let l = lambda_bound(&refs(&v), 1);
        assert!((l - 15.0 / 2f64.sqrt()).abs() < 1e-9, "{l}");
    }

    /// Keeps the update closest to zero (a toy selection rule).
    struct Smallest;
    impl Aggregator for Smallest {
        fn state(&self) -> Option<Vec<u8>> {
            Some(Vec::new())
        }
        fn aggregate(&mut self, _: &ServerRound<'_>, u: &[Update]) -> Result<Aggregate> {
            let best = u
                .iter()
                .min_by(|a, b| {
                    norm(&a.delta)
                        .total_cmp(&norm(&b.delta))
                        .then(a.client.cmp(&b.client))
                })
                .unwrap();
            Ok(Aggregate::new(best.delta.clone(), vec![best.client]))
        }
    }

    #[test]
    fn lambda_halves_until_the_rule_keeps_the_malicious_update() {
        // Benign updates of norm 5 and 10; the crafted -lambda s has norm lambda sqrt 2, kept
        // once below 5: from the bound 15 / sqrt 2 (norm 15), halved to 7.5, then 3.75 < 5.
        let v = vec![vec![3.0f32, 4.0], vec![6.0, 8.0]];
        let one = CraftContext {
            malicious: 1,
            ..ctx()
        };
        let mut a = FangKrum::new(FangParams::default(), Box::new(Smallest)).unwrap();
        let out = a.craft(&refs(&v), one).unwrap();
        let bound = lambda_bound(&refs(&v), 1);
        assert!((a.strength().unwrap() - bound / 4.0).abs() < 1e-12);
        assert!(
            out.iter().all(|&x| x < 0.0),
            "against the direction of change: {out:?}"
        );
        // Under the mean every update counts as kept: the bound itself is sent.
        let mut m = FangKrum::new(FangParams::default(), Box::new(FedAvg)).unwrap();
        m.craft(&refs(&v), one).unwrap();
        assert_eq!(m.strength(), Some(bound));
    }
}
