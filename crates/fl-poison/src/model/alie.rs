//! "A little is enough" (Baruch, Baruch and Goldberg, NeurIPS 2019; as ByzFL's
//! `ALittleIsEnough`): the benign mean moved by tau sample standard deviations in every
//! coordinate, small enough to hide among the benign spread. ByzFL adds the deviation; the
//! paper's sign is a choice of direction, and this follows ByzFL.

use super::{Craft, CraftContext, check_benign, mean, std};
use fl_core::error::{CoreError, Result};
use serde::{Deserialize, Serialize};

/// The `[attack.alie]` section.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Alie {
    /// Standard deviations added to the mean (default 1.5, ByzFL's; the paper derives its z
    /// from the number of clients, about 1 for 10 clients with 2 malicious).
    pub tau: f64,
}

impl Default for Alie {
    fn default() -> Self {
        Self { tau: 1.5 }
    }
}

impl Alie {
    /// Refuses a factor that is not finite.
    pub fn validate(&self) -> Result<()> {
        if !self.tau.is_finite() {
            return Err(CoreError::Config(format!(
                "attack.alie.tau must be finite, got {}",
                self.tau
            )));
        }
        Ok(())
    }
}

impl Craft for Alie {
    fn craft(&mut self, benign: &[&[f32]], _: CraftContext<'_>) -> Result<Vec<f32>> {
        check_benign("a little is enough", benign)?;
        let t = self.tau as f32;
        Ok(mean(benign)
            .into_iter()
            .zip(std(benign))
            .map(|(m, s)| m + t * s)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::{ctx, refs, three};

    #[test]
    fn mean_plus_tau_deviations() {
        let v = three();
        // Mean (4, 5, 6), std 3 everywhere: 4 + 1.5 x 3 = 8.5.
        let out = Alie::default().craft(&refs(&v), ctx()).unwrap();
        assert_eq!(out, [8.5, 9.5, 10.5]);
        assert!(Alie { tau: f64::INFINITY }.validate().is_err());
    }
}
