//! A run's output folder: resolved config, per-round metrics, summary, pictures.
//! Every file is written atomically, so a reader (or a killed run) never leaves half a file.

use anyhow::{Context, Result};
use fl_data::atomic::write_atomic;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The folder `results/<name>/` (or `--out`).
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Creates (or reuses) the folder.
    pub fn create(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
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
