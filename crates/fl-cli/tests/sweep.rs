//! Sweeps on a tiny grid over the fixtures: warm starts, shards, merge, resume, report.

mod common;

use common::{cells, numbers, opts, tiny_grid};
use fl_cli::sweep::store::merge;
use fl_cli::sweep::{Grid, Shard, report_dir, run::run};
use fl_data::scratch::ScratchDir;

#[test]
fn warm_starts_shards_merge_resume_and_report() {
    let tmp = ScratchDir::new("sweep").unwrap();
    let grid = Grid::load(&tiny_grid(tmp.path())).unwrap();
    assert_eq!(grid.cells().unwrap().len(), 3);

    // From scratch, and with the warm-up of G = 1 shared by its two targets: same numbers.
    let plain = tmp.path().join("plain");
    let r = run(&grid, &opts(plain.clone(), None, false)).unwrap();
    assert_eq!((r.cells, r.ran, r.skipped, r.failed.len()), (3, 3, 0, 0));
    let warm = tmp.path().join("warm");
    run(&grid, &opts(warm.clone(), None, true)).unwrap();
    let w = cells(&warm);
    assert_eq!(w["mnist-s5-g1-t4"].warm_rounds, 0, "ran the warm-up itself");
    assert_eq!(w["mnist-s5-g1-t9"].warm_rounds, 1, "continued from it");
    assert_eq!(w["mnist-s5-g4-t9"].warm_rounds, 0, "alone in its group");
    assert!(cells(&plain).values().all(|c| c.warm_rounds == 0));
    assert_eq!(numbers(&plain), numbers(&warm));
    let c = &w["mnist-s5-g1-t9"];
    assert_eq!(c.attack_accuracy.len(), 3);
    assert_eq!(c.images().unwrap().len(), 8 * 784);
    assert_eq!(c.summary.attack.attack_start, Some(2));

    // Two shards, merged: the unsharded result.
    let s0 = tmp.path().join("s0");
    let s1 = tmp.path().join("s1");
    let r0 = run(&grid, &opts(s0.clone(), Some("0/2".parse().unwrap()), true)).unwrap();
    let r1 = run(&grid, &opts(s1.clone(), Some("1/2".parse().unwrap()), true)).unwrap();
    assert_eq!(r0.ran + r1.ran, 3);
    let merged = tmp.path().join("merged");
    assert_eq!(merge(&merged, &[s0.clone(), s1.clone()]).unwrap(), 3);
    assert_eq!(numbers(&merged), numbers(&plain));

    // Resume: nothing to do; a lost cell (and a temporary left by a killed write) is redone.
    let r = run(&grid, &opts(plain.clone(), None, true)).unwrap();
    assert_eq!((r.ran, r.skipped), (0, 3));
    std::fs::remove_file(plain.join("cells/mnist-s5-g4-t9.json")).unwrap();
    std::fs::write(plain.join("cells/.mnist-s5-g4-t9.json.tmp.1"), "{ half").unwrap();
    let r = run(&grid, &opts(plain.clone(), None, true)).unwrap();
    assert_eq!((r.ran, r.skipped), (1, 2));
    assert_eq!(numbers(&plain), numbers(&warm));

    // Cells of another configuration are never mixed in.
    let mut other = grid.clone();
    other.set(&["rounds=4".to_string()]).unwrap();
    let e = run(&other, &opts(plain.clone(), None, true)).unwrap_err();
    assert!(format!("{e:#}").contains("another configuration"), "{e:#}");
    let elsewhere = tmp.path().join("other");
    run(
        &other,
        &opts(elsewhere.clone(), Some("0/3".parse().unwrap()), true),
    )
    .unwrap();
    let e = merge(&merged, &[elsewhere]).unwrap_err();
    assert!(format!("{e:#}").contains("another configuration"), "{e:#}");

    // The report reads the folder alone.
    let md = report_dir(&plain).unwrap();
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(text.contains("3 cells."), "{text}");
    assert!(text.contains("## MNIST (3 pairs, 1 seed)"), "{text}");
    for f in [
        "mnist-heatmap.png",
        "mnist-heatmap.svg",
        "mnist-matrix.csv",
        "mnist-std.csv",
        "mnist-reconstructions.png",
        "report.json",
    ] {
        assert!(plain.join("report").join(f).is_file(), "{f}");
    }
    let csv = std::fs::read_to_string(plain.join("report/mnist-matrix.csv")).unwrap();
    let v = cells(&plain)["mnist-s5-g4-t9"].value();
    let row4: Vec<&str> = csv.lines().nth(5).unwrap().split(',').collect();
    assert_eq!(row4[10], format!("{v:.4}"));
}

#[test]
fn sweeps_sharing_a_folder_never_run_a_cell_twice() {
    let tmp = ScratchDir::new("sweep-claims").unwrap();
    let grid = Grid::load(&tiny_grid(tmp.path())).unwrap();
    let plain = tmp.path().join("plain");
    run(&grid, &opts(plain.clone(), None, true)).unwrap();

    // A cell another process holds is left to it; once released, a rerun does it.
    let held = tmp.path().join("held");
    let dir = fl_cli::sweep::store::open(&held, &grid).unwrap();
    let cell = grid.cells().unwrap()[1].clone();
    let claim = dir.claim(&cell).unwrap().expect("free at first");
    assert!(dir.claim(&cell).unwrap().is_none(), "held: no second claim");
    let r = run(&grid, &opts(held.clone(), None, true)).unwrap();
    assert_eq!((r.ran, r.elsewhere, r.skipped), (2, 1, 0));
    assert!(!cells(&held).contains_key(&cell.id));
    drop(claim);
    let r = run(&grid, &opts(held.clone(), None, true)).unwrap();
    assert_eq!((r.ran, r.elsewhere, r.skipped), (1, 0, 2));
    assert_eq!(numbers(&held), numbers(&plain));

    // Two sweeps at once on one folder: every cell runs exactly once between them.
    let shared = tmp.path().join("shared");
    let (a, b) = std::thread::scope(|s| {
        let one = || run(&grid, &opts(shared.clone(), None, true)).unwrap();
        let (a, b) = (s.spawn(one), s.spawn(one));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(a.ran + b.ran, 3, "{a:?} {b:?}");
    for r in [&a, &b] {
        assert_eq!(r.ran + r.elsewhere + r.skipped, 3, "{r:?}");
    }
    assert_eq!(numbers(&shared), numbers(&plain));
}

#[test]
fn shards_cover_every_cell_once_in_blocks() {
    let cells: Vec<usize> = (0..17).collect();
    for n in 1..=7 {
        let mut all = Vec::new();
        for i in 0..n {
            let part = Shard { index: i, count: n }.select(&cells);
            assert!(part.len() == 17 / n || part.len() == 17 / n + 1);
            assert!(part.windows(2).all(|w| w[1] == w[0] + 1), "contiguous");
            all.extend(part);
        }
        assert_eq!(all, cells, "{n} shards");
    }
    for bad in ["2/2", "1", "a/3", "0/0"] {
        assert!(bad.parse::<Shard>().is_err(), "{bad}");
    }
}

#[test]
fn grid_errors_are_clear() {
    let tmp = ScratchDir::new("grid").unwrap();
    let write = |body: &str| {
        let p = tmp.path().join("g.toml");
        std::fs::write(&p, body).unwrap();
        format!("{:#}", Grid::load(&p).unwrap_err())
    };
    let head = "name = \"g\"\ndatasets = [\"mnist\"]\nseeds = [1]\n";
    assert!(write(head).contains("base_config"));
    assert!(write(&format!("{head}pairs = [[3, 3]]\n[base]\n")).contains("different classes"));
    assert!(write(&format!("{head}pairs = \"some\"\n[base]\n")).contains("\"all\""));
    assert!(write(&format!("{head}colour = 1\n[base]\n")).contains("colour"));
    assert!(write(&format!("{head}[base]\nrounds = 0\n")).contains("rounds"));
    assert!(
        Grid::preset("huge")
            .unwrap_err()
            .to_string()
            .contains("quick, full")
    );
    assert_eq!(Grid::preset("full").unwrap().cells().unwrap().len(), 540);
}
