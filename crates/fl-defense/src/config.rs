//! The `[defense]` config section and the registry of rules.
//!
//! A run names its rule with `aggregator = "krum"`; `[defense.<rule>]` holds that rule's
//! parameters, read into the rule's own parameter struct (unknown keys rejected) and checked
//! by its `validate`. A config may carry sections for several rules (a table of attacks x
//! rules varies `aggregator` over one base config); every section present is checked. A rule's
//! name is written once, in [`RULES`].

use crate::bucketing::Bucketing;
use crate::bulyan::Bulyan;
use crate::centered_clip::CenteredClipParams;
use crate::deepsight::DeepSightLite;
use crate::dnc::Dnc;
use crate::fang_defense::FangDefense;
use crate::flame::Flame;
use crate::fltrust::FlTrust;
use crate::foolsgold::FoolsGoldParams;
use crate::geomed::GeoMed;
use crate::mix::{Composed, PreParams};
use crate::nnm::Nnm;
use crate::rflbat::RflbatLite;
use crate::rules::{AngleMedian, Atm, GaussianDp, Krum, Median, MultiKrum, NormClip, TrimmedMean};
use crate::signguard::SignGuard;
use fl_core::error::{CoreError, Result};
use fl_core::{Aggregator, FedAvg};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The parameters of one rule: the serde shape of its `[defense.<rule>]` section (defaults for
/// missing keys), checked once, then turned into the rule.
pub trait RuleParams: DeserializeOwned + Serialize + Default {
    /// Checks the values that do not depend on the number of updates (those are checked by
    /// the rule when it aggregates); nothing to check by default.
    fn validate(&self) -> Result<()> {
        Ok(())
    }
    /// The rule, ready for its first round (a copy of the parameters for a rule that is its
    /// own parameter struct; a rule with state builds that state here).
    fn build(&self) -> Box<dyn Aggregator>;
}

/// One entry of the registry: a rule's name and how its section becomes the rule.
pub struct Rule {
    /// The name in configs (`aggregator = "..."`, `[defense.<name>]`).
    pub name: &'static str,
    /// What the rule does, in a line.
    pub about: &'static str,
    check: fn(&toml::Table) -> Result<toml::Table>,
    build: fn(&toml::Table) -> Result<Box<dyn Aggregator>>,
}

impl Rule {
    /// The entry of rule `name`, whose parameters are `P`.
    pub const fn of<P: RuleParams>(name: &'static str, about: &'static str) -> Self {
        Self {
            name,
            about,
            check: check_section::<P>,
            build: build_rule::<P>,
        }
    }
}

fn params<P: RuleParams>(section: &toml::Table) -> Result<P> {
    let p: P = toml::Value::Table(section.clone())
        .try_into()
        .map_err(|e| CoreError::Config(e.to_string()))?;
    p.validate()?;
    Ok(p)
}

/// The section with every default filled in, as a resolved config shows it.
fn check_section<P: RuleParams>(section: &toml::Table) -> Result<toml::Table> {
    let p: P = params(section)?;
    match toml::Value::try_from(&p) {
        Ok(toml::Value::Table(t)) => Ok(t),
        Ok(_) => Ok(toml::Table::new()),
        Err(e) => Err(CoreError::Config(e.to_string())),
    }
}

fn build_rule<P: RuleParams>(section: &toml::Table) -> Result<Box<dyn Aggregator>> {
    Ok(params::<P>(section)?.build())
}

/// Every server rule, by the name configs and the command line use.
pub const RULES: &[Rule] = &[
    Rule::of::<FedAvgParams>("fedavg", "mean weighted by sample count (McMahan et al.)"),
    Rule::of::<MeanParams>(
        "mean",
        "plain mean, every client alike (the FedPoisonMIA authors' rule without defense)",
    ),
    Rule::of::<Median>("median", "coordinate-wise median"),
    Rule::of::<TrimmedMean>(
        "trimmed-mean",
        "coordinate-wise mean without the beta extremes",
    ),
    Rule::of::<Krum>("krum", "the update closest to its n - f - 2 neighbours"),
    Rule::of::<MultiKrum>("multi-krum", "the mean of the m best Krum scores"),
    Rule::of::<Atm>(
        "atm",
        "angular trimmed mean (the FedPoisonMIA paper's defense)",
    ),
    Rule::of::<AngleMedian>(
        "angle-median",
        "the update of smallest mean angle to all (the FedPoisonMIA authors' angle-median)",
    ),
    Rule::of::<NormClip>("clip", "updates clipped to a norm bound, then FedAvg"),
    Rule::of::<GaussianDp>("dp", "clipped mean plus Gaussian noise (DP-FedAvg style)"),
    Rule::of::<GeoMed>("geomed", "geometric median, smoothed Weiszfeld (RFA)"),
    Rule::of::<Dnc>(
        "dnc",
        "updates far along the top singular direction of random coordinates dropped (DnC)",
    ),
    Rule::of::<FangDefense>(
        "fang-lrr-err",
        "updates whose removal most lowers the validation loss or error rejected (Fang et al.)",
    ),
    Rule::of::<FlTrust>(
        "fltrust",
        "updates weighted by their cosine with the server's update on its root set (FLTrust)",
    ),
    Rule::of::<FoolsGoldParams>(
        "foolsgold",
        "clients whose summed updates point alike down-weighted (FoolsGold)",
    ),
    Rule::of::<Bulyan>(
        "bulyan",
        "n - 2f picked by Krum, then per coordinate the mean of the n - 4f nearest the median",
    ),
    Rule::of::<CenteredClipParams>(
        "centered-clip",
        "centered clipping around the last aggregate (Karimireddy et al.)",
    ),
    Rule::of::<DeepSightLite>(
        "deepsight-lite",
        "two-means on distance to the mean and norm, larger group clipped (the FedPoisonMIA \
         authors' DeepSight)",
    ),
    Rule::of::<RflbatLite>(
        "rflbat-lite",
        "distance filters and two-means on two principal components (the FedPoisonMIA \
         authors' RFLBAT)",
    ),
    Rule::of::<SignGuard>(
        "signguard",
        "norm filter and mean-shift on sign statistics, clipped to the median norm (SignGuard)",
    ),
    Rule::of::<Flame>(
        "flame",
        "largest HDBSCAN cluster of cosine distances, clipped to the median norm, plus noise (FLAME)",
    ),
];

/// One entry of the registry of pre-aggregation steps (composed with a rule by name:
/// `"nnm+krum"`).
pub struct Pre {
    /// The name in configs (`aggregator = "<name>+<rule>"`, `[defense.<name>]`).
    pub name: &'static str,
    /// What the step does, in a line.
    pub about: &'static str,
    check: fn(&toml::Table) -> Result<toml::Table>,
    build: fn(&toml::Table) -> Result<Box<dyn crate::mix::PreAggregator>>,
}

impl Pre {
    /// The entry of step `name`, whose parameters are `P`.
    pub const fn of<P: PreParams>(name: &'static str, about: &'static str) -> Self {
        Self {
            name,
            about,
            check: check_pre::<P>,
            build: build_pre::<P>,
        }
    }
}

fn pre_params<P: PreParams>(section: &toml::Table) -> Result<P> {
    let p: P = toml::Value::Table(section.clone())
        .try_into()
        .map_err(|e| CoreError::Config(e.to_string()))?;
    p.validate()?;
    Ok(p)
}

fn check_pre<P: PreParams>(section: &toml::Table) -> Result<toml::Table> {
    let p: P = pre_params(section)?;
    match toml::Value::try_from(&p) {
        Ok(toml::Value::Table(t)) => Ok(t),
        Ok(_) => Ok(toml::Table::new()),
        Err(e) => Err(CoreError::Config(e.to_string())),
    }
}

fn build_pre<P: PreParams>(section: &toml::Table) -> Result<Box<dyn crate::mix::PreAggregator>> {
    Ok(pre_params::<P>(section)?.build())
}

/// Every pre-aggregation step, by name.
pub const PRE: &[Pre] = &[
    Pre::of::<Nnm>(
        "nnm",
        "each update the mean of its n - f nearest (Allouah et al.)",
    ),
    Pre::of::<Bucketing>(
        "bucketing",
        "random buckets of s updates, each averaged (Karimireddy et al.)",
    ),
];

/// The names of [`RULES`], in order.
pub fn names() -> Vec<&'static str> {
    RULES.iter().map(|r| r.name).collect()
}

/// `e` with the section it came from named (a configuration error keeps its one prefix).
fn in_section(name: &str, e: CoreError) -> CoreError {
    match e {
        CoreError::Config(m) => CoreError::Config(format!("in [defense.{name}]: {m}")),
        other => other,
    }
}

fn rule(name: &str) -> Result<&'static Rule> {
    RULES.iter().find(|r| r.name == name).ok_or_else(|| {
        CoreError::Config(format!(
            "unknown aggregator `{name}` (known: {}; pre-aggregation steps, written before a \
             rule with `+`: {})",
            names().join(", "),
            pre_names().join(", ")
        ))
    })
}

fn pre(name: &str) -> Result<&'static Pre> {
    PRE.iter().find(|p| p.name == name).ok_or_else(|| {
        CoreError::Config(format!(
            "unknown pre-aggregation step `{name}` (known: {})",
            pre_names().join(", ")
        ))
    })
}

/// The names of [`PRE`], in order.
pub fn pre_names() -> Vec<&'static str> {
    PRE.iter().map(|p| p.name).collect()
}

/// `"nnm+bucketing+krum"` as its steps and its rule.
fn parts(name: &str) -> Result<(Vec<&'static Pre>, &'static Rule)> {
    let mut names: Vec<&str> = name.split('+').map(str::trim).collect();
    let last = names.pop().expect("split gives at least one part");
    if PRE.iter().any(|p| p.name == last) {
        return Err(CoreError::Config(format!(
            "`{last}` is a pre-aggregation step: write it before a rule, e.g. `{last}+median`"
        )));
    }
    let rule = rule(last)?;
    let steps = names.into_iter().map(pre).collect::<Result<Vec<_>>>()?;
    Ok((steps, rule))
}

/// The checker of section `name`: a rule's or a step's.
fn checker(name: &str) -> Result<fn(&toml::Table) -> Result<toml::Table>> {
    match (
        RULES.iter().find(|r| r.name == name),
        PRE.iter().find(|p| p.name == name),
    ) {
        (Some(r), _) => Ok(r.check),
        (None, Some(p)) => Ok(p.check),
        (None, None) => rule(name).map(|r| r.check),
    }
}

/// FedAvg has no parameters.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FedAvgParams {}

impl RuleParams for FedAvgParams {
    fn build(&self) -> Box<dyn Aggregator> {
        Box::new(FedAvg)
    }
}

/// The plain mean has no parameters.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeanParams {}

impl RuleParams for MeanParams {
    fn build(&self) -> Box<dyn Aggregator> {
        Box::new(fl_core::Mean)
    }
}

/// The `[defense]` section: a table of parameters per rule, each checked by its rule.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DefenseConfig {
    sections: BTreeMap<String, toml::Table>,
}

impl DefenseConfig {
    /// Reads `[defense]`: every `[defense.<rule>]` must name a known rule and hold valid
    /// parameters for it (missing ones take the rule's defaults).
    pub fn from_table(table: toml::Table) -> Result<Self> {
        let mut sections = BTreeMap::new();
        for (name, value) in table {
            let toml::Value::Table(section) = value else {
                return Err(CoreError::Config(format!(
                    "defense.{name} must be a section ([defense.{name}]) of rule parameters"
                )));
            };
            let checked = checker(&name)?(&section).map_err(|e| in_section(&name, e))?;
            sections.insert(name, checked);
        }
        Ok(Self { sections })
    }

    /// The rule `name` with its parameters from `[defense.<name>]` (its defaults without one);
    /// `"<step>+...+<rule>"` puts pre-aggregation steps before the rule.
    pub fn build(&self, name: &str) -> Result<Box<dyn Aggregator>> {
        let (steps, last) = parts(name)?;
        let empty = toml::Table::new();
        let section = |n: &str| self.sections.get(n).unwrap_or(&empty);
        let rule = (last.build)(section(last.name)).map_err(|e| in_section(last.name, e))?;
        if steps.is_empty() {
            return Ok(rule);
        }
        let steps = steps
            .iter()
            .map(|p| (p.build)(section(p.name)).map_err(|e| in_section(p.name, e)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Box::new(Composed { steps, rule }))
    }

    /// The section as the resolved config of a run with rule `name` shows it: that rule's
    /// parameters (defaults filled in), or nothing for FedAvg, so FedAvg configs and their
    /// hashes do not depend on other rules' sections.
    pub fn shown_for(&self, name: &str) -> Result<Option<Self>> {
        if name == "fedavg" {
            return Ok(None);
        }
        let (steps, last) = parts(name)?;
        let empty = toml::Table::new();
        let mut sections = BTreeMap::new();
        let shown = steps
            .iter()
            .map(|p| (p.name, p.check))
            .chain((last.name != "fedavg").then_some((last.name, last.check)));
        for (n, check) in shown {
            sections.insert(
                n.to_string(),
                check(self.sections.get(n).unwrap_or(&empty))?,
            );
        }
        Ok(Some(Self { sections }))
    }

    /// Sets `[defense.<rule>] key = value` (e.g. a benchmark's f for Krum), checked.
    pub fn set(&mut self, rule_name: &str, key: &str, value: toml::Value) -> Result<()> {
        let mut section = self.sections.get(rule_name).cloned().unwrap_or_default();
        section.insert(key.to_string(), value);
        let checked = checker(rule_name)?(&section).map_err(|e| in_section(rule_name, e))?;
        self.sections.insert(rule_name.to_string(), checked);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> Result<DefenseConfig> {
        DefenseConfig::from_table(text.parse::<toml::Table>().unwrap())
    }

    fn err(text: &str) -> String {
        section(text).unwrap_err().to_string()
    }

    #[test]
    fn every_rule_builds_with_its_defaults_and_names_are_unique() {
        let d = DefenseConfig::default();
        for r in RULES {
            d.build(r.name).unwrap();
        }
        let mut n = names();
        n.dedup();
        assert_eq!(n.len(), RULES.len());
    }

    #[test]
    fn one_error_per_invalid_value() {
        assert!(err("[trimmed-mean]\nbeta = 0.5").contains("beta must be in [0, 0.5)"));
        assert!(err("[multi-krum]\nm = 0").contains("m must be at least 1"));
        assert!(err("[clip]\nbound = 0.0").contains("bound must be positive"));
        assert!(err("[dp]\nclip = nan").contains("clip must be positive"));
        assert!(err("[dp]\nsigma = -1.0").contains("sigma must be >= 0"));
    }

    #[test]
    fn unknown_rules_keys_and_shapes_are_named() {
        assert!(err("[krumm]\nf = 1").contains("unknown aggregator `krumm`"));
        let e = err("[atm]\nbb = 1");
        assert!(e.contains("[defense.atm]") && e.contains("bb"), "{e}");
        assert!(err("atm = 2").contains("must be a section"));
        let e = DefenseConfig::default()
            .build("krumm")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("multi-krum"), "{e}");
    }

    #[test]
    fn pre_aggregation_composes_with_any_rule_by_name() {
        use crate::check::testing::{round, ups};
        let d = section("[nnm]\nf = 1").unwrap();
        // 0, 1, 10 mixed with f = 1: 0.5, 0.5, 5.5; their median 0.5. Median keeps every
        // vector, so every client is reported kept.
        let a = d
            .build("nnm+median")
            .unwrap()
            .aggregate(&round(), &ups(&[&[0.0], &[1.0], &[10.0]]))
            .unwrap();
        assert_eq!((a.delta, a.kept), (vec![0.5], vec![0, 1, 2]));
        // Krum (f = 0, 2 neighbours) after mixing 0, 1, 2, 50: the vectors of 0, 1, 2 are all
        // 1 (each their 3 nearest), 50's is 17.7; Krum keeps the first, made from clients 0-2.
        let d = section("[krum]\nf = 0").unwrap();
        let a = d
            .build("nnm+krum")
            .unwrap()
            .aggregate(&round(), &ups(&[&[0.0], &[1.0], &[2.0], &[50.0]]))
            .unwrap();
        assert_eq!((a.delta, a.kept), (vec![1.0], vec![0, 1, 2]));
        // A written config shows the step's section beside the rule's, defaults filled in.
        let shown = toml::to_string(&d.shown_for("bucketing+krum").unwrap().unwrap()).unwrap();
        assert!(
            shown.contains("[bucketing]\ns = 2") && shown.contains("[krum]\nf = 0"),
            "{shown}"
        );
        let shown = toml::to_string(&d.shown_for("nnm+fedavg").unwrap().unwrap()).unwrap();
        assert_eq!(shown.trim(), "[nnm]\nf = 1");
        let e = |name: &str| {
            DefenseConfig::default()
                .build(name)
                .err()
                .unwrap()
                .to_string()
        };
        assert!(e("nnn+median").contains("unknown pre-aggregation step `nnn`"));
        assert!(e("median+krum").contains("unknown pre-aggregation step `median`"));
        assert!(e("median+nnm").contains("write it before a rule, e.g. `nnm+median`"));
        assert!(err("[bucketing]\ns = 0").contains("s must be at least 1"));
    }

    #[test]
    fn clip_bound_reads_a_number_or_median() {
        let shown = |text: &str| {
            section(text).map(|d| toml::to_string(&d.shown_for("clip").unwrap().unwrap()).unwrap())
        };
        assert!(
            shown("[clip]\nbound = 0.25")
                .unwrap()
                .contains("bound = 0.25")
        );
        assert!(shown("[clip]\nbound = 2").unwrap().contains("bound = 2.0"));
        assert!(shown("").unwrap().contains("bound = \"median\""));
        let e = err("[clip]\nbound = \"mean\"");
        assert!(e.contains("a positive number or \"median\""), "{e}");
    }

    #[test]
    fn a_run_shows_only_its_own_rules_section_with_defaults() {
        let d = section("[atm]\nb = 1\n[krum]\nf = 2").unwrap();
        assert_eq!(d.shown_for("fedavg").unwrap(), None);
        let atm = toml::to_string(&d.shown_for("atm").unwrap().unwrap()).unwrap();
        assert_eq!(atm.trim(), "[atm]\nb = 1");
        let tm = toml::to_string(&d.shown_for("trimmed-mean").unwrap().unwrap()).unwrap();
        assert_eq!(tm.trim(), "[trimmed-mean]\nbeta = 0.1");
    }
}
