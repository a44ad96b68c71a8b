//! The sweep folder: `sweep.json` (what the cells belong to), `grid.toml`, one file per
//! finished cell under `cells/`, each written atomically so an interrupted sweep loses only
//! the cells it was running, and under `claims/` the locks by which sweeps sharing the folder
//! divide the cells between them.

use super::grid::{Cell, Grid};
use crate::attack::AttackRunSummary;
use anyhow::{Context, Result, bail};
use fl_data::DatasetKind;
use fl_data::atomic::write_atomic;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `sweep.json`: the sweep's name and the hash every cell's base config must have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Name.
    pub name: String,
    /// [`Grid::base_hash`].
    pub base_hash: String,
}

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

    /// The same result with every wall-clock figure zeroed (to compare two runs' numbers).
    pub fn without_times(&self) -> Self {
        let mut c = self.clone();
        c.seconds = 0.0;
        c.summary.run.time = Default::default();
        c
    }
}

/// Bytes of images in [-1, 1] as hex (one byte per pixel).
pub fn encode_images(images: &[f32]) -> String {
    images
        .iter()
        .map(|&v| format!("{:02x}", ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8))
        .collect()
}

/// This process's hold on a running cell (see [`SweepDir::claim`]); released on drop.
#[derive(Debug)]
pub struct Claim {
    _lock: std::fs::File,
}

/// A sweep folder.
pub struct SweepDir {
    root: PathBuf,
}

impl SweepDir {
    /// Opens (creating) the folder for `grid`; refuses one that holds another base config.
    pub fn open(root: &Path, grid: &Grid) -> Result<Self> {
        let manifest = Manifest {
            name: grid.name.clone(),
            base_hash: grid.base_hash()?,
        };
        let dir = Self::create(root, &manifest)?;
        let text = toml::to_string(&grid.to_file()).context("writing grid.toml")?;
        write_atomic(&dir.root.join("grid.toml"), text.as_bytes())?;
        Ok(dir)
    }

    /// Opens (creating) a folder for cells of `manifest`; refuses one with another base hash.
    pub fn create(root: &Path, manifest: &Manifest) -> Result<Self> {
        std::fs::create_dir_all(root.join("cells"))
            .with_context(|| format!("creating {}", root.display()))?;
        let dir = Self {
            root: root.to_path_buf(),
        };
        match dir.manifest()? {
            Some(m) if m.base_hash != manifest.base_hash => bail!(
                "{} holds cells of another configuration (base hash {}, this grid {}): \
                 use another --out or remove the folder",
                root.display(),
                m.base_hash,
                manifest.base_hash
            ),
            Some(_) => {}
            None => write_atomic(
                &dir.root.join("sweep.json"),
                serde_json::to_string_pretty(manifest)?.as_bytes(),
            )?,
        }
        Ok(dir)
    }

    /// Opens an existing sweep folder.
    pub fn existing(root: &Path) -> Result<(Self, Manifest)> {
        let dir = Self {
            root: root.to_path_buf(),
        };
        let m = dir
            .manifest()?
            .with_context(|| format!("{} is not a sweep folder (no sweep.json)", root.display()))?;
        Ok((dir, m))
    }

    fn manifest(&self) -> Result<Option<Manifest>> {
        let path = self.root.join("sweep.json");
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)?;
        Ok(Some(serde_json::from_str(&text).with_context(|| {
            format!("{} is damaged", path.display())
        })?))
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn cell_path(&self, id: &str) -> PathBuf {
        self.root.join("cells").join(format!("{id}.json"))
    }

    /// The finished result of `cell`, if any; an error if it was run with another config.
    pub fn finished(&self, cell: &Cell) -> Result<Option<CellResult>> {
        let path = self.cell_path(&cell.id);
        if !path.exists() {
            return Ok(None);
        }
        let r = read_cell(&path)?;
        if r.config_hash != cell.hash {
            bail!(
                "{} was run with another configuration (hash {}, this grid {}): \
                 use another --out or remove the cell",
                path.display(),
                r.config_hash,
                cell.hash
            );
        }
        Ok(Some(r))
    }

    /// Claims `cell` for this process while it runs; `None` when another process (another
    /// sweep on this folder) holds it. The claim is an exclusive lock on `claims/<id>`, which
    /// the kernel releases when the claim is dropped or the process ends however it ends, so
    /// a killed sweep leaves nothing stale. The lock files stay: deleting one while another
    /// process has it open would let two processes lock two different files of one name.
    pub fn claim(&self, cell: &Cell) -> Result<Option<Claim>> {
        let dir = self.root.join("claims");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(&cell.id);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Claim { _lock: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }

    /// Writes a finished cell (temporary file + rename).
    pub fn write(&self, r: &CellResult) -> Result<()> {
        let text = serde_json::to_string_pretty(r)?;
        write_atomic(&self.cell_path(&r.id), text.as_bytes())
            .with_context(|| format!("writing cell {}", r.id))
    }

    /// Every finished cell, by id.
    pub fn all(&self) -> Result<BTreeMap<String, CellResult>> {
        let mut out = BTreeMap::new();
        let cells = self.root.join("cells");
        let entries = match std::fs::read_dir(&cells) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).with_context(|| format!("reading {}", cells.display())),
        };
        for e in entries {
            let path = e?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // Temporaries of interrupted writes start with a dot; they are not cells.
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            let r = read_cell(&path)?;
            out.insert(r.id.clone(), r);
        }
        Ok(out)
    }
}

fn read_cell(path: &Path) -> Result<CellResult> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a cell result", path.display()))
}

/// `fl sweep merge`: copies the cells of every `sources` folder into `out`, refusing folders
/// of another base config and cells that disagree. Returns the number of cells in `out`.
pub fn merge(out: &Path, sources: &[PathBuf]) -> Result<usize> {
    if sources.is_empty() {
        bail!("nothing to merge: name the shard folders");
    }
    let (_, first) = SweepDir::existing(&sources[0])?;
    let dest = SweepDir::create(out, &first)?;
    let mut have = dest.all()?;
    for src in sources {
        let (dir, m) = SweepDir::existing(src)?;
        if m.base_hash != first.base_hash {
            bail!(
                "{} holds cells of another configuration (base hash {}, {} has {})",
                src.display(),
                m.base_hash,
                sources[0].display(),
                first.base_hash
            );
        }
        if dir.root() != dest.root()
            && let Ok(text) = std::fs::read(dir.root().join("grid.toml"))
            && !dest.root().join("grid.toml").exists()
        {
            write_atomic(&dest.root().join("grid.toml"), &text)?;
        }
        for (id, r) in dir.all()? {
            match have.get(&id) {
                Some(h) if h.config_hash != r.config_hash => bail!(
                    "cell {id}: {} was run with another configuration than the one already in {}",
                    src.display(),
                    out.display()
                ),
                Some(h) if h.without_times() != r.without_times() => bail!(
                    "cell {id}: {} disagrees with the copy already in {}",
                    src.display(),
                    out.display()
                ),
                Some(_) => {}
                None => {
                    dest.write(&r)?;
                    have.insert(id, r);
                }
            }
        }
    }
    Ok(have.len())
}
