//! Running the cells of a grid: in parallel, resumable, sharded, sharing warm-ups.

use super::grid::{Cell, Grid};
use super::store::{CellResult, Claim, SAMPLE_ROW, SweepDir, encode_images};
use crate::attack::{conclude, fidelity_oracle};
use crate::config::server_rule;
use anyhow::{Context, Result, bail};
use fl_core::DeviceKind;
use fl_core::data::PIXELS;
use fl_data::DatasetKind;
use fl_gan::oracle::Oracle;
use fl_poison::{AttackRoundMetrics, AttackRun, WarmStart};
use indicatif::ProgressBar;
use std::collections::{BTreeMap, HashMap};
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

/// How to run a sweep.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// The sweep folder.
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

/// How the cells of a sweep on a GPU device were fitted into its memory (`--jobs 0`).
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

/// What a sweep did.
#[derive(Debug, Clone, Default)]
pub struct SweepReport {
    /// Cells in this (share of the) grid.
    pub cells: usize,
    /// Already finished before this run.
    pub skipped: usize,
    /// Finished by this run.
    pub ran: usize,
    /// Left to another sweep on the same folder, which held them (or had just finished them)
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

impl SweepReport {
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

/// Runs the unfinished cells of `grid` (of its shard) into `opts.out`.
pub fn run(grid: &Grid, opts: &SweepOptions) -> Result<SweepReport> {
    let started = Instant::now();
    let dir = SweepDir::open(&opts.out, grid)?;
    let mut cells = grid.cells()?;
    if let Some(s) = opts.shard {
        cells = s.select(&cells);
    }
    let mut pending = Vec::new();
    for c in &cells {
        if dir.finished(c)?.is_none() {
            pending.push(c.clone());
        }
    }
    let mut report = SweepReport {
        cells: cells.len(),
        skipped: cells.len() - pending.len(),
        ..Default::default()
    };
    if pending.is_empty() {
        return Ok(report);
    }
    let device = pending[0].fed.device;
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
    let oracles = load_oracles(&pending)?;
    let mut groups: BTreeMap<(&str, u64, usize), Vec<Cell>> = BTreeMap::new();
    let mut probe = None;
    for (i, c) in pending.iter().enumerate() {
        if fit_to_memory && i == 0 {
            // Run alone first, so that its peak is one cell's.
            probe = Some(c.clone());
            continue;
        }
        let (d, s, g) = c.group();
        groups.entry((d.name(), s, g)).or_default().push(c.clone());
    }
    let groups: Vec<Vec<Cell>> = groups.into_values().collect();
    let bar = cells_bar(pending.len(), &grid.name, opts.progress);
    let failed = Mutex::new(Vec::new());
    let ran = Mutex::new(0usize);
    let elsewhere = Mutex::new(0usize);
    // The cells of `group` this process can claim, with their claims; the others are being
    // (or have just been) run by another sweep on this folder.
    let claim = |group: Vec<Cell>| -> (Vec<Cell>, Vec<Claim>) {
        let (mut mine, mut claims) = (Vec::new(), Vec::new());
        for c in group {
            // A cell claimed just after another sweep finished it is not run again.
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
                        .push((c.id.clone(), format!("{e:#}")));
                    bar.inc(1);
                }
            }
        }
        (mine, claims)
    };
    let record = |id: String, r: Result<CellResult>| {
        match r {
            Ok(r) => match dir.write(&r) {
                Ok(()) => {
                    *ran.lock().expect("count") += 1;
                    bar.set_message(format!("{id}: {:.3}", r.value()));
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
        if let Some(cell) = mine.first() {
            let oracle = oracles.get(&cell.dataset).and_then(|o| o.as_ref());
            let plan = fit_cells(device, opts.device_memory, groups.len(), || {
                run_group(&mine, threads, false, oracle, &mut |id, r| record(id, r))
            });
            bar.println(plan_line(&plan));
            jobs = plan.jobs;
            report.memory = Some(plan);
        }
    }
    report.jobs = jobs;
    fl_core::pool::map_ordered(groups, jobs, |group| {
        // Claims are held until the whole group is written.
        let (group, _claims) = claim(group);
        if let Some(first) = group.first() {
            let oracle = oracles.get(&first.dataset).and_then(|o| o.as_ref());
            run_group(&group, threads, opts.warm_start, oracle, &mut |id, r| {
                record(id, r)
            });
        }
    });
    bar.finish();
    report.ran = ran.into_inner().expect("count");
    report.elsewhere = elsewhere.into_inner().expect("count");
    report.failed = failed.into_inner().expect("list");
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
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

/// One fidelity oracle per dataset among `cells` (trained here once if not cached, before
/// the workers start, so they never train it twice).
fn load_oracles(cells: &[Cell]) -> Result<HashMap<DatasetKind, Option<Oracle>>> {
    let mut out = HashMap::new();
    for c in cells {
        if out.contains_key(&c.dataset) {
            continue;
        }
        let effective = c.attack.federated_config(&c.fed);
        let spec = fl_core::experiment::Prepared::spec_of(&effective)?;
        out.insert(c.dataset, fidelity_oracle(&effective, &c.attack, &spec)?);
    }
    Ok(out)
}

/// Runs the cells of one (dataset, seed, G) in order, on data loaded once; with `warm_start`
/// the rounds before the attack run once and every later target continues from them.
fn run_group(
    cells: &[Cell],
    threads: usize,
    warm_start: bool,
    oracle: Option<&Oracle>,
    done: &mut dyn FnMut(String, Result<CellResult>),
) {
    let fed = |c: &Cell| fl_core::FedConfig {
        threads,
        ..c.fed.clone()
    };
    let prepared = match AttackRun::prepare(&fed(&cells[0]), &cells[0].attack) {
        Ok(p) => p,
        Err(e) => {
            for c in cells {
                done(
                    c.id.clone(),
                    Err(anyhow::anyhow!("preparing the data: {e}")),
                );
            }
            return;
        }
    };
    let mut warm: Option<WarmStart> = None;
    for c in cells {
        let share = warm_start && cells.len() > 1;
        let r = run_cell(c, &fed(c), prepared.clone(), &mut warm, share, oracle);
        done(c.id.clone(), r);
    }
}

/// One cell: from `warm` when there is one; records a warm start into it when `share`.
fn run_cell(
    cell: &Cell,
    fed: &fl_core::FedConfig,
    prepared: fl_core::experiment::Prepared,
    warm: &mut Option<WarmStart>,
    share: bool,
    oracle: Option<&Oracle>,
) -> Result<CellResult> {
    let started = Instant::now();
    let rule = server_rule(&cell.fed, &cell.defense)?;
    let mut run = AttackRun::from_prepared_with(prepared, &cell.attack, rule)?;
    let mut rows: Vec<AttackRoundMetrics> = match warm {
        Some(w) => run.resume(w)?,
        None => Vec::new(),
    };
    let warm_rounds = rows.len();
    while !run.is_finished(rows.last()) {
        if share && warm.is_none() && !rows.is_empty() && run.warm_up_rounds() == Some(rows.len()) {
            *warm = Some(run.warm_start(&rows));
        }
        rows.push(
            run.run_round()
                .with_context(|| format!("cell {}", cell.id))?,
        );
    }
    let effective = cell.attack.federated_config(fed);
    let (summary, samples) = conclude(&run, &effective, &rows, oracle);
    if let Some(bad) = rows.iter().find(|r| r.scores.is_none()) {
        bail!(
            "round {} of cell {} was not evaluated",
            bad.base.round,
            cell.id
        );
    }
    Ok(CellResult {
        id: cell.id.clone(),
        dataset: cell.dataset,
        seed: cell.seed,
        generate: cell.generate,
        target: cell.target,
        config_hash: cell.hash.clone(),
        summary,
        attack_accuracy: rows
            .iter()
            .filter_map(|r| r.scores.as_ref().map(|s| s.attack_accuracy))
            .collect(),
        warm_rounds,
        seconds: crate::summary::round6(started.elapsed().as_secs_f64()),
        samples: samples.map(|s| encode_images(&s[..SAMPLE_ROW * PIXELS])),
    })
}

/// A bar over cells with the ETA, hidden when not wanted.
fn cells_bar(len: usize, name: &str, visible: bool) -> ProgressBar {
    if visible {
        crate::progress::counter_bar(len as u64, name, "cell")
    } else {
        ProgressBar::hidden()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
