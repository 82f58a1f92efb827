//! The errors of URI parsing: each names the attribute, never a secret value.

use hsm_core::Error;

/// An error about `attribute`.
pub(super) fn uri_error(attribute: &str, reason: impl Into<String>) -> Error {
    Error::parse(format!("PKCS#11 URI attribute `{attribute}`"), reason.into())
}

/// Query attributes whose value is a secret: never quoted in an error, in whole or in part.
pub(super) const SECRET_ATTRIBUTES: [&str; 1] = ["pin-value"];
