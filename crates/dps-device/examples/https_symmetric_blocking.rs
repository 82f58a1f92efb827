//! Provision over HTTPS with a symmetric key, from synchronous code (no async runtime to set up:
//! the blocking client runs its own).
//!
//! ```text
//! DPS_ID_SCOPE=0ne00000000 cargo run -p dps-device --example https_symmetric_blocking -- device.toml
//! ```
//!
//! `device.toml` holds the registration id and the key, or the group key it is derived from (or
//! names a key on a PKCS#11 token: `backend = "pkcs11"`, `key = "pkcs11:..."`):
//!
//! ```toml
//! [symmetric_key]
//! backend = "file"
//! registration_id = "device-0001"
//! group_key_file = "group.key"        # or symmetric_key_file, symmetric_key, group_key
//! ```
//!
//! `DPS_ENDPOINT` (`host[:port]`) replaces the global endpoint and `DPS_TRUSTED_CA` (a PEM file) the
//! Mozilla root store. Dependencies: `dps-device`, `hsm` and `serde_json` (the payload).

use std::process::ExitCode;
use std::time::Duration;

use dps_device::{Attestation, Error, ProvisioningClient, Transport};

fn main() -> ExitCode {
    let config = std::env::args_os().nth(1).unwrap_or_else(|| "device.toml".into());
    match provision(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn provision(config: std::ffi::OsString) -> Result<(), Box<dyn std::error::Error>> {
    let id_scope = std::env::var("DPS_ID_SCOPE").map_err(|_| "set DPS_ID_SCOPE to the DPS id scope")?;
    // The SAS token is signed by the identity's HMAC: a key on a token is never read.
    let identity = hsm::open_symmetric_file(config)?;

    let mut builder = ProvisioningClient::builder(&id_scope)
        .transport(Transport::Https)
        .timeout(Duration::from_secs(60));
    if let Ok(endpoint) = std::env::var("DPS_ENDPOINT") {
        builder = builder.endpoint(&endpoint);
    }
    if let Some(ca) = std::env::var_os("DPS_TRUSTED_CA") {
        builder = builder.trust_pem_file(ca);
    }
    let client = builder.build_blocking()?;

    let payload = serde_json::json!({ "modelId": "dtmi:example:thermostat;1" });
    match client.register(&Attestation::symmetric_key(identity), Some(payload)) {
        Ok(a) => {
            println!("assigned hub: {}", a.assigned_hub.escape_debug());
            println!("device id: {}", a.device_id.escape_debug());
            println!("substatus: {}", a.substatus.as_ref().map_or("-", |s| s.as_str()));
            Ok(())
        }
        // Worth another try later (network, timeout, 429/5xx); anything else will fail again.
        Err(e) if e.is_retryable() => Err(format!("{e} (retryable)").into()),
        Err(e @ Error::Service(_)) => Err(format!("the service refused the registration: {e}").into()),
        Err(e) => Err(e.into()),
    }
}
