//! Mapping of tss-esapi errors onto [`hsm_core::Error`].

use hsm_core::{Error, Origin};

/// The raw TSS2_RC of a tss-esapi error, or `None` for an error of the wrapper itself.
pub(crate) fn raw_rc(e: &tss_esapi::Error) -> Option<u32> {
    use std::error::Error as _;
    match e {
        tss_esapi::Error::WrapperError(_) => None,
        tss_esapi::Error::Tss2Error(code) => {
            // tss-esapi 7 keeps the raw value private; its source's Display is "...: 0x<rc>".
            let text = code.source().map(|s| s.to_string()).unwrap_or_default();
            let hex = text.rsplit("0x").next()?;
            u32::from_str_radix(hex.trim(), 16).ok()
        }
    }
}

/// A TPM error with the operation it happened in.
pub(crate) fn tpm(op: impl Into<String>, e: tss_esapi::Error) -> Error {
    let rv = raw_rc(&e).map(u64::from).unwrap_or(0);
    let mut message = e.to_string();
    if let Some(rc) = raw_rc(&e) {
        if let Some(hint) = hint(rc) {
            message = format!("{message} ({hint})");
        }
    }
    Error::Device {
        origin: Origin::Tpm,
        op: op.into(),
        rv,
        message,
    }
}

/// A TPM-side failure that is not a TSS return code (unexpected data from the TPM).
pub(crate) fn device(op: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Device {
        origin: Origin::Tpm,
        op: op.into(),
        rv: 0,
        message: message.into(),
    }
}

/// TSS layer of a response code (bits 16..23): 0 = TPM, 7 = ESAPI, 10 = TCTI, ...
pub(crate) fn layer(rc: u32) -> u32 {
    (rc >> 16) & 0xff
}

/// TPM warnings after which the same command may simply be sent again.
pub(crate) fn is_retryable(rc: u32) -> bool {
    layer(rc) == 0 && matches!(rc & 0xfff, 0x922 | 0x908 | 0x90a)
}

/// Errors that mean the connection to the TPM is gone (TCTI layer, or ESAPI lost its state).
pub(crate) fn is_connection_lost(rc: u32) -> bool {
    match layer(rc) {
        10 => true,
        // TSS2_BASE_RC_IO_ERROR, TSS2_BASE_RC_NO_CONNECTION, TSS2_BASE_RC_BAD_SEQUENCE
        // (an ESAPI context left mid-command by a failed transmit).
        7 | 8 | 12 => matches!(rc & 0xffff, 0x0a | 0x0b | 0x07 | 0x1e),
        _ => false,
    }
}

/// `TPM_RC_HANDLE` for handle 1: the persistent handle read is not defined.
pub(crate) fn is_missing_handle(rc: u32) -> bool {
    layer(rc) == 0 && rc & 0x80 != 0 && rc & 0x3f == 0x0b
}

fn hint(rc: u32) -> Option<&'static str> {
    if is_connection_lost(rc) {
        return Some("the TPM is unreachable: check the TCTI and that the TPM or simulator is running");
    }
    if layer(rc) == 0 && rc & 0x80 != 0 {
        return match rc & 0x3f {
            0x0e | 0x22 => Some("authorization failed: check owner_auth / endorsement_auth"),
            0x0b => Some("no object at that handle"),
            0x08 => Some("integrity check failed: the blob was not made for this TPM or is corrupted"),
            _ => None,
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_codes() {
        assert!(is_retryable(0x922));
        assert!(is_retryable(0x908));
        assert!(is_retryable(0x90a));
        assert!(!is_retryable(0x0007_0922));
        assert!(is_connection_lost(0x000a_000a));
        assert!(!is_connection_lost(0x18b));
        assert!(is_missing_handle(0x18b));
        assert!(!is_missing_handle(0x000a_018b));
    }
}
