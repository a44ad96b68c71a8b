//! The `fl` binary as a user meets it: help texts, a seeded run on fixtures, errors.

mod common;

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
    let o = fl(&["attack", "gan-poison", "--help"]);
    assert!(o.status.success());
    insta::assert_snapshot!("fl_attack_gan_poison_help", stdout(&o));
    let o = fl(&["sweep", "--help"]);
    assert!(o.status.success());
    insta::assert_snapshot!("fl_sweep_help", stdout(&o));
    let o = fl(&["attack", "mia", "--help"]);
    assert!(o.status.success());
    insta::assert_snapshot!("fl_attack_mia_help", stdout(&o));
}

/// `configs/tiny/train.toml`: a 2-round seeded run on the fixtures (4 clients x 300 samples,
/// 300 test images).
fn tiny_run(out: &Path) -> Output {
    let config = "configs/tiny/train.toml";
    fl(&[
        "train",
        "--config",
        config,
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ])
}

/// `metrics.jsonl` without the timings, which vary from run to run.
fn metrics_without_time(dir: &Path) -> Vec<serde_json::Value> {
    common::records(dir)
}

/// Runs `command` with the `config.toml` that run `a` wrote, into `b`; returns `b`'s metrics.
fn rerun_from_written_config(command: &[&str], a: &Path, b: &Path) -> Vec<serde_json::Value> {
    let config = a.join("config.toml");
    let mut args = command.to_vec();
    args.extend([
        "--config",
        config.to_str().unwrap(),
        "-q",
        "--out",
        b.to_str().unwrap(),
    ]);
    let o = fl(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    metrics_without_time(b)
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
    assert_eq!(rerun_from_written_config(&["train"], &a, &b), ma);
}

#[test]
fn bad_input_gives_a_clear_error_and_non_zero_exit() {
    let cases: [(&[&str], &str); 8] = [
        (
            &["attack", "gan-poison", "--generate", "4", "--target", "4"],
            "must differ",
        ),
        (
            &["attack", "gan-poison", "--set", "attack.adversary=12"],
            "attack.adversary is client 12",
        ),
        (
            &["attack", "gan-poison", "--set", "attack.colour=1"],
            "unknown field `colour`",
        ),
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

/// A copy of the MNIST fixtures in a scratch folder (the fidelity oracle caches itself there).
fn private_fixtures(tmp: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/mnist");
    let dst = tmp.join("data/mnist");
    std::fs::create_dir_all(&dst).unwrap();
    // The IDX files only: an oracle cached beside the fixtures by `fl demo` must not be reused.
    for f in std::fs::read_dir(root).unwrap() {
        let f = f.unwrap();
        if f.file_name().to_string_lossy().ends_with(".gz") {
            std::fs::copy(f.path(), dst.join(f.file_name())).unwrap();
        }
    }
    tmp.join("data")
}

/// `configs/tiny/gan-poison.toml`: a 3-round seeded GAN attack on the fixtures (4 clients x
/// 300, attack from round 2), on the data under `data`.
fn tiny_attack(out: &Path, data: &Path) -> Output {
    fl(&[
        "attack",
        "gan-poison",
        "--config",
        "configs/tiny/gan-poison.toml",
        "--data-dir",
        data.to_str().unwrap(),
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
fn seeded_attack_on_fixtures_is_reproducible_and_complete() {
    let tmp = fl_data::scratch::ScratchDir::new("fl-cli-attack").unwrap();
    let data = private_fixtures(tmp.path());
    let (a, b): (PathBuf, PathBuf) = (tmp.path().join("a"), tmp.path().join("b"));
    for dir in [&a, &b] {
        let o = tiny_attack(dir, &data);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            stdout(&o).contains("average attack accuracy"),
            "{}",
            stdout(&o)
        );
    }
    for f in [
        "config.toml",
        "metrics.jsonl",
        "summary.json",
        "attack.png",
        "accuracy.png",
        "samples.png",
        "samples/round-002.png",
        "samples/round-003.png",
    ] {
        assert!(a.join(f).is_file(), "{f} missing");
    }
    assert!(
        !a.join("samples/round-001.png").exists(),
        "no grid before the attack"
    );
    let (ma, mb) = (metrics_without_time(&a), metrics_without_time(&b));
    assert_eq!(ma.len(), 3);
    assert_eq!(ma, mb, "same seed, same metrics");
    let mut summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("summary.json")).unwrap()).unwrap();
    summary.as_object_mut().unwrap().remove("time");
    insta::assert_json_snapshot!("tiny_attack_summary", summary);
    // The written config names the withheld class and reproduces the run.
    let config = std::fs::read_to_string(a.join("config.toml")).unwrap();
    assert!(config.contains("[[partition.withhold]]"), "{config}");
    assert_eq!(
        rerun_from_written_config(&["attack", "gan-poison"], &a, &b),
        ma
    );
}

/// A 4-round seeded FedPoisonMIA run on the fixtures: 5 clients x 200 samples, 40 targets,
/// attacks from round 2.
fn tiny_mia(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "attack",
        "mia",
        "--config",
        "configs/tiny/mia.toml",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    fl(&args)
}

#[test]
fn seeded_mia_on_fixtures_is_reproducible_and_complete() {
    let tmp = fl_data::scratch::ScratchDir::new("fl-cli-mia").unwrap();
    let a = tmp.path().join("a");
    let o = tiny_mia(&a, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("best membership accuracy"), "{text}");
    assert!(text.contains("TPR at 0.1% FPR not measurable"), "{text}");
    for f in [
        "config.toml",
        "metrics.jsonl",
        "summary.json",
        "membership.png",
        "roc.png",
        "accuracy.png",
    ] {
        assert!(a.join(f).is_file(), "{f} missing");
    }
    let b = tmp.path().join("b");
    let mb = rerun_from_written_config(&["attack", "mia"], &a, &b);
    assert_eq!(metrics_without_time(&a), mb, "same seed, same metrics");
    let mut summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("summary.json")).unwrap()).unwrap();
    summary.as_object_mut().unwrap().remove("time");
    insta::assert_json_snapshot!("tiny_mia_summary", summary);

    // The same run as `fl run` with the attack named by a tagged section.
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/tiny/mia.toml"),
    )
    .unwrap();
    assert!(text.contains("\n[mia]\n"));
    let tagged = tmp.path().join("tagged.toml");
    std::fs::write(
        &tagged,
        text.replace("\n[mia]\n", "\n[attack]\nkind = \"mia\"\n"),
    )
    .unwrap();
    let c = tmp.path().join("c");
    let o = fl(&[
        "run",
        "--config",
        tagged.to_str().unwrap(),
        "-q",
        "--out",
        c.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(metrics_without_time(&a), metrics_without_time(&c));
    // A command given a config of another kind says which command runs it.
    let o = fl(&["train", "--config", tagged.to_str().unwrap(), "-q"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("runs membership inference ([mia]), which `fl train` does not"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn mia_errors_are_clear() {
    let tmp = fl_data::scratch::ScratchDir::new("fl-cli-mia-err").unwrap();
    let o = tiny_mia(&tmp.path().join("x"), &["--attack", "fedpoison"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("unknown membership attack `fedpoison`"),
        "{}",
        stderr(&o)
    );
    // ATM with b = 3 would drop 6 of the 5 updates: refused with the rule's own message.
    let o = tiny_mia(
        &tmp.path().join("y"),
        &["--aggregator", "atm", "--set", "defense.atm.b=3"],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("dropping 2b = 6 updates leaves none of 5"),
        "{}",
        stderr(&o)
    );
    let o = tiny_mia(&tmp.path().join("z"), &["--malicious", "5"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("at least one must be benign"),
        "{}",
        stderr(&o)
    );
}
