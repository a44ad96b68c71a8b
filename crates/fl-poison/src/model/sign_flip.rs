//! Sign flipping (Allen-Zhu et al., "Byzantine-resilient non-convex stochastic gradient
//! descent", ICLR 2021; as ByzFL's `SignFlipping`): the negated mean of the benign updates.

use super::{Craft, CraftContext, check_benign, mean};
use fl_core::error::Result;

/// Sends `-mean(benign)`. No parameters.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignFlip;

impl Craft for SignFlip {
    fn craft(&mut self, benign: &[&[f32]], _: CraftContext<'_>) -> Result<Vec<f32>> {
        check_benign("sign flipping", benign)?;
        Ok(mean(benign).into_iter().map(|x| -x).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::{ctx, refs, three};

    #[test]
    fn the_negated_mean() {
        let v = three();
        assert_eq!(SignFlip.craft(&refs(&v), ctx()).unwrap(), [-4., -5., -6.]);
    }
}
