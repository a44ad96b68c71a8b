//! `fl attack mia`: one membership-inference run written to a run folder.

use crate::config::{resolve, server_rule, shown_defense, take_defense, take_section};
use crate::plot::{Figure, LineChart, Series};
use crate::run_dir::RunDir;
use crate::runner::{CHECKPOINT_EVERY, RoundHook, run_rounds};
use crate::summary::Summary;
use crate::train::draw_curves;
use anyhow::{Context, Result};
use fl_core::FedConfig;
use fl_defense::DefenseConfig;
use fl_mia::{MembershipAttack, MiaConfig, MiaRoundMetrics, MiaRun, MiaSummary};
use serde::{Deserialize, Serialize};
use std::path::Path;
use toml::Table;

/// The resolved config of a membership run: the federated sections, `[mia]`, and `[defense]`
/// when a robust rule aggregates.
#[derive(Debug, Clone, Serialize)]
pub struct MiaRunConfig {
    /// The federated run.
    #[serde(flatten)]
    pub fed: FedConfig,
    /// The attack.
    pub mia: MiaConfig,
    /// The robust rules' parameters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defense: Option<DefenseConfig>,
}

/// A config table split into the federated part, `[mia]` and `[defense]`; unknown keys in any
/// are errors.
pub fn resolve_mia(mut table: Table) -> Result<(FedConfig, MiaConfig, DefenseConfig)> {
    let mia = take_section(&mut table, "mia")?;
    let defense = take_defense(&mut table)?;
    let fed: FedConfig = resolve(table)?;
    let mia: MiaConfig = resolve(mia).context("in [mia]")?;
    Ok((fed, mia, defense))
}

/// The summary of a membership run (`summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MiaRunSummary {
    /// The federated run.
    #[serde(flatten)]
    pub run: Summary,
    /// The attack.
    pub mia: MiaSummary,
}

/// Runs the membership experiment, writing into `out`: `config.toml`, `metrics.jsonl`,
/// `summary.json`, `membership.png` (attack accuracy, AUC and main accuracy per round),
/// `roc.png` (at the best round and after the last), `accuracy.png` and `loss.png`.
pub fn run(
    fed: &FedConfig,
    mia: &MiaConfig,
    defense: &DefenseConfig,
    out: &Path,
    progress: bool,
) -> Result<MiaRunSummary> {
    fed.validate()?;
    mia.validate(fed)?;
    let rule = server_rule(fed, defense)?;
    let dir = RunDir::create(out)?;
    dir.write_config(&MiaRunConfig {
        fed: fed.clone(),
        mia: mia.clone(),
        defense: shown_defense(fed, defense)?,
    })?;
    let mut run = MiaRun::build(fed, mia, rule)?;
    if mia.adaptive {
        run = run.with_attacker_rule(server_rule(fed, defense)?);
    }
    let label = format!("{} {} vs {}", fed.name, mia.method.name(), fed.aggregator);
    let rows = run_rounds(
        &mut run.federation,
        &mut run.attack,
        &dir,
        &label,
        progress,
        &mut Membership,
        CHECKPOINT_EVERY,
    )?;
    let parameters = run.federation.spec().num_params();
    let base: Vec<fl_core::RoundMetrics> = rows.iter().map(|r| r.base.clone()).collect();
    let summary = MiaRunSummary {
        run: Summary::new(fed, parameters, &base),
        mia: run.summary(&rows)?,
    };
    dir.write_json("summary.json", &summary)?;
    draw_curves(&dir, &fed.name, &base)?;
    draw_membership(&dir, &label, &rows, &|r| run.attacks_in(r))?;
    draw_roc(&dir, &label, &run, &summary.mia)?;
    Ok(summary)
}

/// The membership run's hook: membership accuracy, AUC and main accuracy on the bar.
struct Membership;

impl RoundHook<MembershipAttack> for Membership {
    fn message(&self, attack: &MembershipAttack, m: &MiaRoundMetrics) -> Option<String> {
        let main = m.base.test.as_ref().map_or(0.0, |e| e.accuracy);
        Some(format!(
            "membership {:.3} auc {:.3} main {:.4}{}",
            m.membership.accuracy,
            m.membership.auc,
            main,
            if attack.attacks_in(m.base.round) {
                " (attacking)"
            } else {
                ""
            }
        ))
    }
}

/// `membership.png`: attack accuracy, AUC and main accuracy per round.
fn draw_membership(
    dir: &RunDir,
    label: &str,
    rows: &[MiaRoundMetrics],
    attacks_in: &dyn Fn(usize) -> bool,
) -> Result<()> {
    let pts = |f: &dyn Fn(&MiaRoundMetrics) -> Option<f64>| -> Vec<(f64, f64)> {
        rows.iter()
            .filter_map(|r| f(r).map(|v| (r.base.round as f64, v)))
            .collect()
    };
    let attacking = pts(&|r| attacks_in(r.base.round).then_some(1.02));
    let mut series = vec![
        Series {
            label: "membership attack accuracy",
            points: pts(&|r| Some(r.membership.accuracy)),
        },
        Series {
            label: "AUC (true-class confidence)",
            points: pts(&|r| Some(r.membership.auc)),
        },
        Series {
            label: "main accuracy",
            points: pts(&|r| r.base.test.as_ref().map(|e| e.accuracy)),
        },
    ];
    if !attacking.is_empty() {
        series.push(Series {
            label: "attack rounds",
            points: attacking,
        });
    }
    LineChart {
        title: label,
        x_label: "round",
        y_label: "score",
        x_range: None,
        y_range: (0.0, 1.05),
        series,
    }
    .draw(&dir.file("membership.png"))
}

/// `roc.png`: the ROC of the membership score at the best round and after the last.
fn draw_roc(dir: &RunDir, label: &str, run: &MiaRun, s: &MiaSummary) -> Result<()> {
    let best_label = format!("round {} (best), AUC {:.3}", s.best_round, s.at_best.auc);
    let last = run.federation.round();
    let final_label = format!("round {last} (last), AUC {:.3}", s.at_final.auc);
    let mut series = vec![Series {
        label: &best_label,
        points: run.roc_at(s.best_round).unwrap_or_default(),
    }];
    if last != s.best_round {
        series.push(Series {
            label: &final_label,
            points: run.roc_at(last).unwrap_or_default(),
        });
    }
    series.push(Series {
        label: "chance",
        points: vec![(0.0, 0.0), (1.0, 1.0)],
    });
    LineChart {
        title: &format!("{label}: ROC"),
        x_label: "false-positive rate",
        y_label: "true-positive rate",
        x_range: Some((0.0, 1.0)),
        y_range: (0.0, 1.0),
        series,
    }
    .draw(&dir.file("roc.png"))
}
