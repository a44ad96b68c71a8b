//! The sweep folder: a grid folder ([`crate::grid::store`]: `sweep.json`, `cells/*.json`,
//! `claims/`) whose records are [`CellResult`]s, with the grid itself as `grid.toml`.

use super::grid::Grid;
use crate::attack::AttackRunSummary;
use crate::grid::{GridDir, Manifest, Record};
use anyhow::{Context, Result};
use fl_data::DatasetKind;
use fl_data::atomic::write_atomic;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a finished cell leaves: its numbers, per-round attack accuracy, and a row of
/// generated images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    /// `<dataset>-s<seed>-g<G>-t<T>`.
    pub id: String,
    /// Dataset.
    pub dataset: DatasetKind,
    /// Seed.
    pub seed: u64,
    /// G.
    pub generate: usize,
    /// T.
    pub target: usize,
    /// Hash of the cell's resolved config.
    pub config_hash: String,
    /// The run's summary (as `summary.json` of `fl attack gan-poison`).
    pub summary: AttackRunSummary,
    /// Attack accuracy of every round (`confusion[G][T] / |G|` on the test split).
    pub attack_accuracy: Vec<f64>,
    /// Rounds taken from the shared warm-up instead of run for this cell.
    pub warm_rounds: usize,
    /// Wall time of the cell (its share of the warm-up not counted).
    pub seconds: f64,
    /// [`SAMPLE_ROW`] generated images of G at the end, 28x28 grey, hex-encoded bytes.
    pub samples: Option<String>,
}

/// Generated images kept per cell.
pub const SAMPLE_ROW: usize = 8;

impl CellResult {
    /// The average attack accuracy over the attack period (0 when the attack never started).
    pub fn value(&self) -> f64 {
        self.summary.attack.avg_attack_accuracy.unwrap_or(0.0)
    }

    /// The kept images as values in [-1, 1].
    pub fn images(&self) -> Option<Vec<f32>> {
        let hex = self.samples.as_ref()?;
        (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
            .map(|b| b.map(|b| b as f32 / 127.5 - 1.0))
            .collect()
    }
}

impl Record for CellResult {
    fn id(&self) -> &str {
        &self.id
    }

    fn config_hash(&self) -> &str {
        &self.config_hash
    }

    fn without_times(&self) -> Self {
        let mut c = self.clone();
        c.seconds = 0.0;
        c.summary.run.time = Default::default();
        c
    }

    fn headline(&self) -> String {
        format!("{:.3}", self.value())
    }
}

/// Bytes of images in [-1, 1] as hex (one byte per pixel).
pub fn encode_images(images: &[f32]) -> String {
    images
        .iter()
        .map(|&v| format!("{:02x}", ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8))
        .collect()
}

/// A sweep folder.
pub type SweepDir = GridDir<CellResult>;

/// Opens (creating) the folder for `grid`, writing it as `grid.toml`; refuses one that holds
/// another base config.
pub fn open(root: &Path, grid: &Grid) -> Result<SweepDir> {
    let manifest = Manifest {
        name: grid.name.clone(),
        base_hash: grid.base_hash()?,
    };
    let dir = SweepDir::create(root, &manifest)?;
    let text = toml::to_string(&grid.to_file()).context("writing grid.toml")?;
    write_atomic(&dir.root().join("grid.toml"), text.as_bytes())?;
    Ok(dir)
}

/// `fl sweep merge`: copies the cells (and `grid.toml`) of every `sources` folder into
/// `out`, refusing folders of another base config and cells that disagree. Returns the
/// number of cells in `out`.
pub fn merge(out: &Path, sources: &[PathBuf]) -> Result<usize> {
    crate::grid::merge::<CellResult>(out, sources, &["grid.toml"])
}
