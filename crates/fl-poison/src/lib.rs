//! Poisoning attacks on federated training, as [`fl_core::Attack`]s playing one client.
//!
//! - [`config`]: [`AttackConfig`], the `[attack]` section (method, classes G and T, the
//!   adversary, when it starts, the strength knobs);
//! - [`adversary`]: [`Adversary`], the malicious client and its attack: the combined GAN reconstruction +
//!   poisoning attack (Hitaj et al.; Zhang et al.), plain label flipping, or a benign twin for the
//!   no-attack baseline; update boosting;
//! - [`metrics`]: attack accuracy (test images of G classified as T) and the scores beside it,
//!   per round and summarised over the attack period;
//! - [`run`]: [`AttackRun`], a federated run with the adversary in place;
//! - [`model`]: model poisoning by malicious clients that see the benign updates (sign
//!   flipping, IPM, ALIE, Gaussian noise, Min-Max, Min-Sum), as [`ModelPoisoning`];
//! - [`backdoor`]: a BadNets pixel-trigger backdoor by data poisoning, with and without model
//!   replacement, and with the scale picked against the rule in force, as [`Backdoor`];
//! - [`scale`]: the defense-aware choice of a scale that the backdoor and the GAN attack's
//!   adaptive boost share.
//!
//! The combined attack, in each attack round: train the generator against the global model
//! towards G; add `n_fake` generated images labelled K (the extra "fake" class) and `n_poison`
//! generated images labelled T to the adversary's own data (which holds no image of G); train
//! locally like a benign client; multiply the update by `boost`.

pub mod adversary;
pub mod backdoor;
pub mod config;
pub mod metrics;
pub mod model;
pub mod run;
pub mod scale;

pub use adversary::{Adversary, AdversaryRound, AdversaryTiming, AttackLog};
pub use backdoor::{Backdoor, BackdoorConfig, BackdoorRound, BackdoorSummary};
pub use config::{AttackConfig, AttackMethod};
pub use metrics::{AttackRoundMetrics, AttackScores, AttackSummary};
pub use model::{ModelPoisonConfig, ModelPoisoning, PoisonMethod};
pub use run::{AttackRun, WarmStart};
