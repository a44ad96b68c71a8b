//! Inner-product manipulation (Xie, Koyejo and Gupta, "Fall of empires: breaking Byzantine-
//! tolerant SGD by inner product manipulation", UAI 2020; as ByzFL's
//! `InnerProductManipulation`): `-tau x mean(benign)`, so that the aggregate's inner product
//! with the true direction turns negative while the malicious vector stays short for small tau.

use super::{Craft, CraftContext, check_benign, mean};
use fl_core::error::{CoreError, Result};
use serde::{Deserialize, Serialize};

/// The `[attack.ipm]` section.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ipm {
    /// The factor on the negated mean (default 2.0, ByzFL's; Xie et al. use 0.1 against
    /// Krum-like rules and 100 against the mean).
    pub tau: f64,
}

impl Default for Ipm {
    fn default() -> Self {
        Self { tau: 2.0 }
    }
}

impl Ipm {
    /// Refuses a factor that is not finite and positive.
    pub fn validate(&self) -> Result<()> {
        if !(self.tau.is_finite() && self.tau > 0.0) {
            return Err(CoreError::Config(format!(
                "attack.ipm.tau must be positive, got {}",
                self.tau
            )));
        }
        Ok(())
    }
}

impl Craft for Ipm {
    fn craft(&mut self, benign: &[&[f32]], _: CraftContext<'_>) -> Result<Vec<f32>> {
        check_benign("inner-product manipulation", benign)?;
        let t = self.tau as f32;
        Ok(mean(benign).into_iter().map(|x| -t * x).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::{ctx, refs, three};

    #[test]
    fn tau_times_the_negated_mean() {
        let v = three();
        let mut a = Ipm { tau: 0.5 };
        assert_eq!(a.craft(&refs(&v), ctx()).unwrap(), [-2., -2.5, -3.]);
        assert!(Ipm { tau: 0.0 }.validate().is_err());
        assert!(Ipm { tau: f64::NAN }.validate().is_err());
    }
}
