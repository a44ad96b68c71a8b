//! Divide-and-Conquer (Shejwalkar and Houmansadr, "Manipulating the Byzantine: optimizing
//! model poisoning attacks and defenses for federated learning", NDSS 2021): `iterations`
//! times, a random subset of `dims` coordinates of the updates (from `stream(seed, "dnc",
//! [round, iteration])`), centred on its mean; each update's outlier score is its squared
//! projection on the top right singular vector (power iteration, from a seeded start); the
//! `floor(c f)` highest are dropped. The updates no iteration dropped are averaged with
//! FedAvg's weights.

use crate::config::RuleParams;
use fl_core::error::{CoreError, Result};
use fl_core::update::weighted_mean;
use fl_core::{Aggregate, Aggregator, ServerRound, Update};
use fl_data::rng::stream;
use rand::RngExt;
use rand::seq::index::sample;
use serde::{Deserialize, Serialize};

/// The `[defense.dnc]` section.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dnc {
    /// Attackers assumed (default 1).
    pub f: usize,
    /// Filtering fraction: floor(c f) dropped per iteration (default 1.0, the paper's).
    pub c: f64,
    /// Iterations (default 5, the paper's).
    pub iterations: usize,
    /// Coordinates sampled per iteration (default 10000, the paper's; all when fewer).
    pub dims: usize,
}

impl Default for Dnc {
    fn default() -> Self {
        Self {
            f: 1,
            c: 1.0,
            iterations: 5,
            dims: 10_000,
        }
    }
}

impl RuleParams for Dnc {
    fn validate(&self) -> Result<()> {
        crate::check::positive("c", self.c)?;
        crate::check::at_least_one("iterations", self.iterations, "drop nothing")?;
        crate::check::at_least_one("dims", self.dims, "look at no coordinate")
    }
    fn build(&self) -> Box<dyn Aggregator> {
        Box::new(*self)
    }
}

/// The top right singular vector of the rows `x` (each of `b` values): power iteration on
/// x^T x from `start`, 100 steps.
fn top_direction(x: &[Vec<f64>], start: Vec<f64>) -> Vec<f64> {
    let normalise = |v: &mut Vec<f64>| {
        let n = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if n > 0.0 {
            v.iter_mut().for_each(|a| *a /= n);
        }
    };
    let mut v = start;
    normalise(&mut v);
    for _ in 0..100 {
        let xv: Vec<f64> = x
            .iter()
            .map(|r| r.iter().zip(&v).map(|(a, b)| a * b).sum())
            .collect();
        let mut next = vec![0.0f64; v.len()];
        for (r, s) in x.iter().zip(&xv) {
            for (n, a) in next.iter_mut().zip(r) {
                *n += a * s;
            }
        }
        normalise(&mut next);
        v = next;
    }
    v
}

impl Aggregator for Dnc {
    /// Keeps nothing across rounds.
    fn state(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
    }

    fn aggregate(&mut self, round: &ServerRound<'_>, updates: &[Update]) -> Result<Aggregate> {
        let v = crate::check::by_client(updates)?;
        let n = v.len();
        let drop = (self.c * self.f as f64).floor() as usize;
        if drop >= n {
            return Err(CoreError::Aggregation(format!(
                "dnc: dropping floor(c f) = {drop} of {n} updates leaves none"
            )));
        }
        let d = v[0].delta.len();
        let b = self.dims.min(d);
        let mut good = vec![true; n];
        for it in 0..self.iterations {
            let mut rng = stream(round.seed, "dnc", &[round.round as u64, it as u64]);
            let mut idx: Vec<usize> = sample(&mut rng, d, b).into_vec();
            idx.sort_unstable();
            let mut x: Vec<Vec<f64>> = v
                .iter()
                .map(|u| idx.iter().map(|&j| u.delta[j] as f64).collect())
                .collect();
            for j in 0..b {
                let m = x.iter().map(|r| r[j]).sum::<f64>() / n as f64;
                x.iter_mut().for_each(|r| r[j] -= m);
            }
            let start: Vec<f64> = (0..b).map(|_| rng.random::<f64>() - 0.5).collect();
            let top = top_direction(&x, start);
            let scores: Vec<f64> = x
                .iter()
                .map(|r| r.iter().zip(&top).map(|(a, t)| a * t).sum::<f64>().powi(2))
                .collect();
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
            for &i in &order[..drop] {
                good[i] = false;
            }
        }
        let kept: Vec<&Update> = v
            .iter()
            .zip(&good)
            .filter(|(_, g)| **g)
            .map(|(u, _)| *u)
            .collect();
        if kept.is_empty() {
            return Err(CoreError::Aggregation(
                "dnc: every update was dropped in some iteration".into(),
            ));
        }
        let clients = kept.iter().map(|u| u.client).collect();
        Ok(Aggregate::new(weighted_mean(&kept)?, clients))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{round, ups};

    #[test]
    fn the_update_off_the_main_direction_of_spread_is_dropped() {
        // Four updates near (1, 1, 1, 1) and one far along (1, -1, 1, -1): the centred rows'
        // top direction is the outlier's, whose projection dominates; with f = 1 it goes in
        // every iteration (all 4 coordinates are sampled: dims >= d).
        let pts: [&[f32]; 5] = [
            &[1.0, 1.0, 1.0, 1.0],
            &[1.1, 0.9, 1.0, 1.0],
            &[0.9, 1.1, 1.0, 1.0],
            &[1.0, 1.0, 1.1, 0.9],
            &[9.0, -7.0, 9.0, -7.0],
        ];
        let a = Dnc::default().aggregate(&round(), &ups(&pts)).unwrap();
        assert_eq!(a.kept, [0, 1, 2, 3]);
        assert!(
            (a.delta[0] - 1.0).abs() < 1e-6 && (a.delta[3] - 0.975).abs() < 1e-6,
            "{:?}",
            a.delta
        );
        let err = Dnc {
            f: 5,
            ..Default::default()
        }
        .aggregate(&round(), &ups(&pts))
        .unwrap_err();
        assert!(err.to_string().contains("leaves none"));
        assert!(
            Dnc {
                iterations: 0,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn the_power_iteration_finds_the_top_singular_vector() {
        // Rows (3, 0) and (-3, 0), (0, 1), (0, -1): the top right singular vector is (1, 0).
        let x = vec![
            vec![3.0, 0.0],
            vec![-3.0, 0.0],
            vec![0.0, 1.0],
            vec![0.0, -1.0],
        ];
        let v = top_direction(&x, vec![0.3, 0.7]);
        assert!(
            (v[0].abs() - 1.0).abs() < 1e-9 && v[1].abs() < 1e-9,
            "{v:?}"
        );
    }
}
