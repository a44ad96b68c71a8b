//! `fl attack gan-poison` and `fl attack reconstruct`: attack runs written to a run folder.

use crate::config::{resolve, server_rule, shown_defense, take_defense, take_section};
use crate::plot::{Figure, LineChart, Series};
use crate::run_dir::RunDir;
use crate::runner::{CHECKPOINT_EVERY, RoundHook, run_rounds};
use crate::summary::Summary;
use crate::train::draw_curves;
use anyhow::{Context, Result};
use fl_core::FedConfig;
use fl_data::rng::stream;
use fl_defense::DefenseConfig;
use fl_gan::generator::IMAGE;
use fl_gan::oracle::{Oracle, OracleRecipe};
use fl_poison::{
    Adversary, AttackConfig, AttackMethod, AttackRoundMetrics, AttackRun, AttackSummary,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use toml::Table;

/// Side of the square sample grids (8 x 8 images).
const GRID: usize = 8;
/// Upscaling of grid pixels.
const GRID_SCALE: usize = 3;

/// The resolved config of an attack run: the federated sections plus `[attack]`.
#[derive(Debug, Clone, Serialize)]
pub struct AttackRunConfig {
    /// The federated run (with G withheld from the adversary where the method needs it).
    #[serde(flatten)]
    pub fed: FedConfig,
    /// The attack.
    pub attack: AttackConfig,
    /// The robust rules' parameters, when one aggregates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defense: Option<DefenseConfig>,
}

/// A config table split into the federated part, the `[attack]` section and the `[defense]`
/// section; unknown keys in any are errors.
pub fn resolve_attack(mut table: Table) -> Result<(FedConfig, AttackConfig, DefenseConfig)> {
    let attack = take_section(&mut table, "attack")?;
    let defense = take_defense(&mut table)?;
    let fed: FedConfig = resolve(table)?;
    let attack: AttackConfig = resolve(attack).context("in [attack]")?;
    Ok((fed, attack, defense))
}

/// The summary of an attack run (`summary.json`): the federated headline numbers and the
/// attack's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackRunSummary {
    /// The federated run.
    #[serde(flatten)]
    pub run: Summary,
    /// The attack.
    pub attack: AttackSummary,
    /// Test accuracy of the fidelity oracle, when fidelity was scored.
    pub oracle_test_accuracy: Option<f64>,
}

/// What an attack run leaves behind besides its files.
pub struct AttackOutcome {
    /// The summary (also in `summary.json`).
    pub summary: AttackRunSummary,
    /// The final 8x8 preview images of the generator (GAN attack).
    pub samples: Option<Vec<f32>>,
}

/// Runs the attack experiment, writing into `out`: `config.toml`, `metrics.jsonl` (every round),
/// `summary.json`, `attack.png` (attack and main accuracy per round), `accuracy.png`,
/// `loss.png` and, for the GAN attack, `samples.png` (final 8x8 grid of generated images of G)
/// and `samples/round-NNN.png` every `samples_every` rounds of the attack period.
pub fn run(
    fed: &FedConfig,
    attack: &AttackConfig,
    defense: &DefenseConfig,
    out: &Path,
    progress: bool,
) -> Result<AttackOutcome> {
    fed.validate()?;
    attack.validate(fed)?;
    let rule = server_rule(fed, defense)?;
    let dir = RunDir::create(out)?;
    let effective = attack.federated_config(fed);
    dir.write_config(&AttackRunConfig {
        fed: effective.clone(),
        attack: attack.clone(),
        defense: shown_defense(fed, defense)?,
    })?;
    // The adversary's own copy of the rule: an adaptive boost is picked against it.
    let mut run =
        AttackRun::build_with(fed, attack, rule)?.with_attacker_rule(server_rule(fed, defense)?);
    let oracle = fidelity_oracle(&effective, attack, &run.prepared.spec)?;
    let label = format!(
        "{} {}",
        effective.name,
        pair_label(&effective, attack.generate, attack.target)
    );
    let mut hook = Previews {
        every: attack.samples_every,
        seed: effective.seed,
    };
    let rows = run_rounds(
        &mut run.federation,
        &mut run.adversary,
        &dir,
        &label,
        progress,
        &mut hook,
        CHECKPOINT_EVERY,
    )?;

    let (summary, samples) = conclude(&run, &effective, &rows, oracle.as_ref());
    if let Some(images) = &samples {
        fl_gan::grid::write_png(
            &dir.file("samples.png"),
            images,
            IMAGE,
            GRID,
            GRID,
            GRID_SCALE,
        )?;
    }
    dir.write_json("summary.json", &summary)?;
    let base: Vec<fl_core::RoundMetrics> = rows.iter().map(|r| r.base.clone()).collect();
    draw_curves(&dir, &effective.name, &base)?;
    draw_attack_curves(&dir, &label, &rows, attack)?;
    Ok(AttackOutcome { summary, samples })
}

/// The attack run's hook: attack and main accuracy on the bar; every `every` rounds of the
/// attack period, a preview grid of the generator's images from fixed noise.
struct Previews {
    every: usize,
    seed: u64,
}

impl RoundHook<Adversary> for Previews {
    fn message(&self, _attack: &Adversary, m: &AttackRoundMetrics) -> Option<String> {
        m.scores.as_ref().map(|s| {
            format!(
                "attack {:.3} main {:.4}{}",
                s.attack_accuracy,
                s.main_accuracy_others,
                if m.attack_period { " (attacking)" } else { "" }
            )
        })
    }

    fn after_round(
        &mut self,
        adversary: &Adversary,
        m: &AttackRoundMetrics,
        dir: &RunDir,
    ) -> Result<()> {
        if m.attack_period
            && self.every > 0
            && m.base.round.is_multiple_of(self.every)
            && let Some(images) = preview(adversary, self.seed)
        {
            let path = dir.file(&format!("samples/round-{:03}.png", m.base.round));
            std::fs::create_dir_all(path.parent().expect("has a parent"))?;
            fl_gan::grid::write_png(&path, &images, IMAGE, GRID, GRID, GRID_SCALE)?;
        }
        Ok(())
    }
}

/// The oracle that scores the generator's fidelity, when the attack asks for it (GAN method,
/// `fidelity_samples` > 0): read from the cache under the data dir, or trained once.
pub(crate) fn fidelity_oracle(
    effective: &FedConfig,
    attack: &AttackConfig,
    spec: &fl_core::train::ModelSpec,
) -> Result<Option<Oracle>> {
    if attack.method != AttackMethod::Gan || attack.fidelity_samples == 0 {
        return Ok(None);
    }
    let o = Oracle::load_or_train(
        &effective.data_dir,
        effective.dataset,
        &OracleRecipe::default(),
        spec,
    )?;
    if !o.cached {
        tracing::info!("fidelity oracle trained and cached at {}", o.path.display());
    }
    Ok(Some(o))
}

/// The end of an attack run: the summary (with the fidelity of `fidelity_samples` fresh images
/// when there is an oracle) and the generator's 8x8 preview images.
pub(crate) fn conclude(
    run: &AttackRun,
    effective: &FedConfig,
    rows: &[AttackRoundMetrics],
    oracle: Option<&Oracle>,
) -> (AttackRunSummary, Option<Vec<f32>>) {
    let attack = &run.attack;
    let samples = preview(&run.adversary, effective.seed);
    let fidelity = oracle.and_then(|o| {
        let mut rng = stream(effective.seed, "fidelity-noise", &[]);
        run.adversary
            .sample(attack.fidelity_samples, &mut rng)
            .map(|images| o.fidelity(&images, attack.generate))
    });
    let base: Vec<fl_core::RoundMetrics> = rows.iter().map(|r| r.base.clone()).collect();
    let parameters = run.federation.spec().num_params();
    let summary = AttackRunSummary {
        run: Summary::new(effective, parameters, &base),
        attack: run.summary(rows, fidelity),
        oracle_test_accuracy: oracle.map(|o| crate::summary::round6(o.test_accuracy)),
    };
    (summary, samples)
}

/// "1 -> 9" with class names: "1 -> 9" for MNIST, "Trouser -> Ankle boot" for Fashion-MNIST.
pub fn pair_label(fed: &FedConfig, g: usize, t: usize) -> String {
    let names = fed.dataset.class_names();
    format!("{} -> {}", names[g], names[t])
}

/// The 8x8 preview grid: generated images from fixed noise, so grids of different rounds
/// show the same latent points.
fn preview(adversary: &Adversary, seed: u64) -> Option<Vec<f32>> {
    adversary.sample(GRID * GRID, &mut stream(seed, "preview-noise", &[]))
}

/// `attack.png`: attack accuracy, accuracy on the other classes and on G, per round, with the
/// attack period's mean.
fn draw_attack_curves(
    dir: &RunDir,
    label: &str,
    rows: &[AttackRoundMetrics],
    attack: &AttackConfig,
) -> Result<()> {
    let pts = |f: fn(&fl_poison::AttackScores) -> f64| -> Vec<(f64, f64)> {
        rows.iter()
            .filter_map(|r| r.scores.as_ref().map(|s| (r.base.round as f64, f(s))))
            .collect()
    };
    let period: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.attack_period)
        .filter_map(|r| r.scores.as_ref().map(|_| (r.base.round as f64, 1.02)))
        .collect();
    let mut series = vec![
        Series {
            label: "attack accuracy (G called T)",
            points: pts(|s| s.attack_accuracy),
        },
        Series {
            label: "accuracy on classes other than G",
            points: pts(|s| s.main_accuracy_others),
        },
        Series {
            label: "accuracy on G",
            points: pts(|s| s.accuracy_generate),
        },
    ];
    if !period.is_empty() {
        series.push(Series {
            label: "attack period",
            points: period,
        });
    }
    LineChart {
        title: &format!(
            "{label}: {} attack, boost {}",
            attack.method.name(),
            attack.boost
        ),
        x_label: "round",
        y_label: "share of test images",
        x_range: None,
        y_range: (0.0, 1.05),
        series,
    }
    .draw(&dir.file("attack.png"))
}

/// Images per class in the reconstruction figure.
const ROW: usize = 8;

/// One row of the reconstruction figure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reconstruction {
    /// Class G.
    pub class: usize,
    /// Its name.
    pub name: String,
    /// Share of generated images the oracle classifies as G.
    pub fidelity: Option<f64>,
    /// The run folder.
    pub run: PathBuf,
}

/// `fl attack reconstruct`: the plain Hitaj reconstruction (fake class on, poisoning off, no
/// boost) for each class in `classes`, one run each under `out/class-G/`; then
/// `reconstructions.png` (one row of generated images per class) and `reconstructions.json`.
pub fn reconstruct(
    fed: &FedConfig,
    attack: &AttackConfig,
    defense: &DefenseConfig,
    classes: &[usize],
    out: &Path,
    progress: bool,
) -> Result<Vec<Reconstruction>> {
    let dir = RunDir::create(out)?;
    let names = fed.dataset.class_names();
    let mut rows = Vec::new();
    let mut grid: Vec<f32> = Vec::new();
    for &g in classes {
        let a = AttackConfig {
            method: AttackMethod::Gan,
            generate: g,
            target: (g + 1) % fed.dataset.classes(),
            poison: false,
            fake_class: true,
            boost: 1.0,
            ..attack.clone()
        };
        let run_dir = dir.file(&format!("class-{g}"));
        let done = run(fed, &a, defense, &run_dir, progress)?;
        let images = done
            .samples
            .context("the reconstruction run produced no generator samples")?;
        grid.extend_from_slice(&images[..ROW * IMAGE.pixels()]);
        rows.push(Reconstruction {
            class: g,
            name: names[g].to_string(),
            fidelity: done.summary.attack.fidelity,
            run: run_dir,
        });
    }
    fl_gan::grid::write_png(
        &dir.file("reconstructions.png"),
        &grid,
        IMAGE,
        classes.len(),
        ROW,
        GRID_SCALE,
    )?;
    dir.write_json("reconstructions.json", &rows)?;
    Ok(rows)
}
