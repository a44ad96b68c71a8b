//! The round protocol: sample clients, collect their updates, aggregate, evaluate.
//!
//! One round:
//! 1. sample round(C * n) clients with the round's own random stream;
//! 2. every sampled participant that does not observe others trains from the global
//!    parameters (with staleness, those of a round up to `max_delay` back, drawn per client);
//!    on CPU devices they run at once on `threads` worker threads;
//! 3. participants whose threat model grants it (full knowledge) then answer, given the
//!    benign updates of step 2;
//! 4. the aggregator turns the updates into one step, which is added to the global
//!    parameters (a non-finite result stops the run with an error);
//! 5. the global model is evaluated on the test set.

use crate::attack::{MaliciousClients, NoAttack};
use crate::checkpoint::FederationState;
use crate::config::FedConfig;
use crate::data::LocalData;
use crate::error::{CoreError, Result};
use crate::eval::{Evaluation, evaluate};
use crate::participant::{Participant, RoundContext};
use crate::train::{ModelSpec, Trainer};
use crate::update::{Aggregator, ServerRound, Update};
use fl_data::rng::stream;
use rand::RngExt;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

/// Wall time of one round's phases, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RoundTime {
    /// Local training (all participants).
    pub train_s: f64,
    /// Aggregation.
    pub aggregate_s: f64,
    /// Evaluation of the global model.
    pub eval_s: f64,
    /// The whole round.
    pub total_s: f64,
}

/// What one round produced (one line of `metrics.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundMetrics {
    /// Round number, from 1.
    pub round: usize,
    /// Clients sampled this round.
    pub clients: Vec<usize>,
    /// Clients whose update the aggregator kept.
    pub kept: Vec<usize>,
    /// With staleness: how many rounds old each sampled client's starting model was, in
    /// `clients` order (absent for synchronous rounds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delays: Vec<usize>,
    /// The server rule's own figures for the round (absent when it reports none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub server: BTreeMap<String, f64>,
    /// Mean local training loss of the sampled clients.
    pub train_loss: f64,
    /// Test-set scores of the global model after the round (absent on skipped rounds).
    pub test: Option<Evaluation>,
    /// Time split.
    pub time: RoundTime,
}

/// A federated run in progress.
pub struct Federation {
    config: FedConfig,
    spec: ModelSpec,
    participants: Vec<Box<dyn Participant>>,
    aggregator: Box<dyn Aggregator>,
    global: Vec<f32>,
    /// The global models at the start of the last `max_delay` rounds, newest first.
    recent: VecDeque<Vec<f32>>,
    test: LocalData,
    server: Option<LocalData>,
    round: usize,
}

impl Federation {
    /// A run at round 0 with seeded initial parameters.
    pub fn new(
        config: FedConfig,
        spec: ModelSpec,
        participants: Vec<Box<dyn Participant>>,
        aggregator: Box<dyn Aggregator>,
        test: LocalData,
    ) -> Result<Self> {
        config.validate()?;
        if participants.len() != config.clients {
            return Err(CoreError::Config(format!(
                "{} participants for {} clients",
                participants.len(),
                config.clients
            )));
        }
        for (k, p) in participants.iter().enumerate() {
            if p.client() != k {
                return Err(CoreError::Config(format!(
                    "participant at position {k} says it is client {}",
                    p.client()
                )));
            }
        }
        if test.shape != spec.shape {
            return Err(CoreError::Config(format!(
                "the test set holds {} images, the model takes {}",
                test.shape, spec.shape
            )));
        }
        if config.train.keep_optimizer_state && matches!(spec.trainer(), Trainer::Burn) {
            return Err(CoreError::Config(format!(
                "train.keep_optimizer_state needs the CPU kernels (the flex device, an \
                 architecture that has them): `{}` on {} trains through burn, whose optimizers \
                 are rebuilt for every round's model",
                spec.kind,
                config.device.name()
            )));
        }
        let global = spec.initial_params(config.seed);
        Ok(Self {
            config,
            spec,
            participants,
            aggregator,
            global,
            recent: VecDeque::new(),
            test,
            server: None,
            round: 0,
        })
    }

    /// The run with `data` held by the server (the rule sees it in
    /// [`ServerRound::server`](crate::ServerRound)).
    pub fn with_server_data(mut self, data: LocalData) -> Self {
        self.server = Some(data);
        self
    }

    /// The global parameters now.
    pub fn global(&self) -> &[f32] {
        &self.global
    }

    /// Replaces the global parameters (e.g. to resume from a checkpoint); the models stale
    /// clients start from are forgotten, so with `max_delay` > 0 the rounds that follow differ
    /// from an uninterrupted run's.
    pub fn set_global(&mut self, params: Vec<f32>, round: usize) {
        assert_eq!(params.len(), self.global.len());
        self.global = params;
        self.recent.clear();
        self.round = round;
    }

    /// What the run carries to the next round, or `None` when a participant or the server
    /// rule cannot save its state.
    pub fn state(&self) -> Option<FederationState> {
        Some(FederationState {
            round: self.round,
            global: self.global.clone(),
            recent: self.recent.iter().cloned().collect(),
            participants: self
                .participants
                .iter()
                .map(|p| p.state())
                .collect::<Option<_>>()?,
            aggregator: self.aggregator.state()?,
        })
    }

    /// Continues from `state` (of a federation built from the same config): the rounds that
    /// follow are those of the run that saved it.
    pub fn restore(&mut self, state: &FederationState) -> Result<()> {
        if state.global.len() != self.global.len()
            || state.participants.len() != self.participants.len()
            || state.recent.len() > self.config.max_delay
        {
            return Err(CoreError::Config(
                "the checkpoint is of a different federation (model size, clients or \
                 max_delay)"
                    .into(),
            ));
        }
        for (p, s) in self.participants.iter_mut().zip(&state.participants) {
            p.set_state(s)?;
        }
        self.aggregator.set_state(&state.aggregator)?;
        self.global = state.global.clone();
        self.recent = state.recent.iter().cloned().collect();
        self.round = state.round;
        Ok(())
    }

    /// How many rounds old the model `client` starts round `round` from: uniform in
    /// 0..=max_delay from `stream(seed, "staleness", [client, round])`, at most the rounds
    /// run before (0 without staleness).
    pub fn delay(&self, client: usize, round: usize) -> usize {
        let max = self.config.max_delay;
        if max == 0 {
            return 0;
        }
        let mut rng = stream(
            self.config.seed,
            "staleness",
            &[client as u64, round as u64],
        );
        rng.random_range(0..=max).min(self.recent.len())
    }

    /// The model architecture and device.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The configuration.
    pub fn config(&self) -> &FedConfig {
        &self.config
    }

    /// The last round completed.
    pub fn round(&self) -> usize {
        self.round
    }

    /// The participants.
    pub fn participants(&self) -> &[Box<dyn Participant>] {
        &self.participants
    }

    /// The clients sampled in `round`, in increasing order.
    pub fn sample_clients(&self, round: usize) -> Vec<usize> {
        let mut ids: Vec<usize> = (0..self.config.clients).collect();
        if self.config.clients_per_round() < ids.len() {
            ids.shuffle(&mut stream(
                self.config.seed,
                "client-sampling",
                &[round as u64],
            ));
            ids.truncate(self.config.clients_per_round());
            ids.sort_unstable();
        }
        ids
    }

    /// Evaluates the current global model on the test set.
    pub fn evaluate(&self) -> Evaluation {
        evaluate(&self.spec, &self.global, &self.test, self.spec.classes())
    }

    /// Runs the next round with every client honest (or, for participants that attack, as
    /// they are).
    pub fn run_round(&mut self) -> Result<RoundMetrics> {
        self.run_round_with(&mut NoAttack)
    }

    /// Runs the next round with `attack` answering for the clients it controls (the
    /// participants in their seats are not asked).
    pub fn run_round_with(&mut self, attack: &mut dyn MaliciousClients) -> Result<RoundMetrics> {
        let controlled = attack.clients();
        if let Some(&k) = controlled.iter().find(|&&k| k >= self.participants.len()) {
            return Err(CoreError::Config(format!(
                "the attack controls client {k} of a federation of {}",
                self.participants.len()
            )));
        }
        let round = self.round + 1;
        let started = Instant::now();
        let sampled = self.sample_clients(round);
        let delays: Vec<usize> = sampled.iter().map(|&k| self.delay(k, round)).collect();
        let updates = self.collect_updates(round, &sampled, &delays, attack, &controlled)?;
        let train_s = started.elapsed().as_secs_f64();

        let t = Instant::now();
        let server_round = ServerRound {
            round,
            seed: self.config.seed,
            global: &self.global,
            server: self.server.as_ref().map(|data| crate::update::ServerData {
                data,
                spec: &self.spec,
                train: &self.config.train,
            }),
        };
        let agg = self.aggregator.aggregate(&server_round, &updates)?;
        if let Some(i) = agg.delta.iter().position(|x| !x.is_finite()) {
            return Err(CoreError::Divergent {
                round,
                what: format!("aggregated update value {i}"),
            });
        }
        if self.config.max_delay > 0 {
            self.recent.push_front(self.global.clone());
            self.recent.truncate(self.config.max_delay);
        }
        for (g, d) in self.global.iter_mut().zip(&agg.delta) {
            *g += d;
        }
        let aggregate_s = t.elapsed().as_secs_f64();
        self.round = round;

        let t = Instant::now();
        let last = round == self.config.rounds;
        let test = (round.is_multiple_of(self.config.eval_every) || last).then(|| self.evaluate());
        if let Some(e) = &test
            && !e.loss.is_finite()
        {
            return Err(CoreError::Divergent {
                round,
                what: "test loss".into(),
            });
        }
        let eval_s = t.elapsed().as_secs_f64();
        let train_loss = updates.iter().map(|u| u.train_loss).sum::<f64>() / updates.len() as f64;
        Ok(RoundMetrics {
            round,
            clients: sampled,
            kept: agg.kept,
            delays: if self.config.max_delay > 0 {
                delays
            } else {
                Vec::new()
            },
            server: agg.metrics,
            train_loss,
            test,
            time: RoundTime {
                train_s,
                aggregate_s,
                eval_s,
                total_s: started.elapsed().as_secs_f64(),
            },
        })
    }

    /// True once all rounds ran or `last` (the latest round) reached the target accuracy.
    pub fn is_finished(&self, last: Option<&RoundMetrics>) -> bool {
        let reached = match (
            self.config.target_accuracy,
            last.and_then(|m| m.test.as_ref()),
        ) {
            (Some(t), Some(e)) => e.accuracy >= t,
            _ => false,
        };
        reached || self.round >= self.config.rounds
    }

    /// Runs rounds until `rounds` or the target accuracy; `on_round` sees each round's metrics.
    pub fn run(&mut self, on_round: &mut dyn FnMut(&RoundMetrics)) -> Result<Vec<RoundMetrics>> {
        let mut all: Vec<RoundMetrics> = Vec::new();
        while !self.is_finished(all.last()) {
            let m = self.run_round()?;
            on_round(&m);
            all.push(m);
        }
        Ok(all)
    }

    /// The updates of the `sampled` clients, each trained from the model `delays` (in
    /// `sampled` order) rounds old; `attack` answers for the `controlled` clients.
    fn collect_updates(
        &mut self,
        round: usize,
        sampled: &[usize],
        delays: &[usize],
        attack: &mut dyn MaliciousClients,
        controlled: &[usize],
    ) -> Result<Vec<Update>> {
        let is_controlled = |k: usize| controlled.contains(&k);
        let attack_observes = attack.observes_benign_updates();
        let observes = |k: usize| {
            if is_controlled(k) {
                attack_observes
            } else {
                self.participants[k].observes_benign_updates()
            }
        };
        let (observers, others): (Vec<usize>, Vec<usize>) =
            sampled.iter().partition(|&&k| observes(k));
        let mut sorted = sampled.to_vec();
        sorted.sort_unstable();
        let mut starts: Vec<&[f32]> = vec![&self.global; self.participants.len()];
        for (&k, &d) in sampled.iter().zip(delays) {
            if d > 0 {
                starts[k] = &self.recent[d - 1];
            }
        }
        let mut ctx = RoundContext {
            round,
            seed: self.config.seed,
            global: &self.global,
            spec: &self.spec,
            train: &self.config.train,
            sampled: &sorted,
            benign_updates: &[],
            server: self.server.as_ref(),
        };
        let (attack_now, honest_now): (Vec<usize>, Vec<usize>) =
            others.iter().partition(|&&k| is_controlled(k));
        let threads = self.config.worker_threads().min(others.len()).max(1);
        let mut first = run_parallel(
            &mut self.participants,
            &honest_now,
            (&mut *attack, &attack_now),
            &ctx,
            &starts,
            threads,
        )?;
        let benign: Vec<Update> = first
            .iter()
            .filter(|u| !is_controlled(u.client) && !self.participants[u.client].is_adversarial())
            .cloned()
            .collect();
        ctx.benign_updates = &benign;
        for k in observers {
            let own = RoundContext {
                global: starts[k],
                ..ctx
            };
            first.push(if is_controlled(k) {
                attack.update(k, &own)?
            } else {
                self.participants[k].update(&own)?
            });
        }
        first.sort_by_key(|u| u.client);
        for u in &first {
            if !sampled.contains(&u.client) {
                return Err(CoreError::Participant {
                    client: u.client,
                    reason: format!("it sent an update in round {round} it was not sampled in"),
                });
            }
        }
        Ok(first)
    }
}

/// One piece of a round's parallel work: an honest participant, or the attack answering for
/// its clients one after another.
enum Job<'a> {
    Client(usize, &'a mut Box<dyn Participant>),
    Attack(&'a mut dyn MaliciousClients, &'a [usize]),
}

/// Calls `update` of the participants at `ids` and of `attack`'s clients on `threads` worker
/// threads (the attack's clients one after another, as one piece of work), client `k` with
/// `ctx` starting from `starts[k]`; results in client order within each piece, independent
/// of scheduling.
fn run_parallel(
    participants: &mut [Box<dyn Participant>],
    ids: &[usize],
    attack: (&mut dyn MaliciousClients, &[usize]),
    ctx: &RoundContext<'_>,
    starts: &[&[f32]],
    threads: usize,
) -> Result<Vec<Update>> {
    let ctx_of = |k: usize| RoundContext {
        global: starts[k],
        ..*ctx
    };
    let mut jobs: Vec<Job<'_>> = participants
        .iter_mut()
        .enumerate()
        .filter(|(k, _)| ids.contains(k))
        .map(|(k, p)| Job::Client(k, p))
        .collect();
    if !attack.1.is_empty() {
        jobs.push(Job::Attack(attack.0, attack.1));
    }
    let done = crate::pool::map_ordered(jobs, threads, |job| match job {
        Job::Client(k, p) => p.update(&ctx_of(k)).map(|u| vec![u]),
        Job::Attack(a, ks) => ks.iter().map(|&k| a.update(k, &ctx_of(k))).collect(),
    });
    let mut out = Vec::new();
    for r in done {
        out.extend(r?);
    }
    Ok(out)
}
