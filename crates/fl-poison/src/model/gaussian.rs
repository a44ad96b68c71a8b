//! Gaussian noise (the random-update baseline of Blanchard et al., 2017; as ByzFL's
//! `Gaussian`): every coordinate drawn from N(mu, sigma^2), from
//! `stream(seed, "gaussian-attack", [round])`, so one vector per round for all malicious
//! clients.

use super::{Craft, CraftContext, check_benign};
use fl_core::error::{CoreError, Result};
use fl_data::rng::stream;
use rand::RngExt;
use rand_distr::Normal;
use serde::{Deserialize, Serialize};

/// The `[attack.gaussian]` section.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Gaussian {
    /// Mean of every coordinate (default 0).
    pub mu: f64,
    /// Standard deviation of every coordinate (default 1.0, ByzFL's).
    pub sigma: f64,
}

impl Default for Gaussian {
    fn default() -> Self {
        Self {
            mu: 0.0,
            sigma: 1.0,
        }
    }
}

impl Gaussian {
    /// Refuses a non-finite mean or a negative or non-finite deviation.
    pub fn validate(&self) -> Result<()> {
        if !(self.mu.is_finite() && self.sigma.is_finite() && self.sigma >= 0.0) {
            return Err(CoreError::Config(format!(
                "attack.gaussian needs a finite mu and sigma >= 0, got mu {} sigma {}",
                self.mu, self.sigma
            )));
        }
        Ok(())
    }
}

impl Craft for Gaussian {
    fn craft(&mut self, benign: &[&[f32]], ctx: CraftContext<'_>) -> Result<Vec<f32>> {
        check_benign("gaussian noise", benign)?;
        let normal = Normal::new(self.mu, self.sigma)
            .map_err(|e| CoreError::Config(format!("attack.gaussian: {e}")))?;
        let mut rng = stream(ctx.seed, "gaussian-attack", &[ctx.round as u64]);
        Ok((0..benign[0].len())
            .map(|_| rng.sample(normal) as f32)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::{ctx, refs};

    #[test]
    fn seeded_noise_of_the_asked_moments() {
        let v = vec![vec![0.0f32; 20000], vec![1.0f32; 20000]];
        let mut g = Gaussian {
            mu: 2.0,
            sigma: 0.5,
        };
        let a = g.craft(&refs(&v), ctx()).unwrap();
        assert_eq!(
            a,
            g.craft(&refs(&v), ctx()).unwrap(),
            "same round, same noise"
        );
        let next = CraftContext { round: 2, ..ctx() };
        assert_ne!(a, g.craft(&refs(&v), next).unwrap());
        let m = a.iter().map(|&x| x as f64).sum::<f64>() / a.len() as f64;
        let s = (a.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / a.len() as f64).sqrt();
        // 20000 draws: the mean within 4 standard errors (0.5 / sqrt(20000) = 0.0035).
        assert!(
            (m - 2.0).abs() < 0.015 && (s - 0.5).abs() < 0.015,
            "{m} {s}"
        );
        assert!(
            Gaussian {
                mu: 0.0,
                sigma: -1.0
            }
            .validate()
            .is_err()
        );
    }
}
