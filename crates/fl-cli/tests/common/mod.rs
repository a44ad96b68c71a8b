//! What several test binaries share: the `fl` binary run from the repository root, a run's
//! records, and a tiny sweep grid over the fixtures (the sweep tests on CPU and on wgpu).
#![allow(dead_code)] // each test binary uses its own part

use fl_cli::grid::Record;
use fl_cli::sweep::{CellResult, GridOptions, Shard, SweepDir};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `fl` binary run with `args` from the repository root.
pub fn fl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fl"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .env_remove("FL_DATA_DIR")
        .output()
        .expect("fl runs")
}

/// `fl run --config <config>` with `--set` for each of `sets`, into `out`, which must
/// succeed; its records without their timings.
pub fn run_config(config: &str, out: &Path, sets: &[&str]) -> Vec<serde_json::Value> {
    let out_s = out.display().to_string();
    let mut args = vec!["run", "--config", config, "--out", &out_s, "-q"];
    for s in sets {
        args.extend(["--set", s]);
    }
    let o = fl(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    records(out)
}

/// The records of a run folder (`metrics.jsonl`) without their timings.
pub fn records(dir: &Path) -> Vec<serde_json::Value> {
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

/// Runs the `config.toml` a run wrote into `dir` again, into `out`; it must name its `kind`
/// (so that it runs as the same experiment) and succeed; the new run's records.
pub fn rerun_written(dir: &Path, out: &Path, kind: &str) -> Vec<serde_json::Value> {
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(config.contains(&format!("kind = \"{kind}\"")), "{config}");
    let o = fl(&[
        "run",
        "--config",
        &dir.join("config.toml").display().to_string(),
        "--out",
        &out.display().to_string(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    records(out)
}

/// A run folder's `summary.json`.
pub fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

/// `configs/tiny/grid.toml` (three cells, two sharing G = 1, of a 3-round GAN attack on 3
/// clients x 200 fixture images) written into `dir` with the fixtures' absolute path.
pub fn tiny_grid(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("configs/tiny/grid.toml")).unwrap();
    let fixtures = root.join("fixtures");
    let text = text.replace(
        "data_dir = \"fixtures\"",
        &format!("data_dir = \"{}\"", fixtures.display()),
    );
    let path = dir.join("grid.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub fn opts(out: PathBuf, shard: Option<Shard>, warm_start: bool) -> GridOptions {
    GridOptions {
        out,
        jobs: 2,
        threads: 1,
        shard,
        warm_start,
        progress: false,
        device_memory: None,
    }
}

pub fn cells(dir: &Path) -> BTreeMap<String, CellResult> {
    SweepDir::existing(dir).unwrap().0.all().unwrap()
}

pub fn numbers(dir: &Path) -> BTreeMap<String, CellResult> {
    cells(dir)
        .into_iter()
        .map(|(k, v)| {
            let mut v = v.without_times();
            v.warm_rounds = 0;
            (k, v)
        })
        .collect()
}
