//! [`ModelPoisoning`]: the malicious clients of a model-poisoning run as one
//! [`fl_core::Attack`].

use super::config::{ModelPoisonConfig, PoisonMethod};
use super::{Craft, CraftContext};
use fl_core::data::LocalData;
use fl_core::error::Result;
use fl_core::experiment::Prepared;
use fl_core::geometry::norm;
use fl_core::train::OptimizerState;
use fl_core::{Attack, Federation, MaliciousClients, RoundContext, RoundMetrics, Update};
use serde::{Deserialize, Serialize};

/// A round's record: the federated round and what the attack did in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPoisonRound {
    /// The federated round.
    #[serde(flatten)]
    pub base: RoundMetrics,
    /// Whether the malicious clients sent the crafted vector this round.
    pub attacking: bool,
    /// Malicious clients sampled this round.
    pub malicious_sampled: usize,
    /// Of those, how many the server kept.
    pub malicious_kept: usize,
    /// Norm of the crafted vector (attack rounds; the last client's where each crafts its
    /// own).
    pub crafted_norm: Option<f64>,
    /// Norm of the benign updates' mean it was crafted from (attack rounds).
    pub benign_mean_norm: Option<f64>,
    /// The strength the attack searched (Min-Max's and Min-Sum's gamma).
    pub strength: Option<f64>,
}

/// The run's headline figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPoisonSummary {
    /// The method.
    pub method: PoisonMethod,
    /// Malicious clients.
    pub malicious: usize,
    /// First attack round.
    pub start_round: usize,
    /// Test accuracy after the last round.
    pub final_accuracy: f64,
    /// Lowest test accuracy over the attack rounds.
    pub min_accuracy: f64,
    /// Mean test accuracy over the attack rounds.
    pub mean_accuracy: f64,
    /// Share of the malicious updates sent in attack rounds that the server kept (`None`
    /// when none was sent).
    pub malicious_kept_share: Option<f64>,
}

/// The malicious clients `0..m`: honest on their own data before the attack starts (and
/// throughout under `method = "none"`), then all sending the vector the method crafts from
/// the round's benign updates, with the mean benign sample count as their weight.
pub struct ModelPoisoning {
    config: ModelPoisonConfig,
    craft: Option<Box<dyn Craft>>,
    data: Vec<LocalData>,
    optimizers: Vec<OptimizerState>,
    /// This round's crafted vector, shared by the malicious clients: (round, vector).
    crafted: Option<(usize, Vec<f32>)>,
    /// (round, crafted norm, benign mean norm, strength) of the last attack round.
    last: Option<(usize, f64, f64, Option<f64>)>,
}

impl ModelPoisoning {
    /// The attack of `config` on the clients of `prepared` (checked against its run config);
    /// `rule` is the attacker's copy of the server's rule, which the adaptive methods
    /// simulate (the others ignore it).
    pub fn new(
        prepared: &Prepared,
        config: &ModelPoisonConfig,
        rule: Box<dyn fl_core::Aggregator>,
    ) -> Result<Self> {
        config.validate(&prepared.config)?;
        let data = (0..config.malicious)
            .map(|c| prepared.client_data(c))
            .collect();
        Ok(Self {
            craft: config.craft(rule)?,
            config: config.clone(),
            data,
            optimizers: vec![OptimizerState::default(); config.malicious],
            crafted: None,
            last: None,
        })
    }

    /// Whether round `round` is an attack round.
    pub fn attacking(&self, round: usize) -> bool {
        self.craft.is_some() && round >= self.config.start_round
    }

    fn crafted(&mut self, client: usize, ctx: &RoundContext<'_>) -> Result<Vec<f32>> {
        let shared = self.craft.as_ref().is_some_and(|c| c.shared());
        if shared
            && let Some((r, v)) = &self.crafted
            && *r == ctx.round
        {
            return Ok(v.clone());
        }
        let benign: Vec<&[f32]> = ctx
            .benign_updates
            .iter()
            .map(|u| u.delta.as_slice())
            .collect();
        let craft = self.craft.as_mut().expect("an attack round has a method");
        let v = craft.craft(
            &benign,
            CraftContext {
                round: ctx.round,
                seed: ctx.seed,
                global: ctx.global,
                malicious: ctx
                    .sampled
                    .iter()
                    .filter(|&&c| c < self.config.malicious)
                    .count(),
                client,
                // The full-knowledge attacker knows the server's data where it has some.
                server: ctx.server_data(),
            },
        )?;
        let mean = super::mean(&benign);
        self.last = Some((ctx.round, norm(&v), norm(&mean), craft.strength()));
        self.crafted = Some((ctx.round, v.clone()));
        Ok(v)
    }
}

impl MaliciousClients for ModelPoisoning {
    fn clients(&self) -> Vec<usize> {
        (0..self.config.malicious).collect()
    }

    fn observes_benign_updates(&self) -> bool {
        self.craft.is_some()
    }

    fn update(&mut self, client: usize, ctx: &RoundContext<'_>) -> Result<Update> {
        if !self.attacking(ctx.round) {
            let (local, stats) = ctx.train_from_global_with(
                client,
                &self.data[client],
                &mut self.optimizers[client],
            );
            return Ok(ctx.update_from(client, &local, stats, self.data[client].len()));
        }
        let delta = self.crafted(client, ctx)?;
        let b = ctx.benign_updates;
        let num_samples = (b.iter().map(|u| u.num_samples).sum::<usize>() as f64
            / b.len().max(1) as f64)
            .round() as usize;
        Ok(Update {
            client,
            delta,
            num_samples: num_samples.max(1),
            train_loss: 0.0,
        })
    }
}

impl Attack for ModelPoisoning {
    type Round = ModelPoisonRound;
    type Summary = ModelPoisonSummary;

    fn state(&self) -> Option<Vec<u8>> {
        fl_core::checkpoint::encode(&self.optimizers).ok()
    }

    fn set_state(&mut self, state: &[u8]) -> Result<()> {
        self.optimizers = fl_core::checkpoint::decode(state)?;
        Ok(())
    }

    fn observe(&mut self, _f: &Federation, base: RoundMetrics) -> Result<ModelPoisonRound> {
        let m = self.config.malicious;
        let attacking = self.attacking(base.round);
        let this = self.last.filter(|l| l.0 == base.round && attacking);
        Ok(ModelPoisonRound {
            attacking,
            malicious_sampled: base.clients.iter().filter(|&&c| c < m).count(),
            malicious_kept: base.kept.iter().filter(|&&c| c < m).count(),
            crafted_norm: this.map(|l| l.1),
            benign_mean_norm: this.map(|l| l.2),
            strength: this.and_then(|l| l.3),
            base,
        })
    }

    fn base(round: &ModelPoisonRound) -> &RoundMetrics {
        &round.base
    }

    fn summary(&self, _f: &Federation, rounds: &[ModelPoisonRound]) -> Result<ModelPoisonSummary> {
        let acc = |r: &ModelPoisonRound| r.base.test.as_ref().map(|t| t.accuracy);
        let window: Vec<&ModelPoisonRound> = rounds
            .iter()
            .filter(|r| r.base.round >= self.config.start_round)
            .collect();
        let accs: Vec<f64> = window.iter().filter_map(|r| acc(r)).collect();
        let sent: usize = window
            .iter()
            .filter(|r| r.attacking)
            .map(|r| r.malicious_sampled)
            .sum();
        let kept: usize = window
            .iter()
            .filter(|r| r.attacking)
            .map(|r| r.malicious_kept)
            .sum();
        Ok(ModelPoisonSummary {
            method: self.config.method,
            malicious: self.config.malicious,
            start_round: self.config.start_round,
            final_accuracy: rounds.iter().rev().find_map(acc).unwrap_or(0.0),
            min_accuracy: accs.iter().copied().fold(f64::INFINITY, f64::min).min(1.0),
            mean_accuracy: if accs.is_empty() {
                0.0
            } else {
                accs.iter().sum::<f64>() / accs.len() as f64
            },
            malicious_kept_share: (sent > 0).then(|| kept as f64 / sent as f64),
        })
    }
}
