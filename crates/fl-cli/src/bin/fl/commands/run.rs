//! `fl run`: any experiment from one config file, the attack chosen by its `[attack] kind`
//! (`gan-poison`, `label-flip`, `baseline`, `mia`, `model-poison`, `backdoor`), training
//! without one.
//! `fl train` and `fl attack ...` are its short forms.

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
        RunKind::ModelPoison => model_poison(table, out, args.quiet),
        RunKind::Backdoor => backdoor(table, out, args.quiet),
    }
}

/// Runs the backdoor `table` describes, into `out` or a folder under results/ named after
/// the run, the scale and the rule.
fn backdoor(table: toml::Table, out: Option<&std::path::Path>, quiet: bool) -> Result<()> {
    let (fed, attack, defense) = fl_cli::backdoor::resolve_backdoor(table)?;
    let out = out.map(std::path::Path::to_path_buf).unwrap_or_else(|| {
        std::path::PathBuf::from("results").join(format!(
            "{}-backdoor-x{}{}-{}",
            fed.name,
            attack.scale,
            if attack.adaptive { "-adaptive" } else { "" },
            fed.aggregator
        ))
    });
    let s = fl_cli::backdoor::run(&fed, &attack, &defense, &out, !quiet)?;
    let a = &s.attack;
    println!(
        "backdoor x{} (scale {}{}) vs {}: attack success {:.4} (highest {:.4}), main accuracy \
         {:.4}{}",
        a.malicious,
        a.scale,
        if a.adaptive { ", adaptive" } else { "" },
        fed.aggregator,
        a.final_attack_success,
        a.max_attack_success,
        a.final_accuracy,
        a.malicious_kept_share.map_or(String::new(), |k| format!(
            "; the server kept {:.0}% of the malicious updates",
            k * 100.0
        ))
    );
    println!("results in {}", out.display());
    Ok(())
}

/// Runs the model-poisoning attack `table` describes, into `out` or a folder under results/
/// named after the run, the method and the rule.
fn model_poison(table: toml::Table, out: Option<&std::path::Path>, quiet: bool) -> Result<()> {
    let (fed, attack, defense) = fl_cli::model_poison::resolve_model_poison(table)?;
    let out = out.map(std::path::Path::to_path_buf).unwrap_or_else(|| {
        std::path::PathBuf::from("results").join(format!(
            "{}-{}-{}",
            fed.name,
            attack.method.name(),
            fed.aggregator
        ))
    });
    let s = fl_cli::model_poison::run(&fed, &attack, &defense, &out, !quiet)?;
    let a = &s.attack;
    println!(
        "{} x{} vs {}: final accuracy {:.4} (lowest {:.4}, mean {:.4} over the attack rounds){}",
        a.method.name(),
        a.malicious,
        fed.aggregator,
        a.final_accuracy,
        a.min_accuracy,
        a.mean_accuracy,
        a.malicious_kept_share.map_or(String::new(), |k| format!(
            "; the server kept {:.0}% of the malicious updates",
            k * 100.0
        ))
    );
    println!("results in {}", out.display());
    Ok(())
}
