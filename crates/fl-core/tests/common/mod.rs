//! What the core's test binaries share.
#![allow(dead_code)] // each test binary uses its own part

/// Largest absolute difference of two equally long vectors.
pub fn worst_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max)
}
