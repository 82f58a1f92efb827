//! The one percent-codec of the project: `%XX` escapes for every byte outside an unreserved set.
//!
//! Two sets are used: [`TOKEN`] for the values inside alias-key tokens (RFC 3986 unreserved
//! characters and `/`, uppercase hex, as RFC 7512 writes them), and [`SAS`] for SAS tokens (the
//! Azure SDKs' set `A-Z a-z 0-9 ! ( ) * - . _`, lowercase hex: the signature covers the encoded
//! text, so it must be exactly theirs).

use crate::{Error, Result};

/// An unreserved set and the case of the hex digits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Codec {
    /// Bytes written as they are, besides ASCII letters and digits.
    pub unreserved: &'static [u8],
    pub lowercase: bool,
}

/// Values in alias-key tokens: paths keep their `/`, everything else that could end an
/// attribute (`;`, `=`, `%`, spaces...) is escaped.
pub(crate) const TOKEN: Codec = Codec {
    unreserved: b"-._~/",
    lowercase: false,
};

/// SAS tokens, as the Azure SDKs encode them.
pub(crate) const SAS: Codec = Codec {
    unreserved: b"!()*-._",
    lowercase: true,
};

impl Codec {
    /// Encode `bytes`.
    pub(crate) fn encode(&self, bytes: &[u8]) -> String {
        const UPPER: &[u8; 16] = b"0123456789ABCDEF";
        const LOWER: &[u8; 16] = b"0123456789abcdef";
        let hex = if self.lowercase { LOWER } else { UPPER };
        let mut out = String::with_capacity(bytes.len());
        for &b in bytes {
            if b.is_ascii_alphanumeric() || self.unreserved.contains(&b) {
                out.push(char::from(b));
            } else {
                out.push('%');
                out.push(char::from(hex[usize::from(b >> 4)]));
                out.push(char::from(hex[usize::from(b & 0xf)]));
            }
        }
        out
    }

    /// Encode a string.
    pub(crate) fn encode_str(&self, s: &str) -> String {
        self.encode(s.as_bytes())
    }
}

/// Decode `%XX` escapes (either case); other characters are kept. `what` names the value in
/// errors.
pub(crate) fn decode(what: &str, s: &str) -> Result<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    Error::parse(
                        what,
                        format!("bad percent escape at byte {i}: `%` must be followed by two hex digits"),
                    )
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// [`decode`], then require UTF-8.
pub(crate) fn decode_utf8(what: &str, s: &str) -> Result<String> {
    String::from_utf8(decode(what, s)?).map_err(|e| {
        Error::parse(
            what,
            format!(
                "not UTF-8 after percent-decoding (invalid byte at {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_and_case() {
        assert_eq!(TOKEN.encode_str("/a b;c=%d~"), "/a%20b%3Bc%3D%25d~");
        assert_eq!(SAS.encode_str("a/b c+=~"), "a%2fb%20c%2b%3d%7e");
        assert_eq!(decode_utf8("v", "a%2fB%2F").unwrap(), "a/B/");
        for bad in ["%", "%4", "%zz", "a%+1"] {
            let e = decode("value", bad).unwrap_err().to_string();
            assert!(e.contains("value") && e.contains("bad percent escape"), "{bad}: {e}");
        }
        let e = decode_utf8("the path", "%FF").unwrap_err().to_string();
        assert!(e.contains("the path") && e.contains("not UTF-8"), "{e}");
    }
}
