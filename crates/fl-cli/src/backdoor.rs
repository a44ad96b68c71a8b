//! `fl run` with `[attack] kind = "backdoor"`: a BadNets pixel-trigger backdoor by data
//! poisoning, with and without model replacement, one run written to a run folder.

use crate::config::{resolve_attack_section, shown_defense, tagged_toml};
use crate::plot::{Figure, LineChart, Series};
use crate::run_dir::RunDir;
use crate::runner::{RoundHook, run_seated};
use crate::summary::Summary;
use crate::train::draw_curves;
use anyhow::Result;
use fl_core::FedConfig;
use fl_defense::DefenseConfig;
use fl_poison::{Backdoor, BackdoorConfig, BackdoorRound, BackdoorSummary};
use serde::{Deserialize, Serialize};
use std::path::Path;
use toml::Table;

/// The resolved config of a backdoor run (`config.toml`).
#[derive(Debug, Clone, Serialize)]
pub struct BackdoorRunConfig {
    /// The federated run.
    #[serde(flatten)]
    pub fed: FedConfig,
    /// The attack.
    pub attack: BackdoorConfig,
    /// The robust rules' parameters, when one aggregates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defense: Option<DefenseConfig>,
}

impl BackdoorRunConfig {
    /// The config as written, `[attack]` tagged with its kind so that the file runs again.
    pub fn to_toml(&self) -> Result<String> {
        tagged_toml(self, "backdoor")
    }
}

/// A config table of kind backdoor (`kind` already taken out) split into the federated part,
/// `[attack]` and `[defense]`.
pub fn resolve_backdoor(table: Table) -> Result<(FedConfig, BackdoorConfig, DefenseConfig)> {
    resolve_attack_section(table)
}

/// The summary of a backdoor run (`summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackdoorRunSummary {
    /// The federated run.
    #[serde(flatten)]
    pub run: Summary,
    /// The attack.
    pub attack: BackdoorSummary,
}

/// Runs the attack, writing into `out`: `config.toml`, `metrics.jsonl` (every round, with
/// the attack success), `summary.json`, `backdoor.png` (main accuracy and attack success per
/// round), `accuracy.png` and `loss.png`.
pub fn run(
    fed: &FedConfig,
    attack: &BackdoorConfig,
    defense: &DefenseConfig,
    out: &Path,
    progress: bool,
) -> Result<BackdoorRunSummary> {
    fed.validate()?;
    attack.validate(fed)?;
    let written = BackdoorRunConfig {
        fed: fed.clone(),
        attack: attack.clone(),
        defense: shown_defense(fed, defense)?,
    };
    let label = format!(
        "{} backdoor x{} scale {}{} vs {}",
        fed.name,
        attack.malicious,
        attack.scale,
        if attack.adaptive { " adaptive" } else { "" },
        fed.aggregator
    );
    // The attacker's own copy of the server's rule: the adaptive scale is picked against it.
    let (dir, backdoor, federation, rows) = run_seated(
        fed,
        defense,
        out,
        &written.to_toml()?,
        attack.malicious,
        &label,
        progress,
        &mut Success,
        |prepared, rule| Backdoor::new(prepared, attack, rule),
    )?;
    let base: Vec<fl_core::RoundMetrics> = rows.iter().map(|r| r.base.clone()).collect();
    let summary = BackdoorRunSummary {
        run: Summary::new(fed, federation.spec().num_params(), &base),
        attack: fl_core::Attack::summary(&backdoor, &federation, &rows)?,
    };
    dir.write_json("summary.json", &summary)?;
    draw_curves(&dir, &fed.name, &base)?;
    draw_backdoor(&dir, &label, &rows)?;
    Ok(summary)
}

/// The bar's message: main accuracy and attack success.
struct Success;

impl RoundHook<Backdoor> for Success {
    fn message(&self, _: &Backdoor, r: &BackdoorRound) -> Option<String> {
        let main = r.base.test.as_ref().map_or(0.0, |e| e.accuracy);
        Some(match r.attack_success {
            Some(a) => format!("main {main:.4}, backdoor {a:.4}"),
            None => format!("main {main:.4}"),
        })
    }
}

/// `backdoor.png`: main accuracy and attack success per evaluated round.
fn draw_backdoor(dir: &RunDir, label: &str, rows: &[BackdoorRound]) -> Result<()> {
    let main = rows
        .iter()
        .filter_map(|r| {
            r.base
                .test
                .as_ref()
                .map(|t| (r.base.round as f64, t.accuracy))
        })
        .collect();
    let success = rows
        .iter()
        .filter_map(|r| r.attack_success.map(|a| (r.base.round as f64, a)))
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
                label: "attack success",
                points: success,
            },
        ],
    }
    .draw(&dir.file("backdoor.png"))
}
