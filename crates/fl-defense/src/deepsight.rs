//! DeepSight in the simplified form the FedPoisonMIA authors' code gives it (their comparison
//! runs this form; the full defense of Rieger, Nguyen, Miettinen and Sadeghi, "DeepSight:
//! mitigating backdoor attacks in federated learning through deep model inspection", NDSS
//! 2022, classifies models by the homogeneity of their output-layer updates and clusters on
//! several model metrics, and is not what this rule does). Each update is described by two
//! features, its distance to the mean update (their "DDif") and its norm (their "NEUP");
//! two-means splits the updates in that plane ([`crate::cluster::two_means`], started from the
//! farthest pair where theirs uses scikit-learn's seeded k-means++); the larger cluster (the
//! one holding the first update on a tie) is kept, each of its updates clipped to norm `clip`
//! (1.0, as in their code), and averaged with equal weights.

use crate::cluster::two_means;
use crate::config::RuleParams;
use fl_core::error::Result;
use fl_core::geometry::{mean, norm, sq_distance};
use fl_core::{Aggregate, Aggregator, ServerRound, Update};
use serde::{Deserialize, Serialize};

/// The `[defense.deepsight-lite]` section.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeepSightLite {
    /// The norm each kept update is clipped to (default 1.0, the authors' code's).
    pub clip: f64,
}

impl Default for DeepSightLite {
    fn default() -> Self {
        Self { clip: 1.0 }
    }
}

impl RuleParams for DeepSightLite {
    fn validate(&self) -> Result<()> {
        crate::check::positive("clip", self.clip)
    }
    fn build(&self) -> Box<dyn Aggregator> {
        Box::new(*self)
    }
}

impl Aggregator for DeepSightLite {
    /// Keeps nothing across rounds.
    fn state(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
    }

    fn aggregate(&mut self, _: &ServerRound<'_>, updates: &[Update]) -> Result<Aggregate> {
        let v = crate::check::by_client(updates)?;
        let deltas: Vec<&[f32]> = v.iter().map(|u| u.delta.as_slice()).collect();
        let centre = mean(&deltas);
        let features: Vec<Vec<f64>> = deltas
            .iter()
            .map(|d| vec![sq_distance(d, &centre).sqrt(), norm(d)])
            .collect();
        let labels = two_means(&features);
        let ones = labels.iter().filter(|&&l| l == 1).count();
        let keep_label = usize::from(ones > labels.len() - ones);
        let kept: Vec<usize> = (0..v.len()).filter(|&i| labels[i] == keep_label).collect();
        let clipped: Vec<Vec<f32>> = kept
            .iter()
            .map(|&i| crate::check::clip_to(deltas[i], norm(deltas[i]), self.clip))
            .collect();
        let refs: Vec<&[f32]> = clipped.iter().map(Vec::as_slice).collect();
        Ok(
            Aggregate::new(mean(&refs), kept.iter().map(|&i| v[i].client).collect())
                .with_metric("kept", kept.len() as f64),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{round, ups};

    #[test]
    fn the_larger_group_in_distance_and_norm_is_kept_and_clipped() {
        // Four small updates (norms 0.5 and 1.5) and two large ones far from the mean.
        let pts: [&[f32]; 6] = [
            &[0.5, 0.0],
            &[0.0, 0.5],
            &[1.5, 0.0],
            &[0.0, 1.5],
            &[20.0, 0.0],
            &[0.0, 20.0],
        ];
        let a = DeepSightLite::default()
            .aggregate(&round(), &ups(&pts))
            .unwrap();
        assert_eq!(a.kept, [0, 1, 2, 3]);
        // Clipped to norm 1: (0.5, 0), (0, 0.5), (1, 0), (0, 1) -> mean (0.375, 0.375).
        assert_eq!(a.delta, [0.375, 0.375]);
        assert!(DeepSightLite { clip: 0.0 }.validate().is_err());
    }
}
