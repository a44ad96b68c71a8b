//! Batch normalisation by the statistics of the batch at hand, on the CPU kernels.
//!
//! The FedPoisonMIA authors' ResNet20 has BatchNorm layers and their code never leaves
//! PyTorch's training mode, so every forward pass (training, testing, judging membership)
//! normalises each feature by the mean and biased variance of the batch it is computing, and
//! no running statistics exist. This module holds that arithmetic for the `mlp-bn` kernels:
//! the forward pass keeps the normalised values for the backward pass, which is the usual
//! closed form of the gradient through the batch statistics. Sums run over the rows in order,
//! so the same batch gives the same bits.

/// Batch normalisation's epsilon, added to the variance (PyTorch's default).
pub const EPSILON: f32 = 1e-5;

/// What the backward pass of [`forward_relu`] needs: the normalised values and the inverse
/// standard deviation of each feature.
pub(crate) struct Saved {
    /// `(z - mean) / sqrt(var + eps)`, `[b][f]`.
    pub xhat: Vec<f32>,
    /// `1 / sqrt(var + eps)` per feature.
    pub inv_std: Vec<f32>,
}

/// Normalises the rows of `z [b][f]` by their per-feature mean and biased variance, scales by
/// `gamma`, shifts by `beta` and applies ReLU, in place; returns what the backward pass needs.
pub(crate) fn forward_relu(z: &mut [f32], f: usize, gamma: &[f32], beta: &[f32]) -> Saved {
    let b = z.len() / f;
    let mut mean = vec![0.0f32; f];
    for row in z.chunks_exact(f) {
        mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
    }
    mean.iter_mut().for_each(|m| *m /= b as f32);
    let mut var = vec![0.0f32; f];
    for row in z.chunks_exact(f) {
        for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
            let c = v - m;
            *s += c * c;
        }
    }
    let inv_std: Vec<f32> = var
        .iter()
        .map(|s| 1.0 / (s / b as f32 + EPSILON).sqrt())
        .collect();
    let mut xhat = vec![0.0f32; z.len()];
    for (row, hrow) in z.chunks_exact_mut(f).zip(xhat.chunks_exact_mut(f)) {
        for j in 0..f {
            let h = (row[j] - mean[j]) * inv_std[j];
            hrow[j] = h;
            row[j] = (gamma[j] * h + beta[j]).max(0.0);
        }
    }
    Saved { xhat, inv_std }
}

/// The backward pass of [`forward_relu`]: `d` holds the gradient with respect to its output
/// `a` on entry and with respect to its input `z` on return; the gradients of `gamma` and
/// `beta` go into `grads` when given.
pub(crate) fn backward_relu(
    a: &[f32],
    d: &mut [f32],
    f: usize,
    saved: &Saved,
    gamma: &[f32],
    grads: Option<(&mut [f32], &mut [f32])>,
) {
    let b = a.len() / f;
    // Through ReLU: the gradient of the normalised, scaled and shifted value y.
    d.iter_mut()
        .zip(a)
        .for_each(|(dv, &av)| *dv = if av > 0.0 { *dv } else { 0.0 });
    let mut sum_dy = vec![0.0f32; f];
    let mut sum_dy_xhat = vec![0.0f32; f];
    for (drow, hrow) in d.chunks_exact(f).zip(saved.xhat.chunks_exact(f)) {
        for j in 0..f {
            sum_dy[j] += drow[j];
            sum_dy_xhat[j] += drow[j] * hrow[j];
        }
    }
    if let Some((gg, gb)) = grads {
        gg.copy_from_slice(&sum_dy_xhat);
        gb.copy_from_slice(&sum_dy);
    }
    let n = b as f32;
    for (drow, hrow) in d.chunks_exact_mut(f).zip(saved.xhat.chunks_exact(f)) {
        for j in 0..f {
            let k = gamma[j] * saved.inv_std[j] / n;
            drow[j] = k * (n * drow[j] - sum_dy[j] - hrow[j] * sum_dy_xhat[j]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_rows_normalise_to_plus_and_minus_one() {
        // One feature, values 1 and 3: mean 2, biased variance 1, so xhat = -1, +1 (up to
        // epsilon); gamma 2, beta 0.5 give -1.5 -> 0 after ReLU and 2.5.
        let mut z = vec![1.0, 3.0];
        let s = forward_relu(&mut z, 1, &[2.0], &[0.5]);
        let k = 1.0 / (1.0f32 + EPSILON).sqrt();
        assert_eq!(s.xhat, vec![-k, k]);
        assert_eq!(z, vec![0.0, 2.0 * k + 0.5]);
    }

    #[test]
    fn backward_matches_finite_differences() {
        let f = 3;
        let z0: Vec<f32> = (0..5 * f)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0)
            .collect();
        let gamma = [0.7f32, -1.2, 1.5];
        let beta = [0.3f32, 0.9, -0.2];
        let w: Vec<f32> = (0..z0.len()).map(|i| ((i * 13 % 7) as f32) - 3.0).collect();
        // loss = sum(w * a)
        let loss = |z: &[f32]| -> f64 {
            let mut z = z.to_vec();
            forward_relu(&mut z, f, &gamma, &beta);
            z.iter().zip(&w).map(|(a, w)| (a * w) as f64).sum()
        };
        let mut a = z0.clone();
        let saved = forward_relu(&mut a, f, &gamma, &beta);
        let mut d = w.clone();
        let (mut gg, mut gb) = (vec![0.0; f], vec![0.0; f]);
        backward_relu(&a, &mut d, f, &saved, &gamma, Some((&mut gg, &mut gb)));
        let h = 1e-3f32;
        for i in 0..z0.len() {
            let (mut up, mut down) = (z0.clone(), z0.clone());
            up[i] += h;
            down[i] -= h;
            let numeric = (loss(&up) - loss(&down)) / (2.0 * h as f64);
            assert!(
                (numeric - d[i] as f64).abs() < 2e-2,
                "dz[{i}]: numeric {numeric}, analytic {}",
                d[i]
            );
        }
        // d loss / d beta_j = sum over rows of w where the ReLU passes.
        for j in 0..f {
            let expect: f32 = (0..5)
                .filter(|r| a[r * f + j] > 0.0)
                .map(|r| w[r * f + j])
                .sum();
            assert_eq!(gb[j], expect);
        }
    }
}
