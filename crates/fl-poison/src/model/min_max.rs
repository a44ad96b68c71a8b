//! Min-Max and Min-Sum (Shejwalkar and Houmansadr, "Manipulating the Byzantine: optimizing
//! model poisoning attacks and defenses for federated learning", NDSS 2021), the
//! aggregation-agnostic forms: the malicious update is `mean - gamma x p` for a perturbation
//! direction `p`, with the largest gamma such that
//! - Min-Max: its largest distance to a benign update is at most the largest distance
//!   between two benign updates;
//! - Min-Sum: its sum of squared distances to the benign updates is at most the largest such
//!   sum of a benign update (to the other benign updates).
//!
//! gamma is found as the authors' code finds it: start at `gamma_init`, step by half the
//! last step up on success and down on failure, until the step is below `tolerance`; the last
//! feasible gamma (0 if none) is sent.

use super::{Craft, CraftContext, check_benign, mean, std};
use fl_core::error::{CoreError, Result};
use fl_core::geometry::sq_distance;
use serde::{Deserialize, Serialize};

/// The direction the mean is moved against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Perturbation {
    /// The coordinate-wise sample standard deviation (the paper's `std`).
    #[default]
    Std,
    /// The benign mean scaled to unit length (`unit`: gamma then is a distance).
    Unit,
    /// The sign of the benign mean (`sign`).
    Sign,
}

/// Which bound the search keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Largest distance to any benign update.
    MinMax,
    /// Sum of squared distances to the benign updates.
    MinSum,
}

/// The `[attack.min-max]` section, shared by Min-Max and Min-Sum.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinMaxParams {
    /// The direction `p` (default `std`).
    pub perturbation: Perturbation,
    /// The first gamma tried (default 10, the authors').
    pub gamma_init: f64,
    /// The search stops when its step falls below this (default 1e-5, the authors').
    pub tolerance: f64,
}

impl Default for MinMaxParams {
    fn default() -> Self {
        Self {
            perturbation: Perturbation::Std,
            gamma_init: 10.0,
            tolerance: 1e-5,
        }
    }
}

impl MinMaxParams {
    /// Refuses a non-positive start or tolerance.
    pub fn validate(&self) -> Result<()> {
        let ok = |x: f64| x.is_finite() && x > 0.0;
        if !ok(self.gamma_init) || !ok(self.tolerance) {
            return Err(CoreError::Config(format!(
                "attack.min-max needs gamma_init > 0 and tolerance > 0, got {} and {}",
                self.gamma_init, self.tolerance
            )));
        }
        Ok(())
    }
}

/// Min-Max or Min-Sum with its parameters; remembers the last gamma.
#[derive(Debug, Clone, Copy)]
pub struct MinMax {
    /// Which bound.
    pub bound: Bound,
    /// Direction and search.
    pub params: MinMaxParams,
    gamma: Option<f64>,
}

impl MinMax {
    /// The attack with `bound` and `params`.
    pub fn new(bound: Bound, params: MinMaxParams) -> Self {
        Self {
            bound,
            params,
            gamma: None,
        }
    }
}

/// `mean - gamma p`.
fn moved(mean: &[f32], p: &[f32], gamma: f64) -> Vec<f32> {
    let g = gamma as f32;
    mean.iter().zip(p).map(|(m, d)| m - g * d).collect()
}

impl Craft for MinMax {
    fn craft(&mut self, benign: &[&[f32]], _: CraftContext<'_>) -> Result<Vec<f32>> {
        check_benign(
            match self.bound {
                Bound::MinMax => "min-max",
                Bound::MinSum => "min-sum",
            },
            benign,
        )?;
        let m = mean(benign);
        let p: Vec<f32> = match self.params.perturbation {
            Perturbation::Std => std(benign),
            Perturbation::Unit => {
                let n = fl_core::geometry::norm(&m);
                if n == 0.0 {
                    vec![0.0; m.len()]
                } else {
                    m.iter().map(|x| (*x as f64 / n) as f32).collect()
                }
            }
            Perturbation::Sign => m
                .iter()
                .map(|x| {
                    if *x > 0.0 {
                        1.0
                    } else if *x < 0.0 {
                        -1.0
                    } else {
                        0.0
                    }
                })
                .collect(),
        };
        let n = benign.len();
        let d: Vec<Vec<f64>> = (0..n)
            .map(|i| (0..n).map(|j| sq_distance(benign[i], benign[j])).collect())
            .collect();
        // The benign threshold, and the malicious vector's score, both in squared distances.
        let threshold = match self.bound {
            Bound::MinMax => d.iter().flatten().copied().fold(0.0, f64::max),
            Bound::MinSum => d.iter().map(|r| r.iter().sum::<f64>()).fold(0.0, f64::max),
        };
        let score = |v: &[f32]| -> f64 {
            let each = benign.iter().map(|b| sq_distance(v, b));
            match self.bound {
                Bound::MinMax => each.fold(0.0, f64::max),
                Bound::MinSum => each.sum(),
            }
        };
        let (mut gamma, mut step, mut good) =
            (self.params.gamma_init, self.params.gamma_init, 0.0f64);
        while (good - gamma).abs() > self.params.tolerance {
            if score(&moved(&m, &p, gamma)) <= threshold {
                good = gamma;
                gamma += step / 2.0;
            } else {
                gamma -= step / 2.0;
            }
            step /= 2.0;
        }
        self.gamma = Some(good);
        Ok(moved(&m, &p, good))
    }

    fn strength(&self) -> Option<f64> {
        self.gamma
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::{ctx, refs};

    /// Benign updates at -1 and +1 on a line (mean 0), and a unit perturbation along it.
    fn line() -> Vec<Vec<f32>> {
        vec![vec![-1.0, 0.0], vec![1.0, 0.0], vec![0.0, 0.0]]
    }

    #[test]
    fn min_max_goes_as_far_as_the_benign_diameter_allows() {
        // Benign diameter 2. Std of (-1, 1, 0) is 1 in the first coordinate, 0 in the second:
        // mean - gamma (1, 0) = (-gamma, 0); its farthest benign update is (1, 0), at 1 +
        // gamma, so gamma = 1.
        let v = line();
        let mut a = MinMax::new(Bound::MinMax, MinMaxParams::default());
        let out = a.craft(&refs(&v), ctx()).unwrap();
        assert!((out[0] + 1.0).abs() < 1e-4 && out[1] == 0.0, "{out:?}");
        assert!((a.strength().unwrap() - 1.0).abs() < 1e-4);
    }

    #[test]
    fn min_sum_keeps_the_sum_of_squared_distances() {
        // Benign sums: (-1,0): 4 + 1 = 5, (1,0): 5, (0,0): 2, so the bound is 5. At (-g, 0):
        // (1 - g)^2 + (1 + g)^2 + g^2 = 2 + 3 g^2 <= 5 gives g = 1.
        let v = line();
        let mut a = MinMax::new(Bound::MinSum, MinMaxParams::default());
        a.craft(&refs(&v), ctx()).unwrap();
        assert!((a.strength().unwrap() - 1.0).abs() < 1e-4);
        // The sign direction: the mean is 0, so the sign is 0 and any gamma is feasible: the
        // search climbs to the top of its range (gamma_init x 2 in the limit).
        let mut s = MinMax::new(
            Bound::MinSum,
            MinMaxParams {
                perturbation: Perturbation::Sign,
                ..Default::default()
            },
        );
        let out = s.craft(&refs(&v), ctx()).unwrap();
        assert_eq!(out, [0.0, 0.0]);
        assert!(s.strength().unwrap() > 19.99);
    }

    #[test]
    fn an_infeasible_direction_sends_the_mean() {
        // Two equal benign updates: diameter 0, std 0 but a unit direction of length 1: no
        // gamma > 0 is feasible, so gamma stays 0 and the mean is sent.
        let v = vec![vec![3.0, 4.0], vec![3.0, 4.0]];
        let mut a = MinMax::new(
            Bound::MinMax,
            MinMaxParams {
                perturbation: Perturbation::Unit,
                ..Default::default()
            },
        );
        assert_eq!(a.craft(&refs(&v), ctx()).unwrap(), [3.0, 4.0]);
        assert_eq!(a.strength(), Some(0.0));
        assert!(
            MinMaxParams {
                tolerance: 0.0,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
    }
}
