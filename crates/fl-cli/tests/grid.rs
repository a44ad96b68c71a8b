//! `fl grid` on the fixtures: a 2x2 grid of training runs, its table, resume, shards + merge,
//! and an MIA table on the same engine.

use fl_cli::grid::runs::{RunGrid, RunRecord, run_grid};
use fl_cli::grid::{GridDir, GridOptions, Record, merge};
use fl_data::scratch::ScratchDir;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn grid() -> RunGrid {
    let mut g = RunGrid::load(&root().join("configs/tiny/runs-grid.toml")).unwrap();
    let data = root().join("fixtures");
    g.set(&[format!("data_dir=\"{}\"", data.display())])
        .unwrap();
    g
}

fn opts(out: PathBuf, shard: Option<&str>) -> GridOptions {
    GridOptions {
        out,
        jobs: 2,
        threads: 1,
        shard: shard.map(|s| s.parse().unwrap()),
        warm_start: false,
        progress: false,
        device_memory: None,
    }
}

fn numbers(dir: &Path) -> BTreeMap<String, RunRecord> {
    let (d, _) = GridDir::<RunRecord>::existing(dir).unwrap();
    d.all()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.without_times()))
        .collect()
}

#[test]
fn a_grid_of_runs_gives_its_table_resumes_and_shards() {
    let tmp = ScratchDir::new("grid-runs").unwrap();
    let g = grid();
    let ids: Vec<String> = g.cells().unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(ids, ["fedavg-7", "fedavg-8", "median-7", "median-8"]);

    let whole = tmp.path().join("whole");
    let r = run_grid(&g, &opts(whole.clone(), None)).unwrap();
    assert_eq!((r.cells, r.ran, r.skipped, r.failed.len()), (4, 4, 0, 0));
    // Each cell is a complete run folder, with the axis values in its config.
    let config = std::fs::read_to_string(whole.join("runs/median-8/config.toml")).unwrap();
    assert!(config.contains("aggregator = \"median\"") && config.contains("seed = 8"));
    assert!(whole.join("runs/median-8/accuracy.png").exists());
    // The cell's record is the run's summary.
    let cells = numbers(&whole);
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(whole.join("runs/fedavg-7/summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        cells["fedavg-7"].summary.as_ref().unwrap()["final_accuracy"],
        summary["final_accuracy"]
    );
    // Seeds differ, rules differ: four different models.
    let finals: Vec<String> = ids
        .iter()
        .map(|i| cells[i].summary.as_ref().unwrap()["final_test_loss"].to_string())
        .collect();
    let mut distinct = finals.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "{finals:?}");
    insta::assert_snapshot!(
        "tiny_runs_grid_table",
        std::fs::read_to_string(whole.join("table.md")).unwrap()
    );
    assert!(whole.join("heatmap-final_accuracy.png").exists());
    let csv = std::fs::read_to_string(whole.join("table.csv")).unwrap();
    assert!(csv.starts_with("aggregator,seed,error,"), "{csv}");
    assert_eq!(csv.lines().count(), 5);

    // Run again: nothing to do.
    let r = run_grid(&g, &opts(whole.clone(), None)).unwrap();
    assert_eq!((r.ran, r.skipped), (0, 4));

    // Two shards, merged: the same cells.
    let s0 = tmp.path().join("s0");
    let s1 = tmp.path().join("s1");
    let r0 = run_grid(&g, &opts(s0.clone(), Some("0/2"))).unwrap();
    let r1 = run_grid(&g, &opts(s1.clone(), Some("1/2"))).unwrap();
    assert_eq!((r0.ran, r1.ran), (2, 2));
    assert!(!s0.join("table.md").exists(), "a shard writes no table");
    let merged = tmp.path().join("merged");
    assert_eq!(
        merge::<RunRecord>(&merged, &[s0, s1], &["grid.toml"]).unwrap(),
        4
    );
    assert_eq!(numbers(&merged), numbers(&whole));

    // Another base in the same folder is refused.
    let mut other = grid();
    other.set(&["rounds=3".into()]).unwrap();
    let err = run_grid(&other, &opts(whole.clone(), None)).unwrap_err();
    assert!(
        format!("{err:#}").contains("another configuration"),
        "{err:#}"
    );
}

#[test]
fn a_column_no_summary_has_is_refused_with_the_known_ones() {
    let tmp = ScratchDir::new("grid-columns").unwrap();
    let mut g = grid();
    g.file.columns = vec!["final_acuracy".into()];
    g.file.heatmaps.clear();
    g.file.axes.truncate(1);
    let err = run_grid(&g, &opts(tmp.path().join("g"), None)).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("`final_acuracy`") && msg.contains("final_accuracy"),
        "{msg}"
    );
    // The same for a heat map.
    let mut g = grid();
    g.file.heatmaps = vec!["final_acuracy".into()];
    let err = run_grid(&g, &opts(tmp.path().join("h"), None)).unwrap_err();
    assert!(
        format!("{err:#}").contains("the grid's `heatmaps`"),
        "{err:#}"
    );
}

#[test]
fn the_mia_table_runs_on_the_engine_and_resumes_from_records_or_run_folders() {
    use fl_cli::mia_table::{TableOptions, run_table};
    let tmp = ScratchDir::new("grid-mia-table").unwrap();
    let mut base: toml::Table = std::fs::read_to_string(root().join("configs/tiny/mia.toml"))
        .unwrap()
        .parse()
        .unwrap();
    base.insert(
        "data_dir".into(),
        toml::Value::String(root().join("fixtures").display().to_string()),
    );
    let out = tmp.path().join("table");
    let opts = TableOptions {
        datasets: vec![fl_data::DatasetKind::Mnist],
        partitions: vec!["iid".into()],
        attacks: vec![fl_mia::MiaMethod::FedPoisonMia, fl_mia::MiaMethod::Passive],
        aggregators: vec!["fedavg".into(), "median".into()],
        settings: vec![Vec::new()],
        out: out.clone(),
        jobs: 2,
        progress: false,
    };
    let first = run_table(&base, &opts).unwrap();
    assert_eq!(first.len(), 4);
    assert!(first.iter().all(|c| c.error.is_none()), "{first:?}");
    let cells = std::fs::read_dir(out.join("cells")).unwrap().count();
    assert_eq!(cells, 4, "one record per cell");
    let table = std::fs::read_to_string(out.join("table.md")).unwrap();
    // Again: from the records. Without them: from the finished run folders. Same table.
    assert_eq!(run_table(&base, &opts).unwrap(), first);
    std::fs::remove_dir_all(out.join("cells")).unwrap();
    let summary = std::fs::read_dir(out.join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("summary.json");
    let written = std::fs::metadata(&summary).unwrap().modified().unwrap();
    assert_eq!(run_table(&base, &opts).unwrap(), first);
    assert_eq!(
        std::fs::metadata(&summary).unwrap().modified().unwrap(),
        written,
        "a finished run folder is not run again"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("table.md")).unwrap(),
        table
    );
}
