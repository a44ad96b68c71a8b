//! `fl grid`: any experiment over axes of its config keys (resumable, sharded, claimed), its
//! table, shard merging and cluster scripts.

use super::cluster::{K8sArgs, MergeArgs, SlurmArgs};
use anyhow::{Result, bail};
use clap::Subcommand;
use fl_cli::grid::runs::{AxisFile, RunGrid, RunGridFile, RunRecord, run_grid, write_report};
use fl_cli::grid::{GridOptions, Shard};
use std::path::PathBuf;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct GridArgs {
    #[command(subcommand)]
    pub action: Option<GridAction>,
    /// A grid file: name, base config, axes (see configs/tiny/runs-grid.toml).
    #[arg(long, conflicts_with_all = ["config", "name"])]
    pub grid: Option<PathBuf>,
    /// A run config to vary (as for `fl run`), instead of a grid file.
    #[arg(long, short, requires = "name")]
    pub config: Option<PathBuf>,
    /// The grid's name, with --config.
    #[arg(long)]
    pub name: Option<String>,
    /// An axis over a config key, e.g. --vary aggregator=fedavg,median --vary seed=1,2,3
    /// (repeatable; after the grid file's axes; the first varies slowest).
    #[arg(long, value_name = "KEY=V1,V2,...")]
    pub vary: Vec<String>,
    /// Override a base config value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Folder holding the datasets (overrides the base config's data_dir).
    #[arg(long, env = "FL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The grid folder (default: results/<name>). Finished cells there are kept.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Cells run at once (0 = one per core on CPU; on a GPU, as many as its memory holds).
    #[arg(long, default_value_t = 0)]
    pub jobs: usize,
    /// Worker threads inside each cell (0 = cores / jobs).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Run only share i of N (from 0); join shards with `fl grid merge`.
    #[arg(long, value_name = "i/N")]
    pub shard: Option<Shard>,
    /// List the cells (finished or to run) and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Subcommand)]
pub enum GridAction {
    /// Join shard folders into one (refusing cells of another configuration).
    Merge(MergeArgs),
    /// Write table.csv, table.md, the heat maps and baseline.md of a grid folder.
    Report {
        /// The grid folder.
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
    /// The grid file, as the tasks will see its path.
    #[arg(long)]
    pub grid: PathBuf,
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

/// The grid of `args`: the file, or --config and --name; then --vary, --set, --data-dir.
fn grid_of(args: &GridArgs) -> Result<RunGrid> {
    let (mut file, dir) = match (&args.grid, &args.config) {
        (Some(p), _) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))?;
            let file: RunGridFile = toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{} is not a valid grid file: {e}", p.display()))?;
            (
                file,
                p.parent()
                    .unwrap_or(std::path::Path::new("."))
                    .to_path_buf(),
            )
        }
        (None, Some(c)) => (
            RunGridFile {
                name: args
                    .name
                    .clone()
                    .expect("clap requires --name with --config"),
                base_config: Some(c.clone()),
                columns: Vec::new(),
                heatmaps: Vec::new(),
                baseline: None,
                axes: Vec::new(),
                base: None,
            },
            PathBuf::from("."),
        ),
        (None, None) => bail!("say what to run: --grid FILE, or --config FILE --name NAME"),
    };
    for axis in fl_cli::grid::vary_axes(&args.vary)? {
        file.axes.push(AxisFile::Points {
            name: axis.name,
            points: axis.points,
        });
    }
    let mut grid = RunGrid::new(file, &dir)?;
    let mut sets = args.sets.clone();
    if let Some(d) = &args.data_dir {
        sets.push(format!("data_dir=\"{}\"", d.display()));
    }
    grid.set(&sets)?;
    Ok(grid)
}

/// Runs `fl grid` and its actions.
pub fn run(args: GridArgs) -> Result<()> {
    match &args.action {
        Some(GridAction::Merge(m)) => {
            let n = fl_cli::grid::merge::<RunRecord>(&m.out, &m.shards, &["grid.toml"])?;
            println!("{n} cells in {}", m.out.display());
            if m.report {
                println!("table: {}", write_report(&m.out)?.display());
            }
            Ok(())
        }
        Some(GridAction::Report { dir }) => {
            println!("table: {}", write_report(dir)?.display());
            Ok(())
        }
        Some(GridAction::EmitSlurm { emit, slurm }) => {
            let o = emit_options(emit, &slurm.time, None)?;
            print!("{}", fl_cli::sweep::emit::slurm(&o));
            Ok(())
        }
        Some(GridAction::EmitK8s { emit, k8s }) => {
            let o = emit_options(emit, "", Some(k8s))?;
            print!("{}", fl_cli::sweep::emit::k8s(&o));
            Ok(())
        }
        None => {
            let grid = grid_of(&args)?;
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("results").join(&grid.file.name));
            if args.dry_run {
                return list(&grid, &out, args.shard);
            }
            let opts = GridOptions {
                out: out.clone(),
                jobs: args.jobs,
                threads: args.threads,
                shard: args.shard,
                warm_start: false,
                progress: !args.quiet,
                device_memory: None,
            };
            let r = run_grid(&grid, &opts)?;
            println!(
                "{}: {} cells, {} finished before, {} run now, {} left to another process, \
                 {} failed, {:.0} s",
                grid.file.name,
                r.cells,
                r.skipped,
                r.ran,
                r.elsewhere,
                r.failed.len(),
                r.seconds
            );
            if args.shard.is_none() {
                println!("table: {}", out.join("table.md").display());
            }
            println!("runs in {}", out.join("runs").display());
            if !r.failed.is_empty() {
                for (id, why) in &r.failed {
                    eprintln!("cell {id}: {why}");
                }
                bail!(
                    "{} cells failed; run the same command again to retry them",
                    r.failed.len()
                );
            }
            Ok(())
        }
    }
}

/// `--dry-run`: each cell of the grid (of its shard) and whether `out` holds it finished.
fn list(grid: &RunGrid, out: &std::path::Path, shard: Option<Shard>) -> Result<()> {
    let mut cells = grid.cells()?;
    if let Some(s) = shard {
        cells = s.select(&cells);
    }
    let done = match fl_cli::grid::GridDir::<RunRecord>::existing(out) {
        Ok((dir, _)) => dir.all()?,
        Err(_) => Default::default(),
    };
    let mut pending = 0;
    for c in &cells {
        let state = match done.get(&c.id) {
            Some(r) if r.config_hash == c.hash => "finished",
            Some(_) => "finished with another config (refused)",
            None => {
                pending += 1;
                "to run"
            }
        };
        let labels: Vec<String> = c.labels.iter().map(|(a, l)| format!("{a}={l}")).collect();
        println!("{:<32} {:<40} {state}", c.id, labels.join(" "));
    }
    println!(
        "{}: {} cells, {pending} to run, into {}",
        grid.file.name,
        cells.len(),
        out.display()
    );
    Ok(())
}

/// The emission options for the grid file `emit.grid`.
fn emit_options(
    emit: &EmitArgs,
    time: &str,
    k8s: Option<&K8sArgs>,
) -> Result<fl_cli::sweep::emit::EmitOptions> {
    let grid = RunGrid::load(&emit.grid)?;
    if emit.shards == 0 || emit.cpus == 0 {
        bail!("--shards and --cpus must be at least 1");
    }
    let (image, claim, data_claim) = k8s.map_or(("", "", ""), |k| {
        (k.image.as_str(), k.claim.as_str(), k.data_claim.as_str())
    });
    let name = grid.file.name.clone();
    Ok(fl_cli::sweep::emit::EmitOptions {
        out: emit
            .out
            .clone()
            .unwrap_or_else(|| format!("results/{name}")),
        name,
        command: "grid".into(),
        grid_args: format!("--grid {}", emit.grid.display()),
        shards: emit.shards,
        cpus: emit.cpus,
        time: time.to_string(),
        image: image.to_string(),
        claim: claim.to_string(),
        data_claim: data_claim.to_string(),
    })
}
