//! The attacker's target set (members and non-members) and its mask pool.

use fl_core::data::LocalData;
use fl_core::error::{CoreError, Result};
use fl_data::Dataset;
use fl_data::rng::stream;
use rand::RngExt;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

/// Where a target sample comes from (for metrics only: the attack never reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    /// Training sample `index` of benign client `client`.
    Member {
        /// The client that trains on it.
        client: usize,
        /// Its index in the training split.
        index: usize,
    },
    /// Test sample `index`, which no client trains on.
    NonMember {
        /// Its index in the test split.
        index: usize,
    },
}

/// The samples whose membership the attacker wants to learn.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetSet {
    /// Images and their true labels (members first, then non-members).
    pub data: LocalData,
    /// Ground truth, for scoring only.
    pub origin: Vec<Origin>,
    /// A wrong label for every target (never the true one), drawn once per run.
    pub wrong_labels: Vec<u8>,
}

impl TargetSet {
    /// Draws `n / 2` members uniformly from the training data of the `benign` clients
    /// (`parts[k]` holds client k's training indices) and `n / 2` non-members from the test
    /// split, seeded; and a wrong label for each.
    pub fn draw(
        train: &Dataset,
        test: &Dataset,
        parts: &[Vec<usize>],
        benign: &[usize],
        n: usize,
        seed: u64,
    ) -> Result<Self> {
        let half = n / 2;
        let mut pool: Vec<(usize, usize)> = benign
            .iter()
            .flat_map(|&k| parts[k].iter().map(move |&i| (k, i)))
            .collect();
        if pool.len() < half {
            return Err(CoreError::Config(format!(
                "{half} member targets asked for, but the benign clients hold {} samples",
                pool.len()
            )));
        }
        if test.len() < half {
            return Err(CoreError::Config(format!(
                "{half} non-member targets asked for, but the test split has {} samples",
                test.len()
            )));
        }
        pool.shuffle(&mut stream(seed, "mia-members", &[]));
        let mut test_idx: Vec<usize> = (0..test.len()).collect();
        test_idx.shuffle(&mut stream(seed, "mia-non-members", &[]));
        let members: Vec<(usize, usize)> = pool[..half].to_vec();
        let non_members: Vec<usize> = test_idx[..half].to_vec();

        let mut data =
            LocalData::from_dataset(train, &members.iter().map(|m| m.1).collect::<Vec<_>>());
        data.extend(&LocalData::from_dataset(test, &non_members));
        let origin: Vec<Origin> = members
            .iter()
            .map(|&(client, index)| Origin::Member { client, index })
            .chain(non_members.iter().map(|&index| Origin::NonMember { index }))
            .collect();
        let mut rng = stream(seed, "mia-wrong-labels", &[]);
        let classes = train.classes();
        let wrong_labels = data
            .labels
            .iter()
            .map(|&y| ((y as usize + rng.random_range(1..classes)) % classes) as u8)
            .collect();
        Ok(Self {
            data,
            origin,
            wrong_labels,
        })
    }

    /// Number of targets.
    pub fn len(&self) -> usize {
        self.origin.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.origin.is_empty()
    }

    /// Ground truth: true for members.
    pub fn is_member(&self) -> Vec<bool> {
        self.origin
            .iter()
            .map(|o| matches!(o, Origin::Member { .. }))
            .collect()
    }

    /// `n` test-split indices that are not targets, seeded (`stream(seed, "mia-cover-reserve")`):
    /// the cover reserve no client holds.
    pub fn reserve(&self, test_len: usize, n: usize, seed: u64) -> Result<Vec<usize>> {
        let taken = self.non_member_test_indices();
        let mut free: Vec<usize> = (0..test_len).filter(|i| !taken.contains(i)).collect();
        if free.len() < n {
            return Err(CoreError::Config(format!(
                "a cover reserve of {n} asked for, but the test split has {} samples besides \
                 the non-member targets",
                free.len()
            )));
        }
        free.shuffle(&mut stream(seed, "mia-cover-reserve", &[]));
        free.truncate(n);
        Ok(free)
    }

    /// Test-split indices of the non-members (left out of the main-accuracy evaluation).
    pub fn non_member_test_indices(&self) -> Vec<usize> {
        self.origin
            .iter()
            .filter_map(|o| match o {
                Origin::NonMember { index } => Some(*index),
                Origin::Member { .. } => None,
            })
            .collect()
    }

    /// The targets with their wrong labels (what the poisoning attacks train on).
    pub fn poisoned(&self) -> LocalData {
        LocalData::new(
            self.data.images.clone(),
            self.wrong_labels.clone(),
            self.data.shape,
        )
    }
}

/// `n` samples drawn (seeded, for `purpose`) from the training indices `own` of the malicious
/// clients: the mask pool, or the passive attack's calibration set.
pub fn own_sample(
    train: &Dataset,
    own: &[usize],
    n: usize,
    seed: u64,
    purpose: &str,
) -> Result<LocalData> {
    if own.len() < n {
        return Err(CoreError::Config(format!(
            "{n} samples of the malicious clients' own data asked for ({purpose}), they hold {}",
            own.len()
        )));
    }
    let mut idx = own.to_vec();
    idx.shuffle(&mut stream(seed, purpose, &[]));
    idx.truncate(n);
    Ok(LocalData::from_dataset(train, &idx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(n: usize, offset: u8) -> Dataset {
        let images: Vec<u8> = (0..n * 784)
            .map(|i| ((i / 784) as u8).wrapping_add(offset))
            .collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        Dataset::new(
            fl_data::DatasetKind::Mnist,
            images,
            labels,
            fl_data::ImageShape::grey(28, 28),
        )
        .unwrap()
    }

    #[test]
    fn halves_from_the_right_places_and_labels_always_wrong() {
        let (train, test) = (ds(100, 0), ds(40, 100));
        let parts = vec![(0..30).collect(), (30..60).collect(), (60..100).collect()];
        let t = TargetSet::draw(&train, &test, &parts, &[1, 2], 40, 7).unwrap();
        assert_eq!(t.len(), 40);
        let member = t.is_member();
        assert_eq!(member.iter().filter(|&&m| m).count(), 20);
        for (o, y) in t.origin.iter().zip(&t.data.labels) {
            match *o {
                Origin::Member { client, index } => {
                    assert!(client == 1 || client == 2);
                    assert!(parts[client].contains(&index));
                    assert_eq!(train.labels[index], *y);
                }
                Origin::NonMember { index } => assert_eq!(test.labels[index], *y),
            }
        }
        assert!(
            t.wrong_labels
                .iter()
                .zip(&t.data.labels)
                .all(|(w, y)| w != y)
        );
        let mut nm = t.non_member_test_indices();
        nm.sort_unstable();
        nm.dedup();
        assert_eq!(nm.len(), 20, "non-members are distinct");
        assert_eq!(
            t,
            TargetSet::draw(&train, &test, &parts, &[1, 2], 40, 7).unwrap()
        );
        assert_ne!(
            t,
            TargetSet::draw(&train, &test, &parts, &[1, 2], 40, 8).unwrap()
        );
    }

    #[test]
    fn too_few_samples_is_a_clear_error() {
        let (train, test) = (ds(100, 0), ds(10, 100));
        let parts = vec![(0..90).collect(), (90..100).collect()];
        let e = TargetSet::draw(&train, &test, &parts, &[1], 40, 7).unwrap_err();
        assert!(e.to_string().contains("benign clients hold 10"), "{e}");
        let e = TargetSet::draw(&train, &test, &parts, &[0], 40, 7).unwrap_err();
        assert!(e.to_string().contains("test split has 10"), "{e}");
        assert!(own_sample(&train, &[1, 2], 3, 0, "mask").is_err());
    }
}
