//! A device program to copy: read `device.toml`, provision over MQTT with the configured hardware-backed
//! identity, print the assignment.
//!
//! ```toml
//! [dps]
//! id_scope = "0ne00000000"
//! endpoint = "global.azure-devices-provisioning.net"   # host[:port]; MQTT over TLS, port 8883 by default
//! trusted_ca = "server-ca.pem"                         # optional; default: the Mozilla root store
//! payload = '{"modelId": "dtmi:example:device;1"}'     # optional JSON object sent with the registration
//!
//! [x509]                                               # or [symmetric_key]: any hsm-abi backend
//! backend = "pkcs11"
//! key = "pkcs11:token=device;object=device-key?pin-source=file:/etc/device/pin"
//! ```
#![forbid(unsafe_code)]

use std::path::Path;
use std::process::ExitCode;

use dps_device::blocking::ProvisioningClient;
use dps_device::{Attestation, Transport};
use hsm::Config;

fn main() -> ExitCode {
    let path = std::env::args_os().nth(1).unwrap_or_else(|| "device.toml".into());
    match run(Path::new(&path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let text = hsm::fs::read_bounded_string("read configuration", path, hsm::fs::CONFIG_MAX)?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let dps = match table.remove("dps") {
        Some(toml::Value::Table(t)) => t,
        _ => return Err(format!("{}: no [dps] section", path.display()).into()),
    };
    let get = |key: &str| dps.get(key).and_then(toml::Value::as_str);
    let id_scope = get("id_scope").ok_or_else(|| format!("{}: dps.id_scope is missing", path.display()))?;
    let endpoint = get("endpoint").unwrap_or("global.azure-devices-provisioning.net");
    let base = path.parent().unwrap_or(Path::new("."));

    // The rest of the file is the hsm-abi configuration: the identity, whatever its backend.
    let config = Config::from_toml(&table.to_string(), &path.display().to_string(), base)?;
    let attestation = if config.x509.is_some() {
        Attestation::X509(hsm::open_x509(&config)?)
    } else {
        Attestation::SymmetricKey(hsm::open_symmetric(&config)?)
    };
    let payload = get("payload")
        .map(serde_json::from_str::<serde_json::Value>)
        .transpose()
        .map_err(|e| format!("{}: dps.payload is not JSON: {e}", path.display()))?;

    let mut builder = dps_device::ProvisioningClient::builder(id_scope)
        .endpoint(endpoint)
        .transport(Transport::Mqtt);
    if let Some(ca) = get("trusted_ca") {
        builder = builder.trust_pem_file(base.join(ca)); // else the Mozilla root store
    }
    let client: ProvisioningClient = builder.build_blocking()?;
    let a = client.register(&attestation, payload)?;
    // Text from the service, printed with control characters escaped.
    println!("registration id: {}", a.registration_id.escape_debug());
    println!("assigned hub: {}", a.assigned_hub.escape_debug());
    println!("device id: {}", a.device_id.escape_debug());
    println!(
        "substatus: {}",
        a.substatus.as_ref().map_or("-", |s| s.as_str()).escape_debug()
    );
    if let Some(p) = &a.payload {
        println!("payload: {p}");
    }
    Ok(())
}
