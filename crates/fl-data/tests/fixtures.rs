//! The committed fixtures are intact and balanced; the full data (when present) is too.

use fl_data::checksum::{sha256_hex, verify_file};
use fl_data::idx::read_maybe_gzip;
use fl_data::{Dataset, DatasetKind, Split};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn fixtures_match_their_checksums() {
    let dir = root().join("fixtures");
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let mut n = 0;
    for line in sums.lines() {
        let (sum, rel) = line.split_once("  ").unwrap();
        let bytes = read_maybe_gzip(&dir.join(format!("{rel}.gz"))).unwrap();
        assert_eq!(sha256_hex(&bytes), sum, "{rel}");
        n += 1;
    }
    assert_eq!(n, 8);
}

#[test]
fn fixtures_are_balanced() {
    for kind in DatasetKind::ALL {
        for (split, per) in [(Split::Train, 600), (Split::Test, 100)] {
            let d = Dataset::load(&root().join("fixtures"), kind, split).unwrap();
            assert_eq!(d.class_counts(), vec![per; 10], "{kind} {split:?}");
            assert_eq!(d.shape, fl_data::ImageShape::grey(28, 28));
        }
    }
}

/// The full datasets, when `FL_FULL_DATA` names a folder holding them (CI: ../shared/datasets).
#[test]
fn full_data_has_published_checksums_and_sizes() {
    let Some(dir) = std::env::var_os("FL_FULL_DATA").map(PathBuf::from) else {
        eprintln!("skipped: set FL_FULL_DATA to a folder with mnist/ and fashion-mnist/ to run");
        return;
    };
    for kind in DatasetKind::ALL {
        for f in kind.files() {
            let p = fl_data::dataset::locate(&dir.join(kind.name()), f.name)
                .unwrap_or_else(|| panic!("{kind}/{} missing under {}", f.name, dir.display()));
            verify_file(&p, f.sha256).unwrap();
        }
        let train = Dataset::load(&dir, kind, Split::Train).unwrap();
        let test = Dataset::load(&dir, kind, Split::Test).unwrap();
        assert_eq!((train.len(), test.len()), (60000, 10000));
    }
}
