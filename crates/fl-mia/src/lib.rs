//! Membership inference in federated learning: can malicious clients tell whether a sample was
//! in some benign client's training data?
//!
//! - [`config`]: the `[mia]` section: method, threat model (full or partial knowledge), number
//!   of malicious clients, targets, attack rounds;
//! - [`targets`]: the target set (half members from benign clients, half non-members from the
//!   test split) with a wrong label per target, and the mask pool from the attacker's own data;
//! - [`attacker`]: the craft the malicious clients share. FedPoisonMIA ("Find a Scapegoat",
//!   2025) relabels the targets with wrong labels, takes one SGD step on them (g_attack), greedily adds the
//!   one-sample updates of mask samples and scales g_attack by the largest alpha that keeps
//!   the update within the benign updates' largest angle. AGREvader-style: the same under a
//!   Euclidean bound. Gradient ascent (Nasr et al.): one ascent step on the targets;
//! - [`run`]: [`MembershipAttack`], the attack as an [`fl_core::Attack`] (its malicious
//!   clients, the targets, the judging), and [`MiaRun`], the experiment; membership is
//!   judged on the global model after every round: active attacks call a target a member iff the model classifies it correctly (a member's
//!   owner undoes the poison), the passive attack thresholds its loss or confidence at the mean
//!   over the attacker's own data;
//! - [`metrics`]: accuracy, precision, recall, ROC, AUC and TPR at 0.1% and 1% FPR (reported
//!   only where enough non-members measure that FPR).

pub mod attacker;
pub mod config;
pub mod metrics;
pub mod run;
pub mod targets;

pub use config::{
    AttackSteps, CoverSource, Craft, JudgeOn, Knowledge, MiaConfig, MiaMethod, PassiveRule,
    Pretrain, Selection,
};
pub use metrics::MembershipScores;
pub use run::{MembershipAttack, MiaRoundMetrics, MiaRun, MiaSummary};
pub use targets::TargetSet;
