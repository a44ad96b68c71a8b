//! The IDX file format of MNIST and Fashion-MNIST, raw or gzip-compressed.
//!
//! A file is a 4-byte magic number (two zero bytes, the element type, the number of
//! dimensions), one big-endian `u32` per dimension, then the elements. Only unsigned bytes
//! (type `0x08`) occur in these datasets, and only those are read.

use crate::atomic::write_atomic_with;
use crate::error::{DataError, Result};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use std::io::{Read, Write};
use std::path::Path;

const UBYTE: u8 = 0x08;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// An n-dimensional array of bytes read from an IDX file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The size of each dimension, outermost first.
    pub dims: Vec<usize>,
    /// The elements in row-major order.
    pub data: Vec<u8>,
}

/// Reads a file's bytes, decompressing them when the file is gzip.
pub fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let raw = std::fs::read(path).map_err(io)?;
    Ok(gunzip_if_gzip(path, &raw)?.unwrap_or(raw))
}

/// The decompressed bytes when `raw` is gzip (`None` when it is not); `origin` names the
/// source in the error of a corrupt stream.
pub fn gunzip_if_gzip(origin: &Path, raw: &[u8]) -> Result<Option<Vec<u8>>> {
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(raw.len() * 4);
    GzDecoder::new(raw)
        .read_to_end(&mut out)
        .map_err(|e| DataError::Idx {
            path: origin.to_path_buf(),
            reason: format!("corrupt gzip stream: {e}"),
        })?;
    Ok(Some(out))
}

/// Reads and validates an IDX file (raw or gzip) whose number of dimensions must be `ndims`.
pub fn read_idx(path: &Path, ndims: usize) -> Result<IdxArray> {
    let bytes = read_maybe_gzip(path)?;
    parse_idx(&bytes, ndims).map_err(|reason| DataError::Idx {
        path: path.to_path_buf(),
        reason,
    })
}

/// Parses IDX bytes; the error says what is wrong.
pub fn parse_idx(bytes: &[u8], ndims: usize) -> std::result::Result<IdxArray, String> {
    if bytes.len() < 4 {
        return Err(format!(
            "truncated: {} bytes, shorter than the 4-byte magic number",
            bytes.len()
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(format!(
            "bad magic number {:02x}{:02x}{:02x}{:02x}: not an IDX file",
            bytes[0], bytes[1], bytes[2], bytes[3]
        ));
    }
    if bytes[2] != UBYTE {
        return Err(format!(
            "element type 0x{:02x} is not supported (only unsigned bytes, 0x08)",
            bytes[2]
        ));
    }
    let found = bytes[3] as usize;
    if found != ndims {
        return Err(format!("{found} dimensions, expected {ndims}"));
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(format!(
            "truncated header: {} bytes, need {header}",
            bytes.len()
        ));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|d| {
            let o = 4 + 4 * d;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("dimensions {dims:?} overflow"))?;
    let body = bytes.len() - header;
    if body != count {
        let what = if body < count {
            "truncated"
        } else {
            "too long"
        };
        return Err(format!(
            "{what}: dimensions {dims:?} need {count} data bytes, the file has {body}"
        ));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Encodes an array as IDX bytes.
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 * dims.len() + data.len());
    out.extend_from_slice(&[0, 0, UBYTE, dims.len() as u8]);
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// Writes an IDX file atomically, gzip-compressed when `gzip` is set.
pub fn write_idx(path: &Path, dims: &[usize], data: &[u8], gzip: bool) -> Result<()> {
    assert_eq!(
        dims.iter().product::<usize>(),
        data.len(),
        "dims must match data"
    );
    let bytes = encode_idx(dims, data);
    write_atomic_with(path, |w| {
        if gzip {
            let mut enc = GzEncoder::new(w, Compression::best());
            enc.write_all(&bytes)?;
            enc.finish()?;
            Ok(())
        } else {
            w.write_all(&bytes)
        }
    })
    .map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Vec<usize>, Vec<u8>) {
        (vec![3, 2, 2], (0..12).collect())
    }

    #[test]
    fn round_trip_raw_and_gzip() {
        let dir = crate::scratch::ScratchDir::new("fl-data-test").unwrap();
        let (dims, data) = sample();
        for gz in [false, true] {
            let p = dir.path().join(format!("x{gz}"));
            write_idx(&p, &dims, &data, gz).unwrap();
            let raw = std::fs::read(&p).unwrap();
            assert_eq!(raw.starts_with(&GZIP_MAGIC), gz);
            let a = read_idx(&p, 3).unwrap();
            assert_eq!(a.dims, dims);
            assert_eq!(a.data, data);
        }
    }

    #[test]
    fn header_bytes_by_hand() {
        let bytes = encode_idx(&[2], &[7, 9]);
        assert_eq!(bytes, vec![0, 0, 8, 1, 0, 0, 0, 2, 7, 9]);
    }

    fn err(bytes: &[u8], ndims: usize) -> String {
        parse_idx(bytes, ndims).unwrap_err()
    }

    #[test]
    fn rejects_bad_magic() {
        assert!(err(&[1, 0, 8, 1, 0, 0, 0, 0], 1).contains("bad magic"));
    }

    #[test]
    fn rejects_other_element_types() {
        assert!(err(&[0, 0, 0x0d, 1, 0, 0, 0, 0], 1).contains("not supported"));
    }

    #[test]
    fn rejects_wrong_dimension_count() {
        assert!(err(&encode_idx(&[1, 1], &[0]), 1).contains("2 dimensions, expected 1"));
    }

    #[test]
    fn rejects_truncated_and_long_files() {
        let full = encode_idx(&[4], &[1, 2, 3, 4]);
        assert!(err(&full[..full.len() - 1], 1).contains("truncated"));
        let mut long = full.clone();
        long.push(0);
        assert!(err(&long, 1).contains("too long"));
        assert!(err(&full[..6], 1).contains("truncated header"));
        assert!(err(&full[..2], 1).contains("truncated"));
    }

    #[test]
    fn corrupt_gzip_names_the_file() {
        let dir = crate::scratch::ScratchDir::new("fl-data-test").unwrap();
        let p = dir.path().join("bad.gz");
        std::fs::write(&p, [0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap();
        let msg = read_idx(&p, 1).unwrap_err().to_string();
        assert!(msg.contains("bad.gz") && msg.contains("gzip"), "{msg}");
    }
}
