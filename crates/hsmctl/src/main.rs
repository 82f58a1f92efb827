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

mod config;
mod conformance_cmd;
mod dice_cmd;
mod dps;
mod enrollment_api_cmd;
mod enrollment_cmd;
mod error;
mod hub_cmd;
mod issued;
mod issued_certificate_cmd;
mod pkcs11_cmd;
mod provision_cmd;
mod secrets;
mod service;
mod test_pki_cmd;
#[cfg(feature = "tpm")]
mod tpm_cmd;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use hsm_core::config::Config;
use hsm_core::sas::{self, Audience};
use zeroize::Zeroizing;

use error::CliError;
use secrets::{command_line_secret_warnings, env_secret, read_secret};

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
    Provision(provision_cmd::ProvisionArgs),
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
    Certs(test_pki_cmd::CertsArgs),
    /// Issued certificates ([x509] backend = "issued"): request, renew, confirm, status.
    #[command(subcommand)]
    Certificate(issued_certificate_cmd::CertificateCommand),
    /// IoT Hub: connect with the configured identity and send telemetry.
    #[command(subcommand)]
    Hub(hub_cmd::HubCommand),
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
        Command::Provision(a) => provision_cmd::provision(a),
        Command::Sas(c) => sas_cmd(c),
        Command::DeriveKey { group, registration_id } => derive_key(group, &registration_id),
        Command::Certs(a) => test_pki_cmd::run(a).map_err(CliError::from),
        Command::Certificate(c) => issued_certificate_cmd::run(c),
        Command::Hub(c) => hub_cmd::run(c),
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
