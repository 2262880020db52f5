//! Lower-case hexadecimal encoding for fixed-size identifiers and digests.

/// Encodes bytes as lower-case hex.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Decodes exactly `N` bytes from `2 * N` hex digits (either case).
/// Returns `None` for any other length or a non-hex character.
pub fn decode_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    decode_into(text, &mut out).then_some(out)
}

/// [`decode_array`]'s work, once for every length (the browser's module carried a copy per
/// identifier size).
fn decode_into(text: &str, out: &mut [u8]) -> bool {
    let digits = text.as_bytes();
    if digits.len() != 2 * out.len() {
        return false;
    }
    for (slot, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let (Some(high), Some(low)) = (nibble(pair[0]), nibble(pair[1])) else {
            return false;
        };
        *slot = (high << 4) | low;
    }
    true
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let bytes = [0x00, 0x7f, 0x80, 0xff, 0x12];
        assert_eq!(encode(&bytes), "007f80ff12");
        assert_eq!(decode_array::<5>("007F80ff12"), Some(bytes));
    }

    #[test]
    fn rejects_wrong_length_and_non_hex() {
        assert_eq!(decode_array::<2>("abc"), None);
        assert_eq!(decode_array::<2>("abcdef"), None);
        assert_eq!(decode_array::<2>("zz00"), None);
        // A multi-byte character must not be split into "digits".
        assert_eq!(decode_array::<2>("é00"), None);
    }
}
