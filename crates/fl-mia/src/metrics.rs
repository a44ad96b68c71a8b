//! Membership metrics: accuracy, precision, recall, ROC, AUC and TPR at a fixed FPR.

use fl_core::eval::round6;
use serde::{Deserialize, Serialize};

/// The false-positive rates at which the true-positive rate is reported: 0.1% and 1%.
pub const FPRS: [f64; 2] = [0.001, 0.01];

/// The TPR at one FPR.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TprAt {
    /// The false-positive rate asked for.
    pub fpr: f64,
    /// The true-positive rate there; `None` when there are too few non-members to measure
    /// that FPR (fewer than 1 / fpr).
    pub tpr: Option<f64>,
}

/// Scores of the membership decisions of one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembershipScores {
    /// (TP + TN) / N.
    pub accuracy: f64,
    /// TP / (TP + FP); 0 when nothing is called a member.
    pub precision: f64,
    /// TP / (TP + FN).
    pub recall: f64,
    /// Area under the ROC curve of the score.
    pub auc: f64,
    /// TPR at each of [`FPRS`].
    pub tpr_at: Vec<TprAt>,
    /// The smallest FPR the non-members can measure (1 / their number).
    pub smallest_fpr: f64,
    /// Members called members.
    pub true_positives: usize,
    /// Non-members called members.
    pub false_positives: usize,
}

impl MembershipScores {
    /// Scores `decisions` (true = member) and `scores` (higher = more likely a member)
    /// against the ground truth `member`.
    pub fn new(decisions: &[bool], scores: &[f64], member: &[bool]) -> Self {
        assert_eq!(decisions.len(), member.len());
        assert_eq!(scores.len(), member.len());
        let count = |d: bool, m: bool| {
            decisions
                .iter()
                .zip(member)
                .filter(|&(&a, &b)| a == d && b == m)
                .count()
        };
        let (tp, fp, tn, fn_) = (
            count(true, true),
            count(true, false),
            count(false, false),
            count(false, true),
        );
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let negatives = member.iter().filter(|&&m| !m).count();
        Self {
            accuracy: round6(ratio(tp + tn, member.len())),
            precision: round6(ratio(tp, tp + fp)),
            recall: round6(ratio(tp, tp + fn_)),
            auc: round6(auc(scores, member)),
            tpr_at: FPRS
                .iter()
                .map(|&fpr| TprAt {
                    fpr,
                    tpr: tpr_at_fpr(scores, member, fpr).map(round6),
                })
                .collect(),
            smallest_fpr: round6(ratio(1, negatives)),
            true_positives: tp,
            false_positives: fp,
        }
    }
}

/// Area under the ROC curve: the probability that a random member scores above a random
/// non-member, ties counting one half (Mann-Whitney). 0.5 when a class is empty.
pub fn auc(scores: &[f64], member: &[bool]) -> f64 {
    let pos: Vec<f64> = pick(scores, member, true);
    let neg: Vec<f64> = pick(scores, member, false);
    if pos.is_empty() || neg.is_empty() {
        return 0.5;
    }
    let mut neg_sorted = neg.clone();
    neg_sorted.sort_by(f64::total_cmp);
    let mut wins = 0.0f64;
    for p in &pos {
        let below = neg_sorted.partition_point(|n| n < p);
        let not_above = neg_sorted.partition_point(|n| n <= p);
        wins += below as f64 + 0.5 * (not_above - below) as f64;
    }
    wins / (pos.len() as f64 * neg.len() as f64)
}

/// The true-positive rate at false-positive rate at most `fpr`: members scoring strictly
/// above the threshold that lets through floor(fpr x non-members) non-members. `None` when
/// there are fewer than 1 / fpr non-members (the FPR cannot be measured).
pub fn tpr_at_fpr(scores: &[f64], member: &[bool], fpr: f64) -> Option<f64> {
    let mut neg = pick(scores, member, false);
    let pos = pick(scores, member, true);
    if pos.is_empty() || (neg.len() as f64) < (1.0 / fpr).round() {
        return None;
    }
    neg.sort_by(|a, b| b.total_cmp(a));
    let allowed = (fpr * neg.len() as f64 + 1e-9).floor() as usize;
    let threshold = neg[allowed.min(neg.len() - 1)];
    Some(pos.iter().filter(|&&p| p > threshold).count() as f64 / pos.len() as f64)
}

/// The ROC curve: (FPR, TPR) points from (0, 0) to (1, 1), one per distinct score.
pub fn roc(scores: &[f64], member: &[bool]) -> Vec<(f64, f64)> {
    let p = member.iter().filter(|&&m| m).count().max(1) as f64;
    let n = member.iter().filter(|&&m| !m).count().max(1) as f64;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut out = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0usize, 0usize);
    for (k, &i) in order.iter().enumerate() {
        if member[i] {
            tp += 1;
        } else {
            fp += 1;
        }
        let last_of_tie = order.get(k + 1).is_none_or(|&j| scores[j] != scores[i]);
        if last_of_tie {
            out.push((fp as f64 / n, tp as f64 / p));
        }
    }
    out
}

fn pick(scores: &[f64], member: &[bool], want: bool) -> Vec<f64> {
    scores
        .iter()
        .zip(member)
        .filter(|&(_, &m)| m == want)
        .map(|(&s, _)| s)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_hand() {
        // members: 1 caught, 1 missed; non-members: 1 wrongly caught, 2 right.
        let d = [true, false, true, false, false];
        let m = [true, true, false, false, false];
        let s = MembershipScores::new(&d, &[0.9, 0.2, 0.8, 0.1, 0.3], &m);
        assert_eq!(s.accuracy, 0.6);
        assert_eq!(s.precision, 0.5);
        assert_eq!(s.recall, 0.5);
        assert_eq!((s.true_positives, s.false_positives), (1, 1));
        // pairs (member, non-member) won: 0.9 beats 0.8, 0.1, 0.3; 0.2 beats 0.1 -> 4 of 6.
        assert!((s.auc - 4.0 / 6.0).abs() < 1e-6);
        assert_eq!(s.smallest_fpr, 0.333333);
        assert!(
            s.tpr_at.iter().all(|t| t.tpr.is_none()),
            "3 non-members measure no 1% FPR"
        );
    }

    #[test]
    fn auc_extremes_and_ties() {
        let m = [true, true, false, false];
        assert_eq!(auc(&[4.0, 3.0, 2.0, 1.0], &m), 1.0);
        assert_eq!(auc(&[1.0, 2.0, 3.0, 4.0], &m), 0.0);
        assert_eq!(auc(&[1.0; 4], &m), 0.5);
        assert_eq!(auc(&[1.0, 2.0], &[true, true]), 0.5);
    }

    #[test]
    fn tpr_at_fpr_needs_enough_non_members_and_counts_strictly_above() {
        // 100 non-members scoring 0..99, members scoring 98.5 and 50.5.
        let mut s: Vec<f64> = (0..100).map(|i| i as f64).collect();
        let mut m = vec![false; 100];
        s.extend([98.5, 50.5]);
        m.extend([true, true]);
        // 1% of 100 = 1 non-member may pass: threshold is the 2nd highest (98).
        assert_eq!(tpr_at_fpr(&s, &m, 0.01), Some(0.5));
        assert_eq!(tpr_at_fpr(&s, &m, 0.001), None);
        assert_eq!(tpr_at_fpr(&s, &m, 0.5), Some(1.0));
    }

    #[test]
    fn roc_runs_corner_to_corner_and_merges_ties() {
        let r = roc(&[0.9, 0.5, 0.5, 0.1], &[true, true, false, false]);
        assert_eq!(r, vec![(0.0, 0.0), (0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]);
    }
}
