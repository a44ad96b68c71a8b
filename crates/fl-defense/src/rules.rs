//! The rules. Each sorts the updates by client id first, so the result never depends on the
//! order they arrive in and ties are broken by the lower client id.

use crate::config::{AdaptiveBound, ClipBound};
use fl_core::error::{CoreError, Result};
use fl_core::geometry::{angle_from, dot, norm, pairwise, pairwise_indices, sq_distance};
use fl_core::update::{check_updates, weighted_mean};
use fl_core::{Aggregate, Aggregator, ServerRound, Update};
use fl_data::rng::stream;
use rand_distr::{Distribution, Normal};

/// The updates ordered by client id.
fn by_client(updates: &[Update]) -> Result<Vec<&Update>> {
    check_updates(updates)?;
    let mut v: Vec<&Update> = updates.iter().collect();
    v.sort_by_key(|u| u.client);
    Ok(v)
}

fn clients(v: &[&Update]) -> Vec<usize> {
    v.iter().map(|u| u.client).collect()
}

fn refuse(rule: &str, why: String) -> CoreError {
    CoreError::Aggregation(format!("{rule}: {why}"))
}

/// Applies `f` to the n values of every coordinate (in client order) and collects the results.
fn per_coordinate(v: &[&Update], mut f: impl FnMut(&mut [f32]) -> f32) -> Vec<f32> {
    let len = v[0].delta.len();
    let mut column = vec![0.0f32; v.len()];
    (0..len)
        .map(|i| {
            for (c, u) in column.iter_mut().zip(v) {
                *c = u.delta[i];
            }
            f(&mut column)
        })
        .collect()
}

/// Coordinate-wise median (the mean of the two middle values for even n). No client is
/// dropped as a whole: all are reported as kept.
#[derive(Debug, Clone, Copy, Default)]
pub struct Median;

impl Aggregator for Median {
    fn name(&self) -> &str {
        "median"
    }

    fn aggregate(&mut self, _: &ServerRound<'_>, updates: &[Update]) -> Result<Aggregate> {
        let v = by_client(updates)?;
        let n = v.len();
        let delta = per_coordinate(&v, |c| {
            c.sort_unstable_by(f32::total_cmp);
            if n % 2 == 1 {
                c[n / 2]
            } else {
                ((c[n / 2 - 1] as f64 + c[n / 2] as f64) / 2.0) as f32
            }
        });
        Ok(Aggregate::new(delta, clients(&v)))
    }
}

/// Coordinate-wise trimmed mean: the floor(beta n) largest and smallest values of every
/// coordinate are dropped, the rest averaged. All clients are reported as kept.
#[derive(Debug, Clone, Copy)]
pub struct TrimmedMean {
    /// Share trimmed at each end, in [0, 0.5).
    pub beta: f64,
}

impl Aggregator for TrimmedMean {
    fn name(&self) -> &str {
        "trimmed-mean"
    }

    fn aggregate(&mut self, _: &ServerRound<'_>, updates: &[Update]) -> Result<Aggregate> {
        let v = by_client(updates)?;
        let n = v.len();
        let k = (self.beta * n as f64).floor() as usize;
        if 2 * k >= n {
            return Err(refuse(
                "trimmed mean",
                format!("trimming {k} values per side leaves none of {n}"),
            ));
        }
        let delta = per_coordinate(&v, |c| {
            c.sort_unstable_by(f32::total_cmp);
            let kept = &c[k..n - k];
            (kept.iter().map(|&x| x as f64).sum::<f64>() / kept.len() as f64) as f32
        });
        Ok(Aggregate::new(delta, clients(&v)))
    }
}

/// Krum scores: for each update, the sum of squared distances to its n - f - 2 nearest others.
fn krum_scores(v: &[&Update], f: usize, rule: &str) -> Result<Vec<f64>> {
    let n = v.len();
    if n <= 2 * f + 2 {
        return Err(refuse(
            rule,
            format!("needs more than 2f + 2 = {} updates, got {n}", 2 * f + 2),
        ));
    }
    let deltas: Vec<&[f32]> = v.iter().map(|u| u.delta.as_slice()).collect();
    let d = pairwise(&deltas, sq_distance);
    Ok((0..n)
        .map(|i| {
            let mut others: Vec<f64> = (0..n).filter(|&j| j != i).map(|j| d[i][j]).collect();
            others.sort_by(f64::total_cmp);
            others[..n - f - 2].iter().sum()
        })
        .collect())
}

/// The indices of `scores` from smallest to largest (ties: lower index first).
fn ascending(scores: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    idx
}

/// The updates `v[i]` for `i` in `keep`, averaged with FedAvg's weights; kept in client order.
fn mean_of(v: &[&Update], keep: &[usize]) -> Result<Aggregate> {
    let mut keep = keep.to_vec();
    keep.sort_unstable();
    let chosen: Vec<&Update> = keep.iter().map(|&i| v[i]).collect();
    Ok(Aggregate::new(weighted_mean(&chosen)?, clients(&chosen)))
}

/// Krum (Blanchard et al., 2017): the single update with the smallest Krum score, assuming at
/// most `f` attackers; needs n > 2f + 2.
#[derive(Debug, Clone, Copy)]
pub struct Krum {
    /// Attackers assumed.
    pub f: usize,
}

impl Aggregator for Krum {
    fn name(&self) -> &str {
        "krum"
    }

    fn aggregate(&mut self, _: &ServerRound<'_>, updates: &[Update]) -> Result<Aggregate> {
        let v = by_client(updates)?;
        let best = ascending(&krum_scores(&v, self.f, "krum")?)[0];
        Ok(Aggregate::new(v[best].delta.clone(), vec![v[best].client]))
    }
}

/// Multi-Krum: the `m` updates with the smallest Krum scores (default n - f), averaged with
/// FedAvg's sample-count weights.
#[derive(Debug, Clone, Copy)]
pub struct MultiKrum {
    /// Attackers assumed.
    pub f: usize,
    /// Updates kept (default n - f).
    pub m: Option<usize>,
}

impl Aggregator for MultiKrum {
    fn name(&self) -> &str {
        "multi-krum"
    }

    fn aggregate(&mut self, _: &ServerRound<'_>, updates: &[Update]) -> Result<Aggregate> {
        let v = by_client(updates)?;
        let scores = krum_scores(&v, self.f, "multi-krum")?;
        let m = self.m.unwrap_or(v.len() - self.f);
        if m == 0 || m > v.len() {
            return Err(refuse(
                "multi-krum",
                format!("cannot keep m = {m} of {} updates", v.len()),
            ));
        }
        mean_of(&v, &ascending(&scores)[..m])
    }
}

/// Angular Trimmed Mean (the FedPoisonMIA paper's defense): each update's mean angle to all
/// updates (its zero angle to itself included); the 2b with the largest mean angle are
/// dropped, the rest averaged with FedAvg's weights. Needs n > 2b.
#[derive(Debug, Clone, Copy)]
pub struct Atm {
    /// Half the number of updates dropped.
    pub b: usize,
}

impl Atm {
    /// Each update's mean angle (radians) to all updates, in client order.
    pub fn mean_angles(v: &[&Update]) -> Vec<f64> {
        // Norms once per update, not once per pair: a pair then costs one dot product.
        let norms: Vec<f64> = v.iter().map(|u| norm(&u.delta)).collect();
        let a = pairwise_indices(v.len(), |i, j| {
            angle_from(dot(&v[i].delta, &v[j].delta), norms[i], norms[j])
        });
        a.iter()
            .map(|row| row.iter().sum::<f64>() / row.len() as f64)
            .collect()
    }
}

impl Aggregator for Atm {
    fn name(&self) -> &str {
        "atm"
    }

    fn aggregate(&mut self, _: &ServerRound<'_>, updates: &[Update]) -> Result<Aggregate> {
        let v = by_client(updates)?;
        let n = v.len();
        if n <= 2 * self.b {
            return Err(refuse(
                "atm",
                format!("dropping 2b = {} updates leaves none of {n}", 2 * self.b),
            ));
        }
        mean_of(&v, &ascending(&Self::mean_angles(&v))[..n - 2 * self.b])
    }
}

/// How many of the updates have an L2 norm above `bound` (those clipping scales down).
fn count_above(v: &[&Update], bound: f64) -> usize {
    v.iter().filter(|u| norm(&u.delta) > bound).count()
}

/// `delta` scaled down to L2 norm at most `bound`.
fn clipped(delta: &[f32], bound: f64) -> Vec<f32> {
    let n = norm(delta);
    if n <= bound {
        return delta.to_vec();
    }
    let s = bound / n;
    delta.iter().map(|&x| (x as f64 * s) as f32).collect()
}

/// Norm clipping: every update scaled to L2 norm at most `bound` (fixed, or the median norm
/// of the round's updates), then FedAvg. All kept.
#[derive(Debug, Clone, Copy)]
pub struct NormClip {
    /// The largest norm an update keeps.
    pub bound: ClipBound,
}

impl NormClip {
    /// The bound for this round's updates.
    fn bound_for(&self, v: &[&Update]) -> f64 {
        match self.bound {
            ClipBound::Norm(b) => b,
            ClipBound::Adaptive(AdaptiveBound::Median) => {
                let mut norms: Vec<f64> = v.iter().map(|u| norm(&u.delta)).collect();
                norms.sort_by(f64::total_cmp);
                let m = norms.len();
                if m % 2 == 1 {
                    norms[m / 2]
                } else {
                    (norms[m / 2 - 1] + norms[m / 2]) / 2.0
                }
            }
        }
    }
}

impl Aggregator for NormClip {
    fn name(&self) -> &str {
        "clip"
    }

    fn aggregate(&mut self, _: &ServerRound<'_>, updates: &[Update]) -> Result<Aggregate> {
        let v = by_client(updates)?;
        let bound = self.bound_for(&v);
        let c: Vec<Update> = v
            .iter()
            .map(|u| Update {
                delta: clipped(&u.delta, bound),
                ..(*u).clone()
            })
            .collect();
        let mean = weighted_mean(&c.iter().collect::<Vec<_>>())?;
        Ok(Aggregate::new(mean, clients(&v))
            .with_metric("clip_bound", bound)
            .with_metric("clipped", count_above(&v, bound) as f64))
    }
}

/// Gaussian noise for differential privacy (DP-FedAvg style): every update clipped to norm
/// `clip`, the plain mean taken (each client's influence bounded by clip / n), and
/// N(0, (sigma clip / n)^2) added to every coordinate, drawn from
/// `stream(seed, "dp-noise", [round])`. All kept.
#[derive(Debug, Clone, Copy)]
pub struct GaussianDp {
    /// Clipping norm C.
    pub clip: f64,
    /// Noise multiplier sigma.
    pub sigma: f64,
}

impl Aggregator for GaussianDp {
    fn name(&self) -> &str {
        "dp"
    }

    fn aggregate(&mut self, round: &ServerRound<'_>, updates: &[Update]) -> Result<Aggregate> {
        let v = by_client(updates)?;
        let n = v.len() as f64;
        let mut acc = vec![0.0f64; v[0].delta.len()];
        for u in &v {
            for (a, x) in acc.iter_mut().zip(clipped(&u.delta, self.clip)) {
                *a += x as f64 / n;
            }
        }
        let std = self.sigma * self.clip / n;
        if std > 0.0 {
            let normal = Normal::new(0.0, std).map_err(|e| refuse("dp", e.to_string()))?;
            let mut rng = stream(round.seed, "dp-noise", &[round.round as u64]);
            for a in acc.iter_mut() {
                *a += normal.sample(&mut rng);
            }
        }
        let step = acc.into_iter().map(|x| x as f32).collect();
        Ok(Aggregate::new(step, clients(&v))
            .with_metric("noise_std", std)
            .with_metric("clipped", count_above(&v, self.clip) as f64))
    }
}
