//! Model poisoning through `fl run` on the fixtures: a seeded run and its summary, the
//! written config running again to the same numbers, what each crafted vector is relative
//! to the benign mean, and a robust rule's verdict in the records.

mod common;

use common::fl;
use fl_data::scratch::ScratchDir;
use std::path::Path;

/// Runs the tiny config with `sets` into `out`; the records without their timings.
fn run(out: &Path, sets: &[&str]) -> Vec<serde_json::Value> {
    common::run_config("configs/tiny/model-poison.toml", out, sets)
}

#[test]
fn a_seeded_run_is_reproducible_from_its_written_config() {
    let tmp = ScratchDir::new("model-poison").unwrap();
    let a = tmp.path().join("a");
    let rows = run(&a, &[]);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["attacking"], false, "the attack starts in round 2");
    assert!(rows[0]["crafted_norm"].is_null());
    for r in &rows[1..] {
        assert_eq!(r["attacking"], true);
        assert_eq!(
            (
                r["malicious_sampled"].as_u64(),
                r["malicious_kept"].as_u64()
            ),
            (Some(2), Some(2))
        );
        assert!(
            r["strength"].as_f64().unwrap() > 0.0,
            "Min-Max found a gamma"
        );
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("summary.json")).unwrap()).unwrap();
    insta::assert_json_snapshot!("tiny_model_poison_summary", summary["attack"]);
    assert!(a.join("poison.png").exists() && a.join("accuracy.png").exists());
    // The written config names its kind and runs again to the same numbers.
    assert_eq!(
        common::rerun_written(&a, &tmp.path().join("b"), "model-poison"),
        rows
    );
}

#[test]
fn each_crafted_vector_stands_where_its_definition_puts_it() {
    let tmp = ScratchDir::new("model-poison-norms").unwrap();
    let norms = |method: &str, extra: &[&str]| -> Vec<(f64, f64)> {
        let m = format!("attack.method={method}");
        let mut sets = vec![m.as_str()];
        sets.extend(extra);
        run(&tmp.path().join(method), &sets)[1..]
            .iter()
            .map(|r| {
                (
                    r["crafted_norm"].as_f64().unwrap(),
                    r["benign_mean_norm"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-5 * b.max(1e-12);
    // Sign flipping: the negated mean, as long as the mean.
    for (c, m) in norms("sign-flip", &[]) {
        assert!(close(c, m), "{c} {m}");
    }
    // IPM with tau 0.5: half as long.
    for (c, m) in norms("ipm", &["attack.ipm.tau=0.5"]) {
        assert!(close(c, 0.5 * m), "{c} {m}");
    }
    // Gaussian noise of sigma 0.01 over 21891 coordinates: norm near 0.01 sqrt(21891) = 1.48.
    for (c, _) in norms("gaussian", &["attack.gaussian.sigma=0.01"]) {
        assert!((c - 1.48).abs() < 0.05, "{c}");
    }
    // The honest baseline sends no crafted vector and trains as the attack's clients would.
    let none = run(&tmp.path().join("none"), &["attack.method=none"]);
    assert!(
        none.iter()
            .all(|r| r["attacking"] == false && r["crafted_norm"].is_null())
    );
}

#[test]
fn a_robust_rule_drops_what_it_catches_and_the_records_say_so() {
    let tmp = ScratchDir::new("model-poison-krum").unwrap();
    // Gaussian noise of sigma 1 is far from every benign update: Krum never picks it.
    let rows = run(
        &tmp.path().join("krum"),
        &["attack.method=gaussian", "aggregator=krum"],
    );
    for r in &rows[1..] {
        assert_eq!(r["malicious_kept"], 0, "{r}");
        let kept = r["kept"].as_array().unwrap();
        assert_eq!(kept.len(), 1);
        assert!(kept[0].as_u64().unwrap() >= 2, "Krum kept a benign client");
    }
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("krum/summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["attack"]["malicious_kept_share"], 0.0);
    // The adaptive attacker searches its strength against its copy of the rule each attack
    // round, and the record says what it chose.
    let rows = run(
        &tmp.path().join("adaptive"),
        &["attack.method=alie-adaptive", "aggregator=median"],
    );
    for r in &rows[1..] {
        assert!(r["strength"].as_f64().unwrap() >= 0.0, "{r}");
    }
    // Fang's attack on Krum halves lambda until Krum picks it: Krum keeps one update a
    // round, a malicious one in every attack round.
    let rows = run(
        &tmp.path().join("fang"),
        &["attack.method=fang-krum", "aggregator=krum"],
    );
    for r in &rows[1..] {
        assert_eq!(r["malicious_kept"], 1, "{r}");
        assert!(r["strength"].as_f64().unwrap() > 0.0, "{r}");
    }
    // FLTrust with a root set of 100 samples the clients do not hold: the flipped updates
    // point against the server's own update, get no trust, and are dropped every round.
    let rows = run(
        &tmp.path().join("fltrust"),
        &[
            "attack.method=sign-flip",
            "aggregator=fltrust",
            "server_samples=100",
        ],
    );
    for r in &rows[1..] {
        assert_eq!(r["malicious_kept"], 0, "{r}");
        assert!(
            r["server"]["server_update_norm"].as_f64().unwrap() > 0.0,
            "{r}"
        );
    }
    let config = std::fs::read_to_string(tmp.path().join("fltrust/config.toml")).unwrap();
    assert!(config.contains("server_samples = 100"), "{config}");
    // Bad attack parameters are refused before anything runs, naming the key.
    let o = fl(&[
        "run",
        "--config",
        "configs/tiny/model-poison.toml",
        "--set",
        "attack.malicious=5",
        "--out",
        &tmp.path().join("bad").display().to_string(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("attack.malicious"));
}
