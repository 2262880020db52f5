//! The input of a unit made from a range (`Inputs::Range` in the job API): `[from, to)` as
//! two little-endian `u64`s, 16 bytes. Job modules that take ranges decode it themselves.
//!
//! [`RangeUnits`] says which units a range makes, so that the portal (which stores them) and a
//! distributor (which signs their digest) cut a range the same way.

use serde::{Deserialize, Serialize};

/// The units of a range job: `[start, end)` cut into pieces of `step` numbers, the last one
/// shorter when `step` does not divide the range. Unit `i` covers
/// `[start + i·step, min(start + (i + 1)·step, end))`.
///
/// It serializes as `{"start", "end", "step"}`, and deserializing checks what [`RangeUnits::new`]
/// checks, so a decoded value always makes at least one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RangeParts")]
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

    /// Unit `index`'s input (as [`encode_range`] makes it), or `None` past the last unit.
    pub fn input(&self, index: u64) -> Option<Vec<u8>> {
        self.get(index).map(|(from, to)| encode_range(from, to))
    }

    /// Every unit's input, in order, made as it is needed.
    pub fn inputs(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        self.iter().map(|(from, to)| encode_range(from, to))
    }
}

/// What a [`RangeUnits`] deserializes from, checked on the way in.
#[derive(Deserialize)]
struct RangeParts {
    start: u64,
    end: u64,
    step: u64,
}

impl TryFrom<RangeParts> for RangeUnits {
    type Error = &'static str;

    fn try_from(parts: RangeParts) -> Result<Self, Self::Error> {
        Self::new(parts.start, parts.end, parts.step)
            .ok_or("a range needs start < end and step > 0")
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
        assert_eq!(units.input(2), Some(encode_range(9, 10)));
        assert_eq!(units.input(3), None);
        assert_eq!(units.inputs().count(), 3);
    }

    #[test]
    fn only_a_range_that_makes_units_deserializes() {
        let units = RangeUnits::new(3, 10, 3).unwrap();
        let json = serde_json::to_string(&units).unwrap();
        assert_eq!(json, r#"{"start":3,"end":10,"step":3}"#);
        assert_eq!(serde_json::from_str::<RangeUnits>(&json).unwrap(), units);
        for bad in [
            r#"{"start":5,"end":5,"step":1}"#,
            r#"{"start":6,"end":5,"step":1}"#,
            r#"{"start":0,"end":5,"step":0}"#,
        ] {
            assert!(serde_json::from_str::<RangeUnits>(bad).is_err(), "{bad}");
        }
    }
}
