//! The grid folder: `sweep.json` (what the cells belong to), one file per finished cell under
//! `cells/`, each written atomically so an interrupted run loses only the cells it was
//! running, and under `claims/` the locks by which processes sharing the folder divide the
//! cells between them.

use super::{CellSpec, Record};
use anyhow::{Context, Result, bail};
use fl_data::atomic::write_atomic;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// `sweep.json`: the grid's name and the hash every cell's base config must have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Name.
    pub name: String,
    /// The hash of the config the cells vary around (the experiment decides what it covers).
    pub base_hash: String,
}

/// This process's hold on a running cell (see [`GridDir::claim`]); released on drop.
#[derive(Debug)]
pub struct Claim {
    _lock: std::fs::File,
}

/// A grid folder whose cells leave records of type `R`.
pub struct GridDir<R> {
    root: PathBuf,
    records: PhantomData<fn() -> R>,
}

impl<R: Record> GridDir<R> {
    /// Opens (creating) a folder for cells of `manifest`; refuses one with another base hash.
    pub fn create(root: &Path, manifest: &Manifest) -> Result<Self> {
        std::fs::create_dir_all(root.join("cells"))
            .with_context(|| format!("creating {}", root.display()))?;
        let dir = Self::at(root);
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

    /// Opens an existing grid folder.
    pub fn existing(root: &Path) -> Result<(Self, Manifest)> {
        let dir = Self::at(root);
        let m = dir
            .manifest()?
            .with_context(|| format!("{} is not a sweep folder (no sweep.json)", root.display()))?;
        Ok((dir, m))
    }

    fn at(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            records: PhantomData,
        }
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

    /// The finished record of `cell`, if any; an error if it was run with another config.
    pub fn finished(&self, cell: &impl CellSpec) -> Result<Option<R>> {
        let path = self.cell_path(cell.id());
        if !path.exists() {
            return Ok(None);
        }
        let r: R = read_cell(&path)?;
        if r.config_hash() != cell.hash() {
            bail!(
                "{} was run with another configuration (hash {}, this grid {}): \
                 use another --out or remove the cell",
                path.display(),
                r.config_hash(),
                cell.hash()
            );
        }
        Ok(Some(r))
    }

    /// Claims `cell` for this process while it runs; `None` when another process (another
    /// run on this folder) holds it. The claim is an exclusive lock on `claims/<id>`, which
    /// the kernel releases when the claim is dropped or the process ends however it ends, so
    /// a killed run leaves nothing stale. The lock files stay: deleting one while another
    /// process has it open would let two processes lock two different files of one name.
    pub fn claim(&self, cell: &impl CellSpec) -> Result<Option<Claim>> {
        let dir = self.root.join("claims");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(cell.id());
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
    pub fn write(&self, r: &R) -> Result<()> {
        let text = serde_json::to_string_pretty(r)?;
        write_atomic(&self.cell_path(r.id()), text.as_bytes())
            .with_context(|| format!("writing cell {}", r.id()))
    }

    /// Every finished cell, by id.
    pub fn all(&self) -> Result<BTreeMap<String, R>> {
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
            let r: R = read_cell(&path)?;
            out.insert(r.id().to_string(), r);
        }
        Ok(out)
    }
}

fn read_cell<R: Record>(path: &Path) -> Result<R> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a cell result", path.display()))
}

/// Copies the cells of every `sources` folder into `out`, refusing folders of another base
/// config and cells that disagree; files named in `carry` (e.g. `grid.toml`) are copied from
/// the first source holding them when `out` has none. Returns the number of cells in `out`.
pub fn merge<R: Record>(out: &Path, sources: &[PathBuf], carry: &[&str]) -> Result<usize> {
    if sources.is_empty() {
        bail!("nothing to merge: name the shard folders");
    }
    let (_, first) = GridDir::<R>::existing(&sources[0])?;
    let dest = GridDir::<R>::create(out, &first)?;
    let mut have = dest.all()?;
    for src in sources {
        let (dir, m) = GridDir::<R>::existing(src)?;
        if m.base_hash != first.base_hash {
            bail!(
                "{} holds cells of another configuration (base hash {}, {} has {})",
                src.display(),
                m.base_hash,
                sources[0].display(),
                first.base_hash
            );
        }
        for name in carry {
            if dir.root() != dest.root()
                && let Ok(text) = std::fs::read(dir.root().join(name))
                && !dest.root().join(name).exists()
            {
                write_atomic(&dest.root().join(name), &text)?;
            }
        }
        for (id, r) in dir.all()? {
            match have.get(&id) {
                Some(h) if h.config_hash() != r.config_hash() => bail!(
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
