//! `fl`: run federated-learning experiments, attacks and defenses from config files.

use anyhow::Result;
use clap::{Parser, Subcommand};
use fl_cli::config::{load_table, resolve};
use fl_core::{DeviceKind, FedConfig};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "fl",
    version,
    about = "A lab for attacks and defenses in federated learning",
    long_about = "A lab for attacks and defenses in federated learning.\n\n\
        Runs FedAvg on MNIST or Fashion-MNIST from TOML config files and writes the resolved \
        config, per-round metrics (metrics.jsonl), a summary and curves to a run folder."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a federated model from a config file.
    Train(TrainArgs),
    /// Benchmarks with fixed workloads; print JSON.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(clap::Args)]
struct TrainArgs {
    /// The TOML config (see configs/); without it, the defaults.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Override a config value, e.g. --set rounds=5 --set train.lr=0.01 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Compute device: flex (default CPU), ndarray, wgpu, cuda.
    #[arg(long)]
    device: Option<String>,
    /// The run's seed (overrides the config).
    #[arg(long)]
    seed: Option<u64>,
    /// Folder holding the datasets (overrides the config's data_dir).
    #[arg(long, env = "FL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Output folder (default: results/<name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Subcommand)]
enum BenchCommand {
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
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => train(args),
        Command::Bench(BenchCommand::Round {
            device,
            data_dir,
            fixtures,
            threads,
            warmup,
            rounds,
        }) => {
            let report = fl_cli::bench::round(
                &data_dir,
                &fixtures,
                DeviceKind::parse(&device)?,
                threads,
                warmup,
                rounds,
            )?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
    }
}

fn train(args: TrainArgs) -> Result<()> {
    let mut table = load_table(args.config.as_deref(), &args.sets)?;
    if let Some(d) = &args.device {
        DeviceKind::parse(d)?;
        table.insert("device".into(), toml::Value::String(d.clone()));
    }
    if let Some(s) = args.seed {
        table.insert("seed".into(), toml::Value::Integer(s as i64));
    }
    if let Some(d) = &args.data_dir {
        table.insert(
            "data_dir".into(),
            toml::Value::String(d.display().to_string()),
        );
    }
    let config: FedConfig = resolve(table)?;
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("results").join(&config.name));
    let s = fl_cli::train::run(&config, &out, !args.quiet)?;
    println!(
        "{}: {} rounds, final test accuracy {:.4} (best {:.4} at round {}), {:.1} s/round",
        s.name, s.rounds_run, s.final_accuracy, s.best_accuracy, s.best_round, s.time.mean_round_s
    );
    if let (Some(t), r) = (s.target_accuracy, s.rounds_to_target) {
        match r {
            Some(r) => println!("target accuracy {t} reached in round {r}"),
            None => println!("target accuracy {t} not reached"),
        }
    }
    println!("results in {}", out.display());
    Ok(())
}
