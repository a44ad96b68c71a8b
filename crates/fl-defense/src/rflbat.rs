//! RFLBAT in the simplified form the FedPoisonMIA authors' code gives it (their comparison
//! runs this form; Wang et al., "RFLBAT: a robust federated learning algorithm against
//! backdoor attack", arXiv 2201.03772, 2022, picks the number of clusters by the gap statistic
//! and selects clusters differently). The updates are projected on their top two principal
//! directions ([`crate::cluster::principal_projections`]); those whose summed distance to the
//! others in that plane reaches `factor` (1.5) x the median sum are dropped; two-means splits
//! the rest; of the two clusters, the one whose points have the smaller mean cosine similarity
//! to their cluster's mean point is chosen (as their code does); in it, the distance filter is
//! applied once more; the survivors are averaged with equal weights.

use crate::cluster::{distance_sums, median, principal_projections, two_means};
use crate::config::RuleParams;
use fl_core::error::{CoreError, Result};
use fl_core::geometry::mean;
use fl_core::{Aggregate, Aggregator, ServerRound, Update};
use serde::{Deserialize, Serialize};

/// The `[defense.rflbat-lite]` section.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RflbatLite {
    /// Points whose summed distance reaches this many times the median are dropped (default
    /// 1.5, the authors' code's).
    pub factor: f64,
}

impl Default for RflbatLite {
    fn default() -> Self {
        Self { factor: 1.5 }
    }
}

impl RuleParams for RflbatLite {
    fn validate(&self) -> Result<()> {
        crate::check::positive("factor", self.factor)
    }
    fn build(&self) -> Box<dyn Aggregator> {
        Box::new(*self)
    }
}

/// The positions (into `idx`) of the points of `idx` whose summed distance to the other
/// points of `idx` is below `factor` x the median sum (all of them when that is 0: the points
/// coincide).
fn within(points: &[Vec<f64>], idx: &[usize], factor: f64) -> Vec<usize> {
    let sub: Vec<Vec<f64>> = idx.iter().map(|&i| points[i].clone()).collect();
    let sums = distance_sums(&sub);
    let bound = median(sums.clone()) * factor;
    idx.iter()
        .zip(&sums)
        .filter(|(_, s)| **s < bound || bound == 0.0)
        .map(|(&i, _)| i)
        .collect()
}

/// Mean cosine similarity of the points `idx` to their mean point.
fn cohesion(points: &[Vec<f64>], idx: &[usize]) -> f64 {
    let k = points[0].len();
    let m: Vec<f64> = (0..k)
        .map(|j| idx.iter().map(|&i| points[i][j]).sum::<f64>() / idx.len() as f64)
        .collect();
    let nm = m.iter().map(|a| a * a).sum::<f64>().sqrt();
    idx.iter()
        .map(|&i| {
            let p = &points[i];
            let np = p.iter().map(|a| a * a).sum::<f64>().sqrt();
            if np == 0.0 || nm == 0.0 {
                0.0
            } else {
                p.iter().zip(&m).map(|(a, b)| a * b).sum::<f64>() / (np * nm)
            }
        })
        .sum::<f64>()
        / idx.len() as f64
}

impl Aggregator for RflbatLite {
    /// Keeps nothing across rounds.
    fn state(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
    }

    fn aggregate(&mut self, _: &ServerRound<'_>, updates: &[Update]) -> Result<Aggregate> {
        let v = crate::check::by_client(updates)?;
        if v.len() < 3 {
            return Err(CoreError::Aggregation(format!(
                "rflbat-lite filters and clusters the updates and needs at least 3, got {}",
                v.len()
            )));
        }
        let deltas: Vec<&[f32]> = v.iter().map(|u| u.delta.as_slice()).collect();
        let points = principal_projections(&deltas, 2);
        let all: Vec<usize> = (0..v.len()).collect();
        let accepted = within(&points, &all, self.factor);
        let sub: Vec<Vec<f64>> = accepted.iter().map(|&i| points[i].clone()).collect();
        let labels = two_means(&sub);
        let clusters: Vec<Vec<usize>> = (0..2)
            .map(|c| {
                accepted
                    .iter()
                    .zip(&labels)
                    .filter(|(_, l)| **l == c)
                    .map(|(&i, _)| i)
                    .collect::<Vec<usize>>()
            })
            .filter(|c| !c.is_empty())
            .collect();
        let chosen = clusters
            .iter()
            .min_by(|a, b| cohesion(&points, a).total_cmp(&cohesion(&points, b)))
            .ok_or_else(|| {
                CoreError::Aggregation("rflbat-lite: every update was dropped".into())
            })?;
        let mut kept = within(&points, chosen, self.factor);
        if kept.is_empty() {
            // A cluster of one or two points: the filter's median is their own sum.
            kept = chosen.clone();
        }
        kept.sort_unstable();
        let refs: Vec<&[f32]> = kept.iter().map(|&i| deltas[i]).collect();
        Ok(
            Aggregate::new(mean(&refs), kept.iter().map(|&i| v[i].client).collect())
                .with_metric("accepted_first", accepted.len() as f64),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{round, ups};

    #[test]
    fn a_far_update_is_filtered_before_the_clustering() {
        // Five updates near (1, 1, 0) and one far out: its summed distance is far above 1.5 x
        // the median, so it never reaches the clustering.
        let pts: [&[f32]; 6] = [
            &[1.0, 1.0, 0.0],
            &[1.1, 0.9, 0.1],
            &[0.9, 1.1, -0.1],
            &[1.0, 1.2, 0.0],
            &[1.2, 1.0, 0.05],
            &[-30.0, 40.0, 25.0],
        ];
        let a = RflbatLite::default()
            .aggregate(&round(), &ups(&pts))
            .unwrap();
        assert!(!a.kept.contains(&5), "{a:?}");
        assert_eq!(a.metrics["accepted_first"], 5.0);
        assert!(!a.kept.is_empty());
        let again = RflbatLite::default()
            .aggregate(&round(), &ups(&pts))
            .unwrap();
        assert_eq!(again, a, "a function of the updates");
        assert!(
            RflbatLite::default()
                .aggregate(&round(), &ups(&pts[..2]))
                .unwrap_err()
                .to_string()
                .contains("at least 3")
        );
    }
}
