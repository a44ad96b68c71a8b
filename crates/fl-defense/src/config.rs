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
    /// Norm clipping: the largest L2 norm an update keeps.
    pub clip_bound: f64,
    /// DP: the L2 norm each update is clipped to, C.
    pub dp_clip: f64,
    /// DP: the noise multiplier; the mean gets N(0, (sigma C / n)^2) per coordinate.
    pub dp_sigma: f64,
}

impl Default for DefenseConfig {
    fn default() -> Self {
        Self {
            trim_beta: 0.1,
            krum_f: 1,
            multi_krum_m: None,
            atm_b: 2,
            clip_bound: 1.0,
            dp_clip: 1.0,
            dp_sigma: 1.0,
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
        for (name, v) in [
            ("defense.clip_bound", self.clip_bound),
            ("defense.dp_clip", self.dp_clip),
        ] {
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
        assert!(err(|c| c.clip_bound = 0.0).contains("clip_bound"));
        assert!(err(|c| c.dp_clip = f64::NAN).contains("dp_clip"));
        assert!(err(|c| c.dp_sigma = -1.0).contains("dp_sigma"));
    }
}
