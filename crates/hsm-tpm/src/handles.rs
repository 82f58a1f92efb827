//! Persistent handles: the EK's, the SRK's and the identity key's, where a new identity key is staged,
//! and a handle read from text.

use hsm_core::Result;

/// Persistent handle of the endorsement key.
pub const EK_HANDLE: u32 = 0x8101_0001;
/// Persistent handle of the storage root key.
pub(crate) const SRK_HANDLE: u32 = 0x8100_0001;
/// Default persistent handle of the DPS identity (HMAC) key.
pub const IDENTITY_HANDLE: u32 = 0x8100_0100;

/// Parse a persistent handle: an integer or a `0x...` string, within 0x81000000..=0x81ffffff.
pub(crate) fn parse_handle(what: &'static str, text: &str) -> Result<u32> {
    hsm_core::token::persistent_handle(what, text)
}

/// Parse a persistent handle (`0x81000200` or decimal) and check its range.
pub fn parse_persistent_handle(text: &str) -> Result<u32> {
    parse_handle("handle", text)
}

/// The persistent handle a new identity key is staged at during activation: the first of
/// `identity + 1`, `identity - 1`, `identity + 2` that is a persistent handle and not the EK's or
/// SRK's.
pub fn staging_handle(identity: u32) -> u32 {
    [
        identity.wrapping_add(1),
        identity.wrapping_sub(1),
        identity.wrapping_add(2),
    ]
    .into_iter()
    .find(|c| (0x8100_0000..=0x81ff_ffff).contains(c) && ![EK_HANDLE, SRK_HANDLE].contains(c))
    .unwrap_or(identity)
}
