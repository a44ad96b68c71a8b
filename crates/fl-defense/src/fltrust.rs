//! FLTrust (Cao, Fang, Liu and Gong, "FLTrust: Byzantine-robust federated learning via trust
//! bootstrapping", NDSS 2021): the server trains the global model on its own small root set
//! (`server_samples` in the run's config; the run's local-training parameters, shuffled by
//! `stream(seed, "fltrust", [round])`), giving a reference update g0; each client's trust score
//! is ReLU(cos(g_i, g0)); each update is rescaled to the length of g0; the step is the
//! trust-weighted mean of the rescaled updates (zero when every score is 0). Clients of score
//! 0 are reported dropped.

use crate::config::RuleParams;
use fl_core::error::{CoreError, Result};
use fl_core::geometry::{dot, norm};
use fl_core::update::check_updates;
use fl_core::{Aggregate, Aggregator, ServerRound, Update};
use fl_data::rng::stream;
use serde::{Deserialize, Serialize};

/// FLTrust; its root set comes with the round (`ServerRound::server`). No parameters.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlTrust {}

impl RuleParams for FlTrust {
    fn build(&self) -> Box<dyn Aggregator> {
        Box::new(*self)
    }
}

/// The step from the reference update `g0` and the client updates `v` (in client order), the
/// clients kept (score > 0), and each client's trust score.
pub fn combine(g0: &[f32], v: &[&Update]) -> (Vec<f32>, Vec<usize>, Vec<f64>) {
    let n0 = norm(g0);
    let scores: Vec<f64> = v
        .iter()
        .map(|u| {
            let nu = norm(&u.delta);
            if n0 == 0.0 || nu == 0.0 {
                0.0
            } else {
                (dot(&u.delta, g0) / (nu * n0)).max(0.0)
            }
        })
        .collect();
    let total: f64 = scores.iter().sum();
    let mut acc = vec![0.0f64; g0.len()];
    if total > 0.0 {
        for (u, &s) in v.iter().zip(&scores) {
            if s > 0.0 {
                let scale = s * n0 / norm(&u.delta) / total;
                for (a, &d) in acc.iter_mut().zip(&u.delta) {
                    *a += scale * d as f64;
                }
            }
        }
    }
    let kept = v
        .iter()
        .zip(&scores)
        .filter(|(_, s)| **s > 0.0)
        .map(|(u, _)| u.client)
        .collect();
    (acc.into_iter().map(|x| x as f32).collect(), kept, scores)
}

impl Aggregator for FlTrust {
    /// Keeps nothing across rounds.
    fn state(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
    }

    fn aggregate(&mut self, round: &ServerRound<'_>, updates: &[Update]) -> Result<Aggregate> {
        check_updates(updates)?;
        let server =
            crate::check::server_data(round, "fltrust", "trains on the server's own root set")?;
        if round.global.len() != updates[0].delta.len() {
            return Err(CoreError::Aggregation(format!(
                "fltrust: the global model has {} values, the updates {}",
                round.global.len(),
                updates[0].delta.len()
            )));
        }
        let mut rng = stream(round.seed, "fltrust", &[round.round as u64]);
        let (local, _) = fl_core::train::train_local(
            server.spec,
            round.global,
            server.data,
            server.train,
            &mut rng,
        );
        let g0: Vec<f32> = local.iter().zip(round.global).map(|(l, g)| l - g).collect();
        let mut v: Vec<&Update> = updates.iter().collect();
        v.sort_by_key(|u| u.client);
        let (delta, kept, scores) = combine(&g0, &v);
        let zero = scores.iter().filter(|s| **s == 0.0).count();
        Ok(Aggregate::new(delta, kept)
            .with_metric("server_update_norm", norm(&g0))
            .with_metric("zero_trust", zero as f64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{round, ups};

    #[test]
    fn trust_is_the_clipped_cosine_and_updates_take_the_reference_length() {
        // g0 = (2, 0). Client 0 along it (cos 1), client 1 at 45 degrees (cos 0.707), client 2
        // against it (cos -1 -> 0). Rescaled to |g0| = 2: (2, 0) and (1.414, 1.414).
        // Step: (1 x (2, 0) + 0.707 x (1.414, 1.414)) / 1.707 = (1.757, 0.586).
        let u = ups(&[&[5.0, 0.0], &[1.0, 1.0], &[-3.0, 0.0]]);
        let v: Vec<&Update> = u.iter().collect();
        let (delta, kept, scores) = combine(&[2.0, 0.0], &v);
        assert_eq!(kept, [0, 1]);
        assert!((scores[1] - 0.5f64.sqrt()).abs() < 1e-12 && scores[2] == 0.0);
        let s = 0.5f64.sqrt();
        let expect = [
            (2.0 + s * 2.0f64.sqrt()) / (1.0 + s),
            (s * 2.0f64.sqrt()) / (1.0 + s),
        ];
        assert!((delta[0] as f64 - expect[0]).abs() < 1e-6, "{delta:?}");
        assert!((delta[1] as f64 - expect[1]).abs() < 1e-6, "{delta:?}");
        // All against the reference: no step.
        let (delta, kept, _) = combine(&[2.0, 0.0], &v[2..]);
        assert_eq!((delta, kept), (vec![0.0, 0.0], vec![]));
    }

    #[test]
    fn without_server_data_it_says_what_to_set() {
        let err = FlTrust {}
            .aggregate(&round(), &ups(&[&[1.0], &[2.0]]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("server_samples"), "{err}");
    }
}
