//! FLAME (Nguyen et al., "FLAME: Taming backdoors in federated learning", USENIX Security
//! 2022), in three steps each round:
//! 1. clustering: HDBSCAN on the pairwise cosine distances of the updates
//!    (`min_cluster_size` = n/2 + 1, `min_samples` = 1, a single cluster allowed, as the
//!    paper sets it); the largest cluster is admitted, the rest (noise and smaller clusters)
//!    dropped; when HDBSCAN finds no cluster, every update is admitted;
//! 2. adaptive clipping: the bound S is the median of the norms of all n updates, and each
//!    admitted update is scaled by min(1, S / its norm);
//! 3. adaptive noise: the equal-weight mean of the clipped updates plus Gaussian noise of
//!    standard deviation `lambda` x S per coordinate (`lambda` = 0.001, the paper's value for
//!    image classification), from `stream(seed, "flame-noise", [round])`.
//!
//! The paper clusters the local models W_i; the rule sees updates W_i - G, whose cosines
//! carry the same directions without the global model common to all of them (FLPoison and
//! Blades cluster updates as well). HDBSCAN is the `hdbscan` crate's, on the precomputed
//! distances.

use crate::cluster::median;
use crate::config::RuleParams;
use fl_core::error::{CoreError, Result};
use fl_core::geometry::{cosine, mean, norm, pairwise};
use fl_core::{Aggregate, Aggregator, ServerRound, Update};
use fl_data::rng::stream;
use hdbscan::{DistanceMetric, Hdbscan, HdbscanHyperParams};
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// The `[defense.flame]` section.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Flame {
    /// Noise level: the noise's standard deviation is `lambda` x the clipping bound
    /// (default 0.001, the paper's for image classification; 0 adds none).
    pub lambda: f64,
}

impl Default for Flame {
    fn default() -> Self {
        Self { lambda: 0.001 }
    }
}

impl RuleParams for Flame {
    fn validate(&self) -> Result<()> {
        if !(self.lambda >= 0.0 && self.lambda.is_finite()) {
            return Err(CoreError::Config(format!(
                "lambda must be >= 0, got {}",
                self.lambda
            )));
        }
        Ok(())
    }
    fn build(&self) -> Box<dyn Aggregator> {
        Box::new(*self)
    }
}

/// The positions of the admitted updates: the largest HDBSCAN cluster of the cosine
/// distances `dist` (ties to the cluster of the lowest label), or all when there is none.
pub fn admitted(dist: &[Vec<f64>]) -> Result<Vec<usize>> {
    let n = dist.len();
    if n < 3 {
        return Ok((0..n).collect());
    }
    let hp = HdbscanHyperParams::builder()
        .min_cluster_size(n / 2 + 1)
        .min_samples(1)
        .allow_single_cluster(true)
        .dist_metric(DistanceMetric::Precalculated)
        .build();
    let labels = Hdbscan::new(dist, hp)
        .cluster()
        .map_err(|e| CoreError::Aggregation(format!("flame: HDBSCAN failed: {e}")))?;
    let largest = (0..=labels.iter().copied().max().unwrap_or(-1))
        .map(|c| (labels.iter().filter(|&&l| l == c).count(), c))
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    Ok(match largest {
        Some((size, c)) if size > 0 => (0..n).filter(|&i| labels[i] == c).collect(),
        _ => (0..n).collect(),
    })
}

impl Aggregator for Flame {
    /// Keeps nothing across rounds.
    fn state(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
    }

    fn aggregate(&mut self, round: &ServerRound<'_>, updates: &[Update]) -> Result<Aggregate> {
        let v = crate::check::by_client(updates)?;
        let deltas: Vec<&[f32]> = v.iter().map(|u| u.delta.as_slice()).collect();
        let dist = pairwise(&deltas, |a, b| (1.0 - cosine(a, b)).max(0.0));
        let admitted = admitted(&dist)?;
        let norms: Vec<f64> = deltas.iter().map(|d| norm(d)).collect();
        let bound = median(norms.clone());
        let clipped: Vec<Vec<f32>> = admitted
            .iter()
            .map(|&i| crate::check::clip_to(deltas[i], norms[i], bound))
            .collect();
        let refs: Vec<&[f32]> = clipped.iter().map(Vec::as_slice).collect();
        let mut step = mean(&refs);
        let sigma = self.lambda * bound;
        if sigma > 0.0 {
            let normal =
                Normal::new(0.0, sigma).map_err(|e| CoreError::Aggregation(e.to_string()))?;
            let mut rng = stream(round.seed, "flame-noise", &[round.round as u64]);
            step.iter_mut()
                .for_each(|x| *x += normal.sample(&mut rng) as f32);
        }
        let kept = admitted.iter().map(|&i| v[i].client).collect();
        Ok(Aggregate::new(step, kept)
            .with_metric("admitted", admitted.len() as f64)
            .with_metric("clip_bound", bound)
            .with_metric("noise_sigma", sigma))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{round, ups};

    /// Seven updates around (1, 1, 0) and three pointing elsewhere.
    fn mixed() -> Vec<Update> {
        let pts: [&[f32]; 10] = [
            &[1.0, 1.0, 0.0],
            &[1.0, 0.9, 0.1],
            &[0.9, 1.0, 0.0],
            &[1.1, 1.0, 0.05],
            &[1.0, 1.1, -0.05],
            &[2.0, 2.1, 0.0],
            &[0.5, 0.45, 0.02],
            &[-1.0, 0.2, 3.0],
            &[-0.9, 0.1, 3.2],
            &[0.0, -2.0, -1.0],
        ];
        ups(&pts)
    }

    #[test]
    fn the_majority_direction_is_admitted_and_the_rest_dropped() {
        let a = Flame { lambda: 0.0 }.aggregate(&round(), &mixed()).unwrap();
        assert_eq!(a.kept, [0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(a.metrics["admitted"], 7.0);
    }

    #[test]
    fn clipping_uses_the_median_norm_of_all_updates() {
        // Norms: 3 x 1, 1 x 10 and 1 x 2 along the same axis, so all are one cluster; the
        // median norm is 1; the update of norm 10 and the one of norm 2 are cut to 1.
        let pts: [&[f32]; 5] = [
            &[1.0, 0.0],
            &[1.0, 0.0],
            &[1.0, 0.0],
            &[10.0, 0.0],
            &[2.0, 0.0],
        ];
        let a = Flame { lambda: 0.0 }
            .aggregate(&round(), &ups(&pts))
            .unwrap();
        assert_eq!(a.kept, [0, 1, 2, 3, 4]);
        assert_eq!(a.metrics["clip_bound"], 1.0);
        assert_eq!(a.delta, [1.0, 0.0]);
        // Even count: the median is the mean of the middle two (1 and 2).
        let a = Flame { lambda: 0.0 }
            .aggregate(&round(), &ups(&pts[1..]))
            .unwrap();
        assert_eq!(a.metrics["clip_bound"], 1.5);
        assert_eq!(a.delta, [(1.0 + 1.0 + 1.5 + 1.5) / 4.0, 0.0]);
    }

    #[test]
    fn the_noise_is_seeded_and_scaled_by_the_bound() {
        let mut f = Flame { lambda: 0.01 };
        let a = f.aggregate(&round(), &mixed()).unwrap();
        let b = f.aggregate(&round(), &mixed()).unwrap();
        assert_eq!(a.delta, b.delta, "same round, same noise");
        let quiet = Flame { lambda: 0.0 }.aggregate(&round(), &mixed()).unwrap();
        assert_ne!(a.delta, quiet.delta);
        let bound = a.metrics["clip_bound"];
        assert!((a.metrics["noise_sigma"] - 0.01 * bound).abs() < 1e-12);
        let worst = a
            .delta
            .iter()
            .zip(&quiet.delta)
            .map(|(x, y)| (x - y).abs() as f64)
            .fold(0.0, f64::max);
        assert!(worst < 5.0 * 0.01 * bound, "noise within 5 sigma: {worst}");
        assert!(Flame { lambda: -1.0 }.validate().is_err());
    }

    #[test]
    fn few_updates_are_all_admitted() {
        let pts: [&[f32]; 2] = [&[1.0, 0.0], &[0.0, 1.0]];
        let a = Flame { lambda: 0.0 }
            .aggregate(&round(), &ups(&pts))
            .unwrap();
        assert_eq!(a.kept, [0, 1]);
    }
}
