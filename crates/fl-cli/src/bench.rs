//! `fl bench round` (the fixed benchmark workload, timed per round) and `fl bench aggregators`.
//!
//! The round workload: MNIST, 10 clients x 600 samples (client i gets training images
//! i*600..(i+1)*600), `cnn`, 1 local epoch, batch 32, plain SGD lr 0.05, FedAvg, evaluation on
//! every test image. Prints the median round time of `rounds` rounds after `warmup` rounds,
//! and samples/s. The aggregator bench times every rule of fl-defense on random updates.

use crate::summary::round6;
use anyhow::Result;
use fl_core::experiment::Experiment;
use fl_core::{DeviceKind, FedConfig};
use fl_data::DatasetKind;
use fl_data::partition::{PartitionConfig, Scheme};
use serde::Serialize;
use std::path::Path;

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
    })
}

#[cfg(test)]
mod tests {
    use super::median;

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
        for (rule, key, v) in [("krum", "f", f), ("multi-krum", "f", f), ("atm", "b", b)] {
            cfg.set(rule, key, toml::Value::Integer(v as i64))?;
        }
        let global = vec![0.0f32; dim];
        let round = fl_core::ServerRound {
            round: 1,
            seed: 0,
            global: &global,
        };
        for name in fl_defense::names() {
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
