//! The one way randomness is made: a ChaCha stream derived from the run's seed and a purpose.
//!
//! Every random choice of the project (partition, client k's shuffle in round r, model
//! initialisation, generator noise, ...) draws from its own stream, so adding a new random
//! choice somewhere never shifts the numbers of another.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// The project's random number generator.
pub type Stream = ChaCha8Rng;

/// A random stream for `purpose` (e.g. `"partition"`) and indices (e.g. `[client, round]`).
///
/// The stream's seed is a hash of the run seed, the purpose and the indices: two different
/// purposes or index tuples give independent streams, and the same inputs give the same stream.
pub fn stream(seed: u64, purpose: &str, indices: &[u64]) -> Stream {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update((purpose.len() as u64).to_le_bytes());
    h.update(purpose.as_bytes());
    for i in indices {
        h.update(i.to_le_bytes());
    }
    Stream::from_seed(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn same_inputs_same_stream_and_purposes_differ() {
        let a: Vec<u32> = (0..4).map(|_| stream(7, "x", &[1, 2]).next_u32()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut s1 = stream(7, "x", &[1, 2]);
        let mut s2 = stream(7, "y", &[1, 2]);
        let mut s3 = stream(7, "x", &[2, 1]);
        let mut s4 = stream(8, "x", &[1, 2]);
        let v1 = s1.next_u64();
        assert_ne!(v1, s2.next_u64());
        assert_ne!(v1, s3.next_u64());
        assert_ne!(v1, s4.next_u64());
    }
}
