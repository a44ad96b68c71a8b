//! `fl bench round` (the fixed benchmark workload, timed per round), `fl bench cell` (one
//! default cell of the GAN-poisoning study, timed whole and split) and `fl bench aggregators`.
//!
//! The round workload: MNIST, 10 clients x 600 samples (client i gets training images
//! i*600..(i+1)*600), `cnn`, 1 local epoch, batch 32, plain SGD lr 0.05, FedAvg, evaluation on
//! every test image. Prints the median round time of `rounds` rounds after `warmup` rounds,
//! and samples/s. The aggregator bench times every rule of fl-defense on random updates.

use crate::summary::round6;
use anyhow::{Context, Result};
use fl_core::experiment::Experiment;
use fl_core::{DeviceKind, FedConfig};
use fl_data::DatasetKind;
use fl_data::partition::{PartitionConfig, Scheme};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// Clients of the workload.
pub const CLIENTS: usize = 10;
/// Samples per client.
pub const SAMPLES_PER_CLIENT: usize = 600;

/// What the bench prints.
#[derive(Debug, Serialize)]
pub struct RoundBench {
    /// Fixed description of the workload.
    pub workload: &'static str,
    /// `full` (the real MNIST test set) or `fixtures` (the bundled subset: 1000 test images).
    pub data: String,
    /// Device.
    pub device: String,
    /// Client worker threads.
    pub threads: usize,
    /// Test images evaluated per round.
    pub test_images: usize,
    /// Timed rounds.
    pub rounds: usize,
    /// Median round wall time, seconds.
    pub round_s_median: f64,
    /// Every timed round, seconds.
    pub round_s: Vec<f64>,
    /// Median local-training time per round, seconds.
    pub train_s_median: f64,
    /// Median aggregation time, seconds.
    pub aggregate_s_median: f64,
    /// Median evaluation time, seconds.
    pub eval_s_median: f64,
    /// Training samples per second of whole rounds (6000 / round time).
    pub samples_per_s: f64,
    /// Training samples per second of the training phase alone.
    pub train_samples_per_s: f64,
    /// Floating-point operations of one round (forward and backward of every training
    /// sample, forward of every test image; multiply and add counted apart).
    pub gflop_per_round: f64,
    /// Of those, per second of the median round.
    pub gflop_per_s: f64,
}

/// The cnn's floating-point operations per image on 28x28 grey images with 11 outputs:
/// (forward, training step = forward + backward without the first layer's input gradient).
pub fn cnn_flops() -> (f64, f64) {
    // Multiply-adds of each layer's forward pass: conv1 10 x 24^2 x 25, conv2 20 x 8^2 x 250,
    // fc1 320 x 50, fc2 50 x 11.
    let (c1, c2, f1, f2) = (
        10.0 * 576.0 * 25.0,
        20.0 * 64.0 * 250.0,
        320.0 * 50.0,
        50.0 * 11.0,
    );
    let forward = 2.0 * (c1 + c2 + f1 + f2);
    // Backward: every layer's weight gradient, and the input gradient of all but conv1.
    let backward = 2.0 * (c1 + 2.0 * (c2 + f1 + f2));
    (forward, forward + backward)
}

/// The PyTorch loop of the same workload (`bench/pytorch_round.py`) run by `python`, its JSON.
pub fn pytorch_round(
    python: &str,
    script: &Path,
    data_dir: &Path,
    threads: usize,
    warmup: usize,
    rounds: usize,
) -> Result<serde_json::Value> {
    let out = std::process::Command::new(python)
        .arg(script)
        .args(["--data-dir".as_ref(), data_dir.as_os_str()])
        .args(["--threads", &threads.to_string()])
        .args(["--warmup", &warmup.to_string()])
        .args(["--rounds", &rounds.to_string()])
        .output()
        .with_context(|| format!("cannot run {python} {}", script.display()))?;
    if !out.status.success() {
        anyhow::bail!(
            "{python} {} failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    // Its per-round lines come first, then the JSON object.
    let text = String::from_utf8_lossy(&out.stdout);
    let start = text.find("\n{").map_or(0, |i| i + 1);
    for line in text[..start].lines() {
        eprintln!("pytorch {line}");
    }
    serde_json::from_str(&text[start..])
        .with_context(|| format!("{} printed no JSON", script.display()))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The workload's config on `data_dir`.
pub fn workload(data_dir: &Path, device: DeviceKind, threads: usize, rounds: usize) -> FedConfig {
    FedConfig {
        name: "bench-round".into(),
        dataset: DatasetKind::Mnist,
        data_dir: data_dir.to_path_buf(),
        clients: CLIENTS,
        rounds,
        partition: PartitionConfig {
            samples_per_client: Some(SAMPLES_PER_CLIENT),
            ..PartitionConfig::with_scheme(Scheme::Contiguous)
        },
        device,
        threads,
        ..FedConfig::default()
    }
}

/// Runs the bench; uses `fixtures` when `data_dir` has no MNIST.
pub fn round(
    data_dir: &Path,
    fixtures: &Path,
    device: DeviceKind,
    threads: usize,
    warmup: usize,
    rounds: usize,
) -> Result<RoundBench> {
    let full =
        fl_data::dataset::locate(&data_dir.join("mnist"), "train-images-idx3-ubyte").is_some();
    let (dir, data) = if full {
        (data_dir, "full".to_string())
    } else {
        eprintln!(
            "note: no MNIST under {}; timing on the bundled fixtures (1000 test images \
             instead of 10000, so evaluation is cheaper than in the real workload)",
            data_dir.display()
        );
        (fixtures, "fixtures".to_string())
    };
    let cfg = workload(dir, device, threads, warmup + rounds);
    let mut exp = Experiment::build(&cfg)?;
    let test_images = exp.prepared.test.len();
    let mut all = Vec::new();
    for r in 0..warmup + rounds {
        let m = exp.federation.run_round()?;
        eprintln!(
            "round {}: {:.3} s (train {:.3}, eval {:.3}){}",
            r + 1,
            m.time.total_s,
            m.time.train_s,
            m.time.eval_s,
            if r < warmup { " warm-up" } else { "" }
        );
        if r >= warmup {
            all.push(m.time);
        }
    }
    let med = |f: fn(&fl_core::federation::RoundTime) -> f64| median(all.iter().map(f).collect());
    let round_s_median = med(|t| t.total_s);
    let train_s_median = med(|t| t.train_s);
    let samples = (CLIENTS * SAMPLES_PER_CLIENT) as f64;
    let (forward, step) = cnn_flops();
    let gflop = (samples * step + test_images as f64 * forward) / 1e9;
    Ok(RoundBench {
        workload: "mnist, 10 clients x 600 (contiguous), cnn, 1 epoch, batch 32, sgd lr 0.05, fedavg, eval on the whole test set",
        data,
        device: device.name().into(),
        threads: cfg.worker_threads(),
        test_images,
        rounds,
        round_s_median: round6(round_s_median),
        round_s: all.iter().map(|t| round6(t.total_s)).collect(),
        train_s_median: round6(train_s_median),
        aggregate_s_median: round6(med(|t| t.aggregate_s)),
        eval_s_median: round6(med(|t| t.eval_s)),
        samples_per_s: round6(samples / round_s_median),
        train_samples_per_s: round6(samples / train_s_median),
        gflop_per_round: round6(gflop),
        gflop_per_s: round6(gflop / round_s_median),
    })
}

/// What `fl bench cell` prints: the default cell of the study (`configs/gan-poison.toml`, full
/// MNIST, 1 -> 9, seed 1) run `runs` times as a sweep runs it, the median time and its split.
#[derive(Debug, Serialize)]
pub struct CellBench {
    /// Fixed description of the workload.
    pub workload: &'static str,
    /// Worker threads inside the cell.
    pub threads: usize,
    /// Copies of the cell run at once (as `fl sweep --jobs`); the times are the wall time of
    /// all of them and the split the first one's.
    pub jobs: usize,
    /// Timed runs.
    pub runs: usize,
    /// Median wall time of a cell, seconds.
    pub cell_s_median: f64,
    /// Every run's wall time, seconds.
    pub cell_s: Vec<f64>,
    /// Median split of a cell (seconds): benign clients' local training.
    pub benign_train_s: f64,
    /// The generator's training steps.
    pub generator_s: f64,
    /// Drawing the fake and poison images.
    pub sampling_s: f64,
    /// The adversary's local training.
    pub adversary_train_s: f64,
    /// Evaluation of the global model.
    pub eval_s: f64,
    /// Aggregation.
    pub aggregate_s: f64,
    /// The rest: building the run (data, split, models), the fidelity scoring and previews.
    pub rest_s: f64,
    /// Peak resident memory of the process, MiB (Linux; `None` elsewhere).
    pub peak_rss_mib: Option<f64>,
    /// The cell's average attack accuracy (the same in every run).
    pub avg_attack_accuracy: Option<f64>,
}

/// The process's peak resident set size in MiB (`VmHWM` of `/proc/self/status`).
pub fn peak_rss_mib() -> Option<f64> {
    status_mib("VmHWM:")
}

/// A memory line of `/proc/self/status` (in kB there) in MiB.
fn status_mib(key: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(round6(kib / 1024.0))
}

/// The process's resident set size now, in MiB (`VmRSS` of `/proc/self/status`).
pub fn rss_mib() -> Option<f64> {
    status_mib("VmRSS:")
}

/// One block of rounds of a long run.
#[derive(Debug, Clone, Serialize)]
pub struct LongBlock {
    /// The block's last round.
    pub round: usize,
    /// Wall time of the block's rounds, in seconds.
    pub seconds: f64,
    /// Resident memory after the block, MiB.
    pub rss_mib: Option<f64>,
    /// Peak resident memory so far, MiB.
    pub peak_rss_mib: Option<f64>,
    /// Mean membership accuracy over the block.
    pub membership_accuracy: f64,
}

/// What `fl bench long` reports: a membership run of the authors' protocol, block by block.
#[derive(Debug, Clone, Serialize)]
pub struct LongBench {
    /// The config run.
    pub config: String,
    /// Rounds run.
    pub rounds: usize,
    /// Building the run (data, split, targets), seconds.
    pub setup_s: f64,
    /// The rounds, seconds.
    pub rounds_s: f64,
    /// Per block of `every` rounds.
    pub blocks: Vec<LongBlock>,
}

/// Runs the membership config at `config` (e.g. `configs/mia-authors/mnist-angle.toml`) for
/// `rounds` rounds with `sets` applied, and reports time and memory every `every` rounds, so
/// growth with the number of rounds shows.
pub fn long(config: &Path, sets: &[String], rounds: usize, every: usize) -> Result<LongBench> {
    let mut table = crate::config::load_table(Some(config), sets)?;
    table.insert("rounds".into(), toml::Value::Integer(rounds as i64));
    let (fed, mia, defense) = crate::mia::resolve_mia(table)?;
    let started = Instant::now();
    let mut run = fl_mia::MiaRun::build(&fed, &mia, crate::config::server_rule(&fed, &defense)?)?;
    let setup_s = started.elapsed().as_secs_f64();
    let mut blocks = Vec::new();
    let (mut t, mut acc) = (Instant::now(), Vec::new());
    let all = Instant::now();
    let mut done = 0;
    while !run.is_finished(None) && done < rounds {
        let r = run.run_round()?;
        done = r.base.round;
        acc.push(r.membership.accuracy);
        if done.is_multiple_of(every.max(1)) || done == rounds {
            blocks.push(LongBlock {
                round: done,
                seconds: round6(t.elapsed().as_secs_f64()),
                rss_mib: rss_mib(),
                peak_rss_mib: peak_rss_mib(),
                membership_accuracy: round6(acc.iter().sum::<f64>() / acc.len() as f64),
            });
            eprintln!(
                "round {done}: {:.1} s for the block, rss {:?} MiB, peak {:?} MiB",
                t.elapsed().as_secs_f64(),
                rss_mib(),
                peak_rss_mib()
            );
            (t, acc) = (Instant::now(), Vec::new());
        }
    }
    Ok(LongBench {
        config: config.display().to_string(),
        rounds: done,
        setup_s: round6(setup_s),
        rounds_s: round6(all.elapsed().as_secs_f64()),
        blocks,
    })
}

/// Runs the default cell `runs` times on `threads` worker threads, `jobs` copies at once (the
/// fidelity oracle is trained first if it is not cached, outside the timing).
pub fn cell(data_dir: &Path, threads: usize, runs: usize, jobs: usize) -> Result<CellBench> {
    use crate::attack::{conclude, fidelity_oracle, resolve_attack};
    use crate::config::server_rule;
    use fl_poison::AttackRun;
    let mut table: toml::Table = include_str!("../../../configs/gan-poison.toml").parse()?;
    table.insert(
        "data_dir".into(),
        toml::Value::String(data_dir.display().to_string()),
    );
    table.insert("threads".into(), toml::Value::Integer(threads as i64));
    let (fed, attack, defense) = resolve_attack(table)?;
    if fl_data::dataset::locate(&data_dir.join("mnist"), "train-images-idx3-ubyte").is_none() {
        anyhow::bail!(
            "the default cell needs the full MNIST under {} (cargo xtask download)",
            data_dir.display()
        );
    }
    let effective = attack.federated_config(&fed);
    let spec = fl_core::experiment::Prepared::spec_of(&effective)?;
    let oracle = fidelity_oracle(&effective, &attack, &spec)?;
    let mut splits: Vec<[f64; 8]> = Vec::new();
    let mut value = None;
    let jobs = jobs.max(1);
    for r in 0..runs {
        let started = std::time::Instant::now();
        // `jobs` copies of the cell at once, each on its own thread, as `fl sweep --jobs`
        // runs cells: the split is the first copy's, the peak memory the process's.
        let mut done = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..jobs)
                .map(|_| {
                    scope.spawn(|| -> Result<_> {
                        let mut run =
                            AttackRun::build_with(&fed, &attack, server_rule(&fed, &defense)?)?
                                .with_attacker_rule(server_rule(&fed, &defense)?);
                        let rows = run.run(&mut |_| {})?;
                        Ok((run, rows))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a cell's thread panicked"))
                .collect::<Result<Vec<_>>>()
        })?;
        let (run, rows) = done.swap_remove(0);
        let (summary, _) = conclude(&run, &effective, &rows, oracle.as_ref());
        let total = started.elapsed().as_secs_f64();
        let sum = |f: fn(&fl_core::federation::RoundTime) -> f64| -> f64 {
            rows.iter().map(|m| f(&m.base.time)).sum()
        };
        let (train, eval, aggregate) = (
            sum(|t| t.train_s),
            sum(|t| t.eval_s),
            sum(|t| t.aggregate_s),
        );
        let log = run.adversary.log();
        let adv =
            |f: fn(&fl_poison::AdversaryTiming) -> f64| -> f64 { log.timing.values().map(f).sum() };
        let (generator, sampling, adversary) = (
            adv(|t| t.generator_s),
            adv(|t| t.sampling_s),
            adv(|t| t.train_s),
        );
        let benign = train - generator - sampling - adversary;
        let rest = total - train - eval - aggregate;
        eprintln!(
            "run {}: {total:.1} s{} (benign training {benign:.1}, generator {generator:.1}, \
             sampling {sampling:.1}, adversary training {adversary:.1}, evaluation {eval:.1}, \
             rest {rest:.1})",
            r + 1,
            if jobs > 1 {
                format!(" for {jobs} cells at once")
            } else {
                String::new()
            },
        );
        splits.push([
            total, benign, generator, sampling, adversary, eval, aggregate, rest,
        ]);
        value = summary.attack.avg_attack_accuracy;
    }
    let med = |i: usize| round6(median(splits.iter().map(|s| s[i]).collect()));
    Ok(CellBench {
        workload: "configs/gan-poison.toml: full mnist, 10 clients x 600 iid, cnn, 30 rounds, \
                   gan attack 1 -> 9 from round 3 (25 generator steps of 64, 300 fake + 300 \
                   poison, boost 10), fidelity of 500 images",
        threads,
        jobs,
        runs,
        cell_s_median: med(0),
        cell_s: splits.iter().map(|s| round6(s[0])).collect(),
        benign_train_s: med(1),
        generator_s: med(2),
        sampling_s: med(3),
        adversary_train_s: med(4),
        eval_s: med(5),
        aggregate_s: med(6),
        rest_s: med(7),
        peak_rss_mib: peak_rss_mib(),
        avg_attack_accuracy: value,
    })
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn the_cell_bench_says_it_needs_the_full_data() {
        let e = super::cell(std::path::Path::new("no-such-folder"), 1, 1, 1).unwrap_err();
        assert!(e.to_string().contains("needs the full MNIST"), "{e}");
    }

    #[test]
    fn peak_memory_is_read_where_linux_reports_it() {
        if let Some(m) = super::peak_rss_mib() {
            assert!(m > 1.0, "{m} MiB");
        }
    }

    #[test]
    fn median_by_hand() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}

/// One row of `fl bench aggregators`.
#[derive(Debug, Serialize)]
pub struct AggregatorBench {
    /// Rule name.
    pub rule: String,
    /// Updates aggregated.
    pub n: usize,
    /// Values per update.
    pub dim: usize,
    /// Krum's f and ATM's b used (n / 10 and n / 5, at least 1).
    pub f: usize,
    /// ATM's b.
    pub b: usize,
    /// Median wall time of one aggregation, milliseconds.
    pub median_ms: f64,
    /// Timed repetitions.
    pub reps: usize,
}

/// `fl bench aggregators`: every rule of fl-defense on `n` seeded random updates of `dim`
/// values for each `n` in `sizes`; median of `reps` timings after one untimed call.
pub fn aggregators(sizes: &[usize], dim: usize, reps: usize) -> Result<Vec<AggregatorBench>> {
    use fl_core::Update;
    use rand::RngExt;
    let mut out = Vec::new();
    for &n in sizes {
        let mut rng = fl_data::rng::stream(0, "bench-updates", &[n as u64]);
        let updates: Vec<Update> = (0..n)
            .map(|k| Update {
                client: k,
                delta: (0..dim).map(|_| rng.random::<f32>() - 0.5).collect(),
                num_samples: SAMPLES_PER_CLIENT,
                train_loss: 0.0,
            })
            .collect();
        let (f, b) = ((n / 10).max(1), (n / 5).max(1));
        let mut cfg = fl_defense::DefenseConfig::default();
        for (rule, key, v) in [
            ("krum", "f", f),
            ("multi-krum", "f", f),
            ("atm", "b", b),
            ("bulyan", "f", f),
            ("nnm", "f", f),
        ] {
            cfg.set(rule, key, toml::Value::Integer(v as i64))?;
        }
        let global = vec![0.0f32; dim];
        let round = fl_core::ServerRound {
            round: 1,
            seed: 0,
            global: &global,
            server: None,
        };
        // Every rule, and every pre-aggregation step before the plain mean.
        let steps: Vec<String> = fl_defense::pre_names()
            .into_iter()
            .map(|p| format!("{p}+fedavg"))
            .collect();
        // FLTrust and Fang's rejection are left out: their cost is one local training on the
        // server's root set, and n + 1 evaluations on its validation set.
        let names = fl_defense::names()
            .into_iter()
            .filter(|n| !["fltrust", "fang-lrr-err"].contains(n))
            .map(String::from)
            .chain(steps);
        for name in names {
            let name = name.as_str();
            let mut rule = cfg.build(name)?;
            rule.aggregate(&round, &updates)?;
            let mut times: Vec<f64> = (0..reps)
                .map(|_| {
                    let t = std::time::Instant::now();
                    let a = rule.aggregate(&round, &updates);
                    let s = t.elapsed().as_secs_f64();
                    std::hint::black_box(a).map(|_| s)
                })
                .collect::<fl_core::Result<_>>()?;
            times.sort_by(f64::total_cmp);
            out.push(AggregatorBench {
                rule: name.to_string(),
                n,
                dim,
                f,
                b,
                median_ms: round6(times[times.len() / 2] * 1e3),
                reps,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod round_tests {
    use super::*;

    #[test]
    fn cnn_flops_by_hand() {
        let (forward, step) = cnn_flops();
        // 2 x (144000 + 320000 + 16000 + 550) forward; backward 2 x (144000 + 2 x 336550).
        assert_eq!(forward, 961_100.0);
        assert_eq!(step, 961_100.0 + 1_634_200.0);
    }

    #[test]
    fn a_missing_python_is_a_clear_error() {
        let err = pytorch_round(
            "/nonexistent/python3",
            Path::new("bench/pytorch_round.py"),
            Path::new("data"),
            1,
            0,
            1,
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("cannot run /nonexistent/python3"),
            "{err:#}"
        );
    }
}
