//! A federated run with the adversary in place of one client.

use crate::adversary::Adversary;
use crate::config::AttackConfig;
use crate::metrics::{AttackRoundMetrics, AttackScores, AttackSummary};
use fl_core::error::{CoreError, Result};
use fl_core::experiment::{Prepared, aggregator};
use fl_core::{Aggregator, FedConfig, Federation, MaliciousClients};

/// The rounds before an attack starts and the global model after them.
#[derive(Debug, Clone)]
pub struct WarmStart {
    /// Global parameters after the last warm-up round.
    pub global: Vec<f32>,
    /// The warm-up rounds' metrics.
    pub rows: Vec<AttackRoundMetrics>,
}

/// An attack experiment: data, the federation, and the adversary playing its client.
pub struct AttackRun {
    /// The attack's parameters (checked).
    pub attack: AttackConfig,
    /// Data and split (of the federated config with G withheld from the adversary when the
    /// method needs it).
    pub prepared: Prepared,
    /// The run (the adversary's client is a [`fl_core::attack::Seat`] in it).
    pub federation: Federation,
    /// The adversary: its log and generator.
    pub adversary: Adversary,
}

impl AttackRun {
    /// Builds the run of `fed` attacked as `attack` says.
    pub fn build(fed: &FedConfig, attack: &AttackConfig) -> Result<Self> {
        Self::from_prepared(Self::prepare(fed, attack)?, attack)
    }

    /// Checks both configs and loads the data and split of the attacked run (the federated
    /// config with G withheld from the adversary where the method needs it). The result does
    /// not depend on T, so one serves every target of a (dataset, seed, G).
    pub fn prepare(fed: &FedConfig, attack: &AttackConfig) -> Result<Prepared> {
        fed.validate()?;
        attack.validate(fed)?;
        Prepared::load(&attack.federated_config(fed))
    }

    /// [`AttackRun::build`] with `rule` as the server's aggregator (e.g. a robust rule of
    /// fl-defense; it should be the one `fed.aggregator` names).
    pub fn build_with(
        fed: &FedConfig,
        attack: &AttackConfig,
        rule: Box<dyn Aggregator>,
    ) -> Result<Self> {
        Self::from_prepared_with(Self::prepare(fed, attack)?, attack, rule)
    }

    /// Builds the run on data from [`AttackRun::prepare`] of the same federated config, with
    /// the aggregator `fed.aggregator` names among fl-core's (FedAvg).
    pub fn from_prepared(prepared: Prepared, attack: &AttackConfig) -> Result<Self> {
        let rule = aggregator(&prepared.config.aggregator)?;
        Self::from_prepared_with(prepared, attack, rule)
    }

    /// [`AttackRun::from_prepared`] with `rule` as the server's aggregator.
    pub fn from_prepared_with(
        prepared: Prepared,
        attack: &AttackConfig,
        rule: Box<dyn Aggregator>,
    ) -> Result<Self> {
        attack.validate(&prepared.config)?;
        let fed = attack.federated_config(&prepared.config);
        if fed != prepared.config {
            return Err(CoreError::Config(format!(
                "the data was prepared without withholding class {} from client {}",
                attack.generate, attack.adversary
            )));
        }
        let adversary = Adversary::new(
            prepared.client_data(attack.adversary),
            attack,
            &fed.train,
            &prepared.spec,
            fed.seed,
        );
        let federation = prepared.federation(prepared.seated(&adversary.clients()), rule)?;
        Ok(Self {
            attack: attack.clone(),
            prepared,
            federation,
            adversary,
        })
    }

    /// The run with the adversary given its own copy of the server's rule (`adaptive_boost`
    /// picks the boost against it).
    pub fn with_attacker_rule(mut self, rule: Box<dyn Aggregator>) -> Self {
        self.adversary.set_rule_copy(rule);
        self
    }

    /// The number of rounds before the attack starts when they cannot depend on the target
    /// (a fixed start round; a start accuracy makes the start depend on the run), and a warm
    /// start can carry them (not with staleness: the recent models are not carried).
    pub fn warm_up_rounds(&self) -> Option<usize> {
        (self.attack.start_accuracy.is_none() && self.prepared.config.max_delay == 0)
            .then(|| self.attack.start_round.saturating_sub(1))
    }

    /// The state after the warm-up `rows` (the run's rounds so far, all before the attack):
    /// what [`AttackRun::resume`] needs to continue another target's run from here.
    pub fn warm_start(&self, rows: &[AttackRoundMetrics]) -> WarmStart {
        WarmStart {
            global: self.federation.global().to_vec(),
            rows: rows.to_vec(),
        }
    }

    /// Continues from `warm` (the warm-up of a run that differs at most in T): the global
    /// model, the round counter and the adversary's log; returns the warm-up rows scored for
    /// this run's pair. The rounds that follow are those of a run from scratch (tested).
    pub fn resume(&mut self, warm: &WarmStart) -> Result<Vec<AttackRoundMetrics>> {
        if self.federation.round() != 0 {
            return Err(CoreError::Config(
                "a warm start applies only to a run that has not started".into(),
            ));
        }
        let limit = self.warm_up_rounds().unwrap_or(0);
        if warm.rows.len() > limit || warm.rows.iter().any(|r| r.attack_period) {
            return Err(CoreError::Config(format!(
                "a warm start holds {} rounds, but only the {limit} rounds before the attack \
                 are shared between targets",
                warm.rows.len()
            )));
        }
        self.federation
            .set_global(warm.global.clone(), warm.rows.len());
        let log = self.adversary.log_mut();
        let rows = warm
            .rows
            .iter()
            .map(|r| {
                if let Some(a) = &r.adversary {
                    log.rounds.insert(r.base.round, a.clone());
                }
                AttackRoundMetrics {
                    scores: r
                        .base
                        .test
                        .as_ref()
                        .map(|e| AttackScores::of(e, &self.attack)),
                    ..r.clone()
                }
            })
            .collect();
        Ok(rows)
    }

    /// Runs the next round and scores it.
    pub fn run_round(&mut self) -> Result<AttackRoundMetrics> {
        fl_core::attack::step(&mut self.federation, &mut self.adversary)
    }

    /// True once the run is over (all rounds, or the target accuracy).
    pub fn is_finished(&self, last: Option<&AttackRoundMetrics>) -> bool {
        self.federation.is_finished(last.map(|m| &m.base))
    }

    /// Runs every round; `on_round` sees each one.
    pub fn run(
        &mut self,
        on_round: &mut dyn FnMut(&AttackRoundMetrics),
    ) -> Result<Vec<AttackRoundMetrics>> {
        fl_core::attack::run(&mut self.federation, &mut self.adversary, on_round)
    }

    /// The summary of `rows`, with the fidelity when it was scored.
    pub fn summary(&self, rows: &[AttackRoundMetrics], fidelity: Option<f64>) -> AttackSummary {
        AttackSummary::new(
            &self.attack,
            self.prepared.config.dataset.class_names(),
            rows,
            self.adversary.log().started_at,
            fidelity,
        )
    }
}
