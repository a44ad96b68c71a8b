//! Checkpoints of a run in progress: everything a federation (and the attack in it) carries
//! from one round to the next, so a killed run continues as if it had never stopped. Every
//! random choice is a pure function of (seed, purpose, indices), so no generator state needs
//! saving: what is saved is the global model, the recent models stale clients start from,
//! each participant's optimizer state, the server rule's state, and the attack's.
//!
//! Each part reports its state as bytes (`Participant::state`, `Aggregator::state`,
//! `Attack::state`); `None` from any part means the run cannot be checkpointed, rather than
//! resumed wrongly.

use crate::error::{CoreError, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Bytes of `value` (bincode's standard encoding: exact floats).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| CoreError::Config(format!("cannot encode a checkpoint: {e}")))
}

/// The value `encode` wrote.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let (v, read) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map_err(|e| CoreError::Config(format!("damaged checkpoint: {e}")))?;
    if read != bytes.len() {
        return Err(CoreError::Config(format!(
            "damaged checkpoint: {} bytes after the value",
            bytes.len() - read
        )));
    }
    Ok(v)
}

/// The restore of a part without state: only an empty state is its own.
pub fn stateless(what: &str, state: &[u8]) -> Result<()> {
    if state.is_empty() {
        Ok(())
    } else {
        Err(CoreError::Config(format!(
            "the checkpoint holds state for {what}, which keeps none"
        )))
    }
}

/// What a federation carries between rounds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FederationState {
    /// The last round completed.
    pub round: usize,
    /// The global parameters after it.
    pub global: Vec<f32>,
    /// The recent global models stale clients start from, newest first.
    pub recent: Vec<Vec<f32>>,
    /// Each participant's state, by client.
    pub participants: Vec<Vec<u8>>,
    /// The server rule's state.
    pub aggregator: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_exact_and_damage_is_refused() {
        let v: (Vec<f32>, Option<u64>) = (vec![0.1, f32::MIN_POSITIVE, -3.5e-38], Some(7));
        let b = encode(&v).unwrap();
        assert_eq!(decode::<(Vec<f32>, Option<u64>)>(&b).unwrap(), v);
        assert!(decode::<(Vec<f32>, Option<u64>)>(&b[..b.len() - 1]).is_err());
        let mut longer = b.clone();
        longer.push(0);
        let err = decode::<(Vec<f32>, Option<u64>)>(&longer).unwrap_err();
        assert!(err.to_string().contains("after the value"), "{err}");
        assert!(stateless("x", &[]).is_ok());
        assert!(stateless("x", &[1]).is_err());
    }
}
