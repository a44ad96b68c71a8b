//! Running the cells of a grid: in parallel, resumable, sharded, claimed, grouped.

use super::store::{Claim, GridDir};
use super::{CellSpec, Experiment, GroupContext, Record};
use anyhow::Result;
use fl_core::DeviceKind;
use indicatif::ProgressBar;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `i/N`: the `i`-th (from 0) of `N` shares of a grid's cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which share, `0..count`.
    pub index: usize,
    /// How many shares.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}`: expected i/N with 0 <= i < N, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

impl Shard {
    /// This share of `cells`: a contiguous block (cells of one dataset, seed and G stay
    /// together, so they can share their warm-up), sizes differing by at most one.
    pub fn select<T: Clone>(&self, cells: &[T]) -> Vec<T> {
        let n = cells.len();
        let (lo, hi) = (
            self.index * n / self.count,
            (self.index + 1) * n / self.count,
        );
        cells[lo..hi].to_vec()
    }
}

/// How to run a grid.
#[derive(Debug, Clone)]
pub struct GridOptions {
    /// The grid folder.
    pub out: PathBuf,
    /// Cells run at once (0: one per core).
    pub jobs: usize,
    /// Worker threads inside each cell (0: cores / jobs, at least 1).
    pub threads: usize,
    /// Only this share of the cells.
    pub shard: Option<Shard>,
    /// Run the rounds before the attack once per (dataset, seed, G) and continue every target
    /// from there (identical numbers; see `AttackRun::resume`).
    pub warm_start: bool,
    /// Show a progress bar.
    pub progress: bool,
    /// Bytes of device memory the cells may use together, on a GPU device with `jobs` 0
    /// (default: the capacity the device reports).
    pub device_memory: Option<u64>,
}

/// Parses a size in bytes: `80GiB`, `80G` (both 2^30), `80GB` (10^9), `512MiB`, `4096`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024f64.powi(2),
        "g" | "gib" => 1024f64.powi(3),
        "t" | "tib" => 1024f64.powi(4),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => {
            return Err(format!(
                "`{s}`: unknown unit (use B, KiB, MiB, GiB, TiB, or KB..TB)"
            ));
        }
    };
    match number.parse::<f64>() {
        Ok(v) if v > 0.0 => Ok((v * scale).round() as u64),
        _ => Err(format!(
            "`{s}`: expected a positive size such as 70GiB or 512MiB"
        )),
    }
}

/// How the cells of a grid on a GPU device were fitted into its memory (`--jobs 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Bytes the device's allocator held before the first cell.
    pub baseline: u64,
    /// Bytes one cell added at its peak, measured on the first cell run alone.
    pub per_cell: u64,
    /// Bytes the cells may use in all (`--device-memory`, or the device's capacity); `None`
    /// where neither is known, and then the cells run one at a time.
    pub budget: Option<u64>,
    /// Cells run at once after the first.
    pub jobs: usize,
}

/// Cells that fit at once: 90% of `budget` less `baseline`, `per_cell` bytes each, at least 1
/// and at most `max` (the groups left to run: more workers would have nothing to do).
pub fn jobs_for_memory(budget: u64, baseline: u64, per_cell: u64, max: usize) -> usize {
    let usable = budget / 10 * 9;
    let fit = usable.saturating_sub(baseline) / per_cell.max(1);
    (fit.min(usize::MAX as u64) as usize).clamp(1, max.max(1))
}

/// What a run of a grid did.
#[derive(Debug, Clone, Default)]
pub struct GridReport {
    /// Cells in this (share of the) grid.
    pub cells: usize,
    /// Already finished before this run.
    pub skipped: usize,
    /// Finished by this run.
    pub ran: usize,
    /// Left to another process on the same folder, which held them (or had just finished them)
    /// when this one reached them.
    pub elsewhere: usize,
    /// Cells that failed, with the reason.
    pub failed: Vec<(String, String)>,
    /// Wall time of this run.
    pub seconds: f64,
    /// Cells run at once.
    pub jobs: usize,
    /// How `jobs` was fitted into device memory, for a GPU device with `--jobs 0`.
    pub memory: Option<MemoryPlan>,
}

impl GridReport {
    /// Finished cells per hour of wall time in this run.
    pub fn cells_per_hour(&self) -> f64 {
        if self.seconds > 0.0 {
            self.ran as f64 * 3600.0 / self.seconds
        } else {
            0.0
        }
    }
}

/// The number of cores.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs the unfinished cells among `cells` (of `opts.shard`) of experiment `exp` into `dir`.
///
/// Finished cells (a record with the cell's hash) are skipped; the others are grouped
/// ([`CellSpec::group`], in order of first appearance) and the groups served by `opts.jobs`
/// workers (0: one per core; on a GPU, as many as its memory holds, measured on the first
/// cell run alone). A worker claims a group's cells before running them, so processes
/// sharing the folder never run a cell twice; a cell another process holds is counted in
/// [`GridReport::elsewhere`]. A failed cell is reported and the others still run.
pub fn run<E: Experiment>(
    exp: &mut E,
    name: &str,
    cells: Vec<E::Cell>,
    dir: &GridDir<E::Record>,
    opts: &GridOptions,
) -> Result<GridReport> {
    let started = Instant::now();
    let cells = match opts.shard {
        Some(s) => s.select(&cells),
        None => cells,
    };
    let mut pending = Vec::new();
    for c in &cells {
        if dir.finished(c)?.is_none() {
            pending.push(c.clone());
        }
    }
    let mut report = GridReport {
        cells: cells.len(),
        skipped: cells.len() - pending.len(),
        ..Default::default()
    };
    if pending.is_empty() {
        return Ok(report);
    }
    exp.prepare(&pending)?;
    let exp: &E = exp;
    let device = pending[0].device();
    let fit_to_memory = opts.jobs == 0 && !device.is_cpu();
    let mut jobs = match opts.jobs {
        0 if fit_to_memory => 1,
        0 => cores(),
        n => n,
    };
    let threads = if opts.threads == 0 {
        (cores() / jobs).max(1)
    } else {
        opts.threads
    };
    let mut groups: Vec<Vec<E::Cell>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut probe = None;
    for (i, c) in pending.iter().enumerate() {
        if fit_to_memory && i == 0 {
            // Run alone first, so that its peak is one cell's.
            probe = Some(c.clone());
            continue;
        }
        let k = *index.entry(c.group()).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[k].push(c.clone());
    }
    let bar = cells_bar(pending.len(), name, opts.progress);
    let failed = Mutex::new(Vec::new());
    let ran = Mutex::new(0usize);
    let elsewhere = Mutex::new(0usize);
    // The cells of `group` this process can claim, with their claims; the others are being
    // (or have just been) run by another process on this folder.
    let claim = |group: Vec<E::Cell>| -> (Vec<E::Cell>, Vec<Claim>) {
        let (mut mine, mut claims) = (Vec::new(), Vec::new());
        for c in group {
            // A cell claimed just after another process finished it is not run again.
            let taken = match dir.claim(&c) {
                Ok(Some(h)) => dir.finished(&c).map(|f| f.is_none().then_some(h)),
                other => other,
            };
            match taken {
                Ok(Some(h)) => {
                    mine.push(c);
                    claims.push(h);
                }
                Ok(None) => {
                    *elsewhere.lock().expect("count") += 1;
                    bar.inc(1);
                }
                Err(e) => {
                    failed
                        .lock()
                        .expect("list")
                        .push((c.id().to_string(), format!("{e:#}")));
                    bar.inc(1);
                }
            }
        }
        (mine, claims)
    };
    let record = |cell: &E::Cell, r: Result<E::Record>| {
        let id = cell.id().to_string();
        match r {
            Ok(r) => match dir.write(&r) {
                Ok(()) => {
                    *ran.lock().expect("count") += 1;
                    bar.set_message(format!("{id}: {}", r.headline()));
                }
                Err(e) => failed.lock().expect("list").push((id, format!("{e:#}"))),
            },
            Err(e) => {
                bar.println(format!("cell {id} failed: {e:#}"));
                failed.lock().expect("list").push((id, format!("{e:#}")));
            }
        }
        bar.inc(1);
    };
    if let Some(cell) = probe {
        let (mine, _claims) = claim(vec![cell]);
        if !mine.is_empty() {
            let ctx = GroupContext {
                threads,
                warm_start: false,
            };
            let plan = fit_cells(device, opts.device_memory, groups.len(), || {
                exp.run_group(&mine, ctx, &mut |c, r| record(c, r))
            });
            bar.println(plan_line(&plan));
            jobs = plan.jobs;
            report.memory = Some(plan);
        }
    }
    report.jobs = jobs;
    let ctx = GroupContext {
        threads,
        warm_start: opts.warm_start,
    };
    fl_core::pool::map_ordered(groups, jobs, |group| {
        // Claims are held until the whole group is written.
        let (group, _claims) = claim(group);
        if !group.is_empty() {
            exp.run_group(&group, ctx, &mut |c, r| record(c, r));
        }
    });
    bar.finish();
    report.ran = ran.into_inner().expect("count");
    report.elsewhere = elsewhere.into_inner().expect("count");
    report.failed = failed.into_inner().expect("list");
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// A bar over cells with the ETA, hidden when not wanted.
fn cells_bar(len: usize, name: &str, visible: bool) -> ProgressBar {
    if visible {
        crate::progress::counter_bar(len as u64, name, "cell")
    } else {
        ProgressBar::hidden()
    }
}
/// Runs `probe` (one cell, alone) while sampling the device's memory every 20 ms, and fits
/// as many cells as the budget allows, at most `groups` (what is left to run).
///
/// The probe runs on a thread of its own: the device keeps one stream, with its own memory
/// pool, per thread, and the calling thread's pool may already hold what an earlier run left.
fn fit_cells(
    device: DeviceKind,
    budget: Option<u64>,
    groups: usize,
    probe: impl FnOnce() + Send,
) -> MemoryPlan {
    let reserved = || device.memory().map_or(0, |m| m.reserved);
    let baseline = reserved();
    let peak = AtomicU64::new(baseline);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(reserved(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let ran = s.spawn(probe).join();
        peak.fetch_max(reserved(), Ordering::Relaxed);
        done.store(true, Ordering::Relaxed);
        if let Err(panic) = ran {
            std::panic::resume_unwind(panic);
        }
    });
    let per_cell = peak.into_inner().saturating_sub(baseline);
    let budget = budget.or_else(|| device.memory().and_then(|m| m.capacity));
    MemoryPlan {
        baseline,
        per_cell,
        budget,
        jobs: budget.map_or(1, |b| jobs_for_memory(b, baseline, per_cell, groups)),
    }
}

/// What a memory plan decided, for people.
pub fn plan_line(plan: &MemoryPlan) -> String {
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    match plan.budget {
        Some(b) => format!(
            "device memory: one cell takes {:.0} MiB (device held {:.0} MiB before); \
             budget {:.0} MiB -> {} cells at once",
            mib(plan.per_cell),
            mib(plan.baseline),
            mib(b),
            plan.jobs
        ),
        None => format!(
            "device memory: one cell takes {:.0} MiB, but the device states no capacity: \
             one cell at a time (set --device-memory or --jobs)",
            mib(plan.per_cell)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::Manifest;
    use fl_data::scratch::ScratchDir;
    use serde::{Deserialize, Serialize};

    /// A cell whose "run" squares its number; group = number / 10.
    #[derive(Clone, Debug)]
    struct Toy {
        id: String,
        n: u64,
    }

    impl CellSpec for Toy {
        fn id(&self) -> &str {
            &self.id
        }
        fn hash(&self) -> &str {
            "h"
        }
        fn group(&self) -> String {
            (self.n / 10).to_string()
        }
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Square {
        id: String,
        config_hash: String,
        square: u64,
        /// The cells its worker had run before it, in its group (to see the order).
        before: Vec<u64>,
    }

    impl Record for Square {
        fn id(&self) -> &str {
            &self.id
        }
        fn config_hash(&self) -> &str {
            &self.config_hash
        }
        fn without_times(&self) -> Self {
            self.clone()
        }
        fn headline(&self) -> String {
            self.square.to_string()
        }
    }

    /// Fails on 13; counts the cells it ran.
    struct Squares {
        ran: std::sync::atomic::AtomicUsize,
    }

    impl Experiment for Squares {
        type Cell = Toy;
        type Record = Square;

        fn run_group(
            &self,
            cells: &[Toy],
            _ctx: GroupContext,
            done: &mut dyn FnMut(&Toy, Result<Square>),
        ) {
            let mut before = Vec::new();
            for c in cells {
                self.ran.fetch_add(1, Ordering::Relaxed);
                let r = if c.n == 13 {
                    Err(anyhow::anyhow!("13 is unlucky"))
                } else {
                    Ok(Square {
                        id: c.id.clone(),
                        config_hash: "h".into(),
                        square: c.n * c.n,
                        before: before.clone(),
                    })
                };
                before.push(c.n);
                done(c, r);
            }
        }
    }

    fn toys(ns: &[u64]) -> Vec<Toy> {
        ns.iter()
            .map(|&n| Toy {
                id: format!("c{n}"),
                n,
            })
            .collect()
    }

    fn options(jobs: usize, shard: Option<Shard>) -> GridOptions {
        GridOptions {
            out: PathBuf::new(),
            jobs,
            threads: 1,
            shard,
            warm_start: true,
            progress: false,
            device_memory: None,
        }
    }

    #[test]
    fn the_driver_skips_finished_cells_keeps_groups_in_order_and_reports_failures() {
        let tmp = ScratchDir::new("grid-engine").unwrap();
        let manifest = Manifest {
            name: "toy".into(),
            base_hash: "b".into(),
        };
        let dir = GridDir::<Square>::create(tmp.path(), &manifest).unwrap();
        let mut exp = Squares {
            ran: Default::default(),
        };
        let cells = toys(&[10, 11, 12, 13, 20, 21, 30]);
        // Shard 0 of 2: the first 3 cells (10, 11, 12).
        let r = run(
            &mut exp,
            "toy",
            cells.clone(),
            &dir,
            &options(2, Some(Shard { index: 0, count: 2 })),
        )
        .unwrap();
        assert_eq!((r.cells, r.ran, r.skipped), (3, 3, 0));
        // Everything: the 3 finished are skipped, 13 fails, the rest run.
        let r = run(&mut exp, "toy", cells.clone(), &dir, &options(2, None)).unwrap();
        assert_eq!((r.cells, r.skipped, r.ran), (7, 3, 3));
        assert_eq!(r.failed.len(), 1);
        assert!(r.failed[0].0 == "c13" && r.failed[0].1.contains("unlucky"));
        let all = dir.all().unwrap();
        assert_eq!(all.len(), 6);
        assert_eq!(all["c21"].square, 441);
        // Cells of a group run in order on one worker: 21 after 20; 13's group ran alone
        // this time (10-12 were finished), 30 alone.
        assert_eq!(all["c21"].before, [20]);
        assert_eq!(all["c12"].before, [10, 11]);
        assert_eq!(all["c30"].before, Vec::<u64>::new());
        // Only the failed cell is left; a cell another process holds is left to it.
        let held = dir.claim(&cells[3]).unwrap().expect("free");
        let ran_before = exp.ran.load(Ordering::Relaxed);
        let r = run(&mut exp, "toy", cells.clone(), &dir, &options(1, None)).unwrap();
        assert_eq!((r.skipped, r.ran, r.elsewhere), (6, 0, 1));
        assert_eq!(exp.ran.load(Ordering::Relaxed), ran_before, "nothing ran");
        drop(held);
        // A finished cell of another config is refused, not reused.
        let mut other = cells.clone();
        other[0] = Toy {
            id: "c10".into(),
            n: 10,
        };
        std::fs::write(
            tmp.path().join("cells/c10.json"),
            serde_json::to_string(&Square {
                config_hash: "x".into(),
                ..all["c10"].clone()
            })
            .unwrap(),
        )
        .unwrap();
        let err = run(&mut exp, "toy", other, &dir, &options(1, None)).unwrap_err();
        assert!(
            format!("{err:#}").contains("another configuration"),
            "{err:#}"
        );
        // A folder of another base is refused.
        let other = Manifest {
            base_hash: "c".into(),
            ..manifest
        };
        assert!(GridDir::<Square>::create(tmp.path(), &other).is_err());
    }

    #[test]
    fn sizes_parse_in_binary_and_decimal_units() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("80G"), Ok(80 << 30));
        assert_eq!(parse_bytes("80gib"), Ok(80 << 30));
        assert_eq!(parse_bytes("80GB"), Ok(80_000_000_000));
        assert_eq!(parse_bytes("1.5GiB"), Ok(3 << 29));
        assert!(
            parse_bytes("70 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_bytes("GiB").unwrap_err().contains("positive size"));
        assert!(parse_bytes("0").is_err());
    }

    #[test]
    fn jobs_fill_ninety_percent_of_the_budget() {
        const MIB: u64 = 1 << 20;
        // 1000 MiB budget: 900 usable, 100 held already, 200 per cell -> 4 cells.
        assert_eq!(jobs_for_memory(1000 * MIB, 100 * MIB, 200 * MIB, 50), 4);
        // At most the groups left, at least one even when one cell does not fit.
        assert_eq!(jobs_for_memory(1000 * MIB, 0, MIB, 7), 7);
        assert_eq!(jobs_for_memory(100 * MIB, 50 * MIB, 200 * MIB, 7), 1);
        assert_eq!(jobs_for_memory(100 * MIB, 500 * MIB, 200 * MIB, 7), 1);
        // A cell that took no memory measurable: as many as there are groups.
        assert_eq!(jobs_for_memory(1000 * MIB, 0, 0, 9), 9);
    }

    #[test]
    fn a_cpu_device_has_no_memory_plan() {
        let mut calls = 0;
        let plan = fit_cells(DeviceKind::Flex, None, 5, || calls += 1);
        assert_eq!(calls, 1, "the probe cell runs once");
        assert_eq!(
            plan,
            MemoryPlan {
                baseline: 0,
                per_cell: 0,
                budget: None,
                jobs: 1
            }
        );
        assert!(plan_line(&plan).contains("one cell at a time"));
    }
}
