//! The `[mia]` config section.

use fl_core::FedConfig;
use fl_core::error::{CoreError, Result};
use serde::{Deserialize, Serialize};

/// What the malicious clients do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum MiaMethod {
    /// FedPoisonMIA: poison the targets with wrong labels, hidden by mask samples within the
    /// benign updates' largest angle.
    #[default]
    #[serde(rename = "fedpoisonmia")]
    FedPoisonMia,
    /// No poisoning: a loss (or confidence) threshold on the global model, calibrated on the
    /// attacker's own data.
    #[serde(rename = "passive")]
    Passive,
    /// Gradient ascent on the targets with their true labels (Nasr et al.'s active attacker).
    #[serde(rename = "gradient-ascent")]
    GradientAscent,
    /// FedPoisonMIA's poisoning under a Euclidean constraint instead of the angular one
    /// (AGREvader-style): the largest distance to a benign update stays within the largest
    /// distance between two benign updates.
    #[serde(rename = "agrevader")]
    Agrevader,
}

impl MiaMethod {
    /// Every method, in table order.
    pub const ALL: [MiaMethod; 4] = [
        MiaMethod::FedPoisonMia,
        MiaMethod::Passive,
        MiaMethod::GradientAscent,
        MiaMethod::Agrevader,
    ];

    /// The name in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            MiaMethod::FedPoisonMia => "fedpoisonmia",
            MiaMethod::Passive => "passive",
            MiaMethod::GradientAscent => "gradient-ascent",
            MiaMethod::Agrevader => "agrevader",
        }
    }

    /// The method called `name`.
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| {
                CoreError::Config(format!(
                    "unknown membership attack `{name}` (known: {})",
                    Self::ALL.map(|m| m.name()).join(", ")
                ))
            })
    }

    /// True when the malicious clients send crafted updates in attack rounds.
    pub fn is_active(self) -> bool {
        self != MiaMethod::Passive
    }

    /// True when the crafted update is hidden within the benign updates (and so needs them).
    pub fn is_constrained(self) -> bool {
        matches!(self, MiaMethod::FedPoisonMia | MiaMethod::Agrevader)
    }
}

/// Which benign updates the attacker knows when it crafts its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Knowledge {
    /// The round's benign updates (it answers after them).
    #[default]
    Full,
    /// Only the benign updates its own clients would send (with one malicious client, those
    /// of the two halves of its data).
    Partial,
}

impl Knowledge {
    /// The name in configs.
    pub fn name(self) -> &'static str {
        match self {
            Knowledge::Full => "full",
            Knowledge::Partial => "partial",
        }
    }
}

/// How the passive attack turns a target's score into a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PassiveRule {
    /// Member iff its loss is at most the mean loss on the attacker's own data (Yeom et al.).
    #[default]
    Loss,
    /// Member iff its true-class confidence is at least the mean on the attacker's own data.
    Confidence,
}

/// Which of the greedy search's candidates a constrained attack sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    /// The masks chosen when the search ends (after `greedy_steps` additions, or when no
    /// further mask keeps the update feasible).
    #[default]
    Final,
    /// The feasible candidate of largest norm seen over the search's iterations, as the
    /// FedPoisonMIA authors' code sends it.
    BestNorm,
}

impl Selection {
    fn is_final(&self) -> bool {
        *self == Self::Final
    }
}

/// How the attacker computes `g_attack` and the cover updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AttackSteps {
    /// One plain SGD step at the run's learning rate (no momentum, no weight decay).
    #[default]
    Sgd,
    /// One step of the crafting client's own optimizer (`[train]`'s: Adam with its kept
    /// moments under `train.keep_optimizer_state`), its state restored afterwards, as the
    /// FedPoisonMIA authors' code does.
    OwnOptimizer,
}

impl AttackSteps {
    fn is_sgd(&self) -> bool {
        *self == Self::Sgd
    }
}

/// Whose crafting of the constrained update (`fedpoisonmia`, `agrevader`) runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Craft {
    /// The lab's: `g_attack` and one update per cover sample, each a single step
    /// (`attack_steps`), then the greedy search over covers and `alpha` (`selection`).
    #[default]
    Lab,
    /// The FedPoisonMIA authors' code at the commit of their logs (FrankMOWJ/AGREvader_v2
    /// 287de19, `blackbox_attack_angle` and `blackbox_attack_norm`): the attacker's optimizer
    /// continues, never restored, through one step on the targets with wrong labels and then
    /// `greedy_steps` tries, each through 320 random cover samples in the run's batches (5
    /// steps of 64; parameters carried from one try to the next); try k's candidate adds half the cumulative cover
    /// update to try k-1's; the feasible candidate of largest angle (angle) or norm
    /// (distance) is sent, the last one when none is feasible.
    Authors,
}

impl Craft {
    fn is_lab(&self) -> bool {
        *self == Self::Lab
    }
}

/// How a malicious client trains before the attack starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Pretrain {
    /// As an honest client: `[train]`'s local training over its data.
    #[default]
    LocalTraining,
    /// One step of its optimizer on all its data as one batch, as the FedPoisonMIA authors'
    /// attacker trains on its targets (`BlackBoxMalicious.train`).
    OneStep,
}

impl Pretrain {
    fn is_local_training(&self) -> bool {
        *self == Self::LocalTraining
    }
}

/// Where the attacker's cover (mask) samples come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CoverSource {
    /// The malicious clients' own training data.
    #[default]
    Own,
    /// A reserve no client holds: `mask_pool` test-split samples (none of them a target),
    /// left out of the evaluation like the non-member targets, as the authors hold out a
    /// reserve.
    Reserve,
}

impl CoverSource {
    fn is_own(&self) -> bool {
        *self == Self::Own
    }
}

/// Which model the attacker judges membership on after each round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum JudgeOn {
    /// The new global model (the one the attacker receives next).
    #[default]
    Global,
    /// The model the attacker holds: the one its (first) malicious client last started a
    /// round from, stale under `max_delay`, as the FedPoisonMIA authors judge.
    AttackerModel,
}

impl JudgeOn {
    fn is_global(&self) -> bool {
        *self == Self::Global
    }
}

/// The adaptive attacker's smallest factor by default: six halvings below 1.
const DEFAULT_MIN_SCALE: f64 = 1.0 / 64.0;

fn is_default_min_scale(s: &f64) -> bool {
    *s == DEFAULT_MIN_SCALE
}

/// Unchecked membership-attack parameters (the `[mia]` config section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MiaConfig {
    /// `fedpoisonmia`, `passive`, `gradient-ascent` or `agrevader`.
    pub method: MiaMethod,
    /// `full` or `partial`.
    pub knowledge: Knowledge,
    /// Malicious clients: clients `0..malicious`.
    pub malicious: usize,
    /// Target samples: half members (benign clients' training data), half non-members (test
    /// split, left out of the main-accuracy evaluation).
    pub n_targets: usize,
    /// Mask (cover) candidates, drawn from `cover_source`.
    pub mask_pool: usize,
    /// `own` (the default: the malicious clients' data) or `reserve` (held-out samples no
    /// client holds, the authors' choice).
    #[serde(skip_serializing_if = "CoverSource::is_own")]
    pub cover_source: CoverSource,
    /// Greedy iterations of mask selection.
    pub greedy_steps: usize,
    /// The largest factor alpha on the poison update that is tried.
    pub alpha_max: f64,
    /// The smallest factor alpha tried (alphas between go in steps of a factor 1.2; the
    /// authors' code fixes alpha at 1: `alpha_max = alpha_min = 1`).
    pub alpha_min: f64,
    /// `final` (the default) or `best-norm` (the authors' choice): which greedy candidate is
    /// sent.
    #[serde(skip_serializing_if = "Selection::is_final")]
    pub selection: Selection,
    /// `sgd` (the default) or `own-optimizer` (the authors' choice): the step that makes
    /// `g_attack` and each cover update.
    #[serde(skip_serializing_if = "AttackSteps::is_sgd")]
    pub attack_steps: AttackSteps,
    /// `lab` (the default) or `authors`: whose crafting of the constrained update runs
    /// ([`Craft`]); with `authors`, `attack_steps`, `selection` and the alpha range do not
    /// apply.
    #[serde(skip_serializing_if = "Craft::is_lab")]
    pub craft: Craft,
    /// `global` (the default) or `attacker-model` (the authors' choice): what membership is
    /// judged on.
    #[serde(skip_serializing_if = "JudgeOn::is_global")]
    pub judge_on: JudgeOn,
    /// Start the attack only once the global model a round starts from classifies this share
    /// of the first malicious client's training data correctly (checked from `start_round`
    /// on), as the authors wait for training accuracy to converge; `None` (the default)
    /// starts at `start_round`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_accuracy: Option<f64>,
    /// Before the attack, the malicious clients train on the targets too, with their true
    /// labels (their own data plus the targets, and that sample count), as the authors'
    /// attacker does; `false` (the default) trains on their own data only.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pretrain_targets: bool,
    /// `local-training` (the default) or `one-step` (the authors' choice): how a malicious
    /// client trains before the attack starts.
    #[serde(skip_serializing_if = "Pretrain::is_local_training")]
    pub pretrain: Pretrain,
    /// The defense-aware attacker: in each attack round the crafted update is scaled by the
    /// factor among `adaptive_min_scale`, ..., 1/4, 1/2, 1 (halvings) whose aggregate, under
    /// the attacker's copy of the server's rule fed the round's benign updates, moves
    /// farthest along it (Fang et al. 2020; Shejwalkar and Houmansadr 2021). Needs a
    /// constrained method with full knowledge; `false` (the default) sends it as crafted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub adaptive: bool,
    /// The smallest factor the adaptive attacker tries (in (0, 1]).
    #[serde(skip_serializing_if = "is_default_min_scale")]
    pub adaptive_min_scale: f64,
    /// First attack round (the malicious clients behave benignly before). Membership is
    /// judged on the global model after every round; "best" counts rounds from this one on.
    pub start_round: usize,
    /// Number of attack rounds (`None` = until the end).
    pub attack_rounds: Option<usize>,
    /// The passive attack's decision rule.
    pub passive_rule: PassiveRule,
    /// Own samples the passive threshold is calibrated on (samples of the `[pool]` reserve,
    /// which no client trains on, when the malicious clients hold no data).
    pub calibration_samples: usize,
}

impl Default for MiaConfig {
    fn default() -> Self {
        Self {
            method: MiaMethod::FedPoisonMia,
            knowledge: Knowledge::Full,
            malicious: 1,
            n_targets: 300,
            mask_pool: 100,
            cover_source: CoverSource::Own,
            greedy_steps: 5,
            alpha_max: 100.0,
            alpha_min: 0.01,
            selection: Selection::Final,
            attack_steps: AttackSteps::Sgd,
            craft: Craft::Lab,
            judge_on: JudgeOn::Global,
            pretrain_targets: false,
            pretrain: Pretrain::LocalTraining,
            adaptive: false,
            adaptive_min_scale: DEFAULT_MIN_SCALE,
            start_accuracy: None,
            start_round: 5,
            attack_rounds: None,
            passive_rule: PassiveRule::Loss,
            calibration_samples: 1000,
        }
    }
}

impl MiaConfig {
    /// Checks every value against the run it attacks.
    pub fn validate(&self, fed: &FedConfig) -> Result<()> {
        let bad = |m: String| Err(CoreError::Config(m));
        if self.malicious == 0 {
            return bad("mia.malicious must be at least 1".into());
        }
        if self.malicious >= fed.clients {
            return bad(format!(
                "mia.malicious is {} but the run has {} clients: at least one must be benign",
                self.malicious, fed.clients
            ));
        }
        if self.n_targets < 2 || !self.n_targets.is_multiple_of(2) {
            return bad(format!(
                "mia.n_targets must be even and at least 2 (half members, half non-members), \
                 got {}",
                self.n_targets
            ));
        }
        if self.start_round == 0 || self.start_round > fed.rounds {
            return bad(format!(
                "mia.start_round must be in 1..={} (the run's rounds), got {}",
                fed.rounds, self.start_round
            ));
        }
        if self.attack_rounds == Some(0) {
            return bad("mia.attack_rounds cannot be zero".into());
        }
        if self.method.is_constrained() {
            if self.mask_pool == 0 {
                return bad("mia.mask_pool cannot be zero for a constrained attack".into());
            }
            if self.greedy_steps == 0 {
                return bad("mia.greedy_steps cannot be zero".into());
            }
            if !(self.alpha_min > 0.0
                && self.alpha_min <= self.alpha_max
                && self.alpha_max.is_finite())
            {
                return bad(format!(
                    "mia.alpha_min and mia.alpha_max must satisfy 0 < alpha_min <= alpha_max, \
                     got {} and {}",
                    self.alpha_min, self.alpha_max
                ));
            }
        }
        if self.adaptive {
            if !self.method.is_constrained() || self.knowledge != Knowledge::Full {
                return bad(format!(
                    "mia.adaptive scales a crafted update against the benign updates: it needs \
                     fedpoisonmia or agrevader with knowledge = \"full\", got {} with {}",
                    self.method.name(),
                    self.knowledge.name()
                ));
            }
            if !(self.adaptive_min_scale > 0.0 && self.adaptive_min_scale <= 1.0) {
                return bad(format!(
                    "mia.adaptive_min_scale must be in (0, 1], got {}",
                    self.adaptive_min_scale
                ));
            }
        }
        if let Some(a) = self.start_accuracy
            && !(a > 0.0 && a <= 1.0)
        {
            return bad(format!("mia.start_accuracy must be in (0, 1], got {a}"));
        }
        if self.method == MiaMethod::Passive && self.calibration_samples == 0 {
            return bad("mia.calibration_samples cannot be zero".into());
        }
        Ok(())
    }

    /// True when round `round` is an attack round of an attack that started in round
    /// `start` (`None`: not started).
    pub fn attacks_in(&self, start: Option<usize>, round: usize) -> bool {
        self.method.is_active()
            && start.is_some_and(|s| round >= s && self.attack_rounds.is_none_or(|n| round < s + n))
    }

    /// The first attack round when the config fixes it (no `start_accuracy`).
    pub fn fixed_start(&self) -> Option<usize> {
        self.start_accuracy.is_none().then_some(self.start_round)
    }

    /// The malicious clients.
    pub fn malicious_clients(&self) -> std::ops::Range<usize> {
        0..self.malicious
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(f: impl FnOnce(&mut MiaConfig)) -> String {
        let mut c = MiaConfig::default();
        f(&mut c);
        c.validate(&FedConfig::default()).unwrap_err().to_string()
    }

    #[test]
    fn default_is_valid_and_names_round_trip() {
        MiaConfig::default()
            .validate(&FedConfig::default())
            .unwrap();
        for m in MiaMethod::ALL {
            assert_eq!(MiaMethod::parse(m.name()).unwrap(), m);
        }
        assert!(
            MiaMethod::parse("fedpoison")
                .unwrap_err()
                .to_string()
                .contains("agrevader")
        );
    }

    #[test]
    fn one_error_per_invalid_value() {
        assert!(err(|c| c.malicious = 0).contains("at least 1"));
        assert!(err(|c| c.malicious = 10).contains("benign"));
        assert!(err(|c| c.n_targets = 301).contains("even"));
        assert!(err(|c| c.start_round = 0).contains("start_round"));
        assert!(err(|c| c.start_round = 21).contains("start_round"));
        assert!(err(|c| c.start_accuracy = Some(0.0)).contains("start_accuracy"));
        assert!(err(|c| c.start_accuracy = Some(1.5)).contains("start_accuracy"));
        assert!(err(|c| c.attack_rounds = Some(0)).contains("attack_rounds"));
        assert!(err(|c| c.mask_pool = 0).contains("mask_pool"));
        assert!(err(|c| c.greedy_steps = 0).contains("greedy_steps"));
        assert!(err(|c| c.alpha_max = 0.001).contains("alpha_max"));
        assert!(err(|c| c.alpha_min = 0.0).contains("alpha_min"));
        let adaptive = |c: &mut MiaConfig| c.adaptive = true;
        assert!(
            err(|c| {
                adaptive(c);
                c.method = MiaMethod::Passive;
            })
            .contains("mia.adaptive")
        );
        assert!(
            err(|c| {
                adaptive(c);
                c.knowledge = Knowledge::Partial;
            })
            .contains("knowledge = \"full\"")
        );
        assert!(
            err(|c| {
                adaptive(c);
                c.adaptive_min_scale = 1.5;
            })
            .contains("adaptive_min_scale")
        );
    }

    #[test]
    fn attack_rounds_window() {
        let c = MiaConfig {
            start_round: 3,
            attack_rounds: Some(2),
            ..Default::default()
        };
        let on: Vec<usize> = (1..8)
            .filter(|&r| c.attacks_in(c.fixed_start(), r))
            .collect();
        assert_eq!(on, vec![3, 4]);
        // Started later (at a converged accuracy): the window follows the start.
        let late: Vec<usize> = (1..10).filter(|&r| c.attacks_in(Some(6), r)).collect();
        assert_eq!(late, vec![6, 7]);
        assert!(!(1..=20).any(|r| c.attacks_in(None, r)), "not started");
        let passive = MiaConfig {
            method: MiaMethod::Passive,
            ..Default::default()
        };
        assert!(!(1..=20).any(|r| passive.attacks_in(Some(1), r)));
    }
}
