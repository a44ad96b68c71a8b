//! `fl`: run federated-learning experiments, attacks and defenses from config files.
//!
//! This file declares the command line and dispatches; each subcommand is a file under
//! `commands/`, and the work itself is in the `fl_cli` library.

mod commands;

use anyhow::Result;
use clap::{Parser, Subcommand};
use commands::{attack, bench, demo, experiment, grid, run as run_cmd, sweep, train};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "fl",
    version,
    about = "A lab for attacks and defenses in federated learning",
    long_about = "A lab for attacks and defenses in federated learning.\n\n\
        Runs FedAvg on MNIST or Fashion-MNIST, and attacks on it (GAN reconstruction and \
        poisoning, label flipping), from TOML config files; writes the resolved config, \
        per-round metrics (metrics.jsonl), a summary, curves and image grids to a run folder."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A short GAN-poisoning run on the bundled fixtures (no download; about 2 minutes on 2
    /// cores): writes the generated-image grid, curves and summary, and prints where they are.
    Demo {
        /// Output folder.
        #[arg(long, default_value = "results/demo")]
        out: PathBuf,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Any experiment from a config file: training, or the attack its `[attack] kind` names
    /// (gan-poison, label-flip, baseline, mia, model-poison, backdoor); `train` and `attack ...`
    /// are short forms.
    Run(train::TrainArgs),
    /// Train a federated model from a config file.
    Train(train::TrainArgs),
    /// Run an attack experiment from a config file.
    #[command(subcommand)]
    Attack(attack::AttackCommand),
    /// The 90-pair GAN-poisoning study: every (dataset, seed, G, T) of a grid, in parallel,
    /// resumable, sharded; then a report with heat maps and tests.
    Sweep(sweep::SweepArgs),
    /// Any experiment over axes of its config keys (seeds, rules, attack parameters, any
    /// key): resumable, sharded, run on --jobs workers; then a table of every cell's summary.
    Grid(grid::GridArgs),
    /// Experiments made of many runs, written as tables.
    #[command(subcommand)]
    Experiment(experiment::ExperimentCommand),
    /// Benchmarks with fixed workloads; print JSON.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> ExitCode {
    fl_cli::alloc::keep_freed_memory();
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
        Command::Run(args) => run_cmd::run(args),
        Command::Train(args) => train::run(args),
        Command::Demo { out, quiet } => demo::run(&out, quiet),
        Command::Attack(cmd) => attack::run(cmd),
        Command::Experiment(cmd) => experiment::run(cmd),
        Command::Sweep(args) => sweep::run(args),
        Command::Grid(args) => grid::run(args),
        Command::Bench(cmd) => bench::run(cmd),
    }
}
