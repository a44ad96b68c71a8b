//! The robust rules: hand-computed cases, invariants, errors.

use fl_core::{Aggregate, Aggregator, ServerRound, Update};
use fl_data::rng::stream;
use fl_defense::{
    AdaptiveBound, AngleMedian, Atm, ClipBound, DefenseConfig, GaussianDp, Krum, Median, MultiKrum,
    NormClip, TrimmedMean, names,
};
use rand::RngExt;
use rand::seq::SliceRandom;

/// One call of a rule, as round 1 of seed 0 (what the stateless rules do not depend on).
trait Once {
    fn once(&mut self, updates: &[Update]) -> fl_core::Result<Aggregate>;
}

impl<A: Aggregator + ?Sized> Once for A {
    fn once(&mut self, updates: &[Update]) -> fl_core::Result<Aggregate> {
        let round = ServerRound {
            round: 1,
            seed: 0,
            global: &[],
            server: None,
        };
        self.aggregate(&round, updates)
    }
}

fn up(client: usize, delta: Vec<f32>, n: usize) -> Update {
    Update {
        client,
        delta,
        num_samples: n,
        train_loss: 0.0,
    }
}

/// Rule `name` as it stands before its first round, clipping and noise switched off (so that
/// identical updates come back unchanged).
fn fresh(name: &str) -> Box<dyn Aggregator> {
    DefenseConfig::from_table(
        "[clip]\nbound = 1e6\n[dp]\nclip = 1e6\nsigma = 0.0"
            .parse()
            .unwrap(),
    )
    .unwrap()
    .build(name)
    .unwrap()
}

/// Every registered rule by name, as [`fresh`] builds it.
fn all_rules() -> Vec<(&'static str, Box<dyn Aggregator>)> {
    // Every rule, and each pre-aggregation step before one.
    let composed = ["nnm+median", "bucketing+median", "bucketing+nnm+krum"];
    // FLTrust and Fang's rejections use the server's own data, which these plain rounds do not
    // carry: their own files and the CLI's tests cover them.
    names()
        .into_iter()
        .filter(|n| !["fltrust", "fang-lrr-err"].contains(n))
        .chain(composed)
        .map(|n| (n, fresh(n)))
        .collect()
}

/// `n` inliers near (1, -1, 0.5, ...) and, when asked, one far outlier pointing the other way.
fn cloud(n: usize, dim: usize, outlier: bool, seed: u64) -> Vec<Update> {
    let mut rng = stream(seed, "cloud", &[]);
    let mut v: Vec<Update> = (0..n)
        .map(|k| {
            let d = (0..dim)
                .map(|i| {
                    let centre = if i % 2 == 0 { 1.0 } else { -1.0 };
                    centre + 0.1 * (rng.random::<f32>() - 0.5)
                })
                .collect();
            up(k, d, 100)
        })
        .collect();
    if outlier {
        let d = (0..dim)
            .map(|i| if i % 2 == 0 { -50.0 } else { 50.0 })
            .collect();
        v.push(up(n, d, 100));
    }
    v
}

#[test]
fn identical_updates_give_that_update() {
    let d = vec![0.25f32, -1.5, 3.0, 0.0];
    let ups: Vec<Update> = (0..10).map(|k| up(k, d.clone(), 50 + k)).collect();
    for (name, mut r) in all_rules() {
        let a = r.once(&ups).unwrap();
        if name == "foolsgold" {
            // By design: clients that all point the same way are all taken for Sybils.
            assert!(
                a.delta.iter().all(|x| *x == 0.0) && a.kept.is_empty(),
                "{a:?}"
            );
            continue;
        }
        if name == "deepsight-lite" {
            // By design: kept updates are clipped to norm 1 (this one's is 3.36).
            let n = d.iter().map(|x| x * x).sum::<f32>().sqrt();
            for (x, y) in a.delta.iter().zip(&d) {
                assert!((x - y / n).abs() < 1e-6, "{}: {:?}", name, a.delta);
            }
            continue;
        }
        // FLAME adds noise of 0.001 x the median norm (3.36) by design: within 5 sigma.
        let tolerance = if name == "flame" {
            5.0 * 0.001 * 3.36
        } else {
            1e-6
        };
        for (x, y) in a.delta.iter().zip(&d) {
            assert!((x - y).abs() < tolerance, "{}: {:?}", name, a.delta);
        }
    }
}

#[test]
fn the_order_of_the_updates_never_matters() {
    let ups = cloud(9, 12, true, 3);
    let mut rng = stream(4, "shuffle", &[]);
    for (name, mut r) in all_rules() {
        let a = r.once(&ups).unwrap();
        for _ in 0..5 {
            let mut s = ups.clone();
            s.shuffle(&mut rng);
            // A rule with state (centered clipping) is compared from the same start.
            let mut b = fresh(name).once(&s).unwrap();
            b.kept.sort_unstable();
            assert_eq!(b.kept, a.kept, "{}", name);
            if name == "fedavg" {
                // FedAvg sums in arrival order: equal up to rounding.
                let worst = a.delta.iter().zip(&b.delta).map(|(x, y)| (x - y).abs());
                assert!(worst.fold(0.0f32, f32::max) < 1e-6);
            } else {
                assert_eq!(b.delta, a.delta, "{}: bit for bit", name);
            }
        }
    }
}

#[test]
fn a_far_outlier_never_survives_krum_median_or_atm() {
    for seed in 0..20 {
        let ups = cloud(9, 20, true, seed);
        let outlier = 9;
        for name in ["krum", "multi-krum", "atm"] {
            let a = DefenseConfig::default()
                .build(name)
                .unwrap()
                .once(&ups)
                .unwrap();
            assert!(
                !a.kept.contains(&outlier),
                "{name}, seed {seed}: {:?}",
                a.kept
            );
        }
        let m = Median {}.once(&ups).unwrap();
        for (i, x) in m.delta.iter().enumerate() {
            let centre = if i % 2 == 0 { 1.0 } else { -1.0 };
            assert!((x - centre).abs() <= 0.05, "median coordinate {i}: {x}");
        }
        // FedAvg, by contrast, is dragged far away.
        let f = fl_core::FedAvg.once(&ups).unwrap();
        assert!(f.delta[0] < -3.0, "{}", f.delta[0]);
    }
}

#[test]
fn median_and_trimmed_mean_by_hand() {
    let ups = vec![
        up(0, vec![1.0, 10.0], 1),
        up(1, vec![2.0, 20.0], 1),
        up(2, vec![9.0, -5.0], 1),
        up(3, vec![4.0, 0.0], 1),
    ];
    // Sorted columns: [1, 2, 4, 9] and [-5, 0, 10, 20].
    assert_eq!(Median {}.once(&ups).unwrap().delta, vec![3.0, 5.0]);
    let t = TrimmedMean { beta: 0.25 }.once(&ups).unwrap();
    assert_eq!(t.delta, vec![3.0, 5.0]);
    assert_eq!(t.kept, vec![0, 1, 2, 3]);
    let t = TrimmedMean { beta: 0.0 }.once(&ups).unwrap();
    assert_eq!(t.delta, vec![4.0, 6.25]);
    let odd = &ups[..3];
    assert_eq!(Median {}.once(odd).unwrap().delta, vec![2.0, 10.0]);
}

#[test]
fn krum_and_multi_krum_by_hand() {
    // On a line: 0, 1, 2, 10, 11 with f = 1: each score sums the n - f - 2 = 2 smallest
    // squared distances: 0: 1+4=5, 1: 1+1=2, 2: 1+4=5, 10: 1+64=65, 11: 1+81=82.
    let ups: Vec<Update> = [0.0f32, 1.0, 2.0, 10.0, 11.0]
        .iter()
        .enumerate()
        .map(|(k, &x)| up(k, vec![x], 1 + k))
        .collect();
    let k = Krum { f: 1 }.once(&ups).unwrap();
    assert_eq!((k.delta, k.kept), (vec![1.0], vec![1]));
    // m = 3: clients 1, then 0 and 2 (tie, both kept); weights 2, 1, 3 of 6.
    let m = MultiKrum { f: 1, m: Some(3) }.once(&ups).unwrap();
    assert_eq!(m.kept, vec![0, 1, 2]);
    assert!((m.delta[0] - (0.0 * 1.0 + 1.0 * 2.0 + 2.0 * 3.0) / 6.0).abs() < 1e-6);
    // Default m = n - f = 4: drops the worst (11).
    assert_eq!(
        MultiKrum { f: 1, m: None }.once(&ups).unwrap().kept,
        vec![0, 1, 2, 3]
    );
}

#[test]
fn atm_with_equal_weights_averages_the_kept_alike() {
    // Mean angles (degrees, the zero to itself included): 78.75, 65.03, 101.25, 65.03, so
    // b = 1 drops clients 2 and 0 and keeps 1 (3 samples) and 3 (1 sample).
    let ups = vec![
        up(0, vec![1.0, 0.0, 0.0], 1),
        up(1, vec![1.0, 1.0, 0.0], 3),
        up(2, vec![-3.0, 0.0, 0.0], 1),
        up(3, vec![0.0, 0.5, -2.0], 1),
    ];
    let weighted = Atm {
        b: 1,
        equal_weights: false,
    }
    .once(&ups)
    .unwrap();
    let alike = Atm {
        b: 1,
        equal_weights: true,
    }
    .once(&ups)
    .unwrap();
    assert_eq!(weighted.kept, vec![1, 3]);
    assert_eq!(alike.kept, vec![1, 3]);
    assert_eq!(weighted.delta, vec![0.75, 0.875, -0.5]);
    assert_eq!(alike.delta, vec![0.5, 0.75, -1.0]);
}

#[test]
fn atm_by_hand() {
    // Angles to (1, 0): a = 0, b = 90 degrees, c = 180 degrees, d = 0.
    let ups = vec![
        up(0, vec![1.0, 0.0], 1),
        up(1, vec![0.0, 2.0], 1),
        up(2, vec![-3.0, 0.0], 1),
        up(3, vec![2.0, 0.0], 1),
    ];
    let pi = std::f64::consts::PI;
    let v: Vec<&Update> = ups.iter().collect();
    let m = Atm::mean_angles(&v);
    // Client 0: (0 + pi/2 + pi + 0) / 4; client 2: (pi + pi/2 + 0 + pi) / 4 (itself 0).
    assert!((m[0] - 1.5 * pi / 4.0).abs() < 1e-9);
    assert!((m[1] - 1.5 * pi / 4.0).abs() < 1e-9);
    assert!((m[2] - 2.5 * pi / 4.0).abs() < 1e-9);
    // b = 1 drops the two largest mean angles: client 2, then one of 0, 1, 3 (all 1.5 pi / 4);
    // ties keep the lower client ids, so 3 goes.
    let a = Atm {
        b: 1,
        ..Default::default()
    }
    .once(&ups)
    .unwrap();
    assert_eq!(a.kept, vec![0, 1]);
    assert_eq!(a.delta, vec![0.5, 1.0]);
    assert_eq!(
        Atm {
            b: 0,
            ..Default::default()
        }
        .once(&ups)
        .unwrap()
        .kept,
        vec![0, 1, 2, 3]
    );
}

#[test]
fn angle_median_by_hand() {
    // As in atm_by_hand, clients 0, 1 and 3 tie at mean angle 1.5 pi / 4: the lowest id wins,
    // and its update is sent as it is.
    let ups = vec![
        up(0, vec![1.0, 0.0], 1),
        up(1, vec![0.0, 2.0], 1),
        up(2, vec![-3.0, 0.0], 1),
        up(3, vec![2.0, 0.0], 1),
    ];
    let a = AngleMedian {}.once(&ups).unwrap();
    assert_eq!((a.kept, a.delta), (vec![0], vec![1.0, 0.0]));
    // A fifth update tilted by e = atan(0.02) towards client 1: its angles sum to
    // e + (pi/2 - e) + (pi - e) + e = 3 pi / 2, while client 0's are 3 pi / 2 + e. It wins.
    let mut more = ups.clone();
    more.push(up(4, vec![5.0, 0.1], 1));
    let a = AngleMedian {}.once(&more).unwrap();
    assert_eq!(a.kept, vec![4]);
    assert_eq!(a.delta, vec![5.0, 0.1]);
}

#[test]
fn clipping_and_dp_by_hand() {
    let ups = vec![up(0, vec![3.0, 4.0], 1), up(1, vec![0.3, 0.4], 3)];
    // Client 0 is clipped to norm 1: (0.6, 0.8); weights 1 and 3.
    let c = NormClip {
        bound: ClipBound::Norm(1.0),
    }
    .once(&ups)
    .unwrap();
    assert!((c.delta[0] - (0.6 + 3.0 * 0.3) / 4.0).abs() < 1e-6);
    assert!((c.delta[1] - (0.8 + 3.0 * 0.4) / 4.0).abs() < 1e-6);
    // DP without noise: the plain mean of the clipped updates.
    let d = GaussianDp {
        clip: 1.0,
        sigma: 0.0,
    }
    .once(&ups)
    .unwrap();
    assert!((d.delta[0] - 0.45).abs() < 1e-6 && (d.delta[1] - 0.6).abs() < 1e-6);
}

#[test]
fn median_clipping_by_hand() {
    // Norms 1, 2 and 10: the bound is 2, so only client 2 is scaled, to (0, 2).
    let ups = vec![
        up(0, vec![1.0, 0.0], 1),
        up(1, vec![0.0, -2.0], 1),
        up(2, vec![0.0, 10.0], 2),
    ];
    let mut median = NormClip {
        bound: ClipBound::Adaptive(AdaptiveBound::Median),
    };
    let c = median.once(&ups).unwrap();
    assert_eq!(c.kept, vec![0, 1, 2]);
    assert_eq!(c.metrics["clip_bound"], 2.0, "the rule reports its bound");
    assert_eq!(c.metrics["clipped"], 1.0, "and how many it scaled down");
    assert!((c.delta[0] - 0.25).abs() < 1e-6, "{:?}", c.delta);
    assert!(
        (c.delta[1] - (-2.0 + 2.0 * 2.0) / 4.0).abs() < 1e-6,
        "{:?}",
        c.delta
    );
    // Even count: the mean of the middle two norms (2 and 4 -> 3).
    let ups = vec![
        up(0, vec![1.0], 1),
        up(1, vec![2.0], 1),
        up(2, vec![4.0], 1),
        up(3, vec![8.0], 1),
    ];
    let c = median.once(&ups).unwrap();
    assert!((c.delta[0] - (1.0 + 2.0 + 3.0 + 3.0) / 4.0).abs() < 1e-6);
}

#[test]
fn dp_noise_has_the_promised_scale_and_is_seeded() {
    let dim = 20_000;
    let ups: Vec<Update> = (0..4).map(|k| up(k, vec![0.0; dim], 10)).collect();
    let mut dp = GaussianDp {
        clip: 2.0,
        sigma: 0.5,
    };
    let mut noise = |round: usize, seed: u64| {
        let r = ServerRound {
            round,
            seed,
            global: &[],
            server: None,
        };
        dp.aggregate(&r, &ups).unwrap()
    };
    let first = noise(3, 9);
    assert_eq!(first.metrics["noise_std"], 0.5 * 2.0 / 4.0);
    let a = first.delta;
    let mean = a.iter().map(|&x| x as f64).sum::<f64>() / dim as f64;
    let sd = (a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / dim as f64).sqrt();
    let want = 0.5 * 2.0 / 4.0;
    assert!((sd - want).abs() < 0.02 * want, "std {sd}, expected {want}");
    assert!(mean.abs() < 0.01);
    assert_eq!(noise(3, 9).delta, a);
    assert_ne!(noise(4, 9).delta, a, "the round's own noise");
    assert_ne!(noise(3, 10).delta, a, "the seed's own noise");
}

#[test]
fn rules_refuse_what_they_cannot_do() {
    let ups = cloud(4, 3, false, 1);
    let e = Krum { f: 1 }.once(&ups).unwrap_err().to_string();
    assert!(
        e.contains("krum") && e.contains("more than 2f + 2 = 4"),
        "{e}"
    );
    let e = MultiKrum { f: 0, m: Some(5) }
        .once(&ups)
        .unwrap_err()
        .to_string();
    assert!(e.contains("m = 5"), "{e}");
    let e = Atm {
        b: 2,
        ..Default::default()
    }
    .once(&ups)
    .unwrap_err()
    .to_string();
    assert!(e.contains("2b = 4"), "{e}");
    let e = DefenseConfig::default()
        .build("bulyann")
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("unknown aggregator `bulyann`") && e.contains("multi-krum"),
        "{e}"
    );
    for (name, mut r) in all_rules() {
        assert!(r.once(&[]).is_err(), "{}", name);
    }
}
