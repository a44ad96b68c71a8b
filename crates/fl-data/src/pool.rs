//! The pooled split of the FedPoisonMIA authors' code (`data_reader.py` of
//! FrankMOWJ/AGREvader_v2): the training and test splits pooled into one set (70,000 images
//! for MNIST), shuffled, a reserve held out (the attacker's cover pool), the rest cut to whole
//! batches, one in `test_one_in` batches (rounded) the test set, and the training batches
//! dealt in equal contiguous runs to the clients that hold data; the others (the malicious
//! clients of their protocol) hold none.
//!
//! With MNIST, a reserve of 500, batches of 64, 1 in 6 and 9 holders: 69,440 images in 1,085
//! batches, 181 of them (11,584 images) the test set, 100 batches (6,400 images) per holder
//! (the 4 batches left over are unused).

use crate::error::{DataError, Result};
use crate::rng::stream;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

/// The `[pool]` section: how the pooled set is cut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    /// Images held out of every client and of the test set (the cover reserve).
    pub reserve: usize,
    /// The rest is cut to whole batches of this many images.
    pub batch: usize,
    /// One in this many batches (rounded to the nearest batch) is the test set.
    pub test_one_in: usize,
    /// Clients that hold no data.
    pub empty_clients: Vec<usize>,
}

impl Default for PoolConfig {
    /// The authors' MNIST protocol: reserve 500, batches of 64, 1 in 6 for testing, client 0
    /// (the malicious one) without data.
    fn default() -> Self {
        Self {
            reserve: 500,
            batch: 64,
            test_one_in: 6,
            empty_clients: vec![0],
        }
    }
}

/// Where each image of the pooled set went; every index is into the pooled set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PooledSplit {
    /// The reserve.
    pub reserve: Vec<usize>,
    /// The test set.
    pub test: Vec<usize>,
    /// The training set: the holders' images, client by client.
    pub train: Vec<usize>,
    /// Each client's share, as indices into `train` (empty for the clients without data).
    pub parts: Vec<Vec<usize>>,
}

impl PoolConfig {
    /// Checks the section for a run of `clients` clients.
    pub fn validate(&self, clients: usize) -> Result<()> {
        let bad = |m: String| Err(DataError::Partition(format!("[pool]: {m}")));
        if self.batch == 0 {
            return bad("batch must be at least 1".into());
        }
        if self.test_one_in < 2 {
            return bad("test_one_in must be at least 2 (1 would leave no training data)".into());
        }
        if let Some(k) = self.empty_clients.iter().find(|&&k| k >= clients) {
            return bad(format!("empty client {k} of a run of {clients} clients"));
        }
        let mut seen = self.empty_clients.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != self.empty_clients.len() {
            return bad("empty_clients lists a client twice".into());
        }
        if seen.len() >= clients {
            return bad("at least one client must hold data".into());
        }
        Ok(())
    }

    /// Cuts a pooled set of `total` images for `clients` clients, shuffled by
    /// `stream(seed, "pool-split")`.
    pub fn split(&self, total: usize, clients: usize, seed: u64) -> Result<PooledSplit> {
        self.validate(clients)?;
        let mut order: Vec<usize> = (0..total).collect();
        order.shuffle(&mut stream(seed, "pool-split", &[]));
        let kept = total.saturating_sub(self.reserve);
        let batches = kept / self.batch;
        let test_batches = (batches as f64 / self.test_one_in as f64).round() as usize;
        let holders: Vec<usize> = (0..clients)
            .filter(|k| !self.empty_clients.contains(k))
            .collect();
        let per_holder = (batches - test_batches) / holders.len();
        if per_holder == 0 {
            return Err(DataError::Partition(format!(
                "[pool]: {total} images leave {} training batches of {} for {} clients",
                batches - test_batches,
                self.batch,
                holders.len()
            )));
        }
        let reserve = order[kept..].to_vec();
        let test = order[..test_batches * self.batch].to_vec();
        let share = per_holder * self.batch;
        let start = test.len();
        let train = order[start..start + share * holders.len()].to_vec();
        let mut parts = vec![Vec::new(); clients];
        for (h, &k) in holders.iter().enumerate() {
            parts[k] = (h * share..(h + 1) * share).collect();
        }
        Ok(PooledSplit {
            reserve,
            test,
            train,
            parts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authors_mnist_split_by_hand() {
        let s = PoolConfig::default().split(70_000, 10, 1).unwrap();
        // 69,500 kept -> 1,085 batches of 64 (69,440); round(1085 / 6) = 181 test batches.
        assert_eq!(s.reserve.len(), 500);
        assert_eq!(s.test.len(), 181 * 64);
        assert_eq!(s.train.len(), 9 * 6_400);
        assert!(s.parts[0].is_empty());
        for k in 1..10 {
            assert_eq!(s.parts[k].len(), 6_400, "client {k}");
        }
        // Disjoint, and all drawn from the pool. Unused: the 60 images the batching cuts, and
        // 904 - 9 x 100 = 4 training batches that do not divide among 9 clients.
        let mut all: Vec<usize> = [&s.reserve, &s.test, &s.train]
            .into_iter()
            .flatten()
            .copied()
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
        assert_eq!(n, 70_000 - 60 - 4 * 64);
        assert!(all.iter().all(|&i| i < 70_000));
        // The parts cover the training indices once each.
        let mut parts: Vec<usize> = s.parts.concat();
        parts.sort_unstable();
        assert_eq!(parts, (0..s.train.len()).collect::<Vec<_>>());
    }

    #[test]
    fn seeded_and_seed_dependent() {
        let c = PoolConfig::default();
        assert_eq!(c.split(2_000, 3, 4).unwrap(), c.split(2_000, 3, 4).unwrap());
        assert_ne!(c.split(2_000, 3, 4).unwrap(), c.split(2_000, 3, 5).unwrap());
    }

    #[test]
    fn refusals() {
        let err = |c: PoolConfig, clients: usize| c.validate(clients).unwrap_err().to_string();
        let d = PoolConfig::default;
        assert!(err(PoolConfig { batch: 0, ..d() }, 10).contains("batch"));
        assert!(
            err(
                PoolConfig {
                    test_one_in: 1,
                    ..d()
                },
                10
            )
            .contains("test_one_in")
        );
        let e = |v: Vec<usize>| PoolConfig {
            empty_clients: v,
            ..d()
        };
        assert!(err(e(vec![10]), 10).contains("empty client 10"));
        assert!(err(e(vec![1, 1]), 10).contains("twice"));
        assert!(err(e(vec![0, 1]), 2).contains("at least one client"));
        let small = PoolConfig::default().split(600, 10, 1).unwrap_err();
        assert!(small.to_string().contains("training batches"), "{small}");
    }
}
