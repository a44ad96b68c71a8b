//! The robust rules and the model-poisoning attacks against an independent implementation:
//! ByzFL (PyPI `byzfl`, EPFL), fed the same seeded update vectors through
//! `bench/byzfl_check.py`. Every rule and attack the two share must agree within float
//! tolerance (ours sums in f64 over f32 inputs; ByzFL computes in float64).
//!
//! Where the definitions differ, the pairing says whose this lab follows:
//! - Krum and Multi-Krum: Blanchard et al. score each update by its n - f - 2 nearest
//!   neighbours (ours); ByzFL by n - f - 1, so our `f` is ByzFL's `f - 1`; Multi-Krum keeps
//!   `m` (ours, default n - f) where ByzFL keeps n - f of its own f.
//! - Trimmed mean: ours trims floor(beta n) per side, ByzFL `f`.
//! - Centered clipping: ours keeps the last aggregate as the next round's center; one call
//!   from a zero center is ByzFL's `CenteredClipping(m=None)`.
//! - The adaptive attacks (ByzFL's `Optimal_*`) run ByzFL's search against our copy of the
//!   rule; the rule pairs are those above.
//! - Nearest-neighbour mixing is a pre-aggregation step in both; ours composes by name
//!   (`nnm+median`), ByzFL applies `NNM` and then the aggregator.
//!
//! Needs python3 with `byzfl` (`pip install byzfl`; torch comes with it). Without it the test
//! says so and passes, unless `FL_REQUIRE_BYZFL=1` (CI sets it). `FL_PYTHON` names the
//! interpreter (default `python3`).

use fl_core::{Aggregator, ServerRound, Update};
use fl_data::rng::stream;
use fl_defense::{
    CenteredClipParams, DefenseConfig, GeoMed, Krum, Median, MultiKrum, RuleParams, TrimmedMean,
};
use fl_poison::model::adaptive::{AdaptiveAttack, Scaled, SearchParams};
use fl_poison::model::alie::Alie;
use fl_poison::model::ipm::Ipm;
use fl_poison::model::sign_flip::SignFlip;
use fl_poison::model::{Craft, CraftContext};
use rand::RngExt;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

/// `n` seeded vectors of `d` values: a common direction plus noise, the last `outliers`
/// pushed far away (so that the rules have something to remove).
fn vectors(seed: u64, n: usize, d: usize, outliers: usize) -> Vec<Vec<f32>> {
    let mut rng = stream(seed, "byzfl-check", &[]);
    let base: Vec<f32> = (0..d).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    (0..n)
        .map(|i| {
            let far = i >= n - outliers;
            base.iter()
                .map(|b| {
                    let noise = rng.random_range(-0.5f32..0.5);
                    if far {
                        -5.0 * b + 3.0 * noise
                    } else {
                        b + noise
                    }
                })
                .collect()
        })
        .collect()
}

/// One comparison: our output and what ByzFL is asked to compute (after its `pre` steps).
struct Case {
    name: String,
    ours: Vec<f32>,
    byzfl: &'static str,
    params: Value,
    pre: Value,
    vectors: Vec<Vec<f32>>,
}

fn aggregate(rule: &mut dyn Aggregator, v: &[Vec<f32>]) -> Vec<f32> {
    let updates: Vec<Update> = v
        .iter()
        .enumerate()
        .map(|(i, d)| Update {
            client: i,
            delta: d.clone(),
            num_samples: 100,
            train_loss: 0.0,
        })
        .collect();
    let global = vec![0.0f32; v[0].len()];
    let round = ServerRound {
        round: 1,
        seed: 1,
        global: &global,
        server: None,
    };
    rule.aggregate(&round, &updates).unwrap().delta
}

fn crafted(attack: &mut dyn Craft, v: &[Vec<f32>], malicious: usize) -> Vec<f32> {
    let refs: Vec<&[f32]> = v.iter().map(Vec::as_slice).collect();
    let global = vec![0.0f32; v[0].len()];
    attack
        .craft(
            &refs,
            CraftContext {
                round: 1,
                seed: 1,
                global: &global,
                malicious,
                client: 0,
                server: None,
            },
        )
        .unwrap()
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for (seed, n, d, outliers) in [(1, 10, 40, 2), (2, 7, 25, 1), (3, 12, 60, 3)] {
        let v = vectors(seed, n, d, outliers);
        let mut composed =
            |name: &str, ours: Vec<f32>, byzfl: &'static str, params: Value, pre: Value| {
                out.push(Case {
                    name: format!("{name} (n {n}, d {d}, seed {seed})"),
                    ours,
                    byzfl,
                    params,
                    pre,
                    vectors: v.clone(),
                })
            };
        for f in [1usize, 2] {
            let defense = DefenseConfig::from_table(
                format!(
                    "[nnm]\nf = {f}\n[trimmed-mean]\nbeta = {}",
                    (f as f64 + 0.5) / n as f64
                )
                .parse()
                .unwrap(),
            )
            .unwrap();
            let nnm = json!([["NNM", { "f": f }]]);
            let rule = |name: &str| aggregate(defense.build(name).unwrap().as_mut(), &v);
            composed(
                &format!("nnm f {f} + fedavg"),
                rule("nnm+fedavg"),
                "Average",
                json!({}),
                nnm.clone(),
            );
            composed(
                &format!("nnm f {f} + median"),
                rule("nnm+median"),
                "Median",
                json!({}),
                nnm.clone(),
            );
            composed(
                &format!("nnm f {f} + trimmed-mean"),
                rule("nnm+trimmed-mean"),
                "TrMean",
                json!({ "f": f }),
                nnm,
            );
        }
        let mut case = |name: &str, ours: Vec<f32>, byzfl: &'static str, params: Value| {
            composed(name, ours, byzfl, params, json!([]))
        };
        case("median", aggregate(&mut Median {}, &v), "Median", json!({}));
        case(
            "mean",
            aggregate(&mut fl_core::Mean, &v),
            "Average",
            json!({}),
        );
        for f in [1usize, 2] {
            let beta = (f as f64 + 0.5) / n as f64;
            case(
                &format!("trimmed-mean f {f}"),
                aggregate(&mut TrimmedMean { beta }, &v),
                "TrMean",
                json!({ "f": f }),
            );
            case(
                &format!("krum f {f}"),
                aggregate(&mut Krum { f }, &v),
                "Krum",
                json!({ "f": f + 1 }),
            );
            case(
                &format!("multi-krum f {f}"),
                aggregate(
                    &mut MultiKrum {
                        f,
                        m: Some(n - f - 1),
                    },
                    &v,
                ),
                "MultiKrum",
                json!({ "f": f + 1 }),
            );
        }
        case(
            "geomed",
            aggregate(&mut GeoMed::default(), &v),
            "GeometricMedian",
            json!({ "nu": 0.1, "T": 3 }),
        );
        for (tau, iterations) in [(1.0, 1usize), (0.5, 3)] {
            let mut rule = CenteredClipParams { tau, iterations }.build();
            case(
                &format!("centered-clip tau {tau} x{iterations}"),
                aggregate(rule.as_mut(), &v),
                "CenteredClipping",
                json!({ "tau": tau, "L": iterations }),
            );
        }
        let honest = &v[..n - outliers];
        let mut attack = |name: &str, ours: Vec<f32>, byzfl: &'static str, params: Value| {
            out.push(Case {
                name: format!("{name} (n {}, d {d}, seed {seed})", honest.len()),
                ours,
                byzfl,
                params,
                pre: json!([]),
                vectors: honest.to_vec(),
            })
        };
        attack(
            "sign-flip",
            crafted(&mut SignFlip, honest, outliers),
            "SignFlipping",
            json!({}),
        );
        attack(
            "ipm tau 0.5",
            crafted(&mut Ipm { tau: 0.5 }, honest, outliers),
            "InnerProductManipulation",
            json!({ "tau": 0.5 }),
        );
        attack(
            "alie tau 1.5",
            crafted(&mut Alie { tau: 1.5 }, honest, outliers),
            "ALittleIsEnough",
            json!({ "tau": 1.5 }),
        );
        // The adaptive attacks against three rules, as many copies as there were outliers
        // (n honest + f copies: the rule pairs of the cases above).
        let f = outliers;
        let total = honest.len() + f;
        type MakeRule = Box<dyn Fn() -> Box<dyn Aggregator>>;
        let rules: [(&str, MakeRule, Value); 3] = [
            (
                "median",
                Box::new(|| Box::new(Median {})),
                json!({ "$byzfl": "Median", "params": {} }),
            ),
            (
                "trimmed-mean",
                Box::new(move || {
                    Box::new(TrimmedMean {
                        beta: (f as f64 + 0.5) / total as f64,
                    })
                }),
                json!({ "$byzfl": "TrMean", "params": { "f": f } }),
            ),
            (
                "krum",
                Box::new(move || Box::new(Krum { f: f - 1 })),
                json!({ "$byzfl": "Krum", "params": { "f": f } }),
            ),
        ];
        for (rule, ours, theirs) in rules {
            for (scaled, name, byzfl) in [
                (
                    Scaled::Ipm,
                    "ipm-adaptive",
                    "Optimal_InnerProductManipulation",
                ),
                (Scaled::Alie, "alie-adaptive", "Optimal_ALittleIsEnough"),
            ] {
                let mut a = AdaptiveAttack::new(scaled, SearchParams::default(), ours()).unwrap();
                let v = crafted(&mut a, honest, f);
                let tau = a.strength().unwrap();
                attack(
                    &format!("{name} vs {rule} (tau {tau:.3})"),
                    v,
                    byzfl,
                    json!({ "agg": theirs, "pre_agg_list": [], "f": f }),
                );
            }
        }
    }
    out
}

#[test]
fn rules_and_attacks_agree_with_byzfl() {
    let python = std::env::var("FL_PYTHON").unwrap_or_else(|_| "python3".into());
    let required = std::env::var("FL_REQUIRE_BYZFL").is_ok_and(|v| v == "1");
    let probe = Command::new(&python).args(["-c", "import byzfl"]).output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        let why = match &probe {
            Ok(o) => String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .to_string(),
            Err(e) => e.to_string(),
        };
        assert!(
            !required,
            "FL_REQUIRE_BYZFL=1 but {python} cannot import byzfl: {why}"
        );
        println!("skipped: {python} cannot import byzfl ({why}); pip install byzfl to run it");
        return;
    }
    let cases = cases();
    let tmp = fl_data::scratch::ScratchDir::new("byzfl").unwrap();
    let input: Vec<Value> = cases
        .iter()
        .map(
            |c| json!({ "byzfl": c.byzfl, "params": c.params, "pre": c.pre, "vectors": c.vectors }),
        )
        .collect();
    let (cases_path, out_path) = (tmp.path().join("cases.json"), tmp.path().join("out.json"));
    std::fs::write(&cases_path, serde_json::to_string(&input).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/byzfl_check.py");
    let o = Command::new(&python)
        .arg(&script)
        .arg(&cases_path)
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let theirs: Value = serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    let outputs = theirs["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), cases.len());
    let mut worst = 0.0f64;
    for (c, t) in cases.iter().zip(outputs) {
        let t: Vec<f64> = t
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(t.len(), c.ours.len(), "{}", c.name);
        for (i, (&a, &b)) in c.ours.iter().zip(&t).enumerate() {
            let err = (a as f64 - b).abs() / b.abs().max(1.0);
            worst = worst.max(err);
            assert!(
                err < 1e-5,
                "{}: coordinate {i}: ours {a}, ByzFL {b}",
                c.name
            );
        }
    }
    // The searches are not trivial: they settle on different strengths, most above zero.
    let taus: Vec<&str> = cases
        .iter()
        .filter_map(|c| c.name.split("(tau ").nth(1))
        .filter_map(|t| t.split(')').next())
        .collect();
    println!("adaptive strengths: {}", taus.join(" "));
    let positive = taus.iter().filter(|t| !t.starts_with("0.000")).count();
    assert!(positive * 2 > taus.len(), "{taus:?}");
    println!(
        "{} cases agree with ByzFL {} (largest relative difference {worst:.1e})",
        cases.len(),
        theirs["byzfl"]
    );
}
