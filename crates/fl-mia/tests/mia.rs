//! Membership runs on the bundled fixtures: the passive attacker changes nothing, decisions
//! never read the ground truth, crafted updates keep their constraint, same seed same numbers.

use fl_core::eval::evaluate;
use fl_core::experiment::Experiment;
use fl_core::{FedAvg, FedConfig};
use fl_defense::{Atm, ClipBound, NormClip};
use fl_mia::targets::Origin;
use fl_mia::{CoverSource, JudgeOn, MiaConfig, MiaMethod, MiaRun, Pretrain};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn fed(clients: usize, rounds: usize) -> FedConfig {
    let mut c = FedConfig {
        name: "mia-test".into(),
        data_dir: fixtures(),
        clients,
        rounds,
        threads: 2,
        test_samples: Some(400),
        seed: 5,
        ..Default::default()
    };
    c.partition.samples_per_client = Some(100);
    c
}

fn mia(method: MiaMethod) -> MiaConfig {
    MiaConfig {
        method,
        n_targets: 40,
        mask_pool: 20,
        start_round: 2,
        ..Default::default()
    }
}

#[test]
fn a_passive_attacker_leaves_the_training_as_it_was() {
    let cfg = fed(4, 3);
    let mut run = MiaRun::build(&cfg, &mia(MiaMethod::Passive), Box::new(FedAvg)).unwrap();
    let rows = run.run(&mut |_| {}).unwrap();
    let mut plain = Experiment::build(&cfg).unwrap();
    plain.federation.run(&mut |_| {}).unwrap();
    assert_eq!(run.federation.global(), plain.federation.global());
    assert!(rows.iter().all(|r| r.craft.is_none()));
    let s = run.summary(&rows).unwrap();
    assert_eq!(s.malicious_kept_share, None, "no attack rounds");
    assert_eq!(s.best_round, 2.max(s.best_round));
    // Under 50 attack rounds the authors' settled mean is the plain mean; their best counts
    // the rounds before the attack too.
    assert_eq!(s.last50_mean_accuracy, Some(s.mean_accuracy));
    let all = rows
        .iter()
        .map(|r| r.membership.accuracy)
        .fold(0.0, f64::max);
    assert_eq!(s.best_accuracy_all_rounds, Some(all));
    assert!(all >= s.best_accuracy);
}

#[test]
fn judging_the_attackers_model_lags_the_global_one_by_its_staleness() {
    // Without staleness and with every client sampled, the model the attacker holds in round
    // r is the global model after round r - 1: its judgements are the global ones, one round
    // late. Judging never changes training.
    let cfg = fed(4, 4);
    let go = |judge_on| {
        let m = MiaConfig {
            judge_on,
            ..mia(MiaMethod::FedPoisonMia)
        };
        let mut run = MiaRun::build(&cfg, &m, Box::new(FedAvg)).unwrap();
        let rows = run.run(&mut |_| {}).unwrap();
        (rows, run.federation.global().to_vec())
    };
    let (global, g1) = go(JudgeOn::Global);
    let (held, g2) = go(JudgeOn::AttackerModel);
    assert_eq!(g1, g2);
    for r in 1..4 {
        assert_eq!(
            held[r].membership,
            global[r - 1].membership,
            "round {}",
            r + 1
        );
    }
    assert_ne!(held[3].membership, global[3].membership);
}

#[test]
fn pretraining_on_the_targets_teaches_the_model_their_true_labels_before_the_attack() {
    let mut cfg = fed(3, 4);
    cfg.train.epochs = 5;
    cfg.train.lr = 0.1;
    let go = |pretrain_targets| {
        let m = MiaConfig {
            pretrain_targets,
            start_round: 4,
            ..mia(MiaMethod::FedPoisonMia)
        };
        let mut run = MiaRun::build(&cfg, &m, Box::new(FedAvg)).unwrap();
        let samples = run.federation.participants()[0].num_samples();
        for _ in 0..3 {
            run.run_round().unwrap();
        }
        // The non-members (the second half of the targets): only the attacker can have
        // taught the model their labels, so their loss shows it.
        let t = &run.attack.targets.data;
        let half = t.len() / 2;
        let non_members = t.slice(half, t.len());
        let spec = run.federation.spec().clone();
        let e =
            fl_core::eval::evaluate(&spec, run.federation.global(), &non_members, spec.classes());
        (samples, e.loss)
    };
    let (own, plain) = go(false);
    let (with, taught) = go(true);
    assert_eq!(with, own + 40, "its own 100 samples plus the 40 targets");
    // Measured: 0.56 with, 1.06 without.
    assert!(
        taught < 0.75 * plain,
        "non-member loss {taught} with, {plain} without"
    );
}

#[test]
fn a_one_step_pretrain_is_one_step_on_all_its_data_at_once() {
    // The authors' attacker trains before its attack with one optimizer step on all its
    // samples (its own and the targets) as one batch.
    use fl_core::{MaliciousClients, RoundContext};
    let cfg = fed(3, 3);
    let prepared = fl_core::experiment::Prepared::load(&cfg).unwrap();
    let update = |pretrain| {
        let m = MiaConfig {
            pretrain_targets: true,
            pretrain,
            start_round: 3,
            ..mia(MiaMethod::FedPoisonMia)
        };
        let mut run = MiaRun::build(&cfg, &m, Box::new(FedAvg)).unwrap();
        let spec = run.federation.spec().clone();
        let global = run.federation.global().to_vec();
        let ctx = RoundContext {
            round: 1,
            seed: cfg.seed,
            global: &global,
            spec: &spec,
            train: &cfg.train,
            sampled: &[0, 1, 2],
            benign_updates: &[],
            server: None,
        };
        let mut data = prepared.client_data(0);
        data.extend(&run.attack.targets.data);
        let u = run.attack.update(0, &ctx).unwrap();
        (u, data, global, spec)
    };
    let (one, data, global, spec) = update(Pretrain::OneStep);
    assert_eq!(one.num_samples, 140, "its 100 samples and the 40 targets");
    let tc = fl_core::train::TrainConfig {
        batch_size: data.len(),
        ..cfg.train.clone()
    };
    let (local, stats) = fl_core::train::train_local(
        &spec,
        &global,
        &data,
        &tc,
        &mut fl_data::rng::stream(0, "t", &[]),
    );
    assert_eq!(stats.steps, 1);
    let expected: Vec<f32> = local.iter().zip(&global).map(|(l, g)| l - g).collect();
    let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(scale > 1e-4, "the step moves the model");
    let worst = one
        .delta
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst < 1e-5 * scale.max(1.0),
        "differs by {worst} (scale {scale})"
    );
    // Local training takes its 5 batches of 32 instead.
    let (epoch, ..) = update(Pretrain::LocalTraining);
    let apart = epoch
        .delta
        .iter()
        .zip(&one.delta)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(apart > 10.0 * worst.max(1e-6), "{apart}");
}

#[test]
fn a_start_accuracy_starts_the_attack_once_the_model_knows_the_attackers_data() {
    let cfg = fed(4, 6);
    // A pilot without attack: the accuracy on the first malicious client's data of the
    // model each round starts from (an attack changes nothing before it starts).
    let mut pilot = MiaRun::build(&cfg, &mia(MiaMethod::Passive), Box::new(FedAvg)).unwrap();
    let own = pilot.prepared.client_data(0);
    let mut start_acc = Vec::new();
    for _ in 0..6 {
        let spec = pilot.federation.spec().clone();
        start_acc.push(evaluate(&spec, pilot.federation.global(), &own, spec.classes()).accuracy);
        pilot.run_round().unwrap();
    }
    // The best starting accuracy from round 2 on, first met in a later round.
    let threshold = start_acc[1..].iter().copied().fold(0.0, f64::max);
    let expected = (2..=6).find(|&r| start_acc[r - 1] >= threshold).unwrap();
    assert!(expected >= 3, "{start_acc:?}");
    let m = MiaConfig {
        start_accuracy: Some(threshold),
        ..mia(MiaMethod::FedPoisonMia)
    };
    let mut run = MiaRun::build(&cfg, &m, Box::new(FedAvg)).unwrap();
    let rows = run.run(&mut |_| {}).unwrap();
    assert_eq!(run.attack_start(), Some(expected), "{start_acc:?}");
    for r in &rows {
        let attacking = r.base.round >= expected;
        assert_eq!(r.attack_period, attacking, "round {}", r.base.round);
        assert_eq!(r.craft.is_some(), attacking, "round {}", r.base.round);
    }
    assert_eq!(run.summary(&rows).unwrap().start_round, expected);
    // Never reached: no attack round, and the summary says the attack never started.
    let never = MiaConfig {
        start_accuracy: Some(1.0),
        ..mia(MiaMethod::FedPoisonMia)
    };
    let mut run = MiaRun::build(&fed(4, 2), &never, Box::new(FedAvg)).unwrap();
    let rows = run.run(&mut |_| {}).unwrap();
    assert!(rows.iter().all(|r| !r.attack_period && r.craft.is_none()));
    assert!(run.summary(&rows).is_err());
}

#[test]
fn a_cover_reserve_is_held_out_from_every_client_the_targets_and_the_evaluation() {
    let cfg = fed(4, 2);
    let own = MiaRun::build(&cfg, &mia(MiaMethod::FedPoisonMia), Box::new(FedAvg)).unwrap();
    let m = MiaConfig {
        cover_source: CoverSource::Reserve,
        ..mia(MiaMethod::FedPoisonMia)
    };
    let run = MiaRun::build(&cfg, &m, Box::new(FedAvg)).unwrap();
    let covers = run.cover_pool();
    assert_eq!(covers.len(), 20);
    // 20 non-member targets and the 20 covers are out of the evaluation.
    assert_eq!(run.prepared.test.len() + 20, own.prepared.test.len());
    let images = |d: &fl_core::data::LocalData| -> Vec<Vec<u32>> {
        d.images
            .chunks_exact(d.pixels())
            .map(|i| i.iter().map(|v| v.to_bits()).collect())
            .collect()
    };
    let cover_images = images(&covers);
    let attacker = images(&run.prepared.client_data(0));
    let targets = images(&run.attack.targets.data);
    let evaluated = images(&fl_core::data::LocalData::all(&run.prepared.test));
    for c in &cover_images {
        assert!(!attacker.contains(c) && !targets.contains(c) && !evaluated.contains(c));
    }
    // The default draws them from the attacker's own data.
    assert!(
        images(&own.cover_pool())
            .iter()
            .all(|c| attacker.contains(c))
    );
}

#[test]
fn decisions_never_read_the_ground_truth() {
    for method in [MiaMethod::FedPoisonMia, MiaMethod::Passive] {
        let mut run = MiaRun::build(&fed(4, 2), &mia(method), Box::new(FedAvg)).unwrap();
        run.run(&mut |_| {}).unwrap();
        let before = run.judge();
        // Call every target a member, with a made-up owner: the decisions stay.
        for o in run.attack.targets.origin.iter_mut() {
            *o = Origin::Member {
                client: 1,
                index: 0,
            };
        }
        assert_eq!(run.judge(), before, "{method:?}");
    }
}

#[test]
fn crafted_updates_keep_their_constraint_and_runs_repeat() {
    let cfg = FedConfig {
        aggregator: "atm".into(),
        ..fed(8, 3)
    };
    let go = || {
        let rule = Box::new(Atm {
            b: 1,
            ..Default::default()
        });
        let mut run = MiaRun::build(&cfg, &mia(MiaMethod::FedPoisonMia), rule).unwrap();
        let rows = run.run(&mut |_| {}).unwrap();
        let s = run.summary(&rows).unwrap();
        (rows, s)
    };
    let (rows, s) = go();
    assert_eq!(s.aggregator, "atm");
    let crafted: Vec<_> = rows.iter().filter_map(|r| r.craft.as_ref()).collect();
    assert_eq!(crafted.len(), 2, "rounds 2 and 3 attack");
    for c in &crafted {
        assert_eq!(c.references, 7, "full knowledge: the 7 benign updates");
        if c.feasible {
            assert!(c.worst <= c.bound + 1e-6, "{c:?}");
        } else {
            assert_eq!((c.masks, c.alpha), (0, 1.0));
        }
    }
    assert!(rows[0].craft.is_none() && !rows[0].attack_period);
    assert_eq!(s.feasible_rounds.map(|f| f.1), Some(2));
    let (again, s2) = go();
    assert_eq!(s, s2);
    let strip = |r: &fl_mia::MiaRoundMetrics| {
        let mut r = r.clone();
        r.base.time = Default::default();
        r
    };
    assert_eq!(
        rows.iter().map(strip).collect::<Vec<_>>(),
        again.iter().map(strip).collect::<Vec<_>>()
    );
}

#[test]
fn partial_knowledge_measures_against_its_own_clients() {
    let one = MiaConfig {
        knowledge: fl_mia::Knowledge::Partial,
        ..mia(MiaMethod::FedPoisonMia)
    };
    let mut run = MiaRun::build(&fed(4, 2), &one, Box::new(FedAvg)).unwrap();
    let rows = run.run(&mut |_| {}).unwrap();
    assert_eq!(
        rows[1].craft.as_ref().unwrap().references,
        2,
        "two halves of one client"
    );
    let three = MiaConfig {
        malicious: 3,
        ..one
    };
    let mut run = MiaRun::build(&fed(5, 2), &three, Box::new(FedAvg)).unwrap();
    let rows = run.run(&mut |_| {}).unwrap();
    assert_eq!(rows[1].craft.as_ref().unwrap().references, 3);
    assert_eq!((rows[1].malicious_sampled, rows[1].malicious_kept), (3, 3));
}

/// The authors' pooled split on the fixtures: the malicious client holds nothing and trains on
/// the targets, the covers are the reserve (no client's, not in the test set), the passive
/// threshold is calibrated on the reserve.
#[test]
fn the_pooled_split_gives_the_attacker_no_data_and_the_reserve_as_covers() {
    let mut cfg = fed(4, 2);
    cfg.partition.samples_per_client = None;
    cfg.test_samples = None;
    cfg.pool = Some(fl_data::pool::PoolConfig {
        reserve: 30,
        batch: 16,
        ..Default::default()
    });
    let images = |d: &fl_core::data::LocalData| -> Vec<Vec<u8>> {
        d.images
            .chunks_exact(d.pixels())
            .map(|c| {
                c.iter()
                    .map(|&x| ((x + 1.0) * 127.5).round() as u8)
                    .collect()
            })
            .collect()
    };
    let refused = |m: MiaConfig| {
        MiaRun::build(&cfg, &m, Box::new(FedAvg))
            .err()
            .expect("refused")
            .to_string()
    };
    // Covers from its own data, or training on nothing: refused.
    let err = refused(mia(MiaMethod::FedPoisonMia));
    assert!(err.contains("they hold 0"), "{err}");
    let err = refused(MiaConfig {
        cover_source: CoverSource::Reserve,
        ..mia(MiaMethod::FedPoisonMia)
    });
    assert!(err.contains("at least 2 samples"), "{err}");
    let m = MiaConfig {
        cover_source: CoverSource::Reserve,
        pretrain_targets: true,
        ..mia(MiaMethod::FedPoisonMia)
    };
    let mut run = MiaRun::build(&cfg, &m, Box::new(FedAvg)).unwrap();
    let p = &run.prepared;
    assert!(p.parts[0].is_empty());
    let share = p.parts[1].len();
    assert!(share > 0 && share.is_multiple_of(16));
    assert!((1..4).all(|k| p.parts[k].len() == share));
    let reserve = p.reserve.as_ref().unwrap();
    assert_eq!(reserve.len(), 30);
    let covers = images(&run.cover_pool());
    assert_eq!(covers.len(), 20);
    let held: Vec<Vec<u8>> = (0..reserve.len())
        .map(|i| reserve.image(i).to_vec())
        .collect();
    assert!(covers.iter().all(|c| held.contains(c)));
    let elsewhere = images(&fl_core::data::LocalData::all(&p.train));
    let tested = images(&fl_core::data::LocalData::all(&p.test));
    for c in &covers {
        assert!(!elsewhere.contains(c) && !tested.contains(c));
    }
    // Client 0 trains on the targets (true labels) before the attack.
    assert_eq!(
        run.federation.participants()[0].num_samples(),
        run.attack.targets.len()
    );
    run.run(&mut |_| {}).unwrap();

    let passive = MiaConfig {
        pretrain_targets: true,
        ..mia(MiaMethod::Passive)
    };
    let mut run = MiaRun::build(&cfg, &passive, Box::new(FedAvg)).unwrap();
    let rows = run.run(&mut |_| {}).unwrap();
    assert_eq!(rows.len(), 2);
}

#[test]
fn the_adaptive_attacker_sends_the_smallest_factor_that_a_norm_clip_lets_through_whole() {
    let cfg = FedConfig {
        aggregator: "clip".into(),
        ..fed(6, 4)
    };
    let adaptive = MiaConfig {
        adaptive: true,
        adaptive_min_scale: 0.125,
        ..mia(MiaMethod::FedPoisonMia)
    };
    let factors = [0.125, 0.25, 0.5, 1.0];
    // Under the mean the whole crafted update moves the aggregate farthest: the factor is
    // always 1 and the run is the plain attacker's.
    let go = |m: &MiaConfig, rule: fn() -> Box<dyn fl_core::Aggregator>| {
        let mut run = MiaRun::build(&cfg, m, rule())
            .unwrap()
            .with_attacker_rule(rule());
        let rows = run.run(&mut |_| {}).unwrap();
        let s = run.summary(&rows).unwrap();
        (rows, s, run.federation.global().to_vec())
    };
    let mean = || -> Box<dyn fl_core::Aggregator> { Box::new(FedAvg) };
    let (rows, s, global) = go(&adaptive, mean);
    let scales: Vec<Option<f64>> = rows.iter().map(|r| r.adaptive_scale).collect();
    assert_eq!(
        scales,
        [None, Some(1.0), Some(1.0), Some(1.0)],
        "round 1 is benign"
    );
    assert_eq!(s.adaptive_scales, Some((1.0, 1.0, 1.0)));
    let (plain_rows, plain, plain_global) = go(&mia(MiaMethod::FedPoisonMia), mean);
    assert_eq!(global, plain_global);
    assert_eq!(plain.adaptive_scales, None);
    assert!(plain_rows.iter().all(|r| r.adaptive_scale.is_none()));
    // A clip to a fixed norm B passes min(s |d|, B) of the crafted update d along it: the
    // factor picked is the smallest with s |d| >= B (ties go to the smaller), 1 when even
    // the whole update is shorter.
    const B: f64 = 0.05;
    let clip = || -> Box<dyn fl_core::Aggregator> {
        Box::new(NormClip {
            bound: ClipBound::Norm(B),
        })
    };
    let (rows, s, _) = go(&adaptive, clip);
    let mut picked = Vec::new();
    for r in &rows[1..] {
        let norm = r.craft.as_ref().expect("an attack round").norm;
        let want = factors
            .iter()
            .copied()
            .find(|f| f * norm >= B)
            .unwrap_or(1.0);
        assert_eq!(
            r.adaptive_scale,
            Some(want),
            "round {}: |d| = {norm}",
            r.base.round
        );
        picked.push(want);
    }
    assert!(
        picked.iter().any(|&f| f < 1.0),
        "{picked:?}: the bound should bite"
    );
    let min = picked.iter().copied().fold(1.0, f64::min);
    assert_eq!(s.adaptive_scales.map(|a| a.0), Some(min));
    // Without its copy of the rule the adaptive attacker says what is missing.
    let mut run = MiaRun::build(&cfg, &adaptive, clip()).unwrap();
    let e = run.run(&mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("copy of the server's rule"), "{e}");
}
