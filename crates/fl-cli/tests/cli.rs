//! The `fl` binary as a user meets it: help texts, a seeded run on fixtures, errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fl"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .env_remove("FL_DATA_DIR")
        // Help text wraps at the terminal width; fix it so snapshots match everywhere.
        .env("COLUMNS", "100")
        .output()
        .expect("fl runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_texts() {
    let o = fl(&["--help"]);
    assert!(o.status.success());
    insta::assert_snapshot!("fl_help", stdout(&o));
    let o = fl(&["train", "--help"]);
    assert!(o.status.success());
    insta::assert_snapshot!("fl_train_help", stdout(&o));
}

/// A 2-round seeded run on the fixtures: 4 clients x 300 samples, 300 test images.
fn tiny_run(out: &Path) -> Output {
    fl(&[
        "train",
        "--config",
        "configs/fixtures.toml",
        "--set",
        "rounds=2",
        "--set",
        "clients=4",
        "--set",
        "partition.samples_per_client=300",
        "--set",
        "train.lr=0.1",
        "--set",
        "test_samples=300",
        "--seed",
        "7",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ])
}

/// `metrics.jsonl` without the timings, which vary from run to run.
fn metrics_without_time(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("time");
            v
        })
        .collect()
}

#[test]
fn seeded_run_on_fixtures_is_reproducible_and_complete() {
    let tmp = fl_data::scratch::ScratchDir::new("fl-cli-test").unwrap();
    let (a, b): (PathBuf, PathBuf) = (tmp.path().join("a"), tmp.path().join("b"));
    for dir in [&a, &b] {
        let o = tiny_run(dir);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains("final test accuracy"));
    }
    for f in [
        "config.toml",
        "metrics.jsonl",
        "summary.json",
        "accuracy.png",
        "loss.png",
    ] {
        assert!(a.join(f).is_file(), "{f} missing");
    }
    let (ma, mb) = (metrics_without_time(&a), metrics_without_time(&b));
    assert_eq!(ma.len(), 2);
    assert_eq!(ma, mb, "same seed, same metrics");
    let mut summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("summary.json")).unwrap()).unwrap();
    let time = summary.as_object_mut().unwrap().remove("time").unwrap();
    assert!(time["total_s"].as_f64().unwrap() > 0.0);
    insta::assert_json_snapshot!("tiny_run_summary", summary);
    // The resolved config is itself a valid config that reproduces the run.
    let c = fl(&[
        "train",
        "--config",
        a.join("config.toml").to_str().unwrap(),
        "-q",
        "--out",
        b.to_str().unwrap(),
    ]);
    assert!(c.status.success(), "{}", stderr(&c));
    assert_eq!(metrics_without_time(&b), ma);
}

#[test]
fn bad_input_gives_a_clear_error_and_non_zero_exit() {
    let cases: [(&[&str], &str); 5] = [
        (&["train", "--set", "trian.lr=0.1"], "unknown field `trian`"),
        (
            &["train", "--set", "train.lr=-1"],
            "train.lr must be positive",
        ),
        (&["train", "--device", "tpu"], "unknown device `tpu`"),
        (
            &[
                "train",
                "--set",
                "partition.scheme=dirichlet",
                "--set",
                "partition.alpha=0",
            ],
            "alpha must be positive",
        ),
        (
            &["train", "--config", "no/such.toml"],
            "reading no/such.toml",
        ),
    ];
    for (args, msg) in cases {
        let o = fl(args);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(stderr(&o).contains(msg), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{args:?} panicked");
    }
}
