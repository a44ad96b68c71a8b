//! A tiny sweep grid over the fixtures, shared by the sweep tests on CPU and on wgpu.
#![allow(dead_code)] // each test binary uses its own part

use fl_cli::sweep::{CellResult, Shard, SweepDir, SweepOptions};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Three cells (two share G = 1) of a 3-round GAN attack on 3 clients x 200 fixture images.
pub fn tiny_grid(dir: &Path) -> PathBuf {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let text = format!(
        r#"
name = "tiny"
datasets = ["mnist"]
pairs = [[1, 9], [4, 9], [1, 4]]
seeds = [5]

[base]
dataset = "mnist"
data_dir = "{}"
clients = 3
rounds = 3
test_samples = 300

[base.partition]
scheme = "iid"
samples_per_client = 200

[base.attack]
start_round = 2
n_fake = 20
n_poison = 20
boost = 4.0
samples_every = 0
fidelity_samples = 0

[base.attack.gan]
steps = 2
batch_size = 8
"#,
        fixtures.display()
    );
    let path = dir.join("grid.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub fn opts(out: PathBuf, shard: Option<Shard>, warm_start: bool) -> SweepOptions {
    SweepOptions {
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
