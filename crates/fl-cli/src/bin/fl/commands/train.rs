//! `fl train`, and the run flags every single-run command shares.

use anyhow::Result;
use fl_cli::config::{RunKind, load_table, resolve, run_kind};
use fl_core::{DeviceKind, FedConfig};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct TrainArgs {
    /// The TOML config (see configs/); without it, the defaults.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Override a config value, e.g. --set rounds=5 --set train.lr=0.01 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Compute device: flex (default CPU), ndarray, wgpu, cuda.
    #[arg(long)]
    pub device: Option<String>,
    /// The run's seed (overrides the config).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Folder holding the datasets (overrides the config's data_dir).
    #[arg(long, env = "FL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Output folder (default: a folder under results/ named after the run).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The config table of `args`: the file, `--set`s, then the dedicated flags.
pub fn table_of(args: &TrainArgs) -> Result<toml::Table> {
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
    Ok(table)
}

/// Runs `fl train`.
pub fn run(args: TrainArgs) -> Result<()> {
    let mut table = table_of(&args)?;
    expect_kind(&mut table, RunKind::Train, "fl train")?;
    train(table, args.out.as_deref(), args.quiet)
}

/// Refuses a config that runs something other than `want` (the command `command` runs it).
pub fn expect_kind(table: &mut toml::Table, want: RunKind, command: &str) -> Result<()> {
    let kind = run_kind(table)?;
    if kind != want {
        anyhow::bail!(
            "this config runs {}, which `{command}` does not: run it with `fl run`",
            match kind {
                RunKind::Train => "federated training",
                RunKind::Poison => "a poisoning attack ([attack])",
                RunKind::Mia => "membership inference ([mia])",
                RunKind::ModelPoison => "model poisoning ([attack] kind = \"model-poison\")",
                RunKind::Backdoor => "a backdoor ([attack] kind = \"backdoor\")",
            }
        );
    }
    Ok(())
}

/// Trains as `table` (of kind [`RunKind::Train`]) says, into `out` or `results/<name>`.
pub fn train(mut table: toml::Table, out: Option<&Path>, quiet: bool) -> Result<()> {
    let defense = fl_cli::config::take_defense(&mut table)?;
    let config: FedConfig = resolve(table)?;
    let out = out.map_or_else(
        || PathBuf::from("results").join(&config.name),
        Path::to_path_buf,
    );
    let s = fl_cli::train::run(&config, &defense, &out, !quiet)?;
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
