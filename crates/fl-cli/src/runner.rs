//! The one run loop of the CLI: a federation with any attack (or [`fl_core::NoAttack`]) round
//! by round, with a progress bar (latest figures, ETA) and `metrics.jsonl` rewritten after
//! every round, so a killed run leaves every finished round readable. `fl train`, `fl attack
//! gan-poison` / `reconstruct` and `fl attack mia` all run through it; what differs between
//! them is the per-round hook (the bar's message, preview images).
//!
//! Long runs are resumable: every `checkpoint_every` rounds the loop writes `checkpoint.bin`
//! (the federation's and the attack's state, the records so far, and the run's
//! `config.toml`), atomically. Started again on the same folder with the same config, it
//! continues from there, and the rounds that follow are those of an uninterrupted run (a
//! killed run loses at most `checkpoint_every` rounds). A finished run removes its
//! checkpoint. Runs whose rule or attack cannot save its state (the GAN attack's generator)
//! are not checkpointed.

use crate::progress::rounds_bar;
use crate::run_dir::RunDir;
use anyhow::{Context, Result, bail};
use fl_core::checkpoint::{FederationState, decode, encode};
use fl_core::{Attack, Federation};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

/// Rounds between checkpoints of the CLI's runs.
pub const CHECKPOINT_EVERY: usize = 10;

/// The file a run in progress keeps its state in.
pub const CHECKPOINT: &str = "checkpoint.bin";

/// What `checkpoint.bin` holds.
#[derive(Serialize, Deserialize)]
struct Checkpoint {
    /// The run folder's `config.toml` when it was written.
    config: String,
    federation: FederationState,
    attack: Vec<u8>,
    /// The records so far, as JSON (their flattened parts need a self-describing format;
    /// floats round-trip exactly).
    rows: Vec<u8>,
}

/// What a run shows and writes beside each round's record: the bar's message, and any file
/// of the round (a preview grid). `attack` is the attack after the round.
pub trait RoundHook<A: Attack> {
    /// The progress bar's message after `row` (none keeps the last one).
    fn message(&self, attack: &A, row: &A::Round) -> Option<String>;

    /// Anything else to do after `row`, e.g. write a file into `dir`.
    fn after_round(&mut self, _attack: &A, _row: &A::Round, _dir: &RunDir) -> Result<()> {
        Ok(())
    }
}

/// The honest run's hook: test accuracy and loss.
pub struct Accuracy;

impl<A: Attack> RoundHook<A> for Accuracy {
    fn message(&self, _attack: &A, row: &A::Round) -> Option<String> {
        A::base(row)
            .test
            .as_ref()
            .map(|e| format!("acc {:.4} loss {:.4}", e.accuracy, e.loss))
    }
}

/// A run of an attack whose clients `0..malicious` sit in the federation: the run folder
/// created under `out` with `config_toml` written as `config.toml`, the data loaded, the
/// attack built by `build` (given the prepared run and its own copy of the server's rule, for
/// attacks that simulate it), the rounds run with checkpoints; returns the folder, the attack,
/// the federation after the last round and the records.
#[allow(clippy::too_many_arguments)]
pub fn run_seated<A: Attack>(
    fed: &fl_core::FedConfig,
    defense: &fl_defense::DefenseConfig,
    out: &std::path::Path,
    config_toml: &str,
    malicious: usize,
    label: &str,
    progress: bool,
    hook: &mut dyn RoundHook<A>,
    build: impl FnOnce(
        &fl_core::experiment::Prepared,
        Box<dyn fl_core::Aggregator>,
    ) -> fl_core::Result<A>,
) -> Result<(RunDir, A, Federation, Vec<A::Round>)> {
    let rule = crate::config::server_rule(fed, defense)?;
    let dir = RunDir::create(out)?;
    dir.write("config.toml", config_toml.as_bytes())?;
    let prepared = fl_core::experiment::Prepared::load(fed)?;
    let mut attack = build(&prepared, crate::config::server_rule(fed, defense)?)?;
    let clients: Vec<usize> = (0..malicious).collect();
    let mut federation = prepared.federation(prepared.seated(&clients), rule)?;
    let rows = run_rounds(
        &mut federation,
        &mut attack,
        &dir,
        label,
        progress,
        hook,
        CHECKPOINT_EVERY,
    )?;
    Ok((dir, attack, federation, rows))
}

/// Runs `federation` with `attack` until it is finished, writing `metrics.jsonl` into `dir`
/// after every round and a checkpoint every `checkpoint_every` rounds (0: never); continues
/// from `dir`'s checkpoint when it holds one of this config. The bar (hidden unless
/// `progress`) is labelled `label`.
pub fn run_rounds<A: Attack>(
    federation: &mut Federation,
    attack: &mut A,
    dir: &RunDir,
    label: &str,
    progress: bool,
    hook: &mut dyn RoundHook<A>,
    checkpoint_every: usize,
) -> Result<Vec<A::Round>> {
    let bar = if progress {
        rounds_bar(federation.config().rounds as u64, label)
    } else {
        ProgressBar::hidden()
    };
    let mut rows: Vec<A::Round> = resume(federation, attack, dir)?;
    if !rows.is_empty() {
        let line = format!(
            "{label}: resuming after round {} from {}",
            federation.round(),
            dir.file(CHECKPOINT).display()
        );
        // A hidden bar (no terminal, or --quiet) prints nothing: say it on stderr then.
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
        bar.set_position(rows.len() as u64);
    }
    while !federation.is_finished(rows.last().map(A::base)) {
        let row = fl_core::attack::step(federation, attack)?;
        if let Some(m) = hook.message(attack, &row) {
            bar.set_message(m);
        }
        bar.inc(1);
        rows.push(row);
        dir.write_jsonl("metrics.jsonl", &rows)?;
        hook.after_round(attack, rows.last().expect("just pushed"), dir)?;
        if checkpoint_every > 0
            && federation.round().is_multiple_of(checkpoint_every)
            && !federation.is_finished(rows.last().map(A::base))
        {
            save(federation, attack, dir, &rows)?;
        }
    }
    bar.finish();
    let path = dir.file(CHECKPOINT);
    if path.exists() {
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(rows)
}

/// Writes the checkpoint, when every part of the run can save its state.
fn save<A: Attack>(
    federation: &Federation,
    attack: &A,
    dir: &RunDir,
    rows: &[A::Round],
) -> Result<()> {
    let (Some(fed), Some(att)) = (federation.state(), attack.state()) else {
        return Ok(());
    };
    let config = std::fs::read_to_string(dir.file("config.toml")).unwrap_or_default();
    let bytes = encode(&Checkpoint {
        config,
        federation: fed,
        attack: att,
        rows: serde_json::to_vec(rows)?,
    })?;
    dir.write(CHECKPOINT, &bytes)
}

/// The records of the rounds a checkpoint in `dir` holds, with the federation and the
/// attack restored to their state after them; none without a checkpoint.
fn resume<A: Attack>(
    federation: &mut Federation,
    attack: &mut A,
    dir: &RunDir,
) -> Result<Vec<A::Round>> {
    let path = dir.file(CHECKPOINT);
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(Vec::new());
    };
    let c: Checkpoint = decode(&bytes).with_context(|| format!("reading {}", path.display()))?;
    let config = std::fs::read_to_string(dir.file("config.toml")).unwrap_or_default();
    if c.config != config {
        bail!(
            "{} is the checkpoint of a run with another config; remove it to start afresh, \
             or run into another folder (--out)",
            path.display()
        );
    }
    let rows: Vec<A::Round> = serde_json::from_slice(&c.rows)
        .with_context(|| format!("reading the records in {}", path.display()))?;
    if rows.len() != c.federation.round {
        bail!(
            "{} holds {} records for {} rounds",
            path.display(),
            rows.len(),
            c.federation.round
        );
    }
    federation
        .restore(&c.federation)
        .with_context(|| format!("restoring {}", path.display()))?;
    attack
        .set_state(&c.attack)
        .with_context(|| format!("restoring the attack from {}", path.display()))?;
    Ok(rows)
}
