//! The input of a unit made from a range (`Inputs::Range` in the job API): `[from, to)` as
//! two little-endian `u64`s, 16 bytes. Job modules that take ranges decode it themselves.

/// Encodes the range `[from, to)`.
pub fn encode_range(from: u64, to: u64) -> Vec<u8> {
    let mut input = Vec::with_capacity(16);
    input.extend_from_slice(&from.to_le_bytes());
    input.extend_from_slice(&to.to_le_bytes());
    input
}

/// Decodes a range input; `None` unless it is exactly 16 bytes.
pub fn decode_range(input: &[u8]) -> Option<(u64, u64)> {
    let bytes: &[u8; 16] = input.try_into().ok()?;
    let (from, to) = bytes.split_at(8);
    Some((
        u64::from_le_bytes(from.try_into().ok()?),
        u64::from_le_bytes(to.try_into().ok()?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_other_lengths() {
        let input = encode_range(7, u64::MAX);
        assert_eq!(input.len(), 16);
        assert_eq!(decode_range(&input), Some((7, u64::MAX)));
        assert_eq!(decode_range(&input[..15]), None);
        assert_eq!(decode_range(&[0; 17]), None);
    }
}
