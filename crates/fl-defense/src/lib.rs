//! Robust aggregation rules: what a server can do against malicious updates, on flat `f32`
//! updates (no tensors), behind fl-core's [`Aggregator`] trait.
//!
//! - coordinate-wise: [`Median`], [`TrimmedMean`] (every client kept, values trimmed per
//!   coordinate);
//! - selection: [`Krum`], [`MultiKrum`] (Blanchard et al.), [`Atm`] (the Angular Trimmed Mean of
//!   the FedPoisonMIA paper), which report the clients they kept;
//! - bounding: [`NormClip`] and [`GaussianDp`] (clip, average, Gaussian noise).
//!
//! Distances, norms and angles are computed in f64. Every rule returns the same result for any
//! order of the updates (ties broken by client id), and refuses with a clear error where it
//! cannot apply (e.g. Krum with n <= 2f + 2).
//!
//! ```
//! use fl_core::{Aggregator, ServerRound, Update};
//! use fl_defense::{DefenseConfig, aggregator};
//! let mut rule = aggregator("median", &DefenseConfig::default()).unwrap();
//! let ups: Vec<Update> = [1.0f32, 2.0, 100.0]
//!     .iter()
//!     .enumerate()
//!     .map(|(k, &v)| Update { client: k, delta: vec![v], num_samples: 10, train_loss: 0.0 })
//!     .collect();
//! let round = ServerRound { round: 1, seed: 7, global: &[0.0] };
//! assert_eq!(rule.aggregate(&round, &ups).unwrap().delta, vec![2.0]);
//! ```

pub mod config;
pub mod rules;

pub use config::{AdaptiveBound, ClipBound, DefenseConfig};
/// Norms, distances and angles (fl-core's, shared with the attacks that must stay within them).
pub use fl_core::geometry;
pub use rules::{Atm, GaussianDp, Krum, Median, MultiKrum, NormClip, TrimmedMean};

use fl_core::error::{CoreError, Result};
use fl_core::{Aggregator, FedAvg};

/// The rules by name, as in configs and on the command line.
pub const NAMES: [&str; 8] = [
    "fedavg",
    "median",
    "trimmed-mean",
    "krum",
    "multi-krum",
    "atm",
    "clip",
    "dp",
];

/// The rule called `name`, with its parameters from `cfg` (checked here).
pub fn aggregator(name: &str, cfg: &DefenseConfig) -> Result<Box<dyn Aggregator>> {
    cfg.validate()?;
    Ok(match name {
        "fedavg" => Box::new(FedAvg),
        "median" => Box::new(Median),
        "trimmed-mean" => Box::new(TrimmedMean {
            beta: cfg.trim_beta,
        }),
        "krum" => Box::new(Krum { f: cfg.krum_f }),
        "multi-krum" => Box::new(MultiKrum {
            f: cfg.krum_f,
            m: cfg.multi_krum_m,
        }),
        "atm" => Box::new(Atm { b: cfg.atm_b }),
        "clip" => Box::new(NormClip {
            bound: cfg.clip_bound,
        }),
        "dp" => Box::new(GaussianDp {
            clip: cfg.dp_clip,
            sigma: cfg.dp_sigma,
        }),
        other => {
            return Err(CoreError::Config(format!(
                "unknown aggregator `{other}` (known: {})",
                NAMES.join(", ")
            )));
        }
    })
}
