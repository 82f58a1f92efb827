//! Percent-encoding of attribute values as RFC 7512 writes it (which characters a path or a query
//! value may carry unescaped).

use std::fmt::Write as _;

use hsm_core::Result;

use super::error::{SECRET_ATTRIBUTES, uri_error};

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Where an attribute stands: the path (`;`-separated) or the query (`&`-separated).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    Path,
    Query,
}

/// Characters RFC 7512 allows unescaped in a value: unreserved, `pk11-res-avail`, plus `&` in
/// the path and `/ ? |` in the query.
fn is_value_char(b: u8, part: Part) -> bool {
    b.is_ascii_alphanumeric()
        || b"-._~:[]@!$'()*+,=".contains(&b)
        || match part {
            Part::Path => b == b'&',
            Part::Query => b"/?|".contains(&b),
        }
}

pub(super) fn percent_decode(attribute: &str, value: &str, part: Part) -> Result<Vec<u8>> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value);
            let lo = bytes.get(i + 2).copied().and_then(hex_value);
            match (hi, lo) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => {
                    return Err(uri_error(
                        attribute,
                        format!("bad percent-encoding at byte {i}: `%` must be followed by two hex digits"),
                    ));
                }
            }
            i += 3;
        } else if is_value_char(b, part) {
            out.push(b);
            i += 1;
        } else {
            let reason = if SECRET_ATTRIBUTES.contains(&attribute) {
                format!("the character at byte {i} must be percent-encoded (not shown: the value is secret)")
            } else {
                format!(
                    "character `{}` at byte {i} must be percent-encoded",
                    char::from(b).escape_default()
                )
            };
            return Err(uri_error(attribute, reason));
        }
    }
    Ok(out)
}

pub(super) fn decode_text(attribute: &str, value: &str, part: Part) -> Result<String> {
    String::from_utf8(percent_decode(attribute, value, part)?)
        .map_err(|_| uri_error(attribute, "not UTF-8 after percent-decoding"))
}

pub(super) fn encode_text(v: &str, part: Part) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) || (part == Part::Query && b == b'/') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Every byte as `%XX` (the usual form of `id`).
pub(crate) fn encode_bytes(v: &[u8]) -> String {
    let mut out = String::with_capacity(v.len() * 3);
    for b in v {
        let _ = write!(out, "%{b:02X}");
    }
    out
}
