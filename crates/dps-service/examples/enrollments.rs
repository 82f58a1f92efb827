//! Individual enrollment CRUD: create a symmetric-key enrollment, read it, disable it with its etag,
//! find it with a query, delete it.
//!
//! ```text
//! DPS_CONNECTION_STRING='HostName=..;SharedAccessKeyName=..;SharedAccessKey=..' \
//!     cargo run -p dps-service --example enrollments -- device-0001
//! ```
//!
//! Against an emulator or a private endpoint, also set `DPS_ENDPOINT` (`host:port` to connect to)
//! and `DPS_TRUSTED_CA` (a PEM file of the CA to trust instead of the Mozilla roots).

use std::process::ExitCode;
use std::time::Duration;

use dps_service::models::SymmetricKeyAttestation;
use dps_service::{Attestation, IndividualEnrollment, ProvisioningStatus, ServiceClient};

fn main() -> ExitCode {
    let id = std::env::args().nth(1).unwrap_or_else(|| "example-device".into());
    match run(&id) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The error, then its causes (the I/O or TLS error under a transport error).
            eprint!("error: {e}");
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                eprint!(": {c}");
                cause = c.source();
            }
            eprintln!();
            ExitCode::FAILURE
        }
    }
}

fn client() -> Result<ServiceClient, dps_service::Error> {
    let connection_string = std::env::var("DPS_CONNECTION_STRING").unwrap_or_default();
    let mut builder = ServiceClient::builder(&connection_string).timeout(Duration::from_secs(20));
    if let Ok(endpoint) = std::env::var("DPS_ENDPOINT") {
        builder = builder.endpoint(endpoint);
    }
    if let Ok(ca) = std::env::var("DPS_TRUSTED_CA") {
        builder = builder.trust_pem_file(ca);
    }
    builder.build()
}

fn run(id: &str) -> Result<(), dps_service::Error> {
    let client = client()?;

    // Create: the service makes the keys when none are given.
    let enrollment =
        IndividualEnrollment::new(id, Attestation::symmetric_key(SymmetricKeyAttestation::new(None, None)));
    let created = client.put_enrollment(&enrollment)?;
    println!("created {} (etag {:?})", created.registration_id, created.common.etag);

    // Read, then update with the etag read: a concurrent change would make this a conflict.
    let mut current = client.get_enrollment(id)?;
    current.common.provisioning_status = Some(ProvisioningStatus::Disabled);
    match client.put_enrollment(&current) {
        Ok(updated) => println!("disabled {} (etag {:?})", updated.registration_id, updated.common.etag),
        Err(e) if e.is_conflict() => println!("{id} changed meanwhile; not updated: {e}"),
        Err(e) => return Err(e),
    }

    // Query every enrollment, page by page as needed.
    for found in client.query_enrollments("SELECT * FROM enrollments", Some(100)) {
        let found = found?;
        if found.registration_id == id {
            println!(
                "found {} status {:?}",
                found.registration_id, found.common.provisioning_status
            );
        }
    }

    client.delete_enrollment(id, None)?;
    match client.get_enrollment(id) {
        Err(e) if e.is_not_found() => println!("deleted {id}"),
        Err(e) => return Err(e),
        Ok(_) => println!("{id} is still there"),
    }
    Ok(())
}
