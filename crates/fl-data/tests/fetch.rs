//! Getting datasets from a local mirror and over HTTP (a loopback server started here),
//! including a corrupted copy: a clear error and nothing half-written left behind.
#![cfg(feature = "download")]

use fl_data::DataFile;
use fl_data::DatasetKind;
use fl_data::checksum::sha256_hex;
use fl_data::fetch::{Outcome, Source, ensure_files};
use fl_data::idx::read_maybe_gzip;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/mnist")
}

/// The two label files of the MNIST fixtures, with their real checksums.
fn manifest() -> Vec<(DataFile, Vec<u8>)> {
    ["train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"]
        .into_iter()
        .map(|name| {
            let gz = std::fs::read(fixture_dir().join(format!("{name}.gz"))).unwrap();
            let plain = read_maybe_gzip(&fixture_dir().join(format!("{name}.gz"))).unwrap();
            let sha: &'static str = sha256_hex(&plain).leak();
            (DataFile { name, sha256: sha }, gz)
        })
        .collect()
}

/// Serves `files` (path -> body) on a loopback port until the test ends; 404 otherwise.
fn serve(files: HashMap<String, Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap() == 0 || header == "\r\n" {
                    break;
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
            match files.get(&path) {
                Some(body) => {
                    write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/gzip\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .unwrap();
                    stream.write_all(body).unwrap();
                }
                None => {
                    write!(
                        stream,
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                    .unwrap();
                }
            }
        }
    });
    format!("http://{addr}/mirror/")
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = walk(dir);
    v.sort();
    v
}

fn walk(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return vec![];
    };
    rd.flat_map(|e| {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p)
        } else {
            vec![p.file_name().unwrap().to_string_lossy().into_owned()]
        }
    })
    .collect()
}

#[test]
fn downloads_over_http_verifies_and_skips_what_is_there() {
    let m = manifest();
    let files: HashMap<String, Vec<u8>> = m
        .iter()
        .map(|(f, gz)| (format!("/mirror/{}.gz", f.name), gz.clone()))
        .collect();
    let url = serve(files);
    let data = fl_data::scratch::ScratchDir::new("fl-data-test").unwrap();
    let list: Vec<DataFile> = m.iter().map(|(f, _)| *f).collect();
    let sources = [Source::Http(url.clone())];
    let mut events = 0;
    let got = ensure_files(
        DatasetKind::Mnist,
        &list,
        data.path(),
        &sources,
        &mut |_| events += 1,
    )
    .unwrap();
    assert!(got.iter().all(|(_, o)| *o == Outcome::Fetched(url.clone())));
    assert!(events >= 4, "progress was reported");
    for (f, gz) in &m {
        let written =
            std::fs::read(data.path().join("mnist").join(format!("{}.gz", f.name))).unwrap();
        assert_eq!(&written, gz);
    }
    // A second call finds everything present and valid.
    let again = ensure_files(
        DatasetKind::Mnist,
        &list,
        data.path(),
        &sources,
        &mut |_| {},
    )
    .unwrap();
    assert!(again.iter().all(|(_, o)| *o == Outcome::Present));
}

#[test]
fn corrupted_download_is_rejected_and_leaves_nothing() {
    let m = manifest();
    let (file, gz) = &m[0];
    // Flip the last label byte inside a valid gzip stream: decompresses fine, checksum fails.
    let mut plain = read_maybe_gzip(&fixture_dir().join(format!("{}.gz", file.name))).unwrap();
    *plain.last_mut().unwrap() ^= 1;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&plain).unwrap();
    let bad = enc.finish().unwrap();
    assert_ne!(&bad, gz);
    let url = serve(HashMap::from([(format!("/mirror/{}.gz", file.name), bad)]));
    let data = fl_data::scratch::ScratchDir::new("fl-data-test").unwrap();
    let err = ensure_files(
        DatasetKind::Mnist,
        &[*file],
        data.path(),
        &[Source::Http(url)],
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("SHA-256") && err.contains(file.name), "{err}");
    assert!(
        files_in(data.path()).is_empty(),
        "left behind: {:?}",
        files_in(data.path())
    );
}

#[test]
fn truncated_gzip_and_missing_files_fall_through_to_the_next_source() {
    let m = manifest();
    let (file, gz) = &m[1];
    let url = serve(HashMap::from([(
        format!("/mirror/{}.gz", file.name),
        gz[..gz.len() / 2].to_vec(),
    )]));
    let data = fl_data::scratch::ScratchDir::new("fl-data-test").unwrap();
    let empty = fl_data::scratch::ScratchDir::new("fl-data-test").unwrap();
    // Local mirror lacks it, HTTP copy is truncated, the fixtures folder has it.
    let sources = [
        Source::Local(empty.path().to_path_buf()),
        Source::Http(url),
        Source::Local(fixture_dir()),
    ];
    let mut failures = Vec::new();
    let got = ensure_files(
        DatasetKind::Mnist,
        &[*file],
        data.path(),
        &sources,
        &mut |p| {
            if let fl_data::fetch::Progress::SourceFailed { reason, .. } = p {
                failures.push(reason)
            }
        },
    )
    .unwrap();
    assert_eq!(
        got[0].1,
        Outcome::Fetched(fixture_dir().display().to_string())
    );
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(failures[1].contains("gzip"), "{failures:?}");
}

#[test]
fn no_valid_source_names_every_attempt() {
    let m = manifest();
    let data = fl_data::scratch::ScratchDir::new("fl-data-test").unwrap();
    let err = ensure_files(
        DatasetKind::Mnist,
        &[m[0].0],
        data.path(),
        &[Source::Http("http://127.0.0.1:9/".into())],
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("no source had a valid copy") && err.contains("127.0.0.1:9"),
        "{err}"
    );
}
