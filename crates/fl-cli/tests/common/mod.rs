//! A tiny sweep grid over the fixtures, shared by the sweep tests on CPU and on wgpu.
#![allow(dead_code)] // each test binary uses its own part

use fl_cli::grid::Record;
use fl_cli::sweep::{CellResult, GridOptions, Shard, SweepDir};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
