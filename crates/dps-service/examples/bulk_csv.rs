//! Bulk enrollment from a factory CSV file: every record gets a report with its input line; the
//! summary says how many were created, already there, or failed. Re-running the same file is safe
//! (records already there report `AlreadyExists`).
//!
//! ```text
//! DPS_CONNECTION_STRING='HostName=..;SharedAccessKeyName=..;SharedAccessKey=..' \
//!     cargo run -p dps-service --example bulk_csv -- line-7.csv
//! ```
//!
//! The CSV has a header row; columns (any order): `registrationId,attestation,endorsementKey,
//! certificate,primaryKey,secondaryKey,deviceId,provisioningStatus,iotHubHostName`. Against an
//! emulator, also set `DPS_ENDPOINT` and `DPS_TRUSTED_CA` (see the `enrollments` example).

use std::path::Path;
use std::process::ExitCode;

use dps_service::ServiceClient;
use dps_service::bulk::{self, BulkOptions, Outcome};
use dps_service::input::{self, Format};

fn main() -> ExitCode {
    let Some(file) = std::env::args().nth(1) else {
        eprintln!("usage: bulk_csv FILE.csv");
        return ExitCode::from(2);
    };
    match run(Path::new(&file)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Whether every record is now enrolled.
fn run(file: &Path) -> Result<bool, dps_service::Error> {
    let connection_string = std::env::var("DPS_CONNECTION_STRING").unwrap_or_default();
    let mut builder = ServiceClient::builder(&connection_string);
    if let Ok(endpoint) = std::env::var("DPS_ENDPOINT") {
        builder = builder.endpoint(endpoint);
    }
    if let Ok(ca) = std::env::var("DPS_TRUSTED_CA") {
        builder = builder.trust_pem_file(ca);
    }
    let client = builder.build()?;

    let records = input::enrollments_from_file(file, Format::Csv)?;
    let summary = bulk::run(&client, records, &BulkOptions::default(), |report| {
        let line = report.line.map(|l| l.to_string()).unwrap_or_else(|| "?".into());
        match &report.outcome {
            Outcome::Failed { message, .. } => println!("line {line}: {} failed: {message}", report.id),
            outcome => println!("line {line}: {} {outcome:?}", report.id),
        }
    })?;
    println!(
        "{} records: {} created, {} already there, {} failed",
        summary.total(),
        summary.done,
        summary.already_existed,
        summary.failed
    );
    Ok(summary.failed == 0 && summary.not_sent == 0)
}
