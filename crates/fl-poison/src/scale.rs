//! The defense-aware choice of a scale (the approach of Fang et al. 2020 and Shejwalkar and
//! Houmansadr 2021: the largest strength the rule in force still lets through): the attacks
//! that multiply their update (model replacement, the GAN attack's boost) try the factors 1,
//! 2, 4, ... up to their largest against a copy of the server's rule fed the round's benign
//! updates, and keep the one whose aggregate moves farthest along their own mean update (ties
//! to the smaller factor).

use crate::model::{CraftContext, RuleCopy};
use fl_core::error::Result;
use fl_core::geometry::{dot, mean, norm};
use fl_core::{Aggregator, RoundContext};

/// The factors tried: 1, 2, 4, ... below `largest`, then `largest` (just 1 when it is 1 or
/// less).
pub fn doublings(largest: f64) -> Vec<f64> {
    let mut v = Vec::new();
    let mut s = 1.0;
    while s < largest {
        v.push(s);
        s *= 2.0;
    }
    v.push(largest.max(1.0));
    v.dedup();
    v
}

/// The factors tried from `smallest` (at most 1) to `largest`: 1/2, 1/4, ... above
/// `smallest`, then `smallest`, in increasing order, followed by [`doublings`]`(largest)`.
pub fn factors(smallest: f64, largest: f64) -> Vec<f64> {
    let mut below = Vec::new();
    let mut s = 0.5;
    while s > smallest {
        below.push(s);
        s /= 2.0;
    }
    if smallest < 1.0 {
        below.push(smallest);
    }
    below.reverse();
    below.extend(doublings(largest));
    below
}

/// The factor among `scales` whose aggregate, under `rule` (restored after every try) with
/// the benign updates of `ctx` and the malicious updates `mal` scaled by it, has the largest
/// projection on the mean of `mal`. Without benign updates to simulate: the largest factor.
pub fn pick_scale(
    rule: &mut dyn Aggregator,
    mal: &[&[f32]],
    scales: &[f64],
    ctx: &RoundContext<'_>,
) -> Result<f64> {
    let benign: Vec<&[f32]> = ctx
        .benign_updates
        .iter()
        .map(|u| u.delta.as_slice())
        .collect();
    let largest = scales.iter().copied().fold(1.0, f64::max);
    if benign.is_empty() || mal.is_empty() {
        return Ok(largest);
    }
    let direction = mean(mal);
    let len = norm(&direction).max(1e-12);
    let mut copy = RuleCopy::new(
        rule,
        &benign,
        CraftContext {
            round: ctx.round,
            seed: ctx.seed,
            global: ctx.global,
            malicious: mal.len(),
            client: 0,
            server: ctx.server_data(),
        },
    )?;
    let mut best: Option<(f64, f64)> = None;
    for &s in scales {
        let scaled: Vec<Vec<f32>> = mal
            .iter()
            .map(|d| d.iter().map(|v| v * s as f32).collect())
            .collect();
        let each: Vec<&[f32]> = scaled.iter().map(Vec::as_slice).collect();
        let along = dot(&copy.aggregate_each(&each)?.delta, &direction) / len;
        // A larger factor must gain more than rounding noise to be preferred.
        if best.is_none_or(|(b, _)| along > b + 1e-6 * b.abs().max(1e-12)) {
            best = Some((along, s));
        }
    }
    Ok(best.map_or(1.0, |b| b.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doublings_up_to_the_largest() {
        assert_eq!(doublings(1.0), [1.0]);
        assert_eq!(doublings(0.5), [1.0]);
        assert_eq!(doublings(5.0), [1.0, 2.0, 4.0, 5.0]);
        assert_eq!(doublings(8.0), [1.0, 2.0, 4.0, 8.0]);
    }

    #[test]
    fn factors_from_the_smallest_to_the_largest() {
        assert_eq!(factors(1.0, 4.0), [1.0, 2.0, 4.0]);
        assert_eq!(factors(0.25, 2.0), [0.25, 0.5, 1.0, 2.0]);
        assert_eq!(factors(0.2, 1.0), [0.2, 0.25, 0.5, 1.0]);
    }
}
