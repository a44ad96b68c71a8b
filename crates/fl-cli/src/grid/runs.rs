//! `fl grid`: any experiment `fl run` can run (training, a poisoning attack, membership
//! inference, model poisoning), over axes of its config keys. Each cell runs into its own run
//! folder under `runs/<id>/` (config, metrics, summary, plots, as `fl run` writes them); its
//! record is the run's `summary.json` with the cell's axis labels. The report: `table.csv`,
//! `table.md`, the grid's heat maps and `baseline.md`.

use super::axes::{Axis, Expanded, Point, expand};
use super::store::{GridDir, Manifest};
use super::{CellSpec, Experiment, GridOptions, GridReport, GroupContext, Record, numbers_hash};
use crate::attack::{AttackRunConfig, resolve_attack};
use crate::backdoor::{BackdoorRunConfig, resolve_backdoor};
use crate::config::{RunKind, run_kind, server_rule, set_dotted, shown_defense, take_defense};
use crate::mia::{MiaRunConfig, resolve_mia};
use crate::model_poison::{ModelPoisonRunConfig, resolve_model_poison};
use crate::plot::{Figure, TableHeatMap};
use anyhow::{Context, Result, bail};
use fl_core::{DeviceKind, FedConfig};
use fl_data::atomic::write_atomic;
use fl_defense::DefenseConfig;
use fl_mia::MiaConfig;
use fl_poison::{AttackConfig, BackdoorConfig, ModelPoisonConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use toml::{Table, Value};

/// An axis as a grid file writes it: one key and its values, or named points that each set
/// several keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum AxisFile {
    /// `{ key = "aggregator", values = ["fedavg", "median"] }`.
    Key {
        /// A dotted config key.
        key: String,
        /// Its values.
        values: Vec<Value>,
    },
    /// `{ name = "pair", points = [{ label = "g1-t9", set = { "attack.generate" = 1, ... } }] }`.
    Points {
        /// The axis's name.
        name: String,
        /// Its points.
        points: Vec<Point>,
    },
}

impl AxisFile {
    fn axis(&self) -> Axis {
        match self {
            AxisFile::Key { key, values } => Axis::key(key, values.clone()),
            AxisFile::Points { name, points } => Axis {
                name: name.clone(),
                points: points.clone(),
            },
        }
    }
}

/// A grid file (`fl grid --grid FILE`), also written into the grid's folder as `grid.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunGridFile {
    /// The grid's name: its folder is `results/<name>/` unless `--out` says otherwise.
    pub name: String,
    /// A run config (as for `fl run`), relative to the grid file's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_config: Option<PathBuf>,
    /// Summary fields (dotted, e.g. `mia.best_accuracy`) shown in `table.md`; empty: the
    /// first six numbers every cell's summary has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// Summary fields drawn as heat maps (values in [0, 1]): rows the second-to-last axis,
    /// columns the last, one map per combination of the axes before them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub heatmaps: Vec<String>,
    /// Each cell's `field` against the cell with one axis at its baseline point
    /// (`baseline.md`), e.g. every attack's accuracy against no attack under the same rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
    /// The axes, the first varying slowest.
    #[serde(default)]
    pub axes: Vec<AxisFile>,
    /// The run config inline, or with `base_config` the values that replace its own
    /// (sections merge, values replace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<Table>,
}

/// The `baseline` of a grid file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// The axis (its name, e.g. `attack.method`).
    pub axis: String,
    /// The label of its baseline point (e.g. `none`).
    pub label: String,
    /// The summary field compared (e.g. `attack.final_accuracy`).
    pub field: String,
}

/// A checked grid of runs.
#[derive(Debug, Clone)]
pub struct RunGrid {
    /// The grid as its file says (base inline).
    pub file: RunGridFile,
    /// The base config every cell starts from.
    pub base: Table,
}

impl RunGrid {
    /// Reads a grid file.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: RunGridFile = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid grid file", path.display()))?;
        Self::new(file, path.parent().unwrap_or(Path::new(".")))
    }

    /// A grid from its file form; `base_config` is read relative to `dir`.
    pub fn new(mut file: RunGridFile, dir: &Path) -> Result<Self> {
        let base = match (file.base_config.take(), file.base.take()) {
            (Some(p), over) => {
                let mut t = crate::config::load_table(Some(&dir.join(p)), &[])?;
                if let Some(over) = over {
                    crate::config::merge_tables(&mut t, over);
                }
                t
            }
            (None, Some(t)) => t,
            (None, None) => bail!("a grid needs `base_config = \"FILE\"` or a [base] section"),
        };
        if file.name.is_empty() || file.name.contains(['/', '\\']) || file.name.starts_with('.') {
            bail!(
                "a grid name must be a plain folder name, got `{}`",
                file.name
            );
        }
        let grid = Self { file, base };
        let cells = grid.cells()?;
        let mut ids: Vec<&str> = cells.iter().map(|c| c.id.as_str()).collect();
        ids.sort();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            bail!("two cells of the grid are both named `{}`", w[0]);
        }
        Ok(grid)
    }

    /// Applies `--set key=value` overrides to the base config.
    pub fn set(&mut self, sets: &[String]) -> Result<()> {
        crate::config::apply_sets(&mut self.base, sets)?;
        self.cells().context("after --set")?;
        Ok(())
    }

    /// The axes, in order.
    pub fn axes(&self) -> Vec<Axis> {
        self.file.axes.iter().map(AxisFile::axis).collect()
    }

    /// Every cell, resolved and checked, the first axis varying slowest.
    pub fn cells(&self) -> Result<Vec<RunCell>> {
        expand(&self.base, &self.axes())?
            .into_iter()
            .map(|e| RunCell::new(&self.file.name, e))
            .collect()
    }

    /// The hash of the base config, resolved where it runs as it is (so spelling out a
    /// default changes nothing), else as written: grids with the same base share a folder.
    pub fn base_hash(&self) -> String {
        Resolved::of(self.base.clone())
            .and_then(|r| r.hash())
            .unwrap_or_else(|_| numbers_hash(&self.base))
    }

    /// The grid as a file, base inline.
    pub fn to_file(&self) -> RunGridFile {
        RunGridFile {
            base: Some(self.base.clone()),
            ..self.file.clone()
        }
    }
}

/// A cell's run, resolved.
#[derive(Debug, Clone)]
pub enum Resolved {
    /// Federated training.
    Train(FedConfig, DefenseConfig),
    /// A poisoning attack.
    Poison(FedConfig, AttackConfig, DefenseConfig),
    /// Membership inference.
    Mia(FedConfig, MiaConfig, DefenseConfig),
    /// Model poisoning.
    ModelPoison(FedConfig, ModelPoisonConfig, DefenseConfig),
    /// A backdoor.
    Backdoor(FedConfig, BackdoorConfig, DefenseConfig),
}

impl Resolved {
    /// Resolves and checks a run config of any kind.
    pub fn of(mut table: Table) -> Result<Self> {
        let r = match run_kind(&mut table)? {
            RunKind::Train => {
                let defense = take_defense(&mut table)?;
                Resolved::Train(crate::config::resolve(table)?, defense)
            }
            RunKind::Poison => {
                let (f, a, d) = resolve_attack(table)?;
                a.validate(&f)?;
                Resolved::Poison(f, a, d)
            }
            RunKind::Mia => {
                let (f, m, d) = resolve_mia(table)?;
                m.validate(&f)?;
                Resolved::Mia(f, m, d)
            }
            RunKind::ModelPoison => {
                let (f, a, d) = resolve_model_poison(table)?;
                a.validate(&f)?;
                Resolved::ModelPoison(f, a, d)
            }
            RunKind::Backdoor => {
                let (f, a, d) = resolve_backdoor(table)?;
                a.validate(&f)?;
                Resolved::Backdoor(f, a, d)
            }
        };
        r.fed().validate()?;
        server_rule(r.fed(), r.defense())?;
        Ok(r)
    }

    /// The federated part.
    pub fn fed(&self) -> &FedConfig {
        match self {
            Resolved::Train(f, _)
            | Resolved::Poison(f, _, _)
            | Resolved::Mia(f, _, _)
            | Resolved::ModelPoison(f, _, _)
            | Resolved::Backdoor(f, _, _) => f,
        }
    }

    fn fed_mut(&mut self) -> &mut FedConfig {
        match self {
            Resolved::Train(f, _)
            | Resolved::Poison(f, _, _)
            | Resolved::Mia(f, _, _)
            | Resolved::ModelPoison(f, _, _)
            | Resolved::Backdoor(f, _, _) => f,
        }
    }

    fn defense(&self) -> &DefenseConfig {
        match self {
            Resolved::Train(_, d)
            | Resolved::Poison(_, _, d)
            | Resolved::Mia(_, _, d)
            | Resolved::ModelPoison(_, _, d)
            | Resolved::Backdoor(_, _, d) => d,
        }
    }

    /// Hash of the config as the run writes it (`config.toml`), less name, data dir, threads.
    pub fn hash(&self) -> Result<String> {
        Ok(match self {
            Resolved::Train(f, d) => numbers_hash(&crate::train::TrainRunConfig {
                fed: f,
                defense: shown_defense(f, d)?,
            }),
            Resolved::Poison(f, a, d) => numbers_hash(&AttackRunConfig {
                fed: a.federated_config(f),
                attack: a.clone(),
                defense: shown_defense(f, d)?,
            }),
            Resolved::Mia(f, m, d) => numbers_hash(&MiaRunConfig {
                fed: f.clone(),
                mia: m.clone(),
                defense: shown_defense(f, d)?,
            }),
            Resolved::ModelPoison(f, a, d) => numbers_hash(&ModelPoisonRunConfig {
                fed: f.clone(),
                attack: a.clone(),
                defense: shown_defense(f, d)?,
            }),
            Resolved::Backdoor(f, a, d) => numbers_hash(&BackdoorRunConfig {
                fed: f.clone(),
                attack: a.clone(),
                defense: shown_defense(f, d)?,
            }),
        })
    }

    /// Runs into the run folder `out` (as `fl run` does); the written `summary.json`.
    pub fn run(&self, out: &Path, progress: bool) -> Result<serde_json::Value> {
        match self {
            Resolved::Train(f, d) => {
                crate::train::run(f, d, out, progress)?;
            }
            Resolved::Poison(f, a, d) => {
                crate::attack::run(f, a, d, out, progress)?;
            }
            Resolved::Mia(f, m, d) => {
                crate::mia::run(f, m, d, out, progress)?;
            }
            Resolved::ModelPoison(f, a, d) => {
                crate::model_poison::run(f, a, d, out, progress)?;
            }
            Resolved::Backdoor(f, a, d) => {
                crate::backdoor::run(f, a, d, out, progress)?;
            }
        }
        let path = out.join("summary.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is damaged", path.display()))
    }
}

/// One cell of a grid of runs.
#[derive(Debug, Clone)]
pub struct RunCell {
    /// The axes' labels joined by `-`.
    pub id: String,
    /// (axis, label), in axis order.
    pub labels: Vec<(String, String)>,
    /// The run.
    pub run: Resolved,
    /// [`Resolved::hash`].
    pub hash: String,
}

impl RunCell {
    fn new(grid: &str, e: Expanded) -> Result<Self> {
        let mut table = e.table;
        let id = if e.id.is_empty() {
            "base".to_string()
        } else {
            e.id
        };
        set_dotted(&mut table, "name", Value::String(format!("{grid}-{id}")))?;
        let run = Resolved::of(table).with_context(|| format!("cell {id}"))?;
        let hash = run.hash()?;
        Ok(Self {
            id,
            labels: e.labels,
            run,
            hash,
        })
    }
}

impl CellSpec for RunCell {
    fn id(&self) -> &str {
        &self.id
    }

    fn hash(&self) -> &str {
        &self.hash
    }

    fn device(&self) -> DeviceKind {
        self.run.fed().device
    }
}

/// What a finished cell leaves: its labels, and its run's summary or why it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The cell's id.
    pub id: String,
    /// The hash of its config.
    pub config_hash: String,
    /// Axis name -> label.
    pub labels: BTreeMap<String, String>,
    /// The run's `summary.json`; `None` when it stopped without one.
    pub summary: Option<serde_json::Value>,
    /// Why the run stopped (a diverged model, a rule that cannot apply): a result of the
    /// grid, shown in its table.
    pub error: Option<String>,
    /// Wall time of the run.
    pub seconds: f64,
}

impl Record for RunRecord {
    fn id(&self) -> &str {
        &self.id
    }

    fn config_hash(&self) -> &str {
        &self.config_hash
    }

    fn without_times(&self) -> Self {
        let mut r = self.clone();
        r.seconds = 0.0;
        if let Some(s) = &mut r.summary {
            drop_times(s);
        }
        r
    }

    fn headline(&self) -> String {
        match &self.error {
            Some(e) => format!("stopped: {e}"),
            None => "done".into(),
        }
    }
}

/// Removes every `time` field (wall-clock figures) from a summary, at any depth.
fn drop_times(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.remove("time");
            m.values_mut().for_each(drop_times);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(drop_times),
        _ => {}
    }
}

/// The experiment of `fl grid`: every cell a run folder under `<root>/runs/`.
pub struct RunGridExperiment {
    /// The grid folder.
    pub root: PathBuf,
}

impl Experiment for RunGridExperiment {
    type Cell = RunCell;
    type Record = RunRecord;

    fn run_group(
        &self,
        cells: &[RunCell],
        ctx: GroupContext,
        done: &mut dyn FnMut(&RunCell, Result<RunRecord>),
    ) {
        for c in cells {
            let started = Instant::now();
            let mut run = c.run.clone();
            run.fed_mut().threads = ctx.threads;
            let dir = self.root.join("runs").join(&c.id);
            let (summary, error) = match run.run(&dir, false) {
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(format!("{e:#}"))),
            };
            let r = RunRecord {
                id: c.id.clone(),
                config_hash: c.hash.clone(),
                labels: c.labels.iter().cloned().collect(),
                summary,
                error,
                seconds: crate::summary::round6(started.elapsed().as_secs_f64()),
            };
            done(c, Ok(r));
        }
    }
}

/// Opens (creating) the folder of `grid`, writing it as `grid.toml`.
pub fn open(root: &Path, grid: &RunGrid) -> Result<GridDir<RunRecord>> {
    let manifest = Manifest {
        name: grid.file.name.clone(),
        base_hash: grid.base_hash(),
    };
    let dir = GridDir::create(root, &manifest)?;
    let text = toml::to_string(&grid.to_file()).context("writing grid.toml")?;
    write_atomic(&root.join("grid.toml"), text.as_bytes())?;
    Ok(dir)
}

/// Runs the unfinished cells of `grid` into `opts.out`; unsharded, writes the table too.
pub fn run_grid(grid: &RunGrid, opts: &GridOptions) -> Result<GridReport> {
    let dir = open(&opts.out, grid)?;
    let mut exp = RunGridExperiment {
        root: opts.out.clone(),
    };
    let report = super::run(&mut exp, &grid.file.name, grid.cells()?, &dir, opts)?;
    if opts.shard.is_none() {
        write_report(&opts.out)?;
    }
    Ok(report)
}

/// `fl grid report DIR`: `table.csv` (every number of every summary), `table.md` (the
/// grid's columns) and the grid's heat maps (`heatmap-<field>[-<labels>].png`) over the cells
/// the folder holds, in the grid's order.
pub fn write_report(root: &Path) -> Result<PathBuf> {
    let (dir, _) = GridDir::<RunRecord>::existing(root)?;
    let grid = RunGrid::load(&root.join("grid.toml"))?;
    let all = dir.all()?;
    let order: Vec<RunRecord> = grid
        .cells()?
        .iter()
        .filter_map(|c| all.get(&c.id).cloned())
        .collect();
    let axes: Vec<String> = grid.axes().iter().map(|a| a.name.clone()).collect();
    let table = SummaryTable::of(&axes, &order);
    let w = |name: &str, text: String| -> Result<()> {
        write_atomic(&root.join(name), text.as_bytes())
            .with_context(|| format!("writing {}", root.join(name).display()))
    };
    w("table.csv", table.csv())?;
    let md = root.join("table.md");
    w("table.md", table.markdown(&grid.file.columns)?)?;
    for field in &grid.file.heatmaps {
        if !table.columns.contains(field) && order.iter().any(|r| r.error.is_none()) {
            bail!(
                "no cell's summary has `{field}` (the grid's `heatmaps`); known: {}",
                table.columns.join(", ")
            );
        }
        for (path, map) in heatmaps(&grid, &order, field)? {
            map.draw(&root.join(path))?;
        }
    }
    if let Some(b) = &grid.file.baseline {
        w("baseline.md", baseline(&grid, &order, b)?)?;
    }
    Ok(md)
}

/// The value of `field` in a record: the number, or why there is none.
fn field_of(r: Option<&&RunRecord>, field: &str) -> std::result::Result<f64, String> {
    let r = r.ok_or("not run")?;
    if r.error.is_some() {
        return Err("stopped".into());
    }
    let mut numbers = Vec::new();
    if let Some(s) = &r.summary {
        leaves(s, "", &mut numbers);
    }
    numbers
        .into_iter()
        .find(|(k, _)| k == field)
        .map(|(_, v)| v)
        .ok_or_else(|| "-".into())
}

/// `baseline.md`: one row per combination of the other axes, the baseline cell's value and
/// every other point's difference from it.
fn baseline(grid: &RunGrid, records: &[RunRecord], b: &Baseline) -> Result<String> {
    let axes = grid.axes();
    let Some(pos) = axes.iter().position(|a| a.name == b.axis) else {
        bail!(
            "the grid's baseline names axis `{}`, which it does not have",
            b.axis
        );
    };
    let axis = &axes[pos];
    if !axis.points.iter().any(|p| p.label == b.label) {
        bail!(
            "axis `{}` has no point `{}` (the grid's baseline)",
            b.axis,
            b.label
        );
    }
    let others: Vec<Axis> = axes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != pos)
        .map(|(_, a)| a.clone())
        .collect();
    let by_id: BTreeMap<&str, &RunRecord> = records.iter().map(|r| (r.id.as_str(), r)).collect();
    // The id of the cell with the other axes at `row` and the axis at `label`.
    let id = |row: &Expanded, label: &str| -> String {
        let mut labels: Vec<&str> = row.labels.iter().map(|(_, l)| l.as_str()).collect();
        labels.insert(pos, label);
        labels.join("-")
    };
    let rest: Vec<&Point> = axis.points.iter().filter(|p| p.label != b.label).collect();
    let mut out = format!(
        "# {}: `{}` against `{} = {}`\n\nEach cell minus the cell with `{}` = `{}` and the \
         other axes the same.\n\n",
        grid.file.name, b.field, b.axis, b.label, b.axis, b.label
    );
    let head: Vec<String> = others
        .iter()
        .map(|a| a.name.clone())
        .chain([format!("{} ({})", b.label, b.field)])
        .chain(rest.iter().map(|p| p.label.clone()))
        .collect();
    out.push_str(&format!(
        "| {} |\n|{}\n",
        head.join(" | "),
        "---|".repeat(head.len())
    ));
    for row in expand(&Table::new(), &others)? {
        let base = field_of(by_id.get(id(&row, &b.label).as_str()), &b.field);
        let mut line: Vec<String> = row.labels.iter().map(|(_, l)| l.clone()).collect();
        line.push(match &base {
            Ok(v) => format!("{v:.4}"),
            Err(e) => e.clone(),
        });
        for p in &rest {
            let v = field_of(by_id.get(id(&row, &p.label).as_str()), &b.field);
            line.push(match (&base, v) {
                (Ok(a), Ok(v)) => format!("{:+.4}", v - a),
                (_, Err(e)) => e,
                (Err(_), Ok(v)) => format!("{v:.4}"),
            });
        }
        out.push_str(&format!("| {} |\n", line.join(" | ")));
    }
    Ok(out)
}

/// The heat maps of `field`: rows the second-to-last axis, columns the last, one per
/// combination of the labels of the axes before them, with their file names.
fn heatmaps(
    grid: &RunGrid,
    records: &[RunRecord],
    field: &str,
) -> Result<Vec<(String, TableHeatMap)>> {
    let axes = grid.axes();
    if axes.len() < 2 {
        bail!("the heat map of `{field}` needs at least two axes (rows and columns)");
    }
    let (rows, cols) = (&axes[axes.len() - 2], &axes[axes.len() - 1]);
    let lead = &axes[..axes.len() - 2];
    let by_id: BTreeMap<&str, &RunRecord> = records.iter().map(|r| (r.id.as_str(), r)).collect();
    let slug = field.replace(['.', '/'], "-");
    let mut out = Vec::new();
    for group in expand(&Table::new(), lead)? {
        let value = |r: &Point, c: &Point| -> std::result::Result<f64, String> {
            let id: Vec<&str> = group
                .labels
                .iter()
                .map(|(_, l)| l.as_str())
                .chain([r.label.as_str(), c.label.as_str()])
                .collect();
            let rec = by_id.get(id.join("-").as_str()).ok_or("not run")?;
            if rec.error.is_some() {
                return Err("stopped".into());
            }
            let mut numbers = Vec::new();
            if let Some(s) = &rec.summary {
                leaves(s, "", &mut numbers);
            }
            numbers
                .iter()
                .find(|(k, _)| k == field)
                .map(|(_, v)| *v)
                .ok_or_else(|| "-".to_string())
        };
        let values = rows
            .points
            .iter()
            .map(|r| cols.points.iter().map(|c| value(r, c)).collect())
            .collect();
        let name = if group.id.is_empty() {
            format!("heatmap-{slug}.png")
        } else {
            format!("heatmap-{slug}-{}.png", group.id)
        };
        let title = if group.id.is_empty() {
            format!("{}: {field}", grid.file.name)
        } else {
            format!("{} ({}): {field}", grid.file.name, group.id)
        };
        out.push((
            name,
            TableHeatMap {
                title,
                row_label: rows.name.clone(),
                col_label: cols.name.clone(),
                rows: rows.points.iter().map(|p| p.label.clone()).collect(),
                cols: cols.points.iter().map(|p| p.label.clone()).collect(),
                values,
            },
        ));
    }
    Ok(out)
}

/// The numbers of a set of records: axis labels, then every numeric field of the summaries
/// (dotted paths, wall-clock figures left out), in order of first appearance.
struct SummaryTable {
    axes: Vec<String>,
    columns: Vec<String>,
    rows: Vec<Row>,
}

/// One cell's line: its axis labels, why it stopped (if it did), its numbers by column.
struct Row {
    labels: Vec<String>,
    error: Option<String>,
    numbers: BTreeMap<String, f64>,
}

impl SummaryTable {
    fn of(axes: &[String], records: &[RunRecord]) -> Self {
        let mut columns: Vec<String> = Vec::new();
        let mut rows = Vec::new();
        for r in records {
            let mut numbers = Vec::new();
            if let Some(s) = &r.summary {
                let mut s = s.clone();
                drop_times(&mut s);
                leaves(&s, "", &mut numbers);
            }
            // A summary's copy of an axis (e.g. `seed`) is already the axis's column.
            numbers.retain(|(k, _)| !axes.contains(k));
            for (k, _) in &numbers {
                if !columns.contains(k) {
                    columns.push(k.clone());
                }
            }
            let labels = axes
                .iter()
                .map(|a| r.labels.get(a).cloned().unwrap_or_default())
                .collect();
            rows.push(Row {
                labels,
                error: r.error.clone(),
                numbers: numbers.into_iter().collect(),
            });
        }
        Self {
            axes: axes.to_vec(),
            columns,
            rows,
        }
    }

    fn csv(&self) -> String {
        let quote = |s: &str| {
            if s.contains([',', '"', '\n']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        };
        let mut out = String::new();
        let head: Vec<String> = self
            .axes
            .iter()
            .chain(std::iter::once(&"error".to_string()))
            .chain(&self.columns)
            .map(|s| quote(s))
            .collect();
        out.push_str(&head.join(","));
        out.push('\n');
        for row in &self.rows {
            let mut line: Vec<String> = row.labels.iter().map(|l| quote(l)).collect();
            line.push(quote(row.error.as_deref().unwrap_or("")));
            for c in &self.columns {
                line.push(row.numbers.get(c).map_or(String::new(), |v| format!("{v}")));
            }
            out.push_str(&line.join(","));
            out.push('\n');
        }
        out
    }

    fn markdown(&self, wanted: &[String]) -> Result<String> {
        if let Some(c) = wanted
            .iter()
            .find(|c| !self.columns.contains(c) && self.rows.iter().any(|r| r.error.is_none()))
        {
            bail!(
                "no cell's summary has `{c}` (the grid's `columns`); known: {}",
                self.columns.join(", ")
            );
        }
        let columns: Vec<String> = if wanted.is_empty() {
            self.columns
                .iter()
                .filter(|c| {
                    self.rows
                        .iter()
                        .all(|r| r.error.is_some() || r.numbers.contains_key(*c))
                })
                .take(6)
                .cloned()
                .collect()
        } else {
            wanted.to_vec()
        };
        let mut out = String::new();
        let head: Vec<&str> = self
            .axes
            .iter()
            .chain(&columns)
            .map(String::as_str)
            .collect();
        out.push_str(&format!("| {} |\n", head.join(" | ")));
        out.push_str(&format!("|{}\n", "---|".repeat(head.len())));
        for row in &self.rows {
            let mut line: Vec<String> = row.labels.clone();
            match &row.error {
                Some(e) => line.extend(columns.iter().map(|_| format!("stopped: {e}"))),
                None => line.extend(columns.iter().map(|c| {
                    row.numbers
                        .get(c)
                        .map_or("-".to_string(), |v| format_number(*v))
                })),
            }
            out.push_str(&format!("| {} |\n", line.join(" | ")));
        }
        Ok(out)
    }
}

/// Integers as integers, other numbers to 4 decimals.
fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e12 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

/// Every number under `v` as (dotted path, value); arrays are left out.
fn leaves(v: &serde_json::Value, prefix: &str, out: &mut Vec<(String, f64)>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(x, &path, out);
            }
        }
        serde_json::Value::Number(n) => {
            if let Some(f) = n.as_f64() {
                out.push((prefix.to_string(), f));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_section_overrides_the_base_config() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/tiny");
        let file: RunGridFile = toml::from_str(
            "name = \"g\"\nbase_config = \"train.toml\"\n[base]\nrounds = 5\n[base.train]\nlr = 0.5\n",
        )
        .unwrap();
        let g = RunGrid::new(file, &dir).unwrap();
        assert_eq!(g.base["rounds"].as_integer(), Some(5));
        assert_eq!(g.base["train"]["lr"].as_float(), Some(0.5));
        // Keys the override does not name come from the file, in merged sections too.
        assert_eq!(g.base["train"]["batch_size"].as_integer(), Some(32));
        assert_eq!(g.base["clients"].as_integer(), Some(4));
        let cells = g.cells().unwrap();
        assert_eq!(cells.len(), 1);
        assert_eq!(cells[0].id, "base");
        let bad: RunGridFile = toml::from_str("name = \"a/b\"\n[base]\nrounds = 1\n").unwrap();
        assert!(RunGrid::new(bad, &dir).is_err());
    }

    /// A 2 x 3 x 2 grid (dataset, seed, aggregator) with made-up records: final_accuracy =
    /// seed / 10 (+ 0.5 for median); mnist-3-median stopped; fashion-mnist-2-fedavg never ran.
    fn made_up() -> (RunGrid, Vec<RunRecord>) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/tiny");
        let file: RunGridFile = toml::from_str(
            "name = \"g\"\nbase_config = \"train.toml\"\n\
             axes = [{ key = \"dataset\", values = [\"mnist\", \"fashion-mnist\"] }, \
                     { key = \"seed\", values = [1, 2, 3] }, \
                     { key = \"aggregator\", values = [\"fedavg\", \"median\"] }]\n",
        )
        .unwrap();
        let g = RunGrid::new(file, &dir).unwrap();
        let records: Vec<RunRecord> = g
            .cells()
            .unwrap()
            .into_iter()
            .filter(|c| c.id != "fashion-mnist-2-fedavg")
            .map(|c| {
                let seed: f64 = c.labels[1].1.parse().unwrap();
                let median = c.labels[2].1 == "median";
                let stopped = c.id == "mnist-3-median";
                RunRecord {
                    id: c.id.clone(),
                    config_hash: c.hash.clone(),
                    labels: c.labels.iter().cloned().collect(),
                    summary: (!stopped).then(|| {
                        serde_json::json!({ "final_accuracy": seed / 10.0 + if median { 0.5 } else { 0.0 } })
                    }),
                    error: stopped.then(|| "diverged".to_string()),
                    seconds: 1.0,
                }
            })
            .collect();
        (g, records)
    }

    #[test]
    fn a_baseline_table_gives_each_point_against_the_baseline_point() {
        let (g, records) = made_up();
        let b = Baseline {
            axis: "aggregator".into(),
            label: "fedavg".into(),
            field: "final_accuracy".into(),
        };
        let md = baseline(&g, &records, &b).unwrap();
        let lines: Vec<&str> = md.lines().filter(|l| l.starts_with("| ")).collect();
        assert_eq!(
            lines[0],
            "| dataset | seed | fedavg (final_accuracy) | median |"
        );
        assert_eq!(lines[1], "| mnist | 1 | 0.1000 | +0.5000 |");
        assert_eq!(lines[3], "| mnist | 3 | 0.3000 | stopped |");
        assert_eq!(lines[5], "| fashion-mnist | 2 | not run | 0.7000 |");
        let bad = Baseline {
            label: "krum".into(),
            ..b.clone()
        };
        assert!(baseline(&g, &records, &bad).is_err());
        let bad = Baseline {
            axis: "rule".into(),
            ..b
        };
        assert!(baseline(&g, &records, &bad).is_err());
    }

    #[test]
    fn heat_maps_take_rows_and_columns_from_the_last_two_axes() {
        let (g, records) = made_up();
        let maps = heatmaps(&g, &records, "final_accuracy").unwrap();
        let names: Vec<&str> = maps.iter().map(|m| m.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "heatmap-final_accuracy-mnist.png",
                "heatmap-final_accuracy-fashion-mnist.png"
            ]
        );
        let m = &maps[0].1;
        assert_eq!(
            (m.rows.clone(), m.cols.clone()),
            (
                vec!["1".into(), "2".into(), "3".into()],
                vec!["fedavg".into(), "median".into()]
            )
        );
        assert_eq!(m.values[1][1], Ok(0.7));
        assert_eq!(m.values[2][1], Err("stopped".into()));
        assert_eq!(maps[1].1.values[1][0], Err("not run".into()));
        // A cell whose summary lacks the field is a grey "-" (the report refuses a field no
        // cell has), and one axis cannot make a map.
        let none = heatmaps(&g, &records, "final_acuracy").unwrap();
        assert_eq!(none[0].1.values[0][0], Err("-".into()));
        let mut one = g.clone();
        one.file.axes.truncate(1);
        assert!(heatmaps(&one, &records, "final_accuracy").is_err());
    }
}
