//! `cargo xtask cross-cpu`: the same seeded runs on several simulated machines must give the
//! same bits.
//!
//! Short runs on the bundled fixtures (a three-cell sweep on two workers with a shared
//! warm-up, FedAvg training, the GAN reconstruction + poisoning attack with its fidelity
//! oracle, FedPoisonMIA) are made natively, then on other "machines": under `qemu-x86_64 -cpu
//! Haswell` (AVX2 + FMA, no AVX-512: another vector width and instruction set), with the
//! kernel's cache description (`/sys/devices/system/cpu`, which is what gemm reads to choose
//! its blocking, even under qemu) replaced by those of other CPUs in a private mount
//! namespace, and on one core. Every `metrics.jsonl` (timings removed), `summary.json` (its
//! `time` removed) and sweep cell (its wall time removed) must equal the native run's exactly.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A machine to imitate: how to wrap the `fl` command line.
#[derive(Debug, Clone)]
enum Machine {
    Native,
    /// Under qemu-user with this CPU model.
    Qemu(&'static str),
    /// With this cache description (L1d size KiB, ways; L2 KiB, ways; L3 KiB).
    Caches {
        l1: (usize, usize),
        l2: (usize, usize),
        l3: usize,
    },
    /// Pinned to one core (fewer worker threads by default).
    OneCore,
}

impl Machine {
    fn label(&self) -> String {
        match self {
            Machine::Native => "native".into(),
            Machine::Qemu(cpu) => format!("qemu-x86_64 -cpu {cpu}"),
            Machine::Caches { l1, l2, l3 } => format!(
                "caches L1d {} KiB {}-way, L2 {} KiB {}-way, L3 {} KiB",
                l1.0, l1.1, l2.0, l2.1, l3
            ),
            Machine::OneCore => "one core (taskset -c 0)".into(),
        }
    }

    /// Why this machine cannot be imitated here, if it cannot.
    fn unavailable(&self) -> Option<String> {
        let missing = |tool: &str| {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success());
            (!found).then(|| format!("{tool} not found"))
        };
        match self {
            Machine::Native => None,
            Machine::Qemu(_) => missing("qemu-x86_64"),
            Machine::Caches { .. } => missing("unshare").or_else(|| {
                let ok = Command::new("unshare")
                    .args(["-m", "true"])
                    .output()
                    .is_ok_and(|o| o.status.success());
                (!ok).then(|| "unshare -m is not permitted (needs root)".into())
            }),
            Machine::OneCore => missing("taskset"),
        }
    }

    /// The command that runs `fl args` on this machine; `scratch` holds a fake cache tree.
    fn command(&self, fl: &Path, args: &[String], scratch: &Path) -> Result<Command> {
        let mut cmd;
        match self {
            Machine::Native => {
                cmd = Command::new(fl);
                cmd.args(args);
            }
            Machine::Qemu(cpu) => {
                cmd = Command::new("qemu-x86_64");
                cmd.args(["-cpu", cpu]).arg(fl).args(args);
            }
            Machine::Caches { l1, l2, l3 } => {
                let tree = scratch.join("sys-cpu");
                fake_cache_tree(&tree, *l1, *l2, *l3)?;
                cmd = Command::new("unshare");
                cmd.args(["-m", "sh", "-c"])
                    .arg(r#"mount --bind "$0" /sys/devices/system/cpu && exec "$@""#)
                    .arg(&tree)
                    .arg(fl)
                    .args(args);
            }
            Machine::OneCore => {
                cmd = Command::new("taskset");
                cmd.args(["-c", "0"]).arg(fl).args(args);
            }
        }
        Ok(cmd)
    }
}

/// Writes a `/sys/devices/system/cpu` look-alike for two CPUs with the given caches (the
/// files gemm-common reads: level, type, size, ways, line size, sharing).
fn fake_cache_tree(root: &Path, l1: (usize, usize), l2: (usize, usize), l3: usize) -> Result<()> {
    for cpu in 0..2 {
        let caches = [
            (1, "Data", l1.0, l1.1, cpu.to_string()),
            (1, "Instruction", 32, 8, cpu.to_string()),
            (2, "Unified", l2.0, l2.1, cpu.to_string()),
            (3, "Unified", l3, 16, "0-1".to_string()),
        ];
        for (index, (level, kind, kib, ways, shared)) in caches.into_iter().enumerate() {
            let dir = root.join(format!("cpu{cpu}/cache/index{index}"));
            std::fs::create_dir_all(&dir)?;
            for (file, value) in [
                ("level", level.to_string()),
                ("type", kind.to_string()),
                ("size", format!("{kib}K")),
                ("ways_of_associativity", ways.to_string()),
                ("coherency_line_size", "64".to_string()),
                ("shared_cpu_list", shared),
            ] {
                std::fs::write(dir.join(file), format!("{value}\n"))?;
            }
        }
    }
    Ok(())
}

/// The seeded runs compared across machines, the configs of `configs/tiny/` that the CLI
/// tests also run: name and `fl` arguments (output and data folders are appended). The sweep
/// runs on two workers with fidelity scored, so that its oracle is trained too.
fn runs() -> Vec<(&'static str, Vec<String>)> {
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    vec![
        (
            "sweep",
            s(&[
                "sweep",
                "--grid",
                "configs/tiny/grid.toml",
                "--set",
                "attack.fidelity_samples=64",
                "--jobs",
                "2",
                "--threads",
                "1",
            ]),
        ),
        (
            "train",
            s(&["train", "--config", "configs/tiny/train.toml"]),
        ),
        (
            "gan-poison",
            s(&[
                "attack",
                "gan-poison",
                "--config",
                "configs/tiny/gan-poison.toml",
            ]),
        ),
        (
            "mia",
            s(&["attack", "mia", "--config", "configs/tiny/mia.toml"]),
        ),
    ]
}

/// What a run wrote, with the timings removed.
#[derive(Debug, PartialEq)]
struct Outcome {
    metrics: Vec<Value>,
    summary: Value,
}

impl Outcome {
    /// A run folder's `metrics.jsonl` and `summary.json`, or a sweep folder's cells (each
    /// without its wall time) in file-name order.
    fn read(dir: &Path) -> Result<Self> {
        let cells = dir.join("cells");
        if cells.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&cells)?
                .map(|e| e.map(|e| e.path()))
                .collect::<std::io::Result<_>>()?;
            files.retain(|f| f.extension().is_some_and(|e| e == "json"));
            files.sort();
            let metrics = files
                .iter()
                .map(|f| {
                    let mut cell: Value = serde_json::from_str(&std::fs::read_to_string(f)?)?;
                    if let Some(c) = cell.as_object_mut() {
                        c.remove("seconds");
                    }
                    if let Some(summary) = cell.get_mut("summary") {
                        *summary = without_time(summary.take());
                    }
                    Ok(cell)
                })
                .collect::<Result<Vec<_>>>()?;
            return Ok(Self {
                metrics,
                summary: Value::Null,
            });
        }
        let text = std::fs::read_to_string(dir.join("metrics.jsonl"))
            .with_context(|| format!("reading {}/metrics.jsonl", dir.display()))?;
        let metrics = text
            .lines()
            .map(|l| Ok(without_time(serde_json::from_str(l)?)))
            .collect::<Result<Vec<_>>>()?;
        let summary = std::fs::read_to_string(dir.join("summary.json"))
            .with_context(|| format!("reading {}/summary.json", dir.display()))?;
        Ok(Self {
            metrics,
            summary: without_time(serde_json::from_str(&summary)?),
        })
    }

    /// The figures printed beside the verdict: the last round's loss at full precision and
    /// the attack's headline number.
    fn headline(&self) -> String {
        if self.summary.is_null() {
            let values: Vec<String> = self
                .metrics
                .iter()
                .filter_map(|c| c.pointer("/summary/attack/avg_attack_accuracy"))
                .map(|v| v.to_string())
                .collect();
            return format!("cells' average attack accuracy {}", values.join(", "));
        }
        let loss = self
            .metrics
            .last()
            .and_then(|m| m.pointer("/test/loss"))
            .cloned()
            .unwrap_or(Value::Null);
        let extra = [
            ("fidelity", "/attack/fidelity"),
            ("best membership accuracy", "/mia/best_accuracy"),
        ]
        .into_iter()
        .find_map(|(name, ptr)| self.summary.pointer(ptr).map(|v| format!(", {name} {v}")))
        .unwrap_or_default();
        format!("final test loss {loss}{extra}")
    }
}

fn without_time(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("time");
    }
    v
}

/// The machines imitated by default.
fn machines() -> Vec<Machine> {
    vec![
        Machine::Native,
        Machine::Qemu("Haswell"),
        Machine::Caches {
            l1: (32, 8),
            l2: (256, 8),
            l3: 8192,
        },
        Machine::Caches {
            l1: (128, 16),
            l2: (8192, 16),
            l3: 4096,
        },
        Machine::OneCore,
    ]
}

/// Runs every seeded run on every machine and compares with the native runs. A machine that
/// cannot be imitated here is skipped with its reason, or is an error with `require_all`.
pub fn cross_cpu(out: Option<&Path>, require_all: bool, skip_qemu: bool) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf();
    let out = match out {
        Some(dir) => std::path::absolute(dir)?,
        None => root.join("target/cross-cpu"),
    };
    let out = out.as_path();
    let fl = build_fl(&root)?;
    let mut reference: Vec<Outcome> = Vec::new();
    let mut failures = Vec::new();
    for (m_index, machine) in machines().into_iter().enumerate() {
        let label = machine.label();
        if skip_qemu && matches!(machine, Machine::Qemu(_)) {
            println!("{label}: skipped (--skip-qemu)");
            continue;
        }
        if let Some(why) = machine.unavailable() {
            if require_all {
                bail!("{label}: cannot run here: {why}");
            }
            println!("{label}: skipped ({why})");
            continue;
        }
        let scratch = out.join(format!("machine-{m_index}"));
        let _ = std::fs::remove_dir_all(&scratch);
        let data_dir = scratch.join("data");
        fixture_data(&root, &data_dir)?;
        for (r_index, (name, mut args)) in runs().into_iter().enumerate() {
            let dir = scratch.join(name);
            args.extend(["--quiet", "--data-dir"].map(String::from));
            args.push(data_dir.display().to_string());
            args.push("--out".into());
            args.push(dir.display().to_string());
            let start = std::time::Instant::now();
            // Output is kept for a failure only (qemu warns of every CPUID bit it lacks).
            let run = machine
                .command(&fl, &args, &scratch)?
                .current_dir(&root)
                .output()
                .with_context(|| format!("{label}: starting {name}"))?;
            if !run.status.success() {
                bail!(
                    "{label}: {name} failed ({}):\n{}",
                    run.status,
                    String::from_utf8_lossy(&run.stderr)
                );
            }
            let outcome = Outcome::read(&dir)?;
            let secs = start.elapsed().as_secs_f64();
            let verdict = match reference.get(r_index) {
                None => "reference".to_string(),
                Some(r) if *r == outcome => "identical".to_string(),
                Some(r) => {
                    failures.push(format!("{label}: {name}"));
                    format!("DIFFERS ({})", first_difference(r, &outcome))
                }
            };
            println!(
                "{label:52} {name:10} {verdict:10} {} ({secs:.1} s)",
                outcome.headline()
            );
            if m_index == 0 {
                reference.push(outcome);
            }
        }
    }
    if !failures.is_empty() {
        bail!(
            "seeded numbers depend on the machine: {}",
            failures.join("; ")
        );
    }
    println!("every run gave identical metrics and summaries on every machine");
    Ok(())
}

/// The fixtures' IDX files in a fresh `<dir>/mnist`, so each machine trains its own oracle.
fn fixture_data(root: &Path, dir: &Path) -> Result<()> {
    let dst = dir.join("mnist");
    std::fs::create_dir_all(&dst)?;
    for f in std::fs::read_dir(root.join("fixtures/mnist"))? {
        let f = f?;
        if f.file_name().to_string_lossy().ends_with(".gz") {
            std::fs::copy(f.path(), dst.join(f.file_name()))?;
        }
    }
    Ok(())
}

/// Where two outcomes first differ, for the failure message.
fn first_difference(a: &Outcome, b: &Outcome) -> String {
    for (i, (x, y)) in a.metrics.iter().zip(&b.metrics).enumerate() {
        if x != y {
            return format!("metrics.jsonl line {}", i + 1);
        }
    }
    if a.metrics.len() != b.metrics.len() {
        return format!("{} rounds against {}", b.metrics.len(), a.metrics.len());
    }
    "summary.json".into()
}

/// Builds the `fl` binary in the workspace's one profile and returns its path.
fn build_fl(root: &Path) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--workspace", "--bins"])
        .current_dir(root)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("building fl failed ({status})");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(std::path::absolute(target.join("debug/fl"))?)
}
