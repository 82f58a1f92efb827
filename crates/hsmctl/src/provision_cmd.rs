//! `hsmctl provision`: register the configured identity with DPS and print the assignment; with
//! `--issue-certificate`, send the CSR of a new key of the `[x509] backend = "issued"` store and store
//! the certificate DPS issues (also `hsmctl certificate request` and `renew dps`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use hsm_core::config::Config;

use crate::CliError;
use crate::config::load_config;
use crate::dps::{self, report, trusted_roots};
use crate::issued::{now, status, store};

#[derive(Clone, Copy, ValueEnum)]
pub enum Attestation {
    X509,
    SymmetricKey,
    Tpm,
}

#[derive(Args)]
pub struct ProvisionArgs {
    /// Configuration file (the library's TOML); default: $HSM_ABI_CONFIG.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Which configured identity to use; needed when the configuration has both.
    #[arg(long, value_enum)]
    pub attestation: Option<Attestation>,
    /// The DPS ID scope.
    #[arg(long)]
    id_scope: String,
    /// Registration id to ask for; default: the identity's (x509: the certificate's common name).
    #[arg(long)]
    registration_id: Option<String>,
    #[arg(long, default_value = "global.azure-devices-provisioning.net", help = dps::endpoint_help())]
    global_endpoint: String,
    #[arg(long, default_value = "https", value_parser = dps::transport_parser(), help = dps::transport_help())]
    transport: dps_device::Transport,
    #[arg(long, value_name = "URL", help = dps::proxy_help())]
    proxy: Option<String>,
    /// PEM file of the CA(s) to trust for the service; default: the Mozilla root store.
    #[arg(long)]
    trusted_ca: Option<PathBuf>,
    /// SAS token lifetime in seconds.
    #[arg(long, default_value_t = 3600, conflicts_with = "sas_expiry")]
    sas_ttl: u64,
    /// SAS token expiry as seconds since the epoch (instead of --sas-ttl).
    #[arg(long)]
    sas_expiry: Option<u64>,
    /// Give up waiting for the assignment after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// JSON payload sent with the registration.
    #[arg(long)]
    payload: Option<String>,
    /// Print the whole registration state as JSON.
    #[arg(long)]
    json: bool,
    /// Send the CSR of a new key made in the [x509] backend = "issued" store and store the
    /// certificate DPS issues (onboarding with [symmetric_key] or [tpm], or `--attestation
    /// x509`: the current issued certificate).
    #[arg(long)]
    pub issue_certificate: bool,
}

/// `hsmctl provision` (and, with `issue_certificate`, `hsmctl certificate request` / `renew dps`).
pub fn provision(a: ProvisionArgs) -> Result<(), CliError> {
    let config = load_config(a.config.as_deref())?;
    let configured: Vec<Attestation> = [
        // With --issue-certificate, [x509] is the store the certificate goes into.
        (config.x509.is_some() && !a.issue_certificate, Attestation::X509),
        (config.symmetric_key.is_some(), Attestation::SymmetricKey),
        (config.tpm.is_some(), Attestation::Tpm),
    ]
    .into_iter()
    .filter_map(|(present, a)| present.then_some(a))
    .collect();
    let attestation = match (a.attestation, configured.as_slice()) {
        (Some(x), _) => x,
        (None, [one]) => *one,
        (None, []) => {
            return Err(CliError::Usage(format!(
                "{} has none of [x509], [symmetric_key], [tpm]",
                config.source
            )));
        }
        (None, _) => {
            return Err(CliError::Usage(format!(
                "{} configures several identities: choose one with --attestation",
                config.source
            )));
        }
    };
    let roots = trusted_roots(a.trusted_ca.as_deref())?;
    let payload = a
        .payload
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| CliError::Usage(format!("--payload is not JSON: {e}")))?;
    let proxy = a
        .proxy
        .as_deref()
        .map(url::Url::parse)
        .transpose()
        .map_err(|e| CliError::Usage(format!("--proxy is not a URL (http://host:port): {e}")))?;
    let options = dps_device::Options {
        timeout: Duration::from_secs(a.timeout),
        sas_ttl: Duration::from_secs(a.sas_ttl),
        sas_expiry: a.sas_expiry,
        user_agent: concat!("hsmctl/", env!("CARGO_PKG_VERSION")).to_string(),
        proxy,
        ..dps_device::Options::default()
    };
    // The builder with every piece hsmctl's options name (its own messages for the CA file).
    let builder = dps_device::ProvisioningClient::builder(&a.id_scope)
        .endpoint(&a.global_endpoint)
        .transport(a.transport)
        .trust_roots(roots)
        .options(options);
    if a.issue_certificate {
        let identity = match attestation {
            Attestation::X509 => None,
            Attestation::SymmetricKey => Some(dps_device::Attestation::SymmetricKey(hsm::open_symmetric(&config)?)),
            Attestation::Tpm => Some(dps_device::Attestation::Tpm(hsm::open_tpm_shared(
                &config,
                "TPM attestation",
            )?)),
        };
        let client = builder.build().map_err(|e| dps::cli_error(e, a.timeout))?;
        return issue(&config, identity, client, payload, a.json, a.timeout);
    }
    let identity = match attestation {
        Attestation::X509 => dps_device::Attestation::X509(hsm::open_x509(&config)?),
        Attestation::SymmetricKey => dps_device::Attestation::SymmetricKey(hsm::open_symmetric(&config)?),
        Attestation::Tpm => {
            dps_device::Attestation::Tpm(hsm::open_tpm_shared(&config, "provisioning with TPM attestation")?)
        }
    };
    let client = builder.build_blocking().map_err(|e| dps::cli_error(e, a.timeout))?;
    let assignment = client
        .register_as(&identity, a.registration_id.as_deref(), payload)
        .map_err(|e| dps::cli_error(e, a.timeout))?;
    report(&assignment, a.json);
    Ok(())
}

/// `provision --issue-certificate`: `attestation` None is re-registration with the current
/// issued identity.
fn issue(
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
        report(a, json);
    }
    if !json {
        out!("{}", status(&store, now())?);
    }
    Ok(())
}
