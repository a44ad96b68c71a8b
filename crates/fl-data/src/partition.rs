//! Seeded partitioners: how a training set is split over federated clients.
//!
//! [`PartitionConfig`] is the unchecked shape of a config section; [`PartitionConfig::validate`]
//! turns it into [`Partitioner`], which is past every check and only splits.
//! Every scheme honours `withhold` rules: a client listed in a rule receives no sample of the
//! rule's classes (the GAN attacker must own no sample of the class it attacks).

use crate::error::{DataError, Result};
use crate::rng::{Stream, stream};
use rand::seq::SliceRandom;
use rand_distr::{Distribution, Gamma};
use serde::{Deserialize, Serialize};

/// How samples are spread over clients (the validated form of the config's `scheme` and its
/// parameters).
#[derive(Debug, Clone, PartialEq)]
pub enum Scheme {
    /// Uniformly at random, equal sizes.
    Iid,
    /// Per class, client shares drawn from Dirichlet(alpha); smaller alpha = more skew.
    Dirichlet {
        /// Concentration, > 0.
        alpha: f64,
        /// Every client gets at least this many samples (redraws until it holds).
        min_size: usize,
    },
    /// Sorted by label, cut into shards, each client gets `classes_per_client` shards.
    Shards {
        /// Shards (hence about as many classes) per client.
        classes_per_client: usize,
    },
    /// Client k gets samples `k*n..(k+1)*n` in dataset order (benchmarks, exact reproductions).
    Contiguous,
}

/// The scheme's name in configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SchemeKind {
    /// See [`Scheme::Iid`].
    #[default]
    Iid,
    /// See [`Scheme::Dirichlet`].
    Dirichlet,
    /// See [`Scheme::Shards`].
    Shards,
    /// See [`Scheme::Contiguous`].
    Contiguous,
}

/// Default minimum client size of the Dirichlet scheme.
pub const DEFAULT_MIN_SIZE: usize = 10;

/// Keep the samples of `classes` away from `clients`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Withhold {
    /// Classes withheld.
    pub classes: Vec<usize>,
    /// Clients that must not receive them.
    pub clients: Vec<usize>,
}

/// Unchecked partition parameters (the serde shape of the `[partition]` config section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PartitionConfig {
    /// `iid`, `dirichlet`, `shards` or `contiguous`.
    pub scheme: SchemeKind,
    /// Dirichlet concentration (required by, and only for, `dirichlet`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Dirichlet minimum client size (default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_size: Option<usize>,
    /// Shards per client (required by, and only for, `shards`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes_per_client: Option<usize>,
    /// Samples per client; `None` = the whole set split evenly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples_per_client: Option<usize>,
    /// Classes withheld from chosen clients.
    pub withhold: Vec<Withhold>,
}

impl PartitionConfig {
    /// A config for an explicit scheme (tests, programs).
    pub fn with_scheme(scheme: Scheme) -> Self {
        let mut c = Self::default();
        match scheme {
            Scheme::Iid => {}
            Scheme::Contiguous => c.scheme = SchemeKind::Contiguous,
            Scheme::Dirichlet { alpha, min_size } => {
                c.scheme = SchemeKind::Dirichlet;
                c.alpha = Some(alpha);
                c.min_size = Some(min_size);
            }
            Scheme::Shards { classes_per_client } => {
                c.scheme = SchemeKind::Shards;
                c.classes_per_client = Some(classes_per_client);
            }
        }
        c
    }

    fn scheme(&self) -> Result<Scheme> {
        let bad = |m: String| Err(DataError::Partition(m));
        let only = |field: &str, set: bool, scheme: &str| -> Result<()> {
            if set {
                Err(DataError::Partition(format!(
                    "`{field}` applies only to the {scheme} scheme"
                )))
            } else {
                Ok(())
            }
        };
        if self.scheme != SchemeKind::Dirichlet {
            only("alpha", self.alpha.is_some(), "dirichlet")?;
            only("min_size", self.min_size.is_some(), "dirichlet")?;
        }
        if self.scheme != SchemeKind::Shards {
            only(
                "classes_per_client",
                self.classes_per_client.is_some(),
                "shards",
            )?;
        }
        Ok(match self.scheme {
            SchemeKind::Iid => Scheme::Iid,
            SchemeKind::Contiguous => Scheme::Contiguous,
            SchemeKind::Dirichlet => {
                let Some(alpha) = self.alpha else {
                    return bad("the dirichlet scheme needs `alpha`".into());
                };
                if !(alpha > 0.0 && alpha.is_finite()) {
                    return bad(format!("Dirichlet alpha must be positive, got {alpha}"));
                }
                Scheme::Dirichlet {
                    alpha,
                    min_size: self.min_size.unwrap_or(DEFAULT_MIN_SIZE),
                }
            }
            SchemeKind::Shards => match self.classes_per_client {
                None => return bad("the shards scheme needs `classes_per_client`".into()),
                Some(0) => return bad("classes_per_client cannot be zero".into()),
                Some(c) => Scheme::Shards {
                    classes_per_client: c,
                },
            },
        })
    }
}

/// Validated partition parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Partitioner {
    scheme: Scheme,
    samples_per_client: Option<usize>,
    clients: usize,
    /// Number of classes; labels are below it.
    classes: usize,
    /// `allowed[k][c]`: may client k hold class c?
    allowed: Vec<Vec<bool>>,
}

impl PartitionConfig {
    /// Checks the parameters for `clients` clients and labels in `0..classes`.
    pub fn validate(&self, clients: usize, classes: usize) -> Result<Partitioner> {
        let bad = |m: String| Err(DataError::Partition(m));
        if clients == 0 {
            return bad("the number of clients cannot be zero".into());
        }
        let scheme = self.scheme()?;
        if self.samples_per_client == Some(0) {
            return bad("samples_per_client cannot be zero".into());
        }
        let mut allowed = vec![vec![true; classes]; clients];
        for w in &self.withhold {
            for &c in &w.classes {
                if c >= classes {
                    return bad(format!("withheld class {c} is not in 0..{classes}"));
                }
                for &k in &w.clients {
                    if k >= clients {
                        return bad(format!(
                            "withhold names client {k}, but there are {clients} clients"
                        ));
                    }
                    allowed[k][c] = false;
                }
            }
        }
        for (k, a) in allowed.iter().enumerate() {
            if !a.iter().any(|&x| x) {
                return bad(format!("client {k} is withheld every class"));
            }
        }
        Ok(Partitioner {
            scheme,
            samples_per_client: self.samples_per_client,
            clients,
            classes,
            allowed,
        })
    }
}

impl Partitioner {
    /// Number of clients.
    pub fn clients(&self) -> usize {
        self.clients
    }

    /// Splits samples with `labels` over the clients; returns each client's sample indices.
    pub fn split(&self, labels: &[u8], seed: u64) -> Result<Vec<Vec<usize>>> {
        let n = labels.len();
        let per_client = match self.samples_per_client {
            Some(s) => {
                if s * self.clients > n {
                    return Err(DataError::Partition(format!(
                        "{} clients x {s} samples need {} samples, the set has {n}",
                        self.clients,
                        s * self.clients
                    )));
                }
                s
            }
            None => n / self.clients,
        };
        if per_client == 0 {
            return Err(DataError::Partition(format!(
                "{n} samples cannot be split over {} clients",
                self.clients
            )));
        }
        let mut rng = stream(seed, "partition", &[]);
        let parts = match self.scheme {
            Scheme::Iid => self.iid(labels, per_client, &mut rng)?,
            Scheme::Contiguous => self.contiguous(labels, per_client)?,
            Scheme::Dirichlet { alpha, min_size } => {
                self.dirichlet(labels, per_client, alpha, min_size, &mut rng)?
            }
            Scheme::Shards { classes_per_client } => {
                self.shards(labels, per_client, classes_per_client, &mut rng)?
            }
        };
        Ok(parts)
    }

    fn may_hold(&self, k: usize, label: u8) -> bool {
        self.allowed[k][label as usize]
    }

    /// Restricted clients draw first from one shuffled pool, so the others take what is left.
    fn iid(&self, labels: &[u8], per: usize, rng: &mut Stream) -> Result<Vec<Vec<usize>>> {
        let mut pool: Vec<usize> = (0..labels.len()).collect();
        pool.shuffle(rng);
        let mut order: Vec<usize> = (0..self.clients).collect();
        order.sort_by_key(|&k| self.allowed[k].iter().filter(|&&a| a).count());
        let mut taken = vec![false; labels.len()];
        let mut parts = vec![Vec::new(); self.clients];
        for k in order {
            for &i in &pool {
                if parts[k].len() == per {
                    break;
                }
                if !taken[i] && self.may_hold(k, labels[i]) {
                    taken[i] = true;
                    parts[k].push(i);
                }
            }
            if parts[k].len() < per {
                return Err(self.too_few(k, per, parts[k].len()));
            }
        }
        Ok(parts)
    }

    fn contiguous(&self, labels: &[u8], per: usize) -> Result<Vec<Vec<usize>>> {
        let parts: Vec<Vec<usize>> = (0..self.clients)
            .map(|k| (k * per..(k + 1) * per).collect())
            .collect();
        for (k, p) in parts.iter().enumerate() {
            if let Some(&i) = p.iter().find(|&&i| !self.may_hold(k, labels[i])) {
                return Err(DataError::Partition(format!(
                    "contiguous split gives client {k} sample {i} of withheld class {}",
                    labels[i]
                )));
            }
        }
        Ok(parts)
    }

    fn by_class(&self, labels: &[u8], rng: &mut Stream) -> Vec<Vec<usize>> {
        let mut classes = vec![Vec::new(); self.classes];
        for (i, &l) in labels.iter().enumerate() {
            classes[l as usize].push(i);
        }
        for c in &mut classes {
            c.shuffle(rng);
        }
        classes
    }

    /// The usual label-skew split: per class, Dirichlet shares over the clients that may hold it,
    /// a client stops receiving once it is full; redrawn until every client has `min_size`.
    ///
    /// When the clients take fewer samples than the set has, a random subset of that size is
    /// split (so every class is offered in proportion), and classes are dealt in a random order
    /// each draw: clients that fill up early take no later class, and a fixed order would make
    /// the first classes crowd out the last.
    fn dirichlet(
        &self,
        labels: &[u8],
        per: usize,
        alpha: f64,
        min_size: usize,
        rng: &mut Stream,
    ) -> Result<Vec<Vec<usize>>> {
        let gamma = Gamma::new(alpha, 1.0).map_err(|e| DataError::Partition(e.to_string()))?;
        let total = per * self.clients;
        let min_size = min_size.min(per);
        for _attempt in 0..1000 {
            let mut pool: Vec<usize> = (0..labels.len()).collect();
            pool.shuffle(rng);
            pool.truncate(total);
            let mut classes = vec![Vec::new(); self.classes];
            for &i in &pool {
                classes[labels[i] as usize].push(i);
            }
            let mut class_order: Vec<usize> = (0..self.classes).collect();
            class_order.shuffle(rng);
            let mut parts = vec![Vec::new(); self.clients];
            for &c in &class_order {
                let idx = &classes[c];
                let mut w: Vec<f64> = (0..self.clients)
                    .map(|k| {
                        if self.allowed[k][c] && parts[k].len() < per {
                            gamma.sample(rng)
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let sum: f64 = w.iter().sum();
                if sum <= 0.0 {
                    continue;
                }
                w.iter_mut().for_each(|x| *x /= sum);
                let mut start = 0usize;
                let mut acc = 0.0;
                for (k, wk) in w.iter().enumerate() {
                    acc += wk;
                    let end = if k + 1 == self.clients {
                        idx.len()
                    } else {
                        ((acc * idx.len() as f64).round() as usize).min(idx.len())
                    };
                    let room = per - parts[k].len();
                    let take = end.saturating_sub(start).min(room);
                    parts[k].extend_from_slice(&idx[start..start + take]);
                    start = end.max(start);
                }
            }
            let assigned: usize = parts.iter().map(Vec::len).sum();
            if parts.iter().all(|p| p.len() >= min_size) && assigned <= total {
                return Ok(parts);
            }
        }
        Err(DataError::Partition(format!(
            "no Dirichlet(alpha = {alpha}) draw in 1000 gave every client {min_size} samples; \
             raise alpha or lower min_size"
        )))
    }

    /// McMahan's pathological non-IID split: sorted by label, cut into
    /// `clients * classes_per_client` shards, shards dealt at random to clients allowed them.
    fn shards(
        &self,
        labels: &[u8],
        per: usize,
        cpc: usize,
        rng: &mut Stream,
    ) -> Result<Vec<Vec<usize>>> {
        if per < cpc {
            return Err(DataError::Partition(format!(
                "{per} samples per client cannot form {cpc} shards"
            )));
        }
        let mut sorted: Vec<usize> = self.by_class(labels, rng).into_iter().flatten().collect();
        sorted.truncate(per * self.clients);
        sorted.sort_by_key(|&i| labels[i]);
        let shard_len = per / cpc;
        let n_shards = self.clients * cpc;
        let mut shards: Vec<Vec<usize>> = (0..n_shards)
            .map(|s| {
                let end = if s + 1 == n_shards {
                    sorted.len()
                } else {
                    (s + 1) * shard_len
                };
                sorted[s * shard_len..end].to_vec()
            })
            .collect();
        shards.shuffle(rng);
        let mut parts = vec![Vec::new(); self.clients];
        let mut counts = vec![0usize; self.clients];
        let mut order: Vec<usize> = (0..self.clients).collect();
        order.sort_by_key(|&k| self.allowed[k].iter().filter(|&&a| a).count());
        for k in order {
            while counts[k] < cpc {
                let pos = shards
                    .iter()
                    .position(|s| s.iter().all(|&i| self.may_hold(k, labels[i])))
                    .ok_or_else(|| {
                        DataError::Partition(format!(
                            "no shard is left that client {k} may hold (its withheld classes)"
                        ))
                    })?;
                parts[k].extend(shards.swap_remove(pos));
                counts[k] += 1;
            }
        }
        Ok(parts)
    }

    fn too_few(&self, k: usize, per: usize, got: usize) -> DataError {
        DataError::Partition(format!(
            "client {k} should get {per} samples but only {got} of the classes it may hold are left"
        ))
    }
}

#[cfg(test)]
mod tests {
    const NUM_CLASSES: usize = 10;
    use super::*;

    fn labels(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| ((i * 7 + i / 13) % NUM_CLASSES) as u8)
            .collect()
    }

    fn check_disjoint(parts: &[Vec<usize>], n: usize) {
        let mut seen = vec![false; n];
        for p in parts {
            for &i in p {
                assert!(!seen[i], "sample {i} given twice");
                seen[i] = true;
            }
        }
    }

    fn all_schemes() -> Vec<Scheme> {
        vec![
            Scheme::Iid,
            Scheme::Dirichlet {
                alpha: 0.5,
                min_size: 10,
            },
            Scheme::Shards {
                classes_per_client: 2,
            },
        ]
    }

    #[test]
    fn every_scheme_disjoint_seeded_and_honours_withholding() {
        let l = labels(2000);
        for scheme in all_schemes() {
            let cfg = PartitionConfig {
                withhold: vec![Withhold {
                    classes: vec![3],
                    clients: vec![0, 4],
                }],
                ..PartitionConfig::with_scheme(scheme.clone())
            };
            let p = cfg.validate(10, NUM_CLASSES).unwrap();
            let a = p.split(&l, 1).unwrap();
            check_disjoint(&a, l.len());
            for k in [0, 4] {
                assert!(
                    a[k].iter().all(|&i| l[i] != 3),
                    "{scheme:?}: client {k} holds 3"
                );
            }
            assert_eq!(a, p.split(&l, 1).unwrap(), "{scheme:?} not deterministic");
            assert_ne!(a, p.split(&l, 2).unwrap(), "{scheme:?} ignores the seed");
        }
    }

    #[test]
    fn iid_sizes_as_asked() {
        let l = labels(1000);
        let cfg = PartitionConfig {
            samples_per_client: Some(70),
            ..Default::default()
        };
        let a = cfg.validate(10, NUM_CLASSES).unwrap().split(&l, 3).unwrap();
        assert!(a.iter().all(|p| p.len() == 70));
        let whole = PartitionConfig::default()
            .validate(7, NUM_CLASSES)
            .unwrap()
            .split(&l, 3)
            .unwrap();
        assert!(whole.iter().all(|p| p.len() == 1000 / 7));
    }

    #[test]
    fn shards_give_few_classes() {
        let l = labels(2000);
        let cfg = PartitionConfig::with_scheme(Scheme::Shards {
            classes_per_client: 2,
        });
        let a = cfg.validate(10, NUM_CLASSES).unwrap().split(&l, 5).unwrap();
        for p in &a {
            assert_eq!(p.len(), 200);
            let mut cls: Vec<u8> = p.iter().map(|&i| l[i]).collect();
            cls.sort();
            cls.dedup();
            assert!(
                cls.len() <= 4,
                "a client of 2 shards spans {} classes",
                cls.len()
            );
        }
    }

    #[test]
    fn dirichlet_min_size_and_skew() {
        let l = labels(3000);
        let cfg = PartitionConfig::with_scheme(Scheme::Dirichlet {
            alpha: 0.1,
            min_size: 20,
        });
        let a = cfg.validate(10, NUM_CLASSES).unwrap().split(&l, 9).unwrap();
        assert!(a.iter().all(|p| p.len() >= 20 && p.len() <= 300));
        // alpha = 0.1 concentrates most clients on few classes.
        let dominant: usize = a
            .iter()
            .filter(|p| {
                let mut c = [0usize; NUM_CLASSES];
                p.iter().for_each(|&i| c[l[i] as usize] += 1);
                *c.iter().max().unwrap() * 2 > p.len()
            })
            .count();
        assert!(dominant >= 5, "only {dominant} skewed clients");
    }

    #[test]
    fn dirichlet_subset_offers_every_class() {
        // 10 clients x 100 of 3000 samples: a full client must not mean "full of class 0".
        let l = labels(3000);
        let cfg = PartitionConfig {
            samples_per_client: Some(100),
            ..PartitionConfig::with_scheme(Scheme::Dirichlet {
                alpha: 0.5,
                min_size: 10,
            })
        };
        for seed in 0..5 {
            let a = cfg
                .validate(10, NUM_CLASSES)
                .unwrap()
                .split(&l, seed)
                .unwrap();
            check_disjoint(&a, l.len());
            assert!(a.iter().all(|p| p.len() >= 10 && p.len() <= 100));
            let mut count = [0usize; NUM_CLASSES];
            a.iter().flatten().for_each(|&i| count[l[i] as usize] += 1);
            let n: usize = count.iter().sum();
            assert!(n >= 800, "seed {seed}: only {n} of 1000 samples dealt");
            for (c, &k) in count.iter().enumerate() {
                assert!(
                    (40..=160).contains(&k),
                    "seed {seed}: class {c} has {k} of {n} samples: {count:?}"
                );
            }
        }
    }

    #[test]
    fn contiguous_is_in_order() {
        let l = labels(100);
        let cfg = PartitionConfig {
            samples_per_client: Some(10),
            ..PartitionConfig::with_scheme(Scheme::Contiguous)
        };
        let a = cfg.validate(3, NUM_CLASSES).unwrap().split(&l, 0).unwrap();
        assert_eq!(a[2], (20..30).collect::<Vec<_>>());
    }

    fn invalid(cfg: PartitionConfig, clients: usize) -> String {
        cfg.validate(clients, NUM_CLASSES).unwrap_err().to_string()
    }

    #[test]
    fn rejects_non_positive_alpha() {
        for alpha in [0.0, -1.0, f64::NAN] {
            let m = invalid(
                PartitionConfig::with_scheme(Scheme::Dirichlet { alpha, min_size: 1 }),
                3,
            );
            assert!(m.contains("alpha must be positive"), "{m}");
        }
    }

    #[test]
    fn rejects_zero_clients() {
        assert!(invalid(PartitionConfig::default(), 0).contains("cannot be zero"));
    }

    #[test]
    fn rejects_zero_shards() {
        let cfg = PartitionConfig::with_scheme(Scheme::Shards {
            classes_per_client: 0,
        });
        assert!(invalid(cfg, 3).contains("classes_per_client"));
    }

    #[test]
    fn rejects_missing_and_misplaced_scheme_parameters() {
        let dir = PartitionConfig {
            scheme: SchemeKind::Dirichlet,
            ..Default::default()
        };
        assert!(invalid(dir, 3).contains("needs `alpha`"));
        let sh = PartitionConfig {
            scheme: SchemeKind::Shards,
            ..Default::default()
        };
        assert!(invalid(sh, 3).contains("needs `classes_per_client`"));
        let iid = PartitionConfig {
            alpha: Some(0.5),
            ..Default::default()
        };
        assert!(invalid(iid, 3).contains("only to the dirichlet"));
    }

    #[test]
    fn rejects_zero_samples_per_client() {
        let cfg = PartitionConfig {
            samples_per_client: Some(0),
            ..Default::default()
        };
        assert!(invalid(cfg, 3).contains("samples_per_client"));
    }

    #[test]
    fn rejects_unknown_withhold_targets() {
        let w = |classes, clients| PartitionConfig {
            withhold: vec![Withhold { classes, clients }],
            ..Default::default()
        };
        assert!(invalid(w(vec![10], vec![0]), 3).contains("class 10"));
        assert!(invalid(w(vec![1], vec![3]), 3).contains("client 3"));
        assert!(invalid(w((0..10).collect(), vec![1]), 3).contains("every class"));
    }

    #[test]
    fn rejects_oversized_request() {
        let cfg = PartitionConfig {
            samples_per_client: Some(50),
            ..Default::default()
        };
        let m = cfg
            .validate(3, NUM_CLASSES)
            .unwrap()
            .split(&labels(100), 0)
            .unwrap_err();
        assert!(m.to_string().contains("need 150"));
    }
}
