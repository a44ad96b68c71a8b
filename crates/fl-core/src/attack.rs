//! The seam every attack plugs into: an [`Attack`] controls some clients of a prepared
//! federation, answers for them when they are sampled, and after each round observes the
//! run (the global model, its evaluation, which clients the server kept) to record that
//! round's figures; at the end it sums the run up.
//!
//! The federation calls an attack's clients through [`MaliciousClients`] (object-safe); the
//! run loop ([`step`], [`run`]) owns the attack itself, so whoever runs it reads the attack's
//! state directly, with no shared handles. [`NoAttack`] is the honest run.
//!
//! An attack is one type implementing both traits; the driver code is the same for all.

use crate::error::{CoreError, Result};
use crate::federation::{Federation, RoundMetrics};
use crate::participant::{Participant, RoundContext};
use crate::update::Update;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The clients an attack plays: which ones, whether they see the round's benign updates
/// first, and the update each sends.
pub trait MaliciousClients: Send {
    /// The clients this attack controls, in increasing order.
    fn clients(&self) -> Vec<usize>;

    /// True when its clients answer after seeing the round's benign updates (a full-knowledge
    /// threat model); they then get them in [`RoundContext::benign_updates`].
    fn observes_benign_updates(&self) -> bool {
        false
    }

    /// The update controlled client `client` sends in the round `ctx` describes (its
    /// `global` is the model that client starts from).
    fn update(&mut self, client: usize, ctx: &RoundContext<'_>) -> Result<Update>;
}

/// An attack: its clients, what it records each round, and its summary.
pub trait Attack: MaliciousClients {
    /// One round's record: the federated round with the attack's figures (one line of
    /// `metrics.jsonl`).
    type Round: Serialize + DeserializeOwned + Clone + Send;
    /// The run's headline figures.
    type Summary: Serialize;

    /// Called before each round's clients train, with the federation after the round before
    /// (e.g. to decide that the attack starts now).
    fn before_round(&mut self, _federation: &Federation) -> Result<()> {
        Ok(())
    }

    /// Records the round just run: `base` is the federation's record of it, `federation` the
    /// run after it.
    fn observe(&mut self, federation: &Federation, base: RoundMetrics) -> Result<Self::Round>;

    /// The federated part of a record.
    fn base(round: &Self::Round) -> &RoundMetrics;

    /// The summary of a run's records (all of its rounds, in order).
    fn summary(&self, federation: &Federation, rounds: &[Self::Round]) -> Result<Self::Summary>;

    /// What the attack carries between rounds, for a checkpoint (`Some(empty)` when
    /// nothing; `None`, the default, when it cannot be saved: such runs are not
    /// checkpointed).
    fn state(&self) -> Option<Vec<u8>> {
        None
    }

    /// Restores what [`Attack::state`] saved (into an attack built from the same config).
    fn set_state(&mut self, state: &[u8]) -> Result<()> {
        crate::checkpoint::stateless("this attack", state)
    }
}

/// The honest run: no client is controlled; a round's record is the federation's.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAttack;

impl MaliciousClients for NoAttack {
    fn clients(&self) -> Vec<usize> {
        Vec::new()
    }

    fn update(&mut self, client: usize, _ctx: &RoundContext<'_>) -> Result<Update> {
        Err(CoreError::Config(format!(
            "client {client} asked of a run without an attack"
        )))
    }
}

impl Attack for NoAttack {
    type Round = RoundMetrics;
    type Summary = HonestSummary;

    fn state(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
    }

    fn observe(&mut self, _federation: &Federation, base: RoundMetrics) -> Result<RoundMetrics> {
        Ok(base)
    }

    fn base(round: &RoundMetrics) -> &RoundMetrics {
        round
    }

    fn summary(&self, _federation: &Federation, rounds: &[RoundMetrics]) -> Result<HonestSummary> {
        let last = rounds
            .last()
            .ok_or_else(|| CoreError::Config("no rounds ran".into()))?;
        Ok(HonestSummary {
            rounds: last.round,
            final_accuracy: rounds
                .iter()
                .rev()
                .find_map(|r| r.test.as_ref())
                .map(|e| e.accuracy),
        })
    }
}

/// The summary of an honest run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HonestSummary {
    /// Rounds run.
    pub rounds: usize,
    /// Test accuracy at the last evaluated round.
    pub final_accuracy: Option<f64>,
}

/// The seat of a client the attack controls: the federation never asks it (the attack
/// answers for the client), and says so if it is asked.
#[derive(Debug, Clone, Copy)]
pub struct Seat {
    client: usize,
    samples: usize,
}

impl Seat {
    /// The seat of `client`, who holds `samples` samples.
    pub fn new(client: usize, samples: usize) -> Self {
        Self { client, samples }
    }
}

impl Participant for Seat {
    fn client(&self) -> usize {
        self.client
    }

    fn state(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
    }

    fn num_samples(&self) -> usize {
        self.samples
    }

    fn is_adversarial(&self) -> bool {
        true
    }

    fn update(&mut self, _ctx: &RoundContext<'_>) -> Result<Update> {
        Err(CoreError::Config(format!(
            "client {} is played by an attack: run the round with it",
            self.client
        )))
    }
}

/// Runs the next round with `attack` in place: before the round, the round, its record.
pub fn step<A: Attack>(federation: &mut Federation, attack: &mut A) -> Result<A::Round> {
    attack.before_round(federation)?;
    let base = federation.run_round_with(attack)?;
    attack.observe(federation, base)
}

/// Runs rounds with `attack` until the federation is finished (all rounds, or the target
/// accuracy); `on_round` sees each record as it is made.
pub fn run<A: Attack>(
    federation: &mut Federation,
    attack: &mut A,
    on_round: &mut dyn FnMut(&A::Round),
) -> Result<Vec<A::Round>> {
    let mut rows: Vec<A::Round> = Vec::new();
    while !federation.is_finished(rows.last().map(A::base)) {
        let r = step(federation, attack)?;
        on_round(&r);
        rows.push(r);
    }
    Ok(rows)
}
