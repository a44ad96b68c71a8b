//! The participant interface: the protocol calls every honest client through it (an attack
//! answers for the clients it plays through [`crate::attack::MaliciousClients`], with the
//! same [`RoundContext`]).

use crate::data::LocalData;
use crate::error::Result;
use crate::train::{ModelSpec, OptimizerState, TrainConfig, TrainStats, train_local_with};
use crate::update::Update;
use fl_data::rng::{Stream, stream};

/// What the server hands a participant in a round.
#[derive(Clone, Copy)]
pub struct RoundContext<'a> {
    /// Round number, from 1.
    pub round: usize,
    /// The run's seed (participants derive their own streams from it).
    pub seed: u64,
    /// The global parameters this participant starts from: the current model, or with
    /// staleness (`max_delay`) that of a recent round; its update is taken against these.
    pub global: &'a [f32],
    /// The model architecture and device.
    pub spec: &'a ModelSpec,
    /// The run's local-training parameters.
    pub train: &'a TrainConfig,
    /// The clients sampled this round, in increasing order (an attack counts its own here).
    pub sampled: &'a [usize],
    /// The benign participants' updates of this round: filled only for participants whose
    /// [`Participant::observes_benign_updates`] is true (a full-knowledge threat model),
    /// empty otherwise.
    pub benign_updates: &'a [Update],
    /// The server's own data (`server_samples`), for an attack whose threat model grants
    /// knowledge of it (a full-knowledge attacker simulating FLTrust); honest clients never
    /// read it.
    pub server: Option<&'a LocalData>,
}

impl<'a> RoundContext<'a> {
    /// The server's data as a rule sees it ([`crate::ServerRound::server`]), for attacks that
    /// simulate the rule in force.
    pub fn server_data(&self) -> Option<crate::update::ServerData<'a>> {
        self.server.map(|data| crate::update::ServerData {
            data,
            spec: self.spec,
            train: self.train,
        })
    }

    /// The random stream for `purpose` of `client` in this round.
    pub fn rng(&self, purpose: &str, client: usize) -> Stream {
        stream(self.seed, purpose, &[client as u64, self.round as u64])
    }

    /// Trains the global model on `data` as a benign client would, with a fresh optimizer;
    /// returns the parameters.
    pub fn train_from_global(&self, client: usize, data: &LocalData) -> (Vec<f32>, TrainStats) {
        self.train_from_global_with(client, data, &mut OptimizerState::default())
    }

    /// [`RoundContext::train_from_global`] continuing the client's optimizer `state` (kept
    /// across rounds when `train.keep_optimizer_state`).
    pub fn train_from_global_with(
        &self,
        client: usize,
        data: &LocalData,
        state: &mut OptimizerState,
    ) -> (Vec<f32>, TrainStats) {
        let mut rng = self.rng("local-shuffle", client);
        train_local_with(self.spec, self.global, data, self.train, &mut rng, state)
    }

    /// Local minus global parameters.
    pub fn delta(&self, local: &[f32]) -> Vec<f32> {
        local.iter().zip(self.global).map(|(l, g)| l - g).collect()
    }

    /// The update (local minus global) for locally trained parameters.
    pub fn update_from(
        &self,
        client: usize,
        local: &[f32],
        stats: TrainStats,
        num_samples: usize,
    ) -> Update {
        Update {
            client,
            delta: self.delta(local),
            num_samples,
            train_loss: stats.loss,
        }
    }
}

/// A federated client as the protocol sees it.
pub trait Participant: Send {
    /// Its client index.
    fn client(&self) -> usize;
    /// The number of samples it reports (FedAvg's weight).
    fn num_samples(&self) -> usize;
    /// True for attackers (only for metrics: the server never looks at it).
    fn is_adversarial(&self) -> bool {
        false
    }
    /// True when its threat model lets it see the round's benign updates before it answers.
    fn observes_benign_updates(&self) -> bool {
        false
    }
    /// Its update for this round.
    fn update(&mut self, ctx: &RoundContext<'_>) -> Result<Update>;

    /// What the participant keeps across rounds, for a checkpoint (`Some(empty)` when
    /// nothing; `None`, the default, when it cannot be saved: such runs are not
    /// checkpointed).
    fn state(&self) -> Option<Vec<u8>> {
        None
    }

    /// Restores what [`Participant::state`] saved.
    fn set_state(&mut self, state: &[u8]) -> Result<()> {
        crate::checkpoint::stateless("this participant", state)
    }
}

/// An honest client: trains the global model on its own data and reports the change.
#[derive(Debug, Clone)]
pub struct BenignClient {
    client: usize,
    data: LocalData,
    optim: OptimizerState,
}

impl BenignClient {
    /// A client holding `data`.
    pub fn new(client: usize, data: LocalData) -> Self {
        Self {
            client,
            data,
            optim: OptimizerState::default(),
        }
    }

    /// Its data.
    pub fn data(&self) -> &LocalData {
        &self.data
    }

    /// Its optimizer as kept between rounds (empty unless `train.keep_optimizer_state`).
    pub fn optimizer_state(&self) -> &OptimizerState {
        &self.optim
    }

    /// Its optimizer, for an attack that steps it itself (the FedPoisonMIA authors' attacker
    /// continues its own optimizer through its crafting).
    pub fn optimizer_state_mut(&mut self) -> &mut OptimizerState {
        &mut self.optim
    }
}

impl Participant for BenignClient {
    fn client(&self) -> usize {
        self.client
    }

    fn num_samples(&self) -> usize {
        self.data.len()
    }

    fn state(&self) -> Option<Vec<u8>> {
        crate::checkpoint::encode(&self.optim).ok()
    }

    fn set_state(&mut self, state: &[u8]) -> Result<()> {
        self.optim = crate::checkpoint::decode(state)?;
        Ok(())
    }

    fn update(&mut self, ctx: &RoundContext<'_>) -> Result<Update> {
        if self.data.is_empty() {
            return Err(crate::CoreError::Participant {
                client: self.client,
                reason: "it holds no data (an empty client of [pool]: only an attack can play it)"
                    .into(),
            });
        }
        let (local, stats) = ctx.train_from_global_with(self.client, &self.data, &mut self.optim);
        Ok(ctx.update_from(self.client, &local, stats, self.data.len()))
    }
}
