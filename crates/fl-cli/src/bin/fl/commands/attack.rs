//! `fl attack gan-poison | reconstruct | mia`: one attack run from a config file.

use super::train::{TrainArgs, expect_kind, table_of};
use anyhow::Result;
use clap::Subcommand;
use fl_cli::attack::resolve_attack;
use fl_cli::config::{RunKind, set_dotted};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum AttackCommand {
    /// GAN reconstruction + poisoning: an adversary owning no image of class G learns to draw
    /// G from the shared model and trains on its drawings labelled T (see configs/gan-poison.toml).
    GanPoison(GanPoisonArgs),
    /// Hitaj's reconstruction alone (fake class on, no poisoning, no boost): one run per class,
    /// then one row of generated images per class in reconstructions.png.
    Reconstruct(ReconstructArgs),
    /// Membership inference: malicious clients learn whether target samples were in benign
    /// clients' training data (FedPoisonMIA, passive, gradient ascent, AGREvader-style), under
    /// any aggregator (see configs/mia.toml).
    Mia(MiaArgs),
}

#[derive(clap::Args)]
pub struct MiaArgs {
    #[command(flatten)]
    pub run: TrainArgs,
    /// Dataset: mnist or fashion-mnist (overrides the config).
    #[arg(long)]
    pub dataset: Option<String>,
    /// fedpoisonmia, passive, gradient-ascent or agrevader (overrides mia.method).
    #[arg(long)]
    pub attack: Option<String>,
    // The rule names come from the registry, where each is written once.
    #[arg(long, help = format!("{} (overrides aggregator)", or_list(&fl_defense::names())))]
    pub aggregator: Option<String>,
    /// full (the round's benign updates) or partial (its own clients' benign updates)
    /// (overrides mia.knowledge).
    #[arg(long)]
    pub knowledge: Option<String>,
    /// Number of malicious clients (overrides mia.malicious).
    #[arg(long)]
    pub malicious: Option<usize>,
}

#[derive(clap::Args)]
pub struct GanPoisonArgs {
    #[command(flatten)]
    pub run: TrainArgs,
    /// Dataset: mnist or fashion-mnist (overrides the config).
    #[arg(long)]
    pub dataset: Option<String>,
    /// G, the class the adversary reconstructs (overrides attack.generate).
    #[arg(long)]
    pub generate: Option<usize>,
    /// T, the class G's images should be called (overrides attack.target).
    #[arg(long)]
    pub target: Option<usize>,
    /// gan, label-flip, or none (the no-attack baseline) (overrides attack.method).
    #[arg(long)]
    pub method: Option<String>,
    /// Boost factor lambda on the malicious update (overrides attack.boost).
    #[arg(long)]
    pub boost: Option<f64>,
}

#[derive(clap::Args)]
pub struct ReconstructArgs {
    #[command(flatten)]
    pub run: TrainArgs,
    /// Dataset: mnist or fashion-mnist (overrides the config).
    #[arg(long)]
    pub dataset: Option<String>,
    /// The class to reconstruct (repeatable).
    #[arg(long, conflicts_with = "all_classes")]
    pub generate: Vec<usize>,
    /// Reconstruct every class, one run each.
    #[arg(long)]
    pub all_classes: bool,
}

/// "a, b or c".
fn or_list(names: &[&str]) -> String {
    match names.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Runs the attack subcommand.
pub fn run(cmd: AttackCommand) -> Result<()> {
    match cmd {
        AttackCommand::GanPoison(args) => gan_poison(args),
        AttackCommand::Reconstruct(args) => reconstruct(args),
        AttackCommand::Mia(args) => mia(args),
    }
}

pub fn print_attack(s: &fl_cli::attack::AttackRunSummary, out: &std::path::Path) {
    let a = &s.attack;
    let opt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.3}"));
    println!(
        "{} ({}, boost {}): average attack accuracy {} over {} rounds from round {}, final {:.3}, max {}",
        a.pair,
        a.method,
        a.boost,
        opt(a.avg_attack_accuracy),
        a.attack_rounds,
        a.attack_start.map_or("-".into(), |r| r.to_string()),
        a.final_attack_accuracy,
        opt(a.max_attack_accuracy)
    );
    println!(
        "main accuracy at the end {:.4} (classes other than G {:.4}, G {:.4}){}",
        a.final_main_accuracy,
        a.final_main_accuracy_others,
        a.final_accuracy_generate,
        a.fidelity.map_or(String::new(), |f| format!(
            "; reconstruction fidelity {f:.3}"
        ))
    );
    println!("results in {}", out.display());
}

/// The attack config of `args` with the attack flags applied.
fn attack_table(run: &TrainArgs, dataset: &Option<String>) -> Result<toml::Table> {
    let mut table = table_of(run)?;
    if let Some(d) = dataset {
        table.insert("dataset".into(), toml::Value::String(d.clone()));
    }
    Ok(table)
}

fn gan_poison(args: GanPoisonArgs) -> Result<()> {
    let mut table = attack_table(&args.run, &args.dataset)?;
    let mut set = |k: &str, v: toml::Value| set_dotted(&mut table, k, v);
    if let Some(g) = args.generate {
        set("attack.generate", toml::Value::Integer(g as i64))?;
    }
    if let Some(t) = args.target {
        set("attack.target", toml::Value::Integer(t as i64))?;
    }
    if let Some(m) = &args.method {
        set("attack.method", toml::Value::String(m.clone()))?;
    }
    if let Some(b) = args.boost {
        set("attack.boost", toml::Value::Float(b))?;
    }
    expect_kind(&mut table, RunKind::Poison, "fl attack gan-poison")?;
    poison(table, args.run.out.as_deref(), args.run.quiet)
}

/// Runs the poisoning attack `table` (of kind [`RunKind::Poison`]) describes, into `out` or a
/// folder under results/ named after the run and the pair.
pub fn poison(table: toml::Table, out: Option<&Path>, quiet: bool) -> Result<()> {
    let (fed, attack, defense) = resolve_attack(table)?;
    let out = out.map(Path::to_path_buf).unwrap_or_else(|| {
        PathBuf::from("results").join(format!(
            "{}-{}-g{}-t{}",
            fed.name,
            attack.method.name(),
            attack.generate,
            attack.target
        ))
    });
    let done = fl_cli::attack::run(&fed, &attack, &defense, &out, !quiet)?;
    print_attack(&done.summary, &out);
    Ok(())
}

fn mia(args: MiaArgs) -> Result<()> {
    let mut table = attack_table(&args.run, &args.dataset)?;
    let mut set = |k: &str, v: toml::Value| set_dotted(&mut table, k, v);
    if let Some(a) = &args.attack {
        fl_mia::MiaMethod::parse(a)?;
        set("mia.method", toml::Value::String(a.clone()))?;
    }
    if let Some(a) = &args.aggregator {
        set("aggregator", toml::Value::String(a.clone()))?;
    }
    if let Some(k) = &args.knowledge {
        set("mia.knowledge", toml::Value::String(k.clone()))?;
    }
    if let Some(m) = args.malicious {
        set("mia.malicious", toml::Value::Integer(m as i64))?;
    }
    expect_kind(&mut table, RunKind::Mia, "fl attack mia")?;
    membership(table, args.run.out.as_deref(), args.run.quiet)
}

/// Runs the membership attack `table` (of kind [`RunKind::Mia`]) describes, into `out` or a
/// folder under results/ named after the run, the attack and the rule.
pub fn membership(table: toml::Table, out: Option<&Path>, quiet: bool) -> Result<()> {
    let (fed, mia, defense) = fl_cli::mia::resolve_mia(table)?;
    let out = out.map(Path::to_path_buf).unwrap_or_else(|| {
        PathBuf::from("results").join(format!(
            "{}-{}-{}",
            fed.name,
            mia.method.name(),
            fed.aggregator
        ))
    });
    let s = fl_cli::mia::run(&fed, &mia, &defense, &out, !quiet)?.mia;
    let tpr = s
        .at_best
        .tpr_at
        .iter()
        .map(|t| match t.tpr {
            Some(v) => format!("TPR {v:.3} at {}% FPR", t.fpr * 100.0),
            None => format!(
                "TPR at {}% FPR not measurable (smallest FPR {:.4})",
                t.fpr * 100.0,
                s.at_best.smallest_fpr
            ),
        })
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "{} ({} knowledge, {} malicious) vs {}: best membership accuracy {:.3} at round {} \
         (precision {:.3}, recall {:.3}, AUC {:.3}; {tpr}); final {:.3}; main accuracy {:.4}",
        s.method.name(),
        s.knowledge,
        s.malicious,
        s.aggregator,
        s.best_accuracy,
        s.best_round,
        s.at_best.precision,
        s.at_best.recall,
        s.at_best.auc,
        s.final_accuracy,
        s.main_accuracy
    );
    if let Some(k) = s.malicious_kept_share {
        println!(
            "the aggregator kept {:.0}% of the malicious updates",
            k * 100.0
        );
    }
    println!("results in {}", out.display());
    Ok(())
}

fn reconstruct(args: ReconstructArgs) -> Result<()> {
    let mut table = attack_table(&args.run, &args.dataset)?;
    expect_kind(&mut table, RunKind::Poison, "fl attack reconstruct")?;
    let (fed, attack, defense) = resolve_attack(table)?;
    let classes: Vec<usize> = if args.all_classes {
        (0..fed.dataset.classes()).collect()
    } else if args.generate.is_empty() {
        anyhow::bail!("say which classes: --generate G (repeatable) or --all-classes");
    } else {
        args.generate.clone()
    };
    let out = args
        .run
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("results").join(format!("{}-reconstruct", fed.name)));
    let rows =
        fl_cli::attack::reconstruct(&fed, &attack, &defense, &classes, &out, !args.run.quiet)?;
    for r in &rows {
        println!(
            "class {} ({}): fidelity {}",
            r.class,
            r.name,
            r.fidelity.map_or("-".into(), |f| format!("{f:.3}"))
        );
    }
    println!("grid in {}", out.join("reconstructions.png").display());
    Ok(())
}
