//! Evaluation of a model on labelled data: loss, accuracy, per-class accuracy, confusion matrix.

use crate::data::LocalData;
use crate::train::{ModelSpec, Trainer};
use serde::{Deserialize, Serialize};

/// Images per forward pass during evaluation.
const EVAL_BATCH: usize = 1000;

/// The scores of a model on a labelled set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Share of samples classified correctly.
    pub accuracy: f64,
    /// Accuracy on each true class (`NaN`-free: a class without samples reports 0).
    pub per_class_accuracy: Vec<f64>,
    /// `confusion[true][predicted]`; predictions range over all outputs (K + 1, the last being
    /// the "fake" class).
    pub confusion: Vec<Vec<u32>>,
}

impl Evaluation {
    /// Share of samples of class `from` that were classified as `to` (the attack accuracy of
    /// the pair when `from` = G and `to` = T).
    pub fn rate(&self, from: usize, to: usize) -> f64 {
        let row = &self.confusion[from];
        let n: u32 = row.iter().sum();
        if n == 0 {
            0.0
        } else {
            row[to] as f64 / n as f64
        }
    }

    /// Accuracy over the samples whose class is not in `excluded`.
    pub fn accuracy_excluding(&self, excluded: &[usize]) -> f64 {
        let (mut right, mut all) = (0u64, 0u64);
        for (c, row) in self.confusion.iter().enumerate() {
            if excluded.contains(&c) {
                continue;
            }
            right += row[c] as u64;
            all += row.iter().map(|&x| x as u64).sum::<u64>();
        }
        if all == 0 {
            0.0
        } else {
            right as f64 / all as f64
        }
    }
}

/// Logits of every image of `data`, `[len][outputs]` flattened.
pub fn logits(spec: &ModelSpec, params: &[f32], data: &LocalData) -> Vec<f32> {
    if let Trainer::Kernels { kernels, threads } = spec.trainer() {
        return crate::inference::logits(kernels, &spec.dims(), params, &data.images, threads);
    }
    let model = spec.inference_model(params);
    let mut out = Vec::with_capacity(data.len() * spec.outputs);
    let px = data.pixels();
    // A model normalising by batch statistics sees the kernels' blocks.
    let batch = if spec.kind.architecture().batch_statistics {
        crate::inference::BLOCK
    } else {
        EVAL_BATCH
    };
    for start in (0..data.len()).step_by(batch) {
        let end = (start + batch).min(data.len());
        let x = spec.images(data.images[start * px..end * px].to_vec(), &spec.device);
        out.extend(model.forward(x).into_data().iter::<f32>());
    }
    out
}

/// Logits of every image of `data` computed as one batch: for an architecture that
/// normalises by batch statistics, every image is normalised with all the others (as the
/// FedPoisonMIA authors judge their targets, all in one pass); for any other architecture
/// the same as [`logits`].
pub fn logits_one_batch(spec: &ModelSpec, params: &[f32], data: &LocalData) -> Vec<f32> {
    if !spec.kind.architecture().batch_statistics {
        return logits(spec, params, data);
    }
    if let Trainer::Kernels { kernels, .. } = spec.trainer() {
        let mut out = vec![0.0f32; data.len() * spec.outputs];
        (kernels.forward)(&spec.dims(), params, &data.images, &mut out);
        return out;
    }
    let model = spec.inference_model(params);
    let x = spec.images(data.images.clone(), &spec.device);
    model.forward(x).into_data().iter::<f32>().collect()
}

/// Evaluates parameters on `data` whose labels are in `0..classes`.
pub fn evaluate(spec: &ModelSpec, params: &[f32], data: &LocalData, classes: usize) -> Evaluation {
    let k = spec.outputs;
    let z = logits(spec, params, data);
    let mut confusion = vec![vec![0u32; k]; classes];
    let mut loss = 0.0f64;
    for (i, row) in z.chunks_exact(k).enumerate() {
        let y = data.labels[i] as usize;
        loss += cross_entropy(row, y);
        let pred = argmax(row);
        confusion[y][pred] += 1;
    }
    let n = data.len().max(1) as f64;
    let per_class_accuracy: Vec<f64> = (0..classes)
        .map(|c| {
            let total: u32 = confusion[c].iter().sum();
            if total == 0 {
                0.0
            } else {
                confusion[c][c] as f64 / total as f64
            }
        })
        .collect();
    let correct: u32 = (0..classes).map(|c| confusion[c][c]).sum();
    Evaluation {
        loss: loss / n,
        accuracy: correct as f64 / n,
        per_class_accuracy,
        confusion,
    }
}

/// The cross-entropy of logits `row` for class `y` (log-sum-exp minus the class's logit), in
/// f64; its negative exponential is the softmax probability of `y`.
pub fn cross_entropy(row: &[f32], y: usize) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max as f64
        + row
            .iter()
            .map(|&v| ((v - max) as f64).exp())
            .sum::<f64>()
            .ln();
    lse - row[y] as f64
}

/// Rounds a score to 6 decimals, so summaries read well and compare across platforms.
pub fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Index of the largest value (the first on ties).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_exclusions_by_hand() {
        let e = Evaluation {
            loss: 0.0,
            accuracy: 0.0,
            per_class_accuracy: vec![],
            confusion: vec![vec![3, 1, 0], vec![2, 2, 0]],
        };
        assert_eq!(e.rate(1, 0), 0.5);
        assert_eq!(e.rate(0, 1), 0.25);
        assert_eq!(e.accuracy_excluding(&[1]), 0.75);
        assert_eq!(e.accuracy_excluding(&[]), 5.0 / 8.0);
    }

    #[test]
    fn argmax_first_on_ties() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
    }
}
