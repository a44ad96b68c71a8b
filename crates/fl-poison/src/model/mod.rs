//! Model poisoning: malicious clients that see the round's benign updates (the omniscient
//! threat model of the Byzantine-robustness literature) and all send one crafted vector.
//!
//! Each attack is one file implementing [`Craft`]: from the benign updates of the round
//! (equal weights, as the papers and ByzFL define them) to the malicious update.
//! - [`sign_flip`]: the negated benign mean (Allen-Zhu et al., 2020);
//! - [`ipm`]: inner-product manipulation, -tau x the benign mean (Xie et al., 2020);
//! - [`alie`]: "a little is enough", the mean plus tau standard deviations per coordinate
//!   (Baruch et al., 2019);
//! - [`gaussian`]: Gaussian noise N(mu, sigma^2) per coordinate;
//! - [`min_max`]: Min-Max and Min-Sum (Shejwalkar and Houmansadr, 2021): the benign mean moved
//!   against a perturbation direction as far as the largest distance (Min-Max) or the largest
//!   sum of squared distances (Min-Sum) among benign updates allows, found by bisection;
//! - [`fang`]: Fang et al.'s full-knowledge attacks (USENIX Security 2020) on trimmed mean
//!   (values just beyond the benign range, against the direction of change, per client) and
//!   on Krum (the negated direction scaled by the largest lambda the rule in force still
//!   selects);
//! - [`adaptive`]: IPM and ALIE with the strength that moves the rule in force farthest from
//!   the benign mean, searched against a copy of that rule (ByzFL's `Optimal_*` attacks).
//!
//! [`config`] is the `[attack]` section of `kind = "model-poison"`, [`attack`] the
//! [`fl_core::Attack`] that plays the malicious clients.

pub mod adaptive;
pub mod alie;
pub mod attack;
pub mod config;
pub mod fang;
pub mod gaussian;
pub mod ipm;
pub mod min_max;
pub mod sign_flip;

pub use attack::{ModelPoisonRound, ModelPoisonSummary, ModelPoisoning};
pub use config::{ModelPoisonConfig, PoisonMethod};

use fl_core::error::{CoreError, Result};

/// What a crafting attack knows of the round besides the benign updates.
#[derive(Debug, Clone, Copy)]
pub struct CraftContext<'a> {
    /// The round, from 1.
    pub round: usize,
    /// The run's seed.
    pub seed: u64,
    /// The global model the round started from.
    pub global: &'a [f32],
    /// How many copies of the crafted vector the server receives (the attack's clients
    /// sampled this round).
    pub malicious: usize,
    /// The client asking (for attacks that craft one vector per client).
    pub client: usize,
    /// The server's data as the rule sees it (an attacker simulating a rule that uses it is
    /// granted it: the omniscient threat model).
    pub server: Option<fl_core::update::ServerData<'a>>,
}

/// A model-poisoning attack: the malicious update from the round's benign updates.
pub trait Craft: Send {
    /// The vector every malicious client sends, from the benign deltas (at least two, all of
    /// one length).
    fn craft(&mut self, benign: &[&[f32]], ctx: CraftContext<'_>) -> Result<Vec<f32>>;

    /// The strength the attack settled on this round, where it searches one (Min-Max's
    /// gamma); `None` for attacks of fixed strength.
    fn strength(&self) -> Option<f64> {
        None
    }

    /// True (the default) when every malicious client sends the same vector each round, so
    /// it is crafted once; false when each client crafts its own.
    fn shared(&self) -> bool {
        true
    }
}

/// The attacker's copy of the server's rule, run on the round's benign updates plus the
/// attack's copies of a candidate vector, its state restored before every try (so a rule
/// with state is simulated from where the copy stands, and trying never moves it).
pub struct RuleCopy<'a> {
    rule: &'a mut dyn fl_core::Aggregator,
    saved: Vec<u8>,
    round: fl_core::ServerRound<'a>,
    updates: Vec<fl_core::Update>,
    benign: usize,
    copies: usize,
}

impl<'a> RuleCopy<'a> {
    /// Ready to try candidates against `benign` in the round `ctx` describes; the attack's
    /// `ctx.malicious` clients (at least one) are clients `0..copies`, the benign ones after.
    pub fn new(
        rule: &'a mut dyn fl_core::Aggregator,
        benign: &[&[f32]],
        ctx: CraftContext<'a>,
    ) -> Result<Self> {
        let saved = rule.state().ok_or_else(|| {
            CoreError::Config(
                "this attack simulates the server's rule and needs one whose state can be \
                 saved (this rule's cannot)"
                    .into(),
            )
        })?;
        let copies = ctx.malicious.max(1);
        // Equal weights: the attack's clients claim the mean benign count, so every rule
        // weighs all alike here.
        let updates = benign
            .iter()
            .enumerate()
            .map(|(i, b)| fl_core::Update {
                client: copies + i,
                delta: b.to_vec(),
                num_samples: 1,
                train_loss: 0.0,
            })
            .collect();
        Ok(Self {
            rule,
            saved,
            round: fl_core::ServerRound {
                round: ctx.round,
                seed: ctx.seed,
                global: ctx.global,
                server: ctx.server,
            },
            updates,
            benign: benign.len(),
            copies,
        })
    }

    /// How many copies of the candidate the server receives.
    pub fn copies(&self) -> usize {
        self.copies
    }

    /// The rule's aggregate with `candidate` sent by every malicious client.
    pub fn aggregate(&mut self, candidate: &[f32]) -> Result<fl_core::Aggregate> {
        let all = vec![candidate; self.copies];
        self.aggregate_each(&all)
    }

    /// The rule's aggregate with malicious client `c` sending `candidates[c]` (one per copy).
    pub fn aggregate_each(&mut self, candidates: &[&[f32]]) -> Result<fl_core::Aggregate> {
        if candidates.len() != self.copies {
            return Err(CoreError::Config(format!(
                "{} candidates for {} malicious clients",
                candidates.len(),
                self.copies
            )));
        }
        self.updates.truncate(self.benign);
        self.updates
            .extend(candidates.iter().enumerate().map(|(c, v)| fl_core::Update {
                client: c,
                delta: v.to_vec(),
                num_samples: 1,
                train_loss: 0.0,
            }));
        self.rule.set_state(&self.saved)?;
        self.rule.aggregate(&self.round, &self.updates)
    }
}

impl Drop for RuleCopy<'_> {
    /// Leaves the copy as it was before the tries.
    fn drop(&mut self) {
        let _ = self.rule.set_state(&self.saved);
    }
}

pub use fl_core::geometry::mean;

/// The coordinate-wise sample standard deviation (n - 1 in the denominator) of `v`.
pub fn std(v: &[&[f32]]) -> Vec<f32> {
    let n = v.len() as f64;
    (0..v[0].len())
        .map(|i| {
            let m = v.iter().map(|x| x[i] as f64).sum::<f64>() / n;
            let ss: f64 = v.iter().map(|x| (x[i] as f64 - m).powi(2)).sum();
            (ss / (n - 1.0)).sqrt() as f32
        })
        .collect()
}

/// Refuses fewer than two benign updates or updates of different lengths.
pub fn check_benign(attack: &str, v: &[&[f32]]) -> Result<()> {
    if v.len() < 2 {
        return Err(CoreError::Config(format!(
            "{attack} crafts from the round's benign updates and needs at least two, got {}",
            v.len()
        )));
    }
    if let Some(x) = v.iter().find(|x| x.len() != v[0].len()) {
        return Err(CoreError::Aggregation(format!(
            "{attack}: benign updates of {} and {} values",
            v[0].len(),
            x.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    /// Three benign updates of three coordinates (the ByzFL documentation's example).
    pub fn three() -> Vec<Vec<f32>> {
        vec![vec![1., 2., 3.], vec![4., 5., 6.], vec![7., 8., 9.]]
    }

    pub fn refs(v: &[Vec<f32>]) -> Vec<&[f32]> {
        v.iter().map(Vec::as_slice).collect()
    }

    pub fn ctx() -> super::CraftContext<'static> {
        super::CraftContext {
            round: 1,
            seed: 7,
            global: &[],
            malicious: 2,
            client: 0,
            server: None,
        }
    }

    #[test]
    fn mean_and_std_by_hand() {
        let v = three();
        assert_eq!(super::mean(&refs(&v)), [4., 5., 6.]);
        // Deviations -3, 0, 3: sum of squares 18, over n - 1 = 2: 9, std 3.
        assert_eq!(super::std(&refs(&v)), [3., 3., 3.]);
        assert!(super::check_benign("x", &refs(&v[..1])).is_err());
    }
}
