//! `fl sweep`: run a grid (resumable, sharded), merge shards, write the report, emit cluster
//! scripts.

use super::cluster::{K8sArgs, MergeArgs, SlurmArgs};
use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SweepArgs {
    #[command(subcommand)]
    pub action: Option<SweepAction>,
    #[command(flatten)]
    pub grid: GridArgs,
    /// The sweep folder (default: results/<grid name>). Finished cells there are kept.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Cells run at once (0 = one per core on CPU; on a GPU, as many as its memory holds,
    /// measured on the first cell).
    #[arg(long, default_value_t = 0)]
    pub jobs: usize,
    /// Worker threads inside each cell (0 = cores / jobs).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Device memory the cells may use together on a GPU with --jobs 0, e.g. 70GiB
    /// (default: the capacity the device reports).
    #[arg(long, value_name = "SIZE", value_parser = fl_cli::sweep::run::parse_bytes)]
    pub device_memory: Option<u64>,
    /// Run only share i of N (from 0), e.g. --shard 0/4; join shards with `fl sweep merge`.
    #[arg(long, value_name = "i/N")]
    pub shard: Option<fl_cli::sweep::Shard>,
    /// Run every cell from scratch instead of sharing the rounds before the attack between
    /// the targets of a (dataset, seed, G) (the numbers are the same either way).
    #[arg(long)]
    pub no_warm_start: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(clap::Args)]
pub struct GridArgs {
    /// A grid file (datasets, pairs, seeds, base config; see configs/sweep-quick.toml).
    #[arg(long, conflicts_with = "preset")]
    pub grid: Option<PathBuf>,
    /// A built-in grid: quick (MNIST, seed 1, 90 cells) or full (MNIST and Fashion-MNIST,
    /// seeds 1-3, 540 cells), over configs/gan-poison.toml.
    #[arg(long, default_value = "quick")]
    pub preset: String,
    /// Override a base config value, e.g. --set rounds=20 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Folder holding the datasets (overrides the base config's data_dir).
    #[arg(long, env = "FL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum SweepAction {
    /// Join shard folders into one (refusing cells of another configuration).
    Merge(MergeArgs),
    /// Write the report (matrices, heat maps, histogram, tests, report.md) of a sweep folder.
    Report {
        /// The sweep folder.
        dir: PathBuf,
    },
    /// Print a Slurm array script that runs the grid's shards.
    EmitSlurm {
        #[command(flatten)]
        emit: EmitArgs,
        #[command(flatten)]
        slurm: SlurmArgs,
    },
    /// Print a Kubernetes indexed Job that runs the grid's shards.
    EmitK8s {
        #[command(flatten)]
        emit: EmitArgs,
        #[command(flatten)]
        k8s: K8sArgs,
    },
}

#[derive(clap::Args)]
pub struct EmitArgs {
    /// A grid file, as the tasks will see its path.
    #[arg(long, conflicts_with = "preset")]
    pub grid: Option<PathBuf>,
    /// A built-in grid (quick or full).
    #[arg(long, default_value = "full")]
    pub preset: String,
    /// Number of shards (tasks).
    #[arg(long)]
    pub shards: usize,
    /// Cores per task (also its --jobs).
    #[arg(long, default_value_t = 4)]
    pub cpus: usize,
    /// Folder the shard folders go under (default: results/<grid name>).
    #[arg(long)]
    pub out: Option<String>,
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

/// Runs `fl sweep` and its actions.
pub fn run(args: SweepArgs) -> Result<()> {
    use fl_cli::sweep::{FULL_GRID_CELLS, GridOptions, emit};
    match args.action {
        Some(SweepAction::Merge(m)) => {
            let n = fl_cli::sweep::store::merge(&m.out, &m.shards)?;
            println!("{n} cells in {}", m.out.display());
            if m.report {
                let md = fl_cli::sweep::report_dir(&m.out)?;
                println!("report: {}", md.display());
            }
            Ok(())
        }
        Some(SweepAction::Report { dir }) => {
            let md = fl_cli::sweep::report_dir(&dir)?;
            println!("report: {}", md.display());
            Ok(())
        }
        Some(SweepAction::EmitSlurm { emit: e, slurm }) => {
            print!("{}", emit::slurm(&emit_options(&e, &slurm.time, None)?));
            Ok(())
        }
        Some(SweepAction::EmitK8s { emit: e, k8s }) => {
            print!("{}", emit::k8s(&emit_options(&e, "", Some(&k8s))?));
            Ok(())
        }
        None => {
            let grid = grid_of(&args.grid)?;
            let out = args
                .out
                .unwrap_or_else(|| PathBuf::from("results").join(&grid.name));
            let opts = GridOptions {
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
    time: &str,
    k8s: Option<&K8sArgs>,
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
    let (image, claim, data_claim) = k8s.map_or(("", "", ""), |k| {
        (k.image.as_str(), k.claim.as_str(), k.data_claim.as_str())
    });
    Ok(fl_cli::sweep::emit::EmitOptions {
        out: e.out.clone().unwrap_or_else(|| format!("results/{name}")),
        name,
        command: "sweep".into(),
        grid_args,
        shards: e.shards,
        cpus: e.cpus,
        time: time.to_string(),
        image: image.to_string(),
        claim: claim.to_string(),
        data_claim: data_claim.to_string(),
    })
}
