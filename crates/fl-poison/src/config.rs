//! The `[attack]` config section.

use fl_core::FedConfig;
use fl_core::error::{CoreError, Result};
use fl_data::partition::Withhold;
use fl_gan::GanConfig;
use serde::{Deserialize, Serialize};

/// What the adversary does in attack rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AttackMethod {
    /// The combined GAN reconstruction + poisoning attack (owns no image of G).
    #[default]
    Gan,
    /// Flips its own images of G to T (owns images of G; the baseline the GAN attack extends).
    LabelFlip,
    /// Behaves benignly with the same data as the GAN adversary: the no-attack baseline.
    None,
}

impl AttackMethod {
    /// The name in configs.
    pub fn name(self) -> &'static str {
        match self {
            AttackMethod::Gan => "gan",
            AttackMethod::LabelFlip => "label-flip",
            AttackMethod::None => "none",
        }
    }

    /// True when the adversary's share must hold no image of G.
    pub fn withholds_generate(self) -> bool {
        self != AttackMethod::LabelFlip
    }
}

/// Unchecked attack parameters (the `[attack]` config section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttackConfig {
    /// `gan`, `label-flip` or `none`.
    pub method: AttackMethod,
    /// G: the class the adversary reconstructs (and whose images it wants called T).
    pub generate: usize,
    /// T: the class G's images should be classified as.
    pub target: usize,
    /// The adversarial client's index.
    pub adversary: usize,
    /// First round in which the adversary may attack (it behaves benignly before).
    pub start_round: usize,
    /// Attack only once the global model's accuracy on the adversary's own data reaches this
    /// (checked from `start_round` on; `None` = start at `start_round`).
    pub start_accuracy: Option<f64>,
    /// Train on generated images labelled with the extra "fake" class K (Hitaj's part).
    pub fake_class: bool,
    /// Generated images labelled K per attack round.
    pub n_fake: usize,
    /// Train on generated images of G labelled T (Zhang's part).
    pub poison: bool,
    /// Generated images labelled T per attack round.
    pub n_poison: usize,
    /// Factor lambda on the malicious update (1 = no boosting); with `adaptive_boost`, the
    /// largest factor tried.
    pub boost: f64,
    /// Pick the boost each attack round among 1, 2, 4, ... up to `boost`, against a copy of
    /// the server's rule: the factor whose aggregate moves farthest along the adversary's
    /// update (the adversary then sees the round's benign updates).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub adaptive_boost: bool,
    /// With `adaptive_boost`, the smallest factor tried: below 1 the adversary also tries
    /// 1/2, 1/4, ... down to it, shrinking its update until a rule that drops outliers keeps
    /// it (1 = never below 1).
    #[serde(skip_serializing_if = "is_one")]
    pub adaptive_min_boost: f64,
    /// The adversary's local epochs in attack rounds (`None` = the benign `train.epochs`).
    pub epochs: Option<usize>,
    /// Generator and GAN training.
    pub gan: GanConfig,
    /// Write a grid of generated images every this many rounds (0 = only the final grid).
    pub samples_every: usize,
    /// Generated images of G scored by the fidelity oracle after the run (0 = skip).
    pub fidelity_samples: usize,
}

impl Default for AttackConfig {
    fn default() -> Self {
        Self {
            method: AttackMethod::Gan,
            generate: 1,
            target: 9,
            adversary: 0,
            start_round: 3,
            start_accuracy: None,
            fake_class: true,
            n_fake: 300,
            poison: true,
            n_poison: 300,
            boost: 1.0,
            adaptive_boost: false,
            adaptive_min_boost: 1.0,
            epochs: None,
            gan: GanConfig::default(),
            samples_every: 5,
            fidelity_samples: 500,
        }
    }
}

impl AttackConfig {
    /// Checks every value against the run it attacks.
    pub fn validate(&self, fed: &FedConfig) -> Result<()> {
        let bad = |m: String| Err(CoreError::Config(m));
        let classes = fed.dataset.classes();
        for (name, c) in [("generate", self.generate), ("target", self.target)] {
            if c >= classes {
                return bad(format!(
                    "attack.{name} must be a class of {} in 0..{classes}, got {c}",
                    fed.dataset.title()
                ));
            }
        }
        if self.method == AttackMethod::Gan && fed.dataset.shape() != fl_gan::generator::IMAGE {
            return bad(format!(
                "the GAN attack's generator makes {} images; {} has {} ones",
                fl_gan::generator::IMAGE,
                fed.dataset.title(),
                fed.dataset.shape()
            ));
        }
        if self.generate == self.target {
            return bad(format!(
                "attack.generate and attack.target must differ, both are {}",
                self.generate
            ));
        }
        if self.adversary >= fed.clients {
            return bad(format!(
                "attack.adversary is client {} but the run has {} clients (0..{})",
                self.adversary, fed.clients, fed.clients
            ));
        }
        if self.start_round == 0 {
            return bad("attack.start_round counts from 1".into());
        }
        if self.start_round > fed.rounds {
            return bad(format!(
                "attack.start_round {} is after the last round {}",
                self.start_round, fed.rounds
            ));
        }
        if let Some(a) = self.start_accuracy
            && !(0.0..=1.0).contains(&a)
        {
            return bad(format!("attack.start_accuracy must be in [0, 1], got {a}"));
        }
        if !(self.boost > 0.0 && self.boost.is_finite()) {
            return bad(format!("attack.boost must be positive, got {}", self.boost));
        }
        if self.adaptive_boost && (self.boost < 1.0 || self.method == AttackMethod::None) {
            return bad(format!(
                "attack.adaptive_boost picks a boost in [1, attack.boost] for an attack: needs \
                 boost >= 1 (got {}) and a method other than none",
                self.boost
            ));
        }
        if !(self.adaptive_min_boost > 0.0 && self.adaptive_min_boost <= 1.0) {
            return bad(format!(
                "attack.adaptive_min_boost must be in (0, 1], got {}",
                self.adaptive_min_boost
            ));
        }
        if self.adaptive_min_boost < 1.0 && !self.adaptive_boost {
            return bad("attack.adaptive_min_boost needs attack.adaptive_boost = true".into());
        }
        if self.epochs == Some(0) {
            return bad("attack.epochs cannot be zero".into());
        }
        if self.method == AttackMethod::Gan {
            if self.fake_class && self.n_fake == 0 {
                return bad("attack.fake_class is on but attack.n_fake is 0".into());
            }
            if self.poison && self.n_poison == 0 {
                return bad("attack.poison is on but attack.n_poison is 0".into());
            }
        }
        self.gan.validate()
    }

    /// The federated config the attack runs in: `fed` with G withheld from the adversary when
    /// the method needs it (added once; an existing identical rule is kept as is).
    pub fn federated_config(&self, fed: &FedConfig) -> FedConfig {
        let mut out = fed.clone();
        let rule = Withhold {
            classes: vec![self.generate],
            clients: vec![self.adversary],
        };
        if self.method.withholds_generate() && !out.partition.withhold.contains(&rule) {
            out.partition.withhold.push(rule);
        }
        out
    }
}

/// Whether a factor is 1 (the default left out of written configs).
fn is_one(v: &f64) -> bool {
    *v == 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(f: impl FnOnce(&mut AttackConfig)) -> String {
        let mut c = AttackConfig::default();
        f(&mut c);
        c.validate(&FedConfig::default()).unwrap_err().to_string()
    }

    #[test]
    fn default_is_valid() {
        AttackConfig::default()
            .validate(&FedConfig::default())
            .unwrap();
    }

    #[test]
    fn one_error_per_invalid_value() {
        assert!(err(|c| c.target = c.generate).contains("must differ"));
        assert!(err(|c| c.generate = 10).contains("attack.generate"));
        assert!(err(|c| c.target = 11).contains("attack.target"));
        assert!(err(|c| c.adversary = 10).contains("10 clients"));
        assert!(err(|c| c.start_round = 0).contains("start_round"));
        assert!(err(|c| c.start_round = 21).contains("after the last round"));
        assert!(err(|c| c.start_accuracy = Some(1.5)).contains("start_accuracy"));
        assert!(err(|c| c.boost = 0.0).contains("boost"));
        assert!(err(|c| c.boost = f64::NAN).contains("boost"));
        assert!(err(|c| c.epochs = Some(0)).contains("epochs"));
        assert!(err(|c| c.n_fake = 0).contains("n_fake"));
        assert!(err(|c| c.n_poison = 0).contains("n_poison"));
        assert!(err(|c| c.gan.batch_size = 1).contains("batch_size"));
        assert!(err(|c| c.gan.beta1 = 1.0).contains("beta1"));
        assert!(err(|c| c.adaptive_min_boost = 0.5).contains("needs attack.adaptive_boost"));
        let adaptive = |c: &mut AttackConfig| {
            c.adaptive_boost = true;
            c.boost = 4.0;
        };
        for bad in [0.0, 1.5, f64::NAN] {
            let e = err(|c| {
                adaptive(c);
                c.adaptive_min_boost = bad;
            });
            assert!(e.contains("adaptive_min_boost must be in (0, 1]"), "{e}");
        }
    }

    #[test]
    fn parts_switched_off_need_no_counts() {
        let c = AttackConfig {
            fake_class: false,
            n_fake: 0,
            poison: false,
            n_poison: 0,
            ..Default::default()
        };
        c.validate(&FedConfig::default()).unwrap();
    }

    #[test]
    fn withholding_is_added_once_and_only_when_needed() {
        let fed = FedConfig::default();
        let a = AttackConfig::default();
        let once = a.federated_config(&fed);
        assert_eq!(once.partition.withhold.len(), 1);
        assert_eq!(once.partition.withhold[0].classes, vec![1]);
        assert_eq!(once.partition.withhold[0].clients, vec![0]);
        assert_eq!(a.federated_config(&once), once);
        let flip = AttackConfig {
            method: AttackMethod::LabelFlip,
            ..Default::default()
        };
        assert!(flip.federated_config(&fed).partition.withhold.is_empty());
    }
}
