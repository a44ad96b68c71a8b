//! `fl experiment mia-table`: every membership attack against every aggregator, as a table.

use anyhow::Result;
use clap::Subcommand;
use fl_cli::config::load_table;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum ExperimentCommand {
    /// Every membership attack against every aggregator on each dataset and split (IID and
    /// Dirichlet 0.5): one run each under OUT/runs/ (finished runs are kept), then table.md,
    /// table.csv and table.json of best attack accuracy and main accuracy.
    MiaTable(Box<MiaTableArgs>),
    /// The membership runs in DIR's sub-folders side by side: table.csv, report.md, and a
    /// per-round curve of each run RUN, beside the published one where DIR/authors/RUN.csv
    /// holds it (see configs/mia-authors/).
    MiaReport {
        /// The folder of runs, e.g. results/mia-authors.
        dir: PathBuf,
    },
}

#[derive(clap::Args)]
pub struct MiaTableArgs {
    /// The base config (default: configs/mia.toml's settings).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Override a base config value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Datasets.
    #[arg(long, value_delimiter = ',', default_value = "mnist,fashion-mnist")]
    pub datasets: Vec<String>,
    /// Splits: iid, dirichlet-<alpha>.
    #[arg(long, value_delimiter = ',', default_value = "iid,dirichlet-0.5")]
    pub partitions: Vec<String>,
    /// Attacks (rows).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "fedpoisonmia,passive,gradient-ascent,agrevader"
    )]
    pub attacks: Vec<String>,
    /// Aggregators (columns): rule names, or all (every registered rule).
    #[arg(long, value_delimiter = ',', default_value = "all")]
    pub aggregators: Vec<String>,
    /// Vary a base config value over a list (repeatable; every combination becomes a block of
    /// the table), e.g. --vary mia.malicious=1,3,5 --vary train.epochs=1,5.
    #[arg(long, value_name = "KEY=V1,V2,...")]
    pub vary: Vec<String>,
    /// Folder holding the datasets (overrides the config's data_dir).
    #[arg(long, env = "FL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Output folder.
    #[arg(long, default_value = "results/mia-table")]
    pub out: PathBuf,
    /// Runs at once (each gets cores / jobs threads; 0 = one per core). Two tables run on one
    /// folder divide its cells.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs the experiment subcommand.
pub fn run(cmd: ExperimentCommand) -> Result<()> {
    match cmd {
        ExperimentCommand::MiaTable(args) => mia_table(*args),
        ExperimentCommand::MiaReport { dir } => {
            let figs = fl_cli::mia_report::report(&dir)?;
            for f in &figs {
                println!(
                    "{}: mean over the last 50 attack rounds {:.3}, best {:.3} (all rounds {:.3}), \
                     main accuracy {:.4}, {} rounds",
                    f.run,
                    f.last50_mean,
                    f.best_attack_rounds,
                    f.best_all_rounds,
                    f.main_accuracy,
                    f.rounds
                );
            }
            println!("report: {}", dir.join("report.md").display());
            Ok(())
        }
    }
}

fn mia_table(args: MiaTableArgs) -> Result<()> {
    let mut table = match &args.config {
        Some(_) => load_table(args.config.as_deref(), &args.sets)?,
        None => {
            let mut t: toml::Table = include_str!("../../../../../../configs/mia.toml").parse()?;
            fl_cli::config::apply_sets(&mut t, &args.sets)?;
            t
        }
    };
    if let Some(d) = &args.data_dir {
        table.insert(
            "data_dir".into(),
            toml::Value::String(d.display().to_string()),
        );
    }
    let opts = fl_cli::mia_table::TableOptions {
        datasets: args
            .datasets
            .iter()
            .map(|d| fl_data::DatasetKind::parse(d))
            .collect::<std::result::Result<_, _>>()?,
        partitions: args.partitions.clone(),
        attacks: args
            .attacks
            .iter()
            .map(|a| fl_mia::MiaMethod::parse(a))
            .collect::<std::result::Result<_, _>>()?,
        aggregators: if args.aggregators == ["all"] {
            fl_defense::names().into_iter().map(String::from).collect()
        } else {
            args.aggregators.clone()
        },
        settings: fl_cli::mia_table::settings(&args.vary)?,
        out: args.out.clone(),
        jobs: args.jobs,
        progress: !args.quiet,
    };
    let cells = fl_cli::mia_table::run_table(&table, &opts)?;
    print!("{}", fl_cli::mia_table::markdown(&cells));
    println!("\ntable and runs in {}", args.out.display());
    Ok(())
}
