//! Fang et al.'s defenses (Fang, Cao, Jia and Gong, "Local model poisoning attacks to
//! Byzantine-robust federated learning", USENIX Security 2020, section 5): the server holds a
//! small validation set (`server_samples`) and measures, for each update, how the mean of the
//! others does there against the mean of all. Loss-based rejection (LRR) drops the `f` whose
//! removal lowers the validation loss most; error-rate-based rejection (ERR) the `f` whose
//! removal raises the validation accuracy most; `reject = "both"` (the default) keeps only the
//! updates neither drops, as the FedPoisonMIA authors' code (its "Fang" rule) combines them.
//! The step is the equal-weight mean of the kept updates. Models are evaluated as the global
//! model plus the candidate step, on the run's model; ties go to the lower client id.

use crate::config::RuleParams;
use fl_core::error::{CoreError, Result};
use fl_core::eval::evaluate;
use fl_core::geometry::mean;
use fl_core::update::check_updates;
use fl_core::{Aggregate, Aggregator, ServerRound, Update};
use serde::{Deserialize, Serialize};

/// Which of Fang et al.'s rejections to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reject {
    /// Loss-based rejection (LRR) and error-rate-based rejection (ERR) together.
    #[default]
    Both,
    /// LRR only.
    Loss,
    /// ERR only.
    Error,
}

/// The `[defense.fang-lrr-err]` section.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FangDefense {
    /// Updates each rejection drops (the attackers assumed; default 1).
    pub f: usize,
    /// `both` (default), `loss` (LRR) or `error` (ERR).
    pub reject: Reject,
}

impl Default for FangDefense {
    fn default() -> Self {
        Self {
            f: 1,
            reject: Reject::Both,
        }
    }
}

impl RuleParams for FangDefense {
    fn validate(&self) -> Result<()> {
        crate::check::at_least_one("f", self.f, "reject nothing: use fedavg")
    }
    fn build(&self) -> Box<dyn Aggregator> {
        Box::new(*self)
    }
}

/// The positions kept, from the validation (loss, accuracy) of the mean of all and of the mean
/// without each update: LRR drops the `f` highest `base_loss - loss_without_i`, ERR the `f`
/// highest `accuracy_without_i - base_accuracy` (ties: the higher position is dropped first).
pub fn kept(base: (f64, f64), without: &[(f64, f64)], f: usize, reject: Reject) -> Vec<usize> {
    let n = without.len();
    let dropped = |impact: Vec<f64>| -> Vec<bool> {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| impact[b].total_cmp(&impact[a]).then(b.cmp(&a)));
        let mut out = vec![false; n];
        for &i in order.iter().take(f) {
            out[i] = true;
        }
        out
    };
    let by_loss = dropped(without.iter().map(|w| base.0 - w.0).collect());
    let by_error = dropped(without.iter().map(|w| w.1 - base.1).collect());
    (0..n)
        .filter(|&i| match reject {
            Reject::Both => !by_loss[i] && !by_error[i],
            Reject::Loss => !by_loss[i],
            Reject::Error => !by_error[i],
        })
        .collect()
}

impl Aggregator for FangDefense {
    /// Keeps nothing across rounds.
    fn state(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
    }

    fn aggregate(&mut self, round: &ServerRound<'_>, updates: &[Update]) -> Result<Aggregate> {
        check_updates(updates)?;
        let server = crate::check::server_data(
            round,
            "fang-lrr-err",
            "measures each update on the server's validation set",
        )?;
        let mut v: Vec<&Update> = updates.iter().collect();
        v.sort_by_key(|u| u.client);
        let n = v.len();
        let most = if self.reject == Reject::Both {
            2 * self.f
        } else {
            self.f
        };
        if n <= most {
            return Err(CoreError::Aggregation(format!(
                "fang-lrr-err: rejecting up to {most} of {n} updates may leave none"
            )));
        }
        let deltas: Vec<&[f32]> = v.iter().map(|u| u.delta.as_slice()).collect();
        let score = |step: &[f32]| -> (f64, f64) {
            let params: Vec<f32> = round.global.iter().zip(step).map(|(g, s)| g + s).collect();
            let e = evaluate(server.spec, &params, server.data, server.spec.classes());
            (e.loss, e.accuracy)
        };
        let base = score(&mean(&deltas));
        let without: Vec<(f64, f64)> = (0..n)
            .map(|i| {
                let others: Vec<&[f32]> = (0..n).filter(|&j| j != i).map(|j| deltas[j]).collect();
                score(&mean(&others))
            })
            .collect();
        let keep = kept(base, &without, self.f, self.reject);
        let chosen: Vec<&[f32]> = keep.iter().map(|&i| deltas[i]).collect();
        Ok(
            Aggregate::new(mean(&chosen), keep.iter().map(|&i| v[i].client).collect())
                .with_metric("validation_loss", base.0)
                .with_metric("validation_accuracy", base.1),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::ups;
    use fl_core::data::LocalData;
    use fl_core::model::{ImageShape, ModelKind};
    use fl_core::train::{ModelSpec, TrainConfig};

    #[test]
    fn each_rejection_drops_the_updates_whose_removal_helps_most() {
        // Base (loss 1.0, accuracy 0.5). Without 0: (0.6, 0.55); without 1: (1.1, 0.7);
        // without 2: (0.9, 0.5); without 3: (1.2, 0.45).
        let base = (1.0, 0.5);
        let w = [(0.6, 0.55), (1.1, 0.7), (0.9, 0.5), (1.2, 0.45)];
        // LRR impacts 0.4, -0.1, 0.1, -0.2: drops 0. ERR impacts 0.05, 0.2, 0, -0.05: drops 1.
        assert_eq!(kept(base, &w, 1, Reject::Loss), [1, 2, 3]);
        assert_eq!(kept(base, &w, 1, Reject::Error), [0, 2, 3]);
        assert_eq!(kept(base, &w, 1, Reject::Both), [2, 3]);
        assert_eq!(kept(base, &w, 2, Reject::Loss), [1, 3]);
        // Ties: the higher position goes first.
        assert_eq!(kept(base, &[(0.5, 0.5); 3], 1, Reject::Loss), [0, 1]);
    }

    #[test]
    fn a_harmful_update_is_rejected_on_the_validation_set() {
        let shape = ImageShape::grey(4, 4);
        let spec = ModelSpec {
            kind: ModelKind::MLP,
            shape,
            outputs: 3,
            device: fl_core::DeviceKind::Flex.device().unwrap(),
            cpu_kernels: Some(1),
        };
        // Two classes told apart by brightness; a model trained a little on them.
        let images: Vec<f32> = (0..40)
            .flat_map(|i| vec![if i % 2 == 0 { -0.8 } else { 0.8 }; 16])
            .collect();
        let labels: Vec<u8> = (0..40).map(|i| (i % 2) as u8).collect();
        let data = LocalData::new(images, labels, shape);
        let train = TrainConfig {
            lr: 0.1,
            epochs: 3,
            ..Default::default()
        };
        let mut rng = fl_data::rng::stream(1, "t", &[]);
        let init = spec.initial_params(2);
        let (trained, _) = fl_core::train::train_local(&spec, &init, &data, &train, &mut rng);
        // Benign updates: small steps towards the trained model; client 2's: a large push
        // the other way.
        let towards: Vec<f32> = trained.iter().zip(&init).map(|(t, i)| t - i).collect();
        let pts: Vec<Vec<f32>> = (0..5)
            .map(|k| {
                let s = if k == 2 { -6.0 } else { 0.8 + 0.05 * k as f32 };
                towards.iter().map(|d| d * s).collect()
            })
            .collect();
        let refs: Vec<&[f32]> = pts.iter().map(Vec::as_slice).collect();
        let round = ServerRound {
            round: 1,
            seed: 0,
            global: &init,
            server: Some(fl_core::ServerData {
                data: &data,
                spec: &spec,
                train: &train,
            }),
        };
        let a = FangDefense::default()
            .aggregate(&round, &ups(&refs))
            .unwrap();
        assert!(!a.kept.contains(&2), "{:?}", a.kept);
        assert!(a.kept.len() >= 3);
        let e = FangDefense::default()
            .aggregate(
                &ServerRound {
                    server: None,
                    ..round
                },
                &ups(&refs),
            )
            .unwrap_err();
        assert!(e.to_string().contains("server_samples"), "{e}");
    }
}
