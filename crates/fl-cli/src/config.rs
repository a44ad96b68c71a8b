//! Config files: TOML, with `--set key=value` overrides, unknown keys rejected.

use anyhow::{Context, Result, bail};
use fl_core::{Aggregator, FedConfig};
use fl_defense::DefenseConfig;
use serde::de::DeserializeOwned;
use std::path::Path;
use toml::{Table, Value};

/// Reads a TOML file (or starts empty) and applies `key=value` overrides (dotted keys reach
/// into sections: `train.lr=0.01`).
pub fn load_table(path: Option<&Path>, sets: &[String]) -> Result<Table> {
    let mut table = match path {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            text.parse::<Table>()
                .with_context(|| format!("{} is not valid TOML", p.display()))?
        }
        None => Table::new(),
    };
    apply_sets(&mut table, sets)?;
    Ok(table)
}

/// Applies `key=value` overrides to `table`.
pub fn apply_sets(table: &mut Table, sets: &[String]) -> Result<()> {
    for s in sets {
        let (key, raw) = s
            .split_once('=')
            .with_context(|| format!("--set `{s}`: expected key=value"))?;
        set_dotted(table, key.trim(), parse_value(raw.trim()))
            .with_context(|| format!("--set `{s}`"))?;
    }
    Ok(())
}

/// A TOML value from the command line: numbers, booleans, arrays and inline tables as TOML,
/// anything else as a string.
pub fn parse_value(raw: &str) -> Value {
    format!("v = {raw}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_string()))
}

/// Merges `over` into `base`: sections merge, values replace.
pub fn merge_tables(base: &mut Table, over: Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => merge_tables(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Sets `a.b.c = value`, creating sections as needed.
pub fn set_dotted(table: &mut Table, key: &str, value: Value) -> Result<()> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().filter(|k| !k.is_empty()).context("empty key")?;
    let mut t = table;
    for p in parts {
        let entry = t
            .entry(p.to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        match entry {
            Value::Table(inner) => t = inner,
            _ => bail!("`{p}` is not a section"),
        }
    }
    t.insert(last.to_string(), value);
    Ok(())
}

/// Removes the section `name` (`[name]`) from `table`; an empty table when it is absent.
pub fn take_section(table: &mut Table, name: &str) -> Result<Table> {
    match table.remove(name) {
        None => Ok(Table::new()),
        Some(Value::Table(t)) => Ok(t),
        Some(_) => bail!("invalid configuration: `{name}` must be a section ([{name}])"),
    }
}

/// What a config runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// Federated training, every client honest.
    Train,
    /// A poisoning attack of `[attack]` (GAN poisoning, label flipping, or the no-attack
    /// baseline that only marks the attack period).
    Poison,
    /// Membership inference (`[mia]`).
    Mia,
    /// Model poisoning by malicious clients that see the benign updates (`[attack] kind =
    /// "model-poison"`).
    ModelPoison,
    /// A pixel-trigger backdoor by data poisoning (`[attack] kind = "backdoor"`).
    Backdoor,
}

/// The attacks an `[attack]` section's `kind` names, with what each sets.
pub const ATTACK_KINDS: [(&str, &str); 6] = [
    (
        "gan-poison",
        "GAN reconstruction + poisoning ([attack], method = \"gan\")",
    ),
    (
        "label-flip",
        "label flipping ([attack], method = \"label-flip\")",
    ),
    (
        "baseline",
        "the no-attack baseline marking the attack period ([attack], method = \"none\")",
    ),
    (
        "mia",
        "membership inference (the keys of [mia]: FedPoisonMIA, passive, ...)",
    ),
    (
        "model-poison",
        "model poisoning by omniscient clients (method = sign-flip, ipm, alie, gaussian, \
         min-max, min-sum, fang-trim, fang-krum, ipm-adaptive, alie-adaptive, none)",
    ),
    (
        "backdoor",
        "a BadNets pixel-trigger backdoor by data poisoning (scale: model replacement; \
         adaptive: the scale picked against the rule)",
    ),
];

/// Decides what `table` runs, from `[attack] kind = "..."` (see [`ATTACK_KINDS`]), or from
/// the sections it has (`[mia]`: membership inference; `[attack]` without `kind`: its
/// `method`; neither: training), and rewrites a tagged section into the form the run reads
/// (`kind = "mia"` moves `[attack]` to `[mia]`; the GAN-poisoning kinds set `method`;
/// `model-poison` and `backdoor` keep `[attack]` as their own section).
pub fn run_kind(table: &mut Table) -> Result<RunKind> {
    let kind = match table.get_mut("attack") {
        Some(Value::Table(attack)) => attack.remove("kind"),
        Some(_) => bail!("invalid configuration: `attack` must be a section ([attack])"),
        None => None,
    };
    let Some(kind) = kind else {
        return Ok(if table.contains_key("mia") {
            RunKind::Mia
        } else if table.contains_key("attack") {
            RunKind::Poison
        } else {
            RunKind::Train
        });
    };
    let Value::String(kind) = kind else {
        bail!("invalid configuration: attack.kind must be a string");
    };
    let method = match kind.as_str() {
        "mia" => {
            if table.contains_key("mia") {
                bail!(
                    "invalid configuration: attack.kind = \"mia\" and a [mia] section: write one"
                );
            }
            let attack = table.remove("attack").expect("checked above");
            table.insert("mia".into(), attack);
            return Ok(RunKind::Mia);
        }
        "model-poison" => return Ok(RunKind::ModelPoison),
        "backdoor" => return Ok(RunKind::Backdoor),
        "gan-poison" => "gan",
        "label-flip" => "label-flip",
        "baseline" => "none",
        other => {
            let names: Vec<&str> = ATTACK_KINDS.iter().map(|k| k.0).collect();
            bail!(
                "invalid configuration: unknown attack.kind `{other}` (known: {})",
                names.join(", ")
            );
        }
    };
    let Some(Value::Table(attack)) = table.get_mut("attack") else {
        unreachable!("checked above")
    };
    match attack.get("method") {
        Some(Value::String(m)) if m != method => bail!(
            "invalid configuration: attack.kind = \"{kind}\" runs method \"{method}\", but \
             attack.method says \"{m}\""
        ),
        _ => {
            attack.insert("method".into(), Value::String(method.into()));
        }
    }
    Ok(RunKind::Poison)
}

/// The `[defense]` section of `table` (removed from it): every `[defense.<rule>]` checked by
/// its rule.
pub fn take_defense(table: &mut Table) -> Result<DefenseConfig> {
    Ok(DefenseConfig::from_table(take_section(table, "defense")?)?)
}

/// The server's aggregation rule of a run: the one `fed.aggregator` names, with the parameters
/// of `[defense.<rule>]`.
pub fn server_rule(fed: &FedConfig, defense: &DefenseConfig) -> Result<Box<dyn Aggregator>> {
    Ok(defense.build(&fed.aggregator)?)
}

/// The `[defense]` section as a resolved config shows it: the named rule's parameters, and
/// nothing for FedAvg.
pub fn shown_defense(fed: &FedConfig, defense: &DefenseConfig) -> Result<Option<DefenseConfig>> {
    Ok(defense.shown_for(&fed.aggregator)?)
}

/// A resolved config written as TOML, its `[attack]` tagged `kind = "<kind>"` so that the
/// file runs again.
pub fn tagged_toml<T: serde::Serialize>(config: &T, kind: &str) -> Result<String> {
    let mut t: Table = Table::try_from(config)?;
    if let Some(Value::Table(a)) = t.get_mut("attack") {
        a.insert("kind".into(), Value::String(kind.into()));
    }
    Ok(toml::to_string_pretty(&t)?)
}

/// A config table of an attack kind that keeps `[attack]` as its own section (`kind` already
/// taken out) split into the federated part, `[attack]` and `[defense]`; unknown keys in any
/// are errors.
pub fn resolve_attack_section<A: DeserializeOwned>(
    mut table: Table,
) -> Result<(fl_core::FedConfig, A, DefenseConfig)> {
    let attack = take_section(&mut table, "attack")?;
    let defense = take_defense(&mut table)?;
    let fed: fl_core::FedConfig = resolve(table)?;
    let attack: A = resolve(attack).map_err(|e| e.context("in [attack]"))?;
    Ok((fed, attack, defense))
}

/// Deserialises a table into a config type; unknown keys are errors.
pub fn resolve<T: DeserializeOwned>(table: Table) -> Result<T> {
    T::deserialize(Value::Table(table)).map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fl_core::FedConfig;

    #[test]
    fn attack_kinds_pick_the_run_and_rewrite_the_section() {
        let kind = |text: &str| -> (Result<RunKind>, Table) {
            let mut t: Table = text.parse().unwrap();
            (run_kind(&mut t), t)
        };
        assert_eq!(kind("rounds = 2").0.unwrap(), RunKind::Train);
        assert_eq!(kind("[mia]\nmalicious = 2").0.unwrap(), RunKind::Mia);
        assert_eq!(
            kind("[attack]\nmethod = \"gan\"").0.unwrap(),
            RunKind::Poison
        );
        let (k, t) = kind("[attack]\nkind = \"mia\"\nmalicious = 2");
        assert_eq!(k.unwrap(), RunKind::Mia);
        assert!(!t.contains_key("attack"));
        assert_eq!(t["mia"]["malicious"].as_integer(), Some(2));
        let (k, t) = kind("[attack]\nkind = \"label-flip\"\ngenerate = 3");
        assert_eq!(k.unwrap(), RunKind::Poison);
        assert_eq!(t["attack"]["method"].as_str(), Some("label-flip"));
        assert!(t["attack"].get("kind").is_none());
        let (k, t) = kind("[attack]\nkind = \"baseline\"");
        assert_eq!(k.unwrap(), RunKind::Poison);
        assert_eq!(t["attack"]["method"].as_str(), Some("none"));
        let err = |text: &str| kind(text).0.unwrap_err().to_string();
        assert!(
            err("[attack]\nkind = \"gan-poison\"\nmethod = \"none\"").contains("says \"none\"")
        );
        assert!(err("[attack]\nkind = \"sybil\"").contains("known: gan-poison, label-flip"));
        assert!(err("[attack]\nkind = \"mia\"\n[mia]\nmalicious = 1").contains("write one"));
        assert!(err("[attack]\nkind = 3").contains("must be a string"));
    }

    #[test]
    fn overrides_reach_sections_and_parse_types() {
        let t = load_table(
            None,
            &[
                "train.lr=0.01".into(),
                "rounds=3".into(),
                "dataset=fashion-mnist".into(),
                "partition.scheme=dirichlet".into(),
                "partition.alpha=0.5".into(),
            ],
        )
        .unwrap();
        let c: FedConfig = resolve(t).unwrap();
        assert_eq!(c.train.lr, 0.01);
        assert_eq!(c.rounds, 3);
        assert_eq!(c.dataset, fl_data::DatasetKind::FashionMnist);
        assert_eq!(c.partition.alpha, Some(0.5));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let t = load_table(None, &["train.lrr=0.01".into()]).unwrap();
        let e = resolve::<FedConfig>(t).unwrap_err().to_string();
        assert!(e.contains("lrr"), "{e}");
        let t = load_table(None, &["colour=1".into()]).unwrap();
        assert!(resolve::<FedConfig>(t).is_err());
    }

    #[test]
    fn defense_section_is_taken_checked_and_named_rules_resolve() {
        let mut t = load_table(
            None,
            &[
                "aggregator=atm".into(),
                "defense.atm.b=1".into(),
                "defense.krum.f=2".into(),
                "rounds=2".into(),
            ],
        )
        .unwrap();
        let d = take_defense(&mut t).unwrap();
        let fed: FedConfig = resolve(t).unwrap();
        server_rule(&fed, &d).unwrap();
        // The written config shows the rule the run uses, with its value.
        let shown = toml::to_string(&shown_defense(&fed, &d).unwrap().unwrap()).unwrap();
        assert_eq!(shown.trim(), "[atm]\nb = 1");
        let mut bad = load_table(None, &["defense.trimmed-mean.beta=0.7".into()]).unwrap();
        let e = format!("{:#}", take_defense(&mut bad).unwrap_err());
        assert!(
            e.contains("[defense.trimmed-mean]") && e.contains("beta"),
            "{e}"
        );
        let mut typo = load_table(None, &["defense.atm.bb=1".into()]).unwrap();
        assert!(format!("{:#}", take_defense(&mut typo).unwrap_err()).contains("bb"));
        let unknown = FedConfig {
            aggregator: "krumm".into(),
            ..Default::default()
        };
        let e = server_rule(&unknown, &d).err().unwrap().to_string();
        assert!(
            e.contains("unknown aggregator `krumm`") && e.contains("multi-krum"),
            "{e}"
        );
    }

    #[test]
    fn malformed_set_is_an_error() {
        assert!(load_table(None, &["novalue".into()]).is_err());
        assert!(load_table(None, &["rounds.x=1".into(), "rounds.x.y=2".into()]).is_err());
    }
}
