//! Attack accuracy and the scores reported beside it.

use crate::adversary::AdversaryRound;
use crate::config::AttackConfig;
use fl_core::RoundMetrics;
use fl_core::eval::{Evaluation, round6};
use serde::{Deserialize, Serialize};

/// The global model's scores that matter for the attack, after one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackScores {
    /// Share of test images of G classified as T (the attack accuracy).
    pub attack_accuracy: f64,
    /// Accuracy on all test images.
    pub main_accuracy: f64,
    /// Accuracy on the test images of every class except G.
    pub main_accuracy_others: f64,
    /// Accuracy on the test images of G.
    pub accuracy_generate: f64,
}

impl AttackScores {
    /// The scores of `eval` for the pair (G, T) of `cfg`.
    pub fn of(eval: &Evaluation, cfg: &AttackConfig) -> Self {
        Self {
            attack_accuracy: eval.rate(cfg.generate, cfg.target),
            main_accuracy: eval.accuracy,
            main_accuracy_others: eval.accuracy_excluding(&[cfg.generate]),
            accuracy_generate: eval.per_class_accuracy[cfg.generate],
        }
    }
}

/// One line of an attack run's `metrics.jsonl`: the round's federated metrics plus the attack's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackRoundMetrics {
    /// The protocol's metrics of the round.
    #[serde(flatten)]
    pub base: RoundMetrics,
    /// True when the round is in the attack period (from the round the attack started on).
    pub attack_period: bool,
    /// Attack scores (absent on rounds without evaluation).
    pub scores: Option<AttackScores>,
    /// What the adversary did (absent when it was not sampled).
    pub adversary: Option<AdversaryRound>,
}

/// The headline numbers of an attack run (`summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackSummary {
    /// `gan`, `label-flip` or `none`.
    pub method: String,
    /// Class G.
    pub generate: usize,
    /// Class T.
    pub target: usize,
    /// Names of G and T.
    pub pair: String,
    /// The boost factor lambda.
    pub boost: f64,
    /// Round the attack started (for `none`: would have started); `None` if it never did.
    pub attack_start: Option<usize>,
    /// Evaluated rounds in the attack period.
    pub attack_rounds: usize,
    /// Mean attack accuracy over the attack period (the published metric).
    pub avg_attack_accuracy: Option<f64>,
    /// Attack accuracy after the last round.
    pub final_attack_accuracy: f64,
    /// Largest attack accuracy over the attack period.
    pub max_attack_accuracy: Option<f64>,
    /// Mean accuracy on the classes other than G over the attack period.
    pub avg_main_accuracy_others: Option<f64>,
    /// Accuracy on all test images after the last round.
    pub final_main_accuracy: f64,
    /// Accuracy on the classes other than G after the last round.
    pub final_main_accuracy_others: f64,
    /// Accuracy on G after the last round.
    pub final_accuracy_generate: f64,
    /// Share of generated images of G the oracle classifies as G (GAN attack, when scored).
    pub fidelity: Option<f64>,
    /// Mean of the boosts picked over the attack rounds (with `attack.adaptive_boost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_boost: Option<f64>,
    /// Share of the adversary's attack rounds in which the server's rule kept its update
    /// (absent without such rounds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adversary_kept_share: Option<f64>,
}

impl AttackSummary {
    /// Summarises the rows of a run; `fidelity` comes from the oracle when it was scored.
    pub fn new(
        cfg: &AttackConfig,
        class_names: &[&str],
        rows: &[AttackRoundMetrics],
        attack_start: Option<usize>,
        fidelity: Option<f64>,
    ) -> Self {
        let period: Vec<&AttackScores> = rows
            .iter()
            .filter(|r| r.attack_period)
            .filter_map(|r| r.scores.as_ref())
            .collect();
        let mean = |f: fn(&AttackScores) -> f64| {
            (!period.is_empty())
                .then(|| round6(period.iter().map(|s| f(s)).sum::<f64>() / period.len() as f64))
        };
        let last = rows.iter().rev().find_map(|r| r.scores.as_ref());
        let at_end = |f: fn(&AttackScores) -> f64| last.map_or(0.0, |s| round6(f(s)));
        Self {
            method: cfg.method.name().into(),
            generate: cfg.generate,
            target: cfg.target,
            pair: format!(
                "{} -> {}",
                class_names[cfg.generate], class_names[cfg.target]
            ),
            boost: cfg.boost,
            attack_start,
            attack_rounds: period.len(),
            avg_attack_accuracy: mean(|s| s.attack_accuracy),
            final_attack_accuracy: at_end(|s| s.attack_accuracy),
            max_attack_accuracy: period
                .iter()
                .map(|s| round6(s.attack_accuracy))
                .reduce(f64::max),
            avg_main_accuracy_others: mean(|s| s.main_accuracy_others),
            final_main_accuracy: at_end(|s| s.main_accuracy),
            final_main_accuracy_others: at_end(|s| s.main_accuracy_others),
            final_accuracy_generate: at_end(|s| s.accuracy_generate),
            fidelity: fidelity.map(round6),
            mean_boost: mean_of(rows.iter().filter_map(|r| r.adversary.as_ref()?.boost)),
            adversary_kept_share: mean_of(
                rows.iter()
                    .filter(|r| {
                        r.adversary.as_ref().is_some_and(|a| a.attacking)
                            && cfg.method != crate::config::AttackMethod::None
                    })
                    .map(|r| f64::from(u8::from(r.base.kept.contains(&cfg.adversary)))),
            ),
        }
    }
}

/// The mean of `values`, rounded; `None` when there are none.
fn mean_of(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (n, sum) = values.fold((0usize, 0.0), |(n, s), v| (n + 1, s + v));
    (n > 0).then(|| round6(sum / n as f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fl_core::federation::RoundTime;

    /// A 3-class confusion matrix (K = 2 plus the fake column) with known rates.
    fn eval() -> Evaluation {
        // true 0: 6 right, 3 called 1, 1 called fake; true 1: 8 right, 2 called 0.
        let confusion = vec![vec![6, 3, 1], vec![2, 8, 0]];
        Evaluation {
            loss: 0.5,
            accuracy: 14.0 / 20.0,
            per_class_accuracy: vec![0.6, 0.8],
            confusion,
        }
    }

    fn cfg() -> AttackConfig {
        AttackConfig {
            generate: 0,
            target: 1,
            ..Default::default()
        }
    }

    #[test]
    fn scores_by_hand() {
        let s = AttackScores::of(&eval(), &cfg());
        assert_eq!(s.attack_accuracy, 0.3);
        assert_eq!(s.main_accuracy, 0.7);
        assert_eq!(s.main_accuracy_others, 0.8);
        assert_eq!(s.accuracy_generate, 0.6);
    }

    fn row(round: usize, period: bool, attack: f64) -> AttackRoundMetrics {
        AttackRoundMetrics {
            base: RoundMetrics {
                round,
                clients: vec![0, 1],
                kept: vec![0, 1],
                delays: Vec::new(),
                server: Default::default(),
                train_loss: 0.1,
                test: None,
                time: RoundTime::default(),
            },
            attack_period: period,
            scores: Some(AttackScores {
                attack_accuracy: attack,
                main_accuracy: 0.9,
                main_accuracy_others: 0.95,
                accuracy_generate: 0.5,
            }),
            adversary: None,
        }
    }

    #[test]
    fn averages_cover_only_the_attack_period() {
        let rows = vec![
            row(1, false, 1.0),
            row(2, true, 0.2),
            row(3, true, 0.6),
            row(4, true, 0.1),
        ];
        let s = AttackSummary::new(&cfg(), &["a", "b"], &rows, Some(2), None);
        assert_eq!(s.attack_rounds, 3);
        assert_eq!(s.avg_attack_accuracy, Some(0.3));
        assert_eq!(s.max_attack_accuracy, Some(0.6));
        assert_eq!(s.final_attack_accuracy, 0.1);
        assert_eq!(s.pair, "a -> b");
    }

    #[test]
    fn no_attack_period_gives_no_average() {
        let s = AttackSummary::new(&cfg(), &["a", "b"], &[row(1, false, 0.4)], None, None);
        assert_eq!(s.avg_attack_accuracy, None);
        assert_eq!(s.max_attack_accuracy, None);
        assert_eq!(s.final_attack_accuracy, 0.4);
    }
}
