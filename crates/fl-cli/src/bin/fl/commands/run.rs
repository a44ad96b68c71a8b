//! `fl run`: any experiment from one config file, the attack chosen by its `[attack] kind`
//! (`gan-poison`, `label-flip`, `baseline`, `mia`), training without one. `fl train` and
//! `fl attack ...` are its short forms.

use super::attack::{membership, poison};
use super::train::{TrainArgs, table_of, train};
use anyhow::Result;
use fl_cli::config::{RunKind, run_kind};

/// Runs `fl run`.
pub fn run(args: TrainArgs) -> Result<()> {
    let mut table = table_of(&args)?;
    let out = args.out.as_deref();
    match run_kind(&mut table)? {
        RunKind::Train => train(table, out, args.quiet),
        RunKind::Poison => poison(table, out, args.quiet),
        RunKind::Mia => membership(table, out, args.quiet),
    }
}
