//! Small deterministic clustering and projection helpers for the rules that cluster a round's
//! few updates in a low-dimensional feature space (DeepSight's and RFLBAT's simplified forms).
//! With ten to a few hundred points of two features, Lloyd's k-means and a power iteration on
//! the n x n Gram matrix are a few lines each; a clustering crate would bring a matrix
//! library for them.

/// Two-means (Lloyd's algorithm) on `points` (each of the same small dimension), started from
/// the two points farthest apart (the lower indices on ties) rather than from a random draw,
/// so that the result is a function of the points; iterated until no label changes (at most
/// 100 times). Labels are 0 for the cluster of the first starting point, 1 for the other.
/// Fewer than two distinct points: every label is 0.
pub fn two_means(points: &[Vec<f64>]) -> Vec<usize> {
    let n = points.len();
    let d2 = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>();
    let mut far = (0.0, 0, 0);
    for i in 0..n {
        for j in i + 1..n {
            let d = d2(&points[i], &points[j]);
            if d > far.0 {
                far = (d, i, j);
            }
        }
    }
    if far.0 == 0.0 {
        return vec![0; n];
    }
    let mut centers = [points[far.1].clone(), points[far.2].clone()];
    let mut labels = vec![usize::MAX; n];
    for _ in 0..100 {
        let next: Vec<usize> = points
            .iter()
            .map(|p| usize::from(d2(p, &centers[1]) < d2(p, &centers[0])))
            .collect();
        if next == labels {
            break;
        }
        labels = next;
        for (c, center) in centers.iter_mut().enumerate() {
            let members: Vec<&Vec<f64>> = points
                .iter()
                .zip(&labels)
                .filter(|(_, l)| **l == c)
                .map(|(p, _)| p)
                .collect();
            if members.is_empty() {
                continue;
            }
            for (k, v) in center.iter_mut().enumerate() {
                *v = members.iter().map(|m| m[k]).sum::<f64>() / members.len() as f64;
            }
        }
    }
    labels
}

/// The projections of the rows `x` on their top `k` principal directions (of the rows centred
/// on their mean, as PCA computes them), `[n][k]`: the eigenvectors of the centred Gram matrix
/// by power iteration with deflation (500 steps each, from a fixed start), each direction's
/// sign fixed so that its largest loading on the rows is positive.
pub fn principal_projections(x: &[&[f32]], k: usize) -> Vec<Vec<f64>> {
    let n = x.len();
    let d = x[0].len();
    let mean: Vec<f64> = (0..d)
        .map(|j| x.iter().map(|r| r[j] as f64).sum::<f64>() / n as f64)
        .collect();
    let centred: Vec<Vec<f64>> = x
        .iter()
        .map(|r| r.iter().zip(&mean).map(|(&v, m)| v as f64 - m).collect())
        .collect();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
    let mut gram: Vec<Vec<f64>> = (0..n)
        .map(|i| (0..n).map(|j| dot(&centred[i], &centred[j])).collect())
        .collect();
    let mut directions: Vec<Vec<f64>> = Vec::new();
    for _ in 0..k.min(n) {
        let mut u: Vec<f64> = (0..n).map(|i| 1.0 + i as f64 / n as f64).collect();
        let mut lambda = 0.0;
        for _ in 0..500 {
            let next: Vec<f64> = gram.iter().map(|row| dot(row, &u)).collect();
            let len = dot(&next, &next).sqrt();
            if len == 0.0 {
                break;
            }
            lambda = len;
            u = next.iter().map(|v| v / len).collect();
        }
        if lambda <= 1e-12 {
            break;
        }
        // The direction in feature space: centred^T u / sqrt(lambda).
        let mut v: Vec<f64> = (0..d)
            .map(|j| centred.iter().zip(&u).map(|(r, ui)| r[j] * ui).sum::<f64>())
            .collect();
        let len = dot(&v, &v).sqrt();
        v.iter_mut().for_each(|a| *a /= len);
        if let Some(big) = v.iter().copied().max_by(|a, b| a.abs().total_cmp(&b.abs()))
            && big < 0.0
        {
            v.iter_mut().for_each(|a| *a = -*a);
        }
        for i in 0..n {
            for j in 0..n {
                gram[i][j] -= lambda * u[i] * u[j];
            }
        }
        directions.push(v);
    }
    x.iter()
        .map(|r| {
            directions
                .iter()
                .map(|v| r.iter().zip(v).map(|(&a, b)| a as f64 * b).sum())
                .collect()
        })
        .collect()
}

/// For each point, the sum of its Euclidean distances to the others.
pub fn distance_sums(points: &[Vec<f64>]) -> Vec<f64> {
    points
        .iter()
        .map(|p| {
            points
                .iter()
                .map(|q| {
                    p.iter()
                        .zip(q)
                        .map(|(a, b)| (a - b).powi(2))
                        .sum::<f64>()
                        .sqrt()
                })
                .sum()
        })
        .collect()
}

/// The median of `v` (the mean of the two middle values for an even count); `v` non-empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_means_splits_two_groups_from_the_farthest_pair() {
        let p = vec![
            vec![0.0, 0.0],
            vec![0.1, 0.0],
            vec![5.0, 5.0],
            vec![0.0, 0.2],
            vec![5.2, 4.9],
        ];
        // The farthest pair is (0, 4): label 0 follows point 0.
        assert_eq!(two_means(&p), [0, 0, 1, 0, 1]);
        assert_eq!(two_means(&[vec![1.0], vec![1.0]]), [0, 0]);
    }

    #[test]
    fn principal_projections_find_the_axis_of_spread() {
        // Spread along (1, 1, 0)/sqrt 2 by +-3 and along (0, 0, 1) by +-1 around (10, 10, 0).
        let rows: Vec<Vec<f32>> = vec![
            vec![13.0 / 1.0, 13.0, 0.0],
            vec![7.0, 7.0, 0.0],
            vec![10.0, 10.0, 1.0],
            vec![10.0, 10.0, -1.0],
        ];
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let p = principal_projections(&refs, 2);
        let s = std::f64::consts::SQRT_2;
        // First component: the rows on (1, 1, 0)/sqrt 2 (not centred: the mean projects too).
        for (row, want) in p.iter().zip([26.0 / s, 14.0 / s, 20.0 / s, 20.0 / s]) {
            assert!((row[0] - want).abs() < 1e-6, "{row:?}");
        }
        for (row, want) in p.iter().zip([0.0, 0.0, 1.0, -1.0]) {
            assert!((row[1] - want).abs() < 1e-6, "{row:?}");
        }
    }

    #[test]
    fn distance_sums_and_median_by_hand() {
        let p = vec![vec![0.0], vec![1.0], vec![3.0]];
        assert_eq!(distance_sums(&p), [4.0, 3.0, 5.0]);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
