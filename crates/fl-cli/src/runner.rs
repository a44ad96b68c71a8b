//! The one run loop of the CLI: a federation with any attack (or [`fl_core::NoAttack`]) round
//! by round, with a progress bar (latest figures, ETA) and `metrics.jsonl` rewritten after
//! every round, so a killed run leaves every finished round readable. `fl train`, `fl attack
//! gan-poison` / `reconstruct` and `fl attack mia` all run through it; what differs between
//! them is the per-round hook (the bar's message, preview images).

use crate::progress::rounds_bar;
use crate::run_dir::RunDir;
use anyhow::Result;
use fl_core::{Attack, Federation};
use indicatif::ProgressBar;

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

/// Runs `federation` with `attack` until it is finished, writing `metrics.jsonl` into `dir`
/// after every round; the bar (hidden unless `progress`) is labelled `label`.
pub fn run_rounds<A: Attack>(
    federation: &mut Federation,
    attack: &mut A,
    dir: &RunDir,
    label: &str,
    progress: bool,
    hook: &mut dyn RoundHook<A>,
) -> Result<Vec<A::Round>> {
    let bar = if progress {
        rounds_bar(federation.config().rounds as u64, label)
    } else {
        ProgressBar::hidden()
    };
    let mut rows: Vec<A::Round> = Vec::new();
    while !federation.is_finished(rows.last().map(A::base)) {
        let row = fl_core::attack::step(federation, attack)?;
        if let Some(m) = hook.message(attack, &row) {
            bar.set_message(m);
        }
        bar.inc(1);
        hook.after_round(attack, &row, dir)?;
        rows.push(row);
        dir.write_jsonl("metrics.jsonl", &rows)?;
    }
    bar.finish();
    Ok(rows)
}
