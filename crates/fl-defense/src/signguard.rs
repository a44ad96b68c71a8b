//! SignGuard (Xu, Jin, Ma, Zhang, Shen and Xue, "SignGuard: Byzantine-robust federated
//! learning through collaborative malicious gradient filtering", ICDCS 2022), as its paper's
//! Algorithm 1 describes it: two filters whose intersection is trusted, then clipped averaging.
//! 1. Norm filter: with M the median norm of the updates, an update is kept when its norm is
//!    between `lower` x M and `upper` x M (0.1 and 3.0, the paper's).
//! 2. Sign filter: on a random share `coords` of the coordinates (10%, the paper's; drawn by
//!    `stream(seed, "signguard", [round])`), each update's fractions of positive, zero and
//!    negative values; mean-shift clustering of these three features (flat kernel, bandwidth
//!    as scikit-learn's `estimate_bandwidth` at its default quantile 0.3 computes it; modes
//!    closer than the bandwidth merged); the largest cluster is kept (the lower mode on ties;
//!    all in one when the bandwidth is 0).
//! 3. The updates both filters keep, each clipped to norm M, averaged with equal weights.

use crate::cluster::median;
use crate::config::RuleParams;
use fl_core::error::{CoreError, Result};
use fl_core::geometry::{mean, norm};
use fl_core::{Aggregate, Aggregator, ServerRound, Update};
use fl_data::rng::stream;
use rand::seq::index::sample;
use serde::{Deserialize, Serialize};

/// The `[defense.signguard]` section.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignGuard {
    /// Lowest norm kept, as a multiple of the median norm (default 0.1).
    pub lower: f64,
    /// Highest norm kept, as a multiple of the median norm (default 3.0).
    pub upper: f64,
    /// Share of the coordinates the sign statistics are computed on (default 0.1).
    pub coords: f64,
}

impl Default for SignGuard {
    fn default() -> Self {
        Self {
            lower: 0.1,
            upper: 3.0,
            coords: 0.1,
        }
    }
}

impl RuleParams for SignGuard {
    fn validate(&self) -> Result<()> {
        crate::check::positive("upper", self.upper)?;
        if !(self.lower >= 0.0 && self.lower < self.upper) {
            return Err(CoreError::Config(format!(
                "lower must be in [0, upper), got {}",
                self.lower
            )));
        }
        if !(self.coords > 0.0 && self.coords <= 1.0) {
            return Err(CoreError::Config(format!(
                "coords must be in (0, 1], got {}",
                self.coords
            )));
        }
        Ok(())
    }
    fn build(&self) -> Box<dyn Aggregator> {
        Box::new(*self)
    }
}

fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Mean-shift cluster labels of `points` with a flat kernel of radius `bandwidth`: every point
/// climbs to its mode (the mean of the points within the radius, until it moves less than
/// 1e-9 x the bandwidth, at most 300 steps); modes closer than the bandwidth are one cluster,
/// numbered in order of first appearance.
pub fn mean_shift(points: &[Vec<f64>], bandwidth: f64) -> Vec<usize> {
    let mut modes: Vec<Vec<f64>> = Vec::new();
    let mut labels = Vec::with_capacity(points.len());
    for p in points {
        let mut m = p.clone();
        for _ in 0..300 {
            let near: Vec<&Vec<f64>> = points
                .iter()
                .filter(|q| distance(q, &m) <= bandwidth)
                .collect();
            let next: Vec<f64> = (0..m.len())
                .map(|k| near.iter().map(|q| q[k]).sum::<f64>() / near.len() as f64)
                .collect();
            let moved = distance(&next, &m);
            m = next;
            if moved <= 1e-9 * bandwidth {
                break;
            }
        }
        let label = match modes.iter().position(|c| distance(c, &m) < bandwidth) {
            Some(l) => l,
            None => {
                modes.push(m);
                modes.len() - 1
            }
        };
        labels.push(label);
    }
    labels
}

/// scikit-learn's `estimate_bandwidth` at its default quantile 0.3: with k = max(1,
/// floor(0.3 n)), the mean over the points of the distance to their k-th nearest point, the
/// point itself counted first (so 0 when k = 1).
pub fn bandwidth(points: &[Vec<f64>]) -> f64 {
    let n = points.len();
    let k = ((0.3 * n as f64).floor() as usize).max(1);
    let total: f64 = points
        .iter()
        .map(|p| {
            let mut d: Vec<f64> = points.iter().map(|q| distance(p, q)).collect();
            d.sort_by(f64::total_cmp);
            d[k - 1]
        })
        .sum();
    total / n as f64
}

impl Aggregator for SignGuard {
    /// Keeps nothing across rounds.
    fn state(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
    }

    fn aggregate(&mut self, round: &ServerRound<'_>, updates: &[Update]) -> Result<Aggregate> {
        let v = crate::check::by_client(updates)?;
        let n = v.len();
        let norms: Vec<f64> = v.iter().map(|u| norm(&u.delta)).collect();
        let m = median(norms.clone());
        let by_norm: Vec<bool> = norms
            .iter()
            .map(|&x| x >= self.lower * m && x <= self.upper * m)
            .collect();
        let d = v[0].delta.len();
        let b = ((self.coords * d as f64).ceil() as usize).clamp(1, d);
        let mut rng = stream(round.seed, "signguard", &[round.round as u64]);
        let mut idx: Vec<usize> = sample(&mut rng, d, b).into_vec();
        idx.sort_unstable();
        let features: Vec<Vec<f64>> = v
            .iter()
            .map(|u| {
                let (mut pos, mut zero) = (0usize, 0usize);
                for &j in &idx {
                    let x = u.delta[j];
                    if x > 0.0 {
                        pos += 1;
                    } else if x == 0.0 {
                        zero += 1;
                    }
                }
                let bf = b as f64;
                vec![
                    pos as f64 / bf,
                    zero as f64 / bf,
                    (b - pos - zero) as f64 / bf,
                ]
            })
            .collect();
        let h = bandwidth(&features);
        let labels = if h > 0.0 {
            mean_shift(&features, h)
        } else {
            vec![0; n]
        };
        let clusters = labels.iter().copied().max().map_or(0, |l| l + 1);
        let largest = (0..clusters)
            .max_by_key(|&c| {
                (
                    labels.iter().filter(|&&l| l == c).count(),
                    std::cmp::Reverse(c),
                )
            })
            .unwrap_or(0);
        let kept: Vec<usize> = (0..n)
            .filter(|&i| by_norm[i] && labels[i] == largest)
            .collect();
        if kept.is_empty() {
            return Err(CoreError::Aggregation(
                "signguard: no update passed both the norm and the sign filter".into(),
            ));
        }
        let clipped: Vec<Vec<f32>> = kept
            .iter()
            .map(|&i| crate::check::clip_to(&v[i].delta, norms[i], m))
            .collect();
        let refs: Vec<&[f32]> = clipped.iter().map(Vec::as_slice).collect();
        Ok(
            Aggregate::new(mean(&refs), kept.iter().map(|&i| v[i].client).collect())
                .with_metric("norm_kept", by_norm.iter().filter(|&&k| k).count() as f64)
                .with_metric("sign_clusters", clusters as f64),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{round, ups};

    #[test]
    fn mean_shift_and_its_bandwidth_by_hand() {
        // Ten points: k = 3, the 2nd nearest other point. Six at 0, 0.1, ..., 0.5 and four
        // at 5, 5.1, 5.2, 5.3: the 2nd-nearest distances are 0.2, 0.1, 0.1, 0.1, 0.1, 0.2
        // and 0.2, 0.1, 0.1, 0.2 (mean 0.14).
        let p: Vec<Vec<f64>> = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 5.0, 5.1, 5.2, 5.3]
            .iter()
            .map(|&x| vec![x])
            .collect();
        assert!((bandwidth(&p) - 0.14).abs() < 1e-9, "{}", bandwidth(&p));
        assert_eq!(mean_shift(&p, 1.0), [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]);
        assert_eq!(mean_shift(&p, 10.0), [0; 10]);
        // Fewer than 4 points: k = 1, the point itself.
        assert_eq!(bandwidth(&p[..3]), 0.0);
    }

    #[test]
    fn flipped_signs_and_huge_norms_are_filtered() {
        // Six updates with mostly positive values, one sign-flipped and one 10x too long.
        let base: Vec<f32> = (0..40).map(|i| 1.0 + (i % 5) as f32 * 0.1).collect();
        let mut pts: Vec<Vec<f32>> = (0..6)
            .map(|k| base.iter().map(|x| x * (1.0 + 0.02 * k as f32)).collect())
            .collect();
        pts.push(base.iter().map(|x| -x).collect());
        pts.push(base.iter().map(|x| x * 10.0).collect());
        let refs: Vec<&[f32]> = pts.iter().map(Vec::as_slice).collect();
        let mut r = SignGuard {
            coords: 1.0,
            ..Default::default()
        };
        let a = r.aggregate(&round(), &ups(&refs)).unwrap();
        assert_eq!(a.kept, [0, 1, 2, 3, 4, 5]);
        assert_eq!(
            a.metrics["norm_kept"], 7.0,
            "the long update fails the norm filter"
        );
        // The median norm is the mean of the 4th and 5th of the eight (updates 2 and 3); the
        // kept updates, all along `base`, are clipped to it and averaged.
        let m = (norm(&pts[2]) + norm(&pts[3])) / 2.0;
        let want = (0..6).map(|i| norm(&pts[i]).min(m)).sum::<f64>() / 6.0;
        assert!(
            (norm(&a.delta) - want).abs() < 1e-4 * want,
            "{} vs {want}",
            norm(&a.delta)
        );
        assert!(
            SignGuard {
                lower: 4.0,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
    }
}
