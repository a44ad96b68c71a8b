//! Getting the datasets: from a local mirror folder or over HTTP, checked by SHA-256.
//!
//! Each file lands as `<data dir>/<dataset>/<file>.gz`, written atomically and only after its
//! uncompressed bytes matched the published SHA-256; a file already there and valid is skipped.

use crate::atomic::write_atomic;
use crate::checksum::{sha256_hex, verify_bytes};
use crate::dataset::{DataFile, DatasetKind};
use crate::error::{DataError, Result};
use crate::idx::gunzip_if_gzip;
use flate2::Compression;
use flate2::write::GzEncoder;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where a file may come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A folder holding `<dataset>/<file>[.gz]` or `<file>[.gz]` directly.
    Local(PathBuf),
    /// An HTTP(S) base URL serving `<file>.gz`.
    Http(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Local(p) => write!(f, "{}", p.display()),
            Source::Http(u) => f.write_str(u),
        }
    }
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Already present with the right checksum.
    Present,
    /// Copied or downloaded from this source.
    Fetched(String),
}

/// Progress events for a caller's progress bar.
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    /// Starting a file from a source; total bytes when known.
    Start {
        /// File name.
        file: &'a str,
        /// The source.
        source: String,
        /// Size in bytes, if known.
        total: Option<u64>,
    },
    /// Bytes received so far for the current file.
    Bytes(u64),
    /// A source failed for this file; the next is tried.
    SourceFailed {
        /// File name.
        file: &'a str,
        /// Why.
        reason: String,
    },
}

/// The default order of sources: an explicit mirror, Debian's package, then the official mirrors.
pub fn default_sources(kind: DatasetKind, mirror: Option<&Path>) -> Vec<Source> {
    let mut s = Vec::new();
    if let Some(m) = mirror {
        s.push(Source::Local(m.to_path_buf()));
    }
    let debian = Path::new("/usr/share/datasets").join(kind.name());
    if kind == DatasetKind::FashionMnist && debian.is_dir() {
        s.push(Source::Local(debian));
    }
    s.extend(kind.mirrors().iter().map(|u| Source::Http(u.to_string())));
    s
}

/// Makes sure every file of `kind` is in `data_dir`, trying `sources` in order for each.
pub fn ensure(
    kind: DatasetKind,
    data_dir: &Path,
    sources: &[Source],
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Vec<(DataFile, Outcome)>> {
    ensure_files(kind, &kind.files(), data_dir, sources, progress)
}

/// [`ensure`] for an explicit list of files and checksums (subsets, test mirrors).
pub fn ensure_files(
    kind: DatasetKind,
    files: &[DataFile],
    data_dir: &Path,
    sources: &[Source],
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Vec<(DataFile, Outcome)>> {
    let mut out = Vec::new();
    for &file in files {
        let dest = data_dir.join(kind.name()).join(format!("{}.gz", file.name));
        if dest.is_file() && crate::checksum::verify_file(&dest, file.sha256).is_ok() {
            out.push((file, Outcome::Present));
            continue;
        }
        let mut errors = Vec::new();
        let mut done = None;
        for source in sources {
            match fetch_one(kind, file, source, progress) {
                Ok(gz) => {
                    write_atomic(&dest, &gz).map_err(|e| DataError::Io {
                        path: dest.clone(),
                        source: e,
                    })?;
                    done = Some(source.to_string());
                    break;
                }
                Err(e) => {
                    let reason = e.to_string();
                    progress(Progress::SourceFailed {
                        file: file.name,
                        reason: reason.clone(),
                    });
                    errors.push(format!("  {source}: {reason}"));
                }
            }
        }
        match done {
            Some(src) => out.push((file, Outcome::Fetched(src))),
            None => {
                return Err(DataError::Download {
                    url: format!("{}/{}", kind.name(), file.name),
                    reason: format!("no source had a valid copy:\n{}", errors.join("\n")),
                });
            }
        }
    }
    Ok(out)
}

/// Gets one file from one source; returns gzip bytes whose content passed the checksum.
fn fetch_one(
    kind: DatasetKind,
    file: DataFile,
    source: &Source,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Vec<u8>> {
    let (origin, raw) = match source {
        Source::Local(dir) => {
            let path = [dir.join(kind.name()), dir.clone()]
                .iter()
                .find_map(|d| crate::dataset::locate(d, file.name))
                .ok_or_else(|| DataError::Download {
                    url: dir.display().to_string(),
                    reason: format!("no {0}.gz or {0} there", file.name),
                })?;
            let bytes = std::fs::read(&path).map_err(|e| DataError::Io {
                path: path.clone(),
                source: e,
            })?;
            progress(Progress::Start {
                file: file.name,
                source: path.display().to_string(),
                total: Some(bytes.len() as u64),
            });
            progress(Progress::Bytes(bytes.len() as u64));
            (path, bytes)
        }
        Source::Http(base) => {
            let url = format!("{}/{}.gz", base.trim_end_matches('/'), file.name);
            (PathBuf::from(&url), http_get(&url, file.name, progress)?)
        }
    };
    let (plain, gz) = match gunzip_if_gzip(&origin, &raw)? {
        Some(plain) => (plain, raw),
        None => {
            let mut enc = GzEncoder::new(Vec::new(), Compression::default());
            enc.write_all(&raw).expect("writing to memory");
            (raw, enc.finish().expect("writing to memory"))
        }
    };
    verify_bytes(&origin, &plain, file.sha256)?;
    tracing::debug!(file = file.name, sha256 = %sha256_hex(&plain), "verified");
    Ok(gz)
}

#[cfg(feature = "download")]
fn http_get(url: &str, name: &str, progress: &mut dyn FnMut(Progress<'_>)) -> Result<Vec<u8>> {
    use std::io::Read;
    let fail = |reason: String| DataError::Download {
        url: url.to_string(),
        reason,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(300)))
        .build()
        .into();
    let mut resp = agent.get(url).call().map_err(|e| fail(e.to_string()))?;
    let total = resp.body().content_length();
    progress(Progress::Start {
        file: name,
        source: url.to_string(),
        total,
    });
    let mut reader = resp.body_mut().with_config().limit(200 << 20).reader();
    let mut out = Vec::with_capacity(total.unwrap_or(0) as usize);
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        progress(Progress::Bytes(out.len() as u64));
    }
    Ok(out)
}

#[cfg(not(feature = "download"))]
fn http_get(url: &str, _: &str, _: &mut dyn FnMut(Progress<'_>)) -> Result<Vec<u8>> {
    Err(DataError::Download {
        url: url.to_string(),
        reason: "built without the `download` feature of fl-data".into(),
    })
}
