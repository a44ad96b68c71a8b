//! Bulyan (El Mhamdi, Guerraoui and Rouault, "The hidden vulnerability of distributed learning
//! in Byzantium", ICML 2018): theta = n - 2f updates selected by Krum one at a time (each pick
//! leaves the pool), then in every coordinate the beta = theta - 2f selected values closest to
//! their median averaged. Needs n >= 4f + 3. Krum's score is the sum of squared distances to
//! the n' - f - 2 nearest others in the pool of n' (at least one), as in the paper.

use crate::config::RuleParams;
use fl_core::error::{CoreError, Result};
use fl_core::geometry::sq_distance;
use fl_core::{Aggregate, Aggregator, ServerRound, Update};
use serde::{Deserialize, Serialize};

/// The `[defense.bulyan]` section.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bulyan {
    /// Attackers assumed (default 1: 7 or more updates).
    pub f: usize,
}

impl Default for Bulyan {
    fn default() -> Self {
        Self { f: 1 }
    }
}

impl RuleParams for Bulyan {
    fn build(&self) -> Box<dyn Aggregator> {
        Box::new(*self)
    }
}

impl Aggregator for Bulyan {
    /// Keeps nothing across rounds.
    fn state(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
    }

    fn aggregate(&mut self, _: &ServerRound<'_>, updates: &[Update]) -> Result<Aggregate> {
        let v = crate::check::by_client(updates)?;
        let (n, f) = (v.len(), self.f);
        if n < 4 * f + 3 {
            return Err(CoreError::Aggregation(format!(
                "bulyan: needs n >= 4f + 3 = {} updates, got {n}",
                4 * f + 3
            )));
        }
        let d: Vec<Vec<f64>> = (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| sq_distance(&v[i].delta, &v[j].delta))
                    .collect()
            })
            .collect();
        let theta = n - 2 * f;
        let mut pool: Vec<usize> = (0..n).collect();
        let mut selected = Vec::with_capacity(theta);
        while selected.len() < theta {
            let k = pool.len().saturating_sub(f + 2).max(1);
            let score = |i: usize| -> f64 {
                let mut others: Vec<f64> =
                    pool.iter().filter(|&&j| j != i).map(|&j| d[i][j]).collect();
                others.sort_by(f64::total_cmp);
                others.iter().take(k).sum()
            };
            let best = (0..pool.len())
                .min_by(|&a, &b| score(pool[a]).total_cmp(&score(pool[b])).then(a.cmp(&b)))
                .expect("the pool is not empty");
            selected.push(pool.remove(best));
        }
        selected.sort_unstable();
        let beta = theta - 2 * f;
        let len = v[0].delta.len();
        let mut column: Vec<f32> = vec![0.0; theta];
        let delta = (0..len)
            .map(|c| {
                for (x, &i) in column.iter_mut().zip(&selected) {
                    *x = v[i].delta[c];
                }
                column.sort_unstable_by(f32::total_cmp);
                let med = if theta % 2 == 1 {
                    column[theta / 2] as f64
                } else {
                    (column[theta / 2 - 1] as f64 + column[theta / 2] as f64) / 2.0
                };
                let mut by_gap: Vec<f64> = column.iter().map(|&x| x as f64).collect();
                by_gap.sort_by(|a, b| {
                    (a - med)
                        .abs()
                        .total_cmp(&(b - med).abs())
                        .then(a.total_cmp(b))
                });
                (by_gap[..beta].iter().sum::<f64>() / beta as f64) as f32
            })
            .collect();
        Ok(Aggregate::new(
            delta,
            selected.iter().map(|&i| v[i].client).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{round, ups};

    #[test]
    fn selects_by_krum_then_averages_around_the_median() {
        // n = 7, f = 1: theta = 5 selected, beta = 3 averaged per coordinate. Six updates
        // near 1 and one far at 100: Krum never picks the far one while closer ones remain,
        // so the selection is five of the six near ones.
        let pts: [&[f32]; 7] = [&[1.0], &[1.1], &[0.9], &[1.2], &[0.8], &[1.05], &[100.0]];
        let a = Bulyan { f: 1 }.aggregate(&round(), &ups(&pts)).unwrap();
        assert_eq!(a.kept.len(), 5);
        assert!(!a.kept.contains(&6), "{:?}", a.kept);
        // Picks (worked by hand, squared distances over the pool's nearest 4, 3, 2, 1, 1):
        // 1.05, 1.0, 0.9, then 1.1 and 1.2 (ties broken by client id); 0.8 is left out.
        // Selected 1.0, 1.1, 0.9, 1.2, 1.05: median 1.05, its 3 closest 1.05, 1.0, 1.1 -> 1.05.
        assert_eq!(a.kept, [0, 1, 2, 3, 5]);
        assert!((a.delta[0] - 1.05).abs() < 1e-6, "{}", a.delta[0]);
        // Too few updates for f = 2.
        let err = Bulyan { f: 2 }
            .aggregate(&round(), &ups(&pts))
            .unwrap_err()
            .to_string();
        assert!(err.contains("4f + 3 = 11"), "{err}");
    }
}
