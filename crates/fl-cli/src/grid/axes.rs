//! Axes of a grid and their expansion into cells.

use crate::config::{parse_value, set_dotted};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use toml::{Table, Value};

/// One point of an axis: a label (part of the cell's id) and the assignments it makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Point {
    /// The point's name in cell ids and tables, e.g. `median` or `g1-t9`.
    pub label: String,
    /// Dotted config keys and their values, e.g. `{ "attack.generate" = 1 }`.
    pub set: BTreeMap<String, Value>,
}

/// An axis: a name and its points, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Axis {
    /// The axis's name (a column of the grid's tables).
    pub name: String,
    /// Its points.
    pub points: Vec<Point>,
}

impl Axis {
    /// An axis over one key: each value is a point labelled by itself.
    pub fn key(key: &str, values: Vec<Value>) -> Self {
        Self {
            name: key.to_string(),
            points: values
                .into_iter()
                .map(|v| Point {
                    label: label_of(&v),
                    set: BTreeMap::from([(key.to_string(), v)]),
                })
                .collect(),
        }
    }

    /// Refuses an empty axis, a label used twice, or a label that cannot be part of a file name.
    pub fn validate(&self) -> Result<()> {
        if self.points.is_empty() {
            bail!("axis `{}` has no values", self.name);
        }
        let mut seen = std::collections::BTreeSet::new();
        for p in &self.points {
            if p.label.is_empty() || p.label.starts_with('.') || p.label.contains(['/', '\\', ' '])
            {
                bail!(
                    "axis `{}`: `{}` cannot be part of a cell's file name (no spaces, slashes \
                     or leading dot)",
                    self.name,
                    p.label
                );
            }
            if !seen.insert(&p.label) {
                bail!("axis `{}` lists `{}` twice", self.name, p.label);
            }
        }
        Ok(())
    }
}

/// A value's label: strings as they are, other values as TOML writes them.
fn label_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One cell of an expansion: its id, the label of each axis, and its config table.
#[derive(Debug, Clone, PartialEq)]
pub struct Expanded {
    /// The axes' labels joined by `-`, first axis first.
    pub id: String,
    /// (axis name, point label), in axis order.
    pub labels: Vec<(String, String)>,
    /// The base config with every point's assignments made.
    pub table: Table,
}

/// Every combination of one point per axis over `base`, the first axis varying slowest. No
/// axes give one cell (the base) with an empty id.
pub fn expand(base: &Table, axes: &[Axis]) -> Result<Vec<Expanded>> {
    let mut out = vec![Expanded {
        id: String::new(),
        labels: Vec::new(),
        table: base.clone(),
    }];
    for axis in axes {
        axis.validate()?;
        let mut next = Vec::with_capacity(out.len() * axis.points.len());
        for cell in &out {
            for p in &axis.points {
                let mut c = cell.clone();
                for (k, v) in &p.set {
                    set_dotted(&mut c.table, k, v.clone())
                        .with_context(|| format!("axis `{}`, `{}`", axis.name, p.label))?;
                }
                if !c.id.is_empty() {
                    c.id.push('-');
                }
                c.id.push_str(&p.label);
                c.labels.push((axis.name.clone(), p.label.clone()));
                next.push(c);
            }
        }
        out = next;
    }
    Ok(out)
}

/// The axes of `--vary KEY=V1,V2,...` flags: each value read as TOML (`1`, `0.5`, `true`),
/// otherwise as a string (`median`).
pub fn vary_axes(vary: &[String]) -> Result<Vec<Axis>> {
    vary.iter()
        .map(|v| {
            let (key, values) = v
                .split_once('=')
                .with_context(|| format!("--vary `{v}`: expected key=value1,value2,..."))?;
            let values = values
                .split(',')
                .map(|x| {
                    let x = x.trim();
                    if x.is_empty() {
                        bail!("--vary `{v}`: empty value");
                    }
                    // The same reading as `--set key=value`.
                    Ok(parse_value(x))
                })
                .collect::<Result<Vec<_>>>()?;
            let axis = Axis::key(key.trim(), values);
            axis.validate()?;
            Ok(axis)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_is_every_combination_first_axis_slowest() {
        let base: Table = "rounds = 3\n[train]\nlr = 0.1\n".parse().unwrap();
        let axes =
            vary_axes(&["aggregator=fedavg,median".into(), "train.lr=0.5,1".into()]).unwrap();
        let cells = expand(&base, &axes).unwrap();
        let ids: Vec<&str> = cells.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["fedavg-0.5", "fedavg-1", "median-0.5", "median-1"]);
        let c = &cells[3];
        assert_eq!(c.table["aggregator"].as_str(), Some("median"));
        assert_eq!(c.table["train"]["lr"].as_integer(), Some(1));
        assert_eq!(c.table["rounds"].as_integer(), Some(3));
        assert_eq!(
            c.labels,
            [
                ("aggregator".to_string(), "median".to_string()),
                ("train.lr".to_string(), "1".to_string())
            ]
        );
        // The base is never changed, and no axes give the base alone.
        assert_eq!(base["train"]["lr"].as_float(), Some(0.1));
        let one = expand(&base, &[]).unwrap();
        assert_eq!((one.len(), one[0].id.as_str()), (1, ""));
    }

    #[test]
    fn a_bundle_axis_sets_several_keys_per_point() {
        let axis = Axis {
            name: "pair".into(),
            points: vec![Point {
                label: "g1-t9".into(),
                set: BTreeMap::from([
                    ("attack.generate".into(), Value::Integer(1)),
                    ("attack.target".into(), Value::Integer(9)),
                ]),
            }],
        };
        let cells = expand(&Table::new(), &[axis]).unwrap();
        assert_eq!(cells[0].table["attack"]["generate"].as_integer(), Some(1));
        assert_eq!(cells[0].table["attack"]["target"].as_integer(), Some(9));
    }

    #[test]
    fn bad_axes_are_refused_with_the_reason() {
        let err = |v: &str| format!("{:#}", vary_axes(&[v.to_string()]).unwrap_err());
        assert!(err("seed").contains("expected key=value"));
        assert!(err("seed=1,,2").contains("empty value"));
        assert!(err("seed=1,1").contains("lists `1` twice"));
        assert!(err("name=a b").contains("file name"));
        let empty = Axis {
            name: "x".into(),
            points: vec![],
        };
        assert!(format!("{:#}", empty.validate().unwrap_err()).contains("no values"));
    }
}
