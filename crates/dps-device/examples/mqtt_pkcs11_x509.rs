//! Provision over MQTT with an x509 identity whose key stays on a PKCS#11 token (SoftHSM2, a
//! smart card, an HSM): every TLS signature is made on the token.
//!
//! ```text
//! DPS_ID_SCOPE=0ne00000000 cargo run -p dps-device --example mqtt_pkcs11_x509 -- device.toml
//! ```
//!
//! `device.toml` names the key and the certificate chain (the leaf's common name is the
//! registration id):
//!
//! ```toml
//! [x509]
//! backend = "pkcs11"
//! key = "pkcs11:token=device;object=device-key?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/device/pin"
//! certificate_file = "device-chain.pem"
//! ```
//!
//! `DPS_ENDPOINT` (`host[:port]`) replaces the global endpoint and `DPS_TRUSTED_CA` (a PEM file) the
//! Mozilla root store, e.g. for a private DPS or the emulator. Dependencies: `dps-device`, `hsm`
//! (feature `pkcs11`) and `tokio` (features `rt`, `macros`).

use std::process::ExitCode;

use dps_device::{Attestation, ProvisioningClient, Transport};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let config = std::env::args_os().nth(1).unwrap_or_else(|| "device.toml".into());
    match provision(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn provision(config: std::ffi::OsString) -> Result<(), Box<dyn std::error::Error>> {
    let id_scope = std::env::var("DPS_ID_SCOPE").map_err(|_| "set DPS_ID_SCOPE to the DPS id scope")?;
    // The [x509] section of the file, opened in one call: the key is used on the token, never read.
    let identity = hsm::open_x509_file(config)?;

    let mut builder = ProvisioningClient::builder(&id_scope).transport(Transport::Mqtt);
    if let Ok(endpoint) = std::env::var("DPS_ENDPOINT") {
        builder = builder.endpoint(&endpoint);
    }
    if let Some(ca) = std::env::var_os("DPS_TRUSTED_CA") {
        builder = builder.trust_pem_file(ca);
    }
    let client = builder.build()?;

    let assignment = client.register(&Attestation::x509(identity), None).await?;
    // Text from the service, printed with control characters escaped.
    println!("assigned hub: {}", assignment.assigned_hub.escape_debug());
    println!("device id: {}", assignment.device_id.escape_debug());
    println!("status: {}", assignment.status);
    Ok(())
}
