//! `fl run` with `[attack] kind = "model-poison"`: malicious clients that see the benign
//! updates and send a crafted vector (sign flipping, IPM, ALIE, Gaussian, Min-Max, Min-Sum),
//! one run written to a run folder.

use crate::config::{resolve_attack_section, shown_defense, tagged_toml};
use crate::plot::{Figure, LineChart, Series};
use crate::run_dir::RunDir;
use crate::runner::{RoundHook, run_seated};
use crate::summary::Summary;
use crate::train::draw_curves;
use anyhow::Result;
use fl_core::FedConfig;
use fl_defense::DefenseConfig;
use fl_poison::model::{ModelPoisonRound, ModelPoisonSummary};
use fl_poison::{ModelPoisonConfig, ModelPoisoning};
use serde::{Deserialize, Serialize};
use std::path::Path;
use toml::Table;

/// The resolved config of a model-poisoning run (`config.toml`).
#[derive(Debug, Clone, Serialize)]
pub struct ModelPoisonRunConfig {
    /// The federated run.
    #[serde(flatten)]
    pub fed: FedConfig,
    /// The attack.
    pub attack: ModelPoisonConfig,
    /// The robust rules' parameters, when one aggregates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defense: Option<DefenseConfig>,
}

impl ModelPoisonRunConfig {
    /// The config as written, `[attack]` tagged with its kind so that the file runs again.
    pub fn to_toml(&self) -> Result<String> {
        tagged_toml(self, "model-poison")
    }
}

/// A config table (of kind model-poison, `kind` already taken out) split into the federated
/// part, `[attack]` and `[defense]`; unknown keys in any are errors.
pub fn resolve_model_poison(table: Table) -> Result<(FedConfig, ModelPoisonConfig, DefenseConfig)> {
    resolve_attack_section(table)
}

/// The summary of a model-poisoning run (`summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPoisonRunSummary {
    /// The federated run.
    #[serde(flatten)]
    pub run: Summary,
    /// The attack.
    pub attack: ModelPoisonSummary,
}

/// Runs the attack, writing into `out`: `config.toml`, `metrics.jsonl` (every round),
/// `summary.json`, `poison.png` (main accuracy and the malicious updates kept per round),
/// `accuracy.png` and `loss.png`.
pub fn run(
    fed: &FedConfig,
    attack: &ModelPoisonConfig,
    defense: &DefenseConfig,
    out: &Path,
    progress: bool,
) -> Result<ModelPoisonRunSummary> {
    fed.validate()?;
    attack.validate(fed)?;
    let written = ModelPoisonRunConfig {
        fed: fed.clone(),
        attack: attack.clone(),
        defense: shown_defense(fed, defense)?,
    };
    let label = format!(
        "{} {} x{} vs {}",
        fed.name,
        attack.method.name(),
        attack.malicious,
        fed.aggregator
    );
    // The attacker's own copy of the server's rule: the adaptive methods simulate it.
    let (dir, poison, federation, rows) = run_seated(
        fed,
        defense,
        out,
        &written.to_toml()?,
        attack.malicious,
        &label,
        progress,
        &mut Poison,
        |prepared, rule| ModelPoisoning::new(prepared, attack, rule),
    )?;
    let base: Vec<fl_core::RoundMetrics> = rows.iter().map(|r| r.base.clone()).collect();
    let summary = ModelPoisonRunSummary {
        run: Summary::new(fed, federation.spec().num_params(), &base),
        attack: fl_core::Attack::summary(&poison, &federation, &rows)?,
    };
    dir.write_json("summary.json", &summary)?;
    draw_curves(&dir, &fed.name, &base)?;
    draw_poison(&dir, &label, &rows)?;
    Ok(summary)
}

/// The bar's message: main accuracy and the malicious updates the server kept.
struct Poison;

impl RoundHook<ModelPoisoning> for Poison {
    fn message(&self, _: &ModelPoisoning, r: &ModelPoisonRound) -> Option<String> {
        let main = r.base.test.as_ref().map_or(0.0, |e| e.accuracy);
        Some(if r.attacking {
            format!(
                "main {main:.4}, kept {}/{} malicious",
                r.malicious_kept, r.malicious_sampled
            )
        } else {
            format!("main {main:.4}")
        })
    }
}

/// `poison.png`: main accuracy and the share of sampled malicious updates kept, per round.
fn draw_poison(dir: &RunDir, label: &str, rows: &[ModelPoisonRound]) -> Result<()> {
    let main = rows
        .iter()
        .filter_map(|r| {
            r.base
                .test
                .as_ref()
                .map(|t| (r.base.round as f64, t.accuracy))
        })
        .collect();
    let kept = rows
        .iter()
        .filter(|r| r.attacking && r.malicious_sampled > 0)
        .map(|r| {
            (
                r.base.round as f64,
                r.malicious_kept as f64 / r.malicious_sampled as f64,
            )
        })
        .collect();
    LineChart {
        title: label,
        x_label: "round",
        y_label: "share",
        x_range: None,
        y_range: (0.0, 1.05),
        series: vec![
            Series {
                label: "main accuracy",
                points: main,
            },
            Series {
                label: "malicious updates kept",
                points: kept,
            },
        ],
    }
    .draw(&dir.file("poison.png"))
}
