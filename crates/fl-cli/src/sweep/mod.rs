//! The 90-combination study as a sweep: every (dataset, seed, G, T) of a grid is one cell, a
//! run of `fl attack gan-poison`, stored as one file; then a report over the cells.
//!
//! - [`grid`]: the grid file and presets, cells and their config hashes;
//! - [`run`]: the study as an experiment of the grid engine ([`crate::grid`]: cells in
//!   parallel, resumable, claimed, `--shard i/N`), warm-ups shared by the nine targets of a
//!   (dataset, seed, G);
//! - [`store`]: the sweep folder (a grid folder with `grid.toml`), `merge`;
//! - [`report`] and [`stats`]: matrices, heat maps, histogram, symmetry and class tests;
//! - [`emit`]: Slurm and Kubernetes scripts that run the shards.

pub mod analysis;
pub mod emit;
pub mod grid;
pub mod report;
pub mod run;
pub mod stats;
pub mod store;

pub use crate::grid::{GridOptions, GridReport, Shard};
pub use grid::{Cell, Grid};
pub use store::{CellResult, SweepDir};

use anyhow::Result;
use std::path::{Path, PathBuf};

/// Cells of the full study (2 datasets x 90 pairs x 3 seeds), for time projections.
/// Classes of the study's datasets (MNIST and Fashion-MNIST): its matrices are K x K, and a
/// grid over a dataset with another number of classes is refused.
pub const K: usize = 10;

pub const FULL_GRID_CELLS: usize = 540;

/// Runs `grid` into `opts.out` and, unless sharded, writes the report; returns what ran and
/// the path of `report.md` when written.
pub fn sweep(grid: &Grid, opts: &GridOptions) -> Result<(GridReport, Option<PathBuf>)> {
    let report = run::run(grid, opts)?;
    let md = if opts.shard.is_none() {
        let dir = store::open(&opts.out, grid)?;
        Some(report::write(&dir, &grid.name, Some(grid.cells()?.len()))?)
    } else {
        None
    };
    Ok((report, md))
}

/// `fl sweep report DIR`: the report of whatever cells `dir` holds.
pub fn report_dir(dir: &Path) -> Result<PathBuf> {
    let (d, manifest) = SweepDir::existing(dir)?;
    let expected = Grid::load(&dir.join("grid.toml"))
        .ok()
        .and_then(|g| g.cells().ok())
        .map(|c| c.len());
    report::write(&d, &manifest.name, expected)
}
