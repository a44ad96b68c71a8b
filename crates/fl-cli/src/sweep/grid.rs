//! The grid of a sweep: datasets x pairs (G, T) x seeds over one base attack config.

use super::K;
use crate::attack::{AttackRunConfig, resolve_attack};
use crate::config::set_dotted;
use crate::config::{server_rule, shown_defense};
use crate::grid::axes::{Axis, Expanded, Point, expand};
use crate::grid::numbers_hash;
use anyhow::{Context, Result, bail};
use fl_core::FedConfig;
use fl_data::DatasetKind;
use fl_defense::DefenseConfig;
use fl_poison::AttackConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use toml::{Table, Value};

/// The default GAN-poisoning experiment, the base of the presets.
const BASE_CONFIG: &str = include_str!("../../../../configs/gan-poison.toml");

/// Which (G, T) pairs a grid runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Pairs {
    /// `"all"`: every G != T (90 pairs).
    All(String),
    /// `[[1, 9], [4, 9]]`.
    List(Vec<[usize; 2]>),
}

impl Default for Pairs {
    fn default() -> Self {
        Pairs::All("all".into())
    }
}

/// A grid file as written (`fl sweep --grid FILE`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridFile {
    /// The sweep's name: its folder is `results/<name>/`.
    pub name: String,
    /// Datasets, e.g. `["mnist", "fashion-mnist"]`.
    pub datasets: Vec<DatasetKind>,
    /// `"all"` or a list of `[G, T]`.
    #[serde(default)]
    pub pairs: Pairs,
    /// Seeds; each (dataset, pair) runs once per seed.
    pub seeds: Vec<u64>,
    /// A run config (as for `fl attack gan-poison`), relative to the grid file's folder.
    #[serde(default)]
    pub base_config: Option<PathBuf>,
    /// The run config inline (instead of `base_config`).
    #[serde(default)]
    pub base: Option<Table>,
}

/// A checked grid: what to run and the base every cell starts from.
#[derive(Debug, Clone)]
pub struct Grid {
    /// The sweep's name.
    pub name: String,
    /// Datasets.
    pub datasets: Vec<DatasetKind>,
    /// (G, T) pairs, G != T.
    pub pairs: Vec<(usize, usize)>,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// The base run config; each cell sets dataset, seed, G and T.
    pub base: Table,
}

/// One experiment of a sweep.
#[derive(Debug, Clone)]
pub struct Cell {
    /// `<dataset>-s<seed>-g<G>-t<T>`, also its file name.
    pub id: String,
    /// Dataset.
    pub dataset: DatasetKind,
    /// Seed.
    pub seed: u64,
    /// G.
    pub generate: usize,
    /// T.
    pub target: usize,
    /// The federated config.
    pub fed: FedConfig,
    /// The attack.
    pub attack: AttackConfig,
    /// The robust rules' parameters (used when `fed.aggregator` is not fedavg).
    pub defense: DefenseConfig,
    /// Hash of everything that decides the cell's numbers (see [`config_hash`]).
    pub hash: String,
}

/// Presets: `quick` (MNIST, one seed, 90 cells) and `full` (both datasets, three seeds, 540).
pub const PRESETS: [&str; 2] = ["quick", "full"];

impl Grid {
    /// A preset grid over `configs/gan-poison.toml`.
    pub fn preset(name: &str) -> Result<Self> {
        let base: Table = BASE_CONFIG
            .parse()
            .expect("the bundled config is valid TOML");
        let (datasets, seeds) = match name {
            "quick" => (vec![DatasetKind::Mnist], vec![1]),
            "full" => (
                vec![DatasetKind::Mnist, DatasetKind::FashionMnist],
                vec![1, 2, 3],
            ),
            other => bail!("unknown preset `{other}` (known: {})", PRESETS.join(", ")),
        };
        Self::new(format!("sweep-{name}"), datasets, all_pairs(), seeds, base)
    }

    /// Reads a grid file.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: GridFile = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid grid file", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::from_file(file, dir)
    }

    /// A grid from its file form; `base_config` is read relative to `dir`.
    pub fn from_file(file: GridFile, dir: &Path) -> Result<Self> {
        let base = match (file.base_config, file.base) {
            (Some(p), None) => {
                let p = dir.join(p);
                crate::config::load_table(Some(&p), &[])?
            }
            (None, Some(t)) => t,
            (None, None) => bail!("a grid needs `base_config = \"FILE\"` or a [base] section"),
            (Some(_), Some(_)) => bail!("a grid takes `base_config` or [base], not both"),
        };
        let pairs = match file.pairs {
            Pairs::All(s) if s == "all" => all_pairs(),
            Pairs::All(s) => bail!("pairs must be \"all\" or a list of [G, T], got \"{s}\""),
            Pairs::List(l) => l.into_iter().map(|[g, t]| (g, t)).collect(),
        };
        Self::new(file.name, file.datasets, pairs, file.seeds, base)
    }

    fn new(
        name: String,
        datasets: Vec<DatasetKind>,
        pairs: Vec<(usize, usize)>,
        seeds: Vec<u64>,
        base: Table,
    ) -> Result<Self> {
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            bail!("a sweep name must be a plain folder name, got `{name}`");
        }
        if datasets.is_empty() || seeds.is_empty() || pairs.is_empty() {
            bail!("a grid needs at least one dataset, one seed and one pair");
        }
        if let Some(d) = datasets.iter().find(|d| d.classes() != K) {
            bail!(
                "the study's matrices are {K} x {K}; {} has {} classes",
                d.title(),
                d.classes()
            );
        }
        for &(g, t) in &pairs {
            if g >= K || t >= K || g == t {
                bail!("pair [{g}, {t}]: G and T must be different classes below {K}");
            }
        }
        let unique = |n: usize, m: usize, what: &str| {
            if n != m {
                bail!("the grid lists a {what} twice");
            }
            Ok(())
        };
        let mut p = pairs.clone();
        p.sort();
        p.dedup();
        unique(p.len(), pairs.len(), "pair")?;
        let mut s = seeds.clone();
        s.sort();
        s.dedup();
        unique(s.len(), seeds.len(), "seed")?;
        let mut d = datasets.clone();
        d.sort_by_key(|k| k.name());
        d.dedup();
        unique(d.len(), datasets.len(), "dataset")?;
        let grid = Self {
            name,
            datasets,
            pairs,
            seeds,
            base,
        };
        grid.cells().context("the grid's base config")?;
        Ok(grid)
    }

    /// Applies `--set key=value` overrides to the base config.
    pub fn set(&mut self, sets: &[String]) -> Result<()> {
        let over = crate::config::load_table(None, sets)?;
        crate::config::merge_tables(&mut self.base, over);
        self.cells().context("after --set")?;
        Ok(())
    }

    /// The grid's axes: dataset, seed, and the (G, T) pair (sorted), in that order.
    pub fn axes(&self) -> Vec<Axis> {
        let mut pairs = self.pairs.clone();
        pairs.sort();
        let point = |label: String, set: Vec<(&str, Value)>| Point {
            label,
            set: set.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        };
        vec![
            Axis {
                name: "dataset".into(),
                points: self
                    .datasets
                    .iter()
                    .map(|d| {
                        let name = d.name().to_string();
                        point(name.clone(), vec![("dataset", Value::String(name))])
                    })
                    .collect(),
            },
            Axis {
                name: "seed".into(),
                points: self
                    .seeds
                    .iter()
                    .map(|&s| point(format!("s{s}"), vec![("seed", Value::Integer(s as i64))]))
                    .collect(),
            },
            Axis {
                name: "pair".into(),
                points: pairs
                    .iter()
                    .map(|&(g, t)| {
                        point(
                            format!("g{g}-t{t}"),
                            vec![
                                ("attack.generate", Value::Integer(g as i64)),
                                ("attack.target", Value::Integer(t as i64)),
                            ],
                        )
                    })
                    .collect(),
            },
        ]
    }

    /// Every cell, ordered by dataset, seed, G, T (the order shards are cut from).
    pub fn cells(&self) -> Result<Vec<Cell>> {
        expand(&self.base, &self.axes())?
            .into_iter()
            .map(|e| self.cell(e))
            .collect()
    }

    fn cell(&self, e: Expanded) -> Result<Cell> {
        let mut table = e.table;
        set_dotted(
            &mut table,
            "name",
            Value::String(format!("{}-{}", self.name, e.id)),
        )?;
        let (fed, attack, defense) = resolve_attack(table)?;
        fed.validate()?;
        attack.validate(&fed)?;
        server_rule(&fed, &defense)?;
        let hash = config_hash(&fed, &attack, &defense)?;
        Ok(Cell {
            id: e.id,
            dataset: fed.dataset,
            seed: fed.seed,
            generate: attack.generate,
            target: attack.target,
            fed,
            attack,
            defense,
            hash,
        })
    }

    /// The grid as a file (written into the sweep folder as `grid.toml`).
    pub fn to_file(&self) -> GridFile {
        GridFile {
            name: self.name.clone(),
            datasets: self.datasets.clone(),
            pairs: Pairs::List(self.pairs.iter().map(|&(g, t)| [g, t]).collect()),
            seeds: self.seeds.clone(),
            base_config: None,
            base: Some(self.base.clone()),
        }
    }

    /// Hash of the base config with the per-cell keys left out: two grids with the same base
    /// hash produce cells that can live in one folder.
    pub fn base_hash(&self) -> Result<String> {
        let cells = self.cells()?;
        let c = &cells[0];
        let mut fed = c.fed.clone();
        let mut attack = c.attack.clone();
        fed.dataset = DatasetKind::Mnist;
        fed.seed = 0;
        attack.generate = 0;
        attack.target = 1;
        fed.partition.withhold.clear();
        config_hash(&fed, &attack, &c.defense)
    }
}

/// Every (G, T) with G != T, in order.
pub fn all_pairs() -> Vec<(usize, usize)> {
    (0..K)
        .flat_map(|g| (0..K).filter(move |&t| t != g).map(move |t| (g, t)))
        .collect()
}

/// SHA-256 (first 16 hex digits) of the resolved config without the keys that do not change
/// the numbers: `name`, `data_dir` and `threads` (runs are identical for any thread count).
/// `[defense]` counts only when a robust rule aggregates.
pub fn config_hash(
    fed: &FedConfig,
    attack: &AttackConfig,
    defense: &DefenseConfig,
) -> Result<String> {
    let full = AttackRunConfig {
        fed: attack.federated_config(fed),
        attack: attack.clone(),
        defense: shown_defense(fed, defense)?,
    };
    Ok(numbers_hash(&full))
}
