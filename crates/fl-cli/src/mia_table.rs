//! `fl experiment mia-table`: every membership attack against every aggregator, per dataset and
//! split, as one table (Markdown and CSV) of best attack accuracy and main accuracy.

use crate::config::{apply_sets, set_dotted, shown_defense};
use crate::grid::{
    CellSpec, Experiment, GridDir, GridOptions, GroupContext, Manifest, Record, numbers_hash,
};
use crate::mia::{MiaRunConfig, MiaRunSummary, resolve_mia, run};
use anyhow::{Context, Result, bail};
use fl_data::DatasetKind;
use fl_mia::MiaMethod;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use toml::{Table, Value};

/// The splits the table compares.
pub const PARTITIONS: [&str; 2] = ["iid", "dirichlet-0.5"];

/// What to run.
#[derive(Debug, Clone)]
pub struct TableOptions {
    /// Datasets (rows of blocks).
    pub datasets: Vec<DatasetKind>,
    /// Splits: `iid` or `dirichlet-<alpha>`.
    pub partitions: Vec<String>,
    /// Attacks (rows).
    pub attacks: Vec<MiaMethod>,
    /// Aggregators (columns).
    pub aggregators: Vec<String>,
    /// Settings (blocks): each a list of `key=value` assignments over the base config; one
    /// empty setting runs the base config as it is. See [`settings`].
    pub settings: Vec<Vec<String>>,
    /// The table's folder: one run folder per cell under `runs/`, then `table.md`, `table.csv`.
    pub out: PathBuf,
    /// Cells run at once.
    pub jobs: usize,
    /// Show a progress bar over cells.
    pub progress: bool,
}

/// One cell of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableCell {
    /// Dataset name.
    pub dataset: String,
    /// Split (`iid`, `dirichlet-0.5`).
    pub partition: String,
    /// Attack name.
    pub attack: String,
    /// Aggregator name.
    pub aggregator: String,
    /// The setting's assignments over the base config, space-separated (empty: the base).
    #[serde(default)]
    pub setting: String,
    /// Best membership accuracy over the attack period.
    pub best_accuracy: f64,
    /// Its round.
    pub best_round: usize,
    /// AUC at that round.
    pub auc: f64,
    /// Membership accuracy after the last round.
    pub final_accuracy: f64,
    /// Main-task accuracy after the last round.
    pub main_accuracy: f64,
    /// Share of malicious updates the aggregator kept in attack rounds.
    pub malicious_kept_share: Option<f64>,
    /// Why the run stopped without a result (e.g. the model diverged); the scores are 0.
    pub error: Option<String>,
}

/// Keys each cell sets itself; a setting may not vary them.
const CELL_KEYS: [&str; 7] = [
    "name",
    "dataset",
    "mia.method",
    "aggregator",
    "threads",
    "partition.scheme",
    "partition.alpha",
];

/// The settings of `--vary KEY=V1,V2,...` flags: every combination of their values, in order
/// (the first flag varies slowest). No flag gives one empty setting (the base config).
pub fn settings(vary: &[String]) -> Result<Vec<Vec<String>>> {
    let mut out = vec![Vec::new()];
    for v in vary {
        let (key, values) = v
            .split_once('=')
            .with_context(|| format!("--vary `{v}`: expected key=value1,value2,..."))?;
        let key = key.trim();
        if let Some(k) = CELL_KEYS.iter().find(|k| **k == key) {
            bail!(
                "--vary `{v}`: the table sets `{k}` itself; use --datasets, --partitions, \
                 --attacks or --aggregators"
            );
        }
        let values: Vec<&str> = values.split(',').map(str::trim).collect();
        if values.iter().any(|x| x.is_empty()) {
            bail!("--vary `{v}`: empty value");
        }
        out = out
            .into_iter()
            .flat_map(|s| {
                values.iter().map(move |x| {
                    let mut s = s.clone();
                    s.push(format!("{key}={x}"));
                    s
                })
            })
            .collect();
    }
    Ok(out)
}

/// The folder name of a cell.
fn cell_id(
    d: DatasetKind,
    partition: &str,
    attack: MiaMethod,
    aggregator: &str,
    setting: &[String],
) -> String {
    let mut id = format!("{}-{partition}-{}-{aggregator}", d.name(), attack.name());
    for s in setting {
        id.push('-');
        id.extend(
            s.chars()
                .map(|c| if c == '/' || c == ' ' { '_' } else { c }),
        );
    }
    id
}

/// The config table of one cell: `base` with dataset, split, attack and aggregator set.
fn cell_table(
    base: &Table,
    d: DatasetKind,
    partition: &str,
    attack: MiaMethod,
    aggregator: &str,
    setting: &[String],
) -> Result<Table> {
    let mut t = base.clone();
    apply_sets(&mut t, setting)?;
    let mut set = |k: &str, v: Value| set_dotted(&mut t, k, v);
    set(
        "name",
        Value::String(cell_id(d, partition, attack, aggregator, setting)),
    )?;
    set("dataset", Value::String(d.name().into()))?;
    set("mia.method", Value::String(attack.name().into()))?;
    set("aggregator", Value::String(aggregator.into()))?;
    match partition {
        "iid" => set("partition.scheme", Value::String("iid".into()))?,
        p => {
            let alpha: f64 = p
                .strip_prefix("dirichlet-")
                .and_then(|a| a.parse().ok())
                .with_context(|| format!("unknown split `{p}` (iid or dirichlet-<alpha>)"))?;
            set("partition.scheme", Value::String("dirichlet".into()))?;
            set("partition.alpha", Value::Float(alpha))?;
        }
    }
    Ok(t)
}

/// One cell of the table, resolved.
#[derive(Debug, Clone)]
pub struct MiaCell {
    key: CellKey,
    id: String,
    fed: fl_core::FedConfig,
    mia: fl_mia::MiaConfig,
    defense: fl_defense::DefenseConfig,
    hash: String,
}

impl CellSpec for MiaCell {
    fn id(&self) -> &str {
        &self.id
    }

    fn hash(&self) -> &str {
        &self.hash
    }

    fn device(&self) -> fl_core::DeviceKind {
        self.fed.device
    }
}

/// What a finished cell leaves in `cells/<id>.json`: its row of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MiaRecord {
    /// The cell's id (its run folder's name).
    pub id: String,
    /// The hash of its config.
    pub config_hash: String,
    /// Its row.
    #[serde(flatten)]
    pub cell: TableCell,
    /// Wall time of the run (0 when it was found finished).
    #[serde(default)]
    pub seconds: f64,
}

impl Record for MiaRecord {
    fn id(&self) -> &str {
        &self.id
    }

    fn config_hash(&self) -> &str {
        &self.config_hash
    }

    fn without_times(&self) -> Self {
        Self {
            seconds: 0.0,
            ..self.clone()
        }
    }

    fn headline(&self) -> String {
        let c = &self.cell;
        match &c.error {
            Some(_) => format!("{} vs {}: stopped", c.attack, c.aggregator),
            None => format!("{} vs {}: {:.3}", c.attack, c.aggregator, c.best_accuracy),
        }
    }
}

/// The table as an experiment of the grid engine: each cell one membership run into
/// `<out>/runs/<id>/`.
struct MiaTable<'a> {
    out: &'a Path,
}

impl Experiment for MiaTable<'_> {
    type Cell = MiaCell;
    type Record = MiaRecord;

    fn run_group(
        &self,
        cells: &[MiaCell],
        ctx: GroupContext,
        done: &mut dyn FnMut(&MiaCell, Result<MiaRecord>),
    ) {
        for c in cells {
            let started = std::time::Instant::now();
            let fed = fl_core::FedConfig {
                threads: ctx.threads,
                ..c.fed.clone()
            };
            let dir = self.out.join("runs").join(&c.id);
            // A run that fails (a diverged model, a rule that cannot apply) is a result of
            // the table, shown as such; only I/O problems fail the cell.
            let r = finished(&dir, &fed, &c.mia, &c.defense).map(|done| {
                let row = match done.map_or_else(|| run(&fed, &c.mia, &c.defense, &dir, false), Ok)
                {
                    Ok(s) => c.key.cell(&s),
                    Err(e) => c.key.failed(format!("{e:#}")),
                };
                MiaRecord {
                    id: c.id.clone(),
                    config_hash: c.hash.clone(),
                    cell: row,
                    seconds: crate::summary::round6(started.elapsed().as_secs_f64()),
                }
            });
            done(c, r);
        }
    }
}

/// Runs every cell not already finished under `opts.out` (a record in `cells/`, or a run
/// folder under `runs/` whose `summary.json` sits beside the same resolved config), then
/// writes the table. Cells are claimed, so two tables run on one folder share the work.
pub fn run_table(base: &Table, opts: &TableOptions) -> Result<Vec<TableCell>> {
    let mut todo = Vec::new();
    for &d in &opts.datasets {
        for p in &opts.partitions {
            for setting in &opts.settings {
                for &a in &opts.attacks {
                    for g in &opts.aggregators {
                        let t = cell_table(base, d, p, a, g, setting)?;
                        let (fed, mia, defense) = resolve_mia(t)
                            .with_context(|| format!("setting `{}`", setting.join(" ")))?;
                        fed.validate()?;
                        mia.validate(&fed)?;
                        crate::config::server_rule(&fed, &defense)?;
                        let key = CellKey {
                            dataset: d,
                            partition: p.clone(),
                            attack: a,
                            aggregator: g.clone(),
                            setting: setting.clone(),
                        };
                        let hash = numbers_hash(&MiaRunConfig {
                            fed: fed.clone(),
                            mia: mia.clone(),
                            defense: shown_defense(&fed, &defense)?,
                        });
                        todo.push(MiaCell {
                            id: key.id(),
                            key,
                            fed,
                            mia,
                            defense,
                            hash,
                        });
                    }
                }
            }
        }
    }
    std::fs::create_dir_all(opts.out.join("runs"))?;
    let dir = GridDir::<MiaRecord>::create(
        &opts.out,
        &Manifest {
            name: "mia-table".into(),
            base_hash: numbers_hash(base),
        },
    )?;
    let grid = GridOptions {
        out: opts.out.clone(),
        jobs: opts.jobs,
        threads: 0,
        shard: None,
        warm_start: false,
        progress: opts.progress,
        device_memory: None,
    };
    let report = crate::grid::run(
        &mut MiaTable { out: &opts.out },
        "mia-table",
        todo.clone(),
        &dir,
        &grid,
    )?;
    if !report.failed.is_empty() {
        let list: Vec<String> = report
            .failed
            .iter()
            .map(|(id, e)| format!("{id}: {e}"))
            .collect();
        bail!("cells failed:\n{}", list.join("\n"));
    }
    if report.elsewhere > 0 {
        bail!(
            "{} cells are being run by another process on {}: run the table again when it is done",
            report.elsewhere,
            opts.out.display()
        );
    }
    let all = dir.all()?;
    let cells: Vec<TableCell> = todo
        .iter()
        .map(|c| {
            all.get(&c.id)
                .map(|r| r.cell.clone())
                .with_context(|| format!("cell {} has no record", c.id))
        })
        .collect::<Result<_>>()?;
    write_table(&opts.out, &cells)?;
    Ok(cells)
}

/// The summary of a finished cell whose config is the one asked for.
fn finished(
    dir: &Path,
    fed: &fl_core::FedConfig,
    mia: &fl_mia::MiaConfig,
    defense: &fl_defense::DefenseConfig,
) -> Result<Option<MiaRunSummary>> {
    let (Ok(config), Ok(summary)) = (
        std::fs::read_to_string(dir.join("config.toml")),
        std::fs::read_to_string(dir.join("summary.json")),
    ) else {
        return Ok(None);
    };
    let wanted = toml::to_string_pretty(&MiaRunConfig {
        fed: fed.clone(),
        mia: mia.clone(),
        defense: shown_defense(fed, defense)?,
    })?;
    if config != wanted {
        return Ok(None);
    }
    Ok(Some(serde_json::from_str(&summary).with_context(|| {
        format!(
            "{} is not a run summary",
            dir.join("summary.json").display()
        )
    })?))
}

/// Where a cell sits in the table.
#[derive(Debug, Clone)]
struct CellKey {
    dataset: DatasetKind,
    partition: String,
    attack: MiaMethod,
    aggregator: String,
    setting: Vec<String>,
}

impl CellKey {
    fn id(&self) -> String {
        cell_id(
            self.dataset,
            &self.partition,
            self.attack,
            &self.aggregator,
            &self.setting,
        )
    }

    /// The cell of a run that stopped without a result.
    fn failed(&self, error: String) -> TableCell {
        TableCell {
            error: Some(error),
            ..self.blank()
        }
    }

    /// The cell of a finished run.
    fn cell(&self, s: &MiaRunSummary) -> TableCell {
        TableCell {
            best_accuracy: s.mia.best_accuracy,
            best_round: s.mia.best_round,
            auc: s.mia.at_best.auc,
            final_accuracy: s.mia.final_accuracy,
            main_accuracy: s.mia.main_accuracy,
            malicious_kept_share: s.mia.malicious_kept_share,
            ..self.blank()
        }
    }

    /// The cell's place with scores of 0 and no error.
    fn blank(&self) -> TableCell {
        TableCell {
            dataset: self.dataset.name().into(),
            partition: self.partition.clone(),
            attack: self.attack.name().into(),
            aggregator: self.aggregator.clone(),
            setting: self.setting.join(" "),
            best_accuracy: 0.0,
            best_round: 0,
            auc: 0.0,
            final_accuracy: 0.0,
            main_accuracy: 0.0,
            malicious_kept_share: None,
            error: None,
        }
    }
}

/// Writes `table.md`, `table.csv` and `table.json` into `out`.
pub fn write_table(out: &Path, cells: &[TableCell]) -> Result<()> {
    let w = |name: &str, text: String| -> Result<()> {
        fl_data::atomic::write_atomic(&out.join(name), text.as_bytes())
            .with_context(|| format!("writing {}", out.join(name).display()))
    };
    w("table.md", markdown(cells))?;
    w("table.csv", csv(cells))?;
    w("table.json", serde_json::to_string_pretty(cells)? + "\n")
}

/// The cells as CSV, one line each.
pub fn csv(cells: &[TableCell]) -> String {
    let mut s = String::from(
        "dataset,partition,setting,attack,aggregator,best_accuracy,best_round,auc,final_accuracy,\
         main_accuracy,malicious_kept_share,error\n",
    );
    for c in cells {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{:.4},{},{:.4},{:.4},{:.4},{},{}",
            c.dataset,
            c.partition,
            c.setting,
            c.attack,
            c.aggregator,
            c.best_accuracy,
            c.best_round,
            c.auc,
            c.final_accuracy,
            c.main_accuracy,
            c.malicious_kept_share
                .map_or(String::new(), |k| format!("{k:.3}")),
            c.error
                .as_deref()
                .map_or(String::new(), |e| format!("\"{}\"", e.replace('"', "'")))
        );
    }
    s
}

/// The table as Markdown: per dataset and split, rows = attack, columns = aggregator, cells =
/// best membership accuracy (AUC), and a row of main accuracy per aggregator (the mean over
/// the attacks' runs).
pub fn markdown(cells: &[TableCell]) -> String {
    let mut out = String::from(
        "# Membership inference: attacks x aggregators\n\n\
         Cells: best membership attack accuracy over the rounds from the first attack round on \
         (AUC of the true-class confidence at that round in brackets). 0.5 is guessing: half \
         the targets are members. Main accuracy: test accuracy after the last round, mean over \
         the attacks' runs.\n",
    );
    let mut blocks: Vec<(&str, &str, &str)> = Vec::new();
    for c in cells {
        let b = (c.dataset.as_str(), c.partition.as_str(), c.setting.as_str());
        if !blocks.contains(&b) {
            blocks.push(b);
        }
    }
    for (d, p, setting) in blocks {
        let here: Vec<&TableCell> = cells
            .iter()
            .filter(|c| c.dataset == d && c.partition == p && c.setting == setting)
            .collect();
        let mut aggs: Vec<&str> = Vec::new();
        let mut attacks: Vec<&str> = Vec::new();
        for c in &here {
            if !aggs.contains(&c.aggregator.as_str()) {
                aggs.push(&c.aggregator);
            }
            if !attacks.contains(&c.attack.as_str()) {
                attacks.push(&c.attack);
            }
        }
        let _ = write!(out, "\n## {d}, {p}");
        if !setting.is_empty() {
            let _ = write!(out, ", {setting}");
        }
        out.push_str("\n\n| attack |");
        for g in &aggs {
            let _ = write!(out, " {g} |");
        }
        out.push_str("\n|---|");
        out.push_str(&"---|".repeat(aggs.len()));
        out.push('\n');
        for a in &attacks {
            let _ = write!(out, "| {a} |");
            for g in &aggs {
                match here.iter().find(|c| c.attack == *a && c.aggregator == *g) {
                    Some(c) if c.error.is_some() => out.push_str(" failed |"),
                    Some(c) => {
                        let _ = write!(out, " {:.3} ({:.2}) |", c.best_accuracy, c.auc);
                    }
                    None => out.push_str(" - |"),
                }
            }
            out.push('\n');
        }
        out.push_str("| main accuracy |");
        for g in &aggs {
            let v: Vec<f64> = here
                .iter()
                .filter(|c| c.aggregator == *g && c.error.is_none())
                .map(|c| c.main_accuracy)
                .collect();
            if v.is_empty() {
                out.push_str(" - |");
            } else {
                let _ = write!(out, " {:.4} |", v.iter().sum::<f64>() / v.len() as f64);
            }
        }
        out.push('\n');
        for c in here.iter().filter(|c| c.error.is_some()) {
            let _ = writeln!(
                out,
                "\n{} vs {} failed: {}",
                c.attack,
                c.aggregator,
                c.error.as_deref().unwrap_or_default()
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(attack: &str, aggregator: &str, best: f64, main: f64) -> TableCell {
        TableCell {
            dataset: "mnist".into(),
            partition: "iid".into(),
            attack: attack.into(),
            aggregator: aggregator.into(),
            setting: String::new(),
            best_accuracy: best,
            best_round: 7,
            auc: best - 0.01,
            final_accuracy: best - 0.05,
            main_accuracy: main,
            malicious_kept_share: (attack != "passive").then_some(0.5),
            error: None,
        }
    }

    #[test]
    fn table_text_on_fixed_cells() {
        let cells = vec![
            cell("fedpoisonmia", "fedavg", 0.9, 0.98),
            cell("fedpoisonmia", "atm", 0.75, 0.97),
            cell("passive", "fedavg", 0.55, 0.99),
            cell("passive", "atm", 0.53, 0.96),
            TableCell {
                error: Some("the global model diverged in round 11".into()),
                ..cell("passive", "dp", 0.0, 0.0)
            },
            TableCell {
                setting: "mia.malicious=3".into(),
                ..cell("fedpoisonmia", "fedavg", 0.62, 0.97)
            },
        ];
        insta::assert_snapshot!("mia_table_markdown", markdown(&cells));
        insta::assert_snapshot!("mia_table_csv", csv(&cells));
    }

    #[test]
    fn splits_are_parsed_or_refused() {
        let t = cell_table(
            &Table::new(),
            DatasetKind::Mnist,
            "dirichlet-0.5",
            MiaMethod::Passive,
            "atm",
            &["mia.malicious=2".into()],
        )
        .unwrap();
        let (fed, mia, _) = resolve_mia(t).unwrap();
        assert_eq!(fed.partition.alpha, Some(0.5));
        assert_eq!(mia.method, MiaMethod::Passive);
        assert_eq!(fed.aggregator, "atm");
        assert_eq!(mia.malicious, 2, "the setting reaches the config");
        assert_eq!(fed.name, "mnist-dirichlet-0.5-passive-atm-mia.malicious=2");
        assert!(
            cell_table(
                &Table::new(),
                DatasetKind::Mnist,
                "shards",
                MiaMethod::Passive,
                "atm",
                &[],
            )
            .is_err()
        );
    }

    #[test]
    fn vary_flags_give_every_combination() {
        assert_eq!(settings(&[]).unwrap(), vec![Vec::<String>::new()]);
        let s = settings(&["mia.malicious=1,3".into(), "train.epochs = 1, 5".into()]).unwrap();
        let joined: Vec<String> = s.iter().map(|x| x.join(" ")).collect();
        assert_eq!(
            joined,
            [
                "mia.malicious=1 train.epochs=1",
                "mia.malicious=1 train.epochs=5",
                "mia.malicious=3 train.epochs=1",
                "mia.malicious=3 train.epochs=5",
            ]
        );
        let err = |v: &str| format!("{:#}", settings(&[v.into()]).unwrap_err());
        assert!(err("aggregator=atm,krum").contains("--aggregators"));
        assert!(err("mia.malicious").contains("expected key=value"));
        assert!(err("mia.malicious=1,,3").contains("empty value"));
    }
}
