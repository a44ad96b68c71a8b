//! `fl bench aggregators | round`: fixed workloads, timed, printed as JSON.

use anyhow::Result;
use clap::Subcommand;
use fl_core::{DeviceKind, FedConfig};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Time every aggregation rule on seeded random updates of the cnn's size.
    Aggregators {
        /// Numbers of updates.
        #[arg(long, value_delimiter = ',', default_value = "10,50,200")]
        n: Vec<usize>,
        /// Values per update (default: the cnn's parameter count).
        #[arg(long)]
        dim: Option<usize>,
        /// Timed repetitions (median reported).
        #[arg(long, default_value_t = 5)]
        reps: usize,
    },
    /// Time the default cell of the GAN-poisoning study (configs/gan-poison.toml, 1 -> 9) as a
    /// sweep runs it: median of several runs, split into benign training, generator, sampling,
    /// adversary training, evaluation and the rest; peak memory. Needs the full MNIST.
    Cell {
        /// Folder holding the full datasets.
        #[arg(long, env = "FL_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// Worker threads inside the cell.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Timed runs (median reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Copies of the cell at once in this process, as `fl sweep --jobs` runs cells: the
        /// peak memory is then that of such a sweep.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
    },
    /// A long membership run (default: FedPoisonMIA in its authors' protocol, 800 rounds):
    /// time, resident and peak memory every block of rounds, so growth with the rounds shows.
    /// Needs the full data the config names.
    Long {
        /// The membership config.
        #[arg(long, short, default_value = "configs/mia-authors/mnist-angle.toml")]
        config: PathBuf,
        /// Override a config value (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Rounds to run.
        #[arg(long, default_value_t = 800)]
        rounds: usize,
        /// Rounds per reported block.
        #[arg(long, default_value_t = 100)]
        every: usize,
    },
    /// Time FedAvg rounds of the fixed workload (MNIST, 10 clients x 600, cnn, batch 32).
    Round {
        /// Compute device.
        #[arg(long, default_value = "flex")]
        device: String,
        /// Folder holding the full datasets.
        #[arg(long, env = "FL_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// Where the bundled fixtures are (used when the full data is absent).
        #[arg(long, default_value = "fixtures")]
        fixtures: PathBuf,
        /// Client worker threads (0 = one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Untimed rounds first.
        #[arg(long, default_value_t = 1)]
        warmup: usize,
        /// Timed rounds.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Also run the same workload in PyTorch with this Python (`bench/pytorch_round.py`,
        /// same threads, warm-up and rounds) and print both with the ratios.
        #[arg(long, value_name = "PYTHON")]
        pytorch: Option<String>,
        /// The PyTorch loop's script.
        #[arg(long, default_value = "bench/pytorch_round.py")]
        pytorch_script: PathBuf,
    },
}

/// Runs the benchmark and prints its figures.
pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Aggregators { n, dim, reps } => {
            let dim = match dim {
                Some(d) => d,
                None => fl_core::experiment::Prepared::spec_of(&FedConfig::default())?.num_params(),
            };
            if reps == 0 || n.contains(&0) {
                anyhow::bail!("--reps and every --n must be at least 1");
            }
            let rows = fl_cli::bench::aggregators(&n, dim, reps)?;
            println!("{}", serde_json::to_string_pretty(&rows)?);
            Ok(())
        }
        BenchCommand::Cell {
            data_dir,
            threads,
            runs,
            jobs,
        } => {
            if runs == 0 || threads == 0 || jobs == 0 {
                anyhow::bail!("--runs, --threads and --jobs must be at least 1");
            }
            let report = fl_cli::bench::cell(&data_dir, threads, runs, jobs)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        BenchCommand::Long {
            config,
            sets,
            rounds,
            every,
        } => {
            if rounds == 0 || every == 0 {
                anyhow::bail!("--rounds and --every must be at least 1");
            }
            let report = fl_cli::bench::long(&config, &sets, rounds, every)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        BenchCommand::Round {
            device,
            data_dir,
            fixtures,
            threads,
            warmup,
            rounds,
            pytorch,
            pytorch_script,
        } => {
            let report = fl_cli::bench::round(
                &data_dir,
                &fixtures,
                DeviceKind::parse(&device)?,
                threads,
                warmup,
                rounds,
            )?;
            let Some(python) = pytorch else {
                println!("{}", serde_json::to_string_pretty(&report)?);
                return Ok(());
            };
            if report.data != "full" {
                anyhow::bail!("the PyTorch comparison needs the full MNIST under --data-dir");
            }
            eprintln!("pytorch: {python} {}", pytorch_script.display());
            let torch = fl_cli::bench::pytorch_round(
                &python,
                &pytorch_script,
                &data_dir,
                report.threads,
                warmup,
                rounds,
            )?;
            let ratio = |key: &str, ours: f64| {
                torch[key]
                    .as_f64()
                    .map(|t| fl_cli::summary::round6(t / ours))
            };
            let both = serde_json::json!({
                "speedup_round": ratio("round_s_median", report.round_s_median),
                "speedup_train": ratio("train_s_median", report.train_s_median),
                "speedup_eval": ratio("eval_s_median", report.eval_s_median),
                "pytorch_gflop_per_s": torch["round_s_median"]
                    .as_f64()
                    .map(|t| fl_cli::summary::round6(report.gflop_per_round / t)),
                "fl": report,
                "pytorch": torch,
            });
            println!("{}", serde_json::to_string_pretty(&both)?);
            Ok(())
        }
    }
}
