//! The backdoor through `fl run` on the fixtures: a seeded run and its summary, the written
//! config running again to the same numbers, the trigger against the same run without the
//! attack, model replacement against plain poisoning, and the adaptive scale against a rule
//! that drops large updates.

mod common;

use common::summary;
use fl_data::scratch::ScratchDir;
use std::path::Path;

fn run(out: &Path, sets: &[&str]) -> Vec<serde_json::Value> {
    common::run_config("configs/tiny/backdoor.toml", out, sets)
}

fn last_success(rows: &[serde_json::Value]) -> f64 {
    rows.last().unwrap()["attack_success"].as_f64().unwrap()
}

#[test]
fn a_seeded_backdoor_is_reproducible_and_beats_the_clean_run() {
    let tmp = ScratchDir::new("backdoor").unwrap();
    let a = tmp.path().join("a");
    let rows = run(&a, &[]);
    assert_eq!(rows.len(), 10);
    for r in &rows {
        assert_eq!(r["attacking"], true);
        assert_eq!(r["scale"].as_f64(), Some(2.5));
        assert!(r["attack_success"].as_f64().is_some(), "scored every round");
    }
    let s = summary(&a);
    insta::assert_json_snapshot!("tiny_backdoor_summary", s["attack"]);
    assert!(a.join("backdoor.png").exists());
    assert_eq!(
        common::rerun_written(&a, &tmp.path().join("b"), "backdoor"),
        rows,
        "the written config gives the same numbers"
    );

    // The same run with the attack never starting: the trigger means nothing to the model.
    let clean = run(&tmp.path().join("clean"), &["attack.start_round=99"]);
    assert!(
        clean
            .iter()
            .all(|r| r["attacking"] == false && r["scale"].is_null())
    );
    let (with, without) = (last_success(&rows), last_success(&clean));
    assert!(
        with > without + 0.5,
        "attack success {with} against {without} without the attack"
    );
}

#[test]
fn model_replacement_plants_the_backdoor_faster_than_plain_poisoning() {
    let tmp = ScratchDir::new("backdoor").unwrap();
    // Over the last 4 of 10 rounds, once the model has learnt the clean task (early on it
    // calls nearly everything the target, trigger or not).
    let late = |rows: &[serde_json::Value]| -> f64 {
        rows[6..]
            .iter()
            .map(|r| r["attack_success"].as_f64().unwrap())
            .sum::<f64>()
            / 4.0
    };
    let plain = run(&tmp.path().join("plain"), &["attack.scale=1"]);
    let replaced = run(&tmp.path().join("replaced"), &[]);
    assert!(
        late(&replaced) > late(&plain) + 0.3,
        "rounds 7-10: scaled by 2.5 {} against plain {}",
        late(&replaced),
        late(&plain)
    );
}

#[test]
fn the_adaptive_scale_is_the_largest_the_rule_lets_through() {
    let tmp = ScratchDir::new("backdoor").unwrap();
    let scales = |rows: &[serde_json::Value]| -> Vec<f64> {
        rows.iter().map(|r| r["scale"].as_f64().unwrap()).collect()
    };
    // FedAvg weighs every update: the largest scale moves the aggregate farthest.
    let fedavg = run(
        &tmp.path().join("fedavg"),
        &["attack.scale=8", "attack.adaptive=true", "rounds=2"],
    );
    assert_eq!(scales(&fedavg), [8.0, 8.0]);
    // Krum drops a scaled update: the adaptive attacker stays small, the naive one is dropped.
    let sets = ["attack.scale=8", "aggregator=krum"];
    let naive = run(&tmp.path().join("naive"), &sets);
    let adaptive = run(
        &tmp.path().join("adaptive"),
        &[&sets[..], &["attack.adaptive=true"]].concat(),
    );
    let kept = |rows: &[serde_json::Value]| -> u64 {
        rows.iter()
            .map(|r| r["malicious_kept"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(kept(&naive), 0, "Krum drops every update scaled by 8");
    assert!(
        scales(&adaptive).iter().all(|&s| s < 8.0),
        "{:?}",
        scales(&adaptive)
    );
    assert!(kept(&adaptive) > 0, "Krum picks an adaptive update");
}
