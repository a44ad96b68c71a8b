//! The `[defense]` config section: the parameters of every rule.

use fl_core::error::{CoreError, Result};
use serde::{Deserialize, Serialize};

/// Parameters of the robust rules (unchecked; see [`DefenseConfig::validate`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DefenseConfig {
    /// Trimmed mean: share of values dropped at each end of every coordinate, in [0, 0.5).
    pub trim_beta: f64,
    /// Krum and Multi-Krum: the number of attackers assumed, f.
    pub krum_f: usize,
    /// Multi-Krum: updates averaged, m (default n - f).
    pub multi_krum_m: Option<usize>,
    /// ATM: 2b updates with the largest mean angle are dropped (the paper: b = 2 for 10 clients).
    pub atm_b: usize,
    /// Norm clipping: the largest L2 norm an update keeps, a number or `"median"` (the median
    /// norm of the round's updates, which follows the updates as training shrinks them).
    pub clip_bound: ClipBound,
    /// DP: the L2 norm each update is clipped to, C (fixed: a bound read off the updates
    /// would leak them). The default suits `cnn` updates on MNIST (norms ~0.3-0.6).
    pub dp_clip: f64,
    /// DP: the noise multiplier; the mean gets N(0, (sigma C / n)^2) per coordinate. The
    /// default 0.1 costs about a point of accuracy with 10 clients; a formal guarantee needs
    /// sigma near 1 or more, which with few clients drowns the updates (see the README).
    pub dp_sigma: f64,
}

/// How large an update norm clipping lets through.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged, expecting = "a positive number or \"median\"")]
pub enum ClipBound {
    /// A fixed L2 norm.
    Norm(f64),
    /// A bound read off each round's updates.
    Adaptive(AdaptiveBound),
}

/// Bounds read off a round's updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdaptiveBound {
    /// The median L2 norm of the round's updates.
    Median,
}

impl Default for DefenseConfig {
    fn default() -> Self {
        Self {
            trim_beta: 0.1,
            krum_f: 1,
            multi_krum_m: None,
            atm_b: 2,
            clip_bound: ClipBound::Adaptive(AdaptiveBound::Median),
            dp_clip: 0.5,
            dp_sigma: 0.1,
        }
    }
}

impl DefenseConfig {
    /// Checks the values that do not depend on the number of updates (those are checked by
    /// each rule when it aggregates).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(CoreError::Config(m));
        if !(0.0..0.5).contains(&self.trim_beta) {
            return bad(format!(
                "defense.trim_beta must be in [0, 0.5), got {}",
                self.trim_beta
            ));
        }
        if self.multi_krum_m == Some(0) {
            return bad("defense.multi_krum_m must be at least 1".into());
        }
        let mut positive = vec![("defense.dp_clip", self.dp_clip)];
        if let ClipBound::Norm(v) = self.clip_bound {
            positive.push(("defense.clip_bound", v));
        }
        for (name, v) in positive {
            if !(v > 0.0 && v.is_finite()) {
                return bad(format!("{name} must be positive, got {v}"));
            }
        }
        if !(self.dp_sigma >= 0.0 && self.dp_sigma.is_finite()) {
            return bad(format!(
                "defense.dp_sigma must be >= 0, got {}",
                self.dp_sigma
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(f: impl FnOnce(&mut DefenseConfig)) -> String {
        let mut c = DefenseConfig::default();
        f(&mut c);
        c.validate().unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_valid_and_bad_values_named() {
        DefenseConfig::default().validate().unwrap();
        assert!(err(|c| c.trim_beta = 0.5).contains("trim_beta"));
        assert!(err(|c| c.multi_krum_m = Some(0)).contains("multi_krum_m"));
        assert!(err(|c| c.clip_bound = ClipBound::Norm(0.0)).contains("clip_bound"));
        assert!(err(|c| c.dp_clip = f64::NAN).contains("dp_clip"));
        assert!(err(|c| c.dp_sigma = -1.0).contains("dp_sigma"));
    }

    #[test]
    fn clip_bound_reads_a_number_or_median() {
        let read = |text: &str| toml::from_str::<DefenseConfig>(text).map(|c| c.clip_bound);
        assert_eq!(read("clip_bound = 0.25").unwrap(), ClipBound::Norm(0.25));
        assert_eq!(read("clip_bound = 2").unwrap(), ClipBound::Norm(2.0));
        assert_eq!(
            read("clip_bound = \"median\"").unwrap(),
            ClipBound::Adaptive(AdaptiveBound::Median)
        );
        let e = read("clip_bound = \"mean\"").unwrap_err().to_string();
        assert!(e.contains("a positive number or \"median\""), "{e}");
        let shown = toml::to_string(&DefenseConfig::default()).unwrap();
        assert!(shown.contains("clip_bound = \"median\""), "{shown}");
    }
}
