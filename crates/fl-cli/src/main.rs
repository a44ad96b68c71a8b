//! `fl`: run federated-learning experiments, attacks and defenses from config files.

use anyhow::Result;
use clap::{Parser, Subcommand};
use fl_cli::attack::resolve_attack;
use fl_cli::config::{load_table, resolve, set_dotted};
use fl_core::{DeviceKind, FedConfig};
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
    /// Train a federated model from a config file.
    Train(TrainArgs),
    /// Run an attack experiment from a config file.
    #[command(subcommand)]
    Attack(AttackCommand),
    /// The 90-pair GAN-poisoning study: every (dataset, seed, G, T) of a grid, in parallel,
    /// resumable, sharded; then a report with heat maps and tests.
    Sweep(SweepArgs),
    /// Experiments made of many runs, written as tables.
    #[command(subcommand)]
    Experiment(ExperimentCommand),
    /// Benchmarks with fixed workloads; print JSON.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct SweepArgs {
    #[command(subcommand)]
    action: Option<SweepAction>,
    #[command(flatten)]
    grid: GridArgs,
    /// The sweep folder (default: results/<grid name>). Finished cells there are kept.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Cells run at once (0 = one per core on CPU; on a GPU, as many as its memory holds,
    /// measured on the first cell).
    #[arg(long, default_value_t = 0)]
    jobs: usize,
    /// Worker threads inside each cell (0 = cores / jobs).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Device memory the cells may use together on a GPU with --jobs 0, e.g. 70GiB
    /// (default: the capacity the device reports).
    #[arg(long, value_name = "SIZE", value_parser = fl_cli::sweep::run::parse_bytes)]
    device_memory: Option<u64>,
    /// Run only share i of N (from 0), e.g. --shard 0/4; join shards with `fl sweep merge`.
    #[arg(long, value_name = "i/N")]
    shard: Option<fl_cli::sweep::Shard>,
    /// Run every cell from scratch instead of sharing the rounds before the attack between
    /// the targets of a (dataset, seed, G) (the numbers are the same either way).
    #[arg(long)]
    no_warm_start: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(clap::Args)]
struct GridArgs {
    /// A grid file (datasets, pairs, seeds, base config; see configs/sweep-quick.toml).
    #[arg(long, conflicts_with = "preset")]
    grid: Option<PathBuf>,
    /// A built-in grid: quick (MNIST, seed 1, 90 cells) or full (MNIST and Fashion-MNIST,
    /// seeds 1-3, 540 cells), over configs/gan-poison.toml.
    #[arg(long, default_value = "quick")]
    preset: String,
    /// Override a base config value, e.g. --set rounds=20 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Folder holding the datasets (overrides the base config's data_dir).
    #[arg(long, env = "FL_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum SweepAction {
    /// Join shard folders into one (refusing cells of another configuration).
    Merge {
        /// The merged folder.
        #[arg(long)]
        out: PathBuf,
        /// Shard folders.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// Write the report of the merged folder.
        #[arg(long)]
        report: bool,
    },
    /// Write the report (matrices, heat maps, histogram, tests, report.md) of a sweep folder.
    Report {
        /// The sweep folder.
        dir: PathBuf,
    },
    /// Print a Slurm array script that runs the grid's shards.
    EmitSlurm {
        #[command(flatten)]
        emit: EmitArgs,
        /// Time limit per task.
        #[arg(long, default_value = "08:00:00")]
        time: String,
    },
    /// Print a Kubernetes indexed Job that runs the grid's shards.
    EmitK8s {
        #[command(flatten)]
        emit: EmitArgs,
        /// Container image with `fl` on its PATH.
        #[arg(long)]
        image: String,
        /// Persistent volume claim for the results (mounted at /results).
        #[arg(long, default_value = "fl-results")]
        claim: String,
        /// Persistent volume claim holding the datasets (mounted at /data).
        #[arg(long, default_value = "fl-datasets")]
        data_claim: String,
    },
}

#[derive(clap::Args)]
struct EmitArgs {
    /// A grid file, as the tasks will see its path.
    #[arg(long, conflicts_with = "preset")]
    grid: Option<PathBuf>,
    /// A built-in grid (quick or full).
    #[arg(long, default_value = "full")]
    preset: String,
    /// Number of shards (tasks).
    #[arg(long)]
    shards: usize,
    /// Cores per task (also its --jobs).
    #[arg(long, default_value_t = 4)]
    cpus: usize,
    /// Folder the shard folders go under (default: results/<grid name>).
    #[arg(long)]
    out: Option<String>,
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
    /// Output folder (default: a folder under results/ named after the run).
    #[arg(long)]
    out: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Subcommand)]
enum AttackCommand {
    /// GAN reconstruction + poisoning: an adversary owning no image of class G learns to draw
    /// G from the shared model and trains on its drawings labelled T (see configs/gan-poison.toml).
    GanPoison(GanPoisonArgs),
    /// Hitaj's reconstruction alone (fake class on, no poisoning, no boost): one run per class,
    /// then one row of generated images per class in reconstructions.png.
    Reconstruct(ReconstructArgs),
    /// Membership inference: malicious clients learn whether target samples were in benign
    /// clients' training data (FedPoisonMIA, passive, gradient ascent, AGREvader-style), under
    /// any aggregator (see configs/mia.toml).
    Mia(MiaArgs),
}

#[derive(clap::Args)]
struct MiaArgs {
    #[command(flatten)]
    run: TrainArgs,
    /// Dataset: mnist or fashion-mnist (overrides the config).
    #[arg(long)]
    dataset: Option<String>,
    /// fedpoisonmia, passive, gradient-ascent or agrevader (overrides mia.method).
    #[arg(long)]
    attack: Option<String>,
    /// fedavg, median, trimmed-mean, krum, multi-krum, atm, clip or dp (overrides aggregator).
    #[arg(long)]
    aggregator: Option<String>,
    /// full (the round's benign updates) or partial (its own clients' benign updates)
    /// (overrides mia.knowledge).
    #[arg(long)]
    knowledge: Option<String>,
    /// Number of malicious clients (overrides mia.malicious).
    #[arg(long)]
    malicious: Option<usize>,
}

#[derive(clap::Args)]
struct GanPoisonArgs {
    #[command(flatten)]
    run: TrainArgs,
    /// Dataset: mnist or fashion-mnist (overrides the config).
    #[arg(long)]
    dataset: Option<String>,
    /// G, the class the adversary reconstructs (overrides attack.generate).
    #[arg(long)]
    generate: Option<usize>,
    /// T, the class G's images should be called (overrides attack.target).
    #[arg(long)]
    target: Option<usize>,
    /// gan, label-flip, or none (the no-attack baseline) (overrides attack.method).
    #[arg(long)]
    method: Option<String>,
    /// Boost factor lambda on the malicious update (overrides attack.boost).
    #[arg(long)]
    boost: Option<f64>,
}

#[derive(clap::Args)]
struct ReconstructArgs {
    #[command(flatten)]
    run: TrainArgs,
    /// Dataset: mnist or fashion-mnist (overrides the config).
    #[arg(long)]
    dataset: Option<String>,
    /// The class to reconstruct (repeatable).
    #[arg(long, conflicts_with = "all_classes")]
    generate: Vec<usize>,
    /// Reconstruct every class, one run each.
    #[arg(long)]
    all_classes: bool,
}

#[derive(Subcommand)]
enum ExperimentCommand {
    /// Every membership attack against every aggregator on each dataset and split (IID and
    /// Dirichlet 0.5): one run each under OUT/runs/ (finished runs are kept), then table.md,
    /// table.csv and table.json of best attack accuracy and main accuracy.
    MiaTable(MiaTableArgs),
}

#[derive(clap::Args)]
struct MiaTableArgs {
    /// The base config (default: configs/mia.toml's settings).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Override a base config value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Datasets.
    #[arg(long, value_delimiter = ',', default_value = "mnist,fashion-mnist")]
    datasets: Vec<String>,
    /// Splits: iid, dirichlet-<alpha>.
    #[arg(long, value_delimiter = ',', default_value = "iid,dirichlet-0.5")]
    partitions: Vec<String>,
    /// Attacks (rows).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "fedpoisonmia,passive,gradient-ascent,agrevader"
    )]
    attacks: Vec<String>,
    /// Aggregators (columns).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "fedavg,median,trimmed-mean,krum,multi-krum,atm,clip,dp"
    )]
    aggregators: Vec<String>,
    /// Vary a base config value over a list (repeatable; every combination becomes a block of
    /// the table), e.g. --vary mia.malicious=1,3,5 --vary train.epochs=1,5.
    #[arg(long, value_name = "KEY=V1,V2,...")]
    vary: Vec<String>,
    /// Folder holding the datasets (overrides the config's data_dir).
    #[arg(long, env = "FL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Output folder.
    #[arg(long, default_value = "results/mia-table")]
    out: PathBuf,
    /// Runs at once (each gets cores / jobs threads).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Subcommand)]
enum BenchCommand {
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
        Command::Demo { out, quiet } => demo(&out, quiet),
        Command::Attack(AttackCommand::GanPoison(args)) => gan_poison(args),
        Command::Attack(AttackCommand::Reconstruct(args)) => reconstruct(args),
        Command::Attack(AttackCommand::Mia(args)) => mia(args),
        Command::Experiment(ExperimentCommand::MiaTable(args)) => mia_table(args),
        Command::Sweep(args) => sweep(args),
        Command::Bench(BenchCommand::Aggregators { n, dim, reps }) => {
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

/// The config table of `args`: the file, `--set`s, then the dedicated flags.
fn table_of(args: &TrainArgs) -> Result<toml::Table> {
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

fn train(args: TrainArgs) -> Result<()> {
    let mut table = table_of(&args)?;
    let defense = fl_cli::config::take_defense(&mut table)?;
    let config: FedConfig = resolve(table)?;
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("results").join(&config.name));
    let s = fl_cli::train::run(&config, &defense, &out, !args.quiet)?;
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

/// Where the bundled fixtures are: `fixtures/` under the working folder, else the checkout this
/// binary was built from.
fn fixtures_dir() -> PathBuf {
    let here = PathBuf::from("fixtures");
    if here.join("mnist").is_dir() {
        here
    } else {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures"))
    }
}

fn demo(out: &std::path::Path, quiet: bool) -> Result<()> {
    let mut table: toml::Table = include_str!("../../../configs/demo.toml").parse()?;
    table.insert(
        "data_dir".into(),
        toml::Value::String(fixtures_dir().display().to_string()),
    );
    let (fed, attack, defense) = resolve_attack(table)?;
    println!(
        "demo: {} on the bundled {} subset, {} clients, client {} adversarial, {} rounds",
        attack.method.name(),
        fed.dataset.name(),
        fed.clients,
        attack.adversary,
        fed.rounds
    );
    let done = fl_cli::attack::run(&fed, &attack, &defense, out, !quiet)?;
    print_attack(&done.summary, out);
    for f in ["samples.png", "attack.png", "summary.json", "metrics.jsonl"] {
        println!("  {}", out.join(f).display());
    }
    Ok(())
}

fn print_attack(s: &fl_cli::attack::AttackRunSummary, out: &std::path::Path) {
    let a = &s.attack;
    let opt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.3}"));
    println!(
        "{} ({}, boost {}): average attack accuracy {} over {} rounds from round {}, final {:.3}, max {}",
        a.pair,
        a.method,
        a.boost,
        opt(a.avg_attack_accuracy),
        a.attack_rounds,
        a.attack_start.map_or("-".into(), |r| r.to_string()),
        a.final_attack_accuracy,
        opt(a.max_attack_accuracy)
    );
    println!(
        "main accuracy at the end {:.4} (classes other than G {:.4}, G {:.4}){}",
        a.final_main_accuracy,
        a.final_main_accuracy_others,
        a.final_accuracy_generate,
        a.fidelity.map_or(String::new(), |f| format!(
            "; reconstruction fidelity {f:.3}"
        ))
    );
    println!("results in {}", out.display());
}

/// The attack config of `args` with the attack flags applied.
fn attack_table(run: &TrainArgs, dataset: &Option<String>) -> Result<toml::Table> {
    let mut table = table_of(run)?;
    if let Some(d) = dataset {
        table.insert("dataset".into(), toml::Value::String(d.clone()));
    }
    Ok(table)
}

fn gan_poison(args: GanPoisonArgs) -> Result<()> {
    let mut table = attack_table(&args.run, &args.dataset)?;
    let mut set = |k: &str, v: toml::Value| set_dotted(&mut table, k, v);
    if let Some(g) = args.generate {
        set("attack.generate", toml::Value::Integer(g as i64))?;
    }
    if let Some(t) = args.target {
        set("attack.target", toml::Value::Integer(t as i64))?;
    }
    if let Some(m) = &args.method {
        set("attack.method", toml::Value::String(m.clone()))?;
    }
    if let Some(b) = args.boost {
        set("attack.boost", toml::Value::Float(b))?;
    }
    let (fed, attack, defense) = resolve_attack(table)?;
    let out = args.run.out.clone().unwrap_or_else(|| {
        PathBuf::from("results").join(format!(
            "{}-{}-g{}-t{}",
            fed.name,
            attack.method.name(),
            attack.generate,
            attack.target
        ))
    });
    let done = fl_cli::attack::run(&fed, &attack, &defense, &out, !args.run.quiet)?;
    print_attack(&done.summary, &out);
    Ok(())
}

fn mia(args: MiaArgs) -> Result<()> {
    let mut table = attack_table(&args.run, &args.dataset)?;
    let mut set = |k: &str, v: toml::Value| set_dotted(&mut table, k, v);
    if let Some(a) = &args.attack {
        fl_mia::MiaMethod::parse(a)?;
        set("mia.method", toml::Value::String(a.clone()))?;
    }
    if let Some(a) = &args.aggregator {
        set("aggregator", toml::Value::String(a.clone()))?;
    }
    if let Some(k) = &args.knowledge {
        set("mia.knowledge", toml::Value::String(k.clone()))?;
    }
    if let Some(m) = args.malicious {
        set("mia.malicious", toml::Value::Integer(m as i64))?;
    }
    let (fed, mia, defense) = fl_cli::mia::resolve_mia(table)?;
    let out = args.run.out.clone().unwrap_or_else(|| {
        PathBuf::from("results").join(format!(
            "{}-{}-{}",
            fed.name,
            mia.method.name(),
            fed.aggregator
        ))
    });
    let s = fl_cli::mia::run(&fed, &mia, &defense, &out, !args.run.quiet)?.mia;
    let tpr = s
        .at_best
        .tpr_at
        .iter()
        .map(|t| match t.tpr {
            Some(v) => format!("TPR {v:.3} at {}% FPR", t.fpr * 100.0),
            None => format!(
                "TPR at {}% FPR not measurable (smallest FPR {:.4})",
                t.fpr * 100.0,
                s.at_best.smallest_fpr
            ),
        })
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "{} ({} knowledge, {} malicious) vs {}: best membership accuracy {:.3} at round {} \
         (precision {:.3}, recall {:.3}, AUC {:.3}; {tpr}); final {:.3}; main accuracy {:.4}",
        s.method.name(),
        s.knowledge,
        s.malicious,
        s.aggregator,
        s.best_accuracy,
        s.best_round,
        s.at_best.precision,
        s.at_best.recall,
        s.at_best.auc,
        s.final_accuracy,
        s.main_accuracy
    );
    if let Some(k) = s.malicious_kept_share {
        println!(
            "the aggregator kept {:.0}% of the malicious updates",
            k * 100.0
        );
    }
    println!("results in {}", out.display());
    Ok(())
}

fn mia_table(args: MiaTableArgs) -> Result<()> {
    let mut table = match &args.config {
        Some(_) => load_table(args.config.as_deref(), &args.sets)?,
        None => {
            let mut t: toml::Table = include_str!("../../../configs/mia.toml").parse()?;
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
        aggregators: args.aggregators.clone(),
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

fn reconstruct(args: ReconstructArgs) -> Result<()> {
    let table = attack_table(&args.run, &args.dataset)?;
    let (fed, attack, defense) = resolve_attack(table)?;
    let classes: Vec<usize> = if args.all_classes {
        (0..fl_data::NUM_CLASSES).collect()
    } else if args.generate.is_empty() {
        anyhow::bail!("say which classes: --generate G (repeatable) or --all-classes");
    } else {
        args.generate.clone()
    };
    let out = args
        .run
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("results").join(format!("{}-reconstruct", fed.name)));
    let rows =
        fl_cli::attack::reconstruct(&fed, &attack, &defense, &classes, &out, !args.run.quiet)?;
    for r in &rows {
        println!(
            "class {} ({}): fidelity {}",
            r.class,
            r.name,
            r.fidelity.map_or("-".into(), |f| format!("{f:.3}"))
        );
    }
    println!("grid in {}", out.join("reconstructions.png").display());
    Ok(())
}

/// The grid named by `--grid` or `--preset`, with `--set` and `--data-dir` applied.
fn grid_of(args: &GridArgs) -> Result<fl_cli::sweep::Grid> {
    let mut grid = match &args.grid {
        Some(p) => fl_cli::sweep::Grid::load(p)?,
        None => fl_cli::sweep::Grid::preset(&args.preset)?,
    };
    let mut sets = args.sets.clone();
    if let Some(d) = &args.data_dir {
        sets.push(format!("data_dir=\"{}\"", d.display()));
    }
    grid.set(&sets)?;
    Ok(grid)
}

fn sweep(args: SweepArgs) -> Result<()> {
    use fl_cli::sweep::{FULL_GRID_CELLS, SweepOptions, emit};
    match args.action {
        Some(SweepAction::Merge {
            out,
            shards,
            report,
        }) => {
            let n = fl_cli::sweep::store::merge(&out, &shards)?;
            println!("{n} cells in {}", out.display());
            if report {
                let md = fl_cli::sweep::report_dir(&out)?;
                println!("report: {}", md.display());
            }
            Ok(())
        }
        Some(SweepAction::Report { dir }) => {
            let md = fl_cli::sweep::report_dir(&dir)?;
            println!("report: {}", md.display());
            Ok(())
        }
        Some(SweepAction::EmitSlurm { emit: e, time }) => {
            print!("{}", emit::slurm(&emit_options(&e, time, "", "", "")?));
            Ok(())
        }
        Some(SweepAction::EmitK8s {
            emit: e,
            image,
            claim,
            data_claim,
        }) => {
            print!(
                "{}",
                emit::k8s(&emit_options(
                    &e,
                    String::new(),
                    &image,
                    &claim,
                    &data_claim
                )?)
            );
            Ok(())
        }
        None => {
            let grid = grid_of(&args.grid)?;
            let out = args
                .out
                .unwrap_or_else(|| PathBuf::from("results").join(&grid.name));
            let opts = SweepOptions {
                out: out.clone(),
                jobs: args.jobs,
                threads: args.threads,
                shard: args.shard,
                warm_start: !args.no_warm_start,
                progress: !args.quiet,
                device_memory: args.device_memory,
            };
            let (r, md) = fl_cli::sweep::sweep(&grid, &opts)?;
            // With the progress bar, the plan was shown as soon as it was made.
            if let Some(plan) = r.memory.as_ref().filter(|_| args.quiet) {
                println!("{}", fl_cli::sweep::run::plan_line(plan));
            }
            println!(
                "{}: {} cells, {} finished before, {} run now, {} failed, {:.0} s",
                grid.name,
                r.cells,
                r.skipped,
                r.ran,
                r.failed.len(),
                r.seconds
            );
            if r.elsewhere > 0 {
                println!(
                    "{} cells were run by another sweep on this folder (the report covers \
                     the cells finished so far; `fl sweep report` remakes it)",
                    r.elsewhere
                );
            }
            if r.ran > 0 {
                let per_hour = r.cells_per_hour();
                println!(
                    "throughput: {per_hour:.1} cells/hour; the full grid ({FULL_GRID_CELLS} cells) \
                     would take {:.1} h at this rate",
                    FULL_GRID_CELLS as f64 / per_hour
                );
            }
            if let Some(md) = md {
                println!("report: {}", md.display());
            }
            println!("cells in {}", out.join("cells").display());
            if !r.failed.is_empty() {
                for (id, why) in &r.failed {
                    eprintln!("cell {id}: {why}");
                }
                anyhow::bail!(
                    "{} cells failed; run the same command again to retry them",
                    r.failed.len()
                );
            }
            Ok(())
        }
    }
}

fn emit_options(
    e: &EmitArgs,
    time: String,
    image: &str,
    claim: &str,
    data_claim: &str,
) -> Result<fl_cli::sweep::emit::EmitOptions> {
    let (name, grid_args) = match &e.grid {
        Some(p) => (
            fl_cli::sweep::Grid::load(p)?.name,
            format!("--grid {}", p.display()),
        ),
        None => (
            fl_cli::sweep::Grid::preset(&e.preset)?.name,
            format!("--preset {}", e.preset),
        ),
    };
    if e.shards == 0 || e.cpus == 0 {
        anyhow::bail!("--shards and --cpus must be at least 1");
    }
    Ok(fl_cli::sweep::emit::EmitOptions {
        out: e.out.clone().unwrap_or_else(|| format!("results/{name}")),
        name,
        grid_args,
        shards: e.shards,
        cpus: e.cpus,
        time,
        image: image.to_string(),
        claim: claim.to_string(),
        data_claim: data_claim.to_string(),
    })
}
