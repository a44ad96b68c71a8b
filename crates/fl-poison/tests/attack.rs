//! The adversary inside a federation on the bundled fixtures.

use fl_core::experiment::Experiment;
use fl_core::participant::RoundContext;
use fl_core::{FedConfig, MaliciousClients};
use fl_data::partition::{PartitionConfig, Withhold};
use fl_gan::GanConfig;
use fl_poison::{Adversary, AttackConfig, AttackMethod, AttackRun};

fn fixtures() -> std::path::PathBuf {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures").into()
}

/// 4 clients x 300 fixture images, 3 rounds, 500 test images.
fn fed() -> FedConfig {
    FedConfig {
        data_dir: fixtures(),
        clients: 4,
        rounds: 3,
        test_samples: Some(500),
        threads: 2,
        seed: 5,
        partition: PartitionConfig {
            samples_per_client: Some(300),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn attack(method: AttackMethod) -> AttackConfig {
    AttackConfig {
        method,
        generate: 3,
        target: 8,
        start_round: 2,
        n_fake: 40,
        n_poison: 40,
        fidelity_samples: 0,
        gan: GanConfig {
            steps: 4,
            batch_size: 16,
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn the_gan_adversary_owns_no_image_of_g_and_the_others_do() {
    let run = AttackRun::build(&fed(), &attack(AttackMethod::Gan)).unwrap();
    let labels = &run.prepared.train.labels;
    let of = |k: usize| {
        run.prepared.parts[k]
            .iter()
            .filter(|&&i| labels[i] == 3)
            .count()
    };
    assert_eq!(of(0), 0);
    assert_eq!(run.prepared.parts[0].len(), 300);
    assert!((1..4).all(|k| of(k) > 0));
    // Label flipping needs G in the adversary's data.
    let flip = AttackRun::build(&fed(), &attack(AttackMethod::LabelFlip)).unwrap();
    let labels = &flip.prepared.train.labels;
    assert!(flip.prepared.parts[0].iter().any(|&i| labels[i] == 3));
}

#[test]
fn the_benign_twin_is_exactly_a_benign_client() {
    let mut run = AttackRun::build(&fed(), &attack(AttackMethod::None)).unwrap();
    let rows = run.run(&mut |_| {}).unwrap();
    let mut plain_cfg = fed();
    plain_cfg.partition.withhold.push(Withhold {
        classes: vec![3],
        clients: vec![0],
    });
    let mut plain = Experiment::build(&plain_cfg).unwrap();
    let plain_rows = plain.federation.run(&mut |_| {}).unwrap();
    for (a, b) in rows.iter().zip(&plain_rows) {
        assert_eq!(a.base.test, b.test);
        assert_eq!(a.base.train_loss, b.train_loss);
    }
    assert_eq!(run.federation.global(), plain.federation.global());
    // The baseline still marks the period the attack would have covered.
    assert_eq!(run.adversary.log().started_at, Some(2));
    assert_eq!(
        rows.iter().map(|r| r.attack_period).collect::<Vec<_>>(),
        [false, true, true]
    );
}

#[test]
fn a_seeded_gan_attack_gives_identical_numbers_twice() {
    let once = || {
        let mut run = AttackRun::build(&fed(), &attack(AttackMethod::Gan)).unwrap();
        let rows = run.run(&mut |_| {}).unwrap();
        (
            rows,
            run.federation.global().to_vec(),
            run.adversary.log().clone(),
        )
    };
    let (a_rows, a_global, a_log) = once();
    let (b_rows, b_global, b_log) = once();
    assert_eq!(a_global, b_global);
    for (a, b) in a_rows.iter().zip(&b_rows) {
        assert_eq!(a.scores, b.scores);
        assert_eq!(a.adversary, b.adversary);
    }
    assert_eq!(a_log.rounds, b_log.rounds);
    // Attack rounds train on own data + 40 fake + 40 poison images; round 1 is benign.
    let r1 = &a_log.rounds[&1];
    assert!(!r1.attacking && r1.gan.is_none() && r1.local_samples == 300);
    let r2 = &a_log.rounds[&2];
    assert!(r2.attacking && r2.gan.is_some() && r2.local_samples == 380);
}

/// The adversary's update in round 2 of the run, from the run's global parameters.
fn update_with_boost(boost: f64) -> Vec<f32> {
    let cfg = AttackConfig {
        boost,
        ..attack(AttackMethod::LabelFlip)
    };
    let run = AttackRun::build(&fed(), &cfg).unwrap();
    let spec = run.prepared.spec.clone();
    let global = spec.initial_params(1);
    let mut adv = Adversary::new(
        run.prepared.client_data(0),
        &cfg,
        &run.prepared.config.train,
        &spec,
        5,
    );
    let ctx = RoundContext {
        round: 2,
        seed: 5,
        global: &global,
        spec: &spec,
        train: &run.prepared.config.train,
        server: None,
        sampled: &[],
        benign_updates: &[],
    };
    adv.update(0, &ctx).unwrap().delta
}

#[test]
fn boosting_multiplies_the_malicious_update() {
    let one = update_with_boost(1.0);
    let three = update_with_boost(3.0);
    assert!(one.iter().any(|&d| d != 0.0));
    for (a, b) in one.iter().zip(&three) {
        assert!(
            (a * 3.0 - b).abs() <= 1e-6 * b.abs().max(1e-3),
            "{a} x 3 != {b}"
        );
    }
}

#[test]
fn an_unreached_start_accuracy_keeps_the_adversary_benign() {
    let cfg = AttackConfig {
        start_accuracy: Some(1.0),
        ..attack(AttackMethod::Gan)
    };
    let mut run = AttackRun::build(&fed(), &cfg).unwrap();
    let rows = run.run(&mut |_| {}).unwrap();
    let log = run.adversary.log();
    assert_eq!(log.started_at, None);
    assert!(log.rounds.values().all(|r| !r.attacking));
    // It measured the global model on its own data from the start round on.
    assert!(log.rounds[&1].own_accuracy.is_none());
    assert!(log.rounds[&2].own_accuracy.is_some());
    assert!(rows.iter().all(|r| !r.attack_period));
    let s = run.summary(&rows, None);
    assert_eq!((s.attack_start, s.avg_attack_accuracy), (None, None));
}

#[test]
fn invalid_attacks_are_refused_before_any_work() {
    let e = |a: AttackConfig| AttackRun::build(&fed(), &a).err().unwrap().to_string();
    let mut a = attack(AttackMethod::Gan);
    a.target = 3;
    assert!(e(a).contains("must differ"));
    let mut a = attack(AttackMethod::Gan);
    a.adversary = 4;
    assert!(e(a).contains("4 clients"));
}

/// A test rule: the mean of the updates no longer than this many times the median norm (the
/// shortest at least).
struct DropLong(f64);

impl fl_core::Aggregator for DropLong {
    fn state(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
    }

    fn aggregate(
        &mut self,
        _: &fl_core::ServerRound<'_>,
        updates: &[fl_core::Update],
    ) -> fl_core::Result<fl_core::Aggregate> {
        let norms: Vec<f64> = updates
            .iter()
            .map(|u| fl_core::geometry::norm(&u.delta))
            .collect();
        let mut sorted = norms.clone();
        sorted.sort_by(f64::total_cmp);
        let bound = (self.0 * sorted[sorted.len() / 2]).max(sorted[0]);
        let kept: Vec<&fl_core::Update> = updates
            .iter()
            .zip(&norms)
            .filter(|(_, n)| **n <= bound)
            .map(|(u, _)| u)
            .collect();
        let deltas: Vec<&[f32]> = kept.iter().map(|u| u.delta.as_slice()).collect();
        Ok(fl_core::Aggregate::new(
            fl_core::geometry::mean(&deltas),
            kept.iter().map(|u| u.client).collect(),
        ))
    }
}

#[test]
fn an_adaptive_boost_is_the_largest_the_rule_lets_through() {
    let cfg = AttackConfig {
        boost: 8.0,
        adaptive_boost: true,
        ..attack(AttackMethod::LabelFlip)
    };
    let boosts = |rule: fn() -> Box<dyn fl_core::Aggregator>| -> (Vec<Option<f64>>, Vec<bool>) {
        let mut run = AttackRun::build_with(&fed(), &cfg, rule())
            .unwrap()
            .with_attacker_rule(rule());
        let rows = run.run(&mut |_| {}).unwrap();
        let b = (1..=3)
            .map(|r| run.adversary.log().rounds[&r].boost)
            .collect();
        let kept = rows.iter().map(|r| r.base.kept.contains(&0)).collect();
        (b, kept)
    };
    // The mean keeps everything, so the largest boost moves it farthest.
    let (mean, _) = boosts(|| Box::new(fl_core::FedAvg));
    assert_eq!(mean, [None, Some(8.0), Some(8.0)], "round 1 is benign");
    // A rule that drops long updates: a boost it still keeps, and the adversary is kept.
    let (drop, kept) = boosts(|| Box::new(DropLong(1.5)));
    for b in &drop[1..] {
        let b = b.expect("an attack round");
        assert!((1.0..=1.5).contains(&b), "{drop:?}");
    }
    assert_eq!(kept, [true, true, true]);
    // A rule that keeps only the shorter updates: never the adversary at a boost of 1 or
    // more, but a shrunk update once factors below 1 are allowed.
    let short = || -> Box<dyn fl_core::Aggregator> { Box::new(DropLong(0.8)) };
    let (at_least_one, kept) = boosts(short);
    assert_eq!(
        at_least_one[1..],
        [Some(1.0), Some(1.0)],
        "ties go to the smallest"
    );
    assert_eq!(kept[1..], [false, false]);
    let cfg = AttackConfig {
        adaptive_min_boost: 0.125,
        ..cfg.clone()
    };
    let mut run = AttackRun::build_with(&fed(), &cfg, short())
        .unwrap()
        .with_attacker_rule(short());
    let rows = run.run(&mut |_| {}).unwrap();
    let mut picked = Vec::new();
    for r in 2..=3 {
        let b = run.adversary.log().rounds[&r]
            .boost
            .expect("an attack round");
        assert!((0.125..1.0).contains(&b), "round {r}: boost {b}");
        assert!(
            rows[r - 1].base.kept.contains(&0),
            "round {r}: the shrunk update is kept"
        );
        picked.push(b);
    }
    // The summary's mean boost and the share of attack rounds the rule kept the adversary.
    let s = fl_core::Attack::summary(&run.adversary, &run.federation, &rows).unwrap();
    let mean = (picked[0] + picked[1]) / 2.0;
    assert!((s.mean_boost.unwrap() - mean).abs() < 1e-6, "{s:?}");
    assert_eq!(s.adversary_kept_share, Some(1.0));
    // Without the adversary's copy of the rule it says what is missing.
    let mut run = AttackRun::build(&fed(), &cfg).unwrap();
    let e = run.run(&mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("copy of the server's rule"), "{e}");
}
