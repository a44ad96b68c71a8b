//! The grid engine: any experiment over axes of config values, as cells that are hashed,
//! claimed, run on `--jobs` workers, written atomically, resumable and sharded.
//!
//! - [`axes`]: axes of config assignments (one key, or several set together such as a
//!   (G, T) pair) and their expansion over a base config into cells, first axis slowest;
//! - [`store`]: the grid folder (`sweep.json`, `cells/<id>.json`, `claims/`), `merge`;
//! - [`run()`]: the driver: finished cells skipped, the rest grouped (cells of a group run in
//!   order on one worker, so a warm-up can be shared), claimed so that two processes on one
//!   folder never run a cell twice, `--shard i/N`, device-memory fitting on a GPU;
//! - [`runs`]: the experiment of `fl grid`: each cell any `fl run` config, run into its own
//!   run folder, its `summary.json` the cell's record; `table.csv` its report.
//!
//! An experiment is a type implementing [`Experiment`]: its cells ([`CellSpec`]: id, config
//! hash, group, device) and what a finished cell leaves ([`Record`]). `fl sweep` (the 90-pair
//! study), `fl experiment mia-table` and `fl grid` are three such types.

pub mod axes;
pub mod run;
pub mod runs;
pub mod store;

pub use axes::{Axis, Point, expand, vary_axes};
pub use run::{GridOptions, GridReport, MemoryPlan, Shard, cores, jobs_for_memory, plan_line, run};
pub use store::{GridDir, Manifest, merge};

use anyhow::Result;
use fl_core::DeviceKind;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// One cell of a grid, resolved and checked.
pub trait CellSpec: Clone + Send + Sync {
    /// The cell's name in its folder (`cells/<id>.json`).
    fn id(&self) -> &str;
    /// Hash of everything that decides the cell's numbers: a finished cell with another hash
    /// is refused, not silently reused.
    fn hash(&self) -> &str;
    /// Cells of one group run in order on one worker (they may share a warm-up); by
    /// default every cell is its own group.
    fn group(&self) -> String {
        self.id().to_string()
    }
    /// The device the cell runs on (a GPU's cells can be fitted to its memory).
    fn device(&self) -> DeviceKind {
        DeviceKind::Flex
    }
}

/// What a finished cell leaves in `cells/<id>.json`.
pub trait Record: Serialize + DeserializeOwned + Clone + PartialEq + Send {
    /// The cell's id.
    fn id(&self) -> &str;
    /// The hash of the config it ran.
    fn config_hash(&self) -> &str;
    /// The same record with every wall-clock figure zeroed (two runs compare equal when their
    /// numbers do).
    fn without_times(&self) -> Self;
    /// One short line for the progress bar.
    fn headline(&self) -> String;
}

/// How one group of cells is run.
#[derive(Debug, Clone, Copy)]
pub struct GroupContext {
    /// Worker threads inside each cell.
    pub threads: usize,
    /// Whether cells of the group may share a warm-up.
    pub warm_start: bool,
}

/// An experiment the grid engine can run.
pub trait Experiment: Sync {
    /// A cell.
    type Cell: CellSpec;
    /// A finished cell.
    type Record: Record;

    /// Called once with the cells left to run, before any worker starts (e.g. to train a
    /// shared oracle once).
    fn prepare(&mut self, pending: &[Self::Cell]) -> Result<()> {
        let _ = pending;
        Ok(())
    }

    /// Runs the cells of one group in order, handing each result to `done` as it finishes (a
    /// failed cell is an `Err`; the others still run).
    #[allow(clippy::type_complexity)] // the callback's type, spelt out, is the clearest
    fn run_group(
        &self,
        cells: &[Self::Cell],
        ctx: GroupContext,
        done: &mut dyn FnMut(&Self::Cell, Result<Self::Record>),
    );
}

/// SHA-256 (first 16 hex digits) of a value's JSON form with the top-level keys that never
/// change a run's numbers left out: `name`, `data_dir` and `threads`.
pub fn numbers_hash<T: Serialize>(value: &T) -> String {
    let mut v = serde_json::to_value(value).expect("configs serialise");
    if let Some(m) = v.as_object_mut() {
        for k in ["name", "data_dir", "threads"] {
            m.remove(k);
        }
    }
    let text = serde_json::to_string(&v).expect("values serialise");
    fl_data::checksum::sha256_hex(text.as_bytes())[..16].to_string()
}
