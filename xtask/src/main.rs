//! `cargo xtask`: developer automation that is not part of the `fl` binary.
//!
//! - `cargo xtask download`: fetch MNIST / Fashion-MNIST into the data dir, verified by SHA-256;
//! - `cargo xtask fixtures`: rebuild the balanced subsets committed under `fixtures/`;
//! - `cargo xtask sweep`: the full 90-pair study (`fl sweep --preset full`);
//! - `cargo xtask cross-cpu`: the same seeded runs (sweep, train, both attack families)
//!   natively, under qemu as another CPU, with other cache sizes and on one core must give
//!   identical numbers.

mod cross_cpu;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use fl_data::fetch::{self, Outcome, Progress};
use fl_data::idx::write_idx;
use fl_data::{Dataset, DatasetKind, Split};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Developer automation for the FL lab")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the full GAN-poisoning study (MNIST and Fashion-MNIST, all 90 pairs, seeds 1-3: 540
    /// cells) through `fl sweep --preset full`; other arguments go to `fl sweep` (e.g.
    /// --jobs 2, --shard 0/4, or --grid FILE / --preset quick instead of the full grid).
    Sweep {
        /// Arguments for `fl sweep`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run a short seeded sweep, train, GAN-attack and MIA run natively, under `qemu-x86_64 -cpu
    /// Haswell`, with other CPUs' cache sizes (a private mount namespace, needs root) and on one
    /// core, and fail unless every metrics.jsonl and summary.json equals the native one.
    CrossCpu {
        /// Scratch folder for the runs (default: target/cross-cpu in the workspace).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Fail when a machine cannot be imitated here (instead of skipping it).
        #[arg(long)]
        require_all: bool,
        /// Leave out the qemu runs (the slow part: qemu is 20-100x slower).
        #[arg(long)]
        skip_qemu: bool,
    },
    /// Fetch datasets into the data dir (local mirror, Debian package, official mirrors).
    Download {
        /// mnist, fashion-mnist or all.
        #[arg(long, default_value = "all")]
        dataset: String,
        /// A local mirror folder tried first (holding `<dataset>/<file>.gz` or the files).
        #[arg(long, env = "FL_DATA_MIRROR")]
        from: Option<PathBuf>,
        /// Where the files go.
        #[arg(long, env = "FL_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// Only the given sources: skip the official HTTP mirrors.
        #[arg(long)]
        offline: bool,
    },
    /// Rebuild fixtures/: the first N training and M test images of every class, IDX gzip.
    Fixtures {
        /// Where the full datasets are.
        #[arg(long, env = "FL_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// Output folder.
        #[arg(long, default_value = "fixtures")]
        out: PathBuf,
        /// Training images per class.
        #[arg(long, default_value_t = 600)]
        train_per_class: usize,
        /// Test images per class.
        #[arg(long, default_value_t = 100)]
        test_per_class: usize,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Sweep { args } => sweep(&args),
        Command::CrossCpu {
            out,
            require_all,
            skip_qemu,
        } => cross_cpu::cross_cpu(out.as_deref(), require_all, skip_qemu),
        Command::Download {
            dataset,
            from,
            data_dir,
            offline,
        } => download(&dataset, from.as_deref(), &data_dir, offline),
        Command::Fixtures {
            data_dir,
            out,
            train_per_class,
            test_per_class,
        } => fixtures(&data_dir, &out, train_per_class, test_per_class),
    }
}

fn kinds(name: &str) -> Result<Vec<DatasetKind>> {
    Ok(if name == "all" {
        DatasetKind::ALL.to_vec()
    } else {
        vec![DatasetKind::parse(name)?]
    })
}

fn download(dataset: &str, from: Option<&Path>, data_dir: &Path, offline: bool) -> Result<()> {
    for kind in kinds(dataset)? {
        let mut sources = fetch::default_sources(kind, from);
        if offline {
            sources.retain(|s| matches!(s, fetch::Source::Local(_)));
        }
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:40} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        let mut on = |p: Progress<'_>| match p {
            Progress::Start {
                file,
                source,
                total,
            } => {
                bar.reset();
                bar.set_length(total.unwrap_or(0));
                bar.set_message(format!("{}/{file}", kind.name()));
                bar.println(format!("{}/{file} <- {source}", kind.name()));
            }
            Progress::Bytes(n) => bar.set_position(n),
            Progress::SourceFailed { file, reason } => {
                bar.println(format!("  {file}: {reason}; trying the next source"))
            }
        };
        let report = fetch::ensure(kind, data_dir, &sources, &mut on)
            .with_context(|| format!("downloading {kind}"))?;
        bar.finish_and_clear();
        for (file, outcome) in report {
            let what = match outcome {
                Outcome::Present => "already present, checksum ok".to_string(),
                Outcome::Fetched(src) => format!("fetched from {src}, checksum ok"),
            };
            println!("{}/{}.gz: {what}", kind.name(), file.name);
        }
    }
    println!("data in {}", data_dir.display());
    Ok(())
}

/// The first `per_class` indices of every class, in dataset order.
fn balanced(labels: &[u8], classes: usize, per_class: usize) -> Result<Vec<usize>> {
    let mut taken = vec![0usize; classes];
    let idx: Vec<usize> = labels
        .iter()
        .enumerate()
        .filter(|&(_, &l)| {
            let t = &mut taken[l as usize];
            *t += 1;
            *t <= per_class
        })
        .map(|(i, _)| i)
        .collect();
    if let Some(c) = taken.iter().position(|&t| t < per_class) {
        bail!("class {c} has only {} images, {per_class} asked", taken[c]);
    }
    Ok(idx)
}

fn fixtures(data_dir: &Path, out: &Path, train_pc: usize, test_pc: usize) -> Result<()> {
    let mut sums = String::new();
    for kind in DatasetKind::ALL {
        for (split, per) in [(Split::Train, train_pc), (Split::Test, test_pc)] {
            let full = Dataset::load(data_dir, kind, split)
                .with_context(|| format!("fixtures are made from the full {kind} data"))?;
            let sub = full.subset(&balanced(&full.labels, full.classes(), per)?);
            let (img, lbl) = kind.split_files(split);
            let dir = out.join(kind.name());
            write_idx(
                &dir.join(format!("{}.gz", img.name)),
                &[sub.len(), sub.shape.height, sub.shape.width],
                &sub.images,
                true,
            )?;
            write_idx(
                &dir.join(format!("{}.gz", lbl.name)),
                &[sub.len()],
                &sub.labels,
                true,
            )?;
            for (name, bytes) in [
                (
                    img.name,
                    fl_data::idx::encode_idx(
                        &[sub.len(), sub.shape.height, sub.shape.width],
                        &sub.images,
                    ),
                ),
                (
                    lbl.name,
                    fl_data::idx::encode_idx(&[sub.len()], &sub.labels),
                ),
            ] {
                sums.push_str(&format!(
                    "{}  {}/{name}\n",
                    fl_data::checksum::sha256_hex(&bytes),
                    kind.name()
                ));
            }
            println!("{kind} {split:?}: {} images", sub.len());
        }
    }
    fl_data::atomic::write_atomic(&out.join("SHA256SUMS"), sums.as_bytes())?;
    print!("{sums}");
    Ok(())
}

/// `cargo run -p fl-cli -- sweep --preset full ARGS` (without `--preset full` when ARGS name
/// a grid or preset), in the workspace's one build profile.
fn sweep(args: &[String]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["run", "-p", "fl-cli", "--", "sweep"]);
    let names_grid = args
        .iter()
        .any(|a| a.starts_with("--grid") || a.starts_with("--preset"));
    let is_action = args
        .first()
        .is_some_and(|a| ["merge", "report", "emit-slurm", "emit-k8s"].contains(&a.as_str()));
    if !names_grid && !is_action {
        cmd.args(["--preset", "full"]);
    }
    cmd.args(args);
    let status = cmd.status().context("running cargo")?;
    if !status.success() {
        bail!("fl sweep failed ({status})");
    }
    Ok(())
}
