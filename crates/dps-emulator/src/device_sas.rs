//! The claims of a device SAS token, as DPS checks them for symmetric-key and TPM registrations alike.

use std::time::{SystemTime, UNIX_EPOCH};

use hsm_core::sas::{SasToken, dps_resource, url_decode, url_encode};

/// Parse a SAS token from a registration request and check its claims (key name
/// `registration` or none, resource `{scope}/registrations/{id}`, not expired); the signature is for
/// the caller to verify against the key it trusts. Shared by the symmetric-key and TPM paths.
pub(crate) fn check_sas_claims(id_scope: &str, registration_id: &str, header: &str) -> Result<SasToken, String> {
    let token = SasToken::parse(header).map_err(|e| format!("malformed SAS token: {e}"))?;
    // The C SDK sends skn=registration, the Python SDK no skn at all; DPS accepts both.
    if let Some(name) = token.key_name.as_deref().filter(|n| *n != "registration") {
        return Err(format!(
            "SAS token key name (skn) must be 'registration' or absent, found '{name}'"
        ));
    }
    check_resource_and_expiry(&token, &dps_resource(id_scope, registration_id))?;
    Ok(token)
}

/// Parse an IoT Hub device SAS token (a CONNECT password) and check its claims as IoT Hub does for a token
/// signed with the device's own key: no key name (a named key is a hub policy, which a device session does
/// not take), resource `{hub}/devices/{deviceId}`, not expired. The signature is for the caller to verify.
pub(crate) fn check_hub_sas_claims(hub: &str, device_id: &str, password: &str) -> Result<SasToken, String> {
    let token = SasToken::parse(password).map_err(|e| format!("malformed SAS token: {e}"))?;
    if let Some(name) = token.key_name.as_deref().filter(|n| !n.is_empty()) {
        return Err(format!(
            "SAS token names the key '{name}' (skn): a device connects with a token of its own key, without skn"
        ));
    }
    check_resource_and_expiry(&token, &format!("{hub}/devices/{device_id}"))?;
    Ok(token)
}

/// The token's resource (`sr`, URL-decoded, compared without case) is `expected`, and it has not expired.
fn check_resource_and_expiry(token: &SasToken, expected: &str) -> Result<(), String> {
    let resource =
        url_decode(&token.resource).map_err(|e| format!("SAS token resource (sr) is not valid URL encoding: {e}"))?;
    if !resource.eq_ignore_ascii_case(expected) {
        return Err(format!(
            "SAS token resource (sr) '{}' does not match '{}'",
            token.resource,
            url_encode(expected)
        ));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if token.expiry <= now {
        return Err(format!(
            "SAS token expired at {} (se={}, now {now})",
            crate::ids_and_times::rfc3339_from_unix(token.expiry),
            token.expiry
        ));
    }
    Ok(())
}
