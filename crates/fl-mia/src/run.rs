//! A federated run with malicious clients inferring membership, judged after every round.

use crate::attacker::{Attacker, AttackerState, CraftLog};
use crate::config::{CoverSource, JudgeOn, Knowledge, MiaConfig, MiaMethod, PassiveRule, Pretrain};
use crate::metrics::{MembershipScores, roc};
use crate::targets::{TargetSet, own_sample};
use fl_core::attack::Seat;
use fl_core::checkpoint::{decode, encode};
use fl_core::data::LocalData;
use fl_core::error::{CoreError, Result};
use fl_core::eval::{argmax, cross_entropy, logits_one_batch, round6};
use fl_core::experiment::Prepared;
use fl_core::participant::{BenignClient, Participant, RoundContext};
use fl_core::train::{ModelSpec, TrainConfig};
use fl_core::{Aggregator, Attack, FedConfig, Federation, MaliciousClients, RoundMetrics, Update};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The attacker's decisions on the targets for one global model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    /// True where a target is called a member.
    pub decisions: Vec<bool>,
    /// The membership score of each target: its true-class confidence.
    pub scores: Vec<f64>,
}

/// Per-sample (loss, true-class confidence, correctly classified) under `params`, from one
/// pass of the model over all of `data` (one batch, for a model that normalises by batch
/// statistics: members and non-members are normalised together).
fn outputs(spec: &ModelSpec, params: &[f32], data: &LocalData) -> Vec<(f64, f64, bool)> {
    logits_one_batch(spec, params, data)
        .chunks_exact(spec.outputs)
        .zip(&data.labels)
        .map(|(row, &y)| {
            let loss = cross_entropy(row, y as usize);
            (loss, (-loss).exp(), argmax(row) == y as usize)
        })
        .collect()
}

/// Everything recorded for one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MiaRoundMetrics {
    /// The federated round.
    #[serde(flatten)]
    pub base: RoundMetrics,
    /// True from the first attack round on (the rounds that count as evidence).
    pub attack_period: bool,
    /// The membership decisions on the global model after this round, scored.
    pub membership: MembershipScores,
    /// Malicious clients sampled this round, and those the aggregator kept.
    pub malicious_sampled: usize,
    /// Malicious clients whose update the aggregator kept.
    pub malicious_kept: usize,
    /// How the malicious update was made, in attack rounds of a constrained method.
    pub craft: Option<CraftLog>,
    /// The factor the adaptive attacker put on its crafted update this round (`mia.adaptive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive_scale: Option<f64>,
}

/// The headline numbers of a membership run (`summary.json`'s `mia` part).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MiaSummary {
    /// The method.
    pub method: MiaMethod,
    /// `full` or `partial`.
    pub knowledge: String,
    /// The aggregation rule.
    pub aggregator: String,
    /// Malicious clients.
    pub malicious: usize,
    /// Targets (half members).
    pub targets: usize,
    /// First round of the attack period.
    pub start_round: usize,
    /// Best attack accuracy over the rounds of the attack period, and its round.
    pub best_accuracy: f64,
    /// The round of the best accuracy.
    pub best_round: usize,
    /// Scores at the best round.
    pub at_best: MembershipScores,
    /// Attack accuracy after the last round.
    pub final_accuracy: f64,
    /// Scores after the last round.
    pub at_final: MembershipScores,
    /// Mean attack accuracy over the attack period.
    pub mean_accuracy: f64,
    /// Mean attack accuracy over the last 50 rounds of the attack period (all of them when
    /// fewer): the FedPoisonMIA authors' settled figure (absent in summaries written before
    /// it was recorded).
    #[serde(default)]
    pub last50_mean_accuracy: Option<f64>,
    /// Best attack accuracy over every round, those before the attack included: the authors'
    /// "best" (a round before the attack says nothing of the attack).
    #[serde(default)]
    pub best_accuracy_all_rounds: Option<f64>,
    /// Main-task test accuracy after the last round (non-member targets left out).
    pub main_accuracy: f64,
    /// Share of (malicious client, attack round) updates the aggregator kept.
    pub malicious_kept_share: Option<f64>,
    /// Attack rounds in which the crafted update met its constraint, of those crafted.
    pub feasible_rounds: Option<(usize, usize)>,
    /// The adaptive attacker's factors over its attack rounds: (smallest, mean, largest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive_scales: Option<(f64, f64, f64)>,
}

/// The membership attack as an [`Attack`]: the malicious clients (benign before the attack,
/// the attacker's crafted update in attack rounds), the targets, and the judging of
/// membership after every round.
pub struct MembershipAttack {
    cfg: MiaConfig,
    attacker: Attacker,
    /// Each malicious client's honest self (its data and optimizer state), by client.
    clients: BTreeMap<usize, BenignClient>,
    /// The targets.
    pub targets: TargetSet,
    calibration: LocalData,
    /// What the first malicious client trains on (for `start_accuracy`).
    first_training: LocalData,
    judgements: Vec<(usize, Judgement)>,
    /// The attacker's copy of the server's rule (`mia.adaptive` scales against it).
    rule: Option<Box<dyn Aggregator>>,
    /// The adaptive attacker's factor, by attack round.
    scales: BTreeMap<usize, f64>,
}

impl MembershipAttack {
    /// The factor on the crafted update `delta` in the round of `ctx`, picked once a round
    /// against the rule copy with as many copies of it as malicious clients were sampled.
    fn adaptive_scale(&mut self, delta: &[f32], ctx: &RoundContext<'_>) -> Result<f64> {
        if let Some(&s) = self.scales.get(&ctx.round) {
            return Ok(s);
        }
        let rule = self.rule.as_mut().ok_or_else(|| {
            CoreError::Config(
                "mia.adaptive needs the attacker's copy of the server's rule \
                 (MiaRun::with_attacker_rule)"
                    .into(),
            )
        })?;
        let copies = ctx
            .sampled
            .iter()
            .filter(|k| self.clients.contains_key(k))
            .count()
            .max(1);
        let factors = fl_poison::scale::factors(self.cfg.adaptive_min_scale, 1.0);
        let s = fl_poison::scale::pick_scale(rule.as_mut(), &vec![delta; copies], &factors, ctx)?;
        self.scales.insert(ctx.round, s);
        Ok(s)
    }

    /// The attacker's decisions on `federation`'s current global model, or with `judge_on =
    /// "attacker-model"` on the model it holds (the current global model until its client is
    /// first sampled). The rule reads only the model's outputs and the targets' true labels
    /// (which the attacker holds), never membership.
    pub fn judge(&self, federation: &Federation) -> Judgement {
        let spec = federation.spec();
        let held = match self.cfg.judge_on {
            JudgeOn::Global => None,
            JudgeOn::AttackerModel => self.attacker.held_model(),
        };
        let global = held.unwrap_or(federation.global());
        let on_targets = outputs(spec, global, &self.targets.data);
        let scores: Vec<f64> = on_targets.iter().map(|t| t.1).collect();
        let decisions = match self.cfg.method {
            MiaMethod::Passive => {
                let own = outputs(spec, global, &self.calibration);
                let n = own.len().max(1) as f64;
                match self.cfg.passive_rule {
                    PassiveRule::Loss => {
                        let t = own.iter().map(|p| p.0).sum::<f64>() / n;
                        on_targets.iter().map(|p| p.0 <= t).collect()
                    }
                    PassiveRule::Confidence => {
                        let t = own.iter().map(|p| p.1).sum::<f64>() / n;
                        on_targets.iter().map(|p| p.1 >= t).collect()
                    }
                }
            }
            _ => on_targets.iter().map(|p| p.2).collect(),
        };
        Judgement { decisions, scores }
    }

    /// The cover (mask) samples the attacker draws from.
    pub fn cover_pool(&self) -> &LocalData {
        self.attacker.covers()
    }

    /// The first attack round, once known.
    pub fn attack_start(&self) -> Option<usize> {
        self.attacker.attack_start()
    }

    /// True when the malicious clients attack in `round` (as far as the run has got).
    pub fn attacks_in(&self, round: usize) -> bool {
        self.cfg.attacks_in(self.attack_start(), round)
    }

    /// The ROC curve (FPR, TPR) of the scores after `round`, if it ran.
    pub fn roc_at(&self, round: usize) -> Option<Vec<(f64, f64)>> {
        self.judgements
            .iter()
            .find(|(r, _)| *r == round)
            .map(|(_, j)| roc(&j.scores, &self.targets.is_member()))
    }
}

impl MaliciousClients for MembershipAttack {
    fn clients(&self) -> Vec<usize> {
        self.clients.keys().copied().collect()
    }

    fn observes_benign_updates(&self) -> bool {
        self.cfg.method.is_constrained() && self.cfg.knowledge == Knowledge::Full
    }

    fn update(&mut self, client: usize, ctx: &RoundContext<'_>) -> Result<Update> {
        let own = self
            .clients
            .get_mut(&client)
            .ok_or_else(|| CoreError::Config(format!("client {client} is not malicious")))?;
        self.attacker.hold(client, ctx.global);
        if !self.cfg.attacks_in(self.attacker.attack_start(), ctx.round) {
            return match self.cfg.pretrain {
                Pretrain::LocalTraining => own.update(ctx),
                Pretrain::OneStep => {
                    let train = TrainConfig {
                        batch_size: own.num_samples().max(1),
                        epochs: 1,
                        ..ctx.train.clone()
                    };
                    own.update(&RoundContext {
                        train: &train,
                        ..*ctx
                    })
                }
            };
        }
        let mut delta = self
            .attacker
            .malicious_update(ctx, own.optimizer_state_mut());
        let num_samples = own.num_samples();
        if self.cfg.adaptive {
            let s = self.adaptive_scale(&delta, ctx)? as f32;
            if s != 1.0 {
                delta.iter_mut().for_each(|d| *d *= s);
            }
        }
        Ok(Update {
            client,
            delta,
            num_samples,
            train_loss: 0.0,
        })
    }
}

impl Attack for MembershipAttack {
    type Round = MiaRoundMetrics;
    type Summary = MiaSummary;

    /// With `start_accuracy`, the attack starts in the first round (from `start_round` on)
    /// whose starting global model classifies that share of the first malicious client's
    /// training data correctly.
    fn before_round(&mut self, federation: &Federation) -> Result<()> {
        let round = federation.round() + 1;
        if let Some(threshold) = self.cfg.start_accuracy
            && self.attack_start().is_none()
            && round >= self.cfg.start_round
        {
            let accuracy = fl_core::eval::evaluate(
                federation.spec(),
                federation.global(),
                &self.first_training,
                federation.spec().classes(),
            )
            .accuracy;
            if accuracy >= threshold {
                self.attacker.start_at(round);
            }
        }
        Ok(())
    }

    /// Judges membership on the resulting global model (the one the attacker receives at the
    /// start of the next round).
    fn observe(&mut self, federation: &Federation, base: RoundMetrics) -> Result<MiaRoundMetrics> {
        let j = self.judge(federation);
        let membership = MembershipScores::new(&j.decisions, &j.scores, &self.targets.is_member());
        self.judgements.push((base.round, j));
        let is_mal = |k: &&usize| self.clients.contains_key(k);
        Ok(MiaRoundMetrics {
            attack_period: self.attack_start().is_some_and(|s| base.round >= s),
            membership,
            malicious_sampled: base.clients.iter().filter(is_mal).count(),
            malicious_kept: base.kept.iter().filter(is_mal).count(),
            craft: self.attacker.log().get(&base.round).cloned(),
            adaptive_scale: self.scales.get(&base.round).copied(),
            base,
        })
    }

    fn base(round: &MiaRoundMetrics) -> &RoundMetrics {
        &round.base
    }

    fn state(&self) -> Option<Vec<u8>> {
        let clients = self
            .clients
            .iter()
            .map(|(&k, c)| c.state().map(|s| (k, s)))
            .collect::<Option<Vec<_>>>()?;
        let rule = match &self.rule {
            Some(r) => Some(r.state()?),
            None => None,
        };
        encode(&(
            self.attacker.state(),
            clients,
            &self.judgements,
            &self.scales,
            rule,
        ))
        .ok()
    }

    fn set_state(&mut self, state: &[u8]) -> Result<()> {
        type Saved = (
            AttackerState,
            Vec<(usize, Vec<u8>)>,
            Vec<(usize, Judgement)>,
            BTreeMap<usize, f64>,
            Option<Vec<u8>>,
        );
        let (attacker, clients, judgements, scales, rule): Saved = decode(state)?;
        match (self.rule.as_mut(), rule) {
            (Some(copy), Some(saved)) => copy.set_state(&saved)?,
            (None, None) => {}
            _ => {
                return Err(CoreError::Config(
                    "the checkpoint's attacker and this one differ in holding a rule copy".into(),
                ));
            }
        }
        self.scales = scales;
        for (k, s) in clients {
            self.clients
                .get_mut(&k)
                .ok_or_else(|| {
                    CoreError::Config(format!("the checkpoint's malicious client {k} is not one"))
                })?
                .set_state(&s)?;
        }
        self.attacker.set_state(attacker);
        self.judgements = judgements;
        Ok(())
    }

    fn summary(&self, federation: &Federation, rows: &[MiaRoundMetrics]) -> Result<MiaSummary> {
        let last = rows
            .last()
            .ok_or_else(|| CoreError::Config("no rounds ran".into()))?;
        let period: Vec<&MiaRoundMetrics> = rows.iter().filter(|r| r.attack_period).collect();
        let best = period
            .iter()
            .copied()
            .reduce(|a, b| {
                if b.membership.accuracy > a.membership.accuracy {
                    b
                } else {
                    a
                }
            })
            .ok_or_else(|| {
                CoreError::Config(format!(
                    "the run stopped at round {} before the attack period (round {})",
                    last.base.round, self.cfg.start_round
                ))
            })?;
        let attack_rows: Vec<&&MiaRoundMetrics> = period
            .iter()
            .filter(|r| self.attacks_in(r.base.round))
            .collect();
        let sampled: usize = attack_rows.iter().map(|r| r.malicious_sampled).sum();
        let kept: usize = attack_rows.iter().map(|r| r.malicious_kept).sum();
        let crafted: Vec<&CraftLog> = attack_rows
            .iter()
            .filter_map(|r| r.craft.as_ref())
            .collect();
        let main_accuracy = rows
            .iter()
            .rev()
            .find_map(|r| r.base.test.as_ref())
            .map_or(0.0, |e| e.accuracy);
        Ok(MiaSummary {
            method: self.cfg.method,
            knowledge: self.cfg.knowledge.name().into(),
            aggregator: federation.config().aggregator.clone(),
            malicious: self.cfg.malicious,
            targets: self.targets.len(),
            start_round: self.attack_start().unwrap_or(self.cfg.start_round),
            best_accuracy: best.membership.accuracy,
            best_round: best.base.round,
            at_best: best.membership.clone(),
            final_accuracy: last.membership.accuracy,
            at_final: last.membership.clone(),
            mean_accuracy: round6(
                period.iter().map(|r| r.membership.accuracy).sum::<f64>() / period.len() as f64,
            ),
            last50_mean_accuracy: {
                let last = &period[period.len().saturating_sub(50)..];
                Some(round6(
                    last.iter().map(|r| r.membership.accuracy).sum::<f64>() / last.len() as f64,
                ))
            },
            best_accuracy_all_rounds: rows.iter().map(|r| r.membership.accuracy).reduce(f64::max),
            main_accuracy: round6(main_accuracy),
            malicious_kept_share: (sampled > 0).then(|| round6(kept as f64 / sampled as f64)),
            feasible_rounds: (!crafted.is_empty())
                .then(|| (crafted.iter().filter(|c| c.feasible).count(), crafted.len())),
            adaptive_scales: {
                let picked: Vec<f64> = attack_rows
                    .iter()
                    .filter_map(|r| r.adaptive_scale)
                    .collect();
                (!picked.is_empty()).then(|| {
                    let n = picked.len() as f64;
                    (
                        picked.iter().copied().fold(f64::INFINITY, f64::min),
                        round6(picked.iter().sum::<f64>() / n),
                        picked.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    )
                })
            },
        })
    }
}

/// A membership-inference experiment: data, the federation (the malicious clients' seats in
/// it), and the attack playing them.
pub struct MiaRun {
    /// The attack's parameters (checked).
    pub mia: MiaConfig,
    /// Data and split; its test split excludes the non-member targets.
    pub prepared: Prepared,
    /// The run.
    pub federation: Federation,
    /// The malicious clients, the targets and the judging.
    pub attack: MembershipAttack,
}

impl MiaRun {
    /// Builds the run of `fed` attacked as `mia` says, aggregated by `rule` (which should be
    /// the one `fed.aggregator` names).
    pub fn build(fed: &FedConfig, mia: &MiaConfig, rule: Box<dyn Aggregator>) -> Result<Self> {
        fed.validate()?;
        mia.validate(fed)?;
        let mut prepared = Prepared::load(fed)?;
        let malicious: Vec<usize> = mia.malicious_clients().collect();
        let benign: Vec<usize> = (mia.malicious..fed.clients).collect();
        let targets = TargetSet::draw(
            &prepared.train,
            &prepared.test,
            &prepared.parts,
            &benign,
            mia.n_targets,
            fed.seed,
        )?;
        let from_reserve = mia.method.is_constrained() && mia.cover_source == CoverSource::Reserve;
        let (reserve, reserve_test_idx) = match (&prepared.reserve, from_reserve) {
            (_, false) => (None, Vec::new()),
            // [pool] held a reserve out of the clients and the test set: the covers come
            // from it (in its shuffled order).
            (Some(pooled), true) => {
                if mia.mask_pool > pooled.len() {
                    return Err(CoreError::Config(format!(
                        "mia.mask_pool is {} but [pool] reserves {}",
                        mia.mask_pool,
                        pooled.len()
                    )));
                }
                let idx: Vec<usize> = (0..mia.mask_pool).collect();
                (Some(LocalData::from_dataset(pooled, &idx)), Vec::new())
            }
            (None, true) => {
                let idx = targets.reserve(prepared.test.len(), mia.mask_pool, fed.seed)?;
                (Some(LocalData::from_dataset(&prepared.test, &idx)), idx)
            }
        };
        let mut held_out = targets.non_member_test_indices();
        held_out.extend(reserve_test_idx);
        let keep: Vec<usize> = (0..prepared.test.len())
            .filter(|i| !held_out.contains(i))
            .collect();
        prepared.test = prepared.test.subset(&keep);

        let own_idx: Vec<usize> = malicious
            .iter()
            .flat_map(|&k| prepared.parts[k].iter().copied())
            .collect();
        let mask = if let Some(covers) = reserve {
            covers
        } else if mia.method.is_constrained() {
            own_sample(
                &prepared.train,
                &own_idx,
                mia.mask_pool,
                fed.seed,
                "mia-mask",
            )?
        } else {
            LocalData::empty(prepared.train.shape)
        };
        let calibration = match (mia.method, &prepared.reserve) {
            (MiaMethod::Passive, _) if !own_idx.is_empty() => {
                let n = mia.calibration_samples.min(own_idx.len());
                own_sample(&prepared.train, &own_idx, n, fed.seed, "mia-calibration")?
            }
            // The malicious clients hold no data ([pool] empty_clients): the threshold is
            // the mean over held-out samples no client trains on (non-members) instead.
            (MiaMethod::Passive, Some(pooled)) => {
                let n = mia.calibration_samples.min(pooled.len());
                LocalData::from_dataset(pooled, &(0..n).collect::<Vec<_>>())
            }
            (MiaMethod::Passive, None) => {
                return Err(CoreError::Config(
                    "the passive attack calibrates on the malicious clients' own data, and \
                     they hold none"
                        .into(),
                ));
            }
            _ => LocalData::empty(prepared.train.shape),
        };
        let own: Vec<(usize, LocalData)> = malicious
            .iter()
            .map(|&k| (k, prepared.client_data(k)))
            .collect();
        let extra = if mia.pretrain_targets {
            targets.len()
        } else {
            0
        };
        if own.iter().any(|(_, d)| d.len() + extra < 2) {
            return Err(CoreError::Config(
                "every malicious client needs at least 2 samples to train on (its own, or the \
                 targets with mia.pretrain_targets)"
                    .into(),
            ));
        }
        if mia.knowledge == Knowledge::Partial && own.iter().any(|(_, d)| d.len() < 2) {
            return Err(CoreError::Config(
                "with partial knowledge every malicious client needs at least 2 samples of its \
                 own (its reference updates come from them)"
                    .into(),
            ));
        }
        let attacker = Attacker::new(mia, &targets.data, &targets.wrong_labels, mask, own.clone());
        let mut participants = prepared.benign_participants();
        let mut first_training = None;
        let mut clients = BTreeMap::new();
        for (k, mut data) in own {
            if mia.pretrain_targets {
                data.extend(&targets.data);
            }
            first_training.get_or_insert_with(|| data.clone());
            participants[k] = Box::new(Seat::new(k, data.len())) as Box<dyn Participant>;
            clients.insert(k, BenignClient::new(k, data));
        }
        let federation = prepared.federation(participants, rule)?;
        let first_training =
            first_training.unwrap_or_else(|| LocalData::empty(prepared.train.shape));
        Ok(Self {
            mia: mia.clone(),
            prepared,
            federation,
            attack: MembershipAttack {
                cfg: mia.clone(),
                attacker,
                clients,
                targets,
                calibration,
                first_training,
                judgements: Vec::new(),
                rule: None,
                scales: BTreeMap::new(),
            },
        })
    }

    /// The run with the attacker given its own copy of the server's rule, which
    /// `mia.adaptive` scales its crafted update against.
    pub fn with_attacker_rule(mut self, rule: Box<dyn Aggregator>) -> Self {
        self.attack.rule = Some(rule);
        self
    }

    /// The attacker's decisions on the current global model (see
    /// [`MembershipAttack::judge`]).
    pub fn judge(&self) -> Judgement {
        self.attack.judge(&self.federation)
    }

    /// The cover (mask) samples the attacker draws from.
    pub fn cover_pool(&self) -> LocalData {
        self.attack.cover_pool().clone()
    }

    /// The first attack round, once known.
    pub fn attack_start(&self) -> Option<usize> {
        self.attack.attack_start()
    }

    /// True when the malicious clients attack in `round` (as far as the run has got).
    pub fn attacks_in(&self, round: usize) -> bool {
        self.attack.attacks_in(round)
    }

    /// Runs the next round and judges membership on the resulting global model.
    pub fn run_round(&mut self) -> Result<MiaRoundMetrics> {
        fl_core::attack::step(&mut self.federation, &mut self.attack)
    }

    /// True once the run is over.
    pub fn is_finished(&self, last: Option<&MiaRoundMetrics>) -> bool {
        self.federation.is_finished(last.map(|m| &m.base))
    }

    /// Runs every round; `on_round` sees each one.
    pub fn run(
        &mut self,
        on_round: &mut dyn FnMut(&MiaRoundMetrics),
    ) -> Result<Vec<MiaRoundMetrics>> {
        fl_core::attack::run(&mut self.federation, &mut self.attack, on_round)
    }

    /// The ROC curve (FPR, TPR) of the scores after `round`, if it ran.
    pub fn roc_at(&self, round: usize) -> Option<Vec<(f64, f64)>> {
        self.attack.roc_at(round)
    }

    /// The summary of `rows` (all rounds of this run, in order).
    pub fn summary(&self, rows: &[MiaRoundMetrics]) -> Result<MiaSummary> {
        self.attack.summary(&self.federation, rows)
    }
}
