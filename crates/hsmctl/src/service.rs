//! `hsmctl enrollment` on the `dps-service` library: the service connection options
//! ([`ServiceArgs`]: the connection string from a file, the command line or the environment, endpoint,
//! trusted CAs, api-version), the client made from them, and the library's errors as hsmctl's.

use std::path::PathBuf;

use clap::Args;
use dps_service::{ClientOptions, ConnectionString, ServiceClient};

use crate::dps::shown;
use crate::{CliError, read_secret};

/// The environment variable holding the service connection string.
pub const CONNECTION_STRING_ENV: &str = "DPS_SERVICE_CONNECTION_STRING";

#[derive(Args)]
pub struct ServiceArgs {
    /// The service connection string `HostName=..;SharedAccessKeyName=..;SharedAccessKey=..` (visible
    /// to other users in /proc/PID/cmdline: prefer --connection-string-file or $DPS_SERVICE_CONNECTION_STRING).
    #[arg(long, global = true)]
    connection_string: Option<String>,
    /// A file holding the connection string; `-` reads it from standard input.
    #[arg(long, global = true, conflicts_with = "connection_string")]
    connection_string_file: Option<PathBuf>,
    /// Connect to host:port instead of the connection string's HostName (an emulator).
    #[arg(long, global = true)]
    endpoint: Option<String>,
    /// PEM file of the CA(s) to trust for the service; default: the Mozilla root store.
    #[arg(long, global = true)]
    trusted_ca: Option<PathBuf>,
    /// The service api-version (default 2021-10-01, stable); a later one (e.g. 2026-04-01) for the
    /// fields it adds.
    #[arg(long, global = true, value_parser = dps_service::ApiVersion::parse)]
    api_version: Option<dps_service::ApiVersion>,
}

/// The library's errors as hsmctl's; service text made safe for a terminal.
pub fn svc(e: dps_service::Error) -> CliError {
    use dps_service::Error as E;
    match e {
        // The transport error says why in words; its causes say what the system reported.
        E::Transport { .. } => {
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text.push_str(&format!(": {c}"));
                cause = c.source();
            }
            CliError::Transport(shown(&text))
        }
        E::Protocol { .. } => CliError::Protocol(shown(&e.to_string())),
        E::ConnectionString(_) | E::Invalid { .. } | E::Input { .. } => CliError::Usage(e.to_string()),
        other => CliError::Usage(shown(&other.to_string())),
    }
}

/// The service client of `a`.
pub fn client(a: &ServiceArgs) -> Result<ServiceClient, CliError> {
    let text = match (&a.connection_string, &a.connection_string_file) {
        (Some(s), _) => zeroize::Zeroizing::new(s.clone()),
        (_, Some(p)) => read_secret(p)?,
        (None, None) => match std::env::var(CONNECTION_STRING_ENV) {
            Ok(s) if !s.trim().is_empty() => zeroize::Zeroizing::new(s),
            _ => {
                return Err(CliError::Usage(format!(
                    "no connection string: give --connection-string-file, --connection-string or set {CONNECTION_STRING_ENV}"
                )));
            }
        },
    };
    let cs = ConnectionString::parse(&text).map_err(svc)?;
    let trusted_cas = match &a.trusted_ca {
        Some(p) => Some(hsm_core::pem::parse_certificates(
            &format!("trusted CA {}", p.display()),
            &hsm_core::pem::read_file("read trusted CA", p)?,
        )?),
        None => None,
    };
    ServiceClient::new(
        cs,
        ClientOptions {
            endpoint: a.endpoint.clone(),
            trusted_cas,
            api_version: a.api_version.clone().unwrap_or(dps_service::ApiVersion::SERVICE),
            ..ClientOptions::default()
        },
    )
    .map_err(svc)
}
