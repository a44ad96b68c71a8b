//! The one atomic-write helper: write to a temporary file beside the target, then rename.
//!
//! A reader never sees a half-written file, and an interrupted write leaves no file at the
//! target path (the temporary is removed on error).

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes the file at `path` through `fill`, atomically; creates missing parent folders.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = dir {
        fs::create_dir_all(dir)?;
    }
    let tmp = temp_path(path);
    let result = (|| {
        let file = fs::File::create(&tmp)?;
        let mut w = BufWriter::new(file);
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// A temporary name beside `path` for writing it atomically: hidden (a leading dot, which
/// readers of result folders skip), unique to this process and this call (two threads writing
/// one file at once, e.g. two sweeps on one folder in one process, must not share one), and
/// ending in `path`'s own extension, for writers that pick the format from it:
/// `dir/.stem.<pid>-<n>.tmp.ext`.
pub fn temp_path(path: &Path) -> PathBuf {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let part = |s: Option<&std::ffi::OsStr>| s.map(|n| n.to_string_lossy().into_owned());
    let stem = part(path.file_stem()).unwrap_or_default();
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let mut name = format!(".{stem}.{}-{call}.tmp", std::process::id());
    if let Some(ext) = part(path.extension()) {
        name = format!("{name}.{ext}");
    }
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_file_and_leaves_nothing_on_error() {
        let dir = crate::scratch::ScratchDir::new("fl-data-test").unwrap();
        let p = dir.path().join("a/b.txt");
        write_atomic(&p, b"hello").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"hello");
        let q = dir.path().join("c.txt");
        let err = write_atomic_with(&q, |w| {
            w.write_all(b"part")?;
            Err(std::io::Error::other("boom"))
        });
        assert!(err.is_err());
        assert!(!q.exists());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["a"], "no temporary file is left behind");
    }

    #[test]
    fn threads_writing_one_file_at_once_each_land_whole() {
        let dir = crate::scratch::ScratchDir::new("fl-data-race").unwrap();
        let p = dir.path().join("shared.txt");
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let p = &p;
                s.spawn(move || {
                    for _ in 0..50 {
                        write_atomic(p, &[t; 64]).unwrap();
                    }
                });
            }
        });
        let bytes = fs::read(&p).unwrap();
        assert_eq!(bytes.len(), 64);
        assert!(
            bytes.iter().all(|&b| b == bytes[0]),
            "one writer's whole content"
        );
    }
}
