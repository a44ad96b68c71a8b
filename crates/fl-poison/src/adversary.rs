//! The malicious participant: GAN poisoning, label flipping, or its benign twin.

use crate::config::{AttackConfig, AttackMethod};
use crate::metrics::{AttackRoundMetrics, AttackScores, AttackSummary};
use fl_core::data::LocalData;
use fl_core::error::{CoreError, Result};
use fl_core::eval::evaluate;
use fl_core::train::{TrainConfig, train_local};
use fl_core::{Attack, Federation, MaliciousClients, RoundContext, RoundMetrics, Update};
use fl_gan::{Gan, GanStats};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Instant;

/// What the adversary did in one round it was sampled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdversaryRound {
    /// True when it attacked (false: it behaved benignly).
    pub attacking: bool,
    /// Samples it trained on (own plus generated).
    pub local_samples: usize,
    /// Its mean local training loss.
    pub train_loss: f64,
    /// Generator training, for the GAN attack.
    pub gan: Option<GanStats>,
    /// The global model's accuracy on the adversary's own data when the round started.
    pub own_accuracy: Option<f64>,
    /// The boost picked against the rule (attack rounds with `adaptive_boost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boost: Option<f64>,
}

/// Where the adversary's time went in one round, in seconds (for benchmarks; never written to
/// `metrics.jsonl`, whose numbers must not depend on the machine's speed).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AdversaryTiming {
    /// Training the generator against the global model.
    pub generator_s: f64,
    /// Drawing the fake and poison images.
    pub sampling_s: f64,
    /// Local training on its (own plus generated) set.
    pub train_s: f64,
}

/// The adversary's record, read by whoever runs the attack.
#[derive(Debug, Clone, Default)]
pub struct AttackLog {
    /// The round the attack started (for `none`: the round it would have started).
    pub started_at: Option<usize>,
    /// Per round in which the adversary was sampled.
    pub rounds: BTreeMap<usize, AdversaryRound>,
    /// Per round in which the adversary was sampled: its time split.
    pub timing: BTreeMap<usize, AdversaryTiming>,
}

/// The adversarial client, and the attack it plays ([`fl_core::Attack`]: one client, the
/// round's attack scores, the attack summary).
pub struct Adversary {
    client: usize,
    own: LocalData,
    cfg: AttackConfig,
    train: TrainConfig,
    log: AttackLog,
    gan: Option<Gan>,
    /// The adversary's copy of the server's rule (`adaptive_boost` picks the boost with it).
    rule: Option<Box<dyn fl_core::Aggregator>>,
}

impl Adversary {
    /// The adversary `cfg.adversary` holding `own`, attacking a run whose benign local training
    /// is `fed_train`; `seed` seeds its generator.
    pub fn new(
        own: LocalData,
        cfg: &AttackConfig,
        fed_train: &TrainConfig,
        spec: &fl_core::train::ModelSpec,
        seed: u64,
    ) -> Self {
        let gan = (cfg.method == AttackMethod::Gan).then(|| Gan::new(cfg.gan.clone(), spec, seed));
        let mut train = fed_train.clone();
        if let Some(e) = cfg.epochs {
            train.epochs = e;
        }
        Self {
            client: cfg.adversary,
            own,
            cfg: cfg.clone(),
            train,
            log: AttackLog::default(),
            gan,
            rule: None,
        }
    }

    /// Gives the adversary its copy of the server's rule, which `adaptive_boost` needs.
    pub fn set_rule_copy(&mut self, rule: Box<dyn fl_core::Aggregator>) {
        self.rule = Some(rule);
    }

    /// The attack's parameters.
    pub fn config(&self) -> &AttackConfig {
        &self.cfg
    }

    /// What it did so far.
    pub fn log(&self) -> &AttackLog {
        &self.log
    }

    /// Its log, to continue another run's (a warm start).
    pub fn log_mut(&mut self) -> &mut AttackLog {
        &mut self.log
    }

    /// `n` images of G from the generator with noise from `rng` (`None` without a generator).
    pub fn sample(&self, n: usize, rng: &mut fl_data::rng::Stream) -> Option<Vec<f32>> {
        self.gan.as_ref().map(|g| g.sample(n, rng))
    }

    /// Decides whether this round attacks; returns (attacking, own accuracy if measured).
    fn should_attack(&self, ctx: &RoundContext<'_>) -> (bool, Option<f64>) {
        if let Some(start) = self.log.started_at {
            return (ctx.round >= start, None);
        }
        if ctx.round < self.cfg.start_round {
            return (false, None);
        }
        match self.cfg.start_accuracy {
            None => (true, None),
            Some(threshold) => {
                let acc = evaluate(ctx.spec, ctx.global, &self.own, ctx.spec.classes()).accuracy;
                (acc >= threshold, Some(acc))
            }
        }
    }

    /// The local set of an attack round; the generator's and the sampling's time go to
    /// `timing`.
    fn attack_data(
        &mut self,
        ctx: &RoundContext<'_>,
        timing: &mut AdversaryTiming,
    ) -> Result<(LocalData, Option<GanStats>)> {
        let mut data = self.own.clone();
        match self.cfg.method {
            AttackMethod::None => unreachable!("the benign twin never builds an attack set"),
            AttackMethod::LabelFlip => {
                for l in data.labels.iter_mut() {
                    if *l as usize == self.cfg.generate {
                        *l = self.cfg.target as u8;
                    }
                }
                Ok((data, None))
            }
            AttackMethod::Gan => {
                let gan = self.gan.as_mut().expect("the GAN attack has a generator");
                let started = Instant::now();
                let stats =
                    gan.train_against(ctx.spec, ctx.global, self.cfg.generate, ctx.round)?;
                timing.generator_s = started.elapsed().as_secs_f64();
                let started = Instant::now();
                let mut rng = ctx.rng("attack-samples", self.client);
                let mut add = |n: usize, label: usize| {
                    let images = gan.sample(n, &mut rng);
                    for img in images.chunks_exact(fl_gan::generator::IMAGE.pixels()) {
                        data.push(img, label as u8);
                    }
                };
                if self.cfg.fake_class {
                    add(self.cfg.n_fake, ctx.spec.classes());
                }
                if self.cfg.poison {
                    add(self.cfg.n_poison, self.cfg.target);
                }
                timing.sampling_s = started.elapsed().as_secs_f64();
                Ok((data, Some(stats)))
            }
        }
    }
}

impl MaliciousClients for Adversary {
    fn clients(&self) -> Vec<usize> {
        vec![self.client]
    }

    fn observes_benign_updates(&self) -> bool {
        self.cfg.adaptive_boost
    }

    fn update(&mut self, client: usize, ctx: &RoundContext<'_>) -> Result<Update> {
        debug_assert_eq!(client, self.client);
        let (attacking, own_accuracy) = self.should_attack(ctx);
        if attacking {
            self.log.started_at.get_or_insert(ctx.round);
        }
        let malicious = attacking && self.cfg.method != AttackMethod::None;
        let mut timing = AdversaryTiming::default();
        let (data, gan, train) = if malicious {
            let (d, g) = self.attack_data(ctx, &mut timing)?;
            (d, g, &self.train)
        } else {
            (self.own.clone(), None, ctx.train)
        };
        let mut rng = ctx.rng("local-shuffle", self.client);
        let started = Instant::now();
        let (local, stats) = train_local(ctx.spec, ctx.global, &data, train, &mut rng);
        timing.train_s = started.elapsed().as_secs_f64();
        let mut update = ctx.update_from(self.client, &local, stats, self.own.len());
        let mut picked = None;
        let boost = if malicious && self.cfg.adaptive_boost {
            let rule = self.rule.as_mut().ok_or_else(|| {
                CoreError::Config(
                    "attack.adaptive_boost needs the adversary's copy of the server's rule \
                     (Adversary::set_rule_copy)"
                        .into(),
                )
            })?;
            let scales = crate::scale::factors(self.cfg.adaptive_min_boost, self.cfg.boost);
            let b = crate::scale::pick_scale(rule.as_mut(), &[&update.delta], &scales, ctx)?;
            picked = Some(b);
            b
        } else if malicious {
            self.cfg.boost
        } else {
            1.0
        };
        if boost != 1.0 {
            let boost = boost as f32;
            update.delta.iter_mut().for_each(|d| *d *= boost);
        }
        if update.delta.iter().any(|d| !d.is_finite()) {
            return Err(CoreError::Participant {
                client: self.client,
                reason: format!("its round-{} update is not finite", ctx.round),
            });
        }
        self.log.rounds.insert(
            ctx.round,
            AdversaryRound {
                attacking,
                local_samples: data.len(),
                train_loss: stats.loss,
                gan,
                own_accuracy,
                boost: picked,
            },
        );
        self.log.timing.insert(ctx.round, timing);
        Ok(update)
    }
}

/// An [`AdversaryRound`] as a checkpoint keeps it (bincode needs every field written).
#[derive(Serialize, Deserialize)]
struct SavedRound {
    round: usize,
    attacking: bool,
    local_samples: usize,
    train_loss: f64,
    gan: Option<GanStats>,
    own_accuracy: Option<f64>,
    boost: Option<f64>,
}

/// What a checkpoint keeps of the adversary: when it started, its log, its generator and its
/// copy of the server's rule.
type SavedAdversary = (
    Option<usize>,
    Vec<SavedRound>,
    Option<fl_gan::GanState>,
    Option<Vec<u8>>,
);

impl Attack for Adversary {
    type Round = AttackRoundMetrics;
    type Summary = AttackSummary;

    /// `None` (not checkpointed) when the generator runs through burn or the rule copy keeps
    /// state it cannot save.
    fn state(&self) -> Option<Vec<u8>> {
        let gan = match &self.gan {
            Some(g) => Some(g.state()?),
            None => None,
        };
        let rule = match &self.rule {
            Some(r) => Some(r.state()?),
            None => None,
        };
        let rounds = self
            .log
            .rounds
            .iter()
            .map(|(&round, r)| SavedRound {
                round,
                attacking: r.attacking,
                local_samples: r.local_samples,
                train_loss: r.train_loss,
                gan: r.gan,
                own_accuracy: r.own_accuracy,
                boost: r.boost,
            })
            .collect();
        let saved: SavedAdversary = (self.log.started_at, rounds, gan, rule);
        fl_core::checkpoint::encode(&saved).ok()
    }

    fn set_state(&mut self, state: &[u8]) -> Result<()> {
        let (started_at, rounds, gan, rule): SavedAdversary = fl_core::checkpoint::decode(state)?;
        match (&mut self.gan, gan) {
            (Some(g), Some(saved)) => g.set_state(saved)?,
            (None, None) => {}
            _ => {
                return Err(CoreError::Config(
                    "the checkpoint's adversary and this one differ in having a generator".into(),
                ));
            }
        }
        match (&mut self.rule, rule) {
            (Some(r), Some(saved)) => r.set_state(&saved)?,
            (None, None) => {}
            _ => {
                return Err(CoreError::Config(
                    "the checkpoint's adversary and this one differ in holding a rule copy".into(),
                ));
            }
        }
        self.log.started_at = started_at;
        self.log.rounds = rounds
            .into_iter()
            .map(|r| {
                let round = AdversaryRound {
                    attacking: r.attacking,
                    local_samples: r.local_samples,
                    train_loss: r.train_loss,
                    gan: r.gan,
                    own_accuracy: r.own_accuracy,
                    boost: r.boost,
                };
                (r.round, round)
            })
            .collect();
        Ok(())
    }

    fn observe(&mut self, _federation: &Federation, base: RoundMetrics) -> Result<Self::Round> {
        Ok(AttackRoundMetrics {
            scores: base.test.as_ref().map(|e| AttackScores::of(e, &self.cfg)),
            attack_period: self.log.started_at.is_some_and(|s| base.round >= s),
            adversary: self.log.rounds.get(&base.round).cloned(),
            base,
        })
    }

    fn base(round: &AttackRoundMetrics) -> &RoundMetrics {
        &round.base
    }

    /// The summary without the fidelity (which needs an oracle: see
    /// [`crate::AttackRun::summary`]).
    fn summary(
        &self,
        federation: &Federation,
        rounds: &[AttackRoundMetrics],
    ) -> Result<AttackSummary> {
        Ok(AttackSummary::new(
            &self.cfg,
            federation.config().dataset.class_names(),
            rounds,
            self.log.started_at,
            None,
        ))
    }
}
