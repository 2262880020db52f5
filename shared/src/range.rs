//! The input of a unit made from a range (`Inputs::Range` in the job API): `[from, to)` as
//! two little-endian `u64`s, 16 bytes. Job modules that take ranges decode it themselves.
//!
//! [`RangeUnits`] says which units a range makes, so that the portal (which stores them) and a
//! distributor (which signs their digest) cut a range the same way.

/// The units of a range job: `[start, end)` cut into pieces of `step` numbers, the last one
/// shorter when `step` does not divide the range. Unit `i` covers
/// `[start + i·step, min(start + (i + 1)·step, end))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeUnits {
    start: u64,
    end: u64,
    step: u64,
}

impl RangeUnits {
    /// The units of `[start, end)` in steps of `step`; `None` unless `start < end` and
    /// `step > 0`.
    pub fn new(start: u64, end: u64, step: u64) -> Option<Self> {
        (start < end && step > 0).then_some(Self { start, end, step })
    }

    /// How many units the range makes (at least one).
    pub fn units(&self) -> u64 {
        (self.end - self.start).div_ceil(self.step)
    }

    /// Unit `index`'s `[from, to)`, or `None` past the last unit.
    pub fn get(&self, index: u64) -> Option<(u64, u64)> {
        if index >= self.units() {
            return None;
        }
        // `index · step < end − start`, since `index < ⌈(end − start) / step⌉`: no overflow.
        let from = self.start + index * self.step;
        Some((from, from.saturating_add(self.step).min(self.end)))
    }

    /// Every unit's `[from, to)`, in order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        (0..self.units()).filter_map(|index| self.get(index))
    }
}

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

    #[test]
    fn a_range_is_cut_into_steps_with_a_shorter_last_unit() {
        let units = RangeUnits::new(3, 10, 3).unwrap();
        assert_eq!(units.units(), 3);
        assert_eq!(units.iter().collect::<Vec<_>>(), [(3, 6), (6, 9), (9, 10)]);
        assert_eq!(units.get(3), None);
        // The last unit ends at the end of the number line, not past it.
        let top = RangeUnits::new(u64::MAX - 5, u64::MAX, 4).unwrap();
        assert_eq!(
            top.iter().collect::<Vec<_>>(),
            [(u64::MAX - 5, u64::MAX - 1), (u64::MAX - 1, u64::MAX)]
        );
        assert_eq!(RangeUnits::new(0, u64::MAX, u64::MAX).unwrap().units(), 1);
        assert_eq!(RangeUnits::new(0, u64::MAX, 1).unwrap().units(), u64::MAX);
        assert_eq!(RangeUnits::new(5, 5, 1), None);
        assert_eq!(RangeUnits::new(6, 5, 1), None);
        assert_eq!(RangeUnits::new(0, 5, 0), None);
    }
}
