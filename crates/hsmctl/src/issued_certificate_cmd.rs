//! `hsmctl certificate`: the issued identity of `[x509] backend = "issued"`: request a
//! certificate at DPS registration, renew it (re-registration or IoT Hub `$iothub/credentials`),
//! confirm the current one after it was used, and show the state. The flows are
//! `hsm_issued::flow`; this module parses arguments and prints. (A test PKI written as files,
//! `hsmctl certs`, is `test_pki_cmd.rs`.)

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use hsm_core::config::Config;
use hsm_issued::CertificateInfo;
use hsm_issued::Store;

use crate::{Attestation, CliError, ProvisionArgs, dps, load_config};

#[derive(Subcommand)]
pub enum CertificateCommand {
    /// Register with DPS sending the CSR of a new key, and store the issued certificate
    /// (`hsmctl provision --issue-certificate`). Onboarding with the configured [symmetric_key]
    /// or [tpm] identity, or `--attestation x509` (the current issued identity).
    Request(ProvisionArgs),
    /// Renew with a new key: by re-registration with DPS, or over IoT Hub.
    #[command(subcommand)]
    Renew(RenewCommand),
    /// Mark the current certificate as used successfully: the previous one is deleted.
    Confirm(ConfigArg),
    /// Show the current certificate (subject, key location, validity, when renewal is due), and
    /// any pending request or previous identity kept.
    Status(ConfigArg),
}

#[derive(Subcommand)]
pub enum RenewCommand {
    /// Re-register with DPS, authenticated by the current issued certificate.
    Dps(ProvisionArgs),
    /// IoT Hub `$iothub/credentials`, authenticated by the current issued certificate.
    Hub(HubArgs),
}

#[derive(Args)]
pub struct ConfigArg {
    /// Configuration file (the library's TOML); default: $HSM_ABI_CONFIG.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Args)]
pub struct HubArgs {
    /// Configuration file (the library's TOML); default: $HSM_ABI_CONFIG.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The assigned IoT Hub's host name.
    #[arg(long)]
    hub: String,
    /// Where to connect, host[:port]; default: the hub, port 8883.
    #[arg(long)]
    endpoint: Option<String>,
    /// The device id on the hub; default: the registration id.
    #[arg(long)]
    device_id: Option<String>,
    /// PEM file of the CA(s) to trust for the hub; default: the Mozilla root store.
    #[arg(long)]
    trusted_ca: Option<PathBuf>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Replace an operation left in progress on the hub (`replace: "*"`).
    #[arg(long)]
    replace: bool,
}

pub fn run(cmd: CertificateCommand) -> Result<(), CliError> {
    match cmd {
        CertificateCommand::Request(mut a) => {
            a.issue_certificate = true;
            crate::provision(a)
        }
        CertificateCommand::Renew(RenewCommand::Dps(mut a)) => {
            a.issue_certificate = true;
            a.attestation = Some(Attestation::X509);
            crate::provision(a)
        }
        CertificateCommand::Renew(RenewCommand::Hub(a)) => renew_via_hub(a),
        CertificateCommand::Confirm(a) => {
            store(&load_config(a.config.as_deref())?)?.confirm()?;
            outln!("confirmed: the previous certificate and key are deleted");
            Ok(())
        }
        CertificateCommand::Status(a) => {
            out!("{}", status(&store(&load_config(a.config.as_deref())?)?, now())?);
            Ok(())
        }
    }
}

/// The store of the configuration's `[x509] backend = "issued"` section.
pub fn store(config: &Config) -> Result<Store, CliError> {
    let section = config.section("x509")?;
    if section.backend != "issued" {
        return Err(CliError::Usage(format!(
            "{}: [x509] has backend \"{}\"; certificates are issued into a backend = \"issued\" store",
            config.source, section.backend
        )));
    }
    Ok(hsm_issued::store_from_section(section, hsm::open_signer)?)
}

/// `provision --issue-certificate`: `attestation` None is re-registration with the current
/// issued identity.
pub fn issue(
    config: &Config,
    attestation: Option<dps_device::Attestation>,
    client: dps_device::ProvisioningClient,
    payload: Option<serde_json::Value>,
    json: bool,
    timeout: u64,
) -> Result<(), CliError> {
    let store = store(config)?;
    let issued = hsm_issued::flow::block_on(hsm_issued::flow::register(
        &store,
        &client,
        attestation.as_ref(),
        payload,
    ))
    .map_err(|e| dps::cli_error(e, timeout))?;
    if let Some(a) = &issued.assignment {
        crate::report(a, json);
    }
    if !json {
        out!("{}", status(&store, now())?);
    }
    Ok(())
}

fn renew_via_hub(a: HubArgs) -> Result<(), CliError> {
    let store = store(&load_config(a.config.as_deref())?)?;
    let roots = crate::trusted_roots(a.trusted_ca.as_deref())?;
    let endpoint = a.endpoint.clone().unwrap_or_else(|| format!("{}:8883", a.hub));
    let device_id = a
        .device_id
        .clone()
        .unwrap_or_else(|| store.registration_id().to_string());
    let options = dps_device::RenewalOptions {
        timeout: Duration::from_secs(a.timeout),
        replace: a.replace,
        user_agent: concat!("hsmctl/", env!("CARGO_PKG_VERSION")).to_string(),
        ..dps_device::RenewalOptions::default()
    };
    hsm_issued::flow::block_on(hsm_issued::flow::renew_via_hub(
        &store, &a.hub, &endpoint, &device_id, roots, &options,
    ))
    .map_err(|e| dps::cli_error(e, a.timeout))?;
    out!("{}", status(&store, now())?);
    Ok(())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn time(t: i64) -> String {
    x509_parser::time::ASN1Time::from_timestamp(t)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| t.to_string())
}

/// The status report: current certificate, renewal due date, pending and retired generations.
pub fn status(store: &Store, now: i64) -> Result<String, CliError> {
    let state = store.state()?;
    let mut s = format!(
        "store:            {}\nregistration id:  {}\n",
        store.dir().display(),
        store.registration_id()
    );
    match &state.current {
        None => s.push_str("certificate:      none issued yet (hsmctl certificate request)\n"),
        Some(g) => {
            let chain = store.read_chain(g)?;
            let leaf = chain
                .first()
                .ok_or_else(|| hsm_core::Error::parse("certificate chain", "the chain is empty"))?;
            let info = CertificateInfo::of(leaf)?;
            s.push_str(&format!("generation:       {}\n", g.generation));
            s.push_str(&format!("subject:          {}\n", info.subject));
            s.push_str(&format!("issuer:           {}\n", info.issuer));
            s.push_str(&format!("key:              {}\n", g.key));
            s.push_str(&format!(
                "valid:            {} to {}\n",
                time(info.not_before),
                time(info.not_after)
            ));
            let due = if now > info.not_after {
                "  (EXPIRED: renew now)"
            } else if info.renewal_due(now) {
                "  (due now)"
            } else {
                ""
            };
            s.push_str(&format!(
                "renewal due:      {} ({} % of the validity){due}\n",
                time(info.renew_at),
                hsm_issued::RENEW_AT_PERCENT
            ));
        }
    }
    if let Some(g) = &state.retired {
        s.push_str(&format!(
            "previous:         generation {} kept until the current one is confirmed (hsmctl certificate confirm)\n",
            g.generation
        ));
    }
    if let Some(g) = &state.pending {
        s.push_str(&format!(
            "pending:          generation {} (a request not answered yet; the next request makes a new key)\n",
            g.generation
        ));
    }
    Ok(s)
}
