//! What every rule file shares: parameter checks with the messages configs show, and, for
//! tests, updates made from plain vectors.

use fl_core::error::{CoreError, Result};

/// `value` must be a positive finite number.
pub(crate) fn positive(name: &str, value: f64) -> Result<()> {
    if value > 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(CoreError::Config(format!(
            "{name} must be positive, got {value}"
        )))
    }
}

/// `value` must be at least 1; `zero_means` says what 0 would do.
pub(crate) fn at_least_one(name: &str, value: usize, zero_means: &str) -> Result<()> {
    if value >= 1 {
        Ok(())
    } else {
        Err(CoreError::Config(format!(
            "{name} must be at least 1 (0 would {zero_means})"
        )))
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use fl_core::{ServerRound, Update};

    /// One update per point, clients 0, 1, ... with 10 samples each.
    pub(crate) fn ups(points: &[&[f32]]) -> Vec<Update> {
        points
            .iter()
            .enumerate()
            .map(|(k, p)| Update {
                client: k,
                delta: p.to_vec(),
                num_samples: 10,
                train_loss: 0.0,
            })
            .collect()
    }

    /// Round 1 of seed 0.
    pub(crate) fn round() -> ServerRound<'static> {
        ServerRound {
            round: 1,
            seed: 0,
            global: &[],
            server: None,
        }
    }
}
