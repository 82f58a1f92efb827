//! Hexadecimal text for digests and token attributes (`fwid=...`): lower-case out, either case in.
//!
//! Our own ~40 lines instead of the `data-encoding` crate, whose general codec tables were 43 KB of
//! the C library for this one use.

/// Why a text is not hexadecimal: the byte offset and what is wrong there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    /// A character that is not a hex digit (offset in bytes).
    #[error("invalid symbol at {0}")]
    Symbol(usize),
    /// An odd number of digits (the length in bytes).
    #[error("odd number of digits ({0})")]
    Length(usize),
}

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lower-case hex digits of `bytes`, two per byte.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// The bytes of a text of hex digits, upper or lower case; no separators, no prefix.
pub fn decode(text: &str) -> Result<Vec<u8>, HexError> {
    let t = text.as_bytes();
    if t.len() % 2 != 0 {
        // Report a bad symbol before the length, as a reader looks at the digits first.
        if let Some(i) = t.iter().position(|c| nibble(*c).is_none()) {
            return Err(HexError::Symbol(i));
        }
        return Err(HexError::Length(t.len()));
    }
    t.chunks_exact(2)
        .enumerate()
        .map(|(i, pair)| {
            let hi = nibble(pair[0]).ok_or(HexError::Symbol(2 * i))?;
            let lo = nibble(pair[1]).ok_or(HexError::Symbol(2 * i + 1))?;
            Ok(hi << 4 | lo)
        })
        .collect()
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let text = encode(&all);
        assert_eq!(&text[..8], "00010203");
        assert_eq!(&text[text.len() - 4..], "feff");
        assert_eq!(decode(&text).unwrap(), all);
        assert_eq!(decode(&text.to_ascii_uppercase()).unwrap(), all);
    }

    #[test]
    fn refuses_what_is_not_hex() {
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
        assert_eq!(decode("0g"), Err(HexError::Symbol(1)));
        assert_eq!(decode("00 1"), Err(HexError::Symbol(2)));
        assert_eq!(decode("abc"), Err(HexError::Length(3)));
        assert_eq!(decode("0x00"), Err(HexError::Symbol(1)));
        assert_eq!(decode("é0"), Err(HexError::Symbol(0)));
        assert_eq!(HexError::Symbol(4).to_string(), "invalid symbol at 4");
    }
}
