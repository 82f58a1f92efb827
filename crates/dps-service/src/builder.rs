//! [`ClientBuilder`]: a [`ServiceClient`] from a connection string, with the timeout, trust roots,
//! api-version and retries a program usually sets.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dps_wire::ApiVersion;
use rustls_pki_types::CertificateDer;

use crate::{ClientOptions, ConnectionString, Error, Result, ServiceClient};

/// Builds a [`ServiceClient`]: `ServiceClient::builder(connection_string)`, the settings, then
/// [`build`](ClientBuilder::build). A malformed connection string is reported by `build`.
///
/// The server is verified against the Mozilla root store (built in) unless
/// [`trust_pem_file`](ClientBuilder::trust_pem_file), [`trust_pem`](ClientBuilder::trust_pem) or
/// [`system_roots`](ClientBuilder::system_roots) name other roots.
///
/// ```no_run
/// use std::time::Duration;
/// # fn main() -> Result<(), dps_service::Error> {
/// let client = dps_service::ServiceClient::builder(&std::env::var("DPS_CONNECTION_STRING").unwrap_or_default())
///     .timeout(Duration::from_secs(10))
///     .retries(5)
///     .build()?;
/// # let _ = client; Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until `build`"]
pub struct ClientBuilder {
    connection: Result<ConnectionString>,
    options: ClientOptions,
    pem_files: Vec<PathBuf>,
    pems: Vec<Vec<u8>>,
    system_roots: bool,
}

impl ServiceClient {
    /// A builder for a client of the service `connection_string` names
    /// (`HostName=..;SharedAccessKeyName=..;SharedAccessKey=..`).
    pub fn builder(connection_string: &str) -> ClientBuilder {
        ClientBuilder::new(ConnectionString::parse(connection_string))
    }

    /// A client with the default settings: Mozilla roots, 30 s timeout, api-version
    /// [`ApiVersion::SERVICE`], 3 retries of a 429 or 503.
    pub fn from_connection_string(connection_string: &str) -> Result<ServiceClient> {
        Self::builder(connection_string).build()
    }
}

impl From<ConnectionString> for ClientBuilder {
    fn from(connection: ConnectionString) -> Self {
        ClientBuilder::new(Ok(connection))
    }
}

impl ClientBuilder {
    fn new(connection: Result<ConnectionString>) -> Self {
        ClientBuilder {
            connection,
            options: ClientOptions::default(),
            pem_files: Vec::new(),
            pems: Vec::new(),
            system_roots: false,
        }
    }

    /// Connect to `host[:port]` instead of the connection string's `HostName` (an emulator, a
    /// private endpoint); the SAS token is still made for `HostName`.
    pub fn endpoint(mut self, host_and_port: impl Into<String>) -> Self {
        self.options.endpoint = Some(host_and_port.into());
        self
    }

    /// The longest a request may take, connecting included (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = timeout;
        self
    }

    /// Trust the CA certificates of this PEM file instead of the Mozilla roots (an emulator's or a
    /// private CA); call again to add another file. Read by [`build`](ClientBuilder::build).
    pub fn trust_pem_file(mut self, path: impl AsRef<Path>) -> Self {
        self.pem_files.push(path.as_ref().to_path_buf());
        self
    }

    /// Trust the CA certificates of this PEM text instead of the Mozilla roots; adds to
    /// [`trust_pem_file`](ClientBuilder::trust_pem_file).
    pub fn trust_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.pems.push(pem.into());
        self
    }

    /// Trust the operating system's root store instead of the Mozilla roots (adds to the PEM
    /// roots when both are given).
    pub fn system_roots(mut self) -> Self {
        self.system_roots = true;
        self
    }

    /// A whole TLS configuration (its own verifier, a client certificate): wins over every
    /// `trust_*` setting.
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.options.tls_config = Some(config);
        self
    }

    /// The `api-version` of every request (default [`ApiVersion::SERVICE`], `2021-10-01`); a newer
    /// one for the fields it adds.
    pub fn api_version(mut self, version: ApiVersion) -> Self {
        self.options.api_version = version;
        self
    }

    /// How many times a call answered 429 or 503 is sent again (default 3), after the service's
    /// `Retry-After`, else a doubling backoff from 0.5 s.
    pub fn retries(mut self, retries: u32) -> Self {
        self.options.retries = retries;
        self
    }

    /// The longest `Retry-After` a retry waits (default 30 s); a longer one ends the call with the
    /// error.
    pub fn max_retry_after(mut self, wait: Duration) -> Self {
        self.options.max_retry_after = wait;
        self
    }

    /// The lifetime of each request's SAS token (default 1 h).
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.options.token_ttl = ttl;
        self
    }

    /// A query stops with [`Error::Paging`] after this many pages (default 100,000).
    pub fn max_query_pages(mut self, pages: usize) -> Self {
        self.options.max_query_pages = pages;
        self
    }

    /// A query stops with [`Error::Paging`] when its listing has taken this long (default 1 h;
    /// `None`: no deadline).
    pub fn query_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.options.query_timeout = timeout;
        self
    }

    /// The client: the connection string parsed, the trust roots read.
    pub fn build(self) -> Result<ServiceClient> {
        let connection = self.connection?;
        let mut options = self.options;
        let mut cas = Vec::new();
        for path in &self.pem_files {
            let what = format!("trusted CA file {}", path.display());
            let pem = std::fs::read(path).map_err(|e| Error::Trust {
                what: what.clone(),
                source: Box::new(e),
            })?;
            cas.extend(parse_pem(&what, &pem)?);
        }
        for pem in &self.pems {
            cas.extend(parse_pem("trusted CA PEM", pem)?);
        }
        if self.system_roots {
            cas.extend(system_roots()?);
        }
        if self.system_roots || !cas.is_empty() {
            options.trusted_cas = Some(cas);
        }
        ServiceClient::new(connection, options)
    }
}

fn parse_pem(what: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = hsm_core::pem::parse_certificates(what, pem).map_err(|e| Error::Trust {
        what: what.to_string(),
        source: Box::new(e),
    })?;
    Ok(certs)
}

/// The operating system's roots; an error only when it has none at all.
fn system_roots() -> Result<Vec<CertificateDer<'static>>> {
    let found = rustls_native_certs::load_native_certs();
    if found.certs.is_empty() {
        let source: Box<dyn std::error::Error + Send + Sync> = match found.errors.into_iter().next() {
            Some(e) => Box::new(e),
            None => "the system root store is empty".into(),
        };
        return Err(Error::Trust {
            what: "system root store".into(),
            source,
        });
    }
    // A store may hold certificates rustls cannot use as anchors: those are left out.
    Ok(found
        .certs
        .into_iter()
        .filter(|c| rustls::RootCertStore::empty().add(c.clone()).is_ok())
        .collect())
}
