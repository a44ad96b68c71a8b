//! What every rule file shares: parameter checks with the messages configs show, and, for
//! tests, updates made from plain vectors.

use fl_core::Update;
use fl_core::error::{CoreError, Result};
use fl_core::update::check_updates;

/// The updates, checked (non-empty, one length, finite), ordered by client id: every rule
/// reads them in this order, so that its result does not depend on the order of arrival.
pub(crate) fn by_client(updates: &[Update]) -> Result<Vec<&Update>> {
    check_updates(updates)?;
    let mut v: Vec<&Update> = updates.iter().collect();
    v.sort_by_key(|u| u.client);
    Ok(v)
}

/// The server's own data of `round`, which `rule` needs for what `need` says; without it, an
/// error saying which config key gives it.
pub(crate) fn server_data<'a>(
    round: &fl_core::ServerRound<'a>,
    rule: &str,
    need: &str,
) -> Result<fl_core::ServerData<'a>> {
    round.server.ok_or_else(|| {
        CoreError::Aggregation(format!("{rule} {need}: set server_samples (e.g. 100)"))
    })
}

/// `delta` (of L2 norm `norm`) scaled down to norm `bound` when longer, by a factor rounded
/// to f32 once.
pub(crate) fn clip_to(delta: &[f32], norm: f64, bound: f64) -> Vec<f32> {
    let s = if norm > bound {
        (bound / norm) as f32
    } else {
        1.0
    };
    delta.iter().map(|x| x * s).collect()
}

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
