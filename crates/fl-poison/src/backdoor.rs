//! A backdoor by data poisoning (BadNets: Gu, Dolan-Gavitt and Garg, 2017, as federated
//! learning papers run it), with and without model replacement (Bagdasaryan et al., "How to
//! backdoor federated learning", AISTATS 2020), and a defense-aware form of the scaling.
//!
//! Clients `0..m` stamp a square trigger (`trigger_size` pixels a side, `trigger_margin` from
//! the bottom-right corner, every channel at the brightest value) on a fixed share
//! (`poison_fraction`) of their own samples and label them `target`; from `start_round` they
//! train on that set like any client and send their update multiplied by `scale` (1: plain
//! data poisoning; Bagdasaryan et al. replace the model with `scale` = clients / malicious
//! under FedAvg). With `adaptive`, each round the malicious clients see the benign updates and
//! pick the scale, among 1, 2, 4, ... up to `scale`, whose aggregate under a copy of the
//! server's rule (fed the benign updates and their own scaled ones) moves farthest along their
//! mean update (a rule that drops or clips large updates then meets the largest scale it still
//! passes; ties go to the smaller scale).
//!
//! Scored by attack success: the share of test images of any class but `target`, trigger
//! stamped, that the global model classifies as `target`; and by main accuracy on the clean
//! test set.

use fl_core::data::LocalData;
use fl_core::error::{CoreError, Result};
use fl_core::eval::{argmax, logits};
use fl_core::experiment::Prepared;
use fl_core::model::ImageShape;
use fl_core::train::OptimizerState;
use fl_core::{
    Attack, FedConfig, Federation, MaliciousClients, RoundContext, RoundMetrics, Update,
};
use fl_data::rng::stream;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

/// Unchecked parameters of a backdoor run (the `[attack]` section of `kind = "backdoor"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackdoorConfig {
    /// Malicious clients: clients `0..malicious`.
    pub malicious: usize,
    /// The class triggered images are to be classified as.
    pub target: usize,
    /// Side of the square trigger, in pixels.
    pub trigger_size: usize,
    /// Pixels between the trigger and the bottom and right edges.
    pub trigger_margin: usize,
    /// Share of each malicious client's samples stamped and relabelled (fixed for the run).
    pub poison_fraction: f64,
    /// Factor on the malicious updates (model replacement; 1 = none); with `adaptive`, the
    /// largest factor tried.
    pub scale: f64,
    /// Pick the scale each round against a copy of the server's rule.
    pub adaptive: bool,
    /// First attack round (from 1); before it the malicious clients train honestly.
    pub start_round: usize,
}

impl Default for BackdoorConfig {
    fn default() -> Self {
        Self {
            malicious: 2,
            target: 0,
            trigger_size: 4,
            trigger_margin: 1,
            poison_fraction: 0.5,
            scale: 1.0,
            adaptive: false,
            start_round: 1,
        }
    }
}

impl BackdoorConfig {
    /// Checks every value against the run it attacks.
    pub fn validate(&self, fed: &FedConfig) -> Result<()> {
        let bad = |m: String| Err(CoreError::Config(m));
        if self.malicious == 0 || self.malicious >= fed.clients {
            return bad(format!(
                "attack.malicious must be in 1..{} (the clients), got {}",
                fed.clients, self.malicious
            ));
        }
        let classes = fed.dataset.classes();
        if self.target >= classes {
            return bad(format!(
                "attack.target must be a class of {} in 0..{classes}, got {}",
                fed.dataset.title(),
                self.target
            ));
        }
        let shape = fed.dataset.shape();
        let side = shape.height.min(shape.width);
        if self.trigger_size == 0 || self.trigger_size + self.trigger_margin > side {
            return bad(format!(
                "attack.trigger_size ({}) plus attack.trigger_margin ({}) must fit in {shape} \
                 images, and the trigger cannot be empty",
                self.trigger_size, self.trigger_margin
            ));
        }
        if !(self.poison_fraction > 0.0 && self.poison_fraction <= 1.0) {
            return bad(format!(
                "attack.poison_fraction must be in (0, 1], got {}",
                self.poison_fraction
            ));
        }
        if !(self.scale >= 1.0 && self.scale.is_finite()) {
            return bad(format!("attack.scale must be >= 1, got {}", self.scale));
        }
        if self.start_round == 0 {
            return bad("attack.start_round counts from 1".into());
        }
        Ok(())
    }

    /// The scales the adaptive form tries: 1, 2, 4, ... below `scale`, then `scale`.
    pub fn scales(&self) -> Vec<f64> {
        crate::scale::doublings(self.scale)
    }
}

/// Stamps the trigger of `cfg` on one image of `shape` (values in [-1, 1]).
pub fn stamp(cfg: &BackdoorConfig, shape: ImageShape, image: &mut [f32]) {
    let (h, w) = (shape.height, shape.width);
    let (y0, x0) = (
        h - cfg.trigger_margin - cfg.trigger_size,
        w - cfg.trigger_margin - cfg.trigger_size,
    );
    for c in 0..shape.channels {
        for y in y0..y0 + cfg.trigger_size {
            let row = c * h * w + y * w;
            image[row + x0..row + x0 + cfg.trigger_size].fill(1.0);
        }
    }
}

/// The test images of every class but the target, trigger stamped (labels kept: the true
/// classes).
pub fn triggered(cfg: &BackdoorConfig, test: &LocalData) -> LocalData {
    let mut out = LocalData::empty(test.shape);
    for i in (0..test.len()).filter(|&i| test.labels[i] as usize != cfg.target) {
        let mut img = test.image(i).to_vec();
        stamp(cfg, test.shape, &mut img);
        out.push(&img, test.labels[i]);
    }
    out
}

/// A malicious client's set: `data` with a seeded `poison_fraction` of its samples stamped
/// and labelled `target` (the share drawn by `stream(seed, "backdoor-poison", [client])`).
pub fn poisoned(cfg: &BackdoorConfig, data: &LocalData, seed: u64, client: usize) -> LocalData {
    let mut out = data.clone();
    let mut idx: Vec<usize> = (0..data.len()).collect();
    idx.shuffle(&mut stream(seed, "backdoor-poison", &[client as u64]));
    let n = (cfg.poison_fraction * data.len() as f64).round() as usize;
    let px = data.pixels();
    for &i in &idx[..n] {
        stamp(cfg, data.shape, &mut out.images[i * px..(i + 1) * px]);
        out.labels[i] = cfg.target as u8;
    }
    out
}

/// Share of `data` (triggered images) that the model `params` classifies as `target`.
pub fn attack_success(
    spec: &fl_core::train::ModelSpec,
    params: &[f32],
    data: &LocalData,
    target: usize,
) -> f64 {
    if data.is_empty() {
        return 0.0;
    }
    let hits = logits(spec, params, data)
        .chunks_exact(spec.outputs)
        .filter(|row| argmax(row) == target)
        .count();
    hits as f64 / data.len() as f64
}

/// A round's record: the federated round and the backdoor's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackdoorRound {
    /// The federated round.
    #[serde(flatten)]
    pub base: RoundMetrics,
    /// Whether the malicious clients sent poisoned updates this round.
    pub attacking: bool,
    /// Malicious clients sampled this round.
    pub malicious_sampled: usize,
    /// Of those, how many the server kept.
    pub malicious_kept: usize,
    /// The factor on the malicious updates this round (attack rounds).
    pub scale: Option<f64>,
    /// Attack success of the global model after the round (evaluated rounds).
    pub attack_success: Option<f64>,
}

/// The run's headline figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackdoorSummary {
    /// Malicious clients.
    pub malicious: usize,
    /// Target class.
    pub target: usize,
    /// The factor asked (the largest tried when adaptive).
    pub scale: f64,
    /// Whether the scale was picked against the rule.
    pub adaptive: bool,
    /// First attack round.
    pub start_round: usize,
    /// Main (clean) test accuracy after the last round.
    pub final_accuracy: f64,
    /// Attack success after the last round.
    pub final_attack_success: f64,
    /// Mean attack success over the evaluated attack rounds.
    pub mean_attack_success: f64,
    /// Highest attack success over the evaluated rounds.
    pub max_attack_success: f64,
    /// Mean scale over the attack rounds.
    pub mean_scale: Option<f64>,
    /// Share of the malicious updates sent in attack rounds that the server kept.
    pub malicious_kept_share: Option<f64>,
}

/// The malicious clients of a backdoor run as one [`Attack`].
pub struct Backdoor {
    config: BackdoorConfig,
    /// Each malicious client's own (clean) set and its poisoned set.
    clean: Vec<LocalData>,
    poisoned: Vec<LocalData>,
    optimizers: Vec<OptimizerState>,
    /// The attacker's copy of the server's rule (the adaptive form simulates it).
    rule: Box<dyn fl_core::Aggregator>,
    /// The test images of other classes, stamped.
    triggered: LocalData,
    /// This round's work, once its first malicious client is asked.
    round: Option<ThisRound>,
}

/// A round's malicious updates before scaling (by client; empty unless adaptive) and the
/// scale picked.
struct ThisRound(usize, Vec<Option<Vec<f32>>>, f64);

impl Backdoor {
    /// The attack of `config` on the clients of `prepared` (checked against its run config);
    /// `rule` is the attacker's copy of the server's rule.
    pub fn new(
        prepared: &Prepared,
        config: &BackdoorConfig,
        rule: Box<dyn fl_core::Aggregator>,
    ) -> Result<Self> {
        config.validate(&prepared.config)?;
        let clean: Vec<LocalData> = (0..config.malicious)
            .map(|c| prepared.client_data(c))
            .collect();
        let poisoned = clean
            .iter()
            .enumerate()
            .map(|(c, d)| poisoned(config, d, prepared.config.seed, c))
            .collect();
        Ok(Self {
            triggered: triggered(config, &LocalData::all(&prepared.test)),
            config: config.clone(),
            clean,
            poisoned,
            optimizers: vec![OptimizerState::default(); config.malicious],
            rule,
            round: None,
        })
    }

    /// Whether round `round` is an attack round.
    pub fn attacking(&self, round: usize) -> bool {
        round >= self.config.start_round
    }

    /// The stamped test images attack success is measured on.
    pub fn triggered(&self) -> &LocalData {
        &self.triggered
    }

    /// The unscaled poisoned update of every sampled malicious client this round, trained
    /// once and kept for the round (all from the model the first of them is asked with: with
    /// staleness, `max_delay`, the others' own stale models are not used).
    fn train_round(&mut self, ctx: &RoundContext<'_>) -> Vec<Option<Vec<f32>>> {
        (0..self.config.malicious)
            .map(|c| {
                ctx.sampled.contains(&c).then(|| {
                    let (local, _) =
                        ctx.train_from_global_with(c, &self.poisoned[c], &mut self.optimizers[c]);
                    ctx.delta(&local)
                })
            })
            .collect()
    }
}

impl MaliciousClients for Backdoor {
    fn clients(&self) -> Vec<usize> {
        (0..self.config.malicious).collect()
    }

    fn observes_benign_updates(&self) -> bool {
        self.config.adaptive
    }

    fn update(&mut self, client: usize, ctx: &RoundContext<'_>) -> Result<Update> {
        let n = self.clean[client].len();
        if !self.attacking(ctx.round) {
            let (local, stats) = ctx.train_from_global_with(
                client,
                &self.clean[client],
                &mut self.optimizers[client],
            );
            return Ok(ctx.update_from(client, &local, stats, n));
        }
        if !self.config.adaptive {
            let (local, stats) = ctx.train_from_global_with(
                client,
                &self.poisoned[client],
                &mut self.optimizers[client],
            );
            let mut u = ctx.update_from(client, &local, stats, n);
            let s = self.config.scale as f32;
            u.delta.iter_mut().for_each(|v| *v *= s);
            self.round = Some(ThisRound(ctx.round, Vec::new(), self.config.scale));
            return Ok(u);
        }
        if self.round.as_ref().is_none_or(|r| r.0 != ctx.round) {
            let deltas = self.train_round(ctx);
            let mal: Vec<&[f32]> = deltas.iter().flatten().map(Vec::as_slice).collect();
            let s = crate::scale::pick_scale(self.rule.as_mut(), &mal, &self.config.scales(), ctx)?;
            self.round = Some(ThisRound(ctx.round, deltas, s));
        }
        let ThisRound(_, deltas, s) = self.round.as_ref().expect("set above");
        let delta = deltas[client]
            .as_ref()
            .ok_or_else(|| {
                CoreError::Config(format!(
                    "malicious client {client} asked in round {} but not sampled",
                    ctx.round
                ))
            })?
            .iter()
            .map(|v| v * *s as f32)
            .collect();
        Ok(Update {
            client,
            delta,
            num_samples: n,
            train_loss: 0.0,
        })
    }
}

impl Attack for Backdoor {
    type Round = BackdoorRound;
    type Summary = BackdoorSummary;

    fn state(&self) -> Option<Vec<u8>> {
        let rule = self.rule.state()?;
        fl_core::checkpoint::encode(&(&self.optimizers, rule)).ok()
    }

    fn set_state(&mut self, state: &[u8]) -> Result<()> {
        let (optimizers, rule): (Vec<OptimizerState>, Vec<u8>) =
            fl_core::checkpoint::decode(state)?;
        self.optimizers = optimizers;
        self.rule.set_state(&rule)
    }

    fn observe(&mut self, f: &Federation, base: RoundMetrics) -> Result<BackdoorRound> {
        let m = self.config.malicious;
        let attacking = self.attacking(base.round);
        let scale = self
            .round
            .as_ref()
            .filter(|r| r.0 == base.round && attacking)
            .map(|r| r.2);
        let attack_success = base
            .test
            .is_some()
            .then(|| attack_success(f.spec(), f.global(), &self.triggered, self.config.target));
        Ok(BackdoorRound {
            attacking,
            malicious_sampled: base.clients.iter().filter(|&&c| c < m).count(),
            malicious_kept: base.kept.iter().filter(|&&c| c < m).count(),
            scale,
            attack_success: attack_success.map(fl_core::eval::round6),
            base,
        })
    }

    fn base(round: &BackdoorRound) -> &RoundMetrics {
        &round.base
    }

    fn summary(&self, _f: &Federation, rounds: &[BackdoorRound]) -> Result<BackdoorSummary> {
        let attack: Vec<&BackdoorRound> = rounds.iter().filter(|r| r.attacking).collect();
        let asr: Vec<f64> = attack.iter().filter_map(|r| r.attack_success).collect();
        let scales: Vec<f64> = attack.iter().filter_map(|r| r.scale).collect();
        let sent: usize = attack.iter().map(|r| r.malicious_sampled).sum();
        let kept: usize = attack.iter().map(|r| r.malicious_kept).sum();
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        Ok(BackdoorSummary {
            malicious: self.config.malicious,
            target: self.config.target,
            scale: self.config.scale,
            adaptive: self.config.adaptive,
            start_round: self.config.start_round,
            final_accuracy: rounds
                .iter()
                .rev()
                .find_map(|r| r.base.test.as_ref().map(|t| t.accuracy))
                .map_or(0.0, fl_core::eval::round6),
            final_attack_success: rounds
                .iter()
                .rev()
                .find_map(|r| r.attack_success)
                .unwrap_or(0.0),
            mean_attack_success: mean(&asr).map_or(0.0, fl_core::eval::round6),
            max_attack_success: rounds
                .iter()
                .filter_map(|r| r.attack_success)
                .fold(0.0, f64::max),
            mean_scale: mean(&scales).map(fl_core::eval::round6),
            malicious_kept_share: (sent > 0)
                .then(|| fl_core::eval::round6(kept as f64 / sent as f64)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BackdoorConfig {
        BackdoorConfig {
            trigger_size: 2,
            trigger_margin: 1,
            ..Default::default()
        }
    }

    #[test]
    fn the_trigger_lands_in_the_bottom_right_of_every_channel() {
        let shape = ImageShape {
            channels: 2,
            height: 5,
            width: 4,
        };
        let mut img = vec![-1.0f32; shape.pixels()];
        stamp(&cfg(), shape, &mut img);
        // Rows 2..4, columns 1..3 of each 5x4 plane.
        let lit: Vec<usize> = (0..img.len()).filter(|&i| img[i] == 1.0).collect();
        assert_eq!(lit, [9, 10, 13, 14, 29, 30, 33, 34]);
    }

    #[test]
    fn poisoning_stamps_and_relabels_the_asked_share_and_triggered_drops_the_target() {
        let shape = ImageShape::grey(4, 4);
        let data = LocalData::new(vec![-1.0; 10 * 16], (0..10).map(|i| i % 3).collect(), shape);
        let c = BackdoorConfig {
            target: 2,
            poison_fraction: 0.3,
            ..cfg()
        };
        let p = poisoned(&c, &data, 7, 0);
        let changed: Vec<usize> = (0..10).filter(|&i| p.image(i) != data.image(i)).collect();
        assert_eq!(changed.len(), 3);
        assert!(changed.iter().all(|&i| p.labels[i] == 2));
        assert!(
            (0..10)
                .filter(|i| !changed.contains(i))
                .all(|i| p.labels[i] == data.labels[i])
        );
        assert_eq!(p, poisoned(&c, &data, 7, 0), "seeded");
        assert_ne!(p, poisoned(&c, &data, 7, 1), "per client");
        let t = triggered(&c, &data);
        assert_eq!(t.len(), 7, "the three images of class 2 are left out");
        assert!(t.labels.iter().all(|&l| l != 2));
        assert!((0..t.len()).all(|i| t.image(i)[10] == 1.0 && t.image(i)[0] == -1.0));
    }

    #[test]
    fn scales_double_up_to_the_largest() {
        let s = |scale| BackdoorConfig { scale, ..cfg() }.scales();
        assert_eq!(s(1.0), [1.0]);
        assert_eq!(s(5.0), [1.0, 2.0, 4.0, 5.0]);
        assert_eq!(s(8.0), [1.0, 2.0, 4.0, 8.0]);
    }

    #[test]
    fn bad_values_are_refused_with_the_key() {
        let fed = FedConfig::default();
        let err = |c: BackdoorConfig| c.validate(&fed).unwrap_err().to_string();
        assert!(
            err(BackdoorConfig {
                malicious: 0,
                ..cfg()
            })
            .contains("attack.malicious")
        );
        assert!(
            err(BackdoorConfig {
                target: 10,
                ..cfg()
            })
            .contains("attack.target")
        );
        assert!(
            err(BackdoorConfig {
                trigger_size: 28,
                ..cfg()
            })
            .contains("must fit in 1x28x28")
        );
        assert!(
            err(BackdoorConfig {
                scale: 0.5,
                ..cfg()
            })
            .contains("attack.scale")
        );
        assert!(
            err(BackdoorConfig {
                poison_fraction: 0.0,
                ..cfg()
            })
            .contains("poison_fraction")
        );
    }
}
