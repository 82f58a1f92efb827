//! `hsmctl`: the tools around hsm-abi.
#![forbid(unsafe_code)]

/// Print to standard output; a reader that went away (`hsmctl ... | head -1`) ends the program
/// quietly (exit 0), any other write error with a message (exit 1). Never a panic.
macro_rules! out {
    ($($arg:tt)*) => { $crate::stdout::write(format_args!($($arg)*), false) };
}

/// [`out!`] with a newline.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::stdout::write(format_args!($($arg)*), true) };
}

mod stdout {
    use std::io::Write;

    pub fn write(args: std::fmt::Arguments<'_>, newline: bool) {
        let mut out = std::io::stdout().lock();
        let written = out
            .write_fmt(args)
            .and_then(|()| if newline { out.write_all(b"\n") } else { Ok(()) })
            .and_then(|()| out.flush());
        match written {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
            Err(e) => {
                // stderr may be gone too: nothing more to do than the exit status.
                let _ = writeln!(std::io::stderr(), "error: writing to standard output: {e}");
                std::process::exit(1);
            }
        }
    }
}

mod certificate_cmd;
mod certs_cmd;
mod conformance_cmd;
mod dice_cmd;
mod dps;
mod enrollment_api_cmd;
mod enrollment_cmd;
mod pkcs11_cmd;
#[cfg(feature = "tpm")]
mod tpm_cmd;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use hsm_core::config::Config;
use hsm_core::sas::{self, Audience};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Core(#[from] hsm_core::Error),
    #[error("{transport}: the service answered {status}: {message}{}{}",
        error_code.map(|c| format!(" (errorCode {c})")).unwrap_or_default(),
        tracking_id.as_ref().map(|t| format!(" (trackingId {t})")).unwrap_or_default())]
    Service {
        transport: String,
        status: u16,
        error_code: Option<i64>,
        tracking_id: Option<String>,
        message: String,
    },
    #[error("connection failed: {0}")]
    Transport(String),
    #[error("unexpected answer from the service: {0}")]
    Protocol(String),
    #[error("{0}")]
    Usage(String),
}

#[derive(Parser)]
#[command(
    name = "hsmctl",
    version,
    about = "Hardware-backed device identities for Azure IoT provisioning"
)]
struct Cli {
    /// Diagnostics on stderr: a level (error, warn, info, debug, trace) or a tracing filter.
    /// The device libraries' own logs (cryptoki, tss_esapi) are shown only when named,
    /// e.g. `--log warn,cryptoki=debug`; our errors carry their return codes anyway.
    #[arg(long, global = true, default_value = "warn")]
    log: String,
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Register this device with the Device Provisioning Service and print its assignment.
    Provision(ProvisionArgs),
    /// Make a SAS token for DPS or IoT Hub.
    #[command(subcommand)]
    Sas(SasCommand),
    /// Derive a device key from a group enrollment key: base64(HMAC-SHA256(group key, registration id)).
    DeriveKey {
        #[command(flatten)]
        group: GroupKeyArgs,
        #[arg(long)]
        registration_id: String,
    },
    /// Generate a test PKI: root CA, optional intermediate, device certificates (also from HSM CSRs).
    Certs(certs_cmd::CertsArgs),
    /// Issued certificates ([x509] backend = "issued"): request, renew, confirm, status.
    #[command(subcommand)]
    Certificate(certificate_cmd::CertificateCommand),
    /// DICE: create a Unique Device Secret, print the DeviceID/Alias chain and registration id.
    #[command(subcommand)]
    Dice(dice_cmd::DiceCommand),
    /// Check a vendor backend (a library implementing HSM_ABI_VENDOR_TABLE) for conformance.
    Conformance(conformance_cmd::ConformanceArgs),
    /// DPS enrollments through the service API (create, get, update, delete, list, bulk,
    /// registrations), and the enrollment record of a configured identity.
    #[command(subcommand)]
    Enrollment(enrollment_api_cmd::EnrollmentCommand),
    /// PKCS#11 tokens: generate keys, make CSRs, import certificates and secrets, list objects.
    #[command(subcommand)]
    Pkcs11(pkcs11_cmd::Pkcs11Command),
    /// TPM 2.0: read the EK and registration id, generate TPM-resident keys and CSRs.
    #[cfg(feature = "tpm")]
    #[command(subcommand)]
    Tpm(tpm_cmd::TpmCommand),
}

#[derive(Clone, Copy, ValueEnum)]
enum Attestation {
    X509,
    SymmetricKey,
    Tpm,
}

#[derive(Args)]
struct ProvisionArgs {
    /// Configuration file (the library's TOML); default: $HSM_ABI_CONFIG.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Which configured identity to use; needed when the configuration has both.
    #[arg(long, value_enum)]
    attestation: Option<Attestation>,
    /// The DPS ID scope.
    #[arg(long)]
    id_scope: String,
    /// Registration id to ask for; default: the identity's (x509: the certificate's common name).
    #[arg(long)]
    registration_id: Option<String>,
    /// DPS endpoint, host[:port], for the chosen transport: the port defaults to 443 (https, mqtt-ws,
    /// amqp-ws), 8883 (mqtt) or 5671 (amqp).
    #[arg(long, default_value = "global.azure-devices-provisioning.net")]
    global_endpoint: String,
    /// How to talk to DPS. TPM attestation is HTTPS only here (DPS also takes it over AMQP's SASL TPM
    /// mechanism, not implemented yet).
    #[arg(long, value_enum, default_value = "https")]
    transport: dps::TransportArg,
    /// An HTTP proxy reached with CONNECT, `http://[user:password@]host[:port]` (https, mqtt-ws and
    /// amqp-ws only, as in the C SDK).
    #[arg(long, value_name = "URL")]
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
    issue_certificate: bool,
}

#[derive(Subcommand)]
enum SasCommand {
    /// A DPS registration token (resource URL-encoded, skn=registration).
    Dps {
        #[arg(long)]
        id_scope: String,
        /// Registration id; default: the configured one (with --config).
        #[arg(long)]
        registration_id: Option<String>,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        expiry: ExpiryArgs,
    },
    /// An IoT Hub device token (`{host}/devices/{deviceId}`, as the SDK's TPM path signs it).
    Hub {
        #[arg(long)]
        host: String,
        #[arg(long)]
        device_id: String,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        expiry: ExpiryArgs,
    },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct KeyArgs {
    /// The device key, base64 (visible to other users in /proc/PID/cmdline: prefer --key-file
    /// or --key-env).
    #[arg(long)]
    key: Option<String>,
    /// A file holding the device key, base64; `-` reads it from standard input.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// The name of an environment variable holding the device key, base64.
    #[arg(long, value_name = "NAME")]
    key_env: Option<String>,
    /// Sign with the [symmetric_key] identity of this configuration (the key may stay in the HSM).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct GroupKeyArgs {
    /// The group enrollment key, base64 (visible to other users in /proc/PID/cmdline: prefer
    /// --group-key-file or --group-key-env).
    #[arg(long)]
    group_key: Option<String>,
    /// A file holding the group enrollment key, base64; `-` reads it from standard input.
    #[arg(long)]
    group_key_file: Option<PathBuf>,
    /// The name of an environment variable holding the group enrollment key, base64.
    #[arg(long, value_name = "NAME")]
    group_key_env: Option<String>,
}

#[derive(Args)]
struct ExpiryArgs {
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600, conflicts_with = "expiry")]
    ttl: u64,
    /// Expiry as seconds since the epoch.
    #[arg(long)]
    expiry: Option<u64>,
}

impl ExpiryArgs {
    fn expiry(&self) -> u64 {
        self.expiry
            .unwrap_or_else(|| sas::expiry_in(Duration::from_secs(self.ttl)))
    }
}

/// A key from a file, or from standard input when `path` is `-`.
fn read_secret(path: &Path) -> Result<Zeroizing<String>, CliError> {
    let text = if path == Path::new("-") {
        use std::io::Read as _;
        let mut buf = Zeroizing::new(Vec::with_capacity(1024));
        std::io::stdin()
            .lock()
            .take(hsm_core::fs::SECRET_MAX + 1)
            .read_to_end(&mut buf)
            .map_err(|e| hsm_core::Error::io("read key from standard input", path, e))?;
        if buf.len() as u64 > hsm_core::fs::SECRET_MAX {
            return Err(CliError::Usage(format!(
                "the key on standard input is longer than {} bytes",
                hsm_core::fs::SECRET_MAX
            )));
        }
        Zeroizing::new(
            String::from_utf8(std::mem::take(&mut *buf))
                .map_err(|_| CliError::Usage("the key on standard input is not UTF-8".into()))?,
        )
    } else {
        hsm_core::fs::read_bounded_string("read key file", path, hsm_core::fs::SECRET_MAX)?
    };
    Ok(Zeroizing::new(text.trim().to_string()))
}

/// A key from the environment variable `name`.
fn env_secret(name: &str) -> Result<Zeroizing<String>, CliError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(Zeroizing::new(v.trim().to_string())),
        _ => Err(CliError::Usage(format!(
            "environment variable {name} is not set or empty"
        ))),
    }
}

/// Warnings for secrets given on the command line, where every user sees them in
/// /proc/PID/cmdline. They name the option, never its value.
fn command_line_secret_warnings(args: &[String]) -> Vec<&'static str> {
    let mut out = Vec::new();
    for a in args {
        let flag = a.split('=').next().unwrap_or_default();
        let w = match flag {
            "--key" => {
                "warning: --key puts the key on the command line, visible to other users; use --key-file \
                        PATH, --key-file - (standard input) or --key-env NAME"
            }
            "--group-key" => {
                "warning: --group-key puts the key on the command line, visible to other users; use \
                              --group-key-file PATH, --group-key-file - (standard input) or --group-key-env NAME"
            }
            "--connection-string" => {
                "warning: --connection-string puts the service key on the command line, visible to other \
                 users; use --connection-string-file PATH, --connection-string-file - (standard input) or \
                 $DPS_SERVICE_CONNECTION_STRING"
            }
            _ if a.contains("pin-value=") => {
                "warning: a PKCS#11 URI with pin-value puts the PIN on the command \
                 line, visible to other users; use pin-source=file:PATH (a file readable only by you)"
            }
            _ => continue,
        };
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

fn load_config(path: Option<&Path>) -> Result<Config, CliError> {
    Ok(match path {
        Some(p) => Config::from_file(p)?,
        None => Config::from_env()?,
    })
}

fn provision(a: ProvisionArgs) -> Result<(), CliError> {
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
    if a.issue_certificate {
        let identity = match attestation {
            Attestation::X509 => None,
            Attestation::SymmetricKey => Some(dps_device::Attestation::SymmetricKey(
                hsm::open_symmetric(&config)?.into(),
            )),
            Attestation::Tpm => Some(dps_device::Attestation::Tpm(Arc::new(Mutex::new(
                hsm::open_tpm_attestation(&config, "TPM attestation")?,
            )))),
        };
        let client =
            dps_device::ProvisioningClient::new(&a.global_endpoint, &a.id_scope, a.transport.into(), roots, options);
        return certificate_cmd::issue(&config, identity, client, payload, a.json, a.timeout);
    }
    let identity = match attestation {
        Attestation::X509 => dps_device::Attestation::X509(hsm::open_x509(&config)?.into()),
        Attestation::SymmetricKey => dps_device::Attestation::SymmetricKey(hsm::open_symmetric(&config)?.into()),
        Attestation::Tpm => dps_device::Attestation::Tpm(Arc::new(Mutex::new(hsm::open_tpm_attestation(
            &config,
            "provisioning with TPM attestation",
        )?))),
    };
    let client = dps_device::blocking::ProvisioningClient::new(
        &a.global_endpoint,
        &a.id_scope,
        a.transport.into(),
        roots,
        options,
    )
    .map_err(|e| dps::cli_error(e, a.timeout))?;
    let assignment = client
        .register_as(&identity, a.registration_id.as_deref(), payload)
        .map_err(|e| dps::cli_error(e, a.timeout))?;
    report(&assignment, a.json);
    Ok(())
}

/// The CAs trusted for the service: a PEM file, or the Mozilla root store.
fn trusted_roots(path: Option<&Path>) -> Result<rustls::RootCertStore, CliError> {
    Ok(match path {
        Some(p) => tlsio_bridge::roots_from_pem(
            &format!("trusted CA {}", p.display()),
            &hsm_core::pem::read_file("read trusted CA", p)?,
        )?,
        None => rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    })
}

fn report(result: &dps_device::Assignment, json: bool) {
    // Everything here comes from the service: made safe for a terminal.
    if json {
        outln!(
            "{}",
            dps::json_for_terminal(&serde_json::to_value(&result.state).unwrap_or_default())
        );
    } else {
        outln!("registration id: {}", dps::shown(&result.registration_id));
        outln!("status: {}", dps::shown(&result.status));
        outln!("assigned hub: {}", dps::shown(&result.assigned_hub));
        outln!("device id: {}", dps::shown(&result.device_id));
    }
}

/// Sign a SAS token with a key given as text or file, or with a configured identity.
fn sas_token(key: &KeyArgs, aud: &Audience, expiry: u64) -> Result<String, CliError> {
    let raw = match (&key.key, &key.key_file, &key.config) {
        (Some(k), _, _) => sas::decode_key("--key", k)?,
        (_, Some(f), _) => sas::decode_key(&format!("key file {}", f.display()), &read_secret(f)?)?,
        (None, None, None) if key.key_env.is_some() => {
            let name = key.key_env.as_deref().unwrap_or_default();
            sas::decode_key(&format!("environment variable {name}"), &env_secret(name)?)?
        }
        (_, _, Some(c)) => {
            let id = hsm::open_symmetric(&Config::from_file(c)?)?;
            let mac = id.hmac_sha256(aud.string_to_sign(expiry).as_bytes())?;
            return Ok(aud.token(&mac, expiry));
        }
        _ => return Err(CliError::Usage("give --key-file, --key-env, --key or --config".into())),
    };
    Ok(aud.sign_with_key(&raw, expiry))
}

fn sas_cmd(cmd: SasCommand) -> Result<(), CliError> {
    let (aud, key, expiry) = match cmd {
        SasCommand::Dps {
            id_scope,
            registration_id,
            key,
            expiry,
        } => {
            let registration_id = match (registration_id, &key.config) {
                (Some(r), _) => r,
                (None, Some(c)) => hsm::open_symmetric(&Config::from_file(c)?)?.registration_id()?,
                (None, None) => return Err(CliError::Usage("--registration-id is required with --key".into())),
            };
            (
                Audience::Dps {
                    id_scope,
                    registration_id,
                },
                key,
                expiry,
            )
        }
        SasCommand::Hub {
            host,
            device_id,
            key,
            expiry,
        } => (Audience::Hub { host, device_id }, key, expiry),
    };
    outln!("{}", sas_token(&key, &aud, expiry.expiry())?);
    Ok(())
}

fn derive_key(group: GroupKeyArgs, registration_id: &str) -> Result<(), CliError> {
    let group_key = match (group.group_key, group.group_key_file, group.group_key_env) {
        (Some(k), _, _) => Zeroizing::new(k),
        (_, Some(f), _) => read_secret(&f)?,
        (_, _, Some(name)) => env_secret(&name)?,
        _ => {
            return Err(CliError::Usage(
                "give --group-key-file, --group-key-env or --group-key".into(),
            ));
        }
    };
    let key = sas::derive_device_key(&group_key, registration_id)?;
    outln!("{}", sas::encode_key(&key).as_str());
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    for w in command_line_secret_warnings(&args) {
        eprintln!("{w}");
    }
    let cli = Cli::parse();
    // Identities are opened through `hsm`; vendor tables are loaded by hsm-abi.
    hsm_abi::vendor::install();
    let mut directives = cli.log.clone();
    for noisy in ["cryptoki", "tss_esapi"] {
        if !directives.contains(noisy) {
            directives.push_str(&format!(",{noisy}=off"));
        }
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&directives).unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.cmd {
        Command::Provision(a) => provision(a),
        Command::Sas(c) => sas_cmd(c),
        Command::DeriveKey { group, registration_id } => derive_key(group, &registration_id),
        Command::Certs(a) => certs_cmd::run(a).map_err(CliError::from),
        Command::Certificate(c) => certificate_cmd::run(c),
        Command::Conformance(a) => conformance_cmd::run(a).map_err(CliError::from),
        Command::Dice(c) => dice_cmd::run(c).map_err(CliError::from),
        Command::Enrollment(c) => enrollment_api_cmd::run(c),
        Command::Pkcs11(c) => pkcs11_cmd::run(c).map_err(CliError::from),
        #[cfg(feature = "tpm")]
        Command::Tpm(c) => tpm_cmd::run(c).map_err(CliError::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
