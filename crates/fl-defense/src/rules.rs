//! The rules. Each sorts the updates by client id first, so the result never depends on the
//! order they arrive in and ties are broken by the lower client id.

use crate::config::RuleParams;
use fl_core::error::{CoreError, Result};
use fl_core::geometry::{angle_from, dot, norm, pairwise, pairwise_indices, sq_distance};
use fl_core::update::weighted_mean;
use fl_core::{Aggregate, Aggregator, ServerRound, Update};
use fl_data::rng::stream;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::check::by_client;

fn clients(v: &[&Update]) -> Vec<usize> {
    v.iter().map(|u| u.client).collect()
}

fn invalid(why: String) -> CoreError {
    CoreError::Config(why)
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
/// dropped as a whole: all are reported as kept. No parameters.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Median {}

impl RuleParams for Median {
    fn build(&self) -> Box<dyn Aggregator> {
        Box::new(*self)
    }
}

impl Aggregator for Median {
    /// Keeps nothing across rounds.
    fn state(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
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
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrimmedMean {
    /// Share trimmed at each end, in [0, 0.5) (default 0.1).
    pub beta: f64,
}

impl Default for TrimmedMean {
    fn default() -> Self {
        Self { beta: 0.1 }
    }
}

impl RuleParams for TrimmedMean {
    fn validate(&self) -> Result<()> {
        if !(0.0..0.5).contains(&self.beta) {
            return Err(invalid(format!(
                "beta must be in [0, 0.5), got {}",
                self.beta
            )));
        }
        Ok(())
    }
    fn build(&self) -> Box<dyn Aggregator> {
        Box::new(*self)
    }
}

impl Aggregator for TrimmedMean {
    /// Keeps nothing across rounds.
    fn state(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
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
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Krum {
    /// Attackers assumed (default 1).
    pub f: usize,
}

impl Default for Krum {
    fn default() -> Self {
        Self { f: 1 }
    }
}

impl RuleParams for Krum {
    fn build(&self) -> Box<dyn Aggregator> {
        Box::new(*self)
    }
}

impl Aggregator for Krum {
    /// Keeps nothing across rounds.
    fn state(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
    }

    fn aggregate(&mut self, _: &ServerRound<'_>, updates: &[Update]) -> Result<Aggregate> {
        let v = by_client(updates)?;
        let best = ascending(&krum_scores(&v, self.f, "krum")?)[0];
        Ok(Aggregate::new(v[best].delta.clone(), vec![v[best].client]))
    }
}

/// Multi-Krum: the `m` updates with the smallest Krum scores (default n - f), averaged with
/// FedAvg's sample-count weights.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MultiKrum {
    /// Attackers assumed (default 1).
    pub f: usize,
    /// Updates kept (default n - f).
    pub m: Option<usize>,
}

impl Default for MultiKrum {
    fn default() -> Self {
        Self { f: 1, m: None }
    }
}

impl RuleParams for MultiKrum {
    fn validate(&self) -> Result<()> {
        if self.m == Some(0) {
            return Err(invalid("m must be at least 1".into()));
        }
        Ok(())
    }
    fn build(&self) -> Box<dyn Aggregator> {
        Box::new(*self)
    }
}

impl Aggregator for MultiKrum {
    /// Keeps nothing across rounds.
    fn state(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
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
/// dropped, the rest averaged with FedAvg's weights (or alike, `equal_weights`, as the
/// authors' `angle_trim` does). Needs n > 2b.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Atm {
    /// Half the number of updates dropped (default 2, the paper's for 10 clients).
    pub b: usize,
    /// Average the kept updates alike rather than by sample count (default false, then not
    /// written, so configs written before it read the same).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub equal_weights: bool,
}

impl Default for Atm {
    fn default() -> Self {
        Self {
            b: 2,
            equal_weights: false,
        }
    }
}

impl RuleParams for Atm {
    fn build(&self) -> Box<dyn Aggregator> {
        Box::new(*self)
    }
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
    /// Keeps nothing across rounds.
    fn state(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
    }

    fn aggregate(&mut self, round: &ServerRound<'_>, updates: &[Update]) -> Result<Aggregate> {
        let v = by_client(updates)?;
        let n = v.len();
        if n <= 2 * self.b {
            return Err(refuse(
                "atm",
                format!("dropping 2b = {} updates leaves none of {n}", 2 * self.b),
            ));
        }
        let keep = &ascending(&Self::mean_angles(&v))[..n - 2 * self.b];
        if !self.equal_weights {
            return mean_of(&v, keep);
        }
        let mut keep = keep.to_vec();
        keep.sort_unstable();
        let kept: Vec<Update> = keep.iter().map(|&i| v[i].clone()).collect();
        fl_core::Mean.aggregate(round, &kept)
    }
}

/// Angle-median (as the FedPoisonMIA authors' code defines it, beside their Angular Trimmed
/// Mean): the single update whose mean angle to all updates is smallest (the lowest client
/// id on ties), sent unchanged.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AngleMedian {}

impl RuleParams for AngleMedian {
    fn build(&self) -> Box<dyn Aggregator> {
        Box::new(*self)
    }
}

impl Aggregator for AngleMedian {
    /// Keeps nothing across rounds.
    fn state(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
    }

    fn aggregate(&mut self, _: &ServerRound<'_>, updates: &[Update]) -> Result<Aggregate> {
        let v = by_client(updates)?;
        let best = ascending(&Atm::mean_angles(&v))[0];
        Ok(Aggregate::new(v[best].delta.clone(), vec![v[best].client]))
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
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NormClip {
    /// The largest L2 norm an update keeps: a number, or `"median"` (the default: the median
    /// norm of the round's updates, which follows the updates as training shrinks them).
    pub bound: ClipBound,
}

impl RuleParams for NormClip {
    fn validate(&self) -> Result<()> {
        match self.bound {
            ClipBound::Norm(v) if !(v > 0.0 && v.is_finite()) => {
                Err(invalid(format!("bound must be positive, got {v}")))
            }
            _ => Ok(()),
        }
    }
    fn build(&self) -> Box<dyn Aggregator> {
        Box::new(*self)
    }
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

impl Default for ClipBound {
    fn default() -> Self {
        Self::Adaptive(AdaptiveBound::Median)
    }
}

/// Bounds read off a round's updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdaptiveBound {
    /// The median L2 norm of the round's updates.
    Median,
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
    /// Keeps nothing across rounds.
    fn state(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
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
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GaussianDp {
    /// Clipping norm C (default 0.5: a fixed bound, since one read off the updates would leak
    /// them; it suits `cnn` updates on MNIST, norms ~0.3-0.6).
    pub clip: f64,
    /// Noise multiplier sigma (default 0.1: about a point of accuracy with 10 clients; a
    /// formal guarantee needs sigma near 1 or more, which with few clients drowns the updates).
    pub sigma: f64,
}

impl Default for GaussianDp {
    fn default() -> Self {
        Self {
            clip: 0.5,
            sigma: 0.1,
        }
    }
}

impl RuleParams for GaussianDp {
    fn validate(&self) -> Result<()> {
        if !(self.clip > 0.0 && self.clip.is_finite()) {
            return Err(invalid(format!("clip must be positive, got {}", self.clip)));
        }
        if !(self.sigma >= 0.0 && self.sigma.is_finite()) {
            return Err(invalid(format!("sigma must be >= 0, got {}", self.sigma)));
        }
        Ok(())
    }
    fn build(&self) -> Box<dyn Aggregator> {
        Box::new(*self)
    }
}

impl Aggregator for GaussianDp {
    /// Keeps nothing across rounds.
    fn state(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
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
