//! SHA-256 of the uncompressed bytes, the integrity check of downloaded or mirrored files.

use crate::error::{DataError, Result};
use crate::idx::read_maybe_gzip;
use sha2::{Digest, Sha256};
use std::path::Path;

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks that `bytes` (uncompressed) have the `expected` SHA-256; the error names `path`.
pub fn verify_bytes(path: &Path, bytes: &[u8], expected: &str) -> Result<()> {
    let actual = sha256_hex(bytes);
    if actual == expected {
        Ok(())
    } else {
        Err(DataError::Checksum {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            actual,
        })
    }
}

/// Checks a file (raw or gzip) against the SHA-256 of its uncompressed bytes.
pub fn verify_file(path: &Path, expected: &str) -> Result<()> {
    verify_bytes(path, &read_maybe_gzip(path)?, expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest_of_abc() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn mismatch_names_both_digests() {
        let e = verify_bytes(Path::new("f"), b"abc", "00").unwrap_err();
        let m = e.to_string();
        assert!(m.contains("expected 00") && m.contains("ba7816bf"), "{m}");
    }
}
