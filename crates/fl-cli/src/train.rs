//! `fl train`: one federated run from a config, written to a run folder.

use crate::config::{server_rule, shown_defense};
use crate::plot::{Figure, LineChart, Series};
use crate::run_dir::RunDir;
use crate::runner::{Accuracy, CHECKPOINT_EVERY, run_rounds};
use crate::summary::Summary;
use anyhow::Result;
use fl_core::experiment::Experiment;
use fl_core::{FedConfig, NoAttack, RoundMetrics};
use fl_defense::DefenseConfig;
use serde::Serialize;
use std::path::Path;

/// The resolved config of a training run: the federated sections, and `[defense]` when a
/// robust rule aggregates.
#[derive(Debug, Clone, Serialize)]
pub struct TrainRunConfig<'a> {
    /// The federated run.
    #[serde(flatten)]
    pub fed: &'a FedConfig,
    /// The robust rules' parameters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defense: Option<DefenseConfig>,
}

/// Runs `config` with the aggregator it names (parameters from `defense`), writing
/// `config.toml`, `metrics.jsonl` (after every round), `summary.json`, `accuracy.png` and
/// `loss.png` into `out`.
pub fn run(
    config: &FedConfig,
    defense: &DefenseConfig,
    out: &Path,
    progress: bool,
) -> Result<Summary> {
    config.validate()?;
    let rule = server_rule(config, defense)?;
    let dir = RunDir::create(out)?;
    dir.write_config(&TrainRunConfig {
        fed: config,
        defense: shown_defense(config, defense)?,
    })?;
    let mut exp = Experiment::with_aggregator(config, rule)?;
    let fed = &mut exp.federation;
    let parameters = fed.spec().num_params();
    tracing::info!(
        parameters,
        clients = config.clients,
        trainer = fed.spec().trainer().name(),
        "starting {}",
        config.name
    );
    let rows = run_rounds(
        fed,
        &mut NoAttack,
        &dir,
        &config.name,
        progress,
        &mut Accuracy,
        CHECKPOINT_EVERY,
    )?;
    let summary = Summary::new(config, parameters, &rows);
    dir.write_json("summary.json", &summary)?;
    draw_curves(&dir, &config.name, &rows)?;
    Ok(summary)
}

/// `accuracy.png` (test accuracy per round) and `loss.png` (train and test loss).
pub fn draw_curves(dir: &RunDir, name: &str, rows: &[RoundMetrics]) -> Result<()> {
    let pts = |f: fn(&fl_core::eval::Evaluation) -> f64| -> Vec<(f64, f64)> {
        rows.iter()
            .filter_map(|m| m.test.as_ref().map(|e| (m.round as f64, f(e))))
            .collect()
    };
    let acc = pts(|e| e.accuracy);
    let lo = acc.iter().map(|p| p.1).fold(1.0f64, f64::min);
    LineChart {
        title: &format!("{name}: test accuracy"),
        x_label: "round",
        y_label: "accuracy",
        x_range: None,
        y_range: ((lo - 0.02).clamp(0.0, 0.9), 1.0),
        series: vec![Series {
            label: "global model",
            points: acc,
        }],
    }
    .draw(&dir.file("accuracy.png"))?;
    let train: Vec<(f64, f64)> = rows
        .iter()
        .map(|m| (m.round as f64, m.train_loss))
        .collect();
    let test = pts(|e| e.loss);
    let hi = train
        .iter()
        .chain(&test)
        .map(|p| p.1)
        .filter(|v| v.is_finite())
        .fold(0.1f64, f64::max);
    LineChart {
        title: &format!("{name}: loss"),
        x_label: "round",
        y_label: "cross-entropy",
        x_range: None,
        y_range: (0.0, hi * 1.05),
        series: vec![
            Series {
                label: "local training (mean over clients)",
                points: train,
            },
            Series {
                label: "test",
                points: test,
            },
        ],
    }
    .draw(&dir.file("loss.png"))
}
