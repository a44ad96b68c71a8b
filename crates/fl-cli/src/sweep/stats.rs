//! The statistics of a sweep report: means, spreads and permutation tests.
//!
//! Permutation tests need no distribution tables and assume only exchangeability under the
//! null hypothesis; their p-values come from a fixed number of seeded random permutations, so
//! a report is the same every time it is made from the same cells.

use fl_data::rng::{Stream, stream};
use rand::RngExt;
use rand::seq::SliceRandom;

/// Random permutations per test.
pub const PERMUTATIONS: usize = 20_000;

/// Mean (0 for no values).
pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Sample standard deviation (n - 1); 0 for fewer than two values.
pub fn std(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

/// Median (0 for no values).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Pearson correlation of paired values (0 when either side is constant).
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let (mx, my) = (mean(x), mean(y));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    if sxx == 0.0 || syy == 0.0 {
        0.0
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

/// Ranks 1..=n of `v` (ties get their average rank).
pub fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

/// A test's statistic and p-value.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TestResult {
    /// The observed statistic.
    pub statistic: f64,
    /// Share of permutations at least as extreme (with the observed one counted).
    pub p_value: f64,
}

fn p_value(hits: usize) -> f64 {
    (hits + 1) as f64 / (PERMUTATIONS + 1) as f64
}

/// Wilcoxon signed-rank test of paired differences `d` against a median of 0, two-sided:
/// statistic = sum of the signed ranks of |d| (zeros dropped); p from random sign flips.
pub fn signed_rank_test(d: &[f64], rng: &mut Stream) -> TestResult {
    let nz: Vec<f64> = d.iter().copied().filter(|x| *x != 0.0).collect();
    let r = ranks(&nz.iter().map(|x| x.abs()).collect::<Vec<_>>());
    let observed: f64 = nz.iter().zip(&r).map(|(x, r)| r * x.signum()).sum();
    let hits = (0..PERMUTATIONS)
        .filter(|_| {
            let s: f64 = r
                .iter()
                .map(|r| if rng.random::<bool>() { *r } else { -*r })
                .sum();
            s.abs() >= observed.abs() - 1e-9
        })
        .count();
    TestResult {
        statistic: observed,
        p_value: p_value(hits),
    }
}

/// Asymmetry beyond seed noise: `pairs[k][s] = (M_s[g][t], M_s[t][g])` for each unordered
/// pair k and seed s. Statistic: the sum over pairs of |mean over seeds of the difference|.
/// Under symmetry the two directions of a seed are exchangeable, so each seed's difference
/// may flip its sign. `None` with fewer than two seeds (one difference per pair never changes
/// its size under a flip, so the test has no power).
pub fn seed_asymmetry_test(pairs: &[Vec<(f64, f64)>], rng: &mut Stream) -> Option<TestResult> {
    if pairs.is_empty() || pairs.iter().any(|p| p.len() < 2) {
        return None;
    }
    let diffs: Vec<Vec<f64>> = pairs
        .iter()
        .map(|p| p.iter().map(|(a, b)| a - b).collect())
        .collect();
    let stat = |signs: &mut dyn FnMut() -> f64| -> f64 {
        diffs
            .iter()
            .map(|d| (d.iter().map(|x| x * signs()).sum::<f64>() / d.len() as f64).abs())
            .sum()
    };
    let observed = stat(&mut || 1.0);
    let hits = (0..PERMUTATIONS)
        .filter(|_| stat(&mut || if rng.random::<bool>() { 1.0 } else { -1.0 }) >= observed - 1e-12)
        .count();
    Some(TestResult {
        statistic: observed,
        p_value: p_value(hits),
    })
}

/// Do the groups differ? `groups` are values by class (e.g. the 9 off-diagonal values of a
/// matrix row). Statistic: the variance of the group means; p from shuffling all values
/// across the groups (sizes kept).
pub fn group_means_test(groups: &[Vec<f64>], rng: &mut Stream) -> TestResult {
    let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
    let mut all: Vec<f64> = groups.iter().flatten().copied().collect();
    let stat = |values: &[f64]| -> f64 {
        let mut means = Vec::with_capacity(sizes.len());
        let mut at = 0;
        for &n in &sizes {
            means.push(mean(&values[at..at + n]));
            at += n;
        }
        let m = mean(&means);
        means.iter().map(|x| (x - m).powi(2)).sum::<f64>() / means.len() as f64
    };
    let observed = stat(&all);
    let hits = (0..PERMUTATIONS)
        .filter(|_| {
            all.shuffle(rng);
            stat(&all) >= observed - 1e-12
        })
        .count();
    TestResult {
        statistic: observed,
        p_value: p_value(hits),
    }
}

/// The seeded stream of a report's test called `purpose`.
pub fn test_rng(purpose: &str) -> Stream {
    stream(0, purpose, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_by_hand() {
        assert_eq!(mean(&[1.0, 2.0, 6.0]), 3.0);
        assert!((std(&[1.0, 2.0, 6.0]) - 7.0f64.sqrt()).abs() < 1e-12);
        assert_eq!(median(&[5.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(ranks(&[10.0, 20.0, 10.0, 5.0]), vec![2.5, 4.0, 2.5, 1.0]);
        assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]) - 1.0).abs() < 1e-12);
        assert!((pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
    }

    #[test]
    fn signed_rank_test_separates_shifted_from_centred_differences() {
        // All 12 differences positive: only 2 of 4096 sign patterns are as extreme.
        let shifted: Vec<f64> = (1..=12).map(|i| i as f64 * 0.01).collect();
        let t = signed_rank_test(&shifted, &mut test_rng("a"));
        assert_eq!(t.statistic, 78.0);
        assert!(t.p_value < 0.002, "{t:?}");
        // Alternating signs of equal size: statistic 0, p = 1.
        let centred: Vec<f64> = (0..12)
            .map(|i| if i % 2 == 0 { 0.1 } else { -0.1 })
            .collect();
        let t = signed_rank_test(&centred, &mut test_rng("a"));
        assert_eq!(t.statistic, 0.0);
        assert_eq!(t.p_value, 1.0);
    }

    #[test]
    fn seed_asymmetry_needs_two_seeds_and_finds_consistent_gaps() {
        let one_seed = vec![vec![(0.5, 0.1)]; 10];
        assert!(seed_asymmetry_test(&one_seed, &mut test_rng("s")).is_none());
        // Ten pairs, three seeds, each direction consistently apart: significant.
        let apart = vec![vec![(0.5, 0.1), (0.52, 0.11), (0.49, 0.09)]; 10];
        let t = seed_asymmetry_test(&apart, &mut test_rng("s")).unwrap();
        assert!(t.p_value < 0.01, "{t:?}");
        // Differences that change sign between seeds as often as not: no evidence.
        let noise: Vec<Vec<(f64, f64)>> = (0..10)
            .map(|k| {
                let d = 0.05 * (k % 3) as f64;
                vec![(0.3 + d, 0.3), (0.3, 0.3 + d), (0.3, 0.3)]
            })
            .collect();
        let t = seed_asymmetry_test(&noise, &mut test_rng("s")).unwrap();
        assert!(t.p_value > 0.2, "{t:?}");
    }

    #[test]
    fn group_means_test_finds_one_deviating_class_and_not_noise() {
        let mut rng = stream(7, "values", &[]);
        let noise: Vec<Vec<f64>> = (0..10)
            .map(|_| (0..9).map(|_| rng.random::<f64>()).collect())
            .collect();
        let t = group_means_test(&noise, &mut test_rng("g"));
        assert!(t.p_value > 0.05, "{t:?}");
        let mut outlier = noise.clone();
        outlier[3].iter_mut().for_each(|v| *v += 1.0);
        let t = group_means_test(&outlier, &mut test_rng("g"));
        assert!(t.p_value < 0.001, "{t:?}");
        // Deterministic: same data, same p.
        assert_eq!(t, group_means_test(&outlier, &mut test_rng("g")));
    }
}
