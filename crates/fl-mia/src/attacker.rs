//! The attacker's craft: the crafted update of each method, from the state the malicious
//! clients share.

use crate::config::{AttackSteps, Craft, Knowledge, MiaConfig, MiaMethod, Selection};
use fl_core::data::LocalData;
use fl_core::geometry::{angle, angle_from, dot, norm, sq_distance};
use fl_core::participant::RoundContext;
use fl_core::train::{OptimizerState, TrainConfig, train_local, train_local_with};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How far a crafted update may stray from the benign ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Constraint {
    /// Its largest angle to a benign update is at most the largest angle between two benign
    /// updates (FedPoisonMIA).
    Angle,
    /// The same with Euclidean distances (AGREvader-style).
    Distance,
}

impl Constraint {
    /// The measure between two updates.
    pub fn measure(self, a: &[f32], b: &[f32]) -> f64 {
        match self {
            Constraint::Angle => angle(a, b),
            Constraint::Distance => sq_distance(a, b).sqrt(),
        }
    }

    /// The largest measure between two of `refs` (0 with fewer than two).
    pub fn bound(self, refs: &[Vec<f32>]) -> f64 {
        let mut worst = 0.0f64;
        for i in 0..refs.len() {
            for j in i + 1..refs.len() {
                worst = worst.max(self.measure(&refs[i], &refs[j]));
            }
        }
        worst
    }

    /// The largest measure between `v` and any of `refs`.
    pub fn worst(self, v: &[f32], refs: &[Vec<f32>]) -> f64 {
        refs.iter().map(|r| self.measure(v, r)).fold(0.0, f64::max)
    }
}

/// What the attacker did in one attack round (one line per round in the metrics).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CraftLog {
    /// Benign updates it measured itself against.
    pub references: usize,
    /// The constraint's bound: the largest angle (radians) or distance between two of them.
    pub bound: f64,
    /// The crafted update's largest angle or distance to them.
    pub worst: f64,
    /// True when the crafted update met the bound (false: the poison update alone was sent).
    pub feasible: bool,
    /// Mask samples chosen.
    pub masks: usize,
    /// The factor on the poison update.
    pub alpha: f64,
    /// L2 norm of the update sent.
    pub norm: f64,
    /// Mean L2 norm of the reference updates.
    pub reference_norm: f64,
}

/// The crafted update and its log.
#[derive(Debug, Clone, PartialEq)]
pub struct Crafted {
    /// The update (a parameter delta).
    pub delta: Vec<f32>,
    /// How it was made.
    pub log: CraftLog,
}

impl Crafted {
    /// `delta` with its log against `refs` under `constraint` (bound, feasibility, covers
    /// used and the poison's factor as the search found them).
    fn logged(
        delta: Vec<f32>,
        refs: &[Vec<f32>],
        constraint: Constraint,
        bound: f64,
        feasible: bool,
        masks: usize,
        alpha: f64,
    ) -> Self {
        let reference_norm = if refs.is_empty() {
            0.0
        } else {
            refs.iter().map(|r| norm(r)).sum::<f64>() / refs.len() as f64
        };
        Self {
            log: CraftLog {
                references: refs.len(),
                bound,
                worst: constraint.worst(&delta, refs),
                feasible,
                masks,
                alpha,
                norm: norm(&delta),
                reference_norm,
            },
            delta,
        }
    }
}

/// The inner products among the poison update g, the mask updates m_c and the reference
/// updates r_j: enough to measure any `alpha g + mean(masks)` against the references without
/// forming it. Products between two masks are computed only for the rows a search adopts
/// (a few of the masks), not for the whole Gram matrix.
struct Products<'a> {
    masks: &'a [Vec<f32>],
    gg: f64,
    gm: Vec<f64>,
    gr: Vec<f64>,
    /// m_c . m_c
    mm_diag: Vec<f64>,
    /// Rows m_c . m_* computed so far.
    mm_rows: std::cell::RefCell<BTreeMap<usize, std::rc::Rc<Vec<f64>>>>,
    mr: Vec<Vec<f64>>,
    rr: Vec<f64>,
}

impl<'a> Products<'a> {
    fn new(g: &[f32], masks: &'a [Vec<f32>], refs: &[Vec<f32>]) -> Self {
        Self {
            masks,
            gg: dot(g, g),
            gm: masks.iter().map(|m| dot(g, m)).collect(),
            gr: refs.iter().map(|r| dot(g, r)).collect(),
            mm_diag: masks.iter().map(|m| dot(m, m)).collect(),
            mm_rows: Default::default(),
            mr: masks
                .iter()
                .map(|m| refs.iter().map(|r| dot(m, r)).collect())
                .collect(),
            rr: refs.iter().map(|r| dot(r, r)).collect(),
        }
    }

    /// m_c . m_j for every mask j (computed once per c).
    fn row(&self, c: usize) -> std::rc::Rc<Vec<f64>> {
        self.mm_rows
            .borrow_mut()
            .entry(c)
            .or_insert_with(|| {
                std::rc::Rc::new(
                    (0..self.masks.len())
                        .map(|j| {
                            if j == c {
                                self.mm_diag[c]
                            } else {
                                dot(&self.masks[c], &self.masks[j])
                            }
                        })
                        .collect(),
                )
            })
            .clone()
    }
}

/// A combination `alpha g + sum / k` described by its products with g, the masks and the
/// references.
#[derive(Clone)]
struct Combination {
    /// Masks in the sum.
    k: usize,
    /// sum . g
    sg: f64,
    /// sum . sum
    ss: f64,
    /// sum . r_j
    sr: Vec<f64>,
    /// sum . m_c for every mask c (empty for a candidate not adopted: it is measured only)
    sm: Vec<f64>,
}

impl Combination {
    fn empty(p: &Products) -> Self {
        Self {
            k: 0,
            sg: 0.0,
            ss: 0.0,
            sr: vec![0.0; p.rr.len()],
            sm: vec![0.0; p.gm.len()],
        }
    }

    /// The candidate `self + m_c`, enough to measure it.
    fn with(&self, p: &Products, c: usize) -> Self {
        Self {
            k: self.k + 1,
            sg: self.sg + p.gm[c],
            ss: self.ss + 2.0 * self.sm[c] + p.mm_diag[c],
            sr: self.sr.iter().zip(&p.mr[c]).map(|(a, b)| a + b).collect(),
            sm: Vec::new(),
        }
    }

    /// `self + m_c` as a combination the search continues from.
    fn adopt(&self, p: &Products, c: usize) -> Self {
        let row = p.row(c);
        Self {
            sm: self.sm.iter().zip(row.iter()).map(|(a, b)| a + b).collect(),
            ..self.with(p, c)
        }
    }

    /// The norm of `alpha g + sum / k` and its largest measure to the references.
    fn measure(&self, p: &Products, alpha: f64, constraint: Constraint) -> (f64, f64) {
        let inv = if self.k == 0 {
            0.0
        } else {
            1.0 / self.k as f64
        };
        let vv =
            (alpha * alpha * p.gg + 2.0 * alpha * inv * self.sg + inv * inv * self.ss).max(0.0);
        let worst = (0..p.rr.len())
            .map(|j| {
                let vr = alpha * p.gr[j] + inv * self.sr[j];
                match constraint {
                    Constraint::Angle => angle_from(vr, vv.sqrt(), p.rr[j].sqrt()),
                    Constraint::Distance => (vv - 2.0 * vr + p.rr[j]).max(0.0).sqrt(),
                }
            })
            .fold(0.0, f64::max);
        (vv.sqrt(), worst)
    }
}

/// The greedy search of FedPoisonMIA: up to `steps` times, try every unused mask update `m_c`
/// as `mean(selected + m_c) + alpha g_attack` and keep the feasible one of largest norm; send
/// the masks chosen at the end, or with [`Selection::BestNorm`] the candidate of largest norm
/// seen over the iterations.
/// `alpha` is the largest of `alphas` (descending) at which some mask gives a feasible
/// update; with the masks chosen, alpha is then raised as far as the constraint allows. With no
/// mask feasible at any alpha, the largest feasible `alpha g_attack` alone; with nothing
/// feasible at all, `g_attack` alone (as the authors' code falls back).
///
/// Candidates are measured through inner products computed once per call: each mask with
/// g_attack, itself and the references, and with the other masks only for the few masks
/// adopted, so the search costs O(masks x (references + steps)) products plus scalar work.
pub fn greedy(
    g_attack: &[f32],
    masks: &[Vec<f32>],
    refs: &[Vec<f32>],
    constraint: Constraint,
    steps: usize,
    alphas: &[f64],
    selection: Selection,
) -> Crafted {
    let bound = constraint.bound(refs);
    let mut found: Option<(f64, Vec<usize>)> = None;
    if refs.len() >= 2 {
        let p = Products::new(g_attack, masks, refs);
        let ok = |c: &Combination, a: f64| c.measure(&p, a, constraint).1 <= bound;
        for (i, &a0) in alphas.iter().enumerate() {
            let chosen = select_masks(&p, a0, constraint, bound, steps, selection);
            if let Some((combo, chosen)) = chosen {
                // a0 is feasible with these masks; a larger alpha may be too.
                let a = alphas[..i]
                    .iter()
                    .copied()
                    .find(|&a| ok(&combo, a))
                    .unwrap_or(a0);
                found = Some((a, chosen));
                break;
            }
        }
        if found.is_none() {
            let none = Combination::empty(&p);
            found = alphas
                .iter()
                .find(|&&a| ok(&none, a))
                .map(|&a| (a, Vec::new()));
        }
    }
    let feasible = found.is_some();
    let (alpha, chosen) = found.unwrap_or((1.0, Vec::new()));
    let mut delta: Vec<f32> = g_attack.iter().map(|&x| alpha as f32 * x).collect();
    for &c in &chosen {
        for (d, m) in delta.iter_mut().zip(&masks[c]) {
            *d += m / chosen.len() as f32;
        }
    }
    Crafted::logged(
        delta,
        refs,
        constraint,
        bound,
        feasible,
        chosen.len(),
        alpha,
    )
}

/// Up to `steps` rounds of: add the unused mask whose `mean(selected + m) + alpha g` is
/// feasible with the largest norm. Returns the final selection, or with
/// [`Selection::BestNorm`] the largest-norm one of the rounds (the earliest on ties); `None`
/// when not even one mask is feasible.
fn select_masks(
    p: &Products,
    alpha: f64,
    constraint: Constraint,
    bound: f64,
    steps: usize,
    selection: Selection,
) -> Option<(Combination, Vec<usize>)> {
    let mut combo = Combination::empty(p);
    let mut chosen: Vec<usize> = Vec::new();
    let mut best_seen: Option<(f64, Combination, Vec<usize>)> = None;
    for _ in 0..steps {
        let mut best: Option<(usize, f64, Combination)> = None;
        for c in (0..p.gm.len()).filter(|c| !chosen.contains(c)) {
            let next = combo.with(p, c);
            let (n, worst) = next.measure(p, alpha, constraint);
            if worst <= bound && best.as_ref().is_none_or(|b| n > b.1) {
                best = Some((c, n, next));
            }
        }
        let Some((c, n, _)) = best else { break };
        chosen.push(c);
        combo = combo.adopt(p, c);
        if best_seen.as_ref().is_none_or(|b| n > b.0) {
            best_seen = Some((n, combo.clone(), chosen.clone()));
        }
    }
    match selection {
        Selection::Final => (!chosen.is_empty()).then_some((combo, chosen)),
        Selection::BestNorm => best_seen.map(|(_, combo, chosen)| (combo, chosen)),
    }
}

/// Alphas from `max` down to `min` in steps of a factor 1.2 (both ends included), largest
/// first.
pub fn alpha_grid(max: f64, min: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut a = max;
    while a > min * 1.000001 {
        out.push(a);
        a /= 1.2;
    }
    out.push(min);
    out
}

/// What an [`Attacker`] carries between rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AttackerState {
    crafted: Option<(usize, Vec<f32>)>,
    log: BTreeMap<usize, CraftLog>,
    held: Option<Vec<f32>>,
    started_at: Option<usize>,
}

/// The state the malicious clients share: their data, the targets, the round's crafted
/// update, and the log.
pub struct Attacker {
    cfg: MiaConfig,
    poisoned: LocalData,
    truth: LocalData,
    mask: LocalData,
    own: Vec<(usize, LocalData)>,
    crafted: Option<(usize, Vec<f32>)>,
    log: BTreeMap<usize, CraftLog>,
    held: Option<Vec<f32>>,
    started_at: Option<usize>,
}

impl Attacker {
    /// An attacker for `cfg` holding `targets` (true labels) with `wrong_labels`, the `mask`
    /// pool and each malicious client's own data.
    pub fn new(
        cfg: &MiaConfig,
        targets: &LocalData,
        wrong_labels: &[u8],
        mask: LocalData,
        own: Vec<(usize, LocalData)>,
    ) -> Self {
        Self {
            cfg: cfg.clone(),
            poisoned: LocalData::new(targets.images.clone(), wrong_labels.to_vec(), targets.shape),
            truth: targets.clone(),
            mask,
            own,
            crafted: None,
            log: BTreeMap::new(),
            held: None,
            started_at: cfg.fixed_start(),
        }
    }

    /// The cover (mask) samples.
    pub fn covers(&self) -> &LocalData {
        &self.mask
    }

    /// The first attack round, once known (fixed by the config, or set by the run when the
    /// model reached `start_accuracy`).
    pub fn attack_start(&self) -> Option<usize> {
        self.started_at
    }

    /// Starts the attack in round `round` (when it has not started yet).
    pub fn start_at(&mut self, round: usize) {
        self.started_at.get_or_insert(round);
    }

    /// Notes the model malicious client `client` starts a round from; the first malicious
    /// client's is the model the attacker holds.
    pub(crate) fn hold(&mut self, client: usize, start: &[f32]) {
        if self.own.first().is_some_and(|(k, _)| *k == client) {
            self.held = Some(start.to_vec());
        }
    }

    /// The model the attacker holds: the one its first malicious client last started a round
    /// from (`None` before it was first sampled).
    pub fn held_model(&self) -> Option<&[f32]> {
        self.held.as_deref()
    }

    /// What the attacker carries between rounds (for a checkpoint).
    pub(crate) fn state(&self) -> AttackerState {
        AttackerState {
            crafted: self.crafted.clone(),
            log: self.log.clone(),
            held: self.held.clone(),
            started_at: self.started_at,
        }
    }

    /// Continues from `state`.
    pub(crate) fn set_state(&mut self, state: AttackerState) {
        self.crafted = state.crafted;
        self.log = state.log;
        self.held = state.held;
        self.started_at = state.started_at;
    }

    /// The log of attack rounds so far, by round.
    pub fn log(&self) -> &BTreeMap<usize, CraftLog> {
        &self.log
    }

    /// The update every malicious client sends in this (attack) round; computed once per round,
    /// by the first to ask, from its optimizer `state` (with `attack_steps = "own-optimizer"`).
    pub(crate) fn malicious_update(
        &mut self,
        ctx: &RoundContext<'_>,
        state: &mut OptimizerState,
    ) -> Vec<f32> {
        if let Some((r, d)) = &self.crafted
            && *r == ctx.round
        {
            return d.clone();
        }
        if self.cfg.craft == Craft::Authors && self.cfg.method.is_constrained() {
            let constraint = if self.cfg.method == MiaMethod::Agrevader {
                Constraint::Distance
            } else {
                Constraint::Angle
            };
            let refs = self.references(ctx);
            let (poison, covers) = self.authors_updates(ctx, state);
            let c = authors_choice(&poison, &covers, AUTHORS_COVER_FACTOR, &refs, constraint);
            tracing::debug!(round = ctx.round, ?c.log, "crafted");
            self.log.insert(ctx.round, c.log);
            self.crafted = Some((ctx.round, c.delta.clone()));
            return c.delta;
        }
        let steps = self.cfg.attack_steps;
        let state = &*state;
        let one_step = |ctx: &RoundContext<'_>, data: &LocalData, purpose: usize| {
            one_step(ctx, data, purpose, steps, state)
        };
        let delta = match self.cfg.method {
            MiaMethod::GradientAscent => one_step(ctx, &self.truth, 0)
                .into_iter()
                .map(|x| -x)
                .collect(),
            MiaMethod::FedPoisonMia | MiaMethod::Agrevader => {
                let constraint = if self.cfg.method == MiaMethod::Agrevader {
                    Constraint::Distance
                } else {
                    Constraint::Angle
                };
                let g_attack = one_step(ctx, &self.poisoned, 0);
                let masks: Vec<Vec<f32>> = (0..self.mask.len())
                    .map(|i| {
                        let one = self.mask.slice(i, i + 1);
                        one_step(ctx, &one, i + 1)
                    })
                    .collect();
                let refs = self.references(ctx);
                let c = greedy(
                    &g_attack,
                    &masks,
                    &refs,
                    constraint,
                    self.cfg.greedy_steps,
                    &alpha_grid(self.cfg.alpha_max, self.cfg.alpha_min),
                    self.cfg.selection,
                );
                tracing::debug!(round = ctx.round, ?c.log, "crafted");
                self.log.insert(ctx.round, c.log);
                c.delta
            }
            MiaMethod::Passive => unreachable!("the passive attack never crafts"),
        };
        self.crafted = Some((ctx.round, delta.clone()));
        delta
    }

    /// The authors' poison update and cumulative cover updates ([`Craft::Authors`]): the
    /// optimizer in `state` steps through all of them and keeps what it learnt.
    fn authors_updates(
        &self,
        ctx: &RoundContext<'_>,
        state: &mut OptimizerState,
    ) -> (Vec<f32>, Vec<Vec<f32>>) {
        let step = |batch: usize| TrainConfig {
            batch_size: batch.max(1),
            epochs: 1,
            shuffle: false,
            keep_optimizer_state: true,
            ..ctx.train.clone()
        };
        let mut rng = ctx.rng("mia-authors-craft", 0);
        let (poisoned, _) = train_local_with(
            ctx.spec,
            ctx.global,
            &self.poisoned,
            &step(self.poisoned.len()),
            &mut rng,
            state,
        );
        let poison = ctx.delta(&poisoned);
        let mut params = ctx.global.to_vec();
        let mut covers = Vec::with_capacity(self.cfg.greedy_steps);
        let n = self.mask.len().min(AUTHORS_COVER_SET);
        for t in 0..self.cfg.greedy_steps {
            let mut order: Vec<usize> = (0..self.mask.len()).collect();
            order.shuffle(&mut ctx.rng("mia-authors-covers", t));
            let chosen = self.mask.subset(&order[..n]);
            let (next, _) = train_local_with(
                ctx.spec,
                &params,
                &chosen,
                &step(ctx.train.batch_size),
                &mut rng,
                state,
            );
            params = next;
            covers.push(ctx.delta(&params));
        }
        (poison, covers)
    }

    /// The benign updates the threat model lets it see.
    fn references(&self, ctx: &RoundContext<'_>) -> Vec<Vec<f32>> {
        match self.cfg.knowledge {
            Knowledge::Full => ctx.benign_updates.iter().map(|u| u.delta.clone()).collect(),
            Knowledge::Partial if self.own.len() >= 2 => self
                .own
                .iter()
                .map(|(k, data)| {
                    let (local, _) = ctx.train_from_global(*k, data);
                    ctx.delta(&local)
                })
                .collect(),
            Knowledge::Partial => {
                let (k, data) = &self.own[0];
                let half = data.len() / 2;
                [(0, half), (half, data.len())]
                    .iter()
                    .enumerate()
                    .map(|(h, &(a, b))| {
                        let part = data.slice(a, b);
                        let mut rng = ctx.rng("mia-reference-half", *k * 2 + h);
                        let (local, _) =
                            train_local(ctx.spec, ctx.global, &part, ctx.train, &mut rng);
                        ctx.delta(&local)
                    })
                    .collect()
            }
        }
    }
}

/// The cover samples of each of the authors' tries (their code takes 320 of the 500 reserved).
pub const AUTHORS_COVER_SET: usize = 320;

/// The authors' cover factor (`COVER_FACTOR` in their `constants.py`).
pub const AUTHORS_COVER_FACTOR: f64 = 0.5;

/// The FedPoisonMIA authors' choice among their candidates ([`Craft::Authors`]): candidate 0
/// is `poison + cover_factor covers[0]`, candidate k candidate k-1 plus `cover_factor
/// covers[k]`; a candidate is feasible when its largest measure to a reference is at most
/// the largest between two references. The first feasible candidate is kept and replaced by
/// a later feasible one of larger angle to the references (angle) or larger norm (distance);
/// with none feasible the last candidate is sent. `masks` in the log counts the tries summed
/// into the update sent.
pub fn authors_choice(
    poison: &[f32],
    covers: &[Vec<f32>],
    cover_factor: f64,
    refs: &[Vec<f32>],
    constraint: Constraint,
) -> Crafted {
    let bound = constraint.bound(refs);
    let mut candidate = poison.to_vec();
    let mut best: Option<(f64, usize, Vec<f32>)> = None;
    for (k, cover) in covers.iter().enumerate() {
        candidate
            .iter_mut()
            .zip(cover)
            .for_each(|(c, v)| *c += cover_factor as f32 * v);
        let worst = constraint.worst(&candidate, refs);
        if worst > bound {
            continue;
        }
        let score = match constraint {
            Constraint::Angle => worst,
            Constraint::Distance => norm(&candidate),
        };
        if best.as_ref().is_none_or(|(b, ..)| score > *b) {
            best = Some((score, k + 1, candidate.clone()));
        }
    }
    let feasible = best.is_some();
    let (masks, delta) = match best {
        Some((_, k, d)) => (k, d),
        None => (covers.len(), candidate),
    };
    Crafted::logged(delta, refs, constraint, bound, feasible, masks, 1.0)
}

/// The update of one step on all of `data` as one batch: plain SGD at the run's learning rate,
/// or with [`AttackSteps::OwnOptimizer`] the run's optimizer continuing a copy of `state` (so
/// the client's own state is left as it was).
fn one_step(
    ctx: &RoundContext<'_>,
    data: &LocalData,
    purpose: usize,
    steps: AttackSteps,
    state: &OptimizerState,
) -> Vec<f32> {
    let cfg = match steps {
        AttackSteps::Sgd => TrainConfig {
            lr: ctx.train.lr,
            momentum: 0.0,
            weight_decay: 0.0,
            batch_size: data.len().max(1),
            epochs: 1,
            ..Default::default()
        },
        AttackSteps::OwnOptimizer => TrainConfig {
            batch_size: data.len().max(1),
            epochs: 1,
            ..ctx.train.clone()
        },
    };
    let mut rng = ctx.rng("mia-step", purpose);
    let (local, _) = train_local_with(
        ctx.spec,
        ctx.global,
        data,
        &cfg,
        &mut rng,
        &mut state.clone(),
    );
    ctx.delta(&local)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs() -> Vec<Vec<f32>> {
        // Unit benign updates 60 degrees apart: the angle bound is pi/3, the distance bound 1.
        vec![vec![1.0, 0.0, 0.0], vec![0.5, 3f32.sqrt() / 2.0, 0.0]]
    }

    #[test]
    fn bound_and_worst_by_hand() {
        let r = refs();
        let b = Constraint::Angle.bound(&r);
        assert!((b - std::f64::consts::FRAC_PI_3).abs() < 1e-6);
        assert!((Constraint::Distance.bound(&r) - 1.0).abs() < 1e-6);
        let w = Constraint::Angle.worst(&[0.0, 1.0, 0.0], &r);
        assert!((w - std::f64::consts::FRAC_PI_2).abs() < 1e-6);
    }

    #[test]
    fn greedy_picks_the_largest_feasible_mask_and_alpha() {
        let r = refs();
        let g = vec![0.1, 0.1, 0.0];
        // Mask 0 is large but points out of the benign plane (~88 degrees: infeasible); mask 1
        // (28 and 32 degrees) is feasible and larger than mask 2.
        let masks = vec![
            vec![0.0, 0.0, 5.0],
            vec![2.0, 1.0, 0.0],
            vec![0.5, 0.5, 0.0],
        ];
        let c = greedy(
            &g,
            &masks,
            &r,
            Constraint::Angle,
            1,
            &[1.0],
            Selection::Final,
        );
        assert!(c.log.feasible);
        assert_eq!(c.log.masks, 1);
        assert_eq!(c.delta, vec![2.1, 1.1, 0.0]);
        assert!(c.log.worst <= c.log.bound + 1e-6);
        // With any alpha allowed in the benign plane, the largest is taken.
        let c = greedy(
            &g,
            &masks,
            &r,
            Constraint::Angle,
            1,
            &alpha_grid(100.0, 0.01),
            Selection::Final,
        );
        assert!((c.log.alpha - 100.0).abs() < 1e-9);
    }

    /// `mlp` on the CPU kernels (one thread) for 28x28 grey images, and that shape.
    fn mlp_on_kernels() -> (fl_core::train::ModelSpec, fl_data::ImageShape) {
        let shape = fl_data::ImageShape::grey(28, 28);
        let spec = fl_core::train::ModelSpec {
            kind: fl_core::model::ModelKind::MLP,
            shape,
            outputs: 11,
            device: fl_core::DeviceKind::Flex.device().unwrap(),
            cpu_kernels: Some(1),
        };
        (spec, shape)
    }

    #[test]
    fn own_optimizer_steps_are_adam_steps_that_leave_the_clients_state_as_it_was() {
        use fl_core::backprop::Optimizer;
        use fl_core::train::OptimizerKind;
        let (spec, shape) = mlp_on_kernels();
        let global = spec.initial_params(3);
        let mut rng = fl_data::rng::stream(1, "test-images", &[]);
        let data = LocalData::new(
            (0..8 * shape.pixels())
                .map(|_| rand::RngExt::random_range(&mut rng, -1.0f32..1.0))
                .collect(),
            (0..8).map(|i| (i % 10) as u8).collect(),
            shape,
        );
        let lr = 1e-3;
        let train = TrainConfig {
            lr,
            optimizer: OptimizerKind::Adam,
            keep_optimizer_state: true,
            ..Default::default()
        };
        let ctx = RoundContext {
            round: 4,
            seed: 7,
            global: &global,
            spec: &spec,
            train: &train,
            sampled: &[],
            benign_updates: &[],
            server: None,
        };
        // A fresh Adam's first step moves every parameter by at most lr, most by nearly lr.
        let fresh = OptimizerState::default();
        let d = one_step(&ctx, &data, 0, AttackSteps::OwnOptimizer, &fresh);
        let biggest = d.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(
            biggest <= lr as f32 * 1.0001 && biggest > 0.9 * lr as f32,
            "{biggest}"
        );
        let sgd = one_step(&ctx, &data, 0, AttackSteps::Sgd, &fresh);
        assert_ne!(d, sgd, "plain SGD steps are another update");
        // From a kept state: the same step twice, and the state untouched.
        let mut state = OptimizerState::default();
        let mut r = fl_data::rng::stream(2, "t", &[]);
        train_local_with(&spec, &global, &data, &train, &mut r, &mut state);
        let steps = |s: &OptimizerState| match s.optimizer() {
            Some(Optimizer::Adam(a)) => a.steps(),
            _ => -1,
        };
        assert_eq!(steps(&state), 1);
        let a = one_step(&ctx, &data, 0, AttackSteps::OwnOptimizer, &state);
        let b = one_step(&ctx, &data, 0, AttackSteps::OwnOptimizer, &state);
        assert_eq!(a, b);
        assert_eq!(steps(&state), 1, "restored");
        assert_ne!(a, d, "the kept moments shape the step");
    }

    #[test]
    fn the_authors_choice_by_hand() {
        // Cumulative covers (2, 2), (4, 4), (6, 6) at factor 0.5 on the poison (0, -2):
        // candidates (1, -1), (3, 1), (6, 4).
        let poison = vec![0.0f32, -2.0];
        let covers = vec![vec![2.0f32, 2.0], vec![4.0, 4.0], vec![6.0, 6.0]];
        // Angle, references along the axes (bound 90 degrees): (1, -1) is 135 degrees from
        // (0, 1); (3, 1) is at most 71.6 and (6, 4) at most 56.3 degrees away, so the
        // larger angle, (3, 1), is sent.
        let axes = vec![vec![1.0f32, 0.0], vec![0.0, 1.0]];
        let a = authors_choice(&poison, &covers, 0.5, &axes, Constraint::Angle);
        assert_eq!(a.delta, vec![3.0, 1.0]);
        assert_eq!((a.log.feasible, a.log.masks), (true, 2));
        // Distance, references (3, 0) and (0, 3) (bound 4.24): (1, -1) and (3, 1) are within
        // it, (6, 4) is 5 from (3, 0); the larger norm, (3, 1), is sent.
        let far = vec![vec![3.0f32, 0.0], vec![0.0, 3.0]];
        let d = authors_choice(&poison, &covers, 0.5, &far, Constraint::Distance);
        assert_eq!(d.delta, vec![3.0, 1.0]);
        assert_eq!((d.log.feasible, d.log.masks), (true, 2));
        // Nearly aligned references leave nothing feasible: the last candidate goes.
        let tight = vec![vec![1.0f32, 0.0], vec![1.0, 0.01]];
        let n = authors_choice(&poison, &covers, 0.5, &tight, Constraint::Angle);
        assert_eq!(n.delta, vec![6.0, 4.0]);
        assert_eq!((n.log.feasible, n.log.masks), (false, 3));
    }

    #[test]
    fn the_authors_craft_steps_the_attackers_own_optimizer_and_keeps_it() {
        use fl_core::backprop::Optimizer;
        use fl_core::train::OptimizerKind;
        let (spec, shape) = mlp_on_kernels();
        let global = spec.initial_params(3);
        let mut rng = fl_data::rng::stream(1, "test-images", &[]);
        let mut images = |n: usize| {
            LocalData::new(
                (0..n * shape.pixels())
                    .map(|_| rand::RngExt::random_range(&mut rng, -1.0f32..1.0))
                    .collect(),
                (0..n).map(|i| (i % 10) as u8).collect(),
                shape,
            )
        };
        let (targets, mask) = (images(6), images(40));
        let train = TrainConfig {
            lr: 1e-3,
            batch_size: 16,
            optimizer: OptimizerKind::Adam,
            keep_optimizer_state: true,
            ..Default::default()
        };
        let cfg = MiaConfig {
            craft: Craft::Authors,
            greedy_steps: 2,
            ..Default::default()
        };
        let wrong: Vec<u8> = targets.labels.iter().map(|y| (y + 1) % 10).collect();
        let mut attacker = Attacker::new(&cfg, &targets, &wrong, mask, vec![(0, images(4))]);
        let refs: Vec<fl_core::Update> = (1..3)
            .map(|k| fl_core::Update {
                client: k,
                delta: (0..global.len())
                    .map(|i| ((i + k) % 7) as f32 - 3.0)
                    .collect(),
                num_samples: 10,
                train_loss: 0.0,
            })
            .collect();
        let ctx = RoundContext {
            round: 4,
            seed: 7,
            global: &global,
            spec: &spec,
            train: &train,
            sampled: &[0, 1, 2],
            benign_updates: &refs,
            server: None,
        };
        let mut state = OptimizerState::default();
        let (poison, covers) = attacker.authors_updates(&ctx, &mut state);
        let steps = |s: &OptimizerState| match s.optimizer() {
            Some(Optimizer::Adam(a)) => a.steps(),
            _ => -1,
        };
        // One poison step, then per try 40 covers in batches of 16: 3 steps, so 1 + 2 x 3.
        assert_eq!(steps(&state), 7);
        assert_eq!(covers.len(), 2);
        // The parameters carry over from one try to the next: the second cumulative cover
        // update is further from the start than the first.
        assert!(norm(&covers[1]) > norm(&covers[0]));
        assert!(norm(&poison) > 0.0);
        // The round's update continues the same optimizer: 7 more steps.
        let sent = attacker.malicious_update(&ctx, &mut state);
        assert_eq!(steps(&state), 14);
        assert_eq!(attacker.log()[&4].references, 2);
        assert_eq!(
            attacker.malicious_update(&ctx, &mut state),
            sent,
            "once per round"
        );
        assert_eq!(steps(&state), 14);
    }

    #[test]
    fn best_norm_selection_sends_the_largest_candidate_seen_not_the_last() {
        // Benign updates 90 degrees apart: a candidate is feasible while x >= 0 and y >= 0.
        let r = vec![vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 0.0]];
        let g = vec![0.1, 0.1, 0.0];
        // Round 1 picks mask 0 (candidate (5.1, 0.3), norm 5.11, against (0.2, 1.1) for mask
        // 1); round 2 can only add mask 1: mean (2.55, 0.6) + g = (2.65, 0.7), norm 2.74.
        let masks = vec![vec![5.0, 0.2, 0.0], vec![0.1, 1.0, 0.0]];
        let last = greedy(
            &g,
            &masks,
            &r,
            Constraint::Angle,
            5,
            &[1.0],
            Selection::Final,
        );
        assert_eq!(last.log.masks, 2);
        let best = greedy(
            &g,
            &masks,
            &r,
            Constraint::Angle,
            5,
            &[1.0],
            Selection::BestNorm,
        );
        assert_eq!(best.log.masks, 1);
        let near = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        assert!(near(&last.delta, &[2.65, 0.7, 0.0]), "{:?}", last.delta);
        assert!(near(&best.delta, &[5.1, 0.3, 0.0]), "{:?}", best.delta);
        assert!(best.log.norm > last.log.norm && best.log.feasible);
        // With one step the two agree.
        let one = |s| greedy(&g, &masks, &r, Constraint::Angle, 1, &[1.0], s).delta;
        assert_eq!(one(Selection::Final), one(Selection::BestNorm));
    }

    #[test]
    fn a_smaller_alpha_lets_masks_hide_the_poison() {
        let r = refs();
        // The poison points away from the benign updates; a small multiple of it beside a
        // benign-looking mask stays within 60 degrees.
        let g = vec![-1.0, 0.0, 0.0];
        let masks = vec![vec![1.0, 1.0, 0.0]];
        let c = greedy(
            &g,
            &masks,
            &r,
            Constraint::Angle,
            5,
            &alpha_grid(10.0, 0.01),
            Selection::Final,
        );
        assert!(c.log.feasible && c.log.masks == 1);
        assert!(c.log.alpha < 1.0 && c.log.alpha > 0.01, "{}", c.log.alpha);
        assert!(c.log.worst <= c.log.bound + 1e-6);
        let grid = alpha_grid(10.0, 0.01);
        assert_eq!((grid[0], *grid.last().unwrap()), (10.0, 0.01));
        assert!(grid.windows(2).all(|w| w[0] > w[1]));
    }

    #[test]
    fn measured_through_products_as_when_formed() {
        use rand::RngExt;
        let mut rng = fl_data::rng::stream(3, "test", &[]);
        let mut vecs = |n: usize, shift: f32| -> Vec<Vec<f32>> {
            (0..n)
                .map(|_| {
                    (0..40)
                        .map(|_| rng.random_range(-1.0..1.0) + shift)
                        .collect()
                })
                .collect()
        };
        let refs = vecs(6, 0.6);
        let masks = vecs(12, 0.3);
        let g = vecs(1, -0.1).remove(0);
        for constraint in [Constraint::Angle, Constraint::Distance] {
            let c = greedy(
                &g,
                &masks,
                &refs,
                constraint,
                3,
                &alpha_grid(4.0, 0.05),
                Selection::Final,
            );
            assert!(c.log.feasible, "{constraint:?}");
            assert!(c.log.worst <= c.log.bound + 1e-6);
            let direct = direct_greedy(&g, &masks, &refs, constraint, 3, &alpha_grid(4.0, 0.05));
            assert_eq!(c.delta.len(), direct.len());
            for (a, b) in c.delta.iter().zip(&direct) {
                assert!((a - b).abs() < 1e-5, "{constraint:?}: {a} vs {b}");
            }
        }
    }

    /// The same search with every candidate formed as a vector (the test's oracle).
    fn direct_greedy(
        g: &[f32],
        masks: &[Vec<f32>],
        refs: &[Vec<f32>],
        constraint: Constraint,
        steps: usize,
        alphas: &[f64],
    ) -> Vec<f32> {
        let bound = constraint.bound(refs);
        let form = |a: f64, chosen: &[usize]| -> Vec<f32> {
            let mut v: Vec<f32> = g.iter().map(|&x| a as f32 * x).collect();
            for &c in chosen {
                for (d, m) in v.iter_mut().zip(&masks[c]) {
                    *d += m / chosen.len() as f32;
                }
            }
            v
        };
        let ok = |v: &[f32]| constraint.worst(v, refs) <= bound;
        for (i, &a0) in alphas.iter().enumerate() {
            let mut chosen: Vec<usize> = Vec::new();
            for _ in 0..steps {
                let best = (0..masks.len())
                    .filter(|c| !chosen.contains(c))
                    .map(|c| {
                        let mut with = chosen.clone();
                        with.push(c);
                        let v = form(a0, &with);
                        (c, norm(&v), ok(&v))
                    })
                    .filter(|x| x.2)
                    .fold(None::<(usize, f64)>, |b, (c, n, _)| match b {
                        Some((_, bn)) if bn >= n => b,
                        _ => Some((c, n)),
                    });
                match best {
                    Some((c, _)) => chosen.push(c),
                    None => break,
                }
            }
            if !chosen.is_empty() {
                let a = alphas[..i]
                    .iter()
                    .copied()
                    .find(|&a| ok(&form(a, &chosen)))
                    .unwrap_or(a0);
                return form(a, &chosen);
            }
        }
        panic!("the test's vectors always admit a mask");
    }

    #[test]
    fn nothing_feasible_falls_back_to_the_poison_update() {
        let r = refs();
        let g = vec![-1.0, -1.0, 0.0]; // 135 degrees from both: beyond the bound
        let c = greedy(
            &g,
            &[vec![0.0, 0.0, 1.0]],
            &r,
            Constraint::Angle,
            5,
            &[1.0],
            Selection::Final,
        );
        assert!(!c.log.feasible);
        assert_eq!(c.delta, g);
        assert_eq!(c.log.masks, 0);
        // One reference gives no bound: always the fallback.
        let c = greedy(
            &[1.0, 0.0, 0.0],
            &[],
            &r[..1],
            Constraint::Angle,
            5,
            &[1.0],
            Selection::Final,
        );
        assert!(!c.log.feasible);
    }

    #[test]
    fn distance_constraint_limits_the_norm() {
        let r = refs();
        let g = vec![0.1, 0.1, 0.0];
        let c = greedy(
            &g,
            &[],
            &r,
            Constraint::Distance,
            1,
            &alpha_grid(100.0, 0.01),
            Selection::Final,
        );
        // alpha (0.1, 0.1) within distance 1 of (1, 0): (1 - x)^2 + x^2 <= 1, x = alpha / 10,
        // so alpha <= 10; the grid's next value below is 100 / 1.2^13 = 9.35.
        assert!(c.log.feasible);
        assert!(c.log.worst <= c.log.bound + 1e-6);
        assert!(c.log.alpha > 9.0 && c.log.alpha < 10.0, "{}", c.log.alpha);
    }
}
