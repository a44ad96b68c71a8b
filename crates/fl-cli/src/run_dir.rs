//! A run's output folder: resolved config, per-round metrics, summary, pictures.
//! Every file is written atomically, so a reader (or a killed run) never leaves half a file.

use anyhow::{Context, Result, bail};
use fl_data::atomic::write_atomic;
use serde::Serialize;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The lock file a run holds in its folder while it writes there.
pub const LOCK: &str = ".run.lock";

/// The folder `results/<name>/` (or `--out`), held by this process while the value lives.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
    _lock: Arc<File>,
}

impl RunDir {
    /// Creates (or reuses) the folder and locks it (`.run.lock`, `File::try_lock`), so two
    /// runs never write into one folder at once; the lock goes with the process, so a killed
    /// run holds nothing.
    pub fn create(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
        let lock_path = path.join(LOCK);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => bail!(
                "another run is writing into {} (it holds {LOCK}); wait for it, or pick \
                 another folder (--out)",
                path.display()
            ),
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", lock_path.display()));
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            _lock: Arc::new(file),
        })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A file inside the folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `bytes` to `name` atomically.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let p = self.file(name);
        write_atomic(&p, bytes).with_context(|| format!("writing {}", p.display()))
    }

    /// Writes the resolved configuration as TOML.
    pub fn write_config<T: Serialize>(&self, config: &T) -> Result<()> {
        let text = toml::to_string_pretty(config).context("serialising the config")?;
        self.write("config.toml", text.as_bytes())
    }

    /// Writes one JSON object per line.
    pub fn write_jsonl<T: Serialize>(&self, name: &str, rows: &[T]) -> Result<()> {
        let mut out = String::new();
        for r in rows {
            out.push_str(&serde_json::to_string(r)?);
            out.push('\n');
        }
        self.write(name, out.as_bytes())
    }

    /// Writes pretty JSON.
    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        let mut text = serde_json::to_string_pretty(value)?;
        text.push('\n');
        self.write(name, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_run_at_a_time_per_folder() {
        let tmp = fl_data::scratch::ScratchDir::new("run-dir").unwrap();
        let dir = tmp.path().join("run");
        let held = RunDir::create(&dir).unwrap();
        let err = RunDir::create(&dir).unwrap_err().to_string();
        assert!(err.contains("another run is writing into"), "{err}");
        drop(held);
        RunDir::create(&dir).unwrap();
    }
}
