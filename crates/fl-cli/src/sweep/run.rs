//! The sweep as an experiment of the grid engine: cells of one (dataset, seed, G) form a
//! group that loads its data once and shares its warm-up rounds.

use super::grid::{Cell, Grid};
use super::store::{CellResult, SAMPLE_ROW, encode_images, open};
use crate::attack::{conclude, fidelity_oracle};
use crate::config::server_rule;
use crate::grid::{CellSpec, Experiment, GridOptions, GridReport, GroupContext};
use anyhow::{Context, Result, bail};
use fl_core::DeviceKind;
use fl_data::DatasetKind;
use fl_gan::oracle::Oracle;
use fl_poison::{AttackRoundMetrics, AttackRun, WarmStart};
use std::collections::HashMap;
use std::time::Instant;

pub use crate::grid::run::{MemoryPlan, Shard, cores, jobs_for_memory, parse_bytes, plan_line};

impl CellSpec for Cell {
    fn id(&self) -> &str {
        &self.id
    }

    fn hash(&self) -> &str {
        &self.hash
    }

    /// The cells sharing this one's warm-up: same dataset, seed and G.
    fn group(&self) -> String {
        format!("{}-s{}-g{}", self.dataset.name(), self.seed, self.generate)
    }

    fn device(&self) -> DeviceKind {
        self.fed.device
    }
}

/// The GAN-poisoning study: its fidelity oracles, one per dataset, trained once.
#[derive(Default)]
pub struct SweepExperiment {
    oracles: HashMap<DatasetKind, Option<Oracle>>,
}

impl Experiment for SweepExperiment {
    type Cell = Cell;
    type Record = CellResult;

    fn prepare(&mut self, pending: &[Cell]) -> Result<()> {
        self.oracles = load_oracles(pending)?;
        Ok(())
    }

    fn run_group(
        &self,
        cells: &[Cell],
        ctx: GroupContext,
        done: &mut dyn FnMut(&Cell, Result<CellResult>),
    ) {
        let oracle = self.oracles.get(&cells[0].dataset).and_then(|o| o.as_ref());
        run_group(cells, ctx.threads, ctx.warm_start, oracle, done);
    }
}

/// Runs the unfinished cells of `grid` (of its shard) into `opts.out`.
pub fn run(grid: &Grid, opts: &GridOptions) -> Result<GridReport> {
    let dir = open(&opts.out, grid)?;
    crate::grid::run(
        &mut SweepExperiment::default(),
        &grid.name,
        grid.cells()?,
        &dir,
        opts,
    )
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
    done: &mut dyn FnMut(&Cell, Result<CellResult>),
) {
    let fed = |c: &Cell| fl_core::FedConfig {
        threads,
        ..c.fed.clone()
    };
    let prepared = match AttackRun::prepare(&fed(&cells[0]), &cells[0].attack) {
        Ok(p) => p,
        Err(e) => {
            for c in cells {
                done(c, Err(anyhow::anyhow!("preparing the data: {e}")));
            }
            return;
        }
    };
    let mut warm: Option<WarmStart> = None;
    for c in cells {
        let share = warm_start && cells.len() > 1;
        let r = run_cell(c, &fed(c), prepared.clone(), &mut warm, share, oracle);
        done(c, r);
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
    let mut run = AttackRun::from_prepared_with(prepared, &cell.attack, rule)?
        .with_attacker_rule(server_rule(&cell.fed, &cell.defense)?);
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
        samples: samples
            .map(|s| encode_images(&s[..SAMPLE_ROW * fl_gan::generator::IMAGE.pixels()])),
    })
}
