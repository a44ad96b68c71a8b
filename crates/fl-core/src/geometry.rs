//! Norms, distances and angles between flat updates, in f64.

/// L2 norm.
pub fn norm(a: &[f32]) -> f64 {
    a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt()
}

/// Squared Euclidean distance.
pub fn sq_distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum()
}

/// Dot product.
pub fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// The angle between two vectors in radians, in [0, pi]; 0 when either is zero (a zero
/// update points nowhere, so it is treated as aligned rather than as an outlier).
pub fn angle(a: &[f32], b: &[f32]) -> f64 {
    angle_from(dot(a, b), norm(a), norm(b))
}

/// [`angle`] from the dot product and the two norms.
pub fn angle_from(dot: f64, na: f64, nb: f64) -> f64 {
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    (dot / (na * nb)).clamp(-1.0, 1.0).acos()
}

/// The cosine similarity of two vectors, in [-1, 1]; 0 when either is zero.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (na, nb) = (norm(a), norm(b));
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    (dot(a, b) / (na * nb)).clamp(-1.0, 1.0)
}

/// `m[i][j] = f(v[i], v[j])` for a symmetric `f`, each pair computed once.
pub fn pairwise(v: &[&[f32]], f: impl Fn(&[f32], &[f32]) -> f64) -> Vec<Vec<f64>> {
    pairwise_indices(v.len(), |i, j| f(v[i], v[j]))
}

/// `m[i][j] = f(i, j)` for `i, j < n` and a symmetric `f`, each pair computed once, 0 on the
/// diagonal.
pub fn pairwise_indices(n: usize, f: impl Fn(usize, usize) -> f64) -> Vec<Vec<f64>> {
    let mut m = vec![vec![0.0; n]; n];
    for (i, j) in (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j))) {
        let x = f(i, j);
        m[i][j] = x;
        m[j][i] = x;
    }
    m
}

/// The coordinate-wise mean of `v` with equal weights (sums in f64); `v` must not be empty.
pub fn mean(v: &[&[f32]]) -> Vec<f32> {
    let n = v.len() as f64;
    (0..v[0].len())
        .map(|i| (v.iter().map(|x| x[i] as f64).sum::<f64>() / n) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::{FRAC_PI_2, PI};

    #[test]
    fn by_hand() {
        assert_eq!(norm(&[3.0, 4.0]), 5.0);
        assert_eq!(sq_distance(&[1.0, 1.0], &[4.0, 5.0]), 25.0);
        assert!((angle(&[1.0, 0.0], &[0.0, 2.0]) - FRAC_PI_2).abs() < 1e-12);
        assert!((angle(&[1.0, 1.0], &[-3.0, -3.0]) - PI).abs() < 1e-7);
        assert!(angle(&[1.0, 1.0], &[2.0, 2.0]) < 1e-7);
        assert_eq!(angle(&[0.0, 0.0], &[2.0, 2.0]), 0.0);
        let m = pairwise(&[&[0.0], &[1.0], &[3.0]], sq_distance);
        assert_eq!(
            m,
            vec![
                vec![0.0, 1.0, 9.0],
                vec![1.0, 0.0, 4.0],
                vec![9.0, 4.0, 0.0]
            ]
        );
    }
}
