//! `hsmctl certificate`: the issued identity of `[x509] backend = "issued"`: request a
//! certificate at DPS registration, renew it (re-registration or IoT Hub `$iothub/credentials`),
//! confirm the current one after it was used, and show the state. The flows are
//! `hsm_issued::flow`; this module parses arguments and prints. (A test PKI written as files,
//! `hsmctl certs`, is `test_pki_cmd.rs`.)

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::config::load_config;
use crate::issued::{now, status, store};
use crate::provision_cmd::{self, Attestation, ProvisionArgs};
use crate::{CliError, dps};

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
            provision_cmd::provision(a)
        }
        CertificateCommand::Renew(RenewCommand::Dps(mut a)) => {
            a.issue_certificate = true;
            a.attestation = Some(Attestation::X509);
            provision_cmd::provision(a)
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

fn renew_via_hub(a: HubArgs) -> Result<(), CliError> {
    let store = store(&load_config(a.config.as_deref())?)?;
    let roots = dps::trusted_roots(a.trusted_ca.as_deref())?;
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
