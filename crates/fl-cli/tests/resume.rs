//! A killed run continues from its checkpoint as if it had never stopped: a membership run in
//! the authors' protocol options (stale clients, each client's Adam kept, the attacker's own
//! optimizer and held model, a start decided during the run), killed after round 5 with
//! checkpoints every 2 rounds, then started again on its folder; and a GAN attack (the
//! generator and its Adam state, the adversary's log, an adaptive boost's rule copy).

use fl_cli::attack::resolve_attack;
use fl_cli::mia::resolve_mia;
use fl_cli::run_dir::RunDir;
use fl_cli::runner::{CHECKPOINT, RoundHook, run_rounds};
use fl_core::FedAvg;
use fl_data::scratch::ScratchDir;
use fl_mia::{MiaConfig, MiaRoundMetrics, MiaRun};
use fl_poison::{AttackRoundMetrics, AttackRun};
use std::path::Path;

fn configs() -> (fl_core::FedConfig, MiaConfig) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("configs/tiny/mia.toml")).unwrap();
    let mut table: toml::Table = toml::from_str(&text).unwrap();
    table.insert(
        "data_dir".into(),
        root.join("fixtures").display().to_string().into(),
    );
    let (mut fed, mut mia, _) = resolve_mia(table).unwrap();
    fed.rounds = 7;
    // 3 of 5 clients a round: the attacker's held model and the start it decided matter
    // across the checkpoint.
    fed.fraction = 0.6;
    fed.max_delay = 2;
    fed.train.optimizer = fl_core::train::OptimizerKind::Adam;
    fed.train.lr = 0.001;
    fed.train.keep_optimizer_state = true;
    mia.selection = fl_mia::Selection::BestNorm;
    mia.attack_steps = fl_mia::AttackSteps::OwnOptimizer;
    mia.judge_on = fl_mia::JudgeOn::AttackerModel;
    mia.pretrain_targets = true;
    mia.start_round = 3;
    mia.start_accuracy = Some(0.05);
    mia.adaptive = true;
    mia.adaptive_min_scale = 0.125;
    (fed, mia)
}

/// Kills the run (an error) after round `at`.
struct KillAfter(usize);

impl<A: fl_core::Attack> RoundHook<A> for KillAfter {
    fn message(&self, _: &A, _: &A::Round) -> Option<String> {
        None
    }

    fn after_round(&mut self, _: &A, row: &A::Round, _: &RunDir) -> anyhow::Result<()> {
        if A::base(row).round == self.0 {
            anyhow::bail!("killed after round {}", self.0);
        }
        Ok(())
    }
}

/// Runs into `dir` (whose config.toml reads `config`), killed after `kill` rounds if given;
/// the records, summary and ROC at the best round, or the error.
/// A run's records, summary and ROC curve at its best round.
type Outcome = (
    Vec<MiaRoundMetrics>,
    fl_mia::MiaSummary,
    Option<Vec<(f64, f64)>>,
);

fn go(dir: &Path, config: &str, kill: Option<usize>) -> anyhow::Result<Outcome> {
    let (fed, mia) = configs();
    let run_dir = RunDir::create(dir)?;
    run_dir.write("config.toml", config.as_bytes())?;
    // The defense-aware attacker scales against a copy of a norm clip with a short bound (so
    // it shrinks its update); its factors and the copy are in the checkpoint.
    let copy = fl_defense::NormClip {
        bound: fl_defense::ClipBound::Norm(0.01),
    };
    let mut run = MiaRun::build(&fed, &mia, Box::new(FedAvg))?.with_attacker_rule(Box::new(copy));
    let mut hook = KillAfter(kill.unwrap_or(usize::MAX));
    let rows = run_rounds(
        &mut run.federation,
        &mut run.attack,
        &run_dir,
        "resume",
        false,
        &mut hook,
        2,
    )?;
    let s = run.summary(&rows)?;
    let roc = run.roc_at(s.best_round);
    Ok((rows, s, roc))
}

fn without_times(rows: &[MiaRoundMetrics]) -> Vec<MiaRoundMetrics> {
    rows.iter()
        .map(|r| {
            let mut r = r.clone();
            r.base.time = Default::default();
            r
        })
        .collect()
}

#[test]
fn a_killed_run_resumes_from_its_checkpoint_with_the_numbers_of_an_uninterrupted_one() {
    let tmp = ScratchDir::new("resume").unwrap();
    let (whole, whole_summary, whole_roc) = go(&tmp.path().join("whole"), "a", None).unwrap();
    assert!(!tmp.path().join("whole").join(CHECKPOINT).exists());
    assert!(whole.iter().any(|r| r.craft.is_some()), "the attack ran");
    assert!(
        whole
            .iter()
            .any(|r| r.adaptive_scale.is_some_and(|s| s < 1.0)),
        "the adaptive attacker shrank its update"
    );

    let dir = tmp.path().join("killed");
    let err = go(&dir, "a", Some(5)).unwrap_err();
    assert!(err.to_string().contains("killed after round 5"), "{err}");
    assert!(dir.join(CHECKPOINT).exists(), "checkpoint after round 4");
    let written = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert_eq!(written.lines().count(), 5);

    // Another config on that folder is refused, and leaves the checkpoint alone.
    let err = go(&dir, "b", None).unwrap_err();
    assert!(err.to_string().contains("another config"), "{err}");

    let (resumed, summary, roc) = go(&dir, "a", None).unwrap();
    assert_eq!(without_times(&resumed), without_times(&whole));
    assert_eq!(summary, whole_summary);
    assert_eq!(roc, whole_roc);
    assert!(!dir.join(CHECKPOINT).exists(), "a finished run removes it");
    let written = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert_eq!(written.lines().count(), 7);
}

/// The tiny GAN attack, 7 rounds, attacking from round 2 with an adaptive boost.
fn gan_go(dir: &Path, kill: Option<usize>) -> anyhow::Result<(Vec<AttackRoundMetrics>, Vec<f32>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("configs/tiny/gan-poison.toml")).unwrap();
    let mut table: toml::Table = toml::from_str(&text).unwrap();
    table.insert(
        "data_dir".into(),
        root.join("fixtures").display().to_string().into(),
    );
    let (mut fed, mut attack, _) = resolve_attack(table).unwrap();
    fed.rounds = 7;
    fed.fraction = 0.75;
    attack.adaptive_boost = true;
    let run_dir = RunDir::create(dir)?;
    run_dir.write("config.toml", b"gan")?;
    let mut run = AttackRun::build(&fed, &attack)?.with_attacker_rule(Box::new(FedAvg));
    let mut hook = KillAfter(kill.unwrap_or(usize::MAX));
    let rows = run_rounds(
        &mut run.federation,
        &mut run.adversary,
        &run_dir,
        "resume",
        false,
        &mut hook,
        2,
    )?;
    let images = run
        .adversary
        .sample(8, &mut fl_data::rng::stream(1, "t", &[]))
        .unwrap();
    Ok((rows, images))
}

#[test]
fn a_killed_gan_attack_resumes_with_the_generator_it_had() {
    let tmp = ScratchDir::new("resume-gan").unwrap();
    let (whole, whole_images) = gan_go(&tmp.path().join("whole"), None).unwrap();
    assert!(
        whole
            .iter()
            .any(|r| r.adversary.as_ref().is_some_and(|a| a.gan.is_some()))
    );
    let dir = tmp.path().join("killed");
    let err = gan_go(&dir, Some(5)).unwrap_err();
    assert!(err.to_string().contains("killed after round 5"), "{err}");
    assert!(dir.join(CHECKPOINT).exists(), "checkpoint after round 4");
    let (resumed, images) = gan_go(&dir, None).unwrap();
    let strip = |rows: &[AttackRoundMetrics]| -> Vec<AttackRoundMetrics> {
        rows.iter()
            .map(|r| {
                let mut r = r.clone();
                r.base.time = Default::default();
                r
            })
            .collect()
    };
    assert_eq!(strip(&resumed), strip(&whole));
    assert_eq!(images, whole_images, "the generator after the run");
}
