//! A federated run with the adversary in place of one client.

use crate::adversary::{Adversary, AttackHandle};
use crate::config::AttackConfig;
use crate::metrics::{AttackRoundMetrics, AttackScores, AttackSummary};
use fl_core::error::Result;
use fl_core::experiment::{Prepared, aggregator};
use fl_core::{FedConfig, Federation};

/// An attack experiment: data, the federation with its adversary, and the adversary's handle.
pub struct AttackRun {
    /// The attack's parameters (checked).
    pub attack: AttackConfig,
    /// Data and split (of the federated config with G withheld from the adversary when the
    /// method needs it).
    pub prepared: Prepared,
    /// The run.
    pub federation: Federation,
    /// The adversary's log and generator.
    pub handle: AttackHandle,
}

impl AttackRun {
    /// Builds the run of `fed` attacked as `attack` says.
    pub fn build(fed: &FedConfig, attack: &AttackConfig) -> Result<Self> {
        fed.validate()?;
        attack.validate(fed)?;
        let fed = attack.federated_config(fed);
        let prepared = Prepared::load(&fed)?;
        let mut participants = prepared.benign_participants();
        let adversary = Adversary::new(
            prepared.client_data(attack.adversary),
            attack,
            &fed.train,
            &prepared.spec.device,
            fed.seed,
        );
        let handle = adversary.handle();
        participants[attack.adversary] = Box::new(adversary);
        let federation = prepared.federation(participants, aggregator(&fed.aggregator)?)?;
        Ok(Self {
            attack: attack.clone(),
            prepared,
            federation,
            handle,
        })
    }

    /// Runs the next round and scores it.
    pub fn run_round(&mut self) -> Result<AttackRoundMetrics> {
        let base = self.federation.run_round()?;
        let log = self.handle.log();
        let attack_period = log.started_at.is_some_and(|s| base.round >= s);
        let adversary = log.rounds.get(&base.round).cloned();
        drop(log);
        Ok(AttackRoundMetrics {
            scores: base
                .test
                .as_ref()
                .map(|e| AttackScores::of(e, &self.attack)),
            attack_period,
            adversary,
            base,
        })
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
        let mut rows: Vec<AttackRoundMetrics> = Vec::new();
        while !self.is_finished(rows.last()) {
            let m = self.run_round()?;
            on_round(&m);
            rows.push(m);
        }
        Ok(rows)
    }

    /// The summary of `rows`, with the fidelity when it was scored.
    pub fn summary(&self, rows: &[AttackRoundMetrics], fidelity: Option<f64>) -> AttackSummary {
        AttackSummary::new(
            &self.attack,
            &self.prepared.config.dataset.class_names(),
            rows,
            self.handle.log().started_at,
            fidelity,
        )
    }
}
