//! Geometric median by the smoothed Weiszfeld algorithm: Pillutla, Kakade and Harchaoui,
//! "Robust Aggregation for Federated Learning" (RFA), IEEE Transactions on Signal Processing
//! 70, 2022. The point minimising the sum of Euclidean distances to the updates, approximated
//! by `iterations` Weiszfeld steps.
//!
//! Definition as ByzFL's `GeometricMedian(nu, T)` (the lab's cross-check): equal weights (RFA
//! weighs by sample count), the iteration starts at zero, and a distance below `nu` counts as
//! `nu` (the smoothing that keeps a step defined when the estimate sits on an update):
//! z <- sum_i x_i / max(nu, |z - x_i|) / sum_i 1 / max(nu, |z - x_i|).

use crate::check::{at_least_one, positive};
use crate::config::RuleParams;
use fl_core::error::Result;
use fl_core::{Aggregate, Aggregator, ServerRound, Update};
use serde::{Deserialize, Serialize};

/// `[defense.geomed]`: the smoothed Weiszfeld geometric median. Every client is kept (no
/// update is dropped as a whole).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeoMed {
    /// Smoothing: distances below it count as it (default 0.1, ByzFL's).
    pub nu: f64,
    /// Weiszfeld iterations from zero (default 3, ByzFL's).
    pub iterations: usize,
}

impl Default for GeoMed {
    fn default() -> Self {
        Self {
            nu: 0.1,
            iterations: 3,
        }
    }
}

impl RuleParams for GeoMed {
    fn validate(&self) -> Result<()> {
        positive("nu", self.nu)?;
        at_least_one("iterations", self.iterations, "return zero")
    }

    fn build(&self) -> Box<dyn Aggregator> {
        Box::new(*self)
    }
}

/// The smoothed Weiszfeld estimate of the geometric median of `points`, in f64.
pub fn weiszfeld(points: &[&[f32]], nu: f64, iterations: usize) -> Vec<f64> {
    let d = points.first().map_or(0, |p| p.len());
    let mut z = vec![0.0f64; d];
    for _ in 0..iterations {
        let weights: Vec<f64> = points
            .iter()
            .map(|p| {
                let dist = p
                    .iter()
                    .zip(&z)
                    .map(|(&x, &zi)| (x as f64 - zi).powi(2))
                    .sum::<f64>()
                    .sqrt();
                1.0 / dist.max(nu)
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let mut next = vec![0.0f64; d];
        for (p, w) in points.iter().zip(&weights) {
            for (n, &x) in next.iter_mut().zip(p.iter()) {
                *n += x as f64 * w;
            }
        }
        next.iter_mut().for_each(|n| *n /= total);
        z = next;
    }
    z
}

impl Aggregator for GeoMed {
    /// Keeps nothing across rounds.
    fn state(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
    }

    fn aggregate(&mut self, _: &ServerRound<'_>, updates: &[Update]) -> Result<Aggregate> {
        let v = crate::check::by_client(updates)?;
        let points: Vec<&[f32]> = v.iter().map(|u| u.delta.as_slice()).collect();
        let z = weiszfeld(&points, self.nu, self.iterations);
        Ok(Aggregate::new(
            z.iter().map(|&x| x as f32).collect(),
            v.iter().map(|u| u.client).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{round, ups};

    #[test]
    fn one_step_by_hand() {
        // From z = 0: distances 0 (floored to nu = 0.1), 2, 2; weights 10, 1/2, 1/2:
        // z = ([2, 0] / 2 + [0, 2] / 2) / 11 = [1/11, 1/11].
        let mut r = GeoMed {
            nu: 0.1,
            iterations: 1,
        };
        let a = r
            .aggregate(&round(), &ups(&[&[0.0, 0.0], &[2.0, 0.0], &[0.0, 2.0]]))
            .unwrap();
        assert!((a.delta[0] - 1.0 / 11.0).abs() < 1e-7);
        assert!((a.delta[1] - 1.0 / 11.0).abs() < 1e-7);
        assert_eq!(a.kept, [0, 1, 2]);
    }

    #[test]
    fn an_outlier_does_not_move_it_far() {
        // In one dimension the geometric median of 1, 2, 3, 1000 is any point of [2, 3];
        // the mean is 251.5.
        let z = weiszfeld(&[&[1.0], &[2.0], &[3.0], &[1000.0]], 1e-6, 200);
        assert!((2.0..=3.0).contains(&z[0]), "{}", z[0]);
        // The symmetric triangle's geometric median is its centre.
        let h = 3f32.sqrt();
        let z = weiszfeld(&[&[-1.0, 0.0], &[1.0, 0.0], &[0.0, h]], 1e-9, 500);
        assert!(
            z[0].abs() < 1e-6 && (z[1] - h as f64 / 3.0).abs() < 1e-6,
            "{z:?}"
        );
    }

    #[test]
    fn order_free_and_checked() {
        let mut r = GeoMed::default();
        let mut u = ups(&[&[1.0, 5.0], &[2.0, -1.0], &[0.5, 0.0]]);
        let a = r.aggregate(&round(), &u).unwrap();
        u.reverse();
        assert_eq!(r.aggregate(&round(), &u).unwrap(), a);
        assert!(
            GeoMed {
                nu: 0.0,
                ..GeoMed::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            GeoMed {
                iterations: 0,
                ..GeoMed::default()
            }
            .validate()
            .is_err()
        );
    }
}
