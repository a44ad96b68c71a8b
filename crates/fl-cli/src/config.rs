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
fn parse_value(raw: &str) -> Value {
    format!("v = {raw}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_string()))
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

/// Deserialises a table into a config type; unknown keys are errors.
pub fn resolve<T: DeserializeOwned>(table: Table) -> Result<T> {
    T::deserialize(Value::Table(table)).map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fl_core::FedConfig;

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
