//! Running the cells of a grid: in parallel, resumable, sharded, sharing warm-ups.

use super::grid::{Cell, Grid};
use super::store::{CellResult, SAMPLE_ROW, SweepDir, encode_images};
use crate::attack::{conclude, fidelity_oracle};
use crate::config::server_rule;
use anyhow::{Context, Result, bail};
use fl_core::data::PIXELS;
use fl_data::DatasetKind;
use fl_gan::oracle::Oracle;
use fl_poison::{AttackRoundMetrics, AttackRun, WarmStart};
use indicatif::ProgressBar;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

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
    /// Cells that failed, with the reason.
    pub failed: Vec<(String, String)>,
    /// Wall time of this run.
    pub seconds: f64,
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
    let jobs = if opts.jobs == 0 { cores() } else { opts.jobs };
    let threads = if opts.threads == 0 {
        (cores() / jobs).max(1)
    } else {
        opts.threads
    };
    let oracles = load_oracles(&pending)?;
    let mut groups: BTreeMap<(&str, u64, usize), Vec<Cell>> = BTreeMap::new();
    for c in &pending {
        let (d, s, g) = c.group();
        groups.entry((d.name(), s, g)).or_default().push(c.clone());
    }
    let queue = Mutex::new(groups.into_values().collect::<VecDeque<_>>());
    let bar = cells_bar(pending.len(), &grid.name, opts.progress);
    let failed = Mutex::new(Vec::new());
    let ran = Mutex::new(0usize);
    std::thread::scope(|s| {
        for _ in 0..jobs.min(pending.len()) {
            s.spawn(|| {
                loop {
                    // Popped in its own statement: a guard in the `while let` scrutinee would
                    // stay locked for the whole group and serialise the workers.
                    let next = queue.lock().expect("queue").pop_front();
                    let Some(group) = next else { break };
                    let oracle = oracles.get(&group[0].dataset).and_then(|o| o.as_ref());
                    run_group(&group, threads, opts.warm_start, oracle, &mut |id, r| {
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
                    });
                }
            });
        }
    });
    bar.finish();
    report.ran = ran.into_inner().expect("count");
    report.failed = failed.into_inner().expect("list");
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
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
