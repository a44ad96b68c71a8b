//! Robust aggregation rules: what a server can do against malicious updates, on flat `f32`
//! updates (no tensors), behind fl-core's [`Aggregator`](fl_core::Aggregator) trait.
//!
//! - coordinate-wise: [`Median`], [`TrimmedMean`] (every client kept, values trimmed per
//!   coordinate);
//! - selection: [`Krum`], [`MultiKrum`] (Blanchard et al.), [`Atm`] (the Angular Trimmed Mean of
//!   the FedPoisonMIA paper), which report the clients they kept;
//! - bounding: [`NormClip`] and [`GaussianDp`] (clip, average, Gaussian noise);
//! - one file each, paper cited, definitions as ByzFL's: [`GeoMed`] (the smoothed Weiszfeld
//!   geometric median of RFA, [`geomed`]) and [`CenteredClip`] (centered clipping around the
//!   last round's aggregate, a rule with state, [`centered_clip`]), [`Bulyan`] (Krum
//!   selection, then a trimmed mean around the median, [`bulyan`]);
//! - spectral: [`Dnc`] (Divide-and-Conquer: updates far along the top singular direction of
//!   random coordinate subsets dropped, [`dnc`]);
//! - server data: [`FlTrust`] (trust from each update's cosine with the server's own update on
//!   its root set, `ServerRound::server`, [`fltrust`]), [`FangDefense`] (Fang et al.'s loss- and
//!   error-rate-based rejection on the server's validation set, [`fang_defense`]);
//! - clustering: [`Flame`] (HDBSCAN on the updates' cosine distances, the largest cluster
//!   clipped to the median norm, Gaussian noise scaled by it, [`flame`]);
//! - the FedPoisonMIA authors' simplified forms of two backdoor defenses: [`DeepSightLite`]
//!   (two-means on each update's distance to the mean and norm, the larger group clipped,
//!   [`deepsight`]) and [`RflbatLite`] (distance filters and two-means on the top two
//!   principal components, [`rflbat`]); neither is the published defense in full;
//! - sign statistics: [`SignGuard`] (a norm filter and mean-shift clustering of the updates'
//!   fractions of positive, zero and negative values, then clipping to the median norm,
//!   [`signguard`]);
//! - history: [`FoolsGold`] (Sybils whose summed updates point alike are down-weighted, a
//!   rule with state, [`foolsgold`]);
//! - pre-aggregation, composed with any rule by name (`"nnm+krum"`, [`mix`]): [`Nnm`]
//!   (nearest-neighbour mixing, [`nnm`]) and [`Bucketing`] ([`bucketing`]).
//!
//! A rule is a parameter struct (the serde shape of its `[defense.<rule>]` section, checked by
//! [`RuleParams::validate`]) and an [`Aggregator`](fl_core::Aggregator) impl; one line of [`RULES`] names it.
//!
//! Distances, norms and angles are computed in f64. Every rule returns the same result for any
//! order of the updates (ties broken by client id), and refuses with a clear error where it
//! cannot apply (e.g. Krum with n <= 2f + 2).
//!
//! ```
//! use fl_core::{Aggregator, ServerRound, Update};
//! use fl_defense::DefenseConfig;
//! let mut rule = DefenseConfig::default().build("median").unwrap();
//! let ups: Vec<Update> = [1.0f32, 2.0, 100.0]
//!     .iter()
//!     .enumerate()
//!     .map(|(k, &v)| Update { client: k, delta: vec![v], num_samples: 10, train_loss: 0.0 })
//!     .collect();
//! let round = ServerRound { round: 1, seed: 7, global: &[0.0], server: None };
//! assert_eq!(rule.aggregate(&round, &ups).unwrap().delta, vec![2.0]);
//! ```

pub mod bucketing;
pub mod bulyan;
pub mod centered_clip;
mod check;
pub mod cluster;
pub mod config;
pub mod deepsight;
pub mod dnc;
pub mod fang_defense;
pub mod flame;
pub mod fltrust;
pub mod foolsgold;
pub mod geomed;
pub mod mix;
pub mod nnm;
pub mod rflbat;
pub mod rules;
pub mod signguard;

pub use bucketing::Bucketing;
pub use bulyan::Bulyan;
pub use centered_clip::{CenteredClip, CenteredClipParams};
pub use config::{DefenseConfig, PRE, Pre, RULES, Rule, RuleParams, names, pre_names};
pub use deepsight::DeepSightLite;
pub use dnc::Dnc;
pub use fang_defense::{FangDefense, Reject};
/// Norms, distances and angles (fl-core's, shared with the attacks that must stay within them).
pub use fl_core::geometry;
pub use flame::Flame;
pub use fltrust::FlTrust;
pub use foolsgold::{FoolsGold, FoolsGoldParams};
pub use geomed::GeoMed;
pub use mix::{Composed, Mixed, PreAggregator, PreParams};
pub use nnm::Nnm;
pub use rflbat::RflbatLite;
pub use rules::{
    AdaptiveBound, AngleMedian, Atm, ClipBound, GaussianDp, Krum, Median, MultiKrum, NormClip,
    TrimmedMean,
};
pub use signguard::SignGuard;
