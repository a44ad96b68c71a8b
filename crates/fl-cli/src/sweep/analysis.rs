//! What a sweep's cells say, without files or pictures: per dataset the 10x10 matrix of
//! average attack accuracy (per seed, mean, spread), its distribution, its symmetry and the
//! classes' vulnerability, with seeded permutation tests; and the published observations the
//! report compares them with, kept as data (`published.toml`).

use super::K;
use super::stats::{
    TestResult, group_means_test, mean, median, pearson, seed_asymmetry_test, signed_rank_test,
    std, test_rng,
};
use super::store::CellResult;
use fl_data::DatasetKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A 10x10 matrix with holes (the diagonal, cells not run).
pub type Grid10 = [[Option<f64>; K]; K];

/// One dataset's results: the matrix per seed, and mean and spread over seeds.
#[derive(Debug, Clone, Serialize)]
pub struct Matrix {
    /// Dataset.
    pub dataset: DatasetKind,
    /// Average attack accuracy of each (G, T) per seed.
    pub per_seed: BTreeMap<u64, Grid10>,
    /// Mean over seeds.
    pub mean: Grid10,
    /// Standard deviation over seeds (n - 1; 0 with one seed).
    pub std: Grid10,
}

impl Matrix {
    /// From per-seed matrices.
    pub fn new(dataset: DatasetKind, per_seed: BTreeMap<u64, Grid10>) -> Self {
        let mut m = [[None; K]; K];
        let mut s = [[None; K]; K];
        for g in 0..K {
            for t in 0..K {
                let v: Vec<f64> = per_seed.values().filter_map(|x| x[g][t]).collect();
                if !v.is_empty() {
                    m[g][t] = Some(mean(&v));
                    s[g][t] = Some(std(&v));
                }
            }
        }
        Self {
            dataset,
            per_seed,
            mean: m,
            std: s,
        }
    }

    /// The matrices of every dataset among `cells`, MNIST first.
    pub fn from_cells(cells: &BTreeMap<String, CellResult>) -> Vec<Matrix> {
        [DatasetKind::Mnist, DatasetKind::FashionMnist]
            .into_iter()
            .filter_map(|d| {
                let mut per_seed: BTreeMap<u64, Grid10> = BTreeMap::new();
                for c in cells.values().filter(|c| c.dataset == d) {
                    per_seed.entry(c.seed).or_insert([[None; K]; K])[c.generate][c.target] =
                        Some(c.value());
                }
                (!per_seed.is_empty()).then(|| Matrix::new(d, per_seed))
            })
            .collect()
    }

    /// The off-diagonal values present, row by row.
    pub fn values(&self) -> Vec<f64> {
        self.mean.iter().flatten().filter_map(|v| *v).collect()
    }

    /// `(G, T, mean value)` of every pair present, G then T in increasing order.
    pub fn pairs(&self) -> Vec<(usize, usize, f64)> {
        let mut out = Vec::new();
        for g in 0..K {
            for t in 0..K {
                if let Some(v) = self.mean[g][t] {
                    out.push((g, t, v));
                }
            }
        }
        out
    }
}

/// The analysis of one matrix.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    /// Values present (of 90).
    pub n: usize,
    /// Seeds.
    pub seeds: usize,
    /// Smallest, median, mean, largest value.
    pub min: f64,
    /// Median.
    pub median: f64,
    /// Mean.
    pub mean: f64,
    /// Largest.
    pub max: f64,
    /// Values below 0.1, in [0.2, 0.5], above 0.5.
    pub below_01: usize,
    /// Values in [0.2, 0.5].
    pub within_02_05: usize,
    /// Values above 0.5.
    pub above_05: usize,
    /// Symmetry (needs both directions of at least one pair).
    pub symmetry: Option<Symmetry>,
    /// Row (as G) and column (as T) means per class, with spread over seeds.
    pub classes: Vec<ClassRow>,
    /// Do rows differ (some class easier to attack as G)?
    pub rows_test: Option<TestResult>,
    /// Do columns differ (some class an easier target)?
    pub columns_test: Option<TestResult>,
}

/// Is G -> T as easy as T -> G?
#[derive(Debug, Clone, Serialize)]
pub struct Symmetry {
    /// Unordered pairs with both directions present.
    pub pairs: usize,
    /// Mean, median and largest `|M[g][t] - M[t][g]|`, and the pair of the largest.
    pub mean_gap: f64,
    /// Median gap.
    pub median_gap: f64,
    /// Largest gap.
    pub max_gap: f64,
    /// (g, t) of the largest gap, g < t.
    pub max_pair: (usize, usize),
    /// Pearson correlation of `M[g][t]` and `M[t][g]` over the pairs.
    pub correlation: f64,
    /// Wilcoxon signed-rank test of `M[g][t] - M[t][g]` for g < t.
    pub signed_rank: TestResult,
    /// Gaps beyond seed noise (needs two seeds).
    pub beyond_seed_noise: Option<TestResult>,
}

/// One class's means as G (its row) and as T (its column).
#[derive(Debug, Clone, Serialize)]
pub struct ClassRow {
    /// Class index.
    pub class: usize,
    /// Mean of its row: how far its images can be pushed into other classes.
    pub as_generate: Option<f64>,
    /// Standard deviation over seeds of the per-seed row mean.
    pub as_generate_std: f64,
    /// Mean of its column: how easily other classes are pushed into it.
    pub as_target: Option<f64>,
    /// Standard deviation over seeds of the per-seed column mean.
    pub as_target_std: f64,
}

/// Analyses `m` (tests seeded, so the same matrix gives the same report).
pub fn analyse(m: &Matrix) -> Analysis {
    let v = m.values();
    let sym = symmetry(m);
    let row = |g: usize| -> Vec<f64> { (0..K).filter_map(|t| m.mean[g][t]).collect() };
    let col = |t: usize| -> Vec<f64> { (0..K).filter_map(|g| m.mean[g][t]).collect() };
    let seed_spread = |f: &dyn Fn(&Grid10) -> Vec<f64>| -> f64 {
        let per: Vec<f64> = m
            .per_seed
            .values()
            .map(f)
            .filter(|x| !x.is_empty())
            .map(|x| mean(&x))
            .collect();
        std(&per)
    };
    let classes = (0..K)
        .map(|c| ClassRow {
            class: c,
            as_generate: (!row(c).is_empty()).then(|| mean(&row(c))),
            as_generate_std: seed_spread(&|x| (0..K).filter_map(|t| x[c][t]).collect()),
            as_target: (!col(c).is_empty()).then(|| mean(&col(c))),
            as_target_std: seed_spread(&|x| (0..K).filter_map(|g| x[g][c]).collect()),
        })
        .collect();
    let groups = |f: &dyn Fn(usize) -> Vec<f64>| -> Option<TestResult> {
        let g: Vec<Vec<f64>> = (0..K).map(f).filter(|x| !x.is_empty()).collect();
        (g.len() >= 2 && g.iter().map(Vec::len).sum::<usize>() > g.len())
            .then(|| group_means_test(&g, &mut test_rng("class-groups")))
    };
    Analysis {
        n: v.len(),
        seeds: m.per_seed.len(),
        min: v.iter().copied().fold(f64::INFINITY, f64::min),
        median: median(&v),
        mean: mean(&v),
        max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        below_01: v.iter().filter(|x| **x < 0.1).count(),
        within_02_05: v.iter().filter(|x| (0.2..=0.5).contains(*x)).count(),
        above_05: v.iter().filter(|x| **x > 0.5).count(),
        symmetry: sym,
        classes,
        rows_test: groups(&row),
        columns_test: groups(&col),
    }
}

fn symmetry(m: &Matrix) -> Option<Symmetry> {
    let mut up = Vec::new();
    let mut down = Vec::new();
    let mut which = Vec::new();
    let mut by_seed = Vec::new();
    for g in 0..K {
        for t in g + 1..K {
            if let (Some(a), Some(b)) = (m.mean[g][t], m.mean[t][g]) {
                up.push(a);
                down.push(b);
                which.push((g, t));
                by_seed.push(
                    m.per_seed
                        .values()
                        .filter_map(|x| Some((x[g][t]?, x[t][g]?)))
                        .collect::<Vec<_>>(),
                );
            }
        }
    }
    if up.is_empty() {
        return None;
    }
    let d: Vec<f64> = up.iter().zip(&down).map(|(a, b)| a - b).collect();
    let gaps: Vec<f64> = d.iter().map(|x| x.abs()).collect();
    let (imax, max_gap) =
        gaps.iter()
            .copied()
            .enumerate()
            .fold(
                (0, f64::NEG_INFINITY),
                |b, (i, x)| if x > b.1 { (i, x) } else { b },
            );
    Some(Symmetry {
        pairs: up.len(),
        mean_gap: mean(&gaps),
        median_gap: median(&gaps),
        max_gap,
        max_pair: which[imax],
        correlation: pearson(&up, &down),
        signed_rank: signed_rank_test(&d, &mut test_rng("symmetry-signed-rank")),
        beyond_seed_noise: seed_asymmetry_test(&by_seed, &mut test_rng("symmetry-seeds")),
    })
}

/// One dataset's published observations (of a blog study of this attack), as the report
/// quotes them: the range of the pair values, the symmetry and the classes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Published {
    /// The dataset observed.
    pub dataset: DatasetKind,
    /// Where the pair values lie.
    pub range: String,
    /// Whether G -> T is as easy as T -> G.
    pub symmetry: String,
    /// Whether some class stands out.
    pub classes: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishedFile {
    observation: Vec<Published>,
}

/// The observations of `published.toml` (compiled in).
pub fn published_observations() -> Vec<Published> {
    toml::from_str::<PublishedFile>(include_str!("published.toml"))
        .expect("published.toml is valid (tested)")
        .observation
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analysis_by_hand() {
        let mut g = [[None; K]; K];
        g[0][1] = Some(0.5);
        g[1][0] = Some(0.1);
        g[2][3] = Some(0.3);
        let m = Matrix::new(DatasetKind::Mnist, [(1, g)].into());
        let a = analyse(&m);
        assert_eq!((a.n, a.below_01, a.within_02_05, a.above_05), (3, 0, 2, 0));
        assert_eq!(a.min, 0.1);
        assert_eq!(a.max, 0.5);
        let y = a.symmetry.unwrap();
        assert_eq!(y.pairs, 1);
        assert!((y.max_gap - 0.4).abs() < 1e-12);
        assert_eq!(y.max_pair, (0, 1));
        assert!(y.beyond_seed_noise.is_none());
        assert_eq!(a.classes[0].as_generate, Some(0.5));
        assert_eq!(a.classes[1].as_target, Some(0.5));
        assert_eq!(a.classes[5].as_generate, None);
    }

    #[test]
    fn published_observations_cover_both_datasets_once() {
        let p = published_observations();
        let mut d: Vec<DatasetKind> = p.iter().map(|o| o.dataset).collect();
        d.dedup();
        assert_eq!(d, DatasetKind::ALL.to_vec());
        assert!(p[0].range.contains("0.2-0.5"));
    }
}
