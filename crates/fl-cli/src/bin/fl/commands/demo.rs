//! `fl demo`: the GAN-poisoning attack on the bundled fixtures.

use super::attack::print_attack;
use anyhow::Result;
use fl_cli::attack::resolve_attack;
use std::path::PathBuf;

/// Where the bundled fixtures are: `fixtures/` under the working folder, else the checkout this
/// binary was built from.
fn fixtures_dir() -> PathBuf {
    let here = PathBuf::from("fixtures");
    if here.join("mnist").is_dir() {
        here
    } else {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures"))
    }
}

/// Runs `configs/demo.toml` (compiled in) on the fixtures into `out`.
pub fn run(out: &std::path::Path, quiet: bool) -> Result<()> {
    let mut table: toml::Table = include_str!("../../../../../../configs/demo.toml").parse()?;
    table.insert(
        "data_dir".into(),
        toml::Value::String(fixtures_dir().display().to_string()),
    );
    let (fed, attack, defense) = resolve_attack(table)?;
    println!(
        "demo: {} on the bundled {} subset, {} clients, client {} adversarial, {} rounds",
        attack.method.name(),
        fed.dataset.name(),
        fed.clients,
        attack.adversary,
        fed.rounds
    );
    let done = fl_cli::attack::run(&fed, &attack, &defense, out, !quiet)?;
    print_attack(&done.summary, out);
    for f in ["samples.png", "attack.png", "summary.json", "metrics.jsonl"] {
        println!("  {}", out.join(f).display());
    }
    Ok(())
}
