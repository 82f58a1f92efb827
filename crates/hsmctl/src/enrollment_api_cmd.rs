//! `hsmctl enrollment ...`: the Provisioning Service's enrollments, groups and registration states
//! through the `dps-service` library; `enrollment record` prints a record without calling the
//! service. The connection string comes from `--connection-string-file`, `--connection-string` or
//! `$DPS_SERVICE_CONNECTION_STRING`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use dps_service::{BulkMode, EnrollmentGroup, IndividualEnrollment, ProvisioningStatus};
use serde_json::Value;

use crate::CliError;
use crate::dps::{json_for_terminal, shown};
use crate::enrollment_cmd::{self, EnrollmentArgs};
use crate::service::{ServiceArgs, client, svc};

#[path = "enrollment_bulk_cmd.rs"]
mod bulk_cmd;

#[derive(Subcommand)]
pub enum EnrollmentCommand {
    /// Print the enrollment record (attestation JSON) for a configured identity; no service call.
    Record(EnrollmentArgs),
    /// Create an enrollment (or group) from a configured identity or a JSON record; an existing one is
    /// an error (use `update`).
    Create(CreateArgs),
    /// Print an enrollment or group as JSON.
    Get(IdArgs),
    /// Replace an enrollment or group (If-Match: its etag), or change its provisioning status.
    Update(UpdateArgs),
    /// Delete an enrollment or group (with --etag: only if unchanged).
    Delete(DeleteArgs),
    /// List enrollments (or groups), one JSON record a line.
    List(ListArgs),
    /// Create, update or delete many enrollments from a CSV or JSON-lines file, 10 per call.
    Bulk(bulk_cmd::BulkArgs),
    /// Registration states: list a group's, get or delete one.
    #[command(subcommand)]
    Registrations(RegistrationsCommand),
}

#[derive(Args)]
pub struct IdArgs {
    /// Registration id (or, with --group, the enrollment group id).
    id: String,
    /// The id is an enrollment group's.
    #[arg(long)]
    group: bool,
    #[command(flatten)]
    service: ServiceArgs,
}

#[derive(Args)]
pub struct CreateArgs {
    /// Build the record from this device configuration's identity (TPM EK, x509 certificate or group
    /// CA, symmetric key).
    #[arg(long, conflicts_with = "file")]
    config: Option<PathBuf>,
    /// Which configured identity: needed when the configuration has several.
    #[arg(long, value_enum)]
    attestation: Option<enrollment_cmd::Kind>,
    /// With --config: make an enrollment group with this id (x509: the chain's CA).
    #[arg(long)]
    group: Option<String>,
    /// With --config: the PEM certificate to enroll instead of the one chosen from the identity.
    #[arg(long)]
    certificate: Option<PathBuf>,
    /// A JSON record (IndividualEnrollment, or EnrollmentGroup when it has enrollmentGroupId); `-`:
    /// standard input.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Create it disabled (provisioningStatus: disabled).
    #[arg(long)]
    disabled: bool,
    /// The IoT Hub device id to assign (individual enrollments).
    #[arg(long)]
    device_id: Option<String>,
    #[command(flatten)]
    service: ServiceArgs,
}

#[derive(Args)]
pub struct UpdateArgs {
    /// Registration id (or, with --group, the enrollment group id).
    id: String,
    #[arg(long)]
    group: bool,
    /// The whole new record as JSON (its etag, or --etag, is sent as If-Match); `-`: standard input.
    #[arg(long, conflicts_with = "status")]
    file: Option<PathBuf>,
    /// Only change the provisioning status (read, change, write back with If-Match).
    #[arg(long, value_enum)]
    status: Option<StatusArg>,
    /// If-Match etag to send instead of the record's.
    #[arg(long)]
    etag: Option<String>,
    #[command(flatten)]
    service: ServiceArgs,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum StatusArg {
    Enabled,
    Disabled,
}

#[derive(Args)]
pub struct DeleteArgs {
    id: String,
    #[arg(long)]
    group: bool,
    /// Delete only if the record still has this etag.
    #[arg(long)]
    etag: Option<String>,
    #[command(flatten)]
    service: ServiceArgs,
}

#[derive(Args)]
pub struct ListArgs {
    /// List enrollment groups instead of individual enrollments.
    #[arg(long)]
    groups: bool,
    /// Records per page asked of the service.
    #[arg(long)]
    page_size: Option<u32>,
    /// The query (default: every record).
    #[arg(long)]
    query: Option<String>,
    #[command(flatten)]
    service: ServiceArgs,
}

#[derive(Subcommand)]
pub enum RegistrationsCommand {
    /// The registration states of an enrollment group's devices, one JSON record a line.
    List {
        group_id: String,
        #[arg(long)]
        page_size: Option<u32>,
        #[command(flatten)]
        service: ServiceArgs,
    },
    /// One device's registration state.
    Get {
        registration_id: String,
        #[command(flatten)]
        service: ServiceArgs,
    },
    /// Delete a device's registration state (it may then register again from scratch).
    Delete {
        registration_id: String,
        #[arg(long)]
        etag: Option<String>,
        #[command(flatten)]
        service: ServiceArgs,
    },
}

pub fn run(cmd: EnrollmentCommand) -> Result<(), CliError> {
    match cmd {
        EnrollmentCommand::Record(a) => enrollment_cmd::run(a).map_err(CliError::from),
        EnrollmentCommand::Create(a) => create(a),
        EnrollmentCommand::Get(a) => {
            let c = client(&a.service)?;
            let v = if a.group {
                to_value(&c.get_group(&a.id).map_err(svc)?)?
            } else {
                to_value(&c.get_enrollment(&a.id).map_err(svc)?)?
            };
            outln!("{}", json_for_terminal(&v));
            Ok(())
        }
        EnrollmentCommand::Update(a) => update(a),
        EnrollmentCommand::Delete(a) => {
            let c = client(&a.service)?;
            if a.group {
                c.delete_group(&a.id, a.etag.as_deref()).map_err(svc)?;
            } else {
                c.delete_enrollment(&a.id, a.etag.as_deref()).map_err(svc)?;
            }
            Ok(())
        }
        EnrollmentCommand::List(a) => {
            let c = client(&a.service)?;
            if a.groups {
                let q = a.query.as_deref().unwrap_or("SELECT * FROM enrollmentGroups");
                print_all(c.query_groups(q, a.page_size))
            } else {
                let q = a.query.as_deref().unwrap_or("SELECT * FROM enrollments");
                print_all(c.query_enrollments(q, a.page_size))
            }
        }
        EnrollmentCommand::Bulk(a) => bulk_cmd::run(a),
        EnrollmentCommand::Registrations(r) => match r {
            RegistrationsCommand::List {
                group_id,
                page_size,
                service,
            } => print_all(client(&service)?.query_registrations(&group_id, page_size)),
            RegistrationsCommand::Get {
                registration_id,
                service,
            } => {
                let v = to_value(&client(&service)?.get_registration(&registration_id).map_err(svc)?)?;
                outln!("{}", json_for_terminal(&v));
                Ok(())
            }
            RegistrationsCommand::Delete {
                registration_id,
                etag,
                service,
            } => client(&service)?
                .delete_registration(&registration_id, etag.as_deref())
                .map_err(svc),
        },
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, CliError> {
    serde_json::to_value(v).map_err(|e| CliError::Protocol(format!("JSON encoding: {e}")))
}

fn print_all<T: serde::Serialize>(q: impl Iterator<Item = dps_service::Result<T>>) -> Result<(), CliError> {
    for item in q {
        let v = to_value(&item.map_err(svc)?)?;
        outln!("{}", json_for_terminal(&v).replace('\n', " "));
    }
    Ok(())
}

/// A record read from a JSON file (or standard input).
fn read_record(path: &Path) -> Result<Value, CliError> {
    let text = if path == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut s)
            .map_err(|e| CliError::Usage(format!("reading the record from standard input: {e}")))?;
        s
    } else {
        std::fs::read_to_string(path).map_err(|e| CliError::Usage(format!("reading {}: {e}", path.display())))?
    };
    serde_json::from_str(&text).map_err(|e| CliError::Usage(format!("{} is not a JSON record: {e}", path.display())))
}

enum Record {
    Individual(Box<IndividualEnrollment>),
    Group(Box<EnrollmentGroup>),
}

fn typed(v: Value, source: &str) -> Result<Record, CliError> {
    let bad = |e: serde_json::Error| CliError::Usage(format!("{source}: not an enrollment record: {e}"));
    Ok(if v.get("enrollmentGroupId").is_some() {
        Record::Group(Box::new(serde_json::from_value(v).map_err(bad)?))
    } else {
        Record::Individual(Box::new(serde_json::from_value(v).map_err(bad)?))
    })
}

fn create(a: CreateArgs) -> Result<(), CliError> {
    let (value, source) = match (&a.config, &a.file) {
        (Some(_), _) => {
            let mut v = enrollment_cmd::record(&EnrollmentArgs {
                config: a.config.clone(),
                attestation: a.attestation,
                group: a.group.clone(),
                certificate: a.certificate.clone(),
            })?;
            certificates_as_pem(&mut v);
            (v, "the configured identity".to_string())
        }
        (None, Some(f)) => (read_record(f)?, f.display().to_string()),
        (None, None) => {
            return Err(CliError::Usage(
                "give --config (a device identity) or --file (a JSON record)".into(),
            ));
        }
    };
    let c = client(&a.service)?;
    let status = a.disabled.then_some(ProvisioningStatus::Disabled);
    // A bulk `create` of one record: refused if it exists, where a PUT would replace it.
    let (result, id, is_group) = match typed(value, &source)? {
        Record::Individual(mut e) => {
            if let Some(s) = status {
                e.common.provisioning_status = Some(s);
            }
            if a.device_id.is_some() {
                e.device_id = a.device_id.clone();
            }
            let r = c
                .bulk_enrollments(BulkMode::Create, std::slice::from_ref(&*e))
                .map_err(svc)?;
            (r, e.registration_id, false)
        }
        Record::Group(mut g) => {
            if let Some(s) = status {
                g.common.provisioning_status = Some(s);
            }
            let r = c
                .bulk_groups(BulkMode::Create, std::slice::from_ref(&*g))
                .map_err(svc)?;
            (r, g.enrollment_group_id, true)
        }
    };
    if let Some(e) = result.errors.first() {
        return Err(CliError::Usage(format!(
            "creating {}: {} (errorCode {}){}",
            shown(&id),
            shown(&e.error_status),
            e.error_code,
            if e.error_code / 1000 == 409 {
                ": it exists; use `hsmctl enrollment update`"
            } else {
                ""
            }
        )));
    }
    let v = if is_group {
        to_value(&c.get_group(&id).map_err(svc)?)?
    } else {
        to_value(&c.get_enrollment(&id).map_err(svc)?)?
    };
    outln!("{}", json_for_terminal(&v));
    Ok(())
}

/// The printed record carries base64 of each PEM; the API's field is the PEM itself.
fn certificates_as_pem(record: &mut Value) {
    use base64::Engine as _;
    let Some(x509) = record.pointer_mut("/attestation/x509").and_then(Value::as_object_mut) else {
        return;
    };
    for set in x509.values_mut() {
        for slot in ["primary", "secondary"] {
            if let Some(cert) = set.pointer_mut(&format!("/{slot}/certificate")) {
                let pem = cert
                    .as_str()
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .and_then(|p| String::from_utf8(p).ok())
                    .filter(|p| p.starts_with("-----BEGIN"));
                if let Some(pem) = pem {
                    *cert = Value::String(pem);
                }
            }
        }
    }
}

fn update(a: UpdateArgs) -> Result<(), CliError> {
    let c = client(&a.service)?;
    let record = match (&a.file, a.status) {
        (Some(f), _) => typed(read_record(f)?, &f.display().to_string())?,
        (None, Some(_)) if a.group => Record::Group(Box::new(c.get_group(&a.id).map_err(svc)?)),
        (None, Some(_)) => Record::Individual(Box::new(c.get_enrollment(&a.id).map_err(svc)?)),
        (None, None) => return Err(CliError::Usage("give --file (the new record) or --status".into())),
    };
    let status = a.status.map(|s| match s {
        StatusArg::Enabled => ProvisioningStatus::Enabled,
        StatusArg::Disabled => ProvisioningStatus::Disabled,
    });
    let v = match record {
        Record::Individual(mut e) => {
            if e.registration_id != a.id || a.group {
                return Err(CliError::Usage(format!(
                    "the record is the enrollment {}, not {}{}",
                    shown(&e.registration_id),
                    if a.group { "the group " } else { "" },
                    shown(&a.id)
                )));
            }
            if let Some(s) = status {
                e.common.provisioning_status = Some(s);
            }
            if a.etag.is_some() {
                e.common.etag = a.etag.clone();
            }
            e.registration_state = None;
            to_value(&c.put_enrollment(&e).map_err(svc)?)?
        }
        Record::Group(mut g) => {
            if g.enrollment_group_id != a.id || !a.group {
                return Err(CliError::Usage(format!(
                    "the record is the group {}, not {}{} (groups need --group)",
                    shown(&g.enrollment_group_id),
                    if a.group { "the group " } else { "" },
                    shown(&a.id)
                )));
            }
            if let Some(s) = status {
                g.common.provisioning_status = Some(s);
            }
            if a.etag.is_some() {
                g.common.etag = a.etag.clone();
            }
            to_value(&c.put_group(&g).map_err(svc)?)?
        }
    };
    outln!("{}", json_for_terminal(&v));
    Ok(())
}
